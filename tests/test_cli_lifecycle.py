"""The write-side command line, end to end against the test bed, in its exact forms."""
from __future__ import annotations

import uuid

import pytest

from envdesk_fixtures import cli_json, make_config, run_cli


@pytest.fixture
def cli(testbed, tmp_path):
    config, home = tmp_path / "cfg", tmp_path / "home"
    home.mkdir()
    make_config(config, testbed, ["alpha", "beta"])

    def call(*args):
        return run_cli(*args, config=config, home=home)

    call.json = lambda *args: cli_json(*args, config=config, home=home)
    return call


def versions(shown):
    return {p["name"]: p["version"] for p in shown["packages"] if p["name"] not in ("pip", "setuptools")}


def test_create_update_history_revert_export_import_clone_delete(cli, tmp_path):
    name = f"cli-{uuid.uuid4().hex[:6]}"
    requirements = tmp_path / "req.txt"
    requirements.write_text("tinyalpha==1.0\n")
    created = cli("env", "create", "alpha", name, "--kind", "uv", "--module", "python/3.11.5",
                  "--requirements", str(requirements), "--package", "tinygamma")
    assert created.returncode == 0, created.stderr
    assert "==> Creating the environment (uv)" in created.stderr
    assert versions(cli.json("env", "show", "alpha", name)) == {"tinyalpha": "1.0", "tinygamma": "0.1"}

    updated = cli("env", "update", "alpha", name, "--upgrade", "tinyalpha", "--remove", "tinygamma")
    assert updated.returncode == 0, updated.stderr
    assert versions(cli.json("env", "show", "alpha", name)) == {"tinyalpha": "2.0"}
    history = cli.json("env", "history", "alpha", name)
    assert len(history) == 1 and {"id", "time", "reason", "package_count"} <= set(history[0])
    assert cli("env", "revert", "alpha", name, history[0]["id"]).returncode == 0
    assert versions(cli.json("env", "show", "alpha", name)) == {"tinyalpha": "1.0", "tinygamma": "0.1"}

    out = tmp_path / "exported.yaml"
    assert cli("env", "export", "alpha", name, "-o", str(out)).returncode == 0
    stdout_export = cli("env", "export", "alpha", name, "--format", "requirements")
    assert "tinyalpha==1.0" in stdout_export.stdout
    imported = cli("env", "import", "beta", str(out), "--name", name + "-imp")
    assert imported.returncode == 0, imported.stderr
    assert versions(cli.json("env", "show", "beta", name + "-imp")) == {"tinyalpha": "1.0", "tinygamma": "0.1"}

    cloned = cli("env", "clone", "alpha", name, "beta", "--name", name + "-cl")
    assert cloned.returncode == 0, cloned.stderr
    assert "Python/3.11.3" in cloned.stderr  # the module mapping is reported

    assert cli("env", "delete", "beta", name + "-cl").returncode == 1  # --yes is required
    assert cli("env", "delete", "beta", name + "-cl", "--yes").returncode == 0
    assert name + "-cl" not in [e["name"] for e in cli.json("env", "list", "beta")]


def test_errors_and_usage(cli, tmp_path):
    bad = cli("env", "create", "alpha", "x;id")
    assert bad.returncode == 1 and "cannot be an environment name" in bad.stderr and "Traceback" not in bad.stderr
    assert cli("env", "create", "alpha").returncode == 2
    assert cli("env", "export", "alpha", "nope", "--format", "pdf").returncode == 2
    hostile = tmp_path / "evil.yaml"
    hostile.write_text("envdesk: 1\nkind: venv\nmodules: ['$(touch /tmp/envdesk-canary)']\n")
    refused = cli("env", "import", "alpha", str(hostile))
    assert refused.returncode == 1 and "not a module name" in refused.stderr
    missing = cli("env", "update", "alpha", "does-not-exist", "--add", "tinygamma")
    assert missing.returncode == 1 and "no environment" in missing.stderr
