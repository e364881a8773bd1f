"""Can the desktop app start here? Say so in plain words before Qt aborts the process.

Qt ends the process (SIGABRT, exit 134) when it has no display or its xcb plugin lacks a system
library; nothing in Python can catch that, so the app checks first and names what to install.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

NO_DISPLAY = ("EnvDesk's window needs a display, and this session has none (no DISPLAY or WAYLAND_DISPLAY: "
              "connected over SSH?). The command line works without one: run 'envdesk --help'.")


def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package that usually ships a library: libxcb-cursor.so.0 -> libxcb-cursor0."""
    match = re.fullmatch(r"(.+?)\.so\.(\d+).*", soname)
    if not match:
        return soname
    base, version = match.group(1).lower(), match.group(2)
    return f"{base}-{version}" if base[-1].isdigit() else f"{base}{version}"


def missing_libraries(ldd_output: str) -> list[str]:
    """The libraries `ldd` reports as 'not found'."""
    return sorted({line.split("=>")[0].strip() for line in ldd_output.splitlines() if "not found" in line})


def _xcb_plugin() -> Path | None:
    """Qt's xcb plugin file, found without importing Qt (importing it is what may abort)."""
    import importlib.util
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0])
    plugin = folder / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return plugin if plugin.is_file() else None


def gui_problem() -> str | None:
    """Why the window cannot open here, with what to do; None when it can (or Qt was told where to draw)."""
    if os.environ.get("QT_QPA_PLATFORM") or not sys.platform.startswith("linux"):
        return None
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return NO_DISPLAY
    import shutil
    import subprocess  # loaded only when the xcb plugin is to be checked

    plugin, ldd = _xcb_plugin(), shutil.which("ldd")
    if os.environ.get("WAYLAND_DISPLAY") or plugin is None or ldd is None:
        return None
    try:
        output = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    missing = missing_libraries(output)
    if not missing:
        return None
    packages = " ".join(debian_package(name) for name in missing)
    return (f"EnvDesk's window cannot start: Qt needs {', '.join(missing)}, which this computer lacks. "
            f"On Debian or Ubuntu: sudo apt install {packages}. "
            "The command line works meanwhile: run 'envdesk --help'.")


def import_problem(error: BaseException) -> str:
    """A plain message for Qt failing to load (a missing system library named in the error)."""
    found = re.search(r"(lib[\w.+-]+\.so(?:\.\d+)*)", str(error))
    if found:
        return (f"EnvDesk's window cannot start: Qt needs {found.group(1)}, which this computer lacks "
                f"(on Debian or Ubuntu: sudo apt install {debian_package(found.group(1))}). "
                "The command line works meanwhile: run 'envdesk --help'.")
    return f"EnvDesk's window cannot start ({error}). The command line works meanwhile: run 'envdesk --help'."
