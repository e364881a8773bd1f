"""The agent's listing cache never shows an environment from before a change that is under way (issue 11: an
unchanged environment costs three stats). Real agent, real folders; the referee is the file system: the change
mark EnvDesk's `begin` left in the environment's .envdesk folder."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest

from agent_fixtures import add_dist, clean_env, isolated_home, load_agent, make_venv, run_agent_for_real, uv_bin
from envdesk_fixtures import canon
from test_read_only_what_is_asked import uv_list  # what uv says an environment holds
from testbed.wheels import WheelSpec, build_wheel

agent = load_agent(write=True)


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    return isolated_home(tmp_path, monkeypatch, agent)


def aged(path: Path, seconds: float = 60) -> None:
    """Date a file or folder back, as if last changed `seconds` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


def quiet_env(home: Path) -> Path:
    """A venv with two packages that EnvDesk already changed once (its .envdesk notes are there), all of it
    dated a minute back: the listing cache takes it."""
    env = home / "venvs" / "busy"
    make_venv(env)
    site = next(env.glob("lib/python*/site-packages"))
    add_dist(site, "tinyalpha", "1.0")
    add_dist(site, "tinygamma", "0.1")
    roots = [str(env.parent)]
    begun = agent.run_action({"action": "begin", "path": str(env), "roots": roots})
    assert begun["ok"], begun
    finished = agent.run_action({"action": "finish", "path": str(env), "roots": roots, "token": begun["token"],
                                 "meta": {"requested": ["tinyalpha", "tinygamma"]}})
    assert finished["ok"], finished
    for path in [env, *env.rglob("*")]:
        aged(path)
    return env


def listing_during(env: Path, change: Callable[[], object]) -> list[dict]:
    """A listing that measures disk use, with `change` made while it walks `env`, after its packages were
    read; the walk is slow: the folders `change` touched are then more than RACY_SECONDS old when the listing
    caches the environment (dated back by `change` rather than waited for). Its environments."""
    walk, done = agent.measure_tree, []

    def slow_walk_during_a_change(path, deadline):
        usage = walk(path, deadline)
        if path == str(env) and not done:
            done.append(change())
        return usage

    agent.measure_tree = slow_walk_during_a_change
    try:
        environments = agent.inventory({"usage": True})["environments"]
    finally:
        agent.measure_tree = walk
    assert done, "the change was made during the listing"
    return environments


def next_listing(home: Path) -> tuple[dict, int]:
    """The environment as the next listing (a new agent process, as a new connection runs) shows it, and how
    many environments it took from the cache."""
    _, answer, _ = run_agent_for_real({}, clean_env(home))
    [listed] = answer["environments"]
    return listed, answer["cached"]


def test_a_change_begun_while_an_environment_was_read_is_never_hidden_by_the_cache(home):
    """An update begins (its snapshot and mark made by the real `begin`) while a listing reads the environment:
    the next listing must show the change under way. The cache may only vouch for what it read after the stats
    it keeps were taken."""
    env = quiet_env(home)
    begun = {}

    def update_begins():
        begun.update(agent.run_action({"action": "begin", "path": str(env), "roots": [str(env.parent)],
                                       "snapshot": True, "operation": "update", "reason": "add tinybeta"}))
        aged(env / ".envdesk")

    during = listing_during(env, update_begins)
    assert begun.get("ok"), begun
    assert [e.get("changing") for e in during] == [None], "this listing read the environment before the begin"
    assert (env / ".envdesk" / agent.CHANGING_MARK).is_file(), "the update is under way on disk"
    listed, cached = next_listing(home)
    assert listed.get("changing"), f"a change under way was listed as if none were (cached: {cached})"
    assert listed["changing"]["snapshot"] == begun["snapshot"]


def test_an_install_by_another_tool_while_an_environment_was_read_is_seen_next_time(home, tmp_path):
    """The same for a change EnvDesk does not mark: uv installs a package while a listing reads the
    environment; the next listing shows what uv says is there."""
    env = quiet_env(home)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    build_wheel(wheels, WheelSpec("tinybeta", "0.2"))

    def uv_installs():
        subprocess.run([uv_bin(), "pip", "install", "--python", str(env / "bin" / "python"), "--no-index",
                        "--find-links", str(wheels), "tinybeta"], check=True, capture_output=True)
        aged(next(env.glob("lib/python*/site-packages")))

    listing_during(env, uv_installs)
    listed, cached = next_listing(home)
    assert {canon(p["name"]): p["version"] for p in listed["packages"]} == uv_list(env), f"cached: {cached}"


def test_an_unchanged_environment_is_taken_from_the_cache(home):
    """The other side: an environment nobody touches is read once, then taken from the cache (so the test
    above fails for the right reason, not because nothing is ever cached)."""
    quiet_env(home)
    first = agent.inventory({"usage": True})
    listed, cached = next_listing(home)
    assert first["cached"] == 0 and cached == 1
    assert listed["packages"] == first["environments"][0]["packages"]
