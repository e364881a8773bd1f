"""Quota reports as clusters print them: diskusage_report (the Alliance), uquota (UPPMAX), lfs quota (Lustre)
and quota (Linux), read defensively into one shape. Parsing only: running them is backend/operations/disk.py's."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------------------
# Amounts as quota reports print them
# ---------------------------------------------------------------------------------------------------------

# Patterns are kept as text and compiled on first use (re keeps them compiled): only a quota report needs them.
_AMOUNT = r"^(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[kKmMgGtTpPeE]?)(?P<binary>i?)(?P<b>[bB]?)$"
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}
_NO_LIMIT = {"-", "none", "unlimited", "n/a", "0", "0k", "0b"}


class _Unreadable(ValueError):
    """A token that is no amount: the line it is on is not of the expected shape."""


def _amount(token: str, *, files: bool = False, bare: int = 1) -> tuple[int, bool]:
    """(value, marked over quota) of one printed amount: '157k', '9.537T', '0  B', '50GiB', '1234*', '[1041408]'.

    Sizes count in powers of 1024 (what quota, lfs and the Alliance's report print), a bare number in units of
    `bare` bytes (quota and lfs count 1 KiB blocks); file counts in powers of 1000 ('500k', quota's '160k').
    """
    text = token.strip()
    over = text.endswith("*")
    text = text.rstrip("*").strip().strip("[]").strip()
    match = re.match(_AMOUNT, text)
    if match is None:
        raise _Unreadable(token)
    unit, number = match.group("unit").lower(), float(match.group("number"))
    if files:
        return round(number * 1000 ** _POWERS[unit]), over
    if not unit:
        return round(number * (1 if match.group("b") else bare)), over
    return round(number * 1024 ** _POWERS[unit]), over


def _limit(token: str, *, files: bool = False, bare: int = 1) -> int | None:
    """A limit as printed; None for none at all ('-', 'none', and 0, which quota and lfs print for no limit)."""
    if token.strip().lower().rstrip("*") in _NO_LIMIT:
        return None
    value, _ = _amount(token, files=files, bare=bare)
    return value or None


def _exceeds(used: int | None, limit: int | None) -> bool:
    return used is not None and limit is not None and used > limit


def _is_amount(token: str) -> bool:
    try:
        _amount(token)
    except _Unreadable:
        return False
    return True


# ---------------------------------------------------------------------------------------------------------
# Quota reports: diskusage_report (the Alliance), uquota (UPPMAX), lfs quota (Lustre), quota (Linux)
# ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Quota:
    """One line of a quota report: what is used and allowed on one file system (None: not said, or no limit).

    The limit is the soft one where the report has two (beyond it, the grace period starts); `over` is what
    the report marks (a '*', a running or expired grace period, an 'Over Quota' column). `path` is a folder
    on that file system as EnvDesk asked about it (lfs is asked with one root's mount point).
    """

    filesystem: str
    used_bytes: int | None
    limit_bytes: int | None
    used_files: int | None
    limit_files: int | None
    owner: str = ""
    over: bool = False
    path: str = ""

    @property
    def files_left(self) -> int | None:
        if self.limit_files is None or self.used_files is None:
            return None
        return max(0, self.limit_files - self.used_files)

    @property
    def bytes_left(self) -> int | None:
        if self.limit_bytes is None or self.used_bytes is None:
            return None
        return max(0, self.limit_bytes - self.used_bytes)

    def covered_by(self, folder: str) -> int:
        """How much of `folder` (absolute) names this quota's file system or path: the length of the longest
        of them that holds it, 0 when neither does (a device name such as /dev/sda1 holds no folder)."""
        return max((len(base) for base in (self.filesystem, self.path) if base.startswith("/")
                    and (folder == base or folder.startswith(base.rstrip("/") + "/"))), default=0)

    def covers(self, folder: str) -> bool:
        """Whether `folder` (absolute) is on this quota's file system, as far as its name or path tells."""
        return self.covered_by(folder) > 0

    def to_json(self) -> dict[str, Any]:
        return {"filesystem": self.filesystem, "owner": self.owner, "used_bytes": self.used_bytes,
                "limit_bytes": self.limit_bytes, "used_files": self.used_files, "limit_files": self.limit_files,
                "over": self.over, "path": self.path}


@dataclass(frozen=True)
class QuotaReport:
    """What one quota command printed: the quotas read from it, and its text when none could be read."""

    command: str
    quotas: tuple[Quota, ...] = ()
    raw: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"command": self.command, "quotas": [quota.to_json() for quota in self.quotas],
                "raw": self.raw or None}


_TABLE_OWNER = r"(?i)^Disk quotas for (?P<kind>usr|user|grp|group|prj|project)\s+(?P<name>\S+)"
_OWNER_WORDS = {"usr": "user", "grp": "group", "prj": "project"}


def _table_row(values: list[str], bare: int) -> tuple[int, int | None, int, int | None, bool]:
    """(used bytes, limit bytes, used files, limit files, over) of a quota/lfs row after its file system:
    used, soft, hard, [grace], files, soft, hard, [grace]. The grace columns are blank in quota's output
    until a limit is passed, '-' in lfs's."""
    used, over = _amount(values[0], bare=bare)
    soft, hard = _limit(values[1], bare=bare), _limit(values[2], bare=bare)
    rest = values[3:]
    grace = bool(rest) and not _is_amount(rest[0])
    if grace:
        over = over or rest[0] not in ("-",)
        rest = rest[1:]
    if len(rest) < 3:
        raise _Unreadable(" ".join(values))
    files, files_over = _amount(rest[0], files=True)
    files_soft, files_hard = _limit(rest[1], files=True), _limit(rest[2], files=True)
    tail = rest[3:]
    if tail and tail[0] not in ("-",):
        files_over = True
    if len(tail) > 1:
        raise _Unreadable(" ".join(values))
    limit, file_limit = soft or hard, files_soft or files_hard
    return used, limit, files, file_limit, over or files_over or _exceeds(used, limit) or _exceeds(files, file_limit)


def _parse_table(text: str) -> list[Quota]:
    """`quota -s [-w]` and `lfs quota [-h] -u USER MOUNT`: a 'Disk quotas for ...' header, a column header,
    then one row per file system; a long file system name stands alone on its line, its row on the next."""
    quotas: list[Quota] = []
    owner, pending = "", ""
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        header = re.match(_TABLE_OWNER, line.strip())
        if header:
            kind = header.group("kind").lower()
            owner, pending = f"{_OWNER_WORDS.get(kind, kind)} {header.group('name')}", ""
            continue
        if words[0].lower() == "filesystem":
            continue
        if len(words) == 1 and not _is_amount(words[0]):
            pending = words[0]  # wrapped: the row follows on the next line
            continue
        name, values = (pending, words) if pending and _is_amount(words[0]) else (words[0], words[1:])
        pending = ""
        try:
            used, limit, files, file_limit, over = _table_row(values, bare=1024)
        except (_Unreadable, IndexError):
            continue  # notes such as "uid 1234 is using default block quota setting"
        quotas.append(Quota(name, used, limit, files, file_limit, owner, over))
    return quotas


_DIRECTORY = r"^(?P<fs>/\S*)(?:\s+\((?P<owner>[^)]*)\))?\s*(?P<rest>.*)$"
_PAIR = r"(?P<{0}>[\d.]+\s*[A-Za-z]*\*?|-|none)\s*/\s*(?P<{1}>[\d.]+\s*[A-Za-z]*\*?|-|none)"
_USAGE_COLUMNS = "(?i)^" + _PAIR.format("used", "limit") + r"\s+" + _PAIR.format("files", "file_limit") + r"\s*$"


def _parse_diskusage_report(text: str) -> list[Quota]:
    """The Alliance's `diskusage_report`: a 'Description Space # of files' header, then one line per space,
    '/home (user alice)   157k/50G   13/500k' (or '0  B/  50GiB   13 / 500K'); a description too long for its
    column stands alone, its figures on the next line."""
    quotas: list[Quota] = []
    pending: re.Match[str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        described = re.match(_DIRECTORY, stripped)
        if described and not described.group("rest"):
            pending = described
            continue
        columns = re.match(_USAGE_COLUMNS, described.group("rest") if described else stripped)
        where = described if described else pending
        pending = None
        if columns is None or where is None:
            continue
        try:
            used, limit = _amount(columns.group("used"))[0], _limit(columns.group("limit"))
            files, file_limit = _amount(columns.group("files"), files=True)[0], _limit(columns.group("file_limit"),
                                                                                       files=True)
        except _Unreadable:
            continue
        over = "*" in columns.group(0) or _exceeds(used, limit) or _exceeds(files, file_limit)
        quotas.append(Quota(where.group("fs"), used, limit, files, file_limit, where.group("owner") or "", over))
    return quotas


_UNITS = {"b": 1, "kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3, "tib": 1024 ** 4, "pib": 1024 ** 5,
          "kb": 1024, "mb": 1024 ** 2, "gb": 1024 ** 3, "tb": 1024 ** 4}


def _parse_uquota(text: str) -> list[Quota]:
    """UPPMAX's `uquota`: 'Your project  Your File Area  Unit  Usage  Quota Limit  Over Quota', a line of
    dashes, then a row per area and unit (one in GiB, one in files): the two rows of an area are one quota."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) < 5 or words[0].lower() == "your" or set(words[0]) == {"-"}:
            continue
        project, area, unit, usage, limit = words[:5]
        entry = found.setdefault((project, area), {"over": False})
        entry["over"] = entry["over"] or (len(words) > 5 and words[5].lower() not in ("-", "no"))
        try:
            if unit.lower() == "files":
                entry["files"] = _amount(usage, files=True)[0]
                entry["file_limit"] = _limit(limit, files=True)
            elif unit.lower() in _UNITS:
                scale = _UNITS[unit.lower()]
                entry["used"] = round(float(usage.rstrip("*")) * scale)
                entry["limit"] = None if limit in _NO_LIMIT else round(float(limit) * scale) or None
        except ValueError:
            continue
    return [Quota(area, entry.get("used"), entry.get("limit"), entry.get("files"), entry.get("file_limit"),
                  "" if project == "home" else f"project {project}",
                  entry["over"] or _exceeds(entry.get("used"), entry.get("limit"))
                  or _exceeds(entry.get("files"), entry.get("file_limit")))
            for (project, area), entry in found.items() if "used" in entry or "files" in entry]


def _no_quota(text: str) -> bool:
    """The report says there is none ('Disk quotas for user bob (uid 1000): none') or printed nothing."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return all(re.match(_TABLE_OWNER, line) and line.lower().endswith("none") for line in lines)


def parse_quota_report(text: str, command: str = "") -> QuotaReport:
    """Read any of the quota reports EnvDesk asks for, told apart by their shape (the command name is kept,
    not trusted). What cannot be read is kept as text (QuotaReport.raw), never an error."""
    try:
        if "Your File Area" in text or re.search(r"^\s*Your project\b", text, re.M):
            quotas = _parse_uquota(text)
        elif re.search(r"^\s*(Disk quotas for |Filesystem\s+(kbytes|blocks|space|used)\b)", text, re.M | re.I):
            quotas = _parse_table(text)
        else:
            quotas = _parse_diskusage_report(text)
    except Exception as exc:  # an odd report is shown as printed, whatever went wrong reading it
        log.info("could not read %s's quota report (%s)", command or "a", exc)
        quotas = []
    raw = "" if quotas or _no_quota(text) else text.strip("\n")
    return QuotaReport(command, tuple(quotas), raw)
