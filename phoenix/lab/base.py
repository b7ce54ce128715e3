"""The base image recipe: a minimal Debian by debootstrap, without the build host's identity,
packed for LXD.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from phoenix.host import process

HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"
AUTHORIZED_KEYS = "/root/.ssh/authorized_keys"
IDENTITY_FILES: dict[str, str] = {
    # every server makes its own SSH host key at first boot (the image carries none): an ed25519
    # key only, the one phoenix pins (`ssh-keygen -A` made an RSA key too: ~0.5 s of CPU at every
    # first boot, a third of a server's boot to SSH)
    "etc/systemd/system/ssh.service.d/hostkeys.conf": (
        "[Service]\nExecStartPre=\n"
        f"ExecStartPre=/bin/sh -c 'test -e {HOST_KEY} || "
        f'exec /usr/bin/ssh-keygen -q -t ed25519 -N "" -f {HOST_KEY}\'\n'
        "ExecStartPre=/usr/sbin/sshd -t\n"
    ),
    "etc/ssh/sshd_config.d/phoenix.conf": (
        f"HostKey {HOST_KEY}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\n"
    ),
    "etc/network/interfaces.d/eth0": "auto eth0\niface eth0 inet dhcp\n",
    "etc/machine-id": "",  # empty: systemd makes a new one at first boot
    "etc/resolv.conf": "",  # DHCP fills it in; the build host's must not leak in
    # empty, mode 0600 (see strip_identity): LXD writes the operator's key into it (KEY_TEMPLATE),
    # keeping the mode; a file it makes itself would be 0644
    AUTHORIZED_KEYS.lstrip("/"): "",
}

# What the base image is made of. Its hash names the recipe: change any of it and the next `up`
# rebuilds the image.
BASE_PACKAGES = [
    "openssh-server",
    "iproute2",
    "ifupdown",
    "isc-dhcp-client",
    "systemd-sysv",
    "procps",
]


IDENTITY_REMOVED = ["etc/hostname", "var/lib/dbus/machine-id"]


# The operator's key, written by LXD itself from the instance's config when it is created or
# copied (the Terraform module sets it: see infra/lxd; LXD.create too): nothing is uploaded into
# the new, stopped container. LXD's helper for that is sometimes missing for ~30 s
# (canonical/lxd#18403), and the upload cost LXD ~0.2 s of CPU per server. Every time: an image
# built from this one (its builder was started without the key) holds an empty file.
KEY_CONFIG = "user.phoenix.authorized_key"
KEY_TEMPLATE = ("authorized_keys.tpl", f'{{{{ config_get("{KEY_CONFIG}", "") }}}}\n')
TEMPLATES = {  # LXD writes these when an instance is created or copied
    "/etc/hostname": ("hostname.tpl", "{{ container.name }}\n"),
    "/etc/hosts": (
        "ssh.tpl",
        "127.0.0.1 localhost\n127.0.1.1 {{ container.name }}\n::1 localhost ip6-localhost\n",
    ),
    AUTHORIZED_KEYS: KEY_TEMPLATE,
}


def recipe_hash(release: str) -> str:
    recipe = {
        "release": release,
        "packages": BASE_PACKAGES,
        "files": IDENTITY_FILES,
        "removed": IDENTITY_REMOVED,
        "templates": TEMPLATES,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def cache_dir() -> Path:
    """Downloaded .deb files, kept across `down --purge` so a rebuilt base image is quick."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "phoenix" / "debootstrap"


def strip_identity(rootfs: Path) -> None:
    """Remove what would make every server a twin of the build host: its SSH host keys, its
    machine-id and its hostname (debootstrap copies them; every server must make its own)."""
    for key in (rootfs / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    for rel in IDENTITY_REMOVED:
        (rootfs / rel).unlink(missing_ok=True)
    for rel, content in IDENTITY_FILES.items():
        path = rootfs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            path.unlink()
        path.write_text(content)
    keys = rootfs / AUTHORIZED_KEYS.lstrip("/")
    keys.parent.chmod(0o700)
    keys.chmod(0o600)
    for leftovers in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for item in (rootfs / leftovers).glob("*"):
            if item.is_file():
                item.unlink()


def write_metadata(build: Path, release: str, recipe: str) -> Path:
    """The image's metadata tarball: metadata.yaml plus the per-instance templates."""
    meta = build / "meta"
    (meta / "templates").mkdir(parents=True, exist_ok=True)
    templates = {
        target: {"when": ["create", "copy"], "template": name}
        for target, (name, _) in TEMPLATES.items()
    }
    for name, content in TEMPLATES.values():
        (meta / "templates" / name).write_text(content)
    metadata = {
        "architecture": "x86_64",
        "creation_date": int(time.time()),
        "properties": {
            "description": f"phoenix base (Debian {release})",
            "os": "debian",
            "release": release,
            "phoenix.recipe": recipe,
        },
        "templates": templates,
    }
    # JSON is YAML: no YAML library needed for this one file.
    (meta / "metadata.yaml").write_text(json.dumps(metadata, indent=2))
    tarball = build / "meta.tar"
    process.run(["tar", "-C", str(meta), "-cf", str(tarball), "metadata.yaml", "templates"])
    return tarball


def build(
    build: Path, release: str, recipe: str, log: Path, say: Callable[[str], None]
) -> tuple[Path, Path]:
    """Debootstrap `release` into `build`, strip its identity, and pack it: (metadata, rootfs)
    tarballs for `lxc image import`. Every line of debootstrap goes to `say` and `log`."""
    shutil.rmtree(build, ignore_errors=True)  # a half-finished earlier build
    rootfs = build / "rootfs"
    build.mkdir(parents=True)
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    process.stream(
        [
            "debootstrap",
            "--variant=minbase",
            f"--cache-dir={cache}",
            f"--include={','.join(BASE_PACKAGES)}",
            release,
            str(rootfs),
        ],
        say,
        log=log,
    )
    say("removing the build host's identity")
    strip_identity(rootfs)
    say("packing and importing into LXD")
    meta = write_metadata(build, release, recipe)
    tarball = build / "rootfs.tar"
    process.run(["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(tarball), "."])
    return meta, tarball
