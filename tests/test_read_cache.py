"""The read cache (SQLite): reads served from memory, never stale, independent, bounded."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sessionlite import (
    Event,
    InvalidInputError,
    SessionService,
    Summary,
    ToolCall,
    ToolResult,
    Usage,
)
from sessionlite.store.base import SessionKey
from sessionlite.store.sqlite import reads
from sessionlite.testing import ManualClock
from sessionlite.timestamps import to_micros

Factory = Callable[..., SessionService]
KEY = {"app_name": "a", "user_id": "u", "session_id": "s"}


def dump(session: Any) -> Any:
    """Everything a reader can see of a session, for comparisons."""
    return None if session is None else session.model_dump()


async def read_uncached(service: SessionService, **query: Any) -> Any:
    """The same read straight from the database (what the cache must always agree with)."""
    store: Any = service._store
    from sessionlite.commands import event_query, session_key

    key = session_key(KEY["app_name"], KEY["user_id"], KEY["session_id"])
    q = event_query(
        query.get("num_recent_events"),
        query.get("after"),
        query.get("branch"),
        default_limit=service.options.event_limit,
    )
    now = service.options.clock()
    return dump(await store._read(reads.get_session, key, q, to_micros(now)))


async def agrees(service: SessionService, **query: Any) -> Any:
    await service.flush()
    got = dump(await service.get_session(**KEY, **query))
    assert got == await read_uncached(service, **query)
    return got


@pytest.fixture(params=["file", "memory", "async"])
def make(request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock) -> Factory:
    def build(**options: Any) -> SessionService:
        options.setdefault("clock", clock)
        if request.param == "async":
            options.setdefault("async_persist", True)
        path = ":memory:" if request.param == "memory" else tmp_path / "db.sqlite"
        return SessionService(path, **options)

    return build


async def test_turns_are_served_from_memory_and_agree_with_the_database(
    make: Factory, clock: ManualClock
) -> None:
    async with make() as service:
        session = await service.create_session(**KEY, state={"k": 0, "app:a": 1, "user:u": 2})
        for turn in range(5):
            got = await service.get_session(**KEY, num_recent_events=4)
            assert got is not None
            await service.append_event(got, Event(author="user", content=f"q{turn}"))
            clock.advance(seconds=1)
            await service.append_event(
                got, Event(author="ai", content={"a": [turn]}, state_delta={"k": turn})
            )
        await agrees(service, num_recent_events=4)
        await agrees(service)
        await agrees(service, num_recent_events=0)
        await agrees(service, num_recent_events=100)
        await agrees(service, after=clock.now - timedelta(seconds=2))
        stats = service.stats()
        assert stats.read_cache_hits >= 5
        assert stats.read_cache_sessions == 1
        assert 0 < stats.read_cache_bytes <= service.options.read_cache_size
        del session


async def test_every_kind_of_write_is_seen_by_the_next_read(make: Factory) -> None:
    async with make(summarizer=None) as service:
        session = await service.create_session(**KEY, metadata={"m": 1})
        await service.append_events(session, [Event(author="u", content=i) for i in range(3)])
        await agrees(service)
        steps: list[Any] = [
            lambda: service.update_session_state(**KEY, delta={"x": 1}),
            lambda: service.update_app_state("a", {"shared": 1}),
            lambda: service.update_user_state("a", "u", {"pref": 2}),
            lambda: service.delete_app_state("a", "shared"),
            lambda: service.pop_event(session),
            lambda: service.append_event(session, Event(author="u", branch="b/c", content=9)),
            lambda: service.clear_events(session),
            lambda: service._replace_events(session, [Event(author="u", content="new")]),
        ]
        for step in steps:
            await agrees(service)  # cached now
            await step()
            await agrees(service)
        store: Any = service._store
        stamp = service.options.clock()
        summary = Summary(branch="", text="t", through_sequence=1, updated_at=stamp)
        key = SessionKey("a", "u", "s")
        assert await store.put_summary(key, summary, now=stamp)
        assert (await agrees(service))["summaries"][""]["text"] == "t"
        # Another session's append with app state changes this session's view too.
        other = await service.create_session(app_name="a", user_id="v", session_id="o")
        await service.append_event(other, Event(author="v", state_delta={"app:shared": 7}))
        assert (await agrees(service))["state"]["app:shared"] == 7
        assert await service.delete_session(**KEY)
        assert await service.get_session(**KEY) is None


async def test_returned_sessions_are_independent(make: Factory) -> None:
    async with make() as service:
        session = await service.create_session(**KEY, state={"d": {"x": [1]}}, metadata={"m": {}})
        event = Event(author="u", content={"list": [1, 2]}, state_delta={"d": {"x": [1]}})
        await service.append_event(session, event)
        event.content["list"].append("caller's own copy")  # type: ignore[index]
        first = await service.get_session(**KEY)
        assert first is not None
        first.events[0].content["list"].append("mutated")  # type: ignore[index]
        first.events[0].state_delta["d"]["x"].append(3)  # type: ignore[index]
        first.events.append(Event(author="intruder"))
        first.state["d"]["x"].append(4)  # type: ignore[index]
        first.metadata["m"]["k"] = 1  # type: ignore[index]
        for _ in range(2):  # a hit, then another
            again = await service.get_session(**KEY)
            assert again is not None
            assert again.events[0].content == {"list": [1, 2]}
            assert again.events[0].state_delta == {"d": {"x": [1]}}
            assert len(again.events) == 1
            assert again.state == {"d": {"x": [1]}}
            assert again.metadata == {"m": {}}
        assert service.stats().read_cache_hits >= 2


async def test_flat_containers_and_fields_of_served_events_are_independent(
    make: Factory,
) -> None:
    """Hits share an event's immutable values and copy its containers: flat ones
    shallowly, so the copies must still be the caller's own."""
    async with make() as service:
        session = await service.create_session(**KEY)
        await service.append_events(
            session,
            [
                Event(author="u", content={"a": 1}, metadata={"m": "v"}, state_delta={"k": 1}),
                Event(author="u", content=[1, 2], usage=Usage(output_tokens=3)),
                Event(author="m", tool_calls=[ToolCall(id="c", name="t", arguments={"a": [1]})]),
            ],
        )
        for _ in range(3):  # the first read fills the cache; then the first hit decodes
            served = await service.get_session(**KEY)
            assert served is not None
            flat, listed, called = served.events
            assert called.tool_calls == [ToolCall(id="c", name="t", arguments={"a": [1]})]
            called.tool_calls[0].arguments["a"].append(2)  # type: ignore[union-attr]
            assert flat.content == {"a": 1}
            assert flat.metadata == {"m": "v"}
            assert flat.state_delta == {"k": 1}
            assert listed.content == [1, 2]
            assert flat.tool_calls == [] and listed.tool_results == []
            assert flat.model_fields_set == {
                "id", "author", "timestamp", "branch", "sequence", "content", "metadata",
                "state_delta",
            }  # fmt: skip
            flat.content["a"] = 2  # type: ignore[index]
            flat.metadata["m"] = "mutated"
            flat.state_delta.clear()
            flat.tool_calls.append(ToolCall(name="t"))
            listed.content.append(3)  # type: ignore[union-attr]
            assert listed.usage == Usage(output_tokens=3)
            assert listed.usage.model_fields_set == {"output_tokens"}
            listed.usage.input_tokens = 9
            listed.tool_results.append(ToolResult(call_id="c"))
            listed.reasoning = "assigned"
            assert "reasoning" in listed.model_fields_set
            again = await service.get_session(**KEY)
            assert again is not None
            assert "reasoning" not in again.events[1].model_fields_set
        assert service.stats().read_cache_hits >= 3


async def test_expiry_is_seen_the_moment_it_happens(make: Factory, clock: ManualClock) -> None:
    async with make(session_ttl=60, app_state_ttl=30) as service:
        await service.create_session(**KEY, state={"app:k": 1})
        assert (await agrees(service))["state"] == {"app:k": 1}
        clock.advance(seconds=31)
        assert (await agrees(service))["state"] == {}  # the app scope expired
        clock.advance(seconds=30)
        assert await service.get_session(**KEY) is None  # the session expired


async def test_a_read_after_another_processs_commit_returns_it(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    writer = textwrap.dedent(
        """
        import sys, anyio
        from sessionlite import Event, SessionService

        async def main(path, text):
            async with SessionService(path) as service:
                session = await service.get_session(app_name="a", user_id="u", session_id="s")
                await service.append_event(
                    session, Event(author="other", content=text, state_delta={"by": text}))

        anyio.run(main, sys.argv[1], sys.argv[2])
        """
    )
    async with SessionService(path) as service:
        session = await service.create_session(**KEY)
        await service.append_event(session, Event(author="me", content="mine"))
        for round_ in range(3):
            assert await service.get_session(**KEY) is not None  # cached
            assert await service.get_session(**KEY) is not None  # served from memory
            hits = service.stats().read_cache_hits
            await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-c", writer, str(path), f"theirs {round_}"],
                check=True,
                timeout=60,
            )
            got = await service.get_session(**KEY)
            assert got is not None
            assert got.events[-1].content == f"theirs {round_}"
            assert got.state == {"by": f"theirs {round_}"}
            assert service.stats().read_cache_hits == hits  # that read went to the file
        # A plain sqlite3 connection's write is seen too (no sessionlite involved).
        assert await service.get_session(**KEY) is not None
        with sqlite3.connect(path) as outsider:
            outsider.execute("UPDATE sessions SET metadata = '{\"edited\":true}'")
        got = await service.get_session(**KEY)
        assert got is not None
        assert got.metadata == {"edited": True}
        with sqlite3.connect(path) as outsider:
            outsider.execute("DELETE FROM sessions")
        assert await service.get_session(**KEY) is None


async def test_two_services_on_one_file_see_each_others_writes(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    async with SessionService(path) as one, SessionService(path) as two:
        session = await one.create_session(**KEY)
        for i in range(20):
            writer, reader = (one, two) if i % 2 else (two, one)
            current = await writer.get_session(**KEY)
            assert current is not None
            await writer.append_event(current, Event(author="w", content=i))
            seen = await reader.get_session(**KEY)
            assert seen is not None
            assert [e.content for e in seen.events] == list(range(i + 1))
        del session


async def test_the_cache_stays_within_its_bound(tmp_path: Path) -> None:
    bound = 40_000
    async with SessionService(tmp_path / "db.sqlite", read_cache_size=bound) as service:
        for n in range(60):
            session = await service.create_session(app_name="a", user_id="u", session_id=f"s{n}")
            await service.append_events(
                session, [Event(author="u", content="x" * 200) for _ in range(10)]
            )
            assert await service.get_session(app_name="a", user_id="u", session_id=f"s{n}")
            assert service.stats().read_cache_bytes <= bound
        stats = service.stats()
        assert stats.read_cache_evictions > 0
        assert 0 < stats.read_cache_sessions < 60


async def test_appends_alone_keep_the_cache_within_its_bound(tmp_path: Path) -> None:
    """Cached tails grow with every append (no read in between): the bound holds."""
    bound = 40_000
    async with SessionService(tmp_path / "db.sqlite", read_cache_size=bound) as service:
        sessions = []
        for n in range(3):
            session = await service.create_session(app_name="a", user_id="u", session_id=f"s{n}")
            assert await service.get_session(app_name="a", user_id="u", session_id=f"s{n}")
            sessions.append(session)
        for _ in range(10):
            for session in sessions:
                await service.append_event(session, Event(author="u", content="x" * 600))
                assert service.stats().read_cache_bytes <= bound
        assert service.stats().read_cache_evictions > 0


@pytest.mark.parametrize(
    "body",
    [
        {"content": "x" * 180, "state_delta": {"turn": 5}},
        {"content": "word, " * 40},
        {"content": list(range(2000))},
        {"content": {f"k{i}": i for i in range(1000)}},
        {"content": [{"a": i, "b": "x"} for i in range(500)]},
        {"content": [0] * 32, "state_delta": {str(i): 0 for i in range(32)}, "metadata": {}},
        {
            "content": list(range(32)),
            "state_delta": {f"k{i}": i for i in range(32)},
            "metadata": {f"m{i}": None for i in range(32)},
        },
    ],
    ids=["text", "prose", "long-list", "long-dict", "nested", "small-flat", "three-flat"],
)
def test_the_memory_estimate_covers_a_served_event(body: dict[str, Any]) -> None:
    """What ``read_cache_size`` bounds is an estimate: it must not fall short of what a
    cached event really holds once served (its decoded fields), whatever its shape."""
    import gc
    import tracemalloc

    from sessionlite.store.codec import dumps
    from sessionlite.store.hot_cache import _CachedEvent

    text = dumps(body)
    rows = [(n, f"{n:032x}", "author", 1_700_000_000_000_000 + n, "", text + "") for n in range(50)]
    gc.collect()
    tracemalloc.start()
    try:
        cached = [_CachedEvent(row) for row in rows]
        for event in cached:
            event.event()
        gc.collect()
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    row_bytes = sum(sys.getsizeof(part) for part in rows[0])  # allocated before tracing
    assert held / len(rows) + row_bytes <= cached[0].nbytes


def test_a_damaged_row_that_does_not_encode_again_is_served_as_read() -> None:
    """A lone surrogate in a nested value (stored by someone else) decodes, but cannot
    be kept as JSON text: such an event is decoded at every hit instead."""
    from sessionlite.store.base import EventQuery
    from sessionlite.store.hot_cache import HotCache, SessionRows

    cache = HotCache(max_bytes=10**6, max_events=100)
    cache.adopt(b"t")
    key = SessionKey("a", "u", "s")
    row = (1, "a", "u", "s", None, "{}", 0, 0, None, 3)
    event = (1, "e1", "u", 5, "", '{"content": [["\\ud800"]]}')
    cache.offer(key, SessionRows(row, {}, {}, None, {}, None, [event], True, []), b"t", b"t")
    for _ in range(2):
        served = cache.lookup(key, EventQuery(limit=None), 0, b"t")
        assert served is not None
        assert served.events[0].content == [["\ud800"]]


async def test_the_cache_can_be_turned_off(tmp_path: Path) -> None:
    async with SessionService(tmp_path / "db.sqlite", read_cache_size=0) as service:
        await service.create_session(**KEY)
        for _ in range(3):
            assert await service.get_session(**KEY) is not None
        stats = service.stats()
        assert (stats.read_cache_hits, stats.read_cache_misses, stats.read_cache_bytes) == (0, 0, 0)


def test_bad_cache_sizes_are_refused() -> None:
    for bad in (-1, 1.5, "64MB", True):
        with pytest.raises(InvalidInputError, match="read_cache_size"):
            SessionService(":memory:", read_cache_size=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"read_cache_size.*SQLite option"):
        SessionService("postgresql://localhost/db", read_cache_size=1000)


# -- the writer's accounting, with a scripted wal-index header ------------------------------


def header(change: int, salt: int = 7) -> bytes:
    import struct

    return struct.pack(
        "=IIIBBHIIIIIIII", 3007000, 0, change, 1, 0, 4096, 10, 5, 0, 0, salt, 9, 0, 0
    )


class ScriptedToken:
    """Reads the wal-index headers it is given, in order (``WalToken``'s rule for ours)."""

    def __init__(self, *tokens: bytes) -> None:
        self.tokens = list(tokens)

    def read(self) -> bytes:
        return self.tokens.pop(0)

    def ours(self, before: bytes, after: bytes, wrote: bool) -> bool:
        from sessionlite.store.sqlite.wal_token import WalToken

        return WalToken.ours(self, before, after, wrote)  # type: ignore[arg-type]


class FakeConn:
    def __init__(self) -> None:
        self.total_changes = 0


@pytest.mark.parametrize(
    ("after", "wrote", "kept"),
    [
        (header(6), True, True),  # exactly our commit
        (header(5), False, True),  # we changed nothing, nobody committed
        (header(7), True, False),  # another commit slipped in right after ours
        (header(6), False, False),  # we changed nothing, but someone committed
        (header(6, salt=8), True, True),  # our commit restarted the WAL (new salt)
    ],
    ids=["ours", "nothing", "slipped-in", "someone-else", "wal-restart"],
)
def test_the_writer_trusts_only_its_own_commit(after: bytes, wrote: bool, kept: bool) -> None:
    from sessionlite.store.hot_cache import HotCache, SessionRows
    from sessionlite.store.sqlite.cache_keeper import CacheKeeper
    from sessionlite.store.sqlite.queries import Queries

    before = header(5)
    cache = HotCache(max_bytes=10**6, max_events=100)
    cache.trusted = before
    key = SessionKey("a", "u", "s")
    row = (1, "a", "u", "s", None, "{}", 0, 0, None, 3)
    rows = SessionRows(row, {}, {}, None, {}, None, [], True, [])
    cache.offer(key, rows, before, before)
    assert cache.stats().sessions == 1
    keeper = CacheKeeper(cache, ScriptedToken(before, after), Queries.for_prefix(""))
    conn = FakeConn()
    keeper.on_begin(conn)  # type: ignore[arg-type]
    conn.total_changes += int(wrote)
    keeper.committed(conn, [], [])  # type: ignore[arg-type]
    assert cache.trusted == after
    assert cache.stats().sessions == (1 if kept else 0)


def test_a_cache_behind_a_commit_it_did_not_see_is_emptied() -> None:
    from sessionlite.store.hot_cache import HotCache, SessionRows

    cache = HotCache(max_bytes=10**6, max_events=100)
    cache.trusted = header(5)
    row = (1, "a", "u", "s", None, "{}", 0, 0, None, 3)
    rows = SessionRows(row, {}, {}, None, {}, None, [], True, [])
    cache.offer(SessionKey("a", "u", "s"), rows, header(5), header(5))
    cache.offer(SessionKey("a", "u", "t"), rows, header(4), header(4))  # an old read: refused
    cache.offer(SessionKey("a", "u", "v"), rows, header(5), header(6))  # a commit during it
    assert cache.stats().sessions == 1
    cache.committed(header(8), lambda c: None, expected=header(7))  # began after a foreign one
    assert cache.stats().sessions == 0
    assert cache.trusted == header(8)


async def test_two_services_on_one_postgresql_database_are_never_stale(postgres_url: str) -> None:
    """PostgreSQL keeps no read cache (a remote commit cannot be seen without asking the
    server): every read is one round trip and sees every commit made before it."""
    async with SessionService(postgres_url) as one, SessionService(postgres_url) as two:
        await one.create_session(**KEY)
        for i in range(10):
            writer, reader = (one, two) if i % 2 else (two, one)
            current = await writer.get_session(**KEY)
            assert current is not None
            await writer.append_event(current, Event(author="w", content=i, state_delta={"i": i}))
            seen = await reader.get_session(**KEY)
            assert seen is not None
            assert [e.content for e in seen.events] == list(range(i + 1))
            assert seen.state == {"i": i}
        assert one.stats().read_cache_hits == 0


async def test_without_a_wal_index_to_watch_reads_go_to_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sessionlite.store.sqlite.wal_token import WalToken

    def refuse(self: WalToken) -> None:
        raise PermissionError("no -shm for you")

    monkeypatch.setattr(WalToken, "open", refuse)
    async with SessionService(tmp_path / "db.sqlite") as service:
        session = await service.create_session(**KEY)
        await service.append_event(session, Event(author="u", content="x"))
        for _ in range(3):
            got = await service.get_session(**KEY)
            assert got is not None
            assert [e.content for e in got.events] == ["x"]
        assert service.stats().read_cache_hits == 0


def test_a_refill_reuses_cached_events_only_for_the_very_same_rows() -> None:
    from sessionlite.store.base import EventQuery
    from sessionlite.store.hot_cache import HotCache, SessionRows

    cache = HotCache(max_bytes=10**6, max_events=100)
    cache.adopt(b"t")
    key = SessionKey("a", "u", "s")
    row = (1, "a", "u", "s", None, "{}", 0, 0, None, 3)

    def offer(*events: tuple[int, str, str, int, str, str]) -> list[object]:
        cache.offer(
            key, SessionRows(row, {}, {}, None, {}, None, list(events), True, []), b"t", b"t"
        )
        served = cache.lookup(key, EventQuery(limit=None), 0, b"t")
        assert served is not None
        return [e.content for e in served.events]

    first = (1, "e1", "u", 5, "", '{"content":"one"}')
    assert offer(first) == ["one"]  # served once: its fields are decoded and kept
    assert offer(first, (2, "e2", "u", 6, "", '{"content":"two"}')) == ["one", "two"]
    # The same sequence with another row (e.g. a session deleted and created again
    # under the same key) is decoded afresh, never taken for the cached one.
    assert offer((1, "e1", "u", 5, "", '{"content":"other"}')) == ["other"]
