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
from collections.abc import Iterator, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar

import sessionlite
from sessionlite import Event, SessionService

from . import rawsqlite
from .workloads import APP_NAME, batches, fill_session, text_of

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


Plan = Sequence[SessionPlan]


def expected_texts(count: int, chars: int, newest: int) -> list[str]:
    """The texts of the newest ``newest`` events of a session of ``count`` events."""
    return [text_of(chars, seed=i) for i in range(max(0, count - newest), count)]


def _planned_events(plan: Plan, base: float) -> Iterator[tuple[SessionPlan, Payload, float]]:
    """Every event of the plan with its timestamp: 1 ms apart, in plan order, from ``base``."""
    tick = 0
    for item in plan:
        for i in range(item.events):
            yield item, payload(i, item.chars), base + tick * 1e-3
            tick += 1


def _last_events(plan: Plan, base: float) -> dict[tuple[str, str], tuple[int, float]]:
    """(user, session) -> (index, timestamp) of its last event in ``_planned_events``."""
    last = {}
    tick = 0
    for item in plan:
        tick += item.events
        if item.events:
            last[item.user_id, item.session_id] = (item.events - 1, base + (tick - 1) * 1e-3)
    return last


def _timed_sessions(items: Plan, base: float) -> Iterator[tuple[float, SessionPlan]]:
    """Sessions with increasing creation times (1 ms apart), as if created one by one."""
    for i, item in enumerate(items):
        yield base + i * 1e-3, item


# -- the interface ----------------------------------------------------------------------


class Store(abc.ABC):
    """A session store under test. Subclasses set the class attributes."""

    key: ClassVar[str]  # short identifier used in results
    label: ClassVar[str]  # the name shown in tables
    family: ClassVar[str]  # stores of one family share database files (same schema)
    events_table: ClassVar[str] = "events"
    config: ClassVar[str]  # how the store is configured, in words
    build_note: ClassVar[str]  # how bulk_build fills databases
    package: ClassVar[str | None] = None  # its distribution: part of cached databases' keys
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
    def bulk_build(cls, path: Path, plan: Plan) -> None:
        """Fill a new database file at ``path`` with the sessions of ``plan``."""

    def version_key(self) -> str:
        """Part of a cached database's key: a new library version rebuilds it."""
        return version(self.package) if self.package else ""


def _sessionlite_event(p: Payload) -> Event:
    return Event(author=p.author, content=p.text, state_delta=dict(p.delta))


# -- sessionlite ------------------------------------------------------------------------


class SessionliteStore(Store):
    """``SessionService(path)``: durable by default (``append_event`` returns once
    committed), WAL with ``synchronous=NORMAL``."""

    key = "sessionlite"
    label = "sessionlite (durable)"
    family = "sessionlite"
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
        return _sessionlite_event(p)

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
    def bulk_build(cls, path: Path, plan: Plan) -> None:
        async def build() -> None:
            async with SessionService(path) as service:
                # Many small sessions: concurrently (they share commits); big ones one by one.
                for group in batches(plan, 200):
                    await asyncio.gather(
                        *(
                            fill_session(service, s.user_id, s.session_id, s.events, s.chars)
                            for s in group
                        )
                    )

        asyncio.run(build())

    def version_key(self) -> str:
        return sessionlite.__version__


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


def _users_first_sessions(
    plan: Plan,
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


class _AdkStore(Store):
    """What ADK's two session services share: the same API, events and bulk build."""

    package = "google-adk"
    slow = True
    api_concurrency: ClassVar[int]  # concurrent create_session calls in bulk_build

    def __init__(self) -> None:
        self.svc: Any = None

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
        return [event.content.parts[0].text for event in events]

    async def list_user_sessions(self, user_id: str, n: int) -> list[str] | None:
        response = await self.svc.list_sessions(app_name=APP_NAME, user_id=user_id)
        # Oldest update first, everything at once: the newest n are the last n.
        return [session.id for session in reversed(response.sessions[-n:])]

    async def close(self) -> None:
        if self.svc is not None:
            await self.svc.close()

    @classmethod
    def bulk_build(cls, path: Path, plan: Plan) -> None:
        """The first session of each user through ``create_session`` (app and user state
        rows, and the schema), the rest by ``_bulk_insert``."""
        first, rest = _users_first_sessions(plan)

        async def via_api() -> None:
            store = cls()
            await store.setup(path)
            try:
                for group in batches(first, cls.api_concurrency):
                    await asyncio.gather(
                        *(store.create_session(item.user_id, item.session_id) for item in group)
                    )
            finally:
                await store.close()

        asyncio.run(via_api())
        base = time.time() - 2 * 86400
        cls._bulk_insert(path, rest, plan, base)

    @classmethod
    @abc.abstractmethod
    def _bulk_insert(cls, path: Path, new_sessions: Plan, plan: Plan, base: float) -> None:
        """Insert ``new_sessions`` (created at ``base`` onwards) and every event of ``plan``
        (a day later), then leave each session as ``append_event`` does: the state merged,
        ``update_time`` = its last event's."""


class AdkDatabaseStore(_AdkStore):
    """ADK's ``DatabaseSessionService(db_url="sqlite+aiosqlite:///path")``."""

    key = "adk-database"
    label = "ADK DatabaseSessionService"
    family = "adk-database"
    api_concurrency = 50
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

    @classmethod
    def _bulk_insert(cls, path: Path, new_sessions: Plan, plan: Plan, base: float) -> None:
        from google.adk.sessions.schemas.shared import timestamp_to_utc_datetime as utc
        from google.adk.sessions.schemas.v1 import StorageEvent, StorageSession
        from google.adk.sessions.session import Session as AdkSession
        from sqlalchemy import create_engine, update

        engine = create_engine(f"sqlite:///{path}")
        sessions: Any = StorageSession.__table__
        events: Any = StorageEvent.__table__
        stubs: dict[str, Any] = {}

        def event_row(item: SessionPlan, p: Payload, ts: float) -> dict[str, Any]:
            stub = stubs.get(item.session_id)
            if stub is None:
                stub = stubs[item.session_id] = AdkSession(
                    app_name=APP_NAME, user_id=item.user_id, id=item.session_id
                )
            row = StorageEvent.from_event(stub, _adk_event(p, ts))
            return {column.key: getattr(row, column.key) for column in events.columns}

        session_rows = (
            {
                "app_name": APP_NAME,
                "user_id": item.user_id,
                "id": item.session_id,
                "state": {},
                "create_time": utc(when),
                "update_time": utc(when),
            }
            for when, item in _timed_sessions(new_sessions, base)
        )
        event_rows = (event_row(*event) for event in _planned_events(plan, base + 86400))
        try:
            for table, rows in ((sessions, session_rows), (events, event_rows)):
                for batch in batches(rows, rawsqlite.BUILD_CHUNK):
                    with engine.begin() as conn:
                        conn.execute(table.insert(), batch)
            with engine.begin() as conn:
                for (user_id, session_id), (index, ts) in _last_events(plan, base + 86400).items():
                    conn.execute(
                        update(sessions)
                        .where(
                            sessions.c.app_name == APP_NAME,
                            sessions.c.user_id == user_id,
                            sessions.c.id == session_id,
                        )
                        .values(state={"turn": index}, update_time=utc(ts))
                    )
        finally:
            engine.dispose()


class AdkSqliteStore(_AdkStore):
    """ADK's ``SqliteSessionService(db_path=...)`` (aiosqlite)."""

    key = "adk-sqlite"
    label = "ADK SqliteSessionService"
    family = "adk-sqlite"
    api_concurrency = 20
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

    async def setup(self, path: Path) -> None:
        from google.adk.sessions.sqlite_session_service import SqliteSessionService

        self.svc = SqliteSessionService(db_path=str(path))

    @classmethod
    def _bulk_insert(cls, path: Path, new_sessions: Plan, plan: Plan, base: float) -> None:
        def event_row(item: SessionPlan, p: Payload, ts: float) -> tuple[Any, ...]:
            event = _adk_event(p, ts)
            return (
                event.id,
                APP_NAME,
                item.user_id,
                item.session_id,
                event.invocation_id,
                event.timestamp,
                event.model_dump_json(exclude_none=True),
            )

        conn = sqlite3.connect(path, isolation_level=None)
        try:
            rawsqlite.write_batches(
                conn,
                "INSERT INTO sessions (app_name, user_id, id, state, create_time, update_time) "
                "VALUES (?, ?, ?, '{}', ?, ?)",
                (
                    (APP_NAME, item.user_id, item.session_id, when, when)
                    for when, item in _timed_sessions(new_sessions, base)
                ),
            )
            rawsqlite.write_batches(
                conn,
                "INSERT INTO events (id, app_name, user_id, session_id, invocation_id, "
                "timestamp, event_data) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (event_row(*event) for event in _planned_events(plan, base + 86400)),
            )
            rawsqlite.write(
                conn,
                "UPDATE sessions SET state = ?, update_time = ? "
                "WHERE app_name = ? AND user_id = ? AND id = ?",
                [
                    (json.dumps({"turn": index}), ts, APP_NAME, user_id, session_id)
                    for (user_id, session_id), (index, ts) in _last_events(
                        plan, base + 86400
                    ).items()
                ],
            )
        finally:
            conn.close()


# -- OpenAI Agents SDK ------------------------------------------------------------------


class OpenAISQLiteStore(Store):
    """OpenAI Agents SDK ``SQLiteSession(session_id, db_path)``: one object per session."""

    key = "openai-sqlite"
    label = "OpenAI SQLiteSession"
    family = "openai"
    events_table = "agent_messages"
    package = "openai-agents"
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
        self.path = Path()  # set by setup()
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
    def bulk_build(cls, path: Path, plan: Plan) -> None:
        from agents import SQLiteSession

        SQLiteSession("schema", path).close()  # creates the tables, writes no row
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            rawsqlite.write_batches(
                conn,
                "INSERT INTO agent_sessions (session_id) VALUES (?)",
                ((item.session_id,) for item in plan),
            )
            rawsqlite.write_batches(
                conn,
                "INSERT INTO agent_messages (session_id, message_data) VALUES (?, ?)",
                (
                    (item.session_id, json.dumps({"role": p.author, "content": p.text}))
                    for item, p, _ in _planned_events(plan, 0.0)
                ),
            )
        finally:
            conn.close()


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


@dataclasses.dataclass
class RawHandle:
    pk: int
    sequence: int
    state: dict[str, Any]  # decoded on every read, as a store would


class RawSqliteStore(Store):
    """Stdlib ``sqlite3`` on sessionlite's own tables, one connection, blocking calls on
    the event loop, every write of a measurement in one transaction: what Python and
    SQLite can do at best."""

    key = "raw-sqlite3"
    label = "raw sqlite3 (ceiling)"
    family = "raw"
    config = (
        "stdlib `sqlite3`, one connection, WAL, `synchronous=NORMAL`, sessionlite's own "
        "tables and indexes (created by its migrations: events with `(session_pk, sequence)` "
        "and `(session_pk, event_id)` UNIQUE indexes, sessions indexed by `(app_name, "
        "user_id, updated_at)`, state in `session_state`), every body serialized as "
        "sessionlite does (`Event.model_dump_json`, in the timed region), all writes of a "
        "measurement in ONE transaction committed at the end: append = one `executemany`; "
        "turns = 2 SELECTs + 2 INSERTs + 1 state upsert + 1 UPDATE per turn; no concurrency, "
        "no durability per call. The ceiling, not a store"
    )
    build_note = "`sqlite3` bulk INSERTs into sessionlite's tables"

    def __init__(self) -> None:
        self.conn: sqlite3.Connection | None = None
        self.in_transaction = False

    async def setup(self, path: Path) -> None:
        self.conn = rawsqlite.connect(path)

    def _conn(self) -> sqlite3.Connection:
        assert self.conn is not None
        return self.conn

    async def create_session(self, user_id: str, session_id: str) -> Any:
        now = time.time_ns() // 1000
        cursor = self._conn().execute(
            rawsqlite.INSERT_SESSION, (None, APP_NAME, user_id, session_id, now, 0)
        )
        assert cursor.lastrowid is not None
        return RawHandle(pk=cursor.lastrowid, sequence=0, state={})

    def prepare(self, p: Payload) -> Event:
        return _sessionlite_event(p)

    async def append(self, handle: Any, native: Any) -> None:
        conn = self._conn()
        if not self.in_transaction:
            conn.execute("BEGIN IMMEDIATE")
            self.in_transaction = True
        handle.sequence += 1
        conn.execute(
            rawsqlite.INSERT_EVENT, rawsqlite.event_row(handle.pk, handle.sequence, native)
        )
        if native.state_delta:
            conn.executemany(
                rawsqlite.UPSERT_STATE,
                [(handle.pk, key, json.dumps(value)) for key, value in native.state_delta.items()],
            )
            conn.execute(
                "UPDATE sessions SET version = version + 1, updated_at = ?, last_sequence = ? "
                "WHERE pk = ?",
                (time.time_ns() // 1000, handle.sequence, handle.pk),
            )

    def append_all(self, handles: Sequence[Any], natives: Sequence[Sequence[Event]]) -> None:
        """The append workload's ceiling: build every row, one ``executemany``, one commit."""
        rows = [
            rawsqlite.event_row(handle.pk, sequence, event)
            for handle, events in zip(handles, natives, strict=True)
            for sequence, event in enumerate(events, start=1)
        ]
        rawsqlite.write(self._conn(), rawsqlite.INSERT_EVENT, rows)

    async def read_recent(self, user_id: str, session_id: str, n: int) -> tuple[Any, list[Any]]:
        conn = self._conn()
        row = conn.execute(
            "SELECT pk, last_sequence, (SELECT json_group_object(key, json(value)) "
            "FROM session_state WHERE session_pk = sessions.pk) FROM sessions "
            "WHERE app_name = ? AND user_id = ? AND session_id = ? AND deleted_at IS NULL",
            (APP_NAME, user_id, session_id),
        ).fetchone()
        if row is None:
            raise LookupError(f"session {session_id!r} not found")
        rows = conn.execute(
            "SELECT body FROM events WHERE session_pk = ? ORDER BY sequence DESC LIMIT ?",
            (row[0], n),
        ).fetchall()
        events = [json.loads(body) for (body,) in reversed(rows)]
        return RawHandle(pk=row[0], sequence=row[1], state=json.loads(row[2])), events

    def texts(self, events: Sequence[Any]) -> list[str]:
        return [event["content"] for event in events]

    async def list_user_sessions(self, user_id: str, n: int) -> list[str] | None:
        rows = self._conn().execute(
            "SELECT session_id, metadata FROM sessions WHERE app_name = ? AND user_id = ? "
            "AND deleted_at IS NULL ORDER BY updated_at DESC, pk DESC LIMIT ?",
            (APP_NAME, user_id, n),
        )
        # Each row's metadata is decoded, as a store would.
        return [session_id for session_id, metadata in rows if json.loads(metadata) is not None]

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
    def bulk_build(cls, path: Path, plan: Plan) -> None:
        """Session ``plan[i]`` gets pk ``i + 1`` and ``updated_at`` 1 ms after the one before."""
        base_us = (time.time_ns() // 1000) - 2 * 86400 * 1_000_000
        pks = {item.session_id: pk for pk, item in enumerate(plan, start=1)}
        conn = rawsqlite.connect(path)
        try:
            rawsqlite.write_batches(
                conn,
                rawsqlite.INSERT_SESSION,
                (
                    (pk, APP_NAME, item.user_id, item.session_id, base_us + pk * 1000, item.events)
                    for pk, item in enumerate(plan, start=1)
                ),
            )
            rawsqlite.write_batches(
                conn,
                rawsqlite.UPSERT_STATE,
                (
                    (pks[item.session_id], "turn", json.dumps(item.events - 1))
                    for item in plan
                    if item.events
                ),
            )
            rawsqlite.write_batches(
                conn,
                rawsqlite.INSERT_EVENT,
                (
                    rawsqlite.event_row(pks[item.session_id], p.index + 1, _sessionlite_event(p))
                    for item, p, _ in _planned_events(plan, 0.0)
                ),
            )
        finally:
            conn.close()

    def version_key(self) -> str:
        return rawsqlite.SCHEMA_KEY


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
