"""Async persistence (``async_persist=True``): accepted events are written in batches.

``append_event`` hands a validated, snapshotted :class:`AppendCommand` to
:meth:`Persister.submit` and returns once it is queued. Each session is routed to one of
``persist_workers`` queues, so its events are written in the order they were accepted;
each worker writes what has gathered in its queue as one batch (one transaction, every
command isolated: see :mod:`sessionlite.store.sqlite.writes`).

Callers may be on any event loop in any thread; the workers are tasks on the service's
own loop. Queues and counts are guarded by one lock and waits are cross-loop
(:mod:`sessionlite.crossloop`).

Nothing is dropped silently: queues are bounded (a full queue makes ``submit`` wait),
transient lock errors are retried, and any other failure is logged, counted and raised
by the next :meth:`flush` (or :meth:`close`) as :class:`PersistenceError` naming the
events that were not stored.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import threading
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup, TaskStatus

from ..crossloop import CrossLoopQueue, Signal, complete
from ..errors import PersistenceError, ServiceClosedError
from ..stats import Counters
from ..store.base import AppendCommand, AppendOutcome, SessionKey, Storage

logger = logging.getLogger(__name__)

MAX_BATCH = 10_000  # commands per background transaction at most
YIELD_EVERY = 32  # accepted appends between two passes through the event loop
# Seconds between attempts after a transient error (a lock held by another process, a
# database server restarting): doubling up to 2 s, for about a minute in all, so a
# PostgreSQL restart or failover does not turn accepted events into failures.
RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, *([2.0] * 27))


@dataclasses.dataclass(eq=False)
class _Item:
    command: AppendCommand
    # Set when the caller waits for the write itself (``expected_version`` checks).
    waiter: asyncio.Future[AppendOutcome | BaseException] | None = None


@dataclasses.dataclass(frozen=True)
class _Failure:
    event_ids: tuple[str, ...]
    error: BaseException


class Persister:
    """The async-persistence worker pool; start it with :meth:`start` in a task group."""

    def __init__(
        self, store: Storage, counters: Counters, *, workers: int, queue_size: int
    ) -> None:
        self._store = store
        self._counters = counters
        per_worker = max(1, math.ceil(queue_size / workers))
        # One lock for the queues, the counts and the failures, so that a waiter's
        # check ("nothing pending for this session") sees them in step.
        self._lock = threading.Lock()
        self._progress = Signal(self._lock)
        self._queues = [CrossLoopQueue[_Item](per_worker, self._lock) for _ in range(workers)]
        self._pending: Counter[SessionKey] = Counter()  # accepted, not yet written
        self._depth = 0
        self._failures: list[_Failure] = []
        self._running = 0
        self._accepted = 0

    # -- lifecycle ------------------------------------------------------------------

    async def start(self, task_group: TaskGroup) -> None:
        for index in range(len(self._queues)):
            await task_group.start(self._run, index)

    async def close(self, drain_timeout: timedelta) -> None:
        """Stop accepting, drain the queues (bounded in time), report failures.

        Raises:
            PersistenceError: some accepted events could not be stored (or were still
                queued when ``timeout`` ran out).
        """
        for queue in self._queues:
            queue.close()
        with anyio.move_on_after(drain_timeout.total_seconds()):
            await self._progress.wait_until(lambda: not self._running)
        left = self.abandon_queued()
        if left:
            logger.error(
                "sessionlite: %d accepted event(s) were still queued after close_timeout "
                "(%s) and were not stored",
                len(left),
                drain_timeout,
            )
        # Batches already in flight finish (their retries are bounded) so that their
        # outcome is known and reported below, before the store closes.
        await self._progress.wait_until(lambda: not self._running)
        self.raise_failures()

    def abandon_queued(self) -> list[str]:
        """Take what is still queued and record it as failed (not logged here); its ids.

        The queues stay as they are: a worker busy with a batch then finds its queue
        empty and ends normally.
        """
        ids: list[str] = []
        for queue in self._queues:
            for item in queue.take_all():
                error = ServiceClosedError("the service closed before this event was written")
                self._fail(item, error, log=False)
                ids.extend(p.event.id for p in item.command.events)
        self._notify()
        return ids

    # -- accepting ------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        """Append calls accepted but not yet written (an append_events call counts once)."""
        return self._depth

    async def submit(self, command: AppendCommand, *, wait: bool = False) -> AppendOutcome | None:
        """Queue ``command`` (waiting while the queue is full); with ``wait``, also wait
        for its write and return its outcome (errors are raised to the caller then)."""
        key = command.key
        waiter: asyncio.Future[AppendOutcome | BaseException] | None = (
            asyncio.get_running_loop().create_future() if wait else None
        )
        item = _Item(command, waiter)
        queue = self._queues[hash(key) % len(self._queues)]
        with self._lock:
            # Counted before queueing so a worker that writes it at once finds it counted.
            self._count(key, 1)
        try:
            # Room in the queue: accept without a trip through the event loop...
            if not queue.put_nowait(item):
                await queue.put(item)  # full: wait for room (backpressure)
            else:
                # ...but let other tasks (the writers among them) run now and then, so
                # a caller appending in a tight loop cannot starve them. Shielded: the
                # event is accepted, so cancelling here would only mislead the caller.
                self._accepted += 1
                if self._accepted % YIELD_EVERY == 0:
                    await anyio.lowlevel.cancel_shielded_checkpoint()
        except BaseException:  # closed, or the caller was cancelled while waiting
            with self._lock:
                self._count(key, -1)
                self._progress.notify_all()
            raise
        if waiter is None:
            return None
        outcome = await waiter
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _count(self, key: SessionKey, change: int) -> None:
        # With the lock held.
        self._depth += change
        left = self._pending[key] + change
        if left > 0:
            self._pending[key] = left
        else:
            del self._pending[key]

    async def wait_for(self, key: SessionKey) -> None:
        """Wait until every event accepted so far for ``key`` has been written (or failed)."""
        if key in self._pending:
            await self._progress.wait_until(lambda: key not in self._pending)

    async def flush(self) -> None:
        """Wait until everything accepted so far is written; raise recorded failures."""
        await self.wait_idle()
        self.raise_failures()

    async def wait_idle(self) -> None:
        """Wait until everything accepted so far is written (or failed)."""
        if self._depth:
            await self._progress.wait_until(lambda: not self._depth)

    def raise_failures(self) -> None:
        with self._lock:
            failures, self._failures = self._failures, []
        if not failures:
            return
        ids = [event_id for failure in failures for event_id in failure.event_ids]
        first = failures[0].error
        raise PersistenceError(
            f"{len(ids)} accepted event(s) could not be stored (first error: "
            f"{type(first).__name__}: {first}); see event_ids",
            event_ids=ids,
        ) from first

    # -- the workers ----------------------------------------------------------------

    async def _run(self, index: int, *, task_status: TaskStatus[None]) -> None:
        queue = self._queues[index]
        with self._lock:
            self._running += 1
        task_status.started()
        try:
            while batch := await queue.get_batch(MAX_BATCH):
                await self._write(batch)
        finally:
            with self._lock:
                self._running -= 1
                self._progress.notify_all()

    async def _write(self, batch: list[_Item]) -> None:
        todo = batch
        try:
            for delay in (*RETRY_DELAYS, None):
                results = await self._attempt(todo)
                retry = []
                for item, result in zip(todo, results, strict=True):
                    if delay is not None and self._store.is_transient(result):
                        retry.append(item)
                    elif isinstance(result, BaseException):
                        self._fail(item, result)
                    else:
                        self._succeed(item, result)
                todo = retry
                if not retry:
                    break
                self._counters.persist_retries += 1
                logger.warning(
                    "sessionlite: transient storage error; retrying %d write(s)", len(retry)
                )
                await anyio.sleep(delay or 0)
        finally:
            # Cancelled while waiting to retry (the service is shutting down): what was
            # not written is reported, never forgotten.
            for item in todo:
                self._fail(item, ServiceClosedError("the service closed before this write"))
            self._notify()

    async def _attempt(self, items: Sequence[_Item]) -> list[AppendOutcome | Exception]:
        # Shielded: once sent, the transaction runs to its end anyway, and its outcome
        # decides what is reported.
        results: list[AppendOutcome | Exception]
        with anyio.CancelScope(shield=True):
            try:
                results = await self._store.append_batch([item.command for item in items])
            except Exception as exc:
                results = [exc] * len(items)
        return results

    def _succeed(self, item: _Item, outcome: AppendOutcome) -> None:
        self._done(item)
        if not outcome.duplicate:
            self._counters.events_persisted += len(outcome.events)
        if item.waiter is not None:
            complete(item.waiter, outcome)

    def _fail(self, item: _Item, error: BaseException, *, log: bool = True) -> None:
        self._done(item)
        if item.waiter is not None:
            # The caller is waiting for this write: it gets the error itself.
            complete(item.waiter, error)
            return
        ids = tuple(p.event.id for p in item.command.events)
        with self._lock:
            self._failures.append(_Failure(ids, error))
        self._counters.persist_failures += len(ids)
        if not log:
            return
        logger.error(
            "sessionlite: background write of %d event(s) to session %r failed: %s",
            len(ids),
            item.command.key.session_id,
            error,
        )

    def _done(self, item: _Item) -> None:
        with self._lock:
            self._count(item.command.key, -1)

    def _notify(self) -> None:
        with self._lock:
            self._progress.notify_all()
