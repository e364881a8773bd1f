"""Benchmark: peak memory (RSS) of the app's real main window with many cached environments loaded, against
an empty QMainWindow in a fresh process, measured in the same run.

    python tests/bench/memory.py [--clusters 10] [--envs 500] [--packages 100] [--settle 20]

The inventories are generated (cached_inventories.py) and saved with the app's own InventoryCache, so the
app loads them the way it loads a previous session's lists at start (AppController.reload_targets ->
InventoryCache.load). The window opens on "All clusters", so every environment is a row of the table.
After the table's first paint, events go on for `--settle` seconds (the background refreshes of the
unreachable clusters fail meanwhile, and the table is rebuilt as each does), then the process reports its
peak RSS. The app with nothing cached is measured too, so the figure splits into Qt, EnvDesk's own
start, and the data. Goal: under 300 MB at 10 x 500 x 100.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GOAL_MB = 300


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--envs", type=int, default=500, help="cached environments per cluster")
    parser.add_argument("--packages", type=int, default=100, help="packages per environment")
    parser.add_argument("--settle", type=float, default=20.0,
                        help="seconds of events after the first paint (the lists are read in the background)")
    args = parser.parse_args()

    from bench.bytecode import compiled_environment
    from bench.cached_inventories import ALL_CLUSTERS, fill_cache, select_at_start
    from bench.window_startup import probe
    from envdesk.backend.paths import AppPaths

    work = Path(tempfile.mkdtemp(prefix="envdesk-bench-"))
    os.environ["HOME"] = str(work)
    try:
        env = compiled_environment(work / "bytecode")
        empty_config = AppPaths(work / "empty-config")
        fill_cache(empty_config, 1, 1, 1)  # one cached environment: the least that paints a table row
        select_at_start(empty_config, ALL_CLUSTERS)
        loaded = AppPaths(work / "config")
        fill_cache(loaded, args.clusters, args.envs, args.packages)
        select_at_start(loaded, ALL_CLUSTERS)
        cache_mb = sum(f.stat().st_size for f in loaded.cache_dir.iterdir()) / 2**20
        probe("envdesk", str(empty_config.config_dir), env)  # untimed: writes the bytecode
        baseline = probe("empty", "-", env, args.settle)
        bare = probe("envdesk", str(empty_config.config_dir), env, args.settle)
        full = probe("envdesk", str(loaded.config_dir), env, args.settle)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = args.clusters * args.envs
    assert full.get("rows_at_end") == rows, f"the table showed {full.get('rows_at_end')} rows, not {rows}"
    print(f"peak RSS, main window offscreen, {args.clusters} clusters x {args.envs} environments x "
          f"{args.packages} packages ({rows * args.packages:,} packages, {cache_mb:.0f} MB of cache files)")
    print(f"empty QMainWindow (baseline):            {baseline['peak_rss_mb']:7.1f} MB")
    print(f"EnvDesk, one environment cached:         {bare['peak_rss_mb']:7.1f} MB "
          f"({bare['peak_rss_mb'] / baseline['peak_rss_mb']:.2f}x the baseline)")
    print(f"EnvDesk, all of them cached and shown:   {full['peak_rss_mb']:7.1f} MB "
          f"({full['peak_rss_mb'] / baseline['peak_rss_mb']:.2f}x the baseline; now {full['rss_mb']:.1f} MB)")
    data = full["peak_rss_mb"] - bare["peak_rss_mb"]
    print(f"the data's share: {data:.1f} MB, {data * 2**20 / (rows * args.packages):.0f} bytes per package; "
          f"goal < {GOAL_MB} MB: {'met' if full['peak_rss_mb'] < GOAL_MB else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
