"""Questions the connection may need to ask a person: secrets and whether to trust a server."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .secrets import keyring_problem

if TYPE_CHECKING:
    from .hostkeys import ServerIdentity

_CODE_WORDS = ("passcode", "code", "otp", "one-time", "one time", "token", "verification", "option", "oath", "duo")


@dataclass(frozen=True)
class SecretRequest:
    """One question: a password, a key passphrase, a one-time code, or another server prompt."""

    cluster: str
    kind: str  # "password" | "passphrase" | "code" | "prompt"
    prompt: str
    echo: bool = False
    instructions: str = ""
    keyring_note: str | None = field(default=None, compare=False)
    """Why it cannot be remembered here (no real keyring), found where the request is made: a worker
    thread, never the window's thread (asking the keyring may wait on D-Bus)."""

    def __post_init__(self) -> None:
        if self.rememberable and self.keyring_note is None:
            object.__setattr__(self, "keyring_note", keyring_problem())

    @property
    def rememberable(self) -> bool:
        """Only passwords and passphrases may be kept in a keyring; codes change every time."""
        return self.kind in ("password", "passphrase")

    @property
    def can_remember(self) -> bool:
        """Offer to remember it: a password or passphrase, and a real keyring on this computer."""
        return self.rememberable and self.keyring_note is None


@dataclass(frozen=True)
class SecretAnswer:
    """What the person typed, and whether to keep it in the system keyring."""

    value: str
    remember: bool = False


class Prompter(Protocol):
    """Whoever can answer: the GUI's dialogs, the terminal, or a script."""

    def ask_secret(self, request: SecretRequest) -> SecretAnswer | None:
        """Return the answer, or None when the person declines."""

    def confirm_host_key(self, cluster: str, identity: ServerIdentity) -> bool:
        """Return True to trust a server seen for the first time."""


def classify_prompt(prompt: str) -> str:
    """Guess what a keyboard-interactive prompt asks for, from its words."""
    lowered = prompt.lower()
    if any(word in lowered for word in _CODE_WORDS):
        return "code"  # "Password+Token:" too: a one-time value must never be offered to the keyring
    if "password" in lowered:
        return "password"
    return "prompt"


class NoPrompter:
    """A prompter for unattended use: declines every question, so nothing ever waits on a person."""

    def ask_secret(self, request: SecretRequest) -> SecretAnswer | None:
        return None

    def confirm_host_key(self, cluster: str, identity: ServerIdentity) -> bool:
        return False
