"""Stdlib ``sqlite3`` on sessionlite's own tables: the raw baselines and the peers' builds.

The tables are created by sessionlite's own migrations (``schema.migrate``), so the raw
baselines write into exactly the tables, columns and indexes the package writes into.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sessionlite import Event
from sessionlite.store.sqlite import schema
from sessionlite.timestamps import to_micros

from .workloads import batches, body_of

BUILD_CHUNK = 10_000  # rows per bulk INSERT transaction
SCHEMA_KEY = f"sessionlite schema v{schema.SCHEMA_VERSION}"  # part of cached databases' keys

INSERT_EVENT = (
    "INSERT INTO events (session_pk, sequence, event_id, author, timestamp, branch, body) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
# (pk or None, app_name, user_id, session_id, created_at = updated_at, last_sequence)
INSERT_SESSION = (
    "INSERT INTO sessions (pk, app_name, user_id, session_id, metadata, created_at, "
    "updated_at, version, last_sequence) VALUES (?1, ?2, ?3, ?4, '{}', ?5, ?5, 0, ?6)"
)
UPSERT_STATE = (
    "INSERT INTO session_state (session_pk, key, value) VALUES (?, ?, ?) "
    "ON CONFLICT (session_pk, key) DO UPDATE SET value = excluded.value"
)


def connect(path: Path) -> sqlite3.Connection:
    """Autocommit connection, WAL, ``synchronous=NORMAL`` (sessionlite's default), and
    sessionlite's schema."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    schema.migrate(conn, "", str(path))
    return conn


def event_row(session_pk: int, sequence: int, event: Event) -> tuple[Any, ...]:
    """The ``events`` row sessionlite writes for ``event`` (its body serialized)."""
    return (
        session_pk,
        sequence,
        event.id,
        event.author,
        to_micros(event.timestamp),
        event.branch,
        body_of(event),
    )


def write(conn: sqlite3.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """``executemany`` in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(sql, rows)
    conn.execute("COMMIT")


def write_batches(conn: sqlite3.Connection, sql: str, rows: Iterable[Sequence[Any]]) -> None:
    """``executemany`` in transactions of ``BUILD_CHUNK`` rows (bulk builds)."""
    for batch in batches(rows, BUILD_CHUNK):
        write(conn, sql, batch)


def count_rows(path: Path, table: str = "events") -> int:
    conn = sqlite3.connect(path)
    try:
        (count,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    finally:
        conn.close()
    return int(count)


def check_stored(path: Path, expected: int) -> None:
    """After a timed run: every appended event is in sessionlite's file."""
    count = count_rows(path)
    if count != expected:
        raise RuntimeError(f"sessionlite stored {count} events, expected {expected}")
