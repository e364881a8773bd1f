"""A real single-node Slurm for the test bed: munged, slurmctld and slurmd (Debian's slurm-wlm), this machine
the only node, in one partition `debug`.

    slurm = FakeSlurm.start(folder)      # SlurmUnavailable when this machine cannot run it
    slurm.queue(user)                    # the user's jobs Slurm still has (squeue)
    slurm.finished_jobs()                # what slurmctld's job completion log recorded
    slurm.stop()

The test-bed users reach it as real cluster users do: `srun`, `sbatch`, `squeue` and `scancel` read
/etc/slurm/slurm.conf (the default place; the file says it belongs to the test bed). The node is this machine
with the CPUs and memory `slurmd -C` finds; no cgroups (proctrack/linuxproc, task/none), no accounting
database: finished jobs are recorded by jobcomp/filetxt in a log of the bed's folder. Only one test session
of a machine runs it at a time (a lock in /run); what a crashed session left running is stopped first.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from . import util

CONF = Path("/etc/slurm/slurm.conf")
MARKER = "# envdesk test bed:"
LOCK = Path("/run/envdesk-testbed-slurm.lock")
STATE = Path("/run/envdesk-testbed-slurm.json")
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_RUN = Path("/run/munge")
PARTITION = "debug"
DAEMONS = {"slurmctld": "/usr/sbin/slurmctld", "slurmd": "/usr/sbin/slurmd", "munged": "/usr/sbin/munged"}
START_WAIT = 120.0  # seconds for the node to come up idle (a start-up limit, not a test's)


class SlurmUnavailable(RuntimeError):
    """This machine cannot run the test bed's Slurm (not root, not installed, another Slurm here ...)."""


@dataclass(frozen=True)
class FinishedJob:
    """One line of slurmctld's job completion log (jobcomp/filetxt)."""

    job_id: str
    user: str
    name: str
    state: str
    account: str
    partition: str
    nodes: str


def missing_prerequisites() -> list[str]:
    """Why Slurm cannot start here (empty when it can)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("the test bed's Slurm needs root (it runs slurmctld, slurmd and munged)")
    for path in DAEMONS.values():
        if not os.path.exists(path):
            problems.append(f"no {path} (apt-get install slurm-wlm munge)")
    for tool in ("srun", "sbatch", "squeue", "scancel", "sinfo", "munge", "unmunge"):
        if shutil.which(tool) is None:
            problems.append(f"no {tool} (apt-get install slurm-wlm munge)")
    if CONF.exists() and not CONF.read_text(errors="replace").startswith(MARKER):
        problems.append(f"{CONF} exists and is not the test bed's: this machine has a Slurm of its own")
    return problems


def _alive_as(pid: int, exe: str) -> bool:
    try:
        return util.is_alive(pid) and os.path.realpath(os.readlink(f"/proc/{pid}/exe")) == os.path.realpath(exe)
    except OSError:
        return False


def _node_line() -> tuple[str, str]:
    """This machine as slurmd sees it: (its node name, the NodeName line with its CPUs and memory)."""
    found = util.run([DAEMONS["slurmd"], "-C"]).stdout
    line = next((text for text in found.splitlines() if text.startswith("NodeName=")), "")
    match = re.match(r"NodeName=(\S+)", line)
    if match is None:
        raise SlurmUnavailable(f"slurmd -C did not describe this machine: {found!r}")
    return match.group(1), f"{line} NodeAddr=127.0.0.1 State=UNKNOWN"


class FakeSlurm:
    """Handle on the running Slurm; see the module docstring."""

    __test__ = False

    def __init__(self, folder: Path, lock: IO[str]) -> None:
        self.folder = folder
        self.node = ""
        self.jobcomp_log = folder / "jobcomp.log"
        self._lock = lock
        self._procs: dict[str, subprocess.Popen] = {}
        self._munged_pid: int | None = None
        self._closed = False

    # ------------------------------------------------------------ start and stop

    @classmethod
    def start(cls, folder: Path) -> FakeSlurm:
        """Write the configuration, start munged (unless one answers), slurmctld and slurmd, and wait until the
        node is idle. SlurmUnavailable when this machine cannot; any other failure says what the logs say."""
        problems = missing_prerequisites()
        if problems:
            raise SlurmUnavailable("; ".join(problems))
        lock = open(LOCK, "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            lock.close()
            raise SlurmUnavailable("another test session on this machine runs the test bed's Slurm") from exc
        _stop_leftovers()
        folder.mkdir(mode=0o755, parents=True, exist_ok=True)
        slurm = cls(folder, lock)
        try:
            slurm._start()
        except BaseException:
            slurm.stop()
            raise
        return slurm

    def _start(self) -> None:
        self._start_munge()
        self.node, node_line = _node_line()
        ctld_port, slurmd_port = util.free_ports(2)
        for sub in ("state", "spool"):
            (self.folder / sub).mkdir(mode=0o755, exist_ok=True)
        CONF.parent.mkdir(parents=True, exist_ok=True)
        CONF.write_text(f"{MARKER} {self.folder}\n" + "\n".join([
            "ClusterName=envdesk-testbed",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={ctld_port}", f"SlurmdPort={slurmd_port}",
            "SlurmUser=root", "SlurmdUser=root", "AuthType=auth/munge", "CredType=cred/munge",
            f"StateSaveLocation={self.folder / 'state'}", f"SlurmdSpoolDir={self.folder / 'spool'}",
            f"SlurmctldPidFile={self.folder / 'slurmctld.pid'}", f"SlurmdPidFile={self.folder / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.folder / 'slurmctld.log'}", f"SlurmdLogFile={self.folder / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "MpiDefault=none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
            "SchedulerType=sched/backfill", "ReturnToService=2", "KillWait=5",
            "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/filetxt", f"JobCompLoc={self.jobcomp_log}",
            node_line,
            f"PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
        ]) + "\n")
        CONF.chmod(0o644)
        for name, argv in (("slurmctld", [DAEMONS["slurmctld"], "-D", "-i", "-f", str(CONF)]),
                           ("slurmd", [DAEMONS["slurmd"], "-D", "-f", str(CONF)])):
            log = open(self.folder / f"{name}.out", "wb")
            self._procs[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                                 start_new_session=True)
            log.close()
            self._save_state()
        self._wait_idle()

    def _start_munge(self) -> None:
        if util.run(["sh", "-c", "munge -n | unmunge"], check=False).returncode == 0:
            return  # a munged answers already (the machine's own): use it, leave it running
        if not MUNGE_KEY.exists():
            MUNGE_KEY.parent.mkdir(parents=True, exist_ok=True)
            MUNGE_KEY.write_bytes(os.urandom(1024))
        shutil.chown(MUNGE_KEY, "munge", "munge")
        MUNGE_KEY.chmod(0o400)
        MUNGE_RUN.mkdir(mode=0o755, exist_ok=True)
        shutil.chown(MUNGE_RUN, "munge", "munge")
        util.run(["runuser", "-u", "munge", "--", DAEMONS["munged"], "--force"])
        pidfile = MUNGE_RUN / "munged.pid"
        deadline = time.monotonic() + 30
        while util.run(["sh", "-c", "munge -n | unmunge"], check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("munged started but does not answer (munge -n | unmunge)")
            time.sleep(0.1)
        try:
            self._munged_pid = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            self._munged_pid = None
        self._save_state()

    def _wait_idle(self) -> None:
        deadline = time.monotonic() + START_WAIT
        state = ""
        while time.monotonic() < deadline:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with status {proc.returncode}:\n{self.logs()}")
            found = util.run(["sinfo", "-h", "-N", "-n", self.node, "-o", "%T"], check=False)
            state = found.stdout.strip()
            if found.returncode == 0 and state.rstrip("*") == "idle":
                return
            time.sleep(0.2)
        raise RuntimeError(f"the Slurm node {self.node} is not idle ({state or 'no answer'}):\n{self.logs()}")

    def _save_state(self) -> None:
        pids = {name: proc.pid for name, proc in self._procs.items()}
        if self._munged_pid:
            pids["munged"] = self._munged_pid
        STATE.write_text(json.dumps({"pids": pids, "folder": str(self.folder)}))

    def stop(self) -> None:
        """Stop the daemons (and any job step left), remove the configuration; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for name in ("slurmd", "slurmctld"):
            proc = self._procs.get(name)
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        _stop_steps()
        if self._munged_pid and _alive_as(self._munged_pid, DAEMONS["munged"]):
            util.kill_and_wait([self._munged_pid], sig=15)
        if CONF.exists() and CONF.read_text(errors="replace").startswith(MARKER):
            CONF.unlink()
        STATE.unlink(missing_ok=True)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
        finally:
            self._lock.close()

    # ------------------------------------------------------------ what tests look at

    def logs(self) -> str:
        """The tails of the daemons' logs, for failure messages."""
        parts = []
        for name in ("slurmctld.log", "slurmd.log", "slurmctld.out", "slurmd.out"):
            path = self.folder / name
            if path.exists():
                parts.append(f"--- {name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    def queue(self, user: str) -> list[str]:
        """'JOBID NAME STATE' of every job Slurm still holds for `user` (pending, running, completing)."""
        found = util.run(["squeue", "-h", "-u", user, "-o", "%i %j %T"])
        return [line.strip() for line in found.stdout.splitlines() if line.strip()]

    def finished_jobs(self) -> list[FinishedJob]:
        """Every job that ended, as slurmctld's completion log has it (oldest first)."""
        try:
            text = self.jobcomp_log.read_text(errors="replace")
        except FileNotFoundError:
            return []
        jobs = []
        for line in text.splitlines():
            fields = dict(re.findall(r"(\w+)=(\S*)", line))
            jobs.append(FinishedJob(job_id=fields.get("JobId", ""), user=fields.get("UserId", "").split("(")[0],
                                    name=fields.get("Name", ""), state=fields.get("JobState", ""),
                                    account=fields.get("Account", ""), partition=fields.get("Partition", ""),
                                    nodes=fields.get("NodeList", "")))
        return jobs


def _stop_leftovers() -> None:
    """Stop the daemons a crashed session of the test bed left running (their pids are in the state file)."""
    try:
        state = json.loads(STATE.read_text())
    except (OSError, ValueError):
        state = {}
    for name, pid in (state.get("pids") or {}).items():
        if name in DAEMONS and isinstance(pid, int) and _alive_as(pid, DAEMONS[name]):
            util.kill_and_wait([pid], sig=15, timeout=15)
    _stop_steps()
    if CONF.exists() and CONF.read_text(errors="replace").startswith(MARKER):
        CONF.unlink()
    STATE.unlink(missing_ok=True)


def _stop_steps() -> None:
    """Kill the job step daemons (slurmstepd) still running once slurmd is gone: only the test bed's Slurm runs
    on this machine (missing_prerequisites refuses a machine with a Slurm of its own)."""
    steps = [pid for pid, info in util.process_table().items()
             if info["exe"] and os.path.realpath(info["exe"].removesuffix(" (deleted)")) == "/usr/sbin/slurmstepd"]
    if steps:
        util.kill_and_wait(steps)
