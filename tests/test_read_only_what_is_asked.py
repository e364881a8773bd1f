"""Showing or exporting one environment opens the files of that environment only (issue 11: "reads only
that env"). The referee is the kernel: strace records every file the agent opens."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from envdesk_fixtures import canon, envdesk_command

OTHERS = 8


@pytest.fixture
def many_envs(home):
    """Nine venvs on this computer, each with a few installed distributions (real dist-info folders)."""
    made = []
    for number in range(OTHERS + 1):
        env = home / "venvs" / f"env{number}"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
        site = next((env / "lib").glob("python3*/site-packages"))
        for package in ("alpha", "beta", "gamma"):
            info = site / f"pkg{package}-1.{number}.dist-info"
            info.mkdir()
            (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: pkg{package}\nVersion: 1.{number}\n")
            (info / "INSTALLER").write_text("pip\n")
        made.append(env)
    return made


def opened_in(trace: Path, folders: list[Path]) -> int:
    """How many successful opens of files inside `folders` strace recorded."""
    pattern = re.compile(r'open(?:at)?\((?:AT_FDCWD, )?"([^"]+)".*= \d+$')
    count = 0
    for line in trace.read_text().splitlines():
        found = pattern.search(line)
        if found and any(found.group(1).startswith(str(folder) + "/") for folder in folders):
            count += 1
    return count


def traced(tmp_path: Path, home: Path, *args: str) -> Path:
    trace = tmp_path / f"trace-{len(list(tmp_path.glob('trace-*')))}.txt"
    subprocess.run(["strace", "-f", "-qq", "-e", "trace=open,openat", "-o", str(trace), *envdesk_command(),
                    "--config-dir", str(tmp_path / "cfg"), *args], check=True, capture_output=True,
                   env={"HOME": str(home), "PATH": "/usr/bin:/bin"}, timeout=300)
    return trace


def test_show_and_export_open_no_other_environment(tmp_path, home, many_envs):
    assert shutil.which("strace"), "strace is needed (tests/system-deps.sh installs it)"
    chosen, others = many_envs[0], many_envs[1:]
    listing = traced(tmp_path, home, "env", "list", "local", "--json")
    assert opened_in(listing, others) >= OTHERS, "the listing reads every environment (the count works)"
    for args in (["env", "show", "local", "env0", "--json"], ["env", "export", "local", "env0"]):
        shutil.rmtree(home / ".cache", ignore_errors=True)    # read from the disk, not EnvDesk's cache
        trace = traced(tmp_path, home, *args)
        assert opened_in(trace, [chosen]) >= 3, args
        assert opened_in(trace, others) == 0, f"{args} opened files of other environments"


def test_a_name_that_is_not_there_lists_the_names_that_are(tmp_path, home, many_envs):
    from envdesk_fixtures import run_cli
    missing = run_cli("env", "show", "local", "nothere", config=tmp_path / "cfg", home=home)
    assert missing.returncode == 1
    assert "env0, env1" in missing.stderr and "env8" in missing.stderr


def lookups_in(trace: Path, folder: Path) -> list[str]:
    """The paths inside `folder` (or it itself) that a traced run looked up (opened, stat-ed, listed ...)."""
    quoted = re.compile(r'"((?:[^"\\]|\\.)*)"')
    found = []
    for line in trace.read_text().splitlines():
        for path in quoted.findall(line):
            if path == str(folder) or path.startswith(str(folder) + "/"):
                found.append(path)
    return found


def traced_listing(tmp_path: Path, home: Path) -> tuple[Path, list]:
    """Run `env list local --json` under strace (every call naming a file); the trace and the answer."""
    trace = tmp_path / f"trace-{len(list(tmp_path.glob('trace-*')))}.txt"
    result = subprocess.run(["strace", "-f", "-qq", "-e", "trace=%file", "-o", str(trace), *envdesk_command(),
                             "--config-dir", str(tmp_path / "cfg"), "env", "list", "local", "--json"], check=True,
                            capture_output=True, text=True, env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
                            timeout=300)
    return trace, json.loads(result.stdout)


def age(folders: list[Path], seconds: float = 60) -> None:
    """Date every file and folder of `folders` back, as if made a minute ago (a listing does not cache what
    changed in the last two seconds: a change in the same tick of the clock could go unseen)."""
    then = time.time() - seconds
    for folder in folders:
        for path in [folder, *folder.rglob("*")]:
            os.utime(path, (then, then), follow_symlinks=False)


def counts(answer: list) -> dict[str, int]:
    return {env["name"]: env["package_count"] for env in answer}


def test_a_cold_listing_looks_up_each_package_once(tmp_path, home, many_envs):
    """With nothing cached, each package costs one lookup (its METADATA: name and version), not three."""
    assert shutil.which("strace"), "strace is needed (tests/system-deps.sh installs it)"
    trace, answer = traced_listing(tmp_path, home)
    assert counts(answer) == {env.name: 3 for env in many_envs}
    lookups = [path for env in many_envs for path in lookups_in(trace, env) if ".dist-info" in path]
    packages = 3 * len(many_envs)
    assert len({path.split(".dist-info")[0] for path in lookups}) == packages, "every package was read"
    assert len(lookups) <= packages, f"{len(lookups)} path lookups for {packages} packages"


def test_an_unchanged_environment_costs_three_lookups(tmp_path, home, many_envs):
    """The second listing finds each environment as it was: three stats each (its pyvenv.cfg, its
    site-packages and its .envdesk folder), no package looked at, and the same packages as the disk holds."""
    age(many_envs)
    traced_listing(tmp_path, home)
    trace, answer = traced_listing(tmp_path, home)
    assert counts(answer) == {env.name: 3 for env in many_envs}
    for env in many_envs:
        lookups = lookups_in(trace, env)
        assert len(lookups) <= 3, (env.name, lookups)
        assert not [path for path in lookups if ".dist-info" in path], lookups


def uv_list(env: Path) -> dict[str, str]:
    """What uv says the environment holds: {normalized name: version}."""
    result = subprocess.run(["uv", "pip", "list", "--python", str(env / "bin" / "python"), "--format", "json"],
                            check=True, capture_output=True, text=True)
    return {canon(p["name"]): p["version"] for p in json.loads(result.stdout)}


def listed(env_name: str, home: Path, tmp_path: Path) -> dict[str, str]:
    """What `envdesk env show` says the environment holds: {normalized name: version}."""
    from envdesk_fixtures import run_cli
    result = run_cli("env", "show", "local", env_name, "--json", config=tmp_path / "cfg", home=home)
    assert result.returncode == 0, result.stderr
    return {canon(p["name"]): p["version"] for p in json.loads(result.stdout)["packages"]}


def test_a_change_made_by_another_tool_is_seen_at_once(tmp_path, home, many_envs):
    """uv installs and removes a package behind EnvDesk's back: the next listing shows what uv says is there,
    and the environments nobody changed still cost three lookups each."""
    sys.path.insert(0, str(Path(__file__).parent / "testbed"))
    from wheels import WheelSpec, build_wheel
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    build_wheel(wheels, WheelSpec("tinygamma", "0.1"))
    age(many_envs)
    traced_listing(tmp_path, home)
    changed = many_envs[2]
    uv = ["uv", "pip", "install", "--python", str(changed / "bin" / "python"), "--no-index", "--find-links",
          str(wheels), "tinygamma"]
    subprocess.run(uv, check=True, capture_output=True)
    trace, answer = traced_listing(tmp_path, home)
    assert counts(answer)[changed.name] == 4 == len(uv_list(changed))
    for env in many_envs:
        if env != changed:
            assert len(lookups_in(trace, env)) <= 3, env.name
    assert listed(changed.name, home, tmp_path) == uv_list(changed)
    subprocess.run(["uv", "pip", "uninstall", "--python", str(changed / "bin" / "python"), "tinygamma"],
                   check=True, capture_output=True)
    _, answer = traced_listing(tmp_path, home)
    assert counts(answer)[changed.name] == 3 == len(uv_list(changed))
    assert listed(changed.name, home, tmp_path) == uv_list(changed)


# What setuptools' wheel installs as distutils-precedence.pth and virtualenv writes as _virtualenv.pth (its
# create/via_global_ref/api.py): one 'import' line each, which puts no folder on sys.path.
IMPORT_ONLY_PTH = {
    "distutils-precedence.pth": "import os; var = 'SETUPTOOLS_USE_DISTUTILS'; enabled = os.environ.get(var, "
                                "'local') == 'local'; enabled and __import__('_distutils_hack').add_shim(); \n",
    "_virtualenv.pth": "import _virtualenv",
}


def test_the_import_only_pth_files_of_setuptools_and_virtualenv_are_not_read(tmp_path, home, many_envs):
    """Nearly every environment holds setuptools' distutils-precedence.pth or virtualenv's _virtualenv.pth,
    which only import (site.addpackage runs the line; no folder is added): a listing neither opens them cold
    nor looks at them warm."""
    assert shutil.which("strace"), "strace is needed (tests/system-deps.sh installs it)"
    for env in many_envs:
        site = next((env / "lib").glob("python3*/site-packages"))
        for name, text in IMPORT_ONLY_PTH.items():
            (site / name).write_text(text)
    age(many_envs)
    cold, answer = traced_listing(tmp_path, home)
    assert counts(answer) == {env.name: 3 for env in many_envs}
    warm, _ = traced_listing(tmp_path, home)
    for trace in (cold, warm):
        for env in many_envs:
            assert not [path for path in lookups_in(trace, env) if path.endswith(".pth")], env.name
    for env in many_envs:
        assert len(lookups_in(warm, env)) <= 3, env.name
