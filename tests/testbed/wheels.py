"""Tiny real wheels, built with zipfile, that pip and uv install offline.

A wheel is a zip holding the package's files plus NAME-VER.dist-info/
{METADATA, WHEEL, RECORD}; RECORD lists every file with its sha256
(urlsafe base64, no padding) and size, and itself with empty fields.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

_DATE = (2024, 1, 1, 0, 0, 0)  # fixed timestamps: identical bytes on every build


@dataclass(frozen=True)
class WheelSpec:
    name: str
    version: str
    requires: tuple[str, ...] = ()
    only_on: tuple[str, ...] = field(default=())  # cluster names; empty = every cluster
    requires_python: str = ""  # the wheel's Requires-Python, as old releases of real packages declare
    extras: tuple[str, ...] = ()  # its Provides-Extra (their requirements in `requires`, marked extra == "x")

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}-py3-none-any.whl"


WHEELS: tuple[WheelSpec, ...] = (
    WheelSpec("tinyalpha", "1.0"),
    WheelSpec("tinyalpha", "1.1"),
    WheelSpec("tinyalpha", "2.0"),
    WheelSpec("tinybeta", "1.0", ("tinyalpha>=1.0",)),
    WheelSpec("tinygamma", "0.1"),
    # an old release that predates the test bed's Python (3.11), like a course's pandas==1.4.2, and a newer one
    WheelSpec("tinyold", "1.0", requires_python="<3.11"),
    WheelSpec("tinyold", "1.2", requires_python=">=3.8"),
    # needs a tinyalpha older than 2.0, as pandas 2.1 needs numpy<2 (M4: an update to tinyalpha 2.0 breaks it)
    WheelSpec("tinydelta", "1.0", ("tinyalpha<2",)),
    # only in the wheelhouses of alpha's login node (alpha and otp)
    WheelSpec("onlyalpha", "1.0", only_on=("alpha", "otp")),
)


SITE_WHEELS: tuple[WheelSpec, ...] = (
    WheelSpec("tinyalpha", "1.1+site"),  # a site's own build of a release every store has
    WheelSpec("tinyalpha", "2.1+site"),  # and of one no other store has
)
"""A site's own builds, named with a local version label as the Alliance's are (numpy 1.26.4+computecanada). They
are in a store of their own (TestBed.site_wheelhouse), which no cluster's pip arguments name: a test that wants a
cluster shaped like that site adds it to a profile's (site_pip_args). Not in WHEELS, which many tests build into one
store: there pip and uv would take tinyalpha 1.1+site for tinyalpha==1.1, and 2.1+site for tinyalpha."""


def site_pip_args(cluster_pip_args: list[str], site_wheelhouse: Path) -> list[str]:
    """A cluster's pip arguments with the site's store added: its wheelhouse and the site's own builds."""
    return [*cluster_pip_args, "--find-links", str(site_wheelhouse)]


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(dest_dir: Path, spec: WheelSpec, extra_files: dict[str, str] | None = None) -> Path:
    """Write spec's wheel into dest_dir and return its path; `extra_files` ({path in the wheel: text}) come first
    in it, before the package's own files."""
    dist_info = f"{spec.name}-{spec.version}.dist-info"
    metadata = [
        "Metadata-Version: 2.1",
        f"Name: {spec.name}",
        f"Version: {spec.version}",
        f"Summary: EnvDesk test bed package {spec.name} {spec.version}",
        "License: MIT",
    ]
    metadata += [f"Requires-Dist: {req}" for req in spec.requires]
    metadata += [f"Requires-Python: {spec.requires_python}"] if spec.requires_python else []
    metadata += [f"Provides-Extra: {extra}" for extra in spec.extras]
    files = {
        **(extra_files or {}),
        f"{spec.name}/__init__.py": (
            f'"""EnvDesk test bed package {spec.name}."""\n__version__ = "{spec.version}"\n'
        ),
        f"{dist_info}/METADATA": "\n".join(metadata) + "\n\n",
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\n"
            "Generator: envdesk-testbed\n"
            "Root-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
    }
    path = Path(dest_dir) / spec.filename
    record = []
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            data = text.encode()
            info = zipfile.ZipInfo(name, date_time=_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
            record.append(f"{name},{_record_hash(data)},{len(data)}")
        record.append(f"{dist_info}/RECORD,,")
        info = zipfile.ZipInfo(f"{dist_info}/RECORD", date_time=_DATE)
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, "\n".join(record) + "\n")
    path.chmod(0o644)
    return path


def build_all(dest_dir: Path) -> dict[WheelSpec, Path]:
    dest_dir.mkdir(parents=True, exist_ok=True)
    return {spec: build_wheel(dest_dir, spec) for spec in WHEELS}


def build_site_store(folder: Path) -> Path:
    """The site's own builds (SITE_WHEELS) in `folder`, which every cluster's user may read."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    for spec in SITE_WHEELS:
        build_wheel(folder, spec)
    return folder


def fill_wheelhouse(wheelhouse: Path, built: dict[WheelSpec, Path], cluster: str) -> Path:
    """Link (or copy) the wheels meant for cluster into its own wheelhouse folder."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    wheelhouse.chmod(0o755)
    for spec, src in built.items():
        if spec.only_on and cluster not in spec.only_on:
            continue
        dest = wheelhouse / src.name
        try:
            os.link(src, dest)
        except OSError:
            shutil.copy2(src, dest)
    return wheelhouse
