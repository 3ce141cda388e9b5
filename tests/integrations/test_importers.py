"""Importers: files written by the real frameworks, imported, served back identically.

Each source is written by the framework's own session service (ADK's
``SqliteSessionService`` and ``DatabaseSessionService``, the Agents SDK's
``SQLiteSession``), read back through it as the expected result, imported into every
sessionlite storage mode, then read through sessionlite's adapter and compared.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, Runner, SQLiteSession
from google.adk.events.event_actions import EventActions
from google.adk.sessions.database_session_service import DatabaseSessionService
from google.adk.sessions.sqlite_session_service import SqliteSessionService

from sessionlite import EventConflictError, SessionNotFoundError, SessionService, StaleSessionError
from sessionlite.integrations.adk import SessionliteSessionService
from sessionlite.integrations.importers import (
    ImportProgress,
    ImportSummary,
    SourceFormatError,
    detect_source,
    import_adk_sqlite,
    import_openai_sqlite,
    import_source,
)
from sessionlite.integrations.openai_agents import SessionliteSession

from .test_adk import (
    ScriptedModel,
    call,
    make_runner,
    reply,
    rich_event,
    run_turn,
    text_event,
    ticking_clock,
)
from .test_openai_agents import NO_TRACING, say, tool_call
from .test_openai_agents import ScriptedModel as ScriptedOpenAIModel
from .test_openai_agents import add as add_tool

MakeService = Callable[..., SessionService]

ADK_KINDS = ["adk-sqlite", "adk-database"]
APPS = ("app", "other", "colors")
ADK_SESSIONS = 5
ADK_EVENTS = 10 + 6  # s1: 7 + 2 tied + the rich one; chat: 4 + 2 from the runner
# Set at creation, so not carried by any event: topic (s1), draft and n (s2),
# app:version, user:lang (u1).
ADK_STATE_KEYS = 5


def adk_service_for(kind: str, path: Path) -> Any:
    if kind == "adk-sqlite":
        return SqliteSessionService(str(path))
    return DatabaseSessionService(f"sqlite+aiosqlite:///{path}")


async def write_adk_file(kind: str, path: Path) -> dict[str, Any]:
    """Write sessions with ADK's own service; return what ADK reads back."""
    service: Any = adk_service_for(kind, path)
    s1 = await service.create_session(
        app_name="app",
        user_id="u1",
        session_id="s1",
        state={"topic": "tea", "app:version": 1, "user:lang": "fr", "temp:x": 1},
    )
    for i in range(7):
        await service.append_event(
            s1,
            text_event(
                f"m{i}",
                author="user" if i % 2 == 0 else "assistant",
                actions=EventActions(state_delta={"count": i, "temp:t": i, "app:seen": i}),
            ),
        )
    # Two events with one timestamp: ADK orders them by insertion (Sqlite) or id (Database).
    tie_b = text_event("tie b", timestamp=s1.last_update_time + 1)
    tie_b.id = "b-tie"
    tie_a = text_event("tie a", timestamp=s1.last_update_time + 1)
    tie_a.id = "a-tie"
    await service.append_event(s1, tie_b)
    await service.append_event(s1, tie_a)
    await service.append_event(s1, rich_event())
    await service.create_session(
        app_name="app", user_id="u1", session_id="s2", state={"draft": True, "n": 1.0}
    )
    await service.create_session(app_name="app", user_id="u2", session_id="s3")
    await service.create_session(app_name="other", user_id="u1", session_id="s4")
    # A real conversation: Runner, LlmAgent, a tool writing state (app "colors").
    await service.create_session(app_name="colors", user_id="ann", session_id="chat")
    runner = make_runner(
        service,
        ScriptedModel(script=[call("remember_color", color="teal"), reply("Noted."), reply("Hi.")]),
    )
    await run_turn(runner, "My color is teal.")
    await run_turn(runner, "Hello?")

    expected: dict[str, Any] = {"sessions": {}, "lists": {}, "users": {}}
    for app_name in APPS:
        listed = await service.list_sessions(app_name=app_name)
        expected["lists"][app_name] = [(s.user_id, s.id, s.state) for s in listed.sessions]
        for s in listed.sessions:
            got = await service.get_session(app_name=app_name, user_id=s.user_id, session_id=s.id)
            assert got is not None
            expected["sessions"][(app_name, s.user_id, s.id)] = got
            expected["users"][(app_name, s.user_id)] = await service.get_user_state(
                app_name=app_name, user_id=s.user_id
            )
    await service.close()
    return expected


async def assert_served_like_adk(service: SessionService, expected: dict[str, Any]) -> None:
    adk = SessionliteSessionService(service)
    for (app_name, user_id, session_id), want in expected["sessions"].items():
        got = await adk.get_session(app_name=app_name, user_id=user_id, session_id=session_id)
        assert got is not None, session_id
        assert got.state == want.state, session_id
        assert got.events == want.events, session_id
    for app_name, want_list in expected["lists"].items():
        listed = await adk.list_sessions(app_name=app_name)
        # ADK lists by the time of the last *appended* event, which an import (events in
        # ADK's served, timestamp order) cannot know when an older event was appended
        # last (as in s1); the adapter lists by its newest stored event's time, and ADK's
        # own order wherever the last append is the newest event.
        assert sorted(s.id for s in listed.sessions) == sorted(sid for _, sid, _ in want_list)
        want = {(app_name, user_id, sid): state for user_id, sid, state in want_list}
        for s in listed.sessions:
            assert s.state == want[(app_name, s.user_id, s.id)]
            stored = expected["sessions"][(app_name, s.user_id, s.id)]
            newest = max((e.timestamp for e in stored.events), default=None)
            assert s.last_update_time == (newest if newest is not None else s.last_update_time)
        times = [(s.last_update_time, s.user_id, s.id) for s in listed.sessions]
        assert times == sorted(times)
    for (app_name, user_id), want_state in expected["users"].items():
        assert await adk.get_user_state(app_name=app_name, user_id=user_id) == want_state


async def versions(service: SessionService) -> dict[str, int]:
    found = {}
    for app_name in (*APPS, "openai-agents"):
        page = await service.list_sessions(app_name=app_name)
        found.update({f"{app_name}/{s.id}": s.version for s in page.sessions})
    return found


# -- ADK --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ADK_KINDS)
async def test_adk_import_serves_what_adk_served(
    kind: str, tmp_path: Path, make_service: MakeService
) -> None:
    source = tmp_path / f"{kind}.db"
    expected = await write_adk_file(kind, source)
    assert await detect_source(source) == kind
    seen: list[ImportProgress] = []
    async with make_service(clock=ticking_clock()) as service:
        summary = await import_adk_sqlite(source, service, progress=seen.append, batch_size=4)
        assert summary == ImportSummary(
            source=str(source),
            kind=kind,  # type: ignore[arg-type]
            sessions=ADK_SESSIONS,
            sessions_created=ADK_SESSIONS,
            events_imported=ADK_EVENTS,
            events_skipped=0,
            state_keys_imported=ADK_STATE_KEYS,
        )
        await assert_served_like_adk(service, expected)
        assert seen[-1].session_id is None and seen[-1].sessions_done == ADK_SESSIONS
        assert seen[-1].sessions_total == ADK_SESSIONS
        assert seen[-1].events_imported == ADK_EVENTS
        assert [p.sessions_done for p in seen] == sorted(p.sessions_done for p in seen)
        stamps = await versions(service)

        # Idempotent: a second run finds everything and writes nothing.
        again = await import_adk_sqlite(source, service)
        assert (again.sessions, again.sessions_created) == (ADK_SESSIONS, 0)
        assert (again.events_imported, again.events_skipped) == (0, ADK_EVENTS)
        assert again.state_keys_imported == 0
        assert await versions(service) == stamps
        await assert_served_like_adk(service, expected)


async def test_adk_event_counts_and_state_keys(tmp_path: Path) -> None:
    source = tmp_path / "adk.db"
    service = SqliteSessionService(str(source))
    session = await service.create_session(
        app_name="app", user_id="u", session_id="s", state={"a": 1, "app:b": 2, "user:c": 3}
    )
    await service.append_event(session, text_event("x", actions=EventActions(state_delta={"d": 4})))
    await service.close()
    async with SessionService(tmp_path / "sl.db", clock=ticking_clock()) as target:
        summary = await import_adk_sqlite(f"sqlite+aiosqlite:///{source}", target)
        # a (session, set at creation), b (app), c (user); d came with its event.
        assert summary.state_keys_imported == 3
        assert summary.events_imported == 1
        got = await target.get_session(app_name="app", user_id="u", session_id="s")
        assert got is not None
        assert got.state == {"a": 1, "d": 4, "app:b": 2, "user:c": 3}


async def test_interrupted_import_resumes(tmp_path: Path) -> None:
    source = tmp_path / "adk.db"
    expected = await write_adk_file("adk-sqlite", source)

    class Interrupt(Exception):
        pass

    def stop_midway(progress: ImportProgress) -> None:
        if progress.events_imported >= 3:
            raise Interrupt

    async with SessionService(tmp_path / "sl.db", clock=ticking_clock()) as service:
        with pytest.raises(Interrupt):
            await import_adk_sqlite(source, service, progress=stop_midway, batch_size=3)
        # Resumed with other batch boundaries: batches straddle what is stored.
        summary = await import_adk_sqlite(source, service, batch_size=4)
        assert summary.events_skipped == 3
        assert summary.events_imported == ADK_EVENTS - 3
        assert summary.sessions_created == ADK_SESSIONS - 1
        await assert_served_like_adk(service, expected)


async def test_concurrent_writer_during_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "adk.db"
    expected = await write_adk_file("adk-sqlite", source)
    async with SessionService(tmp_path / "sl.db", clock=ticking_clock()) as service:
        real = service.append_events
        races = 0

        async def racing(session: Any, events: Any, **kwargs: Any) -> Any:
            nonlocal races
            if races < 2:
                # Someone else writes to the session just before the import does.
                races += 1
                await service.update_session_state(
                    app_name=session.app_name,
                    user_id=session.user_id,
                    session_id=session.id,
                    delta={"racer": races},
                )
            return await real(session, events, **kwargs)

        monkeypatch.setattr(service, "append_events", racing)
        summary = await import_adk_sqlite(source, service, batch_size=4)
        assert summary.events_imported == ADK_EVENTS
        monkeypatch.undo()
        adk = SessionliteSessionService(service)
        got = await adk.get_session(app_name="app", user_id="u1", session_id="s1")
        assert got is not None
        assert got.events == expected["sessions"][("app", "u1", "s1")].events
        assert got.state["racer"] == 2


async def test_writer_that_never_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "adk.db"
    await write_adk_file("adk-sqlite", source)
    async with SessionService(tmp_path / "sl.db", clock=ticking_clock()) as service:
        real = service.append_events

        async def racing(session: Any, events: Any, **kwargs: Any) -> Any:
            await service.update_session_state(
                app_name=session.app_name,
                user_id=session.user_id,
                session_id=session.id,
                delta={"racer": 1},
            )
            return await real(session, events, **kwargs)

        monkeypatch.setattr(service, "append_events", racing)
        with pytest.raises(StaleSessionError, match="kept changing"):
            await import_adk_sqlite(source, service)


async def test_source_changed_since_the_last_import(tmp_path: Path) -> None:
    source = tmp_path / "adk.db"
    await write_adk_file("adk-sqlite", source)
    async with SessionService(tmp_path / "sl.db", clock=ticking_clock()) as service:
        await import_adk_sqlite(source, service)
        with sqlite3.connect(source) as db:
            row = db.execute("SELECT event_data FROM events WHERE id = 'a-tie'").fetchone()
            data = json.loads(row[0])
            data["error_message"] = "rewritten"
            db.execute("UPDATE events SET event_data = ? WHERE id = 'a-tie'", (json.dumps(data),))
        with pytest.raises(EventConflictError):
            await import_adk_sqlite(source, service)


async def test_session_deleted_during_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "adk.db"
    await write_adk_file("adk-sqlite", source)
    async with SessionService(tmp_path / "sl.db", clock=ticking_clock()) as service:
        real = service.append_events

        async def deleting(session: Any, events: Any, **kwargs: Any) -> Any:
            await service.delete_session(
                app_name=session.app_name, user_id=session.user_id, session_id=session.id
            )
            return await real(session, events, **kwargs)

        monkeypatch.setattr(service, "append_events", deleting)
        with pytest.raises(SessionNotFoundError):
            await import_adk_sqlite(source, service)

        async def deleting_racer(session: Any, events: Any, **kwargs: Any) -> Any:
            await service.delete_session(
                app_name=session.app_name, user_id=session.user_id, session_id=session.id
            )
            raise StaleSessionError(
                "raced",
                app_name=session.app_name,
                user_id=session.user_id,
                session_id=session.id,
                expected_version=0,
                actual_version=1,
            )

        monkeypatch.setattr(service, "append_events", deleting_racer)
        with pytest.raises(SessionNotFoundError, match="deleted while"):
            await import_adk_sqlite(source, service)


# -- OpenAI Agents SDK ------------------------------------------------------------------


async def write_openai_file(path: Path, **tables: str) -> dict[str, list[Any]]:
    """Conversations written by the SDK's SQLiteSession; returns what it reads back."""
    model = ScriptedOpenAIModel(
        [[tool_call("c1", a=1, b=2)], [say("It is 3.", "m1")], [say("Bye!", "m2")]]
    )
    agent = Agent(name="calc", model=model, tools=[add_tool])
    chat = SQLiteSession("chat", path, **tables)
    await Runner.run(agent, "What is 1+2?", session=chat, run_config=NO_TRACING)
    await Runner.run(agent, "Thanks.", session=chat, run_config=NO_TRACING)
    notes = SQLiteSession("notes", path, **tables)
    await notes.add_items(
        [{"role": "user", "content": "ünïcödé ✓"}, {"role": "user", "content": "2"}]
    )
    orphan = SQLiteSession("orphan", path, **tables)
    await orphan.add_items([{"role": "user", "content": "no session row"}])
    empty = SQLiteSession("empty", path, **tables)
    await empty.add_items([{"role": "user", "content": "gone"}])
    await empty.pop_item()  # a session row without messages
    for session in (chat, notes, orphan, empty):
        session.close()
    sessions_table = tables.get("sessions_table", "agent_sessions")
    messages_table = tables.get("messages_table", "agent_messages")
    with sqlite3.connect(path) as db:
        db.execute(f"DELETE FROM {sessions_table} WHERE session_id = 'orphan'")
        db.execute(
            f"INSERT INTO {messages_table} (session_id, message_data) VALUES ('notes', '{{broken')"
        )
        db.execute(
            f"INSERT INTO {messages_table} (session_id, message_data, created_at) "
            'VALUES (\'notes\', \'{"role": "user", "content": "3"}\', \'not a time\')'
        )
    expected = {}
    for session_id in ("chat", "notes", "orphan", "empty"):
        reader = SQLiteSession(session_id, path, **tables)
        expected[session_id] = await reader.get_items()
        reader.close()
    return expected


async def test_openai_import_serves_what_the_sdk_served(
    tmp_path: Path, make_service: MakeService
) -> None:
    source = tmp_path / "sdk.db"
    expected = await write_openai_file(source)
    assert len(expected["notes"]) == 3  # the broken row is not an item
    assert await detect_source(source) == "openai-sqlite"
    seen: list[ImportProgress] = []
    async with make_service() as service:
        summary = await import_openai_sqlite(source, service, progress=seen.append, batch_size=2)
        items = sum(len(v) for v in expected.values())
        assert summary == ImportSummary(
            source=str(source),
            kind="openai-sqlite",
            sessions=4,
            sessions_created=4,
            events_imported=items,
            events_skipped=0,
            state_keys_imported=0,
            items_invalid=1,
        )
        assert seen[-1].sessions_done == 4 and seen[-1].session_id is None
        for session_id, items_expected in expected.items():
            assert await SessionliteSession(session_id, service).get_items() == items_expected
        stored = await service.get_session(
            app_name="openai-agents", user_id="default", session_id="notes"
        )
        assert stored is not None
        with sqlite3.connect(source) as db:
            rows = db.execute(
                "SELECT id FROM agent_messages WHERE session_id = 'notes' "
                "AND message_data != '{broken' ORDER BY id"
            ).fetchall()
        assert [e.id for e in stored.events] == [f"agent_messages:{r[0]}" for r in rows]
        assert stored.events[-1].timestamp.year == 1970  # 'not a time': a fixed fallback
        stamps = await versions(service)

        again = await import_openai_sqlite(source, service)
        assert (again.events_imported, again.events_skipped) == (0, items)
        assert again.sessions_created == 0
        assert await versions(service) == stamps

        # The conversation goes on through the adapter.
        chat = SessionliteSession("chat", service)
        await chat.add_items([{"role": "user", "content": "more"}])
        assert (await chat.get_items())[-1] == {"role": "user", "content": "more"}


async def test_openai_import_custom_tables_and_ids(tmp_path: Path) -> None:
    source = tmp_path / "sdk.db"
    expected = await write_openai_file(source, sessions_table="convs", messages_table="msgs")
    assert await detect_source(source) is None  # not the SDK's default table names
    async with SessionService(tmp_path / "sl.db", clock=ticking_clock()) as service:
        with pytest.raises(SourceFormatError, match="agent_sessions"):
            await import_openai_sqlite(source, service)
        summary = await import_openai_sqlite(
            source,
            service,
            sessions_table="convs",
            messages_table="msgs",
            app_name="support",
            user_id="ann",
        )
        assert summary.sessions == 4
        for session_id, items in expected.items():
            got = await SessionliteSession(
                session_id, service, app_name="support", user_id="ann"
            ).get_items()
            assert got == items
        one_by_one = await import_openai_sqlite(
            source,
            service,
            sessions_table="convs",
            messages_table="msgs",
            user_id="bob",
            batch_size=1,
        )
        assert one_by_one.events_imported == summary.events_imported
        assert one_by_one.items_invalid == 1
        with pytest.raises(ValueError, match="messages_table"):
            await import_openai_sqlite(source, service, messages_table="x; DROP TABLE y")


# -- sources that cannot be imported -----------------------------------------------------


async def test_bad_sources(tmp_path: Path) -> None:
    async with SessionService(tmp_path / "sl.db", clock=ticking_clock()) as service:
        with pytest.raises(SourceFormatError, match="no such file"):
            await import_adk_sqlite(tmp_path / "missing.db", service)
        junk = tmp_path / "junk.db"
        junk.write_bytes(b"this is not sqlite" * 100)
        with pytest.raises(SourceFormatError, match="SQLite"):
            await detect_source(junk)
        # sessionlite's own file is not an import source.
        assert await detect_source(tmp_path / "sl.db") is None
        with pytest.raises(SourceFormatError, match="not an ADK"):
            await import_adk_sqlite(tmp_path / "sl.db", service)
        with pytest.raises(SourceFormatError, match="SQLiteSession tables"):
            await import_openai_sqlite(tmp_path / "sl.db", service)
        with pytest.raises(ValueError, match="batch_size"):
            await import_openai_sqlite(tmp_path / "sl.db", service, batch_size=0)

        legacy = tmp_path / "v0.db"
        with sqlite3.connect(legacy) as db:
            db.execute("CREATE TABLE sessions (app_name, user_id, id, state, update_time)")
            db.execute("CREATE TABLE events (id, app_name, actions BLOB)")
        with pytest.raises(SourceFormatError, match="adk migrate session"):
            await import_adk_sqlite(legacy, service)

        future = tmp_path / "v2.db"
        await write_adk_file("adk-database", future)
        with sqlite3.connect(future) as db:
            db.execute("UPDATE adk_internal_metadata SET value = '2'")
        with pytest.raises(SourceFormatError, match="version '2'"):
            await detect_source(future)

        broken = tmp_path / "broken.db"
        await write_adk_file("adk-sqlite", broken)
        with sqlite3.connect(broken) as db:
            db.execute("UPDATE events SET event_data = '[1]' WHERE id = 'a-tie'")
        with pytest.raises(SourceFormatError, match="not a JSON object"):
            await import_adk_sqlite(broken, service)
        with sqlite3.connect(broken) as db:
            db.execute("UPDATE events SET event_data = '{\"timestamp\": \"x\"}' WHERE id = 'a-tie'")
        with pytest.raises(SourceFormatError, match="not a valid ADK event"):
            await import_adk_sqlite(broken, service)
        with sqlite3.connect(broken) as db:
            db.execute("UPDATE events SET event_data = '{' WHERE id = 'a-tie'")
        with pytest.raises(SourceFormatError, match="not valid JSON"):
            await import_adk_sqlite(broken, service)


async def test_sqlite_timestamps_from_columns(tmp_path: Path) -> None:
    """Rows whose JSON lacks a timestamp use the column (REAL seconds in SqliteSessionService)."""
    source = tmp_path / "adk.db"
    expected = await write_adk_file("adk-sqlite", source)
    with sqlite3.connect(source) as db:
        for rowid, data in db.execute("SELECT rowid, event_data FROM events").fetchall():
            event = json.loads(data)
            del event["timestamp"]
            db.execute(
                "UPDATE events SET event_data = ? WHERE rowid = ?", (json.dumps(event), rowid)
            )
    async with SessionService(tmp_path / "sl.db", clock=ticking_clock()) as service:
        await import_adk_sqlite(source, service)
        await assert_served_like_adk(service, expected)


async def test_database_timestamps_from_columns(tmp_path: Path) -> None:
    """DatabaseSessionService rows whose JSON lacks a timestamp use the column (UTC)."""
    source = tmp_path / "db.db"
    expected = await write_adk_file("adk-database", source)
    with sqlite3.connect(source) as db:
        rows = db.execute("SELECT rowid, event_data FROM events").fetchall()
        for rowid, data in rows:
            event = json.loads(data)
            del event["timestamp"]
            db.execute(
                "UPDATE events SET event_data = ? WHERE rowid = ?", (json.dumps(event), rowid)
            )
        db.execute("UPDATE events SET timestamp = 'garbage' WHERE id = 'a-tie'")
    async with SessionService(tmp_path / "sl.db", clock=ticking_clock()) as service:
        with pytest.raises(SourceFormatError, match="invalid timestamp"):
            await import_adk_sqlite(source, service)
    with sqlite3.connect(source) as db:
        db.execute("UPDATE events SET timestamp = '2026-01-02 03:04:05.250000' WHERE id = 'a-tie'")
    async with SessionService(tmp_path / "sl2.db", clock=ticking_clock()) as service:
        await import_adk_sqlite(source, service)
        adk = SessionliteSessionService(service)
        got = await adk.get_session(app_name="app", user_id="u1", session_id="s1")
        assert got is not None
        want = {e.id: e.timestamp for e in expected["sessions"][("app", "u1", "s1")].events}
        for event in got.events:
            if event.id == "a-tie":
                assert event.timestamp == 1767323045.25
            else:  # the column keeps microseconds
                assert event.timestamp == pytest.approx(want[event.id], abs=1e-6)


async def test_import_source_dispatches(tmp_path: Path) -> None:
    adk_file, db_file, sdk_file = tmp_path / "adk.db", tmp_path / "db.db", tmp_path / "sdk.db"
    await write_adk_file("adk-sqlite", adk_file)
    await write_adk_file("adk-database", db_file)
    await write_openai_file(sdk_file)
    custom = tmp_path / "custom.db"
    await write_openai_file(custom, sessions_table="convs", messages_table="msgs")
    async with SessionService(tmp_path / "sl.db", clock=ticking_clock()) as service:
        assert (await import_source(adk_file, service)).kind == "adk-sqlite"
        # The other ADK file has events with the same ids and other content.
        with pytest.raises(EventConflictError):
            await import_source(db_file, service)
        sdk = await import_source(sdk_file, service, user_id="ann", batch_size=3)
        assert (sdk.kind, sdk.sessions) == ("openai-sqlite", 4)
        assert await SessionliteSession("notes", service, user_id="ann").get_items()
        with pytest.raises(SourceFormatError, match="is none of"):
            await import_source(custom, service)
        forced = await import_source(
            custom, service, kind="openai-sqlite", sessions_table="convs", messages_table="msgs"
        )
        assert forced.sessions == 4
        with pytest.raises(ValueError, match="user_id apply to OpenAI"):
            await import_source(adk_file, service, user_id="ann")
        with pytest.raises(ValueError, match="kind must be"):
            await import_source(adk_file, service, kind="langgraph")  # type: ignore[arg-type]
    async with SessionService(tmp_path / "other.db", clock=ticking_clock()) as service:
        summary = await import_source(db_file, service, kind="adk-database")
        assert summary.events_imported == ADK_EVENTS
