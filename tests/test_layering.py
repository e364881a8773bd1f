"""The backend never imports Qt: it must run on a machine (or a CI job) without a display."""
from __future__ import annotations

import pkgutil
import subprocess
import sys

import envdesk.backend


def test_backend_imports_no_qt():
    modules = [f"envdesk.backend.{m.name}" for m in pkgutil.iter_modules(envdesk.backend.__path__)]
    assert "envdesk.backend.ssh_runner" in modules
    code = ("import importlib, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'PyQt5', 'PyQt6'))\n"
            "print(bad)\nsys.exit(1 if bad else 0)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
