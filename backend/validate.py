"""Checks on what users type, so that nothing odd ever reaches a shell or a file."""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidInput

LOCAL_TARGET = "local"

_CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,252}|\[?[0-9A-Fa-f:.]+\]?")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")


def cluster_name(value: str) -> str:
    """A profile name: letters, digits, dot, dash, underscore; not the reserved 'local'."""
    if not _CLUSTER_NAME.fullmatch(value or ""):
        raise InvalidInput(
            f"{value!r} cannot be a cluster name.",
            "Use letters, digits, '.', '-' or '_' (up to 64), starting with a letter or digit.",
        )
    if value.lower() == LOCAL_TARGET:
        raise InvalidInput("'local' is the name of this computer in EnvDesk.", "Pick another name.")
    return value


def host(value: str) -> str:
    """A host name or IP address, never something that looks like an option."""
    if not _HOST.fullmatch(value or ""):
        raise InvalidInput(f"{value!r} is not a host name EnvDesk can connect to.",
                           "Use a name like cluster.example.org or an IP address.")
    return value.strip("[]")


def user(value: str) -> str:
    """A login name as clusters issue them."""
    if not _USER.fullmatch(value or ""):
        raise InvalidInput(f"{value!r} is not a valid username.",
                           "Use the login name your cluster gave you, e.g. jsmith.")
    return value


def port(value: int | str) -> int:
    """A TCP port number."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if not 1 <= number <= 65535:
        raise InvalidInput(f"{value!r} is not a port number.", "Use a number from 1 to 65535 (SSH uses 22).")
    return number


def plain_text(value: str, what: str) -> str:
    """A one-line value that goes into commands or files: no newlines or NUL bytes."""
    if not isinstance(value, str) or not value or any(c in value for c in "\n\r\0"):
        raise InvalidInput(f"The {what} {value!r} is empty or spans several lines.",
                           f"Give the {what} on one line.")
    return value


def remote_folder(value: str) -> str:
    """A folder on the cluster: absolute, or under the home folder with '~/'."""
    plain_text(value, "folder")
    if "$" in value or "`" in value:
        raise InvalidInput(f"The folder {value!r} contains '$' or '`'.",
                           "Write the folder out in full, e.g. /scratch/jsmith/envs.")
    if not (value.startswith("/") or value == "~" or value.startswith("~/")):
        raise InvalidInput(f"The folder {value!r} must start with '/' or '~/'.",
                           "For example ~/venvs or /project/def-lab/me/envs.")
    if any(part == ".." for part in value.split("/")):
        raise InvalidInput(f"The folder {value!r} contains '..'.", "Give the folder without '..'.")
    return value.rstrip("/") or "/"


def local_folder(value: str) -> str:
    """A folder on this computer (any OS): absolute or under '~', no '..', '$' or '`'."""
    import ntpath
    plain_text(value, "folder")
    if "$" in value or "`" in value:
        raise InvalidInput(f"The folder {value!r} contains '$' or '`'.", "Write the folder out in full.")
    if not (value.startswith(("/", "~")) or ntpath.isabs(value)):
        raise InvalidInput(f"The folder {value!r} must be a full path (or start with '~').",
                           "For example ~/venvs or C:\\Users\\me\\envs.")
    if any(part == ".." for part in value.replace("\\", "/").split("/")):
        raise InvalidInput(f"The folder {value!r} contains '..'.", "Give the folder without '..'.")
    return value


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
        bracketed, tail = where[1:closing], where[closing + 1:]
        where = bracketed
        if tail.startswith(":"):
            number = port(tail[1:])
    elif where.count(":") == 1:
        where, _, digits = where.partition(":")
        number = port(digits)
    return HopAddress(host=host(where), port=number, user=user(login) if login else None)


_ENV_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
_MODULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*(/[A-Za-z0-9._+-]+)*")
_PACKAGE_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")


def env_name(value: str) -> str:
    """An environment's folder name: one path component, no shell or path tricks."""
    if not _ENV_NAME.fullmatch(value or "") or value in (".", "..") or value.endswith(".envdesk-lock"):
        raise InvalidInput(
            f"{value!r} cannot be an environment name.",
            "Use letters, digits, '.', '-', '_' or '+' (up to 100), starting with a letter or digit.")
    return value


def module_name(value: str) -> str:
    """A module as `module load` takes it, e.g. python/3.11.5 or GCC/12.3.0."""
    if not _MODULE.fullmatch(value or "") or ".." in value.split("/"):
        raise InvalidInput(f"{value!r} is not a module name.", "For example python/3.11.5 or StdEnv/2023.")
    return value


def package_name(value: str) -> str:
    """A distribution name as PyPI and conda spell them."""
    if not _PACKAGE_NAME.fullmatch(value or ""):
        raise InvalidInput(f"{value!r} is not a package name.", "For example numpy or scikit-learn.")
    return value


def package_spec(value: str) -> str:
    """A PEP 508 requirement such as 'numpy>=1.26' or 'torch==2.3.1'; URLs and markers allowed, nothing else."""
    from packaging.requirements import InvalidRequirement, Requirement

    plain_text(value, "package")
    text = value.strip()
    if text.startswith("-"):
        raise InvalidInput(f"{value!r} looks like an option, not a package.",
                           "Give a package such as numpy or numpy>=1.26.")
    try:
        Requirement(text)
    except InvalidRequirement as exc:
        raise InvalidInput(f"{value!r} is not a valid package requirement.",
                           "Write it like numpy, numpy==1.26.4 or 'numpy>=1.26,<2'.") from exc
    return text


_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!*-]{0,63}")


def version(value: str) -> str:
    """A package or Python version such as 1.26.4, 2.0rc1 or 3.11."""
    if not _VERSION.fullmatch(value or ""):
        raise InvalidInput(f"{value!r} is not a version.", "For example 1.26.4 or 3.11.")
    return value


_CHANNEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:+-]{0,199}")


def conda_channel(value: str) -> str:
    """A conda channel name or URL, e.g. conda-forge or https://conda.anaconda.org/bioconda."""
    if not _CHANNEL.fullmatch(value or "") or value.startswith("-"):
        raise InvalidInput(f"{value!r} is not a conda channel.", "For example conda-forge.")
    return value


def canonical_name(name: str) -> str:
    """A distribution name normalized as PEP 503 says (Tiny_Beta, tiny.beta and tiny-beta are one)."""
    return re.sub(r"[-_.]+", "-", name).lower()
