"""Benchmark: This computer's environments through the `envdesk` command line against the loops a person
would run instead (`pip list`, `pip freeze`, `uv pip list`, `uv pip freeze`, once per environment).

    python tests/bench/local_loops.py [--envs 15] [--extra 20] [--runs 3] [--also DIR ...]

Every environment is a real venv (`python -m venv`, so it has pip) under a throwaway HOME's ~/venvs,
holding the test bed's wheels (tinyalpha, tinybeta, tinygamma, tinyold) plus `--extra` more tiny wheels
made by the same builder. EnvDesk gets a fresh --config-dir. Each figure is a whole-process time, the best
of `--runs` (the runs are interleaved, so a busy moment hits every figure alike); pip's version check is
off (PIP_DISABLE_PIP_VERSION_CHECK=1), which only helps pip. Before timing, EnvDesk's package lists are
checked against `uv pip freeze` for every environment, so the figures compare the same answer. EnvDesk
runs from compiled bytecode, as an install does (see bytecode.py). --also DIR adds EnvDesk run from another
source tree (a copy of the repository as it was, say; see create_speed.envdesk_from), measured in the same run
with a config folder of its own, and the ratio of each of its figures to the installed EnvDesk's.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bytecode import compiled_environment  # noqa: E402
from bench.create_speed import envdesk_from  # noqa: E402
from testbed.wheels import WHEELS, WheelSpec, build_all, build_wheel  # noqa: E402

BIN = Path(sys.executable).parent  # the real scripts, not a version manager's shims (they add ~50 ms each)


def tool(name: str) -> str:
    """The console script installed beside this Python, else the one on PATH."""
    beside = BIN / name
    return str(beside) if beside.exists() else (shutil.which(name) or sys.exit(f"{name} is not installed"))


def make_environments(home: Path, count: int, extra: int) -> list[Path]:
    """`count` venvs with pip under home/venvs, each holding the test bed's wheels and `extra` more."""
    wheels = home.parent / "wheels"
    build_all(wheels)
    names = sorted({spec.name for spec in WHEELS if not spec.only_on})
    for number in range(extra):
        spec = WheelSpec(f"benchpkg{number:03d}", f"1.{number}")
        build_wheel(wheels, spec)
        names.append(spec.name)
    uv = tool("uv")
    made = []
    for number in range(count):
        env = home / "venvs" / f"env{number:02d}"
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
        subprocess.run([uv, "pip", "install", "-q", "--python", str(env), "--no-index", "--find-links",
                        str(wheels), *names[: len(names) - number % 3]], check=True)  # not all alike
        made.append(env)
    return made


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    began = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    took = time.perf_counter() - began
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed: {done.stderr}")
    return took, done.stdout


def frozen(text: str) -> set[str]:
    return {line.strip().lower() for line in text.splitlines() if "==" in line}


def check_same_answer(envdesk: list[str], envs: list[Path], ours: dict[str, str], env: dict[str, str]) -> None:
    """EnvDesk lists every environment, each with the packages `uv pip freeze` finds (the referee)."""
    done = subprocess.run([*envdesk, "env", "list", "local", "--json"], capture_output=True, text=True, env=ours)
    listed = json.loads(done.stdout)
    assert sorted(item["path"] for item in listed) == sorted(str(p) for p in envs), (listed, done.stderr)
    for path in envs:
        shown = json.loads(timed([*envdesk, "env", "show", "local", path.name, "--json"], ours)[1])
        packages = {f"{p['name']}=={p['version']}".lower() for p in shown["packages"]}
        referee = frozen(timed([tool("uv"), "pip", "freeze", "--python", str(path)], env)[1])
        assert packages == referee, (path, packages ^ referee)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--envs", type=int, default=15)
    parser.add_argument("--extra", type=int, default=20, help="generated packages per environment, beyond the "
                        "test bed's four")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--also", action="append", metavar="DIR", help="EnvDesk from this source tree too")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="envdesk-bench-"))
    home = work / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    ours = compiled_environment(work / "bytecode", env)  # pip and uv keep their own (installed) bytecode
    env.pop("VIRTUAL_ENV", None)
    try:
        envs = make_environments(home, args.envs, args.extra)
        envdesk = [tool("envdesk"), "--config-dir", str(work / "config")]
        uv = tool("uv")
        check_same_answer(envdesk, envs, ours, env)  # also writes EnvDesk's bytecode, as an install has it
        timed([*envdesk, "env", "export", "local", envs[0].name], ours)

        def each(make: Callable[[Path], list[str]], environ: dict[str, str]) -> Callable[[], list[float]]:
            return lambda: [timed(make(path), environ)[0] for path in envs]

        def envdesk_loops(command: list[str], label: str = "") -> dict[str, Callable[[], list[float]]]:
            """The loops of the EnvDesk `command` (the installed one, or an --also tree's), named with `label`."""
            return {
                f"envdesk env list local --json{label}": lambda: [
                    timed([*command, "env", "list", "local", "--json"], ours)[0]],
                f"envdesk env show local ENV --json{label}": each(
                    lambda p: [*command, "env", "show", "local", p.name, "--json"], ours),
                f"envdesk env export local ENV{label}": each(
                    lambda p: [*command, "env", "export", "local", p.name], ours),
            }

        loops: dict[str, Callable[[], list[float]]] = {
            **envdesk_loops(envdesk),
            "pip list": each(lambda p: [str(p / "bin" / "pip"), "list"], env),
            "pip freeze": each(lambda p: [str(p / "bin" / "pip"), "freeze"], env),
            "uv pip list --python ENV": each(lambda p: [uv, "pip", "list", "--python", str(p)], env),
            "uv pip freeze --python ENV": each(lambda p: [uv, "pip", "freeze", "--python", str(p)], env),
        }
        also = {f" [{Path(source).name}]": [*envdesk_from(Path(source).resolve(), work / f"also-{number}"),
                                             "--config-dir", str(work / f"config-also-{number}")]
                for number, source in enumerate(args.also or [])}
        for label, other in also.items():
            check_same_answer(other, envs, ours, env)  # and its bytecode written, as for the installed one
            timed([*other, "env", "export", "local", envs[0].name], ours)
            loops.update(envdesk_loops(other, label))
        loop_best = {name: float("inf") for name in loops}  # the whole loop (sum over the environments)
        one_best = {name: float("inf") for name in loops}  # one environment (median over them)
        for _ in range(args.runs):
            for name, measure in loops.items():
                times = measure()
                loop_best[name] = min(loop_best[name], sum(times))
                one_best[name] = min(one_best[name], statistics.median(times))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    packages = 4 + args.extra
    print(f"This computer: {args.envs} venvs with pip and {packages - 2}-{packages} packages each; "
          f"best of {args.runs} runs, whole processes")
    print(f"{'EnvDesk':34} {'time':>8}   {'baseline (same run)':42} {'time':>8} {'ratio':>7}")
    rows = [("envdesk env list local --json", loop_best, [f"{b}, once per env" for b in (
                "uv pip list --python ENV", "uv pip freeze --python ENV", "pip list", "pip freeze")]),
            ("envdesk env show local ENV --json", one_best, ["uv pip list --python ENV", "pip list"]),
            ("envdesk env export local ENV", one_best, ["pip freeze", "uv pip freeze --python ENV"])]
    for ours, best, baselines in rows:
        for number, baseline in enumerate(baselines):
            label, mine = (ours, f"{best[ours]:7.3f}s") if number == 0 else ("", "")
            took = best[baseline.replace(", once per env", "")]
            print(f"{label:34} {mine:>8}   {baseline:42} {took:7.3f}s {took / best[ours]:6.2f}x"
                  f"{' faster' if took >= best[ours] else ' SLOWER'}")
    print("(show and export: one environment, the median over the environments; list: the whole loop)")
    for label in also:
        for command, best, _ in rows:
            took = best[command + label]
            print(f"{command + label:44} {took:7.3f}s   the installed EnvDesk: {best[command]:6.3f}s, "
                  f"{best[command] / took:4.2f}x this")
    list_goal = loop_best["envdesk env list local --json"] < loop_best["uv pip list --python ENV"]
    export_goal = one_best["envdesk env export local ENV"] < one_best["pip freeze"]
    print(f"goal, listing faster than uv's loop: {'met' if list_goal else 'MISSED'}; "
          f"export faster than pip freeze: {'met' if export_goal else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
