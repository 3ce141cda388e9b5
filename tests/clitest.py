"""Running the ``sessionlite`` command in-process, for the CLI tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from sessionlite.cli import app

runner = CliRunner()


def invoke(*args: str | Path, input: bytes | str | None = None) -> Result:
    return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)


def ok(*args: str | Path, input: bytes | str | None = None) -> Result:
    result = invoke(*args, input=input)
    assert result.exit_code == 0, result.output
    return result


def as_json(*args: str | Path) -> Any:
    return json.loads(ok(*args, "--json").stdout)


def refused(*args: str | Path, code: int = 2) -> str:
    """The command fails with ``code``; returns its one-line error message."""
    result = invoke(*args)
    assert result.exit_code == code, result.output
    assert result.stderr.startswith("sessionlite: error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr
