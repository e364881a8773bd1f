"""After an export the window says where the file went and offers to show it in its folder."""
from __future__ import annotations


from PySide6.QtCore import QUrl

from test_gui import window_on_this_computer


def test_export_reports_the_file_with_a_show_in_folder_link(qtbot, tmp_path, home):
    window = window_on_this_computer(qtbot, tmp_path / "cfg", home, "given")
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
