"""Benchmark: making an environment from pinned local wheels with the `envdesk` CLI (create, and import of a
requirements file as EnvDesk exports a uv environment) against doing it by hand with uv (`uv venv` +
`uv pip install -r`) and with `python -m venv` + `pip install -r`, on This computer and over SSH on the
test bed's alpha.

    python tests/bench/create_speed.py [--wheels 30] [--runs 5] [--rtt 0] [--only local|ssh] [--also DIR ...]
                                       [--script VENV/bin/envdesk ...] [--no-valgrind]
                                                                 (as root: the SSH part starts the test bed)

Every figure is the whole process (the CLI, or the hand-typed commands, over a new SSH connection on the
cluster), the median of --runs, each way measured in turn in the same run; then the ratios EnvDesk/uv and
EnvDesk/(venv+pip). Over SSH a second figure is what the window's user waits for: EnvDesk's create_environment
run in this process with one Session whose connection is open and whose cluster was probed once (by an untimed
first create), against the same `uv venv` + `uv pip install -r` sent as one command on one open paramiko
connection, in the same bash login shell with the same modules loaded as EnvDesk's build.
The wheels are the test bed's own (tests/testbed/wheels.py) plus generated ones of the same kind, offered with
--no-index --find-links like a cluster's wheel store. uv and python come first on PATH for everyone, so
EnvDesk and the hand-typed commands run the same uv. --also DIR adds EnvDesk run from another source tree (a
copy of the repository as it was, say), measured in the same run; --script PATH adds an `envdesk` console
script installed elsewhere (the built wheel in a venv of its own, as users install it, without this machine's
site-packages and their .pth files). The two floor lines are this Python starting and importing EnvDesk's
command line, and starting and importing only the standard modules such a command line needs. Where valgrind
is installed, the local part also counts the instructions of each EnvDesk command line's own process
(callgrind, one run each: steady on a busy machine, where its times are not); what it starts (the agent, uv)
runs outside the count.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

Command = Callable[[str], list[list[str]]]
"""For an environment name, the commands (run one after another) that make it."""
UV, PIP = "uv venv + uv pip install -r", "python -m venv + pip install -r"
STANDARD_MODULES = ("argparse", "dataclasses", "json", "logging", "pathlib", "subprocess", "typing")
"""What any command line of EnvDesk's kind imports from Python's standard library, EnvDesk's own code aside."""


def envdesk_from(source: Path, folder: Path) -> list[str]:
    """The `envdesk` command run from a source tree: its packages laid out as pyproject.toml maps them."""
    import tomllib

    mapping = tomllib.loads((source / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for package, where in sorted(mapping.items()):
        shutil.copytree(source / where, folder.joinpath(*package.split(".")), dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(folder)!r}); from envdesk.launch import main; "
                                  "sys.exit(main())"]


def envdesks(args: argparse.Namespace, work: Path) -> dict[str, list[str]]:
    """The EnvDesk commands to measure, by label: the installed one, then one per --also source tree."""
    from envdesk_fixtures import envdesk_command

    found = {"": envdesk_command()}
    for number, source in enumerate(args.also or []):
        found[f" [{Path(source).name}]"] = envdesk_from(Path(source).resolve(), work / f"also-{number}")
    for script in args.script or []:
        found[f" [{Path(script).parent.parent.name}]"] = [str(Path(script).resolve())]
    return found


def make_wheelhouse(folder: Path, count: int) -> list[str]:
    """The test bed's wheels plus generated ones up to `count` pinned packages: the pins."""
    from testbed.wheels import WHEELS, WheelSpec, build_wheel

    folder.mkdir(parents=True)
    newest: dict[str, WheelSpec] = {}
    for spec in WHEELS:
        if spec.requires_python and "<" in spec.requires_python:
            continue
        build_wheel(folder, spec)
        newest[spec.name] = max(newest.get(spec.name, spec), spec, key=lambda s: tuple(map(int, s.version.split("."))))
    specs = list(newest.values())
    for number in range(count - len(specs)):
        spec = WheelSpec(f"benchpkg{number:02d}", f"1.{number}")
        build_wheel(folder, spec)
        specs.append(spec)
    for path in [folder, *folder.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)   # the cluster's user reads them too
    return [f"{spec.name}=={spec.version}" for spec in specs]


def timed(commands: list[list[str]], env: dict[str, str]) -> float:
    began = time.perf_counter()
    for argv in commands:
        result = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"failed: {shlex.join(argv)}\n{result.stdout}{result.stderr}")
    return time.perf_counter() - began


def measure(ways: dict[str, Command], runs: int, env: dict[str, str], clean: Callable[[str], None]) -> dict[str, float]:
    """The median seconds of each way, measured in turn (one warm-up each first: caches as a user has them)."""
    seconds: dict[str, list[float]] = {label: [] for label in ways}
    for round_ in range(runs + 1):
        for label, way in ways.items():
            name = f"b{uuid.uuid4().hex[:8]}"
            took = timed(way(name), env)
            clean(name)
            if round_:
                seconds[label].append(took)
    return {label: statistics.median(values) for label, values in seconds.items()}


def report(title: str, medians: dict[str, float], runs: int) -> None:
    print(f"{title} (median of {runs})")
    for label, value in medians.items():
        bases = ((UV, "uv"), (PIP, "venv+pip")) if label.startswith("EnvDesk") else ()
        ratios = "".join(f"  {value / medians[base]:5.2f}x {short}" for base, short in bases if base in medians)
        print(f"  {label:44s} {value:6.3f} s{ratios}")


def envdesk_ways(envdesk: dict[str, list[str]], target: str, requirements: Path, imported: Path,
                 extra: list[str]) -> dict[str, Command]:
    """`envdesk env create` and `envdesk env import` of each EnvDesk to measure (`extra`: their options)."""
    ways: dict[str, Command] = {}
    for label, command in envdesk.items():
        ways[f"EnvDesk create{label}"] = lambda name, command=command: [
            [*command, "env", "create", target, name, "--kind", "uv", "--requirements", str(requirements), *extra]]
        ways[f"EnvDesk import{label}"] = lambda name, command=command: [
            [*command, "env", "import", target, str(imported), "--name", name, *extra]]
    return ways


def local_ways(envdesk: dict[str, list[str]], config: Path, root: Path, wheels: Path, requirements: Path,
               imported: Path) -> dict[str, Command]:
    find = ["--no-index", "--find-links", str(wheels)]
    configured = {label: [*command, "--config-dir", str(config)] for label, command in envdesk.items()}
    return {
        **envdesk_ways(configured, "local", requirements, imported, []),
        UV: lambda name: [
            ["uv", "venv", str(root / name)],
            ["uv", "pip", "install", "--python", str(root / name / "bin" / "python"), *find, "-r", str(requirements)]],
        PIP: lambda name: [
            [sys.executable, "-m", "venv", str(root / name)],
            [str(root / name / "bin" / "pip"), "install", *find, "-r", str(requirements)]],
        "(floor: python + EnvDesk's imports)": lambda name: [
            [sys.executable, "-c", "import envdesk.commands"]],
        "(floor: python + the standard modules only)": lambda name: [
            [sys.executable, "-c", f"import {', '.join(STANDARD_MODULES)}"]],
    }


def bench_local(args: argparse.Namespace, work: Path, wheels: Path, requirements: Path, imported: Path,
                env: dict[str, str]) -> None:
    root, config = work / "local-envs", work / "local-config"
    root.mkdir()
    config.mkdir()
    (config / "clusters.yaml").write_text(
        f"clusters: []\nlocal:\n  env_roots: [{root}]\n  pip_args: [--no-index, --find-links, {wheels}]\n")
    ways = local_ways(envdesks(args, work), config, root, wheels, requirements, imported)
    def clean(name: str) -> None:
        shutil.rmtree(root / name, ignore_errors=True)

    medians = measure(ways, args.runs, env, clean)
    report("This computer", medians, args.runs)
    app_medians = in_the_app(config, "local", str(root), lambda name: timed(ways[UV](name), env),
                             requirements.read_text().split(), args.runs, clean)
    report("This computer, in the app (create_environment in a running process, as the window's worker runs it)",
           app_medians, args.runs)
    if shutil.which("valgrind") and not args.no_valgrind:
        counts = {label: instructions(way(f"v{uuid.uuid4().hex[:8]}")[0], env)
                  for label, way in ways.items() if label.startswith("EnvDesk")}
        print("This computer, instructions of the command line's own process (callgrind, one run each; the "
              "programs it starts run outside it, uncounted)")
        for label, count in counts.items():
            print(f"  {label:44s} {count / 1e6:8.1f} M")


def instructions(argv: list[str], env: dict[str, str]) -> int:
    """Instructions of one run of `argv`'s own process under callgrind (steady on a busy machine, where times are
    not); its child processes run as usual, uncounted."""
    result = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv], env=env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"failed under valgrind: {shlex.join(argv)}\n{result.stderr[-2000:]}")
    return int(re.findall(r"Collected : (\d+)", result.stderr)[-1])


def open_client(port: int, user: str, key: Path, known_hosts: Path) -> Any:
    """A paramiko connection logged in with the key, the host key checked against `known_hosts`."""
    import paramiko

    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect("127.0.0.1", port=port, username=user, key_filename=str(key), allow_agent=False,
                   look_for_keys=False)
    return client


def run_on(client: Any, command: str) -> None:
    """Run one command on an open connection and wait for it; a failure stops the benchmark."""
    _stdin, stdout, stderr = client.exec_command(command)
    out = stdout.read()
    if stdout.channel.recv_exit_status() != 0:
        error = stderr.read().decode(errors="replace")
        raise SystemExit(f"failed: {command}\n{out.decode(errors='replace')}{error}")


def in_the_app(config: Path, target: str, root: str, by_hand: Callable[[str], None], pins: list[str], runs: int,
               clean: Callable[[str], None]) -> dict[str, float]:
    """Median seconds of a create as the window's user waits for it: EnvDesk's create_environment run in this
    (already started) process on one Session, the target probed by an untimed first create (over SSH: its
    connection open), and `by_hand` (the hand-typed uv commands); in turn, a round each."""
    from envdesk.backend.operations.create import CreateRequest, create_environment
    from envdesk.backend.paths import AppPaths
    from envdesk.backend.targets import Session

    session = Session(AppPaths(config))

    def envdesk(name: str) -> None:
        request = CreateRequest(name=name, kind="uv", root=root, packages=list(pins))
        create_environment(session, target, request)

    ways: dict[str, Callable[[str], None]] = {"EnvDesk create_environment": envdesk, UV: by_hand}
    seconds: dict[str, list[float]] = {label: [] for label in ways}
    try:
        for round_ in range(runs + 1):
            for label, way in ways.items():
                name = f"b{uuid.uuid4().hex[:8]}"
                began = time.perf_counter()
                way(name)
                took = time.perf_counter() - began
                clean(name)
                if round_:
                    seconds[label].append(took)
    finally:
        session.close()
    return {label: statistics.median(values) for label, values in seconds.items()}


def bench_ssh(args: argparse.Namespace, work: Path, wheels: Path, requirements: Path, imported: Path,
              env: dict[str, str]) -> None:
    from bench.latency_proxy import LatencyProxy
    from envdesk_fixtures import make_config
    from testbed import TestBed

    bed = TestBed.start()
    proxy = None
    try:
        alpha = bed.clusters["alpha"]
        port = alpha.port
        if args.rtt:
            proxy = LatencyProxy(alpha.port, args.rtt).start()
            port = proxy.port
        config = work / "ssh-config"
        make_config(config, bed, ["alpha"], trusted=False,
                    alpha={"pip_args": ["--no-index", "--find-links", str(wheels)], "port": port})
        known = config / "known_hosts"
        known.write_text(f"[127.0.0.1]:{port} {alpha.host_key_pub}\n")
        alpha.run_as_user("mkdir -p ~/bench")
        modules = shlex.join([*alpha.python_modules, *([alpha.uv_module] if alpha.uv_module else [])])
        find = f"--no-index --find-links {shlex.quote(str(wheels))}"
        req = shlex.quote(str(requirements))
        ssh = ["ssh", "-i", str(alpha.identity_file), "-p", str(port), "-o", f"UserKnownHostsFile={known}",
               "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
               f"{alpha.user}@127.0.0.1"]

        def login_shell(script: str) -> str:
            return f"bash -lc {shlex.quote(f'module load {modules} && {script}')}"

        def by_hand(script: str) -> list[str]:
            return [*ssh, login_shell(script)]

        def uv_by_hand(name: str) -> str:
            return f"uv venv ~/bench/{name} && uv pip install --python ~/bench/{name}/bin/python {find} -r {req}"

        configured = {label: [*command, "--config-dir", str(config)] for label, command in envdesks(args, work).items()}
        ways: dict[str, Command] = {
            **envdesk_ways(configured, "alpha", requirements, imported, ["--root", "~/bench"]),
            UV: lambda name: [by_hand(uv_by_hand(name))],
            PIP: lambda name: [by_hand(
                f"python3 -m venv ~/bench/{name} && ~/bench/{name}/bin/pip install {find} -r {req}")],
        }

        def clean(name: str) -> None:
            alpha.run_as_user(f"rm -rf ~/bench/{name}")

        medians = measure(ways, args.runs, env, clean)
        latency = f", {args.rtt * 1000:.0f} ms round trip" if args.rtt else ""
        report(f"Over SSH (test bed's alpha{latency}; every way opens its own connection)", medians, args.runs)
        client = open_client(port, alpha.user, alpha.identity_file, known)
        try:
            open_medians = in_the_app(config, "alpha", "~/bench",
                                      lambda name: run_on(client, login_shell(uv_by_hand(name))),
                                      requirements.read_text().split(), args.runs, clean)
        finally:
            client.close()
        report(f"Over SSH, connection open (the app's create{latency}; one Session, probed once, and one paramiko "
               "connection)", open_medians, args.runs)
    finally:
        if proxy is not None:
            proxy.stop()
        bed.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wheels", type=int, default=30)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rtt", type=float, default=0.0, help="round trip added in front of sshd (seconds)")
    parser.add_argument("--only", choices=("local", "ssh"))
    parser.add_argument("--also", action="append", metavar="DIR", help="EnvDesk from this source tree too")
    parser.add_argument("--script", action="append", metavar="PATH",
                        help="an `envdesk` console script installed elsewhere too (e.g. the wheel in a venv)")
    parser.add_argument("--no-valgrind", action="store_true", help="no instruction counts (they take a while)")
    args = parser.parse_args()
    import uv

    work = Path(tempfile.mkdtemp(prefix="envdesk-bench-create-"))
    work.chmod(0o755)
    home = work / "home"
    home.mkdir()
    os.environ["HOME"] = str(home)
    os.environ.pop("SSH_AUTH_SOCK", None)
    # the real uv and this Python first on PATH (not a version manager's shims): the same for every way
    os.environ["PATH"] = os.pathsep.join([os.path.dirname(uv.find_uv_bin()), os.path.dirname(sys.executable),
                                          os.environ.get("PATH", "")])
    # No pip settings, as on most laptops: raw uv reads none, and EnvDesk then starts no Python to read them
    # (pip_settings); where they exist, EnvDesk's installs cost that Python's start (~25 ms) more.
    for name in [name for name in os.environ if name.startswith("PIP_")]:
        del os.environ[name]
    os.environ["PIP_CONFIG_FILE"] = os.devnull
    from bench.bytecode import compiled_environment

    env = compiled_environment(work / "bytecode")  # as an install has it (the warm-up round writes it)
    try:
        wheels = work / "wheels"
        pins = make_wheelhouse(wheels, args.wheels)
        requirements, imported = work / "requirements.txt", work / "imported.txt"
        requirements.write_text("".join(f"{pin}\n" for pin in pins))
        imported.write_text("# envdesk: kind=uv\n" + requirements.read_text())  # as exported from a uv environment
        requirements.chmod(0o644)
        version = subprocess.run(["uv", "--version"], capture_output=True, text=True).stdout.strip()
        print(f"{len(pins)} pinned wheels, {version}, Python {sys.version.split()[0]}")
        if args.only in (None, "local"):
            bench_local(args, work, wheels, requirements, imported, env)
        if args.only in (None, "ssh"):
            bench_ssh(args, work, wheels, requirements, imported, env)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
