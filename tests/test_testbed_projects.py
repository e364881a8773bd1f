"""Source projects on the test bed (testbed/projects.py): VCS and editable installs, offline, by pip and uv.

What pip (beta: `python -m venv`, pip 23.0.1) and uv (alpha: `uv venv`) print
in `pip freeze` / `uv pip freeze` for each kind of install is pinned here
line by line, so that EnvDesk's export can be compared with it.  Every
install runs with no network at all (run_as_user(network=False)).
"""
from __future__ import annotations

import secrets
import shlex
from dataclasses import dataclass

import pytest

from testbed.software import bed_site_packages
from testbed.projects import ProjectInfo, add_commit, clone_project, make_project
from testbed.util import CommandError



@dataclass
class Projects:
    vcs: ProjectInfo       # git repository; commit = first (1.0), then add_commit made `second` (2.0)
    second: str
    plain: ProjectInfo     # folder without version control (0.5)
    clone: ProjectInfo     # `git clone` of vcs (remote origin = vcs.path), at `second`


@pytest.fixture(scope="module")
def projects(testbed) -> dict[str, Projects]:
    """The same three projects on alpha and on beta (names unique to this run)."""
    tag = secrets.token_hex(3)
    made = {}
    for name in ("alpha", "beta"):
        cluster = testbed.clusters[name]
        vcs = make_project(cluster, f"vcs{tag}", "1.0", git=True, dependencies=["tinyalpha==1.1"])
        second = add_commit(cluster, vcs, "2.0")
        plain = make_project(cluster, f"plain{tag}", "0.5", git=False)
        clone = clone_project(cluster, vcs, f"clone{tag}")
        made[name] = Projects(vcs, second, plain, clone)
    return made


# ---------------------------------------------------------------- tools

def _load(cluster, uv: bool = False) -> str:
    return "module load " + " ".join([*cluster.python_modules, *([cluster.uv_module] if uv else [])])


def new_env(cluster, uv: bool) -> str:
    env = f"{cluster.home}/projenvs/{secrets.token_hex(4)}"
    make = f"uv venv -q {env}" if uv else f"python -m venv {env}"
    cluster.run_as_user(f"set -e; {_load(cluster, uv)}; mkdir -p {cluster.home}/projenvs; {make}", network=False)
    return env


def install(cluster, env: str, uv: bool, *args: str, check: bool = True):
    find = f"--no-index --find-links {cluster.wheelhouse}"
    words = " ".join(shlex.quote(a) for a in args)
    if uv:
        command = f"uv pip install -q --python {env}/bin/python {find} {words}"
    else:
        command = f"{env}/bin/python -m pip install -q --no-cache-dir --disable-pip-version-check {find} {words}"
    return cluster.run_as_user(f"{_load(cluster, uv)}; {command}", check=check, network=False)


def freeze(cluster, env: str, uv: bool) -> list[str]:
    command = (f"uv pip freeze -q --python {env}/bin/python" if uv
               else f"{env}/bin/python -m pip freeze --disable-pip-version-check")
    out = cluster.run_as_user(f"{_load(cluster, uv)}; {command}", network=False).stdout
    return out.splitlines()


def imported(cluster, env: str, name: str) -> tuple[str, str]:
    """(__version__, __file__) of name, imported by the environment's Python outside the project folder."""
    out = cluster.run_as_user(
        f"cd /; {env}/bin/python -c 'import {name}; print({name}.__version__); print({name}.__file__)'",
        network=False).stdout.split()
    return out[0], out[1]


# ---------------------------------------------------------------- VCS installs

def test_pip_installs_the_exact_old_commit_and_freezes_it(testbed, projects):
    beta, p = testbed.clusters["beta"], projects["beta"]
    vcs = p.vcs
    env = new_env(beta, uv=False)
    in_site = f"{env}/{bed_site_packages()}/{vcs.name}/__init__.py"

    # The bed's pip (23.0.1, vendored packaging 21.3) refuses a PEP 508 URL
    # without a host, although its own freeze prints exactly that (pypa/pip#7650).
    refused = install(beta, env, False, vcs.requirement(), check=False)
    assert refused.returncode != 0 and "Invalid requirement" in refused.stderr, (
        "the bed's pip now takes 'NAME @ git+file:///...': update this test and "
        "the note in ProjectInfo.requirement")

    # pip's own VCS form; the branch head is `second` (2.0), the first commit still gives 1.0
    install(beta, env, False, vcs.pip_url(vcs.commit))
    assert freeze(beta, env, False) == ["tinyalpha==1.1", vcs.requirement(vcs.commit)]
    assert imported(beta, env, vcs.name) == ("1.0", in_site)

    install(beta, env, False, vcs.pip_url(p.second))
    assert freeze(beta, env, False) == ["tinyalpha==1.1", vcs.requirement(p.second)]
    assert imported(beta, env, vcs.name) == ("2.0", in_site)

    # file://localhost is the PEP 508 spelling that pip takes; freeze echoes it back
    install(beta, env, False, vcs.requirement(vcs.commit, localhost=True))
    assert freeze(beta, env, False) == ["tinyalpha==1.1", vcs.requirement(vcs.commit, localhost=True)]
    assert imported(beta, env, vcs.name) == ("1.0", in_site)


def test_uv_installs_the_exact_old_commit_and_freezes_it(testbed, projects):
    alpha, p = testbed.clusters["alpha"], projects["alpha"]
    vcs = p.vcs
    env = new_env(alpha, uv=True)
    in_site = f"{env}/{bed_site_packages()}/{vcs.name}/__init__.py"

    install(alpha, env, True, vcs.requirement(vcs.commit))  # head is `second`
    assert freeze(alpha, env, True) == ["tinyalpha==1.1", vcs.requirement(vcs.commit)]
    assert imported(alpha, env, vcs.name) == ("1.0", in_site)

    install(alpha, env, True, vcs.requirement(p.second))
    assert freeze(alpha, env, True) == ["tinyalpha==1.1", vcs.requirement(p.second)]
    assert imported(alpha, env, vcs.name) == ("2.0", in_site)

    # uv takes every spelling and freezes the same normal form: no host, no #egg
    for spelling in (vcs.requirement(vcs.commit, localhost=True), vcs.pip_url(vcs.commit)):
        install(alpha, env, True, spelling)
        assert freeze(alpha, env, True) == ["tinyalpha==1.1", vcs.requirement(vcs.commit)], spelling
        assert imported(alpha, env, vcs.name) == ("1.0", in_site)


# ---------------------------------------------------------------- editable installs

def test_pip_editable_installs_and_what_freeze_prints(testbed, projects):
    beta, p = testbed.clusters["beta"], projects["beta"]
    env = new_env(beta, uv=False)

    install(beta, env, False, "-e", p.plain.path)
    assert freeze(beta, env, False) == [
        f"# Editable install with no version control ({p.plain.name}==0.5)",
        f"-e {p.plain.path}",
    ]
    assert imported(beta, env, p.plain.name) == ("0.5", p.plain.init_file)

    # a git repository without a remote: still the folder, with another comment
    install(beta, env, False, "-e", p.vcs.path)
    vcs_lines = [f"# Editable Git install with no remote ({p.vcs.name}==2.0)", f"-e {p.vcs.path}"]
    assert freeze(beta, env, False) == [  # sorted by name: plainTAG, tinyalpha, vcsTAG
        f"# Editable install with no version control ({p.plain.name}==0.5)", f"-e {p.plain.path}",
        "tinyalpha==1.1", *vcs_lines,
    ]
    assert imported(beta, env, p.vcs.name) == ("2.0", p.vcs.init_file)

    # a clone with a remote: pip freezes the remote and the checked-out commit
    install(beta, env, False, "-e", p.clone.path)
    assert freeze(beta, env, False) == [
        f"# Editable install with no version control ({p.plain.name}==0.5)", f"-e {p.plain.path}",
        "tinyalpha==1.1",
        f"-e git+file://{p.vcs.path}@{p.second}#egg={p.vcs.name}",
    ]
    assert imported(beta, env, p.vcs.name) == ("2.0", p.clone.init_file)


def test_uv_editable_installs_and_what_freeze_prints(testbed, projects):
    alpha, p = testbed.clusters["alpha"], projects["alpha"]
    env = new_env(alpha, uv=True)

    install(alpha, env, True, "-e", p.plain.path)
    assert freeze(alpha, env, True) == [f"-e {p.plain.file_url}"]
    assert imported(alpha, env, p.plain.name) == ("0.5", p.plain.init_file)

    # uv prints file:///FOLDER whether or not it is a git repository, with or without a remote
    for project in (p.vcs, p.clone):
        install(alpha, env, True, "-e", project.path)
        assert freeze(alpha, env, True) == [  # sorted by name: plainTAG, tinyalpha, vcsTAG
            f"-e {p.plain.file_url}", "tinyalpha==1.1", f"-e {project.file_url}"], project.path
        assert imported(alpha, env, p.vcs.name) == ("2.0", project.init_file)


# ---------------------------------------------------------------- the helpers themselves

def test_projects_belong_to_the_user_and_keep_both_commits(testbed, projects):
    beta, p = testbed.clusters["beta"], projects["beta"]
    owners = beta.run_as_user(
        f"find {p.vcs.path} {p.plain.path} {p.clone.path} ! -user {beta.user} | head -5").stdout
    assert owners == ""
    log = beta.run_as_user(f"cd {p.vcs.path} && git log --format=%H main && git status --porcelain").stdout
    assert log.split() == [p.second, p.vcs.commit]
    assert p.clone.commit == p.second and p.clone.origin == p.vcs.path and p.clone.version == "2.0"
    assert len(p.vcs.commit) == 40 and p.plain.commit is None and not p.plain.git
    with pytest.raises(CommandError, match="already exists"):
        make_project(beta, p.plain.name, "9.9", git=False)  # never over an existing folder
