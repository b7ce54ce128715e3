"""The local lab: a real LXD daemon with a storage pool, two bridges and a Debian base image.

`up` is idempotent and repairing: each step checks what is there and does only what is missing, so a
second `up` changes nothing, and an `up` after a killed daemon or a half-finished `up` completes it.
"""

from __future__ import annotations

import shutil
import sqlite3
import stat
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from phoenix.config import LabConfig
from phoenix.errors import LabError, PhoenixError
from phoenix.events import Emit, Outcome, StepFinished, StepOutput, StepStarted, discard
from phoenix.host import keys, process, ssh
from phoenix.host.ssh import Target
from phoenix.lab import base, project
from phoenix.lab.base import recipe_hash
from phoenix.lab.lxd import DEFAULT_PROJECT, FLEET_KEY, LXD, LXD_DIR, Image, Instance
from phoenix.state import STATE_FILE
from phoenix.workspace import Workspace

BUILD_PROFILE = "phoenix-build"
# Publishing an image gzips it by default (10.8 s for a minimal Debian); uncompressed took 1.9 s and
# launches as fast (measured here). No automatic image updates: the lab has no image server to ask.
# Every container's systemd takes inotify instances and kernel keys; with the defaults (128
# instances, 200 keys) the ~20th container on a host boots without a working sshd. LXD's
# production-setup guide gives these values.
HOST_LIMITS = {
    "fs.inotify.max_user_instances": 1048576,
    "fs.inotify.max_user_watches": 1048576,
    "kernel.keys.maxkeys": 2000,
    "kernel.keys.maxbytes": 2000000,
}
SERVER_CONFIG = {"images.compression_algorithm": "none", "images.auto_update_interval": "0"}
# Servers of two workspaces (LXD projects) may share a name on one bridge. LXD refuses that while
# the bridge registers instance names in its DNS ("Instance DNS name ... already used on network");
# nothing resolves servers by name (phoenix goes by address), so the bridges register none.
BRIDGE_DNS = {"dns.mode": "none"}
REQUIRED_COMMANDS = ["lxd", "lxc", "ip6tables", "mkfs.btrfs", "debootstrap", "tar"]


@dataclass(frozen=True)
class StepResult:
    step: str
    outcome: Outcome
    detail: str = ""


@dataclass(frozen=True)
class Component:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class LabStatus:
    components: list[Component]
    servers: list[Instance] = field(default_factory=list)

    @property
    def up(self) -> bool:
        return all(c.ok for c in self.components)

    def as_dict(self) -> dict[str, Any]:
        return {
            "up": self.up,
            "components": [asdict(c) for c in self.components],
            "servers": [asdict(s) for s in self.servers],
        }


class Lab:
    def __init__(self, cfg: LabConfig, home: Path, emit: Emit = discard, lxd: LXD | None = None):
        """The local lab of the workspace in `home`. A workspace on a remote daemon has none: see
        `of_workspace`."""
        self.cfg = cfg
        self.home = home
        self.emit = emit
        self.lxd = lxd or LXD()  # the daemon, from the default project: the lab's own parts
        self.project = project.of(home)  # the workspace's servers and images
        self.sysctl_root = Path("/proc/sys")
        self.lxd_dir = LXD_DIR

    @classmethod
    def of_workspace(cls, ws: Workspace, emit: Emit = discard) -> Lab:
        """The lab of workspace `ws`; refused when its `[lxd] endpoint` names a remote daemon,
        which phoenix uses but does not manage (its lab commands would act on the local one)."""
        if ws.config.lxd.endpoint is not None:
            raise LabError(
                f"this workspace uses the LXD daemon at {ws.config.lxd.endpoint} ([lxd] endpoint"
                " in phoenix.toml); `phoenix lab` brings up and down the local lab only",
                hint="check the remote with: phoenix doctor; remove [lxd] endpoint to use the"
                " local lab",
            )
        return cls(ws.config.lab, ws.home, emit)

    # -- up -----------------------------------------------------------------------------------

    def up(self) -> list[StepResult]:
        process.require(REQUIRED_COMMANDS)
        steps: list[tuple[str, str, Callable[[], tuple[Outcome, str]]]] = [
            ("daemon", "LXD daemon", self._ensure_daemon),
            ("limits", "host limits for many containers", self._ensure_limits),
            ("settings", "daemon settings", self._ensure_settings),
            ("pool", f"storage pool {self.cfg.pool}", self._ensure_pool),
            ("network", f"network {self.cfg.network}", self._ensure_network),
            ("build-network", f"build network {self.cfg.build_network}", self._ensure_build_net),
            ("profiles", "profiles default and phoenix-build", self._ensure_profiles),
            ("ssh-key", "operator SSH key", self._ensure_key),
            ("base-image", f"base image {self.cfg.base_image}", self._ensure_base_image),
            ("project", f"workspace project {self.project.name}", self._ensure_project),
        ]
        return [self._step(key, title, fn) for key, title, fn in steps]

    def _step(self, key: str, title: str, fn: Callable[[], tuple[Outcome, str]]) -> StepResult:
        self.emit(StepStarted(key, title))
        started = time.monotonic()
        try:
            outcome, detail = fn()
        except PhoenixError as exc:
            self.emit(StepFinished(key, Outcome.FAILED, exc.message, time.monotonic() - started))
            raise
        self.emit(StepFinished(key, outcome, detail, time.monotonic() - started))
        return StepResult(key, outcome, detail)

    def _ensure_daemon(self) -> tuple[Outcome, str]:
        if self.lxd.running():
            outcome, detail = Outcome.UNCHANGED, f"running, LXD {self.lxd.server_version()}"
        else:
            pid = self.lxd.start(self.home / "logs" / "lxd.log")
            outcome, detail = Outcome.DONE, f"started (pid {pid}), LXD {self.lxd.server_version()}"
        try:
            repaired = traversable(self.lxd_dir)
        except OSError as exc:
            raise LabError(
                f"cannot give containers access to {exc.filename}: {exc.strerror}",
                hint=f"run phoenix lab up as root, or: chmod go+x {exc.filename}",
            ) from exc
        if repaired:
            outcome = Outcome.DONE
            detail += f"; made traversable: {', '.join(str(p) for p in repaired)}"
        return outcome, detail

    def _ensure_limits(self) -> tuple[Outcome, str]:
        """Raise (never lower) the kernel limits that a few dozen system containers exhaust."""
        raised = []
        for key, wanted in HOST_LIMITS.items():
            path = self.sysctl_root / key.replace(".", "/")
            if not path.exists():
                continue
            if int(path.read_text().split()[0]) < wanted:
                path.write_text(f"{wanted}\n")
                raised.append(f"{key}={wanted}")
        if not raised:
            return Outcome.UNCHANGED, "inotify and keyring limits are high enough"
        return Outcome.DONE, f"raised {', '.join(raised)}"

    def _ensure_settings(self) -> tuple[Outcome, str]:
        current = self.lxd.server_config()
        changed = {k: v for k, v in SERVER_CONFIG.items() if current.get(k) != v}
        if not changed:
            return Outcome.UNCHANGED, "images published without compression"
        self.lxd.set_server_config({**current, **changed})
        return Outcome.DONE, f"set {', '.join(f'{k}={v}' for k, v in changed.items())}"

    def _ensure_pool(self) -> tuple[Outcome, str]:
        pool = self.lxd.pool(self.cfg.pool)
        if pool:
            return Outcome.UNCHANGED, f"{pool['driver']}, {pool['config'].get('size', '?')}"
        self.lxd.create_pool(self.cfg.pool, "btrfs", {"size": self.cfg.pool_size})
        return Outcome.DONE, f"created: btrfs on a loop file, {self.cfg.pool_size}"

    def _ensure_network(self) -> tuple[Outcome, str]:
        return self._bridge(self.cfg.network, str(self.cfg.subnet), nat=False)

    def _ensure_build_net(self) -> tuple[Outcome, str]:
        return self._bridge(self.cfg.build_network, str(self.cfg.build_subnet), nat=True)

    def _bridge(self, name: str, address: str, nat: bool) -> tuple[Outcome, str]:
        label = f"{address}, {'NAT (build containers only)' if nat else 'no NAT'}"
        existing = self.lxd.network(name)
        if existing is not None:
            if existing.get("ipv4.address") != address:
                raise LabError(
                    f"network {name} has address {existing.get('ipv4.address')}, "
                    f"the config asks for {address}",
                    hint="set [lab] subnet to match, or remove the lab: phoenix lab down --purge",
                )
            if existing.get("dns.mode") != BRIDGE_DNS["dns.mode"]:
                self.lxd.update_network(name, BRIDGE_DNS)
                return Outcome.DONE, f"{label}; no DNS records of servers (names may repeat)"
            return Outcome.UNCHANGED, label
        self.lxd.create_network(
            name,
            {
                "ipv4.address": address,
                "ipv4.nat": "true" if nat else "false",
                "ipv4.firewall": "false",
                "ipv6.address": "none",
                **BRIDGE_DNS,
            },
        )
        return Outcome.DONE, f"created: {label}"

    def _ensure_profiles(self) -> tuple[Outcome, str]:
        root = {"type": "disk", "path": "/", "pool": self.cfg.pool}
        wanted = {
            "default": {"root": root, "eth0": _nic(self.cfg.network)},
            BUILD_PROFILE: {"root": root, "eth0": _nic(self.cfg.build_network)},
        }
        changed = [n for n, devs in wanted.items() if self.lxd.profile_devices(n) != devs]
        for name in changed:
            self.lxd.set_profile_devices(name, wanted[name])
        if not changed:
            return Outcome.UNCHANGED, "root on the pool, eth0 on the bridge"
        return Outcome.DONE, f"set devices of {', '.join(changed)}"

    def _ensure_key(self) -> tuple[Outcome, str]:
        key, made = keys.ensure(self.home)
        return (
            Outcome.DONE if made else Outcome.UNCHANGED
        ), f"{key.fingerprint} ({key.private_path})"

    def _ensure_base_image(self) -> tuple[Outcome, str]:
        recipe = recipe_hash(self.cfg.release)
        image = self.lxd.image(self.cfg.base_image)
        if image and image.properties.get("phoenix.recipe") == recipe:
            return Outcome.UNCHANGED, f"{image.fingerprint[:12]}, recipe {recipe}"
        build = self.home / "lab" / "base-build"
        try:
            image = self._build_base(build, recipe)
        finally:
            shutil.rmtree(build, ignore_errors=True)
        return Outcome.DONE, f"built {image.fingerprint[:12]}, recipe {recipe}"

    def _ensure_project(self) -> tuple[Outcome, str]:
        done = project.ensure(self.lxd, self.project, self.cfg.base_image)
        if not done:
            return Outcome.UNCHANGED, f"servers and images of {self.home} live there"
        return Outcome.DONE, done

    def _build_base(self, build: Path, recipe: str) -> Image:
        log = self.home / "logs" / "base-image.log"
        meta, tarball = base.build(
            build,
            self.cfg.release,
            recipe,
            log,
            lambda line: self.emit(StepOutput("base-image", line)),
        )
        return self.lxd.import_image(meta, tarball, self.cfg.base_image)

    # -- status -------------------------------------------------------------------------------

    def status(self) -> LabStatus:
        missing = [c for c in REQUIRED_COMMANDS if not process.has_command(c)]
        packages = Component(
            "packages", not missing, f"missing: {', '.join(missing)}" if missing else "installed"
        )
        if not self.lxd.running():
            down = "daemon not running"
            rows = [packages, Component("daemon", False, "not running")]
            rows += [
                Component(n, False, down) for n in ("pool", "network", "base image", "project")
            ]
            return LabStatus([*rows, self._key_component()])
        pool = self.lxd.pool(self.cfg.pool)
        net = self.lxd.network(self.cfg.network)
        image = self.lxd.image(self.cfg.base_image)
        rows = [
            packages,
            Component("daemon", True, f"running, LXD {self.lxd.server_version()}"),
            Component(
                "pool",
                pool is not None,
                f"{self.cfg.pool}: {pool['driver']}, {pool['config'].get('size', '?')}"
                if pool
                else f"{self.cfg.pool}: missing",
            ),
            Component(
                "network",
                net is not None,
                f"{self.cfg.network}: {net.get('ipv4.address')}" if net else "missing",
            ),
            Component(
                "base image",
                image is not None,
                f"{self.cfg.base_image}: {image.fingerprint[:12]}, {image.size // 2**20} MiB"
                if image
                else f"{self.cfg.base_image}: missing",
            ),
            project_row := self._project_component(),
            self._key_component(),
        ]
        servers = self.lxd.in_project(self.project.name).instances() if project_row.ok else []
        return LabStatus(rows, servers)

    def _project_component(self) -> Component:
        name = self.project.name
        ok = name == DEFAULT_PROJECT or name in self.lxd.projects()
        return Component("project", ok, name if ok else f"{name}: missing (run: phoenix lab up)")

    def _key_component(self) -> Component:
        key = keys.load(self.home)
        return Component("ssh key", key is not None, key.fingerprint if key else "missing")

    # -- down ---------------------------------------------------------------------------------

    def down(self, purge: bool = False) -> list[StepResult]:
        results: list[StepResult] = []
        if purge:
            if not self.lxd.running() and process.has_command("lxd"):
                self._step("daemon", "LXD daemon", self._ensure_daemon)
            if self.lxd.running():
                results.append(
                    self._step("purge", "phoenix's servers, images, networks, pool", self._purge)
                )
        results.append(self._step("daemon", "LXD daemon", self._stop_daemon))
        if purge:
            results.append(self._step("state", f"state directory {self.home}", self._remove_home))
        return results

    def _stop_daemon(self) -> tuple[Outcome, str]:
        if not self.lxd.running():
            return Outcome.UNCHANGED, "not running"
        running = [
            i.name for v in self._every_project() for i in v.instances() if i.status == "Running"
        ]
        self.lxd.shutdown()
        return Outcome.DONE, f"stopped, with {len(running)} running server(s)"

    def _purge(self) -> tuple[Outcome, str]:
        """phoenix's objects on the daemon, and nothing else: every workspace's project (its
        servers and images, then the project), and in the default project only what phoenix
        made there (see `_ours`). The lab's pool, bridges and profiles go only when nothing is
        left on the daemon that may use them (another tool's instances or images): else they are
        kept, and the detail says why."""
        servers = images = 0
        for name in project.workspaces(self.lxd):
            lxd = self.lxd.in_project(name)
            servers += self._delete(lxd, [i.name for i in lxd.instances()])
            images += self._delete_images(lxd, lxd.images())
            self.lxd.delete_project(name)
        known = _known_to(self.home) if self.project.name == DEFAULT_PROJECT else Known()
        mine = [i.name for i in self.lxd.instances() if _ours(i, known)]
        servers += self._delete(self.lxd, mine)
        images += self._delete_images(
            self.lxd, [i for i in self.lxd.images() if self._our_image(i, known)]
        )
        done = f"removed {servers} server(s), {images} image(s)"
        others = self._others()
        if others:
            shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if others[5:] else "")
            self.emit(StepOutput("purge", f"kept, not phoenix's: {shown}"))
            kept = f"pool {self.cfg.pool}, networks, profiles"
            return Outcome.DONE, f"{done}; kept {kept}: still used by {shown} (not phoenix's)"
        self.lxd.set_profile_devices("default", {})
        self.lxd.delete_profile(BUILD_PROFILE)
        for net in (self.cfg.network, self.cfg.build_network):
            self.lxd.delete_network(net)
        self.lxd.delete_pool(self.cfg.pool)
        return Outcome.DONE, f"{done}, the pool, networks and profiles"

    def _delete(self, lxd: LXD, names: list[str]) -> int:
        for name in names:
            self.emit(StepOutput("purge", f"deleting {name} ({lxd.project})"))
            lxd.delete(name)
        return len(names)

    def _delete_images(self, lxd: LXD, images: list[Image]) -> int:
        for image in images:
            lxd.delete_image(image.fingerprint)
        return len(images)

    def _our_image(self, image: Image, known: Known) -> bool:
        """An image of the default project phoenix made: the lab's base image (its alias and
        phoenix's recipe property), or one this (legacy) workspace's store records by tag."""
        if self.cfg.base_image in image.aliases and "phoenix.recipe" in image.properties:
            return True
        return bool(known.images & set(image.aliases))

    def _others(self) -> list[str]:
        """What is left on the daemon after the purge (not phoenix's), as `project/name`."""
        left: list[str] = []
        for name in self.lxd.projects():
            if name != DEFAULT_PROJECT and name in project.workspaces(self.lxd):
                continue  # a workspace's project the purge could not delete: LXD said why
            lxd = self.lxd.in_project(name)
            left += [f"{name}/{i.name}" for i in lxd.instances()]
            left += [f"{name}/image {_image_name(i)}" for i in lxd.images()]
        return left

    def _every_project(self) -> list[LXD]:
        """The daemon seen from each workspace's project, then from the default one."""
        names = [*project.workspaces(self.lxd), DEFAULT_PROJECT]
        return [self.lxd.in_project(name) for name in names]

    def _remove_home(self) -> tuple[Outcome, str]:
        if not self.home.exists():
            return Outcome.UNCHANGED, "already gone"
        shutil.rmtree(self.home)
        return Outcome.DONE, "removed"


def launch_server(
    lxd: LXD,
    name: str,
    image: str,
    key: keys.OperatorKey,
    timeout: float = 90,
    ephemeral: bool = False,
) -> Target:
    """Start a server from an image with the operator key, and pin its host key via LXD."""
    create(lxd, name, image, key, ephemeral)
    return reach(lxd, name, timeout)


def create(lxd: LXD, name: str, image: str, key: keys.OperatorKey, ephemeral: bool = False) -> None:
    """Create and start a server from an image, the operator key authorized for root."""
    lxd.create(name, image, ephemeral=ephemeral, key=key.public_line.strip())


def reach(lxd: LXD, name: str, timeout: float = 90) -> Target:
    """A started server's address and host key (pinned via LXD), once its sshd listens. The
    host key is awaited beside the address and the port: the server makes both as it boots."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        host_key = pool.submit(lxd.host_key, name, timeout)
        address = lxd.wait_address(name, timeout)
        ssh.wait_port(address, 22, timeout)
        return Target(name=name, address=address, host_key=host_key.result())


def traversable(lxd_dir: Path) -> list[Path]:
    """Give search (x) permission to group and others on the directories a container's root user
    must pass through to reach its root file system, where it lacks it; the ones changed.

    The daemon makes them 0711. A daemon first started under a umask of 0o077 (phoenix's own,
    before `LXD.start` set the daemon's) made them 0700, and no container can start: "Could not
    access /var/lib/lxd/containers. Please grant it x access".
    """
    pools = lxd_dir / "storage-pools"
    wanted = [lxd_dir / "containers", pools]
    if pools.is_dir():
        wanted += [pool / "containers" for pool in sorted(pools.iterdir()) if pool.is_dir()]
    changed = []
    for path in wanted:
        try:
            st = path.lstat()
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_mode & 0o011 != 0o011:
            path.chmod(stat.S_IMODE(st.st_mode) | 0o011)
            changed.append(path)
    return changed


def _nic(network: str) -> dict[str, str]:
    return {"type": "nic", "network": network, "name": "eth0"}


@dataclass(frozen=True)
class Known:
    """What a workspace's state store records: its servers' names and its images' tags."""

    servers: frozenset[str] = frozenset()
    images: frozenset[str] = frozenset()


BAKE_PREFIXES = ("phoenix-bake-", "phoenix-smoke-")  # phoenix.image.bake's containers


def _ours(instance: Instance, known: Known) -> bool:
    """An instance of the default project phoenix made: a fleet's server (Terraform labels it
    user.phoenix.fleet), a bake's builder or smoke server, or a server the (legacy) workspace's
    store records. Anything else is another tool's: never deleted."""
    return (
        FLEET_KEY in instance.config
        or instance.name.startswith(BAKE_PREFIXES)
        or instance.name in known.servers
    )


def _known_to(home: Path) -> Known:
    """The servers and image tags the store in `home` records (read only; none if unreadable).
    Read without phoenix.state's Store: the lab sits below the layers that own those tables."""
    db = home / STATE_FILE
    if not db.exists():
        return Known()
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            servers = {str(r[0]) for r in conn.execute("SELECT name FROM servers")}
            images = {str(r[0]) for r in conn.execute("SELECT tag FROM images")}
    except sqlite3.Error:
        return Known()
    return Known(frozenset(servers), frozenset(images))


def _image_name(image: Image) -> str:
    return image.aliases[0] if image.aliases else image.fingerprint[:12]
