"""Talking to the agent: put its script together, send it with its settings, read its one-line JSON answer.

The agent lives in ``backend/agent/`` as plain script parts, not importable modules (see read.py there).
``agent_script`` puts it together, in this order:

1. ``protocol_header()``: one ``NAME = value`` line per constant of ``protocol.py``, shared with this side;
2. ``read.py``, the inventory (all a listing or ``env show`` needs);
3. ``jupyter.py`` and ``write.py``, only for a write action (so a listing ships none of the write code);
4. the two lines that run ``main(sys.argv)``.

A call runs it with ``sys.argv`` set to the settings (on stdin, never as an argument: see ``run_agent``).
A target (a cluster, or this computer) keeps each agent it was sent under its sha256, so a call usually sends
only a bootstrap of about a kilobyte that checks and runs that copy, from the code compiled from it last time;
``agent_store`` decides what is sent (the bootstrap, the agent with the store part ``store.py`` that keeps it,
or, for a runner that notes nothing, the agent as is).
"""
from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any, Sequence

from . import agent_here, agent_session, agent_store, protocol
from .errors import Busy, CommandFailed, EnvDeskError, InvalidInput, NotFound
from .protocol import (
    ANSWER_MARKER,
    CODE_BUSY,
    CODE_DISK_FULL,
    CODE_EXISTS,
    CODE_INCOMPLETE,
    CODE_INVALID,
    CODE_MISSING,
    CODE_NOT_WRITABLE,
    CODE_OUTSIDE,
    CODE_READ_ONLY,
)
from .runner import CancelToken, CommandResult, Runner

AGENT_MARKER = ANSWER_MARKER
AGENT_TIMEOUT = 120.0
ACTION_TIMEOUT = 600.0  # deleting a large environment on a slow shared filesystem takes a while

AGENT_FOLDER = "agent"      # backend/agent/, shipped as package data
READ_PART = "read.py"
WRITE_PART = "write.py"
JUPYTER_PART = "jupyter.py"  # the user's Jupyter kernels: with the write part (a delete removes its kernels)
STORE_PART = "store.py"     # stores the agent on a cluster, then runs it (see agent_store)
RUN_MAIN = 'if __name__ == "__main__":\n    sys.exit(main(sys.argv))\n'


def protocol_constants() -> dict[str, Any]:
    """The public upper-case names of protocol.py with their values, in the order they are written there."""
    return {name: value for name, value in vars(protocol).items() if name.isupper() and not name.startswith("_")}


def _literal(name: str, value: Any) -> str:
    """Python 3.6 source for a plain constant (ASCII only); TypeError for anything that is not one."""
    if isinstance(value, tuple):
        return "(" + "".join(_literal(name, item) + ", " for item in value) + ")"
    if isinstance(value, float) and not math.isfinite(value):
        raise TypeError(f"protocol.{name} is not a finite number")
    if value is None or isinstance(value, (str, int, float, bool)):
        return ascii(value)
    raise TypeError(f"protocol.{name} is a {type(value).__name__}; the agent can only be sent plain constants")


def protocol_header() -> str:
    """The agent's copy of the protocol constants: one ``NAME = value`` line for each."""
    lines = [f"{name} = {_literal(name, value)}\n" for name, value in protocol_constants().items()]
    return "# Protocol constants, generated from envdesk.backend.protocol\n" + "".join(lines)


@functools.cache
def agent_part(name: str) -> str:
    """The text of one part of the agent (``backend/agent/<name>``), as shipped inside the package: read from the
    package's folder where it is one (an install, a source tree), else through importlib.resources (a zip), which
    costs a command line some 10 ms to load."""
    try:
        return Path(__file__).with_name(AGENT_FOLDER).joinpath(name).read_text(encoding="utf-8")
    except OSError:
        from importlib import resources
        return resources.files("envdesk.backend").joinpath(AGENT_FOLDER).joinpath(name).read_text(encoding="utf-8")


@functools.cache
def agent_script(write: bool = False) -> str:
    """The agent as one piece of source for ``python3 -``: the write part is in only when `write` is true."""
    written = [agent_part(JUPYTER_PART), agent_part(WRITE_PART)] if write else []
    parts = [protocol_header(), agent_part(READ_PART), *written, RUN_MAIN]
    return "\n\n".join(part.rstrip("\n") + "\n" for part in parts)


def run_agent(runner: Runner, config: dict[str, Any], cancel: CancelToken | None = None,
              timeout: float = AGENT_TIMEOUT) -> dict[str, Any]:
    """Run the agent once on the target and return its parsed answer (with its write part for an action).

    A cluster that keeps this agent gets only a bootstrap that runs its copy (see agent_store); a listing
    goes to the runner's serving agent where it keeps one (see agent_session); this computer runs its short
    write actions in this process (see agent_here).
    """
    agent = agent_script(write=bool(config.get("action")))
    if agent_here.runs_here(runner, config):
        return agent_here.run_here(agent, config, runner.local_cache, cancel=cancel, timeout=timeout,
                                   label=f"EnvDesk's helper on {runner.name}")
    # The settings travel inside the script on stdin, not as an argument: other users of a login
    # node can read every process's arguments with ps.
    settings = json.dumps(config, separators=(",", ":"))

    def send(script: str) -> CommandResult:
        return runner.run_python(script, [], timeout=timeout, cancel=cancel)

    result = None if config.get("action") else agent_session.ask(runner, agent, settings, cancel, timeout)
    if result is None:
        result = agent_store.run_stored(runner, agent, settings, agent_part(STORE_PART), send)
    for line in result.stdout.splitlines():
        if line.startswith(ANSWER_MARKER):
            try:
                return json.loads(line[len(ANSWER_MARKER):])
            except json.JSONDecodeError as exc:
                raise EnvDeskError(f"{runner.name} sent back an answer EnvDesk could not read.",
                                   log=result.stdout + result.stderr) from exc
    result.check(f"EnvDesk's helper on {runner.name}")
    raise CommandFailed(f"{runner.name} did not answer EnvDesk's helper.",
                        "Its login shell may print something unexpected; see the log.",
                        log=result.stdout + result.stderr)


_REFUSALS: dict[str, type[EnvDeskError]] = {
    CODE_BUSY: Busy, CODE_EXISTS: InvalidInput, CODE_INVALID: InvalidInput, CODE_OUTSIDE: InvalidInput,
    CODE_MISSING: NotFound, CODE_INCOMPLETE: InvalidInput}

# What the user can do about a refusal the agent cannot word for them (it does not know what else is there).
_HINTS: dict[str, str] = {
    CODE_DISK_FULL: "Delete environments or files you no longer need on that disk (or ask for more quota), "
                    "or use an environment folder on another disk, then try again.",
    CODE_READ_ONLY: "Use an environment folder you can write to (a project or scratch folder, for example).",
    CODE_OUTSIDE: "To have EnvDesk manage environments in that folder, add it to the cluster's environment folders: "
                  "envdesk cluster edit CLUSTER --env-root DIR (in the window: the cluster's Edit…).",
    CODE_NOT_WRITABLE: "If that folder is yours, make it writable for you (chmod u+w on it); if it is another "
                       "user's, ask them. Or use a folder you can write to (for a new environment another --root, "
                       "such as a project or scratch folder).",
}


def call_action(runner: Runner, action: str, path: str, roots: Sequence[str], **settings: Any) -> dict[str, Any]:
    """Run one of the agent's write actions; a refusal becomes the matching EnvDeskError."""
    return checked(run_agent(runner, {"action": action, "path": path, "roots": list(roots), **settings},
                             timeout=ACTION_TIMEOUT))


def checked(answer: dict[str, Any]) -> dict[str, Any]:
    """An action's answer, or its refusal raised as the matching EnvDeskError."""
    if not answer.get("ok"):
        error = answer.get("error") or (answer.get("errors") or [{}])[0].get("error", "unknown problem")
        code = answer.get("code", "")
        raise _REFUSALS.get(code, CommandFailed)(error, _HINTS.get(code, ""))
    return answer
