"""Target 3: async-persist append throughput, against the same baselines as target 1.

The workload of target 1 (``sessions`` concurrent tasks, one per session, each awaiting
``append_event`` for its pre-built events one by one, on a fresh file database), but
with ``SessionService(path, async_persist=True)``: ``append_event`` returns once the
event is accepted, and the timer stops when ``await service.flush()`` returns, i.e.
when every event is durable. The baselines are target 1's (``throughput``), measured
again in this run, interleaved with the sessionlite runs.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, ClassVar

from sessionlite import Event, SessionService

from . import throughput
from .rawsqlite import check_stored
from .workloads import append_concurrently, append_workload, create_sessions

_STAT_FIELDS = (
    "events_accepted",
    "events_persisted",
    "persist_failures",
    "persist_retries",
    "write_transactions",
    "write_calls",
)


@dataclasses.dataclass(frozen=True)
class AsyncRun:
    accepted_s: float  # first append to the last append_event returning
    durable_s: float  # first append to flush() returning
    stats: dict[str, float]  # stats() deltas over the timed region


@dataclasses.dataclass(frozen=True)
class AsyncAppendResult(throughput.ThroughputResult):
    runs: list[AsyncRun]

    TARGET_RATIO: ClassVar[float] = 0.6
    TARGET_NAME: ClassVar[str] = "target 3"
    MEASURED_NAME: ClassVar[str] = "sessionlite async"

    @property
    def measured_s(self) -> list[float]:
        """Until every event is durable (flush() returned)."""
        return [run.durable_s for run in self.runs]

    @property
    def accepted_s(self) -> list[float]:
        return [run.accepted_s for run in self.runs]

    @property
    def best_run(self) -> AsyncRun:
        return min(self.runs, key=lambda run: run.durable_s)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.size_json(),
            "sessionlite_async_until_flush": throughput.timings(self.measured_s, self.events),
            "sessionlite_async_until_last_accept": throughput.timings(self.accepted_s, self.events),
            **self.baselines_json(),
            "stats_per_run": [run.stats for run in self.runs],
            "stats_best_run": self.best_run.stats,
        }


async def _sessionlite_once(workload: list[list[Event]], directory: Path) -> AsyncRun:
    async with SessionService(directory / "sessionlite.db", async_persist=True) as service:
        sessions = await create_sessions(service, len(workload), "s")
        before = service.stats()
        start = time.perf_counter()
        await append_concurrently(service, sessions, workload)
        accepted = time.perf_counter() - start
        await service.flush()
        durable = time.perf_counter() - start
        after = service.stats()
    check_stored(directory / "sessionlite.db", sum(len(events) for events in workload))
    stats: dict[str, float] = {
        name: getattr(after, name) - getattr(before, name) for name in _STAT_FIELDS
    }
    transactions = stats["write_transactions"]
    stats["mean_batch_size"] = stats["write_calls"] / transactions if transactions else 0.0
    return AsyncRun(accepted_s=accepted, durable_s=durable, stats=stats)


def run(
    *, sessions: int, events_per_session: int, repeats: int, tmp_root: str | None
) -> AsyncAppendResult:
    """Measure sessionlite (async_persist) and both baselines ``repeats`` times, interleaved."""
    workload = append_workload(sessions, events_per_session, throughput.CONTENT_CHARS)
    runs, serialize, rows_only = throughput.interleaved(
        workload, repeats, tmp_root, _sessionlite_once
    )
    return AsyncAppendResult(
        sessions=sessions,
        events_per_session=events_per_session,
        repeats=repeats,
        runs=runs,
        baseline_serialize_s=serialize,
        baseline_executemany_s=rows_only,
    )


def report(result: AsyncAppendResult) -> list[str]:
    stats = result.best_run.stats
    return result.report_lines(
        f"Target 3: async-persist append throughput — {result.workload_text()}, "
        "SessionService(async_persist=True); timed from the first append to flush() "
        f"returning; best / median of {result.repeats}",
        [
            ("sessionlite append_event + flush (async)", result.measured_s),
            ("  of which: until the last append returned", result.accepted_s),
        ],
        [
            f"  stats() over the timed region (best run): {stats['events_accepted']:,} "
            f"accepted, {stats['events_persisted']:,} persisted, "
            f"{stats['write_transactions']:,} write transactions for {stats['write_calls']:,} "
            f"write calls (mean batch {stats['mean_batch_size']:.1f}), "
            f"{stats['persist_retries']} retries, {stats['persist_failures']} failures"
        ],
    )
