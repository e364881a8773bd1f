"""Helpers for tests that drive EnvDesk against the test bed: config folders, prompters, the CLI."""
from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shlex
import uuid
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from envdesk.backend.config import ClusterProfile, ClusterStore
from envdesk.backend.paths import AppPaths
from envdesk.backend.prompts import SecretAnswer, SecretRequest
from envdesk.backend.targets import Session


@dataclass
class ScriptedPrompter:
    """Answers login questions from a function and records every question asked."""

    answer: Callable[[SecretRequest], str | None] = lambda request: None
    trust: bool = False
    remember: bool = False
    asked: list[SecretRequest] = field(default_factory=list)
    host_keys_seen: list = field(default_factory=list)

    def ask_secret(self, request: SecretRequest) -> SecretAnswer | None:
        self.asked.append(request)
        value = self.answer(request)
        return None if value is None else SecretAnswer(value, self.remember)

    def confirm_host_key(self, cluster, identity) -> bool:
        self.host_keys_seen.append(identity)
        return self.trust


def extra_cluster(testbed, login_shell: str):
    """A cluster like alpha with a user of its own whose login shell is `login_shell`, for a module fixture:
    it fails under CI=true when the test bed cannot make it, and skips elsewhere."""
    import pytest
    from testbed import TestBedUnavailable
    try:
        return testbed.login_shell_cluster(login_shell)
    except TestBedUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"no cluster with login shell {login_shell} under CI: {exc}", pytrace=False)
        pytest.skip(str(exc))


def config_for(folder: Path, cluster) -> AppPaths:
    """A config folder with one profile, for `cluster` (an extra cluster, see extra_cluster), its host key trusted."""
    paths = AppPaths(folder)
    ClusterStore(paths).add(ClusterProfile(name=cluster.name, **cluster.profile_fields()))
    folder.mkdir(parents=True, exist_ok=True)
    with open(paths.known_hosts_file, "a") as handle:
        handle.write(cluster.known_hosts_line() + "\n")
    return paths


def raw_exec(cluster, key: Path, command: str, timeout: float = 60) -> tuple[int, str, str]:
    """Send `command` as is in an exec request, as a user's ssh does (sshd runs it with the user's login shell,
    which reads the user's dotfiles): its exit status, stdout and stderr."""
    import paramiko
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(cluster.host, cluster.port, cluster.user, key_filename=str(key), look_for_keys=False,
                   allow_agent=False, timeout=20)
    try:
        _, out, err = client.exec_command(command, timeout=timeout)
        stdout, stderr = out.read().decode(), err.read().decode()
        return out.channel.recv_exit_status(), stdout, stderr
    finally:
        client.close()


def make_config(folder: Path, testbed, names=("alpha", "beta"), *, trusted=True, **overrides) -> AppPaths:
    """A config folder with a profile per named test-bed cluster (host keys trusted unless told otherwise)."""
    paths = AppPaths(folder)
    store = ClusterStore(paths)
    for name in names:
        cluster = testbed.clusters[name]
        fields = {**cluster.profile_fields(), **overrides.get(name, {})}
        store.add(ClusterProfile(name=name, **fields))
        if trusted:
            folder.mkdir(parents=True, exist_ok=True)
            with open(paths.known_hosts_file, "a") as handle:
                handle.write(cluster.known_hosts_line() + "\n")
    return paths


def session_for(paths: AppPaths, prompter=None) -> Session:
    return Session(paths, prompter or ScriptedPrompter())


def envdesk_command() -> list[str]:
    """The installed `envdesk` console script of the Python running the tests (what users run)."""
    scripts = Path(sysconfig.get_path("scripts"))
    for name in ("envdesk", "envdesk.exe"):
        if (scripts / name).exists():
            return [str(scripts / name)]
    found = shutil.which("envdesk")
    return [found] if found else [sys.executable, "-m", "envdesk"]


def run_cli(*args: str, config: Path, home: Path, timeout: float = 300,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real `envdesk` console script, with its own HOME (no ~/.ssh of the machine's user)."""
    base = envdesk_command()
    env = {**os.environ, "HOME": str(home)}
    env.pop("SSH_AUTH_SOCK", None)
    return subprocess.run([*base, "--config-dir", str(config), *args], capture_output=True, text=True,
                          env=env, timeout=timeout, stdin=subprocess.DEVNULL, cwd=cwd)


def cli_json(*args: str, config: Path, home: Path):
    result = run_cli(*args, "--json", config=config, home=home)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def unique(prefix: str) -> str:
    """An environment name no other test uses (the test bed's homes last the whole session)."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def canon(name: str) -> str:
    """A distribution name in its normalized form (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def packages_of(env, skip=("pip", "setuptools", "wheel")) -> dict[str, str]:
    """{normalized name: version} of an Environment, without the installer's own packages."""
    return {canon(p.name): p.version for p in env.packages if canon(p.name) not in skip}


MODULES = {"alpha": "python/3.11.5 uv", "beta": "GCC/12.3.0 Python/3.11.3"}
"""What a user of each test-bed cluster loads to reach its Python (and alpha's uv)."""
TOOLS = {"pip", "setuptools", "wheel", "distribute"}  # what each kind brings by itself, not the user's set


def freeze_lines(text: str) -> set[str]:
    """`pip freeze` / `uv pip freeze` output (or a requirements file) in one spelling for both tools: names
    normalized, comments and the installers' own packages left out."""
    lines = set()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = re.sub(r"^-e file://", "-e ", line)
        name = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)", line)
        if name and not line.startswith("-e") and canon(name.group(1)) in TOOLS:
            continue
        lines.add(canon(name.group(1)) + line[name.end():] if name and not line.startswith("-e") else line)
    return lines


def freeze(cluster, env_path: str) -> set[str]:
    """The referee for what an environment on a test-bed cluster holds: its installer's own freeze, asked as the
    cluster's user (`pip freeze --all` where it has pip, else `uv pip freeze`), in freeze_lines' spelling."""
    path = shlex.quote(env_path)
    return freeze_lines(cluster.run_as_user(
        f"module load {MODULES[cluster.name]} >/dev/null 2>&1; "
        f"if [ -x {path}/bin/pip ]; then {path}/bin/python -m pip freeze --all; "
        f"else uv pip freeze --python {path}/bin/python; fi").stdout)


def install_by_hand(cluster, env_path: str, *packages: str) -> None:
    """What a user types on a test-bed cluster to add packages outside EnvDesk: the environment's own pip, or uv
    pip where it has none, from the cluster's wheelhouse."""
    path, find = shlex.quote(env_path), " ".join(shlex.quote(arg) for arg in cluster.pip_args)
    wanted = " ".join(shlex.quote(package) for package in packages)
    cluster.run_as_user(f"module load {MODULES[cluster.name]} >/dev/null 2>&1; set -e; "
                        f"if [ -x {path}/bin/pip ]; then {path}/bin/python -m pip install -q {find} {wanted}; "
                        f"else uv pip install -q --python {path}/bin/python {find} {wanted}; fi")


def freeze_here(env: Path) -> set[str]:
    """The referee for what an environment on this computer holds: `uv pip freeze` of it, in freeze_lines'
    spelling."""
    return freeze_lines(subprocess.run(["uv", "pip", "freeze", "--python", str(env / "bin" / "python")],
                                       capture_output=True, text=True, check=True, timeout=300).stdout)


def _listening(socket_path: Path) -> bool:
    """Whether something accepts connections on the Unix socket (ssh-agent makes the file before it listens)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(socket_path))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def running_ssh_agent(socket_path: Path) -> Iterator[dict[str, str]]:
    """A real ssh-agent listening on `socket_path` for the block; yields the environment that reaches it."""
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not _listening(socket_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        yield {**os.environ, "SSH_AUTH_SOCK": str(socket_path)}
    finally:
        agent.terminate()
        agent.wait(10)


def cancel_leaves_nothing_running(cluster, runner, seconds: int) -> None:
    """Cancel a remote `sleep SECONDS; touch CANARY` as soon as it starts: Cancelled is raised, and once
    the command would have ended, neither the canary nor the sleep exists on the cluster. The canary's name and
    the sleep's argument are this call's own, so that tests running at once (other workers, other sessions on
    the machine) neither see nor remove each other's."""
    from envdesk.backend.errors import Cancelled
    from envdesk.backend.runner import CancelToken
    canary = f"/tmp/{unique('envdesk-canary')}"
    sleep = f"sleep {seconds}.{uuid.uuid4().int % 10**6:06d}"  # GNU sleep takes a fraction: ps tells this one
    cluster.run_as_user(f"rm -f {canary}")
    token = CancelToken()

    def on_line(stream, line):
        if line == "started":
            token.cancel()

    try:
        runner.run(["sh", "-c", f"echo started; {sleep}; touch {canary}"], on_line=on_line, cancel=token)
    except Cancelled:
        pass
    else:
        raise AssertionError("the command was not cancelled")
    time.sleep(seconds + 1)
    assert cluster.run_as_user(f"test -e {canary}", check=False).returncode != 0, "the command kept running"
    alive = cluster.run_as_user(f"ps -u \"$USER\" -o stat=,args= | grep -v '^Z' | grep '{sleep}' "
                                "| grep -v grep", check=False)
    assert alive.stdout.strip() == ""


def this_computer_with_one_venv(folder: Path) -> tuple[Path, Path]:
    """(config folder, environments folder) where "This computer" lists one real venv, `plain`, holding
    tinyalpha 1.1 and Tiny_Beta 2.0 (as installed distributions)."""
    root = folder / "envs"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "plain")], check=True, timeout=300)
    site = next((root / "plain").glob("lib/python*/site-packages"))
    for name, version in [("tinyalpha", "1.1"), ("Tiny_Beta", "2.0")]:
        info = site / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nbody\n")
    config = folder / "config"
    config.mkdir()
    (config / "clusters.yaml").write_text(f"local:\n  env_roots: [{json.dumps(str(root))}]\n")
    return config, root


@contextlib.contextmanager
def mounted_tmpfs(mount: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at `mount` (a new folder) with `options` for the block: a file system of its own, whose
    free space and files nothing else changes. Fails under CI=true when it cannot be mounted, else skips."""
    import pytest
    mount.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"could not mount a tmpfs: {done.stderr}")
        pytest.skip(f"could not mount a tmpfs: {done.stderr}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


_SECRET_PROMPT = re.compile(r"\[[^\]\n]+\] [^\n]*: $")


def cli_on_a_terminal(*args: str, config: Path, home: Path, answer: Callable[[str], str],
                      env: dict[str, str] | None = None, timeout: float = 300,
                      yes_no: str = "n") -> tuple[int, str, list[str]]:
    """Run the real `envdesk` on a pseudo-terminal, typing answer(prompt) at each secret prompt and `yes_no` at
    each yes/no question; (exit status, everything it wrote, the secret prompts it showed)."""
    import pty  # POSIX only: the tests of this computer's side import this module on Windows too

    environ = {**os.environ, "HOME": str(home)}
    environ.pop("SSH_AUTH_SOCK", None)
    environ.update(env or {})
    master, slave = pty.openpty()
    process = subprocess.Popen([*envdesk_command(), "--config-dir", str(config), *args], stdin=slave,
                               stdout=slave, stderr=slave, env=environ, start_new_session=True)
    os.close(slave)
    transcript, pending, prompts = "", "", []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096).decode("utf-8", errors="replace")
            except OSError:  # EIO: the program closed the terminal
                break
            if not chunk:
                break
            transcript += chunk
            pending += chunk
            if _SECRET_PROMPT.search(pending):
                prompts.append(pending.splitlines()[-1])
                os.write(master, (answer(prompts[-1]) + "\n").encode())
                pending = ""
            elif pending.endswith("[y/N] "):
                os.write(master, f"{yes_no}\n".encode())
                pending = ""
        else:
            raise AssertionError(f"envdesk still running after {timeout} s:\n{transcript}")
        return process.wait(timeout), transcript.replace("\r\n", "\n"), prompts
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)


def openssh_home(monkeypatch) -> str:
    """Set HOME to the account's home and return it: OpenSSH's ~ and %d are the account's home, whatever $HOME
    says, so a comparison with what `ssh` expands needs both to agree."""
    import pwd
    home = pwd.getpwuid(os.getuid()).pw_dir
    monkeypatch.setenv("HOME", home)
    return home
