"""What a target offers: Pythons (by module or system), uv, virtualenv, conda, modules, free space."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import InvalidInput

_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class PythonModule:
    """A module that provides a Python, e.g. python/3.11.5 or Python/3.11.3-GCCcore-12.3.0."""

    module: str
    version: str

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


@dataclass
class Capabilities:
    """The answer of one probe of a target, kept for the session."""

    home: str = ""
    tools: dict[str, str] = field(default_factory=dict)
    system_python: str | None = None
    free_bytes: int | None = None
    has_modules: bool = False
    modules: list[str] = field(default_factory=list)
    quota: list[str] = field(default_factory=list)  # the cluster's own quota report, as it prints it

    @property
    def python_modules(self) -> list[PythonModule]:
        found = []
        for module in self.modules:
            family, _, version = module.partition("/")
            match = _VERSION.match(version)
            if family.lower() in ("python", "python3") and match:
                found.append(PythonModule(module, ".".join(g for g in match.groups() if g)))
        return sorted(found, key=lambda m: tuple(int(p) for p in m.version.split(".")))

    @property
    def uv_module(self) -> str | None:
        candidates = [m for m in self.modules if m.partition("/")[0].lower() == "uv"]
        return candidates[-1] if candidates else None

    @property
    def conda_tool(self) -> str | None:
        """conda, mamba or micromamba: whichever the target has (mamba first: faster)."""
        return next((self.tools[t] for t in ("mamba", "conda", "micromamba") if t in self.tools), None)

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
        """Environment kinds that can be made here, fastest first: only those whose tool is installed."""
        kinds = ["uv"] if self.uv() else []
        # A module system's Python usually brings virtualenv (it is not on PATH before loading it).
        kinds += ["venv"] + (["virtualenv"] if "virtualenv" in self.tools or self.python_modules else [])
        if self.conda_tool:
            kinds.append("conda")
        return kinds


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
            note = "" if chosen.version == wanted else (
                f"Python {wanted} is not offered here; using {chosen.module} (Python {chosen.version}).")
            return PythonChoice((chosen.module,), chosen.version, note)
        if caps.system_python and _matches(caps.system_python, ".".join(wanted.split(".")[:2])):
            return PythonChoice((), caps.system_python)
        available = ", ".join(caps.python_versions()) or "none"
        raise InvalidInput(f"This target has no Python {wanted}; available: {available}.",
                           "Pick one of the available versions.")
    if modules:
        return PythonChoice((modules[-1].module,), modules[-1].version)
    return PythonChoice((), caps.system_python)


def stand_in_kind(caps: Capabilities, kind: str) -> str:
    """The kind to make when `kind` cannot be made here: a plain venv for virtualenv or uv (the same
    kind of folder, which pip manages), else the first kind the target offers."""
    if kind in ("virtualenv", "uv") and "venv" in caps.kinds():
        return "venv"
    return caps.kinds()[0]
