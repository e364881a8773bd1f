"""Your own environment made read-only (chmod -R a-w, LOW-4): the window turned Update, Delete and Revert off while
the command line let them start, an update or revert then failing at its snapshot (told to make only the snapshots
folder writable) and a delete after a walk of the tree. Both now follow one rule (Environment.read_only_reason): each
is refused before anything runs, saying to make it writable again (chmod -R u+w); once it is, they run.

Referees: the operating system (`test -w` as the user, every entry of the tree and its bytes) and pip freeze run as
the user.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from envdesk.backend.paths import AppPaths
from envdesk_fixtures import make_config, run_cli, unique
from test_delete_safety import listing
from test_someone_elses import first_snapshot_chosen, pip_freeze_as, writable_for


@pytest.fixture
def read_only_env(testbed, tmp_path, home):
    """(alpha, its config, HOME, an environment of alpha's user in its home, with a snapshot, made read-only)."""
    alpha = testbed.clusters["alpha"]
    config = tmp_path / "config"
    make_config(config, testbed, ["alpha"], alpha={"env_roots": [str(alpha.home)]})
    name = unique("frozen")
    env = alpha.home / name
    for step in (["create", "alpha", name, "--package", "tinyalpha==1.0"], ["update", "alpha", name, "--add",
                                                                              "tinygamma"]):  # a snapshot
        done = run_cli("env", *step, config=config, home=home)
        assert done.returncode == 0, done.stderr
    alpha.run_as_user(f"chmod -R a-w {env}")
    assert not writable_for(alpha, env) and not writable_for(alpha, env / "pyvenv.cfg")
    try:
        yield alpha, config, home, env
    finally:
        alpha.run_as_user(f"chmod -R u+w {env} && rm -rf {env}", check=False)


@pytest.mark.parametrize("change", [["update", "--add", "tinybeta"], ["update", "--remove", "tinygamma"],
                                    ["revert"], ["delete", "--yes"]])
def test_changing_your_read_only_environment_is_refused_first_saying_to_make_it_writable(read_only_env, change):
    alpha, config, home, env = read_only_env
    before, frozen = listing(env), pip_freeze_as(alpha, env)
    verb, *options = change
    if verb == "revert":
        [snapshot] = json.loads(run_cli("env", "history", "alpha", env.name, "--json", config=config,
                                        home=home).stdout)
        options = [snapshot["id"]]
    result = run_cli("env", verb, "alpha", env.name, *options, config=config, home=home)
    said = result.stderr
    assert result.returncode != 0 and listing(env) == before and pip_freeze_as(alpha, env) == frozen, said
    assert f"{env.name} is read-only for you" in said and f"chmod -R u+w {env}" in said, said
    assert "Nothing was changed" in said and "Traceback" not in said, said
    assert "Saving a snapshot" not in said and "Checking that" not in said, said    # refused before anything ran
    assert not Path(f"{env}.envdesk-lock").exists()
    # made writable again, as told: the same command runs
    alpha.run_as_user(f"chmod -R u+w {env}")
    assert writable_for(alpha, env / "pyvenv.cfg")
    again = run_cli("env", verb, "alpha", env.name, *options, config=config, home=home)
    assert again.returncode == 0, again.stderr
    if verb == "delete":
        assert not env.exists()
    else:
        wanted = {"--add": [*frozen, "tinybeta==1.0"], "--remove": [p for p in frozen if "tinygamma" not in p]}
        assert pip_freeze_as(alpha, env) == sorted(wanted.get(options[0], ["tinyalpha==1.0"]))


def test_the_window_turns_off_what_the_command_line_refuses_and_says_why(qtbot, read_only_env):
    """Update packages, Delete and Revert are off for your read-only environment, their tooltips saying to make it
    writable (the same words the command line refuses with); Copy and Export stay on."""
    from test_gui import open_window, select_env, select_target
    alpha, config, home, env = read_only_env
    window = open_window(qtbot, AppPaths(config))
    select_target(qtbot, window, "alpha")
    select_env(qtbot, window, env.name)
    assert "read-only for you" in window.details.fields["access"].text()
    for action in (window.update_action, window.delete_action):
        assert not action.isEnabled(), action.text()
        assert f"chmod -R u+w {env}" in action.toolTip(), action.toolTip()
    assert window.copy_action.isEnabled() and window.export_action.isEnabled()
    revert = first_snapshot_chosen(qtbot, window.details)
    assert not revert.isEnabled() and f"chmod -R u+w {env}" in revert.toolTip()
    refused = run_cli("env", "update", "alpha", env.name, "--add", "tinybeta", config=config, home=home).stderr
    assert window.env_model.environments and window.current_environment().read_only_reason in refused, refused
