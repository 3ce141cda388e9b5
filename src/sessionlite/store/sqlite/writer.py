"""Group commit: concurrent write calls share one transaction and one commit.

Callers put a job on an unbounded stream (it never holds more jobs than there are
callers waiting on them) and wait for their own result. One task takes whatever has
gathered while the previous transaction ran (up to ``max_batch`` jobs), runs them as a
single transaction in the writer connection's thread (see :mod:`.writes`), and hands
each caller its result. A caller's await returns only after COMMIT.

Results travel on asyncio futures rather than ``anyio.Event``: aiosqlite already ties
the store to asyncio, and a future per write is several times cheaper on this hot path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import TaskStatus

from ...errors import ServiceClosedError
from .connection import ThreadConnection
from .errors import translate
from .queries import Queries
from .writes import Job, execute_batch


@dataclasses.dataclass(eq=False)
class _Request:
    """One caller's jobs (``submit``: one; ``submit_many``: a whole background batch)."""

    jobs: Sequence[Job]
    future: asyncio.Future[Any]
    many: bool = False


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
        self._send, self._receive = anyio.create_memory_object_stream[_Request](math.inf)
        self._stopped = anyio.Event()
        self.transactions = 0
        self.jobs = 0

    def _enqueue(self, jobs: Sequence[Job], *, many: bool = False) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        try:
            self._send.send_nowait(_Request(jobs, future, many))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise ServiceClosedError("the store is closed; nothing was written") from None
        return future

    async def submit(self, job: Job) -> Any:
        """Run ``job`` in the next transaction; return its result once committed."""
        result = await self._enqueue([job])
        if isinstance(result, BaseException):
            raise result
        return result

    async def submit_many(self, jobs: Sequence[Job]) -> list[Any]:
        """Run independent jobs in the next transaction; their results or errors, in order.

        One request for the lot: a background batch of a thousand appends costs one
        future, not a thousand.
        """
        results: list[Any] = await self._enqueue(jobs, many=True)
        return results

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            task_status.started()
            async for first in self._receive:
                batch = [first]
                self._drain_into(batch)
                # Let callers that are ready to run submit too, as long as more arrive:
                # the batch grows with the load, with no timer and no added latency
                # beyond one pass of the event loop.
                while len(batch) < self._max_batch:
                    before = len(batch)
                    await anyio.lowlevel.checkpoint()
                    self._drain_into(batch)
                    if len(batch) == before:
                        break
                # Shielded: once the SQL is in the thread it runs to its end anyway,
                # and its callers must learn whether it committed.
                with anyio.CancelScope(shield=True):
                    await self._run_batch(batch)
        finally:
            # Cancelled (the service's owner was): callers still waiting learn their
            # write never ran, rather than waiting forever.
            self._fail_pending()
            self._receive.close()
            self._stopped.set()

    def _drain_into(self, batch: list[_Request], limit: float | None = None) -> None:
        limit = self._max_batch if limit is None else limit
        try:
            while len(batch) < limit:
                batch.append(self._receive.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
            pass

    def _fail_pending(self) -> None:
        pending: list[_Request] = []
        self._drain_into(pending, limit=math.inf)
        for request in pending:
            error = ServiceClosedError(
                "the service stopped before this write ran; nothing was stored"
            )
            _resolve(request.future, [error] * len(request.jobs) if request.many else error)

    async def _run_batch(self, batch: list[_Request]) -> None:
        jobs = [job for request in batch for job in request.jobs]
        try:
            results = await self._connection.run(execute_batch, self._queries, jobs)
        except Exception as exc:
            results = [exc] * len(jobs)
        self.transactions += 1
        self.jobs += len(jobs)
        results = [
            translate(result, self._path) if isinstance(result, BaseException) else result
            for result in results
        ]
        start = 0
        for request in batch:
            end = start + len(request.jobs)
            _resolve(request.future, results[start:end] if request.many else results[start])
            start = end

    async def close(self) -> None:
        """Stop taking jobs; return once every submitted job has its result."""
        self._send.close()
        await self._stopped.wait()
