"""Keeping the caller's in-memory ``Session`` objects in step with what was stored.

After a write, the service updates the :class:`~sessionlite.Session` the caller passed
in (its events, state, version and timestamps) instead of reading the session back.
These helpers do that, from a store outcome or, with ``async_persist``, from an append
that was only accepted so far.
"""

from __future__ import annotations

from datetime import datetime

from .config import ServiceOptions
from .models import Event, Session
from .store.base import AppendOutcome
from .validation import PreparedEvent

__all__ = [
    "RETRY_WINDOW",
    "apply_accepted",
    "apply_in_memory",
    "apply_outcome",
    "set_bookkeeping",
]

RETRY_WINDOW = 8  # newest in-memory events checked for a retried id (async_persist)


def apply_in_memory(session: Session, prepared: PreparedEvent, event: Event) -> None:
    """Add one event to the session's list and its whole delta to the session's state."""
    session.events.append(event)
    session.state.update(prepared.delta)


def set_bookkeeping(
    session: Session, version: int, updated_at: datetime, options: ServiceOptions
) -> None:
    """Set the session's version, ``updated_at`` and (with a TTL) ``expires_at``."""
    # Values straight from the store: skip assignment validation on this hot path.
    session.__dict__["version"] = version
    session.__dict__["updated_at"] = updated_at
    if options.session_ttl is not None:
        session.__dict__["expires_at"] = updated_at + options.session_ttl


def apply_outcome(
    session: Session,
    prepared: list[PreparedEvent],
    outcome: AppendOutcome,
    options: ServiceOptions,
) -> list[Event]:
    """Apply a stored append to the session; returns the events as stored.

    Partial (streaming) events were not stored: they are applied as given.
    """
    stored = iter(outcome.events)
    known = {event.id for event in session.events} if outcome.duplicate else set()
    results = []
    for p in prepared:
        event = p.event if p.event.partial else next(stored)
        if event.id not in known:
            apply_in_memory(session, p, event)
        results.append(event)
    set_bookkeeping(session, outcome.version, outcome.updated_at, options)
    return results


def apply_accepted(
    session: Session, prepared: list[PreparedEvent], now: datetime, options: ServiceOptions
) -> list[Event]:
    """async_persist: apply an accepted (not yet written) append to the session.

    Events get their ``sequence`` when written (the same objects are updated).
    """
    # A retry repeats recent events: look for them among the newest few only, so
    # accepting stays O(1) however long the in-memory history grows.
    known = {event.id for event in session.events[-RETRY_WINDOW:]}
    if all(p.event.id in known for p in prepared):
        # A retry of events this session object already holds: the store will
        # find them identical (or report a conflict), so nothing changes here.
        return [p.event for p in prepared]
    for p in prepared:
        if p.event.id not in known:
            apply_in_memory(session, p, p.event)
    set_bookkeeping(session, session.version + 1, now, options)
    return [p.event for p in prepared]
