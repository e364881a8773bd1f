"""A lock whose client is gone (killed app or CLI) is taken over at once; a live client's lock never is.

End to end: the real CLI killed with SIGKILL during a create on a test-bed cluster, then another CLI run
deleting or creating the same environment. Agent level: owner records naming a dead process, a live
one, another host, a silent or beating heartbeat, and an installer that outlived its client.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from agent_fixtures import load_agent, make_fake_venv, old_pythons_to_test
from envdesk.backend.agent_client import agent_script
from envdesk.backend.errors import Busy
from envdesk.backend.operations.common import Reservation
from envdesk.backend.operations.delete import delete_environment
from envdesk_fixtures import envdesk_command, make_config, run_cli, session_for, unique

agent = load_agent(write=True)
AGENT_SOURCE = agent_script(write=True)


# ---------------------------------------------------------------------------
# End to end: kill -9 the CLI while it creates an environment
# ---------------------------------------------------------------------------

@pytest.fixture
def cli(testbed, tmp_path):
    config, home = tmp_path / "cli-cfg", tmp_path / "home"
    home.mkdir(exist_ok=True)
    make_config(config, testbed, ["alpha", "beta"])

    def call(*args):
        return run_cli(*args, config=config, home=home)

    def start(*args):
        env = {**os.environ, "HOME": str(home)}
        env.pop("SSH_AUTH_SOCK", None)
        return subprocess.Popen([*envdesk_command(), "--config-dir", str(config), *args], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    call.start = start
    return call


def _kill_once_locked(cli, cluster, name):
    """Start `env create` of name, SIGKILL it as soon as its lock is on the cluster; the lock's path."""
    process = cli.start("env", "create", "beta", name, "--package", "tinybeta")
    deadline = time.monotonic() + 120
    locks: list[str] = []
    while not locks and process.poll() is None and time.monotonic() < deadline:
        locks = glob.glob(os.path.join(str(cluster.home), "*", name + ".envdesk-lock"))
        time.sleep(0.05)
    assert locks, "the create never locked its environment: %s" % (process.communicate()[1],)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert os.path.isdir(locks[0]), "the create finished before it could be killed"
    return locks[0]


def _until_not_busy(run, seconds=60):
    """Run `run` until it is not refused as busy (an orphaned installer may finish first); its last result."""
    deadline = time.monotonic() + seconds
    while True:
        result = run()
        if result.returncode == 0 or "is working on this environment" in result.stderr \
                or "still works in it" not in result.stderr or time.monotonic() > deadline:
            return result
        time.sleep(1)


def test_killed_create_leaves_a_lock_the_next_delete_takes_over(testbed, cli):
    beta, name = testbed.clusters["beta"], unique("kill")
    lock = _kill_once_locked(cli, beta, name)
    deleted = _until_not_busy(lambda: cli("env", "delete", "beta", name, "--yes"))
    assert deleted.returncode == 0, deleted.stderr
    assert not os.path.exists(lock) and not os.path.exists(lock[:-len(".envdesk-lock")])


def test_killed_create_leaves_a_lock_the_next_create_takes_over(testbed, cli):
    beta, name = testbed.clusters["beta"], unique("kill")
    lock = _kill_once_locked(cli, beta, name)
    created = _until_not_busy(lambda: cli("env", "create", "beta", name, "--package", "tinybeta"))
    assert created.returncode == 0, created.stderr
    assert not os.path.exists(lock)
    shown = cli("env", "show", "beta", name, "--json")
    assert shown.returncode == 0, shown.stderr
    env = json.loads(shown.stdout)
    assert env["state"] == "ok"
    assert "tinybeta" in [p["name"] for p in env["packages"]]


def test_a_live_clients_lock_stays_busy(testbed, session, tmp_path, cli):
    """Another session's open reservation (its SSH connection alive) is never taken over."""
    name = unique("live")
    target = session.target("beta")
    path = f"{target.roots[0].rstrip('/')}/{name}"
    reservation = Reservation.take(target, path, list(target.roots), create=True, operation="create")
    try:
        assert reservation.answer["path"].endswith(name)
        other = session_for(make_config(tmp_path / "cfg2", testbed, ["beta"]))
        try:
            with pytest.raises(Busy):
                delete_environment(other, "beta", reservation.path)
            with pytest.raises(Busy):
                Reservation.take(other.target("beta"), path, list(target.roots), create=True, operation="create")
        finally:
            other.close()
        refused = cli("env", "delete", "beta", reservation.path, "--yes")
        assert refused.returncode != 0 and "is creating this environment" in refused.stderr
    finally:
        reservation.release(remove_unfinished=True)
    assert not os.path.exists(os.path.join(str(testbed.clusters["beta"].home), "venvs", name + ".envdesk-lock"))


# ---------------------------------------------------------------------------
# The agent's judgement, with hand-written owner records
# ---------------------------------------------------------------------------

def _start_ticks(pid):
    with open("/proc/%d/stat" % pid, "rb") as handle:
        return int(handle.read().rsplit(b")", 1)[1].split()[19])


def _dead_process():
    """(pid, start) of a process that ran and is gone."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        start = _start_ticks(child.pid)
    finally:
        child.kill()
        child.wait()
    return child.pid, start


def _owner(pid, start, **changes):
    with open("/proc/sys/kernel/random/boot_id") as handle:
        boot = handle.read().strip()
    record = {"host": socket.gethostname(), "uid": os.getuid(), "boot": boot, "pid": pid, "pid_start": start,
              "operation": "create", "since": "2024-01-01T00:00:00Z", "started": time.time() - 5,
              "token": "0123456789abcdef01234567"}
    record.update(changes)
    return record


def _lock_with(path, record, age=0.0):
    lock = str(path) + ".envdesk-lock"
    os.mkdir(lock)
    owner = os.path.join(lock, "owner.json")
    with open(owner, "w") as handle:
        json.dump(record, handle)
    if age:
        os.utime(owner, (time.time() - age, time.time() - age))
    return lock


@pytest.fixture
def roots(tmp_path):
    folder = tmp_path / "venvs"
    folder.mkdir()
    return [str(folder)]


def _half_made(roots, name="half"):
    path = os.path.join(roots[0], name)
    os.makedirs(os.path.join(path, ".envdesk"))
    open(os.path.join(path, ".envdesk", "CREATING"), "w").close()
    return path


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")


@needs_proc
def test_dead_owner_on_this_host_is_taken_over(roots):
    path = _half_made(roots)
    _lock_with(path, _owner(*_dead_process()))
    answer = agent.run_action({"action": "delete", "path": path, "roots": roots})
    assert answer["ok"] is True, answer
    assert "has stopped" in answer["took_over"]
    assert not os.path.exists(path) and not os.path.exists(path + ".envdesk-lock")


@needs_proc
def test_create_over_a_stopped_clients_half_made_environment_builds_it_again(roots):
    path = _half_made(roots)
    open(os.path.join(path, "pyvenv.cfg"), "w").close()
    _lock_with(path, _owner(*_dead_process()))
    answer = agent.run_action({"action": "begin", "create": True, "path": path, "roots": roots})
    assert answer["ok"] is True and answer["replaced_unfinished"] is True and answer["took_over"]
    assert os.listdir(path) == [".envdesk"]
    assert agent.run_action({"action": "abort", "path": path, "roots": roots, "token": answer["token"],
                             "created": True})["ok"] is True
    assert not os.path.exists(path) and not os.path.exists(path + ".envdesk-lock")


@needs_proc
def test_a_recycled_pid_is_not_the_owner(roots):
    path = _half_made(roots)
    _lock_with(path, _owner(os.getpid(), _start_ticks(os.getpid()) - 1))
    assert agent.run_action({"action": "delete", "path": path, "roots": roots})["ok"] is True


@needs_proc
def test_live_owner_is_busy(roots):
    path = _half_made(roots)
    lock = _lock_with(path, _owner(os.getpid(), _start_ticks(os.getpid())))
    for config in ({"action": "delete"}, {"action": "begin", "create": True}):
        answer = agent.run_action(dict(config, path=path, roots=roots))
        assert answer["ok"] is False and answer["code"] == "busy", answer
    assert os.path.isdir(lock) and os.path.isdir(path)


@needs_proc
def test_another_hosts_lock_is_busy_unless_its_heartbeat_went_silent(roots):
    path = _half_made(roots)
    pid, start = _dead_process()
    lock = _lock_with(path, _owner(pid, start, host="login9.elsewhere"), age=3600)     # no heartbeat
    assert agent.run_action({"action": "delete", "path": path, "roots": roots})["code"] == "busy"
    shutil.rmtree(lock)
    lock = _lock_with(path, _owner(pid, start, host="login9.elsewhere", beat=15), age=10)   # beating
    assert agent.run_action({"action": "delete", "path": path, "roots": roots})["code"] == "busy"
    shutil.rmtree(lock)
    _lock_with(path, _owner(pid, start, host="login9.elsewhere", beat=15), age=agent.LOCK_SILENT_SECONDS + 5)
    answer = agent.run_action({"action": "delete", "path": path, "roots": roots})
    assert answer["ok"] is True and "stopped showing signs of life" in answer["took_over"]


@needs_proc
def test_another_users_lock_is_not_judged_by_its_process(roots):
    path = _half_made(roots)
    _lock_with(path, _owner(*_dead_process(), uid=os.getuid() + 1))
    assert agent.run_action({"action": "delete", "path": path, "roots": roots})["code"] == "busy"


@needs_proc
def test_an_installer_that_outlived_its_client_keeps_the_lock(roots):
    path = _half_made(roots)
    _lock_with(path, _owner(*_dead_process()))
    worker = subprocess.Popen(["sleep", "60"], cwd=path)      # started after the lock, working in the env
    try:
        answer = agent.run_action({"action": "delete", "path": path, "roots": roots})
        assert answer["code"] == "busy" and ("process %d" % worker.pid) in answer["error"], answer
    finally:
        worker.kill()
        worker.wait()
    assert agent.run_action({"action": "delete", "path": path, "roots": roots})["ok"] is True


def test_an_old_lock_without_an_owner_process_still_waits_a_day(roots):
    path = _half_made(roots)
    _lock_with(path, {"host": "x", "operation": "create", "started": time.time() - 3600, "token": "t"})
    assert agent.run_action({"action": "delete", "path": path, "roots": roots})["code"] == "busy"


@needs_proc
def test_begin_records_this_computers_client_and_its_heartbeat_beats(roots, tmp_path):
    """Run as a child of its client (as a tool without agent_here could): the client's pid is the owner; the
    heartbeat, a detached process, refreshes the lock."""
    path = make_fake_venv(tmp_path / "venvs" / "real")
    config = {"action": "begin", "path": str(path), "roots": roots, "client_pid": os.getpid(), "heartbeat": True}
    proc = subprocess.run([sys.executable, "-", json.dumps(config)], input=AGENT_SOURCE.encode(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    answer = json.loads(proc.stdout.decode().split("ENVDESK-AGENT-JSON ", 1)[1])
    assert answer["ok"] is True, proc.stderr
    owner_file = os.path.join(str(path) + ".envdesk-lock", "owner.json")
    with open(owner_file) as handle:
        record = json.load(handle)
    assert (record["pid"], record["pid_start"], record["watch"]) == (os.getpid(), _start_ticks(os.getpid()),
                                                                      "client")
    assert record["beat"] == agent.LOCK_HEARTBEAT_SECONDS
    first = os.stat(owner_file).st_mtime
    time.sleep(agent.LOCK_HEARTBEAT_SECONDS + 3)
    assert os.stat(owner_file).st_mtime > first
    finished = agent.run_action({"action": "finish", "path": str(path), "roots": roots, "token": answer["token"]})
    assert finished["ok"] is True


@needs_proc
def test_take_over_under_the_oldest_python_available(roots):
    olds = old_pythons_to_test()
    for number, exe in enumerate(olds):
        path = _half_made(roots, "old%d" % number)
        _lock_with(path, _owner(*_dead_process()))
        config = {"action": "begin", "create": True, "path": path, "roots": roots, "client_pid": os.getpid(),
                  "heartbeat": True}
        proc = subprocess.run([exe, "-", json.dumps(config)], input=AGENT_SOURCE.encode(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert proc.returncode == 0, proc.stderr.decode()
        answer = json.loads(proc.stdout.decode().split("ENVDESK-AGENT-JSON ", 1)[1])
        assert answer["ok"] is True and answer["took_over"] and answer["replaced_unfinished"], answer
        live = agent.run_action({"action": "delete", "path": path, "roots": roots})
        assert live["code"] == "busy"                       # its owner (this process) lives
        assert agent.run_action({"action": "abort", "path": path, "roots": roots, "token": answer["token"],
                                 "created": True})["ok"] is True


@needs_proc
def test_creating_what_another_envdesk_is_creating_says_to_wait_and_how_to_clear_the_lock(tmp_path, qtbot):
    """Creating an environment whose create runs elsewhere (its lock held by a live EnvDesk) was answered with
    'Pick another name or delete it first' (the window; the listing: 'Delete it and create it again'): it now says
    another EnvDesk is creating it, to wait, and, where none is, the lock to remove; doing that lets the create
    build it. The referees: the lock holder's own process (alive, as /proc says), then the new environment's own
    Python and uv pip freeze."""
    from envdesk.backend.inventory import read_inventory
    from envdesk.backend.local_runner import LocalRunner
    from envdesk_fixtures import freeze_here
    root = tmp_path / "envs"
    root.mkdir()
    config = tmp_path / "config"
    config.mkdir()
    (config / "clusters.yaml").write_text(f"local:\n  env_roots: [{json.dumps(str(root))}]\n")
    path = _half_made([str(root)], "busy")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        lock = _lock_with(path, _owner(holder.pid, _start_ticks(holder.pid)))
        assert os.path.isdir("/proc/%d" % holder.pid)    # the other EnvDesk is alive
        for words in (("env", "create", "local", "busy"), ("env", "list", "local", "--json")):
            said = subprocess.run([*envdesk_command(), "--config-dir", str(config), *words], capture_output=True,
                                  text=True, timeout=300)
            text = said.stdout + said.stderr
            assert "Another EnvDesk (on %s" % socket.gethostname() in text and "is creating this environment" in text
            assert "Wait for it to finish" in text and "rm -r %s" % lock in text, text
            assert "delete it" not in text.lower() and "envdesk -v" not in text, text
        listing = read_inventory(LocalRunner(), [str(root)], light=True)
        [listed] = listing.environments
        assert listed.state == "incomplete" and "is creating this environment" in (listed.error or "")
        from envdesk.backend.paths import AppPaths
        from envdesk.gui.controller import AppController
        from envdesk.gui.prompter import QtPrompter
        window = AppController(AppPaths(config), QtPrompter())
        try:  # the window leaves it to the create, which says the words above (it said 'delete it first')
            window.inventories["local"] = listing
            window.check_new_location("local", "busy")
        finally:
            window.shutdown()
    finally:
        holder.kill()
        holder.wait()
    # another computer's EnvDesk cannot be checked from here: its lock stays until removed as the words say
    shutil.rmtree(lock)
    _lock_with(path, _owner(4242, 1, host="another-node"))
    said = subprocess.run([*envdesk_command(), "--config-dir", str(config), "env", "create", "local", "busy"],
                          capture_output=True, text=True, timeout=300)
    assert said.returncode != 0 and "Another EnvDesk (on another-node" in said.stderr, said.stderr
    shutil.rmtree(lock)
    made = subprocess.run([*envdesk_command(), "--config-dir", str(config), "env", "create", "local", "busy"],
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    env = root / "busy"
    assert subprocess.run([str(env / "bin" / "python"), "-c", "import sys"], timeout=120).returncode == 0
    assert freeze_here(env) == set() and not os.path.exists(lock)
