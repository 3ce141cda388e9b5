"""A full disk: a clear StorageFullError, an intact database, recovery when space returns."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from tests.reliability.conftest import Tmpfs

from sessionlite import Event, PersistenceError, Session, SessionService, StorageFullError


async def cap_pages(service: SessionService, pages: int) -> None:
    writer = service._store._writer_conn
    assert writer is not None
    await writer.run(lambda conn: conn.execute(f"PRAGMA max_page_count = {pages}"))


def page_count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA page_count").fetchone()[0])


async def test_async_mode_reports_full_disk_at_flush(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    async with SessionService(path, async_persist=True) as service:
        session = await service.create_session(app_name="a", user_id="u", session_id="s")
        await service.append_event(session, Event(author="u", content="small"))
        await service.flush()
        await cap_pages(service, page_count(path) + 2)
        big = [await service.append_event(session, Event(author="u", content="y" * 100_000))]
        with pytest.raises(PersistenceError) as info:
            await service.flush()
        assert info.value.event_ids == (big[0].id,)
        assert isinstance(info.value.__cause__, StorageFullError)
        await cap_pages(service, 1_073_741_823)  # space returns
        again = await service.append_event(session, Event(author="u", content="y" * 100_000))
        await service.flush()
        got = await service.get_session(app_name="a", user_id="u", session_id="s")
        assert got is not None
        assert [e.id for e in got.events][-1] == again.id
        assert big[0].id not in {e.id for e in got.events}


async def fill_until_full(service: SessionService, session: Session, stored: list[str]) -> None:
    for i in range(1000):
        event = await service.append_event(
            session, Event(author="u", content={"i": i, "pad": "z" * 20_000})
        )
        stored.append(event.id)


async def test_real_full_filesystem(tmpfs: Tmpfs) -> None:
    path = tmpfs.path / "db.sqlite"
    stored: list[str] = []
    async with SessionService(path) as service:
        session = await service.create_session(app_name="a", user_id="u", session_id="s")
        with pytest.raises(StorageFullError):
            await fill_until_full(service, session, stored)
        assert stored  # some fitted before the disk filled
        got = await service.get_session(
            app_name="a", user_id="u", session_id="s", num_recent_events=None
        )
        assert got is not None and [e.id for e in got.events] == stored
        tmpfs.remount("size=16m")  # space returns: the same service carries on
        after = await service.append_event(session, Event(author="u", content="after"))
        assert after.sequence == len(stored) + 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
