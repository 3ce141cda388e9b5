from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from pgtest import postgres_server, postgres_url  # noqa: F401  (fixtures)
from sessionlite import PersistenceError, SessionService
from sessionlite.testing import ManualClock

# Every storage configuration the conformance suite runs in.
MODES = ["file", "memory", "prefix", "async", "postgres", "postgres-async"]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path, mode: str) -> str | Path:
    """The database the current mode's services open."""
    if mode.startswith("postgres"):
        return str(request.getfixturevalue("postgres_url"))
    return ":memory:" if mode == "memory" else tmp_path / "sessions.db"


@pytest.fixture
def make_service(
    database: str | Path, mode: str, clock: ManualClock
) -> Callable[..., SessionService]:
    """Build a (not yet opened) service for the current mode; options may be overridden."""

    def build(**options: Any) -> SessionService:
        options.setdefault("clock", clock)
        if mode == "prefix":
            options.setdefault("table_prefix", "agent_")
        if mode.endswith("async"):
            options.setdefault("async_persist", True)
        return SessionService(database, **options)

    return build


@pytest.fixture
async def service(make_service: Callable[..., SessionService]) -> AsyncIterator[SessionService]:
    async with make_service() as svc:
        yield svc


def is_async(service: SessionService) -> bool:
    return service.options.async_persist


async def expect_write_error(
    service: SessionService, error: type[BaseException], call: Awaitable[Any]
) -> BaseException:
    """Durable mode: the call raises ``error``. With async_persist the call is accepted
    and the next flush() raises PersistenceError caused by ``error``."""
    if not is_async(service):
        with pytest.raises(error) as info:
            await call
        return info.value
    await call
    with pytest.raises(PersistenceError) as failed:
        await service.flush()
    assert isinstance(failed.value.__cause__, error)
    return failed.value.__cause__
