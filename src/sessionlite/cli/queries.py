"""Read-only SQL on a sessionlite database, through a plain sqlite3 connection opened
``mode=ro``: what ``stats``, ``sessions``, ``show``, ``check`` and ``export`` read
without a :class:`~sessionlite.SessionService` (which would take the write lock to
migrate an old schema).

Table names come from the table prefix, which the global options validated once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..models import utc_now
from ..store.sqlite.errors import map_db_errors
from ..store.sqlite.schema import REQUIRED_TABLES, SCHEMA_VERSION, check_version, stored_version
from ..timestamps import to_micros
from .app import Target, UsageError, existing_db, remove_database

__all__ = [
    "KEY_PAGE",
    "MAX_REPORTED_PROBLEMS",
    "Reader",
    "check_report",
    "read_only",
    "reader",
    "remove_if_empty",
]

KEY_PAGE = 500  # session keys read per query while exporting
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


class Reader:
    """Read-only queries on a sessionlite database (one table prefix)."""

    def __init__(self, conn: sqlite3.Connection, prefix: str, path: Path) -> None:
        self.conn = conn
        self.p = prefix
        self.path = path
        self.now_us = to_micros(utc_now())
        self.schema_version = 0

    def require_schema(self) -> int:
        """The schema version; a usage error when there are no sessionlite tables."""
        version = stored_version(self.conn, self.p)
        if version == 0:
            prefix = f" with table prefix {self.p!r}" if self.p else ""
            raise UsageError(f"{self.path} has no sessionlite tables{prefix}")
        check_version(version, str(self.path))
        self.schema_version = version
        return version

    def holds_data(self) -> bool:
        """Whether any session (even deleted) or any app or user state is stored."""
        return any(
            self.conn.execute(f"SELECT 1 FROM {self.p}{table} LIMIT 1").fetchone()
            for table in ("sessions", "app_state", "user_state")
        )

    def live(self, alias: str = "") -> str:
        a = f"{alias}." if alias else ""
        return f"{a}deleted_at IS NULL AND ({a}expires_at IS NULL OR {a}expires_at > :now)"

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
            "schema_version": stored_version(self.conn, p),
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
        where = [self.live("s")]
        params: dict[str, Any] = {"now": self.now_us}
        if app_name is not None:
            where.append("s.app_name = :app")
            params["app"] = app_name
        if user_id is not None:
            where.append("s.user_id = :user")
            params["user"] = user_id
        return " AND ".join(where), params

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


@contextmanager
def reader(target: Target) -> Iterator[Reader]:
    """A :class:`Reader` on the target database, which must have sessionlite tables."""
    path = existing_db(target)
    with read_only(path, target.busy_timeout) as conn:
        result = Reader(conn, target.table_prefix, path)
        result.require_schema()
        yield result


def remove_if_empty(target: Target) -> None:
    """Delete the target database if it holds nothing: a command that created it and
    then failed before storing anything leaves no file behind."""
    if not target.path.exists():
        return
    with reader(target) as db:
        if db.holds_data():
            return
    remove_database(target.path)


# -- check --------------------------------------------------------------------------------


def check_report(path: Path, target: Target) -> dict[str, Any]:
    """What ``check`` reports: integrity, schema version, tables and invariants."""
    p = target.table_prefix
    problems: list[str] = []
    notes: list[str] = []
    report: dict[str, Any] = {"path": str(path), "schema_version": None, "user_version": None}
    report["supported_schema_version"] = SCHEMA_VERSION
    with read_only(path, target.busy_timeout) as conn:
        try:
            rows = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as exc:
            return {
                **report,
                "ok": False,
                "integrity": "unreadable",
                "notes": notes,
                "problems": [f"not a readable SQLite database ({exc})"],
            }
        report["integrity"] = "ok" if rows == ["ok"] else "damaged"
        problems.extend(rows[:MAX_REPORTED_PROBLEMS] if rows != ["ok"] else [])
        report["user_version"] = int(conn.execute("PRAGMA user_version").fetchone()[0])
        version = stored_version(conn, p)
        report["schema_version"] = version
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        missing = [f"{p}{t}" for t in REQUIRED_TABLES if f"{p}{t}" not in tables]
        if version == 0:
            empty = " (the database is empty)" if not tables else ""
            problems.append(f"no sessionlite tables with prefix {p!r}{empty}")
        elif version > SCHEMA_VERSION:
            problems.append(
                f"schema version {version} was written by a newer sessionlite (this one "
                f"supports up to {SCHEMA_VERSION}); upgrade sessionlite"
            )
        else:
            if version < SCHEMA_VERSION:
                notes.append(
                    f"schema version {version} is migrated to {SCHEMA_VERSION} when a "
                    "SessionService next opens the file"
                )
            if missing:
                problems.append(f"missing table(s): {', '.join(missing)}")
            else:
                problems.extend(_consistency(conn, p))
    report.update(ok=not problems, notes=notes, problems=problems)
    return report


def _consistency(conn: sqlite3.Connection, p: str) -> list[str]:
    """Invariants SQLite cannot check: every event belongs to a session, and no stored
    sequence is above its session's counter (which would let a sequence be reused)."""
    problems = []
    (orphans,) = conn.execute(
        f"SELECT COUNT(*) FROM {p}events e WHERE NOT EXISTS "
        f"(SELECT 1 FROM {p}sessions s WHERE s.pk = e.session_pk)"
    ).fetchone()
    if orphans:
        problems.append(f"{orphans} event(s) belong to no session")
    (ahead,) = conn.execute(
        f"SELECT COUNT(*) FROM {p}sessions s WHERE s.last_sequence < "
        f"(SELECT MAX(sequence) FROM {p}events e WHERE e.session_pk = s.pk)"
    ).fetchone()
    if ahead:
        problems.append(f"{ahead} session(s) have events beyond their sequence counter")
    return problems
