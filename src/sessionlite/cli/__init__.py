"""The ``sessionlite`` command: inspect, export, import, copy, back up and maintain a
database.

Usage: ``sessionlite [--db PATH|URL] COMMAND ...`` (also ``python -m sessionlite ...``).
``--db`` is a SQLite file or a ``postgresql://`` URL.

``stats``, ``sessions`` and ``check`` read through a read-only connection (a sqlite3
one, or psycopg's for PostgreSQL: see :mod:`.queries`). ``show``, ``export``,
``import``, ``copy``, ``import-adk``, ``import-openai-agents`` and ``cleanup`` go
through :class:`~sessionlite.SessionService`, like an application would. ``copy``
streams an export straight into an import on another database (SQLite to PostgreSQL
and back). ``backup`` copies a SQLite file with SQLite's online backup API inside one
read transaction: a consistent snapshot, taken while applications keep writing;
``backup`` and ``vacuum`` refuse a URL (pg_dump and autovacuum do their work there).
All of them work next to running applications (WAL lets readers and one writer proceed
together); a write waits for the lock at most ``--busy-timeout``.

Exit codes: 0 success; 1 the operation failed (a locked or damaged database, a failed
check, bad data in an import); 2 a usage error (a bad path or option, a source file in
the wrong format).

Where things are:

- :mod:`.app`: the typer app, global options, errors and exit codes, ``main``;
- :mod:`.output`: consoles, JSON, tables, progress bars;
- :mod:`.queries`: read-only SQL; :mod:`.inspect_cmds`: stats, sessions, show, check;
- :mod:`.jsonl_format`: the export format; :mod:`.export_cmd`, :mod:`.import_cmd`;
  :mod:`.copy_cmd`: copy (the export's lines into the import's writer);
- :mod:`.migrate`: import-adk, import-openai-agents (other frameworks' files);
- :mod:`.maintenance`: cleanup, vacuum, backup; :mod:`.demo_cmd`: demo.

This package is the only one that imports typer and rich: ``import sessionlite`` does not.
"""

from __future__ import annotations

from .app import Command, app, main
from .copy_cmd import copy
from .demo_cmd import demo
from .export_cmd import export
from .import_cmd import import_
from .inspect_cmds import check, sessions, show, stats
from .jsonl_format import EXPORT_FORMAT, EXPORT_VERSION
from .maintenance import backup, cleanup, vacuum
from .migrate import import_adk, import_openai_agents

__all__ = ["EXPORT_FORMAT", "EXPORT_VERSION", "app", "main"]

# Registered here, in the order `sessionlite --help` lists them.
app.command(cls=Command)(stats)
app.command(cls=Command)(sessions)
app.command(cls=Command)(show)
app.command(cls=Command)(check)
app.command(cls=Command)(export)
app.command("import", cls=Command)(import_)
app.command(cls=Command)(copy)
app.command("import-adk", cls=Command)(import_adk)
app.command("import-openai-agents", cls=Command)(import_openai_agents)
app.command(cls=Command)(cleanup)
app.command(cls=Command)(vacuum)
app.command(cls=Command)(backup)
app.command(cls=Command)(demo)
