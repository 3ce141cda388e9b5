"""Model-based test: a hypothesis state machine drives the service against a reference.

Every rule calls the real service (a file database, a manual clock) and applies the
same operation to :class:`Model`, a plain-Python model of the contract; after every
step the invariant reads everything back and compares. The model follows the public
contract (spec/api.md):

* a session row lives until ``expires_at`` (``updated_at + session_ttl``; live while
  ``now < expires_at``). Writes that change the session slide it: create, append,
  ``pop_event``/``clear_events`` when they remove something, ``update_session_state``.
  Reads, retried (identical) appends and app/user state writes do not;
* ``version`` is bumped once per persisted write call (an ``append_events`` batch is
  one); ``sequence`` is per row, strictly increasing and never reused after a pop or a
  clear; a session created again (after delete or expiry) is a new row and starts over;
* ``state_delta`` keys go to the session, ``app:`` or ``user:`` scope; ``temp:`` keys
  are never stored;
* deletes and expiry mark rows (``soft_delete=True``) or remove them; the cleaner marks
  expired rows and purges marked rows after ``soft_delete_retention`` (at once without
  soft delete), and its report counts exactly that.

The machines run durable and with ``async_persist=True``. In async mode an append to a
session the model knows is gone is *accepted*; the rule then flushes and expects the
``PersistenceError`` (naming the event ids, caused by ``SessionNotFoundError`` or
``EventConflictError``) that durable mode raises at once. The invariant flushes first in
async mode: ``get_session`` waits for its own session's queue only, so app/user state
written through *another* session's queued append may not be visible yet — the contract
only promises read-your-writes per session. Buffered appends followed directly by a
reopen (no flush) check that ``aclose`` drains the queue.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import hypothesis
import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import pgtest
from sessionlite import (
    CleanupReport,
    Event,
    EventConflictError,
    InvalidInputError,
    PersistenceError,
    Session,
    SessionExistsError,
    SessionNotFoundError,
    SessionService,
)
from sessionlite.testing import ManualClock

T = TypeVar("T")

# A passing run takes seconds; a failing one spends minutes shrinking (each replay
# reopens the database), and its minimal example is only printed at the end.
pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

APP = "app"
USERS = ("u1", "u2")
# The same session id under two users: they must never see each other.
KEYS = (("u1", "s1"), ("u1", "s2"), ("u2", "s1"))
TTL = timedelta(seconds=100)
RETENTION = timedelta(seconds=250)
STATE_KEYS = ("a", "b", "app:x", "app:y", "user:x", "user:z", "temp:t")
PLAIN_KEYS = ("a", "b", "c")

Key = tuple[str, str]

keys = st.sampled_from(KEYS)
values = st.one_of(st.integers(-3, 9), st.none(), st.text("xyz\x00é", max_size=2))
contents = st.one_of(values, st.lists(st.integers(0, 3), max_size=2), st.just({"k": [1.5]}))
deltas = st.dictionaries(st.sampled_from(STATE_KEYS), values, max_size=3)
plain_deltas = st.dictionaries(st.sampled_from(PLAIN_KEYS), values, max_size=2)
steps = st.sampled_from([1, 30, 99, 100, 101, 250, 400])


# -- the reference model --------------------------------------------------------------------


@dataclass
class Stored:
    """An event as the model expects to read it back."""

    event: Event  # what was appended (kept to retry it byte for byte)
    sequence: int

    @property
    def view(self) -> tuple[str, Any, int]:
        return (self.event.id, self.event.content, self.sequence)


@dataclass
class Row:
    """One session row: live, expired (not yet marked) or marked deleted."""

    key: Key
    order: int  # creation order: list_sessions' tie-break (pk DESC)
    created_at: datetime
    updated_at: datetime
    version: int = 0
    last_sequence: int = 0
    events: list[Stored] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    deleted_at: datetime | None = None

    @property
    def expires_at(self) -> datetime:
        return self.updated_at + TTL

    def touch(self, now: datetime) -> None:
        """A write that changed the session: bump the version, slide the expiry."""
        self.version += 1
        self.updated_at = now


@dataclass
class Model:
    soft_delete: bool
    rows: list[Row] = field(default_factory=list)
    app_state: dict[str, Any] = field(default_factory=dict)
    user_state: dict[str, dict[str, Any]] = field(default_factory=lambda: {u: {} for u in USERS})
    orders: itertools.count[int] = field(default_factory=itertools.count)

    def current(self, key: Key) -> Row | None:
        """The key's unmarked row (at most one), live or expired."""
        return next((r for r in self.rows if r.key == key and r.deleted_at is None), None)

    def live(self, key: Key, now: datetime) -> Row | None:
        row = self.current(key)
        return row if row is not None and now < row.expires_at else None

    def retire(self, row: Row, now: datetime) -> None:
        if self.soft_delete:
            row.deleted_at = now
        else:
            self.rows.remove(row)

    def apply_delta(self, row: Row, delta: dict[str, Any]) -> None:
        for k, v in delta.items():
            if k.startswith("app:"):
                self.app_state[k[4:]] = v
            elif k.startswith("user:"):
                self.user_state[row.key[0]][k[5:]] = v
            elif not k.startswith("temp:"):
                row.state[k] = v

    def create(self, key: Key, state: dict[str, Any], now: datetime) -> Row:
        expired = self.current(key)
        if expired is not None:  # create over an expired row retires it
            self.retire(expired, now)
        row = Row(key=key, order=next(self.orders), created_at=now, updated_at=now)
        self.rows.append(row)
        self.apply_delta(row, state)
        return row

    def merged_state(self, row: Row) -> dict[str, Any]:
        return {
            **row.state,
            **{"app:" + k: v for k, v in self.app_state.items()},
            **{"user:" + k: v for k, v in self.user_state[row.key[0]].items()},
        }

    def cleanup(self, now: datetime, retention: timedelta) -> dict[str, Any]:
        """One cleaner pass: mark expired rows, purge marked rows past retention."""
        purge_before = now - retention if self.soft_delete else now
        expired = [r for r in self.rows if r.deleted_at is None and r.expires_at <= now]
        due = [r for r in self.rows if r.deleted_at is not None and r.deleted_at <= purge_before]
        ran = bool(expired or due)
        for row in expired:
            row.deleted_at = now
        purged = [r for r in self.rows if r.deleted_at is not None and r.deleted_at <= purge_before]
        for row in purged:
            self.rows.remove(row)
        return {
            "ran": ran,
            "expired_sessions": len(expired),
            "purged_sessions": len(purged),
            "deleted_events": sum(len(r.events) for r in purged),
            "deleted_state_keys": sum(len(r.state) for r in purged),
        }


# -- the machine ----------------------------------------------------------------------------


@dataclass
class Snapshot:
    """Everything the invariant reads, in one trip to the event loop."""

    sessions: dict[Key, Session | None]
    recent: dict[Key, list[int | None]]
    streamed: dict[Key, list[tuple[str, Any, int | None]] | None]
    listed: list[Key]
    listed_by_user: dict[str, list[Key]]
    app_state: dict[str, Any]
    user_state: dict[str, dict[str, Any]]


class SessionMachine(RuleBasedStateMachine):
    """Drives one service (one file, reopened at will) against :class:`Model`."""

    ASYNC: ClassVar[bool] = False
    SOFT_DELETE: ClassVar[bool] = True
    POSTGRES: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self._stack = contextlib.ExitStack()
        self.options: dict[str, Any] = {}
        if self.POSTGRES:  # its own tables on the run's server
            self.path: str | Path = pgtest.server().url
            self.options["table_prefix"] = pgtest.unique_prefix()
        else:
            self.path = Path(self._stack.enter_context(tempfile.TemporaryDirectory())) / "m.db"
        self.portal = self._stack.enter_context(start_blocking_portal())
        self.clock = ManualClock()
        self.model = Model(soft_delete=self.SOFT_DELETE)
        self.event_ids = itertools.count()
        self.handles: dict[Key, Session] = {}
        try:
            self.service = self._open()
        except BaseException:
            self._stack.close()
            raise

    # -- plumbing -------------------------------------------------------------------------

    def _open(self) -> SessionService:
        options: dict[str, Any] = {
            "clock": self.clock,
            "session_ttl": TTL,
            "soft_delete": self.SOFT_DELETE,
            "soft_delete_retention": RETENTION,
            "async_persist": self.ASYNC,
            **self.options,
        }
        service = self.portal.call(lambda: SessionService(self.path, **options))
        self.portal.call(service.open)
        return service

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        return self.portal.call(functools.partial(fn, *args, **kwargs))

    def teardown(self) -> None:
        try:
            self.portal.call(self.service.aclose)
        finally:
            self._stack.close()

    @property
    def now(self) -> datetime:
        return self.clock.now

    def handle(self, key: Key) -> Session:
        """The last Session object seen for the key (a stand-in if none was)."""
        if key not in self.handles:
            self.handles[key] = Session(
                app_name=APP, user_id=key[0], id=key[1], created_at=self.now, updated_at=self.now
            )
        return self.handles[key]

    def ids(self, key: Key) -> dict[str, str]:
        return {"app_name": APP, "user_id": key[0], "session_id": key[1]}

    def new_events(self, items: list[tuple[Any, dict[str, Any]]]) -> list[Event]:
        return [
            Event(
                id=f"e{next(self.event_ids)}",
                author="user",
                content=content,
                state_delta=delta,
                timestamp=self.now,
            )
            for content, delta in items
        ]

    def expect_background_failure(self, error: type[Exception], event_ids: list[str]) -> None:
        """async_persist: the write was accepted; flush reports it, named by id."""
        with pytest.raises(PersistenceError) as failed:
            self.call(self.service.flush)
        assert list(failed.value.event_ids) == event_ids
        assert isinstance(failed.value.__cause__, error)

    # -- sessions -------------------------------------------------------------------------

    @initialize(states=st.lists(deltas, min_size=len(KEYS), max_size=len(KEYS)))
    def start_with_sessions(self, states: list[dict[str, Any]]) -> None:
        for key, state in zip(KEYS, states, strict=True):
            self.create_session(key, state, get_or_create=False)

    @rule(key=keys, state=deltas, get_or_create=st.booleans())
    def create_session(self, key: Key, state: dict[str, Any], get_or_create: bool) -> None:
        now = self.now
        existing = self.model.live(key, now)
        hypothesis.event(
            "create: "
            + ("live" if existing else "expired row" if self.model.current(key) else "new")
            + (" (get_or_create)" if get_or_create else "")
        )
        if existing is not None and not get_or_create:
            with pytest.raises(SessionExistsError):
                self.call(self.service.create_session, **self.ids(key), state=state)
            return  # nothing written: not even the app:/user: keys of `state`
        if get_or_create:
            session = self.call(self.service.get_or_create_session, **self.ids(key), state=state)
        else:
            session = self.call(self.service.create_session, **self.ids(key), state=state)
        row = existing if existing is not None else self.model.create(key, state, now)
        assert session.key == (APP, *key)
        assert session.version == row.version
        assert session.created_at == row.created_at
        assert session.expires_at == row.expires_at
        assert [(e.id, e.content, e.sequence) for e in session.events] == [
            s.view for s in row.events
        ]
        expected_state = self.model.merged_state(row)
        if existing is None:  # temp: keys live on the returned object only
            expected_state.update({k: v for k, v in state.items() if k.startswith("temp:")})
        assert session.state == expected_state
        self.handles[key] = session

    @rule(key=keys)
    def delete_session(self, key: Key) -> None:
        row = self.model.live(key, self.now)
        assert self.call(self.service.delete_session, **self.ids(key)) is (row is not None)
        if row is not None:
            self.model.retire(row, self.now)

    # -- events ---------------------------------------------------------------------------

    @rule(key=keys, item=st.tuples(contents, deltas))
    def append_event(self, key: Key, item: tuple[Any, dict[str, Any]]) -> None:
        self.append_events(key, [item])

    @rule(key=keys, items=st.lists(st.tuples(contents, deltas), min_size=1, max_size=3))
    def append_events(self, key: Key, items: list[tuple[Any, dict[str, Any]]]) -> None:
        events = self.new_events(items)
        session = self.handle(key)
        row = self.model.live(key, self.now)

        def attempt() -> list[Event]:
            if len(events) == 1:
                return [self.call(self.service.append_event, session, events[0])]
            return self.call(self.service.append_events, session, events)

        hypothesis.event(f"append {len(events)}: " + ("live session" if row else "gone session"))
        if row is None:
            if self.ASYNC:
                attempt()  # accepted: the session is only found missing when written
                self.expect_background_failure(SessionNotFoundError, [e.id for e in events])
            else:
                with pytest.raises(SessionNotFoundError):
                    attempt()
            return
        version_before = session.version
        returned = attempt()
        row.touch(self.now)
        for event in events:
            row.last_sequence += 1
            row.events.append(Stored(event, row.last_sequence))
            self.model.apply_delta(row, event.state_delta)
        assert [e.id for e in returned] == [e.id for e in events]
        # The caller's session object follows (the handle was fresh from the last check).
        assert session.version == version_before + 1
        assert [e.id for e in session.events[-len(events) :]] == [e.id for e in events]
        if not self.ASYNC:  # sequences are assigned when written
            assert [e.sequence for e in returned] == [
                s.sequence for s in row.events[-len(events) :]
            ]
            assert session.version == row.version

    @precondition(lambda self: any(r.events for r in self._live_rows()))
    @rule(data=st.data(), change=st.booleans())
    def retry_event(self, data: st.DataObject, change: bool) -> None:
        """An identical retry is a no-op; the same id with other content a conflict."""
        row = data.draw(st.sampled_from([r for r in self._live_rows() if r.events]))
        stored = data.draw(st.sampled_from(row.events))
        event = stored.event.model_copy(update={"content": ["changed"]}) if change else stored.event
        session = self.handle(row.key)
        if not change:
            returned = self.call(self.service.append_event, session, event)
            if not self.ASYNC:
                assert returned.sequence == stored.sequence
            return
        if self.ASYNC:
            self.call(self.service.append_event, session, event)
            self.expect_background_failure(EventConflictError, [event.id])
        else:
            with pytest.raises(EventConflictError):
                self.call(self.service.append_event, session, event)

    @rule(key=keys)
    def pop_event(self, key: Key) -> None:
        row = self.model.live(key, self.now)
        if row is None:
            with pytest.raises(SessionNotFoundError):
                self.call(self.service.pop_event, self.handle(key))
            return
        hypothesis.event(f"pop: {'an event' if row.events else 'empty session'}")
        popped = self.call(self.service.pop_event, self.handle(key))
        if not row.events:
            assert popped is None
            return
        newest = row.events.pop()
        row.touch(self.now)
        assert popped is not None
        assert (popped.id, popped.content, popped.sequence) == newest.view

    @rule(key=keys)
    def clear_events(self, key: Key) -> None:
        row = self.model.live(key, self.now)
        if row is None:
            with pytest.raises(SessionNotFoundError):
                self.call(self.service.clear_events, self.handle(key))
            return
        assert self.call(self.service.clear_events, self.handle(key)) == len(row.events)
        if row.events:
            row.events.clear()
            row.touch(self.now)

    # -- state ----------------------------------------------------------------------------

    @rule(key=keys, delta=plain_deltas, scoped=st.sampled_from([None, "app:a", "user:a", "temp:a"]))
    def update_session_state(self, key: Key, delta: dict[str, Any], scoped: str | None) -> None:
        row = self.model.live(key, self.now)
        if scoped is not None:  # direct calls take plain keys only
            with pytest.raises(InvalidInputError):
                self.call(
                    self.service.update_session_state,
                    **self.ids(key),
                    delta={**delta, scoped: 1},
                )
            return
        if row is None:
            with pytest.raises(SessionNotFoundError):
                self.call(self.service.update_session_state, **self.ids(key), delta=delta)
            return
        self.call(self.service.update_session_state, **self.ids(key), delta=delta)
        row.state.update(delta)
        row.touch(self.now)

    @rule(delta=plain_deltas)
    def update_app_state(self, delta: dict[str, Any]) -> None:
        self.call(self.service.update_app_state, APP, delta)
        self.model.app_state.update(delta)

    @rule(user=st.sampled_from(USERS), delta=plain_deltas)
    def update_user_state(self, user: str, delta: dict[str, Any]) -> None:
        self.call(self.service.update_user_state, APP, user, delta)
        self.model.user_state[user].update(delta)

    @rule(user=st.none() | st.sampled_from(USERS), key=st.sampled_from(PLAIN_KEYS))
    def delete_shared_state_key(self, user: str | None, key: str) -> None:
        scope = self.model.app_state if user is None else self.model.user_state[user]
        if user is None:
            existed = self.call(self.service.delete_app_state, APP, key)
        else:
            existed = self.call(self.service.delete_user_state, APP, user, key)
        assert existed is (key in scope)
        scope.pop(key, None)

    # -- time, cleanup, restarts ----------------------------------------------------------

    @rule(seconds=steps)
    def advance_clock(self, seconds: int) -> None:
        self.clock.advance(seconds=seconds)

    @rule()
    def run_cleanup(self) -> None:
        report: CleanupReport = self.call(self.service.run_cleanup)
        expected = self.model.cleanup(self.now, RETENTION)
        hypothesis.event(f"cleanup: expired {expected['expired_sessions']}")
        hypothesis.event(f"cleanup: purged {expected['purged_sessions']}")
        assert report.model_dump(include=set(expected)) == expected

    @rule()
    def flush(self) -> None:
        self.call(self.service.flush)

    @rule()
    def reopen(self) -> None:
        self.portal.call(self.service.aclose)
        self.service = self._open()

    @precondition(lambda self: bool(self._live_rows()))
    @rule(data=st.data(), items=st.lists(st.tuples(contents, deltas), min_size=1, max_size=5))
    def append_then_reopen(
        self, data: st.DataObject, items: list[tuple[Any, dict[str, Any]]]
    ) -> None:
        """Appends straight followed by aclose (async mode: still queued) survive."""
        row = data.draw(st.sampled_from(self._live_rows()))
        hypothesis.event(f"append then reopen: {len(items)} event(s)")
        for event in self.new_events(items):
            self.call(self.service.append_event, self.handle(row.key), event)
            row.touch(self.now)
            row.last_sequence += 1
            row.events.append(Stored(event, row.last_sequence))
            self.model.apply_delta(row, event.state_delta)
        self.reopen()

    def _live_rows(self) -> list[Row]:
        return [r for k in KEYS if (r := self.model.live(k, self.now)) is not None]

    # -- the check ------------------------------------------------------------------------

    async def _snapshot(self) -> Snapshot:
        service = self.service
        if self.ASYNC:
            await service.flush()
        sessions: dict[Key, Session | None] = {}
        recent: dict[Key, list[int | None]] = {}
        streamed: dict[Key, list[tuple[str, Any, int | None]] | None] = {}
        for key in KEYS:
            ids = self.ids(key)
            sessions[key] = await service.get_session(**ids)
            if sessions[key] is None:
                try:
                    async for _ in service.iter_events(**ids):
                        pass
                except SessionNotFoundError:
                    streamed[key] = None
                else:
                    streamed[key] = []  # wrong: reported by the invariant
                continue
            last_two = await service.get_session(**ids, num_recent_events=2)
            assert last_two is not None
            recent[key] = [e.sequence for e in last_two.events]
            streamed[key] = [
                (e.id, e.content, e.sequence) async for e in service.iter_events(**ids, page_size=2)
            ]
        listed = [(s.user_id, s.id) for s in (await service.list_sessions(app_name=APP)).sessions]
        by_user: dict[str, list[Key]] = {}
        for user in USERS:
            page = await service.list_sessions(app_name=APP, user_id=user)
            by_user[user] = [(s.user_id, s.id) for s in page.sessions]
        return Snapshot(
            sessions=sessions,
            recent=recent,
            streamed=streamed,
            listed=listed,
            listed_by_user=by_user,
            app_state=await service.get_app_state(APP),
            user_state={u: await service.get_user_state(APP, u) for u in USERS},
        )

    @invariant()
    def service_agrees_with_model(self) -> None:
        snap = self.portal.call(self._snapshot)
        now = self.now
        for key in KEYS:
            row = self.model.live(key, now)
            got = snap.sessions[key]
            if row is None:
                assert got is None, f"{key} should be gone"
                assert snap.streamed[key] is None, f"iter_events({key}) should raise"
                continue
            assert got is not None, f"{key} should be live"
            assert got.key == (APP, *key)
            assert got.version == row.version
            assert got.created_at == row.created_at
            assert got.updated_at == row.updated_at
            assert got.expires_at == row.expires_at
            expected = [s.view for s in row.events]
            assert [(e.id, e.content, e.sequence) for e in got.events] == expected
            assert snap.streamed[key] == expected
            assert snap.recent[key] == [s.sequence for s in row.events[-2:]]
            assert got.state == self.model.merged_state(row)
            self.handles[key] = got
        live = [r for r in self.model.rows if r.deleted_at is None and now < r.expires_at]
        live.sort(key=lambda r: (r.updated_at, r.order), reverse=True)
        assert snap.listed == [r.key for r in live]
        for user in USERS:
            assert snap.listed_by_user[user] == [r.key for r in live if r.key[0] == user]
        assert snap.app_state == self.model.app_state
        assert snap.user_state == self.model.user_state


# -- the configurations ---------------------------------------------------------------------

MACHINE_SETTINGS = settings(
    max_examples=50,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class DurableSoftDelete(SessionMachine):
    ASYNC = False
    SOFT_DELETE = True


class DurableHardDelete(SessionMachine):
    ASYNC = False
    SOFT_DELETE = False


class AsyncPersistSoftDelete(SessionMachine):
    ASYNC = True
    SOFT_DELETE = True


class AsyncPersistHardDelete(SessionMachine):
    ASYNC = True
    SOFT_DELETE = False


class PostgresDurableSoftDelete(SessionMachine):
    ASYNC = False
    SOFT_DELETE = True
    POSTGRES = True


class PostgresAsyncPersistHardDelete(SessionMachine):
    ASYNC = True
    SOFT_DELETE = False
    POSTGRES = True


TestDurableSoftDelete = DurableSoftDelete.TestCase
TestDurableSoftDelete.settings = MACHINE_SETTINGS
TestDurableHardDelete = DurableHardDelete.TestCase
TestDurableHardDelete.settings = MACHINE_SETTINGS
TestAsyncPersistSoftDelete = AsyncPersistSoftDelete.TestCase
TestAsyncPersistSoftDelete.settings = MACHINE_SETTINGS
TestAsyncPersistHardDelete = AsyncPersistHardDelete.TestCase
TestAsyncPersistHardDelete.settings = MACHINE_SETTINGS
TestPostgresDurableSoftDelete = PostgresDurableSoftDelete.TestCase
TestPostgresDurableSoftDelete.settings = MACHINE_SETTINGS
TestPostgresAsyncPersistHardDelete = PostgresAsyncPersistHardDelete.TestCase
TestPostgresAsyncPersistHardDelete.settings = MACHINE_SETTINGS
