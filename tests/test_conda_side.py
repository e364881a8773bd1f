"""The conda side (issue 12): the solver conda commands use, each cluster's channels, exports that travel between
platforms (`conda env export --from-history`), and conda found and run without its ~/.bashrc set-up.

conda, mamba and micromamba cannot be installed here, so conda commands go to a FAKE CONDA: the conda STAND-IN of
testbed/fake_conda.py (it writes prefixes in conda's on-disk format), behind a small wrapper that logs every call
(argv and solver) and does what conda does to a user's files when asked to (`conda init` appends its block to
~/.bashrc, `conda config --set` writes ~/.condarc), so a test of those files can fail. It lives in ~/miniforge3 of
a cluster user of its own, set up the way conda's installer and `conda init` leave it: a conda-meta record per
package of its base, and the `conda initialize` block in ~/.bashrc, which a non-interactive shell skips.

The referees: the fake's log of what conda was actually given, conda's own files (conda-meta/history, the
records' build strings), the files' bytes, and the draft conda standard of environment.yml (conda/ceps PR 81,
"CEP XXXX - Specification of environment.yml input files").
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import pwd
import re
import shlex
import shutil
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from agent_fixtures import conda_record, history_block, make_conda_prefix
from envdesk.backend import validate
from envdesk.backend.config import ClusterProfile, ClusterStore
from envdesk.backend.errors import ConfigError, InvalidInput
from envdesk.backend.operations.common import Progress
from envdesk.backend.operations.create import CreateRequest, create_environment
from envdesk.backend.operations.export import export_environment
from envdesk.backend.operations.update import Change, update_environment
from envdesk.backend.paths import AppPaths
from envdesk.backend.presets import get_preset
from envdesk.backend.probe import probe
from envdesk.backend.spec import CONDA_HISTORY, redact
from envdesk_fixtures import extra_cluster, run_cli, session_for

STAND_IN = Path(__file__).parent / "testbed" / "fake_conda.py"
CALLS = "conda-calls.jsonl"
TOKEN = "tk-5ecret-0123456789"

FAKE_CONDA = r'''#!/usr/bin/python3
"""FAKE CONDA for EnvDesk's tests (it is NOT conda): logs each call to ~/conda-calls.jsonl, answers `config
--show-sources`, `shell.bash hook`, and changes ~/.bashrc (`init`) and ~/.condarc (`config --set/--add`) as conda
does; everything else goes to the conda STAND-IN, without the --solver option it does not know."""
import json, os, sys
home = os.path.expanduser("~")
base = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
args, solver, rest = sys.argv[1:], None, []
i = 0
while i < len(args):
    if args[i].startswith("--solver="):
        solver = args[i].split("=", 1)[1]
    elif args[i] == "--solver":
        solver, i = args[i + 1], i + 1
    else:
        rest.append(args[i])
    i += 1
with open(os.path.join(home, "conda-calls.jsonl"), "a") as log:
    log.write(json.dumps({"tool": os.path.basename(sys.argv[0]), "argv": args, "solver": solver}) + "\n")
condarc = os.path.join(home, ".condarc")
if rest[:2] == ["shell.bash", "hook"]:
    print('export CONDA_EXE="%s"\nconda() { "$CONDA_EXE" "$@"; }' % os.path.abspath(sys.argv[0]))
elif rest[:1] == ["init"]:
    with open(os.path.join(home, ".bashrc"), "a") as handle:
        handle.write("# >>> conda initialize >>>\n# written by the fake conda's init\n# <<< conda initialize <<<\n")
elif rest[:1] == ["config"]:
    if "--show-sources" in rest:
        if os.path.exists(condarc):
            print("==> %s <==\n%s" % (condarc, open(condarc).read()))
        if os.environ.get("CONDA_SOLVER"):
            print("==> envvars <==\nsolver: %s" % os.environ["CONDA_SOLVER"])
    for option in ("--set", "--add", "--append", "--prepend"):
        if option in rest:
            key, value = rest[rest.index(option) + 1:rest.index(option) + 3]
            with open(condarc, "a") as handle:
                handle.write("%s: %s\n" % (key, value))
elif solver not in (None, "classic", "libmamba"):
    sys.exit("CondaValueError: You have chosen a non-default solver backend (%s) but it was not recognized." % solver)
else:
    stand_in = os.path.join(base, "libexec", "conda-stand-in.py")
    os.execv(sys.executable, [sys.executable, stand_in] + rest)
'''

BASHRC = """# ~/.bashrc: the usual guard first, so a non-interactive shell reads no further
case $- in *i*) ;; *) return;; esac
alias ll='ls -l'

# >>> conda initialize >>>
# !! Contents within this block are managed by 'conda init' !!
__conda_setup="$('{base}/bin/conda' 'shell.bash' 'hook' 2> /dev/null)"
if [ $? -eq 0 ]; then
    eval "$__conda_setup"
else
    if [ -f "{base}/etc/profile.d/conda.sh" ]; then
        . "{base}/etc/profile.d/conda.sh"
    else
        export PATH="{base}/bin:$PATH"
    fi
fi
unset __conda_setup
# <<< conda initialize <<<
"""

CONDARC = "channels:\n  - conda-forge\nauto_activate_base: true\nchangeps1: false\n"


# -- the cluster and its fake conda ----------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster(testbed):
    """A cluster like alpha with a user of its own (login shell dash: it hands every command to bash --login,
    as any login shell does), so its home's conda set-up can be changed freely."""
    return extra_cluster(testbed, "/bin/dash")


def _own(cluster, *paths: Path) -> None:
    user = pwd.getpwnam(cluster.user)
    for path in paths:
        for folder, _, files in os.walk(path) if path.is_dir() else [(str(path.parent), [], [path.name])]:
            os.chown(folder, user.pw_uid, user.pw_gid)
            for name in files:
                os.chown(os.path.join(folder, name), user.pw_uid, user.pw_gid, follow_symlinks=False)


def install_conda(cluster, *, version: str = "24.7.1", libmamba: bool = True, mamba: bool = False,
                  condarc: str = CONDARC) -> Path:
    """The fake conda in ~/miniforge3 with its base's conda-meta records (conda `version`, conda-libmamba-solver
    when `libmamba`), mamba beside it when `mamba`, ~/.bashrc with `conda init`'s block, and ~/.condarc."""
    home = cluster.home
    base = home / "miniforge3"
    shutil.rmtree(base, ignore_errors=True)
    for folder in ("bin", "libexec", "conda-meta"):
        (base / folder).mkdir(parents=True)
    shutil.copy(STAND_IN, base / "libexec" / "conda-stand-in.py")
    for tool in ("conda", "mamba") if mamba else ("conda",):
        (base / "bin" / tool).write_text(FAKE_CONDA)
        (base / "bin" / tool).chmod(0o755)
    records = [conda_record("conda", version, "py311h38be061_0"), conda_record("python", "3.11.9", "hab00c5b_0")]
    if libmamba:
        records.append(conda_record("conda-libmamba-solver", "24.7.0", "pyhd8ed1ab_0",
                                    "https://conda.anaconda.org/conda-forge/noarch"))
    for record in records:
        (base / "conda-meta" / f"{record['name']}-{record['version']}-{record['build']}.json").write_text(
            json.dumps(record, indent=2, sort_keys=True))
    (home / ".bashrc").write_text(BASHRC.replace("{base}", str(base)))
    (home / ".condarc").write_text(condarc)
    (home / CALLS).unlink(missing_ok=True)
    _own(cluster, base, home / ".bashrc", home / ".condarc")
    return base


@pytest.fixture
def conda(cluster):
    """The fake conda installed for the cluster's user (removed afterwards, with its environments)."""
    install_conda(cluster)
    yield cluster
    for name in ("miniforge3", "venvs", ".bashrc", ".condarc", CALLS, ".conda"):
        path = cluster.home / name
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)


def calls(cluster, verbs=("create", "install", "remove")) -> list[dict]:
    """What the fake conda was given, oldest first (only the commands that change an environment)."""
    log = cluster.home / CALLS
    entries = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return [entry for entry in entries if entry["argv"][:1] and entry["argv"][0] in verbs]


def config_for(folder: Path, cluster, **conda) -> AppPaths:
    paths = AppPaths(folder)
    ClusterStore(paths).add(ClusterProfile(name=cluster.name, **cluster.profile_fields(), **conda))
    with open(paths.known_hosts_file, "a") as handle:
        handle.write(cluster.known_hosts_line() + "\n")
    return paths


def requested_in_history(prefix: Path) -> set[str]:
    """The specs the user asked for, read from conda's own history file (update specs, less remove specs)."""
    asked: dict[str, str] = {}
    for line in (prefix / "conda-meta" / "history").read_text().splitlines():
        for tag, keep in (("# update specs:", True), ("# remove specs:", False)):
            if line.startswith(tag):
                for spec in ast.literal_eval(line[len(tag):].strip()):
                    name = conda_name(spec)
                    if keep:
                        asked[name] = spec
                    else:
                        asked.pop(name, None)
    return set(asked.values())


def conda_name(entry: str) -> str:
    """The package a conda match spec (of conda's history, or written by EnvDesk) names."""
    return re.split(r"[=<>!~ \[]", entry, maxsplit=1)[0]


def installed(prefix: Path) -> dict[str, tuple[str, str]]:
    """name -> (version, build) from the prefix's conda-meta records, as conda wrote them."""
    found = {}
    for record in (prefix / "conda-meta").glob("*.json"):
        data = json.loads(record.read_text())
        found[data["name"]] = (data["version"], data["build"])
    return found


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


# -- finding conda without its ~/.bashrc set-up ---------------------------------------------------------

def test_the_probe_finds_conda_named_in_bashrc_without_running_that_set_up(conda, tmp_path):
    cluster = conda
    assert cluster.run_as_user("command -v conda", check=False).returncode != 0, \
        "conda is not on PATH in a non-interactive login shell (the set-up in ~/.bashrc is skipped)"
    session = session_for(config_for(tmp_path / "cfg", cluster))
    try:
        caps = probe(session.target(cluster.name))
    finally:
        session.close()
    assert caps.tools["conda"] == str(cluster.home / "miniforge3" / "bin" / "conda")
    assert caps.conda_version == "24.7.1" and caps.conda_libmamba
    assert caps.conda_configured_solver is None, "this ~/.condarc names no solver"
    assert "conda" in caps.kinds()
    asked = [entry["argv"] for entry in calls(cluster, verbs=("config", "--version", "shell.bash", "init"))]
    assert asked == [["config", "--show-sources"]], "the probe reads conda's settings and runs nothing else"


def test_a_conda_file_where_no_conda_is_says_how_to_keep_condas_builds_and_that_works(cluster, tmp_path):
    """User trial T10: a conda file on a cluster without conda was blocked with only what conda alone installs.
    The plan (a venv since T21) says how to keep conda's builds; that advice is checked: with Miniforge in
    ~/miniforge3 (the conda STAND-IN, nothing added to the shell's set-up) and the cluster looked at anew (the
    window's Disconnect), the same file is planned as a conda environment."""
    from envdesk.backend.operations.importing import NO_CONDA_NEXT, plan_import, read_spec_file

    environment = tmp_path / "environment.yml"
    environment.write_text("name: sci\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - numpy=1.26\n")
    session = session_for(config_for(tmp_path / "cfg", cluster))
    try:
        venv = plan_import(session, cluster.name, read_spec_file(environment))
        assert venv.kind == "venv" and venv.needs_agreement
        assert any(note.endswith(NO_CONDA_NEXT[1:]) for note in venv.notes), venv.notes
        install_conda(cluster)
        (cluster.home / ".bashrc").unlink()  # only the folder: conda is on no PATH, named by no set-up
        try:
            session.forget(cluster.name)
            planned = plan_import(session, cluster.name, read_spec_file(environment))
        finally:
            shutil.rmtree(cluster.home / "miniforge3")
            (cluster.home / ".condarc").unlink(missing_ok=True)
    finally:
        session.close()
    assert planned.blocked is None and planned.kind == "conda" and "numpy=1.26" in planned.conda_pins


CONDA_FILE = """name: sci
channels: [conda-forge]
dependencies:
  - python=3.11.9=hb806964_0_cpython
  - _libgcc_mutex=0.1=conda_forge
  - libzlib=1.3.1=hb9d3cd8_2
  - tinyalpha=1.0=py_0
  - tinybeta>=0.1
  - ffmpeg
  - pip
  - pip:
    - tinydelta==1.0
"""


def pip_dry_run(cluster, requirement: str) -> bool:
    """Whether pip itself, in a venv of the cluster's Python 3.11, would install `requirement` from the cluster's
    package index (the referee of what the index has)."""
    scratch = f"/tmp/referee-{uuid.uuid4().hex[:8]}"
    try:
        index = " ".join(shlex.quote(arg) for arg in cluster.pip_args)
        return cluster.run_as_user(f"python3 -m venv {scratch} && {scratch}/bin/pip install --dry-run --no-deps "
                                   f"-q {index} '{requirement}'", check=False).returncode == 0
    finally:
        cluster.run_as_user(f"rm -rf {scratch}", check=False)


def distributions(cluster, path: str) -> str:
    """The (name, version) of every distribution importlib.metadata finds in the environment at `path`, and its
    Python's version (the referee of what a venv holds)."""
    return cluster.run_as_user(f"{path}/bin/python -c 'import importlib.metadata as m, sys; "
                               "print(sys.version_info[:2]); print(sorted((d.metadata[\"Name\"].lower(), "
                               "d.version) for d in m.distributions()))'").stdout


def test_a_conda_file_where_no_conda_is_becomes_a_venv_of_what_the_index_has_after_the_users_yes(
        cluster, tmp_path, home):
    """User trial T21: a conda file (or a conda environment's copy) on a cluster without conda was blocked, "conda
    alone installs numpy…". Now a venv of the Python it asks for holds its pip packages and those conda packages
    the cluster's index has (tinyalpha, at its version, without conda's build; tinybeta), and leaves out, each
    with why, what the index lacks (libzlib), pip cannot name (_libgcc_mutex), or a bare name that may be another
    project on PyPI (ffmpeg: R19); only after the user's yes. The
    referees: pip's own dry run on the cluster (what the index has) and importlib.metadata of the venv made."""
    config = tmp_path / "cfg"
    config_for(config, cluster)
    environment = tmp_path / "environment.yml"
    environment.write_text(CONDA_FILE)
    assert pip_dry_run(cluster, "tinyalpha==1.0") and pip_dry_run(cluster, "tinybeta>=0.1")
    assert not pip_dry_run(cluster, "libzlib==1.3.1")
    name = unique("sci")
    shown = run_cli("env", "import", cluster.name, str(environment), "--name", name, "--dry-run", "--json",
                    config=config, home=home)
    assert shown.returncode == 0, shown.stderr
    plan = json.loads(shown.stdout)
    assert plan["kind"] == "venv" and plan["blocked"] is None and plan["needs_yes"]
    assert {a["line"]: a["as"] for a in plan["adapted"] if a["line"] in plan["from_conda"]} == {
        "tinyalpha=1.0=py_0": "tinyalpha==1.0", "tinybeta>=0.1": "tinybeta>=0.1"}
    refused = {r["line"]: r["reason"] for r in plan["refused"]}
    assert set(refused) == {"_libgcc_mutex=0.1=conda_forge", "libzlib=1.3.1=hb9d3cd8_2", "ffmpeg"}, refused
    assert "another project" in refused["ffmpeg"], refused  # R19: conda's ffmpeg is the program, PyPI's is not
    assert "no conda" in refused["libzlib=1.3.1=hb9d3cd8_2"]
    folder = cluster.home / "venvs" / name
    stopped = run_cli("env", "import", cluster.name, str(environment), "--name", name, config=config, home=home)
    assert stopped.returncode != 0 and "libzlib" in stopped.stderr and "--yes" in stopped.stderr, stopped.stderr
    assert not folder.exists(), "nothing is made without the user's yes"
    made = run_cli("env", "import", cluster.name, str(environment), "--name", name, "--yes", "--json",
                   config=config, home=home)
    assert made.returncode == 0, made.stderr
    path = json.loads(made.stdout)["path"]
    try:
        listed = distributions(cluster, path)
        assert "(3, 11)" in listed
        for package, version in (("tinyalpha", "1.0"), ("tinydelta", "1.0")):
            assert f"('{package}', '{version}')" in listed, listed
        assert "'tinybeta'" in listed and "libzlib" not in listed, listed
    finally:
        cluster.run_as_user(f"rm -rf {path}", check=False)


def holds_the_index_part_only(cluster, path: str) -> None:
    """The copy of the conda environment (tinyalpha 1.0 from the index, libzlib only conda has) holds what
    importlib.metadata finds there: tinyalpha, not libzlib; then it is removed."""
    try:
        listed = distributions(cluster, path)
        assert "('tinyalpha', '1.0')" in listed and "libzlib" not in listed, listed
    finally:
        cluster.run_as_user(f"rm -rf {path}", check=False)


def test_a_conda_environment_is_copied_to_a_cluster_without_conda_after_the_users_yes(conda, testbed, tmp_path,
                                                                                     home):
    """User trial T21: `env clone` of a conda environment (made by the conda STAND-IN) to a cluster without conda
    was blocked, saying to "keep only the file's pip: section" of a copy that has no file. It now stops only for
    the user's yes (--yes), naming what is left out, then makes a venv there with what alpha's index has. The
    referee: importlib.metadata of the copy on alpha."""
    from envdesk_fixtures import make_config
    cluster = conda
    config = tmp_path / "cfg"
    make_config(config, testbed, names=("alpha",))
    paths = config_for(config, cluster)
    name = unique("sci")
    session = session_for(paths)
    try:
        create_environment(session, cluster.name, CreateRequest(name=name, kind="conda", python="3.11",
                                                                packages=["tinyalpha==1.0", "libzlib==1.3.1"]))
    finally:
        session.close()
    assert pip_dry_run(testbed.clusters["alpha"], "tinyalpha==1.0")
    stopped = run_cli("env", "clone", cluster.name, name, "alpha", config=config, home=home)
    assert stopped.returncode != 0 and "libzlib" in stopped.stderr and "copy with --yes" in stopped.stderr, \
        stopped.stderr
    made = run_cli("env", "clone", cluster.name, name, "alpha", "--yes", config=config, home=home)
    assert made.returncode == 0, made.stderr
    path = made.stdout.strip().rpartition(" at ")[2]
    holds_the_index_part_only(testbed.clusters["alpha"], path)


def test_the_windows_copy_of_a_conda_environment_to_a_cluster_without_conda_builds_what_its_plan_showed(
        conda, testbed, tmp_path, home, qtbot):
    """T21: the window's Copy of a conda environment to a cluster without conda was blocked; the Copy dialog's plan
    now lists what comes from the index and what is left out, and Build there is the user's agreement, as for an
    import. The referee: importlib.metadata of the copy on alpha."""
    from envdesk.backend.operations.common import find_environment
    from envdesk.gui.controller import AppController
    from envdesk.gui.prompter import QtPrompter
    from envdesk_fixtures import make_config
    cluster = conda
    config = tmp_path / "cfg"
    make_config(config, testbed, names=("alpha",))
    paths = config_for(config, cluster)
    name, copy = unique("sci"), unique("copy")
    controller = AppController(paths, QtPrompter())
    try:
        create_environment(controller.session, cluster.name, CreateRequest(
            name=name, kind="conda", python="3.11", packages=["tinyalpha==1.0", "libzlib==1.3.1"]))
        env = find_environment(controller.session.target(cluster.name), name, Progress())
        planned: list = []  # the plan the Copy dialog shows (what Build builds)
        controller.plan_copy(cluster.name, env, "alpha", None, copy, lambda *answer: planned.append(answer))
        qtbot.waitUntil(lambda: bool(planned), timeout=300_000)
        spec, plan, missing = planned[0]
        task = controller.clone(cluster.name, env, "alpha", name=copy, spec=spec, shown=(plan, missing))
        qtbot.waitUntil(task.done.is_set, timeout=300_000)
        assert task.state == "succeeded", task.error
        path = find_environment(controller.session.target("alpha"), copy, Progress()).path
    finally:
        controller.shutdown()
    holds_the_index_part_only(testbed.clusters["alpha"], path)


def test_the_windows_import_of_a_conda_file_where_no_conda_is_checks_with_one_dry_run(cluster, tmp_path, home,
                                                                                       qtbot):
    """R19 MED-3: the window's import of a conda file onto a cluster without conda ran three installer dry runs
    (the plan's, its check's, the build's own plan again); the plan's one dry run now judges every line, the
    check reads its answer, and Build builds the plan shown. So it costs the cluster as many commands as importing,
    from the window, a requirements file of the packages it installs (one dry run, the check's). The referees:
    sshd's log of the commands the cluster ran, and importlib.metadata of the venvs made (the same packages)."""
    from envdesk.gui.dialogs.import_dialog import ImportDialog
    from test_gui import LONG, finish, open_window, quiet_count
    window = open_window(qtbot, config_for(tmp_path / "cfg", cluster))
    (tmp_path / "environment.yml").write_text(CONDA_FILE)
    # the kind the conda file's stand-in is (a file naming no kind gets the cluster's default, uv's, without pip)
    (tmp_path / "requirements.txt").write_text("# envdesk: kind=venv\ntinyalpha==1.0\ntinybeta>=0.1\n"
                                               "tinydelta==1.0\n")

    def imported(name: str) -> tuple[int, str]:
        """The commands the window's import of the file `name` cost the cluster, and what its venv holds."""
        before = quiet_count(qtbot, cluster)
        dialog = ImportDialog.from_file(window.controller, cluster.name, tmp_path / name, parent=window)
        qtbot.addWidget(dialog)
        qtbot.waitUntil(lambda: dialog.plan is not None, timeout=LONG)
        dialog.name.setText(unique("sci"))
        finish(qtbot, dialog.start())
        cost, path = quiet_count(qtbot, cluster) - before, f"{cluster.home}/venvs/{dialog.name.text()}"
        try:
            return cost, distributions(cluster, path)
        finally:
            cluster.run_as_user(f"rm -rf {path}", check=False)

    for _ in range(2):  # what the window pays once: its probe of the cluster, its listing agent stored and started
        imported("requirements.txt")
    baseline, plain = imported("requirements.txt")
    cost, listed = imported("environment.yml")
    assert "('tinyalpha', '1.0')" in listed and "('tinydelta', '1.0')" in listed and "libzlib" not in listed
    assert listed == plain
    assert cost <= baseline, (cost, baseline)


def test_a_copy_records_what_the_sources_user_asked_for_at_the_versions_it_holds(conda, testbed, tmp_path, home):
    """T21 MED-7: a conda environment's copy recorded every package's exact pin (python, libzlib, ...) as what was
    asked for; and its copy where no conda is left a package asked for by name only out ("may be another project"),
    though the source says which version it is. Now the copy records the names the source's user asked for, each at
    the version the source holds, and looks for those on the index. Referees: conda's own history (what was asked
    for) and conda-meta records (the versions held) of the source, and importlib.metadata of the copy without
    conda."""
    from envdesk.backend.operations.clone import clone_environment
    from envdesk.backend.protocol import ENVDESK_DIR, META_FILE
    from envdesk_fixtures import make_config
    cluster = conda
    config = tmp_path / "cfg"
    make_config(config, testbed, names=("alpha",))
    session = session_for(config_for(config, cluster))
    try:
        made = create_environment(session, cluster.name, CreateRequest(
            name=unique("asked"), kind="conda", python="3.11", packages=["tinyalpha"]))
        source = Path(made.environment.path)
        record = source / "conda-meta" / "numpy-1.26.4-py_0.json"  # as conda records a dependency it installed
        record.write_text(json.dumps(conda_record("numpy", "1.26.4", "py_0")))
        _own(cluster, record)
        held = installed(source)
        asked = {name: held[name][0] for name in map(conda_name, requested_in_history(source))}
        assert "tinyalpha" in asked and "numpy" in set(held) - set(asked), (held, asked)
        copy = clone_environment(session, cluster.name, source.name, cluster.name, name=unique("asked-copy"),
                                 agreed=True)
        recorded = json.loads((Path(copy.environment.path) / ENVDESK_DIR / META_FILE).read_text())["conda_requested"]
        assert {conda_name(entry): re.split("=+", entry)[1] for entry in recorded} == asked, recorded
        without = clone_environment(session, cluster.name, source.name, "alpha", name=unique("asked-venv"),
                                    agreed=True)
    finally:
        session.close()
    alpha = testbed.clusters["alpha"]
    try:
        assert f"('tinyalpha', '{asked['tinyalpha']}')" in distributions(alpha, without.environment.path)
    finally:
        alpha.run_as_user(f"rm -rf {without.environment.path}", check=False)


def test_a_conda_file_where_no_conda_is_and_the_index_does_not_answer_is_stopped_saying_so(cluster, tmp_path,
                                                                                            home):
    """T21 LOW-9: where the cluster's package index did not answer, the plan said of each conda package that the
    index "has no" it, and left it out. Now the plan stops, saying the index could not be asked. The referee: pip
    itself on the cluster, whose dry run with the same settings says it could not connect."""
    down = ["--index-url", "http://127.0.0.1:9/simple"]  # nothing listens on the discard port
    index = " ".join(shlex.quote(arg) for arg in down)
    scratch = f"/tmp/referee-{uuid.uuid4().hex[:8]}"
    said = cluster.run_as_user(f"python3 -m venv {scratch} && {scratch}/bin/pip install --dry-run --no-deps "
                               f"{index} tinyalpha==1.0; rm -rf {scratch}", check=False)
    assert "connection refused" in (said.stdout + said.stderr).lower(), said
    config = tmp_path / "cfg"
    paths = AppPaths(config)
    ClusterStore(paths).add(ClusterProfile(name=cluster.name, **{**cluster.profile_fields(), "pip_args": down}))
    with open(paths.known_hosts_file, "a") as handle:
        handle.write(cluster.known_hosts_line() + "\n")
    environment = tmp_path / "environment.yml"
    environment.write_text(CONDA_FILE)
    shown = run_cli("env", "import", cluster.name, str(environment), "--dry-run", "--json", config=config, home=home)
    plan = json.loads(shown.stdout)
    assert plan["blocked"] and "could not be asked" in plan["blocked"], plan
    assert not [r for r in plan["refused"] if "has no" in r["reason"]], plan["refused"]


def test_the_copy_dialog_says_why_a_conda_environment_lists_more_packages_than_it_copies(conda, tmp_path, home,
                                                                                         qtbot):
    """T21 LOW-10: the Copy dialog of a conda environment said its list showed more packages because "pip, and
    setuptools and wheel ... come with the new environment", though conda's Python was the one counted apart. The
    referee: the conda-meta records conda wrote in the environment (what the list shows)."""
    from envdesk.backend.operations.common import find_environment
    from envdesk.gui.dialogs.import_dialog import ImportDialog
    from test_gui import open_window
    cluster = conda
    window = open_window(qtbot, config_for(tmp_path / "cfg", cluster))
    made = create_environment(window.controller.session, cluster.name, CreateRequest(
        name=unique("listed"), kind="conda", python="3.11", packages=["tinyalpha==1.0"]))
    records = installed(Path(made.environment.path))
    env = find_environment(window.controller.session.target(cluster.name), made.environment.path, Progress())
    dialog = ImportDialog.for_copy(window.controller, cluster.name, env, parent=window)
    qtbot.addWidget(dialog)
    said = dialog.summary.text()
    assert f"{len(records) - 1} package" in said and "python" in records, (said, records)
    assert f"the list shows {len(records)}, with conda's python, which the new environment has of its own" in said
    assert "setuptools" not in said


def test_a_conda_files_pip_lines_are_checked_before_conda_builds_anything(conda, tmp_path, home):
    """User trial T21: a conda file's dry run did not check its pip: section (requests==2.32.3, which the cluster's
    index lacks: rc 0), and the import built the whole conda environment before pip failed. Both now check the pip
    lines first with a Python of the cluster's of the version asked. The referees: pip's own dry run there, and
    the conda STAND-IN's log of what conda was given (nothing)."""
    cluster = conda
    config = tmp_path / "cfg"
    config_for(config, cluster)
    environment = tmp_path / "environment.yml"
    environment.write_text("name: proj\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n"
                           "  - tinyalpha=1.0\n  - pip\n  - pip:\n    - requests==2.32.3\n    - tinydelta==1.0\n")
    assert not pip_dry_run(cluster, "requests==2.32.3") and pip_dry_run(cluster, "tinydelta==1.0")
    name = unique("proj")
    shown = run_cli("env", "import", cluster.name, str(environment), "--name", name, "--dry-run", "--json",
                    config=config, home=home)
    plan = json.loads(shown.stdout)
    assert plan["kind"] == "conda" and shown.returncode == 1, shown.stderr
    assert [m["line"] for m in plan["unavailable"]] == ["requests==2.32.3"], plan["unavailable"]
    failed = run_cli("env", "import", cluster.name, str(environment), "--name", name, config=config, home=home)
    assert failed.returncode != 0 and "requests==2.32.3" in failed.stderr, failed.stderr
    assert calls(cluster) == [], "conda is not run for an environment whose pip lines cannot be installed"
    assert not (cluster.home / "venvs" / name).exists()


OSX_FILE = "name: mac\ndependencies:\n" + "".join(f"  - {entry}\n" for entry in (
    "libcxx=17.0.6=h5f092b4_0", "numpy=1.26.4=py311h7125741_0", "python=3.11.2=h932a869_0_cpython",
    "tinyalpha=1.0=pyhd8ed1ab_0", "vc=14.3=h8a93ad2_20"))
"""A conda export of macOS's (libcxx, its builds; vc is Windows' runtime, which such a file may hold too)."""


def test_a_conda_file_exported_on_macos_skips_its_runtime_and_builds_with_top_level(conda, tmp_path, home):
    """User trial T21: a file exported on macOS failed on a Linux cluster, "No channel conda searched has libcxx=…",
    and --top-level changed nothing. Its macOS- and Windows-only packages (libcxx, vc) are now skipped, said in the
    plan, which says its builds are that system's; --top-level keeps the versions and drops the builds. The
    referees: the conda STAND-IN's log of what conda was given, each read by rattler's MatchSpec."""
    import rattler
    cluster = conda
    config = tmp_path / "cfg"
    config_for(config, cluster)
    environment = tmp_path / "environment.yml"
    environment.write_text(OSX_FILE)
    shown = run_cli("env", "import", cluster.name, str(environment), "--dry-run", "--json", config=config, home=home)
    assert shown.returncode == 0, shown.stderr
    plan = json.loads(shown.stdout)
    assert {a["line"] for a in plan["adapted"] if a["as"].startswith("skipped")} == {
        "libcxx=17.0.6=h5f092b4_0", "vc=14.3=h8a93ad2_20"}, plan["adapted"]
    assert any("builds" in note and "--top-level" in note and "macOS" in note for note in plan["notes"])
    top = json.loads(run_cli("env", "import", cluster.name, str(environment), "--dry-run", "--json", "--top-level",
                             config=config, home=home).stdout)
    assert all(rattler.MatchSpec(line).build is None for line in top["conda"]) and "numpy==1.26.4" in top["conda"]
    name = unique("mac")
    made = run_cli("env", "import", cluster.name, str(environment), "--name", name, "--top-level", config=config,
                   home=home)
    assert made.returncode == 0, made.stderr
    given = {str(spec.name.normalized): spec for spec in (
        rattler.MatchSpec(arg) for entry in calls(cluster) for arg in entry["argv"]
        if not arg.startswith("-") and arg not in ("create", "install") and not arg.startswith("/"))}
    assert "libcxx" not in given and "vc" not in given, given
    for package, version in (("numpy", "1.26.4"), ("tinyalpha", "1.0"), ("python", "3.11.2")):
        assert given[package].build is None and str(given[package].version) == f"=={version}", given[package]


def test_a_conda_build_missing_here_is_said_to_be_made_for_one_platform(conda, tmp_path, home):
    """T21: conda's failure on a build only another platform has said only "No channel conda searched has …". It now
    says that builds are made for one platform and what keeps the versions. The referee: the conda STAND-IN's own
    PackagesNotFoundError (a package with a build that its channel lacks)."""
    cluster = conda
    config = tmp_path / "cfg"
    config_for(config, cluster)
    environment = tmp_path / "environment.yml"
    environment.write_text("name: w\ndependencies:\n  - python=3.11.2\n  - tinyalpha=9.9=py311h7125741_0\n")
    failed = run_cli("env", "import", cluster.name, str(environment), "--name", unique("w"), config=config,
                     home=home)
    assert failed.returncode != 0 and "No channel conda searched has tinyalpha=9.9" in failed.stderr, failed.stderr
    assert "made for one platform" in failed.stderr and "--top-level" in failed.stderr, failed.stderr


def test_the_probe_reads_the_solver_conda_is_configured_with(conda, tmp_path):
    cluster = conda
    install_conda(cluster, condarc=CONDARC + "solver: classic\n")
    session = session_for(config_for(tmp_path / "cfg", cluster))
    try:
        caps = probe(session.target(cluster.name))
    finally:
        session.close()
    assert caps.conda_configured_solver == "classic"
    assert caps.conda_tool is not None and caps.conda_tool.solver_args == ()


# -- the solver ---------------------------------------------------------------------------------

SOLVER_CASES = {
    # name: (profile's conda_solver, fake conda set-up, tool that must run, solver option it must get, words shown)
    "auto-libmamba": ("auto", {}, "conda", "libmamba", "with conda's libmamba solver"),
    "auto-mamba": ("auto", {"mamba": True}, "mamba", None, "with mamba"),
    "auto-configured": ("auto", {"condarc": CONDARC + "solver: classic\n"}, "conda", None,
                        "with conda's classic solver, as conda is configured here"),
    "auto-old-conda": ("auto", {"version": "22.9.0"}, "conda", None, "with conda's default solver"),
    "auto-no-libmamba": ("auto", {"libmamba": False}, "conda", None, "with conda's default solver"),
    "classic-despite-mamba": ("classic", {"mamba": True}, "conda", "classic", "with conda's classic solver"),
    "libmamba-despite-config": ("libmamba", {"condarc": CONDARC + "solver: classic\n"}, "conda", "libmamba",
                                "with conda's libmamba solver"),
    "mamba-missing": ("mamba", {}, "conda", "libmamba", "libmamba solver (mamba is not installed here)"),
    "old-conda-asked-for-libmamba": ("libmamba", {"version": "4.12.0"}, "conda", None,
                                     "conda 4.12.0 has no --solver option"),
}
CONDA_STEPS = ("Creating the environment (conda)", "Installing conda packages", "Removing conda packages")


@pytest.mark.parametrize("case", SOLVER_CASES)
def test_the_solver_conda_commands_get_and_the_output_names_it(conda, tmp_path, case):
    cluster = conda
    setting, setup, tool, option, words = SOLVER_CASES[case]
    install_conda(cluster, **setup)
    steps: list[str] = []
    session = session_for(config_for(tmp_path / "cfg", cluster, conda_solver=setting))
    try:
        name = unique("solve")
        progress = Progress(on_step=steps.append)
        create_environment(session, cluster.name, CreateRequest(name=name, kind="conda", python="3.11",
                                                                packages=["numpy==1.26.4"]), progress)
        update_environment(session, cluster.name, name, Change(remove=["numpy"]), progress)
    finally:
        session.close()
    ran = calls(cluster)
    assert [entry["argv"][0] for entry in ran] == ["create", "install", "remove"]
    assert {entry["tool"] for entry in ran} == {tool}
    assert {entry["solver"] for entry in ran} == {option}
    shown = [step for step in steps if step.startswith(CONDA_STEPS)]
    assert len(shown) == 3 and all(words in step for step in shown), shown


def test_solver_settings_are_plain_choices():
    assert validate.CONDA_SOLVERS == ("auto", "libmamba", "classic", "mamba")
    for bad in ("fast", "libmamba; rm -rf ~", "", "Mamba"):
        with pytest.raises(InvalidInput):
            ClusterProfile(name="c", host="h", conda_solver=bad)
    from envdesk import cli
    assert cli.CONDA_SOLVERS == validate.CONDA_SOLVERS and cli.CONDA_HISTORY == CONDA_HISTORY


def test_env_import_python_replaces_a_conda_files_own_python_in_what_conda_is_given(conda, tmp_path, home):
    """Review R8: `env import --python 3.11` of an environment.yml pinning python=3.9 made the environment with
    3.11 and then asked conda for python=3.9 as well. The conda STAND-IN (conda cannot run here) records what it
    is given: one Python, the one chosen, and the file's other packages."""
    cluster = conda
    config = tmp_path / "cfg"
    config_for(config, cluster)
    environment = tmp_path / "environment.yml"
    environment.write_text("name: course\nchannels: [conda-forge]\ndependencies:\n  - python=3.9.7=h12debd9_1\n"
                           "  - numpy=1.26.4\n")
    name = unique("course")
    made = run_cli("env", "import", cluster.name, str(environment), "--name", name, "--python", "3.11",
                   config=config, home=home)
    assert made.returncode == 0, made.stderr
    given = [arg for entry in calls(cluster) for arg in entry["argv"] if arg.split("=")[0] in ("python", "numpy")]
    assert "python=3.11" in given and not any(arg.startswith("python=3.9") for arg in given), given
    assert "numpy=1.26.4" in given


# -- channels per cluster -----------------------------------------------------------------------

def test_the_clusters_channels_go_to_conda_in_order_and_into_the_notes(conda, tmp_path, home):
    cluster = conda
    channels = ["conda-forge", "https://conda.example.org/mirror/bioconda"]
    config = tmp_path / "cfg"
    config_for(config, cluster)
    added = run_cli("cluster", "edit", cluster.name, *[arg for c in channels for arg in ("--conda-channel", c)],
                    config=config, home=home)
    assert added.returncode == 0, added.stderr
    listed = run_cli("cluster", "list", "--json", config=config, home=home)
    assert json.loads(listed.stdout)[0]["conda_channels"] == channels
    name = unique("chan")
    made = run_cli("env", "create", cluster.name, name, "--kind", "conda", "--python", "3.11", "--package",
                   "numpy==1.26.4", config=config, home=home)
    assert made.returncode == 0, made.stderr
    expected = ["--override-channels", "-c", channels[0], "-c", channels[1]]
    for entry in calls(cluster):
        at = entry["argv"].index("--override-channels")
        assert entry["argv"][at:at + 5] == expected, entry
    notes = json.loads((cluster.home / "venvs" / name / ".envdesk" / "meta.json").read_text())
    assert notes["channels"] == channels
    shown = run_cli("env", "show", cluster.name, name, "--json", config=config, home=home)
    assert json.loads(shown.stdout)["envdesk"]["channels"] == channels
    session = session_for(AppPaths(config))   # the window's way: the backend, no channels named by the caller
    try:
        other = unique("chan")
        create_environment(session, cluster.name, CreateRequest(name=other, kind="conda", python="3.11"))
    finally:
        session.close()
    notes = json.loads((cluster.home / "venvs" / other / ".envdesk" / "meta.json").read_text())
    assert notes["channels"] == channels
    cleared = run_cli("cluster", "edit", cluster.name, "--conda-channel", "", "--conda-solver", "classic",
                      config=config, home=home)
    assert cleared.returncode == 0, cleared.stderr
    profile = ClusterStore(AppPaths(config)).get(cluster.name)
    assert profile.conda_channels == [] and profile.conda_solver == "classic"


@pytest.mark.parametrize("channel", ["conda-forge; rm -rf ~", "-c", "$(id)", "https://h.org/../x", "a b",
                                     f"https://conda.anaconda.org/t/{TOKEN}/private"])
def test_channels_that_are_shell_text_or_hold_a_token_are_refused(channel, tmp_path, home):
    with pytest.raises((InvalidInput, ConfigError)) as info:
        ClusterProfile(name="c", host="h", conda_channels=[channel])
    assert TOKEN not in str(info.value)
    added = run_cli("cluster", "add", "c", "--host", "h.example.org", "--conda-channel", channel,
                    config=tmp_path / "cfg", home=home)
    assert added.returncode != 0 and TOKEN not in added.stderr + added.stdout
    assert not (tmp_path / "cfg" / "clusters.yaml").exists() or \
        "conda_channels" not in (tmp_path / "cfg" / "clusters.yaml").read_text()


def test_a_token_in_an_imported_files_channel_is_never_shown_nor_given_to_conda(conda, tmp_path, home):
    cluster = conda
    config = tmp_path / "cfg"
    config_for(config, cluster)
    file = tmp_path / "environment.yml"
    file.write_text(f"name: secret\nchannels:\n  - https://conda.anaconda.org/t/{TOKEN}/private\n"
                    "dependencies:\n  - python=3.11\n")
    plan = run_cli("env", "import", cluster.name, str(file), "--dry-run", "--json", config=config, home=home)
    assert plan.returncode == 1 and "credential" in plan.stderr, plan.stderr  # the dry run says what the build would
    assert TOKEN not in plan.stdout + plan.stderr
    assert json.loads(plan.stdout)["channels"] == ["https://conda.anaconda.org/t/REDACTED/private"]
    imported = run_cli("env", "import", cluster.name, str(file), "--yes", config=config, home=home)
    assert imported.returncode == 1 and "credential" in imported.stderr
    assert TOKEN not in imported.stdout + imported.stderr
    assert calls(cluster) == [], "conda was never given the token"
    assert redact(f"-c https://conda.anaconda.org/t/{TOKEN}/private/linux-64") == \
        "-c https://conda.anaconda.org/t/REDACTED/private/linux-64"


def test_presets_suggest_channels_only_where_a_site_documents_them():
    alliance = get_preset("alliance")
    assert alliance.conda_channels == () and alliance.profile_fields(0, "me")["conda_channels"] == []
    assert any("conda" in note for note in alliance.notes), "the Alliance's advice against conda stays said"


# -- exports that travel ------------------------------------------------------------------------

def check_environment_yml(data) -> None:
    """The draft conda standard of environment.yml (conda/ceps PR 81): known top-level keys only; `name` a str
    without '/', ' ', ':' or '#'; `channels` a list of str; `dependencies` (required) a list of match spec strings
    and subsections mapping an installer to its list, of which `pip` is the known one (a list of str)."""
    assert isinstance(data, dict)
    assert set(data) <= {"name", "prefix", "dependencies", "channels", "variables", "platforms", "category"}
    assert "prefix" not in data, "a folder of the machine it came from does not travel"
    assert isinstance(data["name"], str) and not set(data["name"]) & set("/ :#")
    assert isinstance(data["channels"], list) and all(isinstance(c, str) and c for c in data["channels"])
    assert isinstance(data["dependencies"], list) and data["dependencies"]
    for item in data["dependencies"]:
        if isinstance(item, dict):
            assert set(item) == {"pip"} and all(isinstance(line, str) for line in item["pip"])
        else:
            assert isinstance(item, str) and re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]*(?:[=<>!~ ].*)?", item), item


def test_a_history_export_lists_what_was_asked_for_without_builds_and_imports_the_same(conda, tmp_path, home):
    cluster = conda
    config = tmp_path / "cfg"
    paths = config_for(config, cluster, conda_channels=["conda-forge"])
    name = unique("hist")
    session = session_for(paths)
    try:
        create_environment(session, cluster.name, CreateRequest(name=name, kind="conda", python="3.11",
                                                                packages=["numpy==1.26.4"]))
        update_environment(session, cluster.name, name, Change(add=["tinyalpha==1.1"]))
        full = export_environment(session, cluster.name, name, "conda")
    finally:
        session.close()
    prefix = cluster.home / "venvs" / name
    builds = {build for _, build in installed(prefix).values()}
    assert any(build in full for build in builds), "the full export pins builds (so the check below can fail)"
    out = tmp_path / "environment.yml"
    exported = run_cli("env", "export", cluster.name, name, "--format", CONDA_HISTORY, "-o", str(out),
                       config=config, home=home)
    assert exported.returncode == 0, exported.stderr
    text = out.read_text()
    data = yaml.safe_load(text)
    check_environment_yml(data)
    assert not [build for build in builds if build in text], "no platform-specific build string"
    assert data["channels"] == ["conda-forge"]
    asked = requested_in_history(prefix)
    assert asked == {"python=3.11", "numpy==1.26.4", "tinyalpha==1.1"}  # conda_spec: pip's == is exact in conda too
    assert set(data["dependencies"]) == asked, "exactly what conda's history says was asked for"
    copy = unique("copy")
    imported = run_cli("env", "import", cluster.name, str(out), "--name", copy, "--yes", config=config, home=home)
    assert imported.returncode == 0, imported.stderr
    copied = cluster.home / "venvs" / copy
    assert requested_in_history(copied) == asked
    assert {n: v for n, (v, _) in installed(copied).items()} == {n: v for n, (v, _) in installed(prefix).items()}


def test_a_history_export_keeps_the_pip_section(tmp_path, home):
    """A conda environment on this computer (conda's files written by hand: no conda is run) with a package pip
    installed: the export lists what conda's history asked for, pip, and pip's exact pin."""
    prefix = home / "venvs" / "sci"
    py = "%d.%d.%d" % sys.version_info[:3]
    make_conda_prefix(prefix, [conda_record("numpy", "1.26.4", "py311h64a7726_0"),
                               conda_record("pip", "24.0", "pyhd8ed1ab_0")],
                      history_block("2024-02-12 10:31:02", "conda create -p sci python numpy=1.26 pip",
                                    specs=["python", "numpy=1.26", "pip"]), python=py)
    site = next(prefix.glob("lib/python*/site-packages"))
    info = site / "tinyalpha-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinyalpha\nVersion: 1.0\n")
    (info / "INSTALLER").write_text("pip\n")
    session = session_for(AppPaths(tmp_path / "cfg"))
    try:
        text = export_environment(session, "local", "sci", CONDA_HISTORY)
    finally:
        session.close()
    data = yaml.safe_load(text)
    check_environment_yml(data)
    assert data["dependencies"] == ["python", "numpy=1.26", "pip", {"pip": ["tinyalpha==1.0"]}]
    assert "py311h64a7726_0" not in text and "pyhd8ed1ab_0" not in text


# -- conda's set-up in ~/.bashrc and ~/.condarc is never touched --------------------------------------

def test_bashrc_and_condarc_are_byte_identical_after_create_update_and_export(conda, tmp_path, home):
    cluster = conda
    config = tmp_path / "cfg"
    config_for(config, cluster, conda_channels=["conda-forge"])
    bashrc, condarc = cluster.home / ".bashrc", cluster.home / ".condarc"
    before = (digest(bashrc), digest(condarc))
    name = unique("dot")
    for args in (("env", "create", cluster.name, name, "--kind", "conda", "--python", "3.11"),
                 ("env", "update", cluster.name, name, "--add", "numpy==1.26.4"),
                 ("env", "export", cluster.name, name, "--format", CONDA_HISTORY),
                 ("env", "export", cluster.name, name, "--format", "conda")):
        ran = run_cli(*args, config=config, home=home)
        assert ran.returncode == 0, (args, ran.stderr)
    assert (digest(bashrc), digest(condarc)) == before
    every = calls(cluster, verbs=("create", "install", "remove", "config", "init", "shell.bash", "activate"))
    assert [entry["argv"][0] for entry in every if entry["argv"][0] != "config"] == ["create", "install"]
    assert all(entry["argv"] == ["config", "--show-sources"] for entry in every if entry["argv"][0] == "config")
    # the referee can tell: conda itself, asked to, changes these files
    cluster.run_as_user(f"{cluster.home}/miniforge3/bin/conda config --set auto_activate_base false && "
                        f"{cluster.home}/miniforge3/bin/conda init bash")
    assert digest(bashrc) != before[0] and digest(condarc) != before[1]


# -- this computer, the window ----------------------------------------------------------------------------

def test_this_computers_conda_is_read_without_running_it(tmp_path, home, monkeypatch):
    from envdesk.backend.probe import probe_this_computer
    base = tmp_path / "miniforge3"
    (base / "bin").mkdir(parents=True)
    (base / "bin" / "conda").write_text("#!/bin/sh\necho ran >> \"$HOME/ran\"\n")
    (base / "bin" / "conda").chmod(0o755)
    (base / "conda-meta").mkdir()
    for record in (conda_record("conda", "23.11.0", "py311h06a4308_0"),
                   conda_record("conda-libmamba-solver", "23.12.0", "pyhd8ed1ab_0")):
        (base / "conda-meta" / f"{record['name']}-{record['version']}-{record['build']}.json").write_text("{}")
    monkeypatch.setenv("PATH", f"{base / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CONDA_SOLVER", raising=False)
    (home / ".condarc").write_text("channels: [conda-forge]\nsolver: classic\n")
    caps = probe_this_computer()
    assert caps.tools["conda"] == str(base / "bin" / "conda")
    assert (caps.conda_version, caps.conda_libmamba, caps.conda_configured_solver) == ("23.11.0", True, "classic")
    assert not (home / "ran").exists(), "conda was not run"


def test_this_computers_miniforge_is_found_without_conda_init_as_on_a_cluster(tmp_path, home, monkeypatch):
    """The advice a conda file's block gives (install Miniforge in ~/miniforge3, found without changing the
    shell's set-up) held on a cluster, whose probe looks there, but not on This computer, which looked only on
    PATH. It looks where the cluster's probe does, and runs nothing."""
    from envdesk.backend.probe import probe_this_computer
    conda = home / "miniforge3" / "bin" / "conda"
    conda.parent.mkdir(parents=True)
    conda.write_text("#!/bin/sh\necho ran >> \"$HOME/ran\"\n")
    conda.chmod(0o755)
    monkeypatch.setenv("PATH", os.pathsep.join(folder for folder in os.environ["PATH"].split(os.pathsep)
                                               if not (Path(folder) / "conda").exists()))
    caps = probe_this_computer()
    assert caps.tools["conda"] == str(conda) and "conda" in caps.kinds()
    assert not (home / "ran").exists(), "conda was not run"


def test_the_cluster_dialog_has_a_conda_group_and_the_window_exports_conda_history(qtbot, tmp_path, home):
    from envdesk.gui.dialogs.cluster_dialog import ClusterDialog
    from envdesk.gui.main_window import EXPORT_FILTERS, MainWindow, named_for_format
    paths = AppPaths(tmp_path / "cfg")
    ClusterStore(paths).add(ClusterProfile(name="hpc", host="login.example.org", user="me"))
    window = MainWindow(paths)
    qtbot.addWidget(window)
    dialog = ClusterDialog(window.controller, ClusterStore(paths).get("hpc"), parent=window)
    qtbot.addWidget(dialog)
    assert dialog.conda.solver.currentData() == "auto" and not dialog.conda.group.isChecked()
    dialog.conda.group.setChecked(True)
    dialog.conda.solver.setCurrentIndex(dialog.conda.solver.findData("libmamba"))
    dialog.conda.channels.setText("conda-forge; rm -rf ~")
    dialog.save()
    assert "not a conda channel" in dialog.error.text()
    dialog.conda.channels.setText("conda-forge  https://conda.example.org/bioconda")
    dialog.save()
    saved = ClusterStore(paths).get("hpc")
    assert (saved.conda_solver, saved.conda_channels) == ("libmamba", ["conda-forge", "https://conda.example.org/bioconda"])
    again = ClusterDialog(window.controller, saved, parent=window)
    qtbot.addWidget(again)
    assert again.conda.group.isChecked() and again.conda.channels.text() == "conda-forge https://conda.example.org/bioconda"
    assert ("conda-history", "environment.yml") in EXPORT_FILTERS.values()
    assert named_for_format(tmp_path / "sci.envdesk.yaml", "conda-history", "environment.yml").name == \
        "sci-environment-from-history.yml"
    make_conda_prefix(home / "venvs" / "sci", [conda_record("numpy", "1.26.4", "py311h64a7726_0")],
                      history_block("2024-02-12 10:31:02", "conda create -p sci numpy", specs=["numpy"]),
                      python="%d.%d.%d" % sys.version_info[:3])
    window.controller.refresh("local")

    def listed_sci():   # the window's own first refresh may end before the prefix was made: wait for this one
        inventory = window.controller.inventory("local")
        return next((e for e in inventory.environments if e.name == "sci"), None) if inventory else None

    qtbot.waitUntil(lambda: listed_sci() is not None, timeout=60_000)
    env = listed_sci()
    out = tmp_path / "sci-environment.yml"
    window.export_to("local", env, out, "conda-history")
    qtbot.waitUntil(out.exists, timeout=60_000)
    assert yaml.safe_load(out.read_text())["dependencies"] == ["numpy"]


def test_a_range_in_condas_bracket_form_survives_the_history_and_its_export(conda, tmp_path, home):
    """T21 HIGH-2: conda writes a history line as Python writes a list of strings (history.write_specs), so a
    spec holding quotes, numpy[version='>=1.26,<2'], is written in double quotes; the stand-in wrote it in single
    quotes, and the listing, failing to read that line, split it at its commas: the conda-history export held
    `'numpy[version=''>'` and `<2']`. Referee: rattler (a conda implementation) reads every exported entry, and
    numpy's asks what the file asked."""
    import rattler
    from test_conda_match_specs import same_ask
    cluster = conda
    config = tmp_path / "cfg"
    config_for(config, cluster, conda_channels=["conda-forge"])
    name = unique("bracket")
    asked = "numpy[version='>=1.26,<2']"
    source = tmp_path / "environment.yml"
    source.write_text(f"name: {name}\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - \"{asked}\"\n")
    made = run_cli("env", "import", cluster.name, str(source), "--yes", config=config, home=home)
    assert made.returncode == 0, made.stderr
    history = (cluster.home / "venvs" / name / "conda-meta" / "history").read_text()
    assert f'"{asked}"' in history, "written as Python writes the list: conda's own form"
    out = tmp_path / "exported.yml"
    exported = run_cli("env", "export", cluster.name, name, "--format", CONDA_HISTORY, "-o", str(out),
                       config=config, home=home)
    assert exported.returncode == 0, exported.stderr
    dependencies = [d for d in yaml.safe_load(out.read_text())["dependencies"] if isinstance(d, str)]
    read = [rattler.MatchSpec(d, strict=False) for d in dependencies]
    [numpy] = [spec for spec in read if spec.name.normalized == "numpy"]
    assert same_ask(numpy, rattler.MatchSpec("numpy>=1.26,<2", strict=False)), dependencies


def test_a_file_whose_channels_say_only_nodefaults_is_refused_by_its_dry_run(conda, tmp_path, home):
    """T21: the dry run said it would build, and only the build refused 'nodefaults' alone (conda would have
    nowhere to install from). Referee: the stand-in's record of calls: conda is never run."""
    cluster = conda
    config = tmp_path / "cfg"
    config_for(config, cluster)
    source = tmp_path / "environment.yml"
    source.write_text("name: nd\nchannels:\n  - nodefaults\ndependencies:\n  - python=3.11\n  - numpy\n")
    before = len(calls(cluster))
    planned = run_cli("env", "import", cluster.name, str(source), "--dry-run", "--json", config=config, home=home)
    plan = json.loads(planned.stdout)
    assert planned.returncode != 0 and "nodefaults" in (plan["blocked"] or ""), (planned.stdout, planned.stderr)
    assert len(calls(cluster)) == before
