"""The last known inventory of each target, and the clusters' names, kept on disk so the app shows something at
once."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .fileio import NOT_KEPT, kept_parse, write_atomically
from .inventory import Environment, Inventory, environments_from_agent
from .jsonpieces import load_object
from .paths import AppPaths
from .validate import cluster_name, LOCAL_TARGET

if TYPE_CHECKING:
    from .config import ClusterStore


class InventoryCache:
    """One JSON file per target under the cache folder; unreadable files are ignored, never fatal."""

    def __init__(self, paths: AppPaths) -> None:
        self.folder = paths.cache_dir

    def _file(self, target: str) -> Path:
        name = target if target == LOCAL_TARGET else cluster_name(target)
        return self.folder / f"inventory-{name}.json"

    def size(self, target: str) -> int:
        """How many bytes the target's cached list takes (0 when there is none): what reading it will cost."""
        try:
            return self._file(target).stat().st_size
        except OSError:
            return 0

    def save(self, inventory: Inventory) -> None:
        data = {"saved": time.time(), "target": inventory.target, "errors": list(inventory.errors),
                "denied": [list(pair) for pair in inventory.denied],
                "truncated": inventory.truncated, "remote_python": inventory.remote_python,
                "host": inventory.host, "home": inventory.home,
                "environments": [_cached_entry(env) for env in inventory.environments]}
        write_atomically(self._file(inventory.target), json.dumps(data))

    def load(self, target: str) -> tuple[Inventory, float] | None:
        """The cached inventory and when it was saved (epoch seconds), or None."""
        try:
            text = self._file(target).read_text(encoding="utf-8")
            data = load_object(text, {"environments": environments_from_agent})  # one environment parsed at a time
            inventory = Inventory(
                target=target, environments=data["environments"],
                errors=tuple(data.get("errors") or ()), truncated=bool(data.get("truncated")),
                denied=tuple((str(folder), owner) for folder, owner in data.get("denied") or ()),
                remote_python=data.get("remote_python"), host=data.get("host"), home=data.get("home"))
            return inventory, float(data.get("saved", 0))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def forget(self, target: str) -> None:
        try:
            self._file(target).unlink()
        except OSError:
            pass


def _cached_entry(env: Environment) -> dict[str, Any]:
    """The environment as `env show --json` gives it, but its packages' entries without the fields that are None
    or False, which a reader takes as those (SharedPackages.package): the same format, parsed at every start, and
    most packages have no url, build or channel (half the text)."""
    data = env.details()
    data["packages"] = [{key: value for key, value in package.items() if value is not None and value is not False}
                        for package in data["packages"]]
    return data


class ClusterNames:
    """The configured clusters' names, from clusters.yaml as the store last parsed it (AppPaths.clusters_parsed,
    kept only for a whole valid file): while the file says the same, the window lists the clusters without
    loading PyYAML (~13 ms of its start); once it changed (or it was never read) it is read through the store."""

    def __init__(self, paths: AppPaths, store: ClusterStore | None = None) -> None:
        self.paths = paths
        self._store = store

    @property
    def store(self) -> ClusterStore:
        """The store that reads clusters.yaml, made when first asked for (its module is ~8 M instructions of
        the window's start, which reads the names kept)."""
        if self._store is None:
            from .config import ClusterStore
            self._store = ClusterStore(self.paths)
        return self._store

    def load(self) -> list[str]:
        """The clusters' names in the order they were added; the store's ConfigError when the file is wrong."""
        try:
            text = self.paths.clusters_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except (OSError, ValueError):
            text = None  # the store says what is wrong
        if text is not None:
            kept = kept_parse(text, self.paths.clusters_parsed)
            if kept is not NOT_KEPT:
                try:
                    names = [entry["name"] for entry in kept.get("clusters") or []]
                    if all(isinstance(name, str) for name in names):
                        return names
                except (AttributeError, KeyError, TypeError):  # not what the store keeps
                    pass
        return [profile.name for profile in self.store.load()]
