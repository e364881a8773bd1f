"""Talking to the agent: send it with its settings, read its one-line JSON answer."""
from __future__ import annotations

import json
from importlib import resources
from typing import Any

from .errors import Busy, CommandFailed, EnvDeskError, InvalidInput, NotFound
from .runner import CancelToken, Runner

AGENT_MARKER = "ENVDESK-AGENT-JSON "
AGENT_TIMEOUT = 120.0
ACTION_TIMEOUT = 600.0  # deleting a large environment on a slow shared filesystem takes a while


def agent_source() -> str:
    """The agent script's text, as shipped inside the package."""
    return resources.files("envdesk.backend").joinpath("agent.py").read_text(encoding="utf-8")


def run_agent(runner: Runner, config: dict[str, Any], cancel: CancelToken | None = None,
              timeout: float = AGENT_TIMEOUT) -> dict[str, Any]:
    """Run the agent once on the target and return its parsed answer."""
    # The settings travel inside the script on stdin, not as an argument: other users of a login
    # node can read every process's arguments with ps.
    settings = json.dumps(config, separators=(",", ":"))
    script = f"import sys\nsys.argv = ['-', {settings!r}]\n" + agent_source()
    result = runner.run_python(script, [], timeout=timeout, cancel=cancel)
    for line in result.stdout.splitlines():
        if line.startswith(AGENT_MARKER):
            try:
                return json.loads(line[len(AGENT_MARKER):])
            except json.JSONDecodeError as exc:
                raise EnvDeskError(f"{runner.name} sent back an answer EnvDesk could not read.",
                                   log=result.stdout + result.stderr) from exc
    result.check(f"EnvDesk's helper on {runner.name}")
    raise CommandFailed(f"{runner.name} did not answer EnvDesk's helper.",
                        "Its login shell may print something unexpected; see the log.",
                        log=result.stdout + result.stderr)


_REFUSALS = {"busy": Busy, "exists": InvalidInput, "invalid": InvalidInput, "outside": InvalidInput,
             "missing": NotFound, "incomplete": InvalidInput}


def call_action(runner: Runner, action: str, path: str, roots: list[str], **settings: Any) -> dict[str, Any]:
    """Run one of the agent's write actions; a refusal becomes the matching EnvDeskError."""
    answer = run_agent(runner, {"action": action, "path": path, "roots": list(roots), **settings},
                       timeout=ACTION_TIMEOUT)
    if not answer.get("ok"):
        error = answer.get("error") or (answer.get("errors") or [{}])[0].get("error", "unknown problem")
        raise _REFUSALS.get(answer.get("code", ""), CommandFailed)(error)
    return answer
