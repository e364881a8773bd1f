"""The question asked the first time EnvDesk meets a server: trust its key, with the site's published verdict."""
from __future__ import annotations

import html
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

from envdesk.backend.errors import authority_note
from envdesk.backend.presets import DOES_NOT_MATCH, MATCHES, HostKeyVerdict, judge_host_key

from ..status_colours import good_colour, problem_colour

if TYPE_CHECKING:  # hostkeys loads paramiko, which the window needs only once a cluster is reached
    from envdesk.backend.hostkeys import ServerIdentity

_COLOURS = {MATCHES: good_colour, DOES_NOT_MATCH: problem_colour}  # for the palette in force (status_colours)


class TrustDialog(QDialog):
    """A server seen for the first time: its fingerprint, what the site publishes, and what trusting means.

    When the site publishes other fingerprints for the host, the Trust button stays disabled until
    the user ticks that the site told them the key changed: the default is not to connect.
    """

    def __init__(self, cluster: str, identity: ServerIdentity, parent: QWidget | None = None,
                 verdict: HostKeyVerdict | None = None) -> None:
        super().__init__(parent)
        self.verdict = verdict if verdict is not None else judge_host_key(identity)
        self.setWindowTitle(f"Trust {identity.host}?")
        self.setAccessibleName("Trust this server")
        self.setMinimumWidth(520)
        layout = QVBoxLayout(self)
        self.text = text = QLabel(
            f"<p>EnvDesk has never connected to <b>{html.escape(identity.host)}</b> (port {identity.port}, "
            f"cluster {html.escape(cluster)}) before. Its identity is:</p>"
            f"<p><tt>{html.escape(identity.key_type)} {html.escape(identity.fingerprint)}</tt></p>"
            + (f"<p>{html.escape(authority_note(identity.authority))}</p>" if identity.authority else ""))
        text.setWordWrap(True)
        text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(text)
        self.verdict_label = QLabel(self._verdict_html())
        self.verdict_label.setWordWrap(True)
        self.verdict_label.setAccessibleName("Published fingerprint check")
        self.verdict_label.setOpenExternalLinks(True)
        self.verdict_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        layout.addWidget(self.verdict_label)
        self.advice = QLabel(self._advice())
        self.advice.setWordWrap(True)
        layout.addWidget(self.advice)
        buttons = QDialogButtonBox()
        self.trust_button = buttons.addButton("Trust and connect", QDialogButtonBox.ButtonRole.AcceptRole)
        self.trust_button.setToolTip("Remember this server's identity and connect; EnvDesk then refuses any other "
                                     "server pretending to be it")
        cancel = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        cancel.setToolTip("Do not connect, and record nothing")
        self.override: QCheckBox | None = None
        if self.verdict.status == DOES_NOT_MATCH:
            self.override = QCheckBox("The site told me its key changed: connect anyway")
            self.override.setAccessibleName("Connect although the fingerprint does not match")
            self.override.toggled.connect(self.trust_button.setEnabled)
            layout.addWidget(self.override)
            self.trust_button.setEnabled(False)
            cancel.setDefault(True)
            cancel.setFocus()
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _verdict_html(self) -> str:
        verdict = self.verdict
        colour = _COLOURS[verdict.status]() if verdict.status in _COLOURS else None
        mark = {MATCHES: "✓ ", DOES_NOT_MATCH: "✗ "}.get(verdict.status, "")
        headline = html.escape(mark + verdict.headline)
        parts = [f"<p><b style='color:{colour}'>{headline}</b></p>" if colour else f"<p><b>{headline}</b></p>"]
        if verdict.status == DOES_NOT_MATCH:
            listed = "<br>".join(f"<tt>{html.escape(e.type)} {html.escape(e.fingerprint)}</tt>"
                                 for e in verdict.published)
            parts.append(f"<p>{html.escape(verdict.site)} publishes:<br>{listed}</p>")
        for page, checked in verdict.sources:
            parts.append(f"<p>Source: <a href='{html.escape(page, quote=True)}'>{html.escape(page)}</a> "
                         f"(checked {html.escape(checked)})</p>")
        return "".join(parts)

    def _advice(self) -> str:
        if self.verdict.status == MATCHES:
            return ("Trust it: EnvDesk will then refuse any other server pretending to be this one.")
        if self.verdict.status == DOES_NOT_MATCH:
            return ("Someone may be pretending to be this server, or the site changed its key. Cancel, and ask "
                    "your cluster's support before connecting.")
        return ("If this matches the fingerprint your cluster publishes, trust it: EnvDesk will then refuse any "
                "other server pretending to be this one. If it does not match, cancel.")
