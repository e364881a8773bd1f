"""An installer that fills a disk right after it installed: "the disk is full exactly when EnvDesk records how
the environment was made", reached every time, however soon the record follows the install (in the same
command, say: issue 11). Or right before it installs, leaving a few bytes: "the disk fills while installing",
reached however fast the install is.

The wrapper is a shell script in the cluster user's home that runs the real uv with its arguments and, after a
`uv pip install` that succeeded, fills the disk holding a given folder with one file at that folder's top
(FILLER_PREFIX and the wrapper's process id) until no byte is left; then it ends as the install did.
"""
from __future__ import annotations

import os
import shlex
from pathlib import Path

FILLER_PREFIX = "filler-after-install-"


def real_uv(cluster) -> str:
    """The absolute path of the uv the cluster's user runs (from its uv module where it has one)."""
    load = f"module load {shlex.quote(cluster.uv_module)} >/dev/null 2>&1 && " if cluster.uv_module else ""
    found = cluster.run_as_user(f"{load}command -v uv").stdout.strip()
    if not found.startswith("/"):
        raise RuntimeError(f"no uv on {cluster.name}: {found!r}")
    return found


def write_filling_uv(cluster, disk: Path, *, before_leaving: int | None = None) -> Path:
    """A uv for `cluster`'s user that fills the disk holding `disk` after each install that succeeded (or, with
    `before_leaving`, before each install, leaving that many bytes free, so the install itself runs out of room
    however fast it is): its path."""
    folder = cluster.home / f"fill-{'before' if before_leaving is not None else 'after'}-install-{disk.name}"
    folder.mkdir(exist_ok=True)
    wrapper = folder / "uv"
    filler = shlex.quote(str(disk)) + "/" + FILLER_PREFIX + "$$"
    uv = shlex.quote(real_uv(cluster))
    installing = 'if [ "$1" = pip ] && [ "$2" = install ]; then'
    wrapper.write_text(
        "#!/bin/sh\n" + (
            f"{installing} cat /dev/zero > {filler} 2>/dev/null; truncate -s -{before_leaving} {filler}; fi\n"
            f'exec {uv} "$@"\n' if before_leaving is not None else
            f'{uv} "$@" || exit $?\n'
            f"{installing} cat /dev/zero > {filler} 2>/dev/null; fi\n"
            "exit 0\n"))
    owner = os.stat(cluster.home)
    for path in (folder, wrapper):
        os.chown(path, owner.st_uid, owner.st_gid)
        path.chmod(0o755)
    return wrapper


def fillers(disk: Path) -> list[Path]:
    """The files a wrapper filled the disk holding `disk` with."""
    return sorted(disk.glob(FILLER_PREFIX + "*"))
