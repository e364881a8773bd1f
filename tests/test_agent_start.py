"""The agent's start on a cluster loads only what a listing or a begin uses.

Every agent call starts Python on the cluster; modules the call does not need (ast, platform, socket,
tempfile and what they pull in, hashlib's OpenSSL binding in the bootstrap) cost more than a small
listing's own work. Each test runs the three scripts a cluster is sent, in order (the storing script on
the first call, the bootstrap that compiles the stored agent, the bootstrap that runs the code kept from
that), in a fresh `python -I -S` on this machine's Pythons (3.6 where there is one), the way the app
sends them, and reads the modules loaded once the answer is given from sys.modules (printed at exit).
The answers are checked against the referees: the venv's package as written, and the Python's own
platform.python_version() and socket.gethostname().
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from agent_fixtures import add_dist, make_venv, old_pythons, site_packages
from envdesk.backend import agent_store
from envdesk.backend.agent_client import STORE_PART, agent_part, agent_script
from envdesk.backend.protocol import ANSWER_MARKER, LOCK_OWNER_FILE, LOCK_SUFFIX

PYTHONS = [*old_pythons()[:1], sys.executable]

# Loaded by none of these calls (a delete imports shutil and csv, a serving agent select).
HEAVY = {"ast", "platform", "select", "selectors", "socket", "tempfile", "random", "shutil", "csv",
         "hashlib", "_hashlib", "base64"}

MODULES_MARKER = "MODULES-AT-EXIT "
# Runs the script on standard input as `python -` does, and prints what sys.modules holds at exit.
LOADER = ("import atexit, sys\n"
          "atexit.register(lambda: sys.stderr.write(%r + ' '.join(sorted(sys.modules)) + '\\n'))\n"
          "exec(compile(sys.stdin.read(), '<stdin>', 'exec'))\n" % MODULES_MARKER)


def run(python: str, script: str, home: Path) -> tuple[dict, set[str], str]:
    """(the answer, the modules loaded at exit, stdout) of one script run in a fresh `python -I -S`."""
    result = subprocess.run([python, "-I", "-S", "-c", LOADER], input=script, capture_output=True, text=True,
                            env={"HOME": str(home), "PATH": os.environ["PATH"]}, timeout=120)
    answers = [line for line in result.stdout.splitlines() if line.startswith(ANSWER_MARKER)]
    modules = [line for line in result.stderr.splitlines() if line.startswith(MODULES_MARKER)]
    assert len(answers) == 1 and len(modules) == 1, result.stdout + result.stderr
    return (json.loads(answers[0][len(ANSWER_MARKER):]), set(modules[0][len(MODULES_MARKER):].split()),
            result.stdout)


def three_calls(python: str, agent: str, settings: str, home: Path, after=lambda: None) -> list[tuple[dict, set]]:
    """The answers and modules of the first three calls to a cluster: storing, compiling, running kept code."""
    digest = agent_store.agent_digest(agent)
    answer, modules, stdout = run(python, agent_store.storing_script(agent, settings, agent_part(STORE_PART)), home)
    assert agent_store.reports_stored(stdout, digest)
    calls = [(answer, modules)]
    after()
    answer, modules, stdout = run(python, agent_store.bootstrap_script(agent, settings), home)
    code = agent_store.reported_code(stdout, digest)
    assert code, "the bootstrap compiled the stored agent and kept the code"
    calls.append((answer, modules))
    after()
    answer, modules, stdout = run(python, agent_store.bootstrap_script(agent, settings, code), home)
    assert agent_store.CODE_MARKER not in stdout, "the kept code ran as is"
    calls.append((answer, modules))
    after()
    return calls


@pytest.fixture
def home(tmp_path) -> Path:
    folder = tmp_path / "home"
    venv = make_venv(folder / "venvs" / "one")
    add_dist(site_packages(venv), "tinyalpha", "1.0", requested=True)
    return folder


def referee(python: str, code: str) -> str:
    return subprocess.run([python, "-I", "-S", "-c", code], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("python", PYTHONS)
def test_a_listing_loads_none_of_the_heavy_modules(python, home):
    settings = json.dumps({"roots": [str(home / "venvs")]})
    version = referee(python, "import platform; print(platform.python_version(), end='')")
    host = referee(python, "import socket; print(socket.gethostname(), end='')")
    for answer, modules in three_calls(python, agent_script(write=False), settings, home):
        assert [(env["name"], [(p["name"], p["version"]) for p in env["packages"]])
                for env in answer["environments"]] == [("one", [("tinyalpha", "1.0")])]
        assert (answer["python"], answer["host"]) == (version, host)
        assert modules & HEAVY == set()


@pytest.mark.parametrize("python", PYTHONS)
def test_a_create_begin_loads_none_of_the_heavy_modules(python, home):
    new = home / "venvs" / "new"
    lock = Path(str(new) + LOCK_SUFFIX)
    settings = json.dumps({"action": "begin", "path": str(new), "roots": [str(home / "venvs")], "create": True,
                           "operation": "create"})
    host = referee(python, "import socket; print(socket.gethostname(), end='')")

    def taken_then_undone() -> None:  # each begin made the folder and took its lock, with its owner file
        owner = json.loads((lock / LOCK_OWNER_FILE).read_text())
        assert owner["host"] == host and len(owner["token"]) == 24
        assert sorted(p.name for p in lock.iterdir()) == [LOCK_OWNER_FILE], "no temporary file left"
        assert (lock / LOCK_OWNER_FILE).stat().st_mode & 0o777 == 0o666 & ~current_umask()
        (lock / LOCK_OWNER_FILE).unlink()
        lock.rmdir()
        for path in sorted(new.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        new.rmdir()

    for answer, modules in three_calls(python, agent_script(write=True), settings, home, taken_then_undone):
        assert answer["ok"] and answer["path"] == str(new)
        assert modules & HEAVY == set()


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
