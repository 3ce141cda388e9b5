"""Rows to models and back, for both backends: one function per type.

Both backends store the same row layout: JSON text for values, bodies and metadata,
integer microseconds since the Unix epoch (UTC) for timestamps, so this is the one
place that decodes them.

A row that does not decode raises :class:`~sessionlite.DatabaseCorruptError`; rows are
never skipped silently.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import pydantic_core
from pydantic import JsonValue, ValidationError

from ..errors import DatabaseCorruptError, InvalidInputError
from ..models import Event, Session, Summary, Usage, trusted_event, trusted_usage
from ..state import merged_view
from ..timestamps import from_micros, to_micros
from ..validation import EventSnapshot

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
    """Parse stored JSON; :class:`~sessionlite.DatabaseCorruptError` if it is not JSON."""
    try:
        return parse_json(text)
    except ValueError as exc:
        raise DatabaseCorruptError(f"stored {what} is not valid JSON: {exc}") from exc


def parse_json(text: str) -> Any:
    """pydantic-core's parser (several times faster than :mod:`json`, and exact for every
    value sessionlite writes); :mod:`json` for values nested deeper than it accepts."""
    try:
        return pydantic_core.from_json(text)
    except ValueError:
        return json.loads(text)  # deep nesting, or really not JSON (then it raises)


def event_row(snapshot: EventSnapshot) -> tuple[str, str, int, str, str]:
    """The columns an accepted event is stored in, after ``session_pk, sequence``."""
    event_id, author, timestamp, branch, body = snapshot
    return event_id, author, to_micros(timestamp), branch, body


def event_from_row(row: EventRow) -> Event:
    """The event a row stores (:class:`~sessionlite.DatabaseCorruptError` if it does not
    decode)."""
    data = _row_data(row)
    if _is_plain(data):
        return trusted_event(_plain_fields(data), set(data))
    try:
        return Event.model_validate(data)
    except ValidationError as exc:
        raise DatabaseCorruptError(f"stored event {row[1]!r} does not decode: {exc}") from exc


def plain_fields(row: EventRow) -> tuple[dict[str, Any], frozenset[str]] | None:
    """Every field of the plain event a row stores (see ``_PLAIN_FIELDS``) and the names of
    those it set; None for an event that needs validation (e.g. it has tool calls). For
    callers that build many events from the same row (the read cache)."""
    data = _row_data(row)
    if not _is_plain(data):
        return None
    return _plain_fields(data), frozenset(data)


def _row_data(row: EventRow) -> dict[str, Any]:
    """The body's fields plus the columns', as stored (nothing checked beyond JSON)."""
    sequence, event_id, author, timestamp, branch, body = row
    try:
        data = parse_json(body)
    except ValueError as exc:
        raise DatabaseCorruptError(f"stored event {event_id!r} is not valid JSON: {exc}") from exc
    if type(data) is not dict:
        raise DatabaseCorruptError(f"stored event {event_id!r} is not a JSON object")
    data["id"] = event_id
    data["author"] = author
    data["timestamp"] = from_micros(timestamp)
    data["branch"] = branch
    data["sequence"] = sequence
    return data


def _plain_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Every field, in model order: defaults, fresh containers, then the stored values."""
    fields = {**_PLAIN_TEMPLATE, "tool_calls": [], "tool_results": [], **data}
    if "state_delta" not in data:
        fields["state_delta"] = {}
    if "metadata" not in data:
        fields["metadata"] = {}
    usage = data.get("usage")
    if usage is not None:
        fields["usage"] = trusted_usage({**_USAGE_DEFAULTS, **usage}, set(usage))
    return fields


# Event fields a plain stored event may carry, and the check each value must pass. An
# event with only these (no tool calls or tool results: lists of nested models) and
# well-typed values is built without running pydantic validation: reads return many
# events, and validating each one was most of a read's cost. Anything else goes
# through full validation, so a damaged row is still reported, never returned.
_PLAIN_FIELDS: dict[str, Any] = {
    "id": str,
    "author": str,
    "timestamp": datetime,
    "branch": str,
    "sequence": int,
    "content": None,  # any JSON value
    "reasoning": (str, type(None)),
    "state_delta": dict,
    "invocation_id": (str, type(None)),
    "agent_id": (str, type(None)),
    "model": (str, type(None)),
    "metadata": dict,
    "usage": "usage",  # token counts: see _is_usage
}
# Fields whose default is made by a factory (a fresh list or dict), except the id and
# the timestamp, which a stored event always has.
_FACTORIES: dict[str, Any] = {
    name: info.default_factory
    for name, info in Event.model_fields.items()
    if info.default_factory is not None and name not in ("id", "timestamp")
}
_PLAIN_TEMPLATE: dict[str, Any] = {
    name: None if info.is_required() or info.default_factory else info.default
    for name, info in Event.model_fields.items()
}
_NOT_PLAIN = object()
# event_from_row makes these fresh containers by hand (faster than calling factories).
assert set(_FACTORIES) == {"tool_calls", "tool_results", "state_delta", "metadata"}


def _is_plain(data: dict[str, Any]) -> bool:
    for name, value in data.items():
        kind = _PLAIN_FIELDS.get(name, _NOT_PLAIN)
        if kind is None:
            continue
        if kind == "usage":
            if not _is_usage(value):
                return False
        elif kind is _NOT_PLAIN or not isinstance(value, kind):
            return False
    # The id and author columns are never empty, and a branch has no empty segment:
    # the model's own rules, checked here as validation would.
    branch = data["branch"]
    return bool(data["id"]) and (not branch or "" not in branch.split("/"))


def _is_usage(value: Any) -> bool:
    """Stored token counts, as :class:`~sessionlite.Usage` validation would accept them."""
    return type(value) is dict and all(
        name in _USAGE_DEFAULTS and type(count) is int and count >= 0
        for name, count in value.items()
    )


_USAGE_DEFAULTS = {name: info.default for name, info in Usage.model_fields.items()}


def state_from_rows(rows: Iterable[tuple[str, str]], what: str) -> dict[str, JsonValue]:
    return {key: loads(value, f"{what} key {key!r}") for key, value in rows}


def scoped_state(
    session_rows: Iterable[tuple[str, str]],
    app_rows: Iterable[tuple[str, str]],
    user_rows: Iterable[tuple[str, str]],
    *,
    session_id: str,
    app_name: str,
    user_id: str,
) -> dict[str, JsonValue]:
    """``Session.state`` from the (key, JSON text) rows of its three scopes."""
    return merged_view(
        state_from_rows(session_rows, f"state of session {session_id!r}"),
        state_from_rows(app_rows, f"app state of {app_name!r}"),
        state_from_rows(user_rows, f"user state of {user_id!r}"),
    )


def summaries_from_rows(rows: Iterable[tuple[str, str, int, int]]) -> dict[str, Summary]:
    """A session's summaries, by branch."""
    summaries = {}
    for row in rows:
        summary = summary_from_row(row)
        summaries[summary.branch] = summary
    return summaries


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


# -- list_sessions page cursors: (updated_at, pk) of the last session of a page -----


def encode_cursor(updated_at_us: int, pk: int) -> str:
    raw = json.dumps([updated_at_us, pk]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        updated_at_us, pk = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not (isinstance(updated_at_us, int) and isinstance(pk, int)):
            raise TypeError
    except (ValueError, TypeError, binascii.Error):
        raise InvalidInputError(
            f"cursor {cursor!r} is not a cursor returned by list_sessions", field="cursor"
        ) from None
    return updated_at_us, pk
