"""Target 5: a slow summarizer (2 s per job) does not slow ``append_event``.

For each persistence mode (durable, and ``async_persist=True``) the same append workload
(``sessions`` concurrent tasks, one per session, ``events_per_session`` pre-built events
each) runs on a fresh file database twice, interleaved:

* **without** summaries: a plain ``SessionService``;
* **with** summaries: ``SessionService(summarizer=SlowSummarizer(), ...)`` whose
  ``summarize`` sleeps 2 s, and every task calls ``await service.enqueue_summary(session)``
  after every ``ENQUEUE_EVERY``-th of its events.

Timed: from the first append to the last task finishing (the ``enqueue_summary`` calls
are inside the timed loop: they are on the caller's path); in async mode also until
``flush()`` returns. Each ``append_event`` call is also timed on its own for latency
percentiles. The target is on the loop's throughput: with / without >= 0.9 in both modes
(0.9, not 1.0, is a noise margin: on the 2-CPU machine this was written on, two runs of
the same code often differ by 5-10%). In async mode the ratio of throughput until
``flush()`` returns is also reported (not the target).

Summary options: ``summary_workers`` one per session (so every job
starts at once and the queue never fills: with the default ``summary_queue_full="inline"``
a full queue would run a 2 s job inside ``enqueue_summary``), ``summary_queue_size`` one
slot per session (a queued job per session and branch absorbs later requests, so it
cannot fill either), ``summary_job_timeout=5``. Closing the service waits for the
queued jobs (each 2 s): about 4 s per run with summaries, outside the timed region.

Size: 20 sessions x 400 events (8,000 events). A loop of 20 x 200 events lasted ~0.2 s,
where a single 20-50 ms stall of this machine moves the ratio by 10-25% (best-of-3 ratios
of such runs ranged from 0.73 to 1.10 with the code unchanged). 8,000 events also stay
below the default ``persist_queue_size`` (10,000): in async mode the loop then measures
acceptance, not a full queue's backpressure (at 12,000 events the loop ended whenever the
writer happened to catch up, and its time swung by 30%).

Repeats: closing a service with summaries takes 2-4 s, so the number of interleaved
repeats is adaptive: at least ``MIN_REPEATS``, and more (up to ``MAX_REPEATS``) while the
next one, as long as the longest so far, ends within ``BUDGET_S`` (27 s) of the start, so
the whole measurement, with one short untimed warm-up run per mode, stays under 30 s.
Each variant is judged on its best run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import anyio

from sessionlite import Event, SessionService
from sessionlite.summaries import SummaryRequest

from .rawsqlite import check_stored
from .workloads import append_workload, create_sessions, percentile, temp_dir

TARGET_RATIO = 0.9
CONTENT_CHARS = 500
ENQUEUE_EVERY = 10
SUMMARIZER_SECONDS = 2.0
SUMMARY_JOB_TIMEOUT_S = 5.0
WARMUP_EVENTS = 50  # per session, in the untimed warm-up run
MIN_REPEATS = 2
MAX_REPEATS = 5
BUDGET_S = 27.0  # another repeat starts only if it should end within this (warm-up included)

MODES = ("durable", "async")
VARIANTS = ("without", "with")
# The summary counters of stats() after close (attributes ``summary_jobs_<name>``).
_SUMMARY_STATS = (
    "queued",
    "coalesced",
    "done",
    "skipped",
    "inline",
    "rejected",
    "timed_out",
    "failed",
)


class SlowSummarizer:
    """A summarizer that takes ``seconds`` per job (an LLM call, say)."""

    def __init__(self, seconds: float = SUMMARIZER_SECONDS) -> None:
        self.seconds = seconds
        self.calls = 0

    async def summarize(self, request: SummaryRequest) -> str:
        self.calls += 1
        await anyio.sleep(self.seconds)
        return f"{len(request.events)} events after {request.previous!r:.20}"


@dataclasses.dataclass(frozen=True)
class Run:
    loop_s: float  # first append to the last task returning
    durable_s: float  # ... to flush() returning (== loop_s in durable mode)
    latencies_ns: list[int]  # every append_event call
    enqueue_ns: list[int]  # every enqueue_summary call (with summaries)
    close_s: float
    summary: dict[str, int] | None  # summary counters after close (with summaries)

    def to_json(self, events: int) -> dict[str, Any]:
        ordered = sorted(self.latencies_ns)
        return {
            "loop_s": self.loop_s,
            "durable_s": self.durable_s,
            "loop_events_per_s": events / self.loop_s,
            "durable_events_per_s": events / self.durable_s,
            "append_event_ms": {
                f"p{int(q * 100)}": percentile(ordered, q) / 1e6 for q in (0.5, 0.9, 0.99)
            }
            | {"max": ordered[-1] / 1e6},
            "enqueue_summary_calls": len(self.enqueue_ns),
            "enqueue_summary_total_s": sum(self.enqueue_ns) / 1e9,
            "append_event_total_s": sum(self.latencies_ns) / 1e9,
            "close_s": self.close_s,
            "summary_stats": self.summary,
        }


@dataclasses.dataclass(frozen=True)
class SummaryResult:
    sessions: int
    events_per_session: int
    repeats: int
    runs: dict[str, dict[str, list[Run]]]  # mode -> "without" / "with" -> runs
    elapsed_s: float

    @property
    def events(self) -> int:
        return self.sessions * self.events_per_session

    def best(self, mode: str, variant: str, *, durable: bool = False) -> Run:
        key = (lambda r: r.durable_s) if durable else (lambda r: r.loop_s)
        return min(self.runs[mode][variant], key=key)

    def ratio(self, mode: str, *, durable: bool = False) -> float:
        """Throughput with summaries / without, best run of each."""
        without = self.best(mode, "without", durable=durable)
        with_ = self.best(mode, "with", durable=durable)
        if durable:
            return without.durable_s / with_.durable_s
        return without.loop_s / with_.loop_s

    @property
    def passed(self) -> bool:
        return all(self.ratio(mode) >= TARGET_RATIO for mode in MODES)

    def to_json(self) -> dict[str, Any]:
        return {
            "sessions": self.sessions,
            "events_per_session": self.events_per_session,
            "events": self.events,
            "repeats": self.repeats,
            "enqueue_every": ENQUEUE_EVERY,
            "summarizer_seconds": SUMMARIZER_SECONDS,
            "summary_job_timeout_s": SUMMARY_JOB_TIMEOUT_S,
            "runs": {
                mode: {
                    variant: [run.to_json(self.events) for run in runs]
                    for variant, runs in variants.items()
                }
                for mode, variants in self.runs.items()
            },
            "ratio_with_over_without": {mode: self.ratio(mode) for mode in MODES},
            "ratio_with_over_without_until_flush": {"async": self.ratio("async", durable=True)},
            "target_ratio": TARGET_RATIO,
            "passed": self.passed,
            "elapsed_s": self.elapsed_s,
        }


async def _once(workload: list[list[Event]], path: Path, *, mode: str, summaries: bool) -> Run:
    options: dict[str, Any] = {"async_persist": mode == "async"}
    summarizer = SlowSummarizer() if summaries else None
    if summarizer is not None:
        options.update(
            summarizer=summarizer,
            summary_workers=len(workload),
            summary_queue_size=len(workload),
            summary_job_timeout=SUMMARY_JOB_TIMEOUT_S,
        )
    service = SessionService(path, **options)
    await service.open()
    try:
        sessions = await create_sessions(service, len(workload), "s")
        latencies: list[int] = []
        enqueues: list[int] = []

        async def writer(index: int) -> None:
            session = sessions[index]
            clock = time.perf_counter_ns
            for count, event in enumerate(workload[index], start=1):
                before = clock()
                await service.append_event(session, event)
                latencies.append(clock() - before)
                if summaries and count % ENQUEUE_EVERY == 0:
                    before = clock()
                    await service.enqueue_summary(session)
                    enqueues.append(clock() - before)

        start = time.perf_counter()
        await asyncio.gather(*(writer(i) for i in range(len(workload))))
        loop_s = time.perf_counter() - start
        await service.flush()
        durable_s = time.perf_counter() - start
    finally:
        closing = time.perf_counter()
        await service.aclose()
        close_s = time.perf_counter() - closing
    check_stored(path, sum(len(events) for events in workload))
    summary = None
    if summarizer is not None:
        stats = service.stats()
        summary = {"summarizer_calls": summarizer.calls} | {
            name: getattr(stats, f"summary_jobs_{name}") for name in _SUMMARY_STATS
        }
    return Run(
        loop_s=loop_s,
        durable_s=durable_s,
        latencies_ns=latencies,
        enqueue_ns=enqueues,
        close_s=close_s,
        summary=summary,
    )


def run(
    *,
    sessions: int,
    events_per_session: int,
    min_repeats: int = MIN_REPEATS,
    max_repeats: int = MAX_REPEATS,
    budget_s: float = BUDGET_S,
    tmp_root: str | None,
) -> SummaryResult:
    """Interleaved repeats: at least ``min_repeats``, more while they fit in ``budget_s``."""
    workload = append_workload(sessions, events_per_session, CONTENT_CHARS)
    runs: dict[str, dict[str, list[Run]]] = {mode: {v: [] for v in VARIANTS} for mode in MODES}
    started = time.perf_counter()
    for mode in MODES:  # warm-up (discarded): first-use costs are not the summarizer's
        with temp_dir(tmp_root) as tmp:
            warmup = [events[:WARMUP_EVENTS] for events in workload]
            asyncio.run(_once(warmup, tmp / "warmup.db", mode=mode, summaries=False))
    repeats = 0
    longest = 0.0
    while repeats < max_repeats:
        elapsed = time.perf_counter() - started
        if repeats >= min_repeats and elapsed + longest > budget_s:
            break
        repeat_started = time.perf_counter()
        for mode in MODES:
            for variant in VARIANTS:
                with temp_dir(tmp_root) as tmp:
                    path = tmp / "sessionlite.db"
                    run_ = asyncio.run(
                        _once(workload, path, mode=mode, summaries=variant == "with")
                    )
                runs[mode][variant].append(run_)
        repeats += 1
        longest = max(longest, time.perf_counter() - repeat_started)
    return SummaryResult(
        sessions=sessions,
        events_per_session=events_per_session,
        repeats=repeats,
        runs=runs,
        elapsed_s=time.perf_counter() - started,
    )


def report(result: SummaryResult) -> list[str]:
    n = result.events
    lines = [
        f"Target 5: append_event with a slow summarizer ({SUMMARIZER_SECONDS:g} s per job) — "
        f"{result.sessions} sessions x {result.events_per_session} events ({n:,} events, "
        f"~{CONTENT_CHARS}-char content), {result.sessions} concurrent tasks, "
        f"enqueue_summary(session) after every {ENQUEUE_EVERY}th event of a session; "
        f"best of {result.repeats} (loop time), runs interleaved",
        f"  {'mode':<8} {'summaries':<9} {'loop s':>7} {'loop ev/s':>10} {'to flush ev/s':>13} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'close s':>7}",
    ]
    for mode in MODES:
        for variant in VARIANTS:
            best = result.best(mode, variant)
            ordered = sorted(best.latencies_ns)
            flush_rate = f"{n / best.durable_s:,.0f}" if mode == "async" else "-"
            lines.append(
                f"  {mode:<8} {variant:<9} {best.loop_s:>7.3f} {n / best.loop_s:>10,.0f} "
                f"{flush_rate:>13} {percentile(ordered, 0.5) / 1e6:>7.3f} "
                f"{percentile(ordered, 0.99) / 1e6:>7.3f} {ordered[-1] / 1e6:>7.2f} "
                f"{best.close_s:>7.2f}"
            )
    for mode in MODES:
        best = result.best(mode, "with")
        calls, total_ns = len(best.enqueue_ns), sum(best.enqueue_ns)
        if calls:
            lines.append(
                f"  {mode} with summaries (best run): {calls} enqueue_summary calls took "
                f"{total_ns / 1e6:.1f} ms in all ({total_ns / calls / 1e3:.1f} us each, max "
                f"{max(best.enqueue_ns) / 1e6:.2f} ms) = {total_ns / 1e9 / best.loop_s:.1%} of "
                "the loop"
            )
    for mode in MODES:
        summary = result.best(mode, "with").summary
        if summary is not None:
            lines.append(
                f"  {mode} with summaries (best run, after close): "
                f"{summary['summarizer_calls']} summarizer calls, {summary['queued']} queued, "
                f"{summary['coalesced']} coalesced, {summary['done']} done, "
                f"{summary['skipped']} skipped (nothing new), {summary['inline']} inline, "
                f"{summary['rejected']} rejected, "
                f"{summary['timed_out']} timed out, {summary['failed']} failed"
            )
    verdict = "PASS" if result.passed else "FAIL"
    ratios = ", ".join(f"{mode} {result.ratio(mode):.3f}" for mode in MODES)
    lines.append(
        f"  {verdict}  target 5: loop throughput with / without summaries = {ratios} (target "
        f">= {TARGET_RATIO} in both modes, on best; 0.9 leaves a 10% noise margin)"
    )
    lines.append(
        "  info  not the target: async, throughput to flush() with / without = "
        f"{result.ratio('async', durable=True):.3f}; whole measurement {result.elapsed_s:.1f} s"
    )
    return lines
