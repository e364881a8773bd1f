"""Making a module list loadable on a target: prerequisites are found by asking Lmod itself."""
from __future__ import annotations

import re

from ..errors import InvalidInput
from ..runner import join_command
from ..targets import Target
from .common import Progress

_PREREQ = re.compile(r"without these module\(s\) loaded:[ \t]*\n((?:[ \t]+\S[^\n]*\n?)+)", re.I)


def loadable_modules(target: Target, modules: list[str], progress: Progress) -> list[str]:
    """`modules` with any prerequisites Lmod names put in front; refuses modules that do not load."""
    if not modules or not target.runner.has_module_system:
        return list(modules)
    wanted = list(modules)
    for _ in range(4):
        result = target.runner.run_shell(f"module load {join_command(wanted)}", cancel=progress.cancel,
                                         timeout=120, label=f"module load {' '.join(wanted)}")
        text = result.stdout + result.stderr
        missing = _PREREQ.search(text)
        if result.ok and "error" not in text.lower():
            return wanted
        if not missing:
            raise InvalidInput(f"{target.label} could not load the modules {' '.join(wanted)}.",
                               text.strip().splitlines()[-1] if text.strip() else "")
        needed = [m for line in missing.group(1).splitlines() for m in line.split() if m not in wanted]
        if not needed:
            break
        wanted = needed + wanted
    raise InvalidInput(f"{target.label} could not load the modules {' '.join(wanted)}.")
