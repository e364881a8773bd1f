"""How the agent is put together and sent: protocol constants from one place, the write part only for actions.

The agent (backend/agent/) is plain script parts; agent_client.agent_script joins a header generated from
backend/protocol.py, read.py and, for a write action only, write.py. These tests fail when the client and
the agent could disagree on a protocol value, when a listing would ship the write code, or when the read
part would need something only the write part defines.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from agent_fixtures import add_dist, load_agent, make_fake_venv, site_packages
from envdesk.backend import agent_client, protocol
from envdesk.backend.agent_client import (
    JUPYTER_PART,
    READ_PART,
    WRITE_PART,
    agent_part,
    agent_script,
    call_action,
    protocol_constants,
    protocol_header,
)
from envdesk.backend.errors import InvalidInput
from envdesk.backend.inventory import read_inventory
from envdesk.backend.local_runner import LocalRunner

# Values that name things on disk or mark the answer: no part may spell them out itself.
SPELLED_ONLY_IN_PROTOCOL = ("ANSWER_MARKER", "LOCK_SUFFIX", "LOCK_OWNER_FILE", "ENVDESK_DIR", "CREATING_MARK",
                            "META_FILE", "SNAPSHOTS_DIR", "STATE_BROKEN", "STATE_INCOMPLETE", "CODE_BUSY",
                            "CODE_EXISTS", "CODE_INVALID", "CODE_OUTSIDE", "CODE_MISSING", "CODE_OSERROR",
                            "CODE_FAILED", "CODE_DISK_FULL", "CODE_READ_ONLY", "CHANGING_MARK")


def top_level_names(source: str) -> set[str]:
    """Every name a script binds at its top level (defs, classes, assignments, imports)."""
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def write_functions() -> set[str]:
    """Names of the functions and classes only the write part defines."""
    return {node.name for node in ast.parse(agent_part(WRITE_PART)).body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))}


# ---------------------------------------------------------------------------
# Protocol constants: one place, and the agent sees the same values
# ---------------------------------------------------------------------------

def test_protocol_holds_only_plain_constants():
    constants = protocol_constants()
    assert {"ANSWER_MARKER", "LOCK_SUFFIX", "ENVDESK_DIR", "CREATING_MARK", "META_FILE"} <= set(constants)
    for name, value in constants.items():
        assert isinstance(value, (str, int, float, bool, tuple)), name
    tree = ast.parse(Path(protocol.__file__).read_text(encoding="utf-8"))
    for node in tree.body:  # a docstring and assignments of literals, nothing that runs
        assert isinstance(node, (ast.Expr, ast.Assign)), ast.dump(node)
        if isinstance(node, ast.Assign):
            ast.literal_eval(node.value)


def test_header_is_python_36_and_gives_back_every_value():
    header = protocol_header()
    ast.parse(header, feature_version=(3, 6))
    assert header.isascii()
    namespace: dict[str, Any] = {}
    exec(header, namespace)
    assert {k: v for k, v in namespace.items() if k != "__builtins__"} == protocol_constants()


@pytest.mark.parametrize("write", [False, True], ids=["read", "read+write"])
def test_the_agent_as_sent_sees_the_protocol_values(write):
    agent = load_agent(write=write)
    for name, value in protocol_constants().items():
        assert getattr(agent, name) == value, name


@pytest.mark.parametrize("part", [READ_PART, JUPYTER_PART, WRITE_PART])
def test_no_part_defines_or_spells_out_a_protocol_value(part):
    source = agent_part(part)
    redefined = top_level_names(source) & set(protocol_constants())
    assert not redefined, f"{part} defines {redefined}; they come from backend/protocol.py"
    values = {protocol_constants()[name]: name for name in SPELLED_ONLY_IN_PROTOCOL}
    tree = ast.parse(source)
    keys = {id(key) for node in ast.walk(tree) if isinstance(node, ast.Dict) for key in node.keys}  # {"snapshots": ...}
    spelled = sorted({(node.value, values[node.value]) for node in ast.walk(tree)
                      if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in values
                      and id(node) not in keys})
    assert not spelled, f"{part} writes these values out instead of using the protocol names: {spelled}"


def test_the_client_side_takes_its_values_from_protocol():
    assert agent_client.AGENT_MARKER is protocol.ANSWER_MARKER
    codes = {value for name, value in protocol_constants().items() if name.startswith("CODE_")}
    assert set(agent_client._REFUSALS) <= codes


def test_a_protocol_value_the_agent_cannot_be_sent_is_refused(monkeypatch):
    monkeypatch.setattr(protocol, "BAD_VALUE", {"a": 1}, raising=False)
    with pytest.raises(TypeError, match="BAD_VALUE"):
        protocol_header()


# ---------------------------------------------------------------------------
# The parts: the read part stands alone, the write part comes only with actions
# ---------------------------------------------------------------------------

def test_the_read_part_never_uses_the_write_part():
    used = {node.id for node in ast.walk(ast.parse(agent_part(READ_PART))) if isinstance(node, ast.Name)}
    only_in_write = top_level_names(agent_part(WRITE_PART)) - top_level_names(agent_part(READ_PART))
    assert used & only_in_write == set()
    assert "RUN_ACTION" in top_level_names(agent_part(READ_PART)) & top_level_names(agent_part(WRITE_PART))


def _bound_names(tree: ast.AST) -> set[str]:
    """Every name `tree` binds anywhere (functions, classes, assignments, imports, arguments, loop and with
    targets, except clauses, globals), whatever its scope: a loose net, for names bound nowhere at all."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.Global):
            bound.update(node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
    return bound


def test_every_name_the_agent_uses_is_bound_somewhere_in_it():
    """R20: a rename left write.py calling _name_of, bound nowhere, and every delete stopped by a colleague's
    folder ended in a NameError on the cluster; the parts' file-wide `noqa: F821` (their protocol constants
    come from the header) hid it from ruff. The whole script as sent must bind every name it loads."""
    import builtins
    tree = ast.parse(agent_script(write=True))
    loaded = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
    assert loaded - _bound_names(tree) - set(dir(builtins)) == set()


def test_scripts_are_the_parts_in_order():
    read, write = agent_script(write=False), agent_script(write=True)
    assert read.startswith(protocol_header())
    assert agent_part(READ_PART) in read and agent_part(WRITE_PART) not in read
    assert agent_part(JUPYTER_PART) not in read, "a listing ships no kernel code"
    assert (write.index(agent_part(READ_PART)) < write.index(agent_part(JUPYTER_PART))
            < write.index(agent_part(WRITE_PART))), "the write part uses the Jupyter part's functions"
    assert read.rstrip().endswith("sys.exit(main(sys.argv))") and write.rstrip().endswith("sys.exit(main(sys.argv))")
    assert len(read) < len(write) - len(agent_part(WRITE_PART)) - len(agent_part(JUPYTER_PART)) + 10


def test_the_read_only_script_refuses_an_action_in_its_answer(tmp_path):
    config = {"action": "delete", "path": str(tmp_path), "roots": [str(tmp_path.parent)]}
    proc = subprocess.run([sys.executable, "-", json.dumps(config)], input=agent_script(write=False).encode(),
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    answer = json.loads(proc.stdout.decode().split(protocol.ANSWER_MARKER, 1)[1])
    assert answer["ok"] is False and answer["code"] == protocol.CODE_INVALID
    assert "without its write actions" in answer["error"]
    assert tmp_path.is_dir()


# ---------------------------------------------------------------------------
# What the client really sends
# ---------------------------------------------------------------------------

class RecordingRunner:
    """A LocalRunner that keeps every script it is asked to run."""

    name = "recording"

    def __init__(self) -> None:
        self.inner = LocalRunner()
        self.sent: list[str] = []

    def run_python(self, source: str, args: list[str], **options: Any):
        self.sent.append(source)
        return self.inner.run_python(source, args, **options)


@pytest.fixture
def runner(tmp_path, monkeypatch) -> RecordingRunner:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in ("CONDA_ENVS_PATH", "CONDA_ENVS_DIRS", "CONDARC", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    return RecordingRunner()


def assert_read_part_only(script: str) -> None:
    assert agent_part(READ_PART) in script
    assert agent_part(WRITE_PART) not in script and agent_part(JUPYTER_PART) not in script
    leaked = sorted(name for name in write_functions() if f"def {name}(" in script or f"class {name}(" in script)
    assert leaked == [], f"a listing ships write code: {leaked}"
    assert len(script.encode()) < len(agent_script(write=True).encode()) - len(agent_part(WRITE_PART).encode()) + 500


def test_listing_and_showing_send_only_the_read_part(tmp_path, runner):
    root = tmp_path / "venvs"
    env = make_fake_venv(root / "one")
    add_dist(site_packages(env), "numpy", "2.0.0")
    listing = read_inventory(runner, [str(root)])  # type: ignore[arg-type]
    assert [e.name for e in listing.environments] == ["one"]
    shown = read_inventory(runner, [str(root)], paths=[env])  # type: ignore[arg-type]
    assert shown.environments[0].packages[0].name == "numpy"
    assert len(runner.sent) == 2
    for script in runner.sent:
        assert_read_part_only(script)


def test_write_actions_send_the_write_part_too(tmp_path, runner):
    root = tmp_path / "venvs"
    env = make_fake_venv(root / "one")
    measured = call_action(runner, "measure", env, [str(root)])  # type: ignore[arg-type]
    assert measured["files"] >= 2
    with pytest.raises(InvalidInput, match="not inside"):
        call_action(runner, "delete", str(tmp_path / "elsewhere" / "x"), [str(root)])  # type: ignore[arg-type]
    assert len(runner.sent) == 2
    for script in runner.sent:
        assert agent_part(READ_PART) in script and agent_part(WRITE_PART) in script
        assert "def action_begin(" in script
