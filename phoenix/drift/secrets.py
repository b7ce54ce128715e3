"""Which files hold secrets: their content is never fetched, shown, stored nor promoted.

A file is secret by its name (SECRET_PATTERNS and [drift] secrets: never fetched) or by its
content (what detect-secrets flags, see phoenix.redact, or a private key: dropped on arrival).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from phoenix import redact

# Files whose content is never fetched, shown nor stored (fnmatch on the path; `*` crosses `/`);
# extended by [drift] secrets. A file's content that holds a secret is refused too.
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
    """Whether a file's content holds a secret (a private key, a password, a token, a key...),
    whatever the file's name."""
    if any(mark in content for mark in PRIVATE_KEY_MARKS):
        return True
    return redact.has_secret(content.decode("utf-8", errors="replace"))
