"""Servers that are not what the profile says, and login shells that are not bash.

Odd servers (real TCP servers on 127.0.0.1, no test bed needed): one that accepts and stays silent (a wrong
port, a VPN box), one that answers as a web server, one that hangs up at once, one that greets as SSH and
then breaks. `envdesk cluster test` must end each time with exit 1 and a plain message, never a traceback
or an "unexpected error", and a connect in progress must stop at once when the app closes or cancels it.

tcsh (the test bed): a cluster user whose login shell is tcsh gets every command right: listing, creating
with a module loaded, cancel (the remote process group dies), and arguments full of what csh treats
specially (`!`, `$`, quotes, newlines).
"""
from __future__ import annotations

import pwd
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from envdesk.backend.config import ClusterProfile, ClusterStore
from envdesk.backend.errors import Cancelled, ConnectionFailed
from envdesk.backend.inventory import read_inventory
from envdesk.backend.operations.create import CreateRequest, create_environment
from envdesk.backend.paths import AppPaths
from envdesk.backend.runner import CancelToken
from envdesk_fixtures import (cancel_leaves_nothing_running, cli_json, config_for, extra_cluster, packages_of, raw_exec,
                              run_cli, session_for, unique)
from testbed.software import bed_python_version

RUNS = 3


class OddServer:
    """A TCP server on 127.0.0.1 that treats each connection with `serve(conn)`, in a thread of its own."""

    def __init__(self, serve) -> None:
        self.serve = serve
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=16)
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self.listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            self.accepted += 1
            self.connections.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.serve(conn)
        except OSError:
            pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listener.close()
        for conn in self.connections:
            conn.close()


def silent(conn: socket.socket) -> None:
    """Accept, then say nothing, ever (the connection stays open until the test ends)."""


def web(conn: socket.socket) -> None:
    """A web server: read the request (the client's SSH greeting here), answer 400 and hang up."""
    conn.settimeout(5)
    conn.recv(1024)
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nContent-Type: text/html\r\n"
                 b"Content-Length: 11\r\nConnection: close\r\n\r\nBad request")
    conn.shutdown(socket.SHUT_RDWR)
    conn.close()


def hang_up(conn: socket.socket) -> None:
    conn.close()


def fake_ssh(conn: socket.socket) -> None:
    """Greets as an SSH server, then sends garbage instead of a key exchange."""
    conn.settimeout(5)
    conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
    conn.recv(1024)
    conn.sendall(b"\x00\x00\x00\x0c\x0a\x15" + b"\xff" * 10)
    time.sleep(0.5)
    conn.close()


@pytest.fixture
def odd_server():
    servers: list[OddServer] = []

    def start(serve) -> OddServer:
        server = OddServer(serve)
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.close()


def odd_config(folder: Path, port: int) -> Path:
    """A config with one cluster, "odd", at 127.0.0.1:port."""
    ClusterStore(AppPaths(folder)).add(ClusterProfile(name="odd", host="127.0.0.1", port=port, user="nobody"))
    return folder


def cluster_test_runs(config: Path, home: Path, runs: int = RUNS) -> list:
    """`envdesk cluster test odd`, `runs` times at once (each is its own process)."""
    def one(_):
        return run_cli("cluster", "test", "odd", config=config, home=home, timeout=120)
    with ThreadPoolExecutor(runs) as pool:
        return list(pool.map(one, range(runs)))


def assert_plain_failure(runs: list, *phrases: str) -> None:
    """Each run failed with a plain message holding every phrase (which also says why it stopped: a
    time-out, a refusal, a wrong answer, never a hang cut short by the test's own limit)."""
    for result in runs:
        output = result.stdout + result.stderr
        assert result.returncode == 1, output
        assert "Traceback" not in output and "unexpected error" not in output.lower(), output
        assert "paramiko" not in result.stderr.lower(), result.stderr
        assert "Login FAILED" in result.stdout, output
        for phrase in phrases:
            assert phrase in result.stderr, result.stderr


def test_a_silent_server_did_not_answer(odd_server, tmp_path, home):
    server = odd_server(silent)
    runs = cluster_test_runs(odd_config(tmp_path / "cfg", server.port), home)
    assert_plain_failure(runs, "did not answer", "not an SSH server")
    assert server.accepted >= RUNS


def test_a_web_server_is_not_an_ssh_server(odd_server, tmp_path, home):
    server = odd_server(web)
    runs = cluster_test_runs(odd_config(tmp_path / "cfg", server.port), home)
    assert_plain_failure(runs, "answered, but not as an SSH server", "HTTP/1.1 400 Bad Request")


def test_a_server_that_hangs_up_at_once(odd_server, tmp_path, home):
    server = odd_server(hang_up)
    runs = cluster_test_runs(odd_config(tmp_path / "cfg", server.port), home)
    assert_plain_failure(runs, "closed it without answering")


def test_an_ssh_server_that_breaks_the_handshake(odd_server, tmp_path, home):
    server = odd_server(fake_ssh)
    runs = cluster_test_runs(odd_config(tmp_path / "cfg", server.port), home)
    assert_plain_failure(runs, "is an SSH server, but the SSH handshake with it failed")


def test_nothing_listening_is_plain_too(tmp_path, home):
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    runs = cluster_test_runs(odd_config(tmp_path / "cfg", port), home, runs=1)
    assert_plain_failure(runs, "Could not reach 127.0.0.1 on port")


def test_verbose_shows_what_paramiko_logged(odd_server, tmp_path, home):
    server = odd_server(web)
    config = odd_config(tmp_path / "cfg", server.port)
    result = run_cli("-v", "cluster", "test", "odd", config=config, home=home, timeout=60)
    assert result.returncode == 1 and "answered, but not as an SSH server" in result.stderr
    assert "paramiko.transport" in result.stderr


def _runner(tmp_path: Path, port: int):
    session = session_for(AppPaths(odd_config(tmp_path / "cfg", port)))
    return session, session.target("odd").runner


def _assert_close_aborts_the_connect(tmp_path: Path, port: int) -> None:
    """close() from another thread ends a connect in progress at once, with a plain message."""
    session, runner = _runner(tmp_path, port)
    threading.Timer(0.5, runner.close).start()
    with pytest.raises(ConnectionFailed) as info:
        runner.connect()
    assert "closed while it was opening" in info.value.message  # the close ended it, not a time-out
    session.close()


def test_close_from_another_thread_stops_a_connect_at_once(odd_server, tmp_path, home):
    _assert_close_aborts_the_connect(tmp_path, odd_server(silent).port)


def test_cancel_stops_a_command_waiting_for_its_connection(odd_server, tmp_path, home):
    session, runner = _runner(tmp_path, odd_server(silent).port)
    token = CancelToken()
    threading.Timer(0.5, token.cancel).start()
    with pytest.raises(Cancelled):  # a time-out would be a ConnectionFailed
        runner.run(["true"], cancel=token)
    session.close()


def test_close_stops_a_connect_stuck_before_tcp_is_up(tmp_path, home):
    """A full listen queue drops the SYNs (like a host behind a firewall that drops them): connect() hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(4):  # fill the queue (never accepted)
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.2)
        _assert_close_aborts_the_connect(tmp_path, port)
        for filler in fillers:
            filler.close()


# ------------------------------------------------------------------ a tcsh login shell

TCSH = "/bin/tcsh"


@pytest.fixture(scope="module")
def tcsh_cluster(testbed):
    """A cluster like alpha whose user's login shell is tcsh (sshd runs every command through it)."""
    return extra_cluster(testbed, TCSH)


@pytest.fixture
def tcsh(tcsh_cluster, tmp_path, home):
    """(cluster, session) for the tcsh cluster."""
    session = session_for(config_for(tmp_path / "cfg", tcsh_cluster))
    yield tcsh_cluster, session
    session.close()


def test_the_login_shell_really_is_tcsh(testbed, tcsh_cluster):
    assert pwd.getpwnam(tcsh_cluster.user).pw_shell == TCSH
    code, out, _ = raw_exec(tcsh_cluster, testbed.client_key, "echo $version")
    assert code == 0 and out.startswith("tcsh "), out
    # what EnvDesk used to send (bash -lc 'multi-line text') breaks in tcsh
    code, _, err = raw_exec(tcsh_cluster, testbed.client_key, "bash -lc 'echo one\necho two'")
    assert code != 0 and "Unmatched" in err


def test_listing_through_tcsh(tcsh, tmp_path, home):
    cluster, session = tcsh
    name = unique("handmade")
    cluster.run_as_user(f"module load python/3.11.5 && python3 -m venv ~/envs/{name}")
    inventory = read_inventory(session.target(cluster.name).runner, session.target(cluster.name).roots)
    found = {env.name: env for env in inventory.environments}
    assert name in found and found[name].state == "ok" and found[name].kind == "venv"
    listed = cli_json("env", "list", cluster.name, config=tmp_path / "cfg", home=home)
    assert name in [env["name"] for env in listed]
    result = run_cli("cluster", "test", cluster.name, config=tmp_path / "cfg", home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "modules: yes" in result.stdout and "Connection works." in result.stdout


def test_module_system_works_through_tcsh(tcsh):
    cluster, session = tcsh
    runner = session.target(cluster.name).runner
    result = runner.run(["sh", "-c", 'command -v python3; echo "$LOADEDMODULES"'], modules=["python/3.11.5"])
    assert result.ok, result.stderr
    assert "python/3.11.5" in result.stdout and str(cluster.modulepath.parent) in result.stdout.splitlines()[0]


def test_create_with_a_module_through_tcsh(tcsh):
    cluster, session = tcsh
    created = create_environment(session, cluster.name,
                                 CreateRequest(name=unique("t"), kind="venv", packages=["tinybeta"]))
    env = created.environment
    assert (env.kind, env.state, env.python) == ("venv", "ok", bed_python_version())
    assert env.modules == ("python/3.11.5",)
    assert packages_of(env) == {"tinybeta": "1.0", "tinyalpha": "2.0"}
    out = cluster.run_as_user(f"module load python/3.11.5 && {env.path}/bin/python -c 'import tinybeta'",
                              check=False)
    assert out.returncode == 0, out.stderr


def test_cancel_kills_the_remote_process_group_through_tcsh(tcsh):
    cluster, session = tcsh
    cancel_leaves_nothing_running(cluster, session.target(cluster.name).runner, 7)


ODD_TEXT = ("a!b !! !$ $HOME ${USER} `id` $(id) 'single' \"double\" back\\slash\nsecond line\n\n"
            "% ~ * ? [x] {a,b} ; & | < > #é")


def test_odd_characters_arrive_intact_through_tcsh(tcsh):
    cluster, session = tcsh
    runner = session.target(cluster.name).runner
    assert runner.run(["printf", "%s", ODD_TEXT]).stdout == ODD_TEXT
    assert runner.run(["cat"], stdin=ODD_TEXT.encode()).stdout == ODD_TEXT
    assert runner.run(["printf", "%s", ODD_TEXT], modules=["python/3.11.5"]).stdout == ODD_TEXT
    agent = runner.run_python("import sys; sys.stdout.write(sys.argv[1])", [ODD_TEXT])
    assert agent.ok and agent.stdout == ODD_TEXT, agent.stderr
