"""The service's own event loop, in a thread of its own, and what happens at exit.

Every background task of a service (persist workers, the cleaner, summary workers)
lives in one anyio task group. That group runs on a private event loop in a daemon
thread started by :meth:`ServiceRunner.start`, not on the caller's loop, because a
service is awaited from any loop in any thread: FastAPI's long-lived loop, a fresh
``asyncio.run`` per step, ADK's sync runner (a new loop in a new thread per call),
OpenAI's ``Runner.run_sync``. When one of those loops ends it cancels its tasks and
closes; the service's work must not be among them. Calls themselves never run here:
the storage paths are loop-free (results reach each caller's loop through
:mod:`sessionlite.crossloop`), so the common single-loop case pays no extra hop.

Exit and garbage collection: the threads are daemon threads, so an unclosed service
never keeps the interpreter alive. An exit hook closes every service still open
(draining accepted ``async_persist`` events, bounded by ``close_timeout``) and warns
(``ResourceWarning``); a service garbage-collected open is closed the same way in the
background. What could not be written is reported once, on the ``sessionlite`` logger
and stderr, with the event ids. After ``fork`` the child's copies refuse every call.
"""

from __future__ import annotations

import asyncio
import atexit
import enum
import logging
import os
import sys
import threading
import warnings
import weakref
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskGroup

from .crossloop import Signal
from .errors import PersistenceError, ServiceClosedError

logger = logging.getLogger("sessionlite")

EXIT_GRACE = 5.0  # seconds an exit-time close may take beyond close_timeout


class _State(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    CLOSED = "closed"
    FORKED = "forked"


class ServiceRunner:
    """Runs ``start(task_group)`` on the service's own loop; ``stop()`` winds it down.

    Args:
        start: starts the background tasks in the group; returns once they run.
        stop: drains and stops them (runs shielded from cancellation).
        name: the database, for warnings and reports.
        exit_timeout: how long an exit-time close may take, in seconds.
    """

    def __init__(
        self,
        start: Callable[[TaskGroup], Awaitable[None]],
        stop: Callable[[], Awaitable[None]],
        *,
        name: str,
        exit_timeout: float,
    ) -> None:
        self._start = start
        self._stop = stop
        self.name = name
        self._exit_timeout = exit_timeout
        self._state = _State.NEW
        self._signal = Signal(threading.Lock())
        self._opened = False  # start() ran to its end (well or not)
        self._finished = threading.Event()  # the service's loop has ended
        self._loop_ready = threading.Event()  # its loop runs and can be asked to stop
        self._stop_wanted = False
        self._stop_claimed = False  # a caller of stop() will see the stop's error
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._start_error: BaseException | None = None
        self._stop_error: BaseException | None = None
        self._pid = os.getpid()

    @property
    def running(self) -> bool:
        return self._state is _State.RUNNING

    @property
    def forked(self) -> bool:
        return self._state is _State.FORKED

    @property
    def needs_close(self) -> bool:
        """Open (or opening) in this process and no close asked for yet."""
        return self._state in (_State.STARTING, _State.RUNNING) and not self._stop_wanted

    # -- opening --------------------------------------------------------------------

    async def start(self) -> None:
        with self._signal.lock:
            if self._state is not _State.NEW:
                raise ServiceClosedError(
                    f"the service is {self._state.value}; a SessionService opens once "
                    "(create a new one to reopen the database)"
                )
            self._state = _State.STARTING
        self._thread = threading.Thread(
            target=self._main, name=f"sessionlite {self.name}", daemon=True
        )
        _live.add(self)
        self._thread.start()
        try:
            await self._signal.wait_until(lambda: self._opened)
        except BaseException:
            # The opener was cancelled while opening: wind down what was started.
            with anyio.CancelScope(shield=True):
                await self.stop()
            raise
        if self._start_error is not None:
            self._state = _State.CLOSED
            with anyio.CancelScope(shield=True):
                await self._signal.wait_until(self._finished.is_set)
            raise self._start_error

    @property
    def opening(self) -> bool:
        return self._state is _State.STARTING

    async def wait_started(self) -> None:
        """Wait until a start in progress (by another caller) is over."""
        await self._signal.wait_until(lambda: self._opened or self._finished.is_set())

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._host())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
            with self._signal.lock:
                self._finished.set()
                self._signal.notify_all()
            _live.discard(self)
            if not self._stop_claimed and self._stop_error is not None:
                _report_unwritten(self.name, self._stop_error)

    async def _host(self) -> None:
        self._stop_event = asyncio.Event()
        self._loop_ready.set()
        try:
            async with anyio.create_task_group() as task_group:
                try:
                    await self._start(task_group)
                except Exception as exc:
                    self._start_error = exc
                    task_group.cancel_scope.cancel()
                    return
                finally:
                    with self._signal.lock:
                        if self._start_error is None and self._state is _State.STARTING:
                            self._state = _State.RUNNING
                        self._opened = True
                        self._signal.notify_all()
                await self._stop_event.wait()
                with anyio.CancelScope(shield=True):
                    try:
                        await self._stop()
                    except Exception as exc:
                        self._stop_error = exc
                task_group.cancel_scope.cancel()
        except Exception:  # a background task crashed; calls now fail as closed
            logger.exception("sessionlite background task failed")
            self._state = _State.CLOSED

    # -- closing --------------------------------------------------------------------

    def _begin_stop(self, *, claimed: bool) -> bool:
        """Mark the service closed and ask its loop to stop; False if nothing runs."""
        if self._thread is threading.current_thread():
            raise ServiceClosedError(
                "a SessionService cannot be closed from its own background tasks "
                "(e.g. a summarizer): it would wait for itself"
            )
        with self._signal.lock:
            if self._state is _State.FORKED:
                return False
            if self._state is _State.NEW:
                self._state = _State.CLOSED
                return False
            self._state = _State.CLOSED
            self._stop_claimed = self._stop_claimed or claimed
            first, self._stop_wanted = not self._stop_wanted, True
        if first:
            self._request_stop()
        return True

    def _request_stop(self) -> None:
        if not self._loop_ready.is_set():
            # Still starting: stop as soon as the service's loop can be asked to.
            threading.Thread(target=self._stop_when_started, daemon=True).start()
            return
        loop, event = self._loop, self._stop_event
        # Both are set before _loop_ready.
        assert loop is not None
        assert event is not None
        try:
            loop.call_soon_threadsafe(event.set)
        except RuntimeError:  # its loop already ended
            pass

    def _stop_when_started(self) -> None:
        self._loop_ready.wait()
        self._request_stop()

    async def stop(self) -> None:
        """Request the stop and wait for it; re-raises what ``stop`` raised (once)."""
        if not self._begin_stop(claimed=True):
            return
        with anyio.CancelScope(shield=True):
            await self._signal.wait_until(self._finished.is_set)
        self._raise_stop_error()

    def stop_blocking(self, timeout: float | None = None) -> None:
        """:meth:`stop` for synchronous code (any thread but the service's own)."""
        if not self._begin_stop(claimed=True):
            return
        if not self._finished.wait(timeout):
            raise ServiceClosedError(
                f"closing {self.name} took longer than {timeout} s; it goes on in the background"
            )
        self._raise_stop_error()

    def _raise_stop_error(self) -> None:
        error, self._stop_error = self._stop_error, None
        if error is not None:
            raise error

    def close_unclaimed(self) -> None:
        """Close without a caller to tell (garbage collection): report what fails."""
        self._begin_stop(claimed=False)

    def close_at_exit(self) -> None:
        """The exit hook's close: warn, drain (bounded), report what was not written."""
        if os.getpid() != self._pid or not self._begin_stop(claimed=True):
            return
        if not self._finished.wait(self._exit_timeout + EXIT_GRACE):
            _report(
                f"sessionlite: {self.name} was still closing after "
                f"{self._exit_timeout + EXIT_GRACE:.0f} s at interpreter exit; events "
                "accepted with async_persist and not yet written may be lost. "
                "Call `await service.aclose()` before the program ends."
            )
            return
        error, self._stop_error = self._stop_error, None
        if error is not None:
            _report_unwritten(self.name, error)

    def forget_after_fork(self) -> None:
        """In a forked child: this copy refuses every call and never touches the parent's
        connections (their threads did not survive the fork)."""
        self._state = _State.FORKED
        self._finished.set()


_live: weakref.WeakSet[ServiceRunner] = weakref.WeakSet()


def _close_all_at_exit() -> None:
    for runner in list(_live):
        if runner.needs_close:
            warnings.warn(
                f"SessionService({runner.name!r}) was never closed; closing it at interpreter "
                "exit. Use `async with SessionService(...)` or `await service.aclose()`.",
                ResourceWarning,
                stacklevel=1,
            )
        runner.close_at_exit()


def _forget_all_after_fork() -> None:
    for runner in list(_live):
        runner.forget_after_fork()
    _live.clear()


atexit.register(_close_all_at_exit)
if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_forget_all_after_fork)


def _report(message: str) -> None:
    # Without a configured handler, logging's last resort already prints to stderr.
    to_stderr = logger.hasHandlers()
    logger.error("%s", message)
    if to_stderr:
        try:
            print(message, file=sys.stderr, flush=True)
        except (OSError, ValueError):  # stderr closed at exit: the log line must do
            pass


def _report_unwritten(name: str, error: BaseException) -> None:
    """One report for everything a close without a waiting caller could not store."""
    if isinstance(error, PersistenceError):
        ids = list(error.event_ids)
        _report(
            f"sessionlite: {len(ids)} event(s) accepted with async_persist were NOT stored "
            f"in {name} because the service was not closed before its program or event "
            f"loop ended (cause: {error}). Event ids: {', '.join(ids)}. To avoid this, "
            "`await service.flush()` or `await service.aclose()` before the end."
        )
    else:
        _report(f"sessionlite: closing {name} failed: {type(error).__name__}: {error}")
