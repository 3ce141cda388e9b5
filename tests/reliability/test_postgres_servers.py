"""Several servers on one PostgreSQL database: one OS process per server, all at once.

Each "server" is a Python subprocess running its own SessionService on the same URL and
table prefix (the way several application servers share one database). The children
open their services, report ``ready``, and start working together once the parent writes
a line to their stdin; each prints a JSON report as its last line of output. Nothing
may surface on stderr: not an error, not even a logged one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections import Counter
from datetime import timedelta
from typing import Any

import anyio
import psycopg
import pytest
from psycopg import sql

import pgtest
from sessionlite import Event, SessionService
from sessionlite.testing import DEFAULT_START, ManualClock

SERVERS = 4
TASKS = 25  # per server
APPENDS = 10  # per task and session
TIMEOUT = 120  # seconds any child may take at most

CHILD = textwrap.dedent(
    """
    import json, sys
    from datetime import datetime

    import anyio
    from sessionlite import Event, EventConflictError, SessionService, StaleSessionError
    from sessionlite.testing import ManualClock

    async def appends(service, name, args):
        # Every task appends to the hot session (shared by all servers) and to this
        # server's own session, in turn; each reports the ids and sequences it got.
        hot = await service.get_session(
            app_name="app", user_id="u", session_id="hot", num_recent_events=0)
        own = await service.get_or_create_session(app_name="app", user_id="u", session_id=name)
        got = {"hot": [], "own": []}
        sys.stdout.write("ready\\n"); sys.stdout.flush()
        sys.stdin.readline()

        async def run(task):
            for i in range(args["appends"]):
                for which, session in (("hot", hot), ("own", own)):
                    stored = await service.append_event(session, Event(
                        author=name, content=[name, task, i],
                        state_delta={"last": [name, task, i], "user:" + name: i,
                                     "app:last": name}))
                    got[which].append([stored.id, stored.sequence, task, i])

        async with anyio.create_task_group() as tg:
            for task in range(args["tasks"]):
                tg.start_soon(run, task)
        return got

    async def race(service, name, args):
        # Every server tries to write the next version; a stale try names the version
        # found, which the server then tries to write next (so all race for each one).
        session = await service.get_session(
            app_name="app", user_id="u", session_id="race", num_recent_events=0)
        sys.stdout.write("ready\\n"); sys.stdout.flush()
        sys.stdin.readline()
        outcomes = []
        version = 0
        while version < args["rounds"]:
            event = Event(id=f"{name}-{version}", author=name, content=version,
                          state_delta={"winner": name})
            try:
                stored = await service.append_event(session, event, expected_version=version)
            except StaleSessionError as error:
                assert error.expected_version == version, error
                outcomes.append(["stale", version, error.actual_version])
                version = error.actual_version
            else:
                outcomes.append(["won", version, stored.sequence])
                version += 1
        return outcomes

    async def retry(service, name, args):
        # Every server sends the same event (same id, same content), then the same id
        # with content of its own.
        session = await service.get_session(
            app_name="app", user_id="u", session_id="retry", num_recent_events=0)
        event = Event.model_validate_json(args["event"])
        sys.stdout.write("ready\\n"); sys.stdout.flush()
        sys.stdin.readline()
        stored = await service.append_event(session, event)
        report = {"stored": stored.model_dump(mode="json")}
        conflicting = event.model_copy(update={"content": "changed by " + name})
        try:
            await service.append_event(session, conflicting)
        except EventConflictError as error:
            report["conflict"] = error.event_id
        await service.flush()
        return report

    async def work(service, name, args):
        # On a fresh schema: a session of its own and a few events in it.
        session = await service.create_session(app_name="app", user_id="u", session_id=name)
        await service.append_events(
            session, [Event(author=name, content=i, state_delta={"app:" + name: i})
                      for i in range(5)])
        for i in range(5):
            await service.append_event(session, Event(author=name, content=5 + i))
        return {"version": session.version}

    async def clean(service, name, args):
        sys.stdout.write("ready\\n"); sys.stdout.flush()
        sys.stdin.readline()
        totals = {"passes": 0, "expired": 0, "purged": 0, "events": 0}
        for _ in range(args["max_passes"]):
            report = await service.run_cleanup()
            if not report.ran:
                break  # nothing left to clean
            totals["passes"] += 1
            totals["expired"] += report.expired_sessions
            totals["purged"] += report.purged_sessions
            totals["events"] += report.deleted_events
        else:
            raise AssertionError("the cleaner never ran out of work")
        return totals

    async def main(url, prefix, mode, name, args):
        args = json.loads(args)
        options = dict(table_prefix=prefix, busy_timeout=60, **args.get("options", {}))
        if "clock" in args:
            options["clock"] = ManualClock(datetime.fromisoformat(args["clock"]))
        if mode == "work":
            # Open only once told to, so that every server opens on the empty schema
            # at the same moment.
            sys.stdout.write("ready\\n"); sys.stdout.flush()
            sys.stdin.readline()
        async with SessionService(url, **options) as service:
            result = await globals()[mode](service, name, args)
        sys.stdout.write(json.dumps(result) + "\\n"); sys.stdout.flush()

    anyio.run(main, *sys.argv[1:])
    """
)


def run_servers(
    url: str, prefix: str, mode: str, args: dict[str, Any] | None = None, *, servers: int = SERVERS
) -> list[Any]:
    """Run ``servers`` children in ``mode``; start them together; return their reports."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, url, prefix, mode, f"w{n}", json.dumps(args or {})],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(servers)
    ]
    try:
        for proc in procs:  # every child is open (or about to open) before any starts
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line != "ready\n":
                _, err = proc.communicate(timeout=TIMEOUT)
                raise AssertionError(f"a server did not get ready: {line!r}\n{err}")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        reports = []
        for proc in procs:
            out, err = proc.communicate(timeout=TIMEOUT)
            assert proc.returncode == 0, err
            assert err == "", err  # no error surfaced, not even a logged one
            reports.append(json.loads(out.splitlines()[-1]))
        return reports
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


@pytest.fixture
def prefix() -> str:
    return pgtest.unique_prefix()


async def create_sessions(url: str, prefix: str, *session_ids: str) -> None:
    async with SessionService(url, table_prefix=prefix) as service:
        for session_id in session_ids:
            await service.create_session(app_name="app", user_id="u", session_id=session_id)


async def all_events(service: SessionService, session_id: str) -> list[Event]:
    return [
        event
        async for event in service.iter_events(app_name="app", user_id="u", session_id=session_id)
    ]


def check_gap_free(events: list[Event], acknowledged: list[list[Any]]) -> None:
    """Every acknowledged append stored once, at the sequence it was told; no gaps."""
    assert [e.sequence for e in events] == list(range(1, len(events) + 1)), "sequence gaps"
    assert len({e.id for e in events}) == len(events), "an event stored twice"
    by_id = {e.id: e.sequence for e in events}
    assert len(acknowledged) == len(events), "events lost or duplicated"
    for event_id, sequence, _task, _i in acknowledged:
        assert by_id[event_id] == sequence


@pytest.mark.timeout(TIMEOUT * 2)
def test_servers_append_concurrently_to_one_hot_session_and_their_own(
    postgres_url: str, prefix: str
) -> None:
    anyio.run(create_sessions, postgres_url, prefix, "hot")
    reports = run_servers(postgres_url, prefix, "appends", {"tasks": TASKS, "appends": APPENDS})

    async def check() -> None:
        async with SessionService(postgres_url, table_prefix=prefix, event_limit=None) as service:
            hot_acks = [ack for report in reports for ack in report["hot"]]
            assert len(hot_acks) == SERVERS * TASKS * APPENDS == 1000
            events = await all_events(service, "hot")
            check_gap_free(events, hot_acks)
            hot = await service.get_session(app_name="app", user_id="u", session_id="hot")
            assert hot is not None
            assert hot.version == 1000  # one version per append call
            # Last write wins: the session state holds the newest event's delta.
            assert hot.state["last"] == events[-1].content
            assert hot.state["app:last"] in {f"w{n}" for n in range(SERVERS)}
            for n, report in enumerate(reports):
                name = f"w{n}"
                own_events = await all_events(service, name)
                assert len(report["own"]) == TASKS * APPENDS
                check_gap_free(own_events, report["own"])
                own = await service.get_session(app_name="app", user_id="u", session_id=name)
                assert own is not None
                assert own.version == TASKS * APPENDS
                assert own.state[f"user:{name}"] == APPENDS - 1
                # Each task's appends are stored in the order it made them.
                for session_events in (own_events, events):
                    per_task: dict[int, int] = {}
                    for event in session_events:
                        author, task, i = event.content  # type: ignore[misc]
                        if author != name:
                            continue
                        assert per_task.get(task, -1) == i - 1, "a task's events out of order"
                        per_task[task] = i

    anyio.run(check)


@pytest.mark.timeout(TIMEOUT * 2)
@pytest.mark.parametrize("async_persist", [False, True], ids=["durable", "async"])
def test_expected_version_has_one_winner_per_version_across_servers(
    postgres_url: str, prefix: str, async_persist: bool
) -> None:
    rounds = 30
    anyio.run(create_sessions, postgres_url, prefix, "race")
    reports = run_servers(
        postgres_url,
        prefix,
        "race",
        {"rounds": rounds, "options": {"async_persist": async_persist}},
    )
    winners: dict[int, list[str]] = {v: [] for v in range(rounds)}
    stale = 0
    for n, outcomes in enumerate(reports):
        for kind, version, value in outcomes:
            if kind == "won":
                assert value == version + 1  # the sequence it got
                winners[version].append(f"w{n}")
            else:
                assert value > version  # stale: someone else won this version
                stale += 1
    assert all(len(names) == 1 for names in winners.values()), winners
    # Only the last version's winner can end on a win: every other server ends stale.
    assert stale >= SERVERS - 1

    async def check() -> None:
        async with SessionService(postgres_url, table_prefix=prefix, event_limit=None) as service:
            events = await all_events(service, "race")
            assert [e.id for e in events] == [f"{winners[v][0]}-{v}" for v in range(rounds)]
            assert [e.sequence for e in events] == list(range(1, rounds + 1))
            race = await service.get_session(app_name="app", user_id="u", session_id="race")
            assert race is not None
            assert race.version == rounds
            assert race.state["winner"] == winners[rounds - 1][0]

    anyio.run(check)


@pytest.mark.timeout(TIMEOUT * 2)
def test_idempotent_retry_and_conflict_across_servers(postgres_url: str, prefix: str) -> None:
    anyio.run(create_sessions, postgres_url, prefix, "retry")
    event = Event(id="e1", author="user", content={"text": "once"}, state_delta={"n": 1})
    reports = run_servers(postgres_url, prefix, "retry", {"event": event.model_dump_json()})
    stored = [Event.model_validate(report["stored"]) for report in reports]
    # Whichever server stored it, every server got the one stored event back.
    assert all(s == stored[0] for s in stored)
    assert stored[0].sequence == 1
    assert stored[0].model_copy(update={"sequence": None}) == event
    assert [report.get("conflict") for report in reports] == ["e1"] * SERVERS

    async def check() -> None:
        async with SessionService(postgres_url, table_prefix=prefix) as service:
            retry = await service.get_session(app_name="app", user_id="u", session_id="retry")
            assert retry is not None
            assert [e.id for e in retry.events] == ["e1"]
            assert retry.events[0].content == {"text": "once"}
            assert retry.version == 1
            assert retry.state == {"n": 1}

    anyio.run(check)


@pytest.mark.timeout(TIMEOUT * 2)
def test_servers_starting_together_on_an_empty_schema(postgres_url: str, prefix: str) -> None:
    reports = run_servers(postgres_url, prefix, "work")
    assert reports == [{"version": 6}] * SERVERS  # one append_events call, five appends

    async def check() -> None:
        async with SessionService(postgres_url, table_prefix=prefix) as service:
            page = await service.list_sessions(app_name="app")
            assert sorted(s.id for s in page.sessions) == [f"w{n}" for n in range(SERVERS)]
            for n in range(SERVERS):
                events = await all_events(service, f"w{n}")
                assert [e.content for e in events] == list(range(10))
                assert [e.sequence for e in events] == list(range(1, 11))
            assert await service.get_app_state("app") == {f"w{n}": 4 for n in range(SERVERS)}

    anyio.run(check)


@pytest.mark.timeout(TIMEOUT * 2)
def test_two_cleaners_at_once_share_the_work(postgres_url: str, prefix: str) -> None:
    expired, events_each = 400, 3

    async def populate() -> None:
        clock = ManualClock(DEFAULT_START)
        async with SessionService(
            postgres_url, table_prefix=prefix, session_ttl=60, clock=clock
        ) as service:

            async def make(first: int) -> None:
                for n in range(first, expired, 20):
                    session = await service.create_session(
                        app_name="app", user_id="u", session_id=f"s{n}", state={"k": n}
                    )
                    await service.append_events(
                        session, [Event(author="u", content=i) for i in range(events_each)]
                    )

            async with anyio.create_task_group() as tg:
                for first in range(20):
                    tg.start_soon(make, first)
            assert len((await service.list_sessions(app_name="app", limit=1000)).sessions) == (
                expired
            )

    anyio.run(populate)
    later = DEFAULT_START + timedelta(days=1)  # every session expired long ago
    procs_args = {
        "clock": later.isoformat(),
        "max_passes": 100_000,
        "options": {"soft_delete": False, "session_ttl": 60},
    }
    reports = run_servers(postgres_url, prefix, "clean", procs_args, servers=2)
    assert all(report["passes"] > 0 for report in reports)
    totals = Counter[str]()
    for report in reports:
        totals.update(report)
    assert totals["expired"] == expired
    assert totals["purged"] == expired
    assert totals["events"] == expired * events_each

    async def check() -> None:
        async with SessionService(
            postgres_url, table_prefix=prefix, clock=ManualClock(later)
        ) as service:
            assert (await service.list_sessions(app_name="app")).sessions == []
            report = await service.run_cleanup()
            assert not report.ran  # nothing left: not even a row marked deleted

    anyio.run(check)
    with psycopg.connect(postgres_url) as conn:
        for table in ("sessions", "events", "session_state"):
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(prefix + table))
            assert conn.execute(query).fetchone() == (0,), table
