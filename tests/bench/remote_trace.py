"""Watching what runs on the test bed's side of an SSH connection, with the kernel as referee.

`sshd_traced` attaches strace to one test-bed sshd listener (with -f), so every process of every
connection opened afterwards is traced: the login shell, the module system, and the commands a client
runs, each told apart by the program it executed. Nothing of the client's code is assumed.
`parse_trace` turns strace's output into calls tagged with their process and program. `PeakMemory`
reads the high-water mark of resident memory (VmHWM) of chosen processes of a test-bed user, and
`exits_delayed` holds their exits so the last value is read. `tree_cpu` adds up the CPU time of sshds
and everything they ran.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

FILE_OPS = "%file,getdents64"          # what counts as a file-system (metadata) operation
PROCESS_OPS = "clone,clone3,fork,vfork"  # traced only to know which process started which
_LINE = re.compile(r"^(\d+) +(.*)$")
_CALL = re.compile(r"^(\w+)\((.*)$")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
_RESULT = re.compile(r"\) += (-?\d+)")
_EXECVE = re.compile(r'^"([^"]*)", \[(.*?)\](?:\.\.\.)?, ')
_PATH = re.compile(r'^(?:(?:AT_FDCWD|-?\d+)(?:<([^>]*)>)?, )?(?:"([^"]*)")?')


@contextmanager
def sshd_traced(cluster: Any, out: Path, syscalls: str = FILE_OPS, extra: tuple[str, ...] = ()) -> Iterator[Path]:
    """strace -f on a test-bed cluster's sshd listener for the block; connections opened inside it are
    traced to `out`."""
    sshd_pid = cluster.sshd_pid
    if sshd_pid is None:
        raise RuntimeError(f"{cluster.name}'s sshd is not running")
    argv = ["strace", "-f", "-y", "-s", "512", "-e", f"trace={syscalls},{PROCESS_OPS},execve", *extra,
            "-o", str(out), "-p", str(sshd_pid)]
    tracer = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    assert tracer.stderr is not None
    line = tracer.stderr.readline()  # "strace: Process N attached"
    if "attached" not in line:
        raise RuntimeError(f"strace could not attach to sshd {sshd_pid}: {line}{tracer.stderr.read()}")
    threading.Thread(target=tracer.stderr.read, daemon=True).start()
    try:
        yield out
    finally:
        time.sleep(0.5)  # let the closed connection's processes finish
        tracer.send_signal(signal.SIGINT)
        tracer.wait(60)


@dataclass
class Call:
    """One finished system call of a traced process."""

    pid: int
    name: str
    text: str               # its arguments and result, as strace printed them
    program: str = ""       # what the process was running then (argv joined), "" before any exec seen
    path: str = ""          # the file it named (joined with its directory's path for *at calls)
    lineage: tuple[str, ...] = ()  # program, then what its parent ran when it started it, and so on up
    lookup: bool = False    # it looked a path up by name (not a call on an open descriptor, nor a reopen of one)


@dataclass
class Trace:
    """Every call of a traced run, in order, with the program each process ran."""

    calls: list[Call] = field(default_factory=list)

    def select(self, program: Callable[[str], bool]) -> list[Call]:
        """The calls of processes running a program `program` accepts (argv joined with spaces), and of
        the processes those started (uv runs the environment's Python to ask it about itself)."""
        return [call for call in self.calls if any(program(ran) for ran in call.lineage)]

    def programs(self) -> set[str]:
        return {call.program for call in self.calls}


def _argv(text: str) -> str:
    found = _EXECVE.match(text)
    if not found:
        return ""
    return " ".join(re.findall(r'"((?:[^"\\]|\\.)*)"', found.group(2)))


_REOPENED = re.compile(r"\) += \d+<([^>]*)>$")


def _path(name: str, text: str) -> tuple[str, bool]:
    """The file a call is about, and whether it looked that file up by name."""
    if name == "getcwd":
        return "", False
    found = _PATH.match(text)
    if not found:
        return "", False
    folder, named = found.group(1) or "", found.group(2)
    if named is None or named == "":
        return folder, False  # getdents64(3</dir>, ...) or a stat of an open file (AT_EMPTY_PATH)
    if named.startswith("/proc/self/fd/"):
        reopened = _REOPENED.search(text)  # opening a descriptor again: the file it is open on
        return (reopened.group(1) if reopened else named), False
    if named.startswith("/") or not folder:
        return named, True
    return folder.rstrip("/") + "/" + named, True


def parse_trace(path: Path) -> Trace:
    """Read `strace -f` output: each call tagged with its process's program at that moment (a process that
    has not executed anything yet runs its parent's)."""
    pending: dict[int, tuple[str, str]] = {}
    finished: list[tuple[int, str, str]] = []
    for line in path.read_text(errors="replace").splitlines():
        found = _LINE.match(line)
        if not found:
            continue
        pid, rest = int(found.group(1)), found.group(2)
        resumed = _RESUMED.match(rest)
        if resumed:
            name, start = pending.pop(pid, (resumed.group(1), ""))
            finished.append((pid, name, start + resumed.group(2)))
            continue
        call = _CALL.match(rest)
        if not call:
            continue  # signals, exits
        if rest.endswith("<unfinished ...>"):
            pending[pid] = (call.group(1), call.group(2)[:-len("<unfinished ...>")].rstrip())
        else:
            finished.append((pid, call.group(1), call.group(2)))
    parent: dict[int, tuple[int, int]] = {}          # child -> (parent, index of the fork)
    execs: dict[int, list[tuple[int, str]]] = {}     # pid -> [(index, argv)] of successful execs
    for index, (pid, name, text) in enumerate(finished):
        result = _RESULT.search(text)
        if name in ("clone", "clone3", "fork", "vfork") and result and int(result.group(1)) > 0:
            parent[int(result.group(1))] = (pid, index)
        elif name == "execve" and result and result.group(1) == "0":
            execs.setdefault(pid, []).append((index, _argv(text)))

    def lineage_at(pid: int, index: int) -> tuple[str, ...]:
        ran = [argv for at, argv in execs.get(pid, []) if at <= index]
        above = lineage_at(*parent[pid]) if pid in parent else ()
        return (ran[-1], *above) if ran else (above or ("",))

    trace = Trace()
    for index, (pid, name, text) in enumerate(finished):
        if name in ("clone", "clone3", "fork", "vfork"):
            continue
        lineage = lineage_at(pid, index)
        named, lookup = _path(name, text)
        trace.calls.append(Call(pid, name, text, lineage[0], named, lineage, lookup))
    return trace


def is_sshd(program: str) -> bool:
    """sshd's own processes (the listener's children, re-executed or not), or nothing exec'd yet."""
    first = program.split(" ", 1)[0]
    return not program or os.path.basename(first).startswith("sshd")


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as handle:
        return dict(line.split(":", 1) for line in handle if ":" in line)


def _cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        return [part.decode(errors="replace") for part in handle.read().split(b"\0")[:-1]]


class PeakMemory:
    """Polls /proc for processes of one user whose command line `wanted` accepts, keeping the highest
    VmHWM (kB) seen for each. Run the processes under `exits_delayed` so that each is read once more
    after its last allocation."""

    def __init__(self, uid: int, wanted: Callable[[list[str]], bool]) -> None:
        self.uid, self.wanted = uid, wanted
        self.peaks: dict[int, int] = {}
        self.commands: dict[int, list[str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _poll(self) -> None:
        skipped: set[int] = set()
        while not self._stop.is_set():
            for entry in os.listdir("/proc"):
                if not entry.isdigit() or int(entry) in skipped:
                    continue
                pid = int(entry)
                try:
                    status = _status(pid)
                    uid = int(status["Uid"].split()[0])
                    if uid != self.uid:
                        if uid != 0:  # root's may still become the user's (sshd drops privileges)
                            skipped.add(pid)
                        continue
                    command = _cmdline(pid)
                    if not self.wanted(command):
                        continue  # not (yet) the program: it may still exec it
                    peak = int(status["VmHWM"].split()[0])
                except (OSError, KeyError, ValueError):
                    continue
                self.commands[pid] = command
                self.peaks[pid] = max(peak, self.peaks.get(pid, 0))
            time.sleep(0.002)


def tree_cpu(roots: list[int]) -> float:
    """CPU seconds used so far by processes `roots`, their live descendants and every descendant they
    have reaped (user + system, the processes' own and their children's, from /proc/PID/stat)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = sum(int(value) for value in fields[11:15]) / tick
    inside = set(roots)
    grew = True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in inside} - inside
        inside |= found
        grew = bool(found)
    return sum(times.get(pid, 0.0) for pid in inside)


@contextmanager
def exits_delayed(cluster: Any, seconds: float = 0.3) -> Iterator[None]:
    """Every process of connections opened in the block pauses `seconds` when it calls exit_group, its
    memory still mapped (strace's fault injection), so a poller reads its final VmHWM."""
    delay = f"inject=exit_group:delay_enter={int(seconds * 1_000_000)}"
    with sshd_traced(cluster, Path(os.devnull), syscalls="exit_group", extra=("-e", delay)):
        yield
