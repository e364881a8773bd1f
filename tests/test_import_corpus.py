"""Importing the files people actually have: every line of each corpus file is installed, adapted or refused.

The corpus (tests/corpus/) imitates real tools' output (pip-compile, uv export, conda env export, pip
freeze of a conda environment, PEP 751 locks...); MANIFEST.yaml lists, independently of EnvDesk, every
requirement each file holds. The plan printed by `envdesk env import --dry-run --json` must account
for each exactly once.
"""
from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from envdesk_fixtures import canon, envdesk_command

CORPUS = Path(__file__).parent / "corpus"
MANIFEST = yaml.safe_load((CORPUS / "MANIFEST.yaml").read_text(encoding="utf-8"))["files"]
PLANNED = sorted(f for f, info in MANIFEST.items()
                 if info["kind"] in ("requirements", "conda", "pylock") and f not in ("base.txt", "constraints.txt"))


def dry_run(path: Path, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*envdesk_command(), "--config-dir", str(config), "env", "import", "local", str(path),
                           "--dry-run", "--json"], capture_output=True, text=True, timeout=120)


def name_of(line: str) -> str | None:
    """The package a plan line names, read with packaging (the PEP 508 referee), or None."""
    from packaging.requirements import InvalidRequirement, Requirement
    text = line.strip()
    egg = re.search(r"#egg=([A-Za-z0-9][A-Za-z0-9._-]*)", text)
    if text.startswith("-e ") or text.startswith(("git+", "hg+", "svn+", "bzr+")):
        return canon(egg.group(1)) if egg else None
    try:
        return canon(Requirement(re.sub(r"\s--hash\S*", "", text)).name)
    except InvalidRequirement:
        conda = re.match(r"^(?:[^:\s]+::)?([A-Za-z0-9_][A-Za-z0-9._-]*)", text)
        return canon(conda.group(1)) if conda else None


def accounted(plan: dict) -> tuple[Counter, list[str]]:
    """How often each package name appears across install, conda, adapted and refused; and every line."""
    lines = [*plan["install"], *plan["conda"], *(a["line"] for a in plan["adapted"]),
             *(r["line"] for r in plan["refused"])]
    return Counter(n for n in map(name_of, lines) if n), lines


@pytest.mark.parametrize("filename", PLANNED)
def test_every_line_of_a_real_file_is_accounted_for_exactly_once(filename, tmp_path):
    result = dry_run(CORPUS / filename, tmp_path / "config")
    plan = json.loads(result.stdout)
    assert result.returncode == (1 if plan["blocked"] else 0), result.stderr  # as the import would end
    assert set(plan) >= {"kind", "python", "modules", "install", "conda", "channels", "adapted", "refused",
                         "blocked"}
    names, lines = accounted(plan)
    for entry in MANIFEST[filename]["requirements"]:
        if entry["name"]:
            assert names[entry["name"]] >= 1, f"{entry['line']!r} was dropped"
        else:
            assert entry["line"] in lines, f"{entry['line']!r} was dropped"
    expected = Counter(e["name"] for e in MANIFEST[filename]["requirements"] if e["name"])
    for name, count in expected.items():
        assert names[name] == count, f"{name} is in the plan {names[name]} times, in the file {count}"
    assert not list((tmp_path / "config").glob("**/*.json")), "a dry run must not list or cache anything"


def pip_reads(path: Path) -> list:
    """The requirements pip itself reads from a requirements file (its -r includes too; not its constraints or
    editable lines), as packaging Requirements: pip's own parser is the referee for what each line asks."""
    from packaging.requirements import InvalidRequirement, Requirement
    from pip._internal.network.session import PipSession
    from pip._internal.req.req_file import parse_requirements
    found = []
    for parsed in parse_requirements(str(path), session=PipSession()):
        if parsed.constraint or parsed.is_editable:
            continue
        try:
            found.append(Requirement(parsed.requirement))
        except InvalidRequirement:  # a path or an archive's URL: not PEP 508 until pip looks at it
            continue
    return found


def same_ask(first, second) -> bool:
    return (canon(first.name), first.specifier, first.extras, str(first.marker), first.url) == (
        canon(second.name), second.specifier, second.extras, str(second.marker), second.url)


@pytest.mark.parametrize("filename", [f for f in PLANNED if MANIFEST[f]["kind"] == "requirements"])
def test_each_requirement_installed_asks_what_pip_reads_in_the_file(filename, tmp_path):
    """R16: the corpus test counted names only, so a reader that dropped markers ('waitress ; sys_platform ==
    "win32"' installed on Linux), versions or extras passed it. Each requirement pip reads in the file and the
    plan installs as is has the same name, versions, extras, marker and URL in the plan."""
    from packaging.requirements import InvalidRequirement, Requirement
    plan = json.loads(dry_run(CORPUS / filename, tmp_path / "config").stdout)
    installed = []
    for line in plan["install"]:
        try:
            installed.append(Requirement(re.sub(r"\s--hash\S*", "", line)))
        except InvalidRequirement:
            continue
    adapted = {name_of(entry["line"]) for entry in plan["adapted"]} | {name_of(r["line"]) for r in plan["refused"]}
    read = [wanted for wanted in pip_reads(CORPUS / filename) if canon(wanted.name) not in adapted]
    assert read, "pip reads requirements in every requirements file of the corpus"
    differ = [str(wanted) for wanted in read if not any(same_ask(wanted, line) for line in installed)]
    assert differ == [], (differ, plan["install"])


def test_conda_files_are_planned_even_where_conda_is_missing(tmp_path):
    result = dry_run(CORPUS / "environment-unpinned.yml", tmp_path / "c")
    plan = json.loads(result.stdout)
    assert result.returncode == 1, "a dry run said 'Blocked' and ended as if the import would work"
    assert plan["kind"] == "conda" and plan["blocked"] and "conda" in plan["blocked"]
    assert plan["python"] == "3.10"
    assert "conda-forge::pytorch" in plan["conda"] and "scipy>=1.10" in plan["conda"]


@pytest.mark.parametrize("python, blocked", [("python=3.11", False), ("conda-forge::python=3.11.5=h955ad1f_0", False),
                                            ("python", False), ("python>=3.9", False), ("python<3.12", False),
                                            ("python >=3.9,<3.99", False), ("python>=3.99", True),
                                            ("python[version='>=3.9,<3.99']", False)])
def test_a_conda_file_whose_python_this_computer_has_becomes_a_venv(tmp_path, python, blocked):
    """One version (or none) becomes a venv where there is no conda. So does a range (T10: `python>=3.9,<3.12`
    was blocked though 3.11 is in it), made with a Python within it (the review found `python<3.12` taken as
    3.12: packaging's specifier, the referee, says whether the chosen one is in the range); a range no Python
    here is in stays blocked: conda's to choose."""
    from packaging.specifiers import SpecifierSet

    conda_file = tmp_path / "environment.yml"
    conda_file.write_text(f"name: ranged\ndependencies:\n  - {python}\n  - pip\n  - pip:\n    - tinyalpha==1.1\n")
    result = dry_run(conda_file, tmp_path / "config")
    plan = json.loads(result.stdout)
    assert (result.returncode, bool(plan["blocked"]), plan["kind"] == "conda") == (int(blocked), blocked, blocked)
    bracket = re.search(r"\[version='([^']*)'\]", python)  # conda's bracket form (T21: taken as conda-only)
    ranged = bracket.group(1) if bracket else python.split("::")[-1][len("python"):].strip()
    if not blocked and ranged[:1] in "<>!~":
        assert plan["python"] and plan["python"] in SpecifierSet(ranged), plan


def test_refused_lines_stop_the_import_unless_agreed(tmp_path):
    config = tmp_path / "config"
    result = subprocess.run([*envdesk_command(), "--config-dir", str(config), "env", "import", "local",
                             str(CORPUS / "requirements-mixed.txt"), "--root", str(tmp_path / "envs")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "--index-url" in result.stderr and "Nothing was created" in result.stderr
    assert not (tmp_path / "envs").exists()


def test_unknown_keys_in_envdesk_files_are_named(tmp_path):
    result = dry_run(CORPUS / "envdesk-unknown-key.yaml", tmp_path / "c")
    assert result.returncode == 1
    assert "packages" in result.stderr and "requirements" in result.stderr


def pip_freeze(cluster, env_path: str, modules: str) -> dict[str, str]:
    """The referee: what pip itself says the environment holds."""
    out = cluster.run_as_user(f"module load {modules} && {env_path}/bin/python -m pip freeze --all").stdout
    return {canon(line.split("==")[0]): line.split("==")[1] for line in out.split() if "==" in line}


def test_a_file_with_one_pin_still_installs_every_other_line(testbed, session, tmp_path):
    """The old importer kept only the == pins when a file had any (and exited 0)."""
    from envdesk.backend.operations.importing import import_environment, read_spec_file
    from envdesk_fixtures import unique
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# analysis\ntinyalpha==1.1\ntinybeta>=1.0  # needs tinyalpha\n\ntinygamma\n")
    name = unique("mixed")
    imported = import_environment(session, "beta", read_spec_file(requirements), name=name)
    held = pip_freeze(testbed.clusters["beta"], imported.environment.path, "GCC/12.3.0 Python/3.11.3")
    assert {k: held.get(k) for k in ("tinyalpha", "tinybeta", "tinygamma")} == {
        "tinyalpha": "1.1", "tinybeta": "1.0", "tinygamma": "0.1"}


def test_a_conda_file_asking_conda_only_for_python_and_pip_becomes_a_venv_where_there_is_no_conda(
        testbed, session):
    """A course's environment.yml (python, pip, and the rest under pip:) was refused on every cluster without
    conda (a user trial). beta has none: a venv of its Python module is made, holding what pip freeze says
    the pip: section asks for. A conda package in the file (numpy, which beta's index lacks) is left out only
    with the user's agreement (T21: it was blocked, 'conda alone installs numpy')."""
    from envdesk.backend.operations.importing import import_environment, plan_import, read_spec_file
    from envdesk_fixtures import unique
    spec = read_spec_file(CORPUS / "environment-pip-only.yml")
    imported = import_environment(session, "beta", spec, name=unique("course"))
    beta = testbed.clusters["beta"]
    made_by_venv = beta.run_as_user(f"cat {imported.environment.path}/pyvenv.cfg").stdout
    assert re.search(r"^version(_info)? = 3\.11\.", made_by_venv, re.MULTILINE), made_by_venv
    held = pip_freeze(beta, imported.environment.path, "GCC/12.3.0 Python/3.11.3")
    assert {k: held.get(k) for k in ("tinyalpha", "tinybeta")} == {"tinyalpha": "1.1", "tinybeta": "1.0"}
    with_numpy = read_spec_file(CORPUS / "environment-nodefaults.yml")
    plan = plan_import(session, "beta", with_numpy)
    assert not plan.blocked and plan.kind == "venv" and plan.needs_agreement
    assert [r.line for r in plan.refused if "no conda on beta" in r.reason] == ["numpy=1.26.4"], plan.refused


def test_pins_that_cannot_install_are_all_named_with_their_cause(testbed, session, tmp_path):
    """Like a course's numpy==1.22.3/pandas==1.4.2 on Python 3.11: every failing pin and why, at once."""
    from envdesk.backend.errors import CommandFailed
    from envdesk.backend.operations.importing import import_environment, read_spec_file
    from envdesk_fixtures import unique
    course = tmp_path / "requirements.txt"
    course.write_text("tinyold==1.0\ntinyalpha==9.9\ntinygamma==0.1\n")
    name = unique("course")
    with pytest.raises(CommandFailed) as info:
        import_environment(session, "beta", read_spec_file(course), name=name)
    message = info.value.message
    assert "tinyold==1.0 (needs Python <3.11; this environment has Python 3.11" in message
    assert "tinyalpha==9.9 (not in this target's package index" in message
    assert "tinygamma" not in message.split("installed on")[1]
    assert "predate" in info.value.hint and "--top-level" in info.value.hint
    listed = testbed.clusters["beta"].run_as_user(f"ls -d ~/venvs/{name} ~/envs/{name} 2>/dev/null", check=False)
    assert listed.stdout == ""


@pytest.mark.parametrize("cluster_name", ["alpha", "beta"])
def test_a_package_the_cluster_has_no_version_of_gets_no_top_level_advice(testbed, session, tmp_path, cluster_name):
    """A user trial's import of a package the cluster's store lacks entirely was told to try --top-level, which
    cannot help. The cluster's installer (uv on alpha, pip on beta) says which it is (test_failure_words checks
    those words of uv and pip themselves)."""
    from envdesk.backend.errors import CommandFailed
    from envdesk.backend.operations.importing import import_environment, read_spec_file
    from envdesk_fixtures import unique
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("tinygamma==0.1\ntinynowhere==1.0\n")
    with pytest.raises(CommandFailed) as info:
        import_environment(session, cluster_name, read_spec_file(requirements), name=unique("nowhere"))
    assert "tinynowhere==1.0 (no version of it in this target's package index" in info.value.message
    hint = info.value.hint
    assert "--top-level" not in hint and "check the name" in hint and "another Python" in hint, hint


def test_allowing_newer_versions_really_relaxes_the_pins(testbed, session, tmp_path):
    from envdesk.backend.operations.importing import import_environment, read_spec_file
    from envdesk_fixtures import unique
    course = tmp_path / "requirements.txt"
    course.write_text("tinyold==1.0\ntinygamma==0.1\n")
    imported = import_environment(session, "beta", read_spec_file(course), name=unique("newer"), top_level=True)
    assert imported.used_top_level
    held = pip_freeze(testbed.clusters["beta"], imported.environment.path, "GCC/12.3.0 Python/3.11.3")
    assert held.get("tinyold") == "1.2" and held.get("tinygamma") == "0.1"
    # beta's Python module needs GCC first (Lmod says so): the retry builds with both, and the notes say both (R7)
    assert imported.environment.modules == ("GCC/12.3.0", "Python/3.11.3")
    said = [note for note in imported.notes if note.startswith("Modules")]
    assert said == ["Modules loaded for it here: GCC/12.3.0 Python/3.11.3 (Python 3.11.3)."], imported.notes


def hashed_requirements(wheelhouse: Path, pins: dict[str, str], *, corrupt: str = "") -> str:
    """A pip-compile style file whose hashes are the real sha256 of the cluster's wheels."""
    import hashlib
    lines = []
    for name, version in pins.items():
        digest = hashlib.sha256((wheelhouse / f"{name}-{version}-py3-none-any.whl").read_bytes()).hexdigest()
        if name == corrupt:
            digest = digest[::-1]
        lines.append(f"{name}=={version} \\\n    --hash=sha256:{digest}\n    # via -r requirements.in")
    return "# This file is autogenerated by pip-compile with Python 3.11\n" + "\n".join(lines) + "\n"


@pytest.mark.parametrize("cluster_name,modules", [("beta", "GCC/12.3.0 Python/3.11.3"),
                                                  ("alpha", "python/3.11.5")])
def test_hash_pinned_files_are_installed_with_hash_checking(testbed, session, tmp_path, cluster_name, modules):
    from envdesk.backend.errors import CommandFailed
    from envdesk.backend.operations.importing import import_environment, read_spec_file
    from envdesk_fixtures import unique
    cluster = testbed.clusters[cluster_name]
    good = tmp_path / "requirements.txt"
    good.write_text(hashed_requirements(cluster.wheelhouse, {"tinyalpha": "1.1", "tinygamma": "0.1"}))
    imported = import_environment(session, cluster_name, read_spec_file(good), name=unique("hashed"))
    out = cluster.run_as_user(f"module load {modules} && "
                              f"{imported.environment.path}/bin/python -c 'import tinyalpha, tinygamma; "
                              f"print(tinyalpha.__version__, tinygamma.__version__)'").stdout
    assert out.split() == ["1.1", "0.1"]
    bad = tmp_path / "bad" / "requirements.txt"
    bad.parent.mkdir()
    bad.write_text(hashed_requirements(cluster.wheelhouse, {"tinyalpha": "1.1", "tinygamma": "0.1"},
                                       corrupt="tinygamma"))
    name = unique("badhash")
    with pytest.raises(CommandFailed) as info:
        import_environment(session, cluster_name, read_spec_file(bad), name=name)
    assert "hash" in (info.value.message + info.value.log).lower()
    listed = cluster.run_as_user(f"ls -d ~/venvs/{name} ~/envs/{name} 2>/dev/null", check=False)
    assert listed.stdout == ""


def test_the_missing_package_report_survives_hundreds_of_pins(testbed, session, tmp_path):
    """Past ~450 pins the check used to travel as one argument over Linux's 128 KiB limit and lose its report."""
    from envdesk.backend.errors import CommandFailed
    from envdesk.backend.operations.importing import import_environment, read_spec_file
    from envdesk_fixtures import unique
    names = [f"absent-package-with-a-long-name-{i:04d}" for i in range(600)]  # ~250 bytes of check each
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("tinygamma==0.1\n" + "".join(f"{name}==1.0.{i}\n" for i, name in enumerate(names)))
    with pytest.raises(CommandFailed) as info:
        import_environment(session, "alpha", read_spec_file(requirements), name=unique("many"))
    assert info.value.message.startswith(f"{len(names)} package(s) cannot be installed on alpha")
    assert all(name in info.value.message for name in names[::97])


PIP_DEFAULT_INDEX = {"pypi.org", "files.pythonhosted.org"}
"""Where pip downloads from with no index options (its documentation: https://pypi.org/simple, whose files are on
files.pythonhosted.org): the index of the dry runs' target, This computer without pip arguments."""


def downloads_pip_reads(path: Path) -> list[str]:
    """The URL of each line of a requirements file that pip itself would download from somewhere else than its
    default index: a version-control checkout, or an archive on another host (pip's own parser, which fetches
    nothing; a missing local folder, which pip refuses, is no download)."""
    from pip._internal.exceptions import InstallationError
    from pip._internal.network.session import PipSession
    from pip._internal.req.constructors import install_req_from_parsed_requirement
    from pip._internal.req.req_file import parse_requirements
    found = []
    for parsed in parse_requirements(str(path), session=PipSession()):
        try:
            link = install_req_from_parsed_requirement(parsed).link
        except InstallationError:
            continue
        if link is not None and not link.is_file and (link.is_vcs or link.netloc not in PIP_DEFAULT_INDEX):
            found.append(link.url)
    return found


@pytest.mark.parametrize("filename", sorted(f for f in PLANNED if MANIFEST[f]["kind"] == "requirements"))
def test_every_download_pip_would_make_waits_for_the_users_yes(filename, tmp_path):
    """The trial's bare `git+https://...` and `-e git+https://...` lines were installed without asking."""
    plan = json.loads(dry_run(CORPUS / filename, tmp_path / "config").stdout)
    asked = [entry["line"] for entry in plan["outside"]] + [entry["line"] for entry in plan["refused"]]
    for url in downloads_pip_reads(CORPUS / filename):
        assert any(url in line for line in asked), f"{url} would be downloaded without asking"


def test_files_windows_writes_are_read_as_pip_reads_them(tmp_path):
    """PowerShell 5's UTF-16 `pip freeze` and Notepad's UTF-8 with a byte-order mark: nothing refused."""
    for number, filename in enumerate(("powershell/requirements.txt", "notepad-bom.txt")):
        result = dry_run(CORPUS / filename, tmp_path / f"config{number}")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["refused"] == []
    plan = json.loads(dry_run(CORPUS / "powershell/requirements.txt", tmp_path / "c").stdout)
    assert [a["as"] for a in plan["adapted"]] == [
        "acme_utils @ git+https://github.com/acme-data/acme-utils.git@5b0e3c1f9a2d4e6b8c7a1f3e5d9b2c4a6e8f0a1b"
        "#egg=acme_utils"]


def test_nodefaults_is_said_as_conda_reads_it_not_listed_as_a_channel(tmp_path):
    """T10: the plan printed 'conda channels, in order: conda-forge nodefaults'; nodefaults is no channel but
    conda's word for leaving its default channels out (environment-nodefaults.yml, as conda-forge's docs write
    it)."""
    result = subprocess.run([*envdesk_command(), "--config-dir", str(tmp_path / "c"), "env", "import", "local",
                             str(CORPUS / "environment-nodefaults.yml"), "--dry-run"], capture_output=True, text=True,
                            timeout=120)
    first = result.stdout.splitlines()[0]
    assert first == "conda channels, in order: conda-forge (nodefaults: conda's default channels are not used)"


def test_a_plain_requirements_file_is_not_said_to_have_had_no_modules(session, tmp_path):
    """T10: a requirements file, which records no modules, was planned with 'Modules: (none) on the source
    became GCC/12.3.0 Python/3.11.3 here'; it now says which modules it is given here."""
    from envdesk.backend.operations.importing import plan_import, read_spec_file
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("tinyalpha==1.1\n")
    plan = plan_import(session, "beta", read_spec_file(requirements))
    said = [note for note in plan.notes if "odules" in note]
    assert said == [f"Modules loaded for it here: {' '.join(plan.modules)} (Python {plan.python})."], plan.notes


def test_a_pinned_pip_a_venv_cannot_honour_is_said_to_differ(tmp_path):
    """T10: `pip=24.2` in an environment.yml that became a venv was 'the venv environment's own installer', and
    the venv's pip (its Python's own, 23.2.1 here) differed without a word."""
    conda_file = tmp_path / "environment.yml"
    conda_file.write_text("name: pinned\ndependencies:\n  - python=3.11\n  - pip=24.2\n"
                          "  - pip:\n    - tinyalpha==1.1\n")
    plan = json.loads(dry_run(conda_file, tmp_path / "config").stdout)
    [pip] = [entry for entry in plan["adapted"] if entry["line"] == "pip=24.2"]
    assert "version may differ from the one asked for" in pip["as"], pip


BACKSLASHES = """\\
# Pinned by hand; see CONTRIBUTING.md \\
tinyalpha==1.0
# the next two lines are one requirement
tinybeta\\
==1.0
   # an indented note that ends in a backslash too \\
tinygamma==0.1
tinydelta  # pip swallows the line after this one \\
tinyeps==1.0
tinyzeta==1.0 \\
    ; python_version >= "3"
"""


def test_backslashes_and_comments_are_read_as_pip_reads_them(tmp_path):
    """T13: a comment ending in a backslash made the import drop the next requirement without a word, where pip
    reads it (its join_lines: a comment line is never continued). The referee: pip's own dry run of the file."""
    import sys
    sys.path.insert(0, str(Path(__file__).parent / "testbed"))
    from wheels import WheelSpec, build_wheel
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for name in ("tinyalpha", "tinybeta", "tinygamma", "tinydelta", "tinyeps", "tinyzeta"):
        build_wheel(wheels, WheelSpec(name, "1.0" if name != "tinygamma" else "0.1"))
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(BACKSLASHES)
    report = tmp_path / "report.json"
    subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report",
                    str(report), "--no-index", "--find-links", str(wheels), "-r", str(requirements)],
                   check=True, timeout=300)
    pips = {canon(item["metadata"]["name"]) for item in json.loads(report.read_text())["install"]}
    plan = json.loads(dry_run(requirements, tmp_path / "config").stdout)
    assert plan["refused"] == []
    assert {name_of(line) for line in plan["install"]} == pips
    assert "tinyalpha" in pips and "tinyeps" not in pips, "the shapes above are read as pip reads them"


@pytest.mark.parametrize("filename,expected", [("pylock.demo-uv.toml", "demo-uv"), ("pylock.toml", None),
                                               ("pylock.gpu-run.toml", "gpu-run")])
def test_a_named_lock_names_what_it_builds(filename, expected, tmp_path):
    """T14: importing pylock.demo-uv.toml offered the name of the folder it was in ('home'); PEP 751 names a lock
    pylock.NAME.toml. The referee: packaging's own check of a lock's file name (is_valid_pylock_path)."""
    from packaging.pylock import is_valid_pylock_path
    folder = tmp_path / "shared-folder"
    folder.mkdir()
    lock = folder / filename
    lock.write_bytes((CORPUS / "pylock.toml").read_bytes())
    assert is_valid_pylock_path(lock)
    plan = json.loads(dry_run(lock, tmp_path / "config").stdout)
    assert plan["name"] == (expected or "shared-folder"), plan["name"]


def test_a_python_chosen_for_an_import_says_which_line_of_the_file_it_replaces(tmp_path):
    """T21: `--python 3.11` replaced the file's `python 3.10.*` with nothing said (adapted and notes empty)."""
    conda_file = tmp_path / "environment.yml"
    conda_file.write_text("name: p\ndependencies:\n  - python 3.10.*\n  - pip\n  - pip:\n    - tinyalpha==1.1\n")
    result = subprocess.run([*envdesk_command(), "--config-dir", str(tmp_path / "config"), "env", "import", "local",
                             str(conda_file), "--python", "3.11", "--dry-run", "--json"], capture_output=True,
                            text=True, timeout=120)
    plan = json.loads(result.stdout)
    assert any(item["line"] == "python 3.10.*" and "3.11" in item["reason"] for item in plan["adapted"]), plan
