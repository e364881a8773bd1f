"""Benchmark: peak memory of EnvDesk's agent on the cluster while it lists every environment, against
`pip list` and `uv pip list` reading one environment, and a bare Python start, measured in the same run.

    python tests/bench/agent_memory.py [--envs 50] [--packages 100]

As root: it starts the SSH test bed and builds --envs real venvs with --packages real wheels each. The
agent cannot be run under /usr/bin/time (EnvDesk starts it), so the test bed measures from outside: a
poller reads VmHWM (the kernel's high-water mark of resident memory) from /proc/PID/status of each
matching process of the cluster user every few milliseconds, and strace, attached to the test bed's
sshd, holds every exit of those connections' processes for 0.3 s, so the final value is always read.
"""
from __future__ import annotations

import argparse
import os
import pwd
import sys
import tempfile
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--envs", type=int, default=50)
    parser.add_argument("--packages", type=int, default=100)
    args = parser.parse_args()
    os.environ["HOME"] = tempfile.mkdtemp(prefix="envdesk-bench-")

    from bench.bench_bed import make_envs, make_wheels, uv_program
    from bench.remote_trace import PeakMemory, exits_delayed
    from bench.ssh_lister import list_over_ssh
    from envdesk.backend.operations.listing import list_environments
    from envdesk.backend.targets import Session
    from envdesk_fixtures import make_config
    from testbed import TestBed

    bed = TestBed.start()
    peaks: dict[str, int] = {}
    try:
        alpha = bed.clusters["alpha"]
        envs = make_envs(alpha, make_wheels(bed.base / "bench-wheels", args.packages), args.envs)
        uv = uv_program(alpha)
        paths = make_config(Path(os.environ["HOME"]) / "config", bed, ["alpha"])
        uid = pwd.getpwnam(alpha.user).pw_uid

        def measure(label: str, wanted: Callable[[list[str]], bool], run: Callable[[], object]) -> None:
            with exits_delayed(alpha), PeakMemory(uid, wanted) as memory:
                run()
            assert memory.peaks, f"{label}: the process was not seen"
            peaks[label] = max(memory.peaks.values())  # uv's forked child shows uv's command line until it execs

        def envdesk_lists() -> None:
            session = Session(paths)
            listing = list_environments(session, "alpha")
            session.close()
            assert sum(1 for env in listing.environments if env.path in envs) == args.envs

        def one_exec(command: str) -> Callable[[], object]:
            return lambda: list_over_ssh(alpha.port, alpha.user, str(alpha.identity_file),
                                         str(paths.known_hosts_file), command, [envs[0]])

        agent = lambda argv: argv[1:] == ["-"] and "python" in os.path.basename(argv[0])  # noqa: E731
        measure("EnvDesk agent, all envs, cold", agent, envdesk_lists)
        measure("EnvDesk agent, all envs, warm", agent, envdesk_lists)
        measure("pip list, one env", lambda argv: argv[1:3] == ["-m", "pip"],
                one_exec("{env}/bin/python -m pip list --disable-pip-version-check --format json"))
        measure("uv pip list, one env", lambda argv: argv[:1] == [uv],
                one_exec(uv + " pip list --python {env} --format json"))
        measure("python3 -c pass (login shell's)", lambda argv: argv == ["python3", "-c", "pass"],
                one_exec("bash --login -c 'exec python3 -c pass' && echo []"))
    finally:
        bed.close()

    print(f"peak resident memory (VmHWM) of one process on the cluster; {args.envs} environments x "
          f"{args.packages} packages (+pip, setuptools); read from /proc/PID/status by a test-bed poller, each "
          f"exit held 0.3 s by strace so the last value is read")
    baseline = peaks["pip list, one env"]
    for label, kilobytes in peaks.items():
        print(f"{label:36} {kilobytes / 1024:7.1f} MB   {kilobytes / baseline:5.2f}x pip list of one env")
    return 0


if __name__ == "__main__":
    sys.exit(main())
