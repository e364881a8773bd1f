"""The health check (issue 12, "Health check"): every finding is checked against what Python, the module
system and the file system themselves say, never against EnvDesk's own listing."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from envdesk_fixtures import envdesk_command, make_config, mounted_tmpfs, run_cli

sys.path.insert(0, str(Path(__file__).parent / "testbed"))
from wheels import WheelSpec, build_wheel  # noqa: E402


@pytest.fixture
def wheels(tmp_path):
    folder = tmp_path / "wheels"
    folder.mkdir()
    for name, version in [("tinygamma", "0.1"), ("tinygamma", "0.2"), ("tinyalpha", "1.0")]:
        build_wheel(folder, WheelSpec(name, version))
    return folder


def local_config(tmp_path: Path, root: Path) -> Path:
    config = tmp_path / "cfg"
    config.mkdir(exist_ok=True)
    (config / "clusters.yaml").write_text(f"local:\n  env_roots: [{json.dumps(str(root))}]\n")
    return config


def doctor(*args: str, config: Path, home: Path, extra_env: dict[str, str] | None = None) -> dict:
    env = {**os.environ, "HOME": str(home), **(extra_env or {})}
    env.pop("PYTHONNOUSERSITE", None)
    result = subprocess.run([*envdesk_command(), "--config-dir", str(config), "env", "doctor", *args, "--json"],
                            capture_output=True, text=True, env=env, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def base_python() -> str:
    """The interpreter the tests' Python was made from: `pip install --user` is refused inside a venv (CI runs
    the suite from one), and only a Python outside any venv has a user site of its own."""
    return str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}")


def install_for_user(home: Path, wheels: Path, *specs: str) -> None:
    """pip install --user into HOME/.local, by the base interpreter's own pip."""
    subprocess.run([base_python(), "-m", "pip", "install", "--user", "--no-index", "--find-links", str(wheels),
                    *specs], check=True, capture_output=True,
                   env={**{k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")},
                        "HOME": str(home)})


def python_sees(python: Path, home: Path, name: str) -> str | None:
    """The version of `name` the environment's own Python imports (None: it finds none): the referee."""
    code = ("import importlib.metadata as m, sys\ntry:\n    print(m.version(sys.argv[1]))\n"
            "except m.PackageNotFoundError:\n    print('')\n")
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([str(python), "-c", code, name], check=True, capture_output=True, text=True, env=env)
    return out.stdout.strip() or None


def uv_install(python: Path, wheels: Path, *specs: str) -> None:
    subprocess.run(["uv", "pip", "install", "--python", str(python), "--no-index", "--find-links", str(wheels),
                    *specs], check=True, capture_output=True)


def test_packages_in_the_users_local_folder_that_python_puts_first_are_found_and_moved_aside(tmp_path, home,
                                                                                                wheels):
    root = tmp_path / "envs"
    seeing = root / "seeing"     # sees the system's packages, so Python reads the user site too
    plain = root / "plain"       # a plain venv: Python turns the user site off
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(seeing)], check=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(plain)], check=True)
    for env in (seeing, plain):
        uv_install(env / "bin" / "python", wheels, "tinygamma==0.1")
    install_for_user(home, wheels, "tinygamma==0.2", "tinyalpha==1.0")
    # the referee: each environment's own Python (a venv puts its own packages before the user's)
    assert python_sees(seeing / "bin" / "python", home, "tinygamma") == "0.1"
    assert python_sees(seeing / "bin" / "python", home, "tinyalpha") == "1.0"
    assert python_sees(plain / "bin" / "python", home, "tinygamma") == "0.1"
    assert python_sees(plain / "bin" / "python", home, "tinyalpha") is None

    config = local_config(tmp_path, root)
    findings = doctor("local", config=config, home=home)["findings"]
    about = {(f["env"], f["code"]): f for f in findings}
    assert ("plain", "user-site") not in about
    found = about[("seeing", "user-site")]
    assert "added to it: tinyalpha 1.0" in found["detail"] and "tinygamma" not in found["detail"]
    short = "%d.%d" % sys.version_info[:2]
    assert found["fix"] == f"move-user-site:{short}"

    asked = run_cli("env", "doctor", "local", "--fix", found["fix"], "--json", config=config, home=home)
    assert asked.returncode == 1 and json.loads(asked.stdout)["error"].startswith("--fix with --json needs --yes")
    assert python_sees(seeing / "bin" / "python", home, "tinyalpha") == "1.0", "nothing moved without --yes"
    fixed = run_cli("env", "doctor", "local", "--fix", found["fix"], "--yes", "--json", config=config, home=home)
    assert fixed.returncode == 0, fixed.stderr
    assert json.loads(fixed.stdout)["fix"] == found["fix"]  # T24: --fix printed plain text whatever --json said
    assert python_sees(seeing / "bin" / "python", home, "tinyalpha") is None
    aside = list((home / ".local" / "lib" / f"python{short}").glob("site-packages.moved-by-envdesk-*"))
    assert len(aside) == 1 and (aside[0] / "tinygamma-0.2.dist-info").is_dir(), "moved, never deleted"
    assert not [f for f in doctor("local", config=config, home=home)["findings"] if f["code"] == "user-site"]


def test_a_python_that_is_not_a_venv_reads_the_users_packages_before_its_own(home):
    """What the conda rule rests on (a conda environment is such a Python): site.py's order, asked of the
    real base interpreter (the referee), not of EnvDesk."""
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    code = "import site, sys; print(sys.path.index(site.getusersitepackages()) < " \
           "sys.path.index(site.getsitepackages()[0]))"
    user_site = Path(subprocess.run([str(base), "-m", "site", "--user-site"], capture_output=True, text=True,
                                    env={"HOME": str(home)}).stdout.strip())
    user_site.mkdir(parents=True)
    out = subprocess.run([str(base), "-c", code], check=True, capture_output=True, text=True,
                         env={"HOME": str(home)}).stdout.strip()
    assert out == "True"


def test_conda_environments_get_the_users_packages_first(tmp_path, home):
    """In a conda environment (hand-written in conda's on-disk format: conda cannot run here) the user's
    packages replace the environment's own, and the finding says so."""
    from agent_fixtures import add_dist, conda_record, make_conda_prefix, site_packages
    short = "%d.%d" % sys.version_info[:2]
    prefix = tmp_path / "conda" / "envs" / "sci"
    make_conda_prefix(prefix, [conda_record("python", f"{short}.1"), conda_record("numpy", "1.26.4")],
                      python=f"{short}.1")
    add_dist(site_packages(prefix), "numpy", "1.26.4", installer="conda")
    user = home / ".local" / "lib" / f"python{short}" / "site-packages"
    user.mkdir(parents=True)
    add_dist(user, "numpy", "2.0.0")
    (home / ".conda").mkdir()
    (home / ".conda" / "environments.txt").write_text(str(prefix) + "\n")
    config = local_config(tmp_path, tmp_path / "envs")
    findings = doctor("local", config=config, home=home)["findings"]
    found = [f for f in findings if f["code"] == "user-site" and f["env"] == "sci"]
    assert len(found) == 1 and "replace the environment's own: numpy 2.0.0 (the environment has 1.26.4)" in \
        found[0]["detail"]


@pytest.fixture
def other_file_system(tmp_path):
    with mounted_tmpfs(tmp_path / "other-fs", "size=8m") as mount:
        yield mount


def device(path: Path) -> str:
    return subprocess.run(["stat", "-c", "%d", str(path)], check=True, capture_output=True, text=True).stdout.strip()


def test_uvs_cache_on_another_file_system_and_environments_on_scratch(tmp_path, home, other_file_system):
    root = tmp_path / "envs"
    subprocess.run(["uv", "venv", "--quiet", str(root / "fast")], check=True, capture_output=True)
    config = local_config(tmp_path, root)
    same = tmp_path / "uv-cache"
    same.mkdir()
    assert device(same) == device(root / "fast")
    findings = doctor("local", config=config, home=home, extra_env={"UV_CACHE_DIR": str(same)})["findings"]
    assert not [f for f in findings if f["code"] == "cache-elsewhere"]

    elsewhere = other_file_system / "uv-cache"
    assert device(other_file_system) != device(root / "fast")   # the referee: stat(1)
    findings = doctor("local", config=config, home=home,
                      extra_env={"UV_CACHE_DIR": str(elsewhere), "SCRATCH": str(root)})["findings"]
    codes = {(f["env"], f["code"]) for f in findings}
    assert ("fast", "cache-elsewhere") in codes
    assert ("fast", "on-scratch") in codes


PIP_CHECK_LINE = re.compile(r"^(\S+) \S+ (?:requires (\S+), which is not installed|has requirement ([^,;<>=!~ ]+).*,"
                            r" but you have)")


def pip_check(python: Path, extra_env: dict[str, str] | None = None) -> set[tuple[str, str]]:
    """The referee: (package, the package it needs) for each line of `pip check` run by the environment's
    Python (which sees what that Python sees: PYTHONPATH, the system's packages)."""
    said = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(extra_env or {})})
    pairs = {(m[1], m[2] or m[3]) for m in map(PIP_CHECK_LINE.match, said.stdout.splitlines()) if m}
    assert (said.returncode == 0) == (not pairs), said.stdout + said.stderr
    return pairs


def unmet_in(findings: list[dict], env: str) -> set[tuple[str, str]]:
    """(package, the package it needs) as the doctor's finding about `env` words them."""
    found = [f for f in findings if f["code"] == "unmet-requirements" and f["env"] == env]
    assert len(found) <= 1
    words = re.findall(r"(\S+) needs ([^,;<>=!~ ]+)", found[0]["detail"]) if found else []
    return set(words)


@pytest.mark.parametrize("checker", ["uv", "pip"])
def test_packages_that_lack_what_they_require_are_found_as_pip_check_finds_them(tmp_path, home, checker):
    """A user trial removed tinyalpha that tinybeta needs, and the doctor said nothing. It now finds what
    `pip check` finds (the referee): a package removed from under another, and one at a version another does
    not accept; a sound environment has no such finding; a package found on PYTHONPATH counts, as for pip
    (uv's check, which reads only the environment's folder, is asked only where the environment has no pip)."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for spec in [WheelSpec("tinyalpha", "1.0"), WheelSpec("tinyalpha", "2.0"),
                 WheelSpec("tinybeta", "1.0", ("tinyalpha>=1.0,<2",)), WheelSpec("tinydelta", "1.0", ("tinygamma",)),
                 WheelSpec("tinygamma", "0.1")]:
        build_wheel(wheels, spec)
    root = tmp_path / "envs"
    for name in ("broken", "sound", "on-path"):
        subprocess.run([sys.executable, "-m", "venv", str(root / name)], check=True, timeout=300)
    for name in ("broken", "sound"):
        uv_install(root / name / "bin" / "python", wheels, "tinybeta", "tinydelta")
    uv_install(root / "on-path" / "bin" / "python", wheels, "--no-deps", "tinybeta")  # what it needs is on
    on_path = tmp_path / "on-path"                                                   # PYTHONPATH, as a module's
    subprocess.run(["uv", "pip", "install", "--quiet", "--target", str(on_path), "--no-index", "--find-links",
                    str(wheels), "tinyalpha==1.0"], check=True, timeout=300)          # bundle of packages gives it
    config = local_config(tmp_path, root)
    removed = run_cli("env", "update", "local", "broken", "--remove", "tinygamma", config=config, home=home)
    assert removed.returncode == 0, removed.stderr
    notes = [line for line in removed.stderr.splitlines() if line.startswith("note: The removal left")]
    assert len(notes) == 1, removed.stderr  # the update says so itself, as pip check does (the referee)
    assert set(re.findall(r"(\S+) needs ([^,;<>=!~ ]+)", notes[0])) == pip_check(root / "broken" / "bin" / "python")
    uv_install(root / "broken" / "bin" / "python", wheels, "--no-deps", "tinyalpha==2.0")
    extra = {} if checker == "uv" else {"PATH": os.pathsep.join(
        p for p in os.environ["PATH"].split(os.pathsep) if not (Path(p) / "uv").exists())}
    if checker == "pip":
        assert not shutil.which("uv", path=extra["PATH"])
    findings = doctor("local", config=config, home=home, extra_env=extra)["findings"]
    expected = pip_check(root / "broken" / "bin" / "python")
    on_path_python = root / "on-path" / "bin" / "python"
    assert pip_check(on_path_python) == unmet_in(findings, "on-path") == {("tinybeta", "tinyalpha")}
    seeing = doctor("local", "on-path", config=config, home=home,
                    extra_env={**extra, "PYTHONPATH": str(on_path)})["findings"]
    assert pip_check(on_path_python, {"PYTHONPATH": str(on_path)}) == set()
    assert unmet_in(seeing, "on-path") == set(), "uv's check reads only the folder, not what Python sees"
    assert expected == {("tinydelta", "tinygamma"), ("tinybeta", "tinyalpha")}
    assert unmet_in(findings, "broken") == expected
    assert pip_check(root / "sound" / "bin" / "python") == unmet_in(findings, "sound") == set()


def test_condas_base_switched_on_at_login_is_found_and_switched_off(tmp_path, home):
    """conda itself cannot run here: a fake `conda` (named so) records what EnvDesk asks of it."""
    root = tmp_path / "envs"
    root.mkdir()
    (home / ".bashrc").write_text("# >>> conda initialize >>>\n# (conda's own block)\n# <<< conda initialize <<<\n")
    fake = tmp_path / "fake-conda-bin"
    fake.mkdir()
    calls = tmp_path / "conda-calls.txt"
    (fake / "conda").write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
    (fake / "conda").chmod(0o755)
    config = local_config(tmp_path, root)
    active = {"CONDA_DEFAULT_ENV": "base", "CONDA_PREFIX": "/opt/miniforge", "PATH": f"{fake}:{os.environ['PATH']}"}
    findings = doctor("local", config=config, home=home, extra_env=active)["findings"]
    base = [f for f in findings if f["code"] == "conda-base-active"]
    assert len(base) == 1 and base[0]["env"] == "" and "~/.bashrc" in base[0]["detail"]
    fixed = subprocess.run([*envdesk_command(), "--config-dir", str(config), "env",
                            "doctor", "local", "--fix", base[0]["fix"], "--yes"], capture_output=True, text=True,
                           env={**os.environ, "HOME": str(home), **active}, timeout=300)
    assert fixed.returncode == 0, fixed.stderr
    assert calls.read_text().split() == ["config", "--set", "auto_activate_base", "false"]
    assert not [f for f in doctor("local", config=config, home=home)["findings"] if f["code"] == "conda-base-active"]


def test_a_fix_that_is_not_offered_is_refused_and_changes_nothing(tmp_path, home):
    root = tmp_path / "envs"
    root.mkdir()
    config = local_config(tmp_path, root)
    canary = tmp_path / "canary"
    for fix in ["move-user-site:3.11; touch " + str(canary), f"move-user-site:$(touch {canary})", "rm -rf ~",
                "conda-base-off:x", "move-user-site:../../etc"]:
        result = run_cli("env", "doctor", "local", "--fix", fix, "--yes", config=config, home=home)
        assert result.returncode == 1 and "is not a fix EnvDesk offers" in result.stderr, (fix, result.stderr)
    unasked = run_cli("env", "doctor", "local", "--fix", "bogus", config=config, home=home)
    assert "is not a fix EnvDesk offers" in unasked.stderr and "Apply the fix" not in unasked.stdout + unasked.stderr
    assert not canary.exists()


def test_modules_recorded_that_the_cluster_no_longer_has(testbed, tmp_path):
    """On the test bed's real Lmod: an environment records a module that is then gone; `module is-avail`
    (run by the test as the cluster's user) is the referee, and the check costs two commands."""
    alpha = testbed.clusters["alpha"]
    home = tmp_path / "home"
    home.mkdir()
    config = tmp_path / "cfg"
    make_config(config, testbed, ["alpha"])
    name = f"doc-{uuid.uuid4().hex[:6]}"
    module = alpha.python_modules[0]
    made = run_cli("env", "create", "alpha", name, "--module", module, config=config, home=home)
    assert made.returncode == 0, made.stderr
    shown = json.loads(run_cli("env", "show", "alpha", name, "--json", config=config, home=home).stdout)
    meta = Path(shown["path"]) / ".envdesk" / "meta.json"
    alpha.run_as_user("python3 - <<'EOF'\nimport json\np = %r\nd = json.load(open(p))\n"
                      "d['modules'] = d['modules'] + ['Ghost/1.0']\njson.dump(d, open(p, 'w'))\nEOF" % str(meta))
    assert alpha.run_as_user(f"module is-avail {module}", check=False).returncode == 0
    assert alpha.run_as_user("module is-avail Ghost/1.0", check=False).returncode != 0
    before = len(alpha.session_commands())
    result = run_cli("env", "doctor", "alpha", name, "--json", config=config, home=home)
    assert result.returncode == 0, result.stderr
    assert len(alpha.session_commands()) - before == 2
    gone = [f for f in json.loads(result.stdout)["findings"] if f["code"] == "module-gone"]
    assert len(gone) == 1 and "Ghost/1.0" in gone[0]["detail"] and module not in gone[0]["detail"]


UPDATE_COMMANDS = 5
"""The commands of `env update --remove` from the command line, as many as before it checked what the removal
left: finding the environment, the probe, the agent's begin (lock, snapshot), the uninstall, the agent's finish."""


UV_CHECK_LINE = re.compile(r"^The package `(\S+)` requires `([^`,;<>=!~ ]+)")


@pytest.mark.parametrize("cluster_name,kind", [("alpha", "venv"), ("beta", "venv"), ("alpha", "uv")])
def test_a_package_removed_from_under_another_on_a_cluster(testbed, tmp_path, cluster_name, kind):
    """On the clusters, each environment is checked with its modules loaded, by its own pip, or by uv where it
    has no pip (alpha's uv is a module of its own: a user trial's uv environment was called sound), in the same
    command as the module check: still two commands. The cluster's own `pip check` (`uv pip check` for the uv
    environment), run by the test as its user, is the referee."""
    cluster = testbed.clusters[cluster_name]
    home = tmp_path / "home"
    home.mkdir()
    config = tmp_path / "cfg"
    make_config(config, testbed, [cluster_name])
    name = f"doc-{uuid.uuid4().hex[:6]}"
    made = run_cli("env", "create", cluster_name, name, "--kind", kind, "--package", "tinybeta", config=config,
                   home=home)
    assert made.returncode == 0, made.stderr
    before = len(cluster.session_commands())
    removed = run_cli("env", "update", cluster_name, name, "--remove", "tinyalpha", config=config, home=home)
    assert removed.returncode == 0, removed.stderr
    assert len(cluster.session_commands()) - before == UPDATE_COMMANDS, "the check rides in the uninstall's command"
    assert "ENVDESK-" not in removed.stdout + removed.stderr, removed.stderr  # the check's own lines (user trials)
    shown = json.loads(run_cli("env", "show", cluster_name, name, "--json", config=config, home=home).stdout)

    def unmet_said(text: str) -> set[tuple[str, str]]:
        """(package, what it needs) from uv's or pip's check."""
        if kind == "uv":
            return {(m[1], m[2]) for m in map(UV_CHECK_LINE.match, text.splitlines()) if m}
        return {(m[1], m[2] or m[3]) for m in map(PIP_CHECK_LINE.match, text.splitlines()) if m}

    if kind == "uv":
        said = cluster.run_as_user(f"module load {' '.join(shown['modules'])} uv && uv pip check --python "
                                   f"{shown['path']}/bin/python 2>&1", check=False).stdout
    else:
        said = cluster.run_as_user(f"module load {' '.join(shown['modules'])} && {shown['path']}/bin/python -m pip "
                                   "check", check=False).stdout
    referee = unmet_said(said)
    assert referee == {("tinybeta", "tinyalpha")}, said
    # the update itself said so (a user trial's removal said nothing), in the words the doctor uses
    notes = [line for line in removed.stderr.splitlines() if line.startswith("note: The removal left")]
    assert len(notes) == 1 and set(re.findall(r"(\S+) needs ([^,;<>=!~ ]+)", notes[0])) == referee, removed.stderr
    before = len(cluster.session_commands())
    result = run_cli("env", "doctor", cluster_name, name, "--json", config=config, home=home)
    assert result.returncode == 0, result.stderr
    assert len(cluster.session_commands()) - before == 2
    findings = json.loads(result.stdout)["findings"]
    assert unmet_in(findings, name) == referee
    # the advice's own check lists the same (T11: it named pip's in a uv environment, which has no pip)
    advice = next(f["advice"] for f in findings if f["env"] == name and f["code"] == "unmet-requirements")
    lister = re.search(r"; (.+) lists the same\.$", advice)[1]
    if lister.endswith(" in the environment"):
        lister = f"{shown['path']}/bin/{lister[:-len(' in the environment')]}"
    listed = cluster.run_as_user(f"module load {' '.join(shown['modules'])} {'uv' if kind == 'uv' else ''} && "
                                 f"{lister} 2>&1", check=False).stdout
    assert unmet_said(listed) == referee, advice
    again = run_cli("env", "update", cluster_name, name, "--remove", "tinybeta", config=config, home=home)
    assert again.returncode == 0 and "note:" not in again.stderr, again.stderr  # nothing needed it


def test_the_window_badges_what_the_check_found_and_fixes_it(qtbot, tmp_path, home, wheels):
    from PySide6.QtCore import Qt
    from test_gui import LONG, select_env, window_on_this_computer
    install_for_user(home, wheels, "tinyalpha==1.0")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages",
                    str(home / "venvs" / "seeing")], check=True)
    python = home / "venvs" / "seeing" / "bin" / "python"
    assert python_sees(python, home, "tinyalpha") == "1.0"
    window = window_on_this_computer(qtbot, tmp_path / "cfg", home, "plain")
    qtbot.waitUntil(lambda: {"seeing", "plain"} <= {env.name for env in window.env_model.environments}, timeout=LONG)
    window.check_health()
    qtbot.waitUntil(lambda: getattr(window, "health_dialog", None) is not None, timeout=LONG)
    model = window.env_model
    rows = {env.name: row for row, env in enumerate(model.environments)}
    badge = Qt.ItemDataRole.DecorationRole
    assert model.data(model.index(rows["seeing"], 0), badge) is not None
    assert model.data(model.index(rows["plain"], 0), badge) is None
    assert "tinyalpha 1.0" in window.health_dialog.list.findChildren(type(window.health_dialog.summary))[0].text()
    # T14: the Overview said 'healthy' of an environment the check had badged
    select_env(qtbot, window, "seeing")
    state = window.details.fields["state"].text()
    assert state.startswith("needs a look: Packages in ") and "Check health" in state, state
    (button,) = window.health_dialog.fix_buttons.values()
    button.click()
    qtbot.waitUntil(lambda: python_sees(python, home, "tinyalpha") is None, timeout=LONG)
    qtbot.waitUntil(lambda: not window.health_dialog.fix_buttons, timeout=LONG)
    assert "nothing wrong found" in window.health_dialog.summary.text()
    labels = window.health_dialog.list.findChildren(type(window.health_dialog.summary))
    assert any(label.accessibleName() == "What was checked" and "pip check" in label.text() for label in labels), \
        "an empty check says what it looked at (T14: a large empty box)"
    assert model.data(model.index(rows["seeing"], 0), badge) is None, "the badge goes once it is fixed"
    qtbot.waitUntil(lambda: window.details.fields["state"].text() == "healthy", timeout=LONG)


def test_an_environment_whose_python_program_was_deleted_is_found_though_its_listing_was_cached(tmp_path, home):
    """A user trial deleted an environment's bin/python after it was listed: the listing (cached on the folders
    it watches, which did not change) and the doctor both said it was fine. The referee: that python cannot
    start. The doctor looks again, says so, and the listing shows it broken from then on."""
    root = tmp_path / "envs"
    for name in ("kept", "gone"):
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / name)], check=True, timeout=300)
        for watched in [root / name / "pyvenv.cfg", *(root / name).glob("lib/python3*/site-packages")]:
            os.utime(watched, (watched.stat().st_atime, watched.stat().st_mtime - 3600))  # made an hour ago: the
    config = local_config(tmp_path, root)                                                 # listing may keep it

    def states() -> dict[str, str]:
        listed = run_cli("env", "list", "local", "--json", config=config, home=home)
        return {env["name"]: env["state"] for env in json.loads(listed.stdout)}

    assert states() == {"kept": "ok", "gone": "ok"}   # listed, and so cached
    (root / "gone" / "bin" / "python").unlink()
    with pytest.raises(FileNotFoundError):
        subprocess.run([str(root / "gone" / "bin" / "python"), "-c", "pass"], timeout=60)
    findings = doctor("local", config=config, home=home)["findings"]
    assert [(f["env"], f["code"]) for f in findings if f["code"].endswith("-gone")] == [("gone", "python-gone")]
    assert states() == {"kept": "ok", "gone": "broken"}


def test_a_package_made_for_another_python_is_found_where_pip_check_says_nothing(tmp_path, home):
    """R9/T12 leftover: the doctor said nothing of a package whose Requires-Python excludes the environment's
    Python. The referees: pip refuses that wheel for the environment's own Python, and `pip check` is silent."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    major, minor = sys.version_info[:2]
    build_wheel(wheels, WheelSpec("tinyold", "1.0", requires_python=f"<{major}.{minor}"))
    build_wheel(wheels, WheelSpec("tinygamma", "0.1", requires_python=f">={major}.{minor}"))
    root = tmp_path / "envs"
    for name in ("misfit", "fitting"):
        subprocess.run([sys.executable, "-m", "venv", str(root / name)], check=True, timeout=300)
    misfit = root / "misfit" / "bin" / "python"
    refused = subprocess.run([str(misfit), "-m", "pip", "install", "--dry-run", "--no-index", "--find-links",
                              str(wheels), "tinyold==1.0"], capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "requires a different Python" in refused.stderr, refused.stderr
    subprocess.run([str(misfit), "-m", "pip", "install", "--quiet", "--ignore-requires-python", "--no-index",
                    "--find-links", str(wheels), "tinyold==1.0", "tinygamma"], check=True, timeout=300)
    uv_install(root / "fitting" / "bin" / "python", wheels, "tinygamma")
    assert pip_check(misfit) == set(), "pip check does not judge Requires-Python"
    version = subprocess.run([str(misfit), "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, check=True).stdout.strip()

    findings = doctor("local", config=local_config(tmp_path, root), home=home)["findings"]
    found = [f for f in findings if f["code"] == "made-for-another-python"]
    assert [f["env"] for f in found] == ["misfit"], findings
    assert f"tinyold 1.0 (it states Python <{major}.{minor})" in found[0]["detail"]
    assert f"has Python {version}" in found[0]["detail"]
    assert "tinygamma" not in found[0]["detail"], "pip takes tinygamma for this Python"
    assert "--add 'tinyold!=1.0'" in found[0]["advice"]


def test_pythonpath_set_at_login_that_replaces_an_environments_package_is_found(tmp_path, home, wheels):
    """T17: a .bashrc's `export PYTHONPATH=~/pylib`, holding a tinygamma of its own, made every environment import
    that one instead of its own, and the doctor found nothing wrong. Referee: the environment's own Python, which
    imports the PYTHONPATH copy."""
    root = tmp_path / "envs"
    python = root / "uvenv" / "bin" / "python"
    subprocess.run(["uv", "venv", "-q", str(root / "uvenv")], check=True, capture_output=True)
    uv_install(python, wheels, "tinygamma==0.2")
    pylib = home / "pylib"
    (pylib / "tinygamma").mkdir(parents=True)
    (pylib / "tinygamma" / "__init__.py").write_text("__version__ = 'the pylib copy'\n")
    where = subprocess.run([str(python), "-c", "import tinygamma; print(tinygamma.__file__)"], capture_output=True,
                           text=True, check=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(pylib)}).stdout
    assert where.startswith(str(pylib)), where  # the environment's Python takes the PYTHONPATH copy
    config = local_config(tmp_path, root)
    found = doctor("local", config=config, home=home, extra_env={"PYTHONPATH": str(pylib)})["findings"]
    said = [f for f in found if f["code"] == "pythonpath"]
    assert len(said) == 1 and str(pylib) in said[0]["detail"] and "~/.bashrc" in said[0]["advice"], found
    quiet = doctor("local", config=config, home=home, extra_env={"PYTHONPATH": ""})["findings"]
    assert not [f for f in quiet if f["code"] == "pythonpath"], quiet
