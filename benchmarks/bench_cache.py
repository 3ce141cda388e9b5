"""The read cache's memory: RSS with ``sessions`` hot sessions, against its own estimate.

Runs in a fresh Python process (``python -m benchmarks.bench_cache``) so that nothing
else the harness did is in its memory. It creates ``sessions`` sessions of
``events_per_session`` events (~200-char contents, a small state), reads each once with
``get_session(num_recent_events=20)`` (which puts it in the cache), then reads each
again (served from memory). Reported: the RSS growth over the first reads (the cache's
entries, and the decoded events they keep), ``stats().read_cache_bytes`` (the estimate
the ``read_cache_size`` bound applies to), and the p50 of the second reads.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sessionlite import SessionService

from .workloads import make_events, percentile, temp_dir

_REPO_ROOT = Path(__file__).resolve().parent.parent
_MB = 1024 * 1024


def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@dataclasses.dataclass(frozen=True)
class CacheResult:
    sessions: int
    events_per_session: int
    rss_growth_bytes: int
    cache_bytes: int
    cache_sessions: int
    evictions: int
    hit_p50_ms: float
    miss_p50_ms: float
    read_cache_size: int
    first_hit_p50_ms: float = 0.0
    full_read_events: int = 0
    full_read_p50_ms: float = 0.0  # sessionlite get_session(), every event, from memory
    full_read_peer_p50_ms: float = 0.0  # OpenAI SQLiteSession.get_items(), every item

    @property
    def full_read_ratio(self) -> float | None:
        if not self.full_read_peer_p50_ms:
            return None
        return self.full_read_p50_ms / self.full_read_peer_p50_ms

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "full_read_ratio": self.full_read_ratio}


async def _measure(path: Path, sessions: int, per_session: int, size: int) -> CacheResult:
    async with SessionService(path, read_cache_size=size) as service:
        for n in range(sessions):
            session = await service.create_session(
                app_name="bench", user_id=f"u{n}", session_id="s", state={"turn": n}
            )
            await service.append_events(session, make_events(per_session, content_chars=200))
        gc.collect()
        before = _rss_bytes()

        async def read_all() -> list[float]:
            timings = []
            for n in range(sessions):
                start = time.perf_counter()
                await service.get_session(
                    app_name="bench", user_id=f"u{n}", session_id="s", num_recent_events=20
                )
                timings.append(time.perf_counter() - start)
            return timings

        misses = await read_all()  # from the file; the cache keeps the rows
        first_hits = await read_all()  # from memory; each event's fields are decoded once
        hits = await read_all()  # from memory: copies of the decoded fields
        gc.collect()
        growth = _rss_bytes() - before
        stats = service.stats()
        return CacheResult(
            sessions=sessions,
            events_per_session=per_session,
            rss_growth_bytes=growth,
            cache_bytes=stats.read_cache_bytes,
            cache_sessions=stats.read_cache_sessions,
            evictions=stats.read_cache_evictions,
            hit_p50_ms=percentile(sorted(hits), 0.5) * 1000,
            first_hit_p50_ms=percentile(sorted(first_hits), 0.5) * 1000,
            miss_p50_ms=percentile(sorted(misses), 0.5) * 1000,
            read_cache_size=service.options.read_cache_size,
        )


def run(*, sessions: int, events_per_session: int, size: int, tmp_root: str | None) -> CacheResult:
    """Measure in a fresh interpreter; returns its result."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.bench_cache",
        "--sessions",
        str(sessions),
        "--events-per-session",
        str(events_per_session),
        "--read-cache-size",
        str(size),
    ]
    if tmp_root:
        command += ["--tmpdir", tmp_root]
    out = subprocess.run(
        command, cwd=_REPO_ROOT, capture_output=True, text=True, check=True, timeout=1800
    ).stdout
    data = json.loads(out.strip().splitlines()[-1])
    data.pop("full_read_ratio", None)
    return CacheResult(**data)


FULL_READ_EVENTS = 200  # ADK's Runner reads the whole session at every turn


async def _p50(call: Any, rounds: int = 600) -> float:
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        await call()
        timings.append(time.perf_counter() - start)
    return percentile(sorted(timings[rounds // 4 :]), 0.5) * 1000


async def _full_read(directory: Path) -> tuple[float, float]:
    """p50 ms of reading a whole 200-event session: sessionlite (from memory) and the
    OpenAI Agents SDK's ``SQLiteSession.get_items()`` (the fastest peer), same contents."""
    from agents import SQLiteSession

    text = "x" * 200
    peer = SQLiteSession("full", directory / "peer.db")
    await peer.add_items([{"role": "user", "content": text} for _ in range(FULL_READ_EVENTS)])
    peer_ms = await _p50(peer.get_items)
    peer.close()
    async with SessionService(directory / "full.db") as service:
        session = await service.create_session(app_name="bench", user_id="u", session_id="s")
        await service.append_events(session, make_events(FULL_READ_EVENTS, content_chars=len(text)))

        async def read() -> None:
            await service.get_session(app_name="bench", user_id="u", session_id="s")

        ours_ms = await _p50(read)
    return ours_ms, peer_ms


def report(result: CacheResult) -> list[str]:
    full = (
        []
        if result.full_read_ratio is None
        else [
            f"  whole {result.full_read_events}-event session: get_session() p50 "
            f"{result.full_read_p50_ms:.3f} ms vs OpenAI SQLiteSession.get_items() "
            f"{result.full_read_peer_p50_ms:.3f} ms = {result.full_read_ratio:.2f}x "
            f"({'PASS' if result.full_read_ratio <= 0.5 else 'FAIL'}: target <= 0.5x)"
        ]
    )
    return [
        f"Read cache: {result.sessions:,} hot sessions of {result.events_per_session} events "
        "(newest 20 read, ~200-char contents)",
        f"  RSS growth while they were cached: {result.rss_growth_bytes / _MB:.1f} MB "
        f"(cache estimate {result.cache_bytes / _MB:.1f} MB for {result.cache_sessions:,} "
        f"sessions; bound read_cache_size = {result.read_cache_size / _MB:.0f} MB, "
        f"{result.evictions:,} evictions)",
        f"  get_session(20) p50: {result.hit_p50_ms:.3f} ms from memory, "
        f"{result.first_hit_p50_ms:.3f} ms the first time from memory (decoding), "
        f"{result.miss_p50_ms:.3f} ms the first time (from the file)",
        *full,
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--events-per-session", type=int, default=20)
    parser.add_argument("--read-cache-size", type=int, default=512 * _MB)
    parser.add_argument("--tmpdir")
    args = parser.parse_args()
    with temp_dir(args.tmpdir, "sessionlite-cache-") as tmp:
        result = asyncio.run(
            _measure(tmp / "cache.db", args.sessions, args.events_per_session, args.read_cache_size)
        )
        ours_ms, peer_ms = asyncio.run(_full_read(tmp))
    result = dataclasses.replace(
        result,
        full_read_events=FULL_READ_EVENTS,
        full_read_p50_ms=ours_ms,
        full_read_peer_p50_ms=peer_ms,
    )
    print(json.dumps(result.to_json()))


if __name__ == "__main__":
    main()
