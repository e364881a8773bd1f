"""Faults at a chosen phase of an operation: watch a cluster, and when the phase is reached, break something.

A phase is recognised from outside, the way root sees a login node: a process of the cluster's user whose
arguments name the environment (pip installing into it, `python -m venv` making it), a lock folder
appearing, a process ending, a new SSH session starting. Once the phase is seen, what it depends on is
frozen (SIGSTOP) so the fault lands in that phase and not a moment later, the fault is injected (the
sshd sessions killed, or the client killed), and the frozen processes are let go again (SIGCONT), as a
remote installer goes on after its connection died.
"""

from __future__ import annotations

import os
import pwd
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from .cluster import FakeCluster


def _argv(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return [os.fsdecode(arg) for arg in handle.read().split(b"\0") if arg]
    except OSError:
        return []


def user_processes(uid: int) -> dict[int, list[str]]:
    """{pid: argv} of the live processes of one Unix user."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != uid:
                continue
        except OSError:
            continue
        argv = _argv(int(name))
        if argv:
            found[int(name)] = argv
    return found


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


# ---------------------------------------------------------------- phases
#
# A phase's `reached()` is polled; it returns None until the phase is there, then the pids to freeze.


class Phase:
    """A moment of an operation, recognised from the login node."""

    name = "phase"

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.uid = pwd.getpwnam(cluster.user).pw_uid

    def reached(self) -> list[int] | None:
        raise NotImplementedError


class Running(Phase):
    """A process of the cluster's user runs whose arguments hold each of `words` and mention `path`
    (pip installing into the environment, `python -m venv` making it); it is the one frozen."""

    def __init__(self, cluster: FakeCluster, name: str, path: str, *words: str) -> None:
        super().__init__(cluster)
        self.name, self.path, self.words = name, path.rstrip("/"), words

    def matching(self) -> list[int]:
        return [pid for pid, argv in user_processes(self.uid).items()
                if all(word in argv for word in self.words)
                and any(arg == self.path or arg.startswith(self.path + "/") for arg in argv)]

    def reached(self) -> list[int] | None:
        return self.matching() or None


class Ended(Phase):
    """The process of a Running phase was seen and has ended since (the next step is about to start):
    the cluster's sshd sessions are frozen, so that nothing more passes through them."""

    def __init__(self, running: Running) -> None:
        super().__init__(running.cluster)
        self.running, self.name, self.seen = running, f"after {running.name}", False

    def reached(self) -> list[int] | None:
        if self.running.matching():
            self.seen = True
            return None
        return self.cluster._session_sshd_pids() if self.seen else None


class LockTaken(Phase):
    """The environment's lock folder exists: the sshd sessions are frozen, so that the agent's answer (if
    not already on its way) never reaches the client."""

    name = "lock taken"

    def __init__(self, cluster: FakeCluster, path: str) -> None:
        super().__init__(cluster)
        self.lock = path.rstrip("/") + ".envdesk-lock"

    def reached(self) -> list[int] | None:
        return self.cluster._session_sshd_pids() if os.path.isdir(self.lock) else None


class NewSession(Phase):
    """The cluster's sshd started a command it had not run when the watch began (the first thing an
    operation does there); its sshd sessions are frozen."""

    name = "first command on the destination"

    def __init__(self, cluster: FakeCluster) -> None:
        super().__init__(cluster)
        self.before = len(cluster.session_commands())

    def reached(self) -> list[int] | None:
        return self.cluster._session_sshd_pids() if len(self.cluster.session_commands()) > self.before else None


# ---------------------------------------------------------------- the watch


@dataclass
class Injection:
    """What a watch did: whether the phase was reached, and what was frozen when the fault landed."""

    phase: str
    fired: bool = False
    frozen: list[int] = field(default_factory=list)
    error: BaseException | None = None


class FaultAt:
    """Watch for `phase` in a thread; once there, freeze, run `fault`, thaw (once `hold` is set, if
    given: a frozen installer then outlives its connection until the test lets it go). Use as a context
    manager around the operation; `wait()` blocks until the fault was injected (or the watch gave up)."""

    def __init__(self, phase: Phase, fault: Callable[[], object], timeout: float = 180.0,
                 hold: threading.Event | None = None) -> None:
        self.phase, self.fault, self.timeout, self.hold = phase, fault, timeout, hold
        self.injection = Injection(phase.name)
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"fault at {phase.name}", daemon=True)

    def __enter__(self) -> "FaultAt":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def wait(self, timeout: float | None = None) -> Injection:
        self._done.wait(self.timeout if timeout is None else timeout)
        return self.injection

    def _watch(self) -> None:
        deadline = time.monotonic() + self.timeout
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                pids = self.phase.reached()
                if pids is not None:
                    _signal_all(pids, signal.SIGSTOP)
                    self.injection.frozen = pids
                    try:
                        self.fault()
                        self.injection.fired = True
                        self._done.set()
                        if self.hold is not None:
                            self.hold.wait(self.timeout)
                    finally:
                        _signal_all(pids, signal.SIGCONT)
                    return
                time.sleep(0.002)
        except BaseException as exc:  # reported by the test through the injection
            self.injection.error = exc
        finally:
            self._done.set()


def kill_client(process) -> Callable[[], None]:
    """A fault: SIGKILL the client process (a `subprocess.Popen`), as a crash or `kill -9` would."""

    def fault() -> None:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    return fault


def kill_connection(cluster: FakeCluster) -> Callable[[], None]:
    """A fault: kill the sshd processes serving the cluster's connections, as a dropped network would.

    Returns once they are reaped, not just dead: the agent takes a killed but unreaped owner for a live
    one (test_faults shows it), and that window is not what the fault tests are about.
    """

    def fault() -> None:
        pids = cluster._session_sshd_pids()
        if cluster.kill_sessions() == 0:
            raise AssertionError(f"no open connection to {cluster.name} to kill")
        deadline = time.monotonic() + 60
        while any(os.path.exists(f"/proc/{pid}") for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
    return fault


class StuckPath:
    """A TCP proxy on loopback in front of a cluster's sshd whose path can get stuck: `blackhole()` keeps both
    sockets of every connection open and passes nothing either way (a stuck VPN or NAT, a laptop waking up on
    another network), new connections included (accepted, then silent); `flow()` passes again what waited.

    Nothing is read while stuck, so what either side sends waits in the kernel's buffers, as on a real path that
    holds packets; neither side is told anything (no reset, no end)."""

    def __init__(self, target_port: int) -> None:
        import socket
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.connections = 0
        self._closed = False
        self._sockets: list = []
        self._lock = threading.Lock()
        self._passing = threading.Lock()  # held while a chunk is passed: blackhole() waits for it
        threading.Thread(target=self._accept, daemon=True, name="stuck path").start()

    def blackhole(self) -> None:
        """Stuck from when it returns: a chunk a pipe was passing as it was called has passed (CI: one passed
        after it returned, and the client heard an answer to a question it asked once the path was stuck)."""
        with self._passing:
            self.flowing.clear()

    def flow(self) -> None:
        self.flowing.set()

    def close(self) -> None:
        self._closed = True
        self.flowing.set()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in [self.listener, *sockets]:
            try:
                sock.close()
            except OSError:
                pass

    def _accept(self) -> None:
        import socket
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(client, socket), daemon=True, name="stuck path conn").start()

    def _serve(self, client, socket) -> None:
        self.flowing.wait()  # a connection made while stuck reaches nothing until the path flows again
        try:
            server = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            client.close()
            return
        with self._lock:
            self._sockets += [client, server]
        for source, sink in ((client, server), (server, client)):
            threading.Thread(target=self._pipe, args=(source, sink, socket), daemon=True, name="stuck pipe").start()

    def _pipe(self, source, sink, socket) -> None:
        import select
        try:
            while not self._closed:
                if not self.flowing.is_set():
                    self.flowing.wait(0.1)
                    continue
                readable, _, _ = select.select([source], [], [], 0.1)
                if not readable:
                    continue
                with self._passing:
                    if not self.flowing.is_set():
                        continue
                    data = source.recv(65536)
                    if not data:
                        sink.shutdown(socket.SHUT_WR)
                        return
                    sink.sendall(data)
        except (OSError, ValueError):  # ValueError: the other side closed this socket meanwhile (fd -1)
            try:
                sink.close()
            except OSError:
                pass
