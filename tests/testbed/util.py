"""Small helpers of the test bed: running commands, ports, processes, keys."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"


class CommandError(subprocess.CalledProcessError):
    """CalledProcessError whose message shows the output (pytest prints it)."""

    def __str__(self) -> str:
        return (
            f"{super().__str__()}\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


def run(cmd, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run a command with text output captured; raise CommandError on failure."""
    if "input" not in kwargs:
        kwargs.setdefault("stdin", subprocess.DEVNULL)
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if check and proc.returncode != 0:
        raise CommandError(proc.returncode, cmd, proc.stdout, proc.stderr)
    return proc


def free_ports(count: int, exclude: set[int] | frozenset = frozenset()) -> list[int]:
    """Distinct TCP ports free on 127.0.0.1 right now (bound together, then released)."""
    socks = []
    try:
        ports: list[int] = []
        while len(ports) < count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            port = s.getsockname()[1]
            if port not in exclude:
                ports.append(port)
        return ports
    finally:
        for s in socks:
            s.close()


def pubkey_fields(line: str) -> str:
    """'ssh-ed25519 AAAA... comment' -> 'ssh-ed25519 AAAA...'."""
    parts = line.split()
    return f"{parts[0]} {parts[1]}"


def fingerprint(pubkey_line: str) -> str:
    """OpenSSH's SHA256 fingerprint ('SHA256:...', unpadded base64) of a public key line."""
    blob = base64.b64decode(pubkey_line.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def ssh_keygen(path: Path, passphrase: str = "", comment: str = "", key_type: str = "ed25519") -> None:
    """A new key pair (ed25519 unless told) at path / path.pub (overwrites)."""
    for p in (path, path.with_name(path.name + ".pub")):
        if p.exists():
            p.unlink()
    run(["ssh-keygen", "-q", "-t", key_type, "-N", passphrase, "-C", comment, "-f", str(path)])


# ---------------------------------------------------------------- processes


def _read_stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    # "pid (comm) state ppid ..."; comm may contain spaces and parentheses.
    rest = data[data.rfind(")") + 2:].split()
    return rest  # rest[0] = state, rest[1] = ppid, rest[19] = starttime


def process_table() -> dict[int, dict]:
    """pid -> {'ppid', 'uid', 'state', 'exe', 'start'} for every visible process."""
    table: dict[int, dict] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        stat = _read_stat(pid)
        if stat is None:
            continue
        try:
            uid = os.stat(f"/proc/{pid}").st_uid
        except OSError:
            continue
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            exe = None
        table[pid] = {
            "ppid": int(stat[1]),
            "uid": uid,
            "state": stat[0],
            "exe": exe,
            "start": stat[19],
        }
    return table


def descendants(pid: int, table: dict[int, dict] | None = None) -> list[int]:
    table = process_table() if table is None else table
    children: dict[int, list[int]] = {}
    for p, info in table.items():
        children.setdefault(info["ppid"], []).append(p)
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def start_time(pid: int) -> str | None:
    stat = _read_stat(pid)
    return None if stat is None else stat[19]


def is_alive(pid: int) -> bool:
    stat = _read_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def is_sshd(pid: int, table: dict[int, dict] | None = None) -> bool:
    if table is not None:
        exe = table.get(pid, {}).get("exe")
    else:
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            exe = None
    return exe is not None and os.path.realpath(exe.removesuffix(" (deleted)")) == os.path.realpath(SSHD)


def kill_and_wait(pids, sig: int = signal.SIGKILL, timeout: float = 5.0) -> None:
    """Send sig to each pid, then wait until they are gone (or zombies)."""
    pids = list(pids)
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(is_alive(p) for p in pids):
        time.sleep(0.01)


def pids_of_uid(uid: int) -> list[int]:
    return [p for p, info in process_table().items() if info["uid"] == uid and p != os.getpid()]
