"""A delete that stops part-way leaves either the whole environment at its place or nothing usable there (T19: with
`chmod -R a-w` on an environment but its .envdesk, `env delete --yes` said 'permission denied' after it had removed
.envdesk, .gitignore, .lock and CACHEDIR.TAG: the environment was then listed ok, without its modules).

On the test bed's alpha, whose user is not root, so permissions hold (as root they would not). Referees: the file
system (every entry and its bytes), pip freeze and the environment's own python; never EnvDesk's own listing for
what is on disk.
"""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

from envdesk.backend.protocol import DELETING_SUFFIX, LOCK_SUFFIX
from envdesk_fixtures import envdesk_command, run_cli, unique
from test_delete_safety import listing
from test_failing_installs import pip_freeze
from test_not_writable import alpha, delete, made, runs  # noqa: F401  # alpha: a fixture (the cluster, a root)


def test_a_read_only_environment_is_not_touched_and_the_message_says_what_to_do(alpha):  # noqa: F811
    cluster, root, _, _, _ = alpha
    env = made(alpha, unique("ro"))
    frozen = pip_freeze(env)
    cluster.run_as_user(f"chmod -R a-w {env}; chmod -R u+w {env}/.envdesk")   # T19's very steps
    before = listing(root)
    result = delete(alpha, env)
    assert result.returncode != 0
    assert listing(root) == before, "a delete that failed changed the folder"
    assert pip_freeze(env) == frozen and runs(env)
    said = result.stderr
    assert "Nothing was changed" in said and "read-only for you" in said and f"chmod -R u+w {env}" in said, said
    assert "Traceback" not in said and "Checking that" not in said, said      # refused before the agent's walk
    # its settings writable, a folder inside not: the agent's walk finds that folder before anything is removed
    cluster.run_as_user(f"chmod -R u+w {env} && chmod a-w {env}/lib")
    before = listing(root)
    result = delete(alpha, env)
    said = result.stderr
    assert result.returncode != 0 and listing(root) == before and runs(env), said
    assert "Nothing was deleted" in said and f"{env}/lib is not writable" in said and f"chmod -R u+w {env}" in said
    cluster.run_as_user(f"chmod -R u+w {env}")
    assert delete(alpha, env).returncode == 0
    assert sorted(os.listdir(root)) == []


def test_a_read_only_root_is_said_to_be_not_writable(alpha):  # noqa: F811
    cluster, root, _, _, _ = alpha
    env = made(alpha, unique("rr"))
    cluster.run_as_user(f"chmod a-w {root}")
    before = listing(root)
    result = delete(alpha, env)
    assert result.returncode != 0 and listing(root) == before and runs(env)
    assert f"{root} is not writable for you" in result.stderr and "chmod u+w" in result.stderr, result.stderr
    assert "envdesk -v" not in result.stderr, result.stderr   # T19: the hint was only 'run it again with -v'


def test_a_delete_that_stops_part_way_leaves_nothing_usable_at_its_place(alpha, tmp_path):  # noqa: F811
    """A folder inside it that cannot be removed (a file system mounted on it: EBUSY, as a stuck file system or a
    Ctrl-C stops a delete midway): the environment is gone from its place, what is left is aside, listed as a
    delete that stopped, and deleting that finishes the job."""
    cluster, root, config, _, home = alpha
    env = made(alpha, unique("cut"))
    site = next(env.glob("lib/python*/site-packages"))
    stuck = site / "tinyalpha"
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0777", "tmpfs", str(stuck)], check=True,
                   capture_output=True)
    aside = Path(str(env) + DELETING_SUFFIX)
    try:
        result = delete(alpha, env)
        assert result.returncode != 0, result.stdout
        assert not os.path.lexists(env) and aside.is_dir(), sorted(os.listdir(root))
        assert not runs(aside) and not (aside / "bin").exists()
        assert str(aside) in result.stderr and "cannot be used" in result.stderr, result.stderr
        [entry] = [e for e in json.loads(run_cli("env", "list", "alpha", "--json", config=config,
                                                 home=home).stdout) if e["path"] == str(aside)]
        assert entry["state"] == "broken" and "delete stopped" in entry["error"], entry
    finally:  # the mount moved with the folder it is in
        moved = aside / stuck.relative_to(env)
        subprocess.run(["umount", str(moved if moved.exists() else stuck)], check=True, capture_output=True)
    assert delete(alpha, aside).returncode == 0
    assert sorted(os.listdir(root)) == [] and not os.path.lexists(str(env) + LOCK_SUFFIX)


def test_a_full_delete_leaves_nothing_beside_it(alpha):  # noqa: F811
    _, root, _, _, _ = alpha
    env = made(alpha, unique("ok"))
    mode = stat.S_IMODE(os.stat(root).st_mode)
    result = delete(alpha, env)
    assert result.returncode == 0, result.stderr
    assert os.listdir(root) == [] and stat.S_IMODE(os.stat(root).st_mode) == mode


# ---------------------------------------------------------------------------
# Stopped midway for real: Ctrl-C at the command line, Cancel in the window (T19: 40k files)
# ---------------------------------------------------------------------------

def bulky(alpha, name: str, files: int = 40000) -> Path:  # noqa: F811
    """An environment holding `files` more files in a package folder of its site-packages: its delete takes long
    enough to be stopped midway."""
    cluster = alpha[0]
    env = made(alpha, name)
    site = next(env.glob("lib/python*/site-packages"))
    cluster.run_as_user(f"python3 -c 'import os\nfor d in range({files // 1000}):\n    p = os.path.join(\"{site}\", "
                        f"\"bulk\", \"d%d\" % d)\n    os.makedirs(p)\n    for f in range(1000):\n        "
                        f"open(os.path.join(p, \"f%d\" % f), \"w\").close()'")
    return env


def until_moved_aside(env: Path, still_running) -> Path:
    """The folder the delete moved the environment to, as soon as it is there (while the delete still runs)."""
    aside = Path(str(env) + DELETING_SUFFIX)
    deadline = time.monotonic() + 120
    while not aside.exists() and still_running() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert aside.exists(), "the delete never moved the environment aside"
    return aside


def whole_or_nothing_usable(env: Path) -> None:
    """The referee: at the environment's place, either all of it (its python imports its package) or nothing."""
    assert not os.path.lexists(env) or runs(env), sorted(os.listdir(env))


def test_ctrl_c_during_a_delete_says_what_it_left(alpha):  # noqa: F811
    _, root, config, _, home = alpha
    env = bulky(alpha, unique("big"))
    process = subprocess.Popen([*envdesk_command(), "--config-dir", str(config), "env", "delete", "alpha", str(env),
                                "--yes"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL, env={**os.environ, "HOME": str(home)})
    until_moved_aside(env, lambda: process.poll() is None)
    process.send_signal(signal.SIGINT)
    _, said = process.communicate(timeout=120)
    assert process.returncode == 130, said
    assert "The delete was stopped" in said and f"{env}{DELETING_SUFFIX}" in said and "interrupted." not in said, said
    whole_or_nothing_usable(env)
    aside = Path(f"{env}{DELETING_SUFFIX}")
    if aside.exists():   # deleting what is left finishes the job, and the stopped delete's lock goes with it
        finished = run_cli("env", "delete", "alpha", str(aside), "--yes", config=config, home=home)
        assert finished.returncode == 0, finished.stderr
    assert os.listdir(root) == []


def test_cancel_in_the_window_stops_a_delete_and_says_what_it_left(alpha, qtbot):  # noqa: F811
    from envdesk.backend.paths import AppPaths
    from test_gui import LONG, open_window, select_target
    _, root, config, _, _ = alpha
    env = bulky(alpha, unique("big"))
    window = open_window(qtbot, AppPaths(config))
    select_target(qtbot, window, "alpha")
    qtbot.waitUntil(lambda: any(e.path == str(env) for e in window.env_model.environments), timeout=LONG)
    [found] = [e for e in window.env_model.environments if e.path == str(env)]
    task = window.controller.delete("alpha", found)
    until_moved_aside(env, lambda: not task.done.is_set())
    task.cancel()
    qtbot.waitUntil(task.done.is_set, timeout=LONG)
    row = next(row for row in window.controller.operations.rows if row.title == f"Delete {found.name}")
    qtbot.waitUntil(lambda: row.state in ("cancelled", "done", "failed"), timeout=LONG)
    assert row.state == "cancelled", (row.state, row.latest)   # T19: Cancel was ignored, and the delete went on
    assert row.latest.startswith("The delete was stopped") and f"{env}{DELETING_SUFFIX}" in row.latest, row.latest
    whole_or_nothing_usable(env)
