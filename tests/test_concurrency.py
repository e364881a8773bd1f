"""Two writers on one environment, and reads during a write, on a real login node.

The writers are what a user really runs side by side: two app instances (two Sessions, each with its
own configuration and connection) and the app with the `envdesk` CLI. A write is held in its middle
deterministically: pip, once it runs in the environment, is frozen (SIGSTOP) until the test lets it go
(see testbed/faults.py), so nothing depends on a command being slow enough.
"""
from __future__ import annotations

import json
import os
import re
import threading

import pytest

from envdesk.backend.errors import Busy
from envdesk.backend.operations.common import Reservation
from envdesk.backend.operations.create import CreateRequest, create_environment
from envdesk.backend.operations.delete import delete_environment
from envdesk.backend.operations.export import export_environment
from envdesk.backend.operations.listing import list_environments, show_environment
from envdesk.backend.operations.update import Change, update_environment
from envdesk_fixtures import canon, make_config, run_cli, session_for, unique
from testbed.faults import FaultAt, Running

BASE = "tinygamma"          # what the environment holds before each write
BUSY = "is working on this environment"


class Bed:
    """Two app instances' sessions, a CLI configuration, and one environment on beta."""

    def __init__(self, testbed, folder):
        self.beta = testbed.clusters["beta"]
        self.home = folder / "home"
        self.home.mkdir()
        self.config = make_config(folder / "cli", testbed, ["beta"]).config_dir
        self.first = session_for(make_config(folder / "app1", testbed, ["beta"]))
        self.second = session_for(make_config(folder / "app2", testbed, ["beta"]))
        self.name = unique("conc")
        env = create_environment(self.first, "beta", CreateRequest(name=self.name, packages=[BASE])).environment
        self.path = env.path

    def cli(self, *args: str):
        return run_cli(*args, config=self.config, home=self.home)

    def freeze(self) -> dict[str, str]:
        """{name: version} from `pip freeze` of the environment's own Python (pip itself left out)."""
        result = self.beta.run_as_user(f"{self.path}/bin/python -m pip freeze")
        pairs = (line.split("==") for line in result.stdout.splitlines() if "==" in line)
        return {canon(name): version for name, version in pairs}

    def reset(self) -> None:
        extra = sorted(set(self.freeze()) - {BASE})
        if extra:
            update_environment(self.first, "beta", self.name, Change(remove=extra))
        if BASE not in self.freeze():
            update_environment(self.first, "beta", self.name, Change(add=[BASE]))
        assert set(self.freeze()) == {BASE}

    def close(self) -> None:
        try:
            delete_environment(self.first, "beta", self.name)
        finally:
            self.first.close()
            self.second.close()


@pytest.fixture(scope="module")
def bed(testbed, tmp_path_factory):
    folder = tmp_path_factory.mktemp("concurrency")
    with pytest.MonkeyPatch.context() as patch:     # as the `home` fixture, for the whole module
        patch.setenv("HOME", str(folder))
        patch.delenv("SSH_AUTH_SOCK", raising=False)
        made = Bed(testbed, folder)
        try:
            yield made
        finally:
            made.close()


class HeldWrite:
    """An update by the first session, run in a thread and held while pip installs (its last command)."""

    def __init__(self, bed: Bed, change: Change) -> None:
        self.bed, self.change = bed, change
        self.release = threading.Event()
        self.result: object = None
        self.error: BaseException | None = None
        self.watch = FaultAt(Running(bed.beta, "pip installing", bed.path, "pip", "install"), lambda: None,
                             hold=self.release)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.result = update_environment(self.bed.first, "beta", self.bed.name, self.change)
        except BaseException as exc:  # handed to the test
            self.error = exc

    def __enter__(self) -> "HeldWrite":
        self.watch.__enter__()
        self.thread.start()
        if not self.watch.wait().fired:
            self.__exit__(None, None, None)
            raise AssertionError(f"the update never reached pip: {self.error}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.thread.join(300)
        self.watch.__exit__(*exc)

    def finished(self) -> None:
        self.__exit__(None, None, None)
        assert self.error is None, self.error


def test_a_second_writer_is_told_busy_and_changes_nothing(bed):
    bed.reset()
    before = bed.freeze()
    write = HeldWrite(bed, Change(add=["tinybeta"]))
    with write:
        with pytest.raises(Busy) as refused:
            update_environment(bed.second, "beta", bed.name, Change(add=["tinyold==1.2"]))
        assert BUSY in refused.value.message and "update" in refused.value.message
        with pytest.raises(Busy):
            delete_environment(bed.second, "beta", bed.name)
        for argv in (["env", "update", "beta", bed.name, "--add", "tinyold==1.2"],
                     ["env", "delete", "beta", bed.name, "--yes"]):
            result = bed.cli(*argv)
            assert result.returncode != 0 and BUSY in result.stderr, (argv, result.stderr)
            assert "Traceback" not in result.stderr
        assert bed.freeze() == before
        assert os.path.isdir(bed.path)
    write.finished()
    after = bed.freeze()
    assert set(after) == {BASE, "tinybeta", "tinyalpha"}
    assert "tinyold" not in after
    assert not os.path.exists(bed.path + ".envdesk-lock")


def test_of_writers_starting_together_exactly_one_takes_the_lock(bed, testbed, tmp_path):
    """Four app instances reserve the environment at the same moment: one wins, three are told busy."""
    sessions = [bed.first, bed.second] + [session_for(make_config(tmp_path / f"app{i}", testbed, ["beta"]))
                                          for i in range(2)]
    targets = [session.target("beta") for session in sessions]
    for target in targets:
        target.runner.connect()
    start = threading.Barrier(len(targets))
    outcomes: list[object] = [None] * len(targets)

    def take(index: int) -> None:
        start.wait()
        try:
            outcomes[index] = Reservation.take(targets[index], bed.path, list(targets[index].roots),
                                               operation="update")
        except Busy as exc:
            outcomes[index] = exc

    threads = [threading.Thread(target=take, args=(i,)) for i in range(len(targets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    try:
        winners = [o for o in outcomes if isinstance(o, Reservation)]
        assert len(winners) == 1, outcomes
        assert all(isinstance(o, Busy) for o in outcomes if o is not winners[0]), outcomes
    finally:
        for outcome in outcomes:
            if isinstance(outcome, Reservation):
                outcome.release()
        for session in sessions[2:]:
            session.close()
    assert not os.path.exists(bed.path + ".envdesk-lock")


def _exported_packages(text: str) -> dict[str, str]:
    """{name: version} of the pins a requirements export lists (one `name==version` per line)."""
    return {canon(name): version for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", text, re.MULTILINE)}


def test_reads_during_a_write_see_the_old_or_the_new_state(bed):
    bed.reset()
    old = bed.freeze()
    new = {"tinybeta": "1.0", "tinyalpha": "2.0"}
    write = HeldWrite(bed, Change(remove=[BASE], add=["tinybeta"]))
    seen: dict[str, dict[str, str]] = {}
    with write:   # pip uninstall has run, pip install is held
        listing = list_environments(bed.second, "beta")
        env = next(e for e in listing.environments if e.name == bed.name)
        seen["app: list"] = {canon(p.name): p.version for p in env.packages}
        shown = show_environment(bed.second, "beta", bed.name)
        seen["app: show"] = {canon(p.name): p.version for p in shown.packages}
        seen["app: export"] = _exported_packages(export_environment(bed.second, "beta", bed.name, "requirements"))
        result = bed.cli("env", "show", "beta", bed.name, "--json")
        assert result.returncode == 0, result.stderr
        seen["cli: show"] = {canon(p["name"]): p["version"] for p in json.loads(result.stdout)["packages"]}
        result = bed.cli("env", "export", "beta", bed.name, "--format", "requirements")
        assert result.returncode == 0, result.stderr
        seen["cli: export"] = _exported_packages(result.stdout)
    write.finished()
    assert bed.freeze() == new
    installer = {"pip", "setuptools", "wheel"}
    for what, packages in seen.items():
        packages = {name: version for name, version in packages.items() if name not in installer}
        assert packages in (old, new), f"{what} during the write: {packages} (before {old}, after {new})"
