"""Benchmark: copying an environment from one cluster to another (`env clone alpha ENV beta`): the total
time, the share spent in the remote install command, and the rest ("talking": logins, listings, probes,
checks, recording), against a person doing the same by hand with OpenSSH in the same run.

    python tests/bench/clone_share.py [--extra 30] [--rtt 0.05] [--runs 3]      (as root: it starts the test bed)

alpha and beta are the test bed's two key-login clusters (different module names, beta has no uv), each
reached through a latency proxy adding `--rtt`. The source environment on alpha is a venv holding
tinybeta, tinygamma and `--extra` generated wheels (added to both clusters' wheel stores). Each run is a
fresh connection (a new session), as the command line does it. The baseline, by hand, with `ssh`:
`pip freeze` of the source on alpha, then on beta `module load`, `python -m venv`, and `pip install -r`
of that list from the same wheel store: the same install command EnvDesk runs, without the checks.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@dataclass
class CommandLog:
    """Every command (and login) the runners of one clone made, with how long each took."""

    entries: list[tuple[str, float]] = field(default_factory=list)
    spans: list[tuple[float, float]] = field(default_factory=list)  # (start, end) of each, perf_counter
    ends: list[float] = field(default_factory=list)  # when each command ended (perf_counter)
    steps: list[tuple[float, str]] = field(default_factory=list)  # each step the operation announced, and when
    depth: threading.local = field(default_factory=threading.local)

    def wrap(self, runner: Any) -> None:
        """Time the runner's commands and logins (a login inside a command counts once)."""
        for name in ("_execute", "connect"):
            original = getattr(runner, name)
            setattr(runner, name, self._timed(name, original))

    def _timed(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            outer = getattr(self.depth, "value", 0) == 0
            self.depth.value = getattr(self.depth, "value", 0) + 1
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.depth.value -= 1
                if outer:
                    label = args[0].label if name == "_execute" else name
                    self.entries.append((label, time.perf_counter() - began))
                    self.spans.append((began, time.perf_counter()))
                    self.ends.append(time.perf_counter())
        return timed

    def step(self, text: str) -> None:
        self.steps.append((time.perf_counter(), text))

    def phases(self) -> list[tuple[str, float]]:
        """Each announced step and how long it lasted: to the next announcement (the last one: to the end of
        the last command). The remote agent announces a build's steps (create, install, record) as it starts
        them, and both ends of a step arrive with the same delay, so this is the time in that step."""
        ends = [t for t, _ in self.steps[1:]] + [max(self.ends, default=0.0)]
        return [(text, end - began) for (began, text), end in zip(self.steps, ends)]

    def remote_work(self, kind: str) -> float:
        """Seconds in the steps that install packages ("install") or make the empty environment ("create")."""
        prefix = {"install": "Installing packages", "create": "Creating the environment"}[kind]
        return sum(took for text, took in self.phases() if text.startswith(prefix))

    def waiting(self) -> float:
        """Seconds during which at least one command or login was under way (some run side by side)."""
        total, reached = 0.0, float("-inf")
        for began, ended in sorted(self.spans):
            total += max(0.0, ended - max(began, reached))
            reached = max(reached, ended)
        return total

    def seconds(self, kind: str) -> float:
        return sum(took for label, took in self.entries if classify(label) == kind)


def classify(label: str) -> str:
    if label == "connect":
        return "login"
    if "EnvDesk agent" in label:
        return "agent"
    return "other commands"


def ssh(cluster: Any, port: int, key: Path, known_hosts: Path, script: str, stdin: str = "") -> str:
    """Run a login-shell script on a cluster with OpenSSH, as a person would."""
    argv = ["ssh", "-p", str(port), "-i", str(key), "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "StrictHostKeyChecking=yes", f"{cluster.user}@127.0.0.1", f"bash -lc {script!r}"]
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        sys.exit(f"by hand: {script} failed: {done.stderr}")
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--extra", type=int, default=30, help="generated packages in the source, beyond tinybeta's "
                        "and tinygamma's three")
    parser.add_argument("--rtt", type=float, default=0.05, help="injected round trip, seconds")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.environ["HOME"] = tempfile.mkdtemp(prefix="envdesk-bench-")

    from bench.latency_proxy import LatencyProxy
    from envdesk.backend.config import ClusterProfile, ClusterStore
    from envdesk.backend.operations.clone import clone_environment
    from envdesk.backend.operations.common import Progress
    from envdesk.backend.paths import AppPaths
    from envdesk.backend.targets import Session
    from testbed import TestBed
    from testbed.wheels import WheelSpec, build_wheel

    bed = TestBed.start()
    proxies: dict[str, LatencyProxy] = {}
    try:
        paths = AppPaths(Path(os.environ["HOME"]) / "config")
        known_hosts = paths.config_dir / "known_hosts_by_hand"
        lines = []
        for name in ("alpha", "beta"):
            cluster = bed.clusters[name]
            proxies[name] = LatencyProxy(cluster.port, args.rtt).start()
            ClusterStore(paths).add(ClusterProfile(name=name, **{**cluster.profile_fields(),
                                                                 "port": proxies[name].port}))
            lines.append(f"[127.0.0.1]:{proxies[name].port} {cluster.host_key_pub}\n")
            extras = [build_wheel(cluster.wheelhouse, WheelSpec(f"benchpkg{n:03d}", f"1.{n}")).name
                      for n in range(args.extra)]
        paths.known_hosts_file.write_text("".join(lines))
        known_hosts.write_text("".join(lines))
        alpha, beta = bed.clusters["alpha"], bed.clusters["beta"]
        names = " ".join(["tinybeta", "tinygamma", *(w.split("-")[0] for w in extras)])
        alpha.run_as_user("module load python/3.11.5 && python -m venv ~/venvs/bench-src && ~/venvs/bench-src/bin/pip "
                          f"install -q --disable-pip-version-check {' '.join(alpha.pip_args)} {names}")
        modules = "GCC/12.3.0 Python/3.11.3"

        ours, by_hand = [], []
        for run in range(args.runs):
            log = CommandLog()
            session = Session(paths)
            for name in ("alpha", "beta"):
                log.wrap(session.target(name).runner)
            began = time.perf_counter()
            copy = clone_environment(session, "alpha", "bench-src", "beta", name=f"bench-copy-{run}",
                                     progress=Progress(on_step=log.step)).environment
            total = time.perf_counter() - began
            session.close()
            assert copy.package_count >= args.extra + 3, copy.package_count
            ours.append((total, log))

            began = time.perf_counter()
            frozen = ssh(alpha, proxies["alpha"].port, bed.client_key, known_hosts,
                         "~/venvs/bench-src/bin/pip freeze --disable-pip-version-check")
            ssh(beta, proxies["beta"].port, bed.client_key, known_hosts,
                f"module load {modules} && python3 -m venv ~/venvs/hand-{run} && ~/venvs/hand-{run}/bin/pip install "
                f"-q --disable-pip-version-check {' '.join(beta.pip_args)} -r /dev/stdin", stdin=frozen)
            by_hand.append(time.perf_counter() - began)
    finally:
        for proxy in proxies.values():
            proxy.stop()
        bed.close()
        shutil.rmtree(os.environ["HOME"], ignore_errors=True)

    print(f"clone alpha -> beta: a venv of {args.extra + 3} packages, {args.rtt * 1000:.0f} ms round trip, "
          f"{args.runs} runs (each a fresh login)")
    print(f"{'run':>3} {'EnvDesk total':>14} {'installing':>16} {'creating venv':>16} {'talking':>16} "
          f"{'by hand (ssh)':>14} {'ratio':>6}")
    for run, ((total, log), hand) in enumerate(zip(ours, by_hand)):
        install, create = log.remote_work("install"), log.remote_work("create")
        talk = total - install - create
        print(f"{run:>3} {total:13.2f}s " + " ".join(f"{part:7.2f}s ({part / total:4.0%})"
                                                      for part in (install, create, talk))
              + f" {hand:13.2f}s {total / hand:5.2f}x")
    total, log = min(ours, key=lambda pair: pair[0])
    print(f"the fastest run ({total:.2f} s), step by step:")
    for text, took in log.phases():
        print(f"  {took:6.2f} s  {text}")
    waiting = log.waiting()
    print("its commands:", ", ".join(f"{sum(1 for label, _ in log.entries if classify(label) == kind)} {kind} "
                                     f"({log.seconds(kind):.2f} s)" for kind in ("login", "agent", "other commands")),
          f"(the agent's build, create to record, is one command; some run side by side); no command under way for "
          f"{total - waiting:.2f} s")
    for label, took in log.entries:
        if classify(label) == "other commands":
            print(f"    {took:6.2f} s  {label[:100]}")
    ours_median, hand_median = statistics.median(t for t, _ in ours), statistics.median(by_hand)
    print(f"median: EnvDesk {ours_median:.2f} s, by hand {hand_median:.2f} s ({ours_median / hand_median:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
