"""The export format: JSON lines, one object per line, each a model below.

A file is a :class:`Header`, then each :class:`SessionLine` followed by its
:class:`EventLine` s (oldest first), then :class:`AppStateLine` and
:class:`UserStateLine` s, then an :class:`EndLine` with the counts, so that a file cut
short is detected. Lines are strict: an unknown field is an error, not ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    TypeAdapter,
    ValidationError,
)

from ..models import Event
from .app import DataError

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "NO_SEQUENCE",
    "AppStateLine",
    "EndLine",
    "EventLine",
    "ExportLine",
    "Header",
    "SessionLine",
    "SummaryEntry",
    "UserStateLine",
    "check_header",
    "encode",
    "parse_line",
]

EXPORT_FORMAT = "sessionlite-export"
EXPORT_VERSION = 1

_STRICT = ConfigDict(extra="forbid")


class Header(BaseModel):
    """First line of an export."""

    model_config = _STRICT
    type: Literal["header"] = "header"
    format: str = EXPORT_FORMAT
    version: int = EXPORT_VERSION


class SummaryEntry(BaseModel):
    model_config = _STRICT
    branch: str
    text: str
    through_event_id: str | None
    """The newest stored event the summary covers (None: it covers no stored event)."""
    updated_at: AwareDatetime


class SessionLine(BaseModel):
    """A session; its events follow it, one line each."""

    model_config = _STRICT
    type: Literal["session"] = "session"
    app_name: str
    user_id: str
    id: str
    agent_id: str | None
    metadata: dict[str, JsonValue]
    state: dict[str, JsonValue]
    """The session's own keys (app and user state have lines of their own)."""
    created_at: AwareDatetime
    updated_at: AwareDatetime
    summaries: list[SummaryEntry]


class EventLine(BaseModel):
    model_config = _STRICT
    type: Literal["event"] = "event"
    event: Event


class AppStateLine(BaseModel):
    model_config = _STRICT
    type: Literal["app_state"] = "app_state"
    app_name: str
    state: dict[str, JsonValue]


class UserStateLine(BaseModel):
    model_config = _STRICT
    type: Literal["user_state"] = "user_state"
    app_name: str
    user_id: str
    state: dict[str, JsonValue]


class EndLine(BaseModel):
    """Last line: what the export holds, so that a truncated file is detected."""

    model_config = _STRICT
    type: Literal["end"] = "end"
    sessions: int
    events: int


ExportLine = Annotated[
    Header | SessionLine | EventLine | AppStateLine | UserStateLine | EndLine,
    Field(discriminator="type"),
]
_LINE: TypeAdapter[ExportLine] = TypeAdapter(ExportLine)
NO_SEQUENCE = {"event": {"sequence"}}  # store-assigned: renumbered on import


def encode(model: BaseModel, **dump: Any) -> bytes:
    """One line of the file (``model_dump_json`` options in ``dump``)."""
    return model.model_dump_json(**dump).encode() + b"\n"


def parse_line(raw: bytes, number: int) -> ExportLine:
    """The line's model; :class:`DataError` naming the line and field when it is none."""
    try:
        return _LINE.validate_json(raw)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in error["loc"])
        raise DataError(
            f"line {number}: not a sessionlite export line ({where}: {error['msg']})"
        ) from None


def check_header(item: ExportLine, number: int | None) -> Header:
    """The first line, which must be a header of a format version this code reads."""
    if not isinstance(item, Header) or item.format != EXPORT_FORMAT:
        raise DataError("not a sessionlite export (no header line)", line=number)
    if item.version > EXPORT_VERSION:
        raise DataError(
            f"the export has format version {item.version}; this sessionlite reads up to "
            f"{EXPORT_VERSION}: upgrade sessionlite"
        )
    return item
