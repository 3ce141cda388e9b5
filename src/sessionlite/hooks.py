"""Middleware around ``append_event`` and ``get_session``.

A hook is ``async def hook(ctx, call_next)``. Hooks run in registration order, the
first outermost. ``await call_next()`` takes no arguments and continues with ``ctx`` as
the hook left it. A hook may:

* replace ``ctx.event`` (e.g. redact it) before calling ``call_next``;
* skip the write by returning without calling ``call_next`` (what it returns is what
  ``append_event`` returns);
* raise: the call fails and nothing is written.

For ``append_events`` the hooks run once per event; ``call_next`` then only admits the
event into the call's batch (it returns the event as admitted), and the admitted events
are stored together, atomically, after every hook ran.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from .models import Event, Session

if TYPE_CHECKING:
    from .service import SessionService

__all__ = ["AppendContext", "AppendHook", "GetSessionContext", "GetSessionHook"]

T = TypeVar("T")


@dataclasses.dataclass
class AppendContext:
    """What an append hook sees (and may change: ``event``, ``expected_version``)."""

    service: SessionService
    session: Session
    event: Event
    expected_version: int | None = None


@dataclasses.dataclass
class GetSessionContext:
    """What a get_session hook sees (and may change before ``call_next``)."""

    service: SessionService
    app_name: str
    user_id: str
    session_id: str
    num_recent_events: int | None = None
    after: datetime | None = None
    branch: str | None = None


AppendHook = Callable[[AppendContext, Callable[[], Awaitable[Event]]], Awaitable[Event]]
GetSessionHook = Callable[
    [GetSessionContext, Callable[[], Awaitable["Session | None"]]], Awaitable["Session | None"]
]


async def run_chain(
    hooks: Sequence[Callable[[Any, Callable[[], Awaitable[T]]], Awaitable[T]]],
    ctx: Any,
    terminal: Callable[[Any], Awaitable[T]],
) -> T:
    """Run ``hooks`` around ``terminal(ctx)``, the first hook outermost."""

    async def call(index: int) -> T:
        if index == len(hooks):
            return await terminal(ctx)
        return await hooks[index](ctx, lambda: call(index + 1))

    return await call(0)
