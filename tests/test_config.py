"""Cluster profiles, their validation and their YAML store."""
from __future__ import annotations

import pytest

from envdesk.backend.config import ClusterProfile, ClusterStore, DEFAULT_ENV_ROOTS
from envdesk.backend.errors import ConfigError, InvalidInput, NotFound
from envdesk.backend.fileio import read_yaml
from envdesk.backend.paths import AppPaths
from envdesk.backend.validate import hop_address


def test_store_round_trip_keeps_every_field(tmp_path):
    store = ClusterStore(AppPaths(tmp_path))
    profile = ClusterProfile(name="cedar", host="cedar.example.org", port=2222, user="jsmith",
                             identity_file="~/.ssh/id_ed25519", jump=["gw@jump.example.org:22"],
                             env_roots=["~/projects", "/project/def-lab/jsmith/envs"],
                             pip_args=["--no-index", "--find-links", "/cvmfs/wheels"], preset="alliance")
    store.add(profile)
    assert store.load() == [profile]
    assert store.get("cedar").roots == ["~/projects", "/project/def-lab/jsmith/envs"]


def test_default_roots_when_none_configured():
    assert ClusterProfile(name="x", host="h").roots == list(DEFAULT_ENV_ROOTS)


def test_duplicate_unknown_and_removed_names(tmp_path):
    store = ClusterStore(AppPaths(tmp_path))
    store.add(ClusterProfile(name="a", host="h"))
    with pytest.raises(ConfigError):
        store.add(ClusterProfile(name="a", host="other"))
    with pytest.raises(NotFound) as info:
        store.get("b")
    assert "a" in info.value.hint
    store.remove("a")
    assert store.load() == []


@pytest.mark.parametrize("name", ["a;touch x", "$(id)", "../..", "with space", "", "local", "-rf", "a\nb"])
def test_hostile_cluster_names_are_refused(tmp_path, name):
    with pytest.raises(InvalidInput):
        ClusterProfile(name=name, host="h")


@pytest.mark.parametrize("field,value", [("user", "x;id"), ("port", 70000), ("env_roots", ["relative/dir"]),
                                         ("env_roots", ["~/a/../../etc"]), ("jump", ["-oProxyCommand=x"]),
                                         ("pip_args", ["--x\n--y"])])
def test_bad_profile_fields_are_refused(field, value):
    with pytest.raises(InvalidInput):
        ClusterProfile(name="ok", host="h", **{field: value})


def test_broken_yaml_is_a_plain_error(tmp_path):
    paths = AppPaths(tmp_path)
    paths.clusters_file.write_text("clusters: [ {name: a, host: b\n")
    with pytest.raises(ConfigError) as info:
        ClusterStore(paths).load()
    assert "not valid YAML" in info.value.message


def test_yaml_tags_are_never_executed(tmp_path):
    paths = AppPaths(tmp_path)
    paths.clusters_file.write_text("clusters: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError):
        ClusterStore(paths).load()
    assert not (tmp_path / "pwned").exists()


def test_local_settings_are_kept_when_clusters_change(tmp_path):
    paths = AppPaths(tmp_path)
    paths.clusters_file.write_text("local:\n  env_roots: [/tmp/envs]\n")
    store = ClusterStore(paths)
    store.add(ClusterProfile(name="a", host="h"))
    assert store.local_settings().roots == ["/tmp/envs"]


@pytest.mark.parametrize("text,host,port,user", [("h.example.org", "h.example.org", None, None),
                                                 ("me@h:2222", "h", 2222, "me"),
                                                 ("[::1]:22", "::1", 22, None)])
def test_hop_addresses_parse_like_ssh(text, host, port, user):
    hop = hop_address(text)
    assert (hop.host, hop.port, hop.user) == (host, port, user)


def test_config_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("ENVDESK_CONFIG_DIR", str(tmp_path / "env"))
    assert AppPaths.resolve().config_dir == tmp_path / "env"
    assert AppPaths.resolve(tmp_path / "arg").config_dir == tmp_path / "arg"


def test_roots_with_shell_variables_are_refused():
    with pytest.raises(InvalidInput) as info:
        ClusterProfile(name="x", host="h", env_roots=["/scratch/$USER/envs"])
    assert "in full" in info.value.hint


@pytest.mark.parametrize("prompt,kind", [("Password: ", "password"), ("Passcode or option (1-1): ", "code"),
                                         ("Password+Token: ", "code"), ("Verification code: ", "code"),
                                         ("One-time password (OATH) for `alice': ", "code"), ("Say hi: ", "prompt")])
def test_login_prompts_are_classified_so_codes_are_never_kept(prompt, kind):
    from envdesk.backend.prompts import classify_prompt
    assert classify_prompt(prompt) == kind


def test_a_cluster_list_read_again_is_a_fresh_copy_of_what_the_file_says(tmp_path):
    """The parsed cluster list is kept for the next read of the same text (a listing reads it each time): each
    read still gets its own objects, and a file changed in place, even to the same size, is read anew."""
    paths = AppPaths(tmp_path)
    store = ClusterStore(paths)
    store.add(ClusterProfile(name="cedar", host="cedar.example.org", pip_args=["--no-index"]))
    first = read_yaml(paths.clusters_file, what="cluster list")
    first["clusters"][0]["pip_args"].append("--changed-in-memory")
    first["local"] = {"env_roots": ["~/elsewhere"]}
    assert read_yaml(paths.clusters_file, what="cluster list") == {
        "clusters": [{"name": "cedar", "host": "cedar.example.org", "pip_args": ["--no-index"]}]}
    text = paths.clusters_file.read_text()
    with open(paths.clusters_file, "r+", encoding="utf-8") as handle:  # same file, same size
        handle.write(text.replace("cedar.example.org", "rowan.example.org"))
    assert store.get("cedar").host == "rowan.example.org"
