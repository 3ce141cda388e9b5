"""The service's background machinery: storage lifecycle, workers and counters.

:class:`ServiceRuntime` owns what runs behind a :class:`~sessionlite.SessionService`:
the shared :class:`~sessionlite.stats.Counters`, the optional async-persist
:class:`~sessionlite.workers.persister.Persister`, the optional summary job runner and
queue, and the TTL :class:`~sessionlite.workers.cleaner.Cleaner`. It starts them in the
service's task group once the store is open and stops them in an order that lets
accepted work finish before the store closes (see :mod:`sessionlite.lifecycle` for the
task that hosts that group).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable

import anyio
from anyio.abc import TaskGroup

from .config import Clock, ServiceOptions
from .errors import InvalidInputError
from .models import Event
from .stats import CleanupReport, Counters, ServiceStats
from .store.base import (
    AppendCommand,
    AppendOutcome,
    EventFilter,
    SessionKey,
    Storage,
    not_found,
)
from .workers.cleaner import Cleaner
from .workers.persister import Persister
from .workers.summary_jobs import SummaryJobRunner
from .workers.summary_queue import SummaryQueue

__all__ = ["DEFAULT_PAGE_SIZE", "ServiceRuntime"]

DEFAULT_PAGE_SIZE = 500  # events per page for summary jobs


class ServiceRuntime:
    """Background workers of one service, started and stopped around its store.

    Args:
        store: the service's storage; opened by :meth:`start`, closed by :meth:`stop`.
        options: the service's validated options.
        clock: the service's checked clock.
    """

    def __init__(self, store: Storage, options: ServiceOptions, clock: Clock) -> None:
        self.store = store
        self._clock = clock
        self._close_timeout = options.close_timeout
        self.counters = Counters()
        self.persister = (
            Persister(
                store,
                self.counters,
                workers=options.persist_workers,
                queue_size=options.persist_queue_size,
            )
            if options.async_persist
            else None
        )
        self.summary_jobs: SummaryJobRunner | None = None
        self.summaries: SummaryQueue | None = None
        if options.summarizer is not None:
            self.summary_jobs = SummaryJobRunner(
                store,
                options.summarizer,
                self.counters,
                clock,
                timeout=options.summary_job_timeout,
                read_events=self._read_all_events,
                barrier=self.wait_persisted,
            )
            self.summaries = SummaryQueue(
                self.summary_jobs.run,
                self.counters,
                workers=options.summary_workers,
                queue_size=options.summary_queue_size,
                policy=options.summary_queue_full,
            )
        self.cleaner = Cleaner(
            store,
            self.counters,
            clock,
            interval=options.cleanup_interval,
            soft_delete=options.soft_delete,
            retention=options.soft_delete_retention,
        )

    # -- lifecycle ------------------------------------------------------------------

    async def start(self, task_group: TaskGroup) -> None:
        """Open the store, then start the workers in ``task_group``."""
        await self.store.open(task_group)
        if self.persister is not None:
            await self.persister.start(task_group)
        if self.summaries is not None:
            await self.summaries.start(task_group)
        await task_group.start(self.cleaner.run)

    async def stop(self) -> None:
        """Drain the queues (bounded by ``close_timeout``), stop the workers, close the store.

        Raises:
            PersistenceError: accepted events could not be stored (raised only after the
                store is closed, so a failed drain never leaves it open).
        """
        timeout = self._close_timeout
        error: BaseException | None = None
        self.cleaner.stop()
        if self.summaries is not None:
            self.summaries.close()
        if self.persister is not None:
            try:
                await self.persister.close(timeout)
            except Exception as exc:  # reported after the rest is shut down
                error = exc
        if self.summaries is not None:
            with anyio.move_on_after(timeout.total_seconds()):
                await self.summaries.wait_closed()
        await self.store.close()
        if error is not None:
            raise error

    # -- persistence ----------------------------------------------------------------

    async def append(self, command: AppendCommand) -> AppendOutcome | None:
        """Store an append, or with ``async_persist`` queue it, and count it.

        Returns:
            The outcome once the events are written; None when they were only queued
            (``async_persist`` without ``expected_version``).
        """
        count = len(command.events)
        if self.persister is None:
            outcome = await self.store.append(command)
            self.counters.events_accepted += count
            if not outcome.duplicate:
                self.counters.events_persisted += count
            return outcome
        if command.expected_version is not None:
            # The check needs the stored version: wait for this write (queued behind
            # the session's earlier ones, so order is kept).
            waited = await self.persister.submit(command, wait=True)
            assert waited is not None
            self.counters.events_accepted += count
            return waited
        await self.persister.submit(command)
        self.counters.events_accepted += count
        return None

    async def flush(self) -> None:
        """Wait until every accepted event is durable; raise recorded failures."""
        if self.persister is not None:
            await self.persister.flush()

    async def wait_all_persisted(self) -> None:
        """async_persist: direct app/user state writes must not be overtaken by queued
        event deltas to the same scopes, so they wait for the queues to empty."""
        if self.persister is not None:
            await self.persister.wait_idle()

    async def wait_persisted(self, key: SessionKey) -> None:
        """Read-your-writes with async_persist: wait for this session's queued events."""
        if self.persister is not None:
            await self.persister.wait_for(key)

    # -- reading histories ------------------------------------------------------------

    async def iter_events(
        self,
        key: SessionKey,
        flt: EventFilter,
        page_size: int,
        check_open: Callable[[], None] | None = None,
    ) -> AsyncIterator[Event]:
        """A session's events, oldest first, read ``page_size`` at a time.

        ``check_open`` runs before each page (the service's "still open?" check).
        """
        await self.wait_persisted(key)
        first = True
        while True:
            if check_open is not None:
                check_open()
            page = await self.store.read_events(key, flt, limit=page_size, now=self._clock())
            if page is None:
                if first:
                    raise not_found(key)
                return  # deleted while we iterated: stop at what existed
            first = False
            for event in page:
                yield event
            if len(page) < page_size:
                return
            flt = dataclasses.replace(flt, after_sequence=page[-1].sequence)

    def _read_all_events(self, key: SessionKey, flt: EventFilter) -> AsyncIterator[Event]:
        # For summary jobs, which also run while aclose() drains the queue: the store
        # stays open until they are done, so no open-check here.
        return self.iter_events(key, flt, DEFAULT_PAGE_SIZE)

    # -- summaries and cleanup ------------------------------------------------------

    def require_summarizer(self) -> SummaryJobRunner:
        """The summary job runner, or :class:`InvalidInputError` without a summarizer."""
        if self.summary_jobs is None:
            raise InvalidInputError(
                "no summarizer configured; pass SessionService(..., summarizer=...)",
                field="summarizer",
            )
        return self.summary_jobs

    async def enqueue_summary(self, key: SessionKey, branch: str, force: bool) -> bool:
        """Queue a summary job; False when a queued job for the same target absorbed it.

        Call :meth:`require_summarizer` first: without a summarizer there is no queue.
        """
        assert self.summaries is not None
        return await self.summaries.enqueue(key, branch, force)

    async def run_cleanup(self) -> CleanupReport:
        """Run one cleaner pass now, after the events accepted so far are written.

        Like a direct state write, an explicit pass must not overtake queued appends
        (one of them may keep a session alive). The periodic pass does not wait: under
        a steady load the queue is never empty.
        """
        await self.wait_all_persisted()
        return await self.cleaner.run_once()

    # -- observability --------------------------------------------------------------

    def stats(self) -> ServiceStats:
        """A frozen snapshot of the counters and queue depths."""
        c = self.counters
        transactions, calls = self.store.write_statistics()
        cache = self.store.cache_statistics()
        return ServiceStats(
            events_accepted=c.events_accepted,
            events_persisted=c.events_persisted,
            persist_failures=c.persist_failures,
            persist_retries=c.persist_retries,
            persist_queue_depth=0 if self.persister is None else self.persister.queue_depth,
            write_transactions=transactions,
            write_calls=calls,
            mean_batch_size=calls / transactions if transactions else 0.0,
            summary_jobs_queued=c.summary_jobs_queued,
            summary_jobs_done=c.summary_jobs_done,
            summary_jobs_skipped=c.summary_jobs_skipped,
            summary_jobs_timed_out=c.summary_jobs_timed_out,
            summary_jobs_failed=c.summary_jobs_failed,
            summary_jobs_coalesced=c.summary_jobs_coalesced,
            summary_jobs_rejected=c.summary_jobs_rejected,
            summary_jobs_inline=c.summary_jobs_inline,
            summary_queue_depth=0 if self.summaries is None else self.summaries.depth,
            cleanup_runs=c.cleanup_runs,
            cleanup_expired_sessions=c.cleanup_expired_sessions,
            cleanup_purged_sessions=c.cleanup_purged_sessions,
            cleanup_deleted_events=c.cleanup_deleted_events,
            cleanup_expired_state_scopes=c.cleanup_expired_state_scopes,
            **(
                {}
                if cache is None
                else {
                    "read_cache_hits": cache.hits,
                    "read_cache_misses": cache.misses,
                    "read_cache_evictions": cache.evictions,
                    "read_cache_bytes": cache.bytes,
                    "read_cache_sessions": cache.sessions,
                }
            ),
        )
