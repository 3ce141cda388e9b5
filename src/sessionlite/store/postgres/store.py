"""The PostgreSQL backend: a psycopg 3 connection pool, group commit for appends.

Several servers may share one database: every write locks the rows it changes (sessions
first, in ``pk`` order), so per-session sequences stay gap-free across processes; schema
changes and cleaner steps take advisory locks. See ``docs/how-to/postgresql.md``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from anyio.abc import TaskGroup
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import JsonValue

from ...config import ServiceOptions
from ...errors import ServiceClosedError, StorageUnavailableError
from ...models import Event, Session, SessionPage, Summary
from ...timestamps import to_micros
from ..appends import AppendJob
from ..base import (
    AppendCommand,
    AppendOutcome,
    CleanupStep,
    EventFilter,
    EventQuery,
    NewSession,
    SessionKey,
    SessionWrite,
)
from ..rules import Retention, append_outcome
from . import cleanup, reads, schema, writes
from .connection import LoopBridge, display_name, make_pool
from .errors import is_transient, map_db_errors
from .queries import Queries
from .writer import GroupCommitWriter

T = TypeVar("T")
Conn = AsyncConnection[Any]


class PostgresStore:
    """Implements :class:`~sessionlite.store.base.Storage` on a PostgreSQL database."""

    def __init__(self, url: str, options: ServiceOptions) -> None:
        self.url = url
        self.path = display_name(url)  # how the service names its database
        self._options = options
        self._queries = Queries.for_prefix(options.table_prefix, Retention.from_options(options))
        self._lock_timeout_ms = max(1, int(options.busy_timeout.total_seconds() * 1000))
        self._bridge = LoopBridge()
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._writer: GroupCommitWriter | None = None
        self._checks: set[asyncio.Task[Any]] = set()

    # -- lifecycle ------------------------------------------------------------------

    async def open(self, task_group: TaskGroup) -> None:
        """Connect, create or check the schema, and start the group-commit flushers."""
        options = self._options
        pool = make_pool(
            self.url,
            size=options.pool_size,
            timeout=options.busy_timeout,
            prepared_statements=options.prepared_statements,
            name=f"sessionlite {self.path}",
        )
        try:
            with map_db_errors(self.path):
                await pool.open(wait=True, timeout=max(1.0, options.busy_timeout.total_seconds()))
                async with pool.connection() as conn:
                    if options.create_schema:
                        await schema.migrate(conn, options.table_prefix, self.path)
                    else:
                        await schema.verify(conn, options.table_prefix, self.path)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        self._bridge.bind()
        self._writer = GroupCommitWriter(
            pool,
            self._queries,
            where=self.path,
            max_batch=options.max_write_batch,
            flushers=max(1, min(4, options.pool_size // 2)),
            lock_timeout_ms=self._lock_timeout_ms,
            on_unavailable=self._check_connections,
        )
        self._writer.start(task_group)

    async def close(self) -> None:
        """Finish every queued append, then close the pool."""
        if self._writer is not None:
            await self._writer.close()
        await self._bridge.close()
        for task in list(self._checks):
            task.cancel()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def write_statistics(self) -> tuple[int, int]:
        """(transactions committed, appends they carried) by the group committer."""
        if self._writer is None:
            return (0, 0)
        return (self._writer.transactions, self._writer.jobs)

    def cache_statistics(self) -> None:
        """No read cache: a remote server's commits cannot be seen without a round trip,
        so every read asks the server (one pipelined round trip)."""
        return

    def is_transient(self, error: object) -> bool:
        """Lock timeouts, deadlocks, serialization failures and lost connections."""
        return isinstance(error, BaseException) and is_transient(error)

    # -- running work on the store's loop --------------------------------------------

    def _check_connections(self) -> None:
        """After a lost connection: have the pool test its idle connections (a restarted
        server leaves them all broken), so the next calls get working ones."""
        loop, pool = self._bridge.loop, self._pool
        if loop is None or pool is None:
            return

        def start() -> None:
            task = loop.create_task(pool.check())
            self._checks.add(task)
            task.add_done_callback(self._checks.discard)

        try:
            loop.call_soon_threadsafe(start)
        except RuntimeError:
            pass  # closed meanwhile

    async def _on_connection(
        self, fn: Callable[..., Awaitable[T]], *args: Any, retry: bool = False
    ) -> T:
        """``fn(conn, queries, *args)`` on a pooled connection, on the store's loop.

        ``retry``: the work is safe to repeat (a read), so a connection found broken
        (a restarted server) is replaced and the work tried once more.
        """

        async def attempt() -> T:
            pool = self._pool
            assert pool is not None
            with map_db_errors(self.path):
                async with pool.connection() as conn:
                    return await fn(conn, self._queries, *args)

        async def run() -> T:
            try:
                return await attempt()
            except StorageUnavailableError as error:
                if not retry or _pool_timeout(error):
                    self._check_connections()
                    raise
            # A broken pooled connection (the server restarted since it was used): after
            # a restart every idle one is broken, so test them all, then try once more.
            pool = self._pool
            assert pool is not None
            await pool.check()
            return await attempt()

        return await self._bridge.run(run)

    async def _read(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        return await self._on_connection(fn, *args, retry=True)

    async def _write(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        return await self._on_connection(writes.in_transaction, self._lock_timeout_ms, fn, *args)

    def _require_writer(self) -> GroupCommitWriter:
        if self._writer is None:
            raise ServiceClosedError("the store is not open")
        return self._writer

    # -- sessions -------------------------------------------------------------------

    async def create_session(self, new: NewSession, *, event_limit: int | None) -> Session:
        session: Session
        session, _ = await self._write(writes.create_session, new, event_limit, False)
        return session

    async def get_or_create_session(
        self, new: NewSession, *, event_limit: int | None
    ) -> tuple[Session, bool]:
        return await self._write(writes.create_session, new, event_limit, True)

    async def get_session(
        self, key: SessionKey, query: EventQuery, *, now: datetime
    ) -> Session | None:
        return await self._read(reads.get_session, key, query, to_micros(now))

    async def list_sessions(
        self,
        *,
        app_name: str,
        user_id: str | None,
        limit: int,
        cursor: str | None,
        now: datetime,
    ) -> SessionPage:
        return await self._read(
            reads.list_sessions, app_name, user_id, limit, cursor, to_micros(now)
        )

    async def delete_session(self, key: SessionKey, *, now: datetime) -> bool:
        return await self._write(writes.delete_session, key, to_micros(now))

    # -- events ---------------------------------------------------------------------

    async def append(self, command: AppendCommand) -> AppendOutcome:
        result = await self._require_writer().submit(AppendJob.build(command))
        return append_outcome(command, result)

    async def append_batch(
        self, commands: Sequence[AppendCommand]
    ) -> list[AppendOutcome | Exception]:
        jobs = [AppendJob.build(command) for command in commands]
        results = await self._require_writer().run_now(jobs)
        return [
            result if isinstance(result, Exception) else append_outcome(command, result)
            for command, result in zip(commands, results, strict=True)
        ]

    async def replace_events(self, command: AppendCommand) -> AppendOutcome:
        result = await self._write(writes.replace_events, AppendJob.build(command))
        return append_outcome(command, result)

    async def read_events(
        self, key: SessionKey, flt: EventFilter, *, limit: int, now: datetime
    ) -> list[Event] | None:
        return await self._read(reads.read_events, key, flt, limit, to_micros(now))

    async def pop_event(
        self, key: SessionKey, *, now: datetime
    ) -> tuple[Event | None, SessionWrite]:
        return await self._write(writes.pop_event, key, to_micros(now))

    async def clear_events(self, key: SessionKey, *, now: datetime) -> tuple[int, SessionWrite]:
        return await self._write(writes.clear_events, key, to_micros(now))

    # -- state ----------------------------------------------------------------------

    async def update_session_state(
        self, key: SessionKey, delta: dict[str, JsonValue], *, now: datetime
    ) -> SessionWrite:
        return await self._write(writes.update_session_state, key, delta, to_micros(now))

    async def get_app_state(self, app_name: str, *, now: datetime) -> dict[str, JsonValue]:
        return await self._read(reads.get_app_state, app_name, to_micros(now))

    async def update_app_state(
        self, app_name: str, delta: dict[str, JsonValue], *, now: datetime
    ) -> None:
        await self._write(writes.update_app_state, app_name, delta, to_micros(now))

    async def delete_app_state(self, app_name: str, key: str, *, now: datetime) -> bool:
        return await self._write(writes.delete_app_state, app_name, key, to_micros(now))

    async def get_user_state(
        self, app_name: str, user_id: str, *, now: datetime
    ) -> dict[str, JsonValue]:
        return await self._read(reads.get_user_state, app_name, user_id, to_micros(now))

    async def update_user_state(
        self, app_name: str, user_id: str, delta: dict[str, JsonValue], *, now: datetime
    ) -> None:
        await self._write(writes.update_user_state, app_name, user_id, delta, to_micros(now))

    async def delete_user_state(
        self, app_name: str, user_id: str, key: str, *, now: datetime
    ) -> bool:
        return await self._write(writes.delete_user_state, app_name, user_id, key, to_micros(now))

    # -- summaries and retention ----------------------------------------------------

    async def put_summary(self, key: SessionKey, summary: Summary, *, now: datetime) -> bool:
        return await self._write(writes.put_summary, key, summary, to_micros(now))

    async def get_summary(self, key: SessionKey, branch: str, *, now: datetime) -> Summary | None:
        return await self._read(reads.get_summary, key, branch, to_micros(now))

    async def refresh_expiry(self, key: SessionKey, *, now: datetime) -> None:
        await self._write(writes.refresh_expiry, key, to_micros(now))

    async def has_cleanup_work(self, *, now: datetime, purge_before: datetime) -> bool:
        return await self._read(reads.has_cleanup_work, to_micros(now), to_micros(purge_before))

    async def cleanup_step(self, *, now: datetime, purge_before: datetime) -> CleanupStep:
        return await self._write(cleanup.cleanup_step, to_micros(now), to_micros(purge_before))


def _pool_timeout(error: StorageUnavailableError) -> bool:
    """No connection could be had at all (the server is down): retrying would only wait."""
    return isinstance(error.__cause__, PoolTimeout)
