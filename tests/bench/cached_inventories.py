"""Generated inventories, saved where the app keeps its cached lists, for the start-up and memory benchmarks.

The data goes through the app's own path: InventoryCache.save writes it, and the app reads it back at start
(AppController.reload_targets -> InventoryCache.load). The clusters' profiles point at a closed port on
this machine, so the app's background refresh fails at once and the cached lists stay shown.
"""
from __future__ import annotations

import random
import socket
from pathlib import Path

from envdesk.backend.cache import InventoryCache
from envdesk.backend.config import ClusterProfile, ClusterStore
from envdesk.backend.inventory import Environment, Inventory, Package
from envdesk.backend.paths import AppPaths

ALL_CLUSTERS = "*all*"  # gui.models.ALL_TARGETS, repeated so that this module loads no Qt


def closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def generated_inventory(target: str, environments: int, packages: int, seed: int = 0) -> Inventory:
    """`environments` venvs of `packages` packages each, names drawn from a pool four times that size (so
    environments share packages, as on a real cluster), with the fields a real listing fills."""
    chance = random.Random(seed)
    pool = [(f"package-{n:04d}", [f"{chance.randint(0, 9)}.{chance.randint(0, 30)}.{v}" for v in range(3)])
            for n in range(packages * 4)]
    home = f"/home/user{seed}"
    made = []
    for number in range(environments):
        chosen = sorted(chance.sample(pool, packages))
        made.append(Environment(
            name=f"project-{number:04d}", path=f"{home}/venvs/project-{number:04d}", kind="venv",
            python=f"3.{chance.choice((9, 10, 11, 12))}.{chance.randint(0, 9)}",
            packages=tuple(Package(name, chance.choice(versions), installer="pip", requested=n < 5)
                           for n, (name, versions) in enumerate(chosen)),
            modules=("StdEnv/2023", "python/3.11.5"), root=f"{home}/venvs",
            envdesk={"kind": "venv", "requested": [name for name, _ in chosen[:5]], "created": "2025-01-01"}))
    return Inventory(target=target, environments=tuple(made), remote_python="3.11.5", host=f"login{seed}",
                     home=home)


def fill_cache(paths: AppPaths, clusters: int, environments: int, packages: int) -> list[str]:
    """Profiles for `clusters` unreachable clusters, each with a cached inventory; returns their names."""
    store, cache, port = ClusterStore(paths), InventoryCache(paths), closed_port()
    names = []
    for number in range(clusters):
        name = f"cluster{number:02d}"
        store.add(ClusterProfile(name=name, host="127.0.0.1", port=port, user="nobody"))
        cache.save(generated_inventory(name, environments, packages, seed=number))
        names.append(name)
    return names


def select_at_start(paths: AppPaths, entry: str) -> None:
    """Make the window open on `entry` (a cluster, or ALL_CLUSTERS), as it reopens on the last one chosen."""
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    Path(paths.config_dir / "window.ini").write_text(f"[General]\ntarget={entry}\n", encoding="utf-8")
