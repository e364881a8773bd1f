"""Logging in with OpenSSH user certificates (ssh-keygen -s; a site's sshproxy, as at NERSC) on a cluster whose sshd
takes only certificates (TrustedUserCAKeys, AuthorizedKeysFile none). The referee is OpenSSH's own `ssh`, logging in
with the same ~/.ssh/config, key files and ssh-agent, and sshd's log for why a certificate was refused."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from envdesk.backend.errors import AuthenticationFailed
from envdesk_fixtures import envdesk_command, running_ssh_agent
from test_ssh_identities import add_to_agent, envdesk_logs_in, openssh_logs_in, write_ssh_config


@pytest.fixture
def authority(tmp_path) -> Path:
    """The site's certificate authority: a key pair whose public half the cluster trusts."""
    ca = tmp_path / "ca" / "user_ca"
    ca.parent.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ca)], check=True)
    return ca


@pytest.fixture
def certs_only(testbed, tmp_path, authority):
    """beta's user and home behind an sshd that takes only certificates signed by `authority`."""
    cluster = testbed.clusters["beta"].twin("certs", tmp_path / "certs-sshd",
                                            f"TrustedUserCAKeys {authority}.pub\nAuthorizedKeysFile none\n")
    yield cluster
    cluster.stop()


def new_key(path: Path, key_type: str) -> Path:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", key_type, "-N", "", "-f", str(path)], check=True)
    return path


def certify(authority: Path, key: Path, principal: str, validity: str = "+1h", out: Path | None = None) -> Path:
    """A user certificate for `key` (KEY-cert.pub, or `out`) as a site's CA signs one: ssh-keygen -s."""
    subprocess.run(["ssh-keygen", "-q", "-s", str(authority), "-I", "t28-test", *(["-n", principal] if principal
                    else []), "-V", validity, f"{key}.pub"], check=True)  # no principal: one naming no one
    made = Path(f"{key}-cert.pub")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        made.rename(out)
        return out
    return made


@pytest.mark.parametrize("key_type", ["ed25519", "rsa"])
@pytest.mark.parametrize("agent_holds", ["key and certificate", "key only"])
@pytest.mark.parametrize("identities_only", [True, False])
def test_a_certificate_with_its_key_in_the_agent_logs_in_as_openssh_does(certs_only, authority, tmp_path, home,
                                                                         monkeypatch, key_type, agent_holds,
                                                                         identities_only):
    """T28 HIGH-1/HIGH-2: with the key in the ssh-agent, its certificate was never offered (the agent's plain key
    stood for the key file, the agent's certificate was left out under IdentitiesOnly, and paramiko offered an RSA
    certificate from the agent with the plain key's blob), so a certificate-only cluster refused the login that
    OpenSSH makes. `ssh-add KEY` loads the certificate beside it too; one added before the certificate was made
    holds the key only, and the certificate file is offered signed by the agent's key."""
    key = new_key(home / ".ssh" / f"certkey_{key_type}", key_type)
    with running_ssh_agent(tmp_path / "agent.sock") as env:
        if agent_holds == "key only":
            add_to_agent(env, key)
        certify(authority, key, certs_only.user)
        if agent_holds == "key and certificate":
            add_to_agent(env, key)
        listed = subprocess.run(["ssh-add", "-l"], env=env, capture_output=True, text=True, check=True).stdout
        assert listed.count("-CERT)") == (agent_holds == "key and certificate"), listed
        monkeypatch.setenv("SSH_AUTH_SOCK", env["SSH_AUTH_SOCK"])
        config = write_ssh_config(home, certs_only, f"  IdentityFile {key}\n" +
                                  ("  IdentitiesOnly yes\n" if identities_only else ""))
        referee = openssh_logs_in(config, certs_only, env, tmp_path)
        assert referee.returncode == 0, referee.stderr
        assert envdesk_logs_in(_as_beta(certs_only), tmp_path / "envdesk") == certs_only.user


def _as_beta(cluster):
    """A test bed stand-in whose `beta` is `cluster` (envdesk_logs_in configures the Host alias `bed` as beta)."""
    class Bed:
        clusters = {"beta": cluster}
    return Bed()


@pytest.mark.parametrize("with_agent", [False, True])
def test_a_certificate_file_set_in_the_ssh_config_logs_in_as_openssh_does(certs_only, authority, tmp_path, home,
                                                                         monkeypatch, with_agent):
    """T28 MED-3: `CertificateFile ~/.ssh/certs/site.pub` (a certificate kept apart from its key) was ignored, so
    the cluster refused the key alone. OpenSSH offers it, signed by the key's file or the agent's copy of the key;
    without that line neither logs in."""
    key = new_key(home / ".ssh" / "sitekey", "ed25519")
    cert = certify(authority, key, certs_only.user, out=home / ".ssh" / "certs" / "site.pub")
    with running_ssh_agent(tmp_path / "agent.sock") as env:
        if with_agent:
            add_to_agent(env, key)
            monkeypatch.setenv("SSH_AUTH_SOCK", env["SSH_AUTH_SOCK"])
        else:
            env.pop("SSH_AUTH_SOCK")
        for certificate_line, logs_in in (("", False), (f"  CertificateFile {cert}\n", True)):
            config = write_ssh_config(home, certs_only, f"  IdentityFile {key}\n  IdentitiesOnly yes\n"
                                      + certificate_line)
            assert (openssh_logs_in(config, certs_only, env, tmp_path).returncode == 0) is logs_in
            if logs_in:
                assert envdesk_logs_in(_as_beta(certs_only), tmp_path / "with") == certs_only.user
            else:
                with pytest.raises(AuthenticationFailed):
                    envdesk_logs_in(_as_beta(certs_only), tmp_path / "without")


def valid_to(cert: Path) -> str:
    """When the certificate stops working, as `ssh-keygen -L` prints it (in UTC), in EnvDesk's words."""
    shown = subprocess.run(["ssh-keygen", "-L", "-f", str(cert)], capture_output=True, text=True, check=True,
                           env={**os.environ, "TZ": "UTC"}).stdout
    end = shown.split("Valid: from ", 1)[1].split(" to ", 1)[1].split()[0]  # 2020-01-02T00:00:00
    return end.replace("T", " ")[:16] + " UTC"


@pytest.mark.parametrize("problem", ["expired", "another user", "no user"])
def test_a_refused_certificate_is_named_with_why_instead_of_authorized_keys(certs_only, authority, tmp_path, home,
                                                                           problem):
    """T28 MED-5: an expired certificate, or one for another user, got 'add the key's public half to
    authorized_keys', which a certificate-only cluster does not read. EnvDesk names the certificate and why (the
    date it expired, the user it is for) and says to get a new one. Referees: OpenSSH is refused too, and sshd's
    log gives the same reason; the date is the one `ssh-keygen -L` prints."""
    key = new_key(home / ".ssh" / "id_ed25519", "ed25519")
    cert = certify(authority, key, {"another user": "someone-else", "no user": ""}.get(problem, certs_only.user),
                   "20200101:20200102" if problem == "expired" else "+1h")
    config = write_ssh_config(home, certs_only, f"  IdentityFile {key}\n")
    env = {name: value for name, value in os.environ.items() if name != "SSH_AUTH_SOCK"}
    assert openssh_logs_in(config, certs_only, env, tmp_path).returncode != 0
    assert {"expired": "expired", "another user": "not a listed principal",
            "no user": "lacks principal list"}[problem] in certs_only.log_text()
    with pytest.raises(AuthenticationFailed) as refused:
        envdesk_logs_in(_as_beta(certs_only), tmp_path / "envdesk")
    said = str(refused.value)
    assert f"certificate {cert}" in said and "authorized_keys" not in said, said
    if problem == "expired":
        assert f"expired on {valid_to(cert)}" in said and "sshproxy" in said, said
    elif problem == "another user":
        assert f"is not for the user {certs_only.user!r}" in said and "someone-else" in said, said
    else:  # R21: taken as good for any user, and the authority blamed
        assert f"is not for the user {certs_only.user!r} (it names no user)" in said, said


def principals_shown(cert: Path) -> list[str]:
    """The principals `ssh-keygen -L` prints for the certificate."""
    shown = subprocess.run(["ssh-keygen", "-L", "-f", str(cert)], capture_output=True, text=True, check=True).stdout
    listed = shown.split("Principals:", 1)[1].split("Critical Options:", 1)[0]
    return listed.split()


def test_key_status_shows_a_keys_certificate_with_whom_it_is_for_and_until_when(authority, tmp_path):
    """T28 MED-5: `envdesk key status` listed a key without the certificate beside it, so nothing said the
    certificate had expired. It shows the certificate's principals and end (expired ones said so); referee:
    `ssh-keygen -L` of the same file."""
    home = tmp_path / "home"
    fresh = new_key(home / ".ssh" / "nersc", "ed25519")
    old = new_key(home / ".ssh" / "old_site", "ed25519")
    fresh_cert = certify(authority, fresh, "alice,bob")
    old_cert = certify(authority, old, "alice", "20200101:20200102")
    env = {**os.environ, "HOME": str(home), "USERPROFILE": str(home)}
    env.pop("SSH_AUTH_SOCK", None)
    status = subprocess.run([*envdesk_command(), "--config-dir", str(tmp_path / "config"), "key", "status"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert status.returncode == 0, status.stderr
    assert principals_shown(fresh_cert) == ["alice", "bob"]
    assert (f"certificate {fresh_cert}: for alice, bob, valid until {valid_to(fresh_cert)}" in status.stdout
            and f"certificate {old_cert}: for alice, expired on {valid_to(old_cert)}" in status.stdout), status.stdout
    listed = subprocess.run([*envdesk_command(), "--config-dir", str(tmp_path / "config"), "key", "status",
                             "--json"], capture_output=True, text=True, timeout=120, env=env)
    shown = json.loads(listed.stdout)["certificates"]
    assert shown[str(old)]["expired"] and not shown[str(fresh)]["expired"], shown
    assert shown[str(fresh)]["principals"] == principals_shown(fresh_cert)
    assert shown[str(fresh)]["valid_until"].replace("T", " ")[:16] + " UTC" == valid_to(fresh_cert)


def test_an_agent_certificate_identities_only_leaves_out_is_named_with_how_to_offer_it(certs_only, authority,
                                                                                      tmp_path, home, monkeypatch):
    """With IdentitiesOnly, an agent's certificate whose file is not beside the key (deleted, or only ever in the
    agent) is not offered, by OpenSSH either; EnvDesk said to add the key to authorized_keys. It now says the
    agent's certificate was left out and how to offer it, and following that (the line `ssh-add -L` prints, saved
    as KEY-cert.pub) both OpenSSH and EnvDesk log in."""
    key = new_key(home / ".ssh" / "site_key", "ed25519")
    cert = certify(authority, key, certs_only.user)
    with running_ssh_agent(tmp_path / "agent.sock") as env:
        add_to_agent(env, key)
        cert.unlink()
        monkeypatch.setenv("SSH_AUTH_SOCK", env["SSH_AUTH_SOCK"])
        config = write_ssh_config(home, certs_only, f"  IdentityFile {key}\n  IdentitiesOnly yes\n")
        assert openssh_logs_in(config, certs_only, env, tmp_path).returncode != 0
        with pytest.raises(AuthenticationFailed) as refused:
            envdesk_logs_in(_as_beta(certs_only), tmp_path / "before")
        said = str(refused.value)
        assert f"certificate for the key {key} was not offered" in said and f"{key}-cert.pub" in said, said
        assert "authorized_keys" not in said, said
        held = subprocess.run(["ssh-add", "-L"], env=env, capture_output=True, text=True, check=True).stdout
        cert.write_text(next(line for line in held.splitlines() if "-cert-v01@openssh.com " in line) + "\n")
        assert openssh_logs_in(config, certs_only, env, tmp_path).returncode == 0
        assert envdesk_logs_in(_as_beta(certs_only), tmp_path / "after") == certs_only.user


def test_every_certificate_file_line_counts_in_openssh_order(tmp_path, monkeypatch):
    """OpenSSH takes every CertificateFile that applies to a host (several lines, several blocks, an included
    file), in order and once each; paramiko keeps only a keyword's first value. Referee: `ssh -G`."""
    from envdesk.backend.config import ClusterProfile
    from envdesk.backend.ssh_config import load_ssh_config, plan_connection
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "site.conf").write_text("CertificateFile ~/.ssh/certs/included.pub\n")
    config = home / ".ssh" / "config"
    config.write_text("Host bed\n  HostName 127.0.0.1\n  CertificateFile ~/.ssh/certs/site.pub\n"
                      "  Include site.conf\n  CertificateFile /etc/site/second.pub\n"
                      "Host *\n  CertificateFile /etc/site/any.pub\n  CertificateFile ~/.ssh/certs/site.pub\n")
    shown = subprocess.run(["ssh", "-G", "-F", str(config), "bed"], capture_output=True, text=True, check=True,
                           env={**os.environ, "HOME": str(home)}, stdin=subprocess.DEVNULL).stdout
    lines = shown.replace("certificatefile", "\ncertificatefile").splitlines()  # 9.2 ends the last with no newline
    openssh = [value.replace("~", str(home), 1) for keyword, _, value in (line.partition(" ") for line in lines)
               if keyword == "certificatefile"]
    assert len(openssh) == 4, shown
    monkeypatch.setenv("HOME", str(home))
    hop = plan_connection(ClusterProfile(name="bed", host="bed"), load_ssh_config(config)).target
    assert list(hop.certificate_files) == openssh


def test_a_certificate_beside_a_key_it_does_not_certify_is_not_offered(certs_only, authority, tmp_path, home,
                                                                       monkeypatch):
    """R21: KEY-cert.pub was offered with KEY whatever key it certified; OpenSSH skips a certificate that does not
    match its key, so the login failed there as here, but EnvDesk blamed the authority that signed it. Referees:
    OpenSSH refuses this login too; sshd's log shows no certificate offered by EnvDesk."""
    key = new_key(home / ".ssh" / "mykey", "ed25519")
    other = new_key(tmp_path / "other" / "otherkey", "ed25519")
    certify(authority, other, certs_only.user, out=Path(f"{key}-cert.pub"))  # another key's, beside this one
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    config = write_ssh_config(home, certs_only, f"  IdentityFile {key}\n  IdentitiesOnly yes\n")
    referee = openssh_logs_in(config, certs_only, {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"},
                              tmp_path)
    assert referee.returncode != 0, referee.stderr
    with pytest.raises(AuthenticationFailed) as refused:
        envdesk_logs_in(_as_beta(certs_only), tmp_path / "envdesk")
    said = str(refused.value) + " " + refused.value.hint
    assert "trust the authority" not in said and "-cert.pub" not in said, said
