"""Sizes are written as powers of 1024 under their own names (KiB, MiB...), as quota reports and uv write them.

A user trial (T11) found "MB" for what were MiB. The referee: GNU numfmt's IEC writing of the same byte counts.
"""
from __future__ import annotations

import shutil
import subprocess

import pytest

from envdesk.backend.sizes import size_text

SIZES = (1536, 1_048_576, 123_456_789, 5_368_709_120, 987_654_321_000, 1_099_511_627_776 * 3)


@pytest.mark.skipif(shutil.which("numfmt") is None, reason="GNU coreutils' numfmt is not on this machine")
@pytest.mark.parametrize("size", SIZES)
def test_sizes_read_as_numfmt_writes_them_in_iec_units(size):
    said = subprocess.run(["numfmt", "--to=iec-i", "--suffix=B", "--round=nearest", "--format=%.1f", str(size)],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert size_text(size).replace(" ", "") == said


def test_small_and_unknown_sizes_are_said_in_words():
    assert size_text(512) == "512 bytes"
    assert size_text(None) == "unknown"
