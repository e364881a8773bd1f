"""Credentials in installer settings: kept out of every command line, where other users would see them.

Any user of a login node can read every process's arguments (`ps`), so an index URL with
`user:token@` in a cluster's pip arguments must not be one. pip and uv read the same settings from
environment variables, which only the user (and root) can read: a setting that holds a credential
goes there instead, with every other value of the same option (pip and uv give a command-line value
precedence over the environment's, so the two must not be split). A requirement with a credential in
its URL goes in a requirements file read from standard input (see recipes.Installer).
"""
from __future__ import annotations

from typing import Sequence

from .errors import InvalidInput
from .spec import redact

# Options whose value is a URL, by every name pip accepts for them (short, long), as pip's name.
_URL_OPTIONS = {"-i": "index-url", "--index-url": "index-url", "--extra-index-url": "extra-index-url",
                "-f": "find-links", "--find-links": "find-links"}
# The variables uv reads for them (uv --help: [env: ...]), and how several values are joined there.
_UV_VARIABLES = {"index-url": ("UV_INDEX_URL", " "), "extra-index-url": ("UV_EXTRA_INDEX_URL", " "),
                 "find-links": ("UV_FIND_LINKS", ",")}


# The options that may carry a credential, as their installer reads them from a variable (any other is refused:
# a misspelt name would become a variable the installer ignores, and the index with it).
_SECRET_OPTIONS = {"pip": {*_UV_VARIABLES, "proxy"}, "uv": set(_UV_VARIABLES)}


def has_credentials(text: str) -> bool:
    """Whether `text` holds a user:password@ or a token in a URL (what spec.redact takes out)."""
    return redact(text) != text


def _pip_variable(option: str) -> tuple[str, str]:
    """pip reads every long option from PIP_<NAME> (dashes as underscores); lists are space-separated."""
    return "PIP_" + option.upper().replace("-", "_"), " "


# pip install's long options (pip 23-25, `pip install --help`): a start of a name is pip's only where it is the
# start of one of them alone (optparse); '--pro' is --progress-bar or --proxy, which pip refuses as ambiguous
_PIP_LONG_OPTIONS = (
    "--abi", "--break-system-packages", "--cache-dir", "--cert", "--check-build-dependencies", "--client-cert",
    "--compile", "--config-settings", "--constraint", "--debug", "--disable-pip-version-check", "--dry-run",
    "--editable", "--exists-action", "--extra-index-url", "--find-links", "--force-reinstall", "--global-option",
    "--hash", "--help", "--ignore-installed", "--ignore-requires-python", "--implementation", "--index-url",
    "--isolated", "--keyring-provider", "--log", "--no-binary", "--no-build-isolation", "--no-cache-dir",
    "--no-clean", "--no-color", "--no-compile", "--no-deps", "--no-index", "--no-input", "--only-binary",
    "--platform", "--pre", "--prefer-binary", "--prefix", "--progress-bar", "--proxy", "--python",
    "--python-version", "--quiet", "--report", "--require-hashes", "--require-virtualenv", "--requirement",
    "--retries", "--root", "--root-user-action", "--src", "--target", "--timeout", "--trusted-host", "--upgrade",
    "--upgrade-strategy", "--use-deprecated", "--use-feature", "--user", "--verbose", "--version")


def _long_name(name: str) -> str:
    """pip's name for a long option as written: optparse takes any start of a name that is the start of no other
    ('--extra-index' is --extra-index-url), so one of those holding a credential goes to the variable pip reads for
    the whole name; an ambiguous one stays as written (and, holding a credential, is refused)."""
    if name in _URL_OPTIONS:
        return _URL_OPTIONS[name]
    whole = [full for full in _PIP_LONG_OPTIONS if full.startswith(name)]
    return whole[0][2:] if name in whole or len(whole) == 1 else name[2:]


def _options(pip_args: Sequence[str]) -> list[tuple[str | None, str | None, int, int]]:
    """(pip's option name or the option as written, its value, first index, end index) for each argument;
    a lone word that is not an option is (None, word, ...). A short option's value may be joined to it
    (pip's '-ihttps://...')."""
    found: list[tuple[str | None, str | None, int, int]] = []
    position = 0
    while position < len(pip_args):
        arg = pip_args[position]
        name, equals, value = arg.partition("=")
        if arg.startswith("--") and equals:
            found.append((_long_name(name), value, position, position + 1))
            position += 1
        elif (arg in _URL_OPTIONS or (arg.startswith("--") and _long_name(arg) in _SECRET_OPTIONS["pip"])) \
                and position + 1 < len(pip_args):
            found.append((_long_name(arg), pip_args[position + 1], position, position + 2))
            position += 2
        elif arg[:2] in _URL_OPTIONS and len(arg) > 2:
            found.append((_URL_OPTIONS[arg[:2]], arg[2:], position, position + 1))
            position += 1
        elif arg.startswith("-"):
            found.append((arg, None, position, position + 1))
            position += 1
        else:
            found.append((None, arg, position, position + 1))
            position += 1
    return found


def split_settings(pip_args: Sequence[str], installer: str) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """`pip_args` as (the arguments safe to show, the environment variables that carry the others) for
    `installer` ("pip" or "uv"); an argument with a credential that cannot go there is refused plainly."""
    found = _options(pip_args)
    secret = {name for name, value, _, _ in found if value is not None and has_credentials(value)}
    if not secret:
        return tuple(pip_args), ()
    if None in secret or secret - _SECRET_OPTIONS[installer]:
        raise InvalidInput(f"A pip argument holding a credential ({redact(' '.join(pip_args))}) cannot be given "
                           f"to {installer} without showing it to other users of the machine.",
                           "Give the credential to the installer another way (a ~/.netrc file on the target, "
                           "or a keyring), and leave it out of the pip arguments.")
    kept: list[str] = []
    values: dict[str, list[str]] = {}
    for name, value, start, end in found:
        if name is not None and name in secret and value is not None:
            values.setdefault(name, []).append(value)
        else:
            kept.extend(pip_args[start:end])
    env = []
    for name, listed in values.items():
        variable, separator = _UV_VARIABLES[name] if installer == "uv" else _pip_variable(name)
        if name not in ("extra-index-url", "find-links"):  # options of one value: the last one given counts
            listed = listed[-1:]
        env.append((variable, separator.join(listed)))
    return tuple(kept), tuple(env)
