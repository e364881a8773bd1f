"""What the listing could not read in an environment reaches the user: `env show` (text and --json), `env list`, the
window's Overview and `envdesk doctor` say it, on "This computer" (a user trial saw it nowhere, and 'healthy').

The referee is the environment's own Python: importlib.metadata finds no package name in the same folders.
"""
from __future__ import annotations

import json
import subprocess
import sys

from envdesk_fixtures import envdesk_command, this_computer_with_one_venv

UNREADABLE = ("nometa-1.0.dist-info", "emptymeta-1.0.dist-info")


def damaged_env(tmp_path):
    """(config folder, environment) of "This computer"'s venv `plain` with two dist-info folders pip cannot read
    (no METADATA; an empty one), as an installer stopped midway leaves them."""
    config, root = this_computer_with_one_venv(tmp_path)
    env = root / "plain"
    site = next(env.glob("lib/python*/site-packages"))
    (site / UNREADABLE[0]).mkdir()
    (site / UNREADABLE[0] / "INSTALLER").write_text("pip\n")
    (site / UNREADABLE[1]).mkdir()
    (site / UNREADABLE[1] / "METADATA").write_text("")
    unnamed = subprocess.run([str(env / "bin" / "python"), "-c", NAMELESS], capture_output=True, text=True,
                             check=True).stdout.split()
    assert sorted(unnamed) == sorted(UNREADABLE), unnamed
    return config, env


NAMELESS = """import importlib.metadata as m
for dist in m.distributions():
    if not (dist.metadata or {}).get("Name"):
        print(dist._path.name)
"""
"""The environment's own Python: the package folders whose metadata names no package (pip's verdict on them changed
between releases: 23 skipped them 'due to invalid metadata', 26 lists them under their folders' names)."""


def envdesk(config, *args):
    done = subprocess.run([*envdesk_command(), "--config-dir", str(config), *args], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_env_show_and_doctor_say_which_packages_could_not_be_read(tmp_path):
    """T19: a package folder without metadata (pip skips it, uv pip check calls it 'broken or incomplete') makes
    the environment broken, not 'ok, but it may not work'; env list says so too."""
    config, _ = damaged_env(tmp_path)
    text = envdesk(config, "env", "show", "local", "plain")
    state = next(line for line in text.splitlines() if line.startswith("State:"))
    assert state.startswith("State:    broken (") and all(folder in state for folder in UNREADABLE), text
    shown = json.loads(envdesk(config, "env", "show", "local", "plain", "--json"))
    assert sorted(path.rsplit("/", 1)[-1] for path in shown["incomplete_packages"]) == sorted(UNREADABLE), shown
    listed = json.loads(envdesk(config, "env", "list", "local", "--json"))
    assert [env["state"] for env in listed if env["name"] == "plain"] == ["broken"], listed
    findings = json.loads(envdesk(config, "env", "doctor", "local", "plain", "--json"))["findings"]
    found = [f for f in findings if f["code"] == "half-installed"]
    assert len(found) == 1 and all(folder in found[0]["detail"] for folder in UNREADABLE), findings


def test_the_overview_does_not_call_it_healthy(tmp_path, qtbot):
    from envdesk.backend.inventory import read_inventory
    from envdesk.backend.local_runner import LocalRunner
    from envdesk.gui.details_panel import DetailsPanel
    _, env_path = damaged_env(tmp_path)
    listing = read_inventory(LocalRunner(), [str(env_path.parent)], light=True)
    [env] = [env for env in listing.environments if env.path == str(env_path)]
    panel = DetailsPanel()
    qtbot.addWidget(panel)
    panel.show_environment(env)
    state = panel.fields["state"].text()
    assert state.startswith("broken: ") and all(folder in state for folder in UNREADABLE), state


def test_an_environment_envdesk_began_and_never_finished_is_not_said_to_be_made_outside_it(tmp_path, qtbot):
    """T18: an environment whose create was cut off (its connection dropped) showed 'Made by: outside EnvDesk', as
    if it were a colleague's: it carries the mark EnvDesk's create leaves until it finishes."""
    import subprocess as run

    from envdesk.backend.inventory import read_inventory
    from envdesk.backend.local_runner import LocalRunner
    from envdesk.backend.protocol import CREATING_MARK, ENVDESK_DIR
    from envdesk.gui.details_panel import DetailsPanel
    root = tmp_path / "envs"
    for name in ("cut", "theirs"):
        run.run([sys.executable, "-m", "venv", "--without-pip", str(root / name)], check=True, timeout=300)
    (root / "cut" / ENVDESK_DIR).mkdir()
    (root / "cut" / ENVDESK_DIR / CREATING_MARK).write_text("")
    listing = {env.name: env for env in read_inventory(LocalRunner(), [str(root)], light=True).environments}
    panel = DetailsPanel()
    qtbot.addWidget(panel)
    panel.show_environment(listing["cut"])
    assert panel.fields["made"].text() == "EnvDesk, not finished"
    panel.show_environment(listing["theirs"])
    assert panel.fields["made"].text() == "outside EnvDesk"


def env_with_unreadable_metadata(tmp_path, what: str):
    """(config folder, environment, METADATA path) of "This computer"'s venv `plain` where tinyalpha's METADATA is
    a folder or a named pipe (FIFO): Python finds no Name in the first, and blocks reading the second."""
    import os
    config, root = this_computer_with_one_venv(tmp_path)
    env = root / "plain"
    site = next(env.glob("lib/python*/site-packages"))
    [metadata] = site.glob("tinyalpha-*.dist-info/METADATA")
    metadata.unlink()
    if what == "folder":
        metadata.mkdir()
        unnamed = subprocess.run([str(env / "bin" / "python"), "-c", NAMELESS], capture_output=True, text=True,
                                 check=True).stdout.split()
        assert unnamed == [metadata.parent.name], unnamed    # the referee: Python reads no Name there
    else:
        os.mkfifo(metadata)
        import stat
        assert stat.S_ISFIFO(os.lstat(metadata).st_mode)   # the file system: opening it to read blocks
    return config, env, metadata


def test_a_package_whose_metadata_python_cannot_read_makes_the_environment_broken(tmp_path, qtbot):
    """A METADATA that is a folder or a named pipe was listed 'ok, but it may not work' (a warning): Python cannot
    read that package, so env show (text and --json), env list, the window's Overview and the doctor say it is
    broken, naming the package and what to do. The listing never opens the pipe to read (it would block)."""
    from envdesk.backend.inventory import read_inventory
    from envdesk.backend.local_runner import LocalRunner
    from envdesk.gui.details_panel import DetailsPanel
    for what in ("folder", "fifo"):
        config, env, metadata = env_with_unreadable_metadata(tmp_path / what, what)
        folder = metadata.parent.name
        text = envdesk(config, "env", "show", "local", "plain")
        state = next(line for line in text.splitlines() if line.startswith("State:"))
        assert state.startswith("State:    broken (") and f"metadata of {folder}" in state, text
        assert f"rm -r {metadata}" in state and "install tinyalpha 1.1 again" in state, state
        shown = json.loads(envdesk(config, "env", "show", "local", "plain", "--json"))
        assert shown["state"] == "broken" and shown["warnings"] == [], shown
        assert [found["path"] for found in shown["unreadable_packages"]] == [str(metadata.parent)], shown
        listed = json.loads(envdesk(config, "env", "list", "local", "--json"))
        assert [e["state"] for e in listed if e["name"] == "plain"] == ["broken"], listed
        findings = json.loads(envdesk(config, "env", "doctor", "local", "plain", "--json"))["findings"]
        [found] = [f for f in findings if f["code"] == "unreadable-metadata"]
        assert folder in found["title"] and str(metadata) in found["detail"], found
        assert f"rm -r {metadata}" in found["advice"], found
        for light in (True, False):
            [listed_env] = [e for e in read_inventory(LocalRunner(), [str(env.parent)], light=light).environments
                            if e.path == str(env)]
            panel = DetailsPanel()
            qtbot.addWidget(panel)
            panel.show_environment(listed_env)
            overview = panel.fields["state"].text()
            assert overview.startswith("broken: ") and f"metadata of {folder}" in overview, overview
