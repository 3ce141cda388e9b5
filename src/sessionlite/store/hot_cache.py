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

**Independence.** Entries never hold objects handed out. An event is kept as its stored
row, and from its first hit on also as its decoded fields: immutable values (strings,
numbers, datetimes) are shared by every copy, containers are copied for each hit (small
flat ones shallowly, nested or large ones parsed again from their JSON). So a hit costs
a dict copy per event, not a decode, and mutating a returned session never changes what
another caller gets.

**Bounds.** At most ``max_bytes`` (an estimate of the entries' memory), least recently
used sessions evicted first; counters in :meth:`HotCache.stats`.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from ..errors import InvalidInputError
from ..models import Event, Session, trusted_event, trusted_session, trusted_usage
from ..state import EncodedDelta
from ..timestamps import from_micros, to_micros
from .base import EventQuery, SessionKey
from .codec import (
    EventRow,
    SessionRow,
    dumps,
    event_from_row,
    loads,
    parse_json,
    plain_fields,
    scoped_state,
    summaries_from_rows,
)

__all__ = ["CacheStats", "HotCache", "SessionRows"]

ScopeKey = tuple[str, str, str]  # ("app", app, "") or ("user", app, user)
# The memory estimate, per cached event as served (its row, and its decoded fields: a
# second copy of the body's text, a 16-key dict, small containers), calibrated on
# CPython 3.11 with ``python -m benchmarks --only cache``.
_EVENT_OVERHEAD = 1_350
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


class _CachedEvent:
    """One cached event: its stored row, and once first served its decoded fields.

    Shared by the entries of a session's successive versions, by later reads of the same
    row (see :meth:`HotCache.offer`) and by every thread that reads them; decoding sets
    the fields once, and a racing second decode sets equal ones."""

    __slots__ = ("_copy", "_fields", "_set", "_validate", "nbytes", "row")

    def __init__(self, row: EventRow) -> None:
        self.row = row
        body = row[5]
        # Decoded small containers (see _flat) cost more than their text: a few bytes
        # per item more, counted by the body's separators (at most those of 3 x 32).
        items = min(body.count(",") + body.count(":"), 200)
        self.nbytes = 2 * len(body) + len(row[1]) + _EVENT_OVERHEAD + 6 * items
        self._fields: dict[str, Any] | None = None
        self._set: frozenset[str] = frozenset()
        # Fields holding containers, each with its JSON text if nested (None if flat).
        self._copy: tuple[tuple[str, str | None], ...] = ()
        self._validate = False  # not a plain event: every hit validates the row

    def event(self) -> Event:
        """A fresh event: nothing mutable is shared with any other."""
        fields = self._fields
        if fields is None:
            return event_from_row(self.row) if self._validate else self._decode()
        fields = fields.copy()
        fields["tool_calls"] = []
        fields["tool_results"] = []
        for name, text in self._copy:
            fields[name] = fields[name].copy() if text is None else parse_json(text)
        usage = fields["usage"]
        if usage is not None:  # counts only (ints): a shallow copy is a full one
            fields["usage"] = trusted_usage(usage.__dict__.copy(), set(usage.model_fields_set))
        return trusted_event(fields, set(self._set))

    def _decode(self) -> Event:
        decoded = plain_fields(self.row)  # a damaged row raises, like any read
        if decoded is None:  # not plain (tool calls or results): validated at every hit
            self._validate = True
            return event_from_row(self.row)
        fields, fields_set = decoded
        try:
            self._copy = _copy_plan(fields)
        except InvalidInputError:  # e.g. a lone surrogate someone else stored: decode it
            self._validate = True  # at every hit, as an uncached read would
            return event_from_row(self.row)
        fields["tool_calls"] = fields["tool_results"] = None  # hits make fresh lists
        self._set = _SHAPES.setdefault(fields_set, fields_set)
        self._fields = fields  # last: the fast path reads the two above once it is set
        return self.event()


_FLAT_ITEMS = 32
# Plain-event fields that can hold a container (the tool lists are always empty there).
_CONTAINER_FIELDS = ("content", "state_delta", "metadata")
# Field-name sets and copy plans shared by the cached events that have them (a handful).
_SHAPES: dict[Any, Any] = {}


def _copy_plan(fields: dict[str, Any]) -> tuple[tuple[str, str | None], ...]:
    """How a hit copies the containers among ``fields``: shallowly if flat, else from
    their JSON text (then ``fields`` drops the decoded value, which hits never use).
    :class:`InvalidInputError` if a nested value does not encode (a damaged row)."""
    plan: tuple[tuple[str, str | None], ...] = ()
    nested = False
    for name in _CONTAINER_FIELDS:
        value = fields[name]
        kind = type(value)
        if kind is dict or kind is list:
            if _flat(value):
                plan += ((name, None),)
            else:
                plan += ((name, dumps(value)),)
                fields[name] = None
                nested = True
    return plan if nested else _SHAPES.setdefault(plan, plan)


def _flat(value: dict[str, Any] | list[Any]) -> bool:
    """A small container whose items are all immutable (a shallow copy is a full copy).
    Larger ones are kept as text: their decoded items would cost far more memory than
    the estimate counts (tens of bytes per item), for little gain over parsing."""
    if len(value) > _FLAT_ITEMS:
        return False
    for item in value.values() if type(value) is dict else value:
        kind = type(item)
        if kind is dict or kind is list:
            return False
    return True


def _reusing(old: _Entry | None, rows: Sequence[EventRow]) -> tuple[_CachedEvent, ...]:
    """Cached events for ``rows``: those ``old`` has for the very same rows (with their
    decoded fields), new ones for the rest."""
    if old is None or not old.events:
        return tuple(map(_CachedEvent, rows))
    known = {e.row[0]: e for e in old.events}
    events = []
    for row in rows:
        cached = known.get(row[0])
        events.append(cached if cached is not None and cached.row == row else _CachedEvent(row))
    return tuple(events)


@dataclasses.dataclass(frozen=True)
class _Entry:
    """A session's cached form. Never changed in place: writers replace it."""

    row: SessionRow  # pk, app, user, id, agent_id, metadata, created, updated, expires, version
    session_state: dict[str, str]
    events: tuple[_CachedEvent, ...]  # shared with the session's other entries
    complete: bool
    summaries: tuple[tuple[str, str, int, int], ...]
    nbytes: int

    @property
    def version(self) -> int:
        return int(self.row[9])


def _text_bytes(texts: Iterable[str]) -> int:
    return sum(len(t) + 60 for t in texts)


def _event_bytes(events: Iterable[_CachedEvent]) -> int:
    return sum(e.nbytes for e in events)


def _entry(
    row: SessionRow,
    session_state: dict[str, str],
    events: tuple[_CachedEvent, ...],
    complete: bool,
    summaries: tuple[tuple[str, str, int, int], ...],
) -> _Entry:
    nbytes = (
        _ENTRY_OVERHEAD
        + len(row[5])
        + _text_bytes(session_state.values())
        + _text_bytes(session_state)
        + _event_bytes(events)
        + sum(len(s[1]) + 200 for s in summaries)
    )
    return _Entry(row, session_state, events, complete, summaries, nbytes)


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
        kept = rows.events[-self.max_events :]
        complete = rows.complete and len(kept) == len(rows.events)
        session_state = dict(rows.session_state)
        summaries = tuple(rows.summaries)
        app = _Scope(rows.app_state, rows.app_expires_us)
        user = _Scope(rows.user_state, rows.user_expires_us)
        with self._lock:
            if token_before != self.trusted:
                return
            # A miss (often in the moment between a commit and the writer's accounting
            # for it) rereads rows this entry has mostly decoded already: keep those.
            events = _reusing(self._entries.get(key), kept)
            self._put(key, _entry(rows.row, session_state, events, complete, summaries))
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
        added = tuple(map(_CachedEvent, rows))
        joined = entry.events + added
        events = joined
        complete = entry.complete
        if trim_through is not None:
            events = tuple(e for e in events if e.row[0] > trim_through)
        if len(events) > self.max_events:
            events = events[-self.max_events :]
            complete = False
        # Both trims remove the oldest rows only.
        dropped = joined[: len(joined) - len(events)]
        nbytes = entry.nbytes + _event_bytes(added) - _event_bytes(dropped)
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
            _Entry(row, state, events, complete, entry.summaries, nbytes),
        )
        self._evict()  # a growing tail counts against the bound too

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


def _matches(event: _CachedEvent, query: EventQuery, after_us: int | None) -> bool:
    _sequence, _id, _author, timestamp_us, event_branch, _body = event.row
    if after_us is not None and timestamp_us < after_us:
        return False
    branch = query.branch
    if branch:
        return event_branch == branch or event_branch.startswith(branch + "/")
    return True


def _build(entry: _Entry, app: _Scope, user: _Scope, query: EventQuery, now_us: int) -> Session:
    events: Sequence[_CachedEvent] = entry.events
    if query.after is not None or query.branch:
        after_us = None if query.after is None else to_micros(query.after)
        events = [e for e in events if _matches(e, query, after_us)]
    if query.limit is not None:
        events = events[max(0, len(events) - query.limit) :] if query.limit else ()
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
            "events": [e.event() for e in events],
            "summaries": summaries_from_rows(entry.summaries),
            "created_at": from_micros(created),
            "updated_at": from_micros(updated),
            "expires_at": None if expires is None else from_micros(expires),
            "version": version,
        }
    )
