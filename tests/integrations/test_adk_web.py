"""ADK's own web/API server (``adk web``, ``adk api_server``) on a ``sessionlite:`` URI.

The app is the one ADK's commands serve, built by ``get_fast_api_app`` from an agents
directory holding the ``services.yaml`` (or ``services.py``) that docs/howto/adk.md
shows, and driven over HTTP in process. The agent's model is scripted: no network.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.adk.agents import config_agent_utils
from google.adk.cli import fast_api, service_registry
from google.adk.cli.utils.service_factory import create_session_service_from_options
from google.adk.sessions.base_session_service import BaseSessionService

from sessionlite.integrations.adk import SessionliteSessionService

DOC = Path(__file__).resolve().parents[2] / "docs" / "howto" / "adk.md"
APP = "sessionlite_web_agent"  # the agent package: a name no other test imports

AGENT = '''
from collections.abc import AsyncGenerator

from google.adk.agents import LlmAgent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.tools.tool_context import ToolContext
from google.genai import types


class ScriptedModel(BaseLlm):
    """Calls `remember` when told a colour, confirms the call, else says what it knows."""

    model: str = "scripted"

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        last = llm_request.contents[-1].parts[0]
        if last.function_response is not None:
            part = types.Part(text="Noted: " + last.function_response.response["saved"] + ".")
        elif last.text.startswith("My favourite colour is "):
            colour = last.text.removeprefix("My favourite colour is ").rstrip(".")
            call = types.FunctionCall(name="remember", args={"colour": colour})
            part = types.Part(function_call=call)
        else:
            said = [c for c in llm_request.contents if c.role == "user" and c.parts[0].text]
            part = types.Part(text=f"I have seen {len(said)} messages from you.")
        usage = types.GenerateContentResponseUsageMetadata(
            prompt_token_count=1, candidates_token_count=1
        )
        yield LlmResponse(content=types.Content(role="model", parts=[part]), usage_metadata=usage)


def remember(colour: str, tool_context: ToolContext) -> dict[str, str]:
    """Remember the user's favourite colour."""
    tool_context.state["colour"] = colour
    tool_context.state["user:colour"] = colour
    return {"saved": colour}


root_agent = LlmAgent(name="assistant", model=ScriptedModel(), tools=[remember])
'''


def doc_block(language: str, marker: str) -> str:
    """The ```language block of docs/howto/adk.md that contains ``marker``."""
    blocks: list[str] = re.findall(
        rf"^```{language}\n(.*?)^```", DOC.read_text("utf-8"), re.S | re.M
    )
    (block,) = [b for b in blocks if marker in b]
    return block


@pytest.fixture
def isolated_adk(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[BaseSessionService]]:
    """ADK's process-wide state, restored afterwards: the service registry, sys.path, the
    imported agent and services modules. Yields the session services ADK builds."""
    monkeypatch.setattr(service_registry, "_service_registry_instance", None)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(
        config_agent_utils,
        "_ENFORCE_YAML_KEY_DENYLIST",
        config_agent_utils._ENFORCE_YAML_KEY_DENYLIST,
    )
    built: list[BaseSessionService] = []
    build = create_session_service_from_options

    def spy(**kwargs: Any) -> BaseSessionService:
        service = build(**kwargs)
        built.append(service)
        return service

    monkeypatch.setattr(fast_api, "create_session_service_from_options", spy)
    imported = ("services", APP, f"{APP}.agent")
    for name in imported:
        sys.modules.pop(name, None)
    yield built
    for name in imported:
        sys.modules.pop(name, None)


def history(session: Any) -> list[tuple[str, str]]:
    return [
        (event.author, part.text or (part.function_call and part.function_call.name) or "")
        for event in session.events
        for part in (event.content.parts if event.content and event.content.parts else [])
    ]


@pytest.mark.timeout(120)
# ADK's own notice, given when its server builds an InMemoryCredentialService.
@pytest.mark.filterwarnings(r"ignore:\[EXPERIMENTAL\]:UserWarning")
@pytest.mark.parametrize(
    ("services_file", "web"),
    [("services.yaml", True), ("services.py", False)],
    ids=["yaml-adk-web", "py-adk-api-server"],
)
async def test_adk_server_on_a_sessionlite_uri(
    tmp_path: Path,
    isolated_adk: list[BaseSessionService],
    services_file: str,
    web: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sessions")  # the services.py hook's logger
    agents = tmp_path / "agents"
    (agents / APP).mkdir(parents=True)
    (agents / APP / "__init__.py").write_text("from . import agent\n", "utf-8")
    (agents / APP / "agent.py").write_text(AGENT, "utf-8")
    if services_file == "services.yaml":
        (agents / "services.yaml").write_text(doc_block("yaml", "scheme: sessionlite"), "utf-8")
    else:
        (agents / "services.py").write_text(
            doc_block("python", "register_session_service"), "utf-8"
        )
    db = tmp_path / "data" / "sessions.db"
    db.parent.mkdir()

    # What `adk web` / `adk api_server --session_service_uri sessionlite:///... agents`
    # builds (sessionlite:///<absolute path>: a fourth slash, from the path).
    app = fast_api.get_fast_api_app(
        agents_dir=str(agents),
        session_service_uri=f"sessionlite:///{db.as_posix()}",
        use_local_storage=False,
        web=web,
        bind_host="127.0.0.1",
    )
    (service,) = isolated_adk
    assert isinstance(service, SessionliteSessionService)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
            ) as client,
        ):
            sessions = f"/apps/{APP}/users/ann/sessions"
            created = await client.post(sessions, json={"sessionId": "chat", "state": {"n": 1}})
            assert created.status_code == 200, created.text
            assert created.json()["state"] == {"n": 1}

            for text in ["My favourite colour is teal.", "Do you remember?"]:
                message = {"role": "user", "parts": [{"text": text}]}
                ran = await client.post(
                    "/run",
                    json={
                        "appName": APP,
                        "userId": "ann",
                        "sessionId": "chat",
                        "newMessage": message,
                    },
                )
                assert ran.status_code == 200, ran.text
            replies = [part["text"] for event in ran.json() for part in event["content"]["parts"]]
            assert replies == ["I have seen 2 messages from you."]

            got = (await client.get(f"{sessions}/chat")).json()
            assert got["state"] == {"n": 1, "colour": "teal", "user:colour": "teal"}
            assert got["lastUpdateTime"] == got["events"][-1]["timestamp"]
            (listed,) = (await client.get(sessions)).json()
            assert listed["id"] == "chat" and listed["lastUpdateTime"] == got["lastUpdateTime"]
    finally:
        await service.close()

    # Another process, later: the same file.
    async with SessionliteSessionService(uri=f"sessionlite:///{db.as_posix()}") as reopened:
        session = await reopened.get_session(app_name=APP, user_id="ann", session_id="chat")
    assert session is not None
    assert history(session) == [
        ("user", "My favourite colour is teal."),
        ("assistant", "remember"),
        ("assistant", ""),  # the function response
        ("assistant", "Noted: teal."),
        ("user", "Do you remember?"),
        ("assistant", "I have seen 2 messages from you."),
    ]
    assert session.state == {"n": 1, "colour": "teal", "user:colour": "teal"}
    assert session.last_update_time == session.events[-1].timestamp
    if services_file == "services.py":  # built by its factory, with its append hook
        stored = [r.getMessage() for r in caplog.records if r.name == "sessions"]
        assert len(stored) == len(session.events)
