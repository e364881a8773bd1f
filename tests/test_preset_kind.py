"""A cluster preset's preferred kind decides a new environment's kind and its installer (user trial T20, M3).

On the Alliance (uv not supported: virtualenv and pip), with uv in ~/.local/bin, the New dialog defaulted to uv and
virtualenv environments were installed with `uv pip`, which installed again what the scipy-stack module already
provides on PYTHONPATH (pip: "already satisfied"). The test bed's `hier` cluster has uv in ~/.local/bin and a
scipy-stack/2023b module whose folder on PYTHONPATH holds tinyalpha 1.1.

Referees: what made the environment, from its pyvenv.cfg (virtualenv writes `virtualenv = VERSION`, uv `uv =
VERSION`, venv neither); which installer installed a package, from the INSTALLER file of its dist-info (pip writes
"pip", uv "uv"); which copy Python imports, and pip freeze in the environment.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QDialogButtonBox

from envdesk_fixtures import run_cli, unique
from lmod_fixtures import lmod_spider, profile_config, python_after, pyvenv_home

MODULES = ["GCC/12.3.0", "Python/3.11.3", "scipy-stack/2023b"]


def made_by(env_path: Path) -> str:
    """What made the environment, by the keys its pyvenv.cfg holds."""
    keys = {line.split("=", 1)[0].strip() for line in (env_path / "pyvenv.cfg").read_text().splitlines()}
    return "virtualenv" if "virtualenv" in keys else "uv" if "uv" in keys else "venv"


def installed_by(env_path: Path) -> dict[str, str]:
    """{distribution: its INSTALLER} of what the environment's own site-packages holds."""
    site = next(env_path.glob("lib/python3*/site-packages"))
    return {info.name.split("-")[0].lower(): (info / "INSTALLER").read_text().strip()
            for info in site.glob("*.dist-info") if (info / "INSTALLER").exists()}


def imported_from(cluster, env_path: Path, package: str) -> str:
    return cluster.run_as_user(f"module load {' '.join(MODULES)} && {env_path}/bin/python -c "
                               f"'import {package}; print({package}.__file__)'").stdout.strip()


def test_the_alliance_preset_makes_virtualenv_and_pip_installs_into_it(hier, tmp_path, home):
    """Default kind virtualenv, installs with pip (what the module provides is not installed again, in a create
    and in an update); uv stays a choice, and a uv environment is installed into with uv."""
    assert hier.run_as_user("test -x ~/.local/bin/uv && ~/.local/bin/uv --version").returncode == 0
    config = profile_config(tmp_path / "cfg", hier, "alliance")
    name = unique("alli")
    modules = [arg for module in MODULES for arg in ("--module", module)]
    made = run_cli("env", "create", "hier", name, *modules, "--package", "tinyalpha", "--package", "tinygamma",
                   config=config, home=home)
    assert made.returncode == 0, made.stderr
    path = hier.home / "venvs" / name
    assert made_by(path) == "virtualenv"
    by = installed_by(path)
    assert by["tinygamma"] == "pip" and "tinyalpha" not in by, by  # pip: "already satisfied" by the module
    assert "scipy-stack/2023b/site-packages" in imported_from(hier, path, "tinyalpha")  # the module's own copy
    updated = run_cli("env", "update", "hier", name, "--add", "tinybeta", config=config, home=home)
    assert updated.returncode == 0, updated.stderr
    assert installed_by(path)["tinybeta"] == "pip" and "tinyalpha" not in installed_by(path)

    chosen = unique("alli-uv")
    made = run_cli("env", "create", "hier", chosen, "--kind", "uv", *modules, "--package", "tinyalpha",
                   config=config, home=home)
    assert made.returncode == 0, made.stderr
    assert made_by(hier.home / "venvs" / chosen) == "uv"
    assert installed_by(hier.home / "venvs" / chosen)["tinyalpha"] == "uv"  # uv does not count PYTHONPATH's


@pytest.mark.parametrize("preset", [None, "other"])
def test_without_a_sites_preset_uv_stays_the_default_kind_and_installer(hier, tmp_path, home, preset):
    """No preset, or the generic `other` one (whose venv is a default for any site, not a site's word): the fastest
    kind the cluster has, uv (from ~/.local/bin), installing with uv, as before."""
    config = profile_config(tmp_path / "cfg", hier, preset)
    name = unique("nopreset")
    made = run_cli("env", "create", "hier", name, "--package", "tinygamma", config=config, home=home)
    assert made.returncode == 0, made.stderr
    assert made_by(hier.home / "venvs" / name) == "uv"
    assert installed_by(hier.home / "venvs" / name)["tinygamma"] == "uv"


def test_new_dialog_follows_the_preset_and_offers_pythons_behind_the_compiler(qtbot, hier, tmp_path, home):
    """The New dialog on an Alliance-preset cluster with uv: virtualenv is chosen (uv still offered), and what it
    creates is made by virtualenv, pip installing into it. The Pythons offered are those Lmod's spider finds, each
    with the modules Lmod says to load first: a venv made from 3.11's (virtualenv's pyvenv.cfg names the Python
    its links lead to, a venv's the one it was run as) has the Python Lmod puts on PATH after those modules."""
    from envdesk.backend.paths import AppPaths
    from envdesk.gui.dialogs.new_env_dialog import NewEnvironmentDialog
    from test_gui import LONG, finish, open_window

    window = open_window(qtbot, AppPaths(profile_config(tmp_path / "cfg", hier, "alliance")))

    def create(kind: str | None = None) -> Path:
        dialog = NewEnvironmentDialog(window.controller, "hier", parent=window)
        qtbot.addWidget(dialog)
        qtbot.waitUntil(lambda: dialog.caps is not None, timeout=LONG)
        kinds = [dialog.kind.itemData(i) for i in range(dialog.kind.count())]
        assert "uv" in kinds and dialog.kind.currentData() == "virtualenv", kinds
        offered = {dialog.python.itemData(i): dialog.python.itemText(i) for i in range(dialog.python.count())}
        needs = lmod_spider(hier)["Python/3.11.3"]  # the newest 3.11 there: the one offered for 3.11
        assert f"module {' '.join([*needs, 'Python/3.11.3'])}" in offered["3.11"], offered
        if kind is not None:
            dialog.kind.setCurrentIndex(dialog.kind.findData(kind))
        dialog.python.setCurrentIndex(dialog.python.findData("3.11"))
        name = unique("dialog")
        dialog.name.setText(name)
        dialog.packages.setPlainText("tinygamma")
        assert dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).isEnabled()
        finish(qtbot, dialog.start())
        return hier.home / "venvs" / name

    path = create()
    assert made_by(path) == "virtualenv" and installed_by(path)["tinygamma"] == "pip"
    path = create("venv")
    assert made_by(path) == "venv" and installed_by(path)["tinygamma"] == "pip"
    loaded, folder = python_after(hier, ["GCC/12.3.0", "Python/3.11.3"])
    assert loaded == "GCC/12.3.0:Python/3.11.3" and pyvenv_home(str(path)) == folder, (pyvenv_home(str(path)), folder)
