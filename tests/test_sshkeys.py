"""Making an SSH key for a newcomer: ssh-keygen reads it, nothing is overwritten, a cluster lets it in.

Referees: ssh-keygen -y (the public key from the private file, with its passphrase) and -l (the
fingerprint); a real ssh-agent for the agent count; a test-bed sshd for the login.
"""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time

import pytest

from envdesk.backend import sshkeys
from envdesk.backend.errors import InvalidInput
from envdesk.backend.presets import get_preset
from envdesk.backend.secrets import keyring_problem, recall
from agent_fixtures import umask_set
from envdesk_fixtures import ScriptedPrompter, make_config, session_for

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


def keygen(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ssh-keygen", *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("passphrase", ["", "a long passphrase ✓"], ids=["no passphrase", "passphrase"])
def test_a_new_key_is_what_ssh_keygen_reads(home, passphrase):
    made = sshkeys.create_key(passphrase=passphrase, comment="me@laptop")
    assert made.path == home / ".ssh" / "id_ed25519" and made.public_path == home / ".ssh" / "id_ed25519.pub"
    assert made.public_path.read_text() == made.public_line + "\n"
    assert made.public_line.startswith("ssh-ed25519 ") and made.public_line.endswith(" me@laptop")
    derived = keygen("-y", "-P", passphrase, "-f", str(made.path))
    assert derived.returncode == 0, derived.stderr
    assert derived.stdout.split()[:2] == made.public_line.split()[:2]
    listed = keygen("-l", "-f", str(made.public_path))
    assert listed.stdout.split()[1] == made.fingerprint and listed.stdout.rstrip().endswith("(ED25519)")
    if passphrase:
        assert keygen("-y", "-P", "wrong", "-f", str(made.path)).returncode != 0, "the passphrase must lock the key"
        assert keygen("-y", "-P", "", "-f", str(made.path)).returncode != 0
    assert made.remembered is False


@posix_only
def test_modes_are_what_ssh_insists_on(home):
    with umask_set(0o077):  # a strict umask must not take the .pub's read bits away
        made = sshkeys.create_key()
    assert stat.S_IMODE(made.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(made.public_path.stat().st_mode) == 0o644
    assert stat.S_IMODE((home / ".ssh").stat().st_mode) == 0o700


@posix_only
def test_a_folder_the_user_names_keeps_its_mode(home, tmp_path):
    """R11: `key create --file` in a shared folder (sticky, everyone's) made it the user's alone, as if it were
    ~/.ssh; ssh-keygen, the referee, leaves a folder that is there as it is."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    made = sshkeys.create_key(path=shared / "mykey")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chmod(theirs, 0o1777)
    said = keygen("-q", "-t", "ed25519", "-N", "", "-f", str(theirs / "key"))
    assert said.returncode == 0, said.stderr
    assert stat.S_IMODE(shared.stat().st_mode) == stat.S_IMODE(theirs.stat().st_mode) == 0o1777
    assert stat.S_IMODE(made.path.stat().st_mode) == 0o600


@pytest.mark.parametrize("existing", ["id_ed25519", "id_ed25519.pub"])
def test_an_existing_file_is_never_replaced(home, existing):
    folder = home / ".ssh"
    folder.mkdir()
    (folder / existing).write_text("precious\n")
    with pytest.raises(InvalidInput) as info:
        sshkeys.create_key()
    assert "never replaces" in info.value.message and info.value.hint
    assert sorted(p.name for p in folder.iterdir()) == [existing], "nothing new may be left behind"
    assert (folder / existing).read_text() == "precious\n"


@posix_only
def test_a_dangling_link_is_not_written_through(home, tmp_path):
    folder = home / ".ssh"
    folder.mkdir()
    (folder / "id_ed25519").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InvalidInput):
        sshkeys.create_key()
    assert not (tmp_path / "elsewhere").exists()


def test_keys_in_the_ssh_folder_are_found(home):
    assert not sshkeys.find_keys().any, "an empty home has no key"
    folder = home / ".ssh"
    folder.mkdir()
    (folder / "id_notes.txt").write_text("not a key\n")
    (folder / "known_hosts").write_text("")
    assert not sshkeys.find_keys().any
    made = sshkeys.create_key(folder / "id_ed25519")
    found = sshkeys.find_keys()
    assert found.files == (made.path,) and found.any


def test_keys_named_as_people_name_them_are_found_as_ssh_keygen_reads_them(home):
    """T24: `key status` (README: 'lists the keys in ~/.ssh') left out ~/.ssh/cluster_key. What a private key is,
    is ssh-keygen's to say: -y gives its public half (or asks for its passphrase); anything else it refuses."""
    folder = home / ".ssh"
    folder.mkdir()
    for name, kind, passphrase in [("cluster_key", "ed25519", ""), ("narval", "ed25519", "secret words"),
                                   ("id_rsa_old", "rsa", ""), ("work-ecdsa", "ecdsa", "")]:
        made = keygen("-q", "-t", kind, "-N", passphrase, "-C", "", "-f", str(folder / name))
        assert made.returncode == 0, made.stderr
    keygen("-q", "-t", "rsa", "-m", "PEM", "-N", "", "-C", "", "-f", str(folder / "pem_rsa"))
    (folder / "config").write_text("Host *\n  IdentityFile ~/.ssh/cluster_key\n")
    (folder / "known_hosts").write_text((folder / "cluster_key.pub").read_text())
    (folder / "authorized_keys").write_text((folder / "narval.pub").read_text())
    (folder / "notes.txt").write_text("-----BEGIN CERTIFICATE-----\nnot a key\n")
    (folder / "empty").write_bytes(b"")

    def private(path):  # the referee
        said = keygen("-y", "-P", "", "-f", str(path))
        return said.returncode == 0 or "passphrase" in said.stderr

    expected = tuple(sorted(p for p in folder.iterdir() if not p.name.endswith(".pub") and private(p)))
    assert {p.name for p in expected} == {"cluster_key", "narval", "id_rsa_old", "work-ecdsa", "pem_rsa"}
    assert sshkeys.find_keys(ask_agent=False).files == expected


def test_keys_held_by_a_running_agent_count(home, tmp_path, monkeypatch):
    if shutil.which("ssh-agent") is None or shutil.which("ssh-add") is None:
        pytest.skip("no ssh-agent here")
    socket_path = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL)
    try:
        while not socket_path.exists():
            assert agent.poll() is None, "ssh-agent stopped"
            time.sleep(0.05)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(socket_path))
        assert sshkeys.find_keys().agent_keys == 0
        made = sshkeys.create_key(tmp_path / "agentkey")
        added = subprocess.run(["ssh-add", str(made.path)], capture_output=True, text=True,
                               env={**os.environ, "SSH_AUTH_SOCK": str(socket_path)}, stdin=subprocess.DEVNULL)
        assert added.returncode == 0, added.stderr
        found = sshkeys.find_keys()
        assert found.files == () and found.agent_keys == 1 and found.any
    finally:
        agent.terminate()
        agent.wait()


def test_a_new_key_logs_in_with_its_passphrase_from_the_keyring(testbed, tmp_path, home, secret_service):
    beta = testbed.clusters["beta"]
    made = sshkeys.create_key(passphrase="newcomer passphrase", remember=True)
    assert made.remembered and recall("passphrase", str(made.path)) == "newcomer passphrase"
    authorized = beta.home / ".ssh" / "authorized_keys"
    before = authorized.read_text()
    with open(authorized, "a") as handle:  # what the site does with the line the user registers
        handle.write(made.public_line + "\n")
    try:
        prompter = ScriptedPrompter()  # answers nothing: any question would cancel the login
        paths = make_config(tmp_path / "cfg", testbed, ["beta"], beta={"identity_file": str(made.path)})
        session = session_for(paths, prompter)
        try:
            assert session.target("beta").runner.run(["whoami"]).stdout.strip() == beta.user
        finally:
            session.close()
        assert prompter.asked == [], "the passphrase must come from the keyring"
    finally:
        authorized.write_text(before)


def test_without_a_keyring_nothing_is_remembered(home, monkeypatch):
    import keyring
    from keyring.backends import null
    previous = keyring.get_keyring()
    keyring.set_keyring(null.Keyring())
    try:
        assert keyring_problem() is not None
        made = sshkeys.create_key(passphrase="pw", remember=True)
    finally:
        keyring.set_keyring(previous)
    assert made.remembered is False


# -- the dialog --------------------------------------------------------------------------------


def test_the_key_dialog_makes_a_key_and_shows_where_to_register_it(qtbot, home):
    from PySide6.QtGui import QGuiApplication

    from envdesk.gui.dialogs.key_dialog import KeyDialog
    alliance = get_preset("alliance")
    dialog = KeyDialog(alliance)
    qtbot.addWidget(dialog)
    assert dialog.remember.isVisibleTo(dialog) is (keyring_problem() is None)
    dialog.passphrase.setText("one")
    dialog.repeat.setText("two")
    dialog.make_button.click()
    assert "differ" in dialog.error.text() and not (home / ".ssh" / "id_ed25519").exists()
    dialog.repeat.setText("one")
    dialog.make_button.click()
    made = dialog.made
    assert made is not None and made.path.exists()
    assert dialog.pages.currentIndex() == 1
    assert dialog.public.toPlainText() == made.public_path.read_text().strip()
    assert alliance.key_page in dialog.where.text() and "<a href=" in dialog.where.text()
    assert dialog.where.openExternalLinks()
    dialog.copy_button.click()
    assert QGuiApplication.clipboard().text() == made.public_line
    assert keygen("-y", "-P", "one", "-f", str(made.path)).stdout.split()[:2] == made.public_line.split()[:2]


def test_the_cluster_dialog_offers_a_key_only_to_someone_without_one(qtbot, home):
    from envdesk.gui.dialogs.cluster_dialog import ClusterDialog
    dialog = ClusterDialog(controller=None)
    qtbot.addWidget(dialog)
    assert dialog.no_key.isVisibleTo(dialog), "no key in an empty home: the offer shows"
    dialog.auth.setCurrentIndex(dialog.auth.findData("password"))
    assert not dialog.no_key.isVisibleTo(dialog), "a password login needs no key"
    dialog.auth.setCurrentIndex(dialog.auth.findData("key"))
    assert dialog.no_key.isVisibleTo(dialog)
    dialog.preset.setCurrentIndex(dialog.preset.findText(get_preset("alliance").label))
    key_dialog = dialog.make_key()
    assert key_dialog.preset is not None and key_dialog.preset.id == "alliance"
    key_dialog.make_button.click()
    key_dialog.accept()
    assert not dialog.no_key.isVisibleTo(dialog), "once made, the offer goes"
    again = ClusterDialog(controller=None)
    qtbot.addWidget(again)
    assert not again.no_key.isVisibleTo(again), "a key in ~/.ssh: no offer"
