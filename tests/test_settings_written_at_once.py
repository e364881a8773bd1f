"""Several writers of clusters.yaml at once (commands run together, the window beside them): every change is kept.

T27 HIGH-1: of 8 `envdesk cluster add` run at once, all said "Added" and 3 were kept; of 4 `env create --root`
run at once, one folder was lost from `local: env_roots`, and its environment vanished from `env list`. Referees:
the file itself read back with yaml.safe_load, and `envdesk cluster list --json` / `env list local --json` from a
fresh process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from envdesk.backend import config as config_module
from envdesk.backend.config import ClusterProfile, ClusterStore
from envdesk.backend.errors import Busy
from envdesk.backend.paths import AppPaths
from envdesk_fixtures import envdesk_command

WRITERS = 8
HOLDER = """\
import sys, time
from pathlib import Path
from envdesk.backend.config import ClusterStore
from envdesk.backend.paths import AppPaths
with ClusterStore(AppPaths(Path(sys.argv[1])))._changing():  # as the window's store holds it while it writes
    print("held", flush=True)
    time.sleep(3600)
"""


def started(*args: str, config: Path, home: Path) -> subprocess.Popen:
    """The real `envdesk` console script, started (not waited for), with a HOME of its own."""
    return subprocess.Popen([*envdesk_command(), "--config-dir", str(config), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            env={**os.environ, "HOME": str(home)})


def finished(processes: list[subprocess.Popen]) -> list[tuple[int, str, str]]:
    """Each process's exit status, standard output and standard error, once it has ended."""
    results = []
    for process in processes:
        out, err = process.communicate(timeout=600)
        results.append((process.returncode, out, err))
    return results


def listed_json(*args: str, config: Path, home: Path) -> list[dict]:
    done = subprocess.run([*envdesk_command(), "--config-dir", str(config), *args, "--json"], capture_output=True,
                          text=True, env={**os.environ, "HOME": str(home)}, stdin=subprocess.DEVNULL, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def saved(config: Path) -> dict:
    return yaml.safe_load((config / "clusters.yaml").read_text(encoding="utf-8"))


def test_clusters_added_at_once_are_all_kept_with_the_files_comments(tmp_path):
    config, home = tmp_path / "config", tmp_path / "home"
    config.mkdir()
    home.mkdir()
    (config / "clusters.yaml").write_text("# clusters of my lab\nclusters: []\n", encoding="utf-8")
    adding = [started("cluster", "add", f"x{i}", "--host", "127.0.0.1", "--port", "22727", "--user", "u",
                      config=config, home=home) for i in range(1, WRITERS + 1)]
    for code, out, err in finished(adding):
        assert code == 0 and out.startswith("Added cluster x"), err
    wanted = {f"x{i}" for i in range(1, WRITERS + 1)}
    assert {entry["name"] for entry in saved(config)["clusters"]} == wanted
    assert {entry["name"] for entry in listed_json("cluster", "list", config=config, home=home)} == wanted
    assert (config / "clusters.yaml").read_text(encoding="utf-8").startswith("# clusters of my lab\n")


def test_the_window_and_commands_writing_at_once_keep_every_change(tmp_path):
    """The window's store (what gui/controller calls) adds clusters and folders of This computer while commands
    add clusters: each change is made to what the file holds then."""
    config, home = tmp_path / "config", tmp_path / "home"
    config.mkdir()
    home.mkdir()
    store = ClusterStore(AppPaths(config))
    roots = [str(tmp_path / f"app-root{i}") for i in range(WRITERS)]

    def window() -> None:
        for i in range(WRITERS):
            store.add(ClusterProfile(name=f"app{i}", host="127.0.0.1"))
            store.update_local_roots(roots[i])

    adding = [started("cluster", "add", f"cli{i}", "--host", "127.0.0.1", "--user", "u", config=config, home=home)
              for i in range(WRITERS)]
    app = threading.Thread(target=window)
    app.start()
    results = finished(adding)
    app.join()
    assert all(code == 0 for code, _, _ in results), results
    wanted = {f"app{i}" for i in range(WRITERS)} | {f"cli{i}" for i in range(WRITERS)}
    assert {entry["name"] for entry in saved(config)["clusters"]} == wanted
    assert {entry["name"] for entry in listed_json("cluster", "list", config=config, home=home)} == wanted
    assert set(roots) <= set(saved(config)["local"]["env_roots"])


def test_environments_made_at_once_in_folders_of_their_own_are_all_listed(tmp_path):
    """`env create local prN --root DIR` adds DIR to This computer's folders; four at once, while the window keeps
    adding clusters, keep all four folders and all the window's clusters, so that each environment is listed (T27:
    one vanished, and `env show` said there was no such environment)."""
    config, home = tmp_path / "config", tmp_path / "home"
    config.mkdir()
    home.mkdir()
    store = ClusterStore(AppPaths(config))
    making = [started("env", "create", "local", f"pr{i}", "--kind", "venv", "--root", str(tmp_path / f"proot{i}"),
                      config=config, home=home) for i in range(4)]
    done = threading.Event()
    added: list[str] = []

    def window() -> None:
        while not done.wait(0.05):  # paced as a user's clicks are, however fast
            added.append(f"app{len(added)}")
            store.add(ClusterProfile(name=added[-1], host="127.0.0.1"))

    app = threading.Thread(target=window)
    app.start()
    try:
        results = finished(making)
    finally:
        done.set()
        app.join()
    for code, _, err in results:
        assert code == 0, err
    folders = {str(tmp_path / f"proot{i}") for i in range(4)}
    assert folders <= set(saved(config)["local"]["env_roots"])
    assert [entry["name"] for entry in saved(config)["clusters"]] == added
    listed = listed_json("env", "list", "local", config=config, home=home)
    assert {(env["name"], env["path"]) for env in listed} == {(f"pr{i}", str(tmp_path / f"proot{i}" / f"pr{i}"))
                                                             for i in range(4)}
    assert all((tmp_path / f"proot{i}" / f"pr{i}" / "pyvenv.cfg").is_file() for i in range(4))


def test_a_change_that_cannot_wait_any_longer_says_busy_and_changes_nothing(tmp_path):
    """While another writer holds clusters.yaml (the window, here, mid-change), a command waits, then says so
    with what to do, and the file is as it was."""
    config, home = tmp_path / "config", tmp_path / "home"
    config.mkdir()
    home.mkdir()
    store = ClusterStore(AppPaths(config))
    store.add(ClusterProfile(name="kept", host="127.0.0.1"))
    before = saved(config)
    with store._changing():
        code, out, err = finished([started("cluster", "add", "late", "--host", "127.0.0.1", config=config,
                                           home=home)])[0]
    assert code == 1 and not out, (out, err)
    assert f"has been changing {config / 'clusters.yaml'}" in err and "nothing was changed" in err, err
    assert "then try again" in err, err
    assert saved(config) == before
    assert [entry["name"] for entry in listed_json("cluster", "list", config=config, home=home)] == ["kept"]


def test_a_lock_whose_holder_was_killed_is_free_at_once(tmp_path, monkeypatch):
    """A process killed while it changed clusters.yaml (kill -9, a crash, a closed laptop lid's power cut) leaves no
    lock behind to be judged stale by its age: the system drops it with the process. Asked with no time to wait,
    the lock is busy while the other process holds it, and free once it is gone."""
    config, home = tmp_path / "config", tmp_path / "home"
    config.mkdir()
    home.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(config)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        monkeypatch.setattr(config_module, "CHANGE_WAIT", 0.0)
        store = ClusterStore(AppPaths(config))
        with pytest.raises(Busy):
            store.add(ClusterProfile(name="early", host="127.0.0.1"))
    finally:
        holder.kill()
        holder.communicate(timeout=600)
    store.add(ClusterProfile(name="after", host="127.0.0.1"))
    assert [entry["name"] for entry in saved(config)["clusters"]] == ["after"]
    assert [entry["name"] for entry in listed_json("cluster", "list", config=config, home=home)] == ["after"]


def test_folders_added_to_one_cluster_at_once_are_all_kept(tmp_path):
    """`cluster edit c --env-root DIR` run four times at once, each with its own folder: each adds its folder to the
    cluster's folders as saved when it writes, so all four are kept (and the cluster's other settings)."""
    config, home = tmp_path / "config", tmp_path / "home"
    config.mkdir()
    home.mkdir()
    ClusterStore(AppPaths(config)).add(ClusterProfile(name="c", host="127.0.0.1", user="u", slurm_account="def-lab"))
    editing = [started("cluster", "edit", "c", "--env-root", f"/project/lab/envs{i}", config=config, home=home)
               for i in range(WRITERS)]
    for code, _, err in finished(editing):
        assert code == 0, err
    entry, = saved(config)["clusters"]
    assert sorted(entry["env_roots"]) == [f"/project/lab/envs{i}" for i in range(WRITERS)]
    shown, = listed_json("cluster", "list", config=config, home=home)
    assert sorted(shown["env_roots"]) == sorted(entry["env_roots"]) and shown["slurm_account"] == "def-lab"


def test_threads_of_one_process_take_the_lock_one_at_a_time_where_the_system_lock_is_the_processs(
        tmp_path, monkeypatch):
    """R21: on an NFS home, flock is emulated by record locks, which belong to the process: two threads of the
    window (a worker adding a folder, the window saving) would both hold it. Stand-in for that file system: the
    system's lock always granted (fileio._lock_now), as it is to a second thread there. Referee: a counter each
    thread reads, then writes one more, 20 times: none of the 40 increments is lost."""
    from envdesk.backend import fileio
    monkeypatch.setattr(fileio, "_lock_now", lambda handle, path: True)
    counter = tmp_path / "counter"
    counter.write_text("0")

    def add() -> None:
        for _ in range(20):
            with fileio.locked(tmp_path / "counter.lock", 30, lambda: Busy("busy")):
                seen = int(counter.read_text())
                threading.Event().wait(0.002)  # the other thread runs meanwhile
                counter.write_text(str(seen + 1))
    workers = [threading.Thread(target=add) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert counter.read_text() == "40"
