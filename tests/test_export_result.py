"""After an export the window says where the file went and offers to show it in its folder."""
from __future__ import annotations

import subprocess
import sys

from PySide6.QtCore import QUrl

from envdesk.backend.paths import AppPaths
from envdesk.gui.main_window import MainWindow


def test_export_reports_the_file_with_a_show_in_folder_link(qtbot, tmp_path, home):
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home / "venvs" / "given")], check=True)
    window = MainWindow(AppPaths(tmp_path / "cfg"))
    qtbot.addWidget(window)
    window.show()
    window.controller.refresh("local")
    qtbot.waitUntil(lambda: "local" in window.controller.refreshed, timeout=120_000)
    env = window.controller.inventory("local").find("given")
    out = tmp_path / "out dir" / "given.txt"
    out.parent.mkdir()
    task = window.export_to("local", env, out, "requirements")
    qtbot.waitUntil(lambda: task.done.is_set(), timeout=120_000)
    qtbot.waitUntil(lambda: "Show in folder" in window.operations_panel.result.text(), timeout=10_000)
    shown = window.operations_panel.result.text()
    assert out.is_file()
    assert str(out) in shown
    assert f'href="{QUrl.fromLocalFile(str(out.parent)).toString()}"' in shown
    assert window.operations_panel.result.openExternalLinks()
