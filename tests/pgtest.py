"""PostgreSQL for the test suite: one throwaway cluster per run, one schema per test.

``SESSIONLITE_TEST_POSTGRES_URL`` points the suite at an existing server (a database
the tests may create schemas in). Otherwise the suite starts its own cluster from the
installed server programs (Debian: ``apt-get install postgresql pgbouncer``), with
pgbouncer in transaction mode in front of it. Without either, the PostgreSQL tests
skip locally, but **fail** under CI (``CI`` or ``SESSIONLITE_REQUIRE_POSTGRES`` set):
there they must never silently not run.
"""

from __future__ import annotations

import atexit
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from sessionlite.store.postgres.cluster import LocalCluster, find_bindir


@dataclass
class Server:
    url: str
    bouncer_url: str | None
    cluster: LocalCluster | None


def required() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("SESSIONLITE_REQUIRE_POSTGRES"))


def unavailable(reason: str) -> None:
    message = f"PostgreSQL is not available: {reason}"
    if required():
        pytest.fail(message + " (required under CI: install postgresql and pgbouncer)")
    pytest.skip(message + "; set SESSIONLITE_TEST_POSTGRES_URL or install postgresql")


_server: Server | None = None


def server() -> Server:
    """The run's server, started on first use and removed when the run ends."""
    global _server
    if _server is not None:
        return _server
    url = os.environ.get("SESSIONLITE_TEST_POSTGRES_URL")
    if url:
        _server = Server(url, os.environ.get("SESSIONLITE_TEST_PGBOUNCER_URL"), None)
        return _server
    bindir = find_bindir()
    if bindir is None:
        unavailable("no server programs (pg_ctl, initdb) found")
        raise AssertionError("unreachable")
    cluster = LocalCluster(bindir, fsync=False, pgbouncer=shutil.which("pgbouncer") is not None)
    atexit.register(cluster.destroy)
    cluster.start()
    bouncer = cluster.bouncer_url if cluster.bouncer_port else None
    _server = Server(cluster.url, bouncer, cluster)
    return _server


def unique_prefix() -> str:
    """A table prefix no other test uses (for tests that cannot take a fixture)."""
    return f"p{uuid.uuid4().hex[:12]}_"


def with_schema(url: str, schema: str) -> str:
    """``url`` with every connection's ``search_path`` set to ``schema``."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def postgres_server() -> Server:
    return server()


@pytest.fixture
def postgres_url(postgres_server: Server) -> Iterator[str]:
    """A URL whose connections see only a fresh schema of this test's own."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield with_schema(postgres_server.url, schema)
    finally:
        with psycopg.connect(postgres_server.url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
