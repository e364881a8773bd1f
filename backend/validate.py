"""Checks on what users type, so that nothing odd ever reaches a shell or a file."""
from __future__ import annotations

import ipaddress
import ntpath
import os
import re
from dataclasses import dataclass

from .errors import InvalidInput

LOCAL_TARGET = "local"
LOCAL_LABEL = "This computer"  # how LOCAL_TARGET is shown

_SHOWN = 60
# Characters that make one line of text look or act like something else: line breaks of any kind,
# NUL and the other control characters, lone surrogates (not text at all), and the bidirectional
# overrides that show text in another order than it is read ("Trojan Source").
_BIDI = frozenset("\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_LINE_BREAKS = frozenset("\u2028\u2029")


def shown(value: object) -> str:
    """A value as an error message quotes it: in full when short, else its start and its length."""
    text = repr(value)
    if len(text) <= _SHOWN:
        return text
    return f"{text[:_SHOWN]}... ({len(value) if isinstance(value, str) else len(text)} characters)"


# The patterns are kept as text and compiled on first use (re keeps them compiled): a command compiles only
# those it checks with, not all of them at import.
_CLUSTER_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
_HOST_NAME = r"[A-Za-z0-9_][A-Za-z0-9._-]{0,252}"
_USER = r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}"


def cluster_name(value: str) -> str:
    """A profile name: letters, digits, dot, dash, underscore; not the reserved 'local'."""
    if not re.fullmatch(_CLUSTER_NAME, value or ""):
        raise InvalidInput(
            f"{shown(value)} cannot be a cluster name.",
            "Use letters, digits, '.', '-' or '_' (up to 64), starting with a letter or digit.",
        )
    if value.lower() == LOCAL_TARGET:
        raise InvalidInput("'local' is the name of this computer in EnvDesk.", "Pick another name.")
    return value


def host(value: str) -> str:
    """A host name or IP address, never something that looks like an option."""
    text = value or ""
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    if bare == text and re.fullmatch(_HOST_NAME, text):
        return text
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        address = None
    if address is None or (bare != text and address.version != 6):
        raise InvalidInput(f"{shown(value)} is not a host name EnvDesk can connect to.",
                           "Use a name like cluster.example.org or an IP address.")
    return bare


def user(value: str) -> str:
    """A login name as clusters issue them."""
    if not re.fullmatch(_USER, value or ""):
        raise InvalidInput(f"{shown(value)} is not a valid username.",
                           "Use the login name your cluster gave you, e.g. jsmith.")
    return value


def port(value: int | str) -> int:
    """A TCP port number."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if not 1 <= number <= 65535:
        raise InvalidInput(f"{shown(value)} is not a port number.", "Use a number from 1 to 65535 (SSH uses 22).")
    return number


def plain_text(value: str, what: str) -> str:
    """A one-line value that goes into commands or files: no line breaks, NUL or other control
    characters, lone surrogates or bidirectional overrides."""
    if not isinstance(value, str) or not value or any(c in value for c in "\n\r\0"):
        raise InvalidInput(f"The {what} {shown(value)} is empty or spans several lines.",
                           f"Give the {what} on one line.")
    import unicodedata  # here, as the window's start checks no text

    odd = next((c for c in value if c in _BIDI or c in _LINE_BREAKS
                or unicodedata.category(c) in ("Cc", "Cs")), None)
    if odd is not None:
        raise InvalidInput(f"The {what} {shown(value)} contains the invisible or control character "
                           f"U+{ord(odd):04X}.", f"Type the {what} again as plain text.")
    return value


def remote_folder(value: str) -> str:
    """A folder on the cluster: absolute, or under the home folder with '~/'."""
    plain_text(value, "folder")
    if "$" in value or "`" in value:
        raise InvalidInput(f"The folder {shown(value)} contains '$' or '`'.",
                           "Write the folder out in full, e.g. /scratch/jsmith/envs.")
    if not (value.startswith("/") or value == "~" or value.startswith("~/")):
        raise InvalidInput(f"The folder {shown(value)} must start with '/' or '~/'.",
                           "For example ~/venvs or /project/def-lab/me/envs.")
    if any(part == ".." for part in value.split("/")):
        raise InvalidInput(f"The folder {shown(value)} contains '..'.", "Give the folder without '..'.")
    return value.rstrip("/") or "/"


def local_folder(value: str) -> str:
    """A folder on this computer (any OS): absolute or under '~', no '..', '$' or '`'."""
    plain_text(value, "folder")
    if "$" in value or "`" in value:
        raise InvalidInput(f"The folder {shown(value)} contains '$' or '`'.", "Write the folder out in full.")
    if not _absolute_here(value):
        raise InvalidInput(f"The folder {shown(value)} must be a full path (or start with '~/').",
                           "For example ~/venvs or C:\\Users\\me\\envs.")
    if any(part == ".." for part in value.replace("\\", "/").split("/")):
        raise InvalidInput(f"The folder {shown(value)} contains '..'.", "Give the folder without '..'.")
    return value


def _absolute_here(folder: str) -> bool:
    """Whether a folder is absolute on this computer: '~' and '~/...' count; '~user', and a drive-less
    '\\x' on Windows or 'C:\\x' elsewhere (relative there), do not."""
    if folder == "~" or folder.startswith(("~/", "~" + os.sep)):
        return True
    if os.name == "nt":
        return ntpath.isabs(folder) and bool(ntpath.splitdrive(folder)[0])
    return folder.startswith("/")


@dataclass(frozen=True)
class HopAddress:
    """One SSH hop written as [USER@]HOST[:PORT]."""

    host: str
    port: int | None = None
    user: str | None = None

    def __str__(self) -> str:
        text = f"{self.user}@{self.host}" if self.user else self.host
        return f"{text}:{self.port}" if self.port else text


def hop_address(value: str) -> HopAddress:
    """Parse a jump host the way ssh's -J and ProxyJump write it."""
    plain_text(value, "jump host")
    text = value.strip()
    if text.startswith("ssh://"):
        text = text[len("ssh://"):]
    login, _, rest = text.rpartition("@")
    where = rest
    number: int | None = None
    if where.startswith("["):
        closing = where.find("]")
        tail = where[closing + 1:]
        if closing < 0 or (tail and not tail.startswith(":")):
            raise InvalidInput(f"The jump host {shown(value)} is not written [ADDRESS] or [ADDRESS]:PORT.",
                               "For example user@login.example.org:22 or [2001:db8::1]:22.")
        where = where[1:closing]
        if tail:
            number = port(tail[1:])
    elif where.count(":") == 1:
        where, _, digits = where.partition(":")
        number = port(digits)
    return HopAddress(host=host(where), port=number, user=user(login) if login else None)


_ENV_NAME = r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}"
_MODULE = r"[A-Za-z0-9][A-Za-z0-9._+-]*(/[A-Za-z0-9._+-]+)*"
_PACKAGE_NAME = r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?"


def env_name(value: str) -> str:
    """An environment's folder name: one path component, no shell or path tricks."""
    if not re.fullmatch(_ENV_NAME, value or "") or value in (".", ".."):
        raise InvalidInput(
            f"{shown(value)} cannot be an environment name.",
            "Use ASCII letters (a-z, A-Z, no accents), digits, '.', '-', '_' or '+' (up to 100), starting with a "
            "letter or digit.")
    if ".envdesk-" in value:  # EnvDesk's own folders beside an environment: its lock, a delete's, a copy's
        raise InvalidInput(f"{shown(value)} cannot be an environment name: names with '.envdesk-' are EnvDesk's "
                           "own (a lock, or a delete that stopped).", "Choose another name.")
    return value


def module_name(value: str) -> str:
    """A module as `module load` takes it, e.g. python/3.11.5 or GCC/12.3.0."""
    if not re.fullmatch(_MODULE, value or "") or {".", ".."} & set(value.split("/")):
        raise InvalidInput(f"{shown(value)} is not a module name.", "For example python/3.11.5 or StdEnv/2023.")
    return value


def package_name(value: str) -> str:
    """A distribution name as PyPI and conda spell them."""
    if not re.fullmatch(_PACKAGE_NAME, value or ""):
        raise InvalidInput(f"{shown(value)} is not a package name.", "For example numpy or scikit-learn.")
    return value


def package_spec(value: str) -> str:
    """A PEP 508 requirement such as 'numpy>=1.26' or 'torch==2.3.1'; URLs and markers allowed, nothing else.

    packaging judges it, unless it is plainly valid (see plainly_valid_requirement): loading packaging's parser
    takes longer (~15 ms) than reading a whole file of pins."""
    plain_text(value, "package")
    text = value.strip()
    if text.startswith("-"):
        raise InvalidInput(f"{shown(value)} looks like an option, not a package.",
                           "Give a package such as numpy or numpy>=1.26.")
    if plainly_valid_requirement(text):
        return text
    option = re.search(r"\s(--config-settings?(?=[\s=])|--global-option(?=[\s=])|-C(?=\S|\s))", text)
    if option:  # pip's per-requirement options: a line pip reads, but not a requirement
        raise InvalidInput(f"{shown(value)} carries {option.group(1)}, an option pip applies to building that "
                           "one package, which EnvDesk does not pass on.",
                           "Take the option out (the package is then built as usual), or install it by hand with "
                           "pip.")
    from packaging.requirements import InvalidRequirement, Requirement
    try:
        Requirement(text)
    except InvalidRequirement as exc:
        raise InvalidInput(f"{shown(value)} is not a valid package requirement.",
                           "Write it like numpy, numpy==1.26.4 or 'numpy>=1.26,<2'.") from exc
    return text


# One comparison with a version as PEP 440 normalizes it (what pip freeze and uv write):
# OP [N!]N(.N)*[{a|b|rc}N][.postN][.devN][+LOCAL]
_PLAIN_COMPARISON = (r"(?P<op>==|!=|<=|>=|~=|<|>)[ \t]*(?:[0-9]+!)?(?P<release>[0-9]+(?:\.[0-9]+)*)"
                     r"(?:(?:a|b|rc)[0-9]+)?(?:\.post[0-9]+)?(?:\.dev[0-9]+)?(?P<local>\+[a-z0-9]+(?:\.[a-z0-9]+)*)?")


def plainly_valid_requirement(text: str) -> bool:
    """Whether `text` is a requirement of the plainest forms, which PEP 508 and packaging always accept: a
    distribution name alone, or followed by comparisons with normalized versions, separated by commas ('numpy',
    'torch==2.3.1+cu121', 'numpy>=1.26, <2'); a local version only after == or !=, two numbers or more after ~=.
    False says nothing: anything else (extras, markers, URLs, wildcards, other spellings) is packaging's to judge."""
    return plain_requirement_name(text) is not None


def plain_requirement_name(text: str) -> str | None:
    """The distribution name of a plainly valid requirement (see plainly_valid_requirement) as written; else None."""
    name = re.match(_PACKAGE_NAME, text)
    if name is None:
        return None
    rest = text[name.end():]
    for clause in rest.split(",") if rest else ():
        comparison = re.fullmatch(_PLAIN_COMPARISON, clause.strip(" \t"))
        if comparison is None or (comparison["local"] and comparison["op"] not in ("==", "!=")) \
                or (comparison["op"] == "~=" and "." not in comparison["release"]):
            return None
    return name.group()


_VERSION = r"[A-Za-z0-9][A-Za-z0-9._+!*-]{0,63}"


def version(value: str) -> str:
    """A package or Python version such as 1.26.4, 2.0rc1 or 3.11."""
    if not re.fullmatch(_VERSION, value or ""):
        raise InvalidInput(f"{shown(value)} is not a version.", "For example 1.26.4 or 3.11.")
    return value


_CHANNEL = r"[A-Za-z0-9][A-Za-z0-9._/:+-]{0,199}"


def conda_channel(value: str) -> str:
    """A conda channel name or URL, e.g. conda-forge or https://conda.anaconda.org/bioconda."""
    if not re.fullmatch(_CHANNEL, value or "") or value.startswith("-") or ".." in value.split("/"):
        raise InvalidInput(f"{shown(value)} is not a conda channel.", "For example conda-forge.")
    return value


CONDA_SOLVERS = ("auto", "libmamba", "classic", "mamba")
"""How a cluster's conda commands solve: "auto" picks mamba where it is installed, else conda's libmamba solver
where conda has it and nobody configured another, else conda as it is configured (see Capabilities.conda_tool)."""


def conda_solver(value: str) -> str:
    """One of CONDA_SOLVERS, as a cluster profile names it."""
    if value not in CONDA_SOLVERS:
        raise InvalidInput(f"{shown(value)} is not a conda solver EnvDesk knows.",
                           f"Use one of: {', '.join(CONDA_SOLVERS)}.")
    return value


_CONDA_TOKEN = r"(^|/)t/[^/]+(/|$)"


def conda_channel_setting(value: str) -> str:
    """A channel for a cluster's conda commands: a conda_channel holding no credential (conda takes channels
    as command arguments, which every user of a login node can read; a token goes in ~/.condarc there)."""
    conda_channel(value)
    if "://" in value and re.search(_CONDA_TOKEN, value.split("://", 1)[1]):
        raise InvalidInput("A conda channel holding a token (/t/...) cannot be given to conda without showing it to "
                           "other users of the cluster.",
                           "Keep that channel in ~/.condarc on the cluster instead, where only you can read it, and "
                           "leave it out of EnvDesk's channels.")
    return value


def canonical_name(name: str) -> str:
    """A distribution name normalized as PEP 503 says (Tiny_Beta, tiny.beta and tiny-beta are one)."""
    return re.sub(r"[-_.]+", "-", name).lower()


_SLURM_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
_SLURM_TIME = (r"(?:(?P<days>\d{1,3})-)?(?P<hours>\d{1,2}):(?P<minutes>[0-5]\d):(?P<seconds>[0-5]\d)"
               r"|(?P<only_minutes>\d{1,6})")
_SLURM_MEMORY = r"[1-9]\d{0,6}[KMGT]?"


def slurm_partition(value: str) -> str:
    """A Slurm partition's name as sinfo lists it, e.g. debug or cpu_short."""
    if not isinstance(value, str) or not re.fullmatch(_SLURM_NAME, value):
        raise InvalidInput(f"{shown(value)} is not a Slurm partition name.",
                           "Give it as sinfo lists it, e.g. debug or cpubase_bycore_b1.")
    return value


def slurm_time(value: str) -> str:
    """A job time limit Slurm takes: HH:MM:SS, D-HH:MM:SS, or whole minutes."""
    match = re.fullmatch(_SLURM_TIME, value) if isinstance(value, str) else None
    if match is None or value.strip("0:-") == "":
        raise InvalidInput(f"{shown(value)} is not a time limit.",
                           "Write it as HH:MM:SS (e.g. 01:00:00), D-HH:MM:SS, or a number of minutes.")
    return value


def slurm_cpus(value: int | str) -> int:
    """How many CPUs a job asks for (1 to 4096)."""
    try:
        number = int(value) if not isinstance(value, bool) and str(value).strip().isdigit() else 0
    except (TypeError, ValueError):
        number = 0
    if not 1 <= number <= 4096:
        raise InvalidInput(f"{shown(value)} is not a number of CPUs.", "Use a whole number from 1 to 4096.")
    return number


def slurm_memory(value: str) -> str:
    """A job's memory as --mem takes it: a number with an optional unit K, M, G or T (e.g. 4G)."""
    text = str(value).strip().upper() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not re.fullmatch(_SLURM_MEMORY, text):
        raise InvalidInput(f"{shown(value)} is not an amount of memory.", "For example 4G or 8000M.")
    return text
