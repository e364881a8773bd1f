"""Make an SSH key for someone who has none, then show its public line and where the site registers it."""
from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QPlainTextEdit, QPushButton, QStackedWidget, QVBoxLayout, QWidget)

from envdesk.backend.errors import EnvDeskError
from envdesk.backend.presets import Preset
from envdesk.backend.secrets import keyring_problem
from envdesk.backend.sshkeys import NewKey, create_key

from .common import error_label


class KeyDialog(QDialog):
    """Two steps: make the key (passphrase optional), then copy its public line to the site's key page."""

    def __init__(self, preset: Preset | None = None, parent: QWidget | None = None, *,
                 key_path: Path | None = None) -> None:
        super().__init__(parent)
        self.preset = preset
        self.key_path = key_path  # None: ~/.ssh/id_ed25519
        self.made: NewKey | None = None
        self.setWindowTitle("Make an SSH key")
        self.setAccessibleName("Make an SSH key")
        self.setMinimumWidth(560)
        layout = QVBoxLayout(self)
        self.pages = QStackedWidget()
        self.pages.addWidget(self._make_page())
        self.pages.addWidget(self._show_page())
        layout.addWidget(self.pages)

    # -- step 1: make ----------------------------------------------------------------------

    def _make_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        intro = QLabel(
            "<p>You have no SSH key on this computer yet. A key is how the cluster recognises you without "
            "a password: a private part that stays here, and a public part you give the cluster's site.</p>"
            "<p>EnvDesk can make one for you now (an ed25519 key in your .ssh folder). A passphrase is "
            "optional: it locks the private part, so a stolen laptop does not give away your login.</p>")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        form = QFormLayout()
        self.passphrase = QLineEdit()
        self.passphrase.setEchoMode(QLineEdit.EchoMode.Password)
        self.passphrase.setAccessibleName("Passphrase (optional)")
        self.repeat = QLineEdit()
        self.repeat.setEchoMode(QLineEdit.EchoMode.Password)
        self.repeat.setAccessibleName("Passphrase again")
        form.addRow("Passphrase (optional):", self.passphrase)
        form.addRow("Passphrase again:", self.repeat)
        layout.addLayout(form)
        problem = keyring_problem()
        self.remember = QCheckBox("Remember the passphrase in the system keyring")
        self.remember.setAccessibleName("Remember the passphrase in the system keyring")
        self.remember.setVisible(problem is None)
        layout.addWidget(self.remember)
        self.no_keyring = QLabel(problem or "")
        self.no_keyring.setWordWrap(True)
        self.no_keyring.setVisible(problem is not None)
        layout.addWidget(self.no_keyring)
        self.error = error_label()
        layout.addWidget(self.error)
        buttons = QDialogButtonBox()
        self.make_button = buttons.addButton("Make a key for me", QDialogButtonBox.ButtonRole.AcceptRole)
        self.make_button.setDefault(True)
        buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.make_button.clicked.connect(self.make_key)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        return page

    def make_key(self) -> NewKey | None:
        """Make the key from the form; on success, show its public line."""
        self.error.setText("")
        if self.passphrase.text() != self.repeat.text():
            self.error.setText("The two passphrases differ. Type the same passphrase twice, or leave both empty.")
            return None
        try:
            self.made = create_key(self.key_path, passphrase=self.passphrase.text(),
                                   remember=self.remember.isVisible() and self.remember.isChecked())
        except EnvDeskError as exc:
            self.error.setText(str(exc))
            return None
        self.passphrase.clear()
        self.repeat.clear()
        self.show_key(self.made)
        return self.made

    # -- step 2: give the public part to the site ---------------------------------------------

    def _show_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        self.done_text = QLabel()
        self.done_text.setWordWrap(True)
        layout.addWidget(self.done_text)
        row = QHBoxLayout()
        self.public = QPlainTextEdit()
        self.public.setReadOnly(True)
        self.public.setAccessibleName("Your public key")
        self.public.setMaximumHeight(80)
        row.addWidget(self.public, 1)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setAccessibleName("Copy the public key")
        self.copy_button.clicked.connect(self.copy)
        row.addWidget(self.copy_button)
        layout.addLayout(row)
        self.where = QLabel()
        self.where.setWordWrap(True)
        self.where.setOpenExternalLinks(True)
        self.where.setAccessibleName("Where to register the key")
        layout.addWidget(self.where)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.accept)
        layout.addWidget(buttons)
        return page

    def show_key(self, key: NewKey) -> None:
        """Show `key`'s public line, a Copy button and the site's page for registering keys."""
        self.setWindowTitle("Your new SSH key")
        remembered = " Its passphrase is kept in the system keyring." if key.remembered else ""
        self.done_text.setText(
            f"<p>Your key is made: <tt>{html.escape(str(key.path))}</tt> (keep this file private).{remembered}</p>"
            "<p>Give the cluster this public part. It is safe to share:</p>")
        self.public.setPlainText(key.public_line)
        self.where.setText(self._where_html())
        self.pages.setCurrentIndex(1)
        self.copy_button.setFocus()

    def _where_html(self) -> str:
        page = self.preset.key_page if self.preset is not None else ""
        if page:
            site = html.escape(self.preset.label if self.preset is not None else "the site")
            return (f"<p>Copy it, then paste it on {site}'s page for SSH keys:<br>"
                    f"<a href='{html.escape(page, quote=True)}'>{html.escape(page)}</a></p>"
                    "<p>It can take a few minutes before the cluster knows the new key.</p>")
        return ("<p>Copy it and send it to your cluster's support, or follow your site's instructions for "
                "adding an SSH key (often: add this line to <tt>~/.ssh/authorized_keys</tt> on the cluster).</p>")

    def copy(self) -> None:
        """Put the public line on the clipboard."""
        QGuiApplication.clipboard().setText(self.public.toPlainText())
        self.copy_button.setText("Copied")
