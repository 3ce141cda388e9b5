"""The connection pool, and running its work from any event loop in any thread.

psycopg's async connections and pool belong to the loop they were opened on: here the
service's own loop (see :mod:`sessionlite.lifecycle`). A call awaited on another loop
(another thread, a finished ``asyncio.run``, a sync framework runner) is handed to the
store's loop by :class:`LoopBridge`, and its result comes back to the caller's loop
through :func:`~sessionlite.crossloop.complete`. No call waits for a loop that is
gone: once the store closes, calls fail with :class:`~sessionlite.ServiceClosedError`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from ...crossloop import complete
from ...errors import InvalidInputError, ServiceClosedError

T = TypeVar("T")

_CLOSED = "the store is closed; nothing was done"


def display_name(url: str) -> str:
    """The URL without its password (for messages, warnings and ``repr``)."""
    try:
        parts = conninfo_to_dict(url)
    except Exception:  # psycopg.ProgrammingError, whose message quotes the URL (password)
        raise InvalidInputError(
            "not a valid PostgreSQL URL (expected postgresql://user:password@host:port/dbname"
            "?param=value; the URL is not shown, as it may hold a password)",
            field="database",
        ) from None
    user = str(parts.get("user") or "")
    host = parts.get("host") or "localhost"
    port = parts.get("port")
    address = f"{host}:{port}" if port else str(host)
    return f"postgresql://{user + '@' if user else ''}{address}/{parts.get('dbname') or ''}"


def make_pool(
    url: str, *, size: int, timeout: timedelta, prepared_statements: bool, name: str
) -> AsyncConnectionPool[AsyncConnection[Any]]:
    """A pool of autocommit connections (transactions are explicit ``BEGIN``/``COMMIT``).

    ``prepared_statements=False`` (pgbouncer in transaction mode) stops psycopg from
    preparing statements, which a pooler may route to another server connection.
    """
    return AsyncConnectionPool(
        url,
        min_size=min(2, size),
        max_size=size,
        timeout=timeout.total_seconds(),
        kwargs={"autocommit": True, "prepare_threshold": 2 if prepared_statements else None},
        name=name,
        open=False,
        # A failed connection attempt is retried (with backoff) for as long as a caller
        # waits for a connection, so a server back within busy_timeout serves the calls
        # already waiting; after that the pool gives the attempt up and makes new ones
        # on demand (calls fail with StorageUnavailableError until the server is back).
        reconnect_timeout=max(1.0, timeout.total_seconds()),
    )


class LoopBridge:
    """Runs coroutines on the store's loop for callers on any loop."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def bind(self) -> None:
        """On the store's loop, when it opens."""
        self._loop = asyncio.get_running_loop()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    async def run(self, make: Callable[[], Awaitable[T]]) -> T:
        """``await make()`` on the store's loop; its result or error, on this loop."""
        loop = self._loop
        if loop is None or self._closed:
            raise ServiceClosedError(_CLOSED)
        caller = asyncio.get_running_loop()
        if caller is loop:
            return await make()
        future: asyncio.Future[Any] = caller.create_future()
        task_box: list[asyncio.Task[Any]] = []

        def start() -> None:
            with self._lock:
                if self._closed:
                    complete(future, _Failed(ServiceClosedError(_CLOSED)))
                    return
                task = loop.create_task(_returning(make))
                self._tasks.add(task)
            task_box.append(task)
            task.add_done_callback(lambda t: self._finished(t, future))

        try:
            loop.call_soon_threadsafe(start)
        except RuntimeError:  # the store's loop has closed
            raise ServiceClosedError(_CLOSED) from None
        try:
            result = await future
        except asyncio.CancelledError:
            # The caller gave up: stop the work on the store's loop too.
            loop.call_soon_threadsafe(lambda: [t.cancel() for t in task_box])
            raise
        if isinstance(result, _Failed):
            raise result.error
        return result  # type: ignore[no-any-return]

    def _finished(self, task: asyncio.Task[Any], future: asyncio.Future[Any]) -> None:
        with self._lock:
            self._tasks.discard(task)
        if task.cancelled():
            complete(future, _Failed(ServiceClosedError("the store closed during this call")))
        else:
            complete(future, task.result())

    async def close(self) -> None:
        """On the store's loop: refuse new work and end what is still running."""
        with self._lock:
            self._closed = True
            tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


class _Failed:
    """An error travelling back to the caller's loop as a result."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


async def _returning(make: Callable[[], Awaitable[Any]]) -> Any:
    try:
        return await make()
    except Exception as exc:
        return _Failed(exc)
