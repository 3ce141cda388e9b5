"""Several processes on one file, plus one running the cleaner, all at once."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from sessionlite import SessionService

WRITERS = 4
EVENTS_PER_WRITER = 2000  # half to a shared session, half to the writer's own

WRITER = textwrap.dedent(
    """
    import sys, anyio
    from sessionlite import Event, SessionService

    async def main(path, name, count):
        async with SessionService(path, busy_timeout=60) as service:
            shared = await service.get_or_create_session(
                app_name="app", user_id="u", session_id="shared")
            own = await service.get_or_create_session(app_name="app", user_id="u", session_id=name)
            sys.stdin.readline()  # start together

            async def run(task):
                for i in range(count // 8):
                    for session in (shared, own):
                        await service.append_event(
                            session, Event(author=name, content=[task, i],
                                           state_delta={"user:" + name: i}))

            async with anyio.create_task_group() as tg:
                for task in range(4):
                    tg.start_soon(run, task)

    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))
    """
)

CLEANER = textwrap.dedent(
    """
    import json, sys, anyio
    from datetime import datetime, timezone
    from sessionlite import Event, SessionService
    from sessionlite.testing import ManualClock

    async def main(path):
        totals = {"runs": 0, "expired": 0, "purged": 0, "events": 0}
        clock = ManualClock(datetime.now(timezone.utc))
        async with SessionService(
            path, busy_timeout=60, session_ttl=60, soft_delete=False, clock=clock
        ) as service:
            sys.stdin.readline()
            for round in range(40):
                for j in range(5):
                    junk = await service.create_session(app_name="junk", user_id="c")
                    await service.append_events(junk, [Event(author="c") for _ in range(20)])
                clock.advance(seconds=61)  # this round's junk has expired
                report = await service.run_cleanup()
                totals["runs"] += report.ran
                totals["expired"] += report.expired_sessions
                totals["purged"] += report.purged_sessions
                totals["events"] += report.deleted_events
        print(json.dumps(totals), flush=True)

    anyio.run(main, sys.argv[1])
    """
)


async def create_schema(path: Path) -> None:
    async with SessionService(path):
        pass


async def check(path: Path) -> None:
    async with SessionService(path, event_limit=None) as service:
        shared = await service.get_session(app_name="app", user_id="u", session_id="shared")
        assert shared is not None
        assert len(shared.events) == WRITERS * EVENTS_PER_WRITER // 2
        assert [e.sequence for e in shared.events] == list(range(1, len(shared.events) + 1))
        assert len({e.id for e in shared.events}) == len(shared.events)
        for w in range(WRITERS):
            name = f"w{w}"
            own = await service.get_session(app_name="app", user_id="u", session_id=name)
            assert own is not None
            assert len(own.events) == EVENTS_PER_WRITER // 2
            assert [e.sequence for e in own.events] == list(range(1, len(own.events) + 1))
            per_task: dict[int, int] = {}
            for event in own.events:
                task, i = event.content
                assert per_task.get(task, -1) == i - 1, "a task's events out of order"
                per_task[task] = i
            assert own.state[f"user:{name}"] == EVENTS_PER_WRITER // 8 - 1
        junk = await service.list_sessions(app_name="junk")
        assert junk.sessions == []  # every junk session expired and was purged


@pytest.mark.slow
def test_four_writers_and_a_cleaner_on_one_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    anyio.run(create_schema, path)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), f"w{w}", str(EVENTS_PER_WRITER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(WRITERS)
    ]
    cleaner = subprocess.Popen(
        [sys.executable, "-c", CLEANER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for proc in [*procs, cleaner]:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        assert err == "", err  # no error surfaced, not even a logged one
    out, err = cleaner.communicate(timeout=240)
    assert cleaner.returncode == 0, err
    totals = json.loads(out)
    assert totals["runs"] > 0 and totals["purged"] > 0 and totals["events"] > 0
    anyio.run(check, path)
