"""OpenSSH user certificates (ssh-keygen -s, a site's sshproxy): what one says, read from its blob as sshd reads it
(PROTOCOL.certkeys), so that a login can offer the certificate and say why a cluster refused it (expired, not for
this user), where a plain key's advice (authorized_keys) does not apply."""
from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .ssh_lib import paramiko

CERT_SUFFIX = "-cert-v01@openssh.com"
_KEY_FIELDS = {"ssh-rsa": 2, "ssh-dss": 4, "ssh-ed25519": 1, "ecdsa-sha2-nistp256": 2, "ecdsa-sha2-nistp384": 2,
               "ecdsa-sha2-nistp521": 2, "sk-ecdsa-sha2-nistp256@openssh.com": 3,
               "sk-ssh-ed25519@openssh.com": 2}
"""How many strings (mpints are strings on the wire) each key type's public half holds, after its name."""
FOREVER = 2**64 - 1  # valid_before of a certificate that never expires


@dataclass(frozen=True)
class Certificate:
    """One OpenSSH certificate: its blob, the plain public key it certifies, and what limits its use."""

    blob: bytes
    key_blob: bytes
    key_id: str
    principals: tuple[str, ...]
    valid_after: int
    valid_before: int
    user: bool  # a user certificate (not a host's)
    cert_type: int = 1
    """1 for a user's certificate, 2 for a host's."""
    critical_options: bytes = b""
    authority: bytes = b""
    """The public key blob of the certificate authority that signed it."""
    signature_algorithm: str = ""
    signed: bool = False
    """Whether the authority's signature over it holds."""

    def expired(self, now: float | None = None) -> bool:
        return self.valid_before != FOREVER and (time.time() if now is None else now) >= self.valid_before

    def not_yet_valid(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) < self.valid_after

    def allows(self, user: str) -> bool:
        """Whether it may log in as `user`: a user certificate that names `user` (sshd refuses one naming no one,
        "Certificate lacks principal list", where it trusts the authority by TrustedUserCAKeys: R21)."""
        return self.user and user in self.principals

    @property
    def expires(self) -> str:
        """When it stops working, in words ('never' for no end)."""
        return "never" if self.valid_before == FOREVER else _when(self.valid_before)

    @property
    def starts(self) -> str:
        return _when(self.valid_after)

    @property
    def valid_until(self) -> str | None:
        """When it stops working, ISO 8601 in UTC (None: never), for --json."""
        if self.valid_before == FOREVER:
            return None
        return datetime.fromtimestamp(min(self.valid_before, 253402300799), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _when(seconds: int) -> str:
    return datetime.fromtimestamp(min(seconds, 253402300799), timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def is_certificate(blob: bytes) -> bool:
    """Whether a public key blob is an OpenSSH certificate."""
    try:
        return paramiko.Message(blob).get_text().endswith(CERT_SUFFIX)
    except Exception:  # noqa: BLE001  # not a blob at all
        return False


def read_certificate(blob: bytes) -> Certificate | None:
    """The certificate in `blob`; None when it is not one EnvDesk can read (a plain key, another format)."""
    try:
        message = paramiko.Message(blob)
        kind = message.get_text()
        plain = kind.removesuffix(CERT_SUFFIX)
        if plain == kind or plain not in _KEY_FIELDS:
            return None
        message.get_string()  # nonce
        key = paramiko.Message()
        key.add_string(plain)
        for _ in range(_KEY_FIELDS[plain]):
            key.add_string(message.get_string())
        message.get_int64()  # serial
        cert_type = message.get_int()
        key_id = message.get_text()
        names = paramiko.Message(message.get_string())
        principals = []
        while names.get_remainder():
            principals.append(names.get_text())
        valid_after, valid_before = message.get_int64(), message.get_int64()
        critical_options = message.get_string()
        message.get_string()  # extensions
        message.get_string()  # reserved
        authority = message.get_string()
        signed_part = blob[:message.packet.tell()]
        signature = message.get_string()
        algorithm = paramiko.Message(signature).get_text()
    except Exception:  # noqa: BLE001  # a short or garbled blob: paramiko raises several types
        return None
    return Certificate(blob, key.asbytes(), key_id, tuple(principals), valid_after, valid_before, cert_type == 1,
                       cert_type, critical_options, authority, algorithm, _signed(authority, signed_part, signature))


def _signed(authority: bytes, signed_part: bytes, signature: bytes) -> bool:
    """Whether the authority's key (a public key blob) signed `signed_part` with `signature`."""
    try:
        kind = paramiko.Message(authority).get_text()
        if kind.endswith(CERT_SUFFIX):  # an authority cannot be a certificate itself, as OpenSSH refuses (R22)
            return False
        key = paramiko.PKey.from_type_string(kind, authority)
        return bool(key.verify_ssh_sig(signed_part, paramiko.Message(signature)))
    except Exception:  # noqa: BLE001  # an authority key or signature EnvDesk cannot read: not signed, for it
        return False


def beside(key: str | Path) -> tuple[str, Certificate] | None:
    """The certificate ssh offers with a key file (KEY-cert.pub) and its path; None when there is none."""
    path = f"{key}-cert.pub"
    cert = certificate_file(path)
    return None if cert is None else (path, cert)


def certificate_file(path: str) -> Certificate | None:
    """The certificate in a -cert.pub file ('TYPE BASE64 [comment]'); None when the file is missing or not one."""
    try:
        with open(Path(path), "rb") as opened:
            words = opened.read(64 * 1024).split()
        if len(words) >= 2 and words[0].decode("ascii", "replace").endswith(CERT_SUFFIX):
            return read_certificate(base64.b64decode(words[1], validate=True))
    except (OSError, ValueError):
        pass
    return None
