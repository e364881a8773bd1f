"""A listing agent kept running on a cluster while the app's connection is open: a listing in one round trip.

Every agent call is otherwise a command of its own: a channel, a login shell, a Python start, the stored
agent loaded (see agent_store), then the answer: three round trips and the cluster's CPU for each. The app
lists often (on opening, after each change, for each export or look at one environment), so for runners
that ask for it (``keep_agent``, set by the app's Session) the first listing starts the stored agent as a
serving agent instead (``serve`` in backend/agent/read.py): it answers that listing, then waits for the next
settings on its standard input. A later listing sends one line and reads the answer: one round trip.

It only lists: write actions, and anything else with an ``action``, keep their own command. A request it
cannot take goes the usual way (``ask`` returns None): another listing of the same cluster under way, the
agent not stored there yet, the serving agent gone (it ends by itself after SERVE_IDLE seconds without a
request, or with its connection), or every channel of the connection in use when it has to start (its channel
counts as a command's; the command then waits for one). A serving agent that does not take a request within
ACK_WAIT seconds is taken for a dead connection, which is dropped, as when a channel cannot be opened.

Most listings find nothing changed: the server keeps, for each kind of listing, the id of the last answer
its agent sent with what the caller made of it (Held); the next such request names that id, and the agent
sends only the environments that changed (see SentAnswers in backend/agent/read.py, read_inventory).
Closing the runner's connection ends the serving agent (its standard input ends with it).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Generic, Mapping, Protocol, TypeVar

from . import agent_store
from .errors import Cancelled, ConnectionFailed
from .protocol import ANSWER_MARKER, SERVING_MARKER
from .runner import CancelToken, CommandResult, Runner, timed_out

if TYPE_CHECKING:
    from .ssh_runner import Stream

log = logging.getLogger(__name__)

SERVE_IDLE = 900.0  # seconds without a request after which a serving agent ends by itself
ACK_WAIT = 20.0  # seconds a running agent has to say it read a request (as a channel has to open)
LABEL = "EnvDesk agent (serving)"
_POLL = 0.05


class StreamStarter(Protocol):
    """A runner that can start a Python that keeps running (SSHRunner.start_python)."""

    keep_agent: bool

    def start_python(self, source: str, cancel: CancelToken | None = None, *, wait: bool = True) -> Stream | None:
        """Start `source`, its standard input left open for what it is told; None when `wait` is false and
        every channel is in use."""


class _Gone(Exception):
    """The serving agent ended, or asked for the agent itself: the request goes the usual way."""


R = TypeVar("R")


class Held(Generic[R]):
    """The last answer of a serving agent to one kind of listing, as its caller keeps it: the answer's id and
    the caller's record of each environment by path (what {"same": path} entries of the next answer stand for)."""

    __slots__ = ("answer", "records")

    def __init__(self, answer: str, records: Mapping[str, R]) -> None:
        self.answer = answer
        self.records = records


class HeldAnswers:
    """Held answers of one runner's serving agent, by kind of listing (the request's settings), the last KEEP
    kinds; forgotten when another agent process serves (its answers' ids are new to it)."""

    KEEP = 4

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: OrderedDict[str, Held[Any]] = OrderedDict()

    def get(self, kind: str) -> Held[Any] | None:
        """The held answer to requests of this kind, if any."""
        with self._lock:
            return self._held.get(kind)

    def keep(self, kind: str, answer: str, records: Mapping[str, Any]) -> None:
        """Hold `records` as what the answer with the id `answer` stands for."""
        with self._lock:
            self._held.pop(kind, None)
            self._held[kind] = Held(answer, records)
            while len(self._held) > self.KEEP:
                self._held.popitem(last=False)

    def clear(self) -> None:
        """Forget every held answer."""
        with self._lock:
            self._held.clear()


class AgentServer:
    """One runner's serving agent: started on its first listing, reused while it runs; one request at a time."""

    def __init__(self, runner: StreamStarter) -> None:
        self.runner = runner
        self.started = 0  # serving agents started so far
        self.received = 0  # bytes of answers read from serving agents so far
        self.held = HeldAnswers()
        self._lock = threading.Lock()
        self._stream: Stream | None = None
        self._digest = ""
        self.unusable = False  # a serving agent just started ended without answering: not tried again

    def ask(self, agent: str, settings: str, cancel: CancelToken | None, timeout: float) -> CommandResult | None:
        """The answer of the serving agent `agent` to `settings` (its output up to the answer line), started if
        need be; None when it cannot take the request (then a command of its own answers it, see the module).

        Cancel and timeout stop it (with what it runs), as they stop a command."""
        notes = agent_store.notes_for(self.runner)  # type: ignore[arg-type]
        digest = agent_store.agent_digest(agent)
        if self.unusable or notes is None or not notes.keeps(digest) or not self._lock.acquire(blocking=False):
            return None
        generation = self._generation()
        try:
            for _ in (1, 2):
                try:
                    running = self._running(agent, digest, notes, cancel)
                except ConnectionFailed as exc:
                    if not getattr(self.runner, "connected", True):
                        raise  # no connection (and one attempt to make it was enough): said as the usual way says it
                    log.info("no serving agent on %s: %s", getattr(self.runner, "name", "?"), exc)
                    return None
                if running is None:
                    return None  # every channel in use: the command waits for one
                stream, fresh = running
                try:
                    stream.new_request()
                    stream.send(settings.encode("utf-8") + b"\n")
                    return self._answer(stream, fresh, notes, cancel, timeout)
                except (_Gone, ConnectionFailed) as exc:
                    log.info("the serving agent on %s could not answer (%s)", getattr(self.runner, "name", "?"),
                             exc)
                    self._end(stream)
                    if self._generation() != generation:
                        raise ConnectionFailed(
                            f"The connection to {getattr(self.runner, 'name', '?')} was closed.") from exc
                    if getattr(self.runner, "stopped_answering", False):
                        raise  # its connection was given up for silence (T19): said so, never dialled again now
                    if fresh:
                        self.unusable = isinstance(exc, ConnectionFailed) and getattr(self.runner, "connected", True)
                        return None
            return None
        finally:
            self._lock.release()

    def _generation(self) -> object:
        """What changes when the runner is closed (disconnected by the user, its profile changed): a request
        under way then ends, rather than reconnecting to a cluster the user let go."""
        return getattr(self.runner, "_generation", None)

    def _running(self, agent: str, digest: str, notes: agent_store.TargetNotes,
                 cancel: CancelToken | None) -> tuple[Stream, bool] | None:
        """The serving agent (started now if none runs), and whether it was just started; None when it has to
        start and every channel is in use."""
        stream = self._stream
        if stream is not None and stream.running and self._digest == digest:
            return stream, False
        if stream is not None:
            self._end(stream)
        serve = json.dumps({"serve": {"idle": SERVE_IDLE}}, separators=(",", ":"))
        started = self.runner.start_python(agent_store.bootstrap_script(agent, serve, notes.code(digest)), cancel,
                                           wait=False)
        if started is None:
            return None
        self.held.clear()  # a new agent knows none of the answers held
        self._stream, self._digest = started, digest
        self.started += 1
        return started, True

    def _answer(self, stream: Stream, fresh: bool, notes: agent_store.TargetNotes, cancel: CancelToken | None,
                timeout: float) -> CommandResult:
        """Read up to the answer line; _Gone if the agent ended or asked for the agent itself."""
        began = time.monotonic()
        lines: list[str] = []
        pending = _Pending()
        taken = fresh  # a new agent's start may take long on a busy login node: its channel just opened
        while True:
            now = time.monotonic()
            if (cancel is not None and cancel.cancelled) or now - began > timeout:
                self._end(stream, stop=True)
                if cancel is not None and cancel.cancelled:
                    raise Cancelled()
                raise timed_out(LABEL, timeout)
            if not taken and now - began > ACK_WAIT:
                self._stream = None
                stream.give_up()
                raise ConnectionFailed(f"The running helper on {stream.runner.name} did not answer.")
            chunk = stream.receive(_POLL)
            self.received += len(chunk)
            for raw in pending.lines(chunk):
                line = raw.decode("utf-8", "replace")
                if line == SERVING_MARKER:
                    taken = True
                    continue
                lines.append(line)
                if line.startswith(ANSWER_MARKER):
                    return self._result(lines, stream, notes)

    def _result(self, lines: list[str], stream: Stream, notes: agent_store.TargetNotes) -> CommandResult:
        """The output read (its last line the answer); _Gone if that answer asks for the agent itself.

        The answer line (a listing's may be megabytes) is looked at once and copied once: only the short
        lines before it can say which code the agent was compiled to, and it is decoded only when it can be
        the agent's request (see _asks_for_agent); run_agent decodes it."""
        *before, answer = lines
        if _asks_for_agent(answer, self._digest):
            notes.forget(self._digest)
            raise _Gone("it does not keep the agent any more")
        head = "".join(line + "\n" for line in before)
        code = agent_store.reported_code(head, self._digest)
        if code:
            notes.remember_code(self._digest, code)
        stream.request_done()
        return CommandResult(LABEL, 0, f"{head}{answer}\n", stream.stderr)

    def _end(self, stream: Stream, stop: bool = False) -> None:
        """Forget `stream`, stopping what it runs (`stop`) or closing its input (it then ends by itself)."""
        if self._stream is stream:
            self._stream = None
        if stop:
            stream.stop()
        else:
            stream.close()


class _Pending:
    """The line begun on a serving agent's output, kept as the chunks it came in (an answer line may be
    megabytes long): joined once whole."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def lines(self, chunk: bytes) -> list[bytes]:
        """The lines `chunk` completes (without their newlines); the rest is kept for the next."""
        if b"\n" not in chunk:
            if chunk:
                self.chunks.append(chunk)
            return []
        *complete, rest = b"".join([*self.chunks, chunk]).split(b"\n")
        self.chunks = [rest] if rest else []
        return complete


def _asks_for_agent(answer: str, digest: str) -> bool:
    """Whether the answer line `answer` asks for the agent `digest` (agent_store.asks_for_agent), decoding it
    only when the digest is in it: such a request holds it as is (plain JSON, hex digits are never escaped),
    and a listing that does not is spared a second decoding of its whole answer."""
    return digest in answer and agent_store.asks_for_agent(answer, digest)


_servers_lock = threading.Lock()


def server_for(runner: Runner) -> AgentServer | None:
    """The runner's AgentServer (made on first use), or None where none is kept: a runner that did not ask for
    one (keep_agent) or cannot start one (this computer)."""
    if not getattr(runner, "keep_agent", False) or not hasattr(runner, "start_python"):
        return None
    with _servers_lock:  # kept on the runner, so that it goes with it (a module-level table kept runners alive)
        server: AgentServer | None = getattr(runner, "_agent_server", None)
        if server is None:
            server = AgentServer(runner)  # type: ignore[arg-type]
            runner._agent_server = server  # type: ignore[attr-defined]
        return server


def ask(runner: Runner, agent: str, settings: str, cancel: CancelToken | None,
        timeout: float) -> CommandResult | None:
    """The answer of the runner's serving agent to the listing `settings` (or of the one a keeper keeps for it,
    see kept_connection), or None: run it the usual way."""
    server = server_for(runner)
    if server is not None:
        return server.ask(agent, settings, cancel, timeout)
    kept = getattr(runner, "ask_kept_agent", None)  # a command line's runner through a kept connection
    return kept(agent, settings, cancel, timeout) if kept is not None else None
