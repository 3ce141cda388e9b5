"""What the two append-throughput benchmarks (durable and async) share.

Both time the same workload against the same two ``sqlite3`` baselines, measured in
the same run and interleaved with the sessionlite runs (these machines are noisy), and
report best and median timings and the ratios of their throughputs.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sessionlite import Event

from .workloads import best_and_median

T = TypeVar("T")

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


def ratio(measured: list[float], baseline: list[float]) -> float:
    """Throughput of ``measured`` / throughput of ``baseline``, best run of each."""
    return min(baseline) / min(measured)


def median_ratio(measured: list[float], baseline: list[float]) -> float:
    """The same ratio from the median runs."""
    return statistics.median(baseline) / statistics.median(measured)


def against_baselines(
    measured: list[float],
    serialize: list[float],
    rows_only: list[float],
    events: int,
    target: float,
) -> dict[str, Any]:
    """JSON fields for both baselines: their timings and ``measured``'s ratios to them."""
    return {
        "baseline_sqlite3_serialize_executemany": timings(serialize, events),
        "baseline_sqlite3_executemany_only": timings(rows_only, events),
        "ratio_vs_serialize_executemany": ratio(measured, serialize),
        "median_ratio_vs_serialize_executemany": median_ratio(measured, serialize),
        "ratio_vs_executemany_only": ratio(measured, rows_only),
        "median_ratio_vs_executemany_only": median_ratio(measured, rows_only),
        "target_ratio": target,
        "passed": ratio(measured, serialize) >= target,
    }


def table_row(label: str, values: list[float], events: int) -> str:
    best, median = best_and_median(values)
    return (
        f"  {label:<46} {best:>8.3f} {median:>9.3f} {events / best:>11,.0f} "
        f"{events / median:>12,.0f}"
    )


def ratio_lines(
    label: str,
    name: str,
    measured: list[float],
    serialize: list[float],
    rows_only: list[float],
    target: float,
) -> list[str]:
    """The PASS/FAIL line against the target baseline, then the informative ratio."""
    verdict = "PASS" if ratio(measured, serialize) >= target else "FAIL"
    return [
        f"  {verdict}  {label}: throughput {name} / (sqlite3 serialize + executemany) = "
        f"{ratio(measured, serialize):.3f} best, {median_ratio(measured, serialize):.3f} "
        f"median (target >= {target}, on best)",
        f"  info  not the target: throughput {name} / (sqlite3 executemany only, rows pre-built) = "
        f"{ratio(measured, rows_only):.3f} best, {median_ratio(measured, rows_only):.3f} median",
    ]


def interleaved(
    workload: list[list[Event]],
    repeats: int,
    tmp_root: str | None,
    measure: Callable[[list[list[Event]], Path], T],
    baseline: Callable[[list[list[Event]], Path, bool], float],
) -> tuple[list[T], list[float], list[float]]:
    """``repeats`` rounds of: sessionlite, the serializing baseline, the rows-only one;
    each measurement on fresh database files in a fresh directory."""
    measured: list[T] = []
    serialize: list[float] = []
    rows_only: list[float] = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="sessionlite-bench-", dir=tmp_root) as tmp:
            measured.append(measure(workload, Path(tmp)))
        with tempfile.TemporaryDirectory(prefix="sessionlite-bench-", dir=tmp_root) as tmp:
            serialize.append(baseline(workload, Path(tmp), True))
        with tempfile.TemporaryDirectory(prefix="sessionlite-bench-", dir=tmp_root) as tmp:
            rows_only.append(baseline(workload, Path(tmp), False))
    return measured, serialize, rows_only
