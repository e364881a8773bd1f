"""The envdesk command line against "This computer": exact forms, JSON shapes and exit codes."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from agent_fixtures import umask_set
from envdesk.cli import build_parser
from envdesk_fixtures import envdesk_command, freeze_here, this_computer_with_one_venv
from testbed.wheels import WHEELS, WheelSpec, build_wheel

ENVDESK = envdesk_command()


def envdesk(*args, config_dir, env=None):
    command = ENVDESK
    return subprocess.run([*command, "--config-dir", str(config_dir), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def local_wheelhouse(config: Path, root: Path, folder: Path, *more: WheelSpec) -> Path:
    """A folder of real wheels (tinygamma 0.1, and `more`) that "This computer" installs from, and nothing else."""
    wheels = folder / "wheels"
    wheels.mkdir()
    for spec in (WheelSpec("tinygamma", "0.1"), *more):
        build_wheel(wheels, spec)
    (config / "clusters.yaml").write_text(json.dumps({"local": {
        "env_roots": [str(root)], "pip_args": ["--no-index", "--find-links", str(wheels)]}}))
    return wheels


def pip_would_install(requirements: Path, wheels: Path, name: str) -> list[str]:
    """The referee for a requirements file: the versions of `name` pip's dry run would install from it."""
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", "-",
                          "--ignore-installed", "--no-index", "--find-links", str(wheels), "-r", str(requirements)],
                         capture_output=True, text=True, timeout=120)
    assert pip.returncode == 0, pip.stderr
    return [item["metadata"]["version"] for item in json.loads(pip.stdout)["install"]
            if item["metadata"]["name"] == name]


@pytest.fixture
def local_envs(tmp_path):
    return this_computer_with_one_venv(tmp_path)


def test_env_list_json_shape(local_envs):
    config, root = local_envs
    result = envdesk("env", "list", "local", "--json", config_dir=config)
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [(e["name"], e["kind"], e["package_count"], e["path"]) for e in listed] == [
        ("plain", "venv", 2, str(root / "plain"))]
    assert listed[0]["python"] == ".".join(map(str, sys.version_info[:3]))


def test_env_show_by_name_and_path(local_envs):
    config, root = local_envs
    by_name = json.loads(envdesk("env", "show", "local", "plain", "--json", config_dir=config).stdout)
    assert {"name", "path", "kind", "python", "package_count", "packages"} <= set(by_name)
    assert {(p["name"], p["version"]) for p in by_name["packages"]} == {("tinyalpha", "1.1"), ("Tiny_Beta", "2.0")}
    by_path = envdesk("env", "show", "local", str(root / "plain"), config_dir=config)
    assert by_path.returncode == 0, by_path.stderr
    assert "tinyalpha==1.1" in by_path.stdout


def test_an_environment_deleted_since_it_was_listed_is_said_so_by_its_path(local_envs):
    """T19: an environment deleted behind the window's back, then updated or exported from its details, was
    answered 'There is no environment '/…/gone1' on c1. Environments found there: none.' beside a list of nine:
    the window names it by path, and a listing of that one folder finds nothing else. The referee: the file
    system (the folder is gone, the other environment is still there, and env list says so)."""
    import shutil
    config, root = local_envs
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "gone1")], check=True, timeout=120)
    shutil.rmtree(root / "gone1")
    shown = envdesk("env", "show", "local", str(root / "gone1"), config_dir=config)
    assert shown.returncode == 1 and not (root / "gone1").exists()
    assert f"There is no environment at {root / 'gone1'} on local." in shown.stderr, shown.stderr
    assert "deleted or moved" in shown.stderr and "found there: none" not in shown.stderr
    listed = envdesk("env", "list", "local", "--json", config_dir=config)
    assert [env["name"] for env in json.loads(listed.stdout)] == ["plain"] and (root / "plain").is_dir()


def test_failures_exit_1_with_a_message_and_no_traceback(local_envs):
    config, _ = local_envs
    for args in (["env", "list", "nowhere"], ["env", "show", "local", "missing"], ["cluster", "remove", "nope"]):
        result = envdesk(*args, config_dir=config)
        assert result.returncode == 1, args
        assert result.stderr.startswith("envdesk: ")
        assert "Traceback" not in result.stderr


def test_usage_errors_exit_2(tmp_path):
    assert envdesk("env", config_dir=tmp_path).returncode == 2
    assert envdesk("cluster", "add", "x", config_dir=tmp_path).returncode == 2  # --host is required
    assert envdesk("frobnicate", config_dir=tmp_path).returncode == 2


def test_a_misspelt_option_is_shown_with_its_commands_usage(tmp_path):
    """T27: `env list c1 --jsn` printed envdesk's own usage line and 'Try envdesk --help', not the command's
    (README: a usage error comes with its usage line). The referee is the command's own --help."""
    said = envdesk("env", "list", "local", "--jsn", config_dir=tmp_path)
    usage = envdesk("env", "list", "--help", config_dir=tmp_path).stdout.split("\n\n", 1)[0]
    assert said.returncode == 2 and said.stderr.startswith(usage), said.stderr
    assert "unrecognized arguments: --jsn" in said.stderr and "Try 'envdesk env list --help'" in said.stderr


def test_a_snapshot_id_that_cannot_be_one_points_to_the_history(local_envs):
    """T27: `env revert local plain nosnap` was told to read `env revert --help`; the snapshots it has are what the
    user needs (`env history`, which the test runs as the hint gives it)."""
    config, _ = local_envs
    said = envdesk("env", "revert", "local", "plain", "nosnap", config_dir=config)
    assert said.returncode == 1 and "envdesk env history local plain" in said.stderr, said.stderr
    listed = envdesk("env", "history", "local", "plain", config_dir=config)
    assert listed.returncode == 0, listed.stderr


@pytest.mark.parametrize("args, companion", [
    (["disk", "local", "--yes"], "--clean"),
    (["env", "doctor", "local", "--yes"], "--fix"),
    (["env", "diff", "local:a", "local:b", "--yes"], "--make-like"),
])
def test_a_yes_with_nothing_to_agree_to_is_a_usage_error(tmp_path, args, companion):
    """A user trial's `disk local --yes` ran the report and said nothing of the --yes that did nothing: it is a
    usage error (2) naming the option it goes with, and nothing runs (no report on stdout)."""
    said = envdesk(*args, config_dir=tmp_path)
    assert said.returncode == 2, said.stderr
    assert f"--yes goes with {companion}" in said.stderr and said.stderr.startswith("usage: envdesk ")
    assert said.stdout == ""
    value = {"--fix": ["some-fix"], "--clean": ["pip"]}.get(companion, [])
    parsed = build_parser().parse_args([*args[:-1], companion, *value, "--yes"])  # with it, --yes is taken
    assert parsed.yes


def test_cluster_add_list_remove_from_a_clean_config_dir(tmp_path):
    config = tmp_path / "fresh"
    added = envdesk("cluster", "add", "cedar", "--host", "cedar.example.org", "--user", "me", "--port", "2222",
                    "--jump", "gw@jump.example.org", "--env-root", "~/projects", "--pip-arg=--no-index",
                    "--preset", "alliance", config_dir=config)
    assert added.returncode == 0, added.stderr
    listed = json.loads(envdesk("cluster", "list", "--json", config_dir=config).stdout)
    assert listed == [{"name": "cedar", "host": "cedar.example.org", "port": 2222, "user": "me",
                       "jump": ["gw@jump.example.org"], "env_roots": ["~/projects"], "pip_args": ["--no-index"],
                       "preset": "alliance", "auth": "key+code",  # the preset's login method
                       "kept_connection": False}]
    assert envdesk("cluster", "add", "bad;name", "--host", "h", config_dir=config).returncode == 1
    assert envdesk("cluster", "remove", "cedar", config_dir=config).returncode == 0
    assert json.loads(envdesk("cluster", "list", "--json", config_dir=config).stdout) == []


def test_config_dir_from_the_environment(tmp_path):
    config = tmp_path / "viaenv"
    result = envdesk("cluster", "add", "x", "--host", "h", config_dir=config)
    assert result.returncode == 0
    listed = subprocess.run([*ENVDESK, "cluster", "list", "--json"], capture_output=True, text=True,
                            env={**os.environ, "ENVDESK_CONFIG_DIR": str(config)})
    assert [c["name"] for c in json.loads(listed.stdout)] == ["x"]


def test_export_to_a_folder_is_a_plain_error(local_envs, tmp_path):
    config, _ = local_envs
    folder = tmp_path / "exports"
    folder.mkdir()
    result = envdesk("env", "export", "local", "plain", "-o", str(folder), config_dir=config)
    assert result.returncode == 1
    assert "unexpected" not in result.stderr
    assert result.stderr.startswith(f"envdesk: Could not write {folder}") and "folder" in result.stderr
    assert list(folder.iterdir()) == []


def test_a_config_folder_that_cannot_be_written_is_a_plain_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = envdesk("cluster", "add", "x", "--host", "h", config_dir=blocker / "config")
    assert result.returncode == 1
    assert "unexpected" not in result.stderr
    assert result.stderr.startswith("envdesk: Could not") and "Not a directory" in result.stderr
    assert blocker.read_text() == "not a folder"


def test_virtualenv_is_offered_only_where_installed_and_venv_stands_in(tmp_path):
    """A computer without virtualenv: `--kind virtualenv` makes a venv and says so (no failure)."""
    config = tmp_path / "config"
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                           if not (Path(p) / "virtualenv").exists())
    root = tmp_path / "envs"
    result = envdesk("env", "create", "local", "plain", "--kind", "virtualenv", "--root", str(root),
                     config_dir=config, env={"PATH": path})
    assert result.returncode == 0, result.stderr
    assert "virtualenv is not installed" in result.stdout + result.stderr
    cfg = (root / "plain" / "pyvenv.cfg").read_text()
    assert "\nvirtualenv = " not in "\n" + cfg  # virtualenv writes its own line in pyvenv.cfg


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_settings_are_private_and_exports_follow_the_umask(local_envs, tmp_path):
    import stat

    from envdesk.backend.hostkeys import HostKeyStore, ServerIdentity
    config, _ = local_envs
    fresh = tmp_path / "fresh-config"
    assert envdesk("cluster", "add", "c1", "--host", "c1.example.org", config_dir=fresh).returncode == 0
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    assert stat.S_IMODE((fresh / "clusters.yaml").stat().st_mode) == 0o600
    import paramiko
    key = paramiko.Ed25519Key.from_private_key_file(str(make_key(tmp_path)))
    HostKeyStore(fresh / "known_hosts", tmp_path / "none").trust(ServerIdentity("h.example.org", 22, key))
    assert stat.S_IMODE((fresh / "known_hosts").stat().st_mode) == 0o600
    out = tmp_path / "shared" / "requirements.txt"
    with umask_set(0o022):
        result = envdesk("env", "export", "local", "plain", "--format", "requirements", "-o", str(out),
                         config_dir=config)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def make_key(folder):
    path = folder / "hostkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def test_cluster_add_from_a_preset_fills_in_what_the_preset_knows(tmp_path):
    import yaml

    from envdesk.backend.presets import get_preset
    config = tmp_path / "config"
    added = envdesk("cluster", "add", "nar", "--preset", "alliance", "--user", "jsmith", "--host", "Narval",
                    config_dir=config)
    assert added.returncode == 0, added.stderr
    (saved,) = json.loads(envdesk("cluster", "list", "--json", config_dir=config).stdout)
    assert get_preset("alliance").id == "alliance"
    shipped = yaml.safe_load((Path(__file__).parent.parent / "resources" / "presets" / "alliance.yaml").read_text())
    narval = next(h for h in shipped["hosts"] if h["name"] == "Narval")
    assert (saved["host"], saved["port"], saved["user"]) == (narval["host"], narval["port"], "jsmith")
    assert (saved["auth"], saved["pip_args"], saved["env_roots"]) == (
        shipped["auth"], shipped["pip_args"], shipped["env_roots"])
    unknown = envdesk("cluster", "add", "x", "--preset", "nope", "--user", "a", config_dir=config)
    assert unknown.returncode == 1 and "alliance" in unknown.stderr and "mila" in unknown.stderr
    no_user = envdesk("cluster", "add", "y", "--preset", "mila", config_dir=config)
    assert no_user.returncode == 1 and "--user" in no_user.stderr
    helped = subprocess.run([*ENVDESK, "cluster", "add", "--help"], capture_output=True, text=True, timeout=60)
    assert all(preset in helped.stdout for preset in ("alliance", "mila", "uppmax", "hpc2n"))


@pytest.mark.parametrize("root", ["/tmp/envs/../../etc", "$HOME/envs", "envs-relative", "~/a`id`"])
def test_local_roots_with_dotdot_or_shell_text_are_refused(tmp_path, root):
    config = tmp_path / "config"
    config.mkdir()
    (config / "clusters.yaml").write_text(f"local:\n  env_roots: [{json.dumps(root)}]\n")
    result = envdesk("env", "list", "local", config_dir=config)
    assert result.returncode == 1 and "unexpected" not in result.stderr
    assert "folder" in result.stderr


CORPUS = Path(__file__).with_name("corpus")


@pytest.mark.parametrize("lines, said", [
    ((CORPUS / "pip-compile-hashes.txt").read_text(), "its hashes would not be checked"),
    ("tinyalpha==1.1\n-e {here}/mylocal\n", "an editable install"),
    ("tinyalpha==1.1\n--index-url https://example.org/simple\n", "--index-url"),
    ("tinyalpha==1.1\n-c constraints.txt\n", "1 constraint in constraints.txt, which an import keeps"),
])
def test_create_from_a_requirements_file_never_drops_a_line(local_envs, tmp_path, lines, said):
    """`env create --requirements` installs every line as written or makes nothing and says to import the file
    (a user trial found hashed lines dropped and their hashes unchecked, exit 0): the file system is the referee
    that nothing was made."""
    config, root = local_envs
    (tmp_path / "constraints.txt").write_text("tinyalpha<2\n")
    (tmp_path / "mylocal").mkdir()
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(lines.replace("{here}", str(tmp_path)))
    before = sorted(os.listdir(root))
    result = envdesk("env", "create", "local", "fromfile", "--requirements", str(requirements), config_dir=config)
    assert result.returncode == 1, result.stdout + result.stderr
    assert said in result.stderr and "envdesk env import local" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(os.listdir(root)) == before


def test_a_venv_whose_python_is_gone_but_python3_is_left_is_broken(local_envs):
    """`python` after activating it would be another Python (a user trial saw it called healthy): uv, the
    referee, no longer takes its bin/python for an environment either."""
    config, root = local_envs
    (root / "plain" / "bin" / "python").unlink()
    assert (root / "plain" / "bin" / "python3").exists()
    uv = subprocess.run(["uv", "pip", "list", "--python", str(root / "plain" / "bin" / "python")],
                        capture_output=True, text=True, timeout=120)
    assert uv.returncode != 0
    shown = json.loads(envdesk("env", "show", "local", "plain", "--json", config_dir=config).stdout)
    assert shown["state"] == "broken", shown
    assert "bin/python) is missing, though" in shown["error"], shown["error"]


def test_create_from_an_environments_own_export_holds_what_it_holds(local_envs, tmp_path):
    """EnvDesk's requirements and envdesk exports carry the environment's settings (a '# envdesk:' header, its
    Python, the target's pip options): a create from them installs their packages, as pip freeze lists them
    (the referee: `uv pip freeze` of both environments). The review found both refused."""
    config, root = local_envs
    local_wheelhouse(config, root, tmp_path)
    made = envdesk("env", "create", "local", "first", "--kind", "uv", "--package", "tinygamma==0.1", config_dir=config)
    assert made.returncode == 0, made.stderr

    def freeze(name: str) -> str:
        return subprocess.run(["uv", "pip", "freeze", "--python", str(root / name / "bin" / "python")],
                              capture_output=True, text=True, check=True, timeout=120).stdout
    for fmt in ("requirements", "envdesk"):
        exported = tmp_path / f"export-{fmt}"
        done = envdesk("env", "export", "local", "first", "--format", fmt, "-o", str(exported), config_dir=config)
        assert done.returncode == 0, done.stderr
        again = envdesk("env", "create", "local", f"from-{fmt}", "--kind", "uv", "--requirements", str(exported),
                        config_dir=config)
        assert again.returncode == 0, (fmt, again.stderr, exported.read_text())
        assert freeze(f"from-{fmt}") == freeze("first") != ""


def test_a_file_whose_every_line_is_refused_makes_nothing_even_when_agreed(local_envs, tmp_path):
    """A README given by mistake: no line is a package, so --yes cannot agree to building an empty environment
    (the review found one made, exit 0). The file system says nothing was made."""
    config, root = local_envs
    readme = tmp_path / "README.txt"
    readme.write_text("# Analysis\n\nRun the notebook, then look at the plots.\nSee docs/ for more.\n")
    before = sorted(os.listdir(root))
    result = envdesk("env", "import", "local", str(readme), "--name", "fromreadme", "--yes", config_dir=config)
    assert result.returncode == 1 and "every line of it is refused" in result.stderr, result.stderr
    assert sorted(os.listdir(root)) == before


def test_import_with_json_prints_the_environment_made(local_envs, tmp_path):
    """`env import --json` without --dry-run printed text and ignored --json; it now prints the environment as
    `env show --json` does, whose packages are what `uv pip freeze` finds there (the referee)."""
    config, root = local_envs
    local_wheelhouse(config, root, tmp_path)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("tinygamma==0.1\n")
    done = envdesk("env", "import", "local", str(requirements), "--name", "fromjson", "--yes", "--json",
                   config_dir=config)
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    shown = json.loads(envdesk("env", "show", "local", "fromjson", "--json", config_dir=config).stdout)
    assert {key: made[key] for key in shown} == shown and isinstance(made["notes"], list)
    frozen = subprocess.run(["uv", "pip", "freeze", "--python", str(root / "fromjson" / "bin" / "python")],
                            capture_output=True, text=True, check=True, timeout=120).stdout.split()
    assert sorted(f"{p['name']}=={p['version']}" for p in made["packages"]) == sorted(frozen)
    assert "tinygamma==0.1" in frozen


def test_export_picks_the_format_from_the_files_name(local_envs, tmp_path):
    """A user trial's `-o requirements.txt` got EnvDesk's own YAML, which pip refuses and the import read as 28
    bad lines. The name now chooses: pip installs from requirements.txt (the referee), conda's and PEP 751's
    names get those formats (the same text as asked for by --format), other names EnvDesk's."""
    config, root = local_envs
    wheels = local_wheelhouse(config, root, tmp_path)
    made = envdesk("env", "create", "local", "named", "--kind", "uv", "--package", "tinygamma==0.1", config_dir=config)
    assert made.returncode == 0, made.stderr
    for file_name, fmt in [("requirements.txt", "requirements"), ("environment.yml", "conda"),
                           ("pylock.toml", "pylock"), ("named.yaml", "envdesk")]:
        done = envdesk("env", "export", "local", "named", "-o", str(tmp_path / file_name), config_dir=config)
        assert done.returncode == 0, done.stderr
        asked = envdesk("env", "export", "local", "named", "--format", fmt, config_dir=config)
        when = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")  # the moment of each export
        assert when.sub("T", (tmp_path / file_name).read_text()) == when.sub("T", asked.stdout), file_name
    assert pip_would_install(tmp_path / "requirements.txt", wheels, "tinygamma") == ["0.1"]
    refused = envdesk("env", "export", "local", "named", "-o", str(tmp_path / "out.json"), config_dir=config)
    assert refused.returncode == 1 and "writes no .json file" in refused.stderr, refused.stderr  # a user trial
    assert not (tmp_path / "out.json").exists()                                              # got YAML there


def test_output_read_by_a_program_that_stops_early_ends_quietly(local_envs):
    """`envdesk env list local --json | head -1` said 'unexpected error (BrokenPipeError)' (a user trial). Like a
    program ended by SIGPIPE, it now ends quietly with status 141: the reader here closes the pipe first."""
    config, _root = local_envs
    process = subprocess.Popen([*ENVDESK, "--config-dir", str(config), "env", "list", "local", "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()
    _, errors = process.communicate(timeout=120)
    assert (process.returncode, errors) == (141, "")


def test_the_undo_command_it_prints_can_be_pasted_into_a_shell(local_envs, tmp_path):
    """A user trial pasted 'Undo with: envdesk env revert local my env ...' and got two words for one name;
    with shell text in a name, the paste would have run it. bash, given the printed line, is the referee."""
    config, root = local_envs
    local_wheelhouse(config, root, tmp_path)
    canary = tmp_path / "canary"
    folder = root / f"my env;$(touch {canary})"
    subprocess.run(["uv", "venv", "-q", str(folder)], check=True, timeout=120)
    done = envdesk("env", "update", "local", str(folder), "--add", "tinygamma==0.1", config_dir=config)
    assert done.returncode == 0, done.stderr
    undo = done.stdout.split("Undo with: ", 1)[1].strip()
    scripts = os.path.dirname(ENVDESK[0]) if len(ENVDESK) == 1 else os.path.dirname(sys.executable)
    pasted = subprocess.run(["bash", "-c", undo.replace("envdesk", f"envdesk --config-dir {config}", 1)],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PATH": scripts + os.pathsep + os.environ["PATH"]})
    assert pasted.returncode == 0, pasted.stderr
    frozen = subprocess.run(["uv", "pip", "freeze", "--python", str(folder / "bin" / "python")],
                            capture_output=True, text=True, check=True, timeout=120).stdout
    assert "tinygamma" not in frozen and not canary.exists()


@pytest.mark.parametrize("args, question", [(["disk", "local", "--clean", "uv"], "Empty uv's cache on local?"),
                                            (["env", "doctor", "local", "--fix", "conda-base-off"],
                                             "Apply the fix conda-base-off on local?")])
def test_a_question_nobody_can_answer_says_so_and_how_to_say_yes(local_envs, tmp_path, args, question):
    """Run from a script (input not a terminal), a question was never shown and the command stopped with
    'Nothing was ...' only (a user trial). It now shows the question, why it took 'no' and that --yes says
    yes; and it changes nothing: uv's cache, which `uv cache dir` names, keeps its files."""
    config, _root = local_envs
    environment = {**os.environ, "UV_CACHE_DIR": str(tmp_path / "uv-cache")}
    kept = Path(subprocess.run(["uv", "cache", "dir"], capture_output=True, text=True, check=True, timeout=120,
                               env=environment).stdout.strip()) / "kept-by-the-test"
    kept.mkdir(parents=True)
    result = subprocess.run([*ENVDESK, "--config-dir", str(config), *args], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=120, env=environment)
    assert result.returncode == 1, result.stdout + result.stderr
    assert question in result.stderr and "not a terminal" in result.stderr and "--yes" in result.stderr, result.stderr
    assert kept.exists()


def test_a_quoted_tilde_is_the_home_folder_and_a_dash_the_standard_streams(local_envs, tmp_path):
    """T27: a script's quoted `-o '~/x.txt'` made a folder named ~ in the current folder, `-o -` a file named -,
    `--requirements -` read a file named - and `env import local '~/req.txt'` found no file, where --root and
    --config-dir take ~ as the home folder. The referees: the file system (where files are, and none named ~ or
    -), pip installing from what -o - printed, `uv pip freeze` of what was made."""
    config, root = local_envs
    wheels = local_wheelhouse(config, root, tmp_path)
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([*ENVDESK, "--config-dir", str(config), *args], input=stdin, capture_output=True,
                              text=True, timeout=300, cwd=work, env={**os.environ, "HOME": str(home)})

    made = run("env", "create", "local", "piped", "--kind", "uv", "--requirements", "-", stdin="tinygamma==0.1\n")
    assert made.returncode == 0, made.stderr
    assert "tinygamma==0.1" in freeze_here(root / "piped")
    saved = run("env", "export", "local", "piped", "-o", "~/piped.txt")
    assert saved.returncode == 0, saved.stderr
    printed = run("env", "export", "local", "piped", "--format", "requirements", "-o", "-")
    assert printed.returncode == 0, printed.stderr
    (tmp_path / "printed.txt").write_text(printed.stdout)
    assert pip_would_install(tmp_path / "printed.txt", wheels, "tinygamma") == ["0.1"]
    imported = run("env", "import", "local", "~/piped.txt", "--name", "again")
    assert imported.returncode == 0, imported.stderr
    assert "tinygamma==0.1" in freeze_here(root / "again")
    assert (home / "piped.txt").is_file()
    assert sorted(path.name for path in work.iterdir()) == []  # no folder named ~, no file named -


def test_import_reads_the_file_from_standard_input_given_as_a_dash(local_envs, tmp_path):
    """`pip freeze | envdesk env import local - --name copy` (a user trial found '-' taken for a file name).
    The format is told by the content; `-r` files are looked for in the current folder, as for a file there.
    `uv pip freeze` of the environment made is the referee."""
    config, root = local_envs
    local_wheelhouse(config, root, tmp_path)
    build_wheel(tmp_path / "wheels", WheelSpec("tinydelta", "1.0"))
    (tmp_path / "base.txt").write_text("tinydelta==1.0\n")
    piped = "tinygamma==0.1\n-r base.txt\n"
    done = subprocess.run([*ENVDESK, "--config-dir", str(config), "env", "import", "local", "-", "--name", "piped"],
                          input=piped, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    frozen = subprocess.run(["uv", "pip", "freeze", "--python", str(root / "piped" / "bin" / "python")],
                            capture_output=True, text=True, check=True, timeout=120).stdout.split()
    assert sorted(line for line in frozen if line.startswith("tiny")) == ["tinydelta==1.0", "tinygamma==0.1"]
    again = subprocess.run([*ENVDESK, "--config-dir", str(config), "env", "import", "local", "-", "--name", "piped",
                            "--dry-run"], input=piped, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert again.returncode == 1 and f"{root / 'piped'} already exists" in again.stdout, again.stdout + again.stderr
    conda_file = (Path(__file__).parent / "corpus" / "environment-pip-only.yml").read_text()
    planned = subprocess.run([*ENVDESK, "--config-dir", str(config), "env", "import", "local", "-", "--dry-run",
                              "--json"], input=conda_file, capture_output=True, text=True, timeout=300)
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    assert plan["name"] == "course-env" and sorted(plan["install"]) == ["TinyBeta>=1.0", "tinyalpha==1.1"]
    assert plan["needs_yes"] is False


def test_cluster_add_of_an_ssh_config_alias_says_where_openssh_would_log_in(tmp_path):
    """A user trial added `--host mylab` (an alias of ~/.ssh/config) and was told 'your login name@mylab:22'.
    The address shown is now the alias's own, as OpenSSH resolves it (`ssh -G`, the referee)."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    ssh_config = home / ".ssh" / "config"
    ssh_config.write_text("Host gateway\n    HostName gw.example.org\n    User gwuser\n\n"
                          "Host mylab\n    HostName login.mylab.example.org\n    User alice\n    Port 2222\n"
                          "    ProxyJump gateway\n\nHost *\n    ServerAliveInterval 60\n")

    def openssh(alias: str) -> str:
        said = dict(line.split(" ", 1) for line in subprocess.run(
            ["ssh", "-G", "-F", str(ssh_config), alias], capture_output=True, text=True, check=True,
            timeout=60).stdout.splitlines() if " " in line)
        return f"{said['user']}@{said['hostname']}:{said['port']}"
    added = subprocess.run([*ENVDESK, "--config-dir", str(tmp_path / "config"), "cluster", "add", "lab", "--host",
                            "mylab"], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "HOME": str(home), "USERPROFILE": str(home)})
    assert added.returncode == 0, added.stderr
    assert f"({openssh('mylab')}, through {openssh('gateway')})" in added.stdout, added.stdout


def test_a_history_export_of_a_venv_lists_only_the_packages_asked_for(local_envs, tmp_path):
    """conda's --from-history export keeps what was asked for, so it travels between platforms; a user trial
    found a venv's export listing every dependency too. pip's own `pip list --not-required` (what no other
    package needs) is the referee for what was asked for here; the versions are those uv pip freeze lists."""
    config, root = local_envs
    wheels = local_wheelhouse(config, root, tmp_path)
    build_wheel(wheels, WheelSpec("tinyalpha", "1.0"))
    build_wheel(wheels, WheelSpec("tinybeta", "1.0", ("tinyalpha>=1.0",)))
    made = envdesk("env", "create", "local", "asked", "--kind", "uv", "--package", "tinybeta", "--package",
                   "tinygamma==0.1", config_dir=config)
    assert made.returncode == 0, made.stderr
    python = str(root / "asked" / "bin" / "python")
    top = json.loads(subprocess.run([sys.executable, "-m", "pip", "--python", python, "list", "--not-required",
                                     "--format", "json"], capture_output=True, text=True, check=True,
                                    timeout=120).stdout)
    frozen = subprocess.run(["uv", "pip", "freeze", "--python", python], capture_output=True, text=True,
                            check=True, timeout=120).stdout.split()
    assert "tinyalpha==1.0" in frozen
    exported = envdesk("env", "export", "local", "asked", "--format", "conda-history", config_dir=config)
    assert exported.returncode == 0, exported.stderr
    import yaml
    pip_section = next(d["pip"] for d in yaml.safe_load(exported.stdout)["dependencies"] if isinstance(d, dict))
    assert sorted(pip_section) == sorted(line for line in frozen if line.split("==")[0] in
                                         {item["name"] for item in top})
    assert sorted(pip_section) == ["tinybeta==1.0", "tinygamma==0.1"]


def test_a_history_export_keeps_the_extras_and_markers_asked_for(local_envs, tmp_path):
    """A user trial's export wrote requests[socks] as requests==2.32.3, and the copy lacked PySocks; a line for
    another platform was lost too. The copy made from the export holds what the source holds (uv pip freeze,
    the referee), and the line for Windows travels as written."""
    config, root = local_envs
    wheels = local_wheelhouse(config, root, tmp_path)
    build_wheel(wheels, WheelSpec("tinyalpha", "1.0"))
    build_wheel(wheels, WheelSpec("tinydelta", "1.0", ('tinyalpha ; extra == "alpha"',), extras=("alpha",)))
    made = envdesk("env", "create", "local", "source", "--kind", "uv", "--package", "tinydelta[alpha]==1.0",
                   "--package", "tinygamma ; sys_platform == 'win32'", config_dir=config)
    assert made.returncode == 0, made.stderr

    def frozen(name: str) -> list[str]:
        return sorted(line for line in subprocess.run(  # the copy is a venv with pip (no conda here)
            ["uv", "pip", "freeze", "--python", str(root / name / "bin" / "python")], capture_output=True, text=True,
            check=True, timeout=120).stdout.split() if line.split("==")[0] not in ("pip", "setuptools"))

    assert frozen("source") == ["tinyalpha==1.0", "tinydelta==1.0"]
    exported = tmp_path / "environment.yml"
    exported.write_text(envdesk("env", "export", "local", "source", "--format", "conda-history",
                                config_dir=config).stdout)
    import yaml
    pip_section = next(d["pip"] for d in yaml.safe_load(exported.read_text())["dependencies"] if isinstance(d, dict))
    assert pip_section == ["tinydelta[alpha]==1.0", "tinygamma ; sys_platform == 'win32'"]  # as asked
    copied = envdesk("env", "import", "local", str(exported), "--name", "copy", config_dir=config)
    assert copied.returncode == 0, copied.stderr
    assert frozen("copy") == frozen("source")


def test_a_package_from_a_file_url_imports_where_the_file_is(local_envs, tmp_path):
    """`name @ file:///…/x.whl` (what pip freeze writes for a package installed from a wheel file) was refused
    even on the computer that has the file, so an export of such an environment never imported back. It is now
    installed where the path exists and refused, saying so, where it does not; uv pip freeze is the referee."""
    config, root = local_envs
    wheels = local_wheelhouse(config, root, tmp_path)
    wheel = next(wheels.glob("tinygamma-0.1-*.whl"))
    lines = tmp_path / "from-file.txt"
    lines.write_text(f"tinygamma @ {wheel.as_uri()}\n")
    made = envdesk("env", "import", "local", str(lines), "--name", "fromfile", config_dir=config)
    assert made.returncode == 0, made.stderr
    python = root / "fromfile" / "bin" / "python"
    frozen = subprocess.run(["uv", "pip", "freeze", "--python", str(python)], capture_output=True, text=True,
                            check=True, timeout=120).stdout.split("\n")
    assert f"tinygamma @ {wheel.as_uri()}" in frozen
    for fmt, saved_as in (("requirements", "exported.txt"), ("envdesk", "exported.envdesk.yaml")):
        exported = tmp_path / saved_as
        exported.write_text(envdesk("env", "export", "local", "fromfile", "--format", fmt, config_dir=config).stdout)
        again = envdesk("env", "import", "local", str(exported), "--name", f"again-{fmt}", config_dir=config)
        assert again.returncode == 0, again.stderr
        assert f"tinygamma @ {wheel.as_uri()}" in subprocess.run(
            ["uv", "pip", "freeze", "--python", str(root / f"again-{fmt}" / "bin" / "python")], capture_output=True,
            text=True, check=True, timeout=120).stdout.split("\n")
    gone = tmp_path / "gone.whl"
    lines.write_text(f"tinygamma @ {gone.as_uri()}\n")
    plan = json.loads(envdesk("env", "import", "local", str(lines), "--dry-run", "--json", config_dir=config).stdout)
    assert [(r["line"], r["reason"].split(" (")[0]) for r in plan["refused"]] == [
        (f"tinygamma @ {gone.as_uri()}", f"{gone} does not exist on This computer")], plan


def test_an_import_is_named_after_its_file_or_folder_and_a_bad_name_in_the_file_says_to_give_one(local_envs,
                                                                                                  tmp_path):
    """A user trial's imports of requirements files were all called "imported", so the second collided with the
    first; and a file naming its environment 'my env' was refused without saying how to go on."""
    config, root = local_envs
    local_wheelhouse(config, root, tmp_path)
    for relative, expected in (("my project/requirements.txt", "my-project"), ("analysis.txt", "analysis"),
                               ("web/uvicorn-reqs.txt", "uvicorn-reqs"),  # not taken for uv's own file
                               ("ünïcode.txt", "unicode"), ("my reqs (1).txt", "my-reqs-1")):  # a user trial
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("tinygamma==0.1\n")
        plan = envdesk("env", "import", "local", str(path), "--dry-run", "--json", config_dir=config)
        assert plan.returncode == 0 and json.loads(plan.stdout)["name"] == expected, plan.stdout + plan.stderr
    named = tmp_path / "environment.yml"
    named.write_text("name: my env\ndependencies:\n  - pip\n  - pip:\n    - tinygamma==0.1\n")
    refused = envdesk("env", "import", "local", str(named), "--dry-run", config_dir=config)
    assert refused.returncode == 1 and "'my env'" in refused.stderr and "--name" in refused.stderr, refused.stderr
    renamed = envdesk("env", "import", "local", str(named), "--dry-run", "--name", "myenv", config_dir=config)
    assert renamed.returncode == 0, renamed.stderr


def test_a_failed_install_says_uvs_reason_not_the_caret_under_the_line(local_envs, tmp_path):
    """A user trial's failed update said only '^^^^^^^^^^^^^^^^^^', the last line uv printed (under the
    requirement it echoes); uv's own reason is the last line it marks `cause:`, which the message now gives."""
    config, root = local_envs
    local_wheelhouse(config, root, tmp_path)
    made = envdesk("env", "create", "local", "target", "--kind", "uv", config_dir=config)
    assert made.returncode == 0, made.stderr
    bad = "tinygamma @ file:///etc/hostname"
    said = subprocess.run(["uv", "pip", "install", "--python", str(root / "target" / "bin" / "python"), bad],
                          capture_output=True, text=True, timeout=120)
    lines = [line.strip() for line in said.stderr.splitlines() if line.strip()]
    assert said.returncode != 0 and set(lines[-1]) <= {"^", " "}, said.stderr  # uv's last line: the carets
    reason = next(line for line in reversed(lines) if line.lower().startswith(("cause:", "caused by:", "error:")))
    failed = envdesk("env", "update", "local", "target", "--add", bad, config_dir=config)
    message = next(line for line in failed.stderr.splitlines() if line.startswith("envdesk: "))
    assert failed.returncode == 1 and reason in message and "^^^" not in message, failed.stderr


def test_an_update_of_an_environment_whose_python_is_gone_is_refused_in_plain_words(local_envs, tmp_path):
    """A user trial's update of an environment whose bin/python was deleted said 'Could not start …/bin/python -I
    -S -c <EnvDesk program> …': it is now refused before anything runs, saying why and what to do."""
    config, root = local_envs
    local_wheelhouse(config, root, tmp_path)
    made = envdesk("env", "create", "local", "nopython", "--kind", "uv", config_dir=config)
    assert made.returncode == 0, made.stderr
    for program in (root / "nopython" / "bin").glob("python*"):
        program.unlink()
    before = sorted(p.relative_to(root) for p in (root / "nopython").rglob("*"))
    refused = envdesk("env", "update", "local", "nopython", "--add", "tinygamma", config_dir=config)
    assert refused.returncode == 1, refused.stderr
    message = next(line for line in refused.stderr.splitlines() if line.startswith("envdesk: "))
    assert "nopython cannot be updated, as its Python is gone" in message and "Nothing was changed" in message
    assert "<EnvDesk program>" not in refused.stderr and "Rebuild it" in refused.stderr
    assert sorted(p.relative_to(root) for p in (root / "nopython").rglob("*")) == before


def test_a_plan_never_shows_the_credentials_of_the_files_lines(local_envs, tmp_path):
    """A user trial's plan printed a refused line whole: '--extra-index-url https://user:s3cretTOKEN@…'. The
    plan, as text and JSON, and the import that stops for want of --yes, show the lines without them."""
    config, root = local_envs
    local_wheelhouse(config, root, tmp_path)
    lines = tmp_path / "with-tokens.txt"
    lines.write_text("tinygamma==0.1\n--extra-index-url https://user:s3cretTOKEN@index.example/simple\n"
                     "tool @ https://__token__:glpat-xyz@files.example/tool-1.0-py3-none-any.whl\n")
    for args in (["--dry-run"], ["--dry-run", "--json"], []):
        said = envdesk("env", "import", "local", str(lines), "--name", "tokens", *args, config_dir=config)
        shown = said.stdout + said.stderr
        assert "index.example" in shown and "files.example" in shown, shown
        assert "s3cretTOKEN" not in shown and "glpat-xyz" not in shown, shown
    assert not (root / "tokens").exists()


def test_a_new_folder_given_with_root_is_remembered_and_the_user_is_told(local_envs, tmp_path):
    """A user trial's `env create --root DIR` added DIR to clusters.yaml for good without a word."""
    import yaml
    config, root = local_envs
    other = tmp_path / "elsewhere"
    made = envdesk("env", "create", "local", "there", "--kind", "venv", "--root", str(other), config_dir=config)
    assert made.returncode == 0, made.stderr
    assert f"note: {other} is now one of the folders EnvDesk lists on This computer" in made.stderr
    assert str(other) in yaml.safe_load((config / "clusters.yaml").read_text())["local"]["env_roots"]
    again = envdesk("env", "create", "local", "there2", "--kind", "venv", "--root", str(other), config_dir=config)
    assert again.returncode == 0 and "now one of the folders" not in again.stderr, again.stderr


def test_a_line_with_a_variable_waits_for_yes_and_the_dry_run_says_so(local_envs, tmp_path):
    """What a ${VARIABLE} holds is sent with the download (review R3): the import stops for a yes, and its dry
    run says that it would, also where the variable sits in a credential's place that the plan does not show."""
    config, root = local_envs
    for line in ("tool @ git+file://${HOME}/src/tool", "tool @ git+https://${GIT_TOKEN}@git.example.org/lab/tool@v1"):
        (tmp_path / "vars.txt").write_text(line + "\n")
        shown = envdesk("env", "import", "local", str(tmp_path / "vars.txt"), "--dry-run", config_dir=config)
        assert shown.returncode == 0 and "Without --yes the import stops here" in shown.stdout, shown.stdout
        planned = envdesk("env", "import", "local", str(tmp_path / "vars.txt"), "--dry-run", "--json",
                          config_dir=config)
        assert json.loads(planned.stdout)["needs_yes"] is True  # what a script reads (a user trial found nothing)
        stopped = envdesk("env", "import", "local", str(tmp_path / "vars.txt"), "--name", "vars", config_dir=config)
        assert stopped.returncode == 1 and "which the installer fills in" in stopped.stderr, stopped.stderr
        assert not (root / "vars").exists()


def test_a_lock_whose_taker_stopped_before_saying_who_it_was_is_taken_over(local_envs, tmp_path):
    """A user trial's Ctrl-C fell between making the lock folder and writing its owner: every later change was
    refused for good ('unknown, started at an unknown time on an unknown machine'). Such a lock now says so
    while it is new, and is taken over once it is two minutes old, as a silent holder's is."""
    config, root = local_envs
    local_wheelhouse(config, root, tmp_path)
    lock = root / "plain.envdesk-lock"
    lock.mkdir()  # what the interrupted change left: the folder, no owner record
    fresh = envdesk("env", "update", "local", "plain", "--add", "tinygamma", config_dir=config)
    assert fresh.returncode == 1 and f"its lock {lock} does not say which yet" in fresh.stderr, fresh.stderr
    old = lock.stat().st_mtime - 600
    os.utime(lock, (old, old))
    taken = envdesk("env", "update", "local", "plain", "--add", "tinygamma", config_dir=config)
    assert taken.returncode == 0, taken.stderr
    assert not lock.exists()
    frozen = subprocess.run(["uv", "pip", "freeze", "--python", str(root / "plain" / "bin" / "python")],
                            capture_output=True, text=True, check=True, timeout=120).stdout.split()
    assert "tinygamma==0.1" in frozen


def test_key_status_lists_the_keys_the_clusters_log_in_with(tmp_path):
    """A user trial's clusters all logged in with keys outside ~/.ssh, and `key status` said 'No SSH key yet'."""
    home = tmp_path / "home"
    home.mkdir()
    key = tmp_path / "keys" / "lab_ed25519"
    key.parent.mkdir()
    key.write_text("not read here\n")
    env = {**os.environ, "HOME": str(home), "USERPROFILE": str(home)}
    env.pop("SSH_AUTH_SOCK", None)
    added = subprocess.run([*ENVDESK, "--config-dir", str(tmp_path / "config"), "cluster", "add", "lab", "--host",
                            "login.lab.example", "--identity-file", str(key)], capture_output=True, text=True,
                           timeout=120, env=env)
    assert added.returncode == 0, added.stderr
    status = subprocess.run([*ENVDESK, "--config-dir", str(tmp_path / "config"), "key", "status"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert f"{key} (for lab)" in status.stdout and "No SSH key yet" not in status.stdout, status.stdout
    listed = subprocess.run([*ENVDESK, "--config-dir", str(tmp_path / "config"), "key", "status", "--json"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert json.loads(listed.stdout)["cluster_keys"] == {"lab": str(key)}
    # User trial T7: a cluster whose key comes from ~/.ssh/config was left out; OpenSSH's own reading of that
    # file (ssh -G, the referee) names the key it would try first
    (home / ".ssh").mkdir()
    (home / ".ssh" / "config").write_text(f"Host viaconfig\n  HostName login.other.example\n"
                                          f"  IdentityFile {tmp_path / 'keys' / 'other_ed25519'}\n")
    openssh = subprocess.run(["ssh", "-G", "-F", str(home / ".ssh" / "config"), "viaconfig"], capture_output=True,
                             text=True, timeout=30, check=True).stdout
    first = next(line.split(" ", 1)[1] for line in openssh.splitlines() if line.startswith("identityfile "))
    added = subprocess.run([*ENVDESK, "--config-dir", str(tmp_path / "config"), "cluster", "add", "other", "--host",
                            "viaconfig"], capture_output=True, text=True, timeout=120, env=env)
    assert added.returncode == 0, added.stderr
    listed = subprocess.run([*ENVDESK, "--config-dir", str(tmp_path / "config"), "key", "status", "--json"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert json.loads(listed.stdout)["cluster_keys"] == {"lab": str(key), "other": first}


def test_key_create_with_a_passphrase_and_no_terminal_says_so(tmp_path):
    """User trial T7: `key create --passphrase </dev/null` printed getpass's warning, then 'unexpected error
    (EOFError)'. Nothing can be typed unseen there: it says so, in the words other questions use, and makes nothing."""
    home = tmp_path / "home"
    home.mkdir()
    made = subprocess.run([*ENVDESK, "--config-dir", str(tmp_path / "config"), "key", "create", "--passphrase",
                           "--file", str(tmp_path / "k")], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, env={**os.environ, "HOME": str(home)}, start_new_session=True)
    assert made.returncode == 1 and "no terminal" in made.stderr and "unexpected" not in made.stderr, made.stderr
    assert not list(tmp_path.glob("k*"))


def test_the_doctor_of_an_environment_that_is_not_there_gives_a_command_that_works(tmp_path):
    """User trial T7: the doctor said to run 'envdesk env list', which needs a cluster and fails as written."""
    import re
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    said = subprocess.run([*ENVDESK, "--config-dir", str(tmp_path / "config"), "env", "doctor", "local", "nope"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert said.returncode == 1, said.stderr
    suggested = re.search(r"Run '(envdesk [^']+)'", said.stderr)
    assert suggested, said.stderr
    ran = subprocess.run([*ENVDESK, "--config-dir", str(tmp_path / "config"), *suggested.group(1).split()[1:]],
                         capture_output=True, text=True, timeout=120, env=env)
    assert ran.returncode == 0, ran.stderr
    # with --json, a script gets the error as JSON on stdout too (it found stdout empty: user trial T7)
    said = subprocess.run([*ENVDESK, "--config-dir", str(tmp_path / "config"), "env", "doctor", "local", "nope",
                           "--json"], capture_output=True, text=True, timeout=120, env=env)
    answer = json.loads(said.stdout)
    assert said.returncode == 1 and answer["error"] == "There is no environment 'nope' on This computer."
    assert suggested.group(1) in answer["hint"], answer


@pytest.mark.skipif(sys.platform == "win32", reason="a pseudo-terminal is POSIX")
def test_env_delete_asks_at_a_terminal_and_a_script_must_say_yes(local_envs, tmp_path):
    """User trial T7: `env delete` refused outright without --yes, where a newcomer at a terminal expects to be
    asked, as conda remove and rm -i ask. At a terminal 'n' keeps the folder and 'y' deletes it; without one
    nothing is asked, nothing deleted, and --yes is named. The referee is the folder on disk."""
    from envdesk_fixtures import cli_on_a_terminal

    config, root = local_envs
    home = tmp_path / "home"
    home.mkdir()
    code, said, _ = cli_on_a_terminal("env", "delete", "local", "plain", config=config, home=home,
                                      answer=lambda prompt: "", yes_no="n")
    # T9: the question names the folder and how many entries go with it, as `find` counts them
    entries = len(subprocess.run(["find", str(root / "plain"), "-mindepth", "1"], capture_output=True, text=True,
                                 check=True).stdout.splitlines())
    assert code == 1 and re.search(rf"Delete plain on local, the folder {re.escape(str(root / 'plain'))} "
                                   rf"\(\d+\.\d [KM]iB in {entries} files and folders\)\? It cannot be undone\. "
                                   r"\[y/N\]", said), said
    assert "Nothing was deleted" in said and (root / "plain" / "pyvenv.cfg").exists()
    script = envdesk("env", "delete", "local", "plain", config_dir=config)
    assert script.returncode == 1 and "--yes" in script.stderr and (root / "plain" / "pyvenv.cfg").exists()
    code, said, _ = cli_on_a_terminal("env", "delete", "local", "plain", config=config, home=home,
                                      answer=lambda prompt: "", yes_no="y")
    assert code == 0 and f"Deleted {root / 'plain'}" in said, said
    assert not (root / "plain").exists()


@pytest.mark.parametrize("words,command", [(["env"], "envdesk env"), (["env", "create"], "envdesk env create"),
                                           (["cluster", "add", "x", "--user"], "envdesk cluster add"),
                                           (["kernel"], "envdesk kernel")])
def test_a_usage_error_points_to_the_help_of_the_command_given(words, command, tmp_path):
    """T10: `envdesk env` said 'the following arguments are required: verb' and every usage error ended 'Try
    envdesk --help'. A missing verb is asked for by name, and the help named is the command's own: it exists
    (exit 0), and lists what the message offers."""
    said = envdesk(*words, config_dir=tmp_path / "cfg")
    assert said.returncode == 2 and "verb" not in said.stderr, said.stderr
    helped = re.search(r"Try '(envdesk[^']*) --help'\.", said.stderr)
    assert helped and helped.group(1) == command, said.stderr
    shown = subprocess.run([*envdesk_command(), *helped.group(1).split()[1:], "--help"], capture_output=True,
                           text=True, timeout=60)
    assert shown.returncode == 0
    offered = re.search(r"needs what to do: one of (.*)\.", said.stderr)
    if offered:
        assert all(verb in shown.stdout for verb in offered.group(1).split(", "))


# A course's file asking for a Python no target has (3.4), with the pins it must be built with: conda's
# environment.yml, whose pins are its requirements, and EnvDesk's own, whose pins hold an older tinyalpha than
# its one requirement, tinybeta, would get today
OLD_PYTHON_FILES = {
    "environment.yml": ("name: course\ndependencies:\n  - python=3.4\n  - pip\n  - pip: [tinygamma==0.1]\n",
                        {"tinygamma==0.1"}),
    "course.envdesk.yaml": ("envdesk: 1\nname: course\nkind: venv\npython: '3.4'\nrequirements: [tinybeta]\n"
                            "pins:\n  - {name: tinybeta, version: '1.0'}\n  - {name: tinyalpha, version: '1.0'}\n",
                            {"tinybeta==1.0", "tinyalpha==1.0"}),
}
OLD_PYTHON_WHEELS = [spec for spec in WHEELS if spec.name in ("tinyalpha", "tinybeta")]


@pytest.mark.parametrize("file_name", OLD_PYTHON_FILES)
def test_an_import_whose_python_is_not_here_can_be_given_one_that_is(local_envs, tmp_path, file_name):
    """T10: a file asking for a Python the target lacks ended 'Pick one of the available versions', and env import
    had no way to pick one. It names --python, and with it the environment is made with that Python and the
    file's pins. Referees: the environment's own interpreter, and uv pip freeze of it."""
    config, root = local_envs
    local_wheelhouse(config, root, tmp_path, *OLD_PYTHON_WHEELS)
    here = "%d.%d" % sys.version_info[:2]
    old = tmp_path / file_name
    text, pins = OLD_PYTHON_FILES[file_name]
    old.write_text(text)
    refused = envdesk("env", "import", "local", str(old), config_dir=config)
    assert refused.returncode == 1 and "no Python 3.4" in refused.stderr and "--python X.Y" in refused.stderr
    assert not (root / "course").exists()
    # a dry run answers with the plan, blocked for it, as for any other reason (T11: an error object instead)
    planned = envdesk("env", "import", "local", str(old), "--dry-run", "--json", config_dir=config)
    assert planned.returncode == 1, planned.stderr
    plan = json.loads(planned.stdout)
    assert set(plan["install"]) == pins
    assert "no Python 3.4" in plan["blocked"] and f"available: {here}" in plan["blocked"], plan["blocked"]
    assert not (root / "course").exists()
    made = envdesk("env", "import", "local", str(old), "--python", here, "--yes", config_dir=config)
    assert made.returncode == 0, made.stderr
    python = subprocess.run([str(root / "course" / "bin" / "python"), "-c",
                             "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True)
    assert python.stdout.strip() == here
    assert freeze_here(root / "course") == pins


@pytest.mark.parametrize("left,deleted", [(["share/jupyter/kernels/python3/", "share/man/man1/"], True),
                                          (["share/jupyter/kernels/python3/kernel.json"], False)])
def test_folders_an_uninstall_leaves_empty_do_not_stop_a_delete(local_envs, left, deleted):
    """User trial T11: after a kernel's ipykernel was installed and then reverted away, the environment could not
    be deleted ('holds files that are not part of the environment: share/jupyter/, share/man/'): pip and uv
    leave the folders they made, empty. Empty folders are nothing of anyone's; a file there still stops the
    delete, and nothing is deleted. The referee is the folder on disk."""
    config, root = local_envs
    for entry in left:
        target = root / "plain" / entry
        (target if entry.endswith("/") else target.parent).mkdir(parents=True, exist_ok=True)
        if not entry.endswith("/"):
            target.write_text("{}")
    said = envdesk("env", "delete", "local", "plain", "--yes", config_dir=config)
    assert (said.returncode == 0) is deleted and (root / "plain").exists() is not deleted, said.stderr
    if not deleted:
        assert "share/jupyter/" in said.stderr


def _on_a_terminal(argv: list[str]) -> bytes:
    """What a terminal receives from `argv` run with its output and errors on one (a pseudo-terminal)."""
    import pty
    leader, follower = pty.openpty()
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower)
    os.close(follower)
    received = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        received += chunk
    process.wait(timeout=120)
    os.close(leader)
    return received


@pytest.mark.skipif(os.name != "posix", reason="a pseudo-terminal")
def test_a_name_holding_terminal_controls_is_shown_not_obeyed(tmp_path):
    """R11: a folder in a root (a colleague's project space) named with terminal controls set the window's title
    and cleared the screen of whoever listed the environments. On a terminal they are shown written out; a pipe
    still gets the name as it is, which is data there. The referee: the bytes the terminal receives."""
    config, root = this_computer_with_one_venv(tmp_path)
    hostile = "evil\x1b]0;PWNED\x07\x1b[2Jname"
    (root / "plain").rename(root / hostile)
    shown = _on_a_terminal([*ENVDESK, "--config-dir", str(config), "env", "list", "local"])
    assert b"evil" in shown and b"\x1b" not in shown and b"\x07" not in shown, shown
    assert b"evil\\x1b]0;PWNED\\x07\\x1b[2Jname" in shown
    piped = envdesk("env", "list", "local", "--json", config_dir=config)
    assert [env["name"] for env in json.loads(piped.stdout)] == [hostile]


def test_cluster_list_leaves_a_token_in_pip_arguments_out(tmp_path):
    """R11: `cluster list --json`, which scripts print into CI logs, showed the index token a profile's pip
    arguments hold (clusters.yaml, the user's alone, keeps it). The referee: urllib's reading of the URL shown."""
    from urllib.parse import urlsplit
    config = tmp_path / "config"
    added = envdesk("cluster", "add", "narval", "--host", "narval.example.org", "--user", "me",
                    "--pip-arg=--extra-index-url=https://__token__:glpat-s3cr3t@gitlab.example.org/api/simple",
                    config_dir=config)
    assert added.returncode == 0, added.stderr
    listed = envdesk("cluster", "list", "--json", config_dir=config)
    assert "glpat-s3cr3t" not in listed.stdout
    (arg,) = json.loads(listed.stdout)[0]["pip_args"]
    url = urlsplit(arg.split("=", 1)[1])
    assert (url.hostname, url.username, url.password, url.path) == ("gitlab.example.org", None, None, "/api/simple")
    assert "glpat-s3cr3t" in (config / "clusters.yaml").read_text(), "the profile itself keeps what was typed"


def test_a_blocked_dry_run_says_why_on_stderr_and_keeps_its_plan_on_stdout(local_envs, tmp_path):
    """User trial: `env import --dry-run` of a name whose folder is there exited 1 with nothing on stderr, where
    every failure says why there. The referee for "there" is the file system: a real venv made by `python -m
    venv`. stdout keeps the plan (text or JSON) as it was."""
    config, root = local_envs
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "taken")], check=True, timeout=300)
    assert (root / "taken" / "pyvenv.cfg").is_file()
    lines = tmp_path / "requirements.txt"
    lines.write_text("tinygamma==0.1\n")
    for json_wanted in (False, True):
        planned = envdesk("env", "import", "local", str(lines), "--name", "taken", "--dry-run",
                          *(["--json"] if json_wanted else []), config_dir=config)
        said = [line for line in planned.stderr.splitlines() if not line.startswith("==> ")]
        assert planned.returncode == 1 and said == [
            f"envdesk: {root / 'taken'} already exists. Pick another name (--name) or delete it first."], said
        if json_wanted:
            assert json.loads(planned.stdout)["blocked"] == said[0].removeprefix("envdesk: ")
        else:
            assert f"Blocked: {said[0].removeprefix('envdesk: ')}" in planned.stdout.splitlines()


def test_every_json_error_has_a_hint_to_act_on(local_envs, tmp_path):
    """README: a failure with --json writes {"error", "hint"}; a user trial found "hint": "" (a file that is not
    there, for one). Each failure below is real (the file system has no such file, no environment of that name); each
    hint is said on stderr too, and one that names an envdesk command names one that runs."""
    config, _ = local_envs
    missing = tmp_path / "not-there.txt"
    assert not missing.exists()
    failures = [("env", "import", "local", str(missing), "--dry-run"),
                ("env", "show", "local", "nosuch"),
                ("env", "doctor", "local", "nosuch"),
                ("disk", "local", "--clean", "pip")]  # with --json, --clean asks no question: it needs --yes
    for words in failures:
        failed = envdesk(*words, "--json", config_dir=config)
        assert failed.returncode == 1, (words, failed.stdout, failed.stderr)
        answer = json.loads(failed.stdout.splitlines()[-1])
        assert set(answer) == {"error", "hint"} and answer["error"] and answer["hint"].strip(), (words, answer)
        assert answer["hint"] in failed.stderr, (words, failed.stderr)
        if str(missing) in words:  # the file is not there: the hint says what to check, not only where to read
            assert "path" in answer["hint"], answer
        named = re.search(r"envdesk ([a-z]+(?: [a-z]+)?) --help", answer["hint"])
        if named:
            assert envdesk(*named.group(1).split(), "--help", config_dir=config).returncode == 0, answer


@pytest.mark.skipif(os.name != "posix", reason="a pseudo-terminal")
@pytest.mark.parametrize("echo", [False, True])
def test_a_servers_login_prompt_holding_terminal_controls_is_shown_not_obeyed(echo):
    """R12: getpass and input write their prompt to the terminal themselves, past the guarded streams, so a
    keyboard-interactive prompt from a server ('Password\\x1b]0;PWNED\\x07:') was obeyed. The referee: the bytes
    a pseudo-terminal receives while the prompt waits for its answer."""
    import pty
    import select
    code = ("from envdesk.terminal import TerminalPrompter\n"
            "from envdesk.backend.prompts import SecretRequest\n"
            f"answer = TerminalPrompter(offer_remember=False).ask_secret(SecretRequest('c', 'code', "
            f"'Code\\x1b]0;PWNED\\x07:', echo={echo}))\n"
            "print('GOT', answer.value)\n")
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-c", code], stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    received = b""
    answered = False
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        received += chunk
        if not answered and b"Code" in received:
            os.write(leader, b"123456\n")
            answered = True
    process.wait(timeout=60)
    os.close(leader)
    assert b"GOT 123456" in received, received
    assert b"\x1b" not in received and b"\x07" not in received, received
    assert b"Code\\x1b]0;PWNED\\x07:" in received


def test_output_read_as_data_is_utf8_whatever_the_platforms_code_page(tmp_path):
    """R13: on Windows a pipe or a redirected file gets the ANSI code page (cp1252), so `env export` of an
    environment under 'Łódź' failed ('unexpected error (UnicodeEncodeError)') and one under 'josé' wrote a file
    the import then refused as not UTF-8. PYTHONIOENCODING=cp1252 gives this machine's Python the same stream.
    Referees: Python's own UTF-8 decoder on the bytes written, and pip reading the exported file."""
    config, root = this_computer_with_one_venv(tmp_path / "Łódź-josé")
    cp1252 = {"PYTHONIOENCODING": "cp1252"}
    command = [*ENVDESK, "--config-dir", str(config)]
    for args in (["env", "export", "local", "plain", "--format", "requirements"], ["env", "list", "local"],
                 ["env", "show", "local", "plain"]):
        done = subprocess.run([*command, *args], capture_output=True, env={**os.environ, **cp1252}, timeout=120)
        assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
        assert "Łódź-josé" in done.stdout.decode("utf-8"), args
    exported = subprocess.run([*command, "env", "export", "local", "plain", "--format", "requirements"],
                              capture_output=True, env={**os.environ, **cp1252}, timeout=120).stdout
    assert f"local:{root / 'plain'}" in exported.decode("utf-8")
    (tmp_path / "requirements.txt").write_bytes(exported)
    report = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", "-",
                             "--no-index", "--find-links", str(tmp_path), "--ignore-installed", "--no-deps",
                             "-r", str(tmp_path / "requirements.txt")], capture_output=True, text=True, timeout=120)
    assert "Invalid requirement" not in report.stderr and "UnicodeDecodeError" not in report.stderr, report.stderr


@pytest.mark.parametrize("ref", ["C:\\Users\\me\\venvs\\demo", "d:/work/envs/demo", "\\\\server\\share\\venvs\\demo",
                                 "/home/me/venvs/demo", "~/venvs/demo", "demo", "my env", "C:demo", "a:b"])
def test_an_environment_is_asked_for_by_folder_when_its_reference_is_an_absolute_path_on_either_system(ref):
    """R13: a Windows path ('C:\\Users\\me\\venvs\\demo', the path the window passes for every action on This
    computer there) was taken as an environment's name, so the agent looked for an environment called that and
    every action ended in 'not found'. Referees: Python's own rules for absolute paths on Windows (ntpath) and
    POSIX (posixpath, and ~ as expanduser reads it)."""
    import ntpath
    import posixpath

    from envdesk.backend.operations.common import is_path
    assert is_path(ref) == (ntpath.isabs(ref) or posixpath.isabs(ref) or posixpath.expanduser(ref) != ref)


def test_pylock_export_keeps_setuptools_at_the_version_the_environment_has(tmp_path):
    """T15: pip freeze leaves setuptools out, so the pins sent to uv lacked it, and a package needing it had the
    newest resolved into the lock (84.2.1 where the environment holds 65.5.0): the lock described another
    environment. Referees: the environment's own pip list, PyPA's pylock reader, and uv pip list of the
    environment built from the lock."""
    import tomllib

    from packaging.pylock import Pylock

    config, root = this_computer_with_one_venv(tmp_path)
    source = root / "tools"
    subprocess.run([sys.executable, "-m", "venv", str(source)], check=True, timeout=300)

    def pip_list(env: Path) -> dict[str, str]:
        listed = subprocess.run([str(env / "bin" / "python"), "-m", "pip", "list", "--format", "json"],
                                capture_output=True, text=True, check=True, timeout=120).stdout
        return {item["name"].lower(): item["version"] for item in json.loads(listed)}
    have = pip_list(source)["setuptools"]
    wheels = local_wheelhouse(config, root, tmp_path)
    for spec in (WheelSpec("setuptools", have), WheelSpec("setuptools", "999.0"),
                 WheelSpec("tinytools", "1.0", requires=("setuptools",))):
        build_wheel(wheels, spec)
    subprocess.run([str(source / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--find-links", str(wheels), "tinytools==1.0"], check=True, timeout=300)
    assert pip_list(source)["setuptools"] == have

    done = envdesk("env", "export", "local", "tools", "--format", "pylock", config_dir=config)
    assert done.returncode == 0, done.stderr
    lock = Pylock.from_dict(tomllib.loads(done.stdout))
    assert {str(p.name): str(p.version) for p in lock.packages} == {"tinytools": "1.0", "setuptools": have}
    (tmp_path / "pylock.toml").write_text(done.stdout)
    built = envdesk("env", "import", "local", str(tmp_path / "pylock.toml"), "--name", "fromlock", "--yes",
                    config_dir=config)
    assert built.returncode == 0, built.stderr
    # a pylock.toml names no kind: the import made what a new environment gets here, uv's, which has no pip
    made = subprocess.run(["uv", "pip", "list", "--format", "json", "--python", str(root / "fromlock" / "bin" /
                                                                                  "python")],
                          capture_output=True, text=True, check=True, timeout=120).stdout
    assert {item["name"].lower(): item["version"] for item in json.loads(made)}["setuptools"] == have


@pytest.mark.parametrize("words", [["env", "create", "local", "x"], ["env", "export", "local", "x"],
                                   ["cluster", "test", "alpha"]])
def test_the_hint_to_run_again_with_v_is_a_command_line_that_parses(words):
    """T17: 'Run it again with -v (--verbose)' was a usage error where a user put -v, after the command's words.
    Referee: argparse, given the words the hint names, -v first, as the user would type them."""
    import argparse as ap

    from envdesk.backend.errors import CommandFailed
    from envdesk.cli import _hint_where_none, build_parser
    args = build_parser(words).parse_args(words)
    failure = CommandFailed("Something failed on the cluster.")
    _hint_where_none(failure, args)
    named = re.search(r"envdesk (-v [a-z ]+) …", failure.hint)
    assert named, failure.hint
    typed = [*named.group(1).split(), *words[2:]]
    parsed = build_parser(typed).parse_args(typed)
    assert isinstance(parsed, ap.Namespace) and parsed.verbose and parsed.handler == args.handler


def test_pip_user_in_the_environment_does_not_stop_installs_into_the_new_environment(tmp_path):
    """T17: `export PIP_USER=1` (a login file's) made every create with pip fail ("Can not perform a '--user'
    install") and the hint blamed a missing program; PIP_REQUIRE_VIRTUALENV would refuse a conda environment.
    EnvDesk's installs go into the environment named, whatever is set (its commands on a cluster get the same
    settings). uv is kept off PATH so that pip installs. Referees: pip by hand with the same settings, which
    refuses, and the environment's own pip freeze."""
    config, root = this_computer_with_one_venv(tmp_path)
    wheels = local_wheelhouse(config, root, tmp_path)
    settings = {"PIP_USER": "1", "PIP_REQUIRE_VIRTUALENV": "1", "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "byhand")], check=True, timeout=300)
    by_hand = subprocess.run([str(tmp_path / "byhand" / "bin" / "pip"), "install", "--no-index", "--find-links",
                              str(wheels), "tinygamma==0.1"], capture_output=True, text=True,
                             env={**os.environ, **settings}, timeout=300)
    assert by_hand.returncode != 0 and "--user" in by_hand.stderr, by_hand.stderr
    made = envdesk("env", "create", "local", "pipuser", "--kind", "venv", "--package", "tinygamma==0.1",
                   config_dir=config, env=settings)
    assert made.returncode == 0, made.stderr
    assert "uv" not in made.stdout + made.stderr.replace("uv (fastest)", "")  # pip made it: the case in question
    frozen = subprocess.run([str(root / "pipuser" / "bin" / "python"), "-m", "pip", "freeze"], capture_output=True,
                            text=True, check=True, env={"PATH": "/usr/bin:/bin"}, timeout=120).stdout.split()
    assert frozen == ["tinygamma==0.1"]


def test_pip_user_set_by_a_login_file_is_off_for_commands_run_with_modules_here_too(tmp_path, monkeypatch):
    """R15: on This computer a command with modules runs in `bash -l`, whose login files ran after EnvDesk set
    PIP_USER=0 and set it back to 1. Referees: bash by hand, where the login file's value holds, and the value the
    command itself sees."""
    from envdesk.backend.local_runner import LocalRunner
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bash_profile").write_text("export PIP_USER=1\n")
    modules = tmp_path / "modulefiles"
    (modules / "tools").mkdir(parents=True)
    (modules / "tools" / "1.0.lua").write_text('setenv("TOOLS_LOADED", "yes")\n')
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MODULEPATH", str(modules))
    by_hand = subprocess.run(["bash", "-lc", 'printf %s "$PIP_USER"'], capture_output=True, text=True, timeout=60)
    assert by_hand.stdout == "1", by_hand
    seen = LocalRunner().run_shell('printf "%s %s" "$PIP_USER" "$TOOLS_LOADED"', modules=["tools/1.0"])
    assert seen.ok and seen.stdout == "0 yes", seen


def test_a_busy_environment_under_json_says_what_to_do_in_the_hint(tmp_path):
    """T27 MED-4: a create refused because another EnvDesk is creating that environment printed
    {"error": "Another EnvDesk … is creating this environment. …", "hint": ""} under --json, where README says the
    hint is never empty. The lock is held by an operation of this process (what another window's would be)."""
    from envdesk.backend.operations.common import Reservation
    from envdesk.backend.paths import AppPaths
    from envdesk_fixtures import session_for
    config, root = this_computer_with_one_venv(tmp_path)
    (tmp_path / "wanted.txt").write_text("tinyalpha\n", encoding="utf-8")
    session = session_for(AppPaths(config))
    target = session.target("local")
    reservation = Reservation.take(target, str(root / "busy"), list(target.roots), create=True, operation="create")
    try:
        refused = envdesk("env", "import", "local", str(tmp_path / "wanted.txt"), "--name", "busy", "--yes", "--json",
                          config_dir=config)
    finally:
        reservation.release(remove_unfinished=True)
        session.close()
    assert refused.returncode == 1, refused.stderr
    failure = json.loads(refused.stdout)
    assert "is creating this environment" in failure["error"], failure
    assert "run the same command again" in failure["hint"], failure


@pytest.mark.parametrize("raised, status", [(RuntimeError("a bug"), 1), (KeyboardInterrupt(), 130)])
def test_every_failure_under_json_prints_error_and_hint(tmp_path, monkeypatch, capsys, raised, status):
    """T27 LOW: an unexpected error (a bug) or Ctrl-C under --json printed nothing on stdout, where a script reads
    {"error", "hint"} for every failure (README). Referee: json.loads of what the command printed."""
    import envdesk.commands
    from envdesk.cli import main

    def fails(*_: object) -> int:
        raise raised

    monkeypatch.setattr(envdesk.commands, "cluster_list", fails)
    monkeypatch.delenv("ENVDESK_DEBUG", raising=False)
    assert main(["--config-dir", str(tmp_path / "config"), "cluster", "list", "--json"]) == status
    failure = json.loads(capsys.readouterr().out)
    assert set(failure) == {"error", "hint"} and failure["error"].strip() and failure["hint"].strip(), failure
