"""What EnvDesk is: its name and version.

The version is written here, once: pyproject.toml reads it from this file (tool.setuptools.dynamic), so the
installed package's metadata says the same, and asking for it loads nothing (importlib.metadata, with the email
package it parses with, costs each command about 25 ms).
"""
from __future__ import annotations

DISTRIBUTION = "envdesk"
VERSION = "0.1.0"


def version() -> str:
    """The installed version, so records name the real release."""
    return VERSION


def created_with() -> str:
    """How an environment's metadata names the tool that made it."""
    return f"EnvDesk {version()}"
