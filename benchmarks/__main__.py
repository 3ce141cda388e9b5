"""``python -m benchmarks [--quick] [--json PATH] [--rebuild]``: run every speed target.

Prints a table and a PASS/FAIL line per target. Exits 0 whatever the numbers
(benchmarks are not tests); a crash exits non-zero.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import sessionlite

from . import bench_append, bench_read


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="sessionlite speed targets, as ratios against baselines from the same run.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="large read database of 100k events instead of 1M (whole run under 2 minutes)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached read databases")
    parser.add_argument(
        "--only", choices=("append", "read"), help="run one benchmark instead of both"
    )
    parser.add_argument(
        "--tmpdir", metavar="DIR", help="where the append benchmark creates fresh databases"
    )
    return parser


def _environment() -> dict[str, Any]:
    return {
        "sessionlite": sessionlite.__version__,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    env = _environment()
    mode = "quick" if args.quick else "full"
    print(
        f"sessionlite {env['sessionlite']} benchmarks ({mode}) — Python {env['python']}, "
        f"SQLite {env['sqlite']}, {env['platform']}, {env['cpus']} CPUs",
        flush=True,
    )
    results: dict[str, Any] = {"mode": mode, "environment": env}
    started = time.perf_counter()
    if args.only in (None, "append"):
        append = bench_append.run(
            sessions=100, events_per_session=100, repeats=3, tmp_root=args.tmpdir
        )
        print("\n" + "\n".join(bench_append.report(append)), flush=True)
        results["append"] = append.to_json()
    if args.only in (None, "read"):
        read = bench_read.run(
            small_events=10_000,
            large_events=100_000 if args.quick else 1_000_000,
            reads=1000,
            rebuild=args.rebuild,
            quick=args.quick,
        )
        print("\n" + "\n".join(bench_read.report(read)), flush=True)
        results["read"] = read.to_json()
    results["total_s"] = time.perf_counter() - started
    print(f"\ntotal {results['total_s']:.1f} s")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
