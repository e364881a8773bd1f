"""Host keys as OpenSSH treats them, tried the way an attacker or an unlucky user would meet them:
jump hosts trusted hop by hop from the command line, @revoked and @cert-authority lines in
~/.ssh/known_hosts, and a known server that switches to another key type."""
from __future__ import annotations

import pytest

from envdesk.backend.errors import HostKeyRevoked, HostKeyTypeChanged
from envdesk_fixtures import ScriptedPrompter, make_config, run_cli, session_for


def test_a_cluster_behind_an_unknown_jump_host_is_trusted_hop_by_hop_from_the_cli(testbed, tmp_path, home):
    alpha, beta = testbed.clusters["alpha"], testbed.clusters["beta"]
    config = tmp_path / "cfg"
    make_config(config, testbed, ["beta"], trusted=False,
                beta={"jump": [f"{alpha.user}@{alpha.host}:{alpha.port}"]})
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_ed25519").write_bytes(testbed.client_key.read_bytes())
    (home / ".ssh" / "id_ed25519").chmod(0o600)
    refused = run_cli("env", "list", "beta", config=config, home=home)
    assert refused.returncode == 1 and alpha.host_key_fingerprint in refused.stderr
    trusted = run_cli("cluster", "trust", "beta", "--yes", config=config, home=home)
    assert trusted.returncode == 0, trusted.stderr
    lines = [line for line in trusted.stdout.splitlines() if ": trusted (" in line]
    assert [str(alpha.port) in lines[0], str(beta.port) in lines[1]] == [True, True], trusted.stdout
    assert alpha.host_key_fingerprint in lines[0] and beta.host_key_fingerprint in lines[1]
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
        assert silent.returncode == 1 and "--replace" in silent.stderr
        replaced = run_cli("cluster", "trust", "password", "--yes", "--replace", config=config, home=home)
        assert replaced.returncode == 0, replaced.stderr
        assert "replaced" in replaced.stdout and cluster.host_key_fingerprint in replaced.stdout
        session = session_for(paths, prompter)
        session.target("password").runner.connect()
        session.close()
    finally:
        cluster.rotate_host_key("ed25519")
