"""``export``: write sessions, events and state as JSON lines (see :mod:`.jsonl_format`).

Streamed: session keys are read a page at a time (:data:`.queries.KEY_PAGE`), each
session's events through :meth:`~sessionlite.SessionService.iter_events`, so memory
stays flat whatever the size of the database. A file is written next to its final name
and renamed into place only when complete.

Sessions come in (app, user, id) order and state keys sorted, by code point, on either
backend: the same data exports to the same bytes from SQLite and from PostgreSQL.
:func:`export_lines` produces the lines as models and hands each to a sink: here one
that writes JSON, in ``copy`` the import's writer on another database.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.progress import Progress

from ..errors import SessionNotFoundError
from ..service import SessionService
from ..state import APP_PREFIX, USER_PREFIX
from .app import (
    AppFilter,
    ProgressFlag,
    Target,
    UsageError,
    UserFilter,
    expand_user,
    guarded,
    run,
    target_of,
)
from .jsonl_format import (
    NO_SEQUENCE,
    AppStateLine,
    EndLine,
    EventLine,
    ExportLine,
    Header,
    SessionLine,
    SummaryEntry,
    UserStateLine,
    encode,
)
from .output import err_console, progress_bar
from .queries import DatabaseReader, reader

__all__ = ["Sink", "export", "export_lines"]

Sink = Callable[[ExportLine], Awaitable[None]]
"""Where :func:`export_lines` hands each line."""


@guarded
def export(
    ctx: typer.Context,
    output: Annotated[str, typer.Argument(help="File to write, or - for stdout.")] = "-",
    app_name: AppFilter = None,
    user_id: UserFilter = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing file.")
    ] = False,
    progress: ProgressFlag = None,
) -> None:
    """Write sessions, events and state as JSON lines (streamed).

    One JSON object per line: a header, then each session followed by its events,
    then app and user state, then an end line with the counts.
    """
    target = target_of(ctx)
    output = expand_user(output)
    _check_output(output, overwrite)
    with reader(target) as db, _open_output(output) as out:
        sink = _json_lines(out)
        counts = run(export_lines, target, db, sink, progress_bar(progress), app_name, user_id)
    if output != "-":
        err_console().print(
            f"Exported {counts.sessions} sessions and {counts.events} events to {output}"
        )


def _check_output(name: str, overwrite: bool) -> None:
    if name == "-":
        return
    path = Path(name)
    if path.is_dir():
        raise UsageError(f"{path} is a directory; pass a file name for the export")
    if not path.parent.is_dir():
        raise UsageError(f"directory {path.parent} does not exist; create it first")
    if path.exists() and not overwrite:
        raise UsageError(f"{path} exists; pass --overwrite to replace it")


@contextmanager
def _open_output(name: str) -> Iterator[IO[bytes]]:
    """stdout for ``-``; else a file that appears, complete, only when the block succeeds."""
    if name == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    path = Path(name)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("wb") as out:
            yield out
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _json_lines(out: IO[bytes]) -> Sink:
    """A sink writing each line as JSON (events without their store-assigned sequence)."""

    async def write(line: ExportLine) -> None:
        out.write(
            encode(line, exclude=NO_SEQUENCE) if isinstance(line, EventLine) else encode(line)
        )

    return write


async def export_lines(
    target: Target,
    db: DatabaseReader,
    sink: Sink,
    progress: Progress,
    app_name: str | None = None,
    user_id: str | None = None,
    *,
    description: str = "Exporting",
) -> EndLine:
    """Hand the export of ``target`` (read through ``db``) to ``sink``, line by line:
    the header, each session and its events, app and user state, the end line (also
    returned). One session's events are in memory at most; ``progress`` counts sessions.
    """
    end = EndLine(sessions=0, events=0)
    await sink(Header())
    options = target.service_options(schema_version=db.schema_version)
    async with SessionService(target.db, **options) as service:
        with progress:
            task = progress.add_task(description, total=db.count_sessions(app_name, user_id))
            for key in db.session_keys(app_name, user_id):
                events = await _export_session(service, db, sink, key)
                if events is not None:
                    end.sessions += 1
                    end.events += events
                progress.advance(task)
        apps, users = db.state_scopes(app_name, user_id)
        for scope_app in apps:
            if state := await service.get_app_state(scope_app):
                await sink(AppStateLine(app_name=scope_app, state=dict(sorted(state.items()))))
        for scope_app, scope_user in users:
            if state := await service.get_user_state(scope_app, scope_user):
                await sink(
                    UserStateLine(
                        app_name=scope_app, user_id=scope_user, state=dict(sorted(state.items()))
                    )
                )
    await sink(end)
    return end


async def _export_session(
    service: SessionService, db: DatabaseReader, sink: Sink, key: tuple[str, str, str]
) -> int | None:
    """Write a session's line and its events; returns how many (None: it is gone)."""
    app_name, user_id, session_id = key
    session = await service.get_session(
        app_name=app_name, user_id=user_id, session_id=session_id, num_recent_events=0
    )
    if session is None:  # deleted or expired since it was listed
        return None
    line = SessionLine(
        app_name=app_name,
        user_id=user_id,
        id=session_id,
        agent_id=session.agent_id,
        metadata=session.metadata,
        state={
            k: v
            for k, v in sorted(session.state.items())
            if not k.startswith((APP_PREFIX, USER_PREFIX))
        },
        created_at=session.created_at,
        updated_at=session.updated_at,
        summaries=[
            SummaryEntry(
                branch=branch,
                text=summary.text,
                through_event_id=db.covered_event(key, branch, summary.through_sequence),
                updated_at=summary.updated_at,
            )
            for branch, summary in sorted(session.summaries.items())
        ],
    )
    await sink(line)
    count = 0
    try:
        async for event in service.iter_events(
            app_name=app_name, user_id=user_id, session_id=session_id
        ):
            await sink(EventLine(event=event))
            count += 1
    except SessionNotFoundError:  # deleted between the two reads: its line stays, alone
        pass
    return count
