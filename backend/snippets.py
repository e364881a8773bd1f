"""Copy-and-paste snippets: how to use an environment in a terminal and in a Slurm batch script."""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass

from .errors import NotFound
from .inventory import Environment
from .presets import get_preset
from .targets import Target

CONDA_MANAGERS = ("micromamba", "mamba", "conda")


@dataclass(frozen=True)
class Place:
    """Where the environment is: this computer (and whether it runs Windows) or a cluster, with what its
    batch scripts need (the Slurm account from the profile, and whether the site insists on one)."""

    local: bool = False
    windows: bool = False
    slurm_account: str | None = None
    account_required: bool = False


def place_of(target: Target) -> Place:
    """What the snippets of `target`'s environments need to know about where they are."""
    profile = target.profile
    if profile is None:
        return Place(local=True, windows=os.name == "nt")
    try:
        required = bool(profile.preset) and get_preset(str(profile.preset)).slurm_account_required
    except NotFound:
        required = False
    return Place(slurm_account=profile.slurm_account, account_required=required)


def _module_lines(env: Environment) -> list[str]:
    return [f"module load {' '.join(shlex.quote(m) for m in env.modules)}"] if env.modules else []


def _conda_manager(env: Environment) -> str:
    made_by = (env.created_by or "").lower()
    return next((tool for tool in CONDA_MANAGERS if tool in made_by), "conda")


def _activate_lines(env: Environment, place: Place) -> list[str]:
    if env.kind == "conda":
        manager = _conda_manager(env)
        # `conda activate` alone fails in a shell where `conda init` never ran; the hook needs no init.
        hook = (f'eval "$({manager} shell hook -s bash)"' if manager == "micromamba"
                else f'eval "$({manager} shell.bash hook)"')
        return [hook, f"{manager} activate {shlex.quote(env.path)}"]
    if place.windows:
        return [f'"{env.path}\\Scripts\\activate"']
    return [f"source {shlex.quote(env.path + '/bin/activate')}"]


def terminal_snippet(env: Environment, place: Place = Place()) -> str:
    """The lines to type in a terminal (a login shell on a cluster) to use the environment."""
    return "\n".join([*_module_lines(env), *_activate_lines(env, place)]) + "\n"


def _account_line(place: Place) -> str:
    if place.slurm_account:
        return f"#SBATCH --account={place.slurm_account}"
    if place.account_required:
        return "#SBATCH --account=def-yourpi   # replace with your allocation: this cluster refuses jobs without one"
    return "##SBATCH --account=...   # if your cluster asks for an allocation, put it here and remove one '#'"


def slurm_snippet(env: Environment, place: Place = Place()) -> str | None:
    """A minimal batch script that runs a Python program inside the environment; None on this computer,
    which has no Slurm."""
    if place.local:
        return None
    lines = ["#!/bin/bash", _account_line(place), "#SBATCH --time=01:00:00", "#SBATCH --cpus-per-task=1",
             "#SBATCH --mem=4G", ""]
    if env.modules:
        lines.append("module purge")
    lines += [*_module_lines(env), *_activate_lines(env, place), "", "python my_script.py"]
    return "\n".join(lines) + "\n"
