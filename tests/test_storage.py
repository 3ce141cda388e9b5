"""Storage errors from real triggers, schema versioning, reopen, create_schema=False."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from sessionlite import (
    DatabaseCorruptError,
    DatabaseLockedError,
    Event,
    SchemaVersionError,
    SessionService,
    StorageError,
    StorageFullError,
)
from sessionlite.store.sqlite.schema import SCHEMA_VERSION


async def test_reopen_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    async with SessionService(path, table_prefix="p_") as service:
        session = await service.create_session(
            app_name="a", user_id="u", session_id="s", state={"k": 1, "app:g": 2}
        )
        stored = await service.append_events(
            session, [Event(author="u", content={"i": i}, state_delta={"n": i}) for i in range(5)]
        )
    async with SessionService(path, table_prefix="p_") as service:
        got = await service.get_session(app_name="a", user_id="u", session_id="s")
        assert got is not None
        assert got.events == stored
        assert got.state == {"k": 1, "app:g": 2, "n": 4}
        assert got.version == 1
        nxt = await service.append_event(got, Event(author="u"))
        assert nxt.sequence == 6
    # Another prefix in the same file is a separate store.
    async with SessionService(path, table_prefix="q_") as other:
        assert await other.get_session(app_name="a", user_id="u", session_id="s") is None
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_newer_schema_version_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    async with SessionService(path):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaVersionError, match="upgrade sessionlite"):
        async with SessionService(path):
            pass


async def test_newer_prefix_version_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    async with SessionService(path, table_prefix="x_"):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE x_schema_info SET version = 99")
    with pytest.raises(SchemaVersionError):
        async with SessionService(path, table_prefix="x_"):
            pass
    with pytest.raises(SchemaVersionError):
        async with SessionService(path, table_prefix="x_", create_schema=False):
            pass


async def test_create_schema_false(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    with pytest.raises(StorageError, match="create_schema=False"):
        async with SessionService(path, create_schema=False):
            pass
    with sqlite3.connect(path) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
        assert tables == []  # nothing was created
    async with SessionService(path):
        pass
    async with SessionService(path, create_schema=False) as service:
        await service.create_session(app_name="a", user_id="u")


async def test_random_bytes_file_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(os.urandom(8192))
    with pytest.raises(DatabaseCorruptError, match="not a valid sessionlite database"):
        async with SessionService(path):
            pass


async def test_truncated_database_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    async with SessionService(path) as service:
        session = await service.create_session(app_name="a", user_id="u", session_id="s")
        await service.append_events(
            session, [Event(author="u", content="x" * 2000) for _ in range(200)]
        )
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(DatabaseCorruptError, match="restore it from a backup"):
        async with SessionService(path):
            pass


async def test_directory_path(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="is a directory"):
        async with SessionService(tmp_path):
            pass


async def test_missing_parent_directory(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        async with SessionService(tmp_path / "no" / "such" / "db.sqlite"):
            pass


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
async def test_read_only_file(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    async with SessionService(path):
        pass
    path.chmod(0o444)
    with pytest.raises(StorageError, match="permissions"):
        async with SessionService(path):
            pass


async def test_outsider_holding_the_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    async with SessionService(path, busy_timeout=0.2) as service:
        session = await service.create_session(app_name="a", user_id="u", session_id="s")
        outsider = sqlite3.connect(path, isolation_level=None)
        outsider.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(DatabaseLockedError, match="busy_timeout"):
                await service.append_event(session, Event(author="u", content="blocked"))
            # Reads are not blocked by a writer (WAL).
            got = await service.get_session(app_name="a", user_id="u", session_id="s")
            assert got is not None and got.events == []
        finally:
            outsider.execute("ROLLBACK")
            outsider.close()
        stored = await service.append_event(session, Event(author="u", content="after"))
        assert stored.sequence == 1
        got = await service.get_session(app_name="a", user_id="u", session_id="s")
        assert got is not None and [e.content for e in got.events] == ["after"]


async def test_storage_full_fails_alone_and_recovers(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    async with SessionService(path) as service:
        session = await service.create_session(app_name="a", user_id="u", session_id="s")
        await service.append_event(session, Event(author="u", content="before"))
    with sqlite3.connect(path) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    async with SessionService(path) as service:
        got = await service.get_session(app_name="a", user_id="u", session_id="s")
        assert got is not None
        # Cap the file just above its size, on the writer connection.
        writer = service._store._writer_conn
        assert writer is not None
        await writer.run(lambda c: c.execute(f"PRAGMA max_page_count = {pages + 2}"))
        with pytest.raises(StorageFullError):
            await service.append_event(got, Event(author="u", content="y" * 200_000))
        assert got.version == 1 and len(got.events) == 1
        reread = await service.get_session(app_name="a", user_id="u", session_id="s")
        assert reread is not None and [e.content for e in reread.events] == ["before"]
        # Space returns: the service keeps working.
        await writer.run(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
        await service.append_event(got, Event(author="u", content="y" * 200_000))
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_corrupt_row_is_reported_not_skipped(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    async with SessionService(path) as service:
        session = await service.create_session(app_name="a", user_id="u", session_id="s")
        await service.append_events(session, [Event(author="u", content=i) for i in range(3)])
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE events SET body = '{not json' WHERE sequence = 2")
    async with SessionService(path) as service:
        with pytest.raises(DatabaseCorruptError, match="not valid JSON"):
            await service.get_session(app_name="a", user_id="u", session_id="s")
    with sqlite3.connect(path) as conn:
        conn.execute("""UPDATE events SET body = '{"usage": "bad"}' WHERE sequence = 2""")
    async with SessionService(path) as service:
        with pytest.raises(DatabaseCorruptError, match="does not decode"):
            await service.get_session(app_name="a", user_id="u", session_id="s")
