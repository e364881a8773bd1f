"""Server identities: checked against ~/.ssh/known_hosts and EnvDesk's own file, never auto-accepted."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .ssh_lib import paramiko

from .errors import ConfigError, HostKeyChanged, HostKeyRevoked, HostKeyTypeChanged, HostKeyUnknown
from .fileio import private_folder, write_atomically


def fingerprint(key: paramiko.PKey) -> str:
    """The key's SHA256 fingerprint exactly as OpenSSH prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def known_hosts_name(host: str, port: int) -> str:
    """How known_hosts files name a host: bare on port 22, '[host]:port' otherwise."""
    return host if port == 22 else f"[{host}]:{port}"


@dataclass(frozen=True)
class ServerIdentity:
    """What a server presented: enough to show the user and to record it."""

    host: str
    port: int
    key: paramiko.PKey

    @property
    def key_type(self) -> str:
        return self.key.get_name()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)


@dataclass(frozen=True)
class KnownKey:
    """One key line of a known_hosts file that names the host in question."""

    marker: str  # "" for a plain entry, else "revoked" or "cert-authority"
    key_type: str
    blob: bytes
    source: str


def _host_pattern_matches(patterns: str, name: str) -> bool:
    """OpenSSH's matching of a known_hosts host field: comma-separated patterns with * and ?, '!' to
    exclude, and hashed |1|salt|hash entries."""
    if patterns.startswith("|1|"):
        parts = patterns.split("|")
        if len(parts) != 4:
            return False
        try:
            salt, digest = base64.b64decode(parts[2]), base64.b64decode(parts[3])
        except (ValueError, binascii.Error):
            return False
        return hmac.compare_digest(hmac.new(salt, name.encode("utf-8"), hashlib.sha1).digest(), digest)
    matched = False
    for pattern in patterns.split(","):
        negated = pattern.startswith("!")
        wildcard = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.lstrip("!"))
        if re.fullmatch(wildcard, name, re.IGNORECASE):  # only * and ? are special, as in OpenSSH
            if negated:
                return False
            matched = True
    return matched


def read_known_hosts(path: Path, name: str) -> list[KnownKey]:
    """Every key a known_hosts file records for `name`; lines EnvDesk does not understand are skipped."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    except OSError as exc:
        raise ConfigError(f"Could not read known hosts file {path}: {exc.strerror or exc}.") from exc
    found = []
    for raw in text.splitlines():
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            continue
        marker = ""
        if fields[0].startswith("@"):
            marker, fields = fields[0][1:], fields[1:]
        if len(fields) < 3 or not _host_pattern_matches(fields[0], name):
            continue
        try:
            blob = base64.b64decode(fields[2], validate=True)
        except (ValueError, binascii.Error):
            continue
        found.append(KnownKey(marker, fields[1], blob, str(path)))
    return found


class HostKeyStore:
    """Known host keys from the user's known_hosts (read only) and EnvDesk's own file (read/write)."""

    def __init__(self, app_file: Path, user_file: Path | None = None) -> None:
        self.app_file = app_file
        self.user_file = user_file if user_file is not None else Path.home() / ".ssh" / "known_hosts"

    def _known(self, host: str, port: int) -> list[KnownKey]:
        name = known_hosts_name(host, port)
        return [*read_known_hosts(self.user_file, name), *read_known_hosts(self.app_file, name)]

    def known_types(self, host: str, port: int) -> list[str]:
        """Key types recorded for the host, so the connection can ask the server for one of them first."""
        return list(dict.fromkeys(k.key_type for k in self._known(host, port) if not k.marker))

    def verify(self, identity: ServerIdentity) -> None:
        """Return if the key is known; raise HostKeyRevoked, HostKeyChanged, HostKeyTypeChanged or
        HostKeyUnknown otherwise (as OpenSSH decides; @cert-authority lines are not used)."""
        blob = identity.key.asbytes()
        known = self._known(identity.host, identity.port)
        for entry in known:
            if entry.marker == "revoked" and entry.blob == blob:
                raise HostKeyRevoked(identity.host, identity.port, identity.key_type, identity.fingerprint,
                                     entry.source)
        plain = [entry for entry in known if not entry.marker]
        if any(entry.blob == blob for entry in plain):
            return
        same_type = [entry for entry in plain if entry.key_type == identity.key_type]
        if same_type:
            raise HostKeyChanged(identity.host, identity.port, identity.key_type, identity.fingerprint,
                                 same_type[0].source)
        if plain:
            raise HostKeyTypeChanged(identity.host, identity.port, identity.key_type, identity.fingerprint,
                                     list(dict.fromkeys(entry.key_type for entry in plain)))
        raise HostKeyUnknown(identity.host, identity.port, identity.key_type, identity.fingerprint)

    def trust(self, identity: ServerIdentity, *, replace: bool = False) -> None:
        """Record the key in EnvDesk's own file (~/.ssh/known_hosts is never rewritten).

        With `replace`, EnvDesk's earlier entries for that host go; without it, a host already known
        under another key is refused (the user must say they mean to replace it).
        """
        name = known_hosts_name(identity.host, identity.port)
        if not replace and any(not k.marker for k in self._known(identity.host, identity.port)):
            self.verify(identity)  # raises for a changed key or type; returns if already trusted
            return
        kept = []
        if replace and self.app_file.is_file():
            kept = [line for line in self.app_file.read_text(encoding="utf-8").splitlines()
                    if not (line.split() and _host_pattern_matches(line.split()[0], name))]
        line = f"{name} {identity.key_type} {identity.key.get_base64()}"
        private_folder(self.app_file.parent)
        if replace:
            write_atomically(self.app_file, "\n".join([*kept, line]) + "\n")
        else:
            fd = os.open(self.app_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8", newline="\n") as handle:
                handle.write(line + "\n")
            if os.name == "posix":
                os.chmod(self.app_file, 0o600)
