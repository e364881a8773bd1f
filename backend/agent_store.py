"""The agent kept on each target: sent once per version, stored there under its sha256, checked before each run.

One agent call sends one of three scripts to ``python3 -`` on the target, each with the settings in
``sys.argv`` (on stdin, never as an argument: other users can read arguments with ps):

* ``bootstrap_script``, about a kilobyte, when the target is believed to keep this agent: it reads
  ``<cache>/envdesk/agent/<sha256>.py`` there (<cache>: $XDG_CACHE_HOME, else ~/.cache), runs it only if its
  sha256 is the expected one, and otherwise answers that it needs the agent; then the agent is sent (a second
  command, only when the target's copy went away or was changed). It keeps the code it compiles from that copy
  beside it, and runs that code instead of compiling again when its sha256 is the one it reported before;
* ``storing_script`` when it is not known to keep it: the agent, compressed, with the store part
  (``backend/agent/store.py``) that stores it and then runs it; one command, as before;
* ``inline_script``, the agent as is: for runners that note nothing (Runner.agent_notes_key is empty: this
  computer without the app's cache folder) and for a Python that cannot unpack the agent.

What each target keeps is remembered per runner and in ``agents-stored.json`` of the runner's local cache
folder, keyed by Runner.agent_notes_key (a cluster's route, user@host:port of each hop; "this computer"), so
that a new process sends the bootstrap too. On this computer sending costs nothing, but compiling the agent's
source is most of a call's time: the bootstrap runs the code kept from the last compile instead.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import re
import threading
import weakref
import zlib
from pathlib import Path
from typing import Any, Callable

from .errors import EnvDeskError
from .fileio import write_atomically
from .protocol import ANSWER_MARKER
from .runner import CommandResult, Runner

log = logging.getLogger(__name__)

STORE_FOLDER = ("envdesk", "agent")  # under the target user's cache folder
STORED_MARKER = "ENVDESK-AGENT-STORED "  # then the digest: the target now keeps that agent
CODE_MARKER = "ENVDESK-AGENT-CODE "  # then the digest and the sha256 of the code compiled from it, now kept
CODE_LIMIT = 8  # the compiled code read is at most this many times the agent's size (it is about 1.6)
NEED_AGENT = "need_agent"  # the key of the answer that asks for the agent (its value: the digest)
RECORD_FILE = "agents-stored.json"
KEEP_PER_TARGET = 8  # digests remembered per target: both variants of the last few versions

# Reads at most one byte more than the agent, never through a link (O_NOFOLLOW) nor waiting on a pipe planted
# there (O_NONBLOCK), each where the system has it (Windows has neither, and needs O_BINARY to read and write
# bytes as they are), and runs exactly the bytes it hashed: the agent's text (always checked), compiled, or the
# code compiled from it before, when that code's sha256 is _k, as the bootstrap that compiled it reported
# (CODE_MARKER): that spares the compile, most of the agent's start. A new compile is kept for the next call:
# written to <digest>.<python>.code.tmp (0600, never through a link, truncated if there), then put in place of
# the old file (os.replace: os.rename replaces no file on Windows). Writers at the same time may mix their bytes:
# the sha256 check then fails and the next call compiles again. Its names start with "_": none is the agent's.
# Its sha256 comes from Python's own small module (_sha256, _sha2 from 3.12) rather than hashlib, whose OpenSSL
# binding costs more to load than the rest of the bootstrap; hashlib where that module is missing or refuses (a
# FIPS-only build).
_BOOTSTRAP = """\
import marshal,os,sys
sys.argv=['-',{settings}]
h,k={digest!r},{code!r}
c=os.environ.get('XDG_CACHE_HOME','')
p=os.path.join(c if os.path.isabs(c) else os.path.expanduser('~/.cache'),{folder},h)
q='%s.%s.code'%(p,sys.implementation.cache_tag)
for m in '_sha256','_sha2','hashlib':
 try:n=__import__(m).sha256;n();break
 except Exception:pass
d=lambda y:n(y).hexdigest()
o=0
for m in 'NOFOLLOW','NONBLOCK','BINARY':o|=getattr(os,'O_'+m,0)
def r(a,z):
 try:
  with open(os.open(a,os.O_RDONLY|o),'rb') as f:return f.read(z)
 except OSError:return b''
s=r(p+'.py',{limit})
if d(s)!=h:
 sys.stdout.write({need!r}+h+'"}}\\n');sys.exit(0)
b=k and r(q,{code_limit})
if b and d(b)==k:x=marshal.loads(b)
else:
 x=compile(s,p+'.py','exec');b=marshal.dumps(x);t=q+'.tmp'
 try:
  with open(os.open(t,os.O_WRONLY|os.O_CREAT|os.O_TRUNC|o,0o600),'wb') as f:f.write(b)
  os.replace(t,q);sys.stdout.write({marker!r}+h+' '+d(b)+'\\n')
 except OSError:pass
exec(x)
"""  # sent with every call: written short (the agent has no one-letter globals)

@functools.lru_cache(maxsize=8)
def agent_digest(agent: str) -> str:
    """The sha256 (hex) of the agent's text: the name of the file that keeps it on a target."""
    return hashlib.sha256(agent.encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=4)
def _packed(agent: str) -> str:
    """The agent's text, zlib-compressed then base64: about a third of its size, for the first call."""
    return base64.b64encode(zlib.compress(agent.encode("utf-8"), 9)).decode("ascii")


def _argv(settings: str) -> str:
    return f"import sys\nsys.argv = ['-', {settings!r}]\n"


def need_agent_line(digest: str) -> str:
    """The answer line of a script that needs the agent itself: the stored copy is missing or not `digest`."""
    return ANSWER_MARKER + json.dumps({NEED_AGENT: digest}, separators=(",", ":")) + "\n"


def inline_script(agent: str, settings: str) -> str:
    """The agent itself, with its settings: nothing stored, nothing read from the target's disk."""
    return _argv(settings) + agent


def bootstrap_script(agent: str, settings: str, code: str = "") -> str:
    """Less than a kilobyte that runs the stored copy of `agent` if, and only if, its sha256 is right; from
    the code compiled from it before when that code's sha256 is `code`."""
    size = len(agent.encode("utf-8"))
    return _BOOTSTRAP.format(settings=repr(settings), digest=agent_digest(agent), code=code,
                             folder=",".join(repr(part) for part in STORE_FOLDER), limit=size + 1,
                             code_limit=size * CODE_LIMIT, need=f'{ANSWER_MARKER}{{"{NEED_AGENT}":"',
                             marker=CODE_MARKER)


def storing_script(agent: str, settings: str, store_part: str) -> str:
    """The agent, compressed, with the store part that keeps it on the target and then runs it."""
    digest = agent_digest(agent)
    header = (f"STORE_DIGEST = {digest!r}\nSTORE_FOLDER = {STORE_FOLDER!r}\nSTORED_MARKER = {STORED_MARKER!r}\n"
              f"NEED_AGENT_LINE = {need_agent_line(digest).rstrip()!r}\nSTORE_PAYLOAD = {_packed(agent)!r}\n")
    return _argv(settings) + header + store_part


def asks_for_agent(stdout: str, digest: str) -> bool:
    """Whether the answer in `stdout` is the request for the agent `digest` (the target does not keep it)."""
    for line in stdout.splitlines():
        if line.startswith(ANSWER_MARKER):
            try:
                answer = json.loads(line[len(ANSWER_MARKER):])
            except ValueError:
                return False
            return isinstance(answer, dict) and answer.get(NEED_AGENT) == digest
    return False


def reports_stored(stdout: str, digest: str) -> bool:
    """Whether the storing script said the target now keeps the agent `digest`."""
    return any(line.rstrip() == STORED_MARKER + digest for line in stdout.splitlines())


_CODE_LINE = re.compile(r"^([0-9a-f]{64}) ([0-9a-f]{64})$")


def reported_code(stdout: str, digest: str) -> str:
    """The sha256 of the code the bootstrap compiled from the agent `digest` and kept, if it said so; else ''."""
    for line in stdout.splitlines():
        if line.startswith(CODE_MARKER):
            found = _CODE_LINE.match(line[len(CODE_MARKER):].rstrip())
            if found is not None and found.group(1) == digest:
                return found.group(2)
    return ""


class StoredRecord:
    """This computer's notes of which agents each target keeps: one small JSON file, a hint only.

    Unreadable or unwritable notes are ignored: the worst a wrong note costs is one more command.
    """

    def __init__(self, folder: Path) -> None:
        self.file = folder / RECORD_FILE

    def _read(self) -> tuple[dict[str, list[str]], dict[str, dict[str, str]]]:
        """(target -> digests kept, target -> digest -> sha256 of the code compiled from it there)."""
        try:
            data = json.loads(self.file.read_text(encoding="utf-8"))
            targets, code = data.get("targets", {}), data.get("code", {})
            return ({str(key): [str(d) for d in value] for key, value in targets.items() if isinstance(value, list)},
                    {str(key): {str(d): str(h) for d, h in value.items()} for key, value in code.items()
                     if isinstance(value, dict)})
        except (OSError, ValueError, AttributeError):
            return {}, {}

    def load(self, target: str) -> tuple[list[str], dict[str, str]]:
        """The digests `target` was last known to keep, oldest first, and the code compiled from them there."""
        targets, code = self._read()
        return targets.get(target, []), code.get(target, {})

    def save(self, target: str, digests: list[str], code: dict[str, str]) -> None:
        """Replace what is noted for `target` (the other targets' notes are read again, then kept)."""
        targets, codes = self._read()
        digests = digests[-KEEP_PER_TARGET:]
        targets[target] = digests
        codes[target] = {digest: code[digest] for digest in digests if digest in code}
        for notes in (targets, codes):
            if not notes[target]:
                notes.pop(target)
        try:
            write_atomically(self.file, json.dumps({"targets": targets, "code": codes}, indent=1))
        except (OSError, EnvDeskError) as exc:
            log.info("could not note which agents %s keeps: %s", target, exc)


class TargetNotes:
    """What one runner's target keeps, as far as this process knows; shared by the runner's threads."""

    def __init__(self, target: str, record: StoredRecord | None) -> None:
        self.target = target
        self.record = record
        self.inline = False  # the target's Python cannot unpack the agent: send it as is
        self._lock = threading.Lock()
        self._stored, self._code = record.load(target) if record is not None else ([], {})

    def keeps(self, digest: str) -> bool:
        with self._lock:
            return digest in self._stored

    def code(self, digest: str) -> str:
        """The sha256 of the code compiled from `digest` that the target keeps, as last reported ('' if none)."""
        with self._lock:
            return self._code.get(digest, "")

    def _change(self, digest: str, kept: bool, code: str = "") -> None:
        with self._lock:
            if (digest in self._stored) == kept and self._code.get(digest, "") == code:
                return
            self._stored = [d for d in self._stored if d != digest] + ([digest] if kept else [])
            self._code = {d: h for d, h in self._code.items() if d != digest} | ({digest: code} if code else {})
            stored, codes = list(self._stored), dict(self._code)
        if self.record is not None:
            self.record.save(self.target, stored, codes)

    def remember_code(self, digest: str, code: str) -> None:
        """The target keeps `digest`, and the code compiled from it whose sha256 is `code`."""
        self._change(digest, True, code)

    def remember(self, digest: str) -> None:
        """The target now keeps `digest`."""
        self._change(digest, True)

    def forget(self, digest: str) -> None:
        """The target's copy of `digest` is gone (or no longer right)."""
        self._change(digest, False)

    def heard(self, stdout: str, digest: str) -> bool:
        """What a bootstrap of `digest` said in `stdout`: False (forgotten) if the target no longer keeps it;
        else True, and the code it compiled and kept is remembered."""
        if asks_for_agent(stdout, digest):
            self.forget(digest)
            return False
        code = reported_code(stdout, digest)
        if code:
            self.remember_code(digest, code)
        return True


_notes: weakref.WeakKeyDictionary[Any, TargetNotes] = weakref.WeakKeyDictionary()
_notes_lock = threading.Lock()


def notes_for(runner: Runner) -> TargetNotes | None:
    """The notes of the runner's target (made on first use), or None where the agent is not stored: a runner
    without a name to note them under (Runner.agent_notes_key), or whose route cannot be told."""
    with _notes_lock:
        notes = _notes.get(runner)
        if notes is not None:
            return notes
    try:
        key = str(getattr(runner, "agent_notes_key", str)())
    except (EnvDeskError, OSError, ValueError) as exc:  # the connection would fail the same way, and say why
        log.info("no route to note the agent under for %s: %s", getattr(runner, "name", "?"), exc)
        return None
    if not key:
        return None
    folder = getattr(runner, "local_cache", None)
    notes = TargetNotes(key, StoredRecord(Path(folder)) if folder is not None else None)
    with _notes_lock:
        return _notes.setdefault(runner, notes)


def reread_notes(runner: Runner) -> None:
    """Forget the runner's notes as read, so that the next use reads them again: other processes write them too
    (a keeper's commands store the agent, see keeper)."""
    with _notes_lock:
        _notes.pop(runner, None)


Send = Callable[[str], CommandResult]


def script_in_command(runner: Runner, agent: str, settings: str) -> tuple[str, str] | None:
    """`agent` with `settings`, to run inside a command of the caller's (which cannot send the agent first), and
    the digest of the agent it runs ('' for the agent sent as is): the bootstrap where the target keeps the
    agent, the agent itself where none is stored; None where the agent must be sent first (run_stored)."""
    notes = notes_for(runner)
    if notes is None:
        return inline_script(agent, settings), ""
    digest = agent_digest(agent)
    if notes.inline or not notes.keeps(digest):
        return None
    return bootstrap_script(agent, settings, notes.code(digest)), digest


def run_stored(runner: Runner, agent: str, settings: str, store_part: str, send: Send) -> CommandResult:
    """Run `agent` with `settings` on the runner's target through `send` (which runs a script there), sending
    the agent itself only when the target is not known to keep it; the result holds the agent's answer.

    Usually one command: the bootstrap, or the storing script. A stale note (the target's copy removed or
    changed) costs one more; a Python without zlib, one more per runner, then the agent is sent as is.
    """
    notes = notes_for(runner)
    if notes is None:
        return send(inline_script(agent, settings))
    digest = agent_digest(agent)
    if notes.keeps(digest):
        result = send(bootstrap_script(agent, settings, notes.code(digest)))
        if notes.heard(result.stdout, digest):
            return result
    if notes.inline:
        return send(inline_script(agent, settings))
    result = send(storing_script(agent, settings, store_part))
    if asks_for_agent(result.stdout, digest):
        notes.inline = True
        return send(inline_script(agent, settings))
    if reports_stored(result.stdout, digest):
        notes.remember(digest)
    return result
