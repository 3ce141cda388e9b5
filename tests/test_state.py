"""Conformance: state scopes (app:, user:, temp:, session) and the direct calls."""

from __future__ import annotations

import pytest

from sessionlite import Event, InvalidInputError, SessionNotFoundError, SessionService
from sessionlite.state import NO_DELTA, encode_delta, merged_view, split_delta


def test_split_delta_pure() -> None:
    scoped = split_delta({"app:a": 1, "user:u": 2, "temp:t": 3, "s": 4, "apple": 5})
    assert scoped.app == {"a": 1}
    assert scoped.user == {"u": 2}
    assert scoped.temp == {"temp:t": 3}
    assert scoped.session == {"s": 4, "apple": 5}
    assert encode_delta({"app:a": 1, "user:u": [2], "temp:t": 3, "s": "4"}) == (
        [("s", '"4"')],
        [("a", "1")],
        [("u", "[2]")],
    )
    assert encode_delta({"temp:x": 1}) == ([], [], [])  # temp: keys are never stored
    assert encode_delta({}) is NO_DELTA
    assert merged_view({"s": 1}, {"a": 2}, {"u": 3}) == {"s": 1, "app:a": 2, "user:u": 3}


async def test_scopes_are_shared_as_documented(service: SessionService) -> None:
    s1 = await service.create_session(app_name="app", user_id="alice", session_id="s1")
    s2 = await service.create_session(app_name="app", user_id="alice", session_id="s2")
    bob = await service.create_session(app_name="app", user_id="bob", session_id="b1")
    other = await service.create_session(app_name="other", user_id="alice", session_id="o1")
    await service.append_event(
        s1,
        Event(
            author="tool",
            state_delta={"app:model": "m1", "user:lang": "fr", "temp:scratch": 1, "step": 3},
        ),
    )
    await service.flush()  # async_persist: other sessions see what was written
    got2 = await service.get_session(app_name="app", user_id="alice", session_id="s2")
    assert got2 is not None and got2.state == {"app:model": "m1", "user:lang": "fr"}
    got_bob = await service.get_session(app_name="app", user_id="bob", session_id="b1")
    assert got_bob is not None and got_bob.state == {"app:model": "m1"}
    got_other = await service.get_session(app_name="other", user_id="alice", session_id="o1")
    assert got_other is not None and got_other.state == {}
    assert await service.get_app_state("app") == {"model": "m1"}
    assert await service.get_user_state("app", "alice") == {"lang": "fr"}
    assert await service.get_user_state(app_name="app", user_id="bob") == {}
    del s2, bob, other


async def test_deltas_merge_key_by_key(service: SessionService) -> None:
    session = await service.create_session(
        app_name="a", user_id="u", state={"keep": 1, "change": 1, "user:p": {"x": 1}}
    )
    await service.append_event(
        session, Event(author="u", state_delta={"change": 2, "new": None, "user:q": 5})
    )
    await service.append_event(session, Event(author="u", state_delta={"change": 3}))
    got = await service.get_session(app_name="a", user_id="u", session_id=session.id)
    assert got is not None
    assert got.state == {"keep": 1, "change": 3, "new": None, "user:p": {"x": 1}, "user:q": 5}
    assert session.state == got.state


async def test_create_session_state_scopes(service: SessionService) -> None:
    created = await service.create_session(
        app_name="a", user_id="u", state={"s": 1, "app:g": 2, "user:p": 3, "temp:t": 4}
    )
    assert created.state == {"s": 1, "app:g": 2, "user:p": 3, "temp:t": 4}
    got = await service.get_session(app_name="a", user_id="u", session_id=created.id)
    assert got is not None and got.state == {"s": 1, "app:g": 2, "user:p": 3}


async def test_direct_app_and_user_state(service: SessionService) -> None:
    await service.update_app_state("app", {"a": 1, "b": [1, 2]})
    await service.update_app_state(app_name="app", delta={"a": 2})
    assert await service.get_app_state("app") == {"a": 2, "b": [1, 2]}
    assert await service.delete_app_state("app", "a") is True
    assert await service.delete_app_state("app", "a") is False
    assert await service.get_app_state(app_name="app") == {"b": [1, 2]}

    await service.update_user_state("app", "u", {"x": {"deep": True}})
    assert await service.get_user_state("app", "u") == {"x": {"deep": True}}
    assert await service.delete_user_state("app", "u", "x") is True
    assert await service.delete_user_state(app_name="app", user_id="u", key="x") is False
    assert await service.get_user_state("app", "u") == {}

    session = await service.create_session(app_name="app", user_id="u")
    await service.update_app_state("app", {"seen": True})
    got = await service.get_session(app_name="app", user_id="u", session_id=session.id)
    assert got is not None and got.state["app:seen"] is True


async def test_update_session_state(service: SessionService) -> None:
    session = await service.create_session(app_name="a", user_id="u", state={"k": 1})
    await service.update_session_state(
        app_name="a", user_id="u", session_id=session.id, delta={"k": 2, "n": "x"}
    )
    got = await service.get_session(app_name="a", user_id="u", session_id=session.id)
    assert got is not None and got.state == {"k": 2, "n": "x"} and got.version == 1
    for bad_key in ("app:x", "user:x", "temp:x"):
        with pytest.raises(InvalidInputError, match="prefix"):
            await service.update_session_state(
                app_name="a", user_id="u", session_id=session.id, delta={bad_key: 1}
            )
    with pytest.raises(SessionNotFoundError):
        await service.update_session_state(
            app_name="a", user_id="u", session_id="missing", delta={"k": 1}
        )


async def test_direct_state_rejects_bad_input(service: SessionService) -> None:
    with pytest.raises(InvalidInputError):
        await service.update_app_state("app", {"k": {1, 2}})
    with pytest.raises(InvalidInputError):
        await service.update_app_state("app", ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        await service.update_user_state("", "u", {"k": 1})
    with pytest.raises(InvalidInputError, match="prefix"):
        await service.update_user_state("app", "u", {"user:k": 1})
    assert await service.get_app_state("app") == {}


@pytest.mark.parametrize("bare", ["app:", "user:", "temp:"])
async def test_a_scope_prefix_without_a_key_is_refused_everywhere(
    service: SessionService, bare: str
) -> None:
    with pytest.raises(InvalidInputError, match="scope prefix without a key"):
        await service.create_session(app_name="a", user_id="u", session_id="s", state={bare: 1})
    assert await service.get_session(app_name="a", user_id="u", session_id="s") is None
    session = await service.create_session(app_name="a", user_id="u", session_id="s")
    with pytest.raises(InvalidInputError, match="scope prefix without a key"):
        await service.append_event(session, Event(author="u", state_delta={"ok": 1, bare: 1}))
    with pytest.raises(InvalidInputError, match="scope prefix without a key"):
        await service.append_events(session, [Event(author="u", state_delta={bare: 1})])
    await service.flush()
    got = await service.get_session(app_name="a", user_id="u", session_id="s")
    assert got is not None and got.events == [] and got.state == {} and got.version == 0
    assert session.state == {} and session.version == 0


async def test_an_empty_app_or_user_key_is_refused(service: SessionService) -> None:
    with pytest.raises(InvalidInputError, match="must not be empty"):
        await service.update_app_state("a", {"": 1})
    with pytest.raises(InvalidInputError, match="must not be empty"):
        await service.update_user_state("a", "u", {"k": 1, "": 2})
    assert await service.get_app_state("a") == {}
    assert await service.get_user_state("a", "u") == {}
