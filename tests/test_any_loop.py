"""Any event loop, any thread, never a hang; process exit and fork.

Real threads, loops and subprocesses: each case that could hang runs under a timeout.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from sessionlite import Event, ServiceClosedError, SessionService

MODES = ["file", "memory", "async"]


def build(mode: str, tmp_path: Path) -> SessionService:
    path = ":memory:" if mode == "memory" else tmp_path / "db.sqlite"
    return SessionService(path, async_persist=(mode == "async"), event_limit=None)


def append_from_threads(service: SessionService, threads: int, per_thread: int) -> list[str]:
    """Each thread runs its own asyncio.run and appends to one shared session."""
    errors: list[BaseException] = []

    def work(index: int) -> None:
        async def main() -> None:
            session = await service.get_or_create_session(
                app_name="a", user_id="u", session_id="shared"
            )
            await asyncio.gather(
                *(
                    service.append_event(session, Event(author=f"t{index}", content=i))
                    for i in range(per_thread)
                )
            )

        try:
            asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert not any(worker.is_alive() for worker in workers), "a thread hung"
    assert errors == []
    return [f"t{i}" for i in range(threads)]


async def check_gap_free(service: SessionService, count: int) -> None:
    await service.flush()
    got = await service.get_session(app_name="a", user_id="u", session_id="shared")
    assert got is not None
    assert [e.sequence for e in got.events] == list(range(1, count + 1))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", MODES)
async def test_threads_with_their_own_loops_while_the_opening_loop_runs(
    mode: str, tmp_path: Path
) -> None:
    async with build(mode, tmp_path) as service:
        # The opening loop keeps running (it awaits the threads without blocking).
        await asyncio.to_thread(append_from_threads, service, 4, 50)
        await check_gap_free(service, 200)
        # Group commit still groups the threads' concurrent appends.
        if mode != "async":
            assert service.stats().write_transactions < service.stats().write_calls


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["file", "async"])
def test_threads_after_the_opening_loop_has_closed(mode: str, tmp_path: Path) -> None:
    service = build(mode, tmp_path)
    asyncio.run(service.open())  # this loop is closed when run() returns
    append_from_threads(service, 4, 50)

    async def check_and_close() -> None:
        await check_gap_free(service, 200)
        await service.aclose()

    asyncio.run(check_and_close())
    assert service.closed


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", MODES)
def test_sequential_asyncio_run_calls(mode: str, tmp_path: Path) -> None:
    # Open in the first run, use in the next three, close in a fifth: each run has a
    # new loop and the previous one is closed (the ADK sync runner / script pattern).
    service = build(mode, tmp_path)
    asyncio.run(service.open())
    for step in range(3):

        async def use(step: int = step) -> None:
            session = await service.get_or_create_session(app_name="a", user_id="u", session_id="s")
            await service.append_event(
                session, Event(author="u", content=step, state_delta={"user:n": step})
            )

        asyncio.run(use())

    async def close() -> list[object]:
        got = await service.get_session(app_name="a", user_id="u", session_id="s")
        assert got is not None and got.state["user:n"] == 2
        contents = [e.content for e in got.events]
        await service.aclose()
        return contents

    assert asyncio.run(close()) == [0, 1, 2]
    with pytest.raises(ServiceClosedError):
        asyncio.run(service.get_session(app_name="a", user_id="u", session_id="s"))


@pytest.mark.timeout(60)
def test_open_and_close_from_sync_code_in_another_thread(tmp_path: Path) -> None:
    service = build("async", tmp_path)
    asyncio.run(service._ensure_open())
    asyncio.run(service._ensure_open())  # idempotent

    async def append() -> None:
        session = await service.create_session(app_name="a", user_id="u", session_id="s")
        await service.append_event(session, Event(author="u", content="x"))

    asyncio.run(append())
    closer = threading.Thread(target=service._close_blocking)
    closer.start()
    closer.join(30)
    assert not closer.is_alive() and service.closed

    async def reopen() -> int:
        async with SessionService(tmp_path / "db.sqlite") as again:
            got = await again.get_session(app_name="a", user_id="u", session_id="s")
            assert got is not None
            return len(got.events)

    assert asyncio.run(reopen()) == 1


def run_script(code: str, tmp_path: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    env = {**os.environ, "PYTHONWARNINGS": "always::ResourceWarning"}
    env.pop("COVERAGE_PROCESS_START", None)
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=timeout,  # a hang fails the test instead of stalling the run
        env=env,
        cwd=tmp_path,
    )


def count_events(path: Path) -> int:
    async def count() -> int:
        async with SessionService(path, event_limit=None) as service:
            got = await service.get_session(app_name="a", user_id="u", session_id="s")
            return 0 if got is None else len(got.events)

    return asyncio.run(count())


@pytest.mark.timeout(90)
def test_unclosed_durable_service_exits_promptly(tmp_path: Path) -> None:
    result = run_script(
        """
        import asyncio
        from sessionlite import Event, SessionService

        service = SessionService("db.sqlite")

        async def main():
            await service.open()
            session = await service.create_session(app_name="a", user_id="u", session_id="s")
            for i in range(50):
                await service.append_event(session, Event(author="u", content=i))

        asyncio.run(main())
        print("done")  # and never closed
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "done" in result.stdout
    assert "ResourceWarning" in result.stderr and "db.sqlite" in result.stderr
    assert count_events(tmp_path / "db.sqlite") == 50


@pytest.mark.timeout(90)
def test_garbage_collected_open_service_warns_and_closes(tmp_path: Path) -> None:
    result = run_script(
        """
        import asyncio, gc
        from sessionlite import Event, SessionService

        async def main():
            service = SessionService("db.sqlite", async_persist=True)
            await service.open()
            session = await service.create_session(app_name="a", user_id="u", session_id="s")
            for i in range(20):
                await service.append_event(session, Event(author="u", content=i))

        asyncio.run(main())
        gc.collect()
        print("done")
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "ResourceWarning" in result.stderr and "unclosed" in result.stderr
    assert count_events(tmp_path / "db.sqlite") == 20


@pytest.mark.timeout(90)
def test_unclosed_async_persist_service_writes_everything_at_exit(tmp_path: Path) -> None:
    result = run_script(
        """
        import asyncio
        from sessionlite import Event, SessionService

        service = SessionService("db.sqlite", async_persist=True)

        async def main():
            await service.open()
            session = await service.create_session(app_name="a", user_id="u", session_id="s")
            for i in range(200):
                await service.append_event(session, Event(author="u", content=i))

        asyncio.run(main())  # the loop ends with events still queued
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    stored = count_events(tmp_path / "db.sqlite")
    if stored < 200:  # never silent: one report naming the missing events
        assert result.stderr.count("were NOT stored") == 1
    else:
        assert "were NOT stored" not in result.stderr
    assert "the service closed before this write" not in result.stderr


@pytest.mark.timeout(90)
def test_what_cannot_be_written_at_exit_is_reported_once(tmp_path: Path) -> None:
    # The session is deleted behind the queued events: they cannot be stored, and
    # the exit report says how many and which, once.
    result = run_script(
        """
        import asyncio
        from sessionlite import Event, SessionService

        service = SessionService("db.sqlite", async_persist=True)

        async def main():
            await service.open()
            session = await service.create_session(app_name="a", user_id="u", session_id="s")
            await service.delete_session(app_name="a", user_id="u", session_id="s")
            for i in range(5):
                await service.append_event(session, Event(id=f"e{i}", author="u", content=i))

        asyncio.run(main())
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("were NOT stored") == 1
    assert "5 event(s)" in result.stderr and "e0, e1, e2, e3, e4" in result.stderr
    assert "aclose()" in result.stderr


@pytest.mark.timeout(90)
@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_forked_child_gets_a_typed_error(tmp_path: Path) -> None:
    result = run_script(
        """
        import asyncio, os, sys, warnings
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
        from sessionlite import Event, ServiceClosedError, SessionService

        service = SessionService("db.sqlite")

        async def start():
            await service.open()
            return await service.create_session(app_name="a", user_id="u", session_id="s")

        session = asyncio.run(start())
        pid = os.fork()
        if pid == 0:
            async def child():
                try:
                    await service.append_event(session, Event(author="child"))
                except ServiceClosedError as exc:
                    print("child error:", exc, flush=True)
                    os._exit(0 if "forked child" in str(exc) else 3)
                os._exit(4)
            asyncio.run(child())
        _, status = os.waitpid(pid, 0)
        print("child status", os.waitstatus_to_exitcode(status), flush=True)

        async def main():
            await service.append_event(session, Event(author="parent"))
            await service.aclose()

        asyncio.run(main())
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "child status 0" in result.stdout, result.stdout + result.stderr
    assert count_events(tmp_path / "db.sqlite") == 1
