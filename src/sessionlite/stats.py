"""Observability: the frozen snapshots users read, and the counters behind them."""

from __future__ import annotations

import dataclasses

from pydantic import BaseModel, ConfigDict

__all__ = ["CleanupReport", "Counters", "ServiceStats"]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class CleanupReport(BaseModel):
    """What one cleaner pass (:meth:`SessionService.run_cleanup`) did."""

    model_config = _FROZEN

    ran: bool = False
    """False when there was nothing to clean (the pass only looked)."""
    expired_sessions: int = 0
    """Sessions past their TTL, now deleted (marked, with ``soft_delete``)."""
    purged_sessions: int = 0
    """Deleted sessions removed from disk (after ``soft_delete_retention``)."""
    deleted_events: int = 0
    expired_app_states: int = 0
    expired_user_states: int = 0
    deleted_state_keys: int = 0
    transactions: int = 0
    """Small write transactions the pass used."""


class ServiceStats(BaseModel):
    """A frozen snapshot of a service's counters and queue depths (``service.stats()``)."""

    model_config = _FROZEN

    events_accepted: int
    """Events taken by append_event(s) (stored, or queued with ``async_persist``)."""
    events_persisted: int
    """Events committed to the database."""
    persist_failures: int
    """Events a background write could not store (reported by flush/aclose)."""
    persist_retries: int
    """Background write batches retried after a transient error (a lock)."""
    persist_queue_depth: int
    """Append calls accepted but not yet written (``async_persist``; one per call)."""
    write_transactions: int
    """Transactions committed by the group-commit writer."""
    write_calls: int
    """Write calls those transactions carried."""
    mean_batch_size: float
    """write_calls / write_transactions: how much group commit grouped."""
    summary_jobs_queued: int
    summary_jobs_done: int
    summary_jobs_skipped: int
    """Jobs with nothing to summarize, or whose summarizer returned None."""
    summary_jobs_timed_out: int
    summary_jobs_failed: int
    summary_jobs_coalesced: int
    """Requests absorbed by a job already queued for the same session and branch."""
    summary_jobs_rejected: int
    summary_jobs_inline: int
    """Jobs run in the caller because the queue was full (``summary_queue_full="inline"``)."""
    summary_queue_depth: int
    cleanup_runs: int
    """Cleaner passes that found work."""
    cleanup_expired_sessions: int
    cleanup_purged_sessions: int
    cleanup_deleted_events: int
    cleanup_expired_state_scopes: int
    read_cache_hits: int = 0
    """``get_session`` calls served from the read cache (no query)."""
    read_cache_misses: int = 0
    """``get_session`` calls that read the database (the cache then keeps the result)."""
    read_cache_evictions: int = 0
    """Sessions dropped from the cache to stay within ``read_cache_size``."""
    read_cache_bytes: int = 0
    """Estimated memory held by the cache (bounded by ``read_cache_size``)."""
    read_cache_sessions: int = 0
    """Sessions in the cache."""


@dataclasses.dataclass
class Counters:
    """Mutable counters shared by the service and its workers (single event loop)."""

    events_accepted: int = 0
    events_persisted: int = 0
    persist_failures: int = 0
    persist_retries: int = 0
    summary_jobs_queued: int = 0
    summary_jobs_done: int = 0
    summary_jobs_skipped: int = 0
    summary_jobs_timed_out: int = 0
    summary_jobs_failed: int = 0
    summary_jobs_coalesced: int = 0
    summary_jobs_rejected: int = 0
    summary_jobs_inline: int = 0
    cleanup_runs: int = 0
    cleanup_expired_sessions: int = 0
    cleanup_purged_sessions: int = 0
    cleanup_deleted_events: int = 0
    cleanup_expired_state_scopes: int = 0

    def add_cleanup(self, report: CleanupReport) -> None:
        if report.ran:
            self.cleanup_runs += 1
        self.cleanup_expired_sessions += report.expired_sessions
        self.cleanup_purged_sessions += report.purged_sessions
        self.cleanup_deleted_events += report.deleted_events
        self.cleanup_expired_state_scopes += report.expired_app_states + report.expired_user_states
