"""Server identities: checked against ~/.ssh/known_hosts, the system's known_hosts files and EnvDesk's own file,
never auto-accepted."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .ssh_lib import paramiko

from .errors import ConfigError, HostKeyChanged, HostKeyRevoked, HostKeyTypeChanged, HostKeyUnknown
from .fileio import private_folder, read_without_waiting, write_atomically
from .host_certificates import CERTIFICATE_ALGORITHMS, host_certificate, refusal
from .ssh_certificates import Certificate

log = logging.getLogger(__name__)

MAX_KNOWN_HOSTS_BYTES = 64 * 1024 * 1024
"""Far more than any real known_hosts file (a line is about 100 bytes): a larger file is not one, and is not read."""


def fingerprint(key: paramiko.PKey) -> str:
    """The key's SHA256 fingerprint exactly as OpenSSH prints it."""
    return blob_fingerprint(key.asbytes())


def blob_fingerprint(blob: bytes) -> str:
    """The SHA256 fingerprint of a public key blob exactly as OpenSSH prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")


def known_hosts_name(host: str, port: int, key_alias: str | None = None) -> str:
    """How known_hosts files name a host: bare on port 22, '[host]:port' otherwise; with a HostKeyAlias, the alias
    itself, whatever the port (as OpenSSH's get_hostfile_hostname_ipaddr in sshconnect.c names it)."""
    if key_alias:
        return key_alias
    return host if port == 22 else f"[{host}]:{port}"


def default_user_files() -> tuple[Path, ...]:
    """The user's known_hosts files OpenSSH reads when UserKnownHostsFile is not set."""
    folder = Path.home() / ".ssh"
    return folder / "known_hosts", folder / "known_hosts2"


def default_global_files() -> tuple[Path, ...]:
    """The system-wide known_hosts files OpenSSH reads when GlobalKnownHostsFile is not set, where an administrator
    records the keys of the site's hosts for every user: /etc/ssh's, or on Windows the OpenSSH folder of ProgramData
    (Win32-OpenSSH's __PROGRAMDATA__\\ssh)."""
    if os.name == "nt":
        folder = Path(os.environ.get("PROGRAMDATA") or r"C:\ProgramData") / "ssh"
    else:
        folder = Path("/etc/ssh")
    return folder / "ssh_known_hosts", folder / "ssh_known_hosts2"


@dataclass(frozen=True)
class ServerIdentity:
    """What a server presented: enough to show the user and to record it."""

    host: str
    port: int
    key: paramiko.PKey
    key_alias: str | None = None
    """HostKeyAlias: the name its key is recorded under in known_hosts files instead of host or [host]:port."""
    authority: str = ""
    """Why a certificate authority that a known_hosts file trusts for the host did not vouch for this key ('' where
    none is trusted for it), for the question whether to trust the key."""

    @property
    def known_hosts_name(self) -> str:
        """The name known_hosts files record this server's key under, for looking it up and for recording it."""
        return known_hosts_name(self.host, self.port, self.key_alias)

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
    text = _known_hosts_text(path)
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


def _known_hosts_text(path: Path) -> str:
    """The text of a known_hosts file; empty when it is missing, a folder, or not an ordinary file (a device such
    as /dev/null, a pipe or a socket: OpenSSH finds no key in /dev/null, and would wait forever on a pipe).
    ConfigError, in plain words, when it cannot be read or is larger than any known_hosts file."""
    try:
        found = os.stat(path)
        if not stat.S_ISREG(found.st_mode):
            if not stat.S_ISDIR(found.st_mode):
                log.info("not reading %s for host keys: it is not an ordinary file", path)
            return ""
        data = read_without_waiting(path, MAX_KNOWN_HOSTS_BYTES, lambda opened: _refuse_unusual(path, opened))
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise ConfigError(f"Could not read known hosts file {path}: {exc.strerror or exc}.") from exc
    if len(data) > MAX_KNOWN_HOSTS_BYTES:
        raise _too_large(path, len(data))
    return data.decode("utf-8", errors="replace")


def _refuse_unusual(path: Path, opened: os.stat_result) -> None:
    """ConfigError unless `path`, once open, is still an ordinary file of a known_hosts file's size."""
    if not stat.S_ISREG(opened.st_mode):
        raise ConfigError(f"The known hosts file {path} changed into something other than an ordinary file while "
                          "it was being opened, so it is not read.", _KNOWN_HOSTS_HINT)
    if opened.st_size > MAX_KNOWN_HOSTS_BYTES:
        raise _too_large(path, opened.st_size)


_KNOWN_HOSTS_HINT = "Point UserKnownHostsFile in your SSH configuration at ordinary known_hosts files."


def _too_large(path: Path, size: int) -> ConfigError:
    return ConfigError(f"The known hosts file {path} is larger ({size} bytes) than any known_hosts file "
                       f"({MAX_KNOWN_HOSTS_BYTES // (1024 * 1024)} MB at most), so it is not read: the keys it "
                       "records, revoked ones too, could not be checked.", _KNOWN_HOSTS_HINT)


class HostKeyStore:
    """Known host keys from the user's and the system's known_hosts files (read only) and EnvDesk's own file
    (read/write): a key the administrator recorded in the system's file is known, as it is to ssh.

    The user's files are OpenSSH's default ones (~/.ssh/known_hosts and known_hosts2), and the system's its default
    ones (see default_global_files), unless given: a hop whose SSH configuration sets UserKnownHostsFile or
    GlobalKnownHostsFile reads those instead (see `reading`)."""

    def __init__(self, app_file: Path, user_file: Path | None = None, user_files: Sequence[Path] | None = None,
                 global_files: Sequence[Path] | None = None) -> None:
        self.app_file = app_file
        if user_files is None:
            user_files = (user_file,) if user_file is not None else default_user_files()
        self.user_files = tuple(user_files)
        self.global_files = tuple(default_global_files() if global_files is None else global_files)

    def reading(self, user_files: Sequence[Path] | None,
                global_files: Sequence[Path] | None = None) -> HostKeyStore:
        """This store with `user_files` as the user's known_hosts files (UserKnownHostsFile) and `global_files` as
        the system's (GlobalKnownHostsFile), each empty for `none` and None where the setting is not given (the
        store's own are kept). EnvDesk's own file is read and written as before."""
        if user_files is None and global_files is None:
            return self
        return HostKeyStore(self.app_file, user_files=self.user_files if user_files is None else user_files,
                            global_files=self.global_files if global_files is None else global_files)

    def _known(self, name: str) -> list[KnownKey]:
        return [entry for path in (*self.user_files, *self.global_files, self.app_file)
                for entry in read_known_hosts(path, name)]

    def known_types(self, host: str, port: int, key_alias: str | None = None) -> list[str]:
        """Key types recorded for the host (under its HostKeyAlias, if it has one), so the connection can ask the
        server for one of them first; every certificate's first where a `@cert-authority` line names the host (as
        OpenSSH's order_hostkeyalgs does), so that a server with a host certificate shows it."""
        known = self._known(known_hosts_name(host, port, key_alias))
        certificates = CERTIFICATE_ALGORITHMS if any(k.marker == "cert-authority" for k in known) else ()
        return list(dict.fromkeys([*certificates, *(k.key_type for k in known if not k.marker)]))

    def verify(self, identity: ServerIdentity) -> None:
        """Return if the key is known, or is a host certificate a `@cert-authority` line's authority signed for this
        host; raise HostKeyRevoked, HostKeyChanged, HostKeyTypeChanged or HostKeyUnknown otherwise (as OpenSSH
        decides: a certificate that does not vouch for the host is checked as its plain key)."""
        blob = identity.key.asbytes()
        known = self._known(identity.known_hosts_name)
        for entry in known:
            if entry.marker == "revoked" and entry.blob == blob:
                raise HostKeyRevoked(identity.host, identity.port, identity.key_type, identity.fingerprint,
                                     entry.source)
        certificate = host_certificate(identity.key)
        refused = _certificate_refusal(identity, certificate, known) if certificate is not None else None
        if certificate is not None and refused is None:
            return
        if refused is None and any(entry.marker == "cert-authority" for entry in known):
            refused = "the server presented no certificate"
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
        raise HostKeyUnknown(identity.host, identity.port, identity.key_type, identity.fingerprint,
                             authority=refused or "")

    def trust(self, identity: ServerIdentity, *, replace: bool = False) -> None:
        """Record the key in EnvDesk's own file (~/.ssh/known_hosts is never rewritten).

        With `replace`, EnvDesk's earlier entries for that host go; without it, a host already known
        under another key is refused (the user must say they mean to replace it).
        """
        name = identity.known_hosts_name  # the name verify() looks it up under, its HostKeyAlias if it has one
        if not replace and any(not k.marker for k in self._known(name)):
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


def _certificate_refusal(identity: ServerIdentity, certificate: Certificate, known: list[KnownKey]) -> str | None:
    """Why the host certificate the server presented does not vouch for it, as OpenSSH's check_host_key and
    check_host_cert decide (its authority must be one a `@cert-authority` line names this host for, the name it is
    for the host's HostKeyAlias, else its address in lower case); None when it does. HostKeyRevoked where a
    `@revoked` line names its authority."""
    for entry in known:
        if entry.marker == "revoked" and entry.blob == certificate.authority:
            raise HostKeyRevoked(identity.host, identity.port, "certificate authority",
                                 blob_fingerprint(certificate.authority), entry.source)
    if not any(entry.marker == "cert-authority" and entry.blob == certificate.authority for entry in known):
        return (f"it is signed by a certificate authority ({blob_fingerprint(certificate.authority)}) that no "
                f"@cert-authority line names for {identity.known_hosts_name}")
    return refusal(certificate, identity.key_alias or identity.host.lower())
