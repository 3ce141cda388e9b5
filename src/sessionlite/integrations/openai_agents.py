"""OpenAI Agents SDK: a ``Session`` (conversation memory) backed by sessionlite.

A drop-in replacement for the SDK's ``SQLiteSession``; switching is one line::

    from sessionlite.integrations.openai_agents import SessionliteSession

    # session = SQLiteSession("conversation-1", "conversations.db")
    session = SessionliteSession("conversation-1", "conversations.db")
    result = Runner.run_sync(agent, "Hello", session=session)
    session.close()

Given a path (or ``":memory:"``, the default) the session owns a
:class:`~sessionlite.SessionService`: opened on first use, closed by
:meth:`SessionliteSession.close`. Given an open ``SessionService`` it shares it (one
service serves any number of conversations) and leaves closing it to you::

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

Compaction: the SDK's ``OpenAIResponsesCompactionSession`` wraps a ``SessionliteSession``
as it wraps any ``Session``; it compacts (after a turn, or by ``run_compaction()``) and
honours ``max_rollback_items``. It replaces the history through the SDK's atomic-replace
hook (``_atomic_replace_items``, as for its own Redis store), which this class implements
with one sessionlite transaction: no reader ever sees an empty or partial conversation.
The how-to (``docs/howto/openai-agents.md``) has the details.

Importing this module does not import the SDK (making a session does, for its
``SessionSettings``). It implements the SDK's ``Session`` protocol structurally, so
``isinstance(session, agents.memory.Session)`` holds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

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


class _DefaultDb(str):
    """The default ``db``: ``":memory:"``, told apart from one passed explicitly."""

    __slots__ = ()


_MEMORY: Final = _DefaultDb(":memory:")


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
    """The SDK's ``Session`` protocol on sessionlite: a drop-in for ``SQLiteSession``.

    Switching from the SDK's ``SQLiteSession`` is one line::

        # session = SQLiteSession("conversation-1", "conversations.db")
        session = SessionliteSession("conversation-1", "conversations.db")
        result = Runner.run_sync(agent, "Hello", session=session)
        session.close()

    Args:
        session_id: the conversation's id (the sessionlite session id).
        db: a database, as :class:`~sessionlite.SessionService` takes it (a file path
            or ``":memory:"``): the session then owns a ``SessionService(db)``, opened
            on first use and closed by :meth:`close` (or :meth:`aclose`). Or a
            ``SessionService`` to share: you own it, open and close it; :meth:`close`
            leaves it alone.
        app_name: the sessionlite app the conversation belongs to.
        user_id: the sessionlite user it belongs to.
        session_settings: the SDK's ``SessionSettings``, or a dict of them;
            ``SessionSettings()`` when ``None``. ``session_settings.limit`` is the
            default of :meth:`get_items`.
        service: the former name of ``db`` for a shared service; pass one or the other.

    Attributes:
        service: the :class:`~sessionlite.SessionService` used (owned or shared).

    Raises:
        TypeError: both ``db`` and ``service`` were given, or ``session_settings`` is not
            valid (an unknown key, say), with the SDK's own message.
        InvalidInputError: ``db`` is not a database path.

    The sessionlite session is created by the first :meth:`add_items`.
    """

    session_settings: SessionSettings | None

    def __init__(
        self,
        session_id: str,
        db: str | os.PathLike[str] | SessionService = _MEMORY,
        *,
        app_name: str = DEFAULT_APP_NAME,
        user_id: str = DEFAULT_USER_ID,
        session_settings: SessionSettings | dict[str, Any] | None = None,
        service: SessionService | None = None,
    ) -> None:
        from agents.memory.session_settings import SessionSettings, coerce_session_settings

        if service is not None:
            if db is not _MEMORY:
                raise TypeError("SessionliteSession() takes db or service, not both")
            db = service
        # As SQLiteSession does: the SDK's own coercion, so its errors too.
        settings = (
            coerce_session_settings(session_settings)
            if session_settings is not None
            else SessionSettings()
        )
        self.session_id = session_id
        self.app_name = app_name
        self.user_id = user_id
        self.session_settings = settings
        self._owns_service = not isinstance(db, SessionService)
        if isinstance(db, SessionService):
            self.service = db
        else:
            self.service = SessionService(":memory:" if db is _MEMORY else db)
        self._closed = False
        self._created = False

    def __repr__(self) -> str:
        where = "owned" if self._owns_service else "shared"
        if self._closed:
            where += ", closed"
        return (
            f"<SessionliteSession {self.session_id!r} app={self.app_name!r} "
            f"user={self.user_id!r} db={_display(self.service.path)!r} ({where})>"
        )

    def close(self) -> None:
        """Close the session's own service; idempotent. Synchronous, as ``SQLiteSession``'s.

        Waits until the service has finished its accepted work and closed the database.
        With a shared service this does nothing: the service's owner closes it.
        """
        if not self._owns_service or self._closed:
            return
        self._closed = True
        self.service._close_blocking()

    async def aclose(self) -> None:
        """:meth:`close` for async code: awaits the service's ``aclose()``."""
        if not self._owns_service or self._closed:
            return
        self._closed = True
        await self.service.aclose()

    async def _open(self) -> SessionService:
        """The service, open: an owned one is opened by the first call."""
        if self._owns_service:
            if self._closed:
                raise ServiceClosedError("the SessionliteSession is closed")
            await self.service._ensure_open()
        return self.service

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
        service = await self._open()
        session = await service.get_session(
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
        service = await self._open()
        if service.closed:
            raise ServiceClosedError("the SessionService is closed")
        if not items:
            return
        events = [item_to_event(item) for item in items]
        if not self._created:
            # Before the first append, not on SessionNotFoundError only: with
            # async_persist an append to a missing session fails in the background.
            await self._create()
        try:
            await service.append_events(self._shell(), events)
        except SessionNotFoundError:  # deleted since (by someone else)
            await self._create()
            await service.append_events(self._shell(), events)

    async def _atomic_replace_items(self, items: list[TResponseInputItem]) -> bool:
        """Replace the whole history in one transaction (the SDK's compaction hook).

        ``OpenAIResponsesCompactionSession`` calls this instead of ``clear_session()``
        then ``add_items()``, so no reader (another object, process or the CLI) ever
        sees an empty or partial history, and an exit leaves the old or the new one.
        Returns False for subclasses, which may transform items (as the SDK's own
        stores do), so the SDK falls back to clear-then-add through their methods.
        """
        if type(self) is not SessionliteSession:
            return False
        service = await self._open()
        events = [item_to_event(item) for item in items]
        if not self._created:
            await self._create()
        try:
            await service._replace_events(self._shell(), events)
        except SessionNotFoundError:  # deleted since (by someone else)
            await self._create()
            await service._replace_events(self._shell(), events)
        return True

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
        service = await self._open()
        try:
            event = await service.pop_event(self._shell())
        except SessionNotFoundError:
            return None
        if event is None:
            return None
        item: TResponseInputItem = event_to_item(event)
        return item

    async def clear_session(self) -> None:
        """Remove every item; the sessionlite session (and its state) stays."""
        service = await self._open()
        try:
            await service.clear_events(self._shell())
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


def _display(path: str) -> str:
    """``path`` for a repr: a URL's password masked."""
    if "://" not in path:
        return path
    parts = urlsplit(path)
    if parts.password is None:
        return path
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()
