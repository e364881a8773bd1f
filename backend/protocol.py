"""What EnvDesk and its remote agent must agree on: names on disk, the answer line, states and refusal codes.

This is the one place these values are written. The client imports them from here; the agent script
never defines them itself: ``agent_client.agent_script`` puts a generated ``NAME = value`` line for every
public upper-case name of this module at the top of the script it sends (see ``protocol_header``).
So keep this module to plain constants (str, int, float, bool or tuples of those), nothing else.
"""

# The agent's answer: one stdout line, this marker then compact JSON; "agent" in it is this version.
AGENT_VERSION = 1
ANSWER_MARKER = "ENVDESK-AGENT-JSON "
# A serving agent (the app keeps one per cluster) prints this line as soon as it has read a request.
SERVING_MARKER = "ENVDESK-AGENT-SERVING"

# A change holds <env> + LOCK_SUFFIX, a folder made atomically, with the holder's record inside.
LOCK_SUFFIX = ".envdesk-lock"
LOCK_OWNER_FILE = "owner.json"

# EnvDesk's own folder inside an environment, and what it keeps there.
ENVDESK_DIR = ".envdesk"
CREATING_MARK = "CREATING"     # present while the environment is being built: never healthy
META_FILE = "meta.json"        # EnvDesk's notes (modules, requested packages, ...)
SNAPSHOTS_DIR = "snapshots"    # one JSON file per snapshot taken before a change
CHANGING_MARK = "changing.json"  # while a change runs: its snapshot, so reads show the state before it
# A delete first renames the folder to <env> + DELETING_SUFFIX (same parent, so same file system), then removes it.
DELETING_SUFFIX = ".envdesk-deleting"
ROLLBACK_FAILED_MARK = "rollback-failed"  # beside CHANGING_MARK when putting the packages back failed: broken
CONSTRAINTS_FILE = "constraints.txt"  # the environment's constraints (pip's -c), given to every install into it
# What an environment's modules put on PYTHONPATH, as a command that loaded them reports it (one line each: this
# marker, a module or nothing, a tab, PYTHONPATH); the finish that gets it records it in the notes as META_PATHS.
PYTHONPATH_REPORT = "ENVDESK-PYTHONPATH "
PYTHONPATH_REPORT_VARIABLE = "ENVDESK_PYTHONPATH_REPORT"  # where a build's one command hands it to its finish
META_PATHS = "module_paths"    # [{"module", "path"}]: each folder a module puts on PYTHONPATH, in its order

# An environment's "state" in the inventory.
STATE_OK = "ok"
STATE_BROKEN = "broken"
STATE_INCOMPLETE = "incomplete"  # it carries the CREATING mark

# The "code" of a refused write action ({"ok": false, "code": ..., "error": sentence}).
CODE_BUSY = "busy"               # another operation holds the lock
CODE_EXISTS = "exists"           # the folder to create is already there
CODE_INVALID = "invalid"         # a bad request (not a folder path, a link, an unknown action ...)
CODE_OUTSIDE = "outside"         # the folder is not inside a known root
CODE_MISSING = "missing"         # no such environment or snapshot
CODE_INCOMPLETE = "incomplete"   # the environment was never finished
CODE_OSERROR = "oserror"         # the filesystem said no
CODE_DISK_FULL = "disk-full"     # no space left on the disk, or the disk quota used up
CODE_READ_ONLY = "read-only"     # the filesystem is mounted read-only
CODE_NOT_WRITABLE = "not-writable"  # permission denied: a folder the user may not write in
CODE_FAILED = "failed"           # anything else
