"""The cleaner's unit of work on PostgreSQL: one small transaction at a time.

The same steps as on SQLite (see :mod:`sessionlite.store.sqlite.cleanup`), with two
additions for several servers on one database: a step runs only while it holds a
transaction-level advisory lock (so at most one cleaner works at any moment, and a
cleaner that finds the lock taken reports nothing to do), and rows are taken with
``FOR UPDATE SKIP LOCKED``, so cleanup never waits behind a live append.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from ..base import CleanupStep
from .queries import Queries

SESSIONS_PER_STEP = 200
EVENTS_PER_STEP = 5_000
SCOPES_PER_STEP = 200

Conn = AsyncConnection[Any]


async def cleanup_step(conn: Conn, q: Queries, now_us: int, purge_before_us: int) -> CleanupStep:
    locked = await (await conn.execute(q.cleaner_lock, (q.cleaner_lock_key,))).fetchone()
    if not locked or not locked[0]:
        return CleanupStep()  # another server's cleaner is at work

    expired = await conn.execute(q.expire_sessions, {"now": now_us, "limit": SESSIONS_PER_STEP})
    if expired.rowcount:
        return CleanupStep(expired_sessions=expired.rowcount)

    row = await (await conn.execute(q.purge_candidate, (purge_before_us,))).fetchone()
    if row is not None:
        (pk,) = row
        chunk = await conn.execute(q.delete_events_chunk, (pk, pk, EVENTS_PER_STEP))
        if chunk.rowcount == EVENTS_PER_STEP:
            return CleanupStep(deleted_events=chunk.rowcount)  # more of this session next
        keys = await conn.execute(q.delete_session_state, (pk,))
        await conn.execute(q.delete_summaries, (pk,))
        await conn.execute(q.delete_session, (pk,))
        return CleanupStep(
            purged_sessions=1, deleted_events=chunk.rowcount, deleted_state_keys=keys.rowcount
        )

    scopes = await (await conn.execute(q.expired_scopes, (now_us, SCOPES_PER_STEP))).fetchall()
    apps = users = keys_deleted = 0
    for kind, app_name, user_id in scopes:
        if kind == "app":
            cleared = await conn.execute(q.clear_app_state, (app_name,))
            apps += 1
        else:
            cleared = await conn.execute(q.clear_user_state, (app_name, user_id))
            users += 1
        keys_deleted += cleared.rowcount
        await conn.execute(q.delete_scope, (kind, app_name, user_id))
    return CleanupStep(
        expired_app_states=apps, expired_user_states=users, deleted_state_keys=keys_deleted
    )
