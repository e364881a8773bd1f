"""Counts in plain English: '1 package', '3 packages' (the app's and the command line's texts)."""
from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`count` and the noun in the number it takes ('1 package', '0 packages')."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
