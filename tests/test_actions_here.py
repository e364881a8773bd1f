"""On "This computer" the agent's short write actions run inside EnvDesk's own process (issue 11: a create's begin
and finish were a Python each, ~30 ms apiece, most of what EnvDesk added to uv's time there).

Referees: the kernel (strace counts the Pythons a create starts; /proc says which process owns the lock and when
it started), CPython's audit hooks (whether a process compiles the agent), the file system (the lock's owner file
touched by the heartbeat, the kept code's sha256 by hashlib) and uv, which says what the new environment holds.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest

from envdesk.backend import agent_here
from envdesk.backend.agent_client import agent_script, call_action
from envdesk.backend.errors import Busy, Cancelled, CommandFailed
from envdesk.backend.local_runner import LocalRunner
from envdesk.backend.protocol import ENVDESK_DIR, META_FILE
from envdesk.backend.runner import CancelToken
from agent_fixtures import load_agent, umask_set
from envdesk_fixtures import envdesk_command
from test_local_agent_store import uv_list
from testbed.wheels import WheelSpec, build_wheel

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")

PINS = [WheelSpec("tinyalpha", "1.1"), WheelSpec("tinygamma", "0.1")]
AGENT_RUN = re.compile(r'execve\("[^"]*", \[[^\]]*"-I", "-S", "-"\].* = 0$')  # LocalRunner.run_python's Python
WRITE_AGENT = agent_script(write=True)
# Run before the command line: counts the compiles of a source of the agent's size (CPython's audit events).
COUNTING = ("import sys, atexit\ncompiled = []\n"
            "sys.addaudithook(lambda event, args: compiled.append(1) if event == 'compile' and args and "
            "isinstance(args[0], (str, bytes)) and len(args[0]) > 100000 else None)\n"
            "atexit.register(lambda: sys.stderr.write('\\nAGENT-COMPILES %d\\n' % len(compiled)))\n"
            "from envdesk.launch import main\nsys.argv[0] = 'envdesk'\nsys.exit(main())\n")


def start_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as handle:
        return int(handle.read().rsplit(b")", 1)[1].split()[19])


@pytest.fixture
def this_computer(tmp_path) -> dict[str, Path]:
    """A config folder whose This computer makes environments in `envs` from the wheels in `wheels`."""
    assert shutil.which("uv") and shutil.which("strace"), "uv and strace are needed (tests/system-deps.sh)"
    folders = {name: tmp_path / name for name in ("wheels", "envs", "config", "home")}
    for folder in folders.values():
        folder.mkdir()
    for spec in PINS:
        build_wheel(folders["wheels"], spec)
    (folders["config"] / "clusters.yaml").write_text(json.dumps({"local": {
        "env_roots": [str(folders["envs"])], "pip_args": ["--no-index", "--find-links", str(folders["wheels"])]}}))
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("".join(f"{spec.name}=={spec.version}\n" for spec in PINS))
    folders["requirements"] = requirements
    return folders


def create(folders: dict[str, Path], name: str, *before: str, envdesk: tuple[str, ...] = ()) -> \
        subprocess.CompletedProcess:
    """`envdesk env create local NAME` from the requirements (`before`: a program that runs the command line)."""
    environ = {**{k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}, "HOME": str(folders["home"])}
    command = [*before, *(envdesk or envdesk_command()), "--config-dir", str(folders["config"]), "env", "create",
               "local", name, "--kind", "uv", "--requirements", str(folders["requirements"])]
    return subprocess.run(command, capture_output=True, text=True, env=environ, timeout=300)


def counting_create(folders: dict[str, Path], name: str) -> tuple[subprocess.CompletedProcess, int]:
    """A create by the command line's code in a Python that counts its compiles of the agent."""
    ran = create(folders, name, envdesk=(sys.executable, "-c", COUNTING))
    found = re.findall(r"AGENT-COMPILES (\d+)", ran.stderr)
    assert ran.returncode == 0 and found, ran.stdout + ran.stderr
    return ran, int(found[-1])


def test_a_local_create_starts_no_python_for_the_agent(this_computer, tmp_path):
    trace = tmp_path / "trace"
    ran = create(this_computer, "made", "strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    made = this_computer["envs"] / "made"
    assert uv_list(made) == {spec.name: spec.version for spec in PINS}
    assert not (made / ".envdesk" / "CREATING").exists() and (made / ".envdesk" / "meta.json").is_file()
    assert not Path(str(made) + ".envdesk-lock").exists(), "the finish released the lock"
    agents = [line for line in trace.read_text().splitlines() if AGENT_RUN.search(line)]
    assert agents == [], "the begin and the finish ran in the command line's own process"


def test_the_agent_is_compiled_once_then_its_kept_code_is_run_after_checking_it(this_computer):
    _, compiles = counting_create(this_computer, "first")
    assert compiles == 1
    [kept] = (this_computer["config"] / "cache" / agent_here.CODE_FOLDER).iterdir()
    check, _, code = kept.read_bytes().partition(b"\n")
    assert check.decode() == hashlib.sha256(code).hexdigest()
    _, compiles = counting_create(this_computer, "second")
    assert compiles == 0, "the next process runs the kept code"
    kept.write_bytes(check + b"\n" + code[:-1] + bytes([code[-1] ^ 1]))  # one bit changed: not what was kept
    _, compiles = counting_create(this_computer, "third")
    assert compiles == 1
    check, _, code = kept.read_bytes().partition(b"\n")
    assert check.decode() == hashlib.sha256(code).hexdigest()
    for name in ("first", "second", "third"):
        assert uv_list(this_computer["envs"] / name) == {spec.name: spec.version for spec in PINS}


def test_this_process_owns_the_lock_it_takes_here_and_beats_it_from_a_thread(tmp_path, monkeypatch):
    """The begin run here names this process (as /proc knows it) as the lock's owner and keeps the lock fresh
    from a thread, no process forked for it; another client is told the environment is busy; the finish
    releases the lock and the beating ends."""
    roots = [str(tmp_path / "envs")]
    path = os.path.join(roots[0], "made")
    runner = LocalRunner(tmp_path / "cache")
    namespace = agent_here._namespace(WRITE_AGENT, runner.local_cache)
    monkeypatch.setitem(namespace, "LOCK_HEARTBEAT_SECONDS", 1)
    earlier = set(threading.enumerate())  # other tests' beaters may still run in this process
    began = call_action(runner, "begin", path, roots, create=True, client_pid=os.getpid(), heartbeat=True,
                        operation="create")
    owner_file = Path(path + ".envdesk-lock") / "owner.json"
    owner = json.loads(owner_file.read_text())
    assert (owner["pid"], owner["pid_start"], owner["watch"]) == (os.getpid(), start_ticks(os.getpid()), "client")
    assert owner["beat"] == 1
    beaters = [thread for thread in threading.enumerate()
               if thread.name == "envdesk-lock-heartbeat" and thread not in earlier]
    assert len(beaters) == 1
    first = owner_file.stat().st_mtime_ns
    deadline = time.monotonic() + 60
    while owner_file.stat().st_mtime_ns == first and time.monotonic() < deadline:
        time.sleep(0.2)
    assert owner_file.stat().st_mtime_ns != first, "the heartbeat touched the owner file"

    other = {"action": "begin", "create": True, "path": path, "roots": roots, "client_pid": 1, "heartbeat": False}
    refused = subprocess.run([sys.executable, "-", json.dumps(other)], input=WRITE_AGENT.encode(),
                             capture_output=True, timeout=60)
    answer = json.loads(refused.stdout.decode().split("ENVDESK-AGENT-JSON ", 1)[1])
    assert answer["code"] == "busy", answer
    with pytest.raises(Busy):
        call_action(runner, "begin", path, roots, create=True, client_pid=os.getpid(), operation="create")

    call_action(runner, "finish", path, roots, token=began["token"])
    assert not owner_file.parent.exists()
    beaters[0].join(30)
    assert not beaters[0].is_alive(), "the beating ended with the lock"


def test_two_actions_at_once_each_keep_their_own_time_limit(tmp_path, monkeypatch):
    """Two threads reading environments at once (two operations in the window), the first to start leaving
    first: neither leaves its time limit behind, so a later action of this process is not stopped by it once it
    has run out (the agent's limit for reading one environment, shortened to a second here)."""
    roots = [str(tmp_path / "envs")]
    for name in ("A", "B"):
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", os.path.join(roots[0], name)], check=True,
                       timeout=300)
    runner = LocalRunner(tmp_path / "cache")
    namespace = agent_here._namespace(WRITE_AGENT, runner.local_cache)
    monkeypatch.setattr(namespace["read_env"], "__defaults__", (1.0,))
    real = namespace["read_venv"]
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def read_venv(env, problems, light=False):  # orders the two: A starts, B starts, A ends, then B ends
        if env["name"] == "A":
            a_in.set()
            b_in.wait(30)
        else:
            a_in.wait(30)
            b_in.set()
            a_out.wait(30)
        real(env, problems, light)
        if env["name"] == "A":
            a_out.set()

    monkeypatch.setitem(namespace, "read_venv", read_venv)
    answers: dict[str, dict] = {}

    def begin(name: str) -> None:
        answers[name] = call_action(runner, "begin", os.path.join(roots[0], name), roots, client_pid=os.getpid(),
                                    operation="update")

    threads = [threading.Thread(target=begin, args=(name,)) for name in ("A", "B")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(answers) == ["A", "B"] and a_out.is_set()
    monkeypatch.setitem(namespace, "read_venv", real)
    time.sleep(1.5)  # past every limit set so far
    for name in ("A", "B"):
        call_action(runner, "finish", os.path.join(roots[0], name), roots, token=answers[name]["token"])
        assert not os.path.exists(os.path.join(roots[0], name) + ".envdesk-lock")


def test_a_base_python_that_came_back_is_seen_by_the_next_action(tmp_path):
    """What the agent found out about the Python an environment was made from holds for one answer only: run in
    this process, the next action looks again (an environment whose Python was put back no longer says so)."""
    roots = [str(tmp_path / "envs")]
    env, home = tmp_path / "envs" / "A", tmp_path / "pyhome" / "bin"
    (env / "bin").mkdir(parents=True)
    (env / "lib").mkdir()
    (env / "pyvenv.cfg").write_text(f"home = {home}\nversion = 3.11.2\ninclude-system-site-packages = false\n")
    runner = LocalRunner(tmp_path / "cache")
    states = []
    for _ in range(2):
        began = call_action(runner, "begin", str(env), roots, client_pid=os.getpid(), operation="update")
        call_action(runner, "finish", str(env), roots, token=began["token"])
        states.append(f"({home}) is no longer there" in (began["env"].get("error") or ""))
        home.mkdir(parents=True, exist_ok=True)
    assert states == [True, False]


def test_notes_written_here_follow_the_umask_a_test_set(tmp_path):
    """The agent run in this process reads the umask once; a test that changes it does so with umask_set, and the
    notes an action then writes have the mode that umask gives. Referee: the umask itself (0o666 & ~mask)."""
    roots = [str(tmp_path / "envs")]
    env = tmp_path / "envs" / "A"
    (env / "bin").mkdir(parents=True)
    (env / "pyvenv.cfg").write_text(f"home = {Path(sys.executable).parent}\ninclude-system-site-packages = false\n")
    runner = LocalRunner(tmp_path / "cache")
    modes = []
    for mask in (0o022, 0o027):
        with umask_set(mask):
            began = call_action(runner, "begin", str(env), roots, client_pid=os.getpid(), operation="update")
            call_action(runner, "finish", str(env), roots, token=began["token"], meta={"requested": ["tinyalpha"]})
        modes.append(stat.S_IMODE((env / ENVDESK_DIR / META_FILE).stat().st_mode))
    assert modes == [0o666 & ~0o022, 0o666 & ~0o027]


@pytest.mark.parametrize("system, recorded", [("nt", False), ("posix", True)])
def test_where_no_process_can_be_watched_the_lock_names_no_owner(monkeypatch, system, recorded):
    """Without /proc, on Windows (where whether a process still runs cannot be told) a lock taken by the agent run
    in its client's process names no owner process, so the 24-hour rule still frees the lock of a client that
    crashed; on macOS (POSIX: os.kill tells) it names the client, as on Linux."""
    agent = load_agent(write=True)
    like = types.ModuleType("os")
    like.__dict__.update(os.__dict__)
    like.name = system
    monkeypatch.setattr(agent, "os", like)
    monkeypatch.setattr(agent, "_has_proc", lambda: False)
    assert agent.IN_CLIENT
    owner = agent._owner_process(os.getpid())
    assert owner == ((os.getpid(), None, "client") if recorded else None)


def test_kept_code_others_may_write_is_not_run(this_computer):
    """Code in a file (or a folder) that other users may write could be anyone's: it is compiled again instead."""
    _, compiles = counting_create(this_computer, "first")
    [kept] = (this_computer["config"] / "cache" / agent_here.CODE_FOLDER).iterdir()
    kept.chmod(0o666)
    _, compiles = counting_create(this_computer, "second")
    assert compiles == 1 and stat.S_IMODE(kept.stat().st_mode) & 0o022 == 0, "written again, the user's own"
    kept.parent.chmod(0o777)
    _, compiles = counting_create(this_computer, "third")
    assert compiles == 1
    kept.parent.chmod(0o700)
    _, compiles = counting_create(this_computer, "fourth")
    assert compiles == 0


@pytest.fixture
def stalled_begin(tmp_path, monkeypatch):
    """A create's begin run here that stops answering once it has taken the lock and made the folder, until
    `gate` opens: a stand-in for a file system that stopped answering (a network folder whose connection
    dropped), which cannot exist on this machine. The gate opens by itself after a minute, so that code which
    waits for the begin whatever the time limit still ends (and fails)."""
    roots = [str(tmp_path / "envs")]
    runner = LocalRunner(tmp_path / "cache")
    namespace = agent_here._namespace(WRITE_AGENT, runner.local_cache)
    real, stalled, gate = namespace["_write_mark"], threading.Event(), threading.Event()

    def write_mark(path):
        real(path)
        stalled.set()
        gate.wait()

    monkeypatch.setitem(namespace, "_write_mark", write_mark)
    fail_safe = threading.Timer(60, gate.set)
    fail_safe.start()
    yield runner, os.path.join(roots[0], "stalled"), roots, stalled, gate
    gate.set()
    fail_safe.cancel()


def _call_threads() -> set[threading.Thread]:
    """The threads running agent calls here now (none where calls ran on their caller's thread)."""
    name = getattr(agent_here, "CALL_THREAD", None)
    return {thread for thread in threading.enumerate() if thread.name == name}


def _begin(runner: LocalRunner, path: str, roots: list[str], **limits) -> dict:
    from envdesk.backend.agent_client import run_agent
    return run_agent(runner, {"action": "begin", "create": True, "path": path, "roots": roots,
                              "client_pid": os.getpid(), "heartbeat": True, "operation": "create"}, **limits)


def test_a_begin_whose_file_system_stops_answering_ends_at_its_time_limit_and_gives_its_lock_back(stalled_begin):
    """The caller gets a plain error at the call's time limit, as from a command, not a thread blocked for ever;
    when the file system answers again, the abandoned begin removes the folder it made and releases the lock
    (the file system is the referee)."""
    runner, path, roots, stalled, gate = stalled_begin
    earlier = _call_threads()
    with pytest.raises(CommandFailed, match="did not finish within 0.5 seconds") as raised:
        _begin(runner, path, roots, timeout=0.5)
    assert stalled.is_set() and not gate.is_set(), "the begin was still stalled when the caller got the error"
    assert "file system that stopped answering" in raised.value.hint
    assert os.path.isdir(path + ".envdesk-lock") and os.path.isdir(path), "taken and made before it stalled"
    gate.set()
    for thread in _call_threads() - earlier:
        thread.join(60)
    assert not os.path.lexists(path + ".envdesk-lock") and not os.path.lexists(path)
    assert os.listdir(roots[0]) == []


def test_a_cancel_stops_the_wait_for_a_stalled_begin(stalled_begin):
    """A cancel ends the wait at once (no time limit reached), with the same clean-up once the begin ends."""
    runner, path, roots, stalled, gate = stalled_begin
    cancel = CancelToken()
    threading.Thread(target=lambda: stalled.wait(60) and cancel.cancel(), daemon=True).start()
    earlier = _call_threads()
    with pytest.raises(Cancelled):
        _begin(runner, path, roots, cancel=cancel, timeout=600)
    assert not gate.is_set()
    gate.set()
    for thread in _call_threads() - earlier:
        thread.join(60)
    assert os.listdir(roots[0]) == []


def test_a_ctrl_c_while_a_begin_runs_here_leaves_nothing_locked(stalled_begin):
    """Ctrl-C in the terminal while the begin is under way: once the begin ends (soon after, here), its folder and
    lock are gone, as the agent's own clean-up did when it ran as a command (the review found both left)."""
    runner, path, roots, stalled, gate = stalled_begin
    assert threading.current_thread() is threading.main_thread()

    def press_ctrl_c_then_let_it_answer() -> None:
        stalled.wait(60)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        time.sleep(0.5)
        gate.set()

    earlier = _call_threads()
    threading.Thread(target=press_ctrl_c_then_let_it_answer, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        _begin(runner, path, roots, timeout=600)
    for thread in _call_threads() - earlier:
        thread.join(60)
    assert os.listdir(roots[0]) == []
