"""Target 4: peak RSS while appending many events with ``async_persist=True``.

The measurement runs in a fresh Python process (``python -m benchmarks.bench_memory``)
so that nothing else the harness did (other benchmarks, cached databases, pre-built
workloads) is in its memory. In that process, after the imports and before the service
is opened, the start RSS is read from ``/proc/self/status`` (``VmRSS``) and the kernel's
peak-RSS mark is reset (``echo 5 > /proc/self/clear_refs``, so ``VmHWM`` becomes the
peak since the start); a background thread also samples ``VmRSS`` every few ms. The peak
is the larger of the sampled maximum and ``VmHWM``.

Workload (agent-like turns): ``sessions`` sessions, then rounds over all of them, one
``append_event`` per session per round, until ``events`` events were appended; each
event is built just before its append (~200-char content, a small state delta). The
caller's ``Session`` objects accumulate the events they were given: that is the caller's
memory, not the store's, so each session object is emptied every
``CLEAR_EVERY`` of its events (``session.events.clear()``). Then ``flush()``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import re
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

from sessionlite import SessionService

from .rawsqlite import count_rows
from .workloads import create_sessions, make_event, temp_dir, text_of

TARGET_DELTA_MB = 150.0
CONTENT_CHARS = 200
CLEAR_EVERY = 10  # events per session object before the caller empties it
SAMPLE_INTERVAL_S = 0.005
CONTENT_VARIANTS = 64  # distinct content strings, reused (building them is not timed)
CALIBRATION_EVENTS = 10_000
SEGMENTS = 10  # throughput is also reported per tenth of the run

_REPO_ROOT = Path(__file__).resolve().parent.parent
_RSS_LINE = re.compile(r"^(VmRSS|VmHWM):\s+(\d+)\s+kB", re.MULTILINE)
_MB = 1024 * 1024


def _status_kib() -> dict[str, int]:
    with open("/proc/self/status") as status:
        return {key: int(kib) for key, kib in _RSS_LINE.findall(status.read())}


def _rss_bytes() -> int:
    return _status_kib()["VmRSS"] * 1024


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


class _Sampler(threading.Thread):
    """Reads VmRSS every ``interval`` seconds and keeps the maximum."""

    def __init__(self, interval: float) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.interval = interval
        self.peak = _rss_bytes()
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.peak = max(self.peak, _rss_bytes())
            self.samples += 1

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        self.peak = max(self.peak, _rss_bytes())
        return self.peak


# -- the child process ---------------------------------------------------------------


async def _append_all(
    path: Path, *, events: int, sessions: int, contents: list[str]
) -> dict[str, Any]:
    async with SessionService(path, async_persist=True) as service:
        handles = await create_sessions(service, sessions, "m")
        max_queue = 0
        held = max_held = 0  # events on the caller's Session objects
        marks: list[tuple[int, float]] = []  # (events appended, seconds) per segment
        next_mark = events / SEGMENTS
        start = time.perf_counter()
        done = 0
        turn = 0
        while done < events:
            for session in handles[: min(sessions, events - done)]:
                await service.append_event(
                    session, make_event(turn, contents[(turn + done) % len(contents)])
                )
                done += 1
                held += 1
                if len(session.events) >= CLEAR_EVERY:
                    max_held = max(max_held, held)
                    held -= len(session.events)
                    session.events.clear()  # the caller's memory, not the store's
            turn += 1
            max_queue = max(max_queue, service.stats().persist_queue_depth)
            if done >= next_mark:
                marks.append((done, time.perf_counter() - start))
                next_mark += events / SEGMENTS
        accepted = time.perf_counter() - start
        await service.flush()
        durable = time.perf_counter() - start
        stats = service.stats()
    return {
        "accepted_s": accepted,
        "durable_s": durable,
        "accepted_marks": marks,
        "max_persist_queue_depth_seen": max_queue,
        "max_events_held_by_caller": max(max_held, held),
        "events_persisted": stats.events_persisted,
        "write_transactions": stats.write_transactions,
        "write_calls": stats.write_calls,
        "mean_batch_size": stats.mean_batch_size,
        "persist_failures": stats.persist_failures,
    }


async def _calibrate(contents: list[str]) -> float:
    """Bytes one event costs on the caller's Session object (tracemalloc, :memory:)."""
    async with SessionService(":memory:", async_persist=True) as service:
        handles = await create_sessions(service, CALIBRATION_EVENTS // CLEAR_EVERY, "c")
        tracemalloc.start()
        try:
            for turn in range(CLEAR_EVERY):
                for i, session in enumerate(handles):
                    await service.append_event(
                        session, make_event(turn, contents[i % len(contents)])
                    )
            await service.flush()
            gc.collect()
            held, _ = tracemalloc.get_traced_memory()
            for session in handles:
                session.events.clear()
            gc.collect()
            freed = held - tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
    return freed / (len(handles) * CLEAR_EVERY)


def child(events: int, sessions: int, tmp_root: str | None) -> dict[str, Any]:
    """Run the measurement in this process; returns the numbers (bytes and seconds)."""
    contents = [text_of(CONTENT_CHARS, seed=i) for i in range(CONTENT_VARIANTS)]
    with temp_dir(tmp_root) as tmp:
        path = tmp / "memory.db"
        start_rss = _rss_bytes()
        hwm_reset = _reset_peak()
        sampler = _Sampler(SAMPLE_INTERVAL_S)
        sampler.start()
        try:
            numbers = asyncio.run(
                _append_all(path, events=events, sessions=sessions, contents=contents)
            )
        finally:
            sampled_peak = sampler.stop()
        end_rss = _rss_bytes()
        hwm = _status_kib()["VmHWM"] * 1024
        stored = count_rows(path)
        db_bytes = sum(f.stat().st_size for f in tmp.iterdir())
    per_event = asyncio.run(_calibrate(contents))  # after the measurement: not in its peak
    if stored != events:
        raise RuntimeError(f"sessionlite stored {stored} events, expected {events}")
    peak = max(sampled_peak, hwm) if hwm_reset else sampled_peak
    return {
        **numbers,
        "events": events,
        "sessions": sessions,
        "start_rss_bytes": start_rss,
        "peak_rss_bytes": peak,
        "sampled_peak_rss_bytes": sampled_peak,
        "vm_hwm_bytes": hwm if hwm_reset else None,
        "end_rss_bytes": end_rss,
        "rss_samples": sampler.samples,
        "database_bytes": db_bytes,
        "stored_events": stored,
        "caller_bytes_per_held_event": per_event,
    }


# -- the harness side ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MemoryResult:
    numbers: dict[str, Any]
    quick: bool

    @property
    def delta_bytes(self) -> int:
        return int(self.numbers["peak_rss_bytes"] - self.numbers["start_rss_bytes"])

    @property
    def passed(self) -> bool:
        return self.delta_bytes < TARGET_DELTA_MB * _MB

    def to_json(self) -> dict[str, Any]:
        n = self.numbers
        return {
            **n,
            "quick": self.quick,
            "content_chars": CONTENT_CHARS,
            "clear_every": CLEAR_EVERY,
            "peak_minus_start_bytes": self.delta_bytes,
            "peak_minus_start_mb": self.delta_bytes / _MB,
            "caller_held_bytes_estimate": n["max_events_held_by_caller"]
            * n["caller_bytes_per_held_event"],
            "accepted_events_per_s": n["events"] / n["accepted_s"],
            "durable_events_per_s": n["events"] / n["durable_s"],
            "target_delta_mb": TARGET_DELTA_MB,
            "passed": self.passed,
        }


def run(*, events: int, sessions: int, tmp_root: str | None, quick: bool) -> MemoryResult:
    """Run :func:`child` in a fresh interpreter and collect its numbers."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.bench_memory",
        "--events",
        str(events),
        "--sessions",
        str(sessions),
    ]
    if tmp_root is not None:
        command += ["--tmpdir", tmp_root]
    done = subprocess.run(
        command, cwd=_REPO_ROOT, capture_output=True, text=True, timeout=1800, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"the memory benchmark process failed (exit {done.returncode}):\n{done.stderr}"
        )
    return MemoryResult(numbers=json.loads(done.stdout.strip().splitlines()[-1]), quick=quick)


def report(result: MemoryResult) -> list[str]:
    n = result.numbers
    lines = [
        f"Target 4: peak RSS while appending {n['events']:,} events with async_persist=True — "
        f"fresh process, {n['sessions']:,} sessions in round-robin turns, "
        f"~{CONTENT_CHARS}-char content, then flush()",
    ]
    if result.quick:
        lines.append(f"  --quick: {n['events']:,} events, not 1,000,000")
    held = n["max_events_held_by_caller"]
    per_event = n["caller_bytes_per_held_event"]
    lines.append(
        f"  the caller empties each Session object every {CLEAR_EVERY} events "
        "(session.events.clear()): events kept on the caller's Session objects are the "
        "caller's memory, not the store's queue; here they were at most "
        f"{held:,} events, ~{held * per_event / _MB:.1f} MB ({per_event:,.0f} bytes per "
        "event, tracemalloc calibration) — included in the peak below"
    )
    hwm = "n/a" if n["vm_hwm_bytes"] is None else f"{n['vm_hwm_bytes'] / _MB:.1f} MB"
    lines.append(
        f"  RSS: start {n['start_rss_bytes'] / _MB:.1f} MB (after imports, before open), "
        f"peak {n['peak_rss_bytes'] / _MB:.1f} MB (sampled max "
        f"{n['sampled_peak_rss_bytes'] / _MB:.1f} MB over {n['rss_samples']:,} samples, "
        f"VmHWM since start {hwm}), end {n['end_rss_bytes'] / _MB:.1f} MB; database "
        f"{n['database_bytes'] / _MB:.1f} MB on disk"
    )
    lines.append(
        f"  throughput: {n['events'] / n['accepted_s']:,.0f} ev/s accepted "
        f"({n['accepted_s']:.1f} s), {n['events'] / n['durable_s']:,.0f} ev/s to flush() "
        f"({n['durable_s']:.1f} s; building each Event included); largest persist queue "
        f"depth seen {n['max_persist_queue_depth_seen']:,}; {n['write_transactions']:,} write "
        f"transactions (mean batch {n['mean_batch_size']:.1f})"
    )
    marks = n["accepted_marks"]
    if marks:
        rates = []
        previous_done, previous_s = 0, 0.0
        for done, seconds in marks:
            rates.append(f"{(done - previous_done) / max(seconds - previous_s, 1e-9):,.0f}")
            previous_done, previous_s = done, seconds
        lines.append(f"  accepted ev/s per tenth of the run: {' '.join(rates)}")
    verdict = "PASS" if result.passed else "FAIL"
    lines.append(
        f"  {verdict}  target 4: peak RSS - start RSS = {result.delta_bytes / _MB:.1f} MB "
        f"(target < {TARGET_DELTA_MB:.0f} MB)"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_memory",
        description="the target 4 measurement, in this process; prints one JSON line",
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--tmpdir", metavar="DIR")
    args = parser.parse_args(argv)
    print(json.dumps(child(args.events, args.sessions, args.tmpdir)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
