"""The health check: what around an environment changes what runs in it, each finding with what to do.

One agent run reads the environments with the facts around them (packages in the user's ~/.local that
Python puts first, conda's base switched on at login, where the installers' caches are, $SCRATCH); one more
command asks the module system whether each recorded module still exists, and uv or pip whether each
environment's packages have what they require. Each package's stated Requires-Python is read too (pip check
does not judge it), so a package made for another Python is found, and so is a package of the environment that a
module's copy on PYTHONPATH hides (what the modules put there is read with the environments, as EnvDesk recorded
it where they were loaded: operations/module_paths). Nothing is changed unless a fix
is asked for, and the only fixes offered are safe ones: moving the user's packages aside (never deleting
them) and telling conda to stop switching its base on at login.
"""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from ..agent_client import run_agent
from ..errors import InvalidInput, NotFound
from ..inventory import Environment
from ..protocol import STATE_BROKEN, STATE_INCOMPLETE
from ..provided import shadowed
from ..runner import join_command
from ..targets import Session, Target
from ..validate import canonical_name
from .common import Progress, capabilities, has_shell, is_path
from .requirement_check import Unmet, check_here, check_script, read_answers

MOVE_USER_SITE = "move-user-site"
CONDA_BASE_OFF = "conda-base-off"
_PYTHON_RE = re.compile(r"^\d+\.\d+$")


@dataclass(frozen=True)
class Finding:
    """One thing wrong around an environment (env "" when it is about the whole account)."""

    env: str
    code: str
    title: str
    detail: str
    advice: str
    fix: str = ""   # the id `fix_finding` takes, "" when EnvDesk cannot safely fix it for you

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Health:
    """What the check found on one target, and which environments it looked at."""

    target: str
    checked: tuple[str, ...]
    findings: tuple[Finding, ...]
    facts: dict[str, Any]

    def of(self, env: str) -> list[Finding]:
        """The findings about one environment, and those about the whole account."""
        return [finding for finding in self.findings if finding.env in (env, "")]

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "checked": list(self.checked),
                "findings": [finding.to_json() for finding in self.findings]}


def _names(packages: Sequence[dict[str, Any]]) -> dict[str, str]:
    return {canonical_name(str(p.get("name", ""))): str(p.get("version", "")) for p in packages}


def _user_site_findings(env: Environment, facts: dict[str, Any]) -> list[Finding]:
    """Packages of ~/.local that Python adds to the environment, where it reads them at all: in conda
    environments, before the environment's own (so they replace them), and in venvs that see the system's
    packages, after the environment's own (so they only add what it lacks); other venvs turn them off."""
    if facts.get("no_user_site") or not env.python or not (env.kind == "conda" or env.system_site_packages):
        return []
    short = ".".join(env.python.split(".")[:2])
    site = next((s for s in facts.get("user_sites") or () if s.get("python") == short), None)
    if not site or not site.get("packages"):
        return []
    user = _names(site["packages"])
    own = {canonical_name(p.name): p.version for p in env.packages}
    shadowed = sorted(name for name in user if name in own) if env.kind == "conda" else []
    leaking = sorted(name for name in user if name not in own)
    parts = []
    if shadowed:
        parts.append("these replace the environment's own: " + ", ".join(
            f"{name} {user[name]} (the environment has {own[name]})" for name in shadowed))
    if leaking:
        parts.append("these are added to it: " + ", ".join(f"{name} {user[name]}" for name in leaking))
    return [Finding(env.name, "user-site", f"Packages in {site['path']} change what runs in this environment",
                    f"Python {short} reads your own packages folder too, so " + "; ".join(parts) + ".",
                    "Move that folder aside (EnvDesk renames it; nothing is deleted, and you can rename it "
                    "back), or set PYTHONNOUSERSITE=1 before you run Python.",
                    f"{MOVE_USER_SITE}:{short}")]


def _module_findings(env: Environment, missing: set[str]) -> list[Finding]:
    gone = [module for module in env.modules if module in missing]
    if not gone:
        return []
    return [Finding(env.name, "module-gone", "Modules this environment needs are no longer on the cluster",
                    f"{', '.join(gone)} cannot be loaded any more (the cluster's software was upgraded or "
                    "removed), so the environment's Python may be gone too.",
                    "Copy the environment to this same cluster with a newer Python module (Copy to…, or export "
                    "it and import the file), check the copy, then delete this one.")]


def _python_finding(env: Environment) -> list[Finding]:
    """An environment that cannot run: the Python it was made from is gone, or its own python program is."""
    if not env.python_gone or not env.error:
        return []
    if "was made from" in env.error:
        return [Finding(env.name, "base-python-gone", "The Python this environment was made from is gone",
                        env.error, "Rebuild it: export it (or Copy to…) and import it again with a Python that is "
                        "still there, then delete this one.")]
    return [Finding(env.name, "python-gone", "This environment's python program is gone", env.error,
                    "Rebuild it: export it (or Copy to…) and import it again, then delete this one.")]


def _state_finding(env: Environment) -> list[Finding]:
    """An environment never finished, or broken in a way no other finding names (a change cut off midway, a
    rollback that failed, a home it cannot read): the listing marks it, and the doctor, which said "nothing wrong
    found" of it (a user trial), names it too."""
    if env.state == STATE_INCOMPLETE:
        return [Finding(env.name, "incomplete", "This environment was never finished", env.error or "",
                        "Delete it (envdesk env delete, or Delete in the window) and make it again.")]
    if env.state != STATE_BROKEN or env.python_gone or env.incomplete_packages or env.unreadable_packages:
        return []  # named by _python_finding, _half_installed_finding or _unreadable_finding
    if env.changing:
        return [Finding(env.name, "change-cut-off", "A change of this environment did not finish", env.error or "",
                        "Make any change of it with EnvDesk (envdesk env update, or the Packages tab): it puts the "
                        f"packages back first. Or revert to snapshot {env.changing.get('snapshot')} (envdesk env "
                        "revert, or the Snapshots tab).")]
    return [Finding(env.name, "broken", "This environment is broken", env.error or "",
                    "What the line above says, else rebuild it: export it (or Copy to…) and import it again, "
                    "then delete this one.")]


def _cache_findings(env: Environment, device: Any, facts: dict[str, Any]) -> list[Finding]:
    """uv hard-links a package's files from its cache when both are on one file system, and copies every
    file otherwise (slower, and the files count twice against a file quota)."""
    cache = next((c for c in facts.get("caches") or () if c.get("tool") == "uv"), None)
    if env.kind != "uv" or not cache or device is None or cache.get("device") in (None, device):
        return []
    return [Finding(env.name, "cache-elsewhere", "uv's cache is on another file system than this environment",
                    f"uv's cache ({cache['path']}) and {env.path} are on different file systems, so every "
                    "install copies each file instead of linking it: slower, and twice the files on your quota.",
                    "Set UV_CACHE_DIR to a folder on the environment's file system (for example beside your "
                    "environments) in your shell start-up file.")]


def _scratch_finding(env: Environment, facts: dict[str, Any]) -> list[Finding]:
    scratch = str(facts.get("scratch") or "").rstrip("/")
    on_scratch = (scratch and (env.path == scratch or env.path.startswith(scratch + "/"))) or "/scratch/" in env.path
    if not on_scratch:
        return []
    return [Finding(env.name, "on-scratch", "This environment is on a scratch space",
                    f"{env.path} is on scratch, where most clusters delete files nobody used for some weeks: "
                    "the environment can lose files without warning and break.",
                    "Keep environments in your home or project space (export this one and import it there).")]


def _conda_base_finding(facts: dict[str, Any]) -> list[Finding]:
    if facts.get("conda_active") != "base":
        return []
    where = " by the conda set-up in ~/.bashrc" if facts.get("bashrc_inits_conda") else ""
    return [Finding("", "conda-base-active", "conda's base environment is switched on when you log in",
                    f"conda's base ({facts.get('conda_prefix') or 'its folder'}) is active in every login "
                    f"shell{where}, so 'python' and 'pip' are conda's, not the module's or your environment's.",
                    "Tell conda not to switch it on at login (conda config --set auto_activate_base false); "
                    "'conda activate' still works when you want it.", CONDA_BASE_OFF)]


def _pythonpath_finding(facts: dict[str, Any]) -> list[Finding]:
    """PYTHONPATH set at login: every environment's Python looks in its folders before its own packages, so a
    package there is imported instead of the environment's (T17: a module in ~/pylib replaced the one the
    environment lists, and the doctor found nothing wrong)."""
    value = facts.get("pythonpath")
    if not isinstance(value, str) or not value.strip(":"):
        return []
    return [Finding("", "pythonpath", "PYTHONPATH is set when you log in",
                    f"Every environment's Python looks in {value} before its own packages, so a package there is "
                    "imported instead of the one the environment holds, whatever its version.",
                    "Remove the line that sets PYTHONPATH from your login files (~/.bashrc, ~/.bash_profile), or set "
                    "it only in the job scripts that need it.")]


def _unmet_findings(env: Environment, unmet: dict[str, list[Unmet]], python: str) -> list[Finding]:
    """`python`: the environment's own program on its target (runner.env_python), for the advice's command."""
    found = unmet.get(env.path) or []
    if not found:
        return []
    advice = ("Add what is missing (Update, or envdesk env update --add), or go back to the snapshot from "
              "before the change that removed it (the Snapshots tab, or envdesk env history). "
              if any(u.missing for u in found) else "")
    has_pip = any(canonical_name(package.name) == "pip" for package in env.packages)
    lister = ("python -m pip check in the environment" if has_pip else  # uv's environments have no pip
              f"uv pip check --python {join_command([python])}")
    return [Finding(env.name, "unmet-requirements", "Some packages lack what they need to work",
                    "; ".join(u.text for u in found) + ". Importing them may fail.",
                    advice + "Installing the versions they ask for (Update, --add 'NAME>=VERSION') mends the "
                    f"rest; {lister} lists the same.")]


def _misfit_finding(env: Environment) -> list[Finding]:
    """Packages whose Requires-Python excludes the environment's Python, as pip judges it (uv installs them from a
    folder of wheels, astral-sh/uv#5475); pip check says nothing of them."""
    misfits = env.made_for_another_python()
    if not misfits:
        return []
    named = ", ".join(f"{p.name} {p.version} (it states Python {p.requires_python})" for p in misfits)
    first = misfits[0]
    return [Finding(env.name, "made-for-another-python", "Some packages are made for another Python",
                    f"{named}: this environment has Python {env.python}, so importing them may fail.",
                    f"Ask for versions made for Python {env.python} (Update, or envdesk env update "
                    f"--add '{first.name}!={first.version}'), or go back to a snapshot from before they came "
                    "(the Snapshots tab, or envdesk env history).")]


def _shadowed_finding(env: Environment) -> list[Finding]:
    """The environment's own packages that a module's copy on PYTHONPATH hides (T20: numpy 1.25.2 was installed
    and scipy-stack's 1.26.4 imported, and the doctor found nothing wrong): what its modules put there as EnvDesk
    recorded it where they were loaded (module_paths)."""
    hidden = shadowed(env)
    if not hidden:
        return []
    names = " ".join(shadow.own.name for shadow in hidden)
    modules = " ".join(dict.fromkeys(shadow.module for shadow in hidden))
    return [Finding(env.name, "shadowed-by-module", "A module hides some of this environment's own packages",
                    "; ".join(shadow.sentence() for shadow in hidden) + ". Python, pip list and pip freeze see the "
                    "module's copies, whatever the environment holds.",
                    f"To use the module's, remove the environment's own (Update, or envdesk env update --remove "
                    f"{names}). To use the environment's own, make it again without {modules} (export it, and "
                    "import the file with that module taken out of its modules).")]


def _half_installed_finding(env: Environment) -> list[Finding]:
    """Package folders without metadata, as an install stopped midway leaves them (T19): uv pip check calls the
    environment broken, and every later uv install into it may fail."""
    if not env.incomplete_packages:
        return []
    return [Finding(env.name, "half-installed", "A package was left half installed",
                    f"{', '.join(env.incomplete_packages)}: no metadata names the package, so pip skips it and uv "
                    "refuses to change the environment (an install stopped midway, on a full disk say, leaves this).",
                    "Make any change of it with EnvDesk (envdesk env update, or the Packages tab): it removes that "
                    "folder with the files its RECORD names and installs the package again first. Or go back to a "
                    "snapshot from before the change that left it (the Snapshots tab, or envdesk env history and "
                    "envdesk env revert).")]


def _unreadable_finding(env: Environment) -> list[Finding]:
    """Packages whose metadata Python cannot read (no permission, a named pipe or a folder in its place): pip and
    uv do not see them, so what needs them looks unmet and an install may put them in again over their files."""
    findings = []
    for found in env.unreadable_packages:
        folder = found.path.replace("\\", "/").rsplit("/", 1)[-1]
        findings.append(Finding(env.name, "unreadable-metadata", f"Python cannot read the metadata of {folder}",
                                f"{found.reason}: pip and uv do not see that package.", found.advice))
    return findings


def _group_finding(env: Environment) -> list[Finding]:
    """An environment in a group's shared folder that its group cannot use: colleagues get 'Permission denied', or
    a pip list that fails on a package they cannot read (T22: made under umask 077, or installed from a private
    cache)."""
    if env.shared is None or not env.shared.problem:
        return []
    return [Finding(env.name, "group-cannot-use", f"The group {env.shared.group} cannot use this environment",
                    env.shared.problem, "Run the commands given as the environment's owner; EnvDesk shares what it "
                    "makes there itself from now on (any change, say Update, shares the whole environment again).")]


def _warnings_finding(env: Environment) -> list[Finding]:
    """What the listing could not read in the environment, or found installed twice: pip list and Python may
    see otherwise than EnvDesk's list says."""
    if not env.warnings:
        return []
    return [Finding(env.name, "not-read", "Some of this environment could not be read, or is there twice",
                    " ".join(env.warnings) + " EnvDesk's list of its packages may differ from what Python finds.",
                    "Install the packages named again (Update, or envdesk env update --add NAME), or remove the "
                    "folder of a damaged or second copy from its site-packages; pip list in the environment shows "
                    "what Python finds.")]


_BEHIND_OTHERS = '{ [ -n "${LMOD_CMD:-}" ] && '
"""A module `module avail` does not list may sit behind another in an Lmod hierarchy (Python/3.11.3 once GCC/12.3.0
is loaded): there, it is gone only where Lmod's spider, which walks the whole tree, does not find it either."""


def _ask_the_target(target: Target, envs: Sequence[Environment], progress: Progress
                    ) -> tuple[set[str], dict[str, list[Unmet]]]:
    """The recorded modules the module system no longer has, and each environment's unmet requirements: one
    command for all of them where the target has a shell."""
    runner = target.runner
    modules = sorted({module for env in envs for module in env.modules}) if runner.has_module_system else []
    checked = [env for env in envs if env.state == "ok" and env.python]
    shell = has_shell(target)
    lines = [join_command(["module", "is-avail", module]) + " >/dev/null 2>&1 || " + _BEHIND_OTHERS
             + join_command(["module", "spider", module]) + " >/dev/null 2>&1; } || "
             + join_command(["echo", "missing", module]) for module in modules]
    python_of = {env.path: runner.env_python(env.path) for env in checked}
    if shell and checked:
        lines.append(check_script(checked, python_of, runner.has_module_system))
    output = runner.run_shell("\n".join(lines), cancel=progress.cancel, timeout=600,
                              label="check the recorded modules and what each package requires").stdout if lines else ""
    unmet = (read_answers(output, checked) if shell  # else this computer on Windows: one command per environment
             else {env.path: check_here(runner, env, python_of[env.path], progress) for env in checked})
    return {line.split(" ", 1)[1] for line in output.splitlines() if line.startswith("missing ")}, unmet


def check_health(session: Session, target_name: str, env_ref: str | None = None,
                 progress: Progress | None = None) -> Health:
    """Look at every environment of the target (or one) and at what around it changes what runs in it."""
    progress = progress or Progress()
    target = session.target(target_name)
    progress.step(f"Checking the environments on {target.label}")
    config: dict[str, Any] = {"roots": list(target.roots), "health": True}  # not light: Requires-Python
    if env_ref:
        config["paths" if is_path(env_ref) else "names"] = [env_ref]
    answer = run_agent(target.runner, config, progress.cancel)
    facts = answer.get("health") or {}
    raw = answer.get("environments") or []
    if env_ref and not raw:
        raise NotFound(f"There is no environment {env_ref!r} on {target.label}.",
                       f"Run 'envdesk env list {target.name}' to see the environments there.")
    envs = [(Environment.from_agent(data), data.get("device")) for data in raw]
    missing, unmet = _ask_the_target(target, [env for env, _ in envs], progress)
    findings = _conda_base_finding(facts) + _pythonpath_finding(facts)
    for env, device in envs:
        findings += (_python_finding(env) + _module_findings(env, missing)
                     + _unmet_findings(env, unmet, target.runner.env_python(env.path)) + _misfit_finding(env)
                     + _shadowed_finding(env) + _half_installed_finding(env) + _unreadable_finding(env)
                     + _warnings_finding(env) + _group_finding(env) + _state_finding(env)
                     + _user_site_findings(env, facts) + _cache_findings(env, device, facts)
                     + _scratch_finding(env, facts))
    return Health(target.name, tuple(env.name for env, _ in envs), tuple(findings), facts)


_MOVE_ASIDE = """
import os, sys
source, aside = sys.argv[1], sys.argv[2]
if os.path.lexists(aside):
    sys.exit("%s is already there: nothing was moved." % aside)
os.rename(source, aside)
"""
"""Rename a folder to a name nothing holds (what `mv -n` did), wherever Python runs."""


def offered_fix(fix: str) -> str:
    """`fix` if it is the id of a fix EnvDesk offers (checked before anyone is asked to agree to it)."""
    kind, _, arg = fix.partition(":")
    if (kind == MOVE_USER_SITE and _PYTHON_RE.match(arg)) or (kind == CONDA_BASE_OFF and not arg):
        return fix
    raise InvalidInput(f"{fix!r} is not a fix EnvDesk offers.", "Run 'envdesk env doctor' to see the fixes offered.")


def fix_finding(session: Session, target_name: str, fix: str, progress: Progress | None = None) -> str:
    """Apply one safe fix a finding offers; a sentence saying what was done."""
    progress = progress or Progress()
    kind, _, arg = offered_fix(fix).partition(":")
    target = session.target(target_name)
    if kind == MOVE_USER_SITE:
        facts = check_health(session, target_name, None, progress).facts
        site = next((s for s in facts.get("user_sites") or () if s.get("python") == arg), None)
        if site is None:
            return f"There is no packages folder for Python {arg} in your home any more: nothing to move."
        aside = f"{site['path']}.moved-by-envdesk-{time.strftime('%Y%m%d-%H%M%S')}"
        progress.step(f"Moving {site['path']} aside")
        target.runner.run_python(_MOVE_ASIDE, [site["path"], aside], cancel=progress.cancel, timeout=120).check(
            f"Moving {site['path']} aside")  # Python, not mv: This computer on Windows has no shell (R13)
        return f"Moved {site['path']} to {aside} (rename it back to undo)."
    progress.step("Telling conda not to switch its base on at login")
    conda = capabilities(session, target, progress).tools.get("conda") or "conda"  # by its path where known
    target.runner.run([conda, "config", "--set", "auto_activate_base", "false"], cancel=progress.cancel,
                      timeout=120).check("Changing conda's settings")
    return "conda no longer switches its base environment on at login (from your next login)."
