"""New environment: a name, a kind (the fastest the cluster has), a Python it can provide, where, and packages."""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit, QPushButton, QVBoxLayout,
                               QWidget)

from envdesk.backend import validate
from envdesk.backend.capabilities import Capabilities, choose_python
from envdesk.backend.errors import EnvDeskError, InvalidInput
from envdesk.backend.targets import check_folder

from ..failing_line import select_failing
from ..models import human_size
from ..selectable_label import SelectableLabel
from ..status_colours import problem_colour
from ..tasks import Task
from .common import breakable, check, error_label, folded_options, split_specs

KIND_HELP = {"uv": "uv (fastest)", "venv": "venv (standard)", "virtualenv": "virtualenv", "conda": "conda"}


class NewEnvironmentDialog(QDialog):
    """Only offers what the target can do, learnt from one probe in the background. Opened with a `draft` (what
    was typed into it before, see `draft`), it holds that again: a create that failed is edited, not retyped."""

    def __init__(self, controller, target: str, parent: QWidget | None = None,
                 draft: dict[str, Any] | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.target = target
        self.caps: Capabilities | None = None
        self._draft = dict(draft or {})
        self._read_file: tuple[str, list[str]] = ("", [])
        self.setWindowTitle(f"New environment on {controller.label(target)}")
        self.setAccessibleName("New environment")
        self.setMinimumWidth(520)
        layout = QVBoxLayout(self)
        self.status = SelectableLabel(f"Looking at what {controller.label(target)} offers…")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.retry = QPushButton("Try again")  # shown when the target could not be reached
        self.retry.setAccessibleName(f"Try {controller.label(target)} again")
        self.retry.clicked.connect(self._look_again)
        self.retry.hide()
        layout.addWidget(self.retry)
        form = QFormLayout()
        self.name = QLineEdit()
        self.name.setPlaceholderText("a name for it, e.g. analysis")
        self.name_error = error_label()
        self.kind = QComboBox()
        self.python = QComboBox()
        self.root = QComboBox()
        self.root.setEditable(True)
        self.root_error = error_label()
        self.space = QLabel()
        self.packages = QPlainTextEdit()
        self.packages.setPlaceholderText("One package per line (or several apart by spaces), e.g.\nnumpy\npandas>=2")
        self.packages.setMaximumHeight(110)
        self.packages_error = error_label()
        requirements_row = QHBoxLayout()
        self.requirements = QLineEdit()
        self.requirements.setPlaceholderText("optional: a requirements.txt on this computer")
        browse = QPushButton("Browse…")
        browse.setAccessibleName("Choose a requirements file")
        browse.clicked.connect(self._browse)
        requirements_row.addWidget(self.requirements, 1)
        requirements_row.addWidget(browse)
        for label, widget, name in [("Name", self.name, "Environment name"), ("", self.name_error, ""),
                                    ("Kind", self.kind, "Environment kind"), ("Python", self.python, "Python version"),
                                    ("Where", self.root, "Folder"), ("", self.root_error, ""), ("", self.space, ""),
                                    ("Packages", self.packages, "Packages to install"),
                                    ("", self.packages_error, "")]:
            if name:
                widget.setAccessibleName(name)
            form.addRow(f"{label}:" if label else "", widget)
        self.requirements.setAccessibleName("Requirements file")
        form.addRow("Requirements file:", requirements_row)
        self.jupyter_kernel = QCheckBox("Also make a Jupyter kernel")
        self.jupyter_kernel.setAccessibleName("Also make a Jupyter kernel")
        self.jupyter_kernel.setToolTip("Installs ipykernel too, then registers the environment as a Jupyter kernel "
                                       "that loads its modules first (for Open OnDemand and JupyterHub there)")
        form.addRow("", self.jupyter_kernel)
        layout.addLayout(form)
        self.advanced, advanced = folded_options()
        self.modules = QLineEdit()
        self.modules.setPlaceholderText("modules to load instead of the automatic choice")
        self.modules.setAccessibleName("Modules")
        self.system_site = QCheckBox("See the system's (module's) packages too")
        self.system_site.setAccessibleName("System site packages")
        advanced.addRow("Modules:", self.modules)
        advanced.addRow("", self.system_site)
        layout.addWidget(self.advanced)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Create")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        for signal in (self.name.textChanged, self.packages.textChanged, self.requirements.editingFinished,
                       self.root.editTextChanged):
            signal.connect(self._validate)
        self._type_draft()
        self._validate()
        controller.capabilities(target, self._ready, self._failed)

    def _ready(self, caps: Capabilities) -> None:
        try:
            caps.default_kind()
        except InvalidInput as exc:  # no kind can be made there (a Python without ensurepip, and no uv: T26)
            self.caps = None
            self._failed(exc)
            self._validate()  # Create stays off: there is nothing to make
            return
        self.caps = caps
        self.kind.clear()
        for kind in caps.kinds():
            self.kind.addItem(KIND_HELP.get(kind, kind), kind)
        self.kind.setCurrentIndex(max(0, self.kind.findData(caps.default_kind())))  # the preset's, where it names one
        self.python.clear()
        for version in reversed(caps.python_versions()):
            self.python.addItem(python_item(caps, version), version)
        self.root.clear()
        for root in self.controller.roots(self.target):
            self.root.addItem(root)
        space = f"Free space in your home folder: {human_size(caps.free_bytes)}"
        if caps.quota:
            quotas = html.escape("\n".join(caps.quota))
            space += f"<br>Your quotas, as the cluster reports them:<pre>{quotas}</pre>"
        self.space.setText(space)
        preset = (f" New environments are {caps.default_kind()}, as the cluster's preset says; the others stay a "
                  "choice." if caps.preferred_kind else "")
        self.status.setText(f"{self.controller.label(self.target)} can make: {', '.join(caps.kinds())}.{preset}")
        self._choose_draft()
        self._validate()

    def _type_draft(self) -> None:
        """The draft's typed fields, at once; its choices wait for what the target offers (`_choose_draft`)."""
        draft = self._draft
        self.name.setText(draft.get("name", ""))
        self.packages.setPlainText(draft.get("packages", ""))
        self.requirements.setText(draft.get("requirements", ""))
        self.jupyter_kernel.setChecked(bool(draft.get("jupyter_kernel")))
        self.modules.setText(draft.get("modules", ""))
        self.system_site.setChecked(bool(draft.get("system_site_packages")))
        if self.modules.text() or self.system_site.isChecked():
            self.advanced.setChecked(True)  # what was set there is seen, not hidden under a fold
        select_failing(self.packages, draft.get("failure", ""))  # what the create failed on (see failing_line)

    def _choose_draft(self) -> None:
        """The draft's kind and Python where the target still offers them, and its folder."""
        for box, value in ((self.kind, self._draft.get("kind")), (self.python, self._draft.get("python"))):
            found = box.findData(value) if value is not None else -1
            if found >= 0:
                box.setCurrentIndex(found)
        if self._draft.get("root"):
            self.root.setEditText(self._draft["root"])

    def _failed(self, error: EnvDeskError) -> None:
        self.status.setText(f"<span style='color:{problem_colour()}'>{html.escape(breakable(error.message))}</span> "
                            f"{html.escape(error.hint)} What you typed stays here meanwhile.")
        self.retry.show()

    def _look_again(self) -> None:
        self.retry.hide()
        self.status.setText(f"Looking at what {self.controller.label(self.target)} offers…")
        self.controller.capabilities(self.target, self._ready, self._failed)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Requirements file", "", "Requirements (*.txt);;All files (*)")
        if path:
            self.requirements.setText(path)
            self._validate()

    def _packages(self) -> list[str]:
        return split_specs(self.packages.toPlainText()) + self._requirements_file()

    def _requirements_file(self) -> list[str]:
        """The packages of the chosen requirements file, read once per path (not per keystroke)."""
        path = self.requirements.text().strip()
        if not path:
            return []
        if self._read_file[0] != path:
            self._read_file = (path, self.controller.requirements_to_create(Path(path)))
        return self._read_file[1]

    def _validate(self) -> None:
        """Every field checked as it is typed, with the words the command line uses; Create stays disabled
        until all are fine, so nothing typed is lost to an error after the dialog closed."""
        root = self.root.currentText().strip()
        root_ok = check(self.root_error, lambda: root and check_folder(self.target, root))
        name_ok = check(self.name_error, lambda: self.controller.check_new_location(
            self.target, self.name.text().strip(), root if root_ok and root else None))
        if not self.name.text():
            self.name_error.setText("")
        packages_ok = check(self.packages_error, lambda: [validate.package_spec(p) for p in self._packages()])
        create = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        create.setEnabled(self.caps is not None and name_ok and root_ok and packages_ok)
        create.setToolTip(_why_not(self.caps is None, self.name.text().strip(),
                                   (self.name_error, self.root_error, self.packages_error)))

    def accept(self) -> None:
        """Create only what was checked: a field changed since (a file path typed, then Create clicked) is checked
        first, and an error keeps the dialog open with what was typed."""
        self._validate()
        if self.buttons.button(QDialogButtonBox.StandardButton.Ok).isEnabled():
            super().accept()

    def request(self) -> dict[str, Any]:
        """What to create, as the controller's `create` takes it."""
        return dict(name=self.name.text().strip(), kind=self.kind.currentData(),
                    python=None if self.modules.text().strip() else self.python.currentData(),
                    modules=self.modules.text().split(), system_site_packages=self.system_site.isChecked(),
                    root=self.root.currentText().strip() or None, packages=self._packages(),
                    jupyter_kernel=self.jupyter_kernel.isChecked())

    def draft(self) -> dict[str, Any]:
        """What was typed and chosen, as typed (a new dialog opened with it holds the same)."""
        return dict(name=self.name.text(), kind=self.kind.currentData(), python=self.python.currentData(),
                    root=self.root.currentText(), packages=self.packages.toPlainText(),
                    requirements=self.requirements.text(), jupyter_kernel=self.jupyter_kernel.isChecked(),
                    modules=self.modules.text(), system_site_packages=self.system_site.isChecked())

    def start(self) -> Task:
        return self.controller.create(self.target, **self.request())


def python_item(caps: Capabilities, version: str) -> str:
    """How a Python version is offered: with the modules that give it (a module behind a compiler after the
    compiler's, as Lmod's spider says to load them), or as the system's own."""
    modules = choose_python(caps, version, "venv").modules
    return f"Python {version}: " + (f"module {' '.join(modules)}" if modules else "the system's")


def _why_not(still_looking: bool, name: str, notes: tuple[QLabel, ...]) -> str:
    """Why Create is greyed, for its tooltip (a greyed button says nothing by itself; a user trial): what is
    still awaited, a missing name, or the first field's problem. Empty when nothing holds it back."""
    if still_looking:
        return "Still looking at what this target offers."
    if not name:
        return "Type a name for the environment first."
    return next((note.text().replace("\u200b", "") for note in notes if note.text()), "")
