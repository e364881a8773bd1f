"""A create on a cluster is one command (issue 11): the agent's begin (the lock, the folder), making the
environment, installing into it and the agent's finish (what is recorded) run in one login shell, which stops
at the first that fails; the app still shows each step as it begins and knows which one failed.

Referees: the test bed's sshd log (the commands it ran), pip (what is installed), the file system (locks,
folders, EnvDesk's notes).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from envdesk.backend.errors import EnvDeskError, InstallFailed
from envdesk.backend.operations.common import Progress
from envdesk.backend.operations.create import CreateRequest, create_environment
from envdesk.backend.protocol import ENVDESK_DIR, LOCK_SUFFIX, META_FILE
from envdesk_fixtures import unique
from test_failing_installs import pip_freeze

MISSING = "nosuchpackage"     # on no index of the test bed


@pytest.fixture
def alpha(testbed, session):
    """alpha, where this session already created an environment (so it keeps the agent, and was probed)."""
    create_environment(session, "alpha", CreateRequest(name=unique("warm"), kind="uv", packages=["tinygamma"]))
    return testbed.clusters["alpha"]


def commands_of(cluster, run) -> tuple[object, list[str]]:
    """What `run()` returned (or raised), and the commands sshd ran for it."""
    before = len(cluster.session_commands())
    try:
        outcome: object = run()
    except EnvDeskError as exc:
        outcome = exc
    return outcome, cluster.session_commands()[before:]


def test_a_create_is_one_command_that_shows_each_step(alpha, session):
    steps: list[str] = []
    name = unique("one")
    made, commands = commands_of(alpha, lambda: create_environment(
        session, "alpha", CreateRequest(name=name, kind="uv", packages=["tinyalpha==1.0"]),
        Progress(on_step=steps.append)))
    assert len(commands) == 1, commands
    env = Path(made.environment.path)
    assert made.environment.state == "ok"
    assert "tinyalpha==1.0" in pip_freeze(env)
    assert [step.split(" ")[0] for step in steps] == ["Reserving", "Creating", "Installing", "Recording"], steps
    assert not os.path.lexists(f"{env}{LOCK_SUFFIX}")
    meta = json.loads((env / ENVDESK_DIR / META_FILE).read_text())
    assert meta["kind"] == "uv" and meta["requested"] == ["tinyalpha==1.0"]


def test_a_failed_install_stops_the_command_and_is_undone(alpha, session):
    name = unique("bad")
    root = alpha.home / "one-command"
    path = root / name
    error, commands = commands_of(alpha, lambda: create_environment(
        session, "alpha", CreateRequest(name=name, kind="uv", root=str(root), packages=[MISSING])))
    assert isinstance(error, InstallFailed), error
    assert MISSING in str(error)
    assert len(commands) == 2, commands            # the build's one command, then the undo
    assert not os.path.lexists(path) and not os.path.lexists(f"{path}{LOCK_SUFFIX}")


def test_a_begin_that_refuses_stops_before_anything_is_made(alpha, session):
    name = unique("twice")
    first = create_environment(session, "alpha", CreateRequest(name=name, kind="uv", packages=["tinygamma"]))
    env = Path(first.environment.path)
    frozen = pip_freeze(env)
    error, commands = commands_of(alpha, lambda: create_environment(
        session, "alpha", CreateRequest(name=name, kind="uv", packages=["tinyalpha==1.0"])))
    assert isinstance(error, EnvDeskError) and "already exists" in str(error), error
    assert len(commands) == 1, commands            # nothing to undo: begin made nothing
    assert pip_freeze(env) == frozen
    assert not os.path.lexists(f"{env}{LOCK_SUFFIX}")


def test_a_cluster_that_lost_the_agent_gets_it_and_the_create_goes_on(alpha, session):
    alpha.run_as_user('rm -f "$HOME"/.cache/envdesk/agent/*')
    made, commands = commands_of(alpha, lambda: create_environment(
        session, "alpha", CreateRequest(name=unique("lost"), kind="uv", packages=["tinyalpha==1.0"])))
    assert not isinstance(made, EnvDeskError), made
    assert made.environment.state == "ok" and "tinyalpha==1.0" in pip_freeze(Path(made.environment.path))
    assert len(commands) == 4, commands   # the one command (its begin asks for the agent), begin, build, finish
    again, commands = commands_of(alpha, lambda: create_environment(
        session, "alpha", CreateRequest(name=unique("kept"), kind="uv", packages=["tinygamma"])))
    assert again.environment.state == "ok" and len(commands) == 1, commands
