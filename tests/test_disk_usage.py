"""What an environment takes on disk and what its file system has left, as the agent reports them (issue 12,
"Disk and inodes"). Referees: GNU du and find for an environment's bytes and files, df for a file system's
free space and free files, on a tmpfs of its own so that nothing else changes it between the two readings."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from agent_fixtures import isolated_home, load_agent, make_venv
from envdesk_fixtures import mounted_tmpfs

agent = load_agent(write=False)


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    return isolated_home(tmp_path, monkeypatch, agent)


def du_bytes(path: Path) -> int:
    """Apparent size of everything under path (hard links counted each time, like a quota), without path's own."""
    total = int(subprocess.run(["du", "-s", "-l", "--apparent-size", "-B1", str(path)], check=True,
                               capture_output=True, text=True).stdout.split()[0])
    return total - os.lstat(path).st_size


def find_count(path: Path) -> int:
    """Every file, folder and link under path, as find lists them."""
    out = subprocess.run(["find", str(path), "-mindepth", "1"], check=True, capture_output=True, text=True).stdout
    return len(out.splitlines())


def df_free(path: Path) -> tuple[int, int]:
    """(bytes available, files available) of the file system holding path, as df reports them."""
    out = subprocess.run(["df", "-B1", "--output=avail,iavail", str(path)], check=True, capture_output=True,
                         text=True).stdout.splitlines()[-1]
    avail, iavail = out.split()
    return int(avail), int(iavail)


def test_usage_of_each_environment_is_what_du_and_find_count(home):
    env = home / "venvs" / "real"
    make_venv(env)
    site = next(env.glob("lib/python*/site-packages"))
    (site / "data.bin").write_bytes(os.urandom(12345))
    os.link(site / "data.bin", site / "hardlink.bin")            # a quota counts both names' blocks
    os.symlink("/nonexistent/target", site / "dangling")          # counted, never followed
    answer = agent.inventory({"usage": True, "light": True})
    usage = answer["environments"][0]["usage"]
    assert usage == {"bytes": du_bytes(env), "files": find_count(env), "complete": True}
    plain = agent.inventory({"light": True})["environments"][0]
    assert "usage" not in plain, "measuring is done only when asked"


def test_usage_is_kept_with_the_cached_environment_until_it_changes(home):
    env = home / "venvs" / "kept"
    make_venv(env)
    then = os.stat(env).st_mtime - 60
    for path in [env, *env.rglob("*")]:
        os.utime(path, (then, then), follow_symlinks=False)
    first = agent.inventory({"usage": True, "light": True})["environments"][0]["usage"]
    calls = []
    real = agent.measure_tree
    agent.measure_tree = lambda *args: calls.append(args) or real(*args)
    try:
        again = agent.inventory({"usage": True, "light": True})
        assert again["cached"] == 1 and not calls, "an unchanged environment is not walked again"
        assert again["environments"][0]["usage"] == first
        site = next(env.glob("lib/python*/site-packages"))
        (site / "new-1.0.dist-info").mkdir()
        (site / "new-1.0.dist-info" / "METADATA").write_text("Name: new\nVersion: 1.0\n")
        changed = agent.inventory({"usage": True, "light": True})["environments"][0]["usage"]
    finally:
        agent.measure_tree = real
    assert len(calls) == 1
    assert changed == {"bytes": du_bytes(env), "files": find_count(env), "complete": True}


@pytest.fixture
def small_file_system(tmp_path):
    """A 4 MB tmpfs with 200 inodes, mounted for the test only."""
    with mounted_tmpfs(tmp_path / "fs", "size=4m,nr_inodes=200") as mount:
        yield mount


def test_free_space_and_files_of_each_root_are_what_df_says(home, small_file_system):
    root = small_file_system / "envs"
    root.mkdir()
    for number in range(20):
        (root / f"filler{number}").write_bytes(b"x" * 10000)
    answer = agent.inventory({"roots": [str(root)], "space": True, "conda": False})
    spaces = {space["path"]: space for space in answer["space"]}
    assert (spaces[str(root)]["free_bytes"], spaces[str(root)]["free_files"]) == df_free(root)
    assert spaces[str(root)]["total_files"] == 200
    assert str(home) in spaces, "the home folder's file system is reported too"
    assert agent.inventory({"roots": [str(root)], "conda": False})["space"] is None


def test_measuring_stops_at_its_time_budget_and_says_so(home):
    env = home / "venvs" / "big"
    make_venv(env)
    answer = agent.inventory({"usage": True, "light": True, "env_time_budget": 0})
    assert answer["environments"][0]["usage"]["complete"] is False
