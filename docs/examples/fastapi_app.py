"""A small chat API on FastAPI that keeps its conversations in sessionlite.

Run it (needs ``pip install '.[fastapi]' uvicorn`` in a sessionlite checkout)::

    python docs/examples/fastapi_app.py          # serves http://127.0.0.1:8000/docs

or from your own code: ``uvicorn.run(create_app("chat.db"))``.

How it is put together:

* ``create_app(db_path, **service_options)`` builds the app. Its lifespan,
  ``sessionlite_lifespan`` from ``sessionlite.integrations.fastapi``, opens one
  ``SessionService`` for the whole process when the app starts and closes it on
  shutdown, which first drains any queued work (with ``async_persist=True``, every
  accepted event is written before the process exits).
* Endpoints receive the service as a parameter annotated ``SessionServiceDep`` (a
  ``Depends``): there is no module-level global, so each app (and each test) has its
  own service.
* ``SessionNotFoundError`` becomes a 404, ``InvalidInputError`` (for example a bad
  pagination cursor) a 400, by exception handlers registered on the app.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, JsonValue

from sessionlite import (
    Event,
    InvalidInputError,
    Session,
    SessionNotFoundError,
    SessionService,
)
from sessionlite.integrations.fastapi import SessionServiceDep, sessionlite_lifespan

DEFAULT_HISTORY_LIMIT = 20  # events returned by GET .../sessions/{sid} unless ?limit= says
DEFAULT_PAGE_SIZE = 20  # sessions per page of GET .../sessions


# -- wiring -----------------------------------------------------------------------------


def create_app(db_path: str, **service_options: Any) -> FastAPI:
    """A chat app whose sessions live in the SQLite file ``db_path``.

    ``service_options`` are passed to ``SessionService`` (``async_persist=True``,
    ``session_ttl=...``); a bad one raises ``InvalidInputError`` here, at once.
    """
    # The service opens when the app starts. At shutdown it drains its queues and
    # closes the database; a background write that failed is raised then, as
    # PersistenceError.
    lifespan = sessionlite_lifespan(db_path, **service_options)
    app = FastAPI(title="sessionlite chat example", lifespan=lifespan)
    app.include_router(router)
    app.add_exception_handler(SessionNotFoundError, _not_found)
    app.add_exception_handler(InvalidInputError, _bad_request)
    return app


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": "session not found"}, status_code=status.HTTP_404_NOT_FOUND)


async def _bad_request(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_400_BAD_REQUEST)


# -- request and response bodies ----------------------------------------------------------


class Message(BaseModel):
    text: str = Field(min_length=1, max_length=10_000)


class Created(BaseModel):
    id: str


class Reply(BaseModel):
    reply: str
    turns: int


class EventOut(BaseModel):
    sequence: int | None
    author: str
    content: JsonValue
    timestamp: datetime

    @classmethod
    def of(cls, event: Event) -> EventOut:
        return cls(
            sequence=event.sequence,
            author=event.author,
            content=event.content,
            timestamp=event.timestamp,
        )


class History(BaseModel):
    id: str
    version: int
    state: dict[str, JsonValue]
    events: list[EventOut]


class SessionOut(BaseModel):
    id: str
    updated_at: datetime
    state: dict[str, JsonValue]


class SessionList(BaseModel):
    sessions: list[SessionOut]
    next_cursor: str | None


# -- endpoints ------------------------------------------------------------------------------

router = APIRouter(prefix="/apps/{app}/users/{user}/sessions")


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_session(app: str, user: str, sessions: SessionServiceDep) -> Created:
    session = await sessions.create_session(app_name=app, user_id=user)
    return Created(id=session.id)


@router.post("/{sid}/messages")
async def post_message(
    app: str, user: str, sid: str, message: Message, sessions: SessionServiceDep
) -> Reply:
    # Only the state is needed to answer: load no events.
    session = await _load(sessions, app, user, sid, num_recent_events=0)
    await sessions.append_event(session, Event(author="user", content=message.text))
    # ... a real app would call its model here, with the recent history ...
    turns = int(session.state.get("turns", 0)) + 1
    reply = f"You said {message.text!r}. That was turn {turns}."
    await sessions.append_event(
        session, Event(author="assistant", content=reply, state_delta={"turns": turns})
    )
    return Reply(reply=reply, turns=turns)


@router.get("/{sid}")
async def read_session(
    app: str,
    user: str,
    sid: str,
    sessions: SessionServiceDep,
    limit: Annotated[int, Query(ge=0, le=1000)] = DEFAULT_HISTORY_LIMIT,
) -> History:
    session = await _load(sessions, app, user, sid, num_recent_events=limit)
    return History(
        id=session.id,
        version=session.version,
        state=session.state,
        events=[EventOut.of(event) for event in session.events],
    )


@router.get("")
async def list_sessions(
    app: str,
    user: str,
    sessions: SessionServiceDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> SessionList:
    page = await sessions.list_sessions(app_name=app, user_id=user, limit=limit, cursor=cursor)
    return SessionList(
        sessions=[
            SessionOut(id=s.id, updated_at=s.updated_at, state=s.state) for s in page.sessions
        ],
        next_cursor=page.next_cursor,
    )


async def _load(
    sessions: SessionService, app: str, user: str, sid: str, *, num_recent_events: int
) -> Session:
    session = await sessions.get_session(
        app_name=app, user_id=user, session_id=sid, num_recent_events=num_recent_events
    )
    if session is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "session not found")
    return session


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(create_app("chat.db"), host="127.0.0.1", port=8000)
