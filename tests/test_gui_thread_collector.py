"""Garbage left by the window is collected on the GUI thread, never on a task's pool thread.

CI once crashed with "Fatal Python error: Segmentation fault ... Garbage-collecting" in a pool thread running a
create: the collector, run there because that thread allocated past its threshold, destroyed Qt objects of the
window from the wrong thread. The referee is the thread Python itself runs a finalizer of cyclic garbage on.
"""
from __future__ import annotations

import threading
import weakref

from PySide6.QtCore import QObject

from envdesk.gui.tasks import Task, TaskRunner


class _Node:
    """One half of a reference cycle, as a window's objects make them (a widget's slot holding its owner)."""

    def __init__(self) -> None:
        self.partner: object = None
        self.qt_object = QObject()


def _cyclic_garbage(finalized_on: list[int]) -> None:
    first, second = _Node(), _Node()
    first.partner, second.partner = second, first
    weakref.finalize(first, lambda: finalized_on.append(threading.get_ident()))


def _allocate_like_a_backend_call(progress) -> int:
    kept = [[index] for index in range(50_000)]  # containers past any collection threshold, many times over
    return len(kept)


def test_a_pool_thread_allocating_never_collects_the_windows_garbage(qtbot) -> None:
    owner = QObject()
    runner = TaskRunner(owner)
    finalized_on: list[int] = []
    _cyclic_garbage(finalized_on)

    task = runner.start(Task("allocate", "here", _allocate_like_a_backend_call))
    assert task.done.wait(60)
    assert runner.pool.waitForDone(60_000)  # the pool thread is done with it (Qt says)
    assert finalized_on == [], "a collection ran on the pool thread"

    more_garbage: list[int] = []
    for _ in range(2_000):  # cycles the GUI thread leaves behind, so a collection is due there
        _cyclic_garbage(more_garbage)
    qtbot.waitUntil(lambda: bool(finalized_on), timeout=10_000)
    assert finalized_on == [threading.get_ident()]
