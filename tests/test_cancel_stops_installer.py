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

    def on_step(text: str) -> None:
        if text.startswith("Installing packages"):
            threading.Timer(2.0, progress.cancel.cancel).start()  # the build is sleeping by then

    progress.on_step = on_step
    with pytest.raises(Cancelled):
        update_environment(session, "beta", name, Change(add=[f"{project.name} @ file://{project.path}"]), progress)
    left = beta.run_as_user("pgrep -u \"$(id -u)\" -f '_in_process.py build_wheel' -a || true").stdout.strip()
    leftovers = [line for line in left.splitlines() if "pgrep" not in line]
    assert leftovers == [], f"the installer kept running after Cancel: {leftovers}"
    time.sleep(9)  # longer than the build would have taken
    after = update_environment(session, "beta", name, Change(remove=["nothing-installed"]))
    assert packages_of(after.environment) == before
