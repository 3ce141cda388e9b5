"""PostgreSQL schema and ordered migrations, versioned per table prefix.

The row layout is SQLite's (see :mod:`sessionlite.store.codec`): JSON as ``text`` (kept
byte for byte; cast to ``jsonb`` to query it), timestamps as ``bigint`` microseconds
since the Unix epoch (UTC). ``MIGRATIONS[i]`` takes a prefix from version ``i`` to
``i + 1``; templates name tables as ``{sessions}``, ``{events}``... (quoted identifiers
built from the validated prefix).

Several servers may start on an empty database at the same moment: a migration runs
under a transaction-level advisory lock keyed by the prefix, so exactly one of them
creates the tables and the others find them made.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, sql

from .. import schema_checks
from ..schema_checks import (
    DATA_TABLES,
    foreign_table_error,
    not_created_error,
    not_migrated_error,
)

TABLES = ("schema_info", *DATA_TABLES)  # schema_info: the version, PostgreSQL only
# Longest index name suffix below; PostgreSQL truncates identifiers at 63 bytes.
LONGEST_SUFFIX = len("state_scopes_expiry")

_V1 = [
    """
    CREATE TABLE IF NOT EXISTS {schema_info} (
        id integer PRIMARY KEY CHECK (id = 1),
        version integer NOT NULL
    )""",
    """
    CREATE TABLE IF NOT EXISTS {sessions} (
        pk bigserial PRIMARY KEY,
        app_name text NOT NULL,
        user_id text NOT NULL,
        session_id text NOT NULL,
        agent_id text,
        metadata text NOT NULL,
        created_at bigint NOT NULL,
        updated_at bigint NOT NULL,
        expires_at bigint,
        deleted_at bigint,
        version bigint NOT NULL,
        last_sequence bigint NOT NULL
    )""",
    # A soft-deleted session keeps its row, so uniqueness applies to live rows only.
    """
    CREATE UNIQUE INDEX IF NOT EXISTS {sessions_live_key}
        ON {sessions} (app_name, user_id, session_id) WHERE deleted_at IS NULL""",
    """
    CREATE INDEX IF NOT EXISTS {sessions_by_user}
        ON {sessions} (app_name, user_id, updated_at DESC, pk DESC) WHERE deleted_at IS NULL""",
    """
    CREATE INDEX IF NOT EXISTS {sessions_by_app}
        ON {sessions} (app_name, updated_at DESC, pk DESC) WHERE deleted_at IS NULL""",
    """
    CREATE INDEX IF NOT EXISTS {sessions_expiry}
        ON {sessions} (expires_at) WHERE expires_at IS NOT NULL AND deleted_at IS NULL""",
    """
    CREATE INDEX IF NOT EXISTS {sessions_deleted}
        ON {sessions} (deleted_at) WHERE deleted_at IS NOT NULL""",
    # (session_pk, sequence) makes "the newest N events" an index range scan whatever
    # the session's length; (session_pk, event_id) makes retries idempotent.
    """
    CREATE TABLE IF NOT EXISTS {events} (
        session_pk bigint NOT NULL,
        sequence bigint NOT NULL,
        event_id text NOT NULL,
        author text NOT NULL,
        timestamp bigint NOT NULL,
        branch text NOT NULL,
        body text NOT NULL,
        PRIMARY KEY (session_pk, sequence)
    )""",
    """
    CREATE UNIQUE INDEX IF NOT EXISTS {events_by_id} ON {events} (session_pk, event_id)""",
    """
    CREATE TABLE IF NOT EXISTS {session_state} (
        session_pk bigint NOT NULL,
        key text NOT NULL,
        value text NOT NULL,
        PRIMARY KEY (session_pk, key)
    )""",
    """
    CREATE TABLE IF NOT EXISTS {app_state} (
        app_name text NOT NULL,
        key text NOT NULL,
        value text NOT NULL,
        updated_at bigint NOT NULL,
        PRIMARY KEY (app_name, key)
    )""",
    """
    CREATE TABLE IF NOT EXISTS {user_state} (
        app_name text NOT NULL,
        user_id text NOT NULL,
        key text NOT NULL,
        value text NOT NULL,
        updated_at bigint NOT NULL,
        PRIMARY KEY (app_name, user_id, key)
    )""",
    """
    CREATE TABLE IF NOT EXISTS {summaries} (
        session_pk bigint NOT NULL,
        branch text NOT NULL,
        text text NOT NULL,
        through_sequence bigint NOT NULL,
        updated_at bigint NOT NULL,
        PRIMARY KEY (session_pk, branch)
    )""",
    # Expiry of app and user state is tracked per scope (one row per app / per user).
    """
    CREATE TABLE IF NOT EXISTS {state_scopes} (
        kind text NOT NULL CHECK (kind IN ('app', 'user')),
        app_name text NOT NULL,
        user_id text NOT NULL,
        updated_at bigint NOT NULL,
        expires_at bigint,
        PRIMARY KEY (kind, app_name, user_id)
    )""",
    """
    CREATE INDEX IF NOT EXISTS {state_scopes_expiry}
        ON {state_scopes} (expires_at) WHERE expires_at IS NOT NULL""",
]

MIGRATIONS: list[list[str]] = [_V1]
SCHEMA_VERSION = len(MIGRATIONS)

_INDEXES = (
    "sessions_live_key",
    "sessions_by_user",
    "sessions_by_app",
    "sessions_expiry",
    "sessions_deleted",
    "events_by_id",
    "state_scopes_expiry",
)


def identifiers(prefix: str) -> dict[str, sql.Identifier]:
    """Every table and index name for ``prefix``, as quoted identifiers."""
    return {name: sql.Identifier(prefix + name) for name in (*TABLES, *_INDEXES)}


def render(template: str, prefix: str) -> str:
    """``template`` with its ``{table}`` names filled in for ``prefix``."""
    return sql.SQL(template).format(**identifiers(prefix)).as_string(None)


def lock_key(prefix: str) -> str:
    """The advisory lock text that serializes schema changes of one prefix (with the
    schema's name in front: tables in other schemas are changed independently)."""
    return f"sessionlite schema {prefix}"


async def stored_version(conn: AsyncConnection[Any], prefix: str) -> int:
    """The schema version of the tables with ``prefix`` (0 when they do not exist)."""
    cursor = await conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL",
        (sql.Identifier(prefix + "schema_info").as_string(None),),
    )
    row = await cursor.fetchone()
    if not row or not row[0]:
        return 0
    cursor = await conn.execute(render("SELECT version FROM {schema_info} WHERE id = 1", prefix))
    found = await cursor.fetchone()
    return int(found[0]) if found else 0


def check_version(version: int, where: str) -> None:
    schema_checks.check_version(version, SCHEMA_VERSION, where)


async def _check_foreign_tables(conn: AsyncConnection[Any], prefix: str, where: str) -> None:
    """A table of ours that lacks our columns belongs to someone else."""
    required = {
        "sessions": {"pk", "app_name", "user_id", "session_id", "version", "last_sequence"},
        "events": {"session_pk", "sequence", "event_id", "author", "timestamp", "body"},
    }
    for table, columns in required.items():
        cursor = await conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) "
            "AND attnum > 0 AND NOT attisdropped",
            (sql.Identifier(prefix + table).as_string(None),),
        )
        found = {row[0] for row in await cursor.fetchall()}
        if found and not columns <= found:
            raise foreign_table_error(where, prefix + table, columns - found)


async def migrate(conn: AsyncConnection[Any], prefix: str, where: str) -> int:
    """Bring the schema for ``prefix`` up to date; returns the version found before.

    ``conn`` is in autocommit mode; the work is one transaction under the advisory lock.
    """
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || %s, 0))",
            (lock_key(prefix),),
        )
        before = await stored_version(conn, prefix)
        check_version(before, where)
        await _check_foreign_tables(conn, prefix, where)
        for statements in MIGRATIONS[before:]:
            for template in statements:
                await conn.execute(render(template, prefix))
        if before < SCHEMA_VERSION:
            await conn.execute(
                render(
                    "INSERT INTO {schema_info} (id, version) VALUES (1, %s) "
                    "ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                    prefix,
                ),
                (SCHEMA_VERSION,),
            )
    return before


async def verify(conn: AsyncConnection[Any], prefix: str, where: str) -> None:
    """With ``create_schema=False``: check the caller-managed tables are usable."""
    await _check_foreign_tables(conn, prefix, where)
    missing = []
    for table in TABLES:
        cursor = await conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (sql.Identifier(prefix + table).as_string(None),)
        )
        row = await cursor.fetchone()
        if not row or not row[0]:
            missing.append(prefix + table)
    if missing:
        raise not_created_error(where, missing)
    version = await stored_version(conn, prefix)
    check_version(version, where)
    if version < SCHEMA_VERSION:
        raise not_migrated_error(where, version, SCHEMA_VERSION)
