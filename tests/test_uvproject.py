"""Importing uv projects (pyproject.toml + uv.lock): reading them safely, and building them for real.

The projects are made with the test runner's own uv, offline, from alpha's wheelhouse. A uv project
goes through the one import pipeline: the lock becomes an EnvSpec (locked versions with their file
hashes) that import_environment builds, with uv on alpha (it has a uv module) and pip on beta.
What got installed is judged by the environment itself (`uv pip freeze`, or its own Python), never
by EnvDesk's reading of it.
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from envdesk.backend.errors import Cancelled, CommandFailed, InvalidInput
from envdesk.backend.inventory import read_inventory
from envdesk.backend.operations.common import Progress
from envdesk.backend.operations.importing import read_spec_file
from envdesk.backend.operations.uvimport import import_uv_project, plan_uv_project
from envdesk.backend.uvproject import marker_environment, read_uv_project, select_packages, to_spec
from envdesk_fixtures import canon, unique, make_config, run_cli


# -- helpers and fixtures -----------------------------------------------------------------------

def locked_versions(project_dir: Path) -> dict[str, str]:
    project = read_uv_project(project_dir)
    return {canon(p.name): p.version for p in project.locked}


def uv_bin() -> str:
    import uv
    return uv.find_uv_bin()


def run_uv(*args: str, cwd: Path, home: Path, offline: bool = True,
           check: bool = True) -> subprocess.CompletedProcess:
    """The test runner's uv, with its own cache and no Python downloads; offline unless told otherwise
    (a test's own server on loopback)."""
    env = {**os.environ, "HOME": str(home), "UV_PYTHON_DOWNLOADS": "never",
           "UV_CACHE_DIR": str(home / "uv-cache"), "UV_NO_CONFIG": "1", **({"UV_OFFLINE": "1"} if offline else {})}
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run([uv_bin(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 or not check, result.stderr
    return result


def make_project(folder: Path, wheelhouse: Path, home: Path, name: str = "demo", *, package: bool = False) -> Path:
    """`uv init --bare` + `uv add tinybeta`, with tinyalpha locked at 1.1 (a fresh resolve gives 2.0).

    tinyalpha is added with <2 and removed again: uv keeps its locked version, so the lock holds a
    version only the lock (not pyproject.toml) asks for. With `package`, a library project (`--lib`), which
    `uv sync` installs too; otherwise a virtual project, which is only its dependencies.
    """
    folder.mkdir(parents=True)
    find = ["--no-index", "--find-links", str(wheelhouse)]
    run_uv("init", "--bare", *(["--lib"] if package else []), "--no-workspace", "--name", name, "--python", "3.11",
           cwd=folder, home=home)
    run_uv("add", "--no-sync", *find, "tinybeta", "tinyalpha<2", cwd=folder, home=home)
    run_uv("remove", "--no-sync", *find, "tinyalpha", cwd=folder, home=home)
    assert locked_versions(folder) == {"tinyalpha": "1.1", "tinybeta": "1.0"}
    return folder


@pytest.fixture
def project(testbed, tmp_path, home) -> Path:
    return make_project(tmp_path / "demo", testbed.clusters["alpha"].wheelhouse, home)


def leftovers(cluster, root: str, name: str) -> str:
    return cluster.run_as_user(f"ls -d {root}/{name}* 2>/dev/null", check=False).stdout.strip()


def add_hashes(project_dir: Path) -> dict[str, str]:
    """Give every locked wheel its sha256, as uv.lock has it for packages from an index such as PyPI.

    (uv records no hashes for a local wheel folder; the wheelhouses are on this machine, so the hashes
    are those of the very files the clusters install.) Returns {wheel file name: hash}.
    """
    lock = project_dir / "uv.lock"
    hashes: dict[str, str] = {}

    def with_hash(match: re.Match) -> str:
        wheel = Path(match.group(1))
        hashes[wheel.name] = "sha256:" + hashlib.sha256(wheel.read_bytes()).hexdigest()
        return f'{{ path = "{wheel}", hash = "{hashes[wheel.name]}" }}'

    lock.write_text(re.sub(r'\{ path = "([^"]+\.whl)" \}', with_hash, lock.read_text()))
    assert len(hashes) == 2, lock.read_text()
    return hashes


def frozen(cluster, env_path: str) -> dict[str, str]:
    """What the environment holds besides its installer: `uv pip freeze --python ENV` on alpha, the
    environment's own Python on beta (which has no uv)."""
    modules = "module load uv/0.13 && " if cluster.name == "alpha" else ""
    if not modules:
        return {name: version for name, version in installed_in(cluster, env_path).items()
                if name not in ("pip", "setuptools", "wheel")}
    out = cluster.run_as_user(f"{modules}uv pip freeze --python {env_path}/bin/python").stdout
    return {canon(line.split("==")[0]): line.split("==")[1] for line in out.split() if "==" in line}


# -- reading (no cluster needed) -----------------------------------------------------------------

PYPROJECT = """[project]
name = "{name}"
version = "0.1.0"
requires-python = "{requires}"
dependencies = [{deps}]
"""

COMMIT = "0123abcd" * 5
MYLIB_GIT = f'{{ git = "https://github.com/me/mylib?rev=main#{COMMIT}" }}'  # uv refuses a short commit here
MYLIB_LINE = f"mylib @ git+https://github.com/me/mylib@{COMMIT}"

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


def installed_by_uv(folder: Path, python_full_version: str) -> dict[str, str]:
    """What uv itself installs from the project's lock for a Python of that version on this (Linux) machine: `uv
    export --frozen` (its lines and their markers, groups included as uv sync does), each marker evaluated by
    packaging. The referee for reading a uv.lock (R16: the versions were written into the test by hand)."""
    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    exported = subprocess.run(["uv", "export", "--frozen", "--offline", "--no-hashes", "--no-emit-project",
                               "--project", str(folder)], capture_output=True, text=True, check=True, timeout=120)
    environment = {**default_environment(), "python_full_version": python_full_version,
                   "python_version": ".".join(python_full_version.split(".")[:2])}
    chosen = {}
    for line in exported.stdout.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(environment):
                chosen[requirement.name] = str(requirement.specifier).removeprefix("==")
    return chosen


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
        lock_package("mylib", "1.0", MYLIB_GIT)
    folder = write_project(tmp_path / "app", PYPROJECT.format(name="app", requires=">=3.10,<4",
                                                              deps='"click", "numpy", "httpx[http2]"'), lock)
    project = read_uv_project(folder / "pyproject.toml")
    assert project.name == "app" and project.python == "3.10"
    assert project.dependencies == ["click", "numpy", "httpx[http2]"]
    assert "app" not in {p.name for p in project.locked}
    on_311 = {p.name: p.version for p in select_packages(project, marker_environment("3.11.5"))}
    assert on_311 == installed_by_uv(folder, "3.11.5")
    on_310 = {p.name: p.version for p in select_packages(project, marker_environment("3.10.4"))}
    assert on_310 == installed_by_uv(folder, "3.10.4")
    assert on_310["numpy"] != on_311["numpy"]  # the fork is there to be followed
    assert [p.name for p in project.not_portable] == ["mylib"]
    assert project.not_portable[0].pin().pip_line() == MYLIB_LINE
    spec = to_spec(project, marker_environment("3.11.5"))
    assert spec.kind == "uv" and spec.python == "3.10" and spec.requirements == project.dependencies
    assert sorted(pin.pip_line() for pin in spec.pins) == sorted(
        f"{name}=={version}" for name, version in installed_by_uv(folder, "3.11.5").items())


def test_the_lock_becomes_hashed_lines_git_commits_and_local_folders(tmp_path):
    digest = "ab" * 32
    wheel = '\nwheels = [{{ url = "https://files.example/{0}-py3-none-any.whl", hash = "sha256:{1}" }}, ' \
            '{{ url = "https://files.example/{0}-cp311-manylinux.whl", hash = "sha256:{2}" }}]\n' \
            'sdist = {{ url = "https://files.example/{0}.tar.gz", hash = "sha256:{1}" }}\n'
    lock = LOCK_HEAD + lock_package(
        "app", "0.1.0", '{ virtual = "." }',
        '{ name = "click" }, { name = "mylib" }, { name = "helper" }, { name = "winonly", marker = '
        '"sys_platform == \'win32\'" }') + \
        lock_package("click", "8.1.7", deps='{ name = "colorama" }',
                     extra=wheel.format("click-8.1.7", digest, "cd" * 32)) + \
        lock_package("colorama", "0.4.6", extra=wheel.format("colorama-0.4.6", "ef" * 32, "01" * 32)) + \
        lock_package("winonly", "1.0", extra=wheel.format("winonly-1.0", "23" * 32, "45" * 32)) + \
        lock_package("mylib", "1.0", MYLIB_GIT,
                     deps='{ name = "colorama" }') + \
        lock_package("helper", "0.3", '{ directory = "../helper" }')
    folder = write_project(tmp_path / "app", PYPROJECT.format(
        name="app", requires=">=3.11", deps='"click>=8", "mylib", "helper"'), lock)
    spec = to_spec(read_uv_project(folder), marker_environment("3.11.5"))
    assert spec.hashed == [f"click==8.1.7 --hash=sha256:{digest} --hash=sha256:{'cd' * 32}",
                           f"colorama==0.4.6 --hash=sha256:{'ef' * 32} --hash=sha256:{'01' * 32}"]
    helper = f"helper @ {(tmp_path / 'helper').resolve().as_uri()}"  # installed where the target has the folder
    assert [pin.pip_line() for pin in spec.pins] == [MYLIB_LINE, helper]
    assert not spec.refused
    assert spec.requirements == ["click>=8", "mylib", helper], "a folder's package is not fetched from an index"
    assert spec.source == {"format": "uv", "path": str(folder), "project": "app"} and not spec.adapted

    # a hashed package that needs one without hashes: pip and uv cannot check it, so say so
    blocked = lock.replace('name = "click"\nversion = "8.1.7"\nsource = { registry = "https://pypi.org/simple" }\n'
                           'dependencies = [{ name = "colorama" }]',
                           'name = "click"\nversion = "8.1.7"\nsource = { registry = "https://pypi.org/simple" }\n'
                           'dependencies = [{ name = "mylib" }]')
    assert blocked != lock
    spec = to_spec(read_uv_project(write_project(tmp_path / "app2", PYPROJECT.format(
        name="app", requires=">=3.11", deps='"click>=8", "mylib"'), blocked)), marker_environment("3.11.5"))
    assert spec.hashed == []
    assert [(a.as_, "mylib" in a.reason) for a in spec.adapted] == [("click==8.1.7", True), ("colorama==0.4.6", True)]


CANARY = f"/tmp/{unique('envdesk-canary')}"
"""The file a hostile value below would make if it ran: this process's own (two sessions or workers at once)."""
HOSTILE_PROJECTS = {
    "project name": (PYPROJECT.format(name="x; rm -rf ~", requires=">=3.11", deps=""), LOCK_HEAD),
    "dependency": (PYPROJECT.format(name="demo", requires=">=3.11", deps='"tinybeta; rm -rf ~"'), LOCK_HEAD),
    "dependency newline": (PYPROJECT.format(name="demo", requires=">=3.11", deps='"tinybeta\\nid"'), LOCK_HEAD),
    "requires-python": (PYPROJECT.format(name="demo", requires=f"$(touch {CANARY})", deps=""),
                        LOCK_HEAD),
    "locked name": (PYPROJECT.format(name="demo", requires=">=3.11", deps=""),
                    LOCK_HEAD + lock_package("x; rm -rf ~", "1.0")),
    "locked version": (PYPROJECT.format(name="demo", requires=">=3.11", deps=""),
                       LOCK_HEAD + lock_package("tinyalpha", "1.0\\nrm -rf ~")),
    "locked version subst": (PYPROJECT.format(name="demo", requires=">=3.11", deps=""),
                             LOCK_HEAD + lock_package("tinyalpha", f"$(touch {CANARY})")),
    "marker": (PYPROJECT.format(name="demo", requires=">=3.11", deps=""),
               LOCK_HEAD + lock_package("demo", "0.1.0", '{ virtual = "." }',
                                        '{ name = "tinyalpha", marker = "os_name == \'posix\'; rm -rf ~" }')
               + lock_package("tinyalpha", "1.0")),
    "source": (PYPROJECT.format(name="demo", requires=">=3.11", deps=""),
               LOCK_HEAD + lock_package("tinyalpha", "1.0", '{ url = "https://x.org/a b; rm -rf ~" }')),
    "file hash": (PYPROJECT.format(name="demo", requires=">=3.11", deps=""),
                  LOCK_HEAD + lock_package("tinyalpha", "1.0", extra='wheels = [{ url = "https://x.org/a.whl", '
                                                                      'hash = "sha256:ab\\n--index-url evil" }]\n')),
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
    for lock, tool in (("poetry.lock", "poetry export"), ("Pipfile", "pipenv requirements")):
        (folder / lock).write_text("")  # another tool's project: its own way out, not `uv lock` (a user trial)
        with pytest.raises(InvalidInput) as refused:
            read_uv_project(folder)
        assert tool in refused.value.hint and "uv lock" not in refused.value.hint
        (folder / lock).unlink()
    (folder / "uv.lock").write_text(LOCK_HEAD + "#" * 6_000_000)
    with pytest.raises(InvalidInput, match="too large"):
        read_uv_project(folder)
    with pytest.raises(InvalidInput, match="uv project"):
        read_spec_file(folder / "pyproject.toml")


def test_the_groups_uv_sync_installs_are_asked_for_too(testbed, tmp_path, home):
    """T11: a uv project's dev group was installed but not recorded as asked for, so --top-level (and a later copy
    made from what was asked for) left it out. uv's own tree of the project's direct requirements is the referee:
    the default group (dev, with an include-group) is asked for, another group is not."""
    folder = make_project(tmp_path / "grouped", testbed.clusters["alpha"].wheelhouse, home)
    find = ["--no-index", "--find-links", str(testbed.clusters["alpha"].wheelhouse)]
    run_uv("add", "--no-sync", *find, "--group", "lint", "tinygamma", cwd=folder, home=home)
    run_uv("add", "--no-sync", *find, "--group", "docs", "tinyold", cwd=folder, home=home)
    pyproject = folder / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("[dependency-groups]\n",
                                                       '[dependency-groups]\ndev = [{ include-group = "lint" }]\n'))
    run_uv("lock", *find, cwd=folder, home=home)
    spec = to_spec(read_uv_project(folder), marker_environment("3.11.5"))
    tree = run_uv("tree", "--frozen", "--depth", "1", cwd=folder, home=home).stdout
    direct = {canon(name) for name in re.findall(r"[├└]── (\S+) v", tree)}
    assert {canon(re.split(r"[<>=!~ ;\[]", line)[0]) for line in spec.requirements} == direct, tree
    assert "tinyold" not in direct and "tinygamma" in direct


# -- building on the test bed ----------------------------------------------------------------------

@pytest.mark.parametrize("cluster_name", ["alpha", "beta"])
def test_import_installs_the_locked_versions_checked_against_their_hashes(testbed, session, project,
                                                                          cluster_name):
    """alpha installs with uv, beta (no uv) with pip: either way one plain environment, every file checked."""
    cluster = testbed.clusters[cluster_name]
    add_hashes(project)
    name = unique("uvp")
    imported = import_uv_project(session, cluster_name, project, name=name)
    env = imported.environment
    assert env.path == f"{cluster.home}/venvs/{name}" and env.state == "ok"
    assert (env.kind, env.modules) == (("uv", ("python/3.11.5",)) if cluster_name == "alpha" else
                                       ("venv", ("GCC/12.3.0", "Python/3.11.3")))
    assert frozen(cluster, env.path) == locked_versions(project) == {"tinyalpha": "1.1", "tinybeta": "1.0"}
    assert any("2 locked package(s) are installed with the file hashes" in note for note in imported.notes)
    assert env.envdesk["requested"] == ["tinybeta>=1.0"]
    assert env.envdesk["imported_from"] == {"format": "uv", "path": str(project), "project": "demo"}
    # a plain environment: the project's files stay on this computer
    assert cluster.run_as_user(f"ls {env.path}/pyproject.toml {env.path}/uv.lock {env.path}/.venv",
                               check=False).returncode != 0
    assert cluster.run_as_user(f"test -e {env.path}/.envdesk/CREATING", check=False).returncode != 0
    listed = read_inventory(session.target(cluster_name).runner, session.target(cluster_name).roots).find(name)
    assert listed.state == "ok" and listed.envdesk["imported_from"]["format"] == "uv"


@pytest.mark.parametrize("cluster_name", ["alpha", "beta"])
def test_a_corrupted_hash_in_the_lock_fails_and_leaves_nothing_behind(testbed, session, project, cluster_name):
    cluster = testbed.clusters[cluster_name]
    hashes = add_hashes(project)
    good = hashes["tinyalpha-1.1-py3-none-any.whl"]
    bad = good[:-6] + ("000000" if not good.endswith("000000") else "111111")
    lock = project / "uv.lock"
    lock.write_text(lock.read_text().replace(good, bad))
    name = unique("uvhash")
    with pytest.raises(CommandFailed) as info:
        import_uv_project(session, cluster_name, project, name=name)
    assert "hash" in (info.value.message + info.value.log).lower()
    assert leftovers(cluster, "~/venvs", name) == ""


def test_import_onto_beta_without_hashes_pins_the_locked_versions_with_pip(testbed, session, project):
    name = unique("uvb")
    imported = import_uv_project(session, "beta", project, name=name)
    env = imported.environment
    assert env.path == f"{testbed.clusters['beta'].home}/venvs/{name}"
    assert env.kind == "venv" and env.state == "ok"
    assert frozen(testbed.clusters["beta"], env.path) == locked_versions(project)
    assert any("lists no file hashes for tinyalpha, tinybeta" in note for note in imported.notes)
    assert env.envdesk["requested"] == ["tinybeta>=1.0"]


def test_the_plan_picks_the_targets_python_and_refuses_local_folders(testbed, session, project):
    add_hashes(project)
    lock = project / "uv.lock"
    lock.write_text(lock.read_text() + '\n[[package]]\nname = "helper"\nversion = "0.3"\n'
                                       'source = { directory = "../helper" }\n')
    text = lock.read_text().replace('dependencies = [\n    { name = "tinybeta" },\n]',
                                    'dependencies = [\n    { name = "helper" },\n    { name = "tinybeta" },\n]', 1)
    lock.write_text(text)
    plan = plan_uv_project(session, "alpha", project, name=unique("uvplan"))
    assert plan.python == "3.11.5" and plan.kind == "uv" and plan.modules == ["python/3.11.5"]
    assert [line.split(" --hash=")[0] for line in plan.pins] == ["tinyalpha==1.1", "tinybeta==1.0"]
    assert all(" --hash=sha256:" in line for line in plan.pins)
    assert [r.line.split(" ")[0] for r in plan.refused] == ["helper"]
    with pytest.raises(InvalidInput, match="cannot be imported"):
        import_uv_project(session, "alpha", project, name=unique("uvplan"))


def test_the_plan_says_the_project_itself_is_not_installed_where_uv_sync_would_install_it(testbed, session, tmp_path,
                                                                                         home):
    """uv decides which projects `uv sync` installs: a library project's lock marks it editable."""
    wheelhouse = testbed.clusters["alpha"].wheelhouse
    library = make_project(tmp_path / "library", wheelhouse, home, "labtools", package=True)
    assert 'name = "labtools"\nversion = "0.1.0"\nsource = { editable = "." }' in (library / "uv.lock").read_text()
    plan = plan_uv_project(session, "alpha", library, name=unique("uvlib"))
    itself = [note for note in plan.notes if note.startswith("The project itself (labtools) is not installed")]
    assert len(itself) == 1 and "copy its folder to alpha" in itself[0], plan.notes
    assert [line.split("==")[0] for line in plan.pins] == ["tinyalpha", "tinybeta"]

    virtual = make_project(tmp_path / "virtual", wheelhouse, home, "analysis")
    assert 'source = { virtual = "." }' in (virtual / "uv.lock").read_text()
    plan = plan_uv_project(session, "alpha", virtual, name=unique("uvvirt"))
    assert not [note for note in plan.notes if "project itself" in note], "uv sync installs no virtual project"


def test_a_lock_older_than_pyproject_is_refused_where_uv_lock_check_refuses_it(testbed, tmp_path, home):
    """A user trial copied a project, renamed it in pyproject.toml and imported it: the lock no longer named the
    project, so every package in it was installed, Windows-only ones too. `uv lock --check` is the referee."""
    wheelhouse = testbed.clusters["alpha"].wheelhouse
    find = ["--no-index", "--find-links", str(wheelhouse)]
    changes = {
        "renamed": lambda text: text.replace('name = "demo"', 'name = "demo2"'),
        "a dependency added": lambda text: text.replace('"tinybeta>=1.0"', '"tinybeta>=1.0",\n    "tinygamma"'),
        "a range changed": lambda text: text.replace('"tinybeta>=1.0"', '"tinybeta>=1.0,<3"'),
        "spaced, the same": lambda text: text.replace('"tinybeta>=1.0"', '"TinyBeta >= 1.0"'),
    }
    for number, (change, edit) in enumerate(changes.items()):
        folder = make_project(tmp_path / f"p{number}", wheelhouse, home)
        pyproject = folder / "pyproject.toml"
        edited = edit(pyproject.read_text())
        assert edited != pyproject.read_text(), change
        pyproject.write_text(edited)
        current = run_uv("lock", "--check", *find, cwd=folder, home=home, check=False).returncode == 0
        assert current == (change == "spaced, the same"), change
        if current:
            assert read_uv_project(folder).name == "demo"
            continue
        with pytest.raises(InvalidInput, match="uv lock") as refused:
            read_uv_project(folder)
        assert ("does not lock the project demo2" if change == "renamed" else "older than pyproject.toml") in str(
            refused.value.message), change


def test_locks_uv_has_just_made_are_current_whatever_the_project_holds(testbed, tmp_path, home):
    """Review R3: uv records optional dependencies (marked extra == …) and [tool.uv.sources] (where from, not
    the versions asked for) in the lock's requires-dist, and fresh locks of such projects were called out of
    date. Each is locked by uv, `uv lock --check` agrees it is current, and EnvDesk reads it."""
    from testbed.projects import TINYBACKEND, _init_py, _pyproject
    wheelhouse = testbed.clusters["alpha"].wheelhouse
    find = ["--no-index", "--find-links", str(wheelhouse)]
    helper = tmp_path / "helper"
    (helper / "helper").mkdir(parents=True)
    (helper / "pyproject.toml").write_text(_pyproject("helper", "0.5", []))
    (helper / "tinybackend.py").write_text(TINYBACKEND)
    (helper / "helper" / "__init__.py").write_text(_init_py("helper", "0.5"))
    shapes = {
        "optional": '[project.optional-dependencies]\nfast = ["tinygamma>=0.1"]\n',
        "sources": '[tool.uv.sources]\nhelper = { path = "../helper" }\n',
    }
    for shape, extra in shapes.items():
        folder = tmp_path / shape
        folder.mkdir()
        deps = '"tinybeta>=1.0", "helper>=0.5"' if shape == "sources" else '"tinybeta>=1.0"'
        (folder / "pyproject.toml").write_text(PYPROJECT.format(name="demo", requires=">=3.11", deps=deps) + extra)
        run_uv("lock", "--python", "3.11", *find, cwd=folder, home=home)
        assert run_uv("lock", "--check", *find, cwd=folder, home=home, check=False).returncode == 0, shape
        assert read_uv_project(folder).name == "demo", shape
    dynamic = tmp_path / "dynamic"  # dependencies left to the build backend: only the project's name is compared
    write_project(dynamic, '[project]\nname = "demo"\nversion = "0.1"\ndynamic = ["dependencies"]\n',
                  LOCK_HEAD + lock_package("demo", "0.1", '{ editable = "." }', '{ name = "six" }',
                                           '\n[package.metadata]\nrequires-dist = [{ name = "six", specifier = '
                                           '">=1.0" }]\n') + lock_package("six", "1.16.0"))
    assert read_uv_project(dynamic).name == "demo"


def test_hostile_projects_are_refused_before_anything_runs(testbed, session, tmp_path):
    alpha = testbed.clusters["alpha"]
    alpha.run_as_user(f"rm -f {CANARY}")
    session.target("alpha").runner.connect()
    before = len(alpha.session_commands())
    for index, case in enumerate(sorted(HOSTILE_PROJECTS)):
        folder = write_project(tmp_path / f"hostile{index}", *HOSTILE_PROJECTS[case])
        with pytest.raises(InvalidInput):
            import_uv_project(session, "alpha", folder, name=f"hostile{index}")
    good = write_project(tmp_path / "good", PYPROJECT.format(name="demo", requires=">=3.11", deps=""),
                         LOCK_HEAD + lock_package("demo", "0.1.0", '{ virtual = "." }'))
    for bad_name in (f"a;touch {CANARY}", "../..", "new\nline"):
        with pytest.raises(InvalidInput):
            import_uv_project(session, "alpha", good, name=bad_name)
    with pytest.raises(InvalidInput):
        import_uv_project(session, "alpha", good, root=f"$(touch {CANARY})")
    assert len(alpha.session_commands()) == before, "a refused project must not run anything"
    assert alpha.run_as_user(f"test -e {CANARY}", check=False).returncode != 0
    assert leftovers(alpha, "~/venvs", "hostile") == ""


def test_a_missing_locked_version_fails_and_leaves_nothing_behind(testbed, session, project):
    alpha = testbed.clusters["alpha"]
    lock = project / "uv.lock"
    text = lock.read_text()
    assert 'name = "tinyalpha"\nversion = "1.1"' in text
    lock.write_text(text.replace('name = "tinyalpha"\nversion = "1.1"', 'name = "tinyalpha"\nversion = "9.9"')
                        .replace("tinyalpha-1.1-py3-none-any.whl", "tinyalpha-9.9-py3-none-any.whl"))
    name = unique("uvfail")
    with pytest.raises(CommandFailed) as info:
        import_uv_project(session, "alpha", project, name=name)
    assert "tinyalpha==9.9" in info.value.message
    assert leftovers(alpha, "~/venvs", name) == ""


def test_cancel_during_the_install_leaves_nothing_behind(testbed, session, project):
    """The lock takes tinyalpha from a file URL that is a named pipe on the cluster: the installer blocks
    reading it until cancelled.

    The version is new each run, so that no wheel in the user's caches stands in for the pipe.
    """
    alpha = testbed.clusters["alpha"]
    blocker, version = f"{alpha.home}/{unique('fifo')}", f"1.1.post{uuid.uuid4().int % 10**9}"
    wheel = f"tinyalpha-{version}-py3-none-any.whl"
    alpha.run_as_user(f"mkdir -p {blocker} && mkfifo {blocker}/{wheel}")
    lock = project / "uv.lock"
    text = lock.read_text()
    registry = re.search(r'name = "tinyalpha"\nversion = "1.1"\nsource = (\{ registry = "[^"]+" \})', text)
    assert registry, text
    lock.write_text(text.replace(registry.group(0), f'name = "tinyalpha"\nversion = "{version}"\n'
                                                    f'source = {{ url = "file://{blocker}/{wheel}" }}'))
    name = unique("uvcancel")
    progress = Progress()
    timers: list[threading.Timer] = []

    def on_step(text: str) -> None:
        if text.startswith("Installing packages"):
            timers.append(threading.Timer(3.0, progress.cancel.cancel))
            timers[-1].start()

    progress.on_step = on_step
    try:
        with pytest.raises(Cancelled):
            import_uv_project(session, "alpha", project, name=name, progress=progress)
    finally:
        for timer in timers:
            timer.cancel()
    assert timers, "the install step never started"
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
    assert result.stdout.rstrip().endswith(f"venvs/{name}") and ".venv" not in result.stdout


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





def test_a_folder_that_is_no_uv_project_but_holds_a_requirements_file_names_it(tmp_path):
    """User trial T10: importing a project folder that keeps a requirements.txt (and no pyproject.toml) said only
    that it is not a uv project; it now names the file to import instead."""
    from envdesk.backend.uvproject import read_uv_project

    (tmp_path / "requirements.txt").write_text("tinyalpha==1.1\n")
    with pytest.raises(InvalidInput) as info:
        read_uv_project(tmp_path)
    assert "holds requirements.txt" in info.value.message and info.value.hint == "Import requirements.txt itself."
