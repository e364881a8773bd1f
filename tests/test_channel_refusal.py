"""A server that allows fewer sessions per connection than EnvDesk opens (its MaxSessions) refuses one more
channel; that refusal is not a broken connection (backend/channel_slots.py, ssh_runner._open_channel): the
commands running go on, the refused one waits for one of them to end, all on the one connection. Referees:
sshd's own log (sessions open, refused, logins) and what each command printed."""
from __future__ import annotations

import pytest

from envdesk.backend.errors import ConnectionFailed
from test_agent_channels import Waiting, alpha_behind_own_sshd, refused, session_on, sessions, sessions_reach

ALLOWED = 2


@pytest.fixture
def narrow(testbed, tmp_path):
    """alpha behind an sshd of its own that allows ALLOWED sessions per connection."""
    cluster = alpha_behind_own_sshd(testbed, tmp_path / "narrow-sshd", "narrow", ALLOWED)
    yield cluster
    cluster.stop()


def logins(cluster) -> int:
    return cluster.log_path.read_text(errors="replace").count("Accepted publickey")


def test_more_commands_than_the_server_allows_wait_for_each_other_on_one_connection(narrow, tmp_path, home):
    session = session_on(narrow, tmp_path / "cfg")
    try:
        runner = session.target("narrow").runner
        assert runner.run(["true"]).ok
        waiting = Waiting(narrow, runner, ALLOWED + 2)
        try:
            sessions_reach(narrow, ALLOWED)
            assert refused(narrow) >= 1, "sshd refused no session: the test shows nothing"
        finally:
            waiting.release()
        waiting.check()                      # every command ran and printed its mark
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
