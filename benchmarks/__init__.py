"""Speed targets for sessionlite, measured as ratios against baselines from the same run.

Run ``python -m benchmarks --help`` (from the repository root) or ``nox -s bench``.
See ``benchmarks/README.md`` for what each benchmark measures.
"""

from __future__ import annotations
