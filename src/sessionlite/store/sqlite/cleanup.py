"""The cleaner's unit of work: one small write transaction at a time.

Each :func:`cleanup_step` runs through the group-commit writer like any other write, so
appends interleave with cleanup instead of waiting behind one huge DELETE. A step does
the first kind of work it finds, in this order:

1. expired live sessions are marked deleted (a chunk at a time); they were already
   invisible to reads, so this only records it;
2. one deleted session past its retention is purged: its events a chunk at a time, then
   its state, summaries and row;
3. expired app/user state scopes are removed with their keys (a chunk at a time).
"""

from __future__ import annotations

import sqlite3

from ..base import CleanupStep
from .queries import Queries

SESSIONS_PER_STEP = 200
EVENTS_PER_STEP = 5_000
SCOPES_PER_STEP = 200


def cleanup_step(
    conn: sqlite3.Connection, q: Queries, now_us: int, purge_before_us: int
) -> CleanupStep:
    expired = [pk for (pk,) in conn.execute(q.expired_sessions, (now_us, SESSIONS_PER_STEP))]
    if expired:
        conn.executemany(q.mark_deleted, [(now_us, pk) for pk in expired])
        return CleanupStep(expired_sessions=len(expired))

    row = conn.execute(q.purge_candidates, (purge_before_us, 1)).fetchone()
    if row is not None:
        (pk,) = row
        deleted = int(conn.execute(q.delete_events_chunk, (pk, EVENTS_PER_STEP)).rowcount)
        if deleted == EVENTS_PER_STEP:
            return CleanupStep(deleted_events=deleted)  # more of this session next step
        keys = int(conn.execute(q.delete_session_state, (pk,)).rowcount)
        conn.execute(q.delete_summaries, (pk,))
        conn.execute(q.delete_session, (pk,))
        return CleanupStep(purged_sessions=1, deleted_events=deleted, deleted_state_keys=keys)

    scopes = conn.execute(q.expired_scopes, (now_us, SCOPES_PER_STEP)).fetchall()
    apps = users = keys = 0
    for kind, app_name, user_id in scopes:
        if kind == "app":
            keys += int(conn.execute(q.clear_app_state, (app_name,)).rowcount)
            apps += 1
        else:
            keys += int(conn.execute(q.clear_user_state, (app_name, user_id)).rowcount)
            users += 1
        conn.execute(q.delete_scope, (kind, app_name, user_id))
    return CleanupStep(expired_app_states=apps, expired_user_states=users, deleted_state_keys=keys)
