"""Group commit: concurrent write calls share one transaction and one commit.

Callers put a job on an unbounded queue (it never holds more jobs than there are
callers waiting on them) and wait for their own result. One task takes whatever has
gathered while the previous transaction ran (up to ``max_batch`` jobs), runs them as a
single transaction in the writer connection's thread (see :mod:`.writes`), and hands
each caller its result. A caller's await returns only after COMMIT. Batches that are
already large (async persistence) skip the gathering: :meth:`GroupCommitWriter.run_now`.

Results travel on asyncio futures rather than ``anyio.Event``: aiosqlite already ties
the store to asyncio, and a future per write is several times cheaper on this hot path.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from typing import Any, NamedTuple

import anyio
import anyio.lowlevel
from anyio.abc import TaskStatus

from ...errors import ServiceClosedError
from .connection import ThreadConnection
from .errors import translate
from .queries import Queries
from .writes import Job, execute_batch


class _Request(NamedTuple):
    """One caller's job and the future its result goes to."""

    job: Job
    future: asyncio.Future[Any]


def _resolve(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():  # a caller cancelled while waiting has its future cancelled
        future.set_result(result)


class GroupCommitWriter:
    """Owns the writer connection's transactions; run :meth:`run` in a task group."""

    def __init__(
        self, connection: ThreadConnection, queries: Queries, *, path: str, max_batch: int
    ) -> None:
        self._connection = connection
        self._queries = queries
        self._path = path
        self._max_batch = max_batch
        # Plain deque and future rather than a memory stream: this is every durable
        # write's path, and these are several times cheaper per call.
        self._pending: collections.deque[_Request] = collections.deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._stopped = anyio.Event()
        self._closed = False
        self.transactions = 0
        self.jobs = 0

    async def submit(self, job: Job) -> Any:
        """Run ``job`` in the next transaction; return its result once committed."""
        if self._closed:
            raise ServiceClosedError("the store is closed; nothing was written")
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Request(job, future))
        self._wake()
        result = await future
        if isinstance(result, BaseException):
            raise result
        return result

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def run_now(self, jobs: Sequence[Job]) -> list[Any]:
        """Run independent jobs as one transaction right away; their results or errors.

        For batches that are already large (async persistence): they skip the
        gathering pass of :meth:`run`, which costs a trip through the event loop, and
        when the loop is busy that trip is what bounds throughput. Transactions still
        run one at a time, in order, in the connection's thread.
        """
        if self._closed:
            raise ServiceClosedError("the store is closed; nothing was written")
        with anyio.CancelScope(shield=True):
            results = await self._execute(jobs)
        return results  # noqa: RET504 - out of the with block, for mypy

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            task_status.started()
            while True:
                if not self._pending:
                    if self._closed:
                        break
                    self._wakeup = asyncio.get_running_loop().create_future()
                    await self._wakeup
                    continue
                batch = self._take(self._max_batch)
                # Let callers that are ready to run submit too, as long as more arrive:
                # the batch grows with the load, with no timer and no added latency
                # beyond one pass of the event loop.
                while len(batch) < self._max_batch:
                    before = len(batch)
                    await anyio.lowlevel.checkpoint()
                    batch.extend(self._take(self._max_batch - len(batch)))
                    if len(batch) == before:
                        break
                # Shielded: once the SQL is in the thread it runs to its end anyway,
                # and its callers must learn whether it committed.
                with anyio.CancelScope(shield=True):
                    await self._run_batch(batch)
        finally:
            # Cancelled (the service's owner was): callers still waiting learn their
            # write never ran, rather than waiting forever.
            self._closed = True
            for request in self._take(len(self._pending)):
                error = ServiceClosedError(
                    "the service stopped before this write ran; nothing was stored"
                )
                _resolve(request.future, error)
            self._stopped.set()

    def _take(self, limit: int) -> list[_Request]:
        pending = self._pending
        return [pending.popleft() for _ in range(min(limit, len(pending)))]

    async def _execute(self, jobs: Sequence[Job]) -> list[Any]:
        try:
            results = await self._connection.run(execute_batch, self._queries, jobs)
        except Exception as exc:
            results = [exc] * len(jobs)
        self.transactions += 1
        self.jobs += len(jobs)
        return [
            translate(result, self._path) if isinstance(result, BaseException) else result
            for result in results
        ]

    async def _run_batch(self, batch: list[_Request]) -> None:
        results = await self._execute([request.job for request in batch])
        for request, result in zip(batch, results, strict=True):
            _resolve(request.future, result)

    async def close(self) -> None:
        """Stop taking jobs; return once every submitted job has its result."""
        self._closed = True
        self._wake()
        await self._stopped.wait()
