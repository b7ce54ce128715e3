"""Where phoenix works: the config file, the validated config, and the state directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from phoenix import config
from phoenix.config import Config


@dataclass(frozen=True)
class Workspace:
    config_file: Path
    config: Config
    home: Path  # the state directory: state.db, ssh/, locks/, logs/

    @classmethod
    def open(cls, explicit: Path | None = None) -> Workspace:
        path = config.config_path(explicit)
        return cls(path, config.load(path), config.state_home(path))
