"""Every SQL statement the PostgreSQL store runs, rendered once per table prefix.

Table names are quoted identifiers (``psycopg.sql``) made from the validated prefix; all
values are bound. Batches of rows travel as one array per column and are expanded with
``unnest``, so a group of appends costs one statement per table whatever its size.

Locks are always taken in one order, so overlapping transactions (other servers, other
flush tasks) wait for each other instead of deadlocking: sessions by ``pk``, then state
scopes, then state keys, each in byte order (``COLLATE "C"``; callers sort rows the same
way, as Python compares strings by code point).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

from ..codec import EVENT_SELECT, SESSION_SELECT
from ..filters import LIVE, render
from ..rules import Retention
from .schema import render as schema_render

_LIVE = LIVE.format(now="%(now)s")
_KEY = "app_name = %(app)s AND user_id = %(user)s AND session_id = %(sid)s"
# The live session's pk, for the statements of a pipelined read (one snapshot).
_PK = f"(SELECT pk FROM {{sessions}} WHERE {_KEY} AND {_LIVE})"
_C = 'COLLATE "C"'

_TEMPLATES = {
    # -- reads (named parameters: app, user, sid, now) --------------------------------
    "live_session": f"SELECT {SESSION_SELECT} FROM {{sessions}} WHERE {_KEY} AND {_LIVE}",
    "session_state_by_key": f"SELECT key, value FROM {{session_state}} WHERE session_pk = {_PK}",
    "summaries_by_key": f"""
        SELECT branch, text, through_sequence, updated_at FROM {{summaries}}
        WHERE session_pk = {_PK}""",
    "summary_for_branch": f"""
        SELECT branch, text, through_sequence, updated_at FROM {{summaries}}
        WHERE session_pk = {_PK} AND branch = ANY(%(branches)s)
        ORDER BY branch = %(branch)s DESC LIMIT 1""",
    # State of an expired scope is invisible at once, before the cleaner removes it.
    "app_state": """
        SELECT key, value FROM {app_state} WHERE app_name = %(app)s AND NOT EXISTS (
            SELECT 1 FROM {state_scopes} WHERE kind = 'app' AND app_name = %(app)s
              AND user_id = '' AND expires_at <= %(now)s)""",
    "user_state": """
        SELECT key, value FROM {user_state} WHERE app_name = %(app)s AND user_id = %(user)s
          AND NOT EXISTS (
            SELECT 1 FROM {state_scopes} WHERE kind = 'user' AND app_name = %(app)s
              AND user_id = %(user)s AND expires_at <= %(now)s)""",
    "session_state": "SELECT key, value FROM {session_state} WHERE session_pk = %s",
    "has_cleanup_work": """
        SELECT EXISTS (SELECT 1 FROM {sessions} WHERE deleted_at IS NULL AND expires_at <= %(now)s)
            OR EXISTS (SELECT 1 FROM {sessions} WHERE deleted_at <= %(purge_before)s)
            OR EXISTS (SELECT 1 FROM {state_scopes} WHERE expires_at <= %(now)s)""",
    # -- writes: sessions ---------------------------------------------------------------
    "session_for_write": f"""
        SELECT pk, version, last_sequence, updated_at FROM {{sessions}}
        WHERE {_KEY} AND {_LIVE} FOR UPDATE""",
    # The live sessions among (index, app, user, session id, now) rows, locked in pk order.
    "lock_sessions": """
        SELECT k.i, s.pk, s.version, s.last_sequence, s.updated_at
        FROM unnest(%s::int[], %s::text[], %s::text[], %s::text[], %s::bigint[])
            AS k(i, app, usr, sid, now)
        JOIN {sessions} AS s
          ON s.app_name = k.app AND s.user_id = k.usr AND s.session_id = k.sid
         AND s.deleted_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > k.now)
        ORDER BY s.pk FOR UPDATE OF s""",
    # A live key may still be taken by an expired row that the cleaner has not reached.
    "expired_key": """
        SELECT pk FROM {sessions} WHERE app_name = %(app)s AND user_id = %(user)s
          AND session_id = %(sid)s AND deleted_at IS NULL
          AND expires_at IS NOT NULL AND expires_at <= %(now)s
        ORDER BY pk FOR UPDATE""",
    # Another server may create the same key at the same moment: the live-key index
    # decides, and the loser finds no row returned.
    "insert_session": """
        INSERT INTO {sessions} (app_name, user_id, session_id, agent_id, metadata,
            created_at, updated_at, expires_at, deleted_at, version, last_sequence)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, NULL, 0, 0)
        ON CONFLICT (app_name, user_id, session_id) WHERE deleted_at IS NULL DO NOTHING
        RETURNING pk""",
    "touch_session": """
        UPDATE {sessions} SET version = version + 1, updated_at = %s, expires_at = %s
        WHERE pk = %s RETURNING version""",
    "update_sessions": """
        UPDATE {sessions} AS s SET version = v.version, last_sequence = v.last_sequence,
            updated_at = v.updated_at, expires_at = v.expires_at
        FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[])
            AS v(pk, version, last_sequence, updated_at, expires_at)
        WHERE s.pk = v.pk""",
    "refresh_expiry": f"""
        UPDATE {{sessions}} SET expires_at = %(expires)s
        WHERE {_KEY} AND deleted_at IS NULL AND expires_at > %(now)s""",
    "mark_deleted": "UPDATE {sessions} SET deleted_at = %s WHERE pk = %s",
    "delete_session": "DELETE FROM {sessions} WHERE pk = %s",
    # -- writes: events -------------------------------------------------------------------
    "insert_events": """
        INSERT INTO {events} (session_pk, sequence, event_id, author, timestamp, branch, body)
        SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[],
                             %s::bigint[], %s::text[], %s::text[])""",
    "events_by_ids": f"""
        SELECT {EVENT_SELECT} FROM {{events}} WHERE session_pk = %s AND event_id = ANY(%s)""",
    "newest_event": f"""
        SELECT {EVENT_SELECT} FROM {{events}} WHERE session_pk = %s
        ORDER BY sequence DESC LIMIT 1""",
    "delete_event_at": "DELETE FROM {events} WHERE session_pk = %s AND sequence = %s",
    "delete_events": "DELETE FROM {events} WHERE session_pk = %s",
    "trim_events": """
        DELETE FROM {events} AS e USING unnest(%s::bigint[], %s::bigint[]) AS t(pk, through)
        WHERE e.session_pk = t.pk AND e.sequence <= t.through""",
    "delete_events_chunk": """
        DELETE FROM {events} WHERE session_pk = %s AND sequence IN (
            SELECT sequence FROM {events} WHERE session_pk = %s ORDER BY sequence LIMIT %s)""",
    # -- writes: state (rows sorted by the caller) ---------------------------------------
    "upsert_session_states": """
        INSERT INTO {session_state} (session_pk, key, value)
        SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[])
        ON CONFLICT (session_pk, key) DO UPDATE SET value = excluded.value""",
    "delete_session_state": "DELETE FROM {session_state} WHERE session_pk = %s",
    "upsert_app_states": """
        INSERT INTO {app_state} (app_name, key, value, updated_at)
        SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[])
        ON CONFLICT (app_name, key) DO UPDATE
        SET value = excluded.value, updated_at = excluded.updated_at""",
    "upsert_user_states": """
        INSERT INTO {user_state} (app_name, user_id, key, value, updated_at)
        SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[])
        ON CONFLICT (app_name, user_id, key) DO UPDATE
        SET value = excluded.value, updated_at = excluded.updated_at""",
    "delete_app_key": "DELETE FROM {app_state} WHERE app_name = %s AND key = %s",
    "delete_user_key": "DELETE FROM {user_state} WHERE app_name = %s AND user_id = %s AND key = %s",
    "clear_app_state": "DELETE FROM {app_state} WHERE app_name = %s",
    "clear_user_state": "DELETE FROM {user_state} WHERE app_name = %s AND user_id = %s",
    # The existing scopes among (kind, app, user) rows, locked in byte order.
    "lock_scopes": f"""
        SELECT s.kind, s.app_name, s.user_id, s.expires_at
        FROM {{state_scopes}} AS s
        JOIN unnest(%s::text[], %s::text[], %s::text[]) AS k(kind, app, usr)
          ON s.kind = k.kind AND s.app_name = k.app AND s.user_id = k.usr
        ORDER BY s.kind {_C}, s.app_name {_C}, s.user_id {_C} FOR UPDATE OF s""",
    "upsert_scopes": """
        INSERT INTO {state_scopes} (kind, app_name, user_id, updated_at, expires_at)
        SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[], %s::bigint[])
        ON CONFLICT (kind, app_name, user_id) DO UPDATE
        SET updated_at = excluded.updated_at, expires_at = excluded.expires_at""",
    "delete_scope": """
        DELETE FROM {state_scopes} WHERE kind = %s AND app_name = %s AND user_id = %s""",
    # -- summaries ----------------------------------------------------------------------
    "delete_summaries": "DELETE FROM {summaries} WHERE session_pk = %s",
    "upsert_summary": """
        INSERT INTO {summaries} (session_pk, branch, text, through_sequence, updated_at)
        VALUES (%s, %s, %s, %s, %s)
        ON CONFLICT (session_pk, branch) DO UPDATE SET text = excluded.text,
            through_sequence = excluded.through_sequence, updated_at = excluded.updated_at""",
    "stored_summary": """
        SELECT through_sequence FROM {summaries} WHERE session_pk = %s AND branch = %s""",
    # -- cleanup (small transactions; rows another server is working on are skipped) ----
    # Keyed by schema and prefix: the tables' own cleaners exclude each other, others not.
    "cleaner_lock": """
        SELECT pg_try_advisory_xact_lock(hashtextextended(current_schema() || %s, 0))""",
    "expire_sessions": """
        UPDATE {sessions} SET deleted_at = %(now)s WHERE pk IN (
            SELECT pk FROM {sessions} WHERE deleted_at IS NULL AND expires_at <= %(now)s
            ORDER BY pk LIMIT %(limit)s FOR UPDATE SKIP LOCKED)""",
    "purge_candidate": """
        SELECT pk FROM {sessions} WHERE deleted_at <= %s
        ORDER BY deleted_at, pk LIMIT 1 FOR UPDATE SKIP LOCKED""",
    "expired_scopes": f"""
        SELECT kind, app_name, user_id FROM {{state_scopes}} WHERE expires_at <= %s
        ORDER BY kind {_C}, app_name {_C}, user_id {_C} LIMIT %s FOR UPDATE SKIP LOCKED""",
}


@dataclasses.dataclass(frozen=True)
class Queries:
    """SQL for one table prefix (attribute names are the statement names above), and
    the store's retention rules, which every write consults."""

    prefix: str
    policy: Retention
    live_session: str
    session_state_by_key: str
    summaries_by_key: str
    summary_for_branch: str
    app_state: str
    user_state: str
    session_state: str
    has_cleanup_work: str
    session_for_write: str
    lock_sessions: str
    expired_key: str
    insert_session: str
    touch_session: str
    update_sessions: str
    refresh_expiry: str
    mark_deleted: str
    delete_session: str
    insert_events: str
    events_by_ids: str
    newest_event: str
    delete_event_at: str
    delete_events: str
    trim_events: str
    delete_events_chunk: str
    upsert_session_states: str
    delete_session_state: str
    upsert_app_states: str
    upsert_user_states: str
    delete_app_key: str
    delete_user_key: str
    clear_app_state: str
    clear_user_state: str
    lock_scopes: str
    upsert_scopes: str
    delete_scope: str
    delete_summaries: str
    upsert_summary: str
    stored_summary: str
    cleaner_lock: str
    expire_sessions: str
    purge_candidate: str
    expired_scopes: str

    @classmethod
    def for_prefix(cls, prefix: str, policy: Retention | None = None) -> Queries:
        return cls(
            prefix=prefix,
            policy=Retention() if policy is None else policy,
            **{name: schema_render(template, prefix) for name, template in _TEMPLATES.items()},
        )

    @property
    def cleaner_lock_key(self) -> str:
        """The advisory lock that lets one cleaner step run at a time across servers."""
        return f"sessionlite cleaner {self.prefix}"

    def list_query(self, conditions: Sequence[str]) -> str:
        """A page of sessions (see :func:`~sessionlite.store.filters.session_page_filter`),
        newest ``updated_at`` first; ``%(limit)s`` rows."""
        return _list_query(self.prefix, tuple(conditions))

    def events_query(
        self, conditions: Sequence[str], *, by_key: bool = False, newest_first: bool = False
    ) -> str:
        """A session's events matching ``conditions`` (see :mod:`sessionlite.store.filters`),
        by sequence; ``%(limit)s`` rows (NULL: all). The session is ``%(pk)s``, or with
        ``by_key`` found by its key (``app``/``user``/``sid``/``now``) in the same
        statement (one snapshot with the other statements of a pipelined read)."""
        return _events_query(self.prefix, tuple(conditions), by_key, newest_first)


def _placeholder(name: str) -> str:
    return f"%({name})s"


_BRANCH_TEST = "starts_with(branch, {branch_prefix})"


@functools.lru_cache(maxsize=128)
def _list_query(prefix: str, conditions: tuple[str, ...]) -> str:
    where = render(conditions, _placeholder, _BRANCH_TEST)
    return schema_render(
        f"SELECT {SESSION_SELECT} FROM {{sessions}} WHERE {where} "
        "ORDER BY updated_at DESC, pk DESC LIMIT %(limit)s",
        prefix,
    )


@functools.lru_cache(maxsize=128)
def _events_query(
    prefix: str, conditions: tuple[str, ...], by_key: bool, newest_first: bool
) -> str:
    session = f"session_pk = {_PK}" if by_key else "session_pk = %(pk)s"
    where = render(conditions, _placeholder, _BRANCH_TEST)
    order = "DESC" if newest_first else "ASC"
    return schema_render(
        f"SELECT {EVENT_SELECT} FROM {{events}} WHERE {session}"
        f"{' AND ' + where if where else ''} ORDER BY sequence {order} LIMIT %(limit)s",
        prefix,
    )
