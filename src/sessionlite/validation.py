"""Checking and snapshotting what callers hand to the service.

Models are mutable and their JSON fields are only checked here, at the edge, so every
bad input is reported the same way (:class:`InvalidInputError`) before anything is
written. Validation also copies: the JSON values that come out share no mutable object
with the caller's, so mutating an event after ``append_event`` cannot change what is
stored or what the session holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import JsonValue
from pydantic_core import PydanticSerializationError

from .errors import InvalidInputError
from .models import Event, Session, ToolCall, ToolResult, Usage
from .state import APP_PREFIX, TEMP_PREFIX, USER_PREFIX, persisted_delta

# Fields of Event that the store keeps in its own columns (everything else is the body).
EVENT_COLUMNS: set[str] = {"id", "author", "timestamp", "branch", "sequence", "partial"}

MAX_JSON_DEPTH = 256  # nesting levels a JSON value may have
# Python refuses to turn longer ints into text (sys.get_int_max_str_digits), so a stored
# int this long could never be read back.
MAX_INT_DIGITS = 4300
_MAX_INT = 10**MAX_INT_DIGITS


class PreparedEvent(NamedTuple):
    """A validated private copy of an event, ready to store.

    ``event`` carries the delta without ``temp:`` keys (what is stored, and what the
    session's event list shows); ``delta`` is the whole validated delta, ``temp:`` keys
    included, for the in-memory session state; ``body`` is the serialized event.
    """

    event: Event
    body: str
    delta: dict[str, JsonValue]


class _NotJson(Exception):
    def __init__(self, path: str, problem: str) -> None:
        super().__init__(path, problem)
        self.path = path
        self.problem = problem


def _copy_json(value: Any, path: str, depth: int, active: set[int]) -> JsonValue:
    """A deep copy of ``value`` if it is strict JSON; raises :class:`_NotJson` otherwise.

    Strict: only dict (str keys), list, str, int, finite float, bool and None; no lone
    surrogates (SQLite stores UTF-8); no int longer than Python can turn back from text.
    """
    if value is None or value is True or value is False:
        return value
    kind = type(value)
    if kind is str:
        _check_unicode(value, path)
        return value  # type: ignore[no-any-return]
    if kind is int:
        if -_MAX_INT < value < _MAX_INT:
            return value  # type: ignore[no-any-return]
        raise _NotJson(path, f"an int longer than {MAX_INT_DIGITS} digits")
    if kind is float:
        if value - value == 0.0:  # finite (NaN and infinities give NaN)
            return value  # type: ignore[no-any-return]
        raise _NotJson(path, f"{value!r} (JSON has no NaN or infinity)")
    if depth >= MAX_JSON_DEPTH:
        raise _NotJson(path, f"nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, (dict, list)):
        if id(value) in active:
            raise _NotJson(path, "a recursive structure (it contains itself)")
        active.add(id(value))
        try:
            if isinstance(value, list):
                return [
                    _copy_json(item, f"{path}[{i}]", depth + 1, active)
                    for i, item in enumerate(value)
                ]
            copy: dict[str, JsonValue] = {}
            for key, item in value.items():
                if type(key) is not str:
                    raise _NotJson(path, f"a {type(key).__name__} key {key!r} (keys must be str)")
                _check_unicode(key, f"{path} key")
                copy[key] = _copy_json(item, f"{path}[{key!r}]", depth + 1, active)
            return copy
        finally:
            active.discard(id(value))
    if isinstance(value, str):  # str subclasses (e.g. StrEnum) are stored as plain str
        _check_unicode(value, path)
        return str(value)
    raise _NotJson(path, f"a {kind.__name__} ({value!r:.60})")


def _check_unicode(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _NotJson(path, "a string with a lone surrogate (not valid unicode)") from None


def check_json(value: Any, what: str) -> JsonValue:
    """A validated deep copy of a JSON value, or :class:`InvalidInputError`."""
    try:
        return _copy_json(value, what, 0, set())
    except _NotJson as exc:
        raise InvalidInputError(
            f"{what} must be JSON (dict with str keys, list, str, finite number, bool, "
            f"None); {exc.path} is {exc.problem}",
            field=what,
        ) from None


def check_json_object(value: Any, what: str) -> dict[str, JsonValue]:
    """A validated deep copy of a JSON object (``dict[str, JSON]``)."""
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{what} must be a dict, got {type(value).__name__}", field=what)
    if not value:
        return {}
    # check_json copies as it validates; only a non-dict Mapping needs converting first.
    copy = check_json(value if isinstance(value, dict) else dict(value), what)
    assert isinstance(copy, dict)
    return copy


def check_text(value: Any, what: str, *, allow_empty: bool = False) -> str:
    """A non-empty string that SQLite can store (valid UTF-8: no lone surrogates)."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a str, got {type(value).__name__}", field=what)
    if not value and not allow_empty:
        raise InvalidInputError(f"{what} must not be empty", field=what)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(
            f"{what} contains a lone surrogate and is not valid unicode", field=what
        ) from None
    return value


def check_aware(value: Any, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidInputError(f"{what} must be a datetime, got {value!r}", field=what)
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(
            f"{what} is a naive datetime; pass a timezone-aware one (e.g. datetime.now(UTC))",
            field=what,
        )
    return value


def check_limit(value: Any, what: str, *, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(f"{what} must be a non-negative int, got {value!r}", field=what)
    return value


def check_positive_int(value: Any, what: str) -> int:
    """An int of at least 1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{what} must be a positive int, got {value!r}", field=what)
    return value


def check_session(session: Any) -> None:
    """Raise :class:`InvalidInputError` unless ``session`` is a :class:`Session`."""
    if not isinstance(session, Session):
        raise InvalidInputError(
            f"expected a sessionlite.Session, got {type(session).__name__}", field="session"
        )


def check_plain_keys(delta: dict[str, JsonValue]) -> dict[str, JsonValue]:
    """``delta`` itself if none of its keys carries a scope prefix (direct state calls)."""
    for key in delta:
        if key.startswith((APP_PREFIX, USER_PREFIX, TEMP_PREFIX)):
            raise InvalidInputError(
                f"key {key!r} carries a scope prefix; direct state calls take plain keys "
                "(use update_app_state / update_user_state for shared state; temp: keys "
                "are never stored)",
                field="delta",
            )
    return delta


def prepare_event(event: Any) -> PreparedEvent:
    """Validate ``event`` and return a private copy with its serialized body."""
    if not isinstance(event, Event):
        raise InvalidInputError(
            f"expected a sessionlite.Event, got {type(event).__name__}", field="event"
        )
    check_text(event.id, "event.id")
    check_text(event.author, "event.author")
    check_text(event.branch, "event.branch", allow_empty=True)
    check_aware(event.timestamp, "event.timestamp")
    delta = check_json_object(event.state_delta, "event.state_delta")
    try:
        copy = event.model_copy(
            update={
                "content": check_json(event.content, "event.content"),
                "metadata": check_json_object(event.metadata, "event.metadata"),
                "state_delta": persisted_delta(delta),
                "tool_calls": [_copy_tool_call(c) for c in event.tool_calls]
                if event.tool_calls
                else [],
                "tool_results": [_copy_tool_result(r) for r in event.tool_results]
                if event.tool_results
                else [],
                "usage": None if event.usage is None else _copy_usage(event.usage),
                "sequence": None,
            }
        )
        body = copy.model_dump_json(exclude=EVENT_COLUMNS, exclude_defaults=True)
    except PydanticSerializationError as exc:
        raise InvalidInputError(f"event {event.id!r} cannot be serialized: {exc}") from None
    return PreparedEvent(copy, body, delta)


def _copy_tool_call(call: Any) -> ToolCall:
    if not isinstance(call, ToolCall):
        raise InvalidInputError("event.tool_calls must hold ToolCall objects", field="tool_calls")
    return ToolCall(
        id=check_text(call.id, "tool_call.id"),
        name=check_text(call.name, "tool_call.name"),
        arguments=check_json_object(call.arguments, "tool_call.arguments"),
    )


def _copy_tool_result(result: Any) -> ToolResult:
    if not isinstance(result, ToolResult):
        raise InvalidInputError(
            "event.tool_results must hold ToolResult objects", field="tool_results"
        )
    return ToolResult(
        call_id=check_text(result.call_id, "tool_result.call_id"),
        output=check_json(result.output, "tool_result.output"),
        is_error=result.is_error,
    )


def _copy_usage(usage: Any) -> Usage:
    if not isinstance(usage, Usage):
        raise InvalidInputError("event.usage must be a Usage", field="usage")
    return Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
