"""Target 3: async-persist append throughput, against the same baselines as target 1.

The workload of target 1 (``sessions`` concurrent tasks, one per session, each awaiting
``append_event`` for its pre-built events one by one, on a fresh file database), but
with ``SessionService(path, async_persist=True)``: ``append_event`` returns once the
event is accepted, and the timer stops when ``await service.flush()`` returns, i.e.
when every event is durable. The baselines are target 1's (``bench_append``), measured
again in this run, interleaved with the sessionlite runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

from sessionlite import Event, SessionService

from . import throughput
from .bench_append import CONTENT_CHARS, _check_stored, baseline_once
from .workloads import APP_NAME, USER_ID, append_workload

TARGET_RATIO = 0.6

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
class AsyncAppendResult:
    sessions: int
    events_per_session: int
    repeats: int
    runs: list[AsyncRun]
    baseline_serialize_s: list[float]
    baseline_executemany_s: list[float]

    @property
    def events(self) -> int:
        return self.sessions * self.events_per_session

    @property
    def durable_s(self) -> list[float]:
        return [run.durable_s for run in self.runs]

    @property
    def accepted_s(self) -> list[float]:
        return [run.accepted_s for run in self.runs]

    @property
    def best_run(self) -> AsyncRun:
        return min(self.runs, key=lambda run: run.durable_s)

    def ratio(self, baseline: list[float]) -> float:
        """Throughput to durability / baseline throughput, best run of each."""
        return throughput.ratio(self.durable_s, baseline)

    def median_ratio(self, baseline: list[float]) -> float:
        return throughput.median_ratio(self.durable_s, baseline)

    @property
    def passed(self) -> bool:
        return self.ratio(self.baseline_serialize_s) >= TARGET_RATIO

    def to_json(self) -> dict[str, Any]:
        n = self.events
        return {
            "sessions": self.sessions,
            "events_per_session": self.events_per_session,
            "events": n,
            "repeats": self.repeats,
            "sessionlite_async_until_flush": throughput.timings(self.durable_s, n),
            "sessionlite_async_until_last_accept": throughput.timings(self.accepted_s, n),
            **throughput.against_baselines(
                self.durable_s,
                self.baseline_serialize_s,
                self.baseline_executemany_s,
                n,
                TARGET_RATIO,
            ),
            "stats_per_run": [run.stats for run in self.runs],
            "stats_best_run": self.best_run.stats,
        }


async def _sessionlite_once(workload: list[list[Event]], directory: Path) -> AsyncRun:
    async with SessionService(directory / "sessionlite.db", async_persist=True) as service:
        sessions = [
            await service.create_session(app_name=APP_NAME, user_id=USER_ID, session_id=f"s{i}")
            for i in range(len(workload))
        ]
        before = service.stats()

        async def writer(index: int) -> None:
            session = sessions[index]
            for event in workload[index]:
                await service.append_event(session, event)

        start = time.perf_counter()
        await asyncio.gather(*(writer(i) for i in range(len(workload))))
        accepted = time.perf_counter() - start
        await service.flush()
        durable = time.perf_counter() - start
        after = service.stats()
    _check_stored(directory / "sessionlite.db", sum(len(events) for events in workload))
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
    workload = append_workload(sessions, events_per_session, CONTENT_CHARS)

    def measure(workload: list[list[Event]], directory: Path) -> AsyncRun:
        return asyncio.run(_sessionlite_once(workload, directory))

    runs, serialize, rows_only = throughput.interleaved(
        workload, repeats, tmp_root, measure, baseline_once
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
    n = result.events
    stats = result.best_run.stats
    return [
        f"Target 3: async-persist append throughput — {result.sessions} sessions x "
        f"{result.events_per_session} events ({n:,} events, ~{CONTENT_CHARS}-char content), "
        f"{result.sessions} concurrent tasks, SessionService(async_persist=True); timed from "
        f"the first append to flush() returning; best / median of {result.repeats}",
        throughput.TABLE_HEADER,
        throughput.table_row("sessionlite append_event + flush (async)", result.durable_s, n),
        throughput.table_row("  of which: until the last append returned", result.accepted_s, n),
        throughput.table_row(
            "sqlite3 serialize + executemany (baseline)", result.baseline_serialize_s, n
        ),
        throughput.table_row(
            "sqlite3 executemany only, rows pre-built", result.baseline_executemany_s, n
        ),
        f"  stats() over the timed region (best run): {stats['events_accepted']:,} accepted, "
        f"{stats['events_persisted']:,} persisted, {stats['write_transactions']:,} write "
        f"transactions for {stats['write_calls']:,} write calls (mean batch "
        f"{stats['mean_batch_size']:.1f}), {stats['persist_retries']} retries, "
        f"{stats['persist_failures']} failures",
        *throughput.ratio_lines(
            "target 3",
            "sessionlite async",
            result.durable_s,
            result.baseline_serialize_s,
            result.baseline_executemany_s,
            TARGET_RATIO,
        ),
    ]
