"""The hot paths: append rows snapshotted at acceptance, bodies built by hand,
multi-row statements, and stored events decoded without validation."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionlite import (
    DatabaseCorruptError,
    Event,
    PersistenceError,
    SessionNotFoundError,
    SessionService,
    ToolCall,
    ToolResult,
    Usage,
)
from sessionlite.store.codec import event_from_row, event_row
from sessionlite.store.sqlite.bulk import MAX_ROWS, padded_size, run_values
from sessionlite.validation import EVENT_COLUMNS, MAX_JSON_DEPTH, prepare_event

json_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
json_value = st.recursive(
    json_leaf | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@st.composite
def events(draw: st.DrawFn) -> Event:
    """Events with any JSON values, every optional field sometimes set, and sometimes
    nested models (tool calls, results, usage: the body's slow path)."""
    content = draw(json_value)
    extra: dict[str, Any] = {}
    if draw(st.booleans()):
        extra = {
            "tool_calls": [ToolCall(name="t", arguments={"x": 1})],
            "tool_results": [ToolResult(call_id="c", output=content)],
            "usage": Usage(input_tokens=3),
        }
    if not extra and draw(st.booleans()):  # token counts alone still decode plainly
        counts = draw(
            st.dictionaries(
                st.sampled_from(["input_tokens", "output_tokens"]), st.integers(0, 10**12)
            )
        )
        extra = {"usage": Usage(**counts)}
    return Event(
        author="a",
        content=content,
        reasoning=draw(st.none() | st.text(max_size=5)),
        state_delta=draw(
            st.dictionaries(st.sampled_from(["a", "app:b", "user:c", "temp:d"]), json_value)
        ),
        metadata=draw(st.dictionaries(st.text(max_size=4), json_value, max_size=2)),
        model=draw(st.none() | st.text(max_size=4)),
        branch=draw(st.sampled_from(["", "root", "root/sub"])),
        **extra,
    )


@settings(max_examples=150, deadline=None)
@given(event=events())
def test_body_is_what_pydantic_would_serialize(event: Event) -> None:
    """The hand-built body is byte for byte the model's exclude_defaults JSON, so bodies
    written before and after the fast path are the same text."""
    prepared = prepare_event(event)
    expected = prepared.event.model_dump_json(exclude=EVENT_COLUMNS, exclude_defaults=True)
    assert prepared.body == expected
    stored_delta = {k: v for k, v in event.state_delta.items() if not k.startswith("temp:")}
    assert prepared.event == event.model_copy(update={"state_delta": stored_delta})


def test_statement_sizes_are_few_and_fit_their_rows() -> None:
    sizes = {padded_size(rows) for rows in range(1, MAX_ROWS + 1)}
    assert len(sizes) <= 8 + MAX_ROWS.bit_length()  # so every text stays prepared
    for rows in range(1, MAX_ROWS + 1):
        assert rows <= padded_size(rows) <= max(8, 2 * rows - 1)


def test_run_values_returns_every_row() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (a INTEGER, b TEXT)")
    insert = "INSERT INTO t (a, b) SELECT * FROM (VALUES {values}) WHERE column1 IS NOT NULL"
    for total in (1, 7, 9, 300, MAX_ROWS, MAX_ROWS + 1, 2 * MAX_ROWS + 5):
        conn.execute("DELETE FROM t")
        rows = [(i, str(i)) for i in range(total)]
        run_values(conn, insert, 2, rows)
        assert conn.execute("SELECT a, b FROM t ORDER BY a").fetchall() == rows
    got = run_values(conn, "SELECT count(column1) FROM (VALUES {values})", 1, [(1,)] * 300)
    assert got == [(300,)]  # one statement, padding rows not counted


@pytest.mark.parametrize("async_persist", [False, True])
async def test_a_batch_across_more_sessions_than_one_statement_holds(
    tmp_path: Path, async_persist: bool
) -> None:
    """More sessions than one statement holds (several lookup/update statements per
    batch), 2 events each, some sessions missing: sequences, versions and state come out
    exact."""
    path = tmp_path / "db.sqlite"
    sessions = MAX_ROWS + 100
    async with SessionService(path, async_persist=async_persist) as service:
        created = [
            await service.create_session(app_name="a", user_id="u", session_id=f"s{i}")
            for i in range(sessions)
        ]
        for i in range(0, sessions, 3):  # every third one is gone before the appends
            await service.delete_session(app_name="a", user_id="u", session_id=f"s{i}")

        async def two(i: int) -> None:
            for turn in range(2):
                try:
                    event = Event(author="u", content=f"{i}/{turn}", state_delta={"t": turn})
                    await service.append_event(created[i], event)
                except SessionNotFoundError:  # durable: the deleted ones fail at once
                    assert i % 3 == 0

        await asyncio.gather(*(two(i) for i in range(sessions)))
        if async_persist:
            with pytest.raises(PersistenceError) as info:
                await service.flush()
            assert len(info.value.event_ids) == 2 * len(range(0, sessions, 3))
        for i in range(sessions):
            stored = await service.get_session(app_name="a", user_id="u", session_id=f"s{i}")
            if i % 3 == 0:
                assert stored is None
                continue
            assert stored is not None
            assert [(e.sequence, e.content) for e in stored.events] == [
                (1, f"{i}/0"),
                (2, f"{i}/1"),
            ]
            assert stored.version == 2
            assert stored.state == {"t": 1}


async def test_async_append_stores_what_was_accepted(tmp_path: Path) -> None:
    """The caller gets the private copy back; changing it before the background write
    changes neither the stored row nor the stored state."""
    async with SessionService(tmp_path / "db.sqlite", async_persist=True) as service:
        session = await service.create_session(app_name="a", user_id="u", session_id="s")
        returned = await service.append_event(
            session,
            Event(id="e1", author="user", content={"k": [1]}, state_delta={"x": {"n": 1}}),
        )
        returned.author = "someone else"
        returned.content["k"].append(2)
        returned.state_delta["x"]["n"] = 99
        await service.flush()
        stored = await service.get_session(app_name="a", user_id="u", session_id="s")
        assert stored is not None
        (event,) = stored.events
        assert (event.id, event.author, event.content) == ("e1", "user", {"k": [1]})
        assert stored.state == {"x": {"n": 1}}
        # A retry of the event as accepted is still recognised as a duplicate.
        again = await service.append_event(
            session,
            Event(
                id="e1",
                author="user",
                content={"k": [1]},
                state_delta={"x": {"n": 1}},
                timestamp=event.timestamp,
            ),
        )
        await service.flush()
        assert again.id == "e1"


async def test_state_key_written_by_many_appends_of_one_batch_keeps_the_last(
    tmp_path: Path,
) -> None:
    async with SessionService(tmp_path / "db.sqlite", async_persist=True) as service:
        session = await service.create_session(app_name="a", user_id="u", session_id="s")
        for turn in range(50):
            await service.append_event(
                session,
                Event(
                    author="u",
                    state_delta={"turn": turn, "app:last": turn, "user:last": -turn},
                ),
            )
        await service.flush()
        stored = await service.get_session(app_name="a", user_id="u", session_id="s")
        assert stored is not None
        assert stored.state == {"turn": 49, "app:last": 49, "user:last": -49}
        assert [e.sequence for e in stored.events] == list(range(1, 51))
        assert stored.version == 50


# -- reads: plain stored events are built without validation ---------------------------


def _row(prepared: Any, sequence: int = 1) -> tuple[Any, ...]:
    return (sequence, *event_row(prepared.snapshot))


@settings(max_examples=150, deadline=None)
@given(event=events())
def test_decoded_event_is_what_validation_would_build(event: Event) -> None:
    row = _row(prepare_event(event), sequence=7)
    decoded = event_from_row(row)
    data = json.loads(row[5])
    data.update(
        id=row[1], author=row[2], timestamp=event.timestamp, branch=event.branch, sequence=7
    )
    validated = Event.model_validate(data)
    assert decoded == validated
    assert decoded.__pydantic_fields_set__ == validated.__pydantic_fields_set__
    if validated.usage is not None:
        assert decoded.usage is not None
        assert decoded.usage.model_fields_set == validated.usage.model_fields_set
    assert list(decoded.__dict__) == list(validated.__dict__)  # field order (repr)
    assert decoded.sequence == 7 and decoded.timestamp == event.timestamp


@pytest.mark.parametrize(
    ("body", "branch"),
    [
        ('{"reasoning": 5}', ""),
        ('{"state_delta": [1]}', ""),
        ('{"metadata": "x"}', ""),
        ('{"unknown_field": 1}', ""),
        ('{"usage": {"input_tokens": -1}}', ""),
        ('{"usage": {"input_tokens": 1.5}}', ""),
        ('{"usage": {"tokens": 1}}', ""),
        ('{"usage": [1]}', ""),
        ("{}", "a//b"),
        ("[1]", ""),
        ("{not json", ""),
    ],
)
def test_damaged_rows_are_reported_not_returned(body: str, branch: str) -> None:
    with pytest.raises(DatabaseCorruptError):
        event_from_row((1, "id", "author", 0, branch, body))


def test_deeply_nested_stored_values_still_decode() -> None:
    """Deeper than pydantic-core's parser goes (200 levels) but accepted when stored."""
    value: Any = "leaf"
    for _ in range(MAX_JSON_DEPTH - 10):
        value = [value]
    prepared = prepare_event(Event(author="a", content=value))
    assert event_from_row(_row(prepared)).content == value
