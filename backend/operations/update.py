"""Add, remove and upgrade packages, with a snapshot first and an automatic rollback on failure."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import PurePosixPath
from typing import Sequence

from .. import validate
from ..validate import canonical_name
from ..capabilities import Capabilities
from ..agent_client import call_action
from ..errors import Cancelled, CommandFailed, ConnectionFailed, EnvDeskError, InvalidInput
from ..inventory import Environment, Package
from ..provided import change_notes
from ..spec import redact, requirement_name
from ..recipes import INSTALLER_PACKAGES, Installer, Step, conda_install, conda_remove, conda_spec, constraints_file
from ..runner import left_running
from ..slurm import large_update, on_compute_node
from ..targets import Session, Target
from .common import (Progress, Reservation, capabilities, find_environment, one_command, run_step, runnable,
                     yours_to_change)
from .python_fit import misfit_notes
from .module_paths import read_report, report_script
from .requirement_check import Unmet, check_script, hiding_markers, left_broken, read_answers


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
        """The change in words, as a snapshot's label reads it: "before adding six, removing tqdm"."""
        parts = [f"adding {', '.join(self.add)}" if self.add else "",
                 f"removing {', '.join(self.remove)}" if self.remove else "",
                 f"upgrading {', '.join(self.upgrade)}" if self.upgrade else "",
                 "upgrading everything" if self.upgrade_all else ""]
        return "; ".join(p for p in parts if p)


@dataclass
class Updated:
    """The environment after the change, and the snapshot taken before it (None: nothing changed, so none
    was kept); `notes`: what the user should know, such as packages the removal left without what they need."""

    environment: Environment
    snapshot: str | None
    notes: list[str] = field(default_factory=list)
    done: bool = False  # packages were changed even though no snapshot was kept: a change cut off earlier was put
    # back first (see state_before), and the state before that is the one it had taken (so none is kept)


IPYKERNEL_GONE = ("Without ipykernel, a Jupyter kernel of this environment no longer starts: add ipykernel back, "
                  "or remove the kernel (Jupyter kernels in the Cluster menu, or envdesk kernel list, shows it).")


def _installer(target: Target, caps: Capabilities, env: Environment) -> Installer:
    """The environment's installer, within the constraints it keeps."""
    return Installer.for_env(caps, target.runner.env_python(env.path), env.modules, target.pip_args, kind=env.kind,
                             here=target.runner.runs_actions_here,
                             constraints=constraints_file(env.path) if env.constraints else None)


@dataclass
class Applied:
    """What a change's commands found besides installing: `notes` for the user, the requirements the change left
    unmet (pip check's), and the report of what the modules put on PYTHONPATH for the finish to record
    (module_paths; "" when it was not asked)."""

    notes: list[str] = field(default_factory=list)
    unmet: list[Unmet] = field(default_factory=list)
    report: str = ""


def apply_change(target: Target, caps: Capabilities, env: Environment, change: Change,
                 progress: Progress) -> Applied:
    """Run the installer commands for a change (no lock or snapshot: the caller holds them). The installer's last
    command also checks what the change left (see _run_checked)."""
    installer = _installer(target, caps, env)
    conda_names = {canonical_name(p.name) for p in env.packages if p.installer == "conda"}
    steps: list[tuple[Step, bool]] = []  # each command, and whether it is the installer's (else conda's)
    removed = [n for n in change.remove if canonical_name(n) not in conda_names]
    conda_side = [n for n in change.remove if canonical_name(n) in conda_names]
    if conda_side and caps.conda_tool:
        steps.append((conda_remove(caps.conda_tool, env.path, conda_side, env.modules), False))
    if removed:
        steps.append((installer.uninstall(removed), True))
    upgrade = list(change.upgrade)
    if change.upgrade_all:
        upgrade = [p.name for p in env.packages if p.installer != "conda" and p.name.lower() not in INSTALLER_PACKAGES
                   and not p.url]
    if env.kind == "conda" and caps.conda_tool:
        specs = [conda_spec(spec) for spec in change.add] + [n for n in upgrade if canonical_name(n) in conda_names]
        if specs:
            steps.append((conda_install(caps.conda_tool, env.path, specs, env.modules), False))
        upgrade = [n for n in upgrade if canonical_name(n) not in conda_names]
        if upgrade:
            steps.append((installer.install([], upgrade=upgrade), True))
    elif change.add or upgrade:
        steps.append((installer.install(change.add, upgrade=upgrade), True))
    last = max((number for number, (_, installer_s) in enumerate(steps) if installer_s), default=None)
    applied = Applied()
    for number, (step, _) in enumerate(steps):
        if number == last:
            applied = _run_checked(target, step, env, installer.python, progress)
        else:
            run_step(target, step, progress)
    gone = {canonical_name(name) for name in removed}
    lacking = [unmet for unmet in applied.unmet if unmet.missing and requirement_name(unmet.needs) in gone]
    if lacking:  # said in the uninstall's own words: neither pip nor uv says it when it uninstalls
        applied.notes += left_broken(lacking, "The removal")
    applied.notes += left_broken([unmet for unmet in applied.unmet if unmet not in lacking])
    if "ipykernel" in {canonical_name(name) for name in change.remove}:
        applied.notes.append(IPYKERNEL_GONE)
    return applied


def _run_checked(target: Target, step: Step, env: Environment, python: str, progress: Progress) -> Applied:
    """Run the change's last installer command; then, in the same command where one_command allows (no command
    more), the environment's own pip check (see requirement_check), which neither pip nor uv runs after a change,
    and the report of what its modules put on PYTHONPATH (module_paths), with them loaded as they are for it."""
    if not one_command(target, [step]):
        run_step(target, step, progress)
        return Applied()
    then = "\n".join(text for text in (check_script([env], {env.path: python}, False), report_script(env.modules))
                     if text)
    result = run_step(target, step, replace(progress, on_line=hiding_markers(progress.on_line)), then=then)
    return Applied(unmet=read_answers(result.stdout, [env]).get(env.path, []), report=read_report(result.stdout))


@dataclass
class Held:
    """The packages an environment held at one time (as a change began, or a snapshot's), and its package
    folders without metadata then (a rollback keeps them: any other is what a change left half installed)."""

    packages: list[dict]
    incomplete: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, record: dict) -> "Held":
        """From a snapshot's record ("half_installed") or an environment of the agent's ("incomplete_packages")."""
        folders = record.get("half_installed", record.get("incomplete_packages")) or []
        return cls(list(record["packages"]), [folder for folder in folders if isinstance(folder, str)])


def _named(packages: Sequence[dict] | Sequence[Package]) -> str:
    named = [f"{p['name']} {p['version']}" if isinstance(p, dict) else f"{p.name} {p.version}" for p in packages]
    return ", ".join(named[:8]) + (f" and {len(named) - 8} more" if len(named) > 8 else "")


def restore_packages(target: Target, caps: Capabilities, env: Environment, held: Held, progress: Progress,
                     token: str) -> str:
    """Make the environment hold exactly `held` again (its lock held with `token`): first remove what an install
    left half done, then the packages not in it, then put back those missing or changed. What it did, in words
    ("" when it had nothing to do); CommandFailed when the environment still differs afterwards."""
    installer = _installer(target, caps, env)
    done: list[str] = []
    cleaned = call_action(target.runner, "clean", env.path, target.roots, token=token,
                          keep=held.incomplete)["removed"]
    if cleaned:
        done.append("removed the half-installed " + ", ".join(PurePosixPath(str(c["path"])).name for c in cleaned))
    wanted = {canonical_name(p["name"]): p for p in held.packages}
    current = find_environment(target, env.path, progress, settled=False)
    extra = [p for p in current.packages if canonical_name(p.name) not in wanted]
    conda_extra = [p.name for p in extra if p.installer == "conda"]
    pip_extra = [p.name for p in extra if p.installer != "conda"]
    if conda_extra and caps.conda_tool:
        run_step(target, conda_remove(caps.conda_tool, env.path, conda_extra, env.modules), progress)
    if pip_extra:
        run_step(target, installer.uninstall(pip_extra), progress)
    if extra:
        done.append(f"removed {_named(extra)}")
    have = {canonical_name(p.name): (p.version, p.url) for p in current.packages}
    changed = [p for p in held.packages if have.get(canonical_name(p["name"])) != (p["version"], p.get("url"))]
    conda_pins = [f"{p['name']}={p['version']}" + (f"={p['build']}" if p.get("build") else "")
                  for p in changed if p.get("installer") == "conda"]
    if conda_pins and caps.conda_tool:
        run_step(target, conda_install(caps.conda_tool, env.path, conda_pins, env.modules), progress)
    pins = [f"{p['name']} @ {p['url']}" if p.get("url") else f"{p['name']}=={p['version']}"
            for p in changed if p.get("installer") != "conda" and not p.get("editable")]
    if pins:
        run_step(target, installer.install(pins, no_deps=True), progress)
    if changed:
        done.append(f"put back {_named(changed)}")
    differs = _differences(held, find_environment(target, env.path, progress, settled=False))
    if differs:
        raise CommandFailed(f"After putting the packages back, {env.name} still differs from before: {differs}",
                            log="\n".join(done))
    return "; ".join(done)


def _differences(held: Held, env: Environment) -> str:
    """How the environment differs from what it held, in words ("" when it holds just that)."""
    have = {canonical_name(p.name): p for p in env.packages}
    wanted = {canonical_name(p["name"]): p for p in held.packages}
    said = [f"{p.name} {p.version} is still there" for name, p in have.items() if name not in wanted]
    said += [f"{p['name']} {p['version']} is missing" for name, p in wanted.items() if name not in have]
    said += [f"{p['name']} is at {have[name].version}, not {p['version']}" for name, p in wanted.items()
             if name in have and (have[name].version, have[name].url) != (p["version"], p.get("url"))]
    said += [f"{folder} is half installed" for folder in env.incomplete_packages if folder not in held.incomplete]
    return "; ".join(said)


def _requested_after(env: Environment, change: Change) -> list[str]:
    """What the user asked for after this change (entries that are not plain requirements are kept)."""
    requested = list((env.envdesk or {}).get("requested") or [])
    dropped = {canonical_name(n) for n in change.remove} | {canonical_name(_spec_name(a)) for a in change.add}
    # recorded in the environment, which other users may read: never with credentials
    return [r for r in requested if canonical_name(_spec_name(r)) not in dropped] + [redact(a) for a in change.add]


def _spec_name(spec: str) -> str:
    from packaging.requirements import InvalidRequirement, Requirement
    try:
        return Requirement(spec).name
    except InvalidRequirement:
        return spec


def _check_installed(env: Environment, change: Change) -> None:
    """Refuse to remove or upgrade a package the environment does not hold (a typo, most often): the installer
    would say nothing (a removal) or install it (an upgrade), and the change would look done."""
    held = {canonical_name(package.name): package.name for package in env.packages}
    for pin in map(_half_installed_pin, (PurePosixPath(folder).name for folder in env.incomplete_packages)):
        if pin:  # half installed: the update mends it first (repair_half_installed), or removes it
            held.setdefault(canonical_name(pin.split("==")[0]), pin.split("==")[0])
    for verb, names in (("remove", change.remove), ("upgrade", change.upgrade)):
        missing = [name for name in names if canonical_name(name) not in held]
        if not missing:
            continue
        import difflib
        close = sorted({held[match] for name in missing
                        for match in difflib.get_close_matches(canonical_name(name), list(held), n=2)})
        hint = (f"Did you mean {' or '.join(close)}? " if close else "") + (
            "Nothing was changed." if verb == "remove" else "To install it, add it instead. Nothing was changed.")
        raise InvalidInput(f"{env.name} has no package {', '.join(missing)} to {verb}.", hint)


def update_environment(session: Session, target_name: str, env_ref: str, change: Change,
                       progress: Progress | None = None) -> Updated:
    """Change packages; on failure put back exactly what was there and say so."""
    progress = progress or Progress()
    change.validate()
    target = session.target(target_name)
    replaced = ["*"] if change.upgrade_all else [*change.remove, *change.upgrade,
                                                 *filter(None, map(requirement_name, change.add))]
    env = runnable(yours_to_change(find_environment(target, env_ref, progress, owners_of=replaced)), "updated")
    _check_installed(env, change)
    caps = capabilities(session, target, progress)
    meta = {"requested": _requested_after(env, change)}
    progress.step("Saving a snapshot of the current packages")
    reservation = Reservation.take(target, env.path, list(target.roots), snapshot=True, operation="update",
                                   reason=redact(change.describe()))
    snapshot = reservation.answer["snapshot"]
    before, put_back = state_before(target, caps, env, reservation, progress)
    repaired: list[str] = []
    try:
        before, repaired = repair_half_installed(target, caps, env, before, change, progress, reservation.token)
        large = large_update(len(change.add), len(change.upgrade), change.upgrade_all)
        applied = apply_change(on_compute_node(target, progress.on_step, large=large), caps, env, change,
                               progress)  # issue 12
        after = reservation.finish(meta, snapshot_if_changed=snapshot, pythonpath_report=applied.report)
    except BaseException as failure:
        restored = False
        try:
            restored = roll_back(target, caps, env, before, snapshot, failure, progress, reservation.token)
        finally:  # a second Ctrl-C or an unexpected error in the rollback must not leave the lock behind
            if not left_running(failure):  # else the installer may still run: the lock stays (see roll_back)
                reservation.release(drop_snapshot=snapshot if restored and not repaired else None,
                                    rollback_failed=not restored)
            if repaired and isinstance(failure, EnvDeskError):  # kept: the rollback puts back the mended state
                failure.message += " " + " ".join(repaired)
        raise
    kept = None if reservation.answer.get("dropped_snapshot") else snapshot
    asked = [name for name in map(requirement_name, change.add) if name] + list(change.upgrade)
    return Updated(after, kept, put_back + repaired + applied.notes + change_notes(after, asked)
                   + misfit_notes(after, before=env, snapshot=kept), done=bool(put_back + repaired))


def state_before(target: Target, caps: Capabilities, env: Environment, reservation: Reservation,
                 progress: Progress) -> tuple[Held, list[str]]:
    """What the environment held before this change, and a note of what was put back first: when an earlier
    change's client stopped midway (its lock was taken over), or its rollback failed, its snapshot is put
    back first, and this change starts from there."""
    interrupted = reservation.answer.get("interrupted")
    if not interrupted:
        return Held.of(reservation.answer["env"]), []
    progress.step(f"An earlier {interrupted['operation']} of this environment was cut off: putting its packages "
                  "back first")
    held = Held.of(interrupted)
    try:
        did = restore_packages(target, caps, env, held, progress, reservation.token)
    except BaseException:
        reservation.release()  # still marked as being changed: the next operation tries again
        raise
    return held, [f"An earlier {interrupted['operation']} of {env.name} had been cut off: EnvDesk put its packages "
                  f"back first ({did})."] if did else []


def _half_installed_pin(folder: str) -> str | None:
    """The requirement that installs again the package a half-installed folder was ('tinygamma==0.1' for
    tinygamma-0.1.dist-info or tinygamma-0.1-py3.11.egg-info), None when its name gives no version."""
    stem = re.sub(r"\.(?:dist|egg)-info$", "", folder)
    name, _, version = stem.partition("-")
    pin = f"{name}=={version.split('-', 1)[0]}"
    return pin if validate.plainly_valid_requirement(pin) else None


def repair_half_installed(target: Target, caps: Capabilities, env: Environment, before: Held, change: Change,
                          progress: Progress, token: str) -> tuple[Held, list[str]]:
    """Mend the package folders an earlier install left half done (no METADATA: a run stopped outside EnvDesk, or
    before its rollback removed them), which make uv refuse every change and pip skip the package: remove each
    with the files its RECORD names, then install that package again at its folder's version, as pip's and uv's
    --force-reinstall would (not one this change removes). What the environment holds then, which a failure of
    the change puts back, and a note saying what was mended."""
    if not before.incomplete:
        return before, []
    folders = [PurePosixPath(folder).name for folder in before.incomplete]
    shown = ", ".join(folders)
    progress.step(f"{env.name} holds the half-installed {shown}: removing it and installing that package again")
    call_action(target.runner, "clean", env.path, target.roots, token=token, keep=[])
    removed = {canonical_name(name) for name in change.remove}
    pins = [pin for pin in map(_half_installed_pin, folders)
            if pin and canonical_name(pin.split("==")[0]) not in removed]
    if pins:
        try:
            run_step(target, _installer(target, caps, env).install(pins, no_deps=True), progress)
        except EnvDeskError as exc:
            exc.message = (f"{env.name} held the half-installed {shown}, which EnvDesk removed; installing "
                           f"{', '.join(pins)} again failed: {exc.message}")
            raise
    now = find_environment(target, env.path, progress, settled=False)
    again = f"; it installed {', '.join(pin.replace('==', ' ') for pin in pins)} again" if pins else ""
    return (Held([asdict(p) for p in now.packages], list(now.incomplete_packages)),
            [f"{env.name} held the half-installed {shown} (an install that stopped midway, on a full disk say, "
             f"leaves a package so, and uv then refuses every change): EnvDesk removed it with the files its RECORD "
             f"names{again}, before the update."])


_NO_ROOM = re.compile(r"disk (?:holding \S+ )?is full|no space left|quota", re.I)


def roll_back(target: Target, caps: Capabilities, env: Environment, before: Held, snapshot: str,
              failure: BaseException, progress: Progress, token: str) -> bool:
    """Put the packages held before back after a failed change, and say in the error what happened and what
    the rollback did; True when they are back (the snapshot is then not needed: nothing changed)."""
    quiet = Progress(on_step=progress.on_step, on_line=progress.on_line)
    still = left_running(failure)
    if still:  # the installer may still be changing it: putting packages back now would race with it (T19)
        outcome = (f" Nothing was put back meanwhile: if the change does not finish there, the environment is listed "
                   f"as cut off, and the next change puts the previous packages back (or revert to snapshot "
                   f"{snapshot}).")
        quiet.on_step("The change could not be stopped there: nothing is put back while it may still run")
        if isinstance(failure, EnvDeskError):
            failure.message = (failure.message if still in failure.message else f"{failure.message} {still}") + outcome
        return False
    try:
        stopped = isinstance(failure, (Cancelled, KeyboardInterrupt))
        quiet.on_step(f"The change {'was stopped' if stopped else 'failed'}: putting the previous packages back")
        did = restore_packages(target, caps, env, before, quiet, token)
        outcome, restored = (" Nothing was changed: the environment was rolled back to how it was before"
                             + (f" ({did})." if did else "."), True)
    except EnvDeskError as exc:
        if isinstance(exc, ConnectionFailed):
            then = "when the cluster is reachable again, revert to it"
        elif _NO_ROOM.search(f"{exc.message} {exc.hint} {failure}"):
            then = "once the disk has room again (delete files you no longer need there), revert to it"
        else:
            then = "revert to it"
        outcome, restored = (f" Rolling back to snapshot {snapshot} also failed ({exc.message.rstrip('.')}), so "
                             f"{env.name} is listed as broken: {then} (envdesk env revert, or the snapshots in the "
                             "window), or make any change of it, which puts those packages back first."), False
    if isinstance(failure, EnvDeskError):  # its own words end a sentence before what happened after
        said = failure.message.rstrip()
        failure.message = said + ("" if said.endswith((".", "!", "?", ":")) else ".") + outcome
        if env.constraints and isinstance(failure, CommandFailed):  # the installer names them as "you require"
            failure.hint = (f"This environment keeps the constraints it was made with ({', '.join(env.constraints)}),"
                            " and every install into it must fit them. " + failure.hint).strip()
    return restored
