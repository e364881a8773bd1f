"""The main window: clusters on the left, environments in the middle, details on the right, operations below."""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from PySide6.QtCore import (QConcatenateTablesProxyModel, QModelIndex, QPersistentModelIndex, QPoint, QSettings,
                            QSize, QSortFilterProxyModel, Qt, QTimer)
from PySide6.QtGui import (QAction, QActionGroup, QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication,
                           QKeySequence, QResizeEvent, QShowEvent)
from PySide6.QtWidgets import (QAbstractItemView, QDockWidget, QGridLayout, QHBoxLayout, QLabel, QLineEdit,
                               QListView, QMainWindow, QMenu, QPushButton, QSplitter, QTableView,
                               QToolBar, QVBoxLayout, QWidget)

from envdesk.backend.errors import EnvDeskError, HostKeyChanged, LoginCancelled
from envdesk.backend.inventory import Environment, Inventory
from envdesk.backend.paths import AppPaths
from envdesk.backend.validate import LOCAL_TARGET

from .column_fit import ColumnFitter, FittingHeader
from .controller import AppController
from .dialog_lifetime import run_once, show_instead
from .details_panel import DetailsPanel
from .elided_label import ElidedLabel
from .keyboard import give_tab_to_focus, install_keyboard_conventions, next_panel
from .models import ALL_TARGETS, AllTargetsEntry, EnvironmentTableModel, TargetListModel
from .operations_panel import OperationsPanel
from .prompter import QtPrompter
from .resources import icon
from .selectable_label import SelectableLabel
from .status_colours import problem_colour
from .tasks import Task, while_alive
from .theme import CHOICES, apply_scheme

if TYPE_CHECKING:
    from PySide6.QtGui import QScreen

    from .controller import Kernel, Measured, Snapshot

EXPORT_FILTERS = {"EnvDesk (envdesk.yaml)": ("envdesk", "envdesk.yaml"),
                  "pip requirements (requirements.txt)": ("requirements", "requirements.txt"),
                  "conda (environment.yml)": ("conda", "environment.yml"),
                  "conda, only what was asked for: travels between platforms (environment.yml)":
                      ("conda-history", "environment.yml"),
                  "PEP 751 lock, written by uv (pylock.toml)": ("pylock", "pylock.toml")}
IMPORT_FILTER = ("Environment files (*.yaml *.yml *.txt pylock.toml pylock.*.toml uv.lock);;"
                 "uv project (uv.lock pyproject.toml);;All files (*)")
"""What Import offers: every format EnvDesk exports, PEP 751 lock files by the names PEP 751 gives them, and a uv
project by its uv.lock (or pyproject.toml)."""
START_ANYWAY_MS = 3000  # a window not painted by then (minimised, hidden) starts its refresh all the same


def named_for_format(path: Path, fmt: str, usual: str) -> Path:
    """The file name the chosen format expects: 'demo.envdesk.yaml' saved as pip requirements becomes
    'demo-requirements.txt' (the save dialog keeps the first format's name when another is picked, or swaps only
    its last extension: 'demo.envdesk.txt'); a lock file is named as PEP 751 asks (pylock.NAME.toml, NAME without
    dots), which uv insists on. A name the user typed for the format is kept."""
    name = path.name
    if fmt == "pylock":
        fits = re.fullmatch(r"pylock(\.[^.]+)?\.toml", name) is not None
    elif fmt == "envdesk":
        fits = name.endswith(".envdesk.yaml")
    else:
        fits = name.endswith("." + usual.rsplit(".", 1)[-1]) and ".envdesk." not in name
    if fits:
        return path
    stem = name.split(".")[0] or "environment"
    name = {"envdesk": f"{stem}.envdesk.yaml", "requirements": f"{stem}-requirements.txt",
            "conda": f"{stem}-environment.yml", "conda-history": f"{stem}-environment-from-history.yml",
            "pylock": f"pylock.{stem}.toml"}.get(fmt, path.name)
    return path.with_name(name)


def with_failure(draft: dict, error: EnvDeskError) -> dict:
    """A dialog's draft with what its operation failed on, for the dialog to point at (gui.failing_line): the
    error's words after what failed where ('Installing packages with pip failed on beta: ...', whose 'pip' is the
    installer, not a package typed), and its hint."""
    return {**draft, "failure": f"{error.message.split(': ', 1)[-1]}\n{error.hint}"}


class ClusterList(QListView):
    """"All clusters" above the targets; files dropped on a cluster are imported there."""

    def __init__(self, window: "MainWindow", targets: TargetListModel) -> None:
        super().__init__()
        self.window_ = window
        self.targets = targets
        self.entries = QConcatenateTablesProxyModel(self)
        self.all_entry = AllTargetsEntry(targets)
        self.entries.addSourceModel(self.all_entry)
        self.entries.addSourceModel(targets)
        self.all_entry.follow_targets()
        self.setModel(self.entries)
        self.setAcceptDrops(True)
        self.setDropIndicatorShown(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # long lines are elided

    def index_of(self, name: str) -> QModelIndex:
        """The row of a target, or of "All clusters" (ALL_TARGETS); invalid if there is none."""
        for row in range(self.entries.rowCount()):
            index = self.entries.index(row, 0)
            if index.data(TargetListModel.NameRole) == name:
                return index
        return QModelIndex()

    def setCurrentIndex(self, index: QModelIndex | QPersistentModelIndex) -> None:  # noqa: N802 (Qt's name)
        """Select a row; an index of the controller's target list is taken too (it is mapped to its row here)."""
        if index.isValid() and index.model() is self.targets:
            index = self.entries.mapFromSource(index)
        super().setCurrentIndex(index)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        index = self.indexAt(event.position().toPoint())
        urls = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        name = index.data(TargetListModel.NameRole) if index.isValid() else None
        if name and name != ALL_TARGETS and urls:
            event.acceptProposedAction()
            self.window_.import_file(name, Path(urls[0]))


class MainWindow(QMainWindow):
    """EnvDesk's main window; every remote call goes through the controller's tasks."""

    def __init__(self, paths: AppPaths | None = None) -> None:
        super().__init__()
        self._quitting = False
        self._to_select: tuple[str, str] | None = None  # (target, folder) of an environment just made
        self._asking_to_delete: set[tuple[str, str]] = set()  # (target, folder): measured, or its question shown
        self.setWindowTitle("EnvDesk")
        self.setWindowIcon(icon("envdesk"))
        self.setAccessibleName("EnvDesk")
        self.paths = paths or AppPaths.resolve()
        self.settings = QSettings(str(self.paths.config_dir / "window.ini"), QSettings.Format.IniFormat)
        self.prompter = QtPrompter(self)
        self.started = False  # the first list is painted and what waited for it has begun (see `start`)
        # Calls `start`: a timer of its own, as QTimer.singleShot with a receiver makes PySide build QMetaMethod's
        # type (~1 M instructions) before the first paint.
        self._start_timer = QTimer(self)
        self._start_timer.setSingleShot(True)
        self._start_timer.timeout.connect(self.start)
        self.controller = AppController(self.paths, self.prompter, self,
                                        first=str(self.settings.value("target", LOCAL_TARGET)), later=True)
        self.controller.inventory_changed.connect(self._inventory_changed)
        self.controller.operation_failed.connect(self._operation_failed)
        self.controller.disk_measured.connect(self._disk_measured)
        self.appearance = str(self.settings.value("appearance", "system"))
        apply_scheme(self.appearance)
        hints = QGuiApplication.styleHints()
        if hasattr(hints, "colorSchemeChanged"):  # Qt 6.5+: the desktop switched between light and dark
            hints.colorSchemeChanged.connect(lambda *_: self.appearance == "system" and apply_scheme("system"))
        self._build_actions()
        self._build_layout()
        self._restore()
        # Tab leaves these at once; every other widget once the window has painted (see `start`).
        give_tab_to_focus(self.cluster_view, self.env_table, self.details.package_table, self.details.snapshot_list,
                          self.details.terminal_box.text, self.details.slurm_box.text, self.operations_panel.table,
                          self.operations_panel.log)

    # -- layout --------------------------------------------------------------------------------

    def _build_actions(self) -> None:
        def make(text: str, icon_name: str, shortcut: QKeySequence | str, slot, tip: str) -> QAction:
            action = QAction(icon(icon_name), text, self)
            action.setShortcut(QKeySequence(shortcut))
            action.setToolTip(f"{tip} ({QKeySequence(shortcut).toString(QKeySequence.SequenceFormat.NativeText)})")
            action.setStatusTip(tip)
            action.triggered.connect(slot)
            return action

        self.new_action = make("New", "new", QKeySequence.StandardKey.New, self.new_environment,
                               "Create a new environment")
        self.update_action = make("Update packages", "update", "Ctrl+U", self.update_environment,
                                  "Add, remove or upgrade packages")
        self.export_action = make("Export", "export", "Ctrl+E", self.export_environment,
                                  "Save the environment to a file")
        self.import_action = make("Import", "import", "Ctrl+I", self.import_environment,
                                  "Build an environment from a file")
        self.copy_action = make("Copy to…", "copy", "Ctrl+Shift+C", self.copy_environment,
                                "Copy the environment to another cluster")
        self.delete_action = make("Delete", "delete", QKeySequence.StandardKey.Delete, self.delete_environment,
                                  "Delete the environment")
        self.refresh_action = make("Refresh", "refresh", QKeySequence.StandardKey.Refresh, self.refresh,
                                   "List this cluster's environments again")
        self.refresh_all_action = make("Refresh all", "refresh", "Ctrl+Shift+R", self.controller.refresh_all,
                                       "List every cluster's environments, side by side")
        self.connect_all_action = make("Connect all", "connect", "Ctrl+Shift+K", self.connect_all,
                                       "Log in to every cluster now, one code prompt at a time")
        self.next_panel_action = make("Next panel", "", "F6", lambda: self.focus_panel(1),
                                      "Move to the next panel: clusters, environments, details, operations")
        self.find_action = make("Filter environments", "", QKeySequence.StandardKey.Find, self.focus_filter,
                                "Type part of an environment's name, kind, folder or modules to show only those")
        self.previous_panel_action = make("Previous panel", "", "Shift+F6", lambda: self.focus_panel(-1),
                                          "Move to the previous panel")
        toolbar = QToolBar("Actions")
        toolbar.setObjectName("actions")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for action in (self.new_action, self.update_action, self.export_action, self.import_action,
                       self.copy_action, self.delete_action, self.refresh_action):
            toolbar.addAction(action)
        self.addToolBar(toolbar)
        self._tip(toolbar.toggleViewAction(), "Show or hide the toolbar")
        self.env_actions = [self.update_action, self.export_action, self.copy_action, self.delete_action]
        self.compare_action = make("Compare with…", "", "Ctrl+Shift+D", self.compare_environment,
                                   "Compare this environment's packages with another environment's")
        self.env_actions.append(self.compare_action)
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.import_action)
        file_menu.addSeparator()
        self.quit_action = make("Quit", "cancel", QKeySequence.StandardKey.Quit, self.quit,
                                "Close EnvDesk (running operations are asked about first)")
        if self.quit_action.shortcut().isEmpty():  # some platforms define no standard Quit key
            self.quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        file_menu.addAction(self.quit_action)
        menu = self.menuBar().addMenu("&Environment")
        for action in (self.new_action, self.update_action, self.export_action, self.import_action,
                       self.copy_action, self.delete_action, self.refresh_action, self.refresh_all_action):
            menu.addAction(action)
        menu.addAction(self.compare_action)
        self.kernel_action = self._tip(QAction("Make a Jupyter kernel", self),
                                       "Register the environment as a Jupyter kernel on its cluster, loading its "
                                       "modules first (for Open OnDemand and JupyterHub there)")
        self.kernel_action.triggered.connect(self.make_kernel)
        self.env_actions.append(self.kernel_action)
        menu.addAction(self.kernel_action)
        cluster_menu = self.menuBar().addMenu("&Cluster")
        cluster_menu.setToolTipsVisible(True)
        self.cluster_actions: dict[str, QAction] = {}
        for text, slot, tip in [("Add a cluster…", self.add_cluster, "Pick your site and type your user name"),
                                ("Connect", self.connect_selected, "Log in to the selected cluster now"),
                                ("Disconnect", self.disconnect_selected, "Close the selected cluster's connection"),
                                ("Edit…", self.edit_cluster,
                                 "Change the selected cluster's settings (This computer: folders, pip arguments)"),
                                ("Remove", self.remove_cluster,
                                 "Forget the selected cluster (its environments stay on it)")]:
            self.cluster_actions[text] = self._tip(cluster_menu.addAction(text, slot), tip)
        cluster_menu.addAction(self.connect_all_action)
        cluster_menu.addSeparator()
        self.kernels_action = self._tip(cluster_menu.addAction("Jupyter kernels…", self.show_kernels),
                                        "The Jupyter kernels you have on the selected cluster; remove those "
                                        "EnvDesk made")
        self.health_action = self._tip(cluster_menu.addAction("Check health…", self.check_health),
                                       "Look for what around the environments changes what runs in them "
                                       "(packages in ~/.local, modules gone, conda's base at login…)")
        view_menu = self.menuBar().addMenu("&View")
        view_menu.addAction(self.next_panel_action)
        view_menu.addAction(self.previous_panel_action)
        view_menu.addAction(self.find_action)
        self.measure_action = self._tip(view_menu.addAction("Measure disk use", self.measure_disk),
                                        "Measure each environment's size and files here (the Size and Files "
                                        "columns); the cluster keeps the figures until an environment changes")
        self.disk_action = self._tip(view_menu.addAction("Disk…", self.show_disk),
                                     "Free space, files left and quota here; empty the installers' caches")
        appearance = view_menu.addMenu("Appearance")
        group = QActionGroup(self)
        self.appearance_actions: dict[str, QAction] = {}
        for choice, text in CHOICES.items():
            action = self._tip(appearance.addAction(text), f"{text}: the colours of every EnvDesk window")
            action.setCheckable(True)
            action.setChecked(choice == self.appearance)
            action.triggered.connect(lambda _=False, choice=choice: self.set_appearance(choice))
            group.addAction(action)
            self.appearance_actions[choice] = action
        help_menu = self.menuBar().addMenu("&Help")
        self.shortcuts_action = self._tip(help_menu.addAction("Keyboard shortcuts", self.show_shortcuts),
                                          "Every key that works in this window")
        self.about_action = self._tip(help_menu.addAction("About EnvDesk", self.show_about),
                                      "EnvDesk's version and where to read more")
        if sys.platform.startswith("linux"):
            self.menu_entry_action = self._tip(
                help_menu.addAction("Add EnvDesk to the applications menu", self.add_menu_entry),
                "Put EnvDesk, with its icon, in your desktop's list of applications")

    def add_menu_entry(self) -> Path:
        """Install the desktop entry and icon for this user (the same files as `envdesk --install-desktop-entry`)."""
        from envdesk.desktop_entry import DesktopFiles, data_home, install, running_command
        files = DesktopFiles.under(data_home())
        try:
            install(files, running_command())
        except (OSError, ValueError) as exc:
            from PySide6.QtWidgets import QMessageBox
            QMessageBox.warning(self, "Applications menu", f"EnvDesk could not add itself to the menu: {exc}")
            return files.entry
        self.statusBar().showMessage(f"EnvDesk is in your applications menu ({files.entry}).", 15000)
        return files.entry

    @staticmethod
    def _tip(action: QAction, tip: str) -> QAction:
        """Give a menu action its tooltip and status-bar text."""
        action.setToolTip(tip)
        action.setStatusTip(tip)
        return action

    def _build_layout(self) -> None:
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(QLabel("<b>Clusters</b>"))
        self.cluster_view = ClusterList(self, self.controller.targets)
        self.cluster_view.setAccessibleName("Clusters")
        self.cluster_view.setSpacing(2)
        self.cluster_view.selectionModel().currentChanged.connect(lambda current, _: self._target_selected())
        left_layout.addWidget(self.cluster_view)
        buttons = QGridLayout()  # two rows, so the list can stay narrow on a small screen
        self.add_cluster_button = QPushButton("Add cluster…")
        self.add_cluster_button.setAccessibleName("Add a cluster")
        self.add_cluster_button.setToolTip("Add your cluster: pick its family (Alliance, Mila, UPPMAX, HPC2N…) "
                                           "or import it from ~/.ssh/config")
        self.add_cluster_button.clicked.connect(self.add_cluster)
        self.connect_button = QPushButton("Connect")
        self.connect_button.setAccessibleName("Connect to the selected cluster")
        self.connect_button.setToolTip("Log in to the selected cluster now (you may be asked for a code once)")
        self.connect_button.clicked.connect(self._connect_button_clicked)
        self.controller.targets.dataChanged.connect(lambda *_: self._sync_connect_button())
        self.cluster_more = QPushButton("More")
        self.cluster_more.setAccessibleName("More cluster actions")
        self.cluster_more.setToolTip("Disconnect, edit or remove the selected cluster")
        more = QMenu(self.cluster_more)
        more.setToolTipsVisible(True)
        for text in ("Disconnect", "Edit…", "Remove"):  # the Cluster menu's own: greyed where they do nothing
            more.addAction(self.cluster_actions[text])
        self.cluster_more.setMenu(more)
        buttons.addWidget(self.add_cluster_button, 0, 0, 1, 2)
        buttons.addWidget(self.connect_button, 1, 0)
        buttons.addWidget(self.cluster_more, 1, 1)
        left_layout.addLayout(buttons)

        middle = QWidget()
        middle_layout = QVBoxLayout(middle)
        middle_layout.addWidget(self._build_welcome())
        title_row = QHBoxLayout()
        self.env_title = ElidedLabel()  # a long cluster name is elided, not widening the window (T25)
        bold = self.env_title.font()
        bold.setBold(True)
        self.env_title.setFont(bold)
        title_row.addWidget(self.env_title, 1)
        self.env_filter = QLineEdit()
        self.env_filter.setPlaceholderText("Filter environments")
        self.env_filter.setAccessibleName("Filter environments")
        self.env_filter.setClearButtonEnabled(True)
        self.env_filter.setToolTip("Show only environments whose name, kind, folder or modules contain this text")
        title_row.addWidget(self.env_filter)
        middle_layout.addLayout(title_row)
        self.env_model = EnvironmentTableModel()
        self.env_proxy = QSortFilterProxyModel()
        self.env_proxy.setSourceModel(self.env_model)
        self.env_proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.env_proxy.setFilterKeyColumn(-1)
        self.env_proxy.setSortRole(Qt.ItemDataRole.EditRole)
        self.env_filter.textChanged.connect(self.env_proxy.setFilterFixedString)
        clear_filter = QAction("Clear the filter", self.env_filter)  # Esc in the filter empties it (T25)
        clear_filter.setShortcut(QKeySequence(Qt.Key.Key_Escape))
        clear_filter.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        clear_filter.setToolTip("Esc: empty the filter, to show every environment again")
        clear_filter.triggered.connect(self.env_filter.clear)
        self.env_filter.addAction(clear_filter)
        self.env_table = QTableView()
        self.env_header = FittingHeader(self.env_table)  # says when it is painted (see `_header_painted`)
        self.env_table.setAccessibleName("Environments")
        self.env_table.setModel(self.env_proxy)
        self.env_table.setSortingEnabled(True)
        self.env_table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.env_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.env_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.env_table.verticalHeader().hide()
        self.env_table.setWordWrap(False)
        self.env_table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.env_columns = ColumnFitter(
            self.env_table, lambda: [self.env_model.column_of(key) for key in EnvironmentTableModel.LONG_COLUMNS],
            lambda: self.env_model.column_of("location"),
            lambda: {self.env_model.column_of("name"): 2.0, self.env_model.column_of("location"): 1.5},
            source=self.env_model)
        # Delete deletes the environment only from the table (and the menus): pressed in the packages, the
        # operations' log or the cluster list it meant something else (a user trial)
        self.delete_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.env_table.addAction(self.delete_action)
        self.env_table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.env_table.customContextMenuRequested.connect(self._env_menu)
        self.env_table.selectionModel().currentRowChanged.connect(lambda *_: self._env_selected())
        self.env_table.selectionModel().selectionChanged.connect(lambda *_: self._env_selected())
        self.env_table.doubleClicked.connect(lambda _: self.details.setCurrentIndex(1))
        open_packages = QAction("Show its packages", self.env_table)  # Enter does what a double-click does (T25)
        open_packages.setShortcuts([QKeySequence(Qt.Key.Key_Return), QKeySequence(Qt.Key.Key_Enter)])
        open_packages.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        open_packages.setToolTip("Enter: the selected environment's packages, in the details panel")
        open_packages.triggered.connect(lambda: self.current_environment() and self.details.setCurrentIndex(1))
        self.env_table.addAction(open_packages)
        self.env_header.painted.connect(self._header_painted)  # the table's first paints
        middle_layout.addWidget(self.env_table)
        self.no_match = QLabel()  # a filter matching nothing said so; the table was blank (T25)
        self.no_match.setWordWrap(True)
        self.no_match.setTextFormat(Qt.TextFormat.PlainText)
        self.no_match.hide()
        middle_layout.addWidget(self.no_match)
        for signal in (self.env_proxy.modelReset, self.env_proxy.rowsInserted, self.env_proxy.rowsRemoved,
                       self.env_proxy.layoutChanged):
            signal.connect(self._say_if_nothing_matches)
        self.env_filter.textChanged.connect(self._say_if_nothing_matches)
        self.notice = SelectableLabel()  # its error can be copied for a support ticket (T25)
        self.notice.setWordWrap(True)
        self.notice.setAccessibleName("Notice")
        middle_layout.addWidget(self.notice)

        self.details = DetailsPanel()
        self.details.snapshots_wanted.connect(self._load_snapshots)
        self.details.details_wanted.connect(self._load_details)
        self.details.revert_requested.connect(self.revert_environment)

        splitter = QSplitter()
        splitter.setObjectName("main_splitter")
        splitter.addWidget(left)
        splitter.addWidget(middle)
        splitter.addWidget(self.details)
        splitter.setChildrenCollapsible(False)
        self._panels_moved = False  # once the person drags a divider, the window keeps their sizes
        splitter.splitterMoved.connect(lambda *_: setattr(self, "_panels_moved", True))
        splitter.setStretchFactor(1, 1)
        self.splitter = splitter
        self.setCentralWidget(splitter)

        self.operations_panel = OperationsPanel(self.controller.operations)
        dock = QDockWidget("Operations")
        dock.setObjectName("operations")
        dock.setWidget(self.operations_panel)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable |
                         QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        self.operations_dock = dock
        self._tip(dock.toggleViewAction(), "Show or hide the operations panel")
        self.setTabOrder(self.cluster_view, self.add_cluster_button)
        self.setTabOrder(self.add_cluster_button, self.connect_button)
        self.setTabOrder(self.connect_button, self.cluster_more)
        self.setTabOrder(self.cluster_more, self.env_filter)
        self.setTabOrder(self.env_filter, self.env_table)
        self.setTabOrder(self.env_table, self.details)
        self.panels = [(left, self.cluster_view), (middle, self.env_table), (self.details, self.details),
                       (dock, self.operations_panel.table)]
        self.statusBar()
        self._update_actions()

    def _say_if_nothing_matches(self, *_: object) -> None:
        """Under the table: the filter's text matches none of the environments listed (there are some)."""
        typed = self.env_filter.text()
        empty = bool(typed) and self.env_proxy.rowCount() == 0 and self.env_model.rowCount() > 0
        self.no_match.setText(f"No environment matches '{typed}'. Esc in the filter shows them all again."
                              if empty else "")
        self.no_match.setVisible(empty)

    def focus_filter(self) -> None:
        """Ctrl+F: type in the environment filter (what it holds is selected, to type over)."""
        self.env_filter.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.env_filter.selectAll()

    def _build_welcome(self) -> QWidget:
        """The first-start view: with no cluster yet, the way in is to add one (presets first)."""
        self.welcome = QWidget()
        self.welcome.setAccessibleName("Welcome")
        layout = QVBoxLayout(self.welcome)
        text = QLabel("<h3>Welcome to EnvDesk</h3>Add your cluster to see, create, copy and share its Python "
                      "environments: pick your site (Digital Research Alliance of Canada, Mila, UPPMAX, HPC2N, "
                      "or any other Slurm cluster) and type your user name. Environments on this computer are "
                      "listed below meanwhile.")
        text.setWordWrap(True)
        layout.addWidget(text)
        self.welcome_button = QPushButton(icon("cluster"), "Add your cluster…")
        self.welcome_button.setAccessibleName("Add your cluster")
        self.welcome_button.setToolTip("Pick your site and type your user name; EnvDesk does the rest")
        self.welcome_button.clicked.connect(self.add_cluster)
        row = QHBoxLayout()
        row.addWidget(self.welcome_button)
        row.addStretch(1)
        layout.addLayout(row)
        model = self.controller.targets
        for signal in (model.modelReset, model.rowsInserted, model.rowsRemoved):
            signal.connect(self._update_welcome)
        self._update_welcome()
        return self.welcome

    def _update_welcome(self, *_: object) -> None:
        """Shown while this computer is the only target."""
        self.welcome.setVisible(self.controller.targets.rowCount() <= 1)

    def _fit_panels(self, docks: bool = True) -> None:
        """Share the window between the panels for its size: the environments get the most room, so that
        at 1024×640 every column shows without scrolling."""
        width, height = self.width(), self.height()
        left, details = min(260, max(170, int(width * 0.18))), min(420, max(250, int(width * 0.26)))
        self.splitter.setSizes([left, max(300, width - left - details), details])
        if docks:
            self.resizeDocks([self.operations_dock], [min(230, max(150, height // 4))], Qt.Orientation.Vertical)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        if not self._panels_moved:
            self._fit_panels(docks=False)

    def _restore(self) -> None:
        size, position = self.settings.value("size"), self.settings.value("position")
        screen = QGuiApplication.screenAt(position) if isinstance(position, QPoint) else None
        self.resize(self._on_screen(size if isinstance(size, QSize) else QSize(1280, 800), screen))
        self._fit_panels()
        if screen is not None:
            self.move(position)  # (not where a screen unplugged since was)
        state = self.settings.value("state")
        if state is not None:  # a layout saved at the last close (QByteArray's type is made only then)
            from PySide6.QtCore import QByteArray
            if isinstance(state, QByteArray):
                self.restoreState(state)
        selected = self.cluster_view.index_of(str(self.settings.value("target", LOCAL_TARGET)))
        self.cluster_view.setCurrentIndex(selected if selected.isValid() else self.cluster_view.index_of(LOCAL_TARGET))

    def _on_screen(self, size: QSize, screen: QScreen | None) -> QSize:
        """`size`, or the free area of the screen it opens on (`screen`, else this window's) where that is smaller
        (a laptop's 1024x640), the window then maximised: a window opening larger than the screen hides its panels."""
        room = (screen or self.screen()).availableGeometry().size()
        if room.isEmpty() or (size.width() <= room.width() and size.height() <= room.height()):
            return size
        self.setWindowState(Qt.WindowState.WindowMaximized)
        return size.boundedTo(room)

    def closeEvent(self, event: QCloseEvent) -> None:
        # a listing, plan or measure is dropped without a question: nothing is lost but a read (T25)
        running = [task for task in self.controller.runner.running() if not task.read_only]
        asked_by_person, self._quitting = event.spontaneous() or self._quitting, False
        if running and asked_by_person and not self._may_stop(running):
            event.ignore()
            return
        self.settings.setValue("size", self.size())
        self.settings.setValue("position", self.pos())
        self.settings.setValue("state", self.saveState())
        self.settings.setValue("target", self.selected_entry())
        self.settings.sync()
        self.controller.shutdown()
        super().closeEvent(event)

    def quit(self) -> None:
        """Quit as a person asked (from the menu or Ctrl+Q): running work is asked about first."""
        self._quitting = True
        self.close()

    def _may_stop(self, running: list) -> bool:
        """Ask before closing stops work in progress (a cancelled change is rolled back where the cluster answers)."""
        names = "\n".join(f"• {task.title}" for task in running[:8])
        from PySide6.QtWidgets import QMessageBox
        box = QMessageBox(QMessageBox.Icon.Question, "Stop running operations?",
                          f"These are still running:\n{names}\n\nClosing EnvDesk cancels them. A change in progress "
                          "is rolled back where its cluster still answers; on one that stopped answering it may "
                          "still finish there, and the next list shows what it left.", parent=self)
        box.setTextFormat(Qt.TextFormat.PlainText)
        # the buttons say what they do: 'Cancel' read as cancelling the operations (a user trial)
        stop = box.addButton("Stop them and close", QMessageBox.ButtonRole.DestructiveRole)
        keep = box.addButton("Keep them running", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(keep)
        run_once(box)
        return box.clickedButton() is stop

    def show_about(self) -> None:
        """Version and where to read more."""
        from envdesk.backend.about import version
        from PySide6.QtWidgets import QMessageBox
        QMessageBox.about(self, "About EnvDesk",
                          f"<b>EnvDesk {version()}</b><p>Manage your Python environments on HPC clusters "
                          "from this computer, without a shell.</p><p>Your settings are in "
                          f"{self.paths.config_dir}.</p><p>The command line does the same: "
                          "<code>envdesk --help</code>.</p>")

    def show_shortcuts(self) -> None:
        """Every keyboard shortcut of the window, in one list: each action that has one (a list kept by hand left
        Compare's out, a user trial)."""
        actions = [a for a in self.findChildren(QAction) if not a.shortcut().isEmpty()]
        rows = "".join(f"<tr><td>{a.text()}</td><td style='padding-left: 16px'><b>"
                       f"{a.shortcut().toString(QKeySequence.SequenceFormat.NativeText)}</b></td></tr>"
                       for a in actions)
        from PySide6.QtWidgets import QMessageBox
        QMessageBox.information(self, "Keyboard shortcuts", f"<table>{rows}</table><p>Tab and Shift+Tab move "
                                "between every control, in every list and box.</p>")

    def set_appearance(self, choice: str) -> str:
        """Use the 'system', 'light' or 'dark' colours from now on (saved); returns the scheme in force."""
        self.appearance = choice if choice in CHOICES else "system"
        self.settings.setValue("appearance", self.appearance)
        if self.appearance in self.appearance_actions:
            self.appearance_actions[self.appearance].setChecked(True)
        return apply_scheme(self.appearance)

    def focus_panel(self, step: int) -> None:
        """F6 / Shift+F6: focus the next or previous panel's main control."""
        control = next_panel(self.panels, self.focusWidget(), step)
        if control is not None:
            control.setFocus(Qt.FocusReason.TabFocusReason if step > 0 else Qt.FocusReason.BacktabFocusReason)

    # -- selection -----------------------------------------------------------------------------

    def selected_entry(self) -> str:
        """The selected entry of the cluster list: a target's name, or ALL_TARGETS for "All clusters"."""
        index = self.cluster_view.currentIndex()
        return index.data(TargetListModel.NameRole) if index.isValid() else LOCAL_TARGET

    def showing_all(self) -> bool:
        return self.selected_entry() == ALL_TARGETS

    def current_target(self) -> str:
        """The target the actions act on: the selected cluster, or in "All clusters" the selected row's."""
        entry = self.selected_entry()
        if entry != ALL_TARGETS:
            return entry
        index = self.env_table.currentIndex()
        return index.data(EnvironmentTableModel.TargetRole) if index.isValid() else LOCAL_TARGET

    def current_environment(self) -> Environment | None:
        """The environment selected (highlighted) in the table. Qt makes the first row current, unselected, when
        the table takes the focus with none current (after a delete, say): that row is not chosen, and nothing
        acts on it (a user trial's Delete asked about a row nobody had picked)."""
        index = self.env_table.currentIndex()
        if not index.isValid() or not self.env_table.selectionModel().isRowSelected(index.row(), index.parent()):
            return None
        return index.data(EnvironmentTableModel.EnvRole)

    def _selected_is_connected(self) -> bool:
        item = self.controller.targets.item(self.selected_entry())
        return item is not None and item.state == "connected"

    def _sync_connect_button(self) -> None:
        """Connect, or Disconnect once the selected cluster is connected (Connect all for every cluster)."""
        name = self.selected_entry()
        everywhere, connected = name == ALL_TARGETS, self._selected_is_connected()
        self.connect_button.setText("Connect all" if everywhere else "Disconnect" if connected else "Connect")
        self.connect_button.setAccessibleName("Connect to every cluster" if everywhere else
                                              "Disconnect from the selected cluster" if connected else
                                              "Connect to the selected cluster")
        self.connect_button.setToolTip("Log in to every cluster now, one code prompt at a time" if everywhere else
                                       "Close the connection (the next listing connects again)" if connected else
                                       "Log in to the selected cluster now (you may be asked for a code once)")
        self.connect_button.setEnabled(name != LOCAL_TARGET)

    def _connect_button_clicked(self) -> None:
        if self.selected_entry() != ALL_TARGETS and self._selected_is_connected():
            self.disconnect_selected()
        else:
            self.connect_selected()

    def _target_selected(self) -> None:
        name = self.selected_entry()
        everywhere = name == ALL_TARGETS
        self._sync_connect_button()
        for text, action in self.cluster_actions.items():  # This computer has nothing to connect or remove
            action.setEnabled(text == "Add a cluster…" or (text == "Edit…" and name == LOCAL_TARGET)
                              or (name != LOCAL_TARGET and (text in ("Connect", "Disconnect") or name != ALL_TARGETS)))
        if everywhere:
            self.env_title.set_full_text("Environments on every cluster")
            self._show_all()
        else:
            self.env_title.set_full_text(f"Environments on {self.controller.label(name)}")
            self._show_inventory(name, self.controller.known(name))
        if self.started:
            self._refresh_selected()

    def _refresh_selected(self) -> None:
        """List the selected entry again unless this session did (the last known list is shown meanwhile)."""
        name = self.selected_entry()
        if name == ALL_TARGETS:
            self.controller.refresh_unlisted()
            return
        item = self.controller.targets.item(name)
        if name not in self.controller.refreshed and item is not None and item.state in ("idle", "local"):
            self.controller.refresh(name)

    # -- the start: the last known list first, the rest once it is painted --------------------------------

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        if not self.started and not self._start_timer.isActive():
            self._start_timer.start(START_ANYWAY_MS)  # a window that cannot paint yet (minimised…) starts anyway

    def _header_painted(self) -> None:
        """The environment table's first paints (its header's, painted with its rows): at the first, a large
        cached list may be read in the background; once the list the window opened on is painted, the rest
        begins (`start`)."""
        if not self.started:
            self.controller.cached_lists.resume()
            if self._first_list_unread():
                return
            self._start_timer.start(0)
        self.env_header.painted.disconnect(self._header_painted)

    def _first_list_unread(self) -> bool:
        """The cached list of the entry shown (in "All clusters": of any target) is still being read."""
        name = self.selected_entry()
        return bool(self.controller.unread) if name == ALL_TARGETS else name in self.controller.unread

    def start(self) -> None:
        """What the first paint need not wait for: the keyboard conventions of the windows to come, the other
        targets' cached lists, and listing the selected entry again (the network)."""
        install_keyboard_conventions()
        if self.started or not self.isVisible():  # closed meanwhile: nothing to start
            return
        self.started = True
        self.controller.read_cached_lists()
        self.controller.warm_up()
        self._refresh_selected()

    def _show_all(self) -> None:
        """Every target's environments with a Cluster column: what is known at once, each list as it comes."""
        selected = self.current_environment(), self.current_target()
        rows, homes, labels = self.controller.all_environments(read_disk=False)
        self.env_model.set_rows(rows, homes, labels, all_targets=True)
        notes = []
        waiting = [item.label for item in self.controller.targets.items
                   if item.name not in self.controller.refreshed and item.state != "error"]
        if waiting:
            notes.append(f"Still listing {', '.join(waiting)}; the last known lists are shown meanwhile.")
        failed = [item.label for item in self.controller.targets.items if item.state == "error"]
        if failed:
            notes.append(f"<span style='color:{problem_colour()}'>{', '.join(failed)}: could not be listed now (select "
                         f"{'it' if len(failed) == 1 else 'one'} on the left to see why).</span>")
        self.notice.setText(" ".join(notes))
        if selected[0] is not None:
            self._select_environment(selected[0].path, selected[1])
        self._env_selected()

    def _show_inventory(self, name: str, inventory: Inventory | None) -> None:
        """Show a target's environments (None: nothing known yet), keeping the selection where it can."""
        selected = self.current_environment()
        self.env_model.set_environments(inventory.environments if inventory else [],
                                        inventory.home if inventory else None, name)
        notes = []
        item = self.controller.targets.item(name)
        failed = item is not None and item.state == "error"  # said below, not "connecting…" before it
        if inventory is None and name in self.controller.unread:
            notes.append("Reading the last known list…")
        elif inventory is None and not failed:
            notes.append("Nothing listed yet: connecting…" if name != LOCAL_TARGET else "Looking…")
        elif inventory is None:
            notes.append("Nothing listed:")
        elif failed:
            notes.append("Showing the last known list, which could not be refreshed:")
        elif name not in self.controller.refreshed:
            notes.append("Showing the last known list; refreshing in the background.")
        if inventory is not None and not inventory.environments:
            roots = ", ".join(self.controller.roots(name)) or "the usual folders"
            notes.append(f"No environments here yet (EnvDesk looked in {roots} and conda's folders). "
                         "Click New to make one, or Import a file someone gave you.")
        if inventory is not None and inventory.truncated:
            notes.append("The search stopped early: too many folders.")
        if inventory is not None and inventory.denied:  # a colleague's private environment, not left out unsaid
            from html import escape
            notes.append(escape(inventory.denied_note() or ""))
        if failed:
            notes.append(f"<span style='color:{problem_colour()}'>{item.message}</span> Refresh tries again.")
        self.notice.setText(" ".join(notes))
        made = self._to_select
        if made is not None and made[0] == name and inventory is not None and \
                any(env.path == made[1] for env in inventory.environments):
            self._to_select = None
            self._select_environment(made[1])
        elif selected is not None:
            self._select_environment(selected.path)
        self._env_selected()

    def _select_when_made(self, task: Task) -> None:
        """Select the environment `task` makes once the list shows it: what a person looks at next."""
        def made(result: object) -> None:
            env = getattr(result, "environment", None)
            if isinstance(env, Environment):
                self._to_select = (task.target, env.path)
        task.signals.succeeded.connect(made)

    def _select_environment(self, path: str, target: str | None = None) -> None:
        for row in range(self.env_proxy.rowCount()):
            index = self.env_proxy.index(row, 0)
            env = index.data(EnvironmentTableModel.EnvRole)
            if env is not None and env.path == path and target in (None, index.data(EnvironmentTableModel.TargetRole)):
                self.env_table.setCurrentIndex(index)
                return

    def _env_selected(self) -> None:
        env = self.current_environment()
        target = self.current_target()
        self.details.show_environment(env, self.controller.place(target) if env else None,
                                      self.env_model.findings.get((target, env.name)) or () if env else ())
        self._update_actions()

    def _update_actions(self) -> None:
        env = self.current_environment()
        for action in self.env_actions:
            action.setEnabled(env is not None)
        read_only = env.read_only_reason if env is not None else None
        for action in (self.update_action, self.delete_action):  # a colleague's: theirs to change (T22)
            tip = action.statusTip()
            if read_only:
                action.setEnabled(False)
                action.setToolTip(f"{tip}: not possible here. {read_only}")
            else:
                shortcut = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
                action.setToolTip(f"{tip} ({shortcut})")

    def _inventory_changed(self, name: str, inventory: Inventory) -> None:
        if self.showing_all():
            self._show_all()
        elif name == self.selected_entry():
            self._show_inventory(name, inventory)

    def _env_menu(self, position) -> None:
        menu = QMenu(self)
        for action in (self.update_action, self.export_action, self.copy_action, self.delete_action):
            menu.addAction(action)
        menu.addAction(self.compare_action)
        menu.addSeparator()
        menu.addAction(self.new_action)
        menu.addAction(self.refresh_action)
        menu.popup(self.env_table.viewport().mapToGlobal(position))

    def _operation_failed(self, task, error: EnvDeskError) -> None:
        if isinstance(error, HostKeyChanged):
            from PySide6.QtWidgets import QMessageBox
            QMessageBox.critical(self, "Server identity changed", str(error))
        self.statusBar().showMessage(f"{task.title} failed: {error.message}", 15000)
        if self.showing_all():  # a target's state (an error) changed, not its list
            self._show_all()
        elif task.target == self.selected_entry():
            self._show_inventory(task.target, self.controller.known(task.target))

    # -- cluster actions -----------------------------------------------------------------------

    def add_cluster(self) -> None:
        from .dialogs.cluster_dialog import ClusterDialog
        dialog = run_once(ClusterDialog(self.controller, parent=self))
        if dialog is not None:
            self.cluster_view.setCurrentIndex(self.cluster_view.index_of(dialog.saved_name))

    def edit_cluster(self) -> None:
        name = self.selected_entry()
        if name == LOCAL_TARGET:
            from .dialogs.local_dialog import LocalSettingsDialog
            run_once(LocalSettingsDialog(self.controller, parent=self))
            return
        if name == ALL_TARGETS:
            return
        from .dialogs.cluster_dialog import ClusterDialog
        try:
            profile = self.controller.profile(name)
        except EnvDeskError as exc:
            from PySide6.QtWidgets import QMessageBox
            QMessageBox.warning(self, "Cannot edit", str(exc))
            return
        run_once(ClusterDialog(self.controller, profile=profile, parent=self))

    def remove_cluster(self) -> None:
        name = self.selected_entry()
        if name in (LOCAL_TARGET, ALL_TARGETS):
            return
        from PySide6.QtWidgets import QMessageBox
        answer = QMessageBox.question(self, "Remove cluster", f"Remove {name} from EnvDesk? Its environments on "
                                      "the cluster are not touched.")
        if answer == QMessageBox.StandardButton.Yes:
            try:
                self.controller.remove_cluster(name)
            except EnvDeskError as exc:
                QMessageBox.warning(self, "Cannot remove", str(exc))

    def connect_selected(self) -> None:
        name = self.selected_entry()
        if name == ALL_TARGETS:
            self.connect_all()
        elif name != LOCAL_TARGET:
            self.controller.connect_target(name)

    def connect_all(self) -> list[Task]:
        """Log in to every cluster side by side; codes are asked one cluster at a time."""
        return self.controller.connect_all()

    def disconnect_selected(self) -> None:
        name = self.selected_entry()
        for target in ([item.name for item in self.controller.targets.items] if name == ALL_TARGETS else [name]):
            self.controller.disconnect_target(target)

    def refresh(self) -> None:
        if self.showing_all():
            self.controller.refresh_all()
        else:
            self.controller.refresh(self.selected_entry())

    # -- environment actions -------------------------------------------------------------------

    def new_environment(self) -> None:
        self._new_environment_on(self.current_target())

    def _new_environment_on(self, target: str, draft: dict | None = None) -> None:
        """The New environment dialog for `target` (holding `draft`, what was typed before, if given); its create
        started once it is accepted, and offered again should it fail."""
        from .dialogs.new_env_dialog import NewEnvironmentDialog
        dialog = run_once(NewEnvironmentDialog(self.controller, target, parent=self, draft=draft))
        if dialog is not None:
            task = dialog.start()
            self._select_when_made(task)
            typed = dialog.draft()
            name = typed.get("name", "")
            self._offer_to_edit_if_failed(task, f"Could not create {name}",
                                          lambda error: self._new_environment_on(target, with_failure(typed, error)))

    def update_environment(self) -> None:
        env = self.current_environment()
        if env is not None:
            self._update_environment_of(self.current_target(), env)

    def _update_environment_of(self, target: str, env: Environment, draft: dict | None = None) -> None:
        """The Update packages dialog (holding `draft`, what was chosen before, if given); its change started once
        it is accepted, and offered again should it fail (the change is undone then: see the dialog's note)."""
        from .dialogs.update_dialog import UpdateDialog
        dialog = run_once(UpdateDialog(self.controller, target, env, parent=self, draft=draft))
        if dialog is not None:
            task = dialog.start()
            chosen = dialog.draft()
            self._offer_to_edit_if_failed(task, f"Could not update {env.name}",
                                          lambda error: self._update_environment_of(target, env,
                                                                                    with_failure(chosen, error)))

    def _offer_to_edit_if_failed(self, task: Task, title: str, edit_again: Callable[[EnvDeskError], None],
                                 from_file: bool = False) -> None:
        """Should `task` fail: why, and its dialog again holding what was typed (`edit_again`, given the error),
        should the user want to change it (the dialog had closed when it was accepted, and retyping it all is what
        people give up on). Not for a changed server identity (its own warning is shown) or a login the user
        cancelled. `from_file`: what it built came from a file, which is what to change (read again on retry)."""
        offered: list[bool] = []

        def failed(error: EnvDeskError) -> None:
            if offered or isinstance(error, (HostKeyChanged, LoginCancelled)):
                return
            offered.append(True)
            from PySide6.QtWidgets import QMessageBox
            box = QMessageBox(QMessageBox.Icon.Warning, title, error.message, parent=self)  # (it names where)
            again = ("Change the file if it needs it, then Try again: it is read again, and what you chose is kept."
                     if from_file else "What you typed is kept: Edit and try again opens it.")  # a file has nothing
            box.setInformativeText(" ".join(part for part in (  # typed (a user trial)
                error.hint, again, "The Operations panel has the log.") if part))
            edit = box.addButton("Try again" if from_file else "Edit and try again", QMessageBox.ButtonRole.AcceptRole)
            box.addButton(QMessageBox.StandardButton.Close)
            box.setDefaultButton(edit)

            def answered() -> None:
                if box.clickedButton() is edit:
                    edit_again(error)
                box.deleteLater()
            box.finished.connect(answered)
            box.open()
        task.signals.failed.connect(while_alive(failed, self))
        if task.done.is_set() and task.state == "failed" and task.error is not None:
            failed(task.error)  # it failed before the connection above (its signal went to no one)

    def revert_environment(self, env: Environment, snapshot: Snapshot) -> None:
        target = self.current_target()
        from PySide6.QtWidgets import QMessageBox
        answer = QMessageBox.question(self, "Revert", f"Put {env.name} back as it was on {snapshot.local_time()}? "
                                      "The current packages are saved as a snapshot first.")
        if answer != QMessageBox.StandardButton.Yes:
            return
        self.controller.revert(target, env, snapshot.id)

    def _load_details(self, env: Environment) -> None:
        target = self.current_target()
        if self.controller.reached(target):   # never a login prompt just for opening a tab
            self.controller.details(target, env, self.details.show_details)

    def _load_snapshots(self, env: Environment) -> None:
        target = self.current_target()
        self.controller.snapshots(target, env, lambda snapshots: self.details.show_snapshots(env, snapshots))

    def export_environment(self) -> None:
        env = self.current_environment()
        if env is None:
            return
        target = self.current_target()
        default = str(Path.home() / f"{env.name.split('/')[0]}.envdesk.yaml")
        from PySide6.QtWidgets import QFileDialog
        path, chosen = QFileDialog.getSaveFileName(self, "Export environment", default, ";;".join(EXPORT_FILTERS))
        if path:
            fmt, usual = EXPORT_FILTERS.get(chosen, ("envdesk", "envdesk.yaml"))
            named = named_for_format(Path(path), fmt, usual)
            if named != Path(path) and named.exists():  # the save dialog asked about the name it gave, not this one
                from PySide6.QtWidgets import QMessageBox
                answer = QMessageBox.question(self, "Replace file", f"{named} already exists. Replace it?")
                if answer != QMessageBox.StandardButton.Yes:
                    return
            self.export_to(target, env, named, fmt)

    def export_to(self, target: str, env: Environment, path: Path, fmt: str) -> Task:
        """Export in a worker; the status bar says where the file went."""
        return self.controller.export(target, env, path, fmt,
                                      lambda saved: self.statusBar().showMessage(f"Exported to {saved}", 10000))

    def import_environment(self) -> None:
        from PySide6.QtWidgets import QFileDialog
        path, _ = QFileDialog.getOpenFileName(self, "Import an environment", str(Path.home()),
                                              IMPORT_FILTER)
        if path:
            self.import_file(self.current_target(), Path(path))

    def import_file(self, target: str, path: Path, draft: dict | None = None) -> None:
        from .dialogs.import_dialog import ImportDialog
        try:
            dialog = ImportDialog.from_file(self.controller, target, path, parent=self, draft=draft)
        except EnvDeskError as exc:
            from PySide6.QtWidgets import QMessageBox
            QMessageBox.warning(self, "Cannot import", str(exc))
            return
        if run_once(dialog) is not None:
            task, chosen = dialog.start(), dialog.draft()
            self._select_when_made(task)
            self._offer_to_edit_if_failed(task, f"Could not import {path.name}",
                                          lambda error: self.import_file(target, path, chosen), from_file=True)

    def copy_environment(self) -> None:
        env = self.current_environment()
        if env is None:
            return
        target = self.current_target()
        if env.detailed:
            self._copy_dialog(target, env)
        else:   # the copy's plan needs every package's source (editable, from git ...), not only its version
            self.controller.details(target, env, lambda detailed: self._copy_dialog(target, detailed))

    def _copy_dialog(self, target: str, env: Environment, draft: dict | None = None) -> None:
        from .dialogs.import_dialog import ImportDialog
        dialog = run_once(ImportDialog.for_copy(self.controller, target, env, parent=self, draft=draft))
        if dialog is not None:
            task, chosen = dialog.start(), dialog.draft()
            self._select_when_made(task)
            where = self.controller.label(chosen["target"])
            self._offer_to_edit_if_failed(task, f"Could not copy {env.name} to {where}",
                                          lambda error: self._copy_dialog(target, env, chosen))

    def delete_environment(self) -> None:
        env = self.current_environment()
        if env is None:
            return
        target = self.current_target()
        asking = (target, env.path)
        if asking in self._asking_to_delete:  # Delete pressed again before the question: one question
            return
        self._asking_to_delete.add(asking)

        def confirm(measured: Measured | None) -> None:
            try:
                amount = f" ({measured.amount()})" if measured else ""
                also = f" {measured.kernels_going()}".rstrip() if measured else ""
                from PySide6.QtWidgets import QMessageBox
                box = QMessageBox(QMessageBox.Icon.Warning, "Delete environment",
                                  f"Delete the folder {env.path}{amount}?{also} This cannot be undone.",
                                  QMessageBox.StandardButton.Cancel, self)
                box.setTextFormat(Qt.TextFormat.PlainText)  # a folder's name is never markup
                delete_button = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
                box.setDefaultButton(QMessageBox.StandardButton.Cancel)
                run_once(box)
                if box.clickedButton() is delete_button:
                    self.controller.delete(target, env)
            finally:
                self._asking_to_delete.discard(asking)

        measuring = self.controller.measure(target, env, confirm, lambda error: confirm(None))
        measuring.signals.cancelled.connect(lambda: self._asking_to_delete.discard(asking))  # no question then

    def show_kernels(self) -> None:
        """Cluster ▸ Jupyter kernels…: list them (in the background) and remove EnvDesk's."""
        from .dialogs.kernels_dialog import KernelsDialog
        self.kernels_dialog = show_instead(getattr(self, "kernels_dialog", None),
                                           KernelsDialog(self.controller, self.current_target(), parent=self))

    def check_health(self) -> None:
        target = self.current_target()
        if not target:
            return

        def badge(health) -> None:
            self.env_model.set_findings(target, {env: [f.title for f in health.findings if f.env == env]
                                                 for env in health.checked})
            self._env_selected()  # its Overview says it too

        def checked(health) -> None:
            badge(health)
            from .dialogs.health_dialog import HealthDialog
            self.health_dialog = show_instead(getattr(self, "health_dialog", None), HealthDialog(
                self.controller, target, health, on_checked=badge, parent=self))

        self.controller.check_health(target, checked)

    def make_kernel(self) -> Task | None:
        """Environment ▸ Make a Jupyter kernel: without ipykernel in the environment, installing it is asked first."""
        env = self.current_environment()
        if env is None:
            return None
        target = self.current_target()

        def made(kernel: Kernel) -> None:
            where = self.controller.label(target)
            self.statusBar().showMessage(f"Jupyter kernel {kernel.name} made: Jupyter on {where} offers "
                                         f"\"{kernel.display_name}\" in new notebooks.", 15000)

        def offer(message: str) -> Task | None:
            from PySide6.QtWidgets import QMessageBox
            answer = QMessageBox.question(self, "Make a Jupyter kernel", f"{message}\n\nInstall ipykernel in "
                                          f"{env.name} now (an update: a snapshot is saved first) and make the kernel?")
            if answer != QMessageBox.StandardButton.Yes:
                return None
            return self.controller.add_kernel(target, env, install_ipykernel=True, on_done=made)

        def failed(error: EnvDeskError) -> None:
            from .controller import IpykernelMissing
            if isinstance(error, IpykernelMissing):
                offer(error.message)

        if self.controller.lacks_ipykernel(env):
            return offer(f"{env.name} has no ipykernel, which Jupyter needs to run it as a kernel.")
        return self.controller.add_kernel(target, env, on_done=made, on_failure=failed)

    def compare_environment(self) -> None:
        env = self.current_environment()
        if env is not None:
            from .dialogs.diff_dialog import DiffDialog
            run_once(DiffDialog(self.controller, self.current_target(), env, parent=self))

    # -- disk and inodes (issue 12) --------------------------------------------------------------

    def measure_disk(self) -> list[Task]:
        """Measure the selected target's environments (in "All clusters": every target listed this session)."""
        targets = [name for name in sorted(self.controller.refreshed) if self.controller.reached(name)] \
            if self.showing_all() else [self.selected_entry()]
        return [self.controller.measure_disk(target) for target in targets]

    def _disk_measured(self, target: str, report) -> None:
        """Fill the Size and Files columns with a new disk report's figures."""
        self.env_model.remember_usage(target, report.environments)
        if self.showing_all():
            self._show_all()
        elif target == self.selected_entry():
            self._show_inventory(target, self.controller.known(target))
        self.statusBar().showMessage(f"Measured {len(report.environments)} environment(s) on "
                                     f"{self.controller.label(target)}.", 10000)

    def show_disk(self) -> None:
        """The Disk dialog of the target the actions act on."""
        from .dialogs.disk_dialog import DiskDialog
        run_once(DiskDialog(self.controller, self.current_target(), parent=self))
