"""The files users import, read as the tools that wrote them read them (findings of the T1 user trial).

`--top-level` keeps every line of a mixed requirements file, pinned and editable ones too (referee: `uv pip
freeze` of the environment made); byte-order marks, UTF-16 and coding comments are read as pip reads them
(referee: `pip download -r`); pipenv's and Poetry's files, and files holding no package, are refused before
anything is created, with advice that fits them (the corpus files imitate real ones: tests/corpus/MANIFEST.yaml).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from envdesk.backend import spec as specs
from envdesk.backend.errors import InvalidInput
from envdesk_fixtures import canon, run_cli
from testbed.projects import TINYBACKEND, _init_py, _pyproject
from testbed.wheels import WheelSpec, build_wheel

CORPUS = Path(__file__).parent / "corpus"
WHEELS = [WheelSpec("tinyalpha", "1.0"), WheelSpec("tinyalpha", "1.1"),
          WheelSpec("tinybeta", "1.0", ("tinyalpha>=1.0",)), WheelSpec("tinygamma", "0.1")]


@pytest.fixture
def here(tmp_path) -> dict[str, Path]:
    """This computer as a target: environments made in `envs`, packages only from the wheels in `wheels`."""
    assert shutil.which("uv"), "uv is needed (tests/system-deps.sh)"
    folders = {name: tmp_path / name for name in ("wheels", "envs", "config", "home", "files")}
    for folder in folders.values():
        folder.mkdir()
    for wheel in WHEELS:
        build_wheel(folders["wheels"], wheel)
    (folders["config"] / "clusters.yaml").write_text(json.dumps({"local": {
        "env_roots": [str(folders["envs"])], "pip_args": ["--no-index", "--find-links", str(folders["wheels"])]}}))
    return folders


def envdesk(here: dict[str, Path], *args: str) -> subprocess.CompletedProcess:
    return run_cli(*args, config=here["config"], home=here["home"])


def editable_project(folder: Path, name: str, extras: dict[str, list[str]] | None = None) -> Path:
    """A source folder uv installs editable offline (the test bed's own stdlib-only build backend), with the
    `extras` given as its [project.optional-dependencies]."""
    project = folder / name
    (project / name).mkdir(parents=True)
    optional = "".join(f"{extra} = {json.dumps(wanted)}\n" for extra, wanted in (extras or {}).items())
    (project / "pyproject.toml").write_text(_pyproject(name, "0.5", [])
                                            + (f"\n[project.optional-dependencies]\n{optional}" if optional else ""))
    (project / "tinybackend.py").write_text(TINYBACKEND)
    (project / name / "__init__.py").write_text(_init_py(name, "0.5"))
    return project


def uv_freeze(env: Path) -> list[str]:
    """The referee: what uv says the environment holds, one line per package."""
    return subprocess.run(["uv", "pip", "freeze", "--python", str(env / "bin" / "python")], check=True,
                          capture_output=True, text=True, timeout=300).stdout.splitlines()


def test_top_level_installs_every_line_of_a_mixed_file_and_records_them(here, tmp_path):
    """A range, an exact pin this target lacks, an exact pin it has and an editable folder: with --top-level the
    missing pin is loosened (tinyalpha==0.9 -> tinyalpha>=0.9) and every other line installed as written; the
    environment records all four as requested, and its envdesk.yaml export imports back."""
    project = editable_project(tmp_path / "src", "tinyed")
    lines = ["tinygamma>=0.1", "tinyalpha==0.9", "tinybeta==1.0", f"-e {project}"]
    requirements = here["files"] / "requirements.txt"
    requirements.write_text("\n".join(lines) + "\n")
    made = envdesk(here, "env", "import", "local", str(requirements), "--name", "mixed", "--top-level")
    assert made.returncode == 0, made.stderr
    held = uv_freeze(here["envs"] / "mixed")
    versions = {canon(line.split("==")[0]): line.split("==")[1] for line in held if "==" in line}
    for line in lines[:3]:
        wanted = Requirement(line)
        allowed = SpecifierSet(str(wanted.specifier).replace("==", ">="))  # what --top-level promises
        assert canon(wanted.name) in versions and versions[canon(wanted.name)] in allowed, (line, held)
    assert f"-e file://{project}" in held, held
    requested = json.loads((here["envs"] / "mixed" / ".envdesk" / "meta.json").read_text())["requested"]
    assert {canon(r.split()[-1].rsplit("/", 1)[-1]) if r.startswith("-e") else canon(Requirement(r).name)
            for r in requested} == {"tinygamma", "tinyalpha", "tinybeta", "tinyed"}
    exported = here["files"] / "mixed.envdesk.yaml"
    wrote = envdesk(here, "env", "export", "local", "mixed", "--format", "envdesk", "-o", str(exported))
    assert wrote.returncode == 0, wrote.stderr
    again = envdesk(here, "env", "import", "local", str(exported), "--name", "again", "--dry-run", "--json")
    assert again.returncode == 0, again.stderr
    assert f"-e {project}" in json.loads(again.stdout)["install"]


def test_a_history_export_keeps_the_extras_of_an_editable_folder(here, tmp_path):
    """User trial: an environment imported from a requirements file holding `-e ..[dev]` was exported by
    `--format conda-history` as `-e /…/proj`, without `[dev]`, so what was made from the export lacked what the
    dev extra adds; a wheel file's `name[extra] @ file:///…` lost its extra alike. The referee is pip: its dry-run
    report of the exported pip section installs the project, the wheel and what their extras add."""
    import yaml

    project = editable_project(tmp_path / "src", "tinyed", {"dev": ["tinygamma"]})
    wheel = build_wheel(tmp_path, WheelSpec("tinydelta", "1.0", ('tinyalpha ; extra == "alpha"',), extras=("alpha",)))
    (project / "requirements").mkdir()
    requirements = project / "requirements" / "dev.txt"
    requirements.write_text(f"-e ..[dev]\ntinydelta[alpha] @ {wheel.as_uri()}\n")
    made = envdesk(here, "env", "import", "local", str(requirements), "--name", "withdev")
    assert made.returncode == 0, made.stderr
    exported = envdesk(here, "env", "export", "local", "withdev", "--format", "conda-history")
    assert exported.returncode == 0, exported.stderr
    pip_section = next(entry["pip"] for entry in yaml.safe_load(exported.stdout)["dependencies"]
                       if isinstance(entry, dict))
    section = here["files"] / "pip-section.txt"
    section.write_text("\n".join(pip_section) + "\n")
    report = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                             "--report", "-", "--no-index", "--find-links", str(here["wheels"]), "-r", str(section)],
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    assert {canon(item["metadata"]["name"]) for item in json.loads(report.stdout)["install"]} == \
        {"tinyed", "tinygamma", "tinydelta", "tinyalpha"}, pip_section


def pip_reads(requirements: Path, wheels: Path, scratch: Path) -> subprocess.CompletedProcess:
    """The referee: `pip download --no-deps -r FILE` from the wheels alone."""
    return subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-r", str(requirements),
                           "-d", str(scratch), "--no-index", "--find-links", str(wheels)],
                          capture_output=True, text=True, timeout=300)


def downloaded(scratch: Path) -> set[str]:
    return {canon(wheel.name.split("-")[0]) for wheel in scratch.glob("*.whl")}


TEXT = "# J\u00fcrgen's pins\r\ntinyalpha==1.0\r\ntinygamma>=0.1 ; python_version >= \"3\"\r\n"
READABLE = {  # how the Windows editors, PowerShell 5's `pip freeze >` and old files write a requirements file
    "utf-8 with a byte-order mark": b"\xef\xbb\xbf" + TEXT.encode("utf-8"),
    "utf-16 (little-endian) with a byte-order mark": TEXT.encode("utf-16"),
    "utf-16 big-endian with a byte-order mark": b"\xfe\xff" + TEXT.encode("utf-16-be"),
    "latin-1 with a coding comment": ("# -*- coding: latin-1 -*-\n" + TEXT).encode("latin-1"),
}


@pytest.mark.parametrize("encoding", READABLE)
def test_files_in_the_encodings_pip_reads_are_read_the_same(here, encoding):
    """As the imported file itself and as a file it includes with -r: what pip downloads is what the plan
    installs, and nothing is refused (a byte-order mark used to make the first line unreadable)."""
    pins = here["files"] / "pins.txt"
    pins.write_bytes(READABLE[encoding])
    main = here["files"] / "requirements.txt"
    main.write_text("-r pins.txt\ntinybeta==1.0\n")
    for imported, expected_extra in ((pins, set()), (main, {"tinybeta"})):
        scratch = here["files"] / f"pip-{imported.stem}"
        referee = pip_reads(imported, here["wheels"], scratch)
        assert referee.returncode == 0, referee.stderr
        assert downloaded(scratch) == {"tinyalpha", "tinygamma"} | expected_extra
        spec = specs.from_text(specs.decode_text(imported.read_bytes(), imported.name), imported.name,
                               imported.parent)
        assert not spec.refused and {canon(Requirement(r).name) for r in spec.requirements} == downloaded(scratch)
    plan = envdesk(here, "env", "import", "local", str(main), "--dry-run", "--json")
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["refused"] == []
    assert {canon(Requirement(line).name) for line in json.loads(plan.stdout)["install"]} == downloaded(
        here["files"] / "pip-requirements")


UNREADABLE = {  # pip cannot read these either: EnvDesk says why instead of refusing every line as garbage
    "latin-1 without a coding comment": (TEXT.encode("latin-1"), "is not UTF-8 text"),
    "utf-16 without a byte-order mark": (TEXT.encode("utf-16-le"), "NUL bytes"),
}


@pytest.mark.parametrize("encoding", UNREADABLE)
def test_text_in_other_encodings_is_refused_saying_why(here, encoding):
    data, reason = UNREADABLE[encoding]
    pins = here["files"] / "pins.txt"
    pins.write_bytes(data)
    assert pip_reads(pins, here["wheels"], here["files"] / "pip").returncode != 0
    with pytest.raises(InvalidInput) as info:
        specs.decode_text(data, "pins.txt")
    assert reason in info.value.message and "UTF-8" in info.value.hint
    main = here["files"] / "requirements.txt"
    main.write_text("-r pins.txt\ntinybeta==1.0\n")
    plan = envdesk(here, "env", "import", "local", str(main), "--dry-run", "--json")
    assert json.loads(plan.stdout)["refused"] == [{"line": "-r pins.txt", "reason": info.value.message}]


@pytest.mark.parametrize("corpus_file,saved_as", [("envdesk-valid.yaml", "envdesk.yaml"),
                                                  ("conda-env-export.yml", "environment.yml"),
                                                  ("pylock.toml", "pylock.toml")])
def test_a_byte_order_mark_changes_nothing_in_yaml_and_toml_files(here, corpus_file, saved_as):
    """Each with a UTF-8 byte-order mark gives the plan of the same file without one (test_import_corpus checks
    that plan against MANIFEST.yaml)."""
    plans = []
    for mark in (b"", b"\xef\xbb\xbf"):
        folder = here["files"] / ("bom" if mark else "plain")
        folder.mkdir()
        (folder / saved_as).write_bytes(mark + (CORPUS / corpus_file).read_bytes())
        plan = envdesk(here, "env", "import", "local", str(folder / saved_as), "--name", "x", "--dry-run", "--json")
        plans.append(json.loads(plan.stdout))
        assert plan.returncode == (1 if plans[-1]["blocked"] else 0), plan.stderr  # conda's: none here
    assert plans[0]["install"] or plans[0]["conda"]
    assert plans[1] == plans[0]


def without_poetry_header(text: str) -> str:
    """An older poetry.lock (Poetry 1.1 wrote no '@generated' line): known by its shape alone."""
    return re.sub(r"^# This file is automatically @generated by Poetry.*\n", "", text)


OTHER_TOOLS = [  # (file as saved, its text, what the refusal must advise)
    ("Pipfile", (CORPUS / "Pipfile").read_text(), "pipenv requirements > requirements.txt"),
    ("Pipfile.lock", (CORPUS / "Pipfile.lock").read_text(), "pipenv requirements > requirements.txt"),
    ("poetry.lock", (CORPUS / "poetry.lock").read_text(), "poetry export -f requirements.txt"),
    ("deps", (CORPUS / "Pipfile").read_text(), "pipenv requirements"),  # renamed: known by their shape
    ("lock.json", (CORPUS / "Pipfile.lock").read_text(), "pipenv requirements"),
    ("old.lock", without_poetry_header((CORPUS / "poetry.lock").read_text()), "poetry export"),
    ("empty", "", "holds no package"),
    ("notes", "# nothing here yet\n\n   # really\n", "holds no package"),
]


@pytest.mark.parametrize("saved_as,text,advice", OTHER_TOOLS, ids=[case[0] for case in OTHER_TOOLS])
def test_files_of_other_tools_and_files_without_packages_are_refused_before_anything_is_made(here, saved_as, text,
                                                                                            advice):
    """Even with --yes: read as requirements, every line of these was refused and an EMPTY environment made."""
    imported = here["files"] / saved_as
    imported.write_text(text)
    made = envdesk(here, "env", "import", "local", str(imported), "--name", "other", "--yes")
    assert made.returncode == 1, made.stdout + made.stderr
    assert advice in made.stderr and "Nothing was created" in made.stderr
    assert list(here["envs"].iterdir()) == []


def test_an_export_of_an_empty_environment_still_imports(here):
    """The header of EnvDesk's requirements export describes the environment even when it holds no package."""
    exported = here["files"] / "requirements.txt"
    exported.write_text(f"# Exported by EnvDesk from local:/x/empty\n# envdesk: kind=venv python="
                        f"{sys.version_info.major}.{sys.version_info.minor}\n")
    plan = envdesk(here, "env", "import", "local", str(exported), "--name", "empty", "--dry-run", "--json")
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["install"] == []


@pytest.mark.parametrize("name,text", [
    ("pylock.toml", "lock-version = \"1.0\"\na = " + "[" * 100_000 + "]" * 100_000 + "\n"),
    ("environment.yml", "name: deep\ndependencies: " + "[" * 100_000 + "]" * 100_000 + "\n"),
    ("envdesk.yaml", "envdesk: 1\nrequirements: " + "[" * 100_000 + "]" * 100_000 + "\n"),
], ids=["pylock", "conda", "envdesk"])
def test_a_file_nested_past_the_parser_is_refused_plainly(tmp_path, home, name, text):
    """R11: lists nested 100,000 deep made `env import` end in 'unexpected error (RecursionError)'. The referees:
    tomllib and PyYAML, which cannot read such a file themselves; nothing is made."""
    import tomllib
    import yaml
    body = text.split("\n", 1)[1]
    with pytest.raises(RecursionError):
        tomllib.loads(body) if name.endswith(".toml") else yaml.safe_load(body)
    path = tmp_path / name
    path.write_text(text)
    config = tmp_path / "config"
    said = run_cli("env", "import", "local", str(path), "--name", "deep", config=config, home=home)
    assert said.returncode == 1 and "nested too deeply" in said.stderr and "unexpected" not in said.stderr, said.stderr
    assert not (home / "venvs" / "deep").exists()


def test_a_file_that_never_ends_is_refused_without_reading_it_all(tmp_path, home):
    """R11: /dev/zero (its size says 0) was read until memory ran out; a device is refused, and a file (or one it
    includes, R12) is read no further than the largest environment file. The referees: the device itself, which
    os.stat calls 0 bytes long, and the file system's size of the included file."""
    import os
    assert os.stat("/dev/zero").st_size == 0
    said = run_cli("env", "import", "local", "/dev/zero", "--dry-run", config=tmp_path / "config", home=home)
    assert said.returncode == 1 and "not an ordinary file" in said.stderr, said.stderr
    big = tmp_path / "big.txt"
    big.write_text("six\n" + "# padding\n" * 700_000)
    assert big.stat().st_size > specs.LARGEST_FILE
    top = tmp_path / "requirements.txt"
    top.write_text("idna\n-r big.txt\n")
    plan = json.loads(run_cli("env", "import", "local", str(top), "--dry-run", "--json", config=tmp_path / "config",
                              home=home).stdout)
    assert [entry["line"] for entry in plan["refused"]] == ["-r big.txt"], plan
    assert "too large" in plan["refused"][0]["reason"]


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="named pipes")
def test_a_pipe_is_read_by_the_command_line_and_never_waited_on_by_the_window(tmp_path, home):
    """R12: a named pipe picked for an import hung (the window reads the file on its own thread); the command
    line's `<(cat FILE)` is a pipe too, and is read. The referees: bash's process substitution, and the clock of
    a pipe nobody writes to, which the window's reading does not wait on."""
    import os
    import subprocess
    from envdesk.backend.errors import InvalidInput
    from envdesk.backend.operations.importing import read_spec_file
    file = tmp_path / "requirements.txt"
    file.write_text("tinyalpha==1.0\n")
    from envdesk_fixtures import envdesk_command
    command = " ".join(__import__("shlex").quote(word) for word in envdesk_command())
    said = subprocess.run(["bash", "-c", f"{command} --config-dir {tmp_path / 'config'} env import local "
                           f"<(cat {file}) --name piped --dry-run --json"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "HOME": str(home)})
    assert said.returncode == 0, said.stderr
    assert json.loads(said.stdout)["install"] == ["tinyalpha==1.0"]
    fifo = tmp_path / "pipe-requirements.txt"
    os.mkfifo(fifo)
    with pytest.raises(InvalidInput) as refused:
        read_spec_file(fifo)  # returns at once: nobody ever writes to it
    assert "not an ordinary file" in refused.value.message


def test_an_included_file_named_through_a_variable_is_refused_saying_so(tmp_path, monkeypatch):
    """T15 LOW-11: `-r ${BASE}/base.txt` was refused as 'not found from ., where pip looks for it', though pip,
    which fills in ${BASE} where it runs, finds it (pip's own reader is the referee: it reads the included pin)."""
    from pip._internal.network.session import PipSession
    from pip._internal.req.req_file import parse_requirements
    (tmp_path / "base.txt").write_text("tinyalpha==1.0\n")
    top = tmp_path / "requirements.txt"
    top.write_text("-r ${BASE}/base.txt\n")
    monkeypatch.setenv("BASE", str(tmp_path))
    assert [parsed.requirement for parsed in parse_requirements(str(top), session=PipSession())] == ["tinyalpha==1.0"]
    spec = specs.from_requirements(top.read_text(), tmp_path)
    [refused] = spec.refused
    assert "${BASE}" in refused.reason and "not found" not in refused.reason, refused


def test_a_missing_included_file_is_said_with_the_folder_it_was_looked_for_in(tmp_path):
    """T21: `-r missing.txt` in an environment.yml's pip: section said 'not found from .': conda's pip reads it
    beside the environment.yml (the referee: the folder the file is in), whatever folder EnvDesk runs from."""
    (tmp_path / "environment.yml").write_text("name: e\ndependencies:\n  - pip\n  - pip:\n    - -r missing.txt\n")
    from envdesk.backend.operations.importing import read_spec_file
    spec = read_spec_file(tmp_path / "environment.yml")
    [refused] = spec.refused
    assert f"not found in {tmp_path.resolve()}" in refused.reason, refused
