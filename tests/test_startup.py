"""Start-up stays light: `envdesk --help` and `--version` load none of the backend's heavy parts (counted as
imported modules, not timed: these machines are noisy; tests/bench/startup.py times it against Python)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("paramiko", "yaml", "PySide6", "cryptography", "keyring", "packaging", "envdesk.backend.targets",
         "envdesk.backend.operations", "envdesk.gui")

PROBE = """
import json, sys
sys.argv = ["envdesk", *sys.argv[1:]]
from envdesk.launch import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["env", "--help"], ["cluster", "add", "--help"]])
def test_help_and_version_load_nothing_heavy(args):
    ran = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
    loaded = json.loads(ran.stderr.strip().splitlines()[-1])
    assert ran.stdout.strip(), "it printed its answer"
    heavy = [name for name in loaded if any(name == h or name.startswith(h + ".") for h in HEAVY)]
    assert heavy == []


def test_help_lists_the_presets_and_version_is_the_installed_one():
    from importlib import metadata
    helped = subprocess.run([sys.executable, "-m", "envdesk", "cluster", "add", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert "alliance" in helped.stdout and "mila" in helped.stdout
    shown = subprocess.run([sys.executable, "-m", "envdesk", "--version"], capture_output=True, text=True,
                           timeout=120)
    assert shown.stdout.strip() == f"envdesk {metadata.version('envdesk')}"


def test_this_computer_alone_never_loads_ssh(tmp_path):
    """`env list local` (no cluster involved) loads neither paramiko nor cryptography, nor the keyring (no
    secret is needed) nor packaging's markers (no uv project is read)."""
    home = tmp_path / "home"
    home.mkdir()
    ran = subprocess.run([sys.executable, "-c", PROBE, "--config-dir", str(tmp_path / "cfg"), "env", "list", "local",
                          "--json"], capture_output=True, text=True, timeout=120,
                         env={"HOME": str(home), "PATH": "/usr/bin:/bin"})
    assert json.loads(ran.stdout) == [], ran.stderr
    loaded = json.loads(ran.stderr.strip().splitlines()[-1])
    assert [name for name in loaded if name.split(".")[0] in ("paramiko", "cryptography", "PySide6", "keyring",
                                                               "packaging")] == []


def test_the_window_starts_without_the_ssh_libraries():
    """The main window's modules load paramiko only once a cluster is reached (a third of the start)."""
    code = ("import json, sys\nimport envdesk.gui.app, envdesk.gui.main_window\n"
            "print(json.dumps(sorted(sys.modules)))")
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    loaded = json.loads(ran.stdout.strip().splitlines()[-1])
    assert "envdesk.gui.main_window" in loaded
    assert [name for name in loaded if name.split(".")[0] in ("paramiko", "cryptography")] == []


# The window's start (issue 11, point 6): the cached lists first, everything else once they are painted.
# Counted as imported modules, tasks and threads at the first paint, never timed.

FIRST_PAINT = """
import json, os, sys
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication
app = QApplication([])
from envdesk.backend.paths import AppPaths
from envdesk.gui.main_window import MainWindow
window = MainWindow(AppPaths.resolve(sys.argv[1]))
seen = {}

class FirstPaint(QObject):
    def eventFilter(self, watched, event):
        if not seen and event.type() == QEvent.Type.Paint and watched is window.env_table.viewport() \\
                and window.env_model.rowCount():
            seen.update(rows=window.env_model.rowCount(), modules=sorted(sys.modules),
                        tasks=[task.title for task in window.controller.runner.tasks])
            QTimer.singleShot(0, later)
        return False

def later():
    if not window.controller.runner.tasks:  # the refresh begins after the first paint, not never
        QTimer.singleShot(20, later)
        return
    seen["tasks_after"] = [task.title for task in window.controller.runner.tasks]
    print(json.dumps(seen), flush=True)
    os._exit(0)

watcher = FirstPaint()
app.installEventFilter(watcher)
window.show()
app.exec()
"""


def cached_clusters(tmp_path, clusters: int = 2, environments: int = 30, packages: int = 20):
    """A config folder with unreachable clusters whose lists are cached, the window reopening on the first; the
    clusters' names are kept as a previous start kept them (ClusterNames), unless the file changed since."""
    from bench.cached_inventories import fill_cache, select_at_start
    from envdesk.backend.cache import ClusterNames
    from envdesk.backend.paths import AppPaths
    paths = AppPaths(tmp_path / "cfg")
    names = fill_cache(paths, clusters, environments, packages)
    select_at_start(paths, names[0])
    assert ClusterNames(paths).load() == names
    return paths


def test_the_window_paints_the_cached_list_before_loading_the_operations(tmp_path):
    """At the first paint of the cached list no operation (nor the SSH libraries, the session, a dialog) is
    loaded and nothing was started; the refresh of the cluster shown starts right after."""
    paths = cached_clusters(tmp_path)
    env = {**__import__("os").environ, "HOME": str(tmp_path), "QT_QPA_PLATFORM": "offscreen"}
    ran = subprocess.run([sys.executable, "-c", FIRST_PAINT, str(paths.config_dir)], capture_output=True,
                         text=True, timeout=300, env=env)
    seen = json.loads(ran.stdout.strip().splitlines()[-1])
    assert seen["rows"] == 30
    early = [name for name in seen["modules"] if name.startswith(("envdesk.backend.operations",
                                                                  "envdesk.backend.targets", "envdesk.gui.dialogs",
                                                                  "paramiko", "cryptography"))]
    assert early == [] and seen["tasks"] == []
    assert seen["tasks_after"] == ["Refresh cluster00"]


@pytest.mark.parametrize("first_is_large", [False, True])
def test_cached_lists_are_read_off_the_gui_thread(qtbot, tmp_path, monkeypatch, first_is_large):
    """Every cached list is read on another thread (a large cache takes seconds), except the one the window
    opens on when it is small (read at once, so the window's first paint shows it); each arrives and is shown."""
    import threading

    from envdesk.backend.cache import InventoryCache
    from envdesk.gui import controller
    from envdesk.gui.main_window import MainWindow

    monkeypatch.setenv("HOME", str(tmp_path))
    if first_is_large:
        monkeypatch.setattr(controller, "SMALL_CACHE_BYTES", 0)
    paths = cached_clusters(tmp_path, clusters=3, environments=12, packages=5)
    reads: list[tuple[str, str]] = []
    load = InventoryCache.load

    def reading(cache, target):  # the real read, noting the thread it runs on
        reads.append((target, threading.current_thread().name))
        return load(cache, target)

    monkeypatch.setattr(InventoryCache, "load", reading)
    window = MainWindow(paths)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.env_model.rowCount() == 12, timeout=60_000)
    qtbot.waitUntil(lambda: all(window.controller.targets.item(name).environments == 12
                                for name in ("cluster01", "cluster02")), timeout=60_000)
    on_gui_thread = sorted(target for target, thread in reads if thread == threading.main_thread().name)
    assert on_gui_thread == ([] if first_is_large else ["cluster00"]), reads
    assert {"cluster01", "cluster02"} <= {target for target, _ in reads}
    window.close()


def test_the_window_names_this_computer_as_the_backend_does():
    """The controller names This computer itself (the window shows before the backend's targets load)."""
    from envdesk.backend.targets import LOCAL_LABEL
    from envdesk.gui.controller import LOCAL_LABEL as SHOWN
    assert SHOWN == LOCAL_LABEL


# What PySide makes before the first paint (issue 11, point 6). PySide 6 makes a class's Python type, with all
# its enumerations, when the class is first used; some uses make far more: a Python filter on the whole
# application, viewport() or findChildren (a plain QWidget or a private Qt object sends PySide through every
# type; QWizard's WizardButton is one that only that makes), and QStyle (StandardPixmap) for the light scheme.
# Counted as enumeration classes and the order of imports, never timed.

MADE_BEFORE_PAINT = """
import enum, json, os, sys
made = []
new = enum.EnumType.__new__

def counting(*args, **kwargs):
    made.append(args[1])
    return new(*args, **kwargs)

enum.EnumType.__new__ = counting  # each of PySide's enumerations is a Python enum class
if sys.argv[1] == "-":  # the baseline: an empty window
    from PySide6.QtWidgets import QApplication, QMainWindow
    app = QApplication([])
    window = QMainWindow()
    window.show()
    app.processEvents()
    print(json.dumps({"enums": made}))
    os._exit(0)
import envdesk.gui.app  # as envdesk's main does before it opens the window
from PySide6.QtWidgets import QApplication, QTableView
paint = QTableView.paintEvent

def painted(view, event):
    paint(view, event)
    window = view.window()
    if getattr(window, "env_table", None) is view and window.env_model.rowCount():
        import dataclasses, PySide6.QtCore, PySide6.QtGui, PySide6.QtWidgets
        types = [name for module in (PySide6.QtCore, PySide6.QtGui, PySide6.QtWidgets)  # made so far (the
                 for name, value in list(vars(module).items()) if isinstance(value, type)]  # others load lazily)
        records = [f"{name}.{key}" for name in list(sys.modules) if name.startswith("envdesk.gui")
                   for key, value in vars(sys.modules[name]).items()
                   if dataclasses.is_dataclass(value) and value.__module__ == name]
        print(json.dumps({"enums": made, "modules": list(sys.modules), "types": types, "dataclasses": records,
                          "filter": QApplication.instance().property("envdesk_keyboard")}), flush=True)
        os._exit(0)

QTableView.paintEvent = painted
from envdesk.launch import main
main(["--config-dir", sys.argv[1]])
"""


LOADED_LATER = ("yaml", "envdesk.backend.agent_client", "envdesk.backend.agent_store", "envdesk.backend.runner")


def made_before_paint(tmp_path) -> dict[str, dict]:
    """MADE_BEFORE_PAINT's report for an empty window ("empty") and for EnvDesk opening on cached lists
    ("envdesk", as `envdesk --config-dir DIR` starts)."""
    paths = cached_clusters(tmp_path)
    env = {**__import__("os").environ, "HOME": str(tmp_path), "QT_QPA_PLATFORM": "offscreen"}
    seen = {}
    for key, config in (("empty", "-"), ("envdesk", str(paths.config_dir))):
        ran = subprocess.run([sys.executable, "-c", MADE_BEFORE_PAINT, config], capture_output=True, text=True,
                             timeout=300, env=env)
        seen[key] = json.loads(ran.stdout.strip().splitlines()[-1])
    return seen


def test_the_first_paint_makes_no_more_of_pyside_than_it_shows(tmp_path):
    """Before the cached list is first painted: no application-wide filter (the keyboard conventions come
    right after), none of what sends PySide through every type, no QStyle; neither PyYAML (the clusters' names
    are kept from the last start) nor the agent client and the runners (~25 ms of imports together)."""
    seen = made_before_paint(tmp_path)
    ours = seen["envdesk"]
    assert set(ours["enums"]) & ({"WizardButton", "StandardPixmap"} - set(seen["empty"]["enums"])) == set()
    assert ours["filter"] is not True
    loaded = ours["modules"]
    assert "envdesk.backend.inventory" in loaded and "envdesk.backend.cache" in loaded
    assert [name for name in loaded if name.split(".")[0] == "yaml" or name in LOADED_LATER] == []


# The Python types PySide makes when a class is first named or an object of it first reaches Python (issue 11,
# point 6). A Python event filter gets every event as a QEvent, and PySide then makes the Python type of every
# QEvent subclass it tries (graphics-scene, tablet, gesture events...): the table's header says when it is
# painted or resized by signals instead. Counted as types made at the first paint, never timed.

EVENTS_THE_WINDOW_TAKES = {"QEvent", "QPaintEvent", "QResizeEvent", "QShowEvent", "QCloseEvent", "QDropEvent",
                           "QDragMoveEvent", "QDragEnterEvent"}  # its own handlers' (and the probe's paint)
MADE_LATER = {"QMetaMethod", "QPalette", "QTextEdit"}  # QTimer.singleShot with a receiver; the dark scheme; Tab


def test_the_first_paint_makes_only_the_event_types_the_window_takes(tmp_path):
    """Before the cached list is first painted, PySide has made no Python type for an event the window does not
    handle itself, nor QMetaMethod's, QPalette's or QTextEdit's (made once they are needed), and the window's
    modules loaded by then define no dataclass."""
    seen = made_before_paint(tmp_path)["envdesk"]
    made = set(seen["types"])
    assert {name for name in made if name.endswith("Event")} <= EVENTS_THE_WINDOW_TAKES
    assert made & MADE_LATER == set()
    # Making a dataclass compiles its generated methods (~3 M instructions each): the window's own records
    # (cluster list entries, operation rows, login questions) are plain classes.
    assert seen["dataclasses"] == []


def test_the_clusters_names_are_read_again_once_their_file_changed(tmp_path):
    """ClusterNames keeps the names clusters.yaml gave; any change of the file (another EnvDesk adding a cluster,
    an edit by hand keeping its size) is read, and a file that is wrong is reported as the store reports it."""
    from envdesk.backend.cache import ClusterNames
    from envdesk.backend.config import ClusterProfile, ClusterStore
    from envdesk.backend.errors import ConfigError
    from envdesk.backend.paths import AppPaths
    paths = AppPaths(tmp_path / "cfg")
    store, names = ClusterStore(paths), ClusterNames(paths)
    assert names.load() == []
    store.add(ClusterProfile(name="alpha", host="example.org"))
    assert names.load() == ["alpha"] and (paths.cache_dir / "clusters.json").is_file()
    store.add(ClusterProfile(name="beta", host="example.org"))
    assert ClusterNames(paths).load() == ["alpha", "beta"]
    text = paths.clusters_file.read_text(encoding="utf-8")
    paths.clusters_file.write_text(text.replace("alpha", "gamma"), encoding="utf-8")  # same size, in place
    assert ClusterNames(paths).load() == ["gamma", "beta"]
    paths.clusters_file.write_text("clusters: [oops", encoding="utf-8")
    with pytest.raises(ConfigError):
        ClusterNames(paths).load()



# What the window's start leaves for later (issue 11, point 6): the command line's parser, the dialogs' Qt types
# (message boxes, file dialogs, the login question), the clusters' profiles (their names are kept) and what only
# an operation's result or a checked text needs.
# Counted as modules and enumeration classes at the first paint, never timed.

LEFT_FOR_LATER = ("envdesk.cli", "envdesk.commands", "envdesk.backend.prompts", "envdesk.backend.secrets",
                  "envdesk.backend.config", "envdesk.gui.dialogs.login_dialog", "html", "subprocess", "unicodedata")
DIALOG_ENUMS = {"StandardButton", "ButtonRole", "DialogCode", "FileMode", "AcceptMode", "DialogLabel",
                "ParsingMode", "ComponentFormattingOption"}  # QMessageBox, QDialogButtonBox, QDialog, QFileDialog, QUrl


def test_the_first_paint_loads_no_dialog_nor_the_command_line(tmp_path):
    """`envdesk --config-dir DIR` opens the window without the command line's parser; before the cached list
    is first painted, no dialog's Qt type is made and none of LEFT_FOR_LATER is loaded."""
    seen = made_before_paint(tmp_path)
    loaded = seen["envdesk"]["modules"]
    assert "envdesk.gui.main_window" in loaded and "envdesk.gui.prompter" in loaded
    assert [name for name in LEFT_FOR_LATER if name in loaded] == []
    assert DIALOG_ENUMS & (set(seen["envdesk"]["enums"]) - set(seen["empty"]["enums"])) == set()


APP_ARGUMENTS = [[], ["-v"], ["--verbose"], ["--config-dir", "/x"], ["--config-dir=/x"],
                 ["-v", "--config-dir", "/x", "--verbose"], ["--config-dir", "/x", "--config-dir", "/y"],
                 ["--config-dir"], ["--config-dir", "-v"], ["--config-dir="], ["--config"], ["--", "env"],
                 ["--config-dir", "/x", "env", "list"], ["env", "list", "local"], ["--version"], ["--help"],
                 ["-vv"], ["--verbose=1"], ["-x"], ["--remove-desktop-entry", "-v"]]


@pytest.mark.parametrize("args", APP_ARGUMENTS)
def test_the_apps_options_are_read_as_the_command_line_reads_them(args):
    """launch reads the app's plain options itself (no argparse before the window); where it says the app
    opens, the command line's own parser (the referee) opens it with the same folder, and where that parser
    sees a command or a mistake, launch leaves the arguments to it."""
    from envdesk.cli import parse_app_options
    from envdesk.launch import plain_app_options
    opens_app, config_dir = plain_app_options(args)
    options = parse_app_options(args)
    if opens_app:
        assert options is not None and options.config_dir == config_dir
    if options is None:
        assert not opens_app


# The cached list the window parses before its first paint (issue 11, point 6), counted, never timed: its
# package entries carried every empty field (half the JSON parsed before the first paint).


def test_the_cached_list_leaves_out_empty_package_fields(tmp_path):
    """A cached list's package entries hold only the fields that say something (no null, no false): what the
    window parses before its first paint; the list reads back equal, each distinct package one object."""
    from bench.cached_inventories import generated_inventory
    from envdesk.backend.cache import InventoryCache
    from envdesk.backend.inventory import Environment, Inventory, Package
    from envdesk.backend.paths import AppPaths
    generated = generated_inventory("alpha", 12, 20)
    odd = Environment(name="odd", path="/x/odd", kind="conda", python=None, packages=(
        Package("b", "2", build="py_0", channel="conda-forge", editable=True), Package("c", "3", requested=True),
        Package("d", "", installer="")))
    listing = Inventory(target="alpha", environments=(*generated.environments, odd), home=generated.home)
    cache = InventoryCache(AppPaths(tmp_path / "cfg"))
    cache.save(listing)
    written = json.loads(next((tmp_path / "cfg").rglob("inventory-alpha.json")).read_text(encoding="utf-8"))
    entries = [entry for env in written["environments"] for entry in env["packages"]]
    assert len(entries) == sum(env.package_count for env in listing.environments)
    assert [entry for entry in entries if None in entry.values() or False in entry.values()] == []
    assert entries[-3:] == [
        {"name": "b", "version": "2", "editable": True, "build": "py_0", "channel": "conda-forge"},
        {"name": "c", "version": "3", "requested": True}, {"name": "d", "version": "", "installer": ""}]
    loaded = cache.load("alpha")
    assert loaded is not None and loaded[0].environments == listing.environments
    packages = [package for env in loaded[0].environments for package in env.packages]
    assert len({id(package) for package in packages}) == len(set(packages))


# The command line's start (issue 11): the garbage collector, counted through gc.callbacks, never timed.

COLLECTIONS = """
import gc, json, sys
during, running = [], [True]
gc.callbacks.append(lambda phase, info: during.append("envdesk.commands" in sys.modules)
                    if phase == "start" and running[0] else None)
sys.argv = ["envdesk", *sys.argv[1:]]
from envdesk.launch import main
try:
    main()
except SystemExit:
    pass
running[0] = False
print(json.dumps({"loaded": during, "enabled": gc.isenabled(), "ran": "envdesk.commands" in sys.modules}),
      file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["env", "list", "local", "--json"], ["env", "craete"]])
def test_no_collection_walks_the_command_line_while_it_loads(tmp_path, args):
    """Loading the command line makes no garbage, so the collector is off meanwhile (it made ~11 full walks of
    everything loaded so far); it is on again once the command runs, and after a mistyped command too."""
    ran = subprocess.run([sys.executable, "-c", COLLECTIONS, "--config-dir", str(tmp_path / "cfg"), *args],
                         capture_output=True, text=True, timeout=120)
    report = json.loads(ran.stderr.strip().splitlines()[-1])
    assert report["ran"] == (args[1] == "list")  # a mistyped command loads no command
    assert [loaded for loaded in report["loaded"] if not loaded] == []
    assert report["enabled"] is True


FITS_SCREEN = """
import json, os, sys
from PySide6.QtWidgets import QApplication
from envdesk.backend.paths import AppPaths
from envdesk.gui.main_window import MainWindow
app = QApplication([])
from pathlib import Path
window = MainWindow(AppPaths(Path(sys.argv[1])))
window.show()
app.processEvents()
room = window.screen().availableGeometry()
print(json.dumps({"window": window.frameGeometry().getRect(), "screen": room.getRect(),
                  "table": window.env_table.isVisible() and window.env_table.width() > 0}), flush=True)
os._exit(0)
"""


@pytest.mark.parametrize("saved", [None, (1500, 950)])
def test_the_window_opens_within_a_small_screen(tmp_path, saved):
    """User trial T9: on a 1024x640 screen the window opened at 1280x800 on first start (or at the size saved on
    a larger monitor), its details panel and Operations area off the screen. Qt's own screen (offscreen,
    1024x640) is the referee: the window opens within its free area."""
    screen = tmp_path / "screen.json"
    screen.write_text(json.dumps({"screens": [{"name": "small", "x": 0, "y": 0, "width": 1024, "height": 640,
                                               "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1}]}))
    config = tmp_path / "cfg"
    config.mkdir()
    if saved:
        (config / "window.ini").write_text(f"[General]\nsize=@Size({saved[0]} {saved[1]})\n")
    # given relative to the working folder: Qt splits the variable at every ':', a Windows drive's too
    env = {**__import__("os").environ, "HOME": str(tmp_path), "QT_QPA_PLATFORM": f"offscreen:configfile={screen.name}"}
    ran = subprocess.run([sys.executable, "-c", FITS_SCREEN, str(config)], capture_output=True, text=True,
                         timeout=300, env=env, cwd=tmp_path)
    seen = json.loads(ran.stdout.strip().splitlines()[-1])
    assert seen["screen"] == [0, 0, 1024, 640], seen
    x, y, width, height = seen["window"]
    assert x >= 0 and y >= 0 and x + width <= 1024 and y + height <= 640, seen
    assert seen["table"]
