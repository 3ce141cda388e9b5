"""The core of the conformance suite through pgbouncer in transaction mode.

In transaction mode consecutive transactions of one client connection may run on
different server connections, so nothing may outlive a transaction: no server-side
prepared statements (``prepared_statements=False``), no session settings. pgbouncer also
drops the ``options`` startup parameter, so these tests use a table prefix of their own
rather than a search_path. Every statement text runs well over the five executions after
which a driver would prepare it server-side, from many connections at once, so that
transactions do hop between server connections.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import anyio
import psycopg
import pytest
from psycopg import sql

import pgtest
from sessionlite import (
    DatabaseLockedError,
    Event,
    EventConflictError,
    PersistenceError,
    Session,
    SessionExistsError,
    SessionService,
    StaleSessionError,
)
from sessionlite.store.postgres.schema import TABLES
from sessionlite.testing import FakeSummarizer, ManualClock

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def bouncer_url(postgres_server: pgtest.Server) -> str:
    if postgres_server.bouncer_url is None:
        pgtest.unavailable("pgbouncer is not installed")
        raise AssertionError("unreachable")
    return postgres_server.bouncer_url


@pytest.fixture
def prefix(postgres_server: pgtest.Server) -> Iterator[str]:
    """A table prefix of this test's own; its tables are dropped afterwards."""
    prefix = pgtest.unique_prefix()
    yield prefix
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        for table in TABLES:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(prefix + table)))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=[False, True], ids=["durable", "async"])
async def service(
    request: pytest.FixtureRequest, bouncer_url: str, prefix: str, clock: ManualClock
) -> AsyncIterator[SessionService]:
    async with SessionService(
        bouncer_url,
        table_prefix=prefix,
        prepared_statements=False,
        async_persist=request.param,
        event_limit=None,
        clock=clock,
    ) as svc:
        yield svc


async def reload(service: SessionService, session: Session) -> Session:
    got = await service.get_session(
        app_name=session.app_name, user_id=session.user_id, session_id=session.id
    )
    assert got is not None
    return got


async def test_sessions_create_get_list_delete(service: SessionService, clock: ManualClock) -> None:
    created = []
    for n in range(12):  # every statement more than five times
        clock.advance(seconds=1)
        created.append(
            await service.create_session(
                app_name="app",
                user_id=f"u{n % 2}",
                session_id=f"s{n}",
                state={"n": n},
                metadata={"tag": n},
            )
        )
    with pytest.raises(SessionExistsError):
        await service.create_session(app_name="app", user_id="u0", session_id="s0")
    for session in created:
        got = await reload(service, session)
        assert got.state == {"n": int(session.id[1:])}
        assert got.metadata == session.metadata
        assert got.created_at == session.created_at
        same = await service.get_or_create_session(
            app_name="app", user_id=session.user_id, session_id=session.id
        )
        assert same.id == session.id and same.state == got.state
    assert await service.get_session(app_name="app", user_id="u0", session_id="nope") is None

    page = await service.list_sessions(app_name="app", user_id="u0", limit=2)
    seen = [s.id for s in page.sessions]
    while page.next_cursor is not None:
        page = await service.list_sessions(
            app_name="app", user_id="u0", limit=2, cursor=page.next_cursor
        )
        seen += [s.id for s in page.sessions]
    assert seen == [f"s{n}" for n in (10, 8, 6, 4, 2, 0)]  # newest first
    everyone = await service.list_sessions(app_name="app")
    assert len(everyone.sessions) == 12

    for n in range(0, 12, 2):
        assert await service.delete_session(app_name="app", user_id="u0", session_id=f"s{n}")
    assert not await service.delete_session(app_name="app", user_id="u0", session_id="s0")
    assert (await service.list_sessions(app_name="app", user_id="u0")).sessions == []


async def test_appends_and_reads(service: SessionService) -> None:
    session = await service.create_session(app_name="app", user_id="u", session_id="s")
    stored = []
    for i in range(10):
        stored.append(
            await service.append_event(
                session, Event(author="user", content={"i": i}, state_delta={"i": i})
            )
        )
    stored += await service.append_events(
        session, [Event(author="bot", content={"i": i}) for i in range(10, 15)]
    )
    await service.flush()
    assert [e.sequence for e in stored] == list(range(1, 16))
    got = await reload(service, session)
    assert [e.content for e in got.events] == [{"i": i} for i in range(15)]
    assert got.version == 11  # ten append_event calls, one append_events call
    assert got.state == {"i": 9}
    recent = await service.get_session(
        app_name="app", user_id="u", session_id="s", num_recent_events=3
    )
    assert recent is not None
    assert [e.sequence for e in recent.events] == [13, 14, 15]
    pages = [
        e.sequence
        async for e in service.iter_events(app_name="app", user_id="u", session_id="s", page_size=2)
    ]
    assert pages == list(range(1, 16))
    bots = [
        e.content
        async for e in service.iter_events(
            app_name="app", user_id="u", session_id="s", author="bot", page_size=2
        )
    ]
    assert bots == [{"i": i} for i in range(10, 15)]


async def test_state_in_every_scope(service: SessionService) -> None:
    alice = await service.create_session(
        app_name="app", user_id="alice", session_id="a", state={"user:lang": "en"}
    )
    bob = await service.create_session(app_name="app", user_id="bob", session_id="b")
    for i in range(8):
        await service.append_event(
            alice,
            Event(
                author="tool",
                state_delta={"app:model": f"m{i}", "user:lang": f"l{i}", "step": i, "temp:t": i},
            ),
        )
    await service.flush()
    got_alice, got_bob = await reload(service, alice), await reload(service, bob)
    assert got_alice.state == {"app:model": "m7", "user:lang": "l7", "step": 7}
    assert got_bob.state == {"app:model": "m7"}
    for i in range(8):
        await service.update_app_state("app", {"k": i, f"a{i}": i})
        await service.update_user_state("app", "bob", {"k": i})
        await service.update_session_state(
            app_name="app", user_id="bob", session_id="b", delta={"s": i}
        )
    assert await service.get_app_state("app") == {"model": "m7", "k": 7} | {
        f"a{i}": i for i in range(8)
    }
    assert await service.get_user_state("app", "bob") == {"k": 7}
    for i in range(8):
        assert await service.delete_app_state("app", f"a{i}")
        assert not await service.delete_app_state("app", f"a{i}")
    assert await service.delete_user_state("app", "bob", "k")
    assert await service.get_app_state("app") == {"model": "m7", "k": 7}
    got_bob = await reload(service, bob)
    assert got_bob.state == {"app:model": "m7", "app:k": 7, "s": 7}
    assert got_bob.version == 8


async def test_expected_version_and_retries(service: SessionService) -> None:
    session = await service.create_session(app_name="app", user_id="u", session_id="s")
    for version in range(8):
        await service.append_event(session, Event(author="u"), expected_version=version)
        with pytest.raises(StaleSessionError) as info:
            await service.append_event(session, Event(author="u"), expected_version=version)
        assert (info.value.expected_version, info.value.actual_version) == (version, version + 1)

    for i in range(8):  # identical retries return the stored event; nothing is added
        event = Event(id=f"e{i}", author="u", content=i)
        first = await service.append_event(session, event)
        again = await service.append_event(session, event)
        await service.flush()
        assert again == first
        fresh = await reload(service, session)
        third = await service.append_event(fresh, event)
        await service.flush()  # async_persist: the sequence is known once written
        assert third.sequence == first.sequence
    got = await reload(service, session)
    assert len(got.events) == 16 and got.version == 16

    for i in range(6):  # same id, other content
        conflicting = Event(id=f"e{i}", author="u", content="other")
        if not service.options.async_persist:
            with pytest.raises(EventConflictError):
                await service.append_event(session, conflicting)
            continue
        await service.append_event(session, conflicting)
        with pytest.raises(PersistenceError) as failed:
            await service.flush()
        assert isinstance(failed.value.__cause__, EventConflictError)
        assert failed.value.event_ids == (f"e{i}",)
    got = await reload(service, session)
    assert len(got.events) == 16 and got.version == 16


async def test_pop_and_clear_events(service: SessionService) -> None:
    session = await service.create_session(app_name="app", user_id="u", session_id="s")
    await service.append_events(
        session, [Event(author="u", content=i, state_delta={"k": i}) for i in range(10)]
    )
    for i in reversed(range(3, 10)):
        popped = await service.pop_event(session)
        assert popped is not None and popped.content == i
    got = await reload(service, session)
    assert [e.content for e in got.events] == [0, 1, 2]
    assert got.state == {"k": 9}  # popping does not undo state
    assert await service.clear_events(session) == 3
    assert await service.pop_event(session) is None
    got = await reload(service, session)
    assert got.events == [] and got.version == 9


async def test_summaries(bouncer_url: str, prefix: str) -> None:
    fake = FakeSummarizer()
    async with SessionService(
        bouncer_url, table_prefix=prefix, prepared_statements=False, summarizer=fake
    ) as service:
        session = await service.create_session(app_name="app", user_id="u", session_id="s")
        for i in range(7):
            await service.append_events(session, [Event(author=f"a{i}"), Event(author="b")])
            summary = await service.summarize(session)
            assert summary is not None
            assert summary.through_sequence == 2 * (i + 1)
            stored = await service.get_summary(app_name="app", user_id="u", session_id="s")
            assert stored == summary
        assert (await reload(service, session)).summaries[""].through_sequence == 14
        assert fake.calls == 7


async def test_hundred_concurrent_appends_to_one_session(service: SessionService) -> None:
    await service.create_session(app_name="app", user_id="u", session_id="hot")
    ids: list[str] = []

    async def append(task: int) -> None:
        mine = await service.get_session(
            app_name="app", user_id="u", session_id="hot", num_recent_events=0
        )
        assert mine is not None
        stored = await service.append_event(
            mine, Event(author="u", content=task, state_delta={"last": task, "app:n": task})
        )
        ids.append(stored.id)

    async with anyio.create_task_group() as tg:
        for task in range(100):
            tg.start_soon(append, task)
    await service.flush()
    got = await service.get_session(app_name="app", user_id="u", session_id="hot")
    assert got is not None
    assert len(ids) == 100
    assert sorted(e.id for e in got.events) == sorted(ids), "events lost or duplicated"
    assert [e.sequence for e in got.events] == list(range(1, 101)), "sequence gaps"
    assert got.version == 100
    assert got.state["last"] == got.events[-1].content


async def test_many_connections_at_once_with_cleanup(
    bouncer_url: str, prefix: str, clock: ManualClock
) -> None:
    # Two services (each a pool of its own) doing everything at once, many times over:
    # consecutive transactions of one client land on different server connections.
    async with (
        SessionService(
            bouncer_url,
            table_prefix=prefix,
            prepared_statements=False,
            session_ttl=60,
            soft_delete=False,
            clock=clock,
        ) as one,
        SessionService(
            bouncer_url,
            table_prefix=prefix,
            prepared_statements=False,
            async_persist=True,
            session_ttl=60,
            soft_delete=False,
            clock=clock,
        ) as two,
    ):

        async def work(service: SessionService, n: int) -> None:
            for i in range(10):
                session = await service.get_or_create_session(
                    app_name="app", user_id=f"u{n}", session_id=f"s{n}-{i}"
                )
                await service.append_event(
                    session, Event(author="u", content=i, state_delta={"user:i": i, "i": i})
                )
                await service.append_events(session, [Event(author="b"), Event(author="c")])
                got = await reload(service, session)
                assert [e.author for e in got.events] == ["u", "b", "c"]
                await service.update_session_state(
                    app_name="app", user_id=f"u{n}", session_id=session.id, delta={"x": n}
                )
                assert (await service.get_user_state("app", f"u{n}"))["i"] == i

        async with anyio.create_task_group() as tg:
            for n in range(20):
                tg.start_soon(work, one if n % 2 else two, n)
        await two.flush()
        assert len((await one.list_sessions(app_name="app", limit=1000)).sessions) == 200

        clock.advance(timedelta(minutes=2))  # every session expired
        reports = [await one.run_cleanup(), await two.run_cleanup()]
        assert sum(r.expired_sessions for r in reports) == 200
        assert sum(r.purged_sessions for r in reports) == 200
        assert (await two.list_sessions(app_name="app")).sessions == []


@pytest.mark.parametrize("via", ["server", "pgbouncer"])
@pytest.mark.timeout(30)
async def test_a_write_blocked_by_a_lock_gives_up_after_busy_timeout(
    via: str, postgres_server: pgtest.Server, bouncer_url: str, prefix: str
) -> None:
    """Each write transaction bounds its lock waits by ``busy_timeout`` (``SET LOCAL``,
    sent in the same round trip as its ``BEGIN``), also through pgbouncer."""
    url = postgres_server.url if via == "server" else bouncer_url
    async with SessionService(
        url, table_prefix=prefix, prepared_statements=False, busy_timeout=0.3
    ) as service:
        session = await service.create_session(app_name="app", user_id="u", session_id="s")
        with psycopg.connect(postgres_server.url) as blocker:  # a transaction holding the row
            blocker.execute(
                sql.SQL("SELECT 1 FROM {} FOR UPDATE").format(sql.Identifier(prefix + "sessions"))
            )
            with pytest.raises(DatabaseLockedError):
                await service.append_event(session, Event(author="u", content="blocked"))
            blocker.rollback()
        await service.append_event(session, Event(author="u", content="after"))
        stored = await reload(service, session)
        assert [(e.sequence, e.content) for e in stored.events] == [(1, "after")]
