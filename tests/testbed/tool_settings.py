"""Known pip and uv settings for the test bed and the tests: none of the machine's.

A machine's pip and uv settings (PIP_ and UV_ variables; /etc/pip.conf, /etc/xdg/pip/pip.conf, ~/.pip/pip.conf,
~/.config/pip/pip.conf; uv.toml in the XDG folders) would reach every pip and uv the tests start, here and as the
clusters' users: a contributor's index-url, require-virtualenv or constraint file would break the bed, and this
machine's find-links could make a test pass here that fails on CI's clean machine. So the test process runs with
none (PIP_CONFIG_FILE=os.devnull, which pip documents as "load no configuration file", and UV_NO_CONFIG=1), as
does every command the bed runs as a cluster's user. Tests of EnvDesk honouring pip settings write their own.
The one download from a real index (jupyter_fixtures) runs with the machine's settings: they say where the
index is.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, MutableMapping

PREFIXES = ("PIP_", "UV_")
"""The variables pip and uv read as settings."""
NO_CONFIG_FILES = {"PIP_CONFIG_FILE": os.devnull, "UV_NO_CONFIG": "1"}
"""What makes pip and uv read no configuration file."""
_SAVED = "ENVDESK_TEST_MACHINE_TOOL_SETTINGS"
"""Where the machine's own PIP_/UV_ variables are kept (JSON), so that pytest-xdist's workers know them too."""


def without_machine_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` without its PIP_ and UV_ variables, and with pip's and uv's configuration files turned off."""
    return {**{k: v for k, v in environ.items() if not k.startswith(PREFIXES)}, **NO_CONFIG_FILES}


def isolate(environ: MutableMapping[str, str]) -> None:
    """Turn the machine's pip and uv settings off in `environ` (os.environ: for the whole test process and what it
    starts), keeping its own PIP_/UV_ variables aside for machine_environ."""
    if _SAVED not in environ:
        environ[_SAVED] = json.dumps({k: v for k, v in environ.items() if k.startswith(PREFIXES)})
    for name in [name for name in environ if name.startswith(PREFIXES)]:
        del environ[name]
    environ.update(NO_CONFIG_FILES)


def machine_environ() -> dict[str, str]:
    """This process's environment with the machine's own pip and uv settings back: for a download from a real
    index, which those settings say how to reach."""
    if _SAVED not in os.environ:  # not isolated: the environment is the machine's
        return dict(os.environ)
    kept = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
    return {**kept, **json.loads(os.environ.get(_SAVED, "{}"))}
