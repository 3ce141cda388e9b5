"""The FastAPI integration and its example app (docs/examples/fastapi_app.py).

The app is imported from its file, its lifespan is run by hand (``httpx.ASGITransport``
does not run lifespans) and it is driven in-process through httpx: startup, requests,
and a graceful shutdown that writes every queued event.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import HTTPConnection

from sessionlite import InvalidInputError, ServiceClosedError, SessionService
from sessionlite.integrations.fastapi import (
    SessionServiceDep,
    get_session_service,
    open_session_service,
    session_service_of,
    sessionlite_lifespan,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "fastapi_app.py"
BASE = "/apps/chat/users/alice/sessions"


def _load_example() -> ModuleType:
    name = "sessionlite_docs_fastapi_app"
    spec = importlib.util.spec_from_file_location(name, EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic resolves the models' annotations through it
    spec.loader.exec_module(module)
    return module


example = _load_example()


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture(params=[{}, {"async_persist": True}], ids=["durable", "async_persist"])
def options(request: pytest.FixtureRequest) -> dict[str, Any]:
    return dict(request.param)


@pytest.fixture
async def client(tmp_path: Path, options: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    app = example.create_app(str(tmp_path / "chat.db"), **options)
    async with app.router.lifespan_context(app), client_for(app) as client:
        yield client


async def create(client: httpx.AsyncClient) -> str:
    response = await client.post(BASE)
    assert response.status_code == 201, response.text
    session_id = response.json()["id"]
    assert isinstance(session_id, str)
    return session_id


async def post(client: httpx.AsyncClient, session_id: str, text: str) -> Any:
    response = await client.post(f"{BASE}/{session_id}/messages", json={"text": text})
    assert response.status_code == 200, response.text
    return response.json()


async def test_the_lifespan_opens_and_closes_the_service(tmp_path: Path) -> None:
    app = example.create_app(str(tmp_path / "chat.db"))
    async with app.router.lifespan_context(app):
        service = session_service_of(app)
        assert isinstance(service, SessionService)
        assert not service.closed
        assert service.path == str(tmp_path / "chat.db")
    assert service.closed
    # A request racing the shutdown gets a clear error, not a missing attribute.
    assert session_service_of(app) is service
    with pytest.raises(ServiceClosedError):
        await service.create_session(app_name="chat", user_id="late")

    # Started again (as tests do), the app gets a fresh service on the same file.
    async with app.router.lifespan_context(app):
        again = session_service_of(app)
        assert again is not service
        assert not again.closed


async def test_bad_service_options_fail_when_the_app_is_built(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="persist_workers"):
        example.create_app(str(tmp_path / "chat.db"), persist_workers=0)
    with pytest.raises(InvalidInputError, match="no_such_option"):
        sessionlite_lifespan(no_such_option=1)


async def test_an_app_without_the_lifespan_has_no_service() -> None:
    app = FastAPI()
    with pytest.raises(RuntimeError, match="sessionlite_lifespan"):
        session_service_of(app)


async def test_open_session_service_inside_a_custom_lifespan(tmp_path: Path) -> None:
    """An app with its own lifespan opens the service inside it and may use it there."""
    started: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_session_service(app, tmp_path / "chat.db", event_limit=5) as sessions:
            session = await sessions.create_session(app_name="chat", user_id="ann")
            started.append(session.id)
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/sessions/{sid}")
    async def read(sid: str, sessions: SessionServiceDep) -> dict[str, Any]:
        session = await sessions.get_session(app_name="chat", user_id="ann", session_id=sid)
        return {"found": session is not None, "limit": sessions.options.event_limit}

    async with app.router.lifespan_context(app), client_for(app) as client:
        response = await client.get(f"/sessions/{started[0]}")
        assert response.json() == {"found": True, "limit": 5}
    assert session_service_of(app).closed


async def test_the_dependency_can_be_overridden(tmp_path: Path) -> None:
    """Tests may hand endpoints a service of their own, with no lifespan at all."""
    app = example.create_app(str(tmp_path / "unused.db"))
    async with SessionService(":memory:") as mine:
        app.dependency_overrides[get_session_service] = lambda: mine
        async with client_for(app) as client:
            session_id = await create(client)
        assert await mine.get_session(app_name="chat", user_id="alice", session_id=session_id)
    assert not (tmp_path / "unused.db").exists()


async def test_websocket_connections_get_the_service_too(tmp_path: Path) -> None:
    app = FastAPI(lifespan=sessionlite_lifespan(":memory:"))
    async with app.router.lifespan_context(app):
        connection = HTTPConnection({"type": "websocket", "app": app, "headers": []})
        assert get_session_service(connection) is session_service_of(app)


async def test_conversation_round_trip(client: httpx.AsyncClient) -> None:
    session_id = await create(client)

    replies = [await post(client, session_id, f"message {i}") for i in range(3)]
    assert [reply["turns"] for reply in replies] == [1, 2, 3]
    assert replies[0]["reply"] == "You said 'message 0'. That was turn 1."

    response = await client.get(f"{BASE}/{session_id}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == session_id
    assert body["state"] == {"turns": 3}
    assert body["version"] == 6  # one per append
    assert [e["sequence"] for e in body["events"]] == [1, 2, 3, 4, 5, 6]
    assert [e["author"] for e in body["events"]] == ["user", "assistant"] * 3
    assert [e["content"] for e in body["events"][::2]] == ["message 0", "message 1", "message 2"]


async def test_history_limit_returns_the_newest_events(client: httpx.AsyncClient) -> None:
    session_id = await create(client)
    for i in range(12):
        await post(client, session_id, f"m{i}")

    default = (await client.get(f"{BASE}/{session_id}")).json()
    assert [e["sequence"] for e in default["events"]] == list(range(5, 25))  # the last 20

    last = (await client.get(f"{BASE}/{session_id}", params={"limit": 2})).json()
    assert [(e["author"], e["content"]) for e in last["events"]] == [
        ("user", "m11"),
        ("assistant", "You said 'm11'. That was turn 12."),
    ]
    none = (await client.get(f"{BASE}/{session_id}", params={"limit": 0})).json()
    assert none["events"] == []
    assert none["state"] == {"turns": 12}

    too_many = await client.get(f"{BASE}/{session_id}", params={"limit": 5000})
    assert too_many.status_code == 422


async def test_list_sessions_pages_with_a_cursor(client: httpx.AsyncClient) -> None:
    created = [await create(client) for _ in range(5)]
    await post(client, created[0], "bump")  # now the most recently updated
    # With async_persist, list_sessions only sees the bump once it is written (the cursor
    # is a position: a session written to while paging would move ahead of it). Reading
    # the session waits for its queued events.
    assert (await client.get(f"{BASE}/{created[0]}")).status_code == 200

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get(BASE, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        seen += [s["id"] for s in page["sessions"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(created)
    assert seen[0] == created[0]

    first = (await client.get(BASE, params={"limit": 1})).json()
    assert first["sessions"][0]["state"] == {"turns": 1}

    other_user = (await client.get("/apps/chat/users/bob/sessions")).json()
    assert other_user == {"sessions": [], "next_cursor": None}


async def test_missing_sessions_are_404(client: httpx.AsyncClient) -> None:
    missing = f"{BASE}/no-such-session"
    assert (await client.get(missing)).status_code == 404
    response = await client.post(f"{missing}/messages", json={"text": "hello?"})
    assert response.status_code == 404
    assert response.json() == {"detail": "session not found"}

    # A session belongs to its app and user: another user's path does not find it.
    session_id = await create(client)
    other = await client.get(f"/apps/chat/users/bob/sessions/{session_id}")
    assert other.status_code == 404


async def test_session_deleted_between_read_and_append_is_404(tmp_path: Path) -> None:
    """SessionNotFoundError raised by append_event (not the pre-check) also maps to 404."""
    app = example.create_app(str(tmp_path / "chat.db"))
    async with app.router.lifespan_context(app), client_for(app) as client:
        service = session_service_of(app)
        session_id = await create(client)
        original = service.append_event

        async def delete_first(session: Any, event: Any, **kwargs: Any) -> Any:
            await service.delete_session(app_name="chat", user_id="alice", session_id=session_id)
            return await original(session, event, **kwargs)

        service.append_event = delete_first  # type: ignore[method-assign]
        response = await client.post(f"{BASE}/{session_id}/messages", json={"text": "hi"})
        assert response.status_code == 404
        assert response.json() == {"detail": "session not found"}


async def test_invalid_input_is_rejected(client: httpx.AsyncClient) -> None:
    session_id = await create(client)
    empty = await client.post(f"{BASE}/{session_id}/messages", json={"text": ""})
    assert empty.status_code == 422
    no_text = await client.post(f"{BASE}/{session_id}/messages", json={})
    assert no_text.status_code == 422
    bad_cursor = await client.get(BASE, params={"cursor": "not-a-cursor"})
    assert bad_cursor.status_code == 400
    assert "cursor" in bad_cursor.json()["detail"]


async def test_clean_shutdown_with_queued_work(tmp_path: Path) -> None:
    """Leaving the lifespan drains the async-persist queue: nothing accepted is lost.

    Many conversations run at once (each one's messages in order, as one client would
    send them); the requests return as soon as their events are accepted. Shutdown then
    writes whatever is still queued, and a fresh service on the same file finds every
    message, in order.
    """
    db = tmp_path / "chat.db"
    conversations, messages = 20, 10
    # A small queue so that appends also wait for room (backpressure) on the way.
    app = example.create_app(str(db), async_persist=True, persist_queue_size=8)
    async with app.router.lifespan_context(app):
        service = session_service_of(app)
        async with client_for(app) as client:
            ids = [await create(client) for _ in range(conversations)]

            async def converse(session_id: str) -> None:
                for i in range(messages):
                    reply = await post(client, session_id, f"{session_id}:{i}")
                    assert reply["turns"] == i + 1

            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    for session_id in ids:
                        tg.start_soon(converse, session_id)
    # The lifespan has exited: the service drained its queue and closed.
    assert service.closed
    stats = service.stats()
    assert stats.persist_queue_depth == 0
    assert stats.persist_failures == 0
    assert stats.events_accepted == stats.events_persisted == conversations * messages * 2

    async with SessionService(db) as reopened:
        for session_id in ids:
            events = [
                event
                async for event in reopened.iter_events(
                    app_name="chat", user_id="alice", session_id=session_id
                )
            ]
            assert [e.sequence for e in events] == list(range(1, 2 * messages + 1))
            assert [e.author for e in events] == ["user", "assistant"] * messages
            assert [e.content for e in events[::2]] == [
                f"{session_id}:{i}" for i in range(messages)
            ]
            assert [e.state_delta for e in events[1::2]] == [
                {"turns": i + 1} for i in range(messages)
            ]
            session = await reopened.get_session(
                app_name="chat", user_id="alice", session_id=session_id, num_recent_events=0
            )
            assert session is not None
            assert session.state == {"turns": messages}
            assert session.version == 2 * messages
