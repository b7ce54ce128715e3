"""The state store: one SQLite file, HOME/state.db.

The state directory and its files are its owner's only (0700, 0600): they hold findings, the
evidence of hand changes and the operator's SSH key. `Store.open` creates them so; a directory
that already exists keeps its modes (`phoenix doctor` reports one others can read).

It records what phoenix did to the world (images built, servers created, runs and what they found),
so every write happens in a transaction and a process killed at any moment leaves the store as it
was at the last commit: SQLite's write-ahead log recovers on the next open.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from phoenix.errors import StateError

STATE_FILE = "state.db"


class RunKind(StrEnum):
    """What a run in the store did."""

    DEPLOY = "deploy"
    REBUILD = "rebuild"
    DESTROY = "destroy"
    DRIFT = "drift"


class RunStatus(StrEnum):
    """Where a run in the store stands: running until it finishes one of the other ways."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled_back"  # a step failed; the servers serving before still serve
    INTERRUPTED = "interrupted"  # cut short (kill, Ctrl-C, crash), settled by the next run


# One SQL script per schema version: MIGRATIONS[n] takes a store from version n to n + 1.
# Never edit a released migration; append a new one. Timestamps are ISO-8601 UTC text.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE images (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        tag TEXT NOT NULL UNIQUE,
        provider_id TEXT,
        status TEXT NOT NULL,
        template_sha256 TEXT NOT NULL,
        inputs_json TEXT NOT NULL DEFAULT '{}',
        parent TEXT REFERENCES images (tag),
        packer_version TEXT,
        built_at TEXT,
        log_path TEXT,
        baseline_json TEXT,
        UNIQUE (name, version)
    );
    CREATE TABLE fleets (
        name TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        config_json TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE generations (
        id INTEGER PRIMARY KEY,
        fleet TEXT NOT NULL REFERENCES fleets (name),
        number INTEGER NOT NULL,
        image_tag TEXT NOT NULL REFERENCES images (tag),
        created_at TEXT NOT NULL,
        UNIQUE (fleet, number)
    );
    CREATE TABLE servers (
        name TEXT PRIMARY KEY,
        fleet TEXT NOT NULL REFERENCES fleets (name),
        generation INTEGER NOT NULL,
        address TEXT,
        image_tag TEXT NOT NULL REFERENCES images (tag),
        host_key TEXT,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        removed_at TEXT,
        FOREIGN KEY (fleet, generation) REFERENCES generations (fleet, number)
    );
    CREATE INDEX servers_by_fleet ON servers (fleet, generation);
    -- runs.fleet has no foreign key: a run is recorded before its fleet exists, and an image
    -- build or a lab run belongs to no fleet at all (NULL).
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        fleet TEXT,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        pid INTEGER NOT NULL,
        detail_json TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX runs_by_fleet ON runs (fleet, started_at);
    CREATE TABLE findings (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs (id),
        server TEXT NOT NULL REFERENCES servers (name),
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        severity TEXT NOT NULL CHECK (severity IN ('low', 'medium', 'high')),
        before TEXT,
        after TEXT,
        evidence TEXT,
        found_at TEXT NOT NULL
    );
    CREATE INDEX findings_by_run ON findings (run_id);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        run_id INTEGER REFERENCES runs (id),
        at TEXT NOT NULL,
        step TEXT NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX events_by_run ON events (run_id, id);
    """,
    # 2: why an image failed, and the provider id of the image it was baked on.
    """
    ALTER TABLE images ADD COLUMN error TEXT;
    ALTER TABLE images ADD COLUMN parent_id TEXT;
    CREATE INDEX images_by_name ON images (name, version);
    """,
    # 3: what repeat scans need not hash again, and the evidence of hand changes.
    """
    CREATE TABLE hash_caches (
        server TEXT PRIMARY KEY,
        updated_at TEXT NOT NULL,
        deep_at TEXT,
        entries BLOB NOT NULL
    );
    CREATE TABLE evidence (
        sha256 TEXT PRIMARY KEY,
        path TEXT NOT NULL,
        server TEXT NOT NULL,
        size INTEGER NOT NULL,
        content BLOB NOT NULL,
        archived_at TEXT NOT NULL
    );
    CREATE INDEX findings_by_server ON findings (server, subject);
    """,
    # 4: the schedule whose `phoenix schedule run` started a run (NULL: an operator's run).
    """
    ALTER TABLE runs ADD COLUMN schedule TEXT;
    CREATE INDEX runs_by_schedule ON runs (schedule, id);
    """,
    # 5: when the host saw each server first start (seconds since the epoch, as text; NULL:
    # unknown): a first scan need not hash the files the server has not written since.
    """
    ALTER TABLE servers ADD COLUMN settled TEXT;
    """,
    # 6: each image's smoke scan as a compressed scan cache (phoenix.facts.ScanCache), for its
    # listings by root: a first scan of a server of the image is answered `#listed` for every
    # root the server still holds as the image did (phoenix.facts.files.HashCache.seeded).
    """
    CREATE TABLE image_listings (
        tag TEXT PRIMARY KEY REFERENCES images (tag) ON DELETE CASCADE,
        listings BLOB NOT NULL
    );
    """,
    # 7: whether an image writes the operator's key from its servers' config at their first start
    # (phoenix.lab.base.KEY_TEMPLATE): its servers are then given no file (infra/lxd).
    """
    ALTER TABLE images ADD COLUMN writes_key INTEGER NOT NULL DEFAULT 0;
    """,
]


def now() -> str:
    """The current time as stored: ISO-8601, UTC, milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Store:
    """An open state store. Use `Store.open(home)`, as a context manager to close it."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._conn = connection

    @classmethod
    def open(cls, home: Path) -> Store:
        """Open (creating and migrating as needed) the store in `home`."""
        path = home / STATE_FILE
        try:
            home.mkdir(mode=0o700, parents=True, exist_ok=True)
            _create_private(path)
        except OSError as exc:
            raise StateError(f"cannot create the state directory {home}: {exc.strerror}") from None
        try:
            connection = sqlite3.connect(path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise StateError(f"cannot open the state store {path}: {exc}") from None
        store = cls(path, connection)
        try:
            store._prepare()
        except BaseException:
            connection.close()
            raise
        return store

    def _prepare(self) -> None:
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit records a change already made to the world (a server created), so
            # it must survive a power loss too, not only a crash (which NORMAL covers in WAL
            # mode). phoenix commits a few times per step, so the extra fsync costs nothing.
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StateError(
                f"{self.path} is not a usable phoenix state store ({exc})",
                hint=f"move it aside (mv {self.path} {self.path}.broken) to start a new store",
            ) from None

    def _migrate(self) -> None:
        if self.schema_version == len(MIGRATIONS):
            return
        with self.transaction() as conn:
            version = self._checked_version()  # again: another process may have migrated
            for script in MIGRATIONS[version:]:
                for statement in _statements(script):
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")

    def _checked_version(self) -> int:
        version = self.schema_version
        if version > len(MIGRATIONS):
            raise StateError(
                f"{self.path} was written by a newer phoenix (schema version {version},"
                f" this phoenix knows up to {len(MIGRATIONS)})",
                hint="upgrade phoenix, or set PHOENIX_HOME to use another store",
            )
        return version

    @property
    def schema_version(self) -> int:
        version: int = self._conn.execute("PRAGMA user_version").fetchone()[0]
        return version

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """A query's rows as dicts keyed by column name."""
        cursor = self._conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error; nested use joins the outer one."""
        if self._conn.in_transaction:
            yield self._conn
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def start_run(self, fleet: str | None, kind: RunKind) -> int:
        """Record a run of `kind` starting now; return its id."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO runs (fleet, kind, status, started_at, pid) VALUES (?, ?, ?, ?, ?)",
                (fleet, kind, RunStatus.RUNNING, now(), os.getpid()),
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def finish_run(self, run_id: int, status: RunStatus) -> None:
        """Record that a run ended with `status`."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE runs SET status = ?, finished_at = ? WHERE id = ?",
                (status, now(), run_id),
            )
        if cursor.rowcount == 0:
            raise StateError(f"no run {run_id} in {self.path}")

    def record_event(self, run_id: int | None, step: str, kind: str, detail: str) -> None:
        """Append one event (of a run, or of none) to the history."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO events (run_id, at, step, kind, detail) VALUES (?, ?, ?, ?, ?)",
                (run_id, now(), step, kind, detail),
            )

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _create_private(path: Path) -> None:
    """Create `path` empty with mode 0600 unless it exists: SQLite then gives its write-ahead log
    and shared-memory files the same mode."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def _statements(script: str) -> Iterator[str]:
    """The statements of a script, one at a time.

    `executescript` would COMMIT the open transaction first, so migrations run statement by
    statement inside it; `complete_statement` keeps semicolons in strings and triggers intact.
    """
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if _has_sql(pending):
                yield pending
            pending = ""
    if _has_sql(pending):
        yield pending  # incomplete: let SQLite report the error


def _has_sql(text: str) -> bool:
    lines = (line.split("--", 1)[0] for line in text.splitlines())
    return any(line.strip(" \t;") for line in lines)
