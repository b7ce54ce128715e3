"""Bake: an image from a Packer template, versioned, smoke-booted, with its baseline.

The flow of one bake: hash the inputs (template, every file it provisions, the parent image), and
stop there if the newest ready image has the same inputs; else record the bake, run Packer with the
builder pointed at the lab, boot the new image once, pass its health check, gather the facts of that
pristine server as the image's baseline, and record the image ready. Whatever fails, the builder
container, the smoke server and a half-published image are removed and the record says why.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phoenix import events, facts
from phoenix.config import ImageConfig
from phoenix.errors import BakeError, PhoenixError
from phoenix.events import Emit, StepOutput, discard
from phoenix.facts import ScanCache, files
from phoenix.host import health, keys, ssh
from phoenix.image import packer
from phoenix.image.registry import ImageRecord, Registry
from phoenix.image.template import (
    compose,
    input_hashes,
    load_template,
)
from phoenix.lab import disk, lab, project
from phoenix.lab.lxd import LXD
from phoenix.lock import image_lock
from phoenix.state import Store
from phoenix.workspace import Workspace


@dataclass(frozen=True)
class BakeResult:
    image: ImageRecord
    unchanged: bool
    seconds: dict[str, float] = field(default_factory=dict)


class Baker:
    def __init__(
        self, ws: Workspace, store: Store, emit: Emit = discard, lxd: LXD | None = None
    ) -> None:
        self.ws = ws
        self.registry = Registry(store)
        self.emit = emit
        self.project = project.of_workspace(ws)
        self.lxd = lxd or self.project.lxd(ws.config.timeouts.lxd)

    def bake(self, name: str, force: bool = False) -> BakeResult:
        cfg = self.ws.image(name)
        template_file = cfg.template_path(self.ws.config_file.parent, name)
        template = load_template(template_file)
        parent_alias, parent_tag = self._parent(cfg)
        if parent_tag is None:  # the lab's base image, copied into the workspace's project
            project.ensure(self.project.daemon(self.lxd.timeout), self.project, parent_alias)
        parent = self.lxd.image(parent_alias)
        if parent is None:
            raise BakeError(
                f"the parent image {parent_alias} of {name} is not in LXD",
                hint="run: phoenix lab up" if parent_tag is None else f"bake {parent_tag} first",
            )
        inputs = input_hashes(template_file, template, parent.fingerprint)
        latest = self.registry.latest(name)
        if latest and not force and latest.inputs == inputs and self.lxd.image(latest.tag):
            return BakeResult(latest, unchanged=True)
        with image_lock(self.ws.home, name, operation="bake"):
            self._settle_interrupted(name)
            record = self.registry.begin(
                name,
                inputs["template"],
                inputs,
                parent_tag,
                parent.fingerprint,
                self.ws.home / "logs",
            )
            return self._build(record, cfg, template, template_file.parent, parent_alias)

    def _build(
        self,
        record: ImageRecord,
        cfg: ImageConfig,
        template: dict[str, Any],
        base: Path,
        parent_alias: str,
    ) -> BakeResult:
        tag = record.tag
        builder, smoke = f"phoenix-bake-{tag}", f"phoenix-smoke-{tag}"
        log = Path(str(record.log_path))
        seconds: dict[str, float] = {}
        try:
            composed = compose(
                template, base, parent=parent_alias, tag=tag, container=builder,
                profile=lab.BUILD_PROFILE,
            )  # fmt: skip
            variables = self._variables(template, tag, parent_alias)
            with events.step(self.emit, "packer", f"packer build {tag}", seconds):
                built = packer.build(
                    composed,
                    variables,
                    log,
                    lambda ln: self.emit(StepOutput("packer", ln)),
                    env=self.project.env,
                    timeout=self.ws.config.timeouts.packer,
                )
            with events.step(self.emit, "smoke", f"smoke boot of {tag}", seconds):
                baseline, smoked, writes_key = self._smoke(smoke, tag, cfg)
            if smoked is not None:
                self.registry.keep_listings(tag, smoked.dump())
            image = self.registry.ready(
                tag, str(built.artifact_id), packer.version(), baseline, writes_key
            )
        except BaseException as exc:
            self._discard(tag, builder, smoke)
            self.registry.failed(tag, _reason(exc))
            raise
        return BakeResult(image, unchanged=False, seconds=seconds)

    def _smoke(
        self, server: str, tag: str, cfg: ImageConfig
    ) -> tuple[dict[str, Any], ScanCache | None, bool]:
        """Boot the image once, pristine: it must pass its health check; its facts: the baseline,
        its scan cache (None where the host could not read its disk), whose listings by root
        a first scan of a server of the image is offered (phoenix.drift.scan), and whether it
        writes the operator's key from its config (LXD.writes_key: then the smoke server was
        reached with the key so written).

        While it boots, the host reads and hashes its files from its disk (the lab: the image's
        volume on the pool, which the container's is a snapshot of), as the image holds them;
        the server then hashes only the files it wrote since it started (see `_host_hashes`).
        The server is ephemeral: once its facts are in, it is stopped and LXD deletes it,
        unawaited."""
        key, _ = keys.ensure(self.ws.home)
        roots = self.ws.config.drift.roots
        try:
            lab.create(self.lxd, server, tag, key, ephemeral=True)
            writes_key = self.lxd.writes_key(server)
            with ThreadPoolExecutor(max_workers=1) as pool:
                read = pool.submit(self._host_hashes, server, roots, cfg.health.timeout)
                target = lab.reach(self.lxd, server, timeout=cfg.health.timeout)
                with ssh.connect(target, key.private_path) as session:
                    health.wait_healthy(server, target.address, cfg.health, run=session.run)
                    cache = read.result()
                    gathered = facts.gather(session, roots, cache=cache)
        except BaseException:
            self.lxd.delete(server)
            raise
        self.lxd.discard(server)
        summary = gathered.summary()
        hashed = cache.hashed if cache is not None else summary["hashed"]
        self.emit(StepOutput("smoke", f"baseline: {summary} (hashed on the server: {hashed})"))
        return gathered.to_dict(), cache, writes_key

    def _host_hashes(self, server: str, roots: Sequence[str], timeout: float) -> ScanCache | None:
        """The hashes of the smoke server's regular files read from its disk by the host, as a
        cache that stands for the files it has not written since it started (SETTLED stamps: a
        file written since has a later ctime, which the container cannot set back). None where
        the host cannot read its disk or its start (a remote daemon), or the read fails: then
        the server hashes every file."""
        rootfs = self.lxd.image_rootfs(server) or self.lxd.rootfs(server)
        settled = self.lxd.started(server)
        if rootfs is None or settled is None:
            return None
        try:
            found = disk.read_disk(rootfs, files.normalize(roots), time.monotonic() + timeout)
        except (disk.DiskError, OSError) as exc:
            self.emit(StepOutput("smoke", f"the host could not read {server}'s disk: {exc}"))
            return None
        regular = (
            (p, f.inode, f.size, f.mtime, f.sha256) for p, f in found.items() if f.type == "f"
        )
        return ScanCache(files.HashCache.settled_on(regular, settled))

    def _settle_interrupted(self, name: str) -> None:
        """A bake recorded as running while we hold the lock was cut short: clean up after it."""
        for record in self.registry.interrupted():
            if record.name == name:
                tag = record.tag
                self._discard(tag, f"phoenix-bake-{tag}", f"phoenix-smoke-{tag}")
                self.registry.failed(tag, "interrupted: the bake did not finish")

    def _discard(self, tag: str, builder: str, smoke: str) -> None:
        for server in (builder, smoke):
            self.lxd.delete(server)
        image = self.lxd.image(tag)
        if image:
            self.lxd.delete_image(image.fingerprint)

    def _variables(self, template: dict[str, Any], tag: str, parent: str) -> dict[str, str]:
        key, _ = keys.ensure(self.ws.home)
        offered = {
            "parent_image": parent,
            "output_image": tag,
            "version": tag,
            "operator_key": key.public_line,
            "build_profile": lab.BUILD_PROFILE,
            "container_name": f"phoenix-bake-{tag}",
        }
        declared = template.get("variables", {})
        return {k: v for k, v in offered.items() if k in declared}

    def _parent(self, cfg: ImageConfig) -> tuple[str, str | None]:
        """The LXD alias to build on, and the phoenix tag of that parent (None: the base image)."""
        if cfg.parent is None:
            return self.ws.config.lab.base_image, None
        parent = self.registry.latest(cfg.parent)
        if parent is None:
            raise BakeError(
                f"the parent image {cfg.parent} has no ready version",
                hint=f"run: phoenix image bake {cfg.parent}",
            )
        return parent.tag, parent.tag


def _reason(exc: BaseException) -> str:
    if isinstance(exc, PhoenixError):
        return exc.message
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"{type(exc).__name__}: {exc}"


def bake_image(ws: Workspace, name: str, force: bool = False, emit: Emit = discard) -> BakeResult:
    """Bake image `name` of the workspace's config (the CLI's one call)."""
    with Store.open(ws.home) as store:
        return Baker(ws, store, emit).bake(name, force)
