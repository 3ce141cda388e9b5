"""``SessionService``: the facade users call.

It checks its arguments (:mod:`sessionlite.commands`), keeps the caller's in-memory
``Session`` objects in step with what was stored (:mod:`sessionlite.session_updates`),
and delegates storage to a :class:`~sessionlite.store.base.Storage`.
Background work (the group-commit writer, persist workers, summary jobs, the cleaner)
is owned by a :class:`~sessionlite.runtime.ServiceRuntime` and runs in one task group
that the service owns; see :mod:`sessionlite.lifecycle` for why that group lives in a
task of its own. In-memory session updates live in :mod:`sessionlite.session_updates`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

from pydantic import JsonValue
from typing_extensions import Never

from .commands import (
    check_list_args,
    event_filter,
    event_query,
    new_session,
    prepare_append,
    session_key,
    summary_target,
)
from .config import (
    DEFAULT_BUSY_TIMEOUT,
    DEFAULT_CLEANUP_INTERVAL,
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_EVENT_LIMIT,
    DEFAULT_MAX_WRITE_BATCH,
    DEFAULT_PERSIST_QUEUE_SIZE,
    DEFAULT_PERSIST_WORKERS,
    DEFAULT_SOFT_DELETE_RETENTION,
    DEFAULT_SUMMARY_JOB_TIMEOUT,
    DEFAULT_SUMMARY_QUEUE_SIZE,
    DEFAULT_SUMMARY_WORKERS,
    Clock,
    Duration,
    QueueFullPolicy,
    ServiceOptions,
    Synchronous,
    parse_options,
)
from .errors import InvalidInputError, ServiceClosedError
from .hooks import AppendContext, AppendHook, GetSessionContext, GetSessionHook, run_chain
from .lifecycle import ServiceRunner
from .models import Event, Session, SessionPage, Summary, utc_now
from .paths import DEFAULT_DB_FILENAME, default_db_path
from .runtime import ServiceRuntime
from .session_updates import apply_accepted, apply_in_memory, apply_outcome, set_bookkeeping
from .stats import CleanupReport, ServiceStats
from .store.base import EventFilter, SessionKey, Storage
from .store.factory import backend_of, build_storage, check_storage, display_name
from .summaries import Summarizer
from .validation import (
    check_aware,
    check_json_object,
    check_plain_keys,
    check_positive_int,
    check_session,
    check_text,
)

# DEFAULT_DB_FILENAME and default_db_path live in .paths; re-exported here because
# callers (the CLI, tests, users) import them from sessionlite.service.
__all__ = ["DEFAULT_DB_FILENAME", "SessionService", "default_db_path"]

MAX_LIST_LIMIT = 1000  # sessions per list_sessions page at most


def _checked_clock(clock: Callable[[], datetime]) -> Callable[[], datetime]:
    def now() -> datetime:
        return check_aware(clock(), "clock()")

    return now


class SessionService:
    """An asyncio session store for AI agents, on SQLite or PostgreSQL.

    Use it as an async context manager (or call :meth:`open` and :meth:`aclose`)::

        async with SessionService("sessions.db") as service:
            session = await service.create_session(app_name="chat", user_id="u1")
            await service.append_event(session, Event(author="user", content="hi"))

    Args:
        database: a SQLite file path (``~`` expanded); ``None`` for the per-user data
            dir (:func:`default_db_path`); ``":memory:"`` for a private in-memory
            database; a ``postgresql://`` (or ``postgres://``) URL for PostgreSQL
            (``pip install "sessionlite[postgres]"``); or a ready
            :class:`~sessionlite.store.base.Storage` object (tests, third-party
            backends). ``path=`` is an alias.
        table_prefix: prefix of every table and index.
        create_schema: create or migrate the schema on open (``False``: you manage DDL).
        synchronous: SQLite's ``synchronous`` level, ``"NORMAL"`` (the default) or
            ``"FULL"``. SQLite only.
        busy_timeout: how long a write waits for another process's lock (PostgreSQL:
            for a row lock or a pooled connection).
        event_limit: most events ``get_session`` returns by default (``None``: all).
        max_stored_events: keep only each session's newest N events on disk.
        session_ttl: sessions expire this long after their last write.
        app_state_ttl: app state expires this long after its last write.
        user_state_ttl: user state expires this long after its last write.
        refresh_ttl_on_read: reads extend a session's expiry too.
        cleanup_interval: how often the cleaner looks for expired or deleted data.
        soft_delete: deletes and expiry mark rows; they are purged after
            ``soft_delete_retention``.
        soft_delete_retention: how long soft-deleted rows are kept.
        async_persist: ``append_event`` returns once the event is accepted; workers
            write it in the background.
        persist_workers: async-persistence task pool size.
        persist_queue_size: accepted, not yet written appends at most (backpressure).
        summarizer: a :class:`~sessionlite.Summarizer`.
        summary_workers: summary task pool size.
        summary_queue_size: queued summary jobs at most.
        summary_job_timeout: per-job timeout.
        summary_queue_full: ``"inline"`` runs a job in the caller when the queue is
            full, ``"reject"`` raises :class:`~sessionlite.SummaryQueueFullError`.
        append_event_hooks: middleware around ``append_event``.
        get_session_hooks: middleware around ``get_session``.
        clock: the current time (inject one in tests).
        close_timeout: how long ``aclose()`` waits for queued work.
        reader_connections: SQLite reader connections (default 2). SQLite only.
        read_cache_size: bytes of hot session tails kept in memory to serve
            ``get_session`` without a query (default 64 MiB; 0 turns the cache off).
            Never stale: any commit by another process or service is noticed before the
            next read. SQLite only.
        max_write_batch: write calls gathered into one transaction at most.
        pool_size: connections per service (default 10). PostgreSQL only.
        prepared_statements: server-side prepared statements (default True; False for
            pgbouncer in transaction mode). PostgreSQL only.

    Durations take a ``timedelta`` or a number of seconds.

    Raises:
        InvalidInputError: an unknown option or a bad value (the message names it).
    """

    def __init__(
        self,
        database: str | os.PathLike[str] | Storage | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        table_prefix: str = "",
        create_schema: bool = True,
        synchronous: Synchronous | None = None,
        busy_timeout: Duration = DEFAULT_BUSY_TIMEOUT,
        event_limit: int | None = DEFAULT_EVENT_LIMIT,
        max_stored_events: int | None = None,
        session_ttl: Duration | None = None,
        app_state_ttl: Duration | None = None,
        user_state_ttl: Duration | None = None,
        refresh_ttl_on_read: bool = False,
        cleanup_interval: Duration = DEFAULT_CLEANUP_INTERVAL,
        soft_delete: bool = True,
        soft_delete_retention: Duration = DEFAULT_SOFT_DELETE_RETENTION,
        async_persist: bool = False,
        persist_workers: int = DEFAULT_PERSIST_WORKERS,
        persist_queue_size: int = DEFAULT_PERSIST_QUEUE_SIZE,
        summarizer: Summarizer | None = None,
        summary_workers: int = DEFAULT_SUMMARY_WORKERS,
        summary_queue_size: int = DEFAULT_SUMMARY_QUEUE_SIZE,
        summary_job_timeout: Duration = DEFAULT_SUMMARY_JOB_TIMEOUT,
        summary_queue_full: QueueFullPolicy = "inline",
        append_event_hooks: Sequence[AppendHook] = (),
        get_session_hooks: Sequence[GetSessionHook] = (),
        clock: Clock = utc_now,
        close_timeout: Duration = DEFAULT_CLOSE_TIMEOUT,
        reader_connections: int | None = None,
        read_cache_size: int | None = None,
        max_write_batch: int = DEFAULT_MAX_WRITE_BATCH,
        pool_size: int | None = None,
        prepared_statements: bool | None = None,
        **unknown: Never,
    ) -> None:
        if path is not None:
            if database is not None:
                raise InvalidInputError(
                    "pass the database once: as the first argument or as path=, not both",
                    field="path",
                )
            database = path
        # Options of one backend only are passed on when given, so that the other
        # backend can refuse them by name.
        only: dict[str, Any] = {
            name: value
            for name, value in (
                ("synchronous", synchronous),
                ("reader_connections", reader_connections),
                ("read_cache_size", read_cache_size),
                ("pool_size", pool_size),
                ("prepared_statements", prepared_statements),
            )
            if value is not None
        }
        named = database is None or isinstance(database, (str, os.PathLike))
        self._options: ServiceOptions = parse_options(
            backend=backend_of(database) if named else None,  # type: ignore[arg-type]
            **unknown,
            **only,
            table_prefix=table_prefix,
            create_schema=create_schema,
            busy_timeout=busy_timeout,
            event_limit=event_limit,
            max_stored_events=max_stored_events,
            session_ttl=session_ttl,
            app_state_ttl=app_state_ttl,
            user_state_ttl=user_state_ttl,
            refresh_ttl_on_read=refresh_ttl_on_read,
            cleanup_interval=cleanup_interval,
            soft_delete=soft_delete,
            soft_delete_retention=soft_delete_retention,
            async_persist=async_persist,
            persist_workers=persist_workers,
            persist_queue_size=persist_queue_size,
            summarizer=summarizer,
            summary_workers=summary_workers,
            summary_queue_size=summary_queue_size,
            summary_job_timeout=summary_job_timeout,
            summary_queue_full=summary_queue_full,
            append_event_hooks=append_event_hooks,
            get_session_hooks=get_session_hooks,
            clock=clock,
            close_timeout=close_timeout,
            max_write_batch=max_write_batch,
        )
        if named:
            self._store, self._path = build_storage(database, self._options)  # type: ignore[arg-type]
        else:  # a ready storage object
            self._store, self._path = check_storage(database), display_name(database)
        # Nothing behind the service refers back to it, so that an unclosed service can
        # be garbage-collected (and closed, with a ResourceWarning: see __del__).
        self._now = _checked_clock(self._options.clock)
        self._runtime = ServiceRuntime(self._store, self._options, self._now)
        self._runner = ServiceRunner(
            self._runtime.start,
            self._runtime.stop,
            name=self._path,
            exit_timeout=self._options.close_timeout.total_seconds(),
        )
        # The runtime's parts, under the names tests and debugging sessions reach for.
        self._persister = self._runtime.persister
        self._summaries = self._runtime.summaries
        self._cleaner = self._runtime.cleaner

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
        Works from any event loop, whichever opened the service.

        Raises:
            PersistenceError: accepted events could not be stored (named by id).
        """
        await self._runner.stop()

    async def _ensure_open(self) -> None:
        """Open unless already open or opening (for adapters that open on first use).

        Safe for concurrent callers on any loop: one opens, the others wait for it.
        """
        if self._runner.running:
            return
        try:
            await self._runner.start()
        except ServiceClosedError:
            if self._runner.opening:
                await self._runner.wait_started()
            self._check_open()

    def _close_blocking(self, timeout: float | None = None) -> None:
        """Close from synchronous code in any thread (adapters' sync ``close()``)."""
        self._runner.stop_blocking(timeout)

    def __del__(self) -> None:
        runner = self.__dict__.get("_runner")
        if runner is None or not runner.needs_close:
            return
        warnings.warn(
            f"unclosed {self!r}: closing it in the background. Use `async with "
            "SessionService(...)` or `await service.aclose()`.",
            ResourceWarning,
            source=self,
            stacklevel=1,
        )
        runner.close_unclaimed()

    async def flush(self) -> None:
        """Wait until every accepted event is durable.

        A no-op without ``async_persist`` (appends return once committed).

        Raises:
            PersistenceError: background writes failed since the last flush (their
                event ids are in ``event_ids``); the failures are reported once.
        """
        self._check_open()
        await self._runtime.flush()

    def stats(self) -> ServiceStats:
        """A frozen snapshot of the service's counters and queue depths."""
        return self._runtime.stats()

    async def run_cleanup(self) -> CleanupReport:
        """Run one cleaner pass now: expire, purge, and report what was done."""
        self._check_open()
        return await self._runtime.run_cleanup()

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
            if self._runner.forked:
                raise ServiceClosedError(
                    f"this SessionService ({self._path}) was opened in another process and "
                    "this is a forked child: connections cannot be shared across fork. "
                    "Open a new SessionService in the child process (e.g. in a worker's "
                    "startup hook, after gunicorn --preload forks)"
                )
            raise ServiceClosedError(
                "the SessionService is closed (or not opened yet); use `async with "
                "SessionService(...)` or `await service.open()`"
            )

    # -- sessions -------------------------------------------------------------------

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
        new, temp = new_session(app_name, user_id, session_id, state, agent_id, metadata, self._now)
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
        new, temp = new_session(app_name, user_id, session_id, state, agent_id, metadata, self._now)
        await self._runtime.wait_persisted(new.key)
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
        key = session_key(ctx.app_name, ctx.user_id, ctx.session_id)
        query = event_query(
            ctx.num_recent_events, ctx.after, ctx.branch, default_limit=self._options.event_limit
        )
        await self._runtime.wait_persisted(key)
        now = self._now()
        session = await self._store.get_session(key, query, now=now)
        if session is not None and self._options.refresh_ttl_on_read:
            ttl = self._options.session_ttl
            if ttl is not None:
                await self._store.refresh_expiry(key, now=now)
                session.__dict__["expires_at"] = now + ttl
        return session

    async def _peek_session(
        self, *, app_name: str, user_id: str, session_id: str, num_recent_events: int
    ) -> Session | None:
        """``get_session`` without its hooks and without refreshing the expiry.

        For adapters that read a session as bookkeeping (ADK's listing needs each
        session's last event time), not on the user's behalf.
        """
        self._check_open()
        key = session_key(app_name, user_id, session_id)
        query = event_query(num_recent_events, None, None, default_limit=None)
        await self._runtime.wait_persisted(key)
        return await self._store.get_session(key, query, now=self._now())

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
        check_list_args(app_name, user_id, limit, cursor, max_limit=MAX_LIST_LIMIT)
        return await self._store.list_sessions(
            app_name=app_name, user_id=user_id, limit=limit, cursor=cursor, now=self._now()
        )

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> bool:
        """Delete a session with its events, state and summaries.

        Returns:
            True if a live session was deleted.
        """
        self._check_open()
        key = session_key(app_name, user_id, session_id)
        await self._runtime.wait_persisted(key)
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
        admitted = await self._admit(session, events, expected_version)
        if not admitted:
            return []
        return await self._append(session, admitted, expected_version)

    async def _admit(
        self, session: Session, events: Sequence[Event], expected_version: int | None
    ) -> list[Event]:
        """The events as the append hooks leave them (a hook may drop or replace one)."""
        hooks = self._options.append_event_hooks
        if not hooks:
            return list(events)
        admitted: list[Event] = []

        async def admit(ctx: AppendContext) -> Event:
            admitted.append(ctx.event)
            return ctx.event

        for event in events:
            await run_chain(hooks, AppendContext(self, session, event, expected_version), admit)
        return admitted

    async def _replace_events(self, session: Session, events: Sequence[Event]) -> list[Event]:
        """Replace the session's events with ``events`` in one transaction (for adapters:
        the OpenAI Agents SDK's history compaction). Its state stays; sequences go on
        increasing. Durable on return, also with ``async_persist``.
        """
        self._check_open()
        check_session(session)
        given: object = events
        if not isinstance(given, (list, tuple)):
            raise InvalidInputError("events must be a list of Event", field="events")
        admitted = await self._admit(session, events, None)
        if not admitted:
            await self.clear_events(session)
            return []
        prepared, command = prepare_append(session, admitted, None, self._now)
        if command is None:
            raise InvalidInputError(
                "partial (streaming) events are never stored; a history replacement "
                "needs events to store",
                field="events",
            )
        await self._runtime.wait_persisted(command.key)
        outcome = await self._store.replace_events(command)
        session.events.clear()
        return apply_outcome(session, prepared, outcome, self._options)

    async def _append(
        self, session: Session, events: list[Event], expected_version: int | None
    ) -> list[Event]:
        prepared, command = prepare_append(session, events, expected_version, self._now)
        if command is None:  # streaming chunks: in memory only
            for p in prepared:
                apply_in_memory(session, p, p.event)
            return [p.event for p in prepared]
        outcome = await self._runtime.append(command)
        if outcome is None:  # async_persist: accepted, written later
            return apply_accepted(session, prepared, command.now, self._options)
        return apply_outcome(session, prepared, outcome, self._options)

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
        key = session_key(app_name, user_id, session_id)
        flt = event_filter(
            after_sequence=after_sequence, since=since, until=until, author=author, branch=branch
        )
        check_positive_int(page_size, "page_size")
        return self._iter_events(key, flt, page_size)

    async def _iter_events(
        self, key: SessionKey, flt: EventFilter, page_size: int
    ) -> AsyncIterator[Event]:
        async for event in self._runtime.iter_events(key, flt, page_size, self._check_open):
            yield event

    async def pop_event(self, session: Session) -> Event | None:
        """Remove the session's newest stored event; returns it, or None if there is none.

        Its state delta is not undone.
        """
        self._check_open()
        check_session(session)
        key = session_key(session.app_name, session.user_id, session.id)
        await self._runtime.wait_persisted(key)
        event, write = await self._store.pop_event(key, now=self._now())
        if event is not None:
            session.events[:] = [e for e in session.events if e.id != event.id]
        set_bookkeeping(session, write.version, write.updated_at, self._options)
        return event

    async def clear_events(self, session: Session) -> int:
        """Remove every event of the session (its state stays). Returns how many."""
        self._check_open()
        check_session(session)
        key = session_key(session.app_name, session.user_id, session.id)
        await self._runtime.wait_persisted(key)
        removed, write = await self._store.clear_events(key, now=self._now())
        session.events.clear()
        set_bookkeeping(session, write.version, write.updated_at, self._options)
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
        delta = check_plain_keys(check_json_object(delta, "delta"), allow_empty=False)
        await self._runtime.wait_all_persisted()
        await self._store.update_app_state(app_name, delta, now=self._now())

    async def delete_app_state(self, app_name: str, key: str) -> bool:
        """Remove one app-scoped key; True if it existed."""
        self._check_open()
        app_name = check_text(app_name, "app_name")
        await self._runtime.wait_all_persisted()
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
        delta = check_plain_keys(check_json_object(delta, "delta"), allow_empty=False)
        await self._runtime.wait_all_persisted()
        await self._store.update_user_state(app_name, user_id, delta, now=self._now())

    async def delete_user_state(self, app_name: str, user_id: str, key: str) -> bool:
        """Remove one user-scoped key; True if it existed."""
        self._check_open()
        app_name, user_id = check_text(app_name, "app_name"), check_text(user_id, "user_id")
        await self._runtime.wait_all_persisted()
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
        key = session_key(app_name, user_id, session_id)
        delta = check_plain_keys(check_json_object(delta, "delta"))
        await self._runtime.wait_persisted(key)
        await self._store.update_session_state(key, delta, now=self._now())

    # -- summaries ------------------------------------------------------------------

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
        self._runtime.require_summarizer()
        key, branch = summary_target(session, branch)
        return await self._runtime.enqueue_summary(key, branch, bool(force))

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
        runner = self._runtime.require_summarizer()
        key, branch = summary_target(session, branch)
        summary = await runner.run(key, branch, bool(force))
        if summary is not None:
            session.summaries[summary.branch] = summary
        return summary

    async def get_summary(
        self, *, app_name: str, user_id: str, session_id: str, branch: str = ""
    ) -> Summary | None:
        """The branch's summary, falling back to the whole-session (``""``) summary."""
        self._check_open()
        key = session_key(app_name, user_id, session_id)
        branch = check_text(branch, "branch", allow_empty=True)
        return await self._store.get_summary(key, branch, now=self._now())
