"""Evidence: the content of the text files a person changed or added by hand on a server.

A server with drift is replaced, never patched, and its changes go with it; so a scan that finds a
changed or added text file fetches its content (over the scan's own SSH session) and archives it in
the state store, keyed by its SHA-256, before anything can replace the server. A finding then
names its evidence (`sha256:...`); `phoenix drift evidence SERVER [PATH]` gives it back.

Secrets are never fetched: files matching the secret patterns (secrets.SECRET_PATTERNS and
[drift] secrets), and content that holds a private key is dropped on arrival. Only files up to
[drift] evidence_limit bytes that are text (UTF-8, no NUL) are kept; the same content is stored
once, whichever server and scan found it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from phoenix.drift.diff import Finding
from phoenix.drift.secrets import is_secret, looks_secret
from phoenix.errors import Refused
from phoenix.facts import FileFact, Runner
from phoenix.facts.runner import read_files
from phoenix.state import Store, now
from phoenix.workspace import Workspace

KINDS = frozenset({"file.modified", "file.added"})


@dataclass(frozen=True)
class Policy:
    """What a scan may archive: up to `limit` bytes per file, never `secrets`, nor `known`."""

    limit: int
    secrets: tuple[str, ...] = ()
    known: frozenset[str] = frozenset()  # sha256 of contents already archived


@dataclass(frozen=True, kw_only=True)
class Archived:
    sha256: str
    path: str
    server: str
    content: bytes
    archived_at: str = ""

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def as_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "path": self.path,
            "sha256": self.sha256,
            "size": len(self.content),
            "found_at": self.archived_at,
            "content": self.text,
        }


@dataclass(frozen=True)
class Collected:
    """What one server's scan brought back: new contents, and the finding -> sha256 links."""

    contents: list[Archived] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)  # path -> sha256 of its evidence


def wanted(findings: Sequence[Finding], live: Mapping[str, FileFact], policy: Policy) -> list[str]:
    """The paths whose content the scan should bring back: changed or added regular files
    that are small enough and not secret."""
    paths: list[str] = []
    for finding in findings:
        fact = live.get(finding.subject)
        if finding.kind not in KINDS or fact is None or fact.type != "f":
            continue
        if fact.size > policy.limit or is_secret(finding.subject, policy.secrets):
            continue
        paths.append(finding.subject)
    return paths


def collect(
    session: Runner,
    server: str,
    findings: Sequence[Finding],
    live: Mapping[str, FileFact],
    policy: Policy,
    timeout: float = 60,
) -> Collected:
    """Fetch what `wanted` names (the contents not archived yet) in one command."""
    paths = wanted(findings, live, policy)
    links = {p: sha for p in paths if (sha := live[p].sha256) and sha in policy.known}
    missing = [p for p in paths if p not in links]
    contents: list[Archived] = []
    for path, content in read_files(session, missing, timeout).items():  # none: no command
        if _keepable(content, policy.limit):
            digest = hashlib.sha256(content).hexdigest()
            contents.append(Archived(sha256=digest, path=path, server=server, content=content))
            links[path] = digest
    return Collected(contents, links)


def known(store: Store) -> frozenset[str]:
    return frozenset(r["sha256"] for r in store.rows("SELECT sha256 FROM evidence"))


def save(store: Store, contents: Iterable[Archived]) -> None:
    """Archive `contents` (a content already there is kept as first archived)."""
    with store.transaction() as db:
        db.executemany(
            "INSERT OR IGNORE INTO evidence (sha256, path, server, size, content, archived_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(a.sha256, a.path, a.server, len(a.content), a.content, now()) for a in contents],
        )


def archived(store: Store, server: str, path: str | None = None) -> list[Archived]:
    """The newest archived content of every file of `server` (or of one `path`) that drifted."""
    rows = store.rows(
        "SELECT f.subject AS path, e.sha256, e.content, MAX(f.found_at) AS found_at"
        " FROM findings f JOIN evidence e ON e.sha256 = f.evidence"
        " WHERE f.server = ? AND (? IS NULL OR f.subject = ?)"
        " GROUP BY f.subject ORDER BY f.subject",
        (server, path, path),
    )
    return [
        Archived(
            sha256=r["sha256"],
            path=r["path"],
            server=server,
            content=r["content"],
            archived_at=r["found_at"],
        )
        for r in rows
    ]


def lookup(ws: Workspace, server: str, path: str | None = None) -> list[Archived]:
    """What was archived of `server` (one `path`, or all); Refused if nothing was."""
    with Store.open(ws.home) as store:
        kept = archived(store, server, path)
        if kept:
            return kept
        servers = store.rows("SELECT 1 FROM servers WHERE name = ?", (server,))
    if not servers:
        raise Refused(f"no server {server} in the state store", hint="see: phoenix status FLEET")
    what = f"{path} of {server}" if path else f"any file of {server}"
    raise Refused(
        f"no evidence archived for {what}",
        hint="evidence is kept for changed or added text files, not secrets, found by a scan",
    )


def _keepable(content: bytes, limit: int) -> bool:
    """Small enough, text, and no private key in it."""
    if len(content) > limit or b"\0" in content or looks_secret(content):
        return False
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
