"""The LXD adapter: the daemon process and the few API calls phoenix makes, over pylxd.

Everything LXD-specific that the lab, the bake and the rollout need goes through here, so that the
logic above it does not know it talks to LXD.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from phoenix.config import TimeoutsConfig
from phoenix.errors import DeadlineExceeded, LXDError, PhoenixError
from phoenix.host import process
from phoenix.lab import base, leases
from phoenix.lab import remote as remotes
from phoenix.lab.leases import Nic
from phoenix.lab.remote import Remote
from phoenix.poll import poll, ticks

if TYPE_CHECKING:  # pylxd (and requests) are imported where the API is called: slow to import
    import pylxd

LXD_DIR = Path(os.environ.get("LXD_DIR", "/var/lib/lxd"))
SOCKET = LXD_DIR / "unix.socket"
T = TypeVar("T")
HOST_KEY_FILE = "/etc/ssh/ssh_host_ed25519_key.pub"
FLEET_KEY = "user.phoenix.fleet"
DEFAULT_PROJECT = "default"
TIMEOUT = TimeoutsConfig().lxd  # seconds: an API request or operation, when none is given
LXC_TIMEOUT = 600.0  # an image import or export (`lxc`): seconds, at least the API's deadline


@dataclass(frozen=True, kw_only=True)
class Image:
    fingerprint: str
    aliases: list[str]
    properties: dict[str, str]
    size: int
    created_at: str


@dataclass(frozen=True, kw_only=True)
class Instance:
    name: str
    status: str
    address: str | None
    image: str
    config: dict[str, str] = field(default_factory=dict)


@contextmanager
def _api(action: str, timeout: float = TIMEOUT, remote: Remote | None = None) -> Iterator[None]:
    """Turn pylxd's exceptions into one LXDError that says what phoenix was doing, and a request
    that outlived the client's deadline into DeadlineExceeded. `remote`: the HTTPS endpoint
    phoenix talks to, if not the local socket (its errors name it, and its fix)."""
    import requests
    from pylxd import exceptions as lxd_exc

    try:
        yield
    except requests.exceptions.SSLError as exc:
        if remote is None:
            raise LXDError(f"TLS failed while phoenix tried to {action}: {exc}") from exc
        raise _remote_error(remote, exc, action) from exc
    except requests.Timeout as exc:
        raise DeadlineExceeded(
            f"LXD did not answer within {timeout:.0f} s while phoenix tried to {action}"
            " ([timeouts] lxd in phoenix.toml); the operation may still finish in LXD",
            hint="check the daemon (phoenix doctor, `lxc operation list`), or raise"
            " [timeouts] lxd if it needs longer",
        ) from exc
    except (lxd_exc.ClientConnectionFailed, requests.ConnectionError) as exc:
        if remote is not None:
            raise _remote_error(remote, exc, action) from exc
        raise LXDError(
            f"cannot reach the LXD daemon while trying to {action}", hint="run: phoenix lab up"
        ) from exc
    except lxd_exc.LXDAPIException as exc:
        raise LXDError(f"LXD refused to {action}: {exc}") from exc


def _remote_error(remote: Remote, exc: Exception, action: str) -> LXDError:
    """A failed connection to a remote: its certificate no longer the pinned one (urllib3's
    fingerprint check), or unreachable."""
    if "ingerprints did not match" in str(exc):
        return LXDError(
            f"the LXD daemon at {remote.url} does not present the pinned certificate"
            f" ({remote.fingerprint}) while phoenix tried to {action}; phoenix stopped",
            hint="if its certificate was replaced on purpose, set [lxd] fingerprint to the"
            " new one (on the server: lxc info | grep certificate_fingerprint)",
        )
    return remotes.unreachable(remote, f"{exc} (while trying to {action})")


class LXD:
    """An LXD daemon seen from one project: the local one (its unix socket), or a remote one
    over HTTPS (`remote`, with `conf`: the lxc client configuration that names it, see
    phoenix.lab.remote).

    Instances and images are the project's own (see phoenix.lab.project); the daemon, storage
    pools and networks are the whole lab's, whatever the project.
    """

    def __init__(
        self,
        project: str = DEFAULT_PROJECT,
        timeout: float = TIMEOUT,
        remote: Remote | None = None,
        conf: Path | None = None,
    ) -> None:
        """`timeout`: the deadline of each API request, in seconds; an operation waited for
        (`wait=True`) is one request (LXD's `/operations/ID/wait`), so it has that deadline too."""
        if remote is not None and conf is None:
            raise ValueError("a remote LXD needs the lxc client configuration that names it")
        self.project = project
        self.timeout = timeout
        self.remote = remote
        self.conf = conf
        self._client: pylxd.Client | None = None
        self._leases = leases.Leases()

    def _api(self, action: str) -> AbstractContextManager[None]:
        return _api(action, self.timeout, self.remote)

    @property
    def local(self) -> bool:
        """True for this host's daemon (its socket): its /proc and storage pools are here."""
        return self.remote is None

    # -- the daemon ---------------------------------------------------------------------------

    def running(self) -> bool:
        """True when the daemon answers (on its socket, or at the remote endpoint)."""
        if self.remote is not None:
            try:
                self.server_version()
            except PhoenixError:
                return False
            return True
        if not SOCKET.exists():
            return False
        import pylxd
        from pylxd import exceptions as lxd_exc

        try:
            pylxd.Client(timeout=self.timeout).host_info  # noqa: B018 - a request that proves the API answers
        except (lxd_exc.ClientConnectionFailed, lxd_exc.LXDAPIException, OSError):
            return False
        return True

    def start(self, logfile: Path, timeout: float = 90) -> int:
        """Start the daemon in the background (no systemd here) and wait until it is ready."""
        logfile.parent.mkdir(parents=True, exist_ok=True)
        with logfile.open("ab") as log:
            proc = subprocess.Popen(
                ["lxd", "--group", "lxd", "--logfile", str(logfile)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # outlives phoenix, and never holds phoenix's output
                # not phoenix's own umask (0o077): the daemon makes its directories with the
                # modes it means (containers/ must be traversable by a container's root user)
                umask=0o022,
            )
        ready = process.run(
            ["lxd", "waitready", f"--timeout={int(timeout)}"], timeout=timeout + 30, check=False
        )
        if not ready.ok or proc.poll() is not None:
            raise LXDError(
                f"the LXD daemon did not become ready within {timeout:.0f} s",
                hint=f"see its log: {logfile}",
            )
        self._client = None
        return proc.pid

    def shutdown(self, timeout: float = 60) -> None:
        process.run(["lxd", "shutdown", f"--timeout={int(timeout)}"], timeout=timeout + 30)
        self._client = None

    @property
    def client(self) -> pylxd.Client:
        if self._client is None:
            import pylxd

            with self._api("connect"):
                if self.remote is None:
                    self._client = pylxd.Client(project=self.project, timeout=self.timeout)
                    return self._client
                assert self.conf is not None
                remotes.install(self.remote, self.conf, self.timeout)  # once per process
                self._client = remotes.connect(self.remote, self.conf, self.project, self.timeout)
        return self._client

    def server_version(self) -> str:
        with self._api("read the server info"):
            return str(self.client.host_info["environment"]["server_version"])

    def server_config(self) -> dict[str, str]:
        with self._api("read the server config"):
            return {k: str(v) for k, v in self.client.host_info["config"].items()}

    def set_server_config(self, settings: dict[str, str]) -> None:
        with self._api("change the server config"):
            self.client.api.patch(json={"config": settings})
            self._client = None  # host_info is cached by the client

    # -- storage, networks, profiles --------------------------------------------------------

    def pool(self, name: str) -> dict[str, Any] | None:
        with self._api(f"read storage pool {name}"):
            if not self.client.storage_pools.exists(name):
                return None
            pool = self.client.storage_pools.get(name)
            return {"driver": pool.driver, "config": dict(pool.config)}

    def create_pool(self, name: str, driver: str, config: dict[str, str]) -> None:
        with self._api(f"create storage pool {name}"):
            self.client.storage_pools.create({"name": name, "driver": driver, "config": config})

    def delete_pool(self, name: str) -> None:
        with self._api(f"delete storage pool {name}"):
            if self.client.storage_pools.exists(name):
                self.client.storage_pools.get(name).delete()

    def network(self, name: str) -> dict[str, str] | None:
        with self._api(f"read network {name}"):
            if not self.client.networks.exists(name):
                return None
            return dict(self.client.networks.get(name).config)

    def create_network(self, name: str, config: dict[str, str]) -> None:
        with self._api(f"create network {name}"):
            self.client.networks.create(name, type="bridge", config=config)

    def update_network(self, name: str, settings: dict[str, str]) -> None:
        with self._api(f"change network {name}"):
            network = self.client.networks.get(name)
            network.config = {**network.config, **settings}
            network.save(wait=True)

    def delete_network(self, name: str) -> None:
        with self._api(f"delete network {name}"):
            if self.client.networks.exists(name):
                self.client.networks.get(name).delete()

    def profile_devices(self, name: str) -> dict[str, dict[str, str]] | None:
        with self._api(f"read profile {name}"):
            if not self.client.profiles.exists(name):
                return None
            return dict(self.client.profiles.get(name).devices)

    def set_profile_devices(self, name: str, devices: dict[str, dict[str, str]]) -> None:
        with self._api(f"write profile {name}"):
            if not self.client.profiles.exists(name):
                self.client.profiles.create(name, devices=devices)
                return
            profile = self.client.profiles.get(name)
            profile.devices = devices
            profile.save()

    def delete_profile(self, name: str) -> None:
        with self._api(f"delete profile {name}"):
            if self.client.profiles.exists(name):
                self.client.profiles.get(name).delete()

    # -- projects -----------------------------------------------------------------------------

    def projects(self) -> dict[str, str]:
        """Every project of the daemon: name -> description."""
        with self._api("list projects"):
            return {p.name: str(p.description or "") for p in self.client.projects.all()}

    def create_project(self, name: str, description: str, config: dict[str, str]) -> None:
        with self._api(f"create project {name}"):
            self.client.projects.create(name, config=config, description=description)

    def in_project(self, name: str) -> LXD:
        """The same daemon, seen from project `name`."""
        return LXD(name, self.timeout, self.remote, self.conf)

    def delete_project(self, name: str) -> None:
        with self._api(f"delete project {name}"):
            if self.client.projects.exists(name):
                self.client.projects.get(name).delete()

    # -- images -------------------------------------------------------------------------------

    def images(self) -> list[Image]:
        with self._api("list images"):
            return [_image(i) for i in self.client.images.all()]

    def image(self, alias: str) -> Image | None:
        from pylxd import exceptions as lxd_exc

        with self._api(f"read image {alias}"):
            try:
                return _image(self.client.images.get_by_alias(alias))
            except lxd_exc.NotFound:
                return None

    def import_image(self, metadata: Path, rootfs: Path, alias: str) -> Image:
        """Import a split image (metadata tarball + root file system tarball) under `alias`."""
        return self.import_files([str(metadata), str(rootfs)], alias)

    def import_files(self, files: list[str], alias: str) -> Image:
        """Import an image from its file(s), as `lxc image export` writes them, under `alias`
        (taken from the image that had it, which is deleted)."""
        old = self.image(alias)
        if old:
            self.delete_image(old.fingerprint)
        process.run(
            ["lxc", "image", "import", *files, f"--alias={alias}", *self._in()],
            timeout=max(LXC_TIMEOUT, self.timeout),
            env=self.lxc_env,
        )
        image = self.image(alias)
        if image is None:
            raise LXDError(f"image {alias} was imported but LXD does not list it")
        return image

    def copy_image(self, alias: str, project: str) -> Image:
        """Copy the image `alias` of this project into `project`, under the same alias and with
        the same fingerprint. LXD copies images between projects only by pulling from a server
        listening on the network, which the lab's daemon is not: export, then import (about 3 s
        for the base image; the daemon keeps one copy of the files)."""
        with tempfile.TemporaryDirectory(prefix="phoenix-image-") as tmp:
            exported = Path(tmp) / "image"
            process.run(
                ["lxc", "image", "export", alias, str(exported), *self._in()],
                timeout=max(LXC_TIMEOUT, self.timeout),
                env=self.lxc_env,
            )
            parts = sorted(str(p) for p in Path(tmp).iterdir())  # metadata, then root fs
            return self.in_project(project).import_files(parts, alias)

    def _in(self) -> list[str]:
        """The `lxc` flag that makes a command act in this project."""
        return [f"--project={self.project}"]

    @property
    def lxc_env(self) -> dict[str, str] | None:
        """What `lxc` needs to act on this daemon: for a remote, the lxc client configuration
        whose default remote it is (None: lxc's own, whose default is the local socket)."""
        if self.remote is None:
            return None
        assert self.conf is not None
        remotes.install(self.remote, self.conf, self.timeout)  # once per process: no connection
        return {"LXD_CONF": str(self.conf)}

    def delete_image(self, fingerprint: str) -> None:
        from pylxd import exceptions as lxd_exc

        with self._api(f"delete image {fingerprint[:12]}"), suppress(lxd_exc.NotFound):
            self.client.images.get(fingerprint).delete(wait=True)

    # -- instances ----------------------------------------------------------------------------

    def instances(self) -> list[Instance]:
        with self._api("list instances"):
            return [_instance(i) for i in self.client.instances.all()]

    def fleet_instances(self, fleet: str) -> list[str]:
        """Instances labelled as servers of `fleet` (config user.phoenix.fleet)."""
        return [i.name for i in self.instances() if i.config.get(FLEET_KEY) == fleet]

    def instance(self, name: str) -> Instance | None:
        with self._api(f"read instance {name}"):
            if not self.client.instances.exists(name):
                return None
            return _instance(self.client.instances.get(name))

    def rootfs(self, name: str) -> Path | None:
        """Where the host sees the root file system of container `name` (on its storage pool):
        `LXD_DIR/storage-pools/POOL/containers/[PROJECT_]NAME/rootfs`; None when the instance,
        its root disk or that directory is missing (another driver, another host, a remote)."""
        found = self._pool_of(name)
        if found is None:
            return None
        pool, _ = found
        volume = name if self.project == DEFAULT_PROJECT else f"{self.project}_{name}"
        path = LXD_DIR / "storage-pools" / pool / "containers" / volume / "rootfs"
        return path if path.is_dir() else None

    def image_rootfs(self, name: str) -> Path | None:
        """Where the host sees the files of the image container `name` was made from, as its
        pool keeps them (`LXD_DIR/storage-pools/POOL/images/FINGERPRINT/rootfs`: the volume the
        container's own is a snapshot of, on btrfs, zfs or lvm; same inodes). Just written by
        LXD when it made the first container of the image, it is still in the page cache, where
        the container's volume is not. None where there is none (the dir driver, a remote)."""
        found = self._pool_of(name)
        if found is None or not found[1]:
            return None
        pool, image = found
        path = LXD_DIR / "storage-pools" / pool / "images" / image / "rootfs"
        return path if path.is_dir() else None

    def _pool_of(self, name: str) -> tuple[str, str] | None:
        """The pool of instance `name`'s root disk and its image's fingerprint ("" if it has
        none), on a local daemon; None when it is missing or has no root disk on a pool."""
        if not self.local:
            return None
        with self._api(f"read instance {name}"):
            if not self.client.instances.exists(name):
                return None
            inst = self.client.instances.get(name)
            devices, config = inst.expanded_devices, inst.config
        pool = next(
            (
                d.get("pool")
                for d in devices.values()
                if d.get("type") == "disk" and d.get("path") == "/"
            ),
            None,
        )
        if not pool:
            return None
        image = str(config.get("volatile.base_image") or "")
        return str(pool), image if re.fullmatch(r"[0-9a-f]{64}", image) else ""

    def create(
        self,
        name: str,
        image: str,
        *,
        profiles: list[str] | None = None,
        config: dict[str, str] | None = None,
        files: dict[str, tuple[bytes, int]] | None = None,
        ephemeral: bool = False,
        key: str | None = None,
    ) -> None:
        """Create an instance from an image alias, write `files` into it, and start it. An
        `ephemeral` one is deleted by LXD itself once it stops (see `discard`). `key`: the
        operator's public key line, authorized for root: in the instance's config, which an
        image of phoenix's base writes it from at the first start (`writes_key`); written as a
        file into any other."""
        definition = {
            "name": name,
            "source": {"type": "image", "alias": image},
            "profiles": profiles or ["default"],
            "config": (config or {}) | ({base.KEY_CONFIG: key} if key is not None else {}),
            "ephemeral": ephemeral,
        }
        with self._api(f"create instance {name}"):
            self._with_files(definition, files or {}, key).start(wait=True)

    def _with_files(
        self, definition: dict[str, Any], files: dict[str, tuple[bytes, int]], key: str | None
    ) -> Any:
        """The instance of `definition`, made with `files` (and the file of `key`, unless its
        image writes it) written into it. LXD's file helper of a new instance is sometimes
        missing for good (seen for 30 s and more, in 1 of ~200 made by a test run): an instance
        whose files cannot be written within FILES_TIMEOUT is deleted and made again, which gets
        a new helper, up to CREATE_TRIES times in all. An instance whose files could not be
        written is never left behind (its name stays free)."""
        from pylxd import exceptions as lxd_exc

        for attempt in range(1, CREATE_TRIES + 1):
            inst = self.client.instances.create(definition, wait=True)
            try:
                for path, (data, mode) in (files | self._key_file(definition["name"], key)).items():
                    write = functools.partial(_put, inst, path, data, mode)
                    _again(write, min(self.timeout, FILES_TIMEOUT), FORKFILE)
                return inst
            except (lxd_exc.LXDAPIException, PhoenixError) as exc:
                with suppress(lxd_exc.LXDAPIException):  # the error to tell is the write's
                    inst.delete(wait=True)
                if FORKFILE not in str(exc) or attempt == CREATE_TRIES:
                    raise
        raise AssertionError("CREATE_TRIES is at least 1")

    def _key_file(self, name: str, key: str | None) -> dict[str, tuple[bytes, int]]:
        """The file of the operator's `key` that new instance `name` must be given: none if it
        has no key, or its image writes it from its config (`writes_key`)."""
        if key is None or self.writes_key(name):
            return {}
        return {base.AUTHORIZED_KEYS: ((key + "\n").encode(), 0o600)}

    def stop(self, name: str, force: bool = False, timeout: int = 30) -> None:
        with self._api(f"stop instance {name}"):
            inst = self.client.instances.get(name)
            if inst.status != "Stopped":
                inst.stop(force=force, timeout=timeout, wait=True)

    def delete(self, name: str) -> None:
        """Stop and delete an instance, if it exists. One busy with another operation (an
        ephemeral one being discarded: LXD deletes it once stopped) is waited for."""
        try:
            with self._api(f"delete instance {name}"):
                _again(lambda: self._delete(name), self.timeout, BUSY)
        except LXDError as exc:
            if BUSY not in exc.message:
                raise
            raise LXDError(
                f"instance {name} was still busy with another operation after {self.timeout:.0f} s",
                hint=f"see: lxc operation list; then delete it with: lxc delete --force {name}",
            ) from exc

    def _delete(self, name: str) -> None:
        from pylxd import exceptions as lxd_exc

        if not self.client.instances.exists(name):
            return
        inst = self.client.instances.get(name)
        if inst.status != "Stopped":
            inst.stop(force=True, wait=True)
            # an ephemeral instance is gone once stopped (and pylxd's object with it)
            try:
                inst = self.client.instances.get(name)
            except lxd_exc.NotFound:
                return
        with suppress(lxd_exc.NotFound):  # gone meanwhile, all the same
            inst.delete(wait=True)

    def discard(self, name: str) -> None:
        """Stop an ephemeral instance at once, not waiting: LXD deletes it when it has stopped,
        whether phoenix is still running then or not. (Not ephemeral: see `delete`.)"""
        from pylxd import exceptions as lxd_exc

        with self._api(f"stop instance {name}"), suppress(lxd_exc.NotFound):
            self.client.instances.get(name).stop(force=True, wait=False)

    def read_file(self, name: str, path: str) -> bytes | None:
        """A file's content read through the LXD API (no SSH), or None if it does not exist."""
        from pylxd import exceptions as lxd_exc

        with self._api(f"read {path} in {name}"):
            try:
                data = self.client.instances.get(name).files.get(path)
            except lxd_exc.NotFound:
                return None
            return bytes(data)

    def writes_key(self, name: str) -> bool:
        """Whether instance `name` writes the operator's key from its config when LXD creates it
        (at its first start): the metadata it has of its image holds the key template of
        phoenix's base image (base.KEY_TEMPLATE), applied at creation, with that very text."""
        from pylxd import exceptions as lxd_exc

        template, text = base.KEY_TEMPLATE
        with self._api(f"read the templates of instance {name}"):
            node = self.client.api.instances[name].metadata
            templates = node.get().json()["metadata"].get("templates") or {}
            entry = templates.get(base.AUTHORIZED_KEYS) or {}
            applied = entry.get("when") or []
            if (
                entry.get("template") != template
                or entry.get("create_only")
                or "create" not in applied
            ):
                return False
            try:
                found = node.templates.get(params={"path": template}, is_api=False).content
            except lxd_exc.NotFound:
                return False
        return bool(found == text.encode())

    def wait_for(self, what: str, probe: Callable[[], T | None], timeout: float) -> T:
        """Poll `probe` until it returns something, or raise LXDError after `timeout` seconds."""
        found = poll(probe, timeout, interval=0.25)
        if not found:
            raise LXDError(f"timed out after {timeout:.0f} s waiting for {what}")
        return found

    def host_key(self, name: str, timeout: float = 60) -> str:
        """The server's own SSH host key, read through the LXD API: the trusted channel to pin it.

        The server makes its key at first boot; wait until the public key file holds a whole line.
        """

        def probe() -> str | None:
            data = self.read_file(name, HOST_KEY_FILE)
            line = data.decode(errors="replace").strip() if data else ""
            parts = line.split()
            return line if len(parts) >= 2 and parts[0] == "ssh-ed25519" else None

        return self.wait_for(f"{name} to make its SSH host key", probe, timeout)

    def started(self, name: str) -> str | None:
        """When container `name` started, as this host saw it (see `start_time`); None when the
        host cannot tell (not running, no /proc of its init here, or a remote daemon: its
        processes are not this host's)."""
        if not self.local:
            return None
        with self._api(f"read the state of instance {name}"):
            pid = self.client.instances.get(name).state().pid
        return start_time(pid) if isinstance(pid, int) and pid > 0 else None

    def wait_address(self, name: str, timeout: float = 60) -> str:
        """The IPv4 address instance `name` gets while it boots, as its own state lists it. That
        state costs LXD ~9 ms of CPU (it enters the container to list its addresses), so it is
        read once the DHCP leases of the instance's network show one for its MAC address (one
        request, ~2 ms, reads them for every instance waited for at once), and otherwise every
        STATE_EVERY-th poll only: an address that is not leased (a NIC on an unmanaged bridge,
        DHCP off) is found all the same. A lease only says when to look: any host on the bridge
        can ask for one in another's name, so the address is never taken from it."""
        nic = self._leased_nic(name)
        polls = itertools.count()

        def probe() -> str | None:
            leased = nic is None or self._leases.address(nic, self._read_leases)
            if not leased and next(polls) % STATE_EVERY:
                return None
            inst = self.instance(name)
            return inst.address if inst else None

        return self.wait_for(f"{name} to get an IPv4 address", probe, timeout)

    def _leased_nic(self, name: str) -> Nic | None:
        """Instance `name`'s first NIC on a network LXD manages (whose DHCP leases it keeps),
        with its MAC address; None when it has none, or no MAC yet."""
        with self._api(f"read instance {name}"):
            raw = self.client.api.instances[name].get().json()["metadata"]
        return leases.nic_of(raw.get("expanded_devices") or {}, raw.get("config") or {})

    def _read_leases(self, network: str) -> list[dict[str, Any]]:
        with self._api(f"read the DHCP leases of network {network}"):
            response = self.client.api.networks[network].leases.get(
                params={"project": self.project}
            )
        found = response.json().get("metadata")
        return found if isinstance(found, list) else []


BUSY = "Instance is busy running"  # LXD refuses an operation while another runs
# The file calls on a stopped instance go through a helper process of LXD's, which can be missing
# just after the instance was made ("dial unix /proc/self/fd/87/forkfile.sock: connect: no such
# file or directory", canonical/lxd#18403; seen in a test creating 16 servers at once): tried again
FORKFILE = "forkfile.sock"
FILES_TIMEOUT = 15.0  # seconds a new instance's files may wait for LXD's file helper
STATE_EVERY = 8  # wait_address: every how many polls an instance's own state is read too
CREATE_TRIES = 2  # instances made to write the files of one (see LXD._with_files)
START_MARGIN = 0.05  # seconds: the clocks compared tick every 10 ms


def start_time(pid: int, proc: Path = Path("/proc")) -> str | None:
    """When process `pid` of this host started, in seconds since the epoch with two decimals,
    rounded down and less START_MARGIN: no file the process (or a child) wrote can have an
    earlier ctime. None if /proc does not have it. Both /proc/PID/stat's start time (in clock
    ticks) and /proc/uptime count from boot; /proc/stat's btime is whole seconds, too coarse."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
        uptime = float((proc / "uptime").read_text().split()[0])
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None
    started = time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK") - START_MARGIN
    return f"{math.floor(started * 100) / 100:.2f}"


def _put(inst: Any, path: str, data: bytes, mode: int) -> None:
    """Write file `path` of a (stopped) instance, owned by root, its directories made first."""
    _mkdirs(inst, str(Path(path).parent))
    inst.files.put(path, data, mode=mode, uid=0, gid=0)


def _mkdirs(inst: Any, path: str) -> None:
    """Create `path` and its parents inside a (stopped) instance, mode 0700, owned by root."""
    from pylxd import exceptions as lxd_exc

    parts = [p for p in path.split("/") if p]
    for i in range(1, len(parts) + 1):
        sub = "/" + "/".join(parts[:i])
        try:
            inst.files.mk_dir(sub, mode=0o700, uid=0, gid=0)
        except lxd_exc.LXDAPIException as exc:  # it exists already, unless:
            if FORKFILE in str(exc):
                raise


def _again(action: Callable[[], None], timeout: float, transient: str) -> None:
    """Run `action`, again while LXD refuses it with an error that says `transient` (FORKFILE:
    its file helper of a new instance is not there yet; BUSY: another operation on the
    instance), for up to `timeout` seconds; then that error is raised."""
    from pylxd import exceptions as lxd_exc

    failure: Exception | None = None
    for _ in ticks(timeout, 0.25):
        try:
            action()
            return
        except lxd_exc.LXDAPIException as exc:
            if transient not in str(exc):
                raise
            failure = exc
    assert failure is not None
    raise failure


def _image(raw: Any) -> Image:
    return Image(
        fingerprint=str(raw.fingerprint),
        aliases=[a["name"] for a in raw.aliases],
        properties={k: str(v) for k, v in (raw.properties or {}).items()},
        size=int(raw.size or 0),
        created_at=str(raw.created_at),
    )


def _instance(raw: Any) -> Instance:
    address = None
    if raw.status == "Running":
        state = raw.state()
        eth0 = (state.network or {}).get("eth0", {})
        for addr in eth0.get("addresses", []):
            if addr.get("family") == "inet" and addr.get("scope") == "global":
                address = str(addr["address"])
                break
    return Instance(
        name=str(raw.name),
        status=str(raw.status),
        address=address,
        image=str(
            raw.config.get("image.description", "") or raw.config.get("volatile.base_image", "")
        ),
        config={k: str(v) for k, v in raw.config.items() if k.startswith("user.")},
    )
