"""What both backends say when a schema check on open fails.

How a backend finds its tables, columns and version is its own (and so are the columns
it requires); the verdicts are written once here.
"""

from __future__ import annotations

from ..errors import SchemaVersionError, StorageError

__all__ = [
    "DATA_TABLES",
    "check_version",
    "foreign_table_error",
    "not_created_error",
    "not_migrated_error",
]

# The tables both backends keep sessions in (each may add its own bookkeeping table).
DATA_TABLES = (
    "sessions",
    "events",
    "session_state",
    "app_state",
    "user_state",
    "summaries",
    "state_scopes",
)


def check_version(version: int, supported: int, where: str) -> None:
    """Refuse a schema written by a newer sessionlite."""
    if version > supported:
        raise SchemaVersionError(
            f"{where} has schema version {version}, but this sessionlite supports up to "
            f"{supported}; upgrade sessionlite to open it"
        )


def foreign_table_error(where: str, table: str, lacking: set[str]) -> StorageError:
    """A table named like one of ours that lacks our columns: someone else's."""
    return StorageError(
        f"{where} already has a table {table} that sessionlite did not create (it lacks "
        f"{', '.join(sorted(lacking))}); use another database, or a table_prefix to keep "
        "sessionlite's tables apart"
    )


def not_created_error(where: str, missing: list[str]) -> StorageError:
    return StorageError(
        f"{where} lacks table(s) {', '.join(missing)} and create_schema=False; create the "
        "schema (open once with create_schema=True) or fix table_prefix"
    )


def not_migrated_error(where: str, version: int, supported: int) -> StorageError:
    return StorageError(
        f"{where} has schema version {version} (current is {supported}) and "
        "create_schema=False; open it once with create_schema=True to migrate"
    )
