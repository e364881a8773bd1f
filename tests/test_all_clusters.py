"""'All clusters': every environment of every target in one table, driven for real against the test bed."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QFileDialog

from envdesk.backend.cache import InventoryCache
from envdesk.backend.inventory import Environment, Inventory
from envdesk.gui.main_window import MainWindow
from envdesk.gui.models import ALL_TARGETS
from envdesk.gui.prompter import LoginDialog
from envdesk_fixtures import make_config
from test_gui import LONG, answer_prompts, open_window


def rows(window: MainWindow) -> set[tuple[str, str]]:
    """(cluster shown, environment name) of every row of the table."""
    cluster, name = window.env_model.column_of("cluster"), window.env_model.column_of("name")
    return {(window.env_proxy.index(row, cluster).data(), window.env_proxy.index(row, name).data())
            for row in range(window.env_proxy.rowCount())}


def select_all(window: MainWindow) -> None:
    window.cluster_view.setCurrentIndex(window.cluster_view.index_of(ALL_TARGETS))


def listed(window: MainWindow, *names: str) -> bool:
    return all(name in window.controller.refreshed for name in names)


def test_every_target_in_one_table_from_the_cache_then_refreshed(qtbot, testbed, sample_envs, tmp_path, home):
    paths = make_config(tmp_path / "cfg", testbed, ["alpha", "beta"])
    InventoryCache(paths).save(Inventory(target="beta", home=str(testbed.clusters["beta"].home), environments=(
        Environment.from_agent({"name": "gone-since", "path": "/nowhere/gone-since", "kind": "venv",
                                "python": "3.11.3", "state": "ok", "packages": []}),)))
    window = open_window(qtbot, paths)
    assert window.cluster_view.model().index(0, 0).data().startswith("All clusters"), "the entry is on top"
    select_all(window)
    assert ("beta", "gone-since") in rows(window), "the cached list shows at once, before any answer"
    assert window.env_model.headerData(1, Qt.Orientation.Horizontal) == "Cluster"
    qtbot.waitUntil(lambda: listed(window, "local", "alpha", "beta"), timeout=LONG)
    qtbot.waitUntil(lambda: ("beta", "b1") in rows(window), timeout=LONG)
    shown = rows(window)
    assert {("alpha", "plainvenv"), ("alpha", "uvenv"), ("beta", "b1")} <= shown
    assert ("beta", "gone-since") not in shown, "the fresh list replaced the cached one"
    assert "Still listing" not in window.notice.text()
    window.close()


def test_actions_on_a_row_act_on_that_rows_cluster(qtbot, testbed, sample_envs, tmp_path, home, monkeypatch):
    window = open_window(qtbot, make_config(tmp_path / "cfg", testbed, ["alpha", "beta"]))
    select_all(window)
    qtbot.waitUntil(lambda: ("beta", "b1") in rows(window), timeout=LONG)
    name_column = window.env_model.column_of("name")
    for row in range(window.env_proxy.rowCount()):
        if window.env_proxy.index(row, name_column).data() == "b1":
            window.env_table.selectRow(row)
    assert window.current_environment().name == "b1" and window.current_target() == "beta"
    assert window.details.fields["name"].text() == "b1"
    exported = tmp_path / "b1-requirements.txt"
    monkeypatch.setattr(QFileDialog, "getSaveFileName",  # the person picks a file and a format
                        lambda *a, **k: (str(exported), "pip requirements (requirements.txt)"))
    window.export_environment()
    qtbot.waitUntil(exported.exists, timeout=LONG)
    assert "tinyalpha==1.0" in exported.read_text(), "beta's b1 was exported, from beta"
    window.close()


def test_each_code_is_asked_once_and_one_prompt_at_a_time(qtbot, testbed, sample_envs, tmp_path, home,
                                                           secret_service):
    otp, password = testbed.clusters["otp"], testbed.clusters["password"]
    window = open_window(qtbot, make_config(tmp_path / "cfg", testbed, ["otp", "password", "beta"]))
    asked: list[tuple[str, int]] = []

    def answer(dialog):
        assert isinstance(dialog, LoginDialog)
        if not asked:  # hold the first prompt until the other cluster has asked too
            qtbot.waitUntil(lambda: window.prompter.waiting() == 2, timeout=LONG)
        cluster = "otp" if "otp" in dialog.windowTitle() else "password"
        open_now = sum(1 for w in QApplication.topLevelWidgets() if isinstance(w, LoginDialog) and w.isVisible())
        asked.append((cluster, open_now))
        dialog.field.setText(otp.totp_now() if cluster == "otp" else password.password)
        dialog.accept()

    answer_prompts(window, answer)
    select_all(window)
    window.connect_all()  # at once, while the listings are still logging in: nothing is asked twice
    qtbot.waitUntil(lambda: listed(window, "local", "otp", "password", "beta"), timeout=LONG)
    tasks = window.connect_all()
    assert tasks == [], "every cluster is connected already"
    assert sorted(asked) == [("otp", 1), ("password", 1)], asked
    assert {("otp", "plainvenv"), ("beta", "b1")} <= rows(window)
    window.close()
