"""Builds on a compute node (issue 12): a cluster whose profile says its login nodes limit long processes builds
its environments as real Slurm jobs, with the same locks and rollback; cancel scancels the job; the job script
EnvDesk writes runs under sbatch.

The test bed's Slurm is real (munged, slurmctld, slurmd on this machine; see testbed/slurm.py). Referees:
slurmctld's job completion log (which jobs ran, whose, with which account, how they ended), squeue, pip freeze
in the environment, the processes on the machine, and the output file of the sbatch job.
"""
from __future__ import annotations

import os
import shlex
import threading

import pytest

from envdesk.backend.errors import Cancelled, InstallFailed
from envdesk.backend.operations.common import Progress
from envdesk.backend.operations.create import CreateRequest, create_environment
from envdesk.backend.operations.listing import show_environment
from envdesk.backend.operations.update import Change, update_environment
from envdesk.backend.protocol import LOCK_SUFFIX
from envdesk_fixtures import freeze, make_config, run_cli, session_for, unique
from testbed.projects import make_project

ACCOUNT = "def-envdesk"
ON_COMPUTE_NODE = {"build_on_compute_node": True, "slurm_account": ACCOUNT, "build_time": "00:30:00"}

# A build backend that ignores SIGTERM and builds for a long while, like a compile that does not stop at once.
STUBBORN = ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "_original_build_wheel = build_wheel\n\n\n"
            "def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n"
            "    time.sleep(120)  # envdesk-stubborn-build\n"
            "    return _original_build_wheel(wheel_directory, config_settings, metadata_directory)\n")


@pytest.fixture
def slurm_session(testbed, slurm, tmp_path, home):
    """A session whose alpha builds on a compute node, with an account and a time limit."""
    opened = session_for(make_config(tmp_path / "cfg", testbed, ["alpha"], alpha=ON_COMPUTE_NODE))
    yield opened
    opened.close()


def _new_jobs(slurm, before: set[str]) -> list:
    return [job for job in slurm.finished_jobs() if job.job_id not in before]


def _gone(cluster, path: str) -> bool:
    return cluster.run_as_user(f"test -e {shlex.quote(path)} || test -e {shlex.quote(path + LOCK_SUFFIX)}",
                               check=False).returncode != 0


def test_a_create_runs_its_build_as_slurm_jobs_and_makes_a_working_environment(testbed, slurm, slurm_session):
    alpha = testbed.clusters["alpha"]
    before = {job.job_id for job in slurm.finished_jobs()}
    steps: list[str] = []
    alpha.run_as_user("sbatch --exclusive --job-name=hog --wrap 'sleep 4'")  # the build waits in the queue first
    created = create_environment(slurm_session, "alpha", CreateRequest(name=unique("slurm"), kind="venv",
                                                                       packages=["tinygamma"]),
                                 Progress(on_step=steps.append)).environment
    jobs = [job for job in _new_jobs(slurm, before) if job.name != "hog"]
    # making the venv and installing: each a job of alpha's user, with the profile's account, that completed
    assert len(jobs) >= 2, jobs
    assert all(job.user == alpha.user and job.account == ACCOUNT and job.partition == "debug"
               and job.state == "COMPLETED" and job.name.startswith("envdesk-build-") for job in jobs), jobs
    assert any(step.startswith(f"Running on the compute node {slurm.node} (Slurm job ") for step in steps), steps
    waited = [i for i, step in enumerate(steps) if step.startswith("Waiting in the Slurm queue for a compute node")]
    assert waited and steps[waited[0] + 1].startswith("Running on the compute node"), steps
    freeze = alpha.run_as_user(f"{shlex.quote(created.path)}/bin/python -m pip freeze").stdout
    assert "tinygamma==0.1" in freeze.split(), freeze
    assert slurm.queue(alpha.user) == []
    # a small update stays on the login node; upgrading everything is a build, so a job
    before = {job.job_id for job in slurm.finished_jobs()}
    update_environment(slurm_session, "alpha", created.path, Change(add=["tinyalpha==1.0"]))
    assert _new_jobs(slurm, before) == []
    update_environment(slurm_session, "alpha", created.path, Change(upgrade_all=True))
    upgraded = _new_jobs(slurm, before)
    assert upgraded and all(job.state == "COMPLETED" and job.user == alpha.user for job in upgraded), upgraded
    freeze = alpha.run_as_user(f"{shlex.quote(created.path)}/bin/python -m pip freeze").stdout
    assert "tinyalpha==2.0" in freeze.split(), freeze


def test_an_import_builds_as_slurm_jobs_too(testbed, slurm, slurm_session, tmp_path):
    """An ordinary requirements file imported on a cluster that builds on compute nodes: its build runs as jobs
    of the user that completed, and pip freeze in the new environment has the file's pins."""
    from envdesk.backend.operations.importing import import_environment, read_spec_file
    alpha = testbed.clusters["alpha"]
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("tinyalpha==1.0\ntinygamma==0.1\n")
    before = {job.job_id for job in slurm.finished_jobs()}
    imported = import_environment(slurm_session, "alpha", read_spec_file(requirements), name=unique("slimp"))
    jobs = _new_jobs(slurm, before)  # a uv environment, as a new one on alpha: made and filled in one job
    assert jobs and all(job.user == alpha.user and job.state == "COMPLETED" for job in jobs), jobs
    held = freeze(alpha, imported.environment.path)  # uv's own freeze (the environment has no pip)
    assert {"tinyalpha==1.0", "tinygamma==0.1"} <= held, held
    assert slurm.queue(alpha.user) == []


def test_cancel_mid_build_scancels_the_job_and_removes_the_half_made_environment(testbed, slurm, slurm_session):
    alpha = testbed.clusters["alpha"]
    project = make_project(alpha, f"slowslurm{os.urandom(3).hex()}", "1.0", git=False)
    alpha.run_as_user(f"cat >> {shlex.quote(project.path)}/tinybackend.py", input=STUBBORN)
    name = unique("slurmcancel")
    path = f"{alpha.home}/venvs/{name}"
    progress = Progress()
    installing = threading.Event()

    def on_step(text: str) -> None:
        if text.startswith("Installing"):
            installing.set()
        elif installing.is_set() and text.startswith("Running on the compute node"):
            threading.Timer(3.0, progress.cancel.cancel).start()  # pip is in the stubborn build by then

    progress.on_step = on_step
    before = {job.job_id for job in slurm.finished_jobs()}
    with pytest.raises(Cancelled):
        create_environment(slurm_session, "alpha", CreateRequest(
            name=name, kind="venv", packages=[f"{project.name} @ file://{project.path}"]), progress)
    # no job left (pending, running or completing), and no process of the build on the node
    assert slurm.queue(alpha.user) == []
    left = alpha.run_as_user("pgrep -u \"$(id -u)\" -f 'envdesk-stubborn|_in_process.py build_wheel' -a || true")
    assert [line for line in left.stdout.splitlines() if "pgrep" not in line] == []
    assert _gone(alpha, path), "the half-made environment or its lock is still there"
    install_jobs = [job for job in _new_jobs(slurm, before) if job.state != "COMPLETED"]
    assert install_jobs and all(job.user == alpha.user for job in install_jobs), _new_jobs(slurm, before)


def test_a_failing_build_job_rolls_back_as_on_the_login_node(testbed, slurm, slurm_session):
    alpha = testbed.clusters["alpha"]
    name = unique("slurmfail")
    before = {job.job_id for job in slurm.finished_jobs()}
    with pytest.raises(InstallFailed) as failed:
        create_environment(slurm_session, "alpha", CreateRequest(name=name, kind="venv",
                                                                 packages=["no-such-package-anywhere"]))
    assert "no-such-package-anywhere" in str(failed.value)
    assert _gone(alpha, f"{alpha.home}/venvs/{name}")
    assert slurm.queue(alpha.user) == []
    assert any(job.state == "FAILED" and job.user == alpha.user for job in _new_jobs(slurm, before))


def test_the_job_script_envdesk_writes_runs_under_sbatch_in_the_environment(qtbot, testbed, slurm, tmp_path, home):
    from envdesk.backend.snippets import place_of
    from envdesk.gui.details_panel import DetailsPanel
    alpha = testbed.clusters["alpha"]
    config = tmp_path / "cfg"
    paths = make_config(config, testbed, ["alpha"], alpha={"slurm_account": ACCOUNT})
    name = unique("slurmjob")
    made = run_cli("env", "create", "alpha", name, "--kind", "venv", "--package", "tinyalpha", config=config,
                   home=home)
    assert made.returncode == 0, made.stderr
    script = tmp_path / "job.sh"
    written = run_cli("env", "jobscript", "alpha", name, "-o", str(script), config=config, home=home)
    assert written.returncode == 0, written.stderr
    # T11: the file is on this computer only, and the message said to sbatch it on the cluster as if it were there
    assert f"Wrote {script} on this computer" in written.stderr and "Copy it to alpha" in written.stderr
    assert not (testbed.clusters["alpha"].home / "job.sh").exists()
    text = script.read_text()
    assert f"#SBATCH --account={ACCOUNT}" in text and "python my_script.py" in text
    # the window's Save job script button writes the same script
    session = session_for(paths)
    panel = DetailsPanel()
    qtbot.addWidget(panel)
    panel.show_environment(show_environment(session, "alpha", name), place_of(session.target("alpha")))
    saved = panel.save_job_script(str(tmp_path / "saved.sh"))
    session.close()
    assert saved is not None and saved.read_text() == text
    assert os.access(saved, os.X_OK) and os.access(script, os.X_OK)
    workdir = f"{alpha.home}/job-{name}"
    alpha.run_as_user(f"mkdir -p {shlex.quote(workdir)} && cat > {shlex.quote(workdir)}/job.sh", input=text)
    alpha.run_as_user(f"cat > {shlex.quote(workdir)}/my_script.py",
                      input="import sys, tinyalpha\nprint('PYTHON', sys.executable)\n")
    submitted = alpha.run_as_user(f"cd {shlex.quote(workdir)} && sbatch --parsable --wait job.sh")
    job_id = submitted.stdout.strip().split(";")[0]
    output = alpha.run_as_user(f"cat {shlex.quote(workdir)}/slurm-{job_id}.out").stdout
    assert f"PYTHON {alpha.home}/venvs/{name}/bin/python" in output, output


def test_build_settings_are_plain_values_and_the_command_line_sets_them(tmp_path, home):
    from envdesk.backend.config import ClusterProfile, ClusterStore
    from envdesk.backend.errors import EnvDeskError
    from envdesk.backend.paths import AppPaths
    for bad in ({"build_partition": "debug; rm -rf ~"}, {"build_time": "01:00:00 --wrap=x"},
                {"build_memory": "$(id)"}, {"build_cpus": "2 3"}, {"build_on_compute_node": "yes"}):
        with pytest.raises(EnvDeskError):
            ClusterProfile(name="c", host="h", **bad)
    config = tmp_path / "cfg"
    added = run_cli("cluster", "add", "hpc", "--host", "login.example.org", "--user", "me", "--account", ACCOUNT,
                    "--build-on-compute-node", "--partition", "debug", "--time", "00:20:00", "--mem", "4g",
                    config=config, home=home)
    assert added.returncode == 0, added.stderr
    profile = ClusterStore(AppPaths(config)).get("hpc")
    assert (profile.build_on_compute_node, profile.build_partition, profile.build_time, profile.build_memory) == \
        (True, "debug", "00:20:00", "4G")
    edited = run_cli("cluster", "edit", "hpc", "--build-on-login-node", "--partition", "", config=config, home=home)
    assert edited.returncode == 0, edited.stderr
    profile = ClusterStore(AppPaths(config)).get("hpc")
    assert (profile.build_on_compute_node, profile.build_partition, profile.slurm_account) == (False, None, ACCOUNT)
    refused = run_cli("cluster", "edit", "hpc", "--time", "soon", config=config, home=home)
    assert refused.returncode == 1 and "not a time limit" in refused.stderr


def test_the_cluster_dialog_sets_where_builds_run(qtbot, home):
    from envdesk.backend.config import ClusterProfile
    from envdesk.backend.errors import EnvDeskError
    from envdesk.backend.presets import get_preset
    from envdesk.backend.slurm import builds_on_compute_node
    from envdesk.gui.dialogs.cluster_dialog import ClusterDialog
    dialog = ClusterDialog(controller=None)
    qtbot.addWidget(dialog)
    dialog.preset.setCurrentIndex(dialog.preset.findText(get_preset("mila").label))
    dialog.user.setText("me")
    compute = dialog.compute
    assert compute.on_compute_node.isChecked(), "Mila's preset: its login nodes take only short processes"
    assert dialog.profile().build_on_compute_node is None and builds_on_compute_node(dialog.profile())
    assert "short and light" in compute.limits.text()
    compute.group.setChecked(True)
    compute.on_compute_node.click()
    assert dialog.profile().build_on_compute_node is False and not compute.partition.isEnabled()
    compute.on_compute_node.click()
    compute.account.setText(ACCOUNT)
    compute.partition.setText("debug")
    compute.time.setText("00:45:00")
    made = dialog.profile()
    assert (made.build_on_compute_node, made.slurm_account, made.build_partition, made.build_time) == \
        (True, ACCOUNT, "debug", "00:45:00")
    compute.time.setText("01:00:00; rm -rf ~")
    with pytest.raises(EnvDeskError):
        dialog.profile()
    saved = ClusterProfile(name="x", host="h", slurm_account=ACCOUNT, build_on_compute_node=False, build_cpus=4,
                           build_memory="8G", build_time="02:00:00")
    edit = ClusterDialog(controller=None, profile=saved)
    qtbot.addWidget(edit)
    again = edit.profile()
    assert (again.slurm_account, again.build_on_compute_node, again.build_cpus, again.build_memory,
            again.build_time) == (ACCOUNT, False, 4, "8G", "02:00:00"), "editing keeps the Slurm settings"
