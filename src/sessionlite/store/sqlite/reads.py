"""Synchronous read transactions, run whole in a connection's thread (one hop each).

Each function reads inside one transaction, so a session, its state and its events
come from a single snapshot even while the writer commits.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from pydantic import JsonValue

from ...models import Event, Session, SessionPage, Summary
from ...state import merged_view
from ..base import EventFilter, EventQuery, SessionKey
from ..codec import (
    EventRow,
    SessionRow,
    encode_cursor,
    event_from_row,
    scoped_state,
    session_from_row,
    state_from_rows,
    summaries_from_rows,
    summary_from_row,
)
from ..filters import event_filter, recent_filter, session_page_filter
from ..hot_cache import SessionRows
from .queries import Queries

T = TypeVar("T")


@contextmanager
def read_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """A read snapshot; nested use (inside a write transaction) reuses the outer one."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def in_read_transaction(fn: Callable[..., T]) -> Callable[..., T]:
    def wrapper(conn: sqlite3.Connection, *args: Any, **kwargs: Any) -> T:
        with read_transaction(conn):
            return fn(conn, *args, **kwargs)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def find_live_session(
    conn: sqlite3.Connection, q: Queries, key: SessionKey, now_us: int
) -> SessionRow | None:
    row: SessionRow | None = conn.execute(
        q.live_session,
        {"app": key.app_name, "user": key.user_id, "sid": key.session_id, "now": now_us},
    ).fetchone()
    return row


def app_state(
    conn: sqlite3.Connection, q: Queries, app_name: str, now_us: int
) -> dict[str, JsonValue]:
    rows = conn.execute(q.app_state, {"app": app_name, "now": now_us})
    return state_from_rows(rows, f"app state of {app_name!r}")


def user_state(
    conn: sqlite3.Connection, q: Queries, app_name: str, user_id: str, now_us: int
) -> dict[str, JsonValue]:
    rows = conn.execute(q.user_state, {"app": app_name, "user": user_id, "now": now_us})
    return state_from_rows(rows, f"user state of {user_id!r}")


def recent_events(
    conn: sqlite3.Connection, q: Queries, session_pk: int, query: EventQuery
) -> list[Event]:
    """The newest ``query.limit`` matching events, oldest first (index range scan)."""
    return [event_from_row(row) for row in recent_rows(conn, q, session_pk, query)]


def recent_rows(
    conn: sqlite3.Connection, q: Queries, session_pk: int, query: EventQuery
) -> list[EventRow]:
    """The rows of :func:`recent_events`."""
    if query.limit == 0:
        return []
    conditions, params = recent_filter(query)
    params["pk"] = session_pk
    params["limit"] = -1 if query.limit is None else query.limit
    sql = q.events_query(conditions, newest_first=True)
    rows: list[EventRow] = conn.execute(sql, params).fetchall()
    rows.reverse()
    return rows


def load_session(
    conn: sqlite3.Connection,
    q: Queries,
    row: SessionRow,
    query: EventQuery,
    now_us: int,
    *,
    with_events: bool = True,
) -> Session:
    pk, app_name, user_id = row[0], row[1], row[2]
    state = merged_view(
        state_from_rows(conn.execute(q.session_state, (pk,)), f"state of session {row[3]!r}"),
        app_state(conn, q, app_name, now_us),
        user_state(conn, q, app_name, user_id, now_us),
    )
    events = recent_events(conn, q, pk, query) if with_events else []
    summaries = summaries_from_rows(conn.execute(q.summaries, (pk,))) if with_events else {}
    return session_from_row(row, state=state, events=events, summaries=summaries)


@in_read_transaction
def get_session(
    conn: sqlite3.Connection, q: Queries, key: SessionKey, query: EventQuery, now_us: int
) -> Session | None:
    row = find_live_session(conn, q, key, now_us)
    return None if row is None else load_session(conn, q, row, query, now_us)


def get_session_rows(
    conn: sqlite3.Connection,
    q: Queries,
    key: SessionKey,
    query: EventQuery,
    now_us: int,
    token: Callable[[], bytes | None],
) -> tuple[Session | None, SessionRows | None, bytes | None, bytes | None]:
    """:func:`get_session`, plus what the read cache keeps of it: the rows as read, and
    the database's token before and after the read transaction (equal: no commit
    happened during it, so the rows are the state that token names)."""
    before = token()
    with read_transaction(conn):
        row = find_live_session(conn, q, key, now_us)
        if row is None:
            return None, None, before, token()
        pk = row[0]
        session_state = dict(conn.execute(q.session_state, (pk,)).fetchall())
        app_rows = dict(conn.execute(q.app_state, {"app": key.app_name, "now": now_us}))
        user_rows = dict(
            conn.execute(q.user_state, {"app": key.app_name, "user": key.user_id, "now": now_us})
        )
        app_expires = conn.execute(q.scope_expiry, ("app", key.app_name, "")).fetchone()
        user_expires = conn.execute(q.scope_expiry, ("user", key.app_name, key.user_id)).fetchone()
        event_rows = recent_rows(conn, q, pk, query)
        summaries = conn.execute(q.summaries, (pk,)).fetchall()
    after = token()
    plain = query.after is None and not query.branch
    cached = SessionRows(
        row=row,
        session_state=session_state,
        app_state=app_rows,
        app_expires_us=None if app_expires is None else app_expires[0],
        user_state=user_rows,
        user_expires_us=None if user_expires is None else user_expires[0],
        events=event_rows,
        complete=plain and (query.limit is None or len(event_rows) < query.limit),
        summaries=summaries,
    )
    state = scoped_state(
        session_state.items(),
        app_rows.items(),
        user_rows.items(),
        session_id=key.session_id,
        app_name=key.app_name,
        user_id=key.user_id,
    )
    session = session_from_row(
        row,
        state=state,
        events=[event_from_row(r) for r in event_rows],
        summaries=summaries_from_rows(summaries),
    )
    return session, (cached if plain else None), before, after


@in_read_transaction
def list_sessions(
    conn: sqlite3.Connection,
    q: Queries,
    app_name: str,
    user_id: str | None,
    limit: int,
    cursor: str | None,
    now_us: int,
) -> SessionPage:
    conditions, params = session_page_filter(app_name, user_id, cursor, now_us)
    params["limit"] = limit + 1
    rows: list[SessionRow] = conn.execute(q.list_query(conditions), params).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    no_events = EventQuery(limit=0)
    sessions = [load_session(conn, q, row, no_events, now_us, with_events=False) for row in rows]
    next_cursor = encode_cursor(rows[-1][7], rows[-1][0]) if more and rows else None
    return SessionPage(sessions=sessions, next_cursor=next_cursor)


@in_read_transaction
def read_events(
    conn: sqlite3.Connection,
    q: Queries,
    key: SessionKey,
    flt: EventFilter,
    limit: int,
    now_us: int,
) -> list[Event] | None:
    row = find_live_session(conn, q, key, now_us)
    if row is None:
        return None
    conditions, params = event_filter(flt)
    params["pk"] = row[0]
    params["limit"] = limit
    return [event_from_row(r) for r in conn.execute(q.events_query(conditions), params)]


@in_read_transaction
def get_app_state(
    conn: sqlite3.Connection, q: Queries, app_name: str, now_us: int
) -> dict[str, JsonValue]:
    return app_state(conn, q, app_name, now_us)


@in_read_transaction
def get_user_state(
    conn: sqlite3.Connection, q: Queries, app_name: str, user_id: str, now_us: int
) -> dict[str, JsonValue]:
    return user_state(conn, q, app_name, user_id, now_us)


@in_read_transaction
def get_summary(
    conn: sqlite3.Connection, q: Queries, key: SessionKey, branch: str, now_us: int
) -> Summary | None:
    """The branch's summary, else the whole-session one; None if neither or no session."""
    row = find_live_session(conn, q, key, now_us)
    if row is None:
        return None
    for candidate in dict.fromkeys((branch, "")):
        found = conn.execute(q.summary_for_branch, (row[0], candidate)).fetchone()
        if found is not None:
            return summary_from_row(found)
    return None


@in_read_transaction
def has_cleanup_work(
    conn: sqlite3.Connection, q: Queries, now_us: int, purge_before_us: int
) -> bool:
    row = conn.execute(q.has_cleanup_work, {"now": now_us, "purge_before": purge_before_us})
    return bool(row.fetchone()[0])
