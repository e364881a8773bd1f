"""An export lists what pip itself says the environment holds: `pip freeze` is the referee, not EnvDesk.

On this computer, with real venvs made by the stdlib and real pip: wheels-style dist-info
installs, an .egg-info install, an easy_install .egg, a VCS install recorded in
direct_url.json, an archive install with its hash, and the setuptools/wheel that pip freeze
shows or hides depending on the Python version.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from envdesk_fixtures import canon, envdesk_command


def freeze_lines(text: str) -> set[str]:
    """Requirement lines without comments, with names in PEP 503 form (pip and EnvDesk may differ in case)."""
    lines = set()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(.*)$", line)
        lines.add(canon(match.group(1)) + match.group(2) if match and not line.startswith("-") else line)
    return lines


def dist_info(site: Path, name: str, version: str, direct_url: dict | None = None) -> None:
    folder = site / f"{name}-{version}.dist-info"
    folder.mkdir()
    (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n")
    (folder / "INSTALLER").write_text("pip\n")
    (folder / "RECORD").write_text("")
    if direct_url is not None:
        (folder / "direct_url.json").write_text(json.dumps(direct_url))


@pytest.fixture
def populated_env(tmp_path):
    root = tmp_path / "envs"
    subprocess.run([sys.executable, "-m", "venv", str(root / "demo")], check=True, timeout=300)
    site = next((root / "demo").glob("lib/python*/site-packages"))
    dist_info(site, "Tiny_Alpha", "1.1")
    dist_info(site, "wheel", "0.43.0")  # pip freeze shows it from Python 3.12 on, hides it before
    dist_info(site, "tinyvcs", "0.2", {"url": "https://git.example.org/lab/tinyvcs.git",
                                       "vcs_info": {"vcs": "git", "commit_id": "0f" * 20,
                                                    "requested_revision": "main"}})
    dist_info(site, "tinyarchive", "3.0", {"url": "https://files.example.org/tinyarchive-3.0.tar.gz",
                                           "archive_info": {"hash": "sha256=" + "ab" * 32,
                                                            "hashes": {"sha256": "ab" * 32}}})
    old = site / "oldstyle-2.0-py3.11.egg-info"
    old.mkdir()
    (old / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: oldstyle\nVersion: 2.0\n")
    egg = site / "eggy-0.3-py3.11.egg"
    (egg / "EGG-INFO").mkdir(parents=True)
    (egg / "EGG-INFO" / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: eggy\nVersion: 0.3\n")
    (site / "easy-install.pth").write_text("./eggy-0.3-py3.11.egg\n")
    config = tmp_path / "config"
    config.mkdir()
    (config / "clusters.yaml").write_text(f"local:\n  env_roots: [{json.dumps(str(root))}]\n")
    return config, root / "demo"


def test_requirements_export_equals_pip_freeze(populated_env):
    config, env = populated_env
    python = env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    frozen = subprocess.run([str(python), "-m", "pip", "freeze"], capture_output=True, text=True, check=True,
                            timeout=120).stdout
    exported = subprocess.run([*envdesk_command(), "--config-dir", str(config), "env", "export", "local", "demo",
                               "--format", "requirements"], capture_output=True, text=True, timeout=120)
    assert exported.returncode == 0, exported.stderr
    assert freeze_lines(exported.stdout) == freeze_lines(frozen)
    assert any(line.startswith("tinyvcs @ git+") and line.endswith("@" + "0f" * 20) for line in freeze_lines(frozen))
    assert any(line.endswith("#sha256=" + "ab" * 32) for line in freeze_lines(frozen))


def test_env_show_says_when_system_site_packages_are_seen(tmp_path):
    root = tmp_path / "envs"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(root / "s")],
                   check=True, timeout=120)
    config = tmp_path / "config"
    config.mkdir()
    (config / "clusters.yaml").write_text(f"local:\n  env_roots: [{json.dumps(str(root))}]\n")
    shown = subprocess.run([*envdesk_command(), "--config-dir", str(config), "env", "show", "local", "s"],
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "system site-packages" in shown.stdout
    listed = subprocess.run([*envdesk_command(), "--config-dir", str(config), "env", "list", "local"],
                            capture_output=True, text=True, timeout=120)
    assert "+sys" in listed.stdout and "system site-packages" in listed.stdout
