"""Messy login files of real users (F8): what their login scripts print or set must not decide what EnvDesk does.

Each test writes real dotfiles for a test-bed user of its own (login shell zsh or bash, alpha's Lmod tree) and
runs EnvDesk there. The referees: the same command by hand in an ssh session (its exit status and output), Lmod's
own list of what loaded, and the environment's own pip freeze; never EnvDesk's output.
"""
from __future__ import annotations

import os
import pwd

import pytest

from envdesk.backend.operations.create import CreateRequest, create_environment
from envdesk_fixtures import cli_json, config_for, extra_cluster, raw_exec, run_cli, session_for, unique

DOTFILES = (".zshenv", ".zprofile", ".zshrc", ".bash_profile", ".bashrc", ".profile", ".config/fish/config.fish")


def write_dotfiles(cluster, files: dict[str, str]) -> None:
    """`files` ({name under the home: text}) written for the user, owned by the user, every other dotfile removed
    (not through the user's login: the files may end it)."""
    owner = pwd.getpwnam(cluster.user)
    for name in (*DOTFILES, *files):
        (cluster.home / name).unlink(missing_ok=True)
    for name, text in files.items():
        path = cluster.home / name
        for folder in [*reversed(path.relative_to(cluster.home).parents)][1:]:
            (cluster.home / folder).mkdir(exist_ok=True)
            os.chown(cluster.home / folder, owner.pw_uid, owner.pw_gid)
        path.write_text(text)
        os.chown(path, owner.pw_uid, owner.pw_gid)


def by_hand(cluster, command: str) -> tuple[int, str, str]:
    """`command` typed in an ssh session: run by the user's login shell, with its dotfiles."""
    return raw_exec(cluster, cluster.identity_file, command, timeout=120)


def freeze(cluster, env_path: str, modules: tuple[str, ...]) -> set[str]:
    """The environment's own pip freeze, its modules loaded as a user loads them (written to a file: what the login
    scripts print is no part of it)."""
    load = f"module load {' '.join(modules)}; " if modules else ""
    out = cluster.run_as_user(f"{load}{env_path}/bin/python -m pip freeze > ~/freeze.txt", check=False)
    assert out.returncode == 0, out.stderr
    text = (cluster.home / "freeze.txt").read_text()
    return {line.lower() for line in text.split() if line.startswith("tiny")}


@pytest.fixture(scope="module")
def zsh_cluster(testbed):
    cluster = extra_cluster(testbed, "/bin/zsh")
    yield cluster
    write_dotfiles(cluster, {})


@pytest.fixture
def zsh(zsh_cluster, tmp_path, home):
    """(cluster, session) for the zsh user, its dotfiles cleared before each test."""
    write_dotfiles(zsh_cluster, {})
    session = session_for(config_for(tmp_path / "cfg", zsh_cluster))
    yield zsh_cluster, session
    session.close()


# -- 1: the word "error" in what the login scripts print --------------------------------------------------

def test_a_login_file_that_says_errors_does_not_fail_the_module_load(zsh):
    cluster, session = zsh
    write_dotfiles(cluster, {".zshenv": 'echo "Problems? Report errors to help@fakeeb.example"\n'})
    status, out, _ = by_hand(cluster, "bash -lc 'module load python/3.11.5 && echo $LOADEDMODULES'")
    assert status == 0 and "Report errors" in out and "python/3.11.5" in out  # the referee: it loads by hand
    made = create_environment(session, cluster.name, CreateRequest(name=unique("e2"), kind="venv",
                                                                   modules=["python/3.11.5"], packages=["tinyalpha"]))
    assert made.environment.modules == ("python/3.11.5",)
    assert freeze(cluster, made.environment.path, made.environment.modules) == {"tinyalpha==2.0"}


# -- 2: a module that loads with an Lmod warning ----------------------------------------------------------

DEPRECATED = ('LmodWarning("pyold/3.11 is deprecated, use python/3.11.5")\n'
              'load("python/3.11.5")\n')


def test_a_module_that_warns_as_it_loads_is_used_and_its_warning_shown(zsh):
    cluster, session = zsh
    write_dotfiles(cluster, {".bash_profile": 'export MODULEPATH="$HOME/mods:$MODULEPATH"\n'})
    cluster.run_as_user("mkdir -p ~/mods/pyold && cat > ~/mods/pyold/3.11.lua", input=DEPRECATED)
    # the referee: Lmod ends the load with status 1, yet the module is loaded and a venv is made with it by hand
    status, out, err = by_hand(cluster, "bash -lc 'module load pyold/3.11; echo status=$?; echo $LOADEDMODULES; "
                                        "python3 -m venv ~/byhand-venv && echo made'")
    assert "status=1" in out and "pyold/3.11" in out and "made" in out, out + err
    assert "is deprecated" in err
    made = create_environment(session, cluster.name, CreateRequest(name=unique("w"), kind="venv",
                                                                   modules=["pyold/3.11"], packages=["tinyalpha"]))
    assert made.environment.modules == ("pyold/3.11",)
    assert any("pyold/3.11 is deprecated, use python/3.11.5" in note for note in made.notes), made.notes
    assert freeze(cluster, made.environment.path, made.environment.modules) == {"tinyalpha==2.0"}


# -- 3: login output that ends without a newline -----------------------------------------------------------

@pytest.fixture(scope="module")
def fish_cluster(testbed):
    cluster = extra_cluster(testbed, "/usr/bin/fish")
    yield cluster
    write_dotfiles(cluster, {})


@pytest.mark.parametrize("shell, files, printed", [
    ("zsh", {".bash_profile": "printf '\\033[0m'\n"}, "\x1b[0m"),
    ("fish", {".config/fish/config.fish": "set_color normal\n"}, None),  # fish's: ESC(B ESC[m, no newline
])
def test_login_output_without_a_newline_leaves_listing_and_create_working(request, tmp_path, home, shell, files,
                                                                          printed):
    cluster = request.getfixturevalue(f"{shell}_cluster")
    write_dotfiles(cluster, files)
    _, out, _ = by_hand(cluster, "bash -lc true")  # the referee: what a login prints before any command's own
    assert out and not out.endswith("\n") and (printed is None or out == printed), repr(out)
    name = unique("nl")
    cluster.run_as_user(f"module load python/3.11.5 && python3 -m venv ~/envs/{name}")
    config = tmp_path / "cfg"
    session = session_for(config_for(config, cluster))
    try:
        listed = cli_json("env", "list", cluster.name, config=config, home=home)
        assert name in [env["name"] for env in listed]
        made = create_environment(session, cluster.name, CreateRequest(name=unique("c"), kind="venv",
                                                                       packages=["tinyalpha"]))
        assert freeze(cluster, made.environment.path, made.environment.modules) == {"tinyalpha==2.0"}
    finally:
        session.close()


# -- 7: a login script that ends the shell -----------------------------------------------------------------

def test_a_login_script_that_exits_is_named_as_the_reason(zsh_cluster, tmp_path, home):
    cluster = zsh_cluster
    write_dotfiles(cluster, {".bash_profile": "source ~/.site_setup\n", ".site_setup": "exit 1\n"})
    try:
        status, out, _ = by_hand(cluster, "bash -lc 'echo began' </dev/null")  # the referee: the command never begins
        assert status == 1 and "began" not in out
        config = tmp_path / "cfg"
        config_for(config, cluster)
        done = run_cli("env", "create", cluster.name, unique("x"), "--package", "tinyalpha", config=config, home=home)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "login scripts" in done.stderr and "(status 1) before EnvDesk's command began" in done.stderr
        assert "~/.bash_profile" in done.stderr
    finally:
        write_dotfiles(cluster, {})


def test_a_uv_cache_folder_that_cannot_be_written_is_named_with_what_to_do(zsh_cluster, tmp_path, home):
    """T26: where uv's cache folder cannot be made (a read-only or missing home, a UV_CACHE_DIR set by the site),
    the create said "A program EnvDesk needs is not installed there." Referee: uv by hand, which fails to make its
    cache there."""
    cluster = zsh_cluster
    closed = cluster.home / unique("closed")
    closed.mkdir(mode=0o555)  # root's: the user may not write in it
    write_dotfiles(cluster, {".zshenv": f"export UV_CACHE_DIR={closed}/uv\n"})
    try:
        status, _, err = by_hand(cluster, f"bash -lc 'module load {cluster.uv_module}; uv venv ~/{unique('by-hand')}'")
        assert status != 0 and "Failed to initialize cache" in err, err
        config = tmp_path / "cfg"
        config_for(config, cluster)
        name = unique("uvc")
        done = run_cli("env", "create", cluster.name, name, "--kind", "uv", config=config, home=home)
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"uv cannot use its cache folder {closed}/uv" in done.stderr and "UV_CACHE_DIR" in done.stderr
        assert "not installed" not in done.stderr
        assert not (cluster.home / "venvs" / name).exists()
    finally:
        write_dotfiles(cluster, {})
        closed.rmdir()


def test_a_login_file_that_reads_standard_input_is_named_as_the_reason(zsh_cluster, tmp_path, home):
    """T26: a ~/.bash_profile asking `read -r ACCT` took EnvDesk's input, and the user was told the login scripts
    ended the shell, to look for an 'exit' or 'set -e'. Referee: bash by hand, whose first line of input the
    login file takes."""
    cluster = zsh_cluster
    write_dotfiles(cluster, {".bash_profile": 'echo -n "Which project account? "; read -r ACCT\n'})
    try:
        status, out, _ = by_hand(cluster, "printf 'one\\ntwo\\n' | bash -lc 'IFS= read -r line; echo got:$line'")
        assert status == 0 and "got:two" in out, out
        config = tmp_path / "cfg"
        config_for(config, cluster)
        name = unique("reads")
        done = run_cli("env", "create", cluster.name, name, config=config, home=home)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "read from standard input" in done.stderr and "if [[ $- == *i* ]]" in done.stderr, done.stderr
        assert "ended the shell" not in done.stderr
        assert not (cluster.home / "venvs" / name).exists()
    finally:
        write_dotfiles(cluster, {})


def test_a_login_without_the_module_command_says_so_not_that_the_module_is_missing(zsh):
    """T17: an account whose login files remove `module` was told the cluster had no such module and to run
    'module avail', which it cannot. Referee: the login by hand, where bash says module is not found."""
    from envdesk.backend.errors import InvalidInput
    cluster, session = zsh
    write_dotfiles(cluster, {".bash_profile": "unset -f module ml 2>/dev/null; unset BASH_ENV\n",
                             ".zshenv": "unset BASH_ENV\n"})  # Lmod's BASH_ENV would define it again
    status, _, err = by_hand(cluster, "bash -lc 'module load python/3.11.5'")
    assert status != 0 and "module: command not found" in err, err
    with pytest.raises(InvalidInput) as said:
        create_environment(session, cluster.name, CreateRequest(name=unique("nomod"), kind="venv",
                                                                modules=["python/3.11.5"]))
    assert "has no module command" in said.value.message and "module avail" not in said.value.hint, said.value



def test_a_login_file_that_starts_another_shell_is_stopped_before_that_shell_runs_any_input(zsh, tmp_path):
    """T17: `exec zsh -l` in ~/.bash_profile (where chsh is not allowed) replaced the bash EnvDesk starts, and zsh
    ran EnvDesk's input, a program's lines among them, as shell commands ('zsh: no matches found: _n(b)...'). A
    first line that bash passes over now stops any other shell at once. Referees: the login by hand, where bash
    never runs its command, and a file the input would make if a shell ran it."""
    from envdesk.backend.errors import CommandFailed
    cluster, session = zsh
    write_dotfiles(cluster, {".bash_profile": "exec /bin/zsh -l\n"})
    status, out, _ = by_hand(cluster, "bash -lc 'echo began' </dev/null")
    assert "began" not in out, out  # zsh took over: bash's command never ran
    canary = cluster.home / "ran-as-shell"
    runner = session.target(cluster.name).runner
    with pytest.raises(CommandFailed, match="start another shell") as said:
        runner.run_shell("cat >/dev/null", stdin=f"touch {canary}\n".encode())
    assert "exec zsh -l" in said.value.hint and not canary.exists()


ENVIRONMENT_MODULES_32 = """module() {  # STAND-IN for Environment Modules 3.2 (Tcl), which cannot be installed here:
  # its shape on CentOS 7: an unknown module is said on stderr, and the load ends with status 0
  echo "ModuleCmd_Load.c(213):ERROR:105: Unable to locate a modulefile for '$2'" >&2
  return 0
}
unset LMOD_CMD BASH_ENV
"""


def test_a_module_system_that_says_ok_to_an_unknown_module_is_judged_by_what_loaded(zsh):
    """R15: Environment Modules 3.2 ends the load of a module it cannot find with status 0, and once the word
    'error' no longer failed a load, a misspelt module was taken and the environment built with whatever Python the
    login had. Referee: what loaded ($LOADEDMODULES) by hand, with the same module system."""
    from envdesk.backend.errors import InvalidInput
    cluster, session = zsh
    write_dotfiles(cluster, {".bash_profile": ENVIRONMENT_MODULES_32})  # (BASH_ENV: Lmod's would define it again)
    status, out, err = by_hand(cluster, "bash -lc 'module load pyhton/3.11; echo status=$? loaded=$LOADEDMODULES'")
    assert "status=0 loaded=" in out and "pyhton" not in out.split("loaded=")[1] and "ERROR" in err, out + err
    with pytest.raises(InvalidInput, match="could not load"):
        create_environment(session, cluster.name, CreateRequest(name=unique("typo"), kind="venv",
                                                                modules=["pyhton/3.11"]))


def test_a_module_asked_for_by_part_of_its_version_that_warns_is_taken_as_lmod_took_it(zsh):
    """R15: after a warning (Lmod's status 1) the load is judged by what loaded, and 'pyold/3' loads pyold/3.11
    (Lmod's extended default): the check wanted 'pyold/3' exactly. Referee: Lmod by hand."""
    cluster, session = zsh
    write_dotfiles(cluster, {".bash_profile": 'export MODULEPATH="$HOME/mods:$MODULEPATH"\n'})
    cluster.run_as_user("mkdir -p ~/mods/pyold && cat > ~/mods/pyold/3.11.lua", input=DEPRECATED)
    status, out, err = by_hand(cluster, "bash -lc 'module load pyold/3; echo status=$?; echo $LOADEDMODULES'")
    assert "status=1" in out and "pyold/3.11" in out, out + err
    made = create_environment(session, cluster.name, CreateRequest(name=unique("part"), kind="venv",
                                                                   modules=["pyold/3"], packages=["tinyalpha"]))
    assert freeze(cluster, made.environment.path, made.environment.modules) == {"tinyalpha==2.0"}


def test_a_login_file_that_exits_with_status_0_is_not_taken_for_a_command_that_ran(zsh):
    """R15: `exit 0` in a login file ended the shell before EnvDesk's command, and the command counted as done (its
    output empty, status 0). Referee: the login by hand, where the command prints nothing."""
    from envdesk.backend.errors import CommandFailed
    cluster, session = zsh
    write_dotfiles(cluster, {".bash_profile": "exit 0\n"})
    status, out, _ = by_hand(cluster, "bash -lc 'echo ran'")
    assert status == 0 and "ran" not in out, out
    with pytest.raises(CommandFailed, match="ended the shell"):
        session.target(cluster.name).runner.run_shell("echo ran")


# -- T17 LOW-11: a greeting in colour ----------------------------------------------------------------------

def test_a_greeting_in_colour_reaches_the_progress_as_its_words(zsh_cluster, tmp_path, home):
    """T17: a login script's coloured greeting reached the progress as '\\x1b[1;32mWelcome to \\x1b[0mthe cluster'
    (on a terminal written out, so as not to obey it). The referee: the login by hand prints those codes, and the
    words a terminal shows are what is left without them."""
    cluster = zsh_cluster
    write_dotfiles(cluster, {".bash_profile": "printf '\\033[1;32mWelcome to \\033[0mthe cluster\\n' >&2\n"})
    _, _, err = by_hand(cluster, "bash -lc true")
    assert "\x1b[1;32mWelcome to \x1b[0mthe cluster" in err, repr(err)
    config = tmp_path / "cfg"
    config_for(config, cluster)
    done = run_cli("env", "create", cluster.name, unique("col"), "--package", "tinyalpha", config=config, home=home)
    assert done.returncode == 0, done.stderr
    assert "    Welcome to the cluster\n" in done.stderr, done.stderr  # the progress
    assert "\x1b" not in done.stdout + done.stderr and "\\x1b" not in done.stdout + done.stderr
