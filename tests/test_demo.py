"""The README's demo command works on the default (per-user) database."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sessionlite.__main__ import main
from sessionlite.demo import run_demo


def test_demo_command_uses_default_database(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "sessionlite", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    db = tmp_path / "sessionlite" / "sessions.db"
    assert db.exists()
    assert f"Database: {db}" in result.stdout
    assert "#8   assistant  'It is 4 °C in Oslo.'" in result.stdout
    assert "user:favourite_city" in result.stdout
    assert "temp:raw" not in result.stdout  # temp: state is never stored
    assert "Total time in sessionlite calls" in result.stdout
    # It says that it adds to the user's real default database, and what to try next.
    assert "each demo run adds one session to it" in result.stdout
    assert "Try next:\n  sessionlite sessions --app weather-agent\n" in result.stdout
    assert "Docs: " in result.stdout


async def test_run_demo_in_memory() -> None:
    out = io.StringIO()
    await run_demo(":memory:", out)
    assert "version 8" in out.getvalue()


def test_main_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--db", str(tmp_path)]) == 1
    assert "is a directory" in capsys.readouterr().err
