"""Runs commands on a cluster over one reused SSH connection (through jump hosts if needed)."""
from __future__ import annotations

import base64
import contextlib
import dataclasses
import errno
import functools
import logging
import os
import re
import select
import socket
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from .ssh_lib import paramiko

from .channel_slots import ChannelSlots
from .config import ClusterProfile
from .errors import (AuthenticationFailed, Cancelled, CommandFailed, ConnectionFailed, EnvDeskError, HostKeyChanged,
                     HostKeyUnknown)
from .hostkeys import HostKeyStore, ServerIdentity
from .ssh_certificates import CERT_SUFFIX
from .probe import PROBE_SCRIPT, parse_probe
from .remote_python import FROM_STDIN, python_finder
from .prompts import Prompter, SecretAnswer, SecretRequest
from .ssh_alive import DEFAULT_COUNT_MAX, DEFAULT_INTERVAL, STOP_CHECK, Watch, answers
from .runner import (KILL_AFTER, OWN_INSTALLS_EXPORT, UTF8_CHARACTERS, CancelToken, CommandResult, Job, LineCallback,
                     LineSplitter, Runner, TrustDecision, join_command, module_load, shown_command)
from .ssh_auth import Authenticator, KeyCache
from .ssh_config import ConnectionPlan, Hop, plan_connection
from .ssh_predial import KeyLookup, Predial, claim, dialling, no_delay, note
from .ssh_transport import LoginTransport

if TYPE_CHECKING:
    from .capabilities import Capabilities

log = logging.getLogger(__name__)

# paramiko logs every failed handshake at ERROR, with a traceback; EnvDesk explains the failure itself, so
# paramiko's records stay out of the terminal and the app unless asked for (`envdesk -v` lowers this again).
if logging.getLogger("paramiko").level == logging.NOTSET:
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)

PID_MARKER = "ENVDESK-PID "
BEGIN_LINE = b"\nENVDESK-BEGIN\n"
"""What every script prints first on stdout and on stderr: what came before it there is the login scripts' (a
~/.bash_profile's greeting, a colour reset with no newline after it that would be glued to the first line of
the command's own), and is left out of what the command printed. Its newline first ends such a line."""
CONNECT_TIMEOUT = 20.0  # to open the TCP connection (or a jump host's channel to the next hop)
BANNER_TIMEOUT = 10.0  # an SSH server greets at once: this long a silence means it is not one, or is stuck
HANDSHAKE_TIMEOUT = 20.0  # key exchange, once it greeted
AUTH_TIMEOUT = 300.0  # a person approving a push notification on their phone
CHANNEL_OPEN_TIMEOUT = 20.0
REFUSALS_TRIED = 6  # refused opens of one channel before giving up (each waits first, see _after_refusal)
REFUSALS_TRIED_THROUGH_KEEPER = 40
"""The same through a kept connection (about a minute): the sessions the cluster refuses are other command lines'
(T17: with MaxSessions 2, commands begun together failed after two seconds), which this process cannot count, so
it waits for one of them to end; the keeper answers at once, on its connection's own thread (R15)."""
# Channels open at once: commands and a kept Stream (the kill of a cancelled command comes on
# top); OpenSSH allows 10 sessions per connection by default (MaxSessions).
MAX_CHANNELS = 8
PID_WAIT = 10.0  # seconds a stopped command has to report its process group

_FIND_PYTHON = python_finder(FROM_STDIN, '"$@"')
# A Python whose standard input stays free for what it is told while it runs: it reads its program from
# descriptor 3, a pipe from bash's own printf of a variable the script sets (the script, like every script,
# travels on standard input). Not a here-document: bash before 5.1 (RHEL 7, 8) writes those to $TMPDIR, and
# fails where that is full.
_FIND_PYTHON_FD3 = python_finder('with os.fdopen(3,"rb") as f:s=f.read()\nexec(s)')


# The only quoted word of every command line EnvDesk sends: it holds none of ' ! \\ or a newline, which
# csh, tcsh or fish treat specially even between single quotes. It reads the script, one base64 line,
# from standard input (bash reads a pipe a byte at a time, so the rest stays for the command).
HIJACKED = 97
"""The status of a shell that read EnvDesk's input as commands: GUARD_LINE, which the shell EnvDesk starts reads
and passes over, stops any other (T17: `exec zsh -l` in a ~/.bash_profile replaced that shell, and zsh ran the
input, a program's lines among it, as shell commands)."""
GUARD_LINE = f"exit {HIJACKED}\n".encode()
INPUT_TAKEN = 96
"""The status of the shell EnvDesk starts when GUARD_LINE is not the first line it reads: a login file read
standard input before it (a `read`, or a program asking a question), and took EnvDesk's input."""
_READ_AND_RUN = (f"'{{ IFS= read -r envdesk_guard && [ \"$envdesk_guard\" = \"exit {HIJACKED}\" ]; }} || exit "
                 f"{INPUT_TAKEN}; IFS= read -r envdesk_line && "
                 "envdesk_script=$(printf %s \"$envdesk_line\" | base64 -d) "
                 "&& unset envdesk_guard envdesk_line && eval \"$envdesk_script\"'")


def command_line(shell: str = "bash --login") -> str:
    """The text of every exec request: `shell` runs the script it reads first on standard input
    (see script_input), whatever the user's login shell is.

    sshd hands that text to the login shell (`$SHELL -c TEXT`), and clusters still have tcsh users: csh
    and tcsh break on a newline or a `!` even inside quotes, fish has a syntax of its own. So the line
    is made of plain words that every shell reads the same way. The script itself is not in it: any user
    of the login node can read every process's arguments (`ps`), and a script may hold credentials.
    """
    return f"exec {shell} -c {_READ_AND_RUN} envdesk"


_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _variable(name: str) -> str:
    if not _VARIABLE_NAME.match(name):
        raise ValueError(f"{name!r} is not an environment variable name")
    return name


def script_input(script: str) -> bytes:
    """What goes first on the standard input of command_line(): GUARD_LINE, then the script as one base64 line."""
    return GUARD_LINE + base64.b64encode(script.encode("utf-8")) + b"\n"


def remote_script(body: str, modules: Sequence[str] = (), *, utf8: bool = True) -> str:
    """Wrap shell text so it runs in a bash login shell (the module system set up, whatever the user's
    own login shell is), in its own process group whose id is reported; with UTF-8 characters (UTF8_CHARACTERS)
    unless `utf8` is false (the agent, which takes file names as they are itself, and must stay small).

    Closing an SSH channel does not stop what it runs, so cancel needs that id to kill the group.
    """
    if modules:
        body = f"{module_load(modules)} && {body}"
    return (f"printf '\\n%s\\n' {_BEGIN_WORD}; printf '\\n%s\\n' {_BEGIN_WORD} >&2; {OWN_INSTALLS_EXPORT}; "
            f"{UTF8_CHARACTERS + '; ' if utf8 else ''}set -m; {{ {body.strip()}\n}} & envdesk_job=$!; set +m; "
            f'echo "{PID_MARKER}$envdesk_job" >&2; wait "$envdesk_job"')


_BEGIN_WORD = BEGIN_LINE.decode().strip()
_LOGIN_ENDED = ("The login scripts on {name} ended the shell (status {status}) before EnvDesk's command began.",
                "Check ~/.bash_profile and ~/.bashrc there (and the files they read): an 'exit', or 'set -e' with a "
                "command that fails, ends every login shell.")
_LOGIN_ENDINGS = {  # how the login scripts stopped EnvDesk's command, by the status of the shell it started
    HIJACKED: ("The login scripts on {name} start another shell, which took EnvDesk's input as its own commands; it "
               "was stopped before any of it ran.",
               "A line such as 'exec zsh -l' in ~/.bash_profile replaces the shell EnvDesk starts: run it only in a "
               "terminal, e.g. inside  if [[ $- == *i* ]]; then ... fi."),
    INPUT_TAKEN: ("The login scripts on {name} read from standard input (a 'read', or a program that asks a "
                  "question), which took EnvDesk's command; none of it ran.",
                  "Ask such questions only in a terminal: in ~/.bash_profile or ~/.bashrc there, put those lines "
                  "inside  if [[ $- == *i* ]]; then ... fi."),
}
_BROKE = "The connection to {} broke while running a command."


class _AfterLogin(LineSplitter):
    """A LineSplitter of a script's output (see remote_script) that takes only what came after BEGIN_LINE; all of
    it when that never came (the login scripts ended the shell first: what they printed is all there is).
    `keep_login`: what the login scripts printed before it is kept too, as lines of their own (stderr: the log
    then shows a greeting that may explain a failure; stdout is data, where it is left out)."""

    def __init__(self, stream: str, callback: LineCallback | None, *, keep_login: bool = False) -> None:
        super().__init__(stream, callback)
        self.before: bytes | None = b""  # None once the script began
        self.keep_login = keep_login

    def feed(self, data: bytes) -> None:
        if self.before is None:
            super().feed(data)
            return
        self.before += data
        at = self.before.find(BEGIN_LINE)
        if at >= 0:
            login, rest, self.before = self.before[:at], self.before[at + len(BEGIN_LINE):], None
            if self.keep_login and login.strip():
                super().feed(login.rstrip(b"\r\n") + b"\n")
            if rest:
                super().feed(rest)

    @property
    def began(self) -> bool:
        return self.before is None

    def finish(self) -> str:
        if self.before:
            super().feed(self.before)
            self.before = b""
        return super().finish()


def _algorithms_for(key_types: Sequence[str]) -> set[str]:
    """Host key algorithms that yield keys of these known_hosts types (an 'ssh-rsa' key signs as rsa-sha2-*)."""
    names = set(key_types)
    if "ssh-rsa" in names:
        names |= {"rsa-sha2-512", "rsa-sha2-256"}
    return names


def _paths(names: Sequence[str] | None) -> list[Path] | None:
    return None if names is None else [Path(name) for name in names]


class _Hops:
    """The open transports of one connection, first jump host to login node."""

    def __init__(self) -> None:
        self.transports: list[paramiko.Transport] = []

    @property
    def target(self) -> paramiko.Transport | None:
        return self.transports[-1] if self.transports else None

    def alive(self) -> bool:
        return bool(self.transports) and all(t.is_active() and t.is_authenticated() for t in self.transports)

    def close(self) -> None:
        transports, self.transports = self.transports, []
        for transport in reversed(transports):
            try:
                transport.close()
            except Exception:  # closing a broken transport may raise anything
                pass


class _Aborted(Exception):
    """The connect in progress was abandoned: close() or a cancel from another thread."""


def _close_quietly(thing: Any) -> None:
    try:
        thing.close()
    except Exception:  # closing something half-open may raise anything
        pass


class _Opening:
    """What one connect has opened so far (sockets, channels, transports), so that another thread can
    abort it at once: abort() closes all of it, and what the connect does next raises."""

    def __init__(self) -> None:
        self.aborted = False
        self._lock = threading.Lock()
        self._things: list[Any] = []

    def add(self, thing: Any) -> Any:
        """Keep `thing` (returned) to close on abort; closed at once, and _Aborted, if already aborted."""
        with self._lock:
            if not self.aborted:
                self._things.append(thing)
                return thing
        _close_quietly(thing)
        raise _Aborted()

    def check(self) -> None:
        if self.aborted:
            raise _Aborted()

    def abort(self) -> None:
        with self._lock:
            self.aborted = True
            things, self._things = self._things, []
        for thing in reversed(things):
            _close_quietly(thing)


_IN_PROGRESS = {errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, getattr(errno, "WSAEWOULDBLOCK", -1)}


def _dial(host: str, port: int, opening: _Opening, timeout: float = CONNECT_TIMEOUT) -> socket.socket:
    """A TCP connection to host:port (each of its addresses in turn), abandoned at once on abort."""
    deadline = time.monotonic() + timeout
    last: OSError = OSError(f"no address found for {host}")
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock = opening.add(socket.socket(family, kind, proto))
        try:
            sock.setblocking(False)
            code = sock.connect_ex(address)
            while code in _IN_PROGRESS:
                opening.check()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout("timed out")
                try:
                    _, writable, failed = select.select([], [sock], [sock], min(0.1, left))
                except (OSError, ValueError) as exc:  # closed by abort() meanwhile
                    opening.check()
                    raise OSError(str(exc)) from exc
                if writable or failed:
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                raise OSError(code, os.strerror(code))
            sock.setblocking(True)
            no_delay(sock)
            return sock
        except OSError as exc:
            last = exc
            _close_quietly(sock)
    raise last


def _keep_alive(sock: socket.socket, keep: bool) -> None:
    """TCPKeepAlive, as ssh sets it (yes by default): the kernel's keepalives on the socket, which tell a peer
    that is gone (after hours, the system's own timing; a stuck path is the server-alive questions', ssh_alive)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1 if keep else 0)
    except OSError as exc:  # a socket that cannot have them works all the same
        log.info("no TCP keepalive on the connection: %s", exc)


def _take(early: Predial, opening: _Opening) -> socket.socket | None:
    """The socket dialled early (see ssh_predial), once it is open; dropped at once on abort. None: given up
    after the dial (see Predial.opened), to be dialled anew."""
    try:
        sock = early.opened(opening.check)
        return opening.add(sock) if sock is not None else None
    except BaseException:
        early.drop()
        raise


class _Wire:
    """The socket (or jump host channel) under a Transport, keeping what the server sent first, so a failed
    handshake can tell a silent server from one that speaks another protocol, or hangs up.

    `greeting`: the line (SSH-2.0-...) already sent on a socket dialled early (see ssh_predial); the
    Transport's first write, that same line, is not sent twice."""

    KEEP = 256

    def __init__(self, sock: Any, greeting: str = "") -> None:
        self.sock = sock
        self.first = b""
        self.hung_up = False
        self.heard = time.monotonic()  # when the server last sent something (see ssh_alive)
        self.greeting = greeting
        self._greeted = f"{greeting}\r\n".encode("ascii") if greeting else b""

    def recv(self, size: int) -> bytes:
        try:
            data = self.sock.recv(size)
        except (socket.timeout, BlockingIOError, InterruptedError):
            raise
        except OSError:
            self.hung_up = True
            raise
        if not data:
            self.hung_up = True
            return data
        self.heard = time.monotonic()
        if len(self.first) < self.KEEP:
            self.first += data[:self.KEEP - len(self.first)]
        return data

    def send(self, data: bytes) -> int:
        if self._greeted:
            greeted, self._greeted = self._greeted, b""
            if not bytes(data).startswith(greeted):
                raise OSError("paramiko did not begin with the greeting sent already")
            return len(greeted)
        try:
            return self.sock.send(data)
        except (socket.timeout, BlockingIOError, InterruptedError):
            raise
        except OSError:
            self.hung_up = True
            raise

    def __getattr__(self, name: str) -> Any:  # settimeout, close, getpeername, _closed...
        return getattr(self.sock, name)

    def speaks_ssh(self) -> bool:
        return any(line.startswith(b"SSH-") for line in self.first.split(b"\n"))

    def first_line(self) -> str:
        """The first line the server sent, printable, cut short."""
        line = next((part for part in self.first.splitlines() if part.strip()), b"")
        text = "".join(c if c.isprintable() else "?" for c in line.decode("utf-8", "replace").strip())
        return text if len(text) <= 60 else text[:57] + "..."


def _handshake_failure(hop: Hop, wire: _Wire, error: BaseException | None, waited: float,
                       answered_before: bool = False) -> ConnectionFailed:
    """Why the SSH handshake with `hop` failed, in plain words: silence, another protocol, a hang-up, or SSH
    that went wrong. `answered_before`: the same route worked earlier in this session, so a silent server is one
    that stopped answering, not a wrong host or port (T19)."""
    where = f"{hop.host} (port {hop.port})"
    if answered_before and not wire.first and not wire.hung_up:
        return ConnectionFailed(f"{where} answered earlier, but has stopped answering: it accepted the connection "
                                f"and said nothing in {waited:.0f} seconds.",
                                "The network between here and the cluster may be stuck (a VPN, a firewall, a network "
                                "change) or the cluster busy: try again in a while.")
    check = "Check the host name and the port of this cluster (SSH servers usually listen on port 22)."
    if wire.speaks_ssh():
        detail = str(error).strip() if error is not None and str(error).strip() else "the connection broke"
        return ConnectionFailed(f"{where} is an SSH server, but the SSH handshake with it failed: {detail}.",
                                "Try again later; if it keeps failing, check that ssh in a terminal can log in.")
    if wire.first:
        return ConnectionFailed(f"{where} answered, but not as an SSH server (it said: {wire.first_line()!r}).",
                                f"{check} Another kind of server listens there.")
    if wire.hung_up:
        return ConnectionFailed(f"{where} accepted the connection, then closed it without answering: "
                                "it is not an SSH server, or it turns this computer away.",
                                f"{check} If they are right, the server may be refusing connections for now.")
    return ConnectionFailed(f"{where} accepted the connection but did not answer at all in {waited:.0f} "
                            "seconds: it is not an SSH server, or it is stuck.",
                            f"{check} A VPN or a firewall may be in the way.")


class NoFreeChannel(Exception):
    """The server refused a channel and the caller would not wait for one (a kept program: see start_python)."""


def _refusal(exc: paramiko.SSHException, transport: paramiko.Transport) -> bool:
    """Whether a failed channel open was the server's refusal (its MaxSessions reached), not a dead connection.
    paramiko keeps one refusal per connection: of two refused at once, one may raise a plain SSHException."""
    return isinstance(exc, paramiko.ChannelException) or (transport.is_active() and "Timeout" not in str(exc))


def _client_transport(wire: _Wire, known: set[str]) -> LoginTransport:
    """A client Transport on `wire`, not started: it sends (and hashes) the greeting the wire sent already, if
    any, asks first for the host key types in `known` (as OpenSSH does, so that a server with several keys
    shows a known one), and gives the server as long as EnvDesk does."""
    transport = LoginTransport(wire)
    if wire.greeting:
        transport.local_version = wire.greeting  # the line it sends first, and hashes in the key exchange
    transport.banner_timeout = BANNER_TIMEOUT
    transport.handshake_timeout = HANDSHAKE_TIMEOUT
    transport.auth_timeout = AUTH_TIMEOUT
    options = transport.get_security_options()
    options.key_types = tuple(sorted(options.key_types, key=lambda name: name not in known))
    transport.certificates_first = any(name.endswith(CERT_SUFFIX) for name in known)
    return transport


class _Exchange:
    """One key exchange: its transport, the wire under it, the host key types it asks for first, when it
    began, and the event paramiko sets once it ends."""

    def __init__(self, wire: _Wire, known: set[str]) -> None:
        self.wire = wire
        self.known = known
        self.transport = _client_transport(wire, known)
        self.done = threading.Event()
        self.started = time.monotonic()

    def start(self) -> None:
        """Begin it on paramiko's thread (this returns at once, so that the wait for it can be abandoned)."""
        self.transport.start_client(event=self.done)

    def close(self) -> None:
        """Give it up, and the connection under it."""
        _close_quietly(self.transport)


def _exchange_on(sock: socket.socket, greeting: str, known: set[str]) -> _Exchange:
    exchange = _Exchange(_Wire(sock, greeting), known)
    try:
        exchange.start()
    except BaseException:
        exchange.close()
        raise
    return exchange


def begin_key_exchanges(hostkeys: HostKeyStore) -> None:
    """Begin the key exchange on each connection ssh_predial dialled early, as soon as it is open: a command
    line reads the cluster's settings and loads the rest of the program while the server answers. The connect
    that claims the connection takes that exchange over (see SSHRunner._handshake)."""
    for dial in dialling():
        lookup = dial.lookup  # the hop's HostKeyAlias and known_hosts files, as its connect looks its key up
        known = _algorithms_for(hostkeys.reading(_paths(lookup.user_files), _paths(lookup.global_files))
                                .known_types(dial.host, dial.port, lookup.key_alias))
        dial.begin_session(functools.partial(_exchange_on, greeting=dial.greeting, known=known))


@contextlib.contextmanager
def _connection_errors(name: str) -> Iterator[None]:
    """What paramiko and the socket raise when a connection breaks, as ConnectionFailed."""
    try:
        yield
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise ConnectionFailed(f"The connection to {name} broke: {exc}.") from exc


INPUT_PIECE = 32768  # bytes of input sent at a time (paramiko's largest packet)


class _ChannelJob(Job):
    """A command on one session channel, in a remote process group whose id it reports first on stderr."""

    def __init__(self, runner: SSHRunner, channel: paramiko.Channel, command: str, label: str,
                 on_line: LineCallback | None) -> None:
        super().__init__(label, on_line)
        self.runner = runner
        self.channel = channel
        self.command = command
        self.pgid: int | None = None
        self.given_up = False  # stopped: the channel is not read any more
        self._stop_asked = 0.0
        self._checked = False  # whether stop() asked if the connection still answers
        def stderr_line(stream: str, line: str) -> None:
            if line.startswith(PID_MARKER) and self.pgid is None and line[len(PID_MARKER):].isdigit():
                self.pgid = int(line[len(PID_MARKER):])
            elif on_line is not None:
                on_line(stream, line)
        self.out: _AfterLogin = _AfterLogin("stdout", on_line)
        self.err: _AfterLogin = _AfterLogin("stderr", stderr_line, keep_login=True)

    def start(self) -> None:
        # Waiting for the exec request's answer costs nothing more than sending the input at once would:
        # OpenSSH opens a session channel with a window of 0 bytes and widens it only once the command runs,
        # in the same flight as that answer.
        with _connection_errors(self.runner.name):
            self.channel.exec_command(self.command)

    def send_input(self, data: bytes | None, stop: Callable[[], bool] | None = None) -> None:
        """Send the input a window at a time, reading what the command prints meanwhile: a command that answers
        as it reads (cat, an installer's log) stops reading once its output is not taken, and a sender waiting
        for it to read then waits for ever (CI: 6 MB through `cat` hung on a busy machine). A command that ended
        without reading it all is left for read() to report (its status and words, not a broken connection), as
        is one being stopped (`stop()`)."""
        channel, sent = self.channel, 0
        with _connection_errors(self.runner.name):
            while data and sent < len(data):
                if channel.closed or (stop is not None and stop()):
                    return
                if channel.send_ready():
                    try:
                        sent += channel.send(data[sent:sent + INPUT_PIECE])
                    except OSError:
                        if channel.closed:  # it ended meanwhile
                            return
                        raise
                elif not self._take_output():
                    if channel.eof_received:  # its pipe stays readable from then on: select would not wait
                        time.sleep(0.01)
                    else:
                        select.select([channel], [], [], 0.01)  # readable wakes it; a wider window is polled
            if not channel.closed:
                channel.shutdown_write()

    def _take_output(self) -> bool:
        """Feed what the command has printed so far to out and err; whether there was any."""
        channel, moved = self.channel, False
        if channel.recv_ready():
            self.out.feed(channel.recv(65536))
            moved = True
        if channel.recv_stderr_ready():
            self.err.feed(channel.recv_stderr(65536))
            moved = True
        return moved

    def read(self) -> bool:
        channel = self.channel
        if self.given_up:
            return True
        with _connection_errors(self.runner.name):
            if (channel.exit_status_ready() and channel.eof_received
                    and not channel.recv_ready() and not channel.recv_stderr_ready()):
                if channel.exit_status < 0 and not self.runner.connected:  # the connection's end, not the command's
                    raise self.runner.lost()  # (a CI run: the drop ended the channel with EOF first)
                return True
            if not self._take_output():
                if channel.closed or not self.runner.connected:
                    # paramiko says "exit status ready" for any closed channel (-1 when the connection
                    # dropped): only a real status, or a channel closed on a live connection, is an end
                    if channel.exit_status >= 0 or self.runner.connected:
                        return True
                    raise self.runner.lost()
                select.select([channel], [], [], 0.02)
        return False

    def stop(self, force: bool = False) -> bool:
        """Kill the remote process group (it escalates to KILL itself), then stop reading the channel.

        The group id comes first on stderr: wait up to PID_WAIT for it, so the kill can land.
        """
        if self.given_up:
            return True
        if not self._checked:  # a stuck connection would hold the stop (and the person waiting) for minutes (T19)
            self._checked = True
            transport = self.channel.get_transport()
            if transport is not None and transport.is_active():
                self.unreached = True  # until it answers: a second Ctrl-C may leave meanwhile
                if not self.runner.answers(transport):
                    log.warning("%s stopped answering: %s may still run there", self.runner.name, self.label)
                    self.given_up = True
                    return True
                self.unreached = False
        now = time.monotonic()
        self._stop_asked = self._stop_asked or now
        if self.pgid is None and not self.channel.exit_status_ready() and now - self._stop_asked <= PID_WAIT:
            return False
        if self.pgid is not None:
            self.unreached = not self.runner._kill_group(self.pgid)
        self.given_up = True
        return True

    def exit_status(self) -> int:
        return self.channel.recv_exit_status()

    def result(self) -> CommandResult:
        result = super().result()
        result.stderr = re.sub(rf"^{PID_MARKER}\d+\n", "", result.stderr, count=1, flags=re.MULTILINE)
        return result

    def close(self) -> None:
        """Close the channel; on a connection already gone (the reason the command ended, said by the error being
        raised) there is nothing to close, and paramiko's own EOFError must not take that error's place."""
        try:
            self.channel.close()
        except (EOFError, OSError, paramiko.SSHException):
            pass


class Stream:
    """A command that keeps running on a channel of its own, told things on its standard input while it runs
    (the app's listing agent, see agent_session); its output is read as it comes, its stderr kept short.

    Its channel counts against the server's MaxSessions as a command's does, so it holds one of the runner's
    MAX_CHANNELS slots from its start to its end (closed, stopped, given up, or its output or connection
    ended), given back once whichever comes first.
    """

    KEEP_ERR = 4096

    def __init__(self, runner: SSHRunner, channel: paramiko.Channel, slot: ChannelSlots) -> None:
        self.runner = runner
        self.channel = channel
        self.transport = channel.get_transport()
        self.pgid: int | None = None
        self.stderr = ""
        self.serving = True  # starting, then answering a request (see new_request, request_done)
        self._err = _AfterLogin("stderr", self._stderr_line, keep_login=True)
        self._before: bytes | None = b""  # its stdout until the script began (see BEGIN_LINE); None after
        self._slot: ChannelSlots | None = slot
        self._slot_lock = threading.Lock()

    def _stderr_line(self, stream: str, line: str) -> None:
        if self.pgid is None and line.startswith(PID_MARKER) and line[len(PID_MARKER):].isdigit():
            self.pgid = int(line[len(PID_MARKER):])
        else:
            self.stderr = (self.stderr + line + "\n")[-self.KEEP_ERR:]

    @property
    def running(self) -> bool:
        """Whether it may still read what it is sent: its output not ended, its connection the runner's own."""
        return (not self.channel.closed and not self.channel.eof_received and self.runner.connected
                and self.runner._hops.target is self.transport)

    @property
    def ended(self) -> bool:
        """Whether its channel is gone (closed, or its connection): its slot can be given back."""
        return self.channel.closed or self.transport is None or not self.transport.is_active()

    def new_request(self) -> None:
        """Start a new request (serving until request_done): its stderr, what came so far belonging to the ones
        before it."""
        self.serving = True
        with contextlib.suppress(Exception):  # a broken channel: receive says so
            self._read_stderr()
        self.stderr = ""

    def request_done(self) -> None:
        """The request is answered: the program waits for the next one (and may be closed for a command's
        channel, see SSHRunner._after_refusal)."""
        self.serving = False

    def send(self, data: bytes) -> None:
        """Write to its standard input."""
        with _connection_errors(self.runner.name):
            self.channel.sendall(data)

    def receive(self, wait: float) -> bytes:
        """What it printed on stdout since last asked, waiting up to `wait` seconds for some (b"": nothing yet);
        ConnectionFailed once its output has ended or its connection broke."""
        channel = self.channel
        with _connection_errors(self.runner.name):
            for attempt in (1, 2):
                self._read_stderr()
                if channel.recv_ready() and self.runner.connected:  # not once the user let the connection go
                    return self._after_login(bytes(channel.recv(65536)))
                if not self.runner.connected:  # its connection went: stopped answering, or broke (T19)
                    self.close()
                    raise self.runner.lost()
                if channel.closed or channel.eof_received:
                    self.close()
                    raise ConnectionFailed(f"The running helper on {self.runner.name} ended.")
                if attempt == 1:
                    select.select([channel], [], [], wait)
        return b""

    def _after_login(self, data: bytes) -> bytes:
        """`data` without what the login scripts printed before the script began (see BEGIN_LINE)."""
        if self._before is None:
            return data
        self._before += data
        at = self._before.find(BEGIN_LINE)
        if at < 0:
            return b""
        rest, self._before = self._before[at + len(BEGIN_LINE):], None
        return rest

    def _read_stderr(self) -> None:
        if self.channel.recv_stderr_ready():
            self._err.feed(self.channel.recv_stderr(65536))

    def stop(self) -> None:
        """Kill it, with all it started (from a channel of its own, as a cancelled command), then close it."""
        with contextlib.suppress(Exception):  # the group id, if it came meanwhile; a broken channel has none
            self._read_stderr()
        if self.pgid is not None and self.running:
            self.runner._kill_group(self.pgid)
        self.close()

    def give_up(self) -> None:
        """It stopped answering: the connection under it looks dead, so drop that (the next command opens a
        new one, as after a channel that cannot be opened), and it."""
        self.runner._drop(self.transport)
        self.close()

    def close(self) -> None:
        """End its standard input (it ends once it sees that) and stop reading it; its slot is given back."""
        _close_quietly(self.channel)
        with self._slot_lock:
            slot, self._slot = self._slot, None
        if slot is not None:
            self.runner._forget_stream(self)
            slot.release()


class _Unattended:
    """The prompter of an early connect: declines every question, noting that one was asked."""

    def __init__(self) -> None:
        self.asked = False

    def ask_secret(self, request: SecretRequest) -> SecretAnswer | None:
        self.asked = True
        return None

    def confirm_host_key(self, cluster: str, identity: ServerIdentity) -> bool:
        self.asked = True
        return False


class _Early:
    """A connect running on a thread of its own (see SSHRunner.connect_early), and how it ended."""

    def __init__(self, thread: threading.Thread) -> None:
        self.thread = thread
        self.prompter = _Unattended()
        self.error: BaseException | None = None

    def run(self, connect: Any) -> None:
        try:
            connect(None, self.prompter)
        except BaseException as exc:  # handed to the connect() that waits for this one
            self.error = exc


class SSHRunner(Runner):
    """One cluster's connection: opened on first use, reused for every command, reopened after a drop."""

    has_module_system = True
    may_lack_packages = True

    def __init__(self, profile: ClusterProfile, prompter: Prompter, hostkeys: HostKeyStore,
                 plan: ConnectionPlan | None = None, local_cache: Path | None = None,
                 kept: Callable[[ClusterProfile], paramiko.Transport | None] | None = None) -> None:
        """`local_cache`: where notes about the cluster are kept between runs (see Runner.local_cache); `kept`: the
        cluster's kept connection, if there is one (see kept_connection.dial_for), used rather than a login."""
        self.profile = profile
        self.kept = kept
        self._kept: paramiko.Transport | None = None  # the keeper's connection, when that is the one in use
        self._anchor: tuple[paramiko.Transport | None, int | None] = (None, None)  # see client_life
        self._anchor_lock = threading.Lock()  # its own: asking for it takes round trips, other commands go on
        self.local_cache = local_cache
        self.name = profile.name
        self.prompter = prompter
        self.hostkeys = hostkeys
        self._plan = plan
        self._hops = _Hops()
        self._lock = threading.RLock()
        self._slots = ChannelSlots(MAX_CHANNELS)
        self._streams: set[Stream] = set()  # those holding a slot (see Stream)
        self._streams_lock = threading.Lock()
        self._keys = KeyCache()
        self._generation = 0  # bumped by close(), so a connect in progress knows it was abandoned
        self._openings: set[_Opening] = set()  # connects in progress, aborted by close()
        self._openings_lock = threading.Lock()
        self._early: _Early | None = None  # a connect begun by connect_early(), not waited for yet
        self._early_lock = threading.Lock()
        self.connections_opened = 0
        self._watches: weakref.WeakKeyDictionary[paramiko.Transport, Watch] = weakref.WeakKeyDictionary()
        self._silent = ""  # why the last connection was given up, when it stopped answering (see _stopped_answering)

    # -- connecting ------------------------------------------------------------------------

    @property
    def plan(self) -> ConnectionPlan:
        if self._plan is None:
            self._plan = plan_connection(self.profile)
        return self._plan

    @property
    def connected(self) -> bool:
        return self._hops.alive()

    def connect(self, cancel: CancelToken | None = None) -> None:
        """Open (or reopen) the connection, asking the prompter whatever the servers ask.

        close() from another thread, or cancelling `cancel`, abandons a connect in progress at once.
        A connect begun by connect_early() is waited for: its error is this connect's, unless it stopped
        because it would have had to ask the person something (then this one asks).
        """
        self._await_early(cancel)
        self._connect(cancel, self.prompter)

    def connect_early(self) -> None:
        """Start opening the connection on a thread of its own, so that the caller does other work while the
        network answers (a command line loads the rest of the program meanwhile). It asks nobody anything:
        what needs a person (a passphrase, a password, a new server's key) is left to the next connect(), which
        then logs in again. Not begun where the profile says that a person answers anyway (password, code)."""
        if self.profile.auth not in ("auto", "key"):
            return
        with self._early_lock:
            if self._early is not None or self._hops.alive():
                return
            early = self._early = _Early(threading.Thread(target=lambda: early.run(self._connect), daemon=True,
                                                          name=f"connect {self.name}"))
        early.thread.start()

    def _await_early(self, cancel: CancelToken | None) -> None:
        with self._early_lock:
            early, self._early = self._early, None
        if early is None:
            return
        while early.thread.is_alive():
            if cancel is not None:
                cancel.raise_if_cancelled()
            early.thread.join(0.05)
        if early.error is not None and not early.prompter.asked:
            raise early.error

    def _connect(self, cancel: CancelToken | None, prompter: Prompter) -> None:
        with self._lock:
            if self._hops.alive():
                return
            if cancel is not None:
                cancel.raise_if_cancelled()
            self._hops.close()
            generation = self._generation
            opened = _Hops()
            kept = self.kept(self.profile) if self.kept is not None else None
            if kept is not None:  # logged in already, by the keeper (see kept_connection)
                self._slots.new_connection()
                opened.transports.append(kept)
                self._hops, self._kept = opened, kept
                return
            self._kept = None
            with self._opening(cancel) as opening:
                try:
                    for hop in (*self.plan.jumps, self.plan.target):
                        opened.transports.append(self._open_hop(hop, opened.target, opening, prompter))
                        if generation != self._generation:
                            raise ConnectionFailed(f"The connection to {self.name} was closed while it was opening.")
                except BaseException:
                    opened.close()
                    raise
            self._slots.new_connection()  # before the connection is seen: its refusals are its own
            self._hops = opened
            self._silent = ""
            self.connections_opened += 1
        self._note_first_hop(opened)

    def _note_first_hop(self, opened: _Hops) -> None:
        """Where this connection went first, with the greeting it sent: the next command line dials it early."""
        first = (*self.plan.jumps, self.plan.target)[0]
        if self.local_cache is not None and opened.transports:
            note(self.local_cache, self.name, first.host, first.port, opened.transports[0].local_version,
                 KeyLookup(first.host_key_alias, first.known_hosts_files, first.global_known_hosts_files))

    @contextlib.contextmanager
    def _opening(self, cancel: CancelToken | None) -> Iterator[_Opening]:
        """A connect in progress that close() (or `cancel`) aborts; what it raises once aborted becomes
        Cancelled (cancel) or ConnectionFailed (close)."""
        opening = _Opening()
        with self._openings_lock:
            self._openings.add(opening)
        unregister = cancel.on_cancel(opening.abort) if cancel is not None else None
        try:
            yield opening
        except Exception as exc:
            if not opening.aborted:
                raise
            if cancel is not None and cancel.cancelled:
                raise Cancelled() from None
            raise ConnectionFailed(f"The connection to {self.name} was closed while it was opening.") from exc
        finally:
            if unregister is not None:
                unregister()
            with self._openings_lock:
                self._openings.discard(opening)

    def _handshake(self, hop: Hop, via: paramiko.Transport | None, opening: _Opening) -> paramiko.Transport:
        """An SSH session with the hop, keys exchanged, nobody logged in; the key types already known
        for the hop are asked for first (as OpenSSH does), so a server with several keys shows a known one.

        Whatever goes wrong is a ConnectionFailed that says whether the server was silent, spoke something
        else than SSH, hung up, or failed the SSH handshake itself.
        """
        known = _algorithms_for(self._hostkeys(hop).known_types(hop.host, hop.port, hop.host_key_alias))
        wire, begun = self._wire_to(hop, via, opening)
        if begun is not None and begun.known != known:  # the known keys changed since it began: begin anew
            begun.close()
            wire, begun = self._wire_to(hop, via, opening)
        exchange = begun or _Exchange(wire, known)
        transport = opening.add(exchange.transport)
        started = exchange.started
        deadline = started + BANNER_TIMEOUT + HANDSHAKE_TIMEOUT + 5  # paramiko gives up before, normally
        error: BaseException | None = None
        try:
            if begun is None:
                exchange.start()
            while not exchange.done.wait(0.05) and time.monotonic() < deadline:
                opening.check()
            opening.check()
            if exchange.done.is_set() and transport.is_active():
                return transport
            error = transport.get_exception()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            error = exc
        except BaseException:
            transport.close()
            raise
        transport.close()
        log.info("SSH handshake with %s port %s failed: %r (the server sent %r)", hop.host, hop.port, error,
                 wire.first[:80])
        raise _handshake_failure(hop, wire, error, time.monotonic() - started,
                                 answered_before=self.connections_opened > 0) from error

    def _open_hop(self, hop: Hop, via: paramiko.Transport | None, opening: _Opening,
                  prompter: Prompter) -> paramiko.Transport:
        transport = self._handshake(hop, via, opening)
        try:
            self._check_identity(hop, transport, prompter)
            method = self.profile.auth if hop == self.plan.target else "auto"
            self._login(hop, transport, method, prompter)
        except BaseException:
            transport.close()
            raise
        self._watch(hop, transport)
        return transport

    def _watch(self, hop: Hop, transport: paramiko.Transport) -> None:
        """Notice when the hop stops answering (see ssh_alive), as ssh does with the hop's ServerAliveInterval and
        ServerAliveCountMax (EnvDesk's defaults where they are not set; an interval of 0 asks never, as in ssh)."""
        wire = transport.sock
        if not isinstance(transport, LoginTransport) or not isinstance(wire, _Wire):
            return
        interval = DEFAULT_INTERVAL if hop.server_alive_interval is None else hop.server_alive_interval
        count_max = DEFAULT_COUNT_MAX if hop.server_alive_count_max is None else hop.server_alive_count_max
        runner = weakref.ref(self)  # the watch's thread must not keep a closed session's runner alive

        def stopped_answering(silent: float) -> None:
            alive = runner()
            if alive is not None:
                alive._stopped_answering(transport, hop, silent)
        watch = Watch(transport, lambda: wire.heard, interval, count_max, stopped_answering, hop.label)
        self._watches[transport] = watch
        if interval > 0:
            watch.start()

    def answers(self, transport: paramiko.Transport | None, wait: float | None = None) -> bool:
        """Whether the hop under `transport` (and every hop before it) still answers, asked now if it has been
        silent (see ssh_alive.answers): a stop is sent only on a connection that answers. One that does not is
        dropped, as one found silent by its watch."""
        hops = list(self._hops.transports)
        if transport is None or transport not in hops:
            return transport is not None and transport.is_active()  # a keeper's connection: its keeper watches
        for hop_transport in hops[:hops.index(transport) + 1]:
            watch = self._watches.get(hop_transport)
            if watch is not None and not answers(watch.transport, watch.heard, STOP_CHECK if wait is None else wait,
                                                 watch=watch):
                self._stopped_answering(hop_transport, None, time.monotonic() - watch.heard())
                return False
        return True

    def _stopped_answering(self, transport: paramiko.Transport, hop: Hop | None, silent: float) -> None:
        """A hop said nothing for `silent` seconds though asked: its connection is dropped (at once: what waits on
        it learns it from the channels closing) and the commands on it fail saying so (see lost_words)."""
        where = f" (through {hop.host})" if hop is not None and hop != self.plan.target else ""
        self._silent = (f"The connection to {self.name}{where} stopped answering: nothing came back for "
                        f"{silent:.0f} seconds, so EnvDesk gave it up.")
        hops = list(self._hops.transports)
        if transport in hops:
            # the first hop first: a jump host's channel under a later hop closes with it, not through it
            for opened in hops:
                _close_quietly(opened)
            self._hops.close()
        else:
            _close_quietly(transport)


    def _login(self, hop: Hop, transport: paramiko.Transport, method: str = "auto",
               prompter: Prompter | None = None) -> None:
        """Log in to the hop; a connection that breaks meanwhile is a ConnectionFailed, not paramiko's error."""
        try:
            Authenticator(self.name, hop, prompter or self.prompter, self._keys, method=method,
                          jump=hop != self.plan.target).authenticate(transport)
        except EnvDeskError:
            raise
        except paramiko.AuthenticationException as exc:
            raise AuthenticationFailed(f"{hop.host} refused the login as {hop.user!r}: {exc}.") from exc
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ConnectionFailed(f"The connection to {hop.host} broke during the login: {exc or 'closed'}.",
                                   "Check your network connection and try again.") from exc

    def _wire_to(self, hop: Hop, via: paramiko.Transport | None,
                 opening: _Opening) -> tuple[_Wire, _Exchange | None]:
        """A connection to the hop: the one dialled early to it if there is one (see ssh_predial), with the key
        exchange begun on it if one was (see begin_key_exchanges); else a new TCP connection, or a jump host's
        channel."""
        if via is None:
            early = claim(hop.host, hop.port)
            try:
                sock = _take(early, opening) if early is not None else None
                if early is not None and sock is not None:
                    _keep_alive(sock, hop.tcp_keep_alive)
                    begun = early.take_begun()
                    if isinstance(begun, _Exchange):
                        return begun.wire, begun
                    return _Wire(sock, early.greeting), None
                sock = _dial(hop.host, hop.port, opening)
                _keep_alive(sock, hop.tcp_keep_alive)
                return _Wire(sock), None
            except OSError as exc:
                raise ConnectionFailed(
                    f"Could not reach {hop.host} on port {hop.port}: {exc.strerror or exc}.",
                    "Check your network connection, the host name and the port (VPN needed?).") from exc
        try:
            return _Wire(opening.add(via.open_channel("direct-tcpip", (hop.host, hop.port), ("127.0.0.1", 0),
                                                      timeout=CONNECT_TIMEOUT))), None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ConnectionFailed(f"The jump host could not reach {hop.host} on port {hop.port}: {exc}.",
                                   "Check the jump host settings of this cluster.") from exc

    def _hostkeys(self, hop: Hop) -> HostKeyStore:
        """The known hosts the hop's key is checked against: its own UserKnownHostsFile and GlobalKnownHostsFile, if
        its SSH configuration sets them, instead of ~/.ssh/known_hosts and the system's files; EnvDesk's own file
        either way."""
        return self.hostkeys.reading(_paths(hop.known_hosts_files), _paths(hop.global_known_hosts_files))

    @staticmethod
    def _identity(hop: Hop, transport: paramiko.Transport) -> ServerIdentity:
        try:
            return ServerIdentity(hop.host, hop.port, transport.get_remote_server_key(), hop.host_key_alias)
        except paramiko.SSHException as exc:  # the connection dropped right after the handshake
            raise ConnectionFailed(f"The connection to {hop.host} broke right after it was opened.",
                                   "Check your network connection and try again.") from exc

    def _check_identity(self, hop: Hop, transport: paramiko.Transport, prompter: Prompter) -> None:
        identity = self._identity(hop, transport)
        hostkeys = self._hostkeys(hop)
        try:
            hostkeys.verify(identity)
        except HostKeyUnknown as unknown:
            identity = dataclasses.replace(identity, authority=unknown.authority)
            if not prompter.confirm_host_key(self.name, identity):
                _name_cluster(unknown, self.name)
                raise
            hostkeys.trust(identity)
        except HostKeyChanged as changed:
            _name_cluster(changed, self.name)
            raise

    def matches(self, profile: ClusterProfile | None) -> bool:
        """Whether this connection was made for exactly `profile` (an edited profile needs a new one)."""
        return profile is not None and profile == self.profile

    def route(self) -> list[str]:
        """The hops to the login node, jump hosts first, as labels."""
        return [hop.label for hop in (*self.plan.jumps, self.plan.target)]

    def route_notes(self) -> list[str]:
        return list(self.plan.notes)

    def trust_route(self, decide: TrustDecision, *, replace: bool = False) -> list[tuple[ServerIdentity, str]]:
        """Each hop's key, checked in order: a jump host is logged in to (to reach the next hop) only
        after its own key is trusted; the login node is not logged in to."""
        outcome: list[tuple[ServerIdentity, str]] = []
        with self._lock, self._opening(None) as opening:
            hops = _Hops()
            try:
                for hop in (*self.plan.jumps, self.plan.target):
                    transport = self._handshake(hop, hops.target, opening)
                    hops.transports.append(transport)
                    identity = self._identity(hop, transport)
                    try:
                        outcome.append((identity, self._trust_one(self._hostkeys(hop), identity, decide, replace)))
                    except HostKeyChanged as changed:  # T24: its hint said 'cluster trust NAME --replace'
                        _name_cluster(changed, self.name)
                        raise
                    if hop != self.plan.target:
                        self._login(hop, transport)
            finally:
                hops.close()
        return outcome

    @staticmethod
    def _trust_one(hostkeys: HostKeyStore, identity: ServerIdentity, decide: TrustDecision, replace: bool) -> str:
        try:
            hostkeys.verify(identity)
            return "already trusted"
        except HostKeyUnknown as unknown:
            identity = dataclasses.replace(identity, authority=unknown.authority)
            if not decide(identity, unknown):
                raise
            hostkeys.trust(identity)
            return "trusted"
        except HostKeyChanged as changed:
            if not (replace and decide(identity, changed)):
                raise
            hostkeys.trust(identity, replace=True)
            return "replaced"

    def close(self) -> None:
        """Drop the connection at once, without waiting for a connect or login in progress (it is abandoned)."""
        self._generation += 1
        with self._early_lock:
            self._early = None  # aborted below: its error is not the next connect's
        with self._openings_lock:
            openings = list(self._openings)
        for opening in openings:
            opening.abort()
        self._hops.close()

    def ask_kept_agent(self, agent: str, settings: str, cancel: CancelToken | None,
                       timeout: float) -> CommandResult | None:
        """A listing answered by the agent a keeper keeps running (see kept_connection.ask_listing), where this
        connection is a keeper's; None otherwise, or when it has no answer (the listing then runs as a command)."""
        if self.keep_agent:
            return None  # this runner keeps its own (the app's)
        self.connect(cancel)
        transport = self._kept
        if transport is None or not self.through_keeper:
            return None
        from .kept_connection import ask_listing
        return ask_listing(transport, agent, settings, cancel, timeout)

    @property
    def through_keeper(self) -> bool:
        """Whether the open connection is a keeper's (see kept_connection): no login of its own."""
        return self._kept is not None and self._hops.target is self._kept

    def client_life(self) -> dict[str, int]:
        """What the agent needs to tie a lock to this client's life (see the agent's take_lock): through a kept
        connection, the anchor the keeper runs for it (every command's sshd is then the keeper's); else nothing
        (the connection's own sshd is what it looks for)."""
        self.connect()
        transport = self._kept
        if transport is None or not self.through_keeper:
            return {}
        with self._anchor_lock:
            if self._anchor[0] is not transport or not self._anchor[1]:  # one that could not be had is asked again
                from .kept_connection import anchor_pid
                self._anchor = (transport, anchor_pid(transport))
            pid = self._anchor[1]
        if not pid:
            log.info("no anchor on %s through its kept connection: locks name the keeper's", self.name)
        return {"anchor_pid": pid} if pid else {}

    def refused(self, exc: paramiko.SSHException) -> bool:
        """Whether `exc`, from open_kept_session, was the cluster refusing a session, its connection alive."""
        transport = self._hops.target
        return transport is not None and _refusal(exc, transport)

    def open_kept_session(self) -> paramiko.Channel:
        """A session channel on the connection as it is, for a keeper's client (see keeper): never a new login,
        which nobody would be there to answer; paramiko's ChannelException when the cluster refuses one."""
        transport = self._hops.target
        if transport is None or not self._hops.alive():
            raise ConnectionFailed(f"The connection to {self.name} is closed.")
        return transport.open_session(timeout=CHANNEL_OPEN_TIMEOUT)

    def _drop(self, transport: paramiko.Transport | None) -> None:
        """Close the connection after a failure, unless another thread has already replaced it."""
        with self._lock:
            if transport is None or self._hops.target is transport:
                self._hops.close()

    # -- channels --------------------------------------------------------------------------

    def _open_channel(self, cancel: CancelToken | None = None, *, slotted: bool = True,
                      wait: bool = True) -> paramiko.Channel:
        """A session channel on a live connection; one reconnect if the connection turned out dead. `slotted`:
        the caller holds one of the channel slots (see ChannelSlots); `wait` false: NoFreeChannel rather than
        waiting for other channels to close after a refusal.

        paramiko's keepalive never notices a dead peer, so a failed or stalled open is the signal. A refused
        open is not: the server answered, and the commands running on it go on (see _after_refusal). Only the
        channel that stops a cancelled command, refused still after waiting, is taken as the old way took every
        refusal: a new connection (its commands cut), where a server allows one session per connection.
        """
        for attempt in (1, 2):
            self.connect(cancel)
            transport = self._hops.target
            try:
                if transport is None:
                    raise paramiko.SSHException("not connected")
                tries = REFUSALS_TRIED_THROUGH_KEEPER if self.through_keeper else REFUSALS_TRIED
                for refusals in range(1, tries + 1):
                    try:
                        return transport.open_session(timeout=CHANNEL_OPEN_TIMEOUT)
                    except paramiko.SSHException as exc:
                        if not _refusal(exc, transport) or (refusals == tries and not slotted):
                            raise
                        if refusals == tries:
                            raise ConnectionFailed(
                                f"{self.name} refused to open a session for EnvDesk "
                                f"({getattr(exc, 'text', '') or exc}).",
                                "The server limits how many commands one connection may run at once (MaxSessions), "
                                "or allows none for this account: try again once other work on it has ended, or "
                                "ask its administrators.") from exc
                        self._after_refusal(exc, refusals, slotted, cancel, wait)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                log.info("connection to %s looks dead (%s); reconnecting", self.name, exc)
                self._drop(transport)
                if attempt == 2:
                    raise ConnectionFailed(f"The connection to {self.name} broke and could not be reopened.",
                                           "Check your network connection and try again.") from exc
        raise AssertionError("unreachable")

    def _after_refusal(self, refusal: paramiko.SSHException, refusals: int, slotted: bool,
                       cancel: CancelToken | None, wait: bool) -> None:
        """Return when a refused session may be asked for again: kept programs that are not answering are closed
        (their sessions are then free), and a slotted caller waits until fewer of this connection's channels are
        open (see ChannelSlots.refused); then a short pause, the server freeing a session only once its process
        has ended."""
        if slotted:
            self._slots.refused()  # counted before the kept programs close: they took sessions too
        with self._streams_lock:
            idle = [stream for stream in self._streams if not stream.serving]
        for stream in idle:
            stream.close()
        if slotted:
            log.info("%s refused a session (%s): now at most %d at once", self.name, refusal, self._slots.limit)
            if not self._slots.room_after_refusal(cancel, wait=wait):
                raise NoFreeChannel(f"{self.name} has no session free")
        if cancel is not None:
            cancel.raise_if_cancelled()
        pause = min(0.1 * refusals, 2.0)
        if cancel is not None:
            cancel.wait(pause)
            cancel.raise_if_cancelled()
        else:
            time.sleep(pause)

    def _take_slot(self, wait: bool = True, leave: int = 0) -> bool:
        """Take one of the MAX_CHANNELS slots (each command and Stream holds one while its channel
        is open), leaving `leave` free; False when `wait` is false and none is. The slots of streams whose
        channel is gone unread (their connection closed under them) are given back first."""
        with self._streams_lock:
            ended = [stream for stream in self._streams if stream.ended]
        for stream in ended:
            stream.close()
        return self._slots.acquire(blocking=wait, leave=leave)

    @contextlib.contextmanager
    def _slot(self) -> Iterator[None]:
        """A slot (see _take_slot), held for the block."""
        self._take_slot()
        try:
            yield
        finally:
            self._slots.release()

    def _forget_stream(self, stream: Stream) -> None:
        with self._streams_lock:
            self._streams.discard(stream)

    def lost(self) -> ConnectionFailed:
        """The error of a command whose connection ended under it: it stopped answering, or broke."""
        if self._silent:
            return ConnectionFailed(self._silent, "The network between here and the cluster may be stuck (a VPN, a "
                                    "firewall, a change of network): check it and try again.")
        if self._kept is not None:  # a keeper's: it says why it cut it
            from .kept_connection import why_it_ended
            said = why_it_ended(self._kept)
            if said is not None:
                return said
        return ConnectionFailed(_BROKE.format(self.name), "Check your network connection and try again.")

    @property
    def stopped_answering(self) -> bool:
        """Whether the last connection was given up because it stopped answering (see lost)."""
        return bool(self._silent)

    def _kill_group(self, pgid: int) -> bool:
        """Stop a remote process group from a fresh channel (closing its own channel does not), and wait
        until it is gone: a rollback must not start while a killed installer still writes. False when the cluster
        could not be reached to stop it (it may still run)."""
        script = (f"kill -TERM -{pgid} 2>/dev/null; i=0; "
                  f"while kill -0 -{pgid} 2>/dev/null; do i=$((i+1)); "
                  f"[ $i -eq {int(KILL_AFTER * 10)} ] && kill -KILL -{pgid} 2>/dev/null; "
                  f"[ $i -ge {int(KILL_AFTER * 20)} ] && break; sleep 0.1; done; true")
        try:
            channel = self._open_channel(slotted=False)
            channel.exec_command(command_line("sh"))
            channel.sendall(script_input(script))
            channel.shutdown_write()
            deadline = time.monotonic() + KILL_AFTER * 2 + 10
            while not channel.exit_status_ready() and time.monotonic() < deadline:
                time.sleep(0.05)
            channel.close()
            return channel.exit_status_ready() and channel.exit_status >= 0
        except Exception as exc:  # best effort: the connection itself may be gone
            log.info("could not stop remote process group %s: %s", pgid, exc)
            return False

    def run(self, argv: Sequence[str], *, modules: Sequence[str] = (), stdin: bytes | None = None,
            on_line: LineCallback | None = None, cancel: CancelToken | None = None,
            timeout: float | None = None, env: Mapping[str, str] | None = None) -> CommandResult:
        """Run one command; `env` is exported for it inside the script, which never travels as an argument."""
        exports = "".join(f"export {join_command([f'{_variable(name)}={value}'])}; "
                          for name, value in (env or {}).items())
        return self.run_shell(f"{exports}exec {join_command(argv)}", modules=modules, stdin=stdin, on_line=on_line,
                              cancel=cancel, timeout=timeout, label=shown_command(argv))

    def run_python(self, source: str, args: Sequence[str], *, timeout: float | None = None,
                   cancel: CancelToken | None = None, utf8: bool = False) -> CommandResult:
        body = f"( set -- {join_command(args)}; {_FIND_PYTHON} )"
        return self.run_shell(body, stdin=source.encode("utf-8"), timeout=timeout, cancel=cancel,
                              label="python - (EnvDesk agent)", utf8=utf8)

    def start_python(self, source: str, cancel: CancelToken | None = None, *, wait: bool = True) -> Stream | None:
        """Start a stdlib-only Python `source` that keeps running, with its standard input free for what it is
        told while it runs (see Stream); in a login shell and a process group of its own, as every command.
        It waits for a free channel slot, or with `wait` false returns None when there is none.

        The program goes on descriptor 3, never as an argument (other users can read those with ps)."""
        if cancel is not None:
            cancel.raise_if_cancelled()
        body = (f"envdesk_program={join_command([source])}; "
                f"( {_FIND_PYTHON_FD3} ) 3< <(printf '%s' \"$envdesk_program\")\n")
        if not self._take_slot(wait, leave=1):  # one slot always left for commands
            return None
        try:
            channel = self._open_channel(cancel, wait=wait)
            try:
                with _connection_errors(self.name):
                    if self.through_keeper:  # the keeper does not wait for it when asked to end
                        from .kept_connection import STREAM_VARIABLE
                        channel.set_environment_variable(STREAM_VARIABLE, "1")
                    channel.exec_command(command_line())
                    channel.sendall(script_input(remote_script(body, utf8=False)))
            except BaseException:
                _close_quietly(channel)
                raise
        except NoFreeChannel:
            self._slots.release()
            return None
        except BaseException:
            self._slots.release()
            raise
        stream = Stream(self, channel, self._slots)
        with self._streams_lock:
            self._streams.add(stream)
        return stream

    def run_shell(self, body: str, *, modules: Sequence[str] = (), stdin: bytes | None = None,
                  on_line: LineCallback | None = None, cancel: CancelToken | None = None,
                  timeout: float | None = None, label: str = "", utf8: bool = True) -> CommandResult:
        """Run bash text built only from quoted pieces (see join_command), in a login shell (`utf8`: see
        remote_script)."""
        if cancel is not None:
            cancel.raise_if_cancelled()
        with self._slot():
            job = _ChannelJob(self, self._open_channel(cancel), command_line(), label or body, on_line)
            script = script_input(remote_script(body, modules, utf8=utf8))
            result = self._execute(job, script + (stdin or b""), cancel, timeout)
        if not (job.out.began or job.err.began):  # see BEGIN_LINE; an 'exit 0' there ends it with status 0 (R15)
            what, hint = _LOGIN_ENDINGS.get(result.exit_status, _LOGIN_ENDED)
            raise CommandFailed(what.format(name=self.name, status=result.exit_status), hint,
                                log=result.stdout + result.stderr)
        return result

    def probe(self, cancel: CancelToken | None = None) -> Capabilities:
        """One command that reports the cluster's tools, Pythons, modules, space and quota."""
        result = self.run_shell(PROBE_SCRIPT, cancel=cancel, timeout=120, label="probe")
        result.check(f"Looking at what {self.name} offers")
        return parse_probe(result.stdout)

    def python_command(self, caps: Capabilities) -> str:
        """python3 as the login shell finds it once the environment's modules are loaded; python where the probe
        found that is the cluster's only Python 3 (PROBE_SCRIPT)."""
        return "python" if caps.tools.get("python3", "").rsplit("/", 1)[-1] == "python" else "python3"

    def marker_environment(self, python: str | None, cancel: CancelToken | None = None) -> dict[str, str]:
        """Linux markers with the cluster's machine type (asked with uname -m: one command)."""
        result = self.run(["uname", "-m"], cancel=cancel, timeout=60)
        machine = result.stdout.strip() if result.ok else ""
        from . import uvproject  # packaging's markers: loaded only for a uv project
        return uvproject.marker_environment(python, machine=machine if machine.replace("_", "").isalnum() else None)


def _name_cluster(error: EnvDeskError, cluster: str) -> None:
    """The command `error`'s hint gives, written for `cluster` (the host-key check knows no cluster's name)."""
    error.hint = error.hint.replace("cluster trust NAME", f"cluster trust {cluster}")
