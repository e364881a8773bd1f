"""Probing a target: what it offers, asked in one command on a cluster and looked up directly here.

Each runner answers Runner.probe with these pieces; `probe` is what operations and the app call.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .capabilities import Capabilities
from .runner import CancelToken

if TYPE_CHECKING:
    from .targets import Target

PROBE_SCRIPT = r"""
echo "@@home $HOME"
for t in python3 uv virtualenv conda mamba micromamba; do
  p=$(command -v "$t" 2>/dev/null) && echo "@@tool $t $p"
done
[ -x "$HOME/.local/bin/uv" ] && echo "@@tool uv-local $HOME/.local/bin/uv"
python3 -c 'import sys; print("@@python %d.%d.%d" % sys.version_info[:3])' 2>/dev/null
df -Pk "$HOME" 2>/dev/null | awk 'NR==2 {print "@@freekb " $4}'
if command -v diskusage_report >/dev/null 2>&1; then
  diskusage_report 2>/dev/null | head -n 12 | sed 's/^/@@quota /'
elif command -v quota >/dev/null 2>&1; then
  quota -s 2>/dev/null | head -n 12 | sed 's/^/@@quota /'
fi
if type module >/dev/null 2>&1; then
  echo "@@modules yes"
  module -t avail 2>&1 | sed 's/^/@@avail /'
fi
true
"""
"""Shell text a POSIX target runs to report itself, one @@-tagged line per finding (see parse_probe)."""


def parse_probe(text: str) -> Capabilities:
    """The Capabilities in the output of PROBE_SCRIPT (lines without a tag are ignored)."""
    caps = Capabilities()
    for line in text.splitlines():
        if not line.startswith("@@"):
            continue
        tag, _, rest = line[2:].partition(" ")
        if tag == "home":
            caps.home = rest
        elif tag == "tool":
            name, _, path = rest.partition(" ")
            caps.tools[name] = path
        elif tag == "python":
            caps.system_python = rest.strip()
        elif tag == "freekb" and rest.strip().isdigit():
            caps.free_bytes = int(rest.strip()) * 1024
        elif tag == "quota":
            caps.quota.append(rest.rstrip())
        elif tag == "modules":
            caps.has_modules = True
        elif tag == "avail":
            name = re.sub(r"\s*\(.*\)\s*$", "", rest.strip())
            if name and not name.endswith((":", "/")) and " " not in name:
                caps.modules.append(name)
    return caps


def probe_this_computer() -> Capabilities:
    """What this computer offers, looked up without running a command (works on every OS)."""
    home = str(Path.home())
    caps = Capabilities(home=home, system_python="%d.%d.%d" % sys.version_info[:3])
    caps.tools["python3"] = sys.executable
    if getattr(sys, "frozen", False):  # the standalone app: its executable is the app, not a Python
        _installed_python(caps)
    for tool in ("uv", "virtualenv", "conda", "mamba", "micromamba"):
        found = shutil.which(tool)
        if found:
            caps.tools[tool] = found
    try:
        caps.free_bytes = shutil.disk_usage(home).free
    except OSError:
        pass
    return caps


def _installed_python(caps: Capabilities) -> None:
    """For the standalone app: the Python installed on this computer makes the environments (none: no kinds
    that need one)."""
    del caps.tools["python3"]
    caps.system_python = None
    found = shutil.which("python3") or shutil.which("python")
    if not found:
        return
    try:
        answer = subprocess.run([found, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return
    if answer.returncode == 0 and answer.stdout.strip():
        caps.tools["python3"], caps.system_python = found, answer.stdout.strip()


def probe(target: Target, cancel: CancelToken | None = None) -> Capabilities:
    """Ask the target what it offers, in one command (none for this computer)."""
    return target.runner.probe(cancel)
