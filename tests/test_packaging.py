"""What users install: the wheel and the sdist carry every file of the tree, and the suite runs on the wheel."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

import envdesk
import envdesk.backend

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_FOLDERS = ("backend", "gui", "resources")
INSTALLED_RUN = "ENVDESK_TESTS_ON_WHEEL"  # set by tests/run-on-wheel.sh


def tree_files() -> list[PurePosixPath]:
    """Every file of the shipped folders as git would see it (no caches, no build leftovers)."""
    found = []
    for folder in SHIPPED_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                found.append(PurePosixPath(path.relative_to(ROOT).as_posix()))
    return found


def package_dirs() -> dict[str, str]:
    """Import name -> source folder, as pyproject.toml maps them."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return config["tool"]["setuptools"]["package-dir"]


def installed_path(source: PurePosixPath) -> str:
    """Where a file of the tree lands in the wheel: the deepest mapped folder that holds it wins."""
    best = max(((name, folder) for name, folder in package_dirs().items()
                if source.is_relative_to(folder)), key=lambda item: len(item[1]))
    name, folder = best
    return "/".join([*name.split("."), *source.relative_to(folder).parts])


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A wheel and an sdist built by PyPA's `build` from a clean copy of the tree."""
    work = tmp_path_factory.mktemp("build")
    source = work / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in SHIPPED_FOLDERS:
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    result = subprocess.run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(work / "dist"),
                             str(source)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return work / "dist"


def test_every_file_of_the_tree_is_in_the_wheel(built):
    (wheel,) = built.glob("envdesk-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {installed_path(path) for path in tree_files()}
    assert any(name.startswith("envdesk/backend/operations/") for name in expected)
    assert "envdesk/__main__.py" in expected
    assert sorted(expected - names) == []
    stray = sorted(n for n in names if n.startswith("envdesk/") and n not in expected)
    assert stray == [], "the wheel carries files the tree does not have (or one file twice)"


def test_every_file_of_the_tree_is_in_the_sdist(built):
    (sdist,) = built.glob("envdesk-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {PurePosixPath(*PurePosixPath(n).parts[1:]) for n in archive.getnames()}
    assert sorted(set(tree_files()) - names) == []


def test_installed_path_maps_a_new_module_too():
    """The check above would see a new file: the mapping covers any depth, not a list."""
    assert installed_path(PurePosixPath("backend/x/y/z.py")) == "envdesk/backend/x/y/z.py"
    assert installed_path(PurePosixPath("backend/launcher/cli.py")) == "envdesk/cli.py"
    assert installed_path(PurePosixPath("resources/a/b.yaml")) == "envdesk/resources/a/b.yaml"


@pytest.mark.skipif(not os.environ.get(INSTALLED_RUN), reason="only when the suite runs on the installed wheel")
def test_the_suite_runs_on_the_installed_wheel():
    for module in (envdesk, envdesk.backend):
        location = Path(module.__file__).resolve()
        assert not any(ROOT / folder in location.parents for folder in SHIPPED_FOLDERS), \
            f"{module.__name__} comes from the source tree: {location}"
        assert "site-packages" in location.parts


def test_version_comes_from_the_package_metadata():
    from importlib import metadata
    assert envdesk.__version__ == metadata.version("envdesk")
    result = subprocess.run([sys.executable, "-m", "envdesk", "--version"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"envdesk {metadata.version('envdesk')}"


def test_the_cli_does_not_import_qt(tmp_path):
    """`envdesk` with a subcommand must work on a machine with no display and no Qt libraries."""
    code = ("import sys\nfrom envdesk.launch import main\n"
            "status = main(['cluster', 'list', '--json'])\n"
            "bad = [m for m in sys.modules if m.startswith(('PySide6', 'shiboken6'))]\n"
            "print(bad)\nsys.exit(status or (1 if bad else 0))\n")
    env = {**os.environ, "ENVDESK_CONFIG_DIR": str(tmp_path / "config")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_bare_config_dir_opens_the_app_not_a_usage_error():
    from envdesk.cli import parse_app_options
    assert parse_app_options(["--config-dir", "/x"]).config_dir == "/x"
    assert parse_app_options([]).config_dir is None
    assert parse_app_options(["--config-dir", "/x", "env", "list", "local"]) is None
    assert parse_app_options(["--version"]) is None
    assert parse_app_options(["--config-dir"]) is None
