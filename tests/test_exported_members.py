"""The public surface: __all__ is exactly what the package exports, sorted."""

from __future__ import annotations

import inspect

import aiosqlite

import sessionlite


def test_all_matches_exports() -> None:
    exported = {
        name
        for name, value in vars(sessionlite).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and name != "annotations"  # from __future__ import annotations
    } | {"__version__"}
    assert set(sessionlite.__all__) == exported
    assert len(sessionlite.__all__) == len(exported)  # no duplicates (ruff keeps it sorted)


def test_error_tree() -> None:
    e = sessionlite
    assert issubclass(e.InvalidInputError, ValueError)
    assert issubclass(e.SessionNotFoundError, LookupError)
    for name in (
        "ServiceClosedError",
        "InvalidInputError",
        "SessionNotFoundError",
        "SessionExistsError",
        "StaleSessionError",
        "EventConflictError",
        "SummaryQueueFullError",
        "PersistenceError",
        "StorageError",
    ):
        assert issubclass(getattr(e, name), e.SessionLiteError)
    for name in (
        "StorageFullError",
        "DatabaseLockedError",
        "DatabaseCorruptError",
        "StorageUnavailableError",
    ):
        assert issubclass(getattr(e, name), e.StorageError)
    assert issubclass(e.SchemaVersionError, e.StorageError)
    err = e.PersistenceError("x", event_ids=["a", "b"])
    assert err.event_ids == ("a", "b")


def test_aiosqlite_private_hook_still_exists() -> None:
    # store/sqlite/connection.py runs whole transactions through this private method.
    assert inspect.iscoroutinefunction(aiosqlite.Connection._execute)
    assert "fn" in inspect.signature(aiosqlite.Connection._execute).parameters
