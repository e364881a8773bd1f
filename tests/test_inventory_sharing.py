"""The environments of one listing share their equal packages: one Package object per distinct package, not one
per environment, and a cached listing is read one environment at a time (issue 11, goal 7: the app's memory
with 10 clusters x 500 environments). Real venvs made by venv, real wheels installed by uv, listed by the real
agent on this computer; the referee for what each environment holds is `uv pip list`."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from envdesk.backend.cache import InventoryCache
from envdesk.backend.inventory import Inventory, read_inventory
from envdesk.backend.jsonpieces import load_object
from envdesk.backend.local_runner import LocalRunner
from envdesk.backend.paths import AppPaths
from test_read_only_what_is_asked import uv_list

sys.path.insert(0, str(Path(__file__).parent / "testbed"))
from wheels import WheelSpec, build_wheel  # noqa: E402

SAME = ("tinyalpha==1.0", "tinygamma==0.1")
OTHER = ("tinyalpha==1.1", "tinygamma==0.1")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    made = tmp_path / "home"
    made.mkdir()
    monkeypatch.setenv("HOME", str(made))
    return made


@pytest.fixture
def listing(home: Path, tmp_path: Path) -> Inventory:
    """Four venvs: three with the same two packages, one with another version of one of them; the agent's
    listing of them, as the app reads it."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for name, version in (("tinyalpha", "1.0"), ("tinyalpha", "1.1"), ("tinygamma", "0.1")):
        build_wheel(wheels, WheelSpec(name, version))
    for number, wanted in enumerate((SAME, SAME, SAME, OTHER)):
        env = home / "venvs" / f"env{number}"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
        subprocess.run(["uv", "pip", "install", "--python", str(env / "bin" / "python"), "--no-index",
                        "--find-links", str(wheels), *wanted], check=True, capture_output=True)
    return read_inventory(LocalRunner(), [str(home / "venvs")])


def distinct_objects(inventory: Inventory) -> int:
    return len({id(package) for env in inventory.environments for package in env.packages})


def distinct_per_uv(home: Path) -> set[tuple[str, str]]:
    """Every (name, version) uv says one of the environments holds."""
    return {pair for env in (home / "venvs").iterdir() for pair in uv_list(env).items()}


def test_a_listing_holds_each_distinct_package_once(home: Path, listing: Inventory) -> None:
    held = {env.name: {p.name: p.version for p in env.packages} for env in listing.environments}
    assert held == {env.name: uv_list(env) for env in (home / "venvs").iterdir()}
    assert sum(env.package_count for env in listing.environments) == 8
    assert distinct_objects(listing) == len(distinct_per_uv(home)) == 3


def test_a_cached_listing_reads_back_equal_and_shared(home: Path, tmp_path: Path, listing: Inventory) -> None:
    cache = InventoryCache(AppPaths(tmp_path / "config"))
    cache.save(listing)
    loaded = cache.load(listing.target)
    assert loaded is not None
    assert loaded[0].environments == listing.environments
    assert distinct_objects(loaded[0]) == len(distinct_per_uv(home)) == 3


def test_a_cache_file_in_any_json_layout_still_loads(tmp_path: Path, listing: Inventory) -> None:
    """The file's format is unchanged: one written with other spacing and key order (by hand, or by an older
    EnvDesk) reads as before; one cut short is ignored, not fatal."""
    paths = AppPaths(tmp_path / "config")
    cache = InventoryCache(paths)
    cache.save(listing)
    written = next(paths.cache_dir.glob("inventory-*.json"))
    data = json.loads(written.read_text(encoding="utf-8"))
    reordered = {"environments": data.pop("environments"), **data}
    written.write_text(json.dumps(reordered, indent=2), encoding="utf-8")
    loaded = cache.load(listing.target)
    assert loaded is not None and loaded[0].environments == listing.environments
    text = written.read_text(encoding="utf-8")
    written.write_text(text[: len(text) // 2], encoding="utf-8")
    assert cache.load(listing.target) is None


def test_an_array_is_turned_into_records_as_it_is_read() -> None:
    """Each element reaches the converter before the next is decoded: the whole array is never one parsed
    tree (the converter sees the first two elements of an array whose third is broken before the error)."""
    seen: list[object] = []

    def convert(elements):
        for element in elements:
            seen.append(element)
        return seen

    with pytest.raises(ValueError):
        load_object('{"saved": 1, "environments": [{"name": "a"}, {"name": "b"}, {"name": }]}',
                    {"environments": convert})
    assert seen == [{"name": "a"}, {"name": "b"}]
    assert load_object(' {"a": [1], "environments": [ 1 , 2 ] } ', {"environments": tuple}) == {
        "a": [1], "environments": (1, 2)}
