"""Conformance: append_event / get_session hooks (middleware) in every mode."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from sessionlite import (
    AppendContext,
    Event,
    GetSessionContext,
    InvalidInputError,
    Session,
    SessionService,
)

MakeService = Callable[..., SessionService]
NextEvent = Callable[[], Awaitable[Event]]
NextSession = Callable[[], Awaitable["Session | None"]]
AppendHook = Callable[[AppendContext, NextEvent], Awaitable[Event]]
APP, USER = "app", "u"


async def new_session(service: SessionService, sid: str = "s") -> Session:
    return await service.create_session(app_name=APP, user_id=USER, session_id=sid)


async def reload(service: SessionService, sid: str = "s") -> Session:
    got = await service.get_session(app_name=APP, user_id=USER, session_id=sid)
    assert got is not None
    return got


async def stored_events(service: SessionService, sid: str = "s") -> list[Event]:
    """Every stored event, read without going through get_session (and its hooks)."""
    return [e async for e in service.iter_events(app_name=APP, user_id=USER, session_id=sid)]


# -- append_event hooks -----------------------------------------------------------------


async def test_hooks_run_in_registration_order(make_service: MakeService) -> None:
    log: list[str] = []

    def tagging(name: str) -> AppendHook:
        async def hook(ctx: AppendContext, call_next: NextEvent) -> Event:
            log.append(f"{name}:enter")
            ctx.event = ctx.event.model_copy(update={"content": f"{ctx.event.content}>{name}"})
            result = await call_next()
            log.append(f"{name}:exit")
            return result

        return hook

    hooks = [tagging("outer"), tagging("inner")]
    async with make_service(append_event_hooks=hooks) as service:
        session = await new_session(service)
        result = await service.append_event(session, Event(author="user", content="hi"))
        assert log == ["outer:enter", "inner:enter", "inner:exit", "outer:exit"]
        assert result.content == "hi>outer>inner"  # each hook saw ctx as the last left it
        got = await reload(service)
        assert [(e.id, e.content) for e in got.events] == [(result.id, "hi>outer>inner")]


async def test_hook_redacts_event(make_service: MakeService) -> None:
    async def redact(ctx: AppendContext, call_next: NextEvent) -> Event:
        ctx.event = ctx.event.model_copy(update={"content": "[redacted]"})
        return await call_next()

    async with make_service(append_event_hooks=[redact]) as service:
        session = await new_session(service)
        original = Event(author="user", content="my password is hunter2", state_delta={"k": 1})
        result = await service.append_event(session, original)
        assert result.content == "[redacted]" and result.id == original.id
        assert original.content == "my password is hunter2"  # the caller's object is kept
        assert [e.content for e in session.events] == ["[redacted]"]
        got = await reload(service)
        assert [(e.id, e.content) for e in got.events] == [(original.id, "[redacted]")]
        assert got.state == {"k": 1}


async def test_hook_skips_write(make_service: MakeService) -> None:
    placeholder = Event(author="system", content="dropped by policy")

    async def drop(ctx: AppendContext, call_next: NextEvent) -> Event:
        return placeholder

    async with make_service(append_event_hooks=[drop]) as service:
        session = await new_session(service)
        event = Event(author="user", content="hi", state_delta={"k": 1})
        assert await service.append_event(session, event) is placeholder
        await service.flush()
        assert session.events == [] and session.version == 0
        got = await reload(service)
        assert got.events == [] and got.state == {} and got.version == 0
        assert service.stats().events_accepted == 0


async def test_hook_error_propagates_and_nothing_is_written(make_service: MakeService) -> None:
    seen: list[BaseException] = []

    async def outer(ctx: AppendContext, call_next: NextEvent) -> Event:
        try:
            return await call_next()
        except PermissionError as exc:
            seen.append(exc)
            raise

    async def deny(ctx: AppendContext, call_next: NextEvent) -> Event:
        raise PermissionError("denied")

    async with make_service(append_event_hooks=[outer, deny]) as service:
        session = await new_session(service)
        with pytest.raises(PermissionError, match="denied"):
            await service.append_event(session, Event(author="user", state_delta={"k": 1}))
        assert len(seen) == 1
        await service.flush()
        assert session.events == [] and "k" not in session.state
        got = await reload(service)
        assert got.events == [] and got.state == {} and got.version == 0


async def test_hook_sees_session_and_service(make_service: MakeService) -> None:
    seen: list[AppendContext] = []

    async def spy(ctx: AppendContext, call_next: NextEvent) -> Event:
        seen.append(ctx)
        return await call_next()

    async with make_service(append_event_hooks=[spy]) as service:
        session = await new_session(service)
        event = Event(author="user")
        await service.append_event(session, event, expected_version=0)
        (ctx,) = seen
        assert ctx.service is service and ctx.session is session
        assert ctx.event is event and ctx.expected_version == 0
        await service.append_events(session, [Event(author="a"), Event(author="b")])
        assert [c.session for c in seen[1:]] == [session, session]
        assert all(c.service is service for c in seen)


# -- append_events with hooks -----------------------------------------------------------


async def test_append_events_runs_hooks_per_event(make_service: MakeService) -> None:
    calls: list[str] = []

    async def filter_and_tag(ctx: AppendContext, call_next: NextEvent) -> Event:
        calls.append(ctx.event.id)
        if ctx.event.metadata.get("skip"):
            return ctx.event
        ctx.event = ctx.event.model_copy(update={"metadata": {"tagged": True}})
        return await call_next()

    async with make_service(append_event_hooks=[filter_and_tag]) as service:
        session = await new_session(service)
        keep1, drop, keep2 = (
            Event(author="user", content=1),
            Event(author="user", content=2, metadata={"skip": True}, state_delta={"x": 1}),
            Event(author="user", content=3),
        )
        result = await service.append_events(session, [keep1, drop, keep2])
        assert calls == [keep1.id, drop.id, keep2.id]
        assert [e.id for e in result] == [keep1.id, keep2.id]
        assert [e.id for e in session.events] == [keep1.id, keep2.id]
        got = await reload(service)
        assert [(e.id, e.sequence) for e in got.events] == [(keep1.id, 1), (keep2.id, 2)]
        assert all(e.metadata == {"tagged": True} for e in got.events)
        assert got.version == 1  # stored together: one write
        assert "x" not in got.state


async def test_append_events_hook_error_stores_none(make_service: MakeService) -> None:
    async def reject_third(ctx: AppendContext, call_next: NextEvent) -> Event:
        if ctx.event.content == 3:
            raise ValueError("no threes")
        return await call_next()

    async with make_service(append_event_hooks=[reject_third]) as service:
        session = await new_session(service)
        events = [Event(author="user", content=i) for i in (1, 2, 3)]
        with pytest.raises(ValueError, match="no threes"):
            await service.append_events(session, events)
        await service.flush()
        assert session.events == []
        got = await reload(service)
        assert got.events == [] and got.version == 0


# -- get_session hooks ------------------------------------------------------------------


async def test_get_session_hook_changes_query(make_service: MakeService) -> None:
    seen: list[GetSessionContext] = []

    async def last_two(ctx: GetSessionContext, call_next: NextSession) -> Session | None:
        seen.append(ctx)
        ctx.num_recent_events = 2
        return await call_next()

    async with make_service(get_session_hooks=[last_two]) as service:
        session = await new_session(service)
        await service.append_events(session, [Event(author="user", content=i) for i in range(5)])
        got = await service.get_session(
            app_name=APP, user_id=USER, session_id="s", num_recent_events=4
        )
        assert got is not None
        assert [e.content for e in got.events] == [3, 4]
        (ctx,) = seen
        assert ctx.service is service
        assert (ctx.app_name, ctx.user_id, ctx.session_id) == (APP, USER, "s")
        assert len(await stored_events(service)) == 5  # the hook changed a read only


async def test_get_session_hook_short_circuits(make_service: MakeService) -> None:
    async def hide_secret(ctx: GetSessionContext, call_next: NextSession) -> Session | None:
        if ctx.session_id == "secret":
            return None
        return await call_next()

    async with make_service(get_session_hooks=[hide_secret]) as service:
        await new_session(service, "secret")
        await new_session(service, "open")
        assert await service.get_session(app_name=APP, user_id=USER, session_id="secret") is None
        shown = await service.get_session(app_name=APP, user_id=USER, session_id="open")
        assert shown is not None and shown.id == "open"
        page = await service.list_sessions(app_name=APP, user_id=USER)
        assert sorted(s.id for s in page.sessions) == ["open", "secret"]  # still stored


# -- options ----------------------------------------------------------------------------


async def _noop(ctx: Any, call_next: Callable[[], Awaitable[Any]]) -> Any:
    return await call_next()


@pytest.mark.parametrize("option", ["append_event_hooks", "get_session_hooks"])
@pytest.mark.parametrize("value", ["not a list", _noop, [_noop, 42], ["hook"]])
def test_bad_hook_options_are_rejected(option: str, value: object) -> None:
    with pytest.raises(InvalidInputError, match=option) as info:
        SessionService(":memory:", **{option: value})
    assert info.value.field == option
