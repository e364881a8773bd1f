"""Constraints files (`-c constraints.txt` in a requirements file), as projects pin their upper bounds.

They were refused ("EnvDesk does not apply them"), so an import installed versions the project had ruled out.
Now an import installs within them and the environment keeps them: every later install into it follows them,
and an export or a copy carries them. The referees are pip and uv: pip's own dry run of the same file says what
it installs, pip's or uv's freeze says what the environment holds, and an installer's own refusal stands for a
change the constraints rule out.
"""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from envdesk.backend.operations.export import export_environment
from envdesk.backend.operations.importing import import_environment, read_spec_file
from envdesk.backend.operations.update import Change, update_environment
from envdesk.backend.errors import CommandFailed
from envdesk.backend import spec as specs
from envdesk_fixtures import canon, envdesk_command, unique
from testbed import wheels

# tinybeta needs tinyalpha>=1.0, and the wheel store has tinyalpha 1.0, 1.1 and 2.0: the constraint holds the
# dependency (not a line of the file) below 2.0, where pip and uv would otherwise take 2.0
REQUIREMENTS = "# what the analysis needs\ntinybeta\n-c constraints.txt\n"
CONSTRAINTS = "# upper bounds agreed with the platform team; install nothing themselves\ntinyalpha<2\n"


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    wheels.build_all(folder)
    return folder


def project(folder: Path) -> Path:
    """A project's requirements.txt naming its constraints.txt; the requirements file's path."""
    folder.mkdir(parents=True)
    (folder / "pyproject.toml").write_text("[project]\nname = \"analysis\"\nversion = \"1.0\"\n")
    (folder / "constraints.txt").write_text(CONSTRAINTS)
    (folder / "requirements.txt").write_text(REQUIREMENTS)
    return folder / "requirements.txt"


def pips_reading(wheelhouse: Path, *args: str) -> set[str]:
    """name==version of what pip itself would install (offline, into nothing: --ignore-installed)."""
    report = subprocess.run([sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--ignore-installed",
                             "--quiet", "--report", "-", "--no-index", "--find-links", str(wheelhouse), *args],
                            check=True, capture_output=True, text=True, timeout=300).stdout
    return {f"{canon(item['metadata']['name'])}=={item['metadata']['version']}"
            for item in json.loads(report)["install"]}


def held(freeze: str) -> set[str]:
    """The tiny* packages a freeze lists (pip's and setuptools' versions are the Python's own)."""
    return {canon(line.split("==")[0]) + "==" + line.split("==")[1] for line in freeze.split()
            if line.startswith("tiny")}


def envdesk(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*envdesk_command(), "--config-dir", str(config), *args], capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)


def test_an_import_on_this_computer_installs_within_the_constraints_and_keeps_them(tmp_path, wheelhouse):
    requirements = project(tmp_path / "analysis")
    config, root = tmp_path / "config", tmp_path / "envs"
    config.mkdir()
    (config / "clusters.yaml").write_text(f"clusters: []\nlocal:\n  env_roots: ['{root}']\n"
                                          f"  pip_args: [--no-index, --find-links, '{wheelhouse}']\n")
    expected = pips_reading(wheelhouse, "-r", str(requirements))
    assert expected == {"tinyalpha==1.1", "tinybeta==1.0"}  # the constraint decides: 2.0 is there
    made = envdesk(config, "env", "import", "local", str(requirements), "--name", "analysis")
    assert made.returncode == 0, made.stderr
    python = str(root / "analysis" / "bin" / "python")

    def freeze() -> set[str]:
        return held(subprocess.run(["uv", "pip", "freeze", "--python", python], capture_output=True, text=True,
                                   check=True).stdout)

    assert freeze() == expected
    kept = (root / "analysis" / ".envdesk" / "constraints.txt").read_text().split()  # what the installers are given
    shown = json.loads(envdesk(config, "env", "show", "local", "analysis", "--json").stdout)
    assert shown["constraints"] == kept == ["tinyalpha<2"]
    assert "Within:   tinyalpha<2" in envdesk(config, "env", "show", "local", "analysis").stdout
    # later installs follow them: upgrading everything is what pip would do with the same constraints
    upgraded = envdesk(config, "env", "update", "local", "analysis", "--upgrade-all")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "Its constraints (tinyalpha<2) may hold newer versions back" in upgraded.stdout  # T11: it said only
    # 'unchanged', with tinyalpha 2.0 in the store
    assert freeze() == pips_reading(wheelhouse, "--upgrade", "-c", str(requirements.parent / "constraints.txt"),
                                    "tinyalpha", "tinybeta") == expected
    # a change they rule out is refused by the installer, names them, and changes nothing
    refused = envdesk(config, "env", "update", "local", "analysis", "--add", "tinyalpha==2.0")
    assert refused.returncode != 0 and "tinyalpha<2" in refused.stderr and "constraints" in refused.stderr
    assert freeze() == expected
    # and an export carries them (EnvDesk's own format; conda's and pip's have no place for them)
    exported = envdesk(config, "env", "export", "local", "analysis", "--format", "envdesk")
    assert specs.from_envdesk_yaml(exported.stdout).constraints == ["tinyalpha<2"], exported.stdout


def test_on_a_pip_cluster_the_import_and_its_copy_keep_the_constraints(testbed, session, tmp_path, wheelhouse):
    """beta has no uv (pip installs); the copy goes to alpha, where uv does."""
    requirements = project(tmp_path / "analysis")
    imported = import_environment(session, "beta", read_spec_file(requirements), name=unique("cons"))
    beta, alpha = testbed.clusters["beta"], testbed.clusters["alpha"]
    path = shlex.quote(imported.environment.path)
    frozen = beta.run_as_user(f"{path}/bin/python -m pip freeze").stdout
    assert held(frozen) == pips_reading(wheelhouse, "-r", str(requirements)) == {"tinyalpha==1.1", "tinybeta==1.0"}
    assert any("constraint" in note for note in imported.notes), imported.notes
    after = update_environment(session, "beta", imported.environment.path, Change(upgrade_all=True))
    assert held(beta.run_as_user(f"{path}/bin/python -m pip freeze").stdout) == held(frozen)
    assert after.environment.constraints == ("tinyalpha<2",)

    text = export_environment(session, "beta", imported.environment.path, "envdesk")
    copy = import_environment(session, "alpha", specs.from_envdesk_yaml(text), name=unique("cons-copy"),
                              own_sources=True)
    copied = shlex.quote(copy.environment.path)
    modules = shlex.join([*alpha.python_modules, alpha.uv_module or "uv"])
    with pytest.raises(CommandFailed) as info:  # uv's own refusal on alpha: the copy keeps them too
        update_environment(session, "alpha", copy.environment.path, Change(add=["tinyalpha==2.0"]))
    assert "tinyalpha<2" in str(info.value)
    listed = alpha.run_as_user(f"module load {modules} >/dev/null 2>&1; uv pip freeze --python {copied}/bin/python")
    assert held(listed.stdout) == {"tinyalpha==1.1", "tinybeta==1.0"}


def test_constraint_lines_pip_refuses_are_refused_and_said_why(tmp_path, wheelhouse):
    """pip takes only a name, versions and a marker in a constraints file: an extra is its error, and EnvDesk
    refuses that line (the import asks before leaving it out) and keeps the others."""
    folder = tmp_path / "analysis"
    requirements = project(folder)
    (folder / "constraints.txt").write_text("tinyalpha<2\ntinygamma[fast]<1\n")
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--no-index",
                          "--find-links", str(wheelhouse), "-r", str(requirements)], capture_output=True, text=True)
    assert pip.returncode != 0 and "Constraints cannot have extras" in pip.stderr
    spec = read_spec_file(requirements)
    assert spec.constraints == ["tinyalpha<2"]
    assert [refused.line for refused in spec.refused] == ["tinygamma[fast]<1"]
    assert "a constraint is a name, versions and a marker" in spec.refused[0].reason


def test_an_import_with_constraints_is_still_one_command(testbed, session, tmp_path):
    """Review R8: writing the constraints into the environment took standard input, which kept the build from
    being one command (6 on a cluster, each a login shell). The lines are plain arguments; sshd's log is the
    referee: as many commands as the same import without constraints (1, on alpha once probed)."""
    from test_create_one_command import commands_of

    alpha = testbed.clusters["alpha"]
    requirements = project(tmp_path / "analysis")
    requirements.write_text("# envdesk: kind=uv\n" + REQUIREMENTS)  # as exported from a uv environment
    plain = tmp_path / "plain.txt"
    plain.write_text("# envdesk: kind=uv\ntinybeta\n")
    import_environment(session, "alpha", read_spec_file(plain), name=unique("warm"))  # probed, agent there
    _, without = commands_of(alpha, lambda: import_environment(session, "alpha", read_spec_file(plain),
                                                               name=unique("cons")))
    made, commands = commands_of(alpha, lambda: import_environment(session, "alpha", read_spec_file(requirements),
                                                                   name=unique("cons")))
    assert len(commands) == len(without) == 1, (commands, without)
    kept = alpha.run_as_user(f"cat {shlex.quote(made.environment.path)}/.envdesk/constraints.txt").stdout  # type: ignore[union-attr]
    assert kept.split() == ["tinyalpha<2"]


def test_hashed_pins_and_a_constraints_range_install_with_uv_as_with_pip(tmp_path, wheelhouse):
    """Review R8: uv refuses a constraint that is a range when it checks hashes (pip takes it), so a pip-compile
    file with hashes and a -c line failed. A hashed file pins every package, so there is nothing left to narrow:
    uv gets no -c then. The referees: pip's dry run of the same file, and uv's freeze of what was made."""
    import hashlib

    folder = tmp_path / "locked"
    folder.mkdir()
    digest = hashlib.sha256((wheelhouse / "tinygamma-0.1-py3-none-any.whl").read_bytes()).hexdigest()
    (folder / "constraints.txt").write_text("tinygamma<1\n")
    requirements = folder / "requirements.txt"
    requirements.write_text(f"-c constraints.txt\ntinygamma==0.1 \\\n    --hash=sha256:{digest}\n")
    assert pips_reading(wheelhouse, "-r", str(requirements)) == {"tinygamma==0.1"}
    config, root = tmp_path / "config", tmp_path / "envs"
    config.mkdir()
    (config / "clusters.yaml").write_text(f"clusters: []\nlocal:\n  env_roots: ['{root}']\n"
                                          f"  pip_args: [--no-index, --find-links, '{wheelhouse}']\n")
    made = envdesk(config, "env", "import", "local", str(requirements), "--name", "locked")
    assert made.returncode == 0, made.stderr
    frozen = subprocess.run(["uv", "pip", "freeze", "--python", str(root / "locked" / "bin" / "python")],
                            capture_output=True, text=True, check=True).stdout
    assert held(frozen) == {"tinygamma==0.1"}


@pytest.mark.parametrize("line,why", [
    ("six@https://evil.example.com/six-1.16.0-py2.py3-none-any.whl", "URL"),  # R8: no spaces round the @
    ("nothere @ https://user:SECRET@example.invalid/nothere-1.0.tar.gz", "URL"),
    ("tinygamma[fast]<1", "extras"),
    ("-r more.txt", "move that line"),
])
def test_a_constraint_that_is_not_a_name_and_versions_is_refused(tmp_path, line, why):
    """Review R8: `six@https://…` (no spaces) passed for a plain constraint, so its host was never asked about and a
    token in it was kept in the environment's record. packaging, the referee for how pip and uv read a line,
    reads it as a URL requirement; such lines are refused, and nothing of them is kept."""
    from packaging.requirements import InvalidRequirement, Requirement

    if not line.startswith("-"):
        try:
            parsed = Requirement(line)
            assert parsed.url or parsed.extras
        except InvalidRequirement:
            pass
    folder = tmp_path / "analysis"
    requirements = project(folder)
    (folder / "more.txt").write_text("tinygamma==0.1\n")
    (folder / "constraints.txt").write_text(f"tinyalpha<2\n{line}\n")
    spec = read_spec_file(requirements)
    text = specs.to_envdesk_yaml(spec) + repr(spec.constraints)
    if line.startswith("-r"):
        assert spec.constraints == [] and why in spec.refused[0].reason
    else:
        assert spec.constraints == ["tinyalpha<2"] and [r.line for r in spec.refused] == [line]
        assert why in spec.refused[0].reason
    assert "SECRET" not in text and "evil.example.com" not in text


def test_a_conda_files_pip_section_keeps_its_constraints(tmp_path):
    """Review R8: `-c c.txt` in an environment.yml's pip: section was said to narrow versions and then dropped."""
    (tmp_path / "c.txt").write_text("tinyalpha<2\n")
    (tmp_path / "environment.yml").write_text("name: sci\ndependencies:\n  - python=3.11\n  - pip\n"
                                              "  - pip:\n    - tinybeta\n    - -c c.txt\n")
    assert read_spec_file(tmp_path / "environment.yml").constraints == ["tinyalpha<2"]


def test_make_like_leaves_alone_what_the_targets_constraints_rule_out(tmp_path, wheelhouse):
    """T11: making an environment that keeps constraints like one holding a version they rule out failed as a
    whole (the installer refused it) with nothing said beforehand. The plan leaves that package alone, says why,
    and the rest is made alike. Referees: pip's own refusal of the pin within the constraints, uv's freeze."""
    requirements = project(tmp_path / "analysis")
    config, root = tmp_path / "config", tmp_path / "envs"
    config.mkdir()
    (config / "clusters.yaml").write_text(f"clusters: []\nlocal:\n  env_roots: ['{root}']\n"
                                          f"  pip_args: [--no-index, --find-links, '{wheelhouse}']\n")
    assert envdesk(config, "env", "import", "local", str(requirements), "--name", "kept").returncode == 0
    other = tmp_path / "other.txt"
    other.write_text("tinyalpha==2.0\ntinygamma==0.1\n")
    made = envdesk(config, "env", "import", "local", str(other), "--name", "model")
    assert made.returncode == 0, made.stderr
    refused = subprocess.run([sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--ignore-installed",
                              "--no-index", "--find-links", str(wheelhouse), "-c",
                              str(requirements.parent / "constraints.txt"), "tinyalpha==2.0"],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0  # pip: 2.0 cannot be installed within tinyalpha<2

    alike = envdesk(config, "env", "diff", "local:model", "local:kept", "--make-like", "--yes")
    assert alike.returncode == 0, alike.stderr
    assert "tinyalpha is ruled out there by its constraint tinyalpha<2" in alike.stdout + alike.stderr
    python = str(root / "kept" / "bin" / "python")
    frozen = held(subprocess.run(["uv", "pip", "freeze", "--python", python], capture_output=True, text=True,
                                 check=True).stdout)
    assert "tinygamma==0.1" in frozen and "tinyalpha==1.1" in frozen, frozen


def test_the_constraints_are_kept_without_a_shell(tmp_path, wheelhouse):
    """R8/T10 leftover: the step that keeps the constraints was `sh -c`, which Windows lacks (there this computer
    runs each step as its own program). It now runs the environment's own Python; here with no program on PATH at
    all. The referee: pip's dry run within the file it wrote."""
    from envdesk.backend.recipes import keep_constraints
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=300)
    python = str(env / "bin" / "python")
    lines = ["tinyalpha<2", 'tinygamma<1; python_version >= "3"']
    step = keep_constraints(str(env), python, lines, ())
    subprocess.run(step.argv, check=True, timeout=60, env={"PATH": str(tmp_path / "nothing-here")})
    kept = env / ".envdesk" / "constraints.txt"
    report = tmp_path / "report.json"
    subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report",
                    str(report), "--no-index", "--find-links", str(wheelhouse), "-c", str(kept), "tinyalpha"],
                   check=True, timeout=300)
    installs = json.loads(report.read_text())["install"]
    chosen = {item["metadata"]["name"]: item["metadata"]["version"] for item in installs}
    assert chosen == {"tinyalpha": "1.1"}, "within the constraint, where 2.0 is the newest"
