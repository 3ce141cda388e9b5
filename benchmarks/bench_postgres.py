"""PostgreSQL: sessionlite against ADK's ``DatabaseSessionService`` on the same server.

Both stores run on one PostgreSQL server in the same run (a throwaway cluster with
PostgreSQL's default durability settings, or ``SESSIONLITE_BENCH_POSTGRES_URL``); each
measurement gets a database of its own. ADK uses SQLAlchemy with asyncpg
(``postgresql+asyncpg://``), its recommended PostgreSQL driver.

Targets (issue "PostgreSQL backend"):

- durable append, 100 sessions x 100 events, 100 tasks: >= 10x ADK's events/s;
- ``get_session(num_recent_events=20)`` p50 on a session of 1M events within 1.5x of
  the same read on a session of 10k events (the read is an index range scan);
- agent turns/s at U=100 (read the newest 20, append the user's message, append the
  answer with a state delta): >= 5x ADK's.

ADK's read p50 at 10k events is reported too (the hot-read issue's PostgreSQL target:
sessionlite <= 0.3x).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from sessionlite import Event, SessionService

from .workloads import (
    APP_NAME,
    USER_ID,
    append_concurrently,
    append_workload,
    best_and_median,
    create_sessions,
    fill_session,
    make_event,
    percentile,
    text_of,
)

CONTENT_CHARS = 200
TURN_READ = 20


@dataclasses.dataclass
class PostgresResult:
    server: str
    skipped: str | None = None
    append_events: int = 0
    append_sessionlite_s: list[float] = dataclasses.field(default_factory=list)
    append_adk_s: list[float] = dataclasses.field(default_factory=list)
    read_small_events: int = 0
    read_large_events: int = 0
    read_small_ms: list[float] = dataclasses.field(default_factory=list)
    read_large_ms: list[float] = dataclasses.field(default_factory=list)
    read_adk_small_ms: list[float] = dataclasses.field(default_factory=list)
    turn_users: int = 0
    turns_per_user: int = 0
    turns_sessionlite_s: list[float] = dataclasses.field(default_factory=list)
    turns_async_s: list[float] = dataclasses.field(default_factory=list)
    turns_adk_s: list[float] = dataclasses.field(default_factory=list)

    # -- derived ------------------------------------------------------------------

    def rate(self, seconds: list[float], count: int) -> float:
        return count / min(seconds) if seconds else 0.0

    @property
    def append_ratio(self) -> float | None:
        adk = self.rate(self.append_adk_s, self.append_events)
        return self.rate(self.append_sessionlite_s, self.append_events) / adk if adk else None

    @property
    def read_ratio(self) -> float | None:
        if not (self.read_small_ms and self.read_large_ms):
            return None
        return p50(self.read_large_ms) / p50(self.read_small_ms)

    @property
    def read_vs_adk(self) -> float | None:
        if not (self.read_small_ms and self.read_adk_small_ms):
            return None
        return p50(self.read_small_ms) / p50(self.read_adk_small_ms)

    @property
    def turns(self) -> int:
        return self.turn_users * self.turns_per_user

    @property
    def turns_ratio(self) -> float | None:
        adk = self.rate(self.turns_adk_s, self.turns)
        return self.rate(self.turns_sessionlite_s, self.turns) / adk if adk else None

    def targets(self) -> list[dict[str, Any]]:
        def target(name: str, value: float | None, limit: float, at_least: bool) -> dict[str, Any]:
            ok = value is not None and (value >= limit if at_least else value <= limit)
            return {"name": name, "value": value, "limit": limit, "at_least": at_least, "ok": ok}

        return [
            target("PostgreSQL durable append vs ADK (x)", self.append_ratio, 10.0, True),
            target("PostgreSQL read p50, 1M vs 10k events (x)", self.read_ratio, 1.5, False),
            target("PostgreSQL agent turns/s vs ADK (x)", self.turns_ratio, 5.0, True),
            target("PostgreSQL read p50 vs ADK (x)", self.read_vs_adk, 0.3, False),
        ]

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["targets"] = self.targets()
        return data


def p50(values: list[float]) -> float:
    return percentile(sorted(values), 0.5)


# -- the server ---------------------------------------------------------------------


@contextlib.contextmanager
def _server() -> Iterator[str | None]:
    """The URL of a server to create databases on (None: no PostgreSQL here)."""
    url = os.environ.get("SESSIONLITE_BENCH_POSTGRES_URL")
    if url:
        yield url
        return
    from sessionlite.store.postgres.cluster import LocalCluster, find_bindir

    bindir = find_bindir()
    if bindir is None or (shutil.which("runuser") is None and os.geteuid() == 0):
        yield None
        return
    cluster = LocalCluster(bindir, fsync=True)
    try:
        cluster.start()
        yield cluster.url
    finally:
        cluster.destroy()


def _with_database(url: str, name: str) -> str:
    head, _, _db = url.rpartition("/")
    return f"{head}/{name}"


@contextlib.asynccontextmanager
async def _database(url: str) -> AsyncIterator[str]:
    """A fresh database on the server, dropped afterwards."""
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(url, name)
    finally:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def _adk_url(url: str) -> str:
    return "postgresql+asyncpg://" + url.split("://", 1)[1]


def _adk_service(url: str) -> Any:
    from google.adk.sessions import DatabaseSessionService

    return DatabaseSessionService(db_url=_adk_url(url))


def _adk_event(author: str, text: str, delta: dict[str, Any] | None = None) -> Any:
    from google.adk.events.event import Event as AdkEvent
    from google.adk.events.event_actions import EventActions
    from google.genai import types

    return AdkEvent(
        author=author,
        invocation_id="inv",
        content=types.Content(
            role="user" if author == "user" else "model", parts=[types.Part(text=text)]
        ),
        actions=EventActions(state_delta=dict(delta or {})),
    )


# -- append ---------------------------------------------------------------------------


async def _append_sessionlite(url: str, sessions: int, per_session: int) -> float:
    workload = append_workload(sessions, per_session, CONTENT_CHARS)
    async with _database(url) as db, SessionService(db) as service:
        handles = await create_sessions(service, sessions, "s")
        start = time.perf_counter()
        await append_concurrently(service, handles, workload)
        return time.perf_counter() - start


async def _append_adk(url: str, sessions: int, per_session: int) -> float:
    async with _database(url) as db:
        svc = _adk_service(db)
        try:
            handles = [
                await svc.create_session(app_name=APP_NAME, user_id=USER_ID, session_id=f"s{i}")
                for i in range(sessions)
            ]

            async def writer(session: Any, index: int) -> None:
                for turn in range(per_session):
                    author = "user" if turn % 2 == 0 else "assistant"
                    await svc.append_event(
                        session, _adk_event(author, text_of(CONTENT_CHARS, index * 1000 + turn))
                    )

            start = time.perf_counter()
            await asyncio.gather(*(writer(s, i) for i, s in enumerate(handles)))
            return time.perf_counter() - start
        finally:
            await svc.close()


# -- read -----------------------------------------------------------------------------


async def _timed_reads(call: Callable[[], Awaitable[Any]], reads: int) -> list[float]:
    for _ in range(min(50, reads)):  # warm caches and prepared statements
        await call()
    timings = []
    for _ in range(reads):
        start = time.perf_counter()
        await call()
        timings.append((time.perf_counter() - start) * 1000)
    return timings


async def _read_sessionlite(url: str, events: int, reads: int) -> list[float]:
    async with _database(url) as db, SessionService(db) as service:
        await fill_session(service, USER_ID, "big", events, CONTENT_CHARS)

        async def call() -> None:
            session = await service.get_session(
                app_name=APP_NAME, user_id=USER_ID, session_id="big", num_recent_events=20
            )
            assert session is not None
            assert len(session.events) == 20

        return await _timed_reads(call, reads)


async def _read_adk(url: str, events: int, reads: int) -> list[float]:
    from google.adk.sessions.base_session_service import GetSessionConfig

    async with _database(url) as db:
        svc = _adk_service(db)
        try:
            session = await svc.create_session(app_name=APP_NAME, user_id=USER_ID, session_id="big")
            for turn in range(events):
                await svc.append_event(session, _adk_event("user", text_of(CONTENT_CHARS, turn)))
                session.events.clear()

            async def call() -> None:
                got = await svc.get_session(
                    app_name=APP_NAME,
                    user_id=USER_ID,
                    session_id="big",
                    config=GetSessionConfig(num_recent_events=20),
                )
                assert got is not None
                assert len(got.events) == 20

            return await _timed_reads(call, reads)
        finally:
            await svc.close()


# -- agent turns ------------------------------------------------------------------------


async def _turns_sessionlite(url: str, users: int, turns: int, *, async_persist: bool) -> float:
    async with _database(url) as db, SessionService(db, async_persist=async_persist) as service:
        for user in range(users):
            await fill_session(service, f"u{user}", "chat", TURN_READ, CONTENT_CHARS)

        async def user_loop(user: int) -> None:
            for turn in range(turns):
                session = await service.get_session(
                    app_name=APP_NAME,
                    user_id=f"u{user}",
                    session_id="chat",
                    num_recent_events=TURN_READ,
                )
                assert session is not None
                await service.append_event(
                    session, make_event(2 * turn, text_of(CONTENT_CHARS, turn))
                )
                answer = Event(
                    author="assistant",
                    content=text_of(CONTENT_CHARS, turn + 1),
                    state_delta={"turns": turn + 1},
                )
                await service.append_event(session, answer)

        start = time.perf_counter()
        await asyncio.gather(*(user_loop(u) for u in range(users)))
        await service.flush()
        return time.perf_counter() - start


async def _turns_adk(url: str, users: int, turns: int) -> float:
    from google.adk.sessions.base_session_service import GetSessionConfig

    async with _database(url) as db:
        svc = _adk_service(db)
        try:
            for user in range(users):
                session = await svc.create_session(
                    app_name=APP_NAME, user_id=f"u{user}", session_id="chat"
                )
                for turn in range(TURN_READ):
                    await svc.append_event(
                        session, _adk_event("user", text_of(CONTENT_CHARS, turn))
                    )

            async def user_loop(user: int) -> None:
                for turn in range(turns):
                    session = await svc.get_session(
                        app_name=APP_NAME,
                        user_id=f"u{user}",
                        session_id="chat",
                        config=GetSessionConfig(num_recent_events=TURN_READ),
                    )
                    assert session is not None
                    await svc.append_event(
                        session, _adk_event("user", text_of(CONTENT_CHARS, turn))
                    )
                    await svc.append_event(
                        session,
                        _adk_event(
                            "assistant", text_of(CONTENT_CHARS, turn + 1), {"turns": turn + 1}
                        ),
                    )

            start = time.perf_counter()
            await asyncio.gather(*(user_loop(u) for u in range(users)))
            return time.perf_counter() - start
        finally:
            await svc.close()


# -- the run ------------------------------------------------------------------------------


def _peers_installed() -> str | None:
    for module in ("psycopg", "psycopg_pool", "asyncpg", "google.adk"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install -e '.[bench]')"
    return None


def run(*, quick: bool, repeats: int = 3) -> PostgresResult:
    missing = _peers_installed()
    if missing:
        return PostgresResult(server="-", skipped=missing)
    with _server() as url:
        if url is None:
            return PostgresResult(
                server="-", skipped="no PostgreSQL server programs (apt-get install postgresql)"
            )
        from sessionlite.store.postgres.connection import display_name

        result = PostgresResult(server=display_name(url))
        asyncio.run(_measure(result, url, quick=quick, repeats=repeats))
        return result


async def _measure(result: PostgresResult, url: str, *, quick: bool, repeats: int) -> None:
    sessions, per_session = (20, 50) if quick else (100, 100)
    result.append_events = sessions * per_session
    for _ in range(repeats):  # interleaved: a noisy moment hits both
        result.append_sessionlite_s.append(await _append_sessionlite(url, sessions, per_session))
        result.append_adk_s.append(await _append_adk(url, sessions, per_session))

    result.read_small_events = 10_000 if not quick else 2_000
    result.read_large_events = 1_000_000 if not quick else 100_000
    reads = 1000 if not quick else 200
    result.read_small_ms = await _read_sessionlite(url, result.read_small_events, reads)
    result.read_large_ms = await _read_sessionlite(url, result.read_large_events, reads)
    result.read_adk_small_ms = await _read_adk(url, result.read_small_events, reads)

    result.turn_users, result.turns_per_user = (20, 5) if quick else (100, 10)
    for _ in range(repeats):
        result.turns_sessionlite_s.append(
            await _turns_sessionlite(
                url, result.turn_users, result.turns_per_user, async_persist=False
            )
        )
        result.turns_async_s.append(
            await _turns_sessionlite(
                url, result.turn_users, result.turns_per_user, async_persist=True
            )
        )
        result.turns_adk_s.append(await _turns_adk(url, result.turn_users, result.turns_per_user))


def report(result: PostgresResult) -> list[str]:
    if result.skipped:
        return [f"PostgreSQL: skipped ({result.skipped})"]
    n = result.append_events
    lines = [
        f"PostgreSQL ({result.server}, same server for both stores; best / median)",
        f"  durable append, {n:,} events, one task per session:",
    ]
    for label, seconds in (
        ("sessionlite", result.append_sessionlite_s),
        ("ADK DatabaseSessionService", result.append_adk_s),
    ):
        best, median = best_and_median(seconds)
        lines.append(f"    {label:<28} {n / best:>10,.0f} / {n / median:,.0f} events/s")
    lines.append("  get_session, newest 20 events, p50 / p99:")
    for label, values in (
        (f"sessionlite, {result.read_small_events:,} events", result.read_small_ms),
        (f"sessionlite, {result.read_large_events:,} events", result.read_large_ms),
        (f"ADK, {result.read_small_events:,} events", result.read_adk_small_ms),
    ):
        ordered = sorted(values)
        lines.append(
            f"    {label:<28} {percentile(ordered, 0.5):>8.3f} / {percentile(ordered, 0.99):.3f} ms"
        )
    turns = result.turns
    lines.append(
        f"  agent turns, {result.turn_users} users x {result.turns_per_user} turns "
        f"(read {TURN_READ}, append 2):"
    )
    for label, seconds in (
        ("sessionlite (durable)", result.turns_sessionlite_s),
        ("sessionlite (async_persist)", result.turns_async_s),
        ("ADK DatabaseSessionService", result.turns_adk_s),
    ):
        best, median = best_and_median(seconds)
        lines.append(f"    {label:<28} {turns / best:>10,.0f} / {turns / median:,.0f} turns/s")
    for target in result.targets():
        value = target["value"]
        shown = "n/a" if value is None else f"{value:.2f}"
        sign = ">=" if target["at_least"] else "<="
        verdict = "PASS" if target["ok"] else "FAIL"
        lines.append(f"  {verdict} {target['name']}: {shown} ({sign} {target['limit']})")
    return lines
