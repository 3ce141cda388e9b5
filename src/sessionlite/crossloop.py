"""Waiting across event loops and threads.

A service is awaited from any event loop in any thread (FastAPI's loop, a fresh
``asyncio.run`` per step, ADK's sync runner thread, several threads at once), while its
background tasks run on the service's own loop in a thread of its own
(:mod:`sessionlite.lifecycle`). asyncio's primitives belong to one loop and are not
thread-safe, so every wait here is a future on the *waiter's* loop, completed through
that loop's ``call_soon_threadsafe`` (directly when the completing thread runs that loop).
A waiter whose loop has closed is simply forgotten: nobody is left to tell.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

from .errors import ServiceClosedError

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

__all__ = [
    "CrossLoopEvent",
    "CrossLoopLock",
    "CrossLoopQueue",
    "KeyedLocks",
    "Signal",
    "complete",
    "complete_many",
]


def _set_result(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():  # a waiter cancelled meanwhile has its future cancelled
        future.set_result(result)


def _set_results(pairs: Iterable[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, result in pairs:
        if not future.done():
            future.set_result(result)


def complete(future: asyncio.Future[Any], result: Any = None) -> None:
    """Give ``future`` its result from any thread (exceptions travel as results)."""
    loop = future.get_loop()
    if asyncio._get_running_loop() is loop:
        _set_result(future, result)
        return
    try:
        loop.call_soon_threadsafe(_set_result, future, result)
    except RuntimeError:  # the waiter's loop is closed: nobody waits any more
        pass


def complete_many(pairs: Iterable[tuple[asyncio.Future[Any], Any]]) -> None:
    """Complete many futures with one wake-up per loop (a batch's callers)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
    for future, result in pairs:
        by_loop.setdefault(future.get_loop(), []).append((future, result))
    running = asyncio._get_running_loop()
    for loop, group in by_loop.items():
        if loop is running:
            _set_results(group)
            continue
        try:
            loop.call_soon_threadsafe(_set_results, group)
        except RuntimeError:
            pass


class Signal:
    """Tasks on any loop wait for a condition over state guarded by ``lock``.

    Whoever changes that state calls :meth:`notify_all` with the lock held; waiters
    re-check their predicate under the lock, so no wake-up is lost between a check and
    the wait.
    """

    def __init__(self, lock: threading.Lock) -> None:
        self.lock = lock
        self._waiters: list[asyncio.Future[None]] = []

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` (called with the lock held) is true."""
        while True:
            with self.lock:
                if predicate():
                    return
                future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._waiters.append(future)
            try:
                await future
            except BaseException:
                with self.lock:
                    if future in self._waiters:
                        self._waiters.remove(future)
                raise

    def notify_all(self) -> None:
        """Wake every waiter to re-check (call with the lock held)."""
        waiters, self._waiters = self._waiters, []
        if waiters:
            complete_many((future, None) for future in waiters)


class CrossLoopLock:
    """A mutual-exclusion lock whose holders may run on different loops."""

    def __init__(self) -> None:
        self._signal = Signal(threading.Lock())
        self._held = False

    def _take(self) -> bool:
        if self._held:
            return False
        self._held = True
        return True

    async def __aenter__(self) -> None:
        await self._signal.wait_until(self._take)

    async def __aexit__(self, *exc_info: object) -> None:
        with self._signal.lock:
            self._held = False
            self._signal.notify_all()


class CrossLoopQueue(Generic[T]):
    """A bounded FIFO: any thread puts, tasks of one loop take batches.

    Args:
        maxsize: items held at most; :meth:`put` waits for room, :meth:`put_nowait`
            says whether there was some.
        lock: the lock guarding the queue (share one to keep other state in step).
    """

    def __init__(self, maxsize: int, lock: threading.Lock | None = None) -> None:
        self.maxsize = maxsize
        self.signal = Signal(lock or threading.Lock())
        self._items: collections.deque[T] = collections.deque()
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ServiceClosedError("the service is closed; nothing was accepted")

    def put_nowait(self, item: T) -> bool:
        """Queue ``item`` if there is room; False when full."""
        with self.signal.lock:
            return self.put_locked(item)

    def put_locked(self, item: T) -> bool:
        """:meth:`put_nowait` for a caller that holds the queue's lock."""
        self._check_open()
        if len(self._items) >= self.maxsize:
            return False
        self._items.append(item)
        self.signal.notify_all()
        return True

    async def put(self, item: T) -> None:
        """Queue ``item``, waiting while the queue is full (backpressure)."""
        await self.signal.wait_until(lambda: self.put_locked(item))

    async def get_batch(self, limit: int) -> list[T]:
        """Up to ``limit`` items, waiting for one; ``[]`` once closed and empty."""
        batch: list[T] = []

        def ready() -> bool:
            items = self._items
            if items:
                batch.extend(items.popleft() for _ in range(min(limit, len(items))))
                self.signal.notify_all()  # room for waiting producers
                return True
            return self._closed

        await self.signal.wait_until(ready)
        return batch

    def close(self) -> None:
        """Refuse new items; consumers take what is queued, then get ``[]``."""
        with self.signal.lock:
            self._closed = True
            self.signal.notify_all()

    def take_all(self) -> list[T]:
        """Remove and return everything still queued."""
        with self.signal.lock:
            items = list(self._items)
            self._items.clear()
            self.signal.notify_all()
        return items


class CrossLoopEvent:
    """``anyio.Event`` for any loop in any thread: set anywhere, awaited anywhere."""

    def __init__(self) -> None:
        self._signal = Signal(threading.Lock())
        self._set = False

    def set(self) -> None:
        with self._signal.lock:
            self._set = True
            self._signal.notify_all()

    def is_set(self) -> bool:
        return self._set

    async def wait(self) -> None:
        await self._signal.wait_until(self.is_set)


class KeyedLocks(Generic[K]):
    """One :class:`CrossLoopLock` per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[K, tuple[CrossLoopLock, list[int]]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @contextlib.asynccontextmanager
    async def hold(self, key: K) -> AsyncIterator[None]:
        with self._guard:
            lock, users = self._locks.setdefault(key, (CrossLoopLock(), [0]))
            users[0] += 1
        try:
            async with lock:
                yield
        finally:
            with self._guard:
                users[0] -= 1
                if not users[0]:
                    del self._locks[key]
