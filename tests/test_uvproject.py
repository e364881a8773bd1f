"""Importing uv projects (pyproject.toml + uv.lock): reading them safely, and building them for real.

The projects are made with the test runner's own uv, offline, from alpha's wheelhouse; alpha has a
uv module (so the project is synced with `uv sync --frozen`), beta has none (pip installs the locks).
"""
from __future__ import annotations

import os
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from envdesk.backend.errors import Cancelled, CommandFailed, InvalidInput
from envdesk.backend.inventory import read_inventory
from envdesk.backend.operations.common import Progress
from envdesk.backend.operations.importing import read_spec_file
from envdesk.backend.operations.uvimport import import_uv_project
from envdesk.backend.uvproject import marker_environment, read_uv_project, select_packages, to_spec
from envdesk_fixtures import canon, packages_of, unique, make_config, run_cli


# -- helpers and fixtures -----------------------------------------------------------------------

def locked_versions(project_dir: Path) -> dict[str, str]:
    project = read_uv_project(project_dir)
    return {canon(p.name): p.version for p in project.locked}


def uv_bin() -> str:
    import uv
    return uv.find_uv_bin()


def run_uv(*args: str, cwd: Path, home: Path) -> None:
    """The test runner's uv, offline, with its own cache and no Python downloads."""
    env = {**os.environ, "HOME": str(home), "UV_OFFLINE": "1", "UV_PYTHON_DOWNLOADS": "never",
           "UV_CACHE_DIR": str(home / "uv-cache"), "UV_NO_CONFIG": "1"}
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run([uv_bin(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def make_project(folder: Path, wheelhouse: Path, home: Path, name: str = "demo") -> Path:
    """`uv init --bare` + `uv add tinybeta`, with tinyalpha locked at 1.1 (a fresh resolve gives 2.0).

    tinyalpha is added with <2 and removed again: uv keeps its locked version, so the lock holds a
    version only the lock (not pyproject.toml) asks for.
    """
    folder.mkdir(parents=True)
    find = ["--no-index", "--find-links", str(wheelhouse)]
    run_uv("init", "--bare", "--no-workspace", "--name", name, "--python", "3.11", cwd=folder, home=home)
    run_uv("add", "--no-sync", *find, "tinybeta", "tinyalpha<2", cwd=folder, home=home)
    run_uv("remove", "--no-sync", *find, "tinyalpha", cwd=folder, home=home)
    assert locked_versions(folder) == {"tinyalpha": "1.1", "tinybeta": "1.0"}
    return folder


@pytest.fixture
def project(testbed, tmp_path, home) -> Path:
    return make_project(tmp_path / "demo", testbed.clusters["alpha"].wheelhouse, home)


def leftovers(cluster, root: str, name: str) -> str:
    return cluster.run_as_user(f"ls -d {root}/{name}* 2>/dev/null", check=False).stdout.strip()


# -- reading (no cluster needed) -----------------------------------------------------------------

PYPROJECT = """[project]
name = "{name}"
version = "0.1.0"
requires-python = "{requires}"
dependencies = [{deps}]
"""

LOCK_HEAD = """version = 1
revision = 3
requires-python = ">=3.10"
"""


def lock_package(name: str, version: str, source: str = '{ registry = "https://pypi.org/simple" }',
                 deps: str = "", extra: str = "") -> str:
    text = f'\n[[package]]\nname = "{name}"\nversion = "{version}"\nsource = {source}\n'
    if deps:
        text += f"dependencies = [{deps}]\n"
    return text + extra


def write_project(folder: Path, pyproject: str, lock: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(pyproject)
    (folder / "uv.lock").write_text(lock)
    return folder


def test_lock_graph_follows_markers_extras_groups_and_forks(tmp_path):
    lock = LOCK_HEAD + lock_package(
        "app", "0.1.0", '{ editable = "." }',
        '{ name = "click" }, { name = "numpy", version = "1.26.4", source = { registry = '
        '"https://pypi.org/simple" }, marker = "python_full_version < \'3.11\'" }, { name = "numpy", '
        'version = "2.1.0", source = { registry = "https://pypi.org/simple" }, marker = '
        '"python_full_version >= \'3.11\'" }, { name = "httpx", extra = ["http2"] }',
        '\n[package.dev-dependencies]\ndev = [{ name = "pytest" }]\n') + \
        lock_package("click", "8.1.7", deps='{ name = "colorama", marker = "sys_platform == \'win32\'" }') + \
        lock_package("colorama", "0.4.6") + lock_package("numpy", "1.26.4") + lock_package("numpy", "2.1.0") + \
        lock_package("httpx", "0.27.0", extra='\n[package.optional-dependencies]\nhttp2 = [{ name = "h2" }]\n') + \
        lock_package("h2", "4.1.0") + lock_package("pytest", "8.3.0") + \
        lock_package("mylib", "1.0", '{ git = "https://github.com/me/mylib?rev=main#0123abcd" }')
    folder = write_project(tmp_path / "app", PYPROJECT.format(name="app", requires=">=3.10,<4",
                                                              deps='"click", "numpy", "httpx[http2]"'), lock)
    project = read_uv_project(folder / "pyproject.toml")
    assert project.name == "app" and project.python == "3.10"
    assert project.dependencies == ["click", "numpy", "httpx[http2]"]
    assert "app" not in {p.name for p in project.locked}
    on_311 = {p.name: p.version for p in select_packages(project, marker_environment("3.11.5"))}
    assert on_311 == {"click": "8.1.7", "numpy": "2.1.0", "httpx": "0.27.0", "h2": "4.1.0", "pytest": "8.3.0"}
    on_310 = {p.name: p.version for p in select_packages(project, marker_environment("3.10.4"))}
    assert on_310["numpy"] == "1.26.4" and "colorama" not in on_310
    assert [p.name for p in project.not_portable] == ["mylib"]
    assert project.not_portable[0].pin().pip_line() == "mylib @ git+https://github.com/me/mylib@0123abcd"
    spec = to_spec(project, marker_environment("3.11.5"))
    assert spec.kind == "uv" and spec.python == "3.10" and spec.requirements == project.dependencies
    assert sorted(pin.pip_line() for pin in spec.pins) == [
        "click==8.1.7", "h2==4.1.0", "httpx==0.27.0", "numpy==2.1.0", "pytest==8.3.0"]


HOSTILE_PROJECTS = {
    "project name": (PYPROJECT.format(name="x; rm -rf ~", requires=">=3.11", deps=""), LOCK_HEAD),
    "dependency": (PYPROJECT.format(name="demo", requires=">=3.11", deps='"tinybeta; rm -rf ~"'), LOCK_HEAD),
    "dependency newline": (PYPROJECT.format(name="demo", requires=">=3.11", deps='"tinybeta\\nid"'), LOCK_HEAD),
    "requires-python": (PYPROJECT.format(name="demo", requires="$(touch /tmp/envdesk-canary)", deps=""),
                        LOCK_HEAD),
    "locked name": (PYPROJECT.format(name="demo", requires=">=3.11", deps=""),
                    LOCK_HEAD + lock_package("x; rm -rf ~", "1.0")),
    "locked version": (PYPROJECT.format(name="demo", requires=">=3.11", deps=""),
                       LOCK_HEAD + lock_package("tinyalpha", "1.0\\nrm -rf ~")),
    "locked version subst": (PYPROJECT.format(name="demo", requires=">=3.11", deps=""),
                             LOCK_HEAD + lock_package("tinyalpha", "$(touch /tmp/envdesk-canary)")),
    "marker": (PYPROJECT.format(name="demo", requires=">=3.11", deps=""),
               LOCK_HEAD + lock_package("demo", "0.1.0", '{ virtual = "." }',
                                        '{ name = "tinyalpha", marker = "os_name == \'posix\'; rm -rf ~" }')
               + lock_package("tinyalpha", "1.0")),
    "source": (PYPROJECT.format(name="demo", requires=">=3.11", deps=""),
               LOCK_HEAD + lock_package("tinyalpha", "1.0", '{ url = "https://x.org/a b; rm -rf ~" }')),
    "not toml": ("[project\nname = 1", LOCK_HEAD),
    "lock version": (PYPROJECT.format(name="demo", requires=">=3.11", deps=""), "version = 99\n"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_PROJECTS))
def test_hostile_files_are_refused_when_read(tmp_path, case):
    pyproject, lock = HOSTILE_PROJECTS[case]
    folder = write_project(tmp_path / "p", pyproject, lock)
    with pytest.raises(InvalidInput) as info:
        read_uv_project(folder)
    assert "Traceback" not in str(info.value) and info.value.message


def test_missing_lock_huge_files_and_spec_reader(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "pyproject.toml").write_text(PYPROJECT.format(name="demo", requires=">=3.11", deps=""))
    with pytest.raises(InvalidInput, match="uv lock"):
        read_uv_project(folder)
    (folder / "uv.lock").write_text(LOCK_HEAD + "#" * 6_000_000)
    with pytest.raises(InvalidInput, match="too large"):
        read_uv_project(folder)
    with pytest.raises(InvalidInput, match="uv project"):
        read_spec_file(folder / "pyproject.toml")


# -- building on the test bed ----------------------------------------------------------------------

def test_import_onto_alpha_runs_uv_sync_with_the_locked_versions(testbed, session, project):
    alpha = testbed.clusters["alpha"]
    name = unique("uvp")
    imported = import_uv_project(session, "alpha", project, name=name)
    env = imported.environment
    assert env.path == f"{alpha.home}/venvs/{name}/.venv"
    assert (env.kind, env.state, env.modules) == ("uv", "ok", ("python/3.11.5",))
    assert packages_of(env) == locked_versions(project) == {"tinyalpha": "1.1", "tinybeta": "1.0"}
    assert env.envdesk["requested"] == ["tinybeta>=1.0"] and env.envdesk["kind"] == "uv"
    assert env.envdesk["imported_from"]["format"] == "uv"
    folder = f"{alpha.home}/venvs/{name}"
    assert alpha.run_as_user(f"cat {folder}/uv.lock").stdout == (project / "uv.lock").read_text()
    assert alpha.run_as_user(f"cat {folder}/pyproject.toml").stdout == (project / "pyproject.toml").read_text()
    assert alpha.run_as_user(f"test -e {folder}/.venv/.envdesk/CREATING", check=False).returncode != 0
    # what the user's own `uv run` sees there, with the cluster's modules
    out = alpha.run_as_user(f"module load python/3.11.5 uv/0.13 && cd {folder} && uv run --frozen --offline "
                            "--no-sync python -c 'import tinyalpha; print(tinyalpha.__version__)'").stdout
    assert out.strip() == "1.1"
    listed = read_inventory(session.target("alpha").runner, session.target("alpha").roots).find(f"{name}/.venv")
    assert listed.state == "ok" and packages_of(listed) == packages_of(env)


def test_import_onto_beta_without_uv_pins_the_locked_versions_with_pip(testbed, session, project):
    name = unique("uvb")
    imported = import_uv_project(session, "beta", project, name=name)
    env = imported.environment
    assert env.path == f"{testbed.clusters['beta'].home}/venvs/{name}"
    assert env.kind == "venv" and env.state == "ok"
    assert env.modules == ("GCC/12.3.0", "Python/3.11.3")
    assert packages_of(env) == locked_versions(project)
    assert any("no uv" in note and "pip installed the versions locked in uv.lock" in note for note in imported.notes)
    assert env.envdesk["requested"] == ["tinybeta>=1.0"]


def test_hostile_projects_are_refused_before_anything_runs(testbed, session, tmp_path):
    alpha = testbed.clusters["alpha"]
    alpha.run_as_user("rm -f /tmp/envdesk-canary")
    session.target("alpha").runner.connect()
    before = len(alpha.session_commands())
    for index, case in enumerate(sorted(HOSTILE_PROJECTS)):
        folder = write_project(tmp_path / f"hostile{index}", *HOSTILE_PROJECTS[case])
        with pytest.raises(InvalidInput):
            import_uv_project(session, "alpha", folder, name=f"hostile{index}")
    good = write_project(tmp_path / "good", PYPROJECT.format(name="demo", requires=">=3.11", deps=""),
                         LOCK_HEAD + lock_package("demo", "0.1.0", '{ virtual = "." }'))
    for bad_name in ("a;touch /tmp/envdesk-canary", "../..", "new\nline"):
        with pytest.raises(InvalidInput):
            import_uv_project(session, "alpha", good, name=bad_name)
    with pytest.raises(InvalidInput):
        import_uv_project(session, "alpha", good, root="$(touch /tmp/envdesk-canary)")
    assert len(alpha.session_commands()) == before, "a refused project must not run anything"
    assert alpha.run_as_user("test -e /tmp/envdesk-canary", check=False).returncode != 0
    assert leftovers(alpha, "~/venvs", "hostile") == ""


def test_a_failing_sync_leaves_nothing_behind(testbed, session, project):
    alpha = testbed.clusters["alpha"]
    lock = project / "uv.lock"
    text = lock.read_text()
    assert 'name = "tinyalpha"\nversion = "1.1"' in text
    lock.write_text(text.replace('name = "tinyalpha"\nversion = "1.1"', 'name = "tinyalpha"\nversion = "9.9"')
                        .replace("tinyalpha-1.1-py3-none-any.whl", "tinyalpha-9.9-py3-none-any.whl"))
    name = unique("uvfail")
    with pytest.raises(CommandFailed) as info:
        import_uv_project(session, "alpha", project, name=name)
    assert "uv sync" in info.value.message
    assert leftovers(alpha, "~/venvs", name) == ""


def test_cancel_during_uv_sync_leaves_nothing_behind(testbed, session, project):
    """The lock points tinyalpha at a named pipe on the cluster: uv sync blocks reading it until cancelled.

    The version is new each run, so that no wheel in the user's uv cache stands in for the pipe.
    """
    alpha = testbed.clusters["alpha"]
    blocker, version = f"{alpha.home}/{unique('fifo')}", f"1.1.post{uuid.uuid4().int % 10**9}"
    wheel = f"tinyalpha-{version}-py3-none-any.whl"
    alpha.run_as_user(f"mkdir -p {blocker} && mkfifo {blocker}/{wheel}")
    lock = project / "uv.lock"
    lock.write_text(lock.read_text()
                    .replace('name = "tinyalpha"\nversion = "1.1"', f'name = "tinyalpha"\nversion = "{version}"')
                    .replace(f"{alpha.wheelhouse}/tinyalpha-1.1-py3-none-any.whl", f"{blocker}/{wheel}"))
    name = unique("uvcancel")
    progress = Progress()
    timers: list[threading.Timer] = []

    def on_step(text: str) -> None:
        if "uv sync" in text:
            timers.append(threading.Timer(3.0, progress.cancel.cancel))
            timers[-1].start()

    progress.on_step = on_step
    try:
        with pytest.raises(Cancelled):
            import_uv_project(session, "alpha", project, name=name, progress=progress)
    finally:
        for timer in timers:
            timer.cancel()
    assert timers, "the sync step never started"
    assert leftovers(alpha, "~/venvs", name) == ""
    alpha.run_as_user(f"rm -rf {blocker}")


def test_an_existing_folder_is_refused_and_kept(testbed, session, project):
    alpha = testbed.clusters["alpha"]
    name = unique("uvexists")
    alpha.run_as_user(f"mkdir -p ~/venvs/{name} && echo mine > ~/venvs/{name}/notes.txt")
    with pytest.raises(InvalidInput, match="already exists"):
        import_uv_project(session, "alpha", project, name=name)
    assert alpha.run_as_user(f"ls -A ~/venvs/{name}").stdout.split() == ["notes.txt"]


def test_cli_imports_a_project_folder(testbed, tmp_path, project):
    config, home = tmp_path / "cli-cfg", tmp_path / "cli-home"
    home.mkdir()
    make_config(config, testbed, ["alpha"])
    name = unique("uvcli")
    result = run_cli("env", "import", "alpha", str(project / "pyproject.toml"), "--name", name,
                     config=config, home=home)
    assert result.returncode == 0, result.stderr
    assert f"venvs/{name}/.venv" in result.stdout


def installed_in(cluster, env_path: str) -> dict[str, str]:
    """What the environment's own Python sees installed (importlib.metadata, not EnvDesk's reading)."""
    script = ("import importlib.metadata as m; "
              "print(' '.join(d.metadata['Name'] + '==' + d.version for d in m.distributions()))")
    out = cluster.run_as_user(f"module load python/3.11.5 2>/dev/null; {env_path}/bin/python -c \"{script}\"").stdout
    return {canon(item.split("==")[0]): item.split("==")[1] for item in out.split()}


@pytest.mark.parametrize("cluster_name", ["alpha", "beta"])
def test_top_level_is_honoured_for_a_uv_project_whose_locked_versions_are_missing(testbed, session, project,
                                                                                  cluster_name):
    lock = project / "uv.lock"
    lock.write_text(lock.read_text().replace('name = "tinyalpha"\nversion = "1.1"',
                                             'name = "tinyalpha"\nversion = "9.9"')
                    .replace("tinyalpha-1.1-py3-none-any.whl", "tinyalpha-9.9-py3-none-any.whl"))
    name = unique("uvtop")
    imported = import_uv_project(session, cluster_name, project, name=name, top_level=True)
    assert imported.used_top_level
    assert any("instead" in note for note in imported.notes)
    held = installed_in(testbed.clusters[cluster_name], imported.environment.path)
    assert "tinybeta" in held and held.get("tinyalpha") != "9.9"
