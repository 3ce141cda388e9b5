"""Concurrency for real: many tasks, one process; and two OS processes on one file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from sessionlite import Event, PersistenceError, Session, SessionService


async def check_history(service: SessionService, session_id: str, expected: set[str]) -> None:
    got = await service.get_session(
        app_name="app", user_id="u", session_id=session_id, num_recent_events=None
    )
    assert got is not None
    assert {e.id for e in got.events} == expected, "events lost or duplicated"
    sequences = [e.sequence for e in got.events]
    assert sequences == list(range(1, len(expected) + 1)), "sequence gaps"
    assert got.version == len(expected)  # one version per append call
    # Last write wins: the state holds the delta of the highest-sequence event.
    key = "count:" + session_id
    assert got.state[key] == got.events[-1].state_delta[key]


async def test_hundreds_of_tasks_many_sessions(make_service: object) -> None:
    async with make_service(event_limit=None) as service:  # type: ignore[operator]
        sessions = [
            await service.create_session(app_name="app", user_id="u", session_id=f"s{i}")
            for i in range(40)
        ]
        appended: dict[str, set[str]] = {s.id: set() for s in sessions}

        async def worker(session: Session, n: int) -> None:
            for i in range(n):
                event = Event(author="u", content=i, state_delta={"count:" + session.id: i})
                stored = await service.append_event(session, event)
                appended[session.id].add(stored.id)

        async with anyio.create_task_group() as tg:
            for session in sessions:
                for _ in range(5):  # 200 tasks, five per session, all interleaved
                    tg.start_soon(worker, session, 10)
        for session in sessions:
            assert len(appended[session.id]) == 50
            await check_history(service, session.id, appended[session.id])
        transactions, calls = service._store.write_statistics()
        assert calls >= 2000
        assert transactions < calls  # group commit actually grouped


async def test_hundreds_of_tasks_one_session(make_service: object) -> None:
    async with make_service(event_limit=None) as service:  # type: ignore[operator]
        session = await service.create_session(app_name="app", user_id="u", session_id="hot")
        ids: set[str] = set()

        async def worker(task: int) -> None:
            # Each task holds its own session object, as separate requests would.
            mine = await service.get_session(
                app_name="app", user_id="u", session_id="hot", num_recent_events=0
            )
            assert mine is not None
            for i in range(3):
                stored = await service.append_event(
                    mine, Event(author="u", content=[task, i], state_delta={"count:hot": task})
                )
                ids.add(stored.id)

        async with anyio.create_task_group() as tg:
            for task in range(300):
                tg.start_soon(worker, task)
        assert len(ids) == 900
        await check_history(service, session.id, ids)


async def test_one_bad_call_in_a_batch_fails_alone(make_service: object) -> None:
    # Many appends are committed together; conflicting and stale calls among them must
    # fail without taking the others down (each call is isolated by a savepoint).
    async with make_service(event_limit=None) as service:  # type: ignore[operator]
        session = await service.create_session(app_name="app", user_id="u", session_id="s")
        await service.append_event(session, Event(id="taken", author="u", content="orig"))
        outcomes: list[str] = []

        async def good(i: int) -> None:
            await service.append_event(session, Event(author="u", content=i))
            outcomes.append("ok")

        async def conflicting() -> None:
            try:
                await service.append_event(
                    session, Event(id="taken", author="u", content="x"), expected_version=None
                )
                await service.flush()
            except Exception as exc:
                cause = exc.__cause__ if isinstance(exc, PersistenceError) else exc
                outcomes.append(type(cause).__name__)

        async def stale() -> None:
            try:
                await service.append_event(session, Event(author="u"), expected_version=0)
            except Exception as exc:
                outcomes.append(type(exc).__name__)

        async with anyio.create_task_group() as tg:
            for i in range(30):
                tg.start_soon(good, i)
            tg.start_soon(conflicting)
            tg.start_soon(stale)
        assert outcomes.count("ok") == 30
        assert "EventConflictError" in outcomes and "StaleSessionError" in outcomes
        got = await service.get_session(app_name="app", user_id="u", session_id="s")
        assert got is not None
        assert len(got.events) == 31
        assert [e.sequence for e in got.events] == list(range(1, 32))


CHILD = textwrap.dedent(
    """
    import sys, anyio
    from sessionlite import Event, SessionService

    async def main(path, name, count):
        async with SessionService(path, busy_timeout=30) as service:
            shared = await service.get_or_create_session(
                app_name="app", user_id="u", session_id="shared")
            own = await service.get_or_create_session(app_name="app", user_id="u", session_id=name)
            print("ready", flush=True)
            sys.stdin.readline()  # wait until both processes are ready
            async def run(session, tag):
                for i in range(count):
                    await service.append_event(session, Event(author=name, content=[tag, i]))
            async with anyio.create_task_group() as tg:
                for t in range(4):
                    tg.start_soon(run, shared, t)
                    tg.start_soon(run, own, t)

    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))
    """
)


async def create_schema(path: Path) -> None:
    async with SessionService(path):
        pass  # create the schema first, as a deployment's migration step would


async def check_two_process_result(path: Path, count: int) -> None:
    async with SessionService(path, event_limit=None) as service:
        shared = await service.get_session(app_name="app", user_id="u", session_id="shared")
        assert shared is not None
        assert len(shared.events) == 2 * 4 * count
        assert [e.sequence for e in shared.events] == list(range(1, 2 * 4 * count + 1))
        assert len({e.id for e in shared.events}) == len(shared.events)
        for name in ("p1", "p2"):
            own = await service.get_session(app_name="app", user_id="u", session_id=name)
            assert own is not None
            assert len(own.events) == 4 * count
            per_task: dict[int, int] = {}
            for event in own.events:
                tag, i = event.content
                assert per_task.get(tag, -1) == i - 1, "a task's events out of order"
                per_task[tag] = i


@pytest.mark.slow
def test_two_processes_append_to_one_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    anyio.run(create_schema, path)
    count = 150
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), name, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("p1", "p2")
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    anyio.run(check_two_process_result, path, count)


async def test_many_services_open_one_new_file_at_once(tmp_path: Path) -> None:
    # Each service has its own connections, as separate processes would. Creating the
    # file, switching it to WAL and migrating the schema all race; none may fail.
    for attempt in range(5):
        path = tmp_path / f"new-{attempt}.db"
        services = [SessionService(path) for _ in range(6)]
        async with anyio.create_task_group() as tg:
            for service in services:
                tg.start_soon(service.open)
        try:
            for i, service in enumerate(services):
                await service.create_session(app_name="a", user_id="u", session_id=str(i))
            page = await services[0].list_sessions(app_name="a")
            assert len(page.sessions) == 6
        finally:
            for service in services:
                await service.aclose()
