"""``python -m sessionlite ...``: the ``sessionlite`` command (see :mod:`sessionlite.cli`).

``python -m sessionlite demo [--db PATH]`` plays the scripted demo conversation.
"""

from __future__ import annotations

import sys

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
