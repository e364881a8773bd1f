"""Starting the app where Qt cannot: a plain message and exit 1, never Qt's abort (exit 134)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from envdesk.display import debian_package, missing_libraries
from envdesk_fixtures import envdesk_command

LDD_OUTPUT = """\
\tlinux-vdso.so.1 (0x00007ffd4b1f2000)
\tlibQt6XcbQpa.so.6 => /opt/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f0e3c6a0000)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxkbcommon-x11.so.0 => /lib/x86_64-linux-gnu/libxkbcommon-x11.so.0 (0x00007f0e3c690000)
"""


def test_missing_libraries_are_named_with_their_debian_packages():
    missing = missing_libraries(LDD_OUTPUT)
    assert missing == ["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1"]
    assert [debian_package(name) for name in missing] == ["libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1"]
    assert debian_package("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"
    assert debian_package("libEGL.so.1") == "libegl1"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11/Wayland displays are Linux's")
def test_no_display_is_a_plain_message_pointing_to_the_command_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = subprocess.run([*envdesk_command(), "--config-dir", str(tmp_path / "c")], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 1
    assert "needs a display" in result.stderr and "envdesk --help" in result.stderr


def test_counts_take_the_number_of_their_noun():
    """A user trial read 'myproject: 1 packages' and '1 pinned packages'."""
    from envdesk.backend.wording import counted
    assert [counted(n, "package") for n in (0, 1, 2)] == ["0 packages", "1 package", "2 packages"]
    assert counted(1, "pinned package") == "1 pinned package" and counted(3, "entry", "entries") == "3 entries"
