"""Benchmark: listing four clusters at once, the way the app's "All clusters" view does, against the
slowest of the four listed alone, measured in the same run. Goal: at most 1.3x.

    python tests/bench/four_clusters.py [--envs 50] [--packages 100] [--rtt 50] [--repeat 5]

As root: it starts the SSH test bed, whose four login nodes (alpha, beta, otp, password) each have an
sshd of their own, and puts each behind a latency proxy of its own. otp asks for a one-time code and
password for a password: a scripted prompter answers at once. Each home gets --envs real venvs with
--packages real wheels (otp shares alpha's user and home, as on the test bed).

The view lists every target side by side on the controller's thread pool (`refresh_all`: one
`list_environments` per target, 8 threads); this does the same with the same function. Three cases:
opening the app (a new Session: log in, then list) and a refresh (connections already open), the app's (a
listing agent kept running on each cluster, see agent_session) and one command per listing as before. Figures
are medians of --repeat runs, after one untimed listing of each cluster (no cold cache counted).
Note: the four "clusters" and the app share this machine's cores. The latency proxies run in a process of
their own (latency_proxy.ProxyProcess), not in the app's as before 2026-11-23: a real network takes none of
the app's CPU or interpreter lock, so the proxies' in the app's process made the four-at-once figure the
app's and the proxies' together. Figures from before that are not comparable with later ones.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.remote_trace import tree_cpu  # noqa: E402

CLUSTERS = ("alpha", "beta", "otp", "password")
POOL_THREADS = 8  # the GUI controller's TaskRunner pool


def list_together(session: Any, names: list[str]) -> float:
    """Seconds to list every named target side by side, as refresh_all does."""
    from envdesk.backend.operations.listing import list_environments

    began = time.perf_counter()
    with ThreadPoolExecutor(POOL_THREADS) as pool:
        listings = list(pool.map(lambda name: list_environments(session, name), names))
    seconds = time.perf_counter() - began
    for listing in listings:
        assert listing.environments, f"{listing.target} listed nothing"
    return seconds


@dataclass(frozen=True)
class Run:
    """One timed listing: wall seconds, the app's CPU seconds, the test bed's (sshds and what they ran)."""

    wall: float
    app_cpu: float
    bed_cpu: float


def median_run(run: Callable[[list[str]], float], names: list[str], sshds: list[int], repeat: int) -> Run:
    """The run of median wall time among `repeat` runs."""
    runs = []
    for _ in range(repeat):
        app, bed = time.process_time(), tree_cpu(sshds)
        wall = run(names)
        runs.append(Run(wall, time.process_time() - app, tree_cpu(sshds) - bed))
    return sorted(runs, key=lambda r: r.wall)[len(runs) // 2]


def serving_rss(cluster: Any) -> list[int]:
    """The resident KB of each listing agent kept running as the cluster's user (see agent_session)."""
    found = cluster.run_as_user("ps -u \"$USER\" -o rss=,args= | grep -F 'fdopen(3' | grep -v grep", check=False)
    return [int(line.split()[0]) for line in found.stdout.splitlines() if line.strip()]


@contextmanager
def proxied_apart(paths: Any, clusters: dict[str, Any], rtt: float) -> Iterator[None]:
    """A profile per named cluster, each reached through a latency proxy in a process of its own (see the
    module), host keys trusted."""
    from bench.latency_proxy import ProxyProcess
    from envdesk.backend.config import ClusterProfile, ClusterStore

    store = ClusterStore(paths)
    with ExitStack() as stack:
        for name, cluster in clusters.items():
            proxy = ProxyProcess(cluster.port, rtt).start()
            stack.callback(proxy.stop)
            store.add(ClusterProfile(name=name, **{**cluster.profile_fields(), "port": proxy.port}))
            with open(paths.known_hosts_file, "a") as handle:
                handle.write(f"[127.0.0.1]:{proxy.port} {cluster.host_key_pub}\n")
        yield


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--envs", type=int, default=50)
    parser.add_argument("--packages", type=int, default=100)
    parser.add_argument("--rtt", type=float, default=50, help="round trip of every link, ms")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ["HOME"] = tempfile.mkdtemp(prefix="envdesk-bench-")

    from bench.bench_bed import copy_envs, make_envs, make_wheels, progress
    from envdesk.backend.paths import AppPaths
    from envdesk.backend.targets import Session
    from envdesk_fixtures import ScriptedPrompter
    from testbed import TestBed

    bed = TestBed.start()
    try:
        clusters = bed.clusters
        progress("building the environments")
        make_envs(clusters["alpha"], make_wheels(bed.base / "bench-wheels", args.packages), args.envs)
        for name in ("beta", "password"):
            progress(f"copying them for {name}")
            copy_envs(clusters["alpha"], clusters[name])
        answers = {"otp": clusters["otp"].totp_now, "password": lambda: clusters["password"].password}
        prompter = ScriptedPrompter(answer=lambda request: answers[request.cluster]())
        paths = AppPaths(Path(os.environ["HOME"]) / "config")
        paths.config_dir.mkdir(parents=True)
        with proxied_apart(paths, {name: clusters[name] for name in CLUSTERS}, args.rtt / 1000):
            def opening(names: list[str]) -> float:
                session = Session(paths, prompter)
                try:
                    return list_together(session, names)
                finally:
                    session.close()

            progress("first listing of every cluster")
            opening(list(CLUSTERS))  # untimed: the first listing of each home writes whatever it caches
            sshds = [pid for pid in (clusters[name].sshd_pid for name in CLUSTERS) if pid is not None]
            live = Session(paths, prompter, keep_agents=True)  # as the app's: a listing agent kept on each
            command_each = Session(paths, prompter)  # as the command line's: a command per listing
            cases: dict[str, Callable[[list[str]], float]] = {
                "opening the app (log in, list)": opening,
                "refresh (connections open, the app: listing agents kept running)":
                    lambda names: list_together(live, names),
                "refresh (connections open, a command per listing, as before)":
                    lambda names: list_together(command_each, names)}
            results: dict[str, dict[str, Run]] = {key: {} for key in cases}
            for session in (live, command_each):
                for _ in range(2):  # the second starts the listing agents of `live`
                    list_together(session, list(CLUSTERS))
            for key, run in cases.items():
                progress(key)
                for name in CLUSTERS:
                    results[key][name] = median_run(run, [name], sshds, args.repeat)
                results[key]["all four at once"] = median_run(run, list(CLUSTERS), sshds, args.repeat)
            kept_kb = serving_rss(clusters["alpha"])
            live.close()
            command_each.close()
    finally:
        bed.close()

    print(f"four clusters behind {args.rtt:.0f} ms links, {args.envs} environments x {args.packages} packages "
          f"each; median of {args.repeat}; {os.cpu_count()} cores shared by the four login nodes and the app")
    for key, runs in results.items():
        alone = {name: runs[name].wall for name in CLUSTERS}
        slowest = max(alone, key=lambda name: alone[name])
        together = runs["all four at once"]
        print(f"{key}: alone " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in alone.items()))
        print(f"    all four at once {together.wall:.2f} s; slowest alone ({slowest}) {alone[slowest]:.2f} s; "
              f"ratio {together.wall / alone[slowest]:.2f}x (goal <= 1.3x); one after another would take "
              f"{sum(alone.values()):.2f} s")
        print(f"    CPU while all four listed: the app {together.app_cpu:.2f} s, the test bed's sshds and what they "
              f"ran {together.bed_cpu:.2f} s; slowest alone: app {runs[slowest].app_cpu:.2f} s, test bed "
              f"{runs[slowest].bed_cpu:.2f} s")
    print("the listing agents kept running as alpha's user (alpha's and otp's), after these listings: "
          + ", ".join(f"{kb / 1024:.0f} MB" for kb in kept_kb) + " resident")
    return 0


if __name__ == "__main__":
    sys.exit(main())
