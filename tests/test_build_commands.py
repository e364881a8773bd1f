"""A new environment's lock, notes and undo cost no command of their own (issue 11).

One agent takes the lock and makes the folder, waits while the commands that make the environment run,
then records the notes (or removes what was made) when told. Counted by alpha's sshd, in its log of exec
requests, from the moment the folder is reserved (the checks before it are not this test's business): that
agent, `uv venv` and `uv pip install`; before, the lock and the notes (or the undo) were a command each.
"""
from __future__ import annotations

from envdesk.backend import spec as specs
from envdesk.backend.errors import InstallFailed
from envdesk.backend.operations.common import Progress
from envdesk.backend.operations.create import CreateRequest, create_environment
from envdesk.backend.operations.importing import import_environment
from envdesk_fixtures import unique

AGENT, UV_VENV, UV_INSTALL = 1, 1, 1


def commands_of(cluster, run) -> list[str]:
    """The commands the cluster's sshd started while `run(progress)` ran, from its "Reserving" step on."""
    marks: list[int] = []

    def on_step(text: str) -> None:
        if text.startswith("Reserving"):
            marks.append(len(cluster.session_commands()))

    run(Progress(on_step=on_step))
    assert len(marks) == 1, marks
    return cluster.session_commands()[marks[0]:]


def test_a_create_is_one_agent_and_its_two_commands(testbed, session):
    alpha = testbed.clusters["alpha"]
    create_environment(session, "alpha", CreateRequest(name=unique("warm"), kind="uv"))  # probed once per session
    name = unique("count")
    commands = commands_of(alpha, lambda progress: create_environment(
        session, "alpha", CreateRequest(name=name, kind="uv", packages=["tinygamma"]), progress))
    assert len(commands) == AGENT + UV_VENV + UV_INSTALL, commands
    assert alpha.run_as_user(f"~/venvs/{name}/bin/python -c 'import tinygamma'", check=False).returncode == 0
    assert alpha.run_as_user(f"ls -A ~/venvs/{name}/.envdesk; ls -d ~/venvs/{name}.envdesk-lock 2>/dev/null",
                             check=False).stdout.split() == ["meta.json"]


def test_an_import_is_one_agent_and_its_two_commands(testbed, session):
    alpha = testbed.clusters["alpha"]
    create_environment(session, "alpha", CreateRequest(name=unique("warm"), kind="uv"))
    spec = specs.from_text("# envdesk: kind=uv\ntinyalpha==1.1\ntinygamma==0.1\n", "requirements.txt")
    name = unique("icount")
    commands = commands_of(alpha, lambda progress: import_environment(session, "alpha", spec, name=name,
                                                                      progress=progress))
    assert len(commands) == AGENT + UV_VENV + UV_INSTALL, commands
    assert alpha.run_as_user(f"~/venvs/{name}/bin/python -c 'import tinyalpha, tinygamma'",
                             check=False).returncode == 0


def test_a_failed_create_is_undone_without_a_command_of_its_own(testbed, session):
    alpha = testbed.clusters["alpha"]
    create_environment(session, "alpha", CreateRequest(name=unique("warm"), kind="uv"))
    name = unique("undo")

    def failing(progress: Progress) -> None:
        try:
            create_environment(session, "alpha", CreateRequest(name=name, kind="uv", packages=["nosuchpackage"]),
                               progress)
        except InstallFailed:
            return
        raise AssertionError("the install did not fail")

    commands = commands_of(alpha, failing)
    assert len(commands) == AGENT + UV_VENV + UV_INSTALL, commands
    assert alpha.run_as_user(f"ls -d ~/venvs/{name}* 2>/dev/null", check=False).stdout == ""
