"""EnvSpec: a portable description of an environment, and the file formats it reads and writes.

Formats: EnvDesk's own ``envdesk.yaml``, pip's ``requirements.txt`` and conda's
``environment.yml``; uv projects (``pyproject.toml`` + ``uv.lock``) are read too.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import yaml

from . import validate
from .errors import InvalidInput
from .fileio import dump_yaml

FORMAT_VERSION = 1
FORMATS = ("envdesk", "requirements", "conda")
KINDS = ("venv", "virtualenv", "uv", "conda")
_HEADER = re.compile(r"#\s*envdesk:\s*(.*)$")


@dataclass(frozen=True)
class Pin:
    """One exactly pinned package; `source` says whether pip or conda installs it."""

    name: str
    version: str
    source: str = "pip"
    build: str | None = None
    channel: str | None = None
    url: str | None = None
    editable: bool = False

    def pip_line(self) -> str:
        """The requirement line that reinstalls exactly this package with pip or uv."""
        if self.url:
            return f"-e {self.url}" if self.editable else f"{self.name} @ {self.url}"
        return f"{self.name}=={self.version}"

    def conda_line(self) -> str:
        """The conda match spec that reinstalls exactly this package."""
        return f"{self.name}={self.version}={self.build}" if self.build else f"{self.name}={self.version}"


@dataclass
class EnvSpec:
    """What an environment is, independent of where it lives: enough to build it again anywhere."""

    kind: str = "venv"
    python: str | None = None
    modules: list[str] = field(default_factory=list)
    system_site_packages: bool = False
    requirements: list[str] = field(default_factory=list)
    conda_requirements: list[str] = field(default_factory=list)
    pins: list[Pin] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    pip_args: list[str] = field(default_factory=list)
    name: str | None = None
    source: dict[str, str] = field(default_factory=dict)
    created: str = ""

    @property
    def pip_pins(self) -> list[Pin]:
        return [pin for pin in self.pins if pin.source != "conda"]

    @property
    def conda_pins(self) -> list[Pin]:
        return [pin for pin in self.pins if pin.source == "conda"]

    @property
    def python_minor(self) -> str | None:
        """'3.11' for '3.11.5': what module matching compares."""
        return ".".join(self.python.split(".")[:2]) if self.python else None


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


# -- writing ----------------------------------------------------------------------------------

_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def redact(text: str) -> str:
    """Remove user:password@ (and tokens) from URLs, so exports never carry credentials."""
    return _CREDENTIALS.sub(lambda m: m.group("scheme"), text)


def to_envdesk_yaml(spec: EnvSpec) -> str:
    """EnvDesk's portable format: everything needed to rebuild the environment elsewhere."""
    data: dict[str, Any] = {"envdesk": FORMAT_VERSION, "name": spec.name, "kind": spec.kind,
                            "python": spec.python, "modules": spec.modules,
                            "system_site_packages": spec.system_site_packages,
                            "requirements": [redact(r) for r in spec.requirements]}
    if spec.kind == "conda" or spec.conda_requirements:
        data["conda_requirements"] = spec.conda_requirements
        data["channels"] = spec.channels
    data["pins"] = [{k: v for k, v in asdict(pin).items() if v not in (None, False) and not
                     (k == "source" and v == "pip")} for pin in spec.pins]
    data["pip_args"] = [redact(a) for a in spec.pip_args]
    data["source"] = spec.source
    data["created"] = spec.created or now_iso()
    return redact(dump_yaml(data))


def _header_line(spec: EnvSpec) -> str:
    fields = [f"kind={spec.kind}"]
    if spec.python:
        fields.append(f"python={spec.python}")
    if spec.modules:
        fields.append("modules=" + ",".join(spec.modules))
    if spec.system_site_packages:
        fields.append("system-site-packages=yes")
    return "# envdesk: " + " ".join(fields)


def to_requirements(spec: EnvSpec) -> str:
    """pip freeze style pins, with a comment header EnvDesk reads back (Python version, modules)."""
    lines = [f"# Exported by EnvDesk from {spec.source.get('cluster', '?')}:{spec.source.get('path', '?')}",
             _header_line(spec)]
    skipped = spec.conda_pins
    if skipped:
        lines.append(f"# {len(skipped)} conda package(s) are not listed: use the conda or envdesk format for them.")
    lines.extend(pin.pip_line() for pin in sorted(spec.pip_pins, key=lambda p: p.name.lower()))
    return redact("\n".join(lines) + "\n")


def to_conda_yaml(spec: EnvSpec) -> str:
    """conda's environment.yml, with a pip: section for what pip installed."""
    dependencies: list[Any] = []
    if spec.kind == "conda":
        dependencies.extend(pin.conda_line() for pin in spec.conda_pins)
    elif spec.python:
        dependencies.extend([f"python={spec.python_minor}", "pip"])
    pip_lines = [pin.pip_line() for pin in spec.pip_pins]
    if pip_lines:
        dependencies.append({"pip": pip_lines})
    data = {"name": spec.name or "env", "channels": spec.channels or ["conda-forge"],
            "dependencies": dependencies}
    return redact(dump_yaml(data))


def render(spec: EnvSpec, fmt: str) -> str:
    """The spec in one of FORMATS."""
    writers = {"envdesk": to_envdesk_yaml, "requirements": to_requirements, "conda": to_conda_yaml}
    if fmt not in writers:
        raise InvalidInput(f"Unknown export format {fmt!r}.", f"Use one of: {', '.join(FORMATS)}.")
    return writers[fmt](spec)


# -- reading ----------------------------------------------------------------------------------

def _safe_yaml(text: str, what: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"The {what} is not valid YAML.", "Check the file; nothing was changed.") from exc


def _str_list(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise InvalidInput(f"'{what}' in the file must be a list of text entries.")
    return [validate.plain_text(str(v), what) for v in value]


def _list(value: Any, what: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(f"'{what}' in the file must be a list.")
    return value


def _pin_from_dict(data: Any) -> Pin:
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or "version" not in data:
        raise InvalidInput("A pinned package in the file has no name or no version.")
    allowed = {"name", "version", "source", "build", "channel", "url", "editable"}
    if set(data) - allowed:
        raise InvalidInput(f"Unknown keys in a pinned package: {', '.join(sorted(map(str, set(data) - allowed)))}.")
    values = {k: (str(v) if k != "editable" else bool(v)) for k, v in data.items() if v is not None}
    validate.package_name(values["name"])
    if values.get("version"):
        validate.version(values["version"])
    for key in ("build", "channel", "url"):
        if key in values:
            validate.plain_text(values[key], f"package {key}")
    if values.get("source", "pip") not in ("pip", "conda"):
        raise InvalidInput(f"Unknown package source {values['source']!r}.")
    return Pin(**values)


def from_envdesk_yaml(text: str) -> EnvSpec:
    """Read EnvDesk's own format, refusing anything malformed before it can be used."""
    data = _safe_yaml(text, "envdesk.yaml file")
    if not isinstance(data, dict) or "envdesk" not in data:
        raise InvalidInput("This is not an envdesk.yaml file (no 'envdesk:' version key).")
    kind = str(data.get("kind", "venv"))
    if kind not in KINDS:
        raise InvalidInput(f"Unknown environment kind {kind!r}.", f"Use one of: {', '.join(KINDS)}.")
    python = data.get("python")
    source = data.get("source") or {}
    if not isinstance(source, dict):
        raise InvalidInput("'source' in the file must be a mapping.")
    return EnvSpec(
        kind=kind, python=str(python) if python is not None else None,
        modules=[validate.module_name(m) for m in _str_list(data.get("modules"), "modules")],
        system_site_packages=bool(data.get("system_site_packages", False)),
        requirements=[validate.package_spec(r) for r in _str_list(data.get("requirements"), "requirements")],
        conda_requirements=_str_list(data.get("conda_requirements"), "conda_requirements"),
        pins=[_pin_from_dict(p) for p in _list(data.get("pins"), "pins")],
        channels=_str_list(data.get("channels"), "channels"),
        pip_args=_str_list(data.get("pip_args"), "pip_args"),
        name=str(data["name"]) if data.get("name") else None,
        source={str(k): str(v) for k, v in source.items()}, created=str(data.get("created", "")))


_PIN_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9._+!-]+)$")


def from_requirements(text: str) -> EnvSpec:
    """Read pip freeze output or a requirements file; exact `==` pins become pins, the rest requirements."""
    spec = EnvSpec()
    for raw in text.splitlines():
        header = _HEADER.match(raw.strip())
        if header:
            _apply_header(spec, header.group(1))
            continue
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            if line.startswith("-e ") or line.startswith("--editable "):
                url = line.split(None, 1)[1]
                spec.pins.append(Pin(name=url.rsplit("=", 1)[-1] if "#egg=" in url else url, version="",
                                     url=url, editable=True))
                continue
            raise InvalidInput(f"The requirements line {line!r} uses an option EnvDesk does not import.",
                               "Remove it, or put the option in the cluster's pip arguments.")
        pin = _PIN_LINE.match(line)
        if pin:
            spec.pins.append(Pin(name=pin.group(1), version=pin.group(2)))
        else:
            spec.requirements.append(validate.package_spec(line))
    if spec.pins and not spec.requirements:
        spec.requirements = [pin.pip_line() for pin in spec.pins]
    return spec


def _apply_header(spec: EnvSpec, text: str) -> None:
    for item in text.split():
        key, _, value = item.partition("=")
        if key == "kind" and value in KINDS:
            spec.kind = value
        elif key == "python":
            spec.python = value
        elif key == "modules":
            spec.modules = [validate.module_name(m) for m in value.split(",") if m]
        elif key == "system-site-packages":
            spec.system_site_packages = value == "yes"


_CONDA_PIN = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9._-]*)\s*(?:==?|\s)\s*([^=\s]+)(?:=([^=\s]+))?$")


def from_conda_yaml(text: str) -> EnvSpec:
    """Read conda's environment.yml (as `conda env export` or a person writes it)."""
    data = _safe_yaml(text, "environment.yml file")
    if not isinstance(data, dict) or not isinstance(data.get("dependencies", []), list):
        raise InvalidInput("This is not a conda environment file (no 'dependencies:' list).")
    spec = EnvSpec(kind="conda", name=str(data["name"]) if data.get("name") else None,
                   channels=_str_list(data.get("channels"), "channels"))
    for item in data.get("dependencies") or []:
        if isinstance(item, dict):
            pip_part = from_requirements("\n".join(_str_list(item.get("pip"), "pip")))
            spec.pins.extend(pip_part.pins)
            spec.requirements.extend(r for r in pip_part.requirements if r not in spec.requirements)
            continue
        entry = validate.plain_text(str(item), "dependency")
        name = re.split(r"[=<>!\s]", entry.split("::")[-1], maxsplit=1)[0]
        if name == "python":
            version = entry.split("::")[-1][len("python"):].lstrip("=<>! ").split("=")[0]
            spec.python = version or None
        pin = _CONDA_PIN.match(entry.split("::")[-1])
        if pin and not any(c in entry for c in "<>*|,"):
            spec.pins.append(Pin(name=pin.group(1), version=pin.group(2), source="conda", build=pin.group(3)))
        spec.conda_requirements.append(entry)
    return spec


def from_text(text: str, filename: str = "") -> EnvSpec:
    """Read a file in whichever format it is in; anything malformed is an InvalidInput, never a crash."""
    try:
        return _from_text(text, filename)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise InvalidInput(f"The file {filename or ''} is not a well-formed environment file.".replace("  ", " "),
                           "Check the file; nothing was changed.") from exc


def _from_text(text: str, filename: str) -> EnvSpec:
    lowered = filename.lower()
    if lowered.endswith((".txt", ".in")):
        return from_requirements(text)
    data_head = text.lstrip()[:2000]
    if re.search(r"^envdesk\s*:", data_head, re.MULTILINE):
        return from_envdesk_yaml(text)
    if re.search(r"^dependencies\s*:", data_head, re.MULTILINE) or lowered.endswith(("environment.yml",
                                                                                       "environment.yaml")):
        return from_conda_yaml(text)
    if lowered.endswith((".yml", ".yaml")):
        raise InvalidInput("This YAML file is neither an envdesk.yaml nor a conda environment file.")
    return from_requirements(text)
