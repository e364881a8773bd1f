"""Unix accounts of the fake clusters' users."""

from __future__ import annotations

import os
import pwd
import time
from pathlib import Path

from . import util

# useradd/usermod/userdel exit with these when /etc/passwd or /etc/shadow is
# locked by another process (another test bed starting at the same time).
_LOCKED_CODES = {1, 10}


def _retrying(cmd: list[str], attempts: int = 50) -> None:
    for i in range(attempts):
        proc = util.run(cmd, check=False)
        if proc.returncode == 0:
            return
        if proc.returncode in _LOCKED_CODES and "lock" in proc.stderr.lower() and i < attempts - 1:
            time.sleep(0.1)
            continue
        raise util.CommandError(proc.returncode, cmd, proc.stdout, proc.stderr)


def exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def ensure_user(name: str, home: Path, password_hash: str = "*",
                shell: str = "/bin/bash") -> pwd.struct_passwd:
    """Create the user (or reuse a leftover one) with home and password hash.

    password_hash "*" = no password but not locked: sshd refuses locked
    accounts ("!" in /etc/shadow, the default for new ones) even for keys.
    shell is the login shell, which sshd runs every command through.
    """
    if exists(name):
        kill_processes(name)
        _retrying(["usermod", "-d", str(home), "-s", shell, "-p", password_hash, name])
    else:
        _retrying(["useradd", "-M", "-U", "-d", str(home), "-s", shell,
                   "-p", password_hash, name])
    info = pwd.getpwnam(name)
    home.mkdir(parents=True, exist_ok=True)
    os.chown(home, info.pw_uid, info.pw_gid)
    home.chmod(0o700)
    return info


def kill_processes(name: str) -> None:
    """Kill every process of this (test bed only) user."""
    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        return
    pids = util.pids_of_uid(uid)
    if pids:
        util.kill_and_wait(pids)


def delete_user(name: str) -> None:
    if not exists(name):
        return
    kill_processes(name)
    _retrying(["userdel", "-f", name])
