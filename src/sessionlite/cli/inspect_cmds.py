"""Read-only commands: ``stats``, ``sessions``, ``show`` and ``check``.

They read through a read-only connection (see :mod:`.queries`: a SQLite file or a
PostgreSQL database); ``show`` then loads the session through a
:class:`~sessionlite.SessionService`, as an application would, without taking the
write lock.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from ..errors import SessionLiteError, SessionNotFoundError
from ..models import Session
from ..service import SessionService
from ..timestamps import from_micros
from .app import (
    AppFilter,
    JsonFlag,
    UsageError,
    UserFilter,
    guarded,
    run,
    target_of,
)
from .output import console, iso, listing, print_json, render_session, size, table, when
from .queries import check_report, reader

__all__ = ["DEFAULT_LIST_LIMIT", "check", "sessions", "show", "stats"]

DEFAULT_LIST_LIMIT = 50  # sessions the `sessions` command lists unless --limit says


@guarded
def stats(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """Sessions, events and size, in total and per app."""
    with reader(target_of(ctx)) as db:
        report = db.stats()
    if json_output:
        print_json(report)
        return
    out = console()
    out.print(Text(f"Database: {report['path']} (schema version {report['schema_version']})"))
    if "table_bytes" in report:  # PostgreSQL
        out.print(f"Size: {size(report['table_bytes'])} in tables and indexes")
    else:
        out.print(
            f"Size: {size(report['file_bytes'])} + {size(report['wal_bytes'])} WAL, "
            f"{report['free_pages']} of {report['page_count']} pages free"
        )
    out.print(
        f"Sessions: {report['sessions']} live ({report['users']} users, "
        f"{report['events']} events); {report['expired_sessions']} expired and "
        f"{report['deleted_sessions']} deleted awaiting cleanup"
    )
    if report["apps"]:
        per_app = table("app", "sessions", "users", "events")
        for row in report["apps"]:
            per_app.add_row(
                Text(row["app_name"]), str(row["sessions"]), str(row["users"]), str(row["events"])
            )
        out.print(per_app)


@guarded
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
    with reader(target_of(ctx)) as db:
        rows = db.sessions(app_name, user_id, limit)
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
        print_json(
            {
                "sessions": [
                    {k: iso(v) if k in times else v for k, v in item.items()} for item in listed
                ],
                "more": more,
            }
        )
        return
    out = console()
    if not listed:
        out.print("No sessions.")
        return
    listing(
        out,
        ("app", "user", "session", "events", "updated (UTC)", "version"),
        [
            (
                item["app_name"],
                item["user_id"],
                item["session_id"],
                str(item["events"]),
                when(item["updated_at"]),
                str(item["version"]),
            )
            for item in listed
        ],
        whole="session",
    )
    if more:
        out.print(f"(the {limit} most recent; pass --limit 0 for all)")


@guarded
def show(
    ctx: typer.Context,
    session_id: Annotated[str, typer.Argument(help="The session's id.")],
    app_name: AppFilter = None,
    user_id: UserFilter = None,
    last: Annotated[int | None, typer.Option(help="Show only the newest N events.", min=0)] = None,
    json_output: JsonFlag = False,
) -> None:
    """A session's state, summaries and events."""
    target = target_of(ctx)
    with reader(target) as db:
        matches = db.find(session_id, app_name, user_id)
        version = db.schema_version
    if not matches:
        raise SessionLiteError(f"no live session {session_id!r} in {target.name}")
    if len(matches) > 1:
        found = ", ".join(f"--app {a!r} --user {u!r}" for a, u in matches)
        raise UsageError(f"several sessions have the id {session_id!r}; pass one of: {found}")
    ((app_name, user_id),) = matches

    async def load() -> Session | None:
        options = {**target.service_options(schema_version=version), "event_limit": None}
        async with SessionService(target.db, **options) as service:
            return await service.get_session(
                app_name=app_name, user_id=user_id, session_id=session_id, num_recent_events=last
            )

    session = run(load)
    if session is None:  # deleted or expired since the lookup
        raise SessionNotFoundError(
            f"session {session_id!r} is gone",
            app_name=app_name,
            user_id=user_id,
            session_id=session_id,
        )
    if json_output:
        print_json(session.model_dump(mode="json"))
        return
    render_session(console(), session)


@guarded
def check(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """Check schema, tables, invariants and a SQLite file's integrity (exit 1 on a problem)."""
    report = check_report(target_of(ctx))
    if json_output:
        print_json(report)
    else:
        out = console()
        head = f"{report['path']}: {_schema(report)}"
        if "integrity" in report:  # SQLite
            head += f", integrity {report['integrity']}"
        out.print(Text(head))
        for note in report["notes"]:
            out.print(Text(f"note: {note}"))
        for problem in report["problems"]:
            out.print(Text(f"problem: {problem}"))
        out.print("OK" if report["ok"] else "FAILED")
    if not report["ok"]:
        raise typer.Exit(1)


def _schema(report: dict[str, Any]) -> str:
    """The schema ``check`` found, for people: version None when the file cannot be
    read, 0 when it holds no sessionlite tables (with the table prefix)."""
    version = report["schema_version"]
    if version is None:
        return "schema unknown"
    if version == 0:
        return "no sessionlite schema"
    return f"schema version {version} (this sessionlite: {report['supported_schema_version']})"
