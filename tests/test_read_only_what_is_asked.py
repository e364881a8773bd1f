"""Showing or exporting one environment opens the files of that environment only (issue 11: "reads only
that env"). The referee is the kernel: strace records every file the agent opens."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from envdesk_fixtures import envdesk_command

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
    assert opened_in(listing, others) >= 3 * OTHERS, "the listing reads every environment (the count works)"
    for args in (["env", "show", "local", "env0", "--json"], ["env", "export", "local", "env0"]):
        trace = traced(tmp_path, home, *args)
        assert opened_in(trace, [chosen]) >= 3, args
        assert opened_in(trace, others) == 0, f"{args} opened files of other environments"


def test_a_name_that_is_not_there_lists_the_names_that_are(tmp_path, home, many_envs):
    from envdesk_fixtures import run_cli
    missing = run_cli("env", "show", "local", "nothere", config=tmp_path / "cfg", home=home)
    assert missing.returncode == 1
    assert "env0, env1" in missing.stderr and "env8" in missing.stderr


def test_a_listing_touches_each_package_at_most_three_times(tmp_path, home, many_envs):
    """Per installed package: its dist-info folder listed, METADATA and INSTALLER opened, and nothing else
    looked up by path (on Lustre or GPFS each such lookup is a round trip to the metadata server)."""
    trace = tmp_path / "trace-file.txt"
    subprocess.run(["strace", "-f", "-qq", "-e", "trace=%file", "-o", str(trace), *envdesk_command(),
                    "--config-dir", str(tmp_path / "cfg"), "env", "list", "local", "--json"], check=True,
                   capture_output=True, env={"HOME": str(home), "PATH": "/usr/bin:/bin"}, timeout=300)
    inside = re.compile(r'"([^"]*\.dist-info(?:/[^"]*)?)"')
    lookups = [found.group(1) for line in trace.read_text().splitlines() if (found := inside.search(line))]
    packages = 3 * len(many_envs)
    assert len({path.split(".dist-info")[0] for path in lookups}) == packages, "every package was read"
    assert len(lookups) <= 3 * packages, f"{len(lookups)} path lookups for {packages} packages"
