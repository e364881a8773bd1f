"""Where EnvDesk keeps its files: one folder per user, or the one the user names."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "envdesk"
CONFIG_DIR_VARIABLE = "ENVDESK_CONFIG_DIR"


@dataclass(frozen=True)
class AppPaths:
    """The files of one EnvDesk configuration: profiles, trusted host keys, cached inventories."""

    config_dir: Path

    @classmethod
    def resolve(cls, config_dir: str | os.PathLike[str] | None = None) -> "AppPaths":
        """Use the given folder, else $ENVDESK_CONFIG_DIR, else the platform's user config folder."""
        chosen = config_dir or os.environ.get(CONFIG_DIR_VARIABLE)
        if chosen:
            return cls(Path(chosen).expanduser().absolute())
        import platformdirs  # here: a command given its folder does not load it (~2 ms)

        return cls(Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)))

    @property
    def clusters_file(self) -> Path:
        return self.config_dir / "clusters.yaml"

    @property
    def clusters_parsed(self) -> Path:
        """clusters.yaml as last parsed, with its text (see fileio.read_yaml): commands and the window's start
        read it while the file holds that text, and load no YAML parser."""
        return self.cache_dir / "clusters.json"

    @property
    def known_hosts_file(self) -> Path:
        return self.config_dir / "known_hosts"

    @property
    def cache_dir(self) -> Path:
        return self.config_dir / "cache"
