"""A Packer template: loaded, its inputs hashed (what makes a bake a new version), composed with
the steps every bake needs.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

from phoenix.errors import BakeError

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
# It runs as soon as the container does (the lab builder's `init_sleep` is 0), so it first waits
# for systemd to answer at all, for up to BOOT_WAIT tenths of a second.
BOOT_WAIT = 600
BOOTED = {
    "type": "shell",
    "inline": [
        f"i=0; while [ $i -lt {BOOT_WAIT} ]; do"
        " case $(systemctl is-system-running --wait 2>/dev/null) in"
        " running|degraded|maintenance|stopping) exit 0 ;; esac;"
        " i=$((i + 1)); sleep 0.1; done"
    ],
    "remote_folder": "/root",
}


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
            # init_sleep: a fixed wait before the provisioners (Packer's default 3 s); the lab
            # builder waits for the container's boot itself instead (BOOTED)
            builder.update(
                image=parent, output_image=tag, container_name=container, profile=profile,
                init_sleep="0",
            )  # fmt: skip
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
