"""pytest fixtures for code that uses sessionlite.

This is a pytest plugin, registered through the ``pytest11`` entry point: installing
sessionlite makes the fixtures available in every test, with nothing to import.

``session_service``
    A fresh, open, in-memory :class:`~sessionlite.SessionService` for one test (default
    options), closed when the test ends.

``session_service_factory``
    Opens services with options: ``await session_service_factory(path, **options)``
    (``path`` defaults to ``":memory:"``). Every service it opened is closed when the
    test ends, newest first; an error raised while closing (such as a
    :class:`~sessionlite.PersistenceError` from a failed background write) fails the
    test rather than going unnoticed.

``manual_clock``
    A :class:`~sessionlite.testing.ManualClock` starting at 2026-01-01 UTC; pass it as
    ``clock=`` and move time with ``manual_clock.advance(minutes=5)``.

``fake_summarizer``
    A :class:`~sessionlite.testing.FakeSummarizer`; pass it as ``summarizer=``.

The async fixtures are pytest-asyncio fixtures: they work in both its ``auto`` and
``strict`` modes (in strict mode, mark the tests ``@pytest.mark.asyncio`` as usual), in
the event loop of the test's default scope (``asyncio_default_fixture_loop_scope``).
Without pytest-asyncio installed, only ``manual_clock`` and ``fake_summarizer`` work.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from .service import SessionService
from .testing import FakeSummarizer, ManualClock

__all__ = [
    "SessionServiceFactory",
    "fake_summarizer",
    "manual_clock",
    "session_service",
    "session_service_factory",
]

try:
    from pytest_asyncio import fixture as _async_fixture
except ImportError:  # pragma: no cover - exercised in a subprocess by the tests
    # pytest then reports the async fixtures as unsupported when a test requests them.
    _async_fixture = pytest.fixture  # type: ignore[assignment]


class SessionServiceFactory:
    """Opens services for one test and closes them all when it ends (newest first).

    This is what the ``session_service_factory`` fixture provides.
    """

    def __init__(self) -> None:
        self._stack = AsyncExitStack()
        self.services: list[SessionService] = []
        """The services opened so far, oldest first."""

    async def __call__(
        self, path: str | os.PathLike[str] = ":memory:", /, **options: Any
    ) -> SessionService:
        """Open a service on ``path`` with ``options`` (as for ``SessionService``)."""
        service = await self._stack.enter_async_context(SessionService(path, **options))
        self.services.append(service)
        return service

    async def aclose(self) -> None:
        """Close every service this factory opened (idempotent)."""
        await self._stack.aclose()


@pytest.fixture
def manual_clock() -> ManualClock:
    """A clock that moves only when told to; pass it as ``clock=``."""
    return ManualClock()


@pytest.fixture
def fake_summarizer() -> FakeSummarizer:
    """A deterministic, observable summarizer; pass it as ``summarizer=``."""
    return FakeSummarizer()


@_async_fixture
async def session_service_factory() -> AsyncIterator[SessionServiceFactory]:
    """``await session_service_factory(path=":memory:", **options)`` opens a service;
    all of them are closed after the test."""
    factory = SessionServiceFactory()
    try:
        yield factory
    finally:
        await factory.aclose()


@_async_fixture
async def session_service(session_service_factory: SessionServiceFactory) -> SessionService:
    """A fresh, open, in-memory service with default options; closed after the test."""
    return await session_service_factory()
