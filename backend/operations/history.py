"""Snapshots of an environment's packages: list them, and go back to one."""
from __future__ import annotations

from dataclasses import dataclass

from ..agent_client import call_action
from ..targets import Session
from .common import Progress, Reservation, capabilities, find_environment
from .update import Updated, restore_packages, roll_back


@dataclass(frozen=True)
class Snapshot:
    """One saved package set: when, why, and how many packages."""

    id: str
    time: str
    reason: str
    package_count: int


def list_snapshots(session: Session, target_name: str, env_ref: str,
                   progress: Progress | None = None) -> list[Snapshot]:
    """Every snapshot of the environment, oldest first (kept with the environment on the target)."""
    progress = progress or Progress()
    target = session.target(target_name)
    env = find_environment(target, env_ref, progress)
    answer = call_action(target.runner, "history", env.path, target.roots)
    return [Snapshot(str(s["id"]), str(s.get("time") or ""), str(s.get("reason") or ""),
                     int(s.get("package_count") or 0)) for s in answer["snapshots"]]


def revert_environment(session: Session, target_name: str, env_ref: str, snapshot_id: str,
                       progress: Progress | None = None) -> Updated:
    """Put back a snapshot's exact package set (itself snapshotted first, so a revert can be undone)."""
    progress = progress or Progress()
    target = session.target(target_name)
    env = find_environment(target, env_ref, progress)
    wanted = call_action(target.runner, "snapshot", env.path, target.roots, id=snapshot_id)["snapshot"]
    caps = capabilities(session, target, progress)
    progress.step("Saving a snapshot of the current packages")
    reservation = Reservation.take(target, env.path, list(target.roots), snapshot=True, operation="revert",
                                   reason=f"before reverting to {snapshot_id}")
    try:
        restore_packages(target, caps, env, wanted["packages"], progress)
        return Updated(reservation.finish(), reservation.answer["snapshot"])
    except BaseException as failure:
        try:
            roll_back(target, caps, env, reservation.answer["env"]["packages"], reservation.answer["snapshot"],
                      failure, progress)
        finally:  # a second Ctrl-C or an unexpected error in the rollback must not leave the lock behind
            reservation.release()
        raise
