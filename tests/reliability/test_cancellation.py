"""Cancellation storms: callers cancelled at random points lose all of a call or none."""

from __future__ import annotations

import random
from collections.abc import Callable

import anyio
import anyio.lowlevel
import pytest

from sessionlite import Event, SessionService

Factory = Callable[..., SessionService]
CALLS = 300


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_cancelled_appends_are_all_or_nothing(make_service: Factory, seed: int) -> None:
    rng = random.Random(seed)
    async with make_service(event_limit=None, persist_queue_size=16) as service:
        sessions = [
            await service.create_session(app_name="a", user_id="u", session_id=f"s{i}")
            for i in range(5)
        ]
        calls: dict[int, list[str]] = {}
        scopes: list[anyio.CancelScope] = []

        async def caller(call: int, scope: anyio.CancelScope) -> None:
            session = sessions[call % len(sessions)]
            size = 1 + call % 3
            events = [
                Event(id=f"c{call}-{j}", author="u", state_delta={"last": call})
                for j in range(size)
            ]
            calls[call] = [e.id for e in events]
            with scope:
                if size == 1:
                    await service.append_event(session, events[0])
                else:
                    await service.append_events(session, events)

        async def killer(scope: anyio.CancelScope, delay: int) -> None:
            # Cancel the call after `delay` passes of the event loop: before it is
            # submitted, while queued, while its transaction runs...
            for _ in range(delay):
                await anyio.lowlevel.checkpoint()
            scope.cancel()

        async with anyio.create_task_group() as tg:
            for call in range(CALLS):
                scope = anyio.CancelScope()
                scopes.append(scope)
                tg.start_soon(caller, call, scope)
                if rng.random() < 0.7:
                    tg.start_soon(killer, scope, rng.randint(0, 8))
        await service.flush()

        stored: set[str] = set()
        for session in sessions:
            got = await service.get_session(app_name="a", user_id="u", session_id=session.id)
            assert got is not None
            ids = [e.id for e in got.events]
            assert len(ids) == len(set(ids))
            assert [e.sequence for e in got.events] == sorted(e.sequence or 0 for e in got.events)
            stored.update(ids)
            if got.events:  # no half-applied delta: state matches the newest event's call
                assert got.state["last"] == got.events[-1].state_delta["last"]
        for call, ids in calls.items():
            present = [event_id in stored for event_id in ids]
            assert all(present) or not any(present), f"call {call} half-written: {present}"
        # The storm really hit: callers saw their call cancelled. Durable calls are
        # cancelled only while waiting for their commit (they land whole); with
        # async_persist some are cancelled while waiting for queue room (absent whole).
        assert any(scope.cancelled_caught for scope in scopes)
        completed = sum(all(i in stored for i in ids) for ids in calls.values())
        assert completed > 0
        if service.options.async_persist:
            assert completed < CALLS
        # The service is still usable.
        after = await service.append_event(sessions[0], Event(author="u", content="after"))
        await service.flush()
        assert after.sequence is not None
