"""Put EnvDesk in a Linux desktop's applications menu, for this user only: a .desktop file and its icon.

`envdesk --install-desktop-entry` writes $XDG_DATA_HOME/applications/envdesk.desktop (by default
~/.local/share) from the template shipped in envdesk.resources, with Exec naming the envdesk
program that is running now (the standalone bundle, a pipx or venv install), and copies the icon
to the hicolor theme there. Running it again rewrites the same files; `--remove-desktop-entry`
takes both away. Linux only: on macOS and Windows the app bundle itself is what people open.
"""
from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from envdesk.backend.errors import EnvDeskError
from envdesk.backend.fileio import write_atomically

APP_ID = "envdesk"
ICON_SIZE = "256x256"  # resources/icons/envdesk.png
# Characters that make the Desktop Entry spec's Exec key need an argument in double quotes.
_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")


@dataclass(frozen=True)
class DesktopFiles:
    """Where the menu entry and its icon go for this user."""

    entry: Path
    icon: Path

    @classmethod
    def under(cls, data_home: Path) -> DesktopFiles:
        return cls(entry=data_home / "applications" / f"{APP_ID}.desktop",
                   icon=data_home / "icons" / "hicolor" / ICON_SIZE / "apps" / f"{APP_ID}.png")


def data_home() -> Path:
    """$XDG_DATA_HOME when it is an absolute path (as the XDG spec says), else ~/.local/share."""
    configured = os.environ.get("XDG_DATA_HOME", "")
    return Path(configured) if configured and os.path.isabs(configured) else Path.home() / ".local" / "share"


def running_command() -> list[str]:
    """The command that starts this same EnvDesk: the bundle, the `envdesk` script, or `python -m envdesk`."""
    if getattr(sys, "frozen", False):
        return [os.path.abspath(sys.executable)]
    script = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    # pipx links ~/.local/bin/envdesk to its venv's script: keep the link, it survives upgrades
    if Path(script).stem == APP_ID and os.path.isfile(script) and os.access(script, os.X_OK):
        return [script]
    return [os.path.abspath(sys.executable), "-m", APP_ID]


def exec_argument(argument: str) -> str:
    """One argument for the Exec key, quoted and escaped as the Desktop Entry spec asks."""
    if "\n" in argument or "\r" in argument:
        raise ValueError(f"a desktop entry cannot start a program whose path holds a line break: {argument!r}")
    if _RESERVED & set(argument):
        argument = '"' + "".join("\\" + char if char in '"`$\\' else char for char in argument) + '"'
    return argument.replace("%", "%%")


def string_value(text: str) -> str:
    """A value of type string: backslashes escaped (applied after the Exec quoting, as the spec says)."""
    return text.replace("\\", "\\\\")


def entry_text(command: list[str], icon: Path) -> str:
    """The shipped template with Exec, TryExec and Icon pointing at this installation."""
    template = resources.files("envdesk.resources").joinpath(f"{APP_ID}.desktop").read_text(encoding="utf-8")
    values = {"Exec": " ".join(exec_argument(part) for part in command), "TryExec": command[0], "Icon": str(icon)}
    lines = []
    for line in template.splitlines():
        key = line.split("=", 1)[0].strip()
        if key == "TryExec":
            continue  # written right after Exec
        if key in values:
            lines.append(f"{key}={string_value(values[key])}")
            if key == "Exec":
                lines.append(f"TryExec={string_value(values['TryExec'])}")
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


def _copy_icon(target: Path) -> None:
    """Copy the app icon into place through a temporary file, so a reader never sees half of it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    source = resources.files("envdesk.resources").joinpath("icons").joinpath(f"{APP_ID}.png").read_bytes()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(source)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def install(files: DesktopFiles, command: list[str]) -> None:
    """Write the icon, then the entry that names it (the same files again when run twice)."""
    _copy_icon(files.icon)
    write_atomically(files.entry, entry_text(command, files.icon), private=False)
    os.chmod(files.entry, 0o644)


def remove(files: DesktopFiles) -> list[Path]:
    """Delete the entry and its icon; the ones that were there."""
    removed = []
    for path in (files.entry, files.icon):
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed


def main(*, remove_entry: bool = False) -> int:
    """`envdesk --install-desktop-entry` / `--remove-desktop-entry`: do it and say what was done."""
    if not sys.platform.startswith("linux"):
        print("envdesk: the applications menu entry is for Linux desktops. On macOS and Windows, "
              "open the EnvDesk app itself (or pin it to the Dock or Start menu).", file=sys.stderr)
        return 1
    files = DesktopFiles.under(data_home())
    try:
        if remove_entry:
            if remove(files):
                print(f"Removed EnvDesk from your applications menu ({files.entry}).")
            else:
                print("EnvDesk was not in your applications menu: nothing to remove.")
            return 0
        command = running_command()
        install(files, command)
    except (OSError, ValueError, EnvDeskError) as exc:
        print(f"envdesk: could not change your applications menu: {exc}", file=sys.stderr)
        return 1
    print(f"Added EnvDesk to your applications menu ({files.entry}); it starts {command[0]}. "
          "To take it away again: envdesk --remove-desktop-entry")
    return 0
