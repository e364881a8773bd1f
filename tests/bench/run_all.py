"""Run every benchmark in tests/bench/, one after another, each printing its figures and the baseline's
measured in the same run (as root: the SSH ones start the test bed).

    python3 tests/bench/run_all.py [--quick]

--quick leaves out the GUI stall benchmark (it needs a display or Qt's offscreen platform).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [("start-up", ["startup.py"]), ("inventory over SSH", ["inventory_speed.py"]),
           ("the agent's start on a cluster: one small listing, one begin", ["agent_start.py"]),
           ("inventory over SSH at 0, 50 and 150 ms, 50 envs x 100 packages", ["inventory_rtt.py"]),
           ("file-system operations of one listing, cold and warm (strace)", ["fs_ops.py"]),
           ("four clusters at once", ["four_clusters.py"]),
           ("memory of the agent on the cluster", ["agent_memory.py"]),
           ("this computer: env list/show/export vs pip and uv loops", ["local_loops.py"]),
           ("create and import vs raw uv and venv + pip", ["create_speed.py"]),
           ("clone between two clusters: installing vs talking", ["clone_share.py"]),
           ("start-up to a window showing cached lists", ["window_startup.py"]),
           ("memory of the app with 10 clusters x 500 environments x 100 packages", ["memory.py"]),
           ("GUI-thread stalls", ["gui_stall.py"])]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    failed = 0
    for title, command in BENCHES:
        if args.quick and command[0] == "gui_stall.py":
            continue
        print(f"== {title} ({command[0]})", flush=True)
        env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
        result = subprocess.run([sys.executable, str(HERE / command[0]), *command[1:]], env=env)
        failed += result.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
