"""FastAPI: one :class:`~sessionlite.SessionService` per app, opened in the app's lifespan
and handed to endpoints with ``Depends`` — no module-level global.

Example::

    from fastapi import FastAPI
    from sessionlite.integrations.fastapi import SessionServiceDep, sessionlite_lifespan

    app = FastAPI(lifespan=sessionlite_lifespan("chat.db", async_persist=True))

    @app.post("/users/{user}/sessions")
    async def create_session(user: str, sessions: SessionServiceDep) -> dict[str, str]:
        session = await sessions.create_session(app_name="chat", user_id=user)
        return {"id": session.id}

The service is opened when the app starts (creating or migrating the schema) and closed
when it stops, which first drains queued work: with ``async_persist=True`` every
accepted event is written before the process exits, and a write that failed is raised
at shutdown as :class:`~sessionlite.PersistenceError`. If the app has a lifespan of its
own, open the service inside it with :func:`open_session_service`.

In tests, replace the service with ``app.dependency_overrides[get_session_service]``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends
from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from ..config import parse_options
from ..service import SessionService

__all__ = [
    "STATE_ATTRIBUTE",
    "SessionServiceDep",
    "get_session_service",
    "open_session_service",
    "session_service_of",
    "sessionlite_lifespan",
]

STATE_ATTRIBUTE = "session_service"
"""The ``app.state`` attribute that holds the app's service."""

DbPath = str | os.PathLike[str] | None


@asynccontextmanager
async def open_session_service(
    app: Starlette, path: DbPath = None, /, **options: Any
) -> AsyncIterator[SessionService]:
    """Open a service for ``app`` and close it when the block ends.

    For apps with a lifespan of their own::

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            async with open_session_service(app, "chat.db") as sessions:
                ...  # other startup work, which may use `sessions`
                yield

    The service is kept on ``app.state`` (see :func:`session_service_of`). After the
    block it stays there, closed: a request that races the shutdown gets
    :class:`~sessionlite.ServiceClosedError` rather than a missing attribute.

    Args:
        app: the FastAPI (or Starlette) application.
        path: the database file, as for :class:`~sessionlite.SessionService`.
        **options: :class:`~sessionlite.SessionService` options.
    """
    async with SessionService(path, **options) as service:
        setattr(app.state, STATE_ATTRIBUTE, service)
        yield service


def sessionlite_lifespan(
    path: DbPath = None, /, **options: Any
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """A lifespan for ``FastAPI(lifespan=...)`` that runs one service for the app.

    The options are validated here, when the app is built, so a typo fails at import
    time rather than at the first deployment's startup; the database itself is opened
    at each startup (an app started twice, as tests do, gets a fresh service each time).

    Args:
        path: the database file, as for :class:`~sessionlite.SessionService`.
        **options: :class:`~sessionlite.SessionService` options.

    Raises:
        InvalidInputError: an unknown option or a bad value (the message names it).
    """
    parse_options(**options)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_session_service(app, path, **options):
            yield

    return lifespan


def session_service_of(app: Starlette) -> SessionService:
    """The service that :func:`sessionlite_lifespan` (or :func:`open_session_service`)
    opened for ``app``.

    Raises:
        RuntimeError: the app has no service (its lifespan does not open one).
    """
    service = getattr(app.state, STATE_ATTRIBUTE, None)
    if not isinstance(service, SessionService):
        raise RuntimeError(
            "this app has no SessionService: pass lifespan=sessionlite_lifespan(...) to "
            "FastAPI(), or open one with open_session_service(app, ...) in your lifespan"
        )
    return service


def get_session_service(connection: HTTPConnection) -> SessionService:
    """FastAPI dependency: the app's service, for HTTP and WebSocket endpoints."""
    return session_service_of(connection.app)


SessionServiceDep = Annotated[SessionService, Depends(get_session_service)]
"""An endpoint parameter annotated with this receives the app's service."""
