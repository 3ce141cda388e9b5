"""State scopes: splitting deltas by prefix and building the merged view.

``app:k`` is shared by every user of an app, ``user:k`` by all of one user's sessions
in the app, ``temp:k`` lives only on the in-memory session object, and any other key
belongs to the session. These functions are pure so the rules are tested on their own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from pydantic import JsonValue
from pydantic_core import to_json

APP_PREFIX = "app:"
USER_PREFIX = "user:"
TEMP_PREFIX = "temp:"


@dataclasses.dataclass(slots=True)
class ScopedDelta:
    """A state delta split by scope; app/user keys are stored without their prefix."""

    session: dict[str, JsonValue] = dataclasses.field(default_factory=dict)
    app: dict[str, JsonValue] = dataclasses.field(default_factory=dict)
    user: dict[str, JsonValue] = dataclasses.field(default_factory=dict)
    temp: dict[str, JsonValue] = dataclasses.field(default_factory=dict)


def scope_of(key: str) -> tuple[str, str]:
    """The scope a delta key belongs to, and the key as that scope stores it:
    ``("app", k)`` / ``("user", k)`` without the prefix, ``("temp", key)`` or
    ``("session", key)``. The one place the prefix rules live."""
    if key.startswith(APP_PREFIX):
        return "app", key[len(APP_PREFIX) :]
    if key.startswith(USER_PREFIX):
        return "user", key[len(USER_PREFIX) :]
    if key.startswith(TEMP_PREFIX):
        return "temp", key
    return "session", key


def split_delta(delta: Mapping[str, JsonValue]) -> ScopedDelta:
    """Split a state delta into its scopes (prefixes removed from app/user keys)."""
    scoped = ScopedDelta()
    for key, value in delta.items():
        scope, stored = scope_of(key)
        getattr(scoped, scope)[stored] = value
    return scoped


def persisted_delta(delta: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    """The delta without its ``temp:`` keys (what a stored event records)."""
    return {k: v for k, v in delta.items() if not k.startswith(TEMP_PREFIX)}


def merged_view(
    session_state: Mapping[str, JsonValue],
    app_state: Mapping[str, JsonValue],
    user_state: Mapping[str, JsonValue],
) -> dict[str, JsonValue]:
    """The ``Session.state`` view: session keys plus prefixed app and user keys."""
    merged: dict[str, JsonValue] = dict(session_state)
    merged.update({APP_PREFIX + k: v for k, v in app_state.items()})
    merged.update({USER_PREFIX + k: v for k, v in user_state.items()})
    return merged


StateRow = tuple[str, str]  # (key without its scope prefix, value as JSON text)


class EncodedDelta(NamedTuple):
    """A persisted delta split by scope, with every value already JSON text.

    Encoded when the append is accepted, so a background write stores exactly what
    was accepted even if the caller changes its objects afterwards.
    """

    session: Sequence[StateRow] = ()
    app: Sequence[StateRow] = ()
    user: Sequence[StateRow] = ()


NO_DELTA = EncodedDelta()


def encode_delta(delta: Mapping[str, JsonValue]) -> EncodedDelta:
    """Split a checked delta by scope and encode its values (``temp:`` keys dropped)."""
    if not delta:
        return NO_DELTA
    rows: dict[str, list[StateRow]] = {"session": [], "app": [], "user": [], "temp": []}
    for key, value in delta.items():
        scope, stored = scope_of(key)
        if scope != "temp":
            rows[scope].append((stored, to_json(value).decode()))
    return EncodedDelta(rows["session"], rows["app"], rows["user"])
