"""Each workspace's own namespace on the LXD daemon: an LXD project.

Two checkouts on one machine, or the test suite beside a user's lab, share one LXD daemon. Each
workspace (state directory) keeps its servers and images in a project of its own, so that neither
sees, deploys nor deletes the other's: both may bake an image `web` and run a fleet `web`. The
daemon, the storage pool, the bridges and the profiles are the lab's, shared by every workspace
(the project's `features.profiles` is off); the base image is built once by `phoenix lab up` in
the default project and copied into each workspace's project (the daemon keeps its files once).

The project's name is made once per state directory and kept there (`HOME/lxd-project`), so that a
moved checkout keeps its project. A state directory made before workspaces had projects (its store
already records images or servers) goes on in the default project, where its servers are.

Every tool follows the project: phoenix's own LXD client, `lxc` (`--project`), Packer's `lxc`
calls and Terraform's LXD provider (both through an lxc client configuration, `HOME/lxc/`, whose
default remote names the project). That remote is `local` (the lab's socket), or with
`[lxd] endpoint` a daemon over HTTPS (phoenix.lab.remote), shared with other teams' workspaces
just as the lab's daemon is shared between checkouts.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from phoenix.atomic import temp_path, write_atomic
from phoenix.errors import LabError
from phoenix.lab import remote as remotes
from phoenix.lab.lxd import DEFAULT_PROJECT, LXD
from phoenix.lab.lxd import TIMEOUT as LXD_TIMEOUT
from phoenix.lab.remote import Remote
from phoenix.workspace import Workspace

NAME_FILE = "lxd-project"
CLIENT_DIR = "lxc"
DESCRIPTION = "phoenix workspace: "  # followed by the state directory
FEATURES = {"features.images": "true", "features.profiles": "false"}
_STATE_FILE = "state.db"  # phoenix.state.STATE_FILE; read here without opening a Store


@dataclass(frozen=True)
class Project:
    name: str
    home: Path
    remote: Remote | None = None  # None: the local daemon

    @property
    def client_dir(self) -> Path:
        """An lxc client configuration whose `local` remote acts in this project."""
        return self.home / CLIENT_DIR

    @property
    def env(self) -> dict[str, str]:
        """What a tool that reads the lxc client configuration needs to act in this project."""
        return {"LXD_CONF": str(self.client_dir)}

    def lxd(self, timeout: float = LXD_TIMEOUT) -> LXD:
        """The daemon seen from this project; `timeout`: each call's deadline ([timeouts] lxd)."""
        return LXD(self.name, timeout, self.remote, self.client_dir)

    def daemon(self, timeout: float = LXD_TIMEOUT) -> LXD:
        """The same daemon seen from its default project (where the base image is)."""
        return LXD(DEFAULT_PROJECT, timeout, self.remote, self.client_dir)


def of_workspace(ws: Workspace) -> Project:
    """The project of workspace `ws`, on the daemon its `[lxd]` names."""
    remote = remotes.of(ws.config.lxd, ws.config_file.parent)
    return of(ws.home, remote, ws.config.timeouts.lxd)


def of(home: Path, remote: Remote | None = None, timeout: float = LXD_TIMEOUT) -> Project:
    """The project of the workspace whose state directory is `home` (named on first use), on
    the local daemon or on `remote` (whose certificates are then checked and installed in the
    lxc client configuration; `timeout`: the deadline to fetch the server's)."""
    path = home / NAME_FILE
    if not path.exists():
        _name_once(
            path, DEFAULT_PROJECT if _has_records(home) else f"phoenix-{secrets.token_hex(4)}"
        )
    name = path.read_text().strip()
    if not _valid(name):
        raise LabError(
            f"{path} does not hold an LXD project name: {name[:60]!r}",
            hint=f"remove {path} to have phoenix name a new project",
        )
    project = Project(name, home, remote)
    if remote is not None:
        remotes.install(remote, project.client_dir, timeout)
    _write_client_config(project)
    return project


def ensure(lab: LXD, project: Project, base_image: str) -> str:
    """Create the workspace's project if it is missing, and give it the lab's current base image
    (`lab`: the daemon seen from the default project). Returns what was done, "" if nothing."""
    if project.name == DEFAULT_PROJECT:
        return ""
    done = []
    if project.name not in lab.projects():
        lab.create_project(project.name, f"{DESCRIPTION}{project.home}", FEATURES)
        done.append(f"created project {project.name}")
    base = lab.image(base_image)
    if base is None:
        raise LabError(f"the lab has no base image {base_image}", hint="run: phoenix lab up")
    copy = lab.in_project(project.name).image(base_image)
    if copy is None or copy.fingerprint != base.fingerprint:
        lab.copy_image(base_image, project.name)
        done.append(f"copied base image {base.fingerprint[:12]}")
    return ", ".join(done)


def workspaces(lab: LXD) -> list[str]:
    """The projects phoenix made for workspaces on this daemon (every state directory's)."""
    return [name for name, text in lab.projects().items() if text.startswith(DESCRIPTION)]


def _name_once(path: Path, name: str) -> None:
    """Keep `name` in `path` unless another process named the workspace first (the first name
    wins: a hard link fails where the file exists), so two first commands agree on one project."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    write_atomic(tmp, name + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def _has_records(home: Path) -> bool:
    """Whether the state store in `home` already records images or servers."""
    db = home / _STATE_FILE
    if not db.exists():
        return False
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            rows = conn.execute(
                "SELECT (SELECT count(*) FROM images) + (SELECT count(*) FROM servers)"
            ).fetchone()
    except sqlite3.Error:
        return False
    return bool(rows and rows[0])


def _write_client_config(project: Project) -> None:
    text = (
        "default-remote: local\n"
        "remotes:\n"
        "  local:\n"
        "    addr: unix://\n"
        "    public: false\n"
        f"    project: {project.name}\n"
        "aliases: {}\n"
    )
    if project.remote is not None:  # and no `local` remote: nothing falls back to the socket
        text = (
            f"default-remote: {remotes.NAME}\n"
            "remotes:\n"
            f"  {remotes.NAME}:\n"
            f"    addr: {project.remote.url}\n"
            "    protocol: lxd\n"
            "    auth_type: tls\n"
            "    public: false\n"
            f"    project: {project.name}\n"
            "aliases: {}\n"
        )
    path = project.client_dir / "config.yml"
    if not path.exists() or path.read_text() != text:
        project.client_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(path, text)


def _valid(name: str) -> bool:
    return bool(name) and len(name) <= 63 and all(c.isalnum() or c in "-_" for c in name)
