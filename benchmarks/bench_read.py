"""Target 2: ``get_session(num_recent_events=20)`` latency on a large database.

Two databases are built through the public API (``append_events`` in chunks, each one
atomic transaction) and cached under ``benchmarks/.cache/``: a small one (10k events)
and a large one (1M events, or 100k with ``--quick``). In each, 90% of the events belong
to one target session and the rest to filler sessions, so the target session's length
grows with the database. Both are read through fresh ``SessionService`` instances, in
alternating blocks so that machine noise hits both alike.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import sessionlite
from sessionlite import SessionService

from .workloads import APP_NAME, USER_ID, BuiltDb, cached_db, fill_session, percentile

TARGET_P50_MS = 0.5
TARGET_GROWTH = 1.5
NUM_RECENT = 20
CONTENT_CHARS = 200
TARGET_SHARE = 0.9  # of the events, in the session that is read
FILLER_SESSION_EVENTS = 1000
TARGET_SESSION_ID = "target"
CACHE_DIR = Path(__file__).resolve().parent / ".cache"
LAYOUT = 1  # bump when the build changes, to invalidate cached databases
WARMUP = 50
BLOCK = 100


@dataclasses.dataclass(frozen=True)
class Layout:
    """What a cached database holds; a cached file is reused only if this matches."""

    total_events: int
    target_events: int
    filler_sessions: int
    filler_events: int
    content_chars: int = CONTENT_CHARS
    layout: int = LAYOUT
    sessionlite: str = sessionlite.__version__

    @classmethod
    def for_total(cls, total: int) -> Layout:
        target = int(total * TARGET_SHARE)
        filler = total - target
        return cls(
            total_events=total,
            target_events=target,
            filler_sessions=-(-filler // FILLER_SESSION_EVENTS),
            filler_events=filler,
        )


@dataclasses.dataclass(frozen=True)
class Latency:
    db: BuiltDb
    layout: Layout
    samples_ns: list[int]

    def ms(self, fraction: float) -> float:
        return percentile(sorted(self.samples_ns), fraction) / 1e6

    def to_json(self) -> dict[str, Any]:
        return {
            "total_events": self.layout.total_events,
            "target_session_events": self.layout.target_events,
            "filler_sessions": self.layout.filler_sessions,
            "build_s": self.db.build_s,
            "from_cache": self.db.cached,
            "reads": len(self.samples_ns),
            "p50_ms": self.ms(0.50),
            "p90_ms": self.ms(0.90),
            "p99_ms": self.ms(0.99),
        }


@dataclasses.dataclass(frozen=True)
class ReadResult:
    small: Latency
    large: Latency
    quick: bool

    @property
    def growth(self) -> float:
        return self.large.ms(0.5) / self.small.ms(0.5)

    @property
    def passed(self) -> bool:
        return self.large.ms(0.5) <= TARGET_P50_MS and self.growth <= TARGET_GROWTH

    def to_json(self) -> dict[str, Any]:
        return {
            "num_recent_events": NUM_RECENT,
            "quick_large_db": self.quick,
            "small": self.small.to_json(),
            "large": self.large.to_json(),
            "p50_ratio_large_over_small": self.growth,
            "target_p50_ms": TARGET_P50_MS,
            "target_ratio": TARGET_GROWTH,
            "passed": self.passed,
        }


# -- building ------------------------------------------------------------------------


async def _build(path: Path, layout: Layout) -> None:
    async with SessionService(path) as service:
        await fill_session(service, USER_ID, TARGET_SESSION_ID, layout.target_events, CONTENT_CHARS)
        left = layout.filler_events
        for i in range(layout.filler_sessions):
            count = min(FILLER_SESSION_EVENTS, left)
            left -= await fill_session(service, USER_ID, f"filler-{i}", count, CONTENT_CHARS)


def ensure_db(total: int, *, rebuild: bool) -> BuiltDb:
    """The cached database with ``total`` events, built first if missing or stale."""
    layout = Layout.for_total(total)
    return cached_db(
        CACHE_DIR / f"read-{total}",
        "sessions.db",
        ("layout", dataclasses.asdict(layout)),
        lambda path: asyncio.run(_build(path, layout)),
        rebuild=rebuild,
    )


# -- reading -------------------------------------------------------------------------


async def _read_once(service: SessionService, session_events: int) -> int:
    start = time.perf_counter_ns()
    session = await service.get_session(
        app_name=APP_NAME,
        user_id=USER_ID,
        session_id=TARGET_SESSION_ID,
        num_recent_events=NUM_RECENT,
    )
    elapsed = time.perf_counter_ns() - start
    # Outside the timed region: the read must return the newest events, oldest first
    # (event i of a session was built with state_delta {"turn": i}).
    turns = None if session is None else [event.state_delta["turn"] for event in session.events]
    expected = list(range(session_events - NUM_RECENT, session_events))
    if turns != expected:
        raise RuntimeError(f"get_session returned turns {turns}, expected {expected}")
    return elapsed


async def _measure(small: Latency, large: Latency, reads: int) -> None:
    """``reads`` timed reads into each one's samples, after ``WARMUP`` untimed ones."""
    async with SessionService(small.db.path) as s_small, SessionService(large.db.path) as s_large:
        plan = ((s_small, small), (s_large, large))
        for service, latency in plan:
            for _ in range(WARMUP):
                await _read_once(service, latency.layout.target_events)
        while len(large.samples_ns) < reads:
            for service, latency in plan:
                for _ in range(min(BLOCK, reads - len(latency.samples_ns))):
                    latency.samples_ns.append(
                        await _read_once(service, latency.layout.target_events)
                    )


def run(
    *, small_events: int, large_events: int, reads: int, rebuild: bool, quick: bool
) -> ReadResult:
    small, large = (
        Latency(ensure_db(total, rebuild=rebuild), Layout.for_total(total), [])
        for total in (small_events, large_events)
    )
    asyncio.run(_measure(small, large, reads))
    return ReadResult(small=small, large=large, quick=quick)


def report(result: ReadResult) -> list[str]:
    reads = len(result.large.samples_ns)
    lines = [
        f"Target 2: get_session(num_recent_events={NUM_RECENT}) latency — {reads} timed reads "
        f"per database after {WARMUP} warm-up reads, interleaved in blocks of {BLOCK}",
    ]
    if result.quick:
        lines.append(
            f"  --quick: the large database holds {result.large.layout.total_events:,} events, "
            "not 1,000,000"
        )
    lines.append(
        f"  {'events in db':>12} {'target session':>15} {'build s':>16} {'p50 ms':>8} "
        f"{'p90 ms':>8} {'p99 ms':>8}"
    )
    for latency in (result.small, result.large):
        db, layout = latency.db, latency.layout
        build = f"{db.build_s:.1f}" + (" (cached)" if db.cached else "")
        lines.append(
            f"  {layout.total_events:>12,} {layout.target_events:>15,} {build:>16} "
            f"{latency.ms(0.5):>8.3f} {latency.ms(0.9):>8.3f} {latency.ms(0.99):>8.3f}"
        )
    verdict = "PASS" if result.passed else "FAIL"
    large_p50 = result.large.ms(0.5)
    lines.append(
        f"  {verdict}  target 2: p50 on {result.large.layout.total_events:,} events = "
        f"{large_p50:.3f} ms (target <= {TARGET_P50_MS} ms), p50 ratio "
        f"{result.large.layout.total_events:,} / {result.small.layout.total_events:,} = "
        f"{result.growth:.2f} (target <= {TARGET_GROWTH})"
    )
    return lines
