"""``docs/benchmarks.md`` and its plots, from one run's results (``--write-docs``).

The page is generated: the command, the machine, the library versions, every table,
the ratios against the raw ``sqlite3`` ceiling measured in the same run, the targets with
PASS/FAIL, and PNG plots (matplotlib) under ``docs/img/benchmarks/``. It holds no
```python block (the docs tests run every one).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import bench_adk_loop, bench_peers
from .bench_adk_loop import AdkLoopResult
from .bench_peers import PARAM_NAMES, RAW, PeersResult

IMG_DIR = Path("img") / "benchmarks"  # relative to the docs directory
PACKAGES = (
    "sessionlite",
    "google-adk",
    "openai-agents",
    "sqlalchemy",
    "aiosqlite",
    "pydantic",
    "google-genai",
    "matplotlib",
)

_OWN_TARGETS = {
    "append": "1. durable append throughput >= 0.35 x raw sqlite3",
    "read": "2. get_session(num_recent_events=20) p50 <= 0.5 ms on 1M events, <= 1.5 x the 10k p50",
    "async_append": "3. async-persist append throughput >= 0.6 x raw sqlite3",
    "memory": "4. peak RSS < 150 MB above the start over 1M async appends",
    "summaries": "5. a slow summarizer does not slow append_event (with / without >= 0.9)",
}


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _esc(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    marks = {"l": "---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    lines += ["| " + " | ".join(_esc(cell) for cell in row) + " |" for row in rows]
    return lines


# -- plots ------------------------------------------------------------------------------------

_STYLE = {
    "sessionlite": ("#1f77b4", "o", "-"),
    "sessionlite-async": ("#17becf", "s", "-"),
    "sessionlite-full": ("#9edae5", "^", "-"),
    "adk-database": ("#d62728", "v", "-"),
    "adk-sqlite": ("#ff7f0e", "<", "-"),
    "openai-sqlite": ("#2ca02c", ">", "-"),
    "openai-async-sqlite": ("#98df8a", "D", "-"),
    RAW: ("#7f7f7f", "x", "--"),
}


def _plots(peers: PeersResult | None, loop: AdkLoopResult | None, img_dir: Path) -> list[str]:
    """Write the PNGs; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img_dir.mkdir(parents=True, exist_ok=True)
    written: list[str] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(img_dir / name, dpi=110)
        plt.close(fig)
        written.append(name)

    if peers is not None and peers.params("append"):
        fig, ax = plt.subplots(figsize=(10, 5))
        for key in peers.store_keys("append"):
            color, marker, line = _STYLE.get(key, ("black", ".", "-"))
            xs, ys, bad = [], [], []
            for s in peers.params("append"):
                cell = peers.cell("append", key, s)
                if cell is not None and cell.rate:
                    xs.append(s)
                    ys.append(cell.rate)
                    if cell.failing:
                        bad.append((s, cell.rate))
            ax.plot(xs, ys, marker=marker, linestyle=line, color=color, label=peers.label(key))
            if bad:
                ax.scatter(
                    *zip(*bad, strict=True), s=160, facecolors="none", edgecolors="red", zorder=5
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(peers.params("append"), [str(s) for s in peers.params("append")])
        ax.set_xlabel("S = concurrent sessions (one task each)")
        ax.set_ylabel("events / s (log)")
        ax.set_title("Append throughput (red circle: some calls failed)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
        save(fig, "append.png")

    if peers is not None and peers.params("read"):
        fig, ax = plt.subplots(figsize=(10, 5))
        sizes = peers.params("read")
        for key in peers.store_keys("read"):
            color, marker, line = _STYLE.get(key, ("black", ".", "-"))
            points = [
                (n, cell.p50_ms)
                for n in sizes
                if (cell := peers.cell("read", key, n)) is not None and cell.p50_ms
            ]
            if points:
                ax.plot(
                    *zip(*points, strict=True),
                    marker=marker,
                    linestyle=line,
                    color=color,
                    label=peers.label(key),
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
        ax.set_xlabel("events in the database (90% in the session read)")
        ax.set_ylabel("p50 ms (log)")
        ax.set_title("Read the newest 20 events of a session")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
        save(fig, "read.png")

    if peers is not None and peers.params("turns"):
        users = peers.params("turns")
        keys = peers.store_keys("turns")
        fig, ax = plt.subplots(figsize=(10, 5))
        width = 0.8 / len(keys)
        for i, key in enumerate(keys):
            color, _, _ = _STYLE.get(key, ("black", ".", "-"))
            values = []
            for u in users:
                cell = peers.cell("turns", key, u)
                values.append(cell.rate if cell is not None and cell.rate else 0.0)
            xs = [j + (i - (len(keys) - 1) / 2) * width for j in range(len(users))]
            ax.bar(xs, values, width, color=color, label=peers.label(key))
        ax.set_yscale("log")
        ax.set_xticks(range(len(users)), [f"U={u}" for u in users])
        ax.set_ylabel("turns / s (log)")
        ax.set_title("Agent turns: read 20 + 2 appends")
        ax.grid(True, axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
        save(fig, "turns.png")

    if peers is not None and peers.params("list"):
        sessions = peers.params("list")[-1]
        cells = [
            cell
            for key in peers.store_keys("list")
            if (cell := peers.cell("list", key, sessions)) is not None and cell.p50_ms
        ]
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.barh(
            [peers.label(c.store) for c in cells],
            [c.p50_ms or 0.0 for c in cells],
            color=[_STYLE.get(c.store, ("black",))[0] for c in cells],
        )
        ax.set_xscale("log")
        ax.invert_yaxis()
        ax.set_xlabel("p50 ms (log)")
        ax.set_title(f"List one user's newest 50 sessions among {sessions:,}")
        ax.grid(True, axis="x", which="both", alpha=0.3)
        save(fig, "list.png")

    if loop is not None and loop.cells:
        scenarios = []
        for cell in loop.cells:
            if cell.scenario not in scenarios:
                scenarios.append(cell.scenario)
        services = bench_adk_loop.SERVICES
        colors = {
            "sessionlite": _STYLE["sessionlite"][0],
            "sessionlite-async": _STYLE["sessionlite-async"][0],
            "adk-database": _STYLE["adk-database"][0],
            "adk-sqlite": _STYLE["adk-sqlite"][0],
        }
        fig, ax = plt.subplots(figsize=(8, 5))
        width = 0.8 / len(services)
        for i, service in enumerate(services):
            values = []
            for scenario in scenarios:
                match = [c for c in loop.cells if c.scenario == scenario and c.service == service]
                values.append(match[0].store() if match else 0.0)
            xs = [j + (i - (len(services) - 1) / 2) * width for j in range(len(scenarios))]
            ax.bar(xs, values, width, color=colors[service], label=bench_adk_loop.LABELS[service])
        ax.set_xticks(range(len(scenarios)), [s.name for s in scenarios], fontsize=8)
        ax.set_ylabel("ms in the session service per turn (mean)")
        ax.set_title("ADK Runner loop: session-store time per turn")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        save(fig, "adk_loop.png")
    return written


# -- the page ---------------------------------------------------------------------------------


def _own_value(key: str, data: dict[str, Any]) -> str:
    """The measured value of one of sessionlite's own targets, from its JSON."""
    try:
        if key in ("append", "async_append"):
            return f"{data['ratio_vs_serialize_executemany']:.3f} x raw (best of {data['repeats']})"
        if key == "read":
            return (
                f"p50 {data['large']['p50_ms']:.3f} ms on {data['large']['total_events']:,} "
                f"events, {data['p50_ratio_large_over_small']:.2f} x the "
                f"{data['small']['total_events']:,}-event p50"
            )
        if key == "memory":
            return f"+{data['peak_minus_start_mb']:.1f} MB over {data['events']:,} events"
        if key == "summaries":
            ratios = data["ratio_with_over_without"]
            return ", ".join(f"{mode} {value:.3f}" for mode, value in ratios.items())
    except (KeyError, TypeError, AttributeError):
        pass
    return ""


def _verdict(passed: bool | None) -> str:
    return {True: "**PASS**", False: "**FAIL**", None: "not measured"}[passed]


def _peer_sections(peers: PeersResult, images: set[str]) -> list[str]:
    config = peers.config
    out: list[str] = []

    def table(workload: str, latency: bool) -> None:
        params = peers.params(workload)
        name = PARAM_NAMES[workload]
        header = ["store", *[f"{name}={p:,}" for p in params]]
        rows = []
        for key in peers.store_keys(workload):
            rows.append(
                [
                    peers.label(key),
                    *[
                        bench_peers.cell_text(peers, peers.cell(workload, key, p), latency=latency)
                        for p in params
                    ],
                ]
            )
        out.extend(_table(header, rows))
        out.append("")

    marks = (
        "In every table, `(0.05x)` is the ratio against the raw `sqlite3` ceiling measured in "
        "the same run (for latencies: raw p50 / store p50, so 1.0 would be as fast as the "
        "ceiling); `*` means the cell's time budget ran out and the number is the rate over the "
        "calls it made; `FAIL(n)` means n calls raised (see [Errors](#5-errors))."
    )

    if peers.params("append"):
        out += [
            "## 1. Append",
            "",
            "S sessions, one task each, all concurrent; each task appends its E events one call "
            "at a time (E = "
            + ", ".join(f"{config.append_events[s]} at S={s}" for s in peers.params("append"))
            + f'), ~{bench_peers.APPEND_CHARS}-character text and a `{{"turn": i}}` state delta. '
            "Events are built before the timer; timed from the first append to the last one "
            "returning (for `async_persist`, to `flush()` returning: every event durable). "
            f"Budget {config.append_cap_s:g} s per cell"
            + (
                f"; cells faster than {bench_peers.REPEAT_BELOW_S:g} s are run up to "
                f"{config.repeats} times, the best kept"
                if config.repeats > 1
                else ""
            )
            + ". Events per second:",
            "",
        ]
        table("append", latency=False)
        out += [marks, ""]
        if "append.png" in images:
            out += [f"![Append throughput]({IMG_DIR / 'append.png'})", ""]

    if peers.params("read"):
        out += [
            "## 2. Read the newest 20 events",
            "",
            "Databases of each size hold 90% of their events in the session read and the rest "
            "in sessions of 1,000 events (~200-character text), so the session read grows with "
            f"the database. Up to {config.reads} reads per cell, timed one by one, in "
            f"{bench_peers.LATENCY_ROUNDS} rounds that each open the store afresh and warm it "
            f"up, samples pooled (budget {config.read_cap_s:g} s). p50 / p99 in milliseconds:",
            "",
        ]
        table("read", latency=True)
        if "read.png" in images:
            out += [f"![Read latency]({IMG_DIR / 'read.png'})", ""]

    if peers.params("turns"):
        out += [
            "## 3. Agent turns",
            "",
            "U users, each with one session that starts with "
            f"{bench_peers.TURN_HISTORY} events, all concurrent; a turn reads the newest "
            f"{bench_peers.RECENT} events, appends the user's message, then the assistant's "
            "answer with a state delta, to the session object the read returned (turns per "
            "user: "
            + ", ".join(f"{config.turns_per_user[u]} at U={u}" for u in peers.params("turns"))
            + f"; budget {config.turns_cap_s:g} s per cell). Turns per second:",
            "",
        ]
        table("turns", latency=False)
        lat_rows = []
        for key in peers.store_keys("turns"):
            row = [peers.label(key)]
            for u in peers.params("turns"):
                cell = peers.cell("turns", key, u)
                row.append(
                    "-"
                    if cell is None or cell.p50_ms is None
                    else f"{cell.p50_ms:.2f} / {cell.p99_ms:.2f}"
                )
            lat_rows.append(row)
        out += ["Turn latency, p50 / p99 ms:", ""]
        out += _table(["store", *[f"U={u:,}" for u in peers.params("turns")]], lat_rows)
        out.append("")
        if "turns.png" in images:
            out += [f"![Agent turns]({IMG_DIR / 'turns.png'})", ""]

    if peers.params("list"):
        sessions = peers.params("list")[-1]
        out += [
            "## 4. List a user's sessions",
            "",
            f"{sessions:,} sessions, {bench_peers.SESSIONS_PER_USER} per user; one user's newest "
            f"{bench_peers.LIST_PAGE}, without events. ADK's `list_sessions` has no paging: it "
            "returns all 100 of the user's sessions (oldest first), the newest 50 are kept. The "
            f"OpenAI sessions have no user and no listing call (n/a). Up to {config.list_calls} "
            f"calls in {bench_peers.LATENCY_ROUNDS} rounds as for reads (budget "
            f"{config.list_cap_s:g} s). p50 / p99 in milliseconds:",
            "",
        ]
        table("list", latency=True)
        if "list.png" in images:
            out += [f"![Listing]({IMG_DIR / 'list.png'})", ""]

    out += ["## 5. Errors", ""]
    failing = [cell for cell in peers.cells if cell.failing]
    if failing:
        out += [
            "Every call is wrapped; a call that raises is counted (by exception type and "
            "message) and the workload goes on. Cells with failed calls:",
            "",
        ]
        rows = []
        for cell in failing:
            errors = "; ".join(
                f"{count:,} x {error}"
                for error, count in sorted(cell.errors.items(), key=lambda kv: -kv[1])
            )
            rows.append(
                [
                    peers.label(cell.store),
                    f"{cell.workload} {PARAM_NAMES[cell.workload]}={cell.param:,}",
                    f"{cell.failed:,} of {cell.done + cell.failed:,}",
                    errors,
                ]
            )
        out += _table(["store", "workload", "failed calls", "errors"], rows, align="llrl")
    else:
        out.append("No call failed in any workload.")
    out.append("")
    notes = [(cell, note) for cell in peers.cells for note in cell.notes if cell.supported]
    if notes:
        out += ["Notes from the checks made after each cell:", ""]
        out += [
            f"- {peers.label(cell.store)}, {cell.workload} "
            f"{PARAM_NAMES[cell.workload]}={cell.param:,}: {note}"
            for cell, note in notes
        ]
        out.append("")
    return out


def _loop_section(loop: AdkLoopResult, images: set[str]) -> list[str]:
    out = [
        "## ADK runner loop",
        "",
        "A real ADK `Runner` with an `LlmAgent` whose model is scripted (a `BaseLlm` subclass, "
        "no network): each turn the model calls a tool that writes session state, then answers. "
        "A turn makes the runner call the session service 5 times (`get_session`, then "
        "`append_event` for the user's message, the function call, the function response with "
        "its state delta, the answer). Every method of the service is wrapped with a timer; "
        "store time is the time spent inside them during the turn. Each service runs on a "
        "fresh file, after two untimed warm-up turns. `whole session` is the runner's default "
        "(`RunConfig()` loads every event of the session each turn); `newest 20 events` uses "
        "`RunConfig(get_session_config=GetSessionConfig(num_recent_events=20))`. With one user "
        "the store time is the store's own; with several concurrent users a call's time also "
        "includes waiting for the event loop, which meanwhile runs the other users' agent code "
        "(so every service's number grows with the users).",
        "",
        "Services: "
        + "; ".join(
            f"{bench_adk_loop.LABELS[k]} = {bench_adk_loop.CONFIGS[k]}"
            for k in bench_adk_loop.SERVICES
        )
        + ".",
        "",
    ]
    scenarios = []
    for cell in loop.cells:
        if cell.scenario not in scenarios:
            scenarios.append(cell.scenario)
    for scenario in scenarios:
        cells = [c for c in loop.cells if c.scenario == scenario]
        base = next((c for c in cells if c.service == "sessionlite"), None)
        rows = []
        for cell in cells:
            ratio = cell.store() / base.store() if base is not None and base.store() else 0.0
            rows.append(
                [
                    bench_adk_loop.LABELS[cell.service],
                    f"{cell.turns_per_s:.1f}",
                    f"{cell.turn_mean_ms:.2f}",
                    f"{cell.store():.2f}",
                    f"{cell.store(0.5):.2f} / {cell.store(0.99):.2f}",
                    f"{cell.store_share:.0%}",
                    f"{ratio:.1f}x",
                    f"{cell.failed}" if cell.failed else "0",
                ]
            )
        out += [f"**{scenario.name}**", ""]
        out += _table(
            [
                "service",
                "turns/s",
                "turn ms (mean)",
                "store ms / turn (mean)",
                "store ms p50 / p99",
                "store share of turn",
                "store time vs sessionlite",
                "failed turns",
            ],
            rows,
        )
        out.append("")
    errors = [
        f"- {bench_adk_loop.LABELS[c.service]}, {c.scenario.name}: {n} x {e}"
        for c in loop.cells
        for e, n in c.errors.items()
    ]
    notes = [
        f"- {bench_adk_loop.LABELS[c.service]}, {c.scenario.name}: {note}"
        for c in loop.cells
        for note in c.notes
    ]
    if errors or notes:
        out += ["Failed turns and check notes:", "", *errors, *notes, ""]
    if "adk_loop.png" in images:
        out += [f"![ADK runner loop]({IMG_DIR / 'adk_loop.png'})", ""]
    return out


def render(
    *,
    results: dict[str, Any],
    peers: PeersResult | None,
    loop: AdkLoopResult | None,
    command: str,
    images: set[str],
) -> str:
    env = results["environment"]
    versions = env.get("packages") or package_versions()
    out = [
        "# Benchmarks",
        "",
        "sessionlite against the session stores its users would otherwise pick — Google ADK's "
        "`DatabaseSessionService` and `SqliteSessionService`, the OpenAI Agents SDK's "
        "`SQLiteSession` and `AsyncSQLiteSession` — and against raw `sqlite3` (the ceiling), "
        "with the same workloads and the same event payloads, in one run on one machine.",
        "",
        '!!! note "Generated page"',
        "    This page is written by the benchmark harness (`--write-docs`); do not edit it by "
        "hand. The numbers are from one machine: compare the ratios, not the absolute values. "
        "See `benchmarks/README.md` for what each benchmark measures.",
        "",
        "## How these numbers were made",
        "",
        "```console",
        f"$ {command}",
        "```",
        "",
        f"Mode: **{results['mode']}**. Total run time {results.get('total_s', 0):.0f} s.",
        "",
    ]
    machine_rows = [
        ["CPUs", str(env.get("cpus"))],
        ["CPU model", str(env.get("cpu_model") or "unknown")],
        ["OS", str(env.get("platform"))],
        ["Python", str(env.get("python"))],
        ["SQLite (library)", str(env.get("sqlite"))],
        ["commit", str(env.get("git") or "unknown")],
        ["date (UTC)", str(env.get("when"))],
        [
            "1-minute load average, start / end",
            f"{env.get('load_average_1min_at_start')} / {results.get('load_average_1min_at_end')}",
        ],
    ]
    out += _table(["machine", ""], machine_rows, align="ll")
    out.append("")
    loads = [env.get("load_average_1min_at_start"), results.get("load_average_1min_at_end")]
    cpus = env.get("cpus") or 0
    if cpus and any(load is not None and load > cpus for load in loads):
        out += [
            '!!! warning "Busy machine"',
            f"    The load average exceeded the {cpus} CPUs during this run: other processes "
            "competed with the benchmarks, and its ratios are less reliable.",
            "",
        ]
    out += _table(["package", "version"], [[k, v] for k, v in versions.items()], align="ll")
    out.append("")

    # Targets
    if peers is not None:
        targets = peers.targets()
        if targets:
            out += ["## Targets", ""]
            out += _table(
                ["target", "measured", "result"],
                [[t["name"], t["detail"], _verdict(t["passed"])] for t in targets],
                align="llc",
            )
            out.append("")

    if peers is not None:
        out += ["## The stores", ""]
        out += [
            "Each store is used through its public API, as its documentation shows, with its "
            "defaults. Every store receives the same events: an author (`user` / `assistant`), a "
            "text, and a state delta, each turned into the store's own event type before the "
            "timer starts (ADK: an `Event` with a one-part `Content` and "
            "`EventActions(state_delta=...)`; OpenAI: a message item "
            '`{"role": ..., "content": text}`; sessionlite: an `Event`). All stores run in one '
            "process, so the libraries of all of them are imported; every timed region starts "
            "with `gc.collect(); gc.freeze()` so that Python's garbage collector does not walk "
            "those ~250k imported objects during the measurement (it would slow every store's "
            "code alike).",
            "",
        ]
        rows = [
            [info["label"], info["config"], info["build"]] for key, info in peers.stores.items()
        ]
        out += _table(
            ["store", "configuration", "how the read / list / turn databases are filled"],
            rows,
            align="lll",
        )
        out.append("")
        built = [b for b in peers.builds if b["kind"] in ("read", "list")]
        if built:
            out += [
                "Read and list databases are built once per store and cached "
                "(`benchmarks/.cache/peers/`, sessionlite's shared with the read target); build "
                "times: "
                + ", ".join(
                    f"{b['store']} {b['kind']} {b['size']:,}: {b['build_s']:.1f} s" for b in built
                )
                + ".",
                "",
            ]
        out += _peer_sections(peers, images)

    if loop is not None:
        out += _loop_section(loop, images)

    own = [(key, results[key]) for key in _OWN_TARGETS if key in results]
    if own:
        out += [
            "## sessionlite's own targets (same run)",
            "",
            "The five targets of `benchmarks/README.md`, measured in this run:",
            "",
        ]
        out += _table(
            ["target", "measured", "result"],
            [
                [_OWN_TARGETS[key], _own_value(key, data), _verdict(data.get("passed"))]
                for key, data in own
            ],
            align="llc",
        )
        out.append("")

    out += [
        "## Running them yourself",
        "",
        "```console",
        "$ python -m benchmarks --quick                 # every benchmark, small sizes (< 2 min)",
        "$ python -m benchmarks                         # full sizes",
        "$ python -m benchmarks --only peers --only adk-loop --write-docs   # this page",
        "$ nox -s bench -- --quick",
        "```",
        "",
        "The first full run also builds the 1M-event databases of every store (several "
        "minutes); later runs reuse them.",
        "",
    ]
    return "\n".join(out)


def write_docs(
    *,
    results: dict[str, Any],
    peers: PeersResult | None,
    loop: AdkLoopResult | None,
    command: str,
    docs_dir: Path,
) -> list[Path]:
    """Write ``docs_dir/benchmarks.md`` and its PNGs; returns the files written."""
    images = set(_plots(peers, loop, docs_dir / IMG_DIR))
    page = docs_dir / "benchmarks.md"
    page.write_text(render(results=results, peers=peers, loop=loop, command=command, images=images))
    return [page, *sorted(docs_dir / IMG_DIR / name for name in images)]
