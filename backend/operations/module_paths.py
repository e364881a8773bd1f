"""What an environment's modules put on PYTHONPATH, asked where they are loaded anyway.

A module such as the Alliance's scipy-stack prepends PYTHONPATH with a folder of packages, which the
environment's Python then imports before its own (T20). The agent runs no program, so it cannot load the
modules to see that folder; the commands that already load them (an update's installer, a build's command)
report it, and the agent's finish records it in the environment's notes (protocol.META_PATHS). Every detailed
read of the environment then reads the packages in those folders: no command more for env show, the window's
details, an export or the health check, and nothing more for a listing of every environment.
"""
from __future__ import annotations

from typing import Sequence

from ..protocol import PYTHONPATH_REPORT
from ..runner import join_command


def _report_line(module: str) -> str:
    return f"printf '%s%s\\t%s\\n' {join_command([PYTHONPATH_REPORT, module])} \"${{PYTHONPATH-}}\""


def report_script(modules: Sequence[str]) -> str:
    """bash text, run where `modules` are loaded, that prints PYTHONPATH and then, in a subshell (the command's
    own modules stay loaded), what is left of it as each module is unloaded, the last loaded first: the agent
    (its write part's module_paths) tells from that which module put which folder there. Only the first line
    where PYTHONPATH is empty; nothing without modules."""
    if not modules:
        return ""
    unloads = "; ".join(f"module unload {join_command([module])} >/dev/null 2>&1; {_report_line(module)}"
                        for module in reversed(modules))
    return f'{_report_line("")}; if [ -n "${{PYTHONPATH-}}" ]; then ( {unloads} ); fi'


def read_report(output: str) -> str:
    """The report's lines in a command's output (see report_script), for the finish to record; "" when none."""
    return "".join(line + "\n" for line in output.splitlines() if line.startswith(PYTHONPATH_REPORT))
