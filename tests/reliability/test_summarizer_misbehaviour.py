"""A summarizer that hangs, raises, returns garbage or crawls must not hurt appends."""

from __future__ import annotations

from pathlib import Path

import anyio

from sessionlite import Event, SessionService, SummaryQueueFullError, SummaryRequest
from sessionlite.crossloop import CrossLoopEvent


class Chaotic:
    """Misbehaves according to the session id."""

    def __init__(self) -> None:
        self.gate = CrossLoopEvent()
        self.calls: dict[str, int] = {}

    async def summarize(self, request: SummaryRequest) -> object:
        kind = request.session.id.split("-")[0]
        self.calls[kind] = self.calls.get(kind, 0) + 1
        if kind == "hang":
            await anyio.sleep_forever()
        if kind == "raise":
            raise RuntimeError("summarizer exploded")
        if kind == "garbage":
            return {"not": "a string"}
        if kind == "slow":
            await self.gate.wait()
        return f"fine: {len(request.events)} events"


async def test_appends_keep_flowing_and_workers_survive(tmp_path: Path) -> None:
    chaotic = Chaotic()
    path = tmp_path / "db.sqlite"
    async with SessionService(
        path,
        summarizer=chaotic,
        summary_workers=2,
        summary_queue_size=3,
        summary_queue_full="reject",
        summary_job_timeout=0.05,
    ) as service:
        kinds = ["hang", "raise", "garbage", "slow", "good"]
        sessions = {
            kind: [
                await service.create_session(app_name="a", user_id="u", session_id=f"{kind}-{i}")
                for i in range(3)
            ]
            for kind in kinds
        }
        appended = rejected = 0
        for round_ in range(20):
            for kind in kinds:
                for session in sessions[kind]:
                    await service.append_event(session, Event(author="u", content=round_))
                    appended += 1
                    try:
                        await service.enqueue_summary(session)
                    except SummaryQueueFullError:
                        rejected += 1
        assert appended == 20 * len(kinds) * 3  # every append went through, none waited
        chaotic.gate.set()  # the slow ones may finish now
        # The pool survived all of it: a well-behaved job still completes.
        summary = await service.summarize(sessions["good"][0], force=True)
        assert summary is not None and summary.text.startswith("fine")
    stats = service.stats()
    assert stats.summary_jobs_timed_out >= 1
    assert stats.summary_jobs_failed >= 2  # raised, and returned garbage
    assert stats.summary_jobs_rejected == rejected > 0
    assert stats.events_persisted == appended
    async with SessionService(path) as reopened:  # failed jobs never touched a summary
        for kind in ("hang", "raise", "garbage"):
            for session in sessions[kind]:
                assert (
                    await reopened.get_summary(app_name="a", user_id="u", session_id=session.id)
                    is None
                )
