"""Building checked store requests from ``SessionService`` call arguments.

Each helper validates one call's arguments (reporting every problem as
:class:`~sessionlite.InvalidInputError`, before anything is written) and returns what
the store takes: a :class:`~sessionlite.store.base.SessionKey`, a
:class:`~sessionlite.store.base.NewSession`, an
:class:`~sessionlite.store.base.AppendCommand`, or event filters.
"""

from __future__ import annotations

from typing import Any

from pydantic import JsonValue

from .config import Clock
from .errors import InvalidInputError
from .models import Event, Session, new_id
from .state import encode_delta, split_delta
from .store.base import AppendCommand, EventFilter, EventQuery, NewSession, SessionKey
from .validation import (
    PreparedEvent,
    check_aware,
    check_json_object,
    check_limit,
    check_session,
    check_state_keys,
    check_text,
    prepare_event,
)

__all__ = [
    "check_list_args",
    "event_filter",
    "event_query",
    "new_session",
    "prepare_append",
    "session_key",
    "summary_target",
]


# Here rather than in .validation: store.base imports validation, so validation cannot
# import SessionKey at the top, and an import inside this per-call helper would cost
# more than building the key.
def session_key(app_name: Any, user_id: Any, session_id: Any) -> SessionKey:
    """The checked key of one session."""
    return SessionKey(
        check_text(app_name, "app_name"),
        check_text(user_id, "user_id"),
        check_text(session_id, "session_id"),
    )


def new_session(
    app_name: str,
    user_id: str,
    session_id: str | None,
    state: dict[str, JsonValue] | None,
    agent_id: str | None,
    metadata: dict[str, JsonValue] | None,
    clock: Clock,
) -> tuple[NewSession, dict[str, JsonValue]]:
    """What ``create_session`` stores, and the ``temp:`` state kept on the object only.

    ``clock`` is read last, once every argument has passed its checks.
    """
    key = session_key(app_name, user_id, new_id() if session_id is None else session_id)
    if agent_id is not None:
        check_text(agent_id, "agent_id")
    state = check_json_object({} if state is None else state, "state")
    check_state_keys(state, "state")
    new = NewSession(
        key=key,
        agent_id=agent_id,
        metadata=check_json_object({} if metadata is None else metadata, "metadata"),
        state=split_delta(state),
        now=clock(),
    )
    return new, new.state.temp


def check_list_args(
    app_name: Any, user_id: Any, limit: Any, cursor: Any, *, max_limit: int
) -> None:
    """Check ``list_sessions`` arguments (``limit`` from 1 to ``max_limit``)."""
    check_text(app_name, "app_name")
    if user_id is not None:
        check_text(user_id, "user_id")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= max_limit:
        raise InvalidInputError(
            f"limit must be an int from 1 to {max_limit}, got {limit!r}", field="limit"
        )
    if cursor is not None:
        check_text(cursor, "cursor")


def event_query(
    num_recent_events: Any, after: Any, branch: Any, *, default_limit: int | None
) -> EventQuery:
    """Which events ``get_session`` returns (``default_limit`` when no count is given)."""
    limit = check_limit(num_recent_events, "num_recent_events")
    return EventQuery(
        limit=default_limit if limit is None else limit,
        after=None if after is None else check_aware(after, "after"),
        branch=None if branch is None else check_text(branch, "branch", allow_empty=True),
    )


def event_filter(
    *, after_sequence: Any, since: Any, until: Any, author: Any, branch: Any
) -> EventFilter:
    """The filter ``iter_events`` pages through a history with."""
    return EventFilter(
        after_sequence=check_limit(after_sequence, "after_sequence"),
        since=None if since is None else check_aware(since, "since"),
        until=None if until is None else check_aware(until, "until"),
        author=None if author is None else check_text(author, "author"),
        branch=None if branch is None else check_text(branch, "branch", allow_empty=True),
    )


def prepare_append(
    session: Session, events: list[Event], expected_version: int | None, clock: Clock
) -> tuple[list[PreparedEvent], AppendCommand | None]:
    """Validated copies of ``events`` and the command that stores them atomically.

    The command is None when every event is partial (streaming chunks are kept in
    memory only); otherwise it carries the non-partial events and their merged delta.
    """
    check_session(session)
    if expected_version is not None:
        check_limit(expected_version, "expected_version")
    prepared = [prepare_event(event) for event in events]
    if len(prepared) == 1:  # append_event: the common case, kept lean
        to_store = prepared if not prepared[0].event.partial else []
        merged = prepared[0].event.state_delta
    else:
        ids = {p.snapshot.event_id for p in prepared}
        if len(ids) != len(prepared):
            raise InvalidInputError("events in one call must have distinct ids", field="events")
        to_store = [p for p in prepared if not p.event.partial]
        merged = {}
        for p in to_store:
            merged.update(p.event.state_delta)  # last write wins per key
    if not to_store:
        return prepared, None
    command = AppendCommand(
        key=session_key(session.app_name, session.user_id, session.id),
        events=to_store,
        delta=encode_delta(merged),
        expected_version=expected_version,
        now=clock(),
    )
    return prepared, command


def summary_target(session: Session, branch: Any) -> tuple[SessionKey, str]:
    """The session and branch a summary job is for (branch segments must be non-empty)."""
    check_session(session)
    branch = check_text(branch, "branch", allow_empty=True)
    if branch and any(not part for part in branch.split("/")):
        raise InvalidInputError(
            f"branch {branch!r} has an empty segment; use names like 'root/researcher'",
            field="branch",
        )
    return session_key(session.app_name, session.user_id, session.id), branch
