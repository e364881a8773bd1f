"""Shared fixtures: the test bed of fake HPC clusters (see tests/testbed/)."""

from __future__ import annotations

import os

import pytest

# Qt runs without a display in tests; set before any QApplication exists. Its screen is as large as the
# screenshots' (offscreen's own is 800x800, smaller than the window's first size). Qt splits the variable at
# every ':', so a Windows path (C:\...) cannot be given: there the screen stays offscreen's own.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen" if ":" in os.path.abspath(__file__) else "offscreen:configfile="
                      + os.path.join(os.path.dirname(os.path.abspath(__file__)), "offscreen-1600x1000.json"))

from secret_service import secret_service  # noqa: E402,F401  (a fixture for every test module)
from testbed import TestBed, TestBedUnavailable, tool_settings  # noqa: E402

# No pip or uv setting of this machine's reaches the tests (see testbed/tool_settings.py).
tool_settings.isolate(os.environ)


@pytest.fixture(scope="session")
def testbed():
    """Fake clusters alpha, beta, otp and password, up for the whole session.

    Skipped when this machine cannot run them (not root, no sshd, no Lmod...),
    except under CI (CI=true), where that is a failure.
    """
    try:
        bed = TestBed.start()
    except TestBedUnavailable as exc:
        unavailable = str(exc)
    else:
        unavailable = None
    if unavailable is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the test bed cannot start under CI: {unavailable}", pytrace=False)
        pytest.skip(f"the test bed cannot start here: {unavailable}")
    try:
        yield bed
    finally:
        bed.close()


@pytest.fixture(scope="session")
def slurm(testbed):
    """A real single-node Slurm (munged, slurmctld, slurmd; partition `debug`) the test-bed users submit to, up
    for the rest of the session once a test asks for it; see testbed/slurm.py.

    Skipped when this machine cannot run it, except under CI (CI=true), where that is a failure. One test
    session of a machine runs it at a time (so under pytest-xdist, keep the tests that use it in one file).
    """
    from testbed.slurm import FakeSlurm, SlurmUnavailable
    try:
        started = FakeSlurm.start(testbed.base / "slurm")
    except (SlurmUnavailable, RuntimeError) as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the test bed's Slurm cannot start under CI: {exc}", pytrace=False)
        pytest.skip(f"the test bed's Slurm cannot start here: {exc}")
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def hier(testbed):
    """The `hier` cluster, whose Python modules sit behind compilers in a real Lmod hierarchy, with uv in
    ~/.local/bin (see TestBed.hierarchy_cluster), up for the rest of the session once a test asks for it."""
    return testbed.hierarchy_cluster()


@pytest.fixture
def sample_envs(testbed):
    """The pre-made environments (made once per session); see testbed/sample_envs.py."""
    return testbed.make_sample_envs()


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A HOME without the machine user's ~/.ssh, so only what the test sets up counts."""
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return folder


@pytest.fixture
def session(testbed, tmp_path, home):
    """An EnvDesk session with the alpha and beta clusters configured and trusted."""
    from envdesk_fixtures import make_config, session_for
    opened = session_for(make_config(tmp_path / "cfg", testbed, ["alpha", "beta"]))
    yield opened
    opened.close()


def _gui_thread_collector():
    """The collector a window's tasks installed in this process (gui_thread_collector), if any and still there."""
    import sys
    module = sys.modules.get("envdesk.gui.gui_thread_collector")
    if module is None or module._installed is None:
        return None
    from shiboken6 import isValid
    return module._installed if isValid(module._installed) else None


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item):
    """Once a window's tasks turned automatic collection over to the GUI thread's timer, the timer runs only while
    a test spins Qt's event loop: between tests, what is due is collected here, on the main thread, as it would."""
    collector = _gui_thread_collector()
    if collector is not None:
        collector.collect_due()


def pytest_sessionfinish(session):
    """What is left is collected while Qt's application still exists, not by Python's exit after it is gone."""
    if _gui_thread_collector() is not None:
        import gc
        gc.collect()
