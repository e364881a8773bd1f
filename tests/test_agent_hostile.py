"""The agent against hostile or damaged environment folders: one bad file never stops the inventory.

Where a small file belongs, a folder can hold a link to /dev/zero or /dev/urandom (endless), a named
pipe (opening it to read blocks until someone writes) or a huge sparse file. The agent reads only
regular files, a bounded number of bytes of each, within a time budget per environment: such a file
makes its package skipped with a warning, or its environment broken, with a reason naming the file,
and every other environment is listed as usual.

Everything here uses real files and runs the real agent script, as EnvDesk sends it, in a real
Python under a 512 MB address-space cap (so reading /dev/zero whole fails the test instead of
eating the machine's memory); the subprocess timeout only guards against a hang.
"""

import json
import os

import pytest

from agent_fixtures import (
    clean_env, isolated_home,
    add_dist, conda_record, history_block, load_agent, make_conda_prefix, make_fake_venv, make_fifo,
    make_link, make_sparse, old_pythons_to_test, run_agent_for_real, site_packages,
)

agent = load_agent(write=True)

HUGE = 50 * 1024 * 1024


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh, empty HOME; no conda settings from the machine leak in."""
    return isolated_home(tmp_path, monkeypatch, agent)


def by_name(answer):
    envs = {env["name"]: env for env in answer["environments"]}
    assert len(envs) == len(answer["environments"])
    return envs


def names(env):
    return [p["name"] for p in env["packages"]]


def warned(env, *words):
    """The one warning of env that holds every word."""
    matches = [w for w in env["warnings"] if all(word in w for word in words)]
    assert len(matches) == 1, (words, env["warnings"])
    return matches[0]


def metadata_of(site, name, version):
    return os.path.join(site, "%s-%s.dist-info" % (name, version), "METADATA")


def build_hostile_home(home):
    """Healthy environments next to hostile ones; the paths of the hostile files, by role."""
    paths = {}
    good = make_fake_venv(home / "venvs" / "good")
    add_dist(site_packages(good), "numpy", "2.0.0", requested=True)

    for env_name, role in (("zero", "dev_zero"), ("fifo", "fifo"), ("huge", "huge")):
        site = site_packages(make_fake_venv(home / "venvs" / env_name))
        add_dist(site, "requests", "2.32.0")
        add_dist(site, "evil", "1.0")
        metadata = metadata_of(site, "evil", "1.0")
        if role == "dev_zero":
            make_link(metadata, "/dev/zero")
        elif role == "fifo":
            make_fifo(metadata)
        else:
            make_sparse(metadata, HUGE)
        paths[role] = metadata

    cfg_env = make_fake_venv(home / "venvs" / "cfgpipe")
    add_dist(site_packages(cfg_env), "requests", "2.32.0")
    paths["pyvenv_fifo"] = make_fifo(os.path.join(cfg_env, "pyvenv.cfg"))

    notes_env = make_fake_venv(home / "venvs" / "notes")
    add_dist(site_packages(notes_env), "six", "1.16.0")
    os.makedirs(os.path.join(notes_env, ".envdesk"))
    paths["meta_fifo"] = make_fifo(os.path.join(notes_env, ".envdesk", "meta.json"))

    make_conda_prefix(home / ".conda" / "envs" / "healthy", python="3.11.5",
                      records=[conda_record("zlib", "1.2.13")],
                      history=history_block("2024-01-01 10:00:00", "conda create -n healthy",
                                            specs=["python=3.11", "zlib"]))
    hostile = make_conda_prefix(home / ".conda" / "envs" / "hostile", python="3.11.5",
                                records=[conda_record("zlib", "1.2.13"), conda_record("evil", "1.0", "0"),
                                         conda_record("bloat", "1.0", "0")])
    meta = os.path.join(hostile, "conda-meta")
    paths["urandom"] = make_link(os.path.join(meta, "evil-1.0-0.json"), "/dev/urandom")
    paths["huge_record"] = make_sparse(os.path.join(meta, "bloat-1.0-0.json"), HUGE)
    paths["history_fifo"] = make_fifo(os.path.join(meta, "history"))

    # conda's own list of environments, read during discovery, is a pipe too
    make_fifo(home / ".conda" / "environments.txt")
    return paths


def check_hostile_answer(answer, paths):
    """Healthy environments listed in full; each hostile file named in its own env's warning or error."""
    envs = by_name(answer)
    assert set(envs) == {"good", "zero", "fifo", "huge", "cfgpipe", "notes", "healthy", "hostile"}
    assert answer["truncated"] is False

    assert envs["good"]["state"] == "ok" and envs["good"]["warnings"] == []
    assert names(envs["good"]) == ["numpy"] and envs["good"]["packages"][0]["requested"] is True
    assert envs["healthy"]["state"] == "ok" and envs["healthy"]["warnings"] == []
    assert names(envs["healthy"]) == ["python", "zlib"]
    assert envs["healthy"]["conda_requested"] == ["python=3.11", "zlib"]

    # A METADATA Python cannot read either (it blocks on the pipe, reads /dev/zero forever) makes the environment
    # broken, naming the package and what to do; its other packages are still listed, and no read blocked
    for env_name, role, reason in (("zero", "dev_zero", "is a link to /dev/zero, which is a device"),
                                   ("fifo", "fifo", "is a named pipe (FIFO), not a regular file")):
        env = envs[env_name]
        assert env["state"] == "broken" and names(env) == ["requests"] and env["warnings"] == [], env
        [found] = env["unreadable_packages"]
        assert found["path"] == os.path.dirname(paths[role]) and paths[role] in found["reason"], found
        assert reason in env["error"] and "evil-1.0.dist-info" in env["error"], env["error"]
        assert "rm -r %s" % paths[role] in env["error"] and "install evil 1.0 again" in env["error"], env["error"]
    # one whose headers are past what EnvDesk reads is Python's to read: only its own package is left out
    env = envs["huge"]
    assert env["state"] == "ok" and names(env) == ["requests"], env
    warned(env, "Skipped evil-1.0.dist-info", paths["huge"], "in its first 512 KB")

    broken = envs["cfgpipe"]
    assert broken["state"] == "broken"
    assert "pyvenv.cfg" in broken["error"] and paths["pyvenv_fifo"] in broken["error"]
    assert "named pipe" in broken["error"]

    assert envs["notes"]["state"] == "ok" and names(envs["notes"]) == ["six"]
    warned(envs["notes"], paths["meta_fifo"], "named pipe")

    hostile = envs["hostile"]
    assert hostile["state"] == "ok"
    assert names(hostile) == ["python", "zlib"]
    warned(hostile, "Skipped conda record evil-1.0-0.json", paths["urandom"], "/dev/urandom")
    warned(hostile, "Skipped conda record bloat-1.0-0.json", paths["huge_record"], "larger than 8 MB")
    warned(hostile, "history", paths["history_fifo"], "named pipe")


def test_hostile_files_break_only_their_own_environment(home):
    paths = build_hostile_home(home)
    status, answer, stderr = run_agent_for_real({}, clean_env(home))
    assert status == 0 and stderr == ""
    check_hostile_answer(answer, paths)


def test_hostile_files_under_python_36_and_37(home):
    olds = old_pythons_to_test()
    paths = build_hostile_home(home)
    for exe in olds:
        status, answer, stderr = run_agent_for_real({}, clean_env(home), exe=exe)
        assert status == 0 and stderr == "", (exe, stderr)
        assert answer["python"].startswith(os.path.basename(exe)[len("python"):])
        check_hostile_answer(answer, paths)


def test_an_environment_out_of_time_is_broken_and_the_list_goes_on(home):
    good = make_fake_venv(home / "venvs" / "a")
    add_dist(site_packages(good), "numpy", "2.0.0")
    make_fake_venv(home / "venvs" / "b")
    make_conda_prefix(home / ".conda" / "envs" / "c", python="3.11.5")
    # A budget of 0 s per environment runs out before the first file of each: all are reported.
    status, answer, _ = run_agent_for_real({"env_time_budget": 0}, clean_env(home))
    assert status == 0
    envs = by_name(answer)
    assert set(envs) == {"a", "b", "c"} and answer["truncated"] is False
    for env in envs.values():
        assert env["state"] == "broken"
        assert "stopped reading this environment after 0 seconds, at " + env["path"] in env["error"]
        assert "slow or stuck file system" in env["error"]
    # the normal budget reads them all
    status, answer, _ = run_agent_for_real({}, clean_env(home))
    assert {env["name"]: env["state"] for env in answer["environments"]} == {"a": "ok", "b": "ok", "c": "ok"}


def test_the_time_budget_is_per_environment(home):
    env_path = make_fake_venv(home / "venvs" / "v")
    add_dist(site_packages(env_path), "numpy", "2.0.0")
    late = agent.read_env(env_path, "v", str(home / "venvs"), 0.0)
    assert late["state"] == "broken" and "stopped reading" in late["error"]
    in_time = agent.read_env(env_path, "v", str(home / "venvs"))
    assert in_time["state"] == "ok" and names(in_time) == ["numpy"]
    assert agent._ENV_DEADLINES == {}     # nothing left behind for the next environment (of any thread)


# ---------------------------------------------------------------------------
# The bounds never refuse a real environment's files
# ---------------------------------------------------------------------------

def test_real_files_that_are_large_or_linked_are_still_read(home, tmp_path):
    env_path = make_fake_venv(home / "venvs" / "v")
    site = site_packages(env_path)
    # a 3 MB description after the headers: only the headers are read
    add_dist(site, "bigdoc", "1.0", metadata="Metadata-Version: 2.1\nName: bigdoc\nVersion: 1.0\n\n"
                                            + "Long text.\n" * 300000)
    # old-style PKG-INFO headers carrying the whole description, Name and Version first
    add_dist(site, "oldstyle", "0.9", metadata="Metadata-Version: 1.1\nName: oldstyle\nVersion: 0.9\n"
                                              "Description: " + "        more text\n" * 100000)
    # METADATA and pyvenv.cfg as links to regular files elsewhere (some tools share them)
    elsewhere = tmp_path / "store"
    elsewhere.mkdir()
    (elsewhere / "METADATA").write_text("Metadata-Version: 2.1\nName: linked\nVersion: 3.0\n")
    add_dist(site, "linked", "3.0")
    make_link(metadata_of(site, "linked", "3.0"), str(elsewhere / "METADATA"))
    cfg = os.path.join(env_path, "pyvenv.cfg")
    os.rename(cfg, str(elsewhere / "pyvenv.cfg"))
    make_link(cfg, str(elsewhere / "pyvenv.cfg"))
    # a conda env with a 10 MB record (long file list; only its head is read) and a 2 MB history
    record = conda_record("bigpkg", "1.0")
    record["files"] = ["share/bigpkg/file%07d.txt" % n for n in range(350000)]
    history = "".join(history_block("2024-01-%02d 10:00:00" % (1 + n % 28), "conda install x",
                                    specs=["zlib"], lines=["+conda-forge::zlib-1.2.13-h0_0"] * 150)
                      for n in range(400))
    prefix = make_conda_prefix(home / ".conda" / "envs" / "c", python="3.11.5", records=[record],
                               history=history)
    assert os.path.getsize(os.path.join(prefix, "conda-meta", "bigpkg-1.0-h0_0.json")) > 8 * 1024 * 1024
    assert os.path.getsize(os.path.join(prefix, "conda-meta", "history")) > 1024 * 1024

    status, answer, _ = run_agent_for_real({}, clean_env(home))
    assert status == 0
    envs = by_name(answer)
    assert envs["v"]["state"] == "ok" and envs["v"]["warnings"] == []
    assert {p["name"]: p["version"] for p in envs["v"]["packages"]} == {
        "bigdoc": "1.0", "oldstyle": "0.9", "linked": "3.0"}
    assert envs["c"]["state"] == "ok" and envs["c"]["warnings"] == []
    assert names(envs["c"]) == ["bigpkg", "python"]
    assert envs["c"]["conda_requested"] == ["zlib"] and envs["c"]["created_by"] == "conda 23.7.4"


def test_file_bounds_are_exact(tmp_path):
    path = str(tmp_path / "f")
    with open(path, "wb") as handle:
        handle.write(b"x" * 1000)
    assert agent.read_bytes(path, 1000) == b"x" * 1000
    with pytest.raises(OSError, match="larger than 999 bytes"):
        agent.read_bytes(path, 999)
    # headers that fill the whole limit without Name and Version
    with open(path, "wb") as handle:
        handle.write(b"Metadata-Version: 2.1\n" + b"Classifier: x\n" * 50000 + b"Name: late\nVersion: 1\n")
    with pytest.raises(OSError, match="does not give its Name and Version in its first 512 KB"):
        agent.read_headers(path)
    assert agent.read_headers(path, limit=1024 * 1024) == {"name": "late", "version": "1"}
    # a file of exactly the limit, its last line without a newline, is read whole
    body = b"Name: a\nVersion: 2"
    with open(path, "wb") as handle:
        handle.write(body)
    assert agent.read_headers(path, limit=len(body)) == {"name": "a", "version": "2"}
    with pytest.raises(OSError, match="not a regular file"):
        agent.read_bytes(str(tmp_path), 10)


# ---------------------------------------------------------------------------
# Write actions read through the same guards
# ---------------------------------------------------------------------------

def test_write_actions_do_not_hang_on_hostile_files(home):
    root = home / "venvs"
    env_path = make_fake_venv(root / "v")
    snapshots = os.path.join(env_path, ".envdesk", "snapshots")
    os.makedirs(snapshots)
    with open(os.path.join(snapshots, "20240101T000000Z-1.json"), "w") as handle:
        json.dump({"id": "20240101T000000Z-1", "time": "t", "reason": "r", "packages": []}, handle)
    make_fifo(os.path.join(snapshots, "20240101T000000Z-2.json"))
    make_link(os.path.join(snapshots, "20240101T000000Z-3.json"), "/dev/zero")
    config = {"roots": [str(root)], "path": env_path}

    status, answer, _ = run_agent_for_real(dict(config, action="history"), clean_env(home), write=True)
    assert status == 0 and answer["ok"] is True
    assert [s["id"] for s in answer["snapshots"]] == ["20240101T000000Z-1"]

    # a lock whose owner record is a pipe: the lock is still seen as held, at once
    os.mkdir(env_path + ".envdesk-lock")
    make_fifo(os.path.join(env_path + ".envdesk-lock", "owner.json"))
    status, answer, _ = run_agent_for_real(dict(config, action="begin", operation="install"),
                                           clean_env(home), write=True)
    assert status == 0 and answer["ok"] is False and answer["code"] == "busy"


def test_an_environments_details_hold_every_package_whatever_follows_its_name_and_version(home):
    """R9: asking METADATA for Requires-Python too made a detailed read (env show, the finish of every change)
    go on past Name and Version, where a header in another encoding (an old Author line in Latin-1) or a
    description kept in the headers past the reading limit made it drop the package. Requires-Python is looked for
    only as far as the file can be read. The referee: packaging's parser of core metadata (pip's own list fails
    outright on the Latin-1 file)."""
    from packaging.metadata import parse_email
    env_path = make_fake_venv(home / "venvs" / "v")
    site = site_packages(env_path)
    files = {
        "latin": (b"Metadata-Version: 2.1\nName: latin\nVersion: 1.0\nAuthor: Fran\xe7ois\n"
                  b"Requires-Python: >=3.6\n\nbody\n"),
        "oldstyle": ("Metadata-Version: 1.1\nName: oldstyle\nVersion: 0.9\nDescription: "
                     + "        more text\n" * 100000 + "Requires-Python: >=3.99\n\nbody\n").encode(),
        "stated": b"Metadata-Version: 2.1\nName: stated\nVersion: 2.0\nRequires-Python: <3.11,>=3.8\n\nbody\n"}
    referee = {}
    for name, data in files.items():
        parsed, _ = parse_email(data)
        referee[parsed["name"]] = (parsed["version"], parsed.get("requires_python"))
        add_dist(site, name, parsed["version"], metadata=data)
    detailed = agent.read_env(env_path, "v", str(home / "venvs"))
    assert detailed["warnings"] == []
    assert {p["name"]: p["version"] for p in detailed["packages"]} == {n: v for n, (v, _) in referee.items()}
    # Requires-Python where it could be read, as packaging reads it; none claimed past an unreadable line or the limit
    said = {p["name"]: p.get("requires_python") for p in detailed["packages"]}
    assert said == {"latin": None, "oldstyle": None, "stated": referee["stated"][1]}
