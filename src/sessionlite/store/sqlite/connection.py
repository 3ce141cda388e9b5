"""aiosqlite connections that run whole transactions in their thread, and a reader pool.

aiosqlite gives each connection a worker thread and ships every call there. Shipping
each statement separately costs a thread hop per statement, so we ship whole
transactions instead: a synchronous function ``fn(sqlite3.Connection, *args)`` runs in
the connection's thread in one hop. aiosqlite has no public API for that, so this is
the one module that uses its internals (the worker queue ``_tx``, ``_thread`` and
``_conn``; pinned range in pyproject, checked by ``tests/test_store_internals.py``).

Two things differ from aiosqlite's own calls, both so that a service can be awaited from
any event loop in any thread (see :mod:`sessionlite.crossloop`):

- results reach the caller's loop through :func:`~sessionlite.crossloop.complete`, which
  forgets a caller whose loop has closed meanwhile (aiosqlite's worker thread would die
  on that ``RuntimeError`` and leave the connection hanging);
- worker threads are daemon threads: an unclosed service never keeps the interpreter
  alive (the service's exit hook finishes its work first, see :mod:`sessionlite.lifecycle`).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import aiosqlite

from ...crossloop import complete
from ...errors import ServiceClosedError
from .errors import is_transient, translate

T = TypeVar("T")

MIN_SQLITE_VERSION = (3, 35, 0)  # RETURNING and row-value comparisons
CACHED_STATEMENTS = 256
_WAL_RETRY_PAUSE = 0.005  # seconds between attempts to switch a new file to WAL


class ThreadConnection:
    """One aiosqlite connection; :meth:`run` executes a sync function in its thread."""

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self._conn = conn
        self._path = path

    @classmethod
    async def open(
        cls,
        target: str,
        *,
        path: str,
        uri: bool,
        busy_timeout: timedelta,
        synchronous: str,
        wal: bool,
        query_only: bool = False,
    ) -> ThreadConnection:
        """Connect and apply the pragmas (autocommit mode: we issue BEGIN ourselves)."""
        raw = aiosqlite.connect(
            target,
            uri=uri,
            isolation_level=None,
            timeout=busy_timeout.total_seconds(),
            # Room for the multi-row statements of every size (see bulk.py) next to
            # the rest, so none is prepared again.
            cached_statements=CACHED_STATEMENTS,
        )
        raw._thread.daemon = True  # started by the await below
        try:
            aio = await raw
        except sqlite3.Error as exc:
            raise translate(exc, path) from exc
        connection = cls(aio, path)
        try:
            await connection.run(_configure, busy_timeout, synchronous, wal, query_only)
        except BaseException:
            await connection.close()
            raise
        return connection

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(sqlite3_connection, *args)`` in the connection's thread, one hop.

        sqlite errors are translated to :class:`~sessionlite.StorageError` subclasses.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.run_detached(_call_into, fn, args, future)
        result = await future
        if isinstance(result, _Raised):
            error = result.error
            if isinstance(error, sqlite3.Error):
                raise translate(error, self._path) from error
            raise error
        return result  # type: ignore[no-any-return]

    def run_detached(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(sqlite3_connection, *args)`` for the connection's thread; no result.

        ``fn`` must not raise (the thread would only log it); it reports its own outcome.
        """
        aio = self._conn
        if not aio._running:
            raise ServiceClosedError("the connection is closed; nothing was run")
        aio._tx.put_nowait((None, lambda: fn(aio._conn, *args)))

    async def close(self) -> None:
        try:
            await self._conn.close()
        except sqlite3.Error:  # closing a broken connection: nothing left to save
            pass


class _Raised:
    """An exception travelling back as a result (so the thread never raises)."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _call_into(
    conn: sqlite3.Connection,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    future: asyncio.Future[Any],
) -> None:
    try:
        result = fn(conn, *args)
    except BaseException as exc:  # handed to the caller, never lost in the thread
        result = _Raised(exc)
    complete(future, result)


def _configure(
    conn: sqlite3.Connection,
    busy_timeout: timedelta,
    synchronous: str,
    wal: bool,
    query_only: bool,
) -> None:
    if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
        raise sqlite3.NotSupportedError(
            f"SQLite {sqlite3.sqlite_version} is too old; sessionlite needs "
            f"{'.'.join(map(str, MIN_SQLITE_VERSION))} or newer"
        )
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout.total_seconds() * 1000)}")
    if wal:
        mode = _enable_wal(conn, busy_timeout)
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"could not enable WAL (journal_mode is {mode})")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    if query_only:
        conn.execute("PRAGMA query_only = 1")


def _enable_wal(conn: sqlite3.Connection, busy_timeout: timedelta) -> str:
    """Switch to WAL, retrying while another connection holds the lock.

    Changing the journal mode of a brand-new file needs an exclusive lock, and SQLite
    reports contention there at once instead of calling the busy handler; several
    processes opening one new file at the same moment would otherwise fail.
    """
    deadline = time.monotonic() + busy_timeout.total_seconds()
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if not is_transient(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(_WAL_RETRY_PAUSE)  # in the connection's own thread, not the loop


class ReaderPool:
    """A few connections for reads; each read goes to the least busy one.

    No semaphore or free list: a connection's thread runs its queued reads one after
    another, and the pool is used from any loop in any thread (the busy counts are a
    load-balancing hint, so an occasional lost update under a thread switch is harmless).
    """

    def __init__(self, connections: list[ThreadConnection]) -> None:
        self._all = list(connections)
        self._busy = [0] * len(connections)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        busy = self._busy
        index = busy.index(min(busy))
        busy[index] += 1
        try:
            return await self._all[index].run(fn, *args)
        finally:
            busy[index] -= 1

    async def close(self, *, keep: ThreadConnection | None = None) -> None:
        for connection in self._all:
            if connection is not keep:
                await connection.close()
