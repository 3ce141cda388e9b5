"""Maintenance commands: ``cleanup``, ``vacuum`` and ``backup``.

``backup`` copies the file with SQLite's online backup API inside one read transaction:
a consistent snapshot, taken while applications keep writing. ``vacuum`` and
``cleanup`` write, so they wait for the lock at most ``--busy-timeout``.

``cleanup`` works on PostgreSQL too; ``vacuum`` and ``backup`` are SQLite commands and
refuse a URL (exit code 2), pointing to ``pg_dump`` and autovacuum.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress

from ..config import DEFAULT_SOFT_DELETE_RETENTION
from ..errors import SessionLiteError
from ..service import SessionService
from ..store.sqlite.errors import map_db_errors
from .app import (
    JsonFlag,
    ProgressFlag,
    UsageError,
    check_file_arg,
    expand_user,
    guarded,
    run,
    sqlite_only,
    target_of,
)
from .output import console, err_console, print_json, progress_bar, size, table
from .queries import read_only, reader

__all__ = ["BACKUP_STEP_PAGES", "backup", "cleanup", "parse_duration", "vacuum"]

BACKUP_STEP_PAGES = 1024  # database pages copied per backup step (one progress update)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, option: str) -> timedelta:
    """``90``, ``30m``, ``12h``, ``7d``; a bad value is a usage error on ``option``."""
    match = _DURATION.match(text)
    if match is None:
        raise typer.BadParameter(
            f"{text!r} is not a duration; use seconds or e.g. 30m, 12h, 7d", param_hint=option
        )
    return timedelta(seconds=float(match[1]) * _UNITS[match[2]])


@guarded
def cleanup(
    ctx: typer.Context,
    retention: Annotated[
        str,
        typer.Option(help="Purge sessions deleted longer ago than this (e.g. 7d, 12h, 0)."),
    ] = f"{DEFAULT_SOFT_DELETE_RETENTION.days}d",
    json_output: JsonFlag = False,
) -> None:
    """Run one cleaner pass: expire sessions and state past their TTL, purge deleted ones."""
    target = target_of(ctx)
    keep = parse_duration(retention, "--retention")
    with reader(target):
        pass

    async def clean() -> Any:
        # Retention 0: purge every deleted session now (no soft-delete grace period).
        retention_options = {"soft_delete_retention": keep} if keep else {"soft_delete": False}
        options = {**target.service_options(), **retention_options}
        async with SessionService(target.db, **options) as service:
            return await service.run_cleanup()

    report = run(clean)
    if json_output:
        print_json({"path": target.name, **report.model_dump()})
        return
    out = console()
    if not report.ran:
        out.print("Nothing to clean.")
        return
    cleaned = table("cleaned", "count")
    for name, value in report.model_dump().items():
        if name != "ran":
            cleaned.add_row(name.replace("_", " "), str(value))
    out.print(cleaned)


@guarded
def vacuum(ctx: typer.Context) -> None:
    """Rebuild the file to return free pages to the disk (takes the write lock; SQLite)."""
    target = target_of(ctx)
    sqlite_only(
        target, "vacuum", "PostgreSQL's autovacuum does this work (back it up with pg_dump)"
    )
    with reader(target):
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
    console().print(f"Vacuumed {path}: {size(before)} -> {size(after)}")


def _disk_size(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


@guarded
def backup(
    ctx: typer.Context,
    dest: Annotated[Path, typer.Argument(help="File to write the copy to.")],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing file.")
    ] = False,
    progress: ProgressFlag = None,
) -> None:
    """Copy the database to DEST while applications keep using it (SQLite)."""
    target = target_of(ctx)
    sqlite_only(target, "backup", "back it up with pg_dump")
    with reader(target):
        pass
    path = target.path
    dest = Path(expand_user(str(dest)))
    check_file_arg(dest, "DEST")
    if dest.resolve() == path.resolve():
        raise UsageError("DEST is the database itself; pass another file")
    if not dest.parent.is_dir():
        raise UsageError(f"directory {dest.parent} does not exist; create it first")
    if dest.exists() and not overwrite:
        raise UsageError(f"{dest} exists; pass --overwrite to replace it")
    created = not dest.exists()
    bar = progress_bar(progress)
    try:
        verdict = _backup(path, dest, target.busy_timeout, bar)
    except BaseException:
        if created:  # leave nothing behind (SQLite rolled the copy back; the file stays)
            dest.unlink(missing_ok=True)
            Path(f"{dest}-journal").unlink(missing_ok=True)
        raise
    if verdict != "ok":  # pragma: no cover - a copy of a sound file is sound
        raise SessionLiteError(f"the copy at {dest} failed its check: {verdict}")
    err_console().print(f"Backed up {path} to {dest} ({size(dest.stat().st_size)})")


def _backup(path: Path, dest: Path, busy_timeout: float, bar: Progress) -> str:
    """Copy ``path`` to ``dest`` with SQLite's backup API; returns the copy's quick_check."""
    with read_only(path, busy_timeout) as source, bar:
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
