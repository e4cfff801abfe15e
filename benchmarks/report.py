"""The suite's report: cost tables, the bounds with their estimates, intervals and verdicts, the
spread of the blocks, and the plot (``run.py`` measures)."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import stats
from protocol import versions

if TYPE_CHECKING:
    from run import Bound, Family, Measurements

WALL, CPU = 0, 1

# (column key, title) of the cost tables; the path of a column is ``{key}.{op}``.
COLUMNS = (
    ("raw", "raw"),
    ("nosdk", "no SDK"),
    ("uninst", "after uninstrument()"),
    ("off.hand", "hand-written, unsampled"),
    ("off.inst", "instrumented, unsampled"),
    ("on.hand", "hand-written, sampled"),
    ("on.inst", "instrumented, sampled"),
)


def machine(here: Path, dists: Sequence[str] = ()) -> dict[str, str]:
    """The machine, the commit, and (for ``scale.py``) this interpreter's and ``dists``' versions."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=here, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    out = {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "OS": f"{platform.system()} {platform.release()}",
        "commit": commit or "unknown",
    }
    if dists:
        out.update(versions(dists))
    return out


def fmt_us(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1e6:.2f}"


def table_text(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    first = line(head)
    return [first, "-" * len(first), *(line(r) for r in rows)]


def table_markdown(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join([" --- "] + [" ---: "] * (len(head) - 1)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def estimate(m: Measurements, b: Bound) -> tuple[stats.Estimate, float] | None:
    """``b``'s CPU-time estimate and its wall-time ratio from what ``m`` holds (``None``: nothing yet)."""
    if b in m.quads:
        return stats.paired([q[0] for q in m.quads[b]]), stats.paired([q[1] for q in m.quads[b]]).ratio
    return None


def undecided(m: Measurements, bounds: Sequence[Bound]) -> list[Bound]:
    """The bounds of the product that ``m`` does not decide yet."""
    out = []
    for b in bounds:
        found = estimate(m, b) if b.binding and b.limit is not None else None
        if found is not None and stats.verdict(found[0], b.limit) == stats.UNDECIDED:
            out.append(b)
    return out


class Report:
    """Costs are medians over the blocks; a bound's ratio is an estimate with a 95 % interval (``stats``)."""

    def __init__(
        self,
        m: Measurements,
        bounds: Sequence[Bound],
        families: Sequence[Family],
        info: dict[str, str],
        family_info: dict[str, dict[str, str]],
        notes: dict[str, list[str]],
        *,
        rounds: int,
        extension: str,
        block_seconds: float,
    ) -> None:
        self.m = m
        self.families = families
        self.info = info
        self.family_info = family_info
        self.notes = notes
        self.rounds = rounds
        self.extension = extension
        self.block_seconds = block_seconds
        self.median = [{k: statistics.median(s[i] for s in v) for k, v in m.blocks.items()} for i in (WALL, CPU)]
        self.checks: list[tuple[Bound, stats.Estimate, float, str]] = []
        for b in bounds:
            found = estimate(m, b)
            if found is not None:
                self.checks.append((b, *found, stats.verdict(found[0], b.limit)))

    @property
    def passed(self) -> bool:
        return all(v == stats.PASS for b, _, _, v in self.checks if b.binding and b.limit is not None)

    def binding_verdicts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for b, _, _, v in self.checks:
            if b.binding and b.limit is not None:
                out[v] = out.get(v, 0) + 1
        return out

    def summary(self) -> str:
        counts = self.binding_verdicts()
        parts = ", ".join(f"{counts[v]} {v}" for v in (stats.PASS, stats.UNDECIDED, stats.FAIL) if counts.get(v))
        if self.passed:
            return f"ALL BOUNDS PASS ({parts})"
        return f"NOT ALL BOUNDS PASS ({parts})"

    # --- tables -----------------------------------------------------------------------------------

    def cost_rows(self, family: Family, clock: int) -> tuple[list[str], list[list[str]]]:
        med = self.median[clock]
        head = ["operation", *(f"raw {family.name}" if k == "raw" else t for k, t in COLUMNS)]
        rows = [
            [family.titles[op], *(fmt_us(med.get((family.name, f"{k}.{op}"))) for k, _ in COLUMNS)]
            for op in family.operations
        ]
        return head, rows

    def extra_rows(self, family: Family, clock: int) -> tuple[list[str], list[list[str]]]:
        """Metrics on publish, the ratio sampler, the floor, and the no-SDK worker's plain blocks."""
        med = self.median[clock]

        def cost(path: str) -> str:
            return fmt_us(med.get((family.name, path)))

        head = ["path", "baseline", "instrumented"]
        rows = [
            [
                "publish, metrics on (baseline: hand-written span + metrics)",
                cost("metrics.hand.publish"),
                cost("metrics.inst.publish"),
            ]
        ]
        for op in family.ratio_operations:
            rows.append(
                [
                    f"{family.titles[op]}, ratio sampler 0.01 (baseline: hand-written)",
                    cost(f"ratio.hand.{op}"),
                    cost(f"ratio.inst.{op}"),
                ]
            )
        rows.append(
            [
                "publish with a constant traceparent header (floor; baseline: raw)",
                cost("raw.publish"),
                cost("floor.publish"),
            ]
        )
        for op in family.operations:
            rows.append(
                [
                    f"{family.titles[op]}, no SDK (baseline: plain blocks of the same process)",
                    cost(f"base.{op}"),
                    cost(f"nosdk.{op}"),
                ]
            )
        return head, rows

    CHECK_HEAD = ["bound", "CPU ratio", "95 % interval", "pairs", "wall ratio", "limit", "result"]

    def check_rows(self, family: Family) -> list[list[str]]:
        rows = []
        for b, est, wall, verdict in self.checks:
            if b.family != family.name:
                continue
            shown = verdict if b.binding or b.limit is None else f"({verdict})"
            rows.append(
                [
                    b.title,
                    f"{est.ratio:.3f}",
                    est.interval(),
                    str(est.n),
                    f"{wall:.3f}",
                    "—" if b.limit is None else f"≤ {b.limit:g}",
                    shown,
                ]
            )
        return rows

    def spread_rows(self, family: Family) -> list[list[str]]:
        rows = []
        for (f, path), samples in sorted(self.m.blocks.items()):
            if f != family.name or len(samples) < 4:
                continue
            out = [path]
            for clock in (CPU, WALL):
                v = [s[clock] for s in samples]
                q = statistics.quantiles(v, n=4)
                med = statistics.median(v)
                out += [fmt_us(med), f"{(q[2] - q[0]) / med:.1%}"]
            rows.append(out)
        return rows

    # --- output -----------------------------------------------------------------------------------

    def text(self) -> str:
        out = []
        for family in self.families:
            out += [f"== {family.name} ==", *(f"note: {n}" for n in self.notes.get(family.name, ())), ""]
            for clock, title in ((CPU, "CPU time"), (WALL, "wall time")):
                out += [f"per-message {title} in µs (median of the blocks)", ""]
                out += table_text(*self.cost_rows(family, clock))
                out.append("")
            out += table_text(*self.extra_rows(family, CPU))
            out.append("")
            rows = self.check_rows(family)
            if rows:
                out += [*table_text(self.CHECK_HEAD, rows), ""]
        for name, notes in self.notes.items():
            if name not in {f.name for f in self.families}:
                out += [f"== {name} ==", *(f"note: {n}" for n in notes), ""]
        out.append(f"second stage: {self.extension}")
        out.append(self.summary())
        out.append("(CPU-time verdicts: PASS when the whole 95 % interval is within the limit, FAIL when it is all")
        out.append(" above, UNDECIDED when the limit lies inside it; 'reported': no limit)")
        return "\n".join(out)

    def markdown(self, command: str) -> str:
        lines = [
            "# Benchmark results",
            "",
            f"Command: `{command}` — {self.rounds} rounds after a warm-up round (dropped); each round runs one quad"
            " of every bound, four of a quarter of the messages each of the after-`uninstrument()` ones.",
            f"Second stage (more rounds for the bounds the first stage left undecided): {self.extension}.",
            "Per-message cost is CPU time of the client process (all threads, the batch span processor's export",
            "included), with wall time beside it: the median over the blocks. Every bound compares two paths in one",
            "process, measured as quads of blocks A B B A (or B A A B); its ratio is the Hodges-Lehmann estimate of",
            "the per-quad log ratios with a 95 % Wilcoxon interval. After `uninstrument()`: clients that were",
            "connected, subscribed and used while instrumented, then uninstrumented, against clients of the same",
            "process that were never used while instrumented. **A bound passes when its whole interval is within",
            "the limit**, fails when the whole interval is above it, and is undecided otherwise. `benchmarks/run.py`",
            "says why.",
            "",
            "## Machine",
            "",
            "| | |",
            "| --- | --- |",
            *(f"| {k} | {v} |" for k, v in self.info.items()),
            "",
        ]
        for family in self.families:
            lines += [f"## {family.name}", ""]
            lines += [f"{n}" for n in self.notes.get(family.name, ())]
            if self.notes.get(family.name):
                lines.append("")
            lines += [
                "| | |",
                "| --- | --- |",
                *(f"| {k} | {v} |" for k, v in self.family_info[family.name].items()),
                "",
            ]
            for clock, title in ((CPU, "CPU time"), (WALL, "Wall time")):
                lines += [f"### {title} per message (µs)", "", *table_markdown(*self.cost_rows(family, clock)), ""]
                lines += [*table_markdown(*self.extra_rows(family, clock)), ""]
            lines += ["### Bounds", "", *table_markdown(self.CHECK_HEAD, self.check_rows(family)), ""]
            lines += [
                "### Spread",
                "",
                "Interquartile range of each path's blocks, relative to its median:",
                "",
                *table_markdown(
                    ["path", "CPU median (µs)", "CPU IQR / median", "wall median (µs)", "wall IQR / median"],
                    self.spread_rows(family),
                ),
                "",
            ]
        for name, notes in self.notes.items():
            if name not in {f.name for f in self.families}:
                lines += [f"## {name}", "", *notes, ""]
        lines += [
            f"**{self.summary()}.** Verdicts are on CPU time. Rows without a limit are reported only; a result in",
            "parentheses is a reference limit.",
            "",
            "## What is measured",
            "",
            f"- Blocks: a baseline's at least {self.block_seconds:g} s each (sized from the warm-up round), and at"
            " least the per-family message counts of `run.py`; both paths of a bound run as many messages.",
            "- **CPU time**: `time.process_time()` of the worker process over the block (publisher and",
            "  subscriber connections are in the same process; sampled paths flush their span processors",
            "  before the clocks stop, so exporting the block's spans is counted). nats-server is another process.",
            "- **publish**: `await nc.publish(subject, 128 bytes)` in a loop, then one `flush()`.",
            "- **callback delivery**: publish N messages to a subscription with a callback on a second connection",
            "  (nats-py: `subscribe(cb=…)`, async; nats-core: `sub.add_callback(cb)`, synchronous); the time until",
            "  the callback has seen all N.",
            "- **iterator receive** (nats-core): the same with a task that reads the subscription with `async for`.",
            "- **request/reply**: sequential `await nc.request(…)` against a responder on the second connection",
            "  (nats-py: a callback calling `msg.respond(…)`; nats-core: a task reading the subscription with",
            "  `async for` and publishing to `msg.reply`).",
            "- Subscriptions and responders: made for each block (on a subject of its own), except in the unit",
            "  process (raw and after `uninstrument()`), whose client sets make theirs once, at its start.",
            "- **JetStream publish**: sequential `await js.publish(…)` to a memory-storage stream.",
            "- **raw**: the unit process's raw clients, never used while instrumented; **floor**: raw publish",
            "  with a constant `traceparent` header (one dict reused), on the same clients.",
            "- **no SDK**: `instrument()` with no tracer or meter provider (the API's no-op) before the block,",
            "  `uninstrument()` after it; its baseline is the plain blocks of the same process.",
            "- **after uninstrument()**: the unit process's switched clients: at its start it instrumented with",
            "  the SDK, connected them and made their subscriptions and responders, sent traffic on every path",
            "  through them and called `uninstrument()`; its raw clients got the same traffic uninstrumented.",
            "  Its baseline is raw, measured in the same process.",
            "- **hand-written**: the uninstrumented client with the code a careful user would write by hand: the",
            "  same spans (names, kinds, parents, links, attributes — checked before measuring) with",
            "  `tracer.start_as_current_span(...)`, `propagate.inject` into a fresh headers dict, the client",
            "  call, and for the metrics path the same instruments with the same attributes.",
            "- **unsampled**: SDK `TracerProvider(sampler=ALWAYS_OFF)`; **sampled**: SDK `TracerProvider` with a",
            "  `BatchSpanProcessor` and an exporter that discards; **ratio sampler 0.01**: the same with",
            "  `ParentBased(TraceIdRatioBased(0.01))`; **metrics on**: sampled plus a `MeterProvider` with an",
            "  `InMemoryMetricReader`.",
            "",
        ]
        return "\n".join(lines)


def plot(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = ["#4d4d4d", "#9e9e9e", "#c7c7c7", "#9ecae1", "#3182bd", "#fdae6b", "#e6550d"]
    families = report.families
    width = max(len(f.operations) for f in families) + 1
    fig, axes = plt.subplots(len(families), width, figsize=(4 * width, 5.2 * len(families)), squeeze=False)
    med = report.median[CPU]
    for row, family in zip(axes, families, strict=True):
        groups: list[tuple[str, list[tuple[str, str, str]]]] = [
            (family.titles[op], [(t, f"{k}.{op}", c) for (k, t), c in zip(COLUMNS, colors, strict=True)])
            for op in family.operations
        ]
        groups.append(
            (
                "metrics on; floor",
                [
                    ("hand-written span + metrics", "metrics.hand.publish", "#a1d99b"),
                    ("instrumented, metrics on", "metrics.inst.publish", "#31a354"),
                    ("raw publish", "raw.publish", "#4d4d4d"),
                    ("raw + traceparent (floor)", "floor.publish", "#969696"),
                ],
            )
        )
        for ax in row[len(groups) :]:
            ax.axis("off")
        for ax, (title, bars) in zip(row, groups, strict=False):
            bars = [b for b in bars if (family.name, b[1]) in med]
            if not bars:
                ax.set_title(f"{family.name}: {title}", fontsize=10)
                ax.text(0.5, 0.5, "not measured\n(see the notes)", ha="center", va="center", transform=ax.transAxes)
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            values = [med[(family.name, p)] * 1e6 for _, p, _ in bars]
            ax.bar(range(len(bars)), values, color=[c for _, _, c in bars])
            for i, v in enumerate(values):
                ax.text(i, v, f"{v:.1f}", ha="center", va="bottom", fontsize=7)
            ax.set_xticks(range(len(bars)))
            ax.set_xticklabels([t for t, _, _ in bars], rotation=60, ha="right", fontsize=8)
            ax.set_title(f"{family.name}: {title}", fontsize=10)
            ax.set_ylabel("CPU µs per message")
            ax.margins(y=0.12)
    info = report.info
    first = report.family_info.get(families[0].name, {})
    fig.suptitle(
        f"opentelemetry-instrumentation-nats: per-message CPU time (median of the blocks, {report.rounds} rounds) — "
        f"{info['CPU']}, {info['cores']} cores, OpenTelemetry {first.get('opentelemetry-sdk', '?')}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
