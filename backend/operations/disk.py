"""Disk and inodes (issue 12): what each environment takes, what each root's file system has left, the
cluster's own quota report, emptying the installers' caches, and a warning before a build that would not fit.

A conda environment holds 40,000 to 290,000 files, and clusters count files as well as bytes (the Alliance's
home allows 500,000, UPPMAX's 300,000): the file count is what runs out first, so every figure here has both.
"""
from __future__ import annotations

import json
import logging
import weakref
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, Iterable, Sequence

from ..agent_client import ACTION_TIMEOUT, checked, run_agent
from ..capabilities import Capabilities, choose_python
from ..errors import AuthenticationFailed, Cancelled, ConnectionFailed, EnvDeskError, InvalidInput
from ..inventory import Environment, Space, read_inventory
from ..quota import Quota, QuotaReport, parse_quota_report
from ..runner import join_command
from ..sizes import size_text
from ..targets import Session, Target
from .common import Progress, capabilities, full_path, has_shell

log = logging.getLogger(__name__)

# One command that runs whichever quota reports the target has; each starts with a tagged line saying which.
# The site's own report covers every space when there is one; otherwise lfs for each root on Lustre (asked
# with the mount point of the root's file system, as `lfs getname` lists them) and Linux's quota.
_REPORT = "@@envdesk-quota "
_QUOTA_SCRIPT = r"""
envdesk_user=$(id -un 2>/dev/null || printf '%s' "$USER")
if command -v diskusage_report >/dev/null 2>&1; then
  echo '@@envdesk-quota diskusage_report'; diskusage_report 2>&1
elif command -v uquota >/dev/null 2>&1; then
  echo '@@envdesk-quota uquota'; uquota 2>&1
else
  if command -v lfs >/dev/null 2>&1; then
    envdesk_mounts=$(lfs getname 2>/dev/null | awk '{print $2}')
    for envdesk_path in FOLDERS; do
      envdesk_mount=$(df -P "$envdesk_path" 2>/dev/null | awk 'NR==2 {print $6}')
      if [ -n "$envdesk_mount" ] && printf '%s\n' "$envdesk_mounts" | grep -qxF -- "$envdesk_mount"; then
        printf '@@envdesk-quota lfs %s %s\n' "$envdesk_mount" "$envdesk_path"
        lfs quota -u "$envdesk_user" "$envdesk_mount" 2>&1
      fi
    done
  fi
  if command -v quota >/dev/null 2>&1; then
    envdesk_out=$(quota -s -w 2>&1)
    case "$envdesk_out" in *"nvalid option"*|*"sage:"*) envdesk_out=$(quota -s 2>&1);; esac
    echo '@@envdesk-quota quota'; printf '%s\n' "$envdesk_out"
  fi
fi
true
"""


def quota_script(folders: Sequence[str]) -> str:
    """The shell text of the quota command, asking lfs about the file systems of `folders` (quoted)."""
    return _QUOTA_SCRIPT.replace("FOLDERS", join_command(folders) if folders else "''")


def parse_quota_output(text: str) -> list[QuotaReport]:
    """The reports in the output of quota_script, one per tagged section ('lfs MOUNT FOLDER': lfs's report of
    the file system holding FOLDER, whose quotas get that folder as their path)."""
    sections: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith(_REPORT):
            sections.append((line[len(_REPORT):], []))
        elif sections:
            sections[-1][1].append(line)
    reports = []
    for tag, lines in sections:
        words = tag.split(" ", 2)
        lustre = words[0] == "lfs" and len(words) == 3
        report = parse_quota_report("\n".join(lines), " ".join(words[:2]) if lustre else words[0])
        if lustre:
            report = replace(report, quotas=tuple(replace(quota, path=words[2]) for quota in report.quotas))
        reports.append(report)
    return reports


def read_quotas(target: Target, folders: Sequence[str], progress: Progress) -> tuple[list[QuotaReport], list[str]]:
    """The target's quota reports, in one command (none where it has no bash, as on Windows); and notes."""
    if not has_shell(target):  # This computer on Windows: no quota tools to ask, and nothing to say of it
        return [], []
    progress.step(f"Reading {target.label}'s quota report")
    try:
        result = target.runner.run_shell(quota_script(folders), cancel=progress.cancel, timeout=120,
                                         label="quota report")
    except (Cancelled, ConnectionFailed, AuthenticationFailed):
        raise
    except EnvDeskError as exc:
        return [], [f"The quota report could not be read: {exc.message}"]
    return parse_quota_output(result.stdout), []


# ---------------------------------------------------------------------------------------------------------
# What this session has measured (for estimates), per session
# ---------------------------------------------------------------------------------------------------------

@dataclass
class _Known:
    usage: dict[tuple[str, str], Environment] = field(default_factory=dict)   # (target, path) -> measured env
    reports: dict[str, "DiskReport"] = field(default_factory=dict)           # target -> its latest report


_KNOWN: "weakref.WeakKeyDictionary[Session, _Known]" = weakref.WeakKeyDictionary()


def _known(session: Session) -> _Known:
    return _KNOWN.setdefault(session, _Known())


def remember_measured(session: Session, target: str, environments: Iterable[Environment]) -> None:
    """Keep the complete measurements of these environments for this session's estimates."""
    known = _known(session).usage
    for env in environments:
        if env.usage is not None and env.usage.complete:
            known[(target, env.path)] = env


# ---------------------------------------------------------------------------------------------------------
# The report: environments by size and files, free space and files per root, quota lines
# ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DiskReport:
    """What a target's environments take and what its file systems and quotas leave."""

    target: str
    label: str
    environments: tuple[Environment, ...]   # measured, the most files first
    space: tuple[Space, ...]
    quotas: tuple[QuotaReport, ...]
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The report as `envdesk disk CLUSTER --json` prints it (scripts depend on this shape)."""
        return {
            "target": self.target,
            "environments": [{"name": env.name, "path": env.path, "kind": env.kind,
                              "package_count": env.package_count,
                              "bytes": env.usage.bytes if env.usage else None,
                              "files": env.usage.files if env.usage else None,
                              "complete": env.usage.complete if env.usage else False}
                             for env in self.environments],
            "space": [{"path": s.path, "free_bytes": s.free_bytes, "total_bytes": s.total_bytes,
                       "free_files": s.free_files, "total_files": s.total_files} for s in self.space],
            "quotas": [report.to_json() for report in self.quotas],
            "notes": list(self.notes),
        }


def _by_files(env: Environment) -> tuple[int, int]:
    return (env.usage.files, env.usage.bytes) if env.usage else (-1, -1)


def disk_report(session: Session, target_name: str, names: Sequence[str] | None = None,
                progress: Progress | None = None) -> DiskReport:
    """Measure the target's environments (only those `names`d, if given) and its roots' free space in one agent
    run, then read its quota report in a second command. The cluster keeps each environment's figures with its
    listing until it changes, so measuring again costs a walk only of what changed."""
    progress = progress or Progress()
    target = session.target(target_name)
    progress.step(f"Measuring the environments on {target.label}")
    inventory = read_inventory(target.runner, target.roots, names=names or (), cancel=progress.cancel, light=True,
                               usage=True, space=True)
    quotas, notes = read_quotas(target, [space.path for space in inventory.space], progress)
    incomplete = [env.name for env in inventory.environments if env.usage is not None and not env.usage.complete]
    if incomplete:
        notes.append(f"Not measured to the end in the time allowed (the figures are lower bounds): "
                     f"{', '.join(incomplete)}.")
    notes.extend(inventory.errors)
    remember_measured(session, target.name, inventory.environments)
    report = DiskReport(target.name, target.label, tuple(sorted(inventory.environments, key=_by_files,
                                                                reverse=True)),
                        inventory.space, tuple(quotas), tuple(notes))
    _known(session).reports[target.name] = report
    return report


# ---------------------------------------------------------------------------------------------------------
# Emptying the installers' caches
# ---------------------------------------------------------------------------------------------------------

CACHE_TOOLS = ("pip", "uv", "conda")

@dataclass(frozen=True)
class Cleaned:
    """One installer's cache, measured before and after it was emptied (`skipped`: why it was not, or why its
    command failed)."""

    tool: str
    folders: tuple[str, ...] = ()
    bytes_before: int = 0
    bytes_after: int = 0
    files_before: int = 0
    files_after: int = 0
    skipped: str = ""

    @property
    def freed_bytes(self) -> int:
        return max(0, self.bytes_before - self.bytes_after)

    @property
    def freed_files(self) -> int:
        return max(0, self.files_before - self.files_after)

    def summary(self) -> str:
        """One line for people: what was freed, or why nothing was."""
        if self.skipped and not self.folders:
            return f"{self.tool}: nothing done ({self.skipped})."
        freed = f"{self.tool}: freed {size_text(self.freed_bytes)} and {self.freed_files:,} files"
        return f"{freed}, but {self.skipped}." if self.skipped else f"{freed}."

    def to_json(self) -> dict[str, Any]:
        return {"tool": self.tool, "folders": list(self.folders), "freed_bytes": self.freed_bytes,
                "freed_files": self.freed_files, "bytes_before": self.bytes_before, "bytes_after": self.bytes_after,
                "files_before": self.files_before, "files_after": self.files_after, "skipped": self.skipped or None}


@dataclass(frozen=True)
class _Tool:
    """How to ask one installer where its cache is and to empty it, on one target."""

    name: str
    where: tuple[str, ...]
    clean: tuple[str, ...]
    modules: tuple[str, ...]
    shown: str   # the cleaning command as people know it


def cache_tools(caps: Capabilities, python: str, which: Sequence[str]) -> tuple[list[_Tool], list[Cleaned]]:
    """The installers to clean that the target has (pip with its Python's modules, uv, conda/mamba/micromamba),
    and those it lacks as skipped."""
    tools, missing = [], []
    for name in which:
        if name == "pip":
            modules = choose_python(caps, None, "venv").modules
            pip = (python, "-m", "pip")
            tools.append(_Tool(name, (*pip, "cache", "dir"), (*pip, "cache", "purge"), tuple(modules),
                               "pip cache purge"))
        elif name == "uv" and caps.uv() is not None:
            command, uv_modules = caps.uv() or ("uv", [])
            tools.append(_Tool(name, (command, "cache", "dir"), (command, "cache", "clean"), tuple(uv_modules),
                               "uv cache clean"))
        elif name == "conda" and caps.conda_tool:
            tool = caps.conda_tool
            tools.append(_Tool(name, (tool, "info", "--json"), (tool, "clean", "--all", "--yes"), (),
                               "conda clean --all --yes"))
        else:
            missing.append(Cleaned(name, skipped=f"{name} is not installed there"))
    return tools, missing


def _cache_folders(tool: _Tool, stdout: str) -> list[str]:
    """The cache folders an installer named: pip's and uv's `cache dir` line, conda's package caches."""
    if tool.name != "conda":  # the folder is the last line (a warning may come first); C:\\... on Windows
        lines = [line.strip() for line in stdout.splitlines()
                 if PurePosixPath(line.strip()).is_absolute() or PureWindowsPath(line.strip()).is_absolute()]
        return lines[-1:]
    info = json.loads(stdout[stdout.find("{"):])
    folders = info.get("pkgs_dirs") or info.get("package cache") or []
    return [str(folder) for folder in folders if isinstance(folder, str)]


def _measure(target: Target, folders: Sequence[str], progress: Progress) -> dict[str, tuple[int, int]]:
    """(bytes, files) of each folder that exists and is the user's to clean, in one agent run."""
    if not folders:
        return {}
    answer = checked(run_agent(target.runner, {"action": "measure_folders", "folders": list(folders)},
                               progress.cancel, timeout=ACTION_TIMEOUT))
    return {path: (int(found["bytes"]), int(found["files"])) for path, found in answer["measured"].items()}


def clean_caches(session: Session, target_name: str, which: str | Sequence[str] = "all",
                 progress: Progress | None = None) -> list[Cleaned]:
    """Empty pip's, uv's and conda's download caches on the target (`which`: one of them, or "all"), each with
    its own command (pip cache purge, uv cache clean, conda clean --all --yes), reporting what each freed: its
    cache folders measured before and after."""
    progress = progress or Progress()
    wanted = list(CACHE_TOOLS) if which == "all" else [which] if isinstance(which, str) else list(which)
    unknown = [name for name in wanted if name not in CACHE_TOOLS]
    if unknown:
        raise InvalidInput(f"EnvDesk cannot clean {', '.join(unknown)}'s cache.", "Choose pip, uv, conda or all.")
    target = session.target(target_name)
    caps = capabilities(session, target, progress)
    tools, results = cache_tools(caps, target.runner.python_command(caps), wanted)
    folders: dict[str, list[str]] = {}
    for tool in tools:
        progress.step(f"Finding {tool.name}'s cache on {target.label}")
        found = target.runner.run(tool.where, modules=tool.modules, cancel=progress.cancel)
        try:
            folders[tool.name] = _cache_folders(tool, found.stdout) if found.ok else []
        except (ValueError, AttributeError):
            folders[tool.name] = []
        if not folders[tool.name]:
            last = next((line for line in reversed(found.stderr.splitlines()) if line.strip()), "")
            results.append(Cleaned(tool.name, skipped=f"{tool.name} named no cache folder" +
                                   (f" ({last.strip()})" if last else "")))
    tools = [tool for tool in tools if folders.get(tool.name)]
    every = sorted({folder for tool in tools for folder in folders[tool.name]})
    progress.step("Measuring the caches")
    before = _measure(target, every, progress)
    failed: dict[str, str] = {}
    for tool in tools:  # one failing (a cache pip was told not to keep ...) does not stop the others
        progress.step(f"Emptying {tool.name}'s cache ({tool.shown})")
        done = target.runner.run(tool.clean, modules=tool.modules, on_line=progress.on_line, cancel=progress.cancel)
        if not done.ok:
            last = next((line.strip() for line in reversed(done.stderr.splitlines()) if line.strip()), "")
            failed[tool.name] = f"{tool.shown} failed" + (f": {last}" if last else "")
    progress.step("Measuring the caches again")
    after = _measure(target, every, progress)
    for tool in tools:
        mine = [folder for folder in folders[tool.name] if folder in before]
        results.append(Cleaned(tool.name, tuple(mine), sum(before[f][0] for f in mine),
                               sum(after.get(f, (0, 0))[0] for f in mine), sum(before[f][1] for f in mine),
                               sum(after.get(f, (0, 0))[1] for f in mine), failed.get(tool.name, "")))
    order = {name: number for number, name in enumerate(CACHE_TOOLS)}
    return sorted(results, key=lambda cleaned: order.get(cleaned.tool, len(order)))


# ---------------------------------------------------------------------------------------------------------
# Before a build: will it fit?
# ---------------------------------------------------------------------------------------------------------

BASE_FILES = {"conda": 12_000, "venv": 1_700, "virtualenv": 1_700, "uv": 25}
"""Files (with folders) of an environment with nothing installed yet: a venv with pip (CPython 3.11's venv
holds 1,659), a uv venv without pip (22), a conda environment with python and its libraries (tzdata, ncurses'
terminfo, tk and the standard library make it about 12,000)."""
FILES_PER_PACKAGE = {"conda": 700, "other": 400}
"""Files per installed package when none of the target's environments was measured: 350 files and 50 folders
per distribution in a typical scientific venv (numpy's 900 with requests' 80); about 700 in conda
environments (290,000 files for 400 packages), whose packages bring their shared libraries and headers."""
BASE_BYTES = {"conda": 200 * 1024 ** 2, "venv": 23 * 1024 ** 2, "virtualenv": 23 * 1024 ** 2, "uv": 64 * 1024}
BYTES_PER_PACKAGE = {"conda": 25 * 1024 ** 2, "other": 7 * 1024 ** 2}


@dataclass(frozen=True)
class Estimate:
    """What a new environment will take, and what the figures are based on."""

    files: int
    bytes: int
    basis: str


def _packages(count: int) -> str:
    return f"{count} package" if count == 1 else f"{count} packages"


def _family(kind: str) -> str:
    return "conda" if kind == "conda" else "other"


def estimate_new(session: Session, target_name: str, kind: str, packages: int,
                 source: dict[str, Any] | None = None) -> Estimate:
    """What a new `kind` environment of `packages` packages will take on the target: the source environment's
    measured figures for an import or copy (`source`: the spec's {"cluster", "path"}) when this session
    measured it; else packages × the mean files per package of the target's environments measured in this
    session (same kind family first); else the typical figures above."""
    known = _known(session).usage
    if source and isinstance(source.get("path"), str):
        measured = known.get((str(source.get("cluster", "")), source["path"]))
        if measured is not None and measured.usage is not None:
            return Estimate(measured.usage.files, measured.usage.bytes,
                            f"the measured size of {measured.name}")
    base_files, base_bytes = BASE_FILES.get(kind, BASE_FILES["venv"]), BASE_BYTES.get(kind, BASE_BYTES["venv"])
    mine = [env for (target, _), env in known.items() if target == target_name and env.package_count]
    alike = [env for env in mine if _family(env.kind) == _family(kind)] or mine
    if alike:
        count = sum(env.package_count for env in alike)
        per_file = sum(env.usage.files for env in alike if env.usage) / count
        per_byte = sum(env.usage.bytes for env in alike if env.usage) / count
        return Estimate(base_files + round(packages * per_file), base_bytes + round(packages * per_byte),
                        f"{_packages(packages)} at the mean of {len(alike)} measured environment(s) there")
    family = _family(kind)
    files, size = FILES_PER_PACKAGE[family], BYTES_PER_PACKAGE[family]
    return Estimate(base_files + packages * files, base_bytes + packages * size,
                    f"a typical {kind} environment of {_packages(packages)}")


def _quotas_of(session: Session, target: Target, caps: Capabilities) -> list[Quota]:
    """The target's quotas as last read in this session: its latest disk report, else the probe's report."""
    report = _known(session).reports.get(target.name)
    if report is not None:
        return [quota for found in report.quotas for quota in found.quotas]
    return list(parse_quota_report("\n".join(caps.quota)).quotas) if caps.quota else []


def _quota_for(quotas: Sequence[Quota], folder: str) -> Quota | None:
    """The quota of the file system holding `folder`: the most specific one, and among a space's quotas
    (a user's and their groups') the one whose owner's name is part of the folder's path."""
    covering = [quota for quota in quotas if quota.covers(folder)]
    if not covering:
        return None
    parts = set(folder.split("/"))
    return max(covering, key=lambda quota: (quota.covered_by(folder), quota.owner.split(" ")[-1] in parts))


def check_room(session: Session, target: Target, estimate_files: int, estimate_bytes: int, *,
               space: Space | None, root: str | None = None, progress: Progress | None = None) -> list[str]:
    """Warnings, with the figures, when a new environment of about `estimate_files` files and `estimate_bytes`
    bytes would not fit in `root` (default: the target's first root): in its file system's free files or
    `space` (as the build's begin read it there; None: not known) or in the quota there (as last read in this
    session). Refuses nothing, runs nothing."""
    progress = progress or Progress()
    caps = capabilities(session, target, progress)
    root = root or target.roots[0]
    folder = full_path(root, caps.home).rstrip("/") or "/"
    warnings = []
    where = f"the file system of {root}"
    if space is not None and space.free_files is not None and estimate_files > space.free_files:
        warnings.append(f"This would use about {estimate_files:,} files, and {where} has {space.free_files:,} "
                        "left.")
    if space is not None and space.free_bytes is not None and estimate_bytes > space.free_bytes:
        warnings.append(f"This would use about {size_text(estimate_bytes)}, and {where} has "
                        f"{size_text(space.free_bytes)} free.")
    quota = _quota_for(_quotas_of(session, target, caps), folder)
    if quota is not None:
        files_left, bytes_left = quota.files_left, quota.bytes_left
        if files_left is not None and estimate_files > files_left:
            warnings.append(f"This would use about {estimate_files:,} of the {files_left:,} files you have left on "
                            f"{quota.filesystem} (its quota: {quota.limit_files:,} files).")
        if bytes_left is not None and estimate_bytes > bytes_left:
            warnings.append(f"This would use about {size_text(estimate_bytes)} of the {size_text(bytes_left)} you "
                            f"have left on {quota.filesystem} (its quota: {size_text(quota.limit_bytes)}).")
    return warnings


ROOM_HINT = ("The environment may not fit: delete environments you no longer need, empty the installers' caches "
             "(envdesk disk {target} --clean all, or View → Disk… in the app), or build it in another folder.")


def warn_before_build(session: Session, target: Target, root: str | None, *, space: Any, name: str, kind: str,
                      packages: int, source: dict[str, Any] | None = None,
                      progress: Progress | None = None) -> list[str]:
    """At the start of a create, import or copy: say (as a step, and in the returned notes) when the new
    environment `name` would not fit where it goes. `space`: what the build's begin read of the file system
    there (its answer's "space" list; anything else: not known). Runs no command; a check that cannot be made
    says nothing: the build goes ahead either way."""
    progress = progress or Progress()
    estimate = estimate_new(session, target.name, kind, packages, source)
    found = [Space.from_agent(entry) for entry in space] if isinstance(space, list) else []
    try:
        warnings = check_room(session, target, estimate.files, estimate.bytes, root=root, progress=progress,
                              space=next((entry for entry in found if entry is not None), None))
    except (Cancelled, ConnectionFailed, AuthenticationFailed):
        raise
    except EnvDeskError as exc:
        log.info("could not check the room for %s on %s: %s", name, target.name, exc.message)
        return []
    hint = ROOM_HINT.format(target=target.name)
    notes = [f"{warning} {hint} (Estimate: {estimate.basis}.)" for warning in warnings]
    for note in notes:
        progress.step(f"Warning: {note}")
    return notes
