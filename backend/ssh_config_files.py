"""Reading ~/.ssh/config and the files it Includes as OpenSSH reads them, into one text paramiko can parse.

paramiko parses one flat file and knows nothing of `Include`. OpenSSH reads an included file in the scope of the
block the `Include` line is in (a `Host` line inside it narrows that block, never leaves it), and after the file
the enclosing block goes on (readconf.c: the including block's state is restored after each file). Pasting the
file in place gets both wrong, so each block header met inside an included file is written out as one `Match`
line holding the enclosing block's criteria and its own, and the enclosing header is written again after it.
"""
from __future__ import annotations

import glob
import os
import shlex
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .fileio import read_without_waiting
from .ssh_lib import paramiko

MAX_INCLUDE_DEPTH = 16  # OpenSSH's READCONF_MAX_DEPTH
MAX_CONFIG_BYTES = 4 * 1024 * 1024
"""Far more than any real SSH configuration: a file larger than this is not one, and is not read."""
NEVER_HOST = "envdesk-never-matches.invalid"
NEVER_MATCHES = f"Match host {NEVER_HOST}"
MATCH_EXEC_PROBE = "envdeskmatchexec"
"""A made-up keyword set under a `Match exec` block's other criteria, so that a lookup tells whether the block
could have applied to a host (see `FlatConfig.match_exec`)."""

CERTIFICATE_FILE = "envdeskcertificatefile"
"""OpenSSH takes every CertificateFile line that applies, in order; paramiko keeps only the first value of a keyword
(IdentityFile aside). Each line is passed on under a keyword of its own, numbered (see `certificate_files`)."""

FILE_LISTS = ("userknownhostsfile", "globalknownhostsfile")
"""Settings holding several files, quotes grouping the words of one (`UserKnownHostsFile "/a b/known_hosts"`).
paramiko drops the quotes around a whole value, and what is left would be split at its spaces: their value is passed
on in quotes of its own, so that paramiko gives it back as written, to be split as OpenSSH splits it."""


@dataclass(frozen=True)
class _Scope:
    """The block a line falls in: its header as paramiko reads it, and its criteria as the words of a `Match`
    line (none: the file's global part, every host)."""

    header: str
    criteria: tuple[str, ...] = ()


_GLOBAL = _Scope("Host *")


@dataclass
class FlatConfig:
    """The configuration as one text, and the `Match exec` blocks EnvDesk did not evaluate."""

    lines: list[str] = field(default_factory=list)
    match_exec: dict[str, str] = field(default_factory=dict)
    """Probe keyword -> where the `Match exec` line is ('FILE line N')."""
    certificate_files: int = 0
    """CertificateFile lines so far (each passed on under its own numbered keyword)."""


def certificate_files(found: dict) -> list[str]:
    """The CertificateFile values of a lookup, in the configuration's order (not yet expanded)."""
    numbered = [(int(key[len(CERTIFICATE_FILE):]), value) for key, value in found.items()
                if key.startswith(CERTIFICATE_FILE) and key[len(CERTIFICATE_FILE):].isdigit()]
    return [value for _, value in sorted(numbered)]


def default_ssh_config_path() -> Path:
    """The per-user OpenSSH client configuration file."""
    return Path.home() / ".ssh" / "config"


def flatten(path: Path, checked: bool = False) -> FlatConfig:
    """The configuration in `path` with its Includes read in their blocks' scope; `checked`: refuse it if others
    may change it, as OpenSSH refuses the user's own ~/.ssh/config (not a file given with -F)."""
    flat = FlatConfig()
    _read(flat, path, _GLOBAL, 0, checked)
    return flat


def _read(flat: FlatConfig, path: Path, enclosing: _Scope, depth: int, checked: bool) -> None:
    """Append `path`'s lines to `flat`, in the scope of the block that included it; `checked`: refuse the file if
    others may change it, as OpenSSH does for an included file."""
    if depth > MAX_INCLUDE_DEPTH:
        raise ConfigError(f"Your SSH configuration includes files more than {MAX_INCLUDE_DEPTH} levels deep "
                          f"(at {path}).", "Check its Include lines: a file may include itself.")
    scope = enclosing
    for number, line in enumerate(read_config_file(path, checked), start=1):
        keyword, value = _keyword(line)
        if keyword == "include":
            for included in _include_targets(value, path, number):
                _read(flat, included, scope, depth + 1, True)
            flat.lines.append(scope.header)  # the including block goes on after the file
        elif keyword in ("host", "match"):
            scope = _header(flat, line, keyword, value, enclosing, f"{path} line {number}")
            flat.lines.append(scope.header)
        elif keyword == "certificatefile":
            flat.lines.append(f"{CERTIFICATE_FILE}{flat.certificate_files} {value}")
            flat.certificate_files += 1
        elif keyword in FILE_LISTS:
            flat.lines.append(f'{keyword} "{value}"')  # paramiko drops these quotes, and leaves the value's own
        else:
            flat.lines.append(line)


def _keyword(line: str) -> tuple[str, str]:
    """The line's keyword (lower case) and value as paramiko splits them; ('', '') for a blank or comment."""
    stripped = line.strip()
    found = paramiko.SSHConfig.SETTINGS_REGEX.match(stripped)
    if not stripped or stripped.startswith("#") or found is None:
        return "", ""
    return found.group(1).lower(), found.group(2)


def _words(value: str, where: str) -> list[str]:
    try:
        return shlex.split(value)
    except ValueError as exc:
        raise ConfigError(f"Your SSH configuration could not be parsed at {where}: {exc}.") from exc


def _header(flat: FlatConfig, line: str, keyword: str, value: str, enclosing: _Scope, where: str) -> _Scope:
    """The scope a Host or Match line opens inside `enclosing`. A `Match exec` block never matches (EnvDesk never
    runs a configuration's command); a probe under its other criteria records whether it could have applied."""
    if keyword == "match" and runs_a_command(line):
        probe = f"{MATCH_EXEC_PROBE}{len(flat.match_exec)}"
        flat.match_exec[probe] = where
        flat.lines += [_within(enclosing, _without_exec(_words_or_none(value))).header, f"{probe} yes"]
        return _within(enclosing, ("host", NEVER_HOST))
    if keyword == "host":
        own: tuple[str, ...] = ("originalhost", ",".join(_words(value, where)))
    else:
        own = tuple(word for word in _words(value, where) if word.lower() != "all")
    if not enclosing.criteria:
        return _Scope(line.strip(), own)  # as written: a Host line's aliases are offered as clusters
    return _within(enclosing, own)


def _within(enclosing: _Scope, own: tuple[str, ...]) -> _Scope:
    """The scope of a block inside `enclosing`: a host must meet both blocks' criteria."""
    criteria = (*enclosing.criteria, *own)
    if not criteria:
        return _GLOBAL
    return _Scope("Match " + " ".join(shlex.quote(word) for word in criteria), criteria)


def _words_or_none(value: str) -> list[str]:
    try:
        return shlex.split(value)
    except ValueError:
        return ["host", NEVER_HOST]  # unreadable: treated as never matching, as its exec never runs


def _without_exec(words: list[str]) -> tuple[str, ...]:
    """A Match line's criteria without its exec ones (each `exec COMMAND` pair) and without `all`."""
    kept: list[str] = []
    position = 0
    while position < len(words):
        word = words[position]
        if word.lstrip("!").lower() == "exec":
            position += 2
            continue
        if word.lower() != "all":
            kept.append(word)
        position += 1
    return tuple(kept)


def runs_a_command(line: str) -> bool:
    """Whether paramiko would read this line as a Match with an exec criterion, however it is spelled
    (quoted, negated, any case): the line is split exactly as paramiko splits it."""
    keyword, value = _keyword(line)
    if keyword != "match":
        return False
    try:
        criteria = shlex.split(value)
    except ValueError:
        return True  # paramiko cannot read it either; never let it near a shell
    return any(word.lstrip("!").lower() == "exec" for word in criteria)


def _include_targets(value: str, including: Path, number: int) -> list[Path]:
    """The files an Include line names, as OpenSSH finds them: `~` is the home folder, a relative path is
    relative to ~/.ssh (a user configuration's), and globs are expanded in sorted order."""
    found: list[Path] = []
    for pattern in _words(value, f"{including} line {number}"):
        pattern = os.path.expanduser(pattern)
        if not os.path.isabs(pattern):
            pattern = str(default_ssh_config_path().parent / pattern)
        found += [Path(name) for name in sorted(glob.glob(pattern))]
    return found


def read_config_file(path: Path, checked: bool) -> list[str]:
    """The lines of one configuration file; none when it is missing or a folder (OpenSSH reads nothing from
    either). A device, pipe or socket is refused before it is opened (OpenSSH refuses /dev/zero, and waits
    forever on a pipe), and so is a file larger than any configuration or one others may write (`checked`)."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ConfigError(f"Could not read your SSH configuration {path}: {exc.strerror or exc}.") from exc
    if stat.S_ISDIR(found.st_mode):
        return []
    _refuse_unusual(path, found, checked)
    try:
        data = _read_regular(path, checked)
    except OSError as exc:
        raise ConfigError(f"Could not read your SSH configuration {path}: {exc.strerror or exc}.") from exc
    return data.decode("utf-8", errors="replace").splitlines()


def _read_regular(path: Path, checked: bool) -> bytes:
    """The file's bytes, opened without waiting (it may have become a pipe since it was looked at) and checked
    again once open."""
    return read_without_waiting(path, MAX_CONFIG_BYTES, lambda found: _refuse_unusual(path, found, checked))


def _refuse_unusual(path: Path, found: os.stat_result, checked: bool) -> None:
    """ConfigError unless `path` is a regular file of a configuration's size that only its owner may change."""
    hint = "Point the Include line (or ~/.ssh/config) at an ordinary file of SSH settings."
    if not stat.S_ISREG(found.st_mode):
        raise ConfigError(f"Your SSH configuration names {path}, which is not an ordinary file (a device, pipe or "
                          "socket), so it is not read.", hint)
    if found.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"Your SSH configuration names {path}, which is larger ({found.st_size} bytes) than "
                          f"any SSH configuration ({MAX_CONFIG_BYTES // (1024 * 1024)} MB at most), so it is "
                          "not read.", hint)
    if checked and not _safe_owner_and_mode(found):
        raise ConfigError(f"Bad owner or permissions on {path}: others may change it, so OpenSSH refuses it and "
                          "so does EnvDesk.", f"Make it yours and writable by you alone: chmod go-w {path}")


def _safe_owner_and_mode(found: os.stat_result) -> bool:
    """As OpenSSH (with Debian's user-group patch) judges a configuration file: owned by root or the user, and
    writable by nobody else; a group may write it only when it is the user's own private group."""
    if os.name != "posix":
        return True  # Windows' OpenSSH checks ACLs, not these bits
    if found.st_uid not in (0, os.getuid()) or found.st_mode & stat.S_IWOTH:
        return False
    return not found.st_mode & stat.S_IWGRP or _private_group(found.st_uid, found.st_gid)


def _private_group(uid: int, gid: int) -> bool:
    """Whether `gid` has exactly one member, the owner, as Debian's secure_permissions counts them: every account
    whose primary group it is, and its listed members (R14: a shared primary group such as 'users' passed, and a
    group listing only the owner was refused, where ssh reads it)."""
    import grp
    import pwd
    try:
        owner = pwd.getpwuid(uid)
        listed = grp.getgrgid(gid).gr_mem
    except KeyError:
        return False
    primary = [account.pw_uid for account in pwd.getpwall() if account.pw_gid == gid]
    if any(account != uid for account in primary) or listed[:1] not in ([], [owner.pw_name]) or len(listed) > 1:
        return False
    return bool(primary or listed)
