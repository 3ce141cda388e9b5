"""Conformance: sessions (create, get, get_or_create, list, delete) in every mode."""

from __future__ import annotations

from datetime import timedelta

import anyio
import pytest

from sessionlite import (
    Event,
    InvalidInputError,
    SessionExistsError,
    SessionService,
)
from sessionlite.testing import ManualClock


async def test_create_and_get_round_trip(service: SessionService, clock: ManualClock) -> None:
    created = await service.create_session(
        app_name="chat",
        user_id="u1",
        session_id="s1",
        state={"topic": "weather", "nested": {"a": [1, 2.5, None, True]}},
        agent_id="root",
        metadata={"source": "web", "tags": ["x", "ü"]},
    )
    assert created.id == "s1"
    assert created.version == 0
    assert created.created_at == created.updated_at == clock.now
    assert created.events == []
    got = await service.get_session(app_name="chat", user_id="u1", session_id="s1")
    assert got is not None
    assert got.model_dump() == created.model_dump()


async def test_create_generates_unique_ids(service: SessionService) -> None:
    first = await service.create_session(app_name="a", user_id="u")
    second = await service.create_session(app_name="a", user_id="u")
    assert first.id and second.id and first.id != second.id


async def test_create_existing_raises(service: SessionService) -> None:
    await service.create_session(app_name="a", user_id="u", session_id="s")
    with pytest.raises(SessionExistsError) as info:
        await service.create_session(app_name="a", user_id="u", session_id="s")
    assert info.value.session_id == "s"


async def test_same_id_for_other_user_or_app_is_separate(service: SessionService) -> None:
    await service.create_session(app_name="a", user_id="u1", session_id="s", state={"k": 1})
    await service.create_session(app_name="a", user_id="u2", session_id="s", state={"k": 2})
    await service.create_session(app_name="b", user_id="u1", session_id="s", state={"k": 3})
    got = await service.get_session(app_name="a", user_id="u2", session_id="s")
    assert got is not None and got.state["k"] == 2


async def test_get_missing_returns_none(service: SessionService) -> None:
    assert await service.get_session(app_name="a", user_id="u", session_id="nope") is None


async def test_get_or_create_is_atomic(service: SessionService) -> None:
    results = []

    async def racer() -> None:
        session = await service.get_or_create_session(
            app_name="a", user_id="u", session_id="shared", state={"k": 1}
        )
        results.append(session)

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(racer)
    assert len(results) == 20
    assert {s.id for s in results} == {"shared"}
    page = await service.list_sessions(app_name="a", user_id="u")
    assert len(page.sessions) == 1


async def test_get_or_create_returns_existing_with_events(service: SessionService) -> None:
    session = await service.create_session(app_name="a", user_id="u", session_id="s")
    await service.append_event(session, Event(author="user", content="hi"))
    again = await service.get_or_create_session(
        app_name="a", user_id="u", session_id="s", state={"ignored": True}
    )
    assert [e.content for e in again.events] == ["hi"]
    assert "ignored" not in again.state


async def test_list_sessions_newest_first_with_cursor(
    service: SessionService, clock: ManualClock
) -> None:
    ids = []
    for i in range(7):
        session = await service.create_session(app_name="a", user_id="u", session_id=f"s{i}")
        ids.append(session.id)
        clock.advance(seconds=1)
    await service.create_session(app_name="a", user_id="other", session_id="o")
    await service.create_session(app_name="b", user_id="u", session_id="b")
    # Touch s2: it becomes the most recently updated.
    s2 = await service.get_session(app_name="a", user_id="u", session_id="s2")
    assert s2 is not None
    await service.append_event(s2, Event(author="user", content="bump"))
    await service.flush()  # async_persist: listing sees what was written

    seen: list[str] = []
    cursor = None
    while True:
        page = await service.list_sessions(app_name="a", user_id="u", limit=3, cursor=cursor)
        assert all(s.events == [] for s in page.sessions)
        seen.extend(s.id for s in page.sessions)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ["s2", "s6", "s5", "s4", "s3", "s1", "s0"]

    everyone = await service.list_sessions(app_name="a")
    assert {s.id for s in everyone.sessions} == {*ids, "o"}
    assert everyone.next_cursor is None


async def test_list_sessions_equal_timestamps_paginate_without_loss(
    service: SessionService,
) -> None:
    # The clock does not move: every session has the same updated_at, so the cursor
    # must break ties (by insertion order) or pages would repeat or skip sessions.
    for i in range(10):
        await service.create_session(app_name="a", user_id="u", session_id=f"s{i}")
    seen = []
    cursor = None
    while True:
        page = await service.list_sessions(app_name="a", user_id="u", limit=4, cursor=cursor)
        seen.extend(s.id for s in page.sessions)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(f"s{i}" for i in range(10))
    assert len(seen) == 10


async def test_list_sessions_includes_state(service: SessionService) -> None:
    await service.create_session(
        app_name="a", user_id="u", session_id="s", state={"k": 1, "app:g": 2, "user:p": 3}
    )
    page = await service.list_sessions(app_name="a", user_id="u")
    assert page.sessions[0].state == {"k": 1, "app:g": 2, "user:p": 3}


@pytest.mark.parametrize("cursor", ["garbage!", "WzEsIDJd_bad", "e30"])
async def test_list_sessions_rejects_bad_cursor(service: SessionService, cursor: str) -> None:
    with pytest.raises(InvalidInputError):
        await service.list_sessions(app_name="a", cursor=cursor)


@pytest.mark.parametrize("limit", [0, -1, 10_001, True, 2.5])
async def test_list_sessions_rejects_bad_limit(service: SessionService, limit: object) -> None:
    with pytest.raises(InvalidInputError, match="limit"):
        await service.list_sessions(app_name="a", limit=limit)  # type: ignore[arg-type]


async def test_delete_session(service: SessionService) -> None:
    session = await service.create_session(app_name="a", user_id="u", session_id="s")
    await service.append_event(session, Event(author="user", content="x", state_delta={"k": 1}))
    assert await service.delete_session(app_name="a", user_id="u", session_id="s") is True
    assert await service.get_session(app_name="a", user_id="u", session_id="s") is None
    assert await service.delete_session(app_name="a", user_id="u", session_id="s") is False
    # The id can be used again, and nothing of the old session comes back.
    fresh = await service.create_session(app_name="a", user_id="u", session_id="s")
    assert fresh.events == [] and fresh.state == {}


@pytest.mark.parametrize(
    ("field", "value"),
    [("app_name", ""), ("user_id", ""), ("session_id", ""), ("app_name", 3), ("user_id", None)],
)
async def test_bad_identifiers_rejected(service: SessionService, field: str, value: object) -> None:
    kwargs: dict[str, object] = {"app_name": "a", "user_id": "u", "session_id": "s"}
    kwargs[field] = value
    with pytest.raises(InvalidInputError, match=field):
        await service.create_session(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=field):
        await service.get_session(**kwargs)  # type: ignore[arg-type]


async def test_ids_with_quotes_and_sql_round_trip(service: SessionService) -> None:
    weird = "x'); DROP TABLE sessions; --\"\u00e9\U0001f600"
    await service.create_session(app_name=weird, user_id=weird, session_id=weird)
    got = await service.get_session(app_name=weird, user_id=weird, session_id=weird)
    assert got is not None and got.id == weird


async def test_bad_state_and_metadata_rejected(service: SessionService) -> None:
    with pytest.raises(InvalidInputError, match="state"):
        await service.create_session(app_name="a", user_id="u", state={"k": {1, 2}})
    with pytest.raises(InvalidInputError, match="metadata"):
        await service.create_session(app_name="a", user_id="u", metadata={"k": float("nan")})
    assert (await service.list_sessions(app_name="a")).sessions == []


async def test_clock_drives_timestamps(service: SessionService, clock: ManualClock) -> None:
    session = await service.create_session(app_name="a", user_id="u")
    clock.advance(timedelta(hours=1))
    await service.append_event(session, Event(author="user", content="later"))
    assert session.updated_at == clock.now
    got = await service.get_session(app_name="a", user_id="u", session_id=session.id)
    assert got is not None and got.updated_at == clock.now
    assert got.created_at == clock.now - timedelta(hours=1)
