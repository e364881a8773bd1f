"""Logging in on one SSH hop: agent and key files, passphrases, passwords, one-time codes."""
from __future__ import annotations

import functools

import os
from pathlib import Path
from typing import Callable

import paramiko

from . import secrets
from .errors import AuthenticationFailed, LoginCancelled
from .prompts import Prompter, SecretAnswer, SecretRequest, classify_prompt
from .ssh_config import Hop

DEFAULT_KEY_FILES = ("id_ed25519", "id_ecdsa", "id_rsa")
_MAX_ROUNDS = 8
_TRIES = {"publickey": 1, "keyboard-interactive": 3, "password": 3}


def default_key_files() -> list[str]:
    """The private keys ssh tries when none is configured."""
    folder = Path.home() / ".ssh"
    return [str(folder / name) for name in DEFAULT_KEY_FILES if (folder / name).is_file()]


class KeyCache:
    """Keys already unlocked this session, so a reconnect never asks for a passphrase again."""

    def __init__(self) -> None:
        self._keys: dict[str, paramiko.PKey] = {}

    def get(self, path: str) -> paramiko.PKey | None:
        return self._keys.get(path)

    def put(self, path: str, key: paramiko.PKey) -> None:
        self._keys[path] = key


class Authenticator:
    """Drives paramiko's Transport through whatever sequence of methods the server asks for."""

    def __init__(self, cluster: str, hop: Hop, prompter: Prompter, keys: KeyCache,
                 use_agent: bool = True, method: str = "auto") -> None:
        self.cluster = cluster
        self.hop = hop
        self.prompter = prompter
        self.keys = keys
        self.use_agent = use_agent
        self.method = method  # the profile's login method: "password..." means no keys are offered
        self.tried: list[str] = []
        self._to_remember: list[tuple[str, str, str]] = []
        self._used_stored: list[tuple[str, str]] = []

    # -- secrets ---------------------------------------------------------------------------

    def _ask(self, kind: str, prompt: str, echo: bool = False, instructions: str = "",
             subject: str = "") -> str:
        """A secret from the keyring (once) or from the person; LoginCancelled if they decline."""
        if kind in ("password", "passphrase") and subject:
            stored = secrets.recall(kind, subject)
            if stored is not None and (kind, subject) not in self._used_stored:
                self._used_stored.append((kind, subject))
                return stored
        answer: SecretAnswer | None = self.prompter.ask_secret(
            SecretRequest(self.cluster, kind, prompt, echo, instructions))
        if answer is None:
            raise LoginCancelled(f"Login to {self.hop.host} was cancelled.")
        if answer.remember and kind in ("password", "passphrase") and subject:
            self._to_remember.append((kind, subject, answer.value))
        return answer.value

    def _password_subject(self) -> str:
        return f"{self.hop.user}@{self.hop.host}:{self.hop.port}"

    # -- keys ------------------------------------------------------------------------------

    def _load_key(self, path: str) -> paramiko.PKey | None:
        cached = self.keys.get(path)
        if cached is not None:
            return cached
        passphrase: str | None = None
        for _ in range(4):
            try:
                key = paramiko.PKey.from_path(path, password=None if passphrase is None else
                                              passphrase.encode())  # type: ignore[arg-type]  # bytes work
            except (paramiko.PasswordRequiredException, TypeError):  # paramiko 4+ raises TypeError
                passphrase = self._ask("passphrase", f"Passphrase for the key {path}:", subject=path)
                continue
            except (paramiko.SSHException, ValueError) as exc:
                if passphrase is None:
                    self.tried.append(f"key {path} (unreadable: {exc})")
                    return None
                secrets.forget("passphrase", path)
                passphrase = self._ask("passphrase", f"Wrong passphrase. Passphrase for the key {path}:",
                                       subject="")
                continue
            except OSError as exc:
                self.tried.append(f"key {path} (unreadable: {exc.strerror or exc})")
                return None
            self.keys.put(path, key)
            return key
        self.tried.append(f"key {path} (wrong passphrase)")
        return None

    def _candidate_keys(self) -> list[tuple[str, Callable[[], paramiko.PKey | None]]]:
        found: list[tuple[str, Callable[[], paramiko.PKey | None]]] = []
        if self.use_agent and (os.environ.get("SSH_AUTH_SOCK") or os.name == "nt"):
            try:
                for agent_key in paramiko.Agent().get_keys():
                    found.append((f"agent key {agent_key.fingerprint}", _constant(agent_key)))
            except (paramiko.SSHException, OSError):
                pass
        files = list(self.hop.identity_files) or default_key_files()
        for path in files:
            if Path(path).is_file():
                found.append((f"key {path}", functools.partial(self._load_key, path)))
        return found

    # -- the dance -------------------------------------------------------------------------

    def _interactive_handler(self, title: str, instructions: str, prompts: list) -> list[str]:
        answers = []
        for prompt, echo in prompts:
            kind = classify_prompt(prompt)
            subject = self._password_subject() if kind == "password" else ""
            answers.append(self._ask(kind, prompt.strip() or "Answer:", echo,
                                     "\n".join(p for p in (title, instructions) if p).strip(), subject))
        return answers

    def _try_publickey(self, transport: paramiko.Transport) -> list[str] | None:
        """Remaining methods after a key was accepted, or None when no key was."""
        for label, load in self._candidate_keys():
            key = load()
            if key is None:
                continue
            try:
                remaining = transport.auth_publickey(self.hop.user, key)
            except paramiko.AuthenticationException:
                self.tried.append(f"{label} (refused)")
                continue
            self.tried.append(f"{label} (accepted)")
            return list(remaining)
        return None

    def _try_interactive(self, transport: paramiko.Transport) -> list[str] | None:
        try:
            remaining = transport.auth_interactive(self.hop.user, self._interactive_handler)
        except paramiko.AuthenticationException:
            self.tried.append("keyboard-interactive (refused)")
            self._forget_stored()
            return None
        self.tried.append("keyboard-interactive (accepted)")
        return list(remaining)

    def _try_password(self, transport: paramiko.Transport) -> list[str] | None:
        subject = self._password_subject()
        password = self._ask("password", f"Password for {subject.rsplit(':', 1)[0]}:", subject=subject)
        try:
            remaining = transport.auth_password(self.hop.user, password, fallback=False)
        except paramiko.AuthenticationException:
            self.tried.append("password (refused)")
            self._forget_stored()
            return None
        self.tried.append("password (accepted)")
        return list(remaining or [])

    def _forget_stored(self) -> None:
        """After the server refused a password: forget it (never the key passphrase, which did work)."""
        for kind, subject in self._used_stored:
            if kind == "password":
                secrets.forget(kind, subject)
        self._to_remember = [entry for entry in self._to_remember if entry[0] != "password"]

    def authenticate(self, transport: paramiko.Transport) -> None:
        """Log in, answering every step the server asks for; AuthenticationFailed if it cannot."""
        try:
            transport.auth_none(self.hop.user)
            return
        except paramiko.BadAuthenticationType as exc:
            allowed = list(exc.allowed_types)
        except paramiko.AuthenticationException:
            allowed = ["publickey", "keyboard-interactive", "password"]
        attempts = {"publickey": 0, "keyboard-interactive": 0, "password": 0}
        if self.method.startswith("password"):
            attempts["publickey"] = _TRIES["publickey"]  # offering keys first can exhaust MaxAuthTries
        for _ in range(_MAX_ROUNDS):
            if transport.is_authenticated():
                break
            method = next((m for m in attempts if m in allowed and attempts[m] < _TRIES[m]), None)
            if method is None:
                break
            attempts[method] += 1
            step = {"publickey": self._try_publickey, "keyboard-interactive": self._try_interactive,
                    "password": self._try_password}[method]
            remaining = step(transport)
            if remaining:
                allowed = remaining
                attempts = dict.fromkeys(attempts, 0)
        if not transport.is_authenticated():
            if self.tried:
                detail = f" (tried: {'; '.join(self.tried)})"
            elif self.method.startswith("password"):
                detail = "; this cluster is set to log in by password, so no key was offered"
            else:
                detail = "; no SSH key was found in ~/.ssh"
            raise AuthenticationFailed(f"{self.hop.host} refused the login as {self.hop.user!r}.",
                                       f"Check the username, key or password{detail}.")
        for kind, subject, value in self._to_remember:
            secrets.remember(kind, subject, value)


def _constant(key: paramiko.PKey) -> Callable[[], paramiko.PKey | None]:
    """A loader that returns a key already in hand (an agent's)."""
    return lambda: key
