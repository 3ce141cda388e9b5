"""``SessionService``: the facade users call.

It validates input, keeps the caller's in-memory ``Session`` objects in step with what
was stored, and delegates storage to a :class:`~sessionlite.store.base.Storage`.
Background work (the group-commit writer today) runs in one task group that the service
owns; see :mod:`sessionlite.lifecycle` for why that group lives in a task of its own.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import platformdirs
from anyio.abc import TaskGroup
from pydantic import JsonValue

from .config import ServiceOptions, parse_options
from .errors import InvalidInputError, ServiceClosedError
from .hooks import AppendContext, GetSessionContext, run_chain
from .lifecycle import ServiceRunner
from .models import Event, Session, SessionPage, Summary, new_id
from .state import APP_PREFIX, TEMP_PREFIX, USER_PREFIX, ScopedDelta, split_delta
from .stats import CleanupReport, Counters, ServiceStats
from .store.base import (
    AppendCommand,
    AppendOutcome,
    EventFilter,
    EventQuery,
    NewSession,
    SessionKey,
    not_found,
)
from .store.sqlite.store import SqliteStore
from .validation import (
    PreparedEvent,
    check_aware,
    check_json_object,
    check_limit,
    check_text,
    prepare_event,
)
from .workers.cleaner import Cleaner
from .workers.persister import Persister
from .workers.summary_jobs import SummaryJobRunner
from .workers.summary_queue import SummaryQueue

__all__ = ["DEFAULT_DB_FILENAME", "SessionService", "default_db_path"]

DEFAULT_DB_FILENAME = "sessions.db"
DEFAULT_PAGE_SIZE = 500  # events per page for iter_events and summary jobs
RETRY_WINDOW = 8  # newest in-memory events checked for a retried id (async_persist)
MAX_LIST_LIMIT = 1000  # sessions per list_sessions page at most


def default_db_path() -> Path:
    """Where ``SessionService(path=None)`` keeps its database (the per-user data dir)."""
    return platformdirs.user_data_path("sessionlite", appauthor=False) / DEFAULT_DB_FILENAME


def _resolve_path(path: str | os.PathLike[str] | None) -> str:
    if path is None:
        target = default_db_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        return str(target)
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise InvalidInputError(f"path must be a file path or ':memory:', got {path!r}")
    return path


class SessionService:
    """An asyncio session store for AI agents, on SQLite.

    Use it as an async context manager (or call :meth:`open` and :meth:`aclose`)::

        async with SessionService("sessions.db") as service:
            session = await service.create_session(app_name="chat", user_id="u1")
            await service.append_event(session, Event(author="user", content="hi"))

    Args:
        path: database file; ``None`` for the per-user data dir
            (:func:`default_db_path`), ``":memory:"`` for a private in-memory database.
        **options: keyword-only options, validated here (see :class:`ServiceOptions`).

    Raises:
        InvalidInputError: an unknown option or a bad value (the message names it).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, **options: Any) -> None:
        self._options: ServiceOptions = parse_options(**options)
        opts = self._options
        self._path = _resolve_path(path)
        self._store = SqliteStore(self._path, opts)
        self._counters = Counters()
        self._persister = (
            Persister(
                self._store,
                self._counters,
                workers=opts.persist_workers,
                queue_size=opts.persist_queue_size,
            )
            if opts.async_persist
            else None
        )
        self._summary_jobs: SummaryJobRunner | None = None
        self._summaries: SummaryQueue | None = None
        if opts.summarizer is not None:
            self._summary_jobs = SummaryJobRunner(
                self._store,
                opts.summarizer,
                self._counters,
                self._now,
                timeout=opts.summary_job_timeout,
                read_events=self._read_all_events,
                barrier=self._wait_persisted,
            )
            self._summaries = SummaryQueue(
                self._summary_jobs.run,
                self._counters,
                workers=opts.summary_workers,
                queue_size=opts.summary_queue_size,
                policy=opts.summary_queue_full,
            )
        self._cleaner = Cleaner(
            self._store,
            self._counters,
            self._now,
            interval=opts.cleanup_interval,
            soft_delete=opts.soft_delete,
            retention=opts.soft_delete_retention,
        )
        self._runner = ServiceRunner(self._start_workers, self._stop_workers)

    # -- lifecycle ------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The database path (``":memory:"`` for an in-memory database)."""
        return self._path

    @property
    def options(self) -> ServiceOptions:
        return self._options

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` started (or before :meth:`open`)."""
        return not self._runner.running

    async def open(self) -> SessionService:
        """Open the database, create or migrate the schema, start the workers.

        Raises:
            StorageError: the file cannot be opened or used (subclasses say why).
            ServiceClosedError: the service was already closed.
        """
        await self._runner.start()
        return self

    async def aclose(self) -> None:
        """Finish accepted work, stop the workers, close the database. Idempotent.

        Drains the async-persist queue and the summary queue (each job still bounded by
        its timeout; the whole drain by ``close_timeout``), shielded from cancellation.

        Raises:
            PersistenceError: accepted events could not be stored (named by id).
        """
        await self._runner.stop()

    async def _start_workers(self, task_group: TaskGroup) -> None:
        await self._store.open(task_group)
        if self._persister is not None:
            await self._persister.start(task_group)
        if self._summaries is not None:
            await self._summaries.start(task_group)
        await task_group.start(self._cleaner.run)

    async def _stop_workers(self) -> None:
        timeout = self._options.close_timeout
        error: BaseException | None = None
        self._cleaner.stop()
        if self._summaries is not None:
            self._summaries.close()
        if self._persister is not None:
            try:
                await self._persister.close(timeout)
            except Exception as exc:  # reported after the rest is shut down
                error = exc
        if self._summaries is not None:
            with anyio.move_on_after(timeout.total_seconds()):
                await self._summaries.wait_closed()
        await self._store.close()
        if error is not None:
            raise error

    async def flush(self) -> None:
        """Wait until every accepted event is durable.

        A no-op without ``async_persist`` (appends return once committed).

        Raises:
            PersistenceError: background writes failed since the last flush (their
                event ids are in ``event_ids``); the failures are reported once.
        """
        self._check_open()
        if self._persister is not None:
            await self._persister.flush()

    async def _wait_all_persisted(self) -> None:
        """async_persist: direct app/user state writes must not be overtaken by queued
        event deltas to the same scopes, so they wait for the queues to empty."""
        if self._persister is not None:
            await self._persister.wait_idle()

    async def _wait_persisted(self, key: SessionKey) -> None:
        """Read-your-writes with async_persist: wait for this session's queued events."""
        if self._persister is not None:
            await self._persister.wait_for(key)

    def stats(self) -> ServiceStats:
        """A frozen snapshot of the service's counters and queue depths."""
        c = self._counters
        transactions, calls = self._store.write_statistics()
        return ServiceStats(
            events_accepted=c.events_accepted,
            events_persisted=c.events_persisted,
            persist_failures=c.persist_failures,
            persist_retries=c.persist_retries,
            persist_queue_depth=0 if self._persister is None else self._persister.queue_depth,
            write_transactions=transactions,
            write_calls=calls,
            mean_batch_size=calls / transactions if transactions else 0.0,
            summary_jobs_queued=c.summary_jobs_queued,
            summary_jobs_done=c.summary_jobs_done,
            summary_jobs_skipped=c.summary_jobs_skipped,
            summary_jobs_timed_out=c.summary_jobs_timed_out,
            summary_jobs_failed=c.summary_jobs_failed,
            summary_jobs_coalesced=c.summary_jobs_coalesced,
            summary_jobs_rejected=c.summary_jobs_rejected,
            summary_jobs_inline=c.summary_jobs_inline,
            summary_queue_depth=0 if self._summaries is None else self._summaries.depth,
            cleanup_runs=c.cleanup_runs,
            cleanup_expired_sessions=c.cleanup_expired_sessions,
            cleanup_purged_sessions=c.cleanup_purged_sessions,
            cleanup_deleted_events=c.cleanup_deleted_events,
            cleanup_expired_state_scopes=c.cleanup_expired_state_scopes,
        )

    async def run_cleanup(self) -> CleanupReport:
        """Run one cleaner pass now: expire, purge, and report what was done."""
        self._check_open()
        return await self._cleaner.run_once()

    async def __aenter__(self) -> SessionService:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<SessionService {self._path!r} {state}>"

    def _check_open(self) -> None:
        if not self._runner.running:
            raise ServiceClosedError(
                "the SessionService is closed (or not opened yet); use `async with "
                "SessionService(...)` or `await service.open()`"
            )

    def _now(self) -> datetime:
        return check_aware(self._options.clock(), "clock()")

    # -- sessions -------------------------------------------------------------------

    def _new_session(
        self,
        app_name: str,
        user_id: str,
        session_id: str | None,
        state: dict[str, JsonValue] | None,
        agent_id: str | None,
        metadata: dict[str, JsonValue] | None,
    ) -> tuple[NewSession, dict[str, JsonValue]]:
        key = _key(app_name, user_id, new_id() if session_id is None else session_id)
        if agent_id is not None:
            check_text(agent_id, "agent_id")
        state = check_json_object({} if state is None else state, "state")
        new = NewSession(
            key=key,
            agent_id=agent_id,
            metadata=check_json_object({} if metadata is None else metadata, "metadata"),
            state=split_delta(state),
            now=self._now(),
        )
        return new, new.state.temp

    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str | None = None,
        state: dict[str, JsonValue] | None = None,
        agent_id: str | None = None,
        metadata: dict[str, JsonValue] | None = None,
    ) -> Session:
        """Create a session (with a fresh id unless ``session_id`` is given).

        ``state`` may hold ``app:``/``user:`` keys (stored in those scopes) and
        ``temp:`` keys (kept on the returned object only).

        Raises:
            SessionExistsError: a live session already has this id.
        """
        self._check_open()
        new, temp = self._new_session(app_name, user_id, session_id, state, agent_id, metadata)
        session = await self._store.create_session(new, event_limit=self._options.event_limit)
        session.state.update(temp)
        return session

    async def get_or_create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str | None = None,
        state: dict[str, JsonValue] | None = None,
        agent_id: str | None = None,
        metadata: dict[str, JsonValue] | None = None,
    ) -> Session:
        """Return the live session with this id, or create it, atomically.

        ``state``, ``agent_id`` and ``metadata`` are used only when creating.
        """
        self._check_open()
        new, temp = self._new_session(app_name, user_id, session_id, state, agent_id, metadata)
        await self._wait_persisted(new.key)
        session, created = await self._store.get_or_create_session(
            new, event_limit=self._options.event_limit
        )
        if created:
            session.state.update(temp)
        return session

    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        num_recent_events: int | None = None,
        after: datetime | None = None,
        branch: str | None = None,
    ) -> Session | None:
        """The session with its most recent events (oldest first), or None.

        Args:
            num_recent_events: most events to return (default: the ``event_limit``
                option). Reading the last N events costs the same whatever the
                session's length.
            after: keep only events with ``timestamp >= after``.
            branch: keep only events on this branch or below it.

        Returns:
            None when the session does not exist, expired or was deleted.
        """
        self._check_open()
        ctx = GetSessionContext(
            self, app_name, user_id, session_id, num_recent_events, after, branch
        )
        hooks = self._options.get_session_hooks
        if hooks:
            result: Session | None = await run_chain(hooks, ctx, self._get_session)
            return result
        return await self._get_session(ctx)

    async def _get_session(self, ctx: GetSessionContext) -> Session | None:
        key = _key(ctx.app_name, ctx.user_id, ctx.session_id)
        limit = check_limit(ctx.num_recent_events, "num_recent_events")
        query = EventQuery(
            limit=self._options.event_limit if limit is None else limit,
            after=None if ctx.after is None else check_aware(ctx.after, "after"),
            branch=None
            if ctx.branch is None
            else check_text(ctx.branch, "branch", allow_empty=True),
        )
        await self._wait_persisted(key)
        now = self._now()
        session = await self._store.get_session(key, query, now=now)
        if session is not None and self._options.refresh_ttl_on_read:
            ttl = self._options.session_ttl
            if ttl is not None:
                await self._store.refresh_expiry(key, now=now)
                session.__dict__["expires_at"] = now + ttl
        return session

    async def list_sessions(
        self,
        *,
        app_name: str,
        user_id: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> SessionPage:
        """A page of live sessions, most recently updated first, without events.

        Pass ``page.next_cursor`` back as ``cursor`` for the next page; it is None on
        the last page.
        """
        self._check_open()
        check_text(app_name, "app_name")
        if user_id is not None:
            check_text(user_id, "user_id")
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not 1 <= limit <= MAX_LIST_LIMIT
        ):
            raise InvalidInputError(
                f"limit must be an int from 1 to {MAX_LIST_LIMIT}, got {limit!r}", field="limit"
            )
        if cursor is not None:
            check_text(cursor, "cursor")
        return await self._store.list_sessions(
            app_name=app_name, user_id=user_id, limit=limit, cursor=cursor, now=self._now()
        )

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> bool:
        """Delete a session with its events, state and summaries.

        Returns:
            True if a live session was deleted.
        """
        self._check_open()
        key = _key(app_name, user_id, session_id)
        await self._wait_persisted(key)
        return await self._store.delete_session(key, now=self._now())

    # -- events ---------------------------------------------------------------------

    async def append_event(
        self, session: Session, event: Event, *, expected_version: int | None = None
    ) -> Event:
        """Apply ``event`` to ``session`` and store it with its state delta, atomically.

        Returns once the event is committed. Appending an event whose id is already
        stored with identical content is a no-op that returns the stored event.

        Returns:
            The stored event (a private copy, with its ``sequence``).

        Raises:
            InvalidInputError: the event is not valid (e.g. non-JSON content).
            SessionNotFoundError: the session no longer exists.
            StaleSessionError: ``expected_version`` differs from the stored version.
            EventConflictError: the id is stored with different content.
        """
        self._check_open()
        hooks = self._options.append_event_hooks
        if hooks:
            ctx = AppendContext(self, session, event, expected_version)
            result: Event = await run_chain(hooks, ctx, self._append_from_context)
            return result
        (stored,) = await self._append(session, [event], expected_version)
        return stored

    async def _append_from_context(self, ctx: AppendContext) -> Event:
        (stored,) = await self._append(ctx.session, [ctx.event], ctx.expected_version)
        return stored

    async def append_events(
        self, session: Session, events: Sequence[Event], *, expected_version: int | None = None
    ) -> list[Event]:
        """Append several events atomically: all are stored, or none."""
        self._check_open()
        given: object = events
        if not isinstance(given, (list, tuple)):
            raise InvalidInputError("events must be a list of Event", field="events")
        hooks = self._options.append_event_hooks
        if not hooks:
            return await self._append(session, list(events), expected_version)
        admitted: list[Event] = []

        async def admit(ctx: AppendContext) -> Event:
            admitted.append(ctx.event)
            return ctx.event

        for event in events:
            await run_chain(hooks, AppendContext(self, session, event, expected_version), admit)
        if not admitted:
            return []
        return await self._append(session, admitted, expected_version)

    async def _append(
        self, session: Session, events: list[Event], expected_version: int | None
    ) -> list[Event]:
        _check_session(session)
        if expected_version is not None:
            check_limit(expected_version, "expected_version")
        prepared = [prepare_event(event) for event in events]
        ids = [p.event.id for p in prepared]
        if len(set(ids)) != len(ids):
            raise InvalidInputError("events in one call must have distinct ids", field="events")
        to_store = [p for p in prepared if not p.event.partial]
        if not to_store:  # streaming chunks: in memory only
            for p in prepared:
                _apply_in_memory(session, p, p.event)
            return [p.event for p in prepared]
        if len(to_store) == 1:
            delta = split_delta(to_store[0].event.state_delta)
        else:
            delta = ScopedDelta()
            for p in to_store:
                scoped = split_delta(p.event.state_delta)
                delta.session.update(scoped.session)
                delta.app.update(scoped.app)
                delta.user.update(scoped.user)
        command = AppendCommand(
            key=_key(session.app_name, session.user_id, session.id),
            events=to_store,
            delta=delta,
            expected_version=expected_version,
            now=self._now(),
        )
        if self._persister is None:
            outcome = await self._store.append(command)
            self._counters.events_accepted += len(to_store)
            if not outcome.duplicate:
                self._counters.events_persisted += len(to_store)
            return self._apply_outcome(session, prepared, outcome)
        if expected_version is not None:
            # The check needs the stored version: wait for this write (queued behind
            # the session's earlier ones, so order is kept).
            waited = await self._persister.submit(command, wait=True)
            assert waited is not None
            self._counters.events_accepted += len(to_store)
            return self._apply_outcome(session, prepared, waited)
        await self._persister.submit(command)
        self._counters.events_accepted += len(to_store)
        return self._apply_accepted(session, prepared, command.now)

    def _apply_accepted(
        self, session: Session, prepared: list[PreparedEvent], now: datetime
    ) -> list[Event]:
        """async_persist: apply an accepted (not yet written) append to the session.

        Events get their ``sequence`` when written (the same objects are updated).
        """
        # A retry repeats recent events: look for them among the newest few only, so
        # accepting stays O(1) however long the in-memory history grows.
        known = {event.id for event in session.events[-RETRY_WINDOW:]}
        if all(p.event.id in known for p in prepared):
            # A retry of events this session object already holds: the store will
            # find them identical (or report a conflict), so nothing changes here.
            return [p.event for p in prepared]
        for p in prepared:
            if p.event.id not in known:
                _apply_in_memory(session, p, p.event)
        _set_bookkeeping(session, session.version + 1, now, self._options)
        return [p.event for p in prepared]

    def _apply_outcome(
        self, session: Session, prepared: list[PreparedEvent], outcome: AppendOutcome
    ) -> list[Event]:
        stored = iter(outcome.events)
        known = {event.id for event in session.events} if outcome.duplicate else set()
        results = []
        for p in prepared:
            event = p.event if p.event.partial else next(stored)
            if event.id not in known:
                _apply_in_memory(session, p, event)
            results.append(event)
        _set_bookkeeping(session, outcome.version, outcome.updated_at, self._options)
        return results

    def iter_events(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        after_sequence: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        author: str | None = None,
        branch: str | None = None,
        page_size: int = 500,
    ) -> AsyncIterator[Event]:
        """Stream a session's events oldest first, ``page_size`` at a time::

            async for event in service.iter_events(app_name=..., user_id=..., session_id=...):
                ...

        Arguments are checked at the call; storage is read page by page while iterating.
        If the session is deleted midway, iteration stops after the events already read.

        Raises:
            InvalidInputError: a bad argument (at the call).
            SessionNotFoundError: the session does not exist (on the first iteration).
        """
        self._check_open()
        key = _key(app_name, user_id, session_id)
        flt = EventFilter(
            after_sequence=check_limit(after_sequence, "after_sequence"),
            since=None if since is None else check_aware(since, "since"),
            until=None if until is None else check_aware(until, "until"),
            author=None if author is None else check_text(author, "author"),
            branch=None if branch is None else check_text(branch, "branch", allow_empty=True),
        )
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise InvalidInputError(
                f"page_size must be a positive int, got {page_size!r}", field="page_size"
            )
        return self._iter_events(key, flt, page_size)

    def _read_all_events(self, key: SessionKey, flt: EventFilter) -> AsyncIterator[Event]:
        # For summary jobs, which also run while aclose() drains the queue: the store
        # stays open until they are done, so no open-check here.
        return self._iter_events(key, flt, DEFAULT_PAGE_SIZE, check_open=False)

    async def _iter_events(
        self, key: SessionKey, flt: EventFilter, page_size: int, *, check_open: bool = True
    ) -> AsyncIterator[Event]:
        await self._wait_persisted(key)
        first = True
        while True:
            if check_open:
                self._check_open()
            page = await self._store.read_events(key, flt, limit=page_size, now=self._now())
            if page is None:
                if first:
                    raise not_found(key)
                return  # deleted while we iterated: stop at what existed
            first = False
            for event in page:
                yield event
            if len(page) < page_size:
                return
            flt = EventFilter(
                after_sequence=page[-1].sequence,
                since=flt.since,
                until=flt.until,
                author=flt.author,
                branch=flt.branch,
            )

    async def pop_event(self, session: Session) -> Event | None:
        """Remove the session's newest stored event; returns it, or None if there is none.

        Its state delta is not undone.
        """
        self._check_open()
        _check_session(session)
        key = _key(session.app_name, session.user_id, session.id)
        await self._wait_persisted(key)
        event, write = await self._store.pop_event(key, now=self._now())
        if event is not None:
            session.events[:] = [e for e in session.events if e.id != event.id]
        _set_bookkeeping(session, write.version, write.updated_at, self._options)
        return event

    async def clear_events(self, session: Session) -> int:
        """Remove every event of the session (its state stays). Returns how many."""
        self._check_open()
        _check_session(session)
        key = _key(session.app_name, session.user_id, session.id)
        await self._wait_persisted(key)
        removed, write = await self._store.clear_events(key, now=self._now())
        session.events.clear()
        _set_bookkeeping(session, write.version, write.updated_at, self._options)
        return removed

    # -- state ----------------------------------------------------------------------

    async def get_app_state(self, app_name: str) -> dict[str, JsonValue]:
        """The app-scoped state (keys without their ``app:`` prefix)."""
        self._check_open()
        return await self._store.get_app_state(check_text(app_name, "app_name"), now=self._now())

    async def update_app_state(self, app_name: str, delta: dict[str, JsonValue]) -> None:
        """Merge ``delta`` (keys without prefix) into the app-scoped state."""
        self._check_open()
        app_name = check_text(app_name, "app_name")
        delta = _check_delta_keys(check_json_object(delta, "delta"))
        await self._wait_all_persisted()
        await self._store.update_app_state(app_name, delta, now=self._now())

    async def delete_app_state(self, app_name: str, key: str) -> bool:
        """Remove one app-scoped key; True if it existed."""
        self._check_open()
        app_name = check_text(app_name, "app_name")
        await self._wait_all_persisted()
        return await self._store.delete_app_state(app_name, check_text(key, "key"), now=self._now())

    async def get_user_state(self, app_name: str, user_id: str) -> dict[str, JsonValue]:
        """The user-scoped state (keys without their ``user:`` prefix)."""
        self._check_open()
        return await self._store.get_user_state(
            check_text(app_name, "app_name"), check_text(user_id, "user_id"), now=self._now()
        )

    async def update_user_state(
        self, app_name: str, user_id: str, delta: dict[str, JsonValue]
    ) -> None:
        """Merge ``delta`` (keys without prefix) into the user-scoped state."""
        self._check_open()
        app_name, user_id = check_text(app_name, "app_name"), check_text(user_id, "user_id")
        delta = _check_delta_keys(check_json_object(delta, "delta"))
        await self._wait_all_persisted()
        await self._store.update_user_state(app_name, user_id, delta, now=self._now())

    async def delete_user_state(self, app_name: str, user_id: str, key: str) -> bool:
        """Remove one user-scoped key; True if it existed."""
        self._check_open()
        app_name, user_id = check_text(app_name, "app_name"), check_text(user_id, "user_id")
        await self._wait_all_persisted()
        return await self._store.delete_user_state(
            app_name, user_id, check_text(key, "key"), now=self._now()
        )

    async def update_session_state(
        self, *, app_name: str, user_id: str, session_id: str, delta: dict[str, JsonValue]
    ) -> None:
        """Merge ``delta`` into one session's own state (no ``app:``/``user:``/``temp:`` keys).

        Raises:
            InvalidInputError: a key carries a scope prefix.
            SessionNotFoundError: the session does not exist.
        """
        self._check_open()
        key = _key(app_name, user_id, session_id)
        delta = _check_delta_keys(check_json_object(delta, "delta"))
        await self._wait_persisted(key)
        await self._store.update_session_state(key, delta, now=self._now())

    # -- summaries ------------------------------------------------------------------

    def _summary_target(self, session: Session, branch: str) -> tuple[SessionKey, str]:
        _check_session(session)
        branch = check_text(branch, "branch", allow_empty=True)
        if branch and any(not part for part in branch.split("/")):
            raise InvalidInputError(
                f"branch {branch!r} has an empty segment; use names like 'root/researcher'",
                field="branch",
            )
        return _key(session.app_name, session.user_id, session.id), branch

    def _require_summarizer(self) -> SummaryJobRunner:
        if self._summary_jobs is None:
            raise InvalidInputError(
                "no summarizer configured; pass SessionService(..., summarizer=...)",
                field="summarizer",
            )
        return self._summary_jobs

    async def enqueue_summary(
        self, session: Session, *, branch: str = "", force: bool = False
    ) -> bool:
        """Queue a summary job for the session (and branch) and return at once.

        A job already queued for the same session and branch absorbs the request.
        When the queue is full, ``summary_queue_full`` decides: ``"inline"`` runs the
        job now (its errors are logged and counted, not raised), ``"reject"`` raises.

        Returns:
            True if a job was queued (or run inline), False if a queued job absorbed it.

        Raises:
            SummaryQueueFullError: the queue is full and the policy is ``"reject"``.
        """
        self._check_open()
        self._require_summarizer()
        key, branch = self._summary_target(session, branch)
        assert self._summaries is not None
        return await self._summaries.enqueue(key, branch, bool(force))

    async def summarize(
        self, session: Session, *, branch: str = "", force: bool = False
    ) -> Summary | None:
        """Run one summary job now and return the stored summary.

        Returns:
            None when there is nothing new to summarize (and not ``force``), when the
            summarizer returns None, or when the session no longer exists.

        Raises:
            TimeoutError: the summarizer exceeded ``summary_job_timeout``.
            Exception: what the summarizer raised (nothing is stored then).
        """
        self._check_open()
        runner = self._require_summarizer()
        key, branch = self._summary_target(session, branch)
        summary = await runner.run(key, branch, bool(force))
        if summary is not None:
            session.summaries[summary.branch] = summary
        return summary

    async def get_summary(
        self, *, app_name: str, user_id: str, session_id: str, branch: str = ""
    ) -> Summary | None:
        """The branch's summary, falling back to the whole-session (``""``) summary."""
        self._check_open()
        key = _key(app_name, user_id, session_id)
        branch = check_text(branch, "branch", allow_empty=True)
        return await self._store.get_summary(key, branch, now=self._now())


# -- helpers -------------------------------------------------------------------------


def _key(app_name: str, user_id: str, session_id: str) -> SessionKey:
    return SessionKey(
        check_text(app_name, "app_name"),
        check_text(user_id, "user_id"),
        check_text(session_id, "session_id"),
    )


def _check_session(session: Any) -> None:
    if not isinstance(session, Session):
        raise InvalidInputError(
            f"expected a sessionlite.Session, got {type(session).__name__}", field="session"
        )


def _check_delta_keys(delta: dict[str, JsonValue]) -> dict[str, JsonValue]:
    for key in delta:
        if key.startswith((APP_PREFIX, USER_PREFIX, TEMP_PREFIX)):
            raise InvalidInputError(
                f"key {key!r} carries a scope prefix; direct state calls take plain keys "
                "(use update_app_state / update_user_state for shared state; temp: keys "
                "are never stored)",
                field="delta",
            )
    return delta


def _apply_in_memory(session: Session, prepared: PreparedEvent, event: Event) -> None:
    session.events.append(event)
    session.state.update(prepared.delta)


def _set_bookkeeping(
    session: Session, version: int, updated_at: datetime, options: ServiceOptions
) -> None:
    # Values straight from the store: skip assignment validation on this hot path.
    session.__dict__["version"] = version
    session.__dict__["updated_at"] = updated_at
    if options.session_ttl is not None:
        session.__dict__["expires_at"] = updated_at + options.session_ttl
