"""The last known inventory of each target, and the clusters' names, kept on disk so the app shows something at
once."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import WriteFailed
from .fileio import write_atomically
from .inventory import Inventory, environments_from_agent
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
                "truncated": inventory.truncated, "remote_python": inventory.remote_python,
                "host": inventory.host, "home": inventory.home,
                "environments": [env.details() for env in inventory.environments]}
        write_atomically(self._file(inventory.target), json.dumps(data))

    def load(self, target: str) -> tuple[Inventory, float] | None:
        """The cached inventory and when it was saved (epoch seconds), or None."""
        try:
            text = self._file(target).read_text(encoding="utf-8")
            data = load_object(text, {"environments": environments_from_agent})  # one environment parsed at a time
            inventory = Inventory(
                target=target, environments=data["environments"],
                errors=tuple(data.get("errors") or ()), truncated=bool(data.get("truncated")),
                remote_python=data.get("remote_python"), host=data.get("host"), home=data.get("home"))
            return inventory, float(data.get("saved", 0))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def forget(self, target: str) -> None:
        try:
            self._file(target).unlink()
        except OSError:
            pass


class ClusterNames:
    """The configured clusters' names, as clusters.yaml last gave them, kept beside the cached lists with that
    file's text: while the file says the same, the window lists the clusters without loading PyYAML (~13 ms of
    its start); once it changed (or it was never read) it is read through the store."""

    def __init__(self, paths: AppPaths, store: ClusterStore | None = None) -> None:
        self.paths = paths
        self.source = paths.clusters_file
        self._store = store
        self.file = paths.cache_dir / "clusters.json"

    @property
    def store(self) -> ClusterStore:
        """The store that reads clusters.yaml, made when first asked for (its module is ~8 M instructions of
        the window's start, which reads the names kept here)."""
        if self._store is None:
            from .config import ClusterStore
            self._store = ClusterStore(self.paths)
        return self._store

    def load(self) -> list[str]:
        """The clusters' names in the order they were added; the store's ConfigError when the file is wrong."""
        try:
            text = self.source.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except (OSError, ValueError):
            text = None  # the store says what is wrong
        try:
            kept = json.loads(self.file.read_text(encoding="utf-8"))
            if text is not None and kept["source"] == text and all(isinstance(name, str) for name in kept["names"]):
                return list(kept["names"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        names = [profile.name for profile in self.store.load()]
        if text is not None:
            try:  # a file changed meanwhile is read again next time: the text kept is the one read before
                write_atomically(self.file, json.dumps({"source": text, "names": names}))
            except WriteFailed:
                pass
        return names
