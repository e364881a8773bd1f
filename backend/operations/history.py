"""Snapshots of an environment's packages: list them, and go back to one."""
from __future__ import annotations

import datetime
from dataclasses import dataclass

from ..agent_client import call_action
from ..errors import InvalidInput, NotFound
from ..runner import join_command, left_running
from ..targets import Session
from .common import Progress, Reservation, capabilities, find_environment, runnable, yours_to_change
from .kernels import has_ipykernel
from .python_fit import misfit_notes
from .update import IPYKERNEL_GONE, Held, Updated, restore_packages, roll_back, state_before


@dataclass(frozen=True)
class Snapshot:
    """One saved package set: when (UTC, as recorded on the target), before what, and how many packages."""

    id: str
    time: str
    reason: str
    package_count: int

    def local_time(self) -> str:
        """When it was taken, in this computer's time zone ("22 Nov 2026, 14:05"); the raw stamp if unreadable."""
        try:
            taken = datetime.datetime.strptime(self.time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            return self.time
        local = taken.astimezone()
        return f"{local.day} {local:%b %Y, %H:%M}"

    def label(self) -> str:
        """What it is, for a person: "22 Nov 2026, 14:05 · before adding six · 12 packages"."""
        return f"{self.local_time()} · before {self.reason or 'a change'} · {self.package_count} packages"


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
    env = runnable(yours_to_change(find_environment(target, env_ref, progress)), "reverted")
    try:
        wanted = call_action(target.runner, "snapshot", env.path, target.roots, id=snapshot_id)["snapshot"]
    except (NotFound, InvalidInput) as missing:  # T24, T27: its hint sent the user to 'env revert --help'
        listing = join_command(["envdesk", "env", "history", target_name, env_ref])
        missing.hint = missing.hint or f"The snapshots it has: {listing} (in the app, the environment's Snapshots tab)."
        raise
    caps = capabilities(session, target, progress)
    progress.step("Saving a snapshot of the current packages")
    taken = Snapshot(snapshot_id, str(wanted.get("time") or ""), str(wanted.get("reason") or ""),
                     len(wanted.get("packages") or []))
    reservation = Reservation.take(target, env.path, list(target.roots), snapshot=True, operation="revert",
                                   reason=f"going back to {taken.local_time()} (before {taken.reason or 'a change'})")
    # the requirements recorded then come back with the packages: a later --top-level copy must not bring
    # back what the revert took away
    meta = {"requested": wanted["requested"]} if isinstance(wanted.get("requested"), list) else None
    before, put_back = state_before(target, caps, env, reservation, progress)
    try:
        did = restore_packages(target, caps, env, Held.of(wanted), progress, reservation.token)
        snapshot = reservation.answer["snapshot"]
        after = reservation.finish(meta, snapshot_if_changed=snapshot)
    except BaseException as failure:
        restored = False
        try:
            restored = roll_back(target, caps, env, before, reservation.answer["snapshot"], failure, progress,
                                 reservation.token)
        finally:  # a second Ctrl-C or an unexpected error in the rollback must not leave the lock behind
            if not left_running(failure):  # else what runs there keeps the lock (see roll_back)
                reservation.release(drop_snapshot=reservation.answer["snapshot"] if restored else None,
                                    rollback_failed=not restored)
        raise
    notes = put_back + ([IPYKERNEL_GONE] if has_ipykernel(env) and not has_ipykernel(after) else [])
    notes += misfit_notes(after, before=env)  # undoing a revert is another revert: no snapshot advice
    kept = None if reservation.answer.get("dropped_snapshot") else snapshot
    return Updated(after, kept, notes, done=bool(did or put_back))
