"""Soak test (not run in CI): resident memory growth over 1 000 000 instrumented messages.

Publishes ``--messages`` messages through an instrumented ``publish`` to an instrumented callback
subscription (one PRODUCER and one CONSUMER span each) with the SDK, a ``BatchSpanProcessor`` and an
exporter that discards everything, plus a ``MeterProvider`` (metrics are recorded too). With
``--distinct`` every message goes to a subject of its own (``soak.<n>``, never repeated, warm-up
included) and the subscription is ``soak.*``: the per-subject caches turn over all the time and the
limit of named destinations is passed after the first ``max_destinations`` subjects.

Memory is read from ``/proc/self/status`` (VmRSS) after a warm-up and again at the end; the growth
must stay under ``--limit-mib`` (20 MiB by default). At the end the number of series of every metric is
read from the SDK's reader (cumulative: every series the run made): each must stay under the SDK's
cardinality limit (2 000 per metric), with no overflow series. Exit status 1 when a check fails.

    python benchmarks/soak.py                 # starts its own nats-server (needs nats-server on PATH)
    python benchmarks/soak.py --distinct      # the same on 1 000 000 distinct subjects
    scripts/bench.sh soak                     # both, in .venv
    python benchmarks/soak.py --quick         # a smoke run: 20 000 messages after 5 000
    python benchmarks/soak.py --url nats://127.0.0.1:4222 --messages 200000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nats
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from opentelemetry.instrumentation.nats import NatsInstrumentor

ROOT = Path(__file__).resolve().parent.parent
SDK_SERIES_LIMIT = 2000  # the SDK's default cardinality limit per metric stream
OVERFLOW = "otel.metric.overflow"


class DiscardExporter(SpanExporter):
    """Accepts every batch and keeps nothing."""

    def __init__(self) -> None:
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def rss_kib() -> int:
    """Resident set size of this process (VmRSS), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


async def pump(
    nc: Any, subject: Callable[[int], str], first: int, count: int, state: dict[str, int], payload: bytes, window: int
) -> None:
    """Publish messages ``first`` … ``first + count - 1`` (to ``subject(i)``), letting the subscriber
    catch up every ``window`` messages."""
    target = state["received"]
    for start in range(first, first + count, window):
        end = min(start + window, first + count)
        for i in range(start, end):
            await nc.publish(subject(i), payload)
        target += end - start
        await nc.flush()
        while state["received"] < target:
            await asyncio.sleep(0.001)


async def soak(url: str, messages: int, warmup: int, payload_size: int, distinct: bool) -> tuple[int, int, int, int]:
    state = {"received": 0}

    async def handler(msg: Any) -> None:
        state["received"] += 1

    def subject(i: int) -> str:
        return f"soak.{i}" if distinct else "soak.subject"

    nc = await nats.connect(url)
    try:
        await nc.subscribe("soak.*" if distinct else "soak.subject", cb=handler)
        payload = b"x" * payload_size
        await pump(nc, subject, 0, warmup, state, payload, window=1000)
        gc.collect()
        before = rss_kib()
        started = time.monotonic()
        await pump(nc, subject, warmup, messages, state, payload, window=1000)
        elapsed = time.monotonic() - started
        gc.collect()
        after = rss_kib()
    finally:
        await nc.close()
    return before, after, state["received"], int(elapsed)


def series(reader: InMemoryMetricReader) -> dict[str, tuple[int, bool]]:
    """Per metric: its number of series (data points) and whether one is the SDK's overflow series."""
    data = reader.get_metrics_data()
    out: dict[str, tuple[int, bool]] = {}
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                points = list(m.data.data_points)
                out[m.name] = (len(points), any((p.attributes or {}).get(OVERFLOW) for p in points))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="NATS server URL (default: start a private nats-server)")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--warmup", type=int, default=50_000)
    parser.add_argument("--payload-size", type=int, default=128)
    parser.add_argument("--limit-mib", type=float, default=20.0)
    parser.add_argument("--distinct", action="store_true", help="a subject of its own for every message")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20 000 messages after 5 000")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.warmup = 20_000, 5_000

    exporter = DiscardExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    NatsInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)

    server = None
    url = args.url
    if url is None:
        sys.path.insert(0, str(ROOT))
        from tests.natsserver import NatsServer

        server = NatsServer().start()
        url = server.url
    try:
        before, after, received, elapsed = asyncio.run(
            soak(url, args.messages, args.warmup, args.payload_size, args.distinct)
        )
        counts = series(reader)
    finally:
        if server is not None:
            server.cleanup()
        NatsInstrumentor().uninstrument()
        tracer_provider.shutdown()
        meter_provider.shutdown()

    growth_mib = (after - before) / 1024
    within = all(n < SDK_SERIES_LIMIT and not overflow for n, overflow in counts.values())
    subjects = "distinct subjects (soak.<n>)" if args.distinct else "one subject"
    print(f"messages: {args.messages} (+{args.warmup} warm-up) on {subjects}, received: {received}, time: {elapsed} s")
    print(f"spans exported: {exporter.exported}")
    print(f"VmRSS after warm-up: {before / 1024:.1f} MiB, at the end: {after / 1024:.1f} MiB")
    print(f"RSS growth: {growth_mib:.2f} MiB (limit {args.limit_mib} MiB)")
    print(f"series per metric (limit: under {SDK_SERIES_LIMIT}, no overflow series):")
    for name, (n, overflow) in sorted(counts.items()):
        print(f"  {name}: {n}{' (OVERFLOW)' if overflow else ''}")
    ok = received == args.messages + args.warmup and growth_mib < args.limit_mib and within
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
