"""The app's one link to the backend: owns the session, the cache and the tasks, and updates the models.

Widgets and dialogs call one method per verb here and never touch the session or the operations.
Every method that may reach a target runs as a Task on a pool thread and answers by signal or callback.
"""
from __future__ import annotations

import importlib
import logging
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from PySide6.QtCore import QObject, Signal

from envdesk.backend.cache import ClusterNames, InventoryCache
from envdesk.backend import validate
from envdesk.backend.errors import Cancelled, EnvDeskError, InvalidInput, LoginCancelled
from envdesk.backend.wording import counted
from envdesk.backend.inventory import Environment, Inventory
from envdesk.backend.paths import AppPaths
from envdesk.backend.protocol import STATE_INCOMPLETE
from envdesk.backend.validate import LOCAL_LABEL, LOCAL_TARGET

from .cached_lists import CachedListLoader
from .models import OperationListModel, OperationRow, TargetItem, TargetListModel
from .prompter import QtPrompter
from .tasks import Task, TaskRunner, while_alive

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # the operations load on first use, in the method that needs one (the window opens sooner)
    from envdesk.backend.capabilities import Capabilities
    from envdesk.backend.config import ClusterProfile, ClusterStore, LocalSettings
    from envdesk.backend.operations.check import CheckStep, ConnectionCheck
    from envdesk.backend.operations.common import Progress
    from envdesk.backend.operations.delete import Measured
    from envdesk.backend.operations.diff import Comparison
    from envdesk.backend.operations.disk import Cleaned, DiskReport
    from envdesk.backend.operations.doctor import Finding, Health
    from envdesk.backend.operations.history import Snapshot
    from envdesk.backend.operations.importing import ImportPlan, Unavailable
    from envdesk.backend.operations.kernels import IpykernelMissing, Kernel
    from envdesk.backend.operations.listing import Listing
    from envdesk.backend.snippets import Place
    from envdesk.backend.spec import EnvSpec
    from envdesk.backend.targets import Session
    from envdesk.backend.uvproject import UvProject

# Result types the widgets may name (they get them from here, not from the operations); each is loaded with its
# operation's module when first named (PEP 562), so opening the window loads none of the operations.
_RESULT_TYPES = {"CheckStep": "check", "ConnectionCheck": "check", "Comparison": "diff", "Measured": "delete",
                 "Cleaned": "disk", "DiskReport": "disk", "Finding": "doctor", "Health": "doctor",
                 "Snapshot": "history", "ImportPlan": "importing", "Unavailable": "importing",
                 "IpykernelMissing": "kernels", "Kernel": "kernels"}
__all__ = ["AppController", "describe_result", "save_job_script", "CheckStep", "ConnectionCheck", "Comparison",
           "Measured", "Cleaned", "DiskReport", "Finding", "Health", "Snapshot", "ImportPlan", "Unavailable",
           "IpykernelMissing", "Kernel"]
WARM_UP_MODULES = (  # what the first operations import on the GUI thread, loaded after the first paint
    "envdesk.backend.operations.common", "envdesk.backend.operations.listing", "envdesk.backend.targets",
    "envdesk.backend.ssh_runner", "envdesk.backend.snippets", "envdesk.backend.operations.create",
    "envdesk.backend.operations.update", "envdesk.backend.operations.export", "envdesk.backend.operations.delete",
    "envdesk.backend.operations.history")
# A cached list this small is read at once (some 20 ms; a package's entry leaves out its empty fields, so a byte
# holds about twice what it did with them); larger ones in the background.
SMALL_CACHE_BYTES = 500_000


def __getattr__(name: str) -> Any:
    """A result type named in _RESULT_TYPES, from its operation's module (loaded now if it was not)."""
    if name not in _RESULT_TYPES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"envdesk.backend.operations.{_RESULT_TYPES[name]}"), name)
    globals()[name] = value
    return value


Callback = Callable[[Any], None]
Failure = Callable[[EnvDeskError], None]


def cancelled_words(task: Task) -> str:
    """A cancelled operation's line: what its Cancelled says it left, where it says more than Cancelled's own
    words (a delete stopped with the environment moved aside; a command on a cluster that stopped answering, which
    may still finish there), else that nothing half-made is left."""
    words = task.error.message if task.error is not None else ""
    return words if words and words != Cancelled().message else "Cancelled; nothing half-made left"


def describe_result(result: Any) -> str:
    """What a finished operation left, in one line: the environment made, the snapshot saved, notes."""
    if isinstance(result, Path):
        return f"Saved to {result}."
    if isinstance(result, str):
        return result
    from envdesk.backend.operations.doctor import Health
    if isinstance(result, Health):
        checked = counted(len(result.checked), "environment")
        return (f"Checked {checked}: {counted(len(result.findings), 'finding')} to look at."
                if result.findings else f"Checked {checked}: nothing wrong found.")
    parts = ["Done."]
    environment = getattr(result, "environment", None)
    if environment is not None:
        parts.append(f"{environment.name}: {counted(environment.package_count, 'package')}, "
                     f"Python {environment.python}.")
    snapshot = getattr(result, "snapshot", False)
    if snapshot:
        parts.append("A snapshot was saved before the change (the Snapshots tab goes back to it).")
    elif snapshot is None and not getattr(result, "done", False):  # else its notes say what was put back (T19)
        parts.append("Nothing needed changing, so no snapshot was kept.")
    parts.extend(getattr(result, "notes", None) or [])
    return " ".join(parts)


class AppController(QObject):
    """Starts every backend call as a Task and keeps the targets, inventories and operations in sync."""

    inventory_changed = Signal(str, object)  # target name, its new Inventory
    operation_failed = Signal(object, object)  # task, EnvDeskError
    operation_succeeded = Signal(object, object)  # task, result
    disk_measured = Signal(str, object)  # target name, its DiskReport (measure_disk)

    def __init__(self, paths: AppPaths, prompter: QtPrompter, parent: QObject | None = None, *,
                 first: str = LOCAL_TARGET, later: bool = False) -> None:
        """`first`: the target the window opens on, whose cached list is read first (at once when it is small).
        `later`: nothing is read in the background before `cached_lists.resume` (the window's first paint), and
        the other targets' lists wait for `read_cached_lists` (once the first list is painted)."""
        super().__init__(parent)
        self.paths = paths
        self.prompter = prompter
        self._session: Session | None = None
        self._session_lock = threading.Lock()
        self.cache = InventoryCache(paths)
        self.cluster_names = ClusterNames(paths)  # its store, shared: see `store`
        self.cached_lists = CachedListLoader(self.cache, self, paused=later)
        self.cached_lists.loaded.connect(self._cached_list_read)
        self.unread: set[str] = set()  # targets whose cached list is still to be read (in the background)
        self.held: list[str] | None = [] if later else None  # those waiting for read_cached_lists()
        self.runner = TaskRunner(self)
        self.targets = TargetListModel()
        self.operations = OperationListModel()
        self.inventories: dict[str, Inventory] = {}
        self.refreshed: set[str] = set()
        self.reaching: dict[str, Task] = {}  # the latest connect or refresh started per target
        self.disk_reports: dict[str, DiskReport] = {}  # the latest disk report of each target measured
        self.reload_targets(first=first)

    @property
    def store(self) -> ClusterStore:
        """The clusters' profiles (clusters.yaml), loaded once one is read or changed: the window's start needs
        only their names, which ClusterNames keeps."""
        return self.cluster_names.store

    @property
    def session(self) -> Session:
        """The backend's session (connections, logins), made on first use: the window shows before it exists."""
        with self._session_lock:
            if self._session is None:
                from envdesk.backend.targets import Session
                self._session = Session(self.paths, self.prompter, keep_agents=True)
            return self._session

    # -- targets -----------------------------------------------------------------------------

    def reload_targets(self, first: str | None = None) -> None:
        """Re-read the profiles (after add, edit or remove), keeping known states. The cached lists of targets
        new to the list are read in the background, `first`'s first (at once if small); `inventory_changed`
        brings each."""
        old = {item.name: item for item in self.targets.items}
        items = [old.get(LOCAL_TARGET) or TargetItem(LOCAL_TARGET, LOCAL_LABEL, "local")]
        try:
            names = self.cluster_names.load()
        except EnvDeskError as exc:
            items[0].message = str(exc)
            names = []
        for name in names:
            items.append(old.get(name) or TargetItem(name, name))
        for item in items:
            known = self.inventories.get(item.name)
            item.environments = len(known.environments) if known else item.environments
        self.targets.set_targets(items)
        new = [item.name for item in items if item.name not in old and item.name not in self.inventories]
        self.unread.update(new)
        if first in new and self._small_cache(first):
            new.remove(first)
            self._read_now(first)
        now = sorted(new, key=lambda name: name != first)
        if self.held is not None:
            self.held += [name for name in now if name != first]
            now = [name for name in now if name == first]
        self.cached_lists.load(now)

    def _read_now(self, name: str) -> Inventory | None:
        """Read a target's cached list on this thread (a small one: see SMALL_CACHE_BYTES)."""
        cached = self._load_cached(name)
        if cached is not None:
            self.targets.update(name, environments=len(cached.environments))
        return cached

    def _small_cache(self, name: str) -> bool:
        """The target's cached list is small enough to read on the GUI thread (or there is none)."""
        return self.cache.size(name) <= SMALL_CACHE_BYTES

    def warm_up(self) -> None:
        """Import, on a thread of its own, the modules the first operations need, which the window did not load
        before its first paint: imported on the GUI thread as the first list or create starts, they held it for
        up to a tenth of a second (tests/bench/gui_stall.py)."""
        def load() -> None:
            for name in WARM_UP_MODULES:
                try:
                    importlib.import_module(name)
                except ImportError:  # pragma: no cover - the operation that needs it reports it
                    return
        threading.Thread(target=load, name="envdesk-warm-up", daemon=True).start()

    def read_cached_lists(self) -> None:
        """Read, in the background, the cached lists `later` held back (each arrives by `inventory_changed`)."""
        held, self.held = self.held or [], None
        self.cached_lists.load(held)
        self.cached_lists.resume()

    def _cached_list_read(self, name: str, inventory: Inventory | None) -> None:
        """A cached list arrived from the background: shown unless this session already has a list."""
        if name not in self.unread:
            return  # removed, or read on the GUI thread meanwhile
        self.unread.discard(name)
        if inventory is None or name in self.inventories or self.targets.item(name) is None:
            return
        self.inventories[name] = inventory
        self.targets.update(name, environments=len(inventory.environments))
        self.inventory_changed.emit(name, inventory)

    def _load_cached(self, name: str) -> Inventory | None:
        self.unread.discard(name)  # read here: what the background brings later is not needed
        if self.held and name in self.held:
            self.held.remove(name)
        loaded = self.cache.load(name)
        if loaded is None:
            return None
        self.inventories[name] = loaded[0]
        return loaded[0]

    def inventory(self, name: str) -> Inventory | None:
        """The freshest inventory known for a target: this session's, else the one cached on disk (read now)."""
        return self.inventories.get(name) or self._load_cached(name)

    def known(self, name: str) -> Inventory | None:
        """What is known of the target now, for the GUI thread: a cached list not read yet is read now when it
        is small, else None until the background brings it (read next; `inventory_changed` carries it)."""
        if name in self.inventories or name not in self.unread:
            return self.inventories.get(name)
        if self._small_cache(name):
            return self._read_now(name)
        if self.held and name in self.held:
            self.held.remove(name)
        self.cached_lists.load([name], first=True)
        return None

    def roots(self, name: str) -> tuple[str, ...]:
        """The folders EnvDesk looks in on a target (from its settings; nothing is contacted)."""
        try:
            return tuple(self.session.target(name).roots)
        except EnvDeskError:
            return ()

    def check_new_location(self, target: str, name: str, root: str | None = None) -> None:
        """Refuse (InvalidInput, the CLI's words) a folder or name a new environment cannot have on `target`,
        judged from what is known here (the operation checks again on the target)."""
        validate.env_name(name)
        if root:
            from envdesk.backend.targets import check_folder
            check_folder(target, root)
        root = root or next(iter(self.roots(target)), None)
        inventory = self.inventory(target)
        if not root or inventory is None:
            return
        shown = f"{root.rstrip('/')}/{name}"
        full = f"{inventory.home}{shown[1:]}" if shown.startswith("~") and inventory.home else shown
        # one never finished is built anew, or the create refused as busy while another EnvDesk builds it
        if any(env.path in (shown, full) and env.state != STATE_INCOMPLETE for env in inventory.environments):
            raise InvalidInput(f"{shown} already exists. Pick another name or delete it first.")

    def taken_folder(self, target: str, name: str, on_ready: Callable[[str | None], None],
                     on_failure: Failure | None = None) -> Task:
        """Ask the target itself whether the folder a new environment `name` would get is there already (the
        folder, or None when it is free), as `env import` and `env clone` do before building: a cached list may be
        missing, or older than what is there (user trial: a copy offered Build, then failed at "Reserving")."""
        from envdesk.backend.operations.importing import taken_folder
        return self.start(f"Look for {name} on {target}", target,
                          lambda progress: taken_folder(self.session, target, name, progress=progress),
                          on_ready, on_failure, record=False, read_only=True)

    def free_name(self, target: str, wanted: str) -> str:
        """`wanted`, or `wanted-2`, `wanted-3`… when an environment of that name is already in the first folder."""
        candidate, number = wanted, 1
        while True:
            try:
                self.check_new_location(target, candidate)
                return candidate
            except InvalidInput:
                number += 1
                if number > 99:
                    return wanted
                candidate = f"{wanted}-{number}"

    def place(self, target: str) -> Place:
        """Where a target's environments are, for their Use it snippets (nothing is contacted)."""
        from envdesk.backend.snippets import Place, place_of
        try:
            return place_of(self.session.target(target))
        except EnvDeskError:
            return Place()

    def profile(self, name: str) -> ClusterProfile:
        """A cluster's saved profile, to edit it."""
        return self.store.get(name)

    def save_cluster(self, profile: ClusterProfile, *, replace: bool = False) -> None:
        """Add a cluster (or replace its profile, reconnecting with the new settings); raises EnvDeskError."""
        if replace:
            self.store.replace(profile)
            self.session.forget(profile.name)
        else:
            self.store.add(profile)
        self.reload_targets()
        if replace:
            self.targets.update(profile.name, state="idle", message="")

    def local_settings(self) -> LocalSettings:
        """How "This computer" is searched (its environment folders) and installed into (its pip arguments)."""
        return self.store.local_settings()

    def save_local_settings(self, env_roots: Sequence[str], pip_args: Sequence[str]) -> None:
        """Keep This computer's folders and pip arguments (checked: a bad one raises InvalidInput, nothing kept)
        and list it again with them."""
        from envdesk.backend.config import LocalSettings
        self.store.save_local_settings(LocalSettings(list(env_roots), list(pip_args)))
        self.session.forget(LOCAL_TARGET)
        self.refreshed.discard(LOCAL_TARGET)
        self.refresh(LOCAL_TARGET)

    def remove_cluster(self, name: str) -> None:
        """Forget a cluster, its connection and its cached list (its environments stay on the cluster)."""
        self.store.remove(name)
        self.session.forget(name)
        self.cache.forget(name)
        self.unread.discard(name)
        self.inventories.pop(name, None)
        self.refreshed.discard(name)
        self.reload_targets()

    # -- tasks -------------------------------------------------------------------------------

    def start(self, title: str, target: str, work: Callable[[Progress], Any],
              on_success: Callback | None = None, on_failure: Failure | None = None, *, record: bool = True,
              changes: bool = False, read_only: bool = False) -> Task:
        """Run `work` on a pool thread; the operations panel shows it when `record` is set.

        `changes` says the work changes the target's environments: it is listed again afterwards
        (also after a failure or cancel, since a rollback or cleanup changed things too). `read_only` says it
        only reads (a listing, a plan, a measure): closing the window drops it without asking.
        """
        task = Task(title, target, work, changes=changes, read_only=read_only)
        if changes:  # after a failure or cancel too (a rollback or cleanup changed things), not a declined login
            task.signals.finished.connect(while_alive(lambda: None if isinstance(task.error, LoginCancelled)
                                                      else self.refresh(target), self))
        if record:
            self._record(task)
        if on_success is not None:
            task.signals.succeeded.connect(while_alive(on_success))
        if on_failure is not None:
            task.signals.failed.connect(while_alive(on_failure))
        if target != LOCAL_TARGET:
            task.signals.succeeded.connect(while_alive(lambda _: self._reached(target), self))
        # a task that ends as the window closes answers after this controller is gone: then nobody is told
        task.signals.succeeded.connect(while_alive(lambda result: self.operation_succeeded.emit(task, result), self))
        task.signals.failed.connect(while_alive(lambda error: self.operation_failed.emit(task, error), self))
        return self.runner.start(task)

    def _reached(self, name: str) -> None:
        """A cluster an operation has just used is said to be connected, where the list said otherwise (T20: a
        copy dialog checked its packages on a cluster shown as 'not connected')."""
        item = self.targets.item(name)
        if item is not None and item.state in ("idle", "error") and self.session.is_connected(name):
            self.targets.update(name, state="connected", message="")

    def _record(self, task: Task) -> OperationRow:
        """Show the task in the operations list; its row is kept here, so each output line costs O(1)."""
        row = self.operations.add(task, where=self.label(task.target))
        operations = self.operations

        def step(text: str) -> None:
            row.append(f"==> {text}")
            operations.touch(row, latest=text)

        task.signals.step.connect(step)
        task.signals.line.connect(lambda _stream, text: row.append(text))
        task.signals.succeeded.connect(lambda result: operations.finish(
            row, "done", latest=describe_result(result), saved=result if isinstance(result, Path) else None))
        task.signals.cancelled.connect(lambda: operations.finish(row, "cancelled", latest=cancelled_words(task)))
        task.signals.failed.connect(lambda error: operations.finish(row, "failed", error=error,
                                                                    latest=error.message))
        return row

    # -- connecting, listing and checking ------------------------------------------------------

    def connect_target(self, name: str) -> Task:
        """Open the connection to a cluster, then list it."""
        self.targets.update(name, state="connecting", message="")

        def work(progress: Progress) -> None:
            progress.step(f"Connecting to {name}")
            self.session.target(name).runner.connect(cancel=progress.cancel)

        def connected(_: Any) -> None:
            self.targets.update(name, state="connected")
            self.refresh(name)

        return self._reaching(name, self.start(
            f"Connect to {name}", name, work, connected,
            lambda error: self.targets.update(name, state="error", message=str(error)), record=False, read_only=True))

    def disconnect_target(self, name: str) -> None:
        self.session.forget(name)
        self.targets.update(name, state="local" if name == LOCAL_TARGET else "idle")

    def refresh(self, name: str) -> Task:
        """List the target's environments in the background (the cached list stays shown meanwhile);
        `inventory_changed` carries the new list."""
        if name != LOCAL_TARGET:
            self.targets.update(name, state="connecting")

        def work(progress: Progress) -> Listing:
            from envdesk.backend.operations.listing import list_environments  # loaded here, off the GUI thread
            listing = list_environments(self.session, name, progress)
            try:
                self.cache.save(listing.inventory)
            except OSError:
                pass  # the cache only saves time at the next start
            return listing

        def done(listing: Listing) -> None:
            self.inventories[name] = listing.inventory
            self.unread.discard(name)  # a cached list read later is older: it is not shown
            self.refreshed.add(name)
            self.targets.update(name, environments=len(listing.environments),
                                state="local" if name == LOCAL_TARGET else "connected", message="")
            self.inventory_changed.emit(name, listing.inventory)

        def failed(error: EnvDeskError) -> None:
            self.targets.update(name, state="error", message=str(error))

        return self._reaching(name, self.start(f"Refresh {self.label(name)}", name, work, done, failed,
                                               record=False, read_only=True))

    def refresh_all(self) -> list[Task]:
        """Every target at once, side by side."""
        return [self.refresh(item.name) for item in self.targets.items]

    # -- every target at once ("All clusters") ---------------------------------------------------

    def _reaching(self, name: str, task: Task) -> Task:
        self.reaching[name] = task
        return task

    def is_reaching(self, name: str) -> bool:
        """A connect or refresh of the target is under way (it may be waiting for a login answer)."""
        task = self.reaching.get(name)
        return task is not None and not task.done.is_set()

    def all_environments(self, *, read_disk: bool = True) -> tuple[list[tuple[str, Environment]], dict[str, str],
                                                                    dict[str, str]]:
        """Every target's known environments at once, from this session or the disk cache (nothing is
        contacted): (target, environment) rows, each target's home folder, and each target's label.
        `read_disk=False`: only what is known now (see `known`), the GUI thread's choice."""
        rows: list[tuple[str, Environment]] = []
        homes: dict[str, str] = {}
        labels: dict[str, str] = {}
        for item in self.targets.items:
            labels[item.name] = item.label
            inventory = self.inventory(item.name) if read_disk else self.known(item.name)
            if inventory is not None:
                homes[item.name] = inventory.home or ""
                rows.extend((item.name, env) for env in inventory.environments)
        return rows, homes, labels

    def refresh_unlisted(self) -> list[Task]:
        """List, side by side, every target not listed yet in this session and not being reached already
        (each cluster that needs a code asks once; the prompter shows the questions one at a time)."""
        return [self.refresh(item.name) for item in self.targets.items
                if item.name not in self.refreshed and not self.is_reaching(item.name)
                and item.state in ("idle", "local")]

    def connect_all(self) -> list[Task]:
        """Log in to every cluster not connected or being reached already, side by side, then list each."""
        return [self.connect_target(item.name) for item in self.targets.items
                if item.name != LOCAL_TARGET and item.state != "connected" and not self.is_reaching(item.name)]

    def check(self, name: str, on_done: Callable[[ConnectionCheck], None], on_failure: Failure | None = None, *,
              profile: ClusterProfile | None = None) -> Task:
        """Test a connection step by step (`profile`: an unsaved form, over a connection of its own)."""
        from envdesk.backend.operations.check import check_connection
        return self.start(f"Test {name}", name,
                          lambda progress: check_connection(self.session, name, progress, profile=profile),
                          on_done, on_failure, record=False, read_only=True)

    def capabilities(self, name: str, on_ready: Callable[[Capabilities], None],
                     on_failure: Failure | None = None) -> Task:
        """What the target can make (kinds, Pythons, free space), probed once per session."""
        from envdesk.backend.operations.common import capabilities
        return self.start(f"Look at {name}", name,
                          lambda progress: capabilities(self.session, self.session.target(name), progress),
                          on_ready, on_failure, record=False, read_only=True)

    # -- environment verbs ---------------------------------------------------------------------

    def create(self, target: str, *, name: str, kind: str | None = None, python: str | None = None,
               modules: Sequence[str] = (), system_site_packages: bool = False, root: str | None = None,
               packages: Sequence[str] = (), jupyter_kernel: bool = False) -> Task:
        """Create an environment; the target is listed again afterwards. `jupyter_kernel`: with ipykernel among
        its packages, and registered as a Jupyter kernel once it is made (a second operation)."""
        from envdesk.backend.operations.create import CreateRequest, create_environment
        from envdesk.backend.operations.kernels import with_ipykernel
        if jupyter_kernel:
            packages = with_ipykernel(packages)
        request = CreateRequest(name=name, kind=kind, python=python, modules=list(modules),
                                system_site_packages=system_site_packages, root=root, packages=list(packages))
        return self.start(f"Create {name}", target,
                          lambda progress: create_environment(self.session, target, request, progress),
                          (lambda created: self.add_kernel(target, created.environment)) if jupyter_kernel else None,
                          changes=True)

    def add_kernel(self, target: str, env: Environment, *, install_ipykernel: bool = False,
                   on_done: Callable[[Kernel], None] | None = None, on_failure: Failure | None = None) -> Task:
        """Register the environment as a Jupyter kernel of the user on its target, its launcher loading the
        modules first. Without ipykernel this fails with IpykernelMissing, unless `install_ipykernel` (an update
        adding it, snapshotted first)."""
        from envdesk.backend.operations.kernels import add_kernel
        def work(progress: Progress) -> Kernel:
            kernel = add_kernel(self.session, target, env.path, progress, install_ipykernel=install_ipykernel)
            kernel.notes.insert(0, f"Jupyter kernel {kernel.name} (\"{kernel.display_name}\") made"
                                   + (f", loading {' '.join(kernel.modules)} first." if kernel.modules else "."))
            return kernel

        return self.start(f"Make a Jupyter kernel of {env.name}", target, work, on_done, on_failure,
                          changes=install_ipykernel)

    def kernels(self, target: str, on_ready: Callable[[list[Kernel]], None],
                on_failure: Failure | None = None) -> Task:
        """The user's Jupyter kernels on the target, EnvDesk's and others' (one command)."""
        from envdesk.backend.operations.kernels import list_kernels
        return self.start(f"Jupyter kernels on {self.label(target)}", target,
                          lambda progress: list_kernels(self.session, target, progress), on_ready, on_failure,
                          record=False, read_only=True)

    def remove_kernel(self, target: str, name: str, on_done: Callable[[Kernel], None], *, force: bool = False) -> Task:
        """Remove a kernel EnvDesk made, or with `force` one another tool made (its environment stays)."""
        from envdesk.backend.operations.kernels import remove_kernel
        return self.start(f"Remove the Jupyter kernel {name}", target,
                          lambda progress: remove_kernel(self.session, target, name, progress, force=force), on_done)

    def lacks_ipykernel(self, env: Environment) -> bool:
        """Whether the environment surely has no ipykernel: not among its packages, and neither system packages
        nor modules could give it (those are judged on the cluster, as the kernel is made)."""
        from envdesk.backend.operations.kernels import surely_lacks_ipykernel
        return surely_lacks_ipykernel(env)

    def update(self, target: str, env: Environment, *, add: Sequence[str] = (), remove: Sequence[str] = (),
               upgrade: Sequence[str] = (), upgrade_all: bool = False) -> Task:
        """Add, remove or upgrade packages (a snapshot is saved first)."""
        from envdesk.backend.operations.update import Change, update_environment
        change = Change(add=list(add), remove=list(remove), upgrade=list(upgrade), upgrade_all=upgrade_all)
        return self.start(f"Update {env.name}", target,
                          lambda progress: update_environment(self.session, target, env.path, change, progress),
                          changes=True)

    def compare(self, target: str, env: Environment, other_target: str, other: Environment,
                on_ready: Callable[[Comparison], None], on_failure: Failure | None = None) -> Task:
        """Read both environments fresh with their details (one agent run per target) and compare them;
        `env` is "here" (the model), `other` is "there"."""
        from envdesk.backend.operations.diff import diff_environments
        return self.start(f"Compare {env.name} with {other.name}", other_target, lambda progress: diff_environments(
            self.session, target, env.path, other_target, other.path, progress), on_ready, on_failure, record=False,
            read_only=True)

    def make_like(self, comparison: Comparison) -> Task:
        """Make the compared "there" hold what "here" holds, as the comparison shown says: one update of it
        (snapshotted first); what cannot be pinned by version is left alone and listed in the result."""
        from envdesk.backend.operations.diff import make_like
        here, there = comparison.here, comparison.there
        return self.start(f"Make {there.environment.name} like {here.environment.name}", there.target,
                          lambda progress: make_like(self.session, here.target, here.environment.path, there.target,
                                                     there.environment.path, progress, comparison=comparison),
                          changes=True)

    def check_health(self, target: str, on_ready: Callable[[Health], None]) -> Task:
        """The health check of every environment of the target (see Environment ▸ Check health)."""
        from envdesk.backend.operations.doctor import check_health
        return self.start(f"Check the health of {self.label(target)}", target,
                          lambda progress: check_health(self.session, target, None, progress), on_ready,
                          read_only=True)

    def fix_health(self, target: str, fix: str, on_done: Callable[[str], None]) -> Task:
        """Apply one safe fix a health finding offers."""
        from envdesk.backend.operations.doctor import fix_finding
        return self.start(f"Fix on {self.label(target)}", target,
                          lambda progress: fix_finding(self.session, target, fix, progress), on_done)

    def reached(self, name: str) -> bool:
        """The target was listed in this session (so reading it again asks no login question)."""
        return name == LOCAL_TARGET or name in self.refreshed

    def details(self, target: str, env: Environment, on_ready: Callable[[Environment], None]) -> Task:
        """One environment read with its packages' details (a listing gives names and versions only); the
        inventory in memory keeps it."""
        from envdesk.backend.operations.listing import show_environment

        def done(detailed: Environment) -> None:
            inventory = self.inventories.get(target)
            if inventory is not None:
                self.inventories[target] = replace(inventory, environments=tuple(
                    detailed if known.path == detailed.path else known for known in inventory.environments))
            while_alive(on_ready)(detailed)

        return self.start(f"Details of {env.name}", target,
                          lambda progress: show_environment(self.session, target, env.name, progress),
                          done, record=False, read_only=True)

    def snapshots(self, target: str, env: Environment, on_ready: Callable[[list[Snapshot]], None],
                  on_failure: Failure | None = None) -> Task:
        """The environment's snapshots, oldest first."""
        from envdesk.backend.operations.history import list_snapshots
        return self.start(f"Snapshots of {env.name}", target,
                          lambda progress: list_snapshots(self.session, target, env.path, progress),
                          on_ready, on_failure, record=False, read_only=True)

    def revert(self, target: str, env: Environment, snapshot_id: str) -> Task:
        """Put a snapshot's packages back (the current ones are snapshotted first)."""
        from envdesk.backend.operations.history import revert_environment
        return self.start(f"Revert {env.name}", target, lambda progress: revert_environment(
            self.session, target, env.path, snapshot_id, progress), changes=True)

    def export(self, target: str, env: Environment, path: Path, fmt: str,
               on_saved: Callable[[Path], None] | None = None) -> Task:
        """Export in a worker and write the file when the text arrives."""
        from envdesk.backend.fileio import write_atomically
        from envdesk.backend.operations.export import export_environment
        def work(progress: Progress) -> Path:
            write_atomically(path, export_environment(self.session, target, env.path, fmt, progress), private=False)
            return path

        return self.start(f"Export {env.name}", target, work, on_saved)

    def read_spec(self, path: Path) -> EnvSpec:
        """An environment file of this computer, read and checked (local and small: no task needed)."""
        from envdesk.backend.operations.importing import read_spec_file
        return read_spec_file(path)

    def requirements_to_create(self, path: Path) -> list[str]:
        """The packages of a requirements file for a new environment, each installed as written; a file a create
        would not install as written is refused, pointing to Import (importing.requirements_to_create)."""
        from envdesk.backend.operations.importing import IMPORT_INSTEAD, requirements_to_create
        try:
            return requirements_to_create(path)
        except InvalidInput as exc:
            if not exc.hint.startswith(IMPORT_INSTEAD):
                raise
            raise InvalidInput(f"{exc.message} Import this file instead (Import, Ctrl+I): "
                               f"{exc.hint[len(IMPORT_INSTEAD):]}") from exc

    def spec_of(self, target: str, env: Environment) -> EnvSpec:
        """What a copy of `env` would be built from (from what is already known: nothing is contacted)."""
        from envdesk.backend.operations.clone import spec_of_copy
        return spec_of_copy(env, self.session.target(target))

    def with_python(self, spec: EnvSpec, version: str) -> EnvSpec:
        """`spec` to be made with Python `version` in place of its own (importing.with_python)."""
        from envdesk.backend.operations.importing import with_python
        return with_python(spec, version)

    def install_lines(self, spec: EnvSpec) -> tuple[list[str], list[str]]:
        """(pip lines, conda specs) an import of `spec` gives the installers (importing.install_lines)."""
        from envdesk.backend.operations.importing import install_lines
        return install_lines(spec, conda=spec.kind == "conda")

    def read_uv_project(self, path: Path) -> "UvProject":
        """A uv project of this computer (its folder, uv.lock or pyproject.toml), read and checked (local and
        small: no task needed)."""
        from envdesk.backend.uvproject import read_uv_project
        return read_uv_project(path)

    def plan_import(self, target: str, spec: EnvSpec, name: str | None,
                    on_ready: Callable[[ImportPlan, list[Unavailable]], None],
                    on_failure: Failure | None = None, *, project: Path | None = None) -> Task:
        """What building `spec` (or the uv project in the folder `project`, whose locked versions depend on the
        target) on the target would do, and which pinned packages it cannot provide."""
        from envdesk.backend.operations.importing import check_availability, plan_import
        from envdesk.backend.operations.uvimport import plan_uv_project

        def work(progress: Progress) -> tuple[ImportPlan, list[Unavailable]]:
            plan = (plan_uv_project(self.session, target, project, name=name, progress=progress) if project else
                    plan_import(self.session, target, spec, name, progress))
            return plan, check_availability(self.session, target, plan, progress)

        return self.start(f"Plan for {target}", target, work, lambda answer: while_alive(on_ready)(*answer), on_failure,
                          record=False, read_only=True)

    def plan_copy(self, source: str, env: Environment, target: str, python: str | None, name: str | None,
                  on_ready: Callable[[EnvSpec, ImportPlan, list[Unavailable]], None],
                  on_failure: Failure | None = None) -> Task:
        """What copying `env` of `source` to the target would do, as plan_import says, planned from the source read
        again (the list this window holds may be older), made with Python `python` if one is chosen; `on_ready` is
        given the spec planned too, which a copy of this plan builds (clone)."""
        from envdesk.backend.operations.clone import spec_of_copy
        from envdesk.backend.operations.common import find_environment, whole_to_read
        from envdesk.backend.operations.importing import check_availability, plan_import, with_python

        def work(progress: Progress) -> tuple[EnvSpec, ImportPlan, list[Unavailable]]:
            there = self.session.target(source)
            spec = spec_of_copy(whole_to_read(find_environment(there, env.path, progress), "copied", progress), there)
            spec = with_python(spec, python) if python else spec
            plan = plan_import(self.session, target, spec, name, progress)
            return spec, plan, check_availability(self.session, target, plan, progress)

        return self.start(f"Plan for {target}", target, work, lambda answer: while_alive(on_ready)(*answer), on_failure,
                          record=False, read_only=True)

    def import_spec(self, target: str, spec: EnvSpec, *, name: str, top_level: bool = False,
                    project: Path | None = None, shown: tuple[ImportPlan, list[Unavailable]] | None = None,
                    other_builds: bool = False) -> Task:
        """Build an environment from an exported file's spec (or the uv project in the folder `project`), as the
        plan the user was shown says (lines the plan leaves out were shown, so building means agreeing to that).
        `shown`: that plan and what its check found missing, which the build does not try again; `other_builds`:
        the user chose to install the release where a pinned build variant (+cu118) is missing."""
        from envdesk.backend.operations.importing import import_environment
        from envdesk.backend.operations.uvimport import import_uv_project

        def work(progress: Progress) -> Any:
            if project:
                return import_uv_project(self.session, target, project, name=name, top_level=top_level, agreed=True,
                                         progress=progress)
            return import_environment(self.session, target, spec, name=name, top_level=top_level,
                                      agreed=shown is not None, progress=progress, checked=_checked(shown),
                                      other_builds=other_builds, plan=shown[0] if shown else None)
        return self.start(f"Build {name} on {self.label(target)}", target, work, changes=True)

    def clone(self, source: str, env: Environment, destination: str, *, name: str, top_level: bool = False,
              spec: EnvSpec | None = None, shown: tuple[ImportPlan, list[Unavailable]] | None = None,
              other_builds: bool = False) -> Task:
        """Copy an environment to another target, built there as the plan shown says: `spec`, the source's spec
        that plan was made of (the source is not read again: what it holds now, the user never saw, R19); `shown`
        and `other_builds` as for import_spec, and, as there, what the plan shown leaves out is agreed to. With no
        plan shown the source is read again, and nothing is agreed to."""
        from envdesk.backend.operations.clone import clone_environment
        planned = (spec or self.spec_of(source, env), shown[0]) if shown else None
        return self.start(f"Copy {env.name} to {self.label(destination)}", destination,
                          lambda progress: clone_environment(self.session, source, env.path, destination, name=name,
                                                             top_level=top_level, progress=progress,
                                                             checked=_checked(shown), other_builds=other_builds,
                                                             agreed=shown is not None, shown=planned),
                          changes=True)

    def measure(self, target: str, env: Environment, on_ready: Callable[[Measured], None],
                on_failure: Failure | None = None) -> Task:
        """What deleting the environment would remove (its folder's size, EnvDesk's kernels for it), so a
        confirmation can say what would go."""
        from envdesk.backend.operations.delete import measure_environment
        return self.start(f"Measure {env.name}", target,
                          lambda progress: measure_environment(self.session, target, env.path),
                          on_ready, on_failure, record=False, read_only=True)

    def delete(self, target: str, env: Environment) -> Task:
        """Delete the environment's folder (and the Jupyter kernels EnvDesk made for it)."""
        from envdesk.backend.operations.delete import delete_environment
        return self.start(f"Delete {env.name}", target,
                          lambda progress: delete_environment(self.session, target, env.path, progress),
                          changes=True)

    # -- disk and inodes (issue 12) --------------------------------------------------------------

    def measure_disk(self, target: str, on_ready: Callable[[DiskReport], None] | None = None,
                     on_failure: Failure | None = None) -> Task:
        """Measure what each environment of the target takes (bytes and files), what its roots' file systems
        have left and its quota report (two commands); the report is kept (`disk_reports`) and
        `disk_measured` carries it."""
        from envdesk.backend.operations.disk import disk_report
        def done(report: DiskReport) -> None:
            self.disk_reports[target] = report
            self.disk_measured.emit(target, report)
            if on_ready is not None:
                while_alive(on_ready)(report)

        return self.start(f"Measure disk use on {self.label(target)}", target,
                          lambda progress: disk_report(self.session, target, progress=progress), done, on_failure,
                          read_only=True)

    def clean_caches(self, target: str, which: str, on_ready: Callable[[list[Cleaned]], None] | None = None,
                     on_failure: Failure | None = None) -> Task:
        """Empty pip's, uv's or conda's download cache on the target ("all": each it has); what each freed."""
        from envdesk.backend.operations.disk import clean_caches
        return self.start(f"Empty the {'installers' if which == 'all' else which} cache on {self.label(target)}",
                          target, lambda progress: clean_caches(self.session, target, which, progress),
                          on_ready, on_failure)

    # -- the rest ------------------------------------------------------------------------------

    def label(self, name: str) -> str:
        item = self.targets.item(name)
        return item.label if item else name

    def shutdown(self) -> None:
        """Stop workers and close connections (the window is closing), never waiting on a cluster (T19: the close
        blocked 10 s on a task stuck on a connection that stopped answering): the tasks still running are left
        (cancelled, answering nobody) to end on their threads, and said on stderr and in the log, as what each
        ended as is once it has (see Task.leave). The connections close once those tasks have ended (soon: see
        _close_once_ended)."""
        self.prompter.close()
        left = self.runner.leave_all()
        session = self._session
        if left:
            words = "; ".join(f"{task.title} ({self.label(task.target)})" for task in left)
            log.info("closed while these were still running; they were cancelled: %s", words)  # printed below
            print(f"EnvDesk closed while these were still running: {words}. They were cancelled, and what each ends "
                  "as is said here once it has.", file=sys.stderr)
        if session is None:  # never made: nothing to close
            return
        if not left:
            session.close()
            return
        threading.Thread(target=_close_once_ended, args=(session, left), daemon=True, name="close connections").start()


def _close_once_ended(session: Session, tasks: list[Task]) -> None:
    """Close the session's connections once `tasks` have ended: their stops and rollbacks need them. None waits
    long on a cluster that stopped answering: a cancel asks it once (ssh_alive.STOP_CHECK) and gives its connection
    up, and any read on it ends once the hop's watch gives it up (ServerAliveInterval x (ServerAliveCountMax + 1))."""
    for task in tasks:
        task.done.wait()
    session.close()


def save_job_script(env: Environment, place: Place, path: Path) -> Path:
    """Save a ready Slurm batch script for `env` (the Use it tab's; see slurm.job_script) to `path` on this
    computer, made executable (issue 12). Nothing reaches a target: it can run on the window's thread."""
    from envdesk.backend.slurm import job_script, write_job_script
    write_job_script(path, job_script(env, place))
    return path


def _checked(shown: tuple[ImportPlan, list[Unavailable]] | None) -> Any:
    """What the check of the plan shown found (importing.Availability): the pins missing there, and the site's own
    builds (and build variants) whose public release is there; None where no plan was shown."""
    if shown is None:
        return None
    from envdesk.backend.operations.importing import Availability
    plan, missing = shown
    return Availability(list(missing), {**plan.public_releases, **plan.other_builds})
