"""Finding a Python on a cluster for EnvDesk's own stdlib-only programs (the agent, small scripts), in the same
shell line that runs them: no command of its own, no Python started only to ask its version.

Login nodes differ (T26): the Alliance's have no python3 on PATH until `module load python`; CentOS 7 has only
`python`, a Python 2.7, which cannot run the agent; a shell function named python3 may stand where no program is.
"""
from __future__ import annotations

from .runner import join_command

PYTHON_NAMES = ("python3", "python", "/usr/libexec/platform-python")
"""Tried in order; the last is RHEL 8's own Python, there without a python3 on PATH."""
NO_PYTHON_STATUS = 127
NO_PYTHON = "ENVDESK-NO-PYTHON"
"""The line a finder that found no Python 3.6+ ends with on stderr, with the version of a too old one it found
(see no_python_said): its words are made on this computer, so that every call sends as few bytes as it can."""
NEEDS_PYTHON = "EnvDesk needs Python 3.6 or newer"
LOAD_ADVICE = "load a Python module in your ~/.bash_profile (for example: module load python)"
THEN_AGAIN = "Once a new login to the cluster has it (python3 --version says 3.6 or newer), run the command again."
"""The hint of a command that failed for want of a Python (see runner.command_failed)."""

_TOO_OLD = 5
"""The descriptor a Python older than 3.6 writes its version to instead of running the program (one that can run it
closes it first): the shell then tries the next, and the exit status of a program that ran is never mistaken."""
# Written in what Python 2 reads too, so that it gets as far as saying its version.
_VERSION_CHECK = ("import os,sys\nv=sys.version_info\n"
                  f'if v<(3,6):os.write({_TOO_OLD},("%d.%d"%v[:2]).encode());sys.exit(1)\n'
                  f"os.close({_TOO_OLD})\n")
FROM_STDIN = "exec(sys.stdin.buffer.read())"
"""The program comes on standard input (as with `python -`; bytes, so a C locale does not decide how it reads)."""


def python_finder(program: str, args: str = "") -> str:
    """bash text that runs the Python source `program` (given to -c after a version check, with the shell words
    `args` after it) with -S in the first Python 3.6+ found: python3, python, RHEL's platform-python, and where none
    is, again after a quiet `module load python` (Lmod's default Python, as the Alliance's login nodes need). Only
    real programs count (`type -P`, and exec runs no function), never a shell function of that name. With none, it
    ends with a NO_PYTHON line on stderr and NO_PYTHON_STATUS. It ends the shell it runs in, sets short variable
    names and may load a module there: callers run it in a subshell of its own, `( ... )`, which also keeps the
    program out of every process's arguments but Python's. It is sent with every call, so it is kept short.

    -S: the scripts use the standard library only, so Python's start skips site and the .pth files of its
    site-packages (half of its start on a login node)."""
    boot = join_command([_VERSION_CHECK + program])
    names = " ".join(join_command([name]) for name in PYTHON_NAMES)
    return (f"b={boot};o=;f(){{ for p in {names};do type -P $p &>/dev/null||continue;"
            f"{{ s=$(exec $p -S -c \"$b\" \"$@\" {_TOO_OLD}>&1 1>&6 6>&-);}} 6>&1;x=$?;"
            '[ -z "$s" ]&&exit $x;o=${o:-$s};done;};'
            f'f {args};type module &>/dev/null&&module load python &>/dev/null&&f {args};'
            f'echo "{NO_PYTHON} $o" >&2;exit {NO_PYTHON_STATUS}')


def no_python_said(line: str) -> str | None:
    """What a finder's NO_PYTHON line says in words, or None for any other line."""
    if not line.startswith(NO_PYTHON):
        return None
    old = line[len(NO_PYTHON):].strip()
    if old:
        return f"This cluster's python is {old}; {NEEDS_PYTHON}: {LOAD_ADVICE}."
    return (f"EnvDesk found no Python on this cluster (tried {', '.join(PYTHON_NAMES[:2])} and module load python); "
            f"{NEEDS_PYTHON}: {LOAD_ADVICE}.")
