"""A create on "This computer" loads no more than it needs (issue 11). EnvDesk's version, which every new
environment records, is written once in backend/about.py, where pyproject.toml reads it for the package's metadata:
no importlib.metadata and the email package it parses metadata with (~25 ms of each `envdesk env create`);
clusters.yaml, while it holds the text it was last parsed from, is taken from the parse kept in the cache folder,
without loading PyYAML (~12 ms of every command line call). Nor packaging, whose parser the plain pins of a
requirements file do not need (~15 ms), nor datetime or platformdirs. Counted as imported modules, never timed.

Referees: importlib.metadata itself (the installed package's version), PyYAML's own safe_load (what
clusters.yaml says), and uv, which says what the new environment holds.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata

import pytest

from test_actions_here import PINS, this_computer  # noqa: F401  # a fixture: This computer and its wheels
from test_local_agent_store import uv_list
from test_startup import PROBE  # the command line, printing the modules it loaded



@pytest.mark.skipif(os.name != "posix", reason="the build runs in bash")
def test_a_local_create_loads_neither_importlib_metadata_nor_pyyaml(this_computer, tmp_path):  # noqa: F811
    root, config, requirements = this_computer["envs"], this_computer["config"], this_computer["requirements"]
    environ = {**{k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}, "HOME": str(this_computer["home"])}
    listed = subprocess.run([sys.executable, "-c", PROBE, "--config-dir", str(config), "env", "list", "local",
                             "--json"], capture_output=True, text=True, env=environ, cwd=str(tmp_path), timeout=300)
    assert json.loads(listed.stdout) == [], listed.stderr  # an earlier command parsed clusters.yaml
    ran = subprocess.run([sys.executable, "-c", PROBE, "--config-dir", str(config), "env", "create", "local", "made",
                          "--kind", "uv", "--requirements", str(requirements)],
                         capture_output=True, text=True, env=environ, cwd=str(tmp_path), timeout=300)
    assert (root / "made" / ".envdesk" / "meta.json").exists(), ran.stdout + ran.stderr
    assert uv_list(root / "made") == {spec.name: spec.version for spec in PINS}
    meta = json.loads((root / "made" / ".envdesk" / "meta.json").read_text())
    assert meta["created_with"] == f"EnvDesk {metadata.version('envdesk')}"
    loaded = json.loads(ran.stderr.strip().splitlines()[-1])
    assert [name for name in loaded if name in ("importlib.metadata", "email", "yaml")
            or name.startswith(("email.", "yaml."))] == []
    # nor packaging (plain pins are checked without it), datetime (the time recorded is written with time),
    # platform (uuid's), platformdirs (the folder is given), nor the listing a create does not use
    assert [name for name in loaded if name.split(".")[0] in ("packaging", "datetime", "platform", "platformdirs",
                                                               "uuid")
            or name == "envdesk.backend.operations.listing"] == []
    # nor importlib.resources and the zipfile its readers load (the agent's parts are read from their folder),
    # unless Python itself loads them at its start here (a .pth file in site-packages may)
    started = subprocess.run([sys.executable, "-c", "import json, sys; print(json.dumps(sorted(sys.modules)))"],
                             capture_output=True, text=True, env=environ, check=True, timeout=120)
    at_start = set(json.loads(started.stdout))
    assert [name for name in loaded if name.startswith(("importlib.resources", "zipfile")) and name not in at_start] \
        == []



@pytest.mark.skipif(os.name != "posix", reason="the build runs in bash")
def test_a_local_import_of_plain_pins_does_not_load_packaging(this_computer, tmp_path):  # noqa: F811
    """A requirements file of plain pins has no download URL to look at (importing.outside_sources), so packaging's
    parser is not loaded for it; uv says what the imported environment holds."""
    root, config, requirements = this_computer["envs"], this_computer["config"], this_computer["requirements"]
    environ = {**{k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}, "HOME": str(this_computer["home"])}
    ran = subprocess.run([sys.executable, "-c", PROBE, "--config-dir", str(config), "env", "import", "local",
                          str(requirements), "--name", "imported"],
                         capture_output=True, text=True, env=environ, cwd=str(tmp_path), timeout=300)
    held = uv_list(root / "imported")
    assert {spec.name: held.get(spec.name) for spec in PINS} == {spec.name: spec.version for spec in PINS}, \
        ran.stdout + ran.stderr
    loaded = json.loads(ran.stderr.strip().splitlines()[-1])
    assert [name for name in loaded if name.split(".")[0] == "packaging"] == []


COMPILED_AT_IMPORT = """
import json, re, sys
compiled = []
real = re.compile
def counted(pattern, flags=0):
    compiled.append(sys._getframe(1).f_globals.get("__name__"))
    return real(pattern, flags)
re.compile = counted
import envdesk.cli, envdesk.commands, envdesk.backend.operations.create, envdesk.backend.operations.importing
re.compile("counted")  # as a module's own line compiles
print(json.dumps(compiled))
"""


def test_the_create_s_checks_compile_their_patterns_when_used():
    """validate, spec, quota, recipes and the operations' common part compile no pattern when imported (~6 ms of
    each command, most of them never used by it): re compiles each on its first use."""
    ran = subprocess.run([sys.executable, "-c", COMPILED_AT_IMPORT], capture_output=True, text=True, timeout=120,
                         check=True)
    compiled = json.loads(ran.stdout)
    assert "__main__" in compiled  # the count sees a module's own re.compile
    assert [name for name in compiled if name in ("envdesk.backend.validate", "envdesk.backend.spec",
                                                  "envdesk.backend.quota", "envdesk.backend.recipes",
                                                  "envdesk.backend.operations.common")] == []


def test_the_version_recorded_is_the_installed_package_s():
    from envdesk.backend.about import version
    assert version() == metadata.version("envdesk")


def test_the_kept_parse_of_clusters_yaml_follows_the_file(tmp_path):
    """The store answers what PyYAML reads in clusters.yaml as it is now: after a change in place that keeps its
    size, after a broken file (the plain error), and for a file JSON cannot hold (a date), which is never kept."""
    import yaml

    from envdesk.backend.config import ClusterProfile, ClusterStore
    from envdesk.backend.errors import ConfigError
    from envdesk.backend.paths import AppPaths
    paths = AppPaths(tmp_path / "cfg")
    kept = paths.clusters_parsed

    def read() -> list[str]:
        return [profile.name for profile in ClusterStore(paths).load()]

    def truth() -> list[str]:
        return [entry["name"] for entry in yaml.safe_load(paths.clusters_file.read_text())["clusters"]]

    ClusterStore(paths).add(ClusterProfile(name="alpha", host="example.org"))
    assert read() == truth() == ["alpha"] and kept.is_file()
    text = paths.clusters_file.read_text(encoding="utf-8")
    paths.clusters_file.write_text(text.replace("alpha", "gamma"), encoding="utf-8")  # same size, in place
    assert read() == truth() == ["gamma"]
    paths.clusters_file.write_text("clusters: [oops", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read()
    paths.clusters_file.write_text(text.replace("alpha", "delta"), encoding="utf-8")
    assert read() == truth() == ["delta"]
    kept.unlink()
    paths.clusters_file.write_text(text.replace("alpha", "omega") + "local:\n  since: 2024-01-01\n",
                                   encoding="utf-8")
    assert read() == truth() == ["omega"]
    assert not kept.exists()  # a date: JSON would not give it back as YAML does
    with pytest.raises(ConfigError, match="local"):
        ClusterStore(paths).local_settings()  # as before: the date is read as PyYAML reads it, and refused


def test_a_clusters_yaml_with_a_credential_is_never_copied(tmp_path):
    """A token the user put in pip_args stays in clusters.yaml alone: its parse is not kept (the file is then
    parsed by each command, as before), by the commands' store nor by the window's list of names."""
    from envdesk.backend.cache import ClusterNames
    from envdesk.backend.config import ClusterStore
    from envdesk.backend.paths import AppPaths
    paths = AppPaths(tmp_path / "cfg")
    paths.clusters_file.parent.mkdir(parents=True)
    token = "tok" + os.urandom(8).hex()
    links = f"https://envdesk:{token}@index.example.org/simple/"
    paths.clusters_file.write_text(f"clusters: []\nlocal:\n  pip_args: [--extra-index-url, '{links}']\n")
    for _ in range(2):
        assert ClusterStore(paths).local_settings().pip_args == ["--extra-index-url", links]
        assert ClusterNames(paths).load() == []
    kept = [path for path in tmp_path.rglob("*") if path.is_file() and token in path.read_text(errors="replace")]
    assert kept == [paths.clusters_file]
