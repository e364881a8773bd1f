"""Folder names that are not ASCII, on a cluster whose Python names files in ASCII (user trial T26, HIGH-3).

An SSH session from paramiko carries no LANG, so a cluster's Python 3.6 (CentOS 7) starts in the POSIX locale and
names files in ASCII ('ü' is '\\udcc3\\udcbc' to it); Python 3.7+ takes UTF-8 there. The test bed's Python 3.11
does as 3.6 does with LC_ALL=C PYTHONUTF8=0 PYTHONCOERCECLOCALE=0, set here in the user's ~/.bash_profile (the
test bed's sshd passes no locale either: no AcceptEnv, and paramiko sends none). Two mends meet there: the agent
takes and gives names as their UTF-8 text (its listing runs in that session as it is), and the commands that make
and install (venv, pip, uv) get the system's UTF-8 locale as their character set; real Python 3.6 (and 3.11) fails
in its venv's ensurepip on such a folder without it. The referees: the bytes os.listdir gives on the cluster's
disk, the environment's own pip (or uv) freeze, and that Python's file-system encoding.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest

from agent_fixtures import clean_env, make_venv, old_pythons_to_test, run_agent_for_real
from envdesk_fixtures import MODULES, cli_json, config_for, freeze_lines, run_cli, unique
from test_login_files import write_dotfiles

POSIX_SESSION = "export LC_ALL=C PYTHONUTF8=0 PYTHONCOERCECLOCALE=0\n"
# Python 3.11's own venv cannot write a non-ASCII path in that session (3.6's writes no "command =" line): the
# environments made by hand are made in UTF-8.
BY_HAND_VENV = "LC_ALL=C.UTF-8 PYTHONUTF8=1 python3 -m venv"


@pytest.fixture(scope="module")
def posix(testbed):
    """A cluster like alpha whose user's sessions are in the POSIX locale, Python's file names ASCII there."""
    cluster = testbed.own_user_cluster("posixsh")
    write_dotfiles(cluster, {".bash_profile": POSIX_SESSION})
    encoding = cluster.run_as_user("python3 -c 'import sys; print(sys.getfilesystemencoding())'").stdout.strip()
    assert encoding == "ascii"  # the referee that this is the 3.6-like session
    yield cluster
    write_dotfiles(cluster, {})


@pytest.fixture
def cli(posix, tmp_path, home):
    config = tmp_path / "cfg"
    config_for(config, posix)

    def call(*args: str):
        return run_cli(*args, config=config, home=home)
    call.json = lambda *args: cli_json(*args, config=config, home=home)
    return call


def on_disk(folder: str) -> list[str]:
    """The names in `folder` as the cluster's disk holds them (bytes), read as UTF-8."""
    return [name.decode("utf-8") for name in os.listdir(os.fsencode(folder))]


def frozen(cluster, env_path: str) -> set[str]:
    """The environment's installer's own freeze (pip's, else uv's), run in the user's POSIX session."""
    path = shlex.quote(env_path)
    return freeze_lines(cluster.run_as_user(
        f"module load {MODULES['alpha']} >/dev/null 2>&1; "
        f"if [ -x {path}/bin/pip ]; then {path}/bin/python -m pip freeze --all; "
        f"else uv pip freeze --python {path}/bin/python; fi").stdout)


@pytest.mark.parametrize("kind", ["venv", "uv"])
def test_an_environment_under_a_root_with_an_accent_is_made_shown_exported_imported_and_deleted(posix, cli, kind):
    """T26 (a): `env create --root '~/Mes projets ü'` failed with the agent's UnicodeEncodeError."""
    root = str(posix.home / f"Mes projets ü {kind}")
    name = unique("env")
    made = cli("env", "create", posix.name, name, "--kind", kind, "--root", root, "--package", "tinyalpha")
    assert made.returncode == 0, made.stderr
    assert on_disk(root) == [name]
    path = os.path.join(root, name)
    assert frozen(posix, path) == {"tinyalpha==2.0"}

    listed = {env["name"]: env["path"] for env in cli.json("env", "list", posix.name)}
    assert listed.get(name) == path
    shown = cli.json("env", "show", posix.name, name)
    assert shown["path"] == path and "tinyalpha" in [p["name"] for p in shown["packages"]]

    exported = cli("env", "export", posix.name, name, "--format", "requirements")
    assert exported.returncode == 0, exported.stderr
    requirements = posix.home.parent / f"{name}.txt"  # read by the CLI on this side
    requirements.write_text(exported.stdout)
    copy = name + "-kopie"
    imported = cli("env", "import", posix.name, str(requirements), "--name", copy, "--root", root)
    assert imported.returncode == 0, imported.stderr
    assert sorted(on_disk(root)) == sorted([name, copy])
    assert frozen(posix, os.path.join(root, copy)) == {"tinyalpha==2.0"}

    for gone in (name, copy):
        deleted = cli("env", "delete", posix.name, gone, "--yes")
        assert deleted.returncode == 0, deleted.stderr
    assert on_disk(root) == []


def test_a_folder_made_by_hand_with_an_accent_is_listed_and_shown_by_its_name(posix, cli):
    """T26 (d): ~/venvs/naïve was listed as 'na\\udcc3\\udcafve', and `env show … naïve` found no such environment."""
    name = unique("naïve")
    posix.run_as_user(f"{BY_HAND_VENV} ~/venvs/{name}")
    assert name in on_disk(str(posix.home / "venvs"))
    assert name in [env["name"] for env in cli.json("env", "list", posix.name)]
    shown = cli.json("env", "show", posix.name, name)
    assert shown["path"] == str(posix.home / "venvs" / name)


def test_a_root_with_an_accent_leaves_the_other_roots_listed(posix, cli):
    """T26 (b): once such a root was among the cluster's, `env list` showed no environment at all."""
    plain, accented = unique("plain"), unique("accent")
    root = str(posix.home / "Projets à part")
    posix.run_as_user(f"{BY_HAND_VENV} ~/envs/{plain} && {BY_HAND_VENV} {shlex.quote(root)}/{accented}")
    assert on_disk(root) == [accented] and plain in on_disk(str(posix.home / "envs"))
    edited = cli("cluster", "edit", posix.name, "--env-root", "~/envs", "--env-root", root)
    assert edited.returncode == 0, edited.stderr
    listing = cli("env", "list", posix.name)
    assert listing.returncode == 0, listing.stderr
    assert plain in listing.stdout and accented in listing.stdout
    assert "UnicodeEncodeError" not in listing.stderr and "note: :" not in listing.stderr


def test_kernels_of_an_environment_with_an_accent_are_listed_in_the_posix_session(posix, cli):
    """R21: the kernel helper, run without the agent's turning of names, failed whole in this session on a kernel
    whose python is under a folder with an accent ('ascii' codec can't encode). Referee: the kernel.json written
    as Jupyter writes it (its argv), and the folder on disk."""
    env = f"{posix.home}/venvs/{unique('naïve')}"
    posix.run_as_user(f"{BY_HAND_VENV} --without-pip {shlex.quote(env)}")
    name = unique("accent")
    spec = posix.home / ".local" / "share" / "jupyter" / "kernels" / name / "kernel.json"
    posix.run_as_user(f"mkdir -p {shlex.quote(str(spec.parent))}")
    spec_text = json.dumps({"argv": [f"{env}/bin/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                            "display_name": "Accent", "language": "python"}, ensure_ascii=False)
    posix.run_as_user(f"printf %s {shlex.quote(spec_text)} > {shlex.quote(str(spec))}")
    try:
        listed = cli.json("kernel", "list", posix.name)
        kernel = next(k for k in listed if k["name"] == name)
        assert kernel["argv"][0] == f"{env}/bin/python" and kernel["env_exists"] is True, kernel
        assert os.path.basename(env) in on_disk(f"{posix.home}/venvs")
    finally:
        posix.run_as_user(f"rm -rf {shlex.quote(str(spec.parent))} {shlex.quote(env)}")


# -- the agent itself, on this computer's Python 3.6 (and 3.11 made to act as it) in the POSIX locale ------------

def ascii_locale(home) -> dict:
    """An agent's environment without a locale, as a Python 3.6 over SSH has it (3.11: told not to take UTF-8)."""
    environ = {k: v for k, v in clean_env(home).items() if not k.startswith(("LC_", "LANG", "PYTHON"))}
    return {**environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}


@pytest.fixture(params=["3.6", "3.11"])
def posix_python(request) -> str:
    exe = old_pythons_to_test()[0] if request.param == "3.6" else sys.executable
    if request.param == "3.6" and "3.6" not in os.path.basename(exe):
        pytest.skip("no Python 3.6 on this machine")
    return exe


def test_the_agent_in_the_posix_locale_finds_shows_makes_and_deletes_by_the_names_on_disk(tmp_path, posix_python):
    """T26 (a), (c), (d) at the agent: its settings and answer are UTF-8 text whatever the file names are to it."""
    home = tmp_path / "t26 Jürgen u3"
    root = home / "Mes projets ü"
    make_venv(root / "naïve")
    make_venv(home / "venvs" / "plain")
    environ = ascii_locale(home)
    encoding = subprocess.run([posix_python, "-c", "import sys; print(sys.getfilesystemencoding())"], env=environ,
                              capture_output=True, text=True, check=True).stdout.strip()
    assert encoding == "ascii"  # the referee that this Python names files in ASCII here
    roots = [str(root), "~/venvs"]

    _, listed, _ = run_agent_for_real({"roots": roots}, environ, exe=posix_python)
    assert listed["errors"] == [] and listed["home"] == str(home)
    assert sorted(env["path"] for env in listed["environments"]) == sorted(
        [str(root / name) for name in on_disk(str(root))] + [str(home / "venvs" / "plain")])
    assert {env["name"] for env in listed["environments"]} == {"naïve", "plain"}
    _, shown, _ = run_agent_for_real({"roots": roots, "names": ["naïve"]}, environ, exe=posix_python)
    assert [env["path"] for env in shown["environments"]] == [str(root / "naïve")]

    new = home / "venvs" / "nouveau"
    _, begun, _ = run_agent_for_real({"action": "begin", "path": str(new), "roots": roots, "create": True},
                                     environ, exe=posix_python, write=True)
    assert begun["ok"] and begun["path"] == str(new), begun
    assert "nouveau" in on_disk(str(home / "venvs"))
    _, finished, _ = run_agent_for_real({"action": "finish", "path": str(new), "roots": roots,
                                         "token": begun["token"], "meta": {"requested": [f"tool @ file://{root}"]}},
                                        environ, exe=posix_python, write=True)
    assert finished["ok"], finished
    written = [path for path in new.rglob("*.json") if "tool @" in path.read_text("utf-8")]
    assert written, "finish wrote no notes"
    for path in written:  # R21: as UTF-8 text, which an EnvDesk in a UTF-8 session reads back as the same names
        text = path.read_text("utf-8")
        assert "\\udc" not in text and str(root) in json.dumps(json.loads(text), ensure_ascii=False), (path, text)
    _, deleted, _ = run_agent_for_real({"action": "delete", "path": str(root / "naïve"), "roots": roots},
                                       environ, exe=posix_python, write=True)
    assert deleted["ok"], deleted
    assert on_disk(str(root)) == []


def test_a_root_the_agent_cannot_look_in_leaves_the_other_roots_listed(tmp_path):
    """T26 (b): one root that made Python 3.6's os calls raise (there os.path.exists lets a NUL's ValueError
    through, as it let UnicodeEncodeError through) failed the whole listing; now that root is named, the others
    listed."""
    exe = old_pythons_to_test()[0]
    make_venv(tmp_path / "envs" / "plain")
    bad = str(tmp_path / "nul\x00here")
    _, listed, _ = run_agent_for_real({"roots": [bad, str(tmp_path / "envs")]}, clean_env(tmp_path), exe=exe)
    assert [env["path"] for env in listed["environments"]] == [str(tmp_path / "envs" / name)
                                                              for name in on_disk(str(tmp_path / "envs"))]
    assert [error["path"] for error in listed["errors"]] == [bad]


def test_deleting_an_environment_under_a_root_with_an_accent_removes_the_kernel_made_for_it(tmp_path, posix_python):
    """A delete removes the Jupyter kernels EnvDesk made for the environment: their kernel.json names it in UTF-8,
    which a Python naming files in ASCII could not look up, so the kernel was left behind, unable to start."""
    home = tmp_path / "home"
    env = home / "Mes projets ü" / "labo"
    make_venv(env)
    kernels = home / ".local" / "share" / "jupyter" / "kernels"
    (kernels / "labo").mkdir(parents=True)
    (kernels / "labo" / "kernel.json").write_text(json.dumps(  # as jupyter_client writes it (ASCII escapes)
        {"argv": [str(env / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
         "display_name": "labo", "language": "python", "metadata": {"envdesk": {"env": str(env)}}}, indent=1))
    environ = ascii_locale(home)
    _, deleted, _ = run_agent_for_real({"action": "delete", "path": str(env), "roots": [str(env.parent)]},
                                       environ, exe=posix_python, write=True)
    assert deleted["ok"], deleted
    assert on_disk(str(env.parent)) == [] and on_disk(str(kernels)) == []


def test_the_clean_up_of_a_half_installed_package_with_an_accent_in_its_files_removes_them(tmp_path, posix_python):
    """A half-installed package's RECORD names its files in UTF-8; a Python naming files in ASCII could not look
    them up, so the clean-up a change does first failed, and the change with it."""
    env = tmp_path / "Mes projets ü" / "labo"
    make_venv(env)
    [site] = [str(path) for path in env.glob("lib/python*/site-packages")]
    os.makedirs(os.path.join(site, "données"))
    open(os.path.join(site, "données", "é.py"), "w").close()
    half = os.path.join(site, "donnees-1.0.dist-info")  # as an installer cut off leaves it: RECORD, no METADATA
    os.makedirs(half)
    with open(os.path.join(half, "RECORD"), "w", encoding="utf-8") as handle:
        handle.write("données/é.py,,\ndonnees-1.0.dist-info/RECORD,,\n")
    environ, roots = ascii_locale(tmp_path), [str(env.parent)]
    _, begun, _ = run_agent_for_real({"action": "begin", "path": str(env), "roots": roots, "operation": "update"},
                                     environ, exe=posix_python, write=True)
    assert begun["ok"], begun
    _, cleaned, _ = run_agent_for_real({"action": "clean", "path": str(env), "roots": roots, "token": begun["token"],
                                        "keep": []}, environ, exe=posix_python, write=True)
    assert cleaned["ok"], cleaned
    assert "données" not in on_disk(site) and "donnees-1.0.dist-info" not in on_disk(site)
