"""Host key decisions: known, unknown, changed; trusted keys go to EnvDesk's own file only."""
from __future__ import annotations

import subprocess
from pathlib import Path

import paramiko
import pytest

from envdesk.backend.errors import HostKeyChanged, HostKeyUnknown
from envdesk.backend.hostkeys import HostKeyStore, ServerIdentity, fingerprint


def new_key(tmp_path, name):
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return paramiko.PKey.from_path(str(path)), path


def test_fingerprint_matches_openssh(tmp_path):
    key, path = new_key(tmp_path, "k")
    printed = subprocess.run(["ssh-keygen", "-lf", f"{path}.pub"], capture_output=True, text=True, check=True)
    assert fingerprint(key) == printed.stdout.split()[1]


def test_unknown_then_trusted_then_changed(tmp_path):
    user_file = tmp_path / "user_known_hosts"
    user_file.write_text("")
    store = HostKeyStore(tmp_path / "app_known_hosts", user_file)
    key, _ = new_key(tmp_path, "a")
    identity = ServerIdentity("127.0.0.1", 2222, key)
    with pytest.raises(HostKeyUnknown) as info:
        store.verify(identity)
    assert identity.fingerprint in info.value.message
    store.trust(identity)
    store.verify(identity)
    assert (tmp_path / "app_known_hosts").read_text().startswith("[127.0.0.1]:2222 ssh-ed25519 ")
    assert user_file.read_text() == ""
    other, _ = new_key(tmp_path, "b")
    with pytest.raises(HostKeyChanged) as changed:
        store.verify(ServerIdentity("127.0.0.1", 2222, other))
    assert "app_known_hosts" in changed.value.source


def known_to_openssh(host: str, known_hosts: Path) -> bool:
    """Whether OpenSSH finds an entry for `host` (as ssh names it: [host]:port off port 22) in a known_hosts file."""
    found = subprocess.run(["ssh-keygen", "-F", host, "-f", str(known_hosts)], capture_output=True, text=True)
    assert found.returncode in (0, 1), found.stderr
    return found.returncode == 0


def test_hashed_entries_in_user_known_hosts_are_honoured(tmp_path):
    """The entry is hashed by OpenSSH (`ssh-keygen -H`), and `ssh-keygen -F` is the referee for which host and
    port it is found under: EnvDesk knows the key exactly there, and only there."""
    key, _ = new_key(tmp_path, "a")
    user_file = tmp_path / "known_hosts"
    user_file.write_text(f"[10.1.2.3]:2200 ssh-ed25519 {key.get_base64()}\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(user_file)], check=True, capture_output=True)
    assert user_file.read_text().startswith("|1|") and "10.1.2.3" not in user_file.read_text()
    assert known_to_openssh("[10.1.2.3]:2200", user_file)
    assert not known_to_openssh("10.1.2.3", user_file)  # port 22
    store = HostKeyStore(tmp_path / "app", user_file)
    store.verify(ServerIdentity("10.1.2.3", 2200, key))
    other, _ = new_key(tmp_path, "b")
    with pytest.raises(HostKeyChanged):
        store.verify(ServerIdentity("10.1.2.3", 2200, other))
    with pytest.raises(HostKeyUnknown):
        store.verify(ServerIdentity("10.1.2.3", 22, key))


def test_user_files_that_are_not_ordinary_files_hold_no_key_and_a_huge_one_is_refused(tmp_path, monkeypatch):
    """UserKnownHostsFile may name /dev/null (common) or a pipe: read as holding no key, without waiting on the
    pipe (OpenSSH would wait forever); a file larger than any known_hosts file is refused in plain words, since its
    revoked lines could not be checked."""
    import os

    from envdesk.backend import hostkeys
    from envdesk.backend.errors import ConfigError

    key, _ = new_key(tmp_path, "a")
    identity = ServerIdentity("10.1.2.3", 22, key, "alias")
    files = [Path(os.devnull), tmp_path / "folder", tmp_path / "missing"]
    (tmp_path / "folder").mkdir()
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe")
        files.append(tmp_path / "pipe")
    store = HostKeyStore(tmp_path / "app").reading(files)
    with pytest.raises(HostKeyUnknown):
        store.verify(identity)
    store.trust(identity)
    assert (tmp_path / "app").read_text().startswith("alias ssh-ed25519 ")
    store.verify(identity)
    big = tmp_path / "big"
    big.write_text(f"alias ssh-ed25519 {key.get_base64()}\n")
    monkeypatch.setattr(hostkeys, "MAX_KNOWN_HOSTS_BYTES", 10)
    with pytest.raises(ConfigError, match="larger"):
        HostKeyStore(tmp_path / "app").reading([big]).verify(identity)
