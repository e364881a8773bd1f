"""Sizes as people read them, the same in the window, the command line and the warnings."""
from __future__ import annotations


def size_text(size: int | None) -> str:
    """Bytes as people read them: 412.3 KiB, 1.2 GiB (powers of 1024 with their own names, as quota reports and
    uv write them: 'MB' would be read as powers of 1000)."""
    if size is None:
        return "unknown"
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"
