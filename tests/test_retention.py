"""TTL, sliding expiry, the cleaner, soft delete and max_stored_events (manual clock)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import anyio
import pytest
from tests.conftest import expect_write_error

from sessionlite import Event, SessionNotFoundError, SessionService
from sessionlite.crossloop import CrossLoopEvent
from sessionlite.store.sqlite import cleanup
from sessionlite.testing import ManualClock

Factory = Callable[..., SessionService]


def count_rows(database: str | Path, table: str) -> int:
    """Rows on disk in ``table`` (either backend)."""
    if isinstance(database, str) and database.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(database) as pg:
            row = pg.execute(f'SELECT count(*) FROM "{table}"').fetchone()
            assert row is not None
            return int(row[0])
    with sqlite3.connect(database) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


async def test_session_ttl_slides_on_writes(make_service: Factory, clock: ManualClock) -> None:
    async with make_service(session_ttl=60) as service:
        session = await service.create_session(app_name="a", user_id="u", session_id="s")
        assert session.expires_at == clock.now + timedelta(seconds=60)
        clock.advance(seconds=59)
        await service.append_event(session, Event(author="u", content="keep me"))
        assert session.expires_at == clock.now + timedelta(seconds=60)
        clock.advance(seconds=59)  # 118 s after creation, 59 s after the last write
        got = await service.get_session(app_name="a", user_id="u", session_id="s")
        assert got is not None and len(got.events) == 1
        clock.advance(seconds=2)  # now 61 s after the last write: expired, at once
        assert await service.get_session(app_name="a", user_id="u", session_id="s") is None
        assert (await service.list_sessions(app_name="a")).sessions == []
        await expect_write_error(
            service, SessionNotFoundError, service.append_event(session, Event(author="u"))
        )
        # The id is free again, and nothing of the expired session comes back.
        fresh = await service.create_session(app_name="a", user_id="u", session_id="s")
        assert fresh.events == [] and fresh.version == 0


async def test_reads_do_not_slide_unless_asked(make_service: Factory, clock: ManualClock) -> None:
    for refresh in (False, True):
        async with make_service(session_ttl=60, refresh_ttl_on_read=refresh) as service:
            await service.create_session(app_name="a", user_id="u", session_id="s")
            clock.advance(seconds=50)
            assert await service.get_session(app_name="a", user_id="u", session_id="s")
            clock.advance(seconds=20)
            alive = await service.get_session(app_name="a", user_id="u", session_id="s")
            assert (alive is not None) is refresh
            await service.delete_session(app_name="a", user_id="u", session_id="s")


async def test_app_and_user_state_ttl(make_service: Factory, clock: ManualClock) -> None:
    async with make_service(app_state_ttl=100, user_state_ttl=10) as service:
        session = await service.create_session(app_name="a", user_id="u", session_id="s")
        await service.append_event(
            session, Event(author="u", state_delta={"app:model": "m", "user:lang": "fr", "k": 1})
        )
        await service.flush()
        clock.advance(seconds=11)
        got = await service.get_session(app_name="a", user_id="u", session_id="s")
        assert got is not None and got.state == {"app:model": "m", "k": 1}
        assert await service.get_user_state("a", "u") == {}
        # A write to an expired scope starts it afresh: the old keys stay gone.
        await service.update_user_state("a", "u", {"tz": "CET"})
        assert await service.get_user_state("a", "u") == {"tz": "CET"}
        clock.advance(seconds=90)  # app state written 101 s ago
        assert await service.get_app_state("a") == {}
        # Writing one key slides the whole scope.
        await service.update_app_state("a", {"x": 1})
        clock.advance(seconds=99)
        assert await service.get_app_state("a") == {"x": 1}


async def test_cleaner_counts_and_soft_delete_retention(
    make_service: Factory, clock: ManualClock
) -> None:
    async with make_service(
        session_ttl=60, user_state_ttl=60, soft_delete_retention=timedelta(days=1)
    ) as service:
        for i in range(3):
            session = await service.create_session(app_name="a", user_id="u", session_id=str(i))
            await service.append_events(
                session, [Event(author="u", state_delta={"user:n": i}) for _ in range(4)]
            )
        keeper = await service.create_session(app_name="a", user_id="u", session_id="keep")
        await service.flush()
        assert not (await service.run_cleanup()).ran  # nothing expired yet
        clock.advance(seconds=59)
        await service.append_event(keeper, Event(author="u"))  # keeps "keep" alive
        clock.advance(seconds=2)
        report = await service.run_cleanup()
        assert report.ran
        assert report.expired_sessions == 3
        assert report.expired_user_states == 1
        assert report.purged_sessions == 0  # soft-deleted rows wait for the retention
        assert report.deleted_events == 0
        got = await service.get_session(app_name="a", user_id="u", session_id="keep")
        assert got is not None and len(got.events) == 1
        clock.advance(timedelta(days=1, seconds=1))  # "keep" expires too, now
        report = await service.run_cleanup()
        assert report.expired_sessions == 1
        assert report.purged_sessions == 3
        assert report.deleted_events == 12
        assert not (await service.run_cleanup()).ran
        stats = service.stats()
        assert stats.cleanup_runs == 2
        assert stats.cleanup_expired_sessions == 4
        assert stats.cleanup_purged_sessions == 3
        assert stats.cleanup_deleted_events == 12
        assert await service.get_session(app_name="a", user_id="u", session_id="keep") is None


async def test_soft_delete_marks_then_purges(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "db.sqlite"
    async with SessionService(path, clock=clock, soft_delete_retention=3600) as service:
        session = await service.create_session(app_name="a", user_id="u", session_id="s")
        await service.append_events(session, [Event(author="u") for _ in range(5)])
        assert await service.delete_session(app_name="a", user_id="u", session_id="s")
        assert await service.get_session(app_name="a", user_id="u", session_id="s") is None
        assert count_rows(path, "events") == 5  # marked, still on disk
        again = await service.create_session(app_name="a", user_id="u", session_id="s")
        assert again.events == []
        clock.advance(seconds=3601)
        report = await service.run_cleanup()
        assert (report.purged_sessions, report.deleted_events) == (1, 5)
        assert count_rows(path, "sessions") == 1  # the re-created one
        assert count_rows(path, "events") == 0


async def test_hard_delete(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    async with SessionService(path, soft_delete=False, session_ttl=10) as service:
        session = await service.create_session(app_name="a", user_id="u", session_id="s")
        await service.append_events(session, [Event(author="u", state_delta={"k": 1})])
        assert await service.delete_session(app_name="a", user_id="u", session_id="s")
        assert count_rows(path, "sessions") == 0
        assert count_rows(path, "events") == 0
        assert count_rows(path, "session_state") == 0


async def test_expired_sessions_purged_at_once_without_soft_delete(
    tmp_path: Path, clock: ManualClock
) -> None:
    path = tmp_path / "db.sqlite"
    async with SessionService(path, clock=clock, soft_delete=False, session_ttl=10) as svc:
        session = await svc.create_session(app_name="a", user_id="u", session_id="s")
        await svc.append_events(session, [Event(author="u") for _ in range(3)])
        clock.advance(seconds=11)
        report = await svc.run_cleanup()
        assert (report.expired_sessions, report.purged_sessions, report.deleted_events) == (1, 1, 3)
        assert count_rows(path, "events") == 0


async def test_purge_works_in_small_transactions(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cleanup, "EVENTS_PER_STEP", 7)
    async with SessionService(tmp_path / "db.sqlite", clock=clock, soft_delete=False) as svc:
        session = await svc.create_session(app_name="a", user_id="u", session_id="s")
        await svc.append_events(session, [Event(author="u") for _ in range(30)])
        await svc.delete_session(app_name="a", user_id="u", session_id="s")  # immediate
    async with SessionService(tmp_path / "db2.sqlite", clock=clock, soft_delete_retention=1) as svc:
        session = await svc.create_session(app_name="a", user_id="u", session_id="s")
        await svc.append_events(session, [Event(author="u") for _ in range(30)])
        await svc.delete_session(app_name="a", user_id="u", session_id="s")
        clock.advance(seconds=2)
        report = await svc.run_cleanup()
        assert report.deleted_events == 30
        assert report.transactions >= 30 // 7 + 1  # writers were never blocked for long


async def test_max_stored_events(make_service: Factory, database: str | Path) -> None:
    async with make_service(max_stored_events=3) as service:
        session = await service.create_session(app_name="a", user_id="u", session_id="s")
        for i in range(5):
            await service.append_event(session, Event(author="u", content=i))
        await service.append_events(session, [Event(author="u", content=i) for i in (5, 6)])
        got = await service.get_session(app_name="a", user_id="u", session_id="s")
        assert got is not None
        assert [e.content for e in got.events] == [4, 5, 6]
        assert [e.sequence for e in got.events] == [5, 6, 7]
        everything = [
            e async for e in service.iter_events(app_name="a", user_id="u", session_id="s")
        ]
        assert len(everything) == 3
        if database != ":memory:":
            assert count_rows(database, f"{service.options.table_prefix}events") == 3


async def test_cleaner_runs_on_its_interval(tmp_path: Path, clock: ManualClock) -> None:
    async with SessionService(
        tmp_path / "db.sqlite", clock=clock, session_ttl=1, cleanup_interval=0.01
    ) as service:
        ran = CrossLoopEvent()
        run_once = service._cleaner.run_once

        async def observed() -> object:
            report = await run_once()
            if report.ran:
                ran.set()
            return report

        service._cleaner.run_once = observed  # type: ignore[method-assign]
        await service.create_session(app_name="a", user_id="u", session_id="s")
        clock.advance(seconds=2)
        with anyio.fail_after(5):
            await ran.wait()
        assert service.stats().cleanup_expired_sessions == 1
