"""This computer keeps the agent as a cluster does (agent_store): stored once under its sha256, then each call,
in a new process too (each command line call), sends the bootstrap, which runs the code compiled from the stored
copy instead of compiling its source again (issue 11: that compile was most of each local agent call's time).

Referees: the kernel (strace counts the Pythons the command line starts), the file system (what is stored, its
sha256 computed here with hashlib, its mode; the kept code's inode and mtime, which a new compile changes), and
uv, which says what an environment holds. The store part and the bootstrap are also run by a Python whose os
module lacks what Windows lacks (O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY, files opened relative to a folder).
"""
from __future__ import annotations

import hashlib
import json
import marshal
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from envdesk.backend import agent_store
from envdesk.backend.agent_client import STORE_PART, agent_part, agent_script
from envdesk.backend.local_runner import THIS_COMPUTER
from envdesk.backend.protocol import ANSWER_MARKER
from agent_fixtures import old_pythons
from envdesk_fixtures import canon, envdesk_command, this_computer_with_one_venv

READ_AGENT = agent_script(write=False)
DIGEST = hashlib.sha256(READ_AGENT.encode("utf-8")).hexdigest()
AGENT_RUN = re.compile(r'execve\("[^"]*", \[[^\]]*"-I", "-S", "-"\].* = 0$')  # LocalRunner.run_python's Python


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def bed(tmp_path) -> tuple[Path, Path, Path]:
    """(config folder, environments folder, HOME): "This computer" lists one real venv, `plain`."""
    need("strace", "uv")
    config, envs = this_computer_with_one_venv(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    return config, envs, home


def need(*programs: str) -> None:
    for program in programs:
        assert shutil.which(program), f"{program} is needed (tests/system-deps.sh installs it)"


def store_folder(home: Path) -> Path:
    return home / ".cache" / "envdesk" / "agent"


def code_files(home: Path, tag: str = sys.implementation.cache_tag) -> list[Path]:
    """The code kept from the stored listing agent by the Pythons whose cache_tag is `tag`."""
    return sorted(store_folder(home).glob(f"{DIGEST}.{tag}.code"))


def uv_list(env: Path) -> dict[str, str]:
    """What uv says the environment holds: {normalized name: version}."""
    result = subprocess.run(["uv", "pip", "list", "--python", str(env / "bin" / "python"), "--format", "json"],
                            check=True, capture_output=True, text=True, timeout=300)
    return {canon(p["name"]): p["version"] for p in json.loads(result.stdout)}


def show(bed: tuple[Path, Path, Path], trace: Path) -> tuple[dict[str, str], int]:
    """`envdesk env show local plain --json` in a new process under strace: what it lists ({normalized name:
    version}) and how many Pythons it started for the agent."""
    config, _, home = bed
    environ = {**{k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "XDG_CACHE_HOME")},
               "HOME": str(home)}
    result = subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace), *envdesk_command(),
                             "--config-dir", str(config), "env", "show", "local", "plain", "--json"],
                            capture_output=True, text=True, env=environ, timeout=300)
    assert result.returncode == 0, result.stderr
    runs = sum(1 for line in trace.read_text().splitlines() if AGENT_RUN.search(line))
    return {canon(p["name"]): p["version"] for p in json.loads(result.stdout)["packages"]}, runs


def noted_code(config: Path) -> str:
    """The sha256 of the kept code this computer's notes hold for the listing agent."""
    record = json.loads((config / "cache" / agent_store.RECORD_FILE).read_text())
    return record["code"][THIS_COMPUTER][DIGEST]


def assert_stored(home: Path) -> None:
    """The listing agent is stored under its sha256, 0600 in a 0700 folder."""
    stored = store_folder(home) / f"{DIGEST}.py"
    assert sha256(stored.read_bytes()) == DIGEST
    assert stat.S_IMODE(stored.lstat().st_mode) == 0o600
    assert stat.S_IMODE(store_folder(home).lstat().st_mode) == 0o700


def identity(path: Path) -> tuple[int, int]:
    info = path.lstat()
    return info.st_ino, info.st_mtime_ns


def test_a_new_process_runs_the_code_kept_from_the_stored_agent(bed, tmp_path):
    config, envs, home = bed
    expected = uv_list(envs / "plain")
    assert expected == {"tinyalpha": "1.1", "tiny-beta": "2.0"}
    assert show(bed, tmp_path / "trace-1") == (expected, 1), "stored as it runs: one Python"
    assert_stored(home)
    assert code_files(home) == []
    assert show(bed, tmp_path / "trace-2") == (expected, 1), "the bootstrap: one Python"
    [code] = code_files(home)
    assert stat.S_IMODE(code.lstat().st_mode) == 0o600
    assert noted_code(config) == sha256(code.read_bytes())
    kept = identity(code)
    assert show(bed, tmp_path / "trace-3") == (expected, 1)
    assert identity(code) == kept, "the agent was compiled again: its code was written anew"


def with_canary(agent: str, canary: Path) -> str:
    return f"open({str(canary)!r}, 'w').close()\n" + agent


def test_a_changed_stored_agent_or_kept_code_is_not_run_and_is_replaced(bed, tmp_path):
    config, envs, home = bed
    expected = uv_list(envs / "plain")
    for number in (1, 2):
        show(bed, tmp_path / f"trace-{number}")
    stored, [code] = store_folder(home) / f"{DIGEST}.py", code_files(home)
    canary = tmp_path / "canary"
    stored.write_text(with_canary(READ_AGENT, canary))
    assert show(bed, tmp_path / "trace-3") == (expected, 2), "asked for the agent, then sent it"
    assert not canary.exists(), "a stored agent whose sha256 is not its name was run"
    assert_stored(home)

    planted = marshal.dumps(compile(with_canary(READ_AGENT, canary), "x", "exec"))  # this Python's: it would run
    code.write_bytes(planted)
    assert show(bed, tmp_path / "trace-4") == (expected, 1)
    assert not canary.exists(), "kept code whose sha256 is not the one noted was run"
    assert sha256(code.read_bytes()) == noted_code(config) != sha256(planted)


def test_a_stale_note_costs_one_more_run_and_still_answers_right(bed, tmp_path):
    config, envs, home = bed
    expected = uv_list(envs / "plain")
    show(bed, tmp_path / "trace-1")
    shutil.rmtree(store_folder(home))  # a cache clean-up: the notes still say it is kept
    assert show(bed, tmp_path / "trace-2") == (expected, 2)
    assert_stored(home)
    assert show(bed, tmp_path / "trace-3") == (expected, 1)


# What Windows' os module lacks, taken away from this computer's: the store part and the bootstrap must still
# store the agent, and run it and its kept code, through paths.
AS_ON_WINDOWS = ("import os\n"
                 "for envdesk_name in ('O_NOFOLLOW', 'O_NONBLOCK', 'O_DIRECTORY'): delattr(os, envdesk_name)\n"
                 "os.supports_dir_fd = set()\n")


PYTHONS = [*old_pythons()[:1], sys.executable]  # the oldest the agent runs on (where there is one), and this one


def run_as_on_windows(script: str, home: Path, python: str) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-I", "-S", "-"], input=(AS_ON_WINDOWS + script).encode(),
                          capture_output=True, env={"HOME": str(home), "PATH": os.environ["PATH"]}, timeout=120)


def answer_of(stdout: bytes) -> dict:
    [line] = [line for line in stdout.decode().splitlines() if line.startswith(ANSWER_MARKER)]
    return json.loads(line[len(ANSWER_MARKER):])


@pytest.mark.parametrize("python", PYTHONS)
def test_the_agent_is_stored_and_its_code_kept_without_what_windows_lacks(bed, python):
    _, envs, home = bed
    tag = subprocess.run([python, "-c", "import sys; print(sys.implementation.cache_tag)"], check=True,
                         capture_output=True, text=True).stdout.strip()
    settings = json.dumps({"roots": [str(envs)]})
    stored = run_as_on_windows(agent_store.storing_script(READ_AGENT, settings, agent_part(STORE_PART)), home,
                               python)
    assert stored.returncode == 0, stored.stderr
    assert agent_store.reports_stored(stored.stdout.decode(), DIGEST)
    assert_stored(home)
    listed = answer_of(stored.stdout)["environments"]
    assert [env["name"] for env in listed] == ["plain"]
    compiled = run_as_on_windows(agent_store.bootstrap_script(READ_AGENT, settings), home, python)
    assert compiled.returncode == 0, compiled.stderr
    [code] = code_files(home, tag)
    assert agent_store.reported_code(compiled.stdout.decode(), DIGEST) == sha256(code.read_bytes())
    kept = identity(code)
    ran = run_as_on_windows(agent_store.bootstrap_script(READ_AGENT, settings, sha256(code.read_bytes())), home,
                            python)
    assert ran.returncode == 0, ran.stderr
    assert answer_of(ran.stdout)["environments"] == answer_of(compiled.stdout)["environments"] == listed
    assert identity(code) == kept


@pytest.mark.parametrize("python", PYTHONS)
def test_a_linked_store_folder_is_not_written_through_without_descriptors(bed, tmp_path, python):
    _, envs, home = bed
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    store_folder(home).parent.mkdir(parents=True)
    store_folder(home).symlink_to(elsewhere)
    settings = json.dumps({"roots": [str(envs)]})
    result = run_as_on_windows(agent_store.storing_script(READ_AGENT, settings, agent_part(STORE_PART)), home,
                               python)
    assert result.returncode == 0, result.stderr
    assert [env["name"] for env in answer_of(result.stdout)["environments"]] == ["plain"]
    assert not agent_store.reports_stored(result.stdout.decode(), DIGEST)
    assert list(elsewhere.iterdir()) == []
