"""The one place where sqlite errors become sessionlite errors."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from ...errors import (
    DatabaseCorruptError,
    DatabaseLockedError,
    SessionLiteError,
    StorageError,
    StorageFullError,
)

_LOCKED = {"SQLITE_BUSY", "SQLITE_LOCKED"}
_FULL = {"SQLITE_FULL"}
_CORRUPT = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}


def _error_name(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", None)
    if isinstance(name, str):
        # Extended codes (SQLITE_BUSY_SNAPSHOT, SQLITE_CORRUPT_INDEX...) map to their base.
        return "_".join(name.split("_")[:2])
    # Python < 3.11 has no error codes: fall back on sqlite's stable messages.
    message = str(exc).lower()
    if "locked" in message or "busy" in message:
        return "SQLITE_BUSY"
    if "full" in message:
        return "SQLITE_FULL"
    if "malformed" in message or "not a database" in message:
        return "SQLITE_CORRUPT"
    return "SQLITE_ERROR"


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same transaction later may succeed (lock contention)."""
    return isinstance(exc, DatabaseLockedError) or (
        isinstance(exc, sqlite3.Error) and _error_name(exc) in _LOCKED
    )


def translate(exc: BaseException, path: str) -> BaseException:
    """The sessionlite error for ``exc`` (returned unchanged if it is not a sqlite error)."""
    if isinstance(exc, SessionLiteError) or not isinstance(exc, sqlite3.Error):
        return exc
    name = _error_name(exc)
    if name in _LOCKED:
        error: StorageError = DatabaseLockedError(
            f"{path} is locked by another connection for longer than busy_timeout; "
            f"retry later or raise busy_timeout ({exc})"
        )
    elif name in _FULL:
        error = StorageFullError(f"{path}: the disk or database is full; free space ({exc})")
    elif name in _CORRUPT:
        error = DatabaseCorruptError(
            f"{path} is not a valid sessionlite database or is damaged ({exc}); restore it "
            "from a backup or point the service at another file"
        )
    else:
        error = StorageError(f"{path}: {exc}")
    error.__cause__ = exc
    return error


@contextmanager
def map_db_errors(path: str) -> Iterator[None]:
    """Re-raise sqlite errors raised inside the block as :class:`StorageError` subclasses."""
    try:
        yield
    except sqlite3.Error as exc:
        raise translate(exc, path) from exc
