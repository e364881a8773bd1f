"""Benchmark: the agent's start on a cluster, from the bootstrap to its answer, for one small listing and one
create's begin, against `python -I -S -c pass` measured in the same run.

    python tests/bench/agent_start.py [--runs 20] [--python PATH] [--before REV] [--no-valgrind]

Each call is run the way a cluster runs it once it keeps the agent: the bootstrap (agent_store.bootstrap_script)
on the standard input of `python -I -S -`, reading the stored agent and the code compiled from it, in a
throwaway HOME holding one venv. The agent is stored and compiled first by the real first calls (the storing
script, then a bootstrap that compiles it), untimed. Times are the best and the median of --runs interleaved
runs; where valgrind is installed, the instructions of one run each (callgrind), which stay steady on a busy
machine. `python -I -S -c "import json"` is the floor: every call reads and writes JSON. --before REV runs
the agent and bootstrap of that git revision beside the work tree's (e.g. HEAD).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Callable

from envdesk.backend import agent_client, agent_store
from envdesk.backend.protocol import ANSWER_MARKER, LOCK_SUFFIX

REPO = Path(__file__).resolve().parents[2]
JSON_FLOOR = "import json"  # what any agent run needs (its settings and answer are JSON): the floor


class Variant:
    """One version of the agent: its listing and write scripts, store part and bootstrap maker."""

    def __init__(self, label: str, parts: Callable[[str], str], store: ModuleType) -> None:
        self.label, self.store = label, store
        original = agent_client.agent_part
        agent_client.agent_part = parts  # type: ignore[assignment]  # agent_script reads the parts through it
        try:
            self.agents = {write: agent_client.agent_script.__wrapped__(write) for write in (False, True)}
        finally:
            agent_client.agent_part = original  # type: ignore[assignment]
        self.store_part = parts(agent_client.STORE_PART)
        self.code: dict[bool, str] = {}


def work_tree() -> Variant:
    return Variant("now", agent_client.agent_part, agent_store)


def revision(rev: str) -> Variant:
    """The agent parts and agent_store.py of a git revision (read with git show; nothing is checked out)."""
    def show(path: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:{path}"], check=True,
                              capture_output=True, text=True).stdout

    spec = importlib.util.spec_from_loader("envdesk.backend._agent_store_bench", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "envdesk.backend"
    exec(compile(show("backend/agent_store.py"), f"{rev}:agent_store.py", "exec"), module.__dict__)
    return Variant(rev, lambda name: show(f"backend/agent/{name}"), module)


def run(python: str, script: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-I", "-S", "-"], input=script, capture_output=True,
                          text=True, env={"HOME": str(home), "PATH": os.environ["PATH"]}, check=False)


def answer(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith(ANSWER_MARKER)]
    assert len(lines) == 1, stdout
    return json.loads(lines[0][len(ANSWER_MARKER):])


class Bed:
    """A throwaway HOME with ~/venvs/one (a real venv) and the settings of the two calls timed."""

    def __init__(self, python: str) -> None:
        self.python = python
        self.home = Path(tempfile.mkdtemp(prefix="envdesk-agent-start-"))
        self.root = self.home / "venvs"
        subprocess.run([python, "-m", "venv", "--without-pip", str(self.root / "one")], check=True)
        self.new = self.root / "new"
        self.settings = {False: json.dumps({"roots": [str(self.root)]}),
                         True: json.dumps({"action": "begin", "path": str(self.new), "roots": [str(self.root)],
                                           "create": True, "operation": "create"})}

    def clean(self) -> None:
        """Undo a begin: the new folder and its lock."""
        for path in (self.new, Path(str(self.new) + LOCK_SUFFIX)):
            shutil.rmtree(path, ignore_errors=True)

    def prepare(self, variant: Variant) -> None:
        """Store the variant's agents and have them compiled, as the first two calls to a cluster do."""
        for write, agent in variant.agents.items():
            digest = variant.store.agent_digest(agent)
            stored = run(self.python, variant.store.storing_script(agent, self.settings[write], variant.store_part),
                         self.home)
            assert variant.store.reports_stored(stored.stdout, digest), stored.stderr
            self.clean()
            compiled = run(self.python, variant.store.bootstrap_script(agent, self.settings[write]), self.home)
            variant.code[write] = variant.store.reported_code(compiled.stdout, digest)
            assert variant.code[write], compiled.stdout + compiled.stderr
            self.clean()

    def script(self, variant: Variant, write: bool) -> str:
        return variant.store.bootstrap_script(variant.agents[write], self.settings[write], variant.code[write])

    def call(self, variant: Variant, write: bool) -> float:
        """Seconds of one call's process; its answer checked (the right answer, from the kept code)."""
        script = self.script(variant, write)
        began = time.perf_counter()
        result = run(self.python, script, self.home)
        took = time.perf_counter() - began
        got = answer(result.stdout)
        assert (got.get("ok") and got.get("token")) if write else \
            [env["name"] for env in got["environments"]] == ["one"], result.stdout + result.stderr
        assert agent_store.CODE_MARKER not in result.stdout, "the kept code was compiled again"
        self.clean()
        return took


def instructions(argv: list[str], stdin: str, env: dict[str, str]) -> int:
    """Instructions of one run under callgrind (steady under load)."""
    result = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
                            input=stdin, capture_output=True, text=True, env=env, check=True)
    return int(re.findall(r"Collected : (\d+)", result.stderr)[-1])


def report(figures: dict[str, float], unit: str, extra: dict[str, str] | None = None) -> None:
    """One line per figure, each but python's own start with its ratio to it and what it takes beyond it."""
    for name, figure in figures.items():
        line = f"{name:24s} {figure:7.1f} {unit}{(extra or {}).get(name, '')}"
        if name != "pass":
            line += (f"  {figure / figures['pass']:4.2f}x python -I -S -c pass, "
                     f"{figure - figures['pass']:6.1f} {unit} beyond it")
        print(line)


def label(variant: Variant, write: bool) -> str:
    return f"{variant.label} {'begin' if write else 'listing'}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--python", default=sys.executable, help="the cluster's Python (default: this one)")
    parser.add_argument("--before", metavar="REV", help="also run the agent of this git revision")
    parser.add_argument("--no-valgrind", action="store_true")
    args = parser.parse_args()
    bed = Bed(args.python)
    try:
        variants = [revision(args.before)] if args.before else []
        variants.append(work_tree())
        for variant in variants:
            bed.prepare(variant)
        times: dict[str, list[float]] = {"pass": [], JSON_FLOOR: []}
        for _ in range(args.runs):
            for name in ("pass", JSON_FLOOR):
                began = time.perf_counter()
                subprocess.run([args.python, "-I", "-S", "-c", name], check=True)
                times[name].append(time.perf_counter() - began)
            for variant in variants:
                for write in (False, True):
                    times.setdefault(label(variant, write), []).append(bed.call(variant, write))
        counts: dict[str, int] = {}
        if shutil.which("valgrind") and not args.no_valgrind:
            env = {"HOME": str(bed.home), "PATH": os.environ["PATH"]}
            for name in ("pass", JSON_FLOOR):
                counts[name] = instructions([args.python, "-I", "-S", "-c", name], "", env)
            for variant in variants:
                for write in (False, True):
                    counts[label(variant, write)] = instructions(
                        [args.python, "-I", "-S", "-"], bed.script(variant, write), env)
                    bed.clean()
    finally:
        shutil.rmtree(bed.home, ignore_errors=True)
    print(f"agent start to answer on {args.python} (-I -S), one venv; best / median of {args.runs} runs")
    report({name: min(values) * 1000 for name, values in times.items()}, "ms",
           {name: f" / {statistics.median(values) * 1000:6.1f} ms" for name, values in times.items()})
    if counts:
        print("instructions (callgrind, one run each)")
        report({name: count / 1e6 for name, count in counts.items()}, "M")
    return 0


if __name__ == "__main__":
    sys.exit(main())
