"""The listing agent the app keeps running on each cluster (backend/agent_session.py), on the real test bed:
later listings cost no command (sshd's own log counts them), each answer is what is on the disk then, it
only reads, and it leaves nothing running on the cluster once its connection or its request ends."""
from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from envdesk.backend import agent_session, agent_store
from envdesk.backend.agent_client import agent_script, run_agent
from envdesk.backend.config import ClusterProfile, ClusterStore
from envdesk.backend.errors import CommandFailed, ConnectionFailed
from envdesk.backend.inventory import read_inventory
from envdesk.backend.paths import AppPaths
from envdesk.backend.protocol import ANSWER_MARKER
from envdesk.backend.targets import Session
from envdesk_fixtures import ScriptedPrompter, canon, extra_cluster, make_config, unique

# What the serving agent's process looks like in `ps` on the cluster (its program comes on descriptor 3).
SERVER_ARGS = "fdopen(3"


def servers(cluster) -> list[str]:
    """The serving agents running as the cluster's user (ps, not zombies)."""
    result = cluster.run_as_user(f"ps -u \"$USER\" -o stat=,args= | grep -v '^Z' | grep -F '{SERVER_ARGS}' "
                                 "| grep -v grep", check=False)
    return [line for line in result.stdout.splitlines() if line.strip()]


def wait_until(condition, what: str, seconds: float = 60) -> None:
    """Poll `condition` (what happens on the cluster takes its own time); fail saying `what` did not happen."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen")
        time.sleep(0.2)


@pytest.fixture
def kept(testbed, tmp_path, home):
    """A session that keeps a listing agent on each cluster, as the app's does; alpha connected."""
    session = Session(make_config(tmp_path / "cfg", testbed, ["alpha"]), ScriptedPrompter(), keep_agents=True)
    session.target("alpha").runner.connect()
    yield session
    session.close()


def commands(cluster, action) -> int:
    """How many commands `action` ran on the cluster."""
    before = len(cluster.session_commands())
    action()
    return len(cluster.session_commands()) - before


def test_after_the_agent_is_stored_one_command_serves_every_listing(testbed, sample_envs, kept):
    alpha = testbed.clusters["alpha"]
    target = kept.target("alpha")
    roots = [*target.roots, "~/projects"]
    listings: list = []
    counts = [commands(alpha, lambda: listings.append(read_inventory(target.runner, roots))) for _ in range(4)]
    # the first call stores the agent (a command as always), the second starts it serving, the rest ask it
    assert counts == [1, 1, 0, 0]
    assert len(servers(alpha)) == 1
    for listing in listings:  # each as pip and uv left the environments (read back from their disks)
        found = {env.path: env for env in listing.environments}
        for name, made in sample_envs["alpha"].items():
            if found[made["path"]].kind != "conda":
                assert {canon(p.name): p.version for p in found[made["path"]].packages} == made["packages"], name
    assert [env.path for env in listings[3].environments] == [env.path for env in listings[0].environments]


def test_a_served_listing_sees_what_changed_since_the_last(testbed, kept):
    alpha = testbed.clusters["alpha"]
    target = kept.target("alpha")
    name = unique("served")
    for _ in range(2):
        read_inventory(target.runner, target.roots)
    alpha.run_as_user(f"python3 -m venv --without-pip ~/venvs/{name}")
    try:
        assert commands(alpha, lambda: read_inventory(target.runner, target.roots)) == 0
        shown = read_inventory(target.runner, target.roots, names=[name]).environments
        assert [env.name for env in shown] == [name] and shown[0].state == "ok"
    finally:
        alpha.run_as_user(f"rm -rf ~/venvs/{name}")
    assert name not in {env.name for env in read_inventory(target.runner, target.roots).environments}
    assert len(servers(alpha)) == 1


def test_the_serving_agent_refuses_to_write(testbed, kept):
    alpha = testbed.clusters["alpha"]
    target = kept.target("alpha")
    name = unique("kept")
    alpha.run_as_user(f"python3 -m venv --without-pip ~/venvs/{name}")
    read_inventory(target.runner, target.roots)  # the cluster now keeps the agent
    runner = target.runner
    agent = agent_script()
    serve = json.dumps({"serve": {"idle": 60}})
    stream = runner.start_python(agent_store.bootstrap_script(agent, serve))
    try:
        path = f"{alpha.home}/venvs/{name}"
        stream.send(json.dumps({"action": "delete", "path": path, "roots": ["~/venvs"]}).encode() + b"\n")
        out, deadline = b"", time.monotonic() + 120
        while ANSWER_MARKER.encode() not in out or not out.endswith(b"\n"):
            assert time.monotonic() < deadline, f"no answer from the serving agent: {out!r}"
            out += stream.receive(0.1)
        answer = json.loads(out.decode().split(ANSWER_MARKER)[1])
        assert answer["ok"] is False and answer["code"] == "invalid" and "only lists" in answer["error"]
        assert alpha.run_as_user(f"test -f {path}/pyvenv.cfg", check=False).returncode == 0
    finally:
        stream.close()
        alpha.run_as_user(f"rm -rf ~/venvs/{name}")


def test_nothing_keeps_running_once_the_connection_closes(testbed, tmp_path, home):
    alpha = testbed.clusters["alpha"]
    session = Session(make_config(tmp_path / "cfg", testbed, ["alpha"]), ScriptedPrompter(), keep_agents=True)
    target = session.target("alpha")
    for _ in range(2):
        read_inventory(target.runner, target.roots)
    assert len(servers(alpha)) == 1
    session.close()
    wait_until(lambda: not servers(alpha), "the serving agent's end with its connection")


def test_a_serving_agent_ends_after_its_idle_time(testbed, kept):
    alpha = testbed.clusters["alpha"]
    target = kept.target("alpha")
    read_inventory(target.runner, target.roots)
    stream = target.runner.start_python(agent_store.bootstrap_script(agent_script(),
                                                                     json.dumps({"serve": {"idle": 1}})))

    def ended() -> bool:
        try:
            stream.receive(0.1)
        except ConnectionFailed:
            return True
        return False
    try:
        wait_until(ended, "the idle agent's end")
    finally:
        stream.close()
    wait_until(lambda: not servers(alpha), "the idle agent's exit")


def test_a_stopped_request_stops_the_agent_and_the_next_starts_another(testbed, kept):
    alpha = testbed.clusters["alpha"]
    target = kept.target("alpha")
    settings = {"roots": list(target.roots)}
    for _ in range(2):
        run_agent(target.runner, settings)
    assert len(servers(alpha)) == 1
    with pytest.raises(CommandFailed, match="did not finish within"):
        run_agent(target.runner, settings, timeout=1e-9)
    wait_until(lambda: not servers(alpha), "the stopped agent's end")
    assert commands(alpha, lambda: run_agent(target.runner, settings)) == 1
    assert commands(alpha, lambda: run_agent(target.runner, settings)) == 0


def kill_the_serving_agent(alpha, target) -> None:
    """Start alpha's serving agent (two listings), then kill it on the cluster and wait for its end."""
    for _ in range(2):
        read_inventory(target.runner, target.roots)
    alpha.run_as_user("pkill -u \"$USER\" -f 'fdopen[(]3'")
    wait_until(lambda: not servers(alpha), "the killed agent's end")


def test_an_agent_killed_on_the_cluster_is_replaced(testbed, kept):
    alpha = testbed.clusters["alpha"]
    target = kept.target("alpha")
    kill_the_serving_agent(alpha, target)
    listing = read_inventory(target.runner, target.roots)
    assert not listing.errors
    assert len(servers(alpha)) == 1
    assert commands(alpha, lambda: read_inventory(target.runner, target.roots)) == 0


def test_a_stored_agent_removed_under_the_app_is_sent_again(testbed, sample_envs, kept):
    """The serving agent ended and the cluster's copy of the agent removed: the next start asks for the agent
    (its answer names it); that listing goes the usual way, which stores it again, and the one after is
    served. A listing's own answer is not taken for that request (nor decoded twice to tell)."""
    alpha = testbed.clusters["alpha"]
    target = kept.target("alpha")
    kill_the_serving_agent(alpha, target)
    alpha.run_as_user("rm -rf ~/.cache/envdesk/agent")
    listings: list = []
    counts = [commands(alpha, lambda: listings.append(read_inventory(target.runner, target.roots)))
              for _ in range(3)]
    assert counts == [2, 1, 0]  # the refused start and the storing call; the new serving agent's start; none
    for listing in listings:
        found = {env.path for env in listing.environments}
        assert {made["path"] for made in sample_envs["alpha"].values() if "/venvs/" in made["path"]} <= found


def test_listings_at_the_same_time_all_answer(testbed, sample_envs, kept):
    """One request at a time goes to the serving agent; the others run as commands of their own."""
    target = kept.target("alpha")
    read_inventory(target.runner, target.roots)
    server = agent_session.server_for(target.runner)
    assert server is not None
    found: list[set[str]] = []

    def listing() -> None:
        found.append({env.path for env in read_inventory(target.runner, target.roots).environments})
    threads = [threading.Thread(target=listing) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 4 and len({frozenset(paths) for paths in found}) == 1
    assert {made["path"] for made in sample_envs["alpha"].values() if "/venvs/" in made["path"]} <= found[0]
    assert server.started == 1


def test_the_command_line_keeps_no_agent_running(testbed, tmp_path, home):
    alpha = testbed.clusters["alpha"]
    session = Session(make_config(tmp_path / "cfg", testbed, ["alpha"]), ScriptedPrompter())
    target = session.target("alpha")
    try:
        counts = [commands(alpha, lambda: read_inventory(target.runner, target.roots)) for _ in range(3)]
        assert counts == [1, 1, 1] and not servers(alpha)
    finally:
        session.close()


def test_a_connection_that_went_silent_is_replaced(testbed, kept, monkeypatch):
    """The serving agent does not take the request (its connection's sshd frozen, as a dead network): the
    connection is dropped after ACK_WAIT, as when a channel cannot be opened, and a new one answers."""
    monkeypatch.setattr(agent_session, "ACK_WAIT", 2.0)
    alpha = testbed.clusters["alpha"]
    target = kept.target("alpha")
    for _ in range(2):
        read_inventory(target.runner, target.roots)
    opened = target.runner.connections_opened
    frozen = alpha._session_sshd_pids()
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        listing = read_inventory(target.runner, target.roots)
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    assert not listing.errors and target.runner.connections_opened == opened + 1
    wait_until(lambda: len(servers(alpha)) == 1, "the old connection's agent's end")


def test_a_tcsh_user_gets_a_serving_agent_too(testbed, tmp_path, home):
    """sshd runs every command through the user's login shell: the serving agent's command line is plain words
    (as every command's), and its program, on descriptor 3, comes from a pipe that bash's printf writes."""
    cluster = extra_cluster(testbed, "/bin/tcsh")
    paths = AppPaths(tmp_path / "cfg")
    ClusterStore(paths).add(ClusterProfile(name=cluster.name, **cluster.profile_fields()))
    with open(paths.known_hosts_file, "a") as handle:
        handle.write(cluster.known_hosts_line() + "\n")
    session = Session(paths, ScriptedPrompter(), keep_agents=True)
    target = session.target(cluster.name)
    name = unique("tcsh")
    cluster.run_as_user(f"python3 -m venv --without-pip ~/venvs/{name}")
    try:
        counts = [commands(cluster, lambda: read_inventory(target.runner, ["~/venvs"])) for _ in range(3)]
        assert counts == [1, 1, 0]
        assert name in {env.name for env in read_inventory(target.runner, ["~/venvs"]).environments}
    finally:
        session.close()
        cluster.run_as_user(f"rm -rf ~/venvs/{name}")


def test_a_closed_session_lets_its_runner_and_serving_agent_go(testbed, tmp_path, home):
    """The serving agent goes with its runner: once the session is closed and dropped, nothing keeps the runner
    (with its connection's keys and streams) alive for the rest of the app's life."""
    import gc
    import weakref

    import envdesk.backend.ssh_runner  # noqa: F401  (loaded before: a library's first load keeps its caller's frames)
    session = Session(make_config(tmp_path / "cfg", testbed, ["alpha"]), ScriptedPrompter(), keep_agents=True)
    target = session.target("alpha")
    for _ in range(2):
        read_inventory(target.runner, target.roots)
    assert agent_session.server_for(target.runner).started == 1
    runner = weakref.ref(target.runner)
    session.close()
    del session, target
    gc.collect()
    assert runner() is None, "the closed session's runner is still kept"


def test_a_listing_under_way_when_the_user_disconnects_ends_without_reconnecting(testbed, sample_envs, kept):
    """Disconnect (the runner closed) during a served listing: the listing ends with a connection error; it does
    not log in again, start another agent, and list on a connection the user let go."""
    target = kept.target("alpha")
    for _ in range(2):
        read_inventory(target.runner, target.roots)
    server = agent_session.server_for(target.runner)
    started = server.started
    real_answer = server._answer

    def answer(stream, fresh, notes, cancel, timeout):  # the request is sent; the user disconnects meanwhile
        target.runner.close()
        return real_answer(stream, fresh, notes, cancel, timeout)

    server._answer = answer  # type: ignore[method-assign]
    with pytest.raises(ConnectionFailed):
        read_inventory(target.runner, target.roots)
    assert server.started == started, "a new serving agent was started after the user disconnected"
    assert not target.runner.connected, "the runner logged in again after the user disconnected"


def test_a_served_answer_carries_only_its_own_stderr(testbed, kept):
    """What the serving agent's start printed on stderr (here the login shell's) is the log of the request that
    started it, not of every later one (a failed listing's log shows only its own stderr)."""
    alpha = testbed.clusters["alpha"]
    target = kept.target("alpha")
    read_inventory(target.runner, target.roots)  # the cluster now keeps the agent
    noise = unique("login-noise")
    alpha.run_as_user(f"printf '%s\\n' 'echo {noise} >&2' '[ -f ~/.profile ] && . ~/.profile' > ~/.bash_profile")
    try:
        settings = json.dumps({"roots": list(target.roots)})
        first = agent_session.ask(target.runner, agent_script(), settings, None, 120)
        second = agent_session.ask(target.runner, agent_script(), settings, None, 120)
    finally:
        alpha.run_as_user("rm -f ~/.bash_profile")
    assert first is not None and second is not None
    assert noise in first.stderr
    assert noise not in second.stderr


def test_a_line_read_in_pieces_keeps_no_empty_ones():
    """The serving agent's output comes in chunks, most of them empty while it works: only data is kept."""
    pending = agent_session._Pending()
    steps = [(b"", [], 0), (b"ab", [], 1), (b"", [], 1), (b"", [], 1), (b"c\nde", [b"abc"], 1), (b"", [], 1),
             (b"f\n", [b"def"], 0), (b"", [], 0)]
    for chunk, lines, kept_chunks in steps:
        assert pending.lines(chunk) == lines
        assert len(pending.chunks) == kept_chunks, chunk


def test_a_disconnect_ends_the_serving_agent(testbed, kept):
    """The user disconnects (the session forgets the target: its runner is closed): the agent ends with its
    connection, nothing to close on its own (as when the whole session closes)."""
    alpha = testbed.clusters["alpha"]
    target = kept.target("alpha")
    for _ in range(2):
        read_inventory(target.runner, target.roots)
    assert len(servers(alpha)) == 1
    kept.forget("alpha")
    wait_until(lambda: not servers(alpha), "the serving agent's end on a disconnect")
