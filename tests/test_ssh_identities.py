"""Which keys a login offers: IdentitiesOnly, IdentityAgent, an IdentityFile that is a public key. The referee is
OpenSSH's own `ssh`, logging in to the test bed's real sshd with the same ~/.ssh/config and the same ssh-agent."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from envdesk.backend.errors import AuthenticationFailed
from envdesk_fixtures import ScriptedPrompter, make_config, running_ssh_agent, session_for

JUNK_KEYS = 12  # more than the test bed's MaxAuthTries (10): a server cuts the login before the right key


def make_keys(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    keys = [folder / f"junk{number}" for number in range(count)]
    for key in keys:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return keys


def add_to_agent(env: dict[str, str], *keys: Path) -> None:
    for key in keys:
        subprocess.run(["ssh-add", "-q", str(key)], env=env, check=True, capture_output=True)


def write_ssh_config(home: Path, cluster, lines: str) -> Path:
    config = home / ".ssh" / "config"
    config.parent.mkdir(mode=0o700, exist_ok=True)
    config.write_text(f"Host bed\n  HostName {cluster.host}\n  Port {cluster.port}\n  User {cluster.user}\n{lines}")
    return config


def openssh_logs_in(config: Path, cluster, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    """The referee: a real `ssh` login with this configuration and agent (host key known, no question asked)."""
    known = tmp_path / "known_hosts"
    known.write_text(cluster.known_hosts_line() + "\n")
    return subprocess.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={known}",
                           "bed", "true"], capture_output=True, text=True, timeout=60, env=env,
                          stdin=subprocess.DEVNULL)


def envdesk_logs_in(testbed, tmp_path: Path) -> str:
    """EnvDesk's login through the Host alias `bed` (the profile names no key): whoami's answer."""
    paths = make_config(tmp_path / "cfg", testbed, ["beta"], beta={"host": "bed", "port": None, "user": None,
                                                                    "identity_file": None})
    runner = session_for(paths, ScriptedPrompter()).target("beta").runner
    return runner.run(["whoami"]).stdout.strip()


def test_identities_only_offers_only_the_configured_key_as_openssh_does(testbed, tmp_path, home, monkeypatch):
    """User trial: with an agent holding many keys, `IdentitiesOnly yes` was ignored; the server cut the login
    after MaxAuthTries keys and EnvDesk said 'check your network'. OpenSSH logs in with IdentitiesOnly, and is
    cut off without it: EnvDesk does the same, and then names the likely cause."""
    cluster = testbed.clusters["beta"]
    with running_ssh_agent(tmp_path / "agent.sock") as env:
        add_to_agent(env, *make_keys(tmp_path / "junk", JUNK_KEYS))
        monkeypatch.setenv("SSH_AUTH_SOCK", env["SSH_AUTH_SOCK"])
        config = write_ssh_config(home, cluster, f"  IdentityFile {testbed.client_key}\n  IdentitiesOnly yes\n")
        assert openssh_logs_in(config, cluster, env, tmp_path).returncode == 0
        assert envdesk_logs_in(testbed, tmp_path / "only") == cluster.user

        config = write_ssh_config(home, cluster, f"  IdentityFile {testbed.client_key}\n")
        refused = openssh_logs_in(config, cluster, env, tmp_path)
        assert refused.returncode != 0 and "Too many authentication failures" in refused.stderr, refused.stderr
        with pytest.raises(AuthenticationFailed) as failed:
            envdesk_logs_in(testbed, tmp_path / "all")
    said = str(failed.value)
    assert "network" not in said and "IdentitiesOnly yes" in said and "keys" in said, said


def test_identity_agent_and_a_public_key_file_log_in_as_openssh_does(testbed, tmp_path, home, monkeypatch):
    """User trial: `IdentityAgent ~/agent.sock` (1Password, Secretive) was ignored, and an IdentityFile naming the
    public half of a key held by that agent did not work. OpenSSH logs in through that agent with that file;
    `IdentityAgent none` turns the agent off, and then neither logs in."""
    cluster = testbed.clusters["beta"]
    public = tmp_path / "agent-key.pub"
    public.write_text(testbed.client_key.with_name(testbed.client_key.name + ".pub").read_text())
    socket_path = home / "agent.sock"
    with running_ssh_agent(socket_path) as env:
        add_to_agent(env, *make_keys(tmp_path / "junk", 3), testbed.client_key)
        environment = {key: value for key, value in os.environ.items() if key != "SSH_AUTH_SOCK"}
        # written out: OpenSSH's ~ is the account's home (/etc/passwd), the test's is $HOME
        for agent_setting, logs_in in ((str(socket_path), True), ("none", False)):
            config = write_ssh_config(home, cluster, f"  IdentityAgent {agent_setting}\n  IdentityFile {public}\n"
                                                     "  IdentitiesOnly yes\n")
            assert (openssh_logs_in(config, cluster, environment, tmp_path).returncode == 0) is logs_in
            if logs_in:
                assert envdesk_logs_in(testbed, tmp_path / "agent") == cluster.user
            else:  # T28: it said the .pub "could not be read"; a public key is what it is, and ssh-add the way on
                with pytest.raises(AuthenticationFailed) as refused:
                    envdesk_logs_in(testbed, tmp_path / "none")
                said = str(refused.value) + " " + refused.value.hint
                assert f"{public} is a public key" in said and f"ssh-add {str(public)[:-4]}" in said, said


def test_an_identity_file_whose_private_half_only_the_agent_holds_logs_in_as_openssh_does(testbed, tmp_path, home,
                                                                                         monkeypatch):
    """R12: with IdentitiesOnly, an IdentityFile naming a private key that is not on disk, only its .pub beside it
    (the key itself in the agent, as hardware keys and password managers keep it), offered nothing; OpenSSH loads
    the .pub and offers the agent's key."""
    cluster = testbed.clusters["beta"]
    named = tmp_path / "keys" / "cluster_key"
    named.parent.mkdir()
    named.with_name("cluster_key.pub").write_text(
        testbed.client_key.with_name(testbed.client_key.name + ".pub").read_text())
    assert not named.exists()
    socket_path = home / "agent.sock"
    with running_ssh_agent(socket_path) as env:
        add_to_agent(env, *make_keys(tmp_path / "junk", 3), testbed.client_key)
        environment = {key: value for key, value in os.environ.items() if key != "SSH_AUTH_SOCK"}
        config = write_ssh_config(home, cluster, f"  IdentityAgent {socket_path}\n  IdentityFile {named}\n"
                                                 "  IdentitiesOnly yes\n")
        assert openssh_logs_in(config, cluster, environment, tmp_path).returncode == 0
        assert envdesk_logs_in(testbed, tmp_path / "agent") == cluster.user
