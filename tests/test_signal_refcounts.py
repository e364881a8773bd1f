"""Emitting the tasks' signals leaves Python's reference counts of True and None as they were.

PySide6-Essentials 6.12.0 drops a reference to True (and None) with every emit of a Signal(object) (user trial
T12): after a few hundred operations the window aborted with "Fatal Python error: bool_dealloc: deallocating True
or False", and pytest workers crashed the same way. pyproject.toml leaves that release out. The referee:
CPython's own count of references to True and None, which an emit must not change.

The counting runs in a Python of its own, where no other thread runs: in a test worker, threads left by earlier
tests (a connection's watch, a pool's task) take and drop references to True and None while the counts are read
(CI failed a measure by -47; R17 made every measure fail with one busy thread).
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(sys.version_info >= (3, 12), reason="True and None are immortal from Python 3.12 "
                                "on: their counts never move, and a lost reference cannot free them")

MEASURE = """
import gc, json, sys, threading
from envdesk.gui.tasks import TaskSignals
value = json.loads(sys.argv[1])
signals = TaskSignals()
received = []
signals.succeeded.connect(received.append)
signals.failed.connect(received.append)
if sys.argv[2] == "keeping":  # the check of this test: a slot that keeps what it gets moves the counts
    kept = []
    signals.failed.connect(kept.append)

def counts():
    gc.collect()
    return sys.getrefcount(True), sys.getrefcount(None)

def moved_by(rounds):
    before = counts()
    for _ in range(rounds):
        signals.succeeded.emit(value)
        signals.failed.emit(value)
    received.clear()
    after = counts()
    return after[0] - before[0], after[1] - before[1]

moved_by(1)  # anything made once, on a signal's first emit, is made before counting
print(json.dumps({"threads": threading.active_count(), "many": moved_by(100), "few": moved_by(10)}))
"""


def measured(value, slot: str = "") -> dict:
    result = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(value), slot], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("value", [None, True, {"ok": True, "error": None}], ids=["None", "True", "a dict"])
def test_emitting_a_result_keeps_the_counts_of_true_and_none(value):
    """What the counts move by (a reference or two, the measuring's own) must not grow with the number of emits;
    few enough emits that a reference lost each time fails here rather than aborting Python."""
    found = measured(value)
    assert found["threads"] == 1 and found["many"] == found["few"], found


def test_the_measure_sees_references_kept_per_emit():
    """The measure can fail: a slot keeping each None it gets moves the count with the number of emits."""
    found = measured(None, "keeping")
    assert found["many"] != found["few"], found
