"""HostKeyAlias and UserKnownHostsFile in ~/.ssh/config, as OpenSSH reads them for host-key lookup.

A user trial found both ignored: with alpha's key recorded only as `alpha-cluster` in a known_hosts file of its own,
`ssh alpha` connected without asking and EnvDesk said it had never connected before. The referee is the real `ssh`
(BatchMode, StrictHostKeyChecking yes) run with the same configuration file against the test bed's sshd: where it
connects without asking EnvDesk must verify without asking, and where it refuses EnvDesk must refuse the same way.
Tokens and ~ in UserKnownHostsFile are compared with what `ssh -G` prints."""
from __future__ import annotations

import subprocess
from pathlib import Path

import paramiko
import pytest

from envdesk.backend.config import ClusterProfile
from envdesk.backend.errors import ConfigError, HostKeyChanged, HostKeyRevoked, HostKeyUnknown
from envdesk.backend.hostkeys import HostKeyStore
from envdesk.backend.ssh_config import load_ssh_config, plan_connection
from envdesk_fixtures import ScriptedPrompter, make_config, openssh_home, run_cli, session_for


def write_ssh_config(home: Path, testbed, blocks: dict[str, str]) -> Path:
    """~/.ssh/config naming each test-bed cluster in `blocks` as a Host of its own, with the lines given for it.
    What both clients share comes last (first value wins in both): the client key, no questions, and as the
    default known_hosts files the ones under this test's HOME (ssh's own ~ is the account's home, not $HOME)."""
    ssh = home / ".ssh"
    ssh.mkdir(exist_ok=True)
    key = ssh / "id_ed25519"
    key.write_bytes(testbed.client_key.read_bytes())
    key.chmod(0o600)
    text = ""
    for name, lines in blocks.items():
        cluster = testbed.clusters[name]
        text += (f"Host {name}\n  HostName {cluster.host}\n  Port {cluster.port}\n  User {cluster.user}\n"
                 + "".join(f"  {line}\n" for line in lines.splitlines()))
    text += (f"Host *\n  IdentityFile {key}\n  IdentitiesOnly yes\n  BatchMode yes\n  StrictHostKeyChecking yes\n"
             f"  GlobalKnownHostsFile /dev/null\n  UserKnownHostsFile {ssh / 'known_hosts'} {ssh / 'known_hosts2'}\n")
    (ssh / "config").write_text(text)
    return ssh / "config"


def openssh_connects(config: Path, host: str, *options: str) -> tuple[bool, str]:
    """Whether the real ssh logs in to `host` with this configuration without asking anything, and what it said."""
    result = subprocess.run(["ssh", "-F", str(config), *options, host, "true"], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=120)
    return result.returncode == 0, result.stderr


def envdesk_connects(tmp_path: Path, testbed, host: str) -> ScriptedPrompter:
    """Connect EnvDesk to the Host alias `host` (nothing trusted in its own file), saying no to any new key;
    the prompter records whether it was asked."""
    folder = tmp_path / f"cfg{len(list(tmp_path.glob('cfg*')))}"  # a new one each time: nothing trusted in it
    paths = make_config(folder, testbed, [host], trusted=False,
                        **{host: {"host": host, "port": None, "user": None, "identity_file": None}})
    prompter = ScriptedPrompter(trust=False)
    session = session_for(paths, prompter)
    try:
        session.target(host).runner.connect()
    finally:
        session.close()
    return prompter


def key_line(name: str, cluster) -> str:
    return f"{name} {cluster.host_key_pub}\n"


def test_a_key_recorded_under_its_alias_in_the_hosts_own_file_is_known_as_ssh_knows_it(testbed, tmp_path, home):
    alpha = testbed.clusters["alpha"]
    (home / ".ssh").mkdir()
    (home / ".ssh" / "known_hosts.clusters").write_text(key_line("alpha-cluster", alpha))
    config = write_ssh_config(home, testbed, {"alpha": "HostKeyAlias alpha-cluster\n"
                                                       f"UserKnownHostsFile {home}/.ssh/known_hosts.clusters"})
    connected, said = openssh_connects(config, "alpha")
    assert connected, said
    assert envdesk_connects(tmp_path, testbed, "alpha").host_keys_seen == [], "asked about a key ssh knows"


def test_an_alias_recorded_with_another_key_is_refused_as_changed_as_ssh_refuses_it(testbed, tmp_path, home):
    alpha, beta = testbed.clusters["alpha"], testbed.clusters["beta"]
    (home / ".ssh").mkdir()
    clusters = home / ".ssh" / "known_hosts.clusters"
    clusters.write_text(key_line("alpha-cluster", beta) + key_line(f"[{alpha.host}]:{alpha.port}", alpha))
    config = write_ssh_config(home, testbed, {"alpha": f"HostKeyAlias alpha-cluster\nUserKnownHostsFile {clusters}"})
    connected, said = openssh_connects(config, "alpha")
    assert not connected and "HOST IDENTIFICATION HAS CHANGED" in said, said
    with pytest.raises(HostKeyChanged) as info:
        envdesk_connects(tmp_path, testbed, "alpha")
    assert str(clusters) in info.value.message and alpha.host_key_fingerprint in info.value.message


@pytest.mark.parametrize("case", ["recorded under host and port only", "in the default file, user file none",
                                  "under the alias in the default file, not in the host's own file"])
def test_where_ssh_knows_no_key_envdesk_asks(testbed, tmp_path, home, case):
    """The alias replaces [host]:port (never both), and UserKnownHostsFile replaces ~/.ssh/known_hosts."""
    alpha = testbed.clusters["alpha"]
    ssh = home / ".ssh"
    ssh.mkdir()
    own = ssh / "known_hosts.clusters"
    own.write_text("")
    lines = {"recorded under host and port only": ("HostKeyAlias alpha-cluster", f"[{alpha.host}]:{alpha.port}"),
             "in the default file, user file none": ("UserKnownHostsFile none", f"[{alpha.host}]:{alpha.port}"),
             "under the alias in the default file, not in the host's own file":
                 (f"HostKeyAlias alpha-cluster\nUserKnownHostsFile {own}", "alpha-cluster")}[case]
    (ssh / "known_hosts").write_text(key_line(lines[1], alpha))
    config = write_ssh_config(home, testbed, {"alpha": lines[0]})
    connected, said = openssh_connects(config, "alpha")
    assert not connected and "Host key verification failed" in said, said  # no key known: nothing to ask in batch
    assert "CHANGED" not in said and "REVOKED" not in said, said
    with pytest.raises(HostKeyUnknown):
        envdesk_connects(tmp_path, testbed, "alpha")


def test_revoked_hashed_and_several_files_behave_as_in_ssh(testbed, tmp_path, home):
    alpha = testbed.clusters["alpha"]
    ssh = home / ".ssh"
    ssh.mkdir()
    first, second = ssh / "kh_one", ssh / "kh_two"
    first.write_text("@cert-authority *.example.org " + alpha.host_key_pub + "\n")
    second.write_text(key_line(paramiko.HostKeys.hash_host("alpha-cluster"), alpha))
    config = write_ssh_config(home, testbed, {"alpha": f"HostKeyAlias alpha-cluster\n"
                                                       f"UserKnownHostsFile {first} {ssh / 'missing'} {second}"})
    connected, said = openssh_connects(config, "alpha")
    assert connected, said
    assert envdesk_connects(tmp_path, testbed, "alpha").host_keys_seen == []
    first.write_text(f"@revoked alpha-cluster {alpha.host_key_pub}\n")
    connected, said = openssh_connects(config, "alpha")
    assert not connected and "REVOKED" in said, said
    with pytest.raises(HostKeyRevoked) as info:
        envdesk_connects(tmp_path, testbed, "alpha")
    assert str(first) in info.value.message


def test_each_hop_has_its_own_alias_and_file_and_trust_records_under_the_alias(testbed, tmp_path, home):
    """A jump host and its cluster each with their own HostKeyAlias and UserKnownHostsFile. What `cluster trust`
    records in EnvDesk's own file is named as the lookup names it: ssh, given that file, knows both hops."""
    alpha, beta = testbed.clusters["alpha"], testbed.clusters["beta"]
    ssh = home / ".ssh"
    ssh.mkdir()
    (ssh / "kh_jump").write_text(key_line("the-jump", alpha))
    (ssh / "kh_beta").write_text(key_line("beta-cluster", beta))
    config = write_ssh_config(home, testbed, {
        "alpha": f"HostKeyAlias the-jump\nUserKnownHostsFile {ssh / 'kh_jump'}",
        "beta": f"HostKeyAlias beta-cluster\nUserKnownHostsFile {ssh / 'kh_beta'}\nProxyJump alpha"})
    connected, said = openssh_connects(config, "beta")
    assert connected, said
    assert envdesk_connects(tmp_path, testbed, "beta").host_keys_seen == []
    (ssh / "kh_jump").write_text(key_line("the-jump", beta))  # the jump host's alias now holds another key
    connected, said = openssh_connects(config, "beta")
    assert not connected and "HOST IDENTIFICATION HAS CHANGED" in said, said
    with pytest.raises(HostKeyChanged) as info:
        envdesk_connects(tmp_path, testbed, "beta")
    assert str(alpha.port) in info.value.message and str(ssh / "kh_jump") in info.value.message
    for name in ("kh_jump", "kh_beta"):
        (ssh / name).write_text("")
    cfg = tmp_path / "trusting"
    make_config(cfg, testbed, ["beta"], trusted=False, beta={"host": "beta", "port": None, "user": None})
    trusted = run_cli("cluster", "trust", "beta", "--yes", config=cfg, home=home)
    assert trusted.returncode == 0, trusted.stderr
    recorded = (cfg / "known_hosts").read_text()
    assert [line.split()[0] for line in recorded.splitlines()] == ["the-jump", "beta-cluster"], recorded
    again = run_cli("cluster", "trust", "beta", "--yes", config=cfg, home=home)
    assert again.stdout.count("already trusted") == 2, again.stdout + again.stderr
    for name in ("kh_jump", "kh_beta"):
        (ssh / name).write_text(recorded)
    connected, said = openssh_connects(config, "beta")
    assert connected, said


def test_a_key_only_in_a_global_known_hosts_file_is_known_as_ssh_knows_it(testbed, tmp_path, home):
    """GlobalKnownHostsFile (the administrator's file, read as well as the user's): where ssh connects without asking
    EnvDesk does, and a key revoked there is refused by both. Only ~ is expanded in its names (a % is part of the
    name). `cluster trust` finds the key trusted and writes nothing to the system's file."""
    alpha, beta = testbed.clusters["alpha"], testbed.clusters["beta"]
    system = tmp_path / "etc-ssh"
    system.mkdir()
    global_file = system / "kh_%h"
    global_file.write_text(key_line(f"[{alpha.host}]:{alpha.port}", alpha))
    config = write_ssh_config(home, testbed, {"alpha": f"GlobalKnownHostsFile {system / 'missing'} {global_file}"})
    connected, said = openssh_connects(config, "alpha")
    assert connected, said
    assert envdesk_connects(tmp_path, testbed, "alpha").host_keys_seen == [], "asked about a key ssh knows"
    cfg = tmp_path / "trusting"
    make_config(cfg, testbed, ["alpha"], trusted=False, alpha={"host": "alpha", "port": None, "user": None})
    trusted = run_cli("cluster", "trust", "alpha", "--yes", config=cfg, home=home)
    assert trusted.returncode == 0 and "already trusted" in trusted.stdout, trusted.stdout + trusted.stderr
    assert global_file.read_text() == key_line(f"[{alpha.host}]:{alpha.port}", alpha)
    global_file.write_text(key_line(f"[{alpha.host}]:{alpha.port}", beta))
    connected, said = openssh_connects(config, "alpha")
    assert not connected and "HOST IDENTIFICATION HAS CHANGED" in said, said
    with pytest.raises(HostKeyChanged) as info:
        envdesk_connects(tmp_path, testbed, "alpha")
    assert str(global_file) in info.value.message
    global_file.write_text(f"@revoked [{alpha.host}]:{alpha.port} {alpha.host_key_pub}\n")
    (home / ".ssh" / "known_hosts").write_text(key_line(f"[{alpha.host}]:{alpha.port}", alpha))
    connected, said = openssh_connects(config, "alpha")
    assert not connected and "REVOKED" in said, said
    with pytest.raises(HostKeyRevoked) as info:
        envdesk_connects(tmp_path, testbed, "alpha")
    assert str(global_file) in info.value.message


@pytest.mark.parametrize("keyword", ["UserKnownHostsFile", "GlobalKnownHostsFile"])
def test_quoted_known_hosts_files_with_spaces_are_read_whole_as_ssh_reads_them(testbed, tmp_path, home, keyword):
    """`UserKnownHostsFile "/a b/known hosts" "/a b/missing file"`: two files, each with spaces in its name. paramiko
    drops the quotes around a whole value, and what was left was split at every space."""
    alpha = testbed.clusters["alpha"]
    folder = tmp_path / "known hosts here"
    folder.mkdir()
    (folder / "known hosts").write_text(key_line(f"[{alpha.host}]:{alpha.port}", alpha))
    line = f'{keyword} "{folder / "known hosts"}" "{folder / "missing file"}"'
    config = write_ssh_config(home, testbed, {"alpha": line})
    said = subprocess.run(["ssh", "-G", "-F", str(config), "alpha"], capture_output=True, text=True, timeout=30,
                          check=True).stdout
    printed = dict(row.partition(" ")[::2] for row in said.splitlines())  # the files, joined by spaces
    plan = plan_connection(ClusterProfile(name="c", host="alpha"), load_ssh_config(config))
    files = plan.target.known_hosts_files if keyword == "UserKnownHostsFile" else plan.target.global_known_hosts_files
    assert " ".join(files or ()) == printed[keyword.lower()]
    assert files == (str(folder / "known hosts"), str(folder / "missing file"))
    connected, said = openssh_connects(config, "alpha")
    assert connected, said
    assert envdesk_connects(tmp_path, testbed, "alpha").host_keys_seen == [], "asked about a key ssh knows"


def test_the_default_global_known_hosts_files_are_the_ones_ssh_reads(tmp_path):
    """Without GlobalKnownHostsFile, the system's files are OpenSSH's defaults, as `ssh -G` names them."""
    said = subprocess.run(["ssh", "-G", "-F", "/dev/null", "some.example.org"], capture_output=True, text=True,
                          timeout=30, check=True).stdout
    printed = {line.split()[0]: line.split()[1:] for line in said.splitlines() if line.strip()}
    assert [str(path) for path in HostKeyStore(tmp_path / "app").global_files] == printed["globalknownhostsfile"]
    plan = plan_connection(ClusterProfile(name="c", host="some.example.org"), load_ssh_config(tmp_path / "none"))
    assert plan.target.global_known_hosts_files is None


def test_known_hosts_file_tokens_are_expanded_as_ssh_G_expands_them(tmp_path, monkeypatch):
    """~, %-tokens and ${VARIABLES} in UserKnownHostsFile, per host, against `ssh -G`."""
    openssh_home(monkeypatch)
    monkeypatch.setenv("ENVDESK_KH", str(tmp_path / "kh"))
    config = tmp_path / "config"
    config.write_text("Host one\n  HostName 127.0.0.1\n  Port 2201\n  User bob\n  HostKeyAlias one-alias\n"
                      "  UserKnownHostsFile ~/.ssh/kh_%h_%p_%r_%n_%k %d/x_%L_%l_%u_%i_%C ${ENVDESK_KH}/%%\n"
                      "Host two\n  HostName 10.9.8.7\n  UserKnownHostsFile none\n")
    for host in ("one", "two"):
        said = subprocess.run(["ssh", "-G", "-F", str(config), host], capture_output=True, text=True, timeout=30,
                              check=True).stdout
        printed = {line.split()[0]: line.split()[1:] for line in said.splitlines() if line.strip()}
        files = printed.get("userknownhostsfile", [])
        plan = plan_connection(ClusterProfile(name="c", host=host), load_ssh_config(config))
        assert list(plan.target.known_hosts_files or ()) == ([] if files == ["none"] else files)
        assert plan.target.host_key_alias == (printed.get("hostkeyalias") or [None])[0]


@pytest.mark.parametrize("lines", ["UserKnownHostsFile none /tmp/x", "GlobalKnownHostsFile none /tmp/x",
                                   "HostKeyAlias two,names",
                                   'HostKeyAlias "two words"', "UserKnownHostsFile /tmp/%Z"])
def test_settings_ssh_refuses_or_a_known_hosts_file_cannot_hold_are_refused_in_plain_words(tmp_path, lines):
    config = tmp_path / "config"
    config.write_text(f"Host bad\n  HostName 127.0.0.1\n  {lines}\n")
    with pytest.raises(ConfigError) as info:
        plan_connection(ClusterProfile(name="c", host="bad"), load_ssh_config(config))
    assert "Your SSH configuration" in info.value.message
