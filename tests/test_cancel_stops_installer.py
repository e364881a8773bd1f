"""Cancel ends the remote installer before the rollback starts: nothing keeps running behind EnvDesk's back.

The package being installed has a build step that ignores SIGTERM and takes a while, like a
compile that does not stop at once. After Cancel, no process of the install may be left, and
a while later the environment still holds exactly what it held before.
"""
from __future__ import annotations

import shlex
import threading
import time
import uuid

import pytest

from envdesk.backend.errors import Cancelled
from envdesk.backend.operations.common import Progress
from envdesk.backend.operations.create import CreateRequest, create_environment
from envdesk.backend.operations.update import Change, update_environment
from envdesk.backend.protocol import LOCK_SUFFIX
from envdesk_fixtures import packages_of, unique
from testbed.projects import make_project

STUBBORN = ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "_original_build_wheel = build_wheel\n\n\n"
            "def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n"
            "    time.sleep(8)  # envdesk-stubborn-build\n"
            "    return _original_build_wheel(wheel_directory, config_settings, metadata_directory)\n")


def test_cancel_waits_for_the_remote_installer_to_end_before_rolling_back(testbed, session):
    beta = testbed.clusters["beta"]
    project = make_project(beta, f"slow{uuid.uuid4().hex[:5]}", "1.0", git=False)
    beta.run_as_user(f"cat >> {shlex.quote(project.path)}/tinybackend.py", input=STUBBORN)
    name = unique("stop")
    before = packages_of(create_environment(session, "beta", CreateRequest(name=name, packages=["tinygamma"]))
                         .environment)
    progress = Progress()
    steps: list[str] = []

    def on_step(text: str) -> None:
        steps.append(text)
        if text.startswith("Installing packages"):
            threading.Timer(2.0, progress.cancel.cancel).start()  # the build is sleeping by then

    progress.on_step = on_step
    with pytest.raises(Cancelled):
        update_environment(session, "beta", name, Change(add=[f"{project.name} @ file://{project.path}"]), progress)
    assert "The change was stopped: putting the previous packages back" in steps, steps  # not "failed"
    left = beta.run_as_user("pgrep -u \"$(id -u)\" -f '_in_process.py build_wheel' -a || true").stdout.strip()
    leftovers = [line for line in left.splitlines() if "pgrep" not in line]
    assert leftovers == [], f"the installer kept running after Cancel: {leftovers}"
    time.sleep(9)  # longer than the build would have taken
    after = update_environment(session, "beta", name, Change(add=[f"tinygamma=={before['tinygamma']}"]))
    assert packages_of(after.environment) == before


def test_cancel_stops_a_create_whose_install_runs_in_the_same_command_as_its_begin_and_finish(testbed, session):
    """A create is one command (its begin, the installer, its finish): Cancel while it installs still ends the
    installer, and the half-made environment and its lock are gone, as the sshd log, pgrep and the disk say."""
    beta = testbed.clusters["beta"]
    project = make_project(beta, f"slow{uuid.uuid4().hex[:5]}", "1.0", git=False)
    beta.run_as_user(f"cat >> {shlex.quote(project.path)}/tinybackend.py", input=STUBBORN)
    root = beta.home / "cancel-create"
    create_environment(session, "beta", CreateRequest(name=unique("warm"), root=str(root)))  # beta keeps the agent
    name = unique("stop")
    progress = Progress()
    steps: list[str] = []

    def on_step(text: str) -> None:
        steps.append(text)
        if text.startswith("Installing packages"):
            threading.Timer(2.0, progress.cancel.cancel).start()  # the build is sleeping by then

    progress.on_step = on_step
    before = len(beta.session_commands())
    with pytest.raises(Cancelled):
        create_environment(session, "beta", CreateRequest(name=name, root=str(root), modules=list(beta.python_modules),
                                                          packages=[f"{project.name} @ file://{project.path}"]),
                           progress)
    commands = beta.session_commands()[before:]
    assert "Recording how the environment was made" not in steps
    logins = [command for command in commands if command.startswith("exec bash --login")]   # not the kill's sh
    assert len(logins) == 3, logins     # the modules checked, the create's one command, the undo
    left = beta.run_as_user("pgrep -u \"$(id -u)\" -f '_in_process.py build_wheel' -a || true").stdout.strip()
    leftovers = [line for line in left.splitlines() if "pgrep" not in line]
    assert leftovers == [], f"the installer kept running after Cancel: {leftovers}"
    assert not (root / name).exists() and not (root / f"{name}{LOCK_SUFFIX}").exists()
    time.sleep(9)  # longer than the build would have taken: nothing comes back
    assert not (root / name).exists() and not (root / f"{name}{LOCK_SUFFIX}").exists()
