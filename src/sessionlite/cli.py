"""The ``sessionlite`` command: inspect, export, back up and maintain a database.

Usage: ``sessionlite [--db PATH] COMMAND ...`` (also ``python -m sessionlite ...``).

``stats``, ``sessions`` and ``check`` read the file through a read-only sqlite3
connection. ``show``, ``export``, ``import`` and ``cleanup`` go through
:class:`~sessionlite.SessionService`, like an application would. ``backup`` copies the
file with SQLite's online backup API inside one read transaction: a consistent
snapshot, taken while applications keep writing. All of them work next to running
applications (WAL lets readers and one writer proceed together); a write waits for the
lock at most ``--busy-timeout``.

Exit codes: 0 success; 1 the operation failed (a locked or damaged database, a failed
check, bad data in an import); 2 a usage error (a bad path or option).

This module is the only one that imports typer and rich: ``import sessionlite`` does not.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Annotated, Any, Literal, TypeVar

import anyio
import typer
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    TypeAdapter,
    ValidationError,
)
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from . import __version__
from .config import DEFAULT_BUSY_TIMEOUT, DEFAULT_SOFT_DELETE_RETENTION, parse_options
from .demo import run_demo
from .errors import (
    DatabaseLockedError,
    EventConflictError,
    InvalidInputError,
    SessionLiteError,
    SessionNotFoundError,
)
from .models import Event, Session, utc_now
from .service import SessionService, default_db_path
from .state import APP_PREFIX, TEMP_PREFIX, USER_PREFIX
from .store.sqlite.codec import from_micros, to_micros
from .store.sqlite.errors import map_db_errors
from .store.sqlite.schema import _REQUIRED_TABLES, SCHEMA_VERSION, check_version, stored_version
from .summaries import SummaryRequest

__all__ = ["EXPORT_FORMAT", "EXPORT_VERSION", "app", "main"]

F = TypeVar("F", bound=Callable[..., Any])

EXPORT_FORMAT = "sessionlite-export"
EXPORT_VERSION = 1
DEFAULT_IMPORT_CHUNK = 500  # events per append_events call (one transaction) on import
DEFAULT_LIST_LIMIT = 50  # sessions the `sessions` command lists unless --limit says
KEY_PAGE = 500  # session keys read per query while exporting
BACKUP_STEP_PAGES = 1024  # database pages copied per backup step (one progress update)
MAX_REPORTED_PROBLEMS = 20  # integrity_check lines shown at most

app = typer.Typer(
    name="sessionlite",
    help="Inspect, export, back up and maintain a sessionlite database.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


# -- errors and output ---------------------------------------------------------------


class UsageError(Exception):
    """A bad path or option: reported with exit code 2."""


class DataError(Exception):
    """Bad content in an import file: reported with exit code 1, with its line number."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line

    def __str__(self) -> str:
        return self.message if self.line is None else f"line {self.line}: {self.message}"


def _fail(message: str, code: int) -> typer.Exit:
    _err_console().print(Text(f"sessionlite: error: {message}"))
    return typer.Exit(code)


def _guarded(fn: F) -> F:
    """Turn the errors a command may meet into a message and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UsageError as exc:
            raise _fail(str(exc), 2) from None
        except DatabaseLockedError:
            raise _fail(
                "the database is locked by another process (for longer than --busy-timeout); "
                "retry later or pass a longer --busy-timeout",
                1,
            ) from None
        except (SessionLiteError, DataError) as exc:
            raise _fail(str(exc), 1) from None
        except OSError as exc:
            raise _fail(str(exc), 1) from None

    return wrapper  # type: ignore[return-value]


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _console() -> Console:
    # Built per call: sys.stdout may have been swapped (tests, redirections). No markup:
    # session ids, paths and contents are printed as they are.
    return Console(highlight=False, markup=False, soft_wrap=True)


def _err_console() -> Console:
    return Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


def _iso(value: datetime | None) -> str | None:
    # The format pydantic uses in `--json` output elsewhere (show, export).
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _progress(enabled: bool | None) -> Progress:
    """A progress display on stderr; by default only when stderr is a terminal."""
    console = _err_console()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal if enabled is None else not enabled,
    )


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _table(*headers: str) -> Table:
    """A compact table whose cells wrap instead of being cut: ids must stay whole."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


# -- the database the command works on ------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Target:
    """The global options: which database, with which table prefix and lock timeout."""

    db: Path | None
    table_prefix: str = ""
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT.total_seconds()

    @property
    def path(self) -> Path:
        return default_db_path() if self.db is None else self.db

    def service_options(self, *, schema_version: int = 0) -> dict[str, Any]:
        """Options for a service on the database. Given the current schema version, the
        service only checks the schema instead of migrating it, so opening it takes no
        write lock: reading commands work while another process holds it."""
        return {
            "table_prefix": self.table_prefix,
            "busy_timeout": self.busy_timeout,
            "create_schema": schema_version != SCHEMA_VERSION,
        }


def _target(ctx: typer.Context) -> Target:
    target = ctx.find_root().obj
    assert isinstance(target, Target)
    return target


def _check_file_arg(path: Path, what: str) -> None:
    if str(path) == ":memory:":
        raise UsageError(f"{what} must be a database file; ':memory:' is empty in a new process")
    if path.is_dir():
        raise UsageError(f"{what} {path} is a directory; pass the path of a database file")


def _existing_db(target: Target) -> Path:
    path = target.path
    _check_file_arg(path, "--db")
    if not path.exists():
        hint = "" if target.db is not None else " (the default database; pass --db PATH)"
        raise UsageError(f"no database at {path}{hint}")
    return path


def _new_or_existing_db(target: Target) -> Path:
    path = target.path
    _check_file_arg(path, "--db")
    if target.db is not None and not path.parent.is_dir():
        raise UsageError(f"directory {path.parent} does not exist; create it first")
    return path


@contextmanager
def _read_only(path: Path, busy_timeout: float) -> Iterator[sqlite3.Connection]:
    """A read-only connection; sqlite errors inside the block become StorageErrors."""
    with map_db_errors(str(path)):
        uri = path.resolve().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()


class Reader:
    """Read-only queries on a sessionlite database (one table prefix)."""

    def __init__(self, conn: sqlite3.Connection, prefix: str, path: Path) -> None:
        self.conn = conn
        self.p = prefix
        self.path = path
        self.now_us = to_micros(utc_now())
        self.schema_version = 0

    def require_schema(self) -> int:
        """The schema version; a usage error when there are no sessionlite tables."""
        version = stored_version(self.conn, self.p)
        if version == 0:
            prefix = f" with table prefix {self.p!r}" if self.p else ""
            raise UsageError(f"{self.path} has no sessionlite tables{prefix}")
        check_version(version, str(self.path))
        self.schema_version = version
        return version

    def live(self, alias: str = "") -> str:
        a = f"{alias}." if alias else ""
        return f"{a}deleted_at IS NULL AND ({a}expires_at IS NULL OR {a}expires_at > :now)"

    def stats(self) -> dict[str, Any]:
        p, now = self.p, {"now": self.now_us}
        apps: dict[str, dict[str, Any]] = {}
        for app_name, sessions, users in self.conn.execute(
            f"SELECT app_name, COUNT(*), COUNT(DISTINCT user_id) FROM {p}sessions "
            f"WHERE {self.live()} GROUP BY app_name ORDER BY app_name",
            now,
        ):
            apps[app_name] = {"app_name": app_name, "sessions": sessions, "users": users}
            apps[app_name]["events"] = 0
        for app_name, events in self.conn.execute(
            f"SELECT s.app_name, COUNT(*) FROM {p}events e JOIN {p}sessions s "
            f"ON s.pk = e.session_pk WHERE {self.live('s')} GROUP BY s.app_name",
            now,
        ):
            apps[app_name]["events"] = events
        (deleted,) = self.conn.execute(
            f"SELECT COUNT(*) FROM {p}sessions WHERE deleted_at IS NOT NULL"
        ).fetchone()
        (expired,) = self.conn.execute(
            f"SELECT COUNT(*) FROM {p}sessions WHERE deleted_at IS NULL AND expires_at <= :now",
            now,
        ).fetchone()
        page_size = self.pragma("page_size")
        wal = Path(f"{self.path}-wal")
        return {
            "path": str(self.path),
            "schema_version": stored_version(self.conn, p),
            "sessions": sum(a["sessions"] for a in apps.values()),
            "users": sum(a["users"] for a in apps.values()),
            "events": sum(a["events"] for a in apps.values()),
            "deleted_sessions": deleted,
            "expired_sessions": expired,
            "file_bytes": self.path.stat().st_size,
            "wal_bytes": wal.stat().st_size if wal.exists() else 0,
            "page_size": page_size,
            "page_count": self.pragma("page_count"),
            "free_pages": self.pragma("freelist_count"),
            "apps": list(apps.values()),
        }

    def pragma(self, name: str) -> int:
        return int(self.conn.execute(f"PRAGMA {name}").fetchone()[0])

    def sessions(self, app_name: str | None, user_id: str | None, limit: int) -> list[Any]:
        where, params = self._filters(app_name, user_id)
        rows = self.conn.execute(
            "SELECT s.app_name, s.user_id, s.session_id, s.agent_id, s.created_at, "
            f"s.updated_at, s.expires_at, s.version, (SELECT COUNT(*) FROM {self.p}events e "
            f"WHERE e.session_pk = s.pk) FROM {self.p}sessions s WHERE {where} "
            "ORDER BY s.updated_at DESC, s.pk DESC" + (" LIMIT :limit" if limit else ""),
            {**params, "limit": limit + 1},
        )
        return rows.fetchall()

    def _filters(self, app_name: str | None, user_id: str | None) -> tuple[str, dict[str, Any]]:
        where = [self.live("s")]
        params: dict[str, Any] = {"now": self.now_us}
        if app_name is not None:
            where.append("s.app_name = :app")
            params["app"] = app_name
        if user_id is not None:
            where.append("s.user_id = :user")
            params["user"] = user_id
        return " AND ".join(where), params

    def find(
        self, session_id: str, app_name: str | None, user_id: str | None
    ) -> list[tuple[str, str]]:
        where, params = self._filters(app_name, user_id)
        rows = self.conn.execute(
            f"SELECT s.app_name, s.user_id FROM {self.p}sessions s "
            f"WHERE {where} AND s.session_id = :sid ORDER BY 1, 2",
            {**params, "sid": session_id},
        )
        return [(a, u) for a, u in rows]

    def count_sessions(self, app_name: str | None, user_id: str | None) -> int:
        where, params = self._filters(app_name, user_id)
        sql = f"SELECT COUNT(*) FROM {self.p}sessions s WHERE {where}"
        return int(self.conn.execute(sql, params).fetchone()[0])

    def session_keys(
        self, app_name: str | None, user_id: str | None
    ) -> Iterator[tuple[str, str, str]]:
        """Live session keys in (app, user, id) order, read a page at a time."""
        where, params = self._filters(app_name, user_id)
        after = ("", "", "")
        while True:
            page = self.conn.execute(
                f"SELECT s.app_name, s.user_id, s.session_id FROM {self.p}sessions s "
                f"WHERE {where} AND (s.app_name, s.user_id, s.session_id) > (:a, :u, :s) "
                "ORDER BY 1, 2, 3 LIMIT :n",
                {**params, "a": after[0], "u": after[1], "s": after[2], "n": KEY_PAGE},
            ).fetchall()
            yield from page
            if len(page) < KEY_PAGE:
                return
            after = page[-1]

    def state_scopes(
        self, app_name: str | None, user_id: str | None
    ) -> tuple[list[str], list[tuple[str, str]]]:
        """Apps that have app state, and (app, user) pairs that have user state."""
        apps = [
            a
            for (a,) in self.conn.execute(
                f"SELECT DISTINCT app_name FROM {self.p}app_state ORDER BY 1"
            )
            if app_name in (None, a)
        ]
        users = [
            (a, u)
            for a, u in self.conn.execute(
                f"SELECT DISTINCT app_name, user_id FROM {self.p}user_state ORDER BY 1, 2"
            )
            if app_name in (None, a) and user_id in (None, u)
        ]
        return ([] if user_id is not None else apps), users

    def covered_event(self, key: tuple[str, str, str], branch: str, through: int) -> str | None:
        """The id of the newest stored event on ``branch`` at or before ``through``."""
        row = self.conn.execute(
            f"SELECT e.event_id FROM {self.p}events e JOIN {self.p}sessions s "
            f"ON s.pk = e.session_pk WHERE {self.live('s')} AND s.app_name = :a "
            "AND s.user_id = :u AND s.session_id = :s AND e.sequence <= :through "
            "AND (:b = '' OR e.branch = :b OR substr(e.branch, 1, length(:b) + 1) = :b || '/') "
            "ORDER BY e.sequence DESC LIMIT 1",
            {
                "now": self.now_us,
                "a": key[0],
                "u": key[1],
                "s": key[2],
                "b": branch,
                "through": through,
            },
        ).fetchone()
        return None if row is None else str(row[0])


@contextmanager
def _reader(target: Target) -> Iterator[Reader]:
    path = _existing_db(target)
    with _read_only(path, target.busy_timeout) as conn:
        reader = Reader(conn, target.table_prefix, path)
        reader.require_schema()
        yield reader


def _run(fn: Callable[..., Any], *args: Any) -> Any:
    return anyio.run(fn, *args)


# -- global options -------------------------------------------------------------------


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"sessionlite {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            envvar="SESSIONLITE_DB",
            help="Database file (default: the per-user data dir, as SessionService(None)).",
            show_default=False,
        ),
    ] = None,
    table_prefix: Annotated[
        str, typer.Option(help="Table prefix the application uses (table_prefix option).")
    ] = "",
    busy_timeout: Annotated[
        float,
        typer.Option(help="Seconds a write waits for another process's lock.", min=0),
    ] = DEFAULT_BUSY_TIMEOUT.total_seconds(),
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_show_version
        ),
    ] = False,
) -> None:
    """Inspect, export, back up and maintain a sessionlite database."""
    try:
        parse_options(table_prefix=table_prefix)
    except InvalidInputError as exc:
        raise typer.BadParameter(str(exc), param_hint="--table-prefix") from None
    ctx.obj = Target(db, table_prefix, busy_timeout)


JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
AppFilter = Annotated[str | None, typer.Option("--app", help="Only this app.")]
UserFilter = Annotated[str | None, typer.Option("--user", help="Only this user.")]
ProgressFlag = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress",
        help="Show a progress bar on stderr (default: when it is a terminal).",
        show_default=False,
    ),
]


# -- stats, sessions, show, check ------------------------------------------------------


@app.command()
@_guarded
def stats(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """Sessions, events and size, in total and per app."""
    with _reader(_target(ctx)) as reader:
        report = reader.stats()
    if json_output:
        _print_json(report)
        return
    console = _console()
    console.print(f"Database: {report['path']} (schema version {report['schema_version']})")
    console.print(
        f"Size: {_size(report['file_bytes'])} + {_size(report['wal_bytes'])} WAL, "
        f"{report['free_pages']} of {report['page_count']} pages free"
    )
    console.print(
        f"Sessions: {report['sessions']} live ({report['users']} users, "
        f"{report['events']} events); {report['expired_sessions']} expired and "
        f"{report['deleted_sessions']} deleted awaiting cleanup"
    )
    if report["apps"]:
        table = _table("app", "sessions", "users", "events")
        for row in report["apps"]:
            table.add_row(
                Text(row["app_name"]), str(row["sessions"]), str(row["users"]), str(row["events"])
            )
        console.print(table)


@app.command()
@_guarded
def sessions(
    ctx: typer.Context,
    app_name: AppFilter = None,
    user_id: UserFilter = None,
    limit: Annotated[
        int, typer.Option(help="Most sessions to list (0: all).", min=0)
    ] = DEFAULT_LIST_LIMIT,
    json_output: JsonFlag = False,
) -> None:
    """List live sessions, most recently updated first."""
    with _reader(_target(ctx)) as reader:
        rows = reader.sessions(app_name, user_id, limit)
    more = bool(limit) and len(rows) > limit
    listed = [
        {
            "app_name": a,
            "user_id": u,
            "session_id": s,
            "agent_id": agent,
            "created_at": from_micros(created),
            "updated_at": from_micros(updated),
            "expires_at": None if expires is None else from_micros(expires),
            "version": version,
            "events": events,
        }
        for a, u, s, agent, created, updated, expires, version, events in rows[: limit or None]
    ]
    if json_output:
        times = ("created_at", "updated_at", "expires_at")
        _print_json(
            {
                "sessions": [
                    {k: _iso(v) if k in times else v for k, v in item.items()} for item in listed
                ],
                "more": more,
            }
        )
        return
    console = _console()
    if not listed:
        console.print("No sessions.")
        return
    table = _table("app", "user", "session", "events", "updated (UTC)", "version")
    for item in listed:
        table.add_row(
            item["app_name"],
            item["user_id"],
            item["session_id"],
            str(item["events"]),
            _when(item["updated_at"]),
            str(item["version"]),
        )
    console.print(table)
    if more:
        console.print(f"(the {limit} most recent; pass --limit 0 for all)")


@app.command()
@_guarded
def show(
    ctx: typer.Context,
    session_id: Annotated[str, typer.Argument(help="The session's id.")],
    app_name: AppFilter = None,
    user_id: UserFilter = None,
    last: Annotated[int | None, typer.Option(help="Show only the newest N events.", min=0)] = None,
    json_output: JsonFlag = False,
) -> None:
    """A session's state, summaries and events."""
    target = _target(ctx)
    with _reader(target) as reader:
        matches = reader.find(session_id, app_name, user_id)
        version = reader.schema_version
    if not matches:
        raise SessionLiteError(f"no live session {session_id!r} in {target.path}")
    if len(matches) > 1:
        found = ", ".join(f"--app {a!r} --user {u!r}" for a, u in matches)
        raise UsageError(f"several sessions have the id {session_id!r}; pass one of: {found}")
    ((app_name, user_id),) = matches

    async def load() -> Session | None:
        options = {**target.service_options(schema_version=version), "event_limit": None}
        async with SessionService(target.path, **options) as service:
            return await service.get_session(
                app_name=app_name, user_id=user_id, session_id=session_id, num_recent_events=last
            )

    session = _run(load)
    if session is None:  # deleted or expired since the lookup
        raise SessionNotFoundError(
            f"session {session_id!r} is gone",
            app_name=app_name,
            user_id=user_id,
            session_id=session_id,
        )
    if json_output:
        _print_json(session.model_dump(mode="json"))
        return
    _render_session(_console(), session)


def _render_session(console: Console, session: Session) -> None:
    header = Table.grid(padding=(0, 2))
    header.add_column(style="bold")
    header.add_column()
    for label, value in (
        ("session", session.id),
        ("app", session.app_name),
        ("user", session.user_id),
        ("agent", session.agent_id or "-"),
        ("created", _when(session.created_at) + " UTC"),
        ("updated", _when(session.updated_at) + " UTC"),
        ("expires", _when(session.expires_at) + " UTC" if session.expires_at else "never"),
        ("version", str(session.version)),
        ("metadata", _compact(session.metadata)),
    ):
        header.add_row(label, Text(value))
    console.print(header)
    console.print(Text("\nState", style="bold"))
    if not session.state:
        console.print("  (empty)")
    for key, value in session.state.items():
        console.print(Text(f"  {key} = {_compact(value)}"))
    console.print(Text("\nSummaries", style="bold"))
    if not session.summaries:
        console.print("  (none)")
    for branch, summary in session.summaries.items():
        where = f"branch {branch!r}" if branch else "whole session"
        console.print(
            Text(
                f"  {where}, through #{summary.through_sequence}, "
                f"{_when(summary.updated_at)}:\n    {summary.text}"
            )
        )
    console.print(Text(f"\nEvents ({len(session.events)} shown)", style="bold"))
    if session.events:
        table = _table("#", "time (UTC)", "author", "content")
        for event in session.events:
            table.add_row(
                str(event.sequence),
                _when(event.timestamp),
                Text(event.author),
                Text(_describe(event)),
            )
        console.print(table)


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _describe(event: Event) -> str:
    parts = []
    if event.branch:
        parts.append(f"[{event.branch}]")
    if event.reasoning:
        parts.append(f"(thinking: {event.reasoning})")
    if event.content is not None:
        parts.append(event.content if isinstance(event.content, str) else _compact(event.content))
    parts.extend(f"-> {call.name}({_compact(call.arguments)})" for call in event.tool_calls)
    parts.extend(
        f"<- {'error ' if result.is_error else ''}{_compact(result.output)}"
        for result in event.tool_results
    )
    if event.state_delta:
        parts.append(f"state {_compact(event.state_delta)}")
    return " ".join(parts)


@app.command()
@_guarded
def check(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """Check the file's integrity and schema version (exit code 1 on a problem)."""
    target = _target(ctx)
    path = _existing_db(target)
    report = _check(path, target)
    if json_output:
        _print_json(report)
    else:
        console = _console()
        console.print(
            f"{path}: schema version {report['schema_version']} "
            f"(this sessionlite: {SCHEMA_VERSION}), integrity {report['integrity']}"
        )
        for note in report["notes"]:
            console.print(Text(f"note: {note}"))
        for problem in report["problems"]:
            console.print(Text(f"problem: {problem}"))
        console.print("OK" if report["ok"] else "FAILED")
    if not report["ok"]:
        raise typer.Exit(1)


def _check(path: Path, target: Target) -> dict[str, Any]:
    p = target.table_prefix
    problems: list[str] = []
    notes: list[str] = []
    report: dict[str, Any] = {"path": str(path), "schema_version": None, "user_version": None}
    report["supported_schema_version"] = SCHEMA_VERSION
    with _read_only(path, target.busy_timeout) as conn:
        try:
            rows = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as exc:
            return {
                **report,
                "ok": False,
                "integrity": "unreadable",
                "notes": notes,
                "problems": [f"not a readable SQLite database ({exc})"],
            }
        report["integrity"] = "ok" if rows == ["ok"] else "damaged"
        problems.extend(rows[:MAX_REPORTED_PROBLEMS] if rows != ["ok"] else [])
        report["user_version"] = int(conn.execute("PRAGMA user_version").fetchone()[0])
        version = stored_version(conn, p)
        report["schema_version"] = version
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        missing = [f"{p}{t}" for t in _REQUIRED_TABLES if f"{p}{t}" not in tables]
        if version == 0:
            problems.append(f"no sessionlite tables with prefix {p!r}")
        elif version > SCHEMA_VERSION:
            problems.append(
                f"schema version {version} was written by a newer sessionlite (this one "
                f"supports up to {SCHEMA_VERSION}); upgrade sessionlite"
            )
        else:
            if version < SCHEMA_VERSION:
                notes.append(
                    f"schema version {version} is migrated to {SCHEMA_VERSION} when a "
                    "SessionService next opens the file"
                )
            if missing:
                problems.append(f"missing table(s): {', '.join(missing)}")
            else:
                problems.extend(_consistency(conn, p))
    report.update(ok=not problems, notes=notes, problems=problems)
    return report


def _consistency(conn: sqlite3.Connection, p: str) -> list[str]:
    """Invariants SQLite cannot check: every event belongs to a session, and no stored
    sequence is above its session's counter (which would let a sequence be reused)."""
    problems = []
    (orphans,) = conn.execute(
        f"SELECT COUNT(*) FROM {p}events e WHERE NOT EXISTS "
        f"(SELECT 1 FROM {p}sessions s WHERE s.pk = e.session_pk)"
    ).fetchone()
    if orphans:
        problems.append(f"{orphans} event(s) belong to no session")
    (ahead,) = conn.execute(
        f"SELECT COUNT(*) FROM {p}sessions s WHERE s.last_sequence < "
        f"(SELECT MAX(sequence) FROM {p}events e WHERE e.session_pk = s.pk)"
    ).fetchone()
    if ahead:
        problems.append(f"{ahead} session(s) have events beyond their sequence counter")
    return problems


# -- export / import -------------------------------------------------------------------


_STRICT = ConfigDict(extra="forbid")


class Header(BaseModel):
    """First line of an export."""

    model_config = _STRICT
    type: Literal["header"] = "header"
    format: str = EXPORT_FORMAT
    version: int = EXPORT_VERSION


class SummaryEntry(BaseModel):
    model_config = _STRICT
    branch: str
    text: str
    through_event_id: str | None
    """The newest stored event the summary covers (None: it covers no stored event)."""
    updated_at: AwareDatetime


class SessionLine(BaseModel):
    """A session; its events follow it, one line each."""

    model_config = _STRICT
    type: Literal["session"] = "session"
    app_name: str
    user_id: str
    id: str
    agent_id: str | None
    metadata: dict[str, JsonValue]
    state: dict[str, JsonValue]
    """The session's own keys (app and user state have lines of their own)."""
    created_at: AwareDatetime
    updated_at: AwareDatetime
    summaries: list[SummaryEntry]


class EventLine(BaseModel):
    model_config = _STRICT
    type: Literal["event"] = "event"
    event: Event


class AppStateLine(BaseModel):
    model_config = _STRICT
    type: Literal["app_state"] = "app_state"
    app_name: str
    state: dict[str, JsonValue]


class UserStateLine(BaseModel):
    model_config = _STRICT
    type: Literal["user_state"] = "user_state"
    app_name: str
    user_id: str
    state: dict[str, JsonValue]


class EndLine(BaseModel):
    """Last line: what the export holds, so that a truncated file is detected."""

    model_config = _STRICT
    type: Literal["end"] = "end"
    sessions: int
    events: int


ExportLine = Annotated[
    Header | SessionLine | EventLine | AppStateLine | UserStateLine | EndLine,
    Field(discriminator="type"),
]
_LINE: TypeAdapter[ExportLine] = TypeAdapter(ExportLine)
_NO_SEQUENCE = {"event": {"sequence"}}  # store-assigned: renumbered on import


def _line(model: BaseModel, **dump: Any) -> bytes:
    return model.model_dump_json(**dump).encode() + b"\n"


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


@app.command()
@_guarded
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
    target = _target(ctx)
    _check_output(output, overwrite)
    with _reader(target) as reader, _open_output(output) as out:
        counts = _run(_export, target, reader, out, app_name, user_id, _progress(progress))
    if output != "-":
        _err_console().print(
            f"Exported {counts.sessions} sessions and {counts.events} events to {output}"
        )


async def _export(
    target: Target,
    reader: Reader,
    out: IO[bytes],
    app_name: str | None,
    user_id: str | None,
    progress: Progress,
) -> EndLine:
    end = EndLine(sessions=0, events=0)
    out.write(_line(Header()))
    options = target.service_options(schema_version=reader.schema_version)
    async with SessionService(target.path, **options) as service:
        with progress:
            task = progress.add_task("Exporting", total=reader.count_sessions(app_name, user_id))
            for key in reader.session_keys(app_name, user_id):
                events = await _export_session(service, reader, out, key)
                if events is not None:
                    end.sessions += 1
                    end.events += events
                progress.advance(task)
        apps, users = reader.state_scopes(app_name, user_id)
        for scope_app in apps:
            if state := await service.get_app_state(scope_app):
                out.write(_line(AppStateLine(app_name=scope_app, state=state)))
        for scope_app, scope_user in users:
            if state := await service.get_user_state(scope_app, scope_user):
                out.write(_line(UserStateLine(app_name=scope_app, user_id=scope_user, state=state)))
    out.write(_line(end))
    return end


async def _export_session(
    service: SessionService, reader: Reader, out: IO[bytes], key: tuple[str, str, str]
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
            k: v for k, v in session.state.items() if not k.startswith((APP_PREFIX, USER_PREFIX))
        },
        created_at=session.created_at,
        updated_at=session.updated_at,
        summaries=[
            SummaryEntry(
                branch=branch,
                text=summary.text,
                through_event_id=reader.covered_event(key, branch, summary.through_sequence),
                updated_at=summary.updated_at,
            )
            for branch, summary in sorted(session.summaries.items())
        ],
    )
    out.write(_line(line))
    count = 0
    try:
        async for event in service.iter_events(
            app_name=app_name, user_id=user_id, session_id=session_id
        ):
            out.write(_line(EventLine(event=event), exclude=_NO_SEQUENCE))
            count += 1
    except SessionNotFoundError:  # deleted between the two reads: its line stays, alone
        pass
    return count


@app.command("import")
@_guarded
def import_(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="Export file to read, or - for stdin.")],
    chunk_size: Annotated[
        int, typer.Option(help="Events written per transaction.", min=1)
    ] = DEFAULT_IMPORT_CHUNK,
    progress: ProgressFlag = None,
) -> None:
    """Load an export (streamed). Safe to re-run: stored events are not duplicated."""
    target = _target(ctx)
    path = _new_or_existing_db(target)
    if source != "-":
        if Path(source).is_dir():
            raise UsageError(f"{source} is a directory; pass an export file")
        if not Path(source).exists():
            raise UsageError(f"no such file: {source}")
    if path.exists():
        with _reader(target):  # refuse a file without our tables, rather than add them
            pass
    with _open_input(source) as (stream, size):
        result = _run(_import, target, stream, size, chunk_size, _progress(progress))
    console = _err_console()
    console.print(f"Imported {result.sessions} sessions and {result.events} events into {path}")
    if result.skipped_summaries:
        console.print(
            f"warning: {result.skipped_summaries} summaries were not restored (the events "
            "they cover are missing, or were stored before this import)"
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
    events: int = 0
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
        self.pending: list[tuple[int, Event]] = []  # (line number, event)
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

    async def add(self, event: Event, number: int) -> None:
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
    clock, summarizer = _RestoreClock(), _RestoreSummarizer()
    options = {**target.service_options(), "clock": clock, "summarizer": summarizer}
    result = ImportResult()
    current: _SessionImport | None = None
    header: Header | None = None
    end: EndLine | None = None

    async def close_session() -> None:
        nonlocal current
        if current is not None:
            await current.finish()
            result.events += current.events
            result.skipped_summaries += current.skipped_summaries
            current = None

    # event_limit=1: get_or_create_session loads (almost) no history when a re-run
    # finds the session stored.
    async with SessionService(target.db, event_limit=1, **options) as service:
        with progress:
            task = progress.add_task("Importing", total=size)
            number = 0
            for number, raw in enumerate(stream, start=1):
                progress.advance(task, len(raw))
                if not raw.strip():
                    continue
                item = _parse_line(raw, number)
                if header is None:
                    header = _check_header(item, number)
                    continue
                with _at_line(number):
                    if end is not None:
                        raise DataError("data after the end line")
                    if isinstance(item, EventLine):
                        if current is None:
                            raise DataError("an event before any session line")
                        await current.add(item.event, number)
                        continue
                    await close_session()
                    if isinstance(item, SessionLine):
                        current = await _start_session(service, clock, summarizer, item, chunk_size)
                        result.sessions += 1
                    elif isinstance(item, (AppStateLine, UserStateLine)):
                        await _restore_state(service, clock, item)
                    elif isinstance(item, EndLine):
                        end = item
                    else:
                        raise DataError("a second header line")
            with _at_line(number):  # a file without its end line ends a session too
                await close_session()
    if header is None:
        raise DataError("the file is empty; expected a sessionlite export")
    if end is None:
        raise DataError(
            f"the export is truncated (no end line after line {number}); what it held is "
            "imported: complete the file and import it again (stored events are skipped)"
        )
    if (end.sessions, end.events) != (result.sessions, result.events):
        raise DataError(
            f"the end line announces {end.sessions} sessions and {end.events} events, but "
            f"the file holds {result.sessions} and {result.events}"
        )
    return result


@contextmanager
def _at_line(number: int) -> Iterator[None]:
    """Report what goes wrong while importing a line as bad data at that line."""
    try:
        yield
    except DataError as exc:
        exc.line = number if exc.line is None else exc.line
        raise
    except (InvalidInputError, SessionNotFoundError) as exc:
        # Bad values the service refuses, or a session deleted while importing it.
        raise DataError(str(exc), line=number) from exc


def _parse_line(raw: bytes, number: int) -> ExportLine:
    try:
        return _LINE.validate_json(raw)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in error["loc"])
        raise DataError(
            f"line {number}: not a sessionlite export line ({where}: {error['msg']})"
        ) from None


def _check_header(item: ExportLine, number: int) -> Header:
    if not isinstance(item, Header) or item.format != EXPORT_FORMAT:
        raise DataError(f"line {number}: not a sessionlite export (no header line)")
    if item.version > EXPORT_VERSION:
        raise DataError(
            f"the export has format version {item.version}; this sessionlite reads up to "
            f"{EXPORT_VERSION}: upgrade sessionlite"
        )
    return item


async def _start_session(
    service: SessionService,
    clock: _RestoreClock,
    summarizer: _RestoreSummarizer,
    line: SessionLine,
    chunk_size: int,
) -> _SessionImport:
    if prefixed := [k for k in line.state if k.startswith((APP_PREFIX, USER_PREFIX, TEMP_PREFIX))]:
        raise DataError(
            f"session {line.id!r}: state key {prefixed[0]!r} has a scope prefix; a session "
            "line holds the session's own keys (app and user state have lines of their own)"
        )
    clock.at = line.created_at
    session = await service.get_or_create_session(
        app_name=line.app_name,
        user_id=line.user_id,
        session_id=line.id,
        agent_id=line.agent_id,
        metadata=line.metadata,
    )
    session.events.clear()
    importing = _SessionImport(service, clock, summarizer, line, session, chunk_size)
    await importing.start()
    return importing


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


# -- maintenance ------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str, option: str) -> timedelta:
    match = _DURATION.match(text)
    if match is None:
        raise typer.BadParameter(
            f"{text!r} is not a duration; use seconds or e.g. 30m, 12h, 7d", param_hint=option
        )
    return timedelta(seconds=float(match[1]) * _UNITS[match[2]])


@app.command()
@_guarded
def cleanup(
    ctx: typer.Context,
    retention: Annotated[
        str,
        typer.Option(help="Purge sessions deleted longer ago than this (e.g. 7d, 12h, 0)."),
    ] = f"{DEFAULT_SOFT_DELETE_RETENTION.days}d",
    json_output: JsonFlag = False,
) -> None:
    """Run one cleaner pass: expire sessions and state past their TTL, purge deleted ones."""
    target = _target(ctx)
    keep = _duration(retention, "--retention")
    with _reader(target):
        pass

    async def run() -> Any:
        # Retention 0: purge every deleted session now (no soft-delete grace period).
        retention_options = {"soft_delete_retention": keep} if keep else {"soft_delete": False}
        options = {**target.service_options(), **retention_options}
        async with SessionService(target.path, **options) as service:
            return await service.run_cleanup()

    report = _run(run)
    if json_output:
        _print_json({"path": str(target.path), **report.model_dump()})
        return
    console = _console()
    if not report.ran:
        console.print("Nothing to clean.")
        return
    table = _table("cleaned", "count")
    for name, value in report.model_dump().items():
        if name != "ran":
            table.add_row(name.replace("_", " "), str(value))
    console.print(table)


@app.command()
@_guarded
def vacuum(ctx: typer.Context) -> None:
    """Rebuild the file to return free pages to the disk (takes the write lock)."""
    target = _target(ctx)
    with _reader(target):
        pass
    path = target.path
    before = _disk_size(path)
    with map_db_errors(str(path)):
        conn = sqlite3.connect(path, timeout=target.busy_timeout, isolation_level=None)
        try:
            conn.execute("VACUUM")
            # Fold the rewritten pages back into the file and empty the WAL.
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
    after = _disk_size(path)
    _console().print(f"Vacuumed {path}: {_size(before)} -> {_size(after)}")


def _disk_size(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


@app.command()
@_guarded
def backup(
    ctx: typer.Context,
    dest: Annotated[Path, typer.Argument(help="File to write the copy to.")],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing file.")
    ] = False,
    progress: ProgressFlag = None,
) -> None:
    """Copy the database to DEST while applications keep using it."""
    target = _target(ctx)
    with _reader(target):
        pass
    path = target.path
    _check_file_arg(dest, "DEST")
    if dest.resolve() == path.resolve():
        raise UsageError("DEST is the database itself; pass another file")
    if not dest.parent.is_dir():
        raise UsageError(f"directory {dest.parent} does not exist; create it first")
    if dest.exists() and not overwrite:
        raise UsageError(f"{dest} exists; pass --overwrite to replace it")
    created = not dest.exists()
    bar = _progress(progress)
    try:
        verdict = _backup(path, dest, target.busy_timeout, bar)
    except BaseException:
        if created:  # leave nothing behind (SQLite rolled the copy back; the file stays)
            dest.unlink(missing_ok=True)
            Path(f"{dest}-journal").unlink(missing_ok=True)
        raise
    if verdict != "ok":  # pragma: no cover - a copy of a sound file is sound
        raise SessionLiteError(f"the copy at {dest} failed its check: {verdict}")
    _err_console().print(f"Backed up {path} to {dest} ({_size(dest.stat().st_size)})")


def _backup(path: Path, dest: Path, busy_timeout: float, bar: Progress) -> str:
    """Copy ``path`` to ``dest`` with SQLite's backup API; returns the copy's quick_check."""
    with _read_only(path, busy_timeout) as source, bar:
        task = bar.add_task("Backing up", total=None)

        def step(status: int, remaining: int, total: int) -> None:
            bar.update(task, completed=total - remaining, total=total)

        # Holding a read transaction pins one snapshot for the whole copy: writers in
        # other processes carry on (WAL), and the copy never restarts on their commits.
        source.execute("BEGIN")
        source.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        with map_db_errors(str(dest)):
            copy = sqlite3.connect(dest, timeout=busy_timeout)
            try:
                source.backup(copy, pages=BACKUP_STEP_PAGES, progress=step, sleep=0)
                (verdict,) = copy.execute("PRAGMA quick_check").fetchone()
            finally:
                copy.close()
        source.execute("COMMIT")
    return str(verdict)


@app.command()
def demo(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Database file (':memory:' for none); overrides the global --db."
        ),
    ] = None,
) -> None:
    """Play a short scripted agent conversation, stored and shown."""
    global_db = _target(ctx).db
    path = db if db is not None else (None if global_db is None else str(global_db))
    try:
        _run(run_demo, path, sys.stdout)
    except SessionLiteError as exc:
        raise _fail(str(exc), 1) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line (the ``sessionlite`` script) and return its exit code."""
    try:
        app(args=None if argv is None else list(argv), prog_name="sessionlite")
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)  # pragma: no cover - typer exits with ints
        return 1  # pragma: no cover
    return 0  # pragma: no cover - standalone typer always exits
