"""Asking a person at a terminal: secrets without echo, yes/no questions, and never when nobody is there."""
from __future__ import annotations

import getpass
import sys
from typing import TYPE_CHECKING

from envdesk.backend.prompts import SecretAnswer, SecretRequest

if TYPE_CHECKING:  # paramiko only once a cluster is used
    from envdesk.backend.hostkeys import ServerIdentity


def interactive() -> bool:
    """True when a person can answer on this terminal."""
    return sys.stdin is not None and sys.stdin.isatty()


def ask_yes_no(question: str) -> bool:
    """A yes/no answer from the terminal; 'no' when nobody can answer, saying so (the command would
    otherwise stop without having asked anything a script's log shows)."""
    if interactive():
        try:
            return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
        except EOFError:  # Ctrl-D: no
            print(file=sys.stderr)
            return False
    print(f"{question} Not asked, so taken as no: this command's input is not a terminal (add --yes to say "
          "yes without being asked).", file=sys.stderr)
    return False


_ASKED = {"password": "password", "passphrase": "key's passphrase", "code": "one-time code"}


class TerminalPrompter:
    """Answers login questions at the terminal; declines when the command runs unattended."""

    def __init__(self, offer_remember: bool = True) -> None:
        self.offer_remember = offer_remember

    def ask_secret(self, request: SecretRequest) -> SecretAnswer | None:
        if not interactive():
            print(f"[{request.cluster}] {request.prompt.strip()} Not asked: this command's input is not a terminal, "
                  f"so the {_ASKED.get(request.kind, 'answer')} cannot be typed (run the command in a terminal).",
                  file=sys.stderr)
            return None
        if request.instructions:
            print(request.instructions, file=sys.stderr)
        prompt = f"[{request.cluster}] {request.prompt.strip()} "
        try:
            value = input(prompt) if request.echo else getpass.getpass(prompt)
        except EOFError:
            return None
        remember = False
        if request.can_remember and self.offer_remember:
            remember = ask_yes_no(f"Remember this {request.kind} in the system keyring?")
        return SecretAnswer(value, remember)

    def confirm_host_key(self, cluster: str, identity: ServerIdentity) -> bool:
        if not interactive():
            return False
        print(describe_new_server(cluster, identity), file=sys.stderr)
        return ask_yes_no("Trust this server and connect?")


def describe_new_server(cluster: str, identity: ServerIdentity) -> str:
    """Two plain sentences about an unknown server key, with its fingerprint."""
    return (f"EnvDesk has not connected to {identity.host} (port {identity.port}, cluster {cluster}) before.\n"
            f"Its {identity.key_type} key fingerprint is {identity.fingerprint}. If it matches the one your "
            "cluster publishes, it is safe to trust it; if not, someone may be impersonating the server.")
