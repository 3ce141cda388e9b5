"""Payload builders shared by the benchmarks.

Everything here is the "user's own code": building ``Event`` objects happens before any
timer starts.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from sessionlite import Event

APP_NAME = "bench"
USER_ID = "user-1"

# Fields sessionlite keeps in their own columns; everything else is the JSON body.
BODY_EXCLUDE: set[str] = {"id", "author", "timestamp", "branch", "sequence", "partial"}

_TEXT = (
    "the agent called a tool and summarised what it found about sqlite write ahead logs "
    "while the user asked for more detail on durability group commit and latency budgets"
)
_WORDS = tuple(_TEXT.split(" "))


def text_of(chars: int, seed: int = 0) -> str:
    """Deterministic English-ish text of exactly ``chars`` characters."""
    words: list[str] = []
    length = 0
    i = seed
    while length < chars:
        word = _WORDS[i % len(_WORDS)]
        words.append(word)
        length += len(word) + 1
        i += 7
    return " ".join(words)[:chars]


def make_events(count: int, *, content_chars: int, first_turn: int = 0) -> list[Event]:
    """``count`` alternating user/assistant events with text content and a small delta."""
    events = []
    for i in range(first_turn, first_turn + count):
        events.append(
            Event(
                author="user" if i % 2 == 0 else "assistant",
                content=text_of(content_chars, seed=i),
                state_delta={"turn": i},
            )
        )
    return events


def append_workload(
    sessions: int, events_per_session: int, content_chars: int
) -> list[list[Event]]:
    """One list of events per session, for the concurrent append benchmark."""
    return [make_events(events_per_session, content_chars=content_chars) for _ in range(sessions)]


def body_of(event: Event) -> str:
    """The JSON body a store has to write for ``event`` (as sessionlite serializes it)."""
    return event.model_dump_json(exclude=BODY_EXCLUDE, exclude_defaults=True)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (``fraction`` in 0..1)."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, round(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def best_and_median(values: Sequence[float]) -> tuple[float, float]:
    """(smallest, median) of repeated timings."""
    return min(values), statistics.median(values)
