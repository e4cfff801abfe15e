"""The benchmark suite: per-message cost of instrumented nats-py against raw nats-py and against
hand-written OpenTelemetry code, all measured in one run, with the project's performance bounds checked.

The cost is the CPU time of the worker process per message (``time.process_time()``: all its
threads, the batch span processor's export included), with wall time beside it. The verdict is on
CPU time: on a busy machine wall time also counts the time other processes hold the CPU, CPU time
does not, so a rerun on a noisy machine gives the same verdict.

    python benchmarks/run.py            # ~5 minutes; starts its own nats-server on a free loopback port
    scripts/bench.sh                    # the same, in .venv (created, and dependencies installed, if missing)
    python benchmarks/run.py --quick    # 5 rounds, a quarter of the messages: a smoke run, too noisy
                                        # for the bounds (PASS/FAIL is only meaningful without it)

Every configuration runs in its own worker process (see ``worker.py``), so each one has clean
process-wide OpenTelemetry state: ``raw`` (nats-py, never instrumented), ``nosdk`` (instrumented,
no tracer or meter provider: the API's no-op), ``uninst`` (instrumented with the SDK, traffic sent,
then ``uninstrument()``) and ``sdk`` (hand-written equivalents and the instrumented paths with an
always-off sampler, with a sampled ``BatchSpanProcessor`` and a discarding exporter, and with a
``MeterProvider``; and a ``ParentBased(TraceIdRatioBased(0.01))`` sampler, reported). The ``raw``
worker also measures the floor of carrying a context: raw publish with a constant ``traceparent``
header (reported). One worker measures at a time; nats-server is pinned to one CPU and the
workers to the others (``--no-pin`` to turn that off).
Each round measures every path once: the paths a bound compares back to back, groups and order
shuffled per round; the first round is a warm-up and is dropped. The reported cost is the median
over the rounds; a bound's ratio is the median of its per-round ratios (of CPU time).

Writes ``benchmarks/results/results.md`` and ``benchmarks/results/paths.png``. Exit status 1 when
a bound fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

OPERATIONS = ("publish", "callback", "request", "js_publish")
OP_TITLES = {
    "publish": "publish",
    "callback": "callback delivery",
    "request": "request/reply",
    "js_publish": "JetStream publish",
}
# Messages per measured block (JetStream publish: a round trip to the store, noisier per message than
# the others, so more of them).
MESSAGES = {"publish": 4000, "callback": 4000, "request": 2000, "js_publish": 3000}

# (column key, title, worker, path template)
COLUMNS = (
    ("raw", "raw nats-py", "raw", "raw.{op}"),
    ("nosdk", "no SDK", "nosdk", "nosdk.{op}"),
    ("uninst", "after uninstrument()", "uninst", "uninst.{op}"),
    ("off.hand", "hand-written, unsampled", "sdk", "off.hand.{op}"),
    ("off.inst", "instrumented, unsampled", "sdk", "off.inst.{op}"),
    ("on.hand", "hand-written, sampled", "sdk", "on.hand.{op}"),
    ("on.inst", "instrumented, sampled", "sdk", "on.inst.{op}"),
)
METRICS_COLUMNS = (
    ("metrics.hand", "hand-written span + metrics", "sdk", "metrics.hand.publish"),
    ("metrics.inst", "instrumented, metrics on", "sdk", "metrics.inst.publish"),
)
# Reported paths: the usual production sampler, and the floor of carrying a context.
RATIO_OPERATIONS = ("publish", "callback")
RATIO_COLUMNS = (
    ("ratio.hand", "hand-written, ParentBased(TraceIdRatioBased(0.01))", "sdk", "ratio.hand.{op}"),
    ("ratio.inst", "instrumented, ParentBased(TraceIdRatioBased(0.01))", "sdk", "ratio.inst.{op}"),
)
FLOOR = "floor.publish"


@dataclass(frozen=True)
class Bound:
    title: str
    path: str
    baseline: str
    limit: float | None  # None: reported only
    binding: bool = True  # a performance bound (decides PASS/FAIL and the exit status); else a reference only


# The performance bounds, as multiples of the baseline: no SDK 1.6 of raw for publish and 1.3 for callback
# delivery (request/reply and JetStream publish: reported); unsampled and sampled 1.0 of hand-written for
# publish and callback delivery, 1.05 for request/reply and JetStream publish; after uninstrument() 1.02 of raw.
NO_SDK_LIMITS = {"publish": 1.6, "callback": 1.3}
HAND_LIMITS = {"publish": 1.0, "callback": 1.0, "request": 1.05, "js_publish": 1.05}
UNINSTRUMENTED_LIMIT = 1.02


def bounds() -> list[Bound]:
    out = []
    for op in OPERATIONS:
        t = OP_TITLES[op]
        nosdk = NO_SDK_LIMITS.get(op)
        out += [
            Bound(f"{t}: no SDK / raw", f"nosdk.{op}", f"raw.{op}", nosdk, nosdk is not None),
            Bound(f"{t}: unsampled / hand-written", f"off.inst.{op}", f"off.hand.{op}", HAND_LIMITS[op]),
            Bound(f"{t}: sampled / hand-written", f"on.inst.{op}", f"on.hand.{op}", HAND_LIMITS[op]),
            Bound(f"{t}: after uninstrument() / raw", f"uninst.{op}", f"raw.{op}", UNINSTRUMENTED_LIMIT),
        ]
        if op in RATIO_OPERATIONS:
            out.append(Bound(f"{t}: ratio 0.01 / hand-written", f"ratio.inst.{op}", f"ratio.hand.{op}", None, False))
    out += [
        Bound("publish: metrics on / hand-written + metrics", "metrics.inst.publish", "metrics.hand.publish", 1.1),
        Bound("publish: constant traceparent header (floor) / raw", FLOOR, "raw.publish", None, False),
        Bound("publish: no SDK / floor", "nosdk.publish", FLOOR, None, False),
    ]
    return out


# --- CPU placement --------------------------------------------------------------------------------

# With two or more CPUs, nats-server gets the last one and the workers the others, so that a worker
# never shares a CPU with the server (otherwise the scheduler's placement differs from process to
# process and biases comparisons between workers). --no-pin turns this off.
SERVER_CPUS: set[int] | None = None
WORKER_CPUS: set[int] | None = None


def plan_cpus(enabled: bool) -> None:
    global SERVER_CPUS, WORKER_CPUS
    cpus = sorted(os.sched_getaffinity(0)) if enabled and hasattr(os, "sched_getaffinity") else []
    if len(cpus) >= 2:
        SERVER_CPUS, WORKER_CPUS = {cpus[-1]}, set(cpus[:-1])


def pin(cpus: set[int] | None) -> Callable[[], None] | None:
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


# "raw" and "after uninstrument()" run identical nats-py code in different processes, and two
# processes differ by a few percent from their memory layout alone; several processes of each
# take turns round by round so that this averages out.
REPLICAS = 3


# --- nats-server ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A throw-away nats-server with JetStream on a free loopback port."""

    def __init__(self) -> None:
        self.binary = os.environ.get("NATS_SERVER_BIN") or shutil.which("nats-server") or "/usr/sbin/nats-server"
        if not Path(self.binary).exists():
            raise SystemExit("nats-server not found: install it (apt-get install nats-server) or set NATS_SERVER_BIN")
        self.workdir = Path(tempfile.mkdtemp(prefix="otel-nats-bench-"))
        self.name = f"otel-bench-{uuid.uuid4().hex[:8]}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> str:
        for _ in range(5):  # another process may take the "free" port first
            self.port = free_port()
            conf = self.workdir / "server.conf"
            conf.write_text(
                f"listen: 127.0.0.1:{self.port}\nserver_name: {self.name}\n"
                f'jetstream {{ store_dir: "{self.workdir / "js"}" }}\n'
            )
            log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 - owned by the process
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(conf)], stdout=log, stderr=log, preexec_fn=pin(SERVER_CPUS)
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                        if f'"server_name":"{self.name}"'.encode() in s.recv(4096):
                            return f"nats://127.0.0.1:{self.port}"
                except OSError:
                    time.sleep(0.05)
            self.stop()
        raise SystemExit(f"nats-server did not start: {(self.workdir / 'server.log').read_text()}")

    def version(self) -> str:
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True, check=False)
        return (out.stdout or out.stderr).strip()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


# --- workers --------------------------------------------------------------------------------------


Sample = tuple[float, float]  # per-message (wall, CPU) seconds
WALL, CPU = 0, 1


class WorkerProcess:
    """A benchmark worker process pinned to the worker CPUs, answering one JSON line per request
    (``benchmarks/scale.py`` uses it too)."""

    def __init__(self, argv: list[str], label: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}  # defaults only
        env["PYTHONHASHSEED"] = "0"
        self.label = label
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=HERE,
            preexec_fn=pin(WORKER_CPUS),
        )

    def _read(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"{self.label} exited with {self.proc.wait()}")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Worker(WorkerProcess):
    def __init__(self, config: str, url: str) -> None:
        super().__init__([str(HERE / "worker.py"), config, url], f"benchmark worker {config!r}")
        self.config = config
        self.paths: list[str] = self._read()["ready"]

    def measure(self, path: str, n: int) -> Sample:
        """Per-message (wall, CPU) seconds of ``n`` messages on ``path``."""
        stdin: IO[str] | None = self.proc.stdin
        assert stdin is not None
        stdin.write(json.dumps({"path": path, "n": n}) + "\n")
        stdin.flush()
        answer = self._read()
        return float(answer["wall"]), float(answer["cpu"])


# After the warm-up round every path gets enough messages for a block of at least this long (a
# short block - raw publish is ~2 µs a message - is easily swamped by a burst from another process).
BLOCK_SECONDS = 0.15


def message_count(path: str, scale: float, warm_cost: float | None = None) -> int:
    """Messages per block: ``MESSAGES`` (scaled), more for fast paths once their cost is known."""
    op = path.rsplit(".", 1)[1]
    base = max(20, int(MESSAGES[op] * scale))
    if warm_cost is None or warm_cost <= 0:
        return base
    return min(base * 25, max(base, int(BLOCK_SECONDS * scale / warm_cost)))


def groups(paths: list[str]) -> list[list[str]]:
    """Paths compared with each other, to be measured back to back (a bound's ratio is taken per round)."""
    out: list[list[str]] = []
    for op in OPERATIONS:
        out.append([f"raw.{op}", f"nosdk.{op}", f"uninst.{op}", *([FLOOR] if op == "publish" else [])])
        out += [[f"{s}.hand.{op}", f"{s}.inst.{op}"] for s in ("off", "on", "ratio")]
    out.append(["metrics.hand.publish", "metrics.inst.publish"])
    out = [[p for p in g if p in paths] for g in out]
    grouped = {p for g in out for p in g}
    out += [[p] for p in paths if p not in grouped]
    return [g for g in out if g]


def run_rounds(workers: dict[str, Worker], rounds: int, scale: float, shuffle: int) -> list[dict[str, Sample]]:
    """Per round, the per-message (wall, CPU) seconds of every path. Each round measures the groups of compared
    paths in a shuffled order, each group's paths back to back (in a shuffled order too)."""
    owners: dict[str, list[str]] = {}
    for name, w in workers.items():
        for path in w.paths:
            owners.setdefault(path, []).append(name)
    order = groups(list(owners))
    rng = random.Random(shuffle)
    out: list[dict[str, Sample]] = []
    warm: dict[str, float] = {}
    for r in range(rounds + 1):
        rng.shuffle(order)
        t0 = time.monotonic()
        measured: dict[str, Sample] = {}
        for group in order:
            for path in rng.sample(group, len(group)):
                n = message_count(path, scale, warm.get(path))
                replicas = owners[path]  # replicated workers take turns, round by round
                measured[path] = workers[replicas[r % len(replicas)]].measure(path, n)
        if r == 0:  # round 0 warms every path up and sizes its blocks (by wall time)
            warm = {p: m[WALL] for p, m in measured.items()}
        else:
            out.append(measured)
        label = "warm-up round" if r == 0 else f"round {r}/{rounds}"
        print(f"  {label} ({time.monotonic() - t0:.1f} s)", file=sys.stderr, flush=True)
    return out


# --- report ---------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "nats-py": version("nats-py"),
        "opentelemetry-api": version("opentelemetry-api"),
        "opentelemetry-sdk": version("opentelemetry-sdk"),
        "opentelemetry-instrumentation": version("opentelemetry-instrumentation"),
        "opentelemetry-instrumentation-nats": version("opentelemetry-instrumentation-nats"),
        "wrapt": version("wrapt"),
        "commit": commit or "unknown",
    }


def fmt_us(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1e6:.2f}"


class Report:
    """Costs are medians over the rounds; a bound's ratio is the median of its per-round ratios of CPU
    time (the two paths measured back to back in each round), with the wall-time ratio beside it."""

    def __init__(self, per_round: list[dict[str, Sample]], info: dict[str, str], rounds: int, scale: float) -> None:
        self.samples = [{p: [r[p][i] for r in per_round] for p in per_round[0]} for i in (WALL, CPU)]
        self.median = [{p: statistics.median(v) for p, v in m.items() if v} for m in self.samples]
        self.info = info
        self.rounds = rounds
        self.scale = scale
        present = [b for b in bounds() if b.path in per_round[0] and b.baseline in per_round[0]]
        self.ratios = [
            {b: sorted(r[b.path][i] / r[b.baseline][i] for r in per_round) for b in present} for i in (WALL, CPU)
        ]
        self.checks = [(b, statistics.median(v)) for b, v in self.ratios[CPU].items()]

    def ratio_spread(self, b: Bound, clock: int = CPU) -> str:
        """The middle half of a bound's per-round ratios."""
        v = self.ratios[clock][b]
        if len(v) < 4:
            return "—"
        q = statistics.quantiles(v, n=4)
        return f"{q[0]:.3f} to {q[2]:.3f}"

    def spread(self, path: str, clock: int = CPU) -> float:
        """Interquartile range relative to the median."""
        v = self.samples[clock][path]
        if len(v) < 4:
            return 0.0
        q = statistics.quantiles(v, n=4)
        return (q[2] - q[0]) / self.median[clock][path]

    @staticmethod
    def verdict(b: Bound, ratio: float) -> str:
        if b.limit is None:
            return "reported"
        if b.binding:
            return "PASS" if ratio <= b.limit else "FAIL"
        return "(within)" if ratio <= b.limit else "(over)"

    @property
    def passed(self) -> bool:
        return all(b.limit is None or ratio <= b.limit for b, ratio in self.checks if b.binding)

    def cost_rows(self, clock: int) -> tuple[list[str], list[list[str]]]:
        head = ["operation", *(title for _, title, _, _ in COLUMNS)]
        rows = []
        for op in OPERATIONS:
            rows.append([OP_TITLES[op], *(fmt_us(self.median[clock].get(t.format(op=op))) for _, _, _, t in COLUMNS)])
        return head, rows

    def extra_rows(self, clock: int) -> tuple[list[str], list[list[str]]]:
        """Metrics on publish, the ratio sampler, and the floor (raw publish with a traceparent header)."""
        med = self.median[clock]
        head = ["path", "hand-written", "instrumented"]
        rows = [["publish, metrics on", *(fmt_us(med.get(p)) for _, _, _, p in METRICS_COLUMNS)]]
        for op in RATIO_OPERATIONS:
            rows.append(
                [
                    f"{OP_TITLES[op]}, ratio sampler 0.01",
                    *(fmt_us(med.get(t.format(op=op))) for _, _, _, t in RATIO_COLUMNS),
                ]
            )
        rows.append(["publish, raw with a constant traceparent header (floor)", fmt_us(med.get(FLOOR)), "—"])
        return head, rows

    def check_rows(self) -> list[list[str]]:
        cpu = self.median[CPU]
        return [
            [
                b.title,
                f"{ratio:.3f}",
                self.ratio_spread(b),
                f"{cpu[b.path] / cpu[b.baseline]:.3f}",
                f"{statistics.median(self.ratios[WALL][b]):.3f}",
                "—" if b.limit is None else f"≤ {b.limit:g}",
                self.verdict(b, ratio),
            ]
            for b, ratio in self.checks
        ]

    CHECK_HEAD = ["bound", "CPU ratio", "middle half", "of medians", "wall ratio", "bound", "result"]

    def text(self) -> str:
        out = []
        for clock, title in ((CPU, "CPU time"), (WALL, "wall time")):
            out += [f"per-message {title} in µs (median of {self.rounds} rounds)", ""]
            head, rows = self.cost_rows(clock)
            out += table_text(head, rows)
            out.append("")
            head, rows = self.extra_rows(clock)
            out += table_text(head, rows)
            out.append("")
        out += table_text(self.CHECK_HEAD, self.check_rows())
        out.append("")
        out.append("ALL BOUNDS PASS" if self.passed else "SOME BOUNDS FAIL")
        out.append("(verdicts on CPU time; reference limits in parentheses; 'reported': no bound)")
        return "\n".join(out)

    def markdown(self, command: str) -> str:
        lines = [
            "# Benchmark results",
            "",
            f"Command: `{command}` — {self.rounds} interleaved rounds (a warm-up round before them is dropped).",
            "Per-message cost is CPU time of the client process (all threads, the batch span processor's",
            "export included), with wall time beside it; the median over the rounds. In every round the",
            "paths a bound compares run back to back (groups and order shuffled per round); a bound's ratio",
            "is the median of its per-round ratios of CPU time (the ratio of the medians and the wall-time",
            "ratio are shown too). Everything is measured in the same run.",
            "",
            "## Machine",
            "",
            "| | |",
            "| --- | --- |",
            *(f"| {k} | {v} |" for k, v in self.info.items()),
            "",
        ]
        for clock, title in ((CPU, "CPU time"), (WALL, "Wall time")):
            head, rows = self.cost_rows(clock)
            ehead, erows = self.extra_rows(clock)
            lines += [
                f"## {title} per message (µs)",
                "",
                *table_markdown(head, rows),
                "",
                *table_markdown(ehead, erows),
                "",
            ]
        lines += [
            "## Bounds",
            "",
            *table_markdown(
                [
                    "check",
                    "CPU ratio",
                    "middle half of the per-round CPU ratios",
                    "ratio of CPU medians",
                    "wall ratio",
                    "bound",
                    "result",
                ],
                self.check_rows(),
            ),
            "",
            f"**{'All bounds pass.' if self.passed else 'Some bounds fail.'}** Verdicts are on CPU",
            "time. Rows without a bound are reported only; a result in parentheses is a reference limit.",
            "",
            "## Spread",
            "",
            "Interquartile range of each path's per-round samples, relative to its median:",
            "",
            *table_markdown(
                ["path", "CPU median (µs)", "CPU IQR / median", "wall median (µs)", "wall IQR / median"],
                [
                    [
                        p,
                        fmt_us(self.median[CPU][p]),
                        f"{self.spread(p, CPU):.1%}",
                        fmt_us(self.median[WALL][p]),
                        f"{self.spread(p, WALL):.1%}",
                    ]
                    for p in sorted(self.median[CPU])
                ],
            ),
            "",
            "## What is measured",
            "",
            f"- Blocks: at least {BLOCK_SECONDS:g} s each (sized from the warm-up round), and at least"
            f" {', '.join(f'{n} ({OP_TITLES[op]})' for op, n in MESSAGES.items())} messages.",
            "- **CPU time**: `time.process_time()` of the worker process over the block (publisher and",
            "  subscriber connections are in the same process; sampled paths flush their span processors",
            "  before the clocks stop, so exporting the block's spans is counted). nats-server is another process.",
            "- **publish**: `await nc.publish(subject, 128 bytes)` in a loop, then one `flush()`.",
            "- **callback delivery**: publish N messages to a subscription with `cb=…` on a second connection;",
            "  the time until the callback has seen all N.",
            "- **request/reply**: sequential `await nc.request(…)` against a responder callback that calls",
            "  `msg.respond(…)`.",
            "- **JetStream publish**: sequential `await js.publish(…)` to a memory-storage stream.",
            "- **raw nats-py**: a process that never instruments (it imports the SDK and the instrumentation and",
            "  sends the same warm-up traffic as the after-uninstrument process, so the two differ only in that).",
            "- **floor**: the raw process publishing with a constant `traceparent` header (one dict reused):",
            "  what carrying a context costs nats-py at least.",
            "- **no SDK**: instrumented, no tracer or meter provider set (the API's no-op).",
            "- **after uninstrument()**: a process that instrumented with the SDK, sent traffic on every path,",
            f"  then called `uninstrument()`. {REPLICAS} processes of it and {REPLICAS} raw ones take turns round by",
            "  round (two processes running identical code differ by a few percent from their memory layout alone).",
            "- **hand-written**: uninstrumented nats-py with the code a careful user would write by hand: the",
            "  same spans (names, kinds, parents, attributes — checked before measuring) with",
            "  `tracer.start_as_current_span(...)`, `propagate.inject` into a fresh headers dict, the nats-py",
            "  call, and for the metrics path the same instruments (operation duration histogram, sent",
            "  messages and sent bytes counters) with the same attributes.",
            "- **unsampled**: SDK `TracerProvider(sampler=ALWAYS_OFF)`; **sampled**: SDK `TracerProvider` with a",
            "  `BatchSpanProcessor` and an exporter that discards; **ratio sampler 0.01**: the same with",
            "  `ParentBased(TraceIdRatioBased(0.01))`; **metrics on**: sampled plus a `MeterProvider` with an",
            "  `InMemoryMetricReader`.",
            "",
        ]
        return "\n".join(lines)


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


def plot(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: list[tuple[str, list[tuple[str, str]]]] = [
        (OP_TITLES[op], [(title, t.format(op=op)) for _, title, _, t in COLUMNS]) for op in OPERATIONS
    ]
    groups.append(("publish, metrics on", [(title, p) for _, title, _, p in METRICS_COLUMNS]))
    groups.append(
        (
            "ratio sampler 0.01; floor",
            [
                *(
                    (f"{title.split(',')[0]}, {op}", t.format(op=op))
                    for op in RATIO_OPERATIONS
                    for _, title, _, t in RATIO_COLUMNS
                ),
                ("raw + traceparent (floor)", FLOOR),
            ],
        )
    )
    colors = {
        "hand-written, publish": "#c6dbef",
        "instrumented, publish": "#08519c",
        "hand-written, callback": "#c6dbef",
        "instrumented, callback": "#08519c",
        "raw + traceparent (floor)": "#4d4d4d",
        "raw nats-py": "#4d4d4d",
        "no SDK": "#9e9e9e",
        "after uninstrument()": "#c7c7c7",
        "hand-written, unsampled": "#9ecae1",
        "instrumented, unsampled": "#3182bd",
        "hand-written, sampled": "#fdae6b",
        "instrumented, sampled": "#e6550d",
        "hand-written span + metrics": "#a1d99b",
        "instrumented, metrics on": "#31a354",
    }
    fig, axes = plt.subplots(1, len(groups), figsize=(20, 5.5))
    for ax, (title, bars) in zip(axes, groups, strict=True):
        bars = [(t, p) for t, p in bars if p in report.median[CPU]]
        values = [report.median[CPU][p] * 1e6 for _, p in bars]
        labels = [t for t, _ in bars]
        ax.bar(range(len(bars)), values, color=[colors[t] for t in labels])
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:.1f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(bars)))
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("CPU µs per message")
        ax.margins(y=0.12)
    info = report.info
    fig.suptitle(
        f"opentelemetry-instrumentation-nats: per-message CPU time (median of {report.rounds} rounds) — "
        f"{info['CPU']}, {info['cores']} cores, {info['Python']}, nats-py {info['nats-py']}, "
        f"OpenTelemetry {info['opentelemetry-sdk']}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=21, help="measured rounds (default 21)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the messages per block")
    parser.add_argument("--quick", action="store_true", help="5 rounds at a quarter of the messages")
    parser.add_argument("--shuffle", type=int, default=1, help="which per-round shuffle (random generator start)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results.md and paths.png go")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write results")
    parser.add_argument("--no-pin", action="store_true", help="do not pin nats-server and the workers to CPUs")
    args = parser.parse_args(argv)
    rounds, scale = (5, 0.25) if args.quick else (args.rounds, args.scale)
    if args.quick:
        print("--quick: a smoke run; too few samples for the bounds to mean much", file=sys.stderr)

    plan_cpus(not args.no_pin)
    server = Server()
    url = server.start()
    info = machine()
    info["nats-server"] = server.version()
    info["CPU placement"] = (
        f"nats-server on CPU {sorted(SERVER_CPUS)}, workers on CPUs {sorted(WORKER_CPUS or ())}"
        if SERVER_CPUS
        else "not pinned"
    )
    print(f"nats-server at {url}; {rounds} rounds", file=sys.stderr)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    workers: dict[str, Worker] = {}
    try:
        for config, replicas in (("raw", REPLICAS), ("nosdk", 1), ("uninst", REPLICAS), ("sdk", 1)):
            for i in range(replicas):
                workers[f"{config}#{i}"] = Worker(config, url)
        per_round = run_rounds(workers, rounds, scale, args.shuffle)
    finally:
        for w in workers.values():
            w.close()
        server.cleanup()
    if load_before is not None:
        info["load average (1 min) before / after"] = f"{load_before:.2f} / {os.getloadavg()[0]:.2f}"

    report = Report(per_round, info, rounds, scale)
    print(report.text())
    if not args.no_write:
        args.out.mkdir(parents=True, exist_ok=True)
        command = "python benchmarks/run.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
        (args.out / "results.md").write_text(report.markdown(command.strip()))
        try:
            plot(report, args.out / "paths.png")
        except ImportError:
            print("matplotlib is not installed: no plot (pip install matplotlib)", file=sys.stderr)
        print(f"wrote {args.out / 'results.md'} and {args.out / 'paths.png'}", file=sys.stderr)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
