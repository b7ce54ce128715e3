"""Where phoenix works: the config file, the validated config, and the state directory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from phoenix import config
from phoenix.config import Config, FleetConfig, ImageConfig
from phoenix.errors import NotFound

T = TypeVar("T")


@dataclass(frozen=True)
class Workspace:
    config_file: Path
    config: Config
    home: Path  # the state directory: state.db, ssh/, locks/, logs/

    @classmethod
    def open(cls, explicit: Path | None = None) -> Workspace:
        path = config.config_path(explicit)
        return cls(path, config.load(path), config.state_home(path))

    def fleet(self, name: str) -> FleetConfig:
        """The fleet `name` of the config, or NotFound naming the fleets it defines."""
        return _defined(self.config.fleets, "fleet", name, self.config_file)

    def image(self, name: str) -> ImageConfig:
        """The image `name` of the config, or NotFound naming the images it defines."""
        return _defined(self.config.images, "image", name, self.config_file)


def _defined(section: Mapping[str, T], what: str, name: str, config_file: Path) -> T:
    if name not in section:
        known = ", ".join(sorted(section)) or "none"
        raise NotFound(f"no {what} {name} in {config_file}", hint=f"defined {what}s: {known}")
    return section[name]
