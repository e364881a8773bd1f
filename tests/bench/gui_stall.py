"""Benchmark: the longest GUI-thread stall while the app lists, creates and exports over a slow SSH link.

    python tests/bench/gui_stall.py [--rtt 0.05]      (as root: it starts the SSH test bed)

A 5 ms timer on the GUI thread records the longest gap between its ticks. The same timer on
an idle window, measured in the same run, is the baseline; results are printed as ratios to
it, because wall-clock numbers on shared machines mean little. A ratio near 1 means the
operations never blocked the GUI thread beyond normal event-loop jitter.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rtt", type=float, default=0.05, help="injected round trip, seconds")
    args = parser.parse_args()
    os.environ["HOME"] = tempfile.mkdtemp(prefix="envdesk-bench-")

    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from bench.latency_proxy import slow_cluster
    from envdesk.backend.operations.create import CreateRequest, create_environment
    from envdesk.backend.operations.export import export_environment
    from envdesk.gui.main_window import MainWindow

    app = QApplication(sys.argv[:1])
    with slow_cluster(args.rtt) as (_bed, paths):
        window = MainWindow(paths)
        window.show()

        class StallMeter:
            def __init__(self) -> None:
                self.clock, self.worst = QElapsedTimer(), 0
                self.timer = QTimer()
                self.timer.setInterval(5)
                self.timer.timeout.connect(self.tick)

            def tick(self) -> None:
                self.worst = max(self.worst, self.clock.restart())

            def measure(self, start, done) -> tuple[float, float]:
                self.worst = 0
                self.clock.start()
                self.timer.start()
                began = time.perf_counter()
                start()
                while not done():
                    app.processEvents()
                    time.sleep(0.001)
                self.timer.stop()
                return self.worst / 1000, time.perf_counter() - began

        meter = StallMeter()
        idle_end = [0.0]
        idle = meter.measure(lambda: idle_end.__setitem__(0, time.perf_counter() + 3), lambda: time.perf_counter()
                             > idle_end[0])
        tasks = {}
        session = window.controller.session
        name = f"bench-{os.getpid()}"
        runs = {
            "list": lambda: tasks.__setitem__("t", window.controller.refresh("slow")),
            "create": lambda: tasks.__setitem__("t", window.controller.start(
                "create", "slow", lambda p: create_environment(session, "slow", CreateRequest(
                    name=name, kind="uv", packages=["tinybeta"]), p))),
            "export": lambda: tasks.__setitem__("t", window.controller.start(
                "export", "slow", lambda p: export_environment(session, "slow", name, "envdesk", p))),
        }
        print(f"injected round trip: {args.rtt * 1000:.0f} ms; idle baseline: longest gap "
              f"{idle[0] * 1000:.1f} ms over {idle[1]:.1f} s")
        print(f"{'operation':10} {'took':>8} {'longest GUI stall':>18} {'ratio to idle':>14}")
        for label, start in runs.items():
            stall, took = meter.measure(start, lambda: "t" in tasks and tasks["t"].done.is_set())
            assert tasks["t"].state == "succeeded", (label, tasks["t"].state)
            tasks.clear()
            print(f"{label:10} {took:7.2f}s {stall * 1000:15.1f} ms {stall / max(idle[0], 1e-3):13.1f}x")
        window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
