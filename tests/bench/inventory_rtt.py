"""Benchmark: listing every environment of a cluster over SSH at several round-trip times, EnvDesk against
what a script-savvy user does without it, all measured in the same run on the same links.

    python tests/bench/inventory_rtt.py [--envs 50] [--packages 100] [--rtt 0,50,150] [--repeat 3] [--also DIR ...]

As root: it starts the SSH test bed and builds --envs real venvs with --packages real wheels each.
Each round trip has its own latency proxy in front of the same sshd. Two ways of measuring:

* whole process: `envdesk env list CLUSTER --json` as a new process (Python start, login, listing),
  against a new Python process that logs in with paramiko and runs `pip list --format json` (or
  `uv pip list --python ENV --format json`) once per environment over that one connection; and the same
  command while `envdesk cluster connect CLUSTER` keeps the connection ("kept connection": no login);
* live connection (the app's refresh): a backend Session already connected lists once, against the
  same per-environment commands on the baseline's already open connection; as the app does (its listing
  agent kept running on the cluster, see agent_session), and with a command per listing ("live, a command").

EnvDesk's figures are the median of --repeat runs after one untimed listing (so they are warm: a second
listing with nothing changed); the first listing ever, with no EnvDesk cache on the cluster, is printed
apart. Baselines run once each. --also DIR adds a whole-process row for EnvDesk run from another source tree
(a copy of the repository as it was, say), its runs taking turns with the installed one's.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    began = time.perf_counter()
    result = action()
    return time.perf_counter() - began, result


def envdesk_list(config: Path, profile: str, command: list[str] | None = None) -> list[dict[str, Any]]:
    """`envdesk env list PROFILE --json` as a new process (the installed envdesk unless `command` is given);
    its parsed answer."""
    from envdesk_fixtures import envdesk_command

    result = subprocess.run([*(command or envdesk_command()), "--config-dir", str(config), "env", "list", profile,
                             "--json"],
                            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
                            env={**os.environ, "HOME": os.environ["HOME"]})
    if result.returncode != 0:
        raise SystemExit(f"envdesk env list {profile} failed:\n{result.stderr}")
    return json.loads(result.stdout)


def baseline(reach: Any, known_hosts: Path, command: str, envs: list[str]) -> tuple[float, dict[str, Any]]:
    """Run ssh_lister.py as a new process: (its whole wall time, what it reported)."""
    cluster = reach.cluster
    argv = [sys.executable, str(Path(__file__).with_name("ssh_lister.py")), "--port", str(reach.port),
            "--user", cluster.user, "--key", str(cluster.identity_file), "--known-hosts", str(known_hosts),
            "--command", command, *envs]
    seconds, result = timed(lambda: subprocess.run(argv, capture_output=True, text=True, timeout=3600))
    if result.returncode != 0:
        raise SystemExit(f"baseline failed:\n{result.stderr}")
    return seconds, json.loads(result.stdout)


def median_time(action: Callable[[], Any], repeat: int) -> float:
    """Median seconds of `repeat` calls."""
    return statistics.median(timed(action)[0] for _ in range(repeat))


def median_times(actions: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """Median seconds of `repeat` calls of each action, the actions taking turns (so that a machine busier
    at one moment weighs on each alike)."""
    seconds: dict[str, list[float]] = {label: [] for label in actions}
    for _ in range(repeat):
        for label, action in actions.items():
            seconds[label].append(timed(action)[0])
    return {label: statistics.median(values) for label, values in seconds.items()}


def also_commands(sources: list[str], work: Path) -> dict[str, list[str]]:
    """Label -> the `envdesk` command run from each --also source tree."""
    from bench.create_speed import envdesk_from

    return {f" [{Path(source).name}]": envdesk_from(Path(source).resolve(), work / f"also-{number}")
            for number, source in enumerate(sources)}


def kept_listing(paths: Any, profile: str, repeat: int) -> float:
    """Median seconds of `envdesk env list` as a new process while `envdesk cluster connect` keeps the cluster's
    connection (its login done once, before)."""
    from envdesk.backend import kept_connection
    from envdesk.backend.config import ClusterStore
    from envdesk.backend.prompts import NoPrompter

    kept_connection.connect(paths, ClusterStore(paths).get(profile), NoPrompter(), 30)
    try:
        envdesk_list(paths.config_dir, profile)  # untimed, as the others
        return median_time(lambda: envdesk_list(paths.config_dir, profile), repeat)
    finally:
        kept_connection.stop(paths, profile)


def measure(reach: Any, paths: Any, envs: list[str], ours: dict[str, int], pip: str, uv: str,
            repeat: int, also: dict[str, list[str]]) -> list[tuple[int, str, float, float, float]]:
    """Both rows (whole process, live connection) of one round trip: EnvDesk, pip and uv seconds."""
    from envdesk.backend.operations.listing import list_environments
    from envdesk.backend.targets import Session

    ms = round(reach.rtt * 1000)
    commands: dict[str, list[str] | None] = {"": None, **also}
    for command in commands.values():
        envdesk_list(paths.config_dir, reach.profile, command)  # untimed: the figures are warm (see above)
    whole = median_times({label: lambda c=command: envdesk_list(paths.config_dir, reach.profile, c)
                          for label, command in commands.items()}, repeat)
    kept = kept_listing(paths, reach.profile, repeat)
    live = {}
    for keep in (True, False):  # the app's (a listing agent kept running there), and a command per listing
        session = Session(paths, keep_agents=keep)
        session.target(reach.profile).runner.connect()
        for _ in range(2):  # the second starts the listing agent
            listing = list_environments(session, reach.profile)
        assert len(listing.environments) >= len(envs)
        live[keep] = median_time(lambda s=session: list_environments(s, reach.profile), repeat)
        session.close()
    pip_whole, pip_run = baseline(reach, paths.known_hosts_file, pip, envs)
    uv_whole, uv_run = baseline(reach, paths.known_hosts_file, uv, envs)
    for label, counts in (("pip list", pip_run["packages"]), ("uv pip list", uv_run["packages"])):
        theirs = dict(zip(envs, counts))
        differ = {path: (ours.get(path), theirs[path]) for path in envs if ours.get(path) != theirs[path]}
        if differ:
            print(f"MISMATCH at {ms} ms: EnvDesk and {label} count packages differently (EnvDesk, {label}): "
                  f"{list(differ.items())[:3]}")
    return [*((ms, f"whole process{label}", seconds, pip_whole, uv_whole) for label, seconds in whole.items()),
            (ms, "whole process, kept connection", kept, pip_whole, uv_whole),
            (ms, "live connection", live[True], pip_run["execs"], uv_run["execs"]),
            (ms, "live, a command", live[False], pip_run["execs"], uv_run["execs"])]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--envs", type=int, default=50)
    parser.add_argument("--packages", type=int, default=100)
    parser.add_argument("--rtt", default="0,50,150", help="round trips in ms, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--also", action="append", default=[], metavar="DIR", help="EnvDesk from this source tree too")
    args = parser.parse_args()
    rtts = [int(ms) for ms in args.rtt.split(",")]
    os.environ["HOME"] = tempfile.mkdtemp(prefix="envdesk-bench-")
    from bench.bytecode import compiled_environment

    # every Python started here (EnvDesk's command lines, the baseline's lister) from compiled bytecode, as an
    # install has it; the untimed first run of each writes it
    compiled = compiled_environment(Path(os.environ["HOME"]) / "bytecode")
    os.environ.clear()
    os.environ.update(compiled)

    from bench.bench_bed import make_envs, make_wheels, proxied_profiles, uv_program
    from envdesk.backend.paths import AppPaths
    from testbed import TestBed

    bed = TestBed.start()
    try:
        alpha = bed.clusters["alpha"]
        built, envs = timed(lambda: make_envs(alpha, make_wheels(bed.base / "bench-wheels", args.packages),
                                              args.envs))
        pip = "{env}/bin/python -m pip list --disable-pip-version-check --format json"
        uv = uv_program(alpha) + " pip list --python {env} --format json"
        paths = AppPaths(Path(os.environ["HOME"]) / "config")
        paths.config_dir.mkdir(parents=True)
        also = also_commands(args.also, Path(os.environ["HOME"]) / "also")
        rows: list[tuple[int, str, float, float, float]] = []
        with proxied_profiles(paths, {f"rtt{ms}": (alpha, ms / 1000) for ms in rtts}) as reaches:
            cold, first = timed(lambda: envdesk_list(paths.config_dir, f"rtt{rtts[0]}"))
            ours = {env["path"]: env["package_count"] for env in first}
            for ms in rtts:
                rows += measure(reaches[f"rtt{ms}"], paths, envs, ours, pip, uv, args.repeat, also)
    finally:
        bed.close()

    per_env = sorted(set(ours.values()))
    print(f"{args.envs} environments x {args.packages} packages ({'/'.join(map(str, per_env))} per environment "
          f"as EnvDesk counts them; pip list and uv pip list agree unless a MISMATCH line says otherwise); built "
          f"in {built:.0f} s")
    print(f"EnvDesk: median of {args.repeat} warm listings; baselines: once each, one SSH connection and one "
          f"exec per environment")
    print(f"first listing ever (no EnvDesk cache on the cluster), whole process at {rtts[0]} ms: {cold:.2f} s")
    width = max(len(label) for _, label, *_ in rows)
    print(f"{'RTT':>6}  {'measured':{width}} {'EnvDesk':>8} {'pip list/env':>13} {'ratio':>7} "
          f"{'uv pip list/env':>16} {'ratio':>7}")
    for ms, label, envdesk, pip_s, uv_s in rows:
        print(f"{ms:>4} ms  {label:{width}} {envdesk:7.3f}s {pip_s:12.2f}s {pip_s / envdesk:6.1f}x "
              f"{uv_s:15.2f}s {uv_s / envdesk:6.1f}x")
    print("ratio: baseline time / EnvDesk time (above 1: EnvDesk is faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
