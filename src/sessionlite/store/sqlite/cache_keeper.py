"""Keeps the read cache in step with the writer's own commits (in the writer's thread).

Around each batch (see :mod:`.writer`): right after ``BEGIN IMMEDIATE`` (the write lock
is held, so nobody else can commit) :meth:`CacheKeeper.on_begin` notes the database's
token and the connection's change count. After the batch, :meth:`CacheKeeper.committed`
reads the token again. If it moved by exactly our own commit (one commit when the batch
changed rows, none otherwise), the batch's writes are applied to the cache and the new
token is trusted; otherwise another commit slipped in right after ours, and the cache
is emptied. Either way it happens under the cache's lock, atomically for readers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Protocol

from ..appends import AppendJob
from ..codec import event_row
from ..hot_cache import HotCache
from ..rules import Appended, trim_through
from .queries import Queries
from .writes import CallJob, Job

__all__ = ["CacheKeeper", "Token"]


class Token(Protocol):
    def read(self) -> bytes | None: ...

    def ours(self, before: bytes, after: bytes, wrote: bool) -> bool:
        """Whether ``after`` differs from ``before`` by our commit only."""
        ...


class CacheKeeper:
    def __init__(self, cache: HotCache, token: Token, queries: Queries) -> None:
        self.cache = cache
        self.token = token
        self._queries = queries
        self._begin_token: bytes | None = None
        self._begin_changes = 0

    def on_begin(self, conn: sqlite3.Connection) -> None:
        self._begin_token = self.token.read()
        self._begin_changes = conn.total_changes

    def committed(
        self, conn: sqlite3.Connection, jobs: Sequence[Job], results: Sequence[Any]
    ) -> None:
        before, self._begin_token = self._begin_token, None
        after = self.token.read()
        wrote = conn.total_changes != self._begin_changes
        ours = before is not None and after is not None and self.token.ours(before, after, wrote)
        if not ours or any(
            isinstance(job, CallJob) and job.cached is None and not isinstance(r, BaseException)
            for job, r in zip(jobs, results, strict=True)
        ):
            self.cache.committed(after, None, expected=before)
            return

        def apply(cache: HotCache) -> None:
            for job, result in zip(jobs, results, strict=True):
                if isinstance(result, BaseException):
                    continue  # its savepoint was rolled back: nothing of it is stored
                if isinstance(job, CallJob):
                    assert job.cached is not None
                    job.cached(cache)
                elif isinstance(result, Appended):
                    self._appended(cache, job, result)

        self.cache.committed(after, apply, expected=before)

    def _appended(self, cache: HotCache, job: AppendJob, result: Appended) -> None:
        events = job.command.events
        first = result.first_sequence
        policy = self._queries.policy
        cache.appended(
            job.command.key,
            [(sequence, *event_row(p.snapshot)) for sequence, p in enumerate(events, first)],
            job.command.delta,
            version=result.version,
            now_us=job.now_us,
            expires_us=policy.expiry(job.now_us, policy.session_ttl_us),
            trim_through=trim_through(first + len(events) - 1, policy.max_stored_events),
        )
