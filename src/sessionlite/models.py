"""Public data models (pydantic v2).

Every model round-trips exactly through the store: what you append is what you read
back. Fields typed :data:`JSON` must hold real JSON values (``dict`` with ``str`` keys,
``list``, ``str``, finite numbers, ``bool``, ``None``) so that the round trip can be
exact. The values are checked when the model reaches the service (``append_event``,
``create_session``...), not at construction, so that tuples, sets, bytes, NaN/infinity,
lone surrogates, recursive structures and naive datetimes — however deep, and however
they got there — are all reported the same way: :class:`~sessionlite.InvalidInputError`,
with nothing stored. Wrong field types themselves (e.g. ``author=3``, or a non-``str``
key at the top of ``metadata``) are refused by pydantic when the model is built.
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime, timezone
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
)

__all__ = [
    "JSON",
    "Event",
    "Session",
    "SessionPage",
    "Summary",
    "ToolCall",
    "ToolResult",
    "Usage",
    "new_id",
    "utc_now",
]


def utc_now() -> datetime:
    """The current time as a timezone-aware UTC datetime (the default clock)."""
    return datetime.now(timezone.utc)


def new_id() -> str:
    """A fresh random id (32 hex characters)."""
    return uuid.uuid4().hex


JSON = Any
"""A JSON value: ``dict[str, JSON]``, ``list[JSON]``, ``str``, ``int``, ``float``, ``bool`` or
``None``. Checked (and copied) by the service when the model is stored."""


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


def _to_utc_if_aware(value: datetime) -> datetime:
    # Naive datetimes are kept as given and refused by the service at append time, so
    # that every bad input surfaces as InvalidInputError from the call that stores it.
    if value.tzinfo is None:
        return value
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(f"{value!r} is out of range once converted to UTC") from None


def _check_branch(value: str) -> str:
    if value and any(not part for part in value.split("/")):
        raise ValueError(
            f"branch {value!r} has an empty segment; use '/'-separated names like 'root/researcher'"
        )
    return value


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware datetime, normalised to UTC. Naive datetimes are rejected."""

EventTimestamp = Annotated[datetime, AfterValidator(_to_utc_if_aware)]

Branch = Annotated[str, AfterValidator(_check_branch)]

_MODEL_CONFIG = ConfigDict(
    extra="forbid",
    validate_assignment=True,
    allow_inf_nan=False,
    ser_json_inf_nan="constants",
)


class Usage(BaseModel):
    """Token usage reported by a model call."""

    model_config = _MODEL_CONFIG

    input_tokens: NonNegativeInt = 0
    output_tokens: NonNegativeInt = 0


class ToolCall(BaseModel):
    """A tool invocation requested by a model."""

    model_config = _MODEL_CONFIG

    id: str = Field(default_factory=new_id)
    name: str
    arguments: dict[str, JSON] = Field(default_factory=dict)


class ToolResult(BaseModel):
    """The output of a tool call, matched to its :class:`ToolCall` by ``call_id``."""

    model_config = _MODEL_CONFIG

    call_id: str
    output: JSON = None
    is_error: bool = False


class Event(BaseModel):
    """One entry in a session's history.

    ``sequence`` is assigned by the store when the event is persisted: strictly
    increasing per session and never reused. Events are always returned oldest first.
    ``partial`` events (streaming chunks) are applied to the in-memory session only.
    """

    model_config = _MODEL_CONFIG

    id: str = Field(default_factory=new_id, min_length=1)
    author: str
    content: JSON = None
    reasoning: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_results: list[ToolResult] = Field(default_factory=list)
    state_delta: dict[str, JSON] = Field(default_factory=dict)
    invocation_id: str | None = None
    agent_id: str | None = None
    model: str | None = None
    usage: Usage | None = None
    metadata: dict[str, JSON] = Field(default_factory=dict)
    branch: Branch = ""
    partial: bool = False
    timestamp: EventTimestamp = Field(default_factory=utc_now)
    sequence: int | None = None

    def matches_branch(self, branch: str | None) -> bool:
        """Whether this event belongs to ``branch`` (``a`` matches ``a`` and ``a/...``)."""
        return branch_matches(self.branch, branch)


def branch_matches(event_branch: str, branch: str | None) -> bool:
    """Whether an event on ``event_branch`` is visible to a filter on ``branch``."""
    if not branch:
        return True
    return event_branch == branch or event_branch.startswith(branch + "/")


class Summary(BaseModel):
    """A summary of a session (``branch=""``) or of one branch of it."""

    model_config = _MODEL_CONFIG

    branch: Branch = ""
    text: str
    through_sequence: int = Field(ge=0, description="Sequence of the last event covered.")
    updated_at: UtcDatetime = Field(default_factory=utc_now)


class Session(BaseModel):
    """A conversation: its events, its merged state view and its summaries.

    ``state`` holds the session's own keys plus ``app:k`` and ``user:k`` entries from
    the app and user scopes (and any ``temp:k`` keys applied in memory).
    ``version`` is bumped by every persisted write to the session.
    """

    model_config = _MODEL_CONFIG

    app_name: str
    user_id: str
    id: str
    agent_id: str | None = None
    metadata: dict[str, JSON] = Field(default_factory=dict)
    state: dict[str, JSON] = Field(default_factory=dict)
    events: list[Event] = Field(default_factory=list)
    summaries: dict[str, Summary] = Field(default_factory=dict)
    created_at: UtcDatetime
    updated_at: UtcDatetime
    expires_at: UtcDatetime | None = None
    version: int = 0

    @property
    def key(self) -> tuple[str, str, str]:
        """``(app_name, user_id, id)``: what identifies the session in the store."""
        return (self.app_name, self.user_id, self.id)


class SessionPage(BaseModel):
    """One page of :meth:`SessionService.list_sessions` (sessions carry no events)."""

    model_config = _MODEL_CONFIG

    sessions: list[Session]
    next_cursor: str | None = None


M = TypeVar("M", bound=BaseModel)
# The slots every pydantic model instance carries, set directly: building many trusted
# events is a read's hot loop, and the descriptors' own setters are the cheapest way in.
_new_instance = object.__new__
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def _trusted(cls: type[M], fields: dict[str, Any], fields_set: set[str]) -> M:
    """A ``cls`` instance over ``fields`` (every field, already checked), built without
    running validation: for the library's hot paths (appends, reads), where the values
    have just been validated or come from rows that passed the same checks."""
    model = _new_instance(cls)
    _set_dict(model, fields)
    _set_fields_set(model, fields_set)
    _set_extra(model, None)
    _set_private(model, None)
    return model


# An Event, or the Usage of one (its token counts), over already checked fields.
trusted_event = functools.partial(_trusted, Event)
trusted_usage = functools.partial(_trusted, Usage)


def trusted_session(fields: dict[str, Any]) -> Session:
    """A :class:`Session` over ``fields`` (every field, already checked), built without
    running validation: for reads served from the read cache, whose values come from
    rows that passed the codec's checks when they were first read."""
    return _trusted(Session, fields, set(fields))
