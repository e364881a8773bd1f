"""Cluster presets: ready-made settings for well-known cluster families.

Each preset is one YAML file in ``envdesk.resources/presets``. It says which login nodes
users pick from, how the login goes (key, password, one-time code), where environments
live, which pip options and environment kind the site wants, and plain notes about its
rules. :meth:`Preset.profile_fields` turns a preset into the keyword arguments of a
:class:`~envdesk.backend.config.ClusterProfile`.

A preset also carries the SSH host key fingerprints its site publishes for the login nodes (each
with the page it was read from and the day it was checked), and the page where users register
their public key. :func:`judge_host_key` compares what a server presents with them.
"""
from __future__ import annotations

import datetime
import functools
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from . import validate
from .config import AUTH_METHODS
from .errors import ConfigError, InvalidInput, NotFound
from .fileio import read_yaml
from .kinds import KINDS

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    from .hostkeys import ServerIdentity

PRESET_AUTH_METHODS = tuple(method for method in AUTH_METHODS if method != "auto")
OTHER_ID = "other"

_FIELDS = ("id", "label", "description", "hosts", "auth", "auth_help", "env_roots", "pip_args",
           "preferred_kind", "python_modules_hint", "system_site_packages", "docs_url", "notes",
           "host_keys", "key_page", "slurm_account_required")
_OPTIONAL_FIELDS = ("login_node_limits", "conda_channels")
_LIMIT_FIELDS = ("summary", "build_on_compute_node", "source", "checked")
_HOST_FIELDS = ("name", "host", "port")
_HOST_KEY_FIELDS = ("host", "type", "fingerprint", "source", "checked")
HOST_KEY_TYPES = {"ED25519": ("ssh-ed25519",), "RSA": ("ssh-rsa",),
                  "ECDSA": ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")}
"""The key types sites name in their lists, and the SSH names of the keys a server presents."""
_FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")

T = TypeVar("T")


@dataclass(frozen=True)
class PresetHost:
    """One login node users can pick, e.g. Narval at narval.alliancecan.ca port 22."""

    name: str
    host: str
    port: int = 22


@dataclass(frozen=True)
class PublishedHostKey:
    """One host key fingerprint a site publishes, with where it was read and when."""

    host: str
    type: str  # ED25519, RSA or ECDSA, as sites list them
    fingerprint: str  # "SHA256:..." as ssh-keygen -l prints it
    source: str  # the https:// page that lists it
    checked: str  # YYYY-MM-DD: the day the page was read

    def fits(self, key_type: str) -> bool:
        """Whether a server key of SSH type `key_type` (e.g. ssh-ed25519) is of this entry's type."""
        return key_type in HOST_KEY_TYPES[self.type]


@dataclass(frozen=True)
class LoginNodeLimits:
    """What a site says about long or heavy processes on its login nodes, with the page that says it and the day
    it was read; `build_on_compute_node`: whether its clusters' builds go to a compute node (a Slurm job) unless
    the profile says otherwise."""

    summary: str
    build_on_compute_node: bool
    source: str
    checked: str


MATCHES, DOES_NOT_MATCH, NOT_PUBLISHED = "matches", "does not match", "not published"


@dataclass(frozen=True)
class HostKeyVerdict:
    """What a server's key is, measured against the fingerprints its site publishes."""

    status: str  # MATCHES, DOES_NOT_MATCH or NOT_PUBLISHED
    site: str = ""  # the preset's label ("" when nothing is published for the host)
    published: tuple[PublishedHostKey, ...] = ()  # the site's entries for that host
    matched: PublishedHostKey | None = None

    @property
    def headline(self) -> str:
        """One plain sentence for the trust question."""
        if self.status == MATCHES:
            return f"This matches the fingerprint {self.site} publishes."
        if self.status == DOES_NOT_MATCH:
            return f"DOES NOT match: do not connect. {self.site} publishes other fingerprints for this server."
        return "Not published: compare by hand with what your cluster's documentation or support gives you."

    @property
    def sources(self) -> tuple[tuple[str, str], ...]:
        """(page, date checked) of the entries the verdict rests on, each page once."""
        entries = (self.matched,) if self.matched is not None else self.published
        return tuple(dict.fromkeys((entry.source, entry.checked) for entry in entries))

    def lines(self) -> list[str]:
        """The verdict for a terminal: headline, what is published, and where it was read."""
        out = [self.headline]
        if self.status == DOES_NOT_MATCH:
            out += [f"  {entry.type} {entry.fingerprint}" for entry in self.published]
        out += [f"Source: {page} (checked {checked})" for page, checked in self.sources]
        return out


@dataclass(frozen=True)
class Preset:
    """A cluster family's settings, read from ``resources/presets/<id>.yaml``."""

    id: str
    label: str
    description: str
    hosts: tuple[PresetHost, ...]
    auth: str
    auth_help: str
    env_roots: tuple[str, ...]
    pip_args: tuple[str, ...]
    preferred_kind: str
    python_modules_hint: str
    system_site_packages: bool
    docs_url: str
    notes: tuple[str, ...]
    host_keys: tuple[PublishedHostKey, ...] = ()
    key_page: str = ""  # where users register their public key ("" if the site has no such page)
    slurm_account_required: bool = False  # batch jobs are refused without #SBATCH --account
    login_node_limits: LoginNodeLimits | None = None  # None: the site documents none
    conda_channels: tuple[str, ...] = ()  # the conda channels the site documents, in order (none: conda's own)

    @property
    def modules(self) -> tuple[str, ...]:
        """The modules of :attr:`python_modules_hint`, one per item (empty if none are needed)."""
        return tuple(self.python_modules_hint.split())

    def profile_fields(self, host_index: int = 0, user: str | None = None, *,
                       host: str | None = None) -> dict[str, Any]:
        """Keyword arguments for ``ClusterProfile(name=..., **fields)``.

        `host_index` picks one of :attr:`hosts`; `host` replaces it with a login node the
        user typed. A preset that lists no login node (``other``) gives an empty host until
        one is typed, which ClusterProfile refuses with a plain message.
        """
        if host is not None:
            address, port = validate.host(host), (self.hosts[0].port if self.hosts else 22)
        elif not self.hosts:
            address, port = "", 22
        elif not 0 <= host_index < len(self.hosts):
            raise InvalidInput(f"The {self.label} preset has no login node number {host_index}.",
                               f"Pick one of: {', '.join(h.name for h in self.hosts)}.")
        else:
            address, port = self.hosts[host_index].host, self.hosts[host_index].port
        return {"host": address, "port": port, "user": user, "env_roots": list(self.env_roots),
                "pip_args": list(self.pip_args), "preset": self.id, "auth": self.auth,
                "conda_channels": list(self.conda_channels)}


    def published_for(self, host: str) -> tuple[PublishedHostKey, ...]:
        """The fingerprints this site publishes for `host` (names compared without case)."""
        return tuple(entry for entry in self.host_keys if entry.host.casefold() == host.casefold())

    def judge(self, identity: ServerIdentity) -> HostKeyVerdict:
        """Whether the key a server presented is one this site publishes for that host.

        When the site publishes any fingerprint for the host, a key that matches none of them is
        DOES_NOT_MATCH, whatever its type: an impostor must not escape by offering another type.
        """
        published = self.published_for(identity.host)
        if not published:
            return HostKeyVerdict(NOT_PUBLISHED)
        for entry in published:
            if entry.fits(identity.key_type) and entry.fingerprint == identity.fingerprint:
                return HostKeyVerdict(MATCHES, self.label, published, entry)
        return HostKeyVerdict(DOES_NOT_MATCH, self.label, published)


def judge_host_key(identity: ServerIdentity, presets: list[Preset] | None = None) -> HostKeyVerdict:
    """The verdict of the first preset that publishes fingerprints for the server's host name.

    `presets` defaults to the ones EnvDesk ships; if they cannot be read, nothing counts as
    published (the user compares by hand, as without EnvDesk).
    """
    if presets is None:
        try:
            presets = load_presets()
        except ConfigError:
            presets = []
    for preset in presets:
        if preset.published_for(identity.host):
            return preset.judge(identity)
    return HostKeyVerdict(NOT_PUBLISHED)


def preferred_kind(preset_id: str | None) -> str | None:
    """The environment kind the preset `preset_id` (a profile's `preset`) names as its site's way, e.g. the
    Alliance's virtualenv. None for no preset, for `other` (its kind is a default for any site, not a site's word)
    and for one EnvDesk does not ship (any more)."""
    if not preset_id or preset_id == OTHER_ID:
        return None
    try:
        return get_preset(preset_id).preferred_kind
    except (NotFound, ConfigError):
        return None


def load_presets(folder: str | os.PathLike[str] | Traversable | None = None) -> list[Preset]:
    """Every preset in `folder` (default: the ones EnvDesk ships), ``other`` last.

    Any malformed file is a ConfigError that names it; nothing is silently skipped. The shipped ones are
    read once per process (they are package data: the window asks for them at every selection).
    """
    if folder is None:
        return list(_shipped_presets())
    return _read_presets(_as_traversable(folder))


@functools.lru_cache(maxsize=1)
def _shipped_presets() -> tuple[Preset, ...]:
    return tuple(_read_presets(_default_folder()))


def _read_presets(where: Traversable) -> list[Preset]:
    try:
        entries = sorted((e for e in where.iterdir() if e.name.endswith(".yaml") and e.is_file()),
                         key=lambda e: e.name)
    except OSError as exc:
        raise ConfigError(f"Could not read the cluster presets in {where}: {exc.strerror or exc}.",
                          "Reinstall EnvDesk, or give a folder that exists.") from exc
    if not entries:
        raise ConfigError(f"No cluster presets were found in {where}.",
                          "Reinstall EnvDesk: its preset files are missing.")
    presets = [_load_file(entry) for entry in entries]
    return sorted(presets, key=lambda p: (p.id == OTHER_ID, p.label.casefold()))


def get_preset(preset_id: str, folder: str | os.PathLike[str] | Traversable | None = None) -> Preset:
    """The preset called `preset_id`, or a NotFound that lists the ones that exist."""
    presets = load_presets(folder)
    for preset in presets:
        if preset.id == preset_id:
            return preset
    raise NotFound(f"There is no cluster preset called {preset_id!r}.",
                   f"Known presets: {', '.join(p.id for p in presets)}.")


def _default_folder() -> Traversable:
    return resources.files("envdesk.resources") / "presets"


def _as_traversable(folder: str | os.PathLike[str] | Traversable) -> Traversable:
    return Path(folder) if isinstance(folder, (str, os.PathLike)) else folder


def _load_file(entry: Traversable) -> Preset:
    """Read and check one preset file; every problem becomes a ConfigError naming it."""
    try:
        data = read_yaml(entry, what="cluster preset")  # type: ignore[arg-type]
    except UnicodeDecodeError as exc:
        raise ConfigError(f"The cluster preset file {entry} is not UTF-8 text.",
                          _FIX_HINT) from exc
    except ConfigError as exc:
        raise ConfigError(exc.message, _FIX_HINT) from exc
    try:
        return _parse(data, Path(entry.name).stem)
    except (InvalidInput, ConfigError) as exc:
        raise ConfigError(f"The cluster preset file {entry} is malformed. {exc.message}",
                          exc.hint or _FIX_HINT) from exc


_FIX_HINT = "Fix or remove the file; the presets EnvDesk ships come back when you reinstall it."


def _parse(data: Any, stem: str) -> Preset:
    """Build a Preset from loaded YAML, refusing anything missing, unknown or mistyped."""
    fields = _mapping(data, _FIELDS, "The file", optional=_OPTIONAL_FIELDS)
    preset_id = _text(fields["id"], "id")
    validate.cluster_name(preset_id)
    if preset_id != stem:
        raise InvalidInput(f"Its id {preset_id!r} differs from its file name {stem!r}.",
                           f"Call the file {preset_id}.yaml, or set id: {stem}.")
    auth = _text(fields["auth"], "auth")
    if auth not in PRESET_AUTH_METHODS:
        raise InvalidInput(f"Its auth is {auth!r}.", f"Use one of: {', '.join(PRESET_AUTH_METHODS)}.")
    kind = _text(fields["preferred_kind"], "preferred_kind")
    if kind not in KINDS:
        raise InvalidInput(f"Its preferred_kind is {kind!r}.", f"Use one of: {', '.join(KINDS)}.")
    hint = _typed(fields["python_modules_hint"], str, "The python_modules_hint", "text")
    for module in hint.split():
        validate.module_name(module)
    docs_url = _https(_text(fields["docs_url"], "docs_url"), "docs_url")
    key_page = _typed(fields["key_page"], str, "The key_page", "text").strip()
    if key_page:
        _https(validate.plain_text(key_page, "key_page"), "key_page")
    return Preset(
        id=preset_id,
        label=_text(fields["label"], "label"),
        description=_text(fields["description"], "description"),
        hosts=tuple(_host(entry, n) for n, entry in enumerate(_list(fields["hosts"], "hosts"), 1)),
        auth=auth,
        auth_help=_text(fields["auth_help"], "auth_help"),
        env_roots=_items(fields["env_roots"], "env_roots", validate.remote_folder),
        pip_args=_items(fields["pip_args"], "pip_args", lambda arg: validate.plain_text(arg, "pip argument")),
        preferred_kind=kind,
        python_modules_hint=hint,
        system_site_packages=_typed(fields["system_site_packages"], bool,
                                    "The system_site_packages", "true or false"),
        slurm_account_required=_typed(fields["slurm_account_required"], bool,
                                      "The slurm_account_required", "true or false"),
        docs_url=docs_url,
        notes=_items(fields["notes"], "notes", lambda note: validate.plain_text(note, "note")),
        host_keys=tuple(_host_key(entry, n) for n, entry in enumerate(_list(fields["host_keys"], "host_keys"), 1)),
        key_page=key_page,
        login_node_limits=_limits(fields["login_node_limits"]) if "login_node_limits" in fields else None,
        conda_channels=_items(fields.get("conda_channels", []), "conda_channels", validate.conda_channel_setting),
    )


def _limits(data: Any) -> LoginNodeLimits:
    """The `login_node_limits` entry: a summary, the preset's choice for builds, its page and the day read."""
    fields = _mapping(data, _LIMIT_FIELDS, "The login_node_limits")
    return LoginNodeLimits(
        summary=_text(fields["summary"], "login_node_limits summary"),
        build_on_compute_node=_typed(fields["build_on_compute_node"], bool,
                                     "The login_node_limits build_on_compute_node", "true or false"),
        source=_https(_text(fields["source"], "login_node_limits source"), "login_node_limits source"),
        checked=_date(fields["checked"], "The login_node_limits"))


def _https(url: str, name: str) -> str:
    if not url.startswith("https://") or len(url) <= len("https://") or any(c.isspace() for c in url):
        raise InvalidInput(f"Its {name} {url!r} is not an https:// address.")
    return url


def _host_key(data: Any, number: int) -> PublishedHostKey:
    """One entry of `host_keys`: a host, a key type, a SHA256 fingerprint, its page and the day read."""
    where = f"Host key {number} in host_keys"
    fields = _mapping(data, _HOST_KEY_FIELDS, where)
    host = validate.host(_typed(fields["host"], str, f"The host of host key {number}", "text"))
    key_type = _text(fields["type"], f"type of host key {number}")
    if key_type not in HOST_KEY_TYPES:
        raise InvalidInput(f"{where} has type {key_type!r}.", f"Use one of: {', '.join(HOST_KEY_TYPES)}.")
    printed = _text(fields["fingerprint"], f"fingerprint of host key {number}")
    if not _FINGERPRINT.fullmatch(printed):
        raise InvalidInput(f"{where} has fingerprint {printed!r}, which is not a SHA256 fingerprint.",
                           "Copy it as ssh-keygen -l prints it: SHA256: and 43 characters (no MD5, no colons).")
    checked = _date(fields["checked"], where)
    source = _https(_text(fields["source"], f"source of host key {number}"), f"source of host key {number}")
    return PublishedHostKey(host=host, type=key_type, fingerprint=printed, source=source, checked=checked)


def _date(value: Any, where: str) -> str:
    """A `checked` date (YAML's date, or text like 2026-11-22) as YYYY-MM-DD."""
    checked = value
    if isinstance(checked, str):
        try:
            checked = datetime.date.fromisoformat(checked.strip())
        except ValueError:
            checked = None
    if not isinstance(checked, datetime.date) or isinstance(checked, datetime.datetime):
        raise InvalidInput(f"{where} has checked {value!r}, which is not a date like 2026-11-22.")
    return checked.isoformat()



def _host(data: Any, number: int) -> PresetHost:
    """One entry of `hosts`: exactly a name, a host and a port."""
    where = f"Login node {number} in hosts"
    fields = _mapping(data, _HOST_FIELDS, where)
    port = fields["port"]
    if isinstance(port, bool) or not isinstance(port, int):
        raise InvalidInput(f"{where} has port {port!r}, which is not a whole number.")
    host = _typed(fields["host"], str, f"The host of login node {number}", "text")
    return PresetHost(name=_text(fields["name"], f"name of login node {number}"),
                      host=validate.host(host), port=validate.port(port))


def _mapping(data: Any, names: tuple[str, ...], where: str, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """`data` as a mapping holding exactly the keys `names`, and any of `optional`."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{where} is not a mapping of settings.")
    missing = [name for name in names if name not in data]
    unknown = sorted(str(key) for key in data if key not in names and key not in optional)
    if missing:
        raise InvalidInput(f"{where} lacks {', '.join(missing)}.")
    if unknown:
        raise InvalidInput(f"{where} has unknown setting(s) {', '.join(unknown)}.",
                           f"Known settings: {', '.join(names + optional)}.")
    return data


def _typed(value: Any, kind: type[T], subject: str, described: str) -> T:
    """`value` if it is a `kind` (YAML's true/false never pass for a number or text)."""
    if isinstance(value, bool) is not (kind is bool) or not isinstance(value, kind):
        raise InvalidInput(f"{subject} is {value!r}, which is not {described}.")
    return value


def _text(value: Any, name: str) -> str:
    """A required one-line text: surrounding spaces trimmed, never empty."""
    text = _typed(value, str, f"The {name}", "text").strip()
    return validate.plain_text(text, name)


def _list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidInput(f"The {name} setting is {value!r}, which is not a list.")
    return value


def _items(value: Any, name: str, check: Callable[[str], str]) -> tuple[str, ...]:
    """A list of texts, each passed through `check` (one of validate's checks)."""
    return tuple(check(_typed(item, str, f"An item of {name}", "text")) for item in _list(value, name))
