"""The agent is sent to a cluster once per version, kept there under its sha256, and checked before each use.

Against the real SSH test bed. Bytes are counted where they leave: every write paramiko makes on a session
channel (a command's stdin: the shell line that starts Python, then the script) and, as a cross-check, the
TCP bytes the kernel counts for this process's connections to the cluster (ss). Commands are counted from
sshd's own log; what a target keeps is read from its disk, its sha256 computed here with hashlib.
The remote parts are also run for real on this machine's Python 3.6 where the test bed cannot go: a full
disk (RLIMIT_FSIZE), $XDG_CACHE_HOME, a Python without zlib.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shlex
import resource
import stat
import subprocess
import sys
import shutil
import uuid
import zlib
from pathlib import Path

import paramiko
import pytest

from agent_fixtures import make_fake_venv, old_pythons
from envdesk.backend import agent_store
from envdesk.backend.agent_client import READ_PART, STORE_PART, WRITE_PART, agent_part, agent_script, call_action
from envdesk.backend.inventory import read_inventory
from envdesk.backend.local_runner import LocalRunner
from envdesk.backend.protocol import ANSWER_MARKER
from envdesk_fixtures import envdesk_command, make_config, session_for

SMALL = 2048  # what a call to a target that keeps the agent may send on stdin, at most
READ_AGENT = agent_script(write=False)
WRITE_AGENT = agent_script(write=True)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ChannelInput:
    """Every chunk paramiko is asked to write on a session channel (the commands' stdin), as sent."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.chunks: list[bytes] = []
        original = paramiko.Channel.send  # what sendall and a piecewise sending both come down to

        def send(channel: paramiko.Channel, data: bytes) -> int:
            taken = original(channel, data)
            self.chunks.append(bytes(data[:taken]))
            return taken
        monkeypatch.setattr(paramiko.Channel, "send", send)

    def take(self) -> list[bytes]:
        """The chunks sent since the last take."""
        chunks, self.chunks = self.chunks, []
        return chunks


def tcp_bytes_sent(port: int) -> int:
    """What the kernel says this process sent on its TCP connections to `port` (ss: bytes_sent)."""
    out = subprocess.run(["ss", "-tinpH", "state", "established", "dport", "=", f":{port}"],
                         capture_output=True, text=True, check=True).stdout
    total, ours = 0, False
    for line in out.splitlines():
        if not line.startswith((" ", "\t")):  # a socket's line: whose is it?
            ours = f"pid={os.getpid()}," in line
        elif ours:
            found = re.search(r"\bbytes_sent:(\d+)", line)
            total += int(found.group(1)) if found else 0
    return total


class Alpha:
    """The alpha cluster seen from the test: its disk, its sshd log, a session on a given config folder."""

    def __init__(self, testbed, tmp_path: Path) -> None:
        self.cluster = testbed.clusters["alpha"]
        self.testbed = testbed
        self.config = tmp_path / "cfg"
        self.paths = make_config(self.config, testbed, ["alpha"])
        self.store = self.cluster.home / ".cache" / "envdesk" / "agent"
        self.sessions: list = []
        self.wipe()

    def wipe(self) -> None:
        """No agent kept on the cluster (and nothing left over from another test: modes, links, files)."""
        self.cluster.run_as_user("chmod u+rwx ~/.cache ~/.cache/envdesk ~/.cache/envdesk/agent 2>/dev/null; "
                                 "rm -rf ~/.cache/envdesk")

    def runner(self):
        """A fresh session's runner (a new process would have one), connected."""
        session = session_for(self.paths)
        self.sessions.append(session)
        runner = session.target("alpha").runner
        runner.connect()
        return runner

    def commands(self) -> int:
        return len(self.cluster.session_commands())

    def stored(self) -> dict[str, bytes]:
        """The agents kept in the store folder on the cluster's disk, by name (not the code compiled from them)."""
        if not self.store.is_dir():
            return {}
        return {path.name: path.read_bytes() for path in self.store.iterdir() if path.suffix == ".py"}

    def compiled(self, digest: str) -> list[Path]:
        """The code files compiled from the agent `digest` in the store folder (one per Python that ran it)."""
        return sorted(self.store.glob(f"{digest}.*.code")) if self.store.is_dir() else []

    def as_user(self, path: Path) -> None:
        """Give a file planted by the test (as root) to the cluster's user, as if the user had made it."""
        owner = self.cluster.home.stat()
        os.lchown(path, owner.st_uid, owner.st_gid)

    def close(self) -> None:
        for session in self.sessions:
            session.close()
        self.wipe()


@pytest.fixture
def alpha(testbed, sample_envs, tmp_path, home):
    bed = Alpha(testbed, tmp_path)
    yield bed
    bed.close()


@pytest.fixture
def sent(monkeypatch) -> ChannelInput:
    return ChannelInput(monkeypatch)


ROOTS = ["~/venvs", "~/projects"]


def assert_lists_alpha(inventory, sample_envs) -> None:
    """The listing found every environment the test bed made on alpha (under the listed roots)."""
    listed = {env.path for env in inventory.environments}
    made = {made["path"] for made in sample_envs["alpha"].values() if "/.conda/" not in made["path"]}
    assert made <= listed, made - listed


def one_call(alpha: Alpha, sent: ChannelInput, runner, sample_envs) -> tuple[int, int]:
    """List alpha once: (remote commands, bytes written on stdin); the listing itself is checked."""
    before = alpha.commands()
    sent.take()
    assert_lists_alpha(read_inventory(runner, ROOTS), sample_envs)
    return alpha.commands() - before, sum(len(chunk) for chunk in sent.take())


# ---------------------------------------------------------------------------
# Over SSH
# ---------------------------------------------------------------------------

def test_first_call_stores_the_agent_later_calls_send_a_small_bootstrap(alpha, sent, sample_envs):
    digest = sha256(READ_AGENT.encode())
    runner = alpha.runner()
    port = alpha.cluster.port
    wire = tcp_bytes_sent(port)
    commands, first = one_call(alpha, sent, runner, sample_envs)
    first_wire, wire = tcp_bytes_sent(port) - wire, tcp_bytes_sent(port)
    assert commands == 1, "a listing is still one remote command"
    assert first <= len(READ_AGENT.encode()), "the first call sends no more than the agent itself"

    kept = alpha.stored()
    assert list(kept) == [f"{digest}.py"], kept.keys()
    assert sha256(kept[f"{digest}.py"]) == digest and kept[f"{digest}.py"] == READ_AGENT.encode()
    assert agent_part(WRITE_PART).encode() not in kept[f"{digest}.py"], "a listing keeps no write code"
    owner = alpha.cluster.home.stat().st_uid
    for folder in (alpha.store.parent, alpha.store):
        info = folder.lstat()
        assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == owner
    info = (alpha.store / f"{digest}.py").lstat()
    assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == owner

    commands, second = one_call(alpha, sent, runner, sample_envs)
    second_wire = tcp_bytes_sent(port) - wire
    assert commands == 1 and second < SMALL, second
    assert second_wire * 5 < first_wire, (second_wire, first_wire)

    fresh = alpha.runner()  # a new session on the same config folder: what a new CLI process has
    commands, third = one_call(alpha, sent, fresh, sample_envs)
    assert commands == 1 and third < SMALL, third
    assert (alpha.store / f"{digest}.py").lstat().st_ino == info.st_ino, "a kept agent is not written again"


def test_a_write_action_keeps_its_own_variant(alpha, sent, sample_envs):
    runner = alpha.runner()
    env = sample_envs["alpha"]["plainvenv"]["path"]
    sizes = []
    for _ in range(2):
        before = alpha.commands()
        sent.take()
        measured = call_action(runner, "measure", env, ["~/venvs"])
        sizes.append(sum(len(chunk) for chunk in sent.take()))
        assert alpha.commands() - before == 1
        assert measured["files"] > 10
    assert sizes[0] <= len(WRITE_AGENT.encode()) and sizes[1] < SMALL, sizes
    assert alpha.stored() == {f"{sha256(WRITE_AGENT.encode())}.py": WRITE_AGENT.encode()}


def plant(alpha: Alpha, path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)
    alpha.as_user(path)


def with_canary(agent: str, canary: Path) -> str:
    """The agent with a first line that creates `canary`, its comment lines left out so that it is no longer
    than the agent (all of it is read, and it runs and answers, if anything runs it)."""
    planted = f"open({str(canary)!r}, 'w').close()\n" + re.sub(r"(?m)^[ \t]*#.*\n", "", agent)
    assert len(planted.encode()) <= len(agent.encode())
    return planted


def test_a_changed_stored_agent_is_never_run_and_is_replaced(alpha, sent, sample_envs):
    digest = sha256(READ_AGENT.encode())
    runner = alpha.runner()
    one_call(alpha, sent, runner, sample_envs)
    canary = alpha.cluster.home / f"canary-{uuid.uuid4().hex[:8]}"
    planted = with_canary(READ_AGENT, canary)
    plant(alpha, alpha.store / f"{digest}.py", planted)

    commands, _ = one_call(alpha, sent, runner, sample_envs)  # the listing still answers (checked in one_call)
    assert not canary.exists(), "a stored agent whose hash is wrong was run"
    assert commands == 2, "the bootstrap asks for the agent, which is then sent"
    assert sha256(alpha.stored()[f"{digest}.py"]) == digest, "the right agent is stored again"

    # The referee for the canary: the planted code, run as the user, does make it (and answers).
    ran = alpha.cluster.run_as_user("python3 - '{}'", input=planted)
    assert canary.exists() and ANSWER_MARKER in ran.stdout
    canary.unlink()


def test_a_link_planted_in_the_store_is_not_followed(alpha, sent, sample_envs):
    digest = sha256(READ_AGENT.encode())
    runner = alpha.runner()
    one_call(alpha, sent, runner, sample_envs)
    elsewhere = alpha.cluster.home / f"elsewhere-{uuid.uuid4().hex[:8]}.py"
    plant(alpha, elsewhere, READ_AGENT)  # even the right agent is not run through a link
    before = elsewhere.stat()
    stored = alpha.store / f"{digest}.py"
    stored.unlink()
    stored.symlink_to(elsewhere)
    alpha.as_user(stored)

    commands, _ = one_call(alpha, sent, runner, sample_envs)
    assert commands == 2, "the bootstrap did not read through the link: it asked for the agent"
    assert stat.S_ISREG(stored.lstat().st_mode) and sha256(stored.read_bytes()) == digest, "the link was replaced"
    after = elsewhere.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
    elsewhere.unlink()


def test_a_linked_store_folder_is_not_written_through(alpha, sent, sample_envs):
    elsewhere = alpha.cluster.home / f"elsewhere-{uuid.uuid4().hex[:8]}"
    alpha.cluster.run_as_user(f"mkdir -p ~/.cache {elsewhere} && ln -s {elsewhere} ~/.cache/envdesk")
    runner = alpha.runner()
    for _ in range(2):  # not noted as kept: no bootstrap that would cost a second command
        commands, size = one_call(alpha, sent, runner, sample_envs)
        assert commands == 1 and size > SMALL
    assert not (elsewhere / "agent").exists(), "no agent stored through the link"
    alpha.cluster.run_as_user(f"rm -rf {elsewhere}")


def test_a_removed_stored_agent_costs_one_more_command_and_is_stored_again(alpha, sent, sample_envs):
    digest = sha256(READ_AGENT.encode())
    runner = alpha.runner()
    one_call(alpha, sent, runner, sample_envs)
    (alpha.store / f"{digest}.py").unlink()
    fresh = alpha.runner()  # noted on this computer's disk, gone on the cluster
    commands, _ = one_call(alpha, sent, fresh, sample_envs)
    assert commands == 2
    assert sha256(alpha.stored()[f"{digest}.py"]) == digest
    commands, size = one_call(alpha, sent, fresh, sample_envs)
    assert commands == 1 and size < SMALL


def cli_listing_bytes(alpha: Alpha, home: Path, trace: Path) -> int:
    """Run `envdesk env list alpha` as a new process under strace; the bytes it wrote to alpha's sshd."""
    env = {**os.environ, "HOME": str(home)}
    env.pop("SSH_AUTH_SOCK", None)
    subprocess.run(["strace", "-f", "-qq", "-yy", "-e", "trace=write,sendto,sendmsg", "-e", "signal=none",
                    "-o", str(trace), *envdesk_command(), "--config-dir", str(alpha.config),
                    "env", "list", "alpha", "--json"], check=True, capture_output=True, env=env, timeout=300,
                   stdin=subprocess.DEVNULL)
    sshd = rf"127\.0\.0\.1:{alpha.cluster.port}"
    to_sshd = re.compile(rf"^\d+\s+(?:write|sendto|sendmsg)\(\d+<TCP:\[[^]]*->{sshd}\]>.*= (\d+)$")
    return sum(int(found.group(1)) for line in trace.read_text().splitlines() if (found := to_sshd.match(line)))


def test_a_new_process_sends_the_bootstrap_too(alpha, sample_envs, tmp_path, home):
    assert shutil.which("strace"), "strace is needed (tests/system-deps.sh installs it)"
    sizes = []
    for number in range(3):
        before = alpha.commands()
        sizes.append(cli_listing_bytes(alpha, home, tmp_path / f"trace-{number}.txt"))
        assert alpha.commands() - before == 1
    digest = sha256(READ_AGENT.encode())
    assert sha256(alpha.stored()[f"{digest}.py"]) == digest
    compressed = len(zlib.compress(READ_AGENT.encode(), 9))  # what the first process had to send more, at least
    assert sizes[1] + compressed < sizes[0] and abs(sizes[2] - sizes[1]) < SMALL, sizes


@pytest.mark.parametrize("locked", ["~/.cache/envdesk/agent", "~/.cache"])
def test_an_unwritable_cache_folder_still_answers(alpha, sent, sample_envs, locked):
    alpha.cluster.run_as_user(f"mkdir -p {locked} && chmod 500 {locked}")
    runner = alpha.runner()
    for _ in range(2):
        commands, size = one_call(alpha, sent, runner, sample_envs)
        assert commands == 1 and size > SMALL, "not stored: sent whole again, without a failed bootstrap first"
    assert alpha.stored() == {}


# ---------------------------------------------------------------------------
# The remote parts on this machine's Pythons (3.6 where there is one)
# ---------------------------------------------------------------------------

PYTHONS = [*old_pythons()[:1], sys.executable]


def run_script(script: str, home: Path, python: str = sys.executable, env: dict[str, str] | None = None,
               preexec=None) -> subprocess.CompletedProcess:
    environ = {"HOME": str(home), "PATH": os.environ["PATH"], **(env or {})}
    return subprocess.run([python, "-"], input=script.encode(), capture_output=True, env=environ, timeout=120,
                          preexec_fn=preexec)


def answer_of(stdout: bytes) -> dict:
    lines = [line for line in stdout.decode().splitlines() if line.startswith(ANSWER_MARKER)]
    assert len(lines) == 1, stdout
    return json.loads(lines[0][len(ANSWER_MARKER):])


@pytest.fixture
def venvs(tmp_path) -> Path:
    root = tmp_path / "venvs"
    make_fake_venv(root / "one")
    return root


@pytest.mark.parametrize("python", PYTHONS)
def test_store_then_bootstrap_honour_xdg_cache_home(tmp_path, venvs, python):
    home, cache = tmp_path / "home", tmp_path / "xdg"
    home.mkdir()
    settings = json.dumps({"roots": [str(venvs)]})
    digest = sha256(READ_AGENT.encode())
    storing = agent_store.storing_script(READ_AGENT, settings, agent_part(STORE_PART))
    stored = run_script(storing, home, python, {"XDG_CACHE_HOME": str(cache)})
    assert stored.returncode == 0, stored.stderr
    assert [e["name"] for e in answer_of(stored.stdout)["environments"]] == ["one"]
    assert sha256((cache / "envdesk" / "agent" / f"{digest}.py").read_bytes()) == digest
    assert not (home / ".cache").exists()
    booted = run_script(agent_store.bootstrap_script(READ_AGENT, settings), home, python,
                        {"XDG_CACHE_HOME": str(cache)})
    assert answer_of(booted.stdout) == {**answer_of(stored.stdout), "elapsed": answer_of(booted.stdout)["elapsed"]}
    relative = run_script(agent_store.bootstrap_script(READ_AGENT, settings), home, python,
                          {"XDG_CACHE_HOME": "relative/cache"})  # not absolute: ignored, as the XDG spec says
    assert answer_of(relative.stdout) == {agent_store.NEED_AGENT: digest}


def test_a_full_disk_leaves_the_agent_unstored_and_still_answers(tmp_path, venvs):
    home = tmp_path / "home"
    home.mkdir()
    limit = len(READ_AGENT.encode()) // 2

    def small_files() -> None:  # writing past `limit` bytes fails with EFBIG, as on a full disk or quota
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    storing = agent_store.storing_script(READ_AGENT, json.dumps({"roots": [str(venvs)]}), agent_part(STORE_PART))
    result = run_script(storing, home, preexec=small_files)
    assert result.returncode == 0, result.stderr
    assert [e["name"] for e in answer_of(result.stdout)["environments"]] == ["one"]
    assert agent_store.STORED_MARKER.encode() not in result.stdout
    assert list((home / ".cache" / "envdesk" / "agent").iterdir()) == [], "no file, not even a temporary one"


class ZlibLessRunner(LocalRunner):
    """This computer's Python with zlib removed, reached by a route as a cluster is: a Python built without zlib."""

    calls = 0

    def route(self) -> list[str]:
        return ["someone@zlibless:22"]

    def run_python(self, source, args, *, timeout=None, cancel=None):
        self.calls += 1
        loader = "import sys; sys.modules['zlib'] = None; exec(compile(sys.stdin.read(), '<stdin>', 'exec'))"
        return self.run([sys.executable, "-c", loader, *args], stdin=source.encode(), timeout=timeout, cancel=cancel)


def test_a_python_without_zlib_gets_the_agent_as_is(tmp_path, venvs, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    runner = ZlibLessRunner()
    for expected_calls in (2, 3):  # asked once, then sent as is at once
        listed = read_inventory(runner, [str(venvs)])
        assert [e.name for e in listed.environments] == ["one"] and runner.calls == expected_calls
    assert not (tmp_path / "home" / ".cache").exists()


def test_a_local_runner_without_a_cache_folder_is_sent_the_agent_as_is(tmp_path, venvs, monkeypatch):
    """A LocalRunner made on its own (a tool's, a test's) notes nothing, so stores nothing; the app's and the
    command line's have the cache folder and store it (test_local_agent_store)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    sent: list[str] = []

    class Recording(LocalRunner):
        def run_python(self, source, args, **options):
            sent.append(source)
            return super().run_python(source, args, **options)

    runner = Recording()
    for _ in range(2):
        assert [e.name for e in read_inventory(runner, [str(venvs)]).environments] == ["one"]
    assert all(agent_part(READ_PART) in script for script in sent) and len(sent) == 2
    assert not (tmp_path / "home" / ".cache").exists()


def module_names(source: str) -> set[str]:
    """The names a script binds at module level (in its blocks too, not in its functions), imports aside."""
    names: set[str] = set()
    pending: list[ast.AST] = list(ast.parse(source, feature_version=(3, 6)).body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        pending.extend(ast.iter_child_nodes(node))
    return names


def test_the_remote_scripts_are_python_36_and_replace_none_of_the_agents_names():
    agent_names = module_names(WRITE_AGENT)
    for script in (agent_store.bootstrap_script(WRITE_AGENT, "{}"),
                   agent_store.storing_script(WRITE_AGENT, "{}", agent_part(STORE_PART))):
        assert module_names(script) & agent_names == set(), "the agent's own names must not be replaced"
    assert len(agent_store.bootstrap_script(WRITE_AGENT, "{}", "0" * 64).encode()) < 1280


# -- the code compiled from the stored agent -------------------------------------------------------

def test_the_compiled_agent_is_kept_and_run_without_compiling_again(alpha, sent, sample_envs):
    """The second call compiles the stored agent and keeps the code, the client notes the code's sha256
    (checked here on the cluster's disk), and the third call runs that code: the file is not written again."""
    digest = sha256(READ_AGENT.encode())
    runner = alpha.runner()
    one_call(alpha, sent, runner, sample_envs)  # stores the agent
    assert alpha.compiled(digest) == []
    commands, size = one_call(alpha, sent, runner, sample_envs)  # the bootstrap compiles it, and keeps the code
    assert commands == 1 and size < SMALL
    [code] = alpha.compiled(digest)
    info = code.lstat()
    assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == alpha.cluster.home.stat().st_uid
    noted = agent_store.notes_for(runner).code(digest)
    assert noted == sha256(code.read_bytes())
    assert agent_store.notes_for(alpha.runner()).code(digest) == noted, "noted on this computer's disk too"

    commands, size = one_call(alpha, sent, runner, sample_envs)
    assert commands == 1 and size < SMALL
    after = code.lstat()
    assert (after.st_ino, after.st_mtime_ns) == (info.st_ino, info.st_mtime_ns), "the kept code was run as is"


def test_changed_compiled_code_is_never_run_and_is_replaced(alpha, sent, sample_envs):
    digest = sha256(READ_AGENT.encode())
    runner = alpha.runner()
    for _ in range(2):
        one_call(alpha, sent, runner, sample_envs)
    [code] = alpha.compiled(digest)
    canary = alpha.cluster.home / f"canary-{uuid.uuid4().hex[:8]}"
    python = alpha.cluster.run_as_user("python3 -c 'import sys; print(sys.implementation.cache_tag)'").stdout.strip()
    assert code.name == f"{digest}.{python}.code"
    source = alpha.cluster.home / "planted.py"
    plant(alpha, source, with_canary(READ_AGENT, canary))
    compile_to = ("import marshal, sys; "
                  "open(sys.argv[1], 'wb').write(marshal.dumps(compile(open(sys.argv[2]).read(), 'x', 'exec')))")
    # valid code for that Python, made by that Python: it would run if loaded
    alpha.cluster.run_as_user(f"python3 -c {shlex.quote(compile_to)} {code} {source}")
    planted = code.read_bytes()
    source.unlink()

    commands, _ = one_call(alpha, sent, runner, sample_envs)
    assert not canary.exists(), "compiled code whose sha256 is not the one noted was run"
    assert commands == 1, "the stored agent was compiled again instead"
    assert sha256(code.read_bytes()) == agent_store.notes_for(runner).code(digest) != sha256(planted)
