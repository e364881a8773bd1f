"""Benchmark: file-system (metadata) operations of one listing on the cluster, counted by the kernel, and
what they would cost on a shared file system where each takes about 1 ms (Lustre, GPFS under load).

    python tests/bench/fs_ops.py [--envs 50] [--packages 100] [--project-envs 50] [--project-packages 200]

As root: it starts the SSH test bed, builds --envs real venvs with --packages real wheels each, and
attaches strace (trace=%file plus getdents64) to the test bed's sshd, so every process of the next
connection is traced. EnvDesk lists twice over new connections: cold (the first listing ever, no EnvDesk
cache on the cluster) and warm (again, nothing changed). The baselines are `pip list --format json` and
`uv pip list --python ENV --format json` once per environment over one connection, traced the same way.

Operations are split by the path they name: inside a package's dist-info folder (per package), elsewhere
inside an environment (per environment), and the rest (interpreter start, imports, searching the roots).
The projection is fixed + per-environment x envs + per-package x envs x packages, at 1 ms each.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.remote_trace import Call, is_sshd, parse_trace, sshd_traced  # noqa: E402


@dataclass(frozen=True)
class Split:
    """Operations of one run, split by where they point."""

    package: int
    environment: int
    fixed: int
    lookups: int   # of all three, the calls that looked a path up by name
    command: int   # everything the connection ran besides sshd (login shell, modules, the program)

    @property
    def total(self) -> int:
        return self.package + self.environment + self.fixed

    def projected(self, envs: int, packages: int, measured_envs: int, measured_packages: int) -> float:
        """Operations of a listing of `envs` environments of `packages` packages each."""
        return (self.fixed + self.environment / measured_envs * envs
                + self.package / measured_packages * envs * packages)


def split(calls: list[Call], everything: list[Call], env_paths: list[str]) -> Split:
    roots = tuple(path + "/" for path in env_paths)
    inside = [call for call in calls if call.path.startswith(roots) or call.path in env_paths]
    package = sum(1 for call in inside if ".dist-info" in call.path)
    return Split(package, len(inside) - package, len(calls) - len(inside), sum(call.lookup for call in calls),
                 len(everything))


def runs_python(program: str) -> bool:
    """The process executed a Python interpreter (not a shell whose command line mentions one)."""
    return os.path.basename(program.split(" ")[0]).startswith("python")


def is_agent(program: str) -> bool:
    """A Python reading its program from standard input (`python3 -`): how EnvDesk runs its agent."""
    words = program.split(" ")
    return runs_python(program) and len(words) >= 2 and words[1] == "-"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--envs", type=int, default=50)
    parser.add_argument("--packages", type=int, default=100)
    parser.add_argument("--project-envs", type=int, default=50)
    parser.add_argument("--project-packages", type=int, default=200)
    args = parser.parse_args()
    os.environ["HOME"] = tempfile.mkdtemp(prefix="envdesk-bench-")
    work = Path(os.environ["HOME"])

    from bench.bench_bed import make_envs, make_wheels, uv_program
    from bench.ssh_lister import list_over_ssh
    from envdesk.backend.operations.listing import list_environments
    from envdesk.backend.targets import Session
    from envdesk_fixtures import make_config
    from testbed import TestBed

    bed = TestBed.start()
    try:
        alpha = bed.clusters["alpha"]
        envs = make_envs(alpha, make_wheels(bed.base / "bench-wheels", args.packages), args.envs)
        dist_infos = sum(len(list(Path(env).glob("lib/python3*/site-packages/*.dist-info"))) for env in envs)
        uv = uv_program(alpha)
        paths = make_config(work / "config", bed, ["alpha"])
        runs: dict[str, Split] = {}
        syscalls: dict[str, collections.Counter] = {}
        for label in ("EnvDesk, cold", "EnvDesk, warm"):
            with sshd_traced(alpha, work / f"{label[-4:]}.trace") as out:
                session = Session(paths)
                listing = list_environments(session, "alpha")
                session.close()
            assert sum(env.package_count for env in listing.environments if env.path in envs) == dist_infos
            trace = parse_trace(out)
            out.unlink()  # tens of MB
            agent = trace.select(is_agent)
            assert agent, f"no agent process in the trace; programs: {trace.programs()}"
            runs[label] = split(agent, trace.select(lambda p: not is_sshd(p)), envs)
            syscalls[label] = collections.Counter(call.name for call in agent)
        for label, command, program in (
                ("pip list per env", "{env}/bin/python -m pip list --disable-pip-version-check --format json",
                 lambda p: runs_python(p) and p.split(" ")[1:3] == ["-m", "pip"]),
                ("uv pip list per env", uv + " pip list --python {env} --format json",
                 lambda p: p.split(" ")[0] == uv)):
            with sshd_traced(alpha, work / f"{label[:2]}.trace") as out:
                answer = list_over_ssh(alpha.port, alpha.user, str(alpha.identity_file), str(paths.known_hosts_file),
                                       command, envs)
            assert sum(answer.packages) == dist_infos, (label, answer.packages[:3])
            trace = parse_trace(out)
            out.unlink()  # tens of MB
            runs[label] = split(trace.select(program), trace.select(lambda p: not is_sshd(p)), envs)
    finally:
        bed.close()

    wanted = (args.project_envs, args.project_packages)
    print(f"one listing of {args.envs} environments, {dist_infos} dist-info folders in all "
          f"({dist_infos // args.envs} per environment, pip and setuptools included); counted by strace on the "
          f"test bed's sshd (trace=%file + getdents64)")
    print(f"{'':22}{'ops':>7}{'per pkg':>9}{'per env':>9}{'fixed':>7}{'lookups':>9}{'command':>9}"
          f"{f'at 1 ms, {wanted[0]}x{wanted[1]}':>19}")
    for label, run in runs.items():
        projected = run.projected(*wanted, args.envs, dist_infos)
        print(f"{label:22}{run.total:7}{run.package / dist_infos:9.2f}{run.environment / args.envs:9.1f}"
              f"{run.fixed:7}{run.lookups:9}{run.command:9}{projected / 1000:17.1f} s")
    for label in ("EnvDesk, cold", "EnvDesk, warm"):
        ours = runs[label].projected(*wanted, args.envs, dist_infos)
        ratios = ", ".join(f"{name} {runs[name].projected(*wanted, args.envs, dist_infos) / ours:.1f}x"
                           for name in ("pip list per env", "uv pip list per env"))
        print(f"projected ratio to {label}: {ratios} (baseline ops / EnvDesk ops)")
    for label, counts in syscalls.items():
        print(f"{label} by call: " + ", ".join(f"{name} {count}" for name, count in counts.most_common()))
    print("lookups: the ops that looked a path up by name (the rest act on an open file or folder: fstat, "
          "getdents64, reopening /proc/self/fd/N)")
    print("ops: the program's own (EnvDesk: the `python3 -` agent process; pip: every `python -m pip`; uv: every "
          "uv and the Python it asks about the environment);\n    command: every process the connection ran "
          "besides sshd (login shell, Lmod, the program)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
