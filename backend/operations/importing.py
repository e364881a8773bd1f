"""Build an environment from an EnvSpec on any target, mapping modules and reporting what it lacks."""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .. import spec as specs
from .. import validate
from ..capabilities import Capabilities, PythonMissing, choose_python, newest_python_within, stand_in_kind
from ..errors import CommandFailed, CondaInstallFailed, InstallFailed, InvalidInput
from ..inventory import Environment
from ..provided import left_out_notes
from ..recipes import Installer, check_conda_channels
from ..runner import MESSAGE_LINE, CommandResult, join_command
from ..spec import EnvSpec
from ..targets import Session, Target
from .common import Progress, Reservation, capabilities, full_path
from .create import build, choose_root, remember_root, start_and_build, undo
from .modules import loadable_modules, ways_behind
from .options_given import accept_options_given
from .python_fit import misfit_notes
from .site_builds import OTHER_BUILD, install_public_releases, public_found, public_release, why_public, why_withheld
from .version_changes import fallback_note, version_changes


@dataclass
class Unavailable:
    """A pinned package the target cannot provide, and why."""

    spec: str
    reason: str


@dataclass
class OutsideSource:
    """A package the plan would download straight from a host other than the target's package index."""

    line: str
    host: str

    def to_json(self) -> dict[str, str]:
        return {"line": self.line, "host": self.host}


PYPI_HOSTS = frozenset({"pypi.org", "files.pythonhosted.org"})
"""Where pip and uv download from when no index is named."""

_INDEX_OPTIONS = ("--index-url", "-i", "--extra-index-url", "--find-links", "-f")
_PRIMARY_INDEX_OPTIONS = ("--index-url", "-i")


def index_hosts(pip_args: Sequence[str]) -> frozenset[str]:
    """The hosts the target's installer is set to download from: those its pip arguments name, and PyPI's
    unless they replace the index (--index-url, --no-index)."""
    hosts: set[str] = set()
    replaced = "--no-index" in pip_args
    for position, arg in enumerate(pip_args):
        option, equals, value = arg.partition("=")
        if option not in _INDEX_OPTIONS:
            continue
        url = value if equals else (pip_args[position + 1] if position + 1 < len(pip_args) else "")
        replaced = replaced or option in _PRIMARY_INDEX_OPTIONS
        host = urlsplit(url).hostname
        if host:
            hosts.add(host.lower())
    return frozenset(hosts if replaced else hosts | PYPI_HOSTS)


_VCS_URL = r"^(git|hg|svn|bzr)\+"
_EDITABLE_OPTIONS = ("-e ", "--editable ", "--editable=")


def download_url(line: str) -> str | None:
    """The URL a requirement line has the installer download from, in each form pip's requirements files
    allow: a 'name @ URL' direct reference, or a bare archive or version-control URL, either after -e.
    None for a name with versions, and for anything that is not a URL."""
    requirement = specs.without_hashes(line).strip()
    if validate.plainly_valid_requirement(requirement):
        return None  # a name and versions: no URL (packaging's parser not loaded for these)
    for option in _EDITABLE_OPTIONS:
        if requirement.startswith(option):
            requirement = requirement[len(option):].strip()
            break
    from packaging.requirements import InvalidRequirement, Requirement
    try:
        return Requirement(requirement).url or None
    except InvalidRequirement:
        bare = requirement.split()[0].rstrip(";") if requirement else ""  # pip's 'URL ; marker' form
        return bare if "://" in bare else None


def outside_sources(lines: Sequence[str], allowed_hosts: frozenset[str]) -> list[OutsideSource]:
    """The lines that download from a host other than the target's index: any version-control URL with a
    host (a checkout is never the index), and archive URLs on a host outside `allowed_hosts`. Files and
    folders on the target itself are not downloads."""
    found = []
    for line in lines:
        url = download_url(line)
        if not url:
            continue
        vcs = re.match(_VCS_URL, url) is not None
        parts = urlsplit(url.split("+", 1)[1] if vcs else url)
        host = (parts.hostname or "").lower()
        if parts.scheme != "file" and host and (vcs or host not in allowed_hosts):
            found.append(OutsideSource(specs.redact(line), host))
    return found


@dataclass
class ImportPlan:
    """What will be built where, decided before anything is created (the GUI and --dry-run show it first).

    Every requirement of the imported file is in exactly one of `pins` (pip/uv installs it as
    written), `conda_pins` (conda installs it), `adapted` (installed in another form, said why) or
    `refused` (not installed, said why). `blocked` says why the target cannot build it at all.
    `outside` names what would be downloaded from hosts other than the target's package index: like
    refused lines, they need the user's agreement.
    """

    name: str
    kind: str
    modules: list[str]
    python: str | None
    pins: list[str]
    requirements: list[str]
    conda_pins: list[str]
    notes: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    adapted: list[specs.Adapted] = field(default_factory=list)
    refused: list[specs.Refused] = field(default_factory=list)
    blocked: str | None = None
    outside: list[OutsideSource] = field(default_factory=list)
    modules_checked: bool = True
    """Whether `modules` are known to load; if not, the command that makes the environment checks (create.build),
    and what needs them loaded before that settles them first (settle_modules)."""
    source_modules: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    """The file's constraints (-c): every install into the environment follows them (create.build)."""
    public_releases: dict[str, str] = field(default_factory=dict)
    """The lines pinning a site's own build (site_builds) that the check found missing here while their public
    release is here: each line, and the release installed in its place (one of `adapted`)."""
    other_builds: dict[str, str] = field(default_factory=dict)
    """The lines pinning a build variant (site_builds.other_build: +cu118) that the check found missing here while
    their release is here, not installed without the user's agreement: each line, and that release."""
    exported_on: str = ""
    """The other system (macOS, Windows) a conda file was exported on, which its builds are for (without_builds)."""
    from_conda: list[str] = field(default_factory=list)
    """A conda file's conda packages installed from the target's package index, the target having no conda (one of
    `adapted` each): PyPI's builds, not conda's, so only with the user's agreement."""
    dry_run: tuple[list[str], str] | None = None
    """The lines the plan's own installer dry run judged (a conda file's, the target having no conda: its pip side
    too) and that run's report (_check_script's), which check_availability reads rather than running again (R19)."""

    @property
    def to_install(self) -> list[str]:
        """What pip or uv is given: the lines as written, then the adapted forms."""
        return self.pins + [a.as_ for a in self.adapted if a.installs]

    @property
    def filled_in(self) -> list[str]:
        """The lines with ${VARIABLES}, which the installer fills in from the target's environment and sends with
        their download: the user's to agree to (check_plan)."""
        return [line for line in self.to_install if specs.environment_variables(line)]

    @property
    def needs_agreement(self) -> bool:
        """Whether the import stops without the user's yes (check_plan): lines it leaves out, downloads from
        another host, or lines with variables. (Of the plan itself: shown() hides a variable in a credential's
        place.)"""
        return bool(self.refused or self.outside or self.filled_in or self.from_conda)

    def shown(self) -> "ImportPlan":
        """The plan as it may be shown: every line without the credentials it may hold (a token in an index URL
        of a refused line, say), which only the installer is given."""
        hide = specs.redact
        return replace(self, pins=list(map(hide, self.pins)), conda_pins=list(map(hide, self.conda_pins)),
                       channels=list(map(hide, self.channels)), notes=list(map(hide, self.notes)),
                       constraints=list(map(hide, self.constraints)),
                       adapted=[replace(a, line=hide(a.line), as_=hide(a.as_)) for a in self.adapted],
                       refused=[replace(r, line=hide(r.line), reason=hide(r.reason)) for r in self.refused],
                       outside=[replace(o, line=hide(o.line)) for o in self.outside],
                       blocked=hide(self.blocked) if self.blocked else None)

    def to_json(self) -> dict:
        """The plan as `envdesk env import --dry-run --json` prints it (scripts depend on this shape)."""
        return {"name": self.name, "kind": self.kind, "python": self.python, "modules": self.modules,
                "install": self.pins, "conda": self.conda_pins, "channels": self.channels,
                "adapted": [a.to_json() for a in self.adapted], "refused": [r.to_json() for r in self.refused],
                "outside": [o.to_json() for o in self.outside], "blocked": self.blocked, "notes": self.notes,
                "constraints": self.constraints, "from_conda": self.from_conda}


@dataclass
class Imported:
    """The new environment and what the user should know."""

    environment: Environment
    notes: list[str] = field(default_factory=list)
    used_top_level: bool = False


# Files called the same in every project: the folder holding one names the environment better
_SHARED_NAMES = ("requirements", "environment", "pylock", "constraints", "envdesk", "pyproject", "uv")


def name_from_file(path: Path) -> str:
    """A name for what `path` builds when the file gives none: its own name, or for a file called as in every
    project (requirements.txt, environment.yml) its folder's, but a lock's own (pylock.NAME.toml, as PEP 751 names
    one); "" when none makes a valid name."""
    stem = path.name.split(".")[0]
    shared = re.match(rf"^(?:{'|'.join(_SHARED_NAMES)})(?:[-_].*)?$", stem.lower())  # requirements-dev, not uvicorn
    named_lock = re.fullmatch(r"pylock\.([^.]+)\.toml", path.name, re.IGNORECASE)  # PEP 751: pylock.NAME.toml
    wanted = named_lock.group(1) if named_lock else path.resolve().parent.name if shared else stem
    import unicodedata  # 'ünïcode' -> 'unicode': letters without their accents, rather than dashes
    wanted = unicodedata.normalize("NFKD", wanted).encode("ascii", "ignore").decode("ascii")
    wanted = re.sub(r"[^A-Za-z0-9._+-]+", "-", wanted).strip("._+-")[:100].rstrip("._+-")
    try:
        return validate.env_name(wanted)
    except InvalidInput:
        return ""


def read_spec_file(path: Path, *, pipe_ok: bool = False) -> EnvSpec:
    """Read an export file of any supported format (a uv project folder is read by operations/uvimport.py); one
    that names no environment is named after the file (name_from_file). `pipe_ok`: a pipe is read too, waiting
    for what it brings (the command line's `<(…)`); else only an ordinary file is (the window never waits)."""
    import stat
    try:
        if path.is_dir() or path.name in ("pyproject.toml", "uv.lock"):
            raise InvalidInput(f"{path} is (part of) a uv project, not an environment file.",
                               "Import the project folder itself, whose uv.lock is read with its pyproject.toml: "
                               "in the app, Import and pick its uv.lock; on the command line, envdesk env import "
                               "CLUSTER FOLDER.")
        if pipe_ok and stat.S_ISFIFO(path.stat().st_mode):
            with path.open("rb") as handle:  # no further than an environment file can go
                data = handle.read(LARGEST_FILE + 1)
            if len(data) > LARGEST_FILE:
                raise InvalidInput(f"{path} is too large to be an environment file.")
        else:
            data = specs.read_file_to_import(path, str(path))
    except OSError as exc:
        raise InvalidInput(f"Could not read {path}: {exc.strerror or exc}.", READ_HINT) from exc
    spec = specs.from_text(specs.decode_text(data, str(path)), path.name, path.parent)
    spec.name = spec.name or name_from_file(path) or None
    return spec


LARGEST_FILE = specs.LARGEST_FILE
READ_HINT = "Check the file's path (a relative one starts from the current folder) and that you may read it."
"""What to do where an environment file cannot be read."""


def read_spec_bytes(data: bytes, shown: str, folder: Path) -> EnvSpec:
    """Read an environment file given as bytes (a pipe), its format told by its content; `-r` files next to
    it are looked for in `folder`."""
    if len(data) > LARGEST_FILE:
        raise InvalidInput(f"{shown} is too large to be an environment file.")
    return specs.from_text(specs.decode_text(data, shown), "", folder)


def _within_requires_python(caps: Capabilities, spec: EnvSpec, target: Target) -> str | None:
    """The newest Python of the target's that the file's requires-python allows (a pylock.toml's; uv refuses to
    install a lock into a Python outside it); None where the file has none."""
    if not spec.requires_python:
        return None
    python = newest_python_within(caps, spec.requires_python)
    if python is None:
        raise PythonMissing(f"This file needs Python {spec.requires_python}; available: "
                            f"{', '.join(caps.python_versions()) or 'none'}.", "")
    return python


def _map_modules(target: Target, caps: Capabilities, spec: EnvSpec, kind: str,
                 progress: Progress) -> tuple[list[str], str | None, list[str], bool]:
    """The modules, Python version and notes of the environment built from `spec` here, and whether the modules
    are known to load. The probe's own Python modules, named with their versions, are left to the command that
    makes the environment to check (as a create does: see create.build), not loaded once more beforehand."""
    notes: list[str] = []
    if kind == "conda":
        return [], spec.python, notes, True
    try:
        choice = choose_python(caps, spec.python or _within_requires_python(caps, spec, target), kind)
    except PythonMissing as exc:  # the file's Python is not here: say how to import it with one that is
        raise PythonMissing(exc.message.replace("This target", target.label, 1),
                            "Import it with one of those: the Import dialog's Python, or env import … --python X.Y; "
                            "its pins may need versions made for that Python (--top-level, 'Allow newer "
                            "versions').") from exc
    own = [f"{pin.name}=={pin.version}" for pin in spec.pip_pins]
    if not caps.has_modules:
        if spec.modules:
            notes.append(f"{target.label} has no modules; using its own Python {choice.version}.")
            notes += left_out_notes(spec.provided, spec.modules, own)
        return [], choice.version, notes, True
    checked = not all("/" in module for module in choice.modules)
    modules = loadable_modules(target, list(choice.modules), progress, notes) if checked else list(choice.modules)
    python_families = ("python", "python3")
    chosen = {m.partition("/")[0] for m in modules}  # a compiler the Python here needs replaces the file's own
    others = [m for m in spec.modules if m.partition("/")[0].lower() not in python_families
              and m.partition("/")[0] not in chosen]
    dropped = [m for m in others if m not in caps.modules]
    first, unmapped = _behind_here(target, dropped, modules, choice.version, progress)
    kept = [m for m in others if m in caps.modules or m in first]
    dropped = [m for m in dropped if m not in first and m not in unmapped]
    # in the file's order around its Python module (python/3.11 scipy-stack/2023b: a module that needs a Python
    # loaded comes after it); without one, the others first (a compiler the Python module needs, say); a module
    # behind others after what Lmod says to load first
    python_at = next((at for at, m in enumerate(spec.modules) if m.partition("/")[0].lower() in python_families),
                     len(spec.modules))
    before = [n for m in kept if spec.modules.index(m) < python_at for n in (*first.get(m, ()), m)]
    after = [n for m in kept if spec.modules.index(m) > python_at for n in (*first.get(m, ()), m)]
    modules = list(dict.fromkeys([*before, *modules, *after]))
    notes += _modules_note(list(spec.modules), modules, choice.version)
    notes += unmapped.values()
    if dropped:
        notes.append(f"Not available here and left out: {' '.join(dropped)}.")
    if dropped or unmapped:
        notes += left_out_notes(spec.provided, [*dropped, *unmapped], own)
    if choice.note:
        notes.append(choice.note)
    return modules, choice.version, notes, checked or not modules


def _behind_here(target: Target, modules: list[str], chosen: list[str], python: str | None,
                 progress: Progress) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """Of the source's `modules` that `module avail` here does not list, those Lmod's spider finds behind others
    (SciPy-bundle/2023.07 behind GCC/12.3.0 in an EasyBuild hierarchy: T20), with what to load before each that
    `chosen` (the Python's modules) lacks, by the first way Lmod gives that replaces none of `chosen`; and those
    every way of which would replace one (another GCC than the Python's: Lmod would swap it, and the Python with
    it), each with a note saying so. Only modules with a version are asked about (one command)."""
    found = ways_behind(target, [m for m in modules if "/" in m], progress)
    families = {m.partition("/")[0]: m for m in chosen}
    first: dict[str, tuple[str, ...]] = {}
    unmapped: dict[str, str] = {}
    for module, lines in found.items():
        fits = [way for way in lines if all(families.get(m.partition("/")[0], m) == m for m in way)]
        if fits:
            first[module] = tuple(m for m in fits[0] if m not in chosen)
            continue
        way = lines[0]
        swapped = [families[m.partition("/")[0]] for m in way if families.get(m.partition("/")[0], m) != m]
        unmapped[module] = (f"Not mapped: {module} is here behind {' '.join(way)} (Lmod's module spider), which "
                            f"would replace {' '.join(swapped)} that Python {python} here needs; left out.")
    return first, unmapped


def _modules_note(source: list[str], modules: list[str], python: str | None) -> list[str]:
    """What the source's modules became here, if they changed."""
    if source == modules:
        return []
    if not source:  # a file from no environment that recorded its modules (a plain requirements file, say)
        return [f"Modules loaded for it here: {' '.join(modules)} (Python {python})."]
    return [f"Modules: {' '.join(source)} on the source became {' '.join(modules) or '(none)'} here "
            f"(Python {python})."]


def _with_modules_noted(notes: list[str], plan: ImportPlan, was: list[str], modules: list[str]) -> list[str]:
    """`notes` with what the source's modules became told for `modules`, in place of `was`."""
    said = _modules_note(plan.source_modules, was, plan.python)
    return [note for note in notes if note not in said] + _modules_note(plan.source_modules, modules, plan.python)


def settle_modules(target: Target, plan: ImportPlan, progress: Progress) -> None:
    """Make the plan's modules known to load, with any prerequisites Lmod names put in front (one command, only
    where they are not known yet): for what runs with them before the environment is made."""
    if plan.modules_checked:
        return
    modules = loadable_modules(target, plan.modules, progress)
    plan.notes = _with_modules_noted(plan.notes, plan, plan.modules, modules)
    plan.modules, plan.modules_checked = modules, True


IMPORT_INSTEAD = "Import the file instead: "


def requirements_to_create(path: Path, spec: EnvSpec | None = None) -> list[str]:
    """The packages of a requirements file given to a new environment, each installed as written (`spec`: the
    file already read, such as standard input, which `path` then only names).

    A line that would not be (a hash to check, an editable folder, an option, a conda package, anything refused or
    adapted) stops the create before anything is made, in an InvalidInput whose hint starts with IMPORT_INSTEAD: an
    import handles each and lists what it leaves out, so a create never drops one. The file's settings (an export's
    Python, modules, kind) are not packages: the create's own choices decide."""
    spec = spec or read_spec_file(path)
    kept = [(line, "its hashes would not be checked") for line in spec.hashed]
    kept += [(pin.pip_line(), "an editable install") for pin in spec.pip_pins if pin.editable]
    kept += [(line, "a conda package") for line in [pin.conda_line() for pin in spec.conda_pins]
             + spec.conda_requirements]
    kept += [(item.line, f"{item.as_}, which an import keeps with the environment") for item in spec.adapted
             if item.line.startswith(("-c", "--constraint"))]
    kept += [(item.line, item.reason) for item in spec.refused]
    kept += [(item.line, f"read as {item.as_}: {item.reason}") for item in spec.adapted if item.installs]
    if kept:
        shown = "; ".join(f"{line} ({why.rstrip('.')})" for line, why in kept[:3]) + (f"; and {len(kept) - 3} more"
                                                                          if len(kept) > 3 else "")
        raise InvalidInput(f"{path} holds what a new environment does not install as written: {shown}.",
                           IMPORT_INSTEAD + "it checks hashes, installs editable folders and "
                           "lists what it leaves out before anything is made.")
    pinned = [pin.pip_line() for pin in spec.pip_pins]
    return pinned + [line for line in spec.requirements if line not in set(pinned)]


def plan_import(session: Session, target_name: str, spec: EnvSpec, name: str | None = None,
                progress: Progress | None = None) -> ImportPlan:
    """Decide the kind, modules and packages for building `spec` on the target; never drops a requirement.

    The plan is made even where the target cannot build it: `blocked` then says why.
    """
    progress = progress or Progress()
    target = session.target(target_name)
    caps = capabilities(session, target, progress)
    chosen = _chosen_name(name, spec)
    kind = spec.kind if spec.kind_named else caps.default_kind()  # T24: a requirements file made a venv, not uv
    notes: list[str] = []
    blocked, from_conda = None, []
    spec, exported_on = _other_systems_left_out(target, spec)
    if exported_on:
        notes.append(_exported_elsewhere(spec, exported_on, kind in caps.kinds()))
    if kind not in caps.kinds():
        in_range = _python_in_range(caps, spec) if kind == "conda" else None
        conda_only = _conda_only_packages(spec, in_range is not None) if kind == "conda" else []
        from_conda = _conda_packages(spec) if kind == "conda" else []
        if "python" in conda_only:
            blocked = (f"{target.label} has no conda, mamba or micromamba, and no Python within what the file asks "
                       f"for to make a venv of. {NO_CONDA_NEXT}")
        elif conda_only and not target.runner.may_lack_packages:  # this computer: its index is not checked first
            blocked = (f"{target.label} has no conda, mamba or micromamba to install {', '.join(conda_only[:5])}"
                       f"{' and more' if len(conda_only) > 5 else ''}. {NO_CONDA_NEXT} Or keep only the file's "
                       "pip: section, which any Python environment can hold.")
        elif conda_only or from_conda:
            kind = stand_in_kind(caps, "conda")
            notes.append(f"{target.label} has no conda, mamba or micromamba: making a {kind} environment of the "
                         "Python the file asks for, with its pip packages and those of its conda packages that "
                         f"{target.label}'s package index has (PyPI's builds, not conda's); the rest is left out, "
                         f"as listed. To keep conda's builds: {NO_CONDA_NEXT[0].lower()}{NO_CONDA_NEXT[1:]}")
            spec = _conda_side_as_venv(replace(spec, conda_requirements=[
                entry for entry in spec.conda_requirements if entry not in from_conda]), kind, in_range)
        elif kind == "conda":
            kind = stand_in_kind(caps, "conda")
            notes.append(f"{target.label} has no conda, and the file asks conda only for Python and pip: making "
                         f"a {kind} environment with the same packages instead.")
            spec = _conda_side_as_venv(spec, kind, in_range)
        else:
            stand_in = stand_in_kind(caps, kind)
            notes.append(f"{target.label} cannot make {kind} environments; making a {stand_in} one instead.")
            kind = stand_in
    modules: list[str]
    module_notes: list[str]
    if blocked:
        modules, python, module_notes, checked = [], spec.python, [], True
    else:
        try:
            modules, python, module_notes, checked = _map_modules(target, caps, spec, kind, progress)
        except PythonMissing as exc:  # a plan all the same (a dry run's answer), blocked for it
            modules, python, module_notes, checked = [], spec.python, [], True
            blocked = f"{exc.message} {exc.hint}"
    spec = _without_missing_sources(target, _editable_checkouts_as_packages(spec), progress)
    spec = accept_options_given(spec, target.pip_args, "this computer" if target.profile is None else target.label)
    spec = _unhashed_lines_for_other_systems(target, spec, python or caps.system_python, progress)
    as_written = _markers_settled(target, [*spec.requirements, *spec.constraints], python or caps.system_python,
                                  progress)  # a constraint narrows as a line does
    clashing = [[as_written[line] for line in lines] for lines in conflicting_requirements(list(as_written))]
    if clashing and not blocked:
        blocked = ("The file asks for versions that cannot all be installed: "
                   + "; ".join(" and ".join(lines) for lines in clashing) + ". Keep the line you want of each.")
    if kind == "conda" and not blocked:
        try:
            check_conda_channels(caps.conda_tool, spec.channels)
        except InvalidInput as exc:
            blocked = f"{exc.message} {exc.hint}"
    pip_lines, conda_lines = install_lines(spec, conda=kind == "conda")
    plan = ImportPlan(chosen, kind, modules, python, pip_lines, list(spec.requirements), conda_lines,
                      notes + module_notes, list(spec.channels), list(spec.adapted), list(spec.refused), blocked,
                      modules_checked=checked, source_modules=list(spec.modules), constraints=list(spec.constraints),
                      exported_on=exported_on)
    if from_conda and not blocked:
        _conda_packages_from_index(target, caps, plan, from_conda, progress)
    plan.outside = outside_sources(plan.to_install, index_hosts(target.pip_args))
    plan.notes += _variables_note(plan.filled_in, target)
    return plan


def _other_systems_left_out(target: Target, spec: EnvSpec) -> tuple[EnvSpec, str]:
    """A conda file without the packages only macOS or Windows has (libcxx, ucrt, vc, __osx: T21), where the
    target is Linux (a cluster), each said to be skipped; and the systems it was exported on ("" for none)."""
    import sys
    from .conda_from_index import other_system
    if spec.kind != "conda" or (target.profile is None and not sys.platform.startswith("linux")):
        return spec, ""
    systems = {entry: other_system(entry) for entry in spec.conda_requirements}
    skipped = [entry for entry, system in systems.items() if system]
    pins = [pin for pin in spec.conda_pins if other_system(pin.name)]
    if not skipped and not pins:
        return spec, ""
    exported_on = " and ".join(sorted({s for s in systems.values() if s} | {other_system(p.name) or "" for p in pins}
                                      - {""}))
    why = f"{exported_on}'s own, which conda on Linux neither has nor needs"
    return replace(spec, conda_requirements=[entry for entry in spec.conda_requirements if entry not in skipped],
                   pins=[pin for pin in spec.pins if pin not in pins],
                   adapted=[*spec.adapted, *(specs.Adapted(entry, f"skipped on {target.label}", why, installs=False)
                                             for entry in skipped or [pin.conda_line() for pin in pins])]), exported_on


def _exported_elsewhere(spec: EnvSpec, system: str, conda_here: bool) -> str:
    """What a plan says of a conda file exported on `system` (macOS, Windows)."""
    built = [entry for entry in spec.conda_requirements if _conda_build(entry)]
    if not built or not conda_here:
        return f"This file was exported on {system}: its packages only {system} has are skipped."
    return (f"This file was exported on {system}: its packages only {system} has are skipped, and its builds (the "
            f"part after a version, as in {built[0]}) are {system}'s, which conda here does not have. Import it with "
            "--top-level ('Allow newer versions' in the app) to keep the versions and let conda choose the builds "
            "here.")


def _conda_build(entry: str) -> str | None:
    """The build a conda match spec pins ('py311h7125741_0' of 'numpy=1.26.4=py311h7125741_0'), if any."""
    pin = specs.conda_pin(entry)
    return pin.build if pin else None


def without_builds(plan: ImportPlan) -> list[str]:
    """Drop the builds of the plan's conda lines, keeping their versions ('numpy=1.26.4=py311h7125741_0' ->
    'numpy==1.26.4'), with --top-level (T21: a file exported on macOS names builds Linux's conda has not): conda
    chooses this platform's builds. The lines changed, as written."""
    changed = [line for line in plan.conda_pins if _conda_build(line)]
    plan.conda_pins = [specs.conda_without_build(line) if line in changed else line for line in plan.conda_pins]
    if changed:
        plan.notes.append("conda chooses the builds here, at the versions the file asks for (--top-level): "
                          + ", ".join(changed) + ".")
    return changed


_BUILDS_HINT = ("A conda build (the part after a version, as in {line}) is made for one platform: a file exported on "
                "another (macOS, Windows) names builds conda here does not have. Import it with --top-level ('Allow "
                "newer versions' in the app), which keeps the versions and lets conda choose the builds here; or "
                "export it again without builds ('envdesk env export --format conda-history').")


def _conda_packages_from_index(target: Target, caps: Capabilities, plan: ImportPlan, entries: list[str],
                               progress: Progress) -> None:
    """A conda file's conda packages in a venv, where the target has no conda (T21): each whose project the
    target's package index has, at the versions asked for (its installer's dry run there says, in one command),
    is installed from it; the others are left out, each with why. Either needs the user's agreement
    (ImportPlan.from_conda, refused), as the packages are PyPI's builds, not conda's."""
    from .conda_from_index import pip_form, unsure_on_pypi
    settle_modules(target, plan, progress)  # the check runs with the Python the environment is made of
    forms = {entry: pip_form(entry) for entry in entries}
    unsure = {entry for entry, line in forms.items() if line is not None and unsure_on_pypi(line)}
    lines = list(dict.fromkeys(line for entry, line in forms.items() if line and entry not in unsure))
    missing: dict[str, str] = {}
    if lines and target.runner.may_lack_packages:  # the pip side in the same command, for check_availability
        judged = list(dict.fromkeys([*lines, *_to_check(plan, outside_sources(plan.to_install,
                                                                              index_hosts(target.pip_args)))]))
        report = _dry_run_in_scratch(target, caps, plan.modules, plan.kind, judged, progress).stdout
        plan.dry_run = (judged, report)
        missing = {m.spec: m.reason for m in _parse_missing(report)}
        unanswered = [(line, missing[line]) for line in lines if line in missing and not _index_said(missing[line])]
        if unanswered:  # T21 LOW-9: nothing is known of what the index has, so nothing is left out for it
            asked, why = unanswered[0]
            plan.blocked = (f"{target.label}'s package index could not be asked whether it has the conda packages "
                            f"({asked}: {why}). Try again once it answers.")
            return
    here, cannot = target.label, "an environment without conda cannot hold it"
    for entry, line in forms.items():
        if entry in unsure:
            plan.refused.append(specs.Refused(entry, f"without a version, conda's {line} may be another project than "
                                                     f"PyPI's of that name (conda packages programs and C libraries "
                                                     f"too); name its version, or list it under pip:; {cannot}"))
        elif line is None:
            plan.refused.append(specs.Refused(entry, "conda's own package, or versions in conda's words only, which "
                                                     f"pip has no form of; {cannot}"))
        elif line in missing:
            plan.refused.append(specs.Refused(entry, f"no conda on {here}, and its package index has no {line} "
                                                     f"({missing[line]}); {cannot}"))
        else:
            build = specs.conda_pin(entry)
            plan.adapted.append(specs.Adapted(entry, line, f"no conda on {here}: its package index has it (the "
                                              "installer's dry run there), PyPI's build"
                                              + (f", not conda's {build.build}" if build and build.build else "")))
            plan.requirements.append(line)
            plan.from_conda.append(entry)


def _unhashed_lines_for_other_systems(target: Target, spec: EnvSpec, python: str | None,
                                      progress: Progress) -> EnvSpec:
    """A file with hashes refuses its lines without them (specs.UNHASHED), but pip and uv skip a line whose
    marker leaves the target out before they ask for its hashes: such lines are skipped, and said to be, not
    refused. The markers are judged with the target's values (on a cluster, one command, only where there are
    such lines); a line whose marker cannot be read stays refused."""
    if not any(refused.reason == specs.UNHASHED for refused in spec.refused):
        return spec  # (packaging's parser is not loaded for plain pins)
    from packaging.markers import Marker
    from packaging.requirements import InvalidRequirement, Requirement
    marked: dict[str, Marker] = {}
    for refused in spec.refused:
        if refused.reason != specs.UNHASHED:
            continue
        try:
            marker = Requirement(refused.line).marker
        except InvalidRequirement:
            continue
        if marker is not None:
            marked[refused.line] = marker
    if not marked:
        return spec
    environment = target.runner.marker_environment(python, progress.cancel)
    skipped = [line for line, marker in marked.items() if _false_there(marker, environment)]
    if not skipped:
        return spec
    why = "its marker leaves this system out: pip and uv skip it, and ask no hashes of it"
    return replace(spec, refused=[r for r in spec.refused if r.reason != specs.UNHASHED or r.line not in skipped],
                   adapted=[*spec.adapted, *(specs.Adapted(line, f"skipped on {target.label}", why, installs=False)
                                             for line in skipped)])


def _markers_settled(target: Target, lines: list[str], python: str | None, progress: Progress) -> dict[str, str]:
    """The lines to check for a conflict (conflicting_requirements), each with the line as written: a marked line
    that names a package another line pins exactly is judged with the target's values (one command on a cluster, only
    where there is such a line), checked without its marker where it holds there, left out where it does not. pip
    judges the marker where it installs, then refuses the pair (`six==1.16.0` and `six!=1.16.0 ; python_version >=
    "3"`: ResolutionImpossible)."""
    pinned = {specs.requirement_name(line) for line in lines if "==" in line and ";" not in line and "@" not in line}
    marked = [line for line in lines if ";" in line and "@" not in line and not line.startswith("-")
              and specs.requirement_name(line) in pinned]
    if not marked:
        return {line: line for line in lines}
    from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
    from packaging.requirements import InvalidRequirement, Requirement
    environment = dict(target.runner.marker_environment(python, progress.cancel))
    settled: dict[str, str | None] = {}
    for line in marked:
        try:
            requirement = Requirement(line)
            holds = requirement.marker is None or requirement.marker.evaluate(environment)
        except (InvalidRequirement, InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
            continue  # the installer's to judge, as before
        requirement.marker = None
        settled[line] = str(requirement) if holds else None
    return {checked: line for line in lines if (checked := settled.get(line, line)) is not None}


def _false_there(marker: Any, environment: dict[str, str]) -> bool:
    """Whether `marker` is false with the target's values; a marker packaging cannot judge there (a version
    comparison of a value that is no version) counts as not false: its line stays refused."""
    from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
    try:
        return not marker.evaluate(dict(environment))
    except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
        return False


def _variables_note(using: Sequence[str], target: Target) -> list[str]:
    """Which lines use ${VARIABLES} (ImportPlan.filled_in), filled in on the target, not from this computer."""
    if not using:
        return []
    variables = specs.listed_variables([name for line in using for name in specs.environment_variables(line)])
    using = [specs.redact(line) for line in using]
    where = "this computer's environment" if target.profile is None else \
        f"the environment of your login shell on {target.label} (set them in ~/.bash_profile there: a login " \
        "shell that runs no terminal may stop reading ~/.bashrc before)"
    return [f"The installer fills in {variables} from {where}, as pip does with a requirements file; "
            f"a variable that is not set stays as written and that download fails: {'; '.join(using)}."]


def _chosen_name(name: str | None, spec: EnvSpec) -> str:
    """The new environment's name: the one given, else the file's, else "imported"; a file's name that cannot be
    one says to give another."""
    if name is not None or not spec.name:
        return validate.env_name(name or "imported")
    try:
        return validate.env_name(spec.name)
    except InvalidInput as exc:
        raise InvalidInput(f"The file names the environment {validate.shown(spec.name)}, which cannot be an "
                           "environment's name.", "Give it another name with --name (in the app, in the Name "
                           f"box). {exc.hint}") from exc


_PIP_SIDE = {"python", "pip"}  # what a venv has without conda


NO_CONDA_NEXT = ("Build it where there is conda; or install Miniforge in your home folder there (~/miniforge3, "
                 "which EnvDesk finds without changing your shell's set-up) and try again (in the app, after "
                 "Disconnect: EnvDesk looks at the cluster anew).")
"""How to have conda's own builds where no conda is (T10: the block said only what was missing)."""


def _conda_packages(spec: EnvSpec) -> list[str]:
    """A conda file's conda packages other than Python and pip, as its lines name them; for one that names none
    (an environment without conda's history), its exact conda pins."""
    if spec.conda_requirements:
        return [entry for entry in spec.conda_requirements if _conda_name(entry) not in _PIP_SIDE]
    return [pin.conda_line() for pin in spec.conda_pins if _conda_name(pin.name) not in _PIP_SIDE]


def _conda_only_packages(spec: EnvSpec, python_fits: bool = False) -> list[str]:
    """The names of a conda file's conda packages that a venv would lack (none: it can be built without
    conda); `python_fits`: a Python the file asks for by a range is one the target has (_python_in_range)."""
    names = dict.fromkeys(specs.conda_entry_name(entry) for entry in spec.conda_requirements
                          if _conda_name(entry) not in _PIP_SIDE
                          or (_conda_name(entry) == "python" and specs.conda_python_version(entry) is None
                              and not python_fits))
    return list(names)


def _python_in_range(caps: Capabilities, spec: EnvSpec) -> str | None:
    """For a conda file whose Python is a range ('python>=3.9,<3.12'): the newest Python the target has within
    it (a module's, or the system's), which a venv can be made with; None for one version, or none within."""
    entry = next((entry for entry in spec.conda_requirements if _conda_name(entry) == "python"), None)
    if entry is None or specs.conda_python_version(entry) is not None:
        return None
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import Version
    try:
        allowed = SpecifierSet(specs.conda_version_text(entry))
    except InvalidSpecifier:  # conda's own forms ('3.9.*|3.10.*') are conda's to read
        return None
    versions = [module.version for module in caps.python_modules] + [caps.system_python or ""]
    fits = [version for version in versions if version and allowed.contains(version)]
    return max(fits, key=Version) if fits else None


def _conda_side_as_venv(spec: EnvSpec, kind: str, python: str | None = None) -> EnvSpec:
    """A conda file's Python and pip, said to be the venv's own (each of its lines is accounted for); its
    channels are not used. `python`: the version chosen for a Python it asks for by a range (_python_in_range)."""
    as_ = {"python": f"the {kind} environment's Python" + (f", {python}: the newest here within the range"
                                                            if python else ""),
           "pip": f"the {kind} environment's own installer"}
    def as_here(entry: str) -> str:
        pinned = _conda_name(entry) == "pip" and re.search(r"[=<>]", entry.split("::")[-1])
        return as_[_conda_name(entry)] + (" (the pip its Python comes with, whose version may differ from the one "
                                          "asked for)" if pinned else "")
    return replace(spec, channels=[], python=python or spec.python, adapted=[*spec.adapted, *(
        specs.Adapted(entry, as_here(entry), "there is no conda here to install it", installs=False)
        for entry in spec.conda_requirements)])


_MISSING_SOURCES = ("import os, sys\nprint('\\n'.join(p[1:] for p in sys.argv[1:] if not (os.path.isdir if p[0] == 'd' "
                    "else os.path.exists)(os.path.expandvars(p[1:]))))\n")
"""Prints which of its arguments (d or f, then a path: a folder, or a file or folder) do not exist, its ${VARIABLES}
filled in from the environment it runs in, as the installer fills them in there."""


def _without_missing_sources(target: Target, spec: EnvSpec, progress: Progress) -> EnvSpec:
    """Installs from paths (editable folders, `name @ file:///...`): kept where the path exists on the target,
    else refused (one command)."""
    folders: dict[specs.Pin, str] = {}
    for pin in spec.pip_pins:
        folder = specs.local_path(pin.url or "")
        if folder:
            folders[pin] = folder
    if not folders:
        return spec
    progress.step(f"Looking for {len(folders)} source path(s) on {target.label}")
    asked = sorted({("d" if pin.editable else "f") + folder for pin, folder in folders.items()})
    result = target.runner.run_python(_MISSING_SOURCES, asked, cancel=progress.cancel, timeout=120)
    result.check(f"Looking for source folders and files on {target.label}")
    missing = set(result.stdout.splitlines())
    gone = [pin for pin, folder in folders.items() if folder in missing]
    refused = [specs.Refused(pin.pip_line(), f"its source folder {folders[pin]} does not exist on {target.label} "
                                             "(copy the project there first, or install it from an index or git)"
                             if pin.editable else
                             f"{folders[pin]} does not exist on {target.label} (copy it there first, or install "
                             "the package from an index)")
               for pin in gone]
    lines = {pin.pip_line() for pin in gone}
    return replace(spec, pins=[pin for pin in spec.pins if pin not in gone], refused=[*spec.refused, *refused],
                   requirements=[line for line in spec.requirements if line not in lines])


_CHECKOUT_REASON = ("uv makes editable installs only of local folders, not of version-control URLs: the same "
                    "source at the same revision is installed as a regular package (to work on its code, clone it "
                    "on the target and install that folder with -e)")


def _editable_checkouts_as_packages(spec: EnvSpec) -> EnvSpec:
    """pip freeze's `-e git+URL#egg=NAME` (a checkout installed editable) installed as `NAME @ git+URL`: the
    same source at the same revision, not editable, so that uv and pip both install it."""
    checkouts = [pin for pin in spec.pip_pins if pin.editable and re.match(_VCS_URL, pin.url or "")]
    if not checkouts:
        return spec
    plain = {pin.pip_line(): pin.url if pin.name == pin.url else
             f"{pin.name}{f'[{pin.extras}]' if pin.extras else ''} @ {pin.url}" for pin in checkouts}
    return replace(spec, pins=[pin for pin in spec.pins if pin not in checkouts],
                   requirements=[plain.get(line, line) for line in spec.requirements],
                   adapted=[*spec.adapted, *(specs.Adapted(line, as_, _CHECKOUT_REASON)
                                             for line, as_ in plain.items())])


def conflicting_requirements(requirements: Sequence[str]) -> list[list[str]]:
    """The lines that ask for versions of one package that no installer can give together, package by package:
    exact pins of two versions, or an exact pin another line's range excludes. Lines with a marker or a URL are
    the installer's to judge (a marker is read where it runs)."""
    by_name: dict[str, list[str]] = {}
    for line in requirements:
        if ";" in line or "@" in line or line.startswith("-"):
            continue
        name = specs.requirement_name(line)
        if name:
            by_name.setdefault(name, []).append(line)
    found = []
    for lines in by_name.values():
        if len(lines) < 2 or not any("==" in line for line in lines):
            continue
        from packaging.requirements import InvalidRequirement, Requirement
        try:
            wanted = [(line, Requirement(line).specifier) for line in lines]
        except InvalidRequirement:
            continue
        pinned = [next(iter(wanted_by)).version for _, wanted_by in wanted
                  if len(wanted_by) == 1 and next(iter(wanted_by)).operator == "==" and "*" not in str(wanted_by)]
        # a pin every line allows is what the installer takes ('torch==2.1.0+cu118' meets 'torch==2.1.0' too)
        if pinned and not any(all(wanted_by.contains(version, prereleases=True) for _, wanted_by in wanted)
                              for version in pinned):
            found.append(lines)
    return found


def install_lines(spec: EnvSpec, *, conda: bool) -> tuple[list[str], list[str]]:
    """(pip lines, conda specs) that install everything `spec` names: its exact pins, then every other
    requirement whose package no pin already covers (ranges, extras, markers, URLs, unpinned names) and
    no adapted line installs."""
    pinned = {validate.canonical_name(pin.name) for pin in spec.pip_pins}
    pinned |= {name for name in map(specs.requirement_name, map(specs.without_hashes, spec.hashed)) if name}
    pip_lines = [pin.pip_line() for pin in spec.pip_pins] + list(spec.hashed)
    adapted = {a.as_ for a in spec.adapted if a.installs}
    pip_lines += [r for r in spec.requirements
                  if specs.requirement_name(r) not in pinned and r not in pip_lines and r not in adapted]
    if not conda:
        return pip_lines, []
    conda_pinned = {validate.canonical_name(pin.name) for pin in spec.conda_pins}
    written = {specs.conda_pin(entry): entry for entry in spec.conda_requirements}
    conda_lines = [written.get(pin) or pin.conda_line() for pin in spec.conda_pins]  # a file's words, with channel
    conda_lines += [r for r in spec.conda_requirements if _conda_name(r) not in conda_pinned]
    return pip_lines, conda_lines


def with_python(spec: EnvSpec, version: str) -> EnvSpec:
    """`spec` made with Python `version` in place of its own (env import --python; the Import dialog's choice): a
    conda file's python entry too, or conda would be asked for both."""
    version = validate.version(version)
    chosen = f"python={version}"
    replaced = [specs.Adapted(entry, chosen, f"the Python chosen for this import ({version}) replaces the file's",
                              installs=False)
                for entry in spec.conda_requirements if _conda_name(entry) == "python" and entry != chosen]
    return replace(spec, python=version, adapted=[*spec.adapted, *replaced],
                   conda_requirements=[chosen if _conda_name(entry) == "python" else entry
                                       for entry in spec.conda_requirements],
                   pins=[pin for pin in spec.pins if not (pin.source == "conda" and _conda_name(pin.name) == "python")])


def _conda_name(entry: str) -> str:
    return validate.canonical_name(specs.conda_entry_name(entry))


def taken_folder(session: Session, target_name: str, name: str, root: str | None = None,
                 progress: Progress | None = None) -> str | None:
    """The folder an import named `name` would make, when something is there already (the import would stop
    at it); None when it is free. On a cluster, one command."""
    target = session.target(target_name)
    caps = capabilities(session, target, progress or Progress())
    chosen, _ = choose_root(target, validate.remote_folder(root) if root is not None else None)
    path = full_path(f"{chosen.rstrip('/')}/{name}", caps.home)
    if target.profile is None:
        return path if os.path.lexists(path) else None
    return path if target.runner.run(["test", "-e", path, "-o", "-L", path]).ok else None


def check_plan(plan: ImportPlan, agreed: bool, *, own_sources: bool = False) -> None:
    """Stop before anything runs when the target cannot build the plan, or when the user has not agreed
    to what it leaves out or downloads from outside the target's index (`own_sources`: the packages come
    from an environment the user already has, so its download sources are theirs)."""
    if plan.blocked:
        raise InvalidInput(specs.redact(plan.blocked) + " Nothing was created.")
    if agreed:
        return
    filled_in = [specs.redact(line) for line in plan.filled_in]
    variables = specs.listed_variables([name for line in plan.filled_in for name in specs.environment_variables(line)])
    plan = plan.shown()  # what the message names, without credentials
    problems, hints = [], []
    if plan.outside and not own_sources:
        problems.append(f"{len(plan.outside)} package(s) would be downloaded from outside this target's package "
                        "index: " + "; ".join(f"{o.line} (from {o.host})" for o in plan.outside) + ".")
        hints.append("check that you trust these sources")
    if filled_in:
        problems.append(f"{len(filled_in)} line(s) use {variables}, which the installer fills in from the target's "
                        "environment and sends with the download: " + "; ".join(filled_in) + ".")
        hints.append("check what those variables hold there")
    if plan.from_conda:
        problems.append(f"There is no conda here: {len(plan.from_conda)} conda package(s) would come from the "
                        "target's package index instead, PyPI's builds: " + "; ".join(
                            f"{a.line} as {a.as_}" for a in plan.adapted if a.line in plan.from_conda) + ".")
        hints.append("check that PyPI's builds will do")
    if plan.refused:
        problems.append(f"{len(plan.refused)} line(s) {'of the environment' if own_sources else 'of the file'} "
                        "cannot be imported: "
                        + "; ".join(f"{r.line} ({r.reason})" for r in plan.refused) + ".")
        hints.append("fix the file or agree to leave those lines out")
    if problems:
        raise InvalidInput(" ".join(problems) + " Nothing was created.",
                           f"{' and '.join(hints).capitalize()}, then "
                           + ("copy with --yes (or Copy in the app after reading the plan)." if own_sources else
                              "import with --yes (or Import in the app after reading the plan)."))


def _check_script(installer: Installer, pins: list[str]) -> str:
    """Shell text that dry-runs each pin and prints '@@missing SPEC<TAB>REASON' for those that fail; for a pin of a
    site's own build that fails, its public release is tried too, and '@@public NUMBER' (its place in `pins`) printed
    where that is here (site_builds)."""
    checks, unreached = [], join_command([_UNREACHED.pattern.removeprefix("(?i)")])  # pip says "(from versions:
    # none)" too where it could not reach the index: its warnings on retrying say why (T21 LOW-9)
    for number, original in enumerate(pins):
        pin, public = specs.without_hashes(original), public_release(original)
        line, shown = installer.dry_run(pin).shell_text(), join_command([specs.redact(pin)])
        missing = (f"printf '@@missing %s\\t%s\\n' {shown} "
                   f'"$(printf "%s" "$out" | grep -i -m1 -e "different python" -e "python version" -e '
                   f'"requires-python" || printf "%s" "$out" | grep -E -i -m1 {unreached} || '
                   f'printf "%s" "$out" | grep -i -m1 -e "(from versions: " -e "was not found in the" || '
                   f'printf "%s" "$out" | grep -E -i "{MESSAGE_LINE}" | tail -n 1 | grep . || '
                   f'printf "%s" "$out" | grep "[A-Za-z]" | tail -n 1)"')
        if public:
            missing = (f"if {installer.dry_run(public).shell_text()} >/dev/null 2>&1; then echo '@@public {number}'; "
                       f"else {missing}; fi")
        checks.append(f"if ! out=$({line} 2>&1); then {missing}; fi")
    return "; ".join(["export UV_NO_WRAP=1", *checks])  # uv's reason on one line: one line of it is read


def _parse_missing(stdout: str) -> list[Unavailable]:
    missing = []
    for line in stdout.splitlines():
        if line.startswith("@@missing "):
            spec_text, _, reason = line[len("@@missing "):].partition("\t")
            missing.append(Unavailable(spec_text, _plain_reason(reason, spec_text)))
    return missing


@dataclass
class Availability:
    """What a check found of the pins it was given: those the target cannot install, and those of a site's own
    build whose public release it has (pin -> release)."""

    missing: list[Unavailable]
    public: dict[str, str]


def _installer_modules(installer: Installer) -> tuple[str, ...]:
    return installer.env_modules + (installer.uv[1] if installer.uv else ())


def find_unavailable(target: Target, installer: Installer, pins: list[str], progress: Progress) -> Availability:
    """Every pin the target cannot install, and the site's builds it has the public release of, found in one
    command (each checked with a dry run)."""
    if not pins:
        return Availability([], {})
    progress.step(f"Checking which of {len(pins)} packages {target.label} can provide")
    result = _run_script(target, _check_script(installer, pins), _installer_modules(installer), progress)
    return Availability(_parse_missing(result.stdout), public_found(result.stdout, pins))


def _run_script(target: Target, script: str, modules: tuple[str, ...], progress: Progress) -> CommandResult:
    """Run a long shell script given on stdin (`bash -s`): as a command-line argument, one of a few
    hundred pins would pass Linux's 128 KiB limit for a single argument and lose the report."""
    return target.runner.run(["bash", "-s"], modules=modules, stdin=script.encode("utf-8"), cancel=progress.cancel)


def check_availability(session: Session, target_name: str, plan: ImportPlan,
                       progress: Progress | None = None, other_builds: bool = False) -> list[Unavailable]:
    """Before building: which pinned packages the target cannot provide, using a throwaway environment. A pin of a
    site's own build whose public release is here is not one of them: the plan installs that release instead
    (install_public_releases), and says so. One of a build variant (+cu118) is, saying what would change, unless
    the user agreed to `other_builds`."""
    progress = progress or Progress()
    target = session.target(target_name)
    settle_modules(target, plan, progress)  # the plan shown with them is what will be built; the check needs them
    if not plan.to_install or not target.runner.may_lack_packages:
        return []
    lines = _to_check(plan, plan.outside)
    if not lines:
        return []
    caps = capabilities(session, target, progress)
    modules, kind = plan.modules, plan.kind
    if plan.kind == "conda":  # its pip: lines, checked with a Python of the target's of the version asked (T21)
        try:
            modules, kind = list(choose_python(caps, plan.python, "venv").modules), "venv"
        except PythonMissing:
            plan.notes.append(f"The pip: lines were not checked before building: {target.label} has no Python "
                              f"{plan.python} outside conda to check them with (the build installs them after "
                              "conda's packages, and says there what is missing).")
            return []
    if plan.dry_run is not None and set(lines) <= set(plan.dry_run[0]):  # the plan's own dry run judged them all
        judged, report = plan.dry_run
    else:
        judged, report = lines, _dry_run_in_scratch(target, caps, modules, kind, lines, progress).stdout
    install_public_releases(plan, {pin: release for pin, release in public_found(report, judged).items()
                                   if pin in lines}, other_builds)
    checked = {specs.redact(specs.without_hashes(line)) for line in lines}
    return [m for m in _parse_missing(report) if m.spec in checked] + withheld(plan)


def _to_check(plan: ImportPlan, outside: list[OutsideSource]) -> list[str]:
    """The lines of `plan` a check dry-runs: what it installs, less what the user has yet to agree to: a download
    from another host (`outside`), or a line with a ${VARIABLE}, which the installer would fill in and send."""
    asked, filled_in = {source.line for source in outside}, set(plan.filled_in)
    return [line for line in plan.to_install if specs.redact(line) not in asked and line not in filled_in]


def _dry_run_in_scratch(target: Target, caps: Capabilities, modules: list[str], kind: str, lines: list[str],
                        progress: Progress) -> CommandResult:
    """The installer's dry run of each of `lines` in a throwaway venv of the Python `modules` give (the system's
    without), for an environment of `kind`, in one command (_check_script's report on stdout)."""
    import uuid  # here: it loads the platform module (~3 ms), which reading a file for a create does not need
    scratch = f"/tmp/envdesk-check-{uuid.uuid4().hex}"
    installer = Installer.for_env(caps, f"{scratch}/bin/python", modules, target.pip_args, kind=kind)
    make = ["python3", "-m", "venv", *(["--without-pip"] if installer.uv else []), scratch]
    progress.step(f"Checking which of {len(lines)} packages {target.label} can provide")
    body = (f"{join_command(make)} >/dev/null 2>&1 || {{ echo '@@noenv'; exit 0; }}; "
            f"{_check_script(installer, lines)}; rm -rf {join_command([scratch])}")
    return _run_script(target, body, _installer_modules(installer), progress)


def withheld(plan: ImportPlan) -> list[Unavailable]:
    """The plan's pins of a build variant whose release is here, not installed without the user's agreement."""
    return [Unavailable(specs.redact(specs.without_hashes(line)), why_withheld(line)) for line in plan.other_builds]


def allow_newer(requirements: list[str]) -> list[str]:
    """The requirements with each exact pin turned into a lower bound ('pandas==1.4.2' -> 'pandas>=1.4.2'),
    so the installer may pick versions this target has instead of failing on the same pins again. A local
    version's label goes ('numpy==1.26.3+computecanada' -> 'numpy>=1.26.3'): PEP 440 allows it after == and !=
    only, and the site's own build of that release is still admitted."""
    return [re.sub(r"^([A-Za-z0-9][A-Za-z0-9._-]*(?:\[[^\]]*\])?)\s*===?\s*([^\s;+]+)(?:\+[^\s;]*)?",
                   r"\1>=\2", r)
            if " @ " not in r else r for r in requirements]


def _what_would_work(missing: list[Unavailable], plan: ImportPlan, caps: Capabilities, copying: bool = False) -> str:
    """The hint after a failed import (`copying`: of an environment, not a file): for what no other version can fix
    (a package with no file for this platform, a folder that is no project, a failed git fetch) what to do about it;
    for the rest, a Python of the target that fits the pins, or allowing newer versions."""
    if all(m.reason == INDEX_UNREACHED for m in missing):  # newer versions would not be reached either
        return ("Nothing could be checked: check the index address in pip's settings (pip config list) or the "
                "cluster's pip arguments, and that the target reaches the network (a proxy, say); then try again.")
    said = _beyond_other_versions(missing, copying)
    rest = [m for m in missing if _beyond(m.reason) is None]
    if not rest:
        return " ".join(said)
    versions = _other_versions(rest, plan, caps)
    return " ".join([*said, f"For the others: {versions[0].lower()}{versions[1:]}" if said else versions])


_NOT_A_PROJECT = re.compile(r"(?i)does not appear to be a python project|neither 'setup\.py' nor 'pyproject\.toml'")
_GIT_FAILED = re.compile(r"(?i)git (?:fetch|clone|operation)|failed to clone|\bfatal: |did not run successfully.*git")


def _beyond(reason: str) -> str | None:
    """Which failure no other version of the package fixes: 'absent' (none at all for this Python and platform),
    'project' (a folder that is no Python project), 'address' (a direct URL's host not reached), 'git' (a checkout
    that could not be fetched); None otherwise."""
    if reason in (NOT_THERE_AT_ALL, NOT_FOR_THIS_PLATFORM):
        return "absent"
    if _NOT_A_PROJECT.search(reason):
        return "project"
    if reason.endswith(UNREACHED_HOST):
        return "address"
    if reason.endswith(OTHER_BUILD):
        return "build"
    return "git" if _GIT_FAILED.search(reason) else None


def _beyond_other_versions(missing: list[Unavailable], copying: bool) -> list[str]:
    """What to do about each kind of failure that allowing newer versions (--top-level) would not fix."""
    said = []
    absent = [m.spec for m in missing if _beyond(m.reason) == "absent"]
    if absent:
        them = "them" if len(absent) > 1 else "it"
        where = "" if copying else " in the file"
        marked = "" if copying else (f", or, where {them} belong{'s' if len(absent) == 1 else ''} to another system "
                                     f"only, give the line a marker, as pip skips it elsewhere: "
                                     f"{absent[0]} ; sys_platform == \"win32\" (Windows only)")
        said.append(f"Newer versions would not help {', '.join(absent)}: check the "
                    f"name{'s' if len(absent) > 1 else ''}{where}, try another Python of the target (a wheel store "
                    f"may hold {them} for some Pythons only), ask the cluster's support to add {them}, or "
                    + (f"remove {them} from the environment before copying it." if copying else
                       f"leave {them} out of the file{marked}."))
    projects = [m.spec for m in missing if _beyond(m.reason) == "project"]
    if projects:
        said.append(f"{', '.join(projects)}: not a Python project (no pyproject.toml or setup.py in that folder): "
                    "name the project's own folder, or take the line out.")
    addresses = [m.spec for m in missing if _beyond(m.reason) == "address"]
    if addresses:
        said.append(f"{', '.join(addresses)}: the target could not reach the address it is downloaded from: check "
                    "the address, and that the target reaches that host (a proxy, a firewall), or take the line out.")
    builds = [m.spec for m in missing if _beyond(m.reason) == "build"]
    if builds:
        said.append(f"{', '.join(builds)}: that build is not on the target, only the release's public build, which "
                    "is not the same (a CUDA or ROCm build, say, is not PyPI's). To install the public build in its "
                    "place, agree to other builds (--other-builds; 'Install other builds' in the app); or find the "
                    "build's own index and give it in the cluster's pip arguments.")
    fetches = [m.spec for m in missing if _beyond(m.reason) == "git"]
    if fetches:
        said.append(f"{', '.join(fetches)}: git could not fetch it: check the URL and revision, and that the "
                    "target reaches that host and may read the repository (git ls-remote URL there).")
    return said


def _other_versions(missing: list[Unavailable], plan: ImportPlan, caps: Capabilities) -> str:
    """For pins another version may fix: a Python of the target that fits them, or allowing newer versions."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version
    needs = [m.reason[len("needs Python "):].split(";")[0] for m in missing if m.reason.startswith("needs Python")]
    newer = "Or allow newer versions of the top-level requirements (--top-level; 'Allow newer versions' in the app)."
    if not needs:
        return "Install only the top-level requirements instead (--top-level), which lets the installer pick " \
               "versions this target has."
    fitting = []
    for version in caps.python_versions():
        try:
            if all(Version(version) in SpecifierSet(need) for need in needs):
                fitting.append(version)
        except (InvalidSpecifier, InvalidVersion):
            continue
    if fitting:
        return f"These versions need another Python; this target offers Python {', '.join(fitting)}, which fits " \
               f"them: make the environment with that Python. {newer}"
    return (f"These versions predate the Python here (Python {plan.python or 'of the target'}), and none of "
            f"this target's Pythons ({', '.join(caps.python_versions()) or 'none'}) fits them. {newer}")


NOT_THERE_AT_ALL = "no version of it in this target's package index or wheel store fits this Python and platform"
NOT_FOR_THIS_PLATFORM = "none of its files is made for this platform (its wheels are for other systems)"

_PYTHON_MISMATCH = (
    re.compile(r"requires a different Python: (?P<have>[\d.]+) not in '(?P<need>[^']+)'"),  # pip
    re.compile(r"current Python version \((?P<have>[\d.]+)\) does not satisfy Python\s*(?P<need>[^\s,]+)"),  # uv
    re.compile(r"Requires-Python\s+(?P<need>[^\s,]+)"),  # pip's "Ignored the following versions..."
)


INDEX_UNREACHED = "the package index could not be reached"
UNREACHED_HOST = ", where it is downloaded from, could not be reached"


def _download_host(spec: str) -> str:
    """The host a direct-URL requirement (`name @ https://host/...`, `name @ git+https://...`) downloads from; ""
    for one the package index provides (T15: a failed download from a URL was blamed on the index's address)."""
    from urllib.parse import urlsplit
    if " @ " not in spec:
        return ""
    url = spec.split(" @ ", 1)[1].split(";", 1)[0].strip().split("+", 1)[-1]
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""
_UNREACHED = re.compile(r"(?i)failed to fetch|error sending request|dns error|connection refused|tcp connect error|"
                        r"failed to establish a new connection|max retries exceeded|could not fetch url|"
                        r"temporary failure in name resolution|name or service not known|proxyerror|"
                        r"network is unreachable")
"""How uv and pip say that they could not reach an index (and so learnt nothing of what it holds)."""


def _index_said(reason: str) -> bool:
    """Whether `reason` (_plain_reason's) is the package index's answer on what it holds, not a failure to ask it
    (unreached, or the installer's own error)."""
    return (reason in (NOT_THERE_AT_ALL, NOT_FOR_THIS_PLATFORM) or reason.startswith((_NOT_IN_INDEX, "needs Python")))


_NOT_IN_INDEX = "not in this target's package index or wheel store"


def _plain_reason(raw: str, spec: str = "") -> str:
    """The installer's words on why `spec` cannot be installed, in plain words."""
    python_mismatch = any(pattern.search(raw) for pattern in _PYTHON_MISMATCH)  # an answer: the index was reached
    if _UNREACHED.search(raw) and not python_mismatch:
        host = _download_host(spec)
        return f"{host}{UNREACHED_HOST}" if host else INDEX_UNREACHED
    for pattern in _PYTHON_MISMATCH:
        match = pattern.search(raw)
        if match:
            have = match.groupdict().get("have")
            return f"needs Python {match.group('need')}" + (f"; this environment has Python {have}" if have else "")
    lowered = raw.lower()
    if "no wheels with a matching platform tag" in lowered:  # uv's words
        return NOT_FOR_THIS_PLATFORM
    if "from versions: none" in lowered or "was not found in the" in lowered:  # pip's, uv's words
        return NOT_THERE_AT_ALL
    if "no matching distribution" in lowered or "not found in the package registry" in lowered or \
            "not found in the provided package locations" in lowered or \
            "no solution found" in lowered or "could not find a version" in lowered or \
            "there is no version of" in lowered:
        return _NOT_IN_INDEX + _versions_there(raw)
    return re.sub(r"(?i)^(error|cause|caused by):\s*", "", raw.strip()) or "could not be installed"


def _versions_there(raw: str) -> str:
    """The versions pip says the target has ("(from versions: 1.26.3, 1.26.4)"), as a reason ends with them; ""
    where it names none (uv's words never do). T20: "from versions: 1.26.4" was dropped, and with it the release
    that was there all along."""
    listed = re.search(r"\(from versions: ([^)]*)\)", raw)
    versions = [v.strip() for v in listed.group(1).split(",") if v.strip()] if listed else []
    if not versions or versions == ["none"]:
        return ""
    if len(versions) <= 8:
        return f"; it has {', '.join(versions)}"
    return f"; it has {len(versions)} versions, the newest {', '.join(versions[-5:])}"


def import_environment(session: Session, target_name: str, spec: EnvSpec, *, name: str | None = None,
                       root: str | None = None, top_level: bool = False, agreed: bool = False,
                       own_sources: bool = False, progress: Progress | None = None,
                       checked: Availability | None = None, other_builds: bool = False,
                       check_first: bool = False, plan: ImportPlan | None = None) -> Imported:
    """Build `spec` on the target: exact pins first; if some cannot be had, report them all at once. A pin of a
    site's own build that is missing here while its public release is here is installed as that release; one of a
    build variant (+cu118) only with `other_builds` (the user's agreement), else it fails the import, newer versions
    allowed or not (they would install the other build too).

    With `top_level`, install the top-level requirements instead when pins fail. Never half-succeeds:
    a failed import removes what it started. Lines the plan refuses, and downloads from outside the
    target's index, stop the import before anything runs unless the user agreed to the plan (`agreed`;
    `own_sources` for a copy of an environment the user already has). `checked`: what the check of the plan the
    user was shown found (the window's), so that pins known to be missing are not tried again. `check_first`:
    where the pins hold a local label (a site's build, which another target may lack) and none was shown, check
    them first as the window's plan does, rather than trying them in a build that fails (the command line's).
    `plan`: the plan of `spec` the user was shown and agreed to (the window's), built as it is, not made again (R19:
    a plan made again, from a source or an index changed since, took the user's yes as agreement to what they
    never saw).
    """
    progress = progress or Progress()
    if plan is None:
        plan = plan_import(session, target_name, spec, name, progress)
    else:
        plan = replace(deepcopy(plan), name=_chosen_name(name, spec))  # the dialog keeps its own
        if other_builds:  # the pins its check withheld for the user's agreement, now given
            plan.other_builds = {}
    check_plan(plan, agreed, own_sources=own_sources)
    if top_level:
        without_builds(plan)
    if spec.refused and not specs.installs_something(spec):
        specs.require_packages(spec)  # every line refused: there is nothing to build, whatever was agreed
    target = session.target(target_name)
    caps = capabilities(session, target, progress)
    known: list[Unavailable] = []
    if checked is None and check_first and (plan.kind == "conda" and plan.to_install  # before conda's whole build
                                            or any(public_release(line) for line in plan.to_install)):
        checked = Availability(check_availability(session, target_name, plan, progress, other_builds), {})
    if checked is not None:
        install_public_releases(plan, checked.public, other_builds)
        lines = {specs.redact(specs.without_hashes(line)) for line in plan.to_install}
        known = [m for m in checked.missing if m.spec in lines]  # (a copy's source may have changed since)
        if known and not (top_level and plan.requirements and newer_versions_may_build(known)):
            raise cannot_install(target, known, plan, caps, own_sources)
    root, roots = choose_root(target, validate.remote_folder(root) if root is not None else None)
    path = f"{root.rstrip('/')}/{plan.name}"
    reservation = Reservation.reserve(target, path, roots, caps.home, create=True, operation="import")
    notes, used_top_level, planned = list(plan.notes), False, list(plan.modules)
    notes += [f"Installed as {a.as_} instead of {a.line}: {a.reason}." if a.installs else
              f"{a.line}: {a.as_} ({a.reason})." for a in plan.adapted
              if not (known and a.line in plan.public_releases)]  # newer versions allowed: the note says which
    notes += [f"Not installed: {r.line} ({r.reason})." for r in plan.refused]
    common: dict[str, Any] = {
        "kind": plan.kind, "modules": plan.modules, "python": plan.python,
        "system_site_packages": spec.system_site_packages, "conda_packages": plan.conda_pins,
        "channels": plan.channels, "progress": progress, "extra_meta": {"imported_from": spec.source},
        "modules_checked": plan.modules_checked, "constraints": plan.constraints,
        "conda_requested": list(spec.conda_requirements) if own_sources and plan.kind == "conda" else None}
    started: dict[str, Any] = {"name": plan.name, "notes": notes, "source": spec.source}
    try:
        if known:  # the exact versions are known to be missing: not tried again
            progress.on_step("Some exact versions are missing here; allowing newer versions of the top-level "
                             "requirements")
            env = _with_newer_versions(session, target, caps, reservation, root, spec, plan, known, notes,
                                       common, started)
            used_top_level = True
        else:
            try:
                env = start_and_build(session, target, caps, reservation, root, packages=plan.to_install,
                                      requested=plan.requirements, **started, **common)
            except InstallFailed as failure:
                if isinstance(failure, CondaInstallFailed):  # conda's words name what it could not install
                    built = [line for line in plan.conda_pins if _conda_build(line)]
                    if built and "No channel conda searched has" in f"{failure.message} {failure.hint}":
                        raise CondaInstallFailed(failure.message, f"{failure.hint} {_BUILDS_HINT.format(line=built[0])}"
                                                 .strip(), log=failure.log) from failure
                    raise
                settle_modules(target, plan, progress)
                common.update(modules=plan.modules, modules_checked=True)  # for the retry below: known to load now
                installer = Installer.for_env(caps, target.runner.env_python(reservation.path), plan.modules,
                                              target.pip_args, kind=plan.kind,
                                              here=target.runner.runs_actions_here)
                found = find_unavailable(target, installer, plan.to_install, progress)
                moved = install_public_releases(plan, found.public, other_builds)
                found.missing += withheld(plan)
                if not found.missing and not moved:
                    raise
                if found.missing and not (top_level and plan.requirements and newer_versions_may_build(found.missing)):
                    raise cannot_install(target, found.missing, plan, caps, own_sources, failure.log) from failure
                reservation.reset()
                if found.missing:
                    progress.on_step("Some exact versions are missing here; allowing newer versions of the "
                                     "top-level requirements")
                    env = build(session, target, caps, reservation, packages=allow_newer(plan.requirements),
                                notes=notes, **common)
                    notes.append(_fallback(spec, plan, found.missing, env))
                    used_top_level = True
                else:
                    progress.on_step("Installing the public releases of the site's own builds that are not here")
                    notes += [f"Installed as {plan.public_releases[line]} instead of {line}: {why_public(line)}."
                              for line in moved]
                    env = build(session, target, caps, reservation, packages=plan.to_install,
                                requested=plan.requirements, notes=notes, **common)
    except BaseException as exc:
        undo(reservation, progress, exc)
        raise
    if list(env.modules) != planned:  # prerequisites the build (or settle_modules) found were put in front
        notes = _with_modules_noted(notes, plan, planned, list(env.modules))
    return Imported(env, notes + misfit_notes(env) + remember_root(session, target, root), used_top_level)


def cannot_install(target: Target, missing: list[Unavailable], plan: ImportPlan, caps: Capabilities,
                   copying: bool = False, log: str = "") -> CommandFailed:
    """The failure of an import some of whose pins the target cannot install, with what would work (a dry run
    says it too)."""
    listing = "; ".join(f"{m.spec} ({m.reason})" for m in missing)
    return CommandFailed(f"{len(missing)} package(s) cannot be installed on {target.label}: {listing}. Nothing was "
                         "created.", _what_would_work(missing, plan, caps, copying), log=log)


def newer_versions_may_help(missing: list[Unavailable]) -> bool:
    """Whether allowing newer versions (--top-level) may install what `missing` names: not where a package has no
    version here at all, a folder is no project, an address or the index was not reached, or git failed."""
    return all(_beyond(m.reason) is None and m.reason != INDEX_UNREACHED for m in missing)


def newer_versions_may_build(missing: list[Unavailable]) -> bool:
    """Whether --top-level may build in place of what `missing` names: not where a pin of a build variant was left
    out for the user's agreement (allowing newer versions drops its label, which installs the other build too)."""
    return all(_beyond(m.reason) != "build" for m in missing)


def _with_newer_versions(session: Session, target: Target, caps: Capabilities, reservation: Reservation, root: str,
                         spec: EnvSpec, plan: ImportPlan, missing: list[Unavailable], notes: list[str],
                         common: dict[str, Any], started: dict[str, Any]) -> Environment:
    """Build the top-level requirements with newer versions allowed in place of pins known to be missing (the exact
    pins are not tried first), noting how the versions moved."""
    env = start_and_build(session, target, caps, reservation, root, packages=allow_newer(plan.requirements),
                          **started, **common)
    notes.append(_fallback(spec, plan, missing, env))
    return env


def _fallback(spec: EnvSpec, plan: ImportPlan, missing: list[Unavailable], env: Environment) -> str:
    """The note of an import that installed the top-level requirements with newer versions allowed."""
    listing = "; ".join(f"{m.spec} ({m.reason})" for m in missing)
    return fallback_note(listing, allow_newer(plan.requirements), version_changes(spec.pip_pins, env.packages))
