"""Reading what environments a target has: one agent run, parsed into plain records."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from sys import intern
from typing import Any, Sequence

from .agent_client import run_agent
from .errors import InvalidInput, NotFound
from .protocol import STATE_OK
from .runner import CancelToken, Runner


def _shared(value: Any) -> Any:
    """One copy of a text that many packages repeat (names, versions, installers): a listing of thousands of
    environments holds each once instead of once per package (half the app's memory for big inventories)."""
    return intern(value) if isinstance(value, str) else value


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

    @property
    def package_count(self) -> int:
        return len(self.packages)

    def summary(self) -> dict[str, Any]:
        """The fields `env list --json` promises, plus state and modules."""
        return {"name": self.name, "path": self.path, "kind": self.kind, "python": self.python,
                "package_count": self.package_count, "modules": list(self.modules), "state": self.state,
                "error": self.error, "changing": self.changing}

    def details(self) -> dict[str, Any]:
        """Everything about the environment, for `env show --json`."""
        data = asdict(self)
        data["package_count"] = self.package_count
        data["packages"] = [asdict(p) for p in self.packages]
        return data

    @classmethod
    def from_agent(cls, data: dict[str, Any]) -> "Environment":
        """Build from one entry of the agent's answer, tolerating missing optional keys."""
        packages = tuple(
            Package(name=intern(str(p.get("name", "?"))), version=intern(str(p.get("version", ""))),
                    installer=_shared(p.get("installer")), requested=bool(p.get("requested")), url=p.get("url"),
                    editable=bool(p.get("editable")), build=p.get("build"), channel=_shared(p.get("channel")))
            for p in data.get("packages") or [])
        return cls(
            name=str(data["name"]), path=str(data["path"]), kind=str(data.get("kind", "venv")),
            python=data.get("python"), packages=packages, modules=tuple(data.get("modules") or ()),
            system_site_packages=bool(data.get("system_site_packages")), created_by=data.get("created_by"),
            root=str(data.get("root", "")), state=str(data.get("state", STATE_OK)), error=data.get("error"),
            channels=tuple(data.get("channels") or ()), conda_requested=tuple(data.get("conda_requested") or ()),
            envdesk=data.get("envdesk"),
            changing=data.get("changing") if isinstance(data.get("changing"), dict) else None,
            detailed=data.get("detail", "full") != "light" and data.get("detailed", True) is not False,
            usage=Usage.from_agent(data.get("usage")))


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

    def find(self, name_or_path: str) -> Environment:
        """The environment with this name or absolute path; NotFound, or InvalidInput when a name is ambiguous."""
        wanted = name_or_path.rstrip("/") or name_or_path
        matches = [env for env in self.environments if wanted in (env.name, env.path)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise InvalidInput(f"More than one environment on {self.target} is called {name_or_path!r}.",
                               "Give its full path instead: " + ", ".join(env.path for env in matches) + ".")
        names = ", ".join(sorted({env.name for env in self.environments} | set(self.not_read))) or "none"
        raise NotFound(f"There is no environment {name_or_path!r} on {self.target}.",
                       f"Environments found there: {names}.")


def read_inventory(runner: Runner, roots: Sequence[str], *, paths: Sequence[str] = (), names: Sequence[str] = (),
                   cancel: CancelToken | None = None, settled: bool = True, light: bool = False,
                   usage: bool = False, space: bool = False) -> Inventory:
    """List the environments under `roots` (and conda's), or only those at `paths`, in one round trip;
    with `names`, only the environments so named are read (the others are not opened at all).

    `settled`: an environment in the middle of a change is shown as it was before it (its snapshot);
    the change itself reads what is really there (False). `light`: packages with their names and versions
    only (one file-system lookup each instead of three), for a listing of every environment
    (Environment.detailed tells which). `usage`: each environment read is measured (Environment.usage; the
    cluster keeps the figures with its cached listing until the environment changes). `space`: the free space
    and files of each root's file system and the home's (Inventory.space).
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
    answer = run_agent(runner, config, cancel)
    return Inventory(
        target=runner.name,
        environments=tuple(Environment.from_agent(e) for e in answer.get("environments", [])),
        errors=tuple(f"{e.get('path', '?')}: {e.get('error', '?')}" for e in answer.get("errors", [])),
        truncated=bool(answer.get("truncated")),
        remote_python=answer.get("python"),
        host=answer.get("host"),
        home=answer.get("home"),
        not_read=tuple(str(name) for name in answer.get("not_read") or ()),
        space=tuple(found for found in map(Space.from_agent, answer.get("space") or ()) if found is not None),
    )
