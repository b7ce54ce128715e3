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

from phoenix.facts import fields

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
    """Parse `getent passwd`; raise ValueError on a line that is not 7 fields, each valid: a name,
    numeric ids, a home and a shell that are absolute paths (or empty)."""
    found: dict[str, User] = {}
    for line in fields.records(text, "\n"):
        if not line:
            continue
        parts = line.split(":")
        if len(parts) != 7:
            raise ValueError(f"not a passwd line: {fields.shown(line)}")
        name, _, uid, gid, _, home, shell = parts
        user = User(
            fields.name(name, "user name"),
            fields.count(uid, "uid"),
            fields.count(gid, "gid"),
            _path(home, "home"),
            _path(shell, "shell"),
        )
        found.setdefault(name, user)
    return dict(sorted(found.items()))


def parse_groups(text: str) -> dict[str, Group]:
    """Parse `getent group`; raise ValueError on a line that is not 4 fields, each valid: a name,
    a numeric gid, members that are names."""
    found: dict[str, Group] = {}
    for line in fields.records(text, "\n"):
        if not line:
            continue
        parts = line.split(":")
        if len(parts) != 4:
            raise ValueError(f"not a group line: {fields.shown(line)}")
        name, _, gid, members = parts
        listed = tuple(fields.name(m, "group member") for m in members.split(",") if m)
        found.setdefault(
            name, Group(fields.name(name, "group name"), fields.count(gid, "gid"), listed)
        )
    return dict(sorted(found.items()))


def _path(text: str, what: str) -> str:
    """A home or a shell: empty (the default) or an absolute, normalised path, kept as written
    (a trailing `/` is allowed: useradd keeps the one it is given)."""
    if text:
        fields.path(text.rstrip("/") or "/", what=what)
    return text
