"""``docs/benchmarks.md`` and its plots, from one run's results (``--write-docs``).

The page is generated: the command, the machine, the library versions, every table,
the ratios against the raw ``sqlite3`` ceiling measured in the same run, the targets with
PASS/FAIL, and PNG plots (matplotlib) under ``docs/img/benchmarks/``. It holds no
```python block (the docs tests run every one).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import bench_adk_loop, bench_peers
from .bench_adk_loop import LABELS, AdkLoopResult
from .bench_peers import RAW, PeersResult, per_param

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
    """A markdown table and the blank line after it."""
    align = align or "l" + "r" * (len(header) - 1)
    marks = {"l": "---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    lines += ["| " + " | ".join(_esc(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


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
_LEGEND_RIGHT: dict[str, Any] = {"fontsize": 8, "loc": "center left", "bbox_to_anchor": (1.0, 0.5)}


def _style(key: str) -> tuple[str, str, str]:
    return _STYLE.get(key, ("black", ".", "-"))


def _bars(ax: Any, groups: int, series: Sequence[tuple[str, str, list[float]]]) -> None:
    """Grouped bars: one bar per (label, color, values) series in each of ``groups``."""
    width = 0.8 / len(series)
    for i, (label, color, values) in enumerate(series):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(groups)]
        ax.bar(xs, values, width, color=color, label=label)


@dataclasses.dataclass(frozen=True)
class _LinePlot:
    """One line per store over a workload's sizes, log-log; with ``mark_failures``, a red
    circle marks a point whose cell had failed calls."""

    workload: str
    value: Callable[[bench_peers.Cell], float | None]
    tick: Callable[[int], str]
    xlabel: str
    ylabel: str
    title: str
    mark_failures: bool

    def __call__(self, plt: Any, peers: PeersResult | None, loop: AdkLoopResult | None) -> Any:
        if peers is None or not peers.params(self.workload):
            return None
        fig, ax = plt.subplots(figsize=(10, 5))
        params = peers.params(self.workload)
        for key in peers.store_keys(self.workload):
            self._line(ax, peers, key, params)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(params, [self.tick(p) for p in params])
        ax.set_xlabel(self.xlabel)
        ax.set_ylabel(self.ylabel)
        ax.set_title(self.title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(**_LEGEND_RIGHT)
        return fig

    def _line(self, ax: Any, peers: PeersResult, key: str, params: list[int]) -> None:
        color, marker, line = _style(key)
        points = [
            (p, value, cell.failing)
            for p in params
            if (cell := peers.cell(self.workload, key, p)) is not None
            and (value := self.value(cell))
        ]
        xs, ys = [p for p, _, _ in points], [v for _, v, _ in points]
        ax.plot(xs, ys, marker=marker, linestyle=line, color=color, label=peers.label(key))
        bad = [(p, v) for p, v, failing in points if failing and self.mark_failures]
        if bad:
            ax.scatter(
                *zip(*bad, strict=True), s=160, facecolors="none", edgecolors="red", zorder=5
            )


def _plot_turns(plt: Any, peers: PeersResult | None, loop: AdkLoopResult | None) -> Any:
    if peers is None or not peers.params("turns"):
        return None
    users = peers.params("turns")
    fig, ax = plt.subplots(figsize=(10, 5))
    series = [
        (peers.label(key), _style(key)[0], [peers.rate("turns", key, u) or 0.0 for u in users])
        for key in peers.store_keys("turns")
    ]
    _bars(ax, len(users), series)
    ax.set_yscale("log")
    ax.set_xticks(range(len(users)), [f"U={u}" for u in users])
    ax.set_ylabel("turns / s (log)")
    ax.set_title("Agent turns: read 20 + 2 appends")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(**_LEGEND_RIGHT)
    return fig


def _plot_list(plt: Any, peers: PeersResult | None, loop: AdkLoopResult | None) -> Any:
    if peers is None or not peers.params("list"):
        return None
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
        color=[_style(c.store)[0] for c in cells],
    )
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("p50 ms (log)")
    ax.set_title(f"List one user's newest 50 sessions among {sessions:,}")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    return fig


def _plot_adk_loop(plt: Any, peers: PeersResult | None, loop: AdkLoopResult | None) -> Any:
    if loop is None or not loop.cells:
        return None
    scenarios = loop.scenarios()
    store_ms = {(c.scenario, c.service): c.store() for c in loop.cells}
    series = [
        (LABELS[service], _style(service)[0], [store_ms.get((s, service), 0.0) for s in scenarios])
        for service in bench_adk_loop.SERVICES
    ]
    fig, ax = plt.subplots(figsize=(8, 5))
    _bars(ax, len(scenarios), series)
    ax.set_xticks(range(len(scenarios)), [s.name for s in scenarios], fontsize=8)
    ax.set_ylabel("ms in the session service per turn (mean)")
    ax.set_title("ADK Runner loop: session-store time per turn")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig


_PLOTS: dict[str, Callable[[Any, PeersResult | None, AdkLoopResult | None], Any]] = {
    "append.png": _LinePlot(
        "append",
        lambda cell: cell.rate,
        str,
        "S = concurrent sessions (one task each)",
        "events / s (log)",
        "Append throughput (red circle: some calls failed)",
        mark_failures=True,
    ),
    "read.png": _LinePlot(
        "read",
        lambda cell: cell.p50_ms,
        "{:,}".format,
        "events in the database (90% in the session read)",
        "p50 ms (log)",
        "Read the newest 20 events of a session",
        mark_failures=False,
    ),
    "turns.png": _plot_turns,
    "list.png": _plot_list,
    "adk_loop.png": _plot_adk_loop,
}


def _plots(peers: PeersResult | None, loop: AdkLoopResult | None, img_dir: Path) -> list[str]:
    """Write the PNGs; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img_dir.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    for name, plot in _PLOTS.items():
        fig = plot(plt, peers, loop)
        if fig is not None:
            fig.tight_layout()
            fig.savefig(img_dir / name, dpi=110)
            plt.close(fig)
            written.append(name)
    return written


# -- the page: the peers ----------------------------------------------------------------------

_MARKS = (
    "In every table, `(0.05x)` is the ratio against the raw `sqlite3` ceiling measured in "
    "the same run (for latencies: raw p50 / store p50, so 1.0 would be as fast as the "
    "ceiling); `*` means the cell's time budget ran out and the number is the rate over the "
    "calls it made; `FAIL(n)` means n calls raised (see [Errors](#5-errors))."
)


def _append_intro(peers: PeersResult) -> str:
    config = peers.config
    repeats = (
        f"; cells faster than {bench_peers.REPEAT_BELOW_S:g} s are run up to "
        f"{config.repeats} times, the best kept"
        if config.repeats > 1
        else ""
    )
    return (
        "S sessions, one task each, all concurrent; each task appends its E events one call "
        f"at a time (E = {per_param(config.append_events, peers.params('append'), 'S')}), "
        f'~{bench_peers.APPEND_CHARS}-character text and a `{{"turn": i}}` state delta. '
        "Events are built before the timer; timed from the first append to the last one "
        "returning (for `async_persist`, to `flush()` returning: every event durable). "
        f"Budget {config.append_cap_s:g} s per cell{repeats}. Events per second:"
    )


def _read_intro(peers: PeersResult) -> str:
    config = peers.config
    return (
        "Databases of each size hold 90% of their events in the session read and the rest "
        "in sessions of 1,000 events (~200-character text), so the session read grows with "
        f"the database. Up to {config.reads} reads per cell, timed one by one, in "
        f"{bench_peers.LATENCY_ROUNDS} rounds that each open the store afresh and warm it "
        f"up, samples pooled (budget {config.read_cap_s:g} s). p50 / p99 in milliseconds:"
    )


def _turns_intro(peers: PeersResult) -> str:
    config = peers.config
    return (
        "U users, each with one session that starts with "
        f"{bench_peers.TURN_HISTORY} events, all concurrent; a turn reads the newest "
        f"{bench_peers.RECENT} events, appends the user's message, then the assistant's "
        "answer with a state delta, to the session object the read returned (turns per "
        f"user: {per_param(config.turns_per_user, peers.params('turns'), 'U')}; budget "
        f"{config.turns_cap_s:g} s per cell). Turns per second:"
    )


def _list_intro(peers: PeersResult) -> str:
    config = peers.config
    return (
        f"{peers.params('list')[-1]:,} sessions, {bench_peers.SESSIONS_PER_USER} per user; "
        f"one user's newest {bench_peers.LIST_PAGE}, without events. ADK's `list_sessions` "
        "has no paging: it returns all 100 of the user's sessions (oldest first), the newest "
        "50 are kept. The OpenAI sessions have no user and no listing call (n/a). Up to "
        f"{config.list_calls} calls in {bench_peers.LATENCY_ROUNDS} rounds as for reads "
        f"(budget {config.list_cap_s:g} s). p50 / p99 in milliseconds:"
    )


def _turn_latencies(peers: PeersResult) -> list[str]:
    users = peers.params("turns")
    rows = []
    for key in peers.store_keys("turns"):
        cells = [peers.cell("turns", key, u) for u in users]
        rows.append(
            [
                peers.label(key),
                *(
                    "-" if c is None or c.p50_ms is None else f"{c.p50_ms:.2f} / {c.p99_ms:.2f}"
                    for c in cells
                ),
            ]
        )
    header = ["store", *(f"U={u:,}" for u in users)]
    return ["Turn latency, p50 / p99 ms:", "", *_table(header, rows)]


# workload: (heading, intro, what follows the table, the plot's alt text)
_SECTIONS: dict[str, tuple[str, Callable[..., str], Callable[..., list[str]], str]] = {
    "append": ("## 1. Append", _append_intro, lambda _: [_MARKS, ""], "Append throughput"),
    "read": ("## 2. Read the newest 20 events", _read_intro, lambda _: [], "Read latency"),
    "turns": ("## 3. Agent turns", _turns_intro, _turn_latencies, "Agent turns"),
    "list": ("## 4. List a user's sessions", _list_intro, lambda _: [], "Listing"),
}


def _workload_section(peers: PeersResult, workload: str, images: set[str]) -> list[str]:
    if not peers.params(workload):
        return []
    heading, intro, after, alt = _SECTIONS[workload]
    out = [heading, "", intro(peers), "", *_table(*bench_peers.grid(peers, workload))]
    out += after(peers)
    if f"{workload}.png" in images:
        out += [f"![{alt}]({IMG_DIR / f'{workload}.png'})", ""]
    return out


def _errors_section(peers: PeersResult) -> list[str]:
    out = ["## 5. Errors", ""]
    failing = peers.failing_cells()
    if failing:
        out += [
            "Every call is wrapped; a call that raises is counted (by exception type and "
            "message) and the workload goes on. Cells with failed calls:",
            "",
        ]
        rows = [
            [
                peers.label(cell.store),
                cell.where,
                f"{cell.failed:,} of {cell.done + cell.failed:,}",
                "; ".join(f"{n:,} x {error}" for error, n in bench_peers.sorted_errors(cell)),
            ]
            for cell in failing
        ]
        out += _table(["store", "workload", "failed calls", "errors"], rows, align="llrl")
    else:
        out += ["No call failed in any workload.", ""]
    notes = peers.notes()
    if notes:
        out += ["Notes from the checks made after each cell:", ""]
        out += [f"- {note}" for note in notes] + [""]
    return out


def _targets_section(peers: PeersResult) -> list[str]:
    targets = peers.targets()
    if not targets:
        return []
    rows = [[t["name"], t["detail"], _verdict(t["passed"])] for t in targets]
    return ["## Targets", "", *_table(["target", "measured", "result"], rows, align="llc")]


def _stores_section(peers: PeersResult) -> list[str]:
    out = [
        "## The stores",
        "",
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
    rows = [[info["label"], info["config"], info["build"]] for info in peers.stores.values()]
    header = ["store", "configuration", "how the read / list / turn databases are filled"]
    out += _table(header, rows, align="lll")
    built = [b for b in peers.builds if b["kind"] in ("read", "list")]
    if built:
        times = ", ".join(
            f"{b['store']} {b['kind']} {b['size']:,}: {b['build_s']:.1f} s" for b in built
        )
        out += [
            "Read and list databases are built once per store and cached "
            "(`benchmarks/.cache/peers/`, sessionlite's shared with the read target); build "
            f"times: {times}.",
            "",
        ]
    return out


def _peers_sections(peers: PeersResult, images: set[str]) -> list[str]:
    out = [*_targets_section(peers), *_stores_section(peers)]
    for workload in bench_peers.WORKLOADS:
        out += _workload_section(peers, workload, images)
    return out + _errors_section(peers)


# -- the page: the ADK loop -------------------------------------------------------------------

_LOOP_INTRO = (
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
    "(so every service's number grows with the users)."
)
_LOOP_HEADER = (
    "service",
    "turns/s",
    "turn ms (mean)",
    "store ms / turn (mean)",
    "store ms p50 / p99",
    "store share of turn",
    "store time vs sessionlite",
    "failed turns",
)


def _loop_row(loop: AdkLoopResult, cell: bench_adk_loop.LoopCell) -> list[str]:
    return [
        LABELS[cell.service],
        f"{cell.turns_per_s:.1f}",
        f"{cell.turn_mean_ms:.2f}",
        f"{cell.store():.2f}",
        f"{cell.store(0.5):.2f} / {cell.store(0.99):.2f}",
        f"{cell.store_share:.0%}",
        f"{loop.vs_sessionlite(cell):.1f}x",
        f"{cell.failed}",
    ]


def _loop_section(loop: AdkLoopResult, images: set[str]) -> list[str]:
    services = "; ".join(
        f"{LABELS[k]} = {bench_adk_loop.CONFIGS[k]}" for k in bench_adk_loop.SERVICES
    )
    out = ["## ADK runner loop", "", _LOOP_INTRO, "", f"Services: {services}.", ""]
    for scenario in loop.scenarios():
        rows = [_loop_row(loop, cell) for cell in loop.cells_of(scenario)]
        out += [f"**{scenario.name}**", "", *_table(_LOOP_HEADER, rows)]
    problems = [f"- {c.where}: {n} x {e}" for c in loop.cells for e, n in c.errors.items()]
    problems += [f"- {c.where}: {note}" for c in loop.cells for note in c.notes]
    if problems:
        out += ["Failed turns and check notes:", "", *problems, ""]
    if "adk_loop.png" in images:
        out += [f"![ADK runner loop]({IMG_DIR / 'adk_loop.png'})", ""]
    return out


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


def _head(results: dict[str, Any], command: str) -> list[str]:
    return [
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


def _machine(results: dict[str, Any]) -> list[str]:
    env = results["environment"]
    loads = [env.get("load_average_1min_at_start"), results.get("load_average_1min_at_end")]
    rows = [
        ["CPUs", str(env.get("cpus"))],
        ["CPU model", str(env.get("cpu_model") or "unknown")],
        ["OS", str(env.get("platform"))],
        ["Python", str(env.get("python"))],
        ["SQLite (library)", str(env.get("sqlite"))],
        ["commit", str(env.get("git") or "unknown")],
        ["date (UTC)", str(env.get("when"))],
        ["1-minute load average, start / end", f"{loads[0]} / {loads[1]}"],
    ]
    out = _table(["machine", ""], rows, align="ll")
    cpus = env.get("cpus") or 0
    if cpus and any(load is not None and load > cpus for load in loads):
        out += [
            '!!! warning "Busy machine"',
            f"    The load average exceeded the {cpus} CPUs during this run: other processes "
            "competed with the benchmarks, and its ratios are less reliable.",
            "",
        ]
    versions = env.get("packages") or package_versions()
    return out + _table(["package", "version"], [[k, v] for k, v in versions.items()], align="ll")


def _own_targets(results: dict[str, Any]) -> list[str]:
    rows = [
        [name, _own_value(key, results[key]), _verdict(results[key].get("passed"))]
        for key, name in _OWN_TARGETS.items()
        if key in results
    ]
    if not rows:
        return []
    return [
        "## sessionlite's own targets (same run)",
        "",
        "The five targets of `benchmarks/README.md`, measured in this run:",
        "",
        *_table(["target", "measured", "result"], rows, align="llc"),
    ]


def _postgres_section(data: dict[str, Any]) -> list[str]:
    """sessionlite and ADK's DatabaseSessionService on one PostgreSQL server."""
    if not data or data.get("skipped"):
        return []

    def rate(seconds: list[float], count: int) -> str:
        return f"{count / min(seconds):,.0f}" if seconds else "n/a"

    def p50(values: list[float]) -> str:
        return f"{sorted(values)[len(values) // 2]:.3f}" if values else "n/a"

    n, turns = data["append_events"], data["turn_users"] * data["turns_per_user"]
    rows = [
        ["durable append (events/s)", rate(data["append_sessionlite_s"], n),
         rate(data["append_adk_s"], n)],
        [f"get_session newest 20, {data['read_small_events']:,} events (p50 ms)",
         p50(data["read_small_ms"]), p50(data["read_adk_small_ms"])],
        [f"get_session newest 20, {data['read_large_events']:,} events (p50 ms)",
         p50(data["read_large_ms"]), ""],
        [f"agent turns, U={data['turn_users']} (turns/s, durable)",
         rate(data["turns_sessionlite_s"], turns), rate(data["turns_adk_s"], turns)],
        ["agent turns (turns/s, async_persist)", rate(data["turns_async_s"], turns), ""],
    ]  # fmt: skip
    targets = [
        [t["name"], "n/a" if t["value"] is None else f"{t['value']:.2f}",
         f"{'>=' if t['at_least'] else '<='} {t['limit']}", _verdict(t["ok"])]
        for t in data["targets"]
    ]  # fmt: skip
    return [
        "## PostgreSQL",
        "",
        f"sessionlite's PostgreSQL backend and ADK's `DatabaseSessionService` "
        f"(`postgresql+asyncpg://`) on the same server (`{data['server']}`, PostgreSQL's "
        "default durability settings), each measurement on a fresh database. Appends: "
        f"{data['append_events']:,} events, one task per session; reads: p50 of one call at a "
        "time; turns: read the newest 20, append the user's message, append the answer "
        "with a state delta. Best of the repeats.",
        "",
        *_table(["workload", "sessionlite", "ADK DatabaseSessionService"], rows, align="lrr"),
        *_table(["target", "measured", "limit", "result"], targets, align="lrrc"),
    ]


def _cache_section(data: dict[str, Any]) -> list[str]:
    """The read cache's memory with many hot sessions."""
    if not data:
        return []
    mb = 1024 * 1024
    rows = [
        ["RSS growth while cached", f"{data['rss_growth_bytes'] / mb:.1f} MB"],
        ["the cache's estimate (the bound applies to it)", f"{data['cache_bytes'] / mb:.1f} MB"],
        ["sessions cached / evicted", f"{data['cache_sessions']:,} / {data['evictions']:,}"],
        ["get_session(20) p50, first read (the file)", f"{data['miss_p50_ms']:.3f} ms"],
        [
            "get_session(20) p50, second read (memory, decodes each event once)",
            f"{data.get('first_hit_p50_ms', 0.0):.3f} ms",
        ],
        ["get_session(20) p50, later reads (memory)", f"{data['hit_p50_ms']:.3f} ms"],
    ]
    if data.get("full_read_ratio") is not None:
        rows.append(
            [
                f"whole {data['full_read_events']}-event session, p50: get_session() / "
                "OpenAI SQLiteSession.get_items()",
                f"{data['full_read_p50_ms']:.3f} / {data['full_read_peer_p50_ms']:.3f} ms "
                f"({data['full_read_ratio']:.2f}x)",
            ]
        )
    return [
        "## Read cache memory",
        "",
        f"{data['sessions']:,} hot sessions of {data['events_per_session']} events "
        "(~200-character contents), each read twice with `get_session(num_recent_events=20)` "
        "in a fresh process, with `read_cache_size` = "
        f"{data['read_cache_size'] / mb:.0f} MiB:",
        "",
        *_table(["measure", "value"], rows, align="lr"),
    ]


_RUNNING = [
    "## Running them yourself",
    "",
    "```console",
    "$ python -m benchmarks --quick                 # every benchmark, small sizes (< 2 min)",
    "$ python -m benchmarks                         # full sizes",
    "$ python -m benchmarks --write-docs             # this page",
    "$ nox -s bench -- --quick",
    "```",
    "",
    "The first full run also builds the 1M-event databases of every store (several "
    "minutes); later runs reuse them.",
    "",
]


def render(
    *,
    results: dict[str, Any],
    peers: PeersResult | None,
    loop: AdkLoopResult | None,
    command: str,
    images: set[str],
) -> str:
    out = _head(results, command) + _machine(results)
    if peers is not None:
        out += _peers_sections(peers, images)
    if loop is not None:
        out += _loop_section(loop, images)
    out += _postgres_section(results.get("postgres", {}))
    out += _cache_section(results.get("read_cache", {}))
    return "\n".join(out + _own_targets(results) + _RUNNING)


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
