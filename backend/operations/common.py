"""Shared by the operations: progress reporting, running steps, finding environments, locks."""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Callable

from ..agent_client import call_action
from ..capabilities import Capabilities
from ..errors import CommandFailed, EnvDeskError
from ..inventory import Environment, read_inventory
from ..probe import probe
from ..recipes import Step
from ..runner import CancelToken, CommandResult, LineCallback, command_failed
from ..targets import Session, Target


log = logging.getLogger(__name__)


def _ignore(_: str) -> None:
    pass


@dataclass
class Progress:
    """Where an operation reports what it does, streams output, and learns that it was cancelled."""

    on_step: Callable[[str], None] = _ignore
    on_line: LineCallback | None = None
    cancel: CancelToken = field(default_factory=CancelToken)

    def step(self, text: str) -> None:
        self.cancel.raise_if_cancelled()
        self.on_step(text)


_PLAIN_ERRORS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"disk quota exceeded|no space left on device", re.I),
     "The folder is full (disk quota exceeded). Delete old environments or files, or use project space."),
    (re.compile(r"no matching distribution found for (\S+)|because (\S+) was not found in the package registry|"
                r"no solution found", re.I),
     "A package could not be found in this target's package index or wheel store."),
    (re.compile(r"(\S+): command not found|No such file or directory: '?(\S+?)'?$", re.I),
     "A program EnvDesk needs is not installed there."),
    (re.compile(r"the following module\(s\) are unknown|unable to locate a modulefile", re.I),
     "A module could not be loaded: this target does not have it."),
    (re.compile(r"hash mismatch|do not match the hashes|hashes are required|hash-checking mode", re.I),
     "A downloaded file does not match the hash the imported file records: the file was changed, or the "
     "target's package store holds a different build. Nothing was installed from it."),
]


def explain(result: CommandResult) -> str:
    """A plain sentence for the most common ways a command fails."""
    text = result.stdout + "\n" + result.stderr
    for pattern, sentence in _PLAIN_ERRORS:
        if pattern.search(text):
            return sentence
    return ""


def run_step(target: Target, step: Step, progress: Progress, *, check: bool = True,
             failure: type[CommandFailed] = CommandFailed) -> CommandResult:
    """Run one step, streaming its output; raise `failure` (a CommandFailed) in plain words when it fails."""
    progress.step(step.what)
    result = target.runner.run(step.argv, modules=step.modules, on_line=progress.on_line,
                               cancel=progress.cancel)
    if check and not result.ok:
        raise command_failed(f"{step.what} failed on {target.label}", result, explain(result), failure)
    return result


def capabilities(session: Session, target: Target, progress: Progress) -> Capabilities:
    """What the target offers, probed once per session."""
    cached = session.capabilities.get(target.name)
    if cached is None:
        progress.step(f"Looking at what {target.label} offers")
        cached = probe(target, progress.cancel)
        session.capabilities[target.name] = cached
    return cached


def is_path(ref: str) -> bool:
    return ref.startswith(("/", "~"))


def find_environment(target: Target, ref: str, progress: Progress) -> Environment:
    """The environment named `ref` (or at that absolute path) on the target, read fresh."""
    progress.step(f"Reading {ref} on {target.label}")
    inventory = read_inventory(target.runner, target.roots, paths=[ref] if is_path(ref) else (),
                               cancel=progress.cancel)
    if is_path(ref) and len(inventory.environments) == 1:
        return inventory.environments[0]
    return inventory.find(ref)


@dataclass
class Reservation:
    """The lock an operation holds on one environment folder (the agent's `begin`), until finish or release.

    Only the holder's token can finish or release it, so a failed operation can never undo
    another laptop's work on the same environment. A lock whose client stopped (killed, crashed, its
    connection gone) is taken over by the next operation at once on the same login node, within
    about two minutes from another one (the agent decides; `answer["took_over"]` says so).
    """

    target: Target
    path: str
    roots: list[str]
    token: str
    answer: dict

    @classmethod
    def take(cls, target: Target, path: str, roots: list[str], **settings: object) -> "Reservation":
        # client_pid: on "This computer" the agent is this process's child, and the lock lives as long as
        # this process (on a cluster, as long as the SSH connection); heartbeat: keep the lock visibly
        # alive for other login nodes while the operation runs (see the agent's take_lock).
        answer = call_action(target.runner, "begin", path, roots, client_pid=os.getpid(), heartbeat=True,
                             **settings)
        if answer.get("took_over"):
            log.warning("%s on %s: %s", answer["path"], target.name, answer["took_over"])
        return cls(target, answer["path"], list(roots), answer["token"], answer)

    def finish(self, meta: dict | None = None) -> Environment:
        """Record `meta`, clear the being-built mark, release the lock; the environment as it is now."""
        answer = call_action(self.target.runner, "finish", self.path, self.roots, token=self.token,
                             **({"meta": meta} if meta else {}))
        return Environment.from_agent(answer["env"])

    def reset(self) -> None:
        """Empty the half-built environment to build it again, still holding the lock."""
        call_action(self.target.runner, "reset", self.path, self.roots, token=self.token)

    def release(self, *, remove_unfinished: bool = False) -> None:
        """Give the lock back (removing a half-built environment if asked); never hides the error at hand."""
        try:
            call_action(self.target.runner, "abort", self.path, self.roots, token=self.token,
                        created=remove_unfinished)
        except EnvDeskError as exc:
            log.warning("could not clean up %s on %s: %s", self.path, self.target.name, exc.message)
