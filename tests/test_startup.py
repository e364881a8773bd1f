"""Start-up stays light: `envdesk --help` and `--version` load none of the backend's heavy parts (counted as
imported modules, not timed: these machines are noisy; tests/bench/startup.py times it against Python)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("paramiko", "yaml", "PySide6", "cryptography", "keyring", "packaging", "envdesk.backend.targets",
         "envdesk.backend.operations", "envdesk.gui")

PROBE = """
import json, sys
sys.argv = ["envdesk", *sys.argv[1:]]
from envdesk.launch import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["env", "--help"], ["cluster", "add", "--help"]])
def test_help_and_version_load_nothing_heavy(args):
    ran = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
    loaded = json.loads(ran.stderr.strip().splitlines()[-1])
    assert ran.stdout.strip(), "it printed its answer"
    heavy = [name for name in loaded if any(name == h or name.startswith(h + ".") for h in HEAVY)]
    assert heavy == []


def test_help_lists_the_presets_and_version_is_the_installed_one():
    from importlib import metadata
    helped = subprocess.run([sys.executable, "-m", "envdesk", "cluster", "add", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert "alliance" in helped.stdout and "mila" in helped.stdout
    shown = subprocess.run([sys.executable, "-m", "envdesk", "--version"], capture_output=True, text=True,
                           timeout=120)
    assert shown.stdout.strip() == f"envdesk {metadata.version('envdesk')}"


def test_this_computer_alone_never_loads_ssh(tmp_path):
    """`env list local` (no cluster involved) loads neither paramiko nor cryptography, nor the keyring (no
    secret is needed) nor packaging's markers (no uv project is read)."""
    home = tmp_path / "home"
    home.mkdir()
    ran = subprocess.run([sys.executable, "-c", PROBE, "--config-dir", str(tmp_path / "cfg"), "env", "list", "local",
                          "--json"], capture_output=True, text=True, timeout=120,
                         env={"HOME": str(home), "PATH": "/usr/bin:/bin"})
    assert json.loads(ran.stdout) == [], ran.stderr
    loaded = json.loads(ran.stderr.strip().splitlines()[-1])
    assert [name for name in loaded if name.split(".")[0] in ("paramiko", "cryptography", "PySide6", "keyring",
                                                               "packaging")] == []


def test_the_window_starts_without_the_ssh_libraries():
    """The main window's modules load paramiko only once a cluster is reached (a third of the start)."""
    code = ("import json, sys\nimport envdesk.gui.app, envdesk.gui.main_window\n"
            "print(json.dumps(sorted(sys.modules)))")
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    loaded = json.loads(ran.stdout.strip().splitlines()[-1])
    assert "envdesk.gui.main_window" in loaded
    assert [name for name in loaded if name.split(".")[0] in ("paramiko", "cryptography")] == []
