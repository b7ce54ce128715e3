"""Users and groups, as the server's name service sees them (`getent`, so LDAP or NIS ones too).

Sample output of COMMAND (name, password, uid, gid, comment, home, shell):

    root:x:0:0:root:/root:/bin/bash
    sshd:x:100:65534::/run/sshd:/usr/sbin/nologin
    nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin

and of GROUPS_COMMAND (name, password, gid, members):

    root:x:0:
    sudo:x:27:alice,bob

Password and comment are left out of the facts. A name listed twice (by two name services) keeps
its first entry, the one a lookup by name finds.
"""

from __future__ import annotations

from dataclasses import dataclass

COMMAND = "getent passwd"
GROUPS_COMMAND = "getent group"


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    home: str  # may be empty, or a directory that does not exist ("/nonexistent")
    shell: str


@dataclass(frozen=True)
class Group:
    name: str
    gid: int
    members: tuple[str, ...]  # the secondary members, as listed; primary members are not here


def parse(text: str) -> dict[str, User]:
    """Parse `getent passwd`; raise ValueError on a line that is not 7 fields with numeric ids."""
    found: dict[str, User] = {}
    for line in text.splitlines():
        if not line:
            continue
        fields = line.split(":")
        if len(fields) != 7 or not fields[0]:
            raise ValueError(f"not a passwd line: {line!r}")
        name, _, uid, gid, _, home, shell = fields
        found.setdefault(name, User(name, _number(uid, line), _number(gid, line), home, shell))
    return dict(sorted(found.items()))


def parse_groups(text: str) -> dict[str, Group]:
    """Parse `getent group`; raise ValueError on a line that is not 4 fields with a numeric gid."""
    found: dict[str, Group] = {}
    for line in text.splitlines():
        if not line:
            continue
        fields = line.split(":")
        if len(fields) != 4 or not fields[0]:
            raise ValueError(f"not a group line: {line!r}")
        name, _, gid, members = fields
        listed = tuple(m for m in members.split(",") if m)
        found.setdefault(name, Group(name, _number(gid, line), listed))
    return dict(sorted(found.items()))


def _number(text: str, line: str) -> int:
    if not text.isdigit():
        raise ValueError(f"not a numeric id in {line!r}")
    return int(text)
