"""The state store: schema migrations, refusals, and surviving kill -9 in the middle of writes."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from phoenix.errors import StateError
from phoenix.state import MIGRATIONS, STATE_FILE, RunKind, RunStatus, Store, _statements
from tests.conftest import wait_until

TABLES = {"images", "fleets", "generations", "servers", "runs", "findings", "events"}

# Opens the store and writes events in transactions of 10 until it is killed.
WRITER = """
import sys
from pathlib import Path
from phoenix.state import RunKind, Store

store = Store.open(Path(sys.argv[1]))
run = store.start_run("web", RunKind.DRIFT)
while True:
    with store.transaction():
        for _ in range(10):
            store.record_event(run, "check", "output", "x" * 500)
"""


def tables(store: Store) -> set[str]:
    return {r["name"] for r in store.rows("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_fresh_store_has_latest_schema(tmp_path: Path) -> None:
    with Store.open(tmp_path / "home") as store:
        assert store.schema_version == len(MIGRATIONS)
        assert tables(store) >= TABLES
        assert store.rows("PRAGMA journal_mode") == [{"journal_mode": "wal"}]
        assert store.rows("PRAGMA foreign_keys") == [{"foreign_keys": 1}]
    assert (tmp_path / "home").stat().st_mode & 0o777 == 0o700


def test_reopening_is_a_no_op(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        run = store.start_run("web", RunKind.REBUILD)
        store.finish_run(run, RunStatus.SUCCEEDED)
    with Store.open(tmp_path) as store:
        assert store.schema_version == len(MIGRATIONS)
        rows = store.rows("SELECT kind, status FROM runs")
        assert rows == [{"kind": "rebuild", "status": "succeeded"}]  # the plain values, as text
        assert [type(v) for v in rows[0].values()] == [str, str]


@pytest.mark.parametrize("version", range(len(MIGRATIONS)))
def test_older_store_migrates(tmp_path: Path, version: int) -> None:
    with sqlite3.connect(tmp_path / STATE_FILE) as db:
        for script in MIGRATIONS[:version]:
            db.executescript(script)
        db.execute(f"PRAGMA user_version = {version}")
    with Store.open(tmp_path) as store:
        assert store.schema_version == len(MIGRATIONS)
        assert tables(store) >= TABLES


def test_newer_store_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / STATE_FILE) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StateError, match="written by a newer phoenix"):
        Store.open(tmp_path)


def test_not_a_database(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_bytes(b"not a database at all\n" * 100)
    with pytest.raises(StateError) as caught:
        Store.open(tmp_path)
    assert str(tmp_path / STATE_FILE) in caught.value.message
    assert caught.value.hint is not None and "move it aside" in caught.value.hint


def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        with pytest.raises(RuntimeError), store.transaction():
            store.record_event(None, "step", "started", "")
            raise RuntimeError("boom")
        assert count_events(store) == 0


def test_finish_unknown_run(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store, pytest.raises(StateError, match="no run 42"):
        store.finish_run(42, RunStatus.INTERRUPTED)


def test_statements_split_on_complete_statements() -> None:
    script = "CREATE TABLE a (x TEXT DEFAULT ';');\n-- a comment; with a semicolon\nSELECT 1;\n"
    assert [s.strip() for s in _statements(script)] == [
        "CREATE TABLE a (x TEXT DEFAULT ';');",
        "-- a comment; with a semicolon\nSELECT 1;",
    ]


def count_events(store: Store) -> int:
    count: int = store.rows("SELECT count(*) AS n FROM events")[0]["n"]
    return count


def test_survives_kill_9_during_writes(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)])

        def committed_50() -> bool:
            assert writer.poll() is None, "the writer exited early"
            return count_events(store) >= 50

        try:
            wait_until("the writer to commit 50 events", committed_50, timeout=10, interval=0.005)
            seen = count_events(store)
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
    assert writer.returncode == -signal.SIGKILL
    with Store.open(tmp_path) as store:
        assert store.rows("PRAGMA integrity_check") == [{"integrity_check": "ok"}]
        assert store.rows("PRAGMA foreign_key_check") == []
        assert count_events(store) >= seen
        assert count_events(store) % 10 == 0  # whole transactions only


def test_a_new_state_directory_and_store_are_their_owners_only(tmp_path: Path) -> None:
    os.umask(0o022)  # as a shell leaves it: the store is private all the same
    home = tmp_path / "home"
    with Store.open(home) as store:
        store.start_run(None, RunKind.DRIFT)  # a write: the write-ahead log exists now
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in home.iterdir()}
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert modes[STATE_FILE] == 0o600
    assert all(mode == 0o600 for mode in modes.values()), modes


def test_the_cli_creates_everything_for_its_owner_only(tmp_path: Path) -> None:
    from phoenix.cli.app import main

    os.umask(0o022)
    main(["--version"])
    assert os.umask(0o022) == 0o077  # (the autouse fixture restores the test's umask)
