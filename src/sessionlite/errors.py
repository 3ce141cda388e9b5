"""The exceptions sessionlite raises.

Every error derives from :class:`SessionLiteError`; no ``sqlite3``, ``aiosqlite`` or
``psycopg`` exception ever escapes the public API (storage failures are wrapped, with the
original error kept as ``__cause__``)::

    SessionLiteError
    ├── ServiceClosedError
    ├── InvalidInputError (also ValueError)
    ├── SessionNotFoundError (also LookupError)
    ├── SessionExistsError
    ├── StaleSessionError
    ├── EventConflictError
    ├── SummaryQueueFullError
    ├── PersistenceError            (.event_ids)
    └── StorageError
        ├── StorageFullError
        ├── DatabaseLockedError
        ├── DatabaseCorruptError
        ├── StorageUnavailableError (PostgreSQL: the server cannot be reached)
        └── SchemaVersionError
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "DatabaseCorruptError",
    "DatabaseLockedError",
    "EventConflictError",
    "InvalidInputError",
    "PersistenceError",
    "SchemaVersionError",
    "ServiceClosedError",
    "SessionExistsError",
    "SessionLiteError",
    "SessionNotFoundError",
    "StaleSessionError",
    "StorageError",
    "StorageFullError",
    "StorageUnavailableError",
    "SummaryQueueFullError",
]


class SessionLiteError(Exception):
    """Base class of every error raised by sessionlite."""


class ServiceClosedError(SessionLiteError):
    """The service was closed (or never opened); the call did nothing."""


class InvalidInputError(SessionLiteError, ValueError):
    """An argument or option is invalid; nothing was written.

    Attributes:
        field: the argument, option or model field at fault, when known.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class _SessionKeyError(SessionLiteError):
    """An error about one session, carrying its identifiers."""

    def __init__(self, message: str, *, app_name: str, user_id: str, session_id: str) -> None:
        super().__init__(message)
        self.app_name = app_name
        self.user_id = user_id
        self.session_id = session_id


class SessionNotFoundError(_SessionKeyError, LookupError):
    """The session does not exist, expired, or was deleted."""


class SessionExistsError(_SessionKeyError):
    """A live session already has this id."""


class StaleSessionError(_SessionKeyError):
    """``expected_version`` did not match the stored session version; nothing was written.

    Attributes:
        expected_version: the version the caller expected.
        actual_version: the version found in the store.
    """

    def __init__(
        self,
        message: str,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        expected_version: int,
        actual_version: int,
    ) -> None:
        super().__init__(message, app_name=app_name, user_id=user_id, session_id=session_id)
        self.expected_version = expected_version
        self.actual_version = actual_version


class EventConflictError(_SessionKeyError):
    """An event with this id is already stored in the session with different content.

    Attributes:
        event_id: the conflicting id.
    """

    def __init__(
        self, message: str, *, app_name: str, user_id: str, session_id: str, event_id: str
    ) -> None:
        super().__init__(message, app_name=app_name, user_id=user_id, session_id=session_id)
        self.event_id = event_id


class SummaryQueueFullError(SessionLiteError):
    """The summary queue is full and ``summary_queue_full="reject"``."""


class PersistenceError(SessionLiteError):
    """Background writes failed; the events named in ``event_ids`` are not stored.

    Attributes:
        event_ids: ids of the events that could not be persisted, in acceptance order.
    """

    def __init__(self, message: str, *, event_ids: Sequence[str]) -> None:
        super().__init__(message)
        self.event_ids: tuple[str, ...] = tuple(event_ids)


class StorageError(SessionLiteError):
    """The database failed; the driver's error is the ``__cause__``."""


class StorageFullError(StorageError):
    """The disk (or the database's ``max_page_count``) is full; nothing was written."""


class DatabaseLockedError(StorageError):
    """Another connection held a lock for longer than ``busy_timeout`` (SQLite busy;
    PostgreSQL lock timeout, deadlock or serialization failure). Retrying may succeed."""


class DatabaseCorruptError(StorageError):
    """The file is not a sessionlite/SQLite database, or its content is damaged."""


class StorageUnavailableError(StorageError):
    """The database server cannot be reached, or dropped the connection (PostgreSQL).

    Transient: background writes retry it, and the service reconnects by itself once
    the server is back. A durable call that saw it may or may not have been committed
    (the connection went away mid-call); retrying an append with the same event ids is
    safe (idempotent).
    """


class SchemaVersionError(StorageError):
    """The database was written by a newer sessionlite (or its schema is unknown)."""
