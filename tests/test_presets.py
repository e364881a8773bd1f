"""Cluster presets, and the resources (presets, icons, desktop entry) EnvDesk ships."""
from __future__ import annotations

import configparser
import dataclasses
import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest
import yaml

from envdesk.backend.config import ClusterProfile
from envdesk.backend.errors import ConfigError, InvalidInput, NotFound
from envdesk.backend.presets import Preset, get_preset, load_presets

ROOT = Path(__file__).resolve().parent.parent
PRESET_IDS = {"alliance", "mila", "uppmax", "hpc2n", "other"}
ICONS = ("envdesk", "new", "update", "export", "import", "copy", "delete", "refresh", "connect",
         "disconnect", "cluster", "computer", "cancel", "snapshot")
PACKAGE = resources.files("envdesk.resources")


def shipped_preset_data(preset_id: str) -> dict:
    return yaml.safe_load((PACKAGE / "presets" / f"{preset_id}.yaml").read_text(encoding="utf-8"))


# --- presets -------------------------------------------------------------------------------

def test_every_preset_loads_other_last():
    presets = load_presets()
    assert {p.id for p in presets} == PRESET_IDS
    assert presets[-1].id == "other"
    assert all(isinstance(p, Preset) and p.description and p.auth_help and p.notes for p in presets)


@pytest.mark.parametrize("preset", load_presets(), ids=lambda p: p.id)
def test_every_host_of_every_preset_builds_a_valid_profile(preset):
    host = "login.example.org" if not preset.hosts else None
    for index in range(max(len(preset.hosts), 1)):
        fields = preset.profile_fields(index, user="jsmith", host=host)
        profile = ClusterProfile(name=f"my-{preset.id}", **fields)
        assert profile.preset == preset.id and profile.auth == preset.auth and profile.user == "jsmith"
        assert profile.env_roots == list(preset.env_roots) and profile.pip_args == list(preset.pip_args)
        if preset.hosts:
            assert (profile.host, profile.port) == (preset.hosts[index].host, preset.hosts[index].port)
        assert ClusterProfile.from_dict(profile.to_dict()) == profile


def test_presets_encode_each_sites_recipe():
    alliance, mila, uppmax, hpc2n = (get_preset(i) for i in ("alliance", "mila", "uppmax", "hpc2n"))
    assert alliance.auth == "key+code" and "Passcode or option (1-1):" in alliance.auth_help
    assert len(alliance.hosts) > 1 and all(h.host.endswith(".alliancecan.ca") for h in alliance.hosts)
    assert alliance.pip_args == ("--no-index",) and alliance.preferred_kind == "virtualenv"
    assert alliance.modules == ("python/3.11",) and not alliance.system_site_packages
    assert any("avail_wheels" in note for note in alliance.notes)
    assert any("conda" in note for note in alliance.notes) and any("uv" in note for note in alliance.notes)
    assert [(h.host, h.port) for h in mila.hosts] == [("login.server.mila.quebec", 2222)]
    assert mila.auth == "key+code" and mila.preferred_kind == "uv" and "empty" in mila.auth_help
    assert [h.host for h in uppmax.hosts] == ["pelle.uppmax.uu.se"] and uppmax.auth == "password+code"
    assert uppmax.modules == ("Python/3.12.3-GCCcore-13.3.0",) and uppmax.system_site_packages
    assert uppmax.preferred_kind == "venv"
    assert hpc2n.modules == ("GCC/12.3.0", "Python/3.11.3") and hpc2n.preferred_kind == "venv"
    assert hpc2n.pip_args == ("--no-cache-dir", "--no-build-isolation")
    assert get_preset("other").auth == "key" and get_preset("other").hosts == ()


def test_presets_are_frozen():
    preset = get_preset("mila")
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset.auth = "password"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset.hosts[0].port = 22  # type: ignore[misc]


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(NotFound) as info:
        get_preset("cedar")
    assert "cedar" in info.value.message
    assert all(preset_id in info.value.hint for preset_id in PRESET_IDS)


def test_profile_fields_refuse_a_missing_login_node():
    with pytest.raises(InvalidInput) as info:
        get_preset("mila").profile_fields(3)
    assert "Mila login nodes" in info.value.hint
    untyped = get_preset("other").profile_fields()
    assert (untyped["host"], untyped["port"]) == ("", 22)
    with pytest.raises(InvalidInput):
        ClusterProfile(name="mine", **untyped)
    with pytest.raises(InvalidInput):
        get_preset("other").profile_fields(host="-oProxyCommand=touch /tmp/x")
    fields = get_preset("other").profile_fields(host="login.mycluster.org")
    assert (fields["host"], fields["port"], fields["user"]) == ("login.mycluster.org", 22, None)


def test_a_folder_of_valid_presets_loads_from_str_or_path(tmp_path):
    for preset_id in ("mila", "other"):
        (tmp_path / f"{preset_id}.yaml").write_text(yaml.safe_dump(shipped_preset_data(preset_id)))
    (tmp_path / "README.txt").write_text("not a preset")
    assert [p.id for p in load_presets(tmp_path)] == ["mila", "other"]
    assert get_preset("mila", str(tmp_path)) == get_preset("mila")


def _broken(change):
    def apply(data):
        change(data)
        return data
    return apply


MALFORMED = {
    "not a mapping": lambda data: ["a", "list"],
    "missing field": _broken(lambda d: d.pop("auth_help")),
    "unknown field": _broken(lambda d: d.update(colour="blue")),
    "auto login": _broken(lambda d: d.update(auth="auto")),
    "unknown kind": _broken(lambda d: d.update(preferred_kind="pipenv")),
    "id differs from file": _broken(lambda d: d.update(id="narval")),
    "empty label": _broken(lambda d: d.update(label="  ")),
    "two-line label": _broken(lambda d: d.update(label="Mila\nQuebec")),
    "number as text": _broken(lambda d: d.update(description=42)),
    "hostile host": _broken(lambda d: d["hosts"][0].update(host="-oProxyCommand=touch /tmp/x")),
    "port as text": _broken(lambda d: d["hosts"][0].update(port="2222")),
    "port out of range": _broken(lambda d: d["hosts"][0].update(port=70000)),
    "host missing port": _broken(lambda d: d["hosts"][0].pop("port")),
    "hosts not a list": _broken(lambda d: d.update(hosts="login.server.mila.quebec")),
    "relative folder": _broken(lambda d: d.update(env_roots=["venvs"])),
    "folder with ..": _broken(lambda d: d.update(env_roots=["~/../root"])),
    "pip arg with newline": _broken(lambda d: d.update(pip_args=["--no-index\n--index-url=evil"])),
    "bad module": _broken(lambda d: d.update(python_modules_hint="python/3.11; rm -rf ~")),
    "yes as text": _broken(lambda d: d.update(system_site_packages="yes")),
    "plain http docs": _broken(lambda d: d.update(docs_url="http://docs.mila.quebec")),
    "note not text": _broken(lambda d: d.update(notes=["fine", {"not": "text"}])),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_preset_is_a_plain_config_error_naming_the_file(tmp_path, case):
    (tmp_path / "mila.yaml").write_text(yaml.safe_dump(MALFORMED[case](shipped_preset_data("mila"))))
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(shipped_preset_data("other")))
    with pytest.raises(ConfigError) as info:
        load_presets(tmp_path)
    assert type(info.value) is ConfigError
    assert "mila.yaml" in info.value.message and info.value.hint
    assert "Traceback" not in str(info.value)


@pytest.mark.parametrize("text", ["id: [unclosed", "", "\tid: tab", b"\xff\xfe not utf-8"],
                         ids=["bad yaml", "empty", "tab indent", "not utf-8"])
def test_unreadable_preset_files_are_plain_config_errors(tmp_path, text):
    path = tmp_path / "broken.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError) as info:
        load_presets(tmp_path)
    assert type(info.value) is ConfigError and "broken.yaml" in info.value.message


def test_an_empty_or_missing_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError):
        load_presets(tmp_path)
    with pytest.raises(ConfigError):
        load_presets(tmp_path / "nowhere")


# --- resources shipped as package data -----------------------------------------------------

def test_resources_ship_as_package_data():
    names = {entry.name for entry in PACKAGE.iterdir()}
    assert {"presets", "icons", "envdesk.desktop"} <= names
    assert {e.name for e in (PACKAGE / "presets").iterdir()} >= {f"{i}.yaml" for i in PRESET_IDS}
    icons = {e.name for e in (PACKAGE / "icons").iterdir()}
    assert {f"{name}.svg" for name in ICONS} | {"envdesk.png"} <= icons


@pytest.fixture
def offscreen_qapp(monkeypatch, request):
    """pytest-qt's QApplication, created only after Qt is told to draw offscreen (on the screen conftest gives it,
    where it gives one: a QApplication made here serves the window tests run after it in this process)."""
    if not os.environ.get("QT_QPA_PLATFORM", "").startswith("offscreen"):
        monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    return request.getfixturevalue("qapp")


@pytest.mark.parametrize("name", ICONS)
def test_every_icon_renders(offscreen_qapp, name):
    from PySide6.QtGui import QIcon
    from PySide6.QtSvg import QSvgRenderer

    svg = (PACKAGE / "icons" / f"{name}.svg").read_bytes()
    assert QSvgRenderer(svg).isValid()
    with resources.as_file(PACKAGE / "icons" / f"{name}.svg") as path:
        pixmap = QIcon(str(path)).pixmap(32, 32)
    assert not pixmap.isNull()
    image = pixmap.toImage()
    visible = sum(image.pixelColor(x, y).alpha() > 0
                  for x in range(image.width()) for y in range(image.height()))
    assert visible > 20, f"{name}.svg draws almost nothing at 32 px"


def test_app_icon_png_is_256_pixels(offscreen_qapp):
    from PySide6.QtGui import QImage

    image = QImage.fromData((PACKAGE / "icons" / "envdesk.png").read_bytes())
    assert not image.isNull() and (image.width(), image.height()) == (256, 256)


def test_desktop_entry_fields():
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read_string((PACKAGE / "envdesk.desktop").read_text(encoding="utf-8"))
    entry = parser["Desktop Entry"]
    assert (entry["Name"], entry["Exec"], entry["Icon"]) == ("EnvDesk", "envdesk", "envdesk")
    assert (entry["Type"], entry["Terminal"]) == ("Application", "false")
    assert entry["Categories"] == "Development;Science;"
    assert entry["GenericName"] and entry["Comment"] and entry["Keywords"].endswith(";")


def test_desktop_entry_validates():
    tool = shutil.which("desktop-file-validate")
    if tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("desktop-file-validate is missing under CI (tests/system-deps.sh installs it)")
        pytest.skip("desktop-file-validate is not installed (package desktop-file-utils)")
    with resources.as_file(PACKAGE / "envdesk.desktop") as path:
        result = subprocess.run([tool, str(path)], capture_output=True, text=True)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "error:" not in report and "warning:" not in report, report
