"""The SDK paths of the benchmark: instrumented nats-py against hand-written equivalents.

The hand-written code is what a careful user would write without this instrumentation: the span
attributes that do not change per message are built once per subject, each message gets
``tracer.start_as_current_span(...)`` with the same name, kind, attributes and links as the instrumented
span, ``propagate.inject`` into a fresh headers dict, and the nats-py call (plus, for the metrics
path, the same instruments recorded with the same attributes). ``check_equivalence`` verifies,
before anything is measured, that both produce the same spans and metric streams.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from common import BUCKETS, DiscardExporter, creation_links, metric_points, operation, shapes
from opentelemetry.metrics import Meter
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Tracer
from protocol import BEFORE_STOP, Counter, Elapsed, Worker, clock, since
from worker import (
    JS_SUBJECT,
    OPERATIONS,
    PAYLOAD,
    PLAIN,
    RESPONSE,
    SUBJECT,
    WARMUP,
    Clients,
    delivery,
    responder,
    warm_publish,
)

from opentelemetry.instrumentation.nats import NatsInstrumentor

# Re-creating the instrumentation's instruments on the same meter for every measured block logs a
# "created already" warning each time; it is expected here.
logging.getLogger("opentelemetry.sdk.metrics._internal").setLevel(logging.ERROR)

# --- hand-written equivalents -------------------------------------------------------------------


def connection_attributes(nc: Any) -> dict[str, Any]:
    """What a user would read once from the connection."""
    info = nc._server_info
    url = nc.connected_url
    return {
        "server.address": url.hostname,
        "server.port": url.port,
        "messaging.client.id": str(nc.client_id),
        "messaging.nats.server.id": info["server_id"],
        "messaging.nats.server.name": info["server_name"],
        "messaging.nats.server.version": info["version"],
    }


class HandWritten:
    """Hand-written tracing (and metrics) around uninstrumented nats-py calls."""

    def __init__(self, tracer: Tracer, c: Clients, meter: Meter | None = None) -> None:
        self.tracer = tracer
        self.c = c
        pub_conn = connection_attributes(c.nc)
        sub_conn = connection_attributes(c.sc)
        self.publish_attrs = {**operation("send", "publish", SUBJECT), **pub_conn}
        self.pub_conn = pub_conn
        self.sub_conn = sub_conn
        self.reply_attrs = {
            **operation("send", "publish", None),
            "messaging.destination.temporary": True,
            "messaging.destination.anonymous": True,
            **sub_conn,
        }
        self.js_attrs = {
            **operation("send", "publish", JS_SUBJECT),
            **pub_conn,
            "messaging.nats.jetstream.subject": JS_SUBJECT,
        }
        if meter is not None:
            self.duration = meter.create_histogram(
                "messaging.client.operation.duration", unit="s", explicit_bucket_boundaries_advisory=BUCKETS
            )
            self.sent = meter.create_counter("messaging.client.sent.messages", unit="{message}")
            self.sent_bytes = meter.create_counter("messaging.nats.client.sent.bytes", unit="By")
            self.metric_attrs = {
                k: v
                for k, v in self.publish_attrs.items()
                if k
                in (
                    "messaging.system.name",
                    "messaging.operation.type",
                    "messaging.operation.name",
                    "messaging.destination.name",
                    "server.address",
                    "server.port",
                )
            }

    async def publish(self, c: Clients, n: int) -> Elapsed:
        tracer, nc, attrs = self.tracer, c.nc, self.publish_attrs
        t0 = clock()
        for _ in range(n):
            with tracer.start_as_current_span(
                "publish bench.publish",
                kind=SpanKind.PRODUCER,
                attributes={**attrs, "messaging.message.body.size": len(PAYLOAD)},
            ):
                headers: dict[str, str] = {}
                inject(headers)
                await nc.publish(SUBJECT, PAYLOAD, headers=headers)
        await nc.flush()
        return since(t0)

    async def publish_with_metrics(self, c: Clients, n: int) -> Elapsed:
        tracer, nc, attrs, mattrs = self.tracer, c.nc, self.publish_attrs, self.metric_attrs
        duration, sent, sent_bytes = self.duration, self.sent, self.sent_bytes
        t0 = clock()
        for _ in range(n):
            start = time.perf_counter()
            with tracer.start_as_current_span(
                "publish bench.publish",
                kind=SpanKind.PRODUCER,
                attributes={**attrs, "messaging.message.body.size": len(PAYLOAD)},
            ):
                headers: dict[str, str] = {}
                inject(headers)
                await nc.publish(SUBJECT, PAYLOAD, headers=headers)
            duration.record(time.perf_counter() - start, mattrs)
            sent.add(1, mattrs)
            sent_bytes.add(len(PAYLOAD), mattrs)
        await nc.flush()
        return since(t0)

    async def callback(self, c: Clients, n: int) -> Elapsed:
        tracer = self.tracer
        publish_attrs: dict[str, Any] = {}
        cached: dict[str, str] = {}

        async def subscribe(subject: str, counter: Counter) -> Any:
            # per subject, once: span names and the attributes that do not change per message
            cached["publish"], cached["process"] = f"publish {subject}", f"process {subject}"
            publish_attrs.update({**operation("send", "publish", subject), **self.pub_conn})
            attrs = {**operation("process", "process", subject), **self.sub_conn}
            process_name = cached["process"]
            box: list[Any] = []

            async def cb(msg: Any) -> None:
                sub = box[0]
                ctx = extract(msg.headers or {})
                with tracer.start_as_current_span(
                    process_name,
                    context=ctx,
                    kind=SpanKind.CONSUMER,
                    links=creation_links(ctx),
                    attributes={
                        **attrs,
                        "messaging.message.body.size": len(msg.data),
                        "messaging.nats.subscription.id": str(msg.sid),
                        "messaging.nats.delivered_messages": sub.delivered,
                        "messaging.nats.pending_messages": sub.pending_msgs,
                    },
                ):
                    counter.tick()

            box.append(await c.sc.subscribe(subject, cb=cb))
            return box[0]

        async def publish(c: Clients, subject: str) -> None:
            with tracer.start_as_current_span(
                cached["publish"],
                kind=SpanKind.PRODUCER,
                attributes={**publish_attrs, "messaging.message.body.size": len(PAYLOAD)},
            ):
                headers: dict[str, str] = {}
                inject(headers)
                await c.nc.publish(subject, PAYLOAD, headers=headers)

        return await delivery(c, n, subscribe, publish)

    async def request(self, c: Clients, n: int) -> Elapsed:
        tracer, sc = self.tracer, c.sc
        request_attrs: dict[str, Any] = {}
        cached: dict[str, str] = {}
        reply_attrs = {
            **operation("send", "publish", None),
            "messaging.destination.temporary": True,
            "messaging.destination.anonymous": True,
            **self.sub_conn,
        }

        async def subscribe(subject: str) -> Any:
            # per subject, once: span names and the attributes that do not change per message
            cached["request"], process_name = f"request {subject}", f"process {subject}"
            request_attrs.update({**operation("send", "request", subject), **self.pub_conn})
            serve_attrs = {**operation("process", "process", subject), **self.sub_conn}
            box: list[Any] = []

            async def handler(msg: Any) -> None:
                sub = box[0]
                ctx = extract(msg.headers or {})
                with (
                    tracer.start_as_current_span(
                        process_name,
                        context=ctx,
                        kind=SpanKind.SERVER,
                        links=creation_links(ctx),
                        attributes={
                            **serve_attrs,
                            "messaging.message.body.size": len(msg.data),
                            "messaging.nats.reply_to": msg.reply,
                            "messaging.nats.subscription.id": str(msg.sid),
                            "messaging.nats.delivered_messages": sub.delivered,
                            "messaging.nats.pending_messages": sub.pending_msgs,
                        },
                    ),
                    tracer.start_as_current_span(
                        "publish",
                        kind=SpanKind.PRODUCER,
                        attributes={
                            **reply_attrs,
                            "messaging.destination.name": msg.reply,
                            "messaging.message.body.size": len(RESPONSE),
                        },
                    ),
                ):
                    headers: dict[str, str] = {}
                    inject(headers)
                    await sc.publish(msg.reply, RESPONSE, headers=headers)

            box.append(await sc.subscribe(subject, cb=handler))
            return box[0]

        async def run(c: Clients, subject: str) -> None:
            with tracer.start_as_current_span(
                cached["request"],
                kind=SpanKind.CLIENT,
                attributes={**request_attrs, "messaging.message.body.size": len(PAYLOAD)},
            ) as span:
                headers: dict[str, str] = {}
                inject(headers)
                resp = await c.nc.request(subject, PAYLOAD, timeout=5, headers=headers)
                span.set_attribute("messaging.nats.response.body.size", len(resp.data))

        return await responder(c, n, subscribe, run)

    async def js_publish(self, c: Clients, n: int) -> Elapsed:
        tracer, js, attrs = self.tracer, c.js, self.js_attrs

        async def one() -> None:
            with tracer.start_as_current_span(
                "publish bench.js",
                kind=SpanKind.PRODUCER,
                attributes={**attrs, "messaging.message.body.size": len(PAYLOAD)},
            ) as span:
                headers: dict[str, str] = {}
                inject(headers)
                ack = await js.publish(JS_SUBJECT, PAYLOAD, headers=headers)
                span.set_attributes(
                    {
                        "messaging.nats.jetstream.stream": ack.stream,
                        "messaging.nats.jetstream.sequence": ack.seq,
                        "messaging.nats.jetstream.duplicate": bool(ack.duplicate),
                    }
                )

        for _ in range(WARMUP):
            await one()
        t0 = clock()
        for _ in range(n):
            await one()
        return since(t0)

    def path(self, op: str) -> Callable[[Clients, int], Awaitable[Elapsed]]:
        return {
            "publish": self.publish,
            "callback": self.callback,
            "request": self.request,
            "js_publish": self.js_publish,
        }[op]


# --- instrumented -------------------------------------------------------------------------------


Fn = Callable[[Clients, int], Awaitable[Elapsed]]


async def instrumented(c: Clients, fn: Fn, n: int, warm: bool, **options: Any) -> Elapsed:
    """Run a plain nats-py path instrumented with ``options`` (instrument/uninstrument untimed)."""
    instrumentor = NatsInstrumentor()
    instrumentor.instrument(**options)
    try:
        return await warm_publish(c, fn, n) if warm else await fn(c, n)
    finally:
        instrumentor.uninstrument()


async def warm_up_traffic(c: Clients, instrument: bool) -> None:
    """The ``unit`` worker's switch: instrument with the SDK, send traffic on every path, uninstrument.
    The ``control`` worker: the same traffic with nothing instrumented."""
    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(DiscardExporter()))
    mp = MeterProvider(metric_readers=[InMemoryMetricReader()])
    for fn in PLAIN.values():
        if instrument:
            await instrumented(c, fn, 200, False, tracer_provider=tp, meter_provider=mp)
        else:
            await fn(c, 200)
    tp.shutdown()


# The usual production sampler: 1 % of new traces, children follow their parent.
RATIO_OPERATIONS = ("publish", "callback")


def add_sdk_paths(worker: Worker, c: Clients) -> None:
    """The SDK worker's paths: ``{off,on}.{hand,inst}.{operation}``, ``ratio.{hand,inst}.{publish,callback}``
    (``ParentBased(TraceIdRatioBased(0.01))``) and ``metrics.{hand,inst}.publish``."""
    tp_off = TracerProvider(sampler=ALWAYS_OFF)
    tp_on = TracerProvider()
    tp_on.add_span_processor(BatchSpanProcessor(DiscardExporter()))
    tp_ratio = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.01)))
    tp_ratio.add_span_processor(BatchSpanProcessor(DiscardExporter()))
    BEFORE_STOP.extend((tp_on.force_flush, tp_ratio.force_flush))  # the block's spans are exported in the block
    mp = MeterProvider(metric_readers=[InMemoryMetricReader()])
    hands = {
        "off": HandWritten(tp_off.get_tracer("bench.hand"), c),
        "on": HandWritten(tp_on.get_tracer("bench.hand"), c),
        "ratio": HandWritten(tp_ratio.get_tracer("bench.hand"), c),
    }
    hand_metrics = HandWritten(tp_on.get_tracer("bench.hand"), c, mp.get_meter("bench.hand"))
    providers = {"off": tp_off, "on": tp_on, "ratio": tp_ratio}

    def block(fn: Fn, warm: bool, **options: Any) -> Callable[[int], Awaitable[Elapsed]]:
        """One measured block: instrument with ``options`` (unless none), warm up publish paths, run."""

        async def run(n: int) -> Elapsed:
            if options:
                return await instrumented(c, fn, n, warm, **options)
            return await warm_publish(c, fn, n) if warm else await fn(c, n)

        return run

    for op in OPERATIONS:
        warm = op == "publish"
        for sampling, tp in providers.items():
            if sampling == "ratio" and op not in RATIO_OPERATIONS:
                continue
            worker.paths[f"{sampling}.hand.{op}"] = block(hands[sampling].path(op), warm)
            worker.paths[f"{sampling}.inst.{op}"] = block(PLAIN[op], warm, tracer_provider=tp)
    worker.paths["metrics.hand.publish"] = block(hand_metrics.publish_with_metrics, True)
    worker.paths["metrics.inst.publish"] = block(PLAIN["publish"], True, tracer_provider=tp_on, meter_provider=mp)


# --- fairness check -----------------------------------------------------------------------------


async def check_equivalence(c: Clients) -> None:
    """Fail unless each hand-written path makes the same spans (names, kinds, parents, links, attributes)
    and the metrics path the same metric streams as the instrumented one."""
    for op in OPERATIONS:
        exported: list[set[str]] = []
        for mode in ("hand", "inst"):
            exporter = InMemorySpanExporter()
            tp = TracerProvider()
            tp.add_span_processor(SimpleSpanProcessor(exporter))
            if mode == "hand":
                await HandWritten(tp.get_tracer("bench.hand"), c).path(op)(c, 3)
            else:
                await instrumented(c, PLAIN[op], 3, False, tracer_provider=tp)
            await asyncio.sleep(0.05)
            exported.append(shapes(exporter.get_finished_spans()))
        if not exported[0]:
            raise SystemExit(f"the equivalence check of {op} saw no spans")
        if exported[0] != exported[1]:
            only_hand, only_inst = sorted(exported[0] - exported[1]), sorted(exported[1] - exported[0])
            raise SystemExit(f"hand-written {op} is not equivalent:\nonly hand {only_hand}\nonly inst {only_inst}")
    points = []
    for mode in ("hand", "inst"):
        reader = InMemoryMetricReader()
        mp = MeterProvider(metric_readers=[reader])
        tp = TracerProvider()
        if mode == "hand":
            await HandWritten(tp.get_tracer("bench.hand"), c, mp.get_meter("bench.hand")).publish_with_metrics(c, 3)
        else:
            await instrumented(c, PLAIN["publish"], 3, False, tracer_provider=tp, meter_provider=mp)
        points.append(metric_points(reader))
    if points[0] != points[1]:
        raise SystemExit(f"hand-written metrics are not equivalent:\nhand {points[0]}\ninst {points[1]}")
