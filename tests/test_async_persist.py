"""async_persist: acceptance, ordering, backpressure, drain, failures, cancellation."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from sessionlite import (
    DatabaseLockedError,
    Event,
    PersistenceError,
    ServiceClosedError,
    SessionService,
)
from sessionlite.crossloop import CrossLoopEvent
from sessionlite.store.base import AppendCommand


class GatedStore:
    """Holds the persister's batch writes until released (patched onto the store)."""

    def __init__(self, service: SessionService) -> None:
        self.store = service._store
        self.real = self.store.append_batch
        self.gate = CrossLoopEvent()
        self.entered = CrossLoopEvent()
        self.batches: list[int] = []
        self.store.append_batch = self.append_batch  # type: ignore[method-assign]

    async def append_batch(self, commands: Sequence[AppendCommand]) -> list[Any]:
        self.entered.set()
        await self.gate.wait()
        self.batches.append(len(commands))
        return await self.real(commands)


async def test_append_returns_before_the_write(tmp_path: Path) -> None:
    async with SessionService(tmp_path / "db.sqlite", async_persist=True) as service:
        gated = GatedStore(service)
        session = await service.create_session(app_name="a", user_id="u", session_id="s")
        event = Event(author="u", content={"n": [1]}, state_delta={"k": 1})
        accepted = await service.append_event(session, event)
        assert accepted.sequence is None  # accepted, not yet written
        assert session.events == [accepted] and session.state == {"k": 1}
        assert session.version == 1
        event.content["n"].append(2)  # the caller's object changes; the accepted copy not
        with anyio.fail_after(5):
            await gated.entered.wait()
        assert service.stats().persist_queue_depth == 1
        gated.gate.set()
        await service.flush()
        assert accepted.sequence == 1
        stats = service.stats()
        assert (stats.events_accepted, stats.events_persisted) == (1, 1)
        assert stats.persist_queue_depth == 0
    async with SessionService(tmp_path / "db.sqlite") as reopened:
        got = await reopened.get_session(app_name="a", user_id="u", session_id="s")
        assert got is not None and got.events[0].content == {"n": [1]}


async def test_order_kept_per_session_under_many_tasks(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    async with SessionService(path, async_persist=True, persist_workers=3) as service:
        sessions = [
            await service.create_session(app_name="a", user_id="u", session_id=f"s{i}")
            for i in range(30)
        ]

        async def writer(index: int) -> None:
            for n in range(40):
                await service.append_event(sessions[index], Event(author="u", content=n))

        async with anyio.create_task_group() as tg:
            for index in range(len(sessions)):
                tg.start_soon(writer, index)
        await service.flush()
        assert service.stats().mean_batch_size > 1
    async with SessionService(path, event_limit=None) as reopened:
        for i in range(30):
            got = await reopened.get_session(app_name="a", user_id="u", session_id=f"s{i}")
            assert got is not None
            assert [e.content for e in got.events] == list(range(40))
            assert [e.sequence for e in got.events] == list(range(1, 41))


async def test_backpressure_with_a_tiny_queue(tmp_path: Path) -> None:
    async with SessionService(
        tmp_path / "db.sqlite", async_persist=True, persist_workers=1, persist_queue_size=1
    ) as service:
        gated = GatedStore(service)
        session = await service.create_session(app_name="a", user_id="u", session_id="s")
        await service.append_event(session, Event(author="u", content=0))  # taken by worker
        with anyio.fail_after(5):
            await gated.entered.wait()
        await service.append_event(session, Event(author="u", content=1))  # fills the queue
        third_done = CrossLoopEvent()

        async def third() -> None:
            await service.append_event(session, Event(author="u", content=2))
            third_done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(third)
            await anyio.wait_all_tasks_blocked()
            assert not third_done.is_set()  # waiting for room: backpressure, not a drop
            gated.gate.set()
        await service.flush()
        got = await service.get_session(app_name="a", user_id="u", session_id="s")
        assert got is not None and [e.content for e in got.events] == [0, 1, 2]


async def test_background_failure_surfaces_at_flush(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    async with SessionService(path, async_persist=True, soft_delete=False) as service:
        gated = GatedStore(service)
        session = await service.create_session(app_name="a", user_id="u", session_id="s")
        ok = await service.create_session(app_name="a", user_id="u", session_id="ok")
        doomed = [await service.append_event(session, Event(author="u")) for _ in range(2)]
        kept = await service.append_event(ok, Event(author="u"))
        with sqlite3.connect(path) as outsider:  # another process deletes the session
            outsider.execute("DELETE FROM sessions WHERE session_id = 's'")
        gated.gate.set()
        with pytest.raises(PersistenceError) as info:
            await service.flush()
        assert sorted(info.value.event_ids) == sorted(e.id for e in doomed)
        assert service.stats().persist_failures == 2
        await service.flush()  # reported once
        got = await service.get_session(app_name="a", user_id="u", session_id="ok")
        assert got is not None and [e.id for e in got.events] == [kept.id]


async def test_failure_not_yet_flushed_is_raised_by_aclose(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    service = await SessionService(path, async_persist=True, soft_delete=False).open()
    gated = GatedStore(service)
    session = await service.create_session(app_name="a", user_id="u", session_id="s")
    event = await service.append_event(session, Event(author="u"))
    with sqlite3.connect(path) as outsider:
        outsider.execute("DELETE FROM sessions")
    gated.gate.set()
    with pytest.raises(PersistenceError) as info:
        await service.aclose()
    assert info.value.event_ids == (event.id,)
    assert service.closed


async def test_transient_lock_is_retried(tmp_path: Path) -> None:
    async with SessionService(tmp_path / "db.sqlite", async_persist=True) as service:
        store = service._store
        real = store.append_batch
        failures = [DatabaseLockedError("locked (simulated)")]

        async def flaky(commands: Sequence[AppendCommand]) -> list[Any]:
            if failures:
                return [failures.pop()] * len(commands)
            return await real(commands)

        store.append_batch = flaky  # type: ignore[method-assign]
        session = await service.create_session(app_name="a", user_id="u", session_id="s")
        await service.append_event(session, Event(author="u", content="eventually"))
        await service.flush()
        assert service.stats().persist_retries == 1
        got = await service.get_session(app_name="a", user_id="u", session_id="s")
        assert got is not None and [e.content for e in got.events] == ["eventually"]


async def test_close_drains_and_later_calls_fail(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    service = await SessionService(path, async_persist=True).open()
    session = await service.create_session(app_name="a", user_id="u", session_id="s")
    accepted = [
        await service.append_event(session, Event(author="u", content=i)) for i in range(500)
    ]
    await service.aclose()
    with pytest.raises(ServiceClosedError):
        await service.append_event(session, Event(author="u"))
    with pytest.raises(ServiceClosedError):
        await service.flush()
    async with SessionService(path, event_limit=None) as reopened:
        got = await reopened.get_session(app_name="a", user_id="u", session_id="s")
        assert got is not None and [e.id for e in got.events] == [e.id for e in accepted]


async def test_close_timeout_reports_what_was_still_queued(tmp_path: Path) -> None:
    service = await SessionService(
        tmp_path / "db.sqlite", async_persist=True, persist_workers=1, close_timeout=0.05
    ).open()
    gated = GatedStore(service)
    abandoned = CrossLoopEvent()
    persister = service._persister
    assert persister is not None
    abandon = persister.abandon_queued

    def observed() -> list[str]:
        ids = abandon()
        abandoned.set()
        return ids

    persister.abandon_queued = observed  # type: ignore[method-assign]
    session = await service.create_session(app_name="a", user_id="u", session_id="s")
    first = await service.append_event(session, Event(author="u"))  # in flight, held
    with anyio.fail_after(5):
        await gated.entered.wait()
    queued = [await service.append_event(session, Event(author="u")) for _ in range(3)]
    errors: list[BaseException] = []

    async def close() -> None:
        try:
            await service.aclose()
        except PersistenceError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(close)
        with anyio.fail_after(5):
            await abandoned.wait()
        gated.gate.set()  # the in-flight batch may finish; the queued ones were given up
    (error,) = errors
    assert isinstance(error, PersistenceError)
    assert sorted(error.event_ids) == sorted(e.id for e in queued)
    assert first.id not in error.event_ids


async def test_cancelling_the_owner_loses_nothing_accepted(tmp_path: Path) -> None:
    # The task that owns the service is cancelled in the middle of heavy appends:
    # everything append_event accepted must be durable after the cancellation.
    path = tmp_path / "db.sqlite"
    accepted: list[str] = []
    enough = CrossLoopEvent()

    async def owner() -> None:
        async with SessionService(path, async_persist=True, persist_queue_size=50) as service:
            session = await service.create_session(app_name="a", user_id="u", session_id="s")
            i = 0
            while True:
                event = await service.append_event(session, Event(author="u", content=i))
                accepted.append(event.id)
                i += 1
                if i == 2000:
                    enough.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(owner)
        with anyio.fail_after(30):
            await enough.wait()
        tg.cancel_scope.cancel()
    assert len(accepted) >= 2000
    async with SessionService(path, event_limit=None) as reopened:
        got = await reopened.get_session(app_name="a", user_id="u", session_id="s")
        assert got is not None
        assert [e.id for e in got.events] == accepted


async def test_direct_state_write_is_not_overtaken_by_queued_deltas(tmp_path: Path) -> None:
    async with SessionService(tmp_path / "db.sqlite", async_persist=True) as service:
        gated = GatedStore(service)
        session = await service.create_session(app_name="a", user_id="u", session_id="s")
        await service.append_event(session, Event(author="u", state_delta={"app:x": 1}))
        with anyio.fail_after(5):
            await gated.entered.wait()
        async with anyio.create_task_group() as tg:
            tg.start_soon(service.update_app_state, "a", {"x": 2})
            await anyio.wait_all_tasks_blocked()
            gated.gate.set()  # the queued delta lands first, then the direct write
        assert await service.get_app_state("a") == {"x": 2}


async def test_close_timeout_leaves_workers_healthy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service = await SessionService(
        tmp_path / "db.sqlite", async_persist=True, persist_workers=1, close_timeout=0.01
    ).open()
    gated = GatedStore(service)
    session = await service.create_session(app_name="a", user_id="u", session_id="s")
    await service.append_event(session, Event(author="u"))
    with anyio.fail_after(5):
        await gated.entered.wait()
    for _ in range(50):
        await service.append_event(session, Event(author="u"))
    persister = service._persister
    assert persister is not None
    abandon = persister.abandon_queued

    def release_after_abandon() -> list[str]:
        ids = abandon()
        gated.gate.set()
        return ids

    persister.abandon_queued = release_after_abandon  # type: ignore[method-assign]
    with pytest.raises(PersistenceError) as info:
        await service.aclose()
    assert len(info.value.event_ids) == 50
    assert "background task failed" not in caplog.text
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1  # one line for the abandoned events, not one per event
