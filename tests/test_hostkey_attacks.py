"""Host keys as OpenSSH treats them, tried the way an attacker or an unlucky user would meet them:
jump hosts trusted hop by hop from the command line, @revoked and @cert-authority lines in
~/.ssh/known_hosts, and a known server that switches to another key type.

On a jump host too (issue 9): its key changed, revoked, or switched to another type, by swapping the real
sshd's key. Each time EnvDesk refuses, names that hop, logs in nowhere and goes no further; the real `ssh`
refuses the same hop with the same known_hosts files, and fingerprints are compared with what `ssh-keygen -lf`
says of the sshd's key file (OpenSSH is the referee, never EnvDesk's own output)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from envdesk.backend.errors import HostKeyChanged, HostKeyRevoked, HostKeyTypeChanged
from envdesk_fixtures import ScriptedPrompter, make_config, run_cli, session_for


def openssh_fingerprint(cluster) -> str:
    """The fingerprint of the key the cluster's sshd serves, as ssh-keygen prints it."""
    public = cluster.host_key_path.with_name(cluster.host_key_path.name + ".pub")
    return subprocess.run(["ssh-keygen", "-lf", str(public)], capture_output=True, text=True,
                          check=True).stdout.split()[1]


def openssh_refuses(cluster, known_hosts: list[Path], key: Path) -> str:
    """Ask the real ssh to log in to the cluster with these known_hosts files; its complaint when it refuses."""
    result = subprocess.run(
        ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
         "-o", f"UserKnownHostsFile={' '.join(str(path) for path in known_hosts)}",
         "-o", "GlobalKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes", "-i", str(key),
         "-p", str(cluster.port), f"{cluster.user}@{cluster.host}", "true"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode == 255, f"ssh itself logged in: {result.stderr}"
    return result.stderr


def fingerprint_in(text: str) -> str:
    """The (first) SHA256 fingerprint a message shows."""
    found = re.search(r"SHA256:[A-Za-z0-9+/]{43}", text)
    assert found, text
    return found.group(0)


def behind_alpha(tmp_path: Path, testbed, home: Path):
    """beta reached through alpha as its jump host, both trusted; ~/.ssh/id_ed25519 logs in to alpha."""
    alpha = testbed.clusters["alpha"]
    config = tmp_path / "cfg"
    paths = make_config(config, testbed, ["alpha", "beta"], beta={"jump": [f"{alpha.user}@{alpha.host}:{alpha.port}"]})
    (home / ".ssh").mkdir(exist_ok=True)
    (home / ".ssh" / "id_ed25519").write_bytes(testbed.client_key.read_bytes())
    (home / ".ssh" / "id_ed25519").chmod(0o600)
    return config, paths


class Marks:
    """Where the sshd logs of a jump host and its cluster stood, to see what a refused connect did."""

    def __init__(self, jump, target) -> None:
        self.jump, self.target = jump, target
        self.jump_at, self.target_at = len(jump.log_text()), len(target.log_text())

    def logged_in_to_jump(self) -> bool:
        return any(line.startswith("Accepted ") for line in self.jump.log_text()[self.jump_at:].splitlines())

    def reached_target(self) -> bool:
        return "Connection from " in self.target.log_text()[self.target_at:]


def test_a_cluster_behind_an_unknown_jump_host_is_trusted_hop_by_hop_from_the_cli(testbed, tmp_path, home):
    alpha, beta = testbed.clusters["alpha"], testbed.clusters["beta"]
    config = tmp_path / "cfg"
    make_config(config, testbed, ["beta"], trusted=False,
                beta={"jump": [f"{alpha.user}@{alpha.host}:{alpha.port}"]})
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_ed25519").write_bytes(testbed.client_key.read_bytes())
    (home / ".ssh" / "id_ed25519").chmod(0o600)
    refused = run_cli("env", "list", "beta", config=config, home=home)
    assert refused.returncode == 1 and openssh_fingerprint(alpha) in refused.stderr
    trusted = run_cli("cluster", "trust", "beta", "--yes", config=config, home=home)
    assert trusted.returncode == 0, trusted.stderr
    lines = [line for line in trusted.stdout.splitlines() if ": trusted (" in line]
    assert [str(alpha.port) in lines[0], str(beta.port) in lines[1]] == [True, True], trusted.stdout
    assert openssh_fingerprint(alpha) in lines[0] and openssh_fingerprint(beta) in lines[1], "each hop its own"
    assert run_cli("env", "list", "beta", config=config, home=home).returncode == 0
    again = run_cli("cluster", "trust", "beta", "--yes", config=config, home=home)
    assert again.stdout.count("already trusted") == 2


def test_known_hosts_with_cert_authority_and_revoked_lines(testbed, tmp_path, home):
    cluster = testbed.clusters["alpha"]
    paths = make_config(tmp_path / "cfg", testbed, ["alpha"])
    (home / ".ssh").mkdir()
    user_known_hosts = home / ".ssh" / "known_hosts"
    user_known_hosts.write_text(
        "# a site's CA, and lines EnvDesk does not use\n"
        "@cert-authority *.cluster.example.org ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIE1vY2tDQWtleWZvcnRlc3RzMDEyMzQ1Njc4\n"
        "@unknown-marker somehost ssh-ed25519 AAAA\n"
        "not-a-valid line\n"
        "host.example.org ssh-ed25519 !!!notbase64!!!\n")
    session = session_for(paths)
    assert session.target("alpha").runner.run(["whoami"]).stdout.strip() == cluster.user
    session.close()
    user_known_hosts.write_text(user_known_hosts.read_text() + f"@revoked {cluster.known_hosts_line()}\n")
    with pytest.raises(HostKeyRevoked) as info:
        session_for(paths, ScriptedPrompter(trust=True)).target("alpha").runner.connect()
    assert "revoked" in info.value.message and cluster.host_key_fingerprint in info.value.message


def test_a_known_server_switching_key_type_is_refused_until_replaced(testbed, tmp_path, home):
    cluster = testbed.clusters["password"]
    config = tmp_path / "cfg"
    paths = make_config(config, testbed, ["password"])
    prompter = ScriptedPrompter(answer=lambda request: cluster.password, trust=True)
    cluster.rotate_host_key("ecdsa")
    try:
        with pytest.raises(HostKeyTypeChanged) as info:
            session_for(paths, prompter).target("password").runner.connect()
        assert "ssh-ed25519" in info.value.message and "ecdsa" in info.value.message
        assert prompter.host_keys_seen == [], "a different key type must never be offered as a new server"
        silent = run_cli("cluster", "trust", "password", "--yes", config=config, home=home)
        assert silent.returncode == 1 and "cluster trust password --replace" in silent.stderr, silent.stderr  # T24
        replaced = run_cli("cluster", "trust", "password", "--yes", "--replace", config=config, home=home)
        assert replaced.returncode == 0, replaced.stderr
        assert "replaced" in replaced.stdout and cluster.host_key_fingerprint in replaced.stdout
        session = session_for(paths, prompter)
        session.target("password").runner.connect()
        session.close()
    finally:
        cluster.rotate_host_key("ed25519")


def test_a_jump_host_whose_key_changed_is_refused_naming_that_hop(testbed, tmp_path, home):
    alpha, beta = testbed.clusters["alpha"], testbed.clusters["beta"]
    config, paths = behind_alpha(tmp_path, testbed, home)
    alpha.rotate_host_key("ed25519")
    try:
        marks = Marks(alpha, beta)
        prompter = ScriptedPrompter(trust=True)
        with pytest.raises(HostKeyChanged) as info:
            session_for(paths, prompter).target("beta").runner.connect()
        assert not isinstance(info.value, HostKeyTypeChanged)
        assert f"port {alpha.port}" in info.value.message and f"port {beta.port}" not in info.value.message
        assert openssh_fingerprint(alpha) in info.value.message and "has changed" in info.value.message
        assert prompter.host_keys_seen == [], "a changed key must never be offered for trust"
        assert not marks.logged_in_to_jump() and not marks.reached_target()
        said = openssh_refuses(alpha, [paths.known_hosts_file], testbed.client_key)
        assert "IDENTIFICATION HAS CHANGED" in said and fingerprint_in(said) in info.value.message
        listed = run_cli("env", "list", "beta", config=config, home=home)
        assert listed.returncode == 1 and f"port {alpha.port}" in listed.stderr and "changed" in listed.stderr
        assert "Traceback" not in listed.stderr
        silent = run_cli("cluster", "trust", "beta", "--yes", config=config, home=home)
        assert silent.returncode == 1 and f"port {alpha.port}" in silent.stderr
        assert not marks.logged_in_to_jump() and not marks.reached_target()
        replaced = run_cli("cluster", "trust", "beta", "--yes", "--replace", config=config, home=home)
        assert replaced.returncode == 0, replaced.stderr
        hops = [line for line in replaced.stdout.splitlines() if "(port " in line and "): " in line]
        assert f"port {alpha.port}): replaced" in hops[0] and openssh_fingerprint(alpha) in hops[0]
        assert f"port {beta.port}): already trusted" in hops[1]
        session = session_for(paths, prompter)
        session.target("beta").runner.connect()
        session.close()
    finally:
        alpha.rotate_host_key("ed25519")


def test_a_revoked_jump_host_key_is_refused_even_with_replace(testbed, tmp_path, home):
    alpha, beta = testbed.clusters["alpha"], testbed.clusters["beta"]
    config, paths = behind_alpha(tmp_path, testbed, home)
    user_known_hosts = home / ".ssh" / "known_hosts"
    user_known_hosts.write_text(f"@revoked {alpha.known_hosts_line()}\n")
    marks = Marks(alpha, beta)
    with pytest.raises(HostKeyRevoked) as info:
        session_for(paths, ScriptedPrompter(trust=True)).target("beta").runner.connect()
    assert f"port {alpha.port}" in info.value.message and openssh_fingerprint(alpha) in info.value.message
    assert "revoked" in info.value.message and str(user_known_hosts) in info.value.message
    assert "REVOKED HOST KEY" in openssh_refuses(alpha, [user_known_hosts, paths.known_hosts_file],
                                                 testbed.client_key)
    forced = run_cli("cluster", "trust", "beta", "--yes", "--replace", config=config, home=home)
    assert forced.returncode == 1 and "revoked" in forced.stderr and f"port {alpha.port}" in forced.stderr
    assert not marks.logged_in_to_jump() and not marks.reached_target()


def test_a_jump_host_switching_key_type_is_refused_until_replaced(testbed, tmp_path, home):
    alpha, beta = testbed.clusters["alpha"], testbed.clusters["beta"]
    config, paths = behind_alpha(tmp_path, testbed, home)
    alpha.rotate_host_key("ecdsa")
    try:
        marks = Marks(alpha, beta)
        prompter = ScriptedPrompter(trust=True)
        with pytest.raises(HostKeyTypeChanged) as info:
            session_for(paths, prompter).target("beta").runner.connect()
        message = info.value.message
        assert f"port {alpha.port}" in message and "known with a ssh-ed25519 key" in message
        assert "ecdsa-sha2-nistp256" in message and openssh_fingerprint(alpha) in message
        assert prompter.host_keys_seen == [], "a different key type must never be offered as a new server"
        assert not marks.logged_in_to_jump() and not marks.reached_target()
        said = openssh_refuses(alpha, [paths.known_hosts_file], testbed.client_key)
        assert "IDENTIFICATION HAS CHANGED" in said and fingerprint_in(said) in message
        silent = run_cli("cluster", "trust", "beta", "--yes", config=config, home=home)
        assert silent.returncode == 1 and "--replace" in silent.stderr and f"port {alpha.port}" in silent.stderr
        replaced = run_cli("cluster", "trust", "beta", "--yes", "--replace", config=config, home=home)
        assert replaced.returncode == 0, replaced.stderr
        hops = [line for line in replaced.stdout.splitlines() if "(port " in line and "): " in line]
        assert f"port {alpha.port}): replaced (ecdsa-sha2-nistp256 {openssh_fingerprint(alpha)})" in hops[0]
        assert f"port {beta.port}): already trusted" in hops[1]
        session = session_for(paths, prompter)
        session.target("beta").runner.connect()
        session.close()
    finally:
        alpha.rotate_host_key("ed25519")


def test_a_changed_host_key_names_the_command_that_replaces_it_and_that_command_works(testbed, tmp_path, home):
    """User trial: a changed host key's hint said "remove the old entry from that file", not the command that does
    it. The hint now gives `envdesk cluster trust NAME --replace` with the cluster's name; run as given (with
    --yes, there being no terminal here), it records the key the real sshd serves (ssh-keygen's fingerprint is
    the referee) and the cluster is reached again."""
    import shlex

    alpha = testbed.clusters["alpha"]
    config = tmp_path / "cfg"
    make_config(config, testbed, ["alpha"])
    alpha.rotate_host_key("ed25519")
    try:
        listed = run_cli("env", "list", "alpha", config=config, home=home)
        assert listed.returncode == 1 and openssh_fingerprint(alpha) in listed.stderr, listed.stderr
        given = re.search(r"envdesk (cluster trust \S+ --replace)", listed.stderr)
        assert given and given.group(1) == "cluster trust alpha --replace", listed.stderr
        replaced = run_cli(*shlex.split(given.group(1)), "--yes", config=config, home=home)
        assert replaced.returncode == 0, replaced.stderr
        assert f"replaced (ssh-ed25519 {openssh_fingerprint(alpha)})" in replaced.stdout, replaced.stdout
        again = run_cli("env", "list", "alpha", config=config, home=home)
        assert again.returncode == 0, again.stderr
    finally:
        alpha.rotate_host_key("ed25519")
