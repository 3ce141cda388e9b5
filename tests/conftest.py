from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from sessionlite import SessionService
from sessionlite.testing import ManualClock

# Every storage configuration the conformance suite runs in.
MODES = ["file", "memory", "prefix"]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_service(tmp_path: Path, mode: str, clock: ManualClock) -> Callable[..., SessionService]:
    """Build a (not yet opened) service for the current mode; options may be overridden."""

    def build(**options: Any) -> SessionService:
        options.setdefault("clock", clock)
        if mode == "prefix":
            options.setdefault("table_prefix", "agent_")
        path = ":memory:" if mode == "memory" else tmp_path / "sessions.db"
        return SessionService(path, **options)

    return build


@pytest.fixture
async def service(make_service: Callable[..., SessionService]) -> AsyncIterator[SessionService]:
    async with make_service() as svc:
        yield svc
