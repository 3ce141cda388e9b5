"""The pytest plugin's fixtures, run by an inner pytest (pytester) in pytest-asyncio's
``auto`` and ``strict`` modes, and the examples of docs/howto/pytest.md with them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
HOWTO = ROOT / "docs" / "howto" / "pytest.md"
MODES = ["auto", "strict"]

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
asyncio_default_test_loop_scope = function
filterwarnings = error
"""

# Marked tests run in both modes (in auto mode the marker is redundant but allowed).
FIXTURE_TESTS = """
from datetime import timedelta

import pytest

from sessionlite import Event, PersistenceError, SessionService
from sessionlite.pytest_plugin import SessionServiceFactory
from sessionlite.testing import FakeSummarizer, ManualClock

seen: list[SessionService] = []


@pytest.mark.asyncio
async def test_a_fresh_open_in_memory_service(session_service: SessionService) -> None:
    assert isinstance(session_service, SessionService)
    assert not session_service.closed
    assert session_service.path == ":memory:"
    session = await session_service.create_session(app_name="a", user_id="u", session_id="s")
    await session_service.append_event(session, Event(author="user", content="hi"))
    seen.append(session_service)


@pytest.mark.asyncio
async def test_each_test_gets_its_own_service(session_service: SessionService) -> None:
    assert seen[0].closed  # closed when the previous test ended
    assert session_service is not seen[0]
    assert await session_service.get_session(app_name="a", user_id="u", session_id="s") is None


def test_fake_summarizer(fake_summarizer: FakeSummarizer) -> None:
    assert isinstance(fake_summarizer, FakeSummarizer)
    assert fake_summarizer.calls == 0


def test_manual_clock(manual_clock: ManualClock) -> None:
    start = manual_clock.now
    assert manual_clock.advance(minutes=5) - start == timedelta(minutes=5)


@pytest.mark.asyncio
async def test_factory_with_options(
    session_service_factory: SessionServiceFactory, manual_clock: ManualClock
) -> None:
    service = await session_service_factory(clock=manual_clock, session_ttl=60)
    session = await service.create_session(app_name="a", user_id="u")
    assert session.created_at == manual_clock.now
    manual_clock.advance(seconds=61)
    assert await service.get_session(app_name="a", user_id="u", session_id=session.id) is None


@pytest.mark.asyncio
async def test_factory_with_a_summarizer(
    session_service_factory: SessionServiceFactory, fake_summarizer: FakeSummarizer
) -> None:
    service = await session_service_factory(summarizer=fake_summarizer)
    session = await service.create_session(app_name="a", user_id="u")
    await service.append_event(session, Event(author="user", content="hi"))
    summary = await service.summarize(session)
    assert summary is not None and summary.text == "1 event(s): user"
    assert fake_summarizer.calls == 1


@pytest.mark.asyncio
async def test_factory_opens_several_and_closes_them_all(
    session_service_factory: SessionServiceFactory, tmp_path
) -> None:
    path = tmp_path / "sessions.db"
    first = await session_service_factory(path, async_persist=True)
    second = await session_service_factory(":memory:")
    assert session_service_factory.services == [first, second]
    session = await first.create_session(app_name="a", user_id="u", session_id="kept")
    await first.append_event(session, Event(author="user", content="queued"))
    seen.extend([first, second])


@pytest.mark.asyncio
async def test_queued_work_was_written_at_teardown(
    session_service_factory: SessionServiceFactory, tmp_path_factory
) -> None:
    first, second = seen[1:3]
    assert first.closed and second.closed
    reopened = await session_service_factory(first.path)
    session = await reopened.get_session(app_name="a", user_id="u", session_id="kept")
    assert session is not None
    assert [e.content for e in session.events] == ["queued"]


@pytest.mark.asyncio
async def test_a_failed_background_write_fails_the_test(
    session_service_factory: SessionServiceFactory,
) -> None:
    service = await session_service_factory(async_persist=True)
    session = await service.create_session(app_name="a", user_id="u")
    await service.delete_session(app_name="a", user_id="u", session_id=session.id)
    # Accepted now; the write fails in the background and aclose() raises at teardown.
    await service.append_event(session, Event(author="user", content="lost"))
"""


def run_inner(pytester: pytest.Pytester, mode: str, *args: str) -> pytest.RunResult:
    pytester.makeini(INI)
    # importlib: the inner test modules must not clash with this suite's in sys.modules.
    return pytester.runpytest(
        "-p", "no:cacheprovider", "--import-mode=importlib", "-o", f"asyncio_mode={mode}", *args
    )


@pytest.mark.parametrize("mode", MODES)
def test_fixtures(pytester: pytest.Pytester, mode: str) -> None:
    pytester.makepyfile(test_fixtures=FIXTURE_TESTS)
    result = run_inner(pytester, mode)
    result.assert_outcomes(passed=9, errors=1)
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_a_failed_background_write_fails_the_test*"]
    )
    result.stdout.re_match_lines([r".*PersistenceError.*"])


def howto_examples() -> dict[str, str]:
    """The test files shown in docs/howto/pytest.md (```py title="test_*.py" blocks)."""
    text = HOWTO.read_text(encoding="utf-8")
    blocks = re.findall(r'^```py title="(test_\w+\.py)"\n(.*?)^```', text, re.S | re.M)
    return dict(blocks)


def test_the_howto_has_examples() -> None:
    assert len(howto_examples()) >= 2


@pytest.mark.parametrize("mode", MODES)
def test_howto_examples(pytester: pytest.Pytester, mode: str) -> None:
    examples = howto_examples()
    for name, code in examples.items():
        pytester.makepyfile(**{name.removesuffix(".py"): code})
    result = run_inner(pytester, mode)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= len(examples), result.stdout.str()
    assert set(outcomes) == {"passed"}, result.stdout.str()


def test_the_plugin_is_registered_by_its_entry_point(pytester: pytest.Pytester) -> None:
    """A fresh pytest process lists the fixtures, with their documentation."""
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--fixtures")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*fixtures defined from sessionlite.pytest_plugin*"])
    for line in (
        "fake_summarizer -- *sessionlite*pytest_plugin.py*",
        "manual_clock -- *",
        "session_service -- *",
        "session_service_factory -- *",
        "*A fresh, open, in-memory service*",
    ):
        result.stdout.fnmatch_lines([line])


def test_the_plugin_loads_without_pytest_asyncio() -> None:
    code = (
        "import sys; sys.modules['pytest_asyncio'] = None\n"
        "import sessionlite.pytest_plugin as plugin\n"
        "assert callable(plugin.manual_clock) and callable(plugin.session_service)\n"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True, timeout=60)


UNCLOSED_SERVICE_TEST = """
from sessionlite import Event, SessionService


async def test_fails_before_closing_its_service(tmp_path) -> None:
    service = SessionService(tmp_path / "db.sqlite", async_persist=True)
    await service.open()
    session = await service.create_session(app_name="a", user_id="u", session_id="s")
    await service.append_event(session, Event(author="user", content="hi"))
    assert False, "the test fails before its finally"
"""


@pytest.mark.timeout(120)
def test_a_failed_test_with_an_unclosed_service_ends_the_run(pytester: pytest.Pytester) -> None:
    # Regression: aiosqlite's non-daemon threads kept the interpreter alive after
    # "1 failed". The inner run is a real process, so a hang fails this test (timeout).
    pytester.makeini(INI.replace("filterwarnings = error", "filterwarnings = default"))
    pytester.makepyfile(test_unclosed=UNCLOSED_SERVICE_TEST)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-o", "asyncio_mode=auto", timeout=100
    )
    result.assert_outcomes(failed=1)
    assert result.ret == 1
