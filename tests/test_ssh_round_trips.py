"""Round trips of a login (issue 11): the login service is asked for once, a key that needs no question is
offered without asking the server first which methods it takes, packets leave at once (TCP_NODELAY), and a
command line starts logging in while it loads the rest of the program.

The referee is the test bed's sshd: it logs (LogLevel DEBUG3) every message it receives by type and every
login request by method, in OpenSSH's words. paramiko's own Transport asks for the service before every
attempt and sends 'none' first: two round trips more per key login.
"""
from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time

import pytest

from envdesk.backend.errors import AuthenticationFailed
from envdesk_fixtures import ScriptedPrompter, make_config, run_cli, session_for
from test_login_failures import SshdLog

_SERVICE_REQUEST = re.compile(r"receive packet: type 5 \[preauth\]$")  # SSH2_MSG_SERVICE_REQUEST
_LOGIN_REQUEST = re.compile(r"userauth-request for user (\S+) service ssh-connection method (\S+) \[preauth\]$")


class SshdSaw(SshdLog):
    """What one cluster's sshd logged from now on, message by message."""

    def service_requests(self) -> int:
        return sum(1 for line in self.lines() if _SERVICE_REQUEST.search(line))

    def methods(self) -> list[str]:
        """The method of each login request, in order."""
        return [found.group(2) for line in self.lines() if (found := _LOGIN_REQUEST.search(line))]


def _connect(paths, name: str, prompter=None) -> None:
    session = session_for(paths, prompter)
    try:
        session.target(name).runner.connect()
    finally:
        session.close()


def test_a_key_login_is_one_request_after_one_service_request(testbed, tmp_path, home):
    paths = make_config(tmp_path / "cfg", testbed, ["alpha"])
    saw = SshdSaw(testbed.clusters["alpha"])
    _connect(paths, "alpha")
    assert saw.methods() == ["publickey"]  # no 'none' first: the key needs no question
    assert saw.service_requests() == 1


def test_a_key_then_a_code_asks_for_the_service_once(testbed, tmp_path, home):
    otp = testbed.clusters["otp"]
    paths = make_config(tmp_path / "cfg", testbed, ["otp"])
    prompter = ScriptedPrompter(answer=lambda request: otp.totp_now())
    saw = SshdSaw(otp)
    _connect(paths, "otp", prompter)
    assert saw.methods() == ["publickey", "keyboard-interactive"]
    assert saw.service_requests() == 1
    assert [request.kind for request in prompter.asked] == ["code"]


def test_a_key_with_a_passphrase_waits_for_the_server_to_say_it_takes_keys(testbed, tmp_path, home):
    """Only the unlocked keys are offered before asking; a server without keys never gets a passphrase asked."""
    cluster = testbed.clusters["password"]
    key = tmp_path / "locked_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(key)], check=True)
    paths = make_config(tmp_path / "cfg", testbed, ["password"], password={"identity_file": str(key)})
    prompter = ScriptedPrompter(answer=lambda request: cluster.password)
    saw = SshdSaw(cluster)
    _connect(paths, "password", prompter)
    assert saw.methods() == ["none", "keyboard-interactive"]  # asked which methods first, as OpenSSH does
    assert saw.service_requests() == 1
    assert [request.kind for request in prompter.asked] == ["password"]  # no passphrase


def test_packets_leave_at_once(testbed, tmp_path, home):
    """TCP_NODELAY, as the kernel reports it: no small packet waits for the one before to be acknowledged."""
    session = session_for(make_config(tmp_path / "cfg", testbed, ["alpha"]))
    try:
        runner = session.target("alpha").runner
        runner.connect()
        sock = runner._hops.target.sock.sock  # the socket under the transport (a _Wire keeps it)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        session.close()


def test_paramiko_is_loaded_without_invoke():
    """invoke (only for `Match exec`, which EnvDesk never runs) costs as much to load as paramiko itself."""
    code = ("import sys; import envdesk.backend.ssh_runner as r; "
            "assert 'invoke' not in sys.modules, 'invoke loaded'; "
            "import invoke; print('real invoke still importable' if invoke.__file__ else '')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "real invoke still importable" in result.stdout


def test_an_early_connect_is_the_connection_a_command_uses(testbed, tmp_path, home):
    paths = make_config(tmp_path / "cfg", testbed, ["alpha"])
    session = session_for(paths)
    saw = SshdSaw(testbed.clusters["alpha"])
    try:
        runner = session.target("alpha").runner
        runner.connect_early()
        deadline = time.monotonic() + 60  # a bound on the wait, not a timing: it logs in on its own
        while not any(line.startswith("Accepted publickey") for line in saw.lines()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert saw.connections() == 1  # before any connect(): it began on its own
        runner.connect()
        assert runner.run(["true"]).ok
        assert runner.connections_opened == 1
    finally:
        session.close()
    assert saw.connections() == 1


def test_an_early_connect_leaves_questions_to_the_command(testbed, tmp_path, home):
    """It asks nobody: the code is asked once, by the connect that follows (which logs in again)."""
    otp = testbed.clusters["otp"]
    paths = make_config(tmp_path / "cfg", testbed, ["otp"])
    prompter = ScriptedPrompter(answer=lambda request: otp.totp_now())
    session = session_for(paths, prompter)
    try:
        runner = session.target("otp").runner
        runner.connect_early()
        runner.connect()
        assert runner.connected
    finally:
        session.close()
    assert [request.kind for request in prompter.asked] == ["code"]


def test_an_early_connect_that_fails_without_a_question_is_not_repeated(testbed, tmp_path, home):
    stray = tmp_path / "stray_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stray)], check=True)
    paths = make_config(tmp_path / "cfg", testbed, ["alpha"], alpha={"identity_file": str(stray)})
    saw = SshdSaw(testbed.clusters["alpha"])
    session = session_for(paths)
    try:
        runner = session.target("alpha").runner
        runner.connect_early()
        with pytest.raises(AuthenticationFailed) as info:
            runner.connect()
    finally:
        session.close()
    assert "does not accept the key" in info.value.message
    assert saw.connections() == 1


_LOADED = """\
import json, sys
from envdesk.launch import main
code = main(sys.argv[1:])
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
sys.exit(code)
"""


def test_env_list_on_the_command_line_logs_in_once_and_loads_only_what_it_needs(testbed, sample_envs, tmp_path, home):
    """One connection, begun while the program loads; neither the keyring (a key file suffices), nor invoke,
    nor the code of other commands (creating, importing, copying...) is loaded."""
    paths = make_config(tmp_path / "cfg", testbed, ["alpha"])
    saw = SshdSaw(testbed.clusters["alpha"])
    result = subprocess.run([sys.executable, "-c", _LOADED, "--config-dir", str(paths.config_dir), "env", "list",
                             "alpha", "--json"], capture_output=True, text=True, timeout=300,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout), "it listed something"
    assert saw.connections() == 1
    assert saw.methods() == ["publickey"]
    loaded = json.loads(result.stderr.strip().splitlines()[-1])
    unwanted = ("keyring", "invoke", "envdesk.backend.operations.create", "envdesk.backend.operations.importing",
                "envdesk.backend.operations.clone", "envdesk.backend.operations.update")
    assert [name for name in loaded if name.startswith(unwanted)] == []


_GREETED = b"remote software version "  # sshd's DEBUG line once it has read the client's greeting
_EXCHANGING = b"SSH2_MSG_KEX_ECDH_INIT received"  # once it has the client's half of the key exchange
_WATCHED = """\
import builtins, sys, time
from envdesk.launch import main
log, start, module, logged = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].encode()


def seen():
    with open(log, "rb") as handle:
        handle.seek(start)
        return logged in handle.read()


real_import = builtins.__import__


def watch(name, *args, **kwargs):
    \"\"\"When `module` is first imported: has the cluster's sshd already logged `logged` for this process? Waits
    in __import__, before the import takes any lock (a finder on sys.meta_path runs under the global import lock,
    which would hold up the dialling thread's own imports).\"\"\"
    if name == module and module not in sys.modules:
        builtins.__import__ = real_import
        deadline = time.monotonic() + 30  # a bound on the wait, not a timing: it is dialling meanwhile
        while not seen() and time.monotonic() < deadline:
            time.sleep(0.02)
        print("logged before", module, "loaded:", seen(), file=sys.stderr)
    return real_import(name, *args, **kwargs)


builtins.__import__ = watch
sys.exit(main(sys.argv[5:]))
"""


def _listing_watched(testbed, tmp_path, home, module: str, logged: bytes) -> str:
    """`envdesk env list alpha --json` (the second: the first notes the way) with the watch above; its stderr."""
    paths = make_config(tmp_path / "cfg", testbed, ["alpha"])
    assert run_cli("env", "list", "alpha", config=paths.config_dir, home=home).returncode == 0  # notes the way
    cluster = testbed.clusters["alpha"]
    saw = SshdSaw(cluster)
    start = cluster.log_path.stat().st_size
    result = subprocess.run([sys.executable, "-c", _WATCHED, str(cluster.log_path), str(start), module,
                             logged.decode(), "--config-dir", str(paths.config_dir), "env", "list", "alpha",
                             "--json"], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout), "it listed something"
    assert saw.connections() == 1
    assert saw.methods() == ["publickey"]
    return result.stderr


def test_env_list_on_the_command_line_greets_the_cluster_before_loading_paramiko(testbed, sample_envs, tmp_path,
                                                                                 home):
    """The TCP handshake and SSH's greeting cost the command line no round trip after its start: it dials where
    the last connection to the cluster went while it loads paramiko (sshd has read its greeting before paramiko
    is even looked for), and logs in on that same connection."""
    stderr = _listing_watched(testbed, tmp_path, home, "paramiko", _GREETED)
    assert "logged before paramiko loaded: True" in stderr


def test_env_list_on_the_command_line_exchanges_keys_before_loading_the_session(testbed, sample_envs, tmp_path,
                                                                                home):
    """The key exchange's round trip is spent reading the cluster's settings and loading the rest: once paramiko is
    loaded, the key exchange begins on the connection dialled early (sshd has the client's half of it before the
    session's module, which reads the settings, is even looked for), and the login takes it over on that same
    connection."""
    stderr = _listing_watched(testbed, tmp_path, home, "envdesk.backend.targets", _EXCHANGING)
    assert "logged before envdesk.backend.targets loaded: True" in stderr


_FROZEN = """\
import gc, sys
from envdesk.launch import main
code = main(sys.argv[1:])
print("frozen:", gc.get_freeze_count(), file=sys.stderr)
sys.exit(code)
"""


def test_a_command_line_leaves_the_code_it_loaded_out_of_garbage_collection(tmp_path, home):
    """The collection at the interpreter's exit walked every object of paramiko, cryptography and EnvDesk (as
    long as a round trip at 50 ms): the code loaded is frozen (gc.freeze), so that no collection walks it."""
    result = subprocess.run([sys.executable, "-c", _FROZEN, "--config-dir", str(tmp_path / "cfg"), "env", "list",
                             "local", "--json"], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    frozen = int(result.stderr.rsplit("frozen:", 1)[1])
    assert frozen > 10_000, frozen


def test_the_clusters_python_starts_without_site(testbed, tmp_path, home):
    """Scripts sent to the cluster's Python use the standard library only: its start skips site and the .pth
    files of its site-packages (as the python itself reports), yet the agent answers."""
    session = session_for(make_config(tmp_path / "cfg", testbed, ["alpha"]))
    try:
        runner = session.target("alpha").runner
        result = runner.run_python("import sys\nprint(sys.flags.no_site, 'site' in sys.modules)\n", [])
        assert result.stdout.split() == ["1", "False"], result.stdout + result.stderr
        from envdesk.backend.operations.listing import list_environments
        assert list_environments(session, "alpha").inventory is not None
    finally:
        session.close()
