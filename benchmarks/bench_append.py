"""Target 1: durable append throughput, against raw ``sqlite3`` in the same run.

sessionlite: ``sessions`` concurrent tasks, one per session, each awaiting
``append_event`` for its events one by one, on a fresh file database with default
(durable) options. Baselines: the same events inserted by stdlib ``sqlite3`` into a table
shaped like sessionlite's ``events`` table, in one ``executemany`` and one transaction,
with WAL and ``synchronous=NORMAL`` (sessionlite's default), either including the JSON
serialization of every event body (the Python ceiling) or with the rows pre-built.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sessionlite import Event, SessionService

from . import throughput
from .workloads import APP_NAME, USER_ID, append_workload, body_of

TARGET_RATIO = 0.35
CONTENT_CHARS = 500

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)

_EVENTS_DDL = (
    """
    CREATE TABLE events (
        pk INTEGER PRIMARY KEY,
        session_pk INTEGER NOT NULL,
        sequence INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        author TEXT NOT NULL,
        timestamp INTEGER NOT NULL,
        branch TEXT NOT NULL,
        body TEXT NOT NULL
    )
    """,
    "CREATE UNIQUE INDEX events_by_sequence ON events (session_pk, sequence)",
    "CREATE UNIQUE INDEX events_by_id ON events (session_pk, event_id)",
)
_INSERT = (
    "INSERT INTO events (session_pk, sequence, event_id, author, timestamp, branch, body) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)

Row = tuple[int, int, str, str, int, str, str]


@dataclasses.dataclass(frozen=True)
class AppendResult:
    sessions: int
    events_per_session: int
    repeats: int
    sessionlite_s: list[float]
    baseline_serialize_s: list[float]
    baseline_executemany_s: list[float]
    write_statistics: tuple[int, int] | None  # (transactions, write calls), best run

    @property
    def events(self) -> int:
        return self.sessions * self.events_per_session

    def ratio(self, baseline: list[float]) -> float:
        """sessionlite throughput / baseline throughput, best run of each."""
        return throughput.ratio(self.sessionlite_s, baseline)

    def median_ratio(self, baseline: list[float]) -> float:
        return throughput.median_ratio(self.sessionlite_s, baseline)

    @property
    def passed(self) -> bool:
        return self.ratio(self.baseline_serialize_s) >= TARGET_RATIO

    def to_json(self) -> dict[str, Any]:
        n = self.events
        return {
            "sessions": self.sessions,
            "events_per_session": self.events_per_session,
            "events": n,
            "repeats": self.repeats,
            "sessionlite": throughput.timings(self.sessionlite_s, n),
            **throughput.against_baselines(
                self.sessionlite_s,
                self.baseline_serialize_s,
                self.baseline_executemany_s,
                n,
                TARGET_RATIO,
            ),
            "write_statistics": None
            if self.write_statistics is None
            else {
                "transactions": self.write_statistics[0],
                "write_calls": self.write_statistics[1],
            },
        }


# -- sessionlite ---------------------------------------------------------------------


def _write_statistics(service: SessionService) -> tuple[int, int] | None:
    """The group committer's (transactions, write calls), if this version exposes them."""
    stats = getattr(getattr(service, "_store", None), "write_statistics", None)
    if stats is None:
        return None
    transactions, calls = stats()
    return int(transactions), int(calls)


async def _sessionlite_once(
    workload: list[list[Event]], directory: Path
) -> tuple[float, tuple[int, int] | None]:
    async with SessionService(directory / "sessionlite.db") as service:
        sessions = [
            await service.create_session(app_name=APP_NAME, user_id=USER_ID, session_id=f"s{i}")
            for i in range(len(workload))
        ]
        before = _write_statistics(service)

        async def writer(index: int) -> None:
            session = sessions[index]
            for event in workload[index]:
                await service.append_event(session, event)

        start = time.perf_counter()
        # gather() schedules every task before the first append runs: the timer covers
        # the first append's start to the last append's return.
        await asyncio.gather(*(writer(i) for i in range(len(workload))))
        elapsed = time.perf_counter() - start
        after = _write_statistics(service)
    _check_stored(directory / "sessionlite.db", sum(len(events) for events in workload))
    stats = None
    if before is not None and after is not None:
        stats = (after[0] - before[0], after[1] - before[1])
    return elapsed, stats


def _check_stored(path: Path, expected: int) -> None:
    """After the timed run: every appended event is in the file."""
    conn = sqlite3.connect(path)
    try:
        (count,) = conn.execute("SELECT count(*) FROM events").fetchone()
    finally:
        conn.close()
    if count != expected:
        raise RuntimeError(f"sessionlite stored {count} events, expected {expected}")


# -- baselines -----------------------------------------------------------------------


def _open_baseline(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for statement in _EVENTS_DDL:
        conn.execute(statement)
    return conn


def _rows(workload: list[list[Event]]) -> list[Row]:
    rows = []
    for session_pk, events in enumerate(workload, start=1):
        for sequence, event in enumerate(events, start=1):
            rows.append(
                (
                    session_pk,
                    sequence,
                    event.id,
                    event.author,
                    (event.timestamp - _EPOCH) // _MICROSECOND,
                    event.branch,
                    body_of(event),
                )
            )
    return rows


def _insert(conn: sqlite3.Connection, rows: list[Row]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(_INSERT, rows)
    conn.execute("COMMIT")


def baseline_once(workload: list[list[Event]], directory: Path, serialize: bool) -> float:
    """One baseline measurement: the workload's rows into a fresh file, one executemany."""
    conn = _open_baseline(directory / f"baseline-{'serialize' if serialize else 'rows'}.db")
    try:
        if serialize:
            start = time.perf_counter()
            _insert(conn, _rows(workload))
        else:
            rows = _rows(workload)
            start = time.perf_counter()
            _insert(conn, rows)
        return time.perf_counter() - start
    finally:
        conn.close()


# -- driver --------------------------------------------------------------------------


def run(
    *, sessions: int, events_per_session: int, repeats: int, tmp_root: str | None
) -> AppendResult:
    """Measure sessionlite and both baselines ``repeats`` times each, interleaved."""
    workload = append_workload(sessions, events_per_session, CONTENT_CHARS)

    def measure(workload: list[list[Event]], directory: Path) -> tuple[float, Any]:
        return asyncio.run(_sessionlite_once(workload, directory))

    runs, serialize, rows_only = throughput.interleaved(
        workload, repeats, tmp_root, measure, baseline_once
    )
    _, best_stats = min(runs, key=lambda run: run[0])
    return AppendResult(
        sessions=sessions,
        events_per_session=events_per_session,
        repeats=repeats,
        sessionlite_s=[elapsed for elapsed, _ in runs],
        baseline_serialize_s=serialize,
        baseline_executemany_s=rows_only,
        write_statistics=best_stats,
    )


def report(result: AppendResult) -> list[str]:
    """Human-readable lines: a table, the PASS/FAIL line, then the extra ratio."""
    n = result.events
    lines = [
        f"Target 1: durable append throughput — {result.sessions} sessions x "
        f"{result.events_per_session} events ({n:,} events, ~{CONTENT_CHARS}-char content), "
        f"{result.sessions} concurrent tasks; best / median of {result.repeats}",
        throughput.TABLE_HEADER,
        throughput.table_row("sessionlite append_event (durable)", result.sessionlite_s, n),
        throughput.table_row(
            "sqlite3 serialize + executemany (baseline)", result.baseline_serialize_s, n
        ),
        throughput.table_row(
            "sqlite3 executemany only, rows pre-built", result.baseline_executemany_s, n
        ),
    ]
    if result.write_statistics is not None:
        transactions, calls = result.write_statistics
        per = calls / transactions if transactions else 0.0
        lines.append(
            f"  group commit (best run): {transactions:,} transactions for {calls:,} write "
            f"calls ({per:.1f} calls per transaction)"
        )
    lines += throughput.ratio_lines(
        "target 1",
        "sessionlite",
        result.sessionlite_s,
        result.baseline_serialize_s,
        result.baseline_executemany_s,
        TARGET_RATIO,
    )
    return lines
