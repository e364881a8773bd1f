"""Login nodes of RHEL 7 and 8 run bash older than 5.1, which writes every here-document to a file in $TMPDIR
(default /tmp) and fails where that is full, as a login node's /tmp often is. Nothing EnvDesk runs there may
need one: the one-command create and the kept listing agent pass their programs through pipes instead.

The test bed's bash is 5.2: under BASH_COMPAT=50 it writes here-documents to $TMPDIR as the older ones do
(checked by the fixture, with bash itself as the referee), and $TMPDIR is a full tmpfs. Referees: sshd's log
(the commands run), pip (what is installed)."""
from __future__ import annotations

from pathlib import Path

import pytest

from envdesk.backend import agent_session
from envdesk.backend.errors import EnvDeskError
from envdesk.backend.inventory import read_inventory
from envdesk.backend.operations.create import CreateRequest, create_environment
from envdesk.backend.targets import Session
from envdesk_fixtures import ScriptedPrompter, make_config, mounted_tmpfs, unique
from test_agent_session import commands
from test_create_one_command import alpha, commands_of  # noqa: F401  (alpha: a fixture)
from test_failing_installs import pip_freeze


@pytest.fixture
def old_bash_with_full_tmp(alpha):  # noqa: F811  (the fixture imported above)
    """alpha's login shells as on a RHEL 7/8 login node whose /tmp filled up."""
    with mounted_tmpfs(Path(f"/tmp/envdesk-full-{unique('tmp')}"), "size=8k,mode=1777") as full:
        with open(full / "filler", "wb") as filler:
            with pytest.raises(OSError):
                filler.write(b"x" * 65536)
                filler.flush()
        alpha.run_as_user(f"printf '%s\\n' 'export BASH_COMPAT=50 TMPDIR={full}' "
                          "'[ -f ~/.profile ] && . ~/.profile' > ~/.bash_profile")
        try:
            heredoc = alpha.run_as_user("cat <<'END'\nx\nEND", check=False)
            assert "here-document" in heredoc.stderr, heredoc   # bash itself: here-documents fail there
            yield alpha
        finally:
            alpha.run_as_user("rm -f ~/.bash_profile")


def test_a_create_is_still_one_command(old_bash_with_full_tmp, session):
    name = unique("fulltmp")
    made, ran = commands_of(old_bash_with_full_tmp, lambda: create_environment(
        session, "alpha", CreateRequest(name=name, kind="uv", packages=["tinyalpha==1.0"])))
    assert not isinstance(made, EnvDeskError), made
    assert len(ran) == 1, ran
    assert made.environment.state == "ok"
    assert "tinyalpha==1.0" in pip_freeze(Path(made.environment.path))


def test_the_listing_agent_is_still_kept_running(old_bash_with_full_tmp, testbed, tmp_path, home):
    """The first listing stores the agent, the second starts the serving agent, the third is served by it: no
    command (where the agent could not start, every listing would be a command of its own)."""
    cluster = old_bash_with_full_tmp
    name = unique("fulltmp")
    cluster.run_as_user(f"python3 -m venv --without-pip ~/venvs/{name}")
    session = Session(make_config(tmp_path / "kept", testbed, ["alpha"]), ScriptedPrompter(), keep_agents=True)
    try:
        target = session.target("alpha")
        counts = [commands(cluster, lambda: read_inventory(target.runner, ["~/venvs"])) for _ in range(3)]
        assert counts == [1, 1, 0]
        assert agent_session.server_for(target.runner).started == 1
        assert name in {env.name for env in read_inventory(target.runner, ["~/venvs"]).environments}
    finally:
        session.close()
        cluster.run_as_user(f"rm -rf ~/venvs/{name}")
