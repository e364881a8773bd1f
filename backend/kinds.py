"""The kinds of environment EnvDesk makes and reads, and the formats it exports them in: one list each, so
every check and menu agrees (and the command line's parser reads them without loading the backend)."""
from __future__ import annotations

KINDS: tuple[str, ...] = ("venv", "virtualenv", "uv", "conda")
"""In the order they are offered: the plainest first."""

FORMATS: tuple[str, ...] = ("envdesk", "requirements", "conda", "pylock")
"""Export formats; 'pylock' (PEP 751) is written by the target's uv (see operations/export.py)."""
