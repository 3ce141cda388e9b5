"""Where the database lives: the default per-user location and path checking."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from .errors import InvalidInputError

__all__ = ["DEFAULT_DB_FILENAME", "default_db_path", "resolve_db_path"]

DEFAULT_DB_FILENAME = "sessions.db"


def default_db_path() -> Path:
    """Where ``SessionService(path=None)`` keeps its database (the per-user data dir)."""
    return platformdirs.user_data_path("sessionlite", appauthor=False) / DEFAULT_DB_FILENAME


def resolve_db_path(path: str | os.PathLike[str] | None) -> str:
    """The database path to open: ``None`` is :func:`default_db_path` (its directory is
    created), a path-like is turned into a non-empty ``str`` with ``~`` expanded;
    ``":memory:"`` passes as is.

    Raises:
        InvalidInputError: ``path`` is not a path-like, or is empty.
    """
    if path is None:
        target = default_db_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        return str(target)
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise InvalidInputError(f"path must be a file path or ':memory:', got {path!r}")
    return path if path == ":memory:" else os.path.expanduser(path)
