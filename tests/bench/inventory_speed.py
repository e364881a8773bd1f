"""Benchmark: listing every environment through the agent (one command) against the usual way,
`pip list --format json` once per environment, over the same SSH connection with injected latency.

    python tests/bench/inventory_speed.py [--envs 20] [--rtt 0.05]      (as root: it starts the test bed)

Prints the time of each and the ratio; both are measured in the same run.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--envs", type=int, default=20)
    parser.add_argument("--rtt", type=float, default=0.05)
    args = parser.parse_args()
    os.environ["HOME"] = tempfile.mkdtemp(prefix="envdesk-bench-")

    from bench.latency_proxy import slow_cluster
    from envdesk.backend.inventory import read_inventory
    from envdesk.backend.targets import Session

    with slow_cluster(args.rtt) as (bed, paths):
        alpha = bed.clusters["alpha"]
        wheels = " ".join(alpha.pip_args)
        alpha.run_as_user(  # one real venv with pip and packages, copied (venvs run fine from a copy for this)
            "module load python/3.11.5 && python -m venv ~/bench/e1 && ~/bench/e1/bin/pip install -q %s tinybeta "
            "tinygamma && for i in $(seq 2 %d); do cp -a ~/bench/e1 ~/bench/e$i; done" % (wheels, args.envs))
        session = Session(paths)
        runner = session.target("slow").runner
        runner.connect()
        began = time.perf_counter()
        inventory = read_inventory(runner, ["~/bench"])
        agent_seconds = time.perf_counter() - began
        assert len(inventory.environments) == args.envs
        began = time.perf_counter()
        for env in inventory.environments:
            runner.run([f"{env.path}/bin/python", "-m", "pip", "list", "--format", "json"]).check("pip list")
        pip_seconds = time.perf_counter() - began
        session.close()
        print(f"{args.envs} environments, {args.rtt * 1000:.0f} ms round trip")
        print(f"EnvDesk agent, one command:      {agent_seconds:6.2f} s")
        print(f"pip list once per environment:   {pip_seconds:6.2f} s")
        print(f"ratio: the agent is {pip_seconds / agent_seconds:.0f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
