"""Summaries: the :class:`Summarizer` protocol users implement, and its request."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from .models import Event, Session, Summary

__all__ = ["Summarizer", "SummaryRequest"]


class SummaryRequest(BaseModel):
    """What a summarizer is asked to summarize.

    Attributes:
        session: the session (its state and summaries; ``events`` is left empty — the
            events to summarize are in :attr:`events`).
        branch: the branch being summarized (``""`` = the whole session).
        previous: the branch's current summary, if any.
        events: the events after ``previous.through_sequence`` that match ``branch``,
            oldest first.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    session: Session
    branch: str
    previous: Summary | None
    events: list[Event]


@runtime_checkable
class Summarizer(Protocol):
    """Turns a session's new events (and the previous summary) into a summary text."""

    async def summarize(self, request: SummaryRequest) -> str | None:
        """Return the new summary text, or None for "no summary now"."""
        ...
