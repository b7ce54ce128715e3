"""An in-memory stand-in for the LXD adapter, for fast tests of the lab's logic."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phoenix.lab.lxd import Image, Instance


@dataclass
class FakeLXD:
    is_running: bool = False
    pools: dict[str, dict[str, Any]] = field(default_factory=dict)
    networks: dict[str, dict[str, str]] = field(default_factory=dict)
    profiles: dict[str, dict[str, dict[str, str]]] = field(default_factory=lambda: {"default": {}})
    image_list: list[Image] = field(default_factory=list)
    instance_list: list[Instance] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    config: dict[str, str] = field(default_factory=dict)
    project: str = "default"
    # the other projects: name -> (description, the daemon seen from there)
    others: dict[str, tuple[str, FakeLXD]] = field(default_factory=dict)

    def projects(self) -> dict[str, str]:
        return {"default": "", **{n: d for n, (d, _) in self.others.items()}}

    def create_project(self, name: str, description: str, config: dict[str, str]) -> None:
        self.calls.append(f"create project {name}")
        self.others[name] = (description, FakeLXD(is_running=True, project=name))

    def delete_project(self, name: str) -> None:
        self.others.pop(name, None)

    def in_project(self, name: str) -> FakeLXD:
        return self if name == self.project else self.others[name][1]

    def copy_image(self, alias: str, project: str) -> Image:
        self.calls.append(f"copy {alias} to {project}")
        image = self.image(alias)
        assert image is not None
        target = self.in_project(project)
        target.image_list = [i for i in target.image_list if alias not in i.aliases] + [image]
        return image

    def server_config(self) -> dict[str, str]:
        return dict(self.config)

    def set_server_config(self, settings: dict[str, str]) -> None:
        self.config = dict(settings)

    def running(self) -> bool:
        return self.is_running

    def start(self, logfile: Path, timeout: float = 90) -> int:
        self.calls.append("start")
        self.is_running = True
        return 4242

    def shutdown(self, timeout: float = 60) -> None:
        self.calls.append("shutdown")
        self.is_running = False

    def server_version(self) -> str:
        return "5.0.2"

    def pool(self, name: str) -> dict[str, Any] | None:
        return self.pools.get(name)

    def create_pool(self, name: str, driver: str, config: dict[str, str]) -> None:
        self.pools[name] = {"driver": driver, "config": config}

    def delete_pool(self, name: str) -> None:
        self.pools.pop(name, None)

    def network(self, name: str) -> dict[str, str] | None:
        return self.networks.get(name)

    def create_network(self, name: str, config: dict[str, str]) -> None:
        self.networks[name] = config

    def update_network(self, name: str, settings: dict[str, str]) -> None:
        self.calls.append(f"update network {name}")
        self.networks[name] = {**self.networks[name], **settings}

    def delete_network(self, name: str) -> None:
        self.networks.pop(name, None)

    def profile_devices(self, name: str) -> dict[str, dict[str, str]] | None:
        return self.profiles.get(name)

    def set_profile_devices(self, name: str, devices: dict[str, dict[str, str]]) -> None:
        self.profiles[name] = devices

    def delete_profile(self, name: str) -> None:
        self.profiles.pop(name, None)

    def images(self) -> list[Image]:
        return list(self.image_list)

    def image(self, alias: str) -> Image | None:
        return next((i for i in self.image_list if alias in i.aliases), None)

    def delete_image(self, fingerprint: str) -> None:
        self.image_list = [i for i in self.image_list if i.fingerprint != fingerprint]

    def instances(self) -> list[Instance]:
        return list(self.instance_list)

    def delete(self, name: str) -> None:
        self.instance_list = [i for i in self.instance_list if i.name != name]
