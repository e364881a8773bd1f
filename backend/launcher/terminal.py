"""Asking a person at a terminal: secrets without echo, yes/no questions, and never when nobody is there."""
from __future__ import annotations

import getpass
import sys
from typing import TYPE_CHECKING, Any

from envdesk.backend.errors import authority_note
from envdesk.backend.prompts import SecretAnswer, SecretRequest

if TYPE_CHECKING:  # paramiko only once a cluster is used
    from envdesk.backend.hostkeys import ServerIdentity


# Control characters (but tab and newline) as a terminal would obey them: a name read from a cluster or a file
# ('\x1b]0;...' sets the window's title, '\x1b]52;...' the clipboard) is shown, never obeyed.
_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if code not in (0x09, 0x0A)}


def visible(text: str) -> str:
    """`text` with its control characters written out ('\\x1b'), for a terminal to show rather than obey."""
    return text.translate(_CONTROLS)


class _ShownOnTerminal:
    """A terminal's text stream that shows the control characters written to it (see visible)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(visible(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard_terminal_output() -> None:
    """Make standard output and error show control characters where they are a terminal (a pipe or a file gets
    the text as it is: it is data there, and JSON escapes them itself)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, _ShownOnTerminal) and stream.isatty():
            setattr(sys, name, _ShownOnTerminal(stream))


def write_utf8_where_read_as_data() -> None:
    """Standard output in UTF-8 where it is a pipe or a file (`env export > requirements.txt`): what EnvDesk
    writes there is a file to read back, and Windows would otherwise write it in its ANSI code page, failing on
    a name that page cannot hold ('Łódź') or writing a file no importer reads as UTF-8. A terminal that cannot
    show a character gets a replacement mark instead of a failed command."""
    stream = sys.stdout
    if stream is None or not hasattr(stream, "reconfigure"):
        return
    if (stream.encoding or "").lower().replace("-", "").replace("_", "") in ("utf8", "utf8sig"):
        return
    if stream.isatty():
        stream.reconfigure(errors="replace")
    else:
        stream.reconfigure(encoding="utf-8")


def interactive() -> bool:
    """True when a person can answer on this terminal."""
    return sys.stdin is not None and sys.stdin.isatty()


def ask_yes_no(question: str) -> bool:
    """A yes/no answer from the terminal; 'no' when nobody can answer, saying so (the command would
    otherwise stop without having asked anything a script's log shows)."""
    if interactive():
        try:
            return input(visible(f"{question} [y/N] ")).strip().lower() in ("y", "yes")
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
            agent = "; or load the key into your ssh-agent once (ssh-add), which needs no asking"
            print(f"[{request.cluster}] {request.prompt.strip()} Not asked: this command's input is not a terminal, "
                  f"so the {_ASKED.get(request.kind, 'answer')} cannot be typed (run the command in a terminal"
                  f"{agent if request.kind == 'passphrase' else ''}).", file=sys.stderr)
            return None
        if request.instructions:
            print(request.instructions, file=sys.stderr)
        prompt = visible(f"[{request.cluster}] {request.prompt.strip()} ")  # the server's words; getpass and
        # input write a prompt to the terminal themselves, past the guarded streams
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
            "cluster publishes, it is safe to trust it; if not, someone may be impersonating the server."
            + (f"\n{authority_note(identity.authority)}" if identity.authority else ""))
