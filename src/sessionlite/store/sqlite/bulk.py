"""Many rows per statement: multi-row ``VALUES`` lists in a few fixed sizes.

The writer thread gives up the GIL while SQLite runs a statement and must take it back
after each one; while the event loop is busy running Python, taking it back can wait for
the interpreter's switch interval (5 ms). ``executemany`` runs one statement per row, so
a batch of a thousand rows meant thousands of such hand-overs. Here each table gets one
statement per :data:`MAX_ROWS` rows, which SQLite runs whole while the event loop keeps
going.

Statement texts come in a few fixed sizes (up to 8 rows exactly, then powers of two up
to :data:`MAX_ROWS`) so that prepared statements are reused; a short chunk is padded
with all-``NULL`` rows, which every template must ignore (``WHERE column1 IS NOT NULL``
in an ``INSERT … SELECT``, or a join that a ``NULL`` key never matches).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from typing import Any

__all__ = ["MAX_ROWS", "padded_size", "run_values", "values_statement"]

MAX_ROWS = 2048  # rows per statement: x 7 parameters, well below SQLite's 32766
_EXACT_UP_TO = 8  # small chunks are not padded


@functools.lru_cache(maxsize=256)
def values_statement(template: str, width: int, rows: int) -> str:
    """``template`` with ``{values}`` replaced by ``rows`` rows of ``width`` parameters."""
    row = "(" + ",".join("?" * width) + ")"
    return template.replace("{values}", ",".join([row] * rows))


def padded_size(rows: int) -> int:
    """The statement size that holds ``rows`` rows (1 to :data:`MAX_ROWS`)."""
    if rows <= _EXACT_UP_TO:
        return rows
    return min(MAX_ROWS, 1 << (rows - 1).bit_length())


def run_values(
    conn: sqlite3.Connection, template: str, width: int, rows: Sequence[Sequence[Any]]
) -> list[Any]:
    """Run ``template`` over ``rows`` (each of ``width`` values); the rows it returns."""
    results: list[Any] = []
    for start in range(0, len(rows), MAX_ROWS):
        chunk = rows[start : start + MAX_ROWS]
        size = padded_size(len(chunk))
        params = [value for row in chunk for value in row]
        params.extend([None] * (width * (size - len(chunk))))
        results.extend(conn.execute(values_statement(template, width, size), params))
    return results
