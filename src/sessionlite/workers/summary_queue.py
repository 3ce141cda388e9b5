"""The bounded summary-job queue and its worker pool.

Jobs are keyed by (session, branch): a request for a key that is already queued is
absorbed by that job (its ``force`` flag is OR-ed in). When the queue is full the
``summary_queue_full`` policy decides: ``"inline"`` runs the job in the caller,
``"reject"`` raises :class:`SummaryQueueFullError`.

Each job runs under ``summary_job_timeout``. A job that times out or raises is logged
and counted; it never stops a worker and never touches the stored summary (the result
is written only after the summarizer returned, outside the timeout scope).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskGroup, TaskStatus

from ..crossloop import CrossLoopQueue, Signal
from ..errors import ServiceClosedError, SummaryQueueFullError
from ..models import Summary
from ..stats import Counters
from ..store.base import SessionKey

logger = logging.getLogger(__name__)

JobRunner = Callable[[SessionKey, str, bool], Awaitable["Summary | None"]]


@dataclasses.dataclass(eq=False)
class _Job:
    key: SessionKey
    branch: str
    force: bool


class SummaryQueue:
    """Runs summary jobs in ``workers`` tasks; start it with :meth:`start`."""

    def __init__(
        self,
        run_job: JobRunner,
        counters: Counters,
        *,
        workers: int,
        queue_size: int,
        policy: str,
    ) -> None:
        self._run_job = run_job
        self._counters = counters
        self._workers = workers
        self._policy = policy
        # Any loop enqueues; the workers run on the service's loop. One lock guards the
        # queue, the table of queued jobs and the worker count.
        self._lock = threading.Lock()
        self._queue = CrossLoopQueue[_Job](queue_size, self._lock)
        self._stopped = Signal(self._lock)
        self._queued: dict[tuple[SessionKey, str], _Job] = {}
        self._running = 0

    @property
    def depth(self) -> int:
        return len(self._queued)

    async def start(self, task_group: TaskGroup) -> None:
        for _ in range(self._workers):
            await task_group.start(self._worker)

    def close(self) -> None:
        """Stop accepting; workers finish the queued jobs, then end."""
        self._queue.close()

    async def wait_closed(self) -> None:
        """Wait until the workers have run every queued job and stopped."""
        await self._stopped.wait_until(lambda: not self._running)

    async def enqueue(self, key: SessionKey, branch: str, force: bool) -> bool:
        """Queue a job; False when a queued job for the same session and branch absorbed it."""
        job = _Job(key, branch, force)
        with self._lock:
            queued = self._queued.get((key, branch))
            if queued is not None:
                queued.force = queued.force or force
                self._counters.summary_jobs_coalesced += 1
                return False
            try:
                queued_now = self._queue.put_locked(job)
            except ServiceClosedError:
                raise ServiceClosedError("the service is closed; no summary job queued") from None
            if queued_now:
                self._queued[(key, branch)] = job
                self._counters.summary_jobs_queued += 1
        if not queued_now:
            if self._policy == "reject":
                self._counters.summary_jobs_rejected += 1
                raise SummaryQueueFullError(
                    f"the summary queue is full ({self.depth} jobs); retry later or raise "
                    "summary_queue_size"
                ) from None
            self._counters.summary_jobs_inline += 1
            await self.run_guarded(job)
        return True

    async def _worker(self, *, task_status: TaskStatus[None]) -> None:
        with self._lock:
            self._running += 1
        task_status.started()
        try:
            while batch := await self._queue.get_batch(1):
                (job,) = batch
                with self._lock:
                    # Leaving the queue now: a request arriving while it runs queues
                    # anew (it may concern events this run does not see).
                    self._queued.pop((job.key, job.branch), None)
                await self.run_guarded(job)
        finally:
            with self._lock:
                self._running -= 1
                self._stopped.notify_all()

    async def run_guarded(self, job: _Job) -> None:
        """Run one job; failures are logged and counted, never raised."""
        try:
            await self._run_job(job.key, job.branch, job.force)
        except TimeoutError:
            logger.warning(
                "sessionlite: summary job for session %r branch %r timed out",
                job.key.session_id,
                job.branch,
            )
        except anyio.get_cancelled_exc_class():
            raise
        except Exception:
            logger.exception(
                "sessionlite: summary job for session %r branch %r failed",
                job.key.session_id,
                job.branch,
            )
