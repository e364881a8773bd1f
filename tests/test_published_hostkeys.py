"""Host keys checked against what the site publishes: the presets' data, the verdict, the trust dialog.

The server keys are the test bed's real ones, fetched over SSH; the fingerprints they are measured
against come from ssh-keygen -l on the host key files (the referee), not from EnvDesk's own code.
"""
from __future__ import annotations

import copy
import socket
import subprocess
from importlib import resources

import paramiko
import pytest
import yaml

from envdesk.backend.errors import ConfigError
from envdesk.backend.hostkeys import ServerIdentity
from envdesk.backend.presets import (DOES_NOT_MATCH, MATCHES, NOT_PUBLISHED, judge_host_key, load_presets)

PRESETS = resources.files("envdesk.resources") / "presets"
CHECKED = "2026-11-22"


def shipped(preset_id: str) -> dict:
    return yaml.safe_load((PRESETS / f"{preset_id}.yaml").read_text(encoding="utf-8"))


def referee_fingerprint(cluster) -> str:
    """ssh-keygen's fingerprint of the cluster's host key file."""
    out = subprocess.run(["ssh-keygen", "-l", "-f", f"{cluster.host_key_path}.pub"], capture_output=True,
                         text=True, check=True, stdin=subprocess.DEVNULL).stdout
    return out.split()[1]


def presented(cluster) -> ServerIdentity:
    """The key the cluster's sshd really presents, read from an SSH handshake."""
    sock = socket.create_connection((cluster.host, cluster.port))
    transport = paramiko.Transport(sock)
    try:
        transport.start_client()
        key = transport.get_remote_server_key()
    finally:
        transport.close()
    return ServerIdentity(cluster.host, cluster.port, key)


def bed_preset(tmp_path, host_keys: list[dict]):
    """A preset folder whose one site publishes `host_keys` (plus the shipped 'other')."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = shipped("other")
    data.update(id="bed", label="Test Bed Site", host_keys=host_keys)
    (tmp_path / "bed.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(shipped("other")), encoding="utf-8")
    return load_presets(tmp_path)


def entry(host: str, fingerprint: str, key_type: str = "ED25519") -> dict:
    return {"host": host, "type": key_type, "fingerprint": fingerprint,
            "source": "https://example.org/ssh-host-keys", "checked": CHECKED}


# -- the shipped data -----------------------------------------------------------------------------


def test_shipped_fingerprints_name_their_page_and_day():
    presets = {p.id: p for p in load_presets()}
    for preset in presets.values():
        for key in preset.host_keys:
            assert key.host in {h.host for h in preset.hosts}, f"{preset.id}: {key.host} is no login node of it"
            assert key.source.startswith("https://") and key.checked == CHECKED
    alliance = presets["alliance"]
    for host in alliance.hosts:
        assert {k.type for k in alliance.published_for(host.host)} == {"ED25519", "RSA"}, host.name
    assert {k.type for k in presets["mila"].published_for("login.server.mila.quebec")} == {"ED25519", "RSA", "ECDSA"}
    assert presets["uppmax"].host_keys == () and presets["hpc2n"].host_keys == (), "nothing published, nothing listed"
    assert presets["alliance"].key_page == "https://ccdb.alliancecan.ca/ssh_authorized_keys"
    assert all(p.key_page == "" or p.key_page.startswith("https://") for p in presets.values())


GOOD = entry("fir.alliancecan.ca", "SHA256:NJgHnZFzGX0zYyUwCMUdWccvfCaTgKmZKzPaqL8VNM8")
BAD = {
    "md5 fingerprint": {**GOOD, "fingerprint": "MD5:fc:b2:c8:c3:7a:a3:fd:36:75:78:df:dd:6f:e8:88:31"},
    "no SHA256 prefix": {**GOOD, "fingerprint": "NJgHnZFzGX0zYyUwCMUdWccvfCaTgKmZKzPaqL8VNM8"},
    "one character short": {**GOOD, "fingerprint": "SHA256:NJgHnZFzGX0zYyUwCMUdWccvfCaTgKmZKzPaqL8VNM"},
    "padded": {**GOOD, "fingerprint": "SHA256:NJgHnZFzGX0zYyUwCMUdWccvfCaTgKmZKzPaqL8VNM8="},
    "not base64": {**GOOD, "fingerprint": "SHA256:NJgHnZFzGX0zYyUwCMUdWccvfCaTgKmZKzPaqL8VN!8"},
    "unknown type": {**GOOD, "type": "DSA"},
    "plain http source": {**GOOD, "source": "http://docs.alliancecan.ca/wiki/SSH_host_keys"},
    "no date": {**GOOD, "checked": "last week"},
    "impossible date": {**GOOD, "checked": "2026-02-30"},
    "missing source": {k: v for k, v in GOOD.items() if k != "source"},
    "extra field": {**GOOD, "md5": "x"},
    "host with a space": {**GOOD, "host": "fir alliancecan.ca"},
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_host_key_entry_is_refused(tmp_path, case):
    data = shipped("alliance")
    data["host_keys"] = [copy.deepcopy(BAD[case])]
    (tmp_path / "alliance.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_presets(tmp_path)
    assert "alliance.yaml" in info.value.message and info.value.hint


@pytest.mark.parametrize("key_page", ["http://ccdb.alliancecan.ca/ssh_authorized_keys", "https://", "ccdb"])
def test_a_key_page_must_be_https(tmp_path, key_page):
    data = shipped("alliance")
    data["key_page"] = key_page
    (tmp_path / "alliance.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError):
        load_presets(tmp_path)


def test_a_good_entry_loads_with_a_yaml_date(tmp_path):
    data = shipped("alliance")
    data["host_keys"] = [GOOD]
    (tmp_path / "alliance.yaml").write_text(yaml.safe_dump(data).replace(f"'{CHECKED}'", CHECKED), encoding="utf-8")
    (preset,) = load_presets(tmp_path)
    assert preset.host_keys[0].checked == CHECKED and preset.host_keys[0].fingerprint == GOOD["fingerprint"]


# -- the verdict, on the test bed's real keys --------------------------------------------------------


def test_verdicts_against_real_server_keys(testbed, tmp_path):
    alpha, beta = testbed.clusters["alpha"], testbed.clusters["beta"]
    identity = presented(alpha)
    assert identity.fingerprint == referee_fingerprint(alpha)

    matching = judge_host_key(identity, bed_preset(tmp_path / "m", [entry(alpha.host, referee_fingerprint(alpha))]))
    assert matching.status == MATCHES and matching.site == "Test Bed Site"
    assert matching.headline == "This matches the fingerprint Test Bed Site publishes."
    assert matching.sources == (("https://example.org/ssh-host-keys", CHECKED),)

    other_key = referee_fingerprint(beta)
    assert other_key != identity.fingerprint
    wrong = judge_host_key(identity, bed_preset(tmp_path / "w", [entry(alpha.host, other_key)]))
    assert wrong.status == DOES_NOT_MATCH and wrong.headline.startswith("DOES NOT match: do not connect")
    assert any(other_key in line for line in wrong.lines())

    # the right digits under another key type are not a match: an impostor must not pick the type
    mistyped = judge_host_key(identity, bed_preset(tmp_path / "t", [entry(alpha.host, identity.fingerprint, "RSA")]))
    assert mistyped.status == DOES_NOT_MATCH

    unpublished = judge_host_key(identity, bed_preset(tmp_path / "u", [entry("login.example.org", other_key)]))
    assert unpublished.status == NOT_PUBLISHED and unpublished.headline.startswith("Not published: compare by hand")
    assert judge_host_key(identity).status == NOT_PUBLISHED, "the shipped presets publish nothing for 127.0.0.1"


def test_a_real_key_presented_as_narval_does_not_match_what_the_alliance_publishes(testbed):
    impostor = presented(testbed.clusters["alpha"])
    verdict = judge_host_key(ServerIdentity("Narval.AllianceCan.ca", 22, impostor.key))
    assert verdict.status == DOES_NOT_MATCH and verdict.site == "Digital Research Alliance of Canada"
    assert {k.fingerprint for k in verdict.published} == {"SHA256:pTKCWpDC142truNtohGm10+lB8gVyrp3Daz4iR5tT1M",
                                                         "SHA256:tC0oPkkY2TeLxqYHgfIVNq376+RfBFFUZaswnUeeOnw"}


# -- the trust dialog ------------------------------------------------------------------------------


def test_trust_dialog_says_matches_and_lets_the_user_trust(qtbot, testbed, tmp_path):
    from envdesk.gui.dialogs.trust_dialog import TrustDialog
    alpha = testbed.clusters["alpha"]
    identity = presented(alpha)
    verdict = judge_host_key(identity, bed_preset(tmp_path, [entry(alpha.host, referee_fingerprint(alpha))]))
    dialog = TrustDialog("alpha", identity, verdict=verdict)
    qtbot.addWidget(dialog)
    text = dialog.verdict_label.text()
    from envdesk.gui.status_colours import good_colour  # the palette's (its contrast: test_gui_readable)
    assert "matches the fingerprint Test Bed Site publishes" in text and good_colour() in text
    assert "https://example.org/ssh-host-keys" in text and CHECKED in text
    assert dialog.trust_button.isEnabled() and dialog.override is None


def test_trust_dialog_refuses_a_mismatch_until_told_explicitly(qtbot, testbed):
    from envdesk.gui.dialogs.trust_dialog import TrustDialog
    impostor = ServerIdentity("narval.alliancecan.ca", 22, presented(testbed.clusters["alpha"]).key)
    dialog = TrustDialog("narval", impostor)
    qtbot.addWidget(dialog)
    text = dialog.verdict_label.text()
    from envdesk.gui.status_colours import problem_colour
    assert "DOES NOT match: do not connect" in text and problem_colour() in text
    assert "SHA256:pTKCWpDC142truNtohGm10+lB8gVyrp3Daz4iR5tT1M" in text
    assert "https://docs.alliancecan.ca/wiki/SSH_security_improvements" in text
    assert not dialog.trust_button.isEnabled(), "a mismatch must not be one click away from trusted"
    assert dialog.override is not None and not dialog.override.isChecked()
    dialog.override.setChecked(True)
    assert dialog.trust_button.isEnabled()
    dialog.override.setChecked(False)
    assert not dialog.trust_button.isEnabled()


def test_trust_dialog_for_an_unpublished_server_asks_to_compare_by_hand(qtbot, testbed):
    from envdesk.gui.prompter import TrustDialog  # the prompter still opens this same dialog
    identity = presented(testbed.clusters["beta"])
    dialog = TrustDialog("beta", identity)
    qtbot.addWidget(dialog)
    assert "Not published: compare by hand" in dialog.verdict_label.text()
    assert identity.fingerprint in dialog.text.text()
    assert dialog.trust_button.isEnabled() and dialog.override is None
