"""Making a module list loadable on a target: prerequisites are found by asking Lmod itself."""
from __future__ import annotations

import re
import shlex

from ..errors import InvalidInput
from ..module_spider import prerequisites, ways
from ..runner import module_load
from ..targets import Target
from .common import Progress

_PREREQ = re.compile(r"without these module\(s\) loaded:[ \t]*\n((?:[ \t]+\S[^\n]*\n?)+)", re.I)


def loadable_modules(target: Target, modules: list[str], progress: Progress,
                     notes: list[str] | None = None) -> list[str]:
    """`modules` with any prerequisites Lmod names put in front, each given without a version named with the one
    that loaded (`python` as python/3.11.5: a later default must not change the environment); refuses modules that
    do not load. A load is judged by Lmod's own result (its status or, after a warning, what loaded; its error
    lines), never by words the login scripts print; Lmod's warnings about a module that loaded go to `notes`.
    Prerequisites are what Lmod's refusal names (a module's prereq()) or, for a module behind others in a
    hierarchy (Lmod: it exists but cannot be loaded as requested), what `module spider NAME/VERSION` says to load
    first (one more command); such a module typed without a version is the one Lmod's default would load."""
    if not modules or not target.runner.has_module_system:
        return list(modules)
    wanted = list(modules)
    for _ in range(4):
        result = target.runner.run_shell(f"{module_load(wanted)} && {_LIST}", cancel=progress.cancel,
                                         timeout=120, label=f"module load {' '.join(wanted)}")
        missing = _PREREQ.search(result.stderr)
        if result.ok and not _LMOD_ERROR.search(result.stderr):
            if notes is not None:
                notes.extend(f"{' '.join(wanted)}: Lmod warns: {warning}" for warning in _warnings(result.stderr))
            return _with_versions(wanted, result.stderr)
        if missing:
            needed = [m for line in missing.group(1).splitlines() for m in line.split() if m not in wanted]
        else:
            needed, named, said = _behind_others(target, wanted, result.stderr, progress)
            if not needed and named == wanted:
                raise _not_loaded(target.label, wanted, result.stderr)
            wanted = named
            if notes is not None:
                notes.extend(said)
            if not needed:
                continue  # a name given its version: loaded as that
        if not needed:
            break
        wanted = needed + wanted
    raise InvalidInput(f"{target.label} could not load the modules {' '.join(wanted)}.")


_HIDDEN = re.compile(r"exist\s+but\s+cannot\s+be\s+loaded\s+as\s+requested:\s*((?:\"[^\"\n]+\"[,\s]*)+)")
"""Lmod's words for modules its spider finds behind others (Lmod 7 and later: 'These module(s) or extension(s)
exist but cannot be loaded as requested: "Python/3.11.3"', with 'Try: "module spider Python/3.11.3"')."""


def _behind_others(target: Target, wanted: list[str], text: str,
                   progress: Progress) -> tuple[list[str], list[str], list[str]]:
    """For the modules of `wanted` that Lmod's refusal (`text`) says sit behind others: the modules to load before
    them, as `module spider NAME/VERSION` gives them (the first way with the fewest modules), `wanted` with each
    such name typed without a version given the one Lmod's default would load (the newest `module -t spider NAME`
    lists, in Lmod's order), and notes saying which was taken; nothing needed where it names no such module."""
    hidden = _HIDDEN.search(text)
    names = [name for name in re.findall(r'"([^"]+)"', hidden.group(1)) if name in wanted] if hidden else []
    if not names:
        return [], wanted, []
    asked = target.runner.run_shell(" ; ".join(map(_spider_text, names)), cancel=progress.cancel, timeout=120,
                                    label=f"module spider {' '.join(names)}")
    listed = re.findall(r"^@@version (\S+) (\S+)$", asked.stdout, re.M)
    picked = dict(re.findall(r"^@@picked (\S+) (\S+)$", asked.stdout, re.M))
    wanted = [picked.get(module, module) for module in wanted]
    found = prerequisites(asked.stdout)
    needed = list(dict.fromkeys(m for name in names for m in found.get(picked.get(name, name), ())
                                if m not in wanted))
    notes = [f"{name}: {target.label}'s Lmod has {', '.join(full for typed, full in listed if typed == name)} behind "
             f"other modules; took {full}, the newest, as Lmod's default would"
             + (f", after {' '.join(found[full])}" if found.get(full) else "") + "."
             for name, full in picked.items()]
    return needed, wanted, notes


def _spider_text(name: str) -> str:
    """Shell text asking Lmod's spider what to load before `name`; for a name without a version, first which
    versions it lists ('@@version NAME FULL' each, in Lmod's order), then about the last ('@@picked NAME FULL')."""
    quoted = shlex.quote(name)
    if "/" in name:
        return f"module spider {quoted} 2>&1"
    return (f"envdesk_v=; for envdesk_m in $(module -t spider {quoted} 2>&1); do case \"$envdesk_m\" in {quoted}/?*) "
            f"envdesk_v=$envdesk_m; printf '@@version %s %s\\n' {quoted} \"$envdesk_m\";; esac; done; "
            f"[ -z \"$envdesk_v\" ] || {{ printf '@@picked %s %s\\n' {quoted} \"$envdesk_v\"; "
            f"module spider \"$envdesk_v\" 2>&1; }}")


def ways_behind(target: Target, modules: list[str], progress: Progress) -> dict[str, list[tuple[str, ...]]]:
    """For `modules` (NAME/VERSION) that `module avail` does not list: every way Lmod's spider gives to reach each
    one it finds behind others (the modules to load first), in one command; {} where the target has no Lmod."""
    if not modules:
        return {}
    asked = target.runner.run_shell(f'[ -z "${{LMOD_CMD:-}}" ] || module spider {shlex.join(modules)} 2>&1',
                                    cancel=progress.cancel, timeout=120, label=f"module spider {' '.join(modules)}")
    return {module: found for module, found in ways(asked.stdout).items() if module in modules}


_LIST = "{ echo ENVDESK-LOADED >&2; module -t list; true; }"
"""What loaded, one full name a line (Lmod's terse list goes to stderr), after a marker; a module system that
cannot list does not fail the load."""


def _with_versions(wanted: list[str], text: str) -> list[str]:
    """`wanted`, each name given without a version, or with part of one, as the loaded module it stands for
    (python -> python/3.11.5, python/3.11 -> python/3.11.5, as Lmod's extended default loads it): the environment
    keeps the Python it was made with when the cluster's default moves on (T20)."""
    loaded = [line.strip() for line in text.partition("ENVDESK-LOADED")[2].splitlines() if "/" in line]

    def full(module: str) -> str:
        if module in loaded:
            return module
        return next((name for name in loaded if (name.split("/")[0] == module if "/" not in module
                                                  else name.startswith(module + "."))), module)
    return [full(module) for module in wanted]


_UNKNOWN = re.compile(r"module\(s\) are unknown:\s*((?:\"[^\"\n]+\"\s*)+)")
_LMOD_ERROR = re.compile(r"Lmod has detected the following error:\s*(\S[^\n]*)")
_LMOD_WARNING = re.compile(r"Lmod Warning:\s*(.*?)\s*(?:\n\s*\n|While processing|\Z)", re.S)


def _warnings(text: str) -> list[str]:
    """Lmod's warnings in `text` ("Lmod Warning: ... is deprecated"), each on one line."""
    return [" ".join(found.split()) for found in _LMOD_WARNING.findall(text) if found.strip()]


def _not_loaded(label: str, wanted: list[str], text: str) -> InvalidInput:
    """Why `module load` failed, in Lmod's words where it gave them (its help text after them is no reason);
    `text` is what the load printed on stderr, where Lmod writes."""
    if re.search(r"\bmodule: (?:command )?not found", text):
        return InvalidInput(f"{label}'s login has no module command, so the modules {' '.join(wanted)} cannot be "
                            "loaded there.", "Leave the modules out (EnvDesk then uses the Python the login finds), "
                            "or check your login files (~/.bash_profile, ~/.bashrc) for a line that removes "
                            "'module', or ask the cluster's support how modules are set up there.")
    unknown = _UNKNOWN.search(text)
    if unknown:
        names = re.findall(r'"([^"]+)"', unknown.group(1))
        return InvalidInput(f"{label} has no module {', '.join(names)}, so nothing was made.",
                            "Check the spelling and the version (module names are case-sensitive): "
                            f"'module avail' on {label} lists the modules it has.")
    error = _LMOD_ERROR.search(text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = error.group(1) if error else (lines[-1] if lines else "")
    return InvalidInput(f"{label} could not load the modules {' '.join(wanted)}" + (f": {reason}" if reason else "."),
                        "Check the module names with 'module avail' on the cluster.")
