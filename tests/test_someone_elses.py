"""A lab's shared group folder (user trial T22): "I" (alpha's user) and a colleague (the bash cluster's user, another
Unix user on the same machine) both keep environments in one setgid folder of a group both belong to. What is the
colleague's and read-only for me is said as such (env show, its JSON), and a change of it is refused before anything
runs, in words for someone who is not its owner; so is a change of my environment that would replace packages the
colleague installed there; an environment the colleague cannot read is named in their listing.

Referees: the operating system (os.stat's owner and group named by pwd and grp, `test -w` run as the user, every
entry of the tree and its bytes) and pip freeze run as the user.
"""
from __future__ import annotations

import grp
import json
import os
import pwd
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from envdesk.backend.config import ClusterProfile, ClusterStore
from envdesk.backend.paths import AppPaths
from envdesk_fixtures import extra_cluster, make_config, run_cli, unique
from test_delete_safety import listing


@dataclass
class Lab:
    me: object          # alpha: the FakeCluster whose user is "me"
    colleague: object   # bash: the colleague's
    group: str
    shared: Path
    my_config: Path
    my_home: Path
    their_config: Path
    their_home: Path
    testbed: object

    def mine(self, *args: str) -> subprocess.CompletedProcess:
        return run_cli(*args, config=self.my_config, home=self.my_home)

    def theirs(self, *args: str) -> subprocess.CompletedProcess:
        return run_cli(*args, config=self.their_config, home=self.their_home)


def _root(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def lab(testbed, tmp_path_factory):
    """The shared folder (group-owned, setgid, group-writable) and a config folder for each of the two users."""
    me, colleague = testbed.clusters["alpha"], extra_cluster(testbed, "/bin/bash")
    group = f"edt-lab-{testbed.id}"
    subprocess.run(["groupadd", "-f", group], check=True)
    for user in (me.user, colleague.user):
        _root("usermod", "-aG", group, user)
    shared = testbed.base / f"lab-{uuid.uuid4().hex[:6]}" / "envs"
    shared.mkdir(parents=True)
    shared.parent.chmod(0o1777)  # others' folders beside the shared one (sticky, as /tmp)
    os.chown(shared, pwd.getpwnam(colleague.user).pw_uid, grp.getgrnam(group).gr_gid)
    shared.chmod(0o2775)
    base = tmp_path_factory.mktemp("lab")
    my_config, their_config = base / "my-config", base / "their-config"
    make_config(my_config, testbed, ["alpha"], alpha={"env_roots": [str(shared)]})
    ClusterStore(AppPaths(their_config)).add(ClusterProfile(name="bash", **colleague.profile_fields(),
                                                            env_roots=[str(shared)]))
    AppPaths(their_config).known_hosts_file.write_text(colleague.known_hosts_line() + "\n")
    for home in ("my-home", "their-home"):
        (base / home).mkdir()
    try:
        yield Lab(me, colleague, group, shared, my_config, base / "my-home", their_config, base / "their-home",
                  testbed)
    finally:
        subprocess.run(["rm", "-rf", str(shared.parent)], check=False)
        for user in (me.user, colleague.user):
            subprocess.run(["gpasswd", "-d", user, group], check=False, capture_output=True)
        subprocess.run(["groupdel", group], check=False, capture_output=True)


def pip_freeze_as(cluster, env: Path) -> list[str]:
    """The referee: what pip says is installed in env, run as the cluster's user."""
    [site] = env.glob("lib/python*/site-packages")
    said = cluster.run_as_user(f"python3 -m pip freeze --all --path {site}")
    return sorted(said.stdout.splitlines())


def writable_for(cluster, path: Path) -> bool:
    """The referee: whether the file system lets the cluster's user write there (`test -w`, as that user)."""
    return cluster.run_as_user(f"test -w {path}", check=False).returncode == 0


@pytest.fixture(scope="module")
def their_env(lab: Lab) -> Path:
    """The colleague's environment in the shared folder, readable but not writable for the group (as a umask of
    022 leaves what they make)."""
    name = unique("colenv")
    made = lab.theirs("env", "create", "bash", name, "--package", "tinyalpha==1.0")
    assert made.returncode == 0, made.stderr
    env = lab.shared / name
    changed = lab.theirs("env", "update", "bash", name, "--add", "tinydelta==1.0")   # a snapshot to revert to
    assert changed.returncode == 0, changed.stderr
    lab.colleague.run_as_user(f"chmod -R go-w,go+rX {env}")
    assert not writable_for(lab.me, env / "pyvenv.cfg") and not writable_for(lab.me, env)
    return env


def test_the_colleagues_environment_shows_its_owner_and_that_it_is_read_only(lab: Lab, their_env: Path):
    shown = lab.mine("env", "show", "alpha", their_env.name, "--json")
    assert shown.returncode == 0, shown.stderr
    details = json.loads(shown.stdout)
    info = their_env.stat()
    assert details["owner"] == pwd.getpwuid(info.st_uid).pw_name == lab.colleague.user, details
    assert details["group"] == grp.getgrgid(info.st_gid).gr_name == lab.group, details
    assert details["writable"] is False and f"belongs to {lab.colleague.user}" in details["read_only"], details
    text = lab.mine("env", "show", "alpha", their_env.name).stdout
    assert f"Owner:    {lab.colleague.user} (group {lab.group})" in text, text
    assert "read-only for you" in text and "envdesk env clone" in text and f"ask {lab.colleague.user}" in text, text
    # the colleague's own view: theirs, writable (the referee again: test -w as them)
    assert writable_for(lab.colleague, their_env / "pyvenv.cfg")
    own = json.loads(lab.theirs("env", "show", "bash", their_env.name, "--json").stdout)
    assert own["owner"] is None and own["writable"] is True and own["read_only"] is None, own


@pytest.mark.parametrize("change", [["update", "--add", "tinygamma"], ["update", "--upgrade", "tinyalpha"],
                                    ["update", "--remove", "tinyalpha"], ["delete", "--yes"], ["revert"]])
def test_changing_the_colleagues_environment_is_refused_in_words_for_a_non_owner(lab: Lab, their_env: Path, change):
    before, frozen = listing(lab.shared), pip_freeze_as(lab.colleague, their_env)
    verb, *options = change
    if verb == "revert":  # to the snapshot the colleague's own update left (env history, as it lists them)
        [snapshot] = json.loads(lab.mine("env", "history", "alpha", their_env.name, "--json").stdout)
        options = [snapshot["id"]]
    result = lab.mine("env", verb, "alpha", their_env.name, *options)
    assert result.returncode != 0 and listing(lab.shared) == before
    assert pip_freeze_as(lab.colleague, their_env) == frozen
    said = result.stderr
    owner = f"{lab.colleague.user} (group {lab.group})"
    assert f"{their_env.name} belongs to {owner} and you cannot change it" in said, said
    assert "envdesk env clone" in said and f"ask {lab.colleague.user}" in said, said
    assert "chmod" not in said and "snapshot" not in said and "Traceback" not in said, said


def test_a_change_that_would_replace_the_colleagues_packages_in_my_environment_is_refused_first(lab: Lab):
    """My environment, made group-writable; the colleague installs tinygamma into it with uv (their files, 0755):
    my upgrade or removal of tinygamma failed partway on uv's 'failed to remove file …: Permission denied' and was
    rolled back. Now it is refused before anything runs, naming the package and its owner; a change that leaves
    tinygamma alone still runs."""
    name = unique("mixed")
    made = lab.mine("env", "create", "alpha", name, "--package", "tinyalpha==1.0")
    assert made.returncode == 0, made.stderr
    env = lab.shared / name
    lab.me.run_as_user(f"chmod -R g+w {env}")
    lab.colleague.run_as_user(f"module load {lab.colleague.uv_module} && uv pip install --python {env}/bin/python "
                              f"--no-index --find-links {lab.me.wheelhouse} tinygamma==0.1")
    [theirs] = env.glob("lib/python*/site-packages/tinygamma-0.1.dist-info")
    assert pwd.getpwuid(theirs.stat().st_uid).pw_name == lab.colleague.user and not writable_for(lab.me, theirs)
    before, frozen = listing(env), pip_freeze_as(lab.me, env)
    assert "tinygamma==0.1" in frozen
    for change in (["--remove", "tinygamma"], ["--upgrade", "tinygamma"], ["--add", "tinygamma==0.1"]):
        result = lab.mine("env", "update", "alpha", name, *change)
        assert result.returncode != 0 and listing(env) == before and pip_freeze_as(lab.me, env) == frozen
        said = result.stderr
        assert f"tinygamma ({lab.colleague.user}'s)" in said and "Nothing was changed" in said, said
        assert f"ask {lab.colleague.user}" in said and "Permission denied" not in said, said
        assert "Saving a snapshot" not in said, said   # refused before anything ran
    deleting = lab.mine("env", "delete", "alpha", name, "--yes")  # the agent's check: theirs, not a chmod of mine
    assert deleting.returncode != 0 and listing(env) == before and pip_freeze_as(lab.me, env) == frozen
    assert f"{lab.colleague.user} installed or made part of it" in deleting.stderr, deleting.stderr
    assert f"Ask {lab.colleague.user} to delete it" in deleting.stderr and "chmod -R" not in deleting.stderr
    added = lab.mine("env", "update", "alpha", name, "--add", "tinydelta==1.0")
    assert added.returncode == 0, added.stderr
    assert pip_freeze_as(lab.me, env) == sorted([*frozen, "tinydelta==1.0"])


def first_snapshot_chosen(qtbot, details):
    """The Revert button of the details' History tab, its first snapshot chosen once the list is read."""
    details.setCurrentIndex(2)
    qtbot.waitUntil(lambda: details.snapshot_list.count() > 0 and bool(
        details.snapshot_list.item(0).flags() & Qt.ItemFlag.ItemIsSelectable), timeout=120_000)
    details.snapshot_list.setCurrentRow(0)
    return details.revert_button


def test_the_window_shows_the_colleagues_environment_as_theirs_with_change_buttons_off(qtbot, lab: Lab,
                                                                                       their_env: Path, home):
    """The Overview said 'Made by: EnvDesk', 'State: healthy' with Update packages and Delete on (T22, shot3):
    now it names the owner (pwd's name of the folder's owner) and says read-only, and those two actions are off,
    their tooltip saying why and what to do instead; on my own environment they are on."""
    from test_gui import open_window, select_env, select_target
    mine = unique("mine")
    assert lab.mine("env", "create", "alpha", mine, "--package", "tinyalpha==1.0").returncode == 0
    window = open_window(qtbot, AppPaths(lab.my_config))
    select_target(qtbot, window, "alpha")
    select_env(qtbot, window, their_env.name)
    fields, overview = window.details.fields, window.details.overview
    info = their_env.stat()
    assert fields["owner"].text() == f"{pwd.getpwuid(info.st_uid).pw_name} (group {grp.getgrgid(info.st_gid).gr_name})"
    assert overview.isRowVisible(fields["access"]) and "read-only for you" in fields["access"].text()
    for action in (window.update_action, window.delete_action):
        assert not action.isEnabled(), action.text()
        assert "envdesk env clone" in action.toolTip() and f"ask {lab.colleague.user}" in action.toolTip()
    assert window.copy_action.isEnabled() and window.export_action.isEnabled()
    details = window.details
    revert = first_snapshot_chosen(qtbot, details)
    assert not revert.isEnabled() and f"ask {lab.colleague.user}" in revert.toolTip()
    details.setCurrentIndex(0)
    select_env(qtbot, window, mine)
    assert writable_for(lab.me, lab.shared / mine / "pyvenv.cfg")
    assert not overview.isRowVisible(fields["owner"]) and not overview.isRowVisible(fields["access"])
    assert window.update_action.isEnabled() and window.delete_action.isEnabled()
    assert "belongs to" not in window.update_action.toolTip()


def test_the_colleagues_listing_names_an_environment_it_cannot_read(qtbot, lab: Lab, their_env: Path, home):
    """My environments made private (chmod 700) in the shared folder, one at its top and one a folder further down
    (at the search's depth, where nothing was said at all): the colleague's env list left them out without a word
    (T22). It now says which folders it could not read and whose they are, in the CLI and in the window."""
    name, deeper = unique("private"), unique("deeper")
    assert lab.mine("env", "create", "alpha", name, "--package", "tinyalpha==1.0").returncode == 0
    lab.me.run_as_user(f"mkdir {lab.shared}/team-{deeper} && python3 -m venv --without-pip "
                       f"{lab.shared}/team-{deeper}/{deeper}")
    private = [lab.shared / name, lab.shared / f"team-{deeper}" / deeper]
    for folder in private:
        lab.me.run_as_user(f"chmod 700 {folder}")
        assert lab.colleague.run_as_user(f"ls {folder}", check=False).returncode != 0   # the referee: not readable
    owner = pwd.getpwuid(private[0].stat().st_uid).pw_name
    listed = lab.theirs("env", "list", "bash")
    assert listed.returncode == 0, listed.stderr
    said = listed.stdout + listed.stderr
    assert their_env.name in listed.stdout, said
    assert "2 folders could not be read (permission denied): " in said, said
    assert f"{name}, owned by {owner}" in said and f"{deeper}, owned by {owner}" in said, said
    from test_gui import open_window, select_target
    window = open_window(qtbot, AppPaths(lab.their_config))
    select_target(qtbot, window, "bash")
    notice = window.notice.text()
    assert "2 folders could not be read (permission denied): " in notice, notice
    assert f"{name}, owned by {owner}" in notice and f"{deeper}, owned by {owner}" in notice, notice
    assert their_env.name in {env.name for env in window.env_model.environments}


def test_a_folder_of_environments_is_added_to_a_cluster_and_removed_from_the_command_line(lab: Lab, their_env: Path,
                                                                                          tmp_path: Path):
    """`cluster add alpha --env-root DIR` said 'already exists' and `cluster edit` had no such option (T22). Now
    `cluster edit NAME --env-root DIR` adds the folder and `--no-env-root DIR` takes it out again, and the messages
    that meet a missing folder name it. The referee: what the real listing finds there afterwards."""
    empty = lab.shared.parent / unique("empty")
    lab.me.run_as_user(f"mkdir {empty}")
    config = tmp_path / "cfg"
    make_config(config, lab.testbed, ["alpha"], alpha={"env_roots": [str(empty)]})

    def cli(*args: str) -> subprocess.CompletedProcess:
        return run_cli(*args, config=config, home=lab.my_home)
    # the colleague's cluster: alpha's user may have conda environments of other tests, which are always listed
    their_config = tmp_path / "their-cfg"
    ClusterStore(AppPaths(their_config)).add(ClusterProfile(name="bash", **lab.colleague.profile_fields(),
                                                            env_roots=[str(empty)]))
    AppPaths(their_config).known_hosts_file.write_text(lab.colleague.known_hosts_line() + "\n")
    nothing = run_cli("env", "list", "bash", config=their_config, home=lab.their_home)
    assert nothing.returncode == 0 and "No environments found" in nothing.stdout, nothing
    assert "envdesk cluster edit bash --env-root DIR" in nothing.stdout, nothing.stdout
    again = cli("cluster", "add", "alpha", "--host", "localhost", "--env-root", str(lab.shared))
    assert again.returncode != 0 and "already exists" in again.stderr and "cluster edit" in again.stderr, again
    outside = lab.shared.parent / unique("outside")
    lab.me.run_as_user(f"python3 -m venv --without-pip {outside}")
    before = listing(outside)
    refused = cli("env", "update", "alpha", str(outside), "--add", "tinyalpha==1.0")
    assert refused.returncode != 0 and listing(outside) == before, refused
    assert "not inside any of the environment folders" in refused.stderr, refused.stderr
    assert "envdesk cluster edit CLUSTER --env-root DIR" in refused.stderr, refused.stderr
    added = cli("cluster", "edit", "alpha", "--env-root", str(lab.shared), "--no-env-root", str(empty))
    assert added.returncode == 0, added.stderr
    names = {env["name"] for env in json.loads(cli("env", "list", "alpha", "--json").stdout)}
    assert their_env.name in names, names
    wrong = cli("cluster", "edit", "alpha", "--no-env-root", str(empty))
    assert wrong.returncode != 0 and f"{empty} is not one of this cluster's environment folders" in wrong.stderr
    assert str(lab.shared) in wrong.stderr, wrong.stderr
    back = cli("cluster", "edit", "alpha", "--env-root", f"{empty}/", "--no-env-root", f"{lab.shared}/")  # R20
    assert back.returncode == 0, back.stderr
    names = {env["name"] for env in json.loads(cli("env", "list", "alpha", "--json").stdout)}
    assert their_env.name not in names, names


def test_the_cluster_dialog_takes_one_environment_folder_a_line_with_spaces_in_them(qtbot, lab: Lab, tmp_path: Path,
                                                                                    home):
    """'Environment folders (space separated)' cut '/…/lab envs' in two. The box now takes one folder a line; a
    folder with a space, saved from the dialog, is searched: the real listing finds the environment in it."""
    from envdesk.backend.config import ClusterStore
    from envdesk.gui.dialogs.cluster_dialog import ClusterDialog
    from test_gui import open_window
    spaced = lab.shared.parent / f"lab envs {uuid.uuid4().hex[:4]}"
    name = unique("spaced")
    lab.me.run_as_user(f"mkdir '{spaced}' && python3 -m venv --without-pip '{spaced}/{name}'")
    config = tmp_path / "cfg"
    paths = make_config(config, lab.testbed, ["alpha"], alpha={"env_roots": ["~/venvs"]})
    window = open_window(qtbot, paths)
    dialog = ClusterDialog(window.controller, ClusterStore(paths).get("alpha"), parent=window)
    qtbot.addWidget(dialog)
    assert dialog.roots.toPlainText() == "~/venvs"
    dialog.roots.setPlainText(f"~/venvs\n  {spaced}  \n\n")
    dialog.save()
    assert dialog.error.text() == "", dialog.error.text()
    assert ClusterStore(paths).get("alpha").env_roots == ["~/venvs", str(spaced)]
    again = ClusterDialog(window.controller, ClusterStore(paths).get("alpha"), parent=window)
    qtbot.addWidget(again)
    assert again.roots.toPlainText().splitlines() == ["~/venvs", str(spaced)]
    listed = run_cli("env", "list", "alpha", "--json", config=config, home=lab.my_home)
    assert name in {env["name"] for env in json.loads(listed.stdout)}, listed.stdout + listed.stderr
