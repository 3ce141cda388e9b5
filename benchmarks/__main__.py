"""``python -m benchmarks [--quick] [--json PATH] [--rebuild] [--only NAME ...] [--write-docs]``.

Runs sessionlite's targets, the comparison with peer stores and the ADK runner loop.

Prints a table and a PASS/FAIL line per target. Exits 0 whatever the numbers
(benchmarks are not tests); a crash exits non-zero.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sessionlite

from . import (
    bench_adk_loop,
    bench_append,
    bench_async,
    bench_cache,
    bench_memory,
    bench_peers,
    bench_postgres,
    bench_read,
    bench_summaries,
    report,
)

DOCS_DIR = Path(__file__).resolve().parent.parent / "docs"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="sessionlite speed targets, as ratios against baselines from the same run.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller sizes: a read database of 100k events instead of 1M, 100k events instead "
        "of 1M for the memory target, fewer and smaller peer workloads and ADK turns (whole "
        "run under 2 minutes)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached read databases")
    parser.add_argument(
        "--only",
        choices=BENCHMARKS,
        action="append",
        metavar="NAME",
        help=f"run only this benchmark (repeatable; one of: {', '.join(BENCHMARKS)})",
    )
    parser.add_argument(
        "--tmpdir",
        metavar="DIR",
        help="where the append, async, memory, summaries, peers and adk-loop benchmarks create "
        "fresh databases",
    )
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="write docs/benchmarks.md and docs/img/benchmarks/*.png from this run's results "
        "(needs matplotlib)",
    )
    parser.add_argument(
        "--docs-dir",
        type=Path,
        default=DOCS_DIR,
        metavar="DIR",
        help="the docs directory --write-docs writes into (default: the repository's docs/)",
    )
    return parser


def _git_revision() -> str | None:
    """The checked-out commit, with ``+dirty`` when src/ has uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def _load_average() -> float | None:
    """The 1-minute load average: above the CPU count, other processes skew the numbers."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _environment() -> dict[str, Any]:
    return {
        "sessionlite": sessionlite.__version__,
        "packages": report.package_versions(),
        "cpu_model": _cpu_model(),
        "git": _git_revision(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_1min_at_start": _load_average(),
        "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


# name -> (JSON key, how to run it for the parsed arguments, its report), in run order.
_RUNS: dict[str, tuple[str, Callable[[argparse.Namespace], Any], Callable[[Any], list[str]]]] = {
    "append": (
        "append",
        lambda a: bench_append.run(
            sessions=100, events_per_session=100, repeats=3, tmp_root=a.tmpdir
        ),
        bench_append.report,
    ),
    "read": (
        "read",
        lambda a: bench_read.run(
            small_events=10_000,
            large_events=100_000 if a.quick else 1_000_000,
            reads=1000,
            rebuild=a.rebuild,
            quick=a.quick,
        ),
        bench_read.report,
    ),
    "async": (
        "async_append",
        lambda a: bench_async.run(
            sessions=100, events_per_session=100, repeats=3, tmp_root=a.tmpdir
        ),
        bench_async.report,
    ),
    "memory": (
        "memory",
        lambda a: bench_memory.run(
            events=100_000 if a.quick else 1_000_000,
            sessions=1000,
            tmp_root=a.tmpdir,
            quick=a.quick,
        ),
        bench_memory.report,
    ),
    "cache": (
        "read_cache",
        lambda a: bench_cache.run(
            sessions=1000 if a.quick else 10_000,
            events_per_session=20,
            size=512 * 1024 * 1024,
            tmp_root=a.tmpdir,
        ),
        bench_cache.report,
    ),
    "summaries": (
        "summaries",
        lambda a: bench_summaries.run(sessions=20, events_per_session=400, tmp_root=a.tmpdir),
        bench_summaries.report,
    ),
    "peers": (
        "peers",
        lambda a: bench_peers.run(quick=a.quick, rebuild=a.rebuild, tmp_root=a.tmpdir),
        bench_peers.report,
    ),
    "postgres": (
        "postgres",
        lambda a: bench_postgres.run(quick=a.quick),
        bench_postgres.report,
    ),
    "adk-loop": (
        "adk_loop",
        lambda a: bench_adk_loop.run(quick=a.quick, tmp_root=a.tmpdir),
        bench_adk_loop.report,
    ),
}
BENCHMARKS = tuple(_RUNS)


def _print_header(env: dict[str, Any], mode: str) -> None:
    print(
        f"sessionlite {env['sessionlite']} ({env['git'] or 'no git'}) benchmarks ({mode}) — "
        f"Python {env['python']}, "
        f"SQLite {env['sqlite']}, {env['platform']}, {env['cpus']} CPUs, load average "
        f"{env['load_average_1min_at_start']}",
        flush=True,
    )
    print(
        "  packages: "
        + ", ".join(f"{name} {version}" for name, version in env["packages"].items()),
        flush=True,
    )


def _print_footer(results: dict[str, Any], cpus: int | None) -> None:
    print(
        f"\ntotal {results['total_s']:.1f} s; load average at the end "
        f"{results['load_average_1min_at_end']} ({cpus} CPUs)"
    )
    loads = [
        results["environment"]["load_average_1min_at_start"],
        results["load_average_1min_at_end"],
    ]
    if cpus and any(load is not None and load > cpus for load in loads):
        print(
            f"warning: the load average exceeded the {cpus} CPUs: other processes "
            "competed with this run; its speed ratios are unreliable (rerun on a quiet machine)"
        )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    env = _environment()
    mode = "quick" if args.quick else "full"
    _print_header(env, mode)
    results: dict[str, Any] = {"mode": mode, "environment": env}
    measured: dict[str, Any] = {}  # name -> result object
    started = time.perf_counter()
    for name, (key, run, report_lines) in _RUNS.items():
        if name in (args.only or BENCHMARKS):
            measured[name] = run(args)
            print("\n" + "\n".join(report_lines(measured[name])), flush=True)
            results[key] = measured[name].to_json()
    results["total_s"] = time.perf_counter() - started
    results["load_average_1min_at_end"] = _load_average()
    _print_footer(results, env["cpus"])
    if args.write_docs:
        cli = sys.argv[1:] if argv is None else argv
        written = report.write_docs(
            results=results,
            peers=measured.get("peers"),
            loop=measured.get("adk-loop"),
            command=shlex.join(["python", "-m", "benchmarks", *cli]),
            docs_dir=args.docs_dir,
        )
        for path in written:
            print(f"wrote {path}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
