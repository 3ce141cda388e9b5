"""Async persistence (``async_persist=True``): accepted events are written in batches.

``append_event`` hands a validated, snapshotted :class:`AppendCommand` to
:meth:`Persister.submit` and returns once it is queued. Each session is routed to one of
``persist_workers`` queues, so its events are written in the order they were accepted;
each worker writes what has gathered in its queue as one batch (one transaction, every
command isolated: see :mod:`sessionlite.store.sqlite.writes`).

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
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..errors import DatabaseLockedError, PersistenceError, ServiceClosedError
from ..stats import Counters
from ..store.base import AppendCommand, AppendOutcome, SessionKey, Storage

logger = logging.getLogger(__name__)

MAX_BATCH = 10_000  # commands per background transaction at most
YIELD_EVERY = 32  # accepted appends between two passes through the event loop
RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8)  # seconds between attempts after a lock error


@dataclasses.dataclass(eq=False)
class _Item:
    command: AppendCommand
    # Set when the caller waits for the write itself (``expected_version`` checks).
    waiter: asyncio.Future[AppendOutcome] | None = None


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
        self._workers = workers
        self._per_worker = max(1, math.ceil(queue_size / workers))
        # Streams are created by start(): a service that never opens owns none.
        self._senders: list[MemoryObjectSendStream[_Item]] = []
        self._receivers: list[MemoryObjectReceiveStream[_Item]] = []
        self._pending: Counter[SessionKey] = Counter()  # accepted, not yet written
        self._progress: anyio.Event | None = None  # events are made in start()
        self._failures: list[_Failure] = []
        self._running = 0
        self._accepted = 0
        self._stopped: anyio.Event | None = None

    # -- lifecycle ------------------------------------------------------------------

    async def start(self, task_group: TaskGroup) -> None:
        self._progress = anyio.Event()
        self._stopped = anyio.Event()
        for _ in range(self._workers):
            send, receive = anyio.create_memory_object_stream[_Item](self._per_worker)
            self._senders.append(send)
            self._receivers.append(receive)
        for index in range(self._workers):
            await task_group.start(self._run, index)

    async def close(self, drain_timeout: timedelta) -> None:
        """Stop accepting, drain the queues (bounded in time), report failures.

        Raises:
            PersistenceError: some accepted events could not be stored (or were still
                queued when ``timeout`` ran out).
        """
        for sender in self._senders:
            sender.close()
        with anyio.move_on_after(drain_timeout.total_seconds()):
            await self._started(self._stopped).wait()
        if self._running:
            left = self._abandon_queued()
            if left:
                logger.error(
                    "sessionlite: %d accepted event(s) were still queued after close_timeout "
                    "(%s) and were not stored",
                    len(left),
                    drain_timeout,
                )
            # Batches already in flight finish (their retries are bounded) so that their
            # outcome is known and reported below, before the store closes.
            await self._started(self._stopped).wait()
        self.raise_failures()

    def _abandon_queued(self) -> list[str]:
        """Take what is still queued (the senders are closed) and report it as failed.

        The receivers stay open: a worker busy with a batch then finds its queue empty
        and ends normally.
        """
        ids: list[str] = []
        for receiver in self._receivers:
            while True:
                try:
                    item = receiver.receive_nowait()
                except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                    break
                error = ServiceClosedError("the service closed before this event was written")
                self._fail(item, error, log=False)  # logged once, by close()
                ids.extend(p.event.id for p in item.command.events)
        self._notify()
        return ids

    # -- accepting ------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        """Append calls accepted but not yet written (an append_events call counts once)."""
        return sum(self._pending.values())

    def _route(self, key: SessionKey) -> int:
        return hash(key) % len(self._senders)

    async def submit(self, command: AppendCommand, *, wait: bool = False) -> AppendOutcome | None:
        """Queue ``command`` (waiting while the queue is full); with ``wait``, also wait
        for its write and return its outcome (errors are raised to the caller then)."""
        waiter = asyncio.get_running_loop().create_future() if wait else None
        # Counted before sending so a worker that writes it at once finds it counted.
        self._pending[command.key] += 1
        sender = self._senders[self._route(command.key)]
        item = _Item(command, waiter)
        try:
            try:
                # Room in the queue: accept without a trip through the event loop...
                sender.send_nowait(item)
            except anyio.WouldBlock:
                await sender.send(item)  # full: wait for room (backpressure)
            else:
                # ...but let other tasks (the writers among them) run now and then, so
                # a caller appending in a tight loop cannot starve them. Shielded: the
                # event is accepted, so cancelling here would only mislead the caller.
                self._accepted += 1
                if self._accepted % YIELD_EVERY == 0:
                    await anyio.lowlevel.cancel_shielded_checkpoint()
        except BaseException as exc:  # closed, or the caller was cancelled while waiting
            self._pending[command.key] -= 1
            if self._pending[command.key] <= 0:
                del self._pending[command.key]
            if isinstance(exc, (anyio.ClosedResourceError, anyio.BrokenResourceError)):
                raise ServiceClosedError(
                    "the service is closed; the event was not accepted"
                ) from None
            raise
        if waiter is None:
            return None
        outcome: AppendOutcome = await waiter
        return outcome

    async def wait_for(self, key: SessionKey) -> None:
        """Wait until every event accepted so far for ``key`` has been written (or failed)."""
        while self._pending.get(key, 0) > 0:
            await self._started(self._progress).wait()

    async def flush(self) -> None:
        """Wait until everything accepted so far is written; raise recorded failures."""
        await self.wait_idle()
        self.raise_failures()

    async def wait_idle(self) -> None:
        """Wait until everything accepted so far is written (or failed)."""
        while self.queue_depth > 0:
            await self._started(self._progress).wait()

    def raise_failures(self) -> None:
        if not self._failures:
            return
        failures, self._failures = self._failures, []
        ids = [event_id for failure in failures for event_id in failure.event_ids]
        first = failures[0].error
        raise PersistenceError(
            f"{len(ids)} accepted event(s) could not be stored (first error: "
            f"{type(first).__name__}: {first}); see event_ids",
            event_ids=ids,
        ) from first

    # -- the workers ----------------------------------------------------------------

    async def _run(self, index: int, *, task_status: TaskStatus[None]) -> None:
        receiver = self._receivers[index]
        self._running += 1
        task_status.started()
        try:
            async for first in receiver:
                batch = [first]
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(receiver.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                await self._write(batch)
        finally:
            self._running -= 1
            if not self._running:
                self._started(self._stopped).set()
                for stream in self._receivers:
                    stream.close()

    async def _write(self, batch: list[_Item]) -> None:
        todo = batch
        try:
            for delay in (*RETRY_DELAYS, None):
                results = await self._attempt(todo)
                retry = []
                for item, result in zip(todo, results, strict=True):
                    if isinstance(result, DatabaseLockedError) and delay is not None:
                        retry.append(item)
                    elif isinstance(result, BaseException):
                        self._fail(item, result)
                    else:
                        self._succeed(item, result)
                todo = retry
                if not retry:
                    break
                self._counters.persist_retries += 1
                logger.warning("sessionlite: database locked; retrying %d write(s)", len(retry))
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
        if item.waiter is not None and not item.waiter.done():
            item.waiter.set_result(outcome)

    def _fail(self, item: _Item, error: BaseException, *, log: bool = True) -> None:
        self._done(item)
        if item.waiter is not None:
            # The caller is waiting for this write: it gets the error itself.
            if not item.waiter.done():
                item.waiter.set_exception(error)
            return
        ids = tuple(p.event.id for p in item.command.events)
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
        key = item.command.key
        self._pending[key] -= 1
        if self._pending[key] <= 0:
            del self._pending[key]

    def _notify(self) -> None:
        self._started(self._progress).set()
        self._progress = anyio.Event()

    @staticmethod
    def _started(event: anyio.Event | None) -> anyio.Event:
        if event is None:
            raise ServiceClosedError("the service is not open")
        return event
