"""The %-tokens and ${VARIABLES} OpenSSH expands in IdentityFile (ssh_config(5), TOKENS), expanded as it does.

paramiko's own table for IdentityFile lacks %p, %n, %i, %k and ${VAR}, and takes %l for this computer's
fully qualified name (a DNS lookup) where OpenSSH takes gethostname() as it is.
"""
from __future__ import annotations

import getpass
import hashlib
import os
import re
import socket
from dataclasses import dataclass

from .errors import ConfigError

_TOKEN = re.compile(r"%(?P<token>.?)|\$\{(?P<variable>[^}]*)(?P<closed>\}?)", re.DOTALL)


@dataclass(frozen=True)
class Connection:
    """What the tokens stand for: the host as given (`alias`), and where and as whom it is reached."""

    alias: str
    host: str
    port: int
    user: str
    key_alias: str | None = None


def expand_identity_file(path: str, connection: Connection, what: str = "the identity file") -> str:
    """`path` with `~`, its %-tokens and ${VARIABLES} expanded, in one pass as OpenSSH does (a variable's value is
    not expanded again); ConfigError for an unknown token or a variable that is not set, which ssh refuses too.
    `what` names the setting in that message (IdentityAgent takes the same tokens)."""
    values = _token_values(connection)

    def replace(found: re.Match[str]) -> str:
        if found.group("variable") is not None:
            return _variable(found.group("variable"), found.group("closed"), f"{what} {path!r}")
        token = found.group("token")
        if token not in values:
            raise ConfigError(f"Your SSH configuration names {what} {path!r}, with %{token}, which OpenSSH does not "
                              "know either.", "Write %% for a percent sign.")
        return values[token]

    return _TOKEN.sub(replace, os.path.expanduser(path))


def _variable(name: str, closed: str, named: str) -> str:
    value = os.environ.get(name) if closed and name else None
    if value is None:
        raise ConfigError(f"Your SSH configuration names {named}, with ${{{name}}}, which is not set here (OpenSSH "
                          "refuses it too).", "Set that variable, or write the path out.")
    return value


def _token_values(connection: Connection) -> dict[str, str]:
    """ssh.c's table (DEFAULT_CLIENT_PERCENT_EXPAND_ARGS) for this connection."""
    this_host = socket.gethostname()
    port = str(connection.port)
    return {
        "%": "%",
        "C": hashlib.sha1((this_host + connection.host + port + connection.user).encode()).hexdigest(),
        "L": this_host.split(".")[0],
        "d": os.path.expanduser("~"),
        "h": connection.host,
        "i": str(os.getuid()) if hasattr(os, "getuid") else "",
        "k": connection.key_alias or connection.alias,
        "l": this_host,
        "n": connection.alias,
        "p": port,
        "r": connection.user,
        "u": _local_user(),
    }


def _local_user() -> str:
    """The name of the account this runs as (OpenSSH's pw_name), not $USER, which a person may have changed."""
    try:
        import pwd
        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return getpass.getuser()
