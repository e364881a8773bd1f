"""Child processes that start the way an installed EnvDesk starts: from compiled bytecode.

A user's install has its .pyc files (pip compiles them); a development shell may set
PYTHONDONTWRITEBYTECODE, and then every start compiles EnvDesk's sources again, which is a cost users
never pay. The benchmarks' child processes keep their bytecode in a folder of their own instead
(PYTHONPYCACHEPREFIX, so nothing is written into the work tree), warmed by one untimed run first.
"""
from __future__ import annotations

import os
from pathlib import Path


def compiled_environment(folder: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) with bytecode written to and read from `folder`."""
    env = dict(os.environ if base is None else base)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(folder)
    return env
