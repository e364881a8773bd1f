"""Add, remove and upgrade packages, with a snapshot first and an automatic rollback on failure."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from .. import validate
from ..agent_client import call_action
from ..capabilities import Capabilities
from ..errors import EnvDeskError, InvalidInput
from ..inventory import Environment
from ..recipes import Installer, conda_install, conda_remove, conda_spec, env_python
from ..targets import Session, Target
from .common import Progress, capabilities, find_environment, run_step

FROZEN = {"pip", "setuptools", "wheel", "distribute"}


@dataclass
class Change:
    """What to do to an environment's packages."""

    add: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    upgrade: list[str] = field(default_factory=list)
    upgrade_all: bool = False

    def validate(self) -> None:
        self.add = [validate.package_spec(spec) for spec in self.add]
        self.remove = [validate.package_name(name) for name in self.remove]
        self.upgrade = [validate.package_name(name) for name in self.upgrade]
        if not (self.add or self.remove or self.upgrade or self.upgrade_all):
            raise InvalidInput("Nothing to change.", "Say which packages to add, remove or upgrade.")

    def describe(self) -> str:
        parts = [f"add {', '.join(self.add)}" if self.add else "",
                 f"remove {', '.join(self.remove)}" if self.remove else "",
                 f"upgrade {', '.join(self.upgrade)}" if self.upgrade else "",
                 "upgrade everything" if self.upgrade_all else ""]
        return "; ".join(p for p in parts if p)


@dataclass
class Updated:
    """The environment after the change, and the snapshot taken before it."""

    environment: Environment
    snapshot: str


def _installer(target: Target, caps: Capabilities, env: Environment) -> Installer:
    return Installer.for_env(caps, env_python(env.path, target.runner.is_remote), env.modules, target.pip_args)


def _name_key(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def apply_change(target: Target, caps: Capabilities, env: Environment, change: Change, progress: Progress) -> None:
    """Run the installer commands for a change (no lock or snapshot: the caller holds them)."""
    installer = _installer(target, caps, env)
    conda_names = {_name_key(p.name) for p in env.packages if p.installer == "conda"}
    if change.remove:
        conda_side = [n for n in change.remove if _name_key(n) in conda_names]
        pip_side = [n for n in change.remove if _name_key(n) not in conda_names]
        if conda_side and caps.conda_tool:
            run_step(target, conda_remove(caps.conda_tool, env.path, conda_side, env.modules), progress)
        if pip_side:
            run_step(target, installer.uninstall(pip_side), progress)
    upgrade = list(change.upgrade)
    if change.upgrade_all:
        upgrade = [p.name for p in env.packages if p.installer != "conda" and p.name.lower() not in FROZEN
                   and not p.url]
    if env.kind == "conda" and caps.conda_tool:
        specs = [conda_spec(spec) for spec in change.add] + [n for n in upgrade if _name_key(n) in conda_names]
        if specs:
            run_step(target, conda_install(caps.conda_tool, env.path, specs, env.modules), progress)
        upgrade = [n for n in upgrade if _name_key(n) not in conda_names]
        if upgrade:
            run_step(target, installer.install([], upgrade=upgrade), progress)
    elif change.add or upgrade:
        run_step(target, installer.install(change.add, upgrade=upgrade), progress)


def restore_packages(target: Target, caps: Capabilities, env: Environment, packages: Sequence[dict],
                     progress: Progress) -> None:
    """Make the environment hold exactly `packages` (a snapshot's list) again."""
    installer = _installer(target, caps, env)
    wanted = {_name_key(p["name"]): p for p in packages}
    current = find_environment(target, env.path, progress)
    extra = [p.name for p in current.packages if _name_key(p.name) not in wanted and p.installer != "conda"]
    if extra:
        run_step(target, installer.uninstall(extra), progress)
    have = {_name_key(p.name): p.version for p in current.packages}
    conda_pins = [f"{p['name']}={p['version']}" + (f"={p['build']}" if p.get("build") else "")
                  for p in packages if p.get("installer") == "conda" and have.get(_name_key(p["name"])) != p["version"]]
    if conda_pins and caps.conda_tool:
        run_step(target, conda_install(caps.conda_tool, env.path, conda_pins, env.modules), progress)
    pins = [f"{p['name']}=={p['version']}" for p in packages
            if p.get("installer") != "conda" and not p.get("url")
            and have.get(_name_key(p["name"])) != p["version"]]
    if pins:
        run_step(target, installer.install(pins, no_deps=True), progress)


def _requested_after(env: Environment, change: Change) -> list[str]:
    requested = list((env.envdesk or {}).get("requested") or [])
    removed = {_name_key(n) for n in change.remove}
    kept = [r for r in requested if _name_key(_spec_name(r)) not in removed]
    added_names = {_name_key(_spec_name(a)) for a in change.add}
    kept = [r for r in kept if _name_key(_spec_name(r)) not in added_names]
    return kept + change.add


def _spec_name(spec: str) -> str:
    from packaging.requirements import Requirement
    return Requirement(spec).name


def update_environment(session: Session, target_name: str, env_ref: str, change: Change,
                       progress: Progress | None = None) -> Updated:
    """Change packages; on failure put back exactly what was there and say so."""
    progress = progress or Progress()
    change.validate()
    target = session.target(target_name)
    env = find_environment(target, env_ref, progress)
    caps = capabilities(session, target, progress)
    progress.step("Saving a snapshot of the current packages")
    begun = call_action(target.runner, "begin", env.path, target.roots, snapshot=True,
                        operation="update", reason=change.describe())
    snapshot = begun["snapshot"]
    before = [p for p in begun["env"]["packages"]]
    try:
        apply_change(target, caps, env, change, progress)
    except BaseException as failure:
        rollback_error = _roll_back(target, caps, env, before, progress)
        if isinstance(failure, EnvDeskError) and not rollback_error:
            failure.message += f" Nothing was changed: the environment was rolled back to snapshot {snapshot}."
        elif rollback_error:
            failure_text = f" Rolling back to snapshot {snapshot} also failed: {rollback_error}"
            if isinstance(failure, EnvDeskError):
                failure.message += failure_text
        raise
    finished = call_action(target.runner, "finish", env.path, target.roots,
                           meta={"requested": _requested_after(env, change)})
    return Updated(Environment.from_agent(finished["env"]), snapshot)


def _roll_back(target: Target, caps: Capabilities, env: Environment, before: list[dict],
               progress: Progress) -> str:
    """Restore the snapshot after a failed change and release the lock; returns an error text or ''."""
    quiet = Progress(on_step=progress.on_step, on_line=progress.on_line)
    try:
        quiet.on_step("The change failed: putting the previous packages back")
        restore_packages(target, caps, env, before, quiet)
        return ""
    except EnvDeskError as exc:
        return exc.message
    finally:
        call_action(target.runner, "abort", env.path, target.roots)
