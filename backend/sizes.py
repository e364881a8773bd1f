"""Sizes as people read them, the same in the window, the command line and the warnings."""
from __future__ import annotations


def size_text(size: int | None) -> str:
    """Bytes as people read them: 412.3 KB, 1.2 GB (powers of 1024, as quota reports count)."""
    if size is None:
        return "unknown"
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if value < 1024 or unit == "PB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"
