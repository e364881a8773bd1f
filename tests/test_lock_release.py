"""A failed change always gives its lock back, even when the cleanup itself is interrupted (a second Ctrl-C)."""
from __future__ import annotations

import pytest

from envdesk.backend.operations.common import Progress
from envdesk.backend.operations.create import CreateRequest, create_environment
from envdesk.backend.operations.history import list_snapshots, revert_environment
from envdesk.backend.operations.update import Change, update_environment
from envdesk_fixtures import packages_of, unique


def interrupted_at(*step_texts: str) -> Progress:
    """Progress whose user presses Ctrl-C when each step whose text starts with one of `step_texts` begins."""

    def on_step(text: str) -> None:
        if text.startswith(step_texts):
            raise KeyboardInterrupt

    return Progress(on_step=on_step)


def test_update_interrupted_during_rollback_leaves_no_lock(session):
    name = unique("lk")
    create_environment(session, "beta", CreateRequest(name=name, packages=["tinybeta"]))
    with pytest.raises(KeyboardInterrupt):
        update_environment(session, "beta", name, Change(add=["doesnotexist==9.9"]),
                           interrupted_at("The change failed: putting the previous packages back"))
    after = update_environment(session, "beta", name, Change(add=["tinygamma"])).environment  # Busy if locked
    assert "tinygamma" in packages_of(after)


def test_revert_interrupted_during_rollback_leaves_no_lock(session):
    name = unique("lk")
    create_environment(session, "beta", CreateRequest(name=name, packages=["tinybeta"]))
    update_environment(session, "beta", name, Change(add=["tinygamma"]))
    first = list_snapshots(session, "beta", name)[0].id
    readings = []

    def on_step(text: str) -> None:
        """Ctrl-C once the revert holds its lock (its second reading), and again during the rollback."""
        readings.extend([text] if text.startswith("Reading") else [])
        if (text.startswith("Reading") and len(readings) == 2) or "putting the previous packages back" in text:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        revert_environment(session, "beta", name, first, Progress(on_step=on_step))
    assert len(readings) == 2
    reverted = revert_environment(session, "beta", name, first).environment  # Busy if locked
    assert "tinygamma" not in packages_of(reverted)


def test_create_interrupted_during_cleanup_removes_the_half_made_environment(testbed, session):
    name = unique("lk")
    with pytest.raises(KeyboardInterrupt):
        create_environment(session, "beta", CreateRequest(name=name, packages=["tinybeta"]),
                           interrupted_at("Installing packages", "Removing the unfinished environment"))
    leftovers = testbed.clusters["beta"].run_as_user(f"ls -d ~/venvs/{name}* ~/envs/{name}* 2>/dev/null",
                                                     check=False).stdout
    assert leftovers == ""
