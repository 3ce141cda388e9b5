"""Hostile input: what a careless or malicious caller can hand to the service.

Every value is either stored and read back *exactly* (same types, same float bits,
same key order) or refused with :class:`InvalidInputError` — and a refusal leaves
nothing behind: no event, no state (session, app or user scope), no version bump, no
change to the caller's in-memory ``Session``, nothing queued for background writes.

The properties run against one real service per test function (a file database),
driven from the test's thread through an anyio blocking portal, so that an example
costs one portal call rather than a service start-up. Each example works in an app of
its own (see :func:`new_session`), so examples cannot see each other's data.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import math
import operator
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import hypothesis
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessionlite import (
    Event,
    InvalidInputError,
    Session,
    SessionService,
    ToolCall,
    ToolResult,
)

T = TypeVar("T")

APP = "hostile-app"
USER = "hostile-user"

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    # One service per test function, shared by its examples on purpose.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CHEAP_PROPERTY = settings(PROPERTY, max_examples=100)


# -- the service, driven from a sync test -------------------------------------------------


@dataclasses.dataclass
class Live:
    """An open service on an event loop in another thread; ``run`` awaits there."""

    portal: BlockingPortal
    service: SessionService

    def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        async def guarded() -> tuple[bool, Any]:
            try:
                return True, await fn()
            except (pytest.fail.Exception, pytest.skip.Exception) as exc:
                # BaseExceptions: raised inside the portal they would stop its loop
                # (and with it the service) for the examples that follow.
                return False, exc

        ok, value = self.portal.call(guarded)
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]


@contextlib.contextmanager
def live_service(path: Path, **options: Any) -> Iterator[Live]:
    with start_blocking_portal() as portal:
        service = portal.call(lambda: SessionService(path, **options))
        with portal.wrap_async_context_manager(service):
            yield Live(portal, service)


@pytest.fixture(params=["durable", "async"])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Live]:
    """A service in each write mode (async_persist must validate before queueing)."""
    with live_service(tmp_path / "hostile.db", async_persist=request.param == "async") as svc:
        yield svc


@pytest.fixture
def durable(tmp_path: Path) -> Iterator[Live]:
    with live_service(tmp_path / "hostile.db") as svc:
        yield svc


_apps = itertools.count()


async def new_session(service: SessionService, **kwargs: Any) -> Session:
    """A session in an app of its own, so that its app and user state start empty."""
    return await service.create_session(
        app_name=f"{APP}-{next(_apps)}", user_id=USER, session_id="s", **kwargs
    )


def key_of(session: Session) -> dict[str, str]:
    return {"app_name": session.app_name, "user_id": session.user_id, "session_id": session.id}


async def reread(service: SessionService, session: Session, **kwargs: Any) -> Session:
    got = await service.get_session(**key_of(session), **kwargs)
    assert got is not None
    return got


async def scopes(service: SessionService, session: Session) -> tuple[Any, ...]:
    """Everything a refused call must leave as it was."""
    got = await reread(service, session)
    return (
        got.version,
        got.events,
        got.state,
        await service.get_app_state(session.app_name),
        await service.get_user_state(session.app_name, session.user_id),
    )


async def collect(events: AsyncIterator[Event]) -> list[Event]:
    return [event async for event in events]


# -- comparing JSON exactly -----------------------------------------------------------------


def assert_same_json(actual: Any, expected: Any, path: str = "$") -> None:
    """``actual == expected``, and more: the same types (1.0 stays a float, True stays a
    bool), the same float bits (-0.0 is not 0.0) and, in objects, the same key order."""
    assert type(actual) is type(expected), (
        f"{path}: {type(actual).__name__} != {type(expected).__name__}"
    )
    if isinstance(expected, dict):
        assert list(actual) == list(expected), f"{path}: keys {list(actual)!r}"
        for key, value in expected.items():
            assert_same_json(actual[key], value, f"{path}[{key!r}]")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), f"{path}: length {len(actual)}"
        for i, (got, want) in enumerate(zip(actual, expected, strict=True)):
            assert_same_json(got, want, f"{path}[{i}]")
    elif isinstance(expected, float):
        assert actual.hex() == expected.hex(), f"{path}: {actual!r} != {expected!r}"
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def scribble(value: Any) -> None:
    """Mutate a caller's containers in place (the service must have copied them)."""
    if isinstance(value, list):
        for item in value:
            scribble(item)
        value.append("scribbled")
    elif isinstance(value, dict):
        for item in value.values():
            scribble(item)
        value["scribbled"] = True


def split_scopes(delta: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """The reference rule of §4: the (session, app, user, temp) parts of a delta."""
    parts: tuple[dict[str, Any], ...] = ({}, {}, {}, {})
    for key, value in delta.items():
        if key.startswith("app:"):
            parts[1][key[4:]] = value
        elif key.startswith("user:"):
            parts[2][key[5:]] = value
        elif key.startswith("temp:"):
            parts[3][key] = value
        else:
            parts[0][key] = value
    return parts


# -- strategies: legal JSON -----------------------------------------------------------------

SQLISH = [
    "'",
    '"',
    "`",
    ";",
    "--",
    "/*",
    "'; DROP TABLE sessions; --",
    'x" OR "1"="1',
    "Robert'); DROP TABLE events;--",
    "SELECT * FROM sessions WHERE 1=1",
    "%",
    "_",
    "%_%",
    "\\",
    "NULL",
    "null",
]
UNICODE = [
    "\x00",
    "a\x00b",
    "\x00\x00",
    "\u2028",
    "\u2029",
    "\U0001f916",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "\U0010ffff",
    "\ufeff",
    "\uffff",
    "\u05e9\u05dc\u05d5\u05dd",
    "e\u0301",
    "\x7f",
    "\r\n\t",
    " ",
]
SPECIAL_TEXT = SQLISH + UNICODE

utf8 = st.characters(codec="utf-8")  # every code point but lone surrogates, NUL included
texts = st.one_of(st.text(utf8, max_size=12), st.sampled_from(["", *SPECIAL_TEXT]))
# What is stored as text rather than inside JSON (names, ids, state keys): everything but
# NUL, which no backend stores as text (refused on both: see tests/test_text_rules.py).
names = texts.filter(lambda text: "\x00" not in text)

BIG_INTS = [2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63), -(2**63) - 1, 10**40, -(10**40)]
ints = st.one_of(st.integers(), st.sampled_from(BIG_INTS), st.integers(-(10**60), 10**60))
SPECIAL_FLOATS = [
    -0.0,
    0.0,
    1.0,
    -1.0,
    0.1,
    1e16,
    2.0**53,
    1e308,
    -1e308,
    1.7976931348623157e308,  # largest finite
    5e-324,  # smallest subnormal
    -5e-324,
    2.2250738585072014e-308,  # smallest normal
    2.225073858507201e-308,  # largest subnormal
]
floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(SPECIAL_FLOATS)
)
json_leaves = st.one_of(st.none(), st.booleans(), ints, floats, texts)
json_values = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(texts, children, max_size=4)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(texts, json_values, max_size=4)
# A scope prefix needs a key after it ("app:" alone is refused, see test_state.py).
PREFIXES = ("app:", "user:", "temp:")
state_keys = st.one_of(names, st.builds(operator.add, st.sampled_from(PREFIXES), names)).filter(
    lambda key: key not in PREFIXES
)
state_deltas = st.dictionaries(state_keys, json_values, max_size=5)
plain_objects = st.dictionaries(
    names.filter(lambda k: not k.startswith(PREFIXES)), json_values, max_size=4
)

# -- strategies: one non-JSON piece somewhere ---------------------------------------------

lone_surrogates = st.builds(
    lambda before, surrogate, after: before + surrogate + after,
    st.text(utf8, max_size=3),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    st.text(utf8, max_size=3),
)
bad_leaves = st.one_of(
    st.sampled_from(
        [
            math.nan,
            math.inf,
            -math.inf,
            b"",
            bytearray(b"x"),
            (),
            1 + 2j,
            Decimal("1.5"),
            datetime(2026, 1, 1, tzinfo=timezone.utc),
            range(3),
            ...,
        ]
    ),
    st.builds(set, st.lists(st.integers(), max_size=3)),
    st.builds(frozenset, st.lists(texts, max_size=3)),
    st.binary(max_size=4),
    st.tuples(json_leaves),
    st.builds(object),
    lone_surrogates,
)
# No bytes keys here: they are coerced to str, see test_bytes_dict_keys_are_not_coerced.
bad_keys = st.one_of(
    st.sampled_from([0, 1, -7, 1.5, None, True, (1, "a"), frozenset({1})]), lone_surrogates
)


def _poison(draw: st.DrawFn, value: Any, *, typed_root: bool) -> Any:
    """A copy of ``value`` with one non-JSON piece placed somewhere in it: a bad leaf,
    a bad dict key, or a container that holds itself.

    ``typed_root``: ``value`` is a ``dict[str, JSON]`` model field. Its own keys stay
    str (pydantic refuses others when the model is built, before any service call) and
    its ``temp:`` entries are left alone (never serialized, see
    test_temp_values_are_never_serialized).
    """
    if isinstance(value, list) and value and draw(st.booleans()):
        i = draw(st.integers(0, len(value) - 1))
        out = list(value)
        out[i] = _poison(draw, value[i], typed_root=False)
        return out
    if isinstance(value, dict):
        keys = [k for k in value if not (typed_root and k.startswith("temp:"))]
        if keys and draw(st.booleans()):
            key = draw(st.sampled_from(keys))
            out = dict(value)
            out[key] = _poison(draw, value[key], typed_root=False)
            return out
        out = dict(value)
        how = draw(st.sampled_from(["leaf", "cycle"] if typed_root else ["leaf", "cycle", "key"]))
        if how == "key":
            out[draw(bad_keys)] = draw(json_values)
        elif how == "cycle":
            out["poison" + draw(texts)] = out
        else:
            out["poison" + draw(texts)] = draw(bad_leaves)
        return out
    if isinstance(value, list):
        if draw(st.booleans()):
            cyclic: list[Any] = list(value)
            cyclic.append(cyclic)
            return cyclic
        i = draw(st.integers(0, len(value)))
        return [*value[:i], draw(bad_leaves), *value[i:]]
    return draw(bad_leaves)


@st.composite
def poisoned(draw: st.DrawFn, base: st.SearchStrategy[Any], *, typed_root: bool = False) -> Any:
    return _poison(draw, draw(base), typed_root=typed_root)


@st.composite
def poisoned_event_fields(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """(the poisoned field, Event keyword arguments with exactly one bad piece)."""
    where = draw(st.sampled_from(["content", "metadata", "state_delta", "arguments", "output"]))

    def field(name: str, legal: st.SearchStrategy[Any], *, typed_root: bool) -> Any:
        return draw(poisoned(legal, typed_root=typed_root) if name == where else legal)

    arguments = field("arguments", json_objects, typed_root=True)
    output = field("output", json_values, typed_root=False)
    return where, {
        "content": field("content", json_values, typed_root=False),
        "metadata": field("metadata", json_objects, typed_root=True),
        "state_delta": field("state_delta", state_deltas, typed_root=True),
        "tool_calls": [ToolCall(id="call-1", name="lookup", arguments=arguments)],
        "tool_results": [ToolResult(call_id="call-1", output=output)],
    }


# -- legal JSON round-trips -----------------------------------------------------------------


@pytest.mark.slow
@PROPERTY
@given(
    content=json_values,
    metadata=json_objects,
    delta=state_deltas,
    arguments=json_objects,
    output=json_values,
    reasoning=st.none() | texts,
)
def test_legal_json_round_trips_exactly(
    live: Live,
    content: Any,
    metadata: dict[str, Any],
    delta: dict[str, Any],
    arguments: dict[str, Any],
    output: Any,
    reasoning: str | None,
) -> None:
    want = copy.deepcopy((content, metadata, delta, arguments, output))
    want_content, want_metadata, want_delta, want_arguments, want_output = want
    session_part, app_part, user_part, temp_part = split_scopes(want_delta)
    stored_delta = {k: v for k, v in want_delta.items() if not k.startswith("temp:")}

    async def body() -> None:
        service = live.service
        session = await new_session(service)
        event = Event(
            author="assistant",
            content=content,
            reasoning=reasoning,
            metadata=metadata,
            state_delta=delta,
            tool_calls=[ToolCall(id="call-1", name="lookup", arguments=arguments)],
            tool_results=[ToolResult(call_id="call-1", output=output)],
        )
        returned = await service.append_event(session, event)
        for mine in (content, metadata, delta, arguments, output):
            scribble(mine)  # the caller goes on using its objects
        got = await reread(service, session)
        assert len(got.events) == 1
        for seen in (got.events[0], session.events[-1], returned):
            assert seen.id == event.id
            assert seen.reasoning == reasoning
            assert_same_json(seen.content, want_content, "content")
            assert_same_json(seen.metadata, want_metadata, "metadata")
            assert_same_json(seen.state_delta, stored_delta, "state_delta")
            assert_same_json(seen.tool_calls[0].arguments, want_arguments, "arguments")
            assert_same_json(seen.tool_results[0].output, want_output, "output")
        # The merged view (§4): session keys, app:/user: keys, never temp: keys.
        assert set(got.state) == {
            *session_part,
            *("app:" + k for k in app_part),
            *("user:" + k for k in user_part),
        }
        for key, value in session_part.items():
            assert_same_json(got.state[key], value, f"state[{key!r}]")
        for key, value in app_part.items():
            assert_same_json(got.state["app:" + key], value, f"state['app:{key}']")
        for key, value in user_part.items():
            assert_same_json(got.state["user:" + key], value, f"state['user:{key}']")
        for key, value in temp_part.items():  # on the in-memory session only
            assert_same_json(session.state[key], value, f"in-memory state[{key!r}]")
        # The direct getters agree (keys without their prefix).
        app_state = await service.get_app_state(session.app_name)
        user_state = await service.get_user_state(session.app_name, USER)
        assert app_state.keys() == app_part.keys()
        assert user_state.keys() == user_part.keys()
        for key, value in app_part.items():
            assert_same_json(app_state[key], value, f"app state[{key!r}]")
        for key, value in user_part.items():
            assert_same_json(user_state[key], value, f"user state[{key!r}]")

    live.run(body)


@pytest.mark.slow
@CHEAP_PROPERTY
@given(state=state_deltas, metadata=json_objects, delta=plain_objects)
def test_legal_session_state_and_metadata_round_trip(
    durable: Live, state: dict[str, Any], metadata: dict[str, Any], delta: dict[str, Any]
) -> None:
    """create_session(state=, metadata=) and update_session_state keep values exactly."""
    want_state, want_metadata, want_delta = copy.deepcopy((state, metadata, delta))
    session_part, app_part, user_part, temp_part = split_scopes(want_state)

    async def body() -> None:
        service = durable.service
        session = await new_session(service, state=state, metadata=metadata)
        scribble(state)
        scribble(metadata)
        for key, value in temp_part.items():
            assert_same_json(session.state[key], value, f"in-memory state[{key!r}]")
        got = await reread(service, session)
        assert_same_json(got.metadata, want_metadata, "metadata")
        assert set(got.state) == {
            *session_part,
            *("app:" + k for k in app_part),
            *("user:" + k for k in user_part),
        }
        for key, value in session_part.items():
            assert_same_json(got.state[key], value, f"state[{key!r}]")
        await service.update_session_state(**key_of(session), delta=delta)
        scribble(delta)
        got = await reread(service, session)
        for key, value in {**session_part, **want_delta}.items():
            assert_same_json(got.state[key], value, f"state[{key!r}]")
        assert got.version == 1

    durable.run(body)


# -- non-JSON anywhere: refused, nothing stored -------------------------------------------


@PROPERTY
@given(case=poisoned_event_fields(), batch=st.booleans())
def test_non_json_anywhere_is_refused_and_nothing_is_stored(
    live: Live, case: tuple[str, dict[str, Any]], batch: bool
) -> None:
    where, fields = case
    hypothesis.event(f"poisoned {where}" + (" (append_events)" if batch else ""))

    async def body() -> None:
        service = live.service
        session = await new_session(service)
        await service.append_event(session, Event(author="user", content="before"))
        await service.flush()
        before = await scopes(service, session)
        accepted = service.stats().events_accepted
        # Legal keys of every scope ride along with the bad value: none may land.
        canary = {"canary": 1, "app:canary": 1, "user:canary": 1}
        bad = Event(
            author="assistant", **{**fields, "state_delta": {**fields["state_delta"], **canary}}
        )
        in_memory = (session.version, list(session.events), dict(session.state))

        sibling = Event(author="user", content="sibling", state_delta=canary)

        async def attempt() -> object:
            if batch:  # all or nothing: the legal sibling is not stored either
                return await service.append_events(session, [sibling, bad])
            return await service.append_event(session, bad)

        with pytest.raises(InvalidInputError):
            await attempt()

        assert (session.version, session.events, session.state) == in_memory
        await service.flush()  # nothing was queued, so nothing can fail here
        assert await scopes(service, session) == before
        assert service.stats().events_accepted == accepted

    live.run(body)


@CHEAP_PROPERTY
@given(
    where=st.sampled_from(["state", "metadata"]),
    state=poisoned(state_deltas, typed_root=True),
    metadata=poisoned(json_objects, typed_root=True),
)
def test_non_json_session_state_or_metadata_is_refused(
    durable: Live, where: str, state: dict[str, Any], metadata: dict[str, Any]
) -> None:
    app_name = f"{APP}-{next(_apps)}"
    key = {"app_name": app_name, "user_id": USER, "session_id": "s"}

    async def body() -> None:
        service = durable.service
        with pytest.raises(InvalidInputError):
            await service.create_session(
                **key,
                state={**state, "app:canary": 1} if where == "state" else {"app:canary": 1},
                metadata=metadata if where == "metadata" else None,
            )
        assert await service.get_session(**key) is None
        assert await service.get_app_state(app_name) == {}

    durable.run(body)


@CHEAP_PROPERTY
@given(
    scope=st.sampled_from(["session", "app", "user"]),
    delta=poisoned(plain_objects, typed_root=True),
)
def test_non_json_direct_state_updates_are_refused(
    durable: Live, scope: str, delta: dict[str, Any]
) -> None:
    async def body() -> None:
        service = durable.service
        session = await new_session(service)
        before = await scopes(service, session)
        bad = {"canary": 1, **delta}  # "canary" is legal and must not be stored

        async def attempt() -> None:
            if scope == "session":
                await service.update_session_state(**key_of(session), delta=bad)
            elif scope == "app":
                await service.update_app_state(session.app_name, bad)
            else:
                await service.update_user_state(session.app_name, USER, bad)

        with pytest.raises(InvalidInputError):
            await attempt()
        assert await scopes(service, session) == before

    durable.run(body)


def _recursive_list() -> list[Any]:
    cyclic: list[Any] = [1, "two"]
    cyclic.append(cyclic)
    return cyclic


def _recursive_dict() -> dict[str, Any]:
    cyclic: dict[str, Any] = {"a": [1]}
    cyclic["a"].append(cyclic)
    return cyclic


@pytest.mark.parametrize("make", [_recursive_list, _recursive_dict])
@pytest.mark.parametrize("field", ["content", "metadata", "state_delta", "arguments", "output"])
async def test_recursive_structure_is_refused(
    tmp_path: Path, make: Callable[[], Any], field: str
) -> None:
    cyclic = make()
    wrapped = {"k": cyclic}
    event = Event(
        author="user",
        content=cyclic if field == "content" else None,
        metadata=wrapped if field == "metadata" else {},
        state_delta={**(wrapped if field == "state_delta" else {}), "app:canary": 1},
        tool_calls=[ToolCall(name="t", arguments=wrapped if field == "arguments" else {})],
        tool_results=[ToolResult(call_id="t", output=cyclic if field == "output" else None)],
    )
    async with SessionService(tmp_path / "r.db") as service:
        session = await new_session(service)
        with pytest.raises(InvalidInputError, match=r"cyclic|recursi|nested too deeply"):
            await service.append_event(session, event)
        assert session.events == []
        assert await scopes(service, session) == (0, [], {}, {}, {})


@CHEAP_PROPERTY
@given(depth=st.integers(1, 400), kind=st.sampled_from(["list", "dict"]))
def test_deep_nesting_round_trips_or_is_refused(durable: Live, depth: int, kind: str) -> None:
    """However deep, a value is stored and read back or refused up front: it is never
    stored in a form that a later read cannot decode."""
    value: Any = "leaf"
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}

    async def body() -> None:
        service = durable.service
        session = await new_session(service)
        try:
            await service.append_event(session, Event(author="user", content=value))
        except InvalidInputError:
            assert await scopes(service, session) == (0, [], {}, {}, {})
        else:
            assert (await reread(service, session)).events[0].content == value

    durable.run(body)


# -- identifiers: quotes, SQL, unicode (NUL is refused: tests/test_text_rules.py) ---------

ids = st.one_of(st.text(utf8, min_size=1, max_size=16), st.sampled_from(SPECIAL_TEXT)).filter(
    lambda text: "\x00" not in text
)
segments = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1, max_size=6),
    st.sampled_from([t for t in SPECIAL_TEXT if "/" not in t and "\x00" not in t]),
)
branches = st.lists(segments, min_size=1, max_size=3).map("/".join)


@PROPERTY
@given(
    app_name=ids,
    user_id=ids,
    session_id=ids,
    event_id=ids,
    author=ids,
    branch=branches,
    state_key=ids.filter(lambda k: not k.startswith(PREFIXES)),
)
def test_hostile_identifiers_round_trip_exactly(
    durable: Live,
    app_name: str,
    user_id: str,
    session_id: str,
    event_id: str,
    author: str,
    branch: str,
    state_key: str,
) -> None:
    key = {"app_name": app_name, "user_id": user_id, "session_id": session_id}

    async def body() -> None:
        service = durable.service
        session = await service.create_session(**key, state={state_key: 1})
        assert session.key == (app_name, user_id, session_id)
        await service.append_event(session, Event(id=event_id, author=author, branch=branch))
        await service.update_app_state(app_name, {state_key: "app"})
        await service.update_user_state(app_name, user_id, {state_key: "user"})

        got = await service.get_session(**key)
        assert got is not None
        assert got.key == (app_name, user_id, session_id)
        assert [(e.id, e.author, e.branch) for e in got.events] == [(event_id, author, branch)]
        assert got.state == {state_key: 1, "app:" + state_key: "app", "user:" + state_key: "user"}
        assert await service.get_app_state(app_name) == {state_key: "app"}
        assert await service.get_user_state(app_name, user_id) == {state_key: "user"}
        # Filters compare exactly: no LIKE wildcards, no prefix matches on ids.
        for matching in (branch, branch.split("/")[0]):
            got = await service.get_session(**key, branch=matching)
            assert got is not None and len(got.events) == 1
        got = await service.get_session(**key, branch=branch + "\x01")
        assert got is not None and got.events == []
        assert len(await collect(service.iter_events(**key, author=author))) == 1
        assert await collect(service.iter_events(**key, author=author + "%")) == []
        page = await service.list_sessions(app_name=app_name, user_id=user_id)
        assert [s.key for s in page.sessions] == [(app_name, user_id, session_id)]
        assert await service.get_session(**{**key, "session_id": session_id + "\x01"}) is None
        assert await service.get_session(**{**key, "user_id": user_id + "%"}) is None

        assert await service.delete_session(**key) is True
        assert await service.get_session(**key) is None
        assert await service.delete_session(**key) is False
        # Leave the scopes empty for a later example that draws the same names.
        assert await service.delete_app_state(app_name, state_key) is True
        assert await service.delete_user_state(app_name, user_id, state_key) is True

    durable.run(body)


def _branch_matches(event_branch: str, flt: str) -> bool:
    """The reference rule of §1: ``a`` matches ``a``, ``a/b``...; ``""`` matches all."""
    return not flt or event_branch == flt or event_branch.startswith(flt + "/")


@CHEAP_PROPERTY
@given(
    event_branches=st.lists(st.one_of(st.just(""), branches), min_size=1, max_size=5),
    flt=st.one_of(st.just(""), branches, segments),
)
def test_branch_filter_agrees_with_the_reference_rule(
    durable: Live, event_branches: list[str], flt: str
) -> None:
    async def body() -> None:
        service = durable.service
        session = await new_session(service)
        events = [Event(author="user", branch=b, content=i) for i, b in enumerate(event_branches)]
        await service.append_events(session, events)
        expected = [i for i, b in enumerate(event_branches) if _branch_matches(b, flt)]
        got = await reread(service, session, branch=flt)
        assert [e.content for e in got.events] == expected
        streamed = await collect(service.iter_events(**key_of(session), branch=flt, page_size=2))
        assert [e.content for e in streamed] == expected

    durable.run(body)


bad_ids = st.one_of(st.just(""), lone_surrogates, st.sampled_from([None, 1, b"s", ("s",), 1.5]))


@PROPERTY
@given(where=st.sampled_from(["app_name", "user_id", "session_id"]), bad=bad_ids)
def test_bad_session_identifiers_are_refused(durable: Live, where: str, bad: Any) -> None:
    good = {"app_name": f"{APP}-{next(_apps)}", "user_id": USER, "session_id": "s"}
    key = {**good, where: bad}
    app, user = key["app_name"], key["user_id"]

    async def body() -> None:
        service = durable.service
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: service.get_session(**key),
            lambda: service.delete_session(**key),
            lambda: service.update_session_state(**key, delta={"k": 1}),
            lambda: service.get_summary(**key),
            lambda: collect(service.iter_events(**key)),
        ]
        if bad is not None or where != "session_id":  # None: "a fresh id"
            calls.append(lambda: service.create_session(**key, state={"app:canary": 1}))
            calls.append(lambda: service.get_or_create_session(**key, state={"app:canary": 1}))
        if where == "app_name" or (where == "user_id" and bad is not None):  # None: all
            calls.append(lambda: service.list_sessions(app_name=app, user_id=user))
        if where != "session_id":
            calls.append(lambda: service.update_user_state(app, user, {"k": 1}))
            calls.append(lambda: service.get_user_state(app, user))
            calls.append(lambda: service.delete_user_state(app, user, "k"))
        if where == "app_name":
            calls.append(lambda: service.update_app_state(bad, {"k": 1}))
            calls.append(lambda: service.get_app_state(bad))
            calls.append(lambda: service.delete_app_state(bad, "k"))
        for call in calls:
            with pytest.raises(InvalidInputError) as info:
                await call()
            assert info.value.field == where
        assert (await service.list_sessions(app_name=good["app_name"])).sessions == []
        assert await service.get_app_state(good["app_name"]) == {}
        assert await service.get_user_state(good["app_name"], USER) == {}

    durable.run(body)


bad_event_fields = st.one_of(
    st.tuples(st.just("id"), st.just("") | lone_surrogates),
    st.tuples(st.just("author"), st.just("") | lone_surrogates),
    st.tuples(st.just("branch"), lone_surrogates.map(lambda s: s.replace("/", "-"))),
)


@PROPERTY
@given(case=bad_event_fields)
def test_bad_event_identifiers_are_refused(live: Live, case: tuple[str, str]) -> None:
    where, bad = case
    fields = {"id": "e1", "author": "user", "branch": "", where: bad}
    if where == "id":
        # Refused by the model itself (a constrained str), before any service call.
        with pytest.raises(ValueError, match="id"):
            Event(**fields)
        return

    async def body() -> None:
        service = live.service
        session = await new_session(service)
        with pytest.raises(InvalidInputError) as info:
            await service.append_event(session, Event(**fields, state_delta={"app:canary": 1}))
        assert info.value.field == f"event.{where}"
        assert session.events == []
        await service.flush()
        assert await scopes(service, session) == (0, [], {}, {}, {})

    live.run(body)


# -- options: table_prefix ------------------------------------------------------------------

PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _newline_bug(prefix: str) -> bool:
    """See test_table_prefix_with_trailing_newline_is_refused (a known bug)."""
    return prefix.endswith("\n") and PREFIX.fullmatch(prefix[:-1]) is not None


@PROPERTY
@given(
    prefix=st.one_of(
        st.text(max_size=70),
        st.from_regex(PREFIX, fullmatch=True).map(lambda p: p + "-"),
        st.from_regex(PREFIX, fullmatch=True).map(lambda p: p + "x" * 64),
        st.sampled_from(["1abc", "a b", "a;DROP TABLE x", 'a"', "é", "a.b", "\x00"]),
    ).filter(lambda p: p and not PREFIX.fullmatch(p) and not _newline_bug(p))
)
def test_invalid_table_prefix_is_refused_at_construction(prefix: str) -> None:
    with pytest.raises(InvalidInputError, match="table_prefix") as info:
        SessionService(":memory:", table_prefix=prefix)
    assert info.value.field == "table_prefix"


@pytest.mark.parametrize("prefix", [None, 1, b"agent_", ["agent_"]])
def test_non_str_table_prefix_is_refused(prefix: Any) -> None:
    with pytest.raises(InvalidInputError, match="table_prefix"):
        SessionService(":memory:", table_prefix=prefix)


@settings(PROPERTY, max_examples=20)
@given(prefix=st.from_regex(PREFIX, fullmatch=True))
def test_valid_table_prefix_is_used(tmp_path_factory: pytest.TempPathFactory, prefix: str) -> None:
    path = tmp_path_factory.mktemp("prefix") / "p.db"
    with live_service(path, table_prefix=prefix) as svc:

        async def body() -> None:
            session = await new_session(svc.service)
            await svc.service.append_event(session, Event(author="user", content=prefix))
            assert (await reread(svc.service, session)).events[0].content == prefix

        svc.run(body)


# Regression test for a bug found by this suite (fixed).
@pytest.mark.parametrize("prefix", ["agent_\n", "_\n"])
async def test_table_prefix_with_trailing_newline_is_refused(prefix: str) -> None:
    with pytest.raises(InvalidInputError, match="table_prefix"):
        SessionService(":memory:", table_prefix=prefix)


# -- limits and counts ----------------------------------------------------------------------

not_ints = st.one_of(
    st.floats(),
    st.booleans(),
    st.text(max_size=3),
    st.sampled_from([Decimal(5), "5", b"5", [5], 5.0, 1 + 0j]),
)
bad_counts = st.one_of(st.integers(max_value=-1), not_ints)
bad_limits = st.one_of(
    st.tuples(st.just("num_recent_events"), bad_counts),
    st.tuples(st.just("expected_version"), bad_counts),
    st.tuples(st.just("after_sequence"), bad_counts),
    # list_sessions takes 1..1000 and iter_events at least 1; neither has a None default.
    st.tuples(st.just("limit"), bad_counts | st.sampled_from([0, 1001, 10**20, None])),
    st.tuples(st.just("page_size"), bad_counts | st.sampled_from([0, None])),
)


@PROPERTY
@given(case=bad_limits)
def test_negative_or_non_int_limits_are_refused(live: Live, case: tuple[str, Any]) -> None:
    where, bad = case

    async def body() -> None:
        service = live.service
        session = await new_session(service)
        key = key_of(session)

        async def attempt() -> object:
            if where == "num_recent_events":
                return await service.get_session(**key, num_recent_events=bad)
            if where == "limit":
                return await service.list_sessions(app_name=session.app_name, limit=bad)
            if where == "page_size":
                return await collect(service.iter_events(**key, page_size=bad))
            if where == "after_sequence":
                return await collect(service.iter_events(**key, after_sequence=bad))
            event = Event(author="user", state_delta={"app:canary": 1})
            return await service.append_event(session, event, expected_version=bad)

        with pytest.raises(InvalidInputError) as info:
            await attempt()
        assert info.value.field == where
        await service.flush()
        assert await scopes(service, session) == (0, [], {}, {}, {})

    live.run(body)


@CHEAP_PROPERTY
@given(
    n=st.integers(0, 7),
    recent=st.integers(0, 10),
    page_size=st.integers(1, 9),
    after_sequence=st.integers(0, 9),
)
def test_legal_limits_select_the_right_events(
    durable: Live, n: int, recent: int, page_size: int, after_sequence: int
) -> None:
    async def body() -> None:
        service = durable.service
        session = await new_session(service)
        if n:
            await service.append_events(session, [Event(author="u", content=i) for i in range(n)])
        got = await reread(service, session, num_recent_events=recent)
        assert [e.content for e in got.events] == list(range(n))[max(0, n - recent) :]
        streamed = await collect(
            service.iter_events(
                **key_of(session), page_size=page_size, after_sequence=after_sequence
            )
        )
        assert [e.sequence for e in streamed] == list(range(after_sequence + 1, n + 1))

    durable.run(body)


# -- datetimes ------------------------------------------------------------------------------


class NoOffset(tzinfo):
    """A tzinfo that does not know its offset: a naive datetime in disguise."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@PROPERTY
@given(
    where=st.sampled_from(["timestamp", "after", "since", "until"]),
    naive=st.one_of(st.datetimes(), st.datetimes(timezones=st.just(NoOffset()))),
)
def test_naive_datetimes_are_refused(live: Live, where: str, naive: datetime) -> None:
    if where == "timestamp":
        # The model converts an aware-looking value; only a truly naive one gets through.
        naive = naive.replace(tzinfo=None)

    async def body() -> None:
        service = live.service
        session = await new_session(service)
        key = key_of(session)

        async def attempt() -> object:
            if where == "timestamp":
                return await service.append_event(session, Event(author="user", timestamp=naive))
            if where == "after":
                return await service.get_session(**key, after=naive)
            return await collect(service.iter_events(**key, **{where: naive}))

        with pytest.raises(InvalidInputError, match="naive") as info:
            await attempt()
        assert info.value.field == ("event.timestamp" if where == "timestamp" else where)
        await service.flush()
        assert await scopes(service, session) == (0, [], {}, {}, {})

    live.run(body)


@PROPERTY
@given(
    moment=st.datetimes(
        min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=offsets
    )
)
def test_aware_timestamps_round_trip_and_filter_exactly(live: Live, moment: datetime) -> None:
    tick = timedelta(microseconds=1)

    async def body() -> None:
        service = live.service
        session = await new_session(service)
        await service.append_event(session, Event(author="user", timestamp=moment))
        (event,) = (await reread(service, session)).events
        assert event.timestamp == moment
        assert event.timestamp.utcoffset() == timedelta(0)
        assert len((await reread(service, session, after=moment)).events) == 1
        assert (await reread(service, session, after=moment + tick)).events == []
        key = key_of(session)
        assert len(await collect(service.iter_events(**key, since=moment, until=moment))) == 1
        assert await collect(service.iter_events(**key, until=moment - tick)) == []
        assert await collect(service.iter_events(**key, since=moment + tick)) == []

    live.run(body)


# -- huge payloads --------------------------------------------------------------------------

TEN_MB = 10 * 1024 * 1024


def ten_megabytes() -> dict[str, Any]:
    chunk = "héllo \u2028 \x00 \U0001f916 'quoted' \"dq\" ; DROP TABLE x; -- "
    blob = (chunk * (TEN_MB // len(chunk) + 1))[: TEN_MB // 2]
    payload = {"blob": blob, "numbers": list(range(200_000)), "tail": blob[::-1]}
    assert 2 * len(blob.encode()) > TEN_MB
    return payload


async def test_ten_megabyte_payload_is_durable(tmp_path: Path) -> None:
    payload = ten_megabytes()
    path = tmp_path / "big.db"
    async with SessionService(path) as service:
        session = await new_session(service)
        event = Event(author="tool", content=payload, state_delta={"big": payload["blob"]})
        stored = await service.append_event(session, event)
    async with SessionService(path) as reopened:  # read back from the file
        got = await reread(reopened, session)
    assert got.events[0].id == stored.id
    assert got.events[0].content == payload
    assert got.state["big"] == payload["blob"]


async def test_ten_megabyte_payload_in_async_mode(tmp_path: Path) -> None:
    payload = ten_megabytes()
    path = tmp_path / "big-async.db"
    async with SessionService(path, async_persist=True) as service:
        session = await new_session(service)
        await service.append_event(session, Event(author="tool", content=payload))
        await service.flush()
        assert service.stats().events_persisted == 1
        assert (await reread(service, session)).events[0].content == payload
    async with SessionService(path) as reopened:
        assert (await reread(reopened, session)).events[0].content == payload


# -- regressions: bugs this suite found, now fixed -------------------------------------------

SURROGATE_KEY = "k\ud800"


# Regression test for a bug found by this suite (fixed).
@pytest.mark.parametrize(
    "call",
    [
        "append session key",
        "append app: key",
        "append user: key",
        "append, async_persist",
        "create_session",
        "update_session_state",
        "update_app_state",
        "update_user_state",
    ],
)
async def test_lone_surrogate_state_key_is_refused(tmp_path: Path, call: str) -> None:
    async_persist = call == "append, async_persist"
    async with SessionService(tmp_path / "s.db", async_persist=async_persist) as service:
        session = await new_session(service)
        prefix = {"append app: key": "app:", "append user: key": "user:"}.get(call, "")
        delta = {prefix + SURROGATE_KEY: 1}

        async def attempt() -> object:
            if call.startswith("append"):
                return await service.append_event(session, Event(author="user", state_delta=delta))
            if call == "create_session":
                return await service.create_session(app_name=APP, user_id=USER, state=delta)
            if call == "update_session_state":
                return await service.update_session_state(**key_of(session), delta=delta)
            if call == "update_app_state":
                return await service.update_app_state(session.app_name, delta)
            return await service.update_user_state(session.app_name, USER, delta)

        with pytest.raises(InvalidInputError):
            await attempt()
        await service.flush()
        assert await scopes(service, session) == (0, [], {}, {}, {})


@pytest.mark.parametrize(
    "field",
    [
        "metadata",  # regression: top-level keys were silently replaced by U+FFFD
        "arguments",
        "content",
        "nested state value",
        "session metadata",
    ],
)
async def test_lone_surrogate_key_round_trips_or_is_refused(tmp_path: Path, field: str) -> None:
    bad = {SURROGATE_KEY: 1}
    event = Event(
        author="user",
        content=bad if field == "content" else None,
        metadata=bad if field == "metadata" else {},
        tool_calls=[ToolCall(id="c", name="t", arguments=bad if field == "arguments" else {})],
        state_delta={"k": bad} if field == "nested state value" else {},
    )
    async with SessionService(tmp_path / "s.db") as service:
        if field == "session metadata":
            with pytest.raises(InvalidInputError):
                await new_session(service, metadata=bad)
            return
        session = await new_session(service)
        try:
            await service.append_event(session, event)
        except InvalidInputError:
            assert await scopes(service, session) == (0, [], {}, {}, {})
            return
        (got,) = (await reread(service, session)).events
        assert got.metadata == event.metadata
        assert got.tool_calls[0].arguments == event.tool_calls[0].arguments


async def test_temp_values_follow_the_same_rules(tmp_path: Path) -> None:
    """``temp:`` values live on the in-memory session only, yet the whole delta is held
    to one rule: a value that is not JSON (here a lone surrogate) is refused, and
    legal ``temp:`` values are applied in memory and never stored."""
    async with SessionService(tmp_path / "s.db") as service:
        session = await new_session(service)
        with pytest.raises(InvalidInputError, match="temp:t"):
            await service.append_event(
                session, Event(author="user", state_delta={"temp:t": "\ud800"})
            )
        await service.append_event(session, Event(author="user", state_delta={"temp:t": "ok"}))
        assert session.state["temp:t"] == "ok"
        got = await reread(service, session)
        assert got.state == {}
        assert got.events[0].state_delta == {}


def _int_with_digits(n: int) -> int:
    return 10 ** (n - 1)


@pytest.mark.parametrize(
    ("digits", "where"),
    [
        (4300, "content"),
        (4300, "state_delta"),
        # Regression: longer ints were stored, then every read of the session failed.
        (4301, "content"),
        (5000, "state_delta"),
    ],
)
async def test_huge_int_round_trips_or_is_refused(tmp_path: Path, digits: int, where: str) -> None:
    huge = _int_with_digits(digits)
    event = Event(
        author="user",
        content=huge if where == "content" else None,
        state_delta={"n": huge} if where == "state_delta" else {},
    )
    async with SessionService(tmp_path / "int.db") as service:
        session = await new_session(service)
        try:
            await service.append_event(session, event)
        except InvalidInputError:
            assert await scopes(service, session) == (0, [], {}, {}, {})
            return
        got = await reread(service, session)  # the session must stay readable
        assert (got.events[0].content if where == "content" else got.state["n"]) == huge


# Regression test for a bug found by this suite (fixed).
@pytest.mark.parametrize(
    "content", [{"a": {b"k": 1}}, [{b"k": 1, "k": 2}]], ids=["nested", "colliding"]
)
async def test_bytes_dict_keys_are_not_coerced(tmp_path: Path, content: Any) -> None:
    want = copy.deepcopy(content)
    async with SessionService(tmp_path / "b.db") as service:
        session = await new_session(service)
        try:
            await service.append_event(session, Event(author="user", content=content))
        except InvalidInputError:
            assert await scopes(service, session) == (0, [], {}, {}, {})
            return
        assert (await reread(service, session)).events[0].content == want


def test_service_can_be_built_outside_an_event_loop(tmp_path: Path) -> None:
    """Regression: building the service at import time (for a FastAPI lifespan to open
    later) raised NoEventLoopError, from an anyio.CancelScope made in __init__."""
    service = SessionService(tmp_path / "later.db")  # no I/O until open (§2)

    async def use() -> None:
        async with service:
            await new_session(service)

    with start_blocking_portal() as portal:
        portal.call(use)
