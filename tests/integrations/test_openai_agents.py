"""OpenAI Agents SDK: ``SessionliteSession`` behaves as the SDK's ``SQLiteSession``.

The behaviour tests run against ``SessionliteSession`` (over sessionlite's storage modes,
on a shared service and on one it owns) and against the SDK's own ``SQLiteSession`` as
the reference.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from agents import Agent, RunConfig, Runner, SQLiteSession, function_tool
from agents.items import ModelResponse, TResponseInputItem
from agents.memory import OpenAIResponsesCompactionSession, SessionSettings
from agents.memory import Session as SdkSession
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import (
    ResponseCompactionItem,
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from sessionlite import Event, InvalidInputError, ServiceClosedError, SessionService
from sessionlite.integrations.openai_agents import (
    DEFAULT_APP_NAME,
    DEFAULT_USER_ID,
    OPENAI_ITEM_FORMAT,
    SessionliteSession,
    _display,
    event_to_item,
    item_to_event,
)

MakeSession = Callable[..., Any]
IMPLEMENTATIONS = [
    "sessionlite-file",
    "sessionlite-memory",
    "sessionlite-async",
    "sessionlite-owned",
    "sessionlite-postgres",
    "sdk-sqlite",
]


@pytest.fixture(params=IMPLEMENTATIONS)
async def make_session(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[MakeSession]:
    """Builds sessions; ``sdk-sqlite`` is the SDK's own, the reference behaviour.

    ``sessionlite-owned`` is built as ``sdk-sqlite`` is (a path; each session owns its
    service); the others share one open service.
    """
    kind = request.param
    if kind == "sessionlite-owned":
        owned: list[SessionliteSession] = []

        def build_owned(session_id: str, **kwargs: Any) -> SessionliteSession:
            owned.append(SessionliteSession(session_id, tmp_path / "owned.db", **kwargs))
            return owned[-1]

        yield build_owned
        for own in owned:
            await own.aclose()
        return
    if kind == "sdk-sqlite":
        made: list[SQLiteSession] = []

        def build_sdk(session_id: str, **kwargs: Any) -> SQLiteSession:
            made.append(SQLiteSession(session_id, tmp_path / "sdk.db", **kwargs))
            return made[-1]

        yield build_sdk
        for session in made:
            session.close()
        return
    options: dict[str, Any] = {"async_persist": True} if kind == "sessionlite-async" else {}
    path: str | Path = ":memory:" if kind == "sessionlite-memory" else tmp_path / "sl.db"
    if kind == "sessionlite-postgres":
        path = request.getfixturevalue("postgres_url")
    async with SessionService(path, **options) as service:

        def build(session_id: str, **kwargs: Any) -> SessionliteSession:
            return SessionliteSession(session_id, service, **kwargs)

        yield build


def user(text: str) -> TResponseInputItem:
    return {"role": "user", "content": text}


ITEMS: list[Any] = [
    {"role": "user", "content": "héllo ✓ — 日本"},
    {
        "type": "function_call",
        "call_id": "call_1",
        "name": "add",
        "arguments": '{"a": 1, "b": 2}',
        "id": "fc_1",
        "status": "completed",
    },
    {"type": "function_call_output", "call_id": "call_1", "output": "3"},
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "3", "annotations": [], "logprobs": None}],
    },
    {"type": "reasoning", "id": "rs_1", "summary": [], "extra": {"n": 1.5, "big": 2**60}},
]


async def test_items_round_trip_exactly(make_session: MakeSession) -> None:
    session = make_session("conv")
    assert isinstance(session, SdkSession)
    assert await session.get_items() == []
    await session.add_items(ITEMS[:2])
    await session.add_items(ITEMS[2:])
    got = await session.get_items()
    assert got == ITEMS
    assert json.dumps(got) == json.dumps(ITEMS)  # key order and types too
    await session.add_items([])
    assert await session.get_items() == ITEMS


async def test_get_items_limit(make_session: MakeSession) -> None:
    session = make_session("conv")
    await session.add_items([user(f"m{i}") for i in range(5)])
    assert [i["content"] for i in await session.get_items(2)] == ["m3", "m4"]
    assert await session.get_items(0) == []
    assert len(await session.get_items(99)) == 5
    assert len(await session.get_items(-1)) == 5  # SQLite's LIMIT -1: everything

    limited = make_session("conv", session_settings=SessionSettings(limit=3))
    assert [i["content"] for i in await limited.get_items()] == ["m2", "m3", "m4"]
    assert len(await limited.get_items(1)) == 1
    as_dict = make_session("conv", session_settings={"limit": 1})
    assert isinstance(as_dict.session_settings, SessionSettings)
    assert [i["content"] for i in await as_dict.get_items()] == ["m4"]


async def test_pop_item(make_session: MakeSession) -> None:
    session = make_session("conv")
    assert await session.pop_item() is None
    await session.add_items([user("a"), user("b")])
    assert await session.pop_item() == user("b")
    assert await session.get_items() == [user("a")]
    assert await session.pop_item() == user("a")
    assert await session.pop_item() is None


async def test_clear_session(make_session: MakeSession) -> None:
    session = make_session("conv")
    other = make_session("other")
    await session.clear_session()  # nothing there yet
    await session.add_items([user("a"), user("b")])
    await other.add_items([user("keep")])
    await session.clear_session()
    assert await session.get_items() == []
    assert await other.get_items() == [user("keep")]
    await session.add_items([user("again")])
    assert await session.get_items() == [user("again")]


async def test_sessions_are_separate(make_session: MakeSession) -> None:
    one, two = make_session("one"), make_session("two")
    await one.add_items([user("1")])
    await two.add_items([user("2")])
    assert await one.get_items() == [user("1")]
    assert await two.get_items() == [user("2")]
    assert await make_session("one").get_items() == [user("1")]


# -- sessionlite only -----------------------------------------------------------------------


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[SessionService]:
    async with SessionService(tmp_path / "sl.db") as svc:
        yield svc


async def test_mapping_to_sessionlite(service: SessionService) -> None:
    default = SessionliteSession("conv", service)
    assert (default.app_name, default.user_id) == (DEFAULT_APP_NAME, DEFAULT_USER_ID)
    assert repr(default) == (
        f"<SessionliteSession 'conv' app='openai-agents' user='default' db={service.path!r}"
        " (shared)>"
    )
    await default.add_items(ITEMS)
    stored = await service.get_session(
        app_name="openai-agents", user_id="default", session_id="conv"
    )
    assert stored is not None
    assert [e.author for e in stored.events] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "assistant",
    ]
    assert [e.content for e in stored.events] == ITEMS
    assert all(e.metadata == {"format": OPENAI_ITEM_FORMAT} for e in stored.events)

    mine = SessionliteSession("conv", service, app_name="support", user_id="ann")
    assert await mine.get_items() == []
    await mine.add_items([user("x")])
    page = await service.list_sessions(app_name="support", user_id="ann")
    assert [s.id for s in page.sessions] == ["conv"]


async def test_add_items_is_all_or_nothing(service: SessionService) -> None:
    session = SessionliteSession("conv", service)
    await session.add_items([user("first")])
    with pytest.raises(InvalidInputError):
        await session.add_items([user("ok"), {"role": "user", "content": float("nan")}])
    assert await session.get_items() == [user("first")]


async def test_session_deleted_behind_our_back(service: SessionService) -> None:
    session = SessionliteSession("conv", service)
    await session.add_items([user("a")])
    await service.delete_session(
        app_name=DEFAULT_APP_NAME, user_id=DEFAULT_USER_ID, session_id="conv"
    )
    assert await session.get_items() == []
    assert await session.pop_item() is None
    await session.clear_session()
    await session.add_items([user("b")])
    assert await session.get_items() == [user("b")]


async def test_clear_keeps_the_sessionlite_session(service: SessionService) -> None:
    session = SessionliteSession("conv", service)
    await session.add_items([user("a")])
    await service.update_session_state(
        app_name=DEFAULT_APP_NAME, user_id=DEFAULT_USER_ID, session_id="conv", delta={"k": 1}
    )
    await session.clear_session()
    stored = await service.get_session(
        app_name=DEFAULT_APP_NAME, user_id=DEFAULT_USER_ID, session_id="conv"
    )
    assert stored is not None and stored.events == [] and stored.state == {"k": 1}


async def test_closed_service(tmp_path: Path) -> None:
    async with SessionService(tmp_path / "x.db") as svc:
        session = SessionliteSession("conv", svc)
    with pytest.raises(ServiceClosedError):
        await session.add_items([])
    with pytest.raises(ServiceClosedError):
        await session.get_items()


async def test_events_written_without_the_sdk(service: SessionService) -> None:
    native = await service.create_session(
        app_name=DEFAULT_APP_NAME, user_id=DEFAULT_USER_ID, session_id="c"
    )
    await service.append_event(native, Event(author="user", content="hi"))
    await service.append_event(native, Event(author="bot", content={"x": "é"}))
    await service.append_event(native, Event(author="bot"))
    items = await SessionliteSession("c", service).get_items()
    assert items == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": '{"x": "é"}'},
        {"role": "assistant", "content": ""},
    ]


def test_item_event_mapping() -> None:
    event = item_to_event({"type": "custom"}, event_id="e1")
    assert (event.id, event.author, event.content) == ("e1", "assistant", {"type": "custom"})
    assert event_to_item(event) == {"type": "custom"}
    assert item_to_event("odd").author == "assistant"
    assert item_to_event({"role": "", "type": "x_output"}).author == "tool"


# -- the session's own database, or a shared service -------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("closer", ["close", "aclose"])
async def test_a_path_owns_its_service(tmp_path: Path, closer: str) -> None:
    path = tmp_path / "conv.db"
    session = SessionliteSession("conv", str(path))
    assert session.service.path == str(path)
    unopened = session.service.closed  # opened on first use
    assert unopened
    assert repr(session) == (
        f"<SessionliteSession 'conv' app='openai-agents' user='default' db={str(path)!r} (owned)>"
    )
    assert await session.get_items() == []
    opened = not session.service.closed
    assert opened
    await session.add_items(ITEMS)
    assert await session.pop_item() == ITEMS[-1]

    if closer == "close":
        session.close()  # synchronous, as SQLiteSession.close(), here inside a loop
        session.close()
    else:
        await session.aclose()
        await session.aclose()
    session.close()
    await session.aclose()  # idempotent, in any mix
    assert session.service.closed
    assert repr(session).endswith("(owned, closed)>")
    with pytest.raises(ServiceClosedError):
        await session.get_items()
    with pytest.raises(ServiceClosedError):
        await session.add_items([user("late")])
    with pytest.raises(ServiceClosedError):
        await session.add_items([])

    # The file holds what was written: a new session (a new service) reads it back.
    again = SessionliteSession("conv", path)
    try:
        assert await again.get_items() == ITEMS[:-1]
    finally:
        again.close()


@pytest.mark.timeout(60)
async def test_memory_is_the_default() -> None:
    one, two = SessionliteSession("conv"), SessionliteSession("conv")
    try:
        assert one.service.path == ":memory:"
        assert one.service is not two.service
        await one.add_items([user("a"), user("b")])
        assert await one.get_items() == [user("a"), user("b")]
        assert await two.get_items() == []  # each its own private database
        assert await one.pop_item() == user("b")
        await one.clear_session()
        assert await one.get_items() == []
    finally:
        one.close()
        two.close()
    assert one.service.closed and two.service.closed


@pytest.mark.timeout(60)
async def test_a_session_never_used_closes() -> None:
    session = SessionliteSession("conv")
    session.close()
    session.close()
    assert session.service.closed
    with pytest.raises(ServiceClosedError):
        await session.get_items()


async def test_a_shared_service_is_left_open(service: SessionService) -> None:
    session = SessionliteSession("conv", service)
    assert session.service is service
    await session.add_items([user("a")])
    session.close()
    session.close()
    await session.aclose()
    assert not service.closed
    assert await session.get_items() == [user("a")]  # the session is still usable
    assert await SessionliteSession("conv", service).get_items() == [user("a")]


async def test_service_keyword_is_the_old_name_of_db(service: SessionService) -> None:
    session = SessionliteSession("conv", service=service)
    assert session.service is service
    await session.add_items([user("a")])
    assert await SessionliteSession("conv", service).get_items() == [user("a")]
    with pytest.raises(TypeError, match="not both"):
        SessionliteSession("conv", service, service=service)
    with pytest.raises(TypeError, match="not both"):
        SessionliteSession("conv", ":memory:", service=service)


def test_session_settings_as_the_sdk() -> None:
    unopened = SessionService(":memory:")  # shared, so this test opens nothing
    reference = SQLiteSession("conv")
    try:
        assert reference.session_settings == SessionSettings()
    finally:
        reference.close()

    default = SessionliteSession("conv", unopened)
    assert isinstance(default.session_settings, SessionSettings)
    assert default.session_settings == SessionSettings()

    as_dict = SessionliteSession("conv", unopened, session_settings={"limit": 2})
    assert isinstance(as_dict.session_settings, SessionSettings)
    assert as_dict.session_settings == SessionSettings(limit=2)

    settings = SessionSettings(limit=3)
    assert SessionliteSession("conv", unopened, session_settings=settings).session_settings is (
        settings
    )


@pytest.mark.parametrize("bad", [{"limit": 1, "bogus": 2, "also": 3}, 5, ["limit"]])
def test_bad_session_settings_fail_as_in_the_sdk(bad: Any, tmp_path: Path) -> None:
    with pytest.raises(Exception) as sdk:  # whatever the SDK raises
        SQLiteSession("conv", session_settings=bad)
    with pytest.raises(type(sdk.value)) as ours:
        SessionliteSession("conv", tmp_path / "x.db", session_settings=bad)
    assert type(ours.value) is type(sdk.value)
    assert str(ours.value) == str(sdk.value)
    assert isinstance(sdk.value, TypeError)  # today's SDK: "Unknown session settings: ..."
    assert not (tmp_path / "x.db").exists()


def test_repr_hides_a_url_password() -> None:
    assert _display("postgresql://ann:s3cret@db.example:5432/app") == (
        "postgresql://ann:***@db.example:5432/app"
    )
    assert _display("postgresql://ann@db.example/app") == "postgresql://ann@db.example/app"
    assert _display("/tmp/a:b@c.db") == "/tmp/a:b@c.db"


# -- the proof: the SDK's Runner, a scripted model, a restart --------------------------------


class ScriptedModel(Model):
    """Answers from a script and records its inputs; never touches a network."""

    def __init__(self, outputs: list[list[Any]]) -> None:
        self.outputs = outputs
        self.inputs: list[Any] = []

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: Any,
        tools: Any,
        output_schema: Any,
        handoffs: Any,
        tracing: Any,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: Any,
    ) -> ModelResponse:
        self.inputs.append(input)
        return ModelResponse(output=self.outputs.pop(0), usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


def say(text: str, message_id: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id=message_id,
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )


def tool_call(call_id: str, **args: Any) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(
        type="function_call",
        call_id=call_id,
        name="add",
        arguments=json.dumps(args),
        id=f"fc_{call_id}",
        status="completed",
    )


@function_tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


NO_TRACING = RunConfig(tracing_disabled=True)


@pytest.mark.parametrize("options", [{}, {"async_persist": True}], ids=["durable", "async"])
async def test_runner_conversation_survives_a_restart(
    tmp_path: Path, options: dict[str, Any]
) -> None:
    path = tmp_path / "agents.db"
    model = ScriptedModel(
        [[tool_call("c1", a=1, b=2)], [say("It is 3.", "m1")], [say("Bye!", "m2")]]
    )
    agent = Agent(name="calc", model=model, tools=[add])
    async with SessionService(path, **options) as service:
        session = SessionliteSession("chat", service, user_id="ann")
        first = await Runner.run(agent, "What is 1+2?", session=session, run_config=NO_TRACING)
        second = await Runner.run(agent, "Thanks.", session=session, run_config=NO_TRACING)
        assert (first.final_output, second.final_output) == ("It is 3.", "Bye!")
        before = await session.get_items()
    assert [i.get("type", "message") for i in before] == [
        "message",
        "function_call",
        "function_call_output",
        "message",
        "message",
        "message",
    ]
    assert before[2]["output"] == "3"

    # A new process: a new service on the same file, a new session object and model.
    model = ScriptedModel([[tool_call("c2", a=3, b=4)], [say("7, as before plus 4.", "m3")]])
    agent = Agent(name="calc", model=model, tools=[add])
    async with SessionService(path) as service:
        session = SessionliteSession("chat", service, user_id="ann")
        assert await session.get_items() == before
        third = await Runner.run(agent, "And 3+4?", session=session, run_config=NO_TRACING)
        assert third.final_output == "7, as before plus 4."
        # The model saw the whole earlier conversation first.
        assert model.inputs[0] == [*before, user("And 3+4?")]
        after = await session.get_items()
    assert after[: len(before)] == before
    assert after[len(before)] == user("And 3+4?")
    assert after[-2]["output"] == "7"
    assert len(after) == len(before) + 4

    # The same conversation through the SDK's own SQLiteSession gives the same items.
    reference = SQLiteSession("chat", tmp_path / "sdk.db")
    try:
        model = ScriptedModel(
            [[tool_call("c1", a=1, b=2)], [say("It is 3.", "m1")], [say("Bye!", "m2")]]
        )
        agent = Agent(name="calc", model=model, tools=[add])
        await Runner.run(agent, "What is 1+2?", session=reference, run_config=NO_TRACING)
        await Runner.run(agent, "Thanks.", session=reference, run_config=NO_TRACING)
        assert await reference.get_items() == before
    finally:
        reference.close()


@pytest.fixture
def thread_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """The thread's event loop that ``Runner.run_sync`` uses, closed afterwards.

    ``run_sync`` runs on the thread's default loop and leaves it open; owning it here
    keeps it from being garbage-collected unclosed (a ``ResourceWarning``).
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        asyncio.set_event_loop(None)
        loop.close()


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("thread_loop")
def test_run_sync_with_a_path_then_reopen(tmp_path: Path) -> None:
    """The SDK's synchronous quick start, with ``SQLiteSession`` switched for ours."""
    path = str(tmp_path / "conv.db")
    turns = 5
    model = ScriptedModel([[say(f"answer {i}", f"m{i}")] for i in range(turns)])
    agent = Agent(name="assistant", model=model)
    session = SessionliteSession("c", path)
    for i in range(turns):
        result = Runner.run_sync(agent, f"question {i}", session=session, run_config=NO_TRACING)
        assert result.final_output == f"answer {i}"
    # Each turn the model saw the whole conversation so far.
    assert [len(seen) for seen in model.inputs] == [2 * i + 1 for i in range(turns)]
    session.close()
    assert session.service.closed

    async def reopen() -> list[TResponseInputItem]:
        again = SessionliteSession("c", path)
        try:
            return await again.get_items()
        finally:
            await again.aclose()

    items: list[Any] = asyncio.run(reopen())
    assert len(items) == 2 * turns
    for i in range(turns):
        question, answer = items[2 * i], items[2 * i + 1]
        assert question == user(f"question {i}")
        assert (answer["type"], answer["role"], answer["id"]) == ("message", "assistant", f"m{i}")
        assert answer["content"][0]["text"] == f"answer {i}"
    assert items[:-1] == model.inputs[-1]  # as the model saw them on the last turn


# -- the SDK's OpenAIResponsesCompactionSession over SessionliteSession ----------------------


class StubResponses:
    """Stands in for ``client.responses``: records ``compact`` requests, answers a script.

    The answer is shaped as ``responses.compact``'s: the user messages (plain dicts here)
    and one compaction item (the SDK's pydantic model, as the OpenAI client returns it).
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    async def compact(self, **request: Any) -> Any:
        self.requests.append(request)
        number = len(self.requests)
        output: list[Any] = [
            item for item in request.get("input", []) if item.get("role") == "user"
        ]
        output.append(
            ResponseCompactionItem(
                id=f"cmp_{number}", type="compaction", encrypted_content=f"summary {number}"
            )
        )
        return SimpleNamespace(output=output, usage=None)


class StubClient:
    """What the SDK uses of ``AsyncOpenAI`` for compaction: ``client.responses.compact``."""

    def __init__(self) -> None:
        self.responses = StubResponses()


def compacted(number: int, *users: TResponseInputItem) -> list[Any]:
    """What a session holds after the stub's ``number``-th compaction."""
    item = {"id": f"cmp_{number}", "encrypted_content": f"summary {number}", "type": "compaction"}
    return [*users, item]


def compacting(
    session: Any, client: StubClient, *, trigger_at: int | None = None, **kwargs: Any
) -> OpenAIResponsesCompactionSession:
    """The SDK's compaction wrapper over ``session``; compacts at ``trigger_at`` items."""
    if trigger_at is not None:
        kwargs["should_trigger_compaction"] = lambda ctx: len(ctx["session_items"]) >= trigger_at
    return OpenAIResponsesCompactionSession(
        "conv", underlying_session=session, client=client, **kwargs
    )


class ChattyModel(Model):
    """Answers every turn ``a<n>`` with a response id, as the Responses API does."""

    def __init__(self) -> None:
        self.inputs: list[Any] = []

    async def get_response(
        self, system_instructions: str | None, input: Any, *args: Any, **kwargs: Any
    ) -> ModelResponse:
        self.inputs.append(input)
        n = len(self.inputs)
        return ModelResponse(output=[say(f"a{n}", f"m{n}")], usage=Usage(), response_id=f"r{n}")

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


async def test_manual_compaction_replaces_the_history(make_session: MakeSession) -> None:
    session = make_session("conv")
    await session.add_items(ITEMS)
    client = StubClient()
    wrapper = compacting(session, client)
    await wrapper.run_compaction({"force": True})

    (request,) = client.responses.requests
    assert request["model"] == "gpt-4.1"
    assert request["input"][0] == ITEMS[0]  # no response id: the stored items are sent
    assert len(request["input"]) == len(ITEMS)
    expected = compacted(1, ITEMS[0])
    assert await session.get_items() == expected
    assert await wrapper.get_items() == expected
    assert await make_session("conv").get_items() == expected  # stored, not cached
    assert json.dumps(await session.get_items()) == json.dumps(expected)

    # The conversation carries on after the compacted items.
    await wrapper.add_items([user("next")])
    assert await session.get_items() == [*expected, user("next")]
    await wrapper.run_compaction({"force": True})
    assert await session.get_items() == compacted(2, ITEMS[0], user("next"))


async def test_runner_compacts_automatically(make_session: MakeSession) -> None:
    session = make_session("conv")
    client = StubClient()
    wrapper = compacting(session, client, trigger_at=4)
    model = ChattyModel()
    agent = Agent(name="a", model=model)
    for turn in range(3):
        result = await Runner.run(agent, f"q{turn}", session=wrapper, run_config=NO_TRACING)
        assert result.final_output == f"a{turn + 1}"

    # Turn 2 stored 4 items, so the wrapper compacted them (by the last response's id).
    assert [r.get("previous_response_id") for r in client.responses.requests] == ["r2"]
    items = await session.get_items()
    assert items[0] == compacted(1)[0]
    assert items[1] == user("q2")
    assert (items[2]["id"], items[2]["content"][0]["text"]) == ("m3", "a3")
    assert len(items) == 3
    assert model.inputs[2] == [compacted(1)[0], user("q2")]  # turn 3 saw the compacted history


async def test_max_rollback_items_manual(make_session: MakeSession) -> None:
    session = make_session("conv")
    await session.add_items(ITEMS)
    client = StubClient()
    with pytest.raises(ValueError, match="max_rollback_items"):
        await compacting(session, client, max_rollback_items=len(ITEMS) - 1).run_compaction(
            {"force": True}
        )
    assert client.responses.requests == []  # checked before the API call
    assert await session.get_items() == ITEMS  # history retained

    await compacting(session, client, max_rollback_items=len(ITEMS)).run_compaction({"force": True})
    assert await session.get_items() == compacted(1, ITEMS[0])
    with pytest.raises(ValueError, match="positive"):
        compacting(session, client, max_rollback_items=0)


async def test_max_rollback_items_automatic(make_session: MakeSession) -> None:
    """The budget covers automatic compaction too, except on the SDK's own SQLite stores.

    ``SQLiteSession`` replaces the compacted suffix natively (its private
    ``_get_compaction_snapshot``), which needs no rollback copy; every other store,
    SessionliteSession included, goes through the budget-checked whole-history
    replacement, so an oversized history makes ``Runner.run`` raise, after the turn
    was saved.
    """
    session = make_session("conv")
    client = StubClient()
    wrapper = compacting(session, client, trigger_at=4, max_rollback_items=3)
    agent = Agent(name="a", model=ChattyModel())
    await Runner.run(agent, "q0", session=wrapper, run_config=NO_TRACING)
    if isinstance(session, SQLiteSession):
        await Runner.run(agent, "q1", session=wrapper, run_config=NO_TRACING)
        assert await session.get_items() == compacted(1)
        return
    with pytest.raises(ValueError, match="max_rollback_items"):
        await Runner.run(agent, "q1", session=wrapper, run_config=NO_TRACING)
    assert client.responses.requests == []
    items = await session.get_items()
    assert [item.get("content") for item in items[::2]] == ["q0", "q1"]  # the turn was saved
    assert len(items) == 4


async def test_automatic_compaction_needs_the_whole_history(make_session: MakeSession) -> None:
    """With ``session_settings.limit`` shorter than the history the model sees a suffix.

    The SDK then compacts automatically only on its own SQLite stores (the seen suffix,
    from a user message on); on others it logs a warning and keeps the history. Manual
    ``run_compaction()`` replaces the whole history on both.
    """
    session = make_session("conv", session_settings={"limit": 3})
    client = StubClient()
    approve: list[bool] = []
    wrapper = compacting(
        session, client, compaction_mode="input", should_trigger_compaction=lambda _: bool(approve)
    )
    agent = Agent(name="a", model=ChattyModel())
    for turn in range(3):
        if turn == 2:
            approve.append(True)
        await Runner.run(agent, f"q{turn}", session=wrapper, run_config=NO_TRACING)
    items = await session.get_items(-1)
    if isinstance(session, SQLiteSession):
        assert (items[0], items[1]["id"]) == (user("q0"), "m1")  # not seen by the model: kept
        assert items[2:] == compacted(1, user("q1"), user("q2"))
        return
    assert client.responses.requests == []
    assert [item.get("content") for item in items[::2]] == ["q0", "q1", "q2"]
    assert len(items) == 6
    await wrapper.run_compaction({"force": True})  # what it sends is the SDK's business
    (request,) = client.responses.requests
    users = [item for item in request["input"] if item.get("role") == "user"]
    assert await session.get_items(-1) == compacted(1, *users)


# The SDK replaces the whole history through ``_atomic_replace_items`` when the underlying
# session's type has it (its Redis store does), else by clear_session() then add_items(),
# a window in which other readers see an empty conversation. SessionliteSession has the
# hook, backed by one sessionlite transaction.


class RecordingSession(SessionliteSession):
    """Records the calls the SDK makes and what another reader sees after each."""

    def __init__(self, *args: Any, reader: SessionliteSession, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reader = reader
        self.calls: list[tuple[str, list[Any]]] = []

    async def clear_session(self) -> None:
        await super().clear_session()
        self.calls.append(("clear_session", await self.reader.get_items()))

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        await super().add_items(items)
        self.calls.append(("add_items", await self.reader.get_items()))


async def test_replacement_is_one_transaction(service: SessionService) -> None:
    reader = SessionliteSession("conv", service)  # another session object on the same store
    session = SessionliteSession("conv", service)
    await session.add_items(ITEMS)
    before = service.stats().write_transactions
    seen: list[list[Any]] = []

    async def read_while_replacing() -> None:
        seen.append(await reader.get_items())

    wrapper = compacting(session, StubClient())
    await asyncio.gather(
        wrapper.run_compaction({"force": True}), *(read_while_replacing() for _ in range(20))
    )
    after = compacted(1, ITEMS[0])
    assert await reader.get_items() == after
    # Every read saw the whole old history or the whole new one, never a gap.
    assert all(items in (ITEMS, after) for items in seen), seen
    # The replacement was a single write transaction (no clear, then add).
    assert service.stats().write_transactions - before == 1


async def test_a_subclass_falls_back_to_clear_then_add(service: SessionService) -> None:
    # Like the SDK's own stores: a subclass may transform items, so the hook declines
    # and the SDK goes through the subclass's own clear_session/add_items.
    reader = SessionliteSession("conv", service)
    session = RecordingSession("conv", service, reader=reader)
    await session.add_items(ITEMS)
    session.calls.clear()
    await compacting(session, StubClient()).run_compaction({"force": True})
    assert session.calls == [
        ("clear_session", []),
        ("add_items", compacted(1, ITEMS[0])),
    ]


async def test_replacement_keeps_state_and_goes_through_hooks(tmp_path: Path) -> None:
    redacted: list[str] = []

    async def redact(ctx: Any, call_next: Any) -> Any:
        redacted.append(ctx.event.author)
        return await call_next()

    async with SessionService(tmp_path / "h.db", append_event_hooks=[redact]) as hooked:
        session = SessionliteSession("conv", hooked)
        await session.add_items(ITEMS)
        await hooked.update_session_state(
            app_name=session.app_name, user_id=session.user_id, session_id="conv", delta={"k": 1}
        )
        redacted.clear()
        assert await session._atomic_replace_items([ITEMS[0]]) is True
        assert redacted == ["user"]
        stored = await hooked.get_session(
            app_name=session.app_name, user_id=session.user_id, session_id="conv"
        )
        assert stored is not None and stored.state == {"k": 1}
        assert [e.content for e in stored.events] == [ITEMS[0]]
        assert stored.events[0].sequence == len(ITEMS) + 1  # sequences are never reused
        assert await session._atomic_replace_items([]) is True
        assert await session.get_items() == []


async def test_a_failed_replacement_restores_the_history(service: SessionService) -> None:
    """``add_items`` stores all or nothing, so the SDK's restore puts back every item."""
    session = SessionliteSession("conv", service)
    await session.add_items(ITEMS)

    class NotJson(StubResponses):
        async def compact(self, **request: Any) -> Any:
            return SimpleNamespace(output=[{"type": "compaction", "x": float("nan")}], usage=None)

    client = StubClient()
    client.responses = NotJson()
    with pytest.raises(InvalidInputError):
        await compacting(session, client).run_compaction({"force": True})
    assert await session.get_items() == ITEMS
