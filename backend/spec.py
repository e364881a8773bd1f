"""EnvSpec: a portable description of an environment, and the file formats it reads and writes.

Formats: EnvDesk's own ``envdesk.yaml``, pip's ``requirements.txt`` and conda's
``environment.yml``; uv projects (``pyproject.toml`` + ``uv.lock``) are read too.
"""
from __future__ import annotations

import re
import reprlib
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from . import validate
from .errors import InvalidInput
from .fileio import dump_yaml, load_yaml, read_without_waiting, yaml_problem
from .kinds import FORMATS, KINDS
from .wording import counted

FORMAT_VERSION = 1
# Patterns are kept as text and compiled on first use (re keeps them compiled): reading a file of pins
# compiles only those it matches with.
_HEADER = r"#\s*envdesk:\s*(.*)$"


def local_path(url: str) -> str | None:
    """'/home/a/src' for 'file:///home/a/src' (or for '/home/a/src' itself), 'C:/Users/a/src' for
    'file:///C:/Users/a/src', '${HOME}/src' for 'file://${HOME}/src'; None for any other URL."""
    from urllib.parse import unquote, urlparse
    if url.startswith("/") or re.match(r"[A-Za-z]:[/\\]", url):  # a path, this computer's or a Windows one
        return url
    parsed = urlparse(url)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        path = unquote(parsed.path)
        drive = re.match(r"/([A-Za-z])[:|]/", path)  # file:///C:/Users/a/src: a Windows computer's C:/Users/a/src
        return f"{drive.group(1).upper()}:{path[drive.end() - 1:]}" if drive else path
    if parsed.scheme == "file" and re.fullmatch(_ENVIRONMENT_VARIABLE, parsed.netloc):
        return parsed.netloc + unquote(parsed.path)  # file://${HOME}/x: a path the installer fills in there
    return None


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
    extras: str = ""
    """The extras asked for with a folder's install ('dev,test' of `-e .[dev,test]`): what they add is installed
    too."""

    def pip_line(self) -> str:
        """The requirement line that reinstalls exactly this package with pip or uv."""
        extras = f"[{self.extras}]" if self.extras else ""
        if self.url and self.editable:
            folder = local_path(self.url)  # pip freeze writes a local editable as its folder
            if folder:
                return f"-e {folder}{extras}"
            egg = re.search(r"#egg=[A-Za-z0-9][A-Za-z0-9._-]*", self.url) if extras else None  # pip's VCS form
            return f"-e {self.url[:egg.end()]}{extras}{self.url[egg.end():]}" if egg else f"-e {self.url}"
        if self.url:
            return f"{self.name}{extras} @ {self.url}"
        return f"{self.name}=={self.version}"

    def conda_line(self) -> str:
        """The conda match spec that reinstalls exactly this package ('numpy=1.26.4' would be any 1.26.4.*)."""
        return f"{self.name}={self.version}={self.build}" if self.build else f"{self.name}=={self.version}"


@dataclass(frozen=True)
class Adapted:
    """A line of an imported file that is installed in another form than written, and why."""

    line: str
    as_: str
    reason: str
    installs: bool = True  # False for lines that are not packages (an included file, conda's prefix:)

    def to_json(self) -> dict[str, str]:
        return {"line": self.line, "as": self.as_, "reason": self.reason}


@dataclass(frozen=True)
class Refused:
    """A line of an imported file that is not installed, and why."""

    line: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"line": self.line, "reason": self.reason}


@dataclass
class EnvSpec:
    """What an environment is, independent of where it lives: enough to build it again anywhere."""

    kind: str = "venv"
    kind_named: bool = True
    """Whether the file names the kind (an export, environment.yml, a uv project do; a plain requirements file or a
    pylock.toml do not: the target's default kind is then made, as for a new environment)."""
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
    adapted: list[Adapted] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    hashed: list[str] = field(default_factory=list)  # requirement lines with their --hash options
    constraints: list[str] = field(default_factory=list)
    """Lines of the file's constraints files (-c): they narrow the versions of whatever is installed and install
    nothing themselves; kept with the environment, every later install into it follows them (pip's -c)."""
    requires_python: str | None = None
    """A lock file's requires-python where it names no exact Python (a pylock.toml): the import takes the newest
    Python of the target's within it, as for a uv project."""
    provided: dict[str, list[str]] = field(default_factory=dict)
    """module -> ['name==version', ...]: what each of its modules put on PYTHONPATH on the source, which Python
    imported before the environment's own packages (not pins: the module brings them where it is loaded)."""

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
    """Now in UTC to the second, as datetime's isoformat writes it ('2026-11-23T04:01:38+00:00'), without loading
    datetime (~3 ms of each create)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())


# -- writing ----------------------------------------------------------------------------------

# the scheme starts where no letter, digit, '+' or '.' comes before it (a '-' may: pip's '-ihttps://...'), so a
# long line is not scanned again from every position (quadratic time); the user information runs to the last
# '@' before the next '/', as pip and urllib split it ('pa@ss' is a password; so are 'pa#ss' and 'pa?ss', which
# urllib cannot log in with but which are secrets all the same)
_CREDENTIALS = r"(?P<scheme>(?<![A-Za-z0-9+.])[A-Za-z][A-Za-z0-9+.-]{0,31}://)(?P<userinfo>[^/\s]+)@"
_CONDA_TOKEN = r"(?P<head>(?<![A-Za-z0-9+.-])https?://[^\s/@]+/(?:[^\s/]+/)*?t/)[^\s/]+"
"""A token in conda's own form: https://conda.anaconda.org/t/<token>/channel (anaconda.org, Anaconda's servers)."""
_SECRET_QUERY = (r"(?i)(?P<key>[?&;](?:[A-Za-z0-9_.-]*(?:token|key|secret|password|passwd|auth|sig|"
                 r"signature|credential)[A-Za-z0-9_.-]*))=[^&#\s;]*")


def redact(text: str) -> str:
    """Remove credentials from URLs, so exports never carry them: user:password@ (an ssh 'git@' login
    is kept, it is no secret), conda's /t/<token>/ and query parameters such as ?token=, &private_token=, &sig=."""
    if "://" not in text and not any(mark in text for mark in "?&;"):
        return text  # the first two need '://', the last '?', '&' or ';': a plain requirement or option has none
    text = re.sub(_CREDENTIALS, lambda m: m.group(0) if m.group("userinfo") == "git" else m.group("scheme"), text)
    text = re.sub(_CONDA_TOKEN, lambda m: m.group("head") + "REDACTED", text)
    return re.sub(_SECRET_QUERY, lambda m: m.group("key") + "=REDACTED", text)


def to_envdesk_yaml(spec: EnvSpec) -> str:
    """EnvDesk's portable format: everything needed to rebuild the environment elsewhere."""
    data: dict[str, Any] = {"envdesk": FORMAT_VERSION, "name": spec.name, "kind": spec.kind,
                            "python": spec.python, "modules": spec.modules,
                            "system_site_packages": spec.system_site_packages,
                            "requirements": [redact(r) for r in spec.requirements]}
    if spec.kind == "conda" or spec.conda_requirements:
        data["conda_requirements"] = spec.conda_requirements
        data["channels"] = spec.channels
    if spec.constraints:
        data["constraints"] = spec.constraints
    if spec.provided:
        data["provided"] = spec.provided
    data["pins"] = [{k: v for k, v in asdict(pin).items() if v not in (None, False) and not
                     (k == "source" and v == "pip") and not (k == "extras" and not v)} for pin in spec.pins]
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
    lines.extend(f"# {module} put these on PYTHONPATH there, so they are listed as pip freeze lists them with it "
                 f"loaded: {', '.join(pins)}" for module, pins in spec.provided.items())
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


def requirement_name(requirement: str) -> str | None:
    """The canonical name of the package a requirement line names; None for a line without one (a bare VCS
    URL, an editable folder)."""
    plain = validate.plain_requirement_name(requirement.strip())
    if plain is not None:
        return validate.canonical_name(plain)  # packaging's parser not loaded for plain pins
    from packaging.requirements import InvalidRequirement, Requirement
    try:
        return validate.canonical_name(Requirement(requirement).name)
    except InvalidRequirement:
        return None


CONDA_HISTORY = "conda-history"
"""An export format beside FORMATS: what `conda env export --from-history` writes, with the pip section."""


def to_conda_history_yaml(spec: EnvSpec) -> str:
    """conda's environment.yml as `conda env export --from-history` writes it, so it travels between platforms:
    only the specs the user asked for (conda's history), never a build string; then the pip section, likewise
    only the packages asked for, each at its installed version (their dependencies differ between platforms);
    the channels as to_conda_yaml writes them. Without a record of what was asked for, every package is listed
    (conda's as name=version)."""
    dependencies: list[Any] = []
    header = ""
    if spec.kind == "conda":
        asked = [conda_without_build(entry) for entry in spec.conda_requirements]
        if not asked:
            header = "# This environment has no conda history: every conda package is listed, without builds.\n"
            asked = [f"{pin.name}={pin.version}" for pin in spec.conda_pins]
        dependencies.extend(dict.fromkeys(asked))
    elif spec.python:
        dependencies.extend([f"python={spec.python_minor}", "pip"])
    pins = {validate.canonical_name(pin.name): pin for pin in spec.pip_pins}
    conda_names = {validate.canonical_name(pin.name) for pin in spec.conda_pins}
    pip_lines = [_asked_as_installed(line, pins) for line in spec.requirements
                 if requirement_name(line) in pins or (requirement_name(line) not in conda_names and ";" in line)]
    asked_names = set(map(requirement_name, spec.requirements))
    pip_lines += [_with_asked_extras(pin, spec.requirements).pip_line() for pin in spec.pip_pins
                  if pin.url and validate.canonical_name(pin.name) not in asked_names]  # always one asked for
    pip_lines = list(dict.fromkeys(pip_lines))
    if not pip_lines and spec.pip_pins:
        header += "# No record of which pip packages were asked for: every one is listed.\n"
        pip_lines = [pin.pip_line() for pin in spec.pip_pins]
    if pip_lines:
        if not any(conda_entry_name(entry) == "pip" for entry in dependencies):
            dependencies.append("pip")  # conda installs the pip section with the environment's own pip
        dependencies.append({"pip": pip_lines})
    data = {"name": spec.name or "env", "channels": spec.channels or ["conda-forge"],
            "dependencies": dependencies}
    return redact(header + dump_yaml(data))


def _asked_as_installed(line: str, pins: dict[str, Pin]) -> str:
    """A pip requirement the user asked for, pinned at the version installed, its extras and marker kept (they
    install more packages, or only on some platforms): 'requests[socks]>=2' -> 'requests[socks]==2.32.3'. As
    asked where nothing of that name is installed here (its marker excludes this platform), or it is an
    editable folder or a URL (the pin's own line)."""
    from packaging.requirements import InvalidRequirement, Requirement
    try:
        requirement = Requirement(line)
    except InvalidRequirement:
        return line
    pin = pins.get(validate.canonical_name(requirement.name))
    if pin is None:
        return line
    if pin.url or requirement.url:
        return replace(pin, extras=pin.extras or ",".join(sorted(requirement.extras))).pip_line()
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    return f"{requirement.name}{extras}=={pin.version}" + (f" ; {requirement.marker}" if requirement.marker else "")


def _with_asked_extras(pin: Pin, requested: Sequence[str]) -> Pin:
    """A folder's or URL's pin with the extras its asked-for line named (`-e /src/proj[dev]`): what is installed
    records no extras, and an export without them would not install what they add (a user trial's `-e ..[dev]`
    exported as `-e /src/proj`)."""
    where = _location(pin.url or "")
    for line in requested:
        location, extras = split_extras(re.sub(r"^(?:-e|--editable)(?:\s+|=)", "", line.strip()))
        if extras and _location(location) == where:
            return replace(pin, extras=pin.extras or extras)
    return pin


def _location(url: str) -> str:
    """A folder or URL as one spelling: '/src/proj' for 'file:///src/proj/' and for '/src/proj'."""
    return (local_path(url) or url).rstrip("/")


_MATCH_SPEC_KEYS = r"(\w+)\s*=\s*(?:'([^']*)'|\"([^\"]*)\"|([^,\]]*))"


def conda_entry_name(entry: str) -> str:
    """The package a conda match spec names ('conda-forge::numpy=1.26' -> 'numpy')."""
    return re.split(r"[=<>!~\s\[]", entry.split("::")[-1], maxsplit=1)[0].lower()


def conda_bracket(entry: str) -> tuple[str, dict[str, str]] | None:
    """A match spec in conda's bracket form as (what precedes the bracket, its fields): "numpy[version='>=1.26',
    build=py311*]" -> ('numpy', {'version': '>=1.26', 'build': 'py311*'}); None for any other form."""
    bracket = re.fullmatch(r"([^\[\s]+)\[(.*)\]", " ".join(str(entry).split()))
    if not bracket:
        return None
    return bracket.group(1), {key: next((v for v in values if v), "").strip()
                              for key, *values in re.findall(_MATCH_SPEC_KEYS, bracket.group(2))}


def conda_without_build(entry: str) -> str:
    """A conda match spec without its build: 'numpy=1.26.4=py311h64a7726_0' -> 'numpy==1.26.4', 'numpy 1.26.4
    py311_0' -> 'numpy==1.26.4', "numpy[version='>=1.26',build=py311*]" -> 'numpy>=1.26' (conda's history
    writes that last form for ranges)."""
    entry = " ".join(str(entry).split())
    bracket = conda_bracket(entry)
    if bracket:
        head, fields = bracket
        version = fields.get("version", "")
        if not version:
            return head
        if version[0] in "<>=!~" or "," in version or "|" in version:
            return head + version
        return head + ("=" if "*" in version else "==") + version  # a bare version in a bracket is exact
    channel, separator, bare = entry.rpartition("::")
    words = bare.split(" ")
    if len(words) >= 2:  # 'name version [build]': a bare version is exact in a match spec
        parts = words[1:]
        if len(parts) > 1 and parts[-1][0] not in "<>=!~," and not parts[-2].endswith(","):
            parts = parts[:-1]
        text = "".join(parts)
        bare = words[0] + (text if text[0] in "<>=!~" else f"=={text}")
    pinned = re.fullmatch(r"([^=<>!~\s]+)==?([^=\s]+)=\S+", bare)
    if pinned:  # with a build, '=1.26.4' is exact; without, conda reads it as 1.26.4.*
        bare = pinned.group(1) + ("=" if "*" in pinned.group(2) else "==") + pinned.group(2)
    return channel + separator + bare


def render(spec: EnvSpec, fmt: str) -> str:
    """The spec in one of FORMATS, or CONDA_HISTORY."""
    writers = {"envdesk": to_envdesk_yaml, "requirements": to_requirements, "conda": to_conda_yaml,
               CONDA_HISTORY: to_conda_history_yaml}
    if fmt == "pylock":
        raise InvalidInput("A pylock.toml needs the package files' hashes, which the target's uv looks up.",
                           "Export it from the environment (envdesk env export CLUSTER ENV --format pylock).")
    if fmt not in writers:
        raise InvalidInput(f"Unknown export format {fmt!r}.", f"Use one of: {', '.join((*FORMATS, CONDA_HISTORY))}.")
    return writers[fmt](spec)


# -- reading ----------------------------------------------------------------------------------

_BYTE_ORDER_MARKS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
_CODING = rb"coding[:=]\s*([-\w.]+)"
_SAVE_AS_UTF8 = "Save it as UTF-8 text (or UTF-16 with a byte-order mark) and import it again; nothing was changed."


def decode_text(data: bytes, name: str) -> str:
    """The text of an environment file, decoded as pip decodes a requirements file, so that what pip reads
    EnvDesk reads: a UTF-8 or UTF-16 byte-order mark decides (and is taken off; Windows editors and
    PowerShell 5's `pip freeze > requirements.txt` write them), then a '# -*- coding: NAME -*-' comment on one
    of the first two lines, else UTF-8. Text in any other encoding is refused with a plain reason."""
    for mark, encoding in _BYTE_ORDER_MARKS:
        if data.startswith(mark):
            return _decoded(data, encoding, name, f"{name} starts with a {encoding[:6].upper()} byte-order mark",
                            skip=len(mark))
    for line in data.split(b"\n", 2)[:2]:
        declared = re.search(_CODING, line) if line.startswith(b"#") else None
        if declared:
            encoding = declared.group(1).decode("ascii")
            return _decoded(data, encoding, name, f"{name} says it is in the encoding {validate.shown(encoding)}")
    if b"\0" in data:
        raise InvalidInput(f"{name} is not a text file EnvDesk can read: it holds NUL bytes (UTF-16 text without "
                           "a byte-order mark looks like this).", _SAVE_AS_UTF8)
    return _decoded(data, "utf-8", name)


def _decoded(data: bytes, encoding: str, name: str, claim: str = "", skip: int = 0) -> str:
    """`data` after its first `skip` bytes, decoded; else a refusal that says what the file claims (`claim`) and
    where it breaks it."""
    try:
        return data[skip:].decode(encoding)
    except LookupError as exc:
        raise InvalidInput(f"{claim}, which Python does not know.", _SAVE_AS_UTF8) from exc
    except UnicodeDecodeError as exc:
        where = f"byte {exc.object[exc.start]:#04x} at position {exc.start + skip}"
        raise InvalidInput(f"{claim}, but it is not {encoding.upper()} text ({where})." if claim else
                           f"{name} is not {encoding.upper()} text ({where} is not {encoding.upper()}).",
                           _SAVE_AS_UTF8) from exc


def _safe_yaml(text: str, what: str) -> Any:
    import yaml  # loaded by the YAML files read, not by every command that records or redacts (~12 ms)

    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"The {what} is not valid YAML ({yaml_problem(exc)}).",
                           "Check the file; nothing was changed.") from exc


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
    allowed = {"name", "version", "source", "build", "channel", "url", "editable", "extras"}
    if set(data) - allowed:
        raise InvalidInput(f"Unknown keys in a pinned package: {', '.join(sorted(map(str, set(data) - allowed)))}.")
    values = {str(k): str(v) for k, v in data.items() if v is not None and k != "editable"}
    validate.package_name(values["name"])
    if values.get("version"):
        validate.version(values["version"])
    for key in ("build", "channel", "url"):
        if key in values:
            validate.plain_text(values[key], f"package {key}")
    if values.get("url", "").startswith("-"):  # it follows -e or '@': never an installer option
        raise InvalidInput(f"The package {values['name']} has {validate.shown(values['url'])} as its source, "
                           "which is not a URL or folder.")
    if values.get("source", "pip") not in ("pip", "conda"):
        raise InvalidInput(f"Unknown package source {values['source']!r}.")
    extras = values.get("extras", "")
    if extras and (not values.get("url") or re.fullmatch(_EXTRAS, extras) is None):
        raise InvalidInput(f"The package {values['name']} has {validate.shown(extras)} as its extras, which are "
                           "names apart by commas, and only a folder's or URL's install has them.")
    return Pin(name=values["name"], version=values["version"], source=values.get("source", "pip"),
               build=values.get("build"), channel=values.get("channel"), url=values.get("url"),
               editable=bool(data.get("editable")), extras=extras)


_EXTRAS = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?(?:,[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)*"
"""What a Pin's extras are: names (PEP 685's form, any case) apart by commas, nothing else."""


def split_extras(text: str) -> tuple[str, str]:
    """A folder or name with the extras written after it, apart: ('./proj', 'dev,test') for './proj[dev, test]';
    (text, '') when it ends in none, or in brackets that are not extras."""
    match = re.fullmatch(r"(?s)(.*?)\[([^\[\]]*)\]", text)
    if match:
        extras = ",".join(part.strip() for part in match.group(2).split(","))
        if not extras.strip(","):  # `pkg[]`: no extras, as pip reads it
            return match.group(1), ""
        if re.fullmatch(_EXTRAS, extras):
            return match.group(1), extras
    return text, ""


_ENVDESK_KEYS = {"envdesk", "name", "kind", "python", "modules", "system_site_packages", "requirements",
                 "conda_requirements", "channels", "pins", "pip_args", "source", "created", "constraints", "provided"}


def _provided(value: Any) -> dict[str, list[str]]:
    """An envdesk.yaml's `provided` (module -> exact pins), each module and pin checked."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("'provided' in the file must map each module to the packages it provided.")
    found = {}
    for module, pins in value.items():
        found[validate.module_name(str(module))] = [_provided_pin(pin) for pin in _str_list(pins, "provided")]
    return found


def _provided_pin(text: str) -> str:
    if not re.match(_PIN_LINE, text):
        raise InvalidInput(f"{validate.shown(text)} under 'provided' in the file is not a package pinned as "
                           "name==version.")
    return text


def from_envdesk_yaml(text: str) -> EnvSpec:
    """Read EnvDesk's own format, refusing anything malformed before it can be used."""
    data = _safe_yaml(text, "envdesk.yaml file")
    if not isinstance(data, dict) or "envdesk" not in data:
        raise InvalidInput("This is not an envdesk.yaml file (no 'envdesk:' version key).")
    unknown = sorted(map(str, set(data) - _ENVDESK_KEYS))
    if unknown:
        hint = " (EnvDesk calls the package list 'requirements:')" if "packages" in unknown else ""
        raise InvalidInput(f"Unknown key{'s' if len(unknown) > 1 else ''} in the envdesk.yaml file: "
                           f"{', '.join(unknown)}{hint}. Nothing was changed.",
                           f"Known keys: {', '.join(sorted(_ENVDESK_KEYS))}.")
    kind = str(data.get("kind", "venv"))
    if kind not in KINDS:
        raise InvalidInput(f"Unknown environment kind {kind!r}.", f"Use one of: {', '.join(KINDS)}.")
    python = data.get("python")
    source = data.get("source") or {}
    if not isinstance(source, dict):
        raise InvalidInput("'source' in the file must be a mapping.")
    return EnvSpec(
        kind=kind, kind_named="kind" in data, python=validate.version(str(python)) if python is not None else None,
        modules=[validate.module_name(m) for m in _str_list(data.get("modules"), "modules")],
        system_site_packages=bool(data.get("system_site_packages", False)),
        requirements=[_envdesk_requirement(r) for r in _str_list(data.get("requirements"), "requirements")],
        conda_requirements=_str_list(data.get("conda_requirements"), "conda_requirements"),
        pins=[_pin_from_dict(p) for p in _list(data.get("pins"), "pins")],
        channels=[validate.conda_channel(c) for c in _str_list(data.get("channels"), "channels")],
        pip_args=_str_list(data.get("pip_args"), "pip_args"),
        constraints=[constraint_line(c) for c in _str_list(data.get("constraints"), "constraints")],
        provided=_provided(data.get("provided")),
        name=str(data["name"]) if data.get("name") else None,
        source={str(k): str(v) for k, v in source.items()}, created=str(data.get("created", "")))


def _envdesk_requirement(entry: str) -> str:
    """A requirement of an envdesk.yaml: a PEP 508 requirement, or an editable install ('-e FOLDER', '-e git+URL')
    as a requirements file's editable lines are recorded, judged as that file's reader judges them."""
    if not entry.startswith(("-e", "--editable")):
        return validate.package_spec(entry)
    read = from_requirements(entry)
    if read.refused or len(read.pins) != 1 or not read.pins[0].editable:
        raise InvalidInput(f"The requirement {validate.shown(entry)} in the file is not an editable install of a "
                           f"folder or version-control URL{f' ({read.refused[0].reason})' if read.refused else ''}.")
    return read.pins[0].pip_line()


_PIN_LINE = r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9._+!-]+)$"
_COMMENT = r"(^|\s)#.*$"
_HASH_OPTION = r"\s--hash[=\s]\S+"
HASH_OPTION = " --hash="
"""How a plan line that pip must check against hashes is recognised (it goes to a requirements file)."""
HASHED_REQUIREMENTS = "hashed-requirements.txt"
_VCS = ("git+", "hg+", "svn+", "bzr+")
_ENVIRONMENT_VARIABLE = r"\$\{([A-Z0-9_]+)\}"
"""pip's own form of a variable in a requirements file (capitals, digits and underscores only): ${NAME} (compiled
on use)."""


def environment_variables(line: str) -> list[str]:
    """The variables an installer fills in when it reads `line` from a requirements file, from the environment
    it runs in (pip anywhere in the line; uv in URLs and paths)."""
    return re.findall(_ENVIRONMENT_VARIABLE, line) if "${" in line else []
_INDEX_OPTIONS = ("-i", "--index-url", "--extra-index-url", "--no-index", "-f", "--find-links", "--trusted-host")
_CHOICE_OPTIONS = ("--pre", "--prefer-binary", "--only-binary", "--no-binary")
_ARCHIVE_URL = (r"^(?P<url>https?://[^\s#?]+/(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*?[A-Za-z0-9])?)-[0-9][^/\s-]*"
                r"(?:-[^/\s]+\.whl|\.tar\.gz|\.tgz|\.tar\.bz2|\.tar\.xz|\.tar|\.zip)(?:[#?]\S*)?)"
                r"(?P<marker>\s+;.*)?$")
"""A bare URL of a wheel or source archive, which pip takes as a line (a marker may follow): the package's name
is in its file name, up to the version (an old source archive's name may hold '-': python-dateutil-2.8.2)."""
_BUILD_FOLDERS = (r"^file://(/croot/|/opt/conda/conda-bld/|/home/conda/feedstock_root/|"
                  r"/tmp/build/|/opt/anaconda1anaconda2anaconda3/|/usr/share/miniconda/conda-bld/|"
                  r"/[^\s#?]*?/[A-Za-z0-9][A-Za-z0-9._-]*_[0-9]{10,}/work(?:[/#?]|$))")
"""Where conda-build builds a package, as pip freeze names it in a conda environment: the known build roots, and
anywhere (Windows' D:/bld/ and C:/b/abs_…/croot/, macOS' /Users/runner/miniforge3/conda-bld/ and /private/var/
folders/…/croot/, a build machine's /home/task_…/conda-bld/) the folder conda-build works in: NAME_TIMESTAMP/work."""
_MAX_INCLUDE_DEPTH = 5
LOCAL_SOURCE = ("a folder or file of the computer where this file was written; EnvDesk cannot copy it to the "
                "target (publish the package, or give it as a git URL)")
INDEX_REASON = "changes where packages come from"
CHOICE_REASON = "changes which versions or files the installer picks"
_SETTING_VALUES = {"index-url": "URL", "extra-index-url": "URL", "find-links": "URL", "trusted-host": "HOST",
                   "only-binary": ":all:", "no-binary": ":all:"}
"""What `pip config set` is shown with for each option (a placeholder, never the file's own value: an index URL
may hold a token); an option without one is a switch, set to true."""


def settings_advice(option: str, what: str, value: str = "") -> str:
    """Why a file's installer option is refused, and where it is given instead: pip's own settings where the
    installs run, which EnvDesk's installs follow (with uv too, for those pip_settings.uv_follows), or a
    cluster's pip arguments. `value`: the option's own, shown where it names packages (never an index's URL,
    which may hold a token)."""
    key = {"-i": "index-url", "-f": "find-links"}.get(option, option.lstrip("-"))
    shown = value if key in ("only-binary", "no-binary") and re.fullmatch(r"[A-Za-z0-9:,._-]+", value) else \
        _SETTING_VALUES.get(key, "true")
    from .pip_settings import uv_follows  # (reads the agent's part: only where an option is refused)
    pip_only = "" if uv_follows(key) else " (pip follows it; uv, which EnvDesk installs with where the target " \
                                             "has it, has no such setting)"
    return (f"{option} {what}; EnvDesk installs with the package settings of the computer it installs on. To use "
            f"it there, run `pip config set global.{key} {shown}` on that computer{pip_only}, or, for a cluster, "
            "add it to the cluster's pip arguments in EnvDesk")


def logical_lines(text: str) -> list[str]:
    """A requirements file's lines as pip reads them (pip's req_file.join_lines): a line ending in '\\' is joined to
    the next without a space, except a line that is a comment, which ends a joined line; comments dropped,
    blanks gone."""
    lines, pending = [], ""
    for raw in text.splitlines():
        comment = re.match(r"\s*#", raw)
        if raw.endswith("\\") and not comment:
            pending += raw.strip("\\")
            continue
        joined = pending + (" " + raw if comment else raw)
        pending = ""
        if re.match(_HEADER, joined.strip()):
            lines.append(joined.strip())
            continue
        line = " ".join(re.sub(_COMMENT, "", joined).split())
        if line:
            lines.append(line)
    if pending.strip():
        lines.append(" ".join(re.sub(_COMMENT, "", pending).split()))
    return lines


def from_requirements(text: str, folder: Path | None = None, *, _depth: int = 0,
                      _chain: tuple[Path, ...] = ()) -> EnvSpec:
    """Read pip freeze output or a requirements file: every line ends pinned, required, adapted or refused.

    Every line that is installed as written is also one of `requirements`, in the file's order (an exact pin as
    name==version, a hashed line without its hashes, an editable as '-e FOLDER'): it is what the user asked
    for, which --top-level installs with newer versions allowed and the environment records as requested.
    `folder` is where the file is, so that `-r other.txt` next to it can be read too; `_chain`, the files read to
    come here (the file itself last, when known), so that a file including itself is said to.
    """
    spec = EnvSpec(kind_named=False)
    for line in logical_lines(text):
        header = re.match(_HEADER, line)
        if header:
            _apply_header(spec, header.group(1))
            continue
        _read_requirement_line(spec, line, folder, _depth, _chain)
    if _depth == 0 and spec.hashed:
        _refuse_unhashed(spec)
    if _depth == 0:
        _unpin_named_again(spec)
    return spec


def _unpin_named_again(spec: EnvSpec) -> None:
    """An exact pin whose package another line names too (`requests[socks]` after `requests==2.31.0`, `-r base.txt`'s
    `uvicorn==0.30.0` and `uvicorn[standard]`, `six!=1.16.0 ; marker`) stops being a pin: both lines go to the
    installer, which takes them together as pip does (the extras installed, a conflict its error). As a pin, the
    other line was dropped (a pinned name was installed from its pin only: importing.install_lines)."""
    lines_by_name: dict[str, set[str]] = {}
    for line in spec.requirements:
        name = requirement_name(line)
        if name:
            lines_by_name.setdefault(name, set()).add(line)
    again = {name for name, lines in lines_by_name.items() if len(lines) > 1}
    if again:
        spec.pins = [pin for pin in spec.pins if pin.source != "pip" or pin.url or pin.editable
                     or validate.canonical_name(pin.name) not in again]


UNHASHED = ("other lines of the file have --hash, and then pip checks every package against hashes (it turns "
             "--require-hashes on by itself) and refuses the whole file for a line without them: add this line's "
             "hashes, or take the others' out")
"""Why a line without hashes is refused in a file with hashes (a line whose marker leaves the target out is let
through by the import's plan, as pip and uv skip it: importing.plan_import)."""


def _refuse_unhashed(spec: EnvSpec) -> None:
    """The lines without hashes of a file where some have them: refused, as pip refuses such a file. An editable
    folder is not: a folder has no file to hash, and uv installs `uv export`'s `-e .` beside hashed pins (EnvDesk
    installs the hashed lines first, each checked, then the rest: create.build)."""
    hashed = {without_hashes(line) for line in spec.hashed}
    folders = {pin.pip_line() for pin in spec.pip_pins if pin.editable and local_path(pin.url or "")}
    unhashed = [line for line in spec.requirements if line not in hashed and line not in folders]
    if unhashed:
        spec.refused += [Refused(line, UNHASHED) for line in unhashed]
        spec.requirements = [line for line in spec.requirements if line in hashed or line in folders]
        spec.pins = [pin for pin in spec.pins if pin.source != "pip" or pin.pip_line() not in set(unhashed)]


def without_hashes(line: str) -> str:
    """A requirement line without its --hash options (what a per-package check or a relaxed retry uses)."""
    return line.split(HASH_OPTION)[0].strip()


def _read_requirement_line(spec: EnvSpec, line: str, folder: Path | None, depth: int,
                           chain: tuple[Path, ...]) -> None:
    if line.startswith("-"):
        _read_option_line(spec, line, folder, depth, chain)
        return
    hashes = [h.strip().replace("--hash ", "--hash=") for h in re.findall(_HASH_OPTION, " " + line)]
    bare = re.sub(_HASH_OPTION, "", " " + line).strip()
    if bare.startswith(_VCS):
        _read_vcs_line(spec, line, bare)
        return
    if bare.startswith((".", "/", "~", "file:")):
        _read_local_path(spec, line, bare, folder, bool(hashes))
        return
    archive = re.match(_ARCHIVE_URL, bare)
    if archive:  # pip's bare URL line, as the PEP 508 line it stands for
        bare = f"{archive['name'].replace('_', '-')} @ {archive['url']}{archive['marker'] or ''}"
    try:
        requirement = validate.package_spec(bare)
    except InvalidInput as exc:
        variables = environment_variables(bare)
        spec.refused.append(Refused(line, exc.message if not variables else (
            f"pip fills in {listed_variables(variables)} from the environment it runs in, and EnvDesk checks every "
            "requirement before anything runs: write the value in its place")))
        return
    outside_url = _variables_outside_url(requirement)
    if outside_url:
        shown_variables = listed_variables(outside_url)
        spec.refused.append(Refused(line, f"uv fills in variables only in a URL or a path, and {shown_variables} "
                                          "is elsewhere in this line: write the value in its place"))
        return
    name, _, url = requirement.partition(" @ ") if " @ " in requirement else (requirement, "", "")
    if url and re.match(_BUILD_FOLDERS, url.strip()):
        spec.adapted.append(Adapted(line, name.strip(), "that path is the build folder of a conda package, "
                                                        "which exists only where it was built: installing the "
                                                        "package by name"))
        return
    if url.strip().startswith("file:"):
        path = local_path(url.strip())
        bare_name, extras = split_extras(name.strip())
        if path and not hashes and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", bare_name) and " " not in url.strip():
            _add_pin(spec, Pin(name=bare_name, version="", url=url.strip(), extras=extras))  # kept where the target
            # has the path
        else:                                                                      # (see importing's sources check)
            spec.refused.append(Refused(line, f"{url.strip()} is {LOCAL_SOURCE}"))
        return
    pin = re.match(_PIN_LINE, requirement)
    if hashes:  # kept whole: pip checks every file it installs against these
        spec.hashed.append(" ".join([requirement, *hashes]))
        spec.requirements.append(requirement)
    elif pin:
        _add_pin(spec, Pin(name=pin.group(1), version=pin.group(2)))
    else:
        spec.requirements.append(requirement)


def _read_local_path(spec: EnvSpec, line: str, bare: str, folder: Path | None, hashed: bool) -> None:
    """A line that is a path (`.`, `./mypkg`, `/abs/dist/pkg-1.0-py3-none-any.whl`, `file:///abs/mypkg`, a marker
    after it), which pip installs from there: read as `NAME @ file:///…` (kept where the target has the path, as
    such a line is), the name from the folder's pyproject.toml or the archive's file name, the folder as this
    computer names it (from the file's own folder, as pip finds it). A path this computer does not have (a Windows
    one, one with a ${VARIABLE}) is LOCAL_SOURCE, as before."""
    where, *marked = re.split(r"\s;\s*", bare, maxsplit=1)
    marker = marked[0] if marked else ""
    where, extras = split_extras(where.strip())
    try:
        path = local_path(where) if where.startswith(("/", "file:")) else (
            (folder / where).resolve().as_posix() if folder is not None and where.startswith(".") else None)
        here = path is not None and path.startswith("/") and Path(path).exists()
    except (OSError, RuntimeError, ValueError):  # a name too long for the file system, a loop of links
        path, here = None, False
    if not path or not here or hashed or " " in path:
        spec.refused.append(Refused(line, f"{bare} is {LOCAL_SOURCE}"))
        return
    name = _local_project_name(Path(path))
    if not name:
        spec.refused.append(Refused(line, f"{bare} gives no package name EnvDesk can read (its pyproject.toml's "
                                          "[project] name, or a wheel's or archive's file name): write it as -e "
                                          f"{where} (editable) or NAME @ {Path(path).as_uri()}"))
        return
    uri = Path(path).as_uri()
    requirement = f"{name}{f'[{extras}]' if extras else ''} @ {uri}" + (f" ; {marker.strip()}" if marker else "")
    if requirement != bare:
        spec.adapted.append(Adapted(line, requirement, "the path as this computer names it, with the package's name "
                                    "from it", installs=False))
    if marker:  # installed where its marker says, as any marked line (the installer judges it)
        spec.requirements.append(requirement)
        return
    _add_pin(spec, Pin(name=name, version="", url=uri, extras=extras))


_PYPROJECT_MAX_BYTES = 1_000_000


def _local_project_name(path: Path) -> str | None:
    """The package a local path installs: a wheel's or source archive's name from its file name, a folder's from its
    pyproject.toml ([project] name, read only where it is a plain file of a sane size); None where neither says (a
    setup.py-only project, say)."""
    archive = re.match(_ARCHIVE_URL, "https://x/" + path.name)
    if archive and path.is_file():
        return archive["name"].replace("_", "-")
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    pyproject = path / "pyproject.toml"
    try:
        if not pyproject.is_file() or pyproject.stat().st_size > _PYPROJECT_MAX_BYTES:  # not /dev/zero, not a FIFO
            return None
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project")
        return validate.package_name(project["name"]) if isinstance(project, dict) else None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError, InvalidInput):
        return None


def _variables_outside_url(requirement: str) -> list[str]:
    """The ${VARIABLES} of a requirement that are not in its URL (in its name, versions or marker)."""
    if "${" not in requirement:
        return []
    head, at, rest = requirement.partition(" @ ")
    if not at:
        return environment_variables(requirement)
    marker = re.split(r"\s;", rest, maxsplit=1)[1:]
    return environment_variables(head) + environment_variables(marker[0] if marker else "")


def listed_variables(variables: Sequence[str]) -> str:
    """'${A}, ${B}': each variable once, as the file writes it."""
    return ", ".join(f"${{{name}}}" for name in dict.fromkeys(variables))


def _add_pin(spec: EnvSpec, pin: Pin) -> None:
    """A line installed exactly as pinned: one of the pins, and one of the requirements the user asked for."""
    spec.pins.append(pin)
    spec.requirements.append(pin.pip_line())


def _read_vcs_line(spec: EnvSpec, line: str, url: str, *, editable: bool = False) -> None:
    try:
        validate.plain_text(url, "URL")
    except InvalidInput as exc:
        spec.refused.append(Refused(line, exc.message))
        return
    if " " in url or url.startswith("-"):
        spec.refused.append(Refused(line, "this is not a valid version-control URL"))
        return
    egg = re.search(r"#egg=([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?", url)
    extras = ""
    if egg and egg.group(2):  # pip's older spelling of the extras, #egg=name[dev]: in the requirement's own form
        extras = split_extras(egg.group(2))[1]
        if not extras and egg.group(2).strip("[] "):
            spec.refused.append(Refused(line, f"{egg.group(2)} is not a list of extras (names apart by commas)"))
            return
        url = url[:egg.start(2)] + url[egg.end(2):]
    if editable:
        _add_pin(spec, Pin(name=egg.group(1) if egg else url, version="", url=url, editable=True, extras=extras))
    elif egg:
        spec.requirements.append(f"{egg.group(1)}{f'[{extras}]' if extras else ''} @ {url}")
    else:
        spec.requirements.append(url)


def _read_option_line(spec: EnvSpec, line: str, folder: Path | None, depth: int, chain: tuple[Path, ...]) -> None:
    option, _, value = line.replace("=", " ", 1).partition(" ") if line.startswith("--") else \
        (line[:2], "", line[2:].strip())
    value = value.strip()
    if len(value) > 1 and value[0] in "'\"" and value[-1] == value[0]:
        value = value[1:-1]  # pip reads an option's value as a shell would: `-e ".[dev,test]"` is .[dev,test]
    if option in ("-r", "--requirement"):
        _include(spec, line, value, folder, depth, chain)
    elif option in ("-c", "--constraint"):
        _include(spec, line, value, folder, depth, chain, constraints=True)
    elif option in ("-e", "--editable"):
        value = _file_url_as_path(value)
        if value.startswith(_VCS):
            _read_vcs_line(spec, line, value, editable=True)
        elif value.startswith(".") and folder is not None and not value.startswith("..."):
            _read_relative_editable(spec, line, value, folder, depth, chain)
        elif value.startswith(("file:///", "/")) and local_path(value.split("#")[0]):
            try:
                validate.plain_text(value, "folder")
            except InvalidInput as exc:
                spec.refused.append(Refused(line, exc.message))
                return
            location, _, fragment = value.partition("#")
            location, extras = split_extras(location)
            egg = re.search(r"(?:^|&)egg=([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?", fragment)
            if egg and egg.group(2):  # pip's older spelling: #egg=name[dev]
                extras = extras or split_extras(egg.group(2))[1]
                if not extras and egg.group(2).strip("[] "):
                    spec.refused.append(Refused(line, f"{egg.group(2)} is not a list of extras (names apart by "
                                                      "commas)"))
                    return
            folder_path = local_path(location) or location
            _add_pin(spec, Pin(name=egg.group(1) if egg else folder_path.rstrip("/").rsplit("/", 1)[-1],
                               version="", url=folder_path, editable=True, extras=extras))
        else:
            spec.refused.append(Refused(line, f"{value or 'this'} is {LOCAL_SOURCE}"))
    elif option in _INDEX_OPTIONS:
        spec.refused.append(Refused(line, settings_advice(option, INDEX_REASON)))
    elif option in _CHOICE_OPTIONS:
        spec.refused.append(Refused(line, settings_advice(option, CHOICE_REASON, value)))
    else:
        spec.refused.append(Refused(line, f"{option} is a pip option EnvDesk does not apply"))


def _file_url_as_path(value: str) -> str:
    """A relative file URL as the path it names, as pip reads it: rye's `-e file:.` is `-e .`, `file:libs/x` is
    `./libs/x`, `file:/abs` is `/abs`; anything else as it is."""
    match = re.match(r"file:(?!//)(.*)", value)
    if not match:
        return value
    path = match.group(1)
    return path if path.startswith(("/", ".")) else f"./{path}"


def _read_relative_editable(spec: EnvSpec, line: str, value: str, folder: Path, depth: int,
                            chain: tuple[Path, ...]) -> None:
    """`-e .` or `-e ./pkg`: the folder as this computer names it, taken from the file's own folder (where pip run
    beside the file finds it); installed where that folder exists on the target (importing's sources check)."""
    path, _, fragment = value.partition("#")
    path, extras = split_extras(path)
    try:
        resolved = (folder / path).resolve().as_posix()
    except (OSError, RuntimeError):
        resolved = ""
    if not resolved.startswith("/") or " " in resolved:  # a Windows path, or one pip's line cannot hold
        spec.refused.append(Refused(line, f"{value} is {LOCAL_SOURCE}"))
        return
    as_line = f"-e {resolved}" + (f"[{extras}]" if extras else "") + (f"#{fragment}" if fragment else "")
    spec.adapted.append(Adapted(line, as_line, "the folder as this computer names it (from the file's own folder)",
                                installs=False))
    _read_option_line(spec, as_line, None, depth, chain)


_PROJECT_MARKERS = (".git", ".hg", "pyproject.toml", "setup.py", "setup.cfg", "tox.ini")
PROJECT_MARKED = ".git, pyproject.toml, setup.py, setup.cfg or tox.ini"
_INCLUDED_SUFFIXES = (".txt", ".in")


def project_folder(folder: Path) -> Path | None:
    """How far up `-r ../name` may reach from a file in `folder`: the project the file is in, the nearest folder
    at or above it holding one of _PROJECT_MARKERS; where there is none (a repository downloaded as a zip, say),
    the folder just above the file's; never the home folder itself or above it (None then: only the file's own
    folder is read). docs/requirements.txt's `-r ../requirements.txt` is read; a stray file reads nothing far
    from it (an included file's lines go to an installer: a stray file's, to an index)."""
    folder = folder.resolve()
    home = Path.home().resolve()
    for candidate in (folder, *folder.parents):
        if candidate == home or candidate == candidate.parent:
            break
        if any((candidate / marker).exists() for marker in _PROJECT_MARKERS):
            return candidate
    above = folder.parent
    return None if above == home or above == above.parent or home.is_relative_to(above) else above


LARGEST_FILE = 5_000_000
"""Bytes: larger is no environment file (the largest lock files people have are some hundreds of KB)."""


def read_file_to_import(path: Path, shown: str) -> bytes:
    """The bytes of an environment file (or one it includes), an ordinary file of at most LARGEST_FILE: a pipe or a
    device is refused without waiting on it, and a file is never read further than that (InvalidInput; OSError
    when it cannot be read)."""
    import stat

    def ordinary(found: Any) -> None:
        if not stat.S_ISREG(found.st_mode):
            raise InvalidInput(f"{shown} is not an ordinary file (a pipe or a device), so it is not read.")
    data = read_without_waiting(path, LARGEST_FILE, ordinary)
    if len(data) > LARGEST_FILE:
        raise InvalidInput(f"{shown} is too large to be an environment file.")
    return data


def _include(spec: EnvSpec, line: str, name: str, folder: Path | None, depth: int, chain: tuple[Path, ...], *,
             constraints: bool = False) -> None:
    """Read `-r name` (or `-c name`, a constraints file: `constraints`) as pip does, from the including file's
    folder: only within the imported file's project (see project_folder), a requirements file by its name when
    outside the imported file's folder, not too deep, and not a file being read."""
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", name):  # pip downloads it (Airflow's constraints, say)
        spec.refused.append(Refused(line, f"{redact(name)} is on the web, and EnvDesk reads the files a file names "
                                          "from this computer only: download it beside the file and name it so"))
        return
    variables = environment_variables(name)
    if variables:  # T15 LOW-11: was 'not found from ., where pip looks for it'
        spec.refused.append(Refused(line, f"pip fills in {listed_variables(variables)} from the environment it runs "
                                          "in, and EnvDesk reads the files a file names before anything runs: write "
                                          "the file's path from the imported file's folder in its place"))
        return
    if folder is None or not name or Path(name).is_absolute():
        spec.refused.append(Refused(line, f"{name or 'the file'} must be a file next to the imported one, or in "
                                          "its project (a path from the file's folder)"))
        return
    path = folder / name
    top = chain[0].parent if chain else folder
    try:
        present = path.is_file()
        resolved = path.resolve()
        project = project_folder(top)
    except (OSError, RuntimeError):  # e.g. a name too long for the file system, a loop of links
        present, resolved, project = False, path, None
    if present and not resolved.is_relative_to(project or top.resolve()):
        spec.refused.append(Refused(line, f"{name} is outside {project or top.resolve()}, where EnvDesk reads "
                                          "included files: the imported file's project (the folder above it holding "
                                          f"{PROJECT_MARKED}), or without one the folder just above the file's"))
        return
    if present and not resolved.is_relative_to(top.resolve()) and resolved.suffix not in _INCLUDED_SUFFIXES:
        spec.refused.append(Refused(line, f"{name} is not named as a requirements file (.txt or .in): outside the "
                                          "imported file's folder, EnvDesk reads only those"))
        return
    if present and path.resolve() in chain:
        spec.adapted.append(Adapted(line, "nothing more", f"{name} is being read already (it includes itself, or "
                                                          "a file it includes includes it back): its lines count once",
                                    installs=False))
        return
    if depth >= _MAX_INCLUDE_DEPTH or not present:
        spec.refused.append(Refused(line, f"{name} was not found in {folder.resolve()}, where pip looks for it"
                                    if depth < _MAX_INCLUDE_DEPTH
                                    else f"{name} is included too deeply (more than {_MAX_INCLUDE_DEPTH} levels)"))
        return
    try:
        included = from_requirements(decode_text(read_file_to_import(path, name), name), path.parent,
                                     _depth=depth + 1, _chain=(*chain, path.resolve()))
    except OSError as exc:
        spec.refused.append(Refused(line, f"{name} could not be read ({exc.strerror or exc})"))
        return
    except InvalidInput as exc:
        spec.refused.append(Refused(line, exc.message))
        return
    beside = "next to the imported file" if ".." not in Path(name).parts else "from the folder of the file naming it"
    if constraints:
        _add_constraints(spec, line, name, beside, included)
        return
    spec.adapted.append(Adapted(line, f"the {len(included.requirements)} requirement(s) in {name}",
                                f"read from {name} {beside}, as pip reads it", installs=False))
    spec.constraints.extend(included.constraints)
    spec.pins.extend(included.pins)
    spec.hashed.extend(included.hashed)
    spec.requirements.extend(included.requirements)
    spec.adapted.extend(included.adapted)
    spec.refused.extend(included.refused)


CONSTRAINT_FORM = ("a constraint is a name, versions and a marker only, as pip's documentation gives it (no "
                   "extras, URL, folder or hashes: the installers disagree on those)")


CONSTRAINT_HASHES = ("pip checks the hashes of the requirement lines, never a constraint's (a file whose lines have "
                     "none it refuses as a whole, asking for them), so the constraints' name, versions and marker "
                     "narrow the versions, as uv applies them; to have files checked, give the requirement lines their "
                     "hashes")
"""What becomes of the hashes of a constraints file (pip-compile --generate-hashes writes them)."""


def _constraint_form(requirement: str) -> bool:
    """Whether a (valid) requirement is in the form a constraints file takes (CONSTRAINT_FORM): read by packaging,
    as pip and uv read it, so `six@https://...` is a URL however it is spaced."""
    if requirement.startswith("-") or "--hash" in requirement:
        return False
    from packaging.requirements import InvalidRequirement, Requirement
    try:
        parsed = Requirement(requirement)
    except InvalidRequirement:
        return False
    return parsed.url is None and not parsed.extras


def constraint_line(entry: str) -> str:
    """A constraint as an envdesk.yaml or an environment's record gives it, checked as a requirement in pip's
    constraint form; refused otherwise."""
    requirement = validate.package_spec(entry)
    if not _constraint_form(requirement):
        raise InvalidInput(f"The constraint {validate.shown(entry)} in the file is not one: {CONSTRAINT_FORM}.")
    return requirement


def _add_constraints(spec: EnvSpec, line: str, name: str, beside: str, included: EnvSpec) -> None:
    """A constraints file's lines as `spec`'s constraints, each in the form pip takes there (CONSTRAINT_FORM); the
    others refused, and what the file itself refused or included."""
    nested = [item.line for item in included.adapted if item.line.startswith(("-r", "--requirement"))]
    if nested:  # pip installs what it names, uv constrains with it: neither is taken for the other
        spec.refused.append(Refused(line, f"{name} includes {nested[0]}, whose lines pip would install and uv "
                                          "would take as constraints: move that line to the requirements file"))
        return
    taken, hashed = [], {without_hashes(line) for line in included.hashed}
    for requirement in [*included.requirements, *included.constraints]:
        if not _constraint_form(requirement):
            spec.refused.append(Refused(requirement, f"in {name}: {CONSTRAINT_FORM}"))
        else:
            taken.append(requirement)
    spec.constraints.extend(taken)
    spec.adapted.append(Adapted(line, f"the {counted(len(taken), 'constraint')} in {name}",
                                f"read from {name} {beside}: as pip's -c, they narrow the versions of what is "
                                "installed, now and in every later install into this environment, and install "
                                "nothing themselves", installs=False))
    unhashed = [requirement for requirement in taken if requirement in hashed]
    if unhashed:
        spec.adapted.append(Adapted(f"the --hash options of {counted(len(unhashed), 'constraint')} in {name}",
                                    "left out", CONSTRAINT_HASHES, installs=False))
    spec.adapted.extend(included.adapted)
    spec.refused.extend(included.refused)


def _apply_header(spec: EnvSpec, text: str) -> None:
    for item in text.split():
        key, _, value = item.partition("=")
        if key == "kind" and value in KINDS:
            spec.kind, spec.kind_named = value, True
        elif key == "python":
            spec.python = value
        elif key == "modules":
            spec.modules = [validate.module_name(m) for m in value.split(",") if m]
        elif key == "system-site-packages":
            spec.system_site_packages = value == "yes"


_CONDA_NAME = r"[A-Za-z0-9_][A-Za-z0-9._-]*"
_CONDA_VERSION = r"[A-Za-z0-9._*+!]+"
_CONDA_RANGE = rf"(?:[=<>!~]{{1,2}}\s*)?{_CONDA_VERSION}(?:\s*[,|]\s*(?:[=<>!~]{{1,2}}\s*)?{_CONDA_VERSION})*"
_CONDA_SPEC = (rf"^(?:[A-Za-z0-9_][A-Za-z0-9._/-]*::)?{_CONDA_NAME}"
               rf"(?:\[[^\[\]]*\]|(?:\s*(?=[=<>!~])|\s+){_CONDA_RANGE}(?:(?:=|\s+)[A-Za-z0-9._*+]+)?)?$")
"""The match specs conda reads in an environment.yml: 'numpy', 'numpy=1.26', 'numpy>=1.24,<2', 'python 3.9.*|3.10.*',
'numpy=1.26.4=py311h64a7726_0', 'numpy 1.26.4 py311h64a7726_0', "numpy[version='>=1.26',build=py311*]" (as conda's
history writes ranges), each after an optional 'channel::'."""
_CONDA_EXACT = (rf"^({_CONDA_NAME})(?:\s*==\s*([A-Za-z0-9._+!]+)(?:=([A-Za-z0-9._+]+))?"
                rf"|=([A-Za-z0-9._+!]+)=([A-Za-z0-9._+]+)|\s+([A-Za-z0-9._+!]+)(?:\s+([A-Za-z0-9._+]+))?)$")
"""A match spec conda reads as one exact version (and build, if any): 'numpy==1.26.4', 'numpy=1.26.4=py311_0',
'numpy 1.26.4 [py311_0]'. Not 'numpy=1.26.4', which conda reads as 1.26.4.* (and 'python=3.11' as any 3.11)."""


def conda_pin(entry: str) -> Pin | None:
    """The exact pin a conda match spec is (see _CONDA_EXACT), with its channel; None for any other spec."""
    channel, _, bare = " ".join(entry.split()).rpartition("::")
    bracket = conda_bracket(bare)
    if bracket:  # numpy[version='1.26.4',build=py311_0] is 'numpy 1.26.4 py311_0'
        head, fields = bracket
        if set(fields) - {"version", "build"} or not fields.get("version"):
            return None
        bare = " ".join(part for part in (head, fields["version"], fields.get("build")) if part)
    exact = re.match(_CONDA_EXACT, bare)
    if not exact:
        return None
    version, build = next((exact.group(i), exact.group(i + 1)) for i in (2, 4, 6) if exact.group(i))
    return Pin(name=exact.group(1), version=version, source="conda", build=build, channel=channel or None)


def conda_version_text(entry: str) -> str:
    """The versions a conda match spec asks for, as written ('>=3.9,<3.12' of 'python>=3.9,<3.12' and of
    "python[version='>=3.9,<3.12']"; '' for none)."""
    bare = " ".join(entry.split()).rpartition("::")[2]
    bracket = conda_bracket(bare)
    if bracket:
        return bracket[1].get("version", "")
    return bare[len(conda_entry_name(bare)):].strip()


def conda_python_version(entry: str) -> str | None:
    """The Python a conda match spec for python asks for, where it is one version or one family, which a venv's
    Python can be chosen by: '3.11' (any 3.11) for 'python=3.11', 'python 3.11.*' and 'python=3.11.*=*_cpython';
    '3.11.5' for 'python=3.11.5=h955ad1f_0' and 'python==3.11.5'; '3.11.0' for 'python==3.11', which conda reads as
    exactly 3.11.0. '' for 'python' alone; None for a range, which conda has to choose within."""
    bare = " ".join(entry.split()).rpartition("::")[2]
    bracket = conda_bracket(bare)
    if bracket:  # python[version='>=3.9,<3.12'] is python >=3.9,<3.12 (its build, as any build, chooses no version)
        bare = f"{bracket[0]} {bracket[1].get('version', '')}".strip()
    if bare == "python":
        return ""
    pin = conda_pin(bare)
    if pin and re.fullmatch(r"[0-9]+(?:\.[0-9]+)*", pin.version):
        parts = pin.version.split(".")
        return ".".join(parts + ["0"] * (3 - len(parts)))
    family = re.fullmatch(r"python(?:\s*=\s*([0-9][0-9.]*?)(?:\.\*)?|\s+([0-9][0-9.]*?)\.\*)"
                          r"(?:(?:=|\s+)[A-Za-z0-9._*+]+)?", bare)
    return next(v for v in family.groups() if v) if family else None


_CONDA_KEYS = {"name", "channels", "dependencies", "prefix", "variables"}


def from_conda_yaml(text: str, folder: Path | None = None) -> EnvSpec:
    """Read conda's environment.yml (as `conda env export` or a person writes it), accounting for every entry."""
    data = _safe_yaml(text, "environment.yml file")
    if not isinstance(data, dict) or not isinstance(data.get("dependencies", []), list):
        raise InvalidInput("This is not a conda environment file (no 'dependencies:' list).")
    spec = EnvSpec(kind="conda", name=str(data["name"]) if data.get("name") else None)
    for channel in _str_list(data.get("channels"), "channels"):
        try:
            spec.channels.append(validate.conda_channel(channel))
        except InvalidInput as exc:
            spec.refused.append(Refused(f"channel {channel}", exc.message))
    for key in sorted(set(map(str, data)) - _CONDA_KEYS):
        spec.refused.append(Refused(f"{key}:", f"'{key}' is not a key of conda's environment.yml"))
    if data.get("prefix"):
        spec.adapted.append(Adapted(f"prefix: {data['prefix']}", "the target's environment folder",
                                    "the prefix is a folder of the machine the file came from; the environment "
                                    "is made in the target's own folder", installs=False))
        if spec.name is None:  # conda names such an environment after its prefix's last folder, if a name
            try:
                spec.name = validate.env_name(re.split(r"[/\\]", str(data["prefix"]).rstrip("/\\"))[-1])
            except InvalidInput:
                pass  # named after the file (importing.name_from_file)
    if data.get("variables"):
        names = ", ".join(map(str, data["variables"])) if isinstance(data["variables"], dict) else "…"
        spec.refused.append(Refused(f"variables ({names})", "EnvDesk does not set environment variables in an "
                                    "environment: set them where it is used (its job script, or your shell)"))
    for item in data.get("dependencies") or []:
        _read_conda_item(spec, item, folder)
    return spec


def _read_conda_item(spec: EnvSpec, item: Any, folder: Path | None) -> None:
    if isinstance(item, dict):
        if set(item) != {"pip"}:
            spec.refused.append(Refused(reprlib.repr(item), "only a 'pip:' list may appear inside dependencies"))
            return
        pip_part = from_requirements("\n".join(_str_list(item.get("pip"), "pip")), folder)
        spec.constraints.extend(pip_part.constraints)
        spec.pins.extend(pip_part.pins)
        spec.hashed.extend(pip_part.hashed)
        spec.requirements.extend(r for r in pip_part.requirements if r not in spec.requirements)
        spec.adapted.extend(pip_part.adapted)
        spec.refused.extend(pip_part.refused)
        return
    entry = " ".join(str(item).split())
    try:
        validate.plain_text(entry, "dependency")
    except InvalidInput as exc:
        spec.refused.append(Refused(entry[:200], exc.message))
        return
    if not re.match(_CONDA_SPEC, entry):
        spec.refused.append(Refused(entry, "this is not a conda package specification"))
        return
    bracket = conda_bracket(entry.split("::")[-1])
    if bracket and set(bracket[1]) - {"version", "build"}:  # R18: a channel or URL there escaped their checks
        spec.refused.append(Refused(entry, "in conda's bracket form EnvDesk reads only version= and build=: "
                                           "write a channel as channel::name, and a package file as a line of "
                                           "its own"))
        return
    if conda_entry_name(entry) == "python":
        spec.python = conda_python_version(entry) or None  # a range ('python>=3.9,<3.12') asks for no one version
    pin = conda_pin(entry)
    if pin:
        spec.pins.append(pin)
    spec.conda_requirements.append(entry)


def from_pylock(text: str, folder: Path | None = None) -> EnvSpec:
    """Read a PEP 751 lock file (pylock.toml), checked by PyPA's own reader: every locked package, pinned
    to its exact version, commit or archive."""
    from packaging.pylock import Pylock, PylockUnsupportedVersionError, PylockValidationError
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        lock = Pylock.from_dict(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"This pylock.toml is not valid TOML ({exc}).") from exc
    except PylockUnsupportedVersionError as exc:
        raise InvalidInput(f"This pylock.toml is of a version EnvDesk does not read ({exc}).") from exc
    except PylockValidationError as exc:
        raise InvalidInput(f"This is not a valid PEP 751 lock file: {exc}.") from exc
    spec = EnvSpec(source={"format": "pylock"}, kind_named=False,
                   requires_python=str(lock.requires_python) if lock.requires_python else None)
    groups = frozenset(lock.default_groups or [])
    for package in lock.packages:
        marker = _lock_marker(package.marker, groups) if package.marker is not None else True
        if marker is False:
            spec.adapted.append(Adapted(str(package.name), "left out", f"the lock keeps it for {package.marker}, and "
                                        f"an install takes the lock's default groups "
                                        f"({', '.join(sorted(groups)) or 'none'}) and no extras, as uv's does",
                                        installs=False))
        elif marker is None:
            spec.refused.append(Refused(str(package.name), f"its marker ({package.marker}) uses the lock's groups or "
                                                           "extras in a form EnvDesk cannot read"))
        else:
            _read_locked_package(spec, package, "" if marker is True else f" ; {marker}", folder)
    return spec


_LOCK_VARIABLES = ("extras", "dependency_groups")


def _lock_marker(marker: Any, groups: frozenset[str]) -> bool | str | None:
    """A lock's package marker with its lock-file parts settled (PEP 751: `'dev' in dependency_groups`, `extras`,
    judged with the default groups and no extras, as an install takes them): True (always installed), False (never),
    the rest of the marker, judged where it is installed; None where its form cannot be read. An installer given the
    marker as written fails on it (pip: 'Invalid marker')."""
    from packaging.markers import Marker

    def atom(item: tuple) -> bool | str:
        text = " ".join(part.serialize() for part in item)
        if any(getattr(part, "value", None) in _LOCK_VARIABLES for part in item):
            return Marker(text).evaluate({"extras": frozenset(), "dependency_groups": groups},  # type: ignore[dict-item]
                                         context="lock_file")
        return text

    def settle(items: list) -> bool | str:
        alternatives: list[list[bool | str]] = [[]]
        for item in items:
            if item == "or":
                alternatives.append([])
            elif item != "and":
                alternatives[-1].append(settle(item) if isinstance(item, list) else atom(item))
        kept: list[str] = []
        for terms in alternatives:
            if False in terms:
                continue
            rest = [term for term in terms if isinstance(term, str)]
            if not rest:
                return True
            kept.append(" and ".join(f"({term})" if " or " in term else term for term in rest))
        return " or ".join(kept) if kept else False

    if not any(name in str(marker) for name in _LOCK_VARIABLES):
        return str(marker)
    try:
        return settle(marker._markers)  # packaging's parsed form: atoms, nested lists, "and", "or"
    except (AttributeError, TypeError, ValueError):
        return None


def _read_locked_package(spec: EnvSpec, package: Any, marker: str, folder: Path | None) -> None:
    name, version = str(package.name), str(package.version) if package.version is not None else None
    shown = f"{name}=={version}" if version else name
    hashes = sorted({f"--hash={algorithm}:{value}" for item in [*(package.wheels or []), package.sdist]
                     if item is not None for algorithm, value in (item.hashes or {}).items()
                     if algorithm in ("sha256", "sha384", "sha512")})
    if package.vcs is not None and package.vcs.url:
        line = f"{name} @ {package.vcs.type}+{package.vcs.url}@{package.vcs.commit_id}" + (
            f"#subdirectory={package.vcs.subdirectory}" if package.vcs.subdirectory else "")
    elif package.archive is not None and package.archive.url:
        line = f"{name} @ {package.archive.url}"
    elif package.directory is not None and folder is not None and not marker:
        # a folder beside the lock (relative to it, PEP 751), as `-e ./pkg` beside a requirements file is read
        where = str(package.directory.path)
        if package.directory.editable:
            _read_relative_editable(spec, f"{name} (directory {where}, editable)", where, folder, 0, ())
            return
        try:
            resolved = (folder / where).resolve()
        except (OSError, RuntimeError):
            spec.refused.append(Refused(shown, f"{name} comes from {LOCAL_SOURCE}"))
            return
        line = f"{name} @ {resolved.as_uri()}"
        spec.adapted.append(Adapted(f"{name} (directory {where})", line, "the folder as this computer names it "
                                    "(from the lock's own folder)", installs=False))
        _read_requirement_line(spec, line, None, 0, ())
        return
    elif package.directory is not None or package.vcs is not None or package.archive is not None:
        spec.refused.append(Refused(shown, f"{name} comes from {LOCAL_SOURCE}"))
        return
    else:
        line = shown
    try:
        requirement = validate.package_spec(line + marker)
    except InvalidInput as exc:
        spec.refused.append(Refused(line + marker, exc.message))
        return
    if version and line == shown and hashes:  # pip checks each file against the lock's hashes
        spec.hashed.append(" ".join([requirement, *hashes]))
    elif version and not marker and line == shown:
        spec.pins.append(Pin(name=name, version=version))
    else:
        spec.requirements.append(requirement)


def from_text(text: str, filename: str = "", folder: Path | None = None) -> EnvSpec:
    """Read a file in whichever format it is in; anything malformed is an InvalidInput, never a crash.

    `folder` is where the file is (for `-r other.txt` lines); None reads nothing else. A byte-order mark left
    at the start of the text is taken off (pip, PyYAML and tomllib would each read it differently).
    """
    try:
        return _from_text(text[1:] if text.startswith("\ufeff") else text, filename, folder)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise InvalidInput(f"The file {filename or ''} is not a well-formed environment file.".replace("  ", " "),
                           "Check the file; nothing was changed.") from exc
    except RecursionError as exc:  # lists or tables nested thousands deep: no environment file is
        raise InvalidInput(f"The file {filename or ''} is nested too deeply to be an environment file."
                           .replace("  ", " "), "Check the file; nothing was changed.") from exc


def _from_text(text: str, filename: str, folder: Path | None) -> EnvSpec:
    lowered = filename.lower()
    other_tool = _other_tools_file(lowered, text, filename or "This file")
    if other_tool:
        raise other_tool
    if re.fullmatch(r"pylock(\.[^.]+)?\.toml", lowered) or re.search(r"^lock-version\s*=", text, re.MULTILINE):
        return from_pylock(text, folder)
    if lowered.endswith((".txt", ".in")):
        return _requirements_file(text, filename, folder)
    data_head = text.lstrip()[:2000]
    if re.search(r"^envdesk\s*:", data_head, re.MULTILINE):
        return from_envdesk_yaml(text)
    if re.search(r"^dependencies\s*:", data_head, re.MULTILINE) or lowered.endswith(("environment.yml",
                                                                                       "environment.yaml")):
        return from_conda_yaml(text, folder)
    if lowered.endswith((".yml", ".yaml")):
        raise InvalidInput("This YAML file is neither an envdesk.yaml nor a conda environment file.")
    return _requirements_file(text, filename, folder)


def _requirements_file(text: str, filename: str, folder: Path | None) -> EnvSpec:
    """A whole file read as requirements; an empty one (or one of comments only) is refused rather than
    making an empty environment."""
    spec = from_requirements(text, folder, _chain=((folder / filename).resolve(),) if folder is not None else ())
    if spec.refused or installs_something(spec) or re.search(_HEADER, text, re.MULTILINE):
        return spec  # an export's header describes an environment even when it holds no package
    return require_packages(spec, filename)


def installs_something(spec: EnvSpec) -> bool:
    """Whether any line of the file `spec` was read from installs a package."""
    return bool(spec.pins or spec.requirements or spec.hashed or spec.conda_requirements
                or any(a.installs for a in spec.adapted))


def require_packages(spec: EnvSpec, filename: str = "") -> EnvSpec:
    """`spec` when at least one line of its file installs something; else the plain refusal, before anything
    is created: such a file would make an empty environment and report success (/dev/null, a README given
    by mistake, a file whose every line is refused)."""
    if installs_something(spec):
        return spec
    shown = filename or "The file"
    if not spec.refused:
        raise InvalidInput(f"{shown} holds no package: it is empty or has only comments. Nothing was created.",
                           "Import a requirements file (pip freeze > requirements.txt), an environment.yml, a "
                           "pylock.toml or an envdesk.yaml.")
    listed = "; ".join(f"{validate.shown(r.line)} ({r.reason})" for r in spec.refused[:3])
    more = f" and {len(spec.refused) - 3} more" if len(spec.refused) > 3 else ""
    raise InvalidInput(f"No package can be read from {shown}: every line of it is refused: {listed}{more}. "
                       "Nothing was created.", "Check that it is a requirements file, an environment.yml, a "
                                               "pylock.toml or an envdesk.yaml.")


PIPENV_ADVICE = ("Make a requirements file from it with pipenv, in the project's folder: pipenv requirements > "
                  "requirements.txt (the exact versions of Pipfile.lock: run pipenv lock first if there is none; "
                  "add --dev for the development packages too). Then import requirements.txt.")
POETRY_ADVICE = ("Make a requirements file from it with Poetry, in the project's folder: poetry export -f "
                  "requirements.txt --output requirements.txt (Poetry 2 needs its export plugin first: poetry self "
                  "add poetry-plugin-export). Then import requirements.txt.")


def _other_tools_file(lowered: str, text: str, shown: str) -> InvalidInput | None:
    """The refusal, with the way out, for the files of pipenv and Poetry (known by their name or their shape):
    read as requirements, every line of them would be refused."""
    head = text[:4000]
    poetry_shaped = re.search(r"^\[\[package\]\]", head, re.MULTILINE) and \
        re.search(r"^content-hash\s*=", text, re.MULTILINE)
    if lowered == "poetry.lock" or "@generated by Poetry" in head[:300] or poetry_shaped:
        return InvalidInput(f"{shown} is Poetry's lock file, not a file EnvDesk imports. Nothing was "
                            "created.", POETRY_ADVICE)
    if lowered == "pipfile.lock" or (head.lstrip().startswith("{") and '"_meta"' in head):
        return InvalidInput(f"{shown} is pipenv's lock file, not a file EnvDesk imports. Nothing "
                            "was created.", PIPENV_ADVICE)
    if lowered == "pipfile" or re.search(r"^\[(?:dev-)?packages\]\s*$", head, re.MULTILINE):
        return InvalidInput(f"{shown} is pipenv's Pipfile, not a file EnvDesk imports. Nothing was created.",
                            PIPENV_ADVICE)
    return None
