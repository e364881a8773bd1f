"""Reading what environments a target has: one agent run, parsed into plain records."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from sys import intern
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from .errors import EnvDeskError, InvalidInput, NotFound
from .protocol import STATE_BROKEN, STATE_OK

if TYPE_CHECKING:  # the records load without the agent client and the runners (the window's start: ~10 ms)
    from .runner import CancelToken, Runner


def _shared(value: Any) -> Any:
    """One copy of a text that many packages repeat (names, versions, installers): a listing of thousands of
    environments holds each once instead of once per package (half the app's memory for big inventories)."""
    return intern(value) if isinstance(value, str) else value


def _shared_within(value: Any) -> Any:
    """`value` (what the agent read from an environment's .envdesk folder) with its texts shared (_shared), at
    every depth: the requested packages' names, kinds and dates repeat from environment to environment."""
    if isinstance(value, dict):
        return {_shared(key): _shared_within(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shared_within(item) for item in value]
    return _shared(value)


@dataclass(frozen=True, slots=True)
class Package:
    """One installed distribution."""

    name: str
    version: str
    installer: str | None = None
    requested: bool = False
    url: str | None = None
    editable: bool = False
    build: str | None = None
    channel: str | None = None
    requires_python: str | None = None  # as its METADATA states it (an environment's details only)


_BOUND = re.compile(r"\s*(>=|<)\s*(\d+(?:\.\d+){0,2})\s*")
_FINAL_RELEASE = re.compile(r"\d+\.\d+\.\d+")


def _surely_admits(requires_python: str, python: str | None) -> bool:
    """Whether Requires-Python made only of '>=X.Y' and '<X.Y' bounds (as most packages state it) admits the final
    release `python` (X.Y.Z), compared as PEP 440 compares release numbers; False when in doubt, for packaging to
    judge. A create or an update need not load packaging for every package then."""
    if python is None or not _FINAL_RELEASE.fullmatch(python):
        return False
    version = tuple(int(part) for part in python.split("."))
    for clause in requires_python.split(","):
        bound = _BOUND.fullmatch(clause)
        if bound is None:
            return False
        limit = tuple(int(part) for part in bound[2].split("."))
        limit += (0,) * (3 - len(limit))
        if (version < limit) if bound[1] == ">=" else (version >= limit):
            return False
    return True


_PYTHON_GONE = ("python program", "was made from")
"""How the agent's problem sentences (agent/read.py check_python_program, home_problem) name a Python gone."""


class SharedPackages:
    """One Package object per distinct package of a listing: a cluster's environments mostly hold the same
    packages (same name, version, installer...), so a listing of thousands of environments keeps each once
    instead of once per environment (the memory benchmark's 500,000 entries are some 13,000 objects). One
    table per listing read, dropped with it."""

    def __init__(self) -> None:
        self._seen: dict[tuple[Any, ...], Package] = {}

    def package(self, entry: dict[str, Any]) -> Package:
        """The Package for one entry of an environment's "packages" list, the same object for equal entries."""
        get = entry.get  # once, not per field: a listing has thousands of entries
        fields = (str(get("name", "?")), str(get("version", "")), get("installer"), bool(get("requested")),
                  get("url"), bool(get("editable")), get("build"), get("channel"), get("requires_python"))
        try:
            found = self._seen.get(fields)
        except TypeError:  # a value no agent sends (a list for a url): kept, not shared
            return Package(*map(_shared, fields))
        if found is None:
            found = self._seen[fields] = Package(*map(_shared, fields))
        return found


def _count(value: Any) -> int | None:
    """A whole number from the agent's answer, or None for anything else (a newer or older agent's shape)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class Usage:
    """What an environment takes on disk: its bytes and files (folders and links count, as a file quota does);
    `complete` is False when the walk stopped at its time budget (the figures are then lower bounds)."""

    bytes: int
    files: int
    complete: bool = True

    @classmethod
    def from_agent(cls, data: Any) -> "Usage | None":
        """From the agent's "usage" entry; None when there is none or it is not of the expected shape."""
        if not isinstance(data, dict) or _count(data.get("bytes")) is None or _count(data.get("files")) is None:
            return None
        return cls(data["bytes"], data["files"], data.get("complete") is not False)


@dataclass(frozen=True, slots=True)
class Space:
    """What one file system holding a root (or the home folder) has: free and total bytes and files."""

    path: str
    free_bytes: int | None
    total_bytes: int | None
    free_files: int | None
    total_files: int | None

    @classmethod
    def from_agent(cls, data: Any) -> "Space | None":
        """From one entry of the agent's "space" list; None when it is not of the expected shape."""
        if not isinstance(data, dict) or not isinstance(data.get("path"), str):
            return None
        return cls(data["path"], _count(data.get("free_bytes")), _count(data.get("total_bytes")),
                   _count(data.get("free_files")), _count(data.get("total_files")))


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A package folder whose metadata Python cannot read (no permission, or a named pipe or a folder in its
    METADATA's place): importlib.metadata finds no Name there, so pip and uv do not see the package."""

    path: str     # the dist-info or egg-info folder
    reason: str   # which file, and why it cannot be read
    advice: str   # what to do: chmod, or remove the file and install the package again

    @classmethod
    def from_agent(cls, data: Any) -> "Unreadable | None":
        """From one entry of the agent's "unreadable_packages"; None when it is not of the expected shape."""
        if not isinstance(data, dict) or not all(isinstance(data.get(key), str) for key in ("path", "reason")):
            return None
        return cls(data["path"], data["reason"], str(data.get("advice") or ""))


@dataclass(frozen=True, slots=True)
class SharedGroup:
    """The group an environment in a group's shared folder is shared with (the agent's group_share rule): whether
    the group may update it too, and, when the group cannot use it after all, the sentence saying what to do."""

    group: str
    write: bool
    problem: str = ""

    @classmethod
    def from_agent(cls, data: Any) -> "SharedGroup | None":
        """From the agent's "shared" entry; None when there is none or it is not of the expected shape."""
        if not isinstance(data, dict) or not isinstance(data.get("group"), str):
            return None
        return cls(data["group"], data.get("write") is True, str(data.get("problem") or ""))

    def sentence(self) -> str:
        """One line for a create: who may use it."""
        if not self.write:
            return f"Shared with the group {self.group}, like its folder: its members may use it."
        return (f"Shared with the group {self.group}, like its folder: its members may use and update it, and so "
                "change what runs when you use it.")  # R20: say what group write gives them


@dataclass(frozen=True, slots=True)
class Provided:
    """The packages one of an environment's modules puts on PYTHONPATH (in the folder `path`): Python imports them
    before the environment's own (T20: the Alliance's scipy-stack puts numpy, scipy, pandas there). Each name is
    listed where Python finds it first, so these are the versions it imports."""

    module: str
    path: str
    packages: tuple[Package, ...] = ()

    @classmethod
    def from_agent(cls, data: Any, table: SharedPackages) -> "Provided | None":
        """From one entry of the agent's "provided" list; None when it is not of the expected shape."""
        if not isinstance(data, dict) or not all(isinstance(data.get(key), str) for key in ("module", "path")):
            return None
        return cls(_shared(data["module"]), data["path"],
                   tuple(table.package(entry) for entry in data.get("packages") or () if isinstance(entry, dict)))


@dataclass(frozen=True, slots=True)
class Environment:
    """One Python environment as the agent found it."""

    name: str
    path: str
    kind: str
    python: str | None
    packages: tuple[Package, ...] = ()
    modules: tuple[str, ...] = ()
    system_site_packages: bool = False
    created_by: str | None = None
    root: str = ""
    state: str = STATE_OK
    error: str | None = None
    channels: tuple[str, ...] = ()
    conda_requested: tuple[str, ...] = ()
    envdesk: dict[str, Any] | None = None
    changing: dict[str, Any] | None = None  # a change under way (or cut off): packages are from before it
    detailed: bool = True   # False: packages have names and versions only (a light listing)
    usage: Usage | None = None  # what it takes on disk, when it was measured (read_inventory's `usage`)
    warnings: tuple[str, ...] = ()  # what the agent could not read in it, or found twice (its sentences)
    provided: tuple[Provided, ...] = ()  # what its modules put on PYTHONPATH, before its own (details only)
    incomplete_packages: tuple[str, ...] = ()  # package folders without metadata (half installed): broken
    unreadable_packages: tuple[Unreadable, ...] = ()  # package folders whose metadata cannot be read: broken
    shared: SharedGroup | None = None  # the group it is shared with, when it is in a group's shared folder
    owner: str | None = None  # the user it belongs to, where that is not you (a colleague's, in a shared folder)
    group: str | None = None  # its group, where it is not yours
    writable: bool = True     # False: its permissions do not let you change it (see read_only_reason)
    others_packages: tuple[tuple[str, str], ...] = ()  # (package, owner): another user's, not writable for you
    # (read only for the packages a change names: read_inventory's `owners_of`)

    @property
    def read_only_reason(self) -> str | None:
        """Why you cannot change it, with what to do instead, or None when you can: another user's environment
        is theirs to change (copy it, or ask them); your own made read-only can be made writable again."""
        if self.writable:
            return None
        if self.owner:
            group = f" (group {self.group})" if self.group else ""
            return (f"{self.name} belongs to {self.owner}{group} and you cannot change it. Copy it (envdesk env "
                    f"clone, or the Copy button in the window) and change your copy, or ask {self.owner}.")
        return (f"{self.name} is read-only for you. To change or delete it, make it writable again (chmod -R u+w "
                f"{self.path}); or copy it (envdesk env clone, or the Copy button in the window).")

    @property
    def package_count(self) -> int:
        return len(self.packages)

    @property
    def constraints(self) -> tuple[str, ...]:
        """The constraints (pip's -c lines) it was made with and keeps: every install into it follows them."""
        kept = (self.envdesk or {}).get("constraints")
        return tuple(line for line in kept if isinstance(line, str)) if isinstance(kept, list) else ()

    @property
    def python_gone(self) -> bool:
        """Whether it cannot run for want of its Python: its own python program, or the Python it was made
        from (the agent's words for those two problems; other broken states, a slow read say, are not)."""
        return self.state == STATE_BROKEN and any(words in (self.error or "") for words in _PYTHON_GONE)

    def made_for_another_python(self) -> list[Package]:
        """Its packages whose stated Requires-Python excludes its Python, as pip judges it (which refuses them;
        uv installs them from a folder of wheels, astral-sh/uv#5475). None when either is unknown, or when only
        its Python's X.Y is known: pip judges the full version."""
        judged = [p for p in self.packages if p.requires_python and not _surely_admits(p.requires_python, self.python)]
        if not judged:
            return []
        from packaging.specifiers import InvalidSpecifier, SpecifierSet
        from packaging.version import InvalidVersion, Version
        try:
            python = Version(self.python or "")
        except InvalidVersion:
            return []
        if len(python.release) < 3:
            return []
        misfits = []
        for package in judged:
            try:
                fits = SpecifierSet(package.requires_python or "").contains(python, prereleases=True)
            except InvalidSpecifier:
                continue  # pip ignores a Requires-Python it cannot read, and so do we
            if not fits:
                misfits.append(package)
        return misfits

    def cautions(self) -> list[str]:
        """Why it may not work as listed, one sentence each: its packages made for another Python, then what the
        agent could not read in it or found installed twice (its warnings: pip list and Python may see them)."""
        return [f"{p.name} {p.version} is made for Python {p.requires_python}, not {self.python}"
                for p in self.made_for_another_python()] + list(self.warnings)

    def summary(self) -> dict[str, Any]:
        """The fields `env list --json` promises, plus state and modules."""
        return {"name": self.name, "path": self.path, "kind": self.kind, "python": self.python,
                "package_count": self.package_count, "modules": list(self.modules), "state": self.state,
                "error": self.error, "changing": self.changing}

    def details(self) -> dict[str, Any]:
        """Everything about the environment, for `env show --json`."""
        data = asdict(self)
        data["package_count"] = self.package_count
        data["constraints"] = list(self.constraints)
        data["packages"] = [asdict(p) for p in self.packages]
        data["read_only"] = self.read_only_reason  # why you cannot change it and what to do, or None
        return data

    @classmethod
    def from_agent(cls, data: dict[str, Any], shared: SharedPackages | None = None) -> "Environment":
        """Build from one entry of the agent's answer, tolerating missing optional keys; `shared`: the table of
        the listing it is part of (see environments_from_agent), so that its packages are those of the others."""
        table = SharedPackages() if shared is None else shared
        changing = data.get("changing")
        return cls(
            name=str(data["name"]), path=str(data["path"]), kind=_shared(str(data.get("kind", "venv"))),
            python=_shared(data.get("python")), packages=tuple(map(table.package, data.get("packages") or ())),
            modules=tuple(map(_shared, data.get("modules") or ())),
            system_site_packages=bool(data.get("system_site_packages")), created_by=_shared(data.get("created_by")),
            root=_shared(str(data.get("root", ""))), state=_shared(str(data.get("state", STATE_OK))),
            error=data.get("error"), channels=tuple(map(_shared, data.get("channels") or ())),
            conda_requested=tuple(data.get("conda_requested") or ()), envdesk=_shared_within(data.get("envdesk")),
            changing=_shared_within(changing) if isinstance(changing, dict) else None,
            detailed=data.get("detail", "full") != "light" and data.get("detailed", True) is not False,
            usage=Usage.from_agent(data.get("usage")),
            warnings=tuple(text for text in data.get("warnings") or () if isinstance(text, str)),
            provided=tuple(found for found in (Provided.from_agent(entry, table)
                                               for entry in data.get("provided") or ()) if found is not None),
            incomplete_packages=tuple(text for text in data.get("incomplete_packages") or () if isinstance(text, str)),
            unreadable_packages=tuple(found for found in map(Unreadable.from_agent,
                                                             data.get("unreadable_packages") or ()) if found),
            shared=SharedGroup.from_agent(data.get("shared")),
            owner=_shared(data.get("owner")) if isinstance(data.get("owner"), str) else None,
            group=_shared(data.get("group")) if isinstance(data.get("group"), str) else None,
            writable=data.get("writable") is not False,
            others_packages=tuple((str(entry.get("name")), str(entry.get("owner")))
                                  for entry in data.get("others_packages") or () if isinstance(entry, dict)))


def environments_from_agent(entries: Iterable[dict[str, Any]],
                            same: Mapping[str, Environment] | None = None) -> tuple[Environment, ...]:
    """The environments of one listing (the agent's answer or a cached one), their equal packages one object
    (SharedPackages). `entries` may be decoded one at a time as asked (jsonpieces.load_object), so that a big
    listing is never whole in memory as parsed JSON, only as these records.

    `same`: the environments of the earlier answer this one was sent against, by path; an entry
    {"same": path} stands for that one, unchanged (see agent_session.HeldAnswers)."""
    shared = SharedPackages()
    return tuple(Environment.from_agent(entry, shared) if "same" not in entry else _same(entry["same"], same)
                 for entry in entries)


def _same(path: Any, same: Mapping[str, Environment] | None) -> Environment:
    """The environment an answer says is unchanged since the one held."""
    found = same.get(path) if same is not None and isinstance(path, str) else None
    if found is None:
        raise EnvDeskError("EnvDesk's helper answered about an environment list EnvDesk does not have.",
                           "Try again: the next listing is read in full.")
    return found


@dataclass(frozen=True, slots=True)
class Inventory:
    """Every environment of one target, with what went wrong along the way."""

    target: str
    environments: tuple[Environment, ...]
    errors: tuple[str, ...] = ()
    truncated: bool = False
    remote_python: str | None = None
    host: str | None = None
    home: str | None = None
    not_read: tuple[str, ...] = ()  # environments found but not read (a listing of chosen names)
    space: tuple[Space, ...] = ()  # each root's file system and the home's, when asked (read_inventory's `space`)
    denied: tuple[tuple[str, str | None], ...] = ()  # (folder, its owner) this user may not look inside

    def denied_note(self) -> str | None:
        """The folders of the search that could not be read, with whose they are, in one sentence (None: none): in
        a shared folder, a colleague's private environment, which is otherwise missing from the list unsaid."""
        if not self.denied:
            return None
        named = "; ".join(folder.rstrip("/").rsplit("/", 1)[-1] + (f", owned by {owner}" if owner else "")
                          for folder, owner in self.denied)
        count = f"{len(self.denied)} folder{'s' if len(self.denied) > 1 else ''}"
        return f"{count} could not be read (permission denied): {named}. Ask its owner for read access if you need it."

    def find(self, name_or_path: str) -> Environment:
        """The environment with this name or absolute path; NotFound, or InvalidInput when a name is ambiguous."""
        wanted = name_or_path.rstrip("/") or name_or_path
        matches = [env for env in self.environments if wanted in (env.name, env.path)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise InvalidInput(f"More than one environment on {self.target} is called {name_or_path!r}.",
                               "Give its full path instead: " + ", ".join(env.path for env in matches) + ".")
        if "/" in wanted or "\\" in wanted:  # a folder, as the window names one: a listing of that folder alone
            raise NotFound(f"There is no environment at {name_or_path} on {self.target}.",
                           "If it was listed before, it was deleted or moved since: refresh the list (envdesk env "
                           f"list {self.target}) to see what is there now.")
        names = ", ".join(sorted({env.name for env in self.environments} | set(self.not_read))) or "none"
        raise NotFound(f"There is no environment {name_or_path!r} on {self.target}.",
                       f"Environments found there: {names}.")


def _problem_line(problem: dict[str, Any]) -> str:
    """One problem of a listing as the user reads it: "<folder>: <what>", or only what when no folder is named
    (the agent as a whole failed), never a label left empty before the colon."""
    path, error = problem.get("path"), problem.get("error") or "?"
    return f"{path}: {error}" if path else str(error)


def _listed(runner: Runner, config: dict[str, Any], cancel: CancelToken | None,
            whole: bool) -> tuple[dict[str, Any], tuple[Environment, ...]]:
    """The agent's answer to `config`, and its environments. A whole listing answered by the runner's kept agent
    is held (agent_session.HeldAnswers): the next such request names it, and gets only what changed since."""
    import json

    from . import agent_session
    from .agent_client import run_agent
    server = agent_session.server_for(runner) if whole else None
    kind = json.dumps(config, sort_keys=True)
    held = server.held.get(kind) if server is not None else None
    if held is not None:
        config = {**config, "since": held.answer}  # the environments unchanged since come as {"same": path}
    answer = run_agent(runner, config, cancel)
    same = held.records if held is not None and answer.get("since") == held.answer else None
    environments = environments_from_agent(answer.get("environments", []), same)
    if server is not None and isinstance(answer.get("answer"), str):
        server.held.keep(kind, answer["answer"], {env.path: env for env in environments})
    return answer, environments


def read_inventory(runner: Runner, roots: Sequence[str], *, paths: Sequence[str] = (), names: Sequence[str] = (),
                   cancel: CancelToken | None = None, settled: bool = True, light: bool = False,
                   usage: bool = False, space: bool = False, owners_of: Sequence[str] = ()) -> Inventory:
    """List the environments under `roots` (and conda's), or only those at `paths`, in one round trip;
    with `names`, only the environments so named are read (the others are not opened at all).

    `settled`: an environment in the middle of a change is shown as it was before it (its snapshot);
    the change itself reads what is really there (False). `light`: packages with their names and versions
    only (one file-system lookup each instead of three), for a listing of every environment
    (Environment.detailed tells which). `usage`: each environment read is measured (Environment.usage; the
    cluster keeps the figures with its cached listing until the environment changes). `space`: the free space
    and files of each root's file system and the home's (Inventory.space). `owners_of`: package names ("*": all)
    whose folders are looked at for another user's (Environment.others_packages), those a change would replace.
    """
    config: dict[str, Any] = {"roots": list(roots), "settled": settled, "light": light}
    if paths:
        config["paths"] = list(paths)
    if names:
        config["names"] = list(names)
    if usage:
        config["usage"] = True
    if space:
        config["space"] = True
    if owners_of:
        config["owners_of"] = list(owners_of)
    answer, environments = _listed(runner, config, cancel, whole=not (paths or names))
    return Inventory(
        target=runner.name,
        environments=environments,
        errors=tuple(_problem_line(e) for e in answer.get("errors", []) if not e.get("denied")),
        denied=tuple((str(e.get("path")), e["owner"] if isinstance(e.get("owner"), str) else None)
                     for e in answer.get("errors", []) if e.get("denied")),
        truncated=bool(answer.get("truncated")),
        remote_python=answer.get("python"),
        host=answer.get("host"),
        home=answer.get("home"),
        not_read=tuple(str(name) for name in answer.get("not_read") or ()),
        space=tuple(found for found in map(Space.from_agent, answer.get("space") or ()) if found is not None),
    )
