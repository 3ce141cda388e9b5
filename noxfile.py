"""Developer sessions: ``nox -s tests lint typecheck docs bench``."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = ["3.11"]


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite with the branch-coverage gate (what CI runs)."""
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "--cov=sessionlite",
        "--cov-branch",
        "--cov-report=term-missing:skip-covered",
        "--cov-fail-under=90",
        *session.posargs,
    )


@nox.session(python=PYTHON)
def reliability(session: nox.Session) -> None:
    """The reliability suite alone, with more SIGKILL cycles than the default run."""
    session.install("-e", ".[test]")
    args = ["pytest", "tests/reliability", "--no-cov", *session.posargs]
    session.run(*args, env={"SESSIONLITE_KILL_CYCLES": "100"})


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.5")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "noxfile.py")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[adk,openai-agents,fastapi]", "mypy>=1.10")
    session.run("mypy")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation site with --strict."""
    session.install("-e", ".", "-r", "docs/requirements.txt")
    session.run("mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Speed targets, as ratios against a baseline measured in the same run.

    ``nox -s bench -- --quick`` for a short run.
    """
    session.install("-e", ".[bench]")
    session.run("python", "-m", "benchmarks", *session.posargs)
