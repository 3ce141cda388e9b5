"""The narrow interface between the service and a storage backend.

The service (validation, hooks, in-memory session updates, workers) only talks to a
:class:`Storage`. A backend owns its connections, transactions, and how it batches
concurrent writes (SQLite: group commit through one writer; a PostgreSQL backend would
use a pool). Commands carry already-validated, already-snapshotted data and the time
"now" from the service's clock, so backends never call the clock themselves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple, Protocol

from anyio.abc import TaskGroup
from pydantic import JsonValue

from ..errors import SessionExistsError, SessionNotFoundError
from ..models import Event, Session, SessionPage, Summary
from ..state import EncodedDelta, ScopedDelta
from ..validation import PreparedEvent

if TYPE_CHECKING:
    from .hot_cache import CacheStats

# Records created once per append are NamedTuples: several times cheaper to build than
# frozen dataclasses on the hot path, and just as immutable.


class SessionKey(NamedTuple):
    app_name: str
    user_id: str
    session_id: str


def not_found(key: SessionKey) -> SessionNotFoundError:
    return SessionNotFoundError(
        f"session {key.session_id!r} (app {key.app_name!r}, user {key.user_id!r}) does not "
        "exist, expired or was deleted",
        app_name=key.app_name,
        user_id=key.user_id,
        session_id=key.session_id,
    )


def already_exists(key: SessionKey) -> SessionExistsError:
    return SessionExistsError(
        f"session {key.session_id!r} already exists for app {key.app_name!r}, user "
        f"{key.user_id!r}; use get_session or get_or_create_session",
        app_name=key.app_name,
        user_id=key.user_id,
        session_id=key.session_id,
    )


@dataclasses.dataclass(frozen=True)
class NewSession:
    """What ``create_session`` stores (``state`` already split by scope)."""

    key: SessionKey
    agent_id: str | None
    metadata: dict[str, JsonValue]
    state: ScopedDelta
    now: datetime


@dataclasses.dataclass(frozen=True)
class EventQuery:
    """Which events a session read returns: the newest ``limit`` matching ones."""

    limit: int | None
    after: datetime | None = None
    branch: str | None = None


@dataclasses.dataclass(frozen=True)
class EventFilter:
    """Filters for paging through a history (``iter_events``)."""

    after_sequence: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    author: str | None = None
    branch: str | None = None


class AppendCommand(NamedTuple):
    """One atomic append: its events are all stored with the merged state delta, or none.

    ``events`` are validated private copies with the rows to store, without ``temp:``
    keys in their deltas and with ``sequence`` unset; ``delta`` is the merged persisted
    delta of all of them, encoded.
    """

    key: SessionKey
    events: Sequence[PreparedEvent]
    delta: EncodedDelta
    expected_version: int | None
    now: datetime


class AppendOutcome(NamedTuple):
    """The stored result of an :class:`AppendCommand`.

    ``events`` are the stored events (with sequences); ``duplicate`` is True when every
    event was already stored identically (an idempotent retry: nothing was written).
    """

    events: list[Event]
    version: int
    updated_at: datetime
    duplicate: bool = False


class CleanupStep(NamedTuple):
    """What one small cleanup transaction did (all zero: nothing left to do)."""

    expired_sessions: int = 0
    purged_sessions: int = 0
    deleted_events: int = 0
    expired_app_states: int = 0
    expired_user_states: int = 0
    deleted_state_keys: int = 0

    @property
    def did_work(self) -> bool:
        return any(self)


class SessionWrite(NamedTuple):
    """The session's bookkeeping after a write (pop, clear, direct state update)."""

    version: int
    updated_at: datetime


class Storage(Protocol):
    """What a storage backend provides.

    All methods are safe to call concurrently, from any event loop in any thread (the
    service is awaited from wherever its users are, see :mod:`sessionlite.crossloop`);
    :meth:`open` and :meth:`close` run on the service's own loop.
    """

    async def open(self, task_group: TaskGroup) -> None:
        """Connect and start any background task in ``task_group`` (the service's)."""
        ...

    async def close(self) -> None:
        """Finish every submitted write, then release the connections."""
        ...

    def write_statistics(self) -> tuple[int, int]:
        """(transactions committed, write calls they carried)."""
        ...

    def cache_statistics(self) -> CacheStats | None:
        """The read cache's counters, if the backend has one."""
        ...

    def is_transient(self, error: object) -> bool:
        """Whether ``error`` (a result of :meth:`append_batch`) is worth retrying."""
        ...

    async def create_session(self, new: NewSession, *, event_limit: int | None) -> Session:
        """Store a new session; :class:`SessionExistsError` if a live one has the key."""
        ...

    async def get_or_create_session(
        self, new: NewSession, *, event_limit: int | None
    ) -> tuple[Session, bool]:
        """Atomically read the live session or create it; True when created."""
        ...

    async def get_session(
        self, key: SessionKey, query: EventQuery, *, now: datetime
    ) -> Session | None: ...

    async def list_sessions(
        self,
        *,
        app_name: str,
        user_id: str | None,
        limit: int,
        cursor: str | None,
        now: datetime,
    ) -> SessionPage: ...

    async def delete_session(self, key: SessionKey, *, now: datetime) -> bool: ...

    async def append(self, command: AppendCommand) -> AppendOutcome:
        """Durably store one command (may be grouped with concurrent ones)."""
        ...

    async def append_batch(
        self, commands: Sequence[AppendCommand]
    ) -> list[AppendOutcome | Exception]:
        """Store many independent commands in one transaction; each fails alone."""
        ...

    async def replace_events(self, command: AppendCommand) -> AppendOutcome:
        """In one transaction: remove every event of the session, then store ``command``."""
        ...

    async def read_events(
        self, key: SessionKey, flt: EventFilter, *, limit: int, now: datetime
    ) -> list[Event] | None:
        """Up to ``limit`` events after ``flt.after_sequence``; None if the session is gone."""
        ...

    async def pop_event(
        self, key: SessionKey, *, now: datetime
    ) -> tuple[Event | None, SessionWrite]: ...

    async def clear_events(self, key: SessionKey, *, now: datetime) -> tuple[int, SessionWrite]: ...

    async def update_session_state(
        self, key: SessionKey, delta: dict[str, JsonValue], *, now: datetime
    ) -> SessionWrite: ...

    async def get_app_state(self, app_name: str, *, now: datetime) -> dict[str, JsonValue]: ...

    async def update_app_state(
        self, app_name: str, delta: dict[str, JsonValue], *, now: datetime
    ) -> None: ...

    async def delete_app_state(self, app_name: str, key: str, *, now: datetime) -> bool: ...

    async def get_user_state(
        self, app_name: str, user_id: str, *, now: datetime
    ) -> dict[str, JsonValue]: ...

    async def update_user_state(
        self, app_name: str, user_id: str, delta: dict[str, JsonValue], *, now: datetime
    ) -> None: ...

    async def delete_user_state(
        self, app_name: str, user_id: str, key: str, *, now: datetime
    ) -> bool: ...

    async def put_summary(self, key: SessionKey, summary: Summary, *, now: datetime) -> bool:
        """Store a summary; False if the session is gone."""
        ...

    async def get_summary(
        self, key: SessionKey, branch: str, *, now: datetime
    ) -> Summary | None: ...

    async def refresh_expiry(self, key: SessionKey, *, now: datetime) -> None: ...

    async def has_cleanup_work(self, *, now: datetime, purge_before: datetime) -> bool: ...

    async def cleanup_step(self, *, now: datetime, purge_before: datetime) -> CleanupStep:
        """One small transaction of cleanup work (see the SQLite backend's cleanup.py)."""
        ...
