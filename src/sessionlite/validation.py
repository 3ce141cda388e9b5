"""Checking and snapshotting what callers hand to the service.

Models are mutable and their JSON fields are only checked here, at the edge, so every
bad input is reported the same way (:class:`InvalidInputError`) before anything is
written. Validation also copies: the JSON values that come out share no mutable object
with the caller's, so mutating an event after ``append_event`` cannot change what is
stored or what the session holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, NamedTuple

from pydantic import JsonValue
from pydantic_core import PydanticSerializationError, to_json

from .errors import InvalidInputError
from .models import Event, Session, ToolCall, ToolResult, Usage, trusted_event
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
    included, for the in-memory session state; ``snapshot`` is what the store writes,
    taken at validation: later changes to ``event`` (the caller gets it back) do not
    reach the store, even when it is written in the background.
    """

    event: Event
    snapshot: EventSnapshot
    delta: dict[str, JsonValue]

    @property
    def body(self) -> str:
        """The serialized event (every field that has no column of its own)."""
        return self.snapshot.body


class EventSnapshot(NamedTuple):
    """An accepted event as domain data, frozen: the fields every backend keeps in
    columns of their own, and the JSON text of the rest. Each backend encodes it its
    own way (SQLite: integer microseconds for the timestamp)."""

    event_id: str
    author: str
    timestamp: datetime
    branch: str
    body: str


class _NotJson(Exception):
    """``problem`` found at ``path`` (built innermost first while the error unwinds)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.segments: list[str] = []

    def path(self, root: str) -> str:
        return root + "".join(reversed(self.segments))


def _copy_json(value: Any, depth: int, active: set[int]) -> JsonValue:
    """A deep copy of ``value`` if it is strict JSON; raises :class:`_NotJson` otherwise.

    Strict: only dict (str keys), list, str, int, finite float, bool and None; no lone
    surrogates (SQLite stores UTF-8); no int longer than Python can turn back from text.
    This runs for every stored value, so the common cases come first and the path of a
    bad value is only built when there is one.
    """
    kind = type(value)
    if kind is str:
        if value.isascii() or _is_utf8(value):  # isascii() is O(1) in CPython
            return value  # type: ignore[no-any-return]
        raise _NotJson("a string with a lone surrogate (not valid unicode)")
    if kind is int:
        if -_MAX_INT < value < _MAX_INT:
            return value  # type: ignore[no-any-return]
        raise _NotJson(f"an int longer than {MAX_INT_DIGITS} digits")
    if value is None or value is True or value is False:
        return value
    if kind is float:
        if value - value == 0.0:  # finite (NaN and infinities give NaN)
            return value  # type: ignore[no-any-return]
        raise _NotJson(f"{value!r} (JSON has no NaN or infinity)")
    if isinstance(value, (dict, list)):
        if depth >= MAX_JSON_DEPTH:
            raise _NotJson(f"nested deeper than {MAX_JSON_DEPTH} levels")
        if not value:
            return {} if isinstance(value, dict) else []
        if id(value) in active:
            raise _NotJson("a recursive structure (it contains itself)")
        active.add(id(value))
        try:
            if isinstance(value, list):
                return _copy_list(value, depth, active)
            return _copy_dict(value, depth, active)
        finally:
            active.discard(id(value))
    if isinstance(value, str):  # str subclasses (e.g. StrEnum) are stored as plain str
        if _is_utf8(value):
            return str(value)
        raise _NotJson("a string with a lone surrogate (not valid unicode)")
    raise _NotJson(f"a {kind.__name__} ({value!r:.60})")


def _copy_list(value: list[Any], depth: int, active: set[int]) -> list[JsonValue]:
    copy: list[JsonValue] = []
    for index, item in enumerate(value):
        try:
            copy.append(_copy_json(item, depth + 1, active))
        except _NotJson as exc:
            exc.segments.append(f"[{index}]")
            raise
    return copy


def _copy_dict(value: dict[Any, Any], depth: int, active: set[int]) -> dict[str, JsonValue]:
    copy: dict[str, JsonValue] = {}
    for key, item in value.items():
        if type(key) is not str:
            raise _NotJson(f"a {type(key).__name__} key {key!r} (keys must be str)")
        if not (key.isascii() or _is_utf8(key)):
            exc = _NotJson("a string with a lone surrogate (not valid unicode)")
            exc.segments.append(" key")
            raise exc
        try:
            copy[key] = _copy_json(item, depth + 1, active)
        except _NotJson as exc:
            exc.segments.append(f"[{key!r}]")
            raise
    return copy


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_json(value: Any, what: str) -> JsonValue:
    """A validated deep copy of a JSON value, or :class:`InvalidInputError`."""
    try:
        return _copy_json(value, 0, set())
    except _NotJson as exc:
        raise InvalidInputError(
            f"{what} must be JSON (dict with str keys, list, str, finite number, bool, "
            f"None); {exc.path(what)} is {exc.problem}",
            field=what,
        ) from None


def check_json_object(value: Any, what: str) -> dict[str, JsonValue]:
    """A validated deep copy of a JSON object (``dict[str, JSON]``)."""
    if type(value) is not dict:
        if not isinstance(value, Mapping):
            raise InvalidInputError(
                f"{what} must be a dict, got {type(value).__name__}", field=what
            )
        value = dict(value)
    if not value:
        return {}
    copy = check_json(value, what)
    assert isinstance(copy, dict)
    return copy


def check_text(value: Any, what: str, *, allow_empty: bool = False) -> str:
    """A non-empty string that every backend can store as text: valid UTF-8 (no lone
    surrogates) and no NUL character (PostgreSQL text cannot hold one; SQLite could, but
    the same input gets the same answer on both backends)."""
    if type(value) is str and value.isascii() and (value or allow_empty) and _NUL not in value:
        return value  # the common case
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a str, got {type(value).__name__}", field=what)
    if not value and not allow_empty:
        raise InvalidInputError(f"{what} must not be empty", field=what)
    if not _is_utf8(value):
        raise InvalidInputError(
            f"{what} contains a lone surrogate and is not valid unicode", field=what
        )
    check_no_nul(value, what)
    return value


_NUL = "\x00"


def check_no_nul(value: str, what: str) -> str:
    """``value`` unless it holds a NUL character, which no backend stores as text.

    (Inside JSON values a NUL is fine: it is stored escaped, as ``\\u0000``.)
    """
    if _NUL in value:
        raise InvalidInputError(
            f"{what} contains a NUL character (\\x00), which cannot be stored as text",
            field=what,
        )
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


_SCOPE_PREFIXES = (APP_PREFIX, USER_PREFIX, TEMP_PREFIX)


def check_state_keys(state: dict[str, JsonValue], what: str) -> dict[str, JsonValue]:
    """``state`` itself unless a key is a bare scope prefix (``"app:"``: no key after it)."""
    for key in state:
        check_no_nul(key, f"{what} key")
        if key in _SCOPE_PREFIXES:
            raise InvalidInputError(
                f"{what} key {key!r} is a scope prefix without a key; write {key}name",
                field=what,
            )
    return state


def check_plain_keys(
    delta: dict[str, JsonValue], *, allow_empty: bool = True
) -> dict[str, JsonValue]:
    """``delta`` itself if none of its keys carries a scope prefix (direct state calls).

    ``allow_empty=False`` for app and user state, where ``""`` would be the key that
    ``"app:"`` / ``"user:"`` name in an event's delta, which is refused there too.
    """
    for key in delta:
        check_no_nul(key, "delta key")
        if key.startswith(_SCOPE_PREFIXES):
            raise InvalidInputError(
                f"key {key!r} carries a scope prefix; direct state calls take plain keys "
                "(use update_app_state / update_user_state for shared state; temp: keys "
                "are never stored)",
                field="delta",
            )
        if not key and not allow_empty:
            raise InvalidInputError("an app or user state key must not be empty", field="delta")
    return delta


def prepare_event(event: Any) -> PreparedEvent:
    """Validate ``event`` and return a private copy with its stored row.

    This runs for every appended event, so it builds the copy and the JSON body
    directly rather than through ``model_copy`` / ``model_dump_json`` (several times
    slower, and most of an append's cost on the event loop).
    """
    if not isinstance(event, Event):
        raise InvalidInputError(
            f"expected a sessionlite.Event, got {type(event).__name__}", field="event"
        )
    fields = event.__dict__
    event_id = check_text(fields["id"], "event.id")
    author = check_text(fields["author"], "event.author")
    branch = check_text(fields["branch"], "event.branch", allow_empty=True)
    timestamp = fields["timestamp"]
    if timestamp.tzinfo is not timezone.utc:
        check_aware(timestamp, "event.timestamp")
    delta = check_state_keys(
        check_json_object(fields["state_delta"], "event.state_delta"), "event.state_delta"
    )
    stored_delta = persisted_delta(delta) if delta else {}
    content = fields["content"]
    if content is not None:
        content = check_json(content, "event.content")
    metadata = check_json_object(fields["metadata"], "event.metadata")
    data = dict(fields)
    data["content"] = content
    data["metadata"] = metadata
    data["state_delta"] = stored_delta
    data["sequence"] = None
    plain = True  # no nested models: the body can be built as a dict
    if fields["tool_calls"]:
        data["tool_calls"] = [_copy_tool_call(c) for c in fields["tool_calls"]]
        plain = False
    else:
        data["tool_calls"] = []
    if fields["tool_results"]:
        data["tool_results"] = [_copy_tool_result(r) for r in fields["tool_results"]]
        plain = False
    else:
        data["tool_results"] = []
    if fields["usage"] is not None:
        data["usage"] = _copy_usage(fields["usage"])
        plain = False
    copy = trusted_event(data, set(event.__pydantic_fields_set__))
    try:
        body = (
            _body_json(data)
            if plain
            else copy.model_dump_json(exclude=EVENT_COLUMNS, exclude_defaults=True)
        )
    except PydanticSerializationError as exc:
        raise InvalidInputError(f"event {event_id!r} cannot be serialized: {exc}") from None
    snapshot = EventSnapshot(event_id, author, timestamp, branch, body)
    return PreparedEvent(copy, snapshot, delta)


# Body fields in model order, each with its default (omitted from the body when equal,
# as model_dump_json(exclude_defaults=True) does, so both build the same text).
_BODY_DEFAULTS: tuple[tuple[str, Any], ...] = tuple(
    (name, info.get_default(call_default_factory=True))
    for name, info in Event.model_fields.items()
    if name not in EVENT_COLUMNS
)


def _body_json(data: dict[str, Any]) -> str:
    """The JSON body of an event without nested models (see :data:`_BODY_DEFAULTS`)."""
    body = {}
    for name, default in _BODY_DEFAULTS:
        value = data[name]
        if value != default:
            body[name] = value
    return to_json(body).decode()


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
