"""Synchronous write transactions, run whole in the writer connection's thread.

The writer gathers concurrent write calls into one ``BEGIN IMMEDIATE`` transaction
(group commit). :func:`execute_batch` runs such a batch:

* consecutive appends first go through a set-based *fast path* (a few multi-row
  statements for the lot, see :mod:`.bulk`) inside a savepoint, or without one when the
  batch holds nothing but appends;
* if anything in it fails (a duplicate event id, a storage error...), the fast path is
  rolled back (the savepoint, or the whole transaction) and each call is replayed in its
  own SAVEPOINT with full checks, so one bad call fails alone;
* any other write runs in its own SAVEPOINT;
* if SQLite aborts the whole transaction (it does on SQLITE_FULL, I/O errors...), the
  batch is replayed without the call that caused it.

Every call's result (or exception) is returned in order; none is durable before COMMIT.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

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
from ..base import (
    EventQuery,
    NewSession,
    SessionKey,
    SessionWrite,
    already_exists,
    not_found,
)
from ..codec import dumps, event_from_row
from ..rules import (
    AlreadyStored,
    Appended,
    scope_expired,
    summary_supersedes,
)
from .bulk import run_values
from .queries import Queries
from .reads import find_live_session, load_session

if TYPE_CHECKING:
    from ..hot_cache import HotCache

WriteFn = Callable[[sqlite3.Connection], Any]


@dataclasses.dataclass(frozen=True)
class CallJob:
    """Any other write: a function run in its own savepoint.

    ``cached`` says what the write changes in the read cache once committed (see
    :mod:`sessionlite.store.hot_cache`); None: it may change anything, so the cache is
    emptied.
    """

    fn: WriteFn
    cached: Callable[[HotCache], None] | None = None


Job = AppendJob | CallJob


class _FastPathFailed(Exception):
    """The fast path aborted the transaction; replay the batch call by call."""


class _Aborted(Exception):
    """SQLite rolled back the whole transaction while running job ``index``."""

    def __init__(self, index: int, error: BaseException) -> None:
        super().__init__(index, error)
        self.index = index
        self.error = error


def execute_batch(
    conn: sqlite3.Connection,
    q: Queries,
    jobs: Sequence[Job],
    on_begin: Callable[[sqlite3.Connection], None] | None = None,
) -> list[Any]:
    """Run ``jobs`` in one transaction; each entry of the result is a value or an exception.

    ``on_begin`` runs right after each ``BEGIN IMMEDIATE`` (with the write lock held).
    """
    results: list[Any] = [None] * len(jobs)
    pending = list(range(len(jobs)))
    fast = True
    while pending:
        try:
            outcomes = _one_transaction(
                conn, q, [jobs[i] for i in pending], fast=fast, on_begin=on_begin
            )
        except _FastPathFailed:
            fast = False
            continue
        except _Aborted as aborted:
            results[pending.pop(aborted.index)] = aborted.error
            continue
        except Exception as exc:  # BEGIN or COMMIT failed: nothing of the batch is stored
            for i in pending:
                results[i] = exc
            break
        for i, outcome in zip(pending, outcomes, strict=True):
            results[i] = outcome
        break
    return results


def _one_transaction(
    conn: sqlite3.Connection,
    q: Queries,
    jobs: Sequence[Job],
    *,
    fast: bool,
    on_begin: Callable[[sqlite3.Connection], None] | None,
) -> list[Any]:
    conn.execute("BEGIN IMMEDIATE")
    if on_begin is not None:
        on_begin(conn)
    try:
        if fast and all(isinstance(job, AppendJob) for job in jobs):
            # Appends only (every async_persist batch, most durable ones): the fast
            # path needs no savepoint, since on failure the whole transaction is
            # rolled back and replayed call by call. Fewer statements, fewer waits
            # for the GIL in this thread.
            try:
                outcomes = apply_appends(conn, q, jobs, careful=False)  # type: ignore[arg-type]
            except Exception as exc:
                raise _FastPathFailed from exc
            conn.execute("COMMIT")
            return outcomes
        outcomes = []
        i = 0
        while i < len(jobs):
            job = jobs[i]
            if isinstance(job, AppendJob):
                end = i
                while end < len(jobs) and isinstance(jobs[end], AppendJob):
                    end += 1
                appends = [j for j in jobs[i:end] if isinstance(j, AppendJob)]
                outcomes.extend(_append_group(conn, q, appends, start=i, fast=fast))
                i = end
            else:
                outcomes.append(_in_savepoint(conn, i, job.fn, conn))
                i += 1
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


def _in_savepoint(conn: sqlite3.Connection, index: int, fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` in a savepoint: its failure undoes only its own writes."""
    conn.execute("SAVEPOINT call")
    try:
        result = fn(*args)
    except Exception as exc:
        if not conn.in_transaction:
            raise _Aborted(index, exc) from exc
        conn.execute("ROLLBACK TO call")
        conn.execute("RELEASE call")
        return exc
    conn.execute("RELEASE call")
    return result


def _append_group(
    conn: sqlite3.Connection,
    q: Queries,
    appends: list[AppendJob],
    *,
    start: int,
    fast: bool,
) -> list[Any]:
    if fast:
        conn.execute("SAVEPOINT fast")
        try:
            outcomes = apply_appends(conn, q, appends, careful=False)
        except Exception as exc:
            if not conn.in_transaction:
                raise _FastPathFailed from exc
            conn.execute("ROLLBACK TO fast")
            conn.execute("RELEASE fast")
        else:
            conn.execute("RELEASE fast")
            return outcomes
    return [
        _in_savepoint(conn, start + offset, _apply_one_carefully, conn, q, job)
        for offset, job in enumerate(appends)
    ]


def _apply_one_carefully(conn: sqlite3.Connection, q: Queries, job: AppendJob) -> Any:
    return apply_appends(conn, q, [job], careful=True)[0]


def _live(row: Sequence[Any]) -> LiveSession:
    pk, version, last_sequence, updated_at_us = row
    return LiveSession(version, last_sequence, updated_at_us, pk)


def _session_for_write(
    conn: sqlite3.Connection, q: Queries, key: SessionKey, now_us: int
) -> LiveSession | None:
    row = conn.execute(
        q.session_for_write, (key.app_name, key.user_id, key.session_id, now_us)
    ).fetchone()
    return None if row is None else _live(row)


def _write_rows(conn: sqlite3.Connection, q: Queries, rows: AppendRows) -> None:
    """A group's rows, a few multi-row statements per table (see :mod:`.bulk`)."""
    if rows.events:
        run_values(conn, q.insert_events, 7, rows.events)
    if rows.sessions:
        run_values(conn, q.update_sessions, 5, rows.sessions)
    if rows.trims:
        conn.executemany(q.trim_events, rows.trims)
    if rows.session_state:
        run_values(conn, q.upsert_session_states, 3, rows.session_state_rows())
    if rows.app_state or rows.user_state:
        _write_state(conn, q, [], rows.app_state_rows(), rows.user_state_rows())


def _find_sessions(
    conn: sqlite3.Connection, q: Queries, keys: Sequence[tuple[SessionKey, int]]
) -> dict[int, LiveSession]:
    """The live sessions among ``(key, now_us)`` pairs, by their index in ``keys``."""
    rows = [(i, *key, now) for i, (key, now) in enumerate(keys)]
    found: dict[int, LiveSession] = {}
    for (text,) in run_values(conn, q.find_sessions, 5, rows):
        for index, *fields in json.loads(text):
            found[index] = _live(fields)
    return found


def apply_appends(
    conn: sqlite3.Connection, q: Queries, jobs: Sequence[AppendJob], *, careful: bool
) -> list[Any]:
    """Apply independent appends; per-call failures are returned, storage errors raised.

    Appends to one session are applied in order. The whole group costs a handful of
    multi-row statements: one finds every session, then one per table writes. Without
    ``careful``, duplicate event ids are not looked up: the unique index raises and the
    caller replays call by call with ``careful=True``, which handles idempotent retries
    and conflicts.
    """
    groups = by_session(jobs)
    live = _find_sessions(conn, q, liveness_keys(groups, jobs))
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
            outcome = _apply_one(conn, q, key, session, jobs[i], rows, careful=careful)
            outcomes[i] = outcome
            written = written or isinstance(outcome, Appended)
        if written:
            rows.advance(session)
    _write_rows(conn, q, rows)
    return outcomes


def _apply_one(
    conn: sqlite3.Connection,
    q: Queries,
    key: SessionKey,
    session: LiveSession,
    job: AppendJob,
    rows: AppendRows,
    *,
    careful: bool,
) -> Any:
    """Check one append against ``session`` (as left by the group's earlier appends),
    add its rows, and move ``session`` forward."""
    error = stale(key, session, job)
    if error is not None:
        return error
    if careful:
        stored = stored_duplicates(
            key,
            job.command.events,
            lambda event_id: conn.execute(q.events_by_id, (session.pk, event_id)).fetchone(),
        )
        if stored is not None:
            return AlreadyStored(stored, session.version, session.updated_at)
    return record(session, job, rows)


def _write_state(
    conn: sqlite3.Connection,
    q: Queries,
    session_rows: Sequence[tuple[Any, ...]],
    app_rows: Sequence[tuple[Any, ...]],
    user_rows: Sequence[tuple[Any, ...]],
) -> None:
    """Upsert state rows (app rows: app, key, value, now; user rows: app, user, ...).

    App and user scopes written to have their expiry slid first (see
    :func:`_touch_scope`).
    """
    if session_rows:
        conn.executemany(q.upsert_session_state, session_rows)
    if app_rows:
        for app_name, now_us in {(row[0], row[3]) for row in app_rows}:
            _touch_scope(conn, q, "app", app_name, "", now_us)
        conn.executemany(q.upsert_app_state, app_rows)
    if user_rows:
        for app_name, user_id, now_us in {(row[0], row[1], row[4]) for row in user_rows}:
            _touch_scope(conn, q, "user", app_name, user_id, now_us)
        conn.executemany(q.upsert_user_state, user_rows)


def _touch_scope(
    conn: sqlite3.Connection, q: Queries, kind: str, app_name: str, user_id: str, now_us: int
) -> None:
    """Slide an app or user scope's expiry; an already expired scope starts empty.

    Expired state is invisible before the cleaner removes it, so a write to an expired
    scope must not bring its old keys back: they are dropped first.
    """
    row = conn.execute(q.scope_expiry, (kind, app_name, user_id)).fetchone()
    if row is not None and scope_expired(row[0], now_us):
        if kind == "app":
            conn.execute(q.clear_app_state, (app_name,))
        else:
            conn.execute(q.clear_user_state, (app_name, user_id))
    ttl = q.policy.app_state_ttl_us if kind == "app" else q.policy.user_state_ttl_us
    conn.execute(q.upsert_scope, (kind, app_name, user_id, now_us, q.policy.expiry(now_us, ttl)))


# -- sessions ------------------------------------------------------------------------


def _purge_session_rows(conn: sqlite3.Connection, q: Queries, pk: int) -> int:
    """Remove a session and everything it owns; returns how many events went."""
    events = int(conn.execute(q.delete_events, (pk,)).rowcount)
    conn.execute(q.delete_session_state, (pk,))
    conn.execute(q.delete_summaries, (pk,))
    conn.execute(q.delete_session, (pk,))
    return events


def _retire_session(conn: sqlite3.Connection, q: Queries, pk: int, now_us: int) -> None:
    """Delete a session: mark it (soft delete; purged later) or remove it now."""
    if q.policy.soft_delete:
        conn.execute(q.mark_deleted, (now_us, pk))
    else:
        _purge_session_rows(conn, q, pk)


def create_session(
    conn: sqlite3.Connection,
    q: Queries,
    new: NewSession,
    event_limit: int | None,
    *,
    get_existing: bool,
) -> tuple[Session, bool]:
    """Insert a session (and its initial state); with ``get_existing``, read a live one."""
    key, now_us = new.key, to_micros(new.now)
    row = find_live_session(conn, q, key, now_us)
    if row is not None:
        if get_existing:
            return load_session(conn, q, row, EventQuery(limit=event_limit), now_us), False
        raise already_exists(key)
    for (expired_pk,) in conn.execute(
        q.expired_key, (key.app_name, key.user_id, key.session_id, now_us)
    ).fetchall():
        _retire_session(conn, q, expired_pk, now_us)
    (pk,) = conn.execute(
        q.insert_session,
        (
            key.app_name,
            key.user_id,
            key.session_id,
            new.agent_id,
            dumps(new.metadata),
            now_us,
            now_us,
            q.policy.expiry(now_us, q.policy.session_ttl_us),
        ),
    ).fetchone()
    state = new.state
    _write_state(
        conn,
        q,
        [(pk, k, dumps(v)) for k, v in state.session.items()],
        [(key.app_name, k, dumps(v), now_us) for k, v in state.app.items()],
        [(key.app_name, key.user_id, k, dumps(v), now_us) for k, v in state.user.items()],
    )
    row = find_live_session(conn, q, key, now_us)
    assert row is not None  # inserted just above, in this transaction
    return load_session(conn, q, row, EventQuery(limit=0), now_us), True


def delete_session(conn: sqlite3.Connection, q: Queries, key: SessionKey, now_us: int) -> bool:
    session = _session_for_write(conn, q, key, now_us)
    if session is None:
        return False
    _retire_session(conn, q, session.pk, now_us)
    return True


def _require(conn: sqlite3.Connection, q: Queries, key: SessionKey, now_us: int) -> LiveSession:
    session = _session_for_write(conn, q, key, now_us)
    if session is None:
        raise not_found(key)
    return session


def _touch(conn: sqlite3.Connection, q: Queries, pk: int, now_us: int) -> SessionWrite:
    expires = q.policy.expiry(now_us, q.policy.session_ttl_us)
    (version,) = conn.execute(q.touch_session, (now_us, expires, pk)).fetchone()
    return SessionWrite(version=version, updated_at=from_micros(now_us))


def pop_event(
    conn: sqlite3.Connection, q: Queries, key: SessionKey, now_us: int
) -> tuple[Event | None, SessionWrite]:
    session = _require(conn, q, key, now_us)
    row = conn.execute(q.newest_event, (session.pk,)).fetchone()
    if row is None:
        return None, SessionWrite(session.version, from_micros(session.updated_at))
    event = event_from_row(row)
    conn.execute(q.delete_event_at, (session.pk, event.sequence))
    return event, _touch(conn, q, session.pk, now_us)


def clear_events(
    conn: sqlite3.Connection, q: Queries, key: SessionKey, now_us: int
) -> tuple[int, SessionWrite]:
    session = _require(conn, q, key, now_us)
    removed = conn.execute(q.delete_events, (session.pk,)).rowcount
    if not removed:
        return 0, SessionWrite(session.version, from_micros(session.updated_at))
    return removed, _touch(conn, q, session.pk, now_us)


def update_session_state(
    conn: sqlite3.Connection,
    q: Queries,
    key: SessionKey,
    delta: dict[str, JsonValue],
    now_us: int,
) -> SessionWrite:
    session = _require(conn, q, key, now_us)
    _write_state(conn, q, [(session.pk, k, dumps(v)) for k, v in delta.items()], [], [])
    return _touch(conn, q, session.pk, now_us)


def update_app_state(
    conn: sqlite3.Connection, q: Queries, app_name: str, delta: dict[str, JsonValue], now_us: int
) -> None:
    _write_state(conn, q, [], [(app_name, k, dumps(v), now_us) for k, v in delta.items()], [])


def delete_app_state(
    conn: sqlite3.Connection, q: Queries, app_name: str, key: str, now_us: int
) -> bool:
    _touch_scope(conn, q, "app", app_name, "", now_us)
    return conn.execute(q.delete_app_key, (app_name, key)).rowcount > 0


def update_user_state(
    conn: sqlite3.Connection,
    q: Queries,
    app_name: str,
    user_id: str,
    delta: dict[str, JsonValue],
    now_us: int,
) -> None:
    rows = [(app_name, user_id, k, dumps(v), now_us) for k, v in delta.items()]
    _write_state(conn, q, [], [], rows)


def delete_user_state(
    conn: sqlite3.Connection, q: Queries, app_name: str, user_id: str, key: str, now_us: int
) -> bool:
    _touch_scope(conn, q, "user", app_name, user_id, now_us)
    return conn.execute(q.delete_user_key, (app_name, user_id, key)).rowcount > 0


# -- summaries -----------------------------------------------------------------------


def put_summary(
    conn: sqlite3.Connection, q: Queries, key: SessionKey, summary: Summary, now_us: int
) -> bool:
    """Store a summary if the session is still live; False when it is gone."""
    session = _session_for_write(conn, q, key, now_us)
    if session is None:
        return False
    stored = conn.execute(q.summary_for_branch, (session.pk, summary.branch)).fetchone()
    if not summary_supersedes(None if stored is None else stored[2], summary.through_sequence):
        return True  # a newer summary is already stored: it stays
    conn.execute(
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


def refresh_expiry(conn: sqlite3.Connection, q: Queries, key: SessionKey, now_us: int) -> None:
    """Slide a live session's expiry on read (``refresh_ttl_on_read``)."""
    expires = q.policy.expiry(now_us, q.policy.session_ttl_us)
    if expires is not None:
        conn.execute(q.refresh_expiry, (expires, *key, now_us))
