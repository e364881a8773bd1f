"""A host certificate signed by a certificate authority that a known_hosts `@cert-authority` line trusts for the
host is known, as OpenSSH knows it (user trial T28, MED-4): sites that use a CA publish only the CA."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from envdesk.backend.errors import HostKeyRevoked, HostKeyUnknown
from envdesk.terminal import describe_new_server
from envdesk_fixtures import ScriptedPrompter, make_config, session_for

CASES = {  # ssh-keygen's signing options for the host's certificate
    "for its address": ["-h", "-n", "127.0.0.1"],
    "for any host (no principals)": ["-h"],
    "for another host": ["-h", "-n", "login.other.example"],
    "expired": ["-h", "-n", "127.0.0.1", "-V", "20200101:20200102"],
    "not valid yet": ["-h", "-n", "127.0.0.1", "-V", "+3650d:+3651d"],
    "a user certificate": ["-n", "127.0.0.1"],
    "for a pattern of addresses": ["-h", "-n", "127.0.0.*"],
    "by an authority not trusted for it": ["-h", "-n", "127.0.0.1"],
}
ACCEPTED_BY_OPENSSH = {"for its address", "for any host (no principals)"}
"""Where this test expects the referee to log in: a check that the cases do show both answers."""


def _signed_host_key(cluster, ca: Path, folder: Path, options: list[str]) -> Path:
    """A certificate for the cluster's host key, signed by `ca` with ssh-keygen's `options`."""
    public = folder / "host_key.pub"
    public.write_text(cluster.host_key_path.with_name(cluster.host_key_path.name + ".pub").read_text())
    subprocess.run(["ssh-keygen", "-q", "-s", str(ca), "-I", "host-cert", *options, str(public)], check=True,
                   capture_output=True, timeout=60)
    return folder / "host_key-cert.pub"


def _ssh_config(home: Path, testbed, port: int, user: str) -> Path:
    """Host t: the twin sshd, with the test bed's client key; the one known_hosts file is the test's."""
    ssh = home / ".ssh"
    key = ssh / "id_ed25519"
    key.write_bytes(testbed.client_key.read_bytes())
    key.chmod(0o600)
    (ssh / "config").write_text(
        f"Host t\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
        f"  BatchMode yes\n  StrictHostKeyChecking yes\n  GlobalKnownHostsFile /dev/null\n"
        f"  UserKnownHostsFile {ssh / 'known_hosts'}\n")
    return ssh / "config"


@pytest.mark.parametrize("case", list(CASES))
def test_a_host_certificate_is_trusted_exactly_where_openssh_trusts_it(testbed, tmp_path, home, case):
    """The referee is a real `ssh -o BatchMode=yes` with the same known_hosts file, which holds only the CA:
    where it logs in without a word, EnvDesk connects without asking; where it refuses, EnvDesk asks about the
    plain key and says why the certificate does not vouch for the host."""
    alpha = testbed.clusters["alpha"]
    ca = tmp_path / "ca"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ca)], check=True, timeout=60)
    signer = ca
    if case == "by an authority not trusted for it":
        signer = tmp_path / "other_ca"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(signer)], check=True, timeout=60)
    certificate = _signed_host_key(alpha, signer, tmp_path, CASES[case])
    twin = alpha.twin("certified", tmp_path / "sshd", f"HostCertificate {certificate}\n")
    try:
        (home / ".ssh").mkdir()
        (home / ".ssh" / "known_hosts").write_text(
            f"@cert-authority [127.0.0.1]:*,*.example {ca.with_suffix('.pub').read_text()}")
        config = _ssh_config(home, testbed, twin.port, alpha.user)
        openssh = subprocess.run(["ssh", "-F", str(config), "t", "true"], capture_output=True, text=True,
                                 stdin=subprocess.DEVNULL, timeout=120)
        paths = make_config(tmp_path / "cfg", testbed, ["alpha"], trusted=False,
                            alpha={"host": "t", "port": None, "user": None, "identity_file": None})
        prompter = ScriptedPrompter(trust=False)
        session = session_for(paths, prompter)
        try:
            session.target("alpha").runner.connect()
            refused = None
        except HostKeyUnknown as unknown:
            refused = unknown
        finally:
            session.close()
    finally:
        twin.stop()
    assert (openssh.returncode == 0) == (case in ACCEPTED_BY_OPENSSH), openssh.stderr
    if openssh.returncode == 0:
        assert refused is None and prompter.host_keys_seen == [], refused
    else:
        assert "Host key verification failed" in openssh.stderr, openssh.stderr
        assert refused is not None and "trusts a certificate authority for this host" in refused.message
        assert "ssh-keygen -L" in refused.message
        # the question asked (the command line's words) says so too: T28 was asked to compare a fingerprint that a
        # site using a CA never publishes
        asked = describe_new_server("alpha", prompter.host_keys_seen[0])
        assert "trusts a certificate authority for this host" in asked and "ssh-keyscan -c" in asked, asked


def test_where_the_server_presents_no_certificate_the_unknown_key_says_so(testbed, tmp_path, home):
    """A known_hosts file that trusts a CA for the host, a server without a certificate: ssh refuses (BatchMode),
    EnvDesk asks about the plain key and says that no certificate came."""
    alpha = testbed.clusters["alpha"]
    ca = tmp_path / "ca"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ca)], check=True, timeout=60)
    (home / ".ssh").mkdir()
    (home / ".ssh" / "known_hosts").write_text(f"@cert-authority [127.0.0.1]:* {ca.with_suffix('.pub').read_text()}")
    config = _ssh_config(home, testbed, alpha.port, alpha.user)
    openssh = subprocess.run(["ssh", "-F", str(config), "t", "true"], capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, timeout=120)
    assert "Host key verification failed" in openssh.stderr, openssh.stderr
    paths = make_config(tmp_path / "cfg", testbed, ["alpha"], trusted=False,
                        alpha={"host": "t", "port": None, "user": None, "identity_file": None})
    session = session_for(paths, ScriptedPrompter(trust=False))
    with pytest.raises(HostKeyUnknown, match="presented no certificate"):
        try:
            session.target("alpha").runner.connect()
        finally:
            session.close()


def test_a_certificate_from_a_revoked_authority_is_refused_as_ssh_refuses_it(testbed, tmp_path, home):
    """A `@revoked` line for the authority itself: ssh refuses the host outright; EnvDesk refuses without asking."""
    alpha = testbed.clusters["alpha"]
    ca = tmp_path / "ca"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ca)], check=True, timeout=60)
    certificate = _signed_host_key(alpha, ca, tmp_path, CASES["for its address"])
    twin = alpha.twin("certified", tmp_path / "sshd", f"HostCertificate {certificate}\n")
    try:
        (home / ".ssh").mkdir()
        authority = ca.with_suffix(".pub").read_text()
        (home / ".ssh" / "known_hosts").write_text(f"@cert-authority [127.0.0.1]:* {authority}@revoked * {authority}")
        config = _ssh_config(home, testbed, twin.port, alpha.user)
        openssh = subprocess.run(["ssh", "-F", str(config), "t", "true"], capture_output=True, text=True,
                                 stdin=subprocess.DEVNULL, timeout=120)
        assert openssh.returncode != 0 and "REVOKED" in openssh.stderr.upper(), openssh.stderr
        paths = make_config(tmp_path / "cfg", testbed, ["alpha"], trusted=False,
                            alpha={"host": "t", "port": None, "user": None, "identity_file": None})
        prompter = ScriptedPrompter(trust=True)
        session = session_for(paths, prompter)
        with pytest.raises(HostKeyRevoked, match="certificate authority"):
            try:
                session.target("alpha").runner.connect()
            finally:
                session.close()
        assert prompter.host_keys_seen == []
    finally:
        twin.stop()
