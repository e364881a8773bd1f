"""The window's Copy builds what its plan showed (R19 MED-4: Build planned again from the source, and took the
user's yes to the plan shown as a yes to the new one).

Referees: the installers' own freeze of the source (when the plan was shown) and of the copy made.
"""
from __future__ import annotations

from envdesk.backend.operations.common import Progress, find_environment
from envdesk.backend.operations.create import CreateRequest, create_environment
from envdesk.gui.dialogs.import_dialog import ImportDialog
from envdesk_fixtures import freeze, install_by_hand, make_config, unique
from test_gui import LONG, finish, open_window


def test_the_copy_dialogs_build_makes_what_its_plan_showed_though_the_source_changed_since(qtbot, testbed,
                                                                                           tmp_path, home):
    """The source gains a package after the Copy dialog showed its plan: Build copies what the plan showed, not
    the source as it is now (which the user never saw)."""
    alpha, beta = testbed.clusters["alpha"], testbed.clusters["beta"]
    window = open_window(qtbot, make_config(tmp_path / "cfg", testbed, ["alpha", "beta"]))
    session = window.controller.session
    name, copy = unique("shown"), unique("shown-copy")
    create_environment(session, "alpha", CreateRequest(name=name, kind="venv", packages=["tinyalpha==1.0"]))
    source = find_environment(session.target("alpha"), name, Progress())
    when_shown = freeze(alpha, source.path)
    dialog = ImportDialog.for_copy(window.controller, "alpha", source, parent=window)
    qtbot.addWidget(dialog)
    assert dialog.target == "beta"
    qtbot.waitUntil(lambda: dialog.plan is not None, timeout=LONG)

    install_by_hand(alpha, source.path, "tinybeta")  # the source changes while the plan is on the screen
    assert "tinybeta==1.0" in freeze(alpha, source.path) - when_shown
    dialog.name.setText(copy)
    finish(qtbot, dialog.start())
    made = find_environment(session.target("beta"), copy, Progress())
    assert freeze(beta, made.path) == when_shown
