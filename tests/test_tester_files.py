"""Files a tester imported from real projects (F6): each is read as the installers read it.

The referees are pip and uv: pip's dry run (`pip install --dry-run --report`, offline against the test wheels)
says what a file installs or that it cannot, uv's freeze says what an import made, and `uv pip install
--dry-run` says what uv accepts. Nothing here compares EnvDesk with itself.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from envdesk_fixtures import canon, envdesk_command
from testbed import wheels

# tinydelta's extra `fast` installs tinygamma, as requests[socks] installs PySocks
TINYDELTA = wheels.WheelSpec("tinydelta", "1.0", ('tinygamma ; extra == "fast"',), extras=("fast",))


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    wheels.build_all(folder)
    wheels.build_wheel(folder, TINYDELTA)
    return folder


def local_config(folder: Path, wheelhouse: Path) -> Path:
    """A config folder whose only target is This computer, installing offline from `wheelhouse`."""
    config = folder / "config"
    config.mkdir(parents=True)
    (config / "clusters.yaml").write_text(f"clusters: []\nlocal:\n  env_roots: [{json.dumps(str(folder / 'envs'))}]\n"
                                          f"  pip_args: [--no-index, --find-links, {json.dumps(str(wheelhouse))}]\n")
    return config


def envdesk(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*envdesk_command(), "--config-dir", str(config), *args], capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)


def pip_dry_run(wheelhouse: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--ignore-installed",
                           "--quiet", "--report", "-", "--no-index", "--find-links", str(wheelhouse), *args],
                          capture_output=True, text=True, timeout=300, cwd=cwd)


def pips_reading(wheelhouse: Path, *args: str) -> set[str]:
    """name==version of what pip itself would install."""
    done = pip_dry_run(wheelhouse, *args)
    assert done.returncode == 0, done.stderr
    return {f"{canon(item['metadata']['name'])}=={item['metadata']['version']}"
            for item in json.loads(done.stdout)["install"]}


def frozen(root: Path, name: str) -> set[str]:
    """The tiny* packages uv's freeze lists in the environment `name`."""
    out = subprocess.run(["uv", "pip", "freeze", "--python", str(root / name / "bin" / "python")],
                         capture_output=True, text=True, check=True).stdout
    return {canon(line.split("==")[0]) + "==" + line.split("==")[1] for line in out.split() if line.startswith("tiny")}


def plan_of(config: Path, path: Path) -> dict:
    done = envdesk(config, "env", "import", "local", str(path), "--dry-run", "--json")
    return json.loads(done.stdout)


# -- 1: a second line for a pinned package ------------------------------------------------------------------

@pytest.mark.parametrize("files", [
    {"requirements.txt": "tinydelta==1.0\ntinydelta[fast]\n"},
    {"base.txt": "tinydelta==1.0\n", "requirements.txt": "-r base.txt\ntinydelta[fast]\n"},  # base.txt, dev.txt
])
def test_a_pins_extras_on_another_line_are_installed_as_pip_installs_them(tmp_path, wheelhouse, files):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    requirements = tmp_path / "requirements.txt"
    expected = pips_reading(wheelhouse, "-r", str(requirements))
    assert expected == {"tinydelta==1.0", "tinygamma==0.1"}
    config = local_config(tmp_path, wheelhouse)
    assert "tinydelta[fast]" in plan_of(config, requirements)["install"]
    made = envdesk(config, "env", "import", "local", str(requirements), "--name", "extras")
    assert made.returncode == 0, made.stderr
    assert frozen(tmp_path / "envs", "extras") == expected


def test_a_line_that_excludes_the_pin_blocks_the_plan_as_pip_refuses_the_file(tmp_path, wheelhouse):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text('tinyalpha==1.0\ntinyalpha!=1.0 ; python_version >= "3"\n')
    pip = pip_dry_run(wheelhouse, "-r", str(requirements))
    assert pip.returncode != 0 and "ResolutionImpossible" in pip.stderr
    config = local_config(tmp_path, wheelhouse)
    plan = plan_of(config, requirements)
    assert plan["blocked"] and 'tinyalpha!=1.0 ; python_version >= "3"' in plan["blocked"], plan
    made = envdesk(config, "env", "import", "local", str(requirements), "--name", "clash", "--yes")
    assert made.returncode != 0 and not (tmp_path / "envs" / "clash").exists()


def test_a_range_beside_the_pin_is_in_the_plan_and_installed_as_pip_installs_it(tmp_path, wheelhouse):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("tinyalpha==1.0\ntinyalpha>=1.0\n")
    expected = pips_reading(wheelhouse, "-r", str(requirements))
    config = local_config(tmp_path, wheelhouse)
    plan = plan_of(config, requirements)
    assert {"tinyalpha==1.0", "tinyalpha>=1.0"} <= set(plan["install"]), plan
    made = envdesk(config, "env", "import", "local", str(requirements), "--name", "ranged")
    assert made.returncode == 0, made.stderr
    assert frozen(tmp_path / "envs", "ranged") == expected == {"tinyalpha==1.0"}


# -- 2: a pip-compile file with hashes as constraints -------------------------------------------------------

def uvs_dry_run(tmp_path: Path, wheelhouse: Path, *args: str, cwd: Path | None = None) -> set[str]:
    """name==version of what `uv pip install --dry-run` would install into a new venv (run in `cwd`)."""
    venv = tmp_path / "referee"
    subprocess.run(["uv", "venv", "-q", str(venv)], check=True)
    done = subprocess.run(["uv", "pip", "install", "--dry-run", "--python", str(venv / "bin" / "python"),
                           "--no-index", "--find-links", str(wheelhouse), *args], capture_output=True, text=True,
                          cwd=cwd)
    assert done.returncode == 0, done.stderr
    return {line.split()[1] for line in done.stderr.splitlines() if line.startswith(" + ")}


def test_a_hashed_constraints_file_narrows_the_versions_as_uv_applies_it(tmp_path, wheelhouse):
    (tmp_path / "constraints.in").write_text("tinyalpha<2\n")
    subprocess.run(["uv", "pip", "compile", "-q", "--generate-hashes", "--no-index", "--find-links", str(wheelhouse),
                    str(tmp_path / "constraints.in"), "-o", str(tmp_path / "constraints.txt")], check=True)
    assert "--hash=sha256:" in (tmp_path / "constraints.txt").read_text()
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("tinybeta\n-c constraints.txt\n")
    expected = uvs_dry_run(tmp_path, wheelhouse, "-r", str(requirements))
    assert expected == {"tinyalpha==1.1", "tinybeta==1.0"}
    pip = pip_dry_run(wheelhouse, "-r", str(requirements))  # pip checks no constraint's hashes: it asks for the
    assert pip.returncode != 0 and "--require-hashes" in pip.stderr  # requirement lines' own (pypa/pip#12956)
    config = local_config(tmp_path, wheelhouse)
    plan = plan_of(config, requirements)
    assert plan["constraints"] == ["tinyalpha==1.1"] and not plan["refused"], plan
    assert any("--hash" in item["line"] and "pip checks the hashes of the requirement lines" in item["reason"]
               for item in plan["adapted"]), plan["adapted"]
    made = envdesk(config, "env", "import", "local", str(requirements), "--name", "hashedc")
    assert made.returncode == 0, made.stderr
    assert frozen(tmp_path / "envs", "hashedc") == expected


# -- 3: `uv export`'s editable folders beside hashed pins ---------------------------------------------------

def uv_project(folder: Path, name: str, dependencies: list[str], sources: str = "") -> Path:
    """A source project uv builds offline (the test bed's own build backend)."""
    from testbed.projects import TINYBACKEND, _init_py, _pyproject
    (folder / name).mkdir(parents=True)
    (folder / "pyproject.toml").write_text(_pyproject(name, "0.1", dependencies) + sources)
    (folder / "tinybackend.py").write_text(TINYBACKEND)
    (folder / name / "__init__.py").write_text(_init_py(name, "0.1"))
    return folder


HELPER_SOURCE = '\n[tool.uv.sources]\nhelper = { path = "libs/helper", editable = true }\n'


def hashed_pin(tmp_path: Path, wheelhouse: Path, pin: str) -> str:
    """`pin` with its file's hash, as `uv pip compile --generate-hashes` writes it."""
    (tmp_path / "pin.in").write_text(pin + "\n")
    done = subprocess.run(["uv", "pip", "compile", "-q", "--generate-hashes", "--no-header", "--no-index",
                           "--find-links", str(wheelhouse), str(tmp_path / "pin.in")], capture_output=True, text=True,
                          check=True).stdout
    return "".join(line + "\n" for line in done.splitlines() if not line.strip().startswith("#"))


def test_uv_exports_editable_folders_beside_hashed_pins_install_as_uv_installs_them(tmp_path, wheelhouse):
    root = uv_project(tmp_path / "app", "app", ["helper", "tinygamma"], HELPER_SOURCE)
    uv_project(root / "libs" / "helper", "helper", [])
    subprocess.run(["uv", "lock", "-q", "--no-index", "--find-links", str(wheelhouse)], cwd=root, check=True)
    exported = subprocess.run(["uv", "export", "-q", "--format", "requirements-txt", "--no-index", "--find-links",
                               str(wheelhouse)], cwd=root, capture_output=True, text=True, check=True).stdout
    assert "-e .\n-e ./libs/helper\n" in exported and "tinygamma==0.1\n" in exported
    # uv lists no hash for a wheel of a local folder of wheels: the exported pin as it is for an index's file
    requirements = root / "requirements.txt"
    requirements.write_text(exported.replace("tinygamma==0.1\n", hashed_pin(tmp_path, wheelhouse, "tinygamma==0.1")))
    assert "--hash=sha256:" in requirements.read_text()
    expected = uvs_dry_run(tmp_path, wheelhouse, "-r", str(requirements), cwd=root)  # at the project's root
    assert {line.split(" @ ")[0] for line in expected} == {"app", "helper", "tinygamma==0.1"}
    config = local_config(tmp_path, wheelhouse)
    plan = plan_of(config, requirements)
    assert not plan["refused"], plan["refused"]
    listed = [item["line"] for item in plan["adapted"]] + [item["line"] for item in plan["refused"]]
    assert len(listed) == len(set(listed)) and {"-e .", "-e ./libs/helper"} <= set(listed), listed
    made = envdesk(config, "env", "import", "local", str(requirements), "--name", "exported")
    assert made.returncode == 0, made.stderr
    out = subprocess.run(["uv", "pip", "freeze", "--python", str(tmp_path / "envs" / "exported" / "bin" / "python")],
                         capture_output=True, text=True, check=True).stdout
    editables = {"-e " + root.as_uri(), "-e " + (root / "libs" / "helper").as_uri()}
    assert editables | {"tinygamma==0.1"} <= set(out.split("\n")), out


# -- 4: rye's `-e file:.` ----------------------------------------------------------------------------------

def test_a_relative_file_url_editable_is_the_folder_pip_installs(tmp_path, wheelhouse):
    root = uv_project(tmp_path / "ryeapp", "ryeapp", ["tinygamma"])
    lock = root / "requirements.lock"
    lock.write_text("# generated by rye\n-e file:.\ntinygamma==0.1\n")
    pip = pip_dry_run(wheelhouse, "-r", str(lock), cwd=root)  # run where the file is, as rye's users do
    assert pip.returncode == 0, pip.stderr
    assert {item["metadata"]["name"] for item in json.loads(pip.stdout)["install"]} == {"ryeapp", "tinygamma"}
    config = local_config(tmp_path, wheelhouse)
    assert not plan_of(config, lock)["refused"]
    made = envdesk(config, "env", "import", "local", str(lock), "--name", "rye")
    assert made.returncode == 0, made.stderr
    out = subprocess.run(["uv", "pip", "freeze", "--python", str(tmp_path / "envs" / "rye" / "bin" / "python")],
                         capture_output=True, text=True, check=True).stdout
    assert {"-e " + root.as_uri(), "tinygamma==0.1"} <= set(out.split("\n")), out


# -- 5: conda-build folders in pip freeze lines from Windows, macOS and build machines ----------------------

# the shapes of public `pip freeze` outputs of conda environments, each with a test wheel's name
CONDA_BUILT = """\
tinyalpha @ file:///D:/bld/tinyalpha_1610324703282/work
tinybeta @ file:///C:/b/abs_3d36mno480/croot/tinybeta-split_1714483155106/work
tinygamma @ file:///Users/runner/miniforge3/conda-bld/tinygamma_1714483155106/work
tinyold @ file:///home/task_176496125431831/conda-bld/tinyold_1764961387175/work
tinydelta @ file:///private/var/folders/sy/f16zz/T/abs_83242e7e/croots/recipe/tinydelta_1655968827803/work/tinydelta
"""


def test_conda_build_folders_of_any_computer_are_installed_by_name(tmp_path, wheelhouse):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(CONDA_BUILT)
    config = local_config(tmp_path, wheelhouse)
    plan = plan_of(config, requirements)
    assert not plan["refused"], plan["refused"]
    names = [line.split(" @ ")[0] for line in CONDA_BUILT.splitlines()]
    assert sorted(item["as"] for item in plan["adapted"]) == sorted(names), plan["adapted"]
    made = envdesk(config, "env", "import", "local", str(requirements), "--name", "condabuilt")
    assert made.returncode == 0, made.stderr
    assert frozen(tmp_path / "envs", "condabuilt") == pips_reading(wheelhouse, *names)


# -- 6: a uv project's own folders ([tool.uv.sources] path = ...) -------------------------------------------

def test_a_uv_projects_local_folder_source_is_installed_as_uv_sync_installs_it(tmp_path, wheelhouse):
    root = uv_project(tmp_path / "app", "app", ["helper", "tinygamma"], HELPER_SOURCE)
    uv_project(root / "libs" / "helper", "helper", [])
    subprocess.run(["uv", "lock", "-q", "--no-index", "--find-links", str(wheelhouse)], cwd=root, check=True)
    assert 'source = { editable = "libs/helper" }' in (root / "uv.lock").read_text()
    synced = tmp_path / "synced"
    subprocess.run(["uv", "sync", "-q", "--no-index", "--find-links", str(wheelhouse)], cwd=root, check=True,
                   env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(synced)})
    uvs = subprocess.run(["uv", "pip", "freeze", "--python", str(synced / "bin" / "python")], capture_output=True,
                         text=True, check=True).stdout.split("\n")
    helper = "-e " + (root / "libs" / "helper").as_uri()
    assert helper in uvs and "tinygamma==0.1" in uvs
    config = local_config(tmp_path, wheelhouse)
    assert not plan_of(config, root)["refused"]
    made = envdesk(config, "env", "import", "local", str(root), "--name", "fromlock")
    assert made.returncode == 0, made.stderr
    ours = subprocess.run(["uv", "pip", "freeze", "--python", str(tmp_path / "envs" / "fromlock" / "bin" / "python")],
                          capture_output=True, text=True, check=True).stdout.split("\n")
    assert {helper, "tinygamma==0.1"} <= set(ours), ours  # the project itself: installed by hand (the plan says)


# -- 7: the hint after a failed import offers --top-level only where newer versions can help ---------------

def test_failures_no_newer_version_fixes_get_their_own_advice_not_top_level(tmp_path, wheelhouse):
    store = tmp_path / "store"
    shutil.copytree(wheelhouse, store)
    windows = wheels.build_wheel(tmp_path, wheels.WheelSpec("tinywin", "306"))  # pywin32's case: Windows wheels only
    windows.rename(store / "tinywin-306-py3-none-win_amd64.whl")
    (tmp_path / "notaproject").mkdir()
    lines = ["tinywin==306", "-e ./notaproject", f"tinyx @ git+{(tmp_path / 'none.git').as_uri()}"]
    for line in lines:  # pip cannot install any of them, whatever the versions
        (tmp_path / "one.txt").write_text(line + "\n")
        assert pip_dry_run(store, "-r", str(tmp_path / "one.txt"), cwd=tmp_path).returncode != 0, line
    requirements = tmp_path / "requirements.txt"
    config = local_config(tmp_path, store)
    requirements.write_text("\n".join(lines) + "\n")
    failed = envdesk(config, "env", "import", "local", str(requirements), "--name", "nofix", "--yes")
    assert failed.returncode != 0 and "--top-level" not in failed.stderr, failed.stderr
    assert 'tinywin==306 ; sys_platform == "win32"' in failed.stderr
    assert "not a Python project" in failed.stderr and "git could not fetch it" in failed.stderr
    requirements.write_text("\n".join([*lines, "tinyalpha==1.5"]) + "\n")  # a version the store lacks: newer helps
    failed = envdesk(config, "env", "import", "local", str(requirements), "--name", "somefix", "--yes")
    assert "For the others: install only the top-level requirements instead (--top-level)" in failed.stderr


# -- 8: a Poetry-only pyproject.toml -----------------------------------------------------------------------

POETRY_PYPROJECT = """\
[tool.poetry]
name = "po"
version = "0.1.0"
description = ""
authors = []

[tool.poetry.dependencies]
python = "^3.10"
tinyalpha = "^1.0"

[build-system]
requires = ["poetry-core"]
build-backend = "poetry.core.masonry.api"
"""


def test_a_poetry_only_project_is_pointed_to_poetry_not_uv_lock(tmp_path, wheelhouse):
    folder = tmp_path / "po"
    folder.mkdir()
    (folder / "pyproject.toml").write_text(POETRY_PYPROJECT)
    config = local_config(tmp_path, wheelhouse)
    for _ in ("without uv.lock", "after uv lock"):
        refused = envdesk(config, "env", "import", "local", str(folder), "--name", "po")
        assert refused.returncode != 0 and "poetry export" in refused.stderr and "poetry lock" in refused.stderr
        assert "uv lock' in the project" not in refused.stderr, refused.stderr
        subprocess.run(["uv", "lock", "-q", "--no-index", "--find-links", str(wheelhouse)], cwd=folder, check=True)
        assert "tinyalpha" not in (folder / "uv.lock").read_text()  # uv reads none of Poetry's dependencies
