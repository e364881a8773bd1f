"""The dialogs check what is typed before they close, in the command line's words, and keep what was typed.

The referee for "already exists" and for a folder that is not a folder is the `envdesk` command line
run against the same situation: the dialog must refuse exactly what the CLI refuses, before anything runs.
"""
from __future__ import annotations

import json
from typing import Any, Callable

import pytest


from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox

from envdesk.gui.dialogs.import_dialog import ImportDialog
from envdesk.gui.dialogs.new_env_dialog import NewEnvironmentDialog
from envdesk_fixtures import make_config, run_cli
from test_gui import LONG, open_window, window_on_this_computer



def accept_when_shown(kind: type, ready: Callable[[Any], bool], act: Callable[[Any], None]) -> None:
    """Once the modal dialog shown is a `kind` and `ready`, `act` on it and accept it (looked for every 50 ms: the
    window opens it with exec(), which returns only when it closes)."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    dialog = QApplication.activeModalWidget()
    if isinstance(dialog, kind) and ready(dialog):
        act(dialog)
        dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    else:
        QTimer.singleShot(50, lambda: accept_when_shown(kind, ready, act))


def failure_box():
    """The message box a failed operation shows, if one is shown."""
    from PySide6.QtWidgets import QApplication, QMessageBox
    boxes = [widget for widget in QApplication.topLevelWidgets()
             if isinstance(widget, QMessageBox) and widget.isVisible()]
    return boxes[0] if boxes else None


def _create_button(dialog) -> bool:
    return dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).isEnabled()


def test_new_environment_refuses_an_existing_name_and_a_bad_folder_before_closing(qtbot, tmp_path, home):
    config = tmp_path / "cfg"
    window = window_on_this_computer(qtbot, config, home, "analysis")
    cli = run_cli("env", "create", "local", "analysis", config=config, home=home)
    assert cli.returncode != 0 and "already exists" in cli.stderr
    cli_folder = run_cli("env", "create", "local", "other", "--root", "venvs", config=config, home=home)
    assert cli_folder.returncode != 0

    dialog = NewEnvironmentDialog(window.controller, "local", parent=window)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.caps is not None, timeout=LONG)
    dialog.root.setEditText("~/venvs")
    dialog.name.setText("analysis")
    assert not _create_button(dialog)
    assert "already exists" in dialog.name_error.text()
    dialog.name.setText("analysis2")
    assert _create_button(dialog)

    dialog.root.setEditText("venvs")  # what the CLI refused above
    assert not _create_button(dialog)
    assert "full path" in dialog.root_error.text()
    assert dialog.name.text() == "analysis2", "what was typed stays"
    dialog.root.setEditText("~/elsewhere")
    dialog.name.setText("analysis")  # free in that folder
    assert _create_button(dialog) and dialog.root_error.text() == "" and dialog.name_error.text() == ""


def test_a_screen_reader_hears_the_problem_under_a_field_not_only_its_name(qtbot, tmp_path, home):
    """R14: the red note under a field was named "Problem" for screen readers, and a name of its own hides a label's
    text from its accessible interface: a screen reader heard "Problem" and not what it was. The referee: Qt's
    accessibility interface of the label, which screen readers read (its name and description), against the
    words the command line gives for the same name."""
    from PySide6.QtGui import QAccessible
    config = tmp_path / "cfg"
    window = window_on_this_computer(qtbot, config, home, "analysis")
    long_name = "analysis-of-the-" + "very-" * 10 + "long-run"
    cli = run_cli("env", "create", "local", long_name + "/x", config=config, home=home)
    said = "\n".join(cli.stderr.splitlines()[:2]).removeprefix("envdesk: ")  # the refusal and its hint (T25)
    assert cli.returncode != 0 and "cannot be an environment name" in said and "Use ASCII letters" in said, cli.stderr

    dialog = NewEnvironmentDialog(window.controller, "local", parent=window)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.caps is not None, timeout=LONG)
    dialog.name.setText(long_name + "/x")
    heard = QAccessible.queryAccessibleInterface(dialog.name_error)
    assert heard.text(QAccessible.Text.Name) == "Problem"
    assert heard.text(QAccessible.Text.Description) == said, (heard.text(QAccessible.Text.Description), said)
    assert "\u200b" in dialog.name_error.text()  # the shown text may break the long name (see breakable)
    dialog.name.setText("analysis2")
    assert heard.text(QAccessible.Text.Description) == ""


def test_import_offers_a_free_name_and_refuses_a_taken_one(qtbot, tmp_path, home):
    config = tmp_path / "cfg"
    window = window_on_this_computer(qtbot, config, home, "demo")
    exported = tmp_path / "demo.txt"
    exported.write_text("# envdesk: name=demo\n")
    spec = window.controller.read_spec(exported)
    spec.name = "demo"
    dialog = ImportDialog(window.controller, spec, "local", title="Import demo.txt", parent=window)
    qtbot.addWidget(dialog)
    assert dialog.name.text() == "demo-2", "the file's name is taken here, so the next free one is offered"
    dialog.name.setText("demo")
    assert "already exists" in dialog.name_error.text()
    assert not _create_button(dialog)
    cli = run_cli("env", "import", "local", str(exported), "--name", "demo", config=config, home=home)
    assert cli.returncode != 0 and "already exists" in cli.stderr


@pytest.mark.parametrize("kind, chosen", [("venv", True), ("conda", False)])
def test_allowing_newer_versions_is_chosen_for_the_user_only_where_it_drops_no_builds(qtbot, tmp_path, home, kind,
                                                                                        chosen):
    """R19: for a conda plan, 'allow newer versions' also drops the file's build strings, and a missing pip:
    line ticked it for the user. It stays the user's choice there; for pip's pins it is still offered ticked."""
    from envdesk.backend.operations.importing import ImportPlan, Unavailable
    window = window_on_this_computer(qtbot, tmp_path / "cfg", home, "demo")
    exported = tmp_path / "demo.txt"
    exported.write_text("tinyalpha==1.0\n")
    dialog = ImportDialog(window.controller, window.controller.read_spec(exported), "local", title="Import",
                          parent=window)
    qtbot.addWidget(dialog)
    plan = ImportPlan("demo-2", kind, [], "3.11", ["requests==9.9.9"], ["requests==9.9.9"],
                      ["numpy=1.26.4=py311h64a7726_0"] if kind == "conda" else [])
    dialog.top_level.setChecked(False)
    dialog._planned(dialog.target, plan, [Unavailable("requests==9.9.9", "not on the index")], dialog.spec)
    assert dialog.top_level.isChecked() is chosen


def test_copy_with_no_other_cluster_says_add_one_and_cannot_build(qtbot, tmp_path, home):
    window = window_on_this_computer(qtbot, tmp_path / "cfg", home, "solo")
    env = window.controller.inventory("local").find("solo")
    dialog = ImportDialog.for_copy(window.controller, "local", env, parent=window)
    qtbot.addWidget(dialog)
    assert dialog.targets.count() == 0
    assert "Add a second cluster first" in dialog.plan_text.text()
    assert not _create_button(dialog)
    qtbot.wait(300)
    assert window.controller.operations.rowCount() == 0, "nothing was planned or built on the source"


def test_copy_offers_this_computer_when_the_source_is_a_cluster(qtbot, testbed, sample_envs, tmp_path, home):
    window = open_window(qtbot, make_config(tmp_path / "cfg", testbed, ["alpha"]))
    window.controller.refresh("alpha")
    qtbot.waitUntil(lambda: "alpha" in window.controller.refreshed, timeout=LONG)
    env = window.controller.inventory("alpha").environments[0]
    dialog = ImportDialog.for_copy(window.controller, "alpha", env, parent=window)
    qtbot.addWidget(dialog)
    assert [dialog.targets.itemData(i) for i in range(dialog.targets.count())] == ["local"]


def test_new_environment_installs_every_line_of_its_requirements_file_or_refuses_the_file(qtbot, tmp_path, home):
    """User trial T6: a requirements file of one pinned and one unpinned line made an environment with the pinned
    one alone, and a file with lines that are no packages was taken without them, Create enabled. What pip would
    install from the file (its dry run's report) is the referee for the first; the command line's refusal of the
    same file for the second."""
    import json
    import subprocess
    import sys

    from testbed import wheels

    store = tmp_path / "wheels"
    store.mkdir()
    for spec in (wheels.WheelSpec("tinyalpha", "1.1"), wheels.WheelSpec("tinygamma", "0.1")):
        wheels.build_wheel(store, spec)
    mixed = tmp_path / "mixed.txt"
    mixed.write_text("tinyalpha==1.1\ntinygamma\n")
    report = subprocess.run([sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--ignore-installed",
                             "--quiet", "--report", "-", "--no-index", "--find-links", str(store), "-r", str(mixed)],
                            capture_output=True, text=True, timeout=300)
    by_pip = {item["metadata"]["name"] for item in json.loads(report.stdout)["install"]}
    config = tmp_path / "cfg"
    window = window_on_this_computer(qtbot, config, home, "demo")
    dialog = NewEnvironmentDialog(window.controller, "local", parent=window)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.caps is not None, timeout=LONG)
    dialog.name.setText("fromfile")
    dialog.requirements.setText(str(mixed))
    dialog.requirements.editingFinished.emit()
    assert _create_button(dialog), dialog.packages_error.text()
    assert {line.split("==")[0] for line in dialog.request()["packages"]} == by_pip == {"tinyalpha", "tinygamma"}

    bad = tmp_path / "bad.txt"
    bad.write_text("six\nthis is not a package\nnumpy>>1\n")
    cli = run_cli("env", "create", "local", "badreq", "--requirements", str(bad), config=config, home=home)
    assert cli.returncode != 0 and "this is not a package" in cli.stderr and "env import" in cli.stderr
    dialog.requirements.setText(str(bad))
    dialog.requirements.editingFinished.emit()
    assert not _create_button(dialog)
    said = dialog.packages_error.text()
    assert "this is not a package" in said and "numpy>>1" in said and "Import" in said, said
    dialog.accept()
    assert dialog.isVisible() or dialog.result() == 0, "a refused file keeps the dialog open"
    assert dialog.name.text() == "fromfile", "what was typed stays"


def test_packages_are_typed_alike_in_new_and_update():
    """User trial T6: New refused `tinyalpha tinydoesnotexist` as one invalid requirement while Update asks for
    packages apart by spaces. Both now read several apart by spaces, one per line, or a requirement written
    with spaces; what they give is what packaging reads (the PEP 508 referee)."""
    from packaging.requirements import Requirement

    from envdesk.gui.dialogs.common import split_specs
    typed = "tinyalpha tinygamma>=0.1\nnumpy >= 1.26, pandas\n\nscipy"
    read = split_specs(typed)
    assert [Requirement(spec).name for spec in read] == ["tinyalpha", "tinygamma", "numpy", "pandas", "scipy"]
    assert str(Requirement(read[2]).specifier) == ">=1.26"


def test_lines_pasted_from_a_requirements_file_read_as_pip_reads_them(tmp_path):
    """User trial T9: `six  # comment` pasted into the Packages box was refused ("'#' is not a valid package
    requirement"), though the box invites pasting. pip is the referee: what its dry run would install from the same
    text as a requirements file is what the box reads."""
    import json
    import subprocess
    import sys

    from packaging.requirements import Requirement

    from envdesk.gui.dialogs.common import split_specs
    from testbed import wheels

    store = tmp_path / "wheels"
    store.mkdir()
    for spec in (wheels.WheelSpec("tinyalpha", "1.1"), wheels.WheelSpec("tinygamma", "0.1")):
        wheels.build_wheel(store, spec)
    pasted = "# analysis\ntinyalpha==1.1  # pinned for the paper\ntinygamma \\\n    >=0.1\n"
    (tmp_path / "requirements.txt").write_text(pasted)
    report = subprocess.run([sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--ignore-installed",
                             "--quiet", "--report", "-", "--no-index", "--find-links", str(store),
                             "-r", str(tmp_path / "requirements.txt")], capture_output=True, text=True, timeout=300)
    by_pip = {item["metadata"]["name"]: item["metadata"]["version"] for item in json.loads(report.stdout)["install"]}
    read = [Requirement(line) for line in split_specs(pasted)]
    assert {requirement.name for requirement in read} == set(by_pip) == {"tinyalpha", "tinygamma"}
    assert all(requirement.specifier.contains(by_pip[requirement.name]) for requirement in read)


def test_a_create_that_fails_opens_its_dialog_again_with_what_was_typed(qtbot, tmp_path, home):
    """User trial T6: a New environment whose create failed (a package the cluster's index does not have) lost
    everything typed into it, as the dialog had closed when Create was clicked. Now the failure says why and
    offers the dialog again, holding the name, kind, packages and options typed; fixed there, the create runs.
    The referees: pip refuses the same packages from the same store, and pip lists what the second create made."""
    import json
    import subprocess
    import sys

    from PySide6.QtCore import QTimer

    from testbed import wheels

    store = tmp_path / "wheels"
    store.mkdir()
    wheels.build_wheel(store, wheels.WheelSpec("tinyalpha", "1.1"))
    index = ["--no-index", "--find-links", str(store)]
    refused = subprocess.run([sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--quiet", *index,
                              "tinyalpha", "tinydoesnotexist"], capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "tinydoesnotexist" in refused.stderr
    config = tmp_path / "cfg"
    config.mkdir()
    (config / "clusters.yaml").write_text(f"clusters: []\nlocal:\n  pip_args: {json.dumps(index)}\n")
    window = window_on_this_computer(qtbot, config, home, "demo")
    seen: dict = {}

    def when_dialog(act) -> None:
        accept_when_shown(NewEnvironmentDialog, lambda dialog: dialog.caps is not None, act)

    def type_first(dialog: NewEnvironmentDialog) -> None:
        dialog.name.setText("analysis")
        dialog.kind.setCurrentIndex(dialog.kind.findData("venv"))
        dialog.packages.setPlainText("tinyalpha\ntinydoesnotexist")
        dialog.system_site.setChecked(True)
        seen["root"] = dialog.root.currentText()

    def read_and_fix(dialog: NewEnvironmentDialog) -> None:
        seen["again"] = (dialog.name.text(), dialog.kind.currentData(), dialog.packages.toPlainText(),
                         dialog.system_site.isChecked(), dialog.advanced.isChecked(), dialog.root.currentText())
        seen["at"] = (dialog.focusWidget() is dialog.packages, dialog.packages.textCursor().selectedText())
        dialog.packages.setPlainText("tinyalpha")

    QTimer.singleShot(50, lambda: when_dialog(type_first))
    window.new_environment()

    qtbot.waitUntil(lambda: failure_box() is not None, timeout=LONG)
    box = failure_box()
    assert box.windowTitle() == "Could not create analysis" and "tinydoesnotexist" in box.text(), box.text()
    assert box.text().count("This computer") <= 1, box.text()  # said once (T9: "… on This computer: … on This …")
    assert not (home / "venvs" / "analysis").exists(), "a failed create leaves nothing behind"
    edit = next(button for button in box.buttons() if button.text() == "Edit and try again")
    QTimer.singleShot(50, lambda: when_dialog(read_and_fix))
    edit.click()
    assert seen["again"] == ("analysis", "venv", "tinyalpha\ntinydoesnotexist", True, True, seen["root"])
    assert seen["at"] == (True, "tinydoesnotexist")  # T9: the line pip refuses is selected, the focus on it
    # a listing that ran while the second create was making it shows it unfinished ("incomplete"): wait for it made
    qtbot.waitUntil(lambda: ("analysis", "ok") in {(env.name, env.state) for env in window.env_model.environments},
                    timeout=LONG)
    made = home / "venvs" / "analysis"
    listed = subprocess.run([str(made / "bin" / "python"), "-m", "pip", "list", "--format", "json"],
                            capture_output=True, text=True, timeout=120)
    assert "tinyalpha" in {item["name"] for item in json.loads(listed.stdout)}
    assert "include-system-site-packages = true" in (made / "pyvenv.cfg").read_text()


def test_an_update_that_fails_opens_its_dialog_again_with_what_was_chosen(qtbot, tmp_path, home):
    """User trial T9: an Update packages that failed (a package the index does not have) was undone, as it should,
    but the dialog and what was typed into it were gone. Now the failure offers the dialog again holding what
    was typed and ticked. The referee is pip: the environment is as it was after the failure, and holds the
    package once the change is made."""
    import json

    from PySide6.QtCore import QTimer

    from envdesk.gui.dialogs.update_dialog import UpdateDialog
    from test_failing_installs import pip_freeze
    from test_gui import select_env
    from testbed import wheels

    store = tmp_path / "wheels"
    store.mkdir()
    wheels.build_wheel(store, wheels.WheelSpec("tinyalpha", "1.1"))
    config = tmp_path / "cfg"
    config.mkdir()
    index = ["--no-index", "--find-links", str(store)]
    (config / "clusters.yaml").write_text(f"clusters: []\nlocal:\n  pip_args: {json.dumps(index)}\n")
    window = window_on_this_computer(qtbot, config, home, "demo")
    select_env(qtbot, window, "demo")
    env_folder = home / "venvs" / "demo"
    before = pip_freeze(env_folder)
    seen: dict = {}

    def when_dialog(act) -> None:
        accept_when_shown(UpdateDialog, lambda dialog: True, act)

    def read_and_fix(dialog: UpdateDialog) -> None:
        seen["again"] = dialog.add.text()
        seen["at"] = (dialog.focusWidget() is dialog.add, dialog.add.selectedText())
        dialog.add.setText("tinyalpha")

    QTimer.singleShot(50, lambda: when_dialog(lambda dialog: dialog.add.setText("tinyalpha tinydoesnotexist")))
    window.update_environment()

    qtbot.waitUntil(lambda: failure_box() is not None, timeout=LONG)
    box = failure_box()
    assert box.windowTitle() == "Could not update demo" and "tinydoesnotexist" in box.text(), box.text()
    assert pip_freeze(env_folder) == before, "a failed change is undone"
    edit = next(button for button in box.buttons() if button.text() == "Edit and try again")
    QTimer.singleShot(50, lambda: when_dialog(read_and_fix))
    edit.click()
    assert seen["again"] == "tinyalpha tinydoesnotexist"
    assert seen["at"] == (True, "tinydoesnotexist")  # T9: what the installer refused is selected, the focus on it
    qtbot.waitUntil(lambda: "tinyalpha==1.1" in pip_freeze(env_folder), timeout=LONG)


def test_a_copy_that_fails_opens_its_dialog_again_with_the_target_and_name(qtbot, testbed, sample_envs, tmp_path,
                                                                           home):
    """User trial T9: a copy that failed on the target ("already exists") closed the dialog, with the name typed
    into it. Now the failure offers it again, holding the target and the name; renamed there, the copy is built.
    The folder is made on beta after the dialog found the name free and before Build (someone else made it
    meanwhile), so only the build itself can find it. The referees are beta's own folders and pip's view of
    what the copy holds."""
    from PySide6.QtCore import QTimer

    from envdesk_fixtures import unique
    from test_failing_installs import pip_freeze
    from test_gui import select_env, select_target

    beta = testbed.clusters["beta"]
    taken, fresh = unique("taken"), unique("fresh")
    window = open_window(qtbot, make_config(tmp_path / "cfg", testbed, ["alpha", "beta"]))
    select_target(qtbot, window, "alpha")
    select_env(qtbot, window, "uvenv")
    seen: dict = {}

    def build_as(name: str, seen_first: Callable[[ImportDialog], None], before_build: Callable[[], None]) -> None:
        """Once the copy dialog shows: `seen_first` reads it as it opened, `name` is typed, and once the target
        said that name is free (Build offered), `before_build` runs and Build is pressed."""
        def ready(dialog: ImportDialog) -> bool:
            if dialog.name.text() != name:
                seen_first(dialog)
                dialog.name.setText(name)
            return _create_button(dialog)
        accept_when_shown(ImportDialog, ready, lambda dialog: before_build())

    def on_beta(dialog: ImportDialog) -> None:
        assert dialog.target == "beta"

    def read_again(dialog: ImportDialog) -> None:
        seen["again"] = (dialog.target, dialog.name.text())

    QTimer.singleShot(50, lambda: build_as(taken, on_beta, lambda: beta.run_as_user(
        f"mkdir -p ~/venvs/{taken} && touch ~/venvs/{taken}/mine.txt")))
    window.copy_environment()
    qtbot.waitUntil(lambda: failure_box() is not None, timeout=LONG)
    box = failure_box()
    assert box.windowTitle() == "Could not copy uvenv to beta" and "already exists" in box.text(), box.text()
    assert [path.name for path in (beta.home / "venvs" / taken).iterdir()] == ["mine.txt"], "nothing touched"
    edit = next(button for button in box.buttons() if button.text() == "Edit and try again")
    QTimer.singleShot(50, lambda: build_as(fresh, read_again, lambda: None))
    edit.click()
    assert seen["again"] == ("beta", taken)
    made = beta.home / "venvs" / fresh
    qtbot.waitUntil(lambda: (made / "pyvenv.cfg").exists() and not window.controller.runner.running(), timeout=LONG)
    assert "tinyalpha==1.1" in pip_freeze(made)


def test_folded_options_take_their_own_line_only(qtbot):
    """User trials T6 and T9: a folded "Advanced options" (and the cluster dialog's conda and Slurm) left an empty
    grey bar under its title. Folded, it is as tall as its tick box; ticked, its form shows, and the box is what
    Tab reaches. Qt's geometry is the referee."""
    from PySide6.QtWidgets import QCheckBox, QLineEdit, QVBoxLayout, QWidget

    from envdesk.gui.dialogs.common import folded_options

    holder = QWidget()
    qtbot.addWidget(holder)
    folded, form = folded_options()
    field = QLineEdit()
    form.addRow("Modules:", field)
    QVBoxLayout(holder).addWidget(folded)
    holder.show()
    qtbot.waitUntil(lambda: folded.isVisible() and folded.height() > 0)
    line = QCheckBox("Advanced options").sizeHint().height()
    assert folded.height() <= line + 2 and not field.isVisible(), (folded.height(), line)
    folded.setChecked(True)
    qtbot.waitUntil(lambda: field.isVisible())
    assert folded.isChecked() and folded.height() > line + field.sizeHint().height() // 2


@pytest.mark.parametrize("conda_side", ["  - numpy=1.26.4\n", ""])  # a conda environment; one that becomes a venv
def test_an_import_counts_a_conda_files_packages_without_its_python(qtbot, tmp_path, home, conda_side):
    """User trial T9: a conda file's `python=3.11` was counted as a pinned package in the Import dialog's summary
    (11, where its plan said 10), though the summary names the Python apart; T10: a file's unpinned lines were
    left out of it ('2 pinned packages', where its plan said 9). Read by pyyaml as conda's schema has it, the file
    asks for these packages besides the interpreter and its pip, and the summary and the plan both count them; so
    they do for a file that becomes a venv (R8: conda's pip was counted in the summary alone)."""
    import re

    import yaml

    text = (f"name: sci\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n{conda_side}  - pip\n"
            "  - pip:\n    - tinyalpha==1.1\n")
    (tmp_path / "environment.yml").write_text(text)
    listed = yaml.safe_load(text)["dependencies"]
    asked = [d for d in listed if isinstance(d, str) and d.split("=")[0] not in ("python", "pip")]
    asked += [d for group in listed if isinstance(group, dict) for d in group["pip"]]
    window = window_on_this_computer(qtbot, tmp_path / "cfg", home)
    dialog = ImportDialog.from_file(window.controller, "local", tmp_path / "environment.yml", parent=window)
    qtbot.addWidget(dialog)
    said = re.search(r"(\d+) packages?\b", dialog.summary.text())
    assert said and int(said.group(1)) == len(asked) == (2 if conda_side else 1), dialog.summary.text()
    qtbot.waitUntil(lambda: dialog.plan is not None, timeout=60_000)
    planned = re.search(r"(\d+) packages?\.", dialog.plan_text.text())
    assert planned and planned.group(1) == said.group(1), dialog.plan_text.text()


def test_the_failing_package_is_found_in_the_installers_words_not_in_what_failed_where(tmp_path):
    """Review R8: a typed `pip` (to upgrade it) matched 'Installing packages with pip failed …' and was selected
    in place of the package pip could not find. The words searched are the installer's own (pip's refusal, the
    referee, run here), and the hint."""
    import subprocess
    import sys

    from envdesk.backend.errors import EnvDeskError
    from envdesk.gui.failing_line import named_span
    from envdesk.gui.main_window import with_failure

    refused = subprocess.run([sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--no-index",
                              "--find-links", str(tmp_path), "tinydoesnotexist==1.0"], capture_output=True, text=True)
    said = next(line for line in refused.stderr.splitlines() if "tinydoesnotexist" in line)
    error = EnvDeskError(f"Installing packages with pip failed on This computer: {said}")
    typed = "pip tinydoesnotexist==1.0"
    span = named_span(typed, with_failure({}, error)["failure"])
    assert span is not None and typed[span[0]:span[1]] == "tinydoesnotexist==1.0"


def test_copy_says_a_name_taken_on_the_target_before_offering_build(qtbot, testbed, sample_envs, tmp_path, home):
    """User trial: copying to a target that had an environment of that name which this computer's list did not
    show yet (made there since it was listed) offered that very name, no warning, and Build failed at "Reserving".
    The dialog now asks the target itself, in the background. Referees: the file system (a real venv made by
    `python -m venv` is there, another name is not) and the dialog's own Build button and message."""
    import subprocess
    import sys

    from envdesk.backend.validate import LOCAL_TARGET
    from envdesk.gui.dialogs.import_dialog import NAME_CHECK_DELAY_MS

    window = open_window(qtbot, make_config(tmp_path / "cfg", testbed, ["alpha"]))
    qtbot.waitUntil(lambda: LOCAL_TARGET in window.controller.refreshed, timeout=LONG)  # listed before the venv
    window.controller.refresh("alpha")
    qtbot.waitUntil(lambda: "alpha" in window.controller.refreshed, timeout=LONG)
    root = home / window.controller.roots(LOCAL_TARGET)[0].removeprefix("~/")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "uvenv")], check=True, timeout=300)
    assert "uvenv" not in {env.name for env in window.controller.inventory(LOCAL_TARGET).environments}, \
        "the list held is from before"

    dialog = ImportDialog.for_copy(window.controller, "alpha", window.controller.inventory("alpha").find("uvenv"),
                                   parent=window)
    qtbot.addWidget(dialog)
    assert (dialog.target, dialog.name.text()) == (LOCAL_TARGET, "uvenv")
    qtbot.waitUntil(lambda: "already exists" in dialog.name_error.text(), timeout=LONG)
    said = dialog.name_error.text().replace("\u200b", "")  # without the marks where a long path may wrap
    assert said == (f"{root / 'uvenv'} already exists on This computer. Pick another name, or delete that "
                    "environment first.")
    qtbot.waitUntil(lambda: dialog.plan is not None, timeout=LONG)
    qtbot.wait(2 * NAME_CHECK_DELAY_MS)
    assert not _create_button(dialog), "no Build while the name is taken there"

    dialog.name.setText("uvenv-copy")
    assert not (root / "uvenv-copy").exists()
    qtbot.waitUntil(lambda: _create_button(dialog), timeout=LONG)
    assert dialog.name_error.text() == ""


def test_the_update_dialogs_names_cannot_be_typed_over_and_typing_finds_a_package(qtbot, tmp_path, home):
    """T14 HIGH: a name in the Update dialog could be edited, and Remove then removed the package typed (idna
    instead of certifi); typing 'py' to find a package overwrote one. The referee: the environment's own Python,
    which lists the packages installed."""
    import subprocess
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication
    from envdesk.gui.dialogs.update_dialog import UpdateDialog
    from testbed import wheels
    store = tmp_path / "wheels"
    store.mkdir()
    for name in ("tinyalpha", "tinygamma", "pyfirst"):
        wheels.build_wheel(store, wheels.WheelSpec(name, "1.0"))
    config = tmp_path / "cfg"
    config.mkdir()
    window = window_on_this_computer(qtbot, config, home, "demo")
    python = home / "venvs" / "demo" / "bin" / "python"
    subprocess.run(["uv", "pip", "install", "--quiet", "--python", str(python), "--no-index", "--find-links",
                    str(store), "tinyalpha", "tinygamma", "pyfirst"], check=True, timeout=300)
    window.controller.refresh("local")
    qtbot.waitUntil(lambda: any(len(env.packages) == 3 for env in window.env_model.environments), timeout=LONG)
    env = next(env for env in window.env_model.environments if env.name == "demo")
    installed = subprocess.run([str(python), "-c", "import importlib.metadata as m; "
                                "print('\\n'.join(sorted(d.metadata['Name'] for d in m.distributions())))"],
                               capture_output=True, text=True, check=True).stdout.split()
    dialog = UpdateDialog(window.controller, "local", env, parent=window)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.activateWindow()
    table = dialog.table
    table.setFocus()
    first = table.item(0, 0).text()
    rect = table.visualItemRect(table.item(0, 0))
    QTest.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    QTest.mouseDClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    QTest.keyClicks(QApplication.focusWidget() or table, "xyz")  # into the editor the double click opened, if any
    QTest.keyClick(QApplication.focusWidget() or table, Qt.Key.Key_Return)
    assert table.item(0, 0).text() == first, "a double click opens no editor over the name"
    table.setCurrentCell(table.rowCount() - 1, 0)
    QTest.keyClicks(table, "py")
    assert [table.item(row, 0).text() for row in range(table.rowCount())] == [p.name for p in env.packages]
    assert table.item(table.currentRow(), 0).text() == "pyfirst", "typing found the package"
    assert table.item(0, 0).text() == first
    table.item(0, 2).setCheckState(Qt.CheckState.Checked)
    assert dialog.change()["remove"] == [first] and first in installed


def test_this_computers_folders_and_pip_arguments_are_set_in_the_window(qtbot, tmp_path, home):
    """T14: This computer's settings (a wheelhouse to work offline, another environments folder) were only to be had
    by editing clusters.yaml, and the More menu's Disconnect, Edit… and Remove looked usable there but did nothing.
    The referees: PyYAML's reading of the file saved, a folder made by python -m venv being listed, and pip's
    freeze of an environment made from the wheelhouse typed in."""
    import subprocess
    import sys
    import yaml
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    from envdesk.gui.dialogs.local_dialog import LocalSettingsDialog
    from testbed import wheels
    from test_gui import select_target
    store = tmp_path / "wheels"
    store.mkdir()
    wheels.build_wheel(store, wheels.WheelSpec("tinyalpha", "1.0"))
    elsewhere = home / "projects" / "envs"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(elsewhere / "found")], check=True)
    config = tmp_path / "cfg"
    config.mkdir()
    window = window_on_this_computer(qtbot, config, home, "demo")
    select_target(qtbot, window, "local")
    more = {action.text(): action.isEnabled() for action in window.cluster_more.menu().actions()}
    assert more == {"Disconnect": False, "Edit…": True, "Remove": False}
    seen: dict = {}

    def fill() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, LocalSettingsDialog):
            QTimer.singleShot(50, fill)
            return
        save = dialog.buttons.button(QDialogButtonBox.StandardButton.Save)
        dialog.roots.setPlainText("envs-relative")
        seen["refused"] = (dialog.error.text(), save.isEnabled())
        dialog.roots.setPlainText(f"~/venvs\n{elsewhere}")
        dialog.pip_args.setPlainText(f"--no-index\n--find-links\n{store}")
        save.click()

    QTimer.singleShot(50, fill)
    window.cluster_actions["Edit…"].trigger()
    assert seen["refused"][0] and seen["refused"][1] is False, seen
    saved = yaml.safe_load((config / "clusters.yaml").read_text())
    assert saved["local"] == {"env_roots": ["~/venvs", str(elsewhere)], "pip_args": ["--no-index", "--find-links",
                                                                                    str(store)]}
    qtbot.waitUntil(lambda: {"demo", "found"} <= {env.name for env in window.env_model.environments}, timeout=LONG)
    made = run_cli("env", "create", "local", "offline", "--package", "tinyalpha", config=config, home=home)
    assert made.returncode == 0, made.stderr
    frozen = subprocess.run(["uv", "pip", "freeze", "--python", str(home / "venvs" / "offline" / "bin" / "python")],
                            capture_output=True, text=True, check=True).stdout.split()
    assert frozen == ["tinyalpha==1.0"]


def test_a_copy_says_why_it_names_fewer_packages_than_the_list(qtbot, tmp_path, home):
    """T14: an environment listed with 5 packages was copied as '3 packages', unexplained. The copy takes what pip
    freeze lists (pip and its companions come with the new environment); the dialog says so. The referees: pip
    freeze and pip list of the environment."""
    import re
    import subprocess
    import sys
    from testbed import wheels
    store = tmp_path / "wheels"
    store.mkdir()
    wheels.build_wheel(store, wheels.WheelSpec("tinyalpha", "1.0"))
    python = home / "venvs" / "withpip" / "bin" / "python"
    subprocess.run([sys.executable, "-m", "venv", str(python.parent.parent)], check=True, timeout=300)
    subprocess.run(["uv", "pip", "install", "--quiet", "--python", str(python), "--no-index", "--find-links",
                    str(store), "tinyalpha"], check=True, timeout=300)
    config = tmp_path / "cfg"
    config.mkdir()
    window = window_on_this_computer(qtbot, config, home)
    qtbot.waitUntil(lambda: any(env.name == "withpip" for env in window.env_model.environments), timeout=LONG)
    env = next(env for env in window.env_model.environments if env.name == "withpip")
    frozen = subprocess.run([str(python), "-m", "pip", "freeze"], capture_output=True, text=True,
                            check=True).stdout.split()
    listed = json.loads(subprocess.run([str(python), "-m", "pip", "list", "--format", "json"], capture_output=True,
                                       text=True, check=True).stdout)
    dialog = ImportDialog.for_copy(window.controller, "local", env, parent=window)
    qtbot.addWidget(dialog)
    summary = dialog.summary.text()
    counts = re.search(r"(\d+) packages?, .*the list shows (\d+): pip", summary)
    assert counts, summary
    assert (int(counts[1]), int(counts[2])) == (len(frozen), len(listed)) and len(listed) > len(frozen)


def test_a_failed_import_is_tried_again_from_the_file_as_changed(qtbot, tmp_path, home):
    """T14: a failed import said 'What you typed is kept: Edit and try again', though an import has nothing typed:
    what to change is the file. It now says so, and Try again reads the file again. The referees: pip's refusal of
    the first file, and uv's freeze of what the second made."""
    import subprocess
    import sys
    from PySide6.QtCore import QTimer
    from testbed import wheels
    store = tmp_path / "wheels"
    store.mkdir()
    wheels.build_wheel(store, wheels.WheelSpec("tinyalpha", "1.1"))
    index = ["--no-index", "--find-links", str(store)]
    requirements = tmp_path / "analysis" / "requirements.txt"
    requirements.parent.mkdir()
    requirements.write_text("tinyalpha\ntinydoesnotexist\n")
    refused = subprocess.run([sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--quiet", *index,
                              "-r", str(requirements)], capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "tinydoesnotexist" in refused.stderr
    config = tmp_path / "cfg"
    config.mkdir()
    (config / "clusters.yaml").write_text(f"clusters: []\nlocal:\n  pip_args: {json.dumps(index)}\n")
    window = window_on_this_computer(qtbot, config, home)
    QTimer.singleShot(50, lambda: accept_when_shown(ImportDialog, _create_button, lambda dialog: None))
    window.import_file("local", requirements)
    qtbot.waitUntil(lambda: failure_box() is not None, timeout=LONG)
    box = failure_box()
    assert "Change the file" in box.informativeText() and "What you typed" not in box.informativeText()
    again = next(button for button in box.buttons() if button.text() == "Try again")
    requirements.write_text("tinyalpha\n")  # mended in an editor
    QTimer.singleShot(50, lambda: accept_when_shown(ImportDialog, _create_button, lambda dialog: None))
    again.click()
    made = home / "venvs" / "analysis"
    qtbot.waitUntil(lambda: (made / "pyvenv.cfg").exists() and not window.controller.runner.running(), timeout=LONG)
    frozen = subprocess.run(["uv", "pip", "freeze", "--python", str(made / "bin" / "python")], capture_output=True,
                            text=True, check=True).stdout.split()
    assert "tinyalpha==1.1" in frozen and not any(line.startswith("tinydoesnotexist") for line in frozen)


def _shown(label) -> str:
    """What a rich-text label shows, as Qt renders its HTML (the referee for escaping)."""
    from PySide6.QtGui import QTextDocument
    document = QTextDocument()
    document.setHtml(label.text())
    return document.toPlainText()


def test_the_plan_shows_a_missing_requirement_with_its_bounds_whole(qtbot, testbed, tmp_path, home):
    """A requirement the target cannot meet was put into the plan's rich text as it was: `tinyalpha<0.0.1` showed
    as 'tinyalpha' and the rest of the line was read as an HTML tag and vanished. Referees: the target's own pip,
    which finds no such version, and Qt's rendering of the plan."""
    window = open_window(qtbot, make_config(tmp_path / "cfg", testbed, ["beta"]))
    beta = testbed.clusters["beta"]

    def dry_run(requirement: str) -> int:  # pip's own judgement, into no environment (--target)
        return beta.run_as_user(f"module load GCC/12.3.0 Python/3.11.3 && python3 -m pip install --dry-run "
                                f"--target \"$(mktemp -d)\" {' '.join(beta.pip_args)} '{requirement}'",
                                check=False).returncode
    assert dry_run("tinyalpha") == 0 and dry_run("tinyalpha<0.0.1") != 0
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("tinyalpha<0.0.1\ntinygamma==0.1\n")
    dialog = ImportDialog.from_file(window.controller, "beta", requirements, parent=window)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.plan is not None, timeout=LONG)
    shown = _shown(dialog.plan_text)
    assert "1 package(s) are not available there: tinyalpha<0.0.1 (" in shown, shown


def test_a_long_names_problem_wraps_inside_the_dialog(qtbot, tmp_path, home):
    """T14: a 300-character name's problem ran past the dialog's right edge (Qt wraps only at spaces, and the
    shortened name is one long word). Referee: Qt's own measure of the narrowest the note can be drawn, against
    the width the dialog gives it. A greyed Create says why in its tooltip."""
    window = window_on_this_computer(qtbot, tmp_path / "cfg", home)
    dialog = NewEnvironmentDialog(window.controller, "local", parent=window)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.caps is not None, timeout=LONG)
    create = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert not create.isEnabled() and create.toolTip() == "Type a name for the environment first."
    dialog.name.setText("b" * 300)
    qtbot.wait(50)
    note = dialog.name_error
    assert "(300 characters) cannot be an environment name" in note.text().replace("\u200b", "")
    assert note.minimumSizeHint().width() <= note.width(), (note.minimumSizeHint(), note.size())
    assert not create.isEnabled() and "cannot be an environment name" in create.toolTip()
    dialog.name.setText("fine")
    assert create.isEnabled() and create.toolTip() == ""


def test_the_update_dialog_shows_a_sites_own_builds_versions_whole(qtbot, tmp_path, home):
    """T20: in the Update dialog every Alliance build's version read '1.26.4+com…' (a column of Qt's default
    width). The referee: the font's own measure of each name and version in the table."""
    from envdesk.backend.inventory import Environment
    from envdesk.gui.dialogs.update_dialog import UpdateDialog
    builds = {"numpy": "1.26.4+computecanada", "python-dateutil": "2.8.2+computecanada", "pip": "26.3",
              "pytz": "2023.3+computecanada"}
    env = Environment.from_agent({"name": "proj1", "path": str(home / "venvs" / "proj1"), "kind": "virtualenv",
                                  "python": "3.11.5", "state": "ok",
                                  "packages": [{"name": n, "version": v} for n, v in builds.items()]})
    window = window_on_this_computer(qtbot, tmp_path / "cfg", home)
    dialog = UpdateDialog(window.controller, "local", env, parent=window)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    from PySide6.QtWidgets import QStyle
    table, measure = dialog.table, dialog.table.fontMetrics().horizontalAdvance
    header = table.horizontalHeader()
    # the room a cell gives its text, as Qt's common style draws it: a margin each side, and the grid's line
    margin = table.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, table) + 1

    def cut() -> list[str]:
        return [table.item(row, column).text() for row in range(table.rowCount()) for column in (0, 1)
                if header.sectionSize(column) < measure(table.item(row, column).text()) + 2 * margin + 1]
    qtbot.waitUntil(lambda: cut() == [], timeout=5_000)


def test_a_cluster_an_operation_reached_is_shown_connected(qtbot, testbed, sample_envs, tmp_path, home):
    """T20: the copy dialog checked its packages on kebnekaise, which the cluster list still showed as 'not
    connected'. The referee: beta's sshd, whose log shows the login the check made."""
    window = open_window(qtbot, make_config(tmp_path / "cfg", testbed, ["alpha", "beta"]))
    window.controller.refresh("alpha")
    qtbot.waitUntil(lambda: "alpha" in window.controller.refreshed, timeout=LONG)
    beta = testbed.clusters["beta"]
    logins_before = beta.log_text().count(f"Accepted publickey for {beta.user} ")
    assert window.controller.targets.item("beta").state == "idle"
    source = next(env for env in window.controller.inventory("alpha").environments if env.state == "ok")
    dialog = ImportDialog.for_copy(window.controller, "alpha", source, parent=window)
    qtbot.addWidget(dialog)
    dialog.targets.setCurrentIndex(dialog.targets.findData("beta"))
    qtbot.waitUntil(lambda: dialog.plan is not None and dialog.target == "beta", timeout=LONG)
    assert beta.log_text().count(f"Accepted publickey for {beta.user} ") > logins_before
    qtbot.waitUntil(lambda: window.controller.targets.item("beta").state == "connected", timeout=5_000)
