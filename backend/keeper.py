"""The background process that keeps one cluster's connection open between commands (as OpenSSH's
ControlPersist): logged in once, two-factor code and all, it lets each later command of the same user open its
channels through it, over SSH on this computer's loopback, until it has been idle for a while.

Run as `python -m envdesk.backend.keeper CONFIG_DIR CLUSTER IDLE_MINUTES` by kept_connection.start, which relays
the login's questions to the person (see kept_connection.KeeperQuestions) and waits for its answer line.
"""
from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import secrets
import select
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .ssh_lib import paramiko
from paramiko.common import (AUTH_FAILED, AUTH_SUCCESSFUL, OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
                             OPEN_FAILED_CONNECT_FAILED, OPEN_SUCCEEDED)

from .errors import ConnectionFailed, EnvDeskError
from .kept_connection import (ANCHOR_CHANNEL, LISTING_CHANNEL, LOCAL_USER, PROTOCOL, STOP_CHANNEL, STREAM_VARIABLE,
                              KeeperQuestions, KeptRecord, claim, forget, read_to_end, record_path, say_why_it_ends)
from .paths import AppPaths
from .ssh_runner import CHANNEL_OPEN_TIMEOUT, SSHRunner, command_line, script_input

log = logging.getLogger(__name__)

_CHUNK = 65536
# After a disconnect, how long the clients connected may go without a command before the keeper ends: the steps of
# one operation (its begin, its work, its finish) follow each other at once, and its lock is tied to its client.
DRAIN_QUIET = 5.0


class _Gate(paramiko.ServerInterface):
    """Lets in only a command of this user (the token of the keeper's record), and only session channels and
    EnvDesk's own two (a listing, the stop); each session opened here is opened on the cluster first, so the
    cluster's own refusal (MaxSessions) is the answer. One per client connection."""

    def __init__(self, keeper: Keeper) -> None:
        self.keeper = keeper
        self.upstream: dict[int, paramiko.Channel] = {}
        self.listings: set[int] = set()  # channels that ask the kept listing agent (see Keeper.answer_listing)
        self.anchors: set[int] = set()  # channels that ask for the client's anchor (see anchor_pid)
        self.stops: set[int] = set()  # channels that ask the keeper to end (see Keeper._answer_stop)
        self.streams: set[int] = set()  # channels of programs kept running (the app's listing agent): no command
        self._anchor: paramiko.Channel | None = None
        self._anchor_pid = 0
        self._anchor_lock = threading.Lock()

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        if username == LOCAL_USER and hmac.compare_digest(password.encode(), self.keeper.token.encode()):
            return AUTH_SUCCESSFUL
        return AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == LISTING_CHANNEL:
            self.listings.add(chanid)
            return OPEN_SUCCEEDED
        if kind == ANCHOR_CHANNEL:
            self.anchors.add(chanid)
            return OPEN_SUCCEEDED
        if kind == STOP_CHANNEL:  # needs no session on the cluster: it works when all of them are taken
            self.stops.add(chanid)
            return OPEN_SUCCEEDED
        if kind != "session":
            return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        try:
            self.upstream[chanid] = self.keeper.open_upstream()
        except paramiko.ChannelException as exc:
            return exc.code
        except paramiko.SSHException as exc:
            if self.keeper.runner.refused(exc):  # two refused at once: paramiko raises the second plainly
                return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
            log.info("the cluster's connection broke: %s", exc)
            self.keeper.stop()
            return OPEN_FAILED_CONNECT_FAILED
        except (EOFError, OSError) as exc:
            log.info("the cluster's connection broke: %s", exc)
            self.keeper.stop()
            return OPEN_FAILED_CONNECT_FAILED
        return OPEN_SUCCEEDED

    def check_channel_env_request(self, channel: paramiko.Channel, name: bytes, value: bytes) -> bool:
        """The one variable a client sets, never passed on: the channel runs a program kept running (see
        kept_connection.STREAM_VARIABLE), which is not a command that a disconnect waits for."""
        if name in (STREAM_VARIABLE, STREAM_VARIABLE.encode()):
            self.streams.add(channel.get_id())
            return True
        return False

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        upstream = self.upstream.pop(channel.get_id(), None)
        if upstream is None:
            return False
        text = command.decode("utf-8", "replace") if isinstance(command, bytes) else str(command)
        try:
            upstream.exec_command(text)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            log.info("exec on the cluster failed: %s", exc)
            upstream.close()
            return False
        counted = channel.get_id() not in self.streams
        if counted:
            self.keeper.began()
        threading.Thread(target=_pump, args=(channel, upstream, self.keeper, counted), daemon=True,
                         name="pump").start()
        return True

    def release_unused(self, closed: set[int]) -> None:
        """Close the cluster's session of each channel that closed before its command was sent (a command cancelled
        between the two): it would hold one of the cluster's sessions for good."""
        for chanid in closed & set(self.upstream):
            _close_quietly(self.upstream.pop(chanid, None))

    def release_all(self) -> None:
        """The client's connection ended: close what it opened and never used, and its anchor."""
        for chanid in list(self.upstream):
            _close_quietly(self.upstream.pop(chanid, None))
        with self._anchor_lock:
            _close_quietly(self._anchor)
            self._anchor = None

    def anchor_pid(self) -> int:
        """The process id of this client's anchor on the cluster: a process that lives as long as the client is
        connected (it reads its input, which ends when the keeper closes its channel), started on first asking.
        Locks the client takes there name it as their owner, so that they go stale once the client is gone, as
        locks taken over a connection of one's own do with its sshd (see the agent's take_lock)."""
        with self._anchor_lock:
            if self._anchor is not None and not self._anchor.closed:
                return self._anchor_pid
            channel = self.keeper.open_upstream()
            try:
                channel.settimeout(CHANNEL_OPEN_TIMEOUT)
                channel.exec_command(command_line("sh"))
                channel.sendall(script_input(f"echo {ANCHOR_MARKER}$$; exec cat >/dev/null"))
                pid = _anchor_line(channel)
            except BaseException:
                _close_quietly(channel)
                raise
            self._anchor, self._anchor_pid = channel, pid
            return pid


def _pump(down: paramiko.Channel, up: paramiko.Channel, keeper: Keeper, counted: bool = True) -> None:
    """Carry one command's bytes both ways (its stderr kept apart), its end of input, and its exit status. When
    the cluster's connection drops, the client's whole connection is closed: it must not take the channel's end
    for the command's."""
    input_ended = False
    try:
        while True:
            moved = False
            if up.recv_ready():
                down.sendall(up.recv(_CHUNK))
                moved = True
            if up.recv_stderr_ready():
                down.sendall_stderr(up.recv_stderr(_CHUNK))
                moved = True
            if down.recv_ready():
                up.sendall(down.recv(_CHUNK))
                moved = True
            elif down.eof_received and not input_ended:
                up.shutdown_write()
                input_ended = True
            if moved:
                keeper.last_used = time.monotonic()  # what flows through it is use (the app's listings too)
                continue
            if down.closed:
                break
            if up.exit_status_ready() and (up.eof_received or up.closed) \
                    and not up.recv_ready() and not up.recv_stderr_ready():
                if up.exit_status >= 0:
                    down.send_exit_status(up.exit_status)
                elif _connection_lost(up, keeper):
                    keeper.lost()
                    _close_quietly(down.get_transport())
                break
            _wait(up, down)
    except (paramiko.SSHException, EOFError, OSError) as exc:
        log.info("a command's channel broke: %s", exc)
    finally:
        with contextlib.suppress(Exception):
            down.shutdown_write()
        _close_quietly(down)
        _close_quietly(up)
        if counted:
            keeper.ended()


def _wait(up: paramiko.Channel, down: paramiko.Channel) -> None:
    """Until either side may have something. paramiko keeps a channel readable for select once its input ended
    (for good): such a side is not watched, or the pump would spin. Once the command's output ended, only its
    exit status is awaited (paramiko sets status_event for it, and for the close)."""
    watched = [channel for channel in (up, down) if not channel.eof_received]
    if up.eof_received:
        if watched:
            select.select(watched, [], [], 0.02)
        else:
            up.status_event.wait(1.0)
    else:
        select.select(watched, [], [], 1.0)


def _connection_lost(up: paramiko.Channel, keeper: Keeper) -> bool:
    """Whether a channel closed without an exit status went with the cluster's connection (paramiko closes the
    channels just before it says the connection is down): asked again briefly before it is taken as the command's
    own end."""
    transport = up.get_transport()
    for _ in range(20):
        if transport is None or not transport.is_active() or not keeper.runner.connected:
            return True
        time.sleep(0.05)
    return False


ANCHOR_MARKER = "ENVDESK-ANCHOR "


def _anchor_line(channel: paramiko.Channel) -> int:
    """The anchor's process id, from the line that says it (a login shell may greet first)."""
    seen = b""
    while len(seen) < 65536:
        chunk = channel.recv(4096)
        if not chunk:
            break
        seen += chunk
        for line in seen.split(b"\n")[:-1]:
            if line.startswith(ANCHOR_MARKER.encode()) and line[len(ANCHOR_MARKER):].strip().isdigit():
                return int(line[len(ANCHOR_MARKER):])
    raise EOFError("the anchor did not say its process id")


def _answer_anchor(channel: paramiko.Channel, gate: _Gate) -> None:
    """Tell the client its anchor's process id (nothing when there is none: the client's locks then name the
    keeper's connection, as before)."""
    try:
        answer = str(gate.anchor_pid()).encode("ascii")
    except Exception as exc:
        log.info("no anchor on the cluster: %r", exc)
        answer = b""
    _reply(channel, answer)


def _reply(channel: paramiko.Channel, answer: bytes) -> None:
    """Send a channel of our own its whole answer, then its end, and close it once the client has: paramiko
    drops a channel its peer closes before the opener has taken it (under load the answer was lost)."""
    try:
        channel.sendall(answer)
        channel.shutdown_write()
        channel.settimeout(30)
        while channel.recv(_CHUNK):
            pass
    except Exception as exc:  # the client went away meanwhile
        log.info("a client did not take its answer: %r", exc)
    finally:
        _close_quietly(channel)


def _close_quietly(thing: Any) -> None:
    with contextlib.suppress(Exception):
        thing.close()


class Keeper:
    """One cluster's kept connection: the cluster's transport, the loopback listener and the clients on it."""

    def __init__(self, paths: AppPaths, cluster: str, idle_minutes: float, questions: KeeperQuestions,
                 nonce: str = "") -> None:
        from .targets import Session

        self.paths = paths
        self.cluster = cluster
        self.nonce = nonce
        self.idle_seconds = idle_minutes * 60
        self.session = Session(paths, questions, use_kept=False)
        self.target = self.session.target(cluster)
        runner = self.target.runner
        if not isinstance(runner, SSHRunner):
            raise ConnectionFailed(f"{cluster} is this computer: there is no connection to keep.")
        self.runner = runner
        runner.keep_agent = True  # its listings are answered by an agent kept running there (see answer_listing)
        self.token = secrets.token_urlsafe(32)
        self.host_key = paramiko.ECDSAKey.generate()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.5)
        self.clients: list[paramiko.Transport] = []
        self._clients_lock = threading.Lock()
        self.stopping = threading.Event()  # end now
        self.draining = threading.Event()  # end once the commands running through it have ended
        self._listening = True
        self.last_used = time.monotonic()
        self.running = 0  # commands and listings under way through it
        self._running_lock = threading.Lock()

    def login(self) -> KeptRecord:
        """Log in to the cluster (the runner asks its questions through KeeperQuestions) and write the record,
        unless another keeper serves the cluster already (two `cluster connect` at once): the record that serves."""
        self.runner.connect()
        record = KeptRecord(cluster=self.cluster, port=self.listener.getsockname()[1], token=self.token,
                            host_key=f"{self.host_key.get_name()} {self.host_key.get_base64()}", pid=os.getpid(),
                            profile=KeptRecord.profile_digest(self.target.profile), idle_minutes=self.idle_seconds / 60,
                            protocol=PROTOCOL, nonce=self.nonce)
        return claim(self.paths, record)

    def open_upstream(self) -> paramiko.Channel:
        """A session channel on the cluster's connection; the cluster's refusal (MaxSessions) is the client's
        answer at once: the client waits and asks again on its own thread (this one is its connection's, which
        must go on carrying the other commands' input and ends, R15)."""
        self.last_used = time.monotonic()
        return self.runner.open_kept_session()

    def stop(self) -> None:
        """End serving now: the listener and every client's connection close, the record is removed."""
        self.stopping.set()

    def lost(self) -> None:
        """The cluster's connection went under a running command: say why for the clients (see
        kept_connection.why_it_ended), before their connections close, then end."""
        with self._running_lock:
            if not self.stopping.is_set():
                error = self.runner.lost()
                if not self.runner.stopped_answering:  # it ended there: sshd's process for it was ended (T19)
                    error = ConnectionFailed(
                        f"The connection EnvDesk kept to {self.cluster} (`envdesk cluster connect`) was ended on "
                        f"{self.cluster} while running a command: the process serving it there ended.",
                        f"What ran on {self.cluster} may not have finished: check the list. The next command logs "
                        f"in by itself; `envdesk cluster connect {self.cluster}` keeps a connection again.")
                with contextlib.suppress(OSError):
                    say_why_it_ends(self.paths, self.cluster, error)
                self.stop()

    def began(self) -> None:
        """A command or listing starts through it (it counts as use until it ends)."""
        with self._running_lock:
            self.running += 1
        self.last_used = time.monotonic()

    def ended(self) -> None:
        """A command or listing through it ended."""
        with self._running_lock:
            self.running -= 1
        self.last_used = time.monotonic()

    def _answer_stop(self, channel: paramiko.Channel) -> None:
        """Asked to end (`envdesk cluster disconnect`): tell how many commands still run through it, then end as
        OpenSSH's `ssh -O stop` does: no new command from now on, and gone once those have ended."""
        log.info("asked to end (%d commands running)", self.running)
        self._close_listener()  # new commands log in themselves from now on
        self.last_used = time.monotonic()
        self.draining.set()
        _reply(channel, str(self.running).encode("ascii"))

    def serve(self) -> None:
        """Accept clients until stopped, idle too long, or the cluster's connection is gone."""
        try:
            while not self.stopping.is_set():
                if self.running:
                    self.last_used = time.monotonic()
                elif self.draining.is_set() and time.monotonic() - self.last_used > DRAIN_QUIET:
                    break  # an operation's next step follows its last at once: this long a pause is its end
                elif time.monotonic() - self.last_used > self.idle_seconds:
                    log.info("unused for %g minutes: ending", self.idle_seconds / 60)
                    break
                if not self.runner.connected:
                    log.info("the connection to %s ended", self.cluster)
                    self.lost()  # said before the clients' connections close (a command's pump may not have yet)
                    break
                if self.draining.is_set():
                    time.sleep(0.2)
                    continue
                try:
                    sock, _ = self.listener.accept()
                except socket.timeout:
                    continue
                except OSError:
                    if self._listening:
                        raise
                    continue  # closed from another thread (asked to end): draining from now on
                # its handshake on a thread of its own: a silent connection must not hold up the others
                threading.Thread(target=self._welcome, args=(sock,), daemon=True, name="welcome").start()
        finally:
            self.close()

    def _close_listener(self) -> None:
        """No new client from now on: the record goes first, then the port (once)."""
        if self._listening:
            self._listening = False
            forget(self.paths, self.cluster, pid=os.getpid())
            _close_quietly(self.listener)

    def _welcome(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = paramiko.Transport(sock)
        transport.add_server_key(self.host_key)
        gate = _Gate(self)
        try:
            transport.start_server(server=gate)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            log.info("a local client failed its handshake: %s", exc)
            _close_quietly(transport)
            return
        with self._clients_lock:
            self.clients = [client for client in self.clients if client.is_active()] + [transport]
        self._follow(transport, gate)

    def _follow(self, transport: paramiko.Transport, gate: _Gate) -> None:
        """For the life of one client's connection: answer each listing channel it opens (its commands are
        served by _Gate and _pump), and free the cluster's sessions it opened and left unused."""
        opened: dict[int, paramiko.Channel] = {}  # its session channels whose command has not come yet
        try:
            while transport.is_active() and not self.stopping.is_set():
                channel = transport.accept(1.0)  # every channel it opens comes here (paramiko queues them all)
                if channel is not None and channel.get_id() in gate.listings:
                    gate.listings.discard(channel.get_id())
                    threading.Thread(target=self.answer_listing, args=(channel,), daemon=True, name="listing").start()
                elif channel is not None and channel.get_id() in gate.stops:
                    gate.stops.discard(channel.get_id())
                    threading.Thread(target=self._answer_stop, args=(channel,), daemon=True, name="stop").start()
                elif channel is not None and channel.get_id() in gate.anchors:
                    gate.anchors.discard(channel.get_id())
                    threading.Thread(target=_answer_anchor, args=(channel, gate), daemon=True, name="anchor").start()
                elif channel is not None:
                    opened[channel.get_id()] = channel
                opened = {chanid: down for chanid, down in opened.items() if chanid in gate.upstream}
                gate.release_unused({chanid for chanid, down in opened.items() if down.closed})
        finally:
            gate.release_all()

    def answer_listing(self, channel: paramiko.Channel) -> None:
        """Answer one listing with the agent kept running on the cluster (see agent_session): the request, as
        JSON, is all the channel's input; the answer, as JSON, all its output ({"none": true}: ask the usual way).
        The answer holds the whole listing: the client, a new process each time, has none of the earlier ones."""
        from . import agent_session, agent_store

        self.began()
        try:
            request = json.loads(read_to_end(channel))
            agent_store.reread_notes(self.runner)  # its commands may just have stored the agent there
            result = agent_session.ask(self.runner, str(request["agent"]), str(request["settings"]), None,
                                       float(request["timeout"]))
            reply = {"none": True} if result is None else {
                "command": result.command, "exit_status": result.exit_status, "stdout": result.stdout,
                "stderr": result.stderr}
        except Exception as exc:  # the client asks the usual way; the keeper goes on
            log.info("a listing through the kept agent failed: %r", exc)
            reply = {"none": True}
        finally:
            self.ended()
        _reply(channel, json.dumps(reply).encode("utf-8"))

    def close(self) -> None:
        """Remove the record first (no new client comes), then close everything."""
        self._close_listener()
        with self._clients_lock:
            clients = list(self.clients)
        for client in clients:
            _close_quietly(client)
        self.session.close()


def main(argv: list[str]) -> int:
    """Log in, say so on stdout (one JSON line), then serve until idle (argv: the config folder, the cluster, the
    idle minutes, the starter's nonce for the record). Stdout and stdin are the starter's
    pipes (the questions travel on them), closed once the login is done."""
    config_dir, cluster, idle, nonce = argv
    paths = AppPaths(Path(config_dir))
    log_file = record_path(paths, cluster).with_suffix(".log")
    logging.basicConfig(filename=log_file, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)  # a client that exits without a goodbye is no error
    questions = KeeperQuestions(sys.stdin, sys.stdout)
    try:
        keeper = Keeper(paths, cluster, float(idle), questions, nonce)
        record = keeper.login()
    except EnvDeskError as exc:
        questions.tell({"failed": {"kind": exc.__class__.__name__, "error": exc.message, "hint": exc.hint}})
        return 1
    except Exception as exc:  # the starter shows it; never a traceback on its terminal
        log.exception("keeper failed")
        questions.tell({"failed": {"error": f"unexpected error ({exc.__class__.__name__}: {exc})", "hint": ""}})
        return 1
    questions.tell({"ready": {"port": record.port, "pid": record.pid}})
    questions.hang_up()
    if record.nonce != nonce:  # another keeper serves already (two `cluster connect` at once)
        log.info("another keeper serves %s already (process %d): ending", cluster, record.pid)
        keeper.session.close()
        return 0
    keeper.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
