"""Group commit: concurrent write calls share one transaction and one commit.

Callers put a request on a queue and wait for their own result. The writer
connection's thread drains that queue: it takes whatever has gathered (up to
``max_batch`` jobs), runs it as a single transaction (see :mod:`.writes`), hands each
caller its result, and goes on while more has gathered meanwhile; then it goes idle
until the next request starts it again. A caller's await returns only after COMMIT.

No task and no event loop drives the writer: callers may be on any loop in any thread
(:mod:`sessionlite.crossloop`), and their results reach each loop with one wake-up per
batch. Batches that are already large (async persistence) travel as one request:
:meth:`GroupCommitWriter.run_now`.
"""

from __future__ import annotations

import asyncio
import collections
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any, NamedTuple

import anyio

from ...crossloop import Signal, complete_many
from ...errors import ServiceClosedError
from .cache_keeper import CacheKeeper
from .connection import ThreadConnection
from .errors import translate
from .queries import Queries
from .writes import Job, execute_batch


class _Request(NamedTuple):
    """One caller's jobs (one for a call, many for ``run_now``) and its future."""

    jobs: Sequence[Job]
    future: asyncio.Future[Any]
    many: bool


class GroupCommitWriter:
    """Owns the writer connection's transactions, from any loop in any thread."""

    def __init__(
        self,
        connection: ThreadConnection,
        queries: Queries,
        *,
        path: str,
        max_batch: int,
        keeper: CacheKeeper | None = None,
    ) -> None:
        self._connection = connection
        self._queries = queries
        self._path = path
        self._max_batch = max_batch
        self._keeper = keeper
        self._idle = Signal(threading.Lock())
        self._pending: collections.deque[_Request] = collections.deque()
        self._draining = False
        self._closed = False
        self.transactions = 0
        self.jobs = 0

    async def submit(self, job: Job) -> Any:
        """Run ``job`` in the next transaction; return its result once committed."""
        result = await self._enqueue((job,), many=False)
        if isinstance(result, BaseException):
            raise result
        return result

    async def run_now(self, jobs: Sequence[Job]) -> list[Any]:
        """Run independent jobs in the next transaction; their results or errors.

        For batches that are already large (async persistence): one request, one
        future. Shielded: once queued the jobs run, and the caller must learn how.
        """
        with anyio.CancelScope(shield=True):
            results: list[Any] = await self._enqueue(jobs, many=True)
        return results

    async def _enqueue(self, jobs: Sequence[Job], *, many: bool) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        with self._idle.lock:
            if self._closed:
                raise ServiceClosedError("the store is closed; nothing was written")
            self._pending.append(_Request(jobs, future, many))
            start = not self._draining
            self._draining = True
        if start:
            self._connection.run_detached(self._drain)
        return await future

    def _take(self) -> list[_Request] | None:
        """The next batch: whole requests up to ``max_batch`` jobs (at least one)."""
        with self._idle.lock:
            pending = self._pending
            if not pending:
                self._draining = False
                self._idle.notify_all()
                return None
            batch = [pending.popleft()]
            size = len(batch[0].jobs)
            while pending and size + len(pending[0].jobs) <= self._max_batch:
                request = pending.popleft()
                size += len(request.jobs)
                batch.append(request)
            return batch

    def _drain(self, conn: sqlite3.Connection) -> None:
        """In the connection's thread: run batches until nothing is pending."""
        while (batch := self._take()) is not None:
            jobs = [job for request in batch for job in request.jobs]
            keeper = self._keeper
            try:
                results = execute_batch(
                    conn, self._queries, jobs, None if keeper is None else keeper.on_begin
                )
            except BaseException as exc:  # never lost in the thread: each caller gets it
                results = [exc] * len(jobs)
            if keeper is not None:
                keeper.committed(conn, jobs, results)
            self.transactions += 1
            self.jobs += len(jobs)
            results = [
                translate(r, self._path) if isinstance(r, BaseException) else r for r in results
            ]
            replies = []
            start = 0
            for request in batch:
                end = start + len(request.jobs)
                reply = results[start:end] if request.many else results[start]
                replies.append((request.future, reply))
                start = end
            complete_many(replies)

    @property
    def busy(self) -> bool:
        """Whether a batch is being written (a commit may be under way)."""
        return self._draining

    async def close(self) -> None:
        """Stop taking jobs; return once every submitted job has its result."""
        with self._idle.lock:
            self._closed = True
        with anyio.CancelScope(shield=True):
            await self._idle.wait_until(lambda: not self._draining)
