"""What the SSH benchmarks share: many real venvs full of real pip-installed packages on the test bed,
and cluster profiles that reach the test bed's sshds through latency proxies.

The packages are real wheels built here (the tests' wheelhouse holds only a handful of names), installed
by the venv's own pip, so every dist-info folder has the shape pip gives it: METADATA, WHEEL, INSTALLER,
RECORD, REQUESTED for what was asked for (not for dependencies), direct_url.json for wheels installed
from a file path. Names mix capitals, dots, dashes and underscores the way real ones do.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
import time
import zipfile
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from bench.latency_proxy import LatencyProxy

ENV_ROOT = "~/venvs"      # one of the roots EnvDesk searches by default
ENV_PREFIX = "bench-"
_DATE = (2024, 1, 1, 0, 0, 0)
_STARTED = time.monotonic()


def progress(text: str) -> None:
    """A line on stderr saying what the benchmark is doing and since when (the figures go to stdout)."""
    print(f"[{time.monotonic() - _STARTED:6.0f} s] {text}", file=sys.stderr, flush=True)
_FIRST = ["Flask", "zope", "ruamel", "typing", "google", "jupyter", "sphinx", "pytest", "backports", "azure",
          "Django", "oslo", "jaraco", "pyobjc", "types", "PyQt", "msal", "opentelemetry", "Sphinx", "scikit"]
_SECOND = ["SQLAlchemy", "interface", "yaml", "extensions", "cloud-storage", "server", "rtd-theme", "cov",
           "functools", "core", "REST", "config", "classes", "Cocoa", "requests", "WebEngine", "extensions",
           "api", "contrib", "learn"]
_SHAPES = ["{a}-{b}{n}", "{a}.{b}{n}", "{a}_{b}_{n}", "Py{A}{n}", "{a}-{b}-{n}"]
_VERSIONS = ["1.{n}.0", "0.{n}", "2024.{n}.post1", "3.{n}.2", "{n}.0.1"]


def canonical(name: str) -> str:
    """PEP 503 normalized name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def package_names(count: int) -> list[tuple[str, str]]:
    """`count` distinct (name, version) pairs shaped like real ones: Flask-SQLAlchemy3, zope.interface7..."""
    pairs = []
    for n in range(count):
        a, b = _FIRST[n % len(_FIRST)], _SECOND[(n * 7) % len(_SECOND)]
        name = _SHAPES[n % len(_SHAPES)].format(a=a, A=a.capitalize(), b=b, n=n)
        pairs.append((name, _VERSIONS[n % len(_VERSIONS)].format(n=n)))
    assert len({canonical(name) for name, _ in pairs}) == count
    return pairs


def _hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_wheel(folder: Path, name: str, version: str, requires: list[str]) -> Path:
    """A real, installable wheel of one small pure-Python distribution (file name escaped as the wheel
    format says; METADATA keeps the name as written)."""
    escaped = re.sub(r"[-_.]+", "_", name)
    info = f"{escaped}-{version}.dist-info"
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
                f"Summary: Benchmark package {name}", "License: MIT", "Requires-Python: >=3.6",
                *(f"Requires-Dist: {req}" for req in requires)]
    files = {f"{escaped.lower()}/__init__.py": f'__version__ = "{version}"\n',
             f"{info}/METADATA": "\n".join(metadata) + "\n\nA package made for EnvDesk's benchmarks.\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: envdesk-bench\nRoot-Is-Purelib: true\n"
                              "Tag: py3-none-any\n",
             f"{info}/top_level.txt": escaped.lower() + "\n"}
    path = folder / f"{escaped}-{version}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, text in files.items():
            data = text.encode()
            archive.writestr(zipfile.ZipInfo(member, _DATE), data)
            record.append(f"{member},{_hash(data)},{len(data)}")
        archive.writestr(zipfile.ZipInfo(f"{info}/RECORD", _DATE), "\n".join([*record, f"{info}/RECORD,,"]) + "\n")
    path.chmod(0o644)
    return path


@dataclass(frozen=True)
class BenchPackages:
    """The wheels of one benchmark: which to ask for by name, which by file, which come as dependencies."""

    folder: Path
    by_name: list[str]
    by_file: list[Path]
    names: list[str]


def make_wheels(folder: Path, count: int) -> BenchPackages:
    """`count` wheels in `folder`: every tenth is installed from its file (pip records direct_url.json),
    and one in ten is only a dependency of another (no REQUESTED)."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    pairs = package_names(count)
    dependencies = {n for n in range(count) if n % 10 == 5}
    by_name, by_file = [], []
    for n, (name, version) in enumerate(pairs):
        requires = [f"{pairs[n + 1][0]}>={pairs[n + 1][1]}"] if n + 1 in dependencies else []
        wheel = write_wheel(folder, name, version, requires)
        if n in dependencies:
            continue
        if n % 10 == 9:
            by_file.append(wheel)
        else:
            by_name.append(name)
    return BenchPackages(folder, by_name, by_file, [name for name, _ in pairs])


def make_envs(cluster: Any, packages: BenchPackages, envs: int) -> list[str]:
    """`envs` venvs under ~/venvs of the cluster's user, each with every benchmark package installed by
    its own pip (the first is built, the others are copies of it); returns their absolute paths.
    Checks with `pip list` that every package is there."""
    modules = " ".join(cluster.python_modules)
    first = f"{ENV_ROOT}/{ENV_PREFIX}001"
    wheels = " ".join(str(path) for path in packages.by_file)
    cluster.run_as_user(
        f"module load {modules} && mkdir -p {ENV_ROOT} && python -m venv {first} && "
        f"{first}/bin/pip install -q --disable-pip-version-check --no-index --find-links {packages.folder} "
        f"{' '.join(packages.by_name)} && "
        f"{first}/bin/pip install -q --disable-pip-version-check --no-index --find-links {packages.folder} {wheels} "
        f"&& for i in $(seq 2 {envs}); do cp -a {first} {ENV_ROOT}/{ENV_PREFIX}$(printf %03d $i); done",
        timeout=1200)
    listed = json.loads(cluster.run_as_user(
        f"{ENV_ROOT}/{ENV_PREFIX}{envs:03d}/bin/python -m pip list --disable-pip-version-check --format json").stdout)
    missing = {canonical(name) for name in packages.names} - {canonical(item["name"]) for item in listed}
    assert not missing, f"pip list does not show {sorted(missing)[:5]}"
    return [f"{cluster.home}/venvs/{ENV_PREFIX}{i:03d}" for i in range(1, envs + 1)]


def copy_envs(source: Any, cluster: Any) -> None:
    """Give another test-bed user the same venvs (copied as root, then made theirs)."""
    subprocess.run(["cp", "-a", f"{source.home}/venvs", f"{cluster.home}/venvs"], check=True)
    subprocess.run(["chown", "-R", f"{cluster.user}:", f"{cluster.home}/venvs"], check=True)


@dataclass(frozen=True)
class Reach:
    """How a benchmark reaches one profile: its name, the test-bed cluster behind it, the proxy's port."""

    profile: str
    cluster: Any
    port: int
    rtt: float


@contextmanager
def proxied_profiles(paths: Any, wanted: dict[str, tuple[Any, float]]) -> Iterator[dict[str, Reach]]:
    """One profile per entry of `wanted` (name -> (test-bed cluster, round trip)), each reaching its
    cluster through a latency proxy of its own, host keys trusted; yields name -> Reach."""
    from envdesk.backend.config import ClusterProfile, ClusterStore

    store = ClusterStore(paths)
    reaches = {}
    with ExitStack() as stack:
        for name, (cluster, rtt) in wanted.items():
            proxy = LatencyProxy(cluster.port, rtt).start()
            stack.callback(proxy.stop)
            store.add(ClusterProfile(name=name, **{**cluster.profile_fields(), "port": proxy.port}))
            with open(paths.known_hosts_file, "a") as handle:
                handle.write(f"[127.0.0.1]:{proxy.port} {cluster.host_key_pub}\n")
            reaches[name] = Reach(name, cluster, proxy.port, rtt)
        yield reaches


def uv_program(cluster: Any) -> str:
    """The absolute path of the uv the cluster's module gives (a script calls it directly, without Lmod)."""
    return cluster.run_as_user(f"module load {cluster.uv_module} && command -v uv").stdout.strip()
