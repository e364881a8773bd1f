"""A newcomer's first hour, scripted: from the first launch to a working environment on a cluster that asks
for a key and a one-time code, with no SSH key on the laptop and no shell.

The person only clicks and types in the app's windows. The one thing done outside it is what the site's
web page does with the public key the app shows (here: the test bed adds it to authorized_keys). The
test counts the dialogs (the goal is at most five), checks that no text shown along the way asked for a
command line, and asks the cluster's own pip what the new environment holds.
"""
from __future__ import annotations

import re

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QDialog, QLabel, QPlainTextEdit

from envdesk.backend.paths import AppPaths
from envdesk.gui.dialogs.cluster_dialog import ClusterDialog
from envdesk.gui.dialogs.key_dialog import KeyDialog
from envdesk.gui.dialogs.new_env_dialog import NewEnvironmentDialog
from envdesk.gui.dialogs.trust_dialog import TrustDialog
from envdesk.gui.main_window import MainWindow
from envdesk.gui.prompter import LoginDialog
from envdesk_fixtures import unique
from test_gui import select_env

LONG = 180_000
MAX_DIALOGS = 5
SHELL_WORDS = re.compile(r"\b(envdesk (cluster|env|key)|ssh-keygen|ssh-copy-id|ssh-add|chmod|terminal)\b", re.I)


class DialogWatcher(QObject):
    """Sees every dialog the app shows, once each, and hands it to the step that answers it."""

    def __init__(self, steps: dict[type, object]) -> None:
        super().__init__()
        self.steps = steps
        self.seen: list[QDialog] = []
        self.kinds: list[str] = []
        self.texts: list[str] = []

    def eventFilter(self, watched, event):  # noqa: N802 (Qt's name)
        if not isinstance(watched, QDialog):
            return False
        if event.type() == QEvent.Type.Show and watched not in self.seen:
            self.seen.append(watched)
            self.kinds.append(type(watched).__name__)
            step = next((answer for kind, answer in self.steps.items() if isinstance(watched, kind)), None)
            if step is not None:
                QTimer.singleShot(0, lambda: step(watched))
        elif event.type() == QEvent.Type.Hide:  # what it said, read while it still exists
            self.texts += [label.text() for label in watched.findChildren(QLabel)]
        return False


def test_first_launch_to_a_working_environment_without_a_shell(qtbot, testbed, tmp_path, home):
    cluster = testbed.clusters["otp"]
    authorized = cluster.home / ".ssh" / "authorized_keys"
    original_keys = authorized.read_text()
    name = unique("first")
    window = MainWindow(AppPaths(tmp_path / "cfg"))
    qtbot.addWidget(window)
    window.show()
    assert window.welcome.isVisible() and window.welcome_button.text() == "Add your cluster…"
    shown_public_key: list[str] = []
    checked: list[bool] = []

    def key_dialog(dialog: KeyDialog) -> None:
        dialog.make_button.click()
        qtbot.waitUntil(lambda: dialog.made is not None, timeout=LONG)
        shown_public_key.append(dialog.public.toPlainText().strip())
        dialog.copy_button.click()
        assert QApplication.clipboard().text().strip() == shown_public_key[0]
        with open(authorized, "a") as handle:  # what the site's "add your key" page does
            handle.write(QApplication.clipboard().text().strip() + "\n")
        dialog.accept()

    def cluster_dialog(dialog: ClusterDialog) -> None:
        other = next(i for i in range(dialog.preset.count())
                     if getattr(dialog.preset.itemData(i), "id", None) == "other")  # "any Slurm site"
        dialog.preset.setCurrentIndex(other)
        dialog.name.setText("mycluster")
        dialog.host.setEditText(cluster.host)
        dialog.port.setValue(cluster.port)
        dialog.user.setText(cluster.user)
        assert dialog.no_key.isVisible(), "a newcomer without a key is offered one"
        dialog.make_key_button.click()
        qtbot.waitUntil(lambda: bool(shown_public_key) and not dialog.no_key.isVisible(), timeout=LONG)
        dialog.advanced.setChecked(True)
        dialog.pip_args.setText(" ".join(cluster.pip_args))  # the site's wheel store, as its preset would say
        dialog.test_button.click()
        qtbot.waitUntil(lambda: any("environment(s) found" in dialog.steps.item(i).text()
                                    for i in range(dialog.steps.count())), timeout=LONG)
        checked.append(True)
        dialog.save()

    def trust_dialog(dialog: TrustDialog) -> None:
        assert cluster.host_key_fingerprint in dialog.text.text()
        dialog.trust_button.click()

    def login_dialog(dialog: LoginDialog) -> None:
        dialog.field.setText(cluster.totp_now())
        dialog.accept()

    def new_env_dialog(dialog: NewEnvironmentDialog) -> None:
        qtbot.waitUntil(lambda: dialog.caps is not None, timeout=LONG)
        dialog.name.setText(name)
        dialog.packages.setPlainText("tinybeta")
        qtbot.waitUntil(lambda: dialog.buttons.button(dialog.buttons.StandardButton.Ok).isEnabled(), timeout=LONG)
        dialog.accept()

    watcher = DialogWatcher({KeyDialog: key_dialog, ClusterDialog: cluster_dialog, TrustDialog: trust_dialog,
                             LoginDialog: login_dialog, NewEnvironmentDialog: new_env_dialog})
    QApplication.instance().installEventFilter(watcher)
    try:
        window.welcome_button.click()  # returns when the Add cluster dialog is saved
        assert checked, "the connection test ran inside the dialog"
        assert window.controller.session.store.get("mycluster").host == cluster.host
        qtbot.waitUntil(lambda: "mycluster" in window.controller.refreshed, timeout=LONG)
        window.new_environment()
        qtbot.waitUntil(lambda: any(env.name == name for env in window.env_model.environments), timeout=LONG)
    finally:
        QApplication.instance().removeEventFilter(watcher)
        authorized.write_text(original_keys)

    kinds = watcher.kinds
    print(f"dialogs on the way ({len(kinds)}): {', '.join(kinds)}")
    assert len(watcher.seen) <= MAX_DIALOGS, kinds
    assert not [text for text in watcher.texts if SHELL_WORDS.search(text)], "no step asked for a command line"
    env = next(env for env in window.env_model.environments if env.name == name)
    assert env.kind == "uv", "the fastest kind the cluster offers was the default"
    freeze = cluster.run_as_user(f"module load uv && uv pip freeze --python {env.path}/bin/python").stdout.split()
    assert any(line.startswith("tinybeta==") for line in freeze), freeze
    select_env(qtbot, window, name)  # the person clicks their new environment
    snippet = window.details.findChildren(QPlainTextEdit)
    assert any(env.path in box.toPlainText() for box in snippet), "the Use it tab says how to use it"
