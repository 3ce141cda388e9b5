"""Read-only SQL on a sessionlite PostgreSQL database, for the ``sessionlite`` command.

The PostgreSQL side of :mod:`sessionlite.cli.queries`: :class:`PostgresReader` has the
methods of the SQLite ``Reader`` there (``stats``, ``sessions``, ``find``,
``count_sessions``, ``session_keys``, ``state_scopes``, ``covered_event``,
``holds_data`` and the steps of ``check``), and returns rows of the same shape, so the
commands do not care which backend they read.

It runs on one plain synchronous psycopg connection in autocommit mode; every read is
a ``READ ONLY`` transaction. Statements are never prepared: a pooler (pgbouncer in
transaction mode) may route them to another server connection. Names are ordered byte
by byte (``COLLATE "C"``), as SQLite orders them, so that an export lists sessions in
the same order from either backend.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from ...models import utc_now
from ...timestamps import to_micros
from ..filters import live, render, sessions_filter
from .connection import display_name
from .errors import map_db_errors
from .schema import SCHEMA_VERSION, TABLES, check_version
from .schema import render as render_tables

__all__ = ["PostgresReader", "connect"]

_C = 'COLLATE "C"'


def _live(alias: str) -> str:
    return render([live(alias)], _placeholder)


def _placeholder(name: str) -> str:
    return f"%({name})s"


@contextmanager
def connect(
    url: str, prefix: str, busy_timeout: float, *, key_page: int
) -> Iterator[PostgresReader]:
    """A reader on the database at ``url``; psycopg errors inside the block become
    :class:`~sessionlite.StorageError` s naming the database without its password.

    ``busy_timeout`` bounds the wait for a connection unless the URL sets
    ``connect_timeout`` itself; ``key_page``: session keys fetched per round trip.
    """
    where = display_name(url)
    options: dict[str, Any] = {"autocommit": True, "prepare_threshold": None}
    if "connect_timeout" not in conninfo_to_dict(url):
        options["connect_timeout"] = max(1, round(busy_timeout))
    with map_db_errors(where):
        conn = psycopg.connect(url, **options)
        try:
            conn.read_only = True  # every transaction below begins READ ONLY
            yield PostgresReader(conn, prefix, where, key_page=key_page)
        finally:
            conn.close()


class PostgresReader:
    """Read-only queries on a sessionlite PostgreSQL database (one table prefix)."""

    noun = "database"
    supported_version = SCHEMA_VERSION

    def __init__(
        self, conn: psycopg.Connection[Any], prefix: str, name: str, *, key_page: int
    ) -> None:
        self.conn = conn
        self.p = prefix
        self.name = name
        self.key_page = key_page
        self.now_us = to_micros(utc_now())
        self.schema_version = 0

    def _rows(self, template: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """All rows of a query whose tables are named ``{sessions}``, ``{events}``..."""
        with self.conn.transaction():
            return self.conn.execute(render_tables(template, self.p), params).fetchall()

    def _value(self, template: str, params: Mapping[str, Any] | None = None) -> Any:
        ((value,),) = self._rows(template, params)
        return value

    def _table_names(self, tables: tuple[str, ...]) -> list[str]:
        """The tables' quoted names, as ``to_regclass`` takes them."""
        return [sql.Identifier(self.p + table).as_string(None) for table in tables]

    # -- schema -----------------------------------------------------------------------

    def stored_version(self) -> int:
        """The schema version of the prefix's tables (0: there are none); what
        :func:`.schema.stored_version` reads on the service's async connections."""
        (name,) = self._table_names(("schema_info",))
        if not self._value("SELECT to_regclass(%(t)s) IS NOT NULL", {"t": name}):
            return 0
        rows = self._rows("SELECT version FROM {schema_info} WHERE id = 1")
        return int(rows[0][0]) if rows else 0

    def check_version(self, version: int) -> None:
        """Refuse a schema written by a newer sessionlite."""
        check_version(version, self.name)

    def holds_data(self) -> bool:
        """Whether any session (even deleted) or any app or user state is stored."""
        return bool(
            self._value(
                "SELECT EXISTS (SELECT 1 FROM {sessions}) OR EXISTS (SELECT 1 FROM {app_state}) "
                "OR EXISTS (SELECT 1 FROM {user_state})"
            )
        )

    # -- stats, sessions, show ---------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        now = {"now": self.now_us}
        apps = [
            {"app_name": app_name, "sessions": sessions, "users": users, "events": events}
            for app_name, sessions, users, events in self._rows(
                "SELECT s.app_name, COUNT(*), COUNT(DISTINCT s.user_id), SUM(n.events)::bigint "
                "FROM {sessions} s, LATERAL "
                "(SELECT COUNT(*) AS events FROM {events} e WHERE e.session_pk = s.pk) n "
                f"WHERE {_live('s')} "
                f"GROUP BY s.app_name ORDER BY s.app_name {_C}",
                now,
            )
        ]
        deleted, expired = self._rows(
            "SELECT COUNT(*) FILTER (WHERE deleted_at IS NOT NULL), "
            "COUNT(*) FILTER (WHERE deleted_at IS NULL AND expires_at <= %(now)s) "
            "FROM {sessions}",
            now,
        )[0]
        table_bytes = self._value(
            "SELECT COALESCE(SUM(pg_total_relation_size(to_regclass(t))), 0)::bigint "
            "FROM unnest(%(tables)s::text[]) AS t",
            {"tables": self._table_names(TABLES)},
        )
        return {
            "path": self.name,
            "schema_version": self.stored_version(),
            "sessions": sum(a["sessions"] for a in apps),
            "users": sum(a["users"] for a in apps),
            "events": sum(a["events"] for a in apps),
            "deleted_sessions": deleted,
            "expired_sessions": expired,
            "table_bytes": table_bytes,
            "apps": apps,
        }

    def _filters(self, app_name: str | None, user_id: str | None) -> tuple[str, dict[str, Any]]:
        conditions, params = sessions_filter(app_name, user_id, self.now_us)
        return render(conditions, _placeholder), params

    def sessions(self, app_name: str | None, user_id: str | None, limit: int) -> list[Any]:
        """Live sessions, newest first; ``limit`` + 1 rows at most (0: all)."""
        where, params = self._filters(app_name, user_id)
        return self._rows(
            "SELECT s.app_name, s.user_id, s.session_id, s.agent_id, s.created_at, "
            "s.updated_at, s.expires_at, s.version, (SELECT COUNT(*) FROM {events} e "
            f"WHERE e.session_pk = s.pk) FROM {{sessions}} s WHERE {where} "
            "ORDER BY s.updated_at DESC, s.pk DESC LIMIT %(limit)s",
            {**params, "limit": limit + 1 if limit else None},
        )

    def find(
        self, session_id: str, app_name: str | None, user_id: str | None
    ) -> list[tuple[str, str]]:
        """The (app, user) of every live session with this id."""
        where, params = self._filters(app_name, user_id)
        rows = self._rows(
            f"SELECT s.app_name, s.user_id FROM {{sessions}} s "
            f"WHERE {where} AND s.session_id = %(sid)s ORDER BY s.app_name {_C}, s.user_id {_C}",
            {**params, "sid": session_id},
        )
        return [(a, u) for a, u in rows]

    def count_sessions(self, app_name: str | None, user_id: str | None) -> int:
        where, params = self._filters(app_name, user_id)
        return int(self._value(f"SELECT COUNT(*) FROM {{sessions}} s WHERE {where}", params))

    # -- export -------------------------------------------------------------------------

    def session_keys(
        self, app_name: str | None, user_id: str | None
    ) -> Iterator[tuple[str, str, str]]:
        """Live session keys in (app, user, id) byte order, fetched a page at a time.

        One sort, streamed by a server-side cursor, in a transaction of its own that
        stays open while the keys are read (other reads may run meanwhile).
        """
        where, params = self._filters(app_name, user_id)
        query = render_tables(
            f"SELECT s.app_name, s.user_id, s.session_id FROM {{sessions}} s WHERE {where} "
            f"ORDER BY s.app_name {_C}, s.user_id {_C}, s.session_id {_C}",
            self.p,
        )
        with self.conn.transaction(), self.conn.cursor(name="sessionlite_keys") as cursor:
            cursor.itersize = self.key_page
            cursor.execute(query, params)
            yield from cursor

    def state_scopes(
        self, app_name: str | None, user_id: str | None
    ) -> tuple[list[str], list[tuple[str, str]]]:
        """Apps that have app state, and (app, user) pairs that have user state."""
        apps = [
            a
            for (a,) in self._rows(f"SELECT DISTINCT app_name {_C} FROM {{app_state}} ORDER BY 1")
            if app_name in (None, a)
        ]
        users = [
            (a, u)
            for a, u in self._rows(
                f"SELECT DISTINCT app_name {_C}, user_id {_C} FROM {{user_state}} ORDER BY 1, 2"
            )
            if app_name in (None, a) and user_id in (None, u)
        ]
        return ([] if user_id is not None else apps), users

    def covered_event(self, key: tuple[str, str, str], branch: str, through: int) -> str | None:
        """The id of the newest stored event on ``branch`` at or before ``through``."""
        rows = self._rows(
            "SELECT e.event_id FROM {events} e JOIN {sessions} s ON s.pk = e.session_pk "
            f"WHERE {_live('s')} AND s.app_name = %(a)s AND s.user_id = %(u)s "
            "AND s.session_id = %(s)s AND e.sequence <= %(through)s "
            "AND (%(b)s::text = '' OR e.branch = %(b)s::text "
            "OR starts_with(e.branch, %(b)s::text || '/')) "
            "ORDER BY e.sequence DESC LIMIT 1",
            {
                "now": self.now_us,
                "a": key[0],
                "u": key[1],
                "s": key[2],
                "b": branch,
                "through": through,
            },
        )
        return None if not rows else str(rows[0][0])

    # -- check's steps ------------------------------------------------------------------

    def check_storage(self, report: dict[str, Any], problems: list[str]) -> bool:
        """Nothing to add: the server checks its own storage (no integrity entry)."""
        return True

    def has_tables(self) -> bool:
        """Whether the schemas on the search path hold any table at all."""
        return bool(
            self._value(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables "
                "WHERE schemaname = ANY (current_schemas(false)))"
            )
        )

    def missing_tables(self) -> list[str]:
        present = self._rows(
            "SELECT to_regclass(t) IS NOT NULL "
            "FROM unnest(%(tables)s::text[]) WITH ORDINALITY AS x(t, i) ORDER BY i",
            {"tables": self._table_names(TABLES)},
        )
        return [
            self.p + table for table, (found,) in zip(TABLES, present, strict=True) if not found
        ]

    def invariants(self) -> tuple[int, int]:
        """(events that belong to no session, sessions whose sequence counter is below
        one of their events' sequence)."""
        orphans, ahead = self._rows(
            "SELECT (SELECT COUNT(*) FROM {events} e WHERE NOT EXISTS "
            "(SELECT 1 FROM {sessions} s WHERE s.pk = e.session_pk)), "
            "(SELECT COUNT(*) FROM {sessions} s WHERE s.last_sequence < "
            "(SELECT MAX(sequence) FROM {events} e WHERE e.session_pk = s.pk))"
        )[0]
        return int(orphans), int(ahead)
