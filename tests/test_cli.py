"""The ``sessionlite`` command, run for real: through typer's CliRunner and, once, as the
installed console script in a subprocess."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import pytest
from rich.cells import cell_len
from rich.progress import Progress
from typer.testing import Result

from clitest import as_json, invoke, ok
from sessionlite import Event, SessionService, ToolCall, ToolResult, Usage
from sessionlite.cli import main, maintenance, queries
from sessionlite.crossloop import CrossLoopEvent
from sessionlite.store.sqlite.schema import SCHEMA_VERSION
from sessionlite.testing import FakeSummarizer, ManualClock

LIVE_KEYS = [
    ("chat", "alice", "a1"),
    ("chat", "alice", "a2"),
    ("chat", "alice", "dup"),
    ("chat", "bob", "dup"),
    ("support", "carol", "c1"),
]
T0 = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)


async def build(path: Path, prefix: str = "") -> None:
    """A database with every kind of content an export must carry."""
    async with SessionService(path, summarizer=FakeSummarizer(), table_prefix=prefix) as s:
        a1 = await s.create_session(
            app_name="chat",
            user_id="alice",
            session_id="a1",
            state={"topic": "tea", "app:motd": "hello", "user:lang": "en", "temp:x": 1},
            agent_id="bot",
            metadata={"source": "web", "tags": ["x", 1, 2.5, None, True], "ünï": "✓"},
        )
        call = ToolCall(name="search", arguments={"q": "tea", "n": 3})
        await s.append_events(
            a1,
            [
                Event(author="user", content='Hi ✓ 🙂 \u2028 "quoted"\n', timestamp=T0),
                Event(
                    author="assistant",
                    content=[{"type": "text", "text": "let me look"}],
                    reasoning="think",
                    tool_calls=[call],
                    usage=Usage(input_tokens=3, output_tokens=4),
                    model="m",
                    invocation_id="inv",
                    agent_id="bot",
                    metadata={"k": {"nested": [1, 2.0, 1e100]}},
                    state_delta={"turns": 1, "app:count": 1, "user:seen": True, "temp:s": 1},
                ),
                Event(
                    author="tool",
                    tool_results=[ToolResult(call_id=call.id, output={"r": 1.5}, is_error=True)],
                    branch="root/research",
                ),
                Event(author="researcher", content="x" * 100_000, branch="root/research/deep"),
            ],
        )
        await s.summarize(a1, branch="root/research")
        await s.append_event(a1, Event(author="user", content="popped"))
        await s.summarize(a1)  # covers the event popped next: a sequence gap
        await s.pop_event(a1)
        await s.append_event(a1, Event(author="assistant", content="after the gap"))
        await s.update_session_state(
            app_name="chat", user_id="alice", session_id="a1", delta={"direct": {"a": [1]}}
        )
        await s.update_app_state("chat", {"plan": "pro"})
        await s.delete_app_state("chat", "count")  # set by an event: replay re-creates it
        await s.delete_user_state("chat", "alice", "seen")
        a2 = await s.create_session(app_name="chat", user_id="alice", session_id="a2")
        await s.append_event(a2, Event(author="user", content="second session"))
        for user in ("alice", "bob"):
            dup = await s.create_session(app_name="chat", user_id=user, session_id="dup")
            await s.append_event(dup, Event(author="user", content=f"{user}'s dup"))
        c1 = await s.create_session(app_name="support", user_id="carol", session_id="c1")
        for i in range(3):
            await s.append_event(c1, Event(author="user", content=i))
        await s.update_user_state("support", "carol", {"tier": 2})
        await s.create_session(app_name="chat", user_id="eve", session_id="gone")
        await s.delete_session(app_name="chat", user_id="eve", session_id="gone")
    # Expired long ago (its service's clock was in 2020); not yet cleaned up.
    past = ManualClock(datetime(2020, 1, 1, tzinfo=timezone.utc))
    ttl = {"session_ttl": 60, "app_state_ttl": 60, "user_state_ttl": 60}
    async with SessionService(path, clock=past, table_prefix=prefix, **ttl) as s:
        await s.create_session(app_name="chat", user_id="dave", session_id="expired")
        await s.update_app_state("old", {"k": 1})
        await s.update_user_state("old", "dave", {"k": 1})


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "sessions.db"
    anyio.run(build, path)
    return path


@pytest.fixture
def db(template: Path, tmp_path: Path) -> Path:
    """A private copy of the populated database."""
    path = tmp_path / "sessions.db"
    shutil.copyfile(template, path)
    return path


def lines(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines()]


async def read_back(path: Path, key: tuple[str, str, str]) -> Any:
    async with SessionService(path) as service:
        app_name, user_id, session_id = key
        session = await service.get_session(
            app_name=app_name, user_id=user_id, session_id=session_id
        )
        return (
            session,
            await service.get_app_state(app_name),
            await service.get_user_state(app_name, user_id),
        )


# -- stats, sessions, show ----------------------------------------------------------------


def test_stats(db: Path) -> None:
    report = as_json("--db", db, "stats")
    assert report["path"] == str(db)
    assert report["schema_version"] == SCHEMA_VERSION
    assert (report["sessions"], report["users"], report["events"]) == (5, 3, 11)
    assert (report["deleted_sessions"], report["expired_sessions"]) == (1, 1)
    assert report["file_bytes"] > 0
    assert report["page_count"] * report["page_size"] >= report["file_bytes"] - 4096
    assert report["apps"] == [
        {"app_name": "chat", "sessions": 4, "users": 2, "events": 8},
        {"app_name": "support", "sessions": 1, "users": 1, "events": 3},
    ]
    text = ok("--db", db, "stats").stdout
    assert "Sessions: 5 live (3 users, 11 events); 1 expired and 1 deleted" in text
    assert "support" in text


def test_sessions(db: Path) -> None:
    listed = as_json("--db", db, "sessions")
    assert listed["more"] is False
    assert sorted((s["app_name"], s["user_id"], s["session_id"]) for s in listed["sessions"]) == (
        LIVE_KEYS
    )
    newest = listed["sessions"][0]
    assert (newest["app_name"], newest["session_id"], newest["events"]) == ("support", "c1", 3)
    assert newest["updated_at"].endswith("Z")
    a1 = next(s for s in listed["sessions"] if s["session_id"] == "a1")
    assert (a1["agent_id"], a1["events"], a1["expires_at"]) == ("bot", 5, None)

    alice = as_json("--db", db, "sessions", "--app", "chat", "--user", "alice")
    assert [s["session_id"] for s in alice["sessions"]] == ["dup", "a2", "a1"]
    first = as_json("--db", db, "sessions", "--limit", "2")
    assert len(first["sessions"]) == 2 and first["more"] is True
    everything = as_json("--db", db, "sessions", "--limit", "0")
    assert len(everything["sessions"]) == 5 and everything["more"] is False

    text = ok("--db", db, "sessions", "--app", "chat", "--limit", "1").stdout
    assert "dup" in text and "bob" in text
    assert "the 1 most recent; pass --limit 0 for all" in text
    assert ok("--db", db, "sessions", "--app", "nope").stdout.strip() == "No sessions."


LONG_ID = "conv-" + "0123456789abcdef" * 6 + "end"  # 104 characters
MEDIUM_ID = "conv-" + "0123456789" * 3 + "end"  # 38 characters
ANSI = re.compile(r"\x1b\[[0-9;]*m")


async def long_ids(path: Path) -> None:
    async with SessionService(path) as service:
        for app_name, session_id in (("chat", LONG_ID), ("a-much-longer-app-name", MEDIUM_ID)):
            session = await service.create_session(
                app_name=app_name, user_id="someone@example.com", session_id=session_id
            )
            await service.append_event(session, Event(author="user", content="hi"))


@pytest.mark.parametrize("output", ["piped", "terminal"])
def test_sessions_never_wraps_or_cuts_an_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str
) -> None:
    """Each session is one line holding its whole id, ready to paste into `show`: piped
    (plain columns), and on an 80-column terminal, where a table too wide for it
    narrows the other columns, or gives way to plain columns if that is not enough."""
    path = tmp_path / "long.db"
    anyio.run(long_ids, path)
    monkeypatch.setenv("COLUMNS", "80")
    for name in ("TTY_COMPATIBLE", "FORCE_COLOR", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    if output == "terminal":
        monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich's switch: stdout is a terminal
    text = ANSI.sub("", ok("--db", path, "sessions").stdout)
    for app_name, session_id in (("chat", LONG_ID), ("a-much-longer-app-name", MEDIUM_ID)):
        (row,) = [line for line in text.splitlines() if session_id in line]
        assert row.split()[1:4] == ["someone@example.com", session_id, "1"]
        assert row.startswith(app_name)
        assert as_json("--db", path, "show", row.split()[2])["app_name"] == app_name

    # A table that fits once the other columns are narrowed: the id stays whole.
    table = ANSI.sub("", ok("--db", path, "sessions", "--app", "a-much-longer-app-name").stdout)
    (row,) = [line for line in table.splitlines() if MEDIUM_ID in line]
    if output == "terminal":
        assert max(cell_len(line) for line in table.splitlines()) <= 80
        assert "…" in row  # the app name and the time were shortened, not the id
        assert "───" in table
    else:
        assert row.startswith("a-much-longer-app-name  someone@example.com  ")


def test_show(db: Path) -> None:
    shown = as_json("--db", db, "show", "a1")
    assert (shown["app_name"], shown["user_id"], shown["id"]) == ("chat", "alice", "a1")
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

    last = as_json("--db", db, "show", "a1", "--last", "1")
    assert [e["content"] for e in last["events"]] == ["after the gap"]

    text = ok("--db", db, "show", "a1").stdout
    for expected in (
        "session   a1",
        "agent     bot",
        'topic = "tea"',
        "whole session, through #5",
        "branch 'root/research', through #4",
        "-> search(",
        "<- error",
        "[root/research]",
        "(thinking: think)",
        "Events (5 shown)",
    ):
        assert expected in text, expected
    empty = ok("--db", db, "show", "a2", "--last", "0").stdout
    assert "(none)" in empty and "Events (0 shown)" in empty


def test_show_finds_the_session_or_says_why_not(db: Path) -> None:
    ambiguous = invoke("--db", db, "show", "dup")
    assert ambiguous.exit_code == 2
    assert "several sessions have the id 'dup'" in ambiguous.stderr
    assert "--app 'chat' --user 'bob'" in ambiguous.stderr
    bob = as_json("--db", db, "show", "dup", "--user", "bob")
    assert bob["events"][0]["content"] == "bob's dup"

    for missing in (["no-such-id"], ["expired"], ["gone"], ["a1", "--app", "support"]):
        result = invoke("--db", db, "show", *missing)
        assert result.exit_code == 1
        assert "no live session" in result.stderr


# -- export / import ------------------------------------------------------------------


def test_export_import_round_trip_is_exact(db: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    copy = tmp_path / "copy.db"
    ok("--db", db, "export", first)
    imported = ok("--db", copy, "import", first, "--chunk-size", "2")
    assert f"Imported 5 new sessions and 11 new events into {copy}\n" == imported.stderr
    ok("--db", copy, "export", second)
    assert first.read_bytes() == second.read_bytes()

    exported = lines(first.read_bytes())
    assert exported[0] == {"type": "header", "format": "sessionlite-export", "version": 1}
    assert exported[-1] == {"type": "end", "sessions": 5, "events": 11}
    sessions = [(x["app_name"], x["user_id"], x["id"]) for x in exported if x["type"] == "session"]
    assert sessions == LIVE_KEYS
    assert [x for x in exported if x["type"].endswith("_state")] == [
        {"type": "app_state", "app_name": "chat", "state": {"motd": "hello", "plan": "pro"}},
        {"type": "user_state", "app_name": "chat", "user_id": "alice", "state": {"lang": "en"}},
        {"type": "user_state", "app_name": "support", "user_id": "carol", "state": {"tier": 2}},
    ]

    original, app_state, user_state = anyio.run(read_back, db, LIVE_KEYS[0])
    restored, app_state2, user_state2 = anyio.run(read_back, copy, LIVE_KEYS[0])
    assert (app_state2, user_state2) == (app_state, user_state)
    assert restored.state == original.state
    assert (restored.created_at, restored.updated_at) == (original.created_at, original.updated_at)
    assert (restored.metadata, restored.agent_id) == (original.metadata, original.agent_id)
    # Events come back field for field; sequences are renumbered (the gap is closed).
    assert [e.sequence for e in restored.events] == [1, 2, 3, 4, 5]
    assert [e.model_copy(update={"sequence": None}) for e in restored.events] == [
        e.model_copy(update={"sequence": None}) for e in original.events
    ]
    for branch, summary in original.summaries.items():
        back = restored.summaries[branch]
        assert (back.text, back.updated_at) == (summary.text, summary.updated_at)
        assert back.through_sequence == 4  # the newest stored event it covers


def test_import_again_changes_nothing(db: Path, tmp_path: Path) -> None:
    """A re-run (say, after an interruption) skips what is stored, whatever the chunks."""
    export, again = tmp_path / "export.jsonl", tmp_path / "again.jsonl"
    copy = tmp_path / "copy.db"
    ok("--db", db, "export", export)
    ok("--db", copy, "import", export, "--chunk-size", "3")
    ok("--db", copy, "import", export)  # other chunk boundaries than the first run
    ok("--db", copy, "export", again)
    assert again.read_bytes() == export.read_bytes()
    assert as_json("--db", copy, "stats")["events"] == 11


def test_import_reports_what_was_already_there(db: Path, tmp_path: Path) -> None:
    """New sessions and events are told from those an earlier run stored, which a
    re-run skips: in the message and in --json."""
    export, copy = tmp_path / "export.jsonl", tmp_path / "copy.db"
    ok("--db", db, "export", export)
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"".join(export.read_bytes().splitlines(keepends=True)[:6]))
    assert invoke("--db", copy, "import", cut).exit_code == 1  # a1 and 4 of its 5 events

    resumed = as_json("--db", copy, "import", export, "--chunk-size", "3")
    assert resumed == {
        "database": str(copy),
        "source": str(export),
        "sessions": 5,
        "sessions_created": 4,
        "events": 11,
        "events_imported": 7,
        "events_skipped": 4,
        "summaries_not_restored": 0,
    }
    again = ok("--db", copy, "import", export).stderr
    assert again == (
        f"Imported 0 new sessions and 0 new events into {copy}; "
        "5 sessions and 11 events were already present\n"
    )
    rerun = as_json("--db", copy, "import", export)
    assert (rerun["sessions"], rerun["sessions_created"]) == (5, 0)
    assert (rerun["events"], rerun["events_imported"], rerun["events_skipped"]) == (11, 0, 11)
    assert as_json("--db", copy, "stats")["events"] == 11


def test_import_resumes_after_an_interruption(db: Path, tmp_path: Path) -> None:
    export = tmp_path / "export.jsonl"
    copy = tmp_path / "copy.db"
    ok("--db", db, "export", export)
    data = export.read_bytes().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"".join(data[:6]))  # header, a1 and four of its events
    truncated = invoke("--db", copy, "import", cut)
    assert truncated.exit_code == 1
    assert "truncated" in truncated.stderr
    ok("--db", copy, "import", export)
    again = tmp_path / "again.jsonl"
    ok("--db", copy, "export", again)
    assert again.read_bytes() == export.read_bytes()


def test_export_to_stdout_and_import_from_stdin(db: Path, tmp_path: Path) -> None:
    exported = ok("--db", db, "export").stdout_bytes
    assert exported.startswith(b'{"type":"header"')
    copy = tmp_path / "copy.db"
    ok("--db", copy, "import", "-", input=exported)
    assert ok("--db", copy, "export", "-").stdout_bytes == exported


def test_export_filters(db: Path) -> None:
    chat = lines(ok("--db", db, "export", "--app", "chat").stdout_bytes)
    assert {x["app_name"] for x in chat if "app_name" in x} == {"chat"}
    assert chat[-1] == {"type": "end", "sessions": 4, "events": 8}
    alice = lines(ok("--db", db, "export", "--user", "alice").stdout_bytes)
    assert {x["user_id"] for x in alice if "user_id" in x} == {"alice"}
    assert not [x for x in alice if x["type"] == "app_state"]  # shared by every user
    assert alice[-1] == {"type": "end", "sessions": 3, "events": 7}


def test_export_and_import_with_progress(db: Path, tmp_path: Path) -> None:
    export = tmp_path / "export.jsonl"
    assert "Exported 5 sessions" in ok("--db", db, "export", export, "--progress").stderr
    assert "Importing" in ok("--db", tmp_path / "c.db", "import", export, "--progress").stderr


def test_export_output_errors(db: Path, tmp_path: Path) -> None:
    taken = tmp_path / "taken.jsonl"
    taken.write_text("keep me")
    result = invoke("--db", db, "export", taken)
    assert result.exit_code == 2
    assert "exists; pass --overwrite" in result.stderr
    assert taken.read_text() == "keep me"
    ok("--db", db, "export", taken, "--overwrite")
    assert taken.read_bytes().startswith(b'{"type":"header"')
    assert invoke("--db", db, "export", tmp_path).exit_code == 2
    missing_dir = invoke("--db", db, "export", tmp_path / "no" / "x.jsonl")
    assert missing_dir.exit_code == 2
    assert "does not exist" in missing_dir.stderr
    assert not [p.name for p in tmp_path.iterdir() if "jsonl" in p.name and p != taken]


HEADER = b'{"type":"header","format":"sessionlite-export","version":1}\n'
SESSION = (
    b'{"type":"session","app_name":"a","user_id":"u","id":"s","agent_id":null,'
    b'"metadata":{},"state":{},"created_at":"2025-01-01T00:00:00Z",'
    b'"updated_at":"2025-01-01T00:00:00Z","summaries":[]}\n'
)
EVENT = b'{"type":"event","event":{"id":"e1","author":"user","content":"hi"}}\n'
END = b'{"type":"end","sessions":1,"events":1}\n'
NAIVE = EVENT.replace(
    b'"e1","author":"user","content":"hi"',
    b'"e2","author":"user","timestamp":"2025-01-01T00:00:00"',
)
EMPTY = HEADER + b'{"type":"end","sessions":0,"events":0}\n'


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"\n\n", "the file is empty"),
        (b"not json\n", "line 1: not a sessionlite export line"),
        (SESSION, "line 1: not a sessionlite export (no header line)"),
        (b'{"type":"header","format":"other","version":1}\n', "not a sessionlite export"),
        (b'{"type":"header","format":"sessionlite-export","version":9}\n', "upgrade"),
        (HEADER + EVENT, "line 2: an event before any session line"),
        (HEADER + SESSION + EVENT, "truncated"),
        (HEADER + SESSION + EVENT + END + SESSION, "line 5: data after the end line"),
        (HEADER + HEADER, "line 2: a second header line"),
        (HEADER + SESSION + END, "announces 1 sessions and 1 events"),
        (
            HEADER + SESSION + b'{"type":"event","event":{"author":"user","bogus":1}}\n',
            "line 3: not a sessionlite export line (event.event.bogus",
        ),
        (
            HEADER + SESSION.replace(b'"state":{}', b'"state":{"app:k":1}'),
            "line 2: session 's': state key 'app:k' has a scope prefix",
        ),
        (HEADER + SESSION.replace(b'"app_name":"a"', b'"app_name":""'), "app_name must not"),
        (HEADER + SESSION + EVENT + NAIVE + END, "line 4: event.timestamp is a naive datetime"),
        (HEADER + SESSION + NAIVE, "line 3: event.timestamp is a naive datetime"),
    ],
)
def test_import_rejects_bad_files(tmp_path: Path, data: bytes, message: str) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_bytes(data)
    result = invoke("--db", tmp_path / "new.db", "import", source)
    assert result.exit_code == 1, result.output
    assert message in result.stderr
    # The database the command created is gone again unless something was stored in it.
    created = tmp_path / "new.db"
    if created.exists():
        with sqlite3.connect(created) as conn:
            assert conn.execute("SELECT count(*) FROM sessions").fetchone()[0] > 0
    else:
        assert not any(tmp_path.glob("new.db*"))


def test_import_reports_conflicting_events(tmp_path: Path) -> None:
    source = tmp_path / "one.jsonl"
    source.write_bytes(HEADER + SESSION + EVENT + END)
    ok("--db", tmp_path / "new.db", "import", source)
    assert "State\n  (empty)" in ok("--db", tmp_path / "new.db", "show", "s").stdout
    source.write_bytes(HEADER + SESSION + EVENT.replace(b'"hi"', b'"changed"') + END)
    result = invoke("--db", tmp_path / "new.db", "import", source)
    assert result.exit_code == 1
    assert "line 3: event 'e1' is already stored" in result.stderr


def test_import_path_errors(db: Path, tmp_path: Path) -> None:
    missing = invoke("--db", tmp_path / "new.db", "import", tmp_path / "none.jsonl")
    assert missing.exit_code == 2
    assert "no such file" in missing.stderr
    directory = invoke("--db", tmp_path / "new.db", "import", tmp_path)
    assert directory.exit_code == 2
    assert "is a directory; pass an export file" in directory.stderr
    no_dir = invoke("--db", tmp_path / "no" / "new.db", "import", "-", input=b"")
    assert no_dir.exit_code == 2
    assert "does not exist; create it first" in no_dir.stderr
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.close()
    refused = invoke("--db", foreign, "import", "-", input=HEADER)
    assert refused.exit_code == 2
    assert "has no sessionlite tables" in refused.stderr


def test_import_into_the_default_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    ok("import", "-", input=HEADER + SESSION + EVENT + END)
    assert (tmp_path / "data" / "sessionlite" / "sessions.db").exists()
    assert as_json("stats")["events"] == 1


# -- cleanup, vacuum, backup, check -------------------------------------------------------


def test_cleanup(db: Path) -> None:
    first = as_json("--db", db, "cleanup")
    assert first["ran"] is True
    assert (first["expired_sessions"], first["purged_sessions"]) == (1, 0)
    assert (first["expired_app_states"], first["expired_user_states"]) == (1, 1)
    purge = ok("--db", db, "cleanup", "--retention", "0").stdout
    assert "purged sessions" in purge
    stats = as_json("--db", db, "stats")
    assert (stats["deleted_sessions"], stats["expired_sessions"], stats["sessions"]) == (0, 0, 5)
    assert ok("--db", db, "cleanup", "--retention", "1.5h").stdout.strip() == "Nothing to clean."
    bad = invoke("--db", db, "cleanup", "--retention", "soon")
    assert bad.exit_code == 2
    assert "not a duration" in bad.output


def test_vacuum(db: Path) -> None:
    ok("--db", db, "cleanup", "--retention", "0")
    result = ok("--db", db, "vacuum")
    assert result.stdout.startswith(f"Vacuumed {db}: ")
    assert as_json("--db", db, "check")["ok"] is True


def test_backup(db: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    result = ok("--db", db, "backup", copy, "--progress")
    assert f"Backed up {db} to {copy}" in result.stderr
    assert ok("--db", copy, "export").stdout_bytes == ok("--db", db, "export").stdout_bytes

    again = invoke("--db", db, "backup", copy)
    assert again.exit_code == 2
    assert "exists; pass --overwrite" in again.stderr
    ok("--db", db, "backup", copy, "--overwrite")
    assert invoke("--db", db, "backup", db).exit_code == 2
    assert invoke("--db", db, "backup", tmp_path).exit_code == 2
    assert invoke("--db", db, "backup", tmp_path / "no" / "copy.db").exit_code == 2


async def test_backup_while_the_database_is_in_use(tmp_path: Path) -> None:
    """Appends go on while the backup runs (in a thread, as a second process would);
    the copy is one consistent snapshot: a prefix of the history, with no gap."""
    path, copy = tmp_path / "live.db", tmp_path / "copy.db"
    done = CrossLoopEvent()
    async with SessionService(path) as service:
        session = await service.create_session(app_name="a", user_id="u", session_id="s")
        await service.append_events(
            session, [Event(author="user", content="x" * 1000) for _ in range(2000)]
        )

        async def keep_writing() -> None:
            while not done.is_set():
                await service.append_event(session, Event(author="user", content="more"))

        def run_backup() -> Result:
            return invoke("--db", path, "backup", copy)

        async with anyio.create_task_group() as tg:
            tg.start_soon(keep_writing)
            result = await anyio.to_thread.run_sync(run_backup)
            done.set()
        assert result.exit_code == 0, result.output
        total = len(session.events)
    assert as_json("--db", copy, "check")["ok"] is True
    async with SessionService(copy) as restored:
        events = [e async for e in restored.iter_events(app_name="a", user_id="u", session_id="s")]
    assert 2000 <= len(events) <= total
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))


def test_check(db: Path, tmp_path: Path) -> None:
    report = as_json("--db", db, "check")
    assert report == {
        "path": str(db),
        "schema_version": SCHEMA_VERSION,
        "user_version": SCHEMA_VERSION,
        "supported_schema_version": SCHEMA_VERSION,
        "integrity": "ok",
        "ok": True,
        "notes": [],
        "problems": [],
    }
    assert ok("--db", db, "check").stdout.strip().endswith("OK")


def test_check_says_what_schema_it_found(db: Path, tmp_path: Path) -> None:
    """Not "schema version None" (an unreadable file) or "schema version 0" (no tables)."""
    empty, foreign, garbage = tmp_path / "empty.db", tmp_path / "foreign.db", tmp_path / "x.db"
    empty.touch()
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.close()
    garbage.write_bytes(b"this is not a database" * 200)
    for path, head, problem in (
        (empty, "no sessionlite schema, integrity ok", "(the database is empty)"),
        (foreign, "no sessionlite schema, integrity ok", "no sessionlite tables"),
        (garbage, "schema unknown, integrity unreadable", "not a readable SQLite database"),
    ):
        result = invoke("--db", path, "check")
        assert result.exit_code == 1
        assert result.stdout.splitlines()[0] == f"{path}: {head}"
        assert problem in result.stdout.splitlines()[1]
        assert "None" not in result.stdout and "version 0" not in result.stdout
    assert ok("--db", db, "check").stdout.startswith(
        f"{db}: schema version {SCHEMA_VERSION} (this sessionlite: {SCHEMA_VERSION}), "
        "integrity ok\n"
    )


def problems_of(path: Path) -> dict[str, Any]:
    result = invoke("--db", path, "check", "--json")
    report: dict[str, Any] = json.loads(result.stdout)
    assert result.exit_code == (0 if report["ok"] else 1)
    return report


def test_check_finds_problems(db: Path, tmp_path: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO events (session_pk, sequence, event_id, author, timestamp, branch, body)"
            " VALUES (999, 1, 'orphan', 'user', 0, '', '{}')"
        )
        conn.execute("UPDATE sessions SET last_sequence = 0 WHERE session_id = 'a2'")
    report = problems_of(db)
    assert report["problems"] == [
        "1 event(s) belong to no session",
        "1 session(s) have events beyond their sequence counter",
    ]
    text = invoke("--db", db, "check")
    assert text.exit_code == 1
    assert "problem: 1 event(s) belong to no session" in text.stdout
    assert text.stdout.strip().endswith("FAILED")

    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE schema_info SET version = 1")
        conn.execute("DROP TABLE state_scopes")
    old = problems_of(db)
    assert "note: schema version 1 is migrated" in invoke("--db", db, "check").stdout
    assert old["notes"] == [
        "schema version 1 is migrated to 2 when a SessionService next opens the file"
    ]
    assert old["problems"] == ["missing table(s): state_scopes"]

    with sqlite3.connect(db) as conn:
        conn.execute(f"UPDATE schema_info SET version = {SCHEMA_VERSION + 1}")
    assert "written by a newer sessionlite" in problems_of(db)["problems"][0]
    assert invoke("--db", db, "stats").exit_code == 1  # refused, not guessed at

    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).execute("CREATE TABLE t (x)").connection.close()
    assert problems_of(empty)["problems"] == ["no sessionlite tables with prefix ''"]

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 200)
    report = problems_of(garbage)
    assert report["integrity"] == "unreadable"
    assert "not a readable SQLite database" in report["problems"][0]


def test_check_finds_damage(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'events_by_id'"
        ).fetchone()
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    with db.open("r+b") as f:  # scribble over an index page
        f.seek((root - 1) * page_size + 8)
        f.write(b"\xff" * 64)
    report = problems_of(db)
    assert report["ok"] is False
    assert report["integrity"] in ("damaged", "unreadable")
    assert report["problems"]


# -- locks, paths, options -----------------------------------------------------------------


@pytest.fixture
def locked(db: Path) -> Iterator[Path]:
    """Another connection holds the write lock for the whole test."""
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE schema_info SET version = version")
    yield db
    holder.execute("ROLLBACK")
    holder.close()


@pytest.mark.parametrize(
    "command",
    [["cleanup"], ["vacuum"], ["import", "-"]],
    ids=lambda c: c[0],
)
def test_a_locked_database_is_reported(locked: Path, command: list[str]) -> None:
    result = invoke("--db", locked, "--busy-timeout", "0.05", *command, input=HEADER)
    assert result.exit_code == 1, result.output
    assert "the database is locked by another process" in result.stderr
    assert "--busy-timeout" in result.stderr


def test_reads_go_on_while_the_database_is_locked(locked: Path, tmp_path: Path) -> None:
    assert as_json("--db", locked, "--busy-timeout", "0.05", "stats")["sessions"] == 5
    assert as_json("--db", locked, "--busy-timeout", "0.05", "check")["ok"] is True
    assert as_json("--db", locked, "--busy-timeout", "0.05", "show", "a1")["id"] == "a1"
    assert ok("--db", locked, "--busy-timeout", "0.05", "export").stdout_bytes
    ok("--db", locked, "--busy-timeout", "0.05", "backup", tmp_path / "copy.db")


def test_an_old_schema_is_migrated_when_a_service_opens_it(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE schema_info SET version = 1")
    assert as_json("--db", db, "show", "a1")["id"] == "a1"
    assert as_json("--db", db, "check")["schema_version"] == SCHEMA_VERSION


@pytest.mark.parametrize("command", ["stats", "sessions", "check", "vacuum", "cleanup", "export"])
def test_bad_database_paths(tmp_path: Path, command: str) -> None:
    missing = invoke("--db", tmp_path / "missing.db", command)
    assert missing.exit_code == 2
    assert f"no database at {tmp_path / 'missing.db'}" in missing.stderr
    directory = invoke("--db", tmp_path, command)
    assert directory.exit_code == 2
    assert "is a directory" in directory.stderr
    memory = invoke("--db", ":memory:", command)
    assert memory.exit_code == 2
    assert "must be a database file" in memory.stderr
    assert not (tmp_path / "missing.db").exists()


def test_the_default_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    result = invoke("stats")
    assert result.exit_code == 2
    assert "(the default database; pass --db PATH)" in result.stderr
    (tmp_path / "sessionlite").mkdir()
    anyio.run(build, tmp_path / "sessionlite" / "sessions.db")
    assert as_json("stats")["sessions"] == 5
    monkeypatch.setenv("SESSIONLITE_DB", str(tmp_path / "other.db"))
    assert "no database at" in invoke("stats").stderr


def test_table_prefix(tmp_path: Path) -> None:
    path = tmp_path / "prefixed.db"
    anyio.run(build, path, "agent_")
    assert as_json("--db", path, "--table-prefix", "agent_", "stats")["sessions"] == 5
    plain = invoke("--db", path, "stats")
    assert plain.exit_code == 2
    assert "has no sessionlite tables" in plain.stderr
    with_prefix = invoke("--db", path, "--table-prefix", "other_", "sessions")
    assert "with table prefix 'other_'" in with_prefix.stderr
    bad = invoke("--db", path, "--table-prefix", "no-dash", "stats")
    assert bad.exit_code == 2
    assert "table_prefix" in bad.output


def test_a_tilde_in_a_path_is_the_home_directory(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the shell would have expanded it, in --db=~/..., SESSIONLITE_DB and arguments."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))  # Windows
    shutil.copyfile(db, home / "sessions.db")
    assert as_json("--db=~/sessions.db", "stats")["path"] == str(home / "sessions.db")
    ok("--db", "~/sessions.db", "export", "~/export.jsonl")
    imported = ok("--db", "~/copy.db", "import", "~/export.jsonl")
    assert f"into {home / 'copy.db'}" in imported.stderr
    ok("--db", "~/copy.db", "backup", "~/backup.db")
    monkeypatch.setenv("SESSIONLITE_DB", "~/backup.db")
    assert as_json("stats")["events"] == 11
    ok("demo", "--db", "~/demo.db")
    assert sorted(p.name for p in home.iterdir() if not p.name.endswith(("-wal", "-shm"))) == [
        "backup.db",
        "copy.db",
        "demo.db",
        "export.jsonl",
        "sessions.db",
    ]
    for command in ("import-adk", "import-openai-agents"):
        missing = invoke("--db", "~/copy.db", command, "~/source.db")
        assert missing.exit_code == 2
        assert str(home / "source.db") in missing.stderr


def test_help_shows_no_type_beside_flags() -> None:
    """Flags take no value: no `<bool>` beside --json, --overwrite, --progress, --help..."""
    commands = [
        *("stats", "sessions", "show", "check", "export", "import", "import-adk"),
        *("import-openai-agents", "cleanup", "vacuum", "backup", "demo"),
    ]
    for command in [[], *([name] for name in commands)]:
        text = ok(*command, "--help").stdout
        assert "<bool>" not in text, command
        assert "--help" in text
    assert "--version" in ok("--help").stdout
    export = ok("export", "--help").stdout
    assert "--overwrite" in export and "--no-progress" in export
    # Options that take a value still show its type (typer's older spelling: TEXT).
    assert "<str>" in export or "TEXT" in export
    assert "<int range>" in ok("sessions", "--help").stdout or "INTEGER" in export


def test_demo(tmp_path: Path) -> None:
    global_db = ok("--db", tmp_path / "demo.db", "demo").stdout
    assert f"Database: {tmp_path / 'demo.db'}" in global_db
    assert "#8   assistant  'It is 4 °C in Oslo.'" in global_db
    local = ok("demo", "--db", ":memory:").stdout
    assert "Database: :memory:" in local


def test_main(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip().startswith("sessionlite ")
    assert main(["--help"]) == 0
    assert "backup" in capsys.readouterr().out
    assert main(["no-such-command"]) == 2


def test_the_installed_command(db: Path) -> None:
    """The console script, in a process of its own."""
    script = Path(sys.executable).with_name("sessionlite")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "sessionlite"]
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(
        [*command, "--db", str(db), "stats", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    )
    assert json.loads(result.stdout)["sessions"] == 5
    missing = subprocess.run(
        [*command, "--db", str(db.with_name("missing.db")), "stats"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert missing.returncode == 2
    assert "no database at" in missing.stderr


def test_python_dash_m(db: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sessionlite", "--db", str(db), "sessions", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert len(json.loads(result.stdout)["sessions"]) == 5


def test_an_empty_database(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    assert "Imported 0 new sessions" in ok("--db", path, "import", "-", input=EMPTY).stderr
    assert ok("--db", path, "stats").stdout.count("\n") == 3  # no per-app table
    assert ok("--db", path, "export").stdout_bytes == EMPTY
    assert ok("--db", path, "cleanup").stdout.strip() == "Nothing to clean."


def test_sessions_table_shows_all_when_they_fit(db: Path) -> None:
    text = ok("--db", db, "sessions").stdout
    assert "a1" in text and "c1" in text
    assert "most recent" not in text


def test_export_pages_through_many_sessions(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = ok("--db", db, "export").stdout_bytes
    monkeypatch.setattr(queries, "KEY_PAGE", 2)
    assert ok("--db", db, "export").stdout_bytes == whole


def test_export_survives_a_session_deleted_meanwhile(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session line is written, then the session is deleted before its events are
    read: the export goes on, and that session comes back without events."""
    original = SessionService.iter_events

    def iter_events(self: SessionService, **kwargs: Any) -> Any:
        async def deleted_first() -> Any:
            if kwargs["session_id"] == "a2":
                await self.delete_session(app_name="chat", user_id="alice", session_id="a2")
            async for event in original(self, **kwargs):
                yield event

        return deleted_first()

    monkeypatch.setattr(SessionService, "iter_events", iter_events)
    exported = lines(ok("--db", db, "export").stdout_bytes)
    assert exported[-1] == {"type": "end", "sessions": 5, "events": 10}
    monkeypatch.undo()
    copy = tmp_path / "copy.db"
    data = b"".join(json.dumps(x).encode() + b"\n" for x in exported)
    ok("--db", copy, "import", "-", input=data)
    assert as_json("--db", copy, "show", "a2")["events"] == []


def test_export_skips_a_session_gone_once_listed(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = SessionService.get_session

    async def get_session(self: SessionService, **kwargs: Any) -> Any:
        if kwargs["session_id"] == "a2":
            return None  # as if deleted (or expired) between the listing and the read
        return await original(self, **kwargs)

    monkeypatch.setattr(SessionService, "get_session", get_session)
    exported = lines(ok("--db", db, "export").stdout_bytes)
    assert "a2" not in {x.get("id") for x in exported}
    assert exported[-1] == {"type": "end", "sessions": 4, "events": 10}


def test_show_a_session_deleted_meanwhile(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def gone(self: SessionService, **kwargs: Any) -> None:
        return None

    monkeypatch.setattr(SessionService, "get_session", gone)
    result = invoke("--db", db, "show", "a1")
    assert result.exit_code == 1
    assert "session 'a1' is gone" in result.stderr


def test_import_keeps_a_summary_that_changed_since(db: Path, tmp_path: Path) -> None:
    """Re-importing over a session whose summary was redone since: the newer summary
    stays, and the import says it did not restore the exported one."""
    export, copy = tmp_path / "export.jsonl", tmp_path / "copy.db"
    ok("--db", db, "export", export)
    ok("--db", copy, "import", export)

    class Other:
        async def summarize(self, request: Any) -> str:
            return "newer"

    async def resummarize() -> None:
        async with SessionService(copy, summarizer=Other()) as service:
            session = await service.get_session(app_name="chat", user_id="alice", session_id="a1")
            assert session is not None
            await service.append_event(session, Event(author="user", content="later"))
            await service.summarize(session)

    anyio.run(resummarize)
    again = ok("--db", copy, "import", export)
    assert "warning: 1 summaries were not restored" in again.stderr
    shown = as_json("--db", copy, "show", "a1")
    assert shown["summaries"][""]["text"] == "newer"


@pytest.mark.skipif(not Path("/proc/version").exists(), reason="needs Linux's /proc")
def test_an_unwritable_output_is_an_error(db: Path) -> None:
    result = invoke("--db", db, "export", "/proc/version", "--overwrite")
    assert result.exit_code == 1
    assert "sessionlite: error:" in result.stderr


def test_an_interrupted_backup_leaves_no_file(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Interrupted(Exception):
        pass

    class FailingProgress(Progress):
        def update(self, *args: Any, **kwargs: Any) -> None:
            raise Interrupted

    monkeypatch.setattr(maintenance, "progress_bar", lambda enabled: FailingProgress(disable=True))
    copy = tmp_path / "copy.db"
    with pytest.raises(Interrupted):
        invoke("--db", db, "backup", copy)
    assert not copy.exists()
    assert not Path(f"{copy}-journal").exists()

    # Over an older copy, an interrupted backup leaves that copy as it was.
    monkeypatch.undo()
    ok("--db", db, "backup", copy)
    before = ok("--db", copy, "export").stdout_bytes
    ok("--db", db, "cleanup", "--retention", "0")
    monkeypatch.setattr(maintenance, "progress_bar", lambda enabled: FailingProgress(disable=True))
    monkeypatch.setattr(maintenance, "BACKUP_STEP_PAGES", 1)  # interrupted after the first page
    with pytest.raises(Interrupted):
        invoke("--db", db, "backup", copy, "--overwrite")
    assert ok("--db", copy, "export").stdout_bytes == before
    assert as_json("--db", copy, "stats")["deleted_sessions"] == 1
