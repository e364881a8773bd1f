"""RFC 6238 TOTP (HMAC-SHA1), as computed by authenticator apps and pam_oath."""

from __future__ import annotations

import hashlib
import hmac
import struct
import time


def hotp(secret: bytes, counter: int, digits: int = 6) -> str:
    """RFC 4226 HOTP code for counter."""
    mac = hmac.new(secret, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def totp(secret: bytes, when: float | None = None, period: int = 30, digits: int = 6) -> str:
    """RFC 6238 TOTP code at time when (default: now)."""
    when = time.time() if when is None else when
    return hotp(secret, int(when // period), digits)
