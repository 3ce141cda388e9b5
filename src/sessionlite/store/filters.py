"""What a read asks for, written once for both backends: WHERE conditions and their values.

Conditions name their values as ``{name}``; each backend renders them in its driver's
style (``:name`` for sqlite3, ``%(name)s`` for psycopg) with :func:`render`. Only fixed
fragments chosen by which filters are set ever become SQL text; every value is bound.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..timestamps import to_micros
from .base import EventFilter, EventQuery
from .codec import decode_cursor

__all__ = [
    "LIVE",
    "event_filter",
    "live",
    "recent_filter",
    "render",
    "session_page_filter",
    "sessions_filter",
]


def live(alias: str = "") -> str:
    """A session is live until deleted or expired (at the time ``{now}`` of the call);
    ``alias``: the sessions table's name in the query, if it has one."""
    a = f"{alias}." if alias else ""
    return f"{a}deleted_at IS NULL AND ({a}expires_at IS NULL OR {a}expires_at > {{now}})"


LIVE = live()
# A branch filter "a" matches "a" and "a/...": the prefix test is the backend's own
# (SQLite compares a byte range, PostgreSQL calls starts_with).
BRANCH = "(branch = {branch} OR {branch_prefix_test})"

Conditions = tuple[list[str], dict[str, Any]]


def render(
    conditions: Sequence[str], placeholder: Callable[[str], str], branch_test: str = ""
) -> str:
    """The conditions joined with AND, ``{name}`` replaced by the driver's placeholder."""
    text = " AND ".join(conditions).replace("{branch_prefix_test}", branch_test)
    return text.format(**{name: placeholder(name) for name in _NAMES})


_NAMES = {
    "now",
    "app",
    "user",
    "sid",
    "pk",
    "limit",
    "cursor_at",
    "cursor_pk",
    "after_sequence",
    "after",
    "until",
    "author",
    "branch",
    "branch_lo",
    "branch_hi",
    "branch_prefix",
}


def _branch(branch: str) -> dict[str, str]:
    # "a/" up to (not including) "a0": '0' is the character after '/'.
    return {
        "branch": branch,
        "branch_prefix": branch + "/",
        "branch_lo": branch + "/",
        "branch_hi": branch + "0",
    }


def session_page_filter(
    app_name: str, user_id: str | None, cursor: str | None, now_us: int
) -> Conditions:
    """A page of live sessions (keyset pagination, newest ``updated_at`` first).

    Separate texts per flag (rather than an ``OR``) keep the index range scan starting
    right at the cursor.
    """
    conditions = ["app_name = {app}"]
    params: dict[str, Any] = {"app": app_name, "now": now_us}
    if user_id is not None:
        conditions.append("user_id = {user}")
        params["user"] = user_id
    conditions.append(LIVE)
    if cursor is not None:
        conditions.append("(updated_at, pk) < ({cursor_at}, {cursor_pk})")
        params["cursor_at"], params["cursor_pk"] = decode_cursor(cursor)
    return conditions, params


def sessions_filter(
    app_name: str | None, user_id: str | None, now_us: int, alias: str = "s"
) -> Conditions:
    """Live sessions, of one app and one user if given (the ``sessionlite`` command)."""
    conditions = [live(alias)]
    params: dict[str, Any] = {"now": now_us}
    if app_name is not None:
        conditions.append(f"{alias}.app_name = {{app}}")
        params["app"] = app_name
    if user_id is not None:
        conditions.append(f"{alias}.user_id = {{user}}")
        params["user"] = user_id
    return conditions, params


def recent_filter(query: EventQuery) -> Conditions:
    """The filters of a session read (``get_session``): ``after`` and ``branch``."""
    conditions: list[str] = []
    params: dict[str, Any] = {}
    if query.after is not None:
        conditions.append("timestamp >= {after}")
        params["after"] = to_micros(query.after)
    if query.branch:
        conditions.append(BRANCH)
        params.update(_branch(query.branch))
    return conditions, params


def event_filter(flt: EventFilter) -> Conditions:
    """The filters of a history page (``iter_events``)."""
    conditions: list[str] = []
    params: dict[str, Any] = {}
    if flt.after_sequence is not None:
        conditions.append("sequence > {after_sequence}")
        params["after_sequence"] = flt.after_sequence
    if flt.since is not None:
        conditions.append("timestamp >= {after}")
        params["after"] = to_micros(flt.since)
    if flt.until is not None:
        conditions.append("timestamp <= {until}")
        params["until"] = to_micros(flt.until)
    if flt.author is not None:
        conditions.append("author = {author}")
        params["author"] = flt.author
    if flt.branch:
        conditions.append(BRANCH)
        params.update(_branch(flt.branch))
    return conditions, params
