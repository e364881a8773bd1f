"""Copy-and-paste snippets: how to use an environment in a terminal and in a Slurm batch script."""
from __future__ import annotations

import shlex

from .inventory import Environment


def _module_lines(env: Environment) -> list[str]:
    return [f"module load {' '.join(shlex.quote(m) for m in env.modules)}"] if env.modules else []


def _activate_line(env: Environment) -> str:
    if env.kind == "conda":
        return f"conda activate {shlex.quote(env.path)}"
    return f"source {shlex.quote(env.path + '/bin/activate')}"


def terminal_snippet(env: Environment) -> str:
    """The lines to type in a login shell to use the environment."""
    return "\n".join([*_module_lines(env), _activate_line(env)]) + "\n"


def slurm_snippet(env: Environment) -> str:
    """A minimal batch script that runs a Python program inside the environment."""
    lines = ["#!/bin/bash", "#SBATCH --time=01:00:00", "#SBATCH --cpus-per-task=1", "#SBATCH --mem=4G", ""]
    if env.modules:
        lines.append("module purge")
    lines += [*_module_lines(env), _activate_line(env), "", "python my_script.py"]
    return "\n".join(lines) + "\n"
