"""Read transactions: each read is one pipelined round trip on one snapshot.

A session read needs its row, its state (session, app and user scopes), its newest
events and its summaries. The statements go out together in pipeline mode, each
finding the session by its key, inside one ``REPEATABLE READ`` transaction, so they
see a single snapshot even while other servers commit, and cost one round trip.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, AsyncCursor
from pydantic import JsonValue

from ...models import Event, Session, SessionPage, Summary
from ..base import EventFilter, EventQuery, SessionKey
from ..codec import (
    encode_cursor,
    event_from_row,
    scoped_state,
    session_from_row,
    state_from_rows,
    summaries_from_rows,
    summary_from_row,
)
from ..filters import event_filter, recent_filter, session_page_filter
from .queries import Queries

Conn = AsyncConnection[Any]

_BEGIN_READ = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"


def key_params(key: SessionKey, now_us: int) -> dict[str, Any]:
    return {"app": key.app_name, "user": key.user_id, "sid": key.session_id, "now": now_us}


async def load_session(
    conn: Conn,
    q: Queries,
    key: SessionKey,
    query: EventQuery,
    now_us: int,
    *,
    snapshot: bool = False,
) -> Session | None:
    """The live session with its state, newest events and summaries, or None.

    With ``snapshot`` the statements run in a read-only transaction of their own;
    without, in the caller's (a write transaction that just created the session).
    """
    params = key_params(key, now_us)
    events: AsyncCursor[Any] | None = None
    async with conn.pipeline():
        if snapshot:
            await conn.execute(_BEGIN_READ)
        session = await conn.execute(q.live_session, params)
        session_state = await conn.execute(q.session_state_by_key, params)
        app_state = await conn.execute(q.app_state, params)
        user_state = await conn.execute(q.user_state, params)
        if query.limit != 0:
            conditions, filters = recent_filter(query)
            sql = q.events_query(conditions, by_key=True, newest_first=True)
            events = await conn.execute(sql, {**params, **filters, "limit": query.limit})
        summaries = await conn.execute(q.summaries_by_key, params)
        if snapshot:
            await conn.execute("COMMIT")
    row = await session.fetchone()
    if row is None:
        return None
    event_rows = [] if events is None else await events.fetchall()
    event_rows.reverse()
    state = scoped_state(
        await session_state.fetchall(),
        await app_state.fetchall(),
        await user_state.fetchall(),
        session_id=key.session_id,
        app_name=key.app_name,
        user_id=key.user_id,
    )
    return session_from_row(
        row,
        state=state,
        events=[event_from_row(r) for r in event_rows],
        summaries=summaries_from_rows(await summaries.fetchall()),
    )


async def get_session(
    conn: Conn, q: Queries, key: SessionKey, query: EventQuery, now_us: int
) -> Session | None:
    return await load_session(conn, q, key, query, now_us, snapshot=True)


async def list_sessions(
    conn: Conn,
    q: Queries,
    app_name: str,
    user_id: str | None,
    limit: int,
    cursor: str | None,
    now_us: int,
) -> SessionPage:
    conditions, params = session_page_filter(app_name, user_id, cursor, now_us)
    params["limit"] = limit + 1
    sql = q.list_query(conditions)
    await conn.execute(_BEGIN_READ)
    try:
        rows = await (await conn.execute(sql, params)).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        # Every listed session's state in one pipelined round trip, same snapshot.
        async with conn.pipeline():
            pending = []
            for row in rows:
                pk, app, user = row[0], row[1], row[2]
                scope = {"app": app, "user": user, "now": now_us}
                pending.append(
                    (
                        await conn.execute(q.session_state, (pk,)),
                        await conn.execute(q.app_state, scope),
                        await conn.execute(q.user_state, scope),
                    )
                )
        sessions = []
        for row, (session_state, app_state, user_state) in zip(rows, pending, strict=True):
            state = scoped_state(
                await session_state.fetchall(),
                await app_state.fetchall(),
                await user_state.fetchall(),
                session_id=row[3],
                app_name=row[1],
                user_id=row[2],
            )
            sessions.append(session_from_row(row, state=state, events=[], summaries={}))
    finally:
        await conn.execute("COMMIT")
    next_cursor = encode_cursor(rows[-1][7], rows[-1][0]) if more and rows else None
    return SessionPage(sessions=sessions, next_cursor=next_cursor)


async def read_events(
    conn: Conn, q: Queries, key: SessionKey, flt: EventFilter, limit: int, now_us: int
) -> list[Event] | None:
    conditions, filters = event_filter(flt)
    params = {**key_params(key, now_us), **filters, "limit": limit}
    sql = q.events_query(conditions, by_key=True)
    async with conn.pipeline():
        await conn.execute(_BEGIN_READ)
        session = await conn.execute(q.live_session, params)
        events = await conn.execute(sql, params)
        await conn.execute("COMMIT")
    if await session.fetchone() is None:
        return None
    return [event_from_row(row) for row in await events.fetchall()]


async def get_app_state(conn: Conn, q: Queries, app_name: str, now_us: int) -> dict[str, JsonValue]:
    cursor = await conn.execute(q.app_state, {"app": app_name, "now": now_us})
    return state_from_rows(await cursor.fetchall(), f"app state of {app_name!r}")


async def get_user_state(
    conn: Conn, q: Queries, app_name: str, user_id: str, now_us: int
) -> dict[str, JsonValue]:
    cursor = await conn.execute(q.user_state, {"app": app_name, "user": user_id, "now": now_us})
    return state_from_rows(await cursor.fetchall(), f"user state of {user_id!r}")


async def get_summary(
    conn: Conn, q: Queries, key: SessionKey, branch: str, now_us: int
) -> Summary | None:
    """The branch's summary, else the whole-session one; None if neither or no session."""
    params = {**key_params(key, now_us), "branch": branch, "branches": [branch, ""]}
    cursor = await conn.execute(q.summary_for_branch, params)
    row = await cursor.fetchone()
    return None if row is None else summary_from_row(row)


async def has_cleanup_work(conn: Conn, q: Queries, now_us: int, purge_before_us: int) -> bool:
    cursor = await conn.execute(
        q.has_cleanup_work, {"now": now_us, "purge_before": purge_before_us}
    )
    row = await cursor.fetchone()
    return bool(row and row[0])
