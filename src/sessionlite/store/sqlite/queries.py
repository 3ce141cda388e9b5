"""Every SQL statement the SQLite store runs, formatted once with the table prefix.

The prefix is validated against ``^[A-Za-z_][A-Za-z0-9_]{0,63}$`` before it gets here;
no other identifier or value is ever spliced into SQL text.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

from ..codec import EVENT_SELECT, SESSION_SELECT
from ..filters import LIVE, render
from ..rules import Retention

_LIVE = LIVE.format(now=":now")

_TEMPLATES = {
    # -- sessions ---------------------------------------------------------------------
    "live_session": f"""
        SELECT {SESSION_SELECT} FROM {{p}}sessions
        WHERE app_name = :app AND user_id = :user AND session_id = :sid AND {_LIVE}""",
    "session_for_write": """
        SELECT pk, version, last_sequence, updated_at FROM {p}sessions
        WHERE app_name = ? AND user_id = ? AND session_id = ? AND deleted_at IS NULL
          AND (expires_at IS NULL OR expires_at > ?)""",
    # A live key may still be taken by an expired row that the cleaner has not reached.
    "expired_key": """
        SELECT pk FROM {p}sessions
        WHERE app_name = ? AND user_id = ? AND session_id = ? AND deleted_at IS NULL
          AND expires_at IS NOT NULL AND expires_at <= ?""",
    "insert_session": """
        INSERT INTO {p}sessions (app_name, user_id, session_id, agent_id, metadata,
            created_at, updated_at, expires_at, deleted_at, version, last_sequence)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, 0, 0)
        RETURNING pk""",
    "touch_session": """
        UPDATE {p}sessions SET version = version + 1, updated_at = ?, expires_at = ?
        WHERE pk = ? RETURNING version""",
    # Multi-row statements ({{values}}, padded with all-NULL rows: see bulk.py) for
    # batches of appends.
    # The live sessions among (index, app, user, session id, now) rows, as one JSON
    # row (one statement however many sessions the batch touches): [index, pk,
    # version, last_sequence, updated_at] arrays.
    "find_sessions": """
        SELECT json_group_array(
            json_array(k.column1, s.pk, s.version, s.last_sequence, s.updated_at))
        FROM (VALUES {{values}}) AS k JOIN {p}sessions AS s
          ON s.app_name = k.column2 AND s.user_id = k.column3 AND s.session_id = k.column4
         AND s.deleted_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > k.column5)""",
    # (pk, version, last_sequence, updated_at, expires_at) rows.
    "update_sessions": """
        UPDATE {p}sessions SET version = v.column2, last_sequence = v.column3,
            updated_at = v.column4, expires_at = v.column5
        FROM (VALUES {{values}}) AS v WHERE {p}sessions.pk = v.column1""",
    "refresh_expiry": """
        UPDATE {p}sessions SET expires_at = ?
        WHERE app_name = ? AND user_id = ? AND session_id = ? AND deleted_at IS NULL
          AND expires_at > ?
        RETURNING expires_at""",
    "mark_deleted": "UPDATE {p}sessions SET deleted_at = ? WHERE pk = ?",
    "delete_session": "DELETE FROM {p}sessions WHERE pk = ?",
    # -- events -----------------------------------------------------------------------
    "insert_events": """
        INSERT INTO {p}events (session_pk, sequence, event_id, author, timestamp, branch, body)
        SELECT * FROM (VALUES {{values}}) WHERE column1 IS NOT NULL""",
    "events_by_id": f"""
        SELECT {EVENT_SELECT} FROM {{p}}events WHERE session_pk = ? AND event_id = ?""",
    "newest_event": f"""
        SELECT {EVENT_SELECT} FROM {{p}}events WHERE session_pk = ?
        ORDER BY sequence DESC LIMIT 1""",
    "delete_event_at": "DELETE FROM {p}events WHERE session_pk = ? AND sequence = ?",
    "delete_events": "DELETE FROM {p}events WHERE session_pk = ?",
    "trim_events": "DELETE FROM {p}events WHERE session_pk = ? AND sequence <= ?",
    "delete_events_chunk": """
        DELETE FROM {p}events WHERE pk IN (
            SELECT pk FROM {p}events WHERE session_pk = ? LIMIT ?)""",
    # -- state ------------------------------------------------------------------------
    "session_state": "SELECT key, value FROM {p}session_state WHERE session_pk = ?",
    "upsert_session_state": """
        INSERT INTO {p}session_state (session_pk, key, value) VALUES (?, ?, ?)
        ON CONFLICT (session_pk, key) DO UPDATE SET value = excluded.value""",
    "upsert_session_states": """
        INSERT INTO {p}session_state (session_pk, key, value)
        SELECT * FROM (VALUES {{values}}) WHERE column1 IS NOT NULL
        ON CONFLICT (session_pk, key) DO UPDATE SET value = excluded.value""",
    "delete_session_state": "DELETE FROM {p}session_state WHERE session_pk = ?",
    # State of an expired scope is invisible at once, before the cleaner removes it.
    "app_state": """
        SELECT key, value FROM {p}app_state WHERE app_name = :app AND NOT EXISTS (
            SELECT 1 FROM {p}state_scopes WHERE kind = 'app' AND app_name = :app
              AND user_id = '' AND expires_at <= :now)""",
    "upsert_app_state": """
        INSERT INTO {p}app_state (app_name, key, value, updated_at) VALUES (?, ?, ?, ?)
        ON CONFLICT (app_name, key) DO UPDATE
        SET value = excluded.value, updated_at = excluded.updated_at""",
    "delete_app_key": "DELETE FROM {p}app_state WHERE app_name = ? AND key = ?",
    "user_state": """
        SELECT key, value FROM {p}user_state WHERE app_name = :app AND user_id = :user
          AND NOT EXISTS (
            SELECT 1 FROM {p}state_scopes WHERE kind = 'user' AND app_name = :app
              AND user_id = :user AND expires_at <= :now)""",
    "upsert_user_state": """
        INSERT INTO {p}user_state (app_name, user_id, key, value, updated_at)
        VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (app_name, user_id, key) DO UPDATE
        SET value = excluded.value, updated_at = excluded.updated_at""",
    "delete_user_key": "DELETE FROM {p}user_state WHERE app_name = ? AND user_id = ? AND key = ?",
    "clear_app_state": "DELETE FROM {p}app_state WHERE app_name = ?",
    "clear_user_state": "DELETE FROM {p}user_state WHERE app_name = ? AND user_id = ?",
    "scope_expiry": """
        SELECT expires_at FROM {p}state_scopes WHERE kind = ? AND app_name = ? AND user_id = ?""",
    "upsert_scope": """
        INSERT INTO {p}state_scopes (kind, app_name, user_id, updated_at, expires_at)
        VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (kind, app_name, user_id) DO UPDATE
        SET updated_at = excluded.updated_at, expires_at = excluded.expires_at""",
    "delete_scope": "DELETE FROM {p}state_scopes WHERE kind = ? AND app_name = ? AND user_id = ?",
    # -- summaries ----------------------------------------------------------------------
    "summaries": """
        SELECT branch, text, through_sequence, updated_at FROM {p}summaries
        WHERE session_pk = ?""",
    "delete_summaries": "DELETE FROM {p}summaries WHERE session_pk = ?",
    "summary_for_branch": """
        SELECT branch, text, through_sequence, updated_at FROM {p}summaries
        WHERE session_pk = ? AND branch = ?""",
    "upsert_summary": """
        INSERT INTO {p}summaries (session_pk, branch, text, through_sequence, updated_at)
        VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (session_pk, branch) DO UPDATE SET text = excluded.text,
            through_sequence = excluded.through_sequence, updated_at = excluded.updated_at""",
    # -- cleanup (small transactions; each statement is bounded by a LIMIT) ----------
    "has_cleanup_work": """
        SELECT EXISTS (SELECT 1 FROM {p}sessions
                       WHERE deleted_at IS NULL AND expires_at <= :now)
            OR EXISTS (SELECT 1 FROM {p}sessions WHERE deleted_at <= :purge_before)
            OR EXISTS (SELECT 1 FROM {p}state_scopes WHERE expires_at <= :now)""",
    "expired_sessions": """
        SELECT pk FROM {p}sessions WHERE deleted_at IS NULL AND expires_at <= ? LIMIT ?""",
    "purge_candidates": """
        SELECT pk FROM {p}sessions WHERE deleted_at <= ? ORDER BY deleted_at LIMIT ?""",
    "expired_scopes": """
        SELECT kind, app_name, user_id FROM {p}state_scopes WHERE expires_at <= ? LIMIT ?""",
}


@dataclasses.dataclass(frozen=True)
class Queries:
    """SQL for one table prefix (attribute names are the statement names above), and
    the store's retention rules, which every write consults."""

    prefix: str
    policy: Retention
    live_session: str
    session_for_write: str
    expired_key: str
    insert_session: str
    touch_session: str
    find_sessions: str
    update_sessions: str
    refresh_expiry: str
    mark_deleted: str
    delete_session: str
    insert_events: str
    events_by_id: str
    newest_event: str
    delete_event_at: str
    delete_events: str
    trim_events: str
    delete_events_chunk: str
    session_state: str
    upsert_session_state: str
    upsert_session_states: str
    delete_session_state: str
    app_state: str
    upsert_app_state: str
    delete_app_key: str
    user_state: str
    upsert_user_state: str
    delete_user_key: str
    clear_app_state: str
    clear_user_state: str
    scope_expiry: str
    upsert_scope: str
    delete_scope: str
    summaries: str
    delete_summaries: str
    summary_for_branch: str
    upsert_summary: str
    has_cleanup_work: str
    expired_sessions: str
    purge_candidates: str
    expired_scopes: str

    @classmethod
    def for_prefix(cls, prefix: str, policy: Retention | None = None) -> Queries:
        return cls(
            prefix=prefix,
            policy=Retention() if policy is None else policy,
            **{k: v.format(p=prefix) for k, v in _TEMPLATES.items()},
        )

    def list_query(self, conditions: Sequence[str]) -> str:
        """A page of sessions (see :func:`~sessionlite.store.filters.session_page_filter`),
        newest ``updated_at`` first; ``:limit`` rows."""
        return _list_query(self.prefix, tuple(conditions))

    def events_query(self, conditions: Sequence[str], *, newest_first: bool = False) -> str:
        """A session's events (``:pk``) matching ``conditions`` (see
        :mod:`sessionlite.store.filters`), by sequence; ``:limit`` rows."""
        return _events_query(self.prefix, tuple(conditions), newest_first)


def _placeholder(name: str) -> str:
    return ":" + name


# 'a' matches 'a' and 'a/...': a byte range on the '/'-prefix avoids LIKE escaping.
_BRANCH_TEST = "(branch >= {branch_lo} AND branch < {branch_hi})"


@functools.lru_cache(maxsize=128)
def _list_query(prefix: str, conditions: tuple[str, ...]) -> str:
    where = render(conditions, _placeholder, _BRANCH_TEST)
    return (
        f"SELECT {SESSION_SELECT} FROM {prefix}sessions WHERE {where} "
        "ORDER BY updated_at DESC, pk DESC LIMIT :limit"
    )


@functools.lru_cache(maxsize=128)
def _events_query(prefix: str, conditions: tuple[str, ...], newest_first: bool) -> str:
    where = render(("session_pk = {pk}", *conditions), _placeholder, _BRANCH_TEST)
    order = "DESC" if newest_first else "ASC"
    return (
        f"SELECT {EVENT_SELECT} FROM {prefix}events WHERE {where} "
        f"ORDER BY sequence {order} LIMIT :limit"
    )
