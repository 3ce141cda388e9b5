"""Which storage backend a ``database`` argument names: the one small factory.

The service never names a backend (as httpx's client takes a transport): it hands its
first argument here. A path or ``":memory:"`` is SQLite; a ``postgresql://`` or
``postgres://`` URL is PostgreSQL; an object that already implements
:class:`~sessionlite.store.base.Storage` is used as it is (tests, third-party backends).
Backends are imported only when chosen, so the library imports without their drivers.
"""

from __future__ import annotations

import os
from typing import Literal

from ..config import ServiceOptions
from ..errors import InvalidInputError
from ..paths import resolve_db_path
from .base import Storage

__all__ = ["POSTGRES_SCHEMES", "backend_of", "build_storage", "check_storage", "display_name"]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")

Backend = Literal["sqlite", "postgresql"]
Database = str | os.PathLike[str] | None


def backend_of(database: Database) -> Backend:
    """The backend a database argument names (``None`` is the default SQLite file)."""
    if isinstance(database, str) and database.lower().startswith(POSTGRES_SCHEMES):
        return "postgresql"
    return "sqlite"


def build_storage(database: Database, options: ServiceOptions) -> tuple[Storage, str]:
    """The (unopened) storage for ``database``, and the name it is shown by.

    Raises:
        InvalidInputError: not a path, ``":memory:"`` or a supported URL.
    """
    if backend_of(database) == "postgresql":
        assert isinstance(database, str)
        return _postgres_store(database, options)
    from .sqlite.store import SqliteStore

    path = resolve_db_path(database)
    return SqliteStore(path, options), path


def _postgres_store(url: str, options: ServiceOptions) -> tuple[Storage, str]:
    try:
        from .postgres.store import PostgresStore
    except ImportError as exc:
        raise InvalidInputError(
            f"a PostgreSQL URL needs the PostgreSQL driver ({exc.name} is not installed); "
            'install it with: pip install "sessionlite[postgres]"',
            field="database",
        ) from exc
    store = PostgresStore(url, options)
    return store, store.path


_STORAGE_METHODS = ("open", "close", "append", "append_batch", "get_session", "read_events")


def check_storage(candidate: object) -> Storage:
    """``candidate`` if it looks like a :class:`Storage` (its main methods are there).

    Raises:
        InvalidInputError: it is neither a database nor a storage object.
    """
    if not all(callable(getattr(candidate, name, None)) for name in _STORAGE_METHODS):
        raise InvalidInputError(
            "database must be a file path, ':memory:', a postgresql:// URL or a storage "
            f"object (sessionlite.store.base.Storage); got {candidate!r} as path",
            field="database",
        )
    return candidate  # type: ignore[return-value]


def display_name(storage: object) -> str:
    """How a ready storage object given by the caller is named (warnings, ``repr``)."""
    name = getattr(storage, "path", None)
    return name if isinstance(name, str) else type(storage).__name__
