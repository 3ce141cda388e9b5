"""Conformance: events (append, retries, conflicts, versions, reads) in every mode."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from tests.conftest import expect_write_error

from sessionlite import (
    Event,
    EventConflictError,
    InvalidInputError,
    PersistenceError,
    Session,
    SessionLiteError,
    SessionNotFoundError,
    SessionService,
    StaleSessionError,
    ToolCall,
    ToolResult,
    Usage,
)
from sessionlite.testing import ManualClock

RICH_CONTENT = {
    "parts": [
        {
            "type": "text",
            "text": "héllo \u2028 \x00 nul, emoji \U0001f916, rtl \u05e9\u05dc\u05d5\u05dd",
        },
        {"type": "data", "value": [1, -2, 3.25, 1e300, -0.0, 2**62, None, True, False, ""]},
    ],
    "deep": {"a": {"b": {"c": {"d": [[[]], {}]}}}},
}


async def new_session(service: SessionService, sid: str = "s") -> Session:
    return await service.create_session(app_name="app", user_id="u", session_id=sid)


async def reload(service: SessionService, session: Session, **kwargs: object) -> Session:
    got = await service.get_session(
        app_name=session.app_name, user_id=session.user_id, session_id=session.id, **kwargs
    )
    assert got is not None
    return got


def full_event(**overrides: object) -> Event:
    fields: dict[str, object] = {
        "author": "assistant",
        "content": RICH_CONTENT,
        "reasoning": "thinking...",
        "tool_calls": [ToolCall(id="c1", name="lookup", arguments={"q": "x", "n": [1, 2]})],
        "tool_results": [ToolResult(call_id="c1", output={"rows": []}, is_error=True)],
        "state_delta": {"k": {"v": 1}},
        "invocation_id": "inv-1",
        "agent_id": "root",
        "model": "gpt-x",
        "usage": Usage(input_tokens=10, output_tokens=20),
        "metadata": {"trace": "abc", "list": [1, "2"]},
        "branch": "root/researcher",
        "timestamp": datetime(2026, 1, 1, 12, 30, 15, 123456, tzinfo=timezone.utc),
    }
    fields.update(overrides)
    return Event(**fields)  # type: ignore[arg-type]


async def test_every_field_round_trips(service: SessionService) -> None:
    session = await new_session(service)
    event = full_event()
    stored = await service.append_event(session, event)
    await service.flush()  # async_persist: sequences are assigned when written
    assert stored.sequence == 1
    got = await reload(service, session)
    assert len(got.events) == 1
    assert got.events[0] == stored
    assert got.events[0].model_dump(exclude={"sequence"}) == event.model_dump(exclude={"sequence"})


async def test_large_payload_round_trips(service: SessionService) -> None:
    session = await new_session(service)
    big = "x" * (2 * 1024 * 1024) + "\U0001f600"
    await service.append_event(session, Event(author="user", content={"blob": big}))
    got = await reload(service, session)
    assert got.events[0].content == {"blob": big}


async def test_non_utc_timestamp_is_normalised(service: SessionService) -> None:
    session = await new_session(service)
    plus_two = timezone(timedelta(hours=2))
    event = Event(author="user", timestamp=datetime(2026, 5, 1, 14, 0, tzinfo=plus_two))
    await service.append_event(session, event)
    got = await reload(service, session)
    assert got.events[0].timestamp == datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
    assert got.events[0].timestamp.tzinfo == timezone.utc


async def test_sequences_increase_and_are_never_reused(service: SessionService) -> None:
    session = await new_session(service)
    for i in range(3):
        await service.append_event(session, Event(author="user", content=i))
    await service.flush()
    assert [e.sequence for e in session.events] == [1, 2, 3]
    popped = await service.pop_event(session)
    assert popped is not None and popped.sequence == 3
    await service.append_event(session, Event(author="user", content="after pop"))
    assert (await reload(service, session)).events[-1].sequence == 4
    assert await service.clear_events(session) == 3
    after_clear = await service.append_event(session, Event(author="user", content="after clear"))
    await service.flush()
    assert after_clear.sequence == 5


async def test_append_updates_session_object(service: SessionService, clock: ManualClock) -> None:
    session = await new_session(service)
    clock.advance(seconds=5)
    event = Event(author="user", content="hi", state_delta={"k": 1, "temp:t": 2})
    stored = await service.append_event(session, event)
    assert session.events == [stored]
    assert session.version == 1
    assert session.updated_at == clock.now
    assert session.state == {"k": 1, "temp:t": 2}
    # temp: keys never reach the store, not even inside the stored event's delta.
    assert stored.state_delta == {"k": 1}
    got = await reload(service, session)
    assert got.state == {"k": 1}
    assert got.events[0].state_delta == {"k": 1}
    assert got.version == 1


async def test_caller_mutation_after_append_changes_nothing_stored(
    service: SessionService,
) -> None:
    session = await new_session(service)
    payload = {"list": [1, 2]}
    event = Event(author="user", content=payload, state_delta={"k": [1]})
    stored = await service.append_event(session, event)
    payload["list"].append(3)
    event.state_delta["k"].append(2)
    assert stored.content == {"list": [1, 2]}
    assert session.state["k"] == [1]
    got = await reload(service, session)
    assert got.events[0].content == {"list": [1, 2]}


async def test_identical_retry_is_a_noop(service: SessionService) -> None:
    session = await new_session(service)
    event = Event(author="user", content="once", state_delta={"n": 1})
    first = await service.append_event(session, event)
    again = await service.append_event(session, event)
    await service.flush()
    assert again == first
    assert session.version == 1
    assert len(session.events) == 1
    got = await reload(service, session)
    assert len(got.events) == 1 and got.version == 1


async def test_retry_from_a_fresh_session_object(service: SessionService) -> None:
    session = await new_session(service)
    event = Event(author="user", content="once")
    await service.append_event(session, event)
    fresh = await reload(service, session, num_recent_events=0)
    again = await service.append_event(fresh, event)
    await service.flush()
    assert again.sequence == 1
    assert (await reload(service, session)).version == 1


async def test_same_id_different_content_conflicts(service: SessionService) -> None:
    session = await new_session(service)
    await service.append_event(session, Event(id="e1", author="user", content="a"))
    error = await expect_write_error(
        service,
        EventConflictError,
        service.append_event(session, Event(id="e1", author="user", content="b")),
    )
    assert isinstance(error, EventConflictError)
    assert error.event_id == "e1"
    got = await reload(service, session)
    assert [e.content for e in got.events] == ["a"]
    assert got.version == 1


async def test_conflict_in_async_mode_names_the_event(make_service: object) -> None:
    async with make_service(async_persist=True) as service:  # type: ignore[operator]
        session = await new_session(service)
        await service.append_event(session, Event(id="e1", author="user", content="a"))
        await service.append_event(session, Event(id="e1", author="user", content="b"))
        with pytest.raises(PersistenceError) as info:
            await service.flush()
        assert info.value.event_ids == ("e1",)
        assert service.stats().persist_failures == 1
        await service.flush()  # reported once


async def test_same_event_id_in_two_sessions_is_fine(service: SessionService) -> None:
    one, two = await new_session(service, "one"), await new_session(service, "two")
    await service.append_event(one, Event(id="e1", author="user", content="a"))
    await service.append_event(two, Event(id="e1", author="user", content="b"))
    assert (await reload(service, two)).events[0].content == "b"


async def test_expected_version(service: SessionService) -> None:
    session = await new_session(service)
    await service.append_event(session, Event(author="user"), expected_version=0)
    with pytest.raises(StaleSessionError) as info:
        await service.append_event(
            session, Event(author="user", state_delta={"k": 1}), expected_version=0
        )
    assert (info.value.expected_version, info.value.actual_version) == (0, 1)
    got = await reload(service, session)
    assert len(got.events) == 1 and "k" not in got.state and got.version == 1
    await service.append_event(session, Event(author="user"), expected_version=1)


async def test_stale_object_detects_concurrent_writer(service: SessionService) -> None:
    mine = await new_session(service)
    theirs = await reload(service, mine)
    await service.append_event(theirs, Event(author="other"))
    with pytest.raises(StaleSessionError):
        await service.append_event(mine, Event(author="me"), expected_version=mine.version)


async def test_append_events_is_all_or_nothing(service: SessionService) -> None:
    session = await new_session(service)
    good = Event(author="user", content="ok", state_delta={"k": 1})
    bad = Event(author="user", content={"s": {1, 2}})
    with pytest.raises(InvalidInputError):
        await service.append_events(session, [good, bad])
    assert session.events == [] and session.version == 0
    got = await reload(service, session)
    assert got.events == [] and got.state == {}

    stored = await service.append_events(
        session,
        [Event(author="user", content=1, state_delta={"k": 1}), Event(author="bot", content=2)],
    )
    await service.flush()
    assert [e.sequence for e in stored] == [1, 2]
    assert session.version == 1  # one write, one version
    got = await reload(service, session)
    assert [e.content for e in got.events] == [1, 2] and got.state == {"k": 1}


async def test_append_events_conflict_writes_nothing(service: SessionService) -> None:
    session = await new_session(service)
    await service.append_event(session, Event(id="dup", author="user", content="a"))
    await expect_write_error(
        service,
        EventConflictError,
        service.append_events(
            session,
            [Event(author="user", content="new"), Event(id="dup", author="user", content="b")],
        ),
    )
    got = await reload(service, session)
    assert [e.content for e in got.events] == ["a"]


async def test_append_events_duplicate_ids_in_one_call(service: SessionService) -> None:
    session = await new_session(service)
    with pytest.raises(InvalidInputError, match="distinct"):
        await service.append_events(session, [Event(id="x", author="a"), Event(id="x", author="a")])


async def test_append_events_rejects_non_sequence(service: SessionService) -> None:
    session = await new_session(service)
    with pytest.raises(InvalidInputError):
        await service.append_events(session, Event(author="a"))  # type: ignore[arg-type]


async def test_append_to_missing_session(service: SessionService) -> None:
    session = await new_session(service)
    await service.delete_session(app_name="app", user_id="u", session_id="s")
    await expect_write_error(
        service, SessionNotFoundError, service.append_event(session, Event(author="user"))
    )
    ghost = Session(
        app_name="app",
        user_id="u",
        id="never",
        created_at=datetime.now(timezone.utc),
        updated_at=datetime.now(timezone.utc),
    )
    await expect_write_error(
        service, SessionNotFoundError, service.append_event(ghost, Event(author="user"))
    )


async def test_partial_events_stay_in_memory(service: SessionService) -> None:
    session = await new_session(service)
    chunk = await service.append_event(
        session, Event(author="bot", content="Hel", partial=True, state_delta={"typing": True})
    )
    assert chunk.sequence is None
    assert session.events[-1].content == "Hel"
    assert session.state["typing"] is True
    assert session.version == 0
    got = await reload(service, session)
    assert got.events == [] and got.state == {}
    # A mix: only the non-partial event is stored.
    stored = await service.append_events(
        session, [Event(author="bot", content="lo", partial=True), Event(author="bot", content="x")]
    )
    await service.flush()
    assert [e.sequence for e in stored] == [None, 1]
    assert [e.content for e in (await reload(service, session)).events] == ["x"]


@pytest.mark.parametrize(
    "bad",
    [
        Event(author="a", content={1, 2}),
        Event(author="a", content=b"bytes"),
        Event(author="a", content=(1, 2)),
        Event(author="a", content=float("nan")),
        Event(author="a", content={"x": float("inf")}),
        Event(author="a", content=object()),
        Event(author="a", metadata={"k": {1: 2}}),
        Event(author="a", state_delta={"k": b"x"}),
        Event(author="a", content="lone \udc80 surrogate"),
        Event(author="", content="empty author"),
        Event(author="a", timestamp=datetime(2026, 1, 1)),
        Event(author="a", tool_calls=[ToolCall(name="t", arguments={"x": {1}})]),
        Event(author="a", tool_results=[ToolResult(call_id="c", output=float("-inf"))]),
    ],
    # Stable ids (an event's repr starts with its random id): pytest-xdist workers must
    # collect the same names.
    ids=[
        "set-content",
        "bytes-content",
        "tuple-content",
        "nan-content",
        "inf-nested",
        "object-content",
        "int-metadata-key",
        "bytes-state",
        "lone-surrogate",
        "empty-author",
        "naive-timestamp",
        "set-tool-arguments",
        "inf-tool-output",
    ],
)
async def test_invalid_events_rejected_and_nothing_stored(
    service: SessionService, bad: Event
) -> None:
    session = await new_session(service)
    with pytest.raises(InvalidInputError):
        await service.append_event(session, bad)
    assert session.events == [] and session.version == 0
    assert (await reload(service, session)).events == []


async def test_recursive_content_rejected(service: SessionService) -> None:
    session = await new_session(service)
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(InvalidInputError):
        await service.append_event(session, Event(author="a", content=loop))


async def test_nested_mutation_after_construction_is_caught(service: SessionService) -> None:
    session = await new_session(service)
    event = Event(author="a", content={"ok": 1})
    event.content["bad"] = {1, 2}
    with pytest.raises(InvalidInputError, match="content"):
        await service.append_event(session, event)


async def test_wrong_argument_types(service: SessionService) -> None:
    session = await new_session(service)
    with pytest.raises(InvalidInputError):
        await service.append_event("not a session", Event(author="a"))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        await service.append_event(session, {"author": "a"})  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        await service.append_event(session, Event(author="a"), expected_version=-1)


async def test_get_session_limits_events(service: SessionService) -> None:
    session = await new_session(service)
    await service.append_events(session, [Event(author="u", content=i) for i in range(50)])
    got = await reload(service, session, num_recent_events=5)
    assert [e.content for e in got.events] == [45, 46, 47, 48, 49]
    assert (await reload(service, session, num_recent_events=0)).events == []
    with pytest.raises(InvalidInputError):
        await reload(service, session, num_recent_events=-1)


async def test_event_limit_option(make_service: object) -> None:
    for limit, expected in [(3, 3), (None, 10)]:
        async with make_service(event_limit=limit) as service:  # type: ignore[operator]
            session = await service.create_session(app_name="a", user_id="u")
            await service.append_events(session, [Event(author="u", content=i) for i in range(10)])
            got = await reload(service, session)
            assert len(got.events) == expected
            assert got.events[-1].content == 9


async def test_get_session_after_filter(service: SessionService) -> None:
    session = await new_session(service)
    base = datetime(2026, 3, 1, tzinfo=timezone.utc)
    await service.append_events(
        session,
        [Event(author="u", content=i, timestamp=base + timedelta(minutes=i)) for i in range(6)],
    )
    got = await reload(service, session, after=base + timedelta(minutes=3))
    assert [e.content for e in got.events] == [3, 4, 5]
    with pytest.raises(InvalidInputError, match="naive"):
        await reload(service, session, after=datetime(2026, 3, 1))


async def test_get_session_branch_filter(service: SessionService) -> None:
    session = await new_session(service)
    branches = ["", "root", "root/a", "root/a/deep", "root/ab", "other", "root/b"]
    await service.append_events(session, [Event(author="u", content=b, branch=b) for b in branches])
    got = await reload(service, session, branch="root/a")
    assert [e.content for e in got.events] == ["root/a", "root/a/deep"]
    got = await reload(service, session, branch="root")
    assert [e.content for e in got.events] == ["root", "root/a", "root/a/deep", "root/ab", "root/b"]
    got = await reload(service, session, branch="")
    assert len(got.events) == len(branches)
    got = await reload(service, session, branch="root", num_recent_events=2)
    assert [e.content for e in got.events] == ["root/ab", "root/b"]


async def test_invalid_branch_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match="empty segment"):
        Event(author="u", branch="a//b")


async def test_iter_events_pages_and_filters(service: SessionService) -> None:
    session = await new_session(service)
    base = datetime(2026, 3, 1, tzinfo=timezone.utc)
    await service.append_events(
        session,
        [
            Event(
                author="user" if i % 2 else "bot",
                content=i,
                branch="x/y" if i % 3 == 0 else "z",
                timestamp=base + timedelta(seconds=i),
            )
            for i in range(23)
        ],
    )
    key = {"app_name": "app", "user_id": "u", "session_id": "s"}
    everything = [e.content async for e in service.iter_events(**key, page_size=5)]
    assert everything == list(range(23))
    after = [e.sequence async for e in service.iter_events(**key, after_sequence=20)]
    assert after == [21, 22, 23]
    users = [e.content async for e in service.iter_events(**key, author="user")]
    assert users == [i for i in range(23) if i % 2]
    window = service.iter_events(
        **key, since=base + timedelta(seconds=5), until=base + timedelta(seconds=8), page_size=2
    )
    assert [e.content async for e in window] == [5, 6, 7, 8]
    branch = [e.content async for e in service.iter_events(**key, branch="x")]
    assert branch == [i for i in range(23) if i % 3 == 0]


async def test_iter_events_errors(service: SessionService) -> None:
    with pytest.raises(SessionNotFoundError):
        async for _ in service.iter_events(app_name="a", user_id="u", session_id="none"):
            pass
    await new_session(service)
    with pytest.raises(InvalidInputError):
        service.iter_events(app_name="app", user_id="u", session_id="s", page_size=0)
    with pytest.raises(InvalidInputError):
        service.iter_events(app_name="app", user_id="u", session_id="s", since=datetime(2026, 1, 1))


async def test_iter_events_stops_when_session_deleted_midway(service: SessionService) -> None:
    session = await new_session(service)
    await service.append_events(session, [Event(author="u", content=i) for i in range(10)])
    seen = []
    async for event in service.iter_events(
        app_name="app", user_id="u", session_id="s", page_size=3
    ):
        seen.append(event.content)
        if len(seen) == 3:
            await service.delete_session(app_name="app", user_id="u", session_id="s")
    assert seen == [0, 1, 2]


async def test_pop_event(service: SessionService) -> None:
    session = await new_session(service)
    assert await service.pop_event(session) is None
    await service.append_events(
        session, [Event(author="u", content=1), Event(author="u", content=2, state_delta={"k": 1})]
    )
    popped = await service.pop_event(session)
    assert popped is not None and popped.content == 2
    assert [e.content for e in session.events] == [1]
    assert session.version == 2
    got = await reload(service, session)
    assert [e.content for e in got.events] == [1]
    assert got.state == {"k": 1}  # popping does not undo state
    assert got.version == 2


async def test_clear_events(service: SessionService) -> None:
    session = await new_session(service)
    assert await service.clear_events(session) == 0
    await service.append_events(
        session, [Event(author="u", content=i, state_delta={"k": i}) for i in range(4)]
    )
    assert await service.clear_events(session) == 4
    assert session.events == []
    got = await reload(service, session)
    assert got.events == [] and got.state == {"k": 3} and got.version == 2


async def test_pop_and_clear_on_missing_session(service: SessionService) -> None:
    session = await new_session(service)
    await service.delete_session(app_name="app", user_id="u", session_id="s")
    with pytest.raises(SessionNotFoundError):
        await service.pop_event(session)
    with pytest.raises(SessionNotFoundError):
        await service.clear_events(session)


async def test_replace_events_is_one_transaction(service: SessionService) -> None:
    # The adapters' history replacement (OpenAI Agents SDK compaction), in every mode.
    session = await service.create_session(app_name="a", user_id="u", session_id="s")
    await service.append_events(
        session, [Event(author="u", content=i, state_delta={"k": i}) for i in range(3)]
    )
    replaced = await service._replace_events(session, [Event(author="u", content="summary")])
    assert [e.sequence for e in replaced] == [4]
    assert [e.content for e in session.events] == ["summary"]
    got = await service.get_session(app_name="a", user_id="u", session_id="s")
    assert got is not None and [e.content for e in got.events] == ["summary"]
    assert got.state == {"k": 2} and got.version == session.version
    # A failing replacement leaves the old history: duplicate ids within one call.
    twice = Event(author="u", content="x")
    with pytest.raises(SessionLiteError):
        await service._replace_events(session, [twice, twice.model_copy(update={"content": 1})])
    got = await service.get_session(app_name="a", user_id="u", session_id="s")
    assert got is not None and [e.content for e in got.events] == ["summary"]
    assert await service._replace_events(session, []) == []
    got = await service.get_session(app_name="a", user_id="u", session_id="s")
    assert got is not None and got.events == []
