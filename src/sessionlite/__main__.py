"""Command line: ``python -m sessionlite demo [--db PATH]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import anyio

from .demo import run_demo
from .errors import SessionLiteError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sessionlite", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="play a short scripted agent conversation")
    demo.add_argument(
        "--db",
        default=None,
        help="database file (default: the per-user data dir; ':memory:' for none)",
    )
    args = parser.parse_args(argv)
    try:
        anyio.run(run_demo, args.db, sys.stdout)
    except SessionLiteError as exc:
        print(f"sessionlite: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
