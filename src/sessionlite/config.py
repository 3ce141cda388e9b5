"""Service options: defaults, and validation of what callers pass.

Every option is keyword-only and validated once, at construction; a bad value raises
:class:`~sessionlite.InvalidInputError` naming the option. Durations accept a
``timedelta`` or a number of seconds.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from .errors import InvalidInputError
from .models import utc_now

__all__ = [
    "DEFAULT_BUSY_TIMEOUT",
    "DEFAULT_EVENT_LIMIT",
    "Clock",
    "Duration",
    "ServiceOptions",
    "parse_options",
]

Clock = Callable[[], datetime]
"""A zero-argument callable returning the current timezone-aware datetime."""

DEFAULT_BUSY_TIMEOUT = timedelta(seconds=5)
DEFAULT_EVENT_LIMIT = 1000  # events get_session returns when num_recent_events is not given
DEFAULT_READER_CONNECTIONS = 2
DEFAULT_MAX_WRITE_BATCH = 1000  # write calls gathered into one transaction at most
DEFAULT_CLEANUP_INTERVAL = timedelta(minutes=5)
DEFAULT_SOFT_DELETE_RETENTION = timedelta(days=7)
DEFAULT_PERSIST_WORKERS = 2
DEFAULT_PERSIST_QUEUE_SIZE = 10_000  # events accepted but not yet written, at most
DEFAULT_SUMMARY_WORKERS = 3
DEFAULT_SUMMARY_QUEUE_SIZE = 100
DEFAULT_SUMMARY_JOB_TIMEOUT = timedelta(seconds=60)
DEFAULT_CLOSE_TIMEOUT = timedelta(seconds=30)  # how long aclose() waits for queued work
DEFAULT_POOL_SIZE = 10  # PostgreSQL connections per service
DEFAULT_READ_CACHE_SIZE = 64 * 1024 * 1024  # bytes of hot session tails kept in memory

# Options that only one backend understands: given for the other, they are an error.
SQLITE_ONLY_OPTIONS = frozenset({"synchronous", "reader_connections", "read_cache_size"})
POSTGRES_ONLY_OPTIONS = frozenset({"pool_size", "prepared_statements"})

# PostgreSQL cuts names at 63 bytes; the longest name sessionlite makes is the prefix
# plus "state_scopes_expiry".
POSTGRES_MAX_PREFIX = 63 - len("state_scopes_expiry")
TABLE_PREFIX_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

Duration = timedelta | float
"""A ``timedelta``, or a number of seconds."""
Synchronous = Literal["NORMAL", "FULL"]
QueueFullPolicy = Literal["inline", "reject"]


@dataclasses.dataclass(frozen=True)
class ServiceOptions:
    """The validated options of one :class:`~sessionlite.SessionService`."""

    table_prefix: str = ""
    create_schema: bool = True
    synchronous: Synchronous = "NORMAL"
    busy_timeout: timedelta = DEFAULT_BUSY_TIMEOUT
    event_limit: int | None = DEFAULT_EVENT_LIMIT
    clock: Clock = utc_now
    reader_connections: int = DEFAULT_READER_CONNECTIONS
    read_cache_size: int = DEFAULT_READ_CACHE_SIZE
    max_write_batch: int = DEFAULT_MAX_WRITE_BATCH
    # retention
    max_stored_events: int | None = None
    session_ttl: timedelta | None = None
    app_state_ttl: timedelta | None = None
    user_state_ttl: timedelta | None = None
    refresh_ttl_on_read: bool = False
    cleanup_interval: timedelta = DEFAULT_CLEANUP_INTERVAL
    soft_delete: bool = True
    soft_delete_retention: timedelta = DEFAULT_SOFT_DELETE_RETENTION
    # async persistence
    async_persist: bool = False
    persist_workers: int = DEFAULT_PERSIST_WORKERS
    persist_queue_size: int = DEFAULT_PERSIST_QUEUE_SIZE
    # summaries
    summarizer: Any = None
    summary_workers: int = DEFAULT_SUMMARY_WORKERS
    summary_queue_size: int = DEFAULT_SUMMARY_QUEUE_SIZE
    summary_job_timeout: timedelta = DEFAULT_SUMMARY_JOB_TIMEOUT
    summary_queue_full: QueueFullPolicy = "inline"
    # hooks
    append_event_hooks: tuple[Any, ...] = ()
    get_session_hooks: tuple[Any, ...] = ()
    close_timeout: timedelta = DEFAULT_CLOSE_TIMEOUT
    # PostgreSQL only
    pool_size: int = DEFAULT_POOL_SIZE
    prepared_statements: bool = True


def _bad(option: str, message: str) -> InvalidInputError:
    return InvalidInputError(f"option {option!r}: {message}", field=option)


def parse_duration(option: str, value: object, *, allow_none: bool = False) -> timedelta | None:
    """A positive duration from a ``timedelta`` or a number of seconds."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (timedelta, int, float)):
        raise _bad(option, f"expected a timedelta or a number of seconds, got {value!r}")
    duration = value if isinstance(value, timedelta) else None
    if duration is None:
        seconds = float(value)  # type: ignore[arg-type]
        if not math.isfinite(seconds):
            raise _bad(option, f"expected a finite number of seconds, got {value!r}")
        duration = timedelta(seconds=seconds)
    if duration <= timedelta(0):
        raise _bad(option, f"must be positive, got {value!r}")
    return duration


def _positive_int(option: str, value: object, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _bad(option, f"expected a positive integer, got {value!r}")
    return value


def _bool(option: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise _bad(option, f"expected True or False, got {value!r}")
    return value


def parse_options(*, backend: str | None = None, **options: Any) -> ServiceOptions:
    """Validate keyword options into a :class:`ServiceOptions`.

    Args:
        backend: ``"sqlite"`` or ``"postgresql"``: options only the other backend
            understands are refused. ``None`` checks values only.

    Raises:
        InvalidInputError: an unknown option, or a bad value (the message names it).
    """
    known = {field.name for field in dataclasses.fields(ServiceOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise InvalidInputError(
            f"unknown option(s) {', '.join(map(repr, unknown))}; known options: "
            f"{', '.join(sorted(known))}",
            field=unknown[0],
        )
    foreign = {"sqlite": POSTGRES_ONLY_OPTIONS, "postgresql": SQLITE_ONLY_OPTIONS}
    for name in sorted(set(options) & foreign.get(backend or "", frozenset())):
        other = "PostgreSQL" if backend == "sqlite" else "SQLite"
        here = "a SQLite database (a path)" if backend == "sqlite" else "a PostgreSQL URL"
        raise _bad(name, f"is a {other} option; this service opens {here}")
    values: dict[str, Any] = {}
    if "table_prefix" in options:
        prefix = options["table_prefix"]
        if not isinstance(prefix, str) or (prefix and not TABLE_PREFIX_PATTERN.fullmatch(prefix)):
            raise _bad(
                "table_prefix",
                f"{prefix!r} must match {TABLE_PREFIX_PATTERN.pattern} (letters, digits, '_')",
            )
        if backend == "postgresql" and len(prefix) > POSTGRES_MAX_PREFIX:
            raise _bad(
                "table_prefix",
                f"{prefix!r} is too long for PostgreSQL (at most {POSTGRES_MAX_PREFIX} "
                "characters: its names are limited to 63 bytes)",
            )
        values["table_prefix"] = prefix
    if "create_schema" in options:
        values["create_schema"] = _bool("create_schema", options["create_schema"])
    if "synchronous" in options:
        level = options["synchronous"]
        if not isinstance(level, str) or level.upper() not in ("NORMAL", "FULL"):
            raise _bad("synchronous", f"expected 'NORMAL' or 'FULL', got {level!r}")
        values["synchronous"] = level.upper()
    if "busy_timeout" in options:
        values["busy_timeout"] = parse_duration("busy_timeout", options["busy_timeout"])
    if "event_limit" in options:
        values["event_limit"] = _positive_int(
            "event_limit", options["event_limit"], allow_none=True
        )
    if "clock" in options:
        clock = options["clock"]
        if not callable(clock):
            raise _bad("clock", f"expected a callable returning a datetime, got {clock!r}")
        values["clock"] = clock
    for name in (
        "reader_connections",
        "pool_size",
        "max_write_batch",
        "persist_workers",
        "persist_queue_size",
        "summary_workers",
        "summary_queue_size",
    ):
        if name in options:
            values[name] = _positive_int(name, options[name])
    if "read_cache_size" in options:
        size = options["read_cache_size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise _bad("read_cache_size", f"expected a number of bytes >= 0, got {size!r}")
        values["read_cache_size"] = size
    if "max_stored_events" in options:
        values["max_stored_events"] = _positive_int(
            "max_stored_events", options["max_stored_events"], allow_none=True
        )
    for name in ("session_ttl", "app_state_ttl", "user_state_ttl"):
        if name in options:
            values[name] = parse_duration(name, options[name], allow_none=True)
    for name in (
        "cleanup_interval",
        "soft_delete_retention",
        "summary_job_timeout",
        "close_timeout",
    ):
        if name in options:
            values[name] = parse_duration(name, options[name])
    for name in ("refresh_ttl_on_read", "soft_delete", "async_persist", "prepared_statements"):
        if name in options:
            values[name] = _bool(name, options[name])
    if "summary_queue_full" in options:
        policy = options["summary_queue_full"]
        if policy not in ("inline", "reject"):
            raise _bad("summary_queue_full", f"expected 'inline' or 'reject', got {policy!r}")
        values["summary_queue_full"] = policy
    if "summarizer" in options:
        summarizer = options["summarizer"]
        if summarizer is not None and not callable(getattr(summarizer, "summarize", None)):
            raise _bad(
                "summarizer",
                f"expected an object with an async summarize(request), got {summarizer!r}",
            )
        values["summarizer"] = summarizer
    for name in ("append_event_hooks", "get_session_hooks"):
        if name in options:
            hooks = options[name]
            if isinstance(hooks, (str, bytes)) or not isinstance(hooks, (list, tuple)):
                raise _bad(name, f"expected a list of async hook functions, got {hooks!r}")
            for hook in hooks:
                if not callable(hook):
                    raise _bad(name, f"{hook!r} is not callable")
            values[name] = tuple(hooks)
    return ServiceOptions(**values)
