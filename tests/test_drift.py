"""Drift between two environments (`envdesk env diff`, the window's Compare with…), and making one like the other.

The referee for what each environment holds is `pip freeze --all` run on it (on this computer with the test
runner's pip, on a cluster with the environment's own), never EnvDesk's listing: the expected differences are
computed from what pip says.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from envdesk_fixtures import canon, make_config, run_cli, unique
from test_export_referee import dist_info  # an installed distribution as pip records one

sys.path.insert(0, str(Path(__file__).parent / "testbed"))
from wheels import WHEELS, build_wheel  # noqa: E402

INSTALLERS = {"pip", "setuptools", "wheel", "distribute"}


def parse_freeze(text: str) -> dict[str, str]:
    """{normalized name: version} for what pip pins by version; the whole line ('-e FOLDER', 'NAME @ URL') for
    the rest (an editable install's name is in the comment pip writes above it)."""
    frozen: dict[str, str] = {}
    editable = ""
    for line in (raw.strip() for raw in text.splitlines()):
        named = re.search(r"\(([A-Za-z0-9._-]+)==[^)]*\)$", line) if line.startswith("#") else None
        if named:
            editable = named.group(1)
        elif line.startswith("-e "):
            frozen[canon(editable)] = line
        elif "==" in line and not line.startswith("#"):
            name, _, version = line.partition("==")
            frozen[canon(name)] = version
        elif " @ " in line:
            frozen[canon(line.partition(" @ ")[0])] = line
    return frozen


def local_freeze(env: Path) -> dict[str, str]:
    """The referee on this computer: pip (the test runner's) reading the environment's site-packages."""
    site = next(env.glob("lib/python*/site-packages"))
    result = subprocess.run([sys.executable, "-B", "-m", "pip", "freeze", "--all", "--path", str(site)],
                            capture_output=True, text=True, check=True, timeout=120)
    return parse_freeze(result.stdout)


def expected_drift(a: dict[str, str], b: dict[str, str]) -> dict[str, set[str]]:
    """What the referee's two freezes say differs, by normalized name."""
    return {"only_in_a": set(a) - set(b), "only_in_b": set(b) - set(a),
            "different": {name for name in set(a) & set(b) if a[name] != b[name]}}


def reported_drift(shown: dict) -> dict[str, set[str]]:
    return {"only_in_a": {canon(p["name"]) for p in shown["only_in_a"]},
            "only_in_b": {canon(p["name"]) for p in shown["only_in_b"]},
            "different": {canon(d["name"]) for d in shown["different"]}}


def pinned(frozen: dict[str, str]) -> dict[str, str]:
    """The packages pip pins by version, without the installers' own."""
    return {name: version for name, version in frozen.items()
            if name not in INSTALLERS and not version.startswith("-e ") and " @ " not in version}


def uv_install(env: Path, wheels: Path, *specs: str) -> None:
    subprocess.run(["uv", "pip", "install", "--python", str(env / "bin" / "python"), "--no-index", "--find-links",
                    str(wheels), *specs], check=True, capture_output=True, timeout=300)


def two_local_envs(folder: Path, envs: Path) -> dict[str, Path]:
    """`here` and `there` in `envs`, made with the stdlib's venv and filled by uv from a wheel store at
    folder/wheels. Both hold Tiny_Delta 3.0 (spelled tiny.delta there), they differ in tinyalpha, only `here`
    has tinybeta and tinygamma, only `there` has tinyold; `here` also holds an editable install and a git
    install, recorded as pip records them (this computer has no network and no build backend)."""
    wheels = folder / "wheels"
    wheels.mkdir(exist_ok=True)
    for spec in WHEELS:
        build_wheel(wheels, spec)
    made = {}
    for name in ("here", "there"):
        made[name] = envs / name
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(made[name])], check=True, timeout=300)
    uv_install(made["here"], wheels, "tinyalpha==1.1", "tinybeta==1.0", "tinygamma==0.1")
    uv_install(made["there"], wheels, "tinyalpha==2.0", "tinyold==1.2")
    here_site, there_site = (next(made[n].glob("lib/python*/site-packages")) for n in ("here", "there"))
    (folder / "src" / "tinyedit").mkdir(parents=True)
    dist_info(here_site, "tinyedit", "0.1", {"url": (folder / "src" / "tinyedit").as_uri(),
                                             "dir_info": {"editable": True}})
    dist_info(here_site, "tinyvcs", "0.2", {"url": "https://git.example.org/lab/tinyvcs.git",
                                            "vcs_info": {"vcs": "git", "commit_id": "0f" * 20}})
    dist_info(here_site, "Tiny_Delta", "3.0")
    dist_info(there_site, "tiny.delta", "3.0")
    return made


@pytest.fixture
def local(tmp_path):
    """Two real venvs on This computer, a fresh config folder that installs from the wheel store, and a HOME
    of their own."""
    envs, config, home = tmp_path / "envs", tmp_path / "config", tmp_path / "home"
    made = two_local_envs(tmp_path, envs)
    config.mkdir()
    home.mkdir()
    (config / "clusters.yaml").write_text(json.dumps({"local": {"env_roots": [str(envs)], "pip_args": [
        "--no-index", "--find-links", str(tmp_path / "wheels")]}}))

    class Local:
        paths = made

        @staticmethod
        def cli(*args: str) -> subprocess.CompletedProcess:
            return run_cli(*args, config=config, home=home)

    return Local


def test_diff_lists_what_pip_freeze_says_differs(local):
    here, there = (local_freeze(local.paths[name]) for name in ("here", "there"))
    result = local.cli("env", "diff", "local:here", "local:there", "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert reported_drift(shown) == expected_drift(here, there)
    assert {"tinyedit", "tinyvcs", "tinygamma", "tinybeta"} <= expected_drift(here, there)["only_in_a"]
    assert "tiny-delta" in here and "tiny-delta" in there and shown["same"] == 1  # Tiny_Delta is tiny.delta
    assert set(shown) == {"a", "b", "identical", "same", "only_in_a", "only_in_b", "different", "notes"}
    assert shown["identical"] is False and shown["notes"] == []
    assert {key: shown["a"][key] for key in ("target", "name", "path", "kind")} == {
        "target": "local", "name": "here", "path": str(local.paths["here"]), "kind": "venv"}
    sides = [*((p, here) for p in shown["only_in_a"]), *((p, there) for p in shown["only_in_b"]),
             *((d["a"], here) for d in shown["different"]), *((d["b"], there) for d in shown["different"])]
    for package, frozen in sides:
        assert set(package) == {"name", "version", "source", "url"}
        line = frozen[canon(package["name"])]
        assert package["source"] == ("editable" if line.startswith("-e ") else "vcs" if " @ git+" in line
                                     else "index")
        if package["source"] == "index":
            assert package["version"] == line
    plain = local.cli("env", "diff", "local:here", "local:there")
    assert plain.returncode == 0, plain.stderr
    assert re.search(r"^tinyalpha\s+1\.1\s+2\.0$", plain.stdout, re.MULTILINE)
    same = local.cli("env", "diff", "local:here", f"local:{local.paths['here']}", "--json")
    assert same.returncode == 0 and json.loads(same.stdout)["identical"] is True


def test_a_sites_own_build_of_the_same_release_is_said_to_be_one(local):
    """T20: env diff counted numpy 1.26.4+computecanada against 1.26.4 as "another version", not saying it is the
    same release built by the site. The referee: pip freeze of both (they differ) and PEP 440's public version
    of each, as packaging reads it (the same)."""
    from packaging.version import Version
    for name, version in (("here", "1.26.4+computecanada"), ("there", "1.26.4")):
        dist_info(next(local.paths[name].glob("lib/python*/site-packages")), "numpyish", version)
    here, there = (local_freeze(local.paths[name]) for name in ("here", "there"))
    assert here["numpyish"] != there["numpyish"]
    assert Version(here["numpyish"]).public == Version(there["numpyish"]).public
    plain = local.cli("env", "diff", "local:here", "local:there")
    assert plain.returncode == 0, plain.stderr
    releases = sum(1 for name in here.keys() & there.keys() if here[name] != there[name]
                   and " @ " not in here[name] + there[name]
                   and Version(here[name]).public == Version(there[name]).public)
    assert f"({releases} of them the same release, one a site's own build of it" in plain.stdout, plain.stdout


def test_make_like_leaves_b_as_a_and_a_snapshot_reverts_it(local):
    here, before = local_freeze(local.paths["here"]), local_freeze(local.paths["there"])
    declined = local.cli("env", "diff", "local:here", "local:there", "--make-like")  # nobody to answer: no
    assert declined.returncode == 1 and "Nothing was changed" in declined.stderr
    assert local_freeze(local.paths["there"]) == before
    made = local.cli("env", "diff", "local:here", "local:there", "--make-like", "--yes", "--json")
    assert made.returncode == 0, made.stderr
    after = local_freeze(local.paths["there"])
    assert pinned(after) == pinned(here)
    not_pinnable = {name for name, line in here.items() if line.startswith("-e ") or " @ " in line}
    assert not_pinnable == {"tinyedit", "tinyvcs"}
    report = json.loads(made.stdout)["made_like"]
    assert {canon(item["name"]) for item in report["left_alone"]} == not_pinnable  # listed, not dropped unsaid
    assert not_pinnable.isdisjoint(after)
    history = local.cli("env", "history", "local", "there", "--json")
    assert [s["id"] for s in json.loads(history.stdout)] == [report["snapshot"]]
    reverted = local.cli("env", "revert", "local", "there", report["snapshot"])
    assert reverted.returncode == 0, reverted.stderr
    assert local_freeze(local.paths["there"]) == before


@pytest.mark.parametrize("a,b", [("local:../../etc", "local:here"), ("local:here", "local:$(touch {canary})"),
                                 ("$(touch {canary}):here", "local:here"), ("local", "local:here"),
                                 ("local:here", "local:here;touch {canary}")])
def test_a_hostile_reference_is_refused_before_anything_runs(local, tmp_path, a, b):
    canary = tmp_path / "canary"
    result = local.cli("env", "diff", a.format(canary=canary), b.format(canary=canary))
    assert result.returncode == 1 and result.stderr.startswith("envdesk: ")
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr
    assert "==>" not in result.stderr, "nothing was read"
    assert not canary.exists()


def cluster_freeze(cluster, path: str) -> dict[str, str]:
    """The referee on a cluster: the environment's own pip, run there as its user."""
    return parse_freeze(cluster.run_as_user(f"{path}/bin/python -m pip freeze --all").stdout)


def test_across_two_clusters_diff_and_make_like(testbed, tmp_path):
    alpha, beta = testbed.clusters["alpha"], testbed.clusters["beta"]
    config, home = tmp_path / "cfg", tmp_path / "home"
    home.mkdir()
    make_config(config, testbed, ["alpha", "beta"])
    name = unique("drift")
    a_path, b_path = f"{alpha.home}/venvs/{name}", f"{beta.home}/envs/{name}"
    for cluster, path, specs in [(alpha, a_path, "tinyalpha==1.1 tinybeta==1.0 tinygamma==0.1"),
                                 (beta, b_path, "tinyalpha==2.0 tinyold==1.2")]:
        cluster.run_as_user(f"set -e; module load {' '.join(cluster.python_modules)}; python -m venv {path}; "
                            f"{path}/bin/python -m pip install -q --no-cache-dir {' '.join(cluster.pip_args)} {specs}")
    a_freeze, b_freeze = cluster_freeze(alpha, a_path), cluster_freeze(beta, b_path)
    before = len(alpha.session_commands()), len(beta.session_commands())
    result = run_cli("env", "diff", f"alpha:{name}", f"beta:{b_path}", "--json", config=config, home=home)
    assert result.returncode == 0, result.stderr
    assert reported_drift(json.loads(result.stdout)) == expected_drift(a_freeze, b_freeze)
    assert expected_drift(a_freeze, b_freeze)["different"] >= {"tinyalpha"}
    read = len(alpha.session_commands()), len(beta.session_commands())
    assert (read[0] - before[0], read[1] - before[1]) == (1, 1), "one agent run on each cluster"

    canary = f"/tmp/envdesk-drift-{uuid.uuid4().hex[:8]}"
    hostile = run_cli("env", "diff", f"alpha:$(touch {canary})", f"beta:{name}", config=config, home=home)
    assert hostile.returncode == 1 and hostile.stderr.startswith("envdesk: ") and "Traceback" not in hostile.stderr
    assert (len(alpha.session_commands()), len(beta.session_commands())) == read, "nothing ran"
    assert not Path(canary).exists()

    made = run_cli("env", "diff", f"alpha:{name}", f"beta:{name}", "--make-like", "--yes", config=config, home=home)
    assert made.returncode == 0, made.stderr
    assert pinned(cluster_freeze(beta, b_path)) == pinned(a_freeze)
    snapshot = re.search(r"envdesk env revert beta \S+ (\S+)$", made.stdout.strip()).group(1)
    history = json.loads(run_cli("env", "history", "beta", name, "--json", config=config, home=home).stdout)
    assert [s["id"] for s in history] == [snapshot]


def test_conda_packages_and_python_are_left_alone_both_ways(testbed, session, sample_envs):
    """Making a conda environment like a uv venv never removes what conda put there (Python first); making the
    venv like the conda environment cannot pin conda's packages with pip or uv: each is listed, none dropped."""
    from envdesk.backend.operations.diff import diff_environments
    alpha = testbed.clusters["alpha"]
    conda = {canon(name) for name in sample_envs["alpha"]["sci"]["packages"]}  # every one from conda-meta
    venv = sample_envs["alpha"]["uvenv"]["packages"]
    assert venv == {"tinyalpha": "1.1"} and {"python", "numpy"} <= conda
    before = len(alpha.session_commands())
    like_venv = diff_environments(session, "alpha", "uvenv", "alpha", "sci").plan()
    assert len(alpha.session_commands()) - before == 1, "both read in one agent run"
    assert (like_venv.add, like_venv.remove) == (("tinyalpha==1.1",), ())
    assert {canon(item.name) for item in like_venv.left_alone} == conda
    like_conda = diff_environments(session, "alpha", "sci", "alpha", "uvenv").plan()
    assert (like_conda.add, like_conda.remove) == ((), ("tinyalpha",))
    assert {canon(item.name) for item in like_conda.left_alone} == conda


def test_the_compare_dialog_shows_the_referees_differences(qtbot, tmp_path, home):
    from envdesk.backend.validate import LOCAL_TARGET
    from envdesk.gui.dialogs.diff_dialog import DiffDialog
    from test_gui import finish, press_when_shown, select_env, window_on_this_computer
    config = tmp_path / "cfg"
    config.mkdir()
    (config / "clusters.yaml").write_text(json.dumps({"local": {"pip_args": [
        "--no-index", "--find-links", str(tmp_path / "wheels")]}}))
    made = two_local_envs(tmp_path, home / "venvs")
    window = window_on_this_computer(qtbot, config, home)
    select_env(qtbot, window, "here")
    assert window.compare_action.isEnabled()
    dialog = DiffDialog(window.controller, LOCAL_TARGET, window.current_environment(), parent=window)
    qtbot.addWidget(dialog)
    dialog.others.setCurrentIndex(dialog.others.findText("there"))
    assert not dialog.make_like_button.isEnabled()
    finish(qtbot, dialog.compare())
    qtbot.waitUntil(lambda: dialog.comparison is not None)
    here, there = local_freeze(made["here"]), local_freeze(made["there"])
    rows = {canon(dialog.table.item(row, 0).text()): (dialog.table.item(row, 1).text(),
                                                       dialog.table.item(row, 2).text())
            for row in range(dialog.table.rowCount())}
    expected = expected_drift(here, there)
    assert set(rows) == set().union(*expected.values())
    for name, (mine, theirs) in rows.items():
        assert (mine == "-") == (name in expected["only_in_b"]) and (theirs == "-") == (name in expected["only_in_a"])
        if name in pinned(here):
            assert mine == here[name]
        if name in pinned(there):
            assert theirs == there[name]
    assert "tinyedit" in dialog.left_alone.text() and "tinyvcs" in dialog.left_alone.text()
    assert dialog.make_like_button.text() == "Make there like this" and dialog.make_like_button.isEnabled()
    press_when_shown("Yes")
    finish(qtbot, dialog.make_like())
    assert pinned(local_freeze(made["there"])) == pinned(here)
