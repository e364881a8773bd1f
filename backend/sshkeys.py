"""The user's own SSH keys: whether they have one, and making an ed25519 key for someone who has none.

A newcomer often has no key at all. EnvDesk can make one the way ``ssh-keygen -t ed25519`` does:
an OpenSSH private key (mode 0600, optionally locked with a passphrase) beside its ``.pub`` line
(0644), in ``~/.ssh`` (0700). An existing file is never replaced. The passphrase is kept in the
system keyring only when the user asks and a real keyring exists (see :mod:`.secrets`), under the
same name the login later looks it up by (the key's path).
"""
from __future__ import annotations

import base64
import getpass
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from . import secrets
from .errors import InvalidInput, WriteFailed
from .fileio import private_folder
from .hostkeys import fingerprint

DEFAULT_KEY_NAME = "id_ed25519"
_NOT_PRIVATE = (".pub", "-cert.pub", ".ppk.pub")


def ssh_folder() -> Path:
    """Where ssh looks for the user's keys: ``~/.ssh``."""
    return Path.home() / ".ssh"


@dataclass(frozen=True)
class ExistingKeys:
    """What this computer already offers for an SSH login."""

    files: tuple[Path, ...]  # private key files in ~/.ssh
    agent_keys: int  # keys an SSH agent holds (0 when there is no agent)

    @property
    def any(self) -> bool:
        return bool(self.files) or self.agent_keys > 0


def _looks_private(path: Path) -> bool:
    """A ~/.ssh file that holds a private key (not a .pub line, a certificate, known_hosts or config), whatever
    its name: people name keys after their clusters (T24: `key status` left out ~/.ssh/cluster_key)."""
    if path.name.endswith(_NOT_PRIVATE) or not path.is_file():
        return False
    try:
        with open(path, "rb") as handle:
            start = handle.read(64)
    except OSError:  # unreadable here: OpenSSH's own names are keys all the same, never offered to be replaced
        return path.name.startswith("id_")
    first = start.split(b"\n", 1)[0]
    return (first.startswith(b"-----BEGIN ") and b"PRIVATE KEY-----" in first) or \
        start.startswith(b"PuTTY-User-Key-File")


def agent_key_count() -> int:
    """How many keys a running SSH agent holds (ssh-agent, Pageant or Windows' OpenSSH agent); 0 if none."""
    try:
        agent = paramiko.Agent()
    except (paramiko.SSHException, OSError):
        return 0
    try:
        return len(agent.get_keys())
    except (paramiko.SSHException, OSError):
        return 0
    finally:
        agent.close()


def find_keys(folder: Path | None = None, *, ask_agent: bool = True) -> ExistingKeys:
    """The private keys in `folder` (default ~/.ssh), whatever their names, and the agent's key count."""
    where = ssh_folder() if folder is None else folder
    try:
        files = tuple(sorted(p for p in where.iterdir() if _looks_private(p))) if where.is_dir() else ()
    except OSError:
        files = ()
    return ExistingKeys(files=files, agent_keys=agent_key_count() if ask_agent else 0)


@dataclass(frozen=True)
class NewKey:
    """A key EnvDesk made: where it is, and the public line to give the cluster's site."""

    path: Path
    public_path: Path
    public_line: str
    fingerprint: str
    remembered: bool  # the passphrase went to the system keyring


def default_comment() -> str:
    """``user@computer``, as ssh-keygen writes, so the site's key list says where the key lives."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers)
        user = "user"
    return f"{user}@{socket.gethostname() or 'computer'}"


def create_key(path: Path | None = None, *, passphrase: str = "", comment: str | None = None,
               remember: bool = False) -> NewKey:
    """Make an ed25519 key at `path` (default ~/.ssh/id_ed25519) and its ``.pub``; never overwrite.

    `remember` keeps a non-empty passphrase in the system keyring under the key's path, where the
    login looks for it; :attr:`NewKey.remembered` says whether that happened (no real keyring: no).
    """
    target = ssh_folder() / DEFAULT_KEY_NAME if path is None else Path(path)
    public = target.with_name(target.name + ".pub")
    text = default_comment() if comment is None else comment
    if any(c in text for c in "\r\n\0"):
        raise InvalidInput("A key comment must be one line of text.")
    for existing in (target, public):
        if existing.exists() or existing.is_symlink():
            raise InvalidInput(f"{existing} already exists, and EnvDesk never replaces a key file.",
                               "Use that key, or choose another file name for the new one.")
    key = Ed25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode("utf-8")) if passphrase
        else serialization.NoEncryption())
    private_text = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption)
    public_text = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                serialization.PublicFormat.OpenSSH).decode("ascii")
    line = f"{public_text} {text}".rstrip()
    try:
        if not target.parent.is_dir():  # a folder that is there is the user's: its mode stays, as ssh-keygen leaves it
            private_folder(target.parent)
    except OSError as exc:
        raise WriteFailed(f"Could not make the folder {target.parent}: {exc.strerror or exc}.",
                          "Check that you may write in your home folder, then try again.") from exc
    _write_new(target, private_text, 0o600)
    try:
        _write_new(public, (line + "\n").encode("ascii"), 0o644)
    except BaseException:
        target.unlink(missing_ok=True)  # ours, made a moment ago: no half key pair is left behind
        raise
    blob = public_text.split()[1]
    remembered = bool(remember and passphrase) and secrets.remember("passphrase", str(target), passphrase)
    return NewKey(path=target, public_path=public, public_line=line,
                  fingerprint=fingerprint(paramiko.PKey.from_type_string("ssh-ed25519", base64.b64decode(blob))),
                  remembered=remembered)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create `path` holding `data` with `mode`; refuse (InvalidInput) if anything is there already."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError as exc:
        raise InvalidInput(f"{path} already exists, and EnvDesk never replaces a key file.",
                           "Use that key, or choose another file name for the new one.") from exc
    except OSError as exc:
        raise WriteFailed(f"Could not write {path}: {exc.strerror or exc}.",
                          "Check that you may write in that folder and the disk is not full.") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        if os.name == "posix":
            os.chmod(path, mode)  # the umask may have taken bits away from the .pub's 0644
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise WriteFailed(f"Could not write {path}: {exc.strerror or exc}.",
                          "Check that the disk is not full, then try again.") from exc
