"""The one place where psycopg errors become sessionlite errors, by SQLSTATE.

No psycopg exception escapes the backend: every call runs inside :func:`map_db_errors`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import psycopg_pool

from ...errors import (
    DatabaseCorruptError,
    DatabaseLockedError,
    SessionLiteError,
    StorageError,
    StorageFullError,
    StorageUnavailableError,
)

# Lock timeout, deadlock, serialization failure: retrying the transaction may succeed.
_LOCKED = {"55P03", "40P01", "40001"}
# Data corrupted / index corrupted.
_CORRUPT = {"XX001", "XX002"}
# Disk full, out of memory.
_FULL = {"53100", "53200"}
# Server shutting down, crash recovery, cannot connect now, too many connections.
_UNAVAILABLE = {"57P01", "57P02", "57P03", "53300", "08000", "08003", "08006", "08001", "08004"}


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return True
    state = getattr(exc, "sqlstate", None)
    if state is not None:
        return state in _UNAVAILABLE or state.startswith("08")
    # No SQLSTATE: the connection failed or broke (refused, reset, closed by the server).
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same work later may succeed."""
    if isinstance(exc, (DatabaseLockedError, StorageUnavailableError)):
        return True
    if not isinstance(exc, psycopg.Error):
        return False
    return getattr(exc, "sqlstate", None) in _LOCKED or _unavailable(exc)


def translate(exc: BaseException, where: str) -> BaseException:
    """The sessionlite error for ``exc`` (returned unchanged if it is not a psycopg error)."""
    if isinstance(exc, SessionLiteError) or not isinstance(exc, psycopg.Error):
        return exc
    state = getattr(exc, "sqlstate", None) or ""
    detail = str(exc).strip() or type(exc).__name__
    error: StorageError
    if state in _LOCKED:
        error = DatabaseLockedError(
            f"{where}: a lock was not granted in time ({detail}); retry later or raise busy_timeout"
        )
    elif _unavailable(exc):
        error = StorageUnavailableError(
            f"{where}: the PostgreSQL server cannot be reached or dropped the connection "
            f"({detail}); the service reconnects by itself once it is back"
        )
    elif state in _FULL:
        error = StorageFullError(f"{where}: the server is out of disk or memory ({detail})")
    elif state in _CORRUPT:
        error = DatabaseCorruptError(f"{where}: the server reports damaged data ({detail})")
    else:
        error = StorageError(f"{where}: {detail}")
    error.__cause__ = exc
    return error


@contextmanager
def map_db_errors(where: str) -> Iterator[None]:
    """Re-raise psycopg errors raised inside the block as :class:`StorageError` subclasses."""
    try:
        yield
    except psycopg.Error as exc:
        raise translate(exc, where) from exc
