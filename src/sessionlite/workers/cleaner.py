"""The TTL cleaner: ``run_once`` is one pass; ``run`` repeats it every interval.

The policy (what is expired or due for purging at time t) lives in SQL that takes t as a
parameter; this module only decides when to look and adds up what the steps did.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import anyio
from anyio.abc import TaskStatus

from ..config import Clock
from ..stats import CleanupReport, Counters
from ..store.base import Storage

logger = logging.getLogger(__name__)


class Cleaner:
    def __init__(
        self,
        store: Storage,
        counters: Counters,
        clock: Clock,
        *,
        interval: timedelta,
        soft_delete: bool,
        retention: timedelta,
    ) -> None:
        self._store = store
        self._counters = counters
        self._clock = clock
        self._interval = interval
        self._soft_delete = soft_delete
        self._retention = retention
        self._scope: anyio.CancelScope | None = None  # made in run(), inside the loop
        self._stopped = False

    async def run_once(self) -> CleanupReport:
        """One pass: look (cheaply), then work in small transactions until done."""
        now = self._clock()
        # Without soft delete, deleted rows have no retention: purge them at once.
        purge_before = now - self._retention if self._soft_delete else now
        if not await self._store.has_cleanup_work(now=now, purge_before=purge_before):
            return CleanupReport()
        totals = dict.fromkeys(
            (
                "expired_sessions",
                "purged_sessions",
                "deleted_events",
                "expired_app_states",
                "expired_user_states",
                "deleted_state_keys",
            ),
            0,
        )
        transactions = 0
        while True:
            step = await self._store.cleanup_step(now=now, purge_before=purge_before)
            transactions += 1
            if not step.did_work:
                break
            for name in totals:
                totals[name] += getattr(step, name)
        report = CleanupReport(ran=True, transactions=transactions, **totals)
        self._counters.add_cleanup(report)
        return report

    def stop(self) -> None:
        """Stop the periodic loop (a pass in progress is cancelled between steps)."""
        self._stopped = True
        if self._scope is not None:
            self._scope.cancel()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        with anyio.CancelScope() as self._scope:
            task_status.started()
            if not self._stopped:
                await self._loop()

    async def _loop(self) -> None:
        while True:
            await anyio.sleep(self._interval.total_seconds())
            try:
                report = await self.run_once()
            except anyio.get_cancelled_exc_class():
                raise
            except Exception:
                logger.exception("sessionlite: cleanup pass failed; will retry next interval")
            else:
                if report.ran:
                    logger.info("sessionlite: cleanup pass: %s", report)
