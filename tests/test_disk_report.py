"""Disk and inodes (issue 12): the quota reports clusters print, read as a person reads them; `envdesk disk`
against the test bed (referees: du, find and df for what is measured, the fake site tools' own text for the
quota lines); emptying pip's and uv's real caches (referee: du and find of the cache folders); the warning
before a create that would not fit (referee: df -i of a small tmpfs); and the window's Size and Files columns.

Fakes, only for what cannot exist here: the Alliance's `diskusage_report` (it reads the Alliance's storage
database) and Lustre's `lfs` (no Lustre file system can be mounted here), each a script saying what it is.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from envdesk.backend.operations.disk import clean_caches, disk_report, parse_quota_output
from envdesk.backend.quota import Quota, parse_quota_report
from envdesk.backend.paths import AppPaths
from envdesk_fixtures import config_for, extra_cluster, mounted_tmpfs, run_cli, session_for

CORPUS = Path(__file__).parent / "corpus" / "quota"
K, M, G, T = 1024, 1024 ** 2, 1024 ** 3, 1024 ** 4


# ------------------------------------------------------------------ the corpus, read by hand

def q(filesystem, used, limit, files, file_limit, owner="", over=False):
    return Quota(filesystem, used, limit, files, file_limit, owner, over)


# What each file says, as a person reads it: sizes in powers of 1024 ('50G' is 50 GiB; quota and lfs count
# bare numbers in 1 KiB blocks), file counts in powers of 1000 ('500k' files are 500,000), a limit of 0 or '-'
# is no limit, the soft limit is the one that counts, '*', a grace time or an Over Quota mark is over quota.
EXPECTED = {
    "diskusage_report-alliance.txt": [
        q("/home", round(3.2 * G), 50 * G, 41_000, 500_000, "user jdoe42"),
        q("/scratch", 812 * G, 20 * T, 190_000, 1_000_000, "user jdoe42"),
        q("/project", 0, 2048 * K, 0, 1025, "group jdoe42"),
        q("/project", round(4.1 * T), 10 * T, 499_000, 500_000, "group def-smithlab"),
    ],
    "diskusage_report-killarney.txt": [
        q("/home", 0, 50 * G, 13, 500_000, "user pstone"),
        q("/scratch", 51 * G, 2048 * G, 341_000, 10_000_000, "user pstone"),
    ],
    "diskusage_report-wrapped.txt": [
        q("/home", round(49.5 * G), 50 * G, 288_000, 500_000, "user mlee", over=True),
        q("/project", round(1.5 * T), None, 12_000, 1_000_000, "group rrg-a-very-long-allocation-name-ab"),
    ],
    "lfs-kbytes.txt": [
        q("/lustre07", 52_428_900 * K, 52_428_800 * K, 310_422, 500_000, "user jdoe42", over=True),
    ],
    "lfs-human.txt": [
        q("./", round(792.3 * M), round(9.537 * T), 9, 2_000_000, "user kim"),
    ],
    "lfs-wrapped.txt": [
        q("/gpfs/lustre/projects/very/long/mount/point", 1_041_408 * K, 5_242_880 * K, 812, 100_000, "user ana"),
    ],
    "quota-s.txt": [
        q("/home", 14_340 * M, 16_384 * M, 160_000, None, "user rsingh"),
        q("nfs-store.example.org:/export/groups", 21_000 * M, 20_480 * M, 4412, 10_000, "user rsingh", over=True),
        q("/dev/sdb1", 0, 400 * G, 1, None, "user rsingh"),
        q("/workspace", 1200 * G, 1024 * G, 352_000, 5_000_000, "user rsingh", over=True),
    ],
    "quota-none.txt": [],
    "uquota.txt": [
        q("/home/lina", round(30.9 * G), 32 * G, 301_544, 300_000, "", over=True),
        q("/proj/ocean-models", round(140.5 * G), 128 * G, 2204, 100_000, "project naiss2026-5-17", over=True),
    ],
    "unknown.txt": [],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_report_reads_as_a_person_reads_it(name):
    text = (CORPUS / name).read_text(encoding="utf-8")
    report = parse_quota_report(text, name)
    assert list(report.quotas) == EXPECTED[name]
    if name == "unknown.txt":
        assert report.raw == text.strip("\n"), "a report EnvDesk cannot read is shown as printed"
    else:
        assert report.raw == "", "a report read (or one saying there is no quota) needs no raw text"


def test_every_corpus_file_is_checked():
    assert sorted(path.name for path in CORPUS.glob("*.txt")) == sorted(EXPECTED)


def test_what_is_left_under_a_quota():
    home = EXPECTED["diskusage_report-alliance.txt"][0]
    assert (home.files_left, home.bytes_left) == (459_000, 50 * G - round(3.2 * G))
    over = EXPECTED["uquota.txt"][0]
    assert over.files_left == 0, "over quota leaves nothing, never a negative count"
    assert EXPECTED["quota-s.txt"][0].files_left is None, "no file limit: nothing to run out of"
    assert home.covers("/home/jdoe42/venvs") and not home.covers("/homeless/x")
    assert not EXPECTED["quota-s.txt"][2].covers("/dev/sdb1x"), "a device name holds no folder"


def test_cut_and_mangled_reports_never_raise():
    """Every prefix of every corpus file, and lines of noise, give quotas or raw text, never an exception."""
    noise = ["", "\x00\x01", "Disk quotas for usr", "Filesystem kbytes", "/home (user x)", "1/2 3/4 5/6",
             "/x 1 2 3 - 4 5 6 - 7 8", "/home (user x) 10Q/5Z 1/2", "Your project\n--- ---\nhome /h GiB x y",
             "Disk quotas for user a (uid 1):\n/fs 1* 2 3 6days\n", "\n".join(["/a"] * 5), "9" * 400]
    for text in [*(path.read_text() for path in CORPUS.glob("*.txt")), *noise]:
        for end in range(0, len(text) + 1, max(1, len(text) // 40)):
            report = parse_quota_report(text[:end])
            assert report.quotas or report.raw or not text[:end].strip() or "none" in text[:end]


def test_sections_of_the_quota_command_keep_their_command_and_folder():
    lustre = (CORPUS / "lfs-kbytes.txt").read_text()
    output = ("login banner the shell printed\n@@envdesk-quota lfs /lustre07 /project/def-x/me/envs\n" + lustre +
              "@@envdesk-quota quota\n" + (CORPUS / "quota-none.txt").read_text())
    reports = parse_quota_output(output)
    assert [report.command for report in reports] == ["lfs /lustre07", "quota"]
    assert reports[0].quotas[0].path == "/project/def-x/me/envs"
    assert reports[0].quotas[0].covers("/project/def-x/me/envs/new"), "lfs's mount is matched through the root"
    assert reports[1].quotas == () and reports[1].raw == ""


# ------------------------------------------------------------------ estimates and the quota check (this computer)

def test_estimates_use_what_this_session_measured(tmp_path):
    from envdesk.backend.inventory import Environment, Package, Usage
    from envdesk.backend.operations.disk import (BASE_BYTES, BASE_FILES, FILES_PER_PACKAGE, estimate_new,
                                                 remember_measured)
    session = session_for(AppPaths(tmp_path / "cfg"))
    typical = estimate_new(session, "alpha", "conda", 10)
    assert typical.files == BASE_FILES["conda"] + 10 * FILES_PER_PACKAGE["conda"]
    packages = tuple(Package(f"p{n}", "1") for n in range(4))
    remember_measured(session, "alpha", [
        Environment("a", "/e/a", "venv", "3.11", packages, usage=Usage(2_000 * 1024, 1_000)),
        Environment("b", "/e/b", "venv", "3.11", packages, usage=Usage(6_000 * 1024, 3_000)),
        Environment("c", "/e/c", "venv", "3.11", packages, usage=Usage(10 ** 9, 10 ** 6, complete=False)),
    ])
    mean = estimate_new(session, "alpha", "venv", 5)   # (1,000 + 3,000) files over 8 packages: 500 per package
    assert (mean.files, mean.bytes) == (BASE_FILES["venv"] + 2_500, BASE_BYTES["venv"] + 5_000 * 1024)
    assert "mean of 2 measured" in mean.basis, "an incomplete measurement is no basis"
    copied = estimate_new(session, "beta", "venv", 5, {"cluster": "alpha", "path": "/e/b"})
    assert (copied.files, copied.bytes) == (3_000, 6_000 * 1024), "a copy takes what its source takes"
    assert estimate_new(session, "beta", "venv", 5).basis.startswith("a typical"), "other targets' are not used"


def test_the_quota_of_the_folder_is_checked_against_the_estimate(tmp_path, home):
    from envdesk.backend.capabilities import Capabilities
    from envdesk.backend.operations.disk import check_room
    root = tmp_path / "envs"
    root.mkdir()
    config = tmp_path / "cfg"
    config.mkdir()
    (config / "clusters.yaml").write_text(f"local:\n  env_roots: [{json.dumps(str(root))}]\n")
    session = session_for(AppPaths(config))
    report = ["  Description   Space   # of files", f"  {root} (user me)   1G/2G   990/1000",
              f"  {tmp_path} (group other)   1G/2G   10/1000"]
    session.capabilities["local"] = Capabilities(home=str(home), quota=report)  # as the probe found it
    target = session.target("local")
    warnings = check_room(session, target, 25, 1024, root=str(root), space=None)
    assert warnings == [f"This would use about 25 of the 10 files you have left on {root} (its quota: 1,000 "
                        "files)."], "the most specific quota counts"
    assert check_room(session, target, 9, 1024, root=str(root), space=None) == []


# ------------------------------------------------------------------ a cluster of the test bed with fakes

FAKE_DISKUSAGE_REPORT = """#!/bin/sh
# FAKE diskusage_report of the EnvDesk test bed. The Alliance's real one reads their storage database, which
# cannot exist here; this prints a fixed report in the real one's shape (see tests/corpus/quota/).
cat <<'END'
                             Description                Space           # of files
                    /home (user {user})          1.5G/50G            20k/500k
             /project (group def-testlab)          2.2T/10T           480k/500k

Disk usage can be explored using the following commands:
diskusage_explorer /home/{user}         (Last update: 2026-03-02 05:00:05)
END
"""

FAKE_LFS = """#!/bin/sh
# FAKE lfs of the EnvDesk test bed. No Lustre file system can be mounted here; this answers the two questions
# EnvDesk asks Lustre's lfs, in its shapes: which mount points are Lustre (getname), and a user's quota on one
# of them, refusing any other question.
case "$1" in
  getname) echo "fakelustre-ffff8f0000000000 {mount}" ;;
  quota)
    if [ "$#" -ne 4 ] || [ "$2" != "-u" ] || [ "$3" != "$(id -un)" ] || [ "$4" != "{mount}" ]; then
      echo "lfs quota: unexpected arguments: $*" >&2; exit 2
    fi
    cat <<'END'
Disk quotas for usr {user} (uid 4242):
     Filesystem  kbytes   quota   limit   grace   files   quota   limit   grace
{mount}
                  204800* 102400  204800    6d     1234    2000    3000       -
uid 4242 is using default block quota setting
END
    ;;
  *) echo "lfs: unknown command $1" >&2; exit 1 ;;
esac
"""


@pytest.fixture(scope="module")
def disk_cluster(testbed):
    """A cluster like alpha with a user of its own (so its PATH and caches can be changed freely)."""
    return extra_cluster(testbed, "/bin/bash")


def as_user(cluster, script: str) -> str:
    return cluster.run_as_user(script).stdout


def install_fake(cluster, name: str, text: str) -> None:
    """`text` as the program `name` in ~/fakebin, first on the user's PATH (login shells read ~/.bash_profile)."""
    cluster.run_as_user('mkdir -p ~/fakebin && echo \'export PATH="$HOME/fakebin:$PATH"\' > ~/.bash_profile && '
                        f'cat > ~/fakebin/{name} && chmod 755 ~/fakebin/{name}', input=text)


def remove_fakes(cluster) -> None:
    cluster.run_as_user("rm -rf ~/fakebin ~/.bash_profile")


def du_bytes(cluster, path: str) -> int:
    """Apparent size of everything under path (hard links counted each time), without path's own; 0 if gone."""
    out = as_user(cluster, f"if [ -d {path} ]; then echo $(( $(du -s -l --apparent-size -B1 {path} | cut -f1) "
                           f"- $(stat -c %s {path}) )); else echo 0; fi")
    return int(out.split()[-1])


def find_count(cluster, path: str) -> int:
    out = as_user(cluster, f"if [ -d {path} ]; then find {path} -mindepth 1 | wc -l; else echo 0; fi")
    return int(out.split()[-1])


@pytest.fixture
def disk(disk_cluster, tmp_path, home):
    """(cluster, session, config folder) for the disk cluster, its fakes removed afterwards."""
    paths = config_for(tmp_path / "cfg", disk_cluster)
    session = session_for(paths)
    yield disk_cluster, session, paths.config_dir
    session.close()
    remove_fakes(disk_cluster)


def test_report_measures_each_environment_and_reads_the_sites_quota_report(disk):
    cluster, session, _ = disk
    name = f"d-{uuid.uuid4().hex[:6]}"
    as_user(cluster, f"python3 -m venv --without-pip ~/venvs/{name} && head -c 54321 /dev/urandom > "
                     f"$(echo ~/venvs/{name}/lib/python3*/site-packages)/data.bin")
    install_fake(cluster, "diskusage_report", FAKE_DISKUSAGE_REPORT.format(user=cluster.user))
    session.target(cluster.name).runner.connect()
    disk_report(session, cluster.name)  # the cluster stores the agent on first use
    before = len(cluster.session_commands())
    report = disk_report(session, cluster.name)
    assert len(cluster.session_commands()) - before == 2, "one agent run, one quota command"
    env = next(env for env in report.environments if env.name == name)
    path = f"{cluster.home}/venvs/{name}"
    assert env.usage is not None and env.usage.complete
    assert (env.usage.bytes, env.usage.files) == (du_bytes(cluster, path), find_count(cluster, path))
    [found] = report.quotas
    assert found.command == "diskusage_report" and found.raw == ""
    assert list(found.quotas) == [q("/home", round(1.5 * G), 50 * G, 20_000, 500_000, f"user {cluster.user}"),
                                  q("/project", round(2.2 * T), 10 * T, 480_000, 500_000, "group def-testlab")]
    df = as_user(cluster, f"df -B1 --output=itotal,size {path}").splitlines()[-1].split()
    home_space = next(space for space in report.space if path.startswith(space.path.rstrip("/") + "/"))
    assert (home_space.total_files, home_space.total_bytes) == (int(df[0]), int(df[1]))


def test_lfs_is_asked_about_the_mount_of_each_root_on_lustre(disk):
    cluster, session, _ = disk
    mount = as_user(cluster, "df -P ~ | awk 'NR==2 {print $6}'").strip()
    install_fake(cluster, "lfs", FAKE_LFS.format(user=cluster.user, mount=mount))
    report = disk_report(session, cluster.name)
    lustre = [found for found in report.quotas if found.command.startswith("lfs")]
    assert [found.command for found in lustre] == [f"lfs {mount}"], "asked once per file system, with its mount"
    quota = lustre[0].quotas[0]
    assert (quota.filesystem, quota.used_bytes, quota.limit_bytes, quota.used_files, quota.limit_files,
            quota.over) == (mount, 204_800 * K, 102_400 * K, 1234, 2000, True)
    assert quota.path in [space.path for space in report.space]


def test_cli_disk_json_has_every_part_of_the_report(disk):
    cluster, _, config = disk
    name = f"j-{uuid.uuid4().hex[:6]}"
    as_user(cluster, f"python3 -m venv --without-pip ~/venvs/{name}")
    install_fake(cluster, "diskusage_report", FAKE_DISKUSAGE_REPORT.format(user=cluster.user))
    done = run_cli("disk", cluster.name, "--json", config=config, home=Path(os.environ["HOME"]))
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert set(shown) == {"target", "environments", "space", "quotas", "notes"}
    env = next(env for env in shown["environments"] if env["name"] == name)
    path = f"{cluster.home}/venvs/{name}"
    assert env == {"name": name, "path": path, "kind": "venv", "package_count": 0, "bytes": du_bytes(cluster, path),
                   "files": find_count(cluster, path), "complete": True}
    files = [env["files"] for env in shown["environments"]]
    assert files == sorted(files, reverse=True), "the most files first"
    assert all(set(space) == {"path", "free_bytes", "total_bytes", "free_files", "total_files"}
               for space in shown["space"])
    assert shown["quotas"][0]["command"] == "diskusage_report"
    assert shown["quotas"][0]["quotas"][0] == {"filesystem": "/home", "owner": f"user {cluster.user}",
                                               "used_bytes": round(1.5 * G), "limit_bytes": 50 * G,
                                               "used_files": 20_000, "limit_files": 500_000, "over": False,
                                               "path": ""}
    text = run_cli("disk", cluster.name, config=config, home=Path(os.environ["HOME"]))
    assert text.returncode == 0 and name in text.stdout and "FILES LEFT" in text.stdout


# ------------------------------------------------------------------ emptying the caches

TINY_BACKEND = '''
import base64, hashlib, os, zipfile


def _record(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (name, digest, len(data))


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    info = "tinysrc-1.0.dist-info"
    files = {"tinysrc.py": b"VALUE = 1\\n" * 2000,
             info + "/METADATA": b"Metadata-Version: 2.1\\nName: tinysrc\\nVersion: 1.0\\n",
             info + "/WHEEL": b"Wheel-Version: 1.0\\nGenerator: tiny\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"}
    records = [_record(name, data) for name, data in files.items()] + [info + "/RECORD,,"]
    files[info + "/RECORD"] = ("\\n".join(records) + "\\n").encode()
    with zipfile.ZipFile(os.path.join(wheel_directory, "tinysrc-1.0-py3-none-any.whl"), "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return "tinysrc-1.0-py3-none-any.whl"
'''


def fill_real_caches(cluster) -> None:
    """pip builds a source distribution (offline, with a build backend of its own) and keeps the wheel in its
    cache; uv installs from the wheelhouse and keeps what it unpacked in its cache."""
    source = ("mkdir -p ~/src/tinysrc-1.0 ~/dist && cd ~/src/tinysrc-1.0 && cat > tinybackend.py && "
              "printf '[build-system]\\nrequires = []\\nbuild-backend = \"tinybackend\"\\nbackend-path = [\".\"]\\n' "
              "> pyproject.toml && printf 'Metadata-Version: 2.1\\nName: tinysrc\\nVersion: 1.0\\n' > PKG-INFO && "
              "cd .. && tar czf ~/dist/tinysrc-1.0.tar.gz tinysrc-1.0")
    cluster.run_as_user(source, input=TINY_BACKEND)
    cluster.run_as_user("python3 -m venv ~/pip-filler && ~/pip-filler/bin/pip install -q --no-index "
                        "--find-links ~/dist tinysrc", network=False)
    cluster.run_as_user(f"module load uv/0.13 && uv venv -q ~/uv-filler && uv pip install -q --python ~/uv-filler "
                        f"--no-index --find-links {cluster.wheelhouse} tinyalpha tinygamma", network=False)


def test_cleaning_empties_pips_and_uvs_real_caches_and_says_what_it_freed(disk):
    cluster, session, _ = disk
    fill_real_caches(cluster)
    pip_cache, uv_cache = f"{cluster.home}/.cache/pip", f"{cluster.home}/.cache/uv"
    wheels = as_user(cluster, f"find {pip_cache}/wheels -name '*.whl'").split()
    assert [Path(wheel).name for wheel in wheels] == ["tinysrc-1.0-py3-none-any.whl"], "pip kept what it built"
    before = {"pip": (du_bytes(cluster, pip_cache), find_count(cluster, pip_cache)),
              "uv": (du_bytes(cluster, uv_cache), find_count(cluster, uv_cache))}
    assert before["uv"][1] > 10
    cleaned = {item.tool: item for item in clean_caches(session, cluster.name, "all")}
    after = {"pip": (du_bytes(cluster, pip_cache), find_count(cluster, pip_cache)),
             "uv": (du_bytes(cluster, uv_cache), find_count(cluster, uv_cache))}
    for tool in ("pip", "uv"):
        item = cleaned[tool]
        assert item.skipped == ""
        assert (item.bytes_before, item.files_before) == before[tool]
        assert (item.bytes_after, item.files_after) == after[tool]
        assert item.freed_bytes == before[tool][0] - after[tool][0] > 0
    assert as_user(cluster, f"find {pip_cache}/wheels -name '*.whl'").split() == [], "pip cache purge ran"
    assert after["uv"][1] < before["uv"][1] // 2, "uv cache clean ran"
    assert cleaned["conda"].skipped, "no conda there: said, not attempted"


# ------------------------------------------------------------------ the warning before a build that would not fit

@pytest.fixture
def tiny_root(disk_cluster):
    """A 16 MB tmpfs with 300 inodes, owned by the disk cluster's user, as an environment folder."""
    base = Path(tempfile.mkdtemp(prefix="envdesk-disk-"))
    base.chmod(0o755)
    owner = f"uid={os.stat(disk_cluster.home).st_uid},gid={os.stat(disk_cluster.home).st_gid}"
    try:
        with mounted_tmpfs(base / "fs", f"size=16m,nr_inodes=300,mode=0755,{owner}") as mount:
            yield mount
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_create_that_would_not_fit_is_warned_about_first_with_the_figures(disk, tiny_root):
    cluster, _, config = disk
    free = int(subprocess.run(["df", "--output=iavail", str(tiny_root)], capture_output=True, text=True,
                              check=True).stdout.split()[-1])
    name = f"w-{uuid.uuid4().hex[:6]}"
    before = len(cluster.session_commands())
    done = run_cli("env", "create", cluster.name, name, "--kind", "uv", "--root", str(tiny_root),
                   "--package", "tinyalpha", config=config, home=Path(os.environ["HOME"]))
    assert done.returncode == 0, done.stderr  # a warning, never a refusal
    commands = cluster.session_commands()[before:]
    assert len(commands) == 4, ("the probe, begin (which reads the room), one command making the environment and "
                                "installing into it (checking that the Python module loaded), finish")
    warning = next(line for line in done.stderr.splitlines() if line.startswith("==> Warning"))
    assert f"has {free:,} left" in warning, warning
    assert "a typical uv environment of 1 package" in warning
    lines = done.stderr.splitlines()
    assert lines.index(warning) < lines.index("==> Creating the environment (uv)"), "the warning comes first"
    assert (tiny_root / name / "bin" / "python").exists()


def test_a_create_with_room_to_spare_says_nothing(disk):
    cluster, _, config = disk
    done = run_cli("env", "create", cluster.name, f"r-{uuid.uuid4().hex[:6]}", "--kind", "uv", config=config,
                   home=Path(os.environ["HOME"]))
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr


# ------------------------------------------------------------------ the window

def click_yes_when_asked() -> None:
    """Answer Yes in the next modal question (QMessageBox.question blocks the test otherwise)."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    def click() -> None:
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            box.button(QMessageBox.StandardButton.Yes).click()
        else:
            QTimer.singleShot(50, click)
    QTimer.singleShot(50, click)


def test_the_window_measures_on_demand_and_the_disk_dialog_cleans(qtbot, tmp_path, home):
    from envdesk.gui.dialogs.disk_dialog import DiskDialog
    from envdesk.gui.main_window import MainWindow
    from envdesk.gui.models import human_size
    from testbed.wheels import WHEELS, build_wheel
    root, wheels = tmp_path / "envs", tmp_path / "wheels"
    wheels.mkdir()
    build_wheel(wheels, next(spec for spec in WHEELS if spec.name == "tinyalpha"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "sized")], check=True)
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("no uv on this computer")
    subprocess.run([uv, "pip", "install", "-q", "--python", str(root / "sized"), "--no-index", "--find-links",
                    str(wheels), "tinyalpha"], check=True, env={**os.environ, "HOME": str(home)})
    uv_cache = Path(subprocess.run([uv, "cache", "dir"], capture_output=True, text=True, check=True,
                                   env={**os.environ, "HOME": str(home)}).stdout.strip())
    assert uv_cache.is_relative_to(home), "the test's own uv cache, never the machine's"
    config = tmp_path / "cfg"
    config.mkdir()
    (config / "clusters.yaml").write_text(f"local:\n  env_roots: [{json.dumps(str(root))}]\n")
    window = MainWindow(AppPaths(config))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: "local" in window.controller.refreshed, timeout=60_000)
    assert window.env_model.column_of("files") == -1, "no Size or Files column before measuring"
    window.measure_action.trigger()
    qtbot.waitUntil(lambda: window.env_model.column_of("files") >= 0, timeout=60_000)
    row = next(r for r in range(window.env_proxy.rowCount()) if window.env_proxy.index(r, 0).data() == "sized")
    shown = window.env_proxy.index(row, window.env_model.column_of("files")).data()
    found = subprocess.run(["find", str(root / "sized"), "-mindepth", "1"], capture_output=True, text=True)
    assert shown == f"{len(found.stdout.splitlines()):,}"

    dialog = DiskDialog(window.controller, "local", parent=window)
    qtbot.addWidget(dialog)
    dialog.show()
    itotal = subprocess.run(["df", "--output=itotal", str(root)], capture_output=True, text=True).stdout.split()[-1]
    assert dialog.space.item(0, 0).text() == str(root), "the report measured already is shown at once"
    assert dialog.space.item(0, 4).text() == f"{int(itotal):,}"
    du = subprocess.run(["du", "-s", "-l", "--apparent-size", "-B1", str(uv_cache)], capture_output=True, text=True,
                        check=True).stdout.split()[0]
    freed = int(du) - os.lstat(uv_cache).st_size
    click_yes_when_asked()
    dialog.clean_buttons["uv"].click()
    qtbot.waitUntil(lambda: dialog.cleaned.text().startswith("uv: freed"), timeout=60_000)
    assert dialog.cleaned.text().startswith(f"uv: freed {human_size(freed)} and "), dialog.cleaned.text()
    assert not uv_cache.exists() or not any(uv_cache.rglob("*.whl")), "uv cache clean ran"
    window.close()
