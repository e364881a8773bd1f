"""OpenSSH host certificates: a server's key signed by a certificate authority its site trusts, checked as OpenSSH's
ssh checks one against a known_hosts `@cert-authority` line (sshconnect.c check_host_key and check_host_cert)."""
from __future__ import annotations

import time

from .ssh_lib import paramiko

from .ssh_certificates import CERT_SUFFIX, Certificate, read_certificate

HOST_CERTIFICATE = 2
"""The certificate type of a host's certificate (a user's is 1)."""
CA_SIGNATURES = frozenset({"ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
                           "rsa-sha2-512", "rsa-sha2-256", "sk-ssh-ed25519@openssh.com",
                           "sk-ecdsa-sha2-nistp256@openssh.com"})
"""How a certificate authority may sign, as OpenSSH's default CASignatureAlgorithms allow (no SHA-1 ssh-rsa)."""
CERTIFICATE_ALGORITHMS = tuple(f"{name}{CERT_SUFFIX}" for name in (
    "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "rsa-sha2-512",
    "rsa-sha2-256"))
"""The host key algorithms that present a certificate, which a server is asked for first where a known_hosts file
trusts a certificate authority for it (as OpenSSH's order_hostkeyalgs does)."""


def host_certificate(key: paramiko.PKey) -> Certificate | None:
    """The certificate a server presented as its host key (paramiko keeps it as the key's public blob); None for a
    plain key, or a certificate EnvDesk cannot read (then its plain key is what is checked, as OpenSSH falls back)."""
    blob = getattr(key, "public_blob", None)
    if blob is None or not str(blob.key_type).endswith(CERT_SUFFIX):
        return None
    return read_certificate(bytes(blob.key_blob))


def refusal(certificate: Certificate, name: str, now: float | None = None) -> str | None:
    """Why `certificate` does not vouch for the host called `name` (its HostKeyAlias, else its address), in
    OpenSSH's order; None when it does. Whether its authority is one trusted for the host is the caller's check."""
    moment = time.time() if now is None else now
    if not certificate.signed:
        return "its certificate authority's signature over it does not hold"
    if certificate.signature_algorithm not in CA_SIGNATURES:
        return f"it is signed with {certificate.signature_algorithm}, which OpenSSH no longer accepts for certificates"
    if certificate.cert_type != HOST_CERTIFICATE:
        return "it is not a host certificate"
    if certificate.not_yet_valid(moment):
        return f"it is not valid yet (from {certificate.starts})"
    if certificate.expired(moment):
        return f"it expired on {certificate.expires}"
    if certificate.principals and name not in certificate.principals:
        return f"it is for {', '.join(certificate.principals)}, not for {name}"
    if certificate.critical_options:
        return "it holds critical options, which a host certificate cannot have"
    return None
