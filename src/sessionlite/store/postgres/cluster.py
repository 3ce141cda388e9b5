"""A throwaway local PostgreSQL cluster (and optionally pgbouncer) for tests and benchmarks.

``initdb`` refuses to run as root, and so does pgbouncer: when this process is root,
the server programs run as the ``postgres`` user (``runuser``), in a directory handed
to that user. Everything lives under one temporary directory, listens on free local
ports, trusts local connections, and is removed by :meth:`LocalCluster.destroy`.

Used by the test suite (``tests/pgtest.py``), the benchmarks and CI; it needs the server
programs (Debian: ``apt-get install postgresql pgbouncer``), found by :func:`find_bindir`.
From a shell (CI starts the suite's server this way and stops it at the end)::

    eval "$(python -m sessionlite.store.postgres.cluster up)"   # exports the URLs
    python -m sessionlite.store.postgres.cluster down "$SESSIONLITE_PG_ROOT"
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["LocalCluster", "find_bindir"]

DATABASE = "sessionlite"


def find_bindir() -> Path | None:
    """The newest installed PostgreSQL server's bin directory (``pg_ctl``, ``initdb``)."""
    configured = os.environ.get("SESSIONLITE_PG_BINDIR")
    candidates = [configured] if configured else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major, reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        if (Path(candidate) / "pg_ctl").exists() and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    return None


def _major(path: str) -> int:
    try:
        return int(Path(path).parent.name)
    except ValueError:
        return 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalCluster:
    """A PostgreSQL server of its own: ``start()``, ``stop()``, ``destroy()``.

    ``fsync=False`` trades crash safety of the throwaway data for speed (tests); the
    benchmarks keep PostgreSQL's defaults.
    """

    def __init__(self, bindir: Path, *, fsync: bool = True, pgbouncer: bool = False) -> None:
        self.bindir = bindir
        self.fsync = fsync
        self.root = Path(tempfile.mkdtemp(prefix="sessionlite-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.bouncer_port = free_port() if pgbouncer else None
        self._bouncer: subprocess.Popen[bytes] | None = None
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self._run(
            self.bindir / "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def bouncer_url(self) -> str:
        if self.bouncer_port is None:
            raise RuntimeError("this cluster was made without pgbouncer")
        return f"postgresql://postgres@127.0.0.1:{self.bouncer_port}/{DATABASE}"

    def _command(self, program: Path | str, *args: str) -> list[str]:
        command = [str(program), *args]
        return ["runuser", "-u", "postgres", "--", *command] if self._as_postgres else command

    def _run(self, program: Path | str, *args: str) -> None:
        result = subprocess.run(
            self._command(program, *args), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{Path(str(program)).name} failed ({result.returncode}): "
                f"{result.stdout}{result.stderr}"
            )

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.root} -c max_connections=300 "
            "-c shared_buffers=128MB"
        )
        if not self.fsync:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            self.bindir / "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        self._ensure_database()
        if self.bouncer_port is not None and self._bouncer is None:
            self._start_bouncer()

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect clients; ``immediate``: like a crash)."""
        self._run(self.bindir / "pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def _ensure_database(self) -> None:
        result = subprocess.run(
            self._command(
                self.bindir / "psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-tAc",
                f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'",
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.stdout.strip() != "1":
            self._run(
                self.bindir / "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                DATABASE,
            )  # fmt: skip

    def _start_bouncer(self) -> None:
        program = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        config = self.root / "pgbouncer.ini"
        (self.root / "userlist.txt").write_text('"postgres" ""\n')
        config.write_text(
            "[databases]\n"
            f"{DATABASE} = host=127.0.0.1 port={self.port} dbname={DATABASE}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.bouncer_port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.root / 'userlist.txt'}\n"
            "pool_mode = transaction\n"
            "max_client_conn = 500\ndefault_pool_size = 20\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"logfile = {self.root / 'pgbouncer.log'}\n"
            f"pidfile = {self.root / 'pgbouncer.pid'}\n"
        )
        for path in (config, self.root / "userlist.txt"):
            if self._as_postgres:
                user = pwd.getpwnam("postgres")
                os.chown(path, user.pw_uid, user.pw_gid)
        self._bouncer = subprocess.Popen(
            self._command(program, str(config)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.bouncer_port or 0), timeout=1),
            ):
                return
            if self._bouncer.poll() is not None:
                break
            time.sleep(0.05)
        log = (
            (self.root / "pgbouncer.log").read_text()
            if (self.root / "pgbouncer.log").exists()
            else ""
        )
        raise RuntimeError(f"pgbouncer did not start: {log}")

    def destroy(self) -> None:
        """Stop everything and remove the cluster's directory."""
        if self._bouncer is not None:
            self._bouncer.terminate()
            try:
                self._bouncer.wait(10)
            except subprocess.TimeoutExpired:
                self._bouncer.kill()
            self._bouncer = None
        destroy_at(self.root, self.bindir)


def destroy_at(root: Path, bindir: Path) -> None:
    """Stop the cluster (and pgbouncer) living in ``root`` and remove it."""
    pidfile = root / "pgbouncer.pid"
    if pidfile.exists():
        with contextlib.suppress(ValueError, OSError):
            os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
    command = [str(bindir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "-w", "stop"]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, capture_output=True, check=False)
    shutil.rmtree(root, ignore_errors=True)


def _main(argv: list[str]) -> int:
    """``up``: start a cluster with pgbouncer, print ``export`` lines; ``down ROOT``."""
    bindir = find_bindir()
    if bindir is None:
        print("no PostgreSQL server programs found (apt-get install postgresql)", file=sys.stderr)
        return 1
    if argv[:1] == ["up"]:
        cluster = LocalCluster(bindir, fsync=False, pgbouncer=shutil.which("pgbouncer") is not None)
        cluster.start()
        exports = {
            "SESSIONLITE_PG_ROOT": str(cluster.root),
            "SESSIONLITE_TEST_POSTGRES_URL": cluster.url,
        }
        if cluster.bouncer_port is not None:
            exports["SESSIONLITE_TEST_PGBOUNCER_URL"] = cluster.bouncer_url
        for name, value in exports.items():
            print(f"export {name}={shlex.quote(value)}")
        return 0
    if argv[:1] == ["down"] and len(argv) == 2:
        destroy_at(Path(argv[1]), bindir)
        return 0
    print("usage: python -m sessionlite.store.postgres.cluster up | down ROOT", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
