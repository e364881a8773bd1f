"""conda environments. Reading and exporting need no conda at all and use real conda-format prefixes.

Creating and changing them needs conda's executable, which cannot be installed here: those
tests use the STAND-IN in testbed/fake_conda.py (named as such), put on PATH the way
`conda init` does.
"""
from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
import rattler  # py-rattler, in the test extra
import yaml

from envdesk.backend import spec as specs
from envdesk.backend.operations.create import CreateRequest, create_environment
from envdesk.backend.operations.export import export_environment
from envdesk.backend.operations.history import list_snapshots, revert_environment
from envdesk.backend.operations.importing import import_environment
from envdesk.backend.operations.update import Change, update_environment
from envdesk_fixtures import make_config, session_for

STAND_IN = Path(__file__).parent / "testbed" / "fake_conda.py"


@pytest.fixture
def session(testbed, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    opened = session_for(make_config(tmp_path / "cfg", testbed, ["alpha"]))
    yield opened
    opened.close()


@pytest.fixture
def conda_stand_in(testbed):
    """Install the conda STAND-IN for alpha's user as ~/miniforge3/bin/conda, on PATH in login shells."""
    alpha = testbed.clusters["alpha"]
    script = STAND_IN.read_text()
    alpha.run_as_user("mkdir -p ~/miniforge3/bin && cat > ~/miniforge3/bin/conda && chmod 755 ~/miniforge3/bin/conda"
                      " && echo 'export PATH=\"$HOME/miniforge3/bin:$PATH\"' > ~/.bash_profile", input=script)
    yield alpha
    alpha.run_as_user("rm -rf ~/.bash_profile ~/miniforge3")  # the probe finds ~/miniforge3/bin/conda without PATH


def versions(env):
    return {p.name: p.version for p in env.packages}


def conda_lists(prefix: str) -> dict[str, str]:
    """What conda itself lists in a prefix: its conda-meta records, read by rattler (a conda implementation), not
    by EnvDesk's listing."""
    records = [rattler.PrefixRecord.from_path(path) for path in (Path(prefix) / "conda-meta").glob("*.json")]
    return {record.name.normalized: str(record.version) for record in records}


def test_export_a_conda_prefix_without_conda(testbed, sample_envs, session):
    exported = export_environment(session, "alpha", "sci", "conda")
    data = yaml.safe_load(exported)
    assert any(re.fullmatch(r"numpy=1\.26\.4=\S+", d) for d in data["dependencies"] if isinstance(d, str))
    assert any(str(d).startswith("python=3.11.2") for d in data["dependencies"])
    portable = specs.from_text(export_environment(session, "alpha", "sci", "envdesk"), "envdesk.yaml")
    assert portable.kind == "conda" and specs.Pin("numpy", "1.26.4", "conda") in [
        specs.Pin(p.name, p.version, p.source) for p in portable.pins]


def test_create_update_export_import_with_the_conda_stand_in(conda_stand_in, session):
    name = f"c-{uuid.uuid4().hex[:6]}"
    env = create_environment(session, "alpha", CreateRequest(name=name, kind="conda", python="3.11",
                                                             packages=["numpy==1.26.4"])).environment
    assert env.kind == "conda" and env.state == "ok"
    assert conda_lists(env.path)["numpy"] == "1.26.4" and versions(env)["numpy"] == "1.26.4" and env.python == "3.11.2"
    changed = update_environment(session, "alpha", name, Change(add=["tinyalpha==1.1"], remove=["numpy"]))
    assert "numpy" not in conda_lists(changed.environment.path)
    assert conda_lists(changed.environment.path)["tinyalpha"] == "1.1"
    exported = export_environment(session, "alpha", name, "conda")
    copy = import_environment(session, "alpha", specs.from_text(exported, "environment.yml"),
                              name=name + "-copy").environment
    assert copy.kind == "conda" and conda_lists(copy.path) == conda_lists(changed.environment.path)
    assert "numpy" not in conda_lists(copy.path) and conda_lists(copy.path)["tinyalpha"] == "1.1"
    revert_environment(session, "alpha", name, list_snapshots(session, "alpha", name)[0].id)
    assert conda_lists(env.path)["numpy"] == "1.26.4"


def test_conda_environments_in_condas_own_folders_can_be_changed(testbed, sample_envs, session):
    from envdesk.backend.operations.history import list_snapshots as snapshots
    assert snapshots(session, "alpha", "sci") == []  # allowed: sci lives in ~/.conda/envs, not a root


def test_a_conda_package_no_channel_has_is_named_not_the_pip_lines(conda_stand_in, session):
    """User trial T7: an environment.yml asking conda for `numpyy=1.26` (a typo) and pip for tinygamma failed with
    '1 package(s) cannot be installed on beta: tinygamma==0.1', pip's lines checked after conda's failure, and conda's
    missing package never named. Uses the conda STAND-IN (conda's executable cannot exist here), which fails with
    conda's own PackagesNotFoundError."""
    from envdesk.backend.errors import CommandFailed
    name = f"typo-{uuid.uuid4().hex[:6]}"
    spec = specs.from_text(f"name: {name}\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n"
                           "  - numpyy=1.26\n  - pip\n  - pip:\n    - tinygamma==0.1\n", "environment.yml")
    with pytest.raises(CommandFailed) as failed:
        import_environment(session, "alpha", spec, agreed=True)
    said = f"{failed.value.message} {failed.value.hint}"
    assert "numpyy=1.26" in said and "tinygamma" not in said and "cannot be installed on" not in said, said
    assert "No channel conda searched has numpyy=1.26" in failed.value.hint, said
