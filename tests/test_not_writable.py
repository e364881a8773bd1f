"""Permission denied, said as such (T19, LOW: a create in a read-only root and a change of a read-only environment
said only 'Run it again as envdesk -v …'): the message names the folder that is not writable, the hint says what
to do (chmod u+w, or another folder), and nothing changes.

On the test bed's alpha, whose user is not root, so permissions hold (as root they would not). Referees: the file
system (every entry and its bytes) and pip freeze.
"""
from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from envdesk.backend.operations.create import CreateRequest, create_environment
from envdesk_fixtures import make_config, run_cli, session_for, unique
from test_delete_safety import listing
from test_failing_installs import pip_freeze


@pytest.fixture
def alpha(testbed, tmp_path, home):
    """(cluster, a root of its own in the user's home, config folder, session, HOME for the CLI: conftest's home)."""
    cluster = testbed.clusters["alpha"]
    root = cluster.home / f"delroot-{uuid.uuid4().hex[:6]}"
    cluster.run_as_user(f"mkdir {root}")
    config = tmp_path / "cfg"
    session = session_for(make_config(config, testbed, ["alpha"], alpha={"env_roots": [str(root)]}))
    try:
        yield cluster, root, config, session, home
    finally:
        session.close()
        cluster.run_as_user(f"chmod -R u+w {root}; rm -rf {root}", check=False)


def made(alpha, name: str) -> Path:
    cluster, root, _, session, _ = alpha
    create_environment(session, "alpha", CreateRequest(name=name, packages=["tinyalpha==1.0"]))
    return root / name


def delete(alpha, path: Path) -> subprocess.CompletedProcess:
    _, _, config, _, home = alpha
    return run_cli("env", "delete", "alpha", str(path), "--yes", config=config, home=home)


def runs(env: Path) -> bool:
    """The referee: the environment's own python starts and imports its package."""
    python = env / "bin" / "python"
    return python.exists() and subprocess.run([str(python), "-c", "import tinyalpha"],
                                              capture_output=True).returncode == 0



def test_creating_in_a_read_only_root_says_the_root_is_not_writable(alpha):
    cluster, root, config, _, home = alpha
    cluster.run_as_user(f"chmod a-w {root}")
    result = run_cli("env", "create", "alpha", unique("new"), "--package", "tinyalpha==1.0", config=config, home=home)
    assert result.returncode != 0 and os.listdir(root) == []
    assert f"{root} is not writable for you" in result.stderr and "chmod u+w" in result.stderr, result.stderr
    assert "envdesk -v" not in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_changing_a_read_only_environment_says_which_folder_is_not_writable(alpha):
    """Only EnvDesk's folder in it is read-only: the environment is listed as writable (its settings are), and the
    change stops at its snapshot, naming that folder (a whole read-only one is refused before: test_read_only_own)."""
    cluster, root, config, _, home = alpha
    env = made(alpha, unique("rw"))
    frozen = pip_freeze(env)
    cluster.run_as_user(f"chmod -R a-w {env}/.envdesk")
    before = listing(root)
    result = run_cli("env", "update", "alpha", str(env), "--add", "tinygamma", config=config, home=home)
    assert result.returncode != 0 and listing(root) == before and pip_freeze(env) == frozen
    assert f"{env}/.envdesk" in result.stderr and "is not writable for you" in result.stderr, result.stderr
    assert "chmod u+w" in result.stderr and "envdesk -v" not in result.stderr, result.stderr


def test_a_package_whose_metadata_is_not_readable_makes_the_environment_broken_and_says_chmod(alpha):
    """A METADATA its user cannot read (chmod a-r) left the environment 'ok, but it may not work': Python finds no
    Name there, so pip and uv do not see the package. env show and the doctor now say broken, naming the package
    and the chmod that mends it; after that chmod it is listed ok again. Referee: the environment's own
    importlib.metadata, run as the cluster's user."""
    import json
    cluster, root, config, _, home = alpha
    name = unique("unread")
    env = made(alpha, name)
    [metadata] = env.glob("lib/python*/site-packages/tinyalpha-1.0.dist-info/METADATA")
    nameless = ("import importlib.metadata as m; print([d._path.name for d in m.distributions() "
                "if not d.metadata['Name']])")
    cluster.run_as_user(f"chmod a-r {metadata}")
    said = cluster.run_as_user(f"{env}/bin/python -c \"{nameless}\"").stdout
    assert said.strip() == "['tinyalpha-1.0.dist-info']", said

    def cli_json(*args: str):
        result = run_cli(*args, "--json", config=config, home=home)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)
    shown = cli_json("env", "show", "alpha", name)
    assert shown["state"] == "broken" and "metadata of tinyalpha-1.0.dist-info" in shown["error"], shown
    assert f"{metadata}: permission denied" in shown["error"], shown["error"]
    assert f"chmod -R u+rX {metadata.parent}" in shown["error"], shown["error"]
    [found] = [f for f in cli_json("env", "doctor", "alpha", name)["findings"] if f["code"] == "unreadable-metadata"]
    assert "tinyalpha-1.0.dist-info" in found["title"] and "chmod -R u+rX" in found["advice"], found
    cluster.run_as_user(f"chmod -R u+rX {metadata.parent}")
    assert cluster.run_as_user(f"{env}/bin/python -c \"{nameless}\"").stdout.strip() == "[]"
    assert cli_json("env", "show", "alpha", name)["state"] == "ok"


def test_a_site_packages_folder_its_user_cannot_read_makes_the_environment_broken(alpha):
    """chmod 0 on site-packages: Python finds none of its packages. On alpha, whose user is not root (the agent's
    in-process tests run as root, which reads any folder). Referee: the environment's own Python, as the user."""
    import json
    cluster, root, config, _, home = alpha
    name = unique("unlisted")
    env = made(alpha, name)
    [site] = env.glob("lib/python*/site-packages")
    cluster.run_as_user(f"chmod 0 {site}")
    try:
        assert cluster.run_as_user(f"{env}/bin/python -c 'import tinyalpha'", check=False).returncode != 0
        result = run_cli("env", "show", "alpha", name, "--json", config=config, home=home)
    finally:
        cluster.run_as_user(f"chmod 755 {site}")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["state"] == "broken" and "permission denied" in shown["error"].lower(), shown
