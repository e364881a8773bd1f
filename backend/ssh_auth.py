"""Logging in on one SSH hop: agent and key files, passphrases, passwords, one-time codes."""
from __future__ import annotations

import base64
import copy
import functools
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from .ssh_lib import paramiko
from paramiko.pkey import PublicBlob

from . import secrets
from .errors import AuthenticationFailed, LoginCancelled
from .hostkeys import blob_fingerprint
from .prompts import Prompter, SecretAnswer, SecretRequest, classify_prompt
from .ssh_certificates import Certificate, certificate_file, read_certificate
from .ssh_config import Hop

DEFAULT_KEY_FILES = ("id_ed25519", "id_ecdsa", "id_rsa")
_MAX_ROUNDS = 8
PROMPTS_PER_SECRET = 3  # OpenSSH's NumberOfPasswordPrompts: three goes at a password, code or passphrase
_TRIES = {"publickey": 1, "keyboard-interactive": PROMPTS_PER_SECRET, "password": PROMPTS_PER_SECRET}
MAX_QUESTIONS = 12  # per hop and login: a broken or hostile server must not keep a person answering forever
_WHAT = {"password": "password", "code": "one-time code", "prompt": "answer"}
AGENT_TIMEOUT = 300  # seconds: an agent may wait for a person to approve each use of a key (1Password, Secretive)
log = logging.getLogger(__name__)


def default_key_files() -> list[str]:
    """The private keys ssh tries when none is configured."""
    folder = Path.home() / ".ssh"
    return [str(folder / name) for name in DEFAULT_KEY_FILES if (folder / name).is_file()]


class KeyLoader(Protocol):
    """Loads one key to offer; `quiet`: only if that needs no question (None otherwise)."""

    def __call__(self, quiet: bool = False) -> paramiko.PKey | None: ...


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
                 use_agent: bool = True, method: str = "auto", jump: bool = False) -> None:
        self.cluster = cluster
        self.hop = hop
        self.jump = jump  # a jump host on the way: it logs in with its own keys, never the cluster's profile's
        self.prompter = prompter
        self.keys = keys
        self.use_agent = use_agent
        self.method = method  # the profile's login method: "password..." means no keys are offered
        self.tried: list[str] = []
        self.questions = 0  # asked of the person during this login
        self._to_remember: list[tuple[str, str, str]] = []
        self._used_stored: list[tuple[str, str]] = []
        self._round_kinds: list[str] = []  # what the current keyboard-interactive round asked for
        self._refused_answers: dict[str, int] = {}  # "password" / "code" / "prompt": rounds the server refused
        self._refused_keys: list[str] = []
        self._wrong_passphrase: list[str] = []
        self._missing_keys: list[str] = []
        self._unreadable: list[str] = []
        self._agent_keys_held: int | None = None  # None: no agent asked
        self._agent: list[paramiko.AgentKey] | None = None  # its keys, asked once per login
        self._keys_taken = True  # False once the server said it takes no keys
        self._certificates: dict[str, Certificate] = {}  # label -> the certificate it offers
        self._left_out: dict[str, bytes] = {}  # identity file -> its key: an agent certificate IdentitiesOnly dropped
        self._offered_blobs: dict[str, bytes] = {}  # label -> the public key offered (a certificate's: its key)

    # -- secrets ---------------------------------------------------------------------------

    def _ask(self, kind: str, prompt: str, echo: bool = False, instructions: str = "",
             subject: str = "") -> SecretAnswer:
        """A secret from the keyring (once) or from the person; LoginCancelled if they decline.

        The answer's `remember` is the person's wish; a value from the keyring comes back with
        remember=False, and the caller stores a wished-for secret only once it worked.
        """
        if kind in ("password", "passphrase") and subject and (kind, subject) not in self._used_stored:
            stored = secrets.recall(kind, subject)
            if stored is not None:
                self._used_stored.append((kind, subject))
                return SecretAnswer(stored)
        self.questions += 1
        if self.questions > MAX_QUESTIONS:
            raise AuthenticationFailed(
                f"{self._where()} kept asking questions ({MAX_QUESTIONS} so far) without letting you in, "
                "so EnvDesk stopped answering.",
                "Check the login in a terminal (ssh) and ask your cluster's support if it loops there too.")
        answer: SecretAnswer | None = self.prompter.ask_secret(
            SecretRequest(self.cluster, kind, prompt, echo, instructions))
        if answer is None:
            raise LoginCancelled(f"Login to {self.hop.host} was cancelled.")
        return answer

    def _where(self) -> str:
        return self.hop.host if self.hop.port == 22 else f"{self.hop.host} (port {self.hop.port})"

    def _password_subject(self) -> str:
        return f"{self.hop.user}@{self.hop.host}:{self.hop.port}"

    # -- keys ------------------------------------------------------------------------------

    def _load_key(self, path: str, quiet: bool = False) -> paramiko.PKey | None:
        """The key in `path`, unlocked with a passphrase from the keyring or the person (three goes);
        `quiet`: only a key that needs no passphrase, and nothing noted when there is none."""
        cached = self.keys.get(path)
        if cached is not None:
            return cached
        try:
            return self._keep(path, paramiko.PKey.from_path(path))
        except (paramiko.PasswordRequiredException, TypeError):  # paramiko 4+ raises TypeError
            if quiet:
                return None
        except (paramiko.SSHException, ValueError) as exc:
            return None if quiet else self._unreadable_key(path, str(exc))
        except OSError as exc:
            return None if quiet else self._unreadable_key(path, exc.strerror or str(exc))
        prompt = f"Passphrase for the key {path}:"
        asked_before = self.questions
        while self.questions - asked_before < PROMPTS_PER_SECRET:
            stored_before = len(self._used_stored)
            answer = self._ask("passphrase", prompt, subject=path)
            try:
                key = paramiko.PKey.from_path(path, password=answer.value.encode())  # type: ignore[arg-type]
            except (paramiko.SSHException, ValueError, TypeError):
                if len(self._used_stored) > stored_before:
                    secrets.forget("passphrase", path)  # remembered, but it no longer opens the key
                prompt = f"Wrong passphrase. Passphrase for the key {path}:"
                continue
            except OSError as exc:
                return self._unreadable_key(path, exc.strerror or str(exc))
            if answer.remember:
                self._to_remember.append(("passphrase", path, answer.value))
            return self._keep(path, key)
        self.tried.append(f"key {path} (wrong passphrase)")
        self._wrong_passphrase.append(path)
        return None

    def _unreadable_key(self, path: str, why: str) -> paramiko.PKey | None:
        """No key from `path` (None), noted for the failure message."""
        self.tried.append(f"key {path} (unreadable: {why})")
        self._unreadable.append(path)
        return None

    def _keep(self, path: str, key: paramiko.PKey) -> paramiko.PKey:
        self.keys.put(path, key)
        return key

    def _candidate_keys(self) -> list[tuple[str, KeyLoader]]:
        """The keys and certificates to offer, each with what loads it, in OpenSSH's order (sshconnect2.c,
        pubkey_prepare): the agent's, where one whose public half (or certificate) an identity names stands for that
        identity (so a file may be the .pub of a key only the agent has), then the identities no agent key stood
        for. An identity file stands for its key and for the certificate beside it (KEY-cert.pub), each offered on
        its own as ssh does; each CertificateFile is one more, signed by its key (the agent's or a file's). With
        IdentitiesOnly, an agent key no identity names is left out: a server allows only a few tries
        (MaxAuthTries)."""
        named = list(self.hop.identity_files) or default_key_files()
        halves = {path: _public_half(path) for path in named}  # a private file may be missing beside its .pub
        identities: list[tuple[str, bytes | None, str | None]] = [(f"key {path}", halves[path], path)
                                                                  for path in named]
        for path, cert_path in [(path, f"{path}-cert.pub") for path in named] + \
                [(None, path) for path in self.hop.certificate_files]:
            cert = certificate_file(cert_path)
            if cert is not None:
                self._certificates[f"certificate {cert_path}"] = cert
                identities.append((f"certificate {cert_path}", cert.blob, path))
        found: list[tuple[str, KeyLoader]] = []
        stood_for: set[str] = set()
        for key in self._agent_keys():
            these = [label for label, blob, _ in identities if blob is not None and blob == key.blob]
            if these or not self.hop.identities_only:
                found.append((self._agent_label(key), _constant(key)))
            else:
                self._note_left_out(key, halves)
            stood_for.update(these)
        for label, _, path in identities:
            if label in stood_for:
                continue
            if label in self._certificates:
                if self._signer(self._certificates[label], path, halves) is not None:
                    found.append((label, functools.partial(self._certified, self._certificates[label], path, halves)))
            elif path is not None and self._exists(path):
                found.append((label, functools.partial(self._plain_key, path)))
        return found

    def _agent_label(self, key: paramiko.AgentKey) -> str:
        """How the failure message names an agent key: its fingerprint as `ssh-add -l` shows it (a certificate's is
        its key's), a certificate said to be one."""
        cert = read_certificate(key.blob)
        if cert is None:
            return f"agent key {key.fingerprint}"
        label = f"agent certificate {blob_fingerprint(cert.key_blob)} ({cert.key_id})"
        self._certificates[label] = cert
        return label

    def _note_left_out(self, key: paramiko.AgentKey, halves: dict[str, bytes | None]) -> None:
        """An agent certificate for a named key, left out by IdentitiesOnly as ssh leaves it out: noted, for the
        failure message to say how to offer it."""
        cert = read_certificate(key.blob)
        named = next((path for path, half in halves.items() if cert is not None and half == cert.key_blob), None)
        if cert is not None and named is not None:
            self._left_out[named] = cert.key_blob

    def _plain_key(self, path: str, quiet: bool = False) -> paramiko.PKey | None:
        """The key in `path` as a plain key: paramiko adds the certificate beside it, which is offered on its own."""
        key = self._load_key(path, quiet)
        return None if key is None else _offering(key, None)

    def _signer(self, cert: Certificate, path: str | None, halves: dict[str, bytes | None]) -> str | None:
        """What signs for `cert`: 'agent' when the agent holds its key, else the identity file holding the key (the
        one the certificate lies beside, or one whose public half it certifies); None when there is none."""
        if any(key.blob == cert.key_blob for key in self._agent_keys()):
            return "agent"
        if path is not None and Path(path).is_file() and halves.get(path) in (None, cert.key_blob):
            return path  # a certificate beside another key is not its (R21: OpenSSH skips it)
        return next((named for named, half in halves.items() if half == cert.key_blob and Path(named).is_file()),
                    None)

    def _certified(self, cert: Certificate, path: str | None, halves: dict[str, bytes | None],
                   quiet: bool = False) -> paramiko.PKey | None:
        """The key that signs for `cert`, set to offer the certificate (None when it cannot be loaded)."""
        signer = self._signer(cert, path, halves)
        if signer == "agent":
            key: paramiko.PKey | None = next(key for key in self._agent_keys() if key.blob == cert.key_blob)
        else:
            key = None if signer is None else self._load_key(signer, quiet)
        if key is None or key.asbytes() != cert.key_blob:  # known only once loaded where no .pub lies beside it
            return None
        return _offering(key, cert.blob)

    def _exists(self, path: str) -> bool:
        """Whether the key file is there; noted for the failure message when it is not."""
        if Path(path).is_file():
            return True
        if path not in self._missing_keys:
            self._missing_keys.append(path)
        return False

    def _agent_keys(self) -> list[paramiko.AgentKey]:
        """The keys of the agent this hop uses (IdentityAgent's, else SSH_AUTH_SOCK's), asked once per login."""
        if self._agent is None:
            self._agent = []
            agent = _agent_for(self.hop.identity_agent) if self.use_agent else None
            if agent is not None:
                try:
                    self._agent = [_as_held(key) for key in agent().get_keys()]
                except (paramiko.SSHException, OSError):
                    pass
                self._agent_keys_held = len(self._agent)
        return self._agent

    # -- the dance -------------------------------------------------------------------------

    def _interactive_handler(self, title: str, instructions: str, prompts: list) -> list[str]:
        answers = []
        for prompt, echo in prompts:
            kind = classify_prompt(prompt)
            subject = self._password_subject() if kind == "password" else ""
            answer = self._ask(kind, prompt.strip() or "Answer:", echo,
                               "\n".join(p for p in (title, instructions) if p).strip(), subject)
            if answer.remember and kind == "password":
                self._to_remember.append((kind, subject, answer.value))
            self._round_kinds.append(kind)
            answers.append(answer.value)
        return answers

    def _try_publickey(self, transport: paramiko.Transport) -> list[str] | None:
        """Remaining methods after a key was accepted, or None when no key was."""
        for label, load in self._candidate_keys():
            if label in self._refused_keys:
                continue  # offered first already (see _key_first)
            key = load()
            if key is None:
                continue
            remaining = self._offer(transport, label, key)
            if remaining is not None or not self._keys_taken:
                return remaining
        return None

    def _offer(self, transport: paramiko.Transport, label: str, key: paramiko.PKey) -> list[str] | None:
        """Offer one key: the methods still to go once it is accepted ([] when it logged in), None when it
        was refused, or when the server takes no keys at all (then _keys_taken is False)."""
        self._offered_blobs[label] = key.asbytes()
        try:
            remaining = transport.auth_publickey(self.hop.user, key)
        except paramiko.AuthenticationException as exc:
            if isinstance(exc, paramiko.BadAuthenticationType) and "publickey" not in exc.allowed_types:
                self._keys_taken = False
            else:
                self.tried.append(f"{label} (refused)")
                self._refused_keys.append(label)
            return None
        self.tried.append(f"{label} (accepted)")
        return list(remaining or [])

    def _try_interactive(self, transport: paramiko.Transport) -> list[str] | None:
        self._round_kinds = []
        try:
            remaining = transport.auth_interactive(self.hop.user, self._interactive_handler)
        except paramiko.AuthenticationException:
            self.tried.append("keyboard-interactive (refused)")
            for kind in dict.fromkeys(self._round_kinds):
                self._refused_answers[kind] = self._refused_answers.get(kind, 0) + 1
            self._forget_stored()
            return None
        self.tried.append("keyboard-interactive (accepted)")
        return list(remaining)

    def _try_password(self, transport: paramiko.Transport) -> list[str] | None:
        subject = self._password_subject()
        answer = self._ask("password", f"Password for {subject.rsplit(':', 1)[0]}:", subject=subject)
        if answer.remember:
            self._to_remember.append(("password", subject, answer.value))
        try:
            remaining = transport.auth_password(self.hop.user, answer.value, fallback=False)
        except paramiko.AuthenticationException:
            self.tried.append("password (refused)")
            self._refused_answers["password"] = self._refused_answers.get("password", 0) + 1
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
        """Log in (see _authenticate). A server that hangs up once keys were refused has most likely counted too
        many tries (sshd's MaxAuthTries, 'Too many authentication failures'): said so, not blamed on the network."""
        try:
            self._authenticate(transport)
        except paramiko.AuthenticationException:
            raise
        except (paramiko.SSHException, EOFError, OSError) as exc:
            if not self._refused_keys:
                raise
            raise self._cut_off() from exc

    def _cut_off(self) -> AuthenticationFailed:
        """The server closed the connection after refusing keys one by one."""
        count = len(self._refused_keys)
        return AuthenticationFailed(
            f"{self._where()} closed the connection after refusing {count} key{'s' if count > 1 else ''}: a server "
            "allows only a few tries at a login (sshd's MaxAuthTries, 6 unless set), and too many keys were offered "
            "one by one" + (f" ({self._agent_keys_held} from the ssh-agent)" if self._agent_keys_held else "") + ".",
            f"Offer only the key {self._where()} knows: in ~/.ssh/config, under its Host, set 'IdentityFile' to "
            "that key and 'IdentitiesOnly yes' (or choose the key in this cluster's settings, with IdentitiesOnly)."
            f" (Tried: {'; '.join(self.tried)}.)")

    def _authenticate(self, transport: paramiko.Transport) -> None:
        """Log in, answering every step the server asks for; AuthenticationFailed if it cannot.

        A key that needs no question (the agent's, or a file without passphrase) is offered at once: one
        round trip when it is accepted. Otherwise, or when it is not, the server is asked first which
        methods it takes (the 'none' method, as OpenSSH does), so that no passphrase is asked for a key
        the server would not take anyway.
        """
        attempts = {"publickey": 0, "keyboard-interactive": 0, "password": 0}
        allowed = self._key_first(transport)
        if transport.is_authenticated():
            self._remember()
            return
        if allowed is None:
            try:
                transport.auth_none(self.hop.user)
                self._remember()
                return
            except paramiko.BadAuthenticationType as exc:
                allowed = list(exc.allowed_types)
            except paramiko.AuthenticationException:
                allowed = ["publickey", "keyboard-interactive", "password"]
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
            raise self._failure(allowed)
        self._remember()

    def _remember(self) -> None:
        """Keep the secrets the person asked to keep, now that they worked."""
        for kind, subject, value in self._to_remember:
            secrets.remember(kind, subject, value)

    def _key_first(self, transport: paramiko.Transport) -> list[str] | None:
        """Offer the first key that needs no question; the methods the server takes next after a partial
        success, None otherwise (not logged in: ask the server with 'none', then go on as usual)."""
        if self.method.startswith("password"):
            return None
        for label, load in self._candidate_keys():
            key = load(quiet=True)
            if key is not None:
                return self._offer(transport, label, key) or None
        return None

    def _failure(self, allowed: list[str]) -> AuthenticationFailed:
        """Why the login failed, in plain words: what was refused, and what the person can do."""
        reasons: list[str] = []
        hints: list[str] = []
        for path in self._wrong_passphrase:
            reasons.append(f"the passphrase for the key {path} was wrong ({PROMPTS_PER_SECRET} tries)")
            hints.append("Type the passphrase you chose for that key (not the cluster's password).")
        certified = {cert.key_blob for label, cert in self._certificates.items() if label in self._refused_keys}
        certified.update(self._left_out.values())
        keys = [label for label in self._refused_keys
                if label not in self._certificates and self._offered_blobs.get(label) not in certified]
        for label in self._refused_keys:
            if label in self._certificates:
                self._refused_certificate(label, reasons, hints)
        if keys:
            reasons.append(f"it does not accept the key{'s' if len(keys) > 1 else ''} "
                           f"{', '.join(label.removeprefix('key ') for label in keys)}")
            hints.append(f"{self.hop.host} is the jump host on the way to {self.cluster}: as with OpenSSH, it is "
                         "offered its own keys, not the one in the cluster's settings. Give it one in ~/.ssh/config "
                         f"(Host {self.hop.alias or self.hop.host}, then IdentityFile and the key's path), or add the "
                         f"key's public half (the .pub file) to ~/.ssh/authorized_keys on {self.hop.host}."
                         if self.jump else
                         "Add the key's public half (the .pub file) to ~/.ssh/authorized_keys on the cluster, "
                         "or choose the key the cluster knows in this cluster's settings.")
        for path in self._left_out:
            reasons.append(f"the ssh-agent's certificate for the key {path} was not offered (IdentitiesOnly offers "
                           "only what the identity files name, as ssh does)")
            hints.append(f"Save that certificate beside the key as {path}-cert.pub (ssh-add -L prints it), or name "
                         "its file with CertificateFile in ~/.ssh/config.")
        for kind, count in self._refused_answers.items():
            reasons.append(f"the {_WHAT[kind]} was refused ({count} {'try' if count == 1 else 'tries'})")
            hints.append({"password": "Check the username and the password (letter case counts).",
                          "code": "Enter a fresh code from your authenticator: each code works once, and only "
                                  "for about 30 seconds; check that the clock of the device making them is right.",
                          "prompt": "Check the answers the cluster asks for."}[kind])
        for path in self._unreadable:
            if str(path).endswith(".pub"):  # as OpenSSH, a .pub only names which of the ssh-agent's keys to offer
                reasons.append(f"the key file {path} is a public key, and the ssh-agent does not hold its private "
                               "half")
                hints.append(f"Load the private key into the ssh-agent (ssh-add {str(path)[:-4]}), or name the "
                             "private key itself as the key file.")
                continue
            reasons.append(f"the key file {path} could not be read")
            hints.append("Check that the key file is an SSH private key this account can read.")
        had_keys = any(entry.startswith(("key ", "agent key ")) for entry in self.tried)
        if not had_keys and "publickey" in allowed:
            if self.method.startswith("password"):
                reasons.append(f"it accepts only {', '.join(allowed)}")
                hints.append("This cluster is set to log in by password, so no key was offered: set its login "
                             "method to key in its settings (Cluster ▸ Edit… in the window; envdesk cluster edit "
                             "NAME --login key).")
            else:
                reasons.append(f"EnvDesk had no SSH key to offer ({self._where_keys_were_looked_for()})")
                hints.append("Load your key into the ssh-agent (ssh-add), or set this cluster's key file "
                             "in its settings.")
        if not reasons:
            reasons.append(f"it accepts only {', '.join(allowed) or 'no method EnvDesk knows'}")
            hints.append("Check the username and this cluster's login settings.")
        tried = f" (Tried: {'; '.join(self.tried)}.)" if self.tried else ""
        if self._refused_keys or self._refused_answers:
            lead = f"{self._where()} refused the login as {self.hop.user!r}"
        else:  # nothing EnvDesk had reached the server: no key, or a key that would not open
            lead = f"EnvDesk could not log in to {self._where()} as {self.hop.user!r}"
        return AuthenticationFailed(f"{lead}: {'; '.join(reasons)}.", " ".join(dict.fromkeys(hints)) + tried)

    def _refused_certificate(self, label: str, reasons: list[str], hints: list[str]) -> None:
        """Why a refused certificate most likely was (sshd checks these before its CA), and what to do."""
        cert = self._certificates[label]
        name = label.replace("certificate ", "", 1) if label.startswith("certificate ") else label
        if cert.expired():
            reasons.append(f"your certificate {name} expired on {cert.expires}")
            hints.append("Get a new certificate (for example with your site's sshproxy), then log in again.")
        elif cert.not_yet_valid():
            reasons.append(f"your certificate {name} is not valid before {cert.starts}")
            hints.append("Check this computer's clock, or get a new certificate.")
        elif not cert.allows(self.hop.user):
            whom = ("a host's certificate, not a user's" if not cert.user else
                    f"it is for {', '.join(cert.principals)}" if cert.principals else "it names no user")
            reasons.append(f"your certificate {name} is not for the user {self.hop.user!r} ({whom})")
            hints.append("Log in as a user the certificate names (the username in this cluster's settings), or get "
                         f"a certificate for {self.hop.user!r}.")
        else:
            reasons.append(f"it does not accept the certificate {name} (valid until {cert.expires})")
            hints.append("The cluster may not trust the authority that signed it: get a certificate from the one "
                         "your site names for this cluster.")

    def _where_keys_were_looked_for(self) -> str:
        places = []
        if self._agent_keys_held == 0:
            places.append("the ssh-agent holds no keys")
        elif self.hop.identity_agent == "none":
            places.append("IdentityAgent none turns the ssh-agent off")
        elif self._agent_keys_held is None and self.use_agent:
            places.append("no ssh-agent is running")
        if self._missing_keys:
            places.append(f"the key file {', '.join(self._missing_keys)} does not exist")
        elif not self.hop.identity_files:
            places.append("no key file in ~/.ssh")
        return "; ".join(places)


def _agent_for(where: str | None) -> Callable[[], paramiko.agent.AgentSSH] | None:
    """What connects to the agent `where` names (an expanded IdentityAgent; None: SSH_AUTH_SOCK's, or Windows' own
    agent), or None when there is none to ask."""
    if where == "none":
        return None
    if where is None or not hasattr(socket, "AF_UNIX"):  # Windows: its agent is a named pipe paramiko finds
        if where is not None:
            log.info("IdentityAgent %s cannot be reached here; using the usual agent", where)
        return paramiko.Agent if os.environ.get("SSH_AUTH_SOCK") or os.name == "nt" else None
    return functools.partial(_agent_at, where)


def _agent_at(path: str) -> paramiko.agent.AgentSSH:
    """An agent listening on the Unix socket `path` (paramiko's Agent only reads SSH_AUTH_SOCK)."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.settimeout(AGENT_TIMEOUT)
        connection.connect(path)
        agent = paramiko.agent.AgentSSH()
        agent._connect(connection)  # type: ignore[attr-defined]  # what paramiko.Agent() does with its socket
    except BaseException:
        connection.close()
        raise
    return agent


def _public_half(path: str) -> bytes | None:
    """The public key an identity file stands for, as OpenSSH finds it: the .pub beside it, or the file itself
    when it is a public key; None when neither is."""
    for candidate in (f"{path}.pub", path):
        if not Path(candidate).is_file():
            continue
        try:
            with open(candidate, "rb") as opened:
                words = opened.read(64 * 1024).split()
            if len(words) >= 2 and words[0].startswith((b"ssh-", b"ecdsa-", b"sk-")):
                return base64.b64decode(words[1], validate=True)
        except (OSError, ValueError):
            continue
    return None


def _as_held(key: paramiko.AgentKey) -> paramiko.AgentKey:
    """An agent's key as paramiko must offer it. For an RSA certificate paramiko offers the plain key's blob under
    the certificate's name, which sshd refuses ("key type mismatch for decoded key"; paramiko#2437): its
    certificate is set as the blob to offer, as paramiko does for a key file's certificate."""
    if read_certificate(key.blob) is not None and key.public_blob is None:
        key.public_blob = PublicBlob.from_message(paramiko.Message(key.blob))  # type: ignore[assignment]
    return key


def _offering(key: paramiko.PKey, cert: bytes | None) -> paramiko.PKey:
    """`key` set to offer the certificate `cert` (None: the plain key), leaving the cached key as it is."""
    if isinstance(key, paramiko.AgentKey):
        offered: paramiko.PKey = paramiko.AgentKey(key.agent, key.blob, key.comment)
    else:
        offered = copy.copy(key)
    offered.public_blob = None if cert is None else PublicBlob.from_message(paramiko.Message(cert))
    return offered


def _constant(key: paramiko.PKey) -> KeyLoader:
    """A loader that returns a key already in hand (an agent's)."""
    return lambda quiet=False: key
