"""One adapter per session store, all with the same async interface, for ``bench_peers``.

Every store gets the same payloads (:class:`Payload`: author, text, state delta), turned
into its own native event type before any timer starts (building events is the user's
code). Each store is used the way its documentation shows, with its defaults; the
configuration that matters for the numbers is written in :attr:`Store.config`.

The interface:

- ``setup(path)`` opens (or creates) the store on a database file;
- ``create_session(user_id, session_id)`` returns a handle to append to;
- ``prepare(payload)`` builds the native event (untimed);
- ``append(handle, native)`` stores one event;
- ``read_recent(user_id, session_id, n)`` loads the newest ``n`` events, returning a handle
  to append to and the events (oldest first);
- ``list_user_sessions(user_id, n)`` returns the ids of one page of a user's sessions,
  newest first (``None`` when the store has no such call);
- ``flush()`` waits until everything accepted is durable; ``close()``.

``bulk_build(path, plan)`` fills a database for the read, list and turn workloads: through
the store's public API where that is fast enough, otherwise with bulk SQL into the store's
own schema (rows shaped exactly as its API writes them); :attr:`Store.build_note` says which.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

from sessionlite import Event, SessionService

from .workloads import APP_NAME, body_of, text_of

BUILD_CHUNK = 10_000  # rows per bulk INSERT transaction
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


# -- payloads ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Payload:
    """What every store is asked to store: the same for all of them."""

    index: int  # the event's position in its session (0 = first)
    author: str  # "user" or "assistant"
    text: str
    delta: dict[str, Any]  # state delta ({} for none)


def payload(index: int, chars: int, *, delta: bool = True) -> Payload:
    """Event ``index`` of a session: alternating user / assistant, deterministic text
    (``workloads.text_of(chars, seed=index)``), state delta ``{"turn": index}`` — the
    same events ``workloads.make_events`` builds for sessionlite."""
    return Payload(
        index=index,
        author="user" if index % 2 == 0 else "assistant",
        text=text_of(chars, seed=index),
        delta={"turn": index} if delta else {},
    )


def payloads(count: int, chars: int, *, first: int = 0) -> list[Payload]:
    return [payload(i, chars) for i in range(first, first + count)]


@dataclasses.dataclass(frozen=True)
class SessionPlan:
    """One session of a database to build: ``events`` events of ``chars`` characters."""

    user_id: str
    session_id: str
    events: int
    chars: int


def expected_texts(count: int, chars: int, newest: int) -> list[str]:
    """The texts of the newest ``newest`` events of a session of ``count`` events."""
    return [text_of(chars, seed=i) for i in range(max(0, count - newest), count)]


# -- the interface ----------------------------------------------------------------------


class Store(abc.ABC):
    """A session store under test. Subclasses set the class attributes."""

    key: ClassVar[str]  # short identifier used in results
    label: ClassVar[str]  # the name shown in tables
    family: ClassVar[str]  # stores of one family share database files (same schema)
    events_table: ClassVar[str]
    config: ClassVar[str]  # how the store is configured, in words
    build_note: ClassVar[str]  # how bulk_build fills databases
    has_state: ClassVar[bool] = True
    has_list: ClassVar[bool] = True
    slow: ClassVar[bool] = False  # a few hundred events/s: capped by the time budget

    @abc.abstractmethod
    async def setup(self, path: Path) -> None: ...

    @abc.abstractmethod
    async def create_session(self, user_id: str, session_id: str) -> Any: ...

    @abc.abstractmethod
    def prepare(self, p: Payload) -> Any: ...

    @abc.abstractmethod
    async def append(self, handle: Any, native: Any) -> None: ...

    @abc.abstractmethod
    async def read_recent(self, user_id: str, session_id: str, n: int) -> tuple[Any, list[Any]]:
        """(a handle to append to, the newest ``n`` events oldest first)."""

    @abc.abstractmethod
    def texts(self, events: Sequence[Any]) -> list[str]:
        """The text of each event ``read_recent`` returned (to check the result)."""

    async def list_user_sessions(self, user_id: str, n: int) -> list[str] | None:
        return None

    async def flush(self) -> None:  # noqa: B027 - most stores are durable on return
        pass

    @abc.abstractmethod
    async def close(self) -> None: ...

    @classmethod
    @abc.abstractmethod
    def bulk_build(cls, path: Path, plan: Sequence[SessionPlan]) -> None:
        """Fill a new database file at ``path`` with the sessions of ``plan``."""

    def version_key(self) -> str:
        """Part of a cached database's key: a new library version rebuilds it."""
        return ""


def count_rows(path: Path, table: str) -> int:
    conn = sqlite3.connect(path)
    try:
        (count,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    finally:
        conn.close()
    return int(count)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- sessionlite ------------------------------------------------------------------------


class SessionliteStore(Store):
    """``SessionService(path)``: durable by default (``append_event`` returns once
    committed), WAL with ``synchronous=NORMAL``."""

    key = "sessionlite"
    label = "sessionlite (durable)"
    family = "sessionlite"
    events_table = "events"
    config = (
        "`SessionService(path)` with default options: durable (`append_event` returns once "
        "committed; concurrent appends share group commits), WAL, `synchronous=NORMAL`; "
        "reads `get_session(num_recent_events=20)`, lists `list_sessions(limit=50)`"
    )
    build_note = "public API (`create_session`, `append_events` in chunks of 1,000)"
    options: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        self.service: SessionService | None = None

    async def setup(self, path: Path) -> None:
        self.service = SessionService(path, **self.options)
        await self.service.open()

    def _svc(self) -> SessionService:
        assert self.service is not None
        return self.service

    async def create_session(self, user_id: str, session_id: str) -> Any:
        return await self._svc().create_session(
            app_name=APP_NAME, user_id=user_id, session_id=session_id
        )

    def prepare(self, p: Payload) -> Event:
        return Event(author=p.author, content=p.text, state_delta=dict(p.delta))

    async def append(self, handle: Any, native: Any) -> None:
        await self._svc().append_event(handle, native)

    async def read_recent(self, user_id: str, session_id: str, n: int) -> tuple[Any, list[Any]]:
        session = await self._svc().get_session(
            app_name=APP_NAME, user_id=user_id, session_id=session_id, num_recent_events=n
        )
        if session is None:
            raise LookupError(f"session {session_id!r} not found")
        return session, list(session.events)

    def texts(self, events: Sequence[Any]) -> list[str]:
        return [event.content for event in events]

    async def list_user_sessions(self, user_id: str, n: int) -> list[str] | None:
        page = await self._svc().list_sessions(app_name=APP_NAME, user_id=user_id, limit=n)
        return [session.id for session in page.sessions]

    async def flush(self) -> None:
        await self._svc().flush()

    async def close(self) -> None:
        if self.service is not None:
            await self.service.aclose()

    @classmethod
    def bulk_build(cls, path: Path, plan: Sequence[SessionPlan]) -> None:
        asyncio.run(_sessionlite_build(path, plan))

    def version_key(self) -> str:
        import sessionlite

        return sessionlite.__version__


async def _sessionlite_build(path: Path, plan: Sequence[SessionPlan]) -> None:
    async with SessionService(path) as service:

        async def fill(item: SessionPlan) -> None:
            session = await service.create_session(
                app_name=APP_NAME, user_id=item.user_id, session_id=item.session_id
            )
            done = 0
            while done < item.events:
                n = min(1000, item.events - done)
                events = [
                    Event(author=p.author, content=p.text, state_delta=p.delta)
                    for p in payloads(n, item.chars, first=done)
                ]
                await service.append_events(session, events)
                session.events.clear()
                done += n

        # Many small sessions: concurrently (they share commits); big ones one by one.
        for group in _chunks(plan, 200):
            await asyncio.gather(*(fill(item) for item in group))


class SessionliteAsyncStore(SessionliteStore):
    """``SessionService(path, async_persist=True)``."""

    key = "sessionlite-async"
    label = "sessionlite (async_persist)"
    config = (
        "`SessionService(path, async_persist=True)`: `append_event` returns once the event "
        "is accepted; background workers persist it. Timed until `flush()` returns, i.e. "
        "until every event is durable"
    )
    options: ClassVar[dict[str, Any]] = {"async_persist": True}


class SessionliteFullSyncStore(SessionliteStore):
    """Durable with ``synchronous="FULL"``: the fsync policy of the peers' defaults."""

    key = "sessionlite-full"
    label = "sessionlite (durable, synchronous=FULL)"
    config = (
        '`SessionService(path, synchronous="FULL")`: durable, and every commit is fsynced '
        "as the peers' defaults do (shown for the append workload only)"
    )
    options: ClassVar[dict[str, Any]] = {"synchronous": "FULL"}


# -- Google ADK -------------------------------------------------------------------------


def _adk_event(p: Payload, timestamp: float | None = None) -> Any:
    from google.adk.events.event import Event as AdkEvent
    from google.adk.events.event_actions import EventActions
    from google.genai import types

    extra: dict[str, Any] = {} if timestamp is None else {"timestamp": timestamp}
    return AdkEvent(
        author=p.author,
        invocation_id=f"inv-{p.index // 2}",
        content=types.Content(
            role="user" if p.author == "user" else "model", parts=[types.Part(text=p.text)]
        ),
        actions=EventActions(state_delta=dict(p.delta)),
        **extra,
    )


def _adk_texts(events: Sequence[Any]) -> list[str]:
    return [event.content.parts[0].text for event in events]


def _adk_version() -> str:
    from importlib.metadata import version

    return version("google-adk")


def _users_first_sessions(
    plan: Sequence[SessionPlan],
) -> tuple[list[SessionPlan], list[SessionPlan]]:
    """(the first session of each user, the rest)."""
    seen: set[str] = set()
    first, rest = [], []
    for item in plan:
        if item.user_id in seen:
            rest.append(item)
        else:
            seen.add(item.user_id)
            first.append(item)
    return first, rest


def _planned_events(
    plan: Sequence[SessionPlan], base: float
) -> Iterable[tuple[SessionPlan, Payload, float]]:
    """Every event of the plan with its timestamp: 1 ms apart, in plan order, from ``base``."""
    tick = 0
    for item in plan:
        for i in range(item.events):
            yield item, payload(i, item.chars), base + tick * 1e-3
            tick += 1


class AdkDatabaseStore(Store):
    """ADK's ``DatabaseSessionService(db_url="sqlite+aiosqlite:///path")``."""

    key = "adk-database"
    label = "ADK DatabaseSessionService"
    family = "adk-database"
    events_table = "events"
    slow = True
    config = (
        '`DatabaseSessionService(db_url="sqlite+aiosqlite:///path")`, SQLAlchemy defaults '
        "(pool {pool}), then `prepare_tables()` as its docstring recommends; SQLite defaults: "
        "rollback journal, `synchronous=FULL`, 5 s busy timeout. Reads "
        "`get_session(config=GetSessionConfig(num_recent_events=20))`; "
        "`list_sessions(user_id=...)` has no paging and returns all of the user's sessions "
        "(100), of which the newest 50 are kept"
    )
    build_note = (
        "first session of each user through `create_session` (it also creates the app and "
        "user state rows), other sessions and all events by bulk INSERTs with SQLAlchemy "
        "into ADK's own tables (`StorageSession`/`StorageEvent.from_event` rows, v1 schema)"
    )

    def __init__(self) -> None:
        self.svc: Any = None

    async def setup(self, path: Path) -> None:
        from google.adk.sessions.database_session_service import DatabaseSessionService

        self.svc = DatabaseSessionService(db_url=f"sqlite+aiosqlite:///{path}")
        await self.svc.prepare_tables()

    def pool_description(self) -> str:
        pool = self.svc.db_engine.pool
        size = pool.size() if hasattr(pool, "size") else "?"
        overflow = getattr(pool, "_max_overflow", "?")
        timeout = getattr(pool, "_timeout", "?")
        return f"`{type(pool).__name__}`, size {size}, overflow {overflow}, timeout {timeout} s"

    async def create_session(self, user_id: str, session_id: str) -> Any:
        return await self.svc.create_session(
            app_name=APP_NAME, user_id=user_id, session_id=session_id
        )

    def prepare(self, p: Payload) -> Any:
        return _adk_event(p)

    async def append(self, handle: Any, native: Any) -> None:
        await self.svc.append_event(handle, native)

    async def read_recent(self, user_id: str, session_id: str, n: int) -> tuple[Any, list[Any]]:
        from google.adk.sessions.base_session_service import GetSessionConfig

        session = await self.svc.get_session(
            app_name=APP_NAME,
            user_id=user_id,
            session_id=session_id,
            config=GetSessionConfig(num_recent_events=n),
        )
        if session is None:
            raise LookupError(f"session {session_id!r} not found")
        return session, list(session.events)

    def texts(self, events: Sequence[Any]) -> list[str]:
        return _adk_texts(events)

    async def list_user_sessions(self, user_id: str, n: int) -> list[str] | None:
        response = await self.svc.list_sessions(app_name=APP_NAME, user_id=user_id)
        # Oldest update first, everything at once: the newest n are the last n.
        return [session.id for session in reversed(response.sessions[-n:])]

    async def close(self) -> None:
        if self.svc is not None:
            await self.svc.close()

    @classmethod
    def bulk_build(cls, path: Path, plan: Sequence[SessionPlan]) -> None:
        first, rest = _users_first_sessions(plan)

        async def via_api() -> None:
            store = cls()
            await store.setup(path)
            try:
                for group in _chunks(first, 50):
                    await asyncio.gather(
                        *(store.create_session(item.user_id, item.session_id) for item in group)
                    )
            finally:
                await store.close()

        asyncio.run(via_api())
        _adk_database_bulk(path, rest, plan)

    def version_key(self) -> str:
        return _adk_version()


def _adk_database_bulk(
    path: Path, new_sessions: Sequence[SessionPlan], plan: Sequence[SessionPlan]
) -> None:
    from google.adk.sessions.schemas.shared import timestamp_to_utc_datetime
    from google.adk.sessions.schemas.v1 import StorageEvent, StorageSession
    from google.adk.sessions.session import Session as AdkSession
    from sqlalchemy import create_engine, update

    base = time.time() - 2 * 86400
    engine = create_engine(f"sqlite:///{path}")
    sessions_table = StorageSession.__table__
    events_table = StorageEvent.__table__
    try:
        # Sessions get increasing update times (plan order), as if created one by one.
        for chunk_start in range(0, len(new_sessions), BUILD_CHUNK):
            chunk = new_sessions[chunk_start : chunk_start + BUILD_CHUNK]
            rows = []
            for offset, item in enumerate(chunk):
                when = timestamp_to_utc_datetime(base + (chunk_start + offset) * 1e-3)
                rows.append(
                    {
                        "app_name": APP_NAME,
                        "user_id": item.user_id,
                        "id": item.session_id,
                        "state": {},
                        "create_time": when,
                        "update_time": when,
                    }
                )
            with engine.begin() as conn:
                conn.execute(sessions_table.insert(), rows)
        stubs: dict[str, Any] = {}
        last: dict[tuple[str, str], tuple[int, float]] = {}
        batch: list[dict[str, Any]] = []

        def flush_batch() -> None:
            if batch:
                with engine.begin() as conn:
                    conn.execute(events_table.insert(), batch)
                batch.clear()

        for item, p, ts in _planned_events(plan, base + 86400):
            stub = stubs.get(item.session_id)
            if stub is None:
                stub = stubs[item.session_id] = AdkSession(
                    app_name=APP_NAME, user_id=item.user_id, id=item.session_id
                )
            row = StorageEvent.from_event(stub, _adk_event(p, ts))
            batch.append({column.key: getattr(row, column.key) for column in events_table.columns})
            last[(item.user_id, item.session_id)] = (p.index, ts)
            if len(batch) >= BUILD_CHUNK:
                flush_batch()
        flush_batch()
        # What append_event leaves: the session state merged, update_time = last event.
        with engine.begin() as conn:
            for (user_id, session_id), (index, ts) in last.items():
                conn.execute(
                    update(sessions_table)
                    .where(
                        sessions_table.c.app_name == APP_NAME,
                        sessions_table.c.user_id == user_id,
                        sessions_table.c.id == session_id,
                    )
                    .values(state={"turn": index}, update_time=timestamp_to_utc_datetime(ts))
                )
    finally:
        engine.dispose()


class AdkSqliteStore(Store):
    """ADK's ``SqliteSessionService(db_path=...)`` (aiosqlite)."""

    key = "adk-sqlite"
    label = "ADK SqliteSessionService"
    family = "adk-sqlite"
    events_table = "events"
    slow = True
    config = (
        "`SqliteSessionService(db_path=path)`: a new aiosqlite connection (and thread) per "
        "call; SQLite defaults: rollback journal, `synchronous=FULL`, 5 s busy timeout. Reads "
        "`get_session(config=GetSessionConfig(num_recent_events=20))`; "
        "`list_sessions(user_id=...)` has no paging (all 100 of the user's sessions, newest "
        "50 kept)"
    )
    build_note = (
        "first session of each user through `create_session` (creates the schema), other "
        "sessions and all events by `sqlite3` bulk INSERTs into ADK's own tables, rows as "
        "`append_event` writes them (`event.model_dump_json(exclude_none=True)`)"
    )

    def __init__(self) -> None:
        self.svc: Any = None

    async def setup(self, path: Path) -> None:
        from google.adk.sessions.sqlite_session_service import SqliteSessionService

        self.svc = SqliteSessionService(db_path=str(path))

    async def create_session(self, user_id: str, session_id: str) -> Any:
        return await self.svc.create_session(
            app_name=APP_NAME, user_id=user_id, session_id=session_id
        )

    def prepare(self, p: Payload) -> Any:
        return _adk_event(p)

    async def append(self, handle: Any, native: Any) -> None:
        await self.svc.append_event(handle, native)

    async def read_recent(self, user_id: str, session_id: str, n: int) -> tuple[Any, list[Any]]:
        from google.adk.sessions.base_session_service import GetSessionConfig

        session = await self.svc.get_session(
            app_name=APP_NAME,
            user_id=user_id,
            session_id=session_id,
            config=GetSessionConfig(num_recent_events=n),
        )
        if session is None:
            raise LookupError(f"session {session_id!r} not found")
        return session, list(session.events)

    def texts(self, events: Sequence[Any]) -> list[str]:
        return _adk_texts(events)

    async def list_user_sessions(self, user_id: str, n: int) -> list[str] | None:
        response = await self.svc.list_sessions(app_name=APP_NAME, user_id=user_id)
        return [session.id for session in reversed(response.sessions[-n:])]

    async def close(self) -> None:
        if self.svc is not None:
            await self.svc.close()

    @classmethod
    def bulk_build(cls, path: Path, plan: Sequence[SessionPlan]) -> None:
        first, rest = _users_first_sessions(plan)

        async def via_api() -> None:
            store = cls()
            await store.setup(path)
            try:
                for group in _chunks(first, 20):
                    await asyncio.gather(
                        *(store.create_session(item.user_id, item.session_id) for item in group)
                    )
            finally:
                await store.close()

        asyncio.run(via_api())
        base = time.time() - 2 * 86400
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            for chunk_start in range(0, len(rest), BUILD_CHUNK):
                chunk = rest[chunk_start : chunk_start + BUILD_CHUNK]
                conn.execute("BEGIN")
                conn.executemany(
                    "INSERT INTO sessions (app_name, user_id, id, state, create_time, "
                    "update_time) VALUES (?, ?, ?, '{}', ?, ?)",
                    [
                        (APP_NAME, item.user_id, item.session_id, when, when)
                        for offset, item in enumerate(chunk)
                        for when in (base + (chunk_start + offset) * 1e-3,)
                    ],
                )
                conn.execute("COMMIT")
            last: dict[tuple[str, str], tuple[int, float]] = {}
            batch: list[tuple[Any, ...]] = []

            def flush_batch() -> None:
                if batch:
                    conn.execute("BEGIN")
                    conn.executemany(
                        "INSERT INTO events (id, app_name, user_id, session_id, invocation_id, "
                        "timestamp, event_data) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        batch,
                    )
                    conn.execute("COMMIT")
                    batch.clear()

            for item, p, ts in _planned_events(plan, base + 86400):
                event = _adk_event(p, ts)
                batch.append(
                    (
                        event.id,
                        APP_NAME,
                        item.user_id,
                        item.session_id,
                        event.invocation_id,
                        event.timestamp,
                        event.model_dump_json(exclude_none=True),
                    )
                )
                last[(item.user_id, item.session_id)] = (p.index, ts)
                if len(batch) >= BUILD_CHUNK:
                    flush_batch()
            flush_batch()
            conn.execute("BEGIN")
            conn.executemany(
                "UPDATE sessions SET state = ?, update_time = ? "
                "WHERE app_name = ? AND user_id = ? AND id = ?",
                [
                    (json.dumps({"turn": index}), ts, APP_NAME, user_id, session_id)
                    for (user_id, session_id), (index, ts) in last.items()
                ],
            )
            conn.execute("COMMIT")
        finally:
            conn.close()

    def version_key(self) -> str:
        return _adk_version()


# -- OpenAI Agents SDK ------------------------------------------------------------------


def _openai_version() -> str:
    from importlib.metadata import version

    return version("openai-agents")


class OpenAISQLiteStore(Store):
    """OpenAI Agents SDK ``SQLiteSession(session_id, db_path)``: one object per session."""

    key = "openai-sqlite"
    label = "OpenAI SQLiteSession"
    family = "openai"
    events_table = "agent_messages"
    has_state = False
    has_list = False
    slow = True
    config = (
        "`SQLiteSession(session_id, db_path)`, one object per conversation as the docs show; "
        "each call runs in `asyncio.to_thread` under a process-wide lock per file, thread-local "
        "connections, WAL, `synchronous=FULL` (SQLite default). An event is one message item "
        '`{"role": ..., "content": text}` stored with `add_items([item])`; reads '
        "`get_items(limit=20)`. No state (the delta is not stored) and no way to list sessions"
    )
    build_note = (
        "`sqlite3` bulk INSERTs into the SDK's own `agent_sessions` / `agent_messages` tables "
        "(created by the class), `message_data = json.dumps(item)` as `add_items` writes it"
    )

    def __init__(self) -> None:
        self.path: Path | None = None
        self.sessions: dict[str, Any] = {}

    async def setup(self, path: Path) -> None:
        self.path = path

    def _new(self, session_id: str) -> Any:
        from agents import SQLiteSession

        return SQLiteSession(session_id, self.path)

    def _get(self, session_id: str) -> Any:
        session = self.sessions.get(session_id)
        if session is None:
            session = self.sessions[session_id] = self._new(session_id)
        return session

    async def create_session(self, user_id: str, session_id: str) -> Any:
        return self._get(session_id)

    def prepare(self, p: Payload) -> Any:
        return {"role": p.author, "content": p.text}

    async def append(self, handle: Any, native: Any) -> None:
        await handle.add_items([native])

    async def read_recent(self, user_id: str, session_id: str, n: int) -> tuple[Any, list[Any]]:
        session = self._get(session_id)
        return session, list(await session.get_items(limit=n))

    def texts(self, events: Sequence[Any]) -> list[str]:
        return [item["content"] for item in events]

    async def _close_one(self, session: Any) -> None:
        session.close()

    async def close(self) -> None:
        sessions, self.sessions = list(self.sessions.values()), {}
        for session in sessions:
            await self._close_one(session)

    @classmethod
    def bulk_build(cls, path: Path, plan: Sequence[SessionPlan]) -> None:
        from agents import SQLiteSession

        SQLiteSession("schema", path).close()  # creates the tables, writes no row
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            for chunk in _chunks(plan, BUILD_CHUNK):
                conn.execute("BEGIN")
                conn.executemany(
                    "INSERT INTO agent_sessions (session_id) VALUES (?)",
                    [(item.session_id,) for item in chunk],
                )
                conn.execute("COMMIT")
            batch: list[tuple[str, str]] = []
            for item, p, _ in _planned_events(plan, 0.0):
                batch.append((item.session_id, json.dumps({"role": p.author, "content": p.text})))
                if len(batch) >= BUILD_CHUNK:
                    conn.execute("BEGIN")
                    conn.executemany(
                        "INSERT INTO agent_messages (session_id, message_data) VALUES (?, ?)",
                        batch,
                    )
                    conn.execute("COMMIT")
                    batch.clear()
            if batch:
                conn.execute("BEGIN")
                conn.executemany(
                    "INSERT INTO agent_messages (session_id, message_data) VALUES (?, ?)", batch
                )
                conn.execute("COMMIT")
        finally:
            conn.close()

    def version_key(self) -> str:
        return _openai_version()


class OpenAIAsyncSQLiteStore(OpenAISQLiteStore):
    """``agents.extensions.memory.AsyncSQLiteSession(session_id, db_path=...)``."""

    key = "openai-async-sqlite"
    label = "OpenAI AsyncSQLiteSession"
    config = (
        "`AsyncSQLiteSession(session_id, db_path=path)` from `agents.extensions.memory`, one "
        "object per conversation; each object opens its own aiosqlite connection (and thread) "
        "on first use, WAL, `synchronous=FULL`, 5 s busy timeout. Same items, "
        "`add_items([item])` and `get_items(limit=20)`; no state, no listing"
    )

    def _new(self, session_id: str) -> Any:
        from agents.extensions.memory import AsyncSQLiteSession

        return AsyncSQLiteSession(session_id, db_path=self.path)

    async def _close_one(self, session: Any) -> None:
        await session.close()


# -- raw sqlite3: the ceiling -----------------------------------------------------------

_RAW_DDL = (
    """
    CREATE TABLE IF NOT EXISTS sessions (
        pk INTEGER PRIMARY KEY,
        app_name TEXT NOT NULL,
        user_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        state TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        last_sequence INTEGER NOT NULL
    )
    """,
    "CREATE UNIQUE INDEX IF NOT EXISTS sessions_key ON sessions (app_name, user_id, session_id)",
    "CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (app_name, user_id, updated_at DESC)",
    """
    CREATE TABLE IF NOT EXISTS events (
        pk INTEGER PRIMARY KEY,
        session_pk INTEGER NOT NULL,
        sequence INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        author TEXT NOT NULL,
        timestamp INTEGER NOT NULL,
        branch TEXT NOT NULL,
        body TEXT NOT NULL
    )
    """,
    "CREATE UNIQUE INDEX IF NOT EXISTS events_by_sequence ON events (session_pk, sequence)",
    "CREATE UNIQUE INDEX IF NOT EXISTS events_by_id ON events (session_pk, event_id)",
)
_RAW_INSERT = (
    "INSERT INTO events (session_pk, sequence, event_id, author, timestamp, branch, body) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


@dataclasses.dataclass
class RawHandle:
    pk: int
    sequence: int
    state: dict[str, Any]


class RawSqliteStore(Store):
    """Stdlib ``sqlite3``, one connection, blocking calls on the event loop, every write of
    a measurement in one transaction: what Python and SQLite can do at best."""

    key = "raw-sqlite3"
    label = "raw sqlite3 (ceiling)"
    family = "raw"
    events_table = "events"
    config = (
        "stdlib `sqlite3`, one connection, WAL, `synchronous=NORMAL`, tables shaped like "
        "sessionlite's (events with `(session_pk, sequence)` and `(session_pk, event_id)` "
        "UNIQUE indexes, sessions indexed by `(app_name, user_id, updated_at)`), every body "
        "serialized as sessionlite does (`Event.model_dump_json`, in the timed region), all "
        "writes of a measurement in ONE transaction committed at the end: append = one "
        "`executemany`; turns = 2 SELECTs + 2 INSERTs + 1 UPDATE per turn; no concurrency, "
        "no durability per call. The ceiling, not a store"
    )
    build_note = "`sqlite3` bulk INSERTs"

    def __init__(self) -> None:
        self.conn: sqlite3.Connection | None = None
        self.in_transaction = False

    async def setup(self, path: Path) -> None:
        self.conn = _raw_open(path)

    def _conn(self) -> sqlite3.Connection:
        assert self.conn is not None
        return self.conn

    async def create_session(self, user_id: str, session_id: str) -> Any:
        conn = self._conn()
        cursor = conn.execute(
            "INSERT INTO sessions (app_name, user_id, session_id, state, updated_at, "
            "last_sequence) VALUES (?, ?, ?, '{}', ?, 0)",
            (APP_NAME, user_id, session_id, time.time_ns() // 1000),
        )
        assert cursor.lastrowid is not None
        return RawHandle(pk=cursor.lastrowid, sequence=0, state={})

    def prepare(self, p: Payload) -> Event:
        return Event(author=p.author, content=p.text, state_delta=dict(p.delta))

    def _begin(self) -> None:
        if not self.in_transaction:
            self._conn().execute("BEGIN IMMEDIATE")
            self.in_transaction = True

    async def append(self, handle: Any, native: Any) -> None:
        self._begin()
        conn = self._conn()
        handle.sequence += 1
        conn.execute(_RAW_INSERT, _raw_row(handle.pk, handle.sequence, native))
        if native.state_delta:
            handle.state.update(native.state_delta)
            conn.execute(
                "UPDATE sessions SET state = ?, updated_at = ?, last_sequence = ? WHERE pk = ?",
                (json.dumps(handle.state), time.time_ns() // 1000, handle.sequence, handle.pk),
            )

    def append_all(self, handles: Sequence[Any], natives: Sequence[Sequence[Event]]) -> None:
        """The append workload's ceiling: build every row, one ``executemany``, one commit."""
        conn = self._conn()
        rows = [
            _raw_row(handle.pk, sequence, event)
            for handle, events in zip(handles, natives, strict=True)
            for sequence, event in enumerate(events, start=1)
        ]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_RAW_INSERT, rows)
        conn.execute("COMMIT")

    async def read_recent(self, user_id: str, session_id: str, n: int) -> tuple[Any, list[Any]]:
        conn = self._conn()
        row = conn.execute(
            "SELECT pk, state, last_sequence FROM sessions "
            "WHERE app_name = ? AND user_id = ? AND session_id = ?",
            (APP_NAME, user_id, session_id),
        ).fetchone()
        if row is None:
            raise LookupError(f"session {session_id!r} not found")
        rows = conn.execute(
            "SELECT body FROM events WHERE session_pk = ? ORDER BY sequence DESC LIMIT ?",
            (row[0], n),
        ).fetchall()
        events = [json.loads(body) for (body,) in reversed(rows)]
        return RawHandle(pk=row[0], sequence=row[2], state=json.loads(row[1])), events

    def texts(self, events: Sequence[Any]) -> list[str]:
        return [event["content"] for event in events]

    async def list_user_sessions(self, user_id: str, n: int) -> list[str] | None:
        rows = self._conn().execute(
            "SELECT session_id, state, updated_at FROM sessions WHERE app_name = ? AND "
            "user_id = ? ORDER BY updated_at DESC LIMIT ?",
            (APP_NAME, user_id, n),
        )
        return [session_id for session_id, state, _ in rows if json.loads(state) is not None]

    async def flush(self) -> None:
        if self.in_transaction:
            self._conn().execute("COMMIT")
            self.in_transaction = False

    async def close(self) -> None:
        if self.conn is not None:
            await self.flush()
            self.conn.close()
            self.conn = None

    @classmethod
    def bulk_build(cls, path: Path, plan: Sequence[SessionPlan]) -> None:
        conn = _raw_open(path)
        try:
            base_us = (time.time_ns() // 1000) - 2 * 86400 * 1_000_000
            pks: dict[str, int] = {}
            for chunk_start in range(0, len(plan), BUILD_CHUNK):
                conn.execute("BEGIN")
                for offset, item in enumerate(plan[chunk_start : chunk_start + BUILD_CHUNK]):
                    state = {"turn": item.events - 1} if item.events else {}
                    cursor = conn.execute(
                        "INSERT INTO sessions (app_name, user_id, session_id, state, "
                        "updated_at, last_sequence) VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            APP_NAME,
                            item.user_id,
                            item.session_id,
                            json.dumps(state),
                            base_us + (chunk_start + offset) * 1000,
                            item.events,
                        ),
                    )
                    assert cursor.lastrowid is not None
                    pks[item.session_id] = cursor.lastrowid
                conn.execute("COMMIT")
            batch: list[tuple[Any, ...]] = []
            for item, p, _ in _planned_events(plan, 0.0):
                event = Event(author=p.author, content=p.text, state_delta=p.delta)
                batch.append(_raw_row(pks[item.session_id], p.index + 1, event))
                if len(batch) >= BUILD_CHUNK:
                    conn.execute("BEGIN")
                    conn.executemany(_RAW_INSERT, batch)
                    conn.execute("COMMIT")
                    batch.clear()
            if batch:
                conn.execute("BEGIN")
                conn.executemany(_RAW_INSERT, batch)
                conn.execute("COMMIT")
        finally:
            conn.close()


def _raw_open(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for statement in _RAW_DDL:
        conn.execute(statement)
    return conn


def _raw_row(session_pk: int, sequence: int, event: Event) -> tuple[Any, ...]:
    return (
        session_pk,
        sequence,
        event.id,
        event.author,
        (event.timestamp - _EPOCH) // _MICROSECOND,
        event.branch,
        body_of(event),
    )


# -- the line-up ------------------------------------------------------------------------

STORES: tuple[type[Store], ...] = (
    SessionliteStore,
    SessionliteAsyncStore,
    AdkDatabaseStore,
    AdkSqliteStore,
    OpenAISQLiteStore,
    OpenAIAsyncSQLiteStore,
    RawSqliteStore,
)
"""Every store, in table order. ``SessionliteFullSyncStore`` runs in the append workload."""
