"""Write transactions on one pooled connection (autocommit mode, explicit ``BEGIN``).

Appends are grouped by :mod:`.writer`: :func:`execute_appends` runs a group in one
transaction. The group first goes through a set-based *fast path* (one statement per
table for the lot); if anything in it fails (a duplicate event id...), it is rolled
back and each call is replayed in its own SAVEPOINT with full checks, so one bad call
fails alone. Every other write is one transaction of its own (:func:`in_transaction`).

The contract's rules (stale versions, retries vs conflicts, sequences, trimming, scope
expiry) come from :mod:`sessionlite.store.rules`; this module only reads and writes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import AsyncConnection
from pydantic import JsonValue

from ...models import Event, Session, Summary
from ...timestamps import from_micros, to_micros
from ..appends import (
    AppendJob,
    AppendRows,
    LiveSession,
    by_session,
    liveness_keys,
    record,
    stale,
    stored_duplicates,
)
from ..base import EventQuery, NewSession, SessionKey, SessionWrite, already_exists, not_found
from ..codec import dumps, event_from_row
from ..rules import (
    AlreadyStored,
    Appended,
    scope_expired,
    summary_supersedes,
)
from .errors import is_transient
from .queries import Queries
from .reads import load_session

Conn = AsyncConnection[Any]
T = TypeVar("T")


async def begin(conn: Conn, lock_timeout_ms: int) -> None:
    """Open a write transaction whose lock waits are bounded by ``busy_timeout``.

    ``SET LOCAL`` (not a session setting): it also holds through pgbouncer in
    transaction mode, where the next transaction may run on another server connection.
    Both statements go in one round trip (a query without parameters is sent with the
    simple query protocol, which takes several statements).
    """
    await conn.execute(f"BEGIN; SET LOCAL lock_timeout = {int(lock_timeout_ms)}")


async def rollback(conn: Conn) -> None:
    """Roll back if a transaction is open (a broken connection is left to the pool)."""
    if conn.closed:
        return
    status = conn.info.transaction_status
    if status != psycopg.pq.TransactionStatus.IDLE:
        try:
            await conn.execute("ROLLBACK")
        except psycopg.Error:
            pass  # the connection is broken; the pool discards it


async def in_transaction(
    conn: Conn, q: Queries, lock_timeout_ms: int, fn: Callable[..., Awaitable[T]], *args: Any
) -> T:
    """Run ``fn(conn, q, *args)`` in one write transaction."""
    await begin(conn, lock_timeout_ms)
    try:
        result = await fn(conn, q, *args)
        await conn.execute("COMMIT")
    except BaseException:
        await rollback(conn)
        raise
    return result


# -- appends --------------------------------------------------------------------------


class _FastPathFailed(Exception):
    pass


async def execute_appends(
    conn: Conn, q: Queries, lock_timeout_ms: int, jobs: Sequence[AppendJob]
) -> list[Any]:
    """Run ``jobs`` in one transaction; each entry of the result is a value or an error.

    A connection or lock failure fails the whole group (nothing of it is stored); the
    caller reports it to every call.
    """
    try:
        return await in_transaction(conn, q, lock_timeout_ms, _fast, jobs)
    except _FastPathFailed:
        pass
    return await in_transaction(conn, q, lock_timeout_ms, _careful, jobs)


async def _fast(conn: Conn, q: Queries, jobs: Sequence[AppendJob]) -> list[Any]:
    try:
        return await apply_appends(conn, q, jobs, careful=False)
    except psycopg.Error as exc:
        if is_transient(exc):
            raise
        raise _FastPathFailed from exc


async def _careful(conn: Conn, q: Queries, jobs: Sequence[AppendJob]) -> list[Any]:
    outcomes: list[Any] = []
    for job in jobs:
        await conn.execute("SAVEPOINT call")
        try:
            (outcome,) = await apply_appends(conn, q, [job], careful=True)
        except Exception as exc:  # this call fails alone (a conflict, a bad row...)
            if is_transient(exc):
                raise
            await conn.execute("ROLLBACK TO SAVEPOINT call")
            outcome = exc
        await conn.execute("RELEASE SAVEPOINT call")
        outcomes.append(outcome)
    return outcomes


async def _write_rows(conn: Conn, q: Queries, rows: AppendRows) -> None:
    """A group's rows, one array per column and one statement per table (see
    queries.py); state rows in key order, the order their rows are locked in."""
    if rows.events:
        await conn.execute(q.insert_events, _columns(rows.events, 7))
    if rows.sessions:
        await conn.execute(q.update_sessions, _columns(rows.sessions, 5))
    if rows.trims:
        await conn.execute(q.trim_events, _columns(rows.trims, 2))
    if rows.session_state:
        await conn.execute(q.upsert_session_states, _columns(rows.session_state_rows(), 3))
    await write_state(conn, q, rows.app_state_rows(), rows.user_state_rows())


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as one list per column (bound as arrays and expanded with ``unnest``)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


async def _lock_sessions(
    conn: Conn, q: Queries, keys: Sequence[tuple[SessionKey, int]]
) -> dict[int, LiveSession]:
    """Lock the live sessions among ``(key, now_us)`` pairs; by their index in ``keys``."""
    rows = [(i, *key, now) for i, (key, now) in enumerate(keys)]
    cursor = await conn.execute(q.lock_sessions, _columns(rows, 5))
    found: dict[int, LiveSession] = {}
    for index, pk, version, last_sequence, updated_at in await cursor.fetchall():
        found[index] = LiveSession(version, last_sequence, updated_at, pk)
    return found


async def apply_appends(
    conn: Conn, q: Queries, jobs: Sequence[AppendJob], *, careful: bool
) -> list[Any]:
    """Apply independent appends; per-call failures are returned, database errors raised.

    Appends to one session are applied in order. Without ``careful``, duplicate event
    ids are not looked up: the unique index raises and the caller replays call by call
    with ``careful=True``, which handles idempotent retries and conflicts.
    """
    groups = by_session(jobs)
    live = await _lock_sessions(conn, q, liveness_keys(groups, jobs))
    outcomes: list[Any] = [None] * len(jobs)
    rows = AppendRows(q.policy)
    for position, (key, indexes) in enumerate(groups.items()):
        session = live.get(position)
        if session is None:
            for i in indexes:
                outcomes[i] = not_found(key)
            continue
        written = False
        for i in indexes:
            outcome = await _apply_one(conn, q, key, session, jobs[i], rows, careful=careful)
            outcomes[i] = outcome
            written = written or isinstance(outcome, Appended)
        if written:
            rows.advance(session)
    await _write_rows(conn, q, rows)
    return outcomes


async def _apply_one(
    conn: Conn,
    q: Queries,
    key: SessionKey,
    session: LiveSession,
    job: AppendJob,
    rows: AppendRows,
    *,
    careful: bool,
) -> Any:
    error = stale(key, session, job)
    if error is not None:
        return error
    if careful:
        events = job.command.events
        ids = [p.snapshot.event_id for p in events]
        cursor = await conn.execute(q.events_by_ids, (session.pk, ids))
        by_id = {row[1]: row for row in await cursor.fetchall()}
        stored = stored_duplicates(key, events, by_id.get)
        if stored is not None:
            return AlreadyStored(stored, session.version, session.updated_at)
    return record(session, job, rows)


# -- state ----------------------------------------------------------------------------


async def write_state(
    conn: Conn,
    q: Queries,
    app_rows: Sequence[tuple[str, str, str, int]],
    user_rows: Sequence[tuple[str, str, str, str, int]],
) -> None:
    """Upsert app rows (app, key, value, now) and user rows (app, user, key, value, now).

    The scopes written to slide their expiry first; an expired scope starts empty.
    """
    scopes = {("app", app, "", now) for app, _k, _v, now in app_rows}
    scopes |= {("user", app, user, now) for app, user, _k, _v, now in user_rows}
    if scopes:
        await touch_scopes(conn, q, sorted(scopes))
    if app_rows:
        await conn.execute(q.upsert_app_states, _columns(sorted(app_rows), 4))
    if user_rows:
        await conn.execute(q.upsert_user_states, _columns(sorted(user_rows), 5))


async def touch_scopes(conn: Conn, q: Queries, scopes: Sequence[tuple[str, str, str, int]]) -> None:
    """Slide the expiry of (kind, app, user, now) scopes, sorted; clear expired ones."""
    latest: dict[tuple[str, str, str], int] = {}
    for kind, app, user, now in scopes:
        latest[kind, app, user] = max(now, latest.get((kind, app, user), now))
    keys = sorted(latest)
    cursor = await conn.execute(q.lock_scopes, _columns(keys, 3))
    for kind, app, user, expires_at in await cursor.fetchall():
        if scope_expired(expires_at, latest[kind, app, user]):
            if kind == "app":
                await conn.execute(q.clear_app_state, (app,))
            else:
                await conn.execute(q.clear_user_state, (app, user))
    policy = q.policy
    rows = []
    for kind, app, user in keys:
        now = latest[kind, app, user]
        ttl = policy.app_state_ttl_us if kind == "app" else policy.user_state_ttl_us
        rows.append((kind, app, user, now, policy.expiry(now, ttl)))
    await conn.execute(q.upsert_scopes, _columns(rows, 5))


async def update_app_state(
    conn: Conn, q: Queries, app_name: str, delta: dict[str, JsonValue], now_us: int
) -> None:
    await write_state(conn, q, [(app_name, k, dumps(v), now_us) for k, v in delta.items()], [])


async def update_user_state(
    conn: Conn, q: Queries, app_name: str, user_id: str, delta: dict[str, JsonValue], now_us: int
) -> None:
    rows = [(app_name, user_id, k, dumps(v), now_us) for k, v in delta.items()]
    await write_state(conn, q, [], rows)


async def delete_app_state(conn: Conn, q: Queries, app_name: str, key: str, now_us: int) -> bool:
    await touch_scopes(conn, q, [("app", app_name, "", now_us)])
    cursor = await conn.execute(q.delete_app_key, (app_name, key))
    return cursor.rowcount > 0


async def delete_user_state(
    conn: Conn, q: Queries, app_name: str, user_id: str, key: str, now_us: int
) -> bool:
    await touch_scopes(conn, q, [("user", app_name, user_id, now_us)])
    cursor = await conn.execute(q.delete_user_key, (app_name, user_id, key))
    return cursor.rowcount > 0


# -- sessions -------------------------------------------------------------------------


def _key_params(key: SessionKey, now_us: int) -> dict[str, Any]:
    return {"app": key.app_name, "user": key.user_id, "sid": key.session_id, "now": now_us}


async def _session_for_write(
    conn: Conn, q: Queries, key: SessionKey, now_us: int
) -> LiveSession | None:
    cursor = await conn.execute(q.session_for_write, _key_params(key, now_us))
    row = await cursor.fetchone()
    if row is None:
        return None
    pk, version, last_sequence, updated_at = row
    return LiveSession(version, last_sequence, updated_at, pk)


async def _require(conn: Conn, q: Queries, key: SessionKey, now_us: int) -> LiveSession:
    session = await _session_for_write(conn, q, key, now_us)
    if session is None:
        raise not_found(key)
    return session


async def _purge_session_rows(conn: Conn, q: Queries, pk: int) -> None:
    await conn.execute(q.delete_events, (pk,))
    await conn.execute(q.delete_session_state, (pk,))
    await conn.execute(q.delete_summaries, (pk,))
    await conn.execute(q.delete_session, (pk,))


async def _retire_session(conn: Conn, q: Queries, pk: int, now_us: int) -> None:
    """Delete a session: mark it (soft delete; purged later) or remove it now."""
    if q.policy.soft_delete:
        await conn.execute(q.mark_deleted, (now_us, pk))
    else:
        await _purge_session_rows(conn, q, pk)


async def create_session(
    conn: Conn, q: Queries, new: NewSession, event_limit: int | None, get_existing: bool
) -> tuple[Session, bool]:
    """Insert a session (and its initial state); with ``get_existing``, read a live one."""
    key, now_us = new.key, to_micros(new.now)
    params = _key_params(key, now_us)
    if not await _live_exists(conn, q, params):
        cursor = await conn.execute(q.expired_key, params)
        for (expired_pk,) in await cursor.fetchall():
            await _retire_session(conn, q, expired_pk, now_us)
        cursor = await conn.execute(
            q.insert_session,
            (
                *key,
                new.agent_id,
                dumps(new.metadata),
                now_us,
                now_us,
                q.policy.expiry(now_us, q.policy.session_ttl_us),
            ),
        )
        inserted = await cursor.fetchone()
        if inserted is not None:
            (pk,) = inserted
            state = new.state
            if state.session:
                rows = sorted((pk, k, dumps(v)) for k, v in state.session.items())
                await conn.execute(q.upsert_session_states, _columns(rows, 3))
            await write_state(
                conn,
                q,
                [(key.app_name, k, dumps(v), now_us) for k, v in state.app.items()],
                [(key.app_name, key.user_id, k, dumps(v), now_us) for k, v in state.user.items()],
            )
            session = await load_session(conn, q, key, EventQuery(limit=0), now_us)
            assert session is not None  # inserted just above, in this transaction
            return session, True
    # A live session has the key (perhaps created by another server a moment ago).
    if get_existing:
        existing = await load_session(conn, q, key, EventQuery(limit=event_limit), now_us)
        if existing is not None:
            return existing, False
    raise already_exists(key)


async def _live_exists(conn: Conn, q: Queries, params: dict[str, Any]) -> bool:
    cursor = await conn.execute(q.live_session, params)
    return await cursor.fetchone() is not None


async def delete_session(conn: Conn, q: Queries, key: SessionKey, now_us: int) -> bool:
    session = await _session_for_write(conn, q, key, now_us)
    if session is None:
        return False
    await _retire_session(conn, q, session.pk, now_us)
    return True


async def _touch(conn: Conn, q: Queries, pk: int, now_us: int) -> SessionWrite:
    expires = q.policy.expiry(now_us, q.policy.session_ttl_us)
    cursor = await conn.execute(q.touch_session, (now_us, expires, pk))
    row = await cursor.fetchone()
    assert row is not None  # the session is locked by this transaction
    return SessionWrite(version=row[0], updated_at=from_micros(now_us))


async def pop_event(
    conn: Conn, q: Queries, key: SessionKey, now_us: int
) -> tuple[Event | None, SessionWrite]:
    session = await _require(conn, q, key, now_us)
    cursor = await conn.execute(q.newest_event, (session.pk,))
    row = await cursor.fetchone()
    if row is None:
        return None, SessionWrite(session.version, from_micros(session.updated_at))
    event = event_from_row(row)
    await conn.execute(q.delete_event_at, (session.pk, event.sequence))
    return event, await _touch(conn, q, session.pk, now_us)


async def clear_events(
    conn: Conn, q: Queries, key: SessionKey, now_us: int
) -> tuple[int, SessionWrite]:
    session = await _require(conn, q, key, now_us)
    cursor = await conn.execute(q.delete_events, (session.pk,))
    if not cursor.rowcount:
        return 0, SessionWrite(session.version, from_micros(session.updated_at))
    return cursor.rowcount, await _touch(conn, q, session.pk, now_us)


async def replace_events(conn: Conn, q: Queries, job: AppendJob) -> Appended | AlreadyStored:
    """Remove every event of the session, then store ``job``'s (one transaction)."""
    await clear_events(conn, q, job.command.key, job.now_us)
    (result,) = await apply_appends(conn, q, [job], careful=True)
    if isinstance(result, Exception):
        raise result
    return result  # type: ignore[no-any-return]


async def update_session_state(
    conn: Conn, q: Queries, key: SessionKey, delta: dict[str, JsonValue], now_us: int
) -> SessionWrite:
    session = await _require(conn, q, key, now_us)
    rows = sorted((session.pk, k, dumps(v)) for k, v in delta.items())
    if rows:
        await conn.execute(q.upsert_session_states, _columns(rows, 3))
    return await _touch(conn, q, session.pk, now_us)


async def put_summary(
    conn: Conn, q: Queries, key: SessionKey, summary: Summary, now_us: int
) -> bool:
    """Store a summary if the session is still live; False when it is gone."""
    session = await _session_for_write(conn, q, key, now_us)  # locked: one writer at a time
    if session is None:
        return False
    cursor = await conn.execute(q.stored_summary, (session.pk, summary.branch))
    stored = await cursor.fetchone()
    if not summary_supersedes(None if stored is None else stored[0], summary.through_sequence):
        return True  # a newer summary is already stored: it stays
    await conn.execute(
        q.upsert_summary,
        (
            session.pk,
            summary.branch,
            summary.text,
            summary.through_sequence,
            to_micros(summary.updated_at),
        ),
    )
    return True


async def refresh_expiry(conn: Conn, q: Queries, key: SessionKey, now_us: int) -> None:
    """Slide a live session's expiry on read (``refresh_ttl_on_read``)."""
    expires = q.policy.expiry(now_us, q.policy.session_ttl_us)
    if expires is not None:
        await conn.execute(q.refresh_expiry, {**_key_params(key, now_us), "expires": expires})
