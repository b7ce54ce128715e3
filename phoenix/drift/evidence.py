"""Evidence: the content of the text files a person changed or added by hand on a server.

A server with drift is replaced, never patched, and its changes go with it; so a scan that finds a
changed or added text file fetches its content (over the scan's own SSH session) and archives it in
the state store, keyed by its SHA-256, before anything can replace the server. A finding then
names its evidence (`sha256:...`); `phoenix drift evidence SERVER [PATH]` gives it back.

Secrets are never fetched, stored nor shown: files matching the secret patterns
(secrets.SECRET_PATTERNS and [drift] secrets) are not fetched, and content that holds a secret
(what detect-secrets flags, or a private key: secrets.looks_secret) is dropped on arrival: its
finding keeps the path and the hashes, and says `secret: not kept` instead of naming evidence.
Only files up to [drift] evidence_limit bytes that are text (UTF-8, no NUL) are kept; the same
content is stored once, whichever server and scan found it. `purge` deletes what was archived of
a server, or before a time (`phoenix drift evidence --purge SERVER`, `--older-than AGE`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from phoenix.drift.diff import Finding
from phoenix.drift.secrets import is_secret, looks_secret
from phoenix.errors import Refused
from phoenix.facts import FileFact, Runner
from phoenix.facts.runner import read_files
from phoenix.state import Store, now
from phoenix.workspace import Workspace

KINDS = frozenset({"file.modified", "file.added"})
SECRET = "secret: not kept"  # a finding's evidence when its content holds a secret


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
    withheld: list[str] = field(default_factory=list)  # paths whose content holds a secret


@dataclass(frozen=True)
class Purged:
    """What a purge removed: archived contents, and the findings' links to them."""

    contents: int
    links: int

    def as_dict(self) -> dict[str, int]:
        return {"removed": self.contents, "unlinked": self.links}


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
    withheld: list[str] = []
    for path, content in read_files(session, missing, timeout).items():  # none: no command
        if not _text(content, policy.limit):
            continue
        if looks_secret(content):
            withheld.append(path)
            continue
        digest = hashlib.sha256(content).hexdigest()
        contents.append(Archived(sha256=digest, path=path, server=server, content=content))
        links[path] = digest
    return Collected(contents, links, withheld)


def linked(finding: Finding, collected: Collected) -> Finding:
    """`finding` naming its evidence (`sha256:...`), or saying its content holds a secret."""
    if finding.kind not in KINDS:
        return finding
    if finding.subject in collected.withheld:
        return replace(finding, evidence=SECRET)
    digest = collected.links.get(finding.subject)
    return replace(finding, evidence=f"sha256:{digest}") if digest else finding


def label(mark: str | None) -> str:
    """What a finding's evidence is, for people: archived, secret: not kept, or nothing."""
    if not mark:
        return ""
    return "archived" if mark.startswith("sha256:") else mark


def is_archived(mark: str | None) -> bool:
    return bool(mark and mark.startswith("sha256:"))


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
        if not looks_secret(r["content"])  # archived before secrets were found by content
    ]


def lookup(ws: Workspace, server: str, path: str | None = None) -> list[Archived]:
    """What was archived of `server` (one `path`, or all); Refused if nothing was."""
    with Store.open(ws.home) as store:
        kept = archived(store, server, path)
        if kept:
            return kept
        servers = store.rows("SELECT 1 FROM servers WHERE name = ?", (server,))
        secret = path is not None and _withheld(store, server, path)
    if not servers:
        raise Refused(f"no server {server} in the state store", hint="see: phoenix status FLEET")
    if secret:
        raise Refused(
            f"the content of {path} on {server} holds a secret: it is never kept nor shown",
            hint="its finding keeps its hashes: see phoenix drift changes --since 30d",
        )
    what = f"{path} of {server}" if path else f"any file of {server}"
    raise Refused(
        f"no evidence archived for {what}",
        hint="evidence is kept for changed or added text files, not secrets, found by a scan",
    )


def purge(ws: Workspace, server: str | None = None, older_than: timedelta | None = None) -> Purged:
    """Delete the contents archived of `server` (all servers when None) and archived more than
    `older_than` ago (whenever when None), and the findings' links to them: one transaction.

    A content also found on another server stays when purging by server (it is that server's
    evidence too), unlinked from the findings of `server` only. The deleted bytes are
    overwritten (secure_delete) and the write-ahead log emptied: nothing of them is left behind.
    """
    before = (datetime.now(UTC) - older_than).isoformat(timespec="milliseconds") if (
        older_than is not None
    ) else None  # fmt: skip
    with Store.open(ws.home) as store:
        if server is not None and not store.rows("SELECT 1 FROM servers WHERE name = ?", (server,)):
            raise Refused(
                f"no server {server} in the state store", hint="see: phoenix status FLEET"
            )
        store.rows("PRAGMA secure_delete = ON")
        done = _purge(store, server, before)
        store.rows("PRAGMA wal_checkpoint(TRUNCATE)")
    return done


def _purge(store: Store, server: str | None, before: str | None) -> Purged:
    chosen = (
        "SELECT sha256 FROM evidence WHERE (:before IS NULL OR archived_at < :before) AND"
        " (:server IS NULL OR server = :server"
        "  OR sha256 IN (SELECT evidence FROM findings WHERE server = :server))"
    )
    args = {"server": server, "before": before}
    with store.transaction() as db:
        db.execute("CREATE TEMP TABLE IF NOT EXISTS purged (sha256 TEXT PRIMARY KEY)")
        db.execute("DELETE FROM temp.purged")
        db.execute(f"INSERT INTO temp.purged {chosen}", args)
        links = db.execute(
            "UPDATE findings SET evidence = NULL WHERE evidence IN (SELECT sha256 FROM temp.purged)"
            " AND (:server IS NULL OR server = :server)",
            args,
        ).rowcount
        contents = db.execute(
            "DELETE FROM evidence WHERE sha256 IN (SELECT sha256 FROM temp.purged) AND sha256"
            " NOT IN (SELECT evidence FROM findings WHERE evidence IS NOT NULL)"
        ).rowcount
        db.execute("DELETE FROM temp.purged")
    return Purged(contents, links)


def _withheld(store: Store, server: str, path: str) -> bool:
    rows = store.rows(
        "SELECT 1 FROM findings WHERE server = ? AND subject = ? AND evidence = ? LIMIT 1",
        (server, path, SECRET),
    )
    return bool(rows)


def _text(content: bytes, limit: int) -> bool:
    """Small enough, and text (UTF-8, no NUL)."""
    if len(content) > limit or b"\0" in content:
        return False
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
