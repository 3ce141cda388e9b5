"""aiosqlite connections that run whole transactions in their thread, and a reader pool.

aiosqlite gives each connection a worker thread and ships every call there. Shipping
each statement separately costs a thread hop per statement, so we ship whole
transactions instead: a synchronous function ``fn(sqlite3.Connection, *args)`` runs in
the connection's thread in one hop. aiosqlite has no public API for that, so this is
the one module that uses its ``Connection._execute`` (pinned range in pyproject, checked
by ``tests/test_store_internals.py``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import aiosqlite
import anyio

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
        try:
            result: T = await self._conn._execute(  # type: ignore[no-untyped-call]
                _call, self._conn, fn, args
            )
        except sqlite3.Error as exc:
            raise translate(exc, self._path) from exc
        return result

    async def close(self) -> None:
        try:
            await self._conn.close()
        except sqlite3.Error:  # closing a broken connection: nothing left to save
            pass


def _call(aio: aiosqlite.Connection, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    return fn(aio._conn, *args)


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
    """A few connections for reads; each read takes one, runs in its thread, returns it."""

    def __init__(self, connections: list[ThreadConnection]) -> None:
        self._free = list(connections)
        self._all = list(connections)
        self._available = anyio.Semaphore(len(connections))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        async with self._available:
            connection = self._free.pop()
            try:
                return await connection.run(fn, *args)
            finally:
                self._free.append(connection)

    async def close(self, *, keep: ThreadConnection | None = None) -> None:
        for connection in self._all:
            if connection is not keep:
                await connection.close()
