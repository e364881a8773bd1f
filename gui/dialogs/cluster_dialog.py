"""Add or edit a cluster: a preset or ~/.ssh/config to start from, the login method, and a connection test."""
from __future__ import annotations

from typing import Any, Sequence

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout,
                               QLabel, QLineEdit, QListWidget, QListWidgetItem, QMenu, QPlainTextEdit, QPushButton,
                               QScrollArea, QSpinBox, QVBoxLayout, QWidget)

from envdesk.backend.config import DEFAULT_ENV_ROOTS, ClusterProfile
from envdesk.backend.errors import EnvDeskError, InvalidInput
from envdesk.backend.ssh_config import load_ssh_config, profiles_from_ssh_config
from envdesk.backend.sshkeys import find_keys

from ..controller import ConnectionCheck
from ..tasks import Task
from .common import error_label, folded_options, lines_of
from .key_dialog import KeyDialog

KEY_METHODS = ("auto", "key", "key+code")
LOGIN_METHODS = [("auto", "Let EnvDesk find out"), ("key", "SSH key"), ("password", "Password"),
                 ("key+code", "SSH key + one-time code"), ("password+code", "Password + one-time code")]


CONDA_SOLVER_CHOICES = [("auto", "Automatic: mamba where installed, else conda's libmamba solver"),
                        ("libmamba", "conda, with its libmamba solver"), ("classic", "conda, with its classic solver"),
                        ("mamba", "mamba")]
"""validate.CONDA_SOLVERS, in words."""


class CondaOptions:
    """The dialog's folded "conda" group: the solver conda commands use on the cluster, and the channels they get,
    in order (none: conda's own settings there)."""

    def __init__(self) -> None:
        self.group, form = folded_options("Conda settings")
        self.group.setAccessibleName("Conda settings")
        self.solver = QComboBox()
        for value, text in CONDA_SOLVER_CHOICES:
            self.solver.addItem(text, value)
        self.channels = QLineEdit()
        self.channels.setPlaceholderText("conda-forge bioconda (in order; empty: conda's own settings)")
        for label, widget in [("Solver", self.solver), ("Channels", self.channels)]:
            widget.setAccessibleName(f"conda {label.lower()}")
            form.addRow(label + ":", widget)

    def fill(self, solver: str, channels: Sequence[str]) -> None:
        """Show a profile's (or a preset's) settings, unfolding the group when they are not the defaults."""
        self.solver.setCurrentIndex(max(0, self.solver.findData(solver)))
        self.channels.setText(" ".join(channels))
        if solver != "auto" or channels:
            self.group.setChecked(True)

    def fields(self) -> dict[str, Any]:
        """The group as ClusterProfile fields (checked there: a bad channel is refused in plain words)."""
        return {"conda_solver": self.solver.currentData(), "conda_channels": self.channels.text().split()}


class ComputeNodeOptions:
    """The dialog's folded "Slurm" group (issue 12): the account jobs use, and whether environments are built on a
    compute node as Slurm jobs, in which partition and with which time limit. Unless the user ticks or unticks
    the box, the profile leaves that choice to its preset (which says whether its login nodes limit long
    processes)."""

    def __init__(self) -> None:
        self.group, form = folded_options("Slurm settings")
        self.group.setAccessibleName("Slurm settings")
        self.account = QLineEdit()
        self.account.setPlaceholderText("e.g. def-yourpi (if your cluster's jobs need one)")
        self.on_compute_node = QCheckBox("Build environments on a compute node (Slurm)")
        self.on_compute_node.setToolTip("Create, import and large updates run as Slurm jobs (srun) instead of on "
                                        "the login node, for clusters whose login nodes stop long processes. Small "
                                        "updates stay on the login node.")
        self.partition = QLineEdit()
        self.partition.setPlaceholderText("default: the cluster's")
        self.time = QLineEdit()
        self.time.setPlaceholderText("01:00:00")
        self.limits = QLabel()
        self.limits.setWordWrap(True)
        self.explicit = False  # the user (or the profile) chose; else the preset does
        self.kept: dict[str, Any] = {}  # settings the form does not show, kept as the profile had them
        self.on_compute_node.clicked.connect(self._chosen)
        self.on_compute_node.toggled.connect(self._enable)
        for label, widget, name in [("Account", self.account, "Slurm account"),
                                    ("", self.on_compute_node, "Build environments on a compute node"),
                                    ("Partition", self.partition, "Build job partition"),
                                    ("Time limit", self.time, "Build job time limit")]:
            widget.setAccessibleName(name)
            form.addRow(label + ":" if label else "", widget)
        form.addRow(self.limits)
        self._enable(False)

    def _chosen(self) -> None:
        self.explicit = True

    def _enable(self, on: bool) -> None:
        self.partition.setEnabled(on)
        self.time.setEnabled(on)

    def fill(self, profile: ClusterProfile) -> None:
        """Show a profile's settings, unfolding the group when it has any."""
        from envdesk.backend.slurm import builds_on_compute_node, login_node_limits
        self.account.setText(profile.slurm_account or "")
        self.explicit = profile.build_on_compute_node is not None
        self.on_compute_node.setChecked(builds_on_compute_node(profile))
        self.partition.setText(profile.build_partition or "")
        self.time.setText(profile.build_time or "")
        self.kept = {"build_cpus": profile.build_cpus, "build_memory": profile.build_memory}
        self._show_limits(login_node_limits(profile))
        if profile.slurm_account or self.on_compute_node.isChecked():
            self.group.setChecked(True)

    def follow_preset(self, preset: Any) -> None:
        """A preset was chosen: its advice on builds, unless the user already chose."""
        limits = getattr(preset, "login_node_limits", None)
        if not self.explicit:
            self.on_compute_node.setChecked(bool(limits and limits.build_on_compute_node))
        self._show_limits(limits)

    def _show_limits(self, limits: Any) -> None:
        self.limits.setText(f"The site says: {limits.summary} ({limits.source})" if limits else "")

    def fields(self) -> dict[str, Any]:
        """The group as ClusterProfile fields (checked there: a bad partition or time limit is refused)."""
        return {"slurm_account": self.account.text().strip() or None,
                "build_on_compute_node": self.on_compute_node.isChecked() if self.explicit else None,
                "build_partition": self.partition.text().strip() or None,
                "build_time": self.time.text().strip() or None, **self.kept}


def _presets():
    try:
        from envdesk.backend.presets import load_presets
        return load_presets()
    except (ImportError, EnvDeskError):
        return []


class ClusterDialog(QDialog):
    """A form for one cluster profile; Test connection shows each step's result before saving."""

    def __init__(self, controller, profile: ClusterProfile | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.editing = profile
        self.saved_name = ""
        self.presets = _presets()
        self.setWindowTitle("Edit cluster" if profile else "Add a cluster")
        self.setAccessibleName(self.windowTitle())
        self.setMinimumWidth(560)
        outer = QVBoxLayout(self)
        self.body = QWidget()  # all but the buttons, in a scroll area: unfolded whole, the form is taller than a
        layout = QVBoxLayout(self.body)  # 1024x640 screen, and Save went off its edge (T18)
        layout.setContentsMargins(0, 0, 0, 0)
        self.body_area = QScrollArea()
        self.body_area.setWidgetResizable(True)
        self.body_area.setFrameShape(QScrollArea.Shape.NoFrame)
        self.body_area.setWidget(self.body)
        self.body_area.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the dialog opened focused on it, unnamed (T25):
        # its fields are the Tab stops, and the area scrolls to the one focused
        outer.addWidget(self.body_area, 1)

        start = QHBoxLayout()
        self.preset = QComboBox()
        self.preset.setAccessibleName("Cluster preset")
        self.preset.addItem("Choose a known cluster…", None)
        for preset in self.presets:
            self.preset.addItem(preset.label, preset)
        self.preset.currentIndexChanged.connect(self._preset_chosen)
        start.addWidget(self.preset, 1)
        self.ssh_import = QPushButton("From ~/.ssh/config…")
        self.ssh_import.setAccessibleName("Import a host from your SSH configuration")
        self.ssh_import.clicked.connect(self._ssh_menu)
        start.addWidget(self.ssh_import)
        layout.addLayout(start)
        self.preset_help = QLabel()
        self.preset_help.setWordWrap(True)
        layout.addWidget(self.preset_help)

        form = QFormLayout()
        self.name = QLineEdit()
        self.host = QComboBox()
        self.host.setEditable(True)
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(22)
        self.user = QLineEdit()
        self.auth = QComboBox()
        for value, text in LOGIN_METHODS:
            self.auth.addItem(text, value)
        key_row = QHBoxLayout()
        self.identity = QLineEdit()
        self.identity.setPlaceholderText("default: ~/.ssh/id_ed25519 or your SSH agent")
        browse = QPushButton("Browse…")
        browse.setAccessibleName("Choose a key file")
        browse.clicked.connect(self._browse_key)
        key_row.addWidget(self.identity, 1)
        key_row.addWidget(browse)
        for label, widget, name in [("Name in EnvDesk", self.name, "Cluster name"), ("Login node", self.host, "Host"),
                                    ("Port", self.port, "Port"), ("Your username", self.user, "Username"),
                                    ("How you log in", self.auth, "Login method")]:
            widget.setAccessibleName(name)
            form.addRow(label + ":", widget)
        self.identity.setAccessibleName("Key file")
        form.addRow("Key file:", key_row)
        layout.addLayout(form)

        self.no_key = QWidget()
        no_key_row = QHBoxLayout(self.no_key)
        no_key_row.setContentsMargins(0, 0, 0, 0)
        self.no_key_text = QLabel("You have no SSH key on this computer yet, and most clusters log you in with one.")
        self.no_key_text.setWordWrap(True)
        no_key_row.addWidget(self.no_key_text, 1)
        self.make_key_button = QPushButton("Make a key for me…")
        self.make_key_button.setAccessibleName("Make an SSH key for me")
        self.make_key_button.clicked.connect(self.make_key)
        no_key_row.addWidget(self.make_key_button)
        layout.addWidget(self.no_key)
        self.key_dialog: KeyDialog | None = None
        self.has_key = find_keys().any
        self.auth.currentIndexChanged.connect(self._update_key_offer)
        self.identity.textChanged.connect(self._update_key_offer)

        self.advanced, advanced_form = folded_options()
        self.jump = QLineEdit()
        self.jump.setPlaceholderText("user@gateway:22, comma separated")
        self.roots = QPlainTextEdit()  # one a line: a folder's name may hold spaces (T22)
        self.roots.setPlaceholderText("One folder a line. Left empty, EnvDesk looks in " + ", ".join(DEFAULT_ENV_ROOTS))
        self.roots.setTabChangesFocus(True)
        # three lines high (it scrolls): the whole unfolded dialog still fits a 1024x640 screen's room
        self.roots.setMaximumHeight(self.roots.fontMetrics().lineSpacing() * 3
                                    + 2 * int(self.roots.document().documentMargin()) + 2 * self.roots.frameWidth())
        self.pip_args = QLineEdit()
        self.pip_args.setPlaceholderText("e.g. --no-index")
        for label, widget in [("Jump hosts", self.jump), ("Environment folders", self.roots),
                              ("Extra pip arguments", self.pip_args)]:
            widget.setAccessibleName(label)
            advanced_form.addRow(label + ":", widget)
        layout.addWidget(self.advanced)
        self.conda = CondaOptions()
        layout.addWidget(self.conda.group)
        self.compute = ComputeNodeOptions()  # builds on a compute node (issue 12)
        layout.addWidget(self.compute.group)

        test_row = QHBoxLayout()
        self.test_button = QPushButton("Test connection")
        self.test_button.setAccessibleName("Test the connection")
        self.test_button.clicked.connect(self.test_connection)
        test_row.addWidget(self.test_button)
        test_row.addStretch()
        layout.addLayout(test_row)
        self.steps = QListWidget()
        self.steps.setAccessibleName("Connection test results")
        self.steps.setMaximumHeight(120)
        layout.addWidget(self.steps)
        self.error = error_label()
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        outer.addWidget(buttons)
        for fold in (self.advanced, self.conda.group, self.compute.group):
            fold.box.toggled.connect(lambda _: QTimer.singleShot(0, self._fit))
        if profile is not None:
            self._fill(profile)
            self.name.setReadOnly(True)
        self._update_key_offer()
        (self.host if profile is not None else self.preset).setFocus()  # where filling it in starts

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        QTimer.singleShot(0, self._fit)

    def _fit(self) -> None:
        """Grow until the form shows whole, up to most of the screen's height; past that it scrolls."""
        missing = self.body.sizeHint().height() - self.body_area.viewport().height()
        if missing > 0:
            screen = self.screen().availableGeometry().height() if self.screen() is not None else 640
            self.resize(self.width(), min(self.height() + missing, int(screen * 0.9)))

    # -- filling ---------------------------------------------------------------------------

    def _fill(self, profile: ClusterProfile) -> None:
        self.name.setText(profile.name)
        self.host.setEditText(profile.host)
        self.port.setValue(profile.port or 22)
        self.user.setText(profile.user or "")
        self.identity.setText(profile.identity_file or "")
        self.auth.setCurrentIndex(max(0, self.auth.findData(profile.auth)))
        self.jump.setText(", ".join(profile.jump))
        self.roots.setPlainText("\n".join(profile.env_roots))
        self.pip_args.setText(" ".join(profile.pip_args))
        if profile.jump or profile.env_roots or profile.pip_args:
            self.advanced.setChecked(True)
        self.conda.fill(profile.conda_solver, profile.conda_channels)
        self.compute.fill(profile)

    def _preset_chosen(self) -> None:
        preset = self.preset.currentData()
        if preset is None:
            self.preset_help.setText("")
            return
        self.host.clear()
        for host in preset.hosts:
            self.host.addItem(f"{host.host}", host)
        fields = preset.profile_fields()
        self.port.setValue(fields.get("port") or 22)
        suggested = getattr(self, "_suggested_name", "")
        if not self.editing and self.name.text() in ("", suggested):  # the name follows the preset until typed
            self.name.setText(preset.id)
            self._suggested_name = preset.id
        self.auth.setCurrentIndex(max(0, self.auth.findData(fields.get("auth", "auto"))))
        self.roots.setPlainText("\n".join(fields.get("env_roots") or []))
        self.pip_args.setText(" ".join(fields.get("pip_args") or []))
        self.conda.fill(self.conda.solver.currentData(), fields.get("conda_channels") or [])
        self.preset_help.setText(f"{preset.description} {preset.auth_help}")
        self.compute.follow_preset(preset)

    def _update_key_offer(self) -> None:
        """Offer to make a key only to someone with none, for a login that uses one."""
        wants_key = self.auth.currentData() in KEY_METHODS and not self.identity.text().strip()
        self.no_key.setVisible(wants_key and not self.has_key)

    def make_key(self) -> KeyDialog:
        """Open the Make-a-key dialog for the chosen preset (its page for registering keys)."""
        self.key_dialog = dialog = KeyDialog(self.preset.currentData(), self)
        dialog.finished.connect(self._key_dialog_closed)
        dialog.open()
        return dialog

    def _key_dialog_closed(self) -> None:
        if self.key_dialog is not None and self.key_dialog.made is not None:
            self.has_key = True
            self._update_key_offer()

    def _ssh_menu(self) -> None:
        try:
            suggestions = profiles_from_ssh_config(load_ssh_config())
        except EnvDeskError as exc:
            self.error.setText(str(exc))
            return
        menu = QMenu(self)
        if not suggestions:
            menu.addAction("No hosts in ~/.ssh/config").setEnabled(False)
        for suggestion in suggestions:
            menu.addAction(suggestion.name, lambda s=suggestion: self._fill(s))
        menu.popup(self.ssh_import.mapToGlobal(self.ssh_import.rect().bottomLeft()))

    def _browse_key(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose your private key", "", "All files (*)")
        if path:
            self.identity.setText(path)

    # -- result ----------------------------------------------------------------------------

    def profile(self) -> ClusterProfile:
        """The form as a profile; refused (InvalidInput) while it lacks what its preset needs."""
        preset = self.preset.currentData()
        if not self.name.text().strip():  # said as what to do: "'' cannot be a cluster name" was all (T25)
            raise InvalidInput("Pick your site under \"Choose a known cluster…\", or type a name for this cluster "
                               "in \"Name in EnvDesk\".", "The name is how EnvDesk lists the cluster; any short "
                               "word does (letters, digits, '.', '-' or '_').")
        if preset is not None and preset.hosts and not self.user.text().strip():
            raise InvalidInput(f"Type your user name on the {preset.label} clusters.",
                               "It is the name your cluster account was given, not this computer's login name.")
        return ClusterProfile(
            name=self.name.text().strip(), host=self.host.currentText().strip(), port=self.port.value(),
            user=self.user.text().strip() or None, identity_file=self.identity.text().strip() or None,
            jump=[j.strip() for j in self.jump.text().split(",") if j.strip()],
            env_roots=lines_of(self.roots), pip_args=self.pip_args.text().split(),
            preset=preset.id if preset is not None else (self.editing.preset if self.editing else None),
            auth=self.auth.currentData(), **self.conda.fields(), **self.compute.fields())

    def test_connection(self) -> Task | None:
        """Check the form's profile step by step in the background; each step shows what it found."""
        self.steps.clear()
        self.error.setText("")
        try:
            profile = self.profile()
        except EnvDeskError as exc:
            self.error.setText(str(exc))
            return None
        self.test_button.setEnabled(False)
        doing = QListWidgetItem("")
        doing.setFlags(Qt.ItemFlag.NoItemFlags)
        self.steps.addItem(doing)
        task = self.controller.check(profile.name, self._checked, self._check_failed, profile=profile)
        task.signals.step.connect(lambda text: doing.setText(f"… {text}"))
        task.signals.finished.connect(lambda: self.test_button.setEnabled(True))
        return task

    def _checked(self, result: ConnectionCheck) -> None:
        self.steps.clear()
        for step in result.steps:
            self.steps.addItem(step.line())
        if result.error is not None:
            self.error.setText(result.error.hint)

    def _check_failed(self, error: EnvDeskError) -> None:
        self.steps.clear()
        self.steps.addItem(f"✗ {error.message}")
        self.error.setText(error.hint)

    def _field_to_fix(self) -> QWidget | None:
        """The field a refused form is missing: the site (or a name) first, then the user name."""
        if not self.name.text().strip():
            return self.preset if self.preset.currentData() is None else self.name
        if self.preset.currentData() is not None and not self.user.text().strip():
            return self.user
        return None

    def save(self) -> None:
        try:
            profile = self.profile()
            self.controller.save_cluster(profile, replace=self.editing is not None)
        except EnvDeskError as exc:
            self.error.setText(str(exc))
            field = self._field_to_fix()
            if field is not None:
                field.setFocus(Qt.FocusReason.OtherFocusReason)
            return
        self.saved_name = profile.name
        self.accept()


