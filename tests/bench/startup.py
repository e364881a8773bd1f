"""Benchmark: how long `envdesk --help` and `envdesk --version` take to start, against Python itself
starting (`python -c pass`) and importing Qt's widgets, measured in the same run (best of N each).

    python tests/bench/startup.py [--runs 10]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time


def best_of(runs: int, argv: list[str]) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - began)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    envdesk = shutil.which("envdesk") or sys.exit("envdesk is not installed")
    python = best_of(args.runs, [sys.executable, "-c", "pass"])
    qt = best_of(args.runs, [sys.executable, "-c", "import PySide6.QtWidgets"])
    helped = best_of(args.runs, [envdesk, "--help"])
    version = best_of(args.runs, [envdesk, "--version"])
    print(f"python -c pass:                 {python:6.3f} s")
    print(f"python -c 'import PySide6...':  {qt:6.3f} s")
    print(f"envdesk --help:                 {helped:6.3f} s  ({helped / python:.1f}x Python's own start)")
    print(f"envdesk --version:              {version:6.3f} s  ({version / python:.1f}x Python's own start)")
    print(f"envdesk --help beyond Python:   {helped - python:6.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
