"""Runs commands on a cluster over one reused SSH connection (through jump hosts if needed)."""
from __future__ import annotations

import contextlib
import logging
import re
import select
import socket
import threading
import time
from typing import TYPE_CHECKING, Iterator, Sequence

import paramiko

from . import uvproject
from .config import ClusterProfile
from .errors import CommandFailed, ConnectionFailed, HostKeyChanged, HostKeyUnknown
from .hostkeys import HostKeyStore, ServerIdentity
from .probe import PROBE_SCRIPT, parse_probe
from .prompts import Prompter
from .runner import (CancelToken, CommandResult, Job, LineCallback, LineSplitter, Runner, TrustDecision,
                     join_command)
from .ssh_auth import Authenticator, KeyCache
from .ssh_config import ConnectionPlan, Hop, plan_connection

if TYPE_CHECKING:
    from .capabilities import Capabilities

log = logging.getLogger(__name__)

PID_MARKER = "ENVDESK-PID "
CONNECT_TIMEOUT = 20.0
AUTH_TIMEOUT = 300.0  # a person approving a push notification on their phone
CHANNEL_OPEN_TIMEOUT = 20.0
MAX_CHANNELS = 8
PID_WAIT = 10.0  # OpenSSH allows 10 sessions per connection by default

_FIND_PYTHON = (
    'for envdesk_py in python3 python /usr/libexec/platform-python; do '
    'if command -v "$envdesk_py" >/dev/null 2>&1; then exec "$envdesk_py" - "$@"; fi; done; '
    'echo "EnvDesk found no Python on this cluster (tried python3, python)." >&2; exit 127'
)


def remote_script(body: str, modules: Sequence[str] = ()) -> str:
    """Wrap shell text so it runs in a login shell, in its own process group whose id is reported.

    Closing an SSH channel does not stop what it runs, so cancel needs that id to kill the group.
    """
    if modules:
        body = f"module load {join_command(modules)} && {body}"
    wrapper = (f"set -m; {{ {body.strip()}\n}} & envdesk_job=$!; set +m; "
               f'echo "{PID_MARKER}$envdesk_job" >&2; wait "$envdesk_job"')
    return join_command(["bash", "-lc", wrapper])


def _algorithms_for(key_types: Sequence[str]) -> set[str]:
    """Host key algorithms that yield keys of these known_hosts types (an 'ssh-rsa' key signs as rsa-sha2-*)."""
    names = set(key_types)
    if "ssh-rsa" in names:
        names |= {"rsa-sha2-512", "rsa-sha2-256"}
    return names


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


@contextlib.contextmanager
def _connection_errors(name: str) -> Iterator[None]:
    """What paramiko and the socket raise when a connection breaks, as ConnectionFailed."""
    try:
        yield
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise ConnectionFailed(f"The connection to {name} broke: {exc}.") from exc


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

        def stderr_line(stream: str, line: str) -> None:
            if line.startswith(PID_MARKER) and self.pgid is None and line[len(PID_MARKER):].isdigit():
                self.pgid = int(line[len(PID_MARKER):])
            elif on_line is not None:
                on_line(stream, line)
        self.err = LineSplitter("stderr", stderr_line)

    def start(self) -> None:
        with _connection_errors(self.runner.name):
            self.channel.exec_command(self.command)

    def send_input(self, data: bytes | None) -> None:
        with _connection_errors(self.runner.name):
            if data:
                self.channel.sendall(data)
            self.channel.shutdown_write()

    def read(self) -> bool:
        channel = self.channel
        if self.given_up:
            return True
        with _connection_errors(self.runner.name):
            if (channel.exit_status_ready() and channel.eof_received
                    and not channel.recv_ready() and not channel.recv_stderr_ready()):
                return True
            moved = False
            if channel.recv_ready():
                self.out.feed(channel.recv(65536))
                moved = True
            if channel.recv_stderr_ready():
                self.err.feed(channel.recv_stderr(65536))
                moved = True
            if not moved:
                if channel.closed or not self.runner.connected:
                    if channel.exit_status_ready():
                        return True
                    raise ConnectionFailed(f"The connection to {self.runner.name} broke while running a command.",
                                           "Check your network connection and try again.")
                select.select([channel], [], [], 0.02)
        return False

    def stop(self, force: bool = False) -> bool:
        """Kill the remote process group (it escalates to KILL itself), then stop reading the channel.

        The group id comes first on stderr: wait up to PID_WAIT for it, so the kill can land.
        """
        if self.given_up:
            return True
        now = time.monotonic()
        self._stop_asked = self._stop_asked or now
        if self.pgid is None and not self.channel.exit_status_ready() and now - self._stop_asked <= PID_WAIT:
            return False
        if self.pgid is not None:
            self.runner._kill_group(self.pgid)
        self.given_up = True
        return True

    def exit_status(self) -> int:
        return self.channel.recv_exit_status()

    def result(self) -> CommandResult:
        result = super().result()
        result.stderr = re.sub(rf"^{PID_MARKER}\d+\n", "", result.stderr, count=1, flags=re.MULTILINE)
        return result

    def close(self) -> None:
        self.channel.close()


class SSHRunner(Runner):
    """One cluster's connection: opened on first use, reused for every command, reopened after a drop."""

    has_module_system = True
    may_lack_packages = True

    def __init__(self, profile: ClusterProfile, prompter: Prompter, hostkeys: HostKeyStore,
                 plan: ConnectionPlan | None = None) -> None:
        self.profile = profile
        self.name = profile.name
        self.prompter = prompter
        self.hostkeys = hostkeys
        self._plan = plan
        self._hops = _Hops()
        self._lock = threading.RLock()
        self._slots = threading.BoundedSemaphore(MAX_CHANNELS)
        self._keys = KeyCache()
        self._generation = 0  # bumped by close(), so a connect in progress knows it was abandoned
        self.connections_opened = 0

    # -- connecting ------------------------------------------------------------------------

    @property
    def plan(self) -> ConnectionPlan:
        if self._plan is None:
            self._plan = plan_connection(self.profile)
        return self._plan

    @property
    def connected(self) -> bool:
        return self._hops.alive()

    def connect(self) -> None:
        """Open (or reopen) the connection, asking the prompter whatever the servers ask."""
        with self._lock:
            if self._hops.alive():
                return
            self._hops.close()
            generation = self._generation
            opened = _Hops()
            try:
                for hop in (*self.plan.jumps, self.plan.target):
                    opened.transports.append(self._open_hop(hop, opened.target))
                    if generation != self._generation:
                        raise ConnectionFailed(f"The connection to {self.name} was closed while it was opening.")
            except BaseException:
                opened.close()
                raise
            self._hops = opened
            self.connections_opened += 1

    def _handshake(self, hop: Hop, via: paramiko.Transport | None) -> paramiko.Transport:
        """An SSH session with the hop, keys exchanged, nobody logged in; the key types already known
        for the hop are asked for first (as OpenSSH does), so a server with several keys shows a known one."""
        sock = self._socket_to(hop, via)
        transport = paramiko.Transport(sock)
        transport.banner_timeout = CONNECT_TIMEOUT
        transport.handshake_timeout = CONNECT_TIMEOUT
        transport.auth_timeout = AUTH_TIMEOUT
        options = transport.get_security_options()
        known = _algorithms_for(self.hostkeys.known_types(hop.host, hop.port))
        options.key_types = tuple(sorted(options.key_types, key=lambda name: name not in known))
        try:
            transport.start_client(timeout=CONNECT_TIMEOUT)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            transport.close()
            raise ConnectionFailed(f"{hop.host} (port {hop.port}) did not complete the SSH handshake: {exc}.",
                                   "Check the host name and port; the server may be down.") from exc
        return transport

    def _open_hop(self, hop: Hop, via: paramiko.Transport | None) -> paramiko.Transport:
        transport = self._handshake(hop, via)
        try:
            self._check_identity(hop, transport)
            method = self.profile.auth if hop == self.plan.target else "auto"
            Authenticator(self.name, hop, self.prompter, self._keys, method=method).authenticate(transport)
        except BaseException:
            transport.close()
            raise
        transport.set_keepalive(30)
        return transport

    def _socket_to(self, hop: Hop, via: paramiko.Transport | None):
        if via is None:
            try:
                return socket.create_connection((hop.host, hop.port), timeout=CONNECT_TIMEOUT)
            except OSError as exc:
                raise ConnectionFailed(
                    f"Could not reach {hop.host} on port {hop.port}: {exc.strerror or exc}.",
                    "Check your network connection, the host name and the port (VPN needed?).") from exc
        try:
            return via.open_channel("direct-tcpip", (hop.host, hop.port), ("127.0.0.1", 0),
                                    timeout=CONNECT_TIMEOUT)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ConnectionFailed(f"The jump host could not reach {hop.host} on port {hop.port}: {exc}.",
                                   "Check the jump host settings of this cluster.") from exc

    def _check_identity(self, hop: Hop, transport: paramiko.Transport) -> None:
        identity = ServerIdentity(hop.host, hop.port, transport.get_remote_server_key())
        try:
            self.hostkeys.verify(identity)
        except HostKeyUnknown:
            if not self.prompter.confirm_host_key(self.name, identity):
                raise
            self.hostkeys.trust(identity)

    def matches(self, profile: ClusterProfile | None) -> bool:
        """Whether this connection was made for exactly `profile` (an edited profile needs a new one)."""
        return profile is not None and profile == self.profile

    def route(self) -> list[str]:
        """The hops to the login node, jump hosts first, as labels."""
        return [hop.label for hop in (*self.plan.jumps, self.plan.target)]

    def trust_route(self, decide: TrustDecision, *, replace: bool = False) -> list[tuple[ServerIdentity, str]]:
        """Each hop's key, checked in order: a jump host is logged in to (to reach the next hop) only
        after its own key is trusted; the login node is not logged in to."""
        outcome: list[tuple[ServerIdentity, str]] = []
        with self._lock:
            hops = _Hops()
            try:
                for hop in (*self.plan.jumps, self.plan.target):
                    transport = self._handshake(hop, hops.target)
                    hops.transports.append(transport)
                    identity = ServerIdentity(hop.host, hop.port, transport.get_remote_server_key())
                    outcome.append((identity, self._trust_one(identity, decide, replace)))
                    if hop != self.plan.target:
                        Authenticator(self.name, hop, self.prompter, self._keys).authenticate(transport)
            finally:
                hops.close()
        return outcome

    def _trust_one(self, identity: ServerIdentity, decide: TrustDecision, replace: bool) -> str:
        try:
            self.hostkeys.verify(identity)
            return "already trusted"
        except HostKeyUnknown as unknown:
            if not decide(identity, unknown):
                raise
            self.hostkeys.trust(identity)
            return "trusted"
        except HostKeyChanged as changed:
            if not (replace and decide(identity, changed)):
                raise
            self.hostkeys.trust(identity, replace=True)
            return "replaced"

    def close(self) -> None:
        """Drop the connection at once, without waiting for a connect or login in progress (it is abandoned)."""
        self._generation += 1
        self._hops.close()

    def _drop(self, transport: paramiko.Transport | None) -> None:
        """Close the connection after a failure, unless another thread has already replaced it."""
        with self._lock:
            if transport is None or self._hops.target is transport:
                self._hops.close()

    # -- channels --------------------------------------------------------------------------

    def _open_channel(self) -> paramiko.Channel:
        """A session channel on a live connection; one reconnect if the connection turned out dead.

        paramiko's keepalive never notices a dead peer, so a failed or stalled open is the signal.
        """
        for attempt in (1, 2):
            self.connect()
            transport = self._hops.target
            try:
                if transport is None:
                    raise paramiko.SSHException("not connected")
                return transport.open_session(timeout=CHANNEL_OPEN_TIMEOUT)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                log.info("connection to %s looks dead (%s); reconnecting", self.name, exc)
                self._drop(transport)
                if attempt == 2:
                    raise ConnectionFailed(f"The connection to {self.name} broke and could not be reopened.",
                                           "Check your network connection and try again.") from exc
        raise AssertionError("unreachable")

    def _kill_group(self, pgid: int) -> None:
        """Stop a remote process group from a fresh channel (closing its own channel does not)."""
        script = (f"kill -TERM -{pgid} 2>/dev/null; "
                  f"(sleep 3; kill -KILL -{pgid} 2>/dev/null) >/dev/null 2>&1 </dev/null & true")
        try:
            channel = self._open_channel()
            channel.exec_command(join_command(["sh", "-c", script]))
            deadline = time.monotonic() + 10
            while not channel.exit_status_ready() and time.monotonic() < deadline:
                time.sleep(0.05)
            channel.close()
        except Exception as exc:  # best effort: the connection itself may be gone
            log.info("could not stop remote process group %s: %s", pgid, exc)

    def run(self, argv: Sequence[str], *, modules: Sequence[str] = (), stdin: bytes | None = None,
            on_line: LineCallback | None = None, cancel: CancelToken | None = None,
            timeout: float | None = None) -> CommandResult:
        return self.run_shell(f"exec {join_command(argv)}", modules=modules, stdin=stdin, on_line=on_line,
                              cancel=cancel, timeout=timeout, label=join_command(argv))

    def run_python(self, source: str, args: Sequence[str], *, timeout: float | None = None,
                   cancel: CancelToken | None = None) -> CommandResult:
        body = f"bash -c {join_command([_FIND_PYTHON])} envdesk-python {join_command(args)}"
        return self.run_shell(body, stdin=source.encode("utf-8"), timeout=timeout, cancel=cancel,
                              label="python - (EnvDesk agent)")

    def write_file(self, path: str, data: bytes) -> None:
        """Write over SFTP on the same connection (no command, no shell)."""
        for attempt in (1, 2):
            self.connect()
            try:
                with self._slots:
                    transport = self._hops.target
                    sftp = paramiko.SFTPClient.from_transport(transport) if transport is not None else None
                    if sftp is None:
                        raise paramiko.SSHException("not connected")
                    try:
                        with sftp.open(path, "wb") as handle:
                            handle.write(data)
                    finally:
                        sftp.close()
                return
            except (EOFError, paramiko.SSHException) as exc:
                self._drop(self._hops.target)
                if attempt == 2:
                    raise ConnectionFailed(f"Could not write {path} on {self.name}: {exc}.") from exc
            except OSError as exc:
                raise CommandFailed(f"Could not write {path} on {self.name}: {exc.strerror or exc}.") from exc

    def run_shell(self, body: str, *, modules: Sequence[str] = (), stdin: bytes | None = None,
                  on_line: LineCallback | None = None, cancel: CancelToken | None = None,
                  timeout: float | None = None, label: str = "") -> CommandResult:
        """Run bash text built only from quoted pieces (see join_command), in a login shell."""
        if cancel is not None:
            cancel.raise_if_cancelled()
        with self._slots:
            job = _ChannelJob(self, self._open_channel(), remote_script(body, modules), label or body, on_line)
            return self._execute(job, stdin, cancel, timeout)

    def probe(self, cancel: CancelToken | None = None) -> Capabilities:
        """One command that reports the cluster's tools, Pythons, modules, space and quota."""
        result = self.run_shell(PROBE_SCRIPT, cancel=cancel, timeout=120, label="probe")
        result.check(f"Looking at what {self.name} offers")
        return parse_probe(result.stdout)

    def python_command(self, caps: Capabilities) -> str:
        """python3 as the login shell finds it once the environment's modules are loaded."""
        return "python3"

    def marker_environment(self, python: str | None, cancel: CancelToken | None = None) -> dict[str, str]:
        """Linux markers with the cluster's machine type (asked with uname -m: one command)."""
        result = self.run(["uname", "-m"], cancel=cancel, timeout=60)
        machine = result.stdout.strip() if result.ok else ""
        return uvproject.marker_environment(python, machine=machine if machine.replace("_", "").isalnum() else None)
