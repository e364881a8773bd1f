"""A package made for another Python than its environment's is named after the change that brought it.

uv installs a wheel from a folder of wheels (a cluster's wheelhouse, given with --find-links) whatever Python its
Requires-Python states (astral-sh/uv#5475, T11's HIGH finding), where pip refuses it. The referees: uv's own
freeze (what is installed), pip's refusal of the same wheel for the environment's Python, and the Python in the
environment.
"""
from __future__ import annotations

import shlex

import pytest

from envdesk_fixtures import cli_json, run_cli, unique

NOTE = "states that it needs Python"


def pip_refuses(cluster, requirement: str, python: str) -> str:
    """pip's own answer for the wheel, judged for `python`: its error text (empty when it would take it)."""
    folder = f"/tmp/pip-fit-{unique('d')}"
    said = cluster.run_as_user(
        f"python3 -m pip download --disable-pip-version-check --no-deps --no-index --only-binary=:all: "
        f"--find-links {shlex.quote(str(cluster.wheelhouse))} --python-version {shlex.quote(python)} "
        f"-d {folder} {shlex.quote(requirement)}; said=$?; rm -rf {folder}; exit $said", check=False)
    return said.stderr if said.returncode != 0 else ""


def test_a_wheel_uv_installs_for_another_python_is_named_with_what_to_do(testbed, session, home):
    alpha = testbed.clusters["alpha"]
    config = session.paths.config_dir
    name = unique("fit")
    made = run_cli("env", "create", "alpha", name, "--kind", "uv", "--package", "tinyold==1.0",
                   config=config, home=home)
    assert made.returncode == 0, made.stderr
    shown = cli_json("env", "show", "alpha", name, config=config, home=home)
    python = shown["python"]
    frozen = alpha.run_as_user(f"module load {alpha.uv_module} && uv pip freeze --python "
                               f"{shlex.quote(shown['path'])}/bin/python").stdout.split()
    assert "tinyold==1.0" in frozen, "uv installed it"
    refused = pip_refuses(alpha, "tinyold==1.0", python)
    assert "Requires-Python" in refused or "requires a different Python" in refused, refused
    assert (f"note: tinyold 1.0 {NOTE} <3.11, but {name} has Python {python}, so it may fail when imported"
            in made.stderr), made.stderr
    assert "--add 'tinyold!=1.0'" in made.stderr
    # ... and said again wherever the environment is shown, not only once after the change (T12)
    again = run_cli("env", "show", "alpha", name, config=config, home=home)
    assert f"Warning:  tinyold 1.0 is made for Python <3.11, not {python}" in again.stdout, again.stdout

    # a change that does not bring it does not say it again (R9)
    other = run_cli("env", "update", "alpha", name, "--add", "tinygamma", config=config, home=home)
    assert other.returncode == 0, other.stderr
    assert NOTE not in other.stderr, other.stderr

    # the advice works: uv then picks a version made for this Python, which pip takes too; nothing is said
    advised = run_cli("env", "update", "alpha", name, "--add", "tinyold!=1.0", config=config, home=home)
    assert advised.returncode == 0, advised.stderr
    assert NOTE not in advised.stderr, advised.stderr
    frozen = alpha.run_as_user(f"module load {alpha.uv_module} && uv pip freeze --python "
                               f"{shlex.quote(shown['path'])}/bin/python").stdout.split()
    fixed = next(line for line in frozen if line.startswith("tinyold=="))
    assert pip_refuses(alpha, fixed, python) == "", fixed
    assert "Warning:" not in run_cli("env", "show", "alpha", name, config=config, home=home).stdout


def test_the_windows_overview_says_it_of_an_environment_shown_in_detail(testbed, session, home, qtbot):
    """The window's Overview names the package in its State once the environment's details are read (the same
    uv-made environment; pip's refusal is the referee)."""
    from envdesk.backend.operations.listing import show_environment
    from envdesk.gui.details_panel import DetailsPanel
    alpha = testbed.clusters["alpha"]
    name = unique("fitw")
    made = run_cli("env", "create", "alpha", name, "--kind", "uv", "--package", "tinyold==1.0",
                   config=session.paths.config_dir, home=home)
    assert made.returncode == 0, made.stderr
    env = show_environment(session, "alpha", name)
    assert "requires a different Python" in pip_refuses(alpha, "tinyold==1.0", env.python)
    panel = DetailsPanel()
    qtbot.addWidget(panel)
    panel.show_environment(env)
    assert panel.fields["state"].text() == f"may not work: tinyold 1.0 is made for Python <3.11, not {env.python}"


# Requires-Python as real packages state it (numpy, requests, typing, six, attrs, old pandas...), and Pythons
REAL_REQUIRES_PYTHON = [">=3.8", ">=3.9", ">=3.10", ">=3.7,<4", ">=3.6, <4", ">= 3.9", ">=3.8,<3.13", "<3.11",
                        ">=3.11.4", ">=3.12", "!=3.0.*,!=3.1.*,!=3.2.*,>=2.7", ">=2.7, !=3.0.*, <3.5", "~=3.8",
                        ">=3.9.0", "<4.0,>=3.8.1", ">3.8", "==3.11.*", ">=3", "<4"]
PYTHONS = ["3.8.18", "3.9.0", "3.10.12", "3.11.2", "3.11.4", "3.11.7", "3.12.1", "3.13.0"]


@pytest.mark.parametrize("python", PYTHONS)
def test_the_quick_look_never_admits_what_packaging_refuses(python):
    """A create need not load packaging where every Requires-Python is a plain bound (the CLI's start is counted:
    issue 11); where the quick look says a package surely fits, packaging (pip's judge) must agree."""
    from packaging.specifiers import SpecifierSet
    from envdesk.backend.inventory import _surely_admits
    for spec in REAL_REQUIRES_PYTHON:
        if _surely_admits(spec, python):
            assert SpecifierSet(spec).contains(python, prereleases=True), (spec, python)
    assert sum(_surely_admits(spec, python) for spec in REAL_REQUIRES_PYTHON) > 3  # it does spare the common ones
