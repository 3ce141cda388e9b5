"""Datetimes as integer microseconds since the Unix epoch (how every backend stores time).

Integers compare and index cheaply and are exact for every aware datetime.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

__all__ = ["EPOCH", "from_micros", "to_micros"]

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(value: datetime) -> int:
    """UTC microseconds since the epoch (exact for every aware datetime)."""
    return (value - EPOCH) // _MICROSECOND


def from_micros(value: int) -> datetime:
    """The aware UTC datetime ``value`` microseconds after the epoch."""
    return EPOCH + value * _MICROSECOND
