"""``import-adk`` and ``import-openai-agents``: move another framework's sessions into the
database, with :mod:`sessionlite.integrations.importers`.

The source file is opened read-only and detected first, so a missing file, a file that
is not SQLite or one in another format is refused (exit code 2) before the database is
opened. The import then streams, one session at a time, its events in transactions of
``--chunk-size``; the importers' progress callback feeds the progress bar. Re-running
is safe and writes nothing new: events already imported are recognised by their id.

An error while importing (a row that does not decode, an event id already stored with
other content because the source changed) stops the command with exit code 1; what was
imported before it stays, and a re-run picks up from there.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, TaskID
from rich.table import Table
from rich.text import Text

from ..errors import InvalidInputError
from ..integrations.importers import (
    DEFAULT_BATCH_SIZE,
    ImportProgress,
    ImportSummary,
    SourceFormatError,
    SourceKind,
    detect_source,
    import_adk_sqlite,
    import_openai_sqlite,
)
from ..integrations.openai_agents import DEFAULT_APP_NAME, DEFAULT_USER_ID
from ..service import SessionService
from ..validation import check_text
from .app import (
    JsonFlag,
    ProgressFlag,
    Target,
    UsageError,
    expand_user,
    fail,
    guarded,
    run,
    target_of,
)
from .output import console, print_json, progress_bar
from .queries import prepare_destination, remove_if_empty

__all__ = ["KIND_NAMES", "import_adk", "import_openai_agents"]

KIND_NAMES: dict[SourceKind, str] = {
    "adk-sqlite": "ADK SqliteSessionService",
    "adk-database": "ADK DatabaseSessionService",
    "openai-sqlite": "OpenAI Agents SQLiteSession",
}
_DEFAULT_SESSIONS_TABLE = "agent_sessions"  # SQLiteSession's default table names
_DEFAULT_MESSAGES_TABLE = "agent_messages"

ChunkSize = Annotated[int, typer.Option(help="Events written per transaction.", min=1)]
Importer = Callable[[SessionService, Callable[[ImportProgress], None]], Awaitable[ImportSummary]]


@guarded
def import_adk(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Argument(
            help="ADK SqliteSessionService file, DatabaseSessionService SQLite file, or "
            "its sqlite+aiosqlite:/// URL.",
            show_default=False,
        ),
    ],
    chunk_size: ChunkSize = DEFAULT_BATCH_SIZE,
    progress: ProgressFlag = None,
    json_output: JsonFlag = False,
) -> None:
    """Import Google ADK sessions, events and state. Safe to re-run.

    Every session keeps its app name, user id and id; SessionliteSessionService then
    serves them as ADK did.
    """
    target = target_of(ctx)
    created = prepare_destination(target)
    source = expand_user(source)
    kind = _detect(source)
    if kind == "openai-sqlite":
        raise UsageError(
            f"{source} is an OpenAI Agents SQLiteSession file; "
            "use `sessionlite import-openai-agents`"
        )
    if kind is None:
        raise UsageError(
            f"{source} is not an ADK session database (a SqliteSessionService file or a "
            "DatabaseSessionService SQLite file)"
        )
    if not _adk_installed():
        raise fail("import-adk needs Google ADK: pip install 'sessionlite[adk]'", 1)

    async def importer(
        service: SessionService, feed: Callable[[ImportProgress], None]
    ) -> ImportSummary:
        return await import_adk_sqlite(source, service, progress=feed, batch_size=chunk_size)

    _report(_run_import(target, importer, progress, created), target.name, json_output)


@guarded
def import_openai_agents(
    ctx: typer.Context,
    source: Annotated[
        str, typer.Argument(help="OpenAI Agents SQLiteSession file.", show_default=False)
    ],
    app_name: Annotated[
        str, typer.Option("--app-name", help="sessionlite app of the conversations.")
    ] = DEFAULT_APP_NAME,
    user_id: Annotated[
        str, typer.Option("--user-id", help="sessionlite user of the conversations.")
    ] = DEFAULT_USER_ID,
    sessions_table: Annotated[
        str, typer.Option(help="sessions_table given to SQLiteSession.")
    ] = _DEFAULT_SESSIONS_TABLE,
    messages_table: Annotated[
        str, typer.Option(help="messages_table given to SQLiteSession.")
    ] = _DEFAULT_MESSAGES_TABLE,
    chunk_size: ChunkSize = DEFAULT_BATCH_SIZE,
    progress: ProgressFlag = None,
    json_output: JsonFlag = False,
) -> None:
    """Import OpenAI Agents SDK conversations (SQLiteSession). Safe to re-run.

    Each conversation becomes the session (--app-name, --user-id, its session_id):
    pass the ids you give SessionliteSession.
    """
    try:
        check_text(app_name, "--app-name")
        check_text(user_id, "--user-id")
    except InvalidInputError as exc:
        raise UsageError(str(exc)) from None
    target = target_of(ctx)
    created = prepare_destination(target)
    source = expand_user(source)
    kind = _detect(source)
    if kind in ("adk-sqlite", "adk-database"):
        raise UsageError(f"{source} is an ADK session database; use `sessionlite import-adk`")
    default_tables = (sessions_table, messages_table) == (
        _DEFAULT_SESSIONS_TABLE,
        _DEFAULT_MESSAGES_TABLE,
    )
    if kind is None and default_tables:
        raise UsageError(
            f"{source} is not an OpenAI Agents SQLiteSession file (no tables "
            f"{_DEFAULT_SESSIONS_TABLE!r} and {_DEFAULT_MESSAGES_TABLE!r}; pass "
            "--sessions-table and --messages-table if the application named them otherwise)"
        )

    async def importer(
        service: SessionService, feed: Callable[[ImportProgress], None]
    ) -> ImportSummary:
        return await import_openai_sqlite(
            source,
            service,
            app_name=app_name,
            user_id=user_id,
            sessions_table=sessions_table,
            messages_table=messages_table,
            progress=feed,
            batch_size=chunk_size,
        )

    _report(_run_import(target, importer, progress, created), target.name, json_output)


def _detect(source: str) -> SourceKind | None:
    """The source's format; a usage error when it is missing or unreadable."""
    if not source.startswith(("sqlite:", "sqlite+")) and Path(source).is_dir():
        raise UsageError(f"{source} is a directory; pass a database file")
    try:
        kind: SourceKind | None = run(detect_source, source)
    except SourceFormatError as exc:
        raise UsageError(str(exc)) from None
    return kind


def _adk_installed() -> bool:
    try:
        return importlib.util.find_spec("google.adk") is not None
    except ImportError:  # pragma: no cover - no `google` package at all
        return False


class _ProgressFeed:
    """The importers' progress callback: moves the bar, remembers that the import began."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.task: TaskID | None = None
        self.started = False

    def __call__(self, progress: ImportProgress) -> None:
        self.started = True
        events = progress.events_imported + progress.events_skipped
        description = f"Importing ({events} events)"
        if self.task is None:
            self.task = self.bar.add_task(description, total=progress.sessions_total)
        self.bar.update(
            self.task,
            description=description,
            total=progress.sessions_total,
            completed=progress.sessions_done,
        )


def _run_import(
    target: Target, importer: Importer, progress: bool | None, created: bool
) -> ImportSummary:
    """Run the import; ``created``: the database is new (removed again if refused)."""
    bar = progress_bar(progress)
    feed = _ProgressFeed(bar)

    async def go() -> ImportSummary:
        async with SessionService(target.db, **target.service_options()) as service:
            with bar:
                return await importer(service, feed)

    try:
        summary: ImportSummary = run(go)
    except InvalidInputError as exc:
        if feed.started:
            raise  # bad data partway: exit code 1, like any failed operation
        # Refused before the first session (say, custom table names that are not there):
        # a database this command created holds nothing, so it leaves no file behind.
        if created:
            remove_if_empty(target)
        raise UsageError(str(exc)) from None
    return summary


def _report(summary: ImportSummary, database: str, json_output: bool) -> None:
    if json_output:
        print_json({"database": database, **dataclasses.asdict(summary)})
        return
    out = console()
    out.print(Text(f"Imported {summary.source} ({KIND_NAMES[summary.kind]}) into {database}"))
    counts = Table.grid(padding=(0, 2))
    counts.add_column()
    counts.add_column(justify="right")
    for label, value in (
        ("sessions", summary.sessions),
        ("sessions created", summary.sessions_created),
        ("events imported", summary.events_imported),
        ("events already there", summary.events_skipped),
        ("state keys written", summary.state_keys_imported),
    ):
        counts.add_row(f"  {label}", str(value))
    out.print(counts)
    if summary.items_invalid:
        out.print(
            Text(
                f"warning: {summary.items_invalid} rows are not JSON and were skipped "
                "(SQLiteSession skips them too)"
            )
        )
    new = summary.sessions_created + summary.events_imported + summary.state_keys_imported
    if summary.sessions and not new:
        out.print("Nothing new: everything was imported before.")
