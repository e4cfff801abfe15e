"""The SDK paths of the nats-core benchmark: instrumented nats-core against hand-written equivalents.

As for nats-py (``sdk_paths.py``): the hand-written code is what a careful user would write by hand -
attributes that do not change per message built once per subject, ``tracer.start_as_current_span``
with the instrumented span's name, kind, attributes and links, ``propagate.inject`` into a fresh dict
of headers, and the nats-core call. Received headers are a ``Headers`` object (not a mapping): a small
getter reads it. ``check_equivalence`` verifies, before anything is measured, that both make the same
spans and metric streams.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from common import BUCKETS, DiscardExporter, creation_links, metric_points, operation, shapes
from natscore_worker import (
    JS_SUBJECT,
    OPERATIONS,
    PAYLOAD,
    PLAIN,
    RESPONSE,
    SUBJECT,
    WARMUP_ROUND_TRIPS,
    Clients,
    Fn,
    block,
    callback_delivery,
    iterator_delivery,
    responder,
)
from opentelemetry.metrics import Meter
from opentelemetry.propagate import extract, inject
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, Tracer
from protocol import BEFORE_STOP, Counter, Elapsed, Worker, clock, since

from opentelemetry.instrumentation.nats import NatsInstrumentor

logging.getLogger("opentelemetry.sdk.metrics._internal").setLevel(logging.ERROR)


class HeadersGetter(Getter[Any]):
    """Reads a nats-core ``Headers`` object (or ``None``) for ``propagate.extract``."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        if carrier is None:
            return None
        values = carrier.get_all(key)
        return values or None

    def keys(self, carrier: Any) -> list[str]:
        return [] if carrier is None else [k for k, _ in carrier.items()]


GETTER = HeadersGetter()


def connection_attributes(nc: Any, url: str) -> dict[str, Any]:
    """What a user would read once from the connection (and the URL it connected to)."""
    info = nc.server_info
    host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
    return {
        "server.address": host,
        "server.port": int(port),
        "messaging.client.id": str(info.client_id),
        "messaging.nats.server.id": info.server_id,
        "messaging.nats.server.version": info.version,
    }


class HandWritten:
    """Hand-written tracing (and metrics) around uninstrumented nats-core calls."""

    def __init__(self, tracer: Tracer, c: Clients, url: str, meter: Meter | None = None) -> None:
        self.tracer = tracer
        self.c = c
        self.pub_conn = connection_attributes(c.nc, url)
        self.sub_conn = connection_attributes(c.sc, url)
        self.publish_attrs = {**operation("send", "publish", SUBJECT), **self.pub_conn}
        self.js_attrs = {
            **operation("send", "publish", JS_SUBJECT),
            **self.pub_conn,
            "messaging.nats.jetstream.subject": JS_SUBJECT,
        }
        if meter is not None:
            self.duration = meter.create_histogram(
                "messaging.client.operation.duration", unit="s", explicit_bucket_boundaries_advisory=BUCKETS
            )
            self.sent = meter.create_counter("messaging.client.sent.messages", unit="{message}")
            self.sent_bytes = meter.create_counter("messaging.nats.client.sent.bytes", unit="By")
            keys = (
                "messaging.system.name",
                "messaging.operation.type",
                "messaging.operation.name",
                "messaging.destination.name",
                "server.address",
                "server.port",
            )
            self.metric_attrs = {k: v for k, v in self.publish_attrs.items() if k in keys}

    def consumer_attrs(self, type_: str, name: str, subject: str, sid: str) -> dict[str, Any]:
        return {**operation(type_, name, subject), **self.sub_conn, "messaging.nats.subscription.id": sid}

    async def publish(self, c: Clients, n: int) -> Elapsed:
        tracer, nc, attrs = self.tracer, c.nc, self.publish_attrs
        t0 = clock()
        for _ in range(n):
            with tracer.start_as_current_span(
                f"publish {SUBJECT}",
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
                f"publish {SUBJECT}",
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

    def publisher(self) -> Callable[[Clients, str], Awaitable[None]]:
        """A traced publish to the block's subject (its name and attributes built once per subject)."""
        tracer, cached = self.tracer, {"subject": "", "name": "", "attrs": {}}

        async def publish(c: Clients, subject: str) -> None:
            if cached["subject"] != subject:
                cached.update(
                    subject=subject,
                    name=f"publish {subject}",
                    attrs={**operation("send", "publish", subject), **self.pub_conn},
                )
            with tracer.start_as_current_span(
                cached["name"],
                kind=SpanKind.PRODUCER,
                attributes={**cached["attrs"], "messaging.message.body.size": len(PAYLOAD)},
            ):
                headers: dict[str, str] = {}
                inject(headers)
                await c.nc.publish(subject, PAYLOAD, headers=headers)

        return publish

    async def callback(self, c: Clients, n: int) -> Elapsed:
        tracer = self.tracer

        def make(sub: Any, subject: str, counter: Counter) -> Callable[[Any], None]:
            # (nats-core has no public subscription id; the instrumentation records the private one)
            name, attrs = f"process {subject}", self.consumer_attrs("process", "process", subject, sub._sid)

            def cb(msg: Any) -> None:
                ctx = extract(msg.headers, getter=GETTER)
                with tracer.start_as_current_span(
                    name,
                    context=ctx,
                    kind=SpanKind.CONSUMER,
                    links=creation_links(ctx),
                    attributes={
                        **attrs,
                        "messaging.message.body.size": len(msg.data),
                        "messaging.nats.pending_messages": sub.pending[0],
                    },
                ):
                    counter.tick()

            return cb

        return await callback_delivery(c, n, make, self.publisher())

    async def iterator(self, c: Clients, n: int) -> Elapsed:
        tracer = self.tracer

        async def consume(sub: Any, subject: str, counter: Counter) -> None:
            name, attrs = f"receive {subject}", self.consumer_attrs("receive", "receive", subject, sub._sid)
            start = time.time_ns()
            async for msg in sub:
                ctx = extract(msg.headers, getter=GETTER)
                tracer.start_span(
                    name,
                    kind=SpanKind.CLIENT,
                    links=creation_links(ctx),
                    attributes={
                        **attrs,
                        "messaging.message.body.size": len(msg.data),
                        "messaging.nats.pending_messages": sub.pending[0],
                    },
                    start_time=start,
                ).end()
                counter.tick()
                start = time.time_ns()

        return await iterator_delivery(c, n, consume, self.publisher())

    async def request(self, c: Clients, n: int) -> Elapsed:
        tracer = self.tracer
        cached: dict[str, Any] = {}
        reply_attrs = {
            **operation("send", "publish", None),
            "messaging.destination.temporary": True,
            "messaging.destination.anonymous": True,
            **self.sub_conn,
        }

        async def serve(c: Clients, sub: Any, subject: str) -> None:
            sc = c.sc
            cached["name"] = f"request {subject}"
            cached["attrs"] = {**operation("send", "request", subject), **self.pub_conn}
            name, attrs = f"receive {subject}", self.consumer_attrs("receive", "receive", subject, sub._sid)
            start = time.time_ns()
            async for msg in sub:
                ctx = extract(msg.headers, getter=GETTER)
                tracer.start_span(
                    name,
                    kind=SpanKind.CLIENT,
                    links=creation_links(ctx),
                    attributes={
                        **attrs,
                        "messaging.message.body.size": len(msg.data),
                        "messaging.nats.reply_to": msg.reply,
                        "messaging.nats.pending_messages": sub.pending[0],
                    },
                    start_time=start,
                ).end()
                with tracer.start_as_current_span(
                    "publish",
                    kind=SpanKind.PRODUCER,
                    attributes={
                        **reply_attrs,
                        "messaging.destination.name": msg.reply,
                        "messaging.message.body.size": len(RESPONSE),
                    },
                ):
                    headers: dict[str, str] = {}
                    inject(headers)
                    await sc.publish(msg.reply, RESPONSE, headers=headers)
                start = time.time_ns()

        async def run(c: Clients, subject: str) -> None:
            with tracer.start_as_current_span(
                cached["name"],
                kind=SpanKind.CLIENT,
                attributes={**cached["attrs"], "messaging.message.body.size": len(PAYLOAD)},
            ) as span:
                headers: dict[str, str] = {}
                inject(headers)
                resp = await c.nc.request(subject, PAYLOAD, timeout=5, headers=headers)
                span.set_attribute("messaging.nats.response.body.size", len(resp.data))

        return await responder(c, n, serve, run)

    async def js_publish(self, c: Clients, n: int) -> Elapsed:
        tracer, js, attrs = self.tracer, c.js, self.js_attrs

        async def one() -> None:
            with tracer.start_as_current_span(
                f"publish {JS_SUBJECT}",
                kind=SpanKind.PRODUCER,
                attributes={**attrs, "messaging.message.body.size": len(PAYLOAD)},
            ) as span:
                headers: dict[str, str] = {}
                inject(headers)
                ack = await js.publish(JS_SUBJECT, PAYLOAD, headers=headers)
                span.set_attributes(
                    {
                        "messaging.nats.jetstream.stream": ack.stream,
                        "messaging.nats.jetstream.sequence": ack.sequence,
                        "messaging.nats.jetstream.duplicate": bool(ack.duplicate),
                    }
                )

        for _ in range(WARMUP_ROUND_TRIPS):
            await one()
        t0 = clock()
        for _ in range(n):
            await one()
        return since(t0)

    def path(self, op: str) -> Fn:
        return {
            "publish": self.publish,
            "callback": self.callback,
            "iterator": self.iterator,
            "request": self.request,
            "js_publish": self.js_publish,
        }[op]


# --- instrumented -------------------------------------------------------------------------------


async def instrumented(c: Clients, fn: Fn, n: int, op: str, **options: Any) -> Elapsed:
    """Run a plain nats-core path instrumented with ``options`` (instrument/uninstrument untimed)."""
    instrumentor = NatsInstrumentor()
    instrumentor.instrument(**options)
    try:
        return await block(c, fn, op)(n)
    finally:
        instrumentor.uninstrument()


async def warm_up_traffic(c: Clients, instrument: bool) -> None:
    """The ``unit`` worker's switch: instrument with the SDK, send traffic on every path, uninstrument.
    The ``control`` worker: the same traffic with nothing instrumented."""
    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(DiscardExporter()))
    mp = MeterProvider(metric_readers=[InMemoryMetricReader()])
    for op, fn in PLAIN.items():
        if instrument:
            await instrumented(c, fn, 200, op, tracer_provider=tp, meter_provider=mp)
        else:
            await fn(c, 200)
    tp.shutdown()


def add_sdk_paths(worker: Worker, c: Clients, url: str, patched: Sequence[str]) -> None:
    """The SDK worker's paths: ``{off,on}.hand.{operation}`` and ``metrics.hand.publish``, and the
    instrumented ``{off,on}.inst.{operation}`` and ``metrics.inst.publish`` for the ``patched`` operations."""
    tp_off = TracerProvider(sampler=ALWAYS_OFF)
    tp_on = TracerProvider()
    tp_on.add_span_processor(BatchSpanProcessor(DiscardExporter()))
    BEFORE_STOP.append(tp_on.force_flush)  # the block's spans are exported in the block
    mp = MeterProvider(metric_readers=[InMemoryMetricReader()])
    providers = {"off": tp_off, "on": tp_on}
    hands = {s: HandWritten(tp.get_tracer("bench.hand"), c, url) for s, tp in providers.items()}
    hand_metrics = HandWritten(tp_on.get_tracer("bench.hand"), c, url, mp.get_meter("bench.hand"))

    def inst(fn: Fn, op: str, **options: Any) -> Callable[[int], Awaitable[Elapsed]]:
        return lambda n: instrumented(c, fn, n, op, **options)

    for op in OPERATIONS:
        for sampling, tp in providers.items():
            worker.paths[f"{sampling}.hand.{op}"] = block(c, hands[sampling].path(op), op)
            if op in patched:
                worker.paths[f"{sampling}.inst.{op}"] = inst(PLAIN[op], op, tracer_provider=tp)
    worker.paths["metrics.hand.publish"] = block(c, hand_metrics.publish_with_metrics, "publish")
    if "publish" in patched:
        worker.paths["metrics.inst.publish"] = inst(
            PLAIN["publish"], "publish", tracer_provider=tp_on, meter_provider=mp
        )


# --- fairness check -----------------------------------------------------------------------------


async def check_equivalence(c: Clients, url: str, patched: Sequence[str]) -> None:
    """Fail unless each hand-written path makes the same spans (names, kinds, parents, links,
    attributes) and the metrics path the same metric streams as the instrumented one."""
    for op in patched:
        exported = []
        for mode in ("hand", "inst"):
            exporter = InMemorySpanExporter()
            tp = TracerProvider()
            tp.add_span_processor(SimpleSpanProcessor(exporter))
            if mode == "hand":
                await HandWritten(tp.get_tracer("bench.hand"), c, url).path(op)(c, 3)
            else:
                await instrumented(c, PLAIN[op], 3, op, tracer_provider=tp)
            await asyncio.sleep(0.05)
            exported.append(shapes(exporter.get_finished_spans()))
        if not exported[0]:
            raise SystemExit(f"the equivalence check of nats-core {op} saw no spans")
        if exported[0] != exported[1]:
            only_hand, only_inst = sorted(exported[0] - exported[1]), sorted(exported[1] - exported[0])
            raise SystemExit(
                f"hand-written nats-core {op} is not equivalent:\nonly hand {only_hand}\nonly inst {only_inst}"
            )
    if "publish" not in patched:
        return
    points = []
    for mode in ("hand", "inst"):
        reader = InMemoryMetricReader()
        mp = MeterProvider(metric_readers=[reader])
        tp = TracerProvider()
        if mode == "hand":
            await HandWritten(tp.get_tracer("bench.hand"), c, url, mp.get_meter("bench.hand")).publish_with_metrics(
                c, 3
            )
        else:
            await instrumented(c, PLAIN["publish"], 3, "publish", tracer_provider=tp, meter_provider=mp)
        points.append(metric_points(reader))
    if points[0] != points[1]:
        raise SystemExit(f"hand-written nats-core metrics are not equivalent:\nhand {points[0]}\ninst {points[1]}")
