"""Command lines for each kind of environment and each installer, built from validated values.

A Step is an argument list plus the modules to load first; runners quote every argument,
so nothing here is ever pasted into shell text.
"""
from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from typing import Sequence

from . import pip_settings
from .capabilities import Capabilities, CondaTool
from .credentials import has_credentials, split_settings
from .errors import InvalidInput
from .protocol import CONSTRAINTS_FILE, ENVDESK_DIR
from .spec import environment_variables, redact

PIP_TO_UV = {"--no-cache-dir": "--no-cache"}
INSTALLER_PACKAGES = frozenset({"pip", "setuptools", "wheel", "distribute"})
"""What every venv gets from its maker: left out of exports and of 'upgrade everything', as pip freeze does."""
QUIET_PIP = ("--disable-pip-version-check", "--no-input")


@dataclass(frozen=True)
class Step:
    """One command of an operation, with what it is for in plain words.

    What holds a credential is never in `argv` (other users see every process's arguments): settings
    go in `env`, environment variables for this command only, and requirement lines in `input`, a
    requirements file the command reads from its standard input.
    """

    what: str
    argv: tuple[str, ...]
    modules: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    input: str | None = None

    def shell_text(self) -> str:
        """The step as one bash command for a script that itself travels on standard input (`bash -s`):
        its variables set for it alone, its input piped from printf (a builtin), so neither becomes a
        process argument."""
        assignments = "".join(f"{name}={shlex.quote(value)} " for name, value in self.env)
        command = assignments + " ".join(shlex.quote(arg) for arg in self.argv)
        if self.input is None:
            return command
        lines = " ".join(shlex.quote(line) for line in self.input.splitlines())
        return f"printf '%s\\n' {lines} | {command}"


NO_DEFAULTS = "nodefaults"
"""What an environment.yml lists among its channels to say "none of the default channels" (conda env create
reads it so); on conda's command line that is --override-channels, never a channel."""


def _channel_args(channels: Sequence[str]) -> list[str]:
    """conda's -c options, only the given channels (micromamba has no default one); `nodefaults` is said by
    --override-channels, which they always carry."""
    named = [channel for channel in channels if channel != NO_DEFAULTS]
    if channels and not named:
        raise InvalidInput("The channels say only 'nodefaults' (none of conda's default channels) and name no "
                           "other channel, so conda would have nowhere to install packages from.",
                           "Add the channel to use, such as conda-forge, to the file's channels or to the "
                           "cluster's conda channels.")
    return (["--override-channels"] if named else []) + [arg for channel in named for arg in ("-c", channel)]


def conda_channels(tool: CondaTool | str | None, channels: Sequence[str] = ()) -> list[str]:
    """The channels a conda command uses: the cluster's (its profile's conda_channels, which `tool` carries) in
    order, then those the operation names that are not among them; none at all: conda's own settings."""
    cluster = list(tool.channels) if isinstance(tool, CondaTool) else []
    chosen = cluster + [channel for channel in channels if channel not in cluster]
    for channel in chosen:
        if has_credentials(channel):  # conda takes channels only as arguments, which other users can read
            raise InvalidInput(f"The conda channel {redact(channel)} holds a credential, which conda would show to "
                               "other users of the machine.",
                               "Keep that channel in ~/.condarc on the target, where only you can read it, and "
                               "leave it out of the file or the cluster's settings.")
    return chosen


def _conda_command(tool: str, verb: str, prefix: str, channels: Sequence[str] | None) -> tuple[str, ...]:
    """`tool verb --yes --prefix PREFIX` with the solver options `tool` carries and, unless `channels` is None
    (remove needs none), the channels of conda_channels."""
    solver = tool.solver_args if isinstance(tool, CondaTool) else ()
    chosen = _channel_args(conda_channels(tool, channels)) if channels is not None else []
    return (tool, verb, "--yes", "--prefix", prefix, *solver, *chosen)


def check_conda_channels(tool: CondaTool | str | None, channels: Sequence[str]) -> None:
    """Refuse (InvalidInput), before anything is made, channels a conda command could not be given (only
    'nodefaults'; a credential), as the command itself would refuse them (T21: a dry run said it would build)."""
    _channel_args(conda_channels(tool, channels))


def _with_solver(what: str, tool: str) -> str:
    """A step's words with the solver that runs it, so the operation's output says which one it was."""
    return f"{what} with {tool.solver}" if isinstance(tool, CondaTool) and tool.solver else what


_VIRTUALENV_OR_VENV = (  # one line, run by the Python to make it from (no shell: this computer may be Windows)
    "import os,shutil,sys;py=sys.argv[1];a=sys.argv[2:];v=shutil.which('virtualenv');"
    "c=[v,'--no-download','--python',py]+a if v else [py,'-m','venv']+a;"
    "v or sys.stderr.write('virtualenv is not installed here: making the environment with '+py+' -m venv instead.\\n');"
    "sys.stderr.flush();os.execvp(c[0],c) if os.name=='posix' else sys.exit(__import__('subprocess').call(c))"
)  # Windows' exec would end this process before its child


def create_step(kind: str, caps: Capabilities, path: str, modules: Sequence[str], python: str | None,
                system_site_packages: bool, python_command: str = "python3", channels: Sequence[str] = ()) -> Step:
    """The command that makes an empty environment of `kind` at `path`."""
    ssp = ["--system-site-packages"] if system_site_packages else []
    mods = tuple(modules)
    if kind == "venv":
        return Step("Creating the environment (venv)", (python_command, "-m", "venv", *ssp, path), mods)
    if kind == "virtualenv":
        if "virtualenv" in caps.tools:
            return Step("Creating the environment (virtualenv)",
                        (caps.tools["virtualenv"], "--no-download", "--python", python_command, *ssp, path), mods)
        # Expected from the loaded Python module; if it is not there after all, venv makes the same folder.
        return Step("Creating the environment (virtualenv, or venv where virtualenv is missing)",
                    (python_command, "-I", "-c", _VIRTUALENV_OR_VENV, python_command, *ssp, path), mods)
    if kind == "uv":
        uv = caps.uv()
        if uv is None:
            raise InvalidInput("uv is not available on this target.", "Choose venv or virtualenv instead.")
        command, uv_modules = uv
        return Step("Creating the environment (uv)",
                    (command, "venv", "--no-python-downloads", "--allow-existing", "--python", python_command,
                     *ssp, path), mods + tuple(uv_modules))
    if kind == "conda":
        tool = caps.conda_tool
        if tool is None:
            raise InvalidInput("conda, mamba and micromamba are not available on this target.",
                               "Choose venv, virtualenv or uv instead.")
        pinned = [f"python={python}"] if python else ["python"]
        return Step(_with_solver("Creating the environment (conda)", tool),
                    (*_conda_command(tool, "create", path, channels), "--", *pinned), mods)
    raise InvalidInput(f"Unknown environment kind {kind!r}.", "Use venv, virtualenv, uv or conda.")


_HOSTLESS_VCS = (r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*@\s*((?:git|hg|svn|bzr)\+file://(?:/|\$\{[A-Z0-9_]+\})[^\s#;]+)$")
"""A VCS URL of a folder: file:///PATH, or file://${VARIABLE}/PATH, which pip fills in with a path (compiled on
use)."""


def _legacy_vcs_form(spec: str) -> str:
    """'name @ git+file:///repo@C' as 'git+file:///repo@C#egg=name' (and so with file://${HOME}/repo, say, which
    pip fills in only after it has read the line): pip before 24.1 refuses a VCS URL
    without a host in the PEP 508 form (its vendored packaging, pypa/packaging#684) but takes pip's own."""
    match = re.match(_HOSTLESS_VCS, spec.strip())
    return f"{match.group(2)}#egg={match.group(1)}" if match else spec


STDIN_REQUIREMENTS = {"pip": "/dev/stdin", "uv": "-"}
"""How each installer is told to read a requirements file from its standard input."""


def _from_a_file(spec: str) -> bool:
    """Whether `spec` must reach the installer in a requirements file: a credential (an argument is seen by
    every user of the machine) or a ${VARIABLE}, which installers fill in only in a file."""
    return has_credentials(spec) or bool(environment_variables(spec))


@dataclass(frozen=True)
class Installer:
    """Installs into one environment with uv when the target has it (and its preset does not ask for pip: see
    Capabilities.installer_uv), else with pip.

    Requirements whose URL holds a credential are given on standard input, never as arguments; in what
    EnvDesk records they appear without it (spec.redact), as pip and uv record them (PEP 610). So are those
    with a ${VARIABLE}, which the installer fills in there, from the target's environment.
    """

    python: str
    env_modules: tuple[str, ...]
    pip_args: tuple[str, ...]
    uv: tuple[str, tuple[str, ...]] | None = None
    pip_config: bool = True
    """Whether uv installs with the target's pip settings (see pip_settings); not where there are none."""
    constraints: str | None = None
    """The environment's constraints file (constraints_file), which its installs follow; None: it keeps none."""

    @classmethod
    def for_env(cls, caps: Capabilities, python: str, env_modules: Sequence[str],
                pip_args: Sequence[str], *, kind: str | None = None, here: bool = False,
                constraints: str | None = None) -> "Installer":
        """The installer for the environment of `kind` whose Python is `python` (and whose constraints file is
        `constraints`): uv or pip as Capabilities.installer_uv says; `here`: on this computer, where EnvDesk can
        see for itself whether pip has settings (a cluster's can come with its modules, so are always read)."""
        uv = caps.installer_uv(kind)
        pip_config = bool(uv) and (not here or bool(env_modules) or bool(uv[1] if uv else ())
                                   or pip_settings.has_settings(os.environ, python))
        return cls(python, tuple(env_modules), tuple(pip_args), (uv[0], tuple(uv[1])) if uv else None, pip_config,
                   constraints)

    @property
    def name(self) -> str:
        return "uv" if self.uv else "pip"

    def _settings(self) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
        """The pip arguments to show (for uv, in uv's words) and the variables that carry the rest."""
        shown, env = split_settings(self.pip_args, self.name)
        return (tuple(PIP_TO_UV.get(arg, arg) for arg in shown) if self.uv else shown), env

    def _step(self, what: str, args: Sequence[str], env: tuple[tuple[str, str], ...] = (),
              lines: Sequence[str] = ()) -> Step:
        """A command of this installer, reading `lines` as a requirements file on its standard input."""
        if lines:
            args = [*args, "-r", STDIN_REQUIREMENTS[self.name]]
        if self.uv:
            command, uv_modules = self.uv
            argv, modules = (command, "pip", *args), self.env_modules + uv_modules
            if self.pip_config and args[0] == "install":
                argv = pip_settings.with_pip_settings(self.python, argv)
        else:
            argv, modules = (self.python, "-m", "pip", *args), self.env_modules
        return Step(what, argv, modules, env, "".join(f"{line}\n" for line in lines) if lines else None)

    def install(self, specs: Sequence[str], upgrade: Sequence[str] = (), lines: Sequence[str] = (),
                no_deps: bool = False, require_hashes: bool = False) -> Step:
        """Install specs and requirements-file `lines` (hashed ones, say), upgrading the named ones, within the
        environment's constraints.

        A spec '-e FOLDER_OR_URL' is installed editable (the option goes before the '--'). Specs with a
        credential join `lines`, which the installer reads from its standard input.
        """
        given = list(lines) + [spec for spec in specs if _from_a_file(spec)]
        specs = [spec for spec in specs if not _from_a_file(spec)]
        editables = [arg for spec in specs if spec.startswith("-e ") for arg in ("-e", spec[3:].strip())]
        specs = [spec for spec in specs if not spec.startswith("-e ")]
        extra = (["--no-deps"] if no_deps else []) + editables + (["--require-hashes"] if require_hashes else [])
        # pip's and uv's -c (uv: no --constraint); not to uv with hashes, which refuses a range there (a hashed
        # file pins every package exactly, so the constraints have nothing left to narrow: as pip_to_uv leaves them)
        if self.constraints and not (require_hashes and self.uv):
            extra += ["-c", self.constraints]
        shown, env = self._settings()
        if self.uv:
            ups = [arg for name in upgrade for arg in ("--upgrade-package", name)]
            args = ["install", "--python", self.python, *shown, *ups, *extra]
        else:
            ups = ["--upgrade"] if upgrade else []
            specs, given = [_legacy_vcs_form(spec) for spec in specs], [_legacy_vcs_form(line) for line in given]
            args = ["install", *QUIET_PIP, *shown, *extra, *ups]
        step = self._step("", args, env, given)
        return Step(f"Installing packages with {self.name}", (*step.argv, "--", *specs, *upgrade), step.modules,
                    step.env, step.input)

    def dry_run(self, spec: str) -> Step:
        """Check whether one pinned spec can be installed here, changing nothing. A spec '-e FOLDER_OR_URL'
        is checked as install gives it: the option and its value as two arguments before the '--'."""
        shown, env = self._settings()
        if self.uv:
            args = ["install", "--dry-run", "--no-deps", "--python", self.python, *shown]
        else:
            args = ["install", *QUIET_PIP, "--dry-run", "--no-deps", "--ignore-installed", *shown]
        if not self.uv:
            spec = _legacy_vcs_form(spec)  # as install gives it to pip
        secret = _from_a_file(spec)
        editable = not secret and spec.startswith("-e ")
        if editable:
            args = [*args, "-e", spec[3:].strip()]
        step = self._step(f"Checking {redact(spec)}", args, env, [spec] if secret else [])
        given = [] if secret or editable else [spec]
        return Step(step.what, (*step.argv, "--", *given), step.modules, step.env, step.input)

    def uninstall(self, names: Sequence[str]) -> Step:
        if self.uv:
            args = ["uninstall", "--python", self.python, "--", *names]
        else:
            args = ["uninstall", *QUIET_PIP, "--yes", "--", *names]
        return self._step(f"Removing packages with {self.name}", args)


def constraints_file(path: str) -> str:
    """Where the environment at `path` keeps its constraints (pip's -c file), in EnvDesk's own folder there."""
    return f"{path}/{ENVDESK_DIR}/{CONSTRAINTS_FILE}"


_WRITE_LINES = ("import os,sys;f=sys.argv[1];os.makedirs(os.path.dirname(f),exist_ok=True);"
                "open(f,'w',encoding='utf-8').write(''.join(a+'\\n' for a in sys.argv[2:]))")


def keep_constraints(path: str, python: str, constraints: Sequence[str], modules: Sequence[str]) -> Step:
    """Write the constraints into the environment at `path` (constraints_file), for its installs to follow, with
    its own `python` (no shell: this computer may be Windows). The lines are arguments (a name, versions and a
    marker each: spec.constraint_line; nothing secret), and `modules` are the build's other steps' own (it needs
    none), so the step joins the build's one command (common.one_command: a step with standard input, or other
    modules, cannot)."""
    return Step("Keeping the constraints with the environment",
                (python, "-I", "-c", _WRITE_LINES, constraints_file(path), *constraints), tuple(modules))


def conda_install(tool: str, prefix: str, specs: Sequence[str], modules: Sequence[str],
                  channels: Sequence[str] = ()) -> Step:
    """conda (or mamba) installing `specs` into the prefix, with the cluster's solver and channels."""
    return Step(_with_solver("Installing conda packages", tool),
                (*_conda_command(tool, "install", prefix, channels), "--", *specs), tuple(modules))


def conda_remove(tool: str, prefix: str, names: Sequence[str], modules: Sequence[str]) -> Step:
    """conda (or mamba) removing `names` from the prefix, with the cluster's solver."""
    return Step(_with_solver("Removing conda packages", tool),
                (*_conda_command(tool, "remove", prefix, None), "--", *names), tuple(modules))


def conda_spec(requirement: str) -> str:
    """A PEP 508 requirement written so that conda allows the versions pip allows: '==' is exact in both (conda's
    '=1.26' would be any 1.26.*); PEP 440's '<2' leaves out 2's pre-releases, which conda's '<2' takes ('<2a0')."""
    from packaging.requirements import Requirement
    from packaging.version import Version
    parsed = Requirement(requirement)
    parts = []
    for specifier in parsed.specifier:
        operator, version = specifier.operator, specifier.version
        if operator == "<" and not Version(version).is_prerelease:
            version += "a0"
        parts.append(("==" if operator == "===" else operator) + version)
    return parsed.name + ",".join(sorted(parts))
