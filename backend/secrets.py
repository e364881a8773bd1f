"""Passwords and passphrases kept in the operating system's keyring, never in EnvDesk's files.

Only a real keyring counts: the desktop's Secret Service, macOS's Keychain, Windows' Credential
Locker. Backends that write secrets to a file (keyrings.alt's plaintext and "encrypted" files,
which ask for their own password on a terminal) are refused, so remembering is offered only
where a secret cannot end up on disk in clear.
"""
from __future__ import annotations

import logging
from typing import Any

SERVICE = "envdesk"
log = logging.getLogger(__name__)
_REFUSED_MODULES = ("keyrings.alt", "keyring.backends.fail", "keyring.backends.null")


def _failures() -> tuple[type[BaseException], ...]:
    """What a keyring raises when it cannot do what is asked (keyring is loaded only once a secret is needed:
    it takes longer to import than the rest of a listing)."""
    from keyring.errors import KeyringError
    return (KeyringError, RuntimeError, OSError)


def _account(kind: str, subject: str) -> str:
    return f"{kind}:{subject}"


def _acceptable(backend: Any) -> bool:
    module = type(backend).__module__
    try:
        priority = float(backend.priority)
    except Exception:  # a backend whose priority check fails is not viable here
        return False
    return not module.startswith(_REFUSED_MODULES) and priority > 0


def _backend() -> Any | None:
    """The keyring to use: the configured one, or the best real one a chain offers; None if none is real."""
    import keyring
    try:
        chosen = keyring.get_keyring()
        if type(chosen).__name__ == "ChainerBackend":
            # the chain's own list raises when one member cannot start (no D-Bus session, say):
            # ask keyring for the viable ones instead, best first
            from keyring.backend import by_priority, get_all_keyring
            candidates = sorted(get_all_keyring(), key=by_priority, reverse=True)
        else:
            candidates = [chosen]
    except Exception as exc:  # any backend may fail in its own way while starting
        log.debug("no keyring: %s", exc.__class__.__name__)
        return None
    return next((backend for backend in candidates if _acceptable(backend)), None)


def keyring_problem() -> str | None:
    """Why secrets cannot be remembered on this computer, in plain words; None when they can."""
    if _backend() is not None:
        return None
    return ("This computer has no system keyring EnvDesk can use (it will not keep passwords in a file), "
            "so you will be asked each time.")


def recall(kind: str, subject: str) -> str | None:
    """A remembered secret, or None when there is none or no real keyring is available."""
    backend = _backend()
    if backend is None:
        return None
    try:
        return backend.get_password(SERVICE, _account(kind, subject))
    except _failures() as exc:
        log.debug("keyring unavailable: %s", exc.__class__.__name__)
        return None


def remember(kind: str, subject: str, secret: str) -> bool:
    """Store a secret; returns False (and keeps going) when the system has no real keyring."""
    backend = _backend()
    if backend is None:
        log.info("not storing the secret: no real keyring on this computer")
        return False
    try:
        backend.set_password(SERVICE, _account(kind, subject), secret)
        return True
    except _failures() as exc:
        log.info("could not store the secret in the keyring (%s)", exc.__class__.__name__)
        return False


def forget(kind: str, subject: str) -> None:
    """Drop a stored secret, e.g. after the server rejected it."""
    backend = _backend()
    if backend is None:
        return
    try:
        backend.delete_password(SERVICE, _account(kind, subject))
    except _failures():
        pass
