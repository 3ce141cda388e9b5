"""``demo``: play the scripted agent conversation of :mod:`sessionlite.demo`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..demo import run_demo
from ..errors import SessionLiteError
from .app import expand_user, fail, run, target_of

__all__ = ["demo"]


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
    global_db = target_of(ctx).db
    path = expand_user(db) if db is not None else (None if global_db is None else str(global_db))
    try:
        run(run_demo, path, sys.stdout)
    except SessionLiteError as exc:
        raise fail(str(exc), 1) from None
