"""Deleting an environment removes the environment and nothing else: real folders, the real `envdesk` command.

A project folder made into a venv in place (``python -m venv .`` inside ~/projects/analysis) is found as an
environment; deleting it must not take the sources, data or .git with it. The agent refuses, names what is
there, and leaves every file as it was. Links inside an environment are removed as links: whatever they
point to stays.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from agent_fixtures import add_dist, conda_record, make_conda_prefix, uv_bin
from envdesk.backend.errors import InvalidInput
from envdesk.backend.operations.delete import delete_environment
from envdesk_fixtures import envdesk_command, unique

ENVDESK = envdesk_command()


def envdesk(*args: str, config_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*ENVDESK, "--config-dir", str(config_dir), *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=180)


def listing(top: Path) -> dict[str, str]:
    """Every entry under top (links not followed): its kind and content hash or link target."""
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(top):
        for name in dirs + files:
            path = Path(folder, name)
            rel = str(path.relative_to(top))
            if path.is_symlink():
                found[rel] = "link -> " + os.readlink(path)
            elif path.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = "file " + hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture
def projects(tmp_path):
    """A root ~/projects known to EnvDesk as a place with environments, and its config folder."""
    root = tmp_path / "projects"
    root.mkdir()
    config = tmp_path / "config"
    config.mkdir()
    (config / "clusters.yaml").write_text(f"local:\n  env_roots: [{json.dumps(str(root))}]\n")
    return config, root


def venv_in_place(folder: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "."], cwd=folder, check=True,
                   capture_output=True)


def make_project(folder: Path) -> None:
    """A user's project: sources, data, a README and a git repository (made by git when it is there)."""
    (folder / "data").mkdir(parents=True)
    (folder / "analysis.py").write_text("print('the analysis')\n")
    (folder / "README.md").write_text("# Analysis\n")
    (folder / "data" / "samples.csv").write_text("a,b\n1,2\n")
    if shutil.which("git"):
        subprocess.run(["git", "init", "-q", "."], cwd=folder, check=True, capture_output=True)
    else:
        (folder / ".git").mkdir()
        (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")


def assert_deleted(config: Path, root: Path, name: str) -> None:
    result = envdesk("env", "delete", "local", name, "--yes", config_dir=config)
    assert result.returncode == 0, result.stderr
    assert not os.path.lexists(root / name)
    assert not os.path.lexists(root / (name + ".envdesk-lock"))


def test_a_project_made_into_a_venv_in_place_is_refused_and_every_file_stays(projects):
    config, root = projects
    project = root / "analysis"
    make_project(project)
    venv_in_place(project)
    (project / "bin" / "run.sh").write_text("#!/bin/sh\npython analysis.py\n")   # the project's own script
    listed = json.loads(envdesk("env", "list", "local", "--json", config_dir=config).stdout)
    assert [e["name"] for e in listed] == ["analysis"]     # it really is found as an environment
    before = listing(project)

    result = envdesk("env", "delete", "local", "analysis", "--yes", config_dir=config)

    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "holds files that are not part of the environment" in message
    for shown in ("analysis.py", "data/", ".git/", "README.md", "bin/run.sh"):
        assert shown in message
    assert "Nothing was deleted" in message and "Traceback" not in result.stderr
    assert listing(project) == before
    assert not os.path.lexists(root / "analysis.envdesk-lock")


@pytest.mark.parametrize("foreign", ["notes.txt", "src/", ".gitignore", "lib/helpers.py", "include/mine.h",
                                     "share/results/", "nested/"])
def test_any_one_thing_that_is_not_the_environment_is_enough_to_refuse(projects, foreign):
    config, root = projects
    env = root / "one"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    if foreign == "nested/":                       # another project (with its own venv) inside
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env / "nested")], check=True)
    elif foreign.endswith("/"):
        (env / foreign / "kept.txt").parent.mkdir(parents=True)
        (env / foreign / "kept.txt").write_text("mine\n")
    elif foreign == ".gitignore":
        (env / foreign).write_text("*.pyc\nbuild/\n")   # a project's, not the '*' venv and uv write
    else:
        (env / foreign).write_text("mine\n")
    before = listing(env)
    result = envdesk("env", "delete", "local", "one", "--yes", config_dir=config)
    message = " ".join(result.stderr.split())
    assert result.returncode == 1
    assert foreign.rstrip("/") in message and "Nothing was deleted" in message
    assert listing(env) == before


def test_a_plain_venv_is_deleted(projects):
    config, root = projects
    subprocess.run([sys.executable, "-m", "venv", str(root / "plain")], check=True, capture_output=True)
    assert any(p.name.startswith("pip") for p in (root / "plain" / "bin").iterdir())   # pip's own scripts
    assert_deleted(config, root, "plain")


def test_links_inside_are_removed_never_what_they_point_to(projects, tmp_path):
    config, root = projects
    outside = tmp_path / "outside"
    (outside / "inner").mkdir(parents=True)
    (outside / "canary.txt").write_text("still here\n")
    (outside / "inner" / "canary.txt").write_text("still here too\n")
    env = root / "linked"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site = next(env.glob("lib/python*/site-packages"))
    (site / "outside-dir").symlink_to(outside, target_is_directory=True)
    (site / "outside-file").symlink_to(outside / "canary.txt")
    # a package that recorded share/jupyter, here a link to the outside folder: removed as a link
    add_dist(str(site), "kernelpkg", "1.0")
    record = next(site.glob("kernelpkg-1.0.dist-info")) / "RECORD"
    record.write_text("../../../share/jupyter/kernels/k/kernel.json,,\n")
    (env / "share").mkdir()
    (env / "share" / "jupyter").symlink_to(outside, target_is_directory=True)
    before = listing(outside)

    assert_deleted(config, root, "linked")

    assert listing(outside) == before
    assert (outside / "canary.txt").read_text() == "still here\n"


def test_what_installed_packages_recorded_is_part_of_the_environment(projects):
    config, root = projects
    env = root / "withpkg"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site = next(env.glob("lib/python*/site-packages"))
    info = Path(add_dist(str(site), "tool", "1.0"))
    (info / "RECORD").write_text("../../../bin/tool,,\n../../../share/jupyter/kernels/tool/kernel.json,,\n"
                                 "../../../etc/jupyter/tool.json,,\n")
    (env / "bin" / "tool").write_text("#!/bin/sh\n")
    (env / "share" / "jupyter" / "kernels" / "tool").mkdir(parents=True)
    (env / "share" / "jupyter" / "kernels" / "tool" / "kernel.json").write_text("{}")
    (env / "etc" / "jupyter").mkdir(parents=True)
    (env / "etc" / "jupyter" / "tool.json").write_text("{}")
    (env / ".envdesk").mkdir()
    (env / ".envdesk" / "meta.json").write_text("{}")
    assert_deleted(config, root, "withpkg")


@pytest.mark.parametrize("tool", ["uv", "virtualenv"])
def test_uv_and_virtualenv_environments_are_recognised_and_deleted(projects, tool):
    config, root = projects
    env = root / tool
    if tool == "uv":
        subprocess.run([uv_bin(), "venv", "-q", "--python", sys.executable, str(env)], check=True,
                       capture_output=True)
        expected = {".gitignore", "CACHEDIR.TAG", "pyvenv.cfg", "bin", "lib"}
    else:
        subprocess.run([sys.executable, "-m", "virtualenv", "-q", "--no-periodic-update", str(env)], check=True,
                       capture_output=True)
        expected = {".gitignore", "CACHEDIR.TAG", "pyvenv.cfg", "bin", "lib"}
        assert (env / "bin" / "pip").exists()        # seeded: pip's scripts, recorded in its RECORD
    assert expected <= {p.name for p in env.iterdir()}
    assert_deleted(config, root, tool)


def test_a_conda_prefix_is_deleted_with_what_its_records_list_but_not_with_anything_else(projects):
    config, root = projects
    fonts = conda_record("font-ttf-dejavu", "2.37")
    fonts["files"] = ["fonts/DejaVuSans.ttf"]
    prefix = Path(make_conda_prefix(root / "condaenv", records=[fonts], python="3.11.5"))
    (prefix / "fonts").mkdir()
    (prefix / "fonts" / "DejaVuSans.ttf").write_text("font")
    (prefix / "ssl").mkdir()
    (prefix / "analysis.ipynb").write_text("{}")
    before = listing(prefix)
    result = envdesk("env", "delete", "local", "condaenv", "--yes", config_dir=config)
    assert result.returncode == 1 and "analysis.ipynb" in result.stderr and "fonts" not in result.stderr
    assert listing(prefix) == before
    (prefix / "analysis.ipynb").unlink()
    assert_deleted(config, root, "condaenv")


def test_on_a_cluster_a_venv_made_in_a_project_folder_is_refused(testbed, session):
    alpha = testbed.clusters["alpha"]
    name = unique("proj")
    folder = f"{alpha.home}/venvs/{name}"
    alpha.run_as_user(f"mkdir -p {folder}/data && cd {folder} && echo 'print(1)' > analysis.py && "
                      f"echo 1,2 > data/samples.csv && mkdir .git && python3 -m venv --without-pip .")
    show = f"cd {folder} && find . | LC_ALL=C sort && cat analysis.py data/samples.csv"
    before = alpha.run_as_user(show).stdout
    with pytest.raises(InvalidInput) as info:
        delete_environment(session, "alpha", name)
    assert "analysis.py" in info.value.message and "data/" in info.value.message
    assert ".git/" in info.value.message and "Nothing was deleted" in info.value.message
    assert alpha.run_as_user(show).stdout == before
    alpha.run_as_user(f"cd {folder} && rm -rf analysis.py data .git")
    assert delete_environment(session, "alpha", name).path == folder
    assert alpha.run_as_user(f"test -e {folder}", check=False).returncode != 0


def test_what_is_in_the_jupyter_kernel_folder_never_stops_a_delete(projects, tmp_path, monkeypatch):
    """R9: the kernels a delete removes are looked for in the user's Jupyter folder, where other tools write
    too; a kernel.json nested past what the parser takes, naming a path with a NUL, too large, not UTF-8 or a
    link to a device made every delete fail. They are passed over, left as they are (the file system is the
    referee), and only the kernel EnvDesk made for the environment goes with it."""
    config, root = projects
    data = tmp_path / "data"
    kernels = data / "jupyter" / "kernels"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    monkeypatch.delenv("JUPYTER_DATA_DIR", raising=False)
    env = root / "doomed"
    env.mkdir()
    venv_in_place(env)

    def kernel(name: str, text: bytes) -> Path:
        (kernels / name).mkdir(parents=True)
        (kernels / name / "kernel.json").write_bytes(text)
        return kernels / name

    ours = kernel("envdesk-doomed", json.dumps({"argv": [str(env / "bin" / "python"), "-m", "ipykernel_launcher"],
                                                "display_name": "doomed (EnvDesk)", "metadata": {"envdesk": {
                                                    "env": str(env), "python": str(env / "bin" / "python")}}}
                                               ).encode())
    kernel("deep", b"[" * 200_000)
    kernel("nul", json.dumps({"metadata": {"envdesk": {"env": "/a\u0000b"}}}).encode())
    kernel("huge", b'{"a": "' + b"x" * (2 * 1024 * 1024) + b'"}')
    kernel("latin", b'{"display_name": "Fran\xe7ois"}')
    (kernels / "zero").mkdir()
    os.symlink("/dev/zero", kernels / "zero" / "kernel.json")
    others = {path: kind for path, kind in listing(kernels).items() if not path.startswith("envdesk-doomed")}

    result = envdesk("env", "delete", "local", "doomed", "--yes", config_dir=config)
    assert result.returncode == 0, result.stderr
    assert not os.path.lexists(env) and not os.path.lexists(ours)
    assert listing(kernels) == others
    assert "note: Its Jupyter kernel envdesk-doomed was removed too" in result.stderr


def test_the_question_before_a_delete_says_at_least_where_the_count_stopped(tmp_path):
    """R8/T10 leftover: a count stopped at its time limit (a large environment on a slow shared file system) was
    given as the folder's size. The referee: find, which lists every entry under the folder."""
    from envdesk.backend.operations.delete import measure_environment
    from envdesk.backend.paths import AppPaths
    from envdesk_fixtures import session_for, this_computer_with_one_venv
    config, root = this_computer_with_one_venv(tmp_path)
    session = session_for(AppPaths(config))
    path = str(root / "plain")
    entries = subprocess.run(["find", path, "-mindepth", "1"], check=True, capture_output=True, text=True).stdout
    whole = measure_environment(session, "local", path)
    assert whole.files == len(entries.splitlines())
    assert whole.amount().endswith(f" in {whole.files:,} files and folders")
    assert not whole.amount().startswith("at least")
    stopped = measure_environment(session, "local", path, seconds=0)
    assert stopped.files < len(entries.splitlines())
    assert stopped.amount().startswith("at least ") and "not all of it could be counted" in stopped.amount()
