"""Google ADK: ``SessionliteSessionService`` behaves as ADK's own session services.

The behaviour tests run against ``SessionliteSessionService`` (over sessionlite's storage
modes) and against ADK's own ``SqliteSessionService`` as the reference, so that each
assertion is checked to be ADK's behaviour, not only ours.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from google.adk.agents import LlmAgent
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError as AdkNotFound
from google.adk.events.event import Event as AdkEvent
from google.adk.events.event_actions import EventActions, EventCompaction
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import Runner
from google.adk.sessions.base_session_service import BaseSessionService, GetSessionConfig
from google.adk.sessions.session import Session as AdkSession
from google.adk.sessions.sqlite_session_service import SqliteSessionService
from google.adk.tools.tool_context import ToolContext
from google.genai import types
from pydantic import Field

from sessionlite import Event, InvalidInputError, ServiceClosedError, SessionService
from sessionlite.integrations.adk import (
    ADK_EVENT_FORMAT,
    AdkStaleSessionError,
    SessionliteSessionService,
    parse_session_uri,
    to_adk_event,
    to_sessionlite_event,
)
from sessionlite.testing import ManualClock

IMPLEMENTATIONS = [
    "sessionlite-file",
    "sessionlite-memory",
    "sessionlite-async",
    "sessionlite-postgres-uri",
    "adk-sqlite",
]


def ticking_clock() -> Callable[[], datetime]:
    """A clock one microsecond later at every call: write times never tie, so orders
    by last update are deterministic."""
    clock = ManualClock()
    return lambda: clock.advance(microseconds=1)


@pytest.fixture(params=IMPLEMENTATIONS)
async def adk_service(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """A session service; ``adk-sqlite`` is ADK's own, the reference behaviour."""
    kind = request.param
    service: Any
    if kind == "adk-sqlite":
        service = SqliteSessionService(str(tmp_path / "adk.db"))
    elif kind == "sessionlite-memory":
        service = SessionliteSessionService(":memory:", clock=ticking_clock())
    elif kind == "sessionlite-async":
        service = SessionliteSessionService(
            tmp_path / "sl.db", async_persist=True, clock=ticking_clock()
        )
    elif kind == "sessionlite-postgres-uri":  # as ADK's service registry builds it
        url = request.getfixturevalue("postgres_url")
        service = SessionliteSessionService(uri=f"sessionlite+{url}", clock=ticking_clock())
    else:
        service = SessionliteSessionService(tmp_path / "sl.db", clock=ticking_clock())
    yield service
    await service.close()


def text_event(text: str, *, author: str = "user", **kwargs: Any) -> AdkEvent:
    role = "user" if author == "user" else "model"
    return AdkEvent(
        author=author,
        invocation_id=kwargs.pop("invocation_id", "inv-1"),
        content=types.Content(role=role, parts=[types.Part(text=text)]),
        **kwargs,
    )


def rich_event() -> AdkEvent:
    """An event with (nearly) every field set, nested types included."""
    return AdkEvent(
        id="evt-rich",
        author="researcher",
        invocation_id="inv-rich",
        branch="root.researcher",
        timestamp=1_700_000_000.123456789,
        model_version="scripted-1",
        content=types.Content(
            role="model",
            parts=[
                types.Part(text="héllo ✓ " + "x" * 2000),
                types.Part(inline_data=types.Blob(mime_type="image/png", data=b"\x00\x01\xff")),
                types.Part(
                    function_call=types.FunctionCall(
                        id="call-1", name="lookup", args={"q": "tea", "n": 3, "f": 0.1}
                    )
                ),
                types.Part(
                    function_response=types.FunctionResponse(
                        id="call-1", name="lookup", response={"result": [1, 2.5, None, "z"]}
                    )
                ),
            ],
        ),
        actions=EventActions(
            state_delta={"k": {"nested": [1, 2]}, "app:a": True, "user:u": None},
            artifact_delta={"report.txt": 2},
            transfer_to_agent="writer",
            escalate=True,
            skip_summarization=True,
            end_of_agent=True,
            agent_state={"step": 4},
            rewind_before_invocation_id="inv-0",
            compaction=EventCompaction(
                start_timestamp=1.5,
                end_timestamp=2.5,
                compacted_content=types.Content(role="model", parts=[types.Part(text="sum")]),
            ),
        ),
        long_running_tool_ids={"call-2", "call-1"},
        partial=False,
        turn_complete=True,
        error_code="E1",
        error_message="boom",
        interrupted=False,
        custom_metadata={"trace": {"id": 7}, "none": None},
        usage_metadata=types.GenerateContentResponseUsageMetadata(
            prompt_token_count=11, candidates_token_count=7, total_token_count=18
        ),
        finish_reason=types.FinishReason.STOP,
        avg_logprobs=-0.25,
        input_transcription=types.Transcription(text="hi", finished=True),
        output_transcription=types.Transcription(text="yo", finished=False),
        output={"answer": 42},
    )


# -- sessions ---------------------------------------------------------------------------


async def test_create_session_splits_state_scopes(adk_service: BaseSessionService) -> None:
    session = await adk_service.create_session(
        app_name="app",
        user_id="u1",
        session_id="s1",
        state={"a": 1, "app:x": 2, "user:y": [3], "temp:z": 4},
    )
    assert (session.app_name, session.user_id, session.id) == ("app", "u1", "s1")
    assert session.state == {"a": 1, "app:x": 2, "user:y": [3]}
    assert session.events == []
    other = await adk_service.create_session(app_name="app", user_id="u2", session_id="s2")
    assert other.state == {"app:x": 2}
    got = await adk_service.get_session(app_name="app", user_id="u1", session_id="s1")
    assert got is not None and got.state == {"a": 1, "app:x": 2, "user:y": [3]}
    assert await adk_service.get_user_state(app_name="app", user_id="u1") == {"y": [3]}
    assert await adk_service.get_user_state(app_name="app", user_id="nobody") == {}


async def test_state_values_stored_as_json(adk_service: BaseSessionService) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    session = await adk_service.create_session(
        app_name="app", user_id="u", session_id="s", state={"when": when, "fn": len}
    )
    assert session.state == {"when": "2026-01-02T03:04:05Z", "fn": repr(len)}
    got = await adk_service.get_session(app_name="app", user_id="u", session_id="s")
    assert got is not None and got.state == session.state


async def test_create_session_ids(adk_service: BaseSessionService) -> None:
    generated = await adk_service.create_session(app_name="app", user_id="u")
    assert generated.id
    again = await adk_service.get_session(app_name="app", user_id="u", session_id=generated.id)
    assert again is not None and again.id == generated.id
    padded = await adk_service.create_session(app_name="app", user_id="u", session_id=" pad ")
    assert padded.id == "pad"
    with pytest.raises(AlreadyExistsError):
        await adk_service.create_session(app_name="app", user_id="u", session_id="pad")
    # The same id under another user is another session.
    await adk_service.create_session(app_name="app", user_id="v", session_id="pad")


async def test_missing_session(adk_service: BaseSessionService) -> None:
    assert await adk_service.get_session(app_name="app", user_id="u", session_id="nope") is None
    ghost = AdkSession(app_name="app", user_id="u", id="nope", last_update_time=0.0)
    with pytest.raises(AdkNotFound):
        await adk_service.append_event(ghost, text_event("hi"))
    # Deleting what does not exist is not an error.
    await adk_service.delete_session(app_name="app", user_id="u", session_id="nope")


async def test_delete_session(adk_service: BaseSessionService) -> None:
    session = await adk_service.create_session(
        app_name="app", user_id="u", session_id="s", state={"user:keep": 1}
    )
    await adk_service.append_event(session, text_event("hi"))
    await adk_service.delete_session(app_name="app", user_id="u", session_id="s")
    assert await adk_service.get_session(app_name="app", user_id="u", session_id="s") is None
    with pytest.raises(AdkNotFound):
        await adk_service.append_event(session, text_event("too late"))
    assert await adk_service.get_user_state(app_name="app", user_id="u") == {"keep": 1}
    recreated = await adk_service.create_session(app_name="app", user_id="u", session_id="s")
    assert recreated.events == []


async def test_list_sessions_oldest_update_first_without_events(
    adk_service: BaseSessionService,
) -> None:
    s1 = await adk_service.create_session(
        app_name="app", user_id="u1", session_id="s1", state={"n": 1, "app:shared": "x"}
    )
    await adk_service.create_session(app_name="app", user_id="u1", session_id="s2")
    await adk_service.create_session(
        app_name="app", user_id="u2", session_id="s3", state={"user:lang": "fr"}
    )
    await adk_service.create_session(app_name="other", user_id="u1", session_id="s4")
    await adk_service.append_event(s1, text_event("latest"))  # s1 is now the newest

    listed = await adk_service.list_sessions(app_name="app")
    assert [s.id for s in listed.sessions] == ["s2", "s3", "s1"]
    assert all(s.events == [] for s in listed.sessions)
    by_id = {s.id: s for s in listed.sessions}
    assert by_id["s1"].state == {"n": 1, "app:shared": "x"}
    assert by_id["s3"].state == {"app:shared": "x", "user:lang": "fr"}
    times = [s.last_update_time for s in listed.sessions]
    assert times == sorted(times)

    mine = await adk_service.list_sessions(app_name="app", user_id="u1")
    assert [s.id for s in mine.sessions] == ["s2", "s1"]
    assert (await adk_service.list_sessions(app_name="none")).sessions == []


# -- events -----------------------------------------------------------------------------


async def test_append_event_state_and_temp_keys(adk_service: BaseSessionService) -> None:
    session = await adk_service.create_session(app_name="app", user_id="u", session_id="s")
    event = text_event(
        "hi",
        actions=EventActions(
            state_delta={"k": 1, "temp:scratch": "t", "app:a": [1], "user:p": {"x": 1}}
        ),
    )
    returned = await adk_service.append_event(session, event)
    assert returned is event
    # temp: keys reach the in-memory session, never the stored event or state.
    assert event.actions.state_delta == {"k": 1, "app:a": [1], "user:p": {"x": 1}}
    assert session.state == {"k": 1, "temp:scratch": "t", "app:a": [1], "user:p": {"x": 1}}
    assert session.events == [event]
    assert session.last_update_time > 0

    got = await adk_service.get_session(app_name="app", user_id="u", session_id="s")
    assert got is not None
    assert got.state == {"k": 1, "app:a": [1], "user:p": {"x": 1}}
    assert got.events == [event]
    assert got.last_update_time == pytest.approx(session.last_update_time)


async def test_partial_events_are_not_stored(adk_service: BaseSessionService) -> None:
    session = await adk_service.create_session(app_name="app", user_id="u", session_id="s")
    chunk = text_event("Hel", author="agent", partial=True)
    chunk.actions.state_delta = {"k": 1, "temp:t": 2}
    assert await adk_service.append_event(session, chunk) is chunk
    assert session.events == []
    assert session.state == {}
    assert chunk.actions.state_delta == {"k": 1, "temp:t": 2}
    got = await adk_service.get_session(app_name="app", user_id="u", session_id="s")
    assert got is not None and got.events == [] and got.state == {}


async def test_every_event_field_round_trips(adk_service: BaseSessionService) -> None:
    session = await adk_service.create_session(app_name="app", user_id="u", session_id="s")
    event = rich_event()
    expected = rich_event()
    await adk_service.append_event(session, event)
    got = await adk_service.get_session(app_name="app", user_id="u", session_id="s")
    assert got is not None
    (stored,) = got.events
    assert stored == expected
    for name in AdkEvent.model_fields:
        assert getattr(stored, name) == getattr(expected, name), name
    assert stored.content is not None and stored.content.parts is not None
    inline = stored.content.parts[1].inline_data
    assert inline is not None and inline.data == b"\x00\x01\xff"


async def test_get_session_config(adk_service: BaseSessionService) -> None:
    session = await adk_service.create_session(app_name="app", user_id="u", session_id="s")
    stamps = [100.0, 100.5, 100.0000011, 101.0, 102.0]
    stamps.sort()
    events = [text_event(f"m{i}", timestamp=t) for i, t in enumerate(stamps)]
    for event in events:
        await adk_service.append_event(session, event)

    async def ids(config: GetSessionConfig | None) -> list[str]:
        got = await adk_service.get_session(
            app_name="app", user_id="u", session_id="s", config=config
        )
        assert got is not None
        return [e.id for e in got.events]

    all_ids = [e.id for e in events]
    assert await ids(None) == all_ids
    assert await ids(GetSessionConfig()) == all_ids
    assert await ids(GetSessionConfig(num_recent_events=2)) == all_ids[-2:]
    assert await ids(GetSessionConfig(num_recent_events=0)) == []
    assert await ids(GetSessionConfig(num_recent_events=99)) == all_ids
    assert await ids(GetSessionConfig(after_timestamp=100.5)) == all_ids[2:]
    # Equal after rounding to the microsecond, but earlier: excluded, as in ADK.
    assert await ids(GetSessionConfig(after_timestamp=100.0000014)) == all_ids[2:]
    assert await ids(GetSessionConfig(after_timestamp=100.0000011)) == all_ids[1:]
    assert await ids(GetSessionConfig(after_timestamp=500.0)) == []
    assert await ids(GetSessionConfig(after_timestamp=1e20)) == []
    assert await ids(GetSessionConfig(after_timestamp=-1e20)) == all_ids
    assert await ids(GetSessionConfig(after_timestamp=100.5, num_recent_events=2)) == all_ids[-2:]
    with pytest.raises(ValueError, match="num_recent_events"):
        GetSessionConfig(num_recent_events=-1)


async def test_stale_session_is_rejected(adk_service: BaseSessionService) -> None:
    await adk_service.create_session(app_name="app", user_id="u", session_id="s")
    first = await adk_service.get_session(app_name="app", user_id="u", session_id="s")
    second = await adk_service.get_session(app_name="app", user_id="u", session_id="s")
    assert first is not None and second is not None
    await adk_service.append_event(first, text_event("one"))
    await adk_service.append_event(first, text_event("two"))  # its own writes: not stale
    with pytest.raises(AdkStaleSessionError):
        await adk_service.append_event(second, text_event("lost"))
    fresh = await adk_service.get_session(app_name="app", user_id="u", session_id="s")
    assert fresh is not None
    assert [e.content.parts[0].text for e in fresh.events if e.content and e.content.parts] == [
        "one",
        "two",
    ]
    await adk_service.append_event(fresh, text_event("three"))


# -- sessionlite only -----------------------------------------------------------------------


@pytest.fixture
async def ours(tmp_path: Path) -> AsyncIterator[SessionliteSessionService]:
    async with SessionliteSessionService(tmp_path / "sl.db", clock=ticking_clock()) as service:
        yield service


async def test_stored_form(ours: SessionliteSessionService) -> None:
    session = await ours.create_session(app_name="app", user_id="u", session_id="s")
    event = rich_event()
    event.actions.state_delta["temp:t"] = 1
    await ours.append_event(session, event)
    stored = await ours.service.get_session(app_name="app", user_id="u", session_id="s")
    assert stored is not None
    (record,) = stored.events
    assert record.id == "evt-rich"
    assert record.author == "researcher"
    assert record.invocation_id == "inv-rich"
    assert record.branch == "root/researcher"
    assert record.timestamp.timestamp() == pytest.approx(1_700_000_000.123457)
    assert record.state_delta == {"k": {"nested": [1, 2]}, "app:a": True, "user:u": None}
    assert record.model == "scripted-1"
    assert record.usage is not None
    assert (record.usage.input_tokens, record.usage.output_tokens) == (11, 7)
    assert record.metadata == {"format": ADK_EVENT_FORMAT}
    # The content is the JSON ADK's own SqliteSessionService stores.
    assert record.content == AdkEvent.model_validate_json(
        rich_event().model_dump_json(exclude_none=True)
    ).model_dump(mode="json", exclude_none=True)
    assert stored.state == {"k": {"nested": [1, 2]}, "app:a": True, "user:u": None}


def test_errors_are_adks_own() -> None:
    from google.adk.errors._stale_session_error import StaleSessionError

    from sessionlite.integrations.adk import AdkSessionNotFoundError

    assert AdkStaleSessionError is StaleSessionError
    assert AdkSessionNotFoundError is AdkNotFound


def test_event_mapping_edge_cases() -> None:
    odd = AdkEvent(author="", invocation_id="", branch="a..b")
    record = to_sessionlite_event(odd)
    assert (record.author, record.invocation_id, record.branch) == ("unknown", None, "")
    assert to_adk_event(record) == odd
    assert to_sessionlite_event(AdkEvent(author="x", branch="a/b")).branch == ""
    assert to_sessionlite_event(AdkEvent(author="x", branch="root")).branch == "root"
    with pytest.raises(InvalidInputError, match="POSIX"):
        to_sessionlite_event(AdkEvent(author="x", timestamp=1e20))
    with pytest.raises(InvalidInputError, match="serialized"):
        to_sessionlite_event(AdkEvent(author="x", output=object()))


async def test_events_written_without_adk(ours: SessionliteSessionService) -> None:
    adk_session = await ours.create_session(app_name="app", user_id="u", session_id="s")
    native = await ours.service.get_session(app_name="app", user_id="u", session_id="s")
    assert native is not None
    await ours.service.append_event(
        native, Event(author="user", content="plain", branch="root/a", state_delta={"k": 1})
    )
    await ours.service.append_event(native, Event(author="bot", content={"x": [1]}))
    await ours.service.append_event(native, Event(author="system"))
    got = await ours.get_session(app_name="app", user_id="u", session_id="s")
    assert got is not None
    first, second, third = got.events
    assert first.content == types.Content(role="user", parts=[types.Part(text="plain")])
    assert first.branch == "root.a" and first.actions.state_delta == {"k": 1}
    assert second.content == types.Content(role="model", parts=[types.Part(text='{"x": [1]}')])
    assert third.content is None and third.branch is None
    del adk_session


async def test_corrupt_adk_json_is_reported(ours: SessionliteSessionService) -> None:
    from sessionlite import DatabaseCorruptError

    bad = Event(author="x", content={"timestamp": "never"}, metadata={"format": ADK_EVENT_FORMAT})
    with pytest.raises(DatabaseCorruptError):
        to_adk_event(bad)


async def test_duplicate_and_conflicting_event_ids(ours: SessionliteSessionService) -> None:
    session = await ours.create_session(app_name="app", user_id="u", session_id="s")
    event = text_event("once", actions=EventActions(state_delta={"n": 1}))
    await ours.append_event(session, event)
    # A retry of the same event changes nothing (ADK's InMemorySessionService rule).
    await ours.append_event(session, event)
    assert len(session.events) == 1
    clash = text_event("other")
    clash.id = event.id
    with pytest.raises(AlreadyExistsError):
        await ours.append_event(session, clash)
    got = await ours.get_session(app_name="app", user_id="u", session_id="s")
    assert got is not None and len(got.events) == 1


async def test_concurrent_appends_to_one_session_take_turns(
    ours: SessionliteSessionService,
) -> None:
    # Parallel agents share one session object; their appends must not make each
    # other stale (ADK's DatabaseSessionService serializes them the same way).
    session = await ours.create_session(app_name="app", user_id="u", session_id="s")
    events = [text_event(f"m{i}", author=f"agent{i % 3}") for i in range(20)]
    await asyncio.gather(*(ours.append_event(session, e) for e in events))
    got = await ours.get_session(app_name="app", user_id="u", session_id="s")
    assert got is not None and len(got.events) == 20
    assert not ours._locks


async def test_sessions_not_made_by_the_service(ours: SessionliteSessionService) -> None:
    """Sessions without our marker: DatabaseSessionService's rule (stale only if storage
    moved past the object's last event)."""
    created = await ours.create_session(app_name="app", user_id="u", session_id="s")
    await ours.append_event(created, text_event("one"))
    copy = AdkSession(
        app_name="app",
        user_id="u",
        id="s",
        events=list(created.events),
        last_update_time=created.last_update_time,
    )
    await ours.append_event(copy, text_event("two"))
    behind = AdkSession(app_name="app", user_id="u", id="s", events=[], last_update_time=0.0)
    with pytest.raises(AdkStaleSessionError):
        await ours.append_event(behind, text_event("three"))
    ahead = AdkSession(app_name="app", user_id="u", id="s", last_update_time=1e12)
    await ours.append_event(ahead, text_event("four"))


async def test_list_sessions_reads_every_page(
    ours: SessionliteSessionService, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sessionlite.integrations.adk as adk_module

    monkeypatch.setattr(adk_module, "MAX_LIST_LIMIT", 2)
    for i in range(5):
        await ours.create_session(app_name="app", user_id=f"u{i % 2}", session_id=f"s{i}")
    listed = await ours.list_sessions(app_name="app")
    assert [s.id for s in listed.sessions] == [f"s{i}" for i in range(5)]


async def test_wrapping_an_open_service(tmp_path: Path) -> None:
    async with SessionService(tmp_path / "x.db") as service:
        adk = SessionliteSessionService(service)
        assert adk.service is service
        await adk.create_session(app_name="app", user_id="u", session_id="s")
        await adk.flush()
        await adk.close()  # not ours to close
        assert not service.closed
        await adk.get_session(app_name="app", user_id="u", session_id="s")
        assert await service.get_session(app_name="app", user_id="u", session_id="s")
    with pytest.raises(InvalidInputError, match="options"):
        SessionliteSessionService(service, async_persist=True)
    with pytest.raises(InvalidInputError, match="event_limit"):
        SessionliteSessionService(tmp_path / "y.db", event_limit=-1)


async def test_owned_service_lifecycle(tmp_path: Path) -> None:
    adk = SessionliteSessionService(tmp_path / "x.db")
    await adk.flush()  # nothing opened yet: nothing to flush
    with pytest.raises(ServiceClosedError, match="first use"):
        adk.service  # noqa: B018
    await asyncio.gather(
        *(adk.get_session(app_name="a", user_id="u", session_id="s") for _ in "ab")
    )
    service = adk.service
    assert not service.closed
    await adk.close()
    await adk.close()
    assert service.closed
    await adk.flush()
    with pytest.raises(ServiceClosedError):
        await adk.get_session(app_name="a", user_id="u", session_id="s")

    never_opened = SessionliteSessionService(tmp_path / "y.db")
    await never_opened.close()
    with pytest.raises(ServiceClosedError, match="closed"):
        await never_opened.open()
    assert not (tmp_path / "y.db").exists()


def test_built_outside_an_event_loop(tmp_path: Path) -> None:
    # ADK apps build their session service at import time, before any loop runs.
    adk = SessionliteSessionService(tmp_path / "x.db", event_limit=10)

    async def use() -> None:
        async with adk:
            await adk.create_session(app_name="a", user_id="u", session_id="s")
            assert adk.service.options.event_limit == 10

    asyncio.run(use())


async def test_buffered_appends_and_flush(tmp_path: Path) -> None:
    adk = SessionliteSessionService(
        tmp_path / "x.db", async_persist=True, detect_stale_sessions=False
    )
    session = await adk.create_session(app_name="app", user_id="u", session_id="s")
    for i in range(10):
        await adk.append_event(session, text_event(f"m{i}"))
    await adk.flush()
    assert adk.service.stats().persist_queue_depth == 0
    await adk.close()
    async with SessionliteSessionService(tmp_path / "x.db") as reopened:
        got = await reopened.get_session(app_name="app", user_id="u", session_id="s")
        assert got is not None and len(got.events) == 10


# -- the proof: a real Runner, a scripted model, a restart -----------------------------------


class ScriptedModel(BaseLlm):
    """Replies from a script, records what it was asked; never touches a network."""

    model: str = "scripted"
    script: list[LlmResponse] = Field(default_factory=list)
    requests: list[LlmRequest] = Field(default_factory=list)

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        self.requests.append(llm_request)
        yield self.script.pop(0)


def reply(text: str) -> LlmResponse:
    return LlmResponse(content=types.Content(role="model", parts=[types.Part(text=text)]))


def call(name: str, **args: Any) -> LlmResponse:
    part = types.Part(function_call=types.FunctionCall(name=name, args=args))
    return LlmResponse(content=types.Content(role="model", parts=[part]))


def remember_color(color: str, tool_context: ToolContext) -> dict[str, Any]:
    """Remember the user's favourite color."""
    tool_context.state["color"] = color
    tool_context.state["user:favourite"] = color
    tool_context.state["temp:scratch"] = "only this turn"
    tool_context.state["turns"] = tool_context.state.get("turns", 0) + 1
    return {"saved": color}


def make_runner(service: BaseSessionService, model: ScriptedModel) -> Runner:
    agent = LlmAgent(
        name="assistant",
        model=model,
        instruction="Favourite color: {color?}",
        tools=[remember_color],
    )
    return Runner(app_name="colors", agent=agent, session_service=service)


async def run_turn(runner: Runner, text: str) -> list[AdkEvent]:
    message = types.Content(role="user", parts=[types.Part(text=text)])
    return [
        event
        async for event in runner.run_async(user_id="ann", session_id="chat", new_message=message)
    ]


def texts(request: LlmRequest) -> list[str]:
    return [
        part.text or (part.function_call.name if part.function_call else "")
        for content in request.contents
        for part in content.parts or []
    ]


@pytest.mark.parametrize("options", [{}, {"async_persist": True}], ids=["durable", "async"])
async def test_runner_conversation_survives_a_restart(
    tmp_path: Path, options: dict[str, Any]
) -> None:
    path = tmp_path / "agents.db"
    model = ScriptedModel(
        script=[call("remember_color", color="teal"), reply("Noted: teal."), reply("Hello again.")]
    )
    service = SessionliteSessionService(path, **options)
    runner = make_runner(service, model)
    await service.create_session(app_name="colors", user_id="ann", session_id="chat")
    first = await run_turn(runner, "My favourite color is teal.")
    second = await run_turn(runner, "Hi!")
    assert [e.author for e in first] == ["assistant", "assistant", "assistant"]
    assert first[1].actions.state_delta == {
        "color": "teal",
        "user:favourite": "teal",
        "turns": 1,
    }
    before = await service.get_session(app_name="colors", user_id="ann", session_id="chat")
    assert before is not None
    await runner.close()
    await service.close()

    # A new process: a new service on the same file, a new runner and model.
    model = ScriptedModel(script=[call("remember_color", color="plum"), reply("Plum it is.")])
    service = SessionliteSessionService(path)
    runner = make_runner(service, model)
    after = await service.get_session(app_name="colors", user_id="ann", session_id="chat")
    assert after is not None
    assert after.events == before.events
    assert (
        after.state
        == before.state
        == {
            "color": "teal",
            "user:favourite": "teal",
            "turns": 1,
        }
    )
    assert len(after.events) == 2 + len(first) + len(second)  # two user messages too

    third = await run_turn(runner, "Actually, plum.")
    # The model saw the whole earlier conversation, and the state in its instruction.
    request = model.requests[0]
    assert texts(request) == [
        "My favourite color is teal.",
        "remember_color",
        "",
        "Noted: teal.",
        "Hi!",
        "Hello again.",
        "Actually, plum.",
    ]
    assert "Favourite color: teal" in str(request.config.system_instruction)
    assert third[-1].content is not None and third[-1].content.parts is not None
    assert third[-1].content.parts[0].text == "Plum it is."
    final = await service.get_session(app_name="colors", user_id="ann", session_id="chat")
    assert final is not None
    assert final.state == {"color": "plum", "user:favourite": "plum", "turns": 2}
    assert await service.get_user_state(app_name="colors", user_id="ann") == {"favourite": "plum"}
    assert "Favourite color: plum" not in str(request.config.system_instruction)
    await runner.close()
    await service.close()


def test_importing_sessionlite_does_not_import_adk() -> None:
    import subprocess
    import sys

    code = (
        "import sys, sessionlite, sessionlite.integrations.importers, "
        "sessionlite.integrations.openai_agents\n"
        "assert 'google.adk' not in sys.modules and 'agents' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- sync Runner.run: a fresh event loop in a new thread for every call ---------------------


def run_sync_turn(runner: Runner, text: str) -> list[AdkEvent]:
    message = types.Content(role="user", parts=[types.Part(text=text)])
    return list(runner.run(user_id="ann", session_id="chat", new_message=message))


def five_turn_script() -> list[LlmResponse]:
    return [
        call("remember_color", color="teal"),
        reply("Noted: teal."),
        reply("Hello."),
        call("remember_color", color="plum"),
        reply("Plum it is."),
        reply("Still here."),
        reply("Bye."),
    ]


def drive_five_turns(service: BaseSessionService) -> tuple[list[Any], dict[str, Any]]:
    """Five turns through the sync Runner.run, one through run_async in between; then
    the stored history (author, text) and state, read on yet another loop."""
    runner = make_runner(service, ScriptedModel(script=five_turn_script()))
    asyncio.run(service.create_session(app_name="colors", user_id="ann", session_id="chat"))
    run_sync_turn(runner, "My favourite color is teal.")
    run_sync_turn(runner, "Hi!")
    asyncio.run(run_turn(runner, "Make it plum."))  # run_async, on a loop of its own
    run_sync_turn(runner, "Still there?")
    run_sync_turn(runner, "Bye.")

    async def read() -> tuple[list[Any], dict[str, Any]]:
        got = await service.get_session(app_name="colors", user_id="ann", session_id="chat")
        assert got is not None
        history = [
            (
                e.author,
                [
                    p.text or (p.function_call and p.function_call.name)
                    for p in e.content.parts or []
                ],
            )
            for e in got.events
            if e.content is not None
        ]
        await runner.close()
        return history, dict(got.state)

    return asyncio.run(read())


@pytest.mark.timeout(120)
def test_sync_runner_over_many_turns_matches_adks_own_service(tmp_path: Path) -> None:
    ours = SessionliteSessionService(tmp_path / "ours.db")
    theirs = SqliteSessionService(str(tmp_path / "adk.db"))
    our_history, our_state = drive_five_turns(ours)
    their_history, their_state = drive_five_turns(theirs)
    asyncio.run(ours.close())
    assert our_history == their_history
    assert len(our_history) == 5 + 7 + 2  # user messages, model replies, tool results
    assert our_state == their_state == {"color": "plum", "user:favourite": "plum", "turns": 2}

    async def reopen() -> None:
        async with SessionliteSessionService(tmp_path / "ours.db") as again:
            got = await again.get_session(app_name="colors", user_id="ann", session_id="chat")
            assert got is not None and got.state == our_state
            assert await again.get_user_state(app_name="colors", user_id="ann") == {
                "favourite": "plum"
            }

    asyncio.run(reopen())


# -- last_update_time: what ADK's own services give ---------------------------------------


async def last_update_times(service: BaseSessionService) -> list[Any]:
    """``last_update_time`` through a session's life, each value named: ``created`` (the
    session's creation time), ``e1``/``e2`` (that event's exact timestamp)."""
    windows: dict[str, tuple[float, float]] = {}

    async def create(session_id: str) -> AdkSession:
        before = time.time()
        session = await service.create_session(app_name="app", user_id="u", session_id=session_id)
        windows[session_id] = (before - 1e-3, time.time() + 1e-3)
        return session

    # e1 in the future, e2 in the past: appended in this order, e2 is the last event.
    e1 = text_event("one", timestamp=1_900_000_000.123456789)
    e2 = text_event("two", timestamp=1_700_000_000.5)

    def name(session_id: str, seconds: float) -> str:
        low, high = windows[session_id]
        if low <= seconds <= high:
            return "created"
        return {e1.timestamp: "e1", e2.timestamp: "e2"}.get(seconds, repr(seconds))

    async def get(config: GetSessionConfig | None = None) -> str:
        got = await service.get_session(app_name="app", user_id="u", session_id="s1", config=config)
        assert got is not None
        return name("s1", got.last_update_time)

    async def listed() -> list[tuple[str, str]]:
        sessions = (await service.list_sessions(app_name="app", user_id="u")).sessions
        return [(s.id, name(s.id, s.last_update_time)) for s in sessions]

    seen: list[Any] = []
    s1 = await create("s1")
    seen += [name("s1", s1.last_update_time), await get(), await listed()]
    await create("s2")
    for event in (e1, e2):
        await service.append_event(s1, event)
        seen += [
            name("s1", s1.last_update_time),
            await get(),
            await get(GetSessionConfig(num_recent_events=0)),
            await get(GetSessionConfig(num_recent_events=1)),
            await get(GetSessionConfig(after_timestamp=2e9)),
            await listed(),
        ]
    return seen


@pytest.mark.parametrize("kind", ["file", "memory", "async"])
async def test_last_update_time_is_adks(kind: str, tmp_path: Path) -> None:
    path = ":memory:" if kind == "memory" else tmp_path / "sl.db"
    async with SessionliteSessionService(path, async_persist=kind == "async") as ours:
        our_times = await last_update_times(ours)
    theirs = SqliteSessionService(str(tmp_path / "adk.db"))
    their_times = await last_update_times(theirs)
    await theirs.close()
    assert our_times == their_times
    assert their_times == [
        "created",
        "created",
        [("s1", "created")],
        *["e1", "e1", "e1", "e1", "e1", [("s2", "created"), ("s1", "e1")]],
        *["e2", "e2", "e2", "e2", "e2", [("s1", "e2"), ("s2", "created")]],
    ]


async def test_stale_detection_does_not_trust_event_clocks(
    ours: SessionliteSessionService,
) -> None:
    """last_update_time is an event's timestamp, from whatever clock made the event: a
    write the object did not see is caught even when that timestamp is older."""
    created = await ours.create_session(app_name="app", user_id="u", session_id="s")
    await ours.append_event(created, text_event("one", timestamp=2000.0))
    loaded = await ours.get_session(app_name="app", user_id="u", session_id="s")
    assert loaded is not None
    copy = AdkSession(  # no marker: as ADK's own Session objects
        app_name="app",
        user_id="u",
        id="s",
        events=list(created.events),
        last_update_time=created.last_update_time,
    )
    await ours.append_event(created, text_event("two", timestamp=1000.0))
    assert created.last_update_time == 1000.0
    for stale in (loaded, copy):
        with pytest.raises(AdkStaleSessionError):
            await ours.append_event(stale, text_event("lost"))
    await ours.append_event(created, text_event("three"))


# -- built from a URI (ADK's service registry) ----------------------------------------------


@pytest.mark.parametrize(
    ("uri", "database"),
    [
        ("sessionlite:///sessions.db", "sessions.db"),
        ("sessionlite:///data/sessions.db", "data/sessions.db"),
        ("sessionlite:////srv/agents/sessions.db", "/srv/agents/sessions.db"),
        ("sessionlite:///my%20dir/a%23b.db", "my dir/a#b.db"),
        ("SessionLite:///sessions.db", "sessions.db"),
        ("sessionlite:///:memory:", ":memory:"),
        ("sessionlite+postgresql://u:p@db:5432/app", "postgresql://u:p@db:5432/app"),
        ("sessionlite+postgresql://db/app?sslmode=require", "postgresql://db/app?sslmode=require"),
    ],
)
def test_uri_names_a_database(uri: str, database: str) -> None:
    assert parse_session_uri(uri) == (database, {})


def test_uri_home_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", str(tmp_path))
    path, _ = parse_session_uri("sessionlite:///~/agents/sessions.db")
    assert Path(path) == tmp_path / "agents" / "sessions.db"


def test_uri_options() -> None:
    uri = (
        "sessionlite:///s.db?async_persist=true&detect_stale_sessions=off&session_ttl=86400"
        "&busy_timeout=2.5&max_stored_events=none&event_limit=50&synchronous=FULL"
    )
    assert parse_session_uri(uri) == (
        "s.db",
        {
            "async_persist": True,
            "detect_stale_sessions": False,
            "session_ttl": 86400.0,
            "busy_timeout": 2.5,
            "max_stored_events": None,
            "event_limit": 50,
            "synchronous": "FULL",
        },
    )


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("sessionlite://sessions.db", "not a host"),
        ("sessionlite:///", "no database path"),
        ("sessionlite:", "no database path"),
        ("sessionlite:sessions.db", "no database path"),
        ("sqlite:///sessions.db", "scheme 'sqlite'"),
        ("sessions.db", "scheme ''"),
        ("sessionlite+mysql://db/app", "unsupported URI scheme"),
        ("sessionlite+postgresql:app", "unsupported URI scheme"),
        ("sessionlite:///s.db#x", "fragment"),
        ("sessionlite:///s.db?bogus=1", "unknown URI parameter 'bogus'"),
        ("sessionlite:///s.db?async_persist=maybe", "true or false"),
        ("sessionlite:///s.db?event_limit=ten", "an integer"),
        ("sessionlite:///s.db?session_ttl=soon", "seconds"),
        ("sessionlite:///s.db?clock=now", "keyword argument"),
        ("sessionlite:///s.db?soft_delete=1&soft_delete=0", "twice"),
        ("sessionlite:///s.db?soft_delete", "malformed"),
    ],
)
def test_bad_uris(uri: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_session_uri(uri)


async def test_built_from_a_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # What ADK's registry calls: the URI, and its own agents_dir (ignored).
    relative = SessionliteSessionService(uri="sessionlite:///rel.db", agents_dir=str(tmp_path))
    async with relative:
        await relative.create_session(app_name="app", user_id="u", session_id="s")
        assert relative.service.path == "rel.db"
    assert (tmp_path / "rel.db").is_file()

    absolute = tmp_path / "abs dir" / "abs.db"
    absolute.parent.mkdir()
    uri = f"sessionlite:///{absolute.as_posix().replace(' ', '%20')}?session_ttl=60"
    async with SessionliteSessionService(uri=uri, event_limit=5) as adk:
        await adk.create_session(app_name="app", user_id="u", session_id="s")
        assert adk.service.path == absolute.as_posix()
        assert adk.service.options.session_ttl == timedelta(seconds=60)
        assert adk.service.options.event_limit == 5
    assert absolute.is_file()

    memory = "sessionlite:///:memory:?async_persist=true&detect_stale_sessions=false"
    async with SessionliteSessionService(uri=memory) as adk:
        session = await adk.create_session(app_name="app", user_id="u", session_id="s")
        await adk.append_event(session, text_event("hi"))
        assert adk.service.path == ":memory:"
        assert adk.service.options.async_persist
        assert not adk._detect_stale


def test_bad_uri_arguments(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="both in the URI and as keyword"):
        SessionliteSessionService(uri="sessionlite:///x.db?event_limit=5", event_limit=6)
    with pytest.raises(InvalidInputError, match="detect_stale_sessions is given both"):
        SessionliteSessionService(
            uri="sessionlite:///x.db?detect_stale_sessions=true", detect_stale_sessions=False
        )
    with pytest.raises(InvalidInputError, match="session_ttl"):
        SessionliteSessionService(uri="sessionlite:///x.db?session_ttl=-5")
    with pytest.raises(InvalidInputError, match="agents_dir"):
        SessionliteSessionService(tmp_path / "x.db", agents_dir=".")  # only with a URI
    with pytest.raises(InvalidInputError, match="not both"):
        SessionliteSessionService(tmp_path / "x.db", uri="sessionlite:///x.db")
    with pytest.raises(InvalidInputError, match="a database path"):
        SessionliteSessionService()
    with pytest.raises(InvalidInputError, match=r"uri="):
        SessionliteSessionService("sessionlite:///x.db")
    assert not list(tmp_path.iterdir())


def test_uri_takes_every_plain_option() -> None:
    """A new SessionService option must be given a URI form (or be an object)."""
    import dataclasses

    from sessionlite.config import ServiceOptions

    keyword_only = set()
    for field in dataclasses.fields(ServiceOptions):
        try:
            parse_session_uri(f"sessionlite:///x.db?{field.name}=1")
        except InvalidInputError as exc:
            if "keyword argument" in str(exc):
                keyword_only.add(field.name)
    assert keyword_only == {"clock", "summarizer", "append_event_hooks", "get_session_hooks"}


async def test_listing_runs_no_read_hooks_and_refreshes_no_expiry(tmp_path: Path) -> None:
    seen: list[str] = []

    async def hook(ctx: Any, call_next: Any) -> Any:
        seen.append(ctx.session_id)
        return await call_next()

    clock = ManualClock()
    async with SessionService(
        tmp_path / "x.db",
        get_session_hooks=[hook],
        refresh_ttl_on_read=True,
        session_ttl=60,
        clock=clock,
    ) as service:
        adk = SessionliteSessionService(service)
        await adk.create_session(app_name="a", user_id="u", session_id="s")
        clock.advance(seconds=50)
        listed = await adk.list_sessions(app_name="a", user_id="u")
        assert [s.id for s in listed.sessions] == ["s"]
        assert seen == []  # bookkeeping reads are not the user's reads
        clock.advance(seconds=11)  # 61 s after the last write: listing did not refresh it
        assert (await service.list_sessions(app_name="a")).sessions == []
