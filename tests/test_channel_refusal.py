"""A server that allows fewer sessions per connection than EnvDesk opens (its MaxSessions) refuses one more
channel; that refusal is not a broken connection (backend/channel_slots.py, ssh_runner._open_channel): the
commands running go on, the refused one waits for one of them to end, all on the one connection. Referees:
sshd's own log (sessions open, refused, logins) and what each command printed."""
from __future__ import annotations

import os
import threading
import time

import pytest

from envdesk.backend import agent_session
from envdesk.backend.errors import Cancelled, ConnectionFailed
from envdesk.backend.inventory import read_inventory
from envdesk.backend.runner import CancelToken
from test_agent_channels import (Waiting, alpha_behind_own_sshd, refused, session_on, sessions, sessions_fall_to,
                                 sessions_reach)

ALLOWED = 2


@pytest.fixture
def narrow(testbed, tmp_path):
    """alpha behind an sshd of its own that allows ALLOWED sessions per connection."""
    cluster = alpha_behind_own_sshd(testbed, tmp_path / "narrow-sshd", "narrow", ALLOWED)
    yield cluster
    cluster.stop()


def logins(cluster) -> int:
    return cluster.log_path.read_text(errors="replace").count("Accepted publickey")


def more_at_once_than_allowed(cluster, runner) -> None:
    """ALLOWED + 2 commands at once on the runner: sshd refuses some, and every one runs and prints its mark."""
    waiting = Waiting(cluster, runner, ALLOWED + 2)
    try:
        sessions_reach(cluster, ALLOWED)
        assert refused(cluster) >= 1, "sshd refused no session: the test shows nothing"
    finally:
        waiting.release()
    waiting.check()


def test_more_commands_than_the_server_allows_wait_for_each_other_on_one_connection(narrow, tmp_path, home):
    session = session_on(narrow, tmp_path / "cfg")
    try:
        runner = session.target("narrow").runner
        assert runner.run(["true"]).ok
        # sshd counts that command's session until it has read its close: a burst begun before then is refused one
        # session more, learns a limit of one, and its first command then waits on the others (a CI run under load)
        sessions_fall_to(narrow, 0)
        more_at_once_than_allowed(narrow, runner)
        assert logins(narrow) == 1 and runner.connections_opened == 1, "a refusal made the runner log in again"
        assert sessions(narrow) <= ALLOWED
    finally:
        session.close()


def test_a_server_that_allows_no_session_says_so_in_plain_words(testbed, tmp_path, home):
    cluster = alpha_behind_own_sshd(testbed, tmp_path / "none-sshd", "nosessions", 0)
    session = session_on(cluster, tmp_path / "cfg")
    try:
        with pytest.raises(ConnectionFailed, match="refused to open a session") as raised:
            session.target("nosessions").runner.run(["true"])
        assert "MaxSessions" in (raised.value.hint or "")
        assert logins(cluster) == 1, "a refusal made the runner log in again"
    finally:
        session.close()
        cluster.stop()


def _in_background(runner, argv, out: list, cancel=None) -> threading.Thread:
    """`runner.run(argv)` on a thread of its own, its result (or what it raised) put in `out`."""
    def run() -> None:
        try:
            out.append(runner.run(argv, timeout=300, cancel=cancel))
        except BaseException as exc:
            out.append(exc)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_kept_listing_agent_gives_its_session_to_a_command_where_the_server_allows_one(testbed, tmp_path, home):
    """A server allowing one session per connection: the listing agent the app keeps running holds it between
    listings; a command is refused, the idle agent is closed for it, and the command runs (it never waits for the
    agent's 15 idle minutes); later listings are commands of their own, the agent never taking the only slot."""
    cluster = alpha_behind_own_sshd(testbed, tmp_path / "one-sshd", "one", 1)
    session = session_on(cluster, tmp_path / "cfg")
    try:
        runner = session.target("one").runner
        for _ in range(2):  # stored, then served
            read_inventory(runner, ["~/venvs"])
        server = agent_session.server_for(runner)
        assert server is not None and server.started == 1
        out: list = []
        _in_background(runner, ["echo", "ran"], out).join(120)   # a bound, not a timing: it hangs otherwise
        assert out and not isinstance(out[0], BaseException) and out[0].stdout.strip() == "ran", out
        assert not read_inventory(runner, ["~/venvs"]).errors
        assert server.started == 1 and logins(cluster) == 1
    finally:
        session.close()
        cluster.stop()


def test_commands_on_a_server_allowing_one_session_run_one_after_another(testbed, tmp_path, home):
    cluster = alpha_behind_own_sshd(testbed, tmp_path / "one-sshd", "one", 1)
    session = session_on(cluster, tmp_path / "cfg")
    try:
        runner = session.target("one").runner
        assert runner.run(["true"]).ok
        outs: list[list] = [[] for _ in range(3)]
        threads = [_in_background(runner, ["sh", "-c", f"sleep 1; echo {n}"], out) for n, out in enumerate(outs)]
        for thread in threads:
            thread.join(120)   # a bound, not a timing: refused waiters counted as open hung forever
        assert [out[0].stdout.strip() if out and not isinstance(out[0], BaseException) else out for out in outs] \
            == ["0", "1", "2"]
        assert refused(cluster) >= 1 and logins(cluster) == 1
    finally:
        session.close()
        cluster.stop()


def test_a_command_cancelled_while_every_session_is_in_use_is_stopped(testbed, tmp_path, home):
    """Stopping a cancelled command takes a channel of its own: where the server has none left, it is still
    stopped (on a new connection, as every refusal once was), never left running. Referee: pgrep there."""
    cluster = alpha_behind_own_sshd(testbed, tmp_path / "two-sshd", "two", 2)
    session = session_on(cluster, tmp_path / "cfg")
    mark = f"{os.getpid()}{threading.get_ident() % 1000}"  # digits: `sleep 71.<mark>` is a valid time
    try:
        runner = session.target("two").runner
        assert runner.run(["true"]).ok
        sessions_fall_to(cluster, 0)  # sshd still counting that one would refuse a sleep: the test is the kill
        cancel = CancelToken()
        kept: list = []
        stopped: list = []
        _in_background(runner, ["sleep", f"71.{mark}"], kept)
        thread = _in_background(runner, ["sleep", f"72.{mark}"], stopped, cancel)
        sessions_reach(cluster, ALLOWED)
        cancel.cancel()
        thread.join(120)
        assert stopped and isinstance(stopped[0], Cancelled), stopped
        deadline = time.monotonic() + 30   # a bound on the wait for the kill, not a timing
        while f"72.{mark}" in (left := cluster.run_as_user("pgrep -fa '^sleep' || true").stdout):
            assert time.monotonic() < deadline, f"the cancelled command still runs: {left}"
            time.sleep(0.2)
    finally:
        cluster.run_as_user(f"pkill -f '^sleep 71[.]{mark}' || true", check=False)
        session.close()
        cluster.stop()


def test_a_limit_learnt_from_one_server_goes_with_its_connection(narrow, tmp_path, home):
    """The limit learnt from a refusal is the server's, not the name's: once the connection is made again (here to
    an sshd on the same address that allows more sessions, as another login node behind the name may), as many
    commands run at once as that server takes."""
    session = session_on(narrow, tmp_path / "cfg")
    try:
        runner = session.target("narrow").runner
        more_at_once_than_allowed(narrow, runner)
        narrow.stop()                        # the connection ends with it
        wider = ALLOWED + 3
        narrow.log_path = tmp_path / "wider-sshd.log"
        narrow.write_config = lambda: narrow.config_path.write_text(
            narrow.config_path.read_text().replace(f"MaxSessions {ALLOWED}\n", f"MaxSessions {wider}\n"))
        narrow.spawn(narrow.port)
        narrow.wait_ready()
        assert f"MaxSessions {wider}\n" in narrow.config_path.read_text()
        waiting = Waiting(narrow, runner, wider)
        try:
            sessions_reach(narrow, wider)    # with the old server's limit, one at a time
        finally:
            waiting.release()
        waiting.check()
        assert runner.connections_opened == 2 and refused(narrow) == 0
    finally:
        session.close()


def _server_processes_of(sock) -> list[int]:
    """The processes on this machine holding the server's end of the loopback TCP connection `sock` (sshd's)."""
    import os
    ours, theirs = sock.getsockname()[1], sock.getpeername()[1]
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == theirs and int(fields[2].rsplit(":", 1)[1], 16) == ours:
                    inodes.add(f"socket:[{fields[9]}]")
    holders = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in os.listdir(f"/proc/{pid}/fd")):
                holders.append(int(pid))
        except OSError:
            continue
    return holders


def test_closing_a_command_on_a_connection_that_broke_raises_nothing_of_its_own(testbed, session):
    """CI (a fault test, import-installed-connection): a connection broke while input was sent to a command, which
    was said (ConnectionFailed); then closing that command's channel on the dead connection raised paramiko's own
    EOFError in its place, and the user saw 'EOFError'. Here the connection's socket stops sending, as a dropped
    network does, while commands run on real channels, and the server is held still (SIGSTOP), so that paramiko
    cannot learn that the connection is gone before it tries to close (without that, which comes first was a
    race, and the test failed in one CI run of five). The command's close must not raise; paramiko's own close
    of the other channel, after it, is the referee that closing there fails."""
    import os
    import signal
    import socket

    from envdesk.backend.ssh_runner import _ChannelJob

    runner = session.target("alpha").runner
    assert runner.run(["true"]).ok
    transport = runner._hops.target  # the connection the commands run on
    channels = [transport.open_session() for _ in range(2)]
    for channel in channels:
        channel.exec_command("sleep 20")
    server = _server_processes_of(transport.sock)
    assert server, "sshd's end of the connection was not found"
    for pid in server:
        os.kill(pid, signal.SIGSTOP)
    try:
        transport.sock.shutdown(socket.SHUT_WR)
        _ChannelJob(runner, channels[0], "sleep 20", "sleep", None).close()
        with pytest.raises((EOFError, OSError)):  # the referee: paramiko cannot close a channel on it
            channels[1].close()
    finally:
        for pid in server:
            os.kill(pid, signal.SIGCONT)
