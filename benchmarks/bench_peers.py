"""sessionlite against the stores users would pick instead (``--only peers``).

Five workloads, the same payloads for every store (``peers.Payload``), each store used
through its public API with its documented defaults (``peers.Store.config`` says how):

1. append: S sessions x E events by S concurrent tasks, one per session;
2. read the newest 20 events of a session in databases of 10k / 100k / 1M events;
3. agent turns: U concurrent users, a turn = read newest 20 + append a user event +
   append an assistant event with a state delta;
4. list one user's sessions (a page of 50) among 100k sessions;
5. errors: every call is wrapped, failures are counted by type per cell; a store that
   fails is reported as failing, never skipped.

Every cell has a time budget: a slow store stops starting new calls once it is spent
and is reported in calls per second over what it did (the tables mark it ``*``). The
raw ``sqlite3`` ceiling (``peers.RawSqliteStore``) is measured in the same run, and
every result is also given as a ratio against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any

from . import bench_read, peers, rawsqlite
from .peers import SessionPlan, Store
from .workloads import USER_ID, BuiltDb, cached_db, frozen_gc, percentile, temp_dir

CACHE_DIR = Path(__file__).resolve().parent / ".cache" / "peers"
LAYOUT = 1  # bump when a build changes, to invalidate cached databases
APPEND_CHARS = 500
READ_CHARS = 200  # as bench_read
TURN_CHARS = 200
TURN_HISTORY = 20  # events in each user's session before the turns start
RECENT = 20
LIST_PAGE = 50
SESSIONS_PER_USER = 100  # in the listing database
REPEAT_BELOW_S = 3.0  # cells faster than this are repeated (best run kept)
LATENCY_ROUNDS = 3  # fresh opens per read / list cell, samples pooled
HARD_LIMIT_S = 120.0  # after the budget: calls still running then are abandoned

TARGET_APPEND_VS_OPENAI = 20.0
TARGET_APPEND_VS_ADK_DB = 100.0
TARGET_TURNS_VS_BEST_PEER = 10.0
TARGET_READ_GROWTH = 1.5

SESSIONLITE = "sessionlite"
SESSIONLITE_ASYNC = "sessionlite-async"
RAW = "raw-sqlite3"

WORKLOADS = ("append", "read", "turns", "list")
LATENCY_WORKLOADS = ("read", "list")  # reported as p50 / p99; the others as rates
PARAM_NAMES = {"append": "S", "read": "events", "turns": "U", "list": "sessions"}
WORKLOAD_TITLES = {
    "append": "append: S sessions x E events, S concurrent tasks — events/s (x raw ceiling)",
    "read": "read newest 20 events of a session — p50 / p99 ms (raw p50 / store p50)",
    "turns": (
        "agent turns: U concurrent users, turn = read 20 + append user + append assistant "
        "with state delta — turns/s (x raw ceiling)"
    ),
    "list": f"list one user's sessions, page of {LIST_PAGE} — p50 / p99 ms (raw p50 / store p50)",
}
VERDICTS = {True: "PASS", False: "FAIL", None: "n/a "}


# -- configuration ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PeersConfig:
    quick: bool
    append_sessions: tuple[int, ...]
    append_events: dict[int, int]  # S -> events per session
    append_cap_s: float
    repeats: int
    read_sizes: tuple[int, ...]
    reads: int
    read_cap_s: float
    list_sessions: int
    list_calls: int
    list_cap_s: float
    turn_users: tuple[int, ...]
    turns_per_user: dict[int, int]
    turns_cap_s: float

    @classmethod
    def for_mode(cls, *, quick: bool) -> PeersConfig:
        if quick:
            return cls(
                quick=True,
                append_sessions=(10, 100),
                append_events={10: 100, 100: 100},
                append_cap_s=1.5,
                repeats=1,
                read_sizes=(10_000,),
                reads=300,
                read_cap_s=1.0,
                list_sessions=10_000,
                list_calls=100,
                list_cap_s=1.0,
                turn_users=(10,),
                turns_per_user={10: 20},
                turns_cap_s=1.5,
            )
        return cls(
            quick=False,
            append_sessions=(10, 100, 1000),
            append_events={10: 100, 100: 100, 1000: 20},
            append_cap_s=15.0,
            repeats=3,
            read_sizes=(10_000, 100_000, 1_000_000),
            reads=500,
            read_cap_s=8.0,
            list_sessions=100_000,
            list_calls=200,
            list_cap_s=6.0,
            turn_users=(10, 100, 1000),
            turns_per_user={10: 50, 100: 20, 1000: 4},
            turns_cap_s=15.0,
        )

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["append_events"] = {str(k): v for k, v in self.append_events.items()}
        data["turns_per_user"] = {str(k): v for k, v in self.turns_per_user.items()}
        return data


def per_param(values: dict[int, int], params: Sequence[int], name: str) -> str:
    """``100 at S=10, 20 at S=1000``: a per-size setting, for the reports."""
    return ", ".join(f"{values[p]} at {name}={p}" for p in params)


# -- results ------------------------------------------------------------------------------


@dataclasses.dataclass
class Cell:
    """One store in one workload at one size."""

    workload: str  # append | read | turns | list
    store: str
    param: int  # S, events in the database, U, sessions in the database
    unit: str  # events | reads | turns | calls
    planned: int
    done: int  # successful units
    failed: int  # failed calls
    errors: dict[str, int]
    elapsed_s: float
    capped: bool
    rate: float | None  # successful units per second
    p50_ms: float | None = None
    p99_ms: float | None = None
    runs: list[float] = dataclasses.field(default_factory=list)  # rate of every run
    notes: list[str] = dataclasses.field(default_factory=list)
    supported: bool = True

    @property
    def failing(self) -> bool:
        return self.failed > 0

    @property
    def where(self) -> str:
        """``append S=1,000``: the workload and size, for the reports."""
        return f"{self.workload} {PARAM_NAMES[self.workload]}={self.param:,}"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Errors:
    """Failed calls by type and message, e.g. ``OperationalError: database is locked``."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, exc: BaseException) -> None:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if len(text) > 110:
            text = text[:107] + "..."
        self.counts[f"{type(exc).__name__}: {text}" if text else type(exc).__name__] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclasses.dataclass
class PeersResult:
    config: PeersConfig
    cells: list[Cell]
    stores: dict[str, dict[str, Any]]  # key -> label, config, build note
    builds: list[dict[str, Any]]  # database builds (cached or not)
    total_s: float = 0.0

    def cell(self, workload: str, store: str, param: int) -> Cell | None:
        for cell in self.cells:
            if (cell.workload, cell.store, cell.param) == (workload, store, param):
                return cell
        return None

    def rate(self, workload: str, store: str, param: int) -> float | None:
        cell = self.cell(workload, store, param)
        return None if cell is None else cell.rate

    def params(self, workload: str) -> list[int]:
        return sorted({cell.param for cell in self.cells if cell.workload == workload})

    def store_keys(self, workload: str) -> list[str]:
        return list(dict.fromkeys(cell.store for cell in self.cells if cell.workload == workload))

    def label(self, key: str) -> str:
        return str(self.stores[key]["label"])

    def vs_raw(self, cell: Cell) -> float | None:
        """The cell's speed as a fraction of the raw ceiling's (same workload and size)."""
        raw = self.cell(cell.workload, RAW, cell.param)
        if raw is None or cell.store == RAW or not cell.supported:
            return None
        if cell.workload in LATENCY_WORKLOADS:
            return raw.p50_ms / cell.p50_ms if raw.p50_ms and cell.p50_ms else None
        return cell.rate / raw.rate if raw.rate and cell.rate is not None else None

    def failing_cells(self) -> list[Cell]:
        return [cell for cell in self.cells if cell.failing]

    def notes(self) -> list[str]:
        """``label, workload P=n: note`` for every note of a supported cell."""
        return [
            f"{self.label(cell.store)}, {cell.where}: {note}"
            for cell in self.cells
            if cell.supported
            for note in cell.notes
        ]

    def targets(self) -> list[dict[str, Any]]:
        return [target for rule in _TARGET_RULES for target in rule(self)]

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config.to_json(),
            "stores": self.stores,
            "builds": self.builds,
            "cells": [cell.to_json() for cell in self.cells],
            "vs_raw": {
                f"{c.workload}/{c.store}/{c.param}": self.vs_raw(c)
                for c in self.cells
                if self.vs_raw(c) is not None
            },
            "targets": self.targets(),
            "total_s": self.total_s,
        }


def sorted_errors(cell: Cell) -> list[tuple[str, int]]:
    """The cell's errors, most frequent first."""
    return sorted(cell.errors.items(), key=lambda kv: -kv[1])


# -- databases ----------------------------------------------------------------------------


def read_plan(total: int) -> list[SessionPlan]:
    """bench_read's layout: 90% of the events in session "target", the rest in sessions
    of 1,000 events, so the session read grows with the database."""
    layout = bench_read.Layout.for_total(total)
    plan = [SessionPlan(USER_ID, bench_read.TARGET_SESSION_ID, layout.target_events, READ_CHARS)]
    left = layout.filler_events
    for i in range(layout.filler_sessions):
        n = min(bench_read.FILLER_SESSION_EVENTS, left)
        plan.append(SessionPlan(USER_ID, f"filler-{i}", n, READ_CHARS))
        left -= n
    return plan


def list_plan(sessions: int) -> list[SessionPlan]:
    """``sessions`` empty sessions, ``SESSIONS_PER_USER`` per user, created round-robin."""
    users = max(1, sessions // SESSIONS_PER_USER)
    return [
        SessionPlan(f"user-{u:04d}", f"u{u:04d}-s{k:03d}", 0, 0)
        for k in range(SESSIONS_PER_USER)
        for u in range(users)
    ]


def list_user(sessions: int) -> str:
    return f"user-{max(1, sessions // SESSIONS_PER_USER) // 2:04d}"


def turns_plan(users: int) -> list[SessionPlan]:
    return [
        SessionPlan(f"user-{u:04d}", f"chat-{u:04d}", TURN_HISTORY, TURN_CHARS)
        for u in range(users)
    ]


def ensure_db(store_cls: type[Store], kind: str, size: int, *, rebuild: bool) -> BuiltDb:
    """The cached database of ``store_cls``'s family for a read or list workload."""
    if store_cls.family == "sessionlite" and kind == "read":
        return bench_read.ensure_db(size, rebuild=rebuild)  # the same layout, shared
    plan = read_plan(size) if kind == "read" else list_plan(size)
    key = {
        "layout": LAYOUT,
        "family": store_cls.family,
        "kind": kind,
        "size": size,
        "sessions": len(plan),
        "events": sum(item.events for item in plan),
        "library": store_cls().version_key(),
    }
    return cached_db(
        CACHE_DIR / f"{store_cls.family}-{kind}-{size}",
        "db.sqlite",
        ("key", key),
        lambda path: store_cls.bulk_build(path, plan),
        rebuild=rebuild,
    )


# -- measuring ----------------------------------------------------------------------------


async def _guarded(work: Awaitable[Any], errors: Errors) -> Any:
    """Await ``work``; an exception is counted, and gives ``None``."""
    try:
        return await work
    except Exception as exc:
        errors.add(exc)
        return None


async def _bounded(work: Awaitable[Any], cap_s: float, errors: Errors) -> None:
    """Await ``work``; if calls are still running ``HARD_LIMIT_S`` after the budget, they
    are cancelled and counted as one failure (a store that hangs fails, never stalls)."""
    try:
        await asyncio.wait_for(work, cap_s + HARD_LIMIT_S)
    except asyncio.TimeoutError:
        errors.add(
            TimeoutError(f"calls still running {HARD_LIMIT_S:g} s after the budget, cancelled")
        )


@contextlib.asynccontextmanager
async def _opened(store: Store, path: Path, errors: Errors) -> AsyncIterator[Store]:
    """``store`` set up on ``path``, closed afterwards (a failing close is counted)."""
    await store.setup(path)
    try:
        yield store
    finally:
        await _guarded(store.close(), errors)


@dataclasses.dataclass
class _Tally:
    """One cell's timed calls: the budget, successes, failures, latencies, timed seconds."""

    cap_s: float
    errors: Errors = dataclasses.field(default_factory=Errors)
    done: int = 0
    latencies_ns: list[int] = dataclasses.field(default_factory=list)
    elapsed_s: float = 0.0
    capped: bool = False
    deadline: float = 0.0  # set when the timer starts
    notes: list[str] = dataclasses.field(default_factory=list)

    def spent(self) -> bool:
        """Is the budget spent? (Then the caller starts no new call.)"""
        over = time.perf_counter() >= self.deadline
        self.capped = self.capped or over
        return over

    def ok(self, started_ns: int | None = None) -> None:
        """One more successful call, timed from ``started_ns`` if given."""
        self.done += 1
        if started_ns is not None:
            self.latencies_ns.append(time.perf_counter_ns() - started_ns)

    async def concurrently(self, store: Store, tasks: Sequence[Coroutine[Any, Any, None]]) -> None:
        """Time ``tasks`` run concurrently, then ``store.flush()``, within the budget."""
        with frozen_gc():
            start = time.perf_counter()
            self.deadline = start + self.cap_s
            await _bounded(asyncio.gather(*tasks), self.cap_s, self.errors)
            await _guarded(store.flush(), self.errors)
            self.elapsed_s = time.perf_counter() - start

    def cell(
        self, workload: str, store_cls: type[Store], param: int, unit: str, planned: int
    ) -> Cell:
        ordered = sorted(self.latencies_ns)
        return Cell(
            workload=workload,
            store=store_cls.key,
            param=param,
            unit=unit,
            planned=planned,
            done=self.done,
            failed=self.errors.total,
            errors=dict(self.errors.counts),
            elapsed_s=self.elapsed_s,
            capped=self.capped,
            rate=self.done / self.elapsed_s if self.elapsed_s > 0 else None,
            p50_ms=percentile(ordered, 0.5) / 1e6 if ordered else None,
            p99_ms=percentile(ordered, 0.99) / 1e6 if ordered else None,
            notes=self.notes,
        )


async def _create_sessions(
    store: Store, ids: Sequence[tuple[str, str]], errors: Errors, *, concurrency: int
) -> list[Any]:
    """Untimed setup; a failed creation is retried, then counted and the session dropped."""
    handles: list[Any] = []

    async def one(user_id: str, session_id: str) -> Any:
        for attempt in range(3):
            try:
                return await store.create_session(user_id, session_id)
            except Exception as exc:
                if attempt == 2:
                    errors.add(exc)
        return None

    for start in range(0, len(ids), concurrency):
        group = ids[start : start + concurrency]
        handles.extend(await asyncio.gather(*(one(u, s) for u, s in group)))
    return handles


# -- append -------------------------------------------------------------------------------


async def _append_once(
    store_cls: type[Store], sessions: int, events: int, cap_s: float, directory: Path
) -> Cell:
    store = store_cls()
    path = directory / "db.sqlite"
    tally = _Tally(cap_s)
    setup_errors = Errors()

    async def writer(handle: Any, natives: list[Any]) -> None:
        if handle is None:
            return
        for native in natives:
            if tally.spent():
                return
            try:
                await store.append(handle, native)
            except Exception as exc:
                tally.errors.add(exc)
            else:
                tally.ok()

    async with _opened(store, path, tally.errors):
        ids = [(f"user-{i % 100:04d}", f"s{i:04d}") for i in range(sessions)]
        concurrency = 10 if store_cls.slow else 200
        handles = await _create_sessions(store, ids, setup_errors, concurrency=concurrency)
        batch = peers.payloads(events, APPEND_CHARS)
        natives = [[store.prepare(p) for p in batch] for _ in range(sessions)]
        if isinstance(store, peers.RawSqliteStore):
            with frozen_gc():
                start = time.perf_counter()
                store.append_all(handles, natives)
                tally.elapsed_s = time.perf_counter() - start
            tally.done = sessions * events
        else:
            await tally.concurrently(
                store, [writer(h, n) for h, n in zip(handles, natives, strict=True)]
            )
    if setup_errors.total:
        tally.notes.append(
            f"{setup_errors.total} session(s) could not be created (setup): "
            + "; ".join(f"{k} x{v}" for k, v in setup_errors.counts.items())
        )
        tally.errors.counts.update(setup_errors.counts)
    stored = rawsqlite.count_rows(path, store_cls.events_table)
    if stored != tally.done:
        tally.notes.append(
            f"stored {stored:,} events, {tally.done:,} appends returned successfully"
        )
    return tally.cell("append", store_cls, sessions, "events", sessions * events)


def _append_cell(
    store_cls: type[Store], sessions: int, config: PeersConfig, tmp_root: str | None
) -> Cell:
    """The best of up to ``config.repeats`` runs; every run's failures are counted."""
    runs: list[Cell] = []
    for _ in range(config.repeats):
        with temp_dir(tmp_root, "sessionlite-peers-") as tmp:
            events = config.append_events[sessions]
            cell = asyncio.run(_append_once(store_cls, sessions, events, config.append_cap_s, tmp))
        runs.append(cell)
        if cell.elapsed_s >= REPEAT_BELOW_S or cell.capped or cell.failed:
            break
    best = max(runs, key=lambda cell: cell.rate or 0.0)
    errors: Counter[str] = Counter()
    for cell in runs:
        errors.update(cell.errors)
    best.failed = sum(cell.failed for cell in runs)
    best.errors = dict(errors)
    best.runs = [cell.rate or 0.0 for cell in runs]
    return best


# -- read and list ------------------------------------------------------------------------


async def _latency_cell(
    store_cls: type[Store],
    db: BuiltDb,
    call: Callable[[Store], Awaitable[list[str] | None]],
    check: Callable[[list[str] | None], str | None],
    *,
    cap_s: float,
    calls: int,
) -> _Tally:
    """Time ``call`` one call at a time, in ``LATENCY_ROUNDS`` rounds, each on a freshly
    opened store (a single open can land in a slow or a fast mode for its whole life on a
    busy 2-CPU machine: the samples of several opens are pooled). Each round: a warm-up
    (untimed, at most 20 calls or about a second), then up to ``calls / rounds`` timed calls
    within ``cap_s / rounds``. ``check`` looks at the first result of each round; what it
    says becomes a note."""
    tally = _Tally(cap_s / LATENCY_ROUNDS)
    for _ in range(LATENCY_ROUNDS):
        async with _opened(store_cls(), db.path, tally.errors) as store:
            warm_until = time.perf_counter() + 1.0
            note = check(await _guarded(call(store), tally.errors))
            if note is not None and note not in tally.notes:
                tally.notes.append(note)
            for _ in range(19):
                if time.perf_counter() >= warm_until:
                    break
                await _guarded(call(store), tally.errors)
            with frozen_gc():
                start = time.perf_counter()
                tally.deadline = start + tally.cap_s
                for _ in range(max(1, calls // LATENCY_ROUNDS)):
                    if tally.spent():
                        break
                    started = time.perf_counter_ns()
                    if await _guarded(call(store), tally.errors) is not None:
                        tally.ok(started)
                tally.elapsed_s += time.perf_counter() - start
    return tally


async def _read_cell(store_cls: type[Store], db: BuiltDb, total: int, config: PeersConfig) -> Cell:
    target = read_plan(total)[0]
    expected = peers.expected_texts(target.events, READ_CHARS, RECENT)

    async def call(store: Store) -> list[str] | None:
        _, events = await store.read_recent(target.user_id, target.session_id, RECENT)
        return store.texts(events)

    def check(texts: list[str] | None) -> str | None:
        if texts is not None and texts != expected:
            return f"wrong result: {len(texts)} events, not the newest {RECENT}"
        return None

    tally = await _latency_cell(
        store_cls, db, call, check, cap_s=config.read_cap_s, calls=config.reads
    )
    return tally.cell("read", store_cls, total, "reads", config.reads)


async def _list_cell(
    store_cls: type[Store], db: BuiltDb, sessions: int, config: PeersConfig
) -> Cell:
    user = list_user(sessions)
    prefix = f"u{user[len('user-') :]}-"

    async def call(store: Store) -> list[str] | None:
        ids = await store.list_user_sessions(user, LIST_PAGE)
        return [] if ids is None else ids

    def check(ids: list[str] | None) -> str | None:
        if ids is not None and (
            len(ids) != LIST_PAGE or not all(i.startswith(prefix) for i in ids)
        ):
            return f"wrong result: {len(ids)} sessions"
        return None

    tally = await _latency_cell(
        store_cls, db, call, check, cap_s=config.list_cap_s, calls=config.list_calls
    )
    return tally.cell("list", store_cls, sessions, "calls", config.list_calls)


# -- turns --------------------------------------------------------------------------------


async def _turns_once(
    store_cls: type[Store], users: int, turns: int, cap_s: float, path: Path
) -> Cell:
    plan = turns_plan(users)
    store = store_cls()
    tally = _Tally(cap_s)
    # Turn t of a user: the user's event (no delta), then the assistant's (with a delta).
    # Every user gets event objects of its own.
    natives = [
        [
            store.prepare(peers.payload(TURN_HISTORY + i, TURN_CHARS, delta=i % 2 == 1))
            for i in range(2 * turns)
        ]
        for _ in plan
    ]

    async def user(item: SessionPlan, events: list[Any]) -> None:
        for t in range(turns):
            if tally.spent():
                return
            started = time.perf_counter_ns()
            try:
                handle, _ = await store.read_recent(item.user_id, item.session_id, RECENT)
                await store.append(handle, events[2 * t])
                await store.append(handle, events[2 * t + 1])
            except Exception as exc:
                tally.errors.add(exc)
            else:
                tally.ok(started)

    async with _opened(store, path, tally.errors):
        await tally.concurrently(store, [user(*args) for args in zip(plan, natives, strict=True)])
    stored = rawsqlite.count_rows(path, store_cls.events_table)
    expected = users * TURN_HISTORY + 2 * tally.done
    if stored < expected:
        tally.notes.append(f"stored {stored:,} events, expected at least {expected:,}")
    return tally.cell("turns", store_cls, users, "turns", users * turns)


def _turns_cell(
    store_cls: type[Store], users: int, config: PeersConfig, tmp_root: str | None
) -> tuple[Cell, float]:
    """The cell and how long building its database took."""
    with temp_dir(tmp_root, "sessionlite-peers-") as tmp:
        path = tmp / "db.sqlite"
        start = time.perf_counter()
        store_cls.bulk_build(path, turns_plan(users))
        build_s = time.perf_counter() - start
        turns = config.turns_per_user[users]
        cell = asyncio.run(_turns_once(store_cls, users, turns, config.turns_cap_s, path))
    return cell, build_s


# -- driver -------------------------------------------------------------------------------


def _store_info(store_cls: type[Store]) -> dict[str, Any]:
    config = store_cls.config
    if store_cls is peers.AdkDatabaseStore:
        config = config.format(pool=_adk_pool())
    return {
        "label": store_cls.label,
        "config": config,
        "build": store_cls.build_note,
        "has_state": store_cls.has_state,
        "has_list": store_cls.has_list,
    }


def _adk_pool() -> str:
    async def probe() -> str:
        with temp_dir(None, "tmp") as tmp:
            store = peers.AdkDatabaseStore()
            await store.setup(tmp / "probe.db")
            try:
                return store.pool_description()
            finally:
                await store.close()

    return asyncio.run(probe())


def _progress(cell: Cell, label: str) -> None:
    extra = "" if cell.p50_ms is None else f", p50 {cell.p50_ms:.3f} ms"
    status = f", FAILED CALLS {cell.failed}" if cell.failed else ""
    rate = "-" if cell.rate is None else f"{cell.rate:,.0f}"
    print(
        f"    {cell.workload:<6} {cell.param:>9,} {label:<40} {rate:>9} {cell.unit}/s"
        f"{extra}{' (capped)' if cell.capped else ''}{status}",
        flush=True,
    )


def _require_peers() -> None:
    """The peers' libraries are the bench dependency group's, not sessionlite's."""
    import importlib.util

    def installed(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # a missing parent package
            return False

    missing = sorted(
        {
            package
            for module, package in (
                ("google.adk", "google-adk"),
                ("agents", "openai-agents"),
                ("sqlalchemy", "sqlalchemy[asyncio]"),
                ("greenlet", "sqlalchemy[asyncio]"),
            )
            if not installed(module)
        }
    )
    if missing:
        raise RuntimeError(
            f"the peers benchmark needs {', '.join(missing)} (the bench dependency group); "
            "install them, or leave peers out with --only"
        )


@dataclasses.dataclass
class _Run:
    """One run of the peers benchmark: its settings and the result it fills."""

    result: PeersResult
    rebuild: bool
    tmp_root: str | None

    @property
    def config(self) -> PeersConfig:
        return self.result.config

    def cached_db(self, store_cls: type[Store], kind: str, size: int) -> BuiltDb:
        """``ensure_db``, recording (and announcing) the build once per family."""
        db = ensure_db(store_cls, kind, size, rebuild=self.rebuild)
        builds = self.result.builds
        if not any(
            (b["store"], b["kind"], b["size"]) == (store_cls.family, kind, size) for b in builds
        ):
            builds.append(
                {
                    "store": store_cls.family,
                    "kind": kind,
                    "size": size,
                    "build_s": db.build_s,
                    "cached": db.cached,
                }
            )
            if not db.cached:
                print(
                    f"    built the {store_cls.family} {kind} database of {size:,} in "
                    f"{db.build_s:.1f} s (cached for later runs)",
                    flush=True,
                )
        return db

    def append_cells(self) -> Iterator[Cell]:
        for sessions in self.config.append_sessions:
            for store_cls in APPEND_STORES:
                yield _append_cell(store_cls, sessions, self.config, self.tmp_root)

    def read_cells(self) -> Iterator[Cell]:
        for total in self.config.read_sizes:
            for store_cls in peers.STORES:
                db = self.cached_db(store_cls, "read", total)
                yield asyncio.run(_read_cell(store_cls, db, total, self.config))

    def turns_cells(self) -> Iterator[Cell]:
        for users in self.config.turn_users:
            for store_cls in peers.STORES:
                cell, build_s = _turns_cell(store_cls, users, self.config, self.tmp_root)
                self.result.builds.append(
                    {
                        "store": store_cls.key,
                        "kind": "turns",
                        "size": users,
                        "build_s": build_s,
                        "cached": False,
                    }
                )
                yield cell

    def list_cells(self) -> Iterator[Cell]:
        sessions = self.config.list_sessions
        for store_cls in peers.STORES:
            if store_cls.has_list:
                db = self.cached_db(store_cls, "list", sessions)
                yield asyncio.run(_list_cell(store_cls, db, sessions, self.config))
            else:
                note = "no call lists sessions (sessions are known by id only)"
                cell = _Tally(0.0, notes=[note]).cell("list", store_cls, sessions, "calls", 0)
                cell.supported = False
                yield cell


# The append workload also runs sessionlite with synchronous=FULL, after its two modes.
APPEND_STORES: tuple[type[Store], ...] = (
    *peers.STORES[:2],
    peers.SessionliteFullSyncStore,
    *peers.STORES[2:],
)


def run(
    *,
    quick: bool,
    rebuild: bool = False,
    tmp_root: str | None = None,
    workloads: Sequence[str] = WORKLOADS,
) -> PeersResult:
    _require_peers()
    started = time.perf_counter()
    stores = {cls.key: _store_info(cls) for cls in APPEND_STORES}
    result = PeersResult(PeersConfig.for_mode(quick=quick), cells=[], stores=stores, builds=[])
    runner = _Run(result, rebuild, tmp_root)
    print("  peers: progress (one line per cell)", flush=True)
    for workload in WORKLOADS:
        if workload not in workloads:
            continue
        for cell in getattr(runner, f"{workload}_cells")():
            result.cells.append(cell)
            if cell.supported:
                _progress(cell, result.label(cell.store))
    result.total_s = time.perf_counter() - started
    return result


# -- targets ------------------------------------------------------------------------------


def _target(
    name: str, value: Any, bound: float, passed: bool | None, detail: str
) -> dict[str, Any]:
    return {"name": name, "value": value, "bound": bound, "passed": passed, "detail": detail}


def _append_targets(result: PeersResult) -> list[dict[str, Any]]:
    """Durable append at S=100 against OpenAI SQLiteSession and ADK DatabaseSessionService."""
    targets = []
    lite = result.rate("append", SESSIONLITE, 100)
    for peer, bound in (
        ("openai-sqlite", TARGET_APPEND_VS_OPENAI),
        ("adk-database", TARGET_APPEND_VS_ADK_DB),
    ):
        other = result.rate("append", peer, 100)
        if lite is None or not other:
            continue
        name = result.label(peer)
        ratio = lite / other
        peer_cell = result.cell("append", peer, 100)
        failing = (
            f" ({name} had {peer_cell.failed} failed calls)"
            if peer_cell and peer_cell.failed
            else ""
        )
        targets.append(
            _target(
                f"durable append >= {bound:g}x {name} at S=100",
                ratio,
                bound,
                ratio >= bound,
                f"sessionlite {lite:,.0f} ev/s vs {other:,.0f} ev/s = {ratio:.1f}x{failing}",
            )
        )
    return targets


def _turns_targets(result: PeersResult) -> list[dict[str, Any]]:
    """Agent turns at U=100 against the best peer."""
    params = result.params("turns")
    users = 100 if 100 in params else max(params, default=None)
    if users is None:
        return []
    lite = result.rate("turns", SESSIONLITE, users)
    peer_rates = {
        key: result.rate("turns", key, users) or 0.0
        for key in result.store_keys("turns")
        if not key.startswith("sessionlite") and key != RAW
    }
    best_key = max(peer_rates, key=lambda k: peer_rates[k], default=None)
    best = peer_rates[best_key] if best_key else None
    if not lite or not best_key or not best:
        return []
    ratio = lite / best
    measured = users == 100
    return [
        _target(
            f"agent turns/s >= {TARGET_TURNS_VS_BEST_PEER:g}x the best peer at U=100",
            ratio,
            TARGET_TURNS_VS_BEST_PEER,
            ratio >= TARGET_TURNS_VS_BEST_PEER if measured else None,
            f"U={users}: sessionlite {lite:,.0f} turns/s vs best peer "
            f"{result.label(best_key)} {best:,.0f} turns/s = {ratio:.1f}x"
            + ("" if measured else " (--quick: U=100 not measured)"),
        )
    ]


def _failure_targets(result: PeersResult) -> list[dict[str, Any]]:
    """Zero failed calls at S=1000 (sessionlite, both modes); peers that fail there."""
    sizes = result.params("append")
    if not sizes:
        return []
    top = 1000 if 1000 in sizes else max(sizes)
    failed = {
        key: cell.failed
        for key in result.store_keys("append")
        if (cell := result.cell("append", key, top)) is not None
    }
    lite_failed = sum(n for k, n in failed.items() if k.startswith("sessionlite"))
    failing_peers = [
        f"{result.label(k)} ({n:,} failed)"
        for k, n in failed.items()
        if n and not k.startswith("sessionlite")
    ]
    return [
        _target(
            "zero failed calls at S=1000",
            lite_failed,
            0,
            lite_failed == 0 if top == 1000 else None,
            f"S={top}: sessionlite {failed.get(SESSIONLITE, 0)} (durable) + "
            f"{failed.get(SESSIONLITE_ASYNC, 0)} (async_persist) failed calls; peers "
            f"failing there: {', '.join(failing_peers) or 'none'}"
            + ("" if top == 1000 else " (--quick: S=1000 not measured)"),
        )
    ]


def _read_growth(result: PeersResult, small: int, large: int) -> dict[str, float]:
    """p50 at ``large`` / p50 at ``small``, per store."""
    growth: dict[str, float] = {}
    for key in result.store_keys("read"):
        a, b = result.cell("read", key, small), result.cell("read", key, large)
        if a and b and a.p50_ms and b.p50_ms:
            growth[key] = b.p50_ms / a.p50_ms
    return growth


def _read_targets(result: PeersResult) -> list[dict[str, Any]]:
    """Read-recent-20 p50 flat from 10k to 1M events."""
    name = f"read-recent-20 p50 growth 10k -> 1M <= {TARGET_READ_GROWTH}x"
    sizes = result.params("read")
    if len(sizes) == 1 and result.config.quick:
        detail = "--quick reads the 10k database only; run the full benchmark"
        return [_target(name, None, TARGET_READ_GROWTH, None, detail)]
    if len(sizes) < 2:
        return []
    small, large = min(sizes), max(sizes)
    growth = _read_growth(result, small, large)
    if SESSIONLITE not in growth:
        return []
    measured = large == 1_000_000
    lite = growth.pop(SESSIONLITE)
    others = ", ".join(f"{result.label(k)} {g:.2f}x" for k, g in growth.items())
    return [
        _target(
            name,
            lite,
            TARGET_READ_GROWTH,
            lite <= TARGET_READ_GROWTH if measured else None,
            f"{small:,} -> {large:,} events: sessionlite {lite:.2f}x; others: {others}"
            + ("" if measured else " (--quick: 1M not measured)"),
        )
    ]


_TARGET_RULES = (_append_targets, _turns_targets, _failure_targets, _read_targets)


# -- report -------------------------------------------------------------------------------


def _fmt_rate(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}"


def _fmt_ratio(value: float | None) -> str:
    if value is None:
        return ""
    if value >= 0.1 or value <= 0:
        return f"{value:.2f}x"
    # Two significant digits, in plain decimals (0.0093x, 0.000022x).
    return f"{value:.{1 - math.floor(math.log10(value))}f}x"


def cell_text(result: PeersResult, cell: Cell | None, *, latency: bool) -> str:
    """One table cell: the number, its ratio to the raw ceiling, cap and failure marks."""
    if cell is None:
        return ""
    if not cell.supported:
        return "n/a"
    if latency:
        main = "-" if cell.p50_ms is None else f"{cell.p50_ms:.3f} / {cell.p99_ms:.3f}"
    else:
        main = _fmt_rate(cell.rate)
    ratio = _fmt_ratio(result.vs_raw(cell))
    text = main + (f" ({ratio})" if ratio else "")
    if cell.capped:
        text += "*"
    if cell.failing:
        text += f" FAIL({cell.failed:,})"
    return text


def grid(result: PeersResult, workload: str) -> tuple[list[str], list[list[str]]]:
    """One workload's table: the header (``store``, then a column per size) and a row per
    store (its label, then ``cell_text`` per size)."""
    params = result.params(workload)
    latency = workload in LATENCY_WORKLOADS
    header = ["store", *(f"{PARAM_NAMES[workload]}={p:,}" for p in params)]
    rows = [
        [
            result.label(key),
            *(cell_text(result, result.cell(workload, key, p), latency=latency) for p in params),
        ]
        for key in result.store_keys(workload)
    ]
    return header, rows


def _workload_note(config: PeersConfig, workload: str, params: list[int]) -> str:
    if workload == "append":
        return (
            f"E = {per_param(config.append_events, params, 'S')}; ~{APPEND_CHARS}-char text; "
            f"budget {config.append_cap_s:g} s per cell"
        )
    if workload == "read":
        return (
            f"up to {config.reads} timed reads per cell in {LATENCY_ROUNDS} rounds, each on a "
            f"freshly opened store (budget {config.read_cap_s:g} s); 90% of the events in the "
            "session read"
        )
    if workload == "turns":
        return (
            f"turns per user: {per_param(config.turns_per_user, params, 'U')}; each session "
            f"starts with {TURN_HISTORY} events; budget {config.turns_cap_s:g} s per cell"
        )
    return (
        f"{SESSIONS_PER_USER} sessions per user; up to {config.list_calls} calls "
        f"(budget {config.list_cap_s:g} s)"
    )


def _workload_lines(result: PeersResult, workload: str) -> list[str]:
    header, rows = grid(result, workload)
    width = max(24, *(len(text) + 2 for row in rows for text in row[1:]))
    return [
        "",
        "  " + WORKLOAD_TITLES[workload],
        "    " + _workload_note(result.config, workload, result.params(workload)),
        *(
            f"    {row[0]:<40}" + "".join(f"{text:>{width}}" for text in row[1:])
            for row in [header, *rows]
        ),
    ]


def _failure_lines(result: PeersResult) -> list[str]:
    failing = result.failing_cells()
    if not failing:
        return ["  failed calls: none"]
    lines = ["  failed calls (by store, workload and size):"]
    for cell in failing:
        lines.append(
            f"    {result.label(cell.store)}, {cell.where}: {cell.failed:,} failed of "
            f"{cell.done + cell.failed:,} calls"
        )
        lines += [f"      {count:>7,} x {error}" for error, count in sorted_errors(cell)]
    return lines


def report(result: PeersResult) -> list[str]:
    lines = [
        "Peers: sessionlite against the stores users would pick instead "
        f"({'quick' if result.config.quick else 'full'} sizes); * = stopped by the cell's time "
        "budget (rate over what was done), FAIL(n) = n failed calls"
    ]
    for workload in WORKLOADS:
        if result.params(workload):
            lines += _workload_lines(result, workload)
    lines += ["", *_failure_lines(result)]
    notes = result.notes()
    if notes:
        lines += ["  notes:", *(f"    {note}" for note in notes)]
    built = [b for b in result.builds if not b.get("cached") and b["kind"] != "turns"]
    if built:
        lines.append(
            "  databases built in this run: "
            + ", ".join(
                f"{b['store']} {b['kind']} {b['size']:,} ({b['build_s']:.1f} s)" for b in built
            )
        )
    lines += [f"  {VERDICTS[t['passed']]}  {t['name']}: {t['detail']}" for t in result.targets()]
    lines.append(f"  peers total {result.total_s:.1f} s")
    return lines
