"""Group commit: concurrent write calls share one transaction and one commit.

Callers put a request on a queue and wait for their own result. The writer
connection's thread drains that queue: it takes whatever has gathered (up to
``max_batch`` jobs), runs it as a single transaction (see :mod:`.writes`), hands each
caller its result, and goes on while more has gathered meanwhile; then it goes idle
until the next request starts it again. A caller's await returns only after COMMIT.

No task and no event loop drives the writer: callers may be on any loop in any thread
(:mod:`sessionlite.crossloop`), and their results reach each loop with one wake-up per
batch. The queue itself is shared with the PostgreSQL writer
(:mod:`sessionlite.store.group_commit`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import anyio

from ..group_commit import GroupCommitQueue
from .cache_keeper import CacheKeeper
from .connection import ThreadConnection
from .errors import translate
from .queries import Queries
from .writes import Job, execute_batch


class GroupCommitWriter(GroupCommitQueue[Job]):
    """Owns the writer connection's transactions, from any loop in any thread."""

    def __init__(
        self,
        connection: ThreadConnection,
        queries: Queries,
        *,
        path: str,
        max_batch: int,
        keeper: CacheKeeper | None = None,
    ) -> None:
        super().__init__(max_batch=max_batch)
        self._connection = connection
        self._queries = queries
        self._path = path
        self._keeper = keeper
        self._draining = False

    def _wake_locked(self) -> Callable[[], None] | None:
        if self._draining:
            return None
        self._draining = True
        return lambda: self._connection.run_detached(self._drain)

    def _idle_locked(self) -> None:
        self._draining = False
        self._signal.notify_all()

    def _drain(self, conn: sqlite3.Connection) -> None:
        """In the connection's thread: run batches until nothing is pending."""
        while (batch := self._take()) is not None:
            jobs = [job for request in batch for job in request.jobs]
            keeper = self._keeper
            try:
                results = execute_batch(
                    conn, self._queries, jobs, None if keeper is None else keeper.on_begin
                )
            except BaseException as exc:  # never lost in the thread: each caller gets it
                results = [exc] * len(jobs)
            if keeper is not None:
                keeper.committed(conn, jobs, results)
            self._reply(
                batch,
                [translate(r, self._path) if isinstance(r, BaseException) else r for r in results],
            )

    @property
    def busy(self) -> bool:
        """Whether a batch is being written (a commit may be under way)."""
        return self._draining

    async def close(self) -> None:
        """Stop taking jobs; return once every submitted job has its result."""
        with self._signal.lock:
            self._closed = True
        with anyio.CancelScope(shield=True):
            await self._signal.wait_until(lambda: not self._draining)
