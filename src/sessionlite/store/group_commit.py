"""What both backends' group-commit writers share: the queue of waiting write calls.

Callers on any loop in any thread put a request (one job, or many for ``run_now``) and
wait on a future of their own loop. The backend's writer takes whole requests, up to
``max_batch`` jobs, runs them as one transaction, and replies to every caller with one
wake-up per loop (:func:`~sessionlite.crossloop.complete_many`). How the writer is woken
and where it runs (SQLite: the writer connection's thread; PostgreSQL: flush tasks on
the store's loop) is each backend's own: :meth:`GroupCommitQueue._wake_locked` and
:meth:`GroupCommitQueue._idle_locked`.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

import anyio

from ..crossloop import Signal, complete_many
from ..errors import ServiceClosedError

__all__ = ["GroupCommitQueue", "Request"]

J = TypeVar("J")


class Request(NamedTuple):
    """One caller's jobs (one for a call, many for ``run_now``) and its future."""

    jobs: Sequence[Any]
    future: asyncio.Future[Any]
    many: bool


class GroupCommitQueue(Generic[J]):
    """Write calls waiting for the next transaction; statistics of those that ran."""

    def __init__(self, *, max_batch: int) -> None:
        self._max_batch = max_batch
        self._signal = Signal(threading.Lock())
        self._pending: collections.deque[Request] = collections.deque()
        self._closed = False
        self.transactions = 0
        self.jobs = 0

    async def submit(self, job: J) -> Any:
        """Run ``job`` in the next transaction; return its result once committed."""
        result = await self._enqueue((job,), many=False)
        if isinstance(result, BaseException):
            raise result
        return result

    async def run_now(self, jobs: Sequence[J]) -> list[Any]:
        """Run independent jobs in the next transaction; their results or errors.

        For batches that are already large (async persistence): one request, one
        future. Shielded: once queued the jobs run, and the caller must learn how.
        """
        with anyio.CancelScope(shield=True):
            results: list[Any] = await self._enqueue(jobs, many=True)
        return results

    async def _enqueue(self, jobs: Sequence[J], *, many: bool) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        with self._signal.lock:
            if self._closed:
                raise ServiceClosedError("the store is closed; nothing was written")
            wake = self._wake_locked()  # may refuse (raise) before anything is queued
            self._pending.append(Request(jobs, future, many))
        if wake is not None:
            wake()
        return await future

    def _wake_locked(self) -> Callable[[], None] | None:
        """With the lock held, as a request is queued: what wakes the writer (called once
        the lock is released), or None if it is awake already."""
        raise NotImplementedError

    def _idle_locked(self) -> None:
        """With the lock held, when the writer found nothing to do."""
        raise NotImplementedError

    def _take(self) -> list[Request] | None:
        """The next batch: whole requests up to ``max_batch`` jobs (at least one)."""
        with self._signal.lock:
            pending = self._pending
            if not pending:
                self._idle_locked()
                return None
            batch = [pending.popleft()]
            size = len(batch[0].jobs)
            while pending and size + len(pending[0].jobs) <= self._max_batch:
                request = pending.popleft()
                size += len(request.jobs)
                batch.append(request)
            return batch

    def _reply(self, batch: Sequence[Request], results: Sequence[Any]) -> None:
        """Give each caller its result(s), in the order of the batch's jobs."""
        self.transactions += 1
        self.jobs += len(results)
        replies = []
        start = 0
        for request in batch:
            end = start + len(request.jobs)
            replies.append(
                (request.future, list(results[start:end]) if request.many else results[start])
            )
            start = end
        complete_many(replies)
