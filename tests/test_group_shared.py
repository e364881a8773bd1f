"""Environments in a lab's shared group folder (T22, HIGH): /project/def-lab/envs style, mode 2770 root:lab, two
users of the bed both in the lab's group, the first with umask 077 (set in its ~/.bashrc, which sshd's bash reads).

EnvDesk shares an environment made or changed there like the folder (group read and search, group write as the
folder allows, the folder's group), says so when it creates one, and its doctor finds one the group cannot use; a
private folder is left to the umask. The lock of an environment there is readable by the group and names its
holder; one a colleague cannot read is not taken over while its holder's heartbeat keeps it fresh.

Referees: the other Unix user really using the environment (its python importing the package, importlib.metadata
listing it, reading the lock's owner file, as that user with runuser), os.stat modes and groups.
"""
from __future__ import annotations

import grp
import json
import os
import shlex
import stat
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from agent_fixtures import load_agent
from envdesk.backend.agent_client import agent_script
from envdesk.backend.operations.common import Reservation
from envdesk.backend.protocol import ANSWER_MARKER
from envdesk_fixtures import MODULES, make_config, run_cli, session_for, unique
from testbed import util


@pytest.fixture
def lab(testbed, tmp_path, home):
    """(first cluster, second cluster, the shared folder, the first user's config, the second's config, HOME, group)."""
    first, second = testbed.clusters["alpha"], testbed.clusters["beta"]
    group = f"edtlab{uuid.uuid4().hex[:6]}"
    top = Path(f"/tmp/edt-{group}")
    shared = top / "def-lab" / "envs"
    util.run(["groupadd", group])
    bashrc = first.home / ".bashrc"
    kept = bashrc.read_text() if bashrc.exists() else None
    try:
        for user in (first.user, second.user):
            util.run(["usermod", "-aG", group, user])
        shared.mkdir(parents=True)
        top.chmod(0o755)
        for folder in (shared.parent, shared):
            os.chown(folder, 0, -1)
            util.run(["chgrp", group, str(folder)])
            folder.chmod(0o2770)
        bashrc.write_text("umask 077\n" + (kept or ""))
        configs = []
        for name, cluster in (("alpha", first), ("beta", second)):
            configs.append(tmp_path / f"cfg-{name}")
            make_config(configs[-1], testbed, [name], **{name: {"env_roots": [str(shared), str(cluster.home)]}})
        yield first, second, shared, configs[0], configs[1], home, group
    finally:
        if kept is None:
            bashrc.unlink()
        else:
            bashrc.write_text(kept)
        util.run(["rm", "-rf", str(top)], check=False)
        util.run(["groupdel", group], check=False)


class SwapOnLook:
    """The agent's os, except that its first lstat of a file named `bait` first swaps the folder holding it for a
    link to `target`: a colleague who may write the shared folder doing so between the walk's listing and the
    change (R20), at the one moment that matters, every time."""

    def __init__(self, bait: str, target: Path) -> None:
        self.bait, self.target, self.swapped = bait, target, False

    def __getattr__(self, name: str):
        return getattr(os, name)

    def lstat(self, path, *args, **kwargs):
        if os.path.basename(path) == self.bait and not self.swapped:
            self.swapped = True
            folder = self.folder
            os.rename(folder, f"{folder}.moved")
            os.symlink(self.target, folder)
        return os.lstat(path, *args, **kwargs)


@pytest.mark.parametrize("walk", ["share_tree", "share_changes"])
def test_sharing_never_follows_a_folder_swapped_for_a_link_midway(tmp_path, walk):
    """The owner's own private file (a key in a 0700 folder) keeps its mode and group when the folder the walk
    listed is swapped for a link to it before its entries are changed (referee: os.stat): the walk of a new
    environment, and the one after a change (all of it changed since it began, here)."""
    ssh = tmp_path / "ssh"
    ssh.mkdir(mode=0o700)
    key = ssh / "id_ed25519"
    key.write_text("secret")
    key.chmod(0o600)
    env = tmp_path / "shared" / "env"
    (env / "lib").mkdir(parents=True)
    (env / "lib" / "id_ed25519").write_text("planted")     # named like the key, so the walk lists that name
    cached = tmp_path / "cache-file"                         # what uv links from the user's private cache
    cached.write_text("module")
    cached.chmod(0o600)
    os.link(cached, env / "module.py")
    before, cache_before = os.stat(key), os.stat(cached)
    agent = load_agent()
    swap = SwapOnLook("id_ed25519", ssh)
    swap.folder = str(env / "lib")
    agent.os = swap
    (tmp_path / "root-link").symlink_to(env.parent)           # a root named through a link, as ~/projects/def-lab
    share = (before.st_gid + 4242, True)
    if walk == "share_tree":
        agent.share_tree(str(tmp_path / "root-link" / "env"), share)
    else:
        agent.share_changes(str(tmp_path / "root-link" / "env"), share, 0)
    assert swap.swapped
    after = os.stat(key)
    assert (stat.S_IMODE(after.st_mode), after.st_gid) == (0o600, before.st_gid)
    assert os.stat(env).st_gid == before.st_gid + 4242       # the walk did share what it should
    copy, cache_after = os.stat(env / "module.py"), os.stat(cached)
    assert (copy.st_gid, stat.S_IMODE(copy.st_mode), copy.st_nlink) == (before.st_gid + 4242, 0o660, 1)
    assert (cache_after.st_gid, stat.S_IMODE(cache_after.st_mode)) == (cache_before.st_gid, 0o600)
    assert (env / "module.py").read_text() == "module" and cache_after.st_nlink == 1


def as_user(cluster, script: str) -> subprocess.CompletedProcess:
    return cluster.run_as_user(script, check=False)


def create(config: Path, home: Path, root: Path, name: str) -> subprocess.CompletedProcess:
    return run_cli("env", "create", "alpha", name, "--root", str(root), "--package", "tinyalpha==1.0",
                   config=config, home=home)


def uses(cluster, env: Path, package: str) -> bool:
    """The referee: the other user's python of the environment imports the package and importlib.metadata lists it."""
    script = (f"import importlib.metadata as m, {package}; "   # an unreadable package imports as an empty
              f"assert {package}.__file__; print(m.version({package!r}))")  # namespace package: no __file__
    result = as_user(cluster, f"{env}/bin/python -c {shlex.quote(script)}")
    return result.returncode == 0 and result.stdout.strip() != ""


def closed_to_group(env: Path, gid: int) -> list[str]:
    """Every file or folder of env the group cannot read (or search), or that is not the group's (os.lstat)."""
    closed = []
    for top, folders, files in os.walk(env):
        for name in [".", *folders, *files]:
            info = os.lstat(os.path.join(top, name))
            if stat.S_ISLNK(info.st_mode):
                continue
            need = 0o050 if stat.S_ISDIR(info.st_mode) else 0o040
            if info.st_mode & need != need or info.st_gid != gid:
                closed.append(os.path.join(top, name))
    return closed


def test_an_environment_made_in_a_shared_folder_is_the_groups_and_says_so(lab):
    first, second, shared, config, _, home, group = lab
    gid = grp.getgrnam(group).gr_gid
    env = shared / unique("labenv")
    made = create(config, home, shared, env.name)
    assert made.returncode == 0, made.stderr
    assert (f"Shared with the group {group}, like its folder: its members may use and update it, and so change "
            "what runs when you use it") in made.stdout, made.stdout
    assert uses(second, env, "tinyalpha"), as_user(second, f"{env}/bin/python -c 'import tinyalpha'").stderr
    assert closed_to_group(env, gid) == []
    assert os.stat(env).st_mode & 0o070 == 0o070          # the folder is group-writable: so is the environment
    uv_lock = env / ".lock"                                 # uv's, made writable by everyone: no longer by others
    assert not uv_lock.exists() or os.stat(uv_lock).st_mode & 0o002 == 0
    # a link the user put in it, to a private folder of theirs: never followed by the sharing
    site = next(env.glob("lib/python*/site-packages"))
    outside = first.home / unique("outside")
    first.run_as_user(f"mkdir -m 700 {outside} && echo s > {outside}/key && chmod 600 {outside}/key && "
                      f"ln -s {outside} {site}/outside-link")
    key_before = os.stat(outside / "key")
    # a change there: the other user sees the new package (uv links it from the first user's private cache)
    added = run_cli("env", "update", "alpha", str(env), "--add", "tinygamma", config=config, home=home)
    assert added.returncode == 0, added.stderr
    assert uses(second, env, "tinygamma") and closed_to_group(env, gid) == []
    key_after = os.stat(outside / "key")
    assert (key_after.st_mode, key_after.st_gid) == (key_before.st_mode, key_before.st_gid)
    linked = [str(p) for p in site.rglob("*") if p.is_file() and not p.is_symlink() and p.stat().st_nlink > 1]
    assert linked == []           # copies: no file of the first user's cache changed its group or mode
    # the first user's own folder is private: left to the umask (077)
    private = first.home / unique("mine")
    made = create(config, home, first.home, private.name)
    try:
        assert made.returncode == 0 and "Shared with" not in made.stdout, made.stderr
        assert stat.S_IMODE(os.stat(private).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(private / "pyvenv.cfg").st_mode) == 0o600
        # uv links from the cache the shared environment's tinyalpha came from (same filesystem), so that one was
        # linked too before EnvDesk made it a copy: the cache's files kept their group and mode
        assert os.stat(private).st_dev == os.stat(shared).st_dev
        private_site = next(private.glob("lib/python*/site-packages"))
        cached = [p.stat() for p in (private_site / "tinyalpha").rglob("*") if p.is_file() and p.stat().st_nlink > 1]
        assert cached, "uv copied tinyalpha instead of linking it: the shared environment's copies prove nothing"
        # (not the lab's group, and not group-writable as sharing makes a file of this group-writable folder;
        # group-readable or not as the umask was when some test filled the cache)
        assert all(one.st_gid != gid and not one.st_mode & 0o020 for one in cached), cached
        # a copy of it (to the first root, the shared folder) and an import there are the group's too
        copy = shared / unique("copy")
        cloned = run_cli("env", "clone", "alpha", str(private), "alpha", "--name", copy.name, "--yes",
                         config=config, home=home)
        assert cloned.returncode == 0 and "Shared with the group" in cloned.stdout, cloned.stderr
        requirements = home / "requirements.txt"
        requirements.write_text("tinyalpha==1.0\n")
        imported = shared / unique("imported")
        done = run_cli("env", "import", "alpha", str(requirements), "--name", imported.name, "--root", str(shared),
                       "--yes", config=config, home=home)
        assert done.returncode == 0 and "Shared with the group" in done.stdout, done.stderr
        for env in (copy, imported):
            assert uses(second, env, "tinyalpha") and closed_to_group(env, gid) == []
    finally:
        util.run(["rm", "-rf", str(private), str(outside)], check=False)


SHELL_PID = 987654321    # in settings, the pid of the shell that runs the agent (the client of a lock it takes)


def agent_as_user(cluster, agent: Path, settings: dict, traced: Path | None = None) -> dict:
    """The agent's answer to `settings`, run as the cluster's user as EnvDesk runs it there (python3, the agent as
    sent); `traced`: under strace, which counts into that file the calls that look a file up by its name (its
    %file class: each a round trip to the metadata server on Lustre or GPFS). SHELL_PID in them is the shell's. They
    travel in a file, as EnvDesk's on stdin: no other process names the environment (see the agent's _workers)."""
    given = agent.with_name(f"settings-{uuid.uuid4().hex[:8]}.json")
    given.write_text(json.dumps(settings))
    given.chmod(0o644)
    run = f'python3 {agent} "${{settings/{SHELL_PID}/$$}}"'
    if traced is not None:
        run = f"strace -f -c -e trace=%file -o {traced} {run}"
    result = cluster.run_as_user(f'settings="$(cat {given})"; {run}; exit $?')
    answer = json.loads(next(line for line in result.stdout.splitlines() if line.startswith(ANSWER_MARKER))
                        [len(ANSWER_MARKER):])
    assert answer.get("ok"), answer
    return answer


def traced_calls(summary: Path) -> int:
    """The total of calls in strace -c's summary (its last line: % time, seconds, usecs/call, calls, ..., total)."""
    last = summary.read_text().strip().splitlines()[-1].split()
    assert last[-1] == "total", summary.read_text()
    return int(last[3])


BULK_PACKAGE = """
import os, sys
files = ["bulkdata/d%d/f%d.py" % (n % 20, n) for n in range(int(sys.argv[1]))] + ["bulkdata/__init__.py"]
for name in files:
    os.makedirs(os.path.dirname(name), exist_ok=True)
    open(name, "w").close()
os.mkdir("bulkdata-1.0.dist-info")
with open("bulkdata-1.0.dist-info/METADATA", "w") as handle:
    handle.write("Metadata-Version: 2.1\\nName: bulkdata\\nVersion: 1.0\\n")
with open("bulkdata-1.0.dist-info/RECORD", "w") as handle:
    handle.write("".join(name + ",,\\n" for name in files + ["bulkdata-1.0.dist-info/METADATA"]))
"""


def test_a_change_in_a_shared_environment_looks_only_at_what_it_made(lab):
    """MED-2: the finish of a small --add in a shared environment shares what the change made (under umask 077,
    linked by uv from the user's private cache) without looking at each of the files already there: on Lustre or
    GPFS a lookup is a round trip, and a walk of a 20,000-file environment took half a minute. Referees: strace's
    count of the finish's lookups by name, the same with and without 2000 files of a package installed before;
    the second user importing the new package; os.lstat of every file (group, mode, one link)."""
    first, second, shared, config, _, home, group = lab
    gid = grp.getgrnam(group).gr_gid
    agent, bulk_package = shared.parent.parent / "agent.py", shared.parent.parent / "bulk.py"  # the lab's to read
    agent.write_text(agent_script(write=True))
    bulk_package.write_text(BULK_PACKAGE)
    for script in (agent, bulk_package):
        script.chmod(0o644)
    lookups = {}
    for bulk in (0, 2000):
        env = shared / unique("bulk")
        made = create(config, home, shared, env.name)
        assert made.returncode == 0, made.stderr
        site = next(env.glob("lib/python*/site-packages"))
        # a large package installed before, as sharing left it (the folder's group, group read and write)
        first.run_as_user(f"umask 007 && cd {site} && python3 {bulk_package} {bulk}")
        assert closed_to_group(env, gid) == []
        begun = agent_as_user(first, agent, {"action": "begin", "path": str(env), "roots": [str(shared)],
                                             "snapshot": True, "operation": "update", "reason": "a test"})
        first.run_as_user(f"module load {MODULES[first.name]} >/dev/null 2>&1; umask 077 && uv pip install -q "
                          f"--python {env}/bin/python {' '.join(first.pip_args)} tinygamma")
        assert closed_to_group(env, gid) != []          # what the install made is the user's alone so far
        summary = first.home / f"finish-{bulk}.strace"
        agent_as_user(first, agent, {"action": "finish", "path": str(env), "roots": [str(shared)],
                                     "token": begun["token"], "snapshot_if_changed": begun["snapshot"]}, summary)
        lookups[bulk] = traced_calls(summary)
        assert uses(second, env, "tinygamma") and closed_to_group(env, gid) == []
        linked = [str(p) for p in site.rglob("*") if p.is_file() and not p.is_symlink() and p.stat().st_nlink > 1]
        assert linked == []
    assert lookups[2000] - lookups[0] < 100, lookups


def test_a_change_after_one_cut_off_shares_what_that_one_made_too(lab):
    """A change whose finish never ran (its client gone) shared nothing of what it installed; the next change,
    which takes its lock over, shares the whole environment. Referees: the second user importing the package the
    cut-off change installed, os.lstat of every file."""
    first, second, shared, config, _, home, group = lab
    agent = shared.parent.parent / "agent.py"
    agent.write_text(agent_script(write=True))
    agent.chmod(0o644)
    env = shared / unique("cutoff")
    made = create(config, home, shared, env.name)
    assert made.returncode == 0, made.stderr
    settings = {"action": "begin", "path": str(env), "roots": [str(shared)], "snapshot": True, "operation": "update",
                "client_pid": SHELL_PID}
    agent_as_user(first, agent, settings)       # its holder (the shell that ran the agent) is gone once it answered
    # under a umask that leaves what it makes readable by the group (the doctor's check finds nothing at the top),
    # but uv links tinygamma's files from the user's own cache, of its group
    first.run_as_user(f"module load {MODULES[first.name]} >/dev/null 2>&1; umask 027 && uv pip install -q "
                      f"--python {env}/bin/python {' '.join(first.pip_args)} tinygamma")
    assert closed_to_group(env, grp.getgrnam(group).gr_gid) != []
    begun = agent_as_user(first, agent, settings)
    assert begun.get("took_over") and begun.get("interrupted"), begun
    agent_as_user(first, agent, {"action": "finish", "path": str(env), "roots": [str(shared)],
                                 "token": begun["token"]})
    assert uses(second, env, "tinygamma") and closed_to_group(env, grp.getgrnam(group).gr_gid) == []


def test_the_doctor_finds_a_shared_environment_the_group_cannot_use(lab):
    first, second, shared, config, _, home, group = lab
    env = shared / unique("closed")
    made = create(config, home, shared, env.name)
    assert made.returncode == 0, made.stderr
    first.run_as_user(f"chmod -R go-rwx {env}/lib")      # what an older EnvDesk, or a hand's install, left
    assert not uses(second, env, "tinyalpha")
    doctor = run_cli("env", "doctor", "alpha", str(env), config=config, home=home)
    assert f"The group {group} cannot use this environment" in doctor.stdout, doctor.stdout + doctor.stderr
    assert f"chmod -R g+rX {env}" in doctor.stdout
    # as the finding says, a change shares all of it again (not only what the change made)
    added = run_cli("env", "update", "alpha", str(env), "--add", "tinygamma", config=config, home=home)
    assert added.returncode == 0, added.stderr
    assert uses(second, env, "tinyalpha") and uses(second, env, "tinygamma")
    assert closed_to_group(env, grp.getgrnam(group).gr_gid) == []


def test_a_colleague_is_told_who_holds_the_lock_and_never_takes_a_fresh_one(lab, testbed):
    first, second, shared, config, other_config, home, group = lab
    env = shared / unique("lockenv")
    made = create(config, home, shared, env.name)
    assert made.returncode == 0, made.stderr
    session = session_for(make_config(config.parent / "held", testbed, ["alpha"],
                                      alpha={"env_roots": [str(shared)]}))
    lock = Path(f"{env}.envdesk-lock")
    try:
        held = Reservation.take(session.target("alpha"), str(env), [str(shared)], operation="update")
        # the lock is readable by whoever may use the environment
        assert as_user(second, f"cat {lock}/owner.json").returncode == 0
        busy = run_cli("env", "update", "beta", str(env), "--add", "tinygamma", config=other_config, home=home)
        assert busy.returncode != 0 and f"by {first.user} on" in busy.stderr, busy.stderr
        # a lock the colleague cannot read (an older EnvDesk's): only its folder can be seen, and the holder's
        # heartbeat keeps that fresh, so it is not taken over however old it looks
        os.chmod(lock, 0o700)
        long_ago = time.time() - 600
        os.utime(lock, (long_ago, long_ago))
        while os.stat(lock).st_mtime <= long_ago + 1:     # the next beat (every 15 s); a hang is the suite's to catch
            time.sleep(1)
        busy = run_cli("env", "update", "beta", str(env), "--add", "tinygamma", config=other_config, home=home)
        assert busy.returncode != 0 and f"by {first.user}" in busy.stderr, busy.stderr
        assert not uses(second, env, "tinygamma")
        held.release()                                    # the holder's lock is still its own
        assert not lock.exists() and not list(shared.glob("*.stale-*"))
    finally:
        session.close()


def test_a_lock_closed_to_a_colleague_is_never_broken_by_them(lab):
    """A lock whose holder has no heartbeat (a delete, or no process to watch) and that the colleague cannot read
    is not taken over after two minutes of silence, and not even after a day's when they could not remove it: two
    clients would believe they held it (R20). Referees: the second Unix user's own run, the lock folder (os.stat)."""
    first, second, shared, config, other_config, home, group = lab
    env = shared / unique("closedlock")
    made = create(config, home, shared, env.name)
    assert made.returncode == 0, made.stderr
    lock = Path(f"{env}.envdesk-lock")
    record = '{"operation": "delete", "token": "t", "host": "elsewhere", "started": 1}'
    first.run_as_user(f"mkdir -m 700 {lock} && echo {shlex.quote(record)} > {lock}/owner.json")
    for silent in (600, 25 * 3600):
        os.utime(lock, (time.time() - silent, time.time() - silent))
        busy = run_cli("env", "update", "beta", str(env), "--add", "tinygamma", config=other_config, home=home)
        assert busy.returncode != 0 and first.user in busy.stderr, busy.stderr
        assert os.stat(lock).st_uid == os.stat(env).st_uid and (lock / "owner.json").exists()
        assert not list(shared.glob("*.stale-*")) and not uses(second, env, "tinygamma")
    assert f"rm -r {lock}" in busy.stderr and "closed to you" in busy.stderr, busy.stderr


def test_advice_names_a_path_with_spaces_as_one_shell_word(tmp_path):
    """The commands the doctor and a busy create tell the user to run keep a path with a space in one word
    (referee: shlex.split, as a POSIX shell splits them)."""
    agent = load_agent(write=False)
    env = tmp_path / "lab envs" / "my env"
    env.mkdir(parents=True)
    (env / "pyvenv.cfg").write_text("home = /usr/bin\n")
    told = agent.group_problem(str(env), (os.stat(env).st_gid + 4242, True))
    command = told[told.index("run: ") + 5:told.index(" (g+rwX")]
    assert shlex.split(command)[3:5] == [str(env), "&&"] and shlex.split(command)[-1] == str(env), told
    told = agent.creating_text(str(env), {})
    assert shlex.split(told[told.index("(rm -r ") + 1:told.index(") and create")]) == [
        "rm", "-r", f"{env}.envdesk-lock"], told
