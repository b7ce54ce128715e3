r"""The mounts a server's processes see: what a file checker cannot, as it reads through them.

A bind mount over /usr/bin (or a tmpfs over /etc/cron.d) hides the files underneath from every tool
inside the server, phoenix's own among them: only the mount table shows it. SCRIPT prints the
server's hostname (LXD sets it to the instance's name), then /proc/self/mountinfo, as the kernel
writes it (it escapes a space, tab, newline or backslash in a path as `\040`, `\011`, `\012`,
`\134`, so no field holds one):

    #host web-1
    1170 1169 0:72 /containers/phoenix_web-1/rootfs / rw,relatime shared:620 - btrfs /dev/loop0 rw
    1173 1170 0:77 / /dev rw,nosuid,nodev,noexec,relatime - tmpfs none rw,size=492k,mode=755
    1190 1176 0:59 /proc/cpuinfo /proc/cpuinfo rw,nosuid,nodev,relatime - fuse.lxcfs lxcfs rw

The fact is mount point (decoded) -> "fstype source root" (those two as printed, escaped), the
last mount of a mount point winning (the one on top, that processes see). A path component of
the source or root that names the server (`web-1`, or `phoenix_web-1` as LXD names the volume of
an instance of a project) reads `{host}`: the baseline server has another name (and project).
Mount ids and device numbers (which change at boot) are not kept.

Left out (EXCLUDED), as a healthy server mounts them on its own: /run/user/* (logind, at each
login), /run/credentials/* (systemd, for each start of a service with credentials), and
/proc/sys/fs/binfmt_misc (autofs mounts it when first read).
"""

from __future__ import annotations

import re

from phoenix.facts import fields

SCRIPT = """\
h=
{ read -r h </proc/sys/kernel/hostname; } 2>/dev/null
case $h in *[![:graph:]]*) h= ;; esac
printf '#host %s\\n' "$h"
cat /proc/self/mountinfo
"""
EXCLUDED = ("/run/user", "/run/credentials", "/proc/sys/fs/binfmt_misc")  # and what is under them
HOST = "{host}"
OCTAL = re.compile(r"\\([0-3][0-7][0-7])")
DEVICE = re.compile(r"[0-9]{1,10}:[0-9]{1,10}")


def decode(text: str) -> str:
    """A path as mountinfo escapes it (`\\040` for a space...), decoded."""
    return OCTAL.sub(lambda m: chr(int(m.group(1), 8)), text)


def excluded(point: str) -> bool:
    return any(point == top or point.startswith(top + "/") for top in EXCLUDED)


def parse(text: str) -> dict[str, str]:
    """Mount point -> "fstype source root"; raise ValueError on a line mountinfo would not hold."""
    records = fields.records(text)
    if not records or not records[0].startswith("#host "):
        raise ValueError("the mount table does not start with the server's `#host` line")
    host = records[0].removeprefix("#host ")
    if host:
        fields.name(host, "hostname")
    found: dict[str, str] = {}
    for line in records[1:]:
        point, value = _mount(line)
        if not excluded(point):
            found[point] = _named(value, host) if host else value
    return dict(sorted(found.items()))


def _mount(line: str) -> tuple[str, str]:
    """One line of mountinfo: its mount point and "fstype source root"."""
    parts = line.split(" ")
    try:
        dash = parts.index("-", 6)
    except ValueError:
        raise ValueError(f"mountinfo line {fields.shown(line)} has no ` - ` separator") from None
    if len(parts) != dash + 4:
        raise ValueError(f"mountinfo line {fields.shown(line)} has not 3 fields after ` - `")
    fields.count(parts[0], "mount id")
    fields.count(parts[1], "parent mount id")
    if not DEVICE.fullmatch(parts[2]):
        raise ValueError(f"device {fields.shown(parts[2])} is not MAJOR:MINOR")
    root, point = parts[3], fields.path(decode(parts[4]), what="mount point")
    fstype, source = parts[dash + 1], parts[dash + 2]
    for field, what in ((root, "root"), (source, "source"), (parts[5], "options")):
        if not field:
            raise ValueError(f"mountinfo line {fields.shown(line)} has an empty {what}")
        fields.plain(field, f"mount {what}")
    fields.name(fstype, "filesystem type")
    return point, f"{fstype} {source} {root}"


def _named(value: str, host: str) -> str:
    """`value` with each path component naming the server (`host`, or `PROJECT_host` as LXD
    names an instance's volume in a project) read `{host}`."""
    return re.sub(rf"(?<=/)([^/ ]*_)?{re.escape(host)}(?=/| |$)", HOST, value)
