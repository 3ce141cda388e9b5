"""Test doubles for code that uses sessionlite: a manual clock and a fake summarizer.

Example::

    clock = ManualClock()
    summarizer = FakeSummarizer()
    async with SessionService(":memory:", clock=clock, summarizer=summarizer) as service:
        ...
        clock.advance(minutes=5)  # TTLs see five minutes pass, instantly
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio

from .crossloop import CrossLoopEvent
from .errors import InvalidInputError
from .summaries import SummaryRequest

__all__ = ["CrossLoopEvent", "FakeSummarizer", "ManualClock"]

DEFAULT_START = datetime(2026, 1, 1, tzinfo=timezone.utc)


class ManualClock:
    """A clock that only moves when told to; pass it as ``SessionService(clock=...)``.

    Each call returns the current time; :meth:`advance` and :meth:`set` move it.
    """

    def __init__(self, start: datetime = DEFAULT_START) -> None:
        self._now = _aware(start)

    def __call__(self) -> datetime:
        return self._now

    @property
    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta | float | None = None, **kwargs: float) -> datetime:
        """Move forward by ``delta`` (a timedelta or seconds) or ``timedelta(**kwargs)``."""
        step = timedelta(**kwargs) if delta is None else delta
        if not isinstance(step, timedelta):
            step = timedelta(seconds=step)
        if step < timedelta(0):
            raise InvalidInputError("a ManualClock only moves forward", field="delta")
        self._now += step
        return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (which must not be in the clock's past)."""
        when = _aware(when)
        if when < self._now:
            raise InvalidInputError("a ManualClock only moves forward", field="when")
        self._now = when


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise InvalidInputError("ManualClock needs a timezone-aware datetime", field="start")
    return value.astimezone(timezone.utc)


_UNSET: Any = object()


class FakeSummarizer:
    """A :class:`~sessionlite.Summarizer` for tests: deterministic, observable, steerable.

    By default it returns ``"<previous text> + N event(s): <authors>"``. It records every
    request in :attr:`requests`.

    Args:
        error: raise this from every call.
        result: return this instead of the default text (may be None, or garbage to
            test a misbehaving summarizer).
        hang: never return (until cancelled) — to exercise ``summary_job_timeout``.

    :meth:`block` makes calls wait until :meth:`release` (optionally only for some
    session ids), so tests control exactly when a job is in flight; :attr:`entered`
    is set whenever a call has started.
    """

    def __init__(
        self, *, error: BaseException | None = None, result: Any = _UNSET, hang: bool = False
    ) -> None:
        self.error = error
        self.result = result
        self.hang = hang
        self.requests: list[SummaryRequest] = []
        # Cross-loop events: queued jobs run on the service's own loop, in its thread,
        # while the test waits on its own loop.
        self._entered: CrossLoopEvent | None = None
        self._gate: CrossLoopEvent | None = None
        self._blocked: set[str] | None = None

    @property
    def entered(self) -> CrossLoopEvent:
        """Set whenever a call has started (replace it to wait for the next call)."""
        if self._entered is None:
            self._entered = CrossLoopEvent()
        return self._entered

    @entered.setter
    def entered(self, event: CrossLoopEvent) -> None:
        self._entered = event

    @property
    def calls(self) -> int:
        return len(self.requests)

    def block(self, session_ids: Iterable[str] | None = None) -> None:
        """Make calls wait until :meth:`release` (all calls, or these sessions' only)."""
        self._gate = CrossLoopEvent()
        self._blocked = None if session_ids is None else set(session_ids)

    def release(self) -> None:
        if self._gate is not None:
            self._gate.set()
        self._gate = None

    async def summarize(self, request: SummaryRequest) -> Any:
        self.requests.append(request)
        self.entered.set()
        gate = self._gate
        if gate is not None and (self._blocked is None or request.session.id in self._blocked):
            await gate.wait()
        if self.hang:
            await anyio.sleep_forever()
        if self.error is not None:
            raise self.error
        if self.result is not _UNSET:
            return self.result
        authors = ", ".join(event.author for event in request.events)
        previous = request.previous.text + " + " if request.previous else ""
        return f"{previous}{len(request.events)} event(s): {authors}"
