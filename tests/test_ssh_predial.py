"""A cluster dialled early (ssh_predial): the connection a command line opens, and greets on, while it still
loads paramiko, from a note of where the last connection went first.

The referees are the test bed's sshds (LogLevel DEBUG3): the connections they accept, the greeting they read
("remote software version ..."), the logins; and the key exchange itself, whose hash covers the greeting
the client sent: a transport that hashed another one than the server read fails the handshake.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time

import pytest

from envdesk.backend import ssh_predial
from envdesk.backend.errors import ConnectionFailed
from envdesk.backend.hostkeys import HostKeyStore
from envdesk.backend.ssh_runner import begin_key_exchanges
from envdesk_fixtures import make_config, session_for
from test_login_failures import SshdLog


def _note(paths, name: str, host: str, port: int, greeting: str) -> None:
    paths.cache_dir.mkdir(parents=True, exist_ok=True)
    (paths.cache_dir / ssh_predial.NOTES_FILE).write_text(json.dumps({name: [host, port, greeting]}))


def _notes(paths) -> dict:
    return json.loads((paths.cache_dir / ssh_predial.NOTES_FILE).read_text())


def _greetings(log: SshdLog) -> list[str]:
    """The client greetings sshd read, as it logs them."""
    return [line.split("remote software version ", 1)[1] for line in log.lines() if "remote software version " in line]


def _hung_up(log: SshdLog) -> bool:
    """Whether sshd saw the client go (closed, or reset: it went with the server's greeting unread)."""
    return any(line.startswith(("Connection closed by", "Connection reset by")) for line in log.lines())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_login_uses_the_connection_dialled_early_and_its_greeting(testbed, tmp_path, home):
    """One connection, greeted once, with the noted greeting: the one the key exchange then hashes (the login
    works), not paramiko's own a second time."""
    alpha = testbed.clusters["alpha"]
    paths = make_config(tmp_path / "cfg", testbed, ["alpha"])
    _note(paths, "alpha", alpha.host, alpha.port, "SSH-2.0-EnvDesk_test_greeting")
    saw = SshdLog(alpha)
    ssh_predial.start(paths.cache_dir, "alpha")
    session = session_for(paths)
    try:
        runner = session.target("alpha").runner
        assert runner.run(["true"]).ok
    finally:
        session.close()
    assert saw.connections() == 1
    assert _greetings(saw) == ["EnvDesk_test_greeting"]


def test_a_connection_notes_where_it_went_first_and_its_greeting(testbed, tmp_path, home):
    """Through a jump host, the way begins at the jump host."""
    alpha = testbed.clusters["alpha"]
    jump = f"{alpha.user}@{alpha.host}:{alpha.port}"
    paths = make_config(tmp_path / "cfg", testbed, ["alpha", "beta"], beta={"jump": [jump]})
    default_key = home / ".ssh" / "id_ed25519"  # the jump hop's key: where ssh looks when none is set
    default_key.parent.mkdir()
    shutil.copyfile(testbed.client_key, default_key)
    default_key.chmod(0o600)
    saw = SshdLog(alpha)
    session = session_for(paths)
    try:
        for name in ("alpha", "beta"):
            session.target(name).runner.connect()
    finally:
        session.close()
    greeting = _greetings(saw)[0]
    assert _notes(paths) == {"alpha": [alpha.host, alpha.port, f"SSH-2.0-{greeting}"],
                             "beta": [alpha.host, alpha.port, f"SSH-2.0-{greeting}"]}


def test_a_stale_note_costs_one_connection_closed_unused(testbed, tmp_path, home):
    """The note says beta's address, the profile (alpha) goes elsewhere: alpha gets one connection, beta's is
    closed at once without a login, and the note is put right."""
    alpha, beta = testbed.clusters["alpha"], testbed.clusters["beta"]
    paths = make_config(tmp_path / "cfg", testbed, ["alpha"])
    _note(paths, "alpha", beta.host, beta.port, "SSH-2.0-paramiko_stale")
    at_alpha, at_beta = SshdLog(alpha), SshdLog(beta)
    ssh_predial.start(paths.cache_dir, "alpha")
    deadline = time.monotonic() + 30  # a bound on the wait, not a timing: beta has to see the dial first
    while not _greetings(at_beta) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _greetings(at_beta) == ["paramiko_stale"]
    session = session_for(paths)
    try:
        assert session.target("alpha").runner.run(["true"]).ok
    finally:
        session.close()
    assert at_alpha.connections() == 1 and len(_greetings(at_alpha)) == 1
    while not _hung_up(at_beta) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _hung_up(at_beta), "the stale connection was left open"
    assert not any(line.startswith(("Accepted", "Failed")) for line in at_beta.lines())
    assert _notes(paths)["alpha"][:2] == [alpha.host, alpha.port]


def test_a_noted_server_that_is_down_fails_as_a_dial_would(testbed, tmp_path, home):
    """The early dial's failure is the connect's, in the same words as without a note (and not dialled twice)."""
    port = _free_port()
    messages = []
    for noted in (False, True):
        paths = make_config(tmp_path / f"cfg-{noted}", testbed, ["alpha"], alpha={"port": port})
        if noted:
            _note(paths, "alpha", "127.0.0.1", port, "SSH-2.0-paramiko_test")
            ssh_predial.start(paths.cache_dir, "alpha")
        with pytest.raises(ConnectionFailed) as info:
            session_for(paths).target("alpha").runner.connect()
        messages.append(info.value.message)
    assert messages[0] == messages[1]
    assert f"Could not reach 127.0.0.1 on port {port}" in messages[1]


@pytest.mark.parametrize("entry", [["127.0.0.1", 22, "SSH-1.5-old"], ["127.0.0.1", 22, "SSH-2.0-a\r\nline"],
                                   ["127.0.0.1", 0, "SSH-2.0-x"], ["127.0.0.1", "22", "SSH-2.0-x"],
                                   ["", 22, "SSH-2.0-x"], ["127.0.0.1", 22], "127.0.0.1:22"])
def test_a_note_that_is_not_one_dials_nothing(tmp_path, entry):
    """A damaged or foreign notes file is no way to send anything anywhere."""
    tmp_path.joinpath(ssh_predial.NOTES_FILE).write_text(json.dumps({"x": entry}))
    ssh_predial.start(tmp_path, "x")
    assert ssh_predial.claim("127.0.0.1", 22) is None


_EXCHANGING = "SSH2_MSG_KEX_ECDH_INIT received"  # sshd has the client's half of the key exchange


def _exchanges(log: SshdLog) -> int:
    return sum(1 for line in log.lines() if _EXCHANGING in line)


def _begin_and_wait(paths, log: SshdLog, hostkeys: HostKeyStore | None = None) -> None:
    """Begin the key exchange on the connection dialled early, as the command line does, and wait until sshd
    has the client's half of it (before any connect)."""
    begin_key_exchanges(hostkeys or HostKeyStore(paths.known_hosts_file))
    deadline = time.monotonic() + 30  # a bound on the wait, not a timing: paramiko's thread sends it
    while not _exchanges(log) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _exchanges(log) == 1, "the key exchange did not begin before the connect"


def _run_on_alpha(paths) -> None:
    """One command on alpha, from a new session."""
    session = session_for(paths)
    try:
        assert session.target("alpha").runner.run(["true"]).ok
    finally:
        session.close()


def test_the_login_takes_over_the_key_exchange_begun_early(testbed, tmp_path, home):
    """One connection, one greeting, one key exchange (begun before the connect, never begun again), one login."""
    alpha = testbed.clusters["alpha"]
    paths = make_config(tmp_path / "cfg", testbed, ["alpha"])
    _note(paths, "alpha", alpha.host, alpha.port, "SSH-2.0-EnvDesk_test_exchange")
    saw = SshdLog(alpha)
    ssh_predial.start(paths.cache_dir, "alpha")
    _begin_and_wait(paths, saw)
    _run_on_alpha(paths)
    assert saw.connections() == 1
    assert _greetings(saw) == ["EnvDesk_test_exchange"]
    assert _exchanges(saw) == 1
    assert sum(1 for line in saw.lines() if line.startswith("Accepted publickey")) == 1


def test_a_key_exchange_begun_with_other_known_keys_is_begun_anew(testbed, tmp_path, home):
    """Begun asking first for host key types the connect would not ask for first (the known keys changed in
    between): that connection is closed without a login, and the connect opens its own."""
    alpha = testbed.clusters["alpha"]
    paths = make_config(tmp_path / "cfg", testbed, ["alpha"])
    _note(paths, "alpha", alpha.host, alpha.port, "SSH-2.0-EnvDesk_test_exchange")
    saw = SshdLog(alpha)
    ssh_predial.start(paths.cache_dir, "alpha")
    _begin_and_wait(paths, saw, HostKeyStore(tmp_path / "no_known_hosts", user_file=tmp_path / "none"))
    _run_on_alpha(paths)
    assert saw.connections() == 2
    assert sum(1 for line in saw.lines() if line.startswith("Accepted publickey")) == 1


def test_a_key_exchange_begun_early_looks_the_key_up_under_the_hops_host_key_alias(testbed, tmp_path, home):
    """alpha's ~/.ssh/config gives it a HostKeyAlias and a known_hosts file of its own, its key recorded there under
    the alias only (ssh connects with StrictHostKeyChecking yes). The key exchange begun early looked the key up
    under [host]:port in the default files, asked first for other key types than the connect, and was begun anew:
    now it looks it up as the connect does, and the connect takes it over (one connection, one exchange)."""
    alpha = testbed.clusters["alpha"]
    ssh = home / ".ssh"
    ssh.mkdir()
    key = ssh / "id_ed25519"
    shutil.copyfile(testbed.client_key, key)
    key.chmod(0o600)
    (ssh / "kh_alpha").write_text(f"alpha-cluster {alpha.host_key_pub}\n")
    config = ssh / "config"
    config.write_text(f"Host alpha\n  HostName {alpha.host}\n  Port {alpha.port}\n  User {alpha.user}\n"
                      f"  HostKeyAlias alpha-cluster\n  UserKnownHostsFile {ssh / 'kh_alpha'}\n"
                      f"  GlobalKnownHostsFile /dev/null\n  IdentityFile {key}\n  IdentitiesOnly yes\n")
    said = subprocess.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                           "alpha", "true"], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert said.returncode == 0, said.stderr
    paths = make_config(tmp_path / "cfg", testbed, ["alpha"], trusted=False,
                        alpha={"host": "alpha", "port": None, "user": None, "identity_file": None})
    _run_on_alpha(paths)  # notes where the connection went first, and how that hop's key is looked up
    saw = SshdLog(alpha)
    ssh_predial.start(paths.cache_dir, "alpha")
    _begin_and_wait(paths, saw)
    _run_on_alpha(paths)
    assert saw.connections() == 1
    assert _exchanges(saw) == 1


def test_a_stale_note_closes_the_key_exchange_begun_on_it_unused(testbed, tmp_path, home):
    """The note says beta's address, the profile (alpha) goes elsewhere: the key exchange begun with beta ends
    with its connection, without a login there."""
    alpha, beta = testbed.clusters["alpha"], testbed.clusters["beta"]
    paths = make_config(tmp_path / "cfg", testbed, ["alpha"])
    _note(paths, "alpha", beta.host, beta.port, "SSH-2.0-paramiko_stale")
    at_alpha, at_beta = SshdLog(alpha), SshdLog(beta)
    ssh_predial.start(paths.cache_dir, "alpha")
    _begin_and_wait(paths, at_beta)
    _run_on_alpha(paths)
    assert at_alpha.connections() == 1
    deadline = time.monotonic() + 30  # a bound on the wait, not a timing: beta has to see the hang-up
    while not _hung_up(at_beta) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _hung_up(at_beta), "the stale connection was left open"
    assert not any(line.startswith(("Accepted", "Failed")) for line in at_beta.lines())


def test_a_failure_to_begin_the_session_early_costs_a_new_dial_not_the_connection(testbed, tmp_path, home,
                                                                                monkeypatch):
    """What was begun on the connection dialled early failed (here: paramiko could not start its thread), after
    the connect had claimed it: the connection is in an unknown state, so the connect dials anew and logs in,
    rather than saying the server could not be reached. The dial is slowed so the claim comes first."""
    alpha = testbed.clusters["alpha"]
    paths = make_config(tmp_path / "cfg", testbed, ["alpha"])
    _note(paths, "alpha", alpha.host, alpha.port, "SSH-2.0-EnvDesk_test_greeting")
    saw = SshdLog(alpha)
    dial = ssh_predial.socket.create_connection

    def slow_dial(*args, **kwargs):
        time.sleep(0.5)
        return dial(*args, **kwargs)

    def cannot_begin(sock):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(ssh_predial.socket, "create_connection", slow_dial)
    ssh_predial.start(paths.cache_dir, "alpha")
    [early] = ssh_predial.dialling()
    early.begin_session(cannot_begin)
    session = session_for(paths)
    try:
        assert session.target("alpha").runner.run(["true"]).ok
    finally:
        session.close()
    assert saw.connections() == 2
    assert len([line for line in saw.lines() if line.startswith("Accepted publickey")]) == 1
