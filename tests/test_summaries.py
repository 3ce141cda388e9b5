"""Conformance: summaries (summarize, branches, the job queue, timeouts, failures)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

import anyio
import pytest

from sessionlite import (
    Event,
    InvalidInputError,
    ServiceClosedError,
    Session,
    SessionService,
    Summary,
    SummaryQueueFullError,
    SummaryRequest,
)
from sessionlite.crossloop import CrossLoopEvent
from sessionlite.store.base import SessionKey
from sessionlite.testing import FakeSummarizer, ManualClock

MakeService = Callable[..., SessionService]
T = TypeVar("T")
APP, USER = "app", "u"


async def new_session(service: SessionService, sid: str = "s") -> Session:
    return await service.create_session(app_name=APP, user_id=USER, session_id=sid)


async def add(service: SessionService, s: Session, *authors: str, branch: str = "") -> list[Event]:
    return await service.append_events(s, [Event(author=a, branch=branch) for a in authors])


async def stored(service: SessionService, sid: str = "s", branch: str = "") -> Summary | None:
    return await service.get_summary(app_name=APP, user_id=USER, session_id=sid, branch=branch)


def some(value: T | None) -> T:
    assert value is not None
    return value


async def reload(service: SessionService, sid: str = "s") -> Session:
    return some(await service.get_session(app_name=APP, user_id=USER, session_id=sid))


def requests_for(fake: FakeSummarizer, sid: str) -> list[SummaryRequest]:
    return [r for r in fake.requests if r.session.id == sid]


async def wait_for_call(fake: FakeSummarizer, sid: str, *, after: int = 0) -> None:
    """Wait (event-driven) until a summarizer call for ``sid`` beyond ``after`` started."""
    with anyio.fail_after(5):
        while not any(r.session.id == sid for r in fake.requests[after:]):
            fake.entered = CrossLoopEvent()
            await fake.entered.wait()


async def settle(service: SessionService, fake: FakeSummarizer) -> None:
    """One worker: once a sentinel job starts, every job queued before it has finished."""
    sentinel = await service.get_or_create_session(app_name=APP, user_id=USER, session_id="z")
    calls = fake.calls
    assert await service.enqueue_summary(sentinel, force=True)
    await wait_for_call(fake, "z", after=calls)


async def test_summarize_stores_summary(make_service: MakeService, clock: ManualClock) -> None:
    fake = FakeSummarizer()
    async with make_service(summarizer=fake) as service:
        session = await new_session(service)
        events = await add(service, session, "user", "assistant", "user")
        summary = some(await service.summarize(session))
        assert (summary.text, summary.branch) == ("3 event(s): user, assistant, user", "")
        got = await reload(service)
        assert summary.through_sequence == got.events[-1].sequence == 3
        (request,) = fake.requests
        assert request.previous is None and request.branch == ""
        assert [e.id for e in request.events] == [e.id for e in events]
        assert session.summaries == got.summaries == {"": summary}
        assert await stored(service) == summary
        clock.advance(seconds=10)
        assert await service.summarize(session) is None  # nothing new: nothing changes
        assert fake.calls == 1
        assert await stored(service) == summary
        assert (await reload(service)).summaries == {"": summary}
        stats = service.stats()
        assert (stats.summary_jobs_done, stats.summary_jobs_skipped) == (1, 1)


async def test_force_then_only_new_events(make_service: MakeService, clock: ManualClock) -> None:
    fake = FakeSummarizer()
    async with make_service(summarizer=fake) as service:
        session = await new_session(service)
        await add(service, session, "user", "assistant")
        first = some(await service.summarize(session))
        clock.advance(seconds=10)
        forced = some(await service.summarize(session, force=True))
        assert (fake.requests[-1].events, fake.requests[-1].previous) == ([], first)
        assert forced.text == "2 event(s): user, assistant + 0 event(s): "
        assert (forced.through_sequence, forced.updated_at) == (2, clock.now)
        assert await stored(service) == forced
        assert (await reload(service)).summaries[""] == forced
        new = await add(service, session, "tool", "assistant")
        second = some(await service.summarize(session))
        request = fake.requests[-1]
        assert [e.id for e in request.events] == [e.id for e in new]
        assert request.previous == forced
        assert second.text == forced.text + " + 2 event(s): tool, assistant"
        assert second.through_sequence == 4
        assert await stored(service) == second


async def test_branch_summaries(make_service: MakeService) -> None:
    fake = FakeSummarizer()
    async with make_service(summarizer=fake) as service:
        session = await new_session(service)
        for branch in ["", "a", "c", "a/b", "ab"]:
            await add(service, session, f"on-{branch}", branch=branch)
        assert await stored(service, branch="c") is None
        on_a = some(await service.summarize(session, branch="a"))
        assert [e.author for e in fake.requests[-1].events] == ["on-a", "on-a/b"]
        assert (on_a.branch, on_a.through_sequence) == ("a", 4)
        whole = some(await service.summarize(session))
        assert (len(fake.requests[-1].events), whole.through_sequence) == (5, 5)
        assert await stored(service, branch="a") == on_a
        assert await stored(service, branch="c") == whole  # falls back to ""
        assert await stored(service, branch="a/b") == whole
        assert (await reload(service)).summaries == {"": whole, "a": on_a}


@pytest.mark.parametrize("branch", ["a//b", "/a", "a/"])
async def test_empty_branch_segment(make_service: MakeService, branch: str) -> None:
    fake = FakeSummarizer()
    async with make_service(summarizer=fake) as service:
        session = await new_session(service)
        await add(service, session, "user")
        with pytest.raises(InvalidInputError, match="empty segment"):
            await service.summarize(session, branch=branch)
        with pytest.raises(InvalidInputError, match="empty segment"):
            await service.enqueue_summary(session, branch=branch)
        assert fake.calls == 0
        assert service.stats().summary_jobs_queued == 0
        assert (await reload(service)).summaries == {}


async def test_enqueued_job_runs_in_background(make_service: MakeService) -> None:
    fake = FakeSummarizer()
    async with make_service(summarizer=fake, summary_workers=1) as service:
        session = await new_session(service)
        await add(service, session, "user", "assistant")
        fake.block()
        assert await service.enqueue_summary(session) is True
        await wait_for_call(fake, "s")
        assert await stored(service) is None  # in flight: nothing stored yet
        fake.release()
        await settle(service, fake)
        summary = some(await stored(service))
        assert (summary.text, summary.through_sequence) == ("2 event(s): user, assistant", 2)
        assert (await reload(service)).summaries == {"": summary}
        assert service.stats().summary_jobs_queued == 2  # the job and the sentinel


async def test_queued_job_absorbs_duplicates(make_service: MakeService) -> None:
    fake = FakeSummarizer()
    async with make_service(summarizer=fake, summary_workers=1) as service:
        session = await new_session(service, "A")
        await add(service, session, "user", "assistant")
        fake.block()
        assert await service.enqueue_summary(session) is True
        await wait_for_call(fake, "A")
        (new,) = await add(service, session, "tool")
        assert await service.enqueue_summary(session) is True
        assert await service.enqueue_summary(session) is False
        stats = service.stats()
        assert stats.summary_jobs_coalesced == 1
        assert (stats.summary_jobs_queued, stats.summary_queue_depth) == (2, 1)
        fake.release()
        await settle(service, fake)
        _, second = requests_for(fake, "A")
        assert [e.id for e in second.events] == [new.id]
        summary = some(await stored(service, "A"))
        assert summary.text == "2 event(s): user, assistant + 1 event(s): tool"
        assert summary.through_sequence == 3


@pytest.mark.parametrize("policy", ["inline", "reject"])
async def test_full_queue(make_service: MakeService, policy: str) -> None:
    """Queue size 1, one worker: A in flight (blocked), B queued, so C finds it full."""
    fake = FakeSummarizer()
    options = {"summary_queue_size": 1, "summary_workers": 1, "summary_queue_full": policy}
    async with make_service(summarizer=fake, **options) as service:
        a, b, c = [await new_session(service, sid) for sid in "ABC"]
        for session in (a, b, c):
            await add(service, session, "user")
        fake.block(["A"])
        assert await service.enqueue_summary(a) is True
        await wait_for_call(fake, "A")
        assert await service.enqueue_summary(b) is True
        assert service.stats().summary_queue_depth == 1
        if policy == "inline":
            assert await service.enqueue_summary(c) is True
            # Ran in the caller: stored at once.
            assert some(await stored(service, "C")).text == "1 event(s): user"
        else:
            with pytest.raises(SummaryQueueFullError):
                await service.enqueue_summary(c)
            assert await stored(service, "C") is None
        assert await stored(service, "B") is None  # still queued behind A
        stats = service.stats()
        counts = (1, 0) if policy == "inline" else (0, 1)
        assert (stats.summary_jobs_inline, stats.summary_jobs_rejected) == counts
        assert stats.summary_jobs_queued == 2
        calls = fake.calls
        fake.release()
        await wait_for_call(fake, "B", after=calls)  # B left the queue: room for the sentinel
        await settle(service, fake)
        assert some(await stored(service, "A")).text == "1 event(s): user"
        assert some(await stored(service, "B")).text == "1 event(s): user"
        assert len(requests_for(fake, "C")) == counts[0]


async def test_timeout_leaves_stored_summary(make_service: MakeService, clock: ManualClock) -> None:
    fake = FakeSummarizer()
    async with make_service(summarizer=fake, summary_job_timeout=0.05) as service:
        session = await new_session(service)
        await add(service, session, "user")
        first = await service.summarize(session)
        await add(service, session, "assistant")
        clock.advance(seconds=10)
        fake.hang = True
        with anyio.fail_after(5), pytest.raises(TimeoutError):
            await service.summarize(session)
        assert await stored(service) == first
        assert session.summaries == (await reload(service)).summaries == {"": first}
        stats = service.stats()
        assert (stats.summary_jobs_timed_out, stats.summary_jobs_failed) == (1, 0)
        assert stats.summary_jobs_done == 1


async def test_worker_survives_timed_out_job(make_service: MakeService) -> None:
    fake = FakeSummarizer(hang=True)
    options = {"summary_workers": 1, "summary_job_timeout": 0.05}
    async with make_service(summarizer=fake, **options) as service:
        session = await new_session(service)
        await add(service, session, "user", "assistant")
        assert await service.enqueue_summary(session) is True
        await wait_for_call(fake, "s")
        fake.hang = False  # the first call is already hanging
        assert await service.enqueue_summary(session) is True
        await settle(service, fake)
        _, second = requests_for(fake, "s")
        assert second.previous is None and len(second.events) == 2
        assert some(await stored(service)).text == "2 event(s): user, assistant"
        stats = service.stats()  # (the sentinel may be done too)
        assert (stats.summary_jobs_timed_out, stats.summary_jobs_failed) == (1, 0)


async def test_summarizer_error_stores_nothing(make_service: MakeService) -> None:
    fake = FakeSummarizer(error=RuntimeError("boom"))
    async with make_service(summarizer=fake, summary_workers=1) as service:
        session = await new_session(service)
        await add(service, session, "user")
        with pytest.raises(RuntimeError, match="boom"):
            await service.summarize(session)
        assert service.stats().summary_jobs_failed == 1
        assert await stored(service) is None
        assert session.summaries == {} and (await reload(service)).summaries == {}
        # In a worker the error is logged and counted; the worker goes on.
        assert await service.enqueue_summary(session) is True
        await wait_for_call(fake, "s", after=1)
        fake.error = None
        await settle(service, fake)
        assert service.stats().summary_jobs_failed == 2
        assert await stored(service) is None


@pytest.mark.parametrize(("result", "failed", "skipped"), [(123, 1, 0), (None, 0, 1)])
async def test_non_text_result(
    make_service: MakeService, result: object, failed: int, skipped: int
) -> None:
    """Garbage (not str/None) is a failed job; None is "no summary now" (skipped)."""
    fake = FakeSummarizer(result=result)
    async with make_service(summarizer=fake) as service:
        session = await new_session(service)
        await add(service, session, "user")
        if failed:
            with pytest.raises(InvalidInputError):
                await service.summarize(session)
        else:
            assert await service.summarize(session) is None
        assert fake.calls == 1
        stats = service.stats()
        done = (stats.summary_jobs_failed, stats.summary_jobs_skipped, stats.summary_jobs_done)
        assert done == (failed, skipped, 0)
        assert await stored(service) is None
        assert (await reload(service)).summaries == {}


async def test_without_summarizer(make_service: MakeService) -> None:
    async with make_service() as service:
        session = await new_session(service)
        await add(service, session, "user")
        with pytest.raises(InvalidInputError, match="summarizer"):
            await service.summarize(session)
        with pytest.raises(InvalidInputError, match="summarizer"):
            await service.enqueue_summary(session)
        assert await stored(service) is None


# Regression: queued jobs read events through the service's iterator, which used to
# refuse to run once aclose() had started, so the drain silently dropped them.
@pytest.mark.parametrize("async_persist", [False, True])
async def test_aclose_runs_queued_jobs(tmp_path: Path, async_persist: bool) -> None:
    path = tmp_path / "sessions.db"
    fake = FakeSummarizer()
    service = SessionService(path, summarizer=fake, summary_workers=1, async_persist=async_persist)
    async with service:
        a, b = await new_session(service, "A"), await new_session(service, "B")
        await add(service, a, "user")
        await add(service, b, "user", "assistant")
        fake.block()
        assert await service.enqueue_summary(a)
        await wait_for_call(fake, "A")
        assert await service.enqueue_summary(b)
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(service.aclose)
                await anyio.wait_all_tasks_blocked()
                assert service.closed
                with pytest.raises(ServiceClosedError):
                    await service.enqueue_summary(a)
                assert requests_for(fake, "B") == []
                fake.release()
    assert [r.session.id for r in fake.requests] == ["A", "B"]
    async with SessionService(path) as reopened:
        assert some(await stored(reopened, "A")).text == "1 event(s): user"
        assert some(await stored(reopened, "B")).through_sequence == 2


async def test_summary_of_deleted_session(make_service: MakeService) -> None:
    fake = FakeSummarizer()
    async with make_service(summarizer=fake) as service:
        gone = await new_session(service, "gone")
        await add(service, gone, "user")
        assert await service.delete_session(app_name=APP, user_id=USER, session_id="gone")
        assert await service.summarize(gone) is None
        assert fake.calls == 0
        assert await stored(service, "gone") is None
        # Deleted while the summarizer runs: its result is dropped.
        session = await new_session(service)
        await add(service, session, "user")
        results: list[Summary | None] = []

        async def run() -> None:
            results.append(await service.summarize(session))

        fake.block()
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                await wait_for_call(fake, "s")
                assert await service.delete_session(app_name=APP, user_id=USER, session_id="s")
                fake.release()
        assert results == [None]
        assert session.summaries == {}
        stats = service.stats()
        assert (stats.summary_jobs_done, stats.summary_jobs_skipped) == (0, 2)
        await new_session(service)  # the same id again: a fresh session, no summary
        assert await stored(service) is None
        assert (await reload(service)).summaries == {}


async def test_overlapping_jobs_for_one_session_never_go_backwards(
    make_service: MakeService,
) -> None:
    # Race (found by the benchmarks): with two workers, a job for events 1..10 still
    # running while a second job for the same session covers 1..20. If the first
    # finished last, the stored summary went back to 10. Jobs for one session and
    # branch now run one at a time, so the second sees only what the first left.
    fake = FakeSummarizer()
    async with make_service(summarizer=fake, summary_workers=2) as service:
        session = await new_session(service)
        await add(service, session, *["user"] * 10)
        fake.block()
        assert await service.enqueue_summary(session)
        await wait_for_call(fake, "s")
        await add(service, session, *["assistant"] * 10)
        assert await service.enqueue_summary(session)  # a second worker takes it
        await anyio.wait_all_tasks_blocked()
        assert fake.calls == 1  # the second job waits for the first
        fake.release()
        with anyio.fail_after(5):
            while fake.calls < 2:
                fake.entered = CrossLoopEvent()
                await fake.entered.wait()
        # A direct run queues behind the second job (same lock), then finds nothing new.
        assert await service.summarize(session) is None
        first, second = fake.requests
        assert [len(first.events), len(second.events)] == [10, 10]
        assert second.previous is not None
        assert second.previous.through_sequence == 10
        assert some(await stored(service)).through_sequence == 20


async def test_the_store_keeps_the_newer_summary(make_service: MakeService) -> None:
    """Another process may store a newer summary while a slow job runs: the older one
    that finishes last is not written over it (on every backend)."""
    async with make_service() as service:
        session = await new_session(service)
        key = SessionKey(session.app_name, session.user_id, session.id)
        at = datetime(2026, 1, 1, tzinfo=timezone.utc)
        store = service._store
        newer = Summary(branch="", text="newer", through_sequence=20, updated_at=at)
        older = Summary(branch="", text="older", through_sequence=10, updated_at=at)
        assert await store.put_summary(key, newer, now=at)
        assert await store.put_summary(key, older, now=at)
        assert some(await stored(service)).text == "newer"
        again = Summary(branch="", text="again", through_sequence=20, updated_at=at)
        assert await store.put_summary(key, again, now=at)
        assert some(await stored(service)).text == "again"
