"""Round trips are exact: export, then import (same cluster under another name, and the other cluster),
and the copy holds the same packages at the same versions and VCS commits.

The source environments are made the way a user makes them (the cluster's own python -m venv,
virtualenv or uv, then pip or uv install), holding a wheel from the wheelhouse, a git install at an
old commit (the branch has moved on since) and an editable project. The referee is the installers'
own `pip freeze` / `uv pip freeze`, never EnvDesk's reading.
"""
from __future__ import annotations

import shlex
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from envdesk.backend.errors import EnvDeskError, InvalidInput
from envdesk.backend.operations.export import export_environment
from envdesk.backend.operations.importing import (check_availability, import_environment, plan_import,
                                                  read_spec_file)
from envdesk_fixtures import MODULES, freeze, freeze_here, unique
from testbed.projects import add_commit, make_project

@pytest.fixture(scope="module")
def projects(testbed):
    """On each cluster: a git project installed at its first commit (the branch is at 2.0 now), and an
    editable project."""
    made = {}
    for name in ("alpha", "beta"):
        cluster = testbed.clusters[name]
        suffix = uuid.uuid4().hex[:5]
        vcs = make_project(cluster, f"rtvcs{suffix}", "1.0", git=True)
        add_commit(cluster, vcs, "2.0")
        editable = make_project(cluster, f"rted{suffix}", "0.5", git=False)
        made[name] = (vcs, editable)
    return made


def make_source(cluster, kind: str, vcs, editable) -> str:
    """An environment made by hand, as the cluster's documentation tells users to."""
    path = f"{cluster.home}/venvs/{unique('src-' + kind)}"
    find = " ".join(shlex.quote(a) for a in cluster.pip_args)
    packages = f"tinybeta {shlex.quote(vcs.pip_url())} -e {shlex.quote(editable.path)}"
    make = {"venv": f"python3 -m venv {path} && {path}/bin/pip install -q {find} {packages}",
            "virtualenv": f"virtualenv -q {path} && {path}/bin/pip install -q {find} {packages}",
            "uv": f"uv venv -q {path} && uv pip install -q --python {path}/bin/python {find} {packages}"}[kind]
    cluster.run_as_user(f"module load {MODULES[cluster.name]} >/dev/null 2>&1; set -e; {make}")
    return path


CASES = [("alpha", "uv"), ("alpha", "venv"), ("alpha", "virtualenv"), ("beta", "venv"), ("beta", "virtualenv")]


@pytest.mark.parametrize("cluster_name,kind,fmt", [*((c, k, "requirements") for c, k in CASES),
                                                    ("alpha", "uv", "envdesk"), ("beta", "virtualenv", "envdesk")])
def test_export_then_import_on_the_same_cluster_is_exact(testbed, session, projects, tmp_path, cluster_name,
                                                         kind, fmt):
    cluster = testbed.clusters[cluster_name]
    vcs, editable = projects[cluster_name]
    source = make_source(cluster, kind, vcs, editable)
    before = freeze(cluster, source)
    assert f"{vcs.name} @ {vcs.vcs_url()}" in before, before  # the old commit, not the branch head
    assert f"-e {editable.path}" in before
    exported = tmp_path / ("requirements.txt" if fmt == "requirements" else "env.envdesk.yaml")
    exported.write_text(export_environment(session, cluster_name, source, fmt))
    copy = import_environment(session, cluster_name, read_spec_file(exported), name=unique("copy"))
    assert freeze(cluster, copy.environment.path) == before


def test_a_copy_to_the_other_cluster_refuses_the_editable_whose_folder_is_not_there(testbed, session, projects,
                                                                                    tmp_path):
    alpha = testbed.clusters["alpha"]
    vcs, editable = projects["alpha"]
    source = make_source(alpha, "venv", vcs, editable)
    exported = tmp_path / "requirements.txt"
    exported.write_text(export_environment(session, "alpha", source, "requirements"))
    plan = plan_import(session, "beta", read_spec_file(exported))
    refused = {r.line: r.reason for r in plan.refused}
    assert f"-e {editable.path}" in refused and "does not exist on beta" in refused[f"-e {editable.path}"]
    assert "tinybeta==1.0" in plan.pins and not any(editable.path in line for line in plan.pins)


@pytest.mark.parametrize("cluster_name", ["alpha", "beta"])
def test_a_variable_in_a_url_is_filled_in_on_the_cluster_as_the_installer_does(testbed, session, projects, tmp_path,
                                                                              cluster_name):
    """${HOME} (set in every login shell) in a git URL: uv on alpha and pip on beta fill it in when they read
    the line from a requirements file, and their freeze shows the folder it became."""
    cluster = testbed.clusters[cluster_name]
    vcs, _ = projects[cluster_name]
    url = vcs.vcs_url()
    assert url.startswith(f"git+file://{cluster.home}/"), url
    (tmp_path / "requirements.txt").write_text(
        f"tinybeta\n{vcs.name} @ {url.replace(f'git+file://{cluster.home}/', 'git+file://${HOME}/')}\n")
    spec = read_spec_file(tmp_path / "requirements.txt")
    plan = plan_import(session, cluster_name, spec)
    assert [note for note in plan.notes if "fills in ${HOME}" in note and f"login shell on {cluster_name}" in note]
    name = unique("vars")
    with pytest.raises(InvalidInput, match=r"use \$\{HOME\}, which the installer fills in"):
        import_environment(session, cluster_name, spec, name=name)  # what is sent is the user's to agree to
    copy = import_environment(session, cluster_name, spec, name=name, agreed=True)
    assert f"{vcs.name} @ {url}" in freeze(cluster, copy.environment.path)

    # the app's check of what the cluster can provide takes the line as the install does (beta's pip is older
    # than 24.1, which refuses 'name @ git+file:///…': review R3 found the check saying it was missing)
    (tmp_path / "plain.txt").write_text(f"{vcs.name} @ {url}\n")
    assert check_availability(session, cluster_name, plan_import(session, cluster_name,
                                                                 read_spec_file(tmp_path / "plain.txt"))) == []

    # a wheel file named by ${HOME} is looked for on the cluster with the variable filled in (a user trial found
    # it refused as this computer's file), and installed from there
    wheel = next(Path(cluster.wheelhouse).glob("tinygamma-0.1-*.whl"))
    cluster.run_as_user(f"mkdir -p ~/wheels && cp {shlex.quote(str(wheel))} ~/wheels/")
    (tmp_path / "file.txt").write_text(f"tinygamma @ file://${{HOME}}/wheels/{wheel.name}\n"
                                       "tinyold @ file://${HOME}/nowhere/tinyold-1.2-py3-none-any.whl\n")
    planned = plan_import(session, cluster_name, read_spec_file(tmp_path / "file.txt"))
    assert [r.line.split(" @ ")[0] for r in planned.refused] == ["tinyold"], planned.refused
    assert f"does not exist on {cluster_name}" in planned.refused[0].reason
    with_file = import_environment(session, cluster_name, read_spec_file(tmp_path / "file.txt"),
                                   name=unique("file"), agreed=True)
    assert f"tinygamma @ file://{cluster.home}/wheels/{wheel.name}" in freeze(cluster, with_file.environment.path)

    token = "tool @ git+https://${GITHUB_TOKEN}@github.example/lab/tool@v1"  # the note names it, the URL shown bare
    (tmp_path / "token.txt").write_text(token + "\n")
    notes = plan_import(session, cluster_name, read_spec_file(tmp_path / "token.txt")).notes
    assert [note for note in notes if "fills in ${GITHUB_TOKEN}" in note and "tool @ git+https://github.example/"
            in note], notes


def test_wheels_copy_exactly_to_the_other_cluster(testbed, session, tmp_path):
    alpha, beta = testbed.clusters["alpha"], testbed.clusters["beta"]
    path = f"{alpha.home}/venvs/{unique('plain')}"
    find = " ".join(shlex.quote(a) for a in alpha.pip_args)
    alpha.run_as_user(f"module load {MODULES['alpha']} >/dev/null 2>&1; set -e; python3 -m venv {path} && "
                      f"{path}/bin/pip install -q {find} tinybeta tinyalpha==1.1 tinygamma")
    before = freeze(alpha, path)
    for fmt in ("requirements", "envdesk", "conda"):
        exported = tmp_path / {"requirements": "r.txt", "envdesk": "e.yaml", "conda": "environment.yml"}[fmt]
        exported.write_text(export_environment(session, "alpha", path, fmt))
        spec = read_spec_file(exported)
        if fmt == "conda":
            spec.kind = "venv"  # beta has no conda: the pip: part is what travels
        copy = import_environment(session, "beta", spec, name=unique("x" + fmt[:3]))
        assert freeze(beta, copy.environment.path) == before, fmt


def test_pylock_export_is_valid_pep_751_and_imports_back_exactly_on_both_clusters(testbed, session, tmp_path):
    """The lock is checked by PyPA's own reader (packaging.pylock), installed by another installer (uv pip install
    -r pylock.toml into a fresh uv venv here, offline: only the lock's own files) and imported with its hashes;
    the referee for each environment made is its installer's freeze, which must equal the source's."""
    import tomllib

    from packaging.pylock import Pylock

    alpha, beta = testbed.clusters["alpha"], testbed.clusters["beta"]
    path = f"{alpha.home}/venvs/{unique('lock')}"
    find = " ".join(shlex.quote(a) for a in alpha.pip_args)
    alpha.run_as_user(f"module load {MODULES['alpha']} >/dev/null 2>&1; set -e; uv venv -q {path} && "
                      f"uv pip install -q --python {path}/bin/python {find} tinybeta tinygamma")
    before = freeze(alpha, path)
    text = export_environment(session, "alpha", path, "pylock")
    lock = Pylock.from_dict(tomllib.loads(text))
    assert {(str(p.name), str(p.version)) for p in lock.packages} == {
        (line.split("==")[0], line.split("==")[1]) for line in before}
    assert all(p.wheels and all(w.hashes for w in p.wheels) for p in lock.packages)
    exported = tmp_path / "pylock.toml"
    exported.write_text(text)
    fresh = tmp_path / "fresh"
    subprocess.run(["uv", "venv", "-q", "--python", sys.executable, str(fresh)], check=True, timeout=300)
    subprocess.run(["uv", "pip", "install", "-q", "--offline", "--python", str(fresh / "bin" / "python"),
                    "-r", str(exported)], check=True, timeout=300)
    assert freeze_here(fresh) == before
    spec = read_spec_file(exported)
    assert len(spec.hashed) == len(before)
    for cluster in (alpha, beta):
        copy = import_environment(session, cluster.name, spec, name=unique("fromlock"))
        assert freeze(cluster, copy.environment.path) == before, cluster.name


def test_a_pylock_for_a_python_the_target_lacks_is_refused_as_uv_refuses_it(testbed, session, tmp_path):
    """F10: EnvDesk built a Python 3.11 environment from a lock whose requires-python is '>=3.13', which uv refuses
    to install. The referee: uv itself, installing the same lock into a Python 3.11 environment; and the target's
    folder, where nothing is made."""
    import re
    alpha = testbed.clusters["alpha"]
    path = f"{alpha.home}/venvs/{unique('lock')}"
    find = " ".join(shlex.quote(a) for a in alpha.pip_args)
    alpha.run_as_user(f"module load {MODULES['alpha']} >/dev/null 2>&1; set -e; uv venv -q {path} && "
                      f"uv pip install -q --python {path}/bin/python {find} tinyalpha")
    text = export_environment(session, "alpha", path, "pylock")
    later = tmp_path / "pylock.toml"
    later.write_text(re.sub(r'(?m)^requires-python = ".*"$', 'requires-python = ">=3.13"', text))
    assert 'requires-python = ">=3.13"' in later.read_text()
    fresh = tmp_path / "fresh"
    subprocess.run(["uv", "venv", "-q", "--python", sys.executable, str(fresh)], check=True, timeout=300)
    by_uv = subprocess.run(["uv", "pip", "install", "-q", "--offline", "--python", str(fresh / "bin" / "python"),
                            "-r", str(later)], capture_output=True, text=True, timeout=300)
    assert by_uv.returncode != 0 and "3.13" in by_uv.stderr, by_uv.stderr
    name = unique("later")
    with pytest.raises(EnvDeskError) as refused:
        import_environment(session, "alpha", read_spec_file(later), name=name)
    assert "3.13" in refused.value.message, refused.value.message
    assert not (alpha.home / "venvs" / name).exists()


def test_pylock_export_keeps_an_editable_folder_and_a_commit_and_imports_back_exactly(testbed, session, projects,
                                                                                      tmp_path):
    """An editable install was refused ("A pylock.toml cannot hold these"), though PEP 751 has a directory entry
    with `editable = true`. Referees: PyPA's reader (packaging.pylock) for the file, the cluster's pip freeze for
    the environment built from it."""
    import tomllib

    from packaging.pylock import Pylock

    alpha = testbed.clusters["alpha"]
    vcs, editable = projects["alpha"]
    source = make_source(alpha, "uv", vcs, editable)
    before = freeze(alpha, source)
    assert f"-e {editable.path}" in before
    text = export_environment(session, "alpha", source, "pylock")
    lock = Pylock.from_dict(tomllib.loads(text))
    folders = [(str(p.name), str(p.directory.path), p.directory.editable) for p in lock.packages if p.directory]
    assert folders == [(editable.name, editable.path, True)], text
    assert [p.vcs.commit_id for p in lock.packages if p.vcs] == [vcs.commit], text
    exported = tmp_path / "pylock.toml"
    exported.write_text(text)
    copy = import_environment(session, "alpha", read_spec_file(exported), name=unique("edlock"))
    assert freeze(alpha, copy.environment.path) == before
