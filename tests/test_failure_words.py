"""What a failed install is called in plain words, from what uv really prints (uv is the referee: the tests
run it and explain its own output; a user trial saw "A package could not be found" with the package unnamed)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from envdesk.backend.operations.common import explain
from envdesk.backend.runner import CommandResult
from testbed.wheels import WheelSpec, build_wheel


def uv_install(tmp_path: Path, wheels: list[WheelSpec], *requirements: str) -> CommandResult:
    """`uv pip install` of `requirements` into a new venv from a wheel folder holding only `wheels`; it must fail."""
    store = tmp_path / "wheels"
    store.mkdir()
    for spec in wheels:
        build_wheel(store, spec)
    subprocess.run(["uv", "venv", "-q", str(tmp_path / "env")], check=True, timeout=300)
    argv = ["uv", "pip", "install", "--python", str(tmp_path / "env" / "bin" / "python"), "--no-index",
            "--find-links", str(store), *requirements]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0, done.stdout + done.stderr
    return CommandResult(" ".join(argv), done.returncode, done.stdout, done.stderr)


@pytest.mark.parametrize("columns", ["60", "400"])
def test_a_package_the_store_does_not_have_is_named(tmp_path, monkeypatch, columns):
    """Named however uv wraps its message (to the terminal's width, COLUMNS)."""
    monkeypatch.setenv("COLUMNS", columns)
    result = uv_install(tmp_path, [WheelSpec("tinyalpha", "1.1")], "tinyalpha==1.1", "doesnotexist-pkg==1.0")
    said = explain(result)
    assert said.startswith("doesnotexist-pkg could not be found"), said
    assert "check its name and version" in said


def test_packages_that_cannot_go_together_are_not_called_missing(tmp_path):
    result = uv_install(tmp_path, [WheelSpec("tinyalpha", "0.9"), WheelSpec("tinybeta", "1.0", ("tinyalpha>=1.0",))],
                        "tinybeta==1.0", "tinyalpha==0.9")
    assert "No solution found" in result.stdout + result.stderr
    said = explain(result)
    assert said.startswith("The packages asked for cannot be installed together"), said


def test_a_version_the_store_does_not_have_is_called_missing_in_plain_words(tmp_path):
    """What an import's check says of a pinned version the store lacks, from uv's own words for it ('there is no
    version of'), which the review found shown raw."""
    from envdesk.backend.operations.importing import _plain_reason
    result = uv_install(tmp_path, [WheelSpec("tinyalpha", "1.1")], "tinyalpha==9.9")
    said = [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("cause:")]
    assert said and "there is no version of tinyalpha==9.9" in said[-1], result.stderr
    assert _plain_reason(said[-1]) == "not in this target's package index or wheel store"


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_package_the_store_has_no_version_of_is_told_apart_from_a_missing_version(tmp_path, installer):
    """Allowing newer versions (--top-level) cannot help a package the store has no version of, so the check
    tells the two apart, from the installer's own words (uv's 'was not found in', pip's 'from versions: none')."""
    from envdesk.backend.operations.importing import NOT_THERE_AT_ALL, _plain_reason
    store = tmp_path / "wheels"
    store.mkdir()
    build_wheel(store, WheelSpec("tinyalpha", "1.1"))
    subprocess.run(["uv", "venv", "-q", str(tmp_path / "env")], check=True, timeout=300)
    python = str(tmp_path / "env" / "bin" / "python")
    said = {}
    for pin in ("tinyalpha==9.9", "tinynowhere==1.0"):
        argv = (["uv", "pip", "install", "--dry-run", "--python", python] if installer == "uv" else
                [sys.executable, "-m", "pip", "--python", python, "install", "--dry-run", "--isolated"])
        done = subprocess.run([*argv, "--no-index", "--find-links", str(store), pin], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode != 0, done.stdout + done.stderr
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        said[pin] = next((line for line in lines if "from versions" in line or "cause:" in line), lines[-1])
    listed = "; it has 1.1" if installer == "pip" else ""  # the versions pip names (T20); uv names none
    assert _plain_reason(said["tinyalpha==9.9"]) == "not in this target's package index or wheel store" + listed, said
    assert _plain_reason(said["tinynowhere==1.0"]) == NOT_THERE_AT_ALL, said


# What conda and mamba print when no channel has a package, as their users' reports show it (conda cannot be
# installed here: these are their words, in the shapes of public bug reports, not EnvDesk's stand-in's).
CONDA_SAID = {
    "conda, classic solver": ("Collecting package metadata (repodata.json): done\nSolving environment: failed\n\n"
                              "PackagesNotFoundError: The following packages are not available from current channels:"
                              "\n\n  - numpyy=1.26\n  - scipi\n\nCurrent channels:\n\n"
                              "  - https://conda.anaconda.org/conda-forge/linux-64\n"
                              "  - https://conda.anaconda.org/conda-forge/noarch\n\nTo search for alternate channels "
                              "that may provide the conda package you're\nlooking for, navigate to\n\n"
                              "    https://anaconda.org\n\nand use the search bar at the top of the page.\n\n",
                              ["numpyy=1.26", "scipi"]),
    "conda, libmamba solver": ("Channels:\n - conda-forge\nPlatform: linux-64\nCollecting package metadata "
                               "(repodata.json): done\nSolving environment: failed\n\nLibMambaUnsatisfiableError: "
                               "Encountered problems while solving:\n  - nothing provides requested numpyy 1.26**\n\n"
                               "Could not solve for environment specs\nThe following package could not be installed\n"
                               "└─ numpyy 1.26**  does not exist (perhaps a typo or a missing channel).\n\n",
                               ["numpyy"]),
    "mamba 2": ("conda-forge/linux-64                                        Using cache\n"
                "error    libmamba Could not solve for environment specs\n"
                "    The following packages are incompatible\n"
                "    ├─ numpyy =1.26 * does not exist (perhaps a typo or a missing channel);\n"
                "    └─ scipi =* * does not exist (perhaps a typo or a missing channel).\n"
                "critical libmamba Could not solve for environment specs\n", ["numpyy", "scipi"]),
    "conda 4": ("Collecting package metadata (repodata.json): done\nSolving environment: failed\n\n"
                "ResolvePackageNotFound: \n  - r-sva\n\n", ["r-sva"]),
}


@pytest.mark.parametrize("tool", list(CONDA_SAID))
def test_a_package_no_conda_channel_has_is_named(tool):
    """User trial T7: a conda import's failure ended with '... failed on beta: - https://conda.anaconda.org/
    conda-forge/linux-64', the last of the channels conda lists after its error, and named no package."""
    from envdesk.backend.runner import command_failed
    said, missing = CONDA_SAID[tool]
    result = CommandResult("conda install ...", 1, "", said)
    hint = explain(result)
    assert hint.startswith(f"No channel conda searched has {', '.join(missing)}:"), hint
    message = command_failed("Installing conda packages failed on beta", result, hint).message
    assert "https://" not in message and "search bar" not in message, message


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_an_index_that_cannot_be_reached_is_said_so_not_called_missing_packages(tmp_path, installer):
    """User trial T10: with pip's settings naming an index that does not answer, an import said the packages
    were missing and offered newer versions (--top-level), which would not be reached either. The referee is
    the installer's own output on a closed port of this computer: EnvDesk's reading of it is that the index
    could not be reached, and its advice is the index's address and the network."""
    from envdesk.backend.operations.importing import INDEX_UNREACHED, Unavailable, _plain_reason, _what_would_work

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    index = ["--index-url", f"http://127.0.0.1:{port}/simple"]
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "env")], check=True, timeout=300)
    python = str(tmp_path / "env" / "bin" / "python")
    argv = (["uv", "pip", "install", "--dry-run", "--python", python, *index, "tinygamma==0.1"] if installer == "uv"
            else [sys.executable, "-m", "pip", "--python", python, "install", "--isolated", "--dry-run", "--timeout",
                  "5", *index, "tinygamma==0.1"])  # pip's own retries: it says why only while retrying
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env={**os.environ, "UV_HTTP_RETRIES": "0"})
    assert done.returncode != 0
    reason = _plain_reason(done.stdout + done.stderr)
    assert reason == INDEX_UNREACHED, done.stdout + done.stderr
    hint = _what_would_work([Unavailable("tinygamma==0.1", reason)], None, None)  # type: ignore[arg-type]
    assert "--top-level" not in hint and "pip config list" in hint


def test_a_python_that_does_not_fit_is_said_even_after_a_retried_connection():
    """Review R8: pip's retry warnings on a flaky network ('Failed to establish a new connection') made a real
    answer read as an unreachable index. An answer the index gave (a Python the versions need) comes first."""
    from envdesk.backend.operations.importing import INDEX_UNREACHED, _plain_reason

    raw = ("WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) after connection "
           "broken by 'NewConnectionError(<pip._vendor.urllib3.connection.HTTPSConnection object at 0x7f>: Failed to "
           "establish a new connection: [Errno 101] Network is unreachable')': /simple/tinyold/\n"
           "ERROR: Package 'tinyold' requires a different Python: 3.11.7 not in '<3.11'\n")
    assert _plain_reason(raw) == "needs Python <3.11; this environment has Python 3.11.7" != INDEX_UNREACHED
