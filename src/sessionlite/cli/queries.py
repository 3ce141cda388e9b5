"""Read-only SQL on a sessionlite database: what ``stats``, ``sessions``, ``show``,
``check`` and ``export`` read without a :class:`~sessionlite.SessionService` (which
would take the write lock to migrate an old schema).

:func:`reader` and :func:`check_report` open the target's backend: a SQLite file
through a plain sqlite3 connection opened ``mode=ro`` (:class:`Reader`, here), a
PostgreSQL URL through :mod:`sessionlite.store.postgres.inspect`, whose reader has the
same methods (:class:`DatabaseReader`). What the commands make of the rows is written
once, here and in the commands.

Table names come from the table prefix, which the global options validated once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from ..models import utc_now
from ..store.filters import live, render, sessions_filter
from ..store.sqlite import schema
from ..store.sqlite.errors import map_db_errors
from ..timestamps import to_micros
from .app import Target, UsageError, existing_db, new_or_existing_db, remove_database

__all__ = [
    "KEY_PAGE",
    "MAX_REPORTED_PROBLEMS",
    "DatabaseReader",
    "Reader",
    "check_report",
    "connect",
    "prepare_destination",
    "read_only",
    "reader",
    "remove_if_empty",
]

KEY_PAGE = 500  # session keys read per query (PostgreSQL: per fetch) while exporting
MAX_REPORTED_PROBLEMS = 20  # integrity_check lines shown at most


@contextmanager
def read_only(path: Path, busy_timeout: float) -> Iterator[sqlite3.Connection]:
    """A read-only connection; sqlite errors inside the block become StorageErrors."""
    with map_db_errors(str(path)):
        uri = path.resolve().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()


class DatabaseReader(Protocol):
    """What the commands read, on either backend (:class:`Reader` for SQLite,
    :class:`sessionlite.store.postgres.inspect.PostgresReader` for PostgreSQL)."""

    name: str
    """The database in messages (a PostgreSQL URL without its password)."""
    noun: str
    """``file`` or ``database``, in messages."""
    supported_version: int
    """The schema version this sessionlite writes on the backend."""
    schema_version: int
    """The stored schema version, once :func:`reader` checked it."""

    def stored_version(self) -> int: ...
    def check_version(self, version: int) -> None: ...
    def holds_data(self) -> bool: ...
    def stats(self) -> dict[str, Any]: ...
    def sessions(self, app_name: str | None, user_id: str | None, limit: int) -> list[Any]: ...
    def find(
        self, session_id: str, app_name: str | None, user_id: str | None
    ) -> list[tuple[str, str]]: ...
    def count_sessions(self, app_name: str | None, user_id: str | None) -> int: ...
    def session_keys(
        self, app_name: str | None, user_id: str | None
    ) -> Iterator[tuple[str, str, str]]: ...
    def state_scopes(
        self, app_name: str | None, user_id: str | None
    ) -> tuple[list[str], list[tuple[str, str]]]: ...
    def covered_event(self, key: tuple[str, str, str], branch: str, through: int) -> str | None: ...
    def check_storage(self, report: dict[str, Any], problems: list[str]) -> bool: ...
    def has_tables(self) -> bool: ...
    def missing_tables(self) -> list[str]: ...
    def invariants(self) -> tuple[int, int]: ...


def _placeholder(name: str) -> str:
    return ":" + name


class Reader:
    """Read-only queries on a sessionlite SQLite database (one table prefix)."""

    noun = "file"
    supported_version = schema.SCHEMA_VERSION

    def __init__(self, conn: sqlite3.Connection, prefix: str, path: Path) -> None:
        self.conn = conn
        self.p = prefix
        self.path = path
        self.name = str(path)
        self.now_us = to_micros(utc_now())
        self.schema_version = 0

    def stored_version(self) -> int:
        """The schema version of the prefix's tables (0: there are none)."""
        return schema.stored_version(self.conn, self.p)

    def check_version(self, version: int) -> None:
        """Refuse a schema written by a newer sessionlite."""
        schema.check_version(version, self.name)

    def holds_data(self) -> bool:
        """Whether any session (even deleted) or any app or user state is stored."""
        return any(
            self.conn.execute(f"SELECT 1 FROM {self.p}{table} LIMIT 1").fetchone()
            for table in ("sessions", "app_state", "user_state")
        )

    def live(self, alias: str = "") -> str:
        return render([live(alias)], _placeholder)

    def stats(self) -> dict[str, Any]:
        p, now = self.p, {"now": self.now_us}
        apps: dict[str, dict[str, Any]] = {}
        for app_name, sessions, users in self.conn.execute(
            f"SELECT app_name, COUNT(*), COUNT(DISTINCT user_id) FROM {p}sessions "
            f"WHERE {self.live()} GROUP BY app_name ORDER BY app_name",
            now,
        ):
            apps[app_name] = {"app_name": app_name, "sessions": sessions, "users": users}
            apps[app_name]["events"] = 0
        for app_name, events in self.conn.execute(
            f"SELECT s.app_name, COUNT(*) FROM {p}events e JOIN {p}sessions s "
            f"ON s.pk = e.session_pk WHERE {self.live('s')} GROUP BY s.app_name",
            now,
        ):
            apps[app_name]["events"] = events
        (deleted,) = self.conn.execute(
            f"SELECT COUNT(*) FROM {p}sessions WHERE deleted_at IS NOT NULL"
        ).fetchone()
        (expired,) = self.conn.execute(
            f"SELECT COUNT(*) FROM {p}sessions WHERE deleted_at IS NULL AND expires_at <= :now",
            now,
        ).fetchone()
        page_size = self.pragma("page_size")
        wal = Path(f"{self.path}-wal")
        return {
            "path": str(self.path),
            "schema_version": self.stored_version(),
            "sessions": sum(a["sessions"] for a in apps.values()),
            "users": sum(a["users"] for a in apps.values()),
            "events": sum(a["events"] for a in apps.values()),
            "deleted_sessions": deleted,
            "expired_sessions": expired,
            "file_bytes": self.path.stat().st_size,
            "wal_bytes": wal.stat().st_size if wal.exists() else 0,
            "page_size": page_size,
            "page_count": self.pragma("page_count"),
            "free_pages": self.pragma("freelist_count"),
            "apps": list(apps.values()),
        }

    def pragma(self, name: str) -> int:
        return int(self.conn.execute(f"PRAGMA {name}").fetchone()[0])

    def sessions(self, app_name: str | None, user_id: str | None, limit: int) -> list[Any]:
        where, params = self._filters(app_name, user_id)
        rows = self.conn.execute(
            "SELECT s.app_name, s.user_id, s.session_id, s.agent_id, s.created_at, "
            f"s.updated_at, s.expires_at, s.version, (SELECT COUNT(*) FROM {self.p}events e "
            f"WHERE e.session_pk = s.pk) FROM {self.p}sessions s WHERE {where} "
            "ORDER BY s.updated_at DESC, s.pk DESC" + (" LIMIT :limit" if limit else ""),
            {**params, "limit": limit + 1},
        )
        return rows.fetchall()

    def _filters(self, app_name: str | None, user_id: str | None) -> tuple[str, dict[str, Any]]:
        conditions, params = sessions_filter(app_name, user_id, self.now_us)
        return render(conditions, _placeholder), params

    def find(
        self, session_id: str, app_name: str | None, user_id: str | None
    ) -> list[tuple[str, str]]:
        where, params = self._filters(app_name, user_id)
        rows = self.conn.execute(
            f"SELECT s.app_name, s.user_id FROM {self.p}sessions s "
            f"WHERE {where} AND s.session_id = :sid ORDER BY 1, 2",
            {**params, "sid": session_id},
        )
        return [(a, u) for a, u in rows]

    def count_sessions(self, app_name: str | None, user_id: str | None) -> int:
        where, params = self._filters(app_name, user_id)
        sql = f"SELECT COUNT(*) FROM {self.p}sessions s WHERE {where}"
        return int(self.conn.execute(sql, params).fetchone()[0])

    def session_keys(
        self, app_name: str | None, user_id: str | None
    ) -> Iterator[tuple[str, str, str]]:
        """Live session keys in (app, user, id) order, read a page at a time."""
        where, params = self._filters(app_name, user_id)
        after = ("", "", "")
        while True:
            page = self.conn.execute(
                f"SELECT s.app_name, s.user_id, s.session_id FROM {self.p}sessions s "
                f"WHERE {where} AND (s.app_name, s.user_id, s.session_id) > (:a, :u, :s) "
                "ORDER BY 1, 2, 3 LIMIT :n",
                {**params, "a": after[0], "u": after[1], "s": after[2], "n": KEY_PAGE},
            ).fetchall()
            yield from page
            if len(page) < KEY_PAGE:
                return
            after = page[-1]

    def state_scopes(
        self, app_name: str | None, user_id: str | None
    ) -> tuple[list[str], list[tuple[str, str]]]:
        """Apps that have app state, and (app, user) pairs that have user state."""
        apps = [
            a
            for (a,) in self.conn.execute(
                f"SELECT DISTINCT app_name FROM {self.p}app_state ORDER BY 1"
            )
            if app_name in (None, a)
        ]
        users = [
            (a, u)
            for a, u in self.conn.execute(
                f"SELECT DISTINCT app_name, user_id FROM {self.p}user_state ORDER BY 1, 2"
            )
            if app_name in (None, a) and user_id in (None, u)
        ]
        return ([] if user_id is not None else apps), users

    def covered_event(self, key: tuple[str, str, str], branch: str, through: int) -> str | None:
        """The id of the newest stored event on ``branch`` at or before ``through``."""
        row = self.conn.execute(
            f"SELECT e.event_id FROM {self.p}events e JOIN {self.p}sessions s "
            f"ON s.pk = e.session_pk WHERE {self.live('s')} AND s.app_name = :a "
            "AND s.user_id = :u AND s.session_id = :s AND e.sequence <= :through "
            "AND (:b = '' OR e.branch = :b OR substr(e.branch, 1, length(:b) + 1) = :b || '/') "
            "ORDER BY e.sequence DESC LIMIT 1",
            {
                "now": self.now_us,
                "a": key[0],
                "u": key[1],
                "s": key[2],
                "b": branch,
                "through": through,
            },
        ).fetchone()
        return None if row is None else str(row[0])

    # -- check's steps -------------------------------------------------------------------

    def check_storage(self, report: dict[str, Any], problems: list[str]) -> bool:
        """SQLite's integrity check and the file's ``user_version``, into ``report``;
        False when the file is not a readable SQLite database."""
        report["user_version"] = None
        try:
            rows = [row[0] for row in self.conn.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as exc:
            report["integrity"] = "unreadable"
            problems.append(f"not a readable SQLite database ({exc})")
            return False
        report["integrity"] = "ok" if rows == ["ok"] else "damaged"
        problems.extend(rows[:MAX_REPORTED_PROBLEMS] if rows != ["ok"] else [])
        report["user_version"] = self.pragma("user_version")
        return True

    def _tables(self) -> set[str]:
        return {row[0] for row in self.conn.execute("SELECT name FROM sqlite_master")}

    def has_tables(self) -> bool:
        """Whether the file holds any table at all."""
        return bool(self._tables())

    def missing_tables(self) -> list[str]:
        tables = self._tables()
        return [f"{self.p}{t}" for t in schema.REQUIRED_TABLES if f"{self.p}{t}" not in tables]

    def invariants(self) -> tuple[int, int]:
        """(events that belong to no session, sessions whose sequence counter is below
        one of their events' sequence)."""
        p = self.p
        (orphans,) = self.conn.execute(
            f"SELECT COUNT(*) FROM {p}events e WHERE NOT EXISTS "
            f"(SELECT 1 FROM {p}sessions s WHERE s.pk = e.session_pk)"
        ).fetchone()
        (ahead,) = self.conn.execute(
            f"SELECT COUNT(*) FROM {p}sessions s WHERE s.last_sequence < "
            f"(SELECT MAX(sequence) FROM {p}events e WHERE e.session_pk = s.pk)"
        ).fetchone()
        return int(orphans), int(ahead)


@contextmanager
def connect(target: Target) -> Iterator[DatabaseReader]:
    """A reader on the target database, whatever tables it holds (``--db`` must name
    an existing file or a PostgreSQL database)."""
    if target.url is not None:
        from ..store.postgres.inspect import connect as connect_postgres

        prefix, timeout = target.table_prefix, target.busy_timeout
        with connect_postgres(target.url, prefix, timeout, key_page=KEY_PAGE) as found:
            yield found
        return
    path = existing_db(target)
    with read_only(path, target.busy_timeout) as conn:
        yield Reader(conn, target.table_prefix, path)


@contextmanager
def reader(target: Target) -> Iterator[DatabaseReader]:
    """A reader on the target database, which must have sessionlite tables."""
    with connect(target) as db:
        version = db.stored_version()
        if version == 0:
            prefix = f" with table prefix {target.table_prefix!r}" if target.table_prefix else ""
            raise UsageError(f"{db.name} has no sessionlite tables{prefix}")
        db.check_version(version)
        db.schema_version = version
        yield db


def prepare_destination(target: Target) -> bool:
    """Check the database an import writes to; returns whether the command creates it
    (then :func:`remove_if_empty` removes it again if the command fails early).

    A new SQLite file is created (its directory must exist); an existing one must have
    sessionlite tables: they are not added to someone else's file. A PostgreSQL
    database gets the tables (with the table prefix) if it lacks them.
    """
    if target.url is not None:
        with connect(target):  # an unreachable server: one error, before the service tries
            return False
    path = new_or_existing_db(target)
    if not path.exists():
        return True
    with reader(target):
        return False


def remove_if_empty(target: Target) -> None:
    """Delete the target database file if it holds nothing: a command that created it
    and then failed before storing anything leaves no file behind. (A command never
    creates a PostgreSQL database: see :func:`prepare_destination`.)"""
    if not target.path.exists():
        return
    with reader(target) as db:
        if db.holds_data():
            return
    remove_database(target.path)


# -- check --------------------------------------------------------------------------------


def check_report(target: Target) -> dict[str, Any]:
    """What ``check`` reports: schema version, tables and invariants, and on SQLite the
    file's integrity. PostgreSQL checks its own storage: no integrity entry."""
    problems: list[str] = []
    notes: list[str] = []
    with connect(target) as db:
        report: dict[str, Any] = {"path": db.name, "schema_version": None}
        report["supported_schema_version"] = db.supported_version
        if db.check_storage(report, problems):
            version = db.stored_version()
            report["schema_version"] = version
            problems.extend(_schema_problems(db, version, notes, target.table_prefix))
    report.update(ok=not problems, notes=notes, problems=problems)
    return report


def _schema_problems(db: DatabaseReader, version: int, notes: list[str], prefix: str) -> list[str]:
    supported = db.supported_version
    if version == 0:
        empty = "" if db.has_tables() else " (the database is empty)"
        return [f"no sessionlite tables with prefix {prefix!r}{empty}"]
    if version > supported:
        return [
            f"schema version {version} was written by a newer sessionlite (this one "
            f"supports up to {supported}); upgrade sessionlite"
        ]
    if version < supported:
        notes.append(
            f"schema version {version} is migrated to {supported} when a SessionService "
            f"next opens the {db.noun}"
        )
    if missing := db.missing_tables():
        return [f"missing table(s): {', '.join(missing)}"]
    # Invariants the database cannot check: every event belongs to a session, and no
    # stored sequence is above its session's counter (which would let one be reused).
    orphans, ahead = db.invariants()
    problems = []
    if orphans:
        problems.append(f"{orphans} event(s) belong to no session")
    if ahead:
        problems.append(f"{ahead} session(s) have events beyond their sequence counter")
    return problems
