"""Server identities: checked against ~/.ssh/known_hosts and EnvDesk's own file, never auto-accepted."""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

import paramiko

from .errors import ConfigError, HostKeyChanged, HostKeyUnknown


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


class HostKeyStore:
    """Known host keys from the user's known_hosts (read only) and EnvDesk's own file (read/write)."""

    def __init__(self, app_file: Path, user_file: Path | None = None) -> None:
        self.app_file = app_file
        self.user_file = user_file if user_file is not None else Path.home() / ".ssh" / "known_hosts"

    def _load(self, path: Path) -> paramiko.HostKeys:
        keys = paramiko.HostKeys()
        if path.is_file():
            try:
                keys.load(str(path))
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"Could not read known hosts file {path}: {exc}.") from exc
        return keys

    def verify(self, identity: ServerIdentity) -> None:
        """Return if the key is known; raise HostKeyChanged or HostKeyUnknown otherwise."""
        name = known_hosts_name(identity.host, identity.port)
        for path in (self.user_file, self.app_file):
            entries = self._load(path).lookup(name)
            if not entries:
                continue
            recorded = entries.get(identity.key_type)
            if recorded is None:
                continue
            if recorded == identity.key:
                return
            raise HostKeyChanged(identity.host, identity.port, identity.key_type, identity.fingerprint, str(path))
        # A host known under another key type only is still asked about, as OpenSSH does.
        raise HostKeyUnknown(identity.host, identity.port, identity.key_type, identity.fingerprint)

    def trust(self, identity: ServerIdentity) -> None:
        """Record the key in EnvDesk's own file (appending; ~/.ssh/known_hosts is never rewritten)."""
        line = f"{known_hosts_name(identity.host, identity.port)} {identity.key_type} {identity.key.get_base64()}\n"
        self.app_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.app_file, "a", encoding="utf-8", newline="\n") as handle:
            handle.write(line)
