"""Small file helpers shared by the stores: atomic writes and safe YAML."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` so that a crash never leaves half a file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_yaml(path: Path, *, what: str) -> Any:
    """Load a YAML file with `safe_load`, turning every failure into a plain ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"Could not read {what} at {path}: {exc.strerror or exc}.") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"The {what} file {path} is not valid YAML ({exc.__class__.__name__}).",
            "Fix or remove the file, then try again.",
        ) from exc


def dump_yaml(data: Any) -> str:
    """Serialise plain data as readable block YAML."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
