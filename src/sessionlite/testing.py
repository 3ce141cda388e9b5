"""Test doubles for code that uses sessionlite: a manual clock (more in later releases).

Example::

    clock = ManualClock()
    async with SessionService(":memory:", clock=clock) as service:
        ...
        clock.advance(minutes=5)
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from .errors import InvalidInputError

__all__ = ["ManualClock"]

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
