"""Which installed packages lack a package they require, or have it at a version they do not accept.

The answer is the ecosystem's own: the environment's own `pip check`, which sees what its Python sees (the
system's packages, PYTHONPATH), else `uv pip check` where uv is on the path, for environments without pip
that do not see the system's packages (uv's check reads only the environment's own folder); others are not
checked. Every environment is
checked in one shell command, each after loading its own modules; their answers are read back here in
plain words, whichever of the two tools gave them.
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from typing import Sequence

from ..errors import CommandFailed
from ..inventory import Environment
from ..protocol import PYTHONPATH_REPORT
from ..runner import LineCallback, Runner, join_command, module_load
from .common import Progress

MARKER = "ENVDESK-REQUIREMENTS "
"""What the check prints before each environment's answer (then the environment's number)."""
_NOT_CHECKED = "ENVDESK-NOT-CHECKED"

_PATTERNS = (
    # pip check
    re.compile(r"^(?P<who>\S+) \S+ requires (?P<need>.+), which is not installed\.$"),
    re.compile(r"^(?P<who>\S+) \S+ has requirement (?P<need>.+), but you have \S+ (?P<have>\S+)\.$"),
    # uv pip check
    re.compile(r"^The package `(?P<who>[^`]+)` requires `(?P<need>[^`]+)`, but it's not installed$"),
    re.compile(r"^The package `(?P<who>[^`]+)` requires `(?P<need>[^`]+)`, but `(?P<have>[^`]+)` is installed$"),
)
_OTHER_PROBLEM = re.compile(r"^The package `[^`]+` |^\S+ \S+ is not supported on this platform$")


@dataclass(frozen=True)
class Unmet:
    """One requirement an installed package states that the environment does not meet."""

    package: str
    needs: str
    installed: str | None  # the version there, None when it is not installed at all
    text: str

    @property
    def missing(self) -> bool:
        return self.installed is None


def hiding_markers(on_line: LineCallback | None) -> LineCallback | None:
    """`on_line` without the lines the check prints for itself (MARKER, not checked), and those of the report of
    what the modules put on PYTHONPATH that may run beside it (module_paths), which are not the user's to read (a
    user trial saw 'ENVDESK-REQUIREMENTS 0' among pip's lines)."""
    if on_line is None:
        return None
    shown = on_line
    hidden = (MARKER, _NOT_CHECKED, PYTHONPATH_REPORT)
    return lambda stream, line: None if line.startswith(hidden) else shown(stream, line)


def left_broken(unmet: Sequence[Unmet], what: str = "The change", undo: bool = True) -> list[str]:
    """The note saying which packages `what` left without what they need, in pip check's terms (M4: an update
    to numpy 2 with a pandas that needs numpy<2 was reported as plain success); none when nothing is. `undo`:
    a snapshot was saved before it."""
    if not unmet:
        return []
    one = len(unmet) == 1
    return [f"{what} left {'a package' if one else 'packages'} without what {'it needs' if one else 'they need'}: "
            f"{'; '.join(u.text for u in unmet)} (pip check finds the same). Importing {'it' if one else 'them'} may "
            "fail: "
            "install the versions asked for (Update, or envdesk env update --add 'NAME<VERSION')"
            + (", or undo the change from the snapshot saved before it." if undo else ".")]


def check_script(envs: Sequence[Environment], python_of: dict[str, str], with_modules: bool) -> str:
    """bash text that checks each environment (by its Python, `python_of[path]`) in a subshell of its own."""
    parts = []
    for number, env in enumerate(envs):
        python = join_command([python_of[env.path]])
        load = f"{module_load(env.modules)} >/dev/null 2>&1 && " if with_modules and env.modules else ""
        # uv may be a module of its own (alpha's 'uv'), loaded by the builds but not by the environment's modules
        find_uv = "command -v uv || { module load uv && command -v uv; }" if with_modules else "command -v uv"
        uv = "" if env.system_site_packages else (f"elif {{ {find_uv}; }} >/dev/null 2>&1; then "
                                                  f"uv pip check --python {python} 2>&1; ")
        parts.append(f"echo '{MARKER}{number}'; ( {load}if {python} -c 'import pip' >/dev/null 2>&1; then "
                     f"{python} -m pip check 2>&1; {uv}else echo {_NOT_CHECKED}; fi )")
    return "\n".join(parts)


def read_answers(output: str, envs: Sequence[Environment]) -> dict[str, list[Unmet]]:
    """The unmet requirements of each environment checked (by path); environments that could not be
    checked (no uv, no pip) are left out."""
    blocks: dict[int, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith(MARKER) and line[len(MARKER):].isdigit():
            current = blocks.setdefault(int(line[len(MARKER):]), [])
        elif current is not None:
            current.append(line.strip())
    found: dict[str, list[Unmet]] = {}
    for number, lines in blocks.items():
        if number < len(envs) and _NOT_CHECKED not in lines:
            found[envs[number].path] = _unmets(lines)
    return found


def _unmets(lines: Sequence[str]) -> list[Unmet]:
    return [unmet for unmet in map(_unmet, (line.strip() for line in lines)) if unmet is not None]


def _unmet(line: str) -> Unmet | None:
    for pattern in _PATTERNS:
        match = pattern.match(line)
        if match:
            have = match.groupdict().get("have")
            who, need = match["who"], match["need"]
            said = (f"{who} needs {need}, which is not installed" if have is None
                    else f"{who} needs {need}, but {have} is installed")
            return Unmet(who, need, have, said)
    if _OTHER_PROBLEM.match(line):
        return Unmet("", "", "", line.replace("`", ""))
    return None


def check_here(runner: Runner, env: Environment, python: str, progress: Progress) -> list[Unmet]:
    """One environment of this computer checked by its own command (where there is no shell to run them all);
    none found where neither its pip nor uv could check it."""
    uv = shutil.which("uv")
    try:
        result = runner.run([python, "-m", "pip", "check"], cancel=progress.cancel, timeout=300)
        if "No module named pip" in result.stderr and uv and not env.system_site_packages:
            result = runner.run([uv, "pip", "check", "--python", python], cancel=progress.cancel, timeout=300)
    except CommandFailed:  # its Python could not be started: the listing says what is wrong with it
        return []
    return _unmets((result.stdout + "\n" + result.stderr).splitlines())
