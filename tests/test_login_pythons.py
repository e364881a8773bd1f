"""Login nodes whose Python is not a python3 on PATH (user trial T26): the Alliance's, with Python only from a
module (`module load python`); CentOS 7's, whose `python` is 2.7 and no python3; one where only `python` is a
Python 3 and a shell function named python3 stands where no program is. EnvDesk's helper finds a Python 3.6+ in
the same command line that runs it (no command more: sshd's log counts them), or says what to do.

Each test writes the user's ~/.bash_profile (the shell EnvDesk starts is bash --login, whatever the login shell:
here tcsh) with a PATH of links to /usr/bin's programs but its Pythons. Referees: sshd's log (commands run), the
environment's own pip freeze and pyvenv.cfg, Lmod (what `module load python` puts on PATH, and that nothing is
loaded in a new login), the Python programs asked by hand.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import pytest

from envdesk.backend.inventory import read_inventory
from envdesk.backend.operations.check import check_connection
from envdesk.backend.operations.create import CreateRequest, create_environment
from envdesk_fixtures import cli_json, config_for, extra_cluster, run_cli, session_for, unique
from lmod_fixtures import python_after, pyvenv_home
from test_create_one_command import commands_of
from test_login_files import freeze, write_dotfiles

NO_PYTHONS = ('mkdir -p ~/bin-nopy && for f in /usr/bin/*; do case "${f##*/}" in python*) ;; '
              '*) ln -sf "$f" ~/bin-nopy/ ;; esac; done')
"""A folder of links to every program of /usr/bin but its Pythons (the test bed's bash, base64, uv... stay)."""
PATH_WITHOUT_PYTHON = "export PATH=$HOME/bin-nopy\n"

PYTHON27 = r'''#!/usr/bin/python3 -S
"""STAND-IN for CentOS 7's /usr/bin/python, a Python 2.7 (a real 2.7 is on no CI machine): it runs a program given
with -c or on standard input (-) as 2.7 would as far as it matters here: sys.version_info says 2.7.18 and there is
no sys.implementation (3.3+)."""
import sys
import types

fake = types.ModuleType("sys")
fake.__dict__.update({k: v for k, v in vars(sys).items() if k != "implementation"})
fake.version_info = (2, 7, 18, "final", 0)
fake.version = "2.7.18 (default, stand-in)"
args = [a for a in sys.argv[1:] if a != "-S"]
if args[:1] == ["-c"]:
    program, fake.argv = args[1], ["-c", *args[2:]]
elif args[:1] == ["-"]:
    program, fake.argv = sys.stdin.read(), args
else:
    sys.exit("python 2.7 stand-in: only -c PROGRAM and - are supported")
sys.modules["sys"] = fake
exec(compile(program, "<string>", "exec"), {"__name__": "__main__"})
'''


@pytest.fixture(scope="module")
def tcsh_cluster(testbed):
    cluster = extra_cluster(testbed, "/bin/tcsh")
    cluster.run_as_user(NO_PYTHONS)
    yield cluster
    write_dotfiles(cluster, {})


@contextlib.contextmanager
def cleared(cluster, folder: Path) -> Iterator[tuple]:
    """(cluster, config folder, session) for a cluster of the test's own, with its config in `folder`, the user's
    dotfiles cleared before and after."""
    write_dotfiles(cluster, {})
    paths = config_for(folder, cluster)
    session = session_for(paths)
    try:
        yield cluster, paths.config_dir, session
    finally:
        session.close()
        write_dotfiles(cluster, {})


@pytest.fixture
def cluster(tcsh_cluster, tmp_path, home):
    """(cluster, config folder, session), the user's dotfiles cleared before each test."""
    with cleared(tcsh_cluster, tmp_path / "cfg") as found:
        yield found


def test_python_only_from_a_module_lists_and_creates(cluster, home):
    """T26 HIGH-1: every command failed ("found no Python on this cluster"), even a create with the module."""
    cluster, config, session = cluster
    write_dotfiles(cluster, {".bash_profile": PATH_WITHOUT_PYTHON})
    # the referees: no Python in a login, and Lmod's default python module gives one
    assert cluster.run_as_user("type -P python3 python; echo $LOADEDMODULES", check=False).stdout.strip() == ""
    loaded, folder = python_after(cluster, ["python"])
    assert loaded.startswith("python/")
    name = unique("modonly")
    cluster.run_as_user(f"module load python && python3 -m venv --without-pip ~/venvs/{name}")
    listed = cli_json("env", "list", cluster.name, config=config, home=home)
    assert name in [env["name"] for env in listed]

    modules = list(cluster.python_modules)
    made = create_environment(session, cluster.name, CreateRequest(name=unique("m"), kind="venv", modules=modules,
                                                                   packages=["tinyalpha"]))
    assert freeze(cluster, made.environment.path, tuple(modules)) == {"tinyalpha==2.0"}
    assert pyvenv_home(made.environment.path) == python_after(cluster, modules)[1]

    def create_commands() -> int:
        again, ran = commands_of(cluster, lambda: create_environment(
            session, cluster.name, CreateRequest(name=unique("m"), kind="venv", modules=modules)))
        assert not isinstance(again, Exception), again
        return len(ran)
    without_python = create_commands()
    write_dotfiles(cluster, {})
    assert without_python == create_commands()  # no command more than with python3 on PATH: found in the same line
    # what the helper loaded stayed in its own shell: a new login has nothing loaded
    assert cluster.run_as_user("echo \"$LOADEDMODULES\"").stdout.strip() == ""


def test_python_27_alone_is_named_as_too_old(cluster, home):
    """T26 HIGH-2: with only a 2.7 `python` and no module to load, the listing said "AttributeError: 'module'
    object has no attribute 'implementation'"."""
    cluster, config, _ = cluster
    write_dotfiles(cluster, {".bash_profile": PATH_WITHOUT_PYTHON + "export PATH=$HOME/py27:$PATH MODULEPATH=\n",
                             "py27/python": PYTHON27})
    cluster.run_as_user("chmod 755 ~/py27/python")
    said = cluster.run_as_user("python -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'").stdout
    assert said.strip() == "2.7"  # the referee: what `python` says it is (and that module load python fails)
    assert cluster.run_as_user("module load python", check=False).returncode != 0
    cluster.run_as_user(f"/usr/bin/python3 -m venv --without-pip ~/venvs/{unique('old')}")  # one to list
    failed = run_cli("env", "list", cluster.name, "--json", config=config, home=home)
    assert failed.returncode == 1
    assert "python is 2.7; EnvDesk needs Python 3.6 or newer" in failed.stdout + failed.stderr
    assert "module load python" in failed.stdout + failed.stderr
    assert "implementation" not in failed.stdout + failed.stderr and "envdesk -v" not in failed.stderr
    name = unique("c")
    made = run_cli("env", "create", cluster.name, name, "--kind", "venv", config=config, home=home)
    assert made.returncode == 1 and "python is 2.7; EnvDesk needs Python 3.6 or newer" in made.stderr
    assert "envdesk -v" not in made.stderr
    assert cluster.run_as_user(f"test -e ~/venvs/{name}", check=False).returncode == 1  # the referee: nothing made


def test_python_27_and_a_module_uses_the_module(cluster, home):
    """CentOS 7 with modules: the 2.7 `python` is passed over, and the module's Python runs the helper."""
    cluster, config, session = cluster
    write_dotfiles(cluster, {".bash_profile": PATH_WITHOUT_PYTHON + "export PATH=$HOME/py27:$PATH\n",
                             "py27/python": PYTHON27})
    cluster.run_as_user("chmod 755 ~/py27/python")
    name = unique("old")
    cluster.run_as_user(f"module load python && python3 -m venv --without-pip ~/venvs/{name}")
    listed = read_inventory(session.target(cluster.name).runner, ["~/venvs"])
    assert name in {env.name for env in listed.environments}
    made = create_environment(session, cluster.name, CreateRequest(name=unique("o"), kind="venv",
                                                                   modules=list(cluster.python_modules),
                                                                   packages=["tinyalpha"]))
    assert freeze(cluster, made.environment.path, tuple(cluster.python_modules)) == {"tinyalpha==2.0"}


def test_only_python_and_a_python3_function(cluster, home):
    """T26 LOW-9 and LOW-10: a shell function python3 (no such program) was taken for a Python ("exec: python3: not
    found"), and where only `python` is a Python 3, cluster test said "Python of unknown version (none)"."""
    cluster, config, session = cluster
    write_dotfiles(cluster, {".bash_profile": PATH_WITHOUT_PYTHON + "export PATH=$HOME/onlypy:$PATH MODULEPATH=\n"
                                              "python3() { echo 'not a Python' >&2; return 3; }\n"})
    cluster.run_as_user("mkdir -p ~/onlypy && ln -sf /usr/bin/python3 ~/onlypy/python")
    version = cluster.run_as_user("python -c 'import platform; print(platform.python_version())'").stdout.strip()
    assert cluster.run_as_user("type -P python3", check=False).stdout.strip() == ""  # the referee: no program
    checked = check_connection(session, cluster.name)
    assert checked.ok, checked.error
    assert f"Python {version} ({cluster.home}/onlypy/python)" in " ".join(step.found for step in checked.steps)
    made = create_environment(session, cluster.name, CreateRequest(name=unique("p"), kind="venv",
                                                                   packages=["tinyalpha"]))
    assert freeze(cluster, made.environment.path, ()) == {"tinyalpha==2.0"}
    listed = cli_json("env", "list", cluster.name, config=config, home=home)
    assert made.environment.name in [env["name"] for env in listed]
