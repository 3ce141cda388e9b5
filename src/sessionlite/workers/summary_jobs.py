"""One summary job: read what is new, ask the summarizer (under a timeout), store it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import anyio

from ..config import Clock
from ..crossloop import KeyedLocks
from ..errors import InvalidInputError
from ..models import Event, Summary
from ..stats import Counters
from ..store.base import EventFilter, EventQuery, SessionKey, Storage
from ..summaries import Summarizer, SummaryRequest
from ..validation import check_no_nul

EventReader = Callable[[SessionKey, EventFilter], AsyncIterator[Event]]
Barrier = Callable[[SessionKey], Awaitable[None]]


class SummaryJobRunner:
    """Runs summary jobs for one service; shared by the workers and ``summarize()``."""

    def __init__(
        self,
        store: Storage,
        summarizer: Summarizer,
        counters: Counters,
        clock: Clock,
        *,
        timeout: timedelta,
        read_events: EventReader,
        barrier: Barrier,
    ) -> None:
        self._store = store
        self._summarizer = summarizer
        self._counters = counters
        self._clock = clock
        self._timeout = timeout
        self._read_events = read_events
        self._barrier = barrier
        # Cross-loop: queued jobs run on the service's loop, ``summarize()`` on the caller's.
        self._locks = KeyedLocks[tuple[SessionKey, str]]()

    async def run(self, key: SessionKey, branch: str, force: bool) -> Summary | None:
        """Summarize the events after the branch's previous summary.

        Returns None (and stores nothing) when the session is gone, when there is
        nothing new and not ``force``, or when the summarizer returns None.

        Raises:
            TimeoutError: the summarizer exceeded ``summary_job_timeout``.
            InvalidInputError: the summarizer returned something other than str/None.
            Exception: whatever the summarizer (or the store) raised.
        """
        try:
            # One job at a time per session and branch: two overlapping jobs would each
            # see a different set of new events, and the slower would win.
            async with self._locks.hold((key, branch)):
                return await self._run(key, branch, force)
        except TimeoutError:
            self._counters.summary_jobs_timed_out += 1
            raise
        except anyio.get_cancelled_exc_class():
            raise
        except Exception:
            self._counters.summary_jobs_failed += 1
            raise

    async def _run(self, key: SessionKey, branch: str, force: bool) -> Summary | None:
        await self._barrier(key)  # async_persist: summarize what was accepted
        session = await self._store.get_session(key, EventQuery(limit=0), now=self._clock())
        if session is None:
            self._skip()
            return None
        previous = session.summaries.get(branch)
        after = None if previous is None else previous.through_sequence
        events = [
            event
            async for event in self._read_events(
                key, EventFilter(after_sequence=after, branch=branch or None)
            )
        ]
        if not events and not force:
            self._skip()
            return None
        request = SummaryRequest(session=session, branch=branch, previous=previous, events=events)
        # Only the summarizer runs under the timeout: the write below must not be cut
        # off half-way.
        with anyio.fail_after(self._timeout.total_seconds()):
            text: object = await self._summarizer.summarize(request)
        if text is None:
            self._skip()
            return None
        if not isinstance(text, str):
            raise InvalidInputError(
                f"the summarizer returned {type(text).__name__}; it must return str or None",
                field="summarizer",
            )
        check_no_nul(text, "the summary text")
        through = events[-1].sequence if events else after
        summary = Summary(
            branch=branch, text=text, through_sequence=through or 0, updated_at=self._clock()
        )
        if not await self._store.put_summary(key, summary, now=self._clock()):
            # The session was deleted while the summarizer ran.
            self._skip()
            return None
        self._counters.summary_jobs_done += 1
        return summary

    def _skip(self) -> None:
        self._counters.summary_jobs_skipped += 1
        return
