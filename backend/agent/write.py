"""EnvDesk remote agent, write part: locks, snapshots, EnvDesk's notes, deletion.

Sent only for a write action (``"action"`` in the settings), after the protocol
header and the read part (see read.py), whose helpers it uses; it hands its
``run_action`` to the read part's ``main`` through ``RUN_ACTION``. Same rules as
the read part: Python 3.6+, standard library only, every action first checks
that its folder is an environment inside a known root.
"""
# The protocol constants come from the generated header, the helpers from the read part:
# ruff: noqa: F821
# mypy: ignore-errors

# csv and shutil are imported where they are used (a delete), not by every action: see read.py's imports.
import errno
import stat

STALE_LOCK_SECONDS = 24 * 3600


class ActionError(Exception):
    """A refusal or failure explained in one plain sentence; `code` tells the app what kind."""

    def __init__(self, message, code=CODE_FAILED):
        Exception.__init__(self, message)
        self.code = code


def _now_stamp():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def inside_root(path, roots):
    """The root that holds path (both compared after resolving links), or None."""
    parent = os.path.realpath(os.path.dirname(expand(path).rstrip("/")))
    for root in roots:
        real_root = os.path.realpath(expand(root, variables=True))
        if parent == real_root or parent.startswith(real_root.rstrip("/") + "/"):
            return root
    return None


def known_conda_prefix(path):
    """True when path is a conda environment conda itself lists (environments.txt or an envs dir)."""
    found = Found(DEFAULT_MAX_ENVS, Deadline(DEFAULT_TIME_BUDGET))
    real = os.path.realpath(path)
    listed = [os.path.realpath(p) for p in conda_listed_prefixes(found)]
    dirs = [os.path.realpath(d) for d in conda_envs_dirs(found)]
    dirs += [os.path.join(p, "envs") for p in listed]
    return os.path.isdir(os.path.join(path, "conda-meta")) and (
        real in listed or os.path.dirname(real) in dirs)


def check_target(path, roots, creating=False):
    """Refuse anything that is not a folder inside one of the roots (or, to change it, a conda env)."""
    full = expand(path).rstrip("/")
    if not os.path.isabs(full):
        raise ActionError("%s is not an absolute folder path." % path, CODE_INVALID)
    if inside_root(full, roots) is None and (creating or not known_conda_prefix(full)):
        raise ActionError("%s is not inside any of the environment folders EnvDesk "
                          "manages (%s)." % (full, ", ".join(roots)), CODE_OUTSIDE)
    return full


def _lock_owner(lock):
    """The lock's owner record, with its start time from the folder when the record is unreadable. One this
    user may not read (another user's lock, closed to the group) says so ("unreadable"), with the folder's owner
    as its user."""
    unreadable = False
    try:
        info = read_json(os.path.join(lock, LOCK_OWNER_FILE))
    except (OSError, ValueError) as exc:
        info = None
        unreadable = getattr(exc, "errno", None) == errno.EACCES
    if not isinstance(info, dict):
        info = {}
    if unreadable:
        try:
            info.update(unreadable=True, user=account_name(os.stat(lock).st_uid))
        except OSError:
            pass
    try:
        folder = os.stat(lock)
        info["folder_id"] = [folder.st_dev, folder.st_ino]    # which lock this is, where no token can be read
        if not isinstance(info.get("started"), (int, float)):
            info["started"] = folder.st_mtime
    except OSError:
        pass
    return info


def _open_entry(name, dir_fd=None, folder=False, link_ok=False):
    """A read-only descriptor of name (in the folder open as dir_fd), never through a link unless link_ok (the
    folder an environment is in: a root may be named through one, as ~/projects/def-lab), without blocking on a
    FIFO, or None where it cannot be opened (a link, a socket, a file its owner may not read, no dir_fd here)."""
    if not hasattr(os, "O_NOFOLLOW") or (dir_fd is not None and os.open not in os.supports_dir_fd):
        return None
    flags = (os.O_RDONLY | (0 if link_ok else os.O_NOFOLLOW) | getattr(os, "O_NONBLOCK", 0)
             | getattr(os, "O_CLOEXEC", 0) | (getattr(os, "O_DIRECTORY", 0) if folder else 0))
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except OSError:
        return None


def _own_copy(dir_fd, name, fd, info):
    """Make name (in the folder open as dir_fd; fd open on it, info its fstat: a file with other hard links, as
    uv and conda link what they install from the user's own cache) a file of its own, so that changing its group
    and mode does not change the cache's, and the cache's private group does not stay on it. Returns the copy's
    descriptor and fstat; fd is closed. Everything goes through the folder's descriptor: a folder swapped for a
    link meanwhile is never followed."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        temp = ".envdesk-copy-" + os.urandom(6).hex()
        try:
            copy = os.open(temp, flags, 0o600, dir_fd=dir_fd)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(errno.EEXIST, "No usable temporary file name found")
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            while chunk:
                chunk = chunk[os.write(copy, chunk):]
        os.utime(copy, ns=(info.st_atime_ns, info.st_mtime_ns))
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        os.close(copy)
        try:
            os.unlink(temp, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    os.close(fd)
    return copy, os.fstat(copy)


def _share_at(dir_fd, name, seen, share):
    """share_entry for name in the folder open as dir_fd, seen its lstat as the walk saw it: changed through a
    descriptor opened without following links and checked to be that same file of this user, so that a
    colleague who may write the shared folder cannot swap in a link to one of the user's own files."""
    gid, writable = share
    if stat.S_ISLNK(seen.st_mode) or seen.st_uid != os.getuid():
        return
    mode = stat.S_IMODE(seen.st_mode)
    wanted = mode | 0o040 | (0o020 if writable else 0) | (0o010 if stat.S_ISDIR(seen.st_mode) or mode & 0o100
                                                           else 0)
    if seen.st_gid == gid and wanted == mode:
        return
    fd = _open_entry(name, dir_fd, folder=stat.S_ISDIR(seen.st_mode))
    if fd is None:
        return      # left for the doctor to find
    try:
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != (seen.st_dev, seen.st_ino) or info.st_uid != os.getuid():
            return
        if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
            fd, info = _own_copy(dir_fd, name, fd, info)
        if info.st_gid != gid:
            os.fchown(fd, -1, gid)   # clears a file's setuid/setgid: set the mode after
        os.fchmod(fd, wanted)
    except OSError:
        pass
    finally:
        os.close(fd)


def share_entry(full, share):
    """Give one file or folder the group and the group mode of a shared environment (see group_share): its
    group's, readable by it (and searchable or runnable where its owner may), writable by it where the shared
    folder is; only what this user owns, never through a link (see _share_at). A failure is left for the doctor
    to find."""
    folder = _open_entry(os.path.dirname(full), folder=True, link_ok=True)
    if folder is None:
        return
    try:
        _share_at(folder, os.path.basename(full), os.lstat(os.path.basename(full), dir_fd=folder), share)
    except OSError:
        pass
    finally:
        os.close(folder)


def share_like_folder(path, since=None):
    """After a change: uv's lock file in the environment (.lock, which uv makes writable by everyone so that other
    users may take it) no longer writable by others (the environment's group may, where it may update it), and
    an environment in a group's shared folder shared like it (see group_share), whatever the umask and
    installers left. Never through a link (see _share_at).

    `since`: when the change began (see _change_began); then only what it could have made or altered is looked
    at (share_changes). None: all of it (a new environment, or one its group could not use before the change)."""
    share = group_share(os.path.dirname(path))
    env = _open_entry(path, folder=True)
    uv_lock = _open_entry(".lock", env) if env is not None else None
    if uv_lock is not None:
        try:
            info = os.fstat(uv_lock)
            if stat.S_ISREG(info.st_mode) and info.st_uid == _uid() and info.st_mode & 0o022:
                os.fchmod(uv_lock, stat.S_IMODE(info.st_mode) & ~0o022)
        except OSError:
            pass
        finally:
            os.close(uv_lock)
    if env is not None:
        os.close(env)
    if share is None:
        return
    if since is not None:
        share_changes(path, share, since)
    else:
        share_tree(path, share)


def share_tree(path, share):
    """share_entry for an environment and everything in it (one walk, a change only where one is needed). The
    walk (os.fwalk) holds each folder open and never follows a link; each entry is changed through that folder's
    descriptor (see _share_at)."""
    share_entry(path, share)
    for _, folders, files, folder in os.fwalk(path):
        for name in folders + files:
            try:
                _share_at(folder, name, os.lstat(name, dir_fd=folder), share)
            except OSError:
                pass


def share_changes(path, share, since):
    """share_entry for what a change begun at `since` (nanoseconds, the file system's clock) could have made or
    altered in an environment, not all of it: on Lustre or GPFS each lookup is a round trip to a metadata server,
    and a walk of a 20,000-file environment took half a minute after every small change. That is: its folder and
    what it holds at its top, EnvDesk's own folder (its notes and snapshots), every folder changed since (an entry
    made, removed or replaced in it) with all it holds, and every file the packages installed since record, with
    the folders on the way to it (see _recorded_since). Through descriptors, never through a link (_share_at)."""
    recorded = _recorded_since(path, since)
    share_entry(path, share)
    root = _open_entry(path, folder=True)
    if root is None:
        return
    try:
        _share_folder(root, share, since, recorded, True, top=True)
    finally:
        os.close(root)


def _share_folder(folder, share, since, recorded, whole, top=False):
    """_share_at for the entries of the folder open as `folder`: all of them when `whole`, else those `recorded`
    names ({name: what is recorded below it}); then the same in each folder below that changed since `since`
    (all of it; None: whatever its time) or that holds something recorded. `top`: the environment's own folder,
    whose EnvDesk folder is taken whole (a snapshot is written before the change's mark)."""
    try:
        names = os.listdir(folder) if whole else list(recorded)
    except OSError:
        return
    for name in names:
        try:
            seen = os.lstat(name, dir_fd=folder)
        except OSError:
            continue
        _share_at(folder, name, seen, share)
        below = recorded.get(name) or {}
        ours = top and name == ENVDESK_DIR
        changed = ours or since is None or seen.st_ctime_ns >= since
        if not stat.S_ISDIR(seen.st_mode) or not (changed or below):
            continue
        inner = _open_entry(name, folder, folder=True)
        if inner is None:
            continue
        try:
            info = os.fstat(inner)
            if (info.st_dev, info.st_ino) == (seen.st_dev, seen.st_ino):
                _share_folder(inner, share, None if ours else since, below, changed)
        except OSError:
            pass
        finally:
            os.close(inner)


def _recorded_since(path, since):
    """What the packages installed in an environment since `since` record, as names from its folder down
    ({name: {...}}, {} for a file): the files of each *.dist-info or *.egg-info folder of its site-packages, and
    each conda-meta record, made since. Each site-packages folder is in it too (the way to them). Names that lead
    out of the environment are left out; these names are only looked up, never followed (see _share_folder)."""
    recorded = {}

    def add(full):
        relative = os.path.relpath(os.path.normpath(full), path)
        if relative in (os.curdir, os.pardir) or relative.startswith(os.pardir + os.sep) or os.path.isabs(relative):
            return
        node = recorded
        for part in relative.split(os.sep):
            node = node.setdefault(part, {})

    def made_since(full):
        info = _lstat(full)
        return info is not None and info.st_ctime_ns >= since

    for _, lib in lib_python_dirs(path):
        site = os.path.join(lib, "site-packages")
        try:
            entries = list_dir(site, ordered=False)
        except OSError:
            continue
        add(site)
        for entry in entries:
            if (entry.name.endswith((".dist-info", ".egg-info")) and entry.is_dir(follow_symlinks=False)
                    and made_since(entry.path)):
                base, rows = _record_rows(entry.path)
                for row in rows:
                    add(os.path.join(base, row))
    for name in _conda_listed(path, made_since):
        add(os.path.join(path, name))
    return recorded


# In the mark of a change under way: its finish shares the whole environment, not only what the change made (see
# share_like_folder), for the group could not use it before (the doctor's check, group_problem: an older EnvDesk's,
# or one closed by hand), or what a change cut off before made was never shared (its finish never ran).
SHARE_ALL = "share_all"


def _change_began(path):
    """When the change under way in an environment began, in nanoseconds by its file system's clock (the time of
    the mark its begin wrote: what the installers then make is stamped by that clock too), or None where all of it
    must be shared: a new environment (it has no such mark), or one whose begin said so (SHARE_ALL)."""
    mark = _changing_path(path)
    try:
        info = os.lstat(mark)
        record = read_json(mark, MAX_RECORD_BYTES) if stat.S_ISREG(info.st_mode) else None
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get(SHARE_ALL):
        return None
    return info.st_mtime_ns


# ---------------------------------------------------------------------------
# Whose lock is it: the process that lives as long as the client that took it
# ---------------------------------------------------------------------------
#
# A lock records the host, the user, the boot and one process (pid and start time) whose life is the
# client's: for a cluster the sshd process serving the client's SSH connection (it ends when the
# connection does, however the client died), on "This computer" the EnvDesk process itself, for a
# delete the agent doing it. On the same host and for the same user, a lock whose process is gone
# (or is another process now) and that no process of that user started since still works in (an
# installer outlives the channel that started it) is stale at once. From another host (login nodes
# behind one name share the filesystem) that process cannot be seen: there a heartbeat counts. While
# an operation runs, a small detached process on the owner's host (a thread of the owner, where the
# owner runs the agent in its own process) touches the owner file every
# LOCK_HEARTBEAT_SECONDS as long as the owner or such a worker lives; a lock that says it has one and
# stayed untouched for LOCK_SILENT_SECONDS is stale from anywhere. Without any of that to go on
# (no /proc, Windows, an older lock) only STALE_LOCK_SECONDS counts.

LOCK_HEARTBEAT_SECONDS = 15
# Whether this agent runs inside its client's process (This computer's short actions: see
# envdesk.backend.agent_here) rather than as a program of its own, which is always __main__.
IN_CLIENT = __name__ != "__main__"
LOCK_SILENT_SECONDS = 120
SSHD_NAMES = ("sshd", "sshd-session")


def _owner_process(client_pid):
    """(pid, start, what) of the process whose life is the client's, or None when there is no telling.

    The first of the agent's ancestors that is an sshd (the one serving this connection) or the client
    itself (client_pid, sent by the client: "This computer" runs the agent in its own process, or as its child).
    """
    client_pid = client_pid if isinstance(client_pid, int) and not isinstance(client_pid, bool) else None
    if IN_CLIENT and client_pid == os.getpid():
        if not _has_proc() and os.name != "posix":
            return None     # Windows: whether it still runs cannot be told (the 24 h rule decides)
        return client_pid, (_proc_stat(client_pid) or (0, None))[1] if _has_proc() else None, "client"
    if not _has_proc():
        if client_pid and os.name == "posix" and os.getppid() == client_pid:
            return client_pid, None, "client"
        return None
    pid = os.getppid()
    for _ in range(64):
        if pid <= 1:
            return None
        stat_ = _proc_stat(pid)
        if stat_ is None:
            return None
        comm = (_read_small("/proc/%d/comm" % pid) or b"").decode("ascii", "replace").strip()
        if pid == client_pid:
            return pid, stat_[1], "client"
        if comm in SSHD_NAMES:
            return pid, stat_[1], "ssh connection"
        pid = stat_[0]
    return None


def _anchor_process(anchor_pid):
    """(pid, start, what) of the process a kept connection runs on the cluster for as long as its client is
    connected (see envdesk.backend.keeper), or None: through a kept connection every command's sshd is the
    keeper's, which outlives a client that was killed. Only a process of this user counts."""
    if not isinstance(anchor_pid, int) or isinstance(anchor_pid, bool) or anchor_pid <= 1 or not _has_proc():
        return None
    try:
        if os.stat("/proc/%d" % anchor_pid).st_uid != _uid():
            return None
    except OSError:
        return None
    stat_ = _proc_stat(anchor_pid)
    return (anchor_pid, stat_[1], "kept connection's client") if stat_ is not None else None


def _mentions(text, path):
    """Whether text names path or something inside it (an argument like /p/env/bin/python, --prefix=/p/env)."""
    start = text.find(path)
    while start >= 0:
        end = start + len(path)
        if (start == 0 or text[start - 1] in "=:'\" ") and (end == len(text) or text[end] in "/:'\" "):
            return True
        start = text.find(path, start + 1)
    return False


def _workers(path, since):
    """Processes of this user, started after `since` (epoch), that still work in path: [(pid, command)]."""
    if not _has_proc():
        return []
    try:
        ticks = float(os.sysconf("SC_CLK_TCK"))
        booted = None
        for line in (_read_small("/proc/stat") or b"").splitlines():
            if line.startswith(b"btime "):
                booted = float(line.split()[1])
    except (ValueError, OSError, IndexError):
        return []
    if booted is None:
        return []
    paths = set([path, os.path.realpath(path)])
    mine, uid, found = os.getpid(), _uid(), []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == mine:
            continue
        pid = int(name)
        try:
            if os.stat("/proc/%d" % pid).st_uid != uid:
                continue
        except OSError:
            continue
        stat_ = _proc_stat(pid)
        if stat_ is None or (isinstance(since, (int, float)) and booted + stat_[1] / ticks < since - 2):
            continue
        args = [os.fsdecode(arg) for arg in (_read_small("/proc/%d/cmdline" % pid) or b"").split(b"\0") if arg]
        try:
            args.append(os.readlink("/proc/%d/cwd" % pid))
        except OSError:
            pass
        if any(_mentions(arg, one) for arg in args for one in paths):
            found.append((pid, " ".join(args[:3])[:120]))
    return found


def _stale_reason(path, info):
    """Why the lock described by info is stale (a sentence), or None while its owner may still work."""
    lock = path + LOCK_SUFFIX
    now = time.time()
    if info.get("unreadable"):
        # Nothing but the folder to go on: a holder's heartbeat touches it, but a delete or a holder without an
        # owner process to watch has none, so only a day's silence tells (as for a readable lock without one).
        try:
            silent = now - os.stat(lock).st_mtime
        except OSError:
            silent = 0
        if silent > STALE_LOCK_SECONDS:
            return "its holder (%s) has shown no sign of life for more than %d hours" % (
                info.get("user", "another user"), STALE_LOCK_SECONDS // 3600)
        return None
    if _owned_here(info):
        if _process_alive(info["pid"], info.get("pid_start")):
            return None
        working = _workers(path, info.get("started"))
        if working:
            raise ActionError("The EnvDesk client that locked this environment (%s, started %s) has stopped, "
                              "but a program it started still works in it (process %d: %s). Wait for it to "
                              "end, or stop it, then try again."
                              % (info.get("operation", "unknown"), info.get("since", "at an unknown time"),
                                 working[0][0], working[0][1]), CODE_BUSY)
        return "the EnvDesk client that took it has stopped"
    if (isinstance(info.get("pid"), int) and info.get("host") == host_name()
            and info.get("uid") == _uid() and info.get("boot") and _boot_id() and info.get("boot") != _boot_id()):
        return "the computer that held it has restarted since"
    if info.get("beat"):
        try:
            silent = now - os.stat(os.path.join(lock, LOCK_OWNER_FILE)).st_mtime
        except OSError:
            silent = 0
        if silent > LOCK_SILENT_SECONDS:
            return "its holder on %s stopped showing signs of life %d seconds ago" % (info.get("host"), silent)
    started = info.get("started")
    if isinstance(started, (int, float)) and now - started > STALE_LOCK_SECONDS:
        return "it is more than %d hours old" % (STALE_LOCK_SECONDS // 3600)
    if "host" not in info:  # taken, but who took it was never written (the taker stopped between the two)
        try:
            silent = now - os.stat(lock).st_mtime
        except OSError:
            silent = 0
        if silent > LOCK_SILENT_SECONDS:
            return "whoever took it stopped before it wrote who it was, %d seconds ago" % silent
    return None


def _heartbeat(path, token, pid, start):
    """Keep the lock's owner file fresh while its owner (or a worker) lives: from a small detached process, or,
    where the agent runs inside its client, from a thread of the client (never a fork of a window's process)."""
    since = time.time()
    if IN_CLIENT:
        import threading  # only here: the thread outlives the action, as the detached process does
        threading.Thread(target=_beat_quietly, args=(path, token, pid, start, since),
                         name="envdesk-lock-heartbeat", daemon=True).start()
        return True
    if not hasattr(os, "fork") or not hasattr(os, "setsid"):
        return False
    try:
        child = os.fork()
    except OSError:
        return False
    if child:
        try:
            os.waitpid(child, 0)
        except OSError:
            pass
        return True
    try:                      # the first child: a new session, then gone, so the beater belongs to no one
        os.setsid()
        if os.fork():
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, 1024)
        _beat_quietly(path, token, pid, start, since)
    except BaseException:
        pass
    os._exit(0)


def _beat_quietly(path, token, pid, start, since):
    """Touch the owner file every LOCK_HEARTBEAT_SECONDS until the lock is another's or gone, or neither its
    owner nor a worker started since still runs; a failure only ends the beating."""
    lock = path + LOCK_SUFFIX
    owner_file = os.path.join(lock, LOCK_OWNER_FILE)
    try:
        while True:
            time.sleep(LOCK_HEARTBEAT_SECONDS)
            if _lock_owner(lock).get("token") != token:
                break
            if not _process_alive(pid, start) and not _workers(path, since):
                break
            os.utime(owner_file, None)
            os.utime(lock, None)  # what a user who may not read the owner file still sees (see _stale_reason)
    except Exception:
        pass


def take_lock(path, operation, client_pid=None, heartbeat=False, own=False, token=None, anchor_pid=None):
    """Create <env>.envdesk-lock atomically; returns (token, why a stale lock was taken over or None).

    A second writer is told 'busy' while the lock's holder may still be working (see above). `own`
    makes the agent itself the lock's owner process (an action that holds the lock only while it runs).
    `token`: the one the client chose (see client_token), else a new one. `anchor_pid`: the process whose life
    is the client's connection through a kept connection (see _anchor_process).
    """
    lock = path + LOCK_SUFFIX
    token = token or os.urandom(12).hex()
    owner = {"host": host_name(), "operation": operation, "since": _now_stamp(),
             "started": time.time(), "token": token, "uid": _uid(), "boot": _boot_id()}
    if _uid() is not None:
        owner["user"] = account_name(_uid())
    share = group_share(os.path.dirname(path))    # the lock is as readable as the environment (see share_entry)
    process = (os.getpid(), (_proc_stat(os.getpid()) or (0, None))[1], "agent") if own else \
        (_anchor_process(anchor_pid) or _owner_process(client_pid))
    if process is not None:
        owner.update(pid=process[0], pid_start=process[1], watch=process[2])
    try:
        os.mkdir(lock)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise           # a full disk, a read-only root ...: run_action says so for the action at hand
        info = _lock_owner(lock)
        reason = _stale_reason(path, info)
        if reason is None and info.get("unreadable"):
            raise ActionError("Another EnvDesk operation, by %s, is working on this environment (its lock %s is "
                              "closed to you, so EnvDesk cannot tell more). Wait for it to finish, then try "
                              "again." % (info.get("user", "another user"), lock), CODE_BUSY)
        if reason is None and "host" not in info:
            raise ActionError("An EnvDesk operation has just taken this environment (its lock %s does not say "
                              "which yet). Wait for it to finish, then try again: a lock that never says is "
                              "taken over %d seconds after it was made." % (lock, LOCK_SILENT_SECONDS), CODE_BUSY)
        if reason is None and info.get("operation") == "create":
            raise ActionError(creating_text(path, info), CODE_BUSY)
        if reason is None:
            raise ActionError("Another EnvDesk operation (%s, started %s%s on %s) is working on this "
                              "environment. Wait for it to finish, then try again."
                              % (info.get("operation", "unknown"), info.get("since", "at an unknown time"),
                                 " by %s" % info["user"] if info.get("user") else "",
                                 info.get("host", "an unknown machine")), CODE_BUSY)
        _break_lock(lock, info)
        token, _ = take_lock(path, operation, client_pid, heartbeat, own, token, anchor_pid)
        return token, ("EnvDesk took over the lock of an earlier %s (started %s on %s): %s."
                       % (info.get("operation", "unknown"), info.get("since", "at an unknown time"),
                          info.get("host", "an unknown machine"), reason))
    try:
        if share is not None:
            share_entry(lock, share)
        _write_owner(lock, owner, share)
        if heartbeat and process is not None and _heartbeat(path, token, process[0], process[1]):
            owner["beat"] = LOCK_HEARTBEAT_SECONDS
            _write_owner(lock, owner, share)
    except BaseException:
        _remove_lock(lock)
        raise
    return token, None


def _write_owner(lock, owner, share):
    """Write the lock's owner file, readable by the environment's group where it is shared."""
    write_json(os.path.join(lock, LOCK_OWNER_FILE), owner)
    if share is not None:
        share_entry(os.path.join(lock, LOCK_OWNER_FILE), share)


def _break_lock(lock, info):
    """Remove the stale lock described by info, and only that one (not one another client just took)."""
    if info.get("unreadable") and not os.access(lock, os.W_OK | os.X_OK):
        raise ActionError("The lock %s of an earlier EnvDesk operation by %s looks abandoned, but it is closed to "
                          "you, so EnvDesk cannot remove it. Ask %s to remove it (rm -r %s), or to let EnvDesk "
                          "take it over, then try again."
                          % (lock, info.get("user", "another user"), info.get("user", "its owner"),
                             shell_word(lock)), CODE_BUSY)
    aside = "%s.stale-%s" % (lock, os.urandom(6).hex())
    try:
        os.rename(lock, aside)     # atomic: of two clients taking it over, one moves it, the other fails
    except OSError:
        return
    moved = _lock_owner(aside)
    if moved.get("token") != info.get("token") or moved.get("folder_id") != info.get("folder_id"):
        try:                       # someone else's fresh lock: put it back
            os.rename(aside, lock)
        except OSError:
            pass
        raise ActionError("Another EnvDesk operation just took this environment over. Wait for it to "
                          "finish, then try again.", CODE_BUSY)
    _remove_lock(aside)


def _remove_lock(lock):
    for name in (LOCK_OWNER_FILE,):
        try:
            os.unlink(os.path.join(lock, name))
        except OSError:
            pass
    try:
        os.rmdir(lock)
    except OSError:
        pass


def release_lock(path, token):
    """Release the lock only for the one holding it (its token), never someone else's."""
    lock = path + LOCK_SUFFIX
    if not os.path.isdir(lock):
        return
    if _lock_owner(lock).get("token") != token:
        raise ActionError("This environment is locked by another EnvDesk operation; EnvDesk left it "
                          "alone.", CODE_BUSY)
    _remove_lock(lock)


def update_meta(path, changes):
    """Merge `changes` into <env>/.envdesk/meta.json."""
    meta_path = os.path.join(path, ENVDESK_DIR, META_FILE)
    meta = {}
    if os.path.isfile(meta_path):
        try:
            loaded = read_json(meta_path)
            meta = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            meta = {}
    meta.update(changes or {})
    write_json(meta_path, meta)
    return meta


def snapshot_dir(path):
    return os.path.join(path, ENVDESK_DIR, SNAPSHOTS_DIR)


def write_snapshot(env, reason):
    """Save the exact package set before a change; returns the snapshot's id."""
    folder = snapshot_dir(env["path"])
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    number = 1
    while os.path.exists(os.path.join(folder, "%s-%d.json" % (stamp, number))):
        number += 1
    snap_id = "%s-%d" % (stamp, number)
    packages = [dict((k, p.get(k)) for k in ("name", "version", "installer", "url", "editable",
                                             "build", "channel", "requested") if k in p)
                for p in env["packages"]]
    # the package folders without metadata it holds now: a rollback to this snapshot keeps them, and removes
    # any other (a half-installed package the change left)
    record = {"id": snap_id, "time": _now_stamp(), "reason": reason, "python": env["python"],
              "kind": env["kind"], "packages": packages, "half_installed": list(env.get("incomplete_packages") or [])}
    requested = (env.get("envdesk") or {}).get("requested")
    if isinstance(requested, list):  # what the user asked for then, put back with the packages by a revert
        record["requested"] = requested
    write_json(os.path.join(folder, snap_id + ".json"), record)
    return snap_id


def _changing_path(path):
    return os.path.join(path, ENVDESK_DIR, CHANGING_MARK)


def _change_over(path):
    """Clear the marks of a change under way (the change is done, or undone)."""
    _remove_if_there(_changing_path(path))
    _remove_if_there(os.path.join(path, ENVDESK_DIR, ROLLBACK_FAILED_MARK))


def _mark_rollback_failed(path):
    """Leave the mark that lists the environment as broken until a change puts its packages back: an empty
    file, which a full disk still takes (it needs no data block), beside the change's own mark."""
    if not os.path.isfile(_changing_path(path)):
        return
    fd = os.open(os.path.join(path, ENVDESK_DIR, ROLLBACK_FAILED_MARK),
                 os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o644)
    os.close(fd)


def _remove_if_there(file_path):
    try:
        os.unlink(file_path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise


def drop_snapshot(path, snap_id):
    """Forget a snapshot taken before a change that changed nothing (or was rolled back)."""
    if not snap_id:
        return
    if not re.compile(_SNAPSHOT_ID_RE).match(str(snap_id)):
        raise ActionError("%r is not a snapshot id." % snap_id, CODE_INVALID)
    try:
        os.unlink(os.path.join(snapshot_dir(path), str(snap_id) + ".json"))
    except OSError:
        pass


def list_snapshots(path):
    """Every snapshot of an environment, oldest first, without their package lists."""
    folder = snapshot_dir(path)
    result = []
    for entry in list_dir(folder) if os.path.isdir(folder) else []:
        if not entry.name.endswith(".json"):
            continue
        try:
            data = read_json(entry.path)
        except (OSError, ValueError):
            continue
        result.append({"id": data.get("id", entry.name[:-5]), "time": data.get("time"),
                       "reason": data.get("reason"), "package_count": len(data.get("packages") or [])})
    return sorted(result, key=lambda item: str(item["id"]))


def read_snapshot(path, snap_id):
    if not re.compile(_SNAPSHOT_ID_RE).match(str(snap_id)):
        raise ActionError("%r is not a snapshot id." % snap_id, CODE_INVALID)
    file_path = os.path.join(snapshot_dir(path), str(snap_id) + ".json")
    if not os.path.isfile(file_path):
        raise ActionError("This environment has no snapshot %s." % snap_id, CODE_MISSING)
    return read_json(file_path)


def _unfinished(path):
    """Whether path is a real folder EnvDesk started to build and never finished (the CREATING mark)."""
    return (not os.path.islink(path) and os.path.isdir(path)
            and os.path.isfile(os.path.join(path, ENVDESK_DIR, CREATING_MARK)))


def _clear_unfinished(path):
    """Remove a half-made environment (its lock held) so it can be built again; nothing foreign goes."""
    if not _unfinished(path):
        raise ActionError("%s already exists. Pick another name or delete it first." % path, CODE_EXISTS)
    foreign, own = check_contents(path)
    if foreign:
        raise ActionError("%s is an unfinished environment holding other files too (%s); EnvDesk left it "
                          "alone. Move them out or delete the folder yourself."
                          % (path, ", ".join(foreign[:FOREIGN_SHOWN])), CODE_EXISTS)
    delete_environment_folder(path, own)


def _write_mark(path):
    """Mark a new environment as being built (the CREATING file, holding when)."""
    with open(os.path.join(path, ENVDESK_DIR, CREATING_MARK), "w") as handle:
        handle.write(_now_stamp() + "\n")


def action_begin(cfg):
    """Lock an environment before a change; for a new one, also mark it as being built.

    Creating over an unfinished environment (one a stopped client left) builds it again. When anything
    fails here (a full disk ...), what this made is removed and the lock released.
    """
    creating = bool(cfg.get("create"))
    path = check_target(cfg["path"], cfg["roots"], creating=creating)
    if creating:
        if os.path.lexists(path) and not _unfinished(path):
            raise ActionError("%s already exists. Pick another name or delete it first." % path, CODE_EXISTS)
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            os.makedirs(parent)
    elif not is_env(path) or os.path.islink(path):
        raise ActionError("%s is not a Python environment." % path, CODE_MISSING)
    # what is left where it goes, for the client's room check: read before this begin takes any of it
    space = file_system_space([os.path.dirname(path)]) if creating and cfg.get("space") else None
    token, took_over = take_lock(path, cfg.get("operation", "change"), client_pid=cfg.get("client_pid"),
                                 heartbeat=bool(cfg.get("heartbeat")), token=client_token(cfg),
                                 anchor_pid=cfg.get("anchor_pid"))
    made = False
    try:
        answer = {"path": path, "token": token}
        if space is not None:
            answer["space"] = space
        if took_over:
            answer["took_over"] = took_over
        if creating:
            if os.path.lexists(path):
                _clear_unfinished(path)
                answer["replaced_unfinished"] = True
            os.mkdir(path)
            made = True
            os.mkdir(os.path.join(path, ENVDESK_DIR))
            _write_mark(path)
        else:
            env = read_env(path, os.path.basename(path), os.path.dirname(path))
            if env["state"] == STATE_INCOMPLETE:
                raise ActionError("This environment was never finished; delete it and create it "
                                  "again.", CODE_INCOMPLETE)
            answer["env"] = env
            interrupted = read_changing(path)   # a change whose client stopped before it ended
            if interrupted is not None:
                answer["interrupted"] = interrupted
            if cfg.get("snapshot"):
                snap = interrupted["snapshot"] if interrupted else write_snapshot(env, cfg.get("reason",
                                                                                            "before a change"))
                answer["snapshot"] = snap
                mark = {"snapshot": snap, "operation": cfg.get("operation", "change"), "since": _now_stamp()}
                if interrupted or (env.get("shared") or {}).get("problem"):
                    mark[SHARE_ALL] = True    # see SHARE_ALL
                write_json(_changing_path(path), mark)
        return answer
    except BaseException:
        try:
            if made:
                remove_tree(path)      # only this begin's empty folder and its mark
        except (OSError, ActionError):
            pass
        finally:
            release_lock(path, token)
        raise


def module_paths(report):
    """[{"module", "path"}]: the folders the environment's modules put on PYTHONPATH, in PYTHONPATH's order, each
    with the module that put it there, from a report (PYTHONPATH_REPORT lines, see the client's
    module_paths.report_script): PYTHONPATH with every module loaded, then what is left of it as each is unloaded,
    the last loaded first (a module loaded on top of another, scipy-stack on python, takes its own folders with
    it). A folder no unload takes away was there before (set at login) and is not a module's. None when the
    report is not one."""
    lines = [line[len(PYTHONPATH_REPORT):].split("\t", 1) for line in report.splitlines()
             if line.startswith(PYTHONPATH_REPORT)]
    lines = [parts for parts in lines if len(parts) == 2]
    if not lines or lines[0][0]:
        return None
    left = [(module, set(value.split(os.pathsep))) for module, value in lines[1:]]
    found, seen = [], set()
    for folder in lines[0][1].split(os.pathsep):
        if not os.path.isabs(folder) or folder in seen:
            continue
        seen.add(folder)
        module = next((name for name, after in left if folder not in after), None)
        if module:
            found.append({"module": module, "path": os.path.normpath(folder)})
    return found


def _finish_meta(cfg):
    """The notes a finish records: its settings' meta, with what the modules put on PYTHONPATH where the command
    that loaded them reported it (in the settings, or, in a build's one command, the variable they name)."""
    meta = dict(cfg.get("meta") or {})
    report = cfg.get("pythonpath_report")
    if cfg.get("pythonpath_report_variable") == PYTHONPATH_REPORT_VARIABLE:
        report = os.environ.get(PYTHONPATH_REPORT_VARIABLE)
    found = module_paths(report) if isinstance(report, str) else None
    if found is not None:
        meta[META_PATHS] = found
    return meta


def action_finish(cfg):
    """Record EnvDesk's notes, clear the 'being built' mark and release the lock (its holder only).

    When recording fails (a full disk, a read-only filesystem ...) the holder keeps the lock: its abort
    then removes the half-made environment (the mark is still there) or leaves the changed one's notes
    as they were, and releases it.
    """
    path = check_target(cfg["path"], cfg["roots"])
    token = cfg.get("token")
    _check_holder(path, token)
    meta = _finish_meta(cfg)
    if meta:
        update_meta(path, meta)
    since = _change_began(path)
    _change_over(path)
    marker = os.path.join(path, ENVDESK_DIR, CREATING_MARK)
    if os.path.exists(marker):
        os.unlink(marker)
    share_like_folder(path, since)
    try:
        env = read_env(path, os.path.basename(path), os.path.dirname(path))
        answer = {"path": path, "env": env}
        unchanged = cfg.get("snapshot_if_changed")
        if unchanged and _package_set(read_snapshot(path, unchanged)["packages"]) == _package_set(env["packages"]):
            drop_snapshot(path, unchanged)
            answer["dropped_snapshot"] = unchanged
        return answer
    finally:
        release_lock(path, token)



def _check_holder(path, token):
    """Refuse to finish or undo a change this caller does not hold the lock for."""
    lock = path + LOCK_SUFFIX
    if not token or not os.path.isdir(lock) or _lock_owner(lock).get("token") != token:
        raise ActionError("EnvDesk does not hold the lock on %s (another operation may); nothing "
                          "was changed." % path, CODE_BUSY)


def remove_tree(path):
    """Delete a folder without ever following a link out of it."""
    if os.path.islink(path):
        raise ActionError("%s is a link; EnvDesk only deletes real folders." % path, CODE_INVALID)
    import shutil
    shutil.rmtree(path)


def action_abort(cfg):
    """Undo a failed or cancelled change: remove a half-built environment, release the lock."""
    path = check_target(cfg["path"], cfg["roots"])
    _check_holder(path, cfg.get("token"))
    removed, since = False, _change_began(path)
    try:
        if cfg.get("created") and os.path.isfile(os.path.join(path, ENVDESK_DIR, CREATING_MARK)):
            remove_tree(path)
            removed = True
        elif cfg.get("drop_snapshot"):     # the change was undone: nothing is under way any more
            drop_snapshot(path, cfg.get("drop_snapshot"))
            _change_over(path)
        elif cfg.get("rollback_failed"):
            _mark_rollback_failed(path)
        if not removed and os.path.isdir(path):
            share_like_folder(path, since)     # what a rollback put back, or the snapshot begin wrote
    finally:
        release_lock(path, cfg.get("token"))
    return {"path": path, "removed": removed}


def action_reset(cfg):
    """Empty a half-built environment to start it again, keeping the lock (for a second attempt)."""
    path = check_target(cfg["path"], cfg["roots"])
    _check_holder(path, cfg.get("token"))
    marker = os.path.join(path, ENVDESK_DIR, CREATING_MARK)
    if not os.path.isfile(marker):
        raise ActionError("%s is not an unfinished environment; EnvDesk will not empty it." % path, CODE_INVALID)
    remove_tree(path)
    os.makedirs(os.path.join(path, ENVDESK_DIR))
    _write_mark(path)
    return {"path": path}


def _record_rows(folder):
    """(base, relative paths) of the files an installer recorded for one dist-info (its RECORD, relative to
    site-packages) or egg-info folder (installed-files.txt, relative to the folder itself); none if unreadable."""
    import csv  # only a clean-up or a delete's check reads installers' records
    if folder.endswith(".dist-info"):
        record, base = os.path.join(folder, "RECORD"), os.path.dirname(folder)
    else:
        record, base = os.path.join(folder, "installed-files.txt"), folder
    data = _small_file(record, RECORDED_MAX_BYTES)
    if data is None:
        return base, []
    try:
        text = as_file_text(data.decode("utf-8", "replace"))  # names files: as this Python names them
        return base, [row[0] for row in csv.reader(text.splitlines()) if row and row[0]]
    except csv.Error:
        return base, []


def _within(real_env, path):
    """Where `path` is, its folders' links resolved (never the last part's), when that is inside the real folder
    `real_env` and outside EnvDesk's own folder in it; else None."""
    name = os.path.basename(path)
    if name in ("", ".", ".."):
        return None
    parent = os.path.realpath(os.path.dirname(path))
    if parent != real_env and not parent.startswith(real_env + os.sep):
        return None
    if parent == os.path.join(real_env, ENVDESK_DIR) or parent.startswith(os.path.join(real_env, ENVDESK_DIR) + os.sep):
        return None
    return os.path.join(parent, name)


def _claimed(site, skip, env_path):
    """Every file the other packages' records in a site-packages folder name, and every file a conda package
    record of the environment lists (a wheel's data files may lie over conda's: R18), their folders' links
    resolved."""
    claimed, real_folders = set(), {}

    def claim(path):
        folder = os.path.dirname(path)
        if folder not in real_folders:
            real_folders[folder] = os.path.realpath(folder)
        claimed.add(os.path.join(real_folders[folder], os.path.basename(path)))
    for entry in list_dir(site):
        if entry.path == skip or not entry.name.endswith((".dist-info", ".egg-info")):
            continue
        base, rows = _record_rows(entry.path)
        for row in rows:
            claim(os.path.normpath(os.path.join(base, row)))
    for name in _conda_listed(env_path):
        claim(os.path.normpath(os.path.join(env_path, name)))
    return claimed


def _conda_listed(env_path, chosen=None):
    """The files the conda-meta records of an environment list, relative to it (none where it has none); only
    those of the records `chosen` (their paths) takes, where it is given."""
    meta = os.path.join(env_path, "conda-meta")
    for entry in list_dir(meta) if _is_real_dir(meta) else []:
        if not entry.name.endswith(".json") or chosen is not None and not chosen(entry.path):
            continue
        data = _small_file(entry.path, RECORDED_MAX_BYTES)
        try:
            files = as_file_text(json.loads(data.decode("utf-8"))).get("files") if data else None
        except (ValueError, AttributeError):
            continue
        for name in files if isinstance(files, list) else []:
            if isinstance(name, str) and name and not os.path.isabs(name):
                yield name


def remove_half_installed(env_path, folder):
    """Remove a package folder an install left without metadata (see IncompleteMetadata) and the files its
    record names, only inside the environment, never through a link, never a file another package's record
    names, its python program or its settings; then the folders that left empty. The number of files removed."""
    real_env = os.path.realpath(env_path)
    real = os.path.realpath(folder)
    if os.path.islink(folder) or not _is_real_dir(folder) or not real.startswith(real_env + os.sep):
        raise ActionError("%s is not a package folder inside %s; EnvDesk left it alone." % (folder, env_path),
                          CODE_INVALID)
    site = os.path.dirname(real)
    base, rows = _record_rows(real)
    claimed = _claimed(site, real, real_env)
    keep = {os.path.join(real_env, "pyvenv.cfg")}
    program = re.compile(_VENV_PROGRAM_RE, re.IGNORECASE)
    removed, emptied = 0, set()
    for row in rows:
        path = _within(real_env, os.path.normpath(os.path.join(base, row)))
        if path is None or path in claimed or path in keep or path.startswith(real + os.sep):
            continue
        if os.path.basename(os.path.dirname(path)) in _VENV_BIN and program.match(os.path.basename(path)):
            continue
        try:
            if stat.S_ISDIR(os.lstat(path).st_mode):
                continue
            os.unlink(path)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                continue
            raise
        removed += 1
        emptied.add(os.path.dirname(path))
    remove_tree(real)
    for parent in sorted(emptied, key=len, reverse=True):
        while parent.startswith(site + os.sep) and parent != site:
            try:
                os.rmdir(parent)    # only an empty one
            except OSError:
                break
            parent = os.path.dirname(parent)
    return removed


def action_clean(cfg):
    """Remove the package folders without metadata that a failed or cut-off change left (the lock holder's
    rollback, before it puts the packages back): every one but those in "keep", which were there before."""
    path = check_target(cfg["path"], cfg["roots"])
    _check_holder(path, cfg.get("token"))
    keep = cfg.get("keep") or []
    env = read_env(path, os.path.basename(path), os.path.dirname(path))
    removed = []
    for folder in env.get("incomplete_packages") or []:
        if folder not in keep:
            removed.append({"path": folder, "files": remove_half_installed(path, folder)})
    return {"path": path, "removed": removed}


def client_token(cfg):
    """The lock token the client chose, or None (begin then makes one): a client that chose it can undo
    a build whose begin it never heard back from (the connection dropped)."""
    token = cfg.get("token")
    if token is None:
        return None
    if not isinstance(token, str) or not re.compile(r"^[0-9a-f]{24}$").match(token):
        raise ActionError("%r is not a lock token." % (token,), CODE_INVALID)
    return token


# ---------------------------------------------------------------------------
# Deleting: only what an environment consists of, never through a link
# ---------------------------------------------------------------------------

# What venv, virtualenv and uv put at the top of an environment (Windows spellings too).
VENV_TOP = frozenset(["pyvenv.cfg", "bin", "Scripts", "lib", "Lib", "lib64", "include", "Include",
                      "share", "etc", "man", ".gitignore", "CACHEDIR.TAG", ".lock"])
# Top-level folders whose contents must be checked one level down (a project's own bin/ or lib/ merges there).
_VENV_BIN = ("bin", "Scripts")
_VENV_LIB = ("lib", "Lib", "lib64")
_VENV_INCLUDE = ("include", "Include")
_VENV_DATA = ("share", "etc", "man")     # only what an installed package recorded (jupyter, man pages ...)
# Regexes (compiled where used, as in read.py), of what venv tools write there: _VENV_PROGRAM_RE is case-insensitive.
_VENV_PROGRAM_RE = (r"^(?:python|pythonw|pypy|pypyw)[0-9.]*t?(?:\.exe|\.dll)?$|^libpypy[0-9.]*-c\.|"
                    r"^(?:activate|deactivate)(?:\.[a-z0-9]+|_this\.py)?$|^pydoc(?:\.bat)?$|"
                    r"^venvw?launcher\.exe$")
_LIB_ENTRY_RE = r"^(?:python|pypy)[0-9.]*t?$|^site-packages$"
_INCLUDE_ENTRY_RE = r"^(?:python|pypy)[0-9.]*t?$|^site$"
# What conda (and mamba/micromamba) itself makes at the top of an environment prefix, or nearly every
# environment has (python's own folders, the cross-compilers' sysroots); anything else a conda package
# installed there (qt's plugins/, fonts/ ...) is accepted only when a conda-meta record lists it.
CONDA_TOP = frozenset([
    "conda-meta", "bin", "lib", "include", "share", "etc", "ssl", "man", "var", "compiler_compat",
    ".condarc", ".nonadmin", "Library", "Lib", "DLLs", "Scripts", "libs"])
_CONDA_TOP_RE = (r"^[a-z0-9_]+-conda(?:_cos[0-9]+)?-linux-gnu$|^[a-z0-9_]+-apple-darwin[0-9.]*$|"
                 r"\.conda_trash$")
FOREIGN_SHOWN = 10
RECORDED_MAX_BYTES = 64 * 1024 * 1024     # a RECORD or conda-meta record (conda's file lists can be ~30 MB)


def _entry_label(folder, name):
    """name, with a trailing / for a real folder (never following a link)."""
    try:
        is_dir = stat.S_ISDIR(os.lstat(os.path.join(folder, name)).st_mode)
    except OSError:
        is_dir = False
    return name + "/" if is_dir else name


def _is_real_dir(path):
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _small_file(path, limit):
    """The bytes of a regular file (not a link, pipe or device) of at most limit bytes, else None."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, 1024 * 1024)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks) if size <= limit else None
    except OSError:
        return None
    finally:
        os.close(fd)


def _only_star_lines(path):
    """True for the .gitignore venv, virtualenv and uv write: nothing but comments and '*'."""
    data = _small_file(path, 4096)
    if data is None:
        return False
    lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines()]
    return [line for line in lines if line and not line.startswith("#")] == ["*"]


def _is_cachedir_tag(path):
    data = _small_file(path, 4096)
    return data is not None and data.startswith(b"Signature: 8a477f597d28d172789f06886806bc55")


class _Recorded(object):
    """The files installers recorded in an environment (pip/uv RECORD, installed-files.txt, conda-meta),
    as paths relative to the environment, read only when a check needs them."""

    def __init__(self, path):
        self.path = path
        self._pip = None
        self._conda = None

    def _add(self, found, full):
        rel = os.path.relpath(os.path.normpath(full), self.path)
        parts = rel.replace("\\", "/").split("/")
        if parts and parts[0] not in ("", ".", ".."):
            found.add(tuple(parts[:2]))
            found.add((parts[0],))

    def pip(self):
        """{(top,), (top, second)} of every file a Python package installer recorded."""
        if self._pip is None:
            found = set()
            folders = []
            for lib in _VENV_LIB:
                base = os.path.join(self.path, lib)
                if not _is_real_dir(base):
                    continue
                if lib == "Lib":
                    folders.append(os.path.join(base, "site-packages"))
                for entry in list_dir(base):
                    if re.compile(_LIB_PY_RE).match(entry.name):
                        folders.append(os.path.join(entry.path, "site-packages"))
            for folder in folders:
                if _is_real_dir(folder):
                    self._read_site(folder, found)
            self._pip = found
        return self._pip

    def _read_site(self, folder, found):
        import csv  # only a delete's check reads installers' records
        for entry in list_dir(folder):
            if entry.name.endswith(".dist-info"):
                record, base = os.path.join(entry.path, "RECORD"), folder
            elif entry.name.endswith(".egg-info"):
                record, base = os.path.join(entry.path, "installed-files.txt"), entry.path
            else:
                continue
            data = _small_file(record, RECORDED_MAX_BYTES)
            if data is None:
                continue        # unreadable: what it installed counts as foreign
            try:
                for row in csv.reader(as_file_text(data.decode("utf-8", "replace")).splitlines()):
                    if row and row[0]:
                        self._add(found, os.path.join(base, row[0]))
            except csv.Error:
                continue

    def conda(self):
        """{(top,), (top, second)} of every file a conda package record lists."""
        if self._conda is None:
            found = set()
            for name in _conda_listed(self.path):
                self._add(found, os.path.join(self.path, name))
            self._conda = found
        return self._conda


def _foreign_below(path, top, recorded, allowed_re=None):
    """Entries of the folder <path>/<top> that are not part of the environment (as 'top/name')."""
    folder = os.path.join(path, top)
    if not _is_real_dir(folder):
        return []       # a link (lib64 -> lib) or a file: removed as itself, never followed
    foreign = []
    for entry in list_dir(folder):
        if allowed_re is not None and allowed_re.match(entry.name):
            continue
        if (top, entry.name) in recorded():
            continue
        if entry.is_dir(follow_symlinks=False) and _only_empty_folders(entry.path):
            continue  # what an uninstall leaves (share/jupyter/kernels/python3/): nothing of anyone's
        foreign.append(top + "/" + _entry_label(folder, entry.name))
    return foreign


def _only_empty_folders(folder, most=200):
    """Whether a real folder holds nothing but folders that are empty in turn, as an uninstall leaves them (pip
    and uv remove a package's files, not the folders they made): nothing in it can be lost. A file or a link,
    or more than `most` folders, says no."""
    waiting, seen = [folder], 0
    while waiting:
        for entry in list_dir(waiting.pop()):
            seen += 1
            if seen > most or not entry.is_dir(follow_symlinks=False):
                return False
            waiting.append(entry.path)
    return True


def check_contents(path):
    """(foreign, own): what a folder holds besides the environment (['analysis.py', 'data/', 'bin/run.sh',
    ...]) and the names of its top-level entries that are the environment's.

    A venv/virtualenv/uv environment may hold only what those tools write, with bin/, lib/ and include/
    checked one level down (a project made into a venv in place has its own files there too) and share/,
    etc/ and man/ only as far as an installed package recorded them. A conda prefix may hold conda's
    standard folders and whatever its package records list. Unsure means foreign: nothing is deleted.
    """
    recorded = _Recorded(path)
    conda = os.path.isdir(os.path.join(path, "conda-meta")) and not os.path.lexists(
        os.path.join(path, "pyvenv.cfg"))
    foreign, own = [], []
    for entry in list_dir(path):
        name = entry.name
        before = len(foreign)
        if name == ENVDESK_DIR and _is_real_dir(entry.path):
            pass
        elif conda:
            if not (name in CONDA_TOP or re.compile(_CONDA_TOP_RE).search(name) or (name,) in recorded.conda()):
                foreign.append(_entry_label(path, name))
        elif name in VENV_TOP:
            if name in _VENV_BIN:
                foreign.extend(_foreign_below(path, name, recorded.pip,
                                               re.compile(_VENV_PROGRAM_RE, re.IGNORECASE)))
            elif name in _VENV_LIB:
                foreign.extend(_foreign_below(path, name, recorded.pip, re.compile(_LIB_ENTRY_RE)))
            elif name in _VENV_INCLUDE:
                foreign.extend(_foreign_below(path, name, recorded.pip, re.compile(_INCLUDE_ENTRY_RE)))
            elif name in _VENV_DATA:
                foreign.extend(_foreign_below(path, name, recorded.pip))
            elif name == ".gitignore" and not _only_star_lines(entry.path):
                foreign.append(name)
            elif name == "CACHEDIR.TAG" and not _is_cachedir_tag(entry.path):
                foreign.append(name)
            elif name == ".lock" and _is_real_dir(entry.path):
                foreign.append(name + "/")
        else:
            foreign.append(_entry_label(path, name))
        if len(foreign) == before:
            own.append(name)
    return foreign, own


def _remove_entry(path):
    """Remove one file, link or folder; a link is removed itself, never what it points to."""
    info = os.lstat(path)
    mode = info.st_mode
    reparse = getattr(info, "st_file_attributes", 0) & getattr(stat, "FILE_ATTRIBUTE_REPARSE_POINT", 0)
    if stat.S_ISDIR(mode) and not reparse:
        import shutil
        shutil.rmtree(path)       # never descends into a link (it unlinks it)
    elif stat.S_ISDIR(mode):
        os.rmdir(path)            # a Windows junction: remove the link only
    else:
        os.unlink(path)


LAST_REMOVED = ("pyvenv.cfg", "conda-meta")    # what makes a folder an environment: it goes last


def delete_environment_folder(path, own):
    """Remove the environment's own top-level entries (those checked), what makes it an environment last, then
    the folder itself."""
    for name in sorted(own, key=lambda name: (name in LAST_REMOVED, name == ENVDESK_DIR)):
        _remove_entry(os.path.join(path, name))
    try:
        os.rmdir(path)
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        left = [_entry_label(path, entry.name) for entry in list_dir(path)]
        raise ActionError("EnvDesk removed the environment's files from %s but left the folder, because "
                          "new files appeared in it while deleting: %s." % (path, ", ".join(left[:FOREIGN_SHOWN])),
                          CODE_FAILED)


NO_ROOM = tuple(getattr(errno, name) for name in ("ENOSPC", "EDQUOT") if hasattr(errno, name))


def own_contents(path):
    """The environment's own top-level entries; an error naming the others, if any (nothing is deleted then)."""
    foreign, own = check_contents(path)
    if foreign:
        shown = ", ".join(foreign[:FOREIGN_SHOWN])
        if len(foreign) > FOREIGN_SHOWN:
            shown += " and %d more" % (len(foreign) - FOREIGN_SHOWN)
        raise ActionError("%s holds files that are not part of the environment: %s. Nothing was "
                          "deleted. Move them out, or delete the folder yourself." % (path, shown),
                          CODE_INVALID)
    return own


def _read_only_folders(path):
    """The folders in the environment (itself included, links not followed) whose entries this user cannot
    remove, for they are not writable for it (chmod a-w): a delete would stop at the first."""
    found = []
    for folder, dirs, _ in os.walk(path):
        if not os.access(folder, os.W_OK | os.X_OK):
            found.append(folder)
            if len(found) > FOREIGN_SHOWN:
                break
    return found


def _owners_of_others(folders):
    """The names of the users other than this one who own any of `folders`: those whom a delete must be left to
    (a colleague's package in a shared environment), not a chmod this user cannot run."""
    me = _uid()
    owners = set()
    for folder in folders:
        try:
            uid = os.lstat(folder).st_uid
        except OSError:
            continue
        if uid != me:
            owners.add(account_name(uid))
    return sorted(owners)


def _on_read_only_mount(folder):
    try:
        return bool(os.statvfs(folder).f_flag & getattr(os, "ST_RDONLY", 1))
    except (OSError, AttributeError):
        return False


def aside_name(path):
    """Where a delete moves the environment before removing it: beside it, so on the same file system."""
    aside = path + DELETING_SUFFIX
    return aside if not os.path.lexists(aside) else "%s-%s" % (aside, os.urandom(4).hex())


def move_aside(path):
    """Rename the environment folder aside (nothing is removed yet); an error in plain words when it cannot be."""
    aside = aside_name(path)
    try:
        os.rename(path, aside)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            parent = os.path.dirname(path)
            raise ActionError("EnvDesk could not delete %s: the folder that holds it, %s, is not writable for you "
                              "(permission denied), and the environment is first moved aside there. Nothing was "
                              "deleted. Make %s writable (chmod u+w %s), or ask its owner to delete the "
                              "environment." % (path, parent, parent, parent), CODE_NOT_WRITABLE)
        raise
    return aside


def remove_aside(path, aside, own):
    """Remove the environment moved aside; when that stops part-way, what is left stays aside, no longer an
    environment anyone can use at its place, and the error says where."""
    try:
        delete_environment_folder(aside, own)
    except (OSError, ActionError) as exc:
        reason = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
        raise ActionError("EnvDesk moved %s aside to %s to delete it, and could not remove all of it (%s): the "
                          "environment is gone from its place, and what is left in %s cannot be used. Delete that "
                          "folder to finish (it is listed as a delete that stopped)." % (path, aside, reason, aside),
                          CODE_FAILED)


def delete_without_room(path):
    """Delete on a full disk or quota, where the lock (a folder and a file) cannot be written: a full quota is
    when users delete environments. The folder is renamed aside first anyway, which needs no room and which no
    other operation can follow; if another one took the lock meanwhile, it is put back and that one is waited
    for."""
    own = own_contents(path)
    lock = path + LOCK_SUFFIX
    aside = move_aside(path)
    if os.path.lexists(lock):
        os.rename(aside, path)
        raise ActionError("Another EnvDesk operation is working on this environment. Wait for it to finish, "
                          "then try again.", CODE_BUSY)
    remove_aside(path, aside, own)
    return {"path": path, "removed": True}


def action_delete(cfg):
    """Delete one environment folder, only if it really is one, inside a root, holding nothing else. Nothing is
    removed before the folder is renamed aside (see move_aside), so a delete that stops part-way leaves either
    the whole environment at its place or nothing usable there; nor when a folder in it is not writable."""
    path = check_target(cfg["path"], cfg["roots"])
    if os.path.islink(path):
        raise ActionError("%s is a link, not an environment folder; EnvDesk will not delete "
                          "through it." % path, CODE_INVALID)
    if not is_env(path):
        raise ActionError("%s is not a Python environment (no pyvenv.cfg or conda-meta), so "
                          "EnvDesk will not delete it." % path, CODE_MISSING)
    if is_conda_base(path):
        raise ActionError("%s is a conda installation, not one environment; EnvDesk will not "
                          "delete it." % path, CODE_INVALID)
    read_only = _read_only_folders(path)
    if read_only and _on_read_only_mount(read_only[0]):
        raise ActionError("EnvDesk could not delete %s: %s is on a read-only file system, so its files cannot be "
                          "removed. Nothing was deleted." % (path, read_only[0]), CODE_READ_ONLY)
    theirs = _owners_of_others(read_only)
    if theirs:
        raise ActionError("EnvDesk could not delete %s: %s installed or made part of it (%s%s), which is not writable "
                          "for you, so its files cannot be removed. Nothing was deleted. Ask %s to delete it, or to "
                          "make those folders writable for you."
                          % (path, " and ".join(theirs), read_only[0],
                             " and %d more folder%s" % (len(read_only) - 1, "s" if len(read_only) > 2 else "")
                             if len(read_only) > 1 else "", " or ".join(theirs)), CODE_NOT_WRITABLE)
    if read_only:
        raise ActionError("EnvDesk could not delete %s: %s %s not writable for you (read-only), so its files "
                          "cannot be removed. Nothing was deleted. If you mean to delete it, make it writable "
                          "first (chmod -R u+w %s), then delete it again."
                          % (path, ", ".join(read_only[:FOREIGN_SHOWN]), "is" if len(read_only) == 1 else "are",
                             path), CODE_NOT_WRITABLE)
    kernels, theirs = _kernels_of(path)
    try:
        token, took_over = take_lock(path, "delete", own=True)
    except OSError as exc:
        if exc.errno not in NO_ROOM:
            raise
        answer = delete_without_room(path)
    else:
        try:
            own = own_contents(path)
            remove_aside(path, move_aside(path), own)
        finally:
            release_lock(path, token)
        answer = {"path": path, "removed": True}
        if took_over:
            answer["took_over"] = took_over
    _drop_lock_of_stopped_delete(path)
    answer.update(remove_kernels(kernels))
    answer["kernels_broken"] = theirs
    return answer


def _drop_lock_of_stopped_delete(path):
    """Once what a stopped delete left aside (at `path`) is deleted: the lock that delete held on the environment's
    own place, when nothing is there and its holder is gone."""
    match = re.search(deleting_pattern(), path)
    original = path[:match.start()] if match else None
    lock = (original or "") + LOCK_SUFFIX
    if original is None or os.path.lexists(original) or not _is_real_dir(lock):
        return
    info = _lock_owner(lock)
    try:
        if info.get("operation") == "delete" and _stale_reason(original, info) is not None:
            _break_lock(lock, info)
    except (OSError, ActionError):
        pass


def _kernels_of(path):
    """The kernels EnvDesk made for the environment at `path`, and other tools' that run it (kernels_of); none
    when the kernel folder cannot be looked through: what is in it never stops a delete or its question."""
    try:
        return kernels_of(path)
    except Exception:
        return [], []


def remove_kernels(kernels):
    """Remove the Jupyter kernels EnvDesk made for an environment just deleted (they could no longer start):
    {"kernels_removed": names, "kernels_left": names that could not be removed}."""
    removed, left = [], []
    for name, folder in kernels:
        try:
            remove_kernel_folder(folder)
            removed.append(name)
        except OSError:
            left.append(name)
    return {"kernels_removed": removed, "kernels_left": left}


def action_history(cfg):
    path = check_target(cfg["path"], cfg["roots"])
    return {"path": path, "snapshots": list_snapshots(path)}


def action_snapshot(cfg):
    path = check_target(cfg["path"], cfg["roots"])
    return {"path": path, "snapshot": read_snapshot(path, cfg.get("id"))}


def action_measure(cfg):
    """Size and file count of an environment (bounded in time) and the Jupyter kernels that run it (EnvDesk's,
    which a delete removes, and other tools'), for the delete confirmation."""
    path = check_target(cfg["path"], cfg["roots"])
    measured = measure_tree(path, Deadline(float(cfg.get("time_budget", 20.0))))
    measured["path"] = path
    mine, theirs = _kernels_of(path)
    measured["kernels"] = [name for name, _ in mine]  # a delete removes them too
    measured["kernels_broken"] = theirs  # ... and leaves these, which then cannot start
    return measured


def action_measure_folders(cfg):
    """Size and file count under each folder asked for that exists and is the user's to change (an
    installer's cache, before and after it is emptied), counted as an environment is: {folder: measure_tree}."""
    folders = cfg.get("folders")
    if not isinstance(folders, list) or not all(isinstance(folder, str) and folder for folder in folders):
        raise ActionError("The folders to measure must be a list of paths.", CODE_INVALID)
    deadline = Deadline(float(cfg.get("time_budget", 500.0)))
    return {"measured": dict((folder, measure_tree(folder, deadline)) for folder in folders
                             if os.path.isdir(folder) and os.access(folder, os.W_OK))}


ACTIONS = {"begin": action_begin, "finish": action_finish, "abort": action_abort, "reset": action_reset,
           "clean": action_clean,
           "delete": action_delete, "history": action_history, "snapshot": action_snapshot,
           "measure": action_measure, "measure_folders": action_measure_folders}
FOLDER_ACTIONS = ("measure_folders",)   # about folders given in "folders", not one environment's path


def _doing(config):
    """What the action was doing, for a sentence about why it could not ('record EnvDesk's notes in X')."""
    path, name = config.get("path"), config.get("action")
    if name == "begin":
        return ("start making %s" if config.get("create") else
                "save a snapshot of %s before changing it" if config.get("snapshot") else "lock %s") % path
    return {"finish": "record EnvDesk's notes in %s", "abort": "clean up %s",
            "clean": "remove the half-installed packages from %s", "reset": "empty %s to build it again",
            "delete": "delete %s"}.get(name, "read %s") % path


def os_refusal(exc, config):
    """An OSError met by an action, as its refusal: a full disk, a used-up quota and a read-only
    filesystem in plain words naming the environment folder that holds the path, with their own codes."""
    path = expand(str(config.get("path")))
    try:
        folder = inside_root(path, config.get("roots") or []) or os.path.dirname(path)
    except (OSError, ValueError, TypeError):
        folder = os.path.dirname(path)
    doing = _doing(config)
    if exc.errno in (errno.EACCES, errno.EPERM):
        place = exc.filename if isinstance(exc.filename, str) else path
        where = os.path.dirname(place) if os.path.lexists(os.path.dirname(place) or "/") else folder
        if not os.access(where, os.W_OK):
            return ActionError("%s is not writable for you (permission denied), so EnvDesk could not %s."
                               % (where, doing), CODE_NOT_WRITABLE)
        return ActionError("EnvDesk could not %s: permission denied for %s." % (doing, place), CODE_NOT_WRITABLE)
    if exc.errno == errno.ENOSPC:
        return ActionError("The disk holding %s is full (no space left on it), so EnvDesk could not %s."
                           % (expand(folder, variables=True), doing), CODE_DISK_FULL)
    if exc.errno is not None and exc.errno == getattr(errno, "EDQUOT", None):
        return ActionError("Your disk quota for %s is used up, so EnvDesk could not %s."
                           % (expand(folder, variables=True), doing), CODE_DISK_FULL)
    if exc.errno == errno.EROFS:
        return ActionError("%s is read-only (its filesystem is mounted read-only), so EnvDesk could not %s."
                           % (expand(folder, variables=True), doing), CODE_READ_ONLY)
    return ActionError("EnvDesk could not %s: %s." % (doing, describe_os_error(exc)), CODE_OSERROR)


def run_action(config):
    """Run one write action; refusals come back as {"ok": false, "code", "error"}."""
    action = ACTIONS.get(config.get("action"))
    if action is None:
        return {"ok": False, "code": CODE_INVALID, "error": "Unknown action %r." % config.get("action")}
    if config.get("action") not in FOLDER_ACTIONS and (not isinstance(config.get("roots"), list)
                                                       or not config.get("path")):
        return {"ok": False, "code": CODE_INVALID, "error": "The action needs a path and roots."}
    try:
        answer = action(config)
    except ActionError as exc:
        return {"ok": False, "code": exc.code, "error": str(exc)}
    except (OSError, IOError) as exc:
        refusal = os_refusal(exc, config)
        return {"ok": False, "code": refusal.code, "error": str(refusal)}
    answer["ok"] = True
    return answer


# Hand the actions to the read part's main (which refuses every action without this part).
RUN_ACTION = run_action
