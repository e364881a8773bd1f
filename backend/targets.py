"""Targets: "This computer" and each configured cluster, each owning one runner."""
from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

from .config import ClusterProfile, ClusterStore
from .paths import AppPaths
from .prompts import NoPrompter, Prompter
from .runner import Runner
from . import validate
from .validate import LOCAL_LABEL, LOCAL_TARGET

if TYPE_CHECKING:  # paramiko is loaded only when a cluster is used (the command line starts light)
    from .hostkeys import HostKeyStore



def check_folder(target_name: str, value: str) -> str:
    """A folder typed for a target, checked the way that target writes paths (this computer's own way, or
    the cluster's Linux one)."""
    return validate.local_folder(value) if target_name == LOCAL_TARGET else validate.remote_folder(value)


@dataclass(frozen=True)
class Target:
    """Where environments live: a name, how to show it, where to look, and how to run commands there."""

    name: str
    label: str
    runner: Runner
    roots: tuple[str, ...]
    pip_args: tuple[str, ...] = ()
    profile: ClusterProfile | None = None


class Session:
    """One user's open targets for the life of the app or the command: one connection per cluster."""

    def __init__(self, paths: AppPaths, prompter: Prompter | None = None, *, keep_agents: bool = False,
                 use_kept: bool = True) -> None:
        """`keep_agents`: keep a listing agent running on each cluster while its connection is open (the app:
        it lists often; see agent_session); `use_kept`: go through a cluster's kept connection where there is one
        (see kept_connection), not for the keeper itself."""
        self.paths = paths
        self.keep_agents = keep_agents
        self.use_kept = use_kept
        self.store = ClusterStore(paths)
        self.prompter: Prompter = prompter or NoPrompter()
        self._runners: dict[str, Runner] = {}
        self._tested: dict[str, Runner] = {}  # connections of forms tested before they were saved
        self.capabilities: dict[str, Any] = {}  # target name -> Capabilities, probed once
        self._lock = threading.Lock()

    @cached_property
    def hostkeys(self) -> HostKeyStore:
        """The servers this user trusts (~/.ssh/known_hosts and EnvDesk's own file)."""
        from .hostkeys import HostKeyStore
        return HostKeyStore(self.paths.known_hosts_file)

    def target(self, name: str) -> Target:
        """The target called `name` ('local' for this computer), its runner created on first use."""
        if name == LOCAL_TARGET:
            local = self.store.local_settings()
            return Target(LOCAL_TARGET, LOCAL_LABEL, self._runner(LOCAL_TARGET, None), tuple(local.roots),
                          tuple(local.pip_args))
        profile = self.store.get(name)
        return Target(profile.name, profile.name, self._runner(name, profile), tuple(profile.roots),
                      tuple(profile.pip_args), profile)

    def add_root(self, name: str, root: str) -> None:
        """Remember another environment folder for a target, so its environments are listed."""
        if name == LOCAL_TARGET:
            self.store.update_local_roots(root)
        else:
            self.store.edit(name, lambda profile: replace(profile, env_roots=[*profile.roots, root]))

    def _runner(self, name: str, profile: ClusterProfile | None) -> Runner:
        with self._lock:
            runner = self._runners.get(name)
            if runner is not None and not runner.matches(profile):  # the profile was edited: reconnect
                runner.close()
                runner = None
            if runner is None:
                tested = self._tested.pop(name, None)
                if tested is not None and tested.matches(profile):
                    runner = tested  # the connection the form was tested with: no second login (or code)
                else:
                    if tested is not None:
                        tested.close()
                    runner = self._local_runner() if profile is None else self._ssh_runner(profile)
                runner.keep_agent = self.keep_agents
                self._runners[name] = runner
            return runner

    def _local_runner(self) -> Runner:
        from .local_runner import LocalRunner  # loaded only for this computer (a cluster's command skips it)
        return LocalRunner(local_cache=self.paths.cache_dir)

    def _ssh_runner(self, profile: ClusterProfile) -> Runner:
        from . import kept_connection
        from .ssh_runner import SSHRunner
        kept = partial(kept_connection.dial_for, self.paths) if self.use_kept else None
        return SSHRunner(profile, self.prompter, self.hostkeys, local_cache=self.paths.cache_dir, kept=kept)

    def is_connected(self, name: str) -> bool:
        """Whether the target's connection is open now (no connection is made to tell)."""
        with self._lock:
            runner = self._runners.get(name)
        return runner is not None and bool(getattr(runner, "connected", False))

    def keep_tested(self, name: str, runner: Runner) -> None:
        """Keep the open connection of a profile tested before saving: if the profile is saved unchanged,
        it becomes the target's connection, so the user does not log in (and type a code) twice."""
        with self._lock:
            previous, self._tested[name] = self._tested.get(name), runner
        if previous is not None and previous is not runner:
            previous.close()

    def forget(self, name: str) -> None:
        """Close and drop a target's connection (after its profile changed or was removed)."""
        with self._lock:
            runner = self._runners.pop(name, None)
            self.capabilities.pop(name, None)
        if runner is not None:
            runner.close()

    def close(self) -> None:
        """Close every connection."""
        with self._lock:
            runners, self._runners = [*self._runners.values(), *self._tested.values()], {}
            self._tested = {}
        for runner in runners:
            runner.close()
