""""Use it" snippets: the referee is a real shell running them, on the cluster (a login shell with Lmod)
and on this computer, and bash's own syntax check for the batch script."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from envdesk.backend.operations.create import CreateRequest, create_environment
from envdesk.backend.snippets import Place, slurm_snippet, terminal_snippet
from envdesk.backend.inventory import Environment
from envdesk_fixtures import unique

PRINT_PYTHON = 'python -c "import sys; print(sys.prefix)"'


@pytest.fixture(scope="module")
def alpha_env(testbed, tmp_path_factory):
    """A venv EnvDesk made on alpha, with the python module it loads recorded."""
    from envdesk_fixtures import make_config, session_for
    folder = tmp_path_factory.mktemp("snippets")
    session = session_for(make_config(folder / "cfg", testbed, ["alpha"]))
    try:
        yield create_environment(session, "alpha", CreateRequest(name=unique("use-it"), kind="venv")).environment
    finally:
        session.close()


def test_the_terminal_snippet_activates_the_environment_in_a_login_shell_on_the_cluster(testbed, alpha_env):
    assert alpha_env.modules, "EnvDesk recorded the module it loaded"
    shell = testbed.clusters["alpha"].run_as_user(
        "module purge >/dev/null 2>&1\n" + terminal_snippet(alpha_env) + PRINT_PYTHON + "\nmodule -t list 2>&1")
    lines = shell.stdout.splitlines()
    assert lines[0] == alpha_env.path
    assert all(module in lines[1:] for module in alpha_env.modules)


def test_the_batch_script_is_valid_bash_and_runs_the_environments_python(testbed, alpha_env):
    script = slurm_snippet(alpha_env, Place(slurm_account="def-lab"))
    assert script is not None
    assert "#SBATCH --account=def-lab" in script.splitlines()
    alpha = testbed.clusters["alpha"]
    alpha.run_as_user('bash -n -c "$(cat)"', input=script)
    ran = alpha.run_as_user("bash -s", input=script.replace("python my_script.py", PRINT_PYTHON))
    assert ran.stdout.strip().splitlines()[-1] == alpha_env.path


def test_the_account_line_says_what_to_do_when_none_is_known():
    env = Environment(name="x", path="/home/u/venvs/x", kind="venv", python="3.11")
    required = slurm_snippet(env, Place(account_required=True))
    assert required is not None and "#SBATCH --account=" in required and "replace" in required
    optional = slurm_snippet(env, Place())
    assert optional is not None
    assert not any(line.startswith("#SBATCH --account") for line in optional.splitlines()), \
        "where no account is needed, no active --account line (Slurm would reject an invented one)"


def test_on_this_computer_there_is_no_batch_script_and_the_snippet_works_here(tmp_path):
    folder = tmp_path / "venvs" / "here"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    env = Environment(name="here", path=str(folder), kind="venv", python="3.11")
    place = Place(local=True, windows=os.name == "nt")
    assert slurm_snippet(env, place) is None
    ran = subprocess.run(["bash", "-c", terminal_snippet(env, place) + PRINT_PYTHON], capture_output=True, text=True,
                         check=True)
    assert ran.stdout.strip() == str(folder)


def test_conda_environments_activate_without_conda_init():
    env = Environment(name="c", path="/home/u/conda/c", kind="conda", python="3.11", created_by="conda 24.1.2")
    lines = terminal_snippet(env).splitlines()
    assert lines[0] == 'eval "$(conda shell.bash hook)"', "the hook works where `conda init` never ran"
    assert lines[1] == "conda activate /home/u/conda/c"
    micro = Environment(name="m", path="/p/m", kind="conda", python="3.11", created_by="micromamba 2.0.5")
    assert terminal_snippet(micro).splitlines()[0] == 'eval "$(micromamba shell hook -s bash)"'


def test_an_alliance_profile_gets_the_account_line_its_preset_requires(tmp_path, home):
    from envdesk.backend.config import ClusterProfile, ClusterStore
    from envdesk.backend.paths import AppPaths
    from envdesk.backend.presets import get_preset
    from envdesk.backend.snippets import place_of
    from envdesk.backend.targets import Session
    paths = AppPaths(tmp_path / "cfg")
    store = ClusterStore(paths)
    store.add(ClusterProfile(name="narval", **get_preset("alliance").profile_fields(3, user="jsmith")))
    store.add(ClusterProfile(name="mila", **get_preset("mila").profile_fields(0, user="jsmith")))
    store.add(ClusterProfile(name="mine", host="login.example.org", slurm_account="def-lab"))
    session = Session(paths)
    env = Environment(name="x", path="/home/jsmith/venvs/x", kind="venv", python="3.11")
    narval = slurm_snippet(env, place_of(session.target("narval")))
    assert narval is not None and narval.splitlines()[1].startswith("#SBATCH --account=def-yourpi")
    mila = slurm_snippet(env, place_of(session.target("mila")))
    assert mila is not None and not any(line.startswith("#SBATCH --account") for line in mila.splitlines())
    mine = slurm_snippet(env, place_of(session.target("mine")))
    assert mine is not None and "#SBATCH --account=def-lab" in mine.splitlines()
    assert place_of(session.target("local")).local


def test_the_window_offers_no_batch_script_for_this_computer(qtbot, tmp_path, home):
    from test_gui import select_env, window_on_this_computer
    window = window_on_this_computer(qtbot, tmp_path / "cfg", home, "mine")
    select_env(qtbot, window, "mine")
    assert "this computer" in window.details.terminal_box.title.text()
    assert str(home / "venvs" / "mine") in window.details.terminal_box.text.toPlainText()
    assert window.details.slurm_box.isHidden()
