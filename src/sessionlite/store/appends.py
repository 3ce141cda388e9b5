"""What both backends' append paths share, apart from their I/O.

A group of appends is applied in one transaction: the appends are grouped by session
(each session's liveness judged at its first append's time), each is checked against
its session as the group's earlier appends left it, given its sequences, and its rows
are gathered so that each table gets a few multi-row statements. The backends differ
only in how they find (or lock) the sessions, look up already stored events, and run
the statements: SQLite synchronously in its writer thread, PostgreSQL on its loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from ..models import Event
from ..timestamps import to_micros
from .base import AppendCommand, SessionKey
from .codec import EventRow, event_from_row, event_row, loads
from .rules import (
    Appended,
    Retention,
    SessionCursor,
    StoredEvent,
    advance,
    stale_error,
    stored_retry,
    trim_through,
)

__all__ = [
    "AppendJob",
    "AppendRows",
    "LiveSession",
    "by_session",
    "liveness_keys",
    "record",
    "stale",
    "stored_duplicates",
]


class AppendJob(NamedTuple):
    """An append as a writer runs it.

    Its rows were built and encoded when the append was accepted (see
    :class:`~sessionlite.validation.PreparedEvent`), so the writer only binds them.
    """

    command: AppendCommand
    now_us: int

    @classmethod
    def build(cls, command: AppendCommand) -> AppendJob:
        return cls(command, to_micros(command.now))


@dataclasses.dataclass(slots=True)
class LiveSession(SessionCursor[int]):
    """A live session's row as a write sees it (``updated_at`` in microseconds)."""

    pk: int = 0


def by_session(jobs: Sequence[AppendJob]) -> dict[SessionKey, list[int]]:
    """The jobs' indexes per session, in order."""
    groups: dict[SessionKey, list[int]] = {}
    for index, job in enumerate(jobs):
        groups.setdefault(job.command.key, []).append(index)
    return groups


def liveness_keys(
    groups: dict[SessionKey, list[int]], jobs: Sequence[AppendJob]
) -> list[tuple[SessionKey, int]]:
    """``(key, now_us)`` per session: liveness is judged at the first append's time (an
    expiry ends a session for good)."""
    return [(key, jobs[indexes[0]].now_us) for key, indexes in groups.items()]


def stale(key: SessionKey, session: LiveSession, job: AppendJob) -> Exception | None:
    """The error of an append whose ``expected_version`` the session has moved past."""
    expected = job.command.expected_version
    if expected is not None and expected != session.version:
        return stale_error(key, expected, session.version)
    return None


def record(session: LiveSession, job: AppendJob, rows: AppendRows) -> Appended:
    """Give an accepted append its sequences, move ``session`` on, gather its rows."""
    first = advance(session, len(job.command.events), job.now_us)
    rows.add(job, session.pk, first)
    return Appended(first, session.version, job.now_us)


def stored_duplicates(
    key: SessionKey, events: Sequence[Any], rows_by_id: Callable[[str], EventRow | None]
) -> list[Event] | None:
    """The stored events when every event of the call is already stored identically
    (see :func:`~sessionlite.store.rules.stored_retry`); ``rows_by_id`` gives an event
    id's stored row. Compared with the snapshots taken at acceptance (not the event
    objects, which the caller may have changed since), bodies as JSON values."""

    def find(event_id: str) -> tuple[StoredEvent, Event] | None:
        row = rows_by_id(event_id)
        if row is None:
            return None
        _sequence, _id, author, timestamp_us, branch, body = row
        old = StoredEvent(author, timestamp_us, branch, loads(body, f"event {event_id!r}"))
        return old, event_from_row(row)

    return stored_retry(
        key,
        [p.snapshot for p in events],
        find,
        timestamp=lambda snapshot: to_micros(snapshot.timestamp),
        parse=lambda body: loads(body, "the new event"),
    )


class AppendRows:
    """Everything a group of appends writes. State is merged per key (last write wins),
    so a key written by many appends of the group is written once."""

    def __init__(self, policy: Retention) -> None:
        self.policy = policy
        self.events: list[tuple[Any, ...]] = []
        # (pk, version, last_sequence, updated_at, expires_at) per session written
        self.sessions: list[tuple[int, int, int, int, int | None]] = []
        self.trims: list[tuple[int, int]] = []  # (pk, highest sequence removed)
        self.session_state: dict[tuple[int, str], str] = {}
        self.app_state: dict[tuple[str, str], tuple[str, int]] = {}
        self.user_state: dict[tuple[str, str, str], tuple[str, int]] = {}

    def add(self, job: AppendJob, pk: int, first_sequence: int) -> None:
        command = job.command
        self.events.extend(
            (pk, sequence, *event_row(p.snapshot))
            for sequence, p in enumerate(command.events, first_sequence)
        )
        delta = command.delta
        for key, value in delta.session:
            self.session_state[pk, key] = value
        if delta.app or delta.user:
            app_name, user_id = command.key.app_name, command.key.user_id
            for key, value in delta.app:
                self.app_state[app_name, key] = (value, job.now_us)
            for key, value in delta.user:
                self.user_state[app_name, user_id, key] = (value, job.now_us)

    def advance(self, session: LiveSession) -> None:
        """The session row after the group's appends (and the trim they make due)."""
        policy = self.policy
        self.sessions.append(
            (
                session.pk,
                session.version,
                session.last_sequence,
                session.updated_at,
                policy.expiry(session.updated_at, policy.session_ttl_us),
            )
        )
        through = trim_through(session.last_sequence, policy.max_stored_events)
        if through is not None:
            self.trims.append((session.pk, through))

    def session_state_rows(self) -> list[tuple[int, str, str]]:
        """(pk, key, value), in key order (the order rows are locked in)."""
        return [(pk, key, value) for (pk, key), value in sorted(self.session_state.items())]

    def app_state_rows(self) -> list[tuple[str, str, str, int]]:
        """(app, key, value, now)."""
        return [(app, key, value, now) for (app, key), (value, now) in self.app_state.items()]

    def user_state_rows(self) -> list[tuple[str, str, str, str, int]]:
        """(app, user, key, value, now)."""
        return [
            (app, user, key, value, now)
            for (app, user, key), (value, now) in self.user_state.items()
        ]
