"""Honour the user's ~/.ssh/config: host aliases, users, ports, keys, ProxyJump and Include."""
from __future__ import annotations

import copy
import getpass
import logging
import os
import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path

from .ssh_lib import paramiko

from . import validate
from .config import ClusterProfile
from .errors import ConfigError, EnvDeskError
from .ssh_config_files import certificate_files, default_ssh_config_path, flatten
from .ssh_config_tokens import Connection, expand_identity_file

__all__ = ["default_ssh_config_path", "load_ssh_config", "plan_connection", "profiles_from_ssh_config"]

log = logging.getLogger(__name__)


class SSHConfiguration(paramiko.SSHConfig):
    """paramiko's reading of the configuration, with what EnvDesk left out of it: the `Match exec` blocks it did
    not evaluate (probe keyword -> 'FILE line N'), so that a plan can say so for the hosts they could apply to."""

    match_exec: dict[str, str] = {}
    TOKENS_BY_CONFIG_KEY = {key: tokens for key, tokens in paramiko.SSHConfig.TOKENS_BY_CONFIG_KEY.items()
                            if key != "identityfile"}  # expanded as OpenSSH does, by expand_identity_file


def load_ssh_config(path: Path | None = None) -> paramiko.SSHConfig:
    """Parse the user's SSH configuration with its Includes read in their blocks' scope, as OpenSSH reads them
    (and no `Match exec` evaluated). The user's own ~/.ssh/config (no `path`) is refused, as ssh refuses it, when
    others may change it: what they write there would decide where EnvDesk connects and with which keys."""
    source = path or default_ssh_config_path()
    flat = flatten(source, checked=path is None)
    try:
        config = SSHConfiguration.from_text("\n".join(flat.lines))
    except Exception as exc:  # paramiko raises several types for bad syntax
        raise ConfigError(f"Your SSH configuration {source} could not be parsed: {exc}.") from exc
    config.match_exec = flat.match_exec
    for where in flat.match_exec.values():
        log.info("not evaluating a 'Match exec' block of the SSH configuration (%s)", where)
    return config


def host_aliases(config: paramiko.SSHConfig) -> list[str]:
    """Concrete Host names (no wildcards or negations) a user may pick from."""
    # paramiko's get_hostnames() fails on any Match block (EnvDesk's own NEVER_MATCHES included)
    names = {name for entry in getattr(config, "_config", []) for name in entry.get("host", [])}
    return sorted(h for h in names if not any(c in h for c in "*?!"))


@dataclass(frozen=True)
class Hop:
    """One fully resolved SSH endpoint: where to connect, as whom, with which keys."""

    host: str
    port: int
    user: str
    identity_files: tuple[str, ...] = ()
    alias: str = ""
    certificate_files: tuple[str, ...] = ()
    """CertificateFile, expanded: certificates to offer, each signed by its key (the agent's or an identity file's)."""
    identities_only: bool = False
    """IdentitiesOnly: offer only the identity files' keys (from the agent or the files), no other agent key."""
    identity_agent: str | None = None
    """IdentityAgent, expanded: the agent's socket; None for SSH_AUTH_SOCK's (or Windows' own), 'none' for none."""
    host_key_alias: str | None = None
    """HostKeyAlias: the name known_hosts files record its key under, instead of host or [host]:port."""
    known_hosts_files: tuple[str, ...] | None = None
    """UserKnownHostsFile, expanded: the user's known_hosts files to read instead of OpenSSH's default ones
    (None: not set; empty: `none`)."""
    global_known_hosts_files: tuple[str, ...] | None = None
    """GlobalKnownHostsFile, with ~ expanded (OpenSSH expands no other token in it): the system's known_hosts files to
    read instead of its default ones (None: not set; empty: `none`)."""
    server_alive_interval: int | None = None
    """ServerAliveInterval, in seconds: after this long without a word from the server, ask it for one (0: never;
    None: not set, EnvDesk's own default then, see ssh_alive)."""
    server_alive_count_max: int | None = None
    """ServerAliveCountMax: how many such questions may go unanswered before the connection is dropped (None: not
    set)."""
    tcp_keep_alive: bool = True
    """TCPKeepAlive: the kernel's keepalives on the connection's socket (OpenSSH's default, yes)."""

    @property
    def label(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True)
class ConnectionPlan:
    """The hops to open, in order: jump hosts first, the cluster's login node last."""

    target: Hop
    jumps: tuple[Hop, ...] = field(default_factory=tuple)
    notes: tuple[str, ...] = ()
    """What of the SSH configuration is not followed, in plain words (a `Match exec` line EnvDesk does not run)."""


def _lookup(config: paramiko.SSHConfig, alias: str) -> dict:
    try:
        return dict(config.lookup(alias))
    except Exception as exc:
        raise ConfigError(f"Your SSH configuration could not be applied to {alias!r}: {exc}.") from exc


def _hop(config: paramiko.SSHConfig, alias: str, user: str | None, port: int | None,
         identity: str | None) -> Hop:
    found = _lookup(config, alias)
    hop = Hop(
        host=validate.host(found.get("hostname", alias)),
        port=validate.port(port or found.get("port", 22)),
        user=validate.user(user or found.get("user") or getpass.getuser()),
        alias=alias,
    )
    connection = Connection(alias, hop.host, hop.port, hop.user, _host_key_alias(found.get("hostkeyalias"), alias))
    keys = (os.path.expanduser(identity),) if identity else tuple(
        expand_identity_file(path, connection) for path in found.get("identityfile", []))
    certificates = tuple(dict.fromkeys(expand_identity_file(path, connection, "the certificate file (CertificateFile)")
                                       for path in certificate_files(found)))
    return replace(hop, identity_files=keys, certificate_files=certificates,
                   identities_only=found.get("identitiesonly", "").lower() == "yes",
                   identity_agent=_identity_agent(found.get("identityagent"), connection),
                   host_key_alias=connection.key_alias,
                   known_hosts_files=_known_hosts_files(found.get("userknownhostsfile"), connection),
                   global_known_hosts_files=_global_known_hosts_files(found.get("globalknownhostsfile"), alias),
                   server_alive_interval=_seconds(found.get("serveraliveinterval"), "ServerAliveInterval", alias),
                   server_alive_count_max=_count(found.get("serveralivecountmax"), "ServerAliveCountMax", alias),
                   tcp_keep_alive=_yes_no(found.get("tcpkeepalive"), "TCPKeepAlive", alias, default=True))


_TIME_PART = re.compile(r"\+?(\d+)([sSmMhHdDwW]?)")  # strtol takes a + sign
_TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_INT_MAX = 2**31 - 1


def _seconds(setting: str | None, keyword: str, alias: str) -> int | None:
    """A time setting as OpenSSH reads it (misc.c convtime): numbers each with an optional unit (s, m, h, d, w, either
    case; none is seconds), added up: 90, 1m30s, 2h. ConfigError where ssh refuses it ("invalid time value")."""
    if setting is None:
        return None
    text, total, at = setting.strip(), 0, 0
    while text and at < len(text):
        part = _TIME_PART.match(text, at)
        if part is None:
            break
        total += int(part.group(1)) * _TIME_UNITS[part.group(2).lower()]
        at = part.end()
    if not text or at < len(text) or total > _INT_MAX:
        raise ConfigError(f"Your SSH configuration gives {alias} the {keyword} {setting!r}, which is not a time "
                          "(ssh refuses it too).", f"Write seconds, such as '{keyword} 30', or a time such as 1m30s.")
    return total


def _count(setting: str | None, keyword: str, alias: str) -> int | None:
    """A count setting as OpenSSH reads it (readconf.c parse_int: a whole number from 0); ConfigError otherwise."""
    if setting is None:
        return None
    text = setting.strip()
    text = text[1:] if text.startswith("+") else text  # strtonum takes a + sign
    if not text.isdigit() or not text.isascii() or int(text) > _INT_MAX:
        raise ConfigError(f"Your SSH configuration gives {alias} the {keyword} {setting!r}, which is not a whole "
                          "number (ssh refuses it too).", f"Write a number, such as '{keyword} 3'.")
    return int(text)


def _yes_no(setting: str | None, keyword: str, alias: str, *, default: bool) -> bool:
    """A yes/no setting as OpenSSH reads it (either case); ConfigError for another word, as ssh refuses it."""
    if setting is None:
        return default
    if setting.strip().lower() not in ("yes", "no"):
        raise ConfigError(f"Your SSH configuration gives {alias} the {keyword} {setting!r}: ssh takes only yes or no.")
    return setting.strip().lower() == "yes"


def _identity_agent(setting: str | None, connection: Connection) -> str | None:
    """Where IdentityAgent says the agent listens, as OpenSSH reads it: SSH_AUTH_SOCK (or nothing) for the usual
    agent, `none` for no agent, $VARIABLE for the socket a variable names, else a path with ~ and tokens."""
    if setting is None or setting == "SSH_AUTH_SOCK":
        return None
    if setting.lower() == "none":
        return "none"
    if setting.startswith("$"):
        return os.environ.get(setting[1:].strip("{}")) or "none"
    return expand_identity_file(setting, connection, "the agent socket (IdentityAgent)")


_NOT_IN_AN_ALIAS = re.compile(r"[\s,*?!#@|\[\]\x00-\x1f\x7f]")
"""What a known_hosts name field cannot hold as one literal name: space, the pattern list's comma, wildcards,
negation, a comment or marker, a hashed entry's bar, the brackets of [host]:port, control characters."""


def _host_key_alias(setting: str | None, alias: str) -> str | None:
    """HostKeyAlias as one name EnvDesk can look up and record in its known_hosts file; ConfigError otherwise."""
    if setting is None:
        return None
    words = _setting_words(setting, "HostKeyAlias", alias)
    if len(words) != 1 or _NOT_IN_AN_ALIAS.search(words[0]):
        raise ConfigError(f"Your SSH configuration gives {alias} the HostKeyAlias {setting!r}, which is not one plain "
                          "name that a known_hosts file can record.",
                          "Write one name without spaces, commas, wildcards or brackets, such as mycluster-login.")
    return words[0]


def _known_hosts_files(setting: str | None, connection: Connection) -> tuple[str, ...] | None:
    """UserKnownHostsFile as OpenSSH reads it (readconf.c, ssh.c): space-separated files, each with ~, its
    %-tokens and ${VARIABLES} expanded as IdentityFile's are; `none` alone for no user file at all."""
    files = _file_list(setting, "UserKnownHostsFile", connection.alias)
    return None if files is None else tuple(
        expand_identity_file(name, connection, "the known hosts file (UserKnownHostsFile)") for name in files)


def _global_known_hosts_files(setting: str | None, alias: str) -> tuple[str, ...] | None:
    """GlobalKnownHostsFile as OpenSSH reads it: the same list as UserKnownHostsFile's, but only ~ is expanded in
    it (ssh.c's tilde_expand_paths; a %-token or ${VARIABLE} is part of the name)."""
    files = _file_list(setting, "GlobalKnownHostsFile", alias)
    return None if files is None else tuple(os.path.expanduser(name) for name in files)


def _file_list(setting: str | None, keyword: str, alias: str) -> list[str] | None:
    """A known_hosts setting's files, as written: None when it is not set, none for `none`; ConfigError where OpenSSH
    refuses the line ('none' among other files)."""
    if setting is None:
        return None
    files = _setting_words(setting, keyword, alias)
    if [name.lower() for name in files] == ["none"]:
        return []
    if "none" in (name.lower() for name in files):
        raise ConfigError(f"Your SSH configuration gives {alias} a {keyword} line with 'none' among other files, "
                          "which OpenSSH refuses too.", f"Write either '{keyword} none' or a list of files.")
    return files


def _setting_words(setting: str, keyword: str, alias: str) -> list[str]:
    """A setting's words as OpenSSH splits them (quotes group); ConfigError for unbalanced quotes or none."""
    try:
        words = shlex.split(setting)
    except ValueError as exc:
        words, problem = [], str(exc)
    else:
        problem = "it is empty"
    if not words:
        raise ConfigError(f"Your SSH configuration's {keyword} line for {alias} could not be read: {problem}.")
    return words


_MAX_JUMPS = 16


@dataclass(frozen=True)
class _Jump:
    """One jump of a route: a ProxyJump entry ([user@]host[:port]) and the options the ssh of a ProxyCommand gives
    it on its command line, as ssh_config lines (-i is IdentityFile, -l User, -p Port, -J ProxyJump, -o the line
    itself): ssh takes them before its configuration files, so they win over what those say for the jump."""

    spec: str
    settings: tuple[str, ...] = ()


class _UnfollowedProxyCommand(ConfigError):
    """A ProxyCommand EnvDesk does not run and cannot read as a jump: connecting without it would go another way
    than ssh goes (past a gateway the site requires, or nowhere)."""


def _proxy_jumps(config: paramiko.SSHConfig, alias: str) -> list[_Jump]:
    """The jumps the configuration gives `alias`: its ProxyJump, or a ProxyCommand that is one written out
    (`ssh [options] -W %h:%p gw`). Any other ProxyCommand is not run (it would run a command of the configuration's
    on this computer, as Match exec would), and not left out either: _UnfollowedProxyCommand. As in OpenSSH,
    whichever of the two the file sets first wins (`ProxyCommand none` first turns off a later ProxyJump): paramiko
    keeps the settings in the order it met them."""
    found = _lookup(config, alias)
    first = next((key for key in found if key in ("proxyjump", "proxycommand")), None)
    if first == "proxyjump":
        proxy = found["proxyjump"] or ""
        return [_Jump(part) for part in proxy.split(",") if part.strip()] if proxy.lower() != "none" else []
    command = found.get("proxycommand") or ""
    if first is None or not command or command.lower() == "none":
        return []
    jump = _jump_in_proxy_command(command, f"{found.get('hostname', alias)}:{found.get('port', 22)}")
    if jump is not None:
        return [jump]
    # the command is not shown: it may hold a proxy's password
    raise _UnfollowedProxyCommand(
        f"Your SSH configuration reaches {alias} through a ProxyCommand that EnvDesk cannot follow: it follows one "
        "that is a jump host written out ('ssh [-i KEY] [-l USER] [-p PORT] [-o OPTION] -W %h:%p JUMPHOST') and "
        f"runs no other command. It does not connect to {alias} without it, as that is not the way ssh goes.",
        f"Write 'ProxyJump JUMPHOST' for {alias} in your SSH configuration instead (ssh goes the same way), or give "
        "the jump host in the cluster's settings (its Jump hosts, or `envdesk cluster add NAME --jump JUMPHOST`).")


_SSH_FLAGS = set("46AaCgKkNnqTtvXxYy")  # not -V: ssh then prints its version and connects nowhere (R22)
"""ssh's options without a value that change neither where it connects nor what it forwards."""
_SSH_IGNORED = set("bBcEemS")
"""ssh's options with a value that change neither where it connects nor as whom: its bind address and interface,
ciphers, log file, escape character, MACs and control socket."""
_SSH_SETTINGS = {"i": "IdentityFile", "l": "User", "p": "Port", "J": "ProxyJump"}
"""ssh's options with a value that are ssh_config settings for the host it connects to."""
_NOT_ON_A_COMMAND_LINE = {"host", "match", "include"}


def _ssh_options(words: list[str]) -> list[tuple[str, str]] | None:
    """ssh's command line after the program, as its getopt reads it, options again after the host (as ssh.c
    does): (option letter, value) pairs, ('', WORD) for the words that are not options; None where an option is
    not one of ssh's or lacks its value."""
    found: list[tuple[str, str]] = []
    position = 0
    while position < len(words):
        word = words[position]
        position += 1
        if not word.startswith("-") or word == "-":
            found.append(("", word))
            continue
        letters = word[1:]
        while letters:
            letter, letters = letters[0], letters[1:]
            if letter in _SSH_FLAGS:
                found.append((letter, ""))
                continue
            if letter not in _SSH_IGNORED and letter not in _SSH_SETTINGS and letter not in "oW":
                return None
            if not letters:
                if position >= len(words):
                    return None
                letters, position = words[position], position + 1
            found.append((letter, letters))
            break
    return found


def _jump_in_proxy_command(command: str, forwarded: str) -> _Jump | None:
    """The jump of `[exec] ssh [OPTIONS] -W HOST:PORT JUMP [OPTIONS]` (what ProxyJump JUMP does), where HOST:PORT is
    the host's own (`forwarded`) and OPTIONS are ones EnvDesk can apply (see _Jump) or that change neither where ssh
    connects nor as whom; None for any other command."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if words[:1] == ["exec"]:
        words = words[1:]
    if not words or os.path.basename(words[0]).lower() not in ("ssh", "ssh.exe"):
        return None
    options = _ssh_options(words[1:])
    if options is None:
        return None
    jump, forwards, settings = None, None, []
    for letter, value in options:
        if letter == "":
            if jump is not None:
                return None  # a command to run there
            jump = value
        elif letter == "W":
            if forwards is not None:
                return None  # ssh refuses a second -W ("stdio forward already specified")
            forwards = re.sub(r"^\[([^]]*)\]", r"\1", value) == forwarded
        elif letter == "o":
            keyword = re.split(r"[\s=]", value.strip(), maxsplit=1)[0].lower()
            if not keyword or keyword in _NOT_ON_A_COMMAND_LINE:
                return None
            settings.append(value.strip())
        elif letter in _SSH_SETTINGS:
            settings.append(f'{_SSH_SETTINGS[letter]} "{value}"' if re.search(r"\s", value)
                            else f"{_SSH_SETTINGS[letter]} {value}")
    if not forwards or jump is None:
        return None
    given_user = any(line.split(None, 1)[0].split("=")[0].lower() == "user" for line in settings)
    return _Jump(jump.rpartition("@")[2] if given_user else jump, tuple(settings))


def _with_settings(config: paramiko.SSHConfig, settings: tuple[str, ...]) -> paramiko.SSHConfig:
    """`config` with `settings` (ssh_config lines) read before its first line, as ssh reads its command line's
    options before its files: a setting given there wins."""
    if not settings:
        return config
    try:
        given = type(config).from_text("\n".join(settings))
    except Exception as exc:  # paramiko raises several types for bad syntax
        raise ConfigError(f"The ssh options of a ProxyCommand in your SSH configuration could not be read: {exc}.") \
            from exc
    ahead = copy.copy(config)
    ahead._config = [*given._config, *config._config]  # type: ignore[attr-defined]
    return ahead


def _route(config: paramiko.SSHConfig, jumps: list[_Jump], seen: tuple[str, ...]) -> list[Hop]:
    """The hops that reach the host `seen` ends with through `jumps`, as OpenSSH opens them: the first jump is
    reached through its own ProxyJump (ssh reads the configuration again for it), the others through the jump
    before them, whatever their own ProxyJump says (ssh gives them the rest of the list with -J)."""
    if not jumps:
        return []
    if len(seen) + len(jumps) > _MAX_JUMPS:
        raise ConfigError(f"Your SSH configuration's ProxyJump lines make a route of more than {_MAX_JUMPS} hops to "
                          f"{seen[0]!r}: " + " -> ".join(seen) + ".", "Check the ProxyJump lines of those hosts.")
    first = validate.hop_address(jumps[0].spec)
    further = _proxy_jumps(_with_settings(config, jumps[0].settings), first.host)
    if first.host in seen and further:  # reaching it would take reaching it first (a host may be its own jump)
        raise ConfigError("Your SSH configuration's ProxyJump lines go round in a circle: "
                          + " -> ".join([*seen, first.host]) + ".", "Check the ProxyJump lines of those hosts.")
    before = _route(config, further, (*seen, first.host))
    hops = []
    for jump in jumps:
        address = validate.hop_address(jump.spec)
        hops.append(_hop(_with_settings(config, jump.settings), address.host, address.user, address.port, None))
    return [*before, *hops]


def plan_connection(profile: ClusterProfile, config: paramiko.SSHConfig | None = None) -> ConnectionPlan:
    """Combine a profile with ~/.ssh/config (the profile wins) into the hops to open."""
    config = config if config is not None else load_ssh_config()
    target = _hop(config, profile.host, profile.user, profile.port, profile.identity_file)
    notes: list[str] = []
    jumps = _route(config, [_Jump(spec) for spec in profile.jump] or _proxy_jumps(config, profile.host),
                   (profile.host,))
    for alias in dict.fromkeys([*(jump.alias for jump in jumps), profile.host]):
        notes += _match_exec_notes(config, alias)
    return ConnectionPlan(target=target, jumps=tuple(jumps), notes=tuple(notes))


def _match_exec_notes(config: paramiko.SSHConfig, alias: str) -> list[str]:
    """One note per `Match exec` line whose other criteria `alias` meets: OpenSSH would run its command to decide
    (so its settings may apply), EnvDesk never does (so they do not). The command is not repeated: like a
    ProxyCommand, it may hold a secret."""
    places = getattr(config, "match_exec", {})
    found = _lookup(config, alias) if places else {}
    return [f"Your SSH configuration has a 'Match exec' line ({where}) that may apply to {alias}: EnvDesk never runs "
            f"the command it names, so the settings under it are not used for {alias}. If {alias} needs them, "
            f"write them under a 'Host {alias}' block." for probe, where in places.items() if probe in found]


def _offered_jumps(config: paramiko.SSHConfig, alias: str) -> list[str]:
    """The jump hosts a profile suggested for `alias` starts with: its ProxyJump, or the jump its ProxyCommand
    writes out. None where that ssh gives the jump options (a key, a port): a profile's jump hosts cannot hold them,
    and without any the connection reads the configuration again, options and all. None for a ProxyCommand EnvDesk
    cannot follow either: offered all the same, its connection refuses it, saying what to write instead."""
    try:
        jumps = _proxy_jumps(config, alias)
    except _UnfollowedProxyCommand:
        return []
    return [] if any(jump.settings for jump in jumps) else [jump.spec for jump in jumps]


def profiles_from_ssh_config(config: paramiko.SSHConfig | None = None) -> list[ClusterProfile]:
    """One suggested profile per concrete Host alias, for 'import from ~/.ssh/config'."""
    config = config if config is not None else load_ssh_config()
    profiles = []
    for alias in host_aliases(config):
        try:
            name = validate.cluster_name(alias)
        except Exception:
            continue
        found = _lookup(config, alias)
        try:
            keys = _hop(config, alias, None, None, None).identity_files  # its tokens expanded
            profiles.append(ClusterProfile(
                name=name,
                host=alias,
                port=validate.port(found["port"]) if "port" in found else None,
                user=found.get("user"),
                identity_file=keys[0] if keys else None,
                jump=_offered_jumps(config, alias),
            ))
        except EnvDeskError as exc:  # one unusable Host block leaves the others to pick from
            log.info("not offering Host %s of the SSH configuration: %s", alias, exc)
    return profiles
