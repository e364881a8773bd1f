"""Login nodes whose Python cannot put pip in a venv, and venvs whose disk fills (user trial T26 MED-4, MED-5, MED-8).

The Python here is a STAND-IN for a Debian or Ubuntu login node without python3-venv: the test bed's own Debian
python3.11, copied with its standard library less the ensurepip folder, which is what Debian's python3.11-venv
package holds (dpkg -S /usr/lib/python3.11/ensurepip), so its `python3 -m venv` runs Debian's own code and fails in
Debian's own words. The user's PATH has no other Python and MODULEPATH is empty (no Python module, no virtualenv).

Referees: that Python itself (`python3 -c 'import ensurepip'`, `python3 -m venv X` by hand), uv's line in the new
environment's pyvenv.cfg and `uv pip freeze`, os.statvfs of a small tmpfs root and a venv made there by hand, and the
listing of the root (nothing left).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from envdesk.backend.operations.common import Progress, Reservation, explain
from envdesk.backend.operations.create import undo
from envdesk.backend.runner import CommandResult
from envdesk.backend.errors import CommandFailed
from envdesk_fixtures import mounted_tmpfs, run_cli, unique
from test_login_files import write_dotfiles
from test_agent_channels import alpha_behind_own_sshd, session_on
from test_login_pythons import cleared

DEBIAN_PYTHON = ('mkdir -p ~/debpy/bin ~/debpy/lib/python3.11 && cp /usr/bin/python3.11 ~/debpy/bin/python3 && '
                 'for f in /usr/lib/python3.11/*; do case "${f##*/}" in ensurepip) ;; '
                 '*) ln -sf "$f" ~/debpy/lib/python3.11/ ;; esac; done && '
                 'mkdir -p ~/bin-nopy && for f in /usr/bin/*; do case "${f##*/}" in python*) ;; '
                 '*) ln -sf "$f" ~/bin-nopy/ ;; esac; done')
"""The stand-in (see the module's text), and a folder of links to /usr/bin's programs but its Pythons."""
DEBIAN_PATH = "export PATH=$HOME/debpy/bin:$HOME/bin-nopy MODULEPATH=\n"
DEBIAN_PATH_AND_UV = "export PATH=$HOME/debpy/bin:$HOME/uvbin:$HOME/bin-nopy MODULEPATH=\n"


@pytest.fixture(scope="module")
def deb_cluster(testbed):
    cluster = testbed.own_user_cluster("deb")
    write_dotfiles(cluster, {})
    uv = cluster.run_as_user(f"module load {cluster.uv_module} && command -v uv").stdout.strip()
    cluster.run_as_user(f"{DEBIAN_PYTHON} && mkdir -p ~/uvbin && ln -sf {uv} ~/uvbin/uv")
    yield cluster
    write_dotfiles(cluster, {})


@pytest.fixture
def cluster(deb_cluster, tmp_path, home):
    """(cluster, config folder, session), the user's dotfiles cleared before and after each test."""
    with cleared(deb_cluster, tmp_path / "cfg") as found:
        yield found


def listed(cluster, folder: str) -> list[str]:
    """What `ls -A` lists in the user's `folder` (the referee of what was left)."""
    return cluster.run_as_user(f"mkdir -p {folder} && ls -A {folder}").stdout.split()


def test_no_ensurepip_and_no_other_way_is_refused_in_plain_words(cluster, home):
    """T26 MED-4: `cluster test` offered venv, then `env create` failed in venv's own line and "run it with -v"."""
    cluster, config, _ = cluster
    write_dotfiles(cluster, {".bash_profile": DEBIAN_PATH})
    assert cluster.run_as_user("python3 -c 'import ensurepip'", check=False).returncode == 1  # the referees
    by_hand = cluster.run_as_user("python3 -m venv ~/byhand && echo made", check=False)
    assert by_hand.returncode == 1 and "ensurepip is not\navailable" in by_hand.stdout, by_hand
    cluster.run_as_user("rm -rf ~/byhand")
    # the Debian words, as any command of a Python without ensurepip (a module's, say) would fail with them
    assert "cannot make environments with pip" in explain(CommandResult("venv", 1, by_hand.stdout, by_hand.stderr))

    tested = run_cli("cluster", "test", cluster.name, config=config, home=home)
    assert "kinds: none" in tested.stdout and "python3-venv" in tested.stdout, tested.stdout + tested.stderr
    before = listed(cluster, "venvs")
    for kind in ((), ("--kind", "venv"), ("--kind", "virtualenv")):
        name = unique("deb")
        made = run_cli("env", "create", cluster.name, name, *kind, config=config, home=home)
        assert made.returncode == 1, made
        assert "cannot make environments with pip" in made.stderr and "python3-venv" in made.stderr, made.stderr
        assert "envdesk -v" not in made.stderr and "could not be removed" not in made.stderr
    assert listed(cluster, "venvs") == before


def test_no_ensurepip_with_uv_makes_uv_environments_and_says_so(cluster, home):
    """T26 MED-4: where uv is there, a venv or virtualenv asked for is a uv environment, said in a note."""
    cluster, config, _ = cluster
    write_dotfiles(cluster, {".bash_profile": DEBIAN_PATH_AND_UV})
    tested = run_cli("cluster", "test", cluster.name, config=config, home=home)
    assert "kinds: uv;" in tested.stdout and "new environments: uv" in tested.stdout, tested.stdout
    for kind, said in (("venv", "cannot put pip in a venv"), ("virtualenv", "virtualenv is not installed")):
        name = unique("deb")
        made = run_cli("env", "create", cluster.name, name, "--kind", kind, "--package", "tinyalpha",
                       config=config, home=home)
        assert made.returncode == 0, made.stderr
        assert said in made.stdout + made.stderr and "so this is a uv environment" in made.stdout + made.stderr
        cfg = cluster.run_as_user(f"cat ~/venvs/{name}/pyvenv.cfg").stdout
        assert any(line.startswith("uv = ") for line in cfg.splitlines()), cfg  # uv's own mark
        frozen = cluster.run_as_user(f"uv pip freeze --python ~/venvs/{name}/bin/python").stdout.split()
        assert frozen == ["tinyalpha==2.0"]
    failed = run_cli("env", "create", cluster.name, unique("deb"), "--kind", "venv", "--package", "nosuchpackage",
                     config=config, home=home)  # a build that fails says the swap too (T26: no word of it)
    assert failed.returncode == 1 and "so this is a uv environment" in failed.stderr, failed.stderr


def test_a_disk_that_fills_in_ensurepip_is_named_as_full(cluster, home):
    """T26 MED-5: venv hides ensurepip's OSError; EnvDesk had measured the free space, so it says the disk is full."""
    cluster, config, _ = cluster
    with mounted_tmpfs(Path(f"/tmp/envdesk-full-{unique('venv')}"), "size=3m,mode=1777") as root:
        by_hand = cluster.run_as_user(f"module load {cluster.python_modules[-1]} && python3 -m venv {root}/byhand",
                                      check=False)  # the referee: venv's own line, and the disk full under it
        assert by_hand.returncode == 1 and "'-m', 'ensurepip'" in by_hand.stdout + by_hand.stderr, by_hand
        cluster.run_as_user(f"rm -rf {root}/byhand")
        assert "its ensurepip failed" in explain(CommandResult("venv", 1, by_hand.stdout, by_hand.stderr))
        stat = os.statvfs(root)
        free_mib = f"{stat.f_bavail * stat.f_frsize / 1048576:.1f} MiB"
        made = run_cli("env", "create", cluster.name, unique("full"), "--kind", "venv", "--root", str(root),
                       config=config, home=home)
        assert made.returncode == 1, made
        assert f"Probably the disk is full ({free_mib} were free" in made.stderr, made.stderr
        assert "envdesk -v" not in made.stderr
        assert os.listdir(root) == []


def test_a_create_whose_begin_made_nothing_says_nothing_of_removing(cluster):
    """T26 MED-8: a create whose begin never took the lock (its answer lost, so the build counts it as held) said
    the unfinished environment "could not be removed" and "is listed as incomplete", though nothing was there.
    The reservation is put in that state by hand (what build_in_one_command does then); the agent's abort is real."""
    cluster, _, session = cluster
    target = session.target(cluster.name)
    path = f"{cluster.home}/venvs/{unique('never')}"
    reservation = Reservation.reserve(target, path, list(target.roots), str(cluster.home), create=True,
                                      operation="create")
    reservation.held = True
    steps: list[str] = []
    failure = CommandFailed("Reserving it failed on the cluster.", "")
    undo(reservation, Progress(on_step=steps.append), failure)
    assert steps == [] and failure.hint == "" and not reservation.held
    assert cluster.run_as_user(f"test -e {path}", check=False).returncode == 1  # the referee: nothing there


def test_a_create_cut_off_before_its_begin_answered_claims_no_folder(testbed, tmp_path, home):
    """T26 MED-8, where the cluster is gone as well: whether begin ran cannot be told, so the words say that, not
    that an unfinished environment "could not be removed" and "is listed". The reservation is put by hand in the
    state build_in_one_command leaves after a ConnectionFailed before begin's answer; the cluster (alpha's user
    behind an sshd of its own) is stopped for real before the undo."""
    gone = alpha_behind_own_sshd(testbed, tmp_path / "gone-sshd", "gone", 10)
    session = session_on(gone, tmp_path / "cfg")
    target = session.target(gone.name)
    path = f"{gone.home}/venvs/{unique('cut')}"
    reservation = Reservation.reserve(target, path, list(target.roots), str(gone.home), create=True,
                                      operation="create")
    reservation.held = True
    gone.stop()
    steps: list[str] = []
    failure = CommandFailed("Reserving it failed on gone.", "")
    try:
        undo(reservation, Progress(on_step=steps.append), failure)
    finally:
        session.close()
    assert "could not be removed" not in failure.hint and "could not check whether anything" in failure.hint
    assert "Removing the unfinished environment" not in steps
    assert not Path(path).exists()  # the referee: the cluster's disk, seen from this machine


def test_the_new_environment_window_says_why_none_can_be_made(cluster, qtbot, tmp_path, home):
    """The New environment window given what such a cluster's probe answers says why and what to do, with nothing
    to create (it raised before: no kind to choose). The window is on This computer; the answer is the deb
    cluster's real probe, handed to it as the controller hands one."""
    from envdesk.backend.probe import probe
    from envdesk.gui.dialogs.new_env_dialog import NewEnvironmentDialog
    from test_dialog_checks import _create_button
    from test_gui import LONG, window_on_this_computer
    cluster, _, session = cluster
    write_dotfiles(cluster, {".bash_profile": DEBIAN_PATH})
    caps = probe(session.target(cluster.name))
    window = window_on_this_computer(qtbot, tmp_path / "gui", home, "demo")
    dialog = NewEnvironmentDialog(window.controller, "local", parent=window)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.caps is not None, timeout=LONG)
    dialog.name.setText("made")
    assert _create_button(dialog)  # with This computer's answer, it could make one
    dialog.caps = None
    dialog._ready(caps)
    assert "cannot make environments with pip" in dialog.status.text() and "python3-venv" in dialog.status.text()
    assert dialog.caps is None and not _create_button(dialog)
