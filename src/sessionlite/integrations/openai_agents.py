"""OpenAI Agents SDK: a ``Session`` (conversation memory) backed by sessionlite.

Use it wherever the SDK takes a session::

    from sessionlite.integrations.openai_agents import SessionliteSession

    async with SessionService("sessions.db") as service:
        session = SessionliteSession("conversation-1", service)
        result = await Runner.run(agent, "Hello", session=session)

Mapping: the SDK's ``session_id`` is the sessionlite session id, under
``app_name="openai-agents"`` and ``user_id="default"`` unless you pass others (so a
user's conversations can be listed with ``service.list_sessions(app_name=...,
user_id=...)``). Each item is one sessionlite :class:`~sessionlite.Event` whose
``content`` is the item itself, so items come back exactly as they were added; the
event's ``author`` is the item's ``role``, or ``"tool"`` for tool outputs and
``"assistant"`` for other model items (tool calls, reasoning).

This module does not import the SDK: it implements the SDK's ``Session`` protocol
structurally, so ``isinstance(session, agents.memory.Session)`` holds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import ServiceClosedError, SessionExistsError, SessionNotFoundError
from ..models import JSON, Event, Session, new_id, utc_now
from ..service import SessionService

if TYPE_CHECKING:
    from agents.items import TResponseInputItem
    from agents.memory.session_settings import SessionSettings

__all__ = [
    "DEFAULT_APP_NAME",
    "DEFAULT_USER_ID",
    "OPENAI_ITEM_FORMAT",
    "SessionliteSession",
    "event_to_item",
    "item_to_event",
]

DEFAULT_APP_NAME = "openai-agents"
"""The sessionlite ``app_name`` of SDK sessions unless told otherwise."""
DEFAULT_USER_ID = "default"
"""The sessionlite ``user_id`` of SDK sessions unless told otherwise."""
OPENAI_ITEM_FORMAT = "openai-agents-item"
"""``Event.metadata["format"]`` of the events that store SDK items."""

_FORMAT_KEY = "format"
_ALL_EVENTS = 2**63 - 1  # "every event" as a get_session limit (SQLite LIMIT is 64-bit)


def item_to_event(
    item: Any,
    *,
    event_id: str | None = None,
    timestamp: datetime | None = None,
) -> Event:
    """The sessionlite event that stores one SDK input item (``content`` = the item)."""
    return Event(
        id=new_id() if event_id is None else event_id,
        author=_author(item),
        content=dict(item) if isinstance(item, Mapping) else item,
        metadata={_FORMAT_KEY: OPENAI_ITEM_FORMAT},
        timestamp=utc_now() if timestamp is None else timestamp,
    )


def event_to_item(event: Event) -> Any:
    """The SDK item stored as ``event``.

    Events written by this module give back their item exactly. Other events (appended
    with sessionlite's own API) become easy input messages: ``{"role": "user" |
    "assistant", "content": <text>}``.
    """
    if event.metadata.get(_FORMAT_KEY) == OPENAI_ITEM_FORMAT:
        return event.content
    role = "user" if event.author == "user" else "assistant"
    content = event.content if isinstance(event.content, str) else _text(event.content)
    return {"role": role, "content": content}


def _text(content: JSON) -> str:
    return "" if content is None else json.dumps(content, ensure_ascii=False)


def _author(item: Any) -> str:
    if isinstance(item, Mapping):
        role = item.get("role")
        if isinstance(role, str) and role:
            return role
        kind = item.get("type")
        if isinstance(kind, str) and kind.endswith("_output"):
            return "tool"
    return "assistant"


class SessionliteSession:
    """The SDK's ``Session`` protocol on a :class:`~sessionlite.SessionService`.

    Args:
        session_id: the conversation's id (the sessionlite session id).
        service: an open service; you open and close it (one serves any number of
            sessions).
        app_name: the sessionlite app the conversation belongs to.
        user_id: the sessionlite user it belongs to.
        session_settings: the SDK's ``SessionSettings`` (or a dict of them);
            ``session_settings.limit`` is the default of :meth:`get_items`.

    The sessionlite session is created by the first :meth:`add_items`.
    """

    session_settings: SessionSettings | None

    def __init__(
        self,
        session_id: str,
        service: SessionService,
        *,
        app_name: str = DEFAULT_APP_NAME,
        user_id: str = DEFAULT_USER_ID,
        session_settings: SessionSettings | dict[str, Any] | None = None,
    ) -> None:
        self.session_id = session_id
        self.service = service
        self.app_name = app_name
        self.user_id = user_id
        if isinstance(session_settings, dict):
            from agents.memory.session_settings import SessionSettings

            session_settings = SessionSettings(**session_settings)
        self.session_settings = session_settings
        self._created = False

    def __repr__(self) -> str:
        return (
            f"<SessionliteSession {self.session_id!r} app={self.app_name!r} user={self.user_id!r}>"
        )

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The conversation's items, oldest first: the latest ``limit`` of them.

        Args:
            limit: how many of the newest items; ``None``: ``session_settings.limit``,
                and all items when that is ``None`` too. A negative limit means all
                (as in the SDK's ``SQLiteSession``).
        """
        if limit is None and self.session_settings is not None:
            limit = self.session_settings.limit
        if limit is None or limit < 0:
            limit = _ALL_EVENTS
        session = await self.service.get_session(
            app_name=self.app_name,
            user_id=self.user_id,
            session_id=self.session_id,
            num_recent_events=limit,
        )
        if session is None:
            return []
        items: list[TResponseInputItem] = [event_to_item(event) for event in session.events]
        return items

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append items, all or none (one transaction)."""
        if self.service.closed:
            raise ServiceClosedError("the SessionService is closed")
        if not items:
            return
        events = [item_to_event(item) for item in items]
        if not self._created:
            # Before the first append, not on SessionNotFoundError only: with
            # async_persist an append to a missing session fails in the background.
            await self._create()
        try:
            await self.service.append_events(self._shell(), events)
        except SessionNotFoundError:  # deleted since (by someone else)
            await self._create()
            await self.service.append_events(self._shell(), events)

    async def _create(self) -> None:
        try:
            await self.service.create_session(
                app_name=self.app_name, user_id=self.user_id, session_id=self.session_id
            )
        except SessionExistsError:
            pass
        self._created = True

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the newest item (None if there is none)."""
        try:
            event = await self.service.pop_event(self._shell())
        except SessionNotFoundError:
            return None
        if event is None:
            return None
        item: TResponseInputItem = event_to_item(event)
        return item

    async def clear_session(self) -> None:
        """Remove every item; the sessionlite session (and its state) stays."""
        try:
            await self.service.clear_events(self._shell())
        except SessionNotFoundError:
            return

    def _shell(self) -> Session:
        # The service needs a Session to append through; a fresh one per call keeps
        # this object from accumulating the events it writes.
        now = utc_now()
        return Session(
            app_name=self.app_name,
            user_id=self.user_id,
            id=self.session_id,
            created_at=now,
            updated_at=now,
        )
