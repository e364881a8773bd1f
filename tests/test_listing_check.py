"""Listing and testing a connection as operations, against the test bed and this computer, and from the CLI."""
from __future__ import annotations

import pytest

from envdesk.backend.config import ClusterProfile
from envdesk.backend.errors import HostKeyUnknown, NotFound
from envdesk.backend.operations.check import check_connection
from envdesk.backend.operations.common import Progress
from envdesk.backend.operations.listing import list_environments, show_environment
from envdesk_fixtures import ScriptedPrompter, make_config, run_cli, session_for


def test_list_and_show_a_clusters_environments(session, sample_envs):
    steps = []
    listing = list_environments(session, "alpha", Progress(on_step=steps.append))
    assert steps == ["Listing environments on alpha"]
    assert listing.label == "alpha" and listing.roots == session.target("alpha").roots
    assert {"plainvenv", "uvenv"} <= {env.name for env in listing.environments}
    assert any("broken" in problem for problem in listing.problems()), "broken environments are reported"
    shown = show_environment(session, "alpha", "uvenv")
    assert shown.path.endswith("/venvs/uvenv") and any(p.name == "tinyalpha" for p in shown.packages)
    with pytest.raises(NotFound):
        show_environment(session, "alpha", "no-such-env")


def test_check_reports_each_step_with_what_it_found(session, testbed):
    alpha = testbed.clusters["alpha"]
    doing = []
    checked = check_connection(session, "alpha", Progress(on_step=doing.append))
    assert checked.ok and checked.error is None
    assert [step.what for step in checked.steps] == ["Route", "Login", "Tools", "Environments"]
    assert all(step.ok for step in checked.steps)
    assert checked.steps[0].found == f"{alpha.user}@{alpha.host}:{alpha.port}"
    assert "environment modules: yes" in checked.steps[2].found and "python/3.11.5" in checked.steps[2].found
    assert checked.steps[3].found.startswith(f"{len(checked.inventory.environments)} environment(s) found")
    assert doing == ["Connecting to alpha", "Looking at what alpha offers", "Listing environments on alpha"]


def test_a_failing_step_ends_the_check_and_keeps_what_worked(testbed, tmp_path, home):
    paths = make_config(tmp_path / "cfg", testbed, ["beta"], trusted=False)
    session = session_for(paths, ScriptedPrompter(trust=False))
    try:
        checked = check_connection(session, "beta")
    finally:
        session.close()
    assert not checked.ok and isinstance(checked.error, HostKeyUnknown)
    assert [(step.what, step.ok) for step in checked.steps] == [("Route", True), ("Login", False)]
    assert checked.steps[-1].line().startswith("✗ Login: ") and checked.inventory is None


def test_an_unsaved_profile_is_checked_over_a_connection_of_its_own(session, testbed):
    profile = ClusterProfile(name="draft", **testbed.clusters["beta"].profile_fields())
    checked = check_connection(session, "draft", profile=profile)
    assert checked.ok, checked.error
    assert checked.target == "draft" and [step.what for step in checked.steps][-1] == "Environments"
    assert [p.name for p in session.store.load()] == ["alpha", "beta"], "nothing was saved"


def test_check_this_computer(session):
    checked = check_connection(session, "local")
    assert checked.ok, checked.error
    assert [(step.what, step.found) for step in checked.steps][0] == ("Route", "this computer, no connection needed")
    assert [step.what for step in checked.steps] == ["Route", "Tools", "Environments"]


def test_cli_cluster_test_prints_the_steps_and_fails_plainly(testbed, tmp_path):
    config, home = tmp_path / "cfg", tmp_path / "home"
    home.mkdir()
    make_config(config, testbed, ["alpha"])
    make_config(config, testbed, ["beta"], trusted=False)
    works = run_cli("cluster", "test", "alpha", config=config, home=home)
    assert works.returncode == 0, works.stderr
    lines = works.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:4]] == ["1. Route", "2. Login", "3. Tools", "4. Environments"]
    assert lines[-1] == "Connection works." and "==> Connecting to alpha" in works.stderr
    refused = run_cli("cluster", "test", "beta", config=config, home=home)
    assert refused.returncode == 1
    assert "2. Login FAILED: EnvDesk has never connected to" in refused.stdout
    assert refused.stderr.splitlines()[-2].startswith("envdesk: EnvDesk has never connected to")
    assert "envdesk cluster trust beta" in refused.stderr, "the command to run, for this cluster (T9)"
    assert "Connection works." not in refused.stdout and "Traceback" not in refused.stderr
