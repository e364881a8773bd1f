"""Build an environment from an EnvSpec on any target, mapping modules and reporting what it lacks."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .. import spec as specs
from .. import validate
from ..capabilities import Capabilities, choose_python
from ..errors import CommandFailed, InstallFailed, InvalidInput
from ..inventory import Environment
from ..recipes import Installer, env_python
from ..runner import join_command
from ..spec import EnvSpec
from ..targets import Session, Target
from .common import Progress, Reservation, capabilities
from .create import build, choose_root, remember_root
from .modules import loadable_modules


@dataclass
class Unavailable:
    """A pinned package the target cannot provide, and why."""

    spec: str
    reason: str


@dataclass
class ImportPlan:
    """What will be built where, decided before anything is created (the GUI shows it first)."""

    name: str
    kind: str
    modules: list[str]
    python: str | None
    pins: list[str]
    requirements: list[str]
    conda_pins: list[str]
    notes: list[str] = field(default_factory=list)


@dataclass
class Imported:
    """The new environment and what the user should know."""

    environment: Environment
    notes: list[str] = field(default_factory=list)
    used_top_level: bool = False


def read_spec_file(path: Path) -> EnvSpec:
    """Read an export file of any supported format (uv projects are imported by operations/uvimport.py)."""
    try:
        if path.is_dir() or path.name in ("pyproject.toml", "uv.lock"):
            raise InvalidInput(f"{path} is (part of) a uv project, not an environment file.",
                               "Import the project folder itself: it is built with 'uv sync --frozen' "
                               "(import_uv_project; envdesk env import CLUSTER FOLDER).")
        if path.stat().st_size > 5_000_000:
            raise InvalidInput(f"{path} is too large to be an environment file.")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"Could not read {path}: {exc.strerror or exc}.") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path} is not a text file.") from exc
    return specs.from_text(text, path.name)


def _map_modules(target: Target, caps: Capabilities, spec: EnvSpec, kind: str,
                 progress: Progress) -> tuple[list[str], str | None, list[str]]:
    notes: list[str] = []
    if kind == "conda":
        return [], spec.python, notes
    if not caps.has_modules:
        choice = choose_python(caps, spec.python, kind)
        if spec.modules:
            notes.append(f"{target.label} has no modules; using its own Python {choice.version}.")
        return [], choice.version, notes
    choice = choose_python(caps, spec.python, kind)
    modules = loadable_modules(target, list(choice.modules), progress)
    python_families = ("python", "python3")
    others = [m for m in spec.modules if m.partition("/")[0].lower() not in python_families and m not in modules]
    kept = [m for m in others if m in caps.modules]
    dropped = [m for m in others if m not in caps.modules]
    modules = kept + modules
    if list(spec.modules) != modules:
        notes.append(f"Modules: {' '.join(spec.modules) or '(none)'} on the source became "
                     f"{' '.join(modules) or '(none)'} here (Python {choice.version}).")
    if dropped:
        notes.append(f"Not available here and left out: {' '.join(dropped)}.")
    if choice.note:
        notes.append(choice.note)
    return modules, choice.version, notes


def plan_import(session: Session, target_name: str, spec: EnvSpec, name: str | None = None,
                progress: Progress | None = None) -> ImportPlan:
    """Decide the kind, modules and packages for building `spec` on the target."""
    progress = progress or Progress()
    target = session.target(target_name)
    caps = capabilities(session, target, progress)
    chosen = validate.env_name(name or spec.name or "imported")
    kind, notes = spec.kind, []
    if kind not in caps.kinds():
        if kind == "conda":
            raise InvalidInput(f"{target.label} has no conda, mamba or micromamba to build a conda environment.")
        notes.append(f"{target.label} cannot make {kind} environments; making a {caps.kinds()[0]} one instead.")
        kind = caps.kinds()[0]
    modules, python, module_notes = _map_modules(target, caps, spec, kind, progress)
    conda_pins = [pin.conda_line() for pin in spec.conda_pins] if kind == "conda" else []
    pins = [pin.pip_line() for pin in spec.pip_pins] or list(spec.requirements)
    return ImportPlan(chosen, kind, modules, python, pins, list(spec.requirements), conda_pins,
                      notes + module_notes)


def _check_script(installer: Installer, pins: list[str]) -> str:
    """Shell text that dry-runs each pin and prints '@@missing SPEC<TAB>REASON' for those that fail."""
    checks = []
    for pin in pins:
        line = join_command(installer.dry_run(pin).argv)
        checks.append(f"if ! out=$({line} 2>&1); then printf '@@missing %s\\t%s\\n' {join_command([pin])} "
                      f'"$(printf "%s" "$out" | grep -v "^ *$" | tail -n 1)"; fi')
    return "; ".join(checks)


def _parse_missing(stdout: str) -> list[Unavailable]:
    missing = []
    for line in stdout.splitlines():
        if line.startswith("@@missing "):
            spec_text, _, reason = line[len("@@missing "):].partition("\t")
            missing.append(Unavailable(spec_text, _plain_reason(reason)))
    return missing


def _installer_modules(installer: Installer) -> tuple[str, ...]:
    return installer.env_modules + (installer.uv[1] if installer.uv else ())


def find_unavailable(target: Target, installer: Installer, pins: list[str], progress: Progress) -> list[Unavailable]:
    """Every pin the target cannot install, found in one command (each checked with a dry run)."""
    if not pins:
        return []
    progress.step(f"Checking which of {len(pins)} packages {target.label} can provide")
    result = target.runner.run_shell(_check_script(installer, pins), modules=_installer_modules(installer),
                                     cancel=progress.cancel, label="check packages")
    return _parse_missing(result.stdout)


def check_availability(session: Session, target_name: str, plan: ImportPlan,
                       progress: Progress | None = None) -> list[Unavailable]:
    """Before building: which pinned packages the target cannot provide, using a throwaway environment."""
    progress = progress or Progress()
    target = session.target(target_name)
    if not plan.pins or plan.kind == "conda" or not target.runner.is_remote:
        return []
    caps = capabilities(session, target, progress)
    scratch = f"/tmp/envdesk-check-{uuid.uuid4().hex}"
    installer = Installer.for_env(caps, f"{scratch}/bin/python", plan.modules, target.pip_args)
    make = ["python3", "-m", "venv", *(["--without-pip"] if installer.uv else []), scratch]
    progress.step(f"Checking which of {len(plan.pins)} packages {target.label} can provide")
    body = (f"{join_command(make)} >/dev/null 2>&1 || {{ echo '@@noenv'; exit 0; }}; "
            f"{_check_script(installer, plan.pins)}; rm -rf {join_command([scratch])}")
    result = target.runner.run_shell(body, modules=_installer_modules(installer), cancel=progress.cancel,
                                     label="check packages")
    return _parse_missing(result.stdout)


def _plain_reason(raw: str) -> str:
    lowered = raw.lower()
    if "no matching distribution" in lowered or "not found in the package registry" in lowered or \
            "no solution found" in lowered or "could not find a version" in lowered:
        return "not in this target's package index or wheel store"
    return raw.strip() or "could not be installed"


def import_environment(session: Session, target_name: str, spec: EnvSpec, *, name: str | None = None,
                       root: str | None = None, top_level: bool = False,
                       progress: Progress | None = None) -> Imported:
    """Build `spec` on the target: exact pins first; if some cannot be had, report them all at once.

    With `top_level`, install the top-level requirements instead when pins fail. Never half-succeeds:
    a failed import removes what it started.
    """
    progress = progress or Progress()
    plan = plan_import(session, target_name, spec, name, progress)
    target = session.target(target_name)
    caps = capabilities(session, target, progress)
    root, roots = choose_root(target, validate.remote_folder(root) if root is not None else None)
    path = f"{root.rstrip('/')}/{plan.name}"
    progress.step(f"Reserving {path}")
    reservation = Reservation.take(target, path, roots, create=True, operation="import")
    installer = Installer.for_env(caps, env_python(reservation.path, target.runner.is_remote), plan.modules,
                                  target.pip_args)
    notes, used_top_level = list(plan.notes), False
    common = {"kind": plan.kind, "modules": plan.modules, "python": plan.python,
              "system_site_packages": spec.system_site_packages, "conda_packages": plan.conda_pins,
              "channels": spec.channels, "progress": progress, "extra_meta": {"imported_from": spec.source}}
    try:
        try:
            env = build(session, target, caps, reservation, packages=plan.pins, requested=plan.requirements,
                        **common)
        except InstallFailed as failure:
            missing = find_unavailable(target, installer, plan.pins, progress)
            if not missing:
                raise
            listing = "; ".join(f"{m.spec} ({m.reason})" for m in missing)
            if not top_level or not plan.requirements:
                raise CommandFailed(
                    f"{len(missing)} package(s) cannot be installed on {target.label}: {listing}. "
                    "Nothing was created.",
                    "Install only the top-level requirements instead (--top-level), which lets the "
                    "installer pick versions this target has.", log=failure.log) from failure
            progress.on_step("Some exact versions are missing here; installing the top-level requirements")
            reservation.reset()
            notes.append(f"Exact versions unavailable here: {listing}. Installed the top-level requirements "
                         "instead.")
            used_top_level = True
            env = build(session, target, caps, reservation, packages=plan.requirements, **common)
    except BaseException:
        progress.on_step("Removing the unfinished environment")
        reservation.release(remove_unfinished=True)
        raise
    remember_root(session, target, root)
    return Imported(env, notes, used_top_level)
