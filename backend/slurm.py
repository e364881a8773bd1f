"""Builds on a compute node: where a cluster's login nodes limit long processes, the commands of a build run as
Slurm jobs (`srun`), with the same locks, snapshots and rollback as on the login node.

The profile decides (`build_on_compute_node`; unset, its preset's `login_node_limits` does), with the job's
account, partition, time limit, CPUs and memory. Only the commands that build (make the environment, install,
large updates) go to the compute node; EnvDesk's agent, which holds the lock, stays on the login node, and the
environment folder is on the file system both share. Each command is its own job step: srun runs it with the
login shell's environment (modules loaded, variables set) and passes its standard input on; the job reports
where it runs, and on cancel (or a broken connection) the job is cancelled by its name (`scancel`) and waited
for, so nothing keeps running when the half-made environment is removed or rolled back.
"""
from __future__ import annotations

import dataclasses
import logging
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from .errors import EnvDeskError, InvalidInput, NotFound
from .fileio import write_atomically
from .runner import CancelToken, CommandResult, LineCallback, Runner, TrustDecision, join_command

if TYPE_CHECKING:
    from .capabilities import Capabilities
    from .config import ClusterProfile
    from .hostkeys import ServerIdentity
    from .inventory import Environment
    from .presets import LoginNodeLimits
    from .snippets import Place
    from .targets import Target

log = logging.getLogger(__name__)

DEFAULT_TIME = "01:00:00"
"""A build job's time limit when the profile gives none: long enough for large installs, short enough to be
scheduled soon (backfill)."""
LARGE_UPDATE = 5
"""An update that adds or upgrades at least this many packages (or upgrades everything) is a build."""
JOB_PREFIX = "envdesk-build-"
NODE_MARKER = "ENVDESK-SLURM-JOB "
# Runs on the compute node before the command itself: says which job and node it is, then becomes the command.
_REPORT_NODE = f'echo "{NODE_MARKER}${{SLURM_JOB_ID:-?}} $(hostname)" >&2; exec "$@"'
_QUEUED = re.compile(r"^srun: job (\d+) queued and waiting for resources")
_ALLOCATED = re.compile(r"^srun: job \d+ has been allocated resources$")
_TASK_EXITED = re.compile(r"^srun: error: \S+: tasks? [\d,-]+: Exited with exit code \d+\n?", re.M)
_TIME_LIMIT = re.compile(r"DUE TO TIME LIMIT", re.I)
_NO_SRUN = re.compile(r"srun: (command )?not found|exec: srun: not found", re.I)
CANCEL_WAIT = 60  # seconds scancel's job is waited for (its processes end within Slurm's KillWait)


@dataclass(frozen=True)
class BuildJob:
    """The Slurm job a build's commands run in: what the profile asks for (None: the site's default)."""

    account: str | None = None
    partition: str | None = None
    time: str = DEFAULT_TIME
    cpus: int | None = None
    memory: str | None = None

    def srun_options(self, name: str) -> list[str]:
        """srun's options for one command of the build, named `name` (so that scancel can find it)."""
        options = [f"--job-name={name}", "--nodes=1", "--ntasks=1", f"--time={self.time}", "--export=ALL"]
        options += [f"--account={self.account}"] if self.account else []
        options += [f"--partition={self.partition}"] if self.partition else []
        options += [f"--cpus-per-task={self.cpus}"] if self.cpus else []
        options += [f"--mem={self.memory}"] if self.memory else []
        return options


def login_node_limits(profile: ClusterProfile | None) -> LoginNodeLimits | None:
    """What the profile's preset says about its login nodes (None: no preset, or it says nothing)."""
    if profile is None or not profile.preset:
        return None
    from .presets import get_preset
    try:
        return get_preset(profile.preset).login_node_limits
    except NotFound:
        return None


def builds_on_compute_node(profile: ClusterProfile | None) -> bool:
    """Whether builds on this cluster run as Slurm jobs: the profile's choice, else its preset's (never on this
    computer)."""
    if profile is None:
        return False
    if profile.build_on_compute_node is not None:
        return profile.build_on_compute_node
    limits = login_node_limits(profile)
    return limits is not None and limits.build_on_compute_node


def build_job(profile: ClusterProfile | None) -> BuildJob | None:
    """The job a build on this cluster runs in, or None when builds stay on the login node."""
    if profile is None or not builds_on_compute_node(profile):
        return None
    return BuildJob(account=profile.slurm_account, partition=profile.build_partition,
                    time=profile.build_time or DEFAULT_TIME, cpus=profile.build_cpus, memory=profile.build_memory)


def _account_required(profile: ClusterProfile) -> bool:
    if not profile.preset:
        return False
    from .presets import get_preset
    try:
        return get_preset(profile.preset).slurm_account_required
    except NotFound:
        return False


def on_compute_node(target: Target, on_step: Callable[[str], None], *, large: bool = True) -> Target:
    """`target` as a build uses it: with a runner that runs each command as a Slurm job when its profile says so
    (and the work is `large`), else `target` itself. `on_step` hears where the job is (queued, running where)."""
    job = build_job(target.profile) if large else None
    if job is None or target.profile is None:
        return target
    if not job.account and _account_required(target.profile):
        raise InvalidInput(f"Builds on {target.label} run as Slurm jobs, and its jobs need an account (allocation).",
                           f"Set it with: envdesk cluster edit {target.name} --account ALLOCATION (or in the "
                           "cluster's settings), or build on the login node: --build-on-login-node.")
    return dataclasses.replace(target, runner=SlurmRunner(target.runner, job, on_step))


def large_update(added: int, upgraded: int, upgrade_all: bool) -> bool:
    """Whether an update installs enough to count as a build (see LARGE_UPDATE)."""
    return upgrade_all or added + upgraded >= LARGE_UPDATE


def cancel_job(runner: Runner, name: str) -> None:
    """Cancel the user's jobs called `name` and wait until Slurm holds none of them any more (at most
    CANCEL_WAIT seconds): their processes are gone then. Best effort: the cluster may be unreachable."""
    name_option = join_command([f"--name={name}"])
    rounds = CANCEL_WAIT * 2  # squeue twice a second: no more load on the cluster's controller than a user's watch
    body = (f'envdesk_user=$(id -un); scancel {name_option} --user="$envdesk_user" 2>/dev/null; envdesk_i=0; '
            f'while [ -n "$(squeue -h -o %i {name_option} --user="$envdesk_user" 2>/dev/null)" ] '
            f'&& [ "$envdesk_i" -lt {rounds} ]; do sleep 0.5; envdesk_i=$((envdesk_i+1)); done; true')
    try:
        runner.run_shell(body, timeout=CANCEL_WAIT + 60, label=f"scancel {name_option}")
    except EnvDeskError as exc:
        log.warning("could not cancel the Slurm job %s on %s: %s", name, runner.name, exc.message)


def job_script(env: Environment, place: Place) -> str:
    """A ready batch script (job.sh) that runs a Python program in `env` where it is (`place`, see
    snippets.place_of): #SBATCH lines with the profile's account, the environment's modules, its activation, and
    `python my_script.py` to replace (the Use it tab's Slurm snippet)."""
    from .snippets import slurm_snippet
    text = slurm_snippet(env, place)
    if text is None:
        raise InvalidInput("This computer has no Slurm: job scripts are for environments on a cluster.")
    return text


def write_job_script(path: Path, text: str) -> None:
    """Save a job script to `path` on this computer, executable where the file system has such a mode."""
    write_atomically(path, text, private=False)
    try:
        mode = path.stat().st_mode
        path.chmod(mode | (mode & 0o444) >> 2)  # executable by whoever may read it
    except OSError as exc:  # a file system without modes: the script runs with `sbatch job.sh` all the same
        log.info("could not make %s executable: %s", path, exc)


class SlurmRunner(Runner):
    """Runs each command as a Slurm job step (`srun`) through the cluster's own runner; everything else (the
    agent, files, the probe) goes to the login node as before."""

    def __init__(self, inner: Runner, job: BuildJob, on_step: Callable[[str], None]) -> None:
        self.inner = inner
        self.job = job
        self.on_step = on_step
        self.name = inner.name
        self.has_module_system = inner.has_module_system
        self.may_lack_packages = inner.may_lack_packages
        self.local_cache = inner.local_cache
        self.jobs_started = 0

    def run(self, argv: Sequence[str], *, modules: Sequence[str] = (), stdin: bytes | None = None,
            on_line: LineCallback | None = None, cancel: CancelToken | None = None,
            timeout: float | None = None, env: Mapping[str, str] | None = None) -> CommandResult:
        """Run `argv` as one job on a compute node (modules loaded and `env` set on the login node first, which
        srun passes on); cancelled, failed or cut off, the job is cancelled and waited for."""
        name = JOB_PREFIX + secrets.token_hex(6)
        command = ["srun", *self.job.srun_options(name), "bash", "-c", _REPORT_NODE, "envdesk-build", *argv]
        self.jobs_started += 1
        try:
            result = self.inner.run(command, modules=modules, stdin=stdin, on_line=self._lines(on_line),
                                    cancel=cancel, timeout=timeout, env=env)
        except BaseException:
            cancel_job(self.inner, name)
            raise
        if not result.ok:
            cancel_job(self.inner, name)  # srun may end before its job (killed, or lost its controller)
            # srun's own "task 0: Exited with exit code N" says less than the command's last words, which
            # the error message quotes (the exit status stays)
            stderr = _TASK_EXITED.sub("", result.stderr)
            reason = self._why(result)
            result = dataclasses.replace(result, stderr=stderr.rstrip("\n") + f"\n{reason}\n" if reason else stderr)
        return result

    def _lines(self, on_line: LineCallback | None) -> LineCallback:
        """`on_line` without srun's own chatter; where the job is goes to on_step."""
        def line(stream: str, text: str) -> None:
            if stream == "stderr":
                queued = _QUEUED.match(text)
                if queued:
                    self.on_step(f"Waiting in the Slurm queue for a compute node (job {queued.group(1)})")
                    return
                if text.startswith(NODE_MARKER):
                    job_id, _, node = text[len(NODE_MARKER):].partition(" ")
                    self.on_step(f"Running on the compute node {node or '?'} (Slurm job {job_id})")
                    return
                if _ALLOCATED.match(text):
                    return
            if on_line is not None:
                on_line(stream, text)
        return line

    def _why(self, result: CommandResult) -> str:
        """A plain last line for the ways a job fails that srun words poorly (it becomes the error message)."""
        if _TIME_LIMIT.search(result.stderr):
            return (f"The Slurm job reached its time limit ({self.job.time}) and was stopped: give builds on "
                    f"{self.name} a longer time limit (envdesk cluster edit {self.name} --time HH:MM:SS).")
        if result.exit_status == 127 and _NO_SRUN.search(result.stderr):
            return (f"{self.name} has no srun (Slurm), so builds cannot run on a compute node there: turn it off "
                    f"(envdesk cluster edit {self.name} --build-on-login-node).")
        return ""

    def run_shell(self, body: str, *, modules: Sequence[str] = (), stdin: bytes | None = None,
                  on_line: LineCallback | None = None, cancel: CancelToken | None = None,
                  timeout: float | None = None, label: str = "") -> CommandResult:
        """Bash text as a job too (see run)."""
        return self.run(["bash", "-c", body], modules=modules, stdin=stdin, on_line=on_line, cancel=cancel,
                        timeout=timeout)

    def run_python(self, source: str, args: Sequence[str], *, timeout: float | None = None,
                   cancel: CancelToken | None = None, utf8: bool = False) -> CommandResult:
        """EnvDesk's agent: on the login node."""
        return self.inner.run_python(source, args, timeout=timeout, cancel=cancel, utf8=utf8)

    def probe(self, cancel: CancelToken | None = None) -> Capabilities:
        return self.inner.probe(cancel)

    def python_command(self, caps: Capabilities) -> str:
        return self.inner.python_command(caps)

    def env_python(self, path: str) -> str:
        return self.inner.env_python(path)

    def marker_environment(self, python: str | None, cancel: CancelToken | None = None) -> dict[str, str]:
        return self.inner.marker_environment(python, cancel)

    def matches(self, profile: ClusterProfile | None) -> bool:
        return self.inner.matches(profile)

    def route(self) -> list[str]:
        return self.inner.route()

    def route_notes(self) -> list[str]:
        return self.inner.route_notes()

    def trust_route(self, decide: TrustDecision, *, replace: bool = False) -> list[tuple[ServerIdentity, str]]:
        return self.inner.trust_route(decide, replace=replace)

    def connect(self, cancel: CancelToken | None = None) -> None:
        self.inner.connect(cancel)

    def close(self) -> None:
        """Nothing of its own to release: the connection is the cluster's, shared with the session."""
