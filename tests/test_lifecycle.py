"""Lifecycle: open/close, closed-service errors, default path, options validation."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

import sessionlite
from sessionlite import Event, InvalidInputError, ServiceClosedError, SessionService
from sessionlite.config import parse_options


async def test_calls_after_close_raise(tmp_path: Path) -> None:
    service = SessionService(tmp_path / "db.sqlite")
    async with service:
        session = await service.create_session(app_name="a", user_id="u")
    assert service.closed
    calls = [
        service.create_session(app_name="a", user_id="u"),
        service.get_session(app_name="a", user_id="u", session_id=session.id),
        service.append_event(session, Event(author="u")),
        service.append_events(session, [Event(author="u")]),
        service.list_sessions(app_name="a"),
        service.delete_session(app_name="a", user_id="u", session_id=session.id),
        service.pop_event(session),
        service.clear_events(session),
        service.get_app_state("a"),
        service.update_app_state("a", {}),
        service.update_user_state("a", "u", {}),
        service.get_user_state("a", "u"),
        service.delete_app_state("a", "k"),
        service.delete_user_state("a", "u", "k"),
        service.update_session_state(app_name="a", user_id="u", session_id="s", delta={}),
        service.get_or_create_session(app_name="a", user_id="u"),
    ]
    for call in calls:
        with pytest.raises(ServiceClosedError):
            await call
    with pytest.raises(ServiceClosedError):
        service.iter_events(app_name="a", user_id="u", session_id=session.id)


async def test_aclose_is_idempotent_and_reopen_refused(tmp_path: Path) -> None:
    service = SessionService(tmp_path / "db.sqlite")
    await service.open()
    await service.aclose()
    await service.aclose()
    with pytest.raises(ServiceClosedError, match="opens once"):
        await service.open()
    never_opened = SessionService(":memory:")
    await never_opened.aclose()
    with pytest.raises(ServiceClosedError):
        await never_opened.get_app_state("a")


async def test_not_opened_raises(tmp_path: Path) -> None:
    service = SessionService(tmp_path / "db.sqlite")
    assert service.closed
    with pytest.raises(ServiceClosedError, match="not opened"):
        await service.create_session(app_name="a", user_id="u")


async def test_concurrent_closes(tmp_path: Path) -> None:
    service = await SessionService(tmp_path / "db.sqlite").open()
    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(service.aclose)
    assert service.closed


async def test_close_waits_for_in_flight_writes(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    service = await SessionService(path).open()
    session = await service.create_session(app_name="a", user_id="u", session_id="s")
    results: list[Event] = []

    async def writer(i: int) -> None:
        results.append(await service.append_event(session, Event(author="u", content=i)))

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(writer, i)
        await anyio.lowlevel.checkpoint()
        tg.start_soon(service.aclose)
    async with SessionService(path) as reopened:
        got = await reopened.get_session(app_name="a", user_id="u", session_id="s")
        assert got is not None
        assert sorted(e.id for e in got.events) == sorted(e.id for e in results)


async def test_default_path_uses_user_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    expected = tmp_path / "xdg" / "sessionlite" / "sessions.db"
    assert sessionlite.default_db_path() == expected
    async with SessionService() as service:
        assert service.path == str(expected)
        await service.create_session(app_name="a", user_id="u", session_id="s")
    assert expected.exists()


async def test_memory_databases_are_private() -> None:
    async with SessionService(":memory:") as one, SessionService(":memory:") as two:
        await one.create_session(app_name="a", user_id="u", session_id="s")
        assert await two.get_session(app_name="a", user_id="u", session_id="s") is None
        assert await one.get_session(app_name="a", user_id="u", session_id="s") is not None


async def test_repr_and_path(tmp_path: Path) -> None:
    service = SessionService(str(tmp_path / "x.db"))
    assert "closed" in repr(service)
    async with service:
        assert "open" in repr(service)
        assert service.options.event_limit == 1000


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"table_prefix": "1bad"}, "table_prefix"),
        ({"table_prefix": "x;drop"}, "table_prefix"),
        ({"table_prefix": "a" * 65}, "table_prefix"),
        ({"table_prefix": 3}, "table_prefix"),
        ({"create_schema": "yes"}, "create_schema"),
        ({"synchronous": "OFF"}, "synchronous"),
        ({"synchronous": 1}, "synchronous"),
        ({"busy_timeout": -1}, "busy_timeout"),
        ({"busy_timeout": 0}, "busy_timeout"),
        ({"busy_timeout": "5"}, "busy_timeout"),
        ({"busy_timeout": float("inf")}, "busy_timeout"),
        ({"busy_timeout": True}, "busy_timeout"),
        ({"event_limit": 0}, "event_limit"),
        ({"event_limit": 1.5}, "event_limit"),
        ({"clock": "now"}, "clock"),
        ({"reader_connections": 0}, "reader_connections"),
        ({"max_write_batch": -3}, "max_write_batch"),
        ({"no_such_option": 1}, "no_such_option"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, object], name: str) -> None:
    with pytest.raises(InvalidInputError, match=name) as info:
        SessionService(":memory:", **options)
    assert info.value.field == name


def test_good_options_are_normalised() -> None:
    options = parse_options(
        table_prefix="My_Prefix9",
        synchronous="full",
        busy_timeout=2.5,
        event_limit=None,
        create_schema=False,
    )
    assert options.synchronous == "FULL"
    assert options.busy_timeout == timedelta(seconds=2.5)
    assert options.event_limit is None
    assert parse_options(busy_timeout=timedelta(seconds=1)).busy_timeout == timedelta(seconds=1)


@pytest.mark.parametrize("path", ["", 3])
def test_bad_path(path: object) -> None:
    with pytest.raises(InvalidInputError, match="path"):
        SessionService(path)  # type: ignore[arg-type]


async def test_clock_returning_naive_datetime_is_reported(tmp_path: Path) -> None:
    from datetime import datetime

    async with SessionService(tmp_path / "x.db", clock=lambda: datetime(2026, 1, 1)) as svc:
        with pytest.raises(InvalidInputError, match="clock"):
            await svc.create_session(app_name="a", user_id="u")


async def test_synchronous_full_works(tmp_path: Path) -> None:
    async with SessionService(tmp_path / "x.db", synchronous="FULL") as svc:
        session = await svc.create_session(app_name="a", user_id="u")
        await svc.append_event(session, Event(author="u"))


def test_built_outside_any_event_loop(tmp_path: Path) -> None:
    # Framework apps build their services at import time, before a loop runs.
    from sessionlite.testing import FakeSummarizer

    service = SessionService(
        tmp_path / "db.sqlite", async_persist=True, summarizer=FakeSummarizer()
    )

    async def use() -> None:
        async with service:
            session = await service.create_session(app_name="a", user_id="u")
            await service.append_event(session, Event(author="u"))
            assert await service.summarize(session) is not None

    anyio.run(use)


# -- the database argument: one factory picks the backend ----------------------------------


def test_a_postgresql_url_without_the_driver_says_what_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['psycopg'] = None  # as if the extra were not installed\n"
        "from sessionlite import SessionService, InvalidInputError\n"
        "for url in ('postgresql://u:p@localhost/db', 'postgres://localhost/db'):\n"
        "    try:\n"
        "        SessionService(url)\n"
        "    except InvalidInputError as exc:\n"
        "        print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.count('pip install "sessionlite[postgres]"') == 2


def test_a_postgresql_url_names_the_server_without_its_password() -> None:
    service = SessionService("postgresql://bob:secret@db.example:6543/agents")
    assert service.path == "postgresql://bob@db.example:6543/agents"
    assert "secret" not in repr(service)


async def test_a_path_is_home_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    service = SessionService("~/home.db")
    assert service.path == str(tmp_path / "home.db")
    async with service:
        pass
    assert (tmp_path / "home.db").exists()


def test_path_is_an_alias_of_the_first_argument(tmp_path: Path) -> None:
    assert SessionService(path=tmp_path / "a.db").path == str(tmp_path / "a.db")
    with pytest.raises(InvalidInputError, match="not both"):
        SessionService(tmp_path / "a.db", path=tmp_path / "b.db")


def test_unknown_options_still_name_themselves() -> None:
    with pytest.raises(InvalidInputError, match=r"unknown option.*'event_limt'"):
        SessionService(":memory:", event_limt=5)  # type: ignore[call-arg]


async def test_a_ready_storage_object_is_used_as_it_is(tmp_path: Path) -> None:
    from sessionlite.store.sqlite.store import SqliteStore

    store = SqliteStore(str(tmp_path / "own.db"), parse_options())
    async with SessionService(store) as service:
        assert service.path == str(tmp_path / "own.db")
        session = await service.create_session(app_name="a", user_id="u", session_id="s")
        await service.append_event(session, Event(author="u", content="x"))
    async with SessionService(tmp_path / "own.db") as reopened:
        got = await reopened.get_session(app_name="a", user_id="u", session_id="s")
        assert got is not None and [e.content for e in got.events] == ["x"]


def test_options_of_the_other_backend_are_refused_by_name(tmp_path: Path) -> None:
    for option, value in (("pool_size", 5), ("prepared_statements", False)):
        with pytest.raises(InvalidInputError, match=f"'{option}': is a PostgreSQL option"):
            SessionService(tmp_path / "x.db", **{option: value})
    with pytest.raises(InvalidInputError, match="'synchronous': is a SQLite option"):
        SessionService("postgresql://localhost/db", synchronous="FULL")
    with pytest.raises(InvalidInputError, match="'reader_connections': is a SQLite option"):
        SessionService("postgres://localhost/db", reader_connections=2)
    # Given for the right backend, they are checked as before.
    assert SessionService(tmp_path / "x.db", synchronous="full").options.synchronous == "FULL"
    with pytest.raises(InvalidInputError, match="'synchronous'"):
        SessionService(tmp_path / "x.db", synchronous="OFF")  # type: ignore[arg-type]


def test_a_malformed_postgresql_url_is_refused_without_showing_its_password() -> None:
    with pytest.raises(InvalidInputError, match="not a valid PostgreSQL URL") as info:
        SessionService("postgresql://bob:s3cret@db.example:notaport/agents?sslmode=bogus=1")
    assert "s3cret" not in str(info.value)
