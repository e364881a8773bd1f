"""A real Secret Service for the tests: gnome-keyring on a private D-Bus session bus, as a desktop has."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import keyring
import pytest

PASSWORD = b"envdesk-test-keyring"


def start_secret_service(folder: Path):
    """(processes, environment) of a session bus and an unlocked gnome-keyring, or a reason they cannot run."""
    missing = [tool for tool in ("dbus-daemon", "gnome-keyring-daemon") if shutil.which(tool) is None]
    if missing:
        return None, f"not installed: {', '.join(missing)} (tests/system-deps.sh installs them)"
    runtime = folder / "runtime"
    runtime.mkdir(mode=0o700, parents=True)
    env = {**os.environ, "HOME": str(folder), "XDG_RUNTIME_DIR": str(runtime),
           "XDG_DATA_HOME": str(folder / "data")}
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, env=env)
    address = bus.stdout.readline().strip() if bus.stdout else ""
    env["DBUS_SESSION_BUS_ADDRESS"] = address
    daemon = subprocess.Popen(["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    assert daemon.stdin is not None
    daemon.stdin.write(PASSWORD)
    daemon.stdin.close()
    return (bus, daemon), env


def _ready(backend) -> Exception | None:
    """None once the keyring stores and returns a secret, else what went wrong."""
    try:
        backend.set_password("envdesk-probe", "ready", "yes")
        return None if backend.get_password("envdesk-probe", "ready") == "yes" else RuntimeError("not stored")
    except Exception as exc:  # the daemon is not on the bus yet, or its collection not made
        return exc


@pytest.fixture
def secret_service(tmp_path, monkeypatch):
    """keyring's SecretService backend, talking to a real gnome-keyring on a bus of this test's own."""
    from keyring.backends import SecretService
    last: object = None
    for attempt in range(3):  # on a busy machine a daemon now and then never comes up: start another
        processes, env = start_secret_service(tmp_path / f"desktop{attempt}")
        if processes is None:
            if os.environ.get("CI") == "true":
                pytest.fail(f"the Secret Service cannot start under CI: {env}", pytrace=False)
            pytest.skip(f"no Secret Service here: {env}")
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", env["DBUS_SESSION_BUS_ADDRESS"])
        backend = SecretService.Keyring()
        deadline = time.monotonic() + 20
        while (last := _ready(backend)) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        if last is None:
            break
        for process in reversed(processes):
            process.terminate()
            process.wait(10)
    else:
        pytest.fail(f"gnome-keyring did not answer on its bus in three tries ({last!r})", pytrace=False)
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)
        for process in reversed(processes):
            process.terminate()
            process.wait(10)
