"""Snapshots a person can read and trust: labelled by what came next, in local time, none for changes that
changed nothing or were rolled back, and a revert that puts back the recorded requirements too.

Referees: the snapshot files and meta.json as they are on the cluster (read there, not through EnvDesk),
and pip's own `pip freeze` in the environment.
"""
from __future__ import annotations

import datetime
import json
import re
import time

import pytest

from envdesk.backend.errors import CommandFailed
from envdesk.backend.operations.create import CreateRequest, create_environment
from envdesk.backend.operations.history import list_snapshots, revert_environment
from envdesk.backend.operations.update import Change, update_environment
from envdesk_fixtures import unique


def snapshot_files(cluster, path: str) -> list[str]:
    listed = cluster.run_as_user(f"ls {path}/.envdesk/snapshots 2>/dev/null || true").stdout.split()
    return sorted(name for name in listed if name.endswith(".json"))


def recorded(cluster, path: str) -> dict:
    return json.loads(cluster.run_as_user(f"cat {path}/.envdesk/meta.json").stdout)


def freeze(cluster, path: str) -> list[str]:
    return cluster.run_as_user(f"{path}/bin/python -m pip freeze").stdout.split()


@pytest.fixture
def beta_env(testbed, session):
    env = create_environment(session, "beta", CreateRequest(name=unique("snap"), packages=["tinyalpha==1.0"]))
    return testbed.clusters["beta"], env.environment


def test_a_change_that_changes_nothing_keeps_no_snapshot(session, beta_env):
    """Adding what the environment already holds: the installer has nothing to do."""
    cluster, env = beta_env
    before = freeze(cluster, env.path)
    updated = update_environment(session, "beta", env.path, Change(add=["tinyalpha==1.0"]))
    assert freeze(cluster, env.path) == before
    assert updated.snapshot is None
    assert snapshot_files(cluster, env.path) == []


def test_a_failed_change_that_was_rolled_back_keeps_no_snapshot(session, beta_env):
    cluster, env = beta_env
    before = freeze(cluster, env.path)
    with pytest.raises(CommandFailed) as failed:
        update_environment(session, "beta", env.path, Change(add=["tinygamma", "doesnotexist==9.9"]))
    assert "rolled back to how it was before" in failed.value.message
    assert re.search(r"[.!?:] Nothing was changed", failed.value.message), "what came after is a sentence of its own"
    assert freeze(cluster, env.path) == before
    assert snapshot_files(cluster, env.path) == []


def test_revert_puts_back_the_requirements_with_the_packages(session, beta_env):
    cluster, env = beta_env
    update_environment(session, "beta", env.path, Change(add=["tinygamma"]))
    assert recorded(cluster, env.path)["requested"] == ["tinyalpha==1.0", "tinygamma"]
    first = list_snapshots(session, "beta", env.path)[0]
    assert first.reason == "adding tinygamma"
    reverted = revert_environment(session, "beta", env.path, first.id)
    assert recorded(cluster, env.path)["requested"] == ["tinyalpha==1.0"], "what was asked for then, not since"
    assert not any(line.startswith("tinygamma==") for line in freeze(cluster, env.path))
    assert reverted.snapshot is not None and len(snapshot_files(cluster, env.path)) == 2
    again = revert_environment(session, "beta", env.path, first.id)
    assert again.snapshot is None, "a revert to where it already is keeps no snapshot"
    assert len(snapshot_files(cluster, env.path)) == 2


def test_labels_say_what_came_next_in_this_computers_time(session, beta_env, monkeypatch):
    cluster, env = beta_env
    update_environment(session, "beta", env.path, Change(add=["tinygamma"]))
    name = snapshot_files(cluster, env.path)[0]
    stamp = json.loads(cluster.run_as_user(f"cat {env.path}/.envdesk/snapshots/{name}").stdout)["time"]
    utc = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # UTC+05:30, no daylight saving
    time.tzset()
    try:
        label = list_snapshots(session, "beta", env.path)[0].label()
    finally:
        monkeypatch.undo()
        time.tzset()
    shifted = utc + datetime.timedelta(hours=5, minutes=30)
    assert label.startswith(f"{shifted.day} {shifted:%b %Y, %H:%M}"), label
    assert "before adding tinygamma" in label and "1 packages" not in label.split(" · ")[0]
