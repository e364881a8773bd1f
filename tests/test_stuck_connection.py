"""A connection whose path stops passing data without closing (T19: a stuck VPN or NAT, a laptop waking up on
another network): what runs on it is told, within ServerAliveInterval x (ServerAliveCountMax + 1), that the cluster
stopped answering; a Cancel or Ctrl-C leaves at once, saying that what ran there could not be stopped and may
still finish; nothing is rolled back or removed under an installer that may still be writing.

The path is a real proxy in front of the test bed's sshd that holds everything back (testbed.faults.StuckPath);
the keepalive settings come from ~/.ssh/config, as ssh reads them (test_ssh_config has `ssh -G` as their
referee). The other referees: sshd's log (the keepalive questions it answered), the cluster user's processes
(what still runs there), the file system and the environment's own `pip freeze` (what was left). No test
measures time: the timeouts below only keep a broken build from hanging.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from envdesk.backend import kept_connection
from envdesk.backend.config import ClusterProfile, ClusterStore
from envdesk.backend.errors import Cancelled, ConnectionFailed
from envdesk.backend.operations.create import CreateRequest, create_environment
from envdesk.backend.operations.common import Progress
from envdesk.backend.operations.listing import list_environments
from envdesk.backend.paths import AppPaths
from envdesk.backend.prompts import NoPrompter
from envdesk.backend.targets import Session
from envdesk.backend.runner import left_running
from envdesk_fixtures import envdesk_command, session_for, unique
from testbed.faults import Running, StuckPath, user_processes
from testbed.projects import TINYBACKEND, _init_py, _pyproject

GUARD = 240  # seconds: only a broken build waits this long


# ---------------------------------------------------------------- a cluster behind a path that gets stuck


class Stuck:
    """alpha, as the cluster "stuck", reached through a StuckPath; ~/.ssh/config asks every second."""

    def __init__(self, testbed, folder: Path, home: Path, *, interval: int = 1, count: int = 2) -> None:
        self.cluster = testbed.clusters["alpha"]
        self.path = StuckPath(self.cluster.port)
        (home / ".ssh").mkdir(mode=0o700, exist_ok=True)
        (home / ".ssh" / "config").write_text(f"Host 127.0.0.1\n  ServerAliveInterval {interval}\n"
                                              f"  ServerAliveCountMax {count}\n")
        os.chmod(home / ".ssh" / "config", 0o600)
        self.paths = AppPaths(folder / "cfg")
        ClusterStore(self.paths).add(ClusterProfile(name="stuck", **{**self.cluster.profile_fields(),
                                                                     "port": self.path.port}))
        self.paths.known_hosts_file.write_text(f"[127.0.0.1]:{self.path.port} {self.cluster.host_key_pub}\n")
        self.home = home

    def processes(self, word: str) -> list[int]:
        """The cluster user's processes whose arguments mention `word` (ps, as root sees them)."""
        return [pid for pid, argv in user_processes(self.uid).items() if any(word in arg for arg in argv)]

    @property
    def uid(self) -> int:
        return os.stat(self.cluster.home).st_uid

    def keepalives_answered(self) -> int:
        """How many of OpenSSH's keepalive questions sshd's log says it was asked (it answers each)."""
        return self.cluster.log_text().count("keepalive@openssh.com")

    def close(self) -> None:
        self.path.close()


@pytest.fixture
def stuck(testbed, tmp_path, home):
    made = Stuck(testbed, tmp_path, home)
    yield made
    made.path.flow()
    made.close()


def until(predicate, what: str, timeout: float = GUARD) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stall_under_a_long_command(stuck: Stuck, runner, marker: str) -> tuple[list[BaseException], Running]:
    """Run a long command (its arguments hold `marker`) on a thread, make the path stuck once it runs there, and
    return what it raised (a ConnectionFailed, asserted) and the command, for ps."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            runner.run(["sh", "-c", "sleep 600; true", marker], timeout=GUARD)
        except BaseException as exc:
            failure.append(exc)
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    command = Running(stuck.cluster, "a long command", marker, "-c")
    until(command.matching, "the command never started")
    stuck.path.blackhole()
    worker.join(GUARD)
    assert not worker.is_alive(), "the command still waits on a stuck connection"
    assert failure and isinstance(failure[0], ConnectionFailed), failure
    return failure, command


def test_a_command_on_a_connection_that_stops_answering_fails_saying_so(stuck):
    """The questions are asked while all is well (sshd's log), a quiet command is not taken for a stuck one, and
    once the path holds everything back the command fails: the cluster stopped answering, and what ran there
    could not be stopped (it still runs: ps), which the error says."""
    session = session_for(stuck.paths)
    marker = f"/tmp/{unique('stuck')}"
    runner = session.target("stuck").runner
    try:
        assert runner.run(["sh", "-c", "sleep 4; true", marker], timeout=GUARD).ok, "a quiet command is no stall"
        assert stuck.keepalives_answered() >= 2, "it asked while nothing came (sshd answered)"
        failure, command = stall_under_a_long_command(stuck, runner, marker)
        assert "stopped answering" in failure[0].message, failure[0].message
        assert "may still finish there" in left_running(failure[0]), "it says the command could not be stopped"
        assert command.matching(), "the command did run on (nothing could reach it to stop it)"
        assert not runner.connected
    finally:
        kill_all(stuck.processes(marker))
        session.close()



def test_a_cluster_that_answered_before_is_said_to_have_stopped_answering(stuck):
    """T19's LOW: a cluster that worked a minute earlier was called 'not an SSH server, or stuck; check the host
    name and the port'. A new connection to it, accepted but silent, now says it stopped answering."""
    session = session_for(stuck.paths)
    runner = session.target("stuck").runner
    try:
        assert runner.run(["true"], timeout=GUARD).ok
        stuck.path.blackhole()
        runner.close()
        with pytest.raises(ConnectionFailed) as failed:
            runner.run(["true"], timeout=GUARD)
        assert "answered earlier, but has stopped answering" in failed.value.message, failed.value.message
        assert "host name" not in str(failed.value), str(failed.value)
    finally:
        session.close()
    fresh = session_for(stuck.paths)  # a new session never heard it: the words for a wrong host or port stay
    try:
        with pytest.raises(ConnectionFailed) as failed:
            fresh.target("stuck").runner.run(["true"], timeout=GUARD)
        assert "not an SSH server, or it is stuck" in failed.value.message, failed.value.message
    finally:
        fresh.close()

BUILD_SECONDS = 20
SLOW_BUILD = ("import time\n_original_build_wheel = build_wheel\n\n\n"
              "def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n"
              f"    time.sleep({BUILD_SECONDS})\n"
              "    return _original_build_wheel(wheel_directory, config_settings, metadata_directory)\n")


@pytest.fixture
def slow_project(tmp_path_factory):
    """A local project (readable by the cluster's user) whose wheel takes BUILD_SECONDS to build: 'Building
    slowpkg==1.0' as T19 saw it."""
    folder = Path(f"/tmp/{unique('slowsrc')}")
    project = folder / "slowpkg"
    (project / "slowpkg").mkdir(parents=True)
    (project / "pyproject.toml").write_text(_pyproject("slowpkg", "1.0", []))
    (project / "tinybackend.py").write_text(TINYBACKEND + "\n" + SLOW_BUILD)
    (project / "slowpkg" / "__init__.py").write_text(_init_py("slowpkg", "1.0"))
    for where in (folder, project, project / "slowpkg"):
        os.chmod(where, 0o755)
    yield project
    shutil.rmtree(folder, ignore_errors=True)


def freeze(stuck: Stuck, path: str) -> set[str]:
    """`pip freeze` of the environment, asked of its own Python as the cluster's user (not EnvDesk)."""
    done = stuck.cluster.run_as_user(f"{path}/bin/python -m pip freeze --all", check=False)
    assert done.returncode == 0, done.stderr
    return {line.split("==")[0].split(" @ ")[0].strip().lower() for line in done.stdout.splitlines() if line.strip()}


def building(stuck: Stuck, project: Path) -> list[int]:
    return stuck.processes(str(project))


def listed_once_it_answers(stuck: Stuck, project: Path, path: str) -> None:
    """Once the path flows again, the build EnvDesk could not stop has ended there (it finished, or ended with the
    connection sshd then finds gone): the list shows the environment whole (its own pip has the package) or as
    incomplete, never as a healthy half-made one, as the words said ('check the list once it answers')."""
    stuck.path.flow()
    until(lambda: not building(stuck, project), "the build never ended on the cluster")
    again = session_for(stuck.paths)
    try:
        until(lambda: not stuck.processes(path), "something still works in the environment")
        listed = {env.path: env for env in list_environments(again, "stuck").environments}
    finally:
        again.close()
    assert path in listed, "the environment is listed"
    assert listed[path].state in ("ok", "incomplete"), listed[path]
    if listed[path].state == "ok":
        assert "slowpkg" in freeze(stuck, path), "listed ok only when whole"


@pytest.fixture
def stuck_slowly(testbed, tmp_path, home):
    """The stuck cluster whose own questions come only every hour: a Cancel must find out by itself."""
    made = Stuck(testbed, tmp_path, home, interval=3600, count=3)
    yield made
    made.path.flow()
    made.close()


def test_cancel_on_a_stuck_connection_leaves_and_says_the_build_may_still_finish(stuck_slowly, slow_project):
    """T19: Cancel took 40-50 s and said 'Cancelled; nothing half-made left', and the build finished afterwards.
    Now it asks the cluster once whether it answers, leaves saying the build could not be stopped and may still
    finish there, and removes nothing under it; once the path flows, the build does finish there."""
    stuck = stuck_slowly
    session = session_for(stuck.paths)
    progress = Progress()
    name = unique("stuckcreate")
    failure: list[BaseException] = []
    steps: list[str] = []
    progress.on_step = steps.append

    def create() -> None:
        try:
            create_environment(session, "stuck", CreateRequest(name=name, kind="venv",
                                                               packages=[f"slowpkg @ {slow_project.as_uri()}"]),
                               progress)
        except BaseException as exc:
            failure.append(exc)
    worker = threading.Thread(target=create, daemon=True)
    try:
        worker.start()
        until(lambda: building(stuck, slow_project), "the build never started")
        stuck.path.blackhole()
        dialled = stuck.path.connections
        progress.cancel.cancel()
        worker.join(GUARD)
        assert stuck.path.connections == dialled, "the stop waited on the stuck connection, then dialled again"
        assert not worker.is_alive(), "the cancel still waits on a stuck connection"
        assert failure and isinstance(failure[0], Cancelled), failure
        said = failure[0].message
        assert "could not reach stuck" in said and "may still finish there" in said, said
        assert "listed as incomplete" in said, said
        assert not any("Removing" in step for step in steps), steps
        assert building(stuck, slow_project), "the build runs on (nothing could reach it)"
        path = str(stuck.cluster.home) + "/venvs/" + name
        assert os.path.isdir(path), "nothing was removed under the build"
        listed_once_it_answers(stuck, slow_project, path)
    finally:
        kill_all(building(stuck, slow_project))
        session.close()


def test_ctrl_c_on_a_stuck_connection_leaves_and_says_the_build_may_still_finish(stuck_slowly, slow_project):
    """T19: Ctrl-C sat 30 s silent, then 'putting back' (a second Ctrl-C waited as long). Now the command line asks
    the cluster once, leaves with status 130 saying the build could not be stopped and may still finish there, and
    removes nothing under it."""
    stuck = stuck_slowly
    name = unique("stuckcli")
    environ = {**{k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}, "HOME": str(stuck.home)}
    job = subprocess.Popen([*envdesk_command(), "--config-dir", str(stuck.paths.config_dir), "env", "create", "stuck",
                            name, "--kind", "venv", "--package", f"slowpkg @ {slow_project.as_uri()}"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ,
                           start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        until(lambda: building(stuck, slow_project), "the build never started")
        stuck.path.blackhole()
        dialled = stuck.path.connections
        os.killpg(job.pid, signal.SIGINT)  # what Ctrl-C does: to the terminal's foreground process group
        _, said = job.communicate(timeout=GUARD)
        assert stuck.path.connections == dialled, "the stop waited on the stuck connection, then dialled again"
        assert job.returncode == 130, said
        assert "could not reach stuck" in said and "may still finish there" in said, said
        assert "Removing the unfinished" not in said and "listed as incomplete" in said, said
        assert building(stuck, slow_project), "the build runs on (nothing could reach it)"
        path = str(stuck.cluster.home) + "/venvs/" + name
        assert os.path.isdir(path), "nothing was removed under the build"
        listed_once_it_answers(stuck, slow_project, path)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
        kill_all(building(stuck, slow_project))


def test_closing_the_window_on_a_stuck_connection_leaves_its_task_to_end_and_says_so(qtbot, stuck_slowly, capfd):
    """T19: closing the window with a task stuck on such a connection blocked the GUI thread up to 10 s (it waited
    for the cancelled tasks), then cut the connections under them. Now the close returns while the task still runs
    (the task's own state when closeEvent returned: no clock), the task ends on its thread cancelled, saying that
    the command may still finish there (it does still run: ps), its answers reach no deleted window (pytest-qt fails
    a test on any exception raised in a slot), what was left and what it ended as are said on stderr, and the
    connection is closed after it (paramiko's Transport.is_active)."""
    from shiboken6 import delete
    from envdesk.gui.main_window import MainWindow

    stuck = stuck_slowly
    window = MainWindow(stuck.paths)
    window.show()
    marker = f"/tmp/{unique('stuckclose')}"
    runner = window.controller.session.target("stuck").runner
    task = window.controller.start("Run a long command", "stuck", lambda progress: runner.run(
        ["sh", "-c", "sleep 600; true", marker], cancel=progress.cancel, timeout=GUARD))
    command = Running(stuck.cluster, "a long command", marker, "-c")
    try:
        until(command.matching, "the command never started")
        transports = list(runner._hops.transports)  # the connection's own paramiko transports, asked below
        stuck.path.blackhole()
        window.close()  # as the window's close button, once the person said to stop them
        when_closed = (task.state, task.done.is_set())
        assert when_closed == ("running", False), "the close waited for the task stuck on the connection"
        assert "Run a long command (stuck)" in capfd.readouterr().err, "what was left running is said"
        delete(window)
        until(task.done.is_set, "the task never ended")
        qtbot.wait(200)  # anything queued for the deleted window is delivered (to nobody) now
        assert task.state == "cancelled", task.state
        assert "may still finish there" in task.error.message, task.error.message
        until(lambda: not any(transport.is_active() for transport in transports), "the connection stayed open")
        said = capfd.readouterr().err
        assert "Run a long command (stuck)" in said and "may still finish there" in said, said
        assert command.matching(), "the command did run on (nothing could reach it to stop it)"
    finally:
        kill_all(stuck.processes(marker))


def test_a_cancelled_row_on_a_stuck_connection_says_the_command_may_still_finish(qtbot, stuck_slowly):
    """T19: the window's row said 'Cancelled; nothing half-made left' while the build went on on the cluster. Now
    it says what the backend's Cancelled says: the command could not be stopped and may still finish there (it
    does still run: ps)."""
    from envdesk.gui.controller import AppController
    from envdesk.gui.prompter import QtPrompter

    stuck = stuck_slowly
    controller = AppController(stuck.paths, QtPrompter())
    marker = f"/tmp/{unique('stuckrow')}"
    runner = controller.session.target("stuck").runner
    task = controller.start("Run a long command", "stuck", lambda progress: runner.run(
        ["sh", "-c", "sleep 600; true", marker], cancel=progress.cancel, timeout=GUARD))
    command = Running(stuck.cluster, "a long command", marker, "-c")
    try:
        until(command.matching, "the command never started")
        stuck.path.blackhole()
        row = controller.operations.rows[-1]
        task.cancel()
        qtbot.waitUntil(lambda: not row.running, timeout=GUARD * 1000)
        assert row.state == "cancelled", row.state
        assert "may still finish there" in row.latest and "nothing half-made" not in row.latest, row.latest
        assert command.matching(), "the command did run on (nothing could reach it to stop it)"
    finally:
        kill_all(stuck.processes(marker))
        controller.shutdown()


def test_a_command_through_the_kept_connection_says_the_cluster_stopped_answering(stuck):
    """T19: through the keeper (`envdesk cluster connect`), a stall was said as 'The connection to stuck broke
    while running a command. Check your network connection'. Now the command's error says what the direct path
    says: the cluster stopped answering, and what to check; the command still runs there (ps)."""
    record, started = kept_connection.connect(stuck.paths, ClusterStore(stuck.paths).get("stuck"), NoPrompter(), 5)
    assert started
    session = session_for(stuck.paths)
    runner = session.target("stuck").runner
    marker = f"/tmp/{unique('keptstuck')}"
    try:
        assert runner.run(["true"], timeout=GUARD).ok and runner.through_keeper, "it goes through the keeper"
        failure, command = stall_under_a_long_command(stuck, runner, marker)
        assert "stopped answering" in failure[0].message and "broke" not in failure[0].message, failure[0].message
        assert "may be stuck" in failure[0].hint, failure[0].hint
        assert command.matching(), "the command did run on (nothing could reach it to stop it)"
    finally:
        kill_all(stuck.processes(marker))
        session.close()
        stuck.path.flow()
        kept_connection.stop(stuck.paths, "stuck")


def test_the_listing_agent_on_a_stuck_connection_says_the_cluster_stopped_answering(stuck):
    """T19/R15-6: the window's listing agent (a helper kept running on the cluster) said 'The running helper on
    stuck ended' when the path stalled under it, or the listing dialled the stuck cluster again to say it. Now the
    listing answered by it says the cluster stopped answering, and what to check, without dialling again (the
    stuck proxy's count of connections)."""
    session = Session(stuck.paths, NoPrompter(), keep_agents=True)
    try:
        from envdesk.backend import agent_session
        list_environments(session, "stuck")
        list_environments(session, "stuck")
        assert agent_session.server_for(session.target("stuck").runner).started == 1, "the listing agent runs there"
        stuck.path.blackhole()
        dialled = stuck.path.connections
        with pytest.raises(ConnectionFailed) as listed:
            list_environments(session, "stuck")
        assert "stopped answering" in listed.value.message, listed.value.message
        assert "may be stuck" in listed.value.hint, listed.value.hint
        assert stuck.path.connections == dialled, "the listing dialled the stuck cluster again"
    finally:
        session.close()
