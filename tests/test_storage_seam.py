"""The storage seam is real: above it, nothing names a backend.

The facade, the runtime, the workers, hooks, lifecycle and the integrations reach storage
through :class:`sessionlite.store.base.Storage` and the factory only; a backend's own
package is imported by the factory alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "sessionlite"
ABOVE_THE_SEAM = sorted(
    [
        *(SRC / name for name in ("service.py", "runtime.py", "hooks.py", "lifecycle.py")),
        *(SRC / "workers").glob("*.py"),
        *(SRC / "integrations").glob("*.py"),
    ]
)


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, resolved to a dotted name inside sessionlite."""
    package = ["sessionlite", *path.relative_to(SRC).parent.parts]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_the_modules_above_the_seam_exist() -> None:
    assert len(ABOVE_THE_SEAM) >= 10  # the check below would pass vacuously otherwise


@pytest.mark.parametrize("path", ABOVE_THE_SEAM, ids=lambda p: str(p.relative_to(SRC)))
def test_nothing_above_the_seam_imports_a_backend(path: Path) -> None:
    backends = {
        m
        for m in imported_modules(path)
        if m.startswith(("sessionlite.store.sqlite", "sessionlite.store.postgres"))
    }
    assert not backends, f"{path.name} imports {sorted(backends)}"


def test_the_check_sees_backend_imports() -> None:
    factory = imported_modules(SRC / "store" / "factory.py")
    assert "sessionlite.store.sqlite.store" in factory
    assert "sessionlite.store.postgres.store" in factory


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_backends_do_not_import_each_other(backend: str) -> None:
    other = "postgres" if backend == "sqlite" else "sqlite"
    for path in (SRC / "store" / backend).glob("*.py"):
        crossing = {m for m in imported_modules(path) if m.startswith(f"sessionlite.store.{other}")}
        assert not crossing, f"{backend}/{path.name} imports {sorted(crossing)}"


def test_sqlite_services_never_load_the_postgresql_driver(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import asyncio, sys\n"
        "from sessionlite import Event, SessionService\n"
        "async def main(path):\n"
        "    async with SessionService(path) as service:\n"
        "        s = await service.create_session(app_name='a', user_id='u')\n"
        "        await service.append_event(s, Event(author='u', content='x'))\n"
        "asyncio.run(main(sys.argv[1]))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'psycopg_pool')"
        " or m.startswith('sessionlite.store.postgres')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "x.db")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert out.strip() == "[]"
