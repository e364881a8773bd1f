"""Test a connection step by step: the route, the login, what the target offers, its environments.

The same steps serve `envdesk cluster test` and the cluster dialog's Test connection button. A step
that fails ends the check; the failure is part of the result (with the steps that worked before it),
so both can show how far it got. Only a cancel is raised.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..capabilities import Capabilities
from ..config import ClusterProfile
from ..errors import Cancelled, EnvDeskError, InvalidInput
from ..inventory import Inventory, read_inventory
from ..module_spider import SPIDER_SECONDS
from ..targets import Session, Target
from .common import Progress


@dataclass(frozen=True)
class CheckStep:
    """One step of the check: what was checked, what was found, and whether it worked."""

    what: str
    found: str
    ok: bool = True

    def line(self) -> str:
        """The step as one line, for a list or a terminal."""
        return f"{'✓' if self.ok else '✗'} {self.what}: {self.found}"


@dataclass
class ConnectionCheck:
    """The steps that were taken, in order; `error` is why the last one failed (None when all worked)."""

    target: str
    label: str
    steps: list[CheckStep] = field(default_factory=list)
    capabilities: Capabilities | None = None
    inventory: Inventory | None = None
    error: EnvDeskError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _describe(caps: Capabilities) -> str:
    """What the probe found, in one line: the Python modules with what each needs loaded first (Lmod's spider),
    and the kind a new environment gets, with the preset's where it names one."""
    python = caps.tools.get("python3", "none")
    try:
        default = caps.default_kind()
        why = " (the cluster's preset)" if caps.preferred_kind else ""
    except InvalidInput as exc:  # no kind can be made: say why and what to do
        default, why = "none", f" ({exc.message} {exc.hint})"
    return (f"Python {caps.system_python or 'of unknown version'} ({python}); environment modules: "
            f"{'yes' if caps.has_modules else 'no'}; Python modules: "
            f"{', '.join(m.shown for m in caps.python_modules) or 'none'}{SPIDER_NOTE if caps.spider_gave_up else ''}; "
            f"uv: {'yes' if caps.uv() else 'no'}; kinds: {', '.join(caps.kinds()) or 'none'}; "
            f"new environments: {default}{why}")


SPIDER_NOTE = (f" (Lmod's module spider took longer than {SPIDER_SECONDS} s, so Python modules behind others may be "
               "missing: run 'module spider' once on the cluster, and Lmod keeps a spider cache in ~/.cache/lmod "
               "that makes the next look quick)")


def _scratch_target(session: Session, profile: ClusterProfile) -> Target:
    """A target for a profile that is not saved (yet): its own connection, kept only if the check works."""
    from ..ssh_runner import SSHRunner
    runner = SSHRunner(profile, session.prompter, session.hostkeys, local_cache=session.paths.cache_dir)
    return Target(profile.name, profile.name, runner, tuple(profile.roots), tuple(profile.pip_args), profile)


def check_connection(session: Session, target_name: str, progress: Progress | None = None, *,
                     profile: ClusterProfile | None = None) -> ConnectionCheck:
    """Check the target step by step, reporting each step before it runs.

    With `profile`, check that (unsaved) profile over a connection of its own instead of the saved
    target, so a form can be tested before it is saved; when the check works, that connection is kept
    for the profile once saved (Session.keep_tested).
    """
    progress = progress or Progress()
    target = _scratch_target(session, profile) if profile is not None else session.target(target_name)
    result = ConnectionCheck(target.name, target.label)
    runner = target.runner
    current = "Route"
    try:
        hops = runner.route()
        result.steps.append(CheckStep("Route", " -> ".join(hops) if hops else "this computer, no connection needed"))
        result.steps += [CheckStep("Route", note) for note in runner.route_notes()]
        if hops:
            current = "Login"
            progress.step(f"Connecting to {target.label}")
            runner.connect(cancel=progress.cancel)
            result.steps.append(CheckStep("Login", "server identity checked, login accepted"))
        current = "Tools"
        progress.step(f"Looking at what {target.label} offers")
        result.capabilities = runner.probe(progress.cancel)
        result.steps.append(CheckStep("Tools", _describe(result.capabilities)))
        current = "Environments"
        progress.step(f"Listing environments on {target.label}")
        result.inventory = read_inventory(runner, target.roots, cancel=progress.cancel)
        where = f" (Python {result.inventory.remote_python} on {result.inventory.host})" \
            if result.inventory.host else ""
        result.steps.append(CheckStep("Environments", f"{len(result.inventory.environments)} environment(s) "
                                                      f"found{where}"))
    except Cancelled:
        raise
    except EnvDeskError as exc:
        result.error = exc
        result.steps.append(CheckStep(current, exc.message, ok=False))
    finally:
        if profile is not None and result.ok:
            session.keep_tested(profile.name, runner)
        elif profile is not None:
            runner.close()
    return result
