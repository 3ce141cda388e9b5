"""The PostgreSQL server goes away and comes back while a service is working.

A private cluster (never the suite's shared server) is stopped (``pg_ctl stop -m fast``:
every client is disconnected) and started again on the same port, in a worker thread
while the service keeps working. Callers must get StorageUnavailableError, promptly,
never a raw psycopg error and never a hang; the same service object recovers by itself
once the server is back; nothing acknowledged is lost, nothing is stored twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import psycopg
import pytest

import pgtest
from sessionlite import (
    Event,
    Session,
    SessionService,
    StorageUnavailableError,
)
from sessionlite.store.postgres.cluster import LocalCluster, find_bindir

BUSY_TIMEOUT = 2  # seconds: how long a call waits for a connection
CALL_DEADLINE = 15  # seconds: a call taking longer than this hangs (busy_timeout is 2)
RECOVERY_DEADLINE = 60  # seconds: the service must work again this soon after a restart
TASKS = 8
PHASE = 50  # events each task appends in each phase of an async_persist test


class Server:
    """A private cluster that a test may stop and start (restarted after each test)."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.running = True

    @property
    def url(self) -> str:
        return self.cluster.url

    async def stop(self) -> None:
        self.running = False
        await anyio.to_thread.run_sync(self.cluster.stop, "fast")

    async def start(self) -> None:
        await anyio.to_thread.run_sync(self.cluster.start)
        self.running = True


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    bindir = find_bindir()
    if bindir is None:
        pgtest.unavailable("no server programs (pg_ctl, initdb) found")
        raise AssertionError("unreachable")
    cluster = LocalCluster(bindir, fsync=False)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def server(cluster: LocalCluster) -> Iterator[Server]:
    server = Server(cluster)
    try:
        yield server
    finally:
        if not server.running:  # a test failed while the server was down
            cluster.start()


@pytest.fixture
def open_service(server: Server) -> Callable[..., Any]:
    """``async with open_service(**options) as service``, on a table prefix of its own."""
    prefix = pgtest.unique_prefix()

    def build(**options: Any) -> SessionService:
        options.setdefault("busy_timeout", BUSY_TIMEOUT)
        return SessionService(server.url, table_prefix=prefix, event_limit=None, **options)

    return build


class Watch:
    """Counters that tasks bump, and a way to wait (event-driven) for a condition."""

    def __init__(self) -> None:
        self._changed = anyio.Event()

    def changed(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def until(self, condition: Callable[[], bool], deadline: float | None) -> None:
        with anyio.fail_after(deadline):  # None: the test's own timeout bounds the wait
            while not condition():
                await self._changed.wait()


@dataclasses.dataclass
class Tally:
    """What one appending task saw."""

    acked: list[Event] = dataclasses.field(default_factory=list)
    attempted: set[str] = dataclasses.field(default_factory=set)
    unavailable: int = 0
    other_errors: list[BaseException] = dataclasses.field(default_factory=list)


def assert_unavailable(error: BaseException) -> None:
    """A StorageUnavailableError whose cause is the driver's error."""
    assert isinstance(error, StorageUnavailableError), repr(error)
    assert isinstance(error.__cause__, psycopg.Error), repr(error.__cause__)


async def all_events(service: SessionService, session: Session) -> list[Event]:
    return [
        event
        async for event in service.iter_events(
            app_name=session.app_name, user_id=session.user_id, session_id=session.id
        )
    ]


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_durable_appends_through_a_server_restart(
    server: Server, open_service: Callable[..., SessionService]
) -> None:
    async with open_service() as service:
        sessions = [
            await service.create_session(app_name="app", user_id="u", session_id=f"s{n}")
            for n in range(TASKS // 2)
        ]
        tallies = [Tally() for _ in range(TASKS)]
        watch = Watch()
        done = False

        async def append(task: int) -> None:
            tally = tallies[task]
            base = sessions[task % len(sessions)]
            session = await service.get_session(
                app_name="app", user_id="u", session_id=base.id, num_recent_events=0
            )
            assert session is not None
            i = 0
            while not done:
                event = Event(author=f"t{task}", content=[task, i], state_delta={"last": i})
                tally.attempted.add(event.id)
                try:
                    with anyio.fail_after(CALL_DEADLINE):
                        tally.acked.append(await service.append_event(session, event))
                except StorageUnavailableError as error:
                    assert_unavailable(error)
                    tally.unavailable += 1
                except Exception as error:  # anything else fails the test (below)
                    tally.other_errors.append(error)
                i += 1
                watch.changed()
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tg:
            for task in range(TASKS):
                tg.start_soon(append, task)
            await watch.until(lambda: all(len(t.acked) >= 20 for t in tallies), RECOVERY_DEADLINE)

            await server.stop()
            acked_before = [len(t.acked) for t in tallies]
            failed_before = [t.unavailable for t in tallies]
            # Every task gets its error (and none hangs) while the server is down.
            await watch.until(
                lambda: all(t.unavailable > n for t, n in zip(tallies, failed_before, strict=True)),
                CALL_DEADLINE,
            )
            await server.start()
            # The same service recovers by itself: every task gets appends through again.
            await watch.until(
                lambda: all(
                    len(t.acked) >= n + 20 for t, n in zip(tallies, acked_before, strict=True)
                ),
                RECOVERY_DEADLINE,
            )
            done = True

        assert [t.other_errors for t in tallies] == [[]] * TASKS
        assert all(t.unavailable > 0 for t in tallies)

        # Nothing acknowledged was lost; sequences have no gaps and never went back.
        for n, session in enumerate(sessions):
            mine = [t for i, t in enumerate(tallies) if i % len(sessions) == n]
            events = await all_events(service, session)
            assert [e.sequence for e in events] == list(range(1, len(events) + 1))
            stored = {e.id: e for e in events}
            assert len(stored) == len(events), "an event stored twice"
            attempted = set().union(*(t.attempted for t in mine))
            # Stored: what was acknowledged, and perhaps appends whose commit happened
            # as the connection dropped (the caller got an error, yet it was stored).
            assert set(stored) <= attempted
            for tally in mine:
                sequences = [e.sequence for e in tally.acked]
                assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
                for event in tally.acked:
                    assert event.id in stored, "an acknowledged append was lost"
                    assert stored[event.id].sequence == event.sequence
                    assert stored[event.id].content == event.content
            got = await service.get_session(app_name="app", user_id="u", session_id=session.id)
            assert got is not None
            assert got.version == len(events)  # one version per stored append
            assert got.state["last"] == events[-1].state_delta["last"]

        # Reads and writes of every kind work again on the same service.
        fresh = await service.create_session(app_name="app", user_id="u", session_id="after")
        stored_event = await service.append_event(fresh, Event(author="u", content="back"))
        assert stored_event.sequence == 1
        await service.update_app_state("app", {"back": True})
        assert await service.get_app_state("app") == {"back": True}
        page = await service.list_sessions(app_name="app")
        assert len(page.sessions) == len(sessions) + 1


@pytest.mark.timeout(180)
async def test_async_persist_keeps_accepted_events_through_a_server_restart(
    server: Server, open_service: Callable[..., SessionService]
) -> None:
    async with open_service(async_persist=True) as service:
        sessions = [
            await service.create_session(app_name="app", user_id="u", session_id=f"s{n}")
            for n in range(TASKS // 2)
        ]
        accepted: list[list[Event]] = [[] for _ in range(TASKS)]
        errors: list[BaseException] = []
        watch = Watch()
        # Each task appends until it has ``quota`` events accepted, then waits for more.
        # Bounded, so the queues never fill up: accepting never waits for the server.
        quota = 0
        done = False

        async def append(task: int) -> None:
            session = sessions[task % len(sessions)]
            while not done:
                if len(accepted[task]) >= quota:
                    await watch.until(lambda: done or len(accepted[task]) < quota, None)
                    continue
                i = len(accepted[task])
                event = Event(author=f"t{task}", content=[task, i], state_delta={"last": i})
                try:
                    with anyio.fail_after(CALL_DEADLINE):
                        accepted[task].append(await service.append_event(session, event))
                except Exception as error:  # accepting never touches the server
                    errors.append(error)
                    raise
                watch.changed()
                # Accepting is instant: let the writers run in between.
                await anyio.lowlevel.checkpoint()

        async def accept(more: int) -> None:
            """Raise the quota; return once every task has that many events accepted."""
            nonlocal quota
            quota += more
            watch.changed()
            await watch.until(lambda: all(len(a) >= quota for a in accepted), RECOVERY_DEADLINE)

        async with anyio.create_task_group() as tg:
            for task in range(TASKS):
                tg.start_soon(append, task)
            await accept(PHASE)  # server up
            async with anyio.create_task_group() as during:
                during.start_soon(accept, PHASE)  # while the server shuts down
                await server.stop()
            await accept(PHASE)  # server down
            async with anyio.create_task_group() as during:
                during.start_soon(accept, PHASE)  # while the server starts
                await server.start()
            await accept(PHASE)  # server up again
            done = True
            watch.changed()

        assert errors == []
        with anyio.fail_after(RECOVERY_DEADLINE):
            await service.flush()  # the persister retried until the server was back
        stats = service.stats()
        assert stats.persist_failures == 0
        assert stats.persist_retries > 0  # the outage was seen, and retried
        assert stats.events_accepted == TASKS * PHASE * 5
        assert stats.persist_queue_depth == 0

        # Every accepted event is stored exactly once, in the order it was accepted.
        for n, session in enumerate(sessions):
            events = await all_events(service, session)
            assert [e.sequence for e in events] == list(range(1, len(events) + 1))
            mine = [e for task, a in enumerate(accepted) if task % len(sessions) == n for e in a]
            assert sorted(e.id for e in events) == sorted(e.id for e in mine)
            for task in range(n, TASKS, len(sessions)):
                ids = [e.id for e in accepted[task]]
                assert [e.id for e in events if e.author == f"t{task}"] == ids
            got = await service.get_session(app_name="app", user_id="u", session_id=session.id)
            assert got is not None
            assert got.version == len(events)
            assert got.state["last"] == events[-1].state_delta["last"]


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_calls_while_the_server_is_down_fail_promptly(
    server: Server, open_service: Callable[..., SessionService]
) -> None:
    async with open_service() as service:
        session = await service.create_session(app_name="app", user_id="u", session_id="s")
        await service.append_event(session, Event(author="u", content="before"))
        await server.stop()

        calls: dict[str, Callable[[], Any]] = {
            "get_session": lambda: service.get_session(app_name="app", user_id="u", session_id="s"),
            "list_sessions": lambda: service.list_sessions(app_name="app"),
            "get_app_state": lambda: service.get_app_state("app"),
            "iter_events": lambda: all_events(service, session),
            "append_event": lambda: service.append_event(session, Event(author="u")),
            "append_events": lambda: service.append_events(session, [Event(author="u")]),
            "create_session": lambda: service.create_session(app_name="app", user_id="u"),
            "update_app_state": lambda: service.update_app_state("app", {"k": 1}),
            "update_session_state": lambda: service.update_session_state(
                app_name="app", user_id="u", session_id="s", delta={"k": 1}
            ),
            "pop_event": lambda: service.pop_event(session),
            "delete_session": lambda: service.delete_session(
                app_name="app", user_id="u", session_id="s"
            ),
        }
        failures: dict[str, BaseException | None] = {}

        async def fails(name: str, call: Callable[[], Any]) -> None:
            failures[name] = None
            try:
                with anyio.fail_after(CALL_DEADLINE):
                    await call()
            except Exception as error:
                failures[name] = error

        # All at once (each waits up to busy_timeout for a connection). The first round
        # finds the pool's connections broken; the second finds none at all.
        for _ in range(2):
            async with anyio.create_task_group() as tg:
                for name, call in calls.items():
                    tg.start_soon(fails, name, call)
            for name, error in failures.items():
                assert isinstance(error, StorageUnavailableError), (name, error)
                assert_unavailable(error)

        # A service opened while the server is down fails to open, promptly.
        with anyio.fail_after(CALL_DEADLINE), pytest.raises(Exception) as info:
            async with open_service(busy_timeout=1):
                pass
        assert_unavailable(info.value)

        await server.start()
        with anyio.fail_after(RECOVERY_DEADLINE):
            while True:  # a restarted server: the pool reconnects on demand
                try:
                    await service.append_event(session, Event(author="u", content="after"))
                    break
                except StorageUnavailableError:
                    await anyio.lowlevel.checkpoint()
        got = await service.get_session(app_name="app", user_id="u", session_id="s")
        assert got is not None
        assert [e.content for e in got.events] == ["before", "after"]
        assert [e.sequence for e in got.events] == [1, 2]


@pytest.mark.timeout(120)
async def test_a_read_after_a_restart_is_retried_on_a_fresh_connection(
    server: Server, open_service: Callable[..., SessionService]
) -> None:
    # Documented: "Reads are retried once on a fresh connection when the connection they
    # got turns out to be broken". After a restart every idle pooled connection is
    # broken, so the retry must not take another one of those.
    async with open_service() as service:
        session = await service.create_session(app_name="app", user_id="u", session_id="s")
        await service.append_event(session, Event(author="u", content="before"))
        reads: dict[str, Callable[[], Any]] = {
            "get_session": lambda: service.get_session(app_name="app", user_id="u", session_id="s"),
            "list_sessions": lambda: service.list_sessions(app_name="app"),
            "iter_events": lambda: all_events(service, session),
        }
        failed: list[str] = []
        for name, read in reads.items():
            await server.stop()
            await server.start()  # no call in between: the pool has not noticed
            with anyio.fail_after(CALL_DEADLINE):
                try:
                    await read()
                except StorageUnavailableError as error:
                    failed.append(f"{name}: {error.__cause__!r}")
        assert failed == [], "the first read after a restart failed"
