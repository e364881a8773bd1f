"""Import a file or copy an environment: shows what will be built where, and what the target lacks, first."""
from __future__ import annotations

from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit,
                               QScrollArea, QVBoxLayout, QWidget)

from envdesk.backend.errors import EnvDeskError, InvalidInput
from envdesk.backend.inventory import Environment
from envdesk.backend.spec import EnvSpec, conda_entry_name
from envdesk.backend.validate import LOCAL_TARGET
from envdesk.backend.wording import counted

from ..controller import ImportPlan, Unavailable
from ..selectable_label import SelectableLabel
from ..status_colours import problem_colour
from ..tasks import Task, while_alive
from .common import breakable, check, error_label

if TYPE_CHECKING:
    from envdesk.backend.capabilities import Capabilities


NAME_CHECK_DELAY_MS = 250
"""How long typing pauses before the target is asked whether the name is free (one question per pause, not per
key)."""
UV_PROJECT_FILES = ("uv.lock", "pyproject.toml")
"""Either names the uv project of its folder (as `envdesk env import` takes them)."""


def package_count(pip_lines: list[str], conda_lines: list[str]) -> int:
    """How many packages an import installs, as its summary and its plan both count them: the Python and its pip
    aside (said as "Python 3.11"; a venv made in a conda file's place has both of its own)."""
    return len(pip_lines) + sum(conda_entry_name(line) not in ("python", "pip") for line in conda_lines)


class ImportDialog(QDialog):
    """Pick the target (and name); the plan and the availability check run in the background. Given a `draft`
    (what was chosen in it before, see `draft`), it holds that again: a build that failed is edited, not redone."""

    def __init__(self, controller, spec: EnvSpec, target: str, *, title: str, exclude: str | None = None,
                 source: tuple[str, Environment] | None = None, parent: QWidget | None = None,
                 draft: dict[str, Any] | None = None, project: Path | None = None) -> None:
        super().__init__(parent)
        target = (draft or {}).get("target") or target
        self.controller = controller
        self.spec = spec
        self.source = source  # (target, environment) when copying, else None
        self.project = project  # a uv project's folder: its locked versions are chosen for each target
        self.target = target
        self.plan: ImportPlan | None = None
        self.planned_spec = spec  # what the plan shown was made of: a copy's source as read for it
        self.missing: list[Unavailable] = []  # what the check of the plan shown found missing on its target
        self.planning: Task | None = None
        self.looking: Task | None = None  # the question to the target: is the name's folder there already?
        self.name_answer: tuple[str, str, str | None] | None = None  # (target, name, its folder if taken)
        self.name_timer = QTimer(self)
        self.name_timer.setSingleShot(True)
        self.name_timer.setInterval(NAME_CHECK_DELAY_MS)
        self.name_timer.timeout.connect(self._look_for_name)
        self.setWindowTitle(title)
        self.setAccessibleName(title)
        self.setMinimumWidth(560)
        layout = QVBoxLayout(self)
        source = spec.source.get("cluster")
        packages = package_count(*controller.install_lines(spec))
        self.summary = QLabel(f"uv project {spec.name}: what its uv.lock selects for the target, with a Python "
                              "its requires-python allows" if project else
                              f"{spec.kind + ' environment' if spec.kind_named else 'A new environment'}, "
                              f"Python {spec.python or 'any'}, "
                              f"{counted(packages, 'package')}"
                              + (f", from {controller.label(source)}" if source else "") + self._left_to_it(packages))
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        form = QFormLayout()
        self.targets = QComboBox()
        self.targets.setAccessibleName("Target cluster")
        for item in controller.targets.items:
            if item.name != exclude:
                self.targets.addItem(item.label, item.name)
        self.targets.setCurrentIndex(max(0, self.targets.findData(target)))
        offered = controller.free_name(target, spec.name) if spec.name else ""
        self.name = QLineEdit((draft or {}).get("name") or offered)
        self.name.setAccessibleName("New environment name")
        self.name_error = error_label()
        self.python = QComboBox()  # a file's own Python may not be on the target (a course's old one, say)
        self.python.setAccessibleName("Python")
        self.python.setToolTip("The Python to make it with: the file's own, or one the target has")
        self.python.addItem("As the project's requires-python allows" if project else
                            f"As the source has: Python {spec.python} (or the nearest there)" if source and spec.python
                            else f"As the file asks: Python {spec.python}" if spec.python else "The target's newest",
                            None)
        self.python.setEnabled(source is None and project is None)  # a copy's is the source's; a project's, its own
        self.wanted_python = (draft or {}).get("python")
        form.addRow("Build on:", self.targets)
        form.addRow("Python:", self.python)
        form.addRow("Name:", self.name)
        form.addRow("", self.name_error)
        layout.addLayout(form)
        self.plan_text = SelectableLabel()  # a problem in it can be copied (T25)
        self.plan_text.setWordWrap(True)
        self.plan_text.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)  # not centred in its room
        self.plan_text.setAccessibleName("What will be built")
        self.plan_area = QScrollArea()  # a long plan scrolls; the dialog grows to show a short one whole (_fit)
        self.plan_area.setWidgetResizable(True)
        self.plan_area.setFrameShape(QScrollArea.Shape.NoFrame)
        self.plan_area.setWidget(self.plan_text)
        self.plan_area.setAccessibleName("The plan, scrolled")  # a Tab stop (arrows scroll it): named (T25)
        layout.addWidget(self.plan_area, 1)
        self.top_level = QCheckBox("If exact versions are missing there, allow newer versions of what was asked for")
        self.top_level.setAccessibleName("Fall back to top-level requirements")
        self.top_level.setChecked(bool((draft or {}).get("top_level")))
        layout.addWidget(self.top_level)
        self.other_builds = QCheckBox("Where a pinned build (+cu118, +cpu…) is missing there, install its release, "
                                      "a different build")
        self.other_builds.setAccessibleName("Install other builds")
        self.other_builds.setVisible(False)  # shown where the plan has such a pin: the user's explicit choice
        layout.addWidget(self.other_builds)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Build")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.targets.currentIndexChanged.connect(self._target_changed)
        self.python.activated.connect(lambda _: self._python_chosen())
        self.finished.connect(lambda _: self._stop_asking())
        self.name.textChanged.connect(self._name_changed)
        if self.targets.count() == 0:
            self.plan_text.setText(f"<span style='color:{problem_colour()}'>There is no other cluster to copy to. "
                                   "Add a second cluster first (Cluster ▸ Add cluster…).</span>")
            self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(False)
            self.name.setEnabled(False)
            return
        self._target_changed()

    @classmethod
    def from_file(cls, controller, target: str, path: Path, parent: QWidget | None = None,
                  draft: dict[str, Any] | None = None) -> "ImportDialog":
        """The dialog for an environment file, or for a uv project (its folder, uv.lock or pyproject.toml)."""
        if path.is_dir() or path.name in UV_PROJECT_FILES:
            from envdesk.backend.uvproject import to_spec
            project = controller.read_uv_project(path)
            spec = to_spec(project)  # for its name and Python; each target's plan selects from the lock for it
            spec.name, spec.python = project.name, project.python
            return cls(controller, spec, target, title=f"Import {project.name} (uv project)", parent=parent,
                       draft=draft, project=project.folder)
        spec = controller.read_spec(path)  # named after the file when it names no environment
        return cls(controller, spec, target, title=f"Import {path.name}", parent=parent, draft=draft)

    @classmethod
    def for_copy(cls, controller, source: str, env: Environment, parent: QWidget | None = None,
                 draft: dict[str, Any] | None = None) -> "ImportDialog":
        spec = controller.spec_of(source, env)
        others = [item.name for item in controller.targets.items if item.name != source]
        first = next((name for name in others if name != LOCAL_TARGET), others[0] if others else source)
        return cls(controller, spec, first, title=f"Copy {env.name} to another cluster", exclude=source,
                   source=(source, env), parent=parent, draft=draft)

    def _left_to_it(self, packages: int) -> str:
        """Why a copy names fewer packages than its environment lists (a user trial: 5 listed, 3 here)."""
        listed = len(self.source[1].packages) if self.source else 0
        if listed <= packages or self.source is None:
            return ""
        if self.source[1].kind == "conda":  # T21 LOW-10: its Python and pip are counted apart (package_count)
            aside = [p.name for p in self.source[1].packages
                     if p.installer == "conda" and conda_entry_name(p.name) in ("python", "pip")]
            return (f" (the list shows {listed}, with conda's {' and '.join(aside)}, which the new environment has "
                    "of its own)") if aside else ""
        return (f" (the list shows {listed}: pip, and setuptools and wheel on Pythons before 3.12, come with the new "
                "environment itself, as pip freeze leaves them out)")

    def draft(self) -> dict[str, Any]:
        """What was chosen, as chosen (a new dialog given it holds the same)."""
        return dict(target=self.target, name=self.name.text(), top_level=self.top_level.isChecked(),
                    python=self.python.currentData())

    def chosen_spec(self) -> EnvSpec:
        """The file's spec, made with the Python chosen in place of its own, if one is."""
        chosen = self.python.currentData()
        return self.controller.with_python(self.spec, chosen) if chosen else self.spec

    def _target_changed(self) -> None:
        self.target = self.targets.currentData() or self.target
        self._look_for_name()
        if self.python.isEnabled():  # the Pythons this target has, once known (probed once per session)
            target = self.target
            self.controller.capabilities(target, while_alive(lambda caps: self._pythons(target, caps), self))
        self._replan()

    def _pythons(self, target: str, caps: Capabilities) -> None:
        if target != self.target:
            return
        wanted = self.python.currentData() or self.wanted_python
        while self.python.count() > 1:
            self.python.removeItem(1)
        for version in reversed(caps.python_versions()):
            self.python.addItem(f"Python {version}", version)
        index = self.python.findData(wanted) if wanted else 0
        if index > 0 and self.python.currentIndex() != index:
            self.python.setCurrentIndex(index)
            self._replan()
        self.wanted_python = None

    def _python_chosen(self) -> None:
        self.wanted_python = None
        self._replan()

    def _replan(self) -> None:
        self.plan = None
        self.plan_text.setText(f"Checking what {self.controller.label(self.target)} can provide…")
        self._validate()
        target, name = self.target, self.name.text().strip() or None
        if self.planning is not None:
            self.planning.cancel()  # the previous target's (or Python's) check is no longer wanted
        failed = while_alive(lambda error: self._plan_failed(target, error), self)
        if self.source is not None:  # planned from the source read again: what Build then copies
            self.planning = self.controller.plan_copy(
                *self.source, target, self.python.currentData(), name,
                while_alive(lambda spec, plan, missing: self._planned(target, plan, missing, spec), self), failed)
            return
        spec = self.chosen_spec()
        self.planning = self.controller.plan_import(
            target, spec, name, while_alive(lambda plan, missing: self._planned(target, plan, missing, spec), self),
            failed, project=self.project)

    def _planned(self, target: str, plan: ImportPlan, missing: list[Unavailable], spec: EnvSpec) -> None:
        if target != self.target:
            return  # an answer for a target no longer chosen
        self.plan, self.missing, self.planned_spec = plan, list(missing), spec
        plan = plan.shown()  # never a token of the file's lines on the screen
        red = f"<span style='color:{problem_colour()}'>"
        lines = [f"<b>{plan.kind}</b> environment with {' '.join(plan.modules) or 'no modules'} "
                 f"(Python {plan.python or '?'}), "  # a site's build counted as the release it becomes here
                 f"{counted(package_count(plan.pins + list(plan.public_releases), plan.conda_pins), 'package')}."]
        if plan.outside:
            lines.append(f"{red}<b>{len(plan.outside)} package(s) are downloaded from "
                         "outside this target's package index</b> (building means you trust them):</span>")
            lines += [f"• {escape(o.line)} from <b>{escape(o.host)}</b>" for o in plan.outside]
        lines += [f"• {escape(note)}" for note in plan.notes]
        if plan.constraints:
            lines.append(f"<b>Within {counted(len(plan.constraints), 'constraint')}</b>, which the environment keeps "
                         f"for later installs: {escape(', '.join(plan.constraints))}")
        if plan.adapted:
            lines.append(f"<b>{len(plan.adapted)} line(s) installed in another form:</b>")
            lines += [f"• {escape(a.line)} → {escape(a.as_)} ({escape(a.reason)})" for a in plan.adapted]
        if plan.from_conda:
            lines.append(f"{red}<b>No conda here: {len(plan.from_conda)} conda package(s) "
                         "come from the package index, PyPI's builds</b> (building means you agree):</span> "
                         + escape(", ".join(plan.from_conda)))
        if plan.refused:
            lines.append(f"{red}<b>{len(plan.refused)} line(s) will be left out</b> "
                         "(building means you agree):</span>")
            lines += [f"• {escape(r.line)}: {escape(r.reason)}" for r in plan.refused]
        if plan.blocked:
            lines.append(f"{red}<b>Cannot be built here:</b> {escape(plan.blocked)}</span>")
        if missing:
            lines.append(f"{red}<b>{len(missing)} package(s) are not available there:</b> "
                         + ", ".join(escape(f"{m.spec} ({m.reason})") for m in missing) + "</span>")
            # offered, not chosen, for conda: it also drops the file's builds (R19: one missing pip: line did)
            self.top_level.setChecked(plan.kind != "conda")
        self.other_builds.setVisible(bool(plan.other_builds))
        self.other_builds.setChecked(False)  # never chosen for the user: it changes what they get (F18)
        self.plan_text.setText("<br>".join(lines))
        self._fit()
        self._validate()

    def _fit(self) -> None:
        """Grow the dialog until the plan shows whole, up to most of the screen's height (then it scrolls): the
        plan came after the dialog was laid out, and its last notes were cut off (a user trial)."""
        viewport = self.plan_area.viewport()
        missing = self.plan_text.heightForWidth(viewport.width()) - viewport.height()
        if missing > 0:
            screen = self.screen().availableGeometry().height() if self.screen() is not None else 800
            self.resize(self.width(), min(self.height() + missing, int(screen * 0.85)))

    def _plan_failed(self, target: str, error: EnvDeskError) -> None:
        if target == self.target:
            self.plan_text.setText(f"<span style='color:{problem_colour()}'>{escape(breakable(error.message))} "
                                   f"{escape(error.hint)}</span>")
            self._fit()

    def _stop_asking(self) -> None:
        """The dialog closed: the plan and the name's check it asked for are no longer wanted."""
        self.name_timer.stop()
        for task in (self.planning, self.looking):
            if task is not None:
                task.cancel()

    def _name_changed(self) -> None:
        """Judge the name at once from what is known here; ask the target once typing pauses."""
        self._validate()
        self.name_timer.start()

    def _look_for_name(self) -> None:
        """Ask the target (in a worker) whether the chosen name's folder is there already: what this computer
        knows of it may be missing or old, and Build then failed at "Reserving" (a user trial)."""
        self.name_timer.stop()
        if self.looking is not None:
            self.looking.cancel()
        target, name = self.target, self.name.text().strip()
        if self.targets.count() == 0 or not check(self.name_error, lambda: self._check_name(target, name)):
            return
        self.looking = self.controller.taken_folder(
            target, name, while_alive(lambda folder: self._looked(target, name, folder), self),
            while_alive(lambda error: self._looked(target, name, None), self))  # the build checks again there

    def _looked(self, target: str, name: str, folder: str | None) -> None:
        self.name_answer = (target, name, folder)
        self._validate()

    def _check_name(self, target: str, name: str) -> None:
        """Refuse (InvalidInput) a name the target cannot take: a bad name, one its known list has, or one whose
        folder the target said is there."""
        self.controller.check_new_location(target, name)
        if self.name_answer is not None and self.name_answer[:2] == (target, name) and self.name_answer[2]:
            raise InvalidInput(f"{self.name_answer[2]} already exists on {self.controller.label(target)}. "
                               "Pick another name, or delete that environment first.")

    def _name_is_free(self) -> bool:
        """The target itself said the chosen name's folder is not there."""
        answer = self.name_answer
        return answer is not None and answer == (self.target, self.name.text().strip(), None)

    def _validate(self) -> None:
        if self.targets.count() == 0:
            return
        target, name = self.target, self.name.text().strip()
        ok = check(self.name_error, lambda: self._check_name(target, name)) and self._name_is_free()
        buildable = self.plan is not None and not self.plan.blocked
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok and buildable)
        if self.plan is not None:
            self._fit()  # a message under the name takes room from the plan: the dialog grows instead (T9)

    def start(self) -> Task:
        """Build on the chosen target: a copy of the source environment, or the file's spec."""
        name, top = self.name.text().strip(), self.top_level.isChecked()
        shown = (self.plan, self.missing) if self.plan is not None else None  # not tried again (T20)
        builds = bool(self.plan is not None and self.plan.other_builds and self.other_builds.isChecked())
        if self.source is not None:
            return self.controller.clone(self.source[0], self.source[1], self.target, name=name, top_level=top,
                                         spec=self.planned_spec, shown=shown, other_builds=builds)
        return self.controller.import_spec(self.target, self.planned_spec, name=name, top_level=top,
                                           project=self.project, shown=shown, other_builds=builds)
