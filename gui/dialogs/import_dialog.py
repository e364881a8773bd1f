"""Import a file or copy an environment: shows what will be built where, and what the target lacks, first."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit,
                               QVBoxLayout, QWidget)

from envdesk.backend import validate
from envdesk.backend.errors import EnvDeskError
from envdesk.backend.inventory import Environment
from envdesk.backend.operations.export import spec_from_environment
from envdesk.backend.operations.importing import (ImportPlan, check_availability, import_environment, plan_import,
                                                  read_spec_file)
from envdesk.backend.spec import EnvSpec
from envdesk.backend.validate import LOCAL_TARGET

from ..tasks import Task
from .common import check, error_label


class ImportDialog(QDialog):
    """Pick the target (and name); the plan and the availability check run in the background."""

    def __init__(self, controller, spec: EnvSpec, target: str, *, title: str, exclude: str | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.spec = spec
        self.target = target
        self.plan: ImportPlan | None = None
        self.planning: Task | None = None
        self.setWindowTitle(title)
        self.setAccessibleName(title)
        self.setMinimumWidth(560)
        layout = QVBoxLayout(self)
        summary = QLabel(f"{spec.kind} environment, Python {spec.python or 'any'}, {len(spec.pins)} pinned "
                         f"packages" + (f", from {spec.source.get('cluster')}" if spec.source.get("cluster") else ""))
        summary.setWordWrap(True)
        layout.addWidget(summary)
        form = QFormLayout()
        self.targets = QComboBox()
        self.targets.setAccessibleName("Target cluster")
        for item in controller.targets.items:
            if item.name != exclude:
                self.targets.addItem(item.label, item.name)
        self.targets.setCurrentIndex(max(0, self.targets.findData(target)))
        self.name = QLineEdit(spec.name or "")
        self.name.setAccessibleName("New environment name")
        self.name_error = error_label()
        form.addRow("Build on:", self.targets)
        form.addRow("Name:", self.name)
        form.addRow("", self.name_error)
        layout.addLayout(form)
        self.plan_text = QLabel()
        self.plan_text.setWordWrap(True)
        self.plan_text.setAccessibleName("What will be built")
        layout.addWidget(self.plan_text)
        self.top_level = QCheckBox("If exact versions are missing there, install the top-level requirements instead")
        self.top_level.setAccessibleName("Fall back to top-level requirements")
        layout.addWidget(self.top_level)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Build")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.targets.currentIndexChanged.connect(self._target_changed)
        self.finished.connect(lambda _: self.planning is not None and self.planning.cancel())
        self.name.textChanged.connect(self._validate)
        self._target_changed()

    @classmethod
    def from_file(cls, controller, target: str, path: Path, parent: QWidget | None = None) -> "ImportDialog":
        spec = read_spec_file(path)
        return cls(controller, spec, target, title=f"Import {path.name}", parent=parent)

    @classmethod
    def for_copy(cls, controller, source: str, env: Environment, parent: QWidget | None = None) -> "ImportDialog":
        spec = spec_from_environment(env, controller.session.target(source))
        others = [item.name for item in controller.targets.items if item.name != source]
        first = next((name for name in others if name != LOCAL_TARGET), others[0] if others else LOCAL_TARGET)
        return cls(controller, spec, first, title=f"Copy {env.name} to another cluster", exclude=source,
                   parent=parent)

    def _target_changed(self) -> None:
        self.target = self.targets.currentData() or self.target
        self.plan = None
        self.plan_text.setText(f"Checking what {self.controller.label(self.target)} can provide…")
        self._validate()
        target, spec, name = self.target, self.spec, self.name.text().strip() or None
        session = self.controller.session

        def work(progress):
            plan = plan_import(session, target, spec, name, progress)
            return plan, check_availability(session, target, plan, progress)

        if self.planning is not None:
            self.planning.cancel()  # the previous target's check is no longer wanted
        self.planning = self.controller.start(f"Plan for {target}", target, work,
                                              lambda answer: self._planned(target, *answer),
                                              lambda error: self._plan_failed(target, error), record=False)

    def _planned(self, target: str, plan: ImportPlan, missing) -> None:
        if target != self.target:
            return  # an answer for a target no longer chosen
        self.plan = plan
        lines = [f"<b>{plan.kind}</b> environment with {' '.join(plan.modules) or 'no modules'} "
                 f"(Python {plan.python or '?'}), {len(plan.pins) + len(plan.conda_pins)} packages."]
        lines += [f"• {note}" for note in plan.notes]
        if missing:
            lines.append(f"<span style='color:#d64541'><b>{len(missing)} package(s) are not available there:</b> "
                         + ", ".join(f"{m.spec} ({m.reason})" for m in missing) + "</span>")
            self.top_level.setChecked(True)
        self.plan_text.setText("<br>".join(lines))
        self._validate()

    def _plan_failed(self, target: str, error: EnvDeskError) -> None:
        if target == self.target:
            self.plan_text.setText(f"<span style='color:#d64541'>{error.message} {error.hint}</span>")

    def _validate(self) -> None:
        ok = check(self.name_error, lambda: validate.env_name(self.name.text().strip()))
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok and self.plan is not None)

    def start(self) -> Task:
        target, spec, name, top = self.target, self.spec, self.name.text().strip(), self.top_level.isChecked()
        return self.controller.start(f"Build {name} on {self.controller.label(target)}", target,
                                     lambda progress: import_environment(self.controller.session, target, spec,
                                                                         name=name, top_level=top, progress=progress), changes=True)
