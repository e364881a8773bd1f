"""Probing a target: what it offers, asked in one command on a cluster and looked up directly here.

Each runner answers Runner.probe with these pieces; `probe` is what operations and the app call.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .capabilities import Capabilities
from .module_spider import SPIDER_PROBE, prerequisites
from .runner import CancelToken

if TYPE_CHECKING:
    from .targets import Target

CONDA_HOMES = ("miniforge3", "mambaforge", "miniconda3", "anaconda3")
"""The folders of the home where conda's installers put conda by default: where it is found without `conda init`."""
CONDA_PROBE = r"""
conda_exe=$(command -v conda 2>/dev/null)
case "$conda_exe" in /*) ;; *)
  conda_exe=
  named=$(sed -n "s/^__conda_setup=\"\$('\([^']*\)' 'shell\.bash' 'hook'.*/\1/p" ~/.bashrc 2>/dev/null | head -n 1)
  for c in "${CONDA_EXE:-}" "$named" \
      """ + " ".join(f'"$HOME/{folder}/bin/conda"' for folder in CONDA_HOMES) + r"""
  do
    if [ -n "$c" ] && [ -x "$c" ]; then conda_exe=$c; echo "@@tool conda $c"; break; fi
  done ;;
esac
mamba_exe=$(command -v mamba 2>/dev/null)
case "$mamba_exe" in /*) ;; *)
  mamba_exe=
  for m in "${MAMBA_EXE:-}" "${conda_exe%/*}/mamba"; do
    case "${m##*/}" in mamba) if [ -x "$m" ]; then mamba_exe=$m; echo "@@tool mamba $m"; break; fi ;; esac
  done ;;
esac
case "$(command -v micromamba 2>/dev/null)" in /*|"") ;; *)
  case "${MAMBA_EXE:-}" in */micromamba) [ -x "$MAMBA_EXE" ] && echo "@@tool micromamba $MAMBA_EXE" ;; esac ;;
esac
if [ -n "$conda_exe" ]; then
  conda_base=$(cd "$(dirname "$(readlink -f "$conda_exe")")/.." 2>/dev/null && pwd)
  record=$(ls "$conda_base"/conda-meta/conda-[0-9]*.json 2>/dev/null | head -n 1)
  if [ -n "$record" ]; then
    record=${record##*/conda-}; echo "@@conda_version ${record%%-*}"
  else
    "$conda_exe" --version 2>/dev/null | sed -n 's/^conda \([0-9][0-9.]*\).*/@@conda_version \1/p'
  fi
  if ls "$conda_base"/conda-meta/conda-libmamba-solver-[0-9]*.json >/dev/null 2>&1; then
    echo "@@conda_libmamba yes"
    [ -z "$mamba_exe" ] && "$conda_exe" config --show-sources 2>/dev/null \
      | sed -n 's/^solver: *\([A-Za-z]*\).*$/@@conda_solver_set \1/p'
  fi
fi
"""
"""How the probe finds conda without the set-up `conda init` wrote in ~/.bashrc (which EnvDesk never runs or
edits; it is usually skipped by non-interactive shells anyway): the path that set-up names, $CONDA_EXE, or
where conda's installers put it. It reports conda's version from its base's conda-meta record (no Python to
start), whether conda-libmamba-solver is there, and, where it is and there is no mamba (only then does it matter),
the `solver:` conda's own configuration sets (`conda config --show-sources`: every .condarc and CONDA_SOLVER, the
last one counting)."""


PROBE_SCRIPT = r"""
echo "@@home $HOME"
for t in uv virtualenv conda mamba micromamba; do
  p=$(command -v "$t" 2>/dev/null) && echo "@@tool $t $p"
done
[ -x "$HOME/.local/bin/uv" ] && echo "@@tool uv-local $HOME/.local/bin/uv"
""" + CONDA_PROBE.lstrip("\n") + r"""
for t in python3 python; do
  p=$(type -P "$t" 2>/dev/null) || continue
  s=$("$p" -S -c 'import sys
print("%d.%d.%d" % sys.version_info[:3])
try:
    import ensurepip; ensurepip.version()
except Exception:
    print("@@no_ensurepip")' 2>/dev/null) || continue
  v=${s%%[!0-9.]*}
  case "$v" in [0-2].*|3.[0-5].*) ;; [0-9]*) echo "@@tool python3 $p"; echo "@@python $v"
    case "$s" in *@@no_ensurepip*) echo "@@no_ensurepip" ;; esac; break ;; esac
done
df -Pk "$HOME" 2>/dev/null | awk 'NR==2 {print "@@freekb " $4}'
if command -v diskusage_report >/dev/null 2>&1; then
  diskusage_report 2>/dev/null | head -n 12 | sed 's/^/@@quota /'
elif command -v quota >/dev/null 2>&1; then
  quota -s 2>/dev/null | head -n 12 | sed 's/^/@@quota /'
fi
if type module >/dev/null 2>&1; then
  echo "@@modules yes"
  avail=$(module -t avail 2>&1)
  printf '%s\n' "$avail" | sed 's/^/@@avail /'
""" + SPIDER_PROBE.strip("\n") + r"""
fi
true
"""
"""Shell text a POSIX target runs to report itself, one @@-tagged line per finding (see parse_probe); on Lmod, the
Python modules behind others too (module_spider.py). Its Python (as tool python3) is the first program python3 or
python on PATH that is 3.6 or newer, as remote_python's finder takes (T26: CentOS 7's python is 2.7; where only
`python` is a Python 3, cluster test said "(none)"); @@no_ensurepip where that Python cannot put pip in a venv
(ensurepip.version() fails: Debian's and Ubuntu's without python3-venv, whose venv then fails; T26). One start of
each Python asks both."""


_CONDA_VERSION = re.compile(r"\d+\.\d+(?:\.\d+)*")


def parse_probe(text: str) -> Capabilities:
    """The Capabilities in the output of PROBE_SCRIPT (lines without a tag are ignored)."""
    caps = Capabilities()
    spider: list[str] = []
    for line in text.splitlines():
        if not line.startswith("@@"):
            continue
        tag, _, rest = line[2:].partition(" ")
        if tag == "spider":
            spider.append(rest)
            continue
        if tag == "home":
            caps.home = rest
        elif tag == "tool":
            name, _, path = rest.partition(" ")
            caps.tools[name] = path
        elif tag == "python":
            caps.system_python = rest.strip()
        elif tag == "no_ensurepip":
            caps.venv_pip = False
        elif tag == "freekb" and rest.strip().isdigit():
            caps.free_bytes = int(rest.strip()) * 1024
        elif tag == "quota":
            caps.quota.append(rest.rstrip())
        elif tag == "conda_version" and _CONDA_VERSION.fullmatch(rest.strip()):
            caps.conda_version = rest.strip()
        elif tag == "conda_libmamba":
            caps.conda_libmamba = True
        elif tag == "conda_solver_set" and rest.strip().isalpha():
            caps.conda_configured_solver = rest.strip()  # the last source conda reads counts, as in conda
        elif tag == "modules":
            caps.has_modules = True
        elif tag == "avail":
            name = re.sub(r"\s*\(.*\)\s*$", "", rest.strip())
            if name and not name.endswith((":", "/")) and " " not in name:
                caps.modules.append(name)
        elif tag == "spider_timeout":
            caps.spider_gave_up = True
    caps.behind = {module: needs for module, needs in prerequisites("\n".join(spider) + "\n").items()
                   if module not in caps.modules}
    return caps


def probe_this_computer() -> Capabilities:
    """What this computer offers, looked up without running a command (works on every OS)."""
    home = str(Path.home())
    caps = Capabilities(home=home, system_python="%d.%d.%d" % sys.version_info[:3])
    caps.tools["python3"] = sys.executable
    if getattr(sys, "frozen", False):  # the standalone app: its executable is the app, not a Python
        _installed_python(caps)
    else:
        caps.venv_pip = importlib.util.find_spec("ensurepip") is not None  # Debian's Python without python3-venv
    for tool in ("uv", "virtualenv", "conda", "mamba", "micromamba"):
        found = program_not_batch_file(shutil.which(tool))
        if found:
            caps.tools[tool] = found
    if "conda" not in caps.tools:  # installed without `conda init` (or its set-up not read): where installers put it
        where = "Scripts/conda.exe" if sys.platform == "win32" else "bin/conda"
        installed = [Path(home, folder, where) for folder in CONDA_HOMES if Path(home, folder, where).is_file()]
        if installed:
            caps.tools["conda"] = str(installed[0])
    try:
        caps.free_bytes = shutil.disk_usage(home).free
    except OSError:
        pass
    _conda_here(caps)
    return caps


_CONDA_RECORD = re.compile(r"conda-(\d+\.\d+(?:\.\d+)*)-[^-]+\.json")
_SOLVER_SETTING = re.compile(r"^solver:\s*([A-Za-z]+)\s*$", re.MULTILINE)


def _conda_here(caps: Capabilities) -> None:
    """What CONDA_PROBE reports, looked up here without running conda: the version and libmamba from its
    base's conda-meta, and a solver set by CONDA_SOLVER or ~/.condarc."""
    conda = caps.tools.get("conda")
    if not conda:
        return
    try:
        names = [entry.name for entry in (Path(conda).resolve().parent.parent / "conda-meta").iterdir()]
    except OSError:
        names = []
    for name in names:
        found = _CONDA_RECORD.fullmatch(name)
        if found:
            caps.conda_version = found.group(1)
        caps.conda_libmamba = caps.conda_libmamba or name.startswith("conda-libmamba-solver-")
    try:
        setting = _SOLVER_SETTING.findall((Path.home() / ".condarc").read_text(encoding="utf-8", errors="replace"))
    except OSError:
        setting = []
    configured = os.environ.get("CONDA_SOLVER") or (setting[-1] if setting else "")
    caps.conda_configured_solver = configured if configured.isalpha() else None


def program_not_batch_file(found: str | None) -> str | None:
    """The program `found` on PATH, unless it is a Windows batch file: conda's condabin holds conda.bat, which
    CreateProcess runs through cmd.exe, where a requirement's '<' or '>' would redirect (R13). Its conda.exe
    beside (condabin's ..\\Scripts) is taken instead; with none, the tool is not used."""
    if found is None or not found.lower().endswith((".bat", ".cmd")):
        return found
    program = Path(found).parent.parent / "Scripts" / (Path(found).stem + ".exe")
    return str(program) if program.is_file() else None


_ASK_VERSION = "import sys; print(sys.executable); print('%d.%d.%d' % sys.version_info[:3])"


def installed_python(candidates: list[list[str]]) -> tuple[str, str] | None:
    """(executable, version) of the first candidate command that runs Python; Microsoft Store's WindowsApps
    aliases, which open the Store instead (exit 9009), and anything else that fails are passed over (R13: the
    alias stood first on PATH and python.org's installs have no python3.exe, so no Python was found)."""
    for command in candidates:
        if "windowsapps" in command[0].lower().replace("\\", "/").split("/"):
            continue
        try:
            answer = subprocess.run([*command, "-c", _ASK_VERSION], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        lines = answer.stdout.split("\n")
        if answer.returncode == 0 and len(lines) >= 2 and lines[0].strip() and lines[1].strip():
            return lines[0].strip(), lines[1].strip()
    return None


def _installed_python(caps: Capabilities) -> None:
    """For the standalone app: the Python installed on this computer makes the environments (none: no kinds
    that need one). Windows' own launcher (`py -3`) first there, then python and python3 on PATH."""
    del caps.tools["python3"]
    caps.system_python = None
    names = ("py", "python", "python3") if sys.platform == "win32" else ("python3", "python")
    candidates = [[found, "-3"] if name == "py" else [found] for name in names for found in [shutil.which(name)]
                  if found]
    chosen = installed_python(candidates)
    if chosen is not None:
        caps.tools["python3"], caps.system_python = chosen


def probe(target: Target, cancel: CancelToken | None = None) -> Capabilities:
    """Ask the target what it offers, in one command (none for this computer), with how its profile wants conda
    run (solver and channels: see Capabilities.conda_tool) and the kind its preset names (see
    Capabilities.default_kind and installer_uv)."""
    caps = target.runner.probe(cancel)
    if target.profile is not None:
        from .presets import preferred_kind  # the shipped presets are read only where a profile names one
        caps.conda_solver, caps.conda_channels = target.profile.conda_solver, list(target.profile.conda_channels)
        caps.preferred_kind = preferred_kind(target.profile.preset)
    return caps
