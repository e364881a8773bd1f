"""Packages a module puts on PYTHONPATH (user trial T20: the Alliance's scipy-stack). The test bed's alpha has such
a module (testbed.software.STACK_MODULE); an environment made with it imports the stack's packages before its own.
The referees are pip and Python themselves, run by hand on the cluster with the same modules loaded: pip list, pip
freeze, pip check, and `python -c 'import X; print(X.__version__, X.__file__)'`; never EnvDesk's own output.
"""
from __future__ import annotations

import json
import re

import pytest
from testbed.software import STACK_MODULE, STACK_PACKAGES

from envdesk_fixtures import cli_json, config_for, make_config, run_cli, unique

PYTHON = "python/3.11.5"
MODULES = [PYTHON, STACK_MODULE]


@pytest.fixture
def cc(testbed):
    """The cluster shaped like the Alliance's: python and scipy-stack modules, no uv (pip installs)."""
    return testbed.stack_cluster()


@pytest.fixture
def config(testbed, cc, tmp_path):
    folder = tmp_path / "cfg"
    make_config(folder, testbed, ["alpha", "beta"])
    config_for(folder, cc)
    return folder


@pytest.fixture
def home(tmp_path):
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


def by_hand(cluster, modules, command: str) -> str:
    """`command` run by hand on the cluster in a login shell with `modules` loaded (what a user types)."""
    return cluster.run_as_user(f"module load {' '.join(modules)} && {command}").stdout


def pip_list(cluster, env: str, modules) -> dict[str, str]:
    """Referee: pip list of the environment with its modules loaded ({name: version}, without pip's own)."""
    listed = json.loads(by_hand(cluster, modules, f"{env}/bin/python -m pip list --format=json "
                                                  "--disable-pip-version-check 2>/dev/null"))
    return {entry["name"].lower(): entry["version"] for entry in listed
            if entry["name"].lower() not in ("pip", "setuptools", "wheel")}


def own_list(cluster, env: str) -> dict[str, str]:
    """Referee: pip list of the environment's own site-packages only (pip list --path)."""
    site = cluster.run_as_user(f"ls -d {env}/lib/python3*/site-packages").stdout.strip()
    listed = json.loads(cluster.run_as_user(f"{env}/bin/python -m pip list --format=json --path {site} "
                                            "--disable-pip-version-check 2>/dev/null").stdout)
    return {entry["name"].lower(): entry["version"] for entry in listed
            if entry["name"].lower() not in ("pip", "setuptools", "wheel")}


def imported(cluster, env: str, modules, name: str) -> tuple[str, str]:
    """Referee: (version, file) of what the environment's Python imports as `name` with its modules loaded."""
    out = by_hand(cluster, modules, f"{env}/bin/python -c 'import {name}; print({name}.__version__, {name}.__file__)'")
    version, where = out.split()
    return version, where


def made(config, home, cluster: str, modules, *packages: str) -> dict:
    """A new venv on `cluster` made with `modules`, as `env show --json` gives it."""
    name = unique("stack")
    done = run_cli("env", "create", cluster, name, "--kind", "venv", *[a for m in modules for a in ("--module", m)],
                   *[a for package in packages for a in ("--package", package)], config=config, home=home)
    assert done.returncode == 0, done.stderr
    return cli_json("env", "show", cluster, name, config=config, home=home)


def commands(cluster, action) -> int:
    """How many commands `action` ran on the cluster (sshd's own count)."""
    before = len(cluster.session_commands())
    action()
    return len(cluster.session_commands()) - before


def test_show_names_what_the_modules_provide_apart_from_its_own_packages(cc, config, home):
    """T20: env show listed 6 packages where pip list, with the modules loaded, listed 14: the stack's were left
    out. Referees: pip list with the modules loaded (all that Python finds), pip list --path of the environment's
    own folder (its own), and the import of one of the stack's packages. Showing them costs no command more."""
    shown = made(config, home, "cc", MODULES, "tinygamma")
    path = shown["path"]
    provided = {p["name"]: p["version"] for found in shown["provided"] for p in found["packages"]}
    assert provided == STACK_PACKAGES, json.dumps(shown["envdesk"])
    assert {found["module"] for found in shown["provided"]} == {STACK_MODULE}
    own = {p["name"]: p["version"] for p in shown["packages"] if p["name"] not in ("pip", "setuptools", "wheel")}
    assert own == own_list(cc, path) == {"tinygamma": "0.1"}
    assert {**own, **provided} == pip_list(cc, path, MODULES)
    assert imported(cc, path, MODULES, "tinysci")[0] == provided["tinysci"]
    text = run_cli("env", "show", "cc", shown["name"], config=config, home=home).stdout
    assert re.search(rf"^Provided: +by {re.escape(STACK_MODULE)} \(.*\): .*tinysci 1\.11\.4", text, re.M), text
    plain = made(config, home, "cc", [PYTHON], "tinygamma")
    assert plain["provided"] == []
    show = [lambda name=name: run_cli("env", "show", "cc", name, config=config, home=home)
            for name in (shown["name"], plain["name"])]
    assert commands(cc, show[0]) == commands(cc, show[1])


def test_a_folder_put_on_pythonpath_at_login_is_not_taken_for_a_modules(cc, config, home):
    """Only what the modules add is theirs: a PYTHONPATH folder the login sets (the doctor's own finding) stays
    there when the modules are unloaded, and is not listed as a module's. Referee: Lmod, unloading the stack by
    hand, which takes away its folder and leaves the login's."""
    profile = cc.home / ".bash_profile"
    kept = profile.read_text() if profile.exists() else None
    cc.run_as_user("mkdir -p ~/pylib && printf 'export PYTHONPATH=$HOME/pylib\n' >> ~/.bash_profile")
    try:
        shown = made(config, home, "cc", MODULES, "tinygamma")
        left = by_hand(cc, MODULES, f"module unload {STACK_MODULE} && printf '%s' \"$PYTHONPATH\"")
    finally:
        if kept is None:
            profile.unlink()
        else:
            profile.write_text(kept)
    assert left == str(cc.home / "pylib")
    assert [(found["module"], "/scipy-stack/" in found["path"]) for found in shown["provided"]] == [(STACK_MODULE,
                                                                                                    True)]


def test_a_package_the_environment_holds_but_a_module_hides_is_said_so(cc, config, home):
    """T20: after --add numpy==1.25.2 env show listed numpy 1.25.2, while Python and pip list, with the modules
    loaded, give scipy-stack's 1.26.4. Referees: the import by hand, and pip's own folder listing."""
    shown = made(config, home, "cc", MODULES, "tinygamma")
    done = run_cli("env", "update", "cc", shown["name"], "--add", "tinyalpha==1.0", config=config, home=home)
    assert done.returncode == 0, done.stderr
    version, where = imported(cc, shown["path"], MODULES, "tinyalpha")
    assert (version, own_list(cc, shown["path"])["tinyalpha"]) == ("1.1", "1.0") and "/scipy-stack/" in where
    said = [line for line in done.stderr.splitlines() if line.startswith("note: tinyalpha 1.0 of the environment")]
    assert len(said) == 1 and f"{STACK_MODULE} puts tinyalpha {version} before it" in said[0], done.stderr
    after = cli_json("env", "show", "cc", shown["name"], config=config, home=home)
    assert after["shadowed"] == [{"name": "tinyalpha", "version": "1.0", "module": STACK_MODULE, "imported": version}]
    assert {p["name"]: p["version"] for found in after["provided"] for p in found["packages"]} == STACK_PACKAGES


def test_an_update_a_modules_package_already_satisfies_says_so(cc, config, home):
    """T20: --add pandas answered 'unchanged ... the installer had nothing to do'; pip's log said it was already
    satisfied in scipy-stack's folder, the result did not. Referee: pip install --dry-run by hand, which says the
    same, and pip's listing of the environment's own folder, which does not have it."""
    shown = made(config, home, "cc", MODULES, "tinygamma")
    done = run_cli("env", "update", "cc", shown["name"], "--add", "tinybeta", config=config, home=home)
    assert done.returncode == 0, done.stderr
    referee = by_hand(cc, MODULES, f"{shown['path']}/bin/python -m pip install --dry-run {' '.join(cc.pip_args)} "
                                   "tinybeta 2>&1")
    assert re.search(r"Requirement already satisfied: tinybeta in \S*/scipy-stack/\S* \(1\.0\)", referee), referee
    assert "tinybeta" not in own_list(cc, shown["path"])
    said = [line for line in done.stderr.splitlines() if line.startswith(f"note: {STACK_MODULE} already provides")]
    assert len(said) == 1 and "tinybeta 1.0" in said[0], done.stderr
    assert "unchanged" in done.stdout


def test_an_update_that_leaves_a_requirement_unmet_says_so_as_pip_check_does(cc, config, home):
    """M4: an update to numpy 2.1.1 while pandas needs numpy<2 was reported as plain success. The update's result
    names what pip check names, found in the installer's own command (no command more). Referee: pip check by
    hand."""
    shown = made(config, home, "cc", [PYTHON], "tinydelta")
    unbroken = commands(cc, lambda: run_cli("env", "update", "cc", shown["name"], "--add", "tinygamma",
                                            config=config, home=home))
    done: list = []
    count = commands(cc, lambda: done.append(run_cli("env", "update", "cc", shown["name"], "--add", "tinyalpha==2.0",
                                                     config=config, home=home)))
    assert done[0].returncode == 0, done[0].stderr
    referee = cc.run_as_user(f"{shown['path']}/bin/python -m pip check", check=False).stdout
    assert re.search(r"tinydelta 1\.0 has requirement tinyalpha<2, but you have tinyalpha 2\.0", referee), referee
    said = [line for line in done[0].stderr.splitlines() if line.startswith("note: The change left a package")]
    assert len(said) == 1 and "tinydelta needs tinyalpha<2, but 2.0 is installed" in said[0], done[0].stderr
    assert count == unbroken


def test_the_doctor_finds_a_package_a_module_hides(cc, config, home):
    """T20: the doctor said 'nothing wrong found' with the environment's numpy hidden by scipy-stack's: it looked
    at PYTHONPATH set at login only, never at what the environment's modules set. Referee: the import by hand."""
    shown = made(config, home, "cc", MODULES, "tinygamma")
    assert run_cli("env", "update", "cc", shown["name"], "--add", "tinyalpha==1.0", config=config,
                   home=home).returncode == 0
    findings = [f for f in cli_json("env", "doctor", "cc", shown["name"], config=config, home=home)["findings"]
                if f["code"] == "shadowed-by-module"]
    version, _ = imported(cc, shown["path"], MODULES, "tinyalpha")
    assert len(findings) == 1 and f"puts tinyalpha {version} before it" in findings[0]["detail"], findings
    assert "envdesk env update --remove tinyalpha" in findings[0]["advice"]


def test_export_lists_what_pip_freeze_lists_with_the_modules_loaded(cc, config, home):
    """T20: the export left the stack's packages out. A requirements file (and conda's environment.yml), which
    carry no modules a reader must load, list what pip freeze lists with the modules loaded (the referee); an
    envdesk.yaml keeps the environment's own pins (pip freeze of its own folder, the referee) with its modules,
    and what they provided apart."""
    shown = made(config, home, "cc", MODULES, "tinygamma")
    assert run_cli("env", "update", "cc", shown["name"], "--add", "tinyalpha==1.0", config=config,
                   home=home).returncode == 0
    path = shown["path"]
    frozen = set(by_hand(cc, MODULES, f"{path}/bin/python -m pip freeze --disable-pip-version-check").split())
    requirements = run_cli("env", "export", "cc", shown["name"], "--format", "requirements", config=config, home=home)
    assert requirements.returncode == 0, requirements.stderr
    lines = {line for line in requirements.stdout.splitlines() if line and not line.startswith("#")}
    assert lines == frozen and "tinyalpha==1.1" in lines and "tinysci==1.11.4" in lines
    site = cc.run_as_user(f"ls -d {path}/lib/python3*/site-packages").stdout.strip()
    own = set(cc.run_as_user(f"{path}/bin/python -m pip freeze --path {site} --disable-pip-version-check"
                             ).stdout.split())
    import yaml

    from envdesk.backend.spec import from_envdesk_yaml
    text = run_cli("env", "export", "cc", shown["name"], config=config, home=home).stdout
    data = yaml.safe_load(text)
    assert from_envdesk_yaml(text).provided == data["provided"]  # read back as written
    assert {f"{pin['name']}=={pin['version']}" for pin in data["pins"]} == own
    assert data["modules"] == MODULES
    assert data["provided"] == {STACK_MODULE: [f"{name}=={version}" for name, version in STACK_PACKAGES.items()]}


def test_a_copy_to_a_cluster_without_the_module_names_what_it_provided(testbed, cc, config, home):
    """T20: a copy to a cluster without scipy-stack said only 'Not available here and left out: scipy-stack/2023b';
    the copy had no scipy or matplotlib and nothing said so. Referee: the copy's Python, which cannot import the
    stack's own package, and imports the environment's own tinyalpha where the source imported the stack's."""
    shown = made(config, home, "cc", MODULES, "tinygamma", "tinyalpha==1.0")
    name = unique("copy")
    done = run_cli("env", "clone", "cc", shown["name"], "beta", "--name", name, config=config, home=home)
    assert done.returncode == 0, done.stderr
    copy = cli_json("env", "show", "beta", name, config=config, home=home)
    beta = testbed.clusters["beta"]
    lacking = [line for line in done.stderr.splitlines() if line.startswith(f"note: {STACK_MODULE} provided")]
    assert len(lacking) == 1 and "tinybeta 1.0" in lacking[0] and "tinysci 1.11.4" in lacking[0], done.stderr
    assert "tinyalpha" not in lacking[0].partition("which")[0]
    failed = beta.run_as_user(f"module load {' '.join(copy['modules'])} && {copy['path']}/bin/python -c "
                              "'import tinysci'", check=False)
    assert failed.returncode != 0 and "No module named 'tinysci'" in failed.stderr
    assert imported(beta, copy["path"], copy["modules"], "tinyalpha")[0] == "1.0"
    other = [line for line in done.stderr.splitlines() if line.startswith(f"note: Without {STACK_MODULE}")]
    assert len(other) == 1 and "tinyalpha 1.0 (not 1.1)" in other[0], done.stderr


def test_uv_installs_beside_what_a_module_provides_and_the_create_says_it_is_hidden(testbed, config, home):
    """uv (alpha's installer) does not count PYTHONPATH's packages as installed: it installs tinybeta and a
    tinyalpha into the environment, where the stack's copies are what Python imports. The create says so.
    Referee: the imports by hand."""
    alpha = testbed.clusters["alpha"]
    name = unique("uvstack")
    done = run_cli("env", "create", "alpha", name, "--kind", "uv", *[a for m in MODULES for a in ("--module", m)],
                   "--package", "tinybeta", config=config, home=home)
    assert done.returncode == 0, done.stderr
    shown = cli_json("env", "show", "alpha", name, config=config, home=home)
    for package in ("tinyalpha", "tinybeta"):
        version, where = imported(alpha, shown["path"], MODULES, package)
        assert "/scipy-stack/" in where
        own = next(p["version"] for p in shown["packages"] if p["name"] == package)
        said = [line for line in done.stderr.splitlines()
                if line.startswith(f"note: {package} {own} of the environment is not what Python imports")]
        assert len(said) == 1 and f"puts {package} {version} before it" in said[0], done.stderr


def test_the_packages_tab_shows_what_the_modules_provide_and_what_they_hide(qtbot, cc, config, home):
    """T20: the window's Packages tab listed what env show listed. It now has the stack's packages, installed by
    the module, and marks the environment's own copy the stack hides. Referee: pip list with the modules loaded,
    which lists exactly the rows not marked hidden."""
    from envdesk.backend.operations.listing import show_environment
    from envdesk.backend.paths import AppPaths
    from envdesk.gui.details_panel import DetailsPanel
    from envdesk_fixtures import session_for
    shown = made(config, home, "cc", MODULES, "tinygamma", "tinyalpha==1.0")
    session = session_for(AppPaths(config))
    try:
        env = show_environment(session, "cc", shown["name"])
    finally:
        session.close()
    panel = DetailsPanel()
    qtbot.addWidget(panel)
    panel.show_environment(env)
    model = panel.packages
    rows = [tuple(model.data(model.index(row, column)) for column in range(3)) for row in range(model.rowCount())]
    seen = {name: version for name, version, by in rows
            if "hidden by" not in by and name not in ("pip", "setuptools", "wheel")}
    assert seen == pip_list(cc, shown["path"], MODULES)
    hidden = [row for row in rows if "hidden by" in row[2]]
    assert hidden == [("tinyalpha", "1.0", f"pip, hidden by {STACK_MODULE}'s 1.1")]
    assert {row[0] for row in rows if row[2] == f"module {STACK_MODULE} (on PYTHONPATH)"} == set(STACK_PACKAGES)
    assert f"{STACK_MODULE} puts 3 on PYTHONPATH" in panel.fields["modules"].text()
    # in a narrow panel too, the column that tells the module's rows and the hidden ones from the others shows
    panel.resize(300, 420)
    panel.show()
    panel.setCurrentIndex(1)
    qtbot.waitExposed(panel)
    qtbot.wait(300)  # the columns are fitted after the resize
    assert not panel.package_table.isColumnHidden(2)
