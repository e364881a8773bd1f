"""Tests of the agent (backend/agent/), the stdlib-only script run on cluster login nodes.

They run the script exactly as EnvDesk sends it (agent_client.agent_script: protocol header, read
part, write part), loaded as a module or fed to a real Python on stdin; test_agent_parts.py checks
how it is put together.

venv/virtualenv/uv environments are created for real; conda prefixes are
hand-written in conda's on-disk format (see agent_fixtures.py) because conda
itself can't be installed here.
"""

import ast
import json
import os
import shutil
import subprocess
import sys

import pytest

from envdesk.backend.agent_client import agent_script
from agent_fixtures import (
    clean_env, isolated_home,
    PY_XYZ, add_dist, conda_record, history_block, load_agent, make_conda_prefix,
    make_fake_venv, make_venv, old_pythons_to_test, site_packages,
)

agent = load_agent(write=True)
AGENT_SOURCE = agent_script(write=True)       # what a write action sends
READ_SOURCE = agent_script(write=False)       # what a listing sends



@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """A fresh, empty HOME; no conda settings from the machine leak in."""
    return isolated_home(tmp_path, monkeypatch, agent)


def by_name(answer):
    """name -> environment object of an answer (names must be unique)."""
    envs = {env["name"]: env for env in answer["environments"]}
    assert len(envs) == len(answer["environments"])
    return envs


def pkg(env, name):
    """The package object called name in env."""
    matches = [p for p in env["packages"] if p["name"] == name]
    assert len(matches) == 1, (name, env["packages"])
    return matches[0]


def parse_line(stdout):
    """The answer dict from the agent's single stdout line."""
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout
    assert lines[0].startswith("ENVDESK-AGENT-JSON {")
    return json.loads(lines[0][len("ENVDESK-AGENT-JSON "):])


# ---------------------------------------------------------------------------
# The source itself: Python 3.6, stdlib only
# ---------------------------------------------------------------------------

both_scripts = pytest.mark.parametrize("source", [READ_SOURCE, AGENT_SOURCE], ids=["read", "read+write"])


@both_scripts
def test_source_parses_as_python_36(source):
    tree = ast.parse(source, feature_version=(3, 6))
    assert any(isinstance(node, ast.FunctionDef) and node.name == "inventory"
               for node in tree.body)


@both_scripts
def test_source_imports_only_stdlib(source):
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module != "__future__", ast.dump(node)
            modules.add(node.module.split(".")[0])
    assert "json" in modules and "os" in modules
    assert modules <= set(sys.stdlib_module_names), modules - set(sys.stdlib_module_names)
    assert not modules & {"subprocess", "multiprocessing", "dataclasses", "typing"}


@both_scripts
def test_source_avoids_apis_newer_than_36(source):
    newer = {"removeprefix", "removesuffix", "isascii", "is_relative_to", "capture_output",
             "fromisoformat", "cache", "pairwise", "is_junction", "readlink_text"}
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.keyword) and node.arg:
            names.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            # no annotations at all: 'list[str]' would fail at def time on 3.6-3.8
            assert node.returns is None, node.name
            assert all(a.annotation is None for a in node.args.args), node.name
    assert not names & newer
    assert source.rstrip().endswith("if __name__ == \"__main__\":\n    sys.exit(main(sys.argv))")


def test_runs_for_real_under_oldest_python_available(home):
    olds = old_pythons_to_test()
    env = make_fake_venv(home / "venvs" / "a")
    add_dist(site_packages(env), "numpy", "1.26.4", requested=True)
    make_conda_prefix(home / ".conda" / "envs" / "c", python="3.10.13",
                      records=[conda_record("zlib", "1.2.13")],
                      history=history_block("2024-01-01 10:00:00", "conda create -n c",
                                            specs=["python=3.10", "zlib"]))
    for exe in olds:
        proc = subprocess.run([exe, "-", "{}"], input=READ_SOURCE.encode("utf-8"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=clean_env(home), timeout=60)
        assert proc.returncode == 0, proc.stderr.decode()
        answer = parse_line(proc.stdout.decode())
        envs = by_name(answer)
        assert answer["python"].startswith(os.path.basename(exe)[len("python"):])
        assert pkg(envs["a"], "numpy")["requested"] is True
        assert envs["c"]["python"] == "3.10.13"
        assert envs["c"]["conda_requested"] == ["python=3.10", "zlib"]


def test_write_actions_run_for_real_under_oldest_python_available(home):
    olds = old_pythons_to_test()
    roots = [str(home / "venvs")]

    def act(exe, source, **config):
        proc = subprocess.run([exe, "-", json.dumps(dict(config, roots=roots))],
                              input=source.encode("utf-8"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=clean_env(home), timeout=60)
        assert proc.returncode == 0, proc.stderr.decode()
        return parse_line(proc.stdout.decode())

    for number, exe in enumerate(olds):
        path = str(home / "venvs" / ("new%d" % number))
        begun = act(exe, AGENT_SOURCE, action="begin", path=path, create=True, operation="create")
        assert begun["ok"] is True and os.path.isdir(path + ".envdesk-lock")
        assert os.path.isfile(os.path.join(path, ".envdesk", "CREATING"))
        make_fake_venv(home / "venvs" / "tmp")           # pretend the environment got built
        for name in os.listdir(str(home / "venvs" / "tmp")):
            os.rename(str(home / "venvs" / "tmp" / name), os.path.join(path, name))
        os.rmdir(str(home / "venvs" / "tmp"))
        finished = act(exe, AGENT_SOURCE, action="finish", path=path, token=begun["token"],
                       meta={"modules": ["python/3.11"]})
        assert finished["ok"] is True and finished["env"]["state"] == "ok"
        assert finished["env"]["modules"] == ["python/3.11"]
        assert not os.path.exists(path + ".envdesk-lock")
        measured = act(exe, AGENT_SOURCE, action="measure", path=path)
        assert measured["ok"] is True and measured["files"] >= 2
        # the listing's script has no write part: an action sent with it is refused, nothing changes
        refused = act(exe, READ_SOURCE, action="delete", path=path)
        assert refused["ok"] is False and refused["code"] == "invalid"
        assert os.path.isdir(path)
        assert act(exe, AGENT_SOURCE, action="delete", path=path)["removed"] is True
        assert not os.path.exists(path)


# ---------------------------------------------------------------------------
# Kinds, versions, packages
# ---------------------------------------------------------------------------

def test_detects_venv_virtualenv_and_uv(home):
    venvs = home / "venvs"
    make_venv(venvs / "plain", "venv")
    make_venv(venvs / "virt", "virtualenv")
    make_venv(venvs / "fast", "uv")
    envs = by_name(agent.inventory({}))
    assert set(envs) == {"plain", "virt", "fast"}
    assert envs["plain"]["kind"] == "venv" and envs["plain"]["created_by"] is None
    assert envs["virt"]["kind"] == "virtualenv"
    assert envs["virt"]["created_by"].startswith("virtualenv 2")
    assert envs["fast"]["kind"] == "uv"
    assert envs["fast"]["created_by"].startswith("uv 0.")
    for name, env in envs.items():
        assert env["python"] == PY_XYZ, name
        assert env["state"] == "ok", (name, env["error"])
        assert env["error"] is None
        assert env["path"] == str(venvs / name)
        assert env["root"] == str(venvs)
        assert env["system_site_packages"] is False
        assert env["packages"] == [] and env["package_count"] == 0
        assert env["conda_requested"] == [] and env["channels"] == []
        assert env["envdesk"] is None and env["modules"] == []


def test_system_site_packages_flag(home):
    make_venv(home / "venvs" / "sys", "venv", system_site_packages=True)
    make_venv(home / "venvs" / "iso", "venv")
    envs = by_name(agent.inventory({}))
    assert envs["sys"]["system_site_packages"] is True
    assert envs["iso"]["system_site_packages"] is False


def test_virtualenv_style_version_info_is_normalized(home):
    make_fake_venv(home / "venvs" / "v", version=None, lib_version="3.9",
                   extra_cfg="version_info = 3.9.18.final.0\nvirtualenv = 20.26.0\n")
    env = by_name(agent.inventory({}))["v"]
    assert env["python"] == "3.9.18"
    assert env["created_by"] == "virtualenv 20.26.0"
    assert env["kind"] == "virtualenv"


def test_python_falls_back_to_lib_folder_name(home):
    make_fake_venv(home / "venvs" / "v", version=None, lib_version="3.8")
    env = by_name(agent.inventory({}))["v"]
    assert env["python"] == "3.8"
    assert env["state"] == "ok"


def test_packages_are_read_from_dist_info(home):
    env_path = make_venv(home / "venvs" / "proj", "uv")
    site = site_packages(env_path)
    add_dist(site, "requests", "2.32.3", installer="uv", requested=True)
    add_dist(site, "Django", "5.0.1", installer="pip", requested=False)
    add_dist(site, "mytool", "0.1.dev0", installer="uv", requested=True,
             url="file:///home/me/mytool", editable=True)
    add_dist(site, "fromgit", "1.0", url="https://user:secret@example.org/x.git")
    add_dist(site, "noinstaller", "3.0", installer=None)
    env = by_name(agent.inventory({}))["proj"]
    assert [p["name"] for p in env["packages"]] == [
        "Django", "fromgit", "mytool", "noinstaller", "requests"]
    assert env["package_count"] == 5
    assert pkg(env, "requests") == {"name": "requests", "version": "2.32.3", "installer": "uv",
                                    "requested": True, "url": None, "editable": False}
    assert pkg(env, "Django")["installer"] == "pip"
    assert pkg(env, "Django")["requested"] is False
    mytool = pkg(env, "mytool")
    assert mytool["editable"] is True and mytool["url"] == "file:///home/me/mytool"
    assert mytool["version"] == "0.1.dev0"
    assert pkg(env, "fromgit")["url"] == "https://example.org/x.git"  # credentials dropped
    assert pkg(env, "fromgit")["editable"] is False
    assert pkg(env, "noinstaller")["installer"] is None
    assert env["state"] == "ok" and env["warnings"] == []


def test_only_metadata_headers_are_read(home):
    env_path = make_fake_venv(home / "venvs" / "v")
    body = b"\xff\xfe not utf-8 at all \x80\x81" * 1000
    add_dist(site_packages(env_path), "weird", "1.0",
             metadata=b"Metadata-Version: 2.1\nName: weird\nVersion: 1.0\n\n" + body)
    # headers end at the first blank line: a "Version:" in the body is not a header
    add_dist(site_packages(env_path), "bodyver", "9.9",
             metadata="Metadata-Version: 2.1\nName: bodyver\n\nVersion: 9.9\n")
    env = by_name(agent.inventory({}))["v"]
    assert pkg(env, "weird")["version"] == "1.0"
    assert [p["name"] for p in env["packages"]] == ["weird"]
    assert [os.path.basename(path) for path in env["incomplete_packages"]] == ["bodyver-9.9.dist-info"], env


def test_egg_info_and_egg_link_packages(home, tmp_path):
    env_path = make_fake_venv(home / "venvs" / "old")
    site = site_packages(env_path)
    egg_dir = os.path.join(site, "legacy_pkg-2.1-py3.11.egg-info")
    os.makedirs(egg_dir)
    with open(os.path.join(egg_dir, "PKG-INFO"), "w") as handle:
        handle.write("Metadata-Version: 1.1\nName: legacy-pkg\nVersion: 2.1\n\nbody\n")
    with open(os.path.join(site, "distutils_thing-0.5-py3.11.egg-info"), "w") as handle:
        handle.write("Metadata-Version: 1.0\nName: distutils-thing\nVersion: 0.5\n")
    src = tmp_path / "src" / "devpkg"
    (src / "devpkg.egg-info").mkdir(parents=True)
    (src / "devpkg.egg-info" / "PKG-INFO").write_text("Name: devpkg\nVersion: 0.3\n")
    with open(os.path.join(site, "devpkg.egg-link"), "w") as handle:
        handle.write(str(src) + "\n.\n")
    env = by_name(agent.inventory({}))["old"]
    assert pkg(env, "legacy-pkg")["version"] == "2.1"
    assert pkg(env, "distutils-thing")["version"] == "0.5"
    dev = pkg(env, "devpkg")
    assert dev["editable"] is True and dev["version"] == "0.3"
    assert dev["url"] == "file://" + str(src)
    assert env["package_count"] == 3


def test_duplicate_dist_info_counted_once_with_warning(home):
    env_path = make_fake_venv(home / "venvs" / "v")
    add_dist(site_packages(env_path), "six", "1.15.0")
    add_dist(site_packages(env_path), "six", "1.16.0")
    env = by_name(agent.inventory({}))["v"]
    used = subprocess.run([os.path.join(env_path, "bin", "python"), "-c",  # the one Python and pip take: found first
                           "import importlib.metadata as m; print(m.version('six'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    assert [p["version"] for p in env["packages"]] == [used]
    assert any("six is installed twice" in w for w in env["warnings"])


def test_windows_made_env_reads_lib_site_packages(home):
    root = home / "venvs" / "win"
    site = root / "Lib" / "site-packages"
    site.mkdir(parents=True)
    (root / "Scripts").mkdir()
    (root / "Scripts" / "python.exe").write_bytes(b"MZ")
    (root / "pyvenv.cfg").write_text("home = C:\\Python311\nversion = 3.11.4\n")
    add_dist(site, "pywin-thing", "1.0")
    env = by_name(agent.inventory({}))["win"]
    assert pkg(env, "pywin-thing")["version"] == "1.0"
    assert env["python"] == "3.11.4"
    assert env["state"] == "broken"           # its Python (C:\Python311) isn't here
    assert "C:\\Python311" in env["error"]


def test_envdesk_meta_and_modules(home):
    env_path = make_fake_venv(home / "venvs" / "v")
    os.makedirs(os.path.join(env_path, ".envdesk"))
    meta = {"created_with": "envdesk 0.1", "modules": ["gcc/12.2", "cuda/12.1"]}
    with open(os.path.join(env_path, ".envdesk", "meta.json"), "w") as handle:
        json.dump(meta, handle)
    bad = make_fake_venv(home / "venvs" / "bad")
    os.makedirs(os.path.join(bad, ".envdesk"))
    with open(os.path.join(bad, ".envdesk", "meta.json"), "w") as handle:
        handle.write("{not json")
    envs = by_name(agent.inventory({}))
    assert envs["v"]["envdesk"] == meta
    assert envs["v"]["modules"] == ["gcc/12.2", "cuda/12.1"]
    assert envs["bad"]["envdesk"] is None and envs["bad"]["modules"] == []
    assert envs["bad"]["state"] == "ok"
    assert any("meta.json" in w for w in envs["bad"]["warnings"])


# ---------------------------------------------------------------------------
# Discovery
# ---------------------------------------------------------------------------

def test_project_root_finds_dot_venv_at_depth_two(home):
    projects = home / "projects"
    make_fake_venv(projects / "foo" / ".venv")
    make_fake_venv(projects / "bar" / "src" / "env")          # depth 3
    (projects / "empty" / "docs").mkdir(parents=True)
    answer = agent.inventory({"roots": ["~/projects"]})
    envs = by_name(answer)
    assert list(envs) == ["foo/.venv"]
    assert envs["foo/.venv"]["root"] == str(projects)
    assert envs["foo/.venv"]["path"] == str(projects / "foo" / ".venv")
    deeper = by_name(agent.inventory({"roots": ["~/projects"], "max_depth": 3}))
    assert set(deeper) == {"foo/.venv", "bar/src/env"}
    shallow = by_name(agent.inventory({"roots": ["~/projects"], "max_depth": 1}))
    assert shallow == {}


def test_root_that_is_an_env_is_named_by_basename(home):
    make_fake_venv(home / "work" / "myenv")
    envs = by_name(agent.inventory({"roots": ["~/work/myenv/"]}))
    assert list(envs) == ["myenv"]
    assert envs["myenv"]["path"] == str(home / "work" / "myenv")


def test_does_not_descend_into_environments(home):
    outer = make_fake_venv(home / "venvs" / "outer")
    make_fake_venv(os.path.join(outer, "nested"))
    envs = by_name(agent.inventory({"max_depth": 5}))
    assert list(envs) == ["outer"]


def test_symlinked_env_is_listed_once(home):
    make_fake_venv(home / "venvs" / "real")
    os.symlink(str(home / "venvs" / "real"), str(home / "venvs" / "zz-link"))
    answer = agent.inventory({"roots": ["~/venvs", "~/venvs/real"]})
    assert [e["name"] for e in answer["environments"]] == ["real"]


def test_missing_roots_are_silently_skipped(home):
    make_fake_venv(home / "envs" / "x")
    answer = agent.inventory({"roots": ["~/nope", "/definitely/not/here", "~/envs"]})
    assert [e["name"] for e in answer["environments"]] == ["x"]
    assert answer["errors"] == []
    assert answer["truncated"] is False


def test_root_that_is_a_file_is_reported(home):
    (home / "venvs").write_text("oops")
    answer = agent.inventory({})
    assert answer["environments"] == []
    assert answer["errors"] == [{"path": str(home / "venvs"),
                                 "error": "This search folder is a file, not a folder."}]


def test_default_roots(home):
    for root in ("venvs", ".venvs", ".virtualenvs", "envs"):
        make_fake_venv(home / root / ("in-" + root.replace(".", "dot")))
    make_fake_venv(home / "elsewhere" / "hidden")
    answer = agent.inventory({})
    assert [e["name"] for e in answer["environments"]] == [
        "in-venvs", "in-dotvenvs", "in-dotvirtualenvs", "in-envs"]
    assert [e["root"] for e in answer["environments"]] == [
        str(home / r) for r in ("venvs", ".venvs", ".virtualenvs", "envs")]


def test_roots_expand_environment_variables(home, monkeypatch, tmp_path):
    scratch = tmp_path / "scratch"
    make_fake_venv(scratch / "venvs" / "big")
    monkeypatch.setenv("SCRATCH", str(scratch))
    envs = by_name(agent.inventory({"roots": ["$SCRATCH/venvs"], "conda": False}))
    assert envs["big"]["root"] == str(scratch / "venvs")


def test_max_envs_truncates(home):
    for name in ("a", "b", "c"):
        make_fake_venv(home / "venvs" / name)
    answer = agent.inventory({"max_envs": 2})
    assert [e["name"] for e in answer["environments"]] == ["a", "b"]
    assert answer["truncated"] is True
    exact = agent.inventory({"max_envs": 3})
    assert len(exact["environments"]) == 3 and exact["truncated"] is False


def test_exhausted_time_budget_truncates(home):
    make_fake_venv(home / "venvs" / "a")
    answer = agent.inventory({"time_budget": 0})
    assert answer["environments"] == []
    assert answer["truncated"] is True
    assert len(agent.inventory({"time_budget": 30})["environments"]) == 1


def test_forty_envs_of_sixty_packages_are_all_read(home):
    for i in range(40):
        site = site_packages(make_fake_venv(home / "venvs" / ("env%02d" % i)))
        for j in range(60):
            add_dist(site, "package-%02d" % j, "1.%d.0" % j, requested=j % 2 == 0)
    answer = agent.inventory({})
    assert len(answer["environments"]) == 40
    assert all(e["package_count"] == 60 and e["state"] == "ok" for e in answer["environments"])
    assert answer["truncated"] is False  # how fast: tests/bench/inventory_speed.py, as a ratio


# ---------------------------------------------------------------------------
# Conda
# ---------------------------------------------------------------------------

def _write_environments_txt(home, prefixes):
    (home / ".conda").mkdir(exist_ok=True)
    text = "".join(str(p) + "\n" for p in prefixes)
    (home / ".conda" / "environments.txt").write_text(text)
    return text


def test_conda_environments_txt_and_base_naming(home, tmp_path):
    base = make_conda_prefix(tmp_path / "miniconda3", python="3.12.1", base=True)
    analysis = make_conda_prefix(tmp_path / "miniconda3" / "envs" / "analysis", python="3.11.5")
    unlisted = make_conda_prefix(tmp_path / "miniconda3" / "envs" / "unlisted", python="3.10.1")
    elsewhere = make_conda_prefix(tmp_path / "proj" / "condaenv", python="3.9.0")
    text = _write_environments_txt(home, [base, analysis, tmp_path / "gone", "", elsewhere])
    answer = agent.inventory({})
    envs = by_name(answer)
    assert set(envs) == {"base", "analysis", "unlisted", "condaenv"}
    assert envs["base"]["path"] == base
    assert envs["analysis"]["path"] == analysis and envs["unlisted"]["path"] == unlisted
    for env in envs.values():
        assert env["kind"] == "conda" and env["root"] == "conda" and env["state"] == "ok"
    assert envs["base"]["python"] == "3.12.1"
    assert answer["errors"] == []
    assert (home / ".conda" / "environments.txt").read_text() == text   # untouched


def test_conda_default_envs_dir_and_conda_envs_path(home, tmp_path, monkeypatch):
    make_conda_prefix(home / ".conda" / "envs" / "mine", python="3.11.5")
    one, two = tmp_path / "group1", tmp_path / "group2"
    make_conda_prefix(one / "shared1", python="3.11.5")
    make_conda_prefix(two / "shared2", python="3.11.5")
    (two / "not-conda").mkdir()
    monkeypatch.setenv("CONDA_ENVS_PATH", os.pathsep.join([str(one), str(two), "/nope"]))
    envs = by_name(agent.inventory({}))
    assert set(envs) == {"mine", "shared1", "shared2"}
    assert envs["shared2"]["path"] == str(two / "shared2")


@pytest.mark.parametrize("rc_name", [".condarc", ".conda/.condarc", ".conda/condarc", "$CONDARC"])
def test_condarc_envs_dirs(home, tmp_path, monkeypatch, rc_name):
    make_conda_prefix(tmp_path / "block" / "b1", python="3.11.5")
    make_conda_prefix(tmp_path / "flow1" / "f1", python="3.11.5")
    make_conda_prefix(tmp_path / "flow2" / "f2", python="3.11.5")
    monkeypatch.setenv("MYPROJ", str(tmp_path))
    text = ("channels:\n  - conda-forge\n"
            "envs_dirs:   # where my envs live\n"
            "  - $MYPROJ/block\n"
            "  - '/not/there'\n"
            "pkgs_dirs:\n  - %s\n" % (tmp_path / "flow1"))
    if rc_name == "$CONDARC":
        rc = tmp_path / "custom_rc.yml"
        monkeypatch.setenv("CONDARC", str(rc))
    else:
        rc = home / rc_name
        rc.parent.mkdir(exist_ok=True)
    rc.write_text(text)
    envs = by_name(agent.inventory({}))
    assert set(envs) == {"b1"}          # pkgs_dirs is not an envs dir
    rc.write_text('envs_dirs: [%s, "%s"]\n' % (tmp_path / "flow1", tmp_path / "flow2"))
    assert set(by_name(agent.inventory({}))) == {"f1", "f2"}


def test_parse_condarc_envs_dirs_forms():
    parse = agent.parse_condarc_envs_dirs
    assert parse("envs_dirs:\n- /a\n- \"/b c\"\nother: 1\n  - /not\n") == ["/a", "/b c"]
    assert parse("envs_dirs: ['/x', ~/y]  # comment\n") == ["/x", "~/y"]
    assert parse("# envs_dirs: [/commented]\nchannels: [envs_dirs]\n") == []
    assert parse("envs_dirs: /single\n") == ["/single"]


def test_conda_records_channels_history_and_requested(home):
    history = (
        history_block("2024-01-10 09:00:00", "/opt/conda/bin/conda create -n sci python=3.11 numpy",
                      specs=["python=3.11", "numpy"],
                      lines=["+defaults/linux-64::python-3.11.5-h955ad1f_0",
                             "+conda-forge/linux-64::numpy-1.26.4-py311h64a7726_0"])
        + history_block("2024-02-01 10:00:00", "conda install -c conda-forge scipy pandas",
                        specs=["conda-forge::scipy", "pandas>=2", "numpy"],
                        conda_version="24.1.2")
        + history_block("2024-03-01 10:00:00", "conda remove pandas", removed=["pandas"],
                        lines=["-conda-forge/linux-64::pandas-2.2.0-py311_0"])
        + history_block("2024-04-01 10:00:00", "conda install numpy=1.26",
                        specs=["numpy=1.26"])
    )
    records = [
        conda_record("numpy", "1.26.4", "py311h64a7726_0"),
        conda_record("scipy", "1.12.0", "py311h64a7726_2"),
        conda_record("_libgcc_mutex", "0.1", "conda_forge"),
        conda_record("zlib", "1.2.13", "h5eee18b_0",
                     "https://conda.anaconda.org/t/tk-123secret/bioconda/noarch"),
    ]
    make_conda_prefix(home / ".conda" / "envs" / "sci", records=records, python="3.11.5",
                      history=history)
    env = by_name(agent.inventory({}))["sci"]
    assert env["python"] == "3.11.5"
    assert env["created_by"] == "conda 23.7.4"
    assert env["conda_requested"] == ["python=3.11", "numpy=1.26", "conda-forge::scipy"]
    assert env["channels"] == ["bioconda", "conda-forge", "pkgs/main"]
    assert [p["name"] for p in env["packages"]] == ["_libgcc_mutex", "numpy", "python",
                                                    "scipy", "zlib"]
    numpy = pkg(env, "numpy")
    assert numpy == {"name": "numpy", "version": "1.26.4", "installer": "conda",
                     "requested": True, "url": None, "editable": False,
                     "build": "py311h64a7726_0", "channel": "conda-forge"}
    assert pkg(env, "zlib")["requested"] is False
    assert pkg(env, "zlib")["channel"] == "bioconda"
    assert "secret" not in json.dumps(env)
    assert pkg(env, "python")["channel"] == "pkgs/main"
    assert env["package_count"] == 5 and env["state"] == "ok"


def test_conda_channel_names():
    name = agent.conda_channel_name
    assert name({"channel": "https://repo.anaconda.com/pkgs/main/linux-64"}) == "pkgs/main"
    assert name({"channel": "https://conda.anaconda.org/conda-forge/noarch"}) == "conda-forge"
    assert name({"channel": "conda-forge"}) == "conda-forge"
    assert name({"channel": "https://x.example/a/b", "schannel": "defaults"}) == "defaults"
    assert name({"channel": "https://me:pw@mirror.example/chan/osx-arm64"}) == \
        "https://mirror.example/chan"
    assert name({}) is None


def test_pip_inside_conda_is_not_double_counted(home):
    prefix = make_conda_prefix(home / ".conda" / "envs" / "mixed", python="3.11.5",
                               records=[conda_record("numpy", "1.26.4", "py311_0"),
                                        conda_record("pyyaml", "6.0.1", "py311_0")],
                               history=history_block("2024-01-01 00:00:00", "conda create",
                                                     specs=["python", "numpy"]))
    site = site_packages(prefix)
    add_dist(site, "numpy", "1.26.4", installer="conda")       # conda's own copy
    add_dist(site, "python_dateutil", "2.9.0", installer="conda")  # conda-owned, not in records
    add_dist(site, "PyYAML", "6.0.1", installer=None)   # conda's copy, without INSTALLER
    add_dist(site, "torch", "2.3.0", installer="pip", requested=True)
    add_dist(site, "tqdm", "4.66.0", installer="uv")
    env = by_name(agent.inventory({}))["mixed"]
    assert [p["name"] for p in env["packages"]] == ["numpy", "python", "pyyaml", "torch", "tqdm"]
    assert pkg(env, "numpy")["installer"] == "conda"
    assert pkg(env, "numpy")["channel"] == "conda-forge"
    torch = pkg(env, "torch")
    assert torch["installer"] == "pip" and torch["requested"] is True
    assert "channel" not in torch
    assert pkg(env, "tqdm")["installer"] == "uv"
    assert pkg(env, "pyyaml")["installer"] == "conda"
    assert env["warnings"] == []
    assert env["package_count"] == 5


def test_conda_record_layouts(home):
    """Channel is right whatever the record's layout (fast head read or full parse)."""
    prefix = make_conda_prefix(home / ".conda" / "envs" / "c", python="3.11.5")
    meta = os.path.join(prefix, "conda-meta")

    def write(filename, text):
        with open(os.path.join(meta, filename), "w") as handle:
            handle.write(text)

    late = conda_record("late", "1.0", "h1_0", "https://conda.anaconda.org/late-chan/linux-64")
    big_first = {"files": ["lib/f%05d" % i for i in range(2000)]}
    big_first.update(late)                              # "channel" after 30 KB of files
    write("late-1.0-h1_0.json", json.dumps(big_first, indent=2))
    compact = conda_record("compact", "2.0", "h2_0", "https://conda.anaconda.org/one-line/noarch")
    write("compact-2.0-h2_0.json", json.dumps(compact))
    nested = {"zzz": {"channel": "wrong"}}   # nested after the top-level key
    nested.update(conda_record("nested", "3.0", "h3_0", "https://conda.anaconda.org/right/noarch"))
    write("nested-3.0-h3_0.json", json.dumps(nested, indent=4, sort_keys=True))
    odd = conda_record("odd-name", "4.0", "h4_0", "defaults")
    write("oddname.json", json.dumps(odd, indent=2, sort_keys=True))
    env = by_name(agent.inventory({}))["c"]
    assert {p["name"]: (p["version"], p["build"], p["channel"]) for p in env["packages"]} == {
        "late": ("1.0", "h1_0", "late-chan"),
        "compact": ("2.0", "h2_0", "one-line"),
        "nested": ("3.0", "h3_0", "right"),
        "odd-name": ("4.0", "h4_0", "defaults"),
        "python": ("3.11.5", "h955ad1f_0", "pkgs/main"),
    }
    assert env["warnings"] == []


def test_conda_env_without_python_is_fine(home):
    make_conda_prefix(home / ".conda" / "envs" / "rlang",
                      records=[conda_record("r-base", "4.3.1", "h0_0")])
    env = by_name(agent.inventory({}))["rlang"]
    assert env["state"] == "ok" and env["python"] is None
    assert [p["name"] for p in env["packages"]] == ["r-base"]


def test_conda_bad_record_is_skipped(home):
    prefix = make_conda_prefix(home / ".conda" / "envs" / "c", python="3.11.5",
                               records=[conda_record("zlib", "1.2.13")])
    with open(os.path.join(prefix, "conda-meta", "broken-1.0-0.json"), "w") as handle:
        handle.write("{truncated")
    env = by_name(agent.inventory({}))["c"]
    assert env["state"] == "ok"
    assert [p["name"] for p in env["packages"]] == ["python", "zlib"]
    assert any("broken-1.0-0.json" in w for w in env["warnings"])


def test_conda_discovery_can_be_turned_off(home):
    make_conda_prefix(home / ".conda" / "envs" / "c", python="3.11.5")
    make_fake_venv(home / "venvs" / "v")
    assert set(by_name(agent.inventory({"conda": False}))) == {"v"}
    assert set(by_name(agent.inventory({}))) == {"v", "c"}


def test_conda_env_under_a_root_is_found_once(home):
    prefix = make_conda_prefix(home / "envs" / "both", python="3.11.5")
    _write_environments_txt(home, [prefix])
    answer = agent.inventory({})
    assert len(answer["environments"]) == 1
    env = answer["environments"][0]
    assert env["kind"] == "conda" and env["root"] == str(home / "envs")


# ---------------------------------------------------------------------------
# Broken and incomplete environments
# ---------------------------------------------------------------------------

def test_missing_home_python_is_broken(home, tmp_path):
    make_fake_venv(home / "venvs" / "orphan", home=str(tmp_path / "gone" / "bin"))
    make_fake_venv(home / "venvs" / "fine")
    envs = by_name(agent.inventory({}))
    assert envs["orphan"]["state"] == "broken"
    assert str(tmp_path / "gone" / "bin") in envs["orphan"]["error"]
    assert "no longer there" in envs["orphan"]["error"]
    assert envs["fine"]["state"] == "ok"


def test_dangling_or_missing_python_is_broken(home, tmp_path):
    dangling = make_venv(home / "venvs" / "dangling", "venv")
    for name in os.listdir(os.path.join(dangling, "bin")):
        if name.startswith("python"):
            os.remove(os.path.join(dangling, "bin", name))
    os.symlink(str(tmp_path / "removed" / "python3"), os.path.join(dangling, "bin", "python"))
    missing = make_fake_venv(home / "venvs" / "missing")
    os.remove(os.path.join(missing, "bin", "python"))
    envs = by_name(agent.inventory({}))
    assert envs["dangling"]["state"] == "broken"
    assert "no longer exists" in envs["dangling"]["error"]
    assert str(tmp_path / "removed" / "python3") in envs["dangling"]["error"]
    assert envs["missing"]["state"] == "broken"
    assert "no python program" in envs["missing"]["error"]


def test_bad_metadata_is_skipped_not_fatal(home):
    env_path = make_fake_venv(home / "venvs" / "v")
    site = site_packages(env_path)
    add_dist(site, "good", "1.0")
    add_dist(site, "garbage", "1.0", metadata=b"Name: \xff\xfe\x00bad\nVersion: 1\n")
    add_dist(site, "nameless", "1.0", metadata="Metadata-Version: 2.1\nSummary: x\n")
    no_metadata = add_dist(site, "nometa", "1.0")
    os.remove(os.path.join(no_metadata, "METADATA"))
    env = by_name(agent.inventory({}))["v"]
    assert [p["name"] for p in env["packages"]] == ["good"]
    assert len(env["warnings"]) == 1
    assert any("garbage-1.0.dist-info" in w and "not valid text" in w for w in env["warnings"])
    # no name or version, no METADATA: half installed (T19), which uv refuses to work with: broken, named
    assert sorted(os.path.basename(path) for path in env["incomplete_packages"]) == [
        "nameless-1.0.dist-info", "nometa-1.0.dist-info"]
    assert env["state"] == "broken" and all(path in env["error"] for path in env["incomplete_packages"])


def test_missing_site_packages_is_broken(home):
    env_path = make_fake_venv(home / "venvs" / "v")
    shutil.rmtree(site_packages(env_path))
    env = by_name(agent.inventory({}))["v"]
    assert env["state"] == "broken"
    assert "no site-packages" in env["error"]


# A site-packages its user cannot read, for real: test_not_writable (on alpha, whose user is not root).
def test_unreadable_site_packages_is_broken(home, monkeypatch):
    env_path = make_fake_venv(home / "venvs" / "v")
    make_fake_venv(home / "venvs" / "w")
    site = site_packages(env_path)
    add_dist(site, "x", "1.0")
    real_scandir = os.scandir

    def scandir(path="."):
        if os.path.abspath(str(path)) == site:
            raise PermissionError(13, "Permission denied", site)
        return real_scandir(path)

    monkeypatch.setattr(agent.os, "scandir", scandir)
    envs = by_name(agent.inventory({}))
    assert envs["v"]["state"] == "broken"
    assert "could not list the installed packages" in envs["v"]["error"]
    assert "permission denied" in envs["v"]["error"]
    assert envs["v"]["packages"] == []
    assert envs["w"]["state"] == "ok"


def test_unexpected_error_breaks_only_that_env(home, monkeypatch):
    make_fake_venv(home / "venvs" / "a")
    make_fake_venv(home / "venvs" / "b")
    real = agent.read_venv

    def flaky(env, problems, *rest):
        if env["name"] == "a":
            raise RuntimeError("disk on fire")
        return real(env, problems, *rest)

    monkeypatch.setattr(agent, "read_venv", flaky)
    envs = by_name(agent.inventory({}))
    assert envs["a"]["state"] == "broken"
    assert "RuntimeError: disk on fire" in envs["a"]["error"]
    assert envs["b"]["state"] == "ok"


def test_creating_marker_means_incomplete(home):
    env_path = make_venv(home / "venvs" / "half", "uv")
    os.makedirs(os.path.join(env_path, ".envdesk"))
    open(os.path.join(env_path, ".envdesk", "CREATING"), "w").close()
    broken_half = make_fake_venv(home / "venvs" / "halfbroken")
    shutil.rmtree(site_packages(broken_half))
    os.makedirs(os.path.join(broken_half, ".envdesk"))
    open(os.path.join(broken_half, ".envdesk", "CREATING"), "w").close()
    envs = by_name(agent.inventory({}))
    for name in ("half", "halfbroken"):
        assert envs[name]["state"] == "incomplete"
        assert "not finished being built" in envs[name]["error"]
    assert any("site-packages" in w for w in envs["halfbroken"]["warnings"])


# ---------------------------------------------------------------------------
# paths mode
# ---------------------------------------------------------------------------

def test_paths_mode_reads_only_given_folders(home, tmp_path):
    make_fake_venv(home / "venvs" / "not-asked")
    make_conda_prefix(home / ".conda" / "envs" / "conda-not-asked", python="3.11.5")
    wanted = make_venv(tmp_path / "somewhere" / "wanted", "virtualenv")
    conda_wanted = make_conda_prefix(tmp_path / "cz", python="3.10.2", base=True)
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    answer = agent.inventory({"paths": [wanted, conda_wanted, str(plain_dir),
                                        str(tmp_path / "missing")],
                              "roots": ["~/venvs"]})
    envs = by_name(answer)
    assert set(envs) == {"wanted", "cz"}
    assert envs["wanted"]["kind"] == "virtualenv" and envs["wanted"]["path"] == wanted
    assert envs["wanted"]["root"] == str(tmp_path / "somewhere")
    assert envs["cz"]["kind"] == "conda" and envs["cz"]["python"] == "3.10.2"
    errors = {e["path"]: e["error"] for e in answer["errors"]}
    assert "not a Python environment" in errors[str(plain_dir)]
    assert errors[str(tmp_path / "missing")] == "There is no folder here."


def test_paths_mode_expands_tilde(home):
    make_fake_venv(home / "x" / "env1")
    envs = by_name(agent.inventory({"paths": ["~/x/env1"]}))
    assert envs["env1"]["path"] == str(home / "x" / "env1")


# ---------------------------------------------------------------------------
# main(): the one-line answer
# ---------------------------------------------------------------------------

def test_main_prints_one_line(home, capsys):
    make_fake_venv(home / "venvs" / "a")
    status = agent.main(["-", json.dumps({"conda": False})])
    assert status == 0
    answer = parse_line(capsys.readouterr().out)
    assert answer["agent"] == 1
    assert answer["home"] == str(home)
    assert answer["python"] == PY_XYZ
    assert isinstance(answer["host"], str) and answer["host"]
    assert [e["name"] for e in answer["environments"]] == ["a"]
    assert answer["errors"] == [] and answer["truncated"] is False
    assert isinstance(answer["elapsed"], float)


def test_main_without_config_uses_defaults(home, capsys):
    make_fake_venv(home / ".virtualenvs" / "dflt")
    assert agent.main(["-"]) == 0
    assert [e["name"] for e in parse_line(capsys.readouterr().out)["environments"]] == ["dflt"]


def test_main_with_bad_config_still_answers(capsys):
    assert agent.main(["-", "[1, 2"]) == 2
    answer = parse_line(capsys.readouterr().out)
    assert answer["environments"] == []
    assert "could not understand" in answer["errors"][0]["error"]
    assert agent.main(["-", "[1, 2]"]) == 2
    assert "JSON object" in parse_line(capsys.readouterr().out)["errors"][0]["error"]


def test_agent_sent_on_stdin_for_real(home, tmp_path):
    good = make_venv(home / "venvs" / "good", "venv")
    add_dist(site_packages(good), "numpy", "2.0.0", requested=True)
    make_fake_venv(home / "venvs" / "broken", home=str(tmp_path / "nohome"))
    make_conda_prefix(home / ".conda" / "envs" / "cenv", python="3.11.5")
    cfg = {"roots": ["~/venvs"], "max_depth": 2}
    proc = subprocess.run([sys.executable, "-", json.dumps(cfg)],
                          input=AGENT_SOURCE.encode("utf-8"), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=clean_env(home), cwd=str(tmp_path),
                          timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b""
    answer = parse_line(proc.stdout.decode("ascii"))
    envs = by_name(answer)
    assert answer["home"] == str(home)
    assert set(envs) == {"good", "broken", "cenv"}
    assert pkg(envs["good"], "numpy") == {"name": "numpy", "version": "2.0.0",
                                          "installer": "pip", "requested": True,
                                          "url": None, "editable": False}
    assert envs["broken"]["state"] == "broken"
    assert envs["cenv"]["kind"] == "conda"


def test_agent_output_is_ascii_even_with_non_ascii_names(home, tmp_path):
    env_path = make_fake_venv(home / "venvs" / "café")
    add_dist(site_packages(env_path), "naïve-pkg", "1.0")
    env = clean_env(home)
    env["LC_ALL"] = "C"
    env["PYTHONIOENCODING"] = "ascii"
    proc = subprocess.run([sys.executable, "-", "{}"], input=AGENT_SOURCE.encode("utf-8"),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    envs = by_name(parse_line(proc.stdout.decode("ascii")))
    assert pkg(envs["café"], "naïve-pkg")["version"] == "1.0"


def test_a_history_line_that_cannot_be_read_gives_no_pieces_of_specs(home):
    """T21: a spec holding quotes in a list written with the wrong quotes ('numpy[version='>=1.26,<2']') cannot be
    read as Python's list (conda writes it in double quotes); its pieces ('numpy[version=' and '<2']') reached the
    conda-history export. Such a line now gives no specs; a well-written line around it still does. Referee:
    rattler (a conda implementation) reads every spec the listing gives."""
    import rattler
    history = (history_block("2024-01-10 09:00:00", "conda create -n b python=3.11", specs=["python=3.11"])
               + "==> 2024-01-11 09:00:00 <==\n# cmd: conda install\n# conda version: 24.7.1\n"
               + "# update specs: ['numpy[version='>=1.26,<2']', 'scipy']\n"
               + history_block("2024-01-12 09:00:00", "conda install", specs=["numpy[version='>=1.26']"]))
    make_conda_prefix(home / ".conda" / "envs" / "b", records=[conda_record("numpy", "1.26.4", "py311_0")],
                      python="3.11.5", history=history)
    requested = by_name(agent.inventory({}))["b"]["conda_requested"]
    assert requested == ["python=3.11", "numpy[version='>=1.26']"], requested
    for spec in requested:
        rattler.MatchSpec(spec, strict=False)
