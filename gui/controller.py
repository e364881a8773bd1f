"""The app's one link to the backend: owns the session, the cache and the tasks, and updates the models."""
from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QObject, Signal

from envdesk.backend.cache import InventoryCache
from envdesk.backend.capabilities import Capabilities
from envdesk.backend.errors import EnvDeskError, LoginCancelled
from envdesk.backend.inventory import Inventory, read_inventory
from envdesk.backend.operations.common import Progress, capabilities
from envdesk.backend.paths import AppPaths
from envdesk.backend.targets import LOCAL_LABEL, Session
from envdesk.backend.validate import LOCAL_TARGET

from .models import OperationListModel, TargetItem, TargetListModel
from .prompter import QtPrompter
from .tasks import Task, TaskRunner


def describe_result(result: Any) -> str:
    """What a finished operation left, in one line: the environment made, the snapshot saved, notes."""
    parts = ["Done."]
    environment = getattr(result, "environment", None)
    if environment is not None:
        parts.append(f"{environment.name}: {environment.package_count} packages, Python {environment.python}.")
    snapshot = getattr(result, "snapshot", None)
    if snapshot:
        parts.append(f"Snapshot {snapshot} was saved before the change (Details → Snapshots to go back).")
    parts.extend(getattr(result, "notes", None) or [])
    return " ".join(parts)


class AppController(QObject):
    """Starts every backend call as a Task and keeps the targets, inventories and operations in sync."""

    inventory_changed = Signal(str)  # target name
    operation_failed = Signal(object, object)  # task, EnvDeskError
    operation_succeeded = Signal(object, object)  # task, result

    def __init__(self, paths: AppPaths, prompter: QtPrompter, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.paths = paths
        self.prompter = prompter
        self.session = Session(paths, prompter)
        self.cache = InventoryCache(paths)
        self.runner = TaskRunner(self)
        self.targets = TargetListModel()
        self.operations = OperationListModel()
        self.inventories: dict[str, Inventory] = {}
        self.refreshed: set[str] = set()
        self.reload_targets()

    # -- targets -----------------------------------------------------------------------------

    def reload_targets(self) -> None:
        """Re-read the profiles (after add, edit or remove), keeping known states."""
        old = {item.name: item for item in self.targets.items}
        items = [old.get(LOCAL_TARGET) or TargetItem(LOCAL_TARGET, LOCAL_LABEL, "local")]
        try:
            profiles = self.session.store.load()
        except EnvDeskError as exc:
            items[0].message = str(exc)
            profiles = []
        for profile in profiles:
            items.append(old.get(profile.name) or TargetItem(profile.name, profile.name))
        for item in items:
            cached = self.inventories.get(item.name) or self._load_cached(item.name)
            item.environments = len(cached.environments) if cached else None
        self.targets.set_targets(items)

    def _load_cached(self, name: str) -> Inventory | None:
        loaded = self.cache.load(name)
        if loaded is None:
            return None
        self.inventories[name] = loaded[0]
        return loaded[0]

    def inventory(self, name: str) -> Inventory | None:
        """The freshest inventory known for a target: this session's, else the one cached on disk."""
        return self.inventories.get(name) or self._load_cached(name)

    # -- tasks -------------------------------------------------------------------------------

    def start(self, title: str, target: str, work: Callable[[Progress], Any],
              on_success: Callable[[Any], None] | None = None,
              on_failure: Callable[[EnvDeskError], None] | None = None, *, record: bool = True,
              changes: bool = False) -> Task:
        """Run `work` on a pool thread; the operations panel shows it when `record` is set.

        `changes` says the work changes the target's environments: it is listed again afterwards
        (also after a failure or cancel, since a rollback or cleanup changed things too).
        """
        task = Task(title, target, work)
        if changes:  # after a failure or cancel too (a rollback or cleanup changed things), not a declined login
            task.signals.finished.connect(lambda: None if isinstance(task.error, LoginCancelled)
                                          else self.refresh(target))
        if record:
            self.operations.add(task)
            task.signals.step.connect(lambda text: self.operations.touch(task, latest=text))
            task.signals.step.connect(lambda text: self.operations.row_for(task)["log"].append(f"==> {text}"))
            task.signals.line.connect(lambda stream, text: self.operations.row_for(task)["log"].append(text))
            task.signals.succeeded.connect(lambda result: self.operations.touch(task, state="done",
                                                                                latest=describe_result(result)))
            task.signals.cancelled.connect(lambda: self.operations.touch(task, state="cancelled",
                                                                         latest="Cancelled; nothing half-made left"))
            task.signals.failed.connect(lambda error: self.operations.touch(task, state="failed", error=error,
                                                                            latest=error.message))
        if on_success is not None:
            task.signals.succeeded.connect(on_success)
        if on_failure is not None:
            task.signals.failed.connect(on_failure)
        task.signals.succeeded.connect(lambda result: self.operation_succeeded.emit(task, result))
        task.signals.failed.connect(lambda error: self.operation_failed.emit(task, error))
        return self.runner.start(task)

    # -- connecting and listing ----------------------------------------------------------------

    def connect_target(self, name: str) -> Task:
        self.targets.update(name, state="connecting", message="")

        def work(progress: Progress) -> None:
            progress.step(f"Connecting to {name}")
            self.session.target(name).runner.connect()

        return self.start(f"Connect to {name}", name, work,
                          lambda _: self.targets.update(name, state="connected"),
                          lambda error: self.targets.update(name, state="error", message=str(error)),
                          record=False)

    def disconnect_target(self, name: str) -> None:
        self.session.forget(name)
        self.targets.update(name, state="local" if name == LOCAL_TARGET else "idle")

    def refresh(self, name: str) -> Task:
        """Read the target's environments in the background; the cached list stays shown meanwhile."""
        if name != LOCAL_TARGET:
            self.targets.update(name, state="connecting")

        def work(progress: Progress) -> Inventory:
            target = self.session.target(name)
            progress.step(f"Listing environments on {target.label}")
            inventory = read_inventory(target.runner, target.roots, cancel=progress.cancel)
            try:
                self.cache.save(inventory)
            except OSError:
                pass  # the cache only saves time at the next start
            return inventory

        def done(inventory: Inventory) -> None:
            self.inventories[name] = inventory
            self.refreshed.add(name)
            self.targets.update(name, environments=len(inventory.environments),
                                state="local" if name == LOCAL_TARGET else "connected", message="")
            self.inventory_changed.emit(name)

        def failed(error: EnvDeskError) -> None:
            self.targets.update(name, state="error", message=str(error))

        return self.start(f"Refresh {self.label(name)}", name, work, done, failed, record=False)

    def refresh_all(self) -> list[Task]:
        """Every target at once, side by side."""
        return [self.refresh(item.name) for item in self.targets.items]

    def capabilities(self, name: str, on_ready: Callable[[Capabilities], None],
                     on_failure: Callable[[EnvDeskError], None] | None = None) -> Task:
        return self.start(f"Look at {name}", name,
                          lambda progress: capabilities(self.session, self.session.target(name), progress),
                          on_ready, on_failure, record=False)

    def label(self, name: str) -> str:
        item = self.targets.item(name)
        return item.label if item else name

    def shutdown(self) -> None:
        """Stop workers and close connections (the window is closing)."""
        self.prompter.close()
        self.runner.shutdown()
        self.session.close()


