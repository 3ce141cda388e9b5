"""``import sessionlite`` loads no CLI or web framework: typer, rich and fastapi are
imported only by ``sessionlite.cli`` and ``sessionlite.integrations.fastapi``."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("typer", "rich", "fastapi", "starlette")


@pytest.mark.parametrize(
    "module",
    ["sessionlite", "sessionlite.testing", "sessionlite.integrations"],
)
def test_importing_loads_no_framework(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        f"loaded = sorted(name for name in {(*HEAVY, 'click')!r} if name in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True, timeout=60)


def test_the_cli_and_the_fastapi_integration_do_load_them() -> None:
    """The check above would pass vacuously if the names were wrong."""
    code = (
        "import sys, sessionlite.cli, sessionlite.integrations.fastapi\n"
        f"assert all(name in sys.modules for name in {HEAVY!r})\n"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True, timeout=60)
