"""The typer application: global options, the database a command works on, and how
errors become a message and an exit code.

Exit codes: 0 success; 1 the operation failed (a locked or damaged database, a failed
check, bad data in an import); 2 a usage error (a bad path or option). Commands raise
:class:`UsageError` for 2 and :class:`DataError` or a :class:`~sessionlite.SessionLiteError`
for 1; :func:`guarded` turns them into one ``sessionlite: error: ...`` line on stderr.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
import typer
from rich.text import Text
from typer.core import TyperCommand, TyperGroup

from .. import __version__
from ..config import DEFAULT_BUSY_TIMEOUT, parse_options
from ..errors import DatabaseLockedError, InvalidInputError, SessionLiteError
from ..service import default_db_path
from ..store.factory import backend_of
from ..store.sqlite.schema import SCHEMA_VERSION
from .output import err_console

__all__ = [
    "AppFilter",
    "Command",
    "DataError",
    "JsonFlag",
    "ProgressFlag",
    "Target",
    "UsageError",
    "UserFilter",
    "app",
    "check_file_arg",
    "check_prefix",
    "database_arg",
    "existing_db",
    "expand_user",
    "fail",
    "guarded",
    "main",
    "new_or_existing_db",
    "remove_database",
    "run",
    "sqlite_only",
    "target_of",
]

F = TypeVar("F", bound=Callable[..., Any])


def _plain_flags(params: list[Any]) -> list[Any]:
    """Flags (``--json``, ``--progress/--no-progress``, ``--help``...) take no value:
    give them an empty metavar, or typer's help shows ``<bool>`` beside them."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class Command(TyperCommand):
    """A command whose help shows no ``<bool>`` beside its flags."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_flags(super().get_params(ctx))


class _Group(TyperGroup):
    """The ``sessionlite`` group, whose help shows no ``<bool>`` beside its flags."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_flags(super().get_params(ctx))


app = typer.Typer(
    name="sessionlite",
    cls=_Group,
    help="Inspect, export, copy, back up and maintain a sessionlite database: a SQLite file "
    "or PostgreSQL.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


# -- errors and exit codes --------------------------------------------------------------


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


def fail(message: str, code: int) -> typer.Exit:
    """Print ``message`` as the command's error; the exit to raise with ``code``."""
    err_console().print(Text(f"sessionlite: error: {message}"))
    return typer.Exit(code)


def guarded(fn: F) -> F:
    """Turn the errors a command may meet into a message and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UsageError as exc:
            raise fail(str(exc), 2) from None
        except DatabaseLockedError:
            raise fail(
                "the database is locked by another process (for longer than --busy-timeout); "
                "retry later or pass a longer --busy-timeout",
                1,
            ) from None
        except (SessionLiteError, DataError) as exc:
            raise fail(str(exc), 1) from None
        except OSError as exc:
            raise fail(str(exc), 1) from None

    return wrapper  # type: ignore[return-value]


def run(fn: Callable[..., Any], *args: Any) -> Any:
    """Run an async function of the command to completion."""
    return anyio.run(fn, *args)


# -- the database the command works on ------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Target:
    """The global options: which database, with which table prefix and lock timeout.

    ``db`` is a SQLite file, a ``postgresql://`` URL (a ``str``; see
    :func:`database_arg`), or None for the default file (which a service creates with
    its directory): what a :class:`~sessionlite.SessionService` opens.
    """

    db: Path | str | None
    table_prefix: str = ""
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT.total_seconds()

    @property
    def url(self) -> str | None:
        """The PostgreSQL URL; None for a SQLite file."""
        return self.db if isinstance(self.db, str) else None

    @property
    def path(self) -> Path:
        """The SQLite file (commands check :attr:`url` first)."""
        assert not isinstance(self.db, str), "a SQLite command given a PostgreSQL URL"
        return default_db_path() if self.db is None else self.db

    @property
    def name(self) -> str:
        """The database in messages: the file, or the URL without its password."""
        if self.url is None:
            return str(self.path)
        from ..store.postgres.connection import display_name

        return display_name(self.url)

    @property
    def current_schema(self) -> int:
        """The schema version this sessionlite writes on the target's backend."""
        if self.url is None:
            return SCHEMA_VERSION
        from ..store.postgres.schema import SCHEMA_VERSION as POSTGRES_SCHEMA_VERSION

        return POSTGRES_SCHEMA_VERSION

    def service_options(self, *, schema_version: int = 0) -> dict[str, Any]:
        """Options for a service on the database. Given the current schema version, the
        service only checks the schema instead of migrating it, so opening it takes no
        write lock: reading commands work while another process holds it."""
        options: dict[str, Any] = {
            "table_prefix": self.table_prefix,
            "busy_timeout": self.busy_timeout,
            "create_schema": schema_version != self.current_schema,
        }
        if self.url is not None:
            # The command cannot tell whether a pooler in transaction mode (pgbouncer)
            # stands in front of the server, and a short run gains little from them.
            options["prepared_statements"] = False
        return options


def target_of(ctx: typer.Context) -> Target:
    """The global options the command was called with."""
    target = ctx.find_root().obj
    assert isinstance(target, Target)
    return target


def expand_user(name: str) -> str:
    """A path argument with a leading ``~`` (or ``~user``) expanded, as a shell would
    have done (it does not in ``--db=~/x.db``, quoted, or in ``SESSIONLITE_DB``).
    ``-``, ``:memory:`` and URLs pass unchanged."""
    return os.path.expanduser(name)


def database_arg(name: str) -> Path | str:
    """A database argument: a ``postgresql://`` URL (kept as a ``str``, checked and
    with its driver importable) or a SQLite path (``~`` expanded). A bad URL is a
    :class:`UsageError`."""
    if backend_of(name) == "sqlite":
        return Path(expand_user(name))
    try:
        from ..store.postgres.connection import display_name
    except ImportError as exc:
        raise UsageError(
            f"a PostgreSQL URL needs the PostgreSQL driver ({exc.name} is not installed); "
            'install it with: pip install "sessionlite[postgres]"'
        ) from None
    try:
        display_name(name)
    except InvalidInputError as exc:  # its message never shows the URL (a password)
        raise UsageError(str(exc)) from None
    return name


def sqlite_only(target: Target, command: str, instead: str) -> None:
    """Refuse a command that works on a SQLite file when ``--db`` is a URL: a usage
    error saying what does its work on PostgreSQL (``instead``)."""
    if target.url is not None:
        raise UsageError(
            f"{command} is a SQLite command and {target.name} is a PostgreSQL database: {instead}"
        )


def check_file_arg(path: Path, what: str) -> None:
    """Refuse ``:memory:`` and directories where a database file is expected."""
    if str(path) == ":memory:":
        raise UsageError(f"{what} must be a database file; ':memory:' is empty in a new process")
    if path.is_dir():
        raise UsageError(f"{what} {path} is a directory; pass the path of a database file")


def existing_db(target: Target) -> Path:
    """The database file, which must exist."""
    path = target.path
    check_file_arg(path, "--db")
    if not path.exists():
        hint = "" if target.db is not None else " (the default database; pass --db PATH)"
        raise UsageError(f"no database at {path}{hint}")
    return path


def new_or_existing_db(target: Target) -> Path:
    """The database file, created by the command if needed (its directory must exist)."""
    path = target.path
    check_file_arg(path, "--db")
    if target.db is not None and not path.parent.is_dir():
        raise UsageError(f"directory {path.parent} does not exist; create it first")
    return path


def remove_database(path: Path) -> None:
    """Delete a database file the command created, with its WAL and shared-memory files."""
    for name in (path.name, f"{path.name}-wal", f"{path.name}-shm"):
        path.with_name(name).unlink(missing_ok=True)


# -- global options -------------------------------------------------------------------


_QUIET = logging.NullHandler()


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"sessionlite {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="SESSIONLITE_DB",
            help="Database file, or a postgresql:// URL (default: a file in the per-user "
            "data dir, as SessionService(None)).",
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
    """Inspect, export, copy, back up and maintain a sessionlite database."""
    # psycopg's pool logs each failed connection attempt; a failure is reported once,
    # as the command's error (Python would print unhandled warnings to stderr).
    logging.getLogger("psycopg").addHandler(_QUIET)
    check_prefix(table_prefix)
    try:
        database = None if db is None else database_arg(db)
    except UsageError as exc:
        raise typer.BadParameter(str(exc), param_hint="--db") from None
    ctx.obj = Target(database, table_prefix, busy_timeout)


def check_prefix(table_prefix: str) -> None:
    """A bad ``--table-prefix`` is a usage error."""
    try:
        parse_options(table_prefix=table_prefix)
    except InvalidInputError as exc:
        raise typer.BadParameter(str(exc), param_hint="--table-prefix") from None


# Options several commands share.
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
