"""Import sessions from other frameworks' SQLite files into a sessionlite database.

Three sources are read, without their frameworks' code touching the file (it is opened
read-only):

- Google ADK ``SqliteSessionService`` files and ``DatabaseSessionService`` SQLite files
  (the current JSON schema): :func:`import_adk_sqlite`. The events are stored as
  :class:`~sessionlite.integrations.adk.SessionliteSessionService` stores them, so that
  service serves the imported sessions as ADK served them. Needs ``google-adk``.
- OpenAI Agents SDK ``SQLiteSession`` files: :func:`import_openai_sqlite`. The items
  are stored as :class:`~sessionlite.integrations.openai_agents.SessionliteSession`
  stores them.

:func:`import_source` detects the format and calls the right one.

Each importer streams: one session at a time, its events in batches (each batch one
transaction). Re-running an import is safe: events already imported are recognised by
their id and skipped (sessionlite's idempotent append), sessions are reused, and state
is written only where it differs, so a second run over an unchanged source writes
nothing. ``progress`` (a plain callable) is called after every batch and session with
an :class:`ImportProgress`; the result is an :class:`ImportSummary`.

What is not carried over: session creation and update times (imported sessions are
created and updated at import time; event timestamps are kept).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

import aiosqlite

from ..errors import (
    EventConflictError,
    InvalidInputError,
    SessionExistsError,
    SessionNotFoundError,
    StaleSessionError,
)
from ..models import Event, Session
from ..service import SessionService
from ..state import APP_PREFIX, TEMP_PREFIX, USER_PREFIX
from .openai_agents import DEFAULT_APP_NAME, DEFAULT_USER_ID, item_to_event

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "ImportProgress",
    "ImportSummary",
    "SourceFormatError",
    "SourceKind",
    "detect_source",
    "import_adk_sqlite",
    "import_openai_sqlite",
    "import_source",
]

logger = logging.getLogger(__name__)

SourceKind = Literal["adk-sqlite", "adk-database", "openai-sqlite"]
"""``"adk-sqlite"``: ADK ``SqliteSessionService``; ``"adk-database"``: ADK
``DatabaseSessionService`` on SQLite; ``"openai-sqlite"``: the Agents SDK's
``SQLiteSession``."""

DEFAULT_BATCH_SIZE = 500  # events per append transaction
_SESSION_FETCH = 100  # source session rows read at a time
_STALE_RETRIES = 10  # a session written by someone else during its import: reload, retry
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MISSING = object()


class SourceFormatError(InvalidInputError):
    """The source file is missing, unreadable, or not in the format the importer reads."""


@dataclasses.dataclass(frozen=True)
class ImportProgress:
    """Where an import is (passed to the ``progress`` callback).

    Attributes:
        kind: the source format.
        sessions_total: sessions in the source.
        sessions_done: sessions completely imported so far.
        events_imported: events stored so far.
        events_skipped: events found already imported so far.
        session_id: the session being imported (None once all are done).
    """

    kind: SourceKind
    sessions_total: int
    sessions_done: int
    events_imported: int
    events_skipped: int
    session_id: str | None


@dataclasses.dataclass(frozen=True)
class ImportSummary:
    """What an import did.

    Attributes:
        source: the source file.
        kind: its format.
        sessions: sessions read from the source.
        sessions_created: of those, sessions that did not exist in sessionlite yet.
        events_imported: events stored by this run.
        events_skipped: events already stored (by an earlier run): not written again.
        state_keys_imported: app, user and session state keys written (those whose
            value differed from sessionlite's).
        items_invalid: OpenAI rows whose JSON does not decode: skipped, as the SDK's
            ``SQLiteSession`` skips them when reading.
    """

    source: str
    kind: SourceKind
    sessions: int = 0
    sessions_created: int = 0
    events_imported: int = 0
    events_skipped: int = 0
    state_keys_imported: int = 0
    items_invalid: int = 0


ProgressCallback = Callable[[ImportProgress], None]


# -- the source file ------------------------------------------------------------------


def _source_path(source: str | os.PathLike[str]) -> Path:
    """A file path, also from an SQLAlchemy URL (``sqlite+aiosqlite:///x.db``)."""
    text = os.fspath(source)
    if text.startswith(("sqlite:", "sqlite+")):
        # SQLAlchemy's convention: sqlite:///relative.db, sqlite:////absolute.db.
        path = unquote(urlparse(text).path)
        text = path[1:] if path.startswith("/") else path
    return Path(text)


@asynccontextmanager
async def _open_source(source: str | os.PathLike[str]) -> AsyncIterator[aiosqlite.Connection]:
    path = _source_path(source)
    if not path.is_file():
        raise SourceFormatError(f"{os.fspath(source)!r}: no such file", field="source")
    uri = path.resolve().as_uri() + "?mode=ro"
    try:
        async with aiosqlite.connect(uri, uri=True) as db:
            yield db
    except sqlite3.Error as exc:
        raise SourceFormatError(
            f"{os.fspath(source)!r} cannot be read as an SQLite database: {exc}", field="source"
        ) from exc


async def _scalar(db: aiosqlite.Connection, sql: str) -> Any:
    async with db.execute(sql) as cursor:
        row = await cursor.fetchone()
    return None if row is None else row[0]


async def _columns(db: aiosqlite.Connection, table: str) -> dict[str, str]:
    """Column name -> declared type (upper case); empty if there is no such table."""
    rows = await db.execute_fetchall(f'PRAGMA table_info("{table}")')
    return {str(row[1]): str(row[2]).upper() for row in rows}


async def _source_kind(db: aiosqlite.Connection) -> SourceKind | None:
    events = await _columns(db, "events")
    sessions = await _columns(db, "sessions")
    if events and sessions:
        if "event_data" not in events:
            if "actions" in events:
                raise SourceFormatError(
                    "this ADK DatabaseSessionService file uses the legacy v0 schema (pickled "
                    "event actions); migrate it to the current schema first with "
                    "`adk migrate session`, then import the migrated file",
                    field="source",
                )
            return None
        if await _columns(db, "adk_internal_metadata"):
            version = await _scalar(
                db, "SELECT value FROM adk_internal_metadata WHERE key = 'schema_version'"
            )
            if version != "1":
                raise SourceFormatError(
                    f"ADK DatabaseSessionService schema version {version!r} is not supported "
                    "(version '1' is)",
                    field="source",
                )
            return "adk-database"
        return "adk-sqlite" if sessions.get("update_time") == "REAL" else "adk-database"
    messages = await _columns(db, "agent_messages")
    if "message_data" in messages and await _columns(db, "agent_sessions"):
        return "openai-sqlite"
    return None


async def detect_source(source: str | os.PathLike[str]) -> SourceKind | None:
    """The format of ``source``, or None if it is none this module reads.

    OpenAI files are recognised by the SDK's default table names only.

    Raises:
        SourceFormatError: no such file, not an SQLite file, or an ADK schema that
            cannot be imported (the message says what to do).
    """
    async with _open_source(source) as db:
        return await _source_kind(db)


# -- writing --------------------------------------------------------------------------


def _same(current: Any, value: Any) -> bool:
    # json text, not ==: 1 == 1.0 == True in Python, but they are different JSON.
    return current is not _MISSING and json.dumps(current, sort_keys=True) == json.dumps(
        value, sort_keys=True
    )


def _changed(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in wanted.items() if not _same(current.get(k, _MISSING), v)}


class _Importer:
    """Writes sessions, events and state into the service, counting what it does."""

    def __init__(
        self,
        service: SessionService,
        source: str | os.PathLike[str],
        kind: SourceKind,
        progress: ProgressCallback | None,
        batch_size: int,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(
                f"batch_size must be a positive int, got {batch_size!r}", field="batch_size"
            )
        self.service = service
        self.source = os.fspath(source)
        self.kind = kind
        self.progress = progress
        self.batch_size = batch_size
        self.sessions_total = 0
        self.counts = dict.fromkeys(
            (
                "sessions",
                "sessions_created",
                "events_imported",
                "events_skipped",
                "state_keys_imported",
                "items_invalid",
            ),
            0,
        )

    def summary(self) -> ImportSummary:
        return ImportSummary(source=self.source, kind=self.kind, **self.counts)

    def report(self, session_id: str | None) -> None:
        if self.progress is not None:
            self.progress(
                ImportProgress(
                    kind=self.kind,
                    sessions_total=self.sessions_total,
                    sessions_done=self.counts["sessions"],
                    events_imported=self.counts["events_imported"],
                    events_skipped=self.counts["events_skipped"],
                    session_id=session_id,
                )
            )

    async def open_session(self, app_name: str, user_id: str, session_id: str) -> Session:
        """The target session (created if new), without events."""
        try:
            session = await self.service.create_session(
                app_name=app_name, user_id=user_id, session_id=session_id
            )
        except SessionExistsError:
            return await self._reload(app_name, user_id, session_id)
        self.counts["sessions_created"] += 1
        return session

    async def _reload(self, app_name: str, user_id: str, session_id: str) -> Session:
        session = await self.service.get_session(
            app_name=app_name, user_id=user_id, session_id=session_id, num_recent_events=0
        )
        if session is None:
            raise SessionNotFoundError(
                f"session {session_id!r} was deleted while it was being imported",
                app_name=app_name,
                user_id=user_id,
                session_id=session_id,
            )
        return session

    async def append(self, session: Session, events: list[Event]) -> None:
        """Store ``events`` (one transaction), counting those already stored as skipped."""
        for _ in range(_STALE_RETRIES):
            before = session.version
            try:
                # expected_version: the write is waited for even with async_persist, and
                # an unchanged version afterwards means "already stored" (a re-run).
                await self.service.append_events(session, events, expected_version=before)
            except StaleSessionError:
                # Someone else wrote to the session: take its version and try again.
                reloaded = await self._reload(session.app_name, session.user_id, session.id)
                session.version = reloaded.version
                continue
            except EventConflictError:
                if len(events) == 1:
                    raise  # the same id with other content: the source changed
                # Part of the batch was stored by an earlier, interrupted run.
                for event in events:
                    await self.append(session, [event])
                return
            finally:
                session.events.clear()  # the caller's copy need not grow with the import
            key = "events_skipped" if session.version == before else "events_imported"
            self.counts[key] += len(events)
            return
        raise StaleSessionError(
            f"session {session.id!r} kept changing while it was being imported; retry",
            app_name=session.app_name,
            user_id=session.user_id,
            session_id=session.id,
            expected_version=session.version,
            actual_version=session.version,
        )

    async def sync_session_state(self, session: Session, state: Mapping[str, Any]) -> None:
        own = {
            k: v
            for k, v in state.items()
            if not k.startswith((APP_PREFIX, USER_PREFIX, TEMP_PREFIX))
        }
        current = await self._reload(session.app_name, session.user_id, session.id)
        delta = _changed(current.state, own)
        if delta:
            await self.service.update_session_state(
                app_name=session.app_name,
                user_id=session.user_id,
                session_id=session.id,
                delta=delta,
            )
            self.counts["state_keys_imported"] += len(delta)

    async def sync_app_state(self, app_name: str, state: Mapping[str, Any]) -> None:
        delta = _changed(await self.service.get_app_state(app_name), state)
        if delta:
            await self.service.update_app_state(app_name, delta)
            self.counts["state_keys_imported"] += len(delta)

    async def sync_user_state(self, app_name: str, user_id: str, state: Mapping[str, Any]) -> None:
        delta = _changed(await self.service.get_user_state(app_name, user_id), state)
        if delta:
            await self.service.update_user_state(app_name, user_id, delta)
            self.counts["state_keys_imported"] += len(delta)

    def session_done(self) -> None:
        self.counts["sessions"] += 1


def _json_object(text: Any, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text is not None else {}
    except (TypeError, ValueError) as exc:
        raise SourceFormatError(f"{what} is not valid JSON: {exc}", field="source") from exc
    if not isinstance(value, dict):
        raise SourceFormatError(f"{what} is not a JSON object", field="source")
    return value


# -- ADK ------------------------------------------------------------------------------


async def import_adk_sqlite(
    source: str | os.PathLike[str],
    service: SessionService,
    *,
    progress: ProgressCallback | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ImportSummary:
    """Import an ADK ``SqliteSessionService`` or ``DatabaseSessionService`` SQLite file.

    Every session keeps its app name, user id and session id; every event its id,
    content and every other field (each is validated as an ADK ``Event``); app, user
    and session state end equal to the source's. Events are imported in the order ADK
    reads them (timestamp, then insertion).

    Args:
        source: the file, or ``DatabaseSessionService``'s URL (``sqlite+aiosqlite:///x.db``).
        service: an open service to import into.
        progress: called after each batch of events and each session.
        batch_size: events per transaction.

    Raises:
        SourceFormatError: not an ADK file this importer reads (the legacy v0
            ``DatabaseSessionService`` schema: migrate it with ``adk migrate session``).
        EventConflictError: an event id is already stored with other content.
        ImportError: ``google-adk`` is not installed.
    """
    from google.adk.events.event import Event as AdkEvent
    from pydantic import ValidationError

    from .adk import to_sessionlite_event

    async with _open_source(source) as db:
        kind = await _source_kind(db)
        if kind not in ("adk-sqlite", "adk-database"):
            raise SourceFormatError(
                f"{os.fspath(source)!r} is not an ADK session database", field="source"
            )
        importer = _Importer(service, source, kind, progress, batch_size)
        importer.sessions_total = int(await _scalar(db, "SELECT COUNT(*) FROM sessions"))
        # The order ADK reads events in: SqliteSessionService breaks timestamp ties by
        # rowid, DatabaseSessionService by id.
        tie = "rowid" if kind == "adk-sqlite" else "id"
        events_sql = (
            "SELECT id, invocation_id, timestamp, event_data FROM events "
            f"WHERE app_name = ? AND user_id = ? AND session_id = ? ORDER BY timestamp, {tie}"
        )

        def decode(row: sqlite3.Row | tuple[Any, ...], session_id: str) -> Event:
            event_id, invocation_id, timestamp, event_data = row
            what = f"event {event_id!r} of session {session_id!r}"
            data = _json_object(event_data, what)
            # DatabaseSessionService's reading rule: the columns win for these fields;
            # the JSON's timestamp is exact where the column may be rounded.
            data["id"] = event_id
            data["invocation_id"] = invocation_id
            if data.get("timestamp") is None:
                data["timestamp"] = _column_seconds(timestamp, what)
            try:
                adk_event = AdkEvent.model_validate_json(json.dumps(data))
            except ValidationError as exc:
                raise SourceFormatError(f"{what} is not a valid ADK event: {exc}") from exc
            return to_sessionlite_event(adk_event)

        # Oldest update first: sessionlite then lists them in the source's order.
        async with db.execute(
            "SELECT app_name, user_id, id, state FROM sessions ORDER BY update_time, user_id, id"
        ) as sessions:
            while rows := await sessions.fetchmany(_SESSION_FETCH):
                for app_name, user_id, session_id, state in rows:
                    importer.report(session_id)
                    target = await importer.open_session(app_name, user_id, session_id)
                    async with db.execute(events_sql, (app_name, user_id, session_id)) as cur:
                        while batch := await cur.fetchmany(importer.batch_size):
                            await importer.append(target, [decode(r, session_id) for r in batch])
                            importer.report(session_id)
                    await importer.sync_session_state(
                        target, _json_object(state, f"state of session {session_id!r}")
                    )
                    importer.session_done()
        for app_name, state in await db.execute_fetchall("SELECT app_name, state FROM app_states"):
            await importer.sync_app_state(
                app_name, _json_object(state, f"app state of {app_name!r}")
            )
        for app_name, user_id, state in await db.execute_fetchall(
            "SELECT app_name, user_id, state FROM user_states"
        ):
            await importer.sync_user_state(
                app_name, user_id, _json_object(state, f"user state of {user_id!r}")
            )
    await service.flush()
    importer.report(None)
    return importer.summary()


def _column_seconds(value: Any, what: str) -> float:
    """An ADK timestamp column: REAL seconds, or a naive UTC DATETIME text."""
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return datetime.fromisoformat(str(value)).replace(tzinfo=timezone.utc).timestamp()
    except ValueError as exc:
        raise SourceFormatError(f"{what} has an invalid timestamp {value!r}") from exc


# -- OpenAI Agents SDK ----------------------------------------------------------------


async def import_openai_sqlite(
    source: str | os.PathLike[str],
    service: SessionService,
    *,
    app_name: str = DEFAULT_APP_NAME,
    user_id: str = DEFAULT_USER_ID,
    sessions_table: str = "agent_sessions",
    messages_table: str = "agent_messages",
    progress: ProgressCallback | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ImportSummary:
    """Import an OpenAI Agents SDK ``SQLiteSession`` file.

    Each SDK session becomes the sessionlite session ``(app_name, user_id,
    session_id)`` (the mapping :class:`~.openai_agents.SessionliteSession` uses), each
    item one event, in the SDK's order. An item's event id is
    ``"<messages_table>:<row id>"``, which makes re-runs skip it; its timestamp is the
    row's ``created_at``. Rows whose JSON does not decode are skipped (the SDK skips
    them too) and counted in ``items_invalid``.

    Args:
        source: the file.
        service: an open service to import into.
        app_name: the sessionlite app of the conversations.
        user_id: the sessionlite user of the conversations.
        sessions_table: as given to ``SQLiteSession``.
        messages_table: as given to ``SQLiteSession``.
        progress: called after each batch of items and each session.
        batch_size: items per transaction.

    Raises:
        SourceFormatError: the file has no such tables.
    """
    for name, table in (("sessions_table", sessions_table), ("messages_table", messages_table)):
        if not isinstance(table, str) or not _IDENTIFIER.match(table):
            raise InvalidInputError(f"{name} {table!r} is not a table name", field=name)
    importer = _Importer(service, source, "openai-sqlite", progress, batch_size)
    async with _open_source(source) as db:
        if "message_data" not in await _columns(db, messages_table) or not await _columns(
            db, sessions_table
        ):
            raise SourceFormatError(
                f"{os.fspath(source)!r} has no SQLiteSession tables "
                f"{sessions_table!r}/{messages_table!r}",
                field="source",
            )
        # Sessions with messages but no session row (SQLite does not enforce the
        # foreign key by default) are imported too.
        everyone = (
            f'SELECT session_id, updated_at AS at FROM "{sessions_table}" '
            f'UNION ALL SELECT session_id, created_at FROM "{messages_table}"'
        )
        importer.sessions_total = int(
            await _scalar(db, f"SELECT COUNT(DISTINCT session_id) FROM ({everyone})")
        )
        messages_sql = (
            f'SELECT id, message_data, created_at FROM "{messages_table}" '
            "WHERE session_id = ? ORDER BY id"
        )
        async with db.execute(
            f"SELECT session_id FROM ({everyone}) GROUP BY session_id ORDER BY MAX(at), session_id"
        ) as sessions:
            while rows := await sessions.fetchmany(_SESSION_FETCH):
                for (session_id,) in rows:
                    importer.report(session_id)
                    target = await importer.open_session(app_name, user_id, session_id)
                    async with db.execute(messages_sql, (session_id,)) as cur:
                        while batch := await cur.fetchmany(importer.batch_size):
                            events = []
                            for row_id, data, created_at in batch:
                                try:
                                    item = json.loads(data)
                                except (TypeError, ValueError):
                                    logger.warning(
                                        "%s: row %s of session %r is not JSON; skipped",
                                        importer.source,
                                        row_id,
                                        session_id,
                                    )
                                    importer.counts["items_invalid"] += 1
                                    continue
                                events.append(
                                    item_to_event(
                                        item,
                                        event_id=f"{messages_table}:{row_id}",
                                        timestamp=_sql_timestamp(created_at),
                                    )
                                )
                            if events:
                                await importer.append(target, events)
                            importer.report(session_id)
                    importer.session_done()
    await service.flush()
    importer.report(None)
    return importer.summary()


def _sql_timestamp(value: Any) -> datetime:
    """SQLite's CURRENT_TIMESTAMP text (UTC); the epoch when missing or malformed, so
    that a re-run derives the same event."""
    try:
        return datetime.fromisoformat(str(value)).replace(tzinfo=timezone.utc)
    except ValueError:
        return _EPOCH


# -- any source -----------------------------------------------------------------------

_KINDS: tuple[SourceKind, ...] = ("adk-sqlite", "adk-database", "openai-sqlite")


async def import_source(
    source: str | os.PathLike[str],
    service: SessionService,
    *,
    kind: SourceKind | None = None,
    progress: ProgressCallback | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    app_name: str | None = None,
    user_id: str | None = None,
    sessions_table: str | None = None,
    messages_table: str | None = None,
) -> ImportSummary:
    """Import ``source`` with the importer for its format (detected unless ``kind``).

    ``app_name``, ``user_id``, ``sessions_table`` and ``messages_table`` are
    :func:`import_openai_sqlite`'s (defaults as there); ADK files carry their own ids.
    Give ``kind="openai-sqlite"`` for an OpenAI file with other table names (detection
    knows the SDK's default names only).

    Raises:
        SourceFormatError: the format is not recognised (or not importable).
        InvalidInputError: an unknown ``kind``, or OpenAI options for an ADK file.
    """
    if kind is not None and kind not in _KINDS:
        raise InvalidInputError(f"kind must be one of {_KINDS}, got {kind!r}", field="kind")
    if kind is None:
        kind = await detect_source(source)
        if kind is None:
            raise SourceFormatError(
                f"{os.fspath(source)!r} is none of: an ADK SqliteSessionService file, an "
                "ADK DatabaseSessionService SQLite file, an OpenAI Agents SQLiteSession file",
                field="source",
            )
    given = {
        name: value
        for name, value in (
            ("app_name", app_name),
            ("user_id", user_id),
            ("sessions_table", sessions_table),
            ("messages_table", messages_table),
        )
        if value is not None
    }
    if kind == "openai-sqlite":
        return await import_openai_sqlite(
            source,
            service,
            app_name=DEFAULT_APP_NAME if app_name is None else app_name,
            user_id=DEFAULT_USER_ID if user_id is None else user_id,
            sessions_table="agent_sessions" if sessions_table is None else sessions_table,
            messages_table="agent_messages" if messages_table is None else messages_table,
            progress=progress,
            batch_size=batch_size,
        )
    if given:
        raise InvalidInputError(
            f"{', '.join(given)} apply to OpenAI SQLiteSession files only; an ADK file "
            "keeps its own app names and user ids",
            field=next(iter(given)),
        )
    return await import_adk_sqlite(source, service, progress=progress, batch_size=batch_size)
