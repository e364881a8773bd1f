"""A connection kept between commands (`envdesk cluster connect`), as OpenSSH's ControlPersist keeps one: the
two-factor login happens once, later commands log in no more, and what they run behaves as over their own login.

Referees: sshd's own log for how many logins there were, `pip list` run on the cluster for what an environment
built through the kept connection holds, the operating system for whether the background process still runs
(and the files' permissions), a real OpenSSH server for a record that points at something else.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pwd
import signal
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from envdesk.backend import kept_connection
from envdesk.backend.config import ClusterProfile, ClusterStore
from envdesk.backend.kept_connection import KeptRecord
from envdesk.backend.errors import CommandFailed, ConnectionFailed
from envdesk.backend.paths import AppPaths
from envdesk.backend.prompts import NoPrompter
from envdesk.backend.runner import CommandResult
from envdesk.backend.targets import Session
from envdesk_fixtures import (ScriptedPrompter, cancel_leaves_nothing_running, canon, cli_on_a_terminal, make_config,
                              run_cli, unique)


def profile(paths: AppPaths, name: str) -> ClusterProfile:
    return ClusterStore(paths).get(name)


def logins(cluster) -> int:
    """Logins sshd accepted: those of the method that completes one (the last one it asks for)."""
    return cluster.log_text().count(f"Accepted {cluster.auth_methods.split(',')[-1]}")


def keeper_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for every purpose here
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def wait_until(condition, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def kept_shown(config: Path, home: Path) -> dict[str, bool]:
    listed = run_cli("cluster", "list", "--json", config=config, home=home)
    assert listed.returncode == 0, listed.stderr
    return {cluster["name"]: cluster["kept_connection"] for cluster in json.loads(listed.stdout)}


@pytest.fixture
def kept(request):
    """Ends every keeper a test started, whatever happened to it."""
    started: list[tuple[AppPaths, str]] = []
    yield started
    for paths, name in started:
        record = kept_connection.read_record(paths, name)
        with contextlib.suppress(Exception):  # the test's own failure says what went wrong
            kept_connection.stop(paths, name)
        if record is not None and keeper_alive(record.pid):
            os.kill(record.pid, signal.SIGKILL)


def keep(testbed, tmp_path: Path, kept: list, name: str, idle: float = 30) -> tuple[Path, AppPaths, KeptRecord]:
    """A config folder with the test-bed cluster `name`, and a kept connection to it (ended after the test)."""
    config = tmp_path / "cfg"
    paths = make_config(config, testbed, [name])
    kept.append((paths, name))
    record, started = kept_connection.connect(paths, profile(paths, name), NoPrompter(), idle)
    assert started
    return config, paths, record


def test_two_factor_code_is_typed_once_for_all_the_commands_that_follow(testbed, tmp_path, home, kept):
    cluster = testbed.clusters["otp"]
    config = tmp_path / "cfg"
    paths = make_config(config, testbed, ["otp"])
    kept.append((paths, "otp"))
    before = logins(cluster)

    typed: list[str] = []
    code, transcript, prompts = cli_on_a_terminal("cluster", "connect", "otp", config=config, home=home,
                                                  answer=lambda prompt: typed.append(cluster.totp_now()) or typed[-1])
    assert code == 0, transcript
    assert len(prompts) == 1 and "One-time password" in prompts[0], prompts  # the keeper's question, asked here
    assert "Connected to otp" in transcript
    assert logins(cluster) == before + 1

    # commands without any terminal: nobody could type a code, and none is needed
    name = unique("kept")
    created = run_cli("env", "create", "otp", name, "--kind", "venv", "--package", "tinyalpha==1.1", "-q",
                      config=config, home=home)
    assert created.returncode == 0, created.stderr
    shown = run_cli("env", "show", "otp", name, "--json", config=config, home=home)
    assert shown.returncode == 0, shown.stderr
    listed = run_cli("env", "list", "otp", "--json", config=config, home=home)
    assert listed.returncode == 0, listed.stderr
    assert logins(cluster) == before + 1, "a command logged in again"

    referee = cluster.run_as_user(f"~/venvs/{name}/bin/python -m pip list --format json --disable-pip-version-check")
    pip_says = {canon(p["name"]): p["version"] for p in json.loads(referee.stdout)}
    envdesk_says = {canon(p["name"]): p["version"] for p in json.loads(shown.stdout)["packages"]}
    assert envdesk_says == pip_says and pip_says["tinyalpha"] == "1.1"
    assert name in [env["name"] for env in json.loads(listed.stdout)]
    written = list(kept_connection.record_path(paths, "otp").parent.iterdir())  # the keeper's record, lock and log
    assert sorted(path.suffix for path in written) == [".json", ".lock", ".log"]
    assert not [path for path in written if typed[0].encode() in path.read_bytes()], "the code was written down"

    record = kept_connection.read_record(paths, "otp")
    assert record is not None
    assert kept_shown(config, home) == {"otp": True}
    tested = run_cli("cluster", "test", "otp", config=config, home=home)
    assert tested.returncode == 0 and "logging in itself was not tested" in tested.stdout, tested.stdout
    ended = run_cli("cluster", "disconnect", "otp", config=config, home=home)
    assert ended.returncode == 0 and "Disconnected from otp" in ended.stdout
    assert wait_until(lambda: not keeper_alive(record.pid)), "the background process still runs"
    assert not kept_connection.record_path(paths, "otp").exists()
    assert kept_shown(config, home) == {"otp": False}

    # once it is ended, a command without a terminal has to log in, and cannot type the code
    again = run_cli("env", "list", "otp", config=config, home=home)
    assert again.returncode == 1 and "not a terminal" in again.stderr, again.stderr
    assert "envdesk cluster connect otp" in again.stderr  # how a script gets by


def test_a_new_servers_key_is_asked_about_here_and_a_no_starts_nothing(testbed, tmp_path, home, kept):
    cluster = testbed.clusters["alpha"]
    config = tmp_path / "cfg"
    paths = make_config(config, testbed, ["alpha"], trusted=False)
    kept.append((paths, "alpha"))
    before = logins(cluster)
    code, transcript, _ = cli_on_a_terminal("cluster", "connect", "alpha", config=config, home=home,
                                            answer=lambda prompt: "")  # the key question is answered 'n'
    assert code == 1, transcript
    # OpenSSH's own fingerprint of the server's key is the one shown, with the question
    keygen = subprocess.run(["ssh-keygen", "-lf", "-"], input=cluster.known_hosts_line(), capture_output=True,
                            text=True, check=True)
    assert keygen.stdout.split()[1] in transcript and "[y/N]" in transcript, transcript
    assert "Connected" not in transcript
    assert not kept_connection.record_path(paths, "alpha").exists()
    assert logins(cluster) == before


def test_commands_through_it_behave_as_over_their_own_login(testbed, tmp_path, home, kept):
    cluster = testbed.clusters["alpha"]
    _, paths, record = keep(testbed, tmp_path, kept, "alpha")
    before = logins(cluster)
    session = Session(paths, ScriptedPrompter())
    try:
        runner = session.target("alpha").runner
        failed = runner.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
        assert (failed.exit_status, failed.stdout, failed.stderr.strip()) == (3, "out\n", "err")
        payload = os.urandom(3_000_000).hex().encode()  # 6 MB: more than paramiko's and OpenSSH's windows (2 MiB)
        echoed = runner.run(["sh", "-c", "cat; echo done >&2"], stdin=payload)
        assert echoed.ok and echoed.stdout.encode() == payload and echoed.stderr.strip() == "done"
        with pytest.raises(CommandFailed):
            runner.run(["false"]).check("Running false")
        cancel_leaves_nothing_running(cluster, runner, 3)  # the kill travels through it too
    finally:
        session.close()
    assert logins(cluster) == before, "a command logged in again"
    assert kept_connection.read_record(paths, "alpha") == record  # still serving after all that


def test_its_files_are_the_users_alone(testbed, tmp_path, home, kept):
    _, paths, _ = keep(testbed, tmp_path, kept, "alpha")
    record_file = kept_connection.record_path(paths, "alpha")
    assert stat.S_IMODE(record_file.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(record_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(record_file.with_suffix(".log").stat().st_mode) == 0o600


def test_a_keeper_that_died_is_not_used_and_the_command_logs_in_itself(testbed, tmp_path, home, kept):
    cluster = testbed.clusters["alpha"]
    config, paths, record = keep(testbed, tmp_path, kept, "alpha")
    os.kill(record.pid, signal.SIGKILL)
    assert wait_until(lambda: not keeper_alive(record.pid))
    before = logins(cluster)
    listed = run_cli("env", "list", "alpha", config=config, home=home)
    assert listed.returncode == 0, listed.stderr
    assert logins(cluster) == before + 1
    assert not kept_connection.record_path(paths, "alpha").exists(), "the dead keeper's record stayed"


def test_a_record_pointing_at_another_server_gets_no_token(testbed, tmp_path, home, kept):
    """Something else on the recorded port (here a real OpenSSH server): its key is not the recorded one, so the
    token is never sent to it, and the command logs in itself."""
    alpha, beta = testbed.clusters["alpha"], testbed.clusters["beta"]
    config, paths, record = keep(testbed, tmp_path, kept, "alpha")
    kept_connection.stop(paths, "alpha")
    kept_connection.write_record(paths, dataclasses.replace(record, port=beta.port))
    beta_before, alpha_before = beta.log_text(), logins(alpha)
    listed = run_cli("env", "list", "alpha", config=config, home=home)
    assert listed.returncode == 0, listed.stderr
    assert logins(alpha) == alpha_before + 1
    beta_after = beta.log_text()[len(beta_before):]
    assert "envdesk" not in beta_after and "password" not in beta_after.lower(), beta_after
    assert not kept_connection.record_path(paths, "alpha").exists()


def test_edited_login_settings_are_not_served_by_the_old_connection(testbed, tmp_path, home, kept):
    cluster = testbed.clusters["alpha"]
    config, paths, _ = keep(testbed, tmp_path, kept, "alpha")
    # the Slurm account is no login setting: still served
    assert run_cli("cluster", "edit", "alpha", "--account", "def-kept", config=config, home=home).returncode == 0
    before = logins(cluster)
    assert run_cli("env", "list", "alpha", config=config, home=home).returncode == 0
    assert logins(cluster) == before
    # how to log in is: the command logs in itself
    edited = profile(paths, "alpha")
    ClusterStore(paths).replace(dataclasses.replace(edited, auth="key" if edited.auth != "key" else "auto"))
    assert run_cli("env", "list", "alpha", config=config, home=home).returncode == 0
    assert logins(cluster) == before + 1


def test_it_ends_once_unused_for_its_idle_time(testbed, tmp_path, home, kept):
    _, paths, record = keep(testbed, tmp_path, kept, "alpha", idle=0.05)  # 3 s
    assert wait_until(lambda: not keeper_alive(record.pid), 60), "still running long after its idle time"
    assert not kept_connection.record_path(paths, "alpha").exists()


def test_it_ends_when_the_clusters_connection_drops(testbed, tmp_path, home, kept):
    cluster = testbed.clusters["beta"]
    config, _, record = keep(testbed, tmp_path, kept, "beta")
    # a command first: sshd's process for the logged-in user is there for sure (it forks it after the login)
    assert run_cli("env", "list", "beta", config=config, home=home).returncode == 0
    assert cluster.kill_sessions() >= 1
    assert wait_until(lambda: not keeper_alive(record.pid)), "it kept running without its connection"
    before = logins(cluster)
    listed = run_cli("env", "list", "beta", config=config, home=home)
    assert listed.returncode == 0, listed.stderr
    assert logins(cluster) == before + 1


@pytest.mark.parametrize("idle", ["0", "-5", "20000", "nan"])
def test_an_idle_time_out_of_range_starts_nothing(testbed, tmp_path, home, idle):
    config = tmp_path / "cfg"
    paths = make_config(config, testbed, ["alpha"])
    result = run_cli("cluster", "connect", "alpha", "--idle", idle, config=config, home=home)
    assert result.returncode == 1 and "--idle" in result.stderr, result.stderr
    assert not kept_connection.record_path(paths, "alpha").parent.exists()


def test_a_listing_through_it_is_answered_by_the_agent_it_keeps_and_sees_every_change(testbed, tmp_path, home, kept):
    """After the first listings, `env list` runs no command on the cluster any more (sshd's log of sessions is the
    referee): the keeper's agent answers. What pip itself does to an environment meanwhile shows at once."""
    cluster = testbed.clusters["beta"]
    names = [unique("kl"), unique("kl")]
    for name in names:
        cluster.run_as_user(f"python3 -m venv ~/venvs/{name} && ~/venvs/{name}/bin/pip install -q --no-index "
                            f"--find-links {cluster.wheelhouse} tinyalpha==1.1")
    config, _, _ = keep(testbed, tmp_path, kept, "beta")

    def listed() -> dict[str, int]:
        result = run_cli("env", "list", "beta", "--json", config=config, home=home)
        assert result.returncode == 0, result.stderr
        return {env["name"]: env["package_count"] for env in json.loads(result.stdout) if env["name"] in names}

    def pip_counts() -> dict[str, int]:
        return {name: len(json.loads(cluster.run_as_user(
            f"~/venvs/{name}/bin/pip list --format json --disable-pip-version-check").stdout)) for name in names}

    for _ in range(2):  # the first stores the agent there, the second starts it (as the app's, see agent_session)
        assert listed() == pip_counts()
    commands = len(cluster.session_commands())
    assert listed() == pip_counts()
    cluster.run_as_user(f"~/venvs/{names[0]}/bin/pip install -q --no-index --find-links {cluster.wheelhouse} "
                        "tinybeta")
    changed = listed()
    assert changed == pip_counts() and changed[names[0]] == changed[names[1]] + 1
    assert len(cluster.session_commands()) == commands, "a listing ran a command of its own on the cluster"


def cpu_seconds(pid: int) -> float:
    """The process's CPU time so far, as the kernel counts it (utime + stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_it_does_not_spin_while_a_command_runs(testbed, tmp_path, home, kept):
    """A command that sends its input and then waits: the keeper waits too (the kernel's CPU count is the referee;
    a pump that spun took most of a core)."""
    _, paths, record = keep(testbed, tmp_path, kept, "alpha")
    session = Session(paths, ScriptedPrompter())
    try:
        runner = session.target("alpha").runner
        runner.run(["true"])
        before = cpu_seconds(record.pid)
        waited = runner.run(["sh", "-c", "cat >/dev/null; sleep 4; echo done"], stdin=b"input\n")
        used = cpu_seconds(record.pid) - before
    finally:
        session.close()
    assert waited.stdout == "done\n"
    assert used < 1.0, f"the keeper used {used:.2f} s of CPU while the command slept 4 s"


def test_channels_closed_before_their_command_give_the_clusters_sessions_back(testbed, tmp_path, home, kept):
    """Commands cancelled between opening their channel and sending it: the sessions the keeper opened for them on
    the cluster are closed, or sshd refuses every command once they reach its MaxSessions (64 on the test bed)."""
    from paramiko import ChannelException
    _, paths, record = keep(testbed, tmp_path, kept, "alpha")
    client = kept_connection.dial(record)  # kept open throughout: what it opened and left is freed all the same
    session = Session(paths, ScriptedPrompter())
    try:
        for _ in range(80):
            with contextlib.suppress(ChannelException):  # the cluster's refusal, passed on, while they are freed
                client.open_session(timeout=20).close()
        runner = session.target("alpha").runner
        results = [runner.run(["echo", str(number)]) for number in range(12)]
    finally:
        session.close()
        client.close()
    assert [result.stdout for result in results] == [f"{number}\n" for number in range(12)]


def test_a_silent_local_connection_does_not_hold_up_the_others(testbed, tmp_path, home, kept):
    """Something connects to the keeper's port and says nothing: a command still gets in, and the record stays."""
    _, paths, record = keep(testbed, tmp_path, kept, "alpha")
    with socket.create_connection(("127.0.0.1", record.port)):
        transport = kept_connection.dial_for(paths, profile(paths, "alpha"))
        assert transport is not None
        transport.close()
    assert kept_connection.read_record(paths, "alpha") == record


def test_a_folder_named_envdesk_where_it_is_started_is_not_run(testbed, tmp_path, home, kept):
    """`python -m` looks first in the folder it starts in: a package there must not stand in for the keeper (it
    would be told the secrets typed)."""
    config = tmp_path / "cfg"
    paths = make_config(config, testbed, ["alpha"])
    kept.append((paths, "alpha"))
    here = tmp_path / "project"
    marker = tmp_path / "impostor-ran"
    for package in ("envdesk", "envdesk/backend"):
        (here / package).mkdir(parents=True)
        (here / package / "__init__.py").write_text("")
    (here / "envdesk/backend/keeper.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    result = run_cli("cluster", "connect", "alpha", config=config, home=home, cwd=here)
    assert result.returncode == 0, result.stderr
    assert not marker.exists()
    assert kept_connection.read_record(paths, "alpha") is not None


class Background:
    """A command run through a Session on a thread of its own: `started` once it printed its first line, then
    what it returned or raised."""

    def __init__(self, session: Session, target: str, argv: list[str]) -> None:
        self.started = threading.Event()
        self.result: object = None
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._run, args=(session, target, argv))
        self.thread.start()

    def _run(self, session: Session, target: str, argv: list[str]) -> None:
        try:
            self.result = session.target(target).runner.run(argv, on_line=lambda stream, line: self.started.set())
        except Exception as exc:  # what the caller would see
            self.error = exc


def cut_while_running(paths: AppPaths, name: str, cut) -> ConnectionFailed:
    """What a command running through `name`'s kept connection raises once `cut()` (true once done) cut it."""
    session = Session(paths, ScriptedPrompter())
    command = Background(session, name, ["sh", "-c", "echo started; sleep 30"])
    try:
        assert command.started.wait(60)
        assert cut()
        command.thread.join(60)
    finally:
        session.close()
    assert not command.thread.is_alive()
    assert isinstance(command.error, ConnectionFailed), (command.result, command.error)
    return command.error


def test_a_command_cut_by_the_clusters_drop_is_said_to_be_cut_not_ended(testbed, tmp_path, home, kept):
    """The cluster's connection drops while a command runs through the keeper (its sshd processes killed there):
    the command fails as a connection that ended, not as a command that ended with some status, and says it was
    ended on the cluster (T19: it blamed the network). sshd's processes, killed, are the referee of the cause."""
    cluster = testbed.clusters["beta"]
    _, paths, _ = keep(testbed, tmp_path, kept, "beta")
    said = str(cut_while_running(paths, "beta", lambda: cluster.kill_sessions() >= 1))
    assert "was ended on beta" in said and "network" not in said, said  # T19: it blamed the network


def test_a_command_cut_by_its_keeper_being_killed_says_so_not_the_network(testbed, tmp_path, home, kept):
    """T19: the keeper killed (kill -9) under a running command was said as 'The connection to alpha broke while
    running a command. Check your network connection'. Now it says the kept connection's process ended, and what
    to do. The referee of what happened is the operating system (the process is gone)."""
    _, paths, record = keep(testbed, tmp_path, kept, "alpha")

    def kill() -> bool:
        os.kill(record.pid, signal.SIGKILL)
        return wait_until(lambda: not keeper_alive(record.pid))
    error = cut_while_running(paths, "alpha", kill)
    said = str(error)
    assert "kept connection to alpha" in said and "process" in said and "network" not in said, said
    assert "envdesk cluster connect alpha" in error.hint, error.hint


def test_a_command_killed_midway_leaves_no_lock_that_outlives_it(testbed, tmp_path, home, kept):
    """Through a kept connection every command's sshd is the keeper's: a command killed while it holds an
    environment's lock must not leave it locked for as long as the keeper lives (user trial T8). Once what the
    killed command started there has ended, deleting the half-made environment works, as without a keeper."""
    from envdesk_fixtures import envdesk_command
    cluster = testbed.clusters["alpha"]
    config, _, _ = keep(testbed, tmp_path, kept, "alpha")
    before = logins(cluster)
    name = unique("killed")
    lock = f"~/venvs/{name}.envdesk-lock"
    create = subprocess.Popen([*envdesk_command(), "--config-dir", str(config), "env", "create", "alpha", name,
                               "--kind", "venv", "--package", "tinyalpha==1.0", "-q"],
                              env={**os.environ, "HOME": str(home)}, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: cluster.run_as_user(f"test -d {lock}", check=False).returncode == 0), \
            "the create never took its lock"
    finally:
        create.kill()
        create.wait()

    def deleted() -> bool:
        return run_cli("env", "delete", "alpha", name, "--yes", config=config, home=home).returncode == 0

    assert wait_until(deleted, 120), "the environment stayed locked after the command that locked it was killed"
    assert cluster.run_as_user(f"test -e ~/venvs/{name} || test -e {lock}", check=False).returncode != 0
    assert logins(cluster) == before, "a command logged in itself: the keeper was not what it went through"


def keepers_of(config: Path) -> list[int]:
    """The keeper processes serving this config folder, as the operating system lists them."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"envdesk.backend.keeper" in args and str(config.resolve()).encode() in args and keeper_alive(
                    int(entry.name)):
                found.append(int(entry.name))
    return found


def test_a_disconnect_lets_running_commands_finish(testbed, tmp_path, home, kept):
    """As `ssh -O stop`: no new command goes through it, the one running ends as it would have, then it is gone."""
    config, paths, record = keep(testbed, tmp_path, kept, "alpha")
    session = Session(paths, ScriptedPrompter())
    command = Background(session, "alpha", ["sh", "-c", "echo started; sleep 3; echo done"])
    try:
        assert command.started.wait(60)
        assert kept_connection.stop(paths, "alpha") == 1
        assert not kept_connection.record_path(paths, "alpha").exists()  # new commands log in themselves
        command.thread.join(60)
    finally:
        session.close()
    result = command.result
    assert isinstance(result, CommandResult) and result.ok and result.stdout == "started\ndone\n", command.error
    assert wait_until(lambda: not keeper_alive(record.pid)), "it went on once its last command ended"


def test_connects_at_once_leave_one_keeper(testbed, tmp_path, home, kept):
    """Several `cluster connect` at the same time (a script's jobs): each logs in, one serves, the others end."""
    config = tmp_path / "cfg"
    paths = make_config(config, testbed, ["alpha"])
    kept.append((paths, "alpha"))
    records: list[KeptRecord] = []
    threads = [threading.Thread(target=lambda: records.append(
        kept_connection.connect(paths, profile(paths, "alpha"), NoPrompter(), 30)[0])) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(records) == 4 and len({record.nonce for record in records}) == 1, records
    assert wait_until(lambda: keepers_of(config) == [records[0].pid]), keepers_of(config)


def test_asking_whether_it_is_there_is_no_use_of_it(testbed, tmp_path, home, kept):
    """`cluster list` asks each keeper whether it is there: a script polling it must not keep a login open."""
    _, paths, record = keep(testbed, tmp_path, kept, "alpha", idle=0.05)  # 3 s

    def gone_while_polled() -> bool:
        kept_connection.is_live(paths, profile(paths, "alpha"))
        return not keeper_alive(record.pid)

    assert wait_until(gone_while_polled, 60), "asking whether it was there kept it going"


def test_this_computer_has_no_connection_to_keep(tmp_path, home):
    result = run_cli("cluster", "connect", "local", config=tmp_path / "cfg", home=home)
    assert result.returncode == 1 and "needs no login" in result.stderr, result.stderr


def test_after_a_disconnect_an_operation_under_way_keeps_going_through_it(testbed, tmp_path, home, kept):
    """An operation is several commands in a row (begin, work, finish), its lock tied to its client: a disconnect
    between two of them must not end the keeper under it (its next step would log in itself, or fail in a
    script, and its lock would look abandoned)."""
    cluster = testbed.clusters["alpha"]
    _, paths, record = keep(testbed, tmp_path, kept, "alpha")
    session = Session(paths, ScriptedPrompter())
    try:
        runner = session.target("alpha").runner
        assert runner.run(["true"]).ok
        before = logins(cluster)
        assert kept_connection.stop(paths, "alpha") == 0
        assert runner.run(["echo", "next step"]).stdout == "next step\n"
        assert logins(cluster) == before, "the next step had to log in"
    finally:
        session.close()
    assert wait_until(lambda: not keeper_alive(record.pid)), "it went on once its clients were done"


def test_the_apps_kept_listing_agent_does_not_hold_up_a_disconnect(testbed, tmp_path, home, kept):
    """The app keeps a listing agent running through the connection (see agent_session): that is no command a
    disconnect waits for."""
    from envdesk.backend.operations.listing import list_environments
    _, paths, record = keep(testbed, tmp_path, kept, "alpha")
    app = Session(paths, ScriptedPrompter(), keep_agents=True)
    try:
        for _ in range(3):  # the agent stored, then started, then answering
            list_environments(app, "alpha")
        assert kept_connection.stop(paths, "alpha") == 0
        assert wait_until(lambda: not keeper_alive(record.pid)), "it waited for the app's listing agent"
    finally:
        app.close()


def test_a_greeting_login_shell_still_gets_its_lock_tied_to_the_client(testbed, tmp_path, home, kept):
    """A ~/.bashrc that prints something (clusters' often do): the anchor's process id is still read, and it is a
    process of the user's on the cluster that ends when the client hangs up (ps is the referee)."""
    cluster = testbed.clusters["beta"]
    bashrc = Path(cluster.home) / ".bashrc"
    saved = bashrc.read_bytes() if bashrc.exists() else None
    cluster.run_as_user("echo 'echo Welcome to beta, 12345' >> ~/.bashrc")
    try:
        _, paths, _ = keep(testbed, tmp_path, kept, "beta")
        session = Session(paths, ScriptedPrompter())
        try:
            life = session.target("beta").runner.client_life()
            assert set(life) == {"anchor_pid"}, life
            shown = cluster.run_as_user(f"ps -o uid=,args= -p {life['anchor_pid']}", check=False).stdout.split()
            assert shown[:2] == [str(pwd.getpwnam(cluster.user).pw_uid), "cat"], shown
        finally:
            session.close()
        assert wait_until(lambda: cluster.run_as_user(f"ps -p {life['anchor_pid']}", check=False).returncode != 0), \
            "the anchor outlived its client"
    finally:
        if saved is None:
            bashrc.unlink()
        else:
            bashrc.write_bytes(saved)


def test_a_keeper_started_by_the_version_before_is_found_and_used(testbed, tmp_path, home, kept):
    """R14: records are now named in hexadecimal; the version before named them in base64 (its code, at
    b8ba20d: urlsafe_b64encode without '='), so a keeper it started, still logged in, was not found and the next
    command logged in again (a second code on a two-factor cluster). Referee: sshd's count of logins."""
    import base64
    import socket

    def old_name(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    cluster = testbed.clusters["alpha"]
    config, paths, record = keep(testbed, tmp_path, kept, "alpha")
    current = kept_connection.record_path(paths, "alpha")
    legacy = paths.cache_dir / "kept" / old_name(socket.gethostname()) / f"{old_name('alpha')}.json"
    legacy.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    current.replace(legacy)  # where the version before wrote it
    before = logins(cluster)
    listed = run_cli("env", "list", "alpha", config=config, home=home)
    assert listed.returncode == 0, listed.stderr
    assert logins(cluster) == before, "the command logged in itself instead of using the kept connection"
    assert kept_shown(config, home)["alpha"] and kept_connection.read_record(paths, "alpha") == record


def test_commands_begun_together_through_it_wait_for_a_session_where_the_cluster_allows_few(testbed, tmp_path,
                                                                                             home, kept):
    """T17: with MaxSessions 2, four commands begun together through the kept connection (four command lines at
    once) failed after two seconds ('refused to open a session'), where over logins of their own they wait for
    one. Each Session here stands for one command line's process. Referees: sshd's log (sessions open, refused)
    and what each command printed."""
    from test_agent_channels import Waiting, alpha_behind_own_sshd, refused, sessions_reach
    narrow = alpha_behind_own_sshd(testbed, tmp_path / "narrow-sshd", "narrow", 2)
    try:
        paths = AppPaths(tmp_path / "cfg")
        ClusterStore(paths).add(ClusterProfile(name="narrow", **narrow.profile_fields()))
        with open(paths.known_hosts_file, "a") as handle:
            handle.write(narrow.known_hosts_line() + "\n")
        kept.append((paths, "narrow"))
        _, started = kept_connection.connect(paths, profile(paths, "narrow"), NoPrompter(), 30)
        assert started
        sessions = [Session(paths, ScriptedPrompter()) for _ in range(4)]
        try:
            waiting = [Waiting(narrow, session.target("narrow").runner, 1) for session in sessions]
            sessions_reach(narrow, 2)
            assert refused(narrow) >= 1, "sshd refused no session: the test shows nothing"
            time.sleep(4)  # longer than a command line's own retries of a refusal took
            for each in waiting:  # all at once: a command waiting for a session is released only once it runs
                open(each.go, "w").close()
            for each in waiting:
                each.release()
            for each in waiting:
                each.check()
        finally:
            for session in sessions:
                session.close()
    finally:
        narrow.stop()
