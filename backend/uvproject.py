"""uv projects (``pyproject.toml`` + ``uv.lock``): read and check them, and turn them into an EnvSpec.

Everything a project file names (its name, its dependencies, every locked package's name, version,
source, markers and file hashes) is checked here, before anything runs anywhere: a hostile file is
refused with an InvalidInput in plain words. The files never leave this computer: `to_spec` turns the
lock into an EnvSpec, which the one import pipeline (operations/importing.py) plans and builds like any
other file.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import parse_qs, urlsplit, urlunsplit

from packaging.markers import InvalidMarker, Marker, default_environment
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from . import validate
from .validate import canonical_name
from .errors import InvalidInput
from .spec import LOCAL_SOURCE, Adapted, EnvSpec, Pin, Refused

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PROJECT_FILES = ("pyproject.toml", "uv.lock")
MAX_FILE_BYTES = 5_000_000
LOCK_VERSIONS = (1,)
SOURCE_KINDS = ("registry", "git", "url", "path", "directory", "editable", "virtual")
LOCAL_SOURCES = ("path", "directory", "editable", "virtual")
_LOWER_BOUND_OPERATORS = (">=", ">", "==", "~=", "===")
_HASH = re.compile(r"^([a-z0-9]+):([0-9a-f]+)$")
CHECKED_HASHES = {"sha256": 64, "sha384": 96, "sha512": 128}  # what pip's --hash takes (and uv's)


def git_url(location: str) -> str:
    """uv.lock's 'https://host/repo?rev=main#<commit>' as pip's 'git+https://host/repo@<commit>'."""
    parts = urlsplit(location)
    commit = parts.fragment
    query = parse_qs(parts.query)
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    reference = commit or next((query[key][0] for key in ("rev", "tag", "branch") if query.get(key)), "")
    url = f"git+{base}" + (f"@{reference}" if reference else "")
    if query.get("subdirectory"):
        url += f"#subdirectory={query['subdirectory'][0]}"
    return url


@dataclass(frozen=True)
class LockedDependency:
    """One edge of the lock's graph: `name` (the version and source pick one of forked entries)."""

    name: str
    version: str | None = None
    source: str | None = None
    marker: str | None = None
    extras: tuple[str, ...] = ()

    def applies(self, environment: Mapping[str, str]) -> bool:
        return self.marker is None or Marker(self.marker).evaluate(dict(environment))


@dataclass(frozen=True)
class LockedPackage:
    """One ``[[package]]`` entry of uv.lock."""

    name: str
    version: str
    source: str     # one of SOURCE_KINDS
    location: str   # the registry, URL or path the lock names
    dependencies: tuple[LockedDependency, ...] = ()
    optional: tuple[tuple[str, tuple[LockedDependency, ...]], ...] = ()   # extra -> edges
    groups: tuple[tuple[str, tuple[LockedDependency, ...]], ...] = ()     # dependency group -> edges
    hashes: tuple[str, ...] = ()   # 'sha256:<hex>' of every wheel and sdist the lock lists for it

    @property
    def portable(self) -> bool:
        """True when any machine can install it again from a package index (the lock's exact version)."""
        return self.source == "registry"

    @property
    def is_local(self) -> bool:
        """True when it comes from a folder or file of the project's machine (it cannot travel)."""
        return self.source in LOCAL_SOURCES

    def url(self, folder: Path | None = None) -> str | None:
        """Where a non-registry package comes from, written the way pip takes it; None for registry ones."""
        if self.source == "registry":
            return None
        if self.source == "git":
            return git_url(self.location)
        if self.source == "url":
            return self.location
        path = Path(self.location)
        if not path.is_absolute() and folder is not None:
            path = folder / path
        return path.resolve().as_uri() if path.is_absolute() else path.as_posix()

    def pin(self, folder: Path | None = None) -> Pin:
        """The exact pin: name==version for registry packages, name @ URL for the others."""
        return Pin(name=self.name, version=self.version, url=self.url(folder))

    def local_pin(self, folder: Path | None = None) -> Pin:
        """A folder's or file's pin, as a requirements file's `-e ./folder` or `name @ file:///…` is read: installed
        where the target has that path (importing's sources check), editable where the lock says so."""
        return Pin(name=self.name, version="", url=self.url(folder), editable=self.source == "editable")

    def hashed_line(self) -> str:
        """'name==version --hash=sha256:...' with every file hash the lock lists (pip and uv check them)."""
        return " ".join([f"{self.name}=={self.version}", *(f"--hash={h}" for h in self.hashes)])

    def all_edges(self) -> tuple[LockedDependency, ...]:
        """Its dependencies and those of all its extras (whatever the markers say)."""
        return self.dependencies + tuple(edge for _, edges in self.optional for edge in edges)

    def describe(self, folder: Path | None = None) -> str:
        return f"{self.name} ({self.source} {self.url(folder) or self.location})"

    def edges(self, key: str, name: str) -> tuple[LockedDependency, ...]:
        table = self.optional if key == "optional" else self.groups
        return next((deps for label, deps in table if canonical_name(label) == canonical_name(name)), ())


@dataclass
class UvProject:
    """A uv project as read from its folder: both files' text and what they say."""

    folder: Path
    pyproject_text: str
    lock_text: str
    name: str
    requires_python: str | None
    dependencies: list[str]
    packages: list[LockedPackage]
    default_groups: list[str] | None = None   # None: uv's default ("dev"); ["*"]: every group
    group_requirements: dict[str, list[str]] = field(default_factory=dict)  # [dependency-groups], by group

    def requested_groups(self) -> list[str]:
        """The requirements of the dependency groups `uv sync` installs by default (what the user asked for)."""
        wanted = self.default_groups if self.default_groups is not None else ["dev"]
        chosen = [group for group in self.group_requirements if "*" in wanted or group in
                  {canonical_name(g) for g in wanted}]
        return [line for group in chosen for line in self.group_requirements[group]]

    @property
    def python(self) -> str | None:
        """The lowest Python the project allows (X.Y or X.Y.Z), from requires-python."""
        return python_lower_bound(self.requires_python)

    def is_root(self, package: LockedPackage) -> bool:
        return canonical_name(package.name) == canonical_name(self.name) and package.source in ("virtual", "editable")

    @property
    def installs_itself(self) -> bool:
        """Whether `uv sync` installs the project itself too, from its folder (a package project, which uv.lock
        marks editable; a virtual project is only its dependencies)."""
        return any(self.is_root(p) and p.source == "editable" for p in self.packages)

    @property
    def locked(self) -> list[LockedPackage]:
        """Every locked package except the project itself."""
        return [p for p in self.packages if not self.is_root(p)]

    @property
    def not_portable(self) -> list[LockedPackage]:
        """Locked packages that do not come from a package index (git, URLs, local folders)."""
        return [p for p in self.locked if not p.portable]

    @property
    def local_only(self) -> list[LockedPackage]:
        """Locked packages from folders or files of this computer: no other machine has them."""
        return [p for p in self.locked if p.is_local]

    def source_notes(self) -> list[str]:
        """What the user should know about packages that come from git or a URL rather than an index.

        (Packages from folders are installed where the target has them, else refused in the plan, with the reason.)
        """
        remote = [p for p in self.not_portable if not p.is_local]
        if not remote:
            return []
        return ["Not from a package index (the target must reach them): "
                + "; ".join(p.describe(self.folder) for p in remote) + "."]


# -- reading ----------------------------------------------------------------------------------

ENVIRONMENT_FILES = ("requirements*.txt", "environment.yml", "environment.yaml", "pylock.toml", "pylock.*.toml",
                     "*.envdesk.yaml")
"""Files beside which a folder that is no uv project may still be imported: each can be, itself."""


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InvalidInput(f"{path} is too large to be a uv project file "
                               f"(more than {MAX_FILE_BYTES // 1_000_000} MB).")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        files = sorted(found.name for pattern in ENVIRONMENT_FILES for found in path.parent.glob(pattern))
        if files:  # a folder of a project that keeps an environment file, not a lock (T10)
            raise InvalidInput(f"{path.parent} is not a uv project (it has no {path.name}), but it holds "
                               f"{', '.join(files[:3])}.", f"Import {files[0]} itself.") from exc
        if path.name == "uv.lock":
            from .spec import PIPENV_ADVICE, POETRY_ADVICE
            if (path.parent / "poetry.lock").is_file():
                raise InvalidInput(f"{path.parent} is a Poetry project (poetry.lock), not a uv project.",
                                   POETRY_ADVICE) from exc
            if _poetry_only(path.parent / "pyproject.toml"):
                raise _poetry_project(path.parent) from exc
            if (path.parent / "Pipfile").is_file():
                raise InvalidInput(f"{path.parent} is a pipenv project (Pipfile), not a uv project.",
                                   PIPENV_ADVICE) from exc
            raise InvalidInput(f"{path.parent} has no uv.lock, so there are no exact versions to import.",
                               "Run 'uv lock' in the project folder first.") from exc
        raise InvalidInput(f"{path.parent} has no pyproject.toml, so it is not a uv project.") from exc
    except OSError as exc:
        raise InvalidInput(f"Could not read {path}: {exc.strerror or exc}.") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path} is not a text file.") from exc


def _poetry_only(pyproject: Path) -> bool:
    """Whether a pyproject.toml is Poetry's own ([tool.poetry], no [project] table): uv reads no dependency of it, so
    `uv lock` there locks nothing, and Poetry's export is the way out."""
    try:
        text = _read(pyproject)
    except InvalidInput:
        return False
    return re.search(r"^\[tool\.poetry\]", text, re.MULTILINE) is not None and \
        re.search(r"^\[project\]", text, re.MULTILINE) is None


def _poetry_project(folder: Path) -> InvalidInput:
    """The refusal of a Poetry project without [project]: Poetry's export, after its lock where there is none."""
    from .spec import POETRY_ADVICE
    first = "" if (folder / "poetry.lock").is_file() else "Lock it with Poetry first (poetry lock), as there is no " \
        "poetry.lock. "
    return InvalidInput(f"{folder} is a Poetry project ([tool.poetry] in pyproject.toml, no [project]), not a uv "
                        "project: uv lock would lock none of its dependencies.", first + POETRY_ADVICE)


def _toml(text: str, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path.name} is not valid TOML ({exc}).", "Check the file; nothing was changed.") from exc


def _table(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"'{what}' must be a table.")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(f"'{what}' must be a list.")
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"The {what} {value!r} is not text.")
    return validate.plain_text(value, what)


def _no_spaces(value: str, what: str) -> str:
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidInput(f"The {what} {value!r} contains spaces or control characters.")
    return value


def _marker(value: Any) -> str | None:
    if value is None:
        return None
    text = _text(value, "marker")
    try:
        Marker(text)
    except InvalidMarker as exc:
        raise InvalidInput(f"{text!r} is not a valid environment marker.") from exc
    return text


def _source(value: Any, package: str) -> tuple[str, str]:
    table = _table(value, f"source of {package}")
    kinds = [k for k in table if k in SOURCE_KINDS]
    if len(kinds) != 1:
        raise InvalidInput(f"The package {package} in uv.lock has a source EnvDesk does not know: "
                           f"{', '.join(map(str, table)) or 'none'}.")
    kind = kinds[0]
    location = _text(table[kind], f"source of {package}")
    if kind in ("git", "url"):  # becomes part of a requirement line; folders may have spaces in their names
        _no_spaces(location, f"source of {package}")
    return kind, location


def _hashes(table: dict[str, Any], name: str) -> tuple[str, ...]:
    """The file hashes of a locked package (its wheels and sdist) that pip's --hash can check.

    A hash that is not 'algorithm:hex' is refused (it would become part of a requirement line);
    well-formed ones of algorithms pip does not take (md5) are left out.
    """
    files = [_table(w, f"wheel of {name}") for w in _list(table.get("wheels"), f"wheels of {name}")]
    if table.get("sdist") is not None:
        files.append(_table(table.get("sdist"), f"sdist of {name}"))
    found: list[str] = []
    for entry in files:
        if entry.get("hash") is None:
            continue
        text = _text(entry["hash"], f"file hash of {name}")
        match = _HASH.match(text)
        if not match:
            raise InvalidInput(f"The file hash {text!r} of {name} in uv.lock is not 'algorithm:hex'.")
        algorithm, digest = match.groups()
        if CHECKED_HASHES.get(algorithm) == len(digest) and text not in found:
            found.append(text)
    return tuple(found)


def _dependency(value: Any, owner: str) -> LockedDependency:
    table = _table(value, f"dependency of {owner}")
    name = validate.package_name(_text(table.get("name"), f"dependency name of {owner}"))
    version = table.get("version")
    source = table.get("source")
    return LockedDependency(
        name=name,
        version=validate.version(_text(version, "version")) if version is not None else None,
        source=_source(source, name)[1] if source is not None else None,
        marker=_marker(table.get("marker")),
        extras=tuple(validate.package_name(_text(e, "extra")) for e in _list(table.get("extra"), "extra")))


def _edge_tables(value: Any, owner: str, what: str) -> tuple[tuple[str, tuple[LockedDependency, ...]], ...]:
    table = _table(value, f"{what} of {owner}")
    return tuple((validate.package_name(_text(label, what)),
                  tuple(_dependency(d, owner) for d in _list(deps, f"{what} of {owner}")))
                 for label, deps in table.items())


def _locked_package(value: Any) -> LockedPackage:
    table = _table(value, "package")
    name = validate.package_name(_text(table.get("name"), "package name"))
    kind, location = _source(table.get("source"), name)
    version = table.get("version")
    if version is None and kind == "registry":
        raise InvalidInput(f"The package {name} in uv.lock has no version.")
    package = LockedPackage(
        name=name, version=validate.version(_text(version, "version")) if version is not None else "",
        source=kind, location=location,
        dependencies=tuple(_dependency(d, name) for d in _list(table.get("dependencies"), "dependencies")),
        optional=_edge_tables(table.get("optional-dependencies"), name, "optional-dependencies"),
        groups=_edge_tables(table.get("dev-dependencies"), name, "dev-dependencies"),
        hashes=_hashes(table, name))
    url = package.url()
    if url is not None:
        validate.package_spec(f"{name} @ {url}")
    return package


def python_lower_bound(requires_python: str | None) -> str | None:
    """'3.11' for '>=3.11,<4': the lowest version requires-python allows, if it says one."""
    if not requires_python:
        return None
    bounds = [spec.version for spec in SpecifierSet(requires_python) if spec.operator in _LOWER_BOUND_OPERATORS]
    if not bounds:
        return None
    lowest = min(bounds, key=lambda v: tuple(int(p) if p.isdigit() else 0 for p in v.rstrip(".*").split(".")))
    return validate.version(lowest.rstrip(".*"))


def _project_folder(path: Path) -> Path:
    if path.name in PROJECT_FILES and not path.is_dir():
        return path.parent
    return path


def read_uv_project(folder: Path) -> UvProject:
    """Read and check a uv project: `folder` (or its pyproject.toml or uv.lock) with both files in it."""
    folder = _project_folder(Path(folder))
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder with a uv project in it.")
    pyproject_path, lock_path = folder / "pyproject.toml", folder / "uv.lock"
    pyproject_text = _read(pyproject_path)
    lock_text = _read(lock_path)
    pyproject = _toml(pyproject_text, pyproject_path)
    lock = _toml(lock_text, lock_path)

    project = pyproject.get("project")
    if not isinstance(project, dict) and _poetry_only(pyproject_path):
        raise _poetry_project(folder)
    if not isinstance(project, dict):
        raise InvalidInput(f"{pyproject_path} has no [project] table, so it is not a uv project EnvDesk can import.")
    name = validate.package_name(_text(project.get("name"), "project name"))
    requires = project.get("requires-python")
    if requires is not None:
        requires = _text(requires, "requires-python")
        try:
            SpecifierSet(requires)
        except InvalidSpecifier as exc:
            raise InvalidInput(f"requires-python {requires!r} is not a valid version range.") from exc
    dependencies = [validate.package_spec(_text(d, "dependency"))
                    for d in _list(project.get("dependencies"), "project.dependencies")]
    dynamic = "dependencies" in _list(project.get("dynamic"), "project.dynamic")
    tool_uv = _table(_table(pyproject.get("tool"), "tool").get("uv"), "tool.uv")
    default_groups_value = tool_uv.get("default-groups")
    if default_groups_value is None:
        default_groups = None
    elif default_groups_value == "all":
        default_groups = ["*"]
    else:
        default_groups = [validate.package_name(_text(g, "default group"))
                          for g in _list(default_groups_value, "tool.uv.default-groups")]

    group_requirements = _dependency_groups(pyproject, tool_uv)

    lock_version = lock.get("version")
    if lock_version not in LOCK_VERSIONS:
        raise InvalidInput(f"{lock_path} has lock format version {lock_version!r}, which EnvDesk cannot read.",
                           "Lock it again with a uv release that writes 'version = 1'.")
    packages = [_locked_package(p) for p in _list(lock.get("package"), "package")]
    _check_current(lock, lock_path, name, None if dynamic else dependencies)
    return UvProject(folder=folder, pyproject_text=pyproject_text, lock_text=lock_text, name=name,
                     requires_python=requires, dependencies=dependencies, packages=packages,
                     default_groups=default_groups, group_requirements=group_requirements)


def _dependency_groups(pyproject: dict[str, Any], tool_uv: dict[str, Any]) -> dict[str, list[str]]:
    """Each dependency group's requirements (PEP 735's [dependency-groups], its include-group entries followed;
    uv's older tool.uv.dev-dependencies is the 'dev' group, as uv reads it), by canonical group name."""
    table = _table(pyproject.get("dependency-groups"), "dependency-groups")
    raw = {canonical_name(validate.package_name(_text(name, "dependency group"))): _list(entries, f"group {name}")
           for name, entries in table.items()}
    legacy = _list(tool_uv.get("dev-dependencies"), "tool.uv.dev-dependencies")
    if legacy:
        raw["dev"] = [*raw.get("dev", []), *legacy]

    def lines(group: str, seen: tuple[str, ...]) -> list[str]:
        found: list[str] = []
        for entry in raw.get(group, []):
            if isinstance(entry, dict) and set(entry) == {"include-group"}:
                included = canonical_name(_text(entry["include-group"], "included group"))
                if included in seen or included not in raw:
                    raise InvalidInput(f"The dependency group {group} includes {included}, which "
                                       + ("includes it back." if included in seen else "is not there."))
                found += lines(included, (*seen, included))
            else:
                found.append(validate.package_spec(_text(entry, f"requirement of group {group}")))
        return found
    return {group: lines(group, (group,)) for group in raw}


def _check_current(lock: dict[str, Any], lock_path: Path, name: str, dependencies: list[str] | None) -> None:
    """Refuse a uv.lock that does not belong to pyproject.toml as it is now (made for another project, or before
    its dependencies changed), as `uv sync --locked` does: what it selects would not be what the project asks
    for. `dependencies` None: pyproject.toml leaves them to its build backend (dynamic), so only the project's
    name is compared."""
    stale = ("Run uv lock in the project's folder (or uv sync, which locks again), then import it again.")
    roots = [table for table in _list(lock.get("package"), "package") if isinstance(table, dict)
             and canonical_name(str(table.get("name"))) == canonical_name(name)
             and isinstance(table.get("source"), dict) and set(table["source"]) & {"virtual", "editable"}]
    if not roots:
        raise InvalidInput(f"{lock_path} does not lock the project {name} of pyproject.toml: it was made for "
                           "another project, or before the project was renamed.", stale)
    metadata = roots[0].get("metadata")
    if dependencies is None or not isinstance(metadata, dict) or not isinstance(metadata.get("requires-dist"), list):
        return  # an older uv wrote no record of what the project asked for
    from packaging.requirements import Requirement
    asked: dict[str, set[tuple[str, tuple[str, ...]]]] = {}
    for requirement in map(Requirement, dependencies):
        asked.setdefault(canonical_name(requirement.name), set()).add(
            (_specifiers(str(requirement.specifier)), tuple(sorted(map(canonical_name, requirement.extras)))))
    locked: dict[str, set[tuple[str, tuple[str, ...]]]] = {}
    sourced = set()   # given a source in [tool.uv.sources]: uv records where from, not the versions asked for
    for entry in metadata["requires-dist"]:
        if not isinstance(entry, dict) or re.search(r"\bextra\s*==", str(entry.get("marker") or "")):
            continue  # an optional dependency's (uv records them here too)
        named = canonical_name(str(entry.get("name")))
        locked.setdefault(named, set()).add(
            (_specifiers(str(entry.get("specifier") or "")),
             tuple(sorted(canonical_name(str(extra)) for extra in entry.get("extras") or ()))))
        if set(entry) & _SOURCE_KEYS:
            sourced.add(named)
    changed = sorted(set(asked) ^ set(locked) | {named for named in asked.keys() & locked.keys() - sourced
                                                  if asked[named] != locked[named]})
    if changed:
        raise InvalidInput(f"{lock_path} is older than pyproject.toml: the dependencies on {', '.join(changed)} "
                           "changed since it was locked.", stale)


_SOURCE_KEYS = {"directory", "path", "editable", "git", "url", "index", "workspace"}
"""The keys of a requires-dist entry of uv.lock that say where a package comes from ([tool.uv.sources])."""


def _specifiers(text: str) -> str:
    return ",".join(sorted(str(one) for one in SpecifierSet(text)))


# -- choosing what a target installs ----------------------------------------------------------------

def marker_environment(python: str | None = None, *, machine: str | None = None,
                       local: bool = False) -> dict[str, str]:
    """The values environment markers are judged by: Linux (clusters) or this computer, and `python`."""
    environment: dict[str, str] = {key: str(value) for key, value in default_environment().items()}
    if not local:
        environment.update(sys_platform="linux", platform_system="Linux", os_name="posix",
                           implementation_name="cpython", platform_python_implementation="CPython",
                           platform_machine=machine or "x86_64", platform_release="", platform_version="")
    elif machine:
        environment["platform_machine"] = machine
    if python:
        parts = python.split(".")
        environment["python_version"] = ".".join(parts[:2])
        environment["python_full_version"] = ".".join((parts + ["0", "0"])[:3])
    return environment


def _pick(candidates: list[LockedPackage], edge: LockedDependency) -> list[LockedPackage]:
    if len(candidates) > 1 and edge.version is not None:
        candidates = [p for p in candidates if p.version == edge.version] or candidates
    if len(candidates) > 1 and edge.source is not None:
        candidates = [p for p in candidates if p.location == edge.source] or candidates
    return candidates


def select_packages(project: UvProject, environment: Mapping[str, str] | None = None) -> list[LockedPackage]:
    """The locked packages `uv sync` would install in `environment` (markers judged there), project excluded.

    Walks the lock's graph from the project as uv does: its dependencies, the default dependency groups
    (uv's default is 'dev'), and the optional dependencies of every extra asked for on the way.
    """
    environment = environment or marker_environment(project.python)
    by_name: dict[str, list[LockedPackage]] = {}
    for package in project.packages:
        by_name.setdefault(canonical_name(package.name), []).append(package)
    roots = [p for p in project.packages if project.is_root(p)]
    if not roots:
        return _unique(project.locked)
    todo: list[tuple[LockedPackage, tuple[str, ...]]] = []
    for root in roots:
        wanted = project.default_groups if project.default_groups is not None else ["dev"]
        group_edges = [edge for label, edges in root.groups if "*" in wanted or
                       canonical_name(label) in {canonical_name(g) for g in wanted} for edge in edges]
        todo.append((root, ()))
        todo.extend(_follow(by_name, group_edges, environment))
    seen: set[tuple[int, str]] = set()
    chosen: dict[int, LockedPackage] = {}
    while todo:
        package, extras = todo.pop()
        key = id(package)
        for extra in ("", *extras):
            if (key, extra) in seen:
                continue
            seen.add((key, extra))
            if not project.is_root(package):
                chosen[key] = package
            edges = package.dependencies if not extra else package.edges("optional", extra)
            todo.extend(_follow(by_name, edges, environment))
    return _unique(chosen.values())


def _follow(by_name: dict[str, list[LockedPackage]], edges: Iterable[LockedDependency],
            environment: Mapping[str, str]) -> list[tuple[LockedPackage, tuple[str, ...]]]:
    found = []
    for edge in edges:
        if not edge.applies(environment):
            continue
        for package in _pick(by_name.get(canonical_name(edge.name), []), edge):
            found.append((package, edge.extras))
    return found


def _unique(packages: Iterable[LockedPackage]) -> list[LockedPackage]:
    """One entry per name (the first), sorted by name: pip cannot install two versions of a package."""
    result: dict[str, LockedPackage] = {}
    for package in packages:
        result.setdefault(canonical_name(package.name), package)
    return [result[name] for name in sorted(result)]


def to_spec(project: UvProject, environment: Mapping[str, str] | None = None) -> EnvSpec:
    """The EnvSpec of the project's locked environment, for the one import pipeline to plan and build.

    `environment` (see marker_environment) says where it will be installed, so packages the lock only
    needs elsewhere (Windows, another Python) are left out; by default a Linux cluster with the lowest
    Python the project allows. Registry packages are pinned to their locked versions with every file
    hash the lock lists (`hashed` lines: pip or uv checks each file against them); git and URL packages
    are pinned to their exact commit or file; packages from folders or files ([tool.uv.sources] path = ...) are
    installed from there, as `uv sync` installs them, where the target has that path (a virtual one, which is only
    its dependencies, is refused). The requirements are the project's own dependencies (what --top-level installs
    instead), a local one as its folder's line.
    """
    selected = select_packages(project, environment)
    virtual = [p for p in selected if p.source == "virtual"]
    folders = {canonical_name(p.name): p.local_pin(project.folder) for p in selected
               if p.is_local and p.source != "virtual"}
    installable = [p for p in selected if not p.is_local]
    with_hashes = [p for p in installable if p.portable and p.hashes]
    without = {canonical_name(p.name) for p in installable if not (p.portable and p.hashes)}
    # pip and uv check hashes only when everything a hashed line needs is hashed too
    blocking = sorted({edge.name for p in with_hashes for edge in p.all_edges()
                       if canonical_name(edge.name) in without})
    hashed, adapted = [], []
    if not blocking:
        hashed = [p.hashed_line() for p in with_hashes]
    else:
        reason = ("installed without its file hashes: pip and uv check hashes only when every dependency "
                  f"has them too, and uv.lock gives none for {', '.join(blocking)}")
        adapted = [Adapted(f"{p.name}=={p.version} (with {len(p.hashes)} file hash(es) in uv.lock)",
                           p.pin().pip_line(), reason) for p in with_hashes]
    pins = [p.pin(project.folder) for p in installable if not (p.portable and p.hashes)]
    pins += folders.values()
    refused = [Refused(p.describe(project.folder), LOCAL_SOURCE) for p in virtual]
    gone = {canonical_name(p.name) for p in virtual}
    asked = [*project.dependencies, *(r for r in project.requested_groups() if r not in project.dependencies)]
    requirements = [folders[name].pip_line() if name in folders else r
                    for r in asked if (name := _requirement_name(r)) not in gone]
    return EnvSpec(kind="uv", python=project.python, requirements=requirements, pins=pins, hashed=hashed,
                   adapted=adapted, refused=refused, name=project.name,
                   source={"format": "uv", "path": str(project.folder), "project": project.name})


def _requirement_name(requirement: str) -> str:
    from packaging.requirements import Requirement
    return canonical_name(Requirement(requirement).name)
