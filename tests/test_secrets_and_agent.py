"""Secrets: remembered in a real keyring backend (never in EnvDesk's files), and keys from a real ssh-agent."""
from __future__ import annotations

import subprocess

import keyring
import pytest
from keyrings.alt.file import PlaintextKeyring

from envdesk.backend import secrets
from envdesk_fixtures import ScriptedPrompter, make_config, running_ssh_agent, session_for


@pytest.fixture
def plaintext_keyring(tmp_path):
    """keyrings.alt's file backend: what EnvDesk must refuse to keep secrets in."""
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring.cfg")
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_password_remembered_in_the_keyring_only(testbed, tmp_path, home, secret_service):
    cluster = testbed.clusters["password"]
    paths = make_config(tmp_path / "cfg", testbed, ["password"])
    asking = ScriptedPrompter(answer=lambda request: cluster.password, remember=True)
    session_for(paths, asking).target("password").runner.connect()
    assert len(asking.asked) == 1
    subject = f"password:{cluster.user}@{cluster.host}:{cluster.port}"
    assert secret_service.get_password("envdesk", subject) == cluster.password, "remembered in the keyring"
    silent = ScriptedPrompter()  # declines everything: the keyring must be enough now
    assert session_for(paths, silent).target("password").runner.run(["whoami"]).stdout.strip() == cluster.user
    assert silent.asked == []
    for path in (tmp_path / "cfg").rglob("*"):
        if path.is_file():
            assert cluster.password not in path.read_text(errors="replace"), f"the password leaked into {path}"


def test_a_stale_remembered_password_is_forgotten_and_asked_again(testbed, tmp_path, home, secret_service):
    cluster = testbed.clusters["password"]
    paths = make_config(tmp_path / "cfg", testbed, ["password"])
    subject = f"{cluster.user}@{cluster.host}:{cluster.port}"
    secrets.remember("password", subject, "an old password")
    prompter = ScriptedPrompter(answer=lambda request: cluster.password)
    session_for(paths, prompter).target("password").runner.connect()
    assert [r.kind for r in prompter.asked] == ["password"]
    assert secrets.recall("password", subject) is None


def test_keys_from_a_running_ssh_agent(testbed, tmp_path, home, monkeypatch):
    socket_path = tmp_path / "agent.sock"
    with running_ssh_agent(socket_path) as env:
        subprocess.run(["ssh-add", str(testbed.client_key)], env=env, check=True, capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(socket_path))
        paths = make_config(tmp_path / "cfg", testbed, ["beta"], beta={"identity_file": None})
        prompter = ScriptedPrompter()
        runner = session_for(paths, prompter).target("beta").runner
        assert runner.run(["whoami"]).stdout.strip() == testbed.clusters["beta"].user
        assert prompter.asked == []


def test_a_plaintext_file_keyring_is_never_used_nor_offered(testbed, tmp_path, home, plaintext_keyring):
    """With only keyrings.alt's file backend, nothing is written to it and remembering is not offered."""
    from envdesk.backend.prompts import SecretRequest
    cluster = testbed.clusters["password"]
    paths = make_config(tmp_path / "cfg", testbed, ["password"])
    assert secrets.keyring_problem() is not None
    assert not SecretRequest("password", "password", "Password:").can_remember
    asking = ScriptedPrompter(answer=lambda request: cluster.password, remember=True)
    session_for(paths, asking).target("password").runner.connect()
    assert secrets.remember("password", "x", "s3cret") is False
    keyring_file = tmp_path / "keyring.cfg"
    assert not keyring_file.exists() or cluster.password not in keyring_file.read_text(), "written in clear"


def test_the_login_dialog_never_asks_the_keyring_on_the_windows_thread(qtbot, testbed, tmp_path, home,
                                                                       monkeypatch):
    """Whether a keyring exists is found by the worker that logs in (asking may wait on D-Bus)."""
    import threading

    from envdesk.gui.main_window import MainWindow
    from envdesk.gui.prompter import LoginDialog
    asked_on: list[str] = []
    real = secrets._backend  # every question to the keyring goes through it

    def watched():
        asked_on.append(threading.current_thread().name)
        return real()

    monkeypatch.setattr(secrets, "_backend", watched)
    window = MainWindow(make_config(tmp_path / "cfg", testbed, ["password"]))
    qtbot.addWidget(window)
    shown: list[LoginDialog] = []
    window.prompter.asked.connect(lambda dialog: (shown.append(dialog), dialog.reject()))
    task = window.controller.connect_target("password")
    qtbot.waitUntil(lambda: task.done.is_set(), timeout=120_000)
    assert shown and isinstance(shown[0], LoginDialog)
    assert asked_on and threading.main_thread().name not in asked_on, asked_on
