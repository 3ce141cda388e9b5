"""Google ADK: a ``BaseSessionService`` backed by :class:`~sessionlite.SessionService`.

Use it wherever ADK takes a session service::

    from sessionlite.integrations.adk import SessionliteSessionService

    session_service = SessionliteSessionService("sessions.db")
    runner = Runner(app_name="app", agent=agent, session_service=session_service)
    ...
    await session_service.close()

It behaves as ADK's own persistent services do (``SqliteSessionService``,
``DatabaseSessionService``): ``app:``/``user:``/``temp:`` state scopes, partial events
not stored, ``temp:`` keys trimmed from the stored event, ``AlreadyExistsError``,
``SessionNotFoundError`` and ``StaleSessionError`` where ADK raises them,
``list_sessions`` ordered by last update (oldest first) and without events.

How an ADK event is stored: one sessionlite :class:`~sessionlite.Event` whose
``content`` is the event's JSON exactly as ADK's ``SqliteSessionService`` writes it
(``model_dump_json(exclude_none=True)``), so reading it back with
``Event.model_validate_json`` gives an equal ADK event, field for field. The sessionlite
columns carry what sessionlite itself uses: the same ``id``, ``author``,
``invocation_id``, ``timestamp``, the state delta (without ``temp:`` keys), the branch
(ADK's ``a.b`` as ``a/b``), the model version and the token usage.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from types import TracebackType
from typing import Any

import pydantic_core
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.events.event import Event as AdkEvent
from google.adk.events.event_actions import EventActions
from google.adk.sessions.base_session_service import (
    BaseSessionService,
    GetSessionConfig,
    ListSessionsResponse,
)
from google.adk.sessions.session import Session as AdkSession
from google.genai import types
from pydantic import ValidationError
from typing_extensions import Self, override

from ..config import parse_options
from ..crossloop import CrossLoopLock, KeyedLocks
from ..errors import (
    DatabaseCorruptError,
    EventConflictError,
    InvalidInputError,
    ServiceClosedError,
    SessionExistsError,
    SessionNotFoundError,
    StaleSessionError,
)
from ..models import Event, Session, Usage
from ..service import MAX_LIST_LIMIT, SessionService
from ..state import TEMP_PREFIX

__all__ = [
    "ADK_EVENT_FORMAT",
    "AdkSessionNotFoundError",
    "AdkStaleSessionError",
    "SessionliteSessionService",
    "to_adk_event",
    "to_sessionlite_event",
]

logger = logging.getLogger(__name__)


def _adk_error(module: str, name: str) -> type[ValueError]:
    """One of ADK's errors; ``ValueError``, which ADK raised before, if it has none."""
    try:
        error: type[ValueError] = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):  # pragma: no cover - older ADK releases
        return ValueError
    return error


AdkSessionNotFoundError = _adk_error(
    "google.adk.errors.session_not_found_error", "SessionNotFoundError"
)
"""ADK's ``SessionNotFoundError`` (a ``ValueError``)."""
AdkStaleSessionError = _adk_error("google.adk.errors._stale_session_error", "StaleSessionError")
"""ADK's ``StaleSessionError`` (a ``ValueError``)."""

ADK_EVENT_FORMAT = "google-adk-event"
"""``Event.metadata["format"]`` of the events this module stores."""

_FORMAT_KEY = "format"
# get_session without num_recent_events returns every event in ADK; sessionlite's own
# default is the service's event_limit, so "all" is asked for as a limit no session
# reaches (SQLite's LIMIT takes a 64-bit integer).
_ALL_EVENTS = 2**63 - 1
_MARKER_PREFIX = "sessionlite/"
_STALE_MESSAGE = (
    "The session has been modified in storage since it was loaded. "
    "Please reload the session before appending more events."
)
_HAS_MARKER = "_storage_update_marker" in getattr(AdkSession, "__private_attributes__", {})


# -- events ---------------------------------------------------------------------------


def to_sessionlite_event(event: AdkEvent) -> Event:
    """The sessionlite event that stores ``event`` (``temp:`` state keys left out).

    ``content`` holds the ADK event's JSON (what ADK's ``SqliteSessionService`` stores);
    :func:`to_adk_event` turns it back into an equal ADK event.

    Raises:
        InvalidInputError: the event cannot be serialized to JSON, or its timestamp is
            not a valid POSIX time.
    """
    try:
        data = json.loads(event.model_dump_json(exclude_none=True))
    except (pydantic_core.PydanticSerializationError, ValueError) as exc:
        raise InvalidInputError(
            f"ADK event {event.id!r} cannot be serialized to JSON: {exc}", field="event"
        ) from exc
    actions = data.get("actions")
    delta: dict[str, Any] = {}
    if isinstance(actions, dict) and isinstance(actions.get("state_delta"), dict):
        delta = {k: v for k, v in actions["state_delta"].items() if not k.startswith(TEMP_PREFIX)}
        actions["state_delta"] = delta
    usage = event.usage_metadata
    return Event(
        id=event.id,
        # ADK allows an empty author; sessionlite needs one (the JSON keeps the original).
        author=event.author or "unknown",
        content=data,
        state_delta=dict(delta),
        invocation_id=event.invocation_id or None,
        model=event.model_version,
        usage=None
        if usage is None
        else Usage(
            input_tokens=max(usage.prompt_token_count or 0, 0),
            output_tokens=max(usage.candidates_token_count or 0, 0),
        ),
        metadata={_FORMAT_KEY: ADK_EVENT_FORMAT},
        branch=_to_branch(event.branch),
        timestamp=_to_datetime(event.timestamp, f"event {event.id!r} timestamp"),
    )


def to_adk_event(event: Event) -> AdkEvent:
    """The ADK event stored as ``event``.

    Events written by this module come back equal to what was appended. Other events
    (appended with sessionlite's own API) become plain ADK events: their text (or JSON)
    content as one text part, their state delta as ``actions.state_delta``.

    Raises:
        DatabaseCorruptError: the stored ADK JSON is not a valid ADK event.
    """
    if event.metadata.get(_FORMAT_KEY) == ADK_EVENT_FORMAT and isinstance(event.content, dict):
        try:
            return AdkEvent.model_validate_json(pydantic_core.to_json(event.content))
        except ValidationError as exc:
            raise DatabaseCorruptError(
                f"stored event {event.id!r} is not a valid ADK event: {exc}"
            ) from exc
    return _foreign_event(event)


def _foreign_event(event: Event) -> AdkEvent:
    if event.content is None:
        content = None
    else:
        text = event.content if isinstance(event.content, str) else json.dumps(event.content)
        role = "user" if event.author == "user" else "model"
        content = types.Content(role=role, parts=[types.Part(text=text)])
    return AdkEvent(
        id=event.id,
        author=event.author,
        invocation_id=event.invocation_id or "",
        branch=event.branch.replace("/", ".") or None,
        timestamp=event.timestamp.timestamp(),
        content=content,
        model_version=event.model,
        actions=EventActions(state_delta=dict(event.state_delta)),
    )


def _to_branch(branch: str | None) -> str:
    """ADK's ``root.child`` as sessionlite's ``root/child``.

    Agent names are identifiers, so the mapping is reversible; a branch it cannot
    represent (an empty segment, a ``/``) is stored as ``""`` and kept in the JSON.
    """
    if not branch:
        return ""
    parts = branch.split(".")
    if any(not part or "/" in part for part in parts):
        return ""
    return "/".join(parts)


def _to_datetime(seconds: float, what: str) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, timezone.utc)
    except (OverflowError, OSError, ValueError) as exc:
        raise InvalidInputError(f"{what} {seconds!r} is not a valid POSIX time") from exc


def _after_bound(seconds: float) -> datetime:
    """``after_timestamp`` as the (inclusive) bound of the stored timestamps.

    Stored timestamps are the events' float seconds rounded to the microsecond, and
    rounding is monotonic, so ``stored >= round(after)`` keeps every event with
    ``timestamp >= after``; the few equal after rounding are filtered exactly later.
    """
    try:
        return datetime.fromtimestamp(seconds, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return datetime.max.replace(tzinfo=timezone.utc) if seconds > 0 else _DATETIME_MIN


_DATETIME_MIN = datetime.min.replace(tzinfo=timezone.utc)


# -- state ----------------------------------------------------------------------------


def _json_safe(state: Mapping[str, Any]) -> dict[str, Any]:
    """State as ADK persists it: rich values (datetimes, models) as their JSON form;
    values with none (callables...) as their repr, with a warning, like ADK."""
    try:
        safe: dict[str, Any] = pydantic_core.to_jsonable_python(dict(state))
    except pydantic_core.PydanticSerializationError:
        logger.warning(
            "Failed to serialize session state; values that are not JSON-serializable "
            "are stored as their string representation.",
            exc_info=True,
        )
        safe = pydantic_core.to_jsonable_python(dict(state), serialize_unknown=True)
    return safe


# -- the service ----------------------------------------------------------------------


class SessionliteSessionService(BaseSessionService):
    """An ADK session service that stores sessions with sessionlite.

    Args:
        service: an open :class:`~sessionlite.SessionService` to use (you open and close
            it), or a database path: the service is then created with ``**options``,
            opened on first use and closed by :meth:`close`.
        detect_stale_sessions: check, as ADK's persistent services do, that the session
            object has seen every write to its session before appending to it
            (``StaleSessionError`` otherwise). Each append then waits for its write even
            with ``async_persist=True``; turn it off to let appends return once accepted
            (and :meth:`flush` wait for them).
        **options: :class:`~sessionlite.SessionService` options, with a path only.

    Raises:
        InvalidInputError: a bad option, or options given with a service.
    """

    def __init__(
        self,
        service: SessionService | str | os.PathLike[str],
        *,
        detect_stale_sessions: bool = True,
        **options: Any,
    ) -> None:
        self._service: SessionService | None = None
        self._path: str | os.PathLike[str] | None = None
        self._options: dict[str, Any] = {}
        if isinstance(service, SessionService):
            if options:
                raise InvalidInputError(
                    "options are for a database path; pass them to SessionService(...) "
                    "when giving a service",
                    field=next(iter(options)),
                )
            self._service = service
        else:
            # Checked now, built on first use: a SessionService is built inside an
            # event loop, and ADK services are usually built before one runs.
            parse_options(**options)
            self._path, self._options = service, options
        self._owned = self._service is None
        self._closed = False
        # Cross-loop locks: ADK's sync Runner.run calls from a new loop in a new thread
        # each time (see sessionlite.crossloop).
        self._open_lock = CrossLoopLock()
        self._detect_stale = detect_stale_sessions
        self._locks = KeyedLocks[tuple[str, str, str]]()

    @property
    def service(self) -> SessionService:
        """The underlying :class:`~sessionlite.SessionService`.

        Raises:
            ServiceClosedError: built from a path and not opened yet (see :meth:`open`).
        """
        if self._service is None:
            raise ServiceClosedError(
                "the SessionService is opened on first use; call `await open()` first"
            )
        return self._service

    async def open(self) -> Self:
        """Open the database now (otherwise done on first use)."""
        await self._ready()
        return self

    async def close(self) -> None:
        """Close the service if this object opened it (a given service stays open).

        Raises:
            PersistenceError: with ``async_persist``, accepted events could not be stored.
        """
        if not self._owned:
            return
        async with self._open_lock:
            self._closed = True
            if self._service is not None:
                await self._service.aclose()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _ready(self) -> SessionService:
        if self._service is not None:
            return self._service
        async with self._open_lock:
            if self._closed:
                raise ServiceClosedError("the session service was closed")
            if self._service is None:
                assert self._path is not None
                service = SessionService(self._path, **self._options)
                await service.open()
                self._service = service
        return self._service

    @override
    async def flush(self) -> None:
        """Wait until every accepted event is durable (see ``SessionService.flush``)."""
        if self._service is not None and not self._service.closed:
            await self._service.flush()

    # -- sessions ---------------------------------------------------------------------

    @override
    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> AdkSession:
        service = await self._ready()
        sid = session_id.strip() if session_id else None
        sid = sid or str(uuid.uuid4())
        initial = _json_safe(
            {k: v for k, v in (state or {}).items() if not k.startswith(TEMP_PREFIX)}
        )
        try:
            session = await service.create_session(
                app_name=app_name, user_id=user_id, session_id=sid, state=initial
            )
        except SessionExistsError as exc:
            raise AlreadyExistsError(f"Session with id {sid} already exists.") from exc
        return _to_adk_session(session, [])

    @override
    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> AdkSession | None:
        service = await self._ready()
        limit = None if config is None else config.num_recent_events
        after = None if config is None else config.after_timestamp
        session = await service.get_session(
            app_name=app_name,
            user_id=user_id,
            session_id=session_id.strip(),
            num_recent_events=_ALL_EVENTS if limit is None else limit,
            after=None if after is None else _after_bound(after),
        )
        if session is None:
            return None
        events = [to_adk_event(event) for event in session.events]
        if after is not None:
            events = [event for event in events if event.timestamp >= after]
        return _to_adk_session(session, events)

    @override
    async def list_sessions(
        self, *, app_name: str, user_id: str | None = None
    ) -> ListSessionsResponse:
        """Every session of the app (or of one user), without events, oldest update first."""
        service = await self._ready()
        found: dict[tuple[str, str], AdkSession] = {}
        cursor: str | None = None
        while True:
            page = await service.list_sessions(
                app_name=app_name, user_id=user_id, limit=MAX_LIST_LIMIT, cursor=cursor
            )
            for session in page.sessions:
                # A session updated between two pages may show up twice: keep one.
                found.setdefault((session.user_id, session.id), _to_adk_session(session, []))
            cursor = page.next_cursor
            if cursor is None:
                break
        sessions = sorted(found.values(), key=lambda s: (s.last_update_time, s.user_id, s.id))
        return ListSessionsResponse(sessions=sessions)

    @override
    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        service = await self._ready()
        await service.delete_session(
            app_name=app_name, user_id=user_id, session_id=session_id.strip()
        )

    @override
    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        """The user-scoped state, keys without their ``user:`` prefix."""
        service = await self._ready()
        return await service.get_user_state(app_name, user_id)

    # -- events -----------------------------------------------------------------------

    @override
    async def append_event(self, session: AdkSession, event: AdkEvent) -> AdkEvent:
        """Store ``event`` and apply it to ``session``, as ADK's services do.

        Partial events are returned untouched. ``temp:`` keys are applied to
        ``session.state`` and removed from the event's state delta before it is stored.
        Re-appending an event already stored identically changes nothing.

        Raises:
            SessionNotFoundError: (ADK's) the session does not exist.
            StaleSessionError: (ADK's) the session was written since ``session`` was
                loaded; reload it with ``get_session``.
            AlreadyExistsError: another event with this id is stored in the session.
        """
        if event.partial:
            return event
        delta = event.actions.state_delta if event.actions else None
        if delta:
            for key, value in delta.items():
                if key.startswith(TEMP_PREFIX):
                    session.state[key] = value
            event.actions.state_delta = {
                k: v for k, v in delta.items() if not k.startswith(TEMP_PREFIX)
            }
        record = to_sessionlite_event(event)
        service = await self._ready()
        async with self._session_lock(session):
            expected = (
                await self._expected_version(service, session) if self._detect_stale else None
            )
            shell = _shell(session, -1 if expected is None else expected)
            try:
                await service.append_event(shell, record, expected_version=expected)
            except SessionNotFoundError as exc:
                raise AdkSessionNotFoundError(f"Session {session.id} not found.") from exc
            except StaleSessionError as exc:
                raise AdkStaleSessionError(_STALE_MESSAGE) from exc
            except EventConflictError as exc:
                raise AlreadyExistsError(f"Event {event.id} already exists.") from exc
            if expected is not None and shell.version == expected:
                return event  # already stored identically: a retry, nothing changes
            _set_marker(session, shell.version)
            session.last_update_time = shell.updated_at.timestamp()
        if event.actions and event.actions.state_delta:
            session.state.update(event.actions.state_delta)
        session.events.append(event)
        return event

    async def _expected_version(self, service: SessionService, session: AdkSession) -> int:
        """The stored version ``session`` has seen, or StaleSessionError."""
        version = _marker(session)
        if version is not None:
            return version
        # A session object this service did not produce: accept it if storage has not
        # moved past it (DatabaseSessionService's rule for marker-less sessions).
        stored = await service.get_session(
            app_name=session.app_name,
            user_id=session.user_id,
            session_id=session.id,
            num_recent_events=1,
        )
        if stored is None:
            raise AdkSessionNotFoundError(f"Session {session.id} not found.")
        if stored.updated_at.timestamp() > session.last_update_time:
            stored_last = stored.events[-1].id if stored.events else None
            seen_last = session.events[-1].id if session.events else None
            if stored_last != seen_last:
                raise AdkStaleSessionError(_STALE_MESSAGE)
        return stored.version

    @asynccontextmanager
    async def _session_lock(self, session: AdkSession) -> AsyncIterator[None]:
        """Appends to one session take turns, so that each sees the last one's version."""
        async with self._locks.hold((session.app_name, session.user_id, session.id)):
            yield


# -- helpers --------------------------------------------------------------------------


def _to_adk_session(session: Session, events: list[AdkEvent]) -> AdkSession:
    adk = AdkSession(
        id=session.id,
        app_name=session.app_name,
        user_id=session.user_id,
        state=session.state,
        events=events,
        last_update_time=session.updated_at.timestamp(),
    )
    _set_marker(adk, session.version)
    return adk


def _set_marker(session: AdkSession, version: int) -> None:
    if _HAS_MARKER:
        session._storage_update_marker = f"{_MARKER_PREFIX}{version}"


def _marker(session: AdkSession) -> int | None:
    marker = getattr(session, "_storage_update_marker", None) if _HAS_MARKER else None
    if isinstance(marker, str) and marker.startswith(_MARKER_PREFIX):
        digits = marker[len(_MARKER_PREFIX) :]
        if digits.isdigit():
            return int(digits)
    return None


def _shell(session: AdkSession, version: int) -> Session:
    """A sessionlite Session naming the ADK session, to append through."""
    now = datetime.now(timezone.utc)
    return Session(
        app_name=session.app_name,
        user_id=session.user_id,
        id=session.id,
        created_at=now,
        updated_at=now,
        version=version,
    )
