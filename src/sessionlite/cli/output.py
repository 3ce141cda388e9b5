"""What the commands print: consoles, JSON, tables, sizes, times, progress bars, and a
session rendered for reading.

Consoles are built per call (``sys.stdout`` may have been swapped by tests or
redirections) and print without rich markup: session ids, paths and contents are shown
as they are.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import typer
from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ..models import Event, Session

__all__ = [
    "compact",
    "console",
    "err_console",
    "iso",
    "listing",
    "print_json",
    "progress_bar",
    "render_session",
    "size",
    "table",
    "when",
]


def console() -> Console:
    """A console on stdout."""
    return Console(highlight=False, markup=False, soft_wrap=True)


def err_console() -> Console:
    """A console on stderr (messages, progress)."""
    return Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


def print_json(value: Any) -> None:
    """``value`` as one indented JSON document on stdout."""
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def iso(value: datetime | None) -> str | None:
    """A time as ``--json`` prints it: the format pydantic uses elsewhere (show, export)."""
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def when(value: datetime | None) -> str:
    """A time for a table cell (UTC, to the second)."""
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def progress_bar(enabled: bool | None) -> Progress:
    """A progress display on stderr; by default only when stderr is a terminal."""
    stderr = err_console()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=stderr,
        disable=not stderr.is_terminal if enabled is None else not enabled,
    )


def table(*headers: str) -> Table:
    """A compact table whose cells wrap instead of being cut: ids must stay whole."""
    result = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for header in headers:
        result.add_column(header, overflow="fold")
    return result


_NARROWEST = 4  # a column `listing` narrows on a terminal keeps at least this width
_UNBOUNDED = 1_000_000  # a width to measure a table's natural width at


def listing(
    out: Console, headers: Sequence[str], rows: Sequence[Sequence[str]], *, whole: str
) -> None:
    """Rows under their headers; the column headed ``whole`` (ids, to be pasted into
    another command) is never wrapped and never cut.

    On a terminal, a table: if it is wider than the terminal, the other columns are
    narrowed (their cells ellipsized, the widest first). Elsewhere (a pipe, a file), or
    when even that does not make the table fit, plain columns separated by two spaces,
    one line per row, never wrapped (a terminal folds a line wider than itself on
    screen, but no line break is put inside an id).
    """
    keep = list(headers).index(whole)
    widths = [
        max([cell_len(header), *(cell_len(row[i]) for row in rows)])
        for i, header in enumerate(headers)
    ]
    if out.is_terminal:
        overhead = _natural_width(out, _fixed_table(headers, rows, widths, keep)) - sum(widths)
        excess = sum(widths) + overhead - out.width
        narrowable = sum(
            w - _NARROWEST for i, w in enumerate(widths) if i != keep and w > _NARROWEST
        )
        if excess <= narrowable:
            while excess > 0:
                widest = max((i for i in range(len(widths)) if i != keep), key=widths.__getitem__)
                widths[widest] -= 1
                excess -= 1
            out.print(_fixed_table(headers, rows, widths, keep))
            return
    for line in (headers, *rows):
        cells = (cell + " " * (widths[i] - cell_len(cell)) for i, cell in enumerate(line))
        out.print(Text("  ".join(cells).rstrip()), soft_wrap=True)


def _fixed_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[int], keep: int
) -> Table:
    result = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for i, header in enumerate(headers):
        result.add_column(
            header, width=widths[i], no_wrap=True, overflow="ignore" if i == keep else "ellipsis"
        )
    for row in rows:
        result.add_row(*(Text(cell) for cell in row))
    return result


def _natural_width(out: Console, renderable: Table) -> int:
    return Measurement.get(out, out.options.update_width(_UNBOUNDED), renderable).maximum


def size(n: int) -> str:
    """A byte count for people: ``512 B``, ``68.0 KiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def compact(value: Any) -> str:
    """A JSON value on one line."""
    return json.dumps(value, ensure_ascii=False)


def render_session(out: Console, session: Session) -> None:
    """A session's details, state, summaries and events (``show``)."""
    header = Table.grid(padding=(0, 2))
    header.add_column(style="bold")
    header.add_column()
    for label, value in (
        ("session", session.id),
        ("app", session.app_name),
        ("user", session.user_id),
        ("agent", session.agent_id or "-"),
        ("created", when(session.created_at) + " UTC"),
        ("updated", when(session.updated_at) + " UTC"),
        ("expires", when(session.expires_at) + " UTC" if session.expires_at else "never"),
        ("version", str(session.version)),
        ("metadata", compact(session.metadata)),
    ):
        header.add_row(label, Text(value))
    out.print(header)
    out.print(Text("\nState", style="bold"))
    if not session.state:
        out.print("  (empty)")
    for key, value in session.state.items():
        out.print(Text(f"  {key} = {compact(value)}"))
    out.print(Text("\nSummaries", style="bold"))
    if not session.summaries:
        out.print("  (none)")
    for branch, summary in session.summaries.items():
        where = f"branch {branch!r}" if branch else "whole session"
        out.print(
            Text(
                f"  {where}, through #{summary.through_sequence}, "
                f"{when(summary.updated_at)}:\n    {summary.text}"
            )
        )
    out.print(Text(f"\nEvents ({len(session.events)} shown)", style="bold"))
    if session.events:
        events = table("#", "time (UTC)", "author", "content")
        for event in session.events:
            events.add_row(
                str(event.sequence),
                when(event.timestamp),
                Text(event.author),
                Text(_describe(event)),
            )
        out.print(events)


def _describe(event: Event) -> str:
    parts = []
    if event.branch:
        parts.append(f"[{event.branch}]")
    if event.reasoning:
        parts.append(f"(thinking: {event.reasoning})")
    if event.content is not None:
        parts.append(event.content if isinstance(event.content, str) else compact(event.content))
    parts.extend(f"-> {call.name}({compact(call.arguments)})" for call in event.tool_calls)
    parts.extend(
        f"<- {'error ' if result.is_error else ''}{compact(result.output)}"
        for result in event.tool_results
    )
    if event.state_delta:
        parts.append(f"state {compact(event.state_delta)}")
    return " ".join(parts)
