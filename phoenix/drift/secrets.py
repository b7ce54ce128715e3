"""Which files may hold secrets: their content is never fetched, shown, stored nor promoted."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

# Files whose content is never fetched, shown nor stored (fnmatch on the path; `*` crosses `/`);
# extended by [drift] secrets. A file's content that looks like a private key is refused too.
SECRET_PATTERNS: tuple[str, ...] = (
    "/etc/shadow*",
    "/etc/gshadow*",
    "/etc/security/opasswd",
    "/etc/ssh/ssh_host_*_key",
    "/etc/ssl/private/*",
    "*/.ssh/id_*",
    "*.key",
    "*.pem",
    "*.p12",
    "*.pfx",
    "*/.gnupg/*",
    "*/.netrc",
    "*/.pgpass",
    "*/.git-credentials",
    "*/.aws/*",
    "*/.docker/config.json",
    "*secret*",
    "*password*",
    "*passwd-*",
    "*token*",
    "*credential*",
)


PRIVATE_KEY_MARKS = (b"PRIVATE KEY-----", b"PRIVATE KEY BLOCK-----")


def is_secret(path: str, extra: Iterable[str] = ()) -> bool:
    """Whether the file at `path` may hold a secret: its content is never fetched nor stored."""
    name = path.lower()
    return any(fnmatch.fnmatchcase(name, p.lower()) for p in (*SECRET_PATTERNS, *extra))


def looks_secret(content: bytes) -> bool:
    """Whether a file's content holds a private key, whatever the file's name."""
    return any(mark in content for mark in PRIVATE_KEY_MARKS)
