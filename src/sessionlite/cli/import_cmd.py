"""``import``: load an export (see :mod:`.jsonl_format`) into the database.

Streamed: events are written in transactions of ``--chunk-size``. Safe to re-run (after
an interruption, say): events already stored are recognised by their id and skipped,
summaries already restored are left alone. The command reports what was new and what
was already there: the sessions it created, and the events the service stored (its
``events_persisted`` counter, which an idempotent re-append leaves alone). Sessions come
back with their exported ``created_at`` / ``updated_at`` and summaries with their
``updated_at``: the service's clock is set to the exported times while they are written.

:func:`import_writer` is the writer: it takes export lines as models, from a file here,
straight from another database's :func:`~.export_cmd.export_lines` in ``copy``.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.progress import Progress
from rich.text import Text

from ..errors import (
    EventConflictError,
    InvalidInputError,
    SessionExistsError,
    SessionNotFoundError,
)
from ..models import Event, Session, utc_now
from ..service import SessionService
from ..state import APP_PREFIX, TEMP_PREFIX, USER_PREFIX
from ..summaries import SummaryRequest
from .app import (
    DataError,
    JsonFlag,
    ProgressFlag,
    Target,
    UsageError,
    expand_user,
    guarded,
    run,
    target_of,
)
from .jsonl_format import (
    AppStateLine,
    EndLine,
    EventLine,
    ExportLine,
    Header,
    SessionLine,
    SummaryEntry,
    UserStateLine,
    check_header,
    parse_line,
)
from .output import err_console, print_json, progress_bar
from .queries import prepare_destination, remove_if_empty

__all__ = [
    "DEFAULT_IMPORT_CHUNK",
    "ImportResult",
    "ImportWriter",
    "count",
    "import_",
    "import_writer",
    "warn_unrestored",
]

DEFAULT_IMPORT_CHUNK = 500  # events per append_events call (one transaction) on import


@guarded
def import_(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="Export file to read, or - for stdin.")],
    chunk_size: Annotated[
        int, typer.Option(help="Events written per transaction.", min=1)
    ] = DEFAULT_IMPORT_CHUNK,
    progress: ProgressFlag = None,
    json_output: JsonFlag = False,
) -> None:
    """Load an export (streamed). Safe to re-run: stored events are not duplicated.

    A new file is created; an existing one must hold sessionlite tables. A PostgreSQL
    database gets the tables if it has none.
    """
    target = target_of(ctx)
    source = expand_user(source)
    created = prepare_destination(target)
    if source != "-":
        if Path(source).is_dir():
            raise UsageError(f"{source} is a directory; pass an export file")
        if not Path(source).exists():
            raise UsageError(f"no such file: {source}")
    try:
        with _open_input(source) as (stream, size):
            result = run(_import, target, stream, size, chunk_size, progress_bar(progress))
    except BaseException:
        # Refused before anything was imported (a bad header, say): a database this
        # command created holds nothing, so it leaves no file behind. A failure later
        # keeps what was imported; a re-run resumes.
        if created:
            remove_if_empty(target)
        raise
    if json_output:
        print_json(
            {
                "database": target.name,
                "source": source,
                "sessions": result.sessions,
                "sessions_created": result.sessions_created,
                "events": result.events,
                "events_imported": result.events_imported,
                "events_skipped": result.events - result.events_imported,
                "summaries_not_restored": result.skipped_summaries,
            }
        )
        return
    message = (
        f"Imported {count(result.sessions_created, 'new session')} and "
        f"{count(result.events_imported, 'new event')} into {target.name}"
    )
    present = (result.sessions - result.sessions_created, result.events - result.events_imported)
    if any(present):
        message += (
            f"; {count(present[0], 'session')} and {count(present[1], 'event')} "
            "were already present"
        )
    err_console().print(Text(message))
    warn_unrestored(result, "import")


def count(n: int, noun: str) -> str:
    """``1 session``, ``2 sessions``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def warn_unrestored(result: ImportResult, command: str) -> None:
    """Say on stderr how many summaries were not restored, if any."""
    if result.skipped_summaries:
        err_console().print(
            f"warning: {result.skipped_summaries} summaries were not restored (the events "
            f"they cover are missing, or were stored before this {command})"
        )


@contextmanager
def _open_input(name: str) -> Iterator[tuple[IO[bytes], int | None]]:
    if name == "-":
        yield sys.stdin.buffer, None
        return
    path = Path(name)
    with path.open("rb") as stream:
        yield stream, path.stat().st_size


class _RestoreClock:
    """The import service's clock: set to the exported times while a session is
    written, so that its created_at/updated_at (and its summaries' updated_at) come
    back exactly; the real time otherwise."""

    def __init__(self) -> None:
        self.at: datetime | None = None

    def __call__(self) -> datetime:
        return utc_now() if self.at is None else self.at


class _RestoreSummarizer:
    """Gives back an exported summary's text when the service asks at the right point.

    The import calls ``summarize(force=True)`` right after appending the last event the
    summary covered, so the service stores it with the matching ``through_sequence``.
    If the events it is handed end elsewhere (a re-run over events already stored), it
    declines rather than store a summary that covers the wrong events.
    """

    def __init__(self) -> None:
        self.text: str | None = None
        self.through_event_id: str | None = None

    async def summarize(self, request: SummaryRequest) -> str | None:
        last = request.events[-1].id if request.events else None
        return self.text if last == self.through_event_id else None


@dataclasses.dataclass
class ImportResult:
    sessions: int = 0
    """Sessions in the file."""
    sessions_created: int = 0
    """Of those, sessions that were not in the database yet."""
    events: int = 0
    """Events in the file."""
    events_imported: int = 0
    """Of those, events stored by this import (the others were already stored)."""
    skipped_summaries: int = 0


class _SessionImport:
    """Writes one session's lines: its events in chunks, its summaries where they
    belong, and finally its state."""

    def __init__(
        self,
        service: SessionService,
        clock: _RestoreClock,
        summarizer: _RestoreSummarizer,
        line: SessionLine,
        session: Session,
        chunk_size: int,
    ) -> None:
        self.service, self.clock, self.summarizer = service, clock, summarizer
        self.line = line
        self.session = session
        self.chunk_size = chunk_size
        self.pending: list[tuple[int | None, Event]] = []  # (line number, event)
        self.events = 0
        self.skipped_summaries = 0
        self.summaries: dict[str | None, list[SummaryEntry]] = {}
        for entry in line.summaries:
            stored = session.summaries.get(entry.branch)
            if stored and (stored.text, stored.updated_at) == (entry.text, entry.updated_at):
                continue  # restored by an earlier run of the same import
            self.summaries.setdefault(entry.through_event_id, []).append(entry)

    async def start(self) -> None:
        await self._summarize(None)

    async def add(self, event: Event, number: int | None) -> None:
        self.pending.append((number, event))
        self.events += 1
        if len(self.pending) >= self.chunk_size or event.id in self.summaries:
            await self._flush()
            await self._summarize(event.id)

    async def finish(self) -> None:
        await self._flush()
        # Summaries whose covered event was not in the file (deleted while exporting).
        self.skipped_summaries += sum(len(entries) for entries in self.summaries.values())
        line = self.line
        self.clock.at = line.updated_at
        # Also the session's last write, which sets updated_at to the exported time.
        await self.service.update_session_state(
            app_name=line.app_name, user_id=line.user_id, session_id=line.id, delta=line.state
        )

    async def _flush(self) -> None:
        if not self.pending:
            return
        self.clock.at = self.line.updated_at
        try:
            await self.service.append_events(self.session, [e for _, e in self.pending])
        except (EventConflictError, InvalidInputError):
            # Nothing of the chunk was written. Either a re-run whose chunk straddles
            # what an earlier run stored: event by event, stored ones are no-ops; or a
            # bad event: event by event, it is found and reported with its line.
            for number, event in self.pending:
                try:
                    await self.service.append_event(self.session, event)
                except (EventConflictError, InvalidInputError) as exc:
                    raise DataError(str(exc), line=number) from exc
        self.pending = []
        self.session.events.clear()  # streaming: keep no history in memory

    async def _summarize(self, event_id: str | None) -> None:
        for entry in self.summaries.pop(event_id, []):
            self.clock.at = entry.updated_at
            self.summarizer.text = entry.text
            self.summarizer.through_event_id = event_id
            if await self.service.summarize(self.session, branch=entry.branch, force=True) is None:
                self.skipped_summaries += 1


async def _import(
    target: Target, stream: IO[bytes], size: int | None, chunk_size: int, progress: Progress
) -> ImportResult:
    async with import_writer(target, chunk_size) as writer:
        with progress:
            task = progress.add_task("Importing", total=size)
            for number, raw in enumerate(stream, start=1):
                progress.advance(task, len(raw))
                if raw.strip():
                    await writer.write(parse_line(raw, number), number)
    return writer.result


class ImportWriter:
    """Writes the lines of an export, in order, through the service: sessions with
    their events and summaries, app and user state (see :func:`import_writer`)."""

    def __init__(
        self,
        service: SessionService,
        clock: _RestoreClock,
        summarizer: _RestoreSummarizer,
        chunk_size: int,
    ) -> None:
        self.service, self.clock, self.summarizer = service, clock, summarizer
        self.chunk_size = chunk_size
        self.result = ImportResult()
        self.header: Header | None = None
        self.end: EndLine | None = None
        self.number: int | None = None  # the line being written (None: not from a file)
        self._current: _SessionImport | None = None
        # Appending an event already stored identically is a no-op the service does
        # not count as persisted: the difference is what this import stored.
        self._persisted = service.stats().events_persisted

    async def write(self, item: ExportLine, number: int | None = None) -> None:
        """Write one line (``number``: its line in the file, for error messages)."""
        self.number = number
        if self.header is None:
            self.header = check_header(item, number)
            return
        with _at_line(number):
            if self.end is not None:
                raise DataError("data after the end line")
            if isinstance(item, EventLine):
                if self._current is None:
                    raise DataError("an event before any session line")
                await self._current.add(item.event, number)
                return
            await self._close_session()
            if isinstance(item, SessionLine):
                self._current, created = await _start_session(
                    self.service, self.clock, self.summarizer, item, self.chunk_size
                )
                self.result.sessions += 1
                self.result.sessions_created += int(created)
            elif isinstance(item, (AppStateLine, UserStateLine)):
                await _restore_state(self.service, self.clock, item)
            elif isinstance(item, EndLine):
                self.end = item
            else:
                raise DataError("a second header line")

    async def finish(self) -> None:
        """After the last line: finish its session (a file cut short ends one too)."""
        with _at_line(self.number):
            await self._close_session()
        self.result.events_imported = self.service.stats().events_persisted - self._persisted

    def check_complete(self) -> None:
        """The lines were a whole export: a header, an end line, the counts it announced."""
        result, end = self.result, self.end
        if self.header is None:
            raise DataError("the file is empty; expected a sessionlite export")
        if end is None:
            raise DataError(
                f"the export is truncated (no end line after line {self.number}); what it "
                "held is imported: complete the file and import it again (stored events "
                "are skipped)"
            )
        if (end.sessions, end.events) != (result.sessions, result.events):
            raise DataError(
                f"the end line announces {end.sessions} sessions and {end.events} events, "
                f"but the file holds {result.sessions} and {result.events}"
            )

    async def _close_session(self) -> None:
        if self._current is not None:
            await self._current.finish()
            self.result.events += self._current.events
            self.result.skipped_summaries += self._current.skipped_summaries
            self._current = None


@asynccontextmanager
async def import_writer(target: Target, chunk_size: int) -> AsyncIterator[ImportWriter]:
    """A writer of export lines into ``target`` (its schema is created if needed). When
    the block ends, the last session is finished and the lines are checked to have
    been a whole export (:class:`DataError` if not); :attr:`ImportWriter.result` then
    holds the counts."""
    clock, summarizer = _RestoreClock(), _RestoreSummarizer()
    options = {**target.service_options(), "clock": clock, "summarizer": summarizer}
    # event_limit=1: get_or_create_session loads (almost) no history when a re-run
    # finds the session stored.
    async with SessionService(target.db, event_limit=1, **options) as service:
        writer = ImportWriter(service, clock, summarizer, chunk_size)
        yield writer
        await writer.finish()
    writer.check_complete()


@contextmanager
def _at_line(number: int | None) -> Iterator[None]:
    """Report what goes wrong while importing a line as bad data at that line."""
    try:
        yield
    except DataError as exc:
        exc.line = number if exc.line is None else exc.line
        raise
    except (InvalidInputError, SessionNotFoundError) as exc:
        # Bad values the service refuses, or a session deleted while importing it.
        raise DataError(str(exc), line=number) from exc


async def _start_session(
    service: SessionService,
    clock: _RestoreClock,
    summarizer: _RestoreSummarizer,
    line: SessionLine,
    chunk_size: int,
) -> tuple[_SessionImport, bool]:
    """The import of the session's lines, and whether the session was created (False:
    it was stored already, by an earlier run of the import, say)."""
    if prefixed := [k for k in line.state if k.startswith((APP_PREFIX, USER_PREFIX, TEMP_PREFIX))]:
        raise DataError(
            f"session {line.id!r}: state key {prefixed[0]!r} has a scope prefix; a session "
            "line holds the session's own keys (app and user state have lines of their own)"
        )
    clock.at = line.created_at
    fields: dict[str, Any] = {
        "app_name": line.app_name,
        "user_id": line.user_id,
        "session_id": line.id,
        "agent_id": line.agent_id,
        "metadata": line.metadata,
    }
    try:
        session = await service.create_session(**fields)
        created = True
    except SessionExistsError:  # stored by an earlier run (agent_id, metadata kept)
        session = await service.get_or_create_session(**fields)
        created = False
    session.events.clear()
    importing = _SessionImport(service, clock, summarizer, line, session, chunk_size)
    await importing.start()
    return importing, created


async def _restore_state(
    service: SessionService, clock: _RestoreClock, line: AppStateLine | UserStateLine
) -> None:
    """Make a scope's state what the export says. Replayed events wrote their ``app:``
    and ``user:`` deltas along the way; keys deleted since are deleted again."""
    clock.at = None
    if isinstance(line, AppStateLine):
        for key in set(await service.get_app_state(line.app_name)) - set(line.state):
            await service.delete_app_state(line.app_name, key)
        await service.update_app_state(line.app_name, line.state)
        return
    current = await service.get_user_state(line.app_name, line.user_id)
    for key in set(current) - set(line.state):
        await service.delete_user_state(line.app_name, line.user_id, key)
    await service.update_user_state(line.app_name, line.user_id, line.state)
