"""A bounded cache of hot session tails, served without a query, and never stale.

What an agent does is a turn: read its session, append to it, read it again. The cache
keeps, per recently used session, what ``get_session`` returns: the session row, its
state, its newest events (as stored rows) and its summaries, plus the app and user state
scopes they merge in. A read it can serve costs no thread hop and no SQL.

**Freshness.** Entries are consistent with one database state, named by a *token*
(SQLite: the wal-index header, which every commit of any process changes; see
:mod:`sessionlite.store.sqlite.wal_token`). A read is served only while the database's
current token is :attr:`HotCache.trusted`; after any commit the cache has not accounted
for, reads go to the database. The store's writer accounts for its own commits: under
the cache's lock it applies each committed write to the entries (an append extends the
tail, anything else drops what it touched) and publishes the new token, or, when another
commit slipped in, empties the cache. Entries offered by a read are kept only if no
commit happened during the read and the token is still the trusted one.

**Independence.** Entries hold stored rows and JSON text, never objects handed out: a
hit decodes fresh objects from them (skipping the checks a row already passed once), so
mutating a returned session never changes what another caller gets.

**Bounds.** At most ``max_bytes`` (an estimate of the entries' memory), least recently
used sessions evicted first; counters in :meth:`HotCache.stats`.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from ..models import Event, Session, trusted_session
from ..state import EncodedDelta
from ..timestamps import from_micros, to_micros
from .base import EventQuery, SessionKey
from .codec import EventRow, SessionRow, event_from_row, loads, scoped_state, summaries_from_rows

__all__ = ["CacheStats", "HotCache", "SessionRows"]

ScopeKey = tuple[str, str, str]  # ("app", app, "") or ("user", app, user)
# The memory estimate, per cached event (its row), calibrated on CPython 3.11 with
# ``python -m benchmarks --only cache``.
_ROW_OVERHEAD = 450
_ENTRY_OVERHEAD = 2_000


class SessionRows(NamedTuple):
    """One session as a read found it: rows and JSON texts, nothing decoded."""

    row: SessionRow
    session_state: dict[str, str]
    app_state: dict[str, str]
    app_expires_us: int | None
    user_state: dict[str, str]
    user_expires_us: int | None
    events: list[EventRow]  # oldest first
    complete: bool  # ``events`` are all of the session's events
    summaries: list[tuple[str, str, int, int]]


@dataclasses.dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    evictions: int
    bytes: int
    sessions: int


@dataclasses.dataclass(frozen=True)
class _Scope:
    """An app or user state scope (a few per cached session; not counted in the bound,
    their number is kept near the sessions', see ``_evict``)."""

    state: dict[str, str]
    expires_us: int | None


@dataclasses.dataclass(frozen=True)
class _Entry:
    """A session's cached form. Never changed in place: writers replace it."""

    row: SessionRow  # pk, app, user, id, agent_id, metadata, created, updated, expires, version
    session_state: dict[str, str]
    events: tuple[EventRow, ...]
    complete: bool
    summaries: tuple[tuple[str, str, int, int], ...]
    plain: set[int]  # sequences of rows known to decode as plain events (shared)
    nbytes: int

    @property
    def version(self) -> int:
        return int(self.row[9])


def _text_bytes(texts: Iterable[str]) -> int:
    return sum(len(t) + 60 for t in texts)


def _event_bytes(rows: Iterable[EventRow]) -> int:
    return sum(len(r[5]) + len(r[1]) + _ROW_OVERHEAD for r in rows)


def _entry(
    row: SessionRow,
    session_state: dict[str, str],
    events: tuple[EventRow, ...],
    complete: bool,
    summaries: tuple[tuple[str, str, int, int], ...],
    plain: set[int],
) -> _Entry:
    nbytes = (
        _ENTRY_OVERHEAD
        + len(row[5])
        + _text_bytes(session_state.values())
        + _text_bytes(session_state)
        + _event_bytes(events)
        + sum(len(s[1]) + 200 for s in summaries)
    )
    return _Entry(row, session_state, events, complete, summaries, plain, nbytes)


class HotCache:
    """See the module docstring. Thread-safe: lookups on any loop, writes in the writer."""

    def __init__(self, *, max_bytes: int, max_events: int) -> None:
        self.max_bytes = max_bytes
        self.max_events = max_events  # per session: longer tails keep their newest
        self._lock = threading.Lock()
        self._entries: collections.OrderedDict[SessionKey, _Entry] = collections.OrderedDict()
        self._scopes: dict[ScopeKey, _Scope] = {}
        self._bytes = 0
        self.trusted: bytes | None = None
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    # -- reads (any thread) ----------------------------------------------------------

    def lookup(
        self, key: SessionKey, query: EventQuery, now_us: int, token: bytes | None
    ) -> Session | None:
        """The session from memory, or None: then read it from the database."""
        with self._lock:
            entry = self._entries.get(key) if token is not None and token == self.trusted else None
            app = user = None
            if entry is not None:
                app = self._scopes.get(("app", key.app_name, ""))
                user = self._scopes.get(("user", key.app_name, key.user_id))
                if app is None or user is None or not _serves(entry, query, now_us):
                    entry = None
                else:
                    self._entries.move_to_end(key)
            if entry is None:
                self.misses += 1
                return None
            self.hits += 1
        assert app is not None
        assert user is not None
        return _build(entry, app, user, query, now_us)

    def offer(
        self,
        key: SessionKey,
        rows: SessionRows,
        token_before: bytes | None,
        token_after: bytes | None,
    ) -> None:
        """Keep what a read found, if it is the trusted state (no commit during it)."""
        if token_before is None or token_before != token_after or self.max_bytes <= 0:
            return
        events = tuple(rows.events[-self.max_events :])
        complete = rows.complete and len(events) == len(rows.events)
        entry = _entry(
            rows.row,
            dict(rows.session_state),
            events,
            complete,
            tuple(rows.summaries),
            set(),
        )
        app = _Scope(rows.app_state, rows.app_expires_us)
        user = _Scope(rows.user_state, rows.user_expires_us)
        with self._lock:
            if token_before != self.trusted:
                return
            self._put(key, entry)
            self._scopes.setdefault(("app", key.app_name, ""), app)
            self._scopes.setdefault(("user", key.app_name, key.user_id), user)
            self._evict()

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                self.hits, self.misses, self.evictions, self._bytes, len(self._entries)
            )

    # -- the writer (its thread), under :meth:`committed` --------------------------------

    def committed(
        self,
        token: bytes | None,
        changes: Callable[[HotCache], None] | None,
        *,
        expected: bytes | None,
    ) -> None:
        """Account for a commit made on state ``expected``: apply ``changes`` (None:
        forget everything) and trust ``token``, atomically for readers. If the cache was
        not at ``expected`` (a commit it did not see came before), it is emptied."""
        with self._lock:
            if changes is None or token is None or expected is None or self.trusted != expected:
                self._clear()
            else:
                changes(self)
            self.trusted = token

    def adopt(self, token: bytes | None) -> None:
        """Forget everything and trust ``token`` (a commit this cache did not see)."""
        with self._lock:
            self._clear()
            self.trusted = token

    # The methods below run inside ``changes`` (the lock is held).

    def appended(
        self,
        key: SessionKey,
        rows: Sequence[EventRow],
        delta: EncodedDelta,
        *,
        version: int,
        now_us: int,
        expires_us: int | None,
        trim_through: int | None,
    ) -> None:
        """A committed append: extend the session's tail (if it is the version before)."""
        entry = self._entries.get(key)
        if delta.app:
            self._scopes.pop(("app", key.app_name, ""), None)
        if delta.user:
            self._scopes.pop(("user", key.app_name, key.user_id), None)
        if entry is None:
            return
        if entry.version != version - 1:
            self._drop(key)
            return
        joined = entry.events + tuple(rows)
        events = joined
        complete = entry.complete
        if trim_through is not None:
            events = tuple(r for r in events if r[0] > trim_through)
        if len(events) > self.max_events:
            events = events[-self.max_events :]
            complete = False
        # Both trims remove the oldest rows only.
        dropped = joined[: len(joined) - len(events)]
        nbytes = entry.nbytes + _event_bytes(rows) - _event_bytes(dropped)
        state = entry.session_state
        if delta.session:
            state = {**state, **dict(delta.session)}
            nbytes += _text_bytes(v for _, v in delta.session) + _text_bytes(
                k for k, _ in delta.session
            )
        r = entry.row
        row = (r[0], r[1], r[2], r[3], r[4], r[5], r[6], now_us, expires_us, version)
        self._put(
            key,
            _Entry(row, state, events, complete, entry.summaries, entry.plain, nbytes),
        )

    def expiry_refreshed(self, key: SessionKey, expires_us: int) -> None:
        entry = self._entries.get(key)
        if entry is not None and entry.row[8] is not None:
            r = entry.row
            row = (r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], expires_us, r[9])
            self._put(key, dataclasses.replace(entry, row=row))

    def drop(self, key: SessionKey) -> None:
        self._drop(key)

    def drop_scope(self, kind: str, app_name: str, user_id: str = "") -> None:
        self._scopes.pop((kind, app_name, user_id), None)

    # -- internals (lock held) ---------------------------------------------------------

    def _put(self, key: SessionKey, entry: _Entry) -> None:
        old = self._entries.get(key)
        if old is not None:
            self._bytes -= old.nbytes
        self._entries[key] = entry
        self._entries.move_to_end(key)
        self._bytes += entry.nbytes

    def _drop(self, key: SessionKey) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.nbytes

    def _evict(self) -> None:
        while self._bytes > self.max_bytes and self._entries:
            _, old = self._entries.popitem(last=False)
            self._bytes -= old.nbytes
            self.evictions += 1
        if len(self._scopes) > 4 * len(self._entries) + 64:
            live = {("app", k.app_name, "") for k in self._entries}
            live |= {("user", k.app_name, k.user_id) for k in self._entries}
            self._scopes = {k: v for k, v in self._scopes.items() if k in live}

    def _clear(self) -> None:
        self._entries.clear()
        self._scopes.clear()
        self._bytes = 0


def _serves(entry: _Entry, query: EventQuery, now_us: int) -> bool:
    """Whether the entry answers ``query`` exactly (and the session is still live)."""
    expires = entry.row[8]
    if expires is not None and expires <= now_us:
        return False
    if query.after is not None or query.branch:
        return entry.complete
    if query.limit is None:
        return entry.complete
    return entry.complete or query.limit <= len(entry.events)


# -- building fresh objects ------------------------------------------------------------


def _live_rows(scope: _Scope, now_us: int) -> Iterable[tuple[str, str]]:
    """A state scope's (key, JSON text) rows; none once it has expired."""
    if scope.expires_us is not None and scope.expires_us <= now_us:
        return ()
    return scope.state.items()


def _event(entry: _Entry, row: EventRow) -> Event:
    """A fresh event for a cached row (decoded again: nothing is shared with the objects
    handed out before). A row that passed the codec's checks once skips them."""
    sequence = row[0]
    if sequence in entry.plain:
        return event_from_row(row, known_plain=True)
    event = event_from_row(row)  # validated like any read (a damaged row raises)
    if not (event.tool_calls or event.tool_results or event.usage is not None):
        entry.plain.add(sequence)
    return event


def _matches(row: EventRow, query: EventQuery, after_us: int | None) -> bool:
    if after_us is not None and row[3] < after_us:
        return False
    branch = query.branch
    if branch:
        return row[4] == branch or row[4].startswith(branch + "/")
    return True


def _build(entry: _Entry, app: _Scope, user: _Scope, query: EventQuery, now_us: int) -> Session:
    rows: Sequence[EventRow] = entry.events
    if query.after is not None or query.branch:
        after_us = None if query.after is None else to_micros(query.after)
        rows = [r for r in rows if _matches(r, query, after_us)]
    if query.limit is not None:
        rows = rows[max(0, len(rows) - query.limit) :] if query.limit else ()
    _pk, app_name, user_id, session_id, agent_id, metadata, created, updated, expires, version = (
        entry.row
    )
    return trusted_session(
        {
            "app_name": app_name,
            "user_id": user_id,
            "id": session_id,
            "agent_id": agent_id,
            "metadata": loads(metadata, f"metadata of session {session_id!r}"),
            "state": scoped_state(
                entry.session_state.items(),
                _live_rows(app, now_us),
                _live_rows(user, now_us),
                session_id=session_id,
                app_name=app_name,
                user_id=user_id,
            ),
            "events": [_event(entry, row) for row in rows],
            "summaries": summaries_from_rows(entry.summaries),
            "created_at": from_micros(created),
            "updated_at": from_micros(updated),
            "expires_at": None if expires is None else from_micros(expires),
            "version": version,
        }
    )
