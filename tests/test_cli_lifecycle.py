"""The write-side command line, end to end against the test bed, in its exact forms."""
from __future__ import annotations

import os
import re
import uuid

import pytest

from envdesk_fixtures import cli_json, freeze, freeze_lines, install_by_hand, make_config, run_cli, unique


@pytest.fixture
def cli(testbed, tmp_path):
    config, home = tmp_path / "cfg", tmp_path / "home"
    home.mkdir()
    make_config(config, testbed, ["alpha", "beta"])

    def call(*args):
        return run_cli(*args, config=config, home=home)

    call.json = lambda *args: cli_json(*args, config=config, home=home)
    return call


def test_create_update_history_revert_export_import_clone_delete(cli, testbed, tmp_path):
    """Each write is judged by the environment's own installer on the cluster (pip freeze or uv pip freeze), a
    delete by the folder's absence; `env show` only says where the environment is."""
    alpha, beta = testbed.clusters["alpha"], testbed.clusters["beta"]
    name = f"cli-{uuid.uuid4().hex[:6]}"
    requirements = tmp_path / "req.txt"
    requirements.write_text("tinyalpha==1.0\n")
    created = cli("env", "create", "alpha", name, "--kind", "uv", "--module", "python/3.11.5",
                  "--requirements", str(requirements), "--package", "tinygamma")
    assert created.returncode == 0, created.stderr
    assert "==> Creating the environment (uv)" in created.stderr
    path = cli.json("env", "show", "alpha", name)["path"]
    assert freeze(alpha, path) == {"tinyalpha==1.0", "tinygamma==0.1"}

    updated = cli("env", "update", "alpha", name, "--upgrade", "tinyalpha", "--remove", "tinygamma")
    assert updated.returncode == 0, updated.stderr
    assert freeze(alpha, path) == {"tinyalpha==2.0"}
    history = cli.json("env", "history", "alpha", name)
    assert len(history) == 1 and {"id", "time", "reason", "package_count"} <= set(history[0])
    assert cli("env", "revert", "alpha", name, history[0]["id"]).returncode == 0
    assert freeze(alpha, path) == {"tinyalpha==1.0", "tinygamma==0.1"}
    # T24: a snapshot id it does not have sent the user to 'env revert --help'; the command it gives, run as
    # given, lists the ids the revert takes
    wrong = cli("env", "revert", "alpha", name, "20250101T000000Z-1")
    given = re.search(r"The snapshots it has: envdesk (env history \S+ \S+)", wrong.stderr)
    assert wrong.returncode == 1 and given, wrong.stderr
    listed = cli.json(*given.group(1).split())
    assert history[0]["id"] in {snapshot["id"] for snapshot in listed}
    assert freeze(alpha, path) == {"tinyalpha==1.0", "tinygamma==0.1"}

    # the user adds a package by hand, which EnvDesk was never asked for: the export and both copies carry it
    install_by_hand(alpha, path, "tinybeta")
    source = freeze(alpha, path)
    assert source == {"tinyalpha==1.0", "tinybeta==1.0", "tinygamma==0.1"}
    out = tmp_path / "exported.yaml"
    assert cli("env", "export", "alpha", name, "-o", str(out)).returncode == 0
    stdout_export = cli("env", "export", "alpha", name, "--format", "requirements")
    assert freeze_lines(stdout_export.stdout) == source
    imported = cli("env", "import", "beta", str(out), "--name", name + "-imp")
    assert imported.returncode == 0, imported.stderr
    assert freeze(beta, cli.json("env", "show", "beta", name + "-imp")["path"]) == source

    cloned = cli("env", "clone", "alpha", name, "beta", "--name", name + "-cl")
    assert cloned.returncode == 0, cloned.stderr
    assert "Python/3.11.3" in cloned.stderr  # the module mapping is reported
    copy = cli.json("env", "show", "beta", name + "-cl")["path"]
    assert freeze(beta, copy) == source

    assert cli("env", "delete", "beta", name + "-cl").returncode == 1  # --yes is required
    assert os.path.lexists(copy)
    assert cli("env", "delete", "beta", name + "-cl", "--yes").returncode == 0
    assert not os.path.lexists(copy)


def test_errors_and_usage(cli, tmp_path):
    bad = cli("env", "create", "alpha", "x;id")
    assert bad.returncode == 1 and "cannot be an environment name" in bad.stderr and "Traceback" not in bad.stderr
    assert cli("env", "create", "alpha").returncode == 2
    assert cli("env", "export", "alpha", "nope", "--format", "pdf").returncode == 2
    hostile = tmp_path / "evil.yaml"
    hostile.write_text(f"envdesk: 1\nkind: venv\nmodules: ['$(touch /tmp/{unique('envdesk-canary')})']\n")
    refused = cli("env", "import", "alpha", str(hostile))
    assert refused.returncode == 1 and "not a module name" in refused.stderr
    missing = cli("env", "update", "alpha", "does-not-exist", "--add", "tinygamma")
    assert missing.returncode == 1 and "no environment" in missing.stderr


def test_a_plain_requirements_file_gets_the_kind_a_new_environment_gets(cli, testbed, tmp_path):
    """T24: on alpha, which has uv, `env create` made a uv environment and `env import` of a plain requirements
    file a venv (python -m venv, pip seeded: slower, and not what the README promises for new environments). The
    referee is the pyvenv.cfg each tool writes: uv venv records 'uv = VERSION', python -m venv does not. A file
    that names its kind (an export's '# envdesk: kind=venv' header) keeps it."""
    alpha = testbed.clusters["alpha"]
    plain, named = tmp_path / "requirements.txt", tmp_path / "exported.txt"
    plain.write_text("tinyalpha==1.0\n")
    named.write_text("# envdesk: kind=venv\ntinyalpha==1.0\n")

    def made_by_uv(path: str) -> bool:
        return re.search(r"^uv = ", alpha.run_as_user(f"cat {path}/pyvenv.cfg").stdout, re.M) is not None

    paths = {}
    for label, args in (("created", ("env", "create", "alpha", "{name}")),
                        ("imported", ("env", "import", "alpha", str(plain), "--name", "{name}")),
                        ("named", ("env", "import", "alpha", str(named), "--name", "{name}"))):
        name = f"kind-{label}-{uuid.uuid4().hex[:6]}"
        done = cli(*(arg.format(name=name) for arg in args))
        assert done.returncode == 0, done.stderr
        paths[label] = cli.json("env", "show", "alpha", name)["path"]
    assert made_by_uv(paths["created"]) and made_by_uv(paths["imported"])
    assert not made_by_uv(paths["named"])
    assert freeze(alpha, paths["imported"]) == freeze(alpha, paths["named"]) == {"tinyalpha==1.0"}
