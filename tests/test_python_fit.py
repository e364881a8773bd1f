"""A package made for another Python than its environment's is named after the change that brought it.

uv installs a wheel from a folder of wheels (a cluster's wheelhouse, given with --find-links) whatever Python its
Requires-Python states (astral-sh/uv#5475, T11's HIGH finding), where pip refuses it. The referees: uv's own
freeze (what is installed), pip's refusal of the same wheel for the environment's Python, and the Python in the
environment.
"""
from __future__ import annotations

import shlex

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
