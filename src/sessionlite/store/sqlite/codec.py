"""Rows to models and back: one function per type, nothing else touches row layouts.

A row that does not decode raises :class:`~sessionlite.DatabaseCorruptError`; rows are
never skipped silently.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pydantic_core
from pydantic import JsonValue, ValidationError

from ...errors import DatabaseCorruptError, InvalidInputError
from ...models import Event, Session, Summary
from ...timestamps import from_micros

EVENT_SELECT = "sequence, event_id, author, timestamp, branch, body"
SESSION_SELECT = (
    "pk, app_name, user_id, session_id, agent_id, metadata, created_at, updated_at, "
    "expires_at, version"
)

EventRow = tuple[int, str, str, int, str, str]
SessionRow = tuple[int, str, str, str, "str | None", str, int, int, "int | None", int]


def dumps(value: Any) -> str:
    """Compact JSON for a value already checked to be JSON (see :mod:`..validation`).

    pydantic-core's encoder is several times faster than :mod:`json` for small values;
    what it cannot encode (e.g. a lone surrogate) raises :class:`InvalidInputError`.
    """
    try:
        return pydantic_core.to_json(value).decode()
    except pydantic_core.PydanticSerializationError as exc:
        raise InvalidInputError(f"value is not JSON-serializable: {exc}") from exc


def loads(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise DatabaseCorruptError(f"stored {what} is not valid JSON: {exc}") from exc


def event_from_row(row: EventRow) -> Event:
    sequence, event_id, author, timestamp, branch, body = row
    data = loads(body, f"event {event_id!r}")
    if not isinstance(data, dict):
        raise DatabaseCorruptError(f"stored event {event_id!r} is not a JSON object")
    data.update(
        id=event_id,
        author=author,
        timestamp=from_micros(timestamp),
        branch=branch,
        sequence=sequence,
    )
    try:
        return Event.model_validate(data)
    except ValidationError as exc:
        raise DatabaseCorruptError(f"stored event {event_id!r} does not decode: {exc}") from exc


def state_from_rows(rows: Iterable[tuple[str, str]], what: str) -> dict[str, JsonValue]:
    return {key: loads(value, f"{what} key {key!r}") for key, value in rows}


def session_from_row(
    row: SessionRow,
    *,
    state: dict[str, JsonValue],
    events: list[Event],
    summaries: dict[str, Summary],
) -> Session:
    _pk, app_name, user_id, session_id, agent_id, metadata, created, updated, expires, version = row
    try:
        return Session(
            app_name=app_name,
            user_id=user_id,
            id=session_id,
            agent_id=agent_id,
            metadata=loads(metadata, f"metadata of session {session_id!r}"),
            state=state,
            events=events,
            summaries=summaries,
            created_at=from_micros(created),
            updated_at=from_micros(updated),
            expires_at=None if expires is None else from_micros(expires),
            version=version,
        )
    except ValidationError as exc:
        raise DatabaseCorruptError(f"stored session {session_id!r} does not decode: {exc}") from exc


def summary_from_row(row: tuple[str, str, int, int]) -> Summary:
    branch, text, through_sequence, updated_at = row
    try:
        return Summary(
            branch=branch,
            text=text,
            through_sequence=through_sequence,
            updated_at=from_micros(updated_at),
        )
    except ValidationError as exc:
        raise DatabaseCorruptError(f"stored summary {branch!r} does not decode: {exc}") from exc
