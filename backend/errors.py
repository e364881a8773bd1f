"""Errors the user can read: every failure that reaches the CLI or the GUI is one of these."""
from __future__ import annotations


class EnvDeskError(Exception):
    """A failure explained in plain language; `hint` says what the user can do about it."""

    def __init__(self, message: str, hint: str = "", *, log: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.log = log

    def __str__(self) -> str:
        return f"{self.message}\n{self.hint}" if self.hint else self.message


class InvalidInput(EnvDeskError):
    """A name, path, spec or file the user gave that EnvDesk refuses before acting."""


class ConfigError(EnvDeskError):
    """The saved cluster profiles cannot be read or written."""


class WriteFailed(EnvDeskError, OSError):
    """A file on this computer could not be written (a folder in the way, no permission, a full disk).

    Also an OSError, so callers for whom a write is only a convenience (the cache) can ignore it.
    """


class ConnectionFailed(EnvDeskError):
    """The cluster could not be reached or the connection broke."""


class AuthenticationFailed(EnvDeskError):
    """The cluster refused the login."""


class LoginCancelled(AuthenticationFailed):
    """The user closed a login prompt instead of answering it."""


class HostKeyUnknown(EnvDeskError):
    """The server's identity has never been seen: the user must decide to trust it."""

    def __init__(self, host: str, port: int, key_type: str, fingerprint: str) -> None:
        super().__init__(
            f"EnvDesk has never connected to {host} (port {port}) before, so it cannot yet "
            f"tell that it is the real server. Its {key_type} key fingerprint is {fingerprint}.",
            "Compare the fingerprint with the one your cluster publishes, then trust it "
            "(envdesk cluster trust NAME, or answer Trust in the app).",
        )
        self.host, self.port, self.key_type, self.fingerprint = host, port, key_type, fingerprint


class HostKeyChanged(EnvDeskError):
    """The server's identity differs from the one recorded: refused, never asked."""

    def __init__(self, host: str, port: int, key_type: str, fingerprint: str, source: str) -> None:
        super().__init__(
            f"The identity of {host} (port {port}) has changed since you last connected: it now "
            f"presents the {key_type} key {fingerprint}, which does not match the one recorded in "
            f"{source}. EnvDesk refused to connect, because this is what an attacker "
            "intercepting the connection would look like.",
            "If your cluster announced new host keys, remove the old entry from that file "
            "and connect again; otherwise contact your cluster's support.",
        )
        self.host, self.port, self.key_type, self.fingerprint = host, port, key_type, fingerprint
        self.source = source


class CommandFailed(EnvDeskError):
    """A remote or local command ended with a non-zero exit status."""

    def __init__(self, message: str, hint: str = "", *, exit_status: int = 1, log: str = "") -> None:
        super().__init__(message, hint, log=log)
        self.exit_status = exit_status


class Cancelled(EnvDeskError):
    """The user cancelled the operation."""

    def __init__(self, message: str = "Cancelled.") -> None:
        super().__init__(message)


class NotFound(EnvDeskError):
    """A cluster or environment the user named does not exist."""


class Busy(EnvDeskError):
    """Another operation holds the environment's lock."""


class InstallFailed(CommandFailed):
    """Installing packages failed (as opposed to making the environment itself)."""
