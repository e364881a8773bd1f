"""pip's settings for uv: uv reads no pip.conf nor PIP_ variable, so an install with uv is run through
the agent's part pip_to_uv.py, which reads them where uv runs (after the modules that may set them)."""
from __future__ import annotations

import functools
import os
from typing import Any, Mapping, Sequence

PART = "pip_to_uv.py"


@functools.cache
def _part() -> dict[str, Any]:
    """The part's functions, for a look at this computer's settings from EnvDesk's own process."""
    from .agent_client import agent_part
    namespace: dict[str, Any] = {"__name__": "envdesk_pip_to_uv"}
    exec(compile(agent_part(PART), PART, "exec"), namespace)  # our own shipped file
    return namespace


def with_pip_settings(python: str, uv_argv: Sequence[str]) -> tuple[str, ...]:
    """`uv_argv` (uv, 'pip', a subcommand, its arguments) as a command that runs it with the pip settings
    found where it runs, read by the environment's `python` (whose folder may hold a pip.conf of its own)."""
    from .agent_client import agent_part
    return (python, "-I", "-S", "-c", agent_part(PART), *uv_argv)


def uv_follows(setting: str) -> bool:
    """Whether uv, run with pip's settings (with_pip_settings), follows pip's `setting` ('index-url', 'pre' ...):
    as the agent's part that translates them says."""
    part = _part()
    return setting in part["URL_AND_FILE_SETTINGS"] or setting in (*part["FLAG_SETTINGS"], *part["CHOICE_SETTINGS"])


def has_settings(environ: Mapping[str, str], python: str) -> bool:
    """Whether pip would find any setting on this computer for the environment whose Python is `python`: a
    PIP_ variable or a pip.conf (when there is none, uv is run as it is, sparing a Python's start)."""
    if any(name.startswith("PIP_") and name != "PIP_CONFIG_FILE" for name in environ):
        return True
    prefix = os.path.dirname(os.path.dirname(python))
    return any(os.path.isfile(path) for path in _part()["config_files"](environ, prefix))
