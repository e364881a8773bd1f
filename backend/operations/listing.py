"""List a target's environments (and show one of them): the read-only verbs, one agent run each."""
from __future__ import annotations

from dataclasses import dataclass

from ..inventory import Environment, Inventory, read_inventory
from ..targets import Session
from .common import Progress, find_environment


@dataclass(frozen=True)
class Listing:
    """What one target has: its environments, where EnvDesk looked, and what went wrong along the way."""

    target: str
    label: str
    roots: tuple[str, ...]
    inventory: Inventory

    @property
    def environments(self) -> tuple[Environment, ...]:
        return self.inventory.environments

    def problems(self) -> list[str]:
        """Folders that could not be read and environments that are broken, one line each."""
        denied = self.inventory.denied_note()
        return [*([denied] if denied else []), *self.inventory.errors,
                *(f"{env.name}: {env.error}" for env in self.inventory.environments if env.error)]


def list_environments(session: Session, target_name: str, progress: Progress | None = None) -> Listing:
    """Every environment of the target (under its roots and conda's), read fresh in one round trip, each
    package with its name and version only (show_environment reads one environment's details)."""
    progress = progress or Progress()
    target = session.target(target_name)
    progress.step(f"Listing environments on {target.label}")
    inventory = read_inventory(target.runner, target.roots, cancel=progress.cancel, light=True)
    return Listing(target.name, target.label, tuple(target.roots), inventory)


def show_environment(session: Session, target_name: str, env_ref: str,
                     progress: Progress | None = None) -> Environment:
    """One environment of the target, by name or absolute path, read fresh with all its packages."""
    return find_environment(session.target(target_name), env_ref, progress or Progress())
