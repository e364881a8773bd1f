"""Installing and starting EnvDesk: the Linux menu entry, and the standalone (PyInstaller) app.

The menu entry tests run the real `envdesk` command into a throwaway XDG_DATA_HOME and let
desktop-file-validate judge what it wrote. The `bundle` tests build the standalone app with
resources/packaging/build.sh (minutes, and PyInstaller comes from PyPI; deselect them with
`-m "not bundle"`), start it under a real Xvfb with a fresh HOME until its window shows "This
computer" and the environments there, close it, and compare its command line's JSON with what
the installed package prints.
"""
from __future__ import annotations

import configparser
import json
import os
import shlex
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from envdesk_fixtures import this_computer_with_one_venv, envdesk_command

from envdesk.desktop_entry import DesktopFiles, entry_text

ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = ROOT / "resources" / "packaging" / "build.sh"
IN_CI = os.environ.get("CI") == "true"
SMOKE = "ENVDESK-SMOKE"
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="menu entries and Xvfb are Linux's")


def need(tool: str, package: str) -> str:
    """The path of a system tool; missing is a failure under CI (tests/system-deps.sh installs it), else a skip."""
    found = shutil.which(tool)
    if found is None:
        if IN_CI:
            pytest.fail(f"{tool} is missing under CI (tests/system-deps.sh installs {package})", pytrace=False)
        pytest.skip(f"{tool} is not installed (package {package})")
    return found


def validate(entry: Path) -> None:
    """The referee: desktop-file-validate accepts the file with no error or warning (hints are advice)."""
    result = subprocess.run([need("desktop-file-validate", "desktop-file-utils"), str(entry)],
                            capture_output=True, text=True, timeout=60)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "error:" not in report and "warning:" not in report, report


def read_entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser["Desktop Entry"]


def run_envdesk(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([*envdesk_command(), *args], capture_output=True, text=True, env=env, timeout=120)


@linux_only
def test_menu_entry_is_installed_valid_and_removed(tmp_path):
    data = tmp_path / "data"
    env = {**os.environ, "HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(data)}
    files = DesktopFiles.under(data)

    first = run_envdesk("--install-desktop-entry", env=env)
    assert first.returncode == 0, first.stderr
    assert str(files.entry) in first.stdout and "--remove-desktop-entry" in first.stdout
    validate(files.entry)
    entry = read_entry(files.entry)
    program = shlex.split(entry["Exec"])[0]
    assert os.path.isabs(program) and os.access(program, os.X_OK)
    assert program == os.path.abspath(envdesk_command()[0])  # this very envdesk, not whichever is on PATH
    assert entry["TryExec"] == program and entry["Name"] == "EnvDesk" and entry["Terminal"] == "false"
    assert entry["Icon"] == str(files.icon) and files.icon == data / "icons/hicolor/256x256/apps/envdesk.png"
    assert files.icon.read_bytes() == resources.files("envdesk.resources").joinpath("icons/envdesk.png").read_bytes()

    written = files.entry.read_bytes()
    again = run_envdesk("--install-desktop-entry", env=env)
    assert again.returncode == 0, again.stderr
    assert files.entry.read_bytes() == written  # installing twice leaves the same entry

    removed = run_envdesk("--remove-desktop-entry", env=env)
    assert removed.returncode == 0, removed.stderr
    assert not files.entry.exists() and not files.icon.exists()
    nothing = run_envdesk("--remove-desktop-entry", env=env)
    assert nothing.returncode == 0 and "nothing to remove" in nothing.stdout


@linux_only
def test_menu_entry_without_xdg_data_home_goes_to_local_share(tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "XDG_DATA_HOME"}
    env.update(HOME=str(home), XDG_DATA_HOME="relative/is/ignored")  # the XDG spec: only absolute paths count
    result = run_envdesk("--install-desktop-entry", env=env)
    assert result.returncode == 0, result.stderr
    validate(home / ".local/share/applications/envdesk.desktop")
    assert (home / ".local/share/icons/hicolor/256x256/apps/envdesk.png").is_file()
    assert not (Path.cwd() / "relative").exists()


@linux_only
def test_exec_quotes_a_path_with_spaces_and_shell_characters(tmp_path):
    """An install folder with spaces, $, %, quotes and backslashes still gives a valid Exec line."""
    odd = tmp_path / 'My Apps $HOME 100% "x" back\\slash' / "envdesk"
    text = entry_text([str(odd)], tmp_path / "icon.png")
    entry = tmp_path / "envdesk.desktop"
    entry.write_text(text, encoding="utf-8")
    validate(entry)
    exec_line = next(line for line in text.splitlines() if line.startswith("Exec="))
    assert exec_line.startswith('Exec="') and "%%" in exec_line and "\\\\$HOME" in exec_line


# --- the standalone app --------------------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the applications menu entry is for Linux")
def test_the_app_adds_itself_to_the_applications_menu(qtbot, tmp_path, monkeypatch):
    """Help > Add EnvDesk to the applications menu writes the entry desktop-file-validate accepts."""
    from envdesk.backend.paths import AppPaths
    from envdesk.gui.main_window import MainWindow
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    window = MainWindow(AppPaths(tmp_path / "cfg"))
    qtbot.addWidget(window)
    window.menu_entry_action.trigger()
    files = DesktopFiles.under(tmp_path / "share")
    validate(files.entry)
    assert files.icon.is_file() and str(files.icon) == read_entry(files.entry)["Icon"]
    assert "applications menu" in window.statusBar().currentMessage()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """The standalone app, built once for this module by the one command the packaging README gives."""
    if not BUILD_SCRIPT.is_file():
        message = f"no source tree here ({BUILD_SCRIPT} is missing): the bundle is built from a checkout"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    out = tmp_path_factory.mktemp("bundle")
    result = subprocess.run(["bash", str(BUILD_SCRIPT), str(out)], capture_output=True, text=True,
                            cwd=tmp_path_factory.getbasetemp(), timeout=1400)  # under faulthandler_timeout
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    program = out / "envdesk" / ("envdesk.exe" if os.name == "nt" else "envdesk")
    assert program.is_file() and os.access(program, os.X_OK)
    return program


@pytest.fixture
def local_envs(tmp_path) -> tuple[Path, Path]:
    """A config folder whose "This computer" holds one real venv with two packages, and a fresh HOME."""
    config, _ = this_computer_with_one_venv(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    return config, home


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The machine's environment with a fresh HOME and nothing that points Qt or Python elsewhere."""
    drop = ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV",
            "SSH_AUTH_SOCK", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR")
    return {**{k: v for k, v in os.environ.items() if k not in drop}, "HOME": str(home), **extra}


@pytest.fixture
def xvfb(tmp_path):
    """A real X server of this test's own (Xvfb picks a free display number and tells it)."""
    server = need("Xvfb", "xvfb")
    read_fd, write_fd = os.pipe()
    process = subprocess.Popen([server, "-displayfd", str(write_fd), "-screen", "0", "1280x800x24", "-nolisten",
                                "tcp"], pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()  # written once the server accepts clients
    try:
        assert number.isdigit(), "Xvfb did not start"
        yield f":{number}"
    finally:
        process.terminate()
        process.wait(timeout=60)


@pytest.mark.bundle
@linux_only
def test_bundle_answers_version_and_help_as_the_installed_package_does(bundle, tmp_path):
    env = clean_env(tmp_path, COLUMNS="100")
    for option in ("--version", "--help"):
        frozen = subprocess.run([str(bundle), option], capture_output=True, text=True, env=env, timeout=300)
        installed = subprocess.run([*envdesk_command(), option], capture_output=True, text=True, env=env,
                                   timeout=300)
        assert frozen.returncode == installed.returncode == 0, frozen.stderr + installed.stderr
        assert frozen.stdout == installed.stdout
    assert frozen.stdout.startswith("usage: envdesk ")


@pytest.mark.bundle
@linux_only
def test_bundle_window_shows_this_computer_and_closes_cleanly(bundle, local_envs, xvfb, tmp_path):
    config, home = local_envs
    screenshot = tmp_path / "window.png"
    env = clean_env(home, DISPLAY=xvfb, ENVDESK_SMOKE_TEST="1", ENVDESK_SMOKE_EXPECT="plain",
                    ENVDESK_SMOKE_SCREENSHOT=str(screenshot))
    result = subprocess.run([str(bundle), "--config-dir", str(config)], capture_output=True, text=True, env=env,
                            timeout=600)
    shown = [line.split(": ", 1)[1] for line in result.stdout.splitlines() if line.startswith(f"{SMOKE} shows: ")]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert any(text.split(" | ")[0] == "This computer" for text in shown), result.stdout
    assert "plain" in shown, shown  # the window listed this computer's venv with the bundled agent
    assert "Traceback" not in result.stderr, result.stderr
    assert screenshot.is_file() and screenshot.stat().st_size > 0
    if os.environ.get("ENVDESK_BUNDLE_SCREENSHOT"):  # keep it to look at: ENVDESK_BUNDLE_SCREENSHOT=PATH
        shutil.copy(screenshot, os.environ["ENVDESK_BUNDLE_SCREENSHOT"])


@pytest.mark.bundle
@linux_only
def test_bundle_lists_this_computer_as_the_installed_package_does(bundle, local_envs):
    config, home = local_envs
    env = clean_env(home)
    args = ["--config-dir", str(config), "env", "list", "local", "--json"]
    frozen = subprocess.run([str(bundle), *args], capture_output=True, text=True, env=env, timeout=300)
    assert frozen.returncode == 0, frozen.stderr
    installed = subprocess.run([*envdesk_command(), *args], capture_output=True, text=True, env=env, timeout=300)
    assert installed.returncode == 0, installed.stderr
    listed = json.loads(frozen.stdout)
    assert [(e["name"], e["kind"], e["package_count"]) for e in listed] == [("plain", "venv", 2)]
    assert listed == json.loads(installed.stdout)


@pytest.mark.bundle
@linux_only
def test_bundle_keeps_secrets_in_a_real_secret_service(bundle, secret_service, tmp_path):
    """keyring's backends are found inside the bundle: it stores and reads back a secret in gnome-keyring."""
    script = ("from envdesk.backend import secrets\n"
              "print(secrets.remember('password', 'alice@cluster', 'bundled-s3cret'))\n"
              "print(secrets.recall('password', 'alice@cluster'))\n")
    env = clean_env(tmp_path, DBUS_SESSION_BUS_ADDRESS=os.environ["DBUS_SESSION_BUS_ADDRESS"])
    result = subprocess.run([str(bundle), "-"], input=script, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "bundled-s3cret"]
    assert secret_service.get_password("envdesk", "password:alice@cluster") == "bundled-s3cret"


@pytest.mark.bundle
@linux_only
def test_bundle_puts_itself_in_the_applications_menu(bundle, tmp_path):
    data = tmp_path / "data"
    files = DesktopFiles.under(data)
    env = clean_env(tmp_path, XDG_DATA_HOME=str(data))
    result = subprocess.run([str(bundle), "--install-desktop-entry"], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    validate(files.entry)
    assert shlex.split(read_entry(files.entry)["Exec"]) == [str(bundle)]  # the bundle, not a Python
    assert files.icon.is_file()


@pytest.mark.bundle
@linux_only
def test_bundle_makes_a_venv_on_this_computer(bundle, local_envs):
    config, home = local_envs
    result = subprocess.run([str(bundle), "--config-dir", str(config), "env", "create", "local", "made", "--kind",
                             "venv"], capture_output=True, text=True, env=clean_env(home), timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    made = json.loads(subprocess.run([str(bundle), "--config-dir", str(config), "env", "list", "local", "--json"],
                                     capture_output=True, text=True, env=clean_env(home), timeout=300).stdout)
    assert "made" in [entry["name"] for entry in made]
