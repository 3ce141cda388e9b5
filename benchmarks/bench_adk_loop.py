"""The ADK runner loop: session-store time per turn (``--only adk-loop``).

A real ``google.adk.runners.Runner`` drives an ``LlmAgent`` whose model is scripted (a
``BaseLlm`` subclass, no network): every turn the model first calls a tool that writes
session state, then answers in text. One turn therefore makes the runner call the
session service 5 times: ``get_session`` once, ``append_event`` 4 times (the user's
message, the model's function call, the tool's response with its state delta, the
model's answer). Every method of the session service is wrapped with a timer; the time
spent inside them during a turn is that turn's store time.

The services: sessionlite's ``SessionliteSessionService`` (durable, and with
``async_persist=True``) against ADK's own ``DatabaseSessionService``
(``sqlite+aiosqlite:///``) and ``SqliteSessionService``, each on a fresh file.
Scenarios: one user (turns one after another: the store time without contention) and
several concurrent users; by default the runner loads the whole session every turn
(``RunConfig()``), one scenario bounds it with
``RunConfig(get_session_config=GetSessionConfig(num_recent_events=20))``.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import tempfile
import time
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path
from typing import Any

from .bench_peers import frozen_gc
from .workloads import percentile, text_of

APP = "bench-adk"
SERVICES = ("sessionlite", "sessionlite-async", "adk-database", "adk-sqlite")
LABELS = {
    "sessionlite": "SessionliteSessionService (durable)",
    "sessionlite-async": "SessionliteSessionService (async_persist)",
    "adk-database": "ADK DatabaseSessionService",
    "adk-sqlite": "ADK SqliteSessionService",
}
CONFIGS = {
    "sessionlite": "`SessionliteSessionService(path)`",
    "sessionlite-async": "`SessionliteSessionService(path, async_persist=True)`",
    "adk-database": '`DatabaseSessionService(db_url="sqlite+aiosqlite:///path")`',
    "adk-sqlite": "`SqliteSessionService(db_path=path)`",
}
TIMED_METHODS = ("create_session", "get_session", "append_event", "list_sessions")
REPLY_CHARS = 200


@dataclasses.dataclass(frozen=True)
class Scenario:
    users: int
    turns: int  # per user
    recent: int | None  # GetSessionConfig(num_recent_events=...), None = the runner's default

    @property
    def name(self) -> str:
        load = "whole session" if self.recent is None else f"newest {self.recent} events"
        return f"{self.users} user{'s' if self.users > 1 else ''} x {self.turns} turns, {load}"


def scenarios(*, quick: bool) -> list[Scenario]:
    if quick:
        return [Scenario(1, 5, None), Scenario(5, 5, None)]
    return [Scenario(1, 30, None), Scenario(10, 30, None), Scenario(10, 30, 20)]


@dataclasses.dataclass
class LoopCell:
    service: str
    scenario: Scenario
    turns: int  # completed
    failed: int
    errors: dict[str, int]
    wall_s: float  # whole scenario
    turn_ms: list[float]  # wall time of each completed turn
    store_ms: list[float]  # store time of each completed turn
    calls: dict[str, int]  # service calls made, by method
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def turns_per_s(self) -> float:
        return self.turns / self.wall_s if self.wall_s else 0.0

    def store(self, fraction: float | None = None) -> float:
        """Store ms per turn: the mean, or a percentile."""
        if not self.store_ms:
            return 0.0
        if fraction is None:
            return sum(self.store_ms) / len(self.store_ms)
        return percentile(sorted(self.store_ms), fraction)

    @property
    def turn_mean_ms(self) -> float:
        return sum(self.turn_ms) / len(self.turn_ms) if self.turn_ms else 0.0

    @property
    def store_share(self) -> float:
        total = sum(self.turn_ms)
        return sum(self.store_ms) / total if total else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "scenario": dataclasses.asdict(self.scenario),
            "turns": self.turns,
            "failed": self.failed,
            "errors": self.errors,
            "wall_s": self.wall_s,
            "turns_per_s": self.turns_per_s,
            "store_ms_per_turn_mean": self.store(),
            "store_ms_per_turn_p50": self.store(0.5),
            "store_ms_per_turn_p99": self.store(0.99),
            "turn_ms_mean": self.turn_mean_ms,
            "store_share_of_turn": self.store_share,
            "calls": self.calls,
            "notes": self.notes,
        }


@dataclasses.dataclass
class AdkLoopResult:
    cells: list[LoopCell]
    quick: bool
    total_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "quick": self.quick,
            "services": {key: {"label": LABELS[key], "config": CONFIGS[key]} for key in SERVICES},
            "cells": [cell.to_json() for cell in self.cells],
            "total_s": self.total_s,
        }


# -- the agent ------------------------------------------------------------------------------


def _agent() -> Any:
    from google.adk.agents import LlmAgent
    from google.adk.models.base_llm import BaseLlm
    from google.adk.models.llm_request import LlmRequest
    from google.adk.models.llm_response import LlmResponse
    from google.adk.tools.tool_context import ToolContext
    from google.genai import types

    class ScriptedModel(BaseLlm):
        """Calls the ``remember`` tool, then answers once the tool's response is in the
        request; never touches a network."""

        model: str = "scripted"

        async def generate_content_async(
            self, llm_request: LlmRequest, stream: bool = False
        ) -> AsyncGenerator[LlmResponse, None]:
            last = llm_request.contents[-1] if llm_request.contents else None
            answered = last is not None and any(
                part.function_response is not None for part in last.parts or []
            )
            if answered:
                part = types.Part(text=text_of(REPLY_CHARS, seed=len(llm_request.contents)))
            else:
                part = types.Part(
                    function_call=types.FunctionCall(
                        name="remember", args={"note": text_of(60, seed=3)}
                    )
                )
            yield LlmResponse(content=types.Content(role="model", parts=[part]))

    def remember(note: str, tool_context: ToolContext) -> dict[str, Any]:
        """Remember a note about the user."""
        tool_context.state["notes"] = tool_context.state.get("notes", 0) + 1
        tool_context.state["last_note"] = note
        return {"saved": True}

    return LlmAgent(
        name="assistant",
        model=ScriptedModel(),
        instruction="Answer briefly. Notes so far: {notes?}",
        tools=[remember],
    )


def _service(kind: str, path: Path) -> Any:
    if kind.startswith("sessionlite"):
        from sessionlite.integrations.adk import SessionliteSessionService

        options = {"async_persist": True} if kind == "sessionlite-async" else {}
        return SessionliteSessionService(path, **options)
    if kind == "adk-database":
        from google.adk.sessions.database_session_service import DatabaseSessionService

        return DatabaseSessionService(db_url=f"sqlite+aiosqlite:///{path}")
    from google.adk.sessions.sqlite_session_service import SqliteSessionService

    return SqliteSessionService(db_path=str(path))


# -- timing -----------------------------------------------------------------------------


@dataclasses.dataclass
class _Turn:
    store_ns: int = 0


_CURRENT: contextvars.ContextVar[_Turn | None] = contextvars.ContextVar("turn", default=None)


def _wrap(service: Any, calls: Counter[str]) -> None:
    """Replace the service's methods with timed ones (instance attributes)."""
    for name in TIMED_METHODS:
        original: Callable[..., Awaitable[Any]] = getattr(service, name)

        async def timed(
            *args: Any,
            _original: Callable[..., Awaitable[Any]] = original,
            _name: str = name,
            **kwargs: Any,
        ) -> Any:
            start = time.perf_counter_ns()
            try:
                return await _original(*args, **kwargs)
            finally:
                turn = _CURRENT.get()
                if turn is not None:
                    turn.store_ns += time.perf_counter_ns() - start
                    calls[_name] += 1

        setattr(service, name, timed)


async def _scenario(kind: str, scenario: Scenario, directory: Path) -> LoopCell:
    from google.adk.agents.run_config import RunConfig
    from google.adk.runners import Runner
    from google.adk.sessions.base_session_service import GetSessionConfig
    from google.genai import types

    service = _service(kind, directory / "sessions.db")
    calls: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    turn_ms: list[float] = []
    store_ms: list[float] = []
    notes: list[str] = []
    runner = Runner(app_name=APP, agent=_agent(), session_service=service)
    run_config = (
        RunConfig()
        if scenario.recent is None
        else RunConfig(get_session_config=GetSessionConfig(num_recent_events=scenario.recent))
    )
    users = [f"user-{u:03d}" for u in range(scenario.users)]
    for user in [*users, "warm-up"]:
        await service.create_session(app_name=APP, user_id=user, session_id="chat")
    # Untimed: two turns of another user, so that one-time costs (ADK's lazy imports,
    # first connections, statement caches) are not in the first timed turn.
    for t in range(2):
        message = types.Content(role="user", parts=[types.Part(text=text_of(120, seed=t))])
        async for _ in runner.run_async(
            user_id="warm-up", session_id="chat", new_message=message, run_config=run_config
        ):
            pass
    _wrap(service, calls)

    async def converse(user: str) -> None:
        for t in range(scenario.turns):
            message = types.Content(role="user", parts=[types.Part(text=text_of(120, seed=t))])
            turn = _Turn()
            token = _CURRENT.set(turn)
            start = time.perf_counter_ns()
            try:
                async for _ in runner.run_async(
                    user_id=user, session_id="chat", new_message=message, run_config=run_config
                ):
                    pass
            except Exception as exc:
                errors[f"{type(exc).__name__}: {str(exc).strip()[:100]}"] += 1
            else:
                turn_ms.append((time.perf_counter_ns() - start) / 1e6)
                store_ms.append(turn.store_ns / 1e6)
            finally:
                _CURRENT.reset(token)

    try:
        with frozen_gc():
            start = time.perf_counter()
            await asyncio.gather(*(converse(user) for user in users))
            if hasattr(service, "flush"):
                await service.flush()
            wall = time.perf_counter() - start
        # Untimed check: every turn stored 4 events and counted one note.
        session = await service.get_session(app_name=APP, user_id=users[0], session_id="chat")
        done_first = scenario.turns if not errors else None
        if (
            session is not None
            and done_first is not None
            and (len(session.events) != 4 * done_first or session.state.get("notes") != done_first)
        ):
            notes.append(
                f"check: {len(session.events)} events and notes={session.state.get('notes')}"
                f", expected {4 * done_first} and {done_first}"
            )
    finally:
        await runner.close()
        await service.close()
    return LoopCell(
        service=kind,
        scenario=scenario,
        turns=len(turn_ms),
        failed=sum(errors.values()),
        errors=dict(errors),
        wall_s=wall,
        turn_ms=turn_ms,
        store_ms=store_ms,
        calls=dict(calls),
        notes=notes,
    )


def run(*, quick: bool, tmp_root: str | None = None) -> AdkLoopResult:
    # ADK logs a warning per model call without token usage (the scripted model has none).
    logging.getLogger("google_adk").setLevel(logging.ERROR)
    started = time.perf_counter()
    cells = []
    for scenario in scenarios(quick=quick):
        for kind in SERVICES:
            with tempfile.TemporaryDirectory(prefix="sessionlite-adk-", dir=tmp_root) as tmp:
                cells.append(asyncio.run(_scenario(kind, scenario, Path(tmp))))
    return AdkLoopResult(cells=cells, quick=quick, total_s=time.perf_counter() - started)


def report(result: AdkLoopResult) -> list[str]:
    lines = [
        "ADK runner loop: Runner + LlmAgent + scripted model (tool call, then answer): "
        "1 get_session + 4 append_event per turn; store time = time inside the session "
        "service's methods during the turn"
    ]
    current = None
    for cell in result.cells:
        if cell.scenario != current:
            current = cell.scenario
            lines.append(f"  {current.name}")
            lines.append(
                f"    {'service':<44} {'turns/s':>8} {'turn ms':>8} {'store ms/turn':>14} "
                f"{'p50':>7} {'p99':>7} {'store %':>8} {'store vs sessionlite':>21}"
            )
            base = next(
                c for c in result.cells if c.scenario == current and c.service == "sessionlite"
            )
        ratio = cell.store() / base.store() if base.store() else 0.0
        failed = f"  FAIL({cell.failed})" if cell.failed else ""
        lines.append(
            f"    {LABELS[cell.service]:<44} {cell.turns_per_s:>8.1f} {cell.turn_mean_ms:>8.2f} "
            f"{cell.store():>14.2f} {cell.store(0.5):>7.2f} {cell.store(0.99):>7.2f} "
            f"{cell.store_share:>8.0%} {ratio:>20.1f}x{failed}"
        )
    for cell in result.cells:
        for error, count in cell.errors.items():
            lines.append(f"  {LABELS[cell.service]}, {cell.scenario.name}: {count} x {error}")
        for note in cell.notes:
            lines.append(f"  {LABELS[cell.service]}, {cell.scenario.name}: {note}")
    lines.append(f"  adk-loop total {result.total_s:.1f} s")
    return lines
