"""Import a uv project (pyproject.toml + uv.lock) through the one import pipeline.

A uv project is one more format: its reader (uvproject.to_spec) turns the lock into an EnvSpec, the
versions uv.lock selects for the target's markers with every file hash the lock lists, and
importing.py plans and builds it like any other file (uv installs where the target has it, pip
elsewhere), into a plain environment ``<root>/<name>``. The project's files never leave this computer.
"""
from __future__ import annotations

import shlex
from pathlib import Path
from urllib.parse import urlsplit


from .. import validate
from ..capabilities import Capabilities, newest_python_within
from ..errors import InvalidInput
from ..spec import EnvSpec
from ..targets import Session, Target
from ..uvproject import UvProject, read_uv_project, to_spec
from .common import Progress, capabilities
from .importing import ImportPlan, Imported, import_environment, index_hosts, plan_import


def import_uv_project(session: Session, target_name: str, folder: Path, *, name: str | None = None,
                      root: str | None = None, top_level: bool = False, agreed: bool = False,
                      progress: Progress | None = None) -> Imported:
    """Build the project's locked environment on the target; on failure or cancel nothing is left behind.

    The project is read (and a hostile one refused) before anything runs; then import_environment builds
    it. With `top_level`, when the locked versions cannot be installed there, the project's own
    dependencies are installed instead, newer versions allowed. Packages the plan refuses (from this
    computer's folders) stop the import unless `agreed`.
    """
    progress = progress or Progress()
    project = read_uv_project(Path(folder))
    chosen = validate.env_name(name or project.name)
    root = validate.remote_folder(root) if root is not None else None
    spec = _spec_for_target(session, target_name, project, progress)
    imported = import_environment(session, target_name, spec, name=chosen, root=root, top_level=top_level,
                                  agreed=agreed, progress=progress)
    imported.notes[:0] = _lock_notes(project, spec, session.target(target_name))
    return imported


def plan_uv_project(session: Session, target_name: str, folder: Path, *, name: str | None = None,
                    progress: Progress | None = None) -> ImportPlan:
    """The plan import_uv_project would build on the target (nothing is created)."""
    progress = progress or Progress()
    project = read_uv_project(Path(folder))
    chosen = validate.env_name(name or project.name)
    spec = _spec_for_target(session, target_name, project, progress)
    plan = plan_import(session, target_name, spec, chosen, progress)
    plan.notes[:0] = _lock_notes(project, spec, session.target(target_name))
    return plan


def _spec_for_target(session: Session, target_name: str, project: UvProject, progress: Progress) -> EnvSpec:
    """The project's EnvSpec for this target: its Python (from requires-python) and its markers."""
    target = session.target(target_name)
    caps = capabilities(session, target, progress)
    python = _pick_python(target, caps, project)
    spec = to_spec(project, target.runner.marker_environment(python, progress.cancel))
    spec.python = python
    return spec


def _lock_notes(project: UvProject, spec: EnvSpec, target: Target) -> list[str]:
    """How the lock's packages are checked, which come from outside a package index, which were locked
    against an index other than the target's (they are installed from the target's own), and that the
    project itself is not installed where `uv sync` would install it."""
    notes = [] if not project.installs_itself else [_project_itself(project, target)]
    allowed = index_hosts(target.pip_args)
    elsewhere = sorted({p.location for p in project.locked if p.source == "registry"
                        and (urlsplit(p.location).hostname or "").lower() not in allowed})
    if elsewhere:
        notes.append(f"uv.lock was made against {', '.join(elsewhere)}; EnvDesk downloads nothing from there: "
                     "the locked versions come from this target's own package index, each file checked against "
                     "the lock's hashes where it lists them.")
    unchecked = [pin.name for pin in spec.pip_pins if pin.url is None]
    if spec.hashed:
        notes.append(f"{len(spec.hashed)} locked package(s) are installed with the file hashes from uv.lock: each "
                     "of their files is checked against them" + (", the others are not (below)." if unchecked else "."))
    if unchecked:
        notes.append(f"uv.lock lists no file hashes for {', '.join(unchecked)}, so they are installed at their "
                     "locked versions without a hash check.")
    return notes + project.source_notes()


def _project_itself(project: UvProject, target: Target) -> str:
    """Why the project's own package is not in the environment, and how to add it."""
    folder = shlex.quote(str(project.folder.resolve())) if target.profile is None else "FOLDER"
    command = (f"uv pip install --python ENV/bin/python --no-deps -e {folder} (ENV/bin/python -m pip install "
               f"--no-deps -e {folder} where there is no uv; --no-deps keeps the locked versions)")
    where = (f"install its folder into the environment: {command}" if target.profile is None else
             f"copy its folder to {target.label} and install it there into the environment: {command}")
    return (f"The project itself ({project.name}) is not installed: uv sync installs it from its own folder, "
            f"and EnvDesk builds what uv.lock lists for it. To add it, {where}.")


def _pick_python(target: Target, caps: Capabilities, project: UvProject) -> str | None:
    """The newest Python the target offers that requires-python allows (None: no requirement)."""
    if not project.requires_python:
        return None
    python = newest_python_within(caps, project.requires_python)
    if python is None:
        raise InvalidInput(f"This project needs Python {project.requires_python}; {target.label} offers "
                           f"{', '.join(caps.python_versions()) or 'none'}. Nothing was created.",
                           "Lock the project for a Python the target has (requires-python in pyproject.toml).")
    return python
