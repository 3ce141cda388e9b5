"""What the two append-throughput targets (1: durable, 3: async) share.

Both time the same workload against the same two ``sqlite3`` baselines, measured in
the same run and interleaved with the sessionlite runs (these machines are noisy), and
report best and median timings and the ratios of their throughputs.

The baselines insert the workload's events with stdlib ``sqlite3`` into sessionlite's own
``events`` table (created by its migrations), in one ``executemany`` and one transaction,
with WAL and ``synchronous=NORMAL`` (sessionlite's default): either including the JSON
serialization of every event body (the Python ceiling) or with the rows pre-built.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from sessionlite import Event

from . import rawsqlite
from .workloads import best_and_median, temp_dir

T = TypeVar("T")

CONTENT_CHARS = 500
TABLE_HEADER = (
    f"  {'measurement':<46} {'best s':>8} {'median s':>9} {'best ev/s':>11} {'median ev/s':>12}"
)


def timings(values: list[float], events: int) -> dict[str, Any]:
    """JSON summary of repeated timings of ``events`` events."""
    best, median = best_and_median(values)
    return {
        "runs_s": values,
        "best_s": best,
        "median_s": median,
        "best_events_per_s": events / best,
        "median_events_per_s": events / median,
    }


def table_row(label: str, values: list[float], events: int) -> str:
    best, median = best_and_median(values)
    return (
        f"  {label:<46} {best:>8.3f} {median:>9.3f} {events / best:>11,.0f} "
        f"{events / median:>12,.0f}"
    )


# -- the baselines -------------------------------------------------------------------


def _rows(workload: list[list[Event]]) -> list[tuple[Any, ...]]:
    return [
        rawsqlite.event_row(session_pk, sequence, event)
        for session_pk, events in enumerate(workload, start=1)
        for sequence, event in enumerate(events, start=1)
    ]


def baseline_once(workload: list[list[Event]], directory: Path, serialize: bool) -> float:
    """One baseline measurement: the workload's rows into a fresh file, one executemany."""
    conn = rawsqlite.connect(directory / f"baseline-{'serialize' if serialize else 'rows'}.db")
    try:
        prebuilt = [] if serialize else _rows(workload)
        start = time.perf_counter()
        rows = _rows(workload) if serialize else prebuilt  # building the rows is timed or not
        rawsqlite.write(conn, rawsqlite.INSERT_EVENT, rows)
        return time.perf_counter() - start
    finally:
        conn.close()


def interleaved(
    workload: list[list[Event]],
    repeats: int,
    tmp_root: str | None,
    measure: Callable[[list[list[Event]], Path], Coroutine[Any, Any, T]],
) -> tuple[list[T], list[float], list[float]]:
    """``repeats`` rounds of: sessionlite (``measure``), the serializing baseline, the
    rows-only one; each measurement on fresh database files in a fresh directory."""
    measured: list[T] = []
    serialize: list[float] = []
    rows_only: list[float] = []
    for _ in range(repeats):
        with temp_dir(tmp_root) as tmp:
            measured.append(asyncio.run(measure(workload, tmp)))
        with temp_dir(tmp_root) as tmp:
            serialize.append(baseline_once(workload, tmp, True))
        with temp_dir(tmp_root) as tmp:
            rows_only.append(baseline_once(workload, tmp, False))
    return measured, serialize, rows_only


# -- results -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ThroughputResult:
    """A target measured against both baselines; subclasses say what ``measured_s`` is."""

    sessions: int
    events_per_session: int
    repeats: int
    baseline_serialize_s: list[float]
    baseline_executemany_s: list[float]

    TARGET_RATIO: ClassVar[float]
    TARGET_NAME: ClassVar[str]  # "target 1"
    MEASURED_NAME: ClassVar[str]  # what is measured, in the ratio lines

    @property
    def measured_s(self) -> list[float]:
        raise NotImplementedError

    @property
    def events(self) -> int:
        return self.sessions * self.events_per_session

    def ratio(self, baseline: list[float]) -> float:
        """Measured throughput / baseline throughput, best run of each."""
        return min(baseline) / min(self.measured_s)

    def median_ratio(self, baseline: list[float]) -> float:
        """The same ratio from the median runs."""
        return statistics.median(baseline) / statistics.median(self.measured_s)

    @property
    def passed(self) -> bool:
        return self.ratio(self.baseline_serialize_s) >= self.TARGET_RATIO

    def size_json(self) -> dict[str, Any]:
        return {
            "sessions": self.sessions,
            "events_per_session": self.events_per_session,
            "events": self.events,
            "repeats": self.repeats,
        }

    def baselines_json(self) -> dict[str, Any]:
        """Both baselines' timings and the measured ratios to them."""
        serialize, rows_only = self.baseline_serialize_s, self.baseline_executemany_s
        return {
            "baseline_sqlite3_serialize_executemany": timings(serialize, self.events),
            "baseline_sqlite3_executemany_only": timings(rows_only, self.events),
            "ratio_vs_serialize_executemany": self.ratio(serialize),
            "median_ratio_vs_serialize_executemany": self.median_ratio(serialize),
            "ratio_vs_executemany_only": self.ratio(rows_only),
            "median_ratio_vs_executemany_only": self.median_ratio(rows_only),
            "target_ratio": self.TARGET_RATIO,
            "passed": self.passed,
        }

    def workload_text(self) -> str:
        return (
            f"{self.sessions} sessions x {self.events_per_session} events ({self.events:,} "
            f"events, ~{CONTENT_CHARS}-char content), {self.sessions} concurrent tasks"
        )

    def report_lines(
        self, title: str, rows: list[tuple[str, list[float]]], extra: list[str]
    ) -> list[str]:
        """The title, the table (``rows`` then both baselines), ``extra``, then the
        PASS/FAIL line against the target baseline and the informative ratio."""
        serialize, rows_only = self.baseline_serialize_s, self.baseline_executemany_s
        rows = [
            *rows,
            ("sqlite3 serialize + executemany (baseline)", serialize),
            ("sqlite3 executemany only, rows pre-built", rows_only),
        ]
        verdict = "PASS" if self.passed else "FAIL"
        return [
            title,
            TABLE_HEADER,
            *(table_row(label, values, self.events) for label, values in rows),
            *extra,
            f"  {verdict}  {self.TARGET_NAME}: throughput {self.MEASURED_NAME} / (sqlite3 "
            f"serialize + executemany) = {self.ratio(serialize):.3f} best, "
            f"{self.median_ratio(serialize):.3f} median (target >= {self.TARGET_RATIO}, on best)",
            f"  info  not the target: throughput {self.MEASURED_NAME} / (sqlite3 executemany "
            f"only, rows pre-built) = {self.ratio(rows_only):.3f} best, "
            f"{self.median_ratio(rows_only):.3f} median",
        ]
