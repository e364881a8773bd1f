"""Finding environments in an inventory, and naming their copies."""
from __future__ import annotations

import pytest

from envdesk.backend.errors import InvalidInput, NotFound
from envdesk.backend.inventory import Environment, Inventory
from envdesk.backend.operations.export import spec_from_environment


def env(name, path, kind="venv"):
    return Environment(name=name, path=path, kind=kind, python="3.11.2")


def test_a_name_that_two_environments_share_is_refused_not_guessed():
    inventory = Inventory("c", (env("ana", "/h/venvs/ana"), env("ana", "/h/.conda/envs/ana", "conda"),
                                env("solo", "/h/venvs/solo")))
    assert inventory.find("solo").path == "/h/venvs/solo"
    assert inventory.find("/h/.conda/envs/ana/").kind == "conda"
    with pytest.raises(InvalidInput) as info:
        inventory.find("ana")
    assert "/h/venvs/ana" in info.value.hint and "/h/.conda/envs/ana" in info.value.hint
    with pytest.raises(NotFound):
        inventory.find("nope")


def test_a_project_environment_is_copied_under_the_project_name():
    class Target:
        name, pip_args = "c", ()
    assert spec_from_environment(env("foo/.venv", "/h/projects/foo/.venv"), Target()).name == "foo"
    assert spec_from_environment(env("plain", "/h/venvs/plain"), Target()).name == "plain"


def test_a_failure_of_the_whole_agent_is_said_without_an_empty_label(monkeypatch, tmp_path):
    """T26 (b): `env list` printed "note: : The EnvDesk agent failed unexpectedly (…)": an answer's problem that
    names no folder (the agent's own failure answer, as it makes it) is said as it is."""
    from agent_fixtures import load_agent

    from envdesk.backend import agent_client
    from envdesk.backend.inventory import read_inventory
    from envdesk.backend.local_runner import LocalRunner
    failed = load_agent(write=False).failure_answer("The EnvDesk agent failed unexpectedly (OSError: boom).")
    monkeypatch.setattr(agent_client, "run_agent", lambda *args, **kwargs: failed)
    listed = read_inventory(LocalRunner(tmp_path / "cache"), ["~/venvs"])
    assert listed.errors == ("The EnvDesk agent failed unexpectedly (OSError: boom).",)
