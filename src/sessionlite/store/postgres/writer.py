"""Group commit on PostgreSQL: concurrent appends share a few transactions.

Appends are queued from any loop in any thread; a few flush tasks on the store's loop
each take what is queued (up to ``max_write_batch`` appends) and run it as one
transaction on a pooled connection (:func:`.writes.execute_appends`). While every flush
task is busy, new appends gather, so batches grow with load, as on SQLite. Results reach
each caller's own loop (:func:`~sessionlite.crossloop.complete_many`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup
from psycopg_pool import AsyncConnectionPool

from ...crossloop import complete_many
from ...errors import ServiceClosedError, StorageUnavailableError
from ..appends import AppendJob
from ..group_commit import GroupCommitQueue, Request
from .errors import translate
from .queries import Queries
from .writes import execute_appends


class GroupCommitWriter(GroupCommitQueue[AppendJob]):
    """Batches appends into transactions on the pool, from any loop in any thread."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        queries: Queries,
        *,
        where: str,
        max_batch: int,
        flushers: int,
        lock_timeout_ms: int,
        on_unavailable: Callable[[], None],
    ) -> None:
        super().__init__(max_batch=max_batch)
        self._pool = pool
        self._queries = queries
        self._where = where
        self._flushers = flushers
        self._lock_timeout_ms = lock_timeout_ms
        self._on_unavailable = on_unavailable
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._signalled = False
        self._running = 0

    def start(self, task_group: TaskGroup) -> None:
        """On the store's loop: start the flush tasks."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._running = self._flushers
        for _ in range(self._flushers):
            task_group.start_soon(self._flush)

    def _wake_locked(self) -> Callable[[], None] | None:
        if self._loop is None:
            raise ServiceClosedError("the store is closed; nothing was written")
        if self._signalled:
            return None
        self._signalled = True
        return self._wake_flushers

    def _idle_locked(self) -> None:
        self._signalled = False
        assert self._wake is not None
        self._wake.clear()

    def _wake_flushers(self) -> None:
        loop, event = self._loop, self._wake
        assert loop is not None
        assert event is not None
        try:
            loop.call_soon_threadsafe(event.set)
        except RuntimeError:  # the store's loop has closed: nothing can run any more
            self._fail_pending(ServiceClosedError("the store is closed; nothing was written"))

    def _fail_pending(self, error: BaseException) -> None:
        with self._signal.lock:
            requests = list(self._pending)
            self._pending.clear()
        complete_many([(r.future, [error] * len(r.jobs) if r.many else error) for r in requests])

    async def _flush(self) -> None:
        assert self._wake is not None
        try:
            while True:
                batch = self._take()
                if batch is None:
                    if self._closed:
                        return
                    await self._wake.wait()
                    continue
                with anyio.CancelScope(shield=True):
                    await self._run(batch)
        finally:
            with self._signal.lock:
                self._running -= 1
                self._signal.notify_all()

    async def _run(self, batch: list[Request]) -> None:
        jobs = [job for request in batch for job in request.jobs]
        try:
            async with self._pool.connection() as conn:
                results = await execute_appends(conn, self._queries, self._lock_timeout_ms, jobs)
        except BaseException as exc:  # never lost in the task: each caller gets it
            results = [exc] * len(jobs)
        results = [
            translate(r, self._where) if isinstance(r, BaseException) else r for r in results
        ]
        if any(isinstance(r, StorageUnavailableError) for r in results):
            self._on_unavailable()
        self._reply(batch, results)

    async def close(self) -> None:
        """Stop taking appends; return once every queued one has its result."""
        with self._signal.lock:
            self._closed = True
        if self._loop is None:
            return
        assert self._wake is not None
        self._wake.set()
        with anyio.CancelScope(shield=True):
            await self._signal.wait_until(lambda: self._running == 0)
