"""The SQLite backend: WAL, one group-committing writer, a small reader pool."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from anyio.abc import TaskGroup
from pydantic import JsonValue

from ...config import ServiceOptions
from ...errors import DatabaseLockedError, StorageError
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
from ..hot_cache import CacheStats, HotCache
from ..rules import AlreadyStored, Appended, Retention, append_outcome
from . import cleanup, reads, schema, writes
from .cache_keeper import CacheKeeper
from .connection import ReaderPool, ThreadConnection
from .queries import Queries
from .wal_token import MemoryToken, WalToken
from .writer import GroupCommitWriter
from .writes import CallJob

MEMORY = ":memory:"


class SqliteStore:
    """Implements :class:`~sessionlite.store.base.Storage` on one SQLite file.

    ``":memory:"`` uses a single connection for reads and writes: SQLite's shared
    in-memory databases cannot give readers a snapshot while a write is in progress
    (they fail with "database is locked" instead of waiting), so one connection is
    both correct and, without disk I/O, fast enough.
    """

    def __init__(self, path: str, options: ServiceOptions) -> None:
        self.path = path
        self._options = options
        self._queries = Queries.for_prefix(options.table_prefix, Retention.from_options(options))
        self._writer_conn: ThreadConnection | None = None
        self._readers: ReaderPool | None = None
        self._writer: GroupCommitWriter | None = None
        self._token: WalToken | MemoryToken = MemoryToken() if self.in_memory else WalToken(path)
        self._cache = (
            HotCache(max_bytes=options.read_cache_size, max_events=CACHED_EVENTS)
            if options.read_cache_size > 0
            else None
        )

    @property
    def in_memory(self) -> bool:
        return self.path == MEMORY

    # -- lifecycle ------------------------------------------------------------------

    async def open(self, task_group: TaskGroup) -> None:
        """Connect, create or check the schema, and get the group-commit writer ready."""
        try:
            await self._connect()
            assert self._writer_conn is not None
            keeper = None
            if self._cache is not None:
                try:
                    self._token.open()
                except OSError:  # no wal-index to watch: serve every read from the file
                    self._cache = None
                else:
                    self._cache.trusted = self._token.read()
                    keeper = CacheKeeper(self._cache, self._token, self._queries)
            self._writer = GroupCommitWriter(
                self._writer_conn,
                self._queries,
                path=self.path,
                max_batch=self._options.max_write_batch,
                keeper=keeper,
            )
        except BaseException:
            await self._close_connections()
            raise

    async def _connect(self) -> None:
        options = self._options
        if not self.in_memory:
            _check_file_path(self.path)
        target, uri = self.path, False
        self._writer_conn = await ThreadConnection.open(
            target,
            path=self.path,
            uri=uri,
            busy_timeout=options.busy_timeout,
            synchronous=options.synchronous,
            wal=not self.in_memory,
        )
        if options.create_schema:
            await self._writer_conn.run(schema.migrate, options.table_prefix, self.path)
        else:
            await self._writer_conn.run(schema.verify, options.table_prefix, self.path)
        if self.in_memory:
            self._readers = ReaderPool([self._writer_conn])
            return
        readers: list[ThreadConnection] = []
        try:
            for _ in range(options.reader_connections):
                reader = await ThreadConnection.open(
                    target,
                    path=self.path,
                    uri=uri,
                    busy_timeout=options.busy_timeout,
                    synchronous=options.synchronous,
                    wal=False,
                    query_only=True,
                )
                readers.append(reader)
        except BaseException:
            for reader in readers:
                await reader.close()
            raise
        self._readers = ReaderPool(readers)

    async def close(self) -> None:
        """Finish every submitted write, then close the connections."""
        if self._writer is not None:
            await self._writer.close()
        await self._close_connections()

    async def _close_connections(self) -> None:
        if self._readers is not None:
            await self._readers.close(keep=self._writer_conn)
            self._readers = None
        if self._writer_conn is not None:
            await self._writer_conn.close()
            self._writer_conn = None
        self._token.close()  # only now: see WalToken

    # -- helpers --------------------------------------------------------------------

    async def _read(self, fn: Any, *args: Any) -> Any:
        if self._readers is None:
            raise StorageError("the store is not open")
        return await self._readers.run(fn, self._queries, *args)

    async def _write(
        self, fn: Any, *args: Any, cached: Callable[[HotCache], None] | None = None, **kwargs: Any
    ) -> Any:
        """Run a write; ``cached``: what it changes in the read cache (None: anything)."""
        if self._writer is None:
            raise StorageError("the store is not open")
        q = self._queries
        job = CallJob(lambda conn: fn(conn, q, *args, **kwargs), cached)
        return await self._writer.submit(job)

    def cache_statistics(self) -> CacheStats | None:
        return None if self._cache is None else self._cache.stats()

    def write_statistics(self) -> tuple[int, int]:
        """(transactions committed, write calls they carried) by the group committer."""
        if self._writer is None:
            return (0, 0)
        return (self._writer.transactions, self._writer.jobs)

    def is_transient(self, error: object) -> bool:
        """Lock contention with another process outlasting ``busy_timeout``."""
        return isinstance(error, DatabaseLockedError)

    # -- sessions -------------------------------------------------------------------

    async def create_session(self, new: NewSession, *, event_limit: int | None) -> Session:
        session: Session
        session, _ = await self._write(
            writes.create_session, new, event_limit, get_existing=False, cached=_created(new)
        )
        return session

    async def get_or_create_session(
        self, new: NewSession, *, event_limit: int | None
    ) -> tuple[Session, bool]:
        result: tuple[Session, bool] = await self._write(
            writes.create_session, new, event_limit, get_existing=True, cached=_created(new)
        )
        return result

    async def get_session(
        self, key: SessionKey, query: EventQuery, *, now: datetime
    ) -> Session | None:
        now_us = to_micros(now)
        cache = self._cache
        if cache is None:
            session: Session | None = await self._read(reads.get_session, key, query, now_us)
            return session
        token = self._token.read()
        hit = cache.lookup(key, query, now_us, token)
        if hit is not None:
            return hit
        stale = token is not None and token != cache.trusted
        if stale and self._writer is not None and not self._writer.busy:
            cache.adopt(token)  # another process committed: start over from its state
        session, rows, before, after = await self._read(
            reads.get_session_rows, key, query, now_us, self._token.read
        )
        if rows is not None:
            cache.offer(key, rows, before, after)
        return session

    async def list_sessions(
        self,
        *,
        app_name: str,
        user_id: str | None,
        limit: int,
        cursor: str | None,
        now: datetime,
    ) -> SessionPage:
        page: SessionPage = await self._read(
            reads.list_sessions, app_name, user_id, limit, cursor, to_micros(now)
        )
        return page

    async def delete_session(self, key: SessionKey, *, now: datetime) -> bool:
        deleted: bool = await self._write(
            writes.delete_session, key, to_micros(now), cached=_session(key)
        )
        return deleted

    # -- events ---------------------------------------------------------------------

    async def append(self, command: AppendCommand) -> AppendOutcome:
        if self._writer is None:
            raise StorageError("the store is not open")
        result = await self._writer.submit(AppendJob.build(command))
        return append_outcome(command, result)

    async def append_batch(
        self, commands: Sequence[AppendCommand]
    ) -> list[AppendOutcome | Exception]:
        if self._writer is None:
            raise StorageError("the store is not open")
        jobs = [AppendJob.build(command) for command in commands]
        results = await self._writer.run_now(jobs)
        return [
            result if isinstance(result, Exception) else append_outcome(command, result)
            for command, result in zip(commands, results, strict=True)
        ]

    async def replace_events(self, command: AppendCommand) -> AppendOutcome:
        if self._writer is None:
            raise StorageError("the store is not open")
        job = AppendJob.build(command)
        q = self._queries

        def replace(conn: Any) -> Appended | AlreadyStored:
            # One savepoint (see writes.CallJob): a failing append undoes the clear.
            writes.clear_events(conn, q, command.key, job.now_us)
            (result,) = writes.apply_appends(conn, q, [job], careful=True)
            if isinstance(result, Exception):
                raise result
            return result  # type: ignore[no-any-return]

        result = await self._writer.submit(CallJob(replace, _session(command.key)))
        return append_outcome(command, result)

    async def read_events(
        self, key: SessionKey, flt: EventFilter, *, limit: int, now: datetime
    ) -> list[Event] | None:
        events: list[Event] | None = await self._read(
            reads.read_events, key, flt, limit, to_micros(now)
        )
        return events

    async def pop_event(
        self, key: SessionKey, *, now: datetime
    ) -> tuple[Event | None, SessionWrite]:
        result: tuple[Event | None, SessionWrite] = await self._write(
            writes.pop_event, key, to_micros(now), cached=_session(key)
        )
        return result

    async def clear_events(self, key: SessionKey, *, now: datetime) -> tuple[int, SessionWrite]:
        result: tuple[int, SessionWrite] = await self._write(
            writes.clear_events, key, to_micros(now), cached=_session(key)
        )
        return result

    # -- state ----------------------------------------------------------------------

    async def update_session_state(
        self, key: SessionKey, delta: dict[str, JsonValue], *, now: datetime
    ) -> SessionWrite:
        result: SessionWrite = await self._write(
            writes.update_session_state, key, delta, to_micros(now), cached=_session(key)
        )
        return result

    async def get_app_state(self, app_name: str, *, now: datetime) -> dict[str, JsonValue]:
        state: dict[str, JsonValue] = await self._read(
            reads.get_app_state, app_name, to_micros(now)
        )
        return state

    async def update_app_state(
        self, app_name: str, delta: dict[str, JsonValue], *, now: datetime
    ) -> None:
        await self._write(
            writes.update_app_state, app_name, delta, to_micros(now), cached=_scope("app", app_name)
        )

    async def delete_app_state(self, app_name: str, key: str, *, now: datetime) -> bool:
        deleted: bool = await self._write(
            writes.delete_app_state, app_name, key, to_micros(now), cached=_scope("app", app_name)
        )
        return deleted

    async def get_user_state(
        self, app_name: str, user_id: str, *, now: datetime
    ) -> dict[str, JsonValue]:
        state: dict[str, JsonValue] = await self._read(
            reads.get_user_state, app_name, user_id, to_micros(now)
        )
        return state

    async def update_user_state(
        self, app_name: str, user_id: str, delta: dict[str, JsonValue], *, now: datetime
    ) -> None:
        await self._write(
            writes.update_user_state,
            app_name,
            user_id,
            delta,
            to_micros(now),
            cached=_scope("user", app_name, user_id),
        )

    async def delete_user_state(
        self, app_name: str, user_id: str, key: str, *, now: datetime
    ) -> bool:
        deleted: bool = await self._write(
            writes.delete_user_state,
            app_name,
            user_id,
            key,
            to_micros(now),
            cached=_scope("user", app_name, user_id),
        )
        return deleted

    # -- summaries and retention ----------------------------------------------------

    async def put_summary(self, key: SessionKey, summary: Summary, *, now: datetime) -> bool:
        stored: bool = await self._write(
            writes.put_summary, key, summary, to_micros(now), cached=_session(key)
        )
        return stored

    async def get_summary(self, key: SessionKey, branch: str, *, now: datetime) -> Summary | None:
        summary: Summary | None = await self._read(reads.get_summary, key, branch, to_micros(now))
        return summary

    async def refresh_expiry(self, key: SessionKey, *, now: datetime) -> None:
        now_us = to_micros(now)
        policy = self._queries.policy
        expires = policy.expiry(now_us, policy.session_ttl_us)

        def refreshed(cache: HotCache) -> None:
            if expires is not None:
                cache.expiry_refreshed(key, expires)

        await self._write(writes.refresh_expiry, key, now_us, cached=refreshed)

    async def has_cleanup_work(self, *, now: datetime, purge_before: datetime) -> bool:
        found: bool = await self._read(
            reads.has_cleanup_work, to_micros(now), to_micros(purge_before)
        )
        return found

    async def cleanup_step(self, *, now: datetime, purge_before: datetime) -> CleanupStep:
        step: CleanupStep = await self._write(
            cleanup.cleanup_step, to_micros(now), to_micros(purge_before)
        )
        return step


# Events kept per cached session (the newest ones; the byte bound applies as well).
CACHED_EVENTS = 1000


def _session(key: SessionKey) -> Callable[[HotCache], None]:
    """A write that changes one session (and nothing shared)."""
    return lambda cache: cache.drop(key)


def _scope(kind: str, app_name: str, user_id: str = "") -> Callable[[HotCache], None]:
    """A write that changes an app or user state scope."""
    return lambda cache: cache.drop_scope(kind, app_name, user_id)


def _created(new: NewSession) -> Callable[[HotCache], None]:
    """A created session: its key, and the scopes its initial state may write."""
    key = new.key

    def created(cache: HotCache) -> None:
        cache.drop(key)
        cache.drop_scope("app", key.app_name)
        cache.drop_scope("user", key.app_name, key.user_id)

    return created


def _check_file_path(path: str) -> None:
    """Clear errors for paths SQLite would only call "unable to open database file"."""
    target = Path(path)
    if target.is_dir():
        raise StorageError(f"{path} is a directory; pass the path of a database file inside it")
    parent = target.parent
    if not parent.is_dir():
        raise StorageError(f"directory {parent} does not exist; create it first")
    if target.exists() and not os.access(target, os.R_OK | os.W_OK):
        raise StorageError(
            f"{path} is not readable and writable by this process; fix its permissions"
        )
    if not target.exists() and not os.access(parent, os.W_OK):
        raise StorageError(f"cannot create {path}: directory {parent} is not writable")
