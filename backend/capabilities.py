"""What a target offers: Pythons (by module or system), uv, virtualenv, conda, modules, free space."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from .errors import InvalidInput

_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")
SOLVER_OPTION_SINCE = (22, 11)
"""The first conda with `--solver` (conda-libmamba-solver's user guide: --solver=libmamba, or CONDA_SOLVER)."""


class CondaTool(str):
    """The command that runs conda on a target (a str: the path of mamba, conda or micromamba), with how the
    cluster's profile wants it run: `solver_args` for create, install and remove, `solver` in words for the
    operation's output, and the profile's `channels` (see recipes.conda_channels)."""

    solver: str
    solver_args: tuple[str, ...]
    channels: tuple[str, ...]

    def __new__(cls, command: str, solver: str = "", solver_args: Sequence[str] = (),
                channels: Sequence[str] = ()) -> "CondaTool":
        tool = super().__new__(cls, command)
        tool.solver, tool.solver_args, tool.channels = solver, tuple(solver_args), tuple(channels)
        return tool

    def __getnewargs__(self) -> tuple[str, str, tuple[str, ...], tuple[str, ...]]:  # type: ignore[override]
        return str(self), self.solver, self.solver_args, self.channels


@dataclass(frozen=True)
class PythonModule:
    """A module that provides a Python, e.g. python/3.11.5 or Python/3.11.3-GCCcore-12.3.0, and the modules Lmod
    says to load before it where it sits behind them in a hierarchy (GCC/12.3.0), else none."""

    module: str
    version: str
    needs: tuple[str, ...] = ()

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])

    @property
    def load(self) -> tuple[str, ...]:
        """What to `module load`, in order, for this Python: what it needs, then itself."""
        return (*self.needs, self.module)

    @property
    def shown(self) -> str:
        """The module for a person, with what it needs: 'Python/3.11.3 (after GCC/12.3.0)'."""
        return self.module + (f" (after {' '.join(self.needs)})" if self.needs else "")


@dataclass
class Capabilities:
    """The answer of one probe of a target, kept for the session."""

    home: str = ""
    tools: dict[str, str] = field(default_factory=dict)
    system_python: str | None = None
    free_bytes: int | None = None
    has_modules: bool = False
    modules: list[str] = field(default_factory=list)  # what `module avail` lists: loadable as they are
    behind: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Python modules only Lmod's spider finds (behind a compiler, say), each with the modules to load first."""
    spider_gave_up: bool = False  # a spider took longer than module_spider.SPIDER_SECONDS: `behind` may lack some
    preferred_kind: str | None = None  # the kind the cluster's preset names (presets.preferred_kind), if any
    quota: list[str] = field(default_factory=list)  # the cluster's own quota report, as it prints it
    conda_version: str | None = None  # of the conda found, from its base's conda-meta (else `conda --version`)
    conda_libmamba: bool = False  # conda-libmamba-solver is installed beside that conda
    conda_configured_solver: str | None = None  # `solver:` as conda's own configuration sets it (files, CONDA_SOLVER)
    conda_solver: str = "auto"  # the cluster profile's choice (validate.CONDA_SOLVERS)
    conda_channels: list[str] = field(default_factory=list)  # the cluster profile's channels, in order
    venv_pip: bool = True
    """Whether the system Python can put pip in a new venv (its ensurepip works): Debian's and Ubuntu's cannot
    without their python3-venv package (T26: `python3 -m venv` failed in ensurepip, after venv was offered)."""

    @property
    def python_modules(self) -> list[PythonModule]:
        """The modules that provide a Python, oldest first; of two of one version, the one that loads by itself
        last (choose_python takes the last that fits)."""
        found = []
        for module, needs in [*((module, ()) for module in self.modules), *self.behind.items()]:
            family, _, version = module.partition("/")
            match = _VERSION.match(version)
            if family.lower() in ("python", "python3") and match:
                found.append(PythonModule(module, ".".join(g for g in match.groups() if g), tuple(needs)))
        return sorted(found, key=lambda m: (tuple(int(p) for p in m.version.split(".")), not m.needs))

    @property
    def uv_module(self) -> str | None:
        candidates = [m for m in self.modules if m.partition("/")[0].lower() == "uv"]
        return candidates[-1] if candidates else None

    @property
    def conda_tool(self) -> CondaTool | None:
        """mamba, conda or micromamba, as the profile's conda_solver picks among those the target has, with the
        solver option and channels to use; None where there is none. "auto": mamba where it is installed (it is
        faster), else conda with --solver=libmamba where conda has that solver and its configuration names no
        other, else conda as it is configured."""
        mamba, conda, micromamba = (self.tools.get(t) for t in ("mamba", "conda", "micromamba"))
        channels, wanted = tuple(self.conda_channels), self.conda_solver
        if mamba and wanted in ("auto", "mamba"):
            return CondaTool(mamba, "mamba", (), channels)
        missing = " (mamba is not installed here)" if wanted == "mamba" else ""
        if conda:
            solver, args = self._conda_solver()
            return CondaTool(conda, solver + missing, args, channels)
        if mamba:  # libmamba or classic asked for, and only mamba here (it solves with libmamba)
            return CondaTool(mamba, "mamba (conda is not installed here)", (), channels)
        if micromamba:
            return CondaTool(micromamba, "micromamba" + missing, (), channels)
        return None

    def _conda_solver(self) -> tuple[str, tuple[str, ...]]:
        """conda's solver in words, and the options that choose it, for the profile's conda_solver."""
        match = _VERSION.match(self.conda_version or "")
        has_option = match is not None and (int(match.group(1)), int(match.group(2))) >= SOLVER_OPTION_SINCE
        wanted = self.conda_solver
        if wanted in ("libmamba", "classic"):
            if has_option:
                return f"conda's {wanted} solver", (f"--solver={wanted}",)
            return (f"conda's only solver (conda {self.conda_version or 'of unknown version'} has no --solver "
                    "option; conda 22.11 and newer have)"), ()
        if self.conda_configured_solver:  # "auto", or "mamba" where there is none: as "auto" would
            return f"conda's {self.conda_configured_solver} solver, as conda is configured here", ()
        if has_option and self.conda_libmamba:
            return "conda's libmamba solver", ("--solver=libmamba",)
        return "conda's default solver", ()

    def uv(self) -> tuple[str, list[str]] | None:
        """How to run uv here: (command, modules to load first), or None when there is none."""
        if "uv" in self.tools:
            return self.tools["uv"], []
        if "uv-local" in self.tools:
            return self.tools["uv-local"], []
        if self.uv_module:
            return "uv", [self.uv_module]
        return None

    def python_versions(self) -> list[str]:
        """Python versions this target can provide without downloading anything (X.Y)."""
        versions = {m.minor for m in self.python_modules}
        if self.system_python:
            versions.add(".".join(self.system_python.split(".")[:2]))
        return sorted(versions, key=lambda v: tuple(int(p) for p in v.split(".")))

    def kinds(self) -> list[str]:
        """Environment kinds that can be made here, fastest first: only those whose tool is installed. venv where
        the system Python can put pip in one (venv_pip) or a Python module gives a Python (which usually can)."""
        kinds = ["uv"] if self.uv() else []
        kinds += ["venv"] if self.venv_pip or self.python_modules else []
        # A module system's Python usually brings virtualenv (it is not on PATH before loading it).
        kinds += ["virtualenv"] if "virtualenv" in self.tools or self.python_modules else []
        if self.conda_tool:
            kinds.append("conda")
        return kinds

    def default_kind(self) -> str:
        """The kind a new environment gets unless one is asked for: the one the cluster's preset names (or, where
        that cannot be made here, what stand_in_kind makes instead), else the fastest one here. Refused in plain
        words where no kind can be made (see NO_VENV_PIP)."""
        if self.preferred_kind is None:
            return _first_kind(self)
        return self.preferred_kind if self.preferred_kind in self.kinds() else stand_in_kind(self, self.preferred_kind)

    def installer_uv(self, kind: str | None) -> tuple[str, list[str]] | None:
        """How to run uv for installs into an environment of `kind`, or None where pip installs them: uv where the
        target has it, except into an environment of a pip kind (venv, virtualenv, conda) on a cluster whose
        preset names one of those: the site's way is pip there (the Alliance's modules put packages on
        PYTHONPATH, which pip counts as installed and uv does not, so uv installed them again). `kind` None: any."""
        if kind != "uv" and self.preferred_kind not in (None, "uv"):
            return None
        return self.uv()


class PythonMissing(InvalidInput):
    """The Python version asked for is not on the target (the message names the versions that are)."""


@dataclass(frozen=True)
class PythonChoice:
    """Which Python an environment gets: the modules that provide it and its version."""

    modules: tuple[str, ...]
    version: str | None
    note: str = ""


def _matches(version: str, wanted: str) -> bool:
    return version == wanted or version.startswith(wanted + ".")


def choose_python(caps: Capabilities, wanted: str | None, kind: str) -> PythonChoice:
    """The module (or system Python) that gives `wanted` (X.Y or X.Y.Z); newest when not given."""
    if kind == "conda":
        return PythonChoice((), wanted)
    modules = caps.python_modules
    if wanted:
        exact = [m for m in modules if m.version == wanted]
        close = exact or [m for m in modules if _matches(m.version, ".".join(wanted.split(".")[:2]))]
        if close:
            chosen = close[-1]
            asked_minor_only = wanted.count(".") == 1  # 'python=3.11' asks for any 3.11, which 3.11.3 is
            note = "" if chosen.version == wanted or asked_minor_only else (
                f"Python {wanted} is not offered here; using {chosen.module} (Python {chosen.version}).")
            return PythonChoice(chosen.load, chosen.version, note)
        if caps.system_python and _matches(caps.system_python, ".".join(wanted.split(".")[:2])):
            return PythonChoice((), caps.system_python)
        available = ", ".join(caps.python_versions()) or "none"
        raise PythonMissing(f"This target has no Python {wanted}; available: {available}.",
                            "Pick one of the available versions.")
    if modules:
        return PythonChoice(modules[-1].load, modules[-1].version)
    return PythonChoice((), caps.system_python)


def newest_python_within(caps: Capabilities, requires_python: str) -> str | None:
    """The newest Python the target offers (its modules' and its own) that a requires-python allows; None when
    none does."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version
    allowed = SpecifierSet(requires_python)
    fitting = []
    for version in [m.version for m in caps.python_modules] + ([caps.system_python] if caps.system_python else []):
        try:
            if allowed.contains(Version(version), prereleases=True):
                fitting.append(version)
        except InvalidVersion:
            continue
    return max(fitting, key=Version) if fitting else None


NO_VENV_PIP = ("This Python cannot make environments with pip: it has no working ensurepip (on Debian and Ubuntu, "
               "their python3-venv package is missing).")
NO_VENV_PIP_NEXT = ("Ask the cluster's admins for python3-venv, or install uv (it makes environments without "
                    "ensurepip); a Python module, where the cluster has one, can make them too.")


def _first_kind(caps: Capabilities) -> str:
    """The fastest kind the target offers; refused in plain words where there is none (a Python without ensurepip
    and no uv, virtualenv, Python module or conda)."""
    kinds = caps.kinds()
    if not kinds:
        raise InvalidInput(NO_VENV_PIP, NO_VENV_PIP_NEXT)
    return kinds[0]


def stand_in_kind(caps: Capabilities, kind: str) -> str:
    """The kind to make when `kind` cannot be made here: a plain venv for virtualenv or uv (the same
    kind of folder, which pip manages) or for a conda file that asks conda only for Python and pip; for a venv
    (a Python without ensurepip), uv or virtualenv, which need none; else the first kind the target offers."""
    if kind in ("virtualenv", "uv", "conda") and "venv" in caps.kinds():
        return "venv"
    if kind == "venv":
        others = [other for other in ("uv", "virtualenv") if other in caps.kinds()]
        if not others:
            raise InvalidInput(NO_VENV_PIP, NO_VENV_PIP_NEXT)
        return others[0]
    return _first_kind(caps)
