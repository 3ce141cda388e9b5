"""Crash safety: SIGKILL a process that is appending, then check the file.

A child appends as fast as it can and prints each acknowledged event id (durable mode:
after append_event returned; async mode: after flush() returned). The parent kills it
with SIGKILL after a varying number of acknowledgements. Afterwards the database must be
intact, every acknowledged event present, intact and in order, and no state delta may be
half applied (the state always matches the newest stored event).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from sessionlite import SessionService

# 20 kill cycles per mode in the default run; `nox -s reliability` runs more.
CYCLES = int(os.environ.get("SESSIONLITE_KILL_CYCLES", "20"))

CHILD = textwrap.dedent(
    """
    import sys, anyio
    from sessionlite import Event, SessionService

    async def main(path, mode):
        async_persist = mode == "async"
        async with SessionService(path, async_persist=async_persist) as service:
            session = await service.get_or_create_session(
                app_name="app", user_id="u", session_id="s")
            i = (await service.get_session(
                app_name="app", user_id="u", session_id="s", num_recent_events=1)).version
            while True:
                batch = []
                for _ in range(1 if not async_persist else 25):
                    i += 1
                    event = Event(
                        id=f"e{i}", author="u", content={"i": i, "pad": "x" * 300},
                        state_delta={"last": i, "app:last": i, f"k{i % 7}": i})
                    batch.append(await service.append_event(session, event))
                if async_persist:
                    await service.flush()
                for event in batch:
                    print(event.id, flush=True)

    anyio.run(main, sys.argv[1], sys.argv[2])
    """
)


def run_and_kill(path: Path, mode: str, acks_before_kill: int) -> list[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    acknowledged = []
    try:
        while len(acknowledged) < acks_before_kill:
            line = child.stdout.readline()
            if not line:
                break
            acknowledged.append(line.strip())
    finally:
        child.send_signal(signal.SIGKILL)
        _, err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, err
    assert len(acknowledged) == acks_before_kill, err
    return acknowledged


async def verify(path: Path, acknowledged: list[str]) -> int:
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    async with SessionService(path, event_limit=None) as service:
        session = await service.get_session(app_name="app", user_id="u", session_id="s")
        assert session is not None
        stored = [e.id for e in session.events]
        # Everything acknowledged is there, in acknowledgement order (more may follow:
        # committed but killed before it printed).
        assert stored[: len(acknowledged)] == acknowledged
        for event in session.events:
            i = int(event.id[1:])
            assert event.content == {"i": i, "pad": "x" * 300}
            assert event.sequence is not None
        assert [e.sequence for e in session.events] == sorted(
            e.sequence for e in session.events if e.sequence is not None
        )
        # No half-applied delta: the state is exactly the newest event's.
        newest = int(session.events[-1].id[1:])
        assert session.state["last"] == newest
        assert session.state["app:last"] == newest
        assert session.state[f"k{newest % 7}"] == newest
        assert session.version == len(session.events)  # one version per append, none torn
        return len(stored)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["durable", "async"])
def test_sigkill_never_loses_acknowledged_events(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "crash.db"
    rng = random.Random(f"kill9-{mode}")  # different timings per cycle, reproducible
    total_acknowledged: list[str] = []
    for cycle in range(CYCLES):
        acks = rng.randint(1, 150)
        acknowledged = run_and_kill(path, mode, acks)
        stored = anyio.run(verify, path, total_acknowledged + acknowledged)
        # The next cycle continues the same session: everything so far must survive.
        with sqlite3.connect(path) as conn:
            ids = [r[0] for r in conn.execute("SELECT event_id FROM events ORDER BY sequence")]
        total_acknowledged = ids
        assert stored == len(ids), f"cycle {cycle}"
