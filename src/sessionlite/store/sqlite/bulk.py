"""Many rows per statement: multi-row ``VALUES`` lists in a few fixed sizes.

The writer thread gives up the GIL only while SQLite runs a statement and must take it
back after each one; when the event loop is busy, taking it back can wait for the
interpreter's switch interval (5 ms). ``executemany`` runs one statement per row, so a
batch of a thousand rows meant a thousand such hand-overs. Here a batch is a handful of
statements, each of which SQLite runs whole while the event loop keeps going.

Statement texts come in fixed sizes (powers of two up to :data:`MAX_ROWS`) so that
SQLite's prepared statements are reused: ``n`` rows take at most ``log2(MAX_ROWS) + 1 +
n // MAX_ROWS`` statements.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["MAX_ROWS", "chunks", "run_values", "values_statement"]

MAX_ROWS = 256  # rows per statement; x 7 parameters stays far below SQLite's limit
_SIZES = tuple(1 << shift for shift in range(MAX_ROWS.bit_length() - 1, -1, -1))


@functools.lru_cache(maxsize=512)
def values_statement(template: str, width: int, rows: int) -> str:
    """``template`` with ``{values}`` replaced by ``rows`` rows of ``width`` parameters."""
    row = "(" + ",".join("?" * width) + ")"
    return template.replace("{values}", ",".join([row] * rows))


def chunks(rows: Sequence[Sequence[Any]]) -> Iterator[tuple[int, list[Any]]]:
    """``(size, flat parameters)`` for each statement that covers ``rows``."""
    start, total = 0, len(rows)
    while start < total:
        left = total - start
        size = next(s for s in _SIZES if s <= left)
        yield size, [value for row in rows[start : start + size] for value in row]
        start += size


def run_values(
    conn: sqlite3.Connection, template: str, width: int, rows: Sequence[Sequence[Any]]
) -> list[Any]:
    """Run ``template`` over ``rows`` (each of ``width`` values); the rows it returns."""
    results: list[Any] = []
    for size, params in chunks(rows):
        results.extend(conn.execute(values_statement(template, width, size), params))
    return results
