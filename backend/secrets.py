"""Passwords and passphrases kept in the operating system's keyring, never in EnvDesk's files."""
from __future__ import annotations

import logging

import keyring
from keyring.errors import KeyringError

SERVICE = "envdesk"
log = logging.getLogger(__name__)


def _account(kind: str, subject: str) -> str:
    return f"{kind}:{subject}"


def recall(kind: str, subject: str) -> str | None:
    """A remembered secret, or None when there is none or no keyring is available."""
    try:
        return keyring.get_password(SERVICE, _account(kind, subject))
    except (KeyringError, RuntimeError, OSError) as exc:
        log.debug("keyring unavailable: %s", exc.__class__.__name__)
        return None


def remember(kind: str, subject: str, secret: str) -> bool:
    """Store a secret; returns False (and keeps going) when the system has no usable keyring."""
    try:
        keyring.set_password(SERVICE, _account(kind, subject), secret)
        return True
    except (KeyringError, RuntimeError, OSError) as exc:
        log.info("could not store the secret in the keyring (%s)", exc.__class__.__name__)
        return False


def forget(kind: str, subject: str) -> None:
    """Drop a stored secret, e.g. after the server rejected it."""
    try:
        keyring.delete_password(SERVICE, _account(kind, subject))
    except (KeyringError, RuntimeError, OSError):
        pass
