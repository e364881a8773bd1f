"""Details of the selected environment: overview, packages, snapshots, and how to use it."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from PySide6.QtCore import QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QFormLayout, QHBoxLayout, QLabel, QLineEdit, QListWidget,
                               QListWidgetItem, QPlainTextEdit, QPushButton, QTableView, QTabWidget,
                               QVBoxLayout, QWidget)

from envdesk.backend.errors import EnvDeskError
from envdesk.backend.inventory import Environment, Package
from envdesk.backend.protocol import STATE_INCOMPLETE

from .column_fit import ColumnFitter
from .models import PackageTableModel

if TYPE_CHECKING:  # the snippets and the snapshots' module load with the first environment shown
    from envdesk.backend.snippets import Place

    from .controller import Snapshot


def _selectable(label: QLabel) -> QLabel:
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse |
                                  Qt.TextInteractionFlag.TextSelectableByKeyboard)
    label.setWordWrap(True)
    return label


PACKAGE_WEIGHTS = {0: 2.0, 1: 1.0}
"""How a package table's names and versions share a narrow width (see ColumnFitter): names are what is read."""
INSTALLER_COLUMN = 2


class SnippetBox(QWidget):
    """A read-only snippet with a Copy button."""

    def __init__(self, title: str) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        header = QHBoxLayout()
        self.title = QLabel(f"<b>{title}</b>")
        header.addWidget(self.title)
        header.addStretch()
        self.copy_button = QPushButton("Copy")
        self.copy_button.setAccessibleName(f"Copy: {title}")
        self.copy_button.setToolTip(f"Copy these lines ({title.lower()}) to the clipboard")
        self.copy_button.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.text.toPlainText()))
        header.addWidget(self.copy_button)
        layout.addLayout(header)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setAccessibleName(title)
        self.text.setMaximumHeight(160)
        layout.addWidget(self.text)


SNAPSHOT_ROLE = Qt.ItemDataRole.UserRole + 1  # the Snapshot a row of the snapshot list shows


class DetailsPanel(QTabWidget):
    """Everything about one environment; asks for snapshots and reverts through signals."""

    snapshots_wanted = Signal(object)  # Environment
    details_wanted = Signal(object)  # Environment listed with names and versions only, its Packages tab open
    revert_requested = Signal(object, object)  # Environment, Snapshot

    def __init__(self) -> None:
        super().__init__()
        self.setAccessibleName("Environment details")
        # every tab in sight and its title whole: the panel is never narrower than its tabs (scroll arrows hid
        # "Use it" at 1024 wide; shortened titles read "Over…", "Pack…", "U…")
        self.setUsesScrollButtons(False)
        self.setElideMode(Qt.TextElideMode.ElideNone)
        self.environment: Environment | None = None
        self.place: Place | None = None
        self.addTab(self._overview_tab(), "Overview")
        self.addTab(self._packages_tab(), "Packages")
        self.addTab(self._snapshots_tab(), "Snapshots")
        self.addTab(self._usage_tab(), "Use it")
        self.currentChanged.connect(self._tab_changed)
        self.show_environment(None)

    def _overview_tab(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.fields = {key: _selectable(QLabel()) for key in ("name", "kind", "python", "path", "modules", "state",
                                                               "made", "owner", "access", "constraints")}
        for key, label in [("name", "Name"), ("kind", "Kind"), ("python", "Python"), ("path", "Location"),
                           ("modules", "Modules"), ("state", "State"), ("made", "Made by"), ("owner", "Owner"),
                           ("access", "Access"), ("constraints", "Constraints")]:
            form.addRow(label + ":", self.fields[key])
        self.fields["constraints"].setWordWrap(True)
        self.fields["constraints"].setToolTip("Every install into this environment stays within these versions "
                                              "(pip's -c): they came with the file it was made from")
        self.overview = form
        return page

    def _packages_tab(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        self.package_filter = QLineEdit()
        self.package_filter.setPlaceholderText("Filter packages")
        self.package_filter.setAccessibleName("Filter packages")
        self.package_filter.setClearButtonEnabled(True)
        self.package_filter.setToolTip("Show only packages whose name contains this text")
        layout.addWidget(self.package_filter)
        self.packages = PackageTableModel()
        self.package_proxy = QSortFilterProxyModel()
        self.package_proxy.setSourceModel(self.packages)
        self.package_proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.package_proxy.setFilterKeyColumn(0)
        self.package_proxy.setSortRole(PackageTableModel.SortRole)  # by normalised name, as pip list orders them
        self.package_filter.textChanged.connect(self.package_proxy.setFilterFixedString)
        self.package_table = QTableView()
        self.package_table.setAccessibleName("Packages")
        self.package_table.setModel(self.package_proxy)
        # names and versions share the width, names first (a site's build, 2.31.0+computecanada, took a
        # content-sized Version column's room from the names: "requ…"); the installer shows where all fits
        self.package_columns = ColumnFitter(self.package_table, lambda: {0, 1}, grow=lambda: 0,
                                            weights=lambda: PACKAGE_WEIGHTS, optional=INSTALLER_COLUMN)
        self.package_table.setSortingEnabled(True)
        self.package_table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.package_table.verticalHeader().hide()
        layout.addWidget(self.package_table)
        return page

    def _snapshots_tab(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addWidget(_selectable(QLabel("EnvDesk saves the exact package set before every change. "
                                            "Select one to go back to it.")))
        self.snapshot_list = QListWidget()
        self.snapshot_list.setAccessibleName("Snapshots")
        self.snapshot_list.setWordWrap(True)  # a snapshot's reason is read whole, not scrolled to (T12)
        self.snapshot_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.snapshot_list.setAlternatingRowColors(True)  # entries of several lines each are told apart (T14)
        self.snapshot_list.setSpacing(2)
        layout.addWidget(self.snapshot_list)
        self.revert_button = QPushButton("Revert to this snapshot")
        self.revert_button.setAccessibleName("Revert to the selected snapshot")
        self.revert_tip = ("Put the environment's packages back as they were in the selected snapshot "
                           "(the current ones are saved as a snapshot first)")
        self.revert_button.setToolTip(self.revert_tip)
        self.revert_button.setEnabled(False)
        self.snapshot_list.currentItemChanged.connect(lambda item, _: self._offer_revert(item is not None))
        self.revert_button.clicked.connect(self._revert)
        layout.addWidget(self.revert_button)
        return page

    def _usage_tab(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        self.terminal_box = SnippetBox("In a terminal on the cluster")
        self.slurm_box = SnippetBox("In a Slurm batch script")
        layout.addWidget(self.terminal_box)
        layout.addWidget(self.slurm_box)
        self.save_script_button = QPushButton("Save job script…")
        self.save_script_button.setAccessibleName("Save the Slurm job script as a file")
        self.save_script_button.setToolTip("Save these lines as a ready job.sh; run it on the cluster with sbatch")
        self.save_script_button.clicked.connect(lambda: self.save_job_script())
        self.slurm_box.layout().addWidget(self.save_script_button, 0, Qt.AlignmentFlag.AlignRight)
        layout.addStretch()
        return page

    def save_job_script(self, path: str | None = None) -> Path | None:
        """Save the shown environment's Slurm job script to `path` (asked for when None); where it went, or None."""
        if self.environment is None:
            return None
        if path is None:
            from PySide6.QtWidgets import QFileDialog
            path, _ = QFileDialog.getSaveFileName(self, "Save the job script", "job.sh",
                                                  "Shell scripts (*.sh);;All files (*)")
            if not path:
                return None
        from envdesk.backend.snippets import Place

        from .controller import save_job_script
        try:
            return save_job_script(self.environment, self.place or Place(), Path(path))
        except EnvDeskError as exc:
            from PySide6.QtWidgets import QMessageBox
            QMessageBox.warning(self, "The job script was not saved", str(exc))
            return None

    def show_environment(self, env: Environment | None, place: Place | None = None,
                         findings: Sequence[str] = ()) -> None:
        """Show `env` (None: nothing selected); `place` is where it is, for the Use it snippets; `findings`, what
        the last health check found about it (its titles), which its State says rather than 'healthy'."""
        self.environment = env
        self.setEnabled(env is not None)
        self.snapshot_list.clear()
        if env is None:
            for label in self.fields.values():
                label.setText("")
            for key in ("constraints", "owner", "access"):
                self.overview.setRowVisible(self.fields[key], False)
            self.fields["name"].setText("Select an environment to see its details.")
            self.packages.set_packages([])
            self.terminal_box.title.setText("<b>Select an environment</b>")
            self.terminal_box.text.setPlainText("")
            self.slurm_box.text.setPlainText("")
            self.slurm_box.setVisible(False)  # a cluster's box, empty, stayed after its environment (a user trial)
            return
        from envdesk.backend.snippets import Place, slurm_snippet, terminal_snippet
        self.place = place = place or Place()
        values = {"name": env.name, "kind": env.kind + (f" ({env.created_by})" if env.created_by else ""),
                  "python": env.python or "unknown", "path": env.path,
                  "modules": _modules_text(env),
                  "state": "healthy" if env.state == "ok" else f"{env.state}: {env.error}",
                  "made": _made_by(env)}
        cautions = env.cautions() if env.state == "ok" else []
        if cautions:  # installed where pip would have refused them (uv and a folder of wheels), packages not read
            values["state"] = "may not work: " + "; ".join(cautions)
        if findings and env.state == "ok":  # a package without what it needs, say (a user trial saw 'healthy')
            values["state"] = ("needs a look: " + "; ".join(findings) + " (Cluster ▸ Check health… says what to "
                               "do)" + (f"; {values['state']}" if values["state"] != "healthy" else ""))
        values["constraints"] = ", ".join(env.constraints)
        values["owner"] = (env.owner or "") + (f" (group {env.group})" if env.owner and env.group else "")
        values["access"] = f"read-only for you: {env.read_only_reason}" if env.read_only_reason else ""
        for key, value in values.items():
            self.fields[key].setText(value)
        for key in ("constraints", "owner", "access"):  # shown where they say something: others' and read-only ones
            self.overview.setRowVisible(self.fields[key], bool(values[key]))
        self._show_packages(env)
        self.terminal_box.title.setText("<b>In a terminal on this computer</b>" if place.local
                                        else "<b>In a terminal on the cluster</b>")
        self.terminal_box.text.setPlainText(terminal_snippet(env, place))
        batch = slurm_snippet(env, place)
        self.slurm_box.setVisible(batch is not None)
        self.slurm_box.text.setPlainText(batch or "")
        if self.currentIndex() == 2:
            self.snapshots_wanted.emit(env)
        elif self.currentIndex() == 1 and not env.detailed:
            self.details_wanted.emit(env)

    def show_details(self, env: Environment) -> None:
        """Fill in the packages of the shown environment, read with their details (installer ...)."""
        if self.environment is not None and self.environment.path == env.path:
            self.environment = env
            self._show_packages(env)
            self.fields["modules"].setText(_modules_text(env))

    def _show_packages(self, env: Environment) -> None:
        """The Packages tab's rows; where a module puts packages on PYTHONPATH, the Installed by column, which says
        which rows are the module's and which of the environment's own it hides, shows whatever the width."""
        self.package_columns.optional = None if env.provided else INSTALLER_COLUMN
        self.package_table.setColumnHidden(INSTALLER_COLUMN, False)
        self.packages.set_packages(package_rows(env))

    def show_snapshots(self, env: Environment, snapshots: list[Snapshot]) -> None:
        if self.environment is None or env.path != self.environment.path:
            return  # an answer for an environment no longer selected
        self.snapshot_list.clear()
        if not snapshots:
            self.snapshot_list.addItem(QListWidgetItem("No snapshots yet: one is saved before every change."))
            self.snapshot_list.item(0).setFlags(Qt.ItemFlag.NoItemFlags)
        for snapshot in reversed(snapshots):
            item = QListWidgetItem(snapshot.label())
            item.setToolTip(f"Snapshot {snapshot.id}, taken {snapshot.time} (UTC)")
            item.setData(Qt.ItemDataRole.UserRole, snapshot.id)
            item.setData(SNAPSHOT_ROLE, snapshot)
            self.snapshot_list.addItem(item)

    def _tab_changed(self, index: int) -> None:
        if index == 2 and self.environment is not None:
            self.snapshots_wanted.emit(self.environment)
        elif index == 1 and self.environment is not None and not self.environment.detailed:
            self.details_wanted.emit(self.environment)

    def _offer_revert(self, chosen: bool) -> None:
        """Revert is on once a snapshot is chosen, unless the environment is read-only for you (a colleague's):
        then its tooltip says why and what to do instead, as Update packages' and Delete's do."""
        read_only = self.environment.read_only_reason if self.environment is not None else None
        self.revert_button.setEnabled(chosen and not read_only)
        self.revert_button.setToolTip(f"{self.revert_tip}: not possible here. {read_only}" if read_only
                                      else self.revert_tip)

    def _revert(self) -> None:
        item = self.snapshot_list.currentItem()
        if self.environment is not None and item is not None and item.data(SNAPSHOT_ROLE) is not None:
            self.revert_requested.emit(self.environment, item.data(SNAPSHOT_ROLE))


def _modules_text(env: Environment) -> str:
    """The modules, and those that put packages on PYTHONPATH (read with the environment's details)."""
    text = " ".join(env.modules) or "none recorded"
    giving = [f"{found.module} puts {len(found.packages)} on PYTHONPATH" for found in env.provided if found.packages]
    return text + (f" ({'; '.join(giving)}: see Packages)" if giving else "")


def package_rows(env: Environment) -> list[Package]:
    """The Packages tab's rows: the environment's own packages, those a module's copy hides saying so in their
    Installed by column, then what its modules put on PYTHONPATH, installed by the module (T20: the tab left out
    scipy-stack's packages, which are what Python imports)."""
    from envdesk.backend.provided import shadowed
    hidden = {shadow.own: shadow for shadow in shadowed(env)}
    rows = [replace(package, installer=f"{package.installer or '?'}, hidden by {hidden[package].module}'s "
                                       f"{hidden[package].imported.version}") if package in hidden else package
            for package in env.packages]
    return rows + [replace(package, installer=f"module {found.module} (on PYTHONPATH)")
                   for found in env.provided for package in found.packages]


def _made_by(env: Environment) -> str:
    """Who made the environment, and when, as its EnvDesk record says; one EnvDesk began and never finished has no
    record yet, but its mark (T18: it said 'outside EnvDesk', as if a colleague's environment were at stake)."""
    meta = env.envdesk or {}
    if "created_with" in meta:
        return meta["created_with"] + (f", {meta['created']}" if "created" in meta else "")
    return "EnvDesk, not finished" if env.state == STATE_INCOMPLETE else "outside EnvDesk"
