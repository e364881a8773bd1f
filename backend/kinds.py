"""The kinds of environment EnvDesk makes and reads: one list, so every check and menu agrees."""
from __future__ import annotations

KINDS: tuple[str, ...] = ("venv", "virtualenv", "uv", "conda")
"""In the order they are offered: the plainest first."""
