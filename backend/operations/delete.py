"""Delete an environment: only a folder that is one, inside a known root, never through a link.

The agent's delete action also refuses a folder that holds anything an environment does not consist
of (a project made into a venv in place: its sources, data, .git ...), naming what is there, and
deletes nothing then; links inside are removed as links, never what they point to.
"""
from __future__ import annotations

from ..agent_client import call_action
from ..inventory import Environment
from ..targets import Session
from .common import Progress, find_environment


def delete_environment(session: Session, target_name: str, env_ref: str, progress: Progress | None = None, *,
                       found: Environment | None = None) -> str:
    """Remove the environment's folder; returns its path. The agent re-checks everything before deleting.
    `found`: the environment as already read for a question (see to_delete), so it is not read twice."""
    progress = progress or Progress()
    target = session.target(target_name)
    env = found or find_environment(target, env_ref, progress)
    progress.step(f"Checking that {env.path} may be deleted, and deleting it")  # the agent does both, or neither
    return call_action(target.runner, "delete", env.path, target.roots)["path"]


def to_delete(session: Session, target_name: str, env_ref: str,
              progress: Progress | None = None) -> tuple[Environment, int, int]:
    """The environment and the (bytes, files) of its folder: what a question before deleting names."""
    env = find_environment(session.target(target_name), env_ref, progress or Progress())
    return (env, *measure_environment(session, target_name, env.path))


def measure_environment(session: Session, target_name: str, path: str) -> tuple[int, int]:
    """(bytes, files) of an environment folder, so a confirmation can say what will go."""
    target = session.target(target_name)
    answer = call_action(target.runner, "measure", path, target.roots)
    return int(answer["bytes"]), int(answer["files"])
