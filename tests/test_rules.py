"""The backend-neutral rules (sessionlite.store.rules), on their own."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest

from sessionlite import EventConflictError
from sessionlite.store.base import SessionKey
from sessionlite.store.rules import (
    SessionCursor,
    StoredEvent,
    advance,
    stale_error,
    stored_retry,
    summary_supersedes,
    trim_through,
)
from sessionlite.validation import EventSnapshot

KEY = SessionKey("a", "u", "s")
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def snapshot(event_id: str, body: str = '{"content":1}') -> EventSnapshot:
    return EventSnapshot(event_id, "user", T0, "", body)


def retry(events: list[EventSnapshot], stored: dict[str, StoredEvent]) -> Any:
    def find(event_id: str) -> tuple[StoredEvent, str] | None:
        old = stored.get(event_id)
        return None if old is None else (old, f"stored {event_id}")

    return stored_retry(KEY, events, find, timestamp=lambda s: s.timestamp, parse=json.loads)


SAME = StoredEvent("user", T0, "", {"content": 1})


def test_sequences_and_versions_move_forward() -> None:
    cursor = SessionCursor(version=3, last_sequence=7, updated_at=0)
    assert advance(cursor, 2, 10) == 8
    assert (cursor.version, cursor.last_sequence, cursor.updated_at) == (4, 9, 10)
    assert advance(cursor, 1, 11) == 10


def test_retention_trims_the_oldest() -> None:
    assert trim_through(10, None) is None
    assert trim_through(10, 10) is None
    assert trim_through(12, 10) == 2


def test_retries_duplicates_and_conflicts() -> None:
    assert retry([snapshot("e1")], {}) is None
    assert retry([snapshot("e1"), snapshot("e2")], {"e1": SAME, "e2": SAME}) == [
        "stored e1",
        "stored e2",
    ]
    with pytest.raises(EventConflictError, match="different content") as info:
        retry([snapshot("e1", '{"content":2}')], {"e1": SAME})
    assert info.value.event_id == "e1"
    with pytest.raises(EventConflictError, match="other events of the same call are new"):
        retry([snapshot("e1"), snapshot("e2")], {"e2": SAME})


def test_stale_error_says_both_versions() -> None:
    error = stale_error(KEY, 3, 5)
    assert (error.expected_version, error.actual_version) == (3, 5)
    assert "version 5, not 3" in str(error)


def test_a_summary_never_goes_backwards() -> None:
    assert summary_supersedes(None, 0)
    assert summary_supersedes(10, 10)  # a re-run over the same events replaces it
    assert summary_supersedes(10, 12)
    assert not summary_supersedes(10, 9)
