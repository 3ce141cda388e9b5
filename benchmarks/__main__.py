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
from pathlib import Path
from typing import Any

import sessionlite

from . import (
    bench_adk_loop,
    bench_append,
    bench_async,
    bench_memory,
    bench_peers,
    bench_read,
    bench_summaries,
    report,
)

BENCHMARKS = ("append", "read", "async", "memory", "summaries", "peers", "adk-loop")
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    env = _environment()
    mode = "quick" if args.quick else "full"
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
    results: dict[str, Any] = {"mode": mode, "environment": env}
    started = time.perf_counter()
    only = set(args.only or BENCHMARKS)
    if "append" in only:
        append = bench_append.run(
            sessions=100, events_per_session=100, repeats=3, tmp_root=args.tmpdir
        )
        print("\n" + "\n".join(bench_append.report(append)), flush=True)
        results["append"] = append.to_json()
    if "read" in only:
        read = bench_read.run(
            small_events=10_000,
            large_events=100_000 if args.quick else 1_000_000,
            reads=1000,
            rebuild=args.rebuild,
            quick=args.quick,
        )
        print("\n" + "\n".join(bench_read.report(read)), flush=True)
        results["read"] = read.to_json()
    if "async" in only:
        async_append = bench_async.run(
            sessions=100, events_per_session=100, repeats=3, tmp_root=args.tmpdir
        )
        print("\n" + "\n".join(bench_async.report(async_append)), flush=True)
        results["async_append"] = async_append.to_json()
    if "memory" in only:
        memory = bench_memory.run(
            events=100_000 if args.quick else 1_000_000,
            sessions=1000,
            tmp_root=args.tmpdir,
            quick=args.quick,
        )
        print("\n" + "\n".join(bench_memory.report(memory)), flush=True)
        results["memory"] = memory.to_json()
    if "summaries" in only:
        summaries = bench_summaries.run(
            sessions=20,
            events_per_session=400,
            tmp_root=args.tmpdir,
        )
        print("\n" + "\n".join(bench_summaries.report(summaries)), flush=True)
        results["summaries"] = summaries.to_json()
    peers = None
    if "peers" in only:
        peers = bench_peers.run(quick=args.quick, rebuild=args.rebuild, tmp_root=args.tmpdir)
        print("\n" + "\n".join(bench_peers.report(peers)), flush=True)
        results["peers"] = peers.to_json()
    loop = None
    if "adk-loop" in only:
        loop = bench_adk_loop.run(quick=args.quick, tmp_root=args.tmpdir)
        print("\n" + "\n".join(bench_adk_loop.report(loop)), flush=True)
        results["adk_loop"] = loop.to_json()
    results["total_s"] = time.perf_counter() - started
    results["load_average_1min_at_end"] = _load_average()
    print(
        f"\ntotal {results['total_s']:.1f} s; load average at the end "
        f"{results['load_average_1min_at_end']} ({env['cpus']} CPUs)"
    )
    loads = [env["load_average_1min_at_start"], results["load_average_1min_at_end"]]
    if env["cpus"] and any(load is not None and load > env["cpus"] for load in loads):
        print(
            f"warning: the load average exceeded the {env['cpus']} CPUs: other processes "
            "competed with this run; its speed ratios are unreliable (rerun on a quiet machine)"
        )
    if args.write_docs:
        cli = sys.argv[1:] if argv is None else argv
        command = shlex.join(["python", "-m", "benchmarks", *cli])
        written = report.write_docs(
            results=results, peers=peers, loop=loop, command=command, docs_dir=args.docs_dir
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
