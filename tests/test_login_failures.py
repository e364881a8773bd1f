"""Login failures (issue 9): a wrong password, a wrong one-time code, a key the server does not accept, a wrong
key passphrase, an ssh-agent with no keys.

Each is tried through the backend, with a prompter that answers wrong every time and counts the questions, and
through `envdesk cluster test NAME` answering on a real pseudo-terminal. Every time: one plain message saying
what failed and what to do (no traceback, no paramiko names), at most three questions, as many failed attempts
in the sshd's own log (OpenSSH counts, not EnvDesk), one connection only, and afterwards a correct login works
at once: nothing wrong is remembered or retried. A server that never stops asking is cut off too.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import paramiko
import pytest

from envdesk.backend import secrets
from envdesk.backend.errors import AuthenticationFailed, EnvDeskError, LoginCancelled
from envdesk.backend.ssh_auth import MAX_QUESTIONS, Authenticator, KeyCache
from envdesk.backend.ssh_config import Hop
from envdesk_fixtures import (ScriptedPrompter, cli_on_a_terminal, make_config, run_cli, running_ssh_agent,
                              session_for)
from testbed import hotp
from testbed.bed import OTP_WINDOW

TRIES = 3  # OpenSSH's NumberOfPasswordPrompts, the bound EnvDesk keeps too
_NOT_PLAIN = re.compile(r"Traceback|unexpected error|paramiko|SSHException|AuthenticationException|"
                        r"BadAuthenticationType|PasswordRequired")


# -- what sshd saw ---------------------------------------------------------------------------

class SshdLog:
    """What one cluster's sshd logged from now on: failed attempts and connections, in OpenSSH's words."""

    def __init__(self, cluster) -> None:
        self.cluster = cluster
        self.start = len(cluster.log_text())

    def lines(self) -> list[str]:
        return self.cluster.log_text()[self.start:].splitlines()

    def failed(self, method: str = "") -> list[str]:
        """sshd's "Failed <method> for USER from ..." lines."""
        return [line for line in self.lines()
                if line.startswith(f"Failed {method}") and f" for {self.cluster.user} from " in line]

    def failed_once_logged(self, method: str, expected: int) -> list[str]:
        """failed(method), once sshd has logged `expected` of them or 30 s passed: sshd logs a failure
        after PAM's own delay, which may end after the client has already given up."""
        deadline = time.monotonic() + 30
        while len(self.failed(method)) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.failed(method)

    def connections(self) -> int:
        return sum(1 for line in self.lines() if line.startswith("Connection from "))


def assert_plain(text: str) -> None:
    assert not _NOT_PLAIN.search(text), text


def login_fails(paths, name: str, prompter) -> AuthenticationFailed:
    with pytest.raises(AuthenticationFailed) as info:
        session_for(paths, prompter).target(name).runner.connect()
    assert not isinstance(info.value, LoginCancelled), info.value
    assert_plain(str(info.value))
    return info.value


def logs_in(paths, name: str, prompter) -> None:
    session = session_for(paths, prompter)
    try:
        session.target(name).runner.connect()
    finally:
        session.close()


def openssh_fingerprint(public_key: Path) -> str:
    """The key's fingerprint as ssh-keygen prints it (OpenSSH is the referee)."""
    return subprocess.run(["ssh-keygen", "-lf", str(public_key)], capture_output=True, text=True,
                          check=True).stdout.split()[1]


def wrong_code(cluster) -> str:
    """Six digits that pam_oath accepts at no step of its window (a random guess may, once in a thousand)."""
    now = int(time.time() // cluster.totp_period)
    valid = {hotp(cluster.totp_secret, step) for step in range(now - OTP_WINDOW - 2, now + OTP_WINDOW + 3)}
    return next(code for code in (f"{d}" * 6 for d in range(10)) if code not in valid)


@pytest.fixture
def stray_key(tmp_path) -> Path:
    """A fresh key pair that no test-bed user has in authorized_keys."""
    path = tmp_path / "stray_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "stray", "-f", str(path)], check=True)
    return path


@pytest.fixture
def empty_agent(tmp_path, monkeypatch):
    """A real ssh-agent holding no keys, in SSH_AUTH_SOCK; yields its socket path."""
    socket_path = tmp_path / "agent.sock"
    with running_ssh_agent(socket_path) as env:
        listed = subprocess.run(["ssh-add", "-l"], capture_output=True, text=True, env=env)
        assert listed.returncode == 1 and "no identities" in listed.stdout, "ssh-add says the agent is not empty"
        monkeypatch.setenv("SSH_AUTH_SOCK", str(socket_path))
        yield socket_path


# -- through the backend ---------------------------------------------------------------------

def test_a_wrong_password_is_asked_three_times_then_stops(testbed, tmp_path, home, secret_service):
    cluster = testbed.clusters["password"]
    paths = make_config(tmp_path / "cfg", testbed, ["password"])
    log = SshdLog(cluster)
    wrong = ScriptedPrompter(answer=lambda request: "not-the-password", remember=True)
    failure = login_fails(paths, "password", wrong)
    assert [r.kind for r in wrong.asked] == ["password"] * TRIES
    assert f"the password was refused ({TRIES} tries)" in failure.message
    assert f"port {cluster.port}" in failure.message and "Check the username and the password" in failure.hint
    assert "not-the-password" not in str(failure)
    assert len(log.failed_once_logged("keyboard-interactive", TRIES)) == TRIES and log.connections() == 1
    subject = f"password:{cluster.user}@{cluster.host}:{cluster.port}"
    assert secret_service.get_password("envdesk", subject) is None, "a refused password was remembered"
    right = ScriptedPrompter(answer=lambda request: cluster.password)
    logs_in(paths, "password", right)
    assert len(right.asked) == 1, "a correct password must work at once: no lock-out"


def test_a_remembered_password_that_became_wrong_is_tried_once_only(testbed, tmp_path, home, secret_service):
    cluster = testbed.clusters["password"]
    paths = make_config(tmp_path / "cfg", testbed, ["password"])
    subject = f"{cluster.user}@{cluster.host}:{cluster.port}"
    secrets.remember("password", subject, "last year's password")
    log = SshdLog(cluster)
    for _ in range(3):  # unattended refreshes: nobody there to answer
        with pytest.raises(LoginCancelled):
            session_for(paths, ScriptedPrompter()).target("password").runner.connect()
    assert len(log.failed_once_logged("keyboard-interactive", 1)) == 1, "the stale password was sent again"
    assert secrets.recall("password", subject) is None
    right = ScriptedPrompter(answer=lambda request: cluster.password)
    logs_in(paths, "password", right)
    assert len(right.asked) == 1


def test_a_wrong_one_time_code_is_asked_three_times_then_stops(testbed, tmp_path, home):
    cluster = testbed.clusters["otp"]
    paths = make_config(tmp_path / "cfg", testbed, ["otp"])
    code = wrong_code(cluster)
    log = SshdLog(cluster)
    wrong = ScriptedPrompter(answer=lambda request: code)
    failure = login_fails(paths, "otp", wrong)
    assert [r.kind for r in wrong.asked] == ["code"] * TRIES
    assert f"the one-time code was refused ({TRIES} tries)" in failure.message
    assert "fresh code" in failure.hint and "password" not in failure.message
    assert len(log.failed_once_logged("keyboard-interactive", TRIES)) == TRIES and log.connections() == 1
    assert len([line for line in log.lines() if line.startswith("Accepted publickey")]) <= 1
    right = ScriptedPrompter(answer=lambda request: cluster.totp_now())
    logs_in(paths, "otp", right)
    assert [r.kind for r in right.asked] == ["code"]


def test_a_key_the_server_does_not_accept(testbed, tmp_path, home, stray_key):
    cluster = testbed.clusters["alpha"]
    paths = make_config(tmp_path / "cfg", testbed, ["alpha"], alpha={"identity_file": str(stray_key)})
    log = SshdLog(cluster)
    prompter = ScriptedPrompter()
    failure = login_fails(paths, "alpha", prompter)
    assert prompter.asked == []
    assert f"does not accept the key {stray_key}" in failure.message
    assert "authorized_keys" in failure.hint
    refused = log.failed("publickey")
    assert len(refused) == 1 and log.connections() == 1
    assert refused[0].endswith(openssh_fingerprint(stray_key.with_name(stray_key.name + ".pub")))
    logs_in(make_config(tmp_path / "cfg2", testbed, ["alpha"]), "alpha", ScriptedPrompter())


def test_a_wrong_passphrase_is_asked_three_times_and_the_key_never_sent(testbed, tmp_path, home):
    cluster = testbed.clusters["alpha"]
    key = testbed.passphrase_key
    wrong_check = subprocess.run(["ssh-keygen", "-y", "-P", "not the passphrase", "-f", str(key)],
                                 capture_output=True, text=True)
    assert wrong_check.returncode != 0, "ssh-keygen opened the key with the wrong passphrase"
    paths = make_config(tmp_path / "cfg", testbed, ["alpha"], alpha={"identity_file": str(key)})
    log = SshdLog(cluster)
    wrong = ScriptedPrompter(answer=lambda request: "not the passphrase", remember=True)
    failure = login_fails(paths, "alpha", wrong)
    assert [r.kind for r in wrong.asked] == ["passphrase"] * TRIES, "each answer must be tried, and no more asked"
    assert f"the passphrase for the key {key} was wrong ({TRIES} tries)" in failure.message
    assert "not the cluster's password" in failure.hint
    assert log.failed() == [] and log.connections() == 1
    right = ScriptedPrompter(answer=lambda request: testbed.passphrase)
    logs_in(paths, "alpha", right)
    assert [r.kind for r in right.asked] == ["passphrase"]


def test_an_ssh_agent_with_no_keys(testbed, tmp_path, home, empty_agent):
    cluster = testbed.clusters["beta"]
    paths = make_config(tmp_path / "cfg", testbed, ["beta"], beta={"identity_file": None})
    log = SshdLog(cluster)
    prompter = ScriptedPrompter()
    failure = login_fails(paths, "beta", prompter)
    assert prompter.asked == []
    assert "the ssh-agent holds no keys" in failure.message and "no key file in ~/.ssh" in failure.message
    assert "ssh-add" in failure.hint
    assert log.failed() == [] and log.connections() == 1
    env = {**os.environ, "SSH_AUTH_SOCK": str(empty_agent)}
    subprocess.run(["ssh-add", str(testbed.client_key)], env=env, check=True, capture_output=True)
    logs_in(paths, "beta", prompter)
    assert prompter.asked == []


# -- a server that never stops asking --------------------------------------------------------

class _AsksForever(paramiko.ServerInterface):
    """A real SSH server (paramiko's) whose keyboard-interactive login asks for a password again and again."""

    def __init__(self) -> None:
        self.questions = 0

    def get_allowed_auths(self, username: str) -> str:
        return "keyboard-interactive"

    def _query(self) -> paramiko.InteractiveQuery:
        self.questions += 1
        return paramiko.InteractiveQuery("", "", ("Password: ", False))

    def check_auth_interactive(self, username, submethods):
        return self._query()

    def check_auth_interactive_response(self, responses):
        return self._query()


def test_a_server_that_never_stops_asking_is_cut_off(tmp_path):
    server_sock, client_sock = socket.socketpair()
    server = paramiko.Transport(server_sock)
    server.add_server_key(paramiko.Ed25519Key.from_private_key_file(str(_host_key(tmp_path))))
    interface = _AsksForever()
    server.start_server(event=threading.Event(), server=interface)  # returns at once: the client runs below
    client = paramiko.Transport(client_sock)
    client.start_client(timeout=30)
    stop_at = MAX_QUESTIONS * 5  # the prompter declines then, so the test ends even if EnvDesk never stops
    prompter = ScriptedPrompter(answer=lambda request: None if len(prompter.asked) > stop_at else "again")
    hop = Hop("127.0.0.1", 22, "someone")
    try:
        with pytest.raises(EnvDeskError) as info:
            Authenticator("loop", hop, prompter, KeyCache(), use_agent=False).authenticate(client)
    finally:
        client.close()
        server.close()
    assert len(prompter.asked) == MAX_QUESTIONS
    assert not isinstance(info.value, LoginCancelled) and "kept asking" in info.value.message
    assert_plain(str(info.value))


def _host_key(folder: Path) -> Path:
    path = folder / "host_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


# -- through the CLI, answering on a terminal ------------------------------------------------

@pytest.mark.parametrize("case", ["password", "code", "refused key", "passphrase", "empty agent"])
def test_cluster_test_on_a_terminal_says_what_failed_and_stops(case, testbed, tmp_path, home, stray_key,
                                                                empty_agent):
    # cluster, profile changes, what is typed, what the message says, prompts shown, sshd's failed attempts
    name, overrides, typed, phrase, asked, failed = {
        "password": ("password", {}, "not-the-password", f"the password was refused ({TRIES} tries)", TRIES,
                     TRIES),
        "code": ("otp", {}, wrong_code(testbed.clusters["otp"]), "the one-time code was refused", TRIES, TRIES),
        "refused key": ("alpha", {"identity_file": str(stray_key)}, "", f"does not accept the key {stray_key}",
                        0, 1),
        "passphrase": ("alpha", {"identity_file": str(testbed.passphrase_key)}, "not the passphrase",
                       f"the passphrase for the key {testbed.passphrase_key} was wrong", TRIES, 0),
        "empty agent": ("beta", {"identity_file": None}, "", "the ssh-agent holds no keys", 0, 0),
    }[case]
    cluster = testbed.clusters[name]
    config = tmp_path / "cfg"
    make_config(config, testbed, [name], **{name: overrides})
    # every case runs with a real, empty ssh-agent in SSH_AUTH_SOCK, as on many laptops
    log = SshdLog(cluster)
    status, transcript, prompts = cli_on_a_terminal("cluster", "test", name, config=config, home=home,
                                                    answer=lambda prompt: typed,
                                                    env={"SSH_AUTH_SOCK": str(empty_agent)})
    assert status == 1, transcript
    assert "Login FAILED" in transcript and phrase in transcript, transcript
    assert_plain(transcript)
    assert len(prompts) == asked, prompts
    if typed:
        assert typed not in transcript, "a typed secret was echoed or printed"
    assert len(log.failed_once_logged("", failed)) == failed and log.connections() == 1, log.lines()


def test_the_terminal_driver_types_a_right_password(testbed, tmp_path, home):
    """The terminal above really answers: the same driver with the right password logs in."""
    cluster = testbed.clusters["password"]
    config = tmp_path / "cfg"
    make_config(config, testbed, ["password"])
    status, transcript, prompts = cli_on_a_terminal("cluster", "test", "password", config=config, home=home,
                                                    answer=lambda prompt: cluster.password)
    assert status == 0 and "Connection works." in transcript, transcript
    assert len(prompts) == 1 and cluster.password not in transcript



def test_a_code_asked_with_no_terminal_to_type_it_says_so(testbed, tmp_path):
    """A user trial's `cluster test` of a cluster asking a one-time code, with input not a terminal, said only
    'Login … was cancelled'. The command now says what was asked and why it could not be typed."""
    paths = make_config(tmp_path / "cfg", testbed, ["otp"])
    home = tmp_path / "home"
    home.mkdir()
    result = run_cli("cluster", "test", "otp", config=paths.config_dir, home=home)  # stdin: /dev/null
    assert result.returncode != 0
    assert "one-time code cannot be typed" in result.stderr and "not a terminal" in result.stderr, result.stderr


def test_a_passphrase_asked_with_no_terminal_names_the_ssh_agent_as_the_way_for_scripts(testbed, tmp_path):
    """T28: a script's login with a passphrase-protected key said it could not ask, and only that. The agent,
    which holds the key unlocked, is how a script logs in with such a key (as OpenSSH's BatchMode does)."""
    paths = make_config(tmp_path / "cfg", testbed, ["alpha"],
                        alpha={"identity_file": str(testbed.passphrase_key)})
    home = tmp_path / "home"
    home.mkdir()
    result = run_cli("cluster", "test", "alpha", config=paths.config_dir, home=home)  # stdin: /dev/null
    assert result.returncode != 0
    assert "key's passphrase cannot be typed" in result.stderr and "ssh-add" in result.stderr, result.stderr


def test_a_key_given_to_a_preset_that_logs_in_by_password_is_used(testbed, tmp_path, home):
    """T20: `cluster add --preset hpc2n --identity-file KEY` kept the preset's password login, so no key was offered
    and the login failed; the hint said to set the login method to key, which `cluster edit` could not do. The
    referee: sshd's own log accepting the key."""
    from envdesk.backend.paths import AppPaths
    cluster = testbed.clusters["alpha"]
    config = tmp_path / "cfg"

    def trusted() -> None:
        with open(AppPaths(config).known_hosts_file, "a") as handle:
            handle.write(cluster.known_hosts_line() + "\n")

    def accepted(log: SshdLog) -> list[str]:
        return [line for line in log.lines() if line.startswith(f"Accepted publickey for {cluster.user} ")]

    added = run_cli("cluster", "add", "keb", "--preset", "hpc2n", "--user", cluster.user, "--host", cluster.host,
                    "--port", str(cluster.port), "--identity-file", str(testbed.client_key), config=config, home=home)
    assert added.returncode == 0, added.stderr
    trusted()
    log = SshdLog(cluster)
    tested = run_cli("cluster", "test", "keb", config=config, home=home)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert len(accepted(log)) == 1, log.lines()

    # one added without the key logs in by password, as the preset says; then the key is given by cluster edit
    assert run_cli("cluster", "add", "keb2", "--preset", "hpc2n", "--user", cluster.user, "--host", cluster.host,
                   "--port", str(cluster.port), config=config, home=home).returncode == 0
    refused = run_cli("cluster", "test", "keb2", config=config, home=home)
    assert refused.returncode != 0 and "envdesk cluster edit NAME --login key" in refused.stdout + refused.stderr
    edited = run_cli("cluster", "edit", "keb2", "--login", "key", "--identity-file", str(testbed.client_key),
                     config=config, home=home)
    assert edited.returncode == 0, edited.stderr
    log = SshdLog(cluster)
    tested = run_cli("cluster", "test", "keb2", config=config, home=home)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert len(accepted(log)) == 1, log.lines()


def test_a_jump_host_that_refuses_the_key_says_it_takes_its_own_keys_as_openssh_does(testbed, tmp_path, home,
                                                                                  stray_key):
    """T24: beta behind alpha, the profile naming the key both know: alpha, the jump, refused ~/.ssh's key, and the
    hint said to choose the key 'in this cluster's settings', which is never offered to a jump host. OpenSSH is
    the referee: `ssh -i KEY -J JUMP` offers KEY to the cluster only, and a Host block for the jump in the
    configuration it reads is what gets the jump in, for ssh and for EnvDesk alike."""
    alpha, beta = testbed.clusters["alpha"], testbed.clusters["beta"]
    paths = make_config(tmp_path / "cfg", testbed, ["alpha", "beta"],
                        beta={"jump": [f"{alpha.user}@{alpha.host}:{alpha.port}"]})
    ssh_folder = home / ".ssh"
    ssh_folder.mkdir()
    (ssh_folder / "id_ed25519").write_bytes(stray_key.read_bytes())
    (ssh_folder / "id_ed25519").chmod(0o600)
    defaults = (f"Host *\n  UserKnownHostsFile {paths.known_hosts_file}\n  StrictHostKeyChecking yes\n"
                "  BatchMode yes\n  IdentitiesOnly yes\n  IdentityFile ~/.ssh/id_ed25519\n")
    (ssh_folder / "config").write_text(defaults)
    key = beta.profile_fields()["identity_file"]

    def openssh() -> subprocess.CompletedProcess:
        return subprocess.run(["ssh", "-F", str(ssh_folder / "config"), "-i", key, "-p", str(beta.port),
                               "-J", f"{alpha.user}@{alpha.host}:{alpha.port}", f"{beta.user}@{beta.host}", "true"],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
                              env={**os.environ, "HOME": str(home)})

    assert openssh().returncode == 255, "OpenSSH gives the jump host the cluster's -i key after all"
    failure = login_fails(paths, "beta", ScriptedPrompter())
    assert f"does not accept the key {ssh_folder / 'id_ed25519'}" in failure.message, failure.message
    assert "jump host" in failure.hint and "~/.ssh/config" in failure.hint, failure.hint
    assert "in this cluster's settings" not in failure.hint, failure.hint

    # what the hint says to do, done: a Host block for the jump naming the key it knows
    (ssh_folder / "config").write_text(f"Host {alpha.host}\n  IdentityFile {key}\n" + defaults)
    assert openssh().returncode == 0, openssh().stderr
    logs_in(paths, "beta", ScriptedPrompter())
