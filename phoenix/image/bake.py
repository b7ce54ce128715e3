"""Bake: an image from a Packer template, versioned, smoke-booted, with its baseline.

The flow of one bake: hash the inputs (template, every file it provisions, the parent image), and
stop there if the newest ready image has the same inputs; else record the bake, run Packer with the
builder pointed at the lab, boot the new image once, pass its health check, gather the facts of that
pristine server as the image's baseline, and record the image ready. Whatever fails, the builder
container, the smoke server and a half-published image are removed and the record says why.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phoenix import events, facts
from phoenix.config import ImageConfig
from phoenix.errors import BakeError, ConfigError, PhoenixError
from phoenix.events import Emit, StepOutput, discard
from phoenix.host import health, keys, ssh
from phoenix.image import packer
from phoenix.image.registry import ImageRecord, Registry
from phoenix.lab import lab
from phoenix.lab.lxd import LXD
from phoenix.lock import fleet_lock
from phoenix.state import Store
from phoenix.workspace import Workspace

# The last provisioner of every bake: the image must carry no identity of its build container.
CLEANUP = [
    "rm -f /etc/ssh/ssh_host_*",
    ": > /etc/machine-id",
    "rm -f /var/lib/dbus/machine-id /etc/hostname",
    "rm -f /var/lib/dhcp/*.leases /var/lib/dhcp/dhclient*",
    ": > /etc/resolv.conf",
    "rm -rf /tmp/* /var/tmp/* /var/log/journal/*",
    "find /var/log -type f -exec truncate -s 0 {} +",
    "sync",
]
PATH_KEYS = ("source", "script")
# The first provisioner of a lab bake: wait until the build container has booted. Until then
# systemd-tmpfiles may empty /tmp, where Packer uploads files and scripts (seen under load as
# "/tmp/script_NNNN.sh: not found"); this step's own script goes to /root, which boot leaves be.
BOOTED = {
    "type": "shell",
    "inline": ["systemctl is-system-running --wait >/dev/null 2>&1 || true"],
    "remote_folder": "/root",
}


@dataclass(frozen=True)
class BakeResult:
    image: ImageRecord
    unchanged: bool
    seconds: dict[str, float] = field(default_factory=dict)


def load_template(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise BakeError(f"no Packer template at {path}", hint="create it, or set `template`")
    try:
        template = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BakeError(
            f"{path}: line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}"
        ) from exc
    if not isinstance(template, dict) or not template.get("builders"):
        raise BakeError(f"{path}: a Packer JSON template needs a `builders` list")
    return template


def provisioned_files(template: dict[str, Any], base: Path) -> list[Path]:
    """Every local file the template's provisioners read, directories walked."""
    found: list[Path] = []
    for step in template.get("provisioners", []):
        paths = [step[k] for k in PATH_KEYS if isinstance(step.get(k), str)]
        paths += [p for p in step.get("scripts", []) if isinstance(p, str)]
        for raw in paths:
            path = base / raw
            if not path.exists():
                raise BakeError(f"the template provisions {raw}, which is not at {path}")
            found += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return found


def input_hashes(template_file: Path, template: dict[str, Any], parent_id: str) -> dict[str, str]:
    base = template_file.parent
    inputs = {"template": _sha256(template_file), "parent": parent_id}
    for path in provisioned_files(template, base):
        inputs[f"file:{path.relative_to(base)}"] = _sha256(path)
    return inputs


def compose(
    template: dict[str, Any], base: Path, *, parent: str, tag: str, container: str, profile: str
) -> dict[str, Any]:
    """The template as Packer runs it: the lab builder's settings, absolute paths, cleanup last."""
    composed = copy.deepcopy(template)
    lab = False
    for builder in composed["builders"]:
        if builder.get("type") == "lxd":
            lab = True
            builder.update(
                image=parent, output_image=tag, container_name=container, profile=profile
            )
    for step in composed.setdefault("provisioners", []):
        for key in PATH_KEYS:
            if isinstance(step.get(key), str):
                step[key] = str(base / step[key])
        if "scripts" in step:
            step["scripts"] = [str(base / s) for s in step["scripts"]]
    if lab:
        composed["provisioners"].insert(0, copy.deepcopy(BOOTED))
    composed["provisioners"].append({"type": "shell", "inline": CLEANUP})
    return composed


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Baker:
    def __init__(
        self, ws: Workspace, store: Store, emit: Emit = discard, lxd: LXD | None = None
    ) -> None:
        self.ws = ws
        self.registry = Registry(store)
        self.emit = emit
        self.lxd = lxd or LXD()

    def bake(self, name: str, force: bool = False) -> BakeResult:
        cfg = self._image_config(name)
        template_file = cfg.template_path(self.ws.config_file.parent, name)
        template = load_template(template_file)
        parent_alias, parent_tag = self._parent(cfg)
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
        with fleet_lock(self.ws.home, f"image-{name}", operation="bake"):
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
                    composed, variables, log, lambda ln: self.emit(StepOutput("packer", ln))
                )
            with events.step(self.emit, "smoke", f"smoke boot of {tag}", seconds):
                baseline = self._smoke(smoke, tag, cfg)
            image = self.registry.ready(tag, str(built.artifact_id), packer.version(), baseline)
        except BaseException as exc:
            self._discard(tag, builder, smoke)
            self.registry.failed(tag, _reason(exc))
            raise
        return BakeResult(image, unchanged=False, seconds=seconds)

    def _smoke(self, server: str, tag: str, cfg: ImageConfig) -> dict[str, Any]:
        """Boot the image once, pristine: it must pass its health check; its facts: the baseline."""
        key, _ = keys.ensure(self.ws.home)
        try:
            target = lab.launch_server(self.lxd, server, tag, key, timeout=cfg.health.timeout)
            with ssh.connect(target, key.private_path) as session:
                health.wait_healthy(server, target.address, cfg.health, run=session.run)
                gathered = facts.gather(session, self.ws.config.drift.roots)
            self.emit(StepOutput("smoke", f"baseline: {gathered.summary()}"))
            return gathered.to_dict()
        finally:
            self.lxd.delete(server)

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

    def _image_config(self, name: str) -> ImageConfig:
        images = self.ws.config.images
        if name not in images:
            known = ", ".join(sorted(images)) or "none"
            raise ConfigError(
                f"no image {name} in {self.ws.config_file}", hint=f"defined images: {known}"
            )
        return images[name]

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
