"""The test bed's `hier` cluster (Python modules behind compilers in a real Lmod hierarchy: testbed/software.py
build_hierarchy_tree) and referees that ask Lmod by hand, as the cluster's user: `module spider`, `module load` with
$LOADEDMODULES and the Python it puts on PATH (the cluster itself: the `hier` fixture, tests/conftest.py)."""
from __future__ import annotations

import re
from pathlib import Path


def profile_config(folder: Path, cluster, preset: str | None = None, *, testbed=None, also=()) -> Path:
    """A config folder with a profile for `cluster` (with `preset`), and the test bed's clusters `also`; host keys
    trusted."""
    from envdesk.backend.config import ClusterProfile, ClusterStore
    from envdesk.backend.paths import AppPaths
    from envdesk_fixtures import make_config
    paths = make_config(folder, testbed, also) if also else AppPaths(folder)
    ClusterStore(paths).add(ClusterProfile(name=cluster.name, preset=preset, **cluster.profile_fields()))
    folder.mkdir(parents=True, exist_ok=True)
    with open(paths.known_hosts_file, "a") as handle:
        handle.write(cluster.known_hosts_line() + "\n")
    return folder


def lmod_spider(cluster) -> dict[str, list[str]]:
    """Lmod's own answer, asked by hand: {each Python module `module -t spider` lists that `module -t avail` does
    not: the modules of the first line `module spider NAME/VERSION` gives to load before it}."""
    listed = cluster.run_as_user("module -t spider 2>&1").stdout.split()
    avail = cluster.run_as_user("module -t avail 2>&1").stdout.split()
    found = {}
    for module in [m for m in listed if re.match(r"(?i)python3?/\d", m) and m not in avail]:
        said = cluster.run_as_user(f"module spider {module} 2>&1").stdout.splitlines()
        start = next(i for i, line in enumerate(said) if "module is available to load" in line)
        found[module] = next(line.split() for line in said[start + 1:] if line.strip())
    return found


def python_after(cluster, modules: list[str]) -> tuple[str, str]:
    """($LOADEDMODULES, the folder of python3) once `modules` are loaded by hand."""
    out = cluster.run_as_user(f"module load {' '.join(modules)} && echo \"$LOADEDMODULES\" && "
                              "dirname \"$(command -v python3)\"").stdout.split()
    return out[0], out[1]


def pyvenv_home(env_path: str) -> str:
    cfg = Path(env_path, "pyvenv.cfg").read_text()
    return next(line.split("=", 1)[1].strip() for line in cfg.splitlines() if line.startswith("home"))


def pip_freeze(cluster, env_path: str, modules: list[str]) -> list[str]:
    return cluster.run_as_user(f"module load {' '.join(modules)} && {env_path}/bin/python -m pip freeze "
                               "--disable-pip-version-check").stdout.split()
