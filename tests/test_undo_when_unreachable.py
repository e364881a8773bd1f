"""A build cut off by its cluster going away cannot remove what it began: it says so, and what to do (T18: the log
said "Removing the unfinished environment" and the folder stayed, with no word of it in the window). The installer
could not be stopped either, so nothing is removed under it (T19): the words say that it may still finish there.

The cluster is alpha's user behind an sshd of its own; the build waits on a package index that accepts and never
answers, and the sshd is stopped meanwhile (a dropped network). Referees: the folder on the cluster's disk, and
the listing once sshd is back."""
from __future__ import annotations

import socket
import threading
import time

from envdesk.backend.config import ClusterProfile, ClusterStore
from envdesk.backend.errors import EnvDeskError
from envdesk.backend.inventory import read_inventory
from envdesk.backend.operations.create import CreateRequest, create_environment
from envdesk.backend.paths import AppPaths
from envdesk.backend.targets import Session
from envdesk_fixtures import ScriptedPrompter, unique
from test_agent_channels import alpha_behind_own_sshd


def test_a_build_cut_off_with_its_cluster_says_what_it_left_behind(testbed, tmp_path, home):
    cluster = alpha_behind_own_sshd(testbed, tmp_path / "gone-sshd", "gone", 10)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    asked = threading.Event()
    held: list[socket.socket] = []

    def accept_and_say_nothing() -> None:
        while True:
            try:
                connection, _ = silent.accept()
            except OSError:
                return
            held.append(connection)
            asked.set()
    threading.Thread(target=accept_and_say_nothing, daemon=True).start()
    paths = AppPaths(tmp_path / "cfg")
    fields = {**cluster.profile_fields(),
              "pip_args": ["--index-url", f"http://127.0.0.1:{silent.getsockname()[1]}/simple"]}
    ClusterStore(paths).add(ClusterProfile(name="gone", **fields))
    with open(paths.known_hosts_file, "a") as handle:
        handle.write(cluster.known_hosts_line() + "\n")
    session = Session(paths, ScriptedPrompter())
    name = unique("cut")
    failed: list[BaseException] = []

    def build() -> None:
        try:
            create_environment(session, "gone", CreateRequest(name=name, kind="venv", packages=["tinyalpha"]))
        except BaseException as exc:
            failed.append(exc)
    builder = threading.Thread(target=build, daemon=True)
    try:
        builder.start()
        assert asked.wait(180), "the installer never asked the index"
        cluster.stop()  # the cluster goes away while the installer waits
        builder.join(300)
        assert failed and isinstance(failed[0], EnvDeskError), failed
        hint = failed[0].hint
        # the installer could not be stopped (the cluster is gone), so nothing was removed under it (T19)
        assert "could not reach gone to stop" in hint and "may still finish there" in hint, hint
        assert f"{name} was left as it is" in hint and "listed as incomplete" in hint, hint
        folder = cluster.home / "venvs" / name
        assert folder.is_dir(), "the message says it is there: the disk agrees"
        cluster.spawn(cluster.port)
        cluster.wait_ready()
        target = session.target("gone")
        listed = {env.name: env for env in read_inventory(target.runner, target.roots).environments}
        assert listed[name].state == "incomplete", listed.get(name)
    finally:
        silent.close()
        for connection in held:
            connection.close()
        session.close()
        cluster.stop()
        deadline = time.monotonic() + 30
        while (cluster.home / "venvs" / name).exists() and time.monotonic() < deadline:
            cluster.run_as_user(f"rm -rf ~/venvs/{name} ~/venvs/{name}.envdesk-lock", check=False)
            time.sleep(0.5)
