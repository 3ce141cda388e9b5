"""Schema and ordered migrations, versioned with ``PRAGMA user_version``.

``MIGRATIONS[i]`` takes a database from version ``i`` to ``i + 1``. Each is a list of
DDL templates where ``{p}`` is the (validated) table prefix. A database whose
``user_version`` is above ``SCHEMA_VERSION`` was written by a newer sessionlite and is
refused with :class:`~sessionlite.SchemaVersionError` rather than guessed at.

With a table prefix several stores can share one file, so the version is also kept
per prefix in ``{p}schema_info``; ``user_version`` holds the highest of them.
"""

from __future__ import annotations

import sqlite3

from .. import schema_checks
from ..schema_checks import DATA_TABLES, foreign_table_error, not_created_error, not_migrated_error

# Timestamps are integer microseconds since the Unix epoch (UTC): exact, sortable.
_V1 = [
    """
    CREATE TABLE IF NOT EXISTS {p}schema_info (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS {p}sessions (
        pk INTEGER PRIMARY KEY,
        app_name TEXT NOT NULL,
        user_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        agent_id TEXT,
        metadata TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        expires_at INTEGER,
        deleted_at INTEGER,
        version INTEGER NOT NULL,
        last_sequence INTEGER NOT NULL
    )
    """,
    # A soft-deleted session keeps its row, so uniqueness applies to live rows only.
    """
    CREATE UNIQUE INDEX IF NOT EXISTS {p}sessions_live_key
        ON {p}sessions (app_name, user_id, session_id) WHERE deleted_at IS NULL
    """,
    """
    CREATE INDEX IF NOT EXISTS {p}sessions_by_user
        ON {p}sessions (app_name, user_id, updated_at DESC, pk DESC) WHERE deleted_at IS NULL
    """,
    """
    CREATE INDEX IF NOT EXISTS {p}sessions_by_app
        ON {p}sessions (app_name, updated_at DESC, pk DESC) WHERE deleted_at IS NULL
    """,
    """
    CREATE INDEX IF NOT EXISTS {p}sessions_expiry
        ON {p}sessions (expires_at) WHERE expires_at IS NOT NULL AND deleted_at IS NULL
    """,
    """
    CREATE INDEX IF NOT EXISTS {p}sessions_deleted
        ON {p}sessions (deleted_at) WHERE deleted_at IS NOT NULL
    """,
    """
    CREATE TABLE IF NOT EXISTS {p}events (
        pk INTEGER PRIMARY KEY,
        session_pk INTEGER NOT NULL,
        sequence INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        author TEXT NOT NULL,
        timestamp INTEGER NOT NULL,
        branch TEXT NOT NULL,
        body TEXT NOT NULL
    )
    """,
    # (session_pk, sequence) makes "the last N events" an index range scan whatever
    # the session's length; (session_pk, event_id) makes retries idempotent.
    """
    CREATE UNIQUE INDEX IF NOT EXISTS {p}events_by_sequence
        ON {p}events (session_pk, sequence)
    """,
    """
    CREATE UNIQUE INDEX IF NOT EXISTS {p}events_by_id ON {p}events (session_pk, event_id)
    """,
    """
    CREATE TABLE IF NOT EXISTS {p}session_state (
        session_pk INTEGER NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (session_pk, key)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE IF NOT EXISTS {p}app_state (
        app_name TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (app_name, key)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE IF NOT EXISTS {p}user_state (
        app_name TEXT NOT NULL,
        user_id TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (app_name, user_id, key)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE IF NOT EXISTS {p}summaries (
        session_pk INTEGER NOT NULL,
        branch TEXT NOT NULL,
        text TEXT NOT NULL,
        through_sequence INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (session_pk, branch)
    ) WITHOUT ROWID
    """,
]

# v2: expiry of app and user state is tracked per scope (one row per app / per user),
# so a write to any key slides the whole scope's expiry.
_V2 = [
    """
    CREATE TABLE IF NOT EXISTS {p}state_scopes (
        kind TEXT NOT NULL CHECK (kind IN ('app', 'user')),
        app_name TEXT NOT NULL,
        user_id TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        expires_at INTEGER,
        PRIMARY KEY (kind, app_name, user_id)
    ) WITHOUT ROWID
    """,
    """
    CREATE INDEX IF NOT EXISTS {p}state_scopes_expiry
        ON {p}state_scopes (expires_at) WHERE expires_at IS NOT NULL
    """,
]

MIGRATIONS: list[list[str]] = [_V1, _V2]
SCHEMA_VERSION = len(MIGRATIONS)

REQUIRED_TABLES = DATA_TABLES


# Columns the store relies on, per table: a table of the same name that lacks them
# belongs to someone else (CREATE TABLE IF NOT EXISTS would silently keep it).
_REQUIRED_COLUMNS = {
    "sessions": {"pk", "app_name", "user_id", "session_id", "version", "last_sequence"},
    "events": {"pk", "session_pk", "sequence", "event_id", "author", "timestamp", "body"},
    "session_state": {"session_pk", "key", "value"},
    "app_state": {"app_name", "key", "value"},
    "user_state": {"app_name", "user_id", "key", "value"},
}


def check_foreign_tables(conn: sqlite3.Connection, prefix: str, path: str) -> None:
    for table, required in _REQUIRED_COLUMNS.items():
        columns = {row[1] for row in conn.execute(f"PRAGMA table_info({prefix}{table})")}
        if columns and not required <= columns:
            raise foreign_table_error(path, prefix + table, required - columns)


def stored_version(conn: sqlite3.Connection, prefix: str) -> int:
    """The schema version of the tables with ``prefix`` (0 when they do not exist)."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
        (f"{prefix}schema_info",),
    ).fetchone()
    if not exists:
        return 0
    row = conn.execute(f"SELECT version FROM {prefix}schema_info WHERE id = 1").fetchone()
    return int(row[0]) if row else 0


def check_version(version: int, path: str) -> None:
    schema_checks.check_version(version, SCHEMA_VERSION, path)


def migrate(conn: sqlite3.Connection, prefix: str, path: str) -> int:
    """Bring the schema for ``prefix`` up to date inside one ``BEGIN IMMEDIATE``.

    Several processes may open the same file at once; the write lock makes exactly one
    of them migrate and the others see the result. Returns the version found before.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        before = stored_version(conn, prefix)
        check_version(before, path)
        check_version(int(conn.execute("PRAGMA user_version").fetchone()[0]), path)
        check_foreign_tables(conn, prefix, path)
        for statements in MIGRATIONS[before:]:
            for template in statements:
                conn.execute(template.format(p=prefix))
        if before < SCHEMA_VERSION:
            conn.execute(
                f"INSERT INTO {prefix}schema_info (id, version) VALUES (1, ?) "
                "ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                (SCHEMA_VERSION,),
            )
            current = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if current < SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return before


def verify(conn: sqlite3.Connection, prefix: str, path: str) -> None:
    """With ``create_schema=False``: check the caller-managed tables are usable."""
    check_version(int(conn.execute("PRAGMA user_version").fetchone()[0]), path)
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    check_foreign_tables(conn, prefix, path)
    missing = [f"{prefix}{t}" for t in REQUIRED_TABLES if f"{prefix}{t}" not in names]
    if missing:
        raise not_created_error(path, missing)
    version = stored_version(conn, prefix)
    check_version(version, path)
    if version and version < SCHEMA_VERSION:
        raise not_migrated_error(path, version, SCHEMA_VERSION)
