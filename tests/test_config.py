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


HAND_WRITTEN = """\
# EnvDesk clusters -- kept by hand, see the lab wiki
# (the allocation codes are on the group's page)

clusters:
  # Alliance, the big one
  - name: narval   # login nodes rotate
    host: narval.alliancecan.ca
    user: jsmith
    auth: auto        # keys first, then the password
    env_roots: [~/projects/def-lab/envs, ~/venvs]   # shared with the lab
    pip_args:
      - --no-index          # the wheelhouse only
      - --find-links
      - /cvmfs/soft.computecanada.ca/custom/python/wheelhouse/generic

  # the department's old cluster
  - name: hydra
    host: hydra.cs.example.edu
    port: 2222
    user: js

local:
  # this laptop
  env_roots: [~/envs]
"""


def _comments(text: str) -> list[str]:
    return [line for line in text.splitlines() if "#" in line]


def test_a_hand_written_cluster_list_keeps_its_comments_and_layout_when_changed(tmp_path, home):
    """A user's clusters.yaml lost every comment at the first change the app made (it wrote the data back whole).
    The referees: PyYAML's reading of the file after each command against what was asked, and the user's own
    lines, which stay as they were written."""
    import yaml
    from envdesk_fixtures import run_cli
    config = tmp_path / "config"
    config.mkdir()
    clusters = config / "clusters.yaml"
    clusters.write_text(HAND_WRITTEN)
    narval = {"name": "narval", "host": "narval.alliancecan.ca", "user": "jsmith", "auth": "auto",
              "env_roots": ["~/projects/def-lab/envs", "~/venvs"],
              "pip_args": ["--no-index", "--find-links",
                           "/cvmfs/soft.computecanada.ca/custom/python/wheelhouse/generic"]}
    hydra = {"name": "hydra", "host": "hydra.cs.example.edu", "port": 2222, "user": "js"}
    local = {"env_roots": ["~/envs"]}

    added = run_cli("cluster", "add", "mila", "--host", "login.server.mila.quebec", "--port", "2222", "--user",
                    "js", config=config, home=home)
    assert added.returncode == 0, added.stderr
    mila = {"name": "mila", "host": "login.server.mila.quebec", "port": 2222, "user": "js"}
    assert yaml.safe_load(clusters.read_text()) == {"clusters": [narval, hydra, mila], "local": local}
    assert clusters.read_text().startswith(HAND_WRITTEN.split("local:")[0].rstrip("\n")), clusters.read_text()
    assert _comments(clusters.read_text()) == _comments(HAND_WRITTEN)

    edited = run_cli("cluster", "edit", "narval", "--account", "def-lab", config=config, home=home)
    assert edited.returncode == 0, edited.stderr
    assert yaml.safe_load(clusters.read_text()) == {"clusters": [{**narval, "slurm_account": "def-lab"}, hydra, mila],
                                                    "local": local}
    assert _comments(clusters.read_text()) == _comments(HAND_WRITTEN)

    removed = run_cli("cluster", "remove", "hydra", config=config, home=home)
    assert removed.returncode == 0, removed.stderr
    text = clusters.read_text()
    assert yaml.safe_load(text) == {"clusters": [{**narval, "slurm_account": "def-lab"}, mila], "local": local}
    assert "hydra" not in text
    # the comments of what is left stay; the one right above hydra went with it, not to label mila (R12)
    assert _comments(text) == [line for line in _comments(HAND_WRITTEN) if "old cluster" not in line]

    ClusterStore(AppPaths(config)).update_local_roots("/data/envs")
    assert yaml.safe_load(clusters.read_text())["local"] == {"env_roots": ["~/envs", "/data/envs"]}
    assert "  # this laptop\n" in clusters.read_text()


def test_a_cluster_list_in_a_layout_not_edited_in_place_is_still_written_right(tmp_path):
    """A list written in flow style, or values shared through an alias, cannot be changed line by line: the file
    is then written whole, and PyYAML reads it as asked."""
    import yaml
    from envdesk.backend.yaml_edit import edited_yaml
    paths = AppPaths(tmp_path)
    paths.clusters_file.write_text("{clusters: [{name: a, host: h.example.org}]}  # all on one line\n")
    ClusterStore(paths).add(ClusterProfile(name="b", host="b.example.org"))
    assert yaml.safe_load(paths.clusters_file.read_text()) == {
        "clusters": [{"name": "a", "host": "h.example.org"}, {"name": "b", "host": "b.example.org"}]}
    shared = "roots: &r [~/a]\nclusters:\n- name: a\n  host: h\n  env_roots: *r\n"
    wanted = {"roots": ["~/b"], "clusters": [{"name": "a", "host": "h", "env_roots": ["~/a"]}]}
    assert edited_yaml(shared, wanted) is None, "changing the anchor would change the alias too"


def test_two_clusters_whose_files_one_case_insensitive_disk_would_share_cannot_both_be_kept(tmp_path):
    """R13: macOS and Windows file systems ignore case, so 'Cedar' and 'cedar' shared one cached list
    (inventory-NAME.json), and 'aaa' and 'aaG' one kept-connection record (base64: YWFh, YWFH). Referee: the
    comparison such a file system makes, str.casefold on the file names."""
    from envdesk.backend.kept_connection import record_path

    paths = AppPaths(tmp_path)
    store = ClusterStore(paths)
    store.add(ClusterProfile(name="Cedar", host="cedar.example.org"))
    with pytest.raises(ConfigError, match="'Cedar' already exists") as info:
        store.add(ClusterProfile(name="cedar", host="cedar.example.org"))
    assert "upper and lower case" in info.value.hint
    names = ["aaa", "aaG", "aaQ", "Mila", "mila2", "beluga"]
    files = {str(record_path(paths, name)).casefold() for name in names}
    assert len(files) == len(names)
