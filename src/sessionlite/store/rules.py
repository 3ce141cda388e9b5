"""Rules every storage backend applies the same way, written once.

A backend reads what it needs inside its transaction (the session's version and last
sequence, the stored copies of retried event ids) and asks these functions what the
contract says: whether an append is stale, a retry or a conflict, which sequences it
gets, what the session looks like after it, and which old events retention trims. The
SQL, and how the answers are written, stay in each backend.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Generic, NamedTuple, TypeVar

from ..config import ServiceOptions
from ..errors import EventConflictError, StaleSessionError
from ..models import Event
from ..timestamps import from_micros
from ..validation import EventSnapshot
from .base import AppendCommand, AppendOutcome, SessionKey

__all__ = [
    "AlreadyStored",
    "Appended",
    "Retention",
    "SessionCursor",
    "StoredEvent",
    "advance",
    "append_outcome",
    "conflict_error",
    "scope_expired",
    "stale_error",
    "stored_retry",
    "summary_supersedes",
    "trim_through",
]

Stamp = TypeVar("Stamp")  # a backend's own encoding of "updated at"


@dataclasses.dataclass(slots=True)
class SessionCursor(Generic[Stamp]):
    """What a write needs to know about a live session, moved forward by each append."""

    version: int
    last_sequence: int
    updated_at: Stamp


@dataclasses.dataclass(frozen=True, slots=True)
class StoredEvent:
    """An already stored event in the terms of :class:`EventSnapshot` (body parsed)."""

    author: str
    timestamp: Any  # compared with the snapshot's, in the backend's encoding
    branch: str
    body: Any


class Retention(NamedTuple):
    """The store's retention rules, in microseconds (None: never)."""

    session_ttl_us: int | None = None
    app_state_ttl_us: int | None = None
    user_state_ttl_us: int | None = None
    soft_delete: bool = False
    max_stored_events: int | None = None

    @classmethod
    def from_options(cls, options: ServiceOptions) -> Retention:
        return cls(
            session_ttl_us=_micros(options.session_ttl),
            app_state_ttl_us=_micros(options.app_state_ttl),
            user_state_ttl_us=_micros(options.user_state_ttl),
            soft_delete=options.soft_delete,
            max_stored_events=options.max_stored_events,
        )

    def expiry(self, now_us: int, ttl_us: int | None) -> int | None:
        return None if ttl_us is None else now_us + ttl_us


def _micros(duration: timedelta | None) -> int | None:
    return None if duration is None else duration // timedelta(microseconds=1)


def summary_supersedes(stored_through: int | None, new_through: int) -> bool:
    """Whether a new summary replaces the stored one of its branch: a summary never goes
    backwards (a slow job, or another process, may finish after a newer one)."""
    return stored_through is None or new_through >= stored_through


def scope_expired(expires_at_us: int | None, now_us: int) -> bool:
    """Whether an app or user state scope has expired: its keys are then gone for good
    (a write to it starts from empty state, never bringing old keys back)."""
    return expires_at_us is not None and expires_at_us <= now_us


def stale_error(key: SessionKey, expected: int, actual: int) -> StaleSessionError:
    return StaleSessionError(
        f"session {key.session_id!r} is at version {actual}, not {expected}; reload it "
        "with get_session and retry",
        app_name=key.app_name,
        user_id=key.user_id,
        session_id=key.session_id,
        expected_version=expected,
        actual_version=actual,
    )


def conflict_error(key: SessionKey, event_id: str, why: str) -> EventConflictError:
    return EventConflictError(
        f"event {event_id!r} is already stored in session {key.session_id!r} {why}; "
        "use a new event id",
        app_name=key.app_name,
        user_id=key.user_id,
        session_id=key.session_id,
        event_id=event_id,
    )


T = TypeVar("T")


def stored_retry(
    key: SessionKey,
    events: Sequence[EventSnapshot],
    find: Callable[[str], tuple[StoredEvent, T] | None],
    *,
    timestamp: Callable[[EventSnapshot], Any],
    parse: Callable[[str], Any],
) -> list[T] | None:
    """Idempotent retries: the stored events when every event of the call is stored
    identically; None when none is stored.

    ``find(event_id)`` gives the stored event (and what the backend returns for it);
    ``timestamp`` and ``parse`` put a snapshot in the stored event's terms.

    Raises:
        EventConflictError: an event is stored with different content, or only some
            of the call's events are stored.
    """
    stored: list[T] = []
    first_stored = ""
    for new in events:
        found = find(new.event_id)
        if found is None:
            continue
        old, result = found
        first_stored = first_stored or new.event_id
        same = (old.author, old.timestamp, old.branch) == (
            new.author,
            timestamp(new),
            new.branch,
        ) and old.body == parse(new.body)
        if not same:
            raise conflict_error(key, new.event_id, "with different content")
        stored.append(result)
    if not stored:
        return None
    if len(stored) != len(events):
        raise conflict_error(key, first_stored, "while other events of the same call are new")
    return stored


def advance(cursor: SessionCursor[Stamp], count: int, now: Stamp) -> int:
    """Give an append of ``count`` events its sequences; returns the first.

    Sequences are strictly increasing per session and never reused; every persisted
    write bumps the version by one.
    """
    first = cursor.last_sequence + 1
    cursor.last_sequence += count
    cursor.version += 1
    cursor.updated_at = now
    return first


def trim_through(last_sequence: int, max_stored_events: int | None) -> int | None:
    """The highest sequence retention removes (``max_stored_events``), if any."""
    if max_stored_events is None or last_sequence <= max_stored_events:
        return None
    return last_sequence - max_stored_events


class Appended(NamedTuple):
    """What the writer thread reports for a stored append (the loop builds the rest)."""

    first_sequence: int
    version: int
    updated_at_us: int


class AlreadyStored(NamedTuple):
    """Every event of the append was already stored identically (a retried call)."""

    events: list[Event]
    version: int
    updated_at_us: int


def append_outcome(command: AppendCommand, result: Appended | AlreadyStored) -> AppendOutcome:
    """What the service gets for a stored append (a retry gets the stored events)."""
    if isinstance(result, AlreadyStored):
        # A retried call: the caller's copies learn the sequences they were stored with.
        for prepared, stored in zip(command.events, result.events, strict=True):
            prepared.event.__dict__["sequence"] = stored.sequence
        return AppendOutcome(
            events=result.events,
            version=result.version,
            updated_at=from_micros(result.updated_at_us),
            duplicate=True,
        )
    events = []
    for sequence, prepared in enumerate(command.events, start=result.first_sequence):
        # The prepared event is the service's private copy: give it its sequence in
        # place (a trusted int, so without assignment validation).
        prepared.event.__dict__["sequence"] = sequence
        events.append(prepared.event)
    return AppendOutcome(events=events, version=result.version, updated_at=command.now)
