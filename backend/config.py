"""Cluster profiles: what EnvDesk knows about each cluster, kept as YAML in the config folder."""
from __future__ import annotations

import contextlib
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Iterable, Iterator

from . import validate
from .errors import Busy, ConfigError, EnvDeskError, NotFound
from .fileio import dump_yaml, locked, read_yaml, write_atomically
from .paths import AppPaths

ADD_CLUSTER = "envdesk cluster add NAME --host HOST --user USER"
"""How a cluster is added from the command line, as every message that suggests it writes it."""

DEFAULT_ENV_ROOTS = ("~/venvs", "~/.venvs", "~/.virtualenvs", "~/envs")
SLURM_ACCOUNT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
AUTH_METHODS = ("auto", "key", "password", "key+code", "password+code")
CHANGE_WAIT = 20.0
"""Seconds a change of clusters.yaml waits for another one (the window's, another command's) before saying so; a
change holds it for milliseconds."""


@dataclass
class ClusterProfile:
    """One cluster: how to reach its login node and where its environments live.

    Empty fields are filled from ``~/.ssh/config`` at connect time, the way ssh does.
    """

    name: str
    host: str
    port: int | None = None
    user: str | None = None
    identity_file: str | None = None
    jump: list[str] = field(default_factory=list)
    env_roots: list[str] = field(default_factory=list)
    pip_args: list[str] = field(default_factory=list)
    preset: str | None = None
    auth: str = "auto"
    slurm_account: str | None = None
    build_on_compute_node: bool | None = None
    """Whether builds run as Slurm jobs on a compute node; None: as the profile's preset says (see slurm.py)."""
    build_partition: str | None = None
    build_time: str | None = None
    build_cpus: int | None = None
    build_memory: str | None = None
    conda_solver: str = "auto"  # one of validate.CONDA_SOLVERS; see Capabilities.conda_tool
    conda_channels: list[str] = field(default_factory=list)  # conda's channels here, in order ([]: conda's own)

    def __post_init__(self) -> None:
        validate.cluster_name(self.name)
        validate.host(self.host)  # a name or address (or ~/.ssh/config alias), never shell text or an option
        if self.port is not None:
            self.port = validate.port(self.port)
        if self.user is not None:
            validate.user(self.user)
        if self.identity_file is not None:
            validate.plain_text(self.identity_file, "identity file")
        for hop in self.jump:
            validate.hop_address(hop)
        self.env_roots = [validate.remote_folder(root) for root in self.env_roots]
        self.pip_args = [validate.plain_text(arg, "pip argument") for arg in self.pip_args]
        if self.slurm_account is not None and not SLURM_ACCOUNT.fullmatch(self.slurm_account):
            raise ConfigError(f"{self.slurm_account!r} is not a Slurm account name.",
                              "Give the allocation exactly as the cluster names it, e.g. def-yourpi.")
        if self.auth not in AUTH_METHODS:
            raise ConfigError(f"Unknown login method {self.auth!r}.", f"Use one of: {', '.join(AUTH_METHODS)}.")
        self._check_build_settings()
        self.conda_solver = validate.conda_solver(self.conda_solver)
        if not isinstance(self.conda_channels, list):
            raise ConfigError(f"conda_channels is {self.conda_channels!r}, not a list of channels.")
        self.conda_channels = [validate.conda_channel_setting(c) for c in self.conda_channels]

    def _check_build_settings(self) -> None:
        """The Slurm settings of builds on a compute node: plain values only, never shell text."""
        if self.build_on_compute_node is not None and not isinstance(self.build_on_compute_node, bool):
            raise ConfigError(f"build_on_compute_node is {self.build_on_compute_node!r}, not true or false.")
        if self.build_partition is not None:
            validate.slurm_partition(self.build_partition)
        if self.build_time is not None:
            self.build_time = validate.slurm_time(self.build_time)
        if self.build_cpus is not None:
            self.build_cpus = validate.slurm_cpus(self.build_cpus)
        if self.build_memory is not None:
            self.build_memory = validate.slurm_memory(self.build_memory)

    @property
    def roots(self) -> list[str]:
        """The folders searched for environments: the profile's own, else the usual ones."""
        return list(self.env_roots) or list(DEFAULT_ENV_ROOTS)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for YAML and JSON, leaving out empty optional fields."""
        data = asdict(self)
        return {key: value for key, value in data.items() if value not in (None, [], "auto") or key == "name"}

    @classmethod
    def from_dict(cls, data: Any) -> "ClusterProfile":
        """Build a profile from saved data, refusing unknown or malformed entries plainly."""
        if not isinstance(data, dict):
            raise ConfigError("A cluster entry in the configuration is not a mapping.")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"Unknown setting(s) {', '.join(sorted(map(str, unknown)))} for a cluster.")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"A cluster entry is incomplete: {exc}.") from exc


@dataclass
class LocalSettings:
    """Settings of the built-in "This computer" target (the `local:` entry of clusters.yaml)."""

    env_roots: list[str] = field(default_factory=list)
    pip_args: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.env_roots = [validate.local_folder(root) for root in self.env_roots]
        self.pip_args = [validate.plain_text(arg, "pip argument") for arg in self.pip_args]

    @property
    def roots(self) -> list[str]:
        return list(self.env_roots) or list(DEFAULT_ENV_ROOTS)


def _keepable(text: str, data: Any) -> bool:
    """Whether clusters.yaml, parsed to `data`, may be kept parsed (AppPaths.clusters_parsed): only a
    whole valid file (so that ClusterNames may take the names kept), and never one that holds a credential (a
    token the user put in pip_args stays in clusters.yaml alone)."""
    from .credentials import has_credentials
    if has_credentials(text) or not isinstance(data, dict) or not isinstance(data.get("clusters") or [], list):
        return False
    try:
        for entry in data.get("clusters") or []:
            ClusterProfile.from_dict(entry)
        LocalSettings(**(data.get("local") or {}))
    except (EnvDeskError, TypeError, AttributeError):
        return False
    return True


def _as_written(profile: ClusterProfile, entry: Any) -> dict[str, Any]:
    """The profile as clusters.yaml holds it: the user's own entry with what changed changed (a default spelled out,
    such as `auth: auto`, stays where it was), else the profile's plain data."""
    data = profile.to_dict()
    if not isinstance(entry, dict):
        return data
    merged = {key: data.get(key, value) for key, value in entry.items()
              if key in data or getattr(profile, str(key), _MISSING) == value}
    merged.update((key, value) for key, value in data.items() if key not in merged)
    try:
        return merged if ClusterProfile.from_dict(merged).to_dict() == data else data
    except EnvDeskError:
        return data


_MISSING = object()


class ClusterStore:
    """Reads and writes the profiles in ``clusters.yaml``; secrets never go here."""

    def __init__(self, paths: AppPaths) -> None:
        self.paths = paths

    def _read(self) -> dict[str, Any]:
        data = read_yaml(self.paths.clusters_file, what="cluster list", kept=self.paths.clusters_parsed,
                         keep=_keepable)
        if data is None:
            return {}
        if not isinstance(data, dict) or not isinstance(data.get("clusters", []), list):
            raise ConfigError(f"{self.paths.clusters_file} does not hold a 'clusters:' list.")
        return data

    def load(self) -> list[ClusterProfile]:
        """All saved profiles, in the order the user added them."""
        return [ClusterProfile.from_dict(entry) for entry in self._read().get("clusters") or []]

    def local_settings(self) -> LocalSettings:
        """How "This computer" is searched and installed into."""
        data = self._read().get("local") or {}
        if not isinstance(data, dict) or set(data) - {"env_roots", "pip_args"}:
            raise ConfigError(f"The 'local:' entry of {self.paths.clusters_file} is not understood.",
                              "It may hold env_roots and pip_args lists.")
        return LocalSettings(**data)

    def update_local_roots(self, root: str) -> None:
        """Add an environment folder to "This computer"."""
        with self._changing():
            local = self.local_settings()
            local.env_roots = [*local.roots, validate.local_folder(root)]
            self._save_local(local)

    def save_local_settings(self, settings: LocalSettings) -> None:
        """Keep how "This computer" is searched and installed into (the `local:` entry; none when both are empty)."""
        with self._changing():
            self._save_local(settings)

    def _save_local(self, settings: LocalSettings) -> None:
        data = self._read()
        local = {key: value for key, value in asdict(settings).items() if value}
        if local:
            data["local"] = local
        else:
            data.pop("local", None)
        data.setdefault("clusters", [])
        self._write(data)

    def save(self, profiles: Iterable[ClusterProfile]) -> None:
        """Write every profile, replacing the file atomically (the local settings are kept, and so is each entry
        as the user wrote it where its settings did not change)."""
        with self._changing():
            self._save(profiles)

    def _save(self, profiles: Iterable[ClusterProfile]) -> None:
        old = self._read()
        written = {entry.get("name"): entry for entry in old.get("clusters") or [] if isinstance(entry, dict)}
        body: dict[str, Any] = {"clusters": [_as_written(profile, written.get(profile.name)) for profile in profiles]}
        if old.get("local"):
            body["local"] = old["local"]
        self._write(body)

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """One change at a time, from reading the file to writing it back: each writer (the window, commands run at
        once) changes what the file holds then, so none undoes another's (T27: of 8 clusters added at once, 3
        were kept, and a folder of environments added by `env create --root` was lost, its environment with it).
        Not to be nested: a second hold waits for the first."""
        file = self.paths.clusters_file

        def busy() -> Busy:
            return Busy(f"Another EnvDesk (the window or a command) has been changing {file} for "
                        f"{CHANGE_WAIT:.0f} seconds; nothing was changed.",
                        "Wait for it to finish, then try again.")

        with locked(file.with_name(f"{file.name}.lock"), CHANGE_WAIT, busy):
            yield

    def _write(self, data: dict[str, Any]) -> None:
        """Replace the file atomically with `data`, changing only what changed in its text, so the user's comments
        and layout stay where they can (backend/yaml_edit.py)."""
        from .yaml_edit import edited_yaml
        try:
            text = self.paths.clusters_file.read_text(encoding="utf-8")
        except OSError:
            text = ""
        kept = edited_yaml(text, data) if text else None
        write_atomically(self.paths.clusters_file, kept if kept is not None else dump_yaml(data))

    def get(self, name: str) -> ClusterProfile:
        """The profile called `name`, or a NotFound that lists the ones that exist."""
        profiles = self.load()
        for profile in profiles:
            if profile.name == name:
                return profile
        known = ", ".join(p.name for p in profiles) or "none yet"
        raise NotFound(f"There is no cluster called {name!r}.",
                       f"Known clusters: {known}. Add one with: {ADD_CLUSTER}")

    def add(self, profile: ClusterProfile) -> None:
        """Save a new profile; a name can only be used once, whatever its letters' case: its cached list and
        kept connection are files named after it, one file for 'Cedar' and 'cedar' on macOS and Windows."""
        with self._changing():
            profiles = self.load()
            same = next((p for p in profiles if p.name.casefold() == profile.name.casefold()), None)
            if same is not None:
                raise ConfigError(f"A cluster called {same.name!r} already exists.",
                                  "Pick another name (names differing only in upper and lower case count as one), "
                                  "or remove the old one first; to change it, envdesk cluster edit (such as "
                                  "--env-root DIR, to add a folder of environments).")
            self._save([*profiles, profile])

    def replace(self, profile: ClusterProfile) -> None:
        """Update an existing profile in place (same name), as a whole (an edit form's Save)."""
        self.edit(profile.name, lambda _: profile)

    def edit(self, name: str, change: Callable[[ClusterProfile], ClusterProfile]) -> ClusterProfile:
        """Replace the profile called `name` by `change` of it as saved at this moment (so that a change made
        meanwhile by another writer is kept); the profile written."""
        with self._changing():
            profiles = self.load()
            changed = change(next((p for p in profiles if p.name == name), None)
                             or self.get(name))  # (NotFound, naming the clusters there are)
            self._save([changed if p.name == name else p for p in profiles])
            return changed

    def remove(self, name: str) -> None:
        """Forget a profile (the cluster's environments are not touched)."""
        with self._changing():
            profiles = self.load()
            self.get(name)
            self._save([p for p in profiles if p.name != name])
