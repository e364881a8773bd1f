"""Delete an environment: only a folder that is one, inside a known root, never through a link.

The agent's delete action also refuses a folder that holds anything an environment does not consist
of (a project made into a venv in place: its sources, data, .git ...), naming what is there, and
deletes nothing then; links inside are removed as links, never what they point to. The Jupyter kernels
EnvDesk made for the environment go with it (they could no longer start), in the same command.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NamedTuple

from ..agent_client import ACTION_TIMEOUT, call_action, checked, run_agent
from ..errors import Cancelled
from ..inventory import Environment
from ..protocol import DELETING_SUFFIX
from ..targets import Session
from .common import Progress, find_environment, yours_to_change


class Measured(NamedTuple):
    """What deleting an environment would remove: its folder's size and entries, and EnvDesk's kernels for it."""

    bytes: int
    files: int
    kernels: tuple[str, ...] = ()
    kernels_broken: tuple[str, ...] = ()  # other tools' kernels that run it: left, and then unable to start
    complete: bool = True  # False: the count stopped at its time limit, or a folder inside could not be read

    def amount(self) -> str:
        """What the folder holds, in the words a question before deleting uses."""
        from ..sizes import size_text
        counted = f"{size_text(self.bytes)} in {self.files:,} files and folders"
        return counted if self.complete else f"at least {counted}; not all of it could be counted"

    def kernels_going(self) -> str:
        """What a question before deleting says of the kernels that run it ('' when there are none)."""
        said = []
        if self.kernels:
            said.append(f"Its Jupyter {kernels_named(self.kernels)} {'goes' if len(self.kernels) == 1 else 'go'} "
                        "too.")
        if self.kernels_broken:
            said.append(broken_kernels(self.kernels_broken, deleted=False))
        return " ".join(said)


@dataclass(frozen=True)
class Deleted:
    """What a delete removed: the folder, and the Jupyter kernels EnvDesk had made for the environment."""

    path: str
    kernels_removed: tuple[str, ...] = ()
    kernels_left: tuple[str, ...] = ()  # kernels that could not be removed (their folders are named by kernel list)
    kernels_broken: tuple[str, ...] = ()  # other tools' kernels that ran it, left as they are

    @property
    def notes(self) -> list[str]:
        """The sentences a user reads after the delete."""
        said = [f"Deleted {self.path}."]
        if self.kernels_removed:
            one = len(self.kernels_removed) == 1
            said.append(f"Its Jupyter {kernels_named(self.kernels_removed)} {'was' if one else 'were'} removed "
                        f"too, as {'it' if one else 'they'} could no longer start.")
        if self.kernels_broken:
            said.append(broken_kernels(self.kernels_broken, deleted=True))
        if self.kernels_left:
            said.append(f"Its Jupyter {kernels_named(self.kernels_left)} could not be removed: Jupyter kernels "
                        "(in the Cluster menu, or envdesk kernel list) shows where, and removes them.")
        return said


def kernels_named(names: tuple[str, ...]) -> str:
    """'kernel envdesk-a' / 'kernels envdesk-a and envdesk-b', for a sentence about them."""
    if len(names) == 1:
        return f"kernel {names[0]}"
    return f"kernels {', '.join(names[:-1])} and {names[-1]}"


def broken_kernels(names: tuple[str, ...], *, deleted: bool) -> str:
    """The sentence about other tools' kernels that run the environment, before the delete or after it."""
    one = len(names) == 1
    runs = ("ran" if deleted else "runs" if one else "run") + " it and " + ("can" if deleted else "will")
    return (f"The Jupyter {kernels_named(names)}, made by another tool, {runs} no longer start; EnvDesk "
            f"{'left' if deleted else 'leaves'} {'it' if one else 'them'} (Jupyter kernels in the Cluster menu, or "
            f"envdesk kernel remove --force, removes {'it' if one else 'them'}).")


def delete_environment(session: Session, target_name: str, env_ref: str, progress: Progress | None = None, *,
                       found: Environment | None = None) -> Deleted:
    """Remove the environment's folder and the kernels EnvDesk made for it. The agent re-checks everything before
    deleting. `found`: the environment as already read for a question (see to_delete), so it is not read twice."""
    progress = progress or Progress()
    target = session.target(target_name)
    env = yours_to_change(found or find_environment(target, env_ref, progress))
    progress.step(f"Checking that {env.path} may be deleted, and deleting it")  # the agent does both, or neither
    try:
        answer = checked(run_agent(target.runner, {"action": "delete", "path": env.path, "roots": list(target.roots)},
                                   cancel=progress.cancel, timeout=ACTION_TIMEOUT))  # T19: Cancel was ignored
    except Cancelled as exc:
        raise Cancelled(stopped_delete(env.path)) from exc
    return Deleted(answer["path"], tuple(answer.get("kernels_removed") or ()), tuple(answer.get("kernels_left") or ()),
                   tuple(answer.get("kernels_broken") or ()))


def stopped_delete(path: str) -> str:
    """What a user reads when a delete was stopped midway (Cancel, Ctrl-C): which state it can have left."""
    return (f"The delete was stopped. Either it had not begun, and {path} is whole, or it had moved the environment "
            f"aside first ({path}{DELETING_SUFFIX}) and removed part of it: then nothing usable is left at {path}, and "
            f"what is left aside is listed as a delete that stopped: delete {os.path.basename(path)}{DELETING_SUFFIX} "
            "to finish.")


def to_delete(session: Session, target_name: str, env_ref: str,
              progress: Progress | None = None) -> tuple[Environment, Measured]:
    """The environment and what deleting it would remove: what a question before deleting names."""
    env = yours_to_change(find_environment(session.target(target_name), env_ref, progress or Progress()))
    return env, measure_environment(session, target_name, env.path)


def measure_environment(session: Session, target_name: str, path: str, seconds: float = 20.0) -> Measured:
    """What deleting an environment folder would remove, so a confirmation can say so (counted for at most
    `seconds`: a large environment on a slow shared file system is then said to hold at least what was counted)."""
    target = session.target(target_name)
    answer = call_action(target.runner, "measure", path, target.roots, time_budget=seconds)
    return Measured(int(answer["bytes"]), int(answer["files"]), tuple(answer.get("kernels") or ()),
                    tuple(answer.get("kernels_broken") or ()), answer.get("complete") is not False)
