"""Python modules behind others in an Lmod hierarchy, found by asking Lmod's spider.

On an EasyBuild-style cluster (HPC2N, UPPMAX) `Python/3.11.3` appears only once `GCC/12.3.0` is loaded: the
compiler's module adds the folder that holds it to MODULEPATH, so `module avail` never lists it. Lmod's own
answers say where it is: `module -t spider` lists every module of the whole tree, and `module spider
NAME/VERSION` names the modules to load first ("You will need to load all module(s) on any one of the lines below
before the "Python/3.11.3" module is available to load"). SPIDER_PROBE asks both inside the probe's one command,
only on Lmod (Environment Modules answers `spider` differently, or not at all), only where `module avail` lists no
Python module at all (a spider of a big tree costs every probe up to seconds), and only for the Python modules
`module avail` does not list; `prerequisites` reads the answer.

A spider walks the whole tree unless Lmod has a spider cache (a site's, or the one it keeps in ~/.cache/lmod once a
walk took longer than 2 s), which on a big tree without one takes long: each spider is bounded to
SPIDER_SECONDS, and a bound that was reached is reported (@@spider_timeout) rather than failing the probe.
"""
from __future__ import annotations

import re

from . import validate
from .errors import InvalidInput

SPIDER_SECONDS = 30
"""How long each of the probe's spider runs may take before it is given up (the probe's own limit is 120 s)."""

SPIDER_PROBE = r"""
if [ -n "${LMOD_CMD:-}" ] && [ -x "$LMOD_CMD" ] && ! printf '%s\n' "$avail" | grep -qiE '^python3?/[0-9]'; then
  envdesk_spider() {
    if command -v timeout >/dev/null 2>&1; then
      LMOD_REDIRECT=no timeout """ + str(SPIDER_SECONDS) + r""" "$LMOD_CMD" bash "$@" 2>&1 >/dev/null
    else
      LMOD_REDIRECT=no "$LMOD_CMD" bash "$@" 2>&1 >/dev/null
    fi
  }
  listed=$(envdesk_spider -t spider) || [ $? != 124 ] || echo "@@spider_timeout """ + str(SPIDER_SECONDS) + r""""
  direct=$(printf '%s\n' "$avail" | sed 's/[ (<].*//')
  behind=$(printf '%s\n' "$listed" | sed 's/[ (<].*//' | grep -iE '^python3?/[0-9][A-Za-z0-9._+-]*$' | sort -u \
    | while read -r found; do printf '%s\n' "$direct" | grep -qxF "$found" || echo "$found"; done)
  if [ -n "$behind" ]; then
    details=$(envdesk_spider spider $behind) || [ $? != 124 ] || echo "@@spider_timeout """ + str(SPIDER_SECONDS) \
    + r""""
    printf '%s\n' "$details" | sed 's/^/@@spider /'
  fi
fi
"""
"""Shell text for the probe's module branch, after `avail` holds what `module -t avail` printed. Lmod is run as
the `module` function runs it ($LMOD_CMD), so that `timeout` can bound it; its listing is on stderr (stdout holds
shell text the function would eval, unused here), LMOD_REDIRECT=no keeping it there."""

_NEEDED = re.compile(r"You will need to load all module\(s\) on any one of the lines below\s+before the\s+"
                     r"\"(?P<module>[^\"\s]+)\"\s+module is available to load\.[ \t]*\n"
                     r"(?:[ \t]*\n)?(?P<lines>(?:[ \t]+\S[^\n]*(?:\n|$))+)")


def prerequisites(text: str) -> dict[str, tuple[str, ...]]:
    """What `module spider NAME/VERSION ...` printed (`text`), as {module: the modules to load before it}: of
    the lines Lmod gives (each one way to reach it), the first with the fewest modules. A module Lmod says can
    be loaded directly is not in it, nor one whose lines hold anything but module names."""
    return {module: min(found, key=len) for module, found in ways(text).items()}


def ways(text: str) -> dict[str, list[tuple[str, ...]]]:
    """What `module spider NAME/VERSION ...` printed (`text`), as {module: every line Lmod gives of modules to load
    before it, in its order}; lines holding anything but module names are left out."""
    found: dict[str, list[tuple[str, ...]]] = {}
    for match in _NEEDED.finditer(text):
        lines = [tuple(line.split()) for line in match.group("lines").splitlines() if line.strip()]
        lines = [way for way in lines if all(_is_module(name) for name in way)]
        if lines:
            found[match.group("module")] = lines
    return found


def _is_module(name: str) -> bool:
    """Whether `name` is a module name `module load` may be given (never shell text)."""
    try:
        validate.module_name(name)
    except InvalidInput:
        return False
    return True
