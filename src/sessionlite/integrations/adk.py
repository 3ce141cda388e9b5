"""Google ADK: a ``BaseSessionService`` backed by :class:`~sessionlite.SessionService`.

Use it wherever ADK takes a session service::

    from sessionlite.integrations.adk import SessionliteSessionService

    session_service = SessionliteSessionService("sessions.db")
    runner = Runner(app_name="app", agent=agent, session_service=session_service)
    ...
    await session_service.close()

ADK's ``adk web`` / ``adk api_server`` build it from a URI (``--session_service_uri
sessionlite:///sessions.db``) once a ``services.yaml`` in the agents directory registers
the ``sessionlite`` scheme (see :class:`SessionliteSessionService`).

It behaves as ADK's own persistent services do (``SqliteSessionService``,
``DatabaseSessionService``): ``app:``/``user:``/``temp:`` state scopes, partial events
not stored, ``temp:`` keys trimmed from the stored event, ``AlreadyExistsError``,
``SessionNotFoundError`` and ``StaleSessionError`` where ADK raises them,
``list_sessions`` ordered by last update (oldest first) and without events, and
``last_update_time`` the timestamp of the session's last event (its creation time
before it has any).

How an ADK event is stored: one sessionlite :class:`~sessionlite.Event` whose
``content`` is the event's JSON exactly as ADK's ``SqliteSessionService`` writes it
(``model_dump_json(exclude_none=True)``), so reading it back with
``Event.model_validate_json`` gives an equal ADK event, field for field. The sessionlite
columns carry what sessionlite itself uses: the same ``id``, ``author``,
``invocation_id``, ``timestamp``, the state delta (without ``temp:`` keys), the branch
(ADK's ``a.b`` as ``a/b``), the model version and the token usage.
"""

from __future__ import annotations

import asyncio
import dataclasses
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
from urllib.parse import parse_qsl, unquote, urlsplit

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

from ..config import ServiceOptions, parse_options
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
    "URI_SCHEME",
    "AdkSessionNotFoundError",
    "AdkStaleSessionError",
    "SessionliteSessionService",
    "parse_session_uri",
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
# list_sessions reads each session's last event; this many reads are in flight at once.
_LIST_READ_BATCH = 32
_STALE_MESSAGE = (
    "The session has been modified in storage since it was loaded. "
    "Please reload the session before appending more events."
)
_HAS_MARKER = "_storage_update_marker" in getattr(AdkSession, "__private_attributes__", {})


# -- URIs -----------------------------------------------------------------------------

URI_SCHEME = "sessionlite"
"""The URI scheme of :class:`SessionliteSessionService` in ADK's service registry."""

# Options a URI query can carry, by how their text is read. The others (clock,
# summarizer, hooks) are objects: pass them as keyword arguments (a services.py).
_URI_BOOL_OPTIONS = frozenset(
    {"create_schema", "refresh_ttl_on_read", "soft_delete", "async_persist", "prepared_statements"}
)
_URI_INT_OPTIONS = frozenset(
    {
        "event_limit",
        "reader_connections",
        "read_cache_size",
        "pool_size",
        "max_write_batch",
        "max_stored_events",
        "persist_workers",
        "persist_queue_size",
        "summary_workers",
        "summary_queue_size",
    }
)
_URI_SECONDS_OPTIONS = frozenset(
    {
        "busy_timeout",
        "session_ttl",
        "app_state_ttl",
        "user_state_ttl",
        "cleanup_interval",
        "soft_delete_retention",
        "summary_job_timeout",
        "close_timeout",
    }
)
_URI_TEXT_OPTIONS = frozenset({"table_prefix", "synchronous", "summary_queue_full"})
_URI_NULLABLE_OPTIONS = frozenset(
    {"event_limit", "max_stored_events", "session_ttl", "app_state_ttl", "user_state_ttl"}
)
_DETECT_STALE = "detect_stale_sessions"
_TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
_FALSE_WORDS = frozenset({"false", "0", "no", "off"})
# Keyword arguments ADK's service registry passes to every factory, not ours to use.
_ADK_FACTORY_KWARGS = frozenset({"agents_dir"})
_DATABASE_SCHEMES = ("postgresql", "postgres")


def _uri_error(message: str) -> InvalidInputError:
    return InvalidInputError(message, field="uri")


def parse_session_uri(uri: str) -> tuple[str, dict[str, Any]]:
    """The database and the options a ``sessionlite:`` URI names.

    - ``sessionlite:///sessions.db``: a path relative to the working directory (three
      slashes, then the path, as in SQLAlchemy's ``sqlite:///``);
      ``sessionlite:////var/data/sessions.db``: an absolute path (four slashes);
      ``sessionlite:///~/sessions.db``: ``~`` is expanded; ``sessionlite:///:memory:``:
      an in-memory database. The path is percent-decoded (``%20`` for a space).
    - ``sessionlite+postgresql://user:password@host/db``: the database URL after the
      ``sessionlite+`` (``postgresql://user:password@host/db``), query included.
    - Query parameters of a file URI are options: :class:`~sessionlite.SessionService`
      options with a plain value (``?async_persist=true&session_ttl=86400``: booleans
      as ``true``/``false``, durations in seconds, ``none`` for no limit) and
      ``detect_stale_sessions``.

    Raises:
        InvalidInputError: not a ``sessionlite`` URI, or a malformed one.
    """
    if not isinstance(uri, str):
        raise _uri_error(f"uri must be a string, got {type(uri).__name__}")
    scheme, sep, rest = uri.partition(":")
    scheme = scheme.lower()
    if not sep or not (scheme == URI_SCHEME or scheme.startswith(URI_SCHEME + "+")):
        raise _uri_error(
            f"expected a {URI_SCHEME}:///path/to/sessions.db URI, got one with scheme "
            f"{scheme if sep else ''!r}"
        )
    if scheme != URI_SCHEME:
        # sessionlite+postgresql://... is postgresql://...: the driver's own URL.
        database = scheme[len(URI_SCHEME) + 1 :]
        if database not in _DATABASE_SCHEMES or not rest.startswith("//"):
            raise _uri_error(
                f"unsupported URI scheme {scheme!r}: use {URI_SCHEME}:///path/to/sessions.db "
                f"(or {URI_SCHEME}+postgresql://...)"
            )
        return f"{database}:{rest}", {}
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        raise _uri_error(f"malformed {URI_SCHEME} URI: {exc}") from None
    if parts.netloc:
        raise _uri_error(
            f"a {URI_SCHEME} URI names a file, not a host ({parts.netloc!r}): write "
            f"{URI_SCHEME}:///relative/path.db or {URI_SCHEME}:////absolute/path.db"
        )
    if parts.fragment:
        raise _uri_error(f"a {URI_SCHEME} URI has no #fragment (write '#' as %23)")
    path = unquote(parts.path)
    if not path.startswith("/") or len(path) == 1:
        raise _uri_error(
            f"no database path in the URI: write {URI_SCHEME}:///sessions.db, "
            f"{URI_SCHEME}:////absolute/path.db or {URI_SCHEME}:///:memory:"
        )
    path = path[1:]
    if path != ":memory:":
        path = os.path.expanduser(path)
    return path, _uri_options(parts.query)


def _uri_options(query: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise _uri_error(f"malformed URI query {query!r}: {exc}") from None
    for name, text in pairs:
        if name in options:
            raise _uri_error(f"URI parameter {name!r} is given twice")
        options[name] = _uri_option(name, text)
    return options


def _uri_option(name: str, text: str) -> Any:
    def bad(expected: str) -> InvalidInputError:
        return InvalidInputError(
            f"URI parameter {name!r}: expected {expected}, got {text!r}", field=name
        )

    word = text.strip().lower()
    if name in _URI_NULLABLE_OPTIONS and word == "none":
        return None
    if name in _URI_BOOL_OPTIONS or name == _DETECT_STALE:
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        raise bad("true or false")
    if name in _URI_INT_OPTIONS:
        try:
            return int(word)
        except ValueError:
            raise bad("an integer") from None
    if name in _URI_SECONDS_OPTIONS:
        try:
            return float(word)
        except ValueError:
            raise bad("a number of seconds") from None
    if name in _URI_TEXT_OPTIONS:
        return text
    known = sorted(
        _URI_BOOL_OPTIONS
        | _URI_INT_OPTIONS
        | _URI_SECONDS_OPTIONS
        | _URI_TEXT_OPTIONS
        | {_DETECT_STALE}
    )
    if name in {field.name for field in dataclasses.fields(ServiceOptions)}:
        raise InvalidInputError(
            f"option {name!r} cannot be given in a URI: pass it as a keyword argument "
            "(from a services.py factory)",
            field=name,
        )
    raise InvalidInputError(
        f"unknown URI parameter {name!r}; known: {', '.join(known)}", field=name
    )


def _from_uri(
    uri: str, options: dict[str, Any], detect_stale_sessions: bool
) -> tuple[str, dict[str, Any], bool]:
    """What ``SessionliteSessionService(uri=...)`` opens: the database, its options and
    whether to detect stale sessions (keyword options and the URI's together)."""
    database, from_uri = parse_session_uri(uri)
    mine = {k: v for k, v in options.items() if k not in _ADK_FACTORY_KWARGS}
    if _DETECT_STALE in from_uri:
        if not detect_stale_sessions:
            raise InvalidInputError(
                f"{_DETECT_STALE} is given both in the URI and as a keyword argument",
                field=_DETECT_STALE,
            )
        detect_stale_sessions = from_uri.pop(_DETECT_STALE)
    twice = sorted(set(mine) & set(from_uri))
    if twice:
        raise InvalidInputError(
            f"option(s) {', '.join(map(repr, twice))} given both in the URI and as "
            "keyword arguments",
            field=twice[0],
        )
    return database, {**from_uri, **mine}, detect_stale_sessions


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
        uri: instead of ``service``, a ``sessionlite:`` URI naming the database (see
            :func:`parse_session_uri`): ``sessionlite:///sessions.db`` (relative),
            ``sessionlite:////abs/path/sessions.db``, ``sessionlite:///:memory:``; its
            query may carry options (``?async_persist=true``). This is how ADK's service
            registry builds it (``services.yaml``, ``adk web --session_service_uri``);
            the ``agents_dir`` keyword ADK adds is ignored.
        detect_stale_sessions: check, as ADK's persistent services do, that the session
            object has seen every write to its session before appending to it
            (``StaleSessionError`` otherwise). Each append then waits for its write even
            with ``async_persist=True``; turn it off to let appends return once accepted
            (and :meth:`flush` wait for them).
        **options: :class:`~sessionlite.SessionService` options, with a path or a URI.

    Raises:
        InvalidInputError: a bad option or URI, options given with a service, or both or
            neither of ``service`` and ``uri``.
    """

    def __init__(
        self,
        service: SessionService | str | os.PathLike[str] | None = None,
        *,
        uri: str | None = None,
        detect_stale_sessions: bool = True,
        **options: Any,
    ) -> None:
        self._service: SessionService | None = None
        self._path: str | os.PathLike[str] | None = None
        self._options: dict[str, Any] = {}
        if uri is not None:
            if service is not None:
                raise InvalidInputError("give a service or a path, or a uri, not both", field="uri")
            service, options, detect_stale_sessions = _from_uri(uri, options, detect_stale_sessions)
        elif service is None:
            raise InvalidInputError(
                "give a SessionService, a database path or a sessionlite:/// uri",
                field="service",
            )
        elif isinstance(service, str) and service.lower().startswith(URI_SCHEME):
            scheme = service.partition(":")[0].lower()
            if scheme == URI_SCHEME or scheme.startswith(URI_SCHEME + "+"):
                raise InvalidInputError(
                    f"{scheme}: URIs are passed as uri=...: "
                    f"SessionliteSessionService(uri={service!r})",
                    field="service",
                )
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
        return _to_adk_session(session, [], _last_update_time(session))

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
        newest = session
        if limit == 0 or after is not None:
            # The session's last event may not be among those read: read it.
            newest = (
                await service.get_session(
                    app_name=app_name,
                    user_id=user_id,
                    session_id=session_id.strip(),
                    num_recent_events=1,
                )
                or session
            )
        return _to_adk_session(session, events, _last_update_time(newest))

    @override
    async def list_sessions(
        self, *, app_name: str, user_id: str | None = None
    ) -> ListSessionsResponse:
        """Every session of the app (or of one user), without events, oldest update first.

        ``last_update_time`` is each session's last event's timestamp, as in ADK: the
        listing reads each session's last event (one indexed read per session; no read
        hooks run and no expiry is refreshed by it).
        """
        service = await self._ready()
        found: dict[tuple[str, str], Session] = {}
        cursor: str | None = None
        while True:
            page = await service.list_sessions(
                app_name=app_name, user_id=user_id, limit=MAX_LIST_LIMIT, cursor=cursor
            )
            for session in page.sessions:
                # A session updated between two pages may show up twice: keep one.
                found.setdefault((session.user_id, session.id), session)
            cursor = page.next_cursor
            if cursor is None:
                break
        listed = list(found.values())
        read: list[Session | None] = []
        for start in range(0, len(listed), _LIST_READ_BATCH):
            batch = listed[start : start + _LIST_READ_BATCH]
            read.extend(await asyncio.gather(*(_read_newest(service, s) for s in batch)))
        sessions = [
            _to_adk_session(newest, [], _last_update_time(newest))
            for newest in read
            if newest is not None  # None: deleted (or expired) since it was listed
        ]
        sessions.sort(key=lambda s: (s.last_update_time, s.user_id, s.id))
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
            session.last_update_time = event.timestamp
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
        stored_last = stored.events[-1].id if stored.events else None
        seen_last = session.events[-1].id if session.events else None
        # Stale: storage's last event is not the one the object saw last, or, for an
        # object that saw no events, storage has one newer than the object.
        if stored_last != seen_last and (
            session.events or _last_update_time(stored) > session.last_update_time
        ):
            raise AdkStaleSessionError(_STALE_MESSAGE)
        return stored.version

    @asynccontextmanager
    async def _session_lock(self, session: AdkSession) -> AsyncIterator[None]:
        """Appends to one session take turns, so that each sees the last one's version."""
        async with self._locks.hold((session.app_name, session.user_id, session.id)):
            yield


# -- helpers --------------------------------------------------------------------------


def _to_adk_session(
    session: Session, events: list[AdkEvent], last_update_time: float
) -> AdkSession:
    adk = AdkSession(
        id=session.id,
        app_name=session.app_name,
        user_id=session.user_id,
        state=session.state,
        events=events,
        last_update_time=last_update_time,
    )
    _set_marker(adk, session.version)
    return adk


def _event_time(event: Event) -> float:
    """The ADK timestamp of a stored event: for an ADK event, the exact float of its
    JSON (the sessionlite column is rounded to the microsecond)."""
    if event.metadata.get(_FORMAT_KEY) == ADK_EVENT_FORMAT and isinstance(event.content, dict):
        seconds = event.content.get("timestamp")
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
            return float(seconds)
    return event.timestamp.timestamp()


def _last_update_time(session: Session) -> float:
    """``last_update_time`` as ADK's SQL services give it: the timestamp of the last
    event appended, or the creation time of a session without events.

    ``session`` must have been read with its last event (``num_recent_events >= 1``).
    """
    if session.events:
        return _event_time(session.events[-1])
    return session.created_at.timestamp()


async def _read_newest(service: SessionService, session: Session) -> Session | None:
    """``session`` read again with its last event only (bookkeeping for the listing:
    no read hooks, no expiry refresh)."""
    return await service._peek_session(
        app_name=session.app_name,
        user_id=session.user_id,
        session_id=session.id,
        num_recent_events=1,
    )


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
