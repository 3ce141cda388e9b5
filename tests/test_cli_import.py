"""``sessionlite import-adk`` and ``import-openai-agents``, on files written by the real
frameworks (the writers of ``tests/integrations/test_importers.py``): through typer's
CliRunner and, once, as the installed console script in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from clitest import as_json, ok, refused
from integrations.test_importers import (
    ADK_EVENTS,
    ADK_SESSIONS,
    ADK_STATE_KEYS,
    write_adk_file,
    write_openai_file,
)
from sessionlite import SessionService
from sessionlite.cli import main
from sessionlite.integrations.adk import SessionliteSessionService
from sessionlite.integrations.openai_agents import SessionliteSession

OPENAI_SESSIONS = 4  # chat, notes, orphan (no session row), empty (no items)
OPENAI_INVALID = 1  # the row whose JSON does not decode


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One file per format, each written by its framework, and what it reads back."""
    folder = tmp_path_factory.mktemp("sources")
    found: dict[str, Any] = {}
    for kind in ("adk-sqlite", "adk-database"):
        path = folder / f"{kind}.db"
        found[kind] = (path, anyio.run(write_adk_file, kind, path))
    path = folder / "sdk.db"
    found["openai-sqlite"] = (path, anyio.run(write_openai_file, path))
    custom = folder / "custom.db"
    tables = {"sessions_table": "convs", "messages_table": "msgs"}
    found["openai-custom"] = (custom, anyio.run(lambda: write_openai_file(custom, **tables)))
    return found


def source_copy(sources: dict[str, Any], kind: str, tmp_path: Path) -> Path:
    """A private copy of a source, for tests that change it."""
    copy = tmp_path / f"source-{kind}.db"
    shutil.copyfile(sources[kind][0], copy)
    return copy


async def adk_sessions(db: Path, expected: dict[str, Any]) -> None:
    """Every ADK session comes back through the ADK adapter as ADK served it."""
    async with SessionService(db) as service:
        adk = SessionliteSessionService(service)
        for (app_name, user_id, session_id), want in expected["sessions"].items():
            got = await adk.get_session(app_name=app_name, user_id=user_id, session_id=session_id)
            assert got is not None, session_id
            assert (got.state, got.events) == (want.state, want.events), session_id


async def openai_items(db: Path, expected: dict[str, list[Any]], **ids: str) -> None:
    async with SessionService(db) as service:
        for session_id, items in expected.items():
            assert await SessionliteSession(session_id, service, **ids).get_items() == items


# -- ADK ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["adk-sqlite", "adk-database"])
def test_import_adk(sources: dict[str, Any], tmp_path: Path, kind: str) -> None:
    path, expected = sources[kind]
    # DatabaseSessionService is configured with a URL: the command takes it as given.
    source = f"sqlite+aiosqlite:///{path}" if kind == "adk-database" else str(path)
    db = tmp_path / "sessions.db"
    summary = as_json("--db", db, "import-adk", source)
    assert summary == {
        "database": str(db),
        "source": source,
        "kind": kind,
        "sessions": ADK_SESSIONS,
        "sessions_created": ADK_SESSIONS,
        "events_imported": ADK_EVENTS,
        "events_skipped": 0,
        "state_keys_imported": ADK_STATE_KEYS,
        "items_invalid": 0,
    }
    anyio.run(adk_sessions, db, expected)
    before = as_json("--db", db, "sessions", "--limit", "0")

    # Idempotent: a re-run finds everything and writes nothing.
    again = ok("--db", db, "import-adk", source, "--chunk-size", "3").stdout
    assert f"Imported {source} (ADK" in again
    assert "Nothing new: everything was imported before." in again
    rerun = as_json("--db", db, "import-adk", source)
    assert (rerun["sessions"], rerun["sessions_created"]) == (ADK_SESSIONS, 0)
    assert (rerun["events_imported"], rerun["events_skipped"]) == (0, ADK_EVENTS)
    assert rerun["state_keys_imported"] == 0
    # Same sessions, same versions and update times: nothing was written.
    assert as_json("--db", db, "sessions", "--limit", "0") == before
    assert as_json("--db", db, "stats")["events"] == ADK_EVENTS


def test_import_adk_text_output_and_progress(sources: dict[str, Any], tmp_path: Path) -> None:
    path, _ = sources["adk-sqlite"]
    result = ok("--db", tmp_path / "sessions.db", "import-adk", path, "--progress")
    assert "Importing (" in result.stderr  # the bar, fed by the importer's callback
    text = result.stdout
    assert f"Imported {path} (ADK SqliteSessionService) into {tmp_path / 'sessions.db'}" in text
    assert "events imported" in text and str(ADK_EVENTS) in text
    assert "Nothing new" not in text


def test_import_adk_resumes_after_a_bad_row(sources: dict[str, Any], tmp_path: Path) -> None:
    """A row that does not decode stops the import (exit 1); once the source is fixed,
    a re-run imports the rest and skips what the first run stored."""
    source = source_copy(sources, "adk-sqlite", tmp_path)
    with sqlite3.connect(source) as conn:
        (good,) = conn.execute("SELECT event_data FROM events WHERE id = 'a-tie'").fetchone()
        conn.execute("UPDATE events SET event_data = '{' WHERE id = 'a-tie'")
    db = tmp_path / "sessions.db"
    # Small chunks: the events before the bad one are stored by the failing run.
    message = refused("--db", db, "import-adk", source, "--chunk-size", "3", code=1)
    assert "event 'a-tie' of session 's1' is not valid JSON" in message
    with sqlite3.connect(source) as conn:
        conn.execute("UPDATE events SET event_data = ? WHERE id = 'a-tie'", (good,))
    resumed = as_json("--db", db, "import-adk", source)
    assert resumed["events_imported"] + resumed["events_skipped"] == ADK_EVENTS
    assert resumed["events_imported"] < ADK_EVENTS  # the first run kept what it stored
    assert as_json("--db", db, "stats")["events"] == ADK_EVENTS


def test_import_adk_source_changed_since(sources: dict[str, Any], tmp_path: Path) -> None:
    source = source_copy(sources, "adk-sqlite", tmp_path)
    db = tmp_path / "sessions.db"
    ok("--db", db, "import-adk", source)
    with sqlite3.connect(source) as conn:
        (data,) = conn.execute("SELECT event_data FROM events WHERE id = 'a-tie'").fetchone()
        changed = {**json.loads(data), "error_message": "rewritten"}
        conn.execute("UPDATE events SET event_data = ? WHERE id = 'a-tie'", (json.dumps(changed),))
    assert "'a-tie'" in refused("--db", db, "import-adk", source, code=1)


def test_import_adk_without_adk(
    sources: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "google.adk", None)  # as if not installed
    message = refused("--db", tmp_path / "s.db", "import-adk", sources["adk-sqlite"][0], code=1)
    assert "pip install 'sessionlite[adk]'" in message


# -- OpenAI Agents SDK --------------------------------------------------------------------


def test_import_openai_agents(sources: dict[str, Any], tmp_path: Path) -> None:
    path, expected = sources["openai-sqlite"]
    items = sum(len(v) for v in expected.values())
    db = tmp_path / "sessions.db"
    ids = ("--app-name", "support", "--user-id", "ann")
    summary = as_json("--db", db, "import-openai-agents", path, *ids, "--chunk-size", "2")
    assert summary == {
        "database": str(db),
        "source": str(path),
        "kind": "openai-sqlite",
        "sessions": OPENAI_SESSIONS,
        "sessions_created": OPENAI_SESSIONS,
        "events_imported": items,
        "events_skipped": 0,
        "state_keys_imported": 0,
        "items_invalid": OPENAI_INVALID,
    }
    anyio.run(lambda: openai_items(db, expected, app_name="support", user_id="ann"))

    again = ok("--db", db, "import-openai-agents", path, *ids).stdout
    assert "(OpenAI Agents SQLiteSession)" in again
    assert "warning: 1 rows are not JSON and were skipped" in again
    assert "Nothing new" in again
    rerun = as_json("--db", db, "import-openai-agents", path, *ids)
    assert (rerun["events_imported"], rerun["events_skipped"]) == (0, items)
    assert rerun["sessions_created"] == 0
    assert as_json("--db", db, "stats")["events"] == items

    # The default ids: the mapping SessionliteSession uses unless told otherwise.
    default = as_json("--db", db, "import-openai-agents", path)
    assert default["sessions_created"] == OPENAI_SESSIONS
    anyio.run(openai_items, db, expected)


def test_import_openai_agents_custom_tables(sources: dict[str, Any], tmp_path: Path) -> None:
    path, expected = sources["openai-custom"]
    db = tmp_path / "sessions.db"
    message = refused("--db", db, "import-openai-agents", path)
    assert "not an OpenAI Agents SQLiteSession file" in message
    assert "--sessions-table and --messages-table" in message
    assert not db.exists()  # refused before the database was opened
    tables = ("--sessions-table", "convs", "--messages-table", "msgs")
    summary = as_json("--db", db, "import-openai-agents", path, *tables)
    assert (summary["sessions"], summary["items_invalid"]) == (OPENAI_SESSIONS, OPENAI_INVALID)
    anyio.run(openai_items, db, expected)
    wrong = refused("--db", db, "import-openai-agents", path, "--messages-table", "other")
    assert "has no SQLiteSession tables" in wrong
    bad = refused("--db", db, "import-openai-agents", path, "--messages-table", "x; DROP y")
    assert "is not a table name" in bad
    # Refused into a new database: no empty database file is left behind.
    fresh = tmp_path / "fresh.db"
    wrong = refused("--db", fresh, "import-openai-agents", path, "--messages-table", "other")
    assert "has no SQLiteSession tables" in wrong
    assert not any(tmp_path.glob("fresh.db*"))


# -- refused sources and databases ---------------------------------------------------------


def test_wrong_format_is_a_usage_error(sources: dict[str, Any], tmp_path: Path) -> None:
    db = tmp_path / "sessions.db"
    adk, sdk = sources["adk-sqlite"][0], sources["openai-sqlite"][0]
    assert "use `sessionlite import-openai-agents`" in refused("--db", db, "import-adk", sdk)
    assert "use `sessionlite import-adk`" in refused("--db", db, "import-openai-agents", adk)
    assert not db.exists()

    ok("--db", db, "import-openai-agents", sdk)
    ours = refused("--db", tmp_path / "other.db", "import-adk", db)
    assert "is not an ADK session database" in ours

    legacy = tmp_path / "v0.db"
    with sqlite3.connect(legacy) as conn:
        conn.execute("CREATE TABLE sessions (app_name, user_id, id, state, update_time)")
        conn.execute("CREATE TABLE events (id, app_name, actions BLOB)")
    assert "adk migrate session" in refused("--db", db, "import-adk", legacy)

    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    for command in ("import-adk", "import-openai-agents"):
        assert "cannot be read as an SQLite database" in refused("--db", db, command, junk)


@pytest.mark.parametrize("command", ["import-adk", "import-openai-agents"])
def test_bad_paths(tmp_path: Path, command: str) -> None:
    db = tmp_path / "sessions.db"
    assert "no such file" in refused("--db", db, command, tmp_path / "missing.db")
    url = f"sqlite+aiosqlite:///{tmp_path / 'missing.db'}"
    assert "no such file" in refused("--db", db, command, url)
    assert "is a directory" in refused("--db", db, command, tmp_path)
    nowhere = refused("--db", tmp_path / "no" / "s.db", command, tmp_path / "x.db")
    assert "does not exist; create it first" in nowhere
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.close()
    assert "has no sessionlite tables" in refused("--db", foreign, command, tmp_path / "x.db")
    assert not db.exists()


def test_bad_ids(sources: dict[str, Any], tmp_path: Path) -> None:
    sdk = sources["openai-sqlite"][0]
    for option in ("--app-name", "--user-id"):
        message = refused("--db", tmp_path / "s.db", "import-openai-agents", sdk, option, "")
        assert f"{option} must not be empty" in message


def test_a_locked_database_is_reported(sources: dict[str, Any], tmp_path: Path) -> None:
    db = tmp_path / "sessions.db"
    ok("--db", db, "import-adk", sources["adk-sqlite"][0])
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE schema_info SET version = version")
    try:
        for command, source in (
            ("import-adk", sources["adk-database"][0]),
            ("import-openai-agents", sources["openai-sqlite"][0]),
        ):
            message = refused("--db", db, "--busy-timeout", "0.05", command, source, code=1)
            assert "the database is locked by another process" in message
    finally:
        holder.execute("ROLLBACK")
        holder.close()


# -- the command itself ---------------------------------------------------------------------


def test_help_lists_the_import_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    listed = capsys.readouterr().out
    assert "import-adk" in listed and "import-openai-agents" in listed


def test_the_installed_command(sources: dict[str, Any], tmp_path: Path) -> None:
    """The console script, in a process of its own."""
    script = Path(sys.executable).with_name("sessionlite")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "sessionlite"]
    env = {**os.environ, "COLUMNS": "200"}
    db = tmp_path / "sessions.db"

    def sessionlite(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, "--db", str(db), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=env,
        )

    first = sessionlite("import-adk", sources["adk-database"][0], "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["events_imported"] == ADK_EVENTS
    second = sessionlite("import-adk", sources["adk-database"][0], "--json")
    assert json.loads(second.stdout)["events_skipped"] == ADK_EVENTS
    missing = sessionlite("import-openai-agents", tmp_path / "missing.db")
    assert missing.returncode == 2
    assert "no such file" in missing.stderr
