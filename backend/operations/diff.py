"""Drift: how two environments (on one target or two) differ package by package, and making one like the
other with a single update (snapshotted first, so it can be reverted)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from .. import validate
from ..errors import InvalidInput
from ..inventory import Environment, Package, read_inventory
from ..recipes import INSTALLER_PACKAGES
from ..spec import redact
from ..targets import Session, Target, check_folder
from ..validate import LOCAL_TARGET, canonical_name
from .common import Progress, find_environment, is_path
from .update import Change, update_environment

_VCS = ("git+", "hg+", "svn+", "bzr+")


def source_of(package: Package) -> str:
    """Where a package came from: 'conda', 'editable', 'vcs' (git, hg ...), 'url' (an archive or folder) or
    'index' (a package index or wheel store, by version: pip and uv alike)."""
    if package.installer == "conda":
        return "conda"
    if package.editable:
        return "editable"
    if package.url:
        return "vcs" if package.url.startswith(_VCS) else "url"
    return "index"


def shown_version(package: Package | None) -> str:
    """A package's version as a table cell: '1.2', '1.2 (conda)', '0.3 (editable)'; '-' when absent."""
    if package is None:
        return "-"
    source = source_of(package)
    words = {"conda": "conda", "editable": "editable", "vcs": "from version control", "url": "from a URL"}
    return f"{package.version or '?'} ({words[source]})" if source in words else package.version or "?"


def _package_json(package: Package) -> dict[str, Any]:
    return {"name": package.name, "version": package.version, "source": source_of(package),
            "url": redact(package.url) if package.url else None}


@dataclass(frozen=True)
class Different:
    """A package both environments hold, at another version or from another source."""

    name: str
    here: Package
    there: Package

    @property
    def same_release(self) -> bool:
        """Whether the two versions differ only by a local label (PEP 440: 1.26.4+computecanada is a site's build
        of release 1.26.4)."""
        return (self.here.version != self.there.version and source_of(self.here) == source_of(self.there)
                and _release(self.here.version) == _release(self.there.version) is not None)


@dataclass(frozen=True)
class Drift:
    """What `here` holds that `there` does not, the reverse, what both hold differently, and how many the same."""

    only_here: tuple[Package, ...] = ()
    only_there: tuple[Package, ...] = ()
    different: tuple[Different, ...] = ()
    same: int = 0

    @property
    def identical(self) -> bool:
        return not (self.only_here or self.only_there or self.different)

    def rows(self) -> list[tuple[str, Package | None, Package | None]]:
        """Every difference as (name, here, there), sorted by name (a table's rows)."""
        rows: list[tuple[str, Package | None, Package | None]] = [(p.name, p, None) for p in self.only_here]
        rows += [(p.name, None, p) for p in self.only_there]
        rows += [(d.name, d.here, d.there) for d in self.different]
        return sorted(rows, key=lambda row: canonical_name(row[0]))

    def table(self) -> list[tuple[str, str, str]]:
        """The rows as text: (package, version here, version there), '-' where it is absent."""
        return [(name, shown_version(here), shown_version(there)) for name, here, there in self.rows()]

    def summary(self, here: str = "here", there: str = "there") -> str:
        """The drift in one sentence: "3 the same, 1 only here, 2 only there, 1 different"; how many of the
        different are one release, built by a site (1.26.4+computecanada against 1.26.4: T20)."""
        if self.identical:
            return f"Both hold the same {self.same} packages."
        builds = sum(1 for d in self.different if d.same_release)
        return (f"{self.same} the same, {len(self.only_here)} only {here}, {len(self.only_there)} only {there}, "
                f"{len(self.different)} at another version or from another source"
                + (f" ({builds} of them the same release, one a site's own build of it such as "
                   "1.26.4+computecanada)" if builds else "") + ".")


def _release(version: str) -> str | None:
    """A version without its local label, as PEP 440 reads it; None where it is no PEP 440 version."""
    from packaging.version import InvalidVersion, Version
    try:
        return Version(version).public
    except InvalidVersion:
        return None


def _same(a: Package, b: Package) -> bool:
    return (a.version, source_of(a), a.url) == (b.version, source_of(b), b.url)


def compare(here: Environment, there: Environment) -> Drift:
    """The drift between two environments' packages; names are compared in their PEP 503 form, so
    Tiny_Beta here and tiny-beta there are one package."""
    mine = {canonical_name(p.name): p for p in here.packages}
    theirs = {canonical_name(p.name): p for p in there.packages}
    both = sorted(mine.keys() & theirs.keys())
    return Drift(only_here=tuple(mine[key] for key in sorted(mine.keys() - theirs.keys())),
                 only_there=tuple(theirs[key] for key in sorted(theirs.keys() - mine.keys())),
                 different=tuple(Different(mine[key].name, mine[key], theirs[key]) for key in both
                                 if not _same(mine[key], theirs[key])),
                 same=sum(1 for key in both if _same(mine[key], theirs[key])))


@dataclass(frozen=True)
class Side:
    """One of the two environments compared, and the target it is on."""

    target: str
    label: str
    environment: Environment

    def reference(self) -> str:
        """'alpha:myenv', as the command line takes it."""
        return f"{self.target}:{self.environment.name}"

    def to_json(self) -> dict[str, Any]:
        env = self.environment
        return {"target": self.target, "name": env.name, "path": env.path, "kind": env.kind, "python": env.python,
                "package_count": env.package_count}


@dataclass(frozen=True)
class LeftAlone:
    """A difference that making one environment like the other does not touch, and why."""

    name: str
    why: str


@dataclass(frozen=True)
class LikePlan:
    """What "make there like here" does: one update adding `add` (pins), removing `remove`; `left_alone`
    lists every difference it does not touch."""

    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    left_alone: tuple[LeftAlone, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.add or self.remove)

    def change(self) -> Change:
        return Change(add=list(self.add), remove=list(self.remove))

    def to_json(self) -> dict[str, Any]:
        return {"add": list(self.add), "remove": list(self.remove),
                "left_alone": [{"name": item.name, "why": item.why} for item in self.left_alone]}


@dataclass(frozen=True)
class Comparison:
    """Two environments read fresh, and their drift (`here` is the model, `there` the one a make-like changes)."""

    here: Side
    there: Side
    drift: Drift
    notes: tuple[str, ...] = ()

    def plan(self) -> LikePlan:
        """What making `there` like `here` would do (within the constraints `there` keeps)."""
        return plan_like(self.drift, self.here.environment.kind, self.there.environment.kind,
                         self.there.environment.constraints)

    def to_json(self) -> dict[str, Any]:
        """The shape `env diff --json` prints: A is `here`, B is `there`."""
        drift = self.drift
        return {"a": self.here.to_json(), "b": self.there.to_json(), "identical": drift.identical,
                "same": drift.same, "only_in_a": [_package_json(p) for p in drift.only_here],
                "only_in_b": [_package_json(p) for p in drift.only_there],
                "different": [{"name": d.name, "a": _package_json(d.here), "b": _package_json(d.there)}
                              for d in drift.different],
                "notes": list(self.notes)}


_INSTALLER_TOOLS = ("comes with the environment's installer (pip, setuptools and wheel are left as each "
                    "environment has them)")
_PYTHON = "is the environment's Python itself (make a new environment to change it)"


def _unpinnable(package: Package, there_kind: str) -> str:
    """Why a package of `here` cannot be put in `there` by its version ('' when it can)."""
    source = source_of(package)
    if source == "editable":
        return f"is installed editable from {redact(package.url or 'a folder')}: install it there by hand"
    if source in ("vcs", "url"):
        return f"is installed from {redact(package.url or '')}, not by version: install it there by hand"
    if source == "conda" and there_kind != "conda":
        return f"is a conda package, and the other environment is a {there_kind} (pip or uv installs there)"
    try:
        validate.package_spec(f"{package.name}=={package.version}")
    except InvalidInput:
        return "has a name or version that is not one an installer takes"
    return ""


def _ruled_out(package: Package, constraints: Sequence[str]) -> str:
    """Why `there`'s constraints (pip's -c lines, which every install into it follows) rule out `package`'s
    version ('' when none does): the installer would refuse the whole update for it."""
    if not constraints:
        return ""
    from packaging.requirements import InvalidRequirement, Requirement
    for line in constraints:
        try:
            constraint = Requirement(line)
        except InvalidRequirement:
            continue
        if constraint.marker is not None or canonical_name(constraint.name) != canonical_name(package.name):
            continue  # a marker is judged where it installs, by the installer, not here
        try:
            allowed = constraint.specifier.contains(package.version, prereleases=True)
        except ValueError:  # a version packaging cannot read: the installer judges it
            continue
        if not allowed:
            return f"is ruled out there by its constraint {line} (every install into it follows its constraints)"
    return ""


def plan_like(drift: Drift, here_kind: str, there_kind: str, constraints: Sequence[str] = ()) -> LikePlan:
    """Make `there` hold what `here` holds: pin each package it lacks or has at another version, remove what
    only it has. What cannot be pinned by version, what `there`'s `constraints` rule out, the installers' own
    packages and Python itself are left alone (each listed with the reason), as are conda's packages of `there`
    when `here` is not conda (they may be what that environment is built on)."""
    add: list[str] = []
    remove: list[str] = []
    left: list[LeftAlone] = []

    def kept(package: Package) -> bool:
        key = canonical_name(package.name)
        if key in INSTALLER_PACKAGES:
            left.append(LeftAlone(package.name, _INSTALLER_TOOLS))
        elif key == "python":
            left.append(LeftAlone(package.name, _PYTHON))
        else:
            return False
        return True

    for package in drift.only_here:
        if kept(package):
            continue
        why = _unpinnable(package, there_kind) or _ruled_out(package, constraints)
        if why:
            left.append(LeftAlone(package.name, why))
        else:
            add.append(f"{package.name}=={package.version}")
    for item in drift.different:
        if kept(item.here):
            continue
        why = _unpinnable(item.here, there_kind) or _ruled_out(item.here, constraints)
        if not why and source_of(item.there) == "conda" and item.here.version == item.there.version:
            why = "has the same version there, installed by conda"
        if why:
            left.append(LeftAlone(item.name, why))
            continue
        if source_of(item.there) in ("editable", "vcs", "url"):
            remove.append(item.here.name)  # else the installer sees the version there and keeps that copy
        add.append(f"{item.here.name}=={item.here.version}")
    for package in drift.only_there:
        if kept(package):
            continue
        if source_of(package) == "conda" and here_kind != "conda":
            left.append(LeftAlone(package.name, "is a conda package of the other environment, which may be "
                                                "built on it"))
            continue
        try:
            remove.append(validate.package_name(package.name))
        except InvalidInput:
            left.append(LeftAlone(package.name, "has a name that is not one an installer takes"))
    return LikePlan(tuple(add), tuple(remove), tuple(left))


def parse_reference(text: str) -> tuple[str, str]:
    """(target, environment) from 'TARGET:ENV' ('local' is this computer; ENV a name or a full path),
    refused in plain words before anything runs when either part is not one EnvDesk accepts."""
    target, colon, env = text.partition(":")
    if not colon or not target or not env:
        raise InvalidInput(f"{validate.shown(text)} does not name an environment as TARGET:ENV.",
                           "For example local:myenv or alpha:/project/me/envs/myenv ('local' is this computer).")
    if target != LOCAL_TARGET:
        validate.cluster_name(target)
    return target, check_reference(target, env)


_REFERENCE_HINT = "Give the environment's name as `envdesk env list` shows it, or its full path."


def check_reference(target: str, env: str) -> str:
    """An environment's name (one plain folder name) or full path on `target`; InvalidInput for anything else."""
    try:
        return validate.env_name(env)
    except InvalidInput:
        pass
    try:
        return check_folder(target, env)
    except InvalidInput as exc:
        raise InvalidInput(exc.message if is_path(env) else
                           f"{validate.shown(env)} is not an environment name or a full path.",
                           _REFERENCE_HINT) from exc


def _read(target: Target, refs: Sequence[str], progress: Progress) -> list[Environment]:
    """The environments `refs` of one target, with their details: one agent run when every ref is a name."""
    if len(refs) > 1 and not any(is_path(ref) for ref in refs):
        progress.step(f"Reading {' and '.join(dict.fromkeys(refs))} on {target.label}")
        inventory = read_inventory(target.runner, target.roots, names=list(dict.fromkeys(refs)),
                                   cancel=progress.cancel)
        return [inventory.find(ref) for ref in refs]
    return [find_environment(target, ref, progress) for ref in refs]


def _notes(side: Side) -> list[str]:
    env = side.environment
    notes = []
    if env.changing:
        notes.append(f"{side.reference()} is being changed right now: its packages are those from before that "
                     "change.")
    if env.error:
        notes.append(f"{side.reference()}: {env.error}")
    return notes


def diff_environments(session: Session, target_a: str, env_a: str, target_b: str, env_b: str,
                      progress: Progress | None = None) -> Comparison:
    """Read both environments fresh, with their details (one agent run per target), and compare them.
    The references are checked before anything runs."""
    progress = progress or Progress()
    refs = [(target_a, check_reference(target_a, env_a)), (target_b, check_reference(target_b, env_b))]
    targets = {name: session.target(name) for name, _ in refs}
    found: dict[tuple[str, str], Environment] = {}
    for name, target in targets.items():
        wanted = [ref for of, ref in refs if of == name]
        found.update(((name, ref), env) for ref, env in zip(wanted, _read(target, wanted, progress)))
    here, there = (Side(name, targets[name].label, found[(name, ref)]) for name, ref in refs)
    return Comparison(here, there, compare(here.environment, there.environment), tuple(_notes(here) + _notes(there)))


@dataclass(frozen=True)
class MadeLike:
    """What a make-like did: the changed environment and the snapshot taken before (None: nothing changed,
    so none was kept), with the plan it followed."""

    environment: Environment
    snapshot: str | None
    plan: LikePlan
    notes: list[str] = field(default_factory=list)


def make_like(session: Session, target_a: str, env_a: str, target_b: str, env_b: str,
              progress: Progress | None = None, *, comparison: Comparison | None = None) -> MadeLike:
    """Make B hold what A holds, in one update of B (a snapshot of B is saved first, so it can be reverted).

    `comparison`: the one the user was shown and agreed to, whose B is changed (both environments are read
    again when None).
    What cannot be pinned by version is left alone and listed in the result's notes, never dropped unsaid.
    """
    progress = progress or Progress()
    if comparison is None:
        comparison = diff_environments(session, target_a, env_a, target_b, env_b, progress)
    plan = comparison.plan()
    notes = [f"Left alone: {item.name} {item.why}." for item in plan.left_alone]
    if plan.empty:
        return MadeLike(comparison.there.environment, None, plan, notes)
    there = comparison.there
    updated = update_environment(session, there.target, there.environment.path, plan.change(), progress)
    return MadeLike(updated.environment, updated.snapshot, plan, notes)
