"""Text every backend can store: the same input gets the same answer on each.

PostgreSQL's text type cannot hold a NUL character; SQLite's can. So a NUL is refused
(InvalidInputError, nothing written) wherever it would be stored as text — ids, names,
authors, branches, state keys, summary texts — on every backend, while inside JSON
values (content, state values, metadata) it is stored escaped and round-trips exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sessionlite import Event, InvalidInputError, SessionService
from sessionlite.testing import FakeSummarizer

Factory = Callable[..., SessionService]
NUL = "a\x00b"


async def test_nul_inside_json_values_round_trips(service: SessionService) -> None:
    session = await service.create_session(
        app_name="a", user_id="u", session_id="s", state={"k": NUL}, metadata={"m": NUL}
    )
    await service.append_event(
        session,
        Event(author="u", content={"text": NUL, NUL: [NUL]}, state_delta={"v": NUL}),
    )
    await service.flush()
    got = await service.get_session(app_name="a", user_id="u", session_id="s")
    assert got is not None
    assert got.events[0].content == {"text": NUL, NUL: [NUL]}
    assert got.state == {"k": NUL, "v": NUL}
    assert got.metadata == {"m": NUL}


@pytest.mark.parametrize(
    "call",
    [
        {"app_name": NUL},
        {"user_id": NUL},
        {"session_id": NUL},
        {"agent_id": NUL},
        {"state": {NUL: 1}},
        {"state": {"app:" + NUL: 1}},
    ],
    ids=["app_name", "user_id", "session_id", "agent_id", "state-key", "app-state-key"],
)
async def test_nul_in_a_stored_name_is_refused(
    service: SessionService, call: dict[str, Any]
) -> None:
    arguments = {"app_name": "a", "user_id": "u", "session_id": "s", **call}
    with pytest.raises(InvalidInputError, match="NUL"):
        await service.create_session(**arguments)
    assert (await service.list_sessions(app_name="a")).sessions == []


@pytest.mark.parametrize(
    "event",
    [
        {"author": NUL},
        {"branch": NUL},
        {"id": NUL},
        {"state_delta": {NUL: 1}},
        {"state_delta": {"user:" + NUL: 1}},
    ],
    ids=["author", "branch", "id", "delta-key", "user-delta-key"],
)
async def test_nul_in_an_event_field_is_refused(
    service: SessionService, event: dict[str, Any]
) -> None:
    session = await service.create_session(app_name="a", user_id="u", session_id="s")
    with pytest.raises(InvalidInputError, match="NUL"):
        await service.append_event(session, Event(**{"author": "u", **event}))
    await service.flush()
    got = await service.get_session(app_name="a", user_id="u", session_id="s")
    assert got is not None
    assert got.events == []
    assert got.version == 0


async def test_nul_in_direct_state_keys_is_refused(service: SessionService) -> None:
    session = await service.create_session(app_name="a", user_id="u", session_id="s")
    with pytest.raises(InvalidInputError, match="NUL"):
        await service.update_app_state("a", {NUL: 1})
    with pytest.raises(InvalidInputError, match="NUL"):
        await service.update_user_state("a", "u", {NUL: 1})
    with pytest.raises(InvalidInputError, match="NUL"):
        await service.update_session_state(
            app_name="a", user_id="u", session_id=session.id, delta={NUL: 1}
        )
    assert await service.get_app_state("a") == {}
    assert await service.get_user_state("a", "u") == {}


async def test_a_summary_text_with_nul_is_refused(make_service: Factory) -> None:
    async with make_service(summarizer=FakeSummarizer(result=NUL)) as service:
        session = await service.create_session(app_name="a", user_id="u", session_id="s")
        await service.append_event(session, Event(author="u", content="hi"))
        with pytest.raises(InvalidInputError, match="NUL"):
            await service.summarize(session)
        assert await service.get_summary(app_name="a", user_id="u", session_id="s") is None
