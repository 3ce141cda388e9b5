"""Where an agent turn's time goes: a diagnostic, not a target.

``python -m benchmarks.profile_turns [--users 100] [--turns 60] [--async-persist]``

U concurrent users each run T turns on a fresh file (read the newest 20 events, append
the user's event, append the answer with a state delta: the ``peers`` turn workload).
Printed, for the timed turns only:

- turns/s, and the CPU time per turn of the event loop's thread and of all other threads
  (the writer, the readers): on a GIL-bound process their sum close to the wall time
  means the threads ran one at a time;
- how long the loop sat in ``select()``: idle, or waiting to get the GIL back;
- garbage collections by generation, with their time (from ``gc.callbacks``);
- the writer's batches: how many, appends per batch, wall time against CPU time, and
  for each kind of statement the wall time it spent beyond its CPU time (waiting for
  the GIL after SQLite released it, or for the disk).

To see the writer's statements it gives ``sqlite3.connect`` a timing connection class
for this process; nothing of it is used outside this diagnostic.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import selectors
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sessionlite import SessionService

from . import peers
from .workloads import make_events, temp_dir

RECENT = 20
TURN_CHARS = 200


class _Timings:
    """Wall and CPU seconds per label, from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: collections.Counter[str] = collections.Counter()
        self.wall: collections.defaultdict[str, float] = collections.defaultdict(float)
        self.cpu: collections.defaultdict[str, float] = collections.defaultdict(float)

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.wall.clear()
            self.cpu.clear()

    def add(self, label: str, wall: float, cpu: float) -> None:
        with self._lock:
            self.calls[label] += 1
            self.wall[label] += wall
            self.cpu[label] += cpu

    def timed(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(label, time.perf_counter() - wall, time.thread_time() - cpu)

        return call


TIMINGS = _Timings()


class _TimedConnection(sqlite3.Connection):
    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        words = sql.split(None, 2)
        label = "statement " + " ".join(words[:2])
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return super().execute(sql, *args)
        finally:
            TIMINGS.add(label, time.perf_counter() - wall, time.thread_time() - cpu)


class _TimedSelector(selectors.DefaultSelector):
    def select(self, timeout: float | None = None) -> list[Any]:
        wall = time.perf_counter()
        try:
            return super().select(timeout)
        finally:
            TIMINGS.add("loop in select()", time.perf_counter() - wall, 0.0)


def _instrument() -> None:
    from sessionlite.store.sqlite import writer, writes

    connect = sqlite3.connect

    def timed_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        kwargs.setdefault("factory", _TimedConnection)
        connection: sqlite3.Connection = connect(*args, **kwargs)
        return connection

    sqlite3.connect = timed_connect  # type: ignore[assignment]
    setattr(writer, "execute_batch", TIMINGS.timed("writer batch", writes.execute_batch))  # noqa: B010


def _gc_timer() -> Callable[[str, dict[str, int]], None]:
    started: dict[int, float] = {}

    def callback(phase: str, info: dict[str, int]) -> None:
        thread = threading.get_ident()
        if phase == "start":
            started[thread] = time.perf_counter()
        elif thread in started:
            TIMINGS.add(f"gc gen {info['generation']}", time.perf_counter() - started[thread], 0)

    return callback


async def _run(path: Path, users: int, turns: int, async_persist: bool) -> None:
    async with SessionService(path, async_persist=async_persist) as service:
        for index in range(users):
            session = await service.create_session(
                app_name="bench", user_id=f"u{index}", session_id="s"
            )
            await service.append_events(session, make_events(RECENT, content_chars=TURN_CHARS))
        store = peers.SessionliteStore()
        events = [
            [
                store.prepare(peers.payload(RECENT + i, TURN_CHARS, delta=i % 2 == 1))
                for i in range(2 * turns)
            ]
            for _ in range(users)
        ]

        async def user(index: int) -> None:
            for turn in range(turns):
                session = await service.get_session(
                    app_name="bench", user_id=f"u{index}", session_id="s", num_recent_events=RECENT
                )
                assert session is not None
                await service.append_event(session, events[index][2 * turn])
                await service.append_event(session, events[index][2 * turn + 1])

        gc.collect()
        before = service.stats()
        TIMINGS.reset()
        callback = _gc_timer()
        gc.callbacks.append(callback)
        wall, loop_cpu, cpu = time.perf_counter(), time.thread_time(), time.process_time()
        try:
            await asyncio.gather(*(user(index) for index in range(users)))
            await service.flush()
        finally:
            gc.callbacks.remove(callback)
        wall = time.perf_counter() - wall
        loop_cpu = time.thread_time() - loop_cpu
        cpu = time.process_time() - cpu
        after = service.stats()
    done = users * turns
    hits = after.read_cache_hits - before.read_cache_hits
    misses = after.read_cache_misses - before.read_cache_misses
    mode = "async_persist" if async_persist else "durable"
    print(f"{users} users x {turns} turns ({mode}): {done / wall:,.0f} turns/s")
    print(
        f"  per turn: wall {wall / done * 1e6:.0f} us; loop thread CPU "
        f"{loop_cpu / done * 1e6:.0f} us; other threads CPU {(cpu - loop_cpu) / done * 1e6:.0f} us"
    )
    print(f"  read cache: {hits:,} hits, {misses:,} misses")
    for label in sorted(TIMINGS.calls, key=lambda name: -TIMINGS.wall[name]):
        calls, spent, on_cpu = TIMINGS.calls[label], TIMINGS.wall[label], TIMINGS.cpu[label]
        line = f"  {label:<34} {calls:>7,} calls {spent * 1000:8.0f} ms"
        if label == "writer batch":
            line += f", CPU {on_cpu * 1000:.0f} ms"
        elif label.startswith("statement"):
            line += f", beyond CPU {(spent - on_cpu) / calls * 1e6:.0f} us per call"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--turns", type=int, default=60)
    parser.add_argument("--async-persist", action="store_true")
    parser.add_argument("--tmpdir")
    args = parser.parse_args()
    _instrument()
    with temp_dir(args.tmpdir, "sessionlite-profile-") as tmp:
        loop = asyncio.SelectorEventLoop(_TimedSelector())
        try:
            loop.run_until_complete(
                _run(tmp / "turns.db", args.users, args.turns, args.async_persist)
            )
        finally:
            loop.close()


if __name__ == "__main__":
    main()
