"""A ProxyCommand that is a jump host written out with ssh's own options (`ssh -i KEY -W %h:%p gw -p 2222`) is
followed as ssh follows it; one EnvDesk cannot follow is refused, never left out (user trial T28, MED-6)."""
from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from envdesk.backend.config import ClusterProfile
from envdesk.backend.errors import ConfigError
from envdesk.backend.ssh_config import load_ssh_config, plan_connection
from envdesk_fixtures import openssh_home
from test_known_hosts_settings import envdesk_connects, openssh_connects, write_ssh_config


def openssh_resolves(config: Path, arguments: list[str]) -> dict[str, list[str]]:
    """What OpenSSH makes of an ssh command line with this configuration (`ssh -G`, which connects nowhere):
    each setting's values, in order."""
    said = subprocess.run(["ssh", "-G", "-F", str(config), *arguments], capture_output=True, text=True, timeout=30,
                          check=True).stdout
    settings: dict[str, list[str]] = {}
    for line in said.splitlines():
        key, _, value = line.partition(" ")
        settings.setdefault(key, []).append(value)
    return settings


@pytest.mark.parametrize("command", [
    "ssh -o ConnectTimeout=10 -W %h:%p j1",
    "/usr/bin/ssh -i KEYS/jumpkey -W %h:%p t28u2@127.0.0.1 -p 22802",
    "exec ssh -q -l u2 -oPort=2201 -W [%h]:%p j1 -o User=ignored",
    "ssh -o 'IdentityFile=\"KEYS/other key\"' -o User=ou -W %h:%p u9@j1",
    "ssh -J j0 -W %h:%p j1 -i KEYS/jumpkey",
])
def test_a_jump_written_out_with_ssh_options_resolves_as_openssh_resolves_it(tmp_path, monkeypatch, command):
    """The referee is OpenSSH's own reading of the ProxyCommand's ssh command line (`ssh -G` with its arguments,
    the -W dropped; KEYS is a folder of key files): the jump's user, address, port, keys and its own jump hosts
    are EnvDesk's last jump's."""
    home = openssh_home(monkeypatch)
    for name in ("jumpkey", "other key"):  # ssh leaves out an -i file that is not there
        (tmp_path / name).write_text("")
    command = command.replace("KEYS", str(tmp_path))
    config = tmp_path / "config"
    config.write_text(f"Host pci\n  HostName 10.1.2.3\n  Port 2022\n  ProxyCommand {command}\n"
                      "Host j1\n  HostName gw.example.org\n  User j1user\n  IdentityFile ~/.ssh/j1key\n"
                      "Host j0\n  HostName 127.0.0.9\n  Port 2200\n")
    words = shlex.split(command.removeprefix("exec "))
    arguments = [word for at, word in enumerate(words[1:], 1) if "-W" not in (word, words[at - 1])]
    referee = openssh_resolves(config, arguments)
    plan = plan_connection(ClusterProfile(name="p", host="pci"), load_ssh_config(config))
    jump = plan.jumps[-1]
    assert (jump.user, jump.host, jump.port) == (referee["user"][0], referee["hostname"][0],
                                                   int(referee["port"][0])), (plan, referee)
    assert [path.replace(home, "~") for path in jump.identity_files] == referee["identityfile"][:len(
        jump.identity_files)], referee["identityfile"]
    assert [hop.alias for hop in plan.jumps[:-1]] == referee.get("proxyjump", [])


def _forwards_to(cluster, port: int) -> int:
    """How many times the jump host's sshd was asked to forward a connection to `port` (its DEBUG3 log, the
    referee for the way a connection went)."""
    return len(re.findall(rf"server_request_direct_tcpip: originator .*, target \S+ port {port}\b",
                          cluster.log_text()))


def test_a_real_login_goes_through_the_jump_a_proxycommand_writes_out(testbed, tmp_path, home):
    """T28: `ProxyCommand ssh -i ~/.ssh/jumpkey -W %h:%p USER@HOST -p PORT` was said not to be run and EnvDesk went
    to the cluster directly, past the gateway. OpenSSH goes through the jump (its sshd forwards to beta); so does
    EnvDesk now, with the jump's key and known_hosts file from the command line."""
    alpha, beta = testbed.clusters["alpha"], testbed.clusters["beta"]
    ssh = home / ".ssh"
    ssh.mkdir()
    jump_key, jump_hosts = ssh / "jumpkey", ssh / "jump_known_hosts"
    jump_key.write_bytes(testbed.client_key.read_bytes())
    jump_key.chmod(0o600)
    jump_hosts.write_text(alpha.known_hosts_line() + "\n")
    (ssh / "known_hosts").write_text(beta.known_hosts_line() + "\n")  # the jump's key is only in its own file
    config = write_ssh_config(home, testbed, {"beta": (
        f"ProxyCommand ssh -i {jump_key} -o UserKnownHostsFile={jump_hosts} -o BatchMode=yes "
        f"-o IdentitiesOnly=yes -o ConnectTimeout=10 -W %h:%p {alpha.user}@{alpha.host} -p {alpha.port}")})
    before = _forwards_to(alpha, beta.port)
    connected, said = openssh_connects(config, "beta")
    assert connected and _forwards_to(alpha, beta.port) == before + 1, said
    assert envdesk_connects(tmp_path, testbed, "beta").host_keys_seen == []
    assert _forwards_to(alpha, beta.port) == before + 2


def test_a_proxycommand_envdesk_cannot_follow_stops_every_connection(testbed, tmp_path, home):
    """T28: for a ProxyCommand it does not run EnvDesk connected directly. OpenSSH would only ever go through the
    command; EnvDesk now refuses, saying what to write instead, and beta's sshd hears from nobody."""
    beta = testbed.clusters["beta"]
    (home / ".ssh").mkdir()
    (home / ".ssh" / "known_hosts").write_text(beta.known_hosts_line() + "\n")
    config = write_ssh_config(home, testbed, {"beta": "ProxyCommand nc -X connect -x proxy.example:3128 %h %p"})
    assert "proxycommand" in openssh_resolves(config, ["beta"])
    heard = beta.log_text().count("Connection from")
    for _ in range(2):
        with pytest.raises(ConfigError) as refused:
            envdesk_connects(tmp_path, testbed, "beta")
        assert "cannot follow" in refused.value.message and "ProxyJump" in refused.value.hint
    assert beta.log_text().count("Connection from") == heard
