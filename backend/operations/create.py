"""Create an environment of any kind, with its modules recorded and its packages installed."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

from .. import validate
from ..about import created_with
from ..capabilities import Capabilities, choose_python, stand_in_kind
from ..errors import CommandFailed, CondaInstallFailed, EnvDeskError, InstallFailed, InvalidInput
from ..inventory import Environment, Space
from ..kinds import KINDS
from ..provided import shadowed
from ..runner import left_running
from ..recipes import (Installer, Step, conda_channels, conda_install, conda_spec, constraints_file,
                       create_step, keep_constraints)
from ..sizes import size_text
from ..slurm import on_compute_node
from ..spec import HASH_OPTION, now_iso, redact
from ..targets import Session, Target
from .common import (
    DISK_FULL_WORDS,
    ENSUREPIP_FAILED,
    RECORDING_STEP,
    AfterSteps,
    NotStarted,
    Progress,
    Reservation,
    build_in_one_command,
    capabilities,
    one_command,
    run_steps,
)
from .disk import ROOM_HINT, warn_before_build
from .module_paths import read_report, report_script
from .modules import loadable_modules
from .python_fit import misfit_notes
from .requirement_check import check_script, hiding_markers, left_broken, read_answers


@dataclass
class CreateRequest:
    """Everything a new environment needs; validated before anything runs."""

    name: str
    kind: str | None = None
    python: str | None = None
    modules: list[str] = field(default_factory=list)
    system_site_packages: bool = False
    root: str | None = None
    packages: list[str] = field(default_factory=list)
    conda_packages: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)

    def validate(self) -> None:
        validate.env_name(self.name)
        if self.kind is not None and self.kind not in KINDS:
            raise InvalidInput(f"Unknown environment kind {self.kind!r}.", "Use venv, virtualenv, uv or conda.")
        if self.python is not None:
            validate.version(self.python)
        self.modules = [validate.module_name(m) for m in self.modules]
        self.packages = [validate.package_spec(p) for p in self.packages]
        self.conda_packages = [validate.plain_text(p, "conda package") for p in self.conda_packages]
        for package in self.conda_packages:
            if package.startswith("-") or any(c in package for c in " ;&|$`'\"\\"):
                raise InvalidInput(f"{package!r} is not a conda package spec.", "For example numpy=1.26.")
        self.channels = [validate.conda_channel(c) for c in self.channels]
        if self.root is not None:
            self.root = validate.remote_folder(self.root)


@dataclass
class Created:
    """The new environment and anything the user should know about how it was made."""

    environment: Environment
    notes: list[str] = field(default_factory=list)


def choose_root(target: Target, root: str | None) -> tuple[str, list[str]]:
    """Where a new environment goes (default: the target's first root) and the roots that allows."""
    root = root or target.roots[0]
    roots = list(target.roots)
    return root, roots if root in roots else [*roots, root]


def remember_root(session: Session, target: Target, root: str) -> list[str]:
    """After a successful build in a new folder, list that folder from now on; the note that says so."""
    if root in target.roots:
        return []
    session.add_root(target.name, root)
    return [f"{root} is now one of the folders EnvDesk lists on {target.label} (saved in the cluster list, "
            f"{session.paths.clusters_file.name})."]


def create_environment(session: Session, target_name: str, request: CreateRequest,
                       progress: Progress | None = None) -> Created:
    """Build a new environment; on failure or cancel nothing half-made is left behind."""
    progress = progress or Progress()
    request.validate()
    target = session.target(target_name)
    caps = capabilities(session, target, progress)
    # the preset's kind where it names one (T20: uv on the Alliance); a venv of the modules' Python where none else
    kind = request.kind or (caps.default_kind() if caps.kinds() or not request.modules else "venv")
    notes: list[str] = []
    offered = caps.kinds() + (["venv"] if request.modules and "venv" not in caps.kinds() else [])  # their Python's
    if kind in ("virtualenv", "venv") and kind not in offered:
        asked, kind = kind, stand_in_kind(caps, kind)
        notes.append(_stand_in_note(target.label, asked, kind))
        progress.step(notes[-1])  # said now: a build that fails never shows the notes (T26: silently a venv)
    if kind not in offered:
        raise InvalidInput(f"{target.label} cannot make {kind} environments.",
                           f"Available kinds there: {', '.join(offered)}.")
    if request.modules:  # typed by the user: checked before anything is made (a typo costs one command)
        modules, version = loadable_modules(target, list(request.modules), progress, notes), request.python
    else:  # from the probe's own list: checked by the command that makes the environment (see build)
        choice = choose_python(caps, request.python, kind)
        if kind == "venv" and not choice.modules and not caps.venv_pip:  # the system Python's, which cannot (R22)
            kind = stand_in_kind(caps, kind)
            notes.append(_stand_in_note(target.label, "venv", kind))
            progress.step(notes[-1])
            choice = choose_python(caps, request.python, kind)
        modules, version = list(choice.modules), choice.version
        if choice.note:
            notes.append(choice.note)
    packages, conda_packages = list(request.packages), list(request.conda_packages)
    if kind == "conda" and packages:
        conda_packages, packages = conda_packages + [conda_spec(p) for p in packages], []
    root, roots = choose_root(target, request.root)
    path = f"{root.rstrip('/')}/{request.name}"
    reservation = Reservation.reserve(target, path, roots, caps.home, create=True, operation="create")
    try:
        env = start_and_build(session, target, caps, reservation, root, name=request.name, notes=notes, kind=kind,
                              modules=modules, python=version, system_site_packages=request.system_site_packages,
                              packages=packages, conda_packages=conda_packages, channels=request.channels,
                              progress=progress, modules_checked=bool(request.modules))
    except BaseException as exc:
        _said_full(exc, reservation, notes)
        undo(reservation, progress, exc)
        raise
    return Created(env, notes + misfit_notes(env) + remember_root(session, target, root))


def _said_full(failure: BaseException, reservation: Reservation, notes: list[str]) -> None:
    """A venv whose ensurepip failed after the room check warned (`notes`) that it would not fit: the disk
    filled, which venv's own line hides (T26: only "... 'ensurepip' ... returned non-zero exit status 1"), so its
    hint says so, with what was free when the build began."""
    if not isinstance(failure, CommandFailed) or not re.search(ENSUREPIP_FAILED, failure.log):
        return
    room = ROOM_HINT.partition(":")[0]
    spaces = [Space.from_agent(entry) for entry in reservation.answer.get("space") or []]
    free = next((space.free_bytes for space in spaces if space is not None and space.free_bytes is not None), None)
    if free is not None and any(room in note for note in notes):
        failure.hint = (f"Probably the disk is full ({size_text(free)} were free where it goes, less than it "
                        f"needs). {DISK_FULL_WORDS}")


def _stand_in_note(label: str, asked: str, kind: str) -> str:
    """Why an environment of `kind` is made where `asked` was (see stand_in_kind)."""
    no_ensurepip = ("its Python cannot put pip in a venv (it has no ensurepip: on Debian and Ubuntu, python3-venv "
                    "is missing)")
    if asked == "virtualenv" and kind == "venv":
        return (f"virtualenv is not installed on {label}, so this is a venv environment (the same kind of folder; "
                "pip works in it the same way).")
    if asked == "virtualenv":
        return f"virtualenv is not installed on {label} and {no_ensurepip}, so this is a {kind} environment."
    return f"On {label}, {no_ensurepip}, so this is a {kind} environment, which needs none."


def _ignore(_: dict) -> None:
    pass


def undo(reservation: Reservation, progress: Progress, failure: BaseException | None = None) -> None:
    """After a failed or cancelled build: remove the unfinished environment and give its lock back. Where that
    cannot be done (the connection gone), the step and `failure`'s hint say so and what to do (T18: the log said
    it was being removed, and the folder stayed with no word of it)."""
    if not reservation.held:  # the lock was never taken (the folder exists, another operation holds it ...)
        return
    still = left_running(failure)
    if still:  # its installer may still be writing there: nothing is removed under it (T19)
        left = (f"The unfinished environment {reservation.path} was left as it is: it is listed as incomplete until "
                "the build ends there (delete it then, if it did not finish).")
        progress.on_step(left)
        if isinstance(failure, EnvDeskError) and still in failure.message:  # a Cancelled says it first
            failure.message = f"{failure.message} {left}"
        elif isinstance(failure, EnvDeskError):
            failure.hint = f"{failure.hint} {still} {left}".strip()
        return
    begun = bool(reservation.answer)  # its begin answered: it made the folder (else it may never have run)
    try:
        if begun:
            progress.on_step("Removing the unfinished environment")
    finally:  # whatever interrupts the message, the half-made environment and its lock go
        reservation.release(remove_unfinished=True)
    if reservation.held:
        left = (f"The unfinished environment {reservation.path} could not be removed ({reservation.left_behind}): "
                f"it is listed as incomplete; delete it once {reservation.target.label} answers again." if begun else
                f"EnvDesk could not check whether anything of {reservation.path} was made "
                f"({reservation.left_behind}): if it was, it is listed as incomplete; delete it once "
                f"{reservation.target.label} answers again.")
        progress.on_step(left)
        if isinstance(failure, EnvDeskError):
            failure.hint = f"{failure.hint} {left}".strip()


def room_notes(session: Session, target: Target, root: str, begun: dict, *, name: str, kind: str, packages: int,
               source: dict | None = None, progress: Progress) -> list[str]:
    """The warnings (as notes, each also shown as a step) when the new environment would not fit in `root`, from
    what its begin read there (its answer `begun`)."""
    return warn_before_build(session, target, root, space=begun.get("space"), name=name,  # issue 12
                             kind=kind, packages=packages, source=source, progress=progress)


def start_and_build(session: Session, target: Target, caps: Capabilities, reservation: Reservation, root: str, *,
                    name: str, notes: list[str], source: dict | None = None, progress: Progress,
                    **build_args: Any) -> Environment:
    """Take the lock of the reserved folder and make it (the agent's begin), then build (`build_args`: its
    settings), in one command where the target allows (see build); the room warnings (room_notes, from what
    that begin read: no command of their own) added to `notes`."""
    packages = len(build_args.get("packages", ())) + len(build_args.get("conda_packages", ()))

    def begun(answer: dict) -> None:
        notes.extend(room_notes(session, target, root, answer, name=name, kind=build_args["kind"], packages=packages,
                                source=source, progress=progress))
    return build(session, target, caps, reservation, progress=progress, on_begun=begun, notes=notes, **build_args)


def _build_steps(target: Target, caps: Capabilities, path: str, kind: str, modules: Sequence[str],
                 python: str | None, system_site_packages: bool, packages: Sequence[str],
                 conda_packages: Sequence[str], channels: Sequence[str],
                 constraints: Sequence[str] = ()) -> list[tuple[Step, type[CommandFailed]]]:
    """The commands that make the environment at `path` and install into it (within `constraints`, which the
    environment keeps for later installs), each with how its failure is raised (a failed install as
    InstallFailed)."""
    steps: list[tuple[Step, type[CommandFailed]]] = [
        (create_step(kind, caps, path, modules, python, system_site_packages, target.runner.python_command(caps),
                     channels), CommandFailed)]
    if constraints:
        steps.append((keep_constraints(path, target.runner.env_python(path), constraints, steps[0][0].modules),
                      CommandFailed))
    if conda_packages and caps.conda_tool:
        steps.append((conda_install(caps.conda_tool, path, conda_packages, modules, channels), CondaInstallFailed))
    if packages:
        installer = Installer.for_env(caps, target.runner.env_python(path), modules, target.pip_args, kind=kind,
                                      here=target.runner.runs_actions_here,
                                      constraints=constraints_file(path) if constraints else None)
        hashed = [line for line in packages if HASH_OPTION in line]
        plain = [line for line in packages if HASH_OPTION not in line]
        if hashed:  # pip checks hashes only in a requirements file (given on stdin), and then checks every line
            # With lines that carry no hash (a git install), those are installed next, with their own
            # dependencies; the hashed ones alone, each checked (a lock lists every dependency).
            steps.append((installer.install([], lines=hashed, require_hashes=True, no_deps=bool(plain)),
                          InstallFailed))
        if plain:
            steps.append((installer.install(plain), InstallFailed))
    return steps


def _after_build(target: Target, path: str, modules: Sequence[str], system_site_packages: bool) -> AfterSteps:
    """What a build runs once its packages are in, with its modules loaded: the new environment's own pip check
    (its installer resolved what it was asked for, but not a file's pins installed without their dependencies, or
    a requirement a module's package on PYTHONPATH leaves unmet), and what its modules put on PYTHONPATH, for its
    notes (module_paths)."""
    made = Environment(path.rstrip("/").rpartition("/")[2], path, "", None, modules=tuple(modules),
                       system_site_packages=system_site_packages)
    return AfterSteps(check_script([made], {path: target.runner.env_python(path)}, False), report_script(modules))


def _checked(env: Environment, after: AfterSteps | None, notes: list[str] | None) -> Environment:
    """`env`, built; `notes` get what its check found (see _after_build) and what its modules' packages hide."""
    if after is not None and notes is not None:
        notes += left_broken(read_answers(after.output, [env]).get(env.path, []), "Installing its packages",
                             undo=False)
        notes += [shadow.sentence() + "." for shadow in shadowed(env)]
    return env


def build(session: Session, target: Target, caps: Capabilities, reservation: Reservation, *, kind: str,
          modules: Sequence[str], python: str | None, system_site_packages: bool, packages: Sequence[str],
          conda_packages: Sequence[str] = (), channels: Sequence[str] = (), requested: Sequence[str] | None = None,
          progress: Progress, extra_meta: dict | None = None, modules_checked: bool = True,
          on_begun: Callable[[dict], None] | None = None, constraints: Sequence[str] = (),
          notes: list[str] | None = None, conda_requested: Sequence[str] | None = None) -> Environment:
    """Make the environment in a reservation's folder, install packages, record how it was made. A reservation
    not started yet is started here (`on_begun` is given its begin's answer: see start_and_build). Its begin,
    making the environment, installing into it and its finish are one command where they can be
    (build_in_one_command, else run_steps for what is between begin and finish).

    `modules_checked`: whether `modules` are known to load (loadable_modules); if not, the command that makes
    the environment finds out, and only when they did not load are they checked, with Lmod's prerequisites
    put in front, and that command run again. A failed package install raises InstallFailed, so callers can
    tell it from a failed creation. `constraints` (pip's -c lines) narrow every install, this one and later ones:
    the environment keeps them (recipes.constraints_file) and records them. Once the packages are in, the same
    command checks them (see _after_build), and `notes` get what it found. `requested` and `conda_requested`: what
    is recorded as asked for, where that is not what the installers are given (a copy's exact pins).
    """
    path, login = reservation.path, target  # modules are checked on the login node, as its runner loads them
    target = on_compute_node(target, progress.on_step)  # a Slurm job where the cluster asks for it (issue 12)
    modules = list(modules)
    checked = modules_checked or not modules or not target.runner.has_module_system

    def steps_for(chosen: list[str]) -> list[tuple[Step, type[CommandFailed]]]:
        return _build_steps(target, caps, path, kind, chosen, python, system_site_packages, packages, conda_packages,
                            channels, constraints)

    def meta_for(chosen: list[str]) -> dict:
        return {"kind": kind, "modules": list(chosen), "python": python,
                # recorded in the environment, which other users may read: never with credentials
                "requested": [redact(line) for line in (requested if requested is not None else packages)],
                "conda_requested": list(conda_requested if conda_requested is not None else conda_packages),
                "channels": conda_channels(caps.conda_tool, channels) if kind == "conda" else list(channels),
                "system_site_packages": system_site_packages, "created": now_iso(),
                "created_with": created_with(), **({"constraints": [redact(c) for c in constraints]} if constraints
                                                   else {}),
                **(extra_meta or {})}

    def run(chosen: list[str]) -> Environment:
        steps = steps_for(chosen)
        after = _after_build(target, path, chosen, system_site_packages) if packages or conda_packages else None
        shown = replace(progress, on_line=hiding_markers(progress.on_line))
        if not reservation.held:
            begun = on_begun or _ignore
            if target is login:  # begin and finish run where the lock is (a Slurm job's node is elsewhere)
                made = build_in_one_command(target, reservation, steps, shown, meta_for(chosen),
                                            check_loaded=not checked, on_begun=begun, after=after)
                if made is not None:
                    return _checked(made, after, notes)
            if not reservation.held:
                progress.step(f"Reserving {reservation.path}")
                reservation.start()
                begun(reservation.answer)
        run_steps(target, steps, shown, check_loaded=not checked, after=after)
        progress.step(RECORDING_STEP)
        return _checked(reservation.finish(meta_for(chosen), pythonpath_report=read_report(after.output)
                                           if after is not None else ""), after, notes)

    if not checked and not one_command(target, [step for step, _ in steps_for(modules)]):
        checked, modules = True, loadable_modules(login, modules, progress)
    try:
        return run(modules)
    except NotStarted:
        if checked:
            raise
        asked = modules
        checked, modules = True, loadable_modules(login, modules, progress)  # refuses modules that do not load
        added = [module for module in modules if module not in asked]
        if added:  # the same step is shown again next: say why (T12 saw it twice, unexplained)
            progress.step(f"{' '.join(asked)} needs {' '.join(added)} loaded first (the module system says so): "
                          "making it again with them")
        return run(modules)
