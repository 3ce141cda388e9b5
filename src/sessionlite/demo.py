"""``python -m sessionlite demo``: a short scripted agent conversation, stored and shown.

It plays two turns of a weather agent (user message, a tool call, the tool's result
that writes state, the assistant's answer), then reads the session back and prints
what was stored and what each step cost.
"""

from __future__ import annotations

import functools
import shlex
import time
from collections.abc import Awaitable, Callable
from typing import TextIO, TypeVar

from .models import Event, Session, ToolCall, ToolResult, Usage, new_id
from .service import SessionService

T = TypeVar("T")

APP = "weather-agent"
USER = "demo-user"
DOCS = "docs/index.md in the source tree (build the site with `nox -s docs`)"


class _Timer:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.total = 0.0

    async def step(self, label: str, call: Callable[[], Awaitable[T]]) -> T:
        start = time.perf_counter()
        result = await call()
        elapsed = time.perf_counter() - start
        self.total += elapsed
        print(f"  {label:<44} {elapsed * 1000:8.2f} ms", file=self.out)
        return result


def _turn(question: str, city: str, temperature: int) -> list[Event]:
    call = ToolCall(name="get_weather", arguments={"city": city})
    return [
        Event(author="user", content=question),
        Event(author="assistant", tool_calls=[call], model="demo-model"),
        Event(
            author="tool",
            tool_results=[
                ToolResult(call_id=call.id, output={"city": city, "temp_c": temperature})
            ],
            state_delta={"last_city": city, "user:favourite_city": city, "temp:raw": temperature},
        ),
        Event(
            author="assistant",
            content=f"It is {temperature} °C in {city}.",
            model="demo-model",
            usage=Usage(input_tokens=42, output_tokens=9),
        ),
    ]


def _describe(session: Session, out: TextIO) -> None:
    print(f"\nStored session {session.id} (version {session.version}):", file=out)
    print(f"  state: {session.state}", file=out)
    for event in session.events:
        if event.tool_calls:
            what = "calls " + ", ".join(f"{c.name}({c.arguments})" for c in event.tool_calls)
        elif event.tool_results:
            what = "returns " + ", ".join(str(r.output) for r in event.tool_results)
        else:
            what = repr(event.content)
        print(f"  #{event.sequence:<3} {event.author:<10} {what}", file=out)


async def run_demo(path: str | None, out: TextIO) -> None:
    """Play the scripted conversation against the database at ``path``."""
    timer = _Timer(out)
    async with SessionService(path) as service:
        print(f"Database: {service.path}", file=out)
        if path is None:
            print(
                "(your default sessionlite database: each demo run adds one session to it;"
                " pass --db PATH to use another file)",
                file=out,
            )
        print(file=out)
        session = await timer.step(
            "create_session",
            lambda: service.create_session(app_name=APP, user_id=USER, session_id=new_id()),
        )
        turns = [
            _turn("What's the weather in Paris?", "Paris", 18),
            _turn("And in Oslo?", "Oslo", 4),
        ]
        for number, events in enumerate(turns, start=1):
            for event in events:
                await timer.step(
                    f"turn {number}: append_event ({event.author})",
                    functools.partial(service.append_event, session, event),
                )
        stored = await timer.step(
            "get_session (last 20 events)",
            lambda: service.get_session(
                app_name=APP, user_id=USER, session_id=session.id, num_recent_events=20
            ),
        )
        assert stored is not None
        _describe(stored, out)
        page = await service.list_sessions(app_name=APP, user_id=USER, limit=5)
        print(f"\n{USER} has {len(page.sessions)} recent session(s) in {APP!r}", end="", file=out)
        print(" (more on the next page)" if page.next_cursor else "", file=out)
        print(f"\nTotal time in sessionlite calls: {timer.total * 1000:.2f} ms", file=out)
    _next_steps(service.path, session.id, default=path is None, out=out)


def _next_steps(path: str, session_id: str, *, default: bool, out: TextIO) -> None:
    db = "" if default else f" --db {shlex.quote(path)}"
    if path == ":memory:":
        print("\nThe in-memory database is gone now; run with a file to keep it.", file=out)
        return
    print("\nTry next:", file=out)
    print(f"  sessionlite{db} sessions --app {APP}", file=out)
    print(f"  sessionlite{db} show {session_id} --app {APP} --user {USER}", file=out)
    print(f"  sessionlite{db} stats", file=out)
    print(f"  Docs: {DOCS}", file=out)
