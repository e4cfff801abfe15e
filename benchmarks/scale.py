"""Per-message cost on 100 000 distinct subjects against one subject (bound: at most 1.15 times).

    python benchmarks/scale.py            # a few minutes; starts its own nats-server on a free loopback port
    scripts/bench.sh scale                # the same, in .venv (created, and dependencies installed, if missing)
    python benchmarks/scale.py --quick    # a smoke run: too few samples for the bound to mean much

Each configuration runs in a worker process of its own, instrumented once for the worker's life, so
that caches, the set of named destinations and the metric series are in the steady state of a
long-running service: ``raw`` (never instrumented: what distinct subjects cost nats-py itself, for
reference), ``nosdk`` (no tracer or meter provider), ``unsampled`` (always-off sampler), ``sampled``
(a ``BatchSpanProcessor`` with an exporter that discards), ``metrics`` (sampled plus a
``MeterProvider``) and ``templated`` (``metrics`` with a ``subject_templates`` pattern that covers the
distinct subjects). Each measures publish, and callback delivery (publish → the callback of a
wildcard subscription), on one subject and on distinct subjects taken in turn from 100 000 — more
than the per-connection cache holds, so every message on a distinct subject is a cache miss, and
all but the first ``max_destinations`` of them are past the limit of named destinations.

The method is the suite's (``run.py``): per round every (configuration, operation) pair measures a
block on one subject and a block of as many messages on distinct subjects back to back, in a
shuffled order; the first round is a warm-up and is dropped. Per block: wall time and CPU time of
the worker process (``time.process_time``: all its threads, the batch processor's export included,
up to a ``force_flush`` of the block's spans). A pair's ratio is the median of its per-round ratios
of CPU time (the bound), wall time beside it.

Writes ``benchmarks/results/scale.md``. Exit status 1 when a bound fails.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import IO, Any

import report as rep
import run as suite
from worker import DISTS

HERE = Path(__file__).resolve().parent
DISTINCT = 100_000
LIMIT = 1.15
PAYLOAD = b"x" * 128
CONFIGS = ("raw", "nosdk", "unsampled", "sampled", "metrics", "templated")
OPERATIONS = ("publish", "callback")
MESSAGES = {"publish": 4000, "callback": 2000}  # per block (at least)
BLOCK_SECONDS = 0.15  # after the warm-up round, blocks are sized to last at least this long


# --- worker ---------------------------------------------------------------------------------------


class ScaleWorker:
    """One configuration: a publisher and a subscriber connection, instrumented (or not) once."""

    def __init__(self, config: str) -> None:
        self.config = config
        self.prefix = f"scale.{config}.{os.getpid()}"
        self.flush = lambda: None
        self.reader: Any = None
        self.seen = 0
        self.target = 0
        self.done = asyncio.Event()
        self.next = {op: 0 for op in OPERATIONS}

    def instrument(self) -> None:
        if self.config == "raw":
            return
        from common import DiscardExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

        from opentelemetry.instrumentation.nats import NatsInstrumentor

        options: dict[str, Any] = {}
        if self.config == "unsampled":
            options["tracer_provider"] = TracerProvider(sampler=ALWAYS_OFF)
        elif self.config != "nosdk":
            tp = TracerProvider()
            tp.add_span_processor(BatchSpanProcessor(DiscardExporter()))
            options["tracer_provider"] = tp
            self.flush = tp.force_flush
        if self.config in ("metrics", "templated"):
            self.reader = InMemoryMetricReader()
            options["meter_provider"] = MeterProvider(metric_readers=[self.reader])
        if self.config == "templated":
            options["subject_templates"] = [f"{self.prefix}.*.*"]
        NatsInstrumentor().instrument(**options)

    async def connect(self, url: str) -> None:
        import nats

        self.nc = await nats.connect(url)
        self.sc = await nats.connect(url)

        async def counted(msg: Any) -> None:
            self.seen += 1
            if self.seen == self.target:
                self.done.set()

        await self.sc.subscribe(f"{self.prefix}.cb.*", cb=counted)
        await self.sc.flush()
        # The one subject of each operation is the first one sent to, as a service's hot subjects
        # are: it is named and cached before the distinct subjects reach max_destinations. (Left to
        # the rounds' random order, it was sometimes past the limit itself, and then the comparison
        # was between two uncached paths: it hid that distinct subjects cost 1.51 x one subject per
        # unsampled publish.)
        for op in OPERATIONS:
            await self.nc.publish(self.subjects(op, "single", 1)[0], PAYLOAD)
        await self.nc.flush()
        await self.sc.flush()
        await asyncio.sleep(0.1)  # (its delivery counted before the first block resets the count)

    def subjects(self, op: str, path: str, n: int) -> list[str]:
        """``n`` subjects: one, or the next ``n`` of the ``DISTINCT`` distinct ones (in turn)."""
        kind = "pub" if op == "publish" else "cb"
        if path == "single":
            return [f"{self.prefix}.{kind}.one"] * n
        start = self.next[op]
        self.next[op] = (start + n) % DISTINCT
        return [f"{self.prefix}.{kind}.{(start + i) % DISTINCT}" for i in range(n)]

    async def measure(self, op: str, path: str, n: int) -> tuple[float, float]:
        """Per-message wall and CPU seconds of ``n`` messages."""
        subjects = self.subjects(op, path, n)
        publish = self.nc.publish
        if op == "callback":
            self.seen, self.target = 0, n
            self.done.clear()
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        for subject in subjects:
            await publish(subject, PAYLOAD)
        await self.nc.flush()
        if op == "callback":
            await asyncio.wait_for(self.done.wait(), 60)
        self.flush()
        return (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n

    def series(self) -> dict[str, int]:
        """Series per metric stream so far (metrics configurations)."""
        if self.reader is None:
            return {}
        data = self.reader.get_metrics_data()
        return {
            m.name: len(m.data.data_points)
            for rm in (data.resource_metrics if data else [])
            for sm in rm.scope_metrics
            for m in sm.metrics
        }


async def worker_main(config: str, url: str) -> None:
    worker = ScaleWorker(config)
    worker.instrument()
    await worker.connect(url)
    loop = asyncio.get_running_loop()
    print(json.dumps({"ready": config}), flush=True)
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line.strip():
            break
        cmd = json.loads(line)
        if cmd.get("series"):
            print(json.dumps({"series": worker.series()}), flush=True)
            continue
        wall, cpu = await worker.measure(cmd["op"], cmd["path"], cmd["n"])
        print(json.dumps({"wall": wall, "cpu": cpu}), flush=True)
    await worker.nc.close()
    await worker.sc.close()


# --- orchestrator ---------------------------------------------------------------------------------


class Worker(suite.WorkerProcess):
    def __init__(self, config: str, url: str) -> None:
        super().__init__([str(Path(__file__).resolve()), "--worker", config, url], "scale worker")
        self.ask(None)

    def ask(self, cmd: dict[str, Any] | None) -> Any:
        stdin: IO[str] | None = self.proc.stdin
        assert stdin is not None
        if cmd is not None:
            stdin.write(json.dumps(cmd) + "\n")
            stdin.flush()
        return self._read()


Sample = dict[tuple[str, str, str], tuple[float, float]]  # (config, op, path) → (wall, cpu) per message


def run_rounds(workers: dict[str, Worker], rounds: int, scale: float, shuffle: int) -> list[Sample]:
    rng = random.Random(shuffle)
    pairs = [(c, op) for c in workers for op in OPERATIONS]
    sizes: dict[tuple[str, str], int] = {}
    out: list[Sample] = []
    for r in range(rounds + 1):
        rng.shuffle(pairs)
        t0 = time.monotonic()
        sample: Sample = {}
        for config, op in pairs:
            base = max(20, int(MESSAGES[op] * scale))
            n = sizes.get((config, op), base)
            for path in rng.sample(["single", "distinct"], 2):
                answer = workers[config].ask({"op": op, "path": path, "n": n})
                sample[(config, op, path)] = (answer["wall"], answer["cpu"])
        if r == 0:  # the warm-up round sizes the blocks (both paths of a pair get the same count)
            for config, op in pairs:
                base = max(20, int(MESSAGES[op] * scale))
                wall = sample[(config, op, "single")][0]
                sizes[(config, op)] = min(base * 25, max(base, int(BLOCK_SECONDS * scale / wall)))
        else:
            out.append(sample)
        label = "warm-up round" if r == 0 else f"round {r}/{rounds}"
        print(f"  {label} ({time.monotonic() - t0:.1f} s)", file=sys.stderr, flush=True)
    return out


def report(samples: list[Sample]) -> tuple[list[str], list[list[str]], bool]:
    head = [
        "configuration",
        "operation",
        "one subject (µs, CPU)",
        "distinct (µs, CPU)",
        "CPU ratio",
        "middle half",
        "wall ratio",
        "bound",
        "result",
    ]
    rows, passed = [], True
    for config in CONFIGS:
        for op in OPERATIONS:
            if (config, op, "single") not in samples[0]:
                continue
            cpu = sorted(s[(config, op, "distinct")][1] / s[(config, op, "single")][1] for s in samples)
            wall = [s[(config, op, "distinct")][0] / s[(config, op, "single")][0] for s in samples]
            ratio = statistics.median(cpu)
            q = statistics.quantiles(cpu, n=4) if len(cpu) >= 4 else None
            bounded = config != "raw"
            ok = ratio <= LIMIT
            passed = passed and (ok or not bounded)
            rows.append(
                [
                    config,
                    op,
                    rep.fmt_us(statistics.median(s[(config, op, "single")][1] for s in samples)),
                    rep.fmt_us(statistics.median(s[(config, op, "distinct")][1] for s in samples)),
                    f"{ratio:.3f}",
                    f"{q[0]:.3f} to {q[2]:.3f}" if q else "—",
                    f"{statistics.median(wall):.3f}",
                    f"≤ {LIMIT:g}" if bounded else "(reference)",
                    ("PASS" if ok else "FAIL") if bounded else "—",
                ]
            )
    return head, rows, passed


def series_rows(series: dict[str, dict[str, int]]) -> tuple[list[str], list[list[str]]]:
    names = sorted({m for s in series.values() for m in s})
    configs = [c for c in CONFIGS if series.get(c)]
    return ["metric", *(f"series ({c})" for c in configs)], [
        [m, *(str(series[c].get(m, 0)) for c in configs)] for m in names
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=21, help="measured rounds (default 21)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the messages per block")
    parser.add_argument("--quick", action="store_true", help="3 rounds at a tenth of the messages")
    parser.add_argument("--shuffle", type=int, default=1, help="which per-round shuffle (random generator start)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of " + ", ".join(CONFIGS))
    parser.add_argument("--out", type=Path, default=suite.RESULTS, help="where scale.md goes")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write results")
    parser.add_argument("--no-pin", action="store_true", help="do not pin nats-server and the workers to CPUs")
    parser.add_argument("--worker", nargs=2, metavar=("CONFIG", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        asyncio.run(worker_main(*args.worker))
        return 0
    rounds, scale = (3, 0.1) if args.quick else (args.rounds, args.scale)
    if args.quick:
        print("--quick: a smoke run; too few samples for the bound to mean much", file=sys.stderr)
    configs = [c for c in args.configs.split(",") if c]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown configurations: {', '.join(sorted(unknown))}")

    suite.plan_cpus(not args.no_pin)
    server = suite.Server()
    url = server.start()
    info = rep.machine(HERE, DISTS)
    info["nats-server"] = server.version()
    print(f"nats-server at {url}; {rounds} rounds; configurations {', '.join(configs)}", file=sys.stderr)
    workers: dict[str, Worker] = {}
    try:
        for config in configs:
            workers[config] = Worker(config, url)
        samples = run_rounds(workers, rounds, scale, args.shuffle)
        series = {c: w.ask({"series": True})["series"] for c, w in workers.items()}
    finally:
        for w in workers.values():
            w.close()
        server.cleanup()

    head, rows, passed = report(samples)
    shead, srows = series_rows(series)
    verdict = f"ALL BOUNDS PASS (distinct / one subject ≤ {LIMIT:g})" if passed else "SOME BOUNDS FAIL"
    text = [f"per-message cost, {DISTINCT} distinct subjects vs one (median of {rounds} rounds)", ""]
    text += [*rep.table_text(head, rows), "", *rep.table_text(shead, srows), "", verdict]
    print("\n".join(text))
    if not args.no_write:
        command = "python benchmarks/scale.py " + " ".join(argv if argv is not None else sys.argv[1:])
        md = [
            "# Benchmark results: distinct subjects",
            "",
            f"Command: `{command.strip()}` — {rounds} interleaved rounds (a warm-up round before them is dropped).",
            f"Each block on distinct subjects takes the next subjects of {DISTINCT} in turn; the block on one",
            "subject has as many messages. CPU time is the worker process's (all threads); the ratio is the",
            "median of the per-round ratios (distinct / one subject). See the docstring of `benchmarks/scale.py`.",
            "",
            "| | |",
            "| --- | --- |",
            *(f"| {k} | {v} |" for k, v in info.items()),
            "",
            *rep.table_markdown(head, rows),
            "",
            "Series per metric at the end of the run (the metrics configurations):",
            "",
            *rep.table_markdown(shead, srows),
            "",
            f"**{verdict}**",
            "",
        ]
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "scale.md").write_text("\n".join(md))
        print(f"wrote {args.out / 'scale.md'}", file=sys.stderr)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
