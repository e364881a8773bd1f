"""Small file helpers shared by the stores: atomic writes and safe YAML.

PyYAML is loaded by the first YAML read or write, not with this module: importing it takes some 13 ms, which
the window's start (atomic writes, cached lists) need not wait for.
"""
from __future__ import annotations

import contextlib
import copy
import errno
import functools
import json
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from .errors import ConfigError, EnvDeskError, WriteFailed

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import yaml


def write_atomically(path: Path, text: str | bytes, *, private: bool = True) -> None:
    """Replace `path` with `text` (UTF-8, or bytes as they are) so that a crash never leaves half a file behind.

    `private` files (EnvDesk's settings, known hosts, cache) are readable by the user only, in a
    folder only the user can enter; the others (exports a user gives to colleagues) get the usual
    permissions of the user's umask. Raises WriteFailed, in plain words, when it cannot be written.
    """
    try:
        if path.is_dir():
            raise IsADirectoryError(21, "it is a folder", str(path))
        if private:
            private_folder(path.parent)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _write_failed(path, exc) from exc
    try:
        if not private:
            os.chmod(tmp, 0o666 & ~current_umask())
        if isinstance(text, bytes):
            with os.fdopen(fd, "wb") as binary:
                binary.write(text)
        else:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise _write_failed(path, exc) from exc
        raise


def read_without_waiting(path: Path, limit: int, check: Callable[[os.stat_result], None]) -> bytes:
    """At most `limit` + 1 bytes of `path` (one more than allowed, so that a caller sees a file that grew too
    large), opened without waiting (a file that became a pipe since it was looked at would block) and passed to
    `check` once open, which raises for a file it refuses. OSError when it cannot be opened or read."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(descriptor, "rb") as opened:
        check(os.fstat(opened.fileno()))
        return opened.read(limit + 1)


def private_folder(folder: Path) -> None:
    """Create `folder` (and its parents) if needed, and keep it to its owner: mode 0700 on POSIX."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.name == "posix":
        os.chmod(folder, 0o700)


@contextlib.contextmanager
def locked(path: Path, wait: float, busy: Callable[[], EnvDeskError]) -> Iterator[None]:
    """Hold the lock file `path` for the `with` block, so that one process (or thread) at a time reads, changes
    and writes what it guards; waits up to `wait` seconds for another holder, then raises `busy()`.

    The operating system's own lock (flock on Linux and macOS, msvcrt.locking on Windows) is dropped by the
    system when its holder ends, killed or crashed: no stale lock is left to be judged by its age and taken over
    (a lock made by creating a file must be, and two takers can then both hold it). The file itself stays: a
    waiter that opened it before it was removed would lock a file no one else sees. A file system that has no
    locks (a network home without its lock service) is written without one, as before, with a warning."""
    deadline = time.monotonic() + wait
    with _THREAD_LOCKS_GUARD:
        in_process = _THREAD_LOCKS.setdefault(os.path.abspath(path), threading.Lock())
    if not in_process.acquire(timeout=max(wait, 0)):
        raise busy()
    try:
        with _system_lock(path, deadline, busy):
            yield
    finally:
        in_process.release()


_THREAD_LOCKS: dict[str, threading.Lock] = {}
"""One lock per lock file for the threads of this process (R21): where flock is emulated by record locks, on an
NFS home, those are the process's, so two of its threads would both hold the system's lock."""
_THREAD_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def _system_lock(path: Path, deadline: float, busy: Callable[[], EnvDeskError]) -> Iterator[None]:
    """The operating system's lock on `path` for the block (see locked)."""
    try:
        private_folder(path.parent)
        handle = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o600)
    except OSError as exc:
        raise _write_failed(path, exc) from exc
    try:
        while not _lock_now(handle, path):
            if time.monotonic() > deadline:
                raise busy()
            time.sleep(0.02)
        try:
            yield
        finally:
            if sys.platform == "win32":  # Windows drops a closed file's locks "when resources allow": at once here
                import msvcrt
                os.lseek(handle, 0, os.SEEK_SET)
                with contextlib.suppress(OSError):
                    msvcrt.locking(handle, msvcrt.LK_UNLCK, 1)
    finally:
        os.close(handle)  # drops the lock on Linux and macOS


def _lock_now(handle: int, path: Path) -> bool:
    """Take the system's lock on the open lock file `handle` (at `path`) if no one holds it: False when someone
    does; True, with a warning, where the file system has no locks."""
    try:
        if sys.platform == "win32":
            import msvcrt
            os.lseek(handle, 0, os.SEEK_SET)  # msvcrt locks bytes from the current position: the first one
            msvcrt.locking(handle, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if isinstance(exc, BlockingIOError) or (sys.platform == "win32" and exc.errno in (errno.EACCES,
                                                                                          errno.EDEADLOCK)):
            return False  # held by another
        log.warning("%s cannot be locked (%s): changing what it guards without a lock.", path, exc.strerror or exc)
    return True


def current_umask() -> int:
    """The process's umask, read without changing it where the system says (Linux), else briefly set."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_failed(path: Path, exc: OSError) -> WriteFailed:
    if isinstance(exc, IsADirectoryError):
        hint = "That is a folder: give the name of a file (inside it, for example)."
    elif isinstance(exc, (NotADirectoryError, FileExistsError)):
        hint = "Part of that path is a file, not a folder: choose another place."
    elif isinstance(exc, PermissionError) or exc.errno == 30:  # EROFS: read-only file system
        hint = "You cannot write there: choose another folder, or fix its permissions."
    else:
        hint = "Check that the disk is not full and the folder exists, then try again."
    return WriteFailed(f"Could not write {path}: {exc.strerror or exc}.", hint)


MAX_YAML_ALIASES = 20
"""A YAML file may reuse a node this many times ('*name'); more is how a 'billion laughs' file
makes a few lines expand into billions of entries."""


@functools.lru_cache(maxsize=1)
def _bounded_loader() -> type:
    """PyYAML's safe loader, refusing documents that lean on aliases to grow without bound, and mappings with a key
    twice, whose first value PyYAML drops without a word (made on first use)."""
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.aliases_seen = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                self.aliases_seen += 1
                if self.aliases_seen > MAX_YAML_ALIASES:
                    mark = self.peek_event().start_mark
                    raise yaml.YAMLError(f"more than {MAX_YAML_ALIASES} aliases (line {mark.line + 1}): "
                                         "the file would expand without bound")
            return super().compose_node(parent, index)

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue  # a merge (<<) may override keys, as YAML means it to
                key = self.construct_object(key_node)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise yaml.YAMLError(f"the key {key!r} is there twice (lines {seen[key]} and {line}): YAML would "
                                         "keep only the last, and what the first one holds would be lost")
                seen[key] = line
            return super().construct_mapping(node, deep=deep)

    return BoundedLoader


def load_yaml(text: str) -> Any:
    """yaml.safe_load, but a document that expands through aliases ('billion laughs') is refused."""
    loader = _bounded_loader()(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


@functools.lru_cache(maxsize=8)
def _parsed(text: str) -> Any:
    """load_yaml(text), kept for the texts read last: the cluster list is read for every listing of every
    cluster (Session.target), and parsing it takes a millisecond or more; callers get copies (read_yaml)."""
    return load_yaml(text)


def read_yaml(path: Path, *, what: str, kept: Path | None = None,
              keep: Callable[[str, Any], bool] = lambda text, data: True) -> Any:
    """Load a YAML file with `safe_load`, turning every failure into a plain ConfigError. With `kept`, what it
    parsed to is kept in that file (see keep_parse) where `keep(text, data)` allows, and read from there while
    the file holds that text: no YAML parser loaded (~12 ms of a command's start)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"Could not read {what} at {path}: {exc.strerror or exc}.") from exc
    if kept is not None:
        found = kept_parse(text, kept)
        if found is not NOT_KEPT:
            return found
    import yaml
    try:
        data = copy.deepcopy(_parsed(text))
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"The {what} file {path} is not valid YAML ({yaml_problem(exc)}).",
            "Fix or remove the file, then try again.",
        ) from exc
    if kept is not None and keep(text, data):
        keep_parse(text, data, kept)
    return data


NOT_KEPT = object()  # kept_parse's answer where nothing is kept for the text


def kept_parse(text: str, kept: Path) -> Any:
    """What keep_parse kept in `kept` for exactly `text`, or NOT_KEPT."""
    try:
        found = json.loads(kept.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return NOT_KEPT
    if isinstance(found, dict) and found.get("source") == text and "data" in found:
        return found["data"]
    return NOT_KEPT


def keep_parse(text: str, data: Any, kept: Path) -> None:
    """Keep `data`, parsed from a file's `text`, in `kept` with that text, where JSON gives it back exactly (not
    YAML's dates or sets); a cache that cannot be written is left as it is."""
    try:
        if json.loads(json.dumps(data)) == data:
            write_atomically(kept, json.dumps({"source": text, "data": data}))
    except (TypeError, ValueError, WriteFailed):
        pass


def yaml_problem(exc: yaml.YAMLError) -> str:
    """Where and what, from PyYAML's error, in one line."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"line {mark.line + 1}: {problem}" if mark is not None else problem


def dump_yaml(data: Any) -> str:
    """Serialise plain data as readable block YAML."""
    import yaml
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
