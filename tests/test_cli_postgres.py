"""The ``sessionlite`` command on PostgreSQL (``--db postgresql://...``) and ``copy``
between SQLite and PostgreSQL, through typer's CliRunner and, once, in a subprocess.

Each test gets a schema of its own (the ``postgres_url`` fixture of ``pgtest``); the
data is written by :class:`~sessionlite.SessionService`, as an application would.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import psycopg
import pytest
from psycopg import sql

from clitest import as_json, invoke, ok, refused
from pgtest import Server, unique_prefix
from sessionlite import Event, SessionService, StorageError
from sessionlite.cli import copy_cmd, queries
from sessionlite.store.postgres import inspect
from sessionlite.store.postgres.connection import display_name
from sessionlite.store.postgres.schema import SCHEMA_VERSION, TABLES
from test_cli import LIVE_KEYS, build


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with every kind of content an export carries (see test_cli)."""
    path = tmp_path_factory.mktemp("template") / "sessions.db"
    anyio.run(build, path)
    return path


@pytest.fixture
def src(template: Path, tmp_path: Path) -> Path:
    """A private copy of the SQLite template."""
    path = tmp_path / "src.db"
    shutil.copyfile(template, path)
    return path


@pytest.fixture
def pg(postgres_url: str) -> str:
    """A PostgreSQL database with the same content, written by a SessionService."""
    anyio.run(build, postgres_url)
    return postgres_url


def execute(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement.encode())


def execute_sqlite(path: Path, statement: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(statement)
    conn.close()


# -- reading: stats, sessions, show, check ------------------------------------------------


def test_stats(pg: str, src: Path) -> None:
    report = as_json("--db", pg, "stats")
    assert report["path"] == display_name(pg)
    assert report["schema_version"] == SCHEMA_VERSION
    assert report["table_bytes"] > 0
    sqlite = as_json("--db", src, "stats")  # the same content: the same counts
    for field in ("sessions", "users", "events", "deleted_sessions", "expired_sessions", "apps"):
        assert report[field] == sqlite[field], field
    assert (report["sessions"], report["users"], report["events"]) == (5, 3, 11)
    text = ok("--db", pg, "stats").stdout
    assert text.startswith(f"Database: {display_name(pg)} (schema version {SCHEMA_VERSION})\n")
    assert "in tables and indexes" in text
    assert "Sessions: 5 live (3 users, 11 events); 1 expired and 1 deleted" in text
    assert "support" in text


def test_sessions(pg: str) -> None:
    listed = as_json("--db", pg, "sessions")
    assert listed["more"] is False
    keys = sorted((s["app_name"], s["user_id"], s["session_id"]) for s in listed["sessions"])
    assert keys == LIVE_KEYS
    newest = listed["sessions"][0]
    assert (newest["app_name"], newest["session_id"], newest["events"]) == ("support", "c1", 3)
    a1 = next(s for s in listed["sessions"] if s["session_id"] == "a1")
    assert (a1["agent_id"], a1["events"], a1["expires_at"]) == ("bot", 5, None)
    alice = as_json("--db", pg, "sessions", "--app", "chat", "--user", "alice")
    assert [s["session_id"] for s in alice["sessions"]] == ["dup", "a2", "a1"]
    first = as_json("--db", pg, "sessions", "--limit", "2")
    assert len(first["sessions"]) == 2 and first["more"] is True
    assert len(as_json("--db", pg, "sessions", "--limit", "0")["sessions"]) == 5
    text = ok("--db", pg, "sessions", "--app", "chat", "--limit", "1").stdout
    assert "dup" in text and "bob" in text and "pass --limit 0 for all" in text
    assert ok("--db", pg, "sessions", "--app", "nope").stdout.strip() == "No sessions."


def test_show(pg: str) -> None:
    shown = as_json("--db", pg, "show", "a1")
    assert (shown["app_name"], shown["user_id"], shown["agent_id"]) == ("chat", "alice", "bot")
    assert shown["state"] == {
        "topic": "tea",
        "turns": 1,
        "direct": {"a": [1]},
        "app:motd": "hello",
        "app:plan": "pro",
        "user:lang": "en",
    }
    assert [e["sequence"] for e in shown["events"]] == [1, 2, 3, 4, 6]
    assert sorted(shown["summaries"]) == ["", "root/research"]
    last = as_json("--db", pg, "show", "a1", "--last", "1")
    assert [e["content"] for e in last["events"]] == ["after the gap"]
    text = ok("--db", pg, "show", "a1").stdout
    assert "session   a1" in text and "Events (5 shown)" in text

    ambiguous = refused("--db", pg, "show", "dup")
    assert "--app 'chat' --user 'bob'" in ambiguous
    assert as_json("--db", pg, "show", "dup", "--user", "bob")["user_id"] == "bob"
    for missing in (["no-such-id"], ["expired"], ["gone"]):
        message = refused("--db", pg, "show", *missing, code=1)
        assert f"no live session {missing[0]!r} in {display_name(pg)}" in message


def test_check(pg: str) -> None:
    assert as_json("--db", pg, "check") == {
        "path": display_name(pg),
        "schema_version": SCHEMA_VERSION,
        "supported_schema_version": SCHEMA_VERSION,
        "ok": True,
        "notes": [],
        "problems": [],
    }
    text = ok("--db", pg, "check").stdout
    assert text == (
        f"{display_name(pg)}: schema version {SCHEMA_VERSION} "
        f"(this sessionlite: {SCHEMA_VERSION})\nOK\n"
    )


def check_of(url: str, *options: str) -> dict[str, Any]:
    result = invoke("--db", url, *options, "check", "--json")
    report: dict[str, Any] = json.loads(result.stdout)
    assert result.exit_code == (0 if report["ok"] else 1)
    return report


def test_check_finds_problems(pg: str) -> None:
    execute(
        pg,
        "INSERT INTO events (session_pk, sequence, event_id, author, timestamp, branch, body) "
        "VALUES (999, 1, 'orphan', 'user', 0, '', '{}')",
        "UPDATE sessions SET last_sequence = 0 WHERE session_id = 'a2'",
    )
    assert check_of(pg)["problems"] == [
        "1 event(s) belong to no session",
        "1 session(s) have events beyond their sequence counter",
    ]
    text = invoke("--db", pg, "check")
    assert text.exit_code == 1
    assert "problem: 1 event(s) belong to no session" in text.stdout
    assert text.stdout.strip().endswith("FAILED")

    execute(pg, "DROP TABLE state_scopes")
    assert check_of(pg)["problems"] == ["missing table(s): state_scopes"]

    execute(pg, f"UPDATE schema_info SET version = {SCHEMA_VERSION + 1}")
    assert "written by a newer sessionlite" in check_of(pg)["problems"][0]
    assert "upgrade sessionlite" in refused("--db", pg, "stats", code=1)


def test_the_reader(pg: str) -> None:
    """What only some commands reach: holds_data (unused on PostgreSQL, where no
    database is removed), a URL that sets its own connect_timeout."""
    with inspect.connect(pg + "&connect_timeout=3", "", 0.1, key_page=2) as db:
        assert db.holds_data() is True
        assert db.stored_version() == SCHEMA_VERSION
        assert list(db.session_keys(None, None)) == LIVE_KEYS  # two at a time
        assert db.find("dup", None, None) == [("chat", "alice"), ("chat", "bob")]
    with inspect.connect(pg, "other_", 5, key_page=2) as db:
        assert db.stored_version() == 0
    anyio.run(empty_tables, pg, "empty_")
    with inspect.connect(pg, "empty_", 5, key_page=2) as db:
        assert db.holds_data() is False
        assert db.missing_tables() == []
        assert db.invariants() == (0, 0)


async def empty_tables(url: str, prefix: str) -> None:
    async with SessionService(url, table_prefix=prefix):
        pass


def test_a_database_without_our_tables(postgres_url: str) -> None:
    empty = check_of(postgres_url)
    assert empty["problems"] == ["no sessionlite tables with prefix '' (the database is empty)"]
    assert invoke("--db", postgres_url, "check").stdout.startswith(
        f"{display_name(postgres_url)}: no sessionlite schema\n"
    )
    execute(postgres_url, "CREATE TABLE t (x int)")
    assert check_of(postgres_url, "--table-prefix", "app_")["problems"] == [
        "no sessionlite tables with prefix 'app_'"
    ]
    for command in ("stats", "sessions", "export", "cleanup"):
        message = refused("--db", postgres_url, command)
        assert f"{display_name(postgres_url)} has no sessionlite tables" in message


# -- writing: export, import, cleanup -------------------------------------------------------


def test_export_and_import(src: Path, postgres_url: str, tmp_path: Path) -> None:
    """An import into PostgreSQL (which gets the tables) restores an export exactly: its
    export is byte for byte the SQLite one (sessions in the same order, state keys
    sorted). A second import finds everything there."""
    exported = tmp_path / "export.jsonl"
    ok("--db", src, "export", exported)
    name = display_name(postgres_url)
    imported = ok("--db", postgres_url, "import", exported, "--chunk-size", "2")
    assert imported.stderr == f"Imported 5 new sessions and 11 new events into {name}\n"
    assert ok("--db", postgres_url, "export").stdout_bytes == exported.read_bytes()
    again = as_json("--db", postgres_url, "import", exported)
    assert (again["sessions_created"], again["events_imported"]) == (0, 0)
    assert again["database"] == name
    copy = tmp_path / "copy.jsonl"
    ok("--db", postgres_url, "export", copy, "--app", "chat", "--progress")
    assert json.loads(copy.read_bytes().splitlines()[-1]) == {
        "type": "end",
        "sessions": 4,
        "events": 8,
    }


def test_import_refuses_a_bad_file(postgres_url: str, tmp_path: Path) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_bytes(b"not json\n")
    assert "line 1: not a sessionlite export line" in refused(
        "--db", postgres_url, "import", source, code=1
    )


def test_export_pages_through_many_sessions(pg: str, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = ok("--db", pg, "export").stdout_bytes
    monkeypatch.setattr(queries, "KEY_PAGE", 2)
    assert ok("--db", pg, "export").stdout_bytes == whole
    chat = ok("--db", pg, "export", "--app", "chat", "--user", "alice").stdout_bytes
    assert json.loads(chat.splitlines()[-1]) == {"type": "end", "sessions": 3, "events": 7}


def test_cleanup(pg: str) -> None:
    first = as_json("--db", pg, "cleanup")
    assert first["path"] == display_name(pg)
    assert first["ran"] is True
    assert (first["expired_sessions"], first["purged_sessions"]) == (1, 0)
    assert (first["expired_app_states"], first["expired_user_states"]) == (1, 1)
    assert "purged sessions" in ok("--db", pg, "cleanup", "--retention", "0").stdout
    stats = as_json("--db", pg, "stats")
    assert (stats["deleted_sessions"], stats["expired_sessions"], stats["sessions"]) == (0, 0, 5)
    assert ok("--db", pg, "cleanup").stdout.strip() == "Nothing to clean."


@pytest.mark.parametrize("command", [["vacuum"], ["backup", "copy.db"]])
def test_vacuum_and_backup_are_sqlite_commands(
    pg: str, command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    message = refused("--db", pg, *command)
    assert f"{command[0]} is a SQLite command" in message
    assert "pg_dump" in message
    assert not (tmp_path / "copy.db").exists()


# -- copy ------------------------------------------------------------------------------------


def test_copy_round_trip(src: Path, postgres_url: str, tmp_path: Path) -> None:
    """SQLite -> PostgreSQL -> SQLite: the three exports are the same bytes; a second
    copy each way copies nothing."""
    back = tmp_path / "back.db"
    first = ok("copy", src, postgres_url)
    assert first.stderr == (
        f"Copied 5 sessions (11 events) from {src} to {display_name(postgres_url)}; "
        "0 already present\n"
    )
    ok("copy", postgres_url, back)
    exported = ok("--db", src, "export").stdout_bytes
    assert ok("--db", postgres_url, "export").stdout_bytes == exported
    assert ok("--db", back, "export").stdout_bytes == exported

    again = ok("copy", src, postgres_url)
    assert again.stderr.startswith("Copied 0 sessions (0 events) from ")
    assert again.stderr.endswith("; 5 already present\n")
    report = as_json("copy", postgres_url, back)
    assert report == {
        "source": display_name(postgres_url),
        "destination": str(back),
        "sessions": 5,
        "sessions_copied": 0,
        "sessions_present": 5,
        "events": 11,
        "events_copied": 0,
        "summaries_not_restored": 0,
    }
    assert as_json("--db", postgres_url, "stats")["events"] == 11
    assert ok("--db", back, "export").stdout_bytes == exported
    assert as_json("--db", postgres_url, "check")["ok"] is True


def test_copy_restores_sessions_field_for_field(src: Path, postgres_url: str) -> None:
    ok("copy", src, postgres_url, "--chunk-size", "2")

    async def read(database: str | Path) -> Any:
        async with SessionService(database) as service:
            session = await service.get_session(app_name="chat", user_id="alice", session_id="a1")
            assert session is not None
            return session

    original, copied = anyio.run(read, src), anyio.run(read, postgres_url)
    for field in ("state", "metadata", "agent_id", "created_at", "updated_at"):
        assert getattr(copied, field) == getattr(original, field), field
    assert [e.sequence for e in copied.events] == [1, 2, 3, 4, 5]  # the gap is closed
    assert [e.model_copy(update={"sequence": None}) for e in copied.events] == [
        e.model_copy(update={"sequence": None}) for e in original.events
    ]
    for branch, summary in original.summaries.items():
        restored = copied.summaries[branch]
        assert (restored.text, restored.updated_at) == (summary.text, summary.updated_at)


def test_copy_resumes_and_completes_a_partial_copy(src: Path, postgres_url: str) -> None:
    """Sessions already in DEST (an interrupted copy, say) are completed, not doubled."""
    export = ok("--db", src, "export").stdout_bytes
    partial = b"".join(export.splitlines(keepends=True)[:6])  # header, a1, four events
    assert invoke("--db", postgres_url, "import", "-", input=partial).exit_code == 1
    report = as_json("copy", src, postgres_url)
    assert (report["sessions_copied"], report["sessions_present"]) == (4, 1)
    assert report["events_copied"] == 7
    assert ok("--db", postgres_url, "export").stdout_bytes == export


def test_copy_with_a_table_prefix(postgres_url: str, tmp_path: Path) -> None:
    prefixed = tmp_path / "prefixed.db"
    anyio.run(build, prefixed, "app_")
    back = tmp_path / "back.db"
    ok("copy", "--table-prefix", "app_", prefixed, postgres_url)
    assert as_json("--db", postgres_url, "--table-prefix", "app_", "stats")["sessions"] == 5
    assert "has no sessionlite tables" in refused("--db", postgres_url, "stats")
    ok("--table-prefix", "app_", "copy", postgres_url, back)  # the global option
    exported = ok("--db", prefixed, "--table-prefix", "app_", "export").stdout_bytes
    assert ok("--db", back, "--table-prefix", "app_", "export").stdout_bytes == exported
    bad = invoke("copy", "--table-prefix", "no spaces", prefixed, postgres_url)
    assert bad.exit_code == 2
    assert "--table-prefix" in bad.output


def test_copy_between_sqlite_files(src: Path, tmp_path: Path) -> None:
    dest = tmp_path / "copy.db"
    ok("copy", src, dest, "--progress")
    assert ok("--db", dest, "export").stdout_bytes == ok("--db", src, "export").stdout_bytes


def test_copy_shows_progress(src: Path, postgres_url: str) -> None:
    assert "Copying" in ok("copy", src, postgres_url, "--progress").stderr
    assert "Copying" not in ok("copy", src, postgres_url, "--no-progress").stderr


def test_copy_streams_long_sessions(postgres_url: str, tmp_path: Path) -> None:
    """More events than a page of iter_events and than a chunk: all come over, in order."""
    path = tmp_path / "long.db"
    total = 1203

    async def fill() -> None:
        async with SessionService(path) as service:
            session = await service.create_session(app_name="a", user_id="u", session_id="s")
            for start in range(0, total, 400):
                batch = [
                    Event(author="user", content=i) for i in range(start, min(total, start + 400))
                ]
                await service.append_events(session, batch)
                session.events.clear()

    anyio.run(fill)
    report = as_json("copy", path, postgres_url, "--chunk-size", "100")
    assert (report["sessions_copied"], report["events_copied"]) == (1, total)

    async def contents() -> list[Any]:
        async with SessionService(postgres_url) as service:
            return [
                (e.sequence, e.content)
                async for e in service.iter_events(app_name="a", user_id="u", session_id="s")
            ]

    assert anyio.run(contents) == [(i + 1, i) for i in range(total)]


def test_copy_errors(src: Path, postgres_url: str, tmp_path: Path) -> None:
    assert "no database at" in refused("copy", tmp_path / "missing.db", postgres_url)
    assert "same database" in refused("copy", src, src)
    assert "same database" in refused("copy", postgres_url, postgres_url)
    assert "does not exist" in refused("copy", src, tmp_path / "no" / "copy.db")
    assert "DEST" in refused("copy", src, ":memory:")
    assert "SOURCE" in refused("copy", "postgresql://h/db?bogus=1", tmp_path / "copy.db")
    foreign = tmp_path / "foreign.db"
    execute_sqlite(foreign, "CREATE TABLE t (x)")
    assert "has no sessionlite tables" in refused("copy", src, foreign)
    # A source without our tables: refused before DEST is created.
    assert "has no sessionlite tables" in refused("copy", postgres_url, tmp_path / "new.db")
    assert not list(tmp_path.glob("new.db*"))
    # A destination written by a newer sessionlite: exit code 1, the source untouched.
    ok("copy", src, postgres_url)
    execute(postgres_url, f"UPDATE schema_info SET version = {SCHEMA_VERSION + 1}")
    assert "upgrade sessionlite" in refused("copy", src, postgres_url, code=1)


def test_a_copy_that_fails_leaves_no_new_file(
    src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise StorageError("the source went away")

    monkeypatch.setattr(copy_cmd, "export_lines", broken)
    assert "the source went away" in refused("copy", src, tmp_path / "new.db", code=1)
    assert not list(tmp_path.glob("new.db*"))


def test_a_url_without_the_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "sessionlite.store.postgres.connection")
    monkeypatch.setitem(sys.modules, "psycopg", None)
    result = invoke("--db", "postgresql://u:secret@h/db", "stats")
    assert result.exit_code == 2
    message = " ".join(result.stderr.replace("│", " ").split())  # out of its box
    assert "needs the PostgreSQL driver (psycopg is not installed)" in message
    assert 'pip install "sessionlite[postgres]"' in message
    assert "secret" not in message


def test_help_lists_copy() -> None:
    assert "copy" in ok("--help").stdout
    text = ok("copy", "--help").stdout
    assert "SOURCE" in text and "DEST" in text and "--table-prefix" in text
    assert "postgresql://" in text
    assert "<bool>" not in text


# -- pgbouncer, passwords, the installed command -------------------------------------------


@pytest.fixture
def bouncer_url(postgres_server: Server) -> Iterator[tuple[str, str]]:
    """pgbouncer in transaction mode (which passes no search_path): a table prefix of
    the test's own in the default schema, dropped afterwards."""
    if postgres_server.bouncer_url is None:
        pytest.skip("no pgbouncer")
    prefix = unique_prefix()
    yield postgres_server.bouncer_url, prefix
    execute(
        postgres_server.url,
        *(
            sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(prefix + t)).as_string(None)
            for t in TABLES
        ),
    )


def test_through_pgbouncer(
    src: Path, bouncer_url: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing the commands run needs a session of its own on the server: no prepared
    statement, the export's cursor inside its transaction."""
    url, prefix = bouncer_url
    export, back = tmp_path / "export.jsonl", tmp_path / "back.db"
    ok("--db", src, "export", export)
    ok("--db", url, "--table-prefix", prefix, "import", export)
    monkeypatch.setattr(queries, "KEY_PAGE", 2)
    for _ in range(2):  # statements run again and again: none is prepared
        assert ok("--db", url, "--table-prefix", prefix, "export").stdout_bytes == (
            export.read_bytes()
        )
    ok("--table-prefix", prefix, "copy", url, back)
    assert ok("--db", back, "--table-prefix", prefix, "export").stdout_bytes == (
        export.read_bytes()
    )
    assert as_json("--db", url, "--table-prefix", prefix, "check")["ok"] is True
    assert len(as_json("--db", url, "--table-prefix", prefix, "sessions")["sessions"]) == 5


def with_password(url: str) -> tuple[str, str]:
    """``url`` with a password (the test cluster trusts local connections, so any
    will do), and the password."""
    parts = urlsplit(url)
    if parts.password:
        return url, parts.password
    secret = "pw-s3cret-x"
    user, _, host = parts.netloc.rpartition("@")
    netloc = f"{user or 'postgres'}:{secret}@{host}"
    return parts._replace(netloc=netloc).geturl(), secret


def test_a_password_is_never_printed(pg: str, src: Path, tmp_path: Path) -> None:
    url, secret = with_password(pg)
    export = tmp_path / "export.jsonl"
    ok("--db", src, "export", export)
    port = urlsplit(url).port
    unreachable = url.replace(f":{port}/", ":1/")
    runs = [
        ["--db", url, "stats"],
        ["--db", url, "stats", "--json"],
        ["--db", url, "sessions"],
        ["--db", url, "show", "a1"],
        ["--db", url, "show", "none"],
        ["--db", url, "check"],
        ["--db", url, "check", "--json"],
        ["--db", url, "export", tmp_path / "out.jsonl"],
        ["--db", url, "import", export],
        ["--db", url, "import", export, "--json"],
        ["--db", url, "cleanup", "--json"],
        ["--db", url, "vacuum"],
        ["--db", url, "backup", tmp_path / "b.db"],
        ["--db", url, "--table-prefix", "none_", "stats"],
        ["copy", url, tmp_path / "copy.db"],
        ["copy", src, url, "--json"],
        ["copy", url, url],
        ["--db", unreachable, "stats"],
        ["copy", src, unreachable],
        ["--db", url.replace("@", "@[", 1), "stats"],  # libpq quotes a bad URL whole
        ["copy", url.replace("@", "@[", 1), src],
    ]
    for args in runs:
        result = invoke(*args)
        assert secret not in result.stdout + result.stderr, args
    assert display_name(url) in invoke("--db", url, "check").stdout
    assert display_name(unreachable) in invoke("--db", unreachable, "stats").stderr
    assert "not a valid PostgreSQL URL" in invoke("--db", runs[-2][1], "stats").stderr


def test_the_installed_command(pg: str, tmp_path: Path) -> None:
    """In a process of its own, whose `import sessionlite.cli` loads no psycopg: the
    driver is imported once a URL is given."""
    script = Path(sys.executable).with_name("sessionlite")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "sessionlite"]
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(
        [*command, "--db", pg, "stats", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    )
    assert json.loads(result.stdout)["sessions"] == 5
    copied = subprocess.run(
        [*command, "copy", pg, str(tmp_path / "copy.db")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    )
    assert "Copied 5 sessions (11 events)" in copied.stderr
    light = "import sys, sessionlite.cli; assert 'psycopg' not in sys.modules"
    subprocess.run([sys.executable, "-W", "error", "-c", light], check=True, timeout=60)
