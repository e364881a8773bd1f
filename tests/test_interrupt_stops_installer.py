"""A Ctrl-C in the terminal stops the installer EnvDesk started, before EnvDesk rolls back and exits.

The installer runs in a process group of its own (so that Cancel can stop it with its children), which the
terminal's Ctrl-C never reaches: EnvDesk itself must stop it. A user trial found an update that said
"interrupted" and was then completed by the installer left running, with nothing to revert to.

The package being added has a build step that ignores SIGTERM and sleeps, like a compile that does not stop at
once. Referees: the kernel (/proc: no process of the build left once EnvDesk exited) and uv (what the environment
holds, after the build would have ended).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from envdesk.backend.runner import Job, _stop_before_leaving
from envdesk_fixtures import envdesk_command
from test_local_agent_store import uv_list
from testbed.projects import TINYBACKEND, _init_py, _pyproject
from testbed.wheels import WheelSpec, build_wheel

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg") or not os.path.isdir("/proc/self"),
                                reason="a terminal's process groups and /proc")

BUILD_SECONDS = 8
STUBBORN = ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "_original_build_wheel = build_wheel\n\n\n"
            "def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n"
            f"    time.sleep({BUILD_SECONDS})\n"
            "    return _original_build_wheel(wheel_directory, config_settings, metadata_directory)\n")


def stubborn_project(folder: Path, name: str) -> Path:
    """A local project whose wheel build ignores SIGTERM and takes BUILD_SECONDS."""
    project = folder / name
    (project / name).mkdir(parents=True)
    (project / "pyproject.toml").write_text(_pyproject(name, "1.0", []))
    (project / "tinybackend.py").write_text(TINYBACKEND + "\n" + STUBBORN)
    (project / name / "__init__.py").write_text(_init_py(name, "1.0"))
    return project


def processes_mentioning(text: str) -> list[str]:
    """The command lines of this machine's processes that mention `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in line:
                found.append(line)
    return found


@pytest.fixture
def this_computer(tmp_path) -> tuple[list[str], dict[str, str], Path, Path]:
    """(the envdesk command with its config folder, its environment, the environments' root, a stubborn
    project) for This computer, whose installs come from a local wheel folder."""
    wheels, envs, config, home = (tmp_path / name for name in ("wheels", "envs", "config", "home"))
    for folder in (wheels, envs, config, home):
        folder.mkdir()
    build_wheel(wheels, WheelSpec("tinygamma", "0.1"))
    (config / "clusters.yaml").write_text(json.dumps({"local": {
        "env_roots": [str(envs)], "pip_args": ["--no-index", "--find-links", str(wheels)]}}))
    environ = {**{k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}, "HOME": str(home)}
    return [*envdesk_command(), "--config-dir", str(config)], environ, envs, stubborn_project(tmp_path / "src",
                                                                                              "slowpkg")


def interrupted_while_building(argv: list[str], environ: dict[str, str], project: Path,
                               sent: signal.Signals = signal.SIGINT, twice: bool = False) -> str:
    """Run `argv` as a terminal's foreground job (a process group of its own, SIGINT at its default), press
    Ctrl-C once the installer is building `project` (or send `sent` to EnvDesk alone, as `timeout` or a batch
    system's time limit does); its exit status must be 130 (128 + the signal's number). What it printed on
    stderr."""
    job = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ,
                           start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert job.stderr is not None
    seen = []
    for line in job.stderr:
        seen.append(line)
        if line.startswith("==> Installing"):
            break
    deadline = time.monotonic() + 120
    while not processes_mentioning(str(project)) and time.monotonic() < deadline:
        time.sleep(0.1)  # the installer has started building the package
    assert processes_mentioning(str(project)), "".join(seen)
    time.sleep(1)
    if sent == signal.SIGINT:
        os.killpg(job.pid, signal.SIGINT)  # what Ctrl-C does: to the terminal's foreground process group
    else:
        job.send_signal(sent)
        if twice:  # as a closed terminal: bash's SIGHUP to its jobs, then the kernel's to the foreground group
            time.sleep(0.3)
            job.send_signal(sent)
    seen.append(job.stderr.read())
    assert job.wait(120) == 128 + sent, "".join(seen)
    assert processes_mentioning(str(project)) == [], "the build went on after EnvDesk exited"
    time.sleep(BUILD_SECONDS + 1)  # longer than the build would have taken
    return "".join(seen)


def test_ctrl_c_during_an_update_stops_the_installer_and_rolls_back(this_computer):
    envdesk, environ, envs, project = this_computer
    subprocess.run([*envdesk, "env", "create", "local", "held", "--kind", "uv", "--package", "tinygamma==0.1"],
                   check=True, capture_output=True, env=environ, timeout=300)
    before = uv_list(envs / "held")
    said = interrupted_while_building([*envdesk, "env", "update", "local", "held", "--add",
                                       f"slowpkg @ {project.as_uri()}"], environ, project)
    assert uv_list(envs / "held") == before
    assert "putting the previous packages back" in said and "interrupted" in said
    assert not os.path.lexists(str(envs / "held") + ".envdesk-lock")
    show = subprocess.run([*envdesk, "env", "show", "local", "held", "--json"], capture_output=True, text=True,
                          env=environ, timeout=300, check=True)
    assert json.loads(show.stdout)["state"] == "ok", show.stdout


def test_ctrl_c_during_a_create_stops_the_installer_and_leaves_the_name_free(this_computer):
    """The half-made environment is removed, not left as a folder no command can delete or reuse."""
    envdesk, environ, envs, project = this_computer
    for kind in ("venv", "uv"):
        interrupted_while_building([*envdesk, "env", "create", "local", "fresh", "--kind", kind, "--package",
                                    f"slowpkg @ {project.as_uri()}"], environ, project)
        assert os.listdir(envs) == [], kind
        made = subprocess.run([*envdesk, "env", "create", "local", "fresh", "--kind", kind, "--package",
                               "tinygamma==0.1"], capture_output=True, text=True, env=environ, timeout=300)
        assert made.returncode == 0, made.stderr
        assert uv_list(envs / "fresh")["tinygamma"] == "0.1"
        subprocess.run([*envdesk, "env", "delete", "local", "fresh", "--yes"], check=True, capture_output=True,
                       env=environ, timeout=300)


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_sighup_during_an_update_stops_the_installer_and_rolls_back_as_ctrl_c_does(this_computer, sent):
    """T27: `timeout -s TERM` (a batch job's time limit, a CI's cancel) or a closed terminal (SIGHUP) ended EnvDesk
    at once, leaving the installer running as an orphan and the environment half-changed with its lock. Now it
    stops as Ctrl-C does, with the exit status a shell gives a command that signal ended (143, 129). The signal
    comes twice, as from a closed terminal (R21: the second cut the rollback short, as a second Ctrl-C forces).
    Referee: uv's list of what the environment holds, before and after."""
    envdesk, environ, envs, project = this_computer
    subprocess.run([*envdesk, "env", "create", "local", "held", "--kind", "uv", "--package", "tinygamma==0.1"],
                   check=True, capture_output=True, env=environ, timeout=300)
    before = uv_list(envs / "held")
    said = interrupted_while_building([*envdesk, "env", "update", "local", "held", "--add",
                                       f"slowpkg @ {project.as_uri()}"], environ, project, sent, twice=True)
    assert "stopped" in said and sent.name in said, said
    assert uv_list(envs / "held") == before
    assert not os.path.lexists(str(envs / "held") + ".envdesk-lock")


def test_a_second_hangup_or_termination_does_not_cut_the_undo_short():
    """R21: a closed terminal sends SIGHUP twice (bash's to its jobs, then the kernel's to the foreground group);
    the second, taken as a second Ctrl-C, would stop the undo the first began. Referee: the process itself, which
    gets both signals while it undoes (inside the handling of the first) and goes on."""
    program = ("import os, signal, time\n"
               "from envdesk.cli import Terminated, _stop_on_termination\n"
               "_stop_on_termination()\n"
               "try:\n"
               "    os.kill(os.getpid(), signal.SIGHUP); time.sleep(5)\n"
               "except Terminated:\n"
               "    os.kill(os.getpid(), signal.SIGHUP); os.kill(os.getpid(), signal.SIGTERM); time.sleep(0.2)\n"
               "    print('undone')\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "undone\n", done.stdout + done.stderr


def test_a_command_started_with_nohup_goes_on_after_a_hangup(this_computer):
    """R21: `nohup envdesk env create …` (a habit on login nodes) must outlive the logout's SIGHUP, which nohup
    sets to be ignored; EnvDesk's own handler had replaced that. Referee: uv's list of the environment made."""
    envdesk, environ, envs, project = this_computer
    job = subprocess.Popen([*envdesk, "env", "create", "local", "kept", "--kind", "uv", "--package",
                            f"slowpkg @ {project.as_uri()}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True, env=environ, start_new_session=True,
                           preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))  # what nohup does
    assert job.stderr is not None
    for line in job.stderr:
        if line.startswith("==> Installing"):
            break
    job.send_signal(signal.SIGHUP)
    rest = job.stderr.read()
    assert job.wait(300) == 0, rest
    assert "slowpkg" in uv_list(envs / "kept")


def test_a_create_killed_outright_is_named_by_the_doctor_and_neither_exported_nor_copied(this_computer):
    """T27: an environment left unfinished (its EnvDesk killed with SIGKILL, which nothing can catch) was listed
    INCOMPLETE, yet the doctor said "nothing wrong found", an export wrote a header only and a copy made an
    empty environment, each exiting 0. The referee of "unfinished": the create was killed before its installer
    had built the package it was asked for (the build was still running)."""
    envdesk, environ, envs, project = this_computer
    job = subprocess.Popen([*envdesk, "env", "create", "local", "killed", "--kind", "uv", "--package",
                            f"slowpkg @ {project.as_uri()}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True, env=environ, start_new_session=True)
    assert job.stderr is not None
    for line in job.stderr:
        if line.startswith("==> Installing"):
            break
    deadline = time.monotonic() + 120
    while len(processes_mentioning(str(project))) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)  # EnvDesk's own command line names the project too; the installer's is the second
    assert len(processes_mentioning(str(project))) >= 2, "the installer never began the build"
    job.kill()
    assert job.wait(60) == -signal.SIGKILL
    while processes_mentioning(str(project)) and time.monotonic() < deadline + BUILD_SECONDS * 3:
        time.sleep(0.2)  # the orphaned installer ends by itself

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*envdesk, *args], capture_output=True, text=True, env=environ, timeout=300)

    health = run("env", "doctor", "local", "--json")
    assert health.returncode == 0, health.stderr
    assert [(f["env"], f["code"]) for f in json.loads(health.stdout)["findings"]] == [("killed", "incomplete")]
    exported = run("env", "export", "local", "killed", "-o", str(envs.parent / "killed.txt"))
    assert exported.returncode == 1 and "never finished" in exported.stderr, exported.stderr
    assert not (envs.parent / "killed.txt").exists()
    copied = run("env", "clone", "local", "killed", "local", "--name", "copy")
    assert copied.returncode == 1 and "never finished" in copied.stderr, copied.stderr
    assert sorted(os.listdir(envs)) == ["killed", "killed.envdesk-lock"]


class StoppedSlowly(Job):
    """Stand-in for a command whose stop waits (a remote one, on a network that stalled, which cannot be made
    here): its first stop() blocks until a second Ctrl-C comes; it never ends by itself."""

    def __init__(self, stops_at_once: bool) -> None:
        super().__init__("stand-in", None)
        self.stops_at_once = stops_at_once
        self.stops: list[bool] = []

    def start(self) -> None:
        pass

    def send_input(self, data: bytes | None, stop=None) -> None:
        pass

    def read(self) -> bool:
        time.sleep(0.01)
        return False

    def stop(self, force: bool = False) -> bool:
        self.stops.append(force)
        if len(self.stops) == 1:
            threading.Timer(0.2, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT)).start()
            threading.Event().wait(60)  # until the second Ctrl-C
        return True

    def exit_status(self) -> int:
        return -1


@pytest.mark.parametrize("stops_at_once, stops", [(True, [False, True]), (False, [False])])
def test_a_second_ctrl_c_leaves_at_once(stops_at_once, stops):
    """A second Ctrl-C while the first one's stop still waits leaves at once: a command here is killed on the way
    out (instantly), a remote one is not asked again (that would wait on the network again: the review)."""
    assert threading.current_thread() is threading.main_thread()
    job = StoppedSlowly(stops_at_once)
    with pytest.raises(KeyboardInterrupt):
        _stop_before_leaving(job)
    assert job.stops == stops
