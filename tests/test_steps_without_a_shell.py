"""Steps that run without a shell on this computer, which may be Windows (no sh there): each runs a Python."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("virtualenv_on_path", [True, False])
def test_a_virtualenv_is_made_without_a_shell_and_by_venv_where_virtualenv_is_missing(tmp_path, virtualenv_on_path):
    """The step that makes a virtualenv where the probe did not see one was `sh -c`, which Windows lacks. It now
    runs the Python it makes the environment from, with nothing else on PATH but virtualenv where there is one.
    The referees: virtualenv's own mark in pyvenv.cfg (`virtualenv = VERSION`), which venv does not write, and the
    new environment's Python."""
    from envdesk.backend.capabilities import Capabilities
    from envdesk.backend.recipes import create_step
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if virtualenv_on_path:
        found = shutil.which("virtualenv", path=str(Path(sys.executable).parent)) or shutil.which("virtualenv")
        assert found, "the test extra installs virtualenv"
        (bin_dir / "virtualenv").symlink_to(found)
    env = tmp_path / "made"
    step = create_step("virtualenv", Capabilities(), str(env), (), None, False, sys.executable)
    said = subprocess.run(step.argv, capture_output=True, text=True, timeout=300, env={"PATH": str(bin_dir)})
    assert said.returncode == 0, said.stderr
    config = (env / "pyvenv.cfg").read_text()
    assert ("virtualenv = " in config) == virtualenv_on_path, config
    assert ("virtualenv is not installed here" in said.stderr) != virtualenv_on_path, said.stderr
    inside = subprocess.run([str(env / "bin" / "python"), "-c", "import sys; print(sys.prefix != sys.base_prefix)"],
                            capture_output=True, text=True, check=True)
    assert inside.stdout.strip() == "True"
