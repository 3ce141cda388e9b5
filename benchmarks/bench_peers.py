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
import gc
import json
import math
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from . import bench_read, peers
from .peers import SessionPlan, Store
from .workloads import USER_ID, percentile

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

TARGET_APPEND_VS_OPENAI = 20.0
TARGET_APPEND_VS_ADK_DB = 100.0
TARGET_TURNS_VS_BEST_PEER = 10.0
TARGET_READ_GROWTH = 1.5

SESSIONLITE = "sessionlite"
SESSIONLITE_ASYNC = "sessionlite-async"
RAW = "raw-sqlite3"


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

    def params(self, workload: str) -> list[int]:
        return sorted({cell.param for cell in self.cells if cell.workload == workload})

    def store_keys(self, workload: str) -> list[str]:
        seen: list[str] = []
        for cell in self.cells:
            if cell.workload == workload and cell.store not in seen:
                seen.append(cell.store)
        return seen

    def label(self, key: str) -> str:
        return str(self.stores[key]["label"])

    def vs_raw(self, cell: Cell) -> float | None:
        """The cell's speed as a fraction of the raw ceiling's (same workload and size)."""
        raw = self.cell(cell.workload, RAW, cell.param)
        if raw is None or cell.store == RAW or not cell.supported:
            return None
        if cell.workload in ("append", "turns"):
            if raw.rate and cell.rate is not None:
                return cell.rate / raw.rate
            return None
        if raw.p50_ms and cell.p50_ms:
            return raw.p50_ms / cell.p50_ms
        return None

    def targets(self) -> list[dict[str, Any]]:
        return _targets(self)

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


@dataclasses.dataclass(frozen=True)
class BuiltDb:
    path: Path
    build_s: float
    cached: bool


def ensure_db(store_cls: type[Store], kind: str, size: int, *, rebuild: bool) -> BuiltDb:
    """The cached database of ``store_cls``'s family for a read or list workload."""
    if store_cls.family == "sessionlite" and kind == "read":
        built = bench_read.ensure_db(size, rebuild=rebuild)  # the same layout, shared
        return BuiltDb(built.path, built.build_s, built.cached)
    plan = read_plan(size) if kind == "read" else list_plan(size)
    directory = CACHE_DIR / f"{store_cls.family}-{kind}-{size}"
    meta_path = directory / "meta.json"
    key = {
        "layout": LAYOUT,
        "family": store_cls.family,
        "kind": kind,
        "size": size,
        "sessions": len(plan),
        "events": sum(item.events for item in plan),
        "library": store_cls().version_key(),
    }
    path = directory / "db.sqlite"
    if not rebuild and meta_path.exists() and path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("key") == key:
            return BuiltDb(path, float(meta["build_s"]), True)
    scratch = CACHE_DIR / f"building-{store_cls.family}-{kind}-{size}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    start = time.perf_counter()
    store_cls.bulk_build(scratch / "db.sqlite", plan)
    elapsed = time.perf_counter() - start
    (scratch / "meta.json").write_text(json.dumps({"key": key, "build_s": elapsed}, indent=2))
    shutil.rmtree(directory, ignore_errors=True)
    scratch.rename(directory)
    return BuiltDb(path, elapsed, False)


# -- workloads ----------------------------------------------------------------------------


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


HARD_LIMIT_S = 120.0  # after the budget: calls still running then are abandoned


async def _bounded(work: Any, cap_s: float, errors: Errors) -> None:
    """Await ``work``; if calls are still running ``HARD_LIMIT_S`` after the budget, they
    are cancelled and counted as one failure (a store that hangs fails, never stalls)."""
    try:
        await asyncio.wait_for(work, cap_s + HARD_LIMIT_S)
    except asyncio.TimeoutError:
        errors.add(
            TimeoutError(f"calls still running {HARD_LIMIT_S:g} s after the budget, cancelled")
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


async def _append_once(
    store_cls: type[Store], sessions: int, events: int, cap_s: float, directory: Path
) -> Cell:
    store = store_cls()
    path = directory / "db.sqlite"
    errors = Errors()
    setup_errors = Errors()
    done = 0
    capped = False
    await store.setup(path)
    try:
        ids = [(f"user-{i % 100:04d}", f"s{i:04d}") for i in range(sessions)]
        handles = await _create_sessions(
            store, ids, setup_errors, concurrency=10 if store_cls.slow else 200
        )
        batch = peers.payloads(events, APPEND_CHARS)
        natives = [[store.prepare(p) for p in batch] for _ in range(sessions)]
        if isinstance(store, peers.RawSqliteStore):
            with frozen_gc():
                start = time.perf_counter()
                store.append_all(handles, natives)
                elapsed = time.perf_counter() - start
            done = sessions * events
        else:
            deadline = 0.0  # set when the timer starts

            async def writer(index: int) -> None:
                nonlocal done, capped
                handle = handles[index]
                if handle is None:
                    return
                for native in natives[index]:
                    if time.perf_counter() >= deadline:
                        capped = True
                        return
                    try:
                        await store.append(handle, native)
                    except Exception as exc:
                        errors.add(exc)
                    else:
                        done += 1

            with frozen_gc():
                start = time.perf_counter()
                deadline = start + cap_s
                await _bounded(asyncio.gather(*(writer(i) for i in range(sessions))), cap_s, errors)
                try:
                    await store.flush()
                except Exception as exc:
                    errors.add(exc)
                elapsed = time.perf_counter() - start
    finally:
        try:
            await store.close()
        except Exception as exc:
            errors.add(exc)
    notes = []
    if setup_errors.total:
        notes.append(
            f"{setup_errors.total} session(s) could not be created (setup): "
            + "; ".join(f"{k} x{v}" for k, v in setup_errors.counts.items())
        )
        errors.counts.update(setup_errors.counts)
    stored = peers.count_rows(path, store_cls.events_table)
    if stored != done:
        notes.append(f"stored {stored:,} events, {done:,} appends returned successfully")
    return Cell(
        workload="append",
        store=store_cls.key,
        param=sessions,
        unit="events",
        planned=sessions * events,
        done=done,
        failed=errors.total,
        errors=dict(errors.counts),
        elapsed_s=elapsed,
        capped=capped,
        rate=done / elapsed if elapsed > 0 else None,
        notes=notes,
    )


def _append_cell(
    store_cls: type[Store], sessions: int, config: PeersConfig, tmp_root: str | None
) -> Cell:
    events = config.append_events[sessions]
    best: Cell | None = None
    rates: list[float] = []
    failed = 0
    errors: Counter[str] = Counter()
    for _ in range(config.repeats):
        with tempfile.TemporaryDirectory(prefix="sessionlite-peers-", dir=tmp_root) as tmp:
            cell = asyncio.run(
                _append_once(store_cls, sessions, events, config.append_cap_s, Path(tmp))
            )
        rates.append(cell.rate or 0.0)
        failed += cell.failed
        errors.update(cell.errors)
        if best is None or (cell.rate or 0.0) > (best.rate or 0.0):
            best = cell
        if cell.elapsed_s >= REPEAT_BELOW_S or cell.capped or cell.failed:
            break
    assert best is not None
    best.runs = rates
    best.failed = failed
    best.errors = dict(errors)
    return best


async def _latency_cell(
    store_cls: type[Store],
    db: BuiltDb,
    call: Callable[[Store], Awaitable[list[str] | None]],
    check: Callable[[list[str] | None], str | None],
    *,
    calls: int,
    cap_s: float,
) -> tuple[list[int], Errors, float, bool, list[str]]:
    """Time ``call`` one call at a time, in ``LATENCY_ROUNDS`` rounds, each on a freshly
    opened store (a single open can land in a slow or a fast mode for its whole life on a
    busy 2-CPU machine: the samples of several opens are pooled). Each round: a warm-up
    (untimed, at most 20 calls or about a second), then up to ``calls / rounds`` timed calls
    within ``cap_s / rounds``. ``check`` looks at the first result of each round.

    Returns (samples in ns, errors, timed seconds, capped, notes).
    """
    errors = Errors()
    samples: list[int] = []
    notes: list[str] = []
    elapsed = 0.0
    capped = False
    per_round = max(1, calls // LATENCY_ROUNDS)
    for _ in range(LATENCY_ROUNDS):
        store = store_cls()
        await store.setup(db.path)
        try:

            async def once(store: Store = store) -> list[str] | None:
                try:
                    return await call(store)
                except Exception as exc:
                    errors.add(exc)
                    return None

            warm_until = time.perf_counter() + 1.0
            for i in range(20):
                result = await once()
                if i == 0:
                    note = check(result)
                    if note is not None and note not in notes:
                        notes.append(note)
                if time.perf_counter() >= warm_until:
                    break
            taken = 0
            with frozen_gc():
                start = time.perf_counter()
                deadline = start + cap_s / LATENCY_ROUNDS
                while taken < per_round:
                    if time.perf_counter() >= deadline:
                        capped = True
                        break
                    t0 = time.perf_counter_ns()
                    result = await once()
                    if result is not None:
                        samples.append(time.perf_counter_ns() - t0)
                    taken += 1
                elapsed += time.perf_counter() - start
        finally:
            try:
                await store.close()
            except Exception as exc:
                errors.add(exc)
    return samples, errors, elapsed, capped, notes


def _latency_result(
    workload: str,
    store_cls: type[Store],
    param: int,
    unit: str,
    planned: int,
    measured: tuple[list[int], Errors, float, bool, list[str]],
) -> Cell:
    samples, errors, elapsed, capped, notes = measured
    ordered = sorted(samples)
    return Cell(
        workload=workload,
        store=store_cls.key,
        param=param,
        unit=unit,
        planned=planned,
        done=len(samples),
        failed=errors.total,
        errors=dict(errors.counts),
        elapsed_s=elapsed,
        capped=capped,
        rate=len(samples) / elapsed if elapsed > 0 else None,
        p50_ms=percentile(ordered, 0.5) / 1e6 if ordered else None,
        p99_ms=percentile(ordered, 0.99) / 1e6 if ordered else None,
        notes=notes,
    )


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

    measured = await _latency_cell(
        store_cls, db, call, check, calls=config.reads, cap_s=config.read_cap_s
    )
    return _latency_result("read", store_cls, total, "reads", config.reads, measured)


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

    measured = await _latency_cell(
        store_cls, db, call, check, calls=config.list_calls, cap_s=config.list_cap_s
    )
    return _latency_result("list", store_cls, sessions, "calls", config.list_calls, measured)


async def _turns_once(
    store_cls: type[Store], users: int, turns: int, cap_s: float, path: Path
) -> Cell:
    plan = turns_plan(users)
    store = store_cls()
    errors = Errors()
    latencies: list[int] = []
    done = 0
    capped = False
    natives: list[list[Any]] = []
    for _ in plan:
        events = []
        for t in range(turns):
            index = TURN_HISTORY + 2 * t
            events.append(store.prepare(peers.payload(index, TURN_CHARS, delta=False)))
            events.append(store.prepare(peers.payload(index + 1, TURN_CHARS)))
        natives.append(events)
    await store.setup(path)
    try:
        deadline = 0.0  # set when the timer starts

        async def user(u: int) -> None:
            nonlocal done, capped
            item = plan[u]
            for t in range(turns):
                if time.perf_counter() >= deadline:
                    capped = True
                    return
                t0 = time.perf_counter_ns()
                try:
                    handle, _ = await store.read_recent(item.user_id, item.session_id, RECENT)
                    await store.append(handle, natives[u][2 * t])
                    await store.append(handle, natives[u][2 * t + 1])
                except Exception as exc:
                    errors.add(exc)
                else:
                    latencies.append(time.perf_counter_ns() - t0)
                    done += 1

        with frozen_gc():
            start = time.perf_counter()
            deadline = start + cap_s
            await _bounded(asyncio.gather(*(user(u) for u in range(users))), cap_s, errors)
            try:
                await store.flush()
            except Exception as exc:
                errors.add(exc)
            elapsed = time.perf_counter() - start
    finally:
        try:
            await store.close()
        except Exception as exc:
            errors.add(exc)
    notes = []
    stored = peers.count_rows(path, store_cls.events_table)
    if stored < users * TURN_HISTORY + 2 * done:
        notes.append(
            f"stored {stored:,} events, expected at least {users * TURN_HISTORY + 2 * done:,}"
        )
    ordered = sorted(latencies)
    return Cell(
        workload="turns",
        store=store_cls.key,
        param=users,
        unit="turns",
        planned=users * turns,
        done=done,
        failed=errors.total,
        errors=dict(errors.counts),
        elapsed_s=elapsed,
        capped=capped,
        rate=done / elapsed if elapsed > 0 else None,
        p50_ms=percentile(ordered, 0.5) / 1e6 if ordered else None,
        p99_ms=percentile(ordered, 0.99) / 1e6 if ordered else None,
        notes=notes,
    )


def _turns_cell(
    store_cls: type[Store], users: int, config: PeersConfig, tmp_root: str | None
) -> tuple[Cell, float]:
    with tempfile.TemporaryDirectory(prefix="sessionlite-peers-", dir=tmp_root) as tmp:
        path = Path(tmp) / "db.sqlite"
        start = time.perf_counter()
        store_cls.bulk_build(path, turns_plan(users))
        build_s = time.perf_counter() - start
        cell = asyncio.run(
            _turns_once(store_cls, users, config.turns_per_user[users], config.turns_cap_s, path)
        )
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
        with tempfile.TemporaryDirectory() as tmp:
            store = peers.AdkDatabaseStore()
            await store.setup(Path(tmp) / "probe.db")
            try:
                return store.pool_description()
            finally:
                await store.close()

    return asyncio.run(probe())


def _progress(cell: Cell, label: str) -> None:
    extra = ""
    if cell.p50_ms is not None:
        extra = f", p50 {cell.p50_ms:.3f} ms"
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


def run(
    *,
    quick: bool,
    rebuild: bool = False,
    tmp_root: str | None = None,
    workloads: Sequence[str] = ("append", "read", "turns", "list"),
) -> PeersResult:
    _require_peers()
    config = PeersConfig.for_mode(quick=quick)
    started = time.perf_counter()
    stores = list(peers.STORES)
    append_stores = [*stores[:2], peers.SessionliteFullSyncStore, *stores[2:]]
    info = {cls.key: _store_info(cls) for cls in append_stores}
    result = PeersResult(config=config, cells=[], stores=info, builds=[])
    print("  peers: progress (one line per cell)", flush=True)

    if "append" in workloads:
        for sessions in config.append_sessions:
            for store_cls in append_stores:
                cell = _append_cell(store_cls, sessions, config, tmp_root)
                result.cells.append(cell)
                _progress(cell, store_cls.label)

    if "read" in workloads:
        for total in config.read_sizes:
            for store_cls in stores:
                db = ensure_db(store_cls, "read", total, rebuild=rebuild)
                _record_build(result, store_cls, "read", total, db)
                cell = asyncio.run(_read_cell(store_cls, db, total, config))
                result.cells.append(cell)
                _progress(cell, store_cls.label)

    if "turns" in workloads:
        for users in config.turn_users:
            for store_cls in stores:
                cell, build_s = _turns_cell(store_cls, users, config, tmp_root)
                result.builds.append(
                    {
                        "store": store_cls.key,
                        "kind": "turns",
                        "size": users,
                        "build_s": build_s,
                        "cached": False,
                    }
                )
                result.cells.append(cell)
                _progress(cell, store_cls.label)

    if "list" in workloads:
        sessions = config.list_sessions
        for store_cls in stores:
            if not store_cls.has_list:
                result.cells.append(
                    Cell(
                        workload="list",
                        store=store_cls.key,
                        param=sessions,
                        unit="calls",
                        planned=0,
                        done=0,
                        failed=0,
                        errors={},
                        elapsed_s=0.0,
                        capped=False,
                        rate=None,
                        supported=False,
                        notes=["no call lists sessions (sessions are known by id only)"],
                    )
                )
                continue
            db = ensure_db(store_cls, "list", sessions, rebuild=rebuild)
            _record_build(result, store_cls, "list", sessions, db)
            cell = asyncio.run(_list_cell(store_cls, db, sessions, config))
            result.cells.append(cell)
            _progress(cell, store_cls.label)

    result.total_s = time.perf_counter() - started
    return result


def _record_build(
    result: PeersResult, store_cls: type[Store], kind: str, size: int, db: BuiltDb
) -> None:
    entry = {
        "store": store_cls.family,
        "kind": kind,
        "size": size,
        "build_s": db.build_s,
        "cached": db.cached,
    }
    if not any(
        b["store"] == entry["store"] and b["kind"] == kind and b["size"] == size
        for b in result.builds
    ):
        result.builds.append(entry)
        if not db.cached:
            print(
                f"    built the {store_cls.family} {kind} database of {size:,} in "
                f"{db.build_s:.1f} s (cached for later runs)",
                flush=True,
            )


# -- targets ------------------------------------------------------------------------------


def _rate(result: PeersResult, workload: str, store: str, param: int) -> float | None:
    cell = result.cell(workload, store, param)
    return None if cell is None else cell.rate


def _targets(result: PeersResult) -> list[dict[str, Any]]:
    targets: list[dict[str, Any]] = []
    quick = result.config.quick

    # 1. durable append at S=100 against OpenAI SQLiteSession and ADK DatabaseSessionService.
    lite = _rate(result, "append", SESSIONLITE, 100)
    for peer, bound, name in (
        ("openai-sqlite", TARGET_APPEND_VS_OPENAI, "OpenAI SQLiteSession"),
        ("adk-database", TARGET_APPEND_VS_ADK_DB, "ADK DatabaseSessionService"),
    ):
        other = _rate(result, "append", peer, 100)
        if lite is None or not other:
            continue
        ratio = lite / other
        peer_cell = result.cell("append", peer, 100)
        failing = (
            f" ({name} had {peer_cell.failed} failed calls)"
            if peer_cell and peer_cell.failed
            else ""
        )
        targets.append(
            {
                "name": f"durable append >= {bound:g}x {name} at S=100",
                "value": ratio,
                "bound": bound,
                "passed": ratio >= bound,
                "detail": (
                    f"sessionlite {lite:,.0f} ev/s vs {other:,.0f} ev/s = {ratio:.1f}x{failing}"
                ),
            }
        )

    # 2. agent turns at U=100 against the best peer.
    users = 100 if 100 in result.params("turns") else max(result.params("turns"), default=None)
    if users is not None:
        lite_turns = _rate(result, "turns", SESSIONLITE, users)
        peer_rates = {
            key: _rate(result, "turns", key, users)
            for key in result.store_keys("turns")
            if not key.startswith("sessionlite") and key != RAW
        }
        best_key = max(peer_rates, key=lambda k: peer_rates[k] or 0.0, default=None)
        best = peer_rates.get(best_key) if best_key else None
        if lite_turns and best:
            ratio = lite_turns / best
            measured = users == 100
            targets.append(
                {
                    "name": (
                        f"agent turns/s >= {TARGET_TURNS_VS_BEST_PEER:g}x the best peer at U=100"
                    ),
                    "value": ratio,
                    "bound": TARGET_TURNS_VS_BEST_PEER,
                    "passed": ratio >= TARGET_TURNS_VS_BEST_PEER if measured else None,
                    "detail": (
                        f"U={users}: sessionlite {lite_turns:,.0f} turns/s vs best peer "
                        f"{result.label(best_key)} {best:,.0f} turns/s = {ratio:.1f}x"
                        + ("" if measured else " (--quick: U=100 not measured)")
                    ),
                }
            )

    # 3. zero failed calls at S=1000 (sessionlite, both modes); peers that fail there.
    sizes = result.params("append")
    if sizes:
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
        targets.append(
            {
                "name": "zero failed calls at S=1000",
                "value": lite_failed,
                "bound": 0,
                "passed": lite_failed == 0 if top == 1000 else None,
                "detail": (
                    f"S={top}: sessionlite {failed.get(SESSIONLITE, 0)} (durable) + "
                    f"{failed.get(SESSIONLITE_ASYNC, 0)} (async_persist) failed calls; peers "
                    f"failing there: {', '.join(failing_peers) or 'none'}"
                    + ("" if top == 1000 else " (--quick: S=1000 not measured)")
                ),
            }
        )

    # 4. read-recent-20 p50 flat from 10k to 1M events.
    sizes = result.params("read")
    if len(sizes) >= 2:
        small, large = min(sizes), max(sizes)
        growth: dict[str, float] = {}
        for key in result.store_keys("read"):
            a, b = result.cell("read", key, small), result.cell("read", key, large)
            if a and b and a.p50_ms and b.p50_ms:
                growth[key] = b.p50_ms / a.p50_ms
        if SESSIONLITE in growth:
            measured = large == 1_000_000
            others = ", ".join(
                f"{result.label(k)} {g:.2f}x" for k, g in growth.items() if k != SESSIONLITE
            )
            targets.append(
                {
                    "name": f"read-recent-20 p50 growth 10k -> 1M <= {TARGET_READ_GROWTH}x",
                    "value": growth[SESSIONLITE],
                    "bound": TARGET_READ_GROWTH,
                    "passed": growth[SESSIONLITE] <= TARGET_READ_GROWTH if measured else None,
                    "detail": (
                        f"{small:,} -> {large:,} events: sessionlite {growth[SESSIONLITE]:.2f}x; "
                        f"others: {others}" + ("" if measured else " (--quick: 1M not measured)")
                    ),
                }
            )
    elif quick and sizes:
        targets.append(
            {
                "name": f"read-recent-20 p50 growth 10k -> 1M <= {TARGET_READ_GROWTH}x",
                "value": None,
                "bound": TARGET_READ_GROWTH,
                "passed": None,
                "detail": "--quick reads the 10k database only; run the full benchmark",
            }
        )
    return targets


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


WORKLOAD_TITLES = {
    "append": "append: S sessions x E events, S concurrent tasks — events/s (x raw ceiling)",
    "read": "read newest 20 events of a session — p50 / p99 ms (raw p50 / store p50)",
    "turns": (
        "agent turns: U concurrent users, turn = read 20 + append user + append assistant "
        "with state delta — turns/s (x raw ceiling)"
    ),
    "list": f"list one user's sessions, page of {LIST_PAGE} — p50 / p99 ms (raw p50 / store p50)",
}
PARAM_NAMES = {"append": "S", "read": "events", "turns": "U", "list": "sessions"}


def report(result: PeersResult) -> list[str]:
    config = result.config
    lines = [
        "Peers: sessionlite against the stores users would pick instead "
        f"({'quick' if config.quick else 'full'} sizes); * = stopped by the cell's time budget "
        "(rate over what was done), FAIL(n) = n failed calls"
    ]
    for workload in ("append", "read", "turns", "list"):
        params = result.params(workload)
        if not params:
            continue
        latency = workload in ("read", "list")
        lines.append("")
        lines.append("  " + WORKLOAD_TITLES[workload])
        if workload == "append":
            lines.append(
                "    E = "
                + ", ".join(f"{config.append_events[s]} at S={s}" for s in params)
                + f"; ~{APPEND_CHARS}-char text; budget {config.append_cap_s:g} s per cell"
            )
        elif workload == "read":
            lines.append(
                f"    up to {config.reads} timed reads per cell in {LATENCY_ROUNDS} rounds, each "
                f"on a freshly opened store (budget {config.read_cap_s:g} s); 90% of the events "
                "in the session read"
            )
        elif workload == "turns":
            lines.append(
                "    turns per user: "
                + ", ".join(f"{config.turns_per_user[u]} at U={u}" for u in params)
                + f"; each session starts with {TURN_HISTORY} events; budget "
                f"{config.turns_cap_s:g} s per cell"
            )
        else:
            lines.append(
                f"    {SESSIONS_PER_USER} sessions per user; up to {config.list_calls} calls "
                f"(budget {config.list_cap_s:g} s)"
            )
        name = PARAM_NAMES[workload]
        texts = {
            (key, p): cell_text(result, result.cell(workload, key, p), latency=latency)
            for key in result.store_keys(workload)
            for p in params
        }
        width = max(24, *(len(text) + 2 for text in texts.values()))
        header = f"    {'store':<40}" + "".join(f"{f'{name}={p:,}':>{width}}" for p in params)
        lines.append(header)
        for key in result.store_keys(workload):
            row = f"    {result.label(key):<40}"
            for p in params:
                row += f"{texts[key, p]:>{width}}"
            lines.append(row)
    failing = [cell for cell in result.cells if cell.failing]
    lines.append("")
    if failing:
        lines.append("  failed calls (by store, workload and size):")
        for cell in failing:
            lines.append(
                f"    {result.label(cell.store)}, {cell.workload} "
                f"{PARAM_NAMES[cell.workload]}={cell.param:,}: {cell.failed:,} failed of "
                f"{cell.done + cell.failed:,} calls"
            )
            for error, count in sorted(cell.errors.items(), key=lambda kv: -kv[1]):
                lines.append(f"      {count:>7,} x {error}")
    else:
        lines.append("  failed calls: none")
    notes = [(cell, note) for cell in result.cells for note in cell.notes if cell.supported]
    if notes:
        lines.append("  notes:")
        for cell, note in notes:
            lines.append(
                f"    {result.label(cell.store)}, {cell.workload} "
                f"{PARAM_NAMES[cell.workload]}={cell.param:,}: {note}"
            )
    built = [b for b in result.builds if not b.get("cached") and b["kind"] != "turns"]
    if built:
        lines.append(
            "  databases built in this run: "
            + ", ".join(
                f"{b['store']} {b['kind']} {b['size']:,} ({b['build_s']:.1f} s)" for b in built
            )
        )
    for target in result.targets():
        verdict = {True: "PASS", False: "FAIL", None: "n/a "}[target["passed"]]
        lines.append(f"  {verdict}  {target['name']}: {target['detail']}")
    lines.append(f"  peers total {result.total_s:.1f} s")
    return lines
