"""Imports of the files a user trial brought (T1 findings 4, 5, 7 and 12): download URLs in every form pip
accepts, editable lines, files in the encodings Windows writes, and conda's `nodefaults`.

The referees are the tools themselves: pip's own requirements-file parser says which lines download from
where and pip itself (`pip install --dry-run --report`, offline against the test wheels) says what a file in
each encoding asks for; uv says why it cannot install an editable line, and pip/uv freeze what an import
installed. conda cannot be installed here: its tests read the record of the conda STAND-IN
(testbed/fake_conda.py), which writes the arguments it was given into conda-meta/history as conda does.
"""
from __future__ import annotations

import codecs
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from envdesk.backend import spec as specs
from envdesk.backend.errors import CommandFailed, InvalidInput
from envdesk.backend.operations.importing import import_environment, plan_import, read_spec_file
from envdesk_fixtures import canon, envdesk_command, unique
from test_conda import conda_stand_in  # noqa: F401  (a fixture)
from testbed import wheels
from testbed.projects import TINYBACKEND, _init_py, _pyproject, add_commit, make_project


def local_config(folder: Path, pip_args: list[str] | None = None) -> Path:
    """A config folder whose only target is This computer, with its environments under `folder`."""
    config = folder / "config"
    config.mkdir(parents=True)
    text = f"local:\n  env_roots: [{json.dumps(str(folder / 'envs'))}]\n"
    if pip_args:
        text += f"  pip_args: {json.dumps(pip_args)}\n"
    (config / "clusters.yaml").write_text(text)
    return config


def envdesk(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*envdesk_command(), "--config-dir", str(config), *args], capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)


def planned(config: Path, path: Path) -> subprocess.CompletedProcess:
    return envdesk(config, "env", "import", "local", str(path), "--dry-run", "--json")


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    wheels.build_all(folder)
    return folder


# -- finding 4: every download URL pip would follow asks first ------------------------------------------

DOWNLOADS = """\
git+https://git.example.org/acme/report-templates.git
-e git+https://git.example.org/psf/requests.git@v2.31.0#egg=requests
--editable=git+https://git.example.org/acme/plotkit.git@main#egg=plotkit
git+https://git.example.org/pallets/click.git@8.1.7#egg=click
attrs @ git+https://git.example.org/python-attrs/attrs@23.2.0
hg+https://hg.example.org/acme/chart#egg=chart
iniconfig @ https://files.example.org/iniconfig-2.0.0-py3-none-any.whl
https://archive.example.org/acme-1.0.tar.gz
tinyalpha==1.1
"""


def pips_downloads(path: Path) -> dict[str, str]:
    """{URL: host} of each line pip would download from a host (pip's own parser; it fetches nothing)."""
    from urllib.parse import urlsplit

    from pip._internal.network.session import PipSession
    from pip._internal.req.constructors import install_req_from_parsed_requirement
    from pip._internal.req.req_file import parse_requirements
    found = {}
    for parsed in parse_requirements(str(path), session=PipSession()):
        link = install_req_from_parsed_requirement(parsed).link
        if link is not None and not link.is_file:
            found[link.url] = urlsplit(link.url.split("+", 1)[1] if link.is_vcs else link.url).hostname
    return found


def test_every_line_pip_would_download_is_shown_as_outside_and_asked_for(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(DOWNLOADS)
    expected = pips_downloads(requirements)
    assert len(expected) == 8  # the referee sees every URL line
    config = local_config(tmp_path)
    result = planned(config, requirements)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    outside, refused = plan["outside"], [r["line"] for r in plan["refused"]]
    for url, host in expected.items():
        shown = [o for o in outside if url in o["line"]]
        assert shown and shown[0]["host"] == host or any(url in line for line in refused), url
    assert not any("tinyalpha" in o["line"] for o in outside)
    for url in ("git+https://git.example.org/acme/report-templates.git", "git+https://git.example.org/psf/requests",
                "git+https://git.example.org/acme/plotkit"):  # bare and -e VCS lines, missed before
        assert any(url in o["line"] for o in outside), url
    stopped = envdesk(config, "env", "import", "local", str(requirements), "--name", "fromweb")
    assert stopped.returncode == 1 and "outside this target's package index" in stopped.stderr
    assert "git.example.org" in stopped.stderr and "hg.example.org" in stopped.stderr
    assert not (tmp_path / "envs" / "fromweb").exists()


# -- finding 5: -e lines are checked as they are installed, and -e git+ installs --------------------------

def local_project(folder: Path, name: str, version: str = "0.1") -> Path:
    """A source project uv can install offline (its own build backend, no setuptools needed)."""
    (folder / name).mkdir(parents=True)
    (folder / "pyproject.toml").write_text(_pyproject(name, version, []))
    (folder / "tinybackend.py").write_text(TINYBACKEND)
    (folder / name / "__init__.py").write_text(_init_py(name, version))
    return folder


def uvs_own_words(folder: Path, tmp_path: Path) -> str:
    """What uv itself says when asked to install `folder` editable, without its 'error: ' label, on one line (uv
    wraps a long one where it is not told not to: UV_NO_WRAP)."""
    venv = tmp_path / "referee-venv"
    subprocess.run(["uv", "venv", "-q", str(venv)], check=True, capture_output=True, timeout=300)
    said = subprocess.run(["uv", "pip", "install", "--dry-run", "--no-deps", "--python", str(venv / "bin" / "python"),
                           "-e", str(folder)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "UV_NO_WRAP": "1"})
    assert said.returncode != 0
    return next(line for line in said.stderr.splitlines() if line.startswith("error: "))[len("error: "):]


@pytest.mark.skipif(sys.platform == "win32", reason="the import check runs in bash")
def test_editable_folders_are_checked_as_installed_and_failures_say_uvs_sentence(tmp_path, wheelhouse):
    good = local_project(tmp_path / "good", "goodproj")
    not_a_project = tmp_path / "notes"
    not_a_project.mkdir()
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"tinyalpha==1.1\n-e {good}\n-e {not_a_project}\ntinymissing==1.0\n")
    config = local_config(tmp_path, ["--no-index", f"--find-links={wheelhouse}"])
    result = envdesk(config, "env", "import", "local", str(requirements), "--name", "edits", "--yes")
    assert result.returncode == 1
    message = result.stderr
    assert "2 package(s) cannot be installed" in message, message
    assert f"-e {good} (" not in message  # installable: the check gives uv -e and the folder apart
    assert f"-e {not_a_project} ({uvs_own_words(not_a_project, tmp_path)})" in message
    assert "(^)" not in message and "tinymissing==1.0 (no version of it in this target's package index" in message


@pytest.mark.skipif(sys.platform == "win32", reason="the import check runs in bash")
def test_a_relative_editable_folder_is_the_files_neighbour_installed_where_it_exists(tmp_path, wheelhouse,
                                                                                    session):
    """A user trial's `-e .` and `-e ./localpkg` (a project's requirements-dev.txt) were refused even on the
    computer that has them. They are the folders beside the file, as this computer names them: installed here
    (uv pip freeze, the referee, lists the folder editable) and refused on a cluster that has no such folder."""
    project = local_project(tmp_path / "proj", "relproj")
    requirements = project / "requirements-dev.txt"
    requirements.write_text("-e .\ntinyalpha==1.1\n")
    config = local_config(tmp_path, ["--no-index", f"--find-links={wheelhouse}"])
    made = envdesk(config, "env", "import", "local", str(requirements), "--name", "rel")
    assert made.returncode == 0, made.stderr
    frozen = subprocess.run(["uv", "pip", "freeze", "--python", str(tmp_path / "envs" / "rel" / "bin" / "python")],
                            capture_output=True, text=True, check=True, timeout=120).stdout.splitlines()
    assert f"-e {project.resolve().as_uri()}" in frozen and "tinyalpha==1.1" in frozen, frozen
    plan = plan_import(session, "alpha", read_spec_file(requirements))
    assert [(r.line, r.reason.split(" (")[0]) for r in plan.refused] == [
        (f"-e {project.resolve()}", f"its source folder {project.resolve()} does not exist on alpha")]


def installs_as_pip_does(requirements: Path, wheelhouse: Path, tmp_path: Path, from_paths: dict[Path, str]) -> set[str]:
    """Import `requirements` on This computer and compare what the environment holds (uv pip freeze) with what pip's
    own dry run of the file, run beside it, would install; the pins pip would install. `from_paths`: name==version
    of what is installed from each folder or file, whose freeze line is its path."""
    report = tmp_path / "pip-report.json"
    subprocess.run([sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--ignore-installed",
                    "--no-index", "--find-links", str(wheelhouse), "--quiet", "--report", str(report),
                    "-r", str(requirements)], check=True, capture_output=True, timeout=300, cwd=requirements.parent)
    pips = {f"{canon(item['metadata']['name'])}=={item['metadata']['version']}"
            for item in json.loads(report.read_text())["install"]}
    config = local_config(tmp_path, ["--no-index", f"--find-links={wheelhouse}"])
    made = envdesk(config, "env", "import", "local", str(requirements), "--name", "imported")
    assert made.returncode == 0, made.stderr
    frozen = subprocess.run(["uv", "pip", "freeze", "--python", str(tmp_path / "envs" / "imported" / "bin" / "python")],
                            capture_output=True, text=True, check=True, timeout=120).stdout.splitlines()
    held = {next((pin for path, pin in from_paths.items() if entry.endswith(path.resolve().as_uri())),
                 canon(entry.split("==")[0]) + "==" + entry.split("==")[-1]) for entry in frozen}
    assert {entry for entry in held if not entry.startswith(("pip==", "setuptools=="))} == pips, (frozen, pips)
    return pips


@pytest.mark.skipif(sys.platform == "win32", reason="the import check runs in bash")
@pytest.mark.parametrize("line", ["-e .[dev]", '-e ".[dev]"', "-e {uri}#egg=extproj[dev]", "-e {path}[dev]",
                                  "extproj[dev] @ {uri}"])
def test_a_folders_extras_install_what_they_add_as_pip_installs_them(tmp_path, wheelhouse, line):
    """User trial T10 (HIGH): `-e file:///proj#egg=proj[dev]` installed the project without its `dev` extra, and
    said nothing; `-e .[dev]` and `proj[dev] @ file:///proj` were refused as folders that do not exist. Each now
    installs the folder with its extras. The referee is pip's own dry run of the same file: what it would
    install, the extra's dependency among it, is what the environment holds (uv pip freeze)."""
    project = tmp_path / "extproj"
    local_project(project, "extproj")
    (project / "pyproject.toml").write_text(_pyproject("extproj", "0.1", ["tinyalpha>=1.0",
                                                                         'tinygamma==0.1; extra == "dev"']))
    requirements = project / "requirements-dev.txt"
    requirements.write_text(line.format(uri=project.resolve().as_uri(), path=project.resolve()) + "\n")
    pips = installs_as_pip_does(requirements, wheelhouse, tmp_path, {project: "extproj==0.1"})
    assert "tinygamma==0.1" in pips  # the extra's own dependency


@pytest.mark.skipif(sys.platform == "win32", reason="the import check runs in bash")
@pytest.mark.parametrize("line", [".", "./pathproj", "{path}", "{uri}", "./dist/tinygamma-0.1-py3-none-any.whl"])
def test_a_path_line_installs_that_folder_or_archive_as_pip_does(tmp_path, wheelhouse, line):
    """User trial T10: a line that is only a path (`.`, `./mypkg`, as pip installs it, not editable) was refused
    even on the computer that has it. It is read as `NAME @ file:///...` (the name from the folder's
    pyproject.toml, or the archive's file name), kept where the path exists. The referee is pip's dry run of the
    same file, run beside it: what it installs is what the environment holds (uv pip freeze)."""
    top = tmp_path / "work"
    project = top / "pathproj" if line != "." else top
    local_project(project, "pathproj")
    (project / "pyproject.toml").write_text(_pyproject("pathproj", "0.3", ["tinyalpha>=1.0"]))
    (top / "dist").mkdir()
    shutil.copy(wheelhouse / "tinygamma-0.1-py3-none-any.whl", top / "dist")
    requirements = top / "requirements.txt"
    requirements.write_text(line.format(path=project.resolve(), uri=project.resolve().as_uri()) + "\n")
    assert installs_as_pip_does(requirements, wheelhouse, tmp_path, {
        project: "pathproj==0.3", top / "dist" / "tinygamma-0.1-py3-none-any.whl": "tinygamma==0.1"})


def test_a_path_line_whose_package_name_cannot_be_read_says_how_to_write_it(tmp_path):
    """A setup.py project names itself only when built: the line is refused, saying the two forms that work."""
    (tmp_path / "oldpkg").mkdir()
    (tmp_path / "oldpkg" / "setup.py").write_text("from setuptools import setup\nsetup(name='oldpkg')\n")
    spec = specs.from_text("./oldpkg\n", "requirements.txt", tmp_path)
    [refused] = spec.refused
    assert "-e ./oldpkg (editable) or NAME @ file://" in refused.reason, refused.reason


def test_on_a_pip_cluster_an_editable_folder_that_is_no_project_says_pips_sentence(testbed, session, tmp_path):
    beta = testbed.clusters["beta"]  # no uv there: pip installs
    folder = f"{beta.home}/src/{unique('notes')}"
    beta.run_as_user(f"mkdir -p {shlex.quote(folder)}")
    venv = f"{folder}-referee"
    said = beta.run_as_user(f"module load GCC/12.3.0 Python/3.11.3 >/dev/null 2>&1; python3 -m venv {venv} && "
                            f"{venv}/bin/python -m pip install --dry-run --no-deps --no-index -e {shlex.quote(folder)}",
                            check=False)
    words = next(line for line in (said.stdout + said.stderr).splitlines() if line.startswith("ERROR: "))
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"tinyalpha==1.1\n-e {folder}\ntinymissing==1.0\n")
    with pytest.raises(CommandFailed) as info:
        import_environment(session, "beta", read_spec_file(requirements), name=unique("pipedit"))
    assert f"-e {folder} ({words[len('ERROR: '):]})" in info.value.message, info.value.message


@pytest.fixture(scope="module")
def checkout(testbed):
    """A git project on alpha (branch moved on since its first commit), as pip freeze names an editable checkout."""
    alpha = testbed.clusters["alpha"]
    project = make_project(alpha, "edvcs" + unique("x").split("-")[1], "1.0", git=True)
    add_commit(alpha, project, "2.0")
    return project


def test_an_editable_vcs_line_of_pip_freeze_installs_that_revision_and_says_how(testbed, session, checkout,
                                                                                 tmp_path):
    line = f"-e {checkout.vcs_url()}#egg={checkout.name}"
    freeze = tmp_path / "requirements.txt"
    freeze.write_text(f"tinyalpha==1.1\n{line}\n")
    imported = import_environment(session, "alpha", read_spec_file(freeze), name=unique("edvcs"))
    note = next(n for n in imported.notes if line in n)
    assert f"Installed as {checkout.name} @ {checkout.vcs_url()}" in note and "editable" in note
    alpha = testbed.clusters["alpha"]
    path = shlex.quote(imported.environment.path)
    held = alpha.run_as_user(f"module load python/3.11.5 uv >/dev/null 2>&1; uv pip freeze --python {path}/bin/python"
                             ).stdout.splitlines()  # the referee: uv's own record of what it installed
    assert f"{checkout.name} @ {checkout.vcs_url()}" in held, held  # the first commit, not the branch's head
    assert "tinyalpha==1.1" in held


# -- finding 7: files in the encodings pip reads -----------------------------------------------------------

PINS = "# written on Windows\r\ntinyalpha==1.1\r\ntinygamma==0.1 \\\r\n    ; python_version >= '3'\r\ntinybeta==1.0\r\n"
ENCODINGS = {"utf-8 with BOM (Notepad)": codecs.BOM_UTF8 + PINS.encode("utf-8"),
             "utf-16-le with BOM (PowerShell 5)": codecs.BOM_UTF16_LE + PINS.encode("utf-16-le"),
             "utf-16-be with BOM": codecs.BOM_UTF16_BE + PINS.encode("utf-16-be")}


def pips_reading(path: Path, wheelhouse: Path) -> set[str]:
    """name==version of what pip itself would install from the file (offline, changing nothing)."""
    report = path.parent / "pip-report.json"
    subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps",
                    "--no-index", "--find-links", str(wheelhouse), "--quiet", "--report", str(report), "-r", str(path)],
                   check=True, capture_output=True, timeout=300)
    return {f"{canon(item['metadata']['name'])}=={item['metadata']['version']}"
            for item in json.loads(report.read_text())["install"]}


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_a_requirements_file_in_each_encoding_pip_reads_plans_what_pip_installs(tmp_path, wheelhouse, encoding):
    requirements = tmp_path / "requirements.txt"
    requirements.write_bytes(ENCODINGS[encoding])
    result = planned(local_config(tmp_path), requirements)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["refused"] == []
    from packaging.requirements import Requirement
    ours = {f"{canon(r.name)}=={next(iter(r.specifier)).version}" for r in map(Requirement, plan["install"])}
    assert ours == pips_reading(requirements, wheelhouse)


@pytest.mark.parametrize("filename,text", [
    ("envdesk.yaml", "envdesk: 1\nname: bom\nkind: venv\npython: '3.11'\nrequirements: [tinyalpha>=1.0]\n"
                     "pins:\n- {name: tinyalpha, version: '1.1'}\n"),
    ("pylock.toml", 'lock-version = "1.0"\r\ncreated-by = "uv"\r\n\r\n[[packages]]\r\nname = "tinyalpha"\r\n'
                    'version = "1.1"\r\nwheels = [{ url = "https://files.example.org/tinyalpha-1.1-py3-none-any.whl",'
                    f' hashes = {{ sha256 = "{"ab" * 32}" }} }}]\r\n'),
])
def test_a_byte_order_mark_changes_nothing_in_other_formats(tmp_path, filename, text):
    config = local_config(tmp_path)
    plain, marked = tmp_path / "plain" / "proj" / filename, tmp_path / "marked" / "proj" / filename  # one name
    for path, data in ((plain, text.encode()), (marked, codecs.BOM_UTF8 + text.encode())):
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
    without, with_mark = planned(config, plain), planned(config, marked)
    assert with_mark.returncode == 0, with_mark.stderr
    assert json.loads(with_mark.stdout) == json.loads(without.stdout)


@pytest.mark.parametrize("data,said", [
    ("# Autor: Jürgen\ntinyalpha==1.1\n".encode("latin-1"), "is not UTF-8 text"),
    ("tinyalpha==1.1\r\ntinygamma==0.1\r\n".encode("utf-16-le"), "UTF-16 text without a byte-order mark"),
])
def test_a_file_in_an_encoding_pip_cannot_read_either_is_named_plainly(tmp_path, data, said):
    requirements = tmp_path / "requirements.txt"
    requirements.write_bytes(data)
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--no-deps", "-r",
                          str(requirements)], capture_output=True, text=True, timeout=300)
    assert pip.returncode != 0  # the referee cannot read it either
    result = planned(local_config(tmp_path), requirements)
    assert result.returncode == 1 and said in result.stderr and "Save it as UTF-8" in result.stderr
    assert "Traceback" not in result.stderr
    with pytest.raises(InvalidInput):
        read_spec_file(requirements)


# -- -r from another folder of the project, as docs/ and requirements/ files have it ----------------------

def project_tree(root: Path, packaged: bool = True) -> Path:
    """A project laid out as many on GitHub are: requirements.txt at the top, docs/requirements.txt for the
    documentation build and requirements/dev.txt for developers, each including the top file with `-r ../`
    (not `packaged`: a research repository without pyproject.toml, downloaded as a zip, so without .git)."""
    files = {"pyproject.toml": "[project]\nname = \"labtools\"\nversion = \"0.3\"\n",
             "requirements.txt": "# what labtools needs to run\ntinyalpha==1.1\n",
             "docs/requirements.txt": "# for the documentation build\n-r ../requirements.txt\n\ntinygamma==0.1\n",
             "requirements/test.txt": "tinybeta==1.0\n",
             "requirements/dev.txt": "-r ../requirements.txt\n-r test.txt\n"}
    for name, text in files.items():
        if packaged or name != "pyproject.toml":
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
    return root


@pytest.mark.parametrize("packaged", [True, False])
@pytest.mark.parametrize("imported", ["docs/requirements.txt", "requirements/dev.txt"])
def test_an_include_from_the_projects_parent_folder_plans_what_pip_installs(tmp_path, wheelhouse, imported,
                                                                            packaged):
    """`-r ../requirements.txt` was refused ('must be a file next to the imported one'), though pip reads it from
    the including file's folder and a project's docs/ or requirements/ file commonly has it. Inside the
    imported file's project it is read, and so it is from the folder just above where nothing marks a project
    (T10: a zip of a repository without pyproject.toml); the referee is pip's own dry run of the same file."""
    path = project_tree(tmp_path / "labtools", packaged) / imported
    result = planned(local_config(tmp_path), path)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["refused"] == [], plan["refused"]
    from packaging.requirements import Requirement
    ours = {f"{canon(r.name)}=={next(iter(r.specifier)).version}" for r in map(Requirement, plan["install"])}
    assert ours == pips_reading(path, wheelhouse)


@pytest.mark.parametrize("folder,line", [
    ("downloads/sub", "-r ../../notes.txt"),       # no project around the file: only the folder above it
    ("labtools/docs", "-r ../../notes.txt"),       # out of the project
    ("labtools/docs", "-r ../secret"),             # in the project, but not named as a requirements file
])
def test_an_include_out_of_the_project_is_refused_and_its_lines_go_nowhere(tmp_path, wheelhouse, folder, line):
    """What pip would read but EnvDesk does not: an included file's lines go to an installer, which asks an index
    for each (a stray file's words would reach PyPI's logs). The referee for the line that pip would install
    is pip; EnvDesk's plan holds none of it, refuses the line, and says why."""
    project_tree(tmp_path / "labtools")
    (tmp_path / "notes.txt").write_text("tinybeta==1.0\n")
    (tmp_path / "labtools" / "secret").write_text("tinybeta==1.0\n")
    path = tmp_path / folder / "requirements.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"tinygamma==0.1\n{line}\n")
    assert "tinybeta==1.0" in pips_reading(path, wheelhouse)  # pip itself reads the included file
    result = planned(local_config(tmp_path), path)
    plan = json.loads(result.stdout)
    assert plan["install"] == ["tinygamma==0.1"], plan
    [refused] = plan["refused"]
    assert refused["line"] == line and ("outside" in refused["reason"] or "requirements file" in refused["reason"])


# -- finding 12: nodefaults is conda's --override-channels, never a channel --------------------------------

def stand_in_commands(cluster, env_path: str) -> list[list[str]]:
    """The arguments conda was given, from the STAND-IN's record (conda-meta/history's '# cmd:' lines)."""
    history = cluster.run_as_user(f"cat {shlex.quote(env_path)}/conda-meta/history").stdout
    return [line[len("# cmd: "):].split() for line in history.splitlines() if line.startswith("# cmd: ")]


def test_nodefaults_in_an_environment_file_overrides_the_channels_and_is_no_channel(conda_stand_in,  # noqa: F811
                                                                                   session):
    text = ("name: nodef\nchannels:\n  - conda-forge\n  - nodefaults\ndependencies:\n  - python=3.11\n"
            "  - numpy=1.26.4\n")
    env = import_environment(session, "alpha", specs.from_text(text, "environment.yml"),
                             name=unique("nodef")).environment
    commands = stand_in_commands(conda_stand_in, env.path)
    assert commands
    for argv in commands:
        assert "nodefaults" not in argv, argv
        at = argv.index("--override-channels")
        assert argv[at:at + 3] == ["--override-channels", "-c", "conda-forge"], argv
        assert argv.count("-c") == 1


def test_nodefaults_alone_is_refused_plainly_before_conda_runs(conda_stand_in, session):  # noqa: F811
    text = "name: nodef\nchannels:\n  - nodefaults\ndependencies:\n  - python=3.11\n"
    name = unique("nodefonly")
    with pytest.raises(InvalidInput) as info:
        import_environment(session, "alpha", specs.from_text(text, "environment.yml"), name=name)
    said = f"{info.value.message} {info.value.hint}"  # the plan's block says both, as its dry run does (T21)
    assert "nodefaults" in said and "conda-forge" in said, said
    listed = conda_stand_in.run_as_user(f"ls -d ~/venvs/{name} ~/envs/{name} 2>/dev/null", check=False)
    assert listed.stdout == ""


# -- lines that ask for versions no installer can give together ----------------------------------------

CLASHES = {  # file text: whether uv (the referee) can install it
    "tinyalpha==1.0\nTinyAlpha==2.0\n": False,
    "tinyalpha==1.1\ntinyalpha<1.1\ntinybeta\n": False,
    "tinyalpha==1.0\ntinyalpha!=1.0\n": False,
    "tinyalpha==1.0\ntinyalpha==1.0.0\ntinyalpha>=1.0\n": True,
    "tinyalpha==1.*\ntinyalpha==1.1\n": True,
    "tinyalpha==1.0 ; python_version < '3.0'\ntinyalpha==2.0 ; python_version >= '3.0'\n": True,
    "tinyalpha==1.0+cu118\ntinyalpha==1.0\n": True,   # a local version meets the public pin (review R3)
    "tinyalpha==1.0+cu118\ntinyalpha==1.1\n": False,
}


@pytest.mark.parametrize("text", list(CLASHES))
def test_versions_that_cannot_all_be_installed_block_the_import_as_the_installer_would(tmp_path, wheelhouse, text):
    """A file pinning two versions of one package (or a pin its own range excludes) was planned as fine, built,
    and failed at the install with the resolver's words. The plan now stops it first, where uv does."""
    venv = tmp_path / "referee-venv"
    subprocess.run(["uv", "venv", "-q", str(venv)], check=True, capture_output=True, timeout=300)
    (tmp_path / "requirements.txt").write_text(text)
    wheelhouse = Path(shutil.copytree(wheelhouse, tmp_path / "wheels"))
    wheels.build_wheel(wheelhouse, wheels.WheelSpec("tinyalpha", "1.0+cu118"))
    said = subprocess.run(["uv", "pip", "install", "--dry-run", "--no-index", "--find-links", str(wheelhouse),
                           "--python", str(venv / "bin" / "python"), "-r", str(tmp_path / "requirements.txt")],
                          capture_output=True, text=True, timeout=300)
    assert (said.returncode == 0) == CLASHES[text], said.stderr
    config = local_config(tmp_path, ["--no-index", "--find-links", str(wheelhouse)])
    plan = planned(config, tmp_path / "requirements.txt")
    blocked = json.loads(plan.stdout)["blocked"]
    assert (plan.returncode == 0 and blocked is None) == CLASHES[text], plan.stdout + plan.stderr
    if not CLASHES[text]:
        assert blocked.startswith("The file asks for versions that cannot all be installed: tinyalpha==1")


def test_lines_without_hashes_in_a_file_with_hashes_are_refused_as_pip_refuses_them(tmp_path, wheelhouse):
    """A user trial's file hashed one line of two; pip refuses such a file (hashes are then required of every
    line), and EnvDesk installed the other line unchecked. Those lines are now refused, pip's own among them."""
    import hashlib
    import re

    def hashed(wheel: str) -> str:
        digest = hashlib.sha256((wheelhouse / wheel).read_bytes()).hexdigest()
        return f"{wheel.split('-')[0]}=={wheel.split('-')[1]} --hash=sha256:{digest}"

    venv = tmp_path / "referee-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    alpha, gamma = hashed("tinyalpha-1.1-py3-none-any.whl"), hashed("tinygamma-0.1-py3-none-any.whl")
    # Review R3: a line whose marker leaves this system out is skipped by pip (and uv) before its hashes are asked
    windows_only = 'tinygamma==0.1 ; sys_platform == "win32"'
    cases = ((f"{alpha}\ntinygamma==0.1\ntinyold==1.2\n", {"tinygamma", "tinyold"}), (f"{alpha}\n{gamma}\n", set()),
             (f"{alpha}\n{windows_only}\n", set()), (f'{alpha}\ntinyold==1.2 ; sys_platform == "linux"\n', {"tinyold"}))
    for number, (text, unhashed) in enumerate(cases):
        (tmp_path / "requirements.txt").write_text(text)
        said = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                               "--dry-run", "--isolated", "--no-index", "--find-links", str(wheelhouse), "-r",
                               str(tmp_path / "requirements.txt")], capture_output=True, text=True, timeout=300)
        named = set(re.findall(r"^\s+(tiny[a-z]+)[=<>]", said.stderr, re.MULTILINE))
        # pip refuses the whole file, naming the lines without hashes it reached before it stopped
        assert ("Hashes are required" in said.stderr) == bool(unhashed) and bool(named) == bool(unhashed)
        assert named <= unhashed, said.stderr
        plan = json.loads(planned(local_config(tmp_path / f"case{number}"), tmp_path / "requirements.txt").stdout)
        refused = {canon(r["line"]).split("=")[0].split(">")[0] for r in plan["refused"]}
        assert refused == unhashed, plan
        assert all("--require-hashes" in r["reason"] for r in plan["refused"])
        skipped = [a["line"] for a in plan["adapted"] if a["as"].startswith("skipped on")]
        assert skipped == ([windows_only] if windows_only in text else []), plan
        if windows_only in text:  # pip said so too, and the plan installs it nowhere
            assert "Ignoring tinygamma" in said.stdout + said.stderr
            assert not any("tinygamma" in line for line in plan["install"])
    shown = envdesk(local_config(tmp_path / "text"), "env", "import", "local", str(tmp_path / "requirements.txt"),
                    "--dry-run").stdout  # a plan to read: each hashed line with the count of its hashes
    assert "  tinyalpha==1.1 (checked against 1 file hash)" in shown and "--hash=" not in shown, shown


def test_a_variable_outside_a_url_is_refused_as_uv_leaves_it_unfilled(tmp_path, wheelhouse):
    """Review R3: with the variable set, pip installs `tinygamma==0.1 ; platform_machine == "${MACHINE}"` and uv
    skips it (it fills in variables only in URLs and paths): the same file would make different environments.
    The line is refused, saying to write the value; the referees are pip and uv themselves."""
    import platform
    venv = tmp_path / "referee-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    line = 'tinygamma==0.1 ; platform_machine == "${MACHINE}"'
    (tmp_path / "requirements.txt").write_text(line + "\n")
    env = {**os.environ, "MACHINE": platform.machine()}
    find = ["--no-index", "--find-links", str(wheelhouse), "-r", str(tmp_path / "requirements.txt")]
    pip = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                          "--dry-run", "--isolated", *find], capture_output=True, text=True, env=env, timeout=300)
    uv = subprocess.run(["uv", "pip", "install", "--dry-run", "--python", str(venv / "bin" / "python"), *find],
                        capture_output=True, text=True, env=env, timeout=300)
    assert "tinygamma-0.1" in pip.stdout and "tinygamma" not in uv.stdout + uv.stderr, (pip.stdout, uv.stderr)
    plan = json.loads(planned(local_config(tmp_path), tmp_path / "requirements.txt").stdout)
    assert [r["line"] for r in plan["refused"]] == [line] and "write the value" in plan["refused"][0]["reason"]


def test_a_lock_with_dependency_groups_installs_what_its_readers_select(tmp_path, wheelhouse):
    """User trial T7: a PEP 751 lock (pdm's shape) whose packages carry `'dev' in dependency_groups` was planned with
    that marker as written, and pip failed on it ('Invalid marker'). The referees are PyPA's own lock reader
    (Pylock.select, the default groups and no extras) and uv installing the lock; the environment's content is
    asked of uv pip freeze."""
    import hashlib

    import tomllib
    from packaging.pylock import Pylock

    def entry(name: str, version: str, marker: str | None) -> str:
        wheel = wheelhouse / f"{name}-{version}-py3-none-any.whl"
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        return ("[[packages]]\n" f'name = "{name}"\nversion = "{version}"\n' + (f'marker = "{marker}"\n' if marker
                                                                                else "")
                + f'wheels = [{{ url = "{wheel.as_uri()}", hashes = {{ sha256 = "{digest}" }} }}]\n\n')

    text = ('lock-version = "1.0"\ncreated-by = "pdm"\nrequires-python = ">=3.9"\n'
            'environments = ["sys_platform == \'linux\'"]\n'
            'extras = ["gpu"]\ndependency-groups = ["default", "dev"]\ndefault-groups = ["default"]\n\n'
            + entry("tinyalpha", "1.1", None)
            + entry("tinybeta", "1.0", "'default' in dependency_groups and sys_platform == 'linux'")
            + entry("tinygamma", "0.1", "'dev' in dependency_groups")
            + entry("tinyold", "1.0", "'gpu' in extras or python_version < '3.10'"))
    lock_file = tmp_path / "pylock.toml"
    lock_file.write_text(text)
    selected = {canon(str(package.name)) for package, _ in Pylock.from_dict(tomllib.loads(text)).select()}
    venv = tmp_path / "referee-venv"
    subprocess.run(["uv", "venv", "-q", str(venv)], check=True, capture_output=True, timeout=300)
    said = subprocess.run(["uv", "pip", "install", "--dry-run", "--no-index", "--python", str(venv / "bin" / "python"),
                           "-r", str(lock_file)], capture_output=True, text=True, timeout=300)
    by_uv = {canon(line.split()[1].split("==")[0]) for line in said.stderr.splitlines() if line.startswith(" + ")}
    assert selected == by_uv == {"tinyalpha", "tinybeta"}, (selected, said.stderr)
    config = local_config(tmp_path, ["--no-index", "--find-links", str(wheelhouse)])
    plan = json.loads(planned(config, lock_file).stdout)
    from packaging.requirements import Requirement
    installed_here = {canon(r.name) for r in map(Requirement, map(specs.without_hashes, plan["install"]))
                      if r.marker is None or r.marker.evaluate()}  # the rest the installer judges, as pip would
    assert installed_here == selected, plan
    assert not any("dependency_groups" in line or "extras" in line for line in plan["install"]), plan
    assert [a["line"] for a in plan["adapted"]] == ["tinygamma"] and not plan["refused"], plan
    made = envdesk(config, "env", "import", "local", str(lock_file), "--name", "locked", "--yes")
    assert made.returncode == 0, made.stderr
    frozen = subprocess.run(["uv", "pip", "freeze", "--python", str(tmp_path / "envs" / "locked" / "bin" / "python")],
                            capture_output=True, text=True, timeout=300).stdout
    assert {canon(line.split("==")[0]) for line in frozen.split()} - {"pip", "setuptools"} == selected, frozen


@pytest.mark.skipif(sys.platform == "win32", reason="the import check runs in bash")
def test_a_locked_folder_beside_the_lock_is_installed_as_uv_installs_it(tmp_path, wheelhouse):
    """User trial T7: a pylock.toml's `directory = {path = "localpkg", editable = true}` beside the lock was refused,
    where `-e ./localpkg` beside a requirements file is installed. uv installing the same lock is the referee:
    uv pip freeze lists the folder editable in both environments."""
    lock = tmp_path / "proj"
    local_project(lock / "localpkg", "lockedproj")
    (lock / "pylock.toml").write_text('lock-version = "1.0"\ncreated-by = "uv"\n\n[[packages]]\nname = "lockedproj"\n'
                                      'directory = { path = "localpkg", editable = true }\n')
    freeze = []
    venv = tmp_path / "referee-venv"
    subprocess.run(["uv", "venv", "-q", str(venv)], check=True, capture_output=True, timeout=300)
    subprocess.run(["uv", "pip", "install", "-q", "--no-index", "--python", str(venv / "bin" / "python"), "-r",
                    str(lock / "pylock.toml")], check=True, capture_output=True, timeout=300)
    config = local_config(tmp_path, ["--no-index", f"--find-links={wheelhouse}"])
    made = envdesk(config, "env", "import", "local", str(lock / "pylock.toml"), "--name", "locked")
    assert made.returncode == 0, made.stderr
    for python in (venv / "bin" / "python", tmp_path / "envs" / "locked" / "bin" / "python"):
        freeze.append([line for line in subprocess.run(["uv", "pip", "freeze", "--python", str(python)],
                                                       capture_output=True, text=True, check=True,
                                                       timeout=120).stdout.splitlines() if "lockedproj" in line
                       or "localpkg" in line])
    assert freeze[0] == freeze[1] == [f"-e {(lock / 'localpkg').resolve().as_uri()}"], freeze


def test_a_windows_folder_is_looked_for_where_it_is_installed(tmp_path):
    """Review R4: `-e file:///C:/Users/a/src` became the folder C:/Users/a/src, which the check of source folders
    then skipped (not a path it knew), so a Linux target was sent a relative path pip would fail on at build time.
    It is looked for on the target like any folder, and refused where it does not exist."""
    (tmp_path / "requirements.txt").write_text("-e file:///C:/Users/a/src\n")
    plan = json.loads(planned(local_config(tmp_path), tmp_path / "requirements.txt").stdout)
    assert [r["line"] for r in plan["refused"]] == ["-e C:/Users/a/src"], plan
    assert "does not exist on This computer" in plan["refused"][0]["reason"] and not plan["install"], plan


def test_a_marker_that_cannot_be_judged_there_leaves_its_unhashed_line_refused(tmp_path, wheelhouse):
    """Review R4: `platform_machine ~= 'x'` (a version comparison of a value that is no version) made packaging
    raise while the plan judged the markers of unhashed lines, and the command line said 'unexpected error'."""
    import hashlib
    digest = hashlib.sha256((wheelhouse / "tinyalpha-1.1-py3-none-any.whl").read_bytes()).hexdigest()
    (tmp_path / "requirements.txt").write_text(f"tinyalpha==1.1 --hash=sha256:{digest}\n"
                                               "tinygamma==0.1 ; platform_machine ~= 'x'\n")
    said = planned(local_config(tmp_path), tmp_path / "requirements.txt")
    assert said.returncode == 0 and "unexpected" not in said.stderr, said.stderr
    assert [r["line"] for r in json.loads(said.stdout)["refused"]] == ["tinygamma==0.1 ; platform_machine ~= 'x'"]
