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
import time
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path
from typing import Any

from .workloads import frozen_gc, percentile, temp_dir, text_of

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

    @property
    def where(self) -> str:
        """``service label, scenario name``, for the reports."""
        return f"{LABELS[self.service]}, {self.scenario.name}"

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

    def scenarios(self) -> list[Scenario]:
        return list(dict.fromkeys(cell.scenario for cell in self.cells))

    def cells_of(self, scenario: Scenario) -> list[LoopCell]:
        return [cell for cell in self.cells if cell.scenario == scenario]

    def vs_sessionlite(self, cell: LoopCell) -> float:
        """The cell's store time over durable sessionlite's in the same scenario."""
        base = next((c for c in self.cells_of(cell.scenario) if c.service == "sessionlite"), None)
        return cell.store() / base.store() if base is not None and base.store() else 0.0

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

        options: dict[str, Any] = {"async_persist": True} if kind == "sessionlite-async" else {}
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


def _run_config(scenario: Scenario) -> Any:
    from google.adk.agents.run_config import RunConfig
    from google.adk.sessions.base_session_service import GetSessionConfig

    if scenario.recent is None:
        return RunConfig()
    return RunConfig(get_session_config=GetSessionConfig(num_recent_events=scenario.recent))


def _message(turn: int) -> Any:
    from google.genai import types

    return types.Content(role="user", parts=[types.Part(text=text_of(120, seed=turn))])


async def _turn(runner: Any, user: str, turn: int, run_config: Any) -> None:
    async for _ in runner.run_async(
        user_id=user, session_id="chat", new_message=_message(turn), run_config=run_config
    ):
        pass


@dataclasses.dataclass
class _Conversations:
    """The timed turns of one scenario on one service."""

    runner: Any
    scenario: Scenario
    run_config: Any
    errors: Counter[str] = dataclasses.field(default_factory=Counter)
    turn_ms: list[float] = dataclasses.field(default_factory=list)
    store_ms: list[float] = dataclasses.field(default_factory=list)

    async def converse(self, user: str) -> None:
        for t in range(self.scenario.turns):
            turn = _Turn()
            token = _CURRENT.set(turn)
            start = time.perf_counter_ns()
            try:
                await _turn(self.runner, user, t, self.run_config)
            except Exception as exc:
                self.errors[f"{type(exc).__name__}: {str(exc).strip()[:100]}"] += 1
            else:
                self.turn_ms.append((time.perf_counter_ns() - start) / 1e6)
                self.store_ms.append(turn.store_ns / 1e6)
            finally:
                _CURRENT.reset(token)


async def _check(service: Any, user: str, turns: int) -> list[str]:
    """Untimed: every turn stored 4 events and counted one note."""
    session = await service.get_session(app_name=APP, user_id=user, session_id="chat")
    if session is None:
        return []
    events, notes = len(session.events), session.state.get("notes")
    if events == 4 * turns and notes == turns:
        return []
    return [f"check: {events} events and notes={notes}, expected {4 * turns} and {turns}"]


async def _scenario(kind: str, scenario: Scenario, directory: Path) -> LoopCell:
    from google.adk.runners import Runner

    service = _service(kind, directory / "sessions.db")
    calls: Counter[str] = Counter()
    runner = Runner(app_name=APP, agent=_agent(), session_service=service)
    talks = _Conversations(runner, scenario, _run_config(scenario))
    users = [f"user-{u:03d}" for u in range(scenario.users)]
    for user in [*users, "warm-up"]:
        await service.create_session(app_name=APP, user_id=user, session_id="chat")
    # Untimed: two turns of another user, so that one-time costs (ADK's lazy imports,
    # first connections, statement caches) are not in the first timed turn.
    for t in range(2):
        await _turn(runner, "warm-up", t, talks.run_config)
    _wrap(service, calls)
    try:
        with frozen_gc():
            start = time.perf_counter()
            await asyncio.gather(*(talks.converse(user) for user in users))
            if hasattr(service, "flush"):
                await service.flush()
            wall = time.perf_counter() - start
        notes = [] if talks.errors else await _check(service, users[0], scenario.turns)
    finally:
        await runner.close()
        await service.close()
    return LoopCell(
        service=kind,
        scenario=scenario,
        turns=len(talks.turn_ms),
        failed=sum(talks.errors.values()),
        errors=dict(talks.errors),
        wall_s=wall,
        turn_ms=talks.turn_ms,
        store_ms=talks.store_ms,
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
            with temp_dir(tmp_root, "sessionlite-adk-") as tmp:
                cells.append(asyncio.run(_scenario(kind, scenario, tmp)))
    return AdkLoopResult(cells=cells, quick=quick, total_s=time.perf_counter() - started)


def report(result: AdkLoopResult) -> list[str]:
    lines = [
        "ADK runner loop: Runner + LlmAgent + scripted model (tool call, then answer): "
        "1 get_session + 4 append_event per turn; store time = time inside the session "
        "service's methods during the turn"
    ]
    for scenario in result.scenarios():
        lines.append(f"  {scenario.name}")
        lines.append(
            f"    {'service':<44} {'turns/s':>8} {'turn ms':>8} {'store ms/turn':>14} "
            f"{'p50':>7} {'p99':>7} {'store %':>8} {'store vs sessionlite':>21}"
        )
        for cell in result.cells_of(scenario):
            failed = f"  FAIL({cell.failed})" if cell.failed else ""
            lines.append(
                f"    {LABELS[cell.service]:<44} {cell.turns_per_s:>8.1f} "
                f"{cell.turn_mean_ms:>8.2f} {cell.store():>14.2f} {cell.store(0.5):>7.2f} "
                f"{cell.store(0.99):>7.2f} {cell.store_share:>8.0%} "
                f"{result.vs_sessionlite(cell):>20.1f}x{failed}"
            )
    for cell in result.cells:
        lines += [f"  {cell.where}: {count} x {error}" for error, count in cell.errors.items()]
        lines += [f"  {cell.where}: {note}" for note in cell.notes]
    lines.append(f"  adk-loop total {result.total_s:.1f} s")
    return lines
