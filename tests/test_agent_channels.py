"""The kept listing agent's channel counts against the server's MaxSessions like a command's (backend/ssh_runner.py
Stream, backend/agent_session.py), on a real sshd whose MaxSessions is MAX_CHANNELS + 1 (the one more: a channel
closed here is counted there until sshd has read that). sshd's own log is the referee: how many sessions it has
open, and whether it refused one. With every slot in use the runner never has more than MAX_CHANNELS open, so no
open is refused (a refusal makes the runner wait for a slot below the count refused, see test_channel_refusal),
and a listing still answers."""
from __future__ import annotations

import threading
import time
import uuid

import pytest

from envdesk.backend import agent_session
from envdesk.backend.config import ClusterProfile, ClusterStore
from envdesk.backend.inventory import read_inventory
from envdesk.backend.paths import AppPaths
from envdesk.backend.ssh_runner import MAX_CHANNELS
from envdesk.backend.targets import Session
from envdesk_fixtures import ScriptedPrompter, unique


def alpha_behind_own_sshd(testbed, workdir, name: str, max_sessions: int):
    """alpha's user and home behind a started sshd of its own, called `name`, whose MaxSessions is
    `max_sessions` (OpenSSH's default is 10; clusters may set less)."""
    return testbed.clusters["alpha"].twin(name, workdir, f"MaxSessions {max_sessions}\n")


def session_on(cluster, folder):
    """A backend Session (kept agents on) whose one cluster is `cluster`, its host key known."""
    paths = AppPaths(folder)
    ClusterStore(paths).add(ClusterProfile(name=cluster.name, **cluster.profile_fields()))
    with open(paths.known_hosts_file, "a") as handle:
        handle.write(cluster.known_hosts_line() + "\n")
    return Session(paths, ScriptedPrompter(), keep_agents=True)


@pytest.fixture
def tight(testbed, tmp_path):
    """alpha behind an sshd of its own whose MaxSessions is MAX_CHANNELS + 1."""
    cluster = alpha_behind_own_sshd(testbed, tmp_path / "tight-sshd", "tight", MAX_CHANNELS + 1)
    yield cluster
    cluster.stop()


@pytest.fixture
def session(tight, tmp_path, home):
    session = session_on(tight, tmp_path / "cfg")
    yield session
    session.close()


def sessions(cluster) -> int:
    """How many sessions sshd's log says are open now."""
    log = cluster.log_path.read_text(errors="replace")
    return log.count("session_open: channel ") - log.count(": free: server-session")


def refused(cluster) -> int:
    """How many sessions sshd refused so far (MaxSessions reached)."""
    return cluster.log_path.read_text(errors="replace").count("no more sessions")


def sessions_fall_to(cluster, count: int) -> None:
    """Wait until sshd has only `count` sessions open (it frees a closed one once it has read that)."""
    deadline = time.monotonic() + 60
    while sessions(cluster) != count:
        assert time.monotonic() < deadline, f"sshd never came down to {count} sessions open"
        time.sleep(0.1)


def sessions_reach(cluster, count: int) -> None:
    """Wait until sshd has `count` sessions open, then a second more: fail if it has more by then."""
    deadline = time.monotonic() + 120
    while sessions(cluster) < count:
        assert time.monotonic() < deadline, f"sshd never had {count} sessions open"
        time.sleep(0.1)
    time.sleep(1)  # time for one more to be opened, were it to be
    assert sessions(cluster) == count


class Waiting:
    """`count` commands at once on the runner, each waiting on the cluster until released (a file appears)."""

    def __init__(self, cluster, runner, count: int) -> None:
        self.cluster = cluster
        self.go = f"/tmp/envdesk-go-{uuid.uuid4().hex}"
        self.mark = unique("waiting")
        self.results: list = []
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, args=(runner,)) for _ in range(count)]
        for thread in self.threads:
            thread.start()

    def _run(self, runner) -> None:
        try:
            self.results.append(runner.run(
                ["sh", "-c", f'while [ ! -e {self.go} ]; do sleep 0.1; done; echo "{self.mark}"'], timeout=300))
        except BaseException as exc:
            self.errors.append(exc)

    def release(self) -> None:
        with open(self.go, "w"):
            pass
        for thread in self.threads:
            thread.join(300)
        self.cluster.run_as_user(f"rm -f {self.go}", check=False)

    def check(self) -> None:
        assert not self.errors, self.errors
        assert len(self.results) == len(self.threads)
        assert all(result.ok and result.stdout.strip() == self.mark for result in self.results)


def names(listing) -> set[str]:
    return {env.name for env in listing.environments}


def test_the_serving_agent_holds_a_channel_slot_while_every_other_is_in_use(tight, session):
    """The serving agent runs; MAX_CHANNELS commands are asked for at once: all but one run (the agent holds
    the last slot), listings are served meanwhile, and every command finishes on the one connection."""
    target = session.target("tight")
    name = unique("tight")
    tight.run_as_user(f"python3 -m venv --without-pip ~/venvs/{name}")
    try:
        for _ in range(2):  # stored, then serving
            read_inventory(target.runner, ["~/venvs"])
        server = agent_session.server_for(target.runner)
        assert server is not None and server.started == 1
        sessions_fall_to(tight, 1)  # the serving agent's
        waiting = Waiting(tight, target.runner, MAX_CHANNELS)
        try:
            sessions_reach(tight, MAX_CHANNELS)  # the serving agent's and all but one of the commands
            for _ in range(2):
                assert name in names(read_inventory(target.runner, ["~/venvs"]))
            assert sessions(tight) == MAX_CHANNELS and refused(tight) == 0
        finally:
            waiting.release()
        waiting.check()
        assert refused(tight) == 0
        assert target.runner.connections_opened == 1, "a refused channel made the runner drop its connection"
        assert server.started == 1
    finally:
        tight.run_as_user(f"rm -rf ~/venvs/{name}")


def test_a_listing_while_every_channel_is_in_use_waits_as_a_command(tight, session):
    """No serving agent yet and every slot taken by commands: the listing does not open a channel past them
    (it runs as a command once one is free); the next listing starts the serving agent."""
    target = session.target("tight")
    read_inventory(target.runner, ["~/venvs"])  # the agent stored
    server = agent_session.server_for(target.runner)
    assert server is not None and server.started == 0
    sessions_fall_to(tight, 0)
    waiting = Waiting(tight, target.runner, MAX_CHANNELS)
    listed: list = []
    try:
        sessions_reach(tight, MAX_CHANNELS)
        lister = threading.Thread(target=lambda: listed.append(read_inventory(target.runner, ["~/venvs"])))
        lister.start()
        time.sleep(1)  # time for it to open a channel, were it to
        assert not listed, "the listing took a channel past the slots"
        assert sessions(tight) == MAX_CHANNELS and refused(tight) == 0
    finally:
        waiting.release()
    lister.join(300)
    waiting.check()
    assert refused(tight) == 0
    assert len(listed) == 1 and not listed[0].errors
    assert target.runner.connections_opened == 1
    assert server.started == 0
    read_inventory(target.runner, ["~/venvs"])
    assert server.started == 1


def test_a_stream_gives_its_slot_back_once(tight, session):
    """However a serving agent ends (closed, stopped, given up, its output ended), its slot is given back
    exactly once: all MAX_CHANNELS are free again after each, and never more."""
    target = session.target("tight")
    runner = target.runner
    read_inventory(runner, ["~/venvs"])
    source = "import sys\nsys.stdin.read()\n"
    for end in ("close", "stop", "twice", "ended"):
        stream = runner.start_python(source)
        assert stream is not None
        if end == "ended":
            stream.send(b"")
            stream.channel.shutdown_write()  # its input ends: it exits, its channel closes
            deadline = time.monotonic() + 60
            while not stream.ended:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        else:
            getattr(stream, {"twice": "close"}.get(end, end))()
            if end == "twice":
                stream.close()
                stream.stop()
        taken = [runner._take_slot(wait=False) for _ in range(MAX_CHANNELS + 1)]
        assert taken == [True] * MAX_CHANNELS + [False], end
        for _ in range(MAX_CHANNELS):
            runner._slots.release()
