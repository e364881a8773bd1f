"""Benchmark: time from starting the app to its window showing the cached environment lists, against a
fresh process that imports PySide6.QtWidgets, makes a QApplication and shows an empty QMainWindow.

    python tests/bench/window_startup.py [--clusters 2] [--envs 40] [--packages 60] [--runs 7]

The config folder holds `--clusters` clusters whose inventories are already cached (written by the app's
own InventoryCache; see cached_inventories.py), and the window reopens on the first of them, as after a
previous session. Both processes are started the same way (window_probe.py), alternately, from compiled
bytecode (see bytecode.py), with QT_QPA_PLATFORM=offscreen unless another platform is set; the figure is
the best of `--runs` each, from just before the process is started to the first paint of the environment
table with its rows (the baseline: the empty window's first paint). Goal: at most 1.5x the baseline. The
probe costs both sides the same (see window_probe.py); the CPU time each process used until then is printed
too, as it varies less than the wall clock when other work shares the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROBE = Path(__file__).resolve().with_name("window_probe.py")
GOAL = 1.5


def probe(mode: str, config_dir: str, env: dict[str, str], settle: float = 0.0) -> dict:
    """Start window_probe.py in a fresh process; its report, plus `seconds` from start to ready."""
    env = {**env, "QT_QPA_PLATFORM": env.get("QT_QPA_PLATFORM", "offscreen")}
    began = time.time()
    done = subprocess.run([sys.executable, str(PROBE), mode, config_dir, str(settle)], capture_output=True,
                          text=True, env=env, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        sys.exit(f"window_probe.py {mode} failed:\n{done.stdout}\n{done.stderr}")
    report = json.loads(lines[-1])
    report["seconds"] = report["ready"] - began
    return report


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clusters", type=int, default=2)
    parser.add_argument("--envs", type=int, default=40, help="cached environments per cluster")
    parser.add_argument("--packages", type=int, default=60, help="packages per environment")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    from bench.bytecode import compiled_environment
    from bench.cached_inventories import fill_cache, select_at_start
    from envdesk.backend.paths import AppPaths

    work = Path(tempfile.mkdtemp(prefix="envdesk-bench-"))
    os.environ["HOME"] = str(work)  # this computer's own list (the app lists it too) is empty
    try:
        paths = AppPaths(work / "config")
        names = fill_cache(paths, args.clusters, args.envs, args.packages)
        select_at_start(paths, names[0])
        env = compiled_environment(work / "bytecode")
        probe("envdesk", str(paths.config_dir), env)  # untimed: writes the bytecode, as an install has it
        ours, empty = [], []
        for _ in range(args.runs):
            ours.append(probe("envdesk", str(paths.config_dir), env))
            empty.append(probe("empty", "-", env))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = {report["rows"] for report in ours}
    assert rows == {args.envs}, f"the window showed {rows} rows, not the {args.envs} cached ones"
    best, baseline = min(r["seconds"] for r in ours), min(r["seconds"] for r in empty)
    print(f"start to a window showing cached lists ({args.clusters} clusters x {args.envs} environments x "
          f"{args.packages} packages cached; best of {args.runs}, platform "
          f"{os.environ.get('QT_QPA_PLATFORM', 'offscreen')})")
    print(f"EnvDesk, table painted with its {args.envs} rows:   {best:6.3f} s")
    print(f"baseline, QtWidgets + QApplication + empty window:  {baseline:6.3f} s")
    verdict = "met" if best / baseline <= GOAL else "MISSED"
    print(f"ratio: {best / baseline:.2f}x the baseline (goal <= {GOAL}x: {verdict}); EnvDesk's own share "
          f"{best - baseline:.3f} s")
    cpu, cpu_baseline = min(r["cpu"] for r in ours), min(r["cpu"] for r in empty)
    print(f"CPU time to the same point (steadier on a loaded machine): {cpu:.3f} s against {cpu_baseline:.3f} s, "
          f"{cpu / cpu_baseline:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
