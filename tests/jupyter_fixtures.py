"""Real Jupyter wheels for the test bed: ipykernel and jupyter_client with every dependency, from PyPI.

The test bed's own wheelhouse holds tiny made-up wheels only; Jupyter kernels need the real ones. They are
downloaded once into a cache folder of this machine's user (ENVDESK_TEST_CACHE, else ~/.cache/envdesk-tests)
for the test bed's Python (its version and this machine's platform), then copied for each test bed where
its users can read them. Without network the tests that need them are skipped, except under CI (CI=true),
where that is a failure.
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from testbed import tool_settings
from testbed.software import SYSTEM_PYTHON, bed_python_version

# Exact versions, so every run tests the same kernel; their dependencies come as pip resolves them.
REQUIREMENTS = ("ipykernel==7.4.0", "jupyter_client==8.10.0")
DONE = "complete"


def cache_root() -> Path:
    """Where downloads are kept between runs (the real user's home, whatever HOME a test set)."""
    if os.environ.get("ENVDESK_TEST_CACHE"):
        return Path(os.environ["ENVDESK_TEST_CACHE"])
    return Path(pwd.getpwuid(os.getuid()).pw_dir) / ".cache" / "envdesk-tests"


def _bed_python_version() -> str:
    """X.Y of the Python the test bed's modules provide (the system's python3)."""
    return ".".join(bed_python_version().split(".")[:2])


def download_wheels() -> Path:
    """The folder of downloaded wheels (filled on first use; several workers may race: one folder wins)."""
    version = _bed_python_version()
    folder = cache_root() / f"jupyter-cp{version.replace('.', '')}-{sys.platform}-{os.uname().machine}"
    if (folder / DONE).exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".download-", dir=folder.parent))
    abi = f"cp{version.replace('.', '')}"
    try:
        subprocess.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
                        "--only-binary=:all:", "--python-version", version, "--implementation", "cp",
                        "--abi", abi, "--abi", "abi3", "--abi", "none", "-d", str(work), *REQUIREMENTS],
                       check=True, capture_output=True, text=True, timeout=900, env=tool_settings.machine_environ())
        (work / DONE).write_text(" ".join(REQUIREMENTS) + "\n")
        try:
            work.rename(folder)
        except OSError:  # another worker was first (or a broken folder is in the way)
            if not (folder / DONE).exists():
                shutil.rmtree(folder, ignore_errors=True)
                work.rename(folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return folder


def _unavailable(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the Jupyter wheels could not be downloaded under CI: {why}", pytrace=False)
    pytest.skip(f"the Jupyter wheels could not be downloaded here: {why}")


@pytest.fixture(scope="session")
def jupyter_wheelhouse(testbed) -> Path:
    """A folder of real ipykernel and jupyter_client wheels (and their dependencies) that the test bed's users
    can read: give it to pip as `--find-links`."""
    try:
        downloaded = download_wheels()
    except subprocess.CalledProcessError as exc:
        _unavailable((exc.stderr or exc.stdout or str(exc)).strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError) as exc:
        _unavailable(str(exc))
    shared = testbed.base / "jupyter-wheels"
    if not shared.exists():
        shared.mkdir(mode=0o755)
        for wheel in downloaded.glob("*.whl"):
            shutil.copyfile(wheel, shared / wheel.name)
            (shared / wheel.name).chmod(0o644)
    return shared


@pytest.fixture(scope="session")
def jupyter_client_python(testbed, jupyter_wheelhouse) -> str:
    """The Python of a venv with jupyter_client, outside every environment under test, that the test bed's
    users can run: it plays the Jupyter server that starts kernels."""
    import uv
    venv = testbed.base / "jupyter-client"
    uv_bin = uv.find_uv_bin()
    subprocess.run([uv_bin, "venv", "--quiet", "--no-python-downloads", "--python", SYSTEM_PYTHON, str(venv)],
                   check=True, timeout=300)
    subprocess.run([uv_bin, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), "--no-index",
                    "--find-links", str(jupyter_wheelhouse), "jupyter_client"], check=True, timeout=600)
    return str(venv / "bin" / "python")
