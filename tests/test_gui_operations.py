"""The app's controller and operations list: bounded over a long session, O(1) per output line, one door.

These run against "This computer" (no test bed needed): the operations are real tasks on the real pool.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from envdesk.backend.inventory import Inventory
from envdesk.backend.paths import AppPaths
from envdesk.gui.controller import AppController
from envdesk.gui.operations_panel import OperationsPanel
from envdesk.gui.prompter import QtPrompter

GUI = Path(__file__).resolve().parents[1] / "gui"
WAIT = 60_000


@pytest.fixture
def controller(qtbot, tmp_path, home):
    root = tmp_path / "envs"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "plain")], check=True)
    config = tmp_path / "cfg"
    config.mkdir()
    (config / "clusters.yaml").write_text(f"local:\n  env_roots: [{json.dumps(str(root))}]\n")
    made = AppController(AppPaths(config), QtPrompter())
    yield made
    made.shutdown()


class CountingList(list):
    """A list that counts how many of its items are read, however they are read."""

    reads = 0

    def __iter__(self):
        for item in super().__iter__():
            self.reads += 1
            yield item

    def __getitem__(self, index):
        self.reads += 1
        return super().__getitem__(index)


def chatty(lines: int):
    def work(progress):
        for number in range(lines):
            progress.on_line("stdout", f"line {number}")
    return work


def test_finished_operations_and_their_logs_are_bounded(qtbot, controller):
    operations = controller.operations
    operations.max_finished, operations.max_lines = 3, 5
    panel = OperationsPanel(operations)
    qtbot.addWidget(panel)
    release = threading.Event()
    long = controller.start("long", "local", lambda progress: release.wait(WAIT / 1000))
    tasks = [controller.start(f"op {number}", "local", chatty(12)) for number in range(6)]
    qtbot.waitUntil(lambda: all(task.done.is_set() for task in tasks) and
                    sum(row.running for row in operations.rows) == 1, timeout=WAIT)
    assert [row.title for row in operations.rows] == ["long", "op 3", "op 4", "op 5"], \
        "the oldest finished operations go; a running one always stays"
    for row in operations.rows[1:]:
        assert row.log_lines()[0].startswith("[7 earlier line(s) were dropped")
        assert row.log_lines()[1:] == [f"line {number}" for number in range(7, 12)]
    panel.table.selectRow(3)
    assert panel.log.toPlainText().splitlines() == operations.rows[3].log_lines(), "the user sees the note too"

    release.set()
    qtbot.waitUntil(lambda: not any(row.running for row in operations.rows), timeout=WAIT)
    assert [row.title for row in operations.rows] == ["op 3", "op 4", "op 5"]
    last = controller.start("last", "local", lambda progress: None)
    assert controller.runner.tasks == [last], "finished tasks are not kept by the runner either"
    assert long.state == "succeeded"


def test_an_output_line_costs_the_same_however_many_operations_there_are(qtbot, controller):
    operations = controller.operations
    operations.max_finished = 10_000
    panel = OperationsPanel(operations)
    qtbot.addWidget(panel)
    release = threading.Event()

    def reads_per_line(earlier: int) -> int:
        """Start `earlier` quick operations, then a running one; the list reads it makes for 10 lines."""
        quick = [controller.start(f"quick {n}", "local", lambda progress: None) for n in range(earlier)]
        qtbot.waitUntil(lambda: all(task.done.is_set() for task in quick) and
                        sum(row.running for row in operations.rows) == 0, timeout=WAIT)
        running = controller.start("running", "local", lambda progress: release.wait(WAIT / 1000))
        row = operations.rows[-1]
        assert row.task is running and panel.current() is row
        operations.rows = CountingList(operations.rows)
        for number in range(10):
            running.signals.line.emit("stdout", f"output {number}")
        reads = operations.rows.reads
        operations.rows = list(operations.rows)
        assert list(row.log)[-10:] == [f"output {number}" for number in range(10)], "each line reached its row"
        assert panel.log.toPlainText().splitlines()[-1] == "output 9", "and the log view"
        release.set()
        qtbot.waitUntil(lambda: running.done.is_set(), timeout=WAIT)
        release.clear()
        return reads

    few = reads_per_line(1)
    many = reads_per_line(300)
    assert len(operations.rows) > 300
    assert many == few, f"appending a line read {many} rows with 300 operations listed, {few} with 1"


def test_a_refresh_pushes_the_new_inventory(qtbot, controller):
    with qtbot.waitSignal(controller.inventory_changed, timeout=WAIT) as pushed:
        controller.refresh("local")
    name, inventory = pushed.args
    assert name == "local" and isinstance(inventory, Inventory)
    assert [env.name for env in inventory.environments] == ["plain"]
    assert controller.inventory("local") is inventory


def _widget_files() -> list[Path]:
    return [path for path in [*GUI.glob("*.py"), *GUI.glob("dialogs/*.py")]
            if path.name not in ("controller.py", "tasks.py")]


@pytest.mark.parametrize("path", _widget_files(), ids=lambda path: path.relative_to(GUI).as_posix())
def test_widgets_reach_the_backend_only_through_the_controller(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imports = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module]
    imports += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    assert [name for name in imports if name.startswith("envdesk.backend.operations")] == []
    assert [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == "session"] \
        == [], "widgets do not reach into controller.session"


def test_keyboard_conventions_help_and_quit(qtbot, tmp_path, monkeypatch):
    """Tab leaves tables and text boxes; Ctrl+Q quits; Help has About (with the version) and the shortcuts."""
    from importlib import metadata

    from PySide6.QtCore import Qt
    from PySide6.QtGui import QKeySequence
    from PySide6.QtWidgets import QMessageBox, QPlainTextEdit

    from envdesk.backend.paths import AppPaths
    from envdesk.gui.main_window import MainWindow
    monkeypatch.setenv("HOME", str(tmp_path))
    window = MainWindow(AppPaths(tmp_path / "cfg"))
    qtbot.addWidget(window)
    window.show()
    assert not window.env_table.tabKeyNavigation() and not window.cluster_view.tabKeyNavigation()
    snippet_boxes = window.details.findChildren(QPlainTextEdit)
    assert snippet_boxes and all(box.tabChangesFocus() for box in snippet_boxes)
    window.env_table.setFocus()
    qtbot.keyClick(window.env_table, Qt.Key.Key_Tab)
    assert not window.env_table.hasFocus(), "Tab must leave the environments table"
    assert window.quit_action.shortcut().matches(QKeySequence("Ctrl+Q")) == QKeySequence.SequenceMatch.ExactMatch
    shown = []
    monkeypatch.setattr(QMessageBox, "about", lambda parent, title, text: shown.append(text))
    monkeypatch.setattr(QMessageBox, "information", lambda parent, title, text: shown.append(text))
    window.about_action.trigger()
    window.shortcuts_action.trigger()
    assert metadata.version("envdesk") in shown[0] and "Ctrl+Q" in shown[1]
    # every shortcut the window answers to is in the list (T14: Compare's Ctrl+Shift+D was not); the referee is
    # Qt's own list of the window's actions
    from PySide6.QtGui import QAction
    for action in window.findChildren(QAction):
        if not action.shortcut().isEmpty():
            assert action.shortcut().toString(QKeySequence.SequenceFormat.NativeText) in shown[1], action.text()
    for button in (window.add_cluster_button, window.connect_button, window.cluster_more):
        assert button.toolTip()


def test_export_file_is_named_for_the_chosen_format():
    from pathlib import Path

    from envdesk.gui.main_window import named_for_format
    assert named_for_format(Path("/h/demo.envdesk.yaml"), "requirements", "requirements.txt").name == \
        "demo-requirements.txt"
    assert named_for_format(Path("/h/demo.envdesk.yaml"), "conda", "environment.yml").name == "demo-environment.yml"
    # the two conda exports of one environment are two files (T14: the second asked to replace the first)
    assert named_for_format(Path("/h/demo.envdesk.yaml"), "conda-history", "environment.yml").name == \
        "demo-environment-from-history.yml"
    assert named_for_format(Path("/h/demo.envdesk.yaml"), "pylock", "pylock.toml").name == "pylock.demo.toml"
    assert named_for_format(Path("/h/mine.txt"), "requirements", "requirements.txt").name == "mine.txt"


def test_export_names_from_the_save_dialog_are_mended_and_uv_takes_the_lock_files(tmp_path):
    """User trial T9: Qt's save dialog swaps only the last extension of 'guivenv.envdesk.yaml' when another format is
    picked, and 'guivenv.envdesk.toml' was kept as a lock file that uv refuses ('not a valid PEP 751 filename').
    uv is the referee for the lock files' names; a name the user typed for the format is kept."""
    import subprocess
    import sys
    from pathlib import Path

    from envdesk.gui.main_window import EXPORT_FILTERS, named_for_format

    usual = {fmt: name for fmt, name in EXPORT_FILTERS.values()}
    swapped = {fmt: named_for_format(Path(f"/h/guivenv.envdesk.{usual_name.rsplit('.', 1)[1]}"), fmt, usual_name).name
               for fmt, usual_name in usual.items()}
    assert swapped == {"envdesk": "guivenv.envdesk.yaml", "requirements": "guivenv-requirements.txt",
                       "conda": "guivenv-environment.yml", "conda-history": "guivenv-environment-from-history.yml",
                       "pylock": "pylock.guivenv.toml"}
    from PySide6.QtCore import QDir

    from envdesk.gui.main_window import IMPORT_FILTER
    offered = IMPORT_FILTER.split(";;")[0].split("(")[1].rstrip(")").split()
    assert [name for name in swapped.values() if not QDir.match(offered, name)] == [], "Import offers every export"
    kept = ["pylock.toml", "pylock.gpu-nodes.toml"]
    assert [named_for_format(Path("/h") / name, "pylock", "pylock.toml").name for name in kept] == kept
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    for name in [swapped["pylock"], *kept, named_for_format(Path("/h/a.b.toml"), "pylock", "pylock.toml").name]:
        lock = tmp_path / name
        lock.write_text('lock-version = "1.0"\ncreated-by = "test"\npackages = []\n')
        uv = subprocess.run(["uv", "pip", "install", "--python", str(tmp_path / "venv" / "bin" / "python"),
                             "--dry-run", "--offline", "-r", str(lock)], capture_output=True, text=True, timeout=120)
        assert uv.returncode == 0 and "PEP 751" not in uv.stderr, (name, uv.stderr)


def test_first_start_welcomes_with_add_your_cluster(qtbot, tmp_path, monkeypatch):
    """No cluster yet: the first thing offered is adding one; it goes once a cluster exists."""
    from envdesk.backend.config import ClusterProfile
    from envdesk.backend.paths import AppPaths
    from envdesk.gui.main_window import MainWindow
    monkeypatch.setenv("HOME", str(tmp_path))
    window = MainWindow(AppPaths(tmp_path / "cfg"))
    qtbot.addWidget(window)
    window.show()
    assert window.welcome.isVisible() and window.welcome_button.text() == "Add your cluster…"
    from PySide6.QtCore import Qt

    from envdesk.gui.dialogs.cluster_dialog import ClusterDialog
    opened = []
    monkeypatch.setattr(ClusterDialog, "exec", lambda dialog: opened.append(dialog.windowTitle()) or 0)
    qtbot.mouseClick(window.welcome_button, Qt.MouseButton.LeftButton)
    assert len(opened) == 1, "the button opens the Add cluster dialog"
    window.controller.save_cluster(ClusterProfile(name="mine", host="login.example.org", user="me"))
    qtbot.waitUntil(lambda: not window.welcome.isVisible(), timeout=5000)


def test_add_cluster_dialog_name_follows_the_preset_and_the_user_name_is_required(qtbot, tmp_path, monkeypatch):
    from envdesk.backend.paths import AppPaths
    from envdesk.gui.dialogs.cluster_dialog import ClusterDialog
    from envdesk.gui.main_window import MainWindow
    monkeypatch.setenv("HOME", str(tmp_path))
    window = MainWindow(AppPaths(tmp_path / "cfg"))
    qtbot.addWidget(window)
    dialog = ClusterDialog(window.controller, parent=window)
    qtbot.addWidget(dialog)
    rows = {dialog.preset.itemData(i).id: i for i in range(dialog.preset.count()) if dialog.preset.itemData(i)}
    dialog.preset.setCurrentIndex(rows["mila"])
    assert dialog.name.text() == "mila"
    dialog.preset.setCurrentIndex(rows["uppmax"])
    assert dialog.name.text() == "uppmax", "an untouched name follows the preset"
    dialog.name.setText("my-cluster")
    dialog.preset.setCurrentIndex(rows["alliance"])
    assert dialog.name.text() == "my-cluster", "a typed name is kept"
    dialog.user.setText("")
    dialog.save()
    assert dialog.result() == 0 and "user name" in dialog.error.text()
    assert window.controller.targets.row_of("my-cluster") == -1
    dialog.user.setText("jsmith")
    dialog.save()
    assert window.controller.session.store.get("my-cluster").user == "jsmith"


def test_the_operations_list_names_the_target_as_the_cluster_list_does(qtbot, controller):
    """"This computer", as the cluster list and the README call it, not its internal name (a user trial)."""
    task = controller.start("Measure", "local", lambda progress: None)
    qtbot.waitUntil(lambda: task.done.is_set(), timeout=WAIT)
    where = controller.operations.index(0, controller.operations.COLUMNS.index("Where")).data()
    assert where == controller.targets.item("local").label == "This computer"


def test_an_answer_for_a_dialog_already_deleted_is_dropped(qtbot):
    """A task's answer for a dialog closed (and deleted) meanwhile does nothing, where touching its widgets raised
    "Internal C++ object already deleted" (the review: the dialogs' lambdas); shiboken says what is deleted."""
    import shiboken6
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication, QDialog, QLabel

    from envdesk.gui.tasks import while_alive

    dialog = QDialog()
    label = QLabel(dialog)
    shown = while_alive(lambda text: label.setText(text), dialog)
    shown("before")
    assert label.text() == "before"
    dialog.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert not shiboken6.isValid(label)
    shown("after")


def test_an_export_renamed_for_its_format_asks_before_replacing_a_file(qtbot, tmp_path, monkeypatch):
    """Review R7: the save dialog asks about replacing the name it gives ('demo.envdesk.txt' once pip requirements
    is picked), not the name the export is then written to ('demo-requirements.txt'): a file of the user's there
    was replaced unasked. Now it is asked about, and left as it is on No."""
    from PySide6.QtWidgets import QFileDialog, QMessageBox

    from envdesk.gui.main_window import EXPORT_FILTERS
    from test_gui import select_env, window_on_this_computer

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    window = window_on_this_computer(qtbot, tmp_path / "cfg", home, "demo")
    select_env(qtbot, window, "demo")
    mine = home / "demo-requirements.txt"
    mine.write_text("# my own pins\n")
    picked = next(label for label, (fmt, _) in EXPORT_FILTERS.items() if fmt == "requirements")
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(home / "demo.envdesk.txt"),
                                                                                  picked))
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "question", lambda parent, title, text, *rest: asked.append(text) or
                        QMessageBox.StandardButton.No)
    window.export_environment()
    qtbot.wait(300)
    assert asked == [f"{mine} already exists. Replace it?"]
    assert mine.read_text() == "# my own pins\n" and not window.controller.runner.running()


def test_an_operations_words_are_shown_as_written_whatever_they_hold(qtbot, controller):
    """User trial T11: the result line read "this target&#x27;s own package index": the text is escaped for rich
    text (it may hold a link), and Qt took a line without tags for plain text. What the label shows, read back by
    Qt's own text document, is the words as written."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QTextDocument

    words = "Installed from this target's own package index, <b>not</b> from \"elsewhere\" & co."
    panel = OperationsPanel(controller.operations)
    qtbot.addWidget(panel)
    task = controller.start(words, "local", lambda progress: None)
    qtbot.waitUntil(lambda: task.done.is_set() and not controller.operations.rows[-1].running, timeout=WAIT)
    panel.table.selectRow(len(controller.operations.rows) - 1)
    shown = QTextDocument()
    shown.setHtml(panel.result.text()) if panel.result.textFormat() == Qt.TextFormat.RichText else \
        shown.setPlainText(panel.result.text())
    assert shown.toPlainText().startswith(words + ":"), shown.toPlainText()


def test_a_task_that_ends_as_its_controller_goes_raises_nothing_later(qtbot, tmp_path, home):
    """A task that ends while the window closes (its controller deleted) delivered its answer afterwards to the
    deleted controller: "Signal source has been deleted" was raised in whatever ran next (it failed a later GUI
    test once the Copy dialog asked the target about names). The referees are Qt: pytest-qt fails a test on any
    exception raised in a slot, and the queued answers, delivered, reach no slot once the window closed."""
    from shiboken6 import delete

    config = tmp_path / "cfg"
    config.mkdir()
    made = AppController(AppPaths(config), QtPrompter())
    tasks = [made.start("ends as the controller goes", "local", lambda progress: 1, record=record)
             for record in (True, False)]  # one that the operations panel shows, one that it does not
    assert made.runner.pool.waitForDone(60_000)  # ended, their answers queued for later (none delivered yet)
    assert all(task.done.is_set() for task in tasks)
    reached: list = []
    for task in tasks:
        task.signals.succeeded.connect(reached.append)
        task.signals.finished.connect(lambda: reached.append("finished"))
    made.shutdown()  # as the window's close
    delete(made)
    qtbot.wait(200)  # the queued answers are delivered now
    assert reached == [], "an answer reached what listened to a task after the window closed"


def test_a_task_that_ended_unanswered_as_the_window_closes_is_still_said(qtbot, tmp_path, home, capfd):
    """R18: a task that had ended (its failure queued for the GUI thread, not yet delivered) when the window
    closed was dropped with its answer: a failed rollback was said nowhere. Its end is said on stderr."""
    from shiboken6 import delete
    from envdesk.backend.errors import EnvDeskError

    config = tmp_path / "cfg"
    config.mkdir()
    made = AppController(AppPaths(config), QtPrompter())

    def fails(progress):
        raise EnvDeskError("Rolling back also failed: the environment is listed as broken.")
    task = made.start("Update sample", "local", fails)
    assert made.runner.pool.waitForDone(60_000) and task.done.is_set() and not task.signals.answered
    made.shutdown()  # as the window's close
    delete(made)
    qtbot.wait(200)
    said = capfd.readouterr().err
    assert "Update sample" in said and "Rolling back also failed" in said, said


def test_a_long_failure_is_read_whole_in_a_short_panel(qtbot, controller):
    """T14: in a small window the result of a failed operation was cut mid-sentence, with no way to read the rest.
    The referee: Qt's own measure of the height the words need at the width they are given."""
    from envdesk.backend.errors import InstallFailed

    words = " ".join(["pip could not find a version that satisfies the requirement tinydoesnotexist"] * 12)

    def fail(progress) -> None:
        raise InstallFailed(words, "Check the package's name, or ask for it on the cluster's own index.")
    panel = OperationsPanel(controller.operations)
    qtbot.addWidget(panel)
    panel.resize(700, 140)  # the operations panel of a 1024x640 window
    panel.show()
    assert not panel.raw_button.isEnabled(), "no raw log before any operation (T18)"
    task = controller.start("Create analysis", "local", fail)
    qtbot.waitUntil(lambda: task.done.is_set() and not controller.operations.rows[-1].running, timeout=WAIT)
    panel.table.selectRow(len(controller.operations.rows) - 1)
    qtbot.wait(50)
    label = panel.result
    assert label.height() >= label.heightForWidth(label.width()), "every line of the result has its room"
    bar = panel.result_area.verticalScrollBar()
    assert bar.maximum() > 0, "and what the panel cannot show at once scrolls"
    bar.setValue(bar.maximum())
    assert panel.raw_button.isEnabled() == bool(controller.operations.rows[-1].error.log), "a raw log only to show"


def test_quitting_while_work_runs_asks_with_buttons_that_say_what_they_do(qtbot, tmp_path, monkeypatch):
    """T14: the question before quitting offered 'Close' and 'Cancel', and 'Cancel' read as cancelling the
    operations. Its buttons now say what they do; keeping the work running keeps the window, stopping it cancels
    the work. The referee: the work itself, which sees its cancel."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox
    from envdesk.backend.paths import AppPaths
    from envdesk.gui.main_window import MainWindow
    monkeypatch.setenv("HOME", str(tmp_path))
    window = MainWindow(AppPaths(tmp_path / "cfg"))
    qtbot.addWidget(window)
    window.show()
    stopped = threading.Event()

    def work(progress) -> None:
        while not progress.cancel.cancelled:
            threading.Event().wait(0.05)
        stopped.set()
    task = window.controller.start("Long work", "local", work)
    seen: list[list[str]] = []

    def answer(text: str) -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(50, lambda: answer(text))
            return
        seen.append([button.text() for button in box.buttons()])
        next(button for button in box.buttons() if button.text() == text).click()

    QTimer.singleShot(50, lambda: answer("Keep them running"))
    window.quit()
    assert window.isVisible() and not task.done.is_set() and not stopped.is_set()
    QTimer.singleShot(50, lambda: answer("Stop them and close"))
    window.quit()
    qtbot.waitUntil(stopped.is_set, timeout=WAIT)
    assert not window.isVisible()
    assert all(set(texts) == {"Stop them and close", "Keep them running"} for texts in seen) and len(seen) == 2


def test_the_operations_list_shows_what_each_operation_is_whole(qtbot, controller):
    """T14: the Operation column read 'Export demo…' and 'Make a Jupyt…' even 1600 pixels wide, so two exports could
    not be told apart. The referee: Qt's measure of each title in the table's font."""
    panel = OperationsPanel(controller.operations)
    qtbot.addWidget(panel)
    panel.resize(1500, 200)
    panel.show()
    titles = ["Export demo-uv as requirements", "Export demo-uv as pylock.toml", "Make a Jupyter kernel for demo"]
    for title in titles:
        task = controller.start(title, "local", lambda progress: None)
        qtbot.waitUntil(task.done.is_set, timeout=WAIT)
    qtbot.wait(50)
    metrics = panel.table.fontMetrics()
    width = panel.table.horizontalHeader().sectionSize(0)
    assert all(width >= metrics.horizontalAdvance(title) for title in titles), width
