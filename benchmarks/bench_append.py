"""Target 1: durable append throughput, against raw ``sqlite3`` in the same run.

sessionlite: ``sessions`` concurrent tasks, one per session, each awaiting
``append_event`` for its events one by one, on a fresh file database with default
(durable) options. Baselines (``throughput``): the same events inserted by stdlib
``sqlite3`` into sessionlite's ``events`` table in one ``executemany``.
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


@dataclasses.dataclass(frozen=True)
class AppendResult(throughput.ThroughputResult):
    sessionlite_s: list[float]
    write_statistics: tuple[int, int] | None  # (transactions, write calls), best run

    TARGET_RATIO: ClassVar[float] = 0.35
    TARGET_NAME: ClassVar[str] = "target 1"
    MEASURED_NAME: ClassVar[str] = "sessionlite"

    @property
    def measured_s(self) -> list[float]:
        return self.sessionlite_s

    def to_json(self) -> dict[str, Any]:
        stats = self.write_statistics
        return {
            **self.size_json(),
            "sessionlite": throughput.timings(self.sessionlite_s, self.events),
            **self.baselines_json(),
            "write_statistics": None
            if stats is None
            else {"transactions": stats[0], "write_calls": stats[1]},
        }


def _write_statistics(service: SessionService) -> tuple[int, int] | None:
    """The group committer's (transactions, write calls), if this version exposes them."""
    stats = getattr(getattr(service, "_store", None), "write_statistics", None)
    if stats is None:
        return None
    transactions, calls = stats()
    return int(transactions), int(calls)


async def _sessionlite_once(
    workload: list[list[Event]], directory: Path
) -> tuple[float, tuple[int, int] | None]:
    async with SessionService(directory / "sessionlite.db") as service:
        sessions = await create_sessions(service, len(workload), "s")
        before = _write_statistics(service)
        start = time.perf_counter()
        await append_concurrently(service, sessions, workload)
        elapsed = time.perf_counter() - start
        after = _write_statistics(service)
    check_stored(directory / "sessionlite.db", sum(len(events) for events in workload))
    stats = None
    if before is not None and after is not None:
        stats = (after[0] - before[0], after[1] - before[1])
    return elapsed, stats


def run(
    *, sessions: int, events_per_session: int, repeats: int, tmp_root: str | None
) -> AppendResult:
    """Measure sessionlite and both baselines ``repeats`` times each, interleaved."""
    workload = append_workload(sessions, events_per_session, throughput.CONTENT_CHARS)
    runs, serialize, rows_only = throughput.interleaved(
        workload, repeats, tmp_root, _sessionlite_once
    )
    _, best_stats = min(runs, key=lambda run: run[0])
    return AppendResult(
        sessions=sessions,
        events_per_session=events_per_session,
        repeats=repeats,
        sessionlite_s=[elapsed for elapsed, _ in runs],
        baseline_serialize_s=serialize,
        baseline_executemany_s=rows_only,
        write_statistics=best_stats,
    )


def report(result: AppendResult) -> list[str]:
    """Human-readable lines: a table, the PASS/FAIL line, then the extra ratio."""
    extra = []
    if result.write_statistics is not None:
        transactions, calls = result.write_statistics
        per = calls / transactions if transactions else 0.0
        extra.append(
            f"  group commit (best run): {transactions:,} transactions for {calls:,} write "
            f"calls ({per:.1f} calls per transaction)"
        )
    return result.report_lines(
        f"Target 1: durable append throughput — {result.workload_text()}; best / median of "
        f"{result.repeats}",
        [("sessionlite append_event (durable)", result.sessionlite_s)],
        extra,
    )
