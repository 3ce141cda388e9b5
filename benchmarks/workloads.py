"""Payload builders and helpers shared by the benchmarks.

Building ``Event`` objects is the "user's own code": it happens before any timer starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import itertools
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sessionlite import Event, Session, SessionService

APP_NAME = "bench"
USER_ID = "user-1"

# Fields sessionlite keeps in their own columns; everything else is the JSON body.
BODY_EXCLUDE: set[str] = {"id", "author", "timestamp", "branch", "sequence", "partial"}

_TEXT = (
    "the agent called a tool and summarised what it found about sqlite write ahead logs "
    "while the user asked for more detail on durability group commit and latency budgets"
)
_WORDS = tuple(_TEXT.split(" "))

T = TypeVar("T")


def text_of(chars: int, seed: int = 0) -> str:
    """Deterministic English-ish text of exactly ``chars`` characters."""
    words: list[str] = []
    length = 0
    i = seed
    while length < chars:
        word = _WORDS[i % len(_WORDS)]
        words.append(word)
        length += len(word) + 1
        i += 7
    return " ".join(words)[:chars]


def make_event(turn: int, content: str) -> Event:
    """Event ``turn`` of a session: alternating user / assistant, delta ``{"turn": turn}``."""
    return Event(
        author="user" if turn % 2 == 0 else "assistant",
        content=content,
        state_delta={"turn": turn},
    )


def make_events(count: int, *, content_chars: int, first_turn: int = 0) -> list[Event]:
    """``count`` alternating user/assistant events with text content and a small delta."""
    return [
        make_event(i, text_of(content_chars, seed=i)) for i in range(first_turn, first_turn + count)
    ]


def append_workload(
    sessions: int, events_per_session: int, content_chars: int
) -> list[list[Event]]:
    """One list of events per session, for the concurrent append benchmark."""
    return [make_events(events_per_session, content_chars=content_chars) for _ in range(sessions)]


def body_of(event: Event) -> str:
    """The JSON body a store has to write for ``event`` (as sessionlite serializes it)."""
    return event.model_dump_json(exclude=BODY_EXCLUDE, exclude_defaults=True)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (``fraction`` in 0..1)."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, round(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def best_and_median(values: Sequence[float]) -> tuple[float, float]:
    """(smallest, median) of repeated timings."""
    return min(values), statistics.median(values)


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


@contextlib.contextmanager
def temp_dir(tmp_root: str | None, prefix: str = "sessionlite-bench-") -> Iterator[Path]:
    """A fresh directory for one measurement's database files, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix, dir=tmp_root) as tmp:
        yield Path(tmp)


@contextlib.contextmanager
def frozen_gc() -> Iterator[None]:
    """Around a timed region: everything alive before it (the imported libraries, the
    pre-built events) is moved out of the garbage collector's sight, so that its full
    collections walk only what the region allocates. Importing ADK, SQLAlchemy and the
    Agents SDK leaves ~250k tracked objects, which otherwise slow every store's
    allocation-heavy code alike (sessionlite's append by ~25%)."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


# -- sessionlite through its public API ----------------------------------------------------


async def create_sessions(service: SessionService, count: int, prefix: str) -> list[Session]:
    """``count`` sessions of ``USER_ID``, ids ``{prefix}0`` ..., created one by one."""
    return [
        await service.create_session(app_name=APP_NAME, user_id=USER_ID, session_id=f"{prefix}{i}")
        for i in range(count)
    ]


async def append_concurrently(
    service: SessionService, sessions: Sequence[Session], workload: Sequence[Sequence[Event]]
) -> None:
    """One task per session appending its events one by one. gather() schedules every task
    before the first append runs: a timer around this covers the first append's start to
    the last append's return."""

    async def writer(session: Session, events: Sequence[Event]) -> None:
        for event in events:
            await service.append_event(session, event)

    await asyncio.gather(*(writer(s, e) for s, e in zip(sessions, workload, strict=True)))


async def fill_session(
    service: SessionService, user_id: str, session_id: str, count: int, chars: int
) -> int:
    """Create a session and append ``count`` events (``make_events``), 1,000 per
    ``append_events`` call (one transaction each); returns ``count``."""
    session = await service.create_session(
        app_name=APP_NAME, user_id=user_id, session_id=session_id
    )
    done = 0
    while done < count:
        n = min(1000, count - done)
        await service.append_events(session, make_events(n, content_chars=chars, first_turn=done))
        done += n
        session.events.clear()  # keep the caller's in-memory copy small
    return done


# -- cached databases ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BuiltDb:
    path: Path
    build_s: float  # how long the build took (when it was built, maybe in an earlier run)
    cached: bool


def cached_db(
    directory: Path,
    filename: str,
    key: tuple[str, Any],
    build: Callable[[Path], None],
    *,
    rebuild: bool,
) -> BuiltDb:
    """``directory/filename``, reused while ``directory/meta.json`` holds ``key`` (a
    (field, value) pair), else built by ``build(path)``. The build runs in a scratch
    directory that is then renamed: the database and its WAL move together, and an
    interrupted build never looks like a finished one."""
    field, value = key
    path = directory / filename
    meta_path = directory / "meta.json"
    if not rebuild and meta_path.exists() and path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get(field) == value:
            return BuiltDb(path, float(meta["build_s"]), True)
    scratch = directory.with_name(f"building-{directory.name}")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    start = time.perf_counter()
    build(scratch / filename)
    elapsed = time.perf_counter() - start
    (scratch / "meta.json").write_text(json.dumps({field: value, "build_s": elapsed}, indent=2))
    shutil.rmtree(directory, ignore_errors=True)
    scratch.rename(directory)
    return BuiltDb(path, elapsed, False)
