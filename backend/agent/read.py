"""EnvDesk remote agent, read part: inspect Python environments on this machine, answer in JSON.

The agent is not one file but plain script parts, put together by
``envdesk.backend.agent_client.agent_script``:

1. a generated header with the protocol constants of ``envdesk.backend.protocol``
   (``ANSWER_MARKER``, ``LOCK_SUFFIX``, ``ENVDESK_DIR``, ``STATE_*``, ``CODE_*`` ...);
   no part defines those itself;
2. this read part: discovery, reading environments, ``inventory`` and ``main``;
3. only for a write action (``"action"`` in the settings), ``write.py``;
4. the two lines that call ``main(sys.argv)``.

A cluster keeps each agent it was sent under $XDG_CACHE_HOME or ~/.cache, as
``envdesk/agent/<sha256>.py``, stored by the store part (``store.py``, see
``envdesk.backend.agent_store``); later calls send only a small bootstrap on
stdin to ``python3 -``, which runs that file as ``__main__`` with the settings
in ``sys.argv`` after checking its sha256. This computer is sent the agent on
stdin.

A listing therefore ships without any of the write code. The agent answers in
one round trip: it prints exactly one line, ``ANSWER_MARKER`` followed by compact
ASCII JSON, and exits 0 (even when environments are broken; 2 if the settings
are not a JSON object, 1 if the agent itself failed, still with the answer line).

Rules every part must keep:

* Python 3.6+ only syntax and APIs (no walrus, no dataclasses, no
  ``from __future__ import annotations``, no ``str.removeprefix`` ...).
* Standard library only; never runs pip, conda or any other program.
* Each call starts Python on the cluster: import at the top only modules every
  run needs, the others where they are used, and compile regexes where they are
  used (re.compile keeps them); tests/test_agent_start.py names the modules a listing and a
  begin must not load.
* The inventory only reads environments: it never writes or modifies anything
  in them (not even conda's environments.txt). Its one write is its own cache
  (``~/.cache/envdesk/inventory.json``, see ListingCache): what each environment
  held and the stats that tell whether it changed since, so an unchanged
  environment costs three lookups on a parallel file system instead of one or
  more per package. Writing happens only in the write part's actions
  (begin, finish, abort, reset, history, snapshot, delete, measure), each of
  which checks that the folder is an environment inside a known root before
  touching it.
* One broken environment never breaks the run: any problem while reading an
  environment becomes that environment's ``error``.
* An environment folder may hold anything where a small file belongs (a link to
  /dev/zero, a named pipe, a huge file): every file is read through
  ``open_regular`` (regular files only, never blocking) and bounded in size
  (``MAX_*_BYTES``), and reading one environment is bounded in time
  (``read_env``); such a file skips its package with a warning, or breaks its
  environment, with a reason naming it.

The answer (see ``inventory``)::

    {"agent": 1, "host": str, "python": str, "home": str,
     "environments": [ENV, ...], "errors": [{"path": str, "error": str}],   # (+ "denied", "owner": Found.denied)
     "truncated": bool, "elapsed": float, "cached": int,   # environments taken from the cache
     "space": [{"path", "free_bytes", "total_bytes", "free_files", "total_files"}] or None,
     "health": see health_facts, or None}   # only when asked, as "device" (st_dev) of each environment
    (+ from a serving agent: "answer": its id, and "since": the id of the earlier answer its
     {"same": path} entries stand for, see SentAnswers)

    ENV = {"name", "path", "root", "kind": "venv"|"virtualenv"|"uv"|"conda",
           "python": "X.Y.Z" or None, "system_site_packages", "created_by",
           "packages": [{"name", "version", "installer", "requested", "url",
                         "editable"} (+ "build", "channel" for conda records)],
           "package_count", "modules", "envdesk", "conda_requested", "channels",
           "state": "ok"|"broken"|"incomplete", "error": sentence or None,
           "owner": user name or None (this user's own), "group", "writable": bool,   # see ownership
           "detail": "full"|"light",   # light: packages' names and versions only
           "usage": {"bytes", "files", "complete"}   # only when asked ("usage": true)
           "warnings": [sentence, ...],   # e.g. a package skipped as unreadable
           "provided": [{"module", "path", "packages"}]}   # not light, where its modules put folders on
                                                            # PYTHONPATH (see read_provided)
"""
# The protocol constants come from the generated header, the write part's names from write.py:
# ruff: noqa: F821
# mypy: ignore-errors

# Only what every run needs is imported here: a run is a Python start on the cluster, and each module
# more costs it time (ast, platform, select, socket and tempfile cost more than the agent's own work in
# a small listing). Others are imported where they are used; regexes are compiled where used (re.compile).
import errno
import json
import os
import re
import stat
import sys
import time
from _thread import get_ident as _thread_id  # the C module under threading, loaded with Python

try:
    import fcntl
except ImportError:     # not POSIX: files are then left in non-blocking mode
    fcntl = None

DEFAULT_ROOTS = ["~/venvs", "~/.venvs", "~/.virtualenvs", "~/envs"]
DEFAULT_MAX_DEPTH = 2
DEFAULT_MAX_ENVS = 500
DEFAULT_TIME_BUDGET = 20.0
DEFAULT_ENV_TIME_BUDGET = 10.0   # seconds for reading one environment, checked between files
INCOMPLETE_SHOWN = 5             # half-installed package folders named in an environment's error

# The most the agent reads of one file. A hostile or damaged environment can hold a
# link to /dev/zero, a named pipe or a huge sparse file where a small file belongs.
MAX_TEXT_BYTES = 1024 * 1024             # pyvenv.cfg, INSTALLER, *.egg-link, condarc ...
MAX_HEADER_BYTES = 512 * 1024            # METADATA/PKG-INFO: only the headers are read
MAX_RECORD_BYTES = 8 * 1024 * 1024       # a conda record read whole in a listing, EnvDesk's meta.json
MAX_JSON_BYTES = 64 * 1024 * 1024        # any other JSON file (conda records' file lists can be ~30 MB)
MAX_HISTORY_BYTES = 32 * 1024 * 1024     # conda-meta/history, kept for the life of the env
MAX_DIR_ENTRIES = 100000                 # entries of one folder

# Folders never worth descending into while searching a root.
SKIP_DESCEND = frozenset([".git", ".hg", ".svn", "node_modules", "__pycache__"])

# condarc files conda reads that can list envs_dirs. User-level ones are
# relative to ~; $CONDARC and $XDG_CONFIG_HOME are added at run time.
USER_CONDARCS = [
    "~/.config/conda/.condarc",
    "~/.config/conda/condarc",
    "~/.conda/.condarc",
    "~/.conda/condarc",
    "~/.condarc",
]
SYSTEM_CONDARCS = ["/etc/conda/.condarc", "/etc/conda/condarc"]

INCOMPLETE_MESSAGE = (
    "This environment was not finished being built (its creation was "
    "interrupted or is still running), so it must not be used. Delete it "
    "and create it again."
)

# Regexes, compiled when first used (re.compile keeps what it compiled).
_VERSION_RE = r"^\s*(\d+)\.(\d+)(?:\.(\d+))?"
_LIB_PY_RE = r"^(?:python|pypy)(\d+)\.(\d+)t?$"
_CONDA_SUBDIR_RE = r"^(?:noarch|(?:linux|osx|win|zos|freebsd|emscripten|wasi)-[A-Za-z0-9_]+)$"
_SPEC_NAME_RE = r"^\s*([A-Za-z0-9_][A-Za-z0-9_.\-]*)"
_URL_USERINFO_RE = r"^([A-Za-z][A-Za-z0-9+.\-]*://)([^/@]+)@"
_RECORD_INDENT_RE = r'^([ \t]+)"'          # re.M
_RECORD_KEY_RE = r'^([ \t]+)"(s?channel)"[ \t]*:[ \t]*"([^"\\\n]*)"'  # re.M
_SNAPSHOT_ID_RE = r"^[0-9TZ]+-[0-9]+$"
def deleting_pattern():
    """What a stopped delete left aside (see write.py): the protocol's constants are given to this part after it
    is loaded (in-process on This computer too), so this is made when used, not at load."""
    return re.escape(DELETING_SUFFIX) + r"(?:-[0-9a-f]+)?$"
RECORD_HEAD_BYTES = 8192


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

def host_name():
    """socket.gethostname(), without importing socket: on POSIX both are uname's node name."""
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket
    return socket.gethostname()


def python_version():
    """platform.python_version(), without importing platform: the version that starts sys.version, with
    the '.0' platform adds to an X.Y."""
    found = re.compile(r"[\w.+]+", re.ASCII).match(sys.version)
    if found is None:
        import platform
        return platform.python_version()
    parts = found.group(0).split(".")
    return ".".join(parts + ["0"]) if len(parts) == 2 else found.group(0)


class Deadline(object):
    """Wall-clock budget for one run."""

    def __init__(self, seconds):
        self.start = time.monotonic()
        self.end = self.start + max(0.0, seconds)

    def expired(self):
        """True once the budget is used up."""
        return time.monotonic() >= self.end

    def elapsed(self):
        """Seconds since the run started."""
        return time.monotonic() - self.start


def expand(path, variables=False):
    """Expand ~ (and $VARS if asked) and make absolute, without resolving symlinks."""
    if variables:
        path = os.path.expandvars(path)
    return os.path.abspath(os.path.expanduser(path))


# File names are bytes; EnvDesk sends and is sent them as their UTF-8 text (surrogate escapes for bytes that are
# not UTF-8, as Python names them). A Python 3.6 started without a locale (an SSH session with no LANG is POSIX;
# 3.7+ take UTF-8 there) names files in ASCII: 'ü' in a name is '\udcc3\udcbc' to it, and a path with 'ü' makes
# every os call raise UnicodeEncodeError. There, text crosses into the agent (its settings, what it reads in files)
# as file-name text and out of it (its answer) as UTF-8 text again: the same bytes on disk either way.
def ascii_file_names():
    """Whether this Python names files in ASCII (a POSIX locale before Python 3.7): text then needs turning."""
    import codecs  # loaded with Python: costs nothing
    return codecs.lookup(sys.getfilesystemencoding()).name == "ascii"


def _turned(value, turn):
    """`value` (JSON data) with each text in it, keys too, passed through `turn`."""
    if isinstance(value, str):
        return turn(value)
    if isinstance(value, dict):
        return dict((_turned(key, turn), _turned(item, turn)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [_turned(item, turn) for item in value]
    return value


def as_file_text(value):
    """UTF-8 text (JSON data of it) as this Python names files: what os calls take for those bytes."""
    if not ascii_file_names():
        return value
    return _turned(value, lambda text: text.encode("utf-8", "surrogateescape").decode("ascii", "surrogateescape"))


def as_sent_text(value):
    """File-name text of this Python (JSON data of it) as UTF-8 text, for the answer or a file others read."""
    if not ascii_file_names():
        return value
    return _turned(value, lambda text: text.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape"))


# The filesystem refusals a user can act on (make room, write elsewhere), in plain words.
PLAIN_OS_ERRORS = {errno.ENOSPC: "the disk is full (no space left on it)",
                   errno.EROFS: "the filesystem is read-only",
                   errno.EACCES: "permission denied"}
if hasattr(errno, "EDQUOT"):
    PLAIN_OS_ERRORS[errno.EDQUOT] = "the disk quota is used up"


def describe_os_error(exc):
    """A short plain-language reason for an OSError."""
    plain = PLAIN_OS_ERRORS.get(getattr(exc, "errno", None))
    if plain:
        return plain
    reason = exc.strerror or exc.__class__.__name__
    return reason[0].lower() + reason[1:] if reason else "unknown error"


def normalize_name(name):
    """PEP 503 normalized project name, used to spot duplicates."""
    return re.compile(r"[-_.]+").sub("-", name).lower()


def normalize_version(text):
    """'3.11.2.final.0' -> '3.11.2', '3.11' -> '3.11'; None if not a version."""
    if not text:
        return None
    match = re.compile(_VERSION_RE).match(text)
    if not match:
        return None
    return ".".join(part for part in match.groups() if part is not None)


def redact_url(url):
    """Drop user names, passwords and tokens from a URL (keeps ssh 'git@')."""
    if not isinstance(url, str):
        return None
    match = re.compile(_URL_USERINFO_RE).match(url)
    if match and match.group(2) != "git":
        url = match.group(1) + url[match.end():]
    return url


class RefusedFile(OSError):
    """A file the agent will not read: not a regular file, or far too large; the message names it."""

    def __init__(self, message):
        OSError.__init__(self, errno.EINVAL, message)

    def __str__(self):
        return self.strerror


class TimeUp(Exception):
    """Reading one environment took longer than its time budget (never an OSError: it stops the env)."""

    def __init__(self, path, seconds):
        Exception.__init__(self, path)
        self.path = path
        self.seconds = seconds


# The Deadline of the environment each thread is reading (read_env sets it), by thread: where the agent runs
# inside its client (this computer's actions, see envdesk.backend.agent_here), two threads may read at once.
_ENV_DEADLINES = {}


def check_time(path):
    """Raise TimeUp (naming path, the file or folder about to be read) once the env's budget is used up."""
    deadline = _ENV_DEADLINES.get(_thread_id())
    if deadline is not None and deadline.expired():
        raise TimeUp(path, deadline.end - deadline.start)


def _size_text(size):
    """'512 KB', '8 MB', '100 bytes'."""
    if size >= 1024 * 1024:
        return "%d MB" % (size // (1024 * 1024))
    return "%d KB" % (size // 1024) if size >= 1024 else "%d bytes" % size


def _kind_text(mode):
    """What a non-regular file is, in words."""
    for test, words in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                        (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a disk device"),
                        (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return words
    return "a special file"


def _not_regular(path, mode):
    """The RefusedFile for a path that is not a regular file (saying where a link points)."""
    target = None
    try:
        if os.path.islink(path):
            target = os.readlink(path)
    except OSError:
        pass
    what = ("a link to %s, which is %s" % (target, _kind_text(mode)) if target
            else _kind_text(mode))
    return RefusedFile("%s is %s, not a regular file" % (path, what))


_PROC_REOPEN = []


def _reopen_through_proc():
    """Whether a file can be looked up once with O_PATH and opened again through /proc (Linux)."""
    if not _PROC_REOPEN:
        _PROC_REOPEN.append(hasattr(os, "O_PATH") and os.path.isdir("/proc/self/fd"))
    return _PROC_REOPEN[0]


def _open_regular_by_handle(path):
    """open_regular in one lookup of path: an O_PATH handle never opens a device or pipe (no driver is
    called), its fstat decides, and the same file is then opened through /proc, which does not ask the
    file system that holds path again (on Lustre or GPFS a lookup is a round trip to a server)."""
    handle = os.open(path, os.O_PATH | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            raise _not_regular(path, info.st_mode)
        fd = os.open("/proc/self/fd/%d" % handle, os.O_RDONLY | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    finally:
        os.close(handle)
    return os.fdopen(fd, "rb")


def open_regular(path, listed_regular=False):
    """Open path for reading (binary) only if it is a regular file, links followed.

    One lookup of path where it can be (on Lustre or GPFS each lookup is a round
    trip to a metadata server): a file that is not a link is opened at once,
    non-blocking and without following links, then checked once open. Nothing
    can act on that open: only root can make device nodes, and a named pipe
    opened non-blocking returns at once (it is then refused, as a socket is). A
    link may point to /dev/zero or a tape drive, so its target is checked before
    it is opened: through an O_PATH handle where there is one, else by a stat.
    `listed_regular`: the folder's own listing already said it is a regular file
    and not a link. Also checks the environment's time budget (TimeUp).
    """
    check_time(path)
    nonblock = getattr(os, "O_NONBLOCK", 0)
    flags = (os.O_RDONLY | nonblock | getattr(os, "O_NOCTTY", 0)
             | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    fd = None
    if listed_regular or nofollow:
        try:
            fd = os.open(path, flags if listed_regular else flags | nofollow)
        except OSError as exc:
            if listed_regular or exc.errno not in (errno.ELOOP, errno.EMLINK):
                raise
    if fd is None:      # a link (or no O_NOFOLLOW on this system)
        if _reopen_through_proc():
            return _open_regular_by_handle(path)
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise _not_regular(path, info.st_mode)
        fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _not_regular(path, info.st_mode)
        if nonblock and fcntl is not None:
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~nonblock)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path, limit, listed_regular=False):
    """The whole content of a regular file of at most limit bytes (RefusedFile if larger)."""
    with open_regular(path, listed_regular) as handle:
        too_big = os.fstat(handle.fileno()).st_size > limit
        data = b"" if too_big else handle.read(limit + 1)     # + 1: it may have grown since
    if too_big or len(data) > limit:
        raise RefusedFile("%s is larger than %s, far more than such a file ever holds"
                          % (path, _size_text(limit)))
    return data


def read_text(path, errors="strict", limit=MAX_TEXT_BYTES, listed_regular=False):
    """Read a whole UTF-8 text file (never the locale encoding: may be ASCII), bounded."""
    return as_file_text(read_bytes(path, limit, listed_regular).decode("utf-8", errors))


def read_json(path, limit=MAX_JSON_BYTES):
    """Load one JSON file, bounded (its text as file names are: it may name files)."""
    return as_file_text(json.loads(read_bytes(path, limit).decode("utf-8")))


_UMASK = []


def _umask():
    """The process's umask, read from /proc where there is one (else set and put back at once), once: the agent
    never changes it, and where it runs inside its client (see envdesk.backend.agent_here), setting it even for
    an instant would touch the files the client's other threads make meanwhile."""
    if _UMASK:
        return _UMASK[0]
    mask = None
    for line in (_read_small("/proc/self/status") or b"").splitlines():
        if line.startswith(b"Umask:"):
            try:
                mask = int(line.split()[1], 8)
            except (IndexError, ValueError):
                pass
            break
    if mask is None:
        mask = os.umask(0o022)
        os.umask(mask)
    _UMASK.append(mask)
    return mask


def make_temp_file(folder, prefix, suffix):
    """(descriptor, path) of a new empty file in folder, mode 0600, under a random name, created exclusively
    and never through a link: tempfile.mkstemp, without importing tempfile (and random, shutil ...)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        path = os.path.join(folder, prefix + os.urandom(6).hex() + suffix)
        try:
            return os.open(path, flags, 0o600), os.path.abspath(path)
        except FileExistsError:
            continue
        except PermissionError:  # Windows, where a folder already has that name
            if os.name == "nt" and os.path.isdir(folder) and os.access(folder, os.W_OK):
                continue
            raise
    raise FileExistsError(errno.EEXIST, "No usable temporary file name found")


def write_json(path, data, private=False):
    """Write JSON atomically: a temp file beside path, then renamed over it; the old file stays on failure.

    The temp file has a random name and is created exclusively (never through a link someone planted
    there), with the mode open() would give (others may read EnvDesk's notes), or only for its owner
    when `private` (and its folder too, when this makes it); it is removed whatever goes wrong (a full
    disk, a read-only filesystem ...).
    """
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        os.makedirs(folder, 0o700 if private else 0o777)
    fd, temp = make_temp_file(folder, "." + os.path.basename(path) + ".", ".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            if hasattr(os, "fchmod"):
                os.fchmod(handle.fileno(), 0o600 if private else 0o666 & ~_umask())
            if private:  # as UTF-8 text whatever this Python's locale: another EnvDesk may read it in UTF-8 (R21)
                json.dump(as_sent_text(data), handle, separators=(",", ":"))
            else:
                json.dump(as_sent_text(data), handle, indent=1, sort_keys=True)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


def list_dir(path, ordered=True):
    """os.DirEntry list of a folder, sorted by name unless `ordered` is False (then in the file system's own
    order, os.listdir's); raises OSError, RefusedFile past MAX_DIR_ENTRIES."""
    check_time(path)
    entries = []
    with os.scandir(path) as iterator:
        for entry in iterator:
            entries.append(entry)
            if len(entries) % 1000 == 0:
                check_time(path)
                if len(entries) > MAX_DIR_ENTRIES:
                    raise RefusedFile("%s holds more than %d entries, far more than EnvDesk "
                                      "expects" % (path, MAX_DIR_ENTRIES))
    return sorted(entries, key=lambda entry: entry.name) if ordered else entries


def is_dir_entry(entry):
    """entry.is_dir() that treats unreadable entries as not folders."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def is_present(path):
    """True if something other than a folder is at path: a file, or a link, pipe ... (refused when read)."""
    try:
        return not stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _lstat(path):
    """os.lstat(path), or None when nothing can be looked up there."""
    try:
        return os.lstat(path)
    except OSError:
        return None


# -- environments in a group's shared folder --
#
# The rule: an environment is shared with a group when the folder it is made in is that group's shared folder:
# one the group may read and search, of a group the user is in, and that is setgid (a project's folder: what is
# made in it takes its group) or belongs to a group other than the user's own (primary) one; Linux only. EnvDesk
# then shares the environment like the folder, whatever the user's umask: the group may read it and run it, and,
# where the folder is group-writable, update it. A folder of the user's own group, or closed to its group, is
# private: the umask decides, as before.


def group_share(folder):
    """(gid, group-writable) when environments in folder are shared with its group (the rule above), else None."""
    if not sys.platform.startswith("linux"):    # clusters; macOS gives every new file its folder's group anyway
        return None
    try:
        info = os.stat(folder)
        member = info.st_gid in os.getgroups() or info.st_gid == os.getgid()
    except OSError:
        return None
    if info.st_mode & 0o050 != 0o050 or not member:
        return None
    if not info.st_mode & stat.S_ISGID and info.st_gid == os.getgid():
        return None
    return info.st_gid, bool(info.st_mode & 0o020)


_NAMES = {}     # (group?, id) -> name, for one run (a shared folder's environments share a few owners)


def account_name(number, group=False):
    """The name of user (or group) number, else the number as text (Unix: only for a shared folder, a colleague's
    environment or a lock); looked up once a run."""
    key = (group, number)
    if key not in _NAMES:
        try:
            if group:
                import grp
                _NAMES[key] = grp.getgrgid(number).gr_name
            else:
                import pwd
                _NAMES[key] = pwd.getpwuid(number).pw_name
        except (ImportError, KeyError):
            _NAMES[key] = str(number)
    return _NAMES[key]


def shared_with(share):
    """A group share in an answer: {"group", "write"}."""
    return {"group": account_name(share[0], group=True), "write": share[1]}


def _group_cannot_use(path, info, gid):
    """Whether the group gid cannot use what lstat info describes (a link: never, its mode is not looked at)."""
    if stat.S_ISLNK(info.st_mode):
        return False
    need = 0o050 if stat.S_ISDIR(info.st_mode) else 0o040
    return info.st_gid != gid or info.st_mode & need != need


def shell_word(text):
    """text as one word for a POSIX shell, for a command a message tells the user to run (shlex is loaded only
    then: most runs never need it)."""
    import shlex
    return shlex.quote(text)


def group_problem(path, share):
    """A sentence when the group an environment in a shared folder is shared with cannot use it, else None.

    Looks at the folder, its settings, its bin folder, its site-packages and what these hold at their top (a
    few lookups, no walk): where one is closed to the group, colleagues get 'Permission denied', or pip list
    fails on a package they cannot read."""
    gid = share[0]
    looked = [path, os.path.join(path, "pyvenv.cfg"), os.path.join(path, "conda-meta"), os.path.join(path, "bin")]
    folders = [os.path.join(path, "bin")]
    for _, lib in lib_python_dirs(path) if os.access(path, os.X_OK) else []:
        looked += [lib, os.path.join(lib, "site-packages")]
        folders.append(os.path.join(lib, "site-packages"))
    closed = None
    for one in looked:
        info = _lstat(one)
        if info is not None and _group_cannot_use(one, info, gid):
            closed = one
            break
    for folder in folders if closed is None else ():
        try:
            entries = list_dir(folder, ordered=False)
        except OSError:
            continue
        for entry in entries:
            info = _lstat(entry.path)
            if info is not None and _group_cannot_use(entry.path, info, gid):
                closed = entry.path
                break
        if closed is not None:
            break
    if closed is None:
        return None
    name, info = account_name(gid, group=True), os.lstat(closed)
    return ("This environment is in a folder shared with the group %s, but that group cannot use it: %s is "
            "not readable by the group (mode %s, group %s), so colleagues get 'Permission denied'. As its owner, "
            "run: chgrp -R %s %s && chmod -R g+rX %s (g+rwX to let them update it)."
            % (name, closed, oct(stat.S_IMODE(info.st_mode))[2:], account_name(info.st_gid, group=True),
               shell_word(name), shell_word(path), shell_word(path)))


def env_marker(folder, denied=None):
    """What makes folder an environment, as (kind, lstat of the marker) -- ("venv", pyvenv.cfg),
    ("conda", conda-meta), ("creating", None) for one EnvDesk is building -- or None.

    A pyvenv.cfg that is not a regular file (a pipe, a dangling link ...) still
    makes an environment: it is then listed as broken, saying why. The lstat is
    kept: it tells a listing whether the environment changed since it was cached.
    `denied`: a list the folder is added to when this user may not look inside it (permission denied).
    """
    try:
        info = os.lstat(os.path.join(folder, "pyvenv.cfg"))
    except OSError as exc:
        info = None
        if denied is not None and exc.errno == errno.EACCES:
            denied.append(folder)
            return None
    if info is not None and not stat.S_ISDIR(info.st_mode):
        return ("venv", info)
    return conda_marker(folder) or (
        ("creating", None) if os.path.isfile(os.path.join(folder, ENVDESK_DIR, CREATING_MARK)) else None)


def conda_marker(folder):
    """("conda", stat of its conda-meta folder) for a conda prefix, else None."""
    try:
        info = os.stat(os.path.join(folder, "conda-meta"))
    except OSError:
        return None
    return ("conda", info) if stat.S_ISDIR(info.st_mode) else None


def is_env(folder):
    """True if folder is a Python environment (venv-like or conda), or one EnvDesk is building."""
    return env_marker(folder) is not None


def is_conda_base(prefix):
    """True for a conda root install (it has envs/ or condabin/)."""
    return (os.path.isdir(os.path.join(prefix, "envs"))
            or os.path.isdir(os.path.join(prefix, "condabin")))


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

def _as_number(value, default, cast):
    """cast(value) if it is a usable number, else default."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return cast(value)


def _as_str_list(value):
    """A list of strings from a str or list value, else None."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [item for item in value if isinstance(item, str) and item]
    return None


def read_config(config):
    """Fill in defaults and coerce types of the caller's config dict."""
    config = config if isinstance(config, dict) else {}
    roots = _as_str_list(config.get("roots"))
    paths = _as_str_list(config.get("paths"))
    conda = config.get("conda", True)
    return {
        "roots": DEFAULT_ROOTS if roots is None else roots,
        "max_depth": max(0, _as_number(config.get("max_depth"), DEFAULT_MAX_DEPTH, int)),
        "max_envs": max(0, _as_number(config.get("max_envs"), DEFAULT_MAX_ENVS, int)),
        "time_budget": _as_number(config.get("time_budget"), DEFAULT_TIME_BUDGET, float),
        "env_time_budget": _as_number(config.get("env_time_budget"), DEFAULT_ENV_TIME_BUDGET, float),
        "conda": conda if isinstance(conda, bool) else True,
        "paths": paths,
        "names": _as_str_list(config.get("names")),
        "settled": config.get("settled", True) is not False,
        "light": config.get("light") is True,
        "usage": config.get("usage") is True,
        "space": config.get("space") is True,
        "health": config.get("health") is True,
        "owners_of": _as_str_list(config.get("owners_of")),   # see others_packages
        "cache": (config["cache"] if isinstance(config.get("cache"), str) and config["cache"]
                  else None if config.get("cache") is False else default_cache_file()),
    }


# ---------------------------------------------------------------------------
# Discovery
# ---------------------------------------------------------------------------

class Found(object):
    """Environments found so far: deduplicated, bounded, with errors."""

    def __init__(self, max_envs, deadline):
        self.max_envs = max_envs
        self.deadline = deadline
        self.items = []          # (path, name, root)
        self.seen = set()        # realpaths
        self.errors = []
        self.truncated = False

    def stop(self):
        """True when discovery must stop (full or out of time)."""
        if self.truncated:
            return True
        if self.deadline.expired():
            self.truncated = True
        return self.truncated

    def add(self, path, name, root, marker=None):
        """Record one environment unless already seen; False when full.

        The same environment reached through a link is the same marker file (its inode), so it is
        recognised without resolving every component of its path (one lookup each).
        """
        info = marker[1] if marker else None
        seen = ("inode", info.st_dev, info.st_ino) if info is not None else os.path.realpath(path)
        if seen in self.seen:
            return True
        if len(self.items) >= self.max_envs:
            self.truncated = True
            return False
        self.seen.add(seen)
        self.items.append((path, name, root, marker))
        return True

    def error(self, path, message):
        """Record a problem not tied to one environment."""
        self.errors.append({"path": path, "error": message})

    def denied(self, path):
        """Record a folder this user may not look inside, with whose it is: in a shared folder, most often a
        colleague's environment made private, which the listing would otherwise leave out without a word."""
        info = _lstat(path)
        owner = account_name(info.st_uid) if info is not None else None
        self.errors.append({"path": path, "denied": True, "owner": owner,
                            "error": "EnvDesk could not look inside this folder (permission denied%s)."
                                     % (", owned by %s" % owner if owner else "")})


def env_name(folder, root):
    """Name of an env found under root: relative path with '/', or basename."""
    if folder == root:
        return os.path.basename(folder) or folder
    return os.path.relpath(folder, root).replace(os.sep, "/")


def search_root(root, max_depth, found):
    """Find environments at root itself or up to max_depth folders below it."""
    if not os.path.exists(root):
        return
    if not os.path.isdir(root):
        found.error(root, "This search folder is a file, not a folder.")
        return
    _search_folder(root, root, 0, max_depth, found)


def _search_folder(folder, root, depth, max_depth, found):
    """Visit one folder: add it if an env, else look at its subfolders."""
    if found.stop():
        return
    denied = []
    marker = env_marker(folder, denied)
    if marker:
        found.add(folder, env_name(folder, root), root, marker)
        return
    if denied:  # not searchable for this user: whatever it holds is not listed, and the listing says so
        found.denied(folder)
        return
    if depth >= max_depth or os.path.basename(folder) in SKIP_DESCEND:
        return
    try:
        entries = list_dir(folder)
    except OSError as exc:
        if exc.errno == errno.EACCES:
            found.denied(folder)
        else:
            found.error(folder, "EnvDesk could not look inside this folder (%s)." % describe_os_error(exc))
        return
    for entry in entries:
        if found.stop():
            return
        if is_dir_entry(entry):
            _search_folder(os.path.join(folder, entry.name), root,
                           depth + 1, max_depth, found)


def _unquote(text):
    """Strip surrounding quotes and spaces from a YAML scalar."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return text.strip()


def _strip_yaml_comment(line):
    """Remove a '# comment' that starts a line or follows a space."""
    return re.compile(r"(^|\s)#.*$").sub("", line).rstrip()


def parse_condarc_envs_dirs(text):
    """envs_dirs entries of a condarc: block list or [flow, list] form."""
    dirs = []
    in_block = False
    for raw in text.splitlines():
        line = _strip_yaml_comment(raw)
        if not line.strip():
            continue
        if in_block:
            item = re.compile(r"^\s*-\s+(.*)$").match(line) or re.compile(r"^\s*-$").match(line)
            if item:
                value = _unquote(item.group(1)) if item.groups() else ""
                if value:
                    dirs.append(value)
                continue
            in_block = False
        key = re.compile(r"^envs_dirs\s*:\s*(.*)$").match(line)
        if not key:
            continue
        rest = key.group(1).strip()
        if not rest:
            in_block = True
        elif rest.startswith("[") and rest.endswith("]"):
            dirs.extend(v for v in (_unquote(p) for p in rest[1:-1].split(",")) if v)
        else:
            dirs.append(_unquote(rest))
    return dirs


def condarc_files():
    """condarc files conda would read, in conda's order (user ones last)."""
    files = list(SYSTEM_CONDARCS)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    if xdg:
        files += [os.path.join(xdg, "conda", ".condarc"),
                  os.path.join(xdg, "conda", "condarc")]
    files += USER_CONDARCS
    if os.environ.get("CONDARC"):
        files.append(os.environ["CONDARC"])
    seen = []
    for name in files:
        path = expand(name)
        if path not in seen:
            seen.append(path)
    return seen


def conda_envs_dirs(found):
    """Folders whose children are conda envs: ~/.conda/envs, $CONDA_ENVS_PATH, condarc."""
    dirs = ["~/.conda/envs"]
    for var in ("CONDA_ENVS_PATH", "CONDA_ENVS_DIRS"):
        dirs += [d for d in os.environ.get(var, "").split(os.pathsep) if d.strip()]
    for rc in condarc_files():
        if not os.path.isfile(rc):
            continue
        try:
            dirs += parse_condarc_envs_dirs(read_text(rc, errors="replace"))
        except OSError as exc:
            found.error(rc, "EnvDesk could not read this conda settings file (%s)."
                        % describe_os_error(exc))
    return [expand(d, variables=True) for d in dirs]


def conda_listed_prefixes(found):
    """Prefixes listed in ~/.conda/environments.txt (read only)."""
    listing = expand("~/.conda/environments.txt")
    if not os.path.isfile(listing):
        return []
    try:
        text = read_text(listing, errors="surrogateescape")
    except OSError as exc:
        found.error(listing, "EnvDesk could not read conda's list of environments (%s)."
                    % describe_os_error(exc))
        return []
    lines = (line.strip() for line in text.splitlines())
    return [expand(line) for line in lines if line and not line.startswith("#")]


def _add_conda_prefix(prefix, found):
    """Add one conda prefix if it (still) exists; False when full."""
    marker = conda_marker(prefix)
    if marker is None:
        return True
    name = "base" if is_conda_base(prefix) else os.path.basename(prefix)
    return found.add(prefix, name, "conda", marker)


def search_conda(found):
    """Find conda envs: environments.txt, then every envs dir's children."""
    listed = conda_listed_prefixes(found)
    envs_dirs = conda_envs_dirs(found)
    for prefix in listed:
        if found.stop() or not _add_conda_prefix(prefix, found):
            return
        if is_conda_base(prefix):
            envs_dirs.append(os.path.join(prefix, "envs"))
    done = set()
    for envs_dir in envs_dirs:
        if envs_dir in done or not os.path.isdir(envs_dir):
            continue
        done.add(envs_dir)
        try:
            entries = list_dir(envs_dir)
        except OSError as exc:
            found.error(envs_dir, "EnvDesk could not look inside this conda envs folder (%s)."
                        % describe_os_error(exc))
            continue
        for entry in entries:
            if found.stop():
                return
            if is_dir_entry(entry) and not _add_conda_prefix(
                    os.path.join(envs_dir, entry.name), found):
                return


def search_paths(paths, found):
    """'paths' mode: just the given folders, each named by its basename."""
    for raw in paths:
        if found.stop():
            return
        path = expand(raw)
        if not os.path.isdir(path):
            found.error(path, "There is no folder here." if not os.path.exists(path)
                        else "This is a file, not an environment folder.")
            continue
        marker = env_marker(path)
        if not marker:
            found.error(path, "This folder is not a Python environment "
                              "(it has no pyvenv.cfg and no conda-meta folder).")
        elif not found.add(path, os.path.basename(path) or path, os.path.dirname(path), marker):
            return


def discover(cfg, deadline):
    """All environments to read, as a Found."""
    found = Found(cfg["max_envs"], deadline)
    if cfg["paths"] is not None:
        search_paths(cfg["paths"], found)
        return found
    for root in cfg["roots"]:
        if found.stop():
            break
        folder = expand(root, variables=True)
        try:
            search_root(folder, cfg["max_depth"], found)
        except Exception as exc:  # said about that folder: the environments of the others are still listed
            found.error(folder, "EnvDesk could not look in this folder (%s: %s)." % (exc.__class__.__name__, exc))
    if cfg["conda"] and not found.stop():
        search_conda(found)
    return found


# ---------------------------------------------------------------------------
# Reading packages (dist-info / egg-info / egg-link)
# ---------------------------------------------------------------------------

def read_headers(path, wanted=("name", "version"), limit=MAX_HEADER_BYTES, listed_regular=False, optional=()):
    """The wanted email-style headers of a METADATA/PKG-INFO file (lowercased keys), and the optional ones
    where they come before the headers end.

    Stops at the first blank line (the description body is never read) or as
    soon as all wanted (and optional) headers were seen; reads at most limit bytes (RefusedFile
    when the wanted headers are not in them). Once the wanted ones are seen, a line that cannot be
    read or the limit only ends the search for the optional ones: they never make a file unreadable.
    """
    with open_regular(path, listed_regular) as handle:
        return _headers_in(handle, path, wanted, limit, optional)


def _headers_in(handle, path, wanted=("name", "version"), limit=MAX_HEADER_BYTES, optional=()):
    """read_headers of the file open as handle (path names it in what is said)."""
    found = {}
    left = limit
    looked_for = tuple(wanted) + tuple(optional)
    while True:
        raw = handle.readline(left) if left > 0 else b""
        left -= len(raw)
        have_wanted = all(key in found for key in wanted)
        if left <= 0 and not raw.endswith(b"\n") and handle.read(1):   # cut at the limit
            if have_wanted:
                break
            raise RefusedFile("%s does not give its %s in its first %s, so EnvDesk stopped "
                              "reading it" % (path, " and ".join(w.title() for w in wanted),
                                              _size_text(limit)))
        if not raw:
            break
        try:
            line = raw.decode("utf-8")      # line by line: a bad body is never decoded
        except UnicodeDecodeError:
            if have_wanted:
                break
            raise
        if not line.strip():
            break
        if line[0] in " \t":
            continue
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key in looked_for and key not in found:
            found[key] = value.strip()
            if len(found) == len(looked_for):
                break
    return found


def make_package(name, version, installer=None, requested=False, url=None, editable=False, requires_python=None):
    """One package object of the answer (its Requires-Python only where it states one)."""
    package = {"name": name, "version": version, "installer": installer,
               "requested": bool(requested), "url": url, "editable": bool(editable)}
    if requires_python:
        package["requires_python"] = requires_python
    return package


class IncompleteMetadata(ValueError):
    """A dist-info or egg-info folder without the metadata that names its package (no METADATA or PKG-INFO, or
    one without a Name or Version), as an install stopped midway leaves it: pip skips it ('invalid metadata'),
    uv pip check calls it 'broken or incomplete', and uv then fails to change the environment."""


class UnreadableMetadata(OSError):
    """A package folder whose metadata (METADATA or PKG-INFO, or the folder itself) Python cannot read either: no
    permission, or a named pipe, a folder or a device in the file's place. importlib.metadata finds no Name there
    (or blocks on the pipe), so pip and uv do not see the package. `advice` says how to mend it."""

    def __init__(self, folder, path, exc):
        reason = str(exc) if isinstance(exc, RefusedFile) else "%s: %s" % (path, describe_os_error(exc))
        OSError.__init__(self, getattr(exc, "errno", None) or errno.EIO, reason)
        self.folder, self.reason = folder, reason
        stem = os.path.basename(folder).rpartition(".")[0]
        name, _, version = stem.rpartition("-")
        package = ("%s %s" % (name, version)) if name else stem
        if getattr(exc, "errno", None) in (errno.EACCES, errno.EPERM):
            self.advice = ("Make it readable (chmod -R u+rX %s, as its owner), or install %s again."
                           % (folder, package))
        else:
            self.advice = "Remove it (rm -r %s), then install %s again." % (path, package)

    def __str__(self):
        return self.reason


def read_metadata(folder, path, listed_regular=False, optional=()):
    """read_headers of a package's METADATA or PKG-INFO at path, in its folder: IncompleteMetadata where there is
    none, UnreadableMetadata where it cannot be opened as a file (never blocking on a named pipe: see
    open_regular). A file too long or not text is a ValueError or RefusedFile as for read_headers."""
    try:
        handle = open_regular(path, listed_regular)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise IncompleteMetadata("it has no %s file" % os.path.basename(path))
        raise UnreadableMetadata(folder, path, exc)
    with handle:
        return _headers_in(handle, path, optional=optional)


def unreadable_packages_text(found):
    """The sentences that say an environment holds packages whose metadata cannot be read (UnreadableMetadata
    as the listing keeps them: {"path", "reason", "advice"})."""
    return " ".join("Python cannot read the metadata of %s (%s), so pip and uv do not see that package. %s"
                    % (os.path.basename(entry["path"]), entry["reason"], entry["advice"]) for entry in found)


def _listed_regular(entry):
    """Whether a folder listing says entry is a regular file and not a link, without asking the file
    system again (where the listing carries the file type, as on Linux's usual file systems)."""
    try:
        return entry.is_file(follow_symlinks=False)
    except OSError:
        return False


def read_dist_info(folder):
    """Package object of one *.dist-info folder; raises ValueError/OSError if bad."""
    try:
        files = dict((entry.name, entry) for entry in list_dir(folder))
    except RefusedFile:
        raise
    except OSError as exc:
        raise UnreadableMetadata(folder, folder, exc)
    if "METADATA" not in files:
        raise IncompleteMetadata("it has no METADATA file")
    # Requires-Python too: uv installs a wheel from a folder whatever Python it states (astral-sh/uv#5475), so an
    # environment's details say which packages were made for another Python
    headers = read_metadata(folder, os.path.join(folder, "METADATA"), _listed_regular(files["METADATA"]),
                            optional=("requires-python",))
    if not headers.get("name") or not headers.get("version"):
        raise IncompleteMetadata("its METADATA has no Name or Version")
    installer = None
    if "INSTALLER" in files:
        lines = read_text(os.path.join(folder, "INSTALLER"), errors="replace",
                          listed_regular=_listed_regular(files["INSTALLER"])).splitlines()
        installer = lines[0].strip() if lines and lines[0].strip() else None
    url, editable = None, False
    if "direct_url.json" in files:
        url, editable = read_direct_url(os.path.join(folder, "direct_url.json"))
    return make_package(headers["name"], headers["version"], installer,
                        "REQUESTED" in files, url, editable, headers.get("requires-python"))


def read_dist_info_light(folder):
    """Name and version of one *.dist-info folder from its METADATA alone: one lookup instead of three.

    A listing of every environment needs no more; the installer, REQUESTED and direct_url.json are read
    with an environment's details (read_dist_info).
    """
    headers = read_metadata(folder, os.path.join(folder, "METADATA"))
    if not headers.get("name") or not headers.get("version"):
        raise IncompleteMetadata("its METADATA has no Name or Version")
    return make_package(headers["name"], headers["version"])


def dist_info_name(entry_name):
    """The normalized distribution name a *.dist-info folder's own name gives ('name-version.dist-info')."""
    stem = entry_name[:-len(".dist-info")]
    return normalize_name(stem.rpartition("-")[0] or stem)


def read_direct_url(path):
    """(url, editable) from a PEP 610 direct_url.json, written as pip freeze writes the reference.

    A VCS install becomes 'git+URL@COMMIT' (the exact commit, not the branch), an archive keeps
    its hash fragment, a subdirectory its fragment.
    """
    data = read_json(path, MAX_TEXT_BYTES)
    if not isinstance(data, dict):
        raise ValueError("direct_url.json is not a JSON object")
    url = redact_url(data.get("url"))
    dir_info, vcs_info, archive_info = data.get("dir_info"), data.get("vcs_info"), data.get("archive_info")
    editable = isinstance(dir_info, dict) and dir_info.get("editable") is True
    if url and isinstance(vcs_info, dict) and isinstance(vcs_info.get("vcs"), str):
        url = vcs_info["vcs"] + "+" + url
        if isinstance(vcs_info.get("commit_id"), str):
            url += "@" + vcs_info["commit_id"]
    fragments = []
    if url and isinstance(archive_info, dict) and isinstance(archive_info.get("hash"), str):
        fragments.append(archive_info["hash"])  # pip writes 'hash' (and 'hashes'); freeze shows 'hash'

    if url and isinstance(data.get("subdirectory"), str):
        fragments.append("subdirectory=" + data["subdirectory"])
    if url and fragments:
        url += "#" + "&".join(fragments)
    return url, editable


def _name_version_from_filename(stem):
    """('foo', '1.0') from 'foo-1.0-py3.11' (egg naming); version may be ''."""
    parts = stem.split("-")
    return parts[0], (parts[1] if len(parts) > 1 else "")


def read_egg_info(path, watched=None):
    """Package object of a *.egg-info folder (its PKG-INFO) or file; (PKG-INFO's path, its stat) is added to
    `watched` when given. Its name and version are PKG-INFO's, as importlib.metadata reads them: pip skips one
    without a Name ("invalid metadata entry 'name'") and fails on one without a Version, so ValueError then, as
    for a dist-info, and the folder's own name is no stand-in."""
    pkg_info = os.path.join(path, "PKG-INFO") if os.path.isdir(path) else path
    info = _stat(pkg_info)
    if info is None or not stat.S_ISREG(info.st_mode):
        raise IncompleteMetadata("it has no PKG-INFO file")
    if watched is not None:
        watched.append((pkg_info, info))
    headers = read_metadata(path, pkg_info) if pkg_info != path else read_headers(pkg_info)
    if not headers.get("name") or not headers.get("version"):
        raise IncompleteMetadata("its PKG-INFO has no Name or Version")
    return make_package(headers["name"], headers["version"])


def read_egg(path):
    """Package object of an easy_install *.egg (a folder with EGG-INFO/PKG-INFO, or a zip of one)."""
    stem = os.path.basename(path)[:-len(".egg")]
    name, version = _name_version_from_filename(stem)
    if os.path.isdir(path):
        pkg_info = os.path.join(path, "EGG-INFO", "PKG-INFO")
        if os.path.isfile(pkg_info):
            headers = read_headers(pkg_info)
            name, version = headers.get("name") or name, headers.get("version") or version
    elif not os.path.isfile(path) or os.path.getsize(path) > 50 * 1024 * 1024:
        raise ValueError("not a regular egg file")
    if not name or not version:
        raise ValueError("it has no name or version")
    return make_package(name, version)


def read_egg_link(path, watched=None):
    """Package object of a legacy 'setup.py develop' *.egg-link (editable). Its project's PKG-INFO, with its
    stat, is added to `watched`: `setup.py egg_info` rewrites it in place after a version bump, which changes
    no folder the listing cache watches."""
    name = os.path.basename(path)[:-len(".egg-link")]
    version = ""
    lines = read_text(path, errors="surrogateescape").splitlines()
    target = lines[0].strip() if lines else ""
    if target and os.path.isdir(target):
        for entry in list_dir(target):
            if entry.name.endswith(".egg-info"):
                package = read_egg_info(entry.path, watched)
                name, version = package["name"], package["version"]
                break
    url = "file://" + target if target else None
    return make_package(name, version, url=url, editable=True)


IMPORT_ONLY_PTH = frozenset(("distutils-precedence.pth", "_virtualenv.pth"))
"""*.pth files that hold one 'import' line by construction, which adds no folder to sys.path: setuptools' wheel
installs the first (importing _distutils_hack), virtualenv writes the second ('import _virtualenv'). Nearly
every environment has one; the listing neither reads nor watches them."""


def scan_site_packages(folder, warnings, skip=None, light=False, conda_copies=None, pth_files=None, known=(),
                       watched=None, incomplete=None, unreadable=None):
    """Packages installed in one site-packages folder (raises OSError if unlistable).

    skip(package) -> True drops a package (used for conda's own packages); a dist-info folder that
    conda_copies (a CondaCopies) says is conda's own copy is dropped unread, and so is one whose file name
    names a project in `known` (normalized names found earlier on the path). `light`: dist-info folders
    give only name and version. A package whose files are bad is left out with a warning. `pth_files`: a
    list the paths of the folder's *.pth files are added to; `watched`, the files read outside it whose
    stats tell a change (see read_egg_link). `incomplete`: a list the paths of the dist-info and egg-info
    folders without a readable name and version (see INCOMPLETE_PACKAGES) are added to, instead of a warning;
    `unreadable`, {"path", "reason", "advice"} of each whose metadata Python cannot read (UnreadableMetadata).
    """
    readers = ((".dist-info", read_dist_info_light if light else read_dist_info), (".egg-info", read_egg_info),
               (".egg-link", read_egg_link), (".egg", read_egg))
    packages = []
    # as importlib.metadata (so pip) finds them, which takes the first of a name: its Lookup keeps a folder's
    # dist-info and egg-info folders and files together, in the file system's order (os.listdir's); pip then
    # adds the eggs and egg-links, which importlib.metadata does not see
    entries = sorted(list_dir(folder, ordered=False),
                     key=lambda entry: not entry.name.endswith((".dist-info", ".egg-info")))
    present = frozenset(entry.name for entry in entries) if conda_copies is not None else ()
    for entry in entries:
        if (pth_files is not None and entry.name.endswith(".pth") and not entry.name.startswith(".")
                and entry.name not in IMPORT_ONLY_PTH):
            pth_files.append(entry.path)
        for suffix, reader in readers:
            if entry.name.endswith(suffix):
                break
        else:
            continue
        if suffix == ".dist-info" and conda_copies is not None and conda_copies.owns(entry.name, present):
            continue
        if known and entry_project(entry.name, suffix) in known:
            continue
        try:
            package = read_egg_link(entry.path, watched) if suffix == ".egg-link" else reader(entry.path)
        except IncompleteMetadata as exc:
            if incomplete is not None:
                incomplete.append(entry.path)
            else:
                warnings.append("Skipped %s: EnvDesk could not read it (%s)." % (entry.name, _short_reason(exc)))
            continue
        except UnreadableMetadata as exc:
            if unreadable is not None:
                unreadable.append({"path": entry.path, "reason": exc.reason, "advice": exc.advice})
            else:
                warnings.append("Skipped %s: EnvDesk could not read it (%s)." % (entry.name, _short_reason(exc)))
            continue
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            warnings.append("Skipped %s: EnvDesk could not read it (%s)."
                            % (entry.name, _short_reason(exc)))
            continue
        if skip is None or not skip(package):
            packages.append(package)
    return packages


def entry_project(entry_name, suffix):
    """The normalized project name a site-packages entry's own name gives (its dist-info, egg-info, egg or
    egg-link name), without reading it."""
    if suffix == ".dist-info":
        return dist_info_name(entry_name)
    return normalize_name(_name_version_from_filename(entry_name[:-len(suffix)])[0])


def pth_folders(pth_files, known, watched, warnings):
    """The folders the *.pth files of site-packages add to sys.path, in the order site.addpackage adds them:
    files sorted by name, each line a folder (relative to the file's folder, or absolute) unless it is blank,
    a comment, an 'import' line or holds a NUL byte; only those that exist and are not in `known` (normalized
    paths already on the path, which it extends). Each comes with its stat (taken before it is listed; the
    listing cache watches it). A .pth file that cannot be read adds nothing, as site skips it.

    `watched` gets what else tells a change: each .pth file's stat (taken as it is opened, before it is read:
    conda develop edits conda.pth in place, which changes no folder) and each line's path that is not a folder
    with its stat, or ABSENT (no lookup more than site's own: a folder made there later is seen). A .pth file
    larger than MAX_TEXT_BYTES is not read, with a warning (site reads it whatever its size). The environment's
    time budget is checked before each line's stat (a hung mount can hold each for long)."""
    found = []
    for path in sorted(pth_files, key=os.path.basename):
        try:
            with open_regular(path) as handle:
                info = os.fstat(handle.fileno())
                watched.append((path, info))
                data = b"" if info.st_size > MAX_TEXT_BYTES else handle.read(MAX_TEXT_BYTES + 1)
            if info.st_size > MAX_TEXT_BYTES or len(data) > MAX_TEXT_BYTES:
                warnings.append("EnvDesk did not read %s, which is larger than %s (the most it reads of a text "
                                "file): packages in folders it puts on Python's path are not listed."
                                % (path, _size_text(MAX_TEXT_BYTES)))
                continue
        except OSError:
            info = _stat(path)
            watched.append((path, ABSENT if info is None else info))
            continue
        lines = data.decode("utf-8", "replace").lstrip("\ufeff").splitlines()
        for line in lines:
            if not line.strip() or line.startswith(("#", "import ", "import\t")) or "\0" in line:
                continue    # a NUL byte: os.path.exists, which site asks, says no (no path can hold one)
            folder = os.path.abspath(os.path.join(os.path.dirname(path), line.rstrip()))
            if folder in known:
                continue
            known.add(folder)
            check_time(folder)
            info = _stat(folder)
            if info is not None and stat.S_ISDIR(info.st_mode):
                found.append((folder, info))
            else:
                watched.append((folder, ABSENT if info is None else info))
    return found


def _short_reason(exc):
    """Plain reason text for a reading error."""
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    if isinstance(exc, UnicodeDecodeError):
        return "the file is not valid text"
    return str(exc) or exc.__class__.__name__


def merge_packages(packages, warnings):
    """Drop duplicates (same normalized name; first wins) and sort by name."""
    by_name = {}
    for package in packages:
        key = normalize_name(package["name"])
        if key in by_name:
            warnings.append("%s is installed twice (versions %s and %s); Python and pip use %s, the one "
                            "they find first." % (package["name"], by_name[key]["version"], package["version"],
                                                   by_name[key]["version"]))
            continue
        by_name[key] = package
    return sorted(by_name.values(), key=lambda p: (p["name"].lower(), p["name"]))


# ---------------------------------------------------------------------------
# Reading one environment
# ---------------------------------------------------------------------------

def blank_env(path, name, root):
    """An environment object with every field at its default."""
    return {
        "name": name, "path": path, "root": root, "kind": None,
        "python": None, "system_site_packages": False, "created_by": None,
        "packages": [], "package_count": 0, "modules": [], "envdesk": None,
        "conda_requested": [], "channels": [], "state": STATE_OK, "error": None,
        "warnings": [], "detail": "full", "incomplete_packages": [], "unreadable_packages": [],
    }


def read_pyvenv_cfg(path, errors="strict"):
    """key -> value of a pyvenv.cfg (keys lowercased); UnicodeDecodeError unless it is UTF-8, as Python's site
    reads it, unless `errors` says otherwise."""
    values = {}
    for line in read_text(path, errors=errors).splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            values[key.strip().lower()] = value.strip()
    return values


def lib_python_dirs(prefix):
    """[(X.Y, folder)] of prefix/lib/pythonX.Y folders."""
    lib = os.path.join(prefix, "lib")
    if not os.path.isdir(lib):
        return []
    result = []
    for entry in list_dir(lib):
        match = re.compile(_LIB_PY_RE).match(entry.name)
        if match and is_dir_entry(entry):
            result.append(("%s.%s" % match.groups(), entry.path))
    return result


def site_packages_dirs(prefix, python, warnings):
    """Existing site-packages folders of an env (the one matching python first); None, with a warning, when its
    Python's X.Y is known and only other Pythons' lib/pythonX.Y folders are there: its python never looks in
    those (pip and uv list nothing there, and their packages cannot be imported)."""
    libs = lib_python_dirs(prefix)
    short = ".".join(python.split(".")[:2]) if python else None
    matching = [path for version, path in libs if version == short]
    if short and libs and not matching:
        warnings.append("This environment's Python is %s, but its lib folder holds packages only for Python %s "
                        "(%s), which its python does not look in: they are not listed, and cannot be imported."
                        % (short, ", ".join(version for version, _ in libs), ", ".join(path for _, path in libs)))
        return None
    candidates = [os.path.join(p, "site-packages") for p in (matching or [p for _, p in libs])]
    candidates.append(os.path.join(prefix, "Lib", "site-packages"))
    return [path for path in candidates if os.path.isdir(path)]


VENV_PYTHONS = ["bin/python", "bin/python3", "Scripts/python.exe"]
CONDA_PYTHONS = ["bin/python", "bin/python3", "python.exe"]
"""Where an environment's python program is, the one `python` runs first."""


def check_python_program(prefix, names):
    """A problem sentence if the env's python program is missing or dangling. The first name is the program
    activating the environment runs as `python`: where its folder is there, the others do not stand in for it."""
    paths = [os.path.join(prefix, name) for name in names]
    present = [path for path in paths if os.path.exists(path)]
    if present and paths[0] not in present and os.path.isdir(os.path.dirname(paths[0])):
        return ("The environment's python program (%s) is missing, though %s is still there, so 'python' run "
                "in it is not this environment's." % (paths[0], present[0]))
    if present:
        return None
    for path in paths:
        if os.path.islink(path):
            try:
                target = os.readlink(path)
            except OSError:
                target = "somewhere"
            return ("The environment's python program (%s) points to %s, which no "
                    "longer exists, so the environment cannot run." % (path, target))
    return ("The environment has no python program (%s is missing), so it cannot run."
            % paths[0])


def envdesk_marks(path):
    """The names in an environment's .envdesk folder (its notes, marks and snapshots), in one lookup."""
    try:
        return frozenset(entry.name for entry in list_dir(os.path.join(path, ENVDESK_DIR)))
    except OSError:
        return frozenset()


def read_envdesk_meta(env, marks):
    """Fill envdesk/modules from <env>/.envdesk/meta.json when present (marks: envdesk_marks)."""
    path = os.path.join(env["path"], ENVDESK_DIR, META_FILE)
    if META_FILE not in marks:
        return
    try:
        meta = read_json(path, MAX_RECORD_BYTES)
    except (OSError, ValueError) as exc:
        env["warnings"].append("EnvDesk's own notes for this environment (%s) could "
                               "not be read (%s)." % (path, _short_reason(exc)))
        return
    if not isinstance(meta, dict):
        env["warnings"].append("EnvDesk's own notes for this environment are not valid.")
        return
    env["envdesk"] = meta
    modules = meta.get("modules")
    env["modules"] = list(modules) if isinstance(modules, list) else []


_HOMES = {}     # base Python folder -> whether it is there, for one run (many environments share one)


def home_problem(home):
    """The problem sentence when the Python an environment was made from (pyvenv.cfg's home) is gone."""
    if home not in _HOMES:
        _HOMES[home] = os.path.isdir(home)
    if _HOMES[home]:
        return None
    return ("The Python this environment was made from (%s) is no longer "
            "there, so the environment cannot run. It has to be rebuilt." % home)


def venv_settings(prefix, problems):
    """The settings of prefix's pyvenv.cfg, or None (a problem said) when it cannot be read. One that is not
    UTF-8 text is read all the same, but is a problem: Python's site reads it as UTF-8 as it starts, so the
    environment's python stops there."""
    path = os.path.join(prefix, "pyvenv.cfg")
    try:
        return read_pyvenv_cfg(path)
    except UnicodeDecodeError:
        problems.append("This environment's settings file (%s) is not valid UTF-8 text, so its python cannot "
                        "start: Python reads that file as UTF-8 as it starts. Rewrite it, or create the "
                        "environment again." % path)
        return read_pyvenv_cfg(path, errors="surrogateescape")
    except (OSError, ValueError) as exc:
        problems.append("EnvDesk could not read this environment's settings file "
                        "pyvenv.cfg (%s)." % _short_reason(exc))
        return None


def read_venv(env, problems, light=False):
    """Fill env from a venv/virtualenv/uv environment (pyvenv.cfg); `light`: packages' names and versions."""
    prefix = env["path"]
    cfg = venv_settings(prefix, problems)
    if cfg is None:
        env["kind"] = "venv"
        return
    if cfg.get("uv"):
        env["kind"], env["created_by"] = "uv", "uv " + cfg["uv"]
    elif cfg.get("virtualenv"):
        env["kind"], env["created_by"] = "virtualenv", "virtualenv " + cfg["virtualenv"]
    else:
        env["kind"] = "venv"
    env["python"] = (normalize_version(cfg.get("version"))
                     or normalize_version(cfg.get("version_info")))
    env["system_site_packages"] = cfg.get("include-system-site-packages", "").lower() == "true"
    if not env["python"]:
        libs = lib_python_dirs(prefix)
        env["python"] = libs[0][0] if libs else None
    home = cfg.get("home")
    env["_home"] = home
    if home and home_problem(home):
        problems.append(home_problem(home))
    elif not home:
        env["warnings"].append("This environment's pyvenv.cfg does not say which Python "
                               "it was made from (no 'home' line).")
    problem = check_python_program(prefix, VENV_PYTHONS)
    if problem:
        problems.append(problem)
    env["detail"] = "light" if light else "full"
    read_site_packages(env, problems, site_packages_dirs(prefix, env["python"], env["warnings"]), light=light)


def read_site_packages(env, problems, folders, skip=None, light=False, conda_copies=None):
    """Add the packages of every site-packages folder to env (problem if none). Each folder's stat is taken
    just before it is listed (`_site_stats`): the listing cache trusts what was seen after it, never before.
    folders None: only other Pythons' folders are there (see site_packages_dirs); nothing is read, and the
    environment is never cached (no stat tells when its own folder comes)."""
    if folders is None:
        env["_sites"], env["_site_stats"] = [os.path.join(env["path"], "lib")], [None]
        return
    env["_sites"] = list(folders)
    env["_site_stats"] = []
    if not folders:
        problems.append("This environment has no site-packages folder, so no packages "
                        "can be installed in it.")
        return
    pth_files, watched = [], []
    for folder in folders:
        env["_site_stats"].append(_stat(folder))
        try:
            env["packages"].extend(scan_site_packages(folder, env["warnings"], skip, light, conda_copies, pth_files,
                                                      watched=watched, incomplete=env["incomplete_packages"],
                                                      unreadable=env["unreadable_packages"]))
        except OSError as exc:
            problems.append("EnvDesk could not list the installed packages in %s (%s)."
                            % (folder, describe_os_error(exc)))
    env["_sites"].extend(path for path, _ in watched)
    env["_site_stats"].extend(info for _, info in watched)
    if pth_files:
        read_pth_folders(env, pth_files, skip, light)


def read_pth_folders(env, pth_files, skip, light):
    """Add to env the packages in the folders its *.pth files put on sys.path (see pth_folders), as pip list
    and importlib.metadata find them: after site-packages, a project found earlier hides a later one (not
    a package installed twice: the one found first is the one imported). Only an environment that has
    such lines pays for them: a stat and a listing of each folder."""
    known = set(os.path.abspath(folder) for folder in env["_sites"])
    names = set(normalize_name(package["name"]) for package in env["packages"])
    watched = []
    for folder, info in pth_folders(pth_files, known, watched, env["warnings"]):
        env["_sites"].append(folder)
        env["_site_stats"].append(info)
        try:
            packages = scan_site_packages(folder, env["warnings"], skip, light, known=names)
        except OSError as exc:
            env["warnings"].append("EnvDesk could not list the packages in %s, which a .pth file of this "
                                   "environment puts on its path (%s)." % (folder, describe_os_error(exc)))
            continue
        fresh = [package for package in packages if normalize_name(package["name"]) not in names]
        names.update(normalize_name(package["name"]) for package in fresh)
        env["packages"].extend(fresh)
    env["_sites"].extend(path for path, _ in watched)
    env["_site_stats"].extend(info for _, info in watched)


def conda_channel_name(record):
    """Short channel name of a conda-meta record ('conda-forge', 'pkgs/main')."""
    channel = record.get("schannel") or record.get("channel")
    if not isinstance(channel, str) or not channel:
        return None
    channel = re.compile(r"/t/[^/]+/").sub("/", redact_url(channel)).rstrip("/")  # anaconda.org tokens
    parts = channel.split("/")
    if re.compile(_CONDA_SUBDIR_RE).match(parts[-1]) and len(parts) > 1:
        parts = parts[:-1]
    channel = "/".join(parts)
    match = re.compile(r"^https?://(?:conda\.anaconda\.org|repo\.anaconda\.com|"
                    r"repo\.continuum\.io)/(.+)$").match(channel)
    return match.group(1) if match else channel


def _read_record_head(path):
    """Fast path for one conda-meta record; None when the whole file must be parsed.

    Records are named <name>-<version>-<build>.json (neither version nor build
    may contain '-') and can be megabytes long (their file lists), but conda
    writes keys sorted, so "channel" is in the first few KB. Only that is read.
    """
    parts = os.path.basename(path)[:-len(".json")].rsplit("-", 2)
    if len(parts) != 3 or not all(parts):
        return None
    with open_regular(path) as handle:
        head = handle.read(RECORD_HEAD_BYTES).decode("utf-8", "replace")
    if not head.lstrip().startswith("{"):
        return None
    first = re.compile(_RECORD_INDENT_RE, re.M).search(head)
    top = first.group(1) if first else None
    keys = dict((key, value) for indent, key, value in re.compile(_RECORD_KEY_RE, re.M).findall(head)
                if indent == top)   # top-level keys only, never nested ones
    if "channel" not in keys and "schannel" not in keys:
        return None
    record = {"name": parts[0], "version": parts[1], "build": parts[2]}
    for key in ("channel", "schannel"):
        if key in keys:
            record[key] = keys[key]
    return record


def read_conda_record(path):
    """name, version, build and channel(s) of one conda-meta record."""
    record = _read_record_head(path)
    if record is None:
        record = read_json(path, MAX_RECORD_BYTES)
        if not isinstance(record, dict) or not record.get("name"):
            raise ValueError("it is not a package record")
    return record


def read_conda_records(meta_dir, warnings):
    """All conda-meta/*.json package records (a bad one is skipped with a warning)."""
    records = []
    for entry in list_dir(meta_dir):
        if not entry.name.endswith(".json"):
            continue
        try:
            record = read_conda_record(entry.path)
        except (OSError, ValueError) as exc:
            warnings.append("Skipped conda record %s: EnvDesk could not read it (%s)."
                            % (entry.name, _short_reason(exc)))
            continue
        record["_file"] = entry.path
        records.append(record)
    return records


_CONDA_ANCHOR_RE = r"(?:^|/)site-packages/[^/]+(?:\.dist-info/RECORD|\.egg-info/PKG-INFO|\.egg-info)$"


def conda_anchor(record_path):
    """The site-packages entry (a *.dist-info or *.egg-info) a conda record installed its Python package's
    metadata as, or None when it installed none: conda's 'anchor file', the shortest such path of its files."""
    record = read_json(record_path, MAX_JSON_BYTES)
    files = record.get("files") if isinstance(record, dict) else None
    matcher = re.compile(_CONDA_ANCHOR_RE).search
    anchors = sorted((path for path in files if isinstance(path, str) and matcher(path)), key=len) \
        if isinstance(files, list) else []
    return anchors[0].rpartition("site-packages/")[2].partition("/")[0] if anchors else None


class CondaCopies(object):
    """Which dist-info folders of a conda prefix's site-packages are conda's own copies of its packages.

    conda's rule (its pypi prefix-data loader, load_site_packages): a record whose anchor (the dist-info or
    egg-info it installed) is no longer in site-packages was clobbered, by a pip install over it say, and the
    package found there is listed instead. A dist-info named after the record's own name and version is its
    copy at once; only one of another version costs reading the record's file list. A record with no anchor
    (conda-forge's ninja, say) is not clobbered in conda's sense, but a dist-info of its name is then not
    conda's, and conda's loader puts the record it reads from it in the conda record's place
    (records[python_record.name] = ...): either way conda lists the dist-info's package, and so does this.
    """

    def __init__(self, records, warnings):
        self.records = records      # normalized name -> conda record (with "_file")
        self.warnings = warnings
        self.clobbered = set()      # normalized names whose conda record was replaced

    def owns(self, entry_name, present):
        """Whether the dist-info folder entry_name is conda's (present: the names in its site-packages)."""
        name = dist_info_name(entry_name)
        record = self.records.get(name)
        if record is None:
            return False
        if entry_name[:-len(".dist-info")].rpartition("-")[2] == str(record.get("version")):
            return True
        try:
            anchor = conda_anchor(record["_file"])
        except (OSError, ValueError) as exc:
            self.warnings.append("EnvDesk could not read conda's record %s (%s), so it shows conda's %s, "
                                 "though %s is there." % (os.path.basename(record["_file"]),
                                                          _short_reason(exc), record["name"], entry_name))
            return True
        if anchor is not None and anchor in present:
            return True
        self.clobbered.add(name)
        return False


def _spec_list(text):
    """The list in '# update specs: [...]' (a Python literal), as strings."""
    import ast  # only for conda's history, the one place it is needed
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        value = [_unquote(p) for p in text.strip().strip("[]").split(",")]
        if any(mark in item for item in value for mark in "[]'\""):
            return []  # a spec holding quotes or brackets cannot be told apart: none, rather than its pieces
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        return []
    return [str(v).strip() for v in value if str(v).strip()]


def spec_name(spec):
    """Package name of a conda match spec ('conda-forge::numpy>=1.2' -> 'numpy')."""
    match = re.compile(_SPEC_NAME_RE).match(spec.split("::")[-1])
    return match.group(1).lower() if match else spec.lower()


def parse_conda_history(text):
    """(requested specs, conda version) from a conda-meta/history file.

    Requested specs are cumulative over '# update specs:' lines, in order,
    one per package name (a later spec for the same package replaces the
    earlier one) and '# remove specs:' drops them, as conda itself does.
    """
    order, specs, conda_version = [], {}, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("# update specs:"):
            for spec in _spec_list(line[len("# update specs:"):]):
                name = spec_name(spec)
                if name not in specs:
                    order.append(name)
                specs[name] = spec
        elif line.startswith("# remove specs:"):
            for spec in _spec_list(line[len("# remove specs:"):]):
                name = spec_name(spec)
                if name in specs:
                    del specs[name]
                    order.remove(name)
        elif line.startswith("# conda version:") and conda_version is None:
            conda_version = line[len("# conda version:"):].strip() or None
    return [specs[name] for name in order], conda_version


def read_conda(env, problems):
    """Fill env from a conda prefix (conda-meta records, history, pip extras)."""
    prefix = env["path"]
    env["kind"] = "conda"
    meta_dir = os.path.join(prefix, "conda-meta")
    try:
        records = read_conda_records(meta_dir, env["warnings"])
    except OSError as exc:
        problems.append("EnvDesk could not read this conda environment's package list "
                        "(conda-meta: %s)." % describe_os_error(exc))
        return
    history = os.path.join(meta_dir, "history")
    if is_present(history):
        try:
            requested, conda_version = parse_conda_history(
                read_text(history, errors="replace", limit=MAX_HISTORY_BYTES))
            env["conda_requested"] = requested
            env["created_by"] = "conda " + conda_version if conda_version else None
        except OSError as exc:
            env["warnings"].append("EnvDesk could not read conda's history of this "
                                   "environment (%s)." % describe_os_error(exc))
    requested_names = set(spec_name(spec) for spec in env["conda_requested"])
    conda_names = set()
    record_files = {}   # normalized name -> its record (with "_file", the record's path)
    channels = set()
    python_record = None
    for record in records:
        name = str(record["name"])
        channel = conda_channel_name(record)
        package = make_package(name, str(record.get("version", "")), "conda",
                               name.lower() in requested_names)
        package["build"] = record.get("build")
        package["channel"] = channel
        env["packages"].append(package)
        conda_names.add(normalize_name(name))
        record_files[normalize_name(name)] = record
        if channel:
            channels.add(channel)
        if name == "python":
            python_record = record
    env["channels"] = sorted(channels)
    if python_record is None:
        return      # an env without Python (R, tools...) is fine as it is
    env["python"] = normalize_version(str(python_record.get("version", "")))
    problem = check_python_program(prefix, CONDA_PYTHONS)
    if problem:
        problems.append(problem)

    copies = CondaCopies(record_files, env["warnings"])

    def installed_by_conda(package):
        """Packages conda already listed (its own dist-info copies), but for those that replaced conda's."""
        name = normalize_name(package["name"])
        return (package["installer"] == "conda" or name in conda_names) and name not in copies.clobbered

    read_site_packages(env, problems, site_packages_dirs(prefix, env["python"], env["warnings"]),
                       skip=installed_by_conda, conda_copies=copies)
    if copies.clobbered:
        env["packages"] = [package for package in env["packages"] if "channel" not in package
                           or normalize_name(package["name"]) not in copies.clobbered]


def ownership(info):
    """Whose an environment is and whether this user may change it, from the stat of its marker (pyvenv.cfg or
    conda-meta) that discovery already took: {"owner": user name, or None when it is this user's own, "group":
    its group's name (others' only), "writable": whether its permission bits let this user write it}. No file
    is looked at: a colleague's environment in a shared folder is told from one's own by what is at hand."""
    me = _uid()
    if info is None or me is None:
        return {"owner": None, "group": None, "writable": True}
    if me == 0 or info.st_uid == me:
        return {"owner": None, "group": None, "writable": me == 0 or bool(info.st_mode & stat.S_IWUSR)}
    in_group = info.st_gid == os.getegid() or info.st_gid in os.getgroups()
    return {"owner": account_name(info.st_uid), "group": account_name(info.st_gid, group=True),
            "writable": bool(info.st_mode & (stat.S_IWGRP if in_group else stat.S_IWOTH))}


def others_packages(path, names):
    """The packages named (normalized names; "*" for all) in the environment at path that are another user's and
    not writable for this one, as [{"name", "path", "owner"}]: removing or replacing one would fail on its files
    partway (T22). Asked for only those a change would remove or replace: one listing of each site-packages
    folder and one lstat of each named package's folder, so a listing costs nothing more."""
    me = _uid()
    if not names or me in (None, 0):
        return []
    wanted = frozenset(normalize_name(name) for name in names)
    found = []
    for _version, lib in lib_python_dirs(path):
        site = os.path.join(lib, "site-packages")
        try:
            entries = list_dir(site)
        except OSError:
            continue
        for entry in entries:
            if not entry.name.endswith(".dist-info"):
                continue
            name = dist_info_name(entry.name)
            if "*" not in wanted and name not in wanted:
                continue
            info = _lstat(entry.path)
            if info is not None and info.st_uid != me and not ownership(info)["writable"]:
                found.append({"name": name, "path": entry.path, "owner": account_name(info.st_uid)})
    return found


def read_env(path, name, root, seconds=DEFAULT_ENV_TIME_BUDGET):
    """The whole environment object for one folder, as an answer holds it (see read_env_noted), with what its
    modules put on PYTHONPATH (add_provided)."""
    return add_provided(public(read_env_noted(path, name, root, seconds)))


def public(env):
    """An environment object without the notes (keys starting with '_') kept while it is read."""
    return dict((key, value) for key, value in env.items() if not key.startswith("_"))


def read_env_noted(path, name, root, seconds=DEFAULT_ENV_TIME_BUDGET, light=False, marker=None):
    """The environment object for one folder, read in at most about `seconds`; never raises.

    Only regular files are read, each bounded in size (see open_regular); the time
    budget is checked before each file and folder. When it runs out, the
    environment is broken, with the packages read until then. `light`: a venv's
    packages get only their names and versions (one lookup each); `marker`: what
    discovery already found (env_marker), not looked up again.
    """
    env = blank_env(path, name, root)
    problems = []
    kind = (marker or env_marker(path) or (None,))[0]
    env["_looked_at"] = time.time()     # before any stat of what is read below (see ListingCache.put)
    env["_envdesk_stat"] = _lstat(os.path.join(path, ENVDESK_DIR))
    marks = envdesk_marks(path) if env["_envdesk_stat"] is not None else frozenset()
    env["_marks"] = marks
    reader = _thread_id()
    outer = _ENV_DEADLINES.get(reader)
    _ENV_DEADLINES[reader] = Deadline(seconds)
    try:
        if kind == "venv":
            read_venv(env, problems, light)
        elif kind == "conda":
            read_conda(env, problems)
        else:
            problems.append("This folder is no longer a Python environment (it has no "
                            "pyvenv.cfg and no conda-meta folder).")
        env["packages"] = merge_packages(env["packages"], env["warnings"])
        read_envdesk_meta(env, marks)
    except TimeUp as exc:
        env["packages"] = merge_packages(env["packages"], env["warnings"])
        problems.append("EnvDesk stopped reading this environment after %g seconds, at %s: "
                        "its folder may be on a slow or stuck file system, or hold far too "
                        "many files. Its package list may be incomplete." % (exc.seconds, exc.path))
    except Exception as exc:  # one env must never crash the whole run
        problems.append("EnvDesk hit an unexpected problem while reading this "
                        "environment (%s: %s)." % (exc.__class__.__name__, exc))
    finally:
        if outer is None:
            _ENV_DEADLINES.pop(reader, None)
        else:
            _ENV_DEADLINES[reader] = outer
    if re.search(deleting_pattern(), path):
        problems.insert(0, "This is what is left of an environment whose delete stopped before it was done (it "
                           "was moved aside here first): it cannot be used. Delete it to finish.")
    env["package_count"] = len(env["packages"])
    share = group_share(os.path.dirname(path))
    if share is not None:
        env["shared"] = shared_with(share)
        problem = group_problem(path, share)
        if problem:
            env["shared"]["problem"] = problem
    if env["unreadable_packages"]:
        problems.append(unreadable_packages_text(env["unreadable_packages"]))
    env["_only_incomplete_packages"] = bool(env["incomplete_packages"]) and not problems
    if env["incomplete_packages"]:
        problems.append(incomplete_packages_text(env["incomplete_packages"]))
    if CREATING_MARK in marks:
        creator = creating_elsewhere(path)
        env["state"], env["error"] = STATE_INCOMPLETE, creating_text(path, creator) if creator else INCOMPLETE_MESSAGE
        env["warnings"].extend(problems)
    elif problems:
        env["state"], env["error"] = STATE_BROKEN, " ".join(problems)
    return env


# -- what an environment's modules put before its own packages --

def read_provided(recorded, seconds=DEFAULT_ENV_TIME_BUDGET):
    """The packages in the folders an environment's modules put on PYTHONPATH, as EnvDesk recorded them where
    those modules were loaded (META_PATHS, see the write part; this part runs no program, so it
    cannot load them itself): [{"module", "path", "packages": [{"name", "version"}]}] in PYTHONPATH's order.
    Python and pip find a package there before the environment's own, and a name found in an earlier folder
    hides it in later ones, so each name is listed once, where it is found first. A folder that is gone (the
    module's software removed) is left out. One lookup per package, within `seconds` in all."""
    provided, names = [], set()
    reader = _thread_id()
    outer = _ENV_DEADLINES.get(reader)
    _ENV_DEADLINES[reader] = Deadline(seconds)
    try:
        for entry in recorded if isinstance(recorded, list) else ():
            folder = entry.get("path") if isinstance(entry, dict) else None
            if not isinstance(folder, str) or not isinstance(entry.get("module"), str) or not os.path.isabs(folder):
                continue
            try:
                found = merge_packages(scan_site_packages(folder, [], light=True, known=names), [])
            except (OSError, TimeUp):
                continue
            fresh = [{"name": p["name"], "version": p["version"]} for p in found
                     if normalize_name(p["name"]) not in names]
            names.update(normalize_name(p["name"]) for p in fresh)
            provided.append({"module": entry["module"], "path": folder, "packages": fresh})
    finally:
        if outer is None:
            _ENV_DEADLINES.pop(reader, None)
        else:
            _ENV_DEADLINES[reader] = outer
    return provided


def add_provided(env):
    """env with "provided" (read_provided) where its notes record folders its modules put on PYTHONPATH. Not
    kept in the listing cache: a module's folder changes without any stat of the environment telling."""
    meta = env.get("envdesk")
    if isinstance(meta, dict) and meta.get(META_PATHS):
        env["provided"] = read_provided(meta[META_PATHS])
    return env


def incomplete_packages_text(paths):
    """The sentence that says an environment holds half-installed packages (see IncompleteMetadata)."""
    names = ", ".join(paths[:INCOMPLETE_SHOWN])
    if len(paths) > INCOMPLETE_SHOWN:
        names += " and %d more" % (len(paths) - INCOMPLETE_SHOWN)
    return ("It holds %s without the metadata that names %s (%s), as an install that stopped midway (on a "
            "full disk, say) leaves it: pip skips %s and uv refuses to change the environment. Any update by "
            "EnvDesk removes %s and installs the package again first; or revert to a snapshot from before that "
            "change." % (
                "a package folder" if len(paths) == 1 else "package folders", "it" if len(paths) == 1 else "them",
                names, "it" if len(paths) == 1 else "them", "it" if len(paths) == 1 else "them"))


# -- whether a lock's owner still runs (also used by the write part) --

def _has_proc():
    return os.path.isdir("/proc/self")


def _read_small(path):
    try:
        with open(path, "rb") as handle:
            return handle.read(65536)
    except (OSError, IOError):
        return None


def _proc_stat(pid):
    """(parent pid, start time in clock ticks since boot) of a running process from /proc, or None if there
    is none (a zombie, killed and not yet reaped, or a dead one, counts as none)."""
    data = _read_small("/proc/%d/stat" % pid)
    if not data:
        return None
    fields = data[data.rfind(b")") + 2:].split()    # after "pid (comm) ": state ppid ...
    if fields and fields[0] in (b"Z", b"X", b"x"):
        return None
    try:
        return int(fields[1]), int(fields[19])       # fields 4 and 22 of proc(5)
    except (IndexError, ValueError):
        return None


def _boot_id():
    data = _read_small("/proc/sys/kernel/random/boot_id")
    return data.decode("ascii", "replace").strip() if data else None


def _uid():
    return os.getuid() if hasattr(os, "getuid") else None


def _process_alive(pid, start):
    """Whether the recorded process still runs (False only when sure it does not)."""
    if _has_proc():
        stat_ = _proc_stat(pid)
        return stat_ is not None and (start is None or stat_[1] == start)
    if os.name == "posix":           # never on Windows: there os.kill ends the process
        try:
            os.kill(pid, 0)
        except OSError as exc:
            return exc.errno != errno.ESRCH
    return True


def _owned_here(info):
    """Whether the lock's owner process can be checked from here (same host, user and boot)."""
    return (isinstance(info.get("pid"), int) and info.get("host") == host_name()
            and info.get("uid") == _uid() and info.get("boot") == _boot_id())


def read_changing(path):
    """The change under way in an environment (its CHANGING_MARK: operation, snapshot id), or None."""
    mark = os.path.join(path, ENVDESK_DIR, CHANGING_MARK)
    if not is_present(mark):
        return None
    try:
        info = read_json(mark, MAX_RECORD_BYTES)
    except (OSError, ValueError):
        return None
    snap = info.get("snapshot") if isinstance(info, dict) else None
    if not isinstance(snap, str) or not re.compile(_SNAPSHOT_ID_RE).match(snap):
        return None
    try:
        record = read_json(os.path.join(path, ENVDESK_DIR, SNAPSHOTS_DIR, snap + ".json"), MAX_RECORD_BYTES)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("packages"), list):
        return None
    incomplete = record.get("half_installed")
    return {"operation": str(info.get("operation") or "change"), "since": str(info.get("since") or ""),
            "snapshot": snap, "packages": [p for p in record["packages"] if isinstance(p, dict)],
            "half_installed": [p for p in incomplete if isinstance(p, str)] if isinstance(incomplete, list) else []}


def _lock_record(path):
    """The owner record of path's lock: None when there is no lock, {} when its record cannot be read (yet)."""
    lock = path + LOCK_SUFFIX
    if not os.path.isdir(lock):
        return None
    try:
        info = read_json(os.path.join(lock, LOCK_OWNER_FILE), MAX_RECORD_BYTES)
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _holder_ended(info):
    """Whether the lock's holder process ran on this login node and has ended."""
    return _owned_here(info) and not _process_alive(info["pid"], info.get("pid_start"))


def creating_elsewhere(path):
    """The lock owner's record of a create of path that may still run ({"host", "since", ...}), or None: no such
    lock, another operation's, or one whose holder has ended on this login node (the next create takes it over)."""
    info = _lock_record(path)
    return info if info and info.get("operation") == "create" and not _holder_ended(info) else None


def creating_text(path, info):
    """What to do about an environment another EnvDesk is creating (its lock's record `info`): wait, or, where no
    EnvDesk is creating it, clear its lock."""
    lock = path + LOCK_SUFFIX
    return ("Another EnvDesk (on %s, started %s%s) is creating this environment. Wait for it to finish. If no "
            "EnvDesk is creating it (one stopped on another computer cannot be told from here), remove its lock (rm -r "
            "%s) and create it again: EnvDesk then builds it anew."
            % (info.get("host", "an unknown machine"), info.get("since", "at an unknown time"),
               " by %s" % info["user"] if info.get("user") else "", shell_word(lock)))


def change_cut_off(path):
    """Whether the change under way in path has lost its EnvDesk (its lock is gone, or the process that
    held it on this login node has ended); False while it may still be running."""
    info = _lock_record(path)
    return info is None or bool(info) and _holder_ended(info)


CUT_OFF_MESSAGE = ("A change of this environment (%s) was cut off: the EnvDesk that made it stopped midway, so "
                   "some packages may be half changed. The next change puts back the packages it had before "
                   "(shown here), or revert to snapshot %s.")


def _package_set(packages):
    return set((str(p.get("name", "")).lower(), p.get("version"), p.get("url")) for p in packages)


ROLLBACK_FAILED_MESSAGE = ("A change of this environment (%s) failed, and putting its packages back failed too, so "
                           "some packages may be half changed. The next change puts back the packages it had before "
                           "(shown here), or revert to snapshot %s.")


def settle(env):
    """Show an environment in the middle of a change as it was before it, from the change's snapshot, marked
    as being changed: never a half-changed package set (nor the package an installer is writing, which has no
    metadata yet). A change whose EnvDesk stopped after packages changed, or whose rollback failed, makes it
    broken (until the next change puts them back)."""
    marks = env.get("_marks", (CHANGING_MARK,))
    if CHANGING_MARK not in marks:
        return
    changing = read_changing(env["path"])
    if changing is None:
        return
    untouched = (_package_set(env["packages"]) == _package_set(changing["packages"])
                 and not env.get("incomplete_packages"))
    env["packages"] = changing["packages"]
    env["package_count"] = len(env["packages"])
    env["changing"] = {"operation": changing["operation"], "since": changing["since"],
                       "snapshot": changing["snapshot"]}
    cut_off = change_cut_off(env["path"])
    if not cut_off and env.get("_only_incomplete_packages"):
        env["state"], env["error"] = STATE_OK, None
    failed = ROLLBACK_FAILED_MARK in marks
    if env["state"] in (STATE_OK, STATE_BROKEN) and cut_off and (failed or not untouched):
        said = (ROLLBACK_FAILED_MESSAGE if failed else CUT_OFF_MESSAGE) % (changing["operation"],
                                                                         changing["snapshot"])
        env["error"] = said + (" " + env["error"] if env["state"] == STATE_BROKEN and env.get("error") else "")
        env["state"] = STATE_BROKEN


# ---------------------------------------------------------------------------
# Disk space: what an environment takes, what its file system has left
# ---------------------------------------------------------------------------

def measure_tree(path, deadline):
    """{"bytes", "files", "complete"} of everything under path (links counted, never followed), walked until
    the deadline ("complete": false then, or where a folder could not be read): files are what a file quota
    counts, so folders and links count as files too."""
    total, files, complete = 0, 0, True
    folders = [path]
    while folders:
        folder = folders.pop()
        if deadline.expired():
            complete = False
            break
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    files += 1
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += info.st_size
                    if stat.S_ISDIR(info.st_mode):
                        folders.append(entry.path)
        except OSError:
            complete = False   # a folder that cannot be read: what it holds is not counted
    return {"bytes": total, "files": files, "complete": complete}


def file_system_space(paths):
    """Free space and free files of the file system holding each existing path, once per file system."""
    seen, spaces = set(), []
    for path in paths:
        try:
            device = os.stat(path).st_dev
            if device in seen:
                continue
            space = _space_of(path)
        except OSError:
            continue
        seen.add(device)
        spaces.append(dict(space, path=path))
    return spaces


def _space_of(path):
    """Free and total bytes (and files, where the system counts them) of the file system holding `path`: statvfs,
    else (This computer on Windows, where the agent runs too) shutil's disk_usage, which counts no files."""
    if not hasattr(os, "statvfs"):
        import shutil
        usage = shutil.disk_usage(path)
        return {"free_bytes": usage.free, "total_bytes": usage.total, "free_files": None, "total_files": None}
    info = os.statvfs(path)
    return {"free_bytes": info.f_bavail * info.f_frsize, "total_bytes": info.f_blocks * info.f_frsize,
            "free_files": info.f_favail, "total_files": info.f_files}


# ---------------------------------------------------------------------------
# Health: what outside an environment changes what runs in it
# ---------------------------------------------------------------------------

_USER_SITE_RE = r"^python(\d+\.\d+)$"
CONDA_INIT_MARK = ">>> conda initialize >>>"


def _device(path):
    """st_dev of path, or of its nearest existing parent folder (a cache not made yet would go there)."""
    while path:
        try:
            return os.stat(path).st_dev
        except OSError:
            parent = os.path.dirname(path)
            if parent == path:
                return None
            path = parent
    return None


def user_sites():
    """The packages in each ~/.local/lib/pythonX.Y/site-packages (or under $PYTHONUSERBASE): Python puts
    them before an environment's own wherever the user site is on (conda environments, venvs that see the
    system's packages), so they shadow or leak into it."""
    base = os.environ.get("PYTHONUSERBASE") or expand("~/.local")
    lib = os.path.join(base, "lib")
    found = []
    try:
        entries = list_dir(lib)
    except OSError:
        return found
    for entry in entries:
        match = re.compile(_USER_SITE_RE).match(entry.name)
        folder = os.path.join(lib, entry.name, "site-packages")
        if not match or not os.path.isdir(folder):
            continue
        warnings = []
        try:
            packages = scan_site_packages(folder, warnings, light=True)
        except OSError:
            continue
        found.append({"python": match.group(1), "path": folder,
                      "packages": [{"name": p["name"], "version": p["version"]} for p in packages]})
    return found


def _bashrc_inits_conda():
    try:
        return CONDA_INIT_MARK in read_text(expand("~/.bashrc"), errors="replace")
    except OSError:
        return False


def health_facts():
    """What the health check needs beyond the environments themselves, read here in the same run."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    cache_home = xdg if os.path.isabs(xdg) else expand("~/.cache")
    caches = []
    for tool, variable, default in (("uv", "UV_CACHE_DIR", os.path.join(cache_home, "uv")),
                                    ("pip", "PIP_CACHE_DIR", os.path.join(cache_home, "pip"))):
        path = os.environ.get(variable) or default
        caches.append({"tool": tool, "path": path, "exists": os.path.isdir(path), "device": _device(path)})
    return {"user_sites": user_sites(), "no_user_site": bool(os.environ.get("PYTHONNOUSERSITE")),
            "conda_active": os.environ.get("CONDA_DEFAULT_ENV") or None,
            "conda_prefix": os.environ.get("CONDA_PREFIX") or None,
            "bashrc_inits_conda": _bashrc_inits_conda(),
            "scratch": os.environ.get("SCRATCH") or None, "caches": caches,
            "pythonpath": os.environ.get("PYTHONPATH") or None}


# ---------------------------------------------------------------------------
# The listing cache on this machine
# ---------------------------------------------------------------------------

CACHE_FORMAT = 3    # 2: a half-installed package makes an environment broken (T19); 3: so does one whose metadata
# cannot be read: one cached ok before is read again
CACHE_FILE = "inventory.json"
RACY_SECONDS = 2.0     # a folder changed this recently may change again within its time stamp's resolution
MAX_CACHE_BYTES = 64 * 1024 * 1024


# A serving agent's cache file as it last read or wrote it: {path: (signature of the file, entries)}. Its next
# request takes the entries from here while the file is unchanged (no other agent wrote it), instead of
# reading and parsing it again (most of a request's time when nothing changed). Any entry is used only when
# its environment's stats still match (ListingCache.get), as one read from the file.
_LOADED = {}


def default_cache_file():
    """~/.cache/envdesk/inventory.json (or under $XDG_CACHE_HOME when it is an absolute path), beside the
    agents kept there (see envdesk.backend.agent_store)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    base = base if os.path.isabs(base) else expand("~/.cache")
    return os.path.join(base, "envdesk", CACHE_FILE)


ABSENT = "absent"
"""The stat of a path the listing cache watches that was not there (or could not be looked at) when it was read:
its signature is None, as long as that stays so."""


def signature(info):
    """What tells a changed file or folder from an unchanged one: times, inode and size of a stat."""
    if info is None or info is ABSENT:
        return None
    return [info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_size]


def _stat(path):
    try:
        return os.stat(path)
    except OSError:
        return None


class ListingCache(object):
    """What each environment held when it was last read, with what it looked like then: its marker
    (pyvenv.cfg or conda-meta), its site-packages folders and its .envdesk folder. A folder changes its
    modification time whenever an entry is added, removed or renamed in it, which every install,
    uninstall and EnvDesk note does; so an environment whose three stats are unchanged is the one cached,
    and costs three lookups instead of one or more per package. Anything odd about the file: no cache.
    """

    def __init__(self, path):
        self.path = path
        self.entries = {}
        self.changed = False
        self.used = 0
        seen = signature(_stat(path))
        loaded = _LOADED.pop(path, None)
        if loaded is not None and seen is not None and loaded[0] == seen:
            self.entries = loaded[1]
            _LOADED[path] = loaded
            return
        try:
            data = json.loads(read_bytes(path, MAX_CACHE_BYTES).decode("utf-8"))
        except (OSError, ValueError):
            return
        if (isinstance(data, dict) and data.get("format") == CACHE_FORMAT and data.get("agent") == AGENT_VERSION
                and isinstance(data.get("entries"), dict)):
            self.entries = data["entries"]
            _LOADED[path] = (seen, self.entries)

    def get(self, path, marker, full):
        """The cached environment object at path if nothing it was read from changed, else None."""
        entry = self.entries.get(path)
        if not isinstance(entry, dict) or not isinstance(entry.get("env"), dict):
            return None
        if full and entry.get("detail") != "full":
            return None
        if not marker or marker[0] != entry.get("kind") or signature(marker[1]) != entry.get("marker"):
            return None
        sites = entry.get("sites")
        if not isinstance(sites, list) or not all(isinstance(s, list) and len(s) == 2 for s in sites):
            return None
        for folder, seen in sites:
            if signature(_stat(folder)) != seen:
                return None
        if signature(_lstat(os.path.join(path, ENVDESK_DIR))) != entry.get("envdesk"):
            return None
        self.used += 1
        env = dict(entry["env"])
        if isinstance(entry.get("usage"), dict):
            env["_usage"] = entry["usage"]
        return env

    def put(self, env, marker, found_at):
        """Remember an environment just read, when it is healthy, quiet and was not changing as it was read.

        It is remembered with the stats taken before its contents were read (the marker's by discovery,
        which began at `found_at`; its folders' by read_env_noted, which began at env["_looked_at"]), never
        after: a change made while it was read, or later, changes one of them. Each must predate the moment
        it was taken by RACY_SECONDS, so that no later change can fall in the same tick of its time stamp
        and leave it as it was, however long the read took.
        """
        path = env["path"]
        sites, site_stats = env.get("_sites") or [], env.get("_site_stats") or []
        if (not marker or marker[1] is None or env["state"] != STATE_OK or env.get("changing")
                or CHANGING_MARK in env["_marks"] or CREATING_MARK in env["_marks"]
                or len(sites) != len(site_stats) or any(info is None for info in site_stats)):
            self.forget(path)
            return
        envdesk = env["_envdesk_stat"]
        taken_at = [(marker[1], found_at), (envdesk, env["_looked_at"])]
        taken_at += [(info, env["_looked_at"]) for info in site_stats]
        for info, taken in taken_at:
            if info is not None and info is not ABSENT and taken - info.st_mtime < RACY_SECONDS:
                self.forget(path)
                return
        self.entries[path] = {
            "kind": marker[0], "marker": signature(marker[1]), "detail": env.get("detail", "full"),
            "sites": [[folder, signature(info)] for folder, info in zip(sites, site_stats)],
            "envdesk": signature(envdesk), "home": env.get("_home"),
            "env": public(env)}
        if isinstance(env.get("_usage"), dict) and env["_usage"].get("complete"):
            self.entries[path]["usage"] = env["_usage"]
        self.changed = True

    def add_usage(self, path, usage):
        """Remember what a cached environment takes on disk (only a complete count)."""
        if usage.get("complete"):
            self.entries[path]["usage"] = usage
            self.changed = True

    def forget(self, path):
        if self.entries.pop(path, None) is not None:
            self.changed = True

    def keep_only(self, paths):
        """Drop what is cached of environments no longer there (after a full search)."""
        for path in list(self.entries):
            if path not in paths:
                self.forget(path)

    def save(self):
        """Write the cache back when it changed; a cache that cannot be written is only slower."""
        folder = _lstat(os.path.dirname(self.path))
        if not self.changed or (folder is not None and not stat.S_ISDIR(folder.st_mode)):
            return      # never written through a link planted where EnvDesk's own folder belongs
        try:
            write_json(self.path, {"format": CACHE_FORMAT, "agent": AGENT_VERSION, "entries": self.entries},
                       private=True)
        except (OSError, ValueError):
            _LOADED.pop(self.path, None)
            return
        _LOADED[self.path] = (signature(_stat(self.path)), self.entries)


def python_gone(path, env):
    """Whether the python program of a cached environment is gone (deleted, or pointing nowhere): nothing the
    listing cache watches changes then."""
    if not env.get("python"):
        return False    # a conda environment of R or tools alone has no python program to lose
    return check_python_program(path, CONDA_PYTHONS if env.get("kind") == "conda" else VENV_PYTHONS) is not None


def cached_env(cache, path, name, root, marker, full):
    """The environment at path from the cache (named as found now, its base Python checked again), or None."""
    env = cache.get(path, marker, full) if cache is not None else None
    if env is None:
        return None
    env["name"], env["root"], env["_marks"] = name, root, frozenset()
    home = cache.entries[path].get("home")
    if isinstance(home, str) and home and home_problem(home):
        env["state"], env["error"] = STATE_BROKEN, home_problem(home)
    return env


# ---------------------------------------------------------------------------
# Whole run
# ---------------------------------------------------------------------------

def inventory(config=None):
    """Discover and read environments as configured; the answer dict."""
    cfg = read_config(config)
    deadline = Deadline(cfg["time_budget"])
    _HOMES.clear()
    _NAMES.clear()
    found_at = time.time()      # before discovery's stats of the markers (see ListingCache.put)
    found = discover(cfg, deadline)
    cache = ListingCache(cfg["cache"]) if cfg["cache"] else None
    environments = []
    wanted = set(cfg["names"]) if cfg["names"] is not None else None
    not_read = []
    for path, name, root, marker in found.items:
        if wanted is not None and name not in wanted:
            not_read.append(name)   # only those asked for are read (one environment's show or export)
            continue
        if deadline.expired():
            found.truncated = True
            break
        cached = cached_env(cache, path, name, root, marker, not cfg["light"])
        if cached is not None and cfg["health"] and python_gone(path, cached):
            cached = None   # the health check reads again an environment whose python program is gone
        env = cached or read_env_noted(path, name, root, cfg["env_time_budget"], cfg["light"], marker)
        if cfg["usage"] and "_usage" not in env:
            env["_usage"] = measure_tree(path, Deadline(cfg["env_time_budget"]))
            if cached is not None:
                cache.add_usage(path, env["_usage"])
        if cached is None and cache is not None:
            cache.put(env, marker, found_at)
        if cfg["usage"]:
            env["usage"] = env["_usage"]
        env.update(ownership(marker[1] if marker else None))
        if cfg["owners_of"]:
            env["others_packages"] = others_packages(path, cfg["owners_of"])
        if cfg["health"]:
            env["device"] = _device(path)
        if cfg["settled"]:
            settle(env)
        environments.append(public(env) if cfg["light"] else add_provided(public(env)))
    if cache is not None:
        if wanted is None and cfg["paths"] is None and not found.truncated:
            cache.keep_only(set(item[0] for item in found.items))
        cache.save()
    return {
        "agent": AGENT_VERSION,
        "host": host_name(),
        "python": python_version(),
        "home": os.path.expanduser("~"),
        "environments": environments,
        "not_read": not_read,
        "errors": found.errors,
        "truncated": found.truncated,
        "elapsed": round(deadline.elapsed(), 4),
        "cached": cache.used if cache is not None else 0,
        "space": file_system_space([expand(root, variables=True) for root in cfg["roots"]]
                                   + [os.path.expanduser("~")]) if cfg["space"] else None,
        "health": health_facts() if cfg["health"] else None,
    }


def failure_answer(message):
    """A well-formed answer for a run that could not take place."""
    return {"agent": AGENT_VERSION, "host": host_name(),
            "python": python_version(), "home": os.path.expanduser("~"),
            "environments": [], "errors": [{"path": "", "error": message}],
            "truncated": False, "elapsed": 0.0}


def no_write_part(config):
    """The answer to a write action when EnvDesk sent the agent without its write part."""
    return {"ok": False, "code": CODE_INVALID,
            "error": "EnvDesk's helper was sent without its write actions, so it cannot run %r."
                     % config.get("action")}


# A write action goes to RUN_ACTION; the write part, when it is sent along, puts its run_action here.
RUN_ACTION = no_write_part


def settings_from(text):
    """The JSON object of settings in `text` ({} when it is blank); ValueError when it is not one."""
    config = json.loads(text) if text.strip() else {}
    if not isinstance(config, dict):
        raise ValueError("the settings must be a JSON object")
    return config


def answer_for(config):
    """(the answer to one set of settings, exit status): a write action or else the inventory."""
    _HOMES.clear()  # what one answer found out about base Pythons: the next (a serving agent's) looks again
    try:
        config = as_file_text(config)
        return as_sent_text(RUN_ACTION(config) if config.get("action") else inventory(config)), 0
    except Exception as exc:  # still answer in the expected format
        return as_sent_text(failure_answer("The EnvDesk agent failed unexpectedly "
                                           "(%s: %s)." % (exc.__class__.__name__, exc))), 1


def write_answer(answer):
    """Print the one answer line and flush it."""
    sys.stdout.write(ANSWER_MARKER + json.dumps(answer, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def bad_settings(exc):
    """The answer to settings that are not a JSON object."""
    return failure_answer("EnvDesk sent settings the agent could not understand (%s)." % exc)


MAX_REQUEST_BYTES = 16 * 1024 * 1024  # one request of a serving agent (its settings: roots, paths, names)


def next_request(pending, idle):
    """(the next line of standard input without its newline, the bytes read after it); (None, b"") once
    standard input ends, or nothing came for `idle` seconds (None: wait for ever), or a line is too long.

    Read with os.read, not sys.stdin: select() must see every byte that is not handled yet."""
    import select  # only a serving agent waits on its standard input
    while b"\n" not in pending:
        if len(pending) > MAX_REQUEST_BYTES or not select.select([0], [], [], idle)[0]:
            return None, b""
        chunk = os.read(0, 65536)
        if not chunk:
            return None, b""
        pending += chunk
    line, _, rest = pending.partition(b"\n")
    return line, rest


def entry_digest():
    """What a serving agent keeps of each entry it sent: its sha256, from Python's own small module (_sha256,
    _sha2 from 3.12; hashlib's OpenSSL binding costs the agent 4 MB), else the text itself. Keeping the texts
    of the last answers cost tens of MB on a cluster of many large environments."""
    for name in ("_sha256", "_sha2"):
        try:
            sha256 = __import__(name).sha256
            sha256(b"")
        except Exception:  # missing, or refused (a FIPS-only build)
            continue
        return lambda text: sha256(text.encode("utf-8")).digest()
    return lambda text: text


class SentAnswers(object):
    """What a serving agent last answered to each kind of listing (its settings but "since"), so that the app
    is sent only what changed since an answer it holds.

    Each answer it sends carries an id ("answer": unique to this agent process). A request naming in "since"
    the id of the last answer to the same settings gets, for each environment whose entry is exactly the one
    sent then (the sha256 of its JSON text is kept, see entry_digest), {"same": path} instead of the entry,
    and "since" in the answer says so; the app takes that environment from the answer it holds. Any other
    request (another id, other settings, a new agent) is answered in full. The last KEEP kinds of settings
    are remembered, of whole listings only: one environment's ("names" or "paths") is small, and answered in
    full without an id.
    """

    KEEP = 4

    def __init__(self):
        self.prefix = "%d-%s-" % (os.getpid(), os.urandom(6).hex())
        self.count = 0
        self.last = {}  # settings without "since" -> (answer id, {path: entry_digest of its entry as sent})
        self.digest = entry_digest()

    def line(self, config, answer):
        """The answer line (without ANSWER_MARKER) to `config`, and remember what it sends."""
        environments = answer.pop("environments", None)
        if not isinstance(environments, list) or config.get("names") is not None or config.get("paths") is not None:
            answer["environments"] = environments
            return json.dumps(answer, separators=(",", ":"))
        key = json.dumps(dict((k, v) for k, v in config.items() if k != "since"), sort_keys=True)
        since = config.get("since")
        known = self.last.pop(key, (None, {}))
        sent = known[1] if isinstance(since, str) and since == known[0] else None
        self.count += 1
        answer["answer"] = self.prefix + str(self.count)
        if sent is not None:
            answer["since"] = since
        texts, sending = [], {}
        for env in environments:
            text = json.dumps(env, separators=(",", ":"))
            path = env.get("path")
            sending[path] = self.digest(text) if path not in sending else None  # a path twice: never "same"
            if sent is not None and sending[path] is not None and sent.get(path) == sending[path]:
                text = json.dumps({"same": path}, separators=(",", ":"))
            texts.append(text)
        self.last[key] = (answer["answer"], sending)
        while len(self.last) > self.KEEP:
            del self.last[next(iter(self.last))]
        head = json.dumps(answer, separators=(",", ":"))
        return head[:-1] + ',"environments":[' + ",".join(texts) + "]}"


def serve(options):
    """Answer listing requests until standard input ends, or none came for options["idle"] seconds: one JSON
    object of settings per line in; out, SERVING_MARKER as soon as a request is read, then its answer line.

    The app keeps one such agent per cluster while its connection is open (envdesk.backend.agent_session), so
    a listing there costs one round trip and no Python start. It only reads: it is sent without the write
    part, and refuses a request for an action. Each request is answered as a run of its own would be, but
    for the environments unchanged since an answer the app holds (see SentAnswers).
    """
    idle = options.get("idle")
    idle = float(idle) if isinstance(idle, (int, float)) and idle > 0 else None
    pending = b""
    sent = SentAnswers()
    while True:
        line, pending = next_request(pending, idle)
        if line is None:
            return 0
        sys.stdout.write(SERVING_MARKER + "\n")
        sys.stdout.flush()
        try:
            config = settings_from(line.decode("utf-8"))
        except ValueError as exc:  # UnicodeDecodeError is one
            write_answer(bad_settings(exc))
            continue
        if config.get("action") or "serve" in config:
            write_answer({"ok": False, "code": CODE_INVALID,
                          "error": "EnvDesk's running helper only lists environments; it was asked for %r."
                                   % (config.get("action") or "serve")})
            continue
        answer, status = answer_for(config)
        if status:
            write_answer(answer)
            continue
        sys.stdout.write(ANSWER_MARKER + sent.line(config, answer) + "\n")
        sys.stdout.flush()


def main(argv):
    """Read the JSON config in argv[1] (a write action or else the inventory), print one answer line; exit status.

    Settings {"serve": {"idle": seconds}} make it a serving agent instead (see serve)."""
    try:
        config = settings_from(argv[1] if len(argv) > 1 else "")
    except ValueError as exc:
        answer, status = bad_settings(exc), 2
    else:
        if isinstance(config.get("serve"), dict):
            return serve(config["serve"])
        answer, status = answer_for(config)
    write_answer(answer)
    return status
