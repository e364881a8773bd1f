"""Import a uv project (pyproject.toml + uv.lock): `uv sync --frozen` where the target has uv, else pip.

Where the target has uv, the project is rebuilt as a project: ``<root>/<name>/`` holds the two uploaded
files and the environment is ``<root>/<name>/.venv`` (so ``uv sync``/``uv run`` keep working there).

How the "being built" mark survives ``uv sync``: the agent's ``begin`` reserves ``.venv`` by making it
with only ``.envdesk/CREATING`` inside, and ``uv sync`` refuses such a folder ("not a valid Python
environment"). So ``.venv`` is first made a real, empty environment with ``uv venv --allow-existing``
(which leaves the folder's other files alone, exactly as a uv environment is created by
create.py), with the same Python that ``uv sync`` is then told to use (``--python``): uv only replaces
a project environment whose interpreter does not match the request, so it syncs into this one and the
marker stays until ``finish`` removes it. ``UV_PROJECT_ENVIRONMENT`` is set to that ``.venv`` for the
sync, so a value the user exported in their login files cannot send the packages elsewhere. Should the
marker still go missing, the cleanup puts it back before ``abort``, so the agent removes the folder.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from .. import spec as specs
from .. import validate
from ..about import created_with
from ..protocol import LOCK_SUFFIX
from ..capabilities import Capabilities, choose_python
from ..errors import CommandFailed, InvalidInput
from ..recipes import PIP_TO_UV, Step, create_step
from ..runner import join_command
from ..spec import now_iso
from ..targets import Session, Target
from ..uvproject import UvProject, read_uv_project, to_spec
from .common import Progress, Reservation, capabilities, run_step
from .create import choose_root, remember_root
from .importing import ImportPlan, Imported, import_environment, plan_import
from .modules import loadable_modules

VENV = ".venv"
log = logging.getLogger(__name__)


def import_uv_project(session: Session, target_name: str, folder: Path, *, name: str | None = None,
                      root: str | None = None, top_level: bool = False,
                      progress: Progress | None = None) -> Imported:
    """Build the project's locked environment on the target; on failure or cancel nothing is left behind.

    With uv there: upload the project to ``<root>/<name>/`` and ``uv sync --frozen`` its ``.venv``.
    Without: a pip environment ``<root>/<name>`` with every locked version pinned (import_environment).
    With `top_level`, when the locked versions cannot be installed there, the project's own
    dependencies are resolved again for that target instead (``uv sync`` without ``--frozen``).
    """
    progress = progress or Progress()
    project = read_uv_project(Path(folder))
    chosen = validate.env_name(name or project.name)
    root = validate.remote_folder(root) if root is not None else None
    if project.local_only:
        raise InvalidInput(
            "This project uses packages from folders or files of this computer, which no other machine "
            "has: " + "; ".join(p.describe(project.folder) for p in project.local_only) + ". Nothing was created.",
            "Publish those packages to an index (or a git repository) and lock the project again.")
    target = session.target(target_name)
    caps = capabilities(session, target, progress)
    python = _pick_python(target, caps, project)
    notes = project.source_notes()
    uv = caps.uv()
    if uv is None:
        spec = to_spec(project, _environment(target, python, progress))
        spec.python = python
        imported = import_environment(session, target_name, spec, name=chosen, root=root, top_level=top_level,
                                      progress=progress)
        imported.notes[:0] = [f"{target.label} has no uv, so pip installed the versions locked in uv.lock "
                              "into a plain environment.", *notes]
        return imported
    return _sync(session, target, caps, project, chosen, root, python, uv, notes, progress, top_level)


def plan_uv_project(session: Session, target_name: str, folder: Path, *, name: str | None = None,
                    progress: Progress | None = None) -> ImportPlan:
    """The plan for a uv project on a target, as import_environment would build it without uv there."""
    progress = progress or Progress()
    project = read_uv_project(Path(folder))
    target = session.target(target_name)
    caps = capabilities(session, target, progress)
    python = _pick_python(target, caps, project)
    spec = to_spec(project, _environment(target, python, progress))
    spec.python = python
    spec.refused += [specs.Refused(p.describe(project.folder), specs.LOCAL_SOURCE) for p in project.local_only]
    plan = plan_import(session, target_name, spec, validate.env_name(name or project.name), progress)
    if caps.uv() is not None:
        plan.notes.append(f"{target.label} has uv: the project is built with 'uv sync --frozen' from uv.lock.")
    return plan


def _pick_python(target: Target, caps: Capabilities, project: UvProject) -> str | None:
    """The newest Python the target offers that requires-python allows (None: no requirement)."""
    if not project.requires_python:
        return None
    allowed = SpecifierSet(project.requires_python)
    offered = [m.version for m in caps.python_modules] + ([caps.system_python] if caps.system_python else [])
    fitting = []
    for version in offered:
        try:
            if allowed.contains(Version(version), prereleases=True):
                fitting.append(version)
        except InvalidVersion:
            continue
    if not fitting:
        raise InvalidInput(f"This project needs Python {project.requires_python}; {target.label} offers "
                           f"{', '.join(caps.python_versions()) or 'none'}. Nothing was created.",
                           "Lock the project for a Python the target has (requires-python in pyproject.toml).")
    return max(fitting, key=Version)


def _environment(target: Target, python: str | None, progress: Progress) -> dict[str, str]:
    """Marker values of the target, so pip gets only what uv would install there."""
    return target.runner.marker_environment(python, progress.cancel)


def _sync(session: Session, target: Target, caps: Capabilities, project: UvProject, chosen: str,
          root: str | None, python: str | None, uv: tuple[str, list[str]], notes: list[str],
          progress: Progress, top_level: bool = False) -> Imported:
    choice = choose_python(caps, python, "uv")
    if choice.note:
        notes.append(choice.note)
    modules = loadable_modules(target, list(choice.modules), progress)
    uv_command, uv_modules = uv
    python_command = target.runner.python_command(caps)
    root, roots = choose_root(target, root)
    progress.step(f"Reserving {root.rstrip('/')}/{chosen}")
    reservation = Reservation.take(target, f"{root.rstrip('/')}/{chosen}/{VENV}", roots, create=True,
                                   operation="import")
    venv = reservation.path
    project_dir = venv.rsplit("/", 1)[0]
    ours = False
    try:
        _refuse_existing_folder(target, project_dir, progress)
        ours = True
        progress.step(f"Uploading pyproject.toml and uv.lock to {project_dir}")
        target.runner.write_file(f"{project_dir}/pyproject.toml", project.pyproject_text.encode("utf-8"))
        target.runner.write_file(f"{project_dir}/uv.lock", project.lock_text.encode("utf-8"))
        run_step(target, create_step("uv", caps, venv, modules, choice.version, False, python_command), progress)
        uv_args = tuple(PIP_TO_UV.get(arg, arg) for arg in target.pip_args)
        def uv_sync(what: str, *frozen: str) -> None:
            run_step(target, Step(what, ("env", f"UV_PROJECT_ENVIRONMENT={venv}", uv_command, "sync", *frozen,
                                         "--no-install-project", "--no-python-downloads", "--python",
                                         python_command, "--project", project_dir, *uv_args),
                                  tuple(modules) + tuple(uv_modules)), progress)

        used_top_level = False
        try:
            uv_sync("Installing the locked packages (uv sync --frozen)", "--frozen")
        except CommandFailed:
            if not top_level:
                raise
            progress.on_step("Some locked versions cannot be installed here; resolving the project's "
                             "own requirements again")
            uv_sync("Installing the project's requirements (uv sync --upgrade)", "--upgrade")
            used_top_level = True
            notes.append("The locked versions could not be installed here, so uv resolved the project's own "
                         "requirements again instead (--top-level): versions may differ from uv.lock.")
        progress.step("Recording how the environment was made")
        meta = {"kind": "uv", "modules": list(modules), "python": choice.version,
                "requested": list(project.dependencies), "conda_requested": [], "system_site_packages": False,
                "created": now_iso(), "created_with": created_with(),
                "imported_from": {"format": "uv", "path": str(project.folder)}, "uv_project": project_dir}
        env = reservation.finish(meta)
    except BaseException:
        progress.on_step("Removing the unfinished environment")
        _clean_up(target, reservation, project_dir, ours)
        raise
    remember_root(session, target, root)
    # named as listings name it (relative to the root)
    return Imported(replace(env, name=f"{chosen}/{VENV}"), notes, used_top_level)


def _refuse_existing_folder(target: Target, project_dir: str, progress: Progress) -> None:
    """`begin` made <root>/<name> if it was missing; anything else in it means it was there before."""
    result = target.runner.run(["ls", "-A", project_dir], cancel=progress.cancel, timeout=60)
    result.check(f"Looking inside {project_dir}")
    others = set(result.stdout.split()) - {VENV, VENV + LOCK_SUFFIX}
    if others:
        raise InvalidInput(f"{project_dir} already exists. Pick another name or delete it first.")


def _clean_up(target: Target, reservation: Reservation, project_dir: str, ours: bool) -> None:
    """Remove the half-made environment (through the agent) and, if the folder is ours, the project files.

    Runs after a cancel too, so it passes no cancel token.
    """
    venv = reservation.path
    quoted, marker = join_command([venv]), join_command([f"{venv}/.envdesk"])
    if ours:
        _best_effort(target, f"if [ -d {quoted} ] && [ ! -L {quoted} ]; then mkdir -p {marker} && "
                             f": > {join_command([f'{venv}/.envdesk/CREATING'])}; fi",
                     "mark the unfinished environment")
    reservation.release(remove_unfinished=True)
    if ours:
        files = [f"{project_dir}/{name}" for name in ("pyproject.toml", "uv.lock")]
        _best_effort(target, f"rm -f -- {join_command(files)} && rmdir -- {join_command([project_dir])}",
                     "remove the uploaded project files")


def _best_effort(target: Target, script: str, label: str) -> None:
    """A cleanup command whose failure must not hide the error that made the cleanup necessary."""
    try:
        result = target.runner.run_shell(script, timeout=120, label=label)
    except Exception as exc:  # the connection may be gone
        log.warning("could not %s on %s: %s", label, target.label, exc)
        return
    if not result.ok:
        log.warning("could not %s on %s: %s", label, target.label, result.stderr.strip())
