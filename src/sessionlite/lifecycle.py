"""The task that hosts the service's task group.

Every background task of a service (the group-commit writer, persist workers, the
cleaner, summary workers) lives in one anyio task group. That group is not entered in
the caller's task: pytest-asyncio runs an async fixture's setup and teardown in
different tasks, and anyio requires a task group to be exited by the task that entered
it. So the group lives in a task of its own, created by :meth:`ServiceRunner.start` and
awaited (never abandoned) by :meth:`ServiceRunner.stop`; any task may open or close the
service.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskGroup

from .errors import ServiceClosedError

logger = logging.getLogger(__name__)


class _State(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    CLOSED = "closed"


class ServiceRunner:
    """Runs ``start(task_group)`` in a hosted task group; ``stop()`` then winds it down.

    Args:
        start: starts the background tasks in the group; returns once they run.
        stop: drains and stops them (runs shielded from cancellation).
    """

    def __init__(
        self,
        start: Callable[[TaskGroup], Awaitable[None]],
        stop: Callable[[], Awaitable[None]],
    ) -> None:
        self._start = start
        self._stop = stop
        self._state = _State.NEW
        self._task: asyncio.Task[None] | None = None
        # Events are made in start(): a service may be built outside any event loop
        # (e.g. at import time, as framework apps do).
        self._ready: anyio.Event | None = None
        self._stop_requested: anyio.Event | None = None
        self._start_error: BaseException | None = None
        self._stop_error: BaseException | None = None

    @property
    def running(self) -> bool:
        return self._state is _State.RUNNING

    async def start(self) -> None:
        if self._state is not _State.NEW:
            raise ServiceClosedError(
                f"the service is {self._state.value}; a SessionService opens once "
                "(create a new one to reopen the database)"
            )
        self._state = _State.STARTING
        self._ready = ready = anyio.Event()
        self._stop_requested = anyio.Event()
        self._task = asyncio.get_running_loop().create_task(
            self._host(), name="sessionlite-service"
        )
        try:
            await ready.wait()
        except BaseException:
            # The opener was cancelled while opening: wind down what was started.
            with anyio.CancelScope(shield=True):
                self._stop_requested.set()
                self._state = _State.CLOSED
                await self._wait_host()
            raise
        if self._start_error is not None:
            self._state = _State.CLOSED
            await self._wait_host()
            raise self._start_error
        self._state = _State.RUNNING

    async def _host(self) -> None:
        assert self._ready is not None
        assert self._stop_requested is not None
        try:
            async with anyio.create_task_group() as task_group:
                try:
                    await self._start(task_group)
                except Exception as exc:
                    self._start_error = exc
                    task_group.cancel_scope.cancel()
                    return
                finally:
                    self._ready.set()
                await self._stop_requested.wait()
                with anyio.CancelScope(shield=True):
                    try:
                        await self._stop()
                    except Exception as exc:
                        self._stop_error = exc
                task_group.cancel_scope.cancel()
        except Exception:  # a background task crashed; calls now fail as closed
            logger.exception("sessionlite background task failed")
            self._state = _State.CLOSED

    async def _wait_host(self) -> None:
        if self._task is not None:
            await asyncio.wait([self._task])

    async def stop(self) -> None:
        """Request the stop and wait for it; re-raises what ``stop`` raised (once)."""
        if self._state is _State.NEW:
            self._state = _State.CLOSED
            return
        self._state = _State.CLOSED
        if self._stop_requested is not None:
            self._stop_requested.set()
        with anyio.CancelScope(shield=True):
            await self._wait_host()
        error, self._stop_error = self._stop_error, None
        if error is not None:
            raise error
