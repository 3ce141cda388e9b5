"""Corrupt and foreign files: the right error at open, with a message that says what to do."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from tests.reliability.conftest import Tmpfs

from sessionlite import (
    DatabaseCorruptError,
    Event,
    SchemaVersionError,
    SessionService,
    StorageError,
)
from sessionlite.store.sqlite.schema import SCHEMA_VERSION


async def make_db(path: Path) -> None:
    async with SessionService(path) as service:
        session = await service.create_session(app_name="a", user_id="u", session_id="s")
        await service.append_events(
            session, [Event(author="u", content="x" * 3000) for _ in range(100)]
        )
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


async def open_fails(path: Path, error: type[Exception], advice: str) -> None:
    with pytest.raises(error, match=advice):
        async with SessionService(path):
            pass


async def test_truncated(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    await make_db(path)
    path.write_bytes(path.read_bytes()[: 4096 * 3])
    await open_fails(path, DatabaseCorruptError, "restore it from a backup")


async def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    path.write_bytes(os.urandom(64 * 1024))
    await open_fails(path, DatabaseCorruptError, "not a valid sessionlite database")


async def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes, not a database\n" * 100)
    await open_fails(path, DatabaseCorruptError, "point the service at another file")


async def test_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    await make_db(path)
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    await open_fails(path, SchemaVersionError, "upgrade sessionlite")


async def test_foreign_table_of_the_same_name(tmp_path: Path) -> None:
    path = tmp_path / "other-app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE sessions (token TEXT PRIMARY KEY, expires REAL)")
    await open_fails(path, StorageError, "table_prefix")
    async with SessionService(path, table_prefix="sl_") as service:  # the advice works
        await service.create_session(app_name="a", user_id="u")
    with sqlite3.connect(path) as conn:  # and the other app's table is untouched
        assert conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 0


async def test_directory(tmp_path: Path) -> None:
    await open_fails(tmp_path, StorageError, "is a directory")


async def test_read_only_filesystem(tmpfs: Tmpfs) -> None:
    path = tmpfs.path / "db.sqlite"
    await make_db(path)
    tmpfs.remount("ro")
    await open_fails(path, StorageError, "readable and writable")
