"""``copy``: move everything from one database into another, SQLite or PostgreSQL.

No file in between: the export's lines (:func:`~.export_cmd.export_lines`) go straight
to the import's writer (:func:`~.import_cmd.import_writer`) on the other database, one
session at a time, so memory holds one session's batch of events at most. Timestamps,
summaries and state come over as an export and import would carry them, and a re-run
copies nothing again: sessions already in the destination are left as they are
(events already stored are recognised by their id), and reported as already present.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.text import Text

from .app import (
    JsonFlag,
    ProgressFlag,
    Target,
    UsageError,
    check_file_arg,
    check_prefix,
    database_arg,
    guarded,
    run,
    target_of,
)
from .export_cmd import export_lines
from .import_cmd import DEFAULT_IMPORT_CHUNK, ImportResult, count, import_writer, warn_unrestored
from .output import err_console, print_json, progress_bar
from .queries import DatabaseReader, prepare_destination, reader, remove_if_empty

__all__ = ["copy"]

_DATABASE_HELP = "a SQLite file or a postgresql:// URL"


@guarded
def copy(
    ctx: typer.Context,
    source: Annotated[
        str, typer.Argument(help=f"Database to copy from: {_DATABASE_HELP}.", show_default=False)
    ],
    dest: Annotated[
        str,
        typer.Argument(
            help=f"Database to copy into: {_DATABASE_HELP} (a new file is created).",
            show_default=False,
        ),
    ],
    table_prefix: Annotated[
        str | None,
        typer.Option(
            help="Table prefix of both databases (default: the global --table-prefix).",
            show_default=False,
        ),
    ] = None,
    chunk_size: Annotated[
        int, typer.Option(help="Events written per transaction.", min=1)
    ] = DEFAULT_IMPORT_CHUNK,
    progress: ProgressFlag = None,
    json_output: JsonFlag = False,
) -> None:
    """Copy every session, event, summary and app and user state from SOURCE into DEST.

    Either way between SQLite and PostgreSQL (or file to file), streamed, with each
    session's timestamps, agent id and metadata. Safe to re-run: sessions already in
    DEST are reported as already present and nothing is copied twice. The global --db
    is not used.
    """
    options = target_of(ctx)
    prefix = options.table_prefix if table_prefix is None else table_prefix
    check_prefix(prefix)
    src = _target(source, "SOURCE", prefix, options.busy_timeout)
    dst = _target(dest, "DEST", prefix, options.busy_timeout)
    if src.db == dst.db or (
        src.url is None and dst.url is None and src.path.resolve() == dst.path.resolve()
    ):
        raise UsageError("SOURCE and DEST are the same database; pass another DEST")
    with reader(src) as db:
        created = prepare_destination(dst)
        try:
            result = run(_copy, src, db, dst, chunk_size, progress_bar(progress))
        except BaseException:
            # Refused before anything was copied: a file this command created holds
            # nothing, so none is left behind. A failure later keeps what was copied;
            # a re-run goes on from there.
            if created:
                remove_if_empty(dst)
            raise
    present = result.sessions - result.sessions_created
    if json_output:
        print_json(
            {
                "source": src.name,
                "destination": dst.name,
                "sessions": result.sessions,
                "sessions_copied": result.sessions_created,
                "sessions_present": present,
                "events": result.events,
                "events_copied": result.events_imported,
                "summaries_not_restored": result.skipped_summaries,
            }
        )
        return
    err_console().print(
        Text(
            f"Copied {count(result.sessions_created, 'session')} "
            f"({count(result.events_imported, 'event')}) from {src.name} to {dst.name}; "
            f"{present} already present"
        )
    )
    warn_unrestored(result, "copy")


def _target(name: str, what: str, prefix: str, busy_timeout: float) -> Target:
    try:
        database = database_arg(name)
    except UsageError as exc:
        raise UsageError(f"{what}: {exc}") from None
    if isinstance(database, Path):
        check_file_arg(database, what)
    return Target(database, prefix, busy_timeout)


async def _copy(
    src: Target, db: DatabaseReader, dst: Target, chunk_size: int, progress: Progress
) -> ImportResult:
    async with import_writer(dst, chunk_size) as writer:
        await export_lines(src, db, writer.write, progress, description="Copying")
    return writer.result
