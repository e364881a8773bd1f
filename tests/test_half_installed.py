"""A package an install left half done (T19: a full disk stopped uv while it wrote tinygamma-0.1.dist-info/METADATA):
the environment is not listed as healthy, a rollback removes it with the files its RECORD names (only inside the
environment, never through a link, never another package's file), and a change whose rollback failed leaves the
environment listed as broken.

Referees: `uv pip check` run with the environment's own python ("broken or incomplete"), pip's own "invalid
metadata" warnings, pip freeze, and the file system; never EnvDesk's own listing for what is on disk.
"""
from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import subprocess
import uuid
import zipfile
from pathlib import Path
from typing import Iterator

import pytest

from agent_fixtures import load_agent, make_venv, uv_bin
from envdesk.backend.errors import EnvDeskError
from envdesk.backend.operations.common import Progress, capabilities
from envdesk.backend.operations.create import CreateRequest, create_environment
from envdesk.backend.operations.update import Change, update_environment
from envdesk.backend.protocol import CHANGING_MARK, ENVDESK_DIR, LOCK_SUFFIX, ROLLBACK_FAILED_MARK
from envdesk_fixtures import make_config, run_cli, session_for, unique
from test_failing_installs import envdesk_leftovers, mount_small_disk, pip_freeze, unmount
from testbed import installer_wrapper
from testbed.wheels import WheelSpec, build_wheel


def site_of(env: Path) -> Path:
    return next(env.glob("lib/python*/site-packages"))


def uv_check(env: Path) -> subprocess.CompletedProcess:
    """The referee: uv's own check of the environment, run with its python."""
    return subprocess.run([uv_bin(), "pip", "check", "--python", str(env / "bin" / "python")], capture_output=True,
                          text=True, timeout=120)


def nameless(env: Path) -> list[str]:
    """The package folders whose metadata has no Name, as the environment's own importlib.metadata reads them: what
    pip skips ("invalid metadata entry 'name'", which only some versions of pip say)."""
    code = ("import importlib.metadata as m, os; print('\\n'.join(os.path.basename(str(d._path)) "
            "for d in m.distributions() if not d.metadata['Name']))")
    return subprocess.run([str(env / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True,
                          timeout=120).stdout.split()


def entries(top: Path) -> dict[str, str]:
    """Every entry under top, links not followed: a link's target, else its kind."""
    found = {}
    for folder, dirs, files in os.walk(top):
        for name in dirs + files:
            path = Path(folder, name)
            found[str(path.relative_to(top))] = ("link -> " + os.readlink(path) if path.is_symlink() else
                                                 "dir" if path.is_dir() else "file")
    return found


def venv_with_tinyalpha(tmp_path: Path) -> Path:
    """A real uv environment in root/ holding tinyalpha 1.0, installed by uv from a real wheel."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel = build_wheel(wheels, WheelSpec("tinyalpha", "1.0"))
    env = Path(make_venv(tmp_path / "root" / "env", tool="uv"))
    subprocess.run([uv_bin(), "pip", "install", "-q", "--python", str(env / "bin" / "python"), str(wheel)],
                   check=True, capture_output=True)
    (env / ENVDESK_DIR).mkdir(exist_ok=True)
    (env / ENVDESK_DIR / "meta.json").write_text("{}\n")
    return env


def half_installed(site: Path, name: str, record: list[str]) -> Path:
    """A dist-info folder as uv left it when the disk filled: its RECORD, and no METADATA."""
    folder = site / f"{name}-1.0.dist-info"
    folder.mkdir()
    (folder / "RECORD").write_text("".join(f"{row},,\n" for row in record + [f"{folder.name}/RECORD"]))
    return folder


def listed(agent, env: Path) -> dict:
    answer = agent.inventory({"roots": [str(env.parent)], "cache": False})
    [found] = [e for e in answer["environments"] if e["path"] == str(env)]
    return found


def test_a_package_without_metadata_makes_the_environment_broken(tmp_path):
    """T19: `env list` showed the environment healthy while uv pip check called it broken."""
    agent = load_agent(write=False)
    env = venv_with_tinyalpha(tmp_path)
    assert uv_check(env).returncode == 0 and listed(agent, env)["state"] == "ok"
    folder = half_installed(site_of(env), "tinygamma", ["tinygamma/__init__.py"])
    checked = uv_check(env)
    assert checked.returncode != 0 and "broken or incomplete" in checked.stderr + checked.stdout, checked
    assert folder.name in nameless(env)
    found = listed(agent, env)
    assert found["state"] == "broken" and str(folder) in found["error"], found
    assert found["incomplete_packages"] == [str(folder)]
    assert [p["name"] for p in found["packages"]] == ["tinyalpha"]
    light = agent.inventory({"roots": [str(env.parent)], "cache": False, "light": True})["environments"][0]
    assert light["state"] == "broken", light


def test_the_clean_up_removes_what_the_record_names_inside_the_environment_only(tmp_path):
    agent = load_agent(write=True)
    env = venv_with_tinyalpha(tmp_path)
    site = site_of(env)
    up = os.path.relpath(env, site)    # ../../..: from site-packages to the environment's top
    (site / "tinygamma").mkdir()
    for name in ("__init__.py", "core.py"):
        (site / "tinygamma" / name).write_text("x = 1\n")
    (env / "bin" / "tinygamma-run").write_text("#!/bin/sh\n")
    outside = tmp_path / "outside.txt"
    outside.write_text("not the environment's\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.txt").write_text("not the environment's either\n")
    (site / "linkdir").symlink_to(elsewhere)
    (site / "tinygamma" / "link-out").symlink_to(outside)
    folder = half_installed(site, "tinygamma", [
        "tinygamma/__init__.py", "tinygamma/core.py", "tinygamma/link-out", f"{up}/bin/tinygamma-run",
        "tinyalpha/__init__.py",                                        # tinyalpha's, whole: kept
        f"{up}/bin/python", f"{up}/pyvenv.cfg", f"{up}/{ENVDESK_DIR}/meta.json",  # the environment's own
        f"{up}/../outside.txt", f"{up}/../../outside.txt", str(outside),          # outside it
        "linkdir/x.txt",                                                # through a link out of it
    ])
    kept_before = half_installed(site, "oldhalf", [])     # there before the change: kept
    before = entries(tmp_path)
    begun = agent.run_action({"action": "begin", "path": str(env), "roots": [str(env.parent)], "snapshot": True,
                              "reason": "test", "operation": "update"})
    assert begun["ok"], begun
    assert sorted(begun["env"]["incomplete_packages"]) == sorted([str(folder), str(kept_before)])
    cleaned = agent.run_action({"action": "clean", "path": str(env), "roots": [str(env.parent)],
                                "token": begun["token"], "keep": [str(kept_before)]})
    assert cleaned["ok"], cleaned
    assert [r["path"] for r in cleaned["removed"]] == [str(folder)] and cleaned["removed"][0]["files"] == 4
    gone = {rel for rel in before if rel not in entries(tmp_path)}
    site_rel = str(site.relative_to(tmp_path))
    assert gone == {f"{site_rel}/tinygamma", f"{site_rel}/tinygamma/__init__.py", f"{site_rel}/tinygamma/core.py",
                    f"{site_rel}/tinygamma/link-out", "root/env/bin/tinygamma-run", f"{site_rel}/{folder.name}",
                    f"{site_rel}/{folder.name}/RECORD"}, gone
    assert outside.read_text() == "not the environment's\n" and (elsewhere / "x.txt").exists()
    assert subprocess.run([str(env / "bin" / "python"), "-c", "import tinyalpha"]).returncode == 0
    checked = uv_check(env)   # only the folder that was there before is left broken
    assert "oldhalf" in checked.stderr and "tinygamma" not in checked.stderr, checked.stderr
    assert agent.run_action({"action": "abort", "path": str(env), "roots": [str(env.parent)],
                             "token": begun["token"], "drop_snapshot": begun["snapshot"]})["ok"]


def test_the_clean_up_never_removes_a_file_a_conda_package_lists(tmp_path):
    """R18: a half-installed wheel whose RECORD names a file conda installed (a data file laid over conda's,
    ../../libssl.so.3 from site-packages) took that file with it: only pip's records were asked who else owns a
    file. Referee: rattler (a conda implementation) reads the conda-meta record that lists it."""
    import rattler
    from agent_fixtures import conda_record, make_conda_prefix
    agent = load_agent(write=True)
    record = dict(conda_record("openssl", "3.2.1", "hd590300_1"), files=["lib/libssl.so.3"])
    prefix = Path(make_conda_prefix(tmp_path / "cenv", records=[record], python="3.11.5"))
    (prefix / "lib" / "libssl.so.3").write_text("conda's\n")
    site = site_of(prefix)
    (site / "foo").mkdir()
    (site / "foo" / "__init__.py").write_text("x = 1\n")
    folder = half_installed(site, "foo", ["foo/__init__.py", "../../libssl.so.3"])
    [openssl] = [rattler.PrefixRecord.from_path(str(path)) for path in (prefix / "conda-meta").glob("openssl-*.json")]
    assert "lib/libssl.so.3" in [str(path) for path in openssl.files]
    assert agent.remove_half_installed(str(prefix), str(folder)) == 1
    assert not folder.exists() and not (site / "foo" / "__init__.py").exists()
    assert (prefix / "lib" / "libssl.so.3").read_text() == "conda's\n"


def test_a_change_whose_rollback_failed_is_listed_broken_until_a_change_puts_it_back(tmp_path):
    """T19's variant: the rollback failed, its mark stayed, and the environment was still listed healthy."""
    agent = load_agent(write=True)
    env = venv_with_tinyalpha(tmp_path)
    roots = [str(env.parent)]
    begun = agent.run_action({"action": "begin", "path": str(env), "roots": roots, "snapshot": True,
                              "reason": "test", "operation": "update"})
    assert begun["ok"], begun
    aborted = agent.run_action({"action": "abort", "path": str(env), "roots": roots, "token": begun["token"],
                                "rollback_failed": True})
    assert aborted["ok"], aborted
    assert (env / ENVDESK_DIR / CHANGING_MARK).exists() and not os.path.lexists(str(env) + LOCK_SUFFIX)
    assert uv_check(env).returncode == 0    # the packages look whole: only the mark says the rollback failed
    found = listed(agent, env)
    assert found["state"] == "broken" and "putting its packages back failed too" in found["error"], found
    assert begun["snapshot"] in found["error"]
    again = agent.run_action({"action": "begin", "path": str(env), "roots": roots, "snapshot": True,
                              "reason": "test", "operation": "update"})
    assert again["ok"] and again["interrupted"]["snapshot"] == begun["snapshot"], again
    finished = agent.run_action({"action": "finish", "path": str(env), "roots": roots, "token": again["token"]})
    assert finished["ok"], finished
    assert not (env / ENVDESK_DIR / ROLLBACK_FAILED_MARK).exists()
    assert listed(agent, env)["state"] == "ok"


# ---------------------------------------------------------------------------
# A real update on a real full disk (T19): uv on the test bed's alpha, a small tmpfs as the environment root
# ---------------------------------------------------------------------------

HEAVY = "tinyheavy"
HEAVY_METADATA = {"1.0": 300 * 1024, "2.0": 600 * 1024}  # a long description: the one file that needs room


def write_heavy_wheel(folder: Path, version: str) -> Path:
    """tinyheavy: two small modules and a METADATA of HEAVY_METADATA[version] bytes, which a nearly full disk
    cannot take: uv stops while it writes the dist-info, as T19's did."""
    def digest(data: bytes) -> str:
        return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    dist_info = f"{HEAVY}-{version}.dist-info"
    head = f"Metadata-Version: 2.1\nName: {HEAVY}\nVersion: {version}\n\n".encode()
    files = {f"{HEAVY}/__init__.py": f'__version__ = "{version}"\n'.encode(), f"{HEAVY}/core.py": b"x = 1\n",
             f"{dist_info}/METADATA": head + b"z" * HEAVY_METADATA[version],
             f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: envdesk-tests\nRoot-Is-Purelib: true\n"
                                   b"Tag: py3-none-any\n"}
    record = [f"{name},{digest(data)},{len(data)}" for name, data in files.items()] + [f"{dist_info}/RECORD,,"]
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = folder / f"{HEAVY}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data)
    path.chmod(0o644)
    return path


@dataclasses.dataclass
class Disk:
    """alpha with a small tmpfs as its only environment root, a session and a config for it."""

    root: Path
    config: Path
    home: Path
    session: object
    cluster: object

    def env(self, name: str) -> Path:
        return self.root / name

    def cli_json(self, *args: str):
        result = run_cli(*args, "--json", config=self.config, home=self.home)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    @contextlib.contextmanager
    def filled_before_each_install(self, leave: int) -> Iterator[None]:
        """uv fills the disk, leaving `leave` bytes, right before each install it runs (the change's and the
        rollback's): the disk is full while it installs, however fast it is (testbed.installer_wrapper)."""
        target = self.session.target("alpha")
        caps = capabilities(self.session, target, Progress())
        wrapper = installer_wrapper.write_filling_uv(self.cluster, self.root, before_leaving=leave)
        self.session.capabilities["alpha"] = dataclasses.replace(caps, tools={**caps.tools, "uv": str(wrapper)})
        try:
            yield
        finally:
            self.session.capabilities["alpha"] = caps

    def room_again(self) -> None:
        for filler in installer_wrapper.fillers(self.root):
            filler.unlink()


@pytest.fixture
def disk(testbed, tmp_path, home):
    cluster = testbed.clusters["alpha"]
    packages = testbed.base / f"heavy-packages-{uuid.uuid4().hex[:6]}"
    packages.mkdir(mode=0o755)
    for version in HEAVY_METADATA:
        write_heavy_wheel(packages, version)
    try:
        root = mount_small_disk(cluster)   # 64 MB; the test's fillers leave only what it says
    except subprocess.CalledProcessError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"no tmpfs under CI: {exc.stderr}")
        pytest.skip(f"cannot mount a tmpfs here: {exc.stderr}")
    config = tmp_path / "cfg"
    paths = make_config(config, testbed, ["alpha"], alpha={
        "env_roots": [str(root)], "pip_args": [*cluster.pip_args, "--find-links", str(packages)]})
    session = session_for(paths)
    try:
        yield Disk(root, config, home, session, cluster)
    finally:
        session.close()
        unmount(root)


def site_entries(env: Path) -> dict[str, str]:
    return entries(site_of(env))


def assert_as_before(env: Path, frozen: list[str], site: dict[str, str]) -> None:
    """The referees: pip freeze, uv pip check with the environment's python, and site-packages on disk."""
    assert pip_freeze(env) == frozen
    checked = uv_check(env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert site_entries(env) == site


def test_a_full_disk_during_an_update_is_rolled_back_whole_and_the_environment_updates_again(disk):
    """T19, HIGH: uv stopped writing a package's METADATA on a full disk; the rollback left its folder (and its
    files), said 'Nothing was changed', the environment was listed healthy and never updated again."""
    name = unique("c1")
    env = disk.env(name)
    create_environment(disk.session, "alpha", CreateRequest(name=name, packages=["tinyalpha==1.0"]))
    frozen, site = pip_freeze(env), site_entries(env)
    said: list[str] = []
    progress = Progress(on_line=lambda stream, line: said.append(line))
    page = os.statvfs(disk.root).f_frsize
    with disk.filled_before_each_install(16 * page), pytest.raises(EnvDeskError) as failed:
        update_environment(disk.session, "alpha", name, Change(add=[f"{HEAVY}==1.0"], upgrade=["tinyalpha"]),
                           progress)
    assert any(f"{HEAVY}-1.0.dist-info/METADATA" in line for line in said), said   # where uv stopped
    text = str(failed.value)
    assert "Nothing was changed" in text and f"half-installed {HEAVY}-1.0.dist-info" in text, text
    assert "put back tinyalpha 1.0" in text, text
    assert_as_before(env, frozen, site)
    assert envdesk_leftovers(disk.root) == [] and not (env / ENVDESK_DIR / CHANGING_MARK).exists()
    disk.room_again()
    update_environment(disk.session, "alpha", name, Change(add=["tinygamma"]))
    assert pip_freeze(env) == sorted(frozen + ["tinygamma==0.1"])
    assert uv_check(env).returncode == 0


def test_a_rollback_that_fails_on_a_full_disk_leaves_the_environment_broken_and_the_next_change_mends_it(disk):
    """T19's variant: the disk left no byte for the rollback's install either. It said '... when the cluster is
    reachable again', left its mark, and the environment was listed ok."""
    name = unique("c0")
    env = disk.env(name)
    create_environment(disk.session, "alpha", CreateRequest(name=name, packages=[f"{HEAVY}==1.0"]))
    frozen = pip_freeze(env)
    with disk.filled_before_each_install(0), pytest.raises(EnvDeskError) as failed:
        update_environment(disk.session, "alpha", name, Change(upgrade=[HEAVY]))
    text = str(failed.value)
    assert "also failed" in text and "once the disk has room again" in text, text
    assert "reachable again" not in text and "Nothing was changed" not in text, text
    checked = uv_check(env)     # the referee: not as it was
    assert checked.returncode != 0 or pip_freeze(env) != frozen, checked
    assert (env / ENVDESK_DIR / CHANGING_MARK).exists()
    [listed] = [e for e in disk.cli_json("env", "list", "alpha") if e["name"] == name]
    assert listed["state"] == "broken" and "putting its packages back failed too" in listed["error"], listed
    disk.room_again()
    updated = update_environment(disk.session, "alpha", name, Change(add=["tinygamma"]))
    assert any("put its packages back first" in note for note in updated.notes), updated.notes
    assert pip_freeze(env) == sorted(frozen + ["tinygamma==0.1"])
    assert uv_check(env).returncode == 0
    [listed] = [e for e in disk.cli_json("env", "list", "alpha") if e["name"] == name]
    assert listed["state"] == "ok", listed
    assert not (env / ENVDESK_DIR / ROLLBACK_FAILED_MARK).exists()


def test_a_revert_after_a_cut_off_update_says_what_it_put_back(disk):
    """T19, LOW: `env revert` after a cut-off update said 'already held the packages …; nothing changed' though it
    had just removed what that update installed. The update is cut off for real: an agent run by the cluster's
    user begins it (snapshot, lock) and ends, then uv installs tinygamma, and no one finishes it."""
    from envdesk.backend.agent_client import agent_script
    name = unique("cut")
    env = disk.env(name)
    create_environment(disk.session, "alpha", CreateRequest(name=name, packages=["tinyalpha==1.0"]))
    frozen = pip_freeze(env)
    script = disk.cluster.home / f"agent-{uuid.uuid4().hex[:6]}.py"
    script.write_text(agent_script(write=True))
    script.chmod(0o644)
    begin = json.dumps({"action": "begin", "path": str(env), "roots": [str(disk.root)], "snapshot": True,
                        "operation": "update", "reason": "before adding tinygamma"})
    # the lock's owner is the shell that runs the agent (its client_pid), which ends right after: cut off
    said = disk.cluster.run_as_user(f"cfg=\"$(printf '%s, \"client_pid\": %d}}' '{begin[:-1]}' $$)\"; "
                                    f"python3 {script} \"$cfg\"; true").stdout
    answer = json.loads(said.split("ENVDESK-AGENT-JSON ", 1)[1])
    assert answer["ok"], answer
    wheelhouse = disk.cluster.pip_args[disk.cluster.pip_args.index("--find-links") + 1]
    disk.cluster.run_as_user(f"{installer_wrapper.real_uv(disk.cluster)} pip install -q --python {env}/bin/python "
                             f"--no-index --find-links {wheelhouse} tinygamma==0.1")
    assert "tinygamma==0.1" in pip_freeze(env)
    result = run_cli("env", "revert", "alpha", str(env), answer["snapshot"], config=disk.config, home=disk.home)
    assert result.returncode == 0, result.stderr
    assert "nothing changed" not in result.stdout, result.stdout
    assert "put its packages back first (removed tinygamma 0.1)" in result.stderr, result.stderr
    assert pip_freeze(env) == frozen and uv_check(env).returncode == 0


def test_a_cache_written_before_half_installed_packages_counted_is_not_trusted(tmp_path):
    """An environment a listing cached as ok while it held a half-installed package (an agent from before T19's
    fix, which only warned) is read again, though its site-packages did not change since."""
    env = venv_with_tinyalpha(tmp_path)
    half_installed(site_of(env), "tinygamma", [])
    for path in (env / "pyvenv.cfg", env / ENVDESK_DIR, site_of(env)):
        os.utime(path, (1, 1))    # old enough to be cached (see ListingCache.put's RACY_SECONDS)
    cache = tmp_path / "inventory.json"
    before_the_fix = load_agent(write=False)
    reader = before_the_fix.read_dist_info

    def only_warned(folder):
        try:
            return reader(folder)
        except before_the_fix.IncompleteMetadata as exc:
            raise ValueError(str(exc)) from None
    before_the_fix.read_dist_info = only_warned
    cached = before_the_fix.inventory({"roots": [str(env.parent)], "cache": str(cache)})["environments"][0]
    assert cached["state"] == "ok" and cached["warnings"], cached
    data = json.loads(cache.read_text())
    assert str(env) in data["entries"]
    cache.write_text(json.dumps({**data, "format": 1}))    # as the agent before the fix wrote it
    again = load_agent(write=False).inventory({"roots": [str(env.parent)], "cache": str(cache)})
    assert again["cached"] == 0 and again["environments"][0]["state"] == "broken", again


def test_the_window_does_not_say_nothing_changed_after_putting_back_a_cut_off_change():
    from envdesk.backend.inventory import Environment
    from envdesk.backend.operations.update import Updated
    from envdesk.gui.controller import describe_result
    env = Environment(name="c1", path="/x/c1", kind="uv", python="3.11.7")
    said = describe_result(Updated(env, None, ["An earlier update of c1 had been cut off: EnvDesk put its packages "
                                               "back first (removed tinygamma 0.1)."], done=True))
    assert "Nothing needed changing" not in said and "removed tinygamma 0.1" in said, said
    assert "Nothing needed changing" in describe_result(Updated(env, None, []))


def left_half_installed(env: Path) -> Path:
    """tinygamma-0.1.dist-info with its RECORD only, and the tinygamma/ it names, owned by the environment's owner
    as uv run by the cluster's user leaves them when the disk fills (T19); the dist-info folder."""
    leftover = site_of(env) / "tinygamma"
    leftover.mkdir()
    (leftover / "__init__.py").write_text("x = 1\n")
    folder = half_installed(site_of(env), "tinygamma", ["tinygamma/__init__.py"])
    folder = folder.rename(site_of(env) / "tinygamma-0.1.dist-info")
    owner = os.stat(env)
    for path in (leftover, leftover / "__init__.py", folder, folder / "RECORD"):
        os.chown(path, owner.st_uid, owner.st_gid)
    return folder


def test_what_env_doctor_suggests_mends_an_environment_left_half_installed_before_the_fix(disk):
    """T19: after the old rollback left tinygamma-0.1.dist-info (RECORD only) and tinygamma/, every update failed,
    including the fix env doctor suggested. Now doctor names the folder and says to revert to a snapshot from
    before it appeared, and that revert removes it with the files its RECORD names."""
    name = unique("old")
    env = disk.env(name)
    create_environment(disk.session, "alpha", CreateRequest(name=name, packages=["tinyalpha==1.0"]))
    frozen, site = pip_freeze(env), site_entries(env)
    updated = update_environment(disk.session, "alpha", name, Change(add=["tinybeta"]))
    assert updated.snapshot is not None
    left_half_installed(env)
    assert uv_check(env).returncode != 0
    findings = disk.cli_json("env", "doctor", "alpha", name)["findings"]
    [found] = [f for f in findings if f["code"] == "half-installed"]
    assert "tinygamma-0.1.dist-info" in found["detail"] and "env revert" in found["advice"], found
    result = run_cli("env", "revert", "alpha", name, updated.snapshot, config=disk.config, home=disk.home)
    assert result.returncode == 0, result.stderr
    assert_as_before(env, frozen, site)


def test_an_update_of_an_environment_already_half_installed_mends_it_and_says_so(disk):
    """An environment that already held tinygamma-0.1.dist-info with its RECORD only (a run stopped outside
    EnvDesk, or before its rollback removed such folders): every update failed, as uv refuses to change it, and
    nothing said why. The update now says which package was half installed, removes it with the files its RECORD
    names and installs it again, as pip's and uv's --force-reinstall would, then makes the change. Referees: uv pip
    check, pip freeze and the environment's own importlib.metadata."""
    name = unique("mend")
    env = disk.env(name)
    create_environment(disk.session, "alpha", CreateRequest(name=name, packages=["tinyalpha==1.0"]))
    frozen = pip_freeze(env)
    folder = left_half_installed(env)
    assert uv_check(env).returncode != 0 and nameless(env) == [folder.name]
    result = run_cli("env", "update", "alpha", name, "--add", "tinybeta", config=disk.config, home=disk.home)
    assert result.returncode == 0, result.stderr
    said = result.stdout + result.stderr
    assert f"held the half-installed {folder.name}" in said and "installed tinygamma 0.1 again" in said, said
    assert nameless(env) == [] and uv_check(env).returncode == 0
    assert pip_freeze(env) == sorted(frozen + ["tinybeta==1.0", "tinygamma==0.1"])
    assert disk.cli_json("env", "show", "alpha", name)["state"] == "ok"


def test_removing_a_half_installed_package_removes_it_whole(disk):
    """`--remove tinygamma` where only its half-installed folder is left was refused ('has no package tinygamma to
    remove'): the update removes the folder with the files its RECORD names and installs nothing again. Referees:
    pip freeze, uv pip check, importlib.metadata and the file system."""
    name = unique("drop")
    env = disk.env(name)
    create_environment(disk.session, "alpha", CreateRequest(name=name, packages=["tinyalpha==1.0"]))
    frozen, site = pip_freeze(env), site_entries(env)
    left_half_installed(env)
    result = run_cli("env", "update", "alpha", name, "--remove", "tinygamma", config=disk.config, home=disk.home)
    assert result.returncode == 0, result.stderr
    assert "held the half-installed tinygamma-0.1.dist-info" in result.stdout + result.stderr, result
    assert nameless(env) == [] and uv_check(env).returncode == 0
    assert pip_freeze(env) == frozen and site_entries(env) == site
