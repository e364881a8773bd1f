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


def authority_note(authority: str) -> str:
    """What to tell about a server whose key a certificate authority trusted for it did not vouch for (`authority`
    says why): sites that use one publish only it, so the key's own fingerprint cannot be compared."""
    return (f"Your known_hosts file trusts a certificate authority for this host, but it does not vouch for this "
            f"key: {authority}. Look at the certificate the server presents (ssh-keyscan -c -p PORT HOST > cert, then "
            "ssh-keygen -L -f cert: its signing CA, the host names it is for, its validity).")


class HostKeyUnknown(EnvDeskError):
    """The server's identity has never been seen: the user must decide to trust it."""

    def __init__(self, host: str, port: int, key_type: str, fingerprint: str, *, authority: str = "") -> None:
        """`authority`: why the certificate authority a known_hosts file trusts for the host did not vouch for it
        ('' where none is trusted for it)."""
        said = f" {authority_note(authority)}" if authority else ""
        super().__init__(
            f"EnvDesk has never connected to {host} (port {port}) before, so it cannot yet "
            f"tell that it is the real server. Its {key_type} key fingerprint is {fingerprint}.{said}",
            ("Ask your site's support before trusting this key (envdesk cluster trust NAME)." if authority else
             "Compare the fingerprint with the one your cluster publishes, then trust it "
             "(envdesk cluster trust NAME, or answer Trust in the app)."),
        )
        self.host, self.port, self.key_type, self.fingerprint = host, port, key_type, fingerprint
        self.authority = authority


class HostKeyChanged(EnvDeskError):
    """The server's identity differs from the one recorded: refused, never asked."""

    def __init__(self, host: str, port: int, key_type: str, fingerprint: str, source: str) -> None:
        super().__init__(
            f"The identity of {host} (port {port}) has changed since you last connected: it now "
            f"presents the {key_type} key {fingerprint}, which does not match the one recorded in "
            f"{source}. EnvDesk refused to connect, because this is what an attacker "
            "intercepting the connection would look like.",
            "If your cluster announced new host keys, check this fingerprint with its admins (or the keys "
            "its site publishes), then replace the recorded key: envdesk cluster trust NAME --replace. "
            "Otherwise do not connect, and tell your cluster's support.",
        )
        self.host, self.port, self.key_type, self.fingerprint = host, port, key_type, fingerprint
        self.source = source


class HostKeyTypeChanged(HostKeyChanged):
    """A known server now presents a key of another type only: refused until the user replaces it."""

    def __init__(self, host: str, port: int, key_type: str, fingerprint: str, known_types: list[str]) -> None:
        EnvDeskError.__init__(
            self,
            f"{host} (port {port}) was known with a {', '.join(known_types)} key, and now presents only a "
            f"{key_type} key ({fingerprint}). EnvDesk refused to connect: a server does not usually drop "
            "its key type, and an attacker intercepting the connection would look like this.",
            "Ask your cluster's support whether they changed the server's keys; only then replace the "
            "recorded key: envdesk cluster trust NAME --replace.")
        self.host, self.port, self.key_type, self.fingerprint = host, port, key_type, fingerprint
        self.source = "known hosts"
        self.known_types = known_types


class HostKeyRevoked(EnvDeskError):
    """The server presented a key that a known_hosts file marks @revoked."""

    def __init__(self, host: str, port: int, key_type: str, fingerprint: str, source: str) -> None:
        super().__init__(
            f"{host} (port {port}) presented the {key_type} key {fingerprint}, which {source} marks as "
            "revoked. EnvDesk refused to connect.",
            "Contact your cluster's support: a revoked key must never be used again.")
        self.host, self.port, self.key_type, self.fingerprint, self.source = host, port, key_type, fingerprint, source


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


class CondaInstallFailed(InstallFailed):
    """conda (or mamba) installing packages failed: its own words say which, not a check of pip's lines."""
