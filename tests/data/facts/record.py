"""Record the outputs in this directory again, from a throwaway server of the lab's base image.

    PHOENIX_HOME=/tmp/phx-rec .venv/bin/python tests/data/facts/record.py

Needs the lab up. Each `.out` is exactly what the fact's command printed; each `.json` beside it
holds what the test expects, found by other tools one path or unit at a time (stat, readlink,
sha256sum, dpkg-query, systemctl show), so the expectations do not come from the parsers under test.
The server is deleted at the end, whatever happens.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from phoenix import hosts, keys
from phoenix.facts import files, packages, services
from phoenix.hosts import Session
from phoenix.lab import launch_server
from phoenix.lxd import LXD

HERE = Path(__file__).resolve().parent
ABOUT = "real output of {} on a phoenix-base (Debian bookworm) container"
KIND = {"regular file": "f", "regular empty file": "f", "directory": "d", "symbolic link": "l"}
KIND |= {"fifo": "p"}
NOBODY = "setpriv --reuid=nobody --regid=nogroup --clear-groups "
EDGE_TREE = r"""
set -e
rm -rf /srv/edge; mkdir -p /srv/edge; cd /srv/edge
printf 'spaced\n' > 'with space'
printf 'newline\n' > "$(printf 'new\nline')"
printf 'trailing\n' > 'trailing space '
printf 'bad byte\n' > "$(printf 'bad\377byte')"
ln -s 'with space' 'link to space'
ln -s '#sha256' 'link to marker'
ln -s "$(printf 'a\nb')" 'link with newline'
printf 'suid\n' > setuid; chmod 4755 setuid
printf 'secret\n' > secret; chmod 0600 secret
mkdir locked; printf 'inside\n' > locked/inside; chmod 0700 locked
mkdir sticky; chmod 1777 sticky
: > empty; chown 65534:65534 empty
mkfifo pipe
"""
EDGE = ["with space", "new\nline", "trailing space ", "link to space", "link to marker"]
EDGE += ["link with newline", "setuid", "secret", "locked", "locked/inside", "sticky", "empty"]
EDGE += ["pipe"]
REAL_ROOTS = ["/etc", "/usr/lib/openssh", "/usr/local", "/root", "/var/spool/cron", "/srv/missing"]
REAL_PICK = ["/etc", "/etc/passwd", "/etc/shadow", "/etc/motd", "/etc/ssh/sshd_config", "/etc/mtab"]
REAL_PICK += ["/etc/systemd/system/multi-user.target.wants/ssh.service", "/etc/machine-id"]
REAL_PICK += [
    "/usr/lib/openssh/ssh-keysign",
    "/root",
    "/root/.ssh/authorized_keys",
    "/usr/local/bin",
]
PACKAGES = ["openssh-server", "libc6", "base-files", "adduser", "systemd"]
UNITS = ["ssh.service", "getty@.service", "getty@tty1.service", "apparmor.service", "sshd.service"]
UNITS += ["networking.service", "x11-common.service", "systemd-journald.service"]
UNITS += ["console-getty.service"]


def save(rel: str, stdout: str, expected: dict[str, Any]) -> None:
    (HERE / rel).parent.mkdir(parents=True, exist_ok=True)
    (HERE / f"{rel}.out").write_bytes(stdout.encode())
    text = json.dumps(expected, indent=1, ensure_ascii=False) + "\n"
    (HERE / f"{rel}.json").write_text(text, encoding="utf-8")


def stat_oracle(session: Session, path: str, prefix: str) -> dict[str, Any] | None:
    fmt = "--printf=%F\n%a\n%u\n%g\n%U\n%G\n%s\n%.9Y\n%.9Z\n%i\n"
    result = session.run(prefix + "stat", fmt, path)
    if result.rc != 0:
        return None  # not visible to this user
    kind, mode, uid, gid, owner, group, size, mtime, ctime, inode = result.stdout.split("\n")[:10]
    fact: dict[str, Any] = {"type": KIND[kind], "mode": f"{int(mode, 8):04o}"}
    fact |= {"uid": int(uid), "gid": int(gid), "owner": owner, "group": group, "size": int(size)}
    fact |= {"mtime": float(mtime), "ctime": float(ctime), "inode": int(inode)}
    fact |= {"target": None, "sha256": None}
    if fact["type"] == "l":
        fact["target"] = session.run(prefix + "readlink", "-n", path).stdout
    if fact["type"] == "f":
        digest = session.run(prefix + "sha256sum", path)
        # sha256sum (without -z) marks a line whose name it escaped with a leading backslash
        fact["sha256"] = digest.stdout.split()[0].lstrip("\\") if digest.rc == 0 else None
    return fact


def record_files(
    session: Session, name: str, roots: list[str], pick: list[str], prefix: str = ""
) -> None:
    result = session.run(prefix + files.COMMAND, *files.normalize(roots), timeout=120)
    assert result.rc == 0, result.stderr
    scan = files.parse(result.stdout)
    picked = {path: found for path in pick if (found := stat_oracle(session, path, prefix))}
    save(
        f"files/{name}",
        result.stdout,
        {
            "about": ABOUT.format("files.COMMAND") + (" as nobody" if prefix else ""),
            "roots": roots,
            "rc": result.rc,
            "stderr": result.stderr,
            "find_rc": scan.find_rc,
            "hash_rc": scan.hash_rc,
            "count": len(scan.files),
            "hashed": sum(1 for f in scan.files.values() if f.sha256),
            "files": picked,
        },
    )


def record_packages(session: Session) -> None:
    result = session.run(packages.COMMAND)
    assert result.rc == 0, result.stderr
    fmt = "-f=${Version}\t${Architecture}"
    picked = {}
    for name in PACKAGES:
        version, arch = session.run("dpkg-query", "-W", fmt, name).stdout.split("\t")
        picked[name] = {"name": name, "version": version, "arch": arch}
    count = int(session.run("dpkg -l | grep -c '^ii'").stdout)
    about = ABOUT.format("packages.COMMAND")
    save(
        "packages/bookworm-minbase",
        result.stdout,
        {"about": about, "count": count, "packages": picked},
    )


def unit_oracle(session: Session, unit: str) -> dict[str, str]:
    if unit.endswith("@.service"):  # a template: never loaded, only a file state
        state = session.run("systemctl", "is-enabled", unit).stdout.strip()
        return {"name": unit, "enabled": state, "active": "inactive", "sub": "dead"}
    props = "UnitFileState,LoadState,ActiveState,SubState"
    lines = session.run("systemctl", "show", "-p", props, unit).stdout.splitlines()
    shown = dict(line.split("=", 1) for line in lines)
    enabled = session.run("systemctl", "is-enabled", unit).stdout.strip()
    if "@" in unit:  # an instance: no unit file row of its own, so its load state
        enabled = shown["LoadState"]
    elif enabled != "alias":
        enabled = shown["UnitFileState"] or shown["LoadState"]
    return {
        "name": unit,
        "enabled": enabled,
        "active": shown["ActiveState"],
        "sub": shown["SubState"],
    }


def record_services(session: Session) -> None:
    result = session.run(services.COMMAND)
    assert result.rc == 0, result.stderr
    picked = {unit: unit_oracle(session, unit) for unit in UNITS}
    about = ABOUT.format("services.COMMAND")
    count = len(services.parse(result.stdout))
    save(
        "services/bookworm-minbase",
        result.stdout,
        {"about": about, "count": count, "services": picked},
    )


def record(session: Session) -> None:
    assert session.run("sh", "-c", EDGE_TREE).rc == 0
    record_files(session, "bookworm-etc", REAL_ROOTS, REAL_PICK)
    edge = ["/srv/edge", *(f"/srv/edge/{name}" for name in EDGE)]
    record_files(session, "edge-root", ["/srv/edge/", "/srv/missing"], edge)
    record_files(session, "edge-nobody", ["/srv/edge"], edge, prefix=NOBODY)
    record_packages(session)
    record_services(session)


def main() -> None:
    home = Path(os.environ.get("PHOENIX_HOME", "/tmp/phx-rec"))
    key, _ = keys.ensure(home)
    lxd = LXD()
    name = f"rec-facts-{uuid.uuid4().hex[:6]}"
    try:
        target = launch_server(lxd, name, "phoenix-base", key)
        with hosts.connect(target, key.private_path) as session:
            record(session)
    finally:
        lxd.delete(name)
    print(f"recorded into {HERE} from {name} (deleted)", file=sys.stderr)


if __name__ == "__main__":
    main()
