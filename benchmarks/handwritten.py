"""The SDK paths both families' benchmark code shares (``sdk_paths.py`` for nats-py,
``natscore_paths.py`` for nats-core): the hand-written code both write alike
(:class:`HandWrittenBase`), the SDK worker's paths (:func:`add_sdk_paths`), and the equivalence
check with the shapes of spans and metric streams it compares (:func:`check_equivalence`). Imports
no NATS client (see ``common.py``).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from common import (
    BUCKETS,
    PAYLOAD,
    RESPONSE,
    DiscardExporter,
    Fn,
    block,
    instrumented,
)
from opentelemetry.metrics import Meter
from opentelemetry.propagate import inject
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Histogram, InMemoryMetricReader, Sum
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, SpanKind, Tracer, get_current_span
from protocol import BEFORE_STOP, Elapsed, Worker, clock, since


def creation_links(ctx: Any) -> list[Link] | None:
    """The link a process span has to the message's creation context (semconv), when there is one."""
    span_ctx = get_current_span(ctx).get_span_context()
    return [Link(span_ctx)] if span_ctx.is_valid else None


def operation(type_: str, name: str, subject: str | None) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "messaging.system.name": "nats",
        "messaging.operation.type": type_,
        "messaging.operation.name": name,
    }
    if subject is not None:
        attrs["messaging.destination.name"] = subject
    return attrs


METRIC_KEYS = (
    "messaging.system.name",
    "messaging.operation.type",
    "messaging.operation.name",
    "messaging.destination.name",
    "server.address",
    "server.port",
)


class HandWrittenBase:
    """Hand-written tracing around the uninstrumented client: what both families write alike
    (publish, publish with metrics, JetStream publish); each family's ``HandWritten`` adds delivery
    and request/reply. ``pub_conn`` and ``sub_conn``: the connection attributes a user would read
    once from each connection; ``ack_sequence``: the client's name of a JetStream ack's sequence."""

    def __init__(
        self,
        tracer: Tracer,
        pub_conn: dict[str, Any],
        sub_conn: dict[str, Any],
        subject: str,
        js_subject: str,
        ack_sequence: str,
        meter: Meter | None = None,
    ) -> None:
        self.tracer = tracer
        self.pub_conn, self.sub_conn = pub_conn, sub_conn
        self.subject, self.js_subject, self.ack_sequence = subject, js_subject, ack_sequence
        self.publish_attrs = {**operation("send", "publish", subject), **pub_conn}
        self.reply_attrs = {
            **operation("send", "publish", None),
            "messaging.destination.temporary": True,
            "messaging.destination.anonymous": True,
            **sub_conn,
        }
        self.js_attrs = {
            **operation("send", "publish", js_subject),
            **pub_conn,
            "messaging.nats.jetstream.subject": js_subject,
        }
        if meter is not None:
            self.duration = meter.create_histogram(
                "messaging.client.operation.duration", unit="s", explicit_bucket_boundaries_advisory=BUCKETS
            )
            self.sent = meter.create_counter("messaging.client.sent.messages", unit="{message}")
            self.sent_bytes = meter.create_counter("messaging.nats.client.sent.bytes", unit="By")
            self.metric_attrs = {k: v for k, v in self.publish_attrs.items() if k in METRIC_KEYS}

    def path(self, op: str) -> Fn:
        fn: Fn = getattr(self, op)
        return fn

    async def publish(self, c: Any, n: int) -> Elapsed:
        tracer, nc, subject, attrs = self.tracer, c.nc, self.subject, self.publish_attrs
        name = f"publish {subject}"
        t0 = clock()
        for _ in range(n):
            with tracer.start_as_current_span(
                name, kind=SpanKind.PRODUCER, attributes={**attrs, "messaging.message.body.size": len(PAYLOAD)}
            ):
                headers: dict[str, str] = {}
                inject(headers)
                await nc.publish(subject, PAYLOAD, headers=headers)
        await nc.flush()
        return since(t0)

    async def publish_with_metrics(self, c: Any, n: int) -> Elapsed:
        tracer, nc, subject, attrs, mattrs = self.tracer, c.nc, self.subject, self.publish_attrs, self.metric_attrs
        duration, sent, sent_bytes = self.duration, self.sent, self.sent_bytes
        name = f"publish {subject}"
        t0 = clock()
        for _ in range(n):
            start = time.perf_counter()
            with tracer.start_as_current_span(
                name, kind=SpanKind.PRODUCER, attributes={**attrs, "messaging.message.body.size": len(PAYLOAD)}
            ):
                headers: dict[str, str] = {}
                inject(headers)
                await nc.publish(subject, PAYLOAD, headers=headers)
            duration.record(time.perf_counter() - start, mattrs)
            sent.add(1, mattrs)
            sent_bytes.add(len(PAYLOAD), mattrs)
        await nc.flush()
        return since(t0)

    async def traced_request(self, c: Any, subject: str, name: str, attrs: dict[str, Any]) -> None:
        """One traced request (``name`` and ``attrs``: built once per subject)."""
        with self.tracer.start_as_current_span(
            name, kind=SpanKind.CLIENT, attributes={**attrs, "messaging.message.body.size": len(PAYLOAD)}
        ) as span:
            headers: dict[str, str] = {}
            inject(headers)
            resp = await c.nc.request(subject, PAYLOAD, timeout=5, headers=headers)
            span.set_attribute("messaging.nats.response.body.size", len(resp.data))

    async def reply(self, sc: Any, msg: Any) -> None:
        """The traced reply a responder sends (a child of the current span)."""
        with self.tracer.start_as_current_span(
            "publish",
            kind=SpanKind.PRODUCER,
            attributes={
                **self.reply_attrs,
                "messaging.destination.name": msg.reply,
                "messaging.message.body.size": len(RESPONSE),
            },
        ):
            headers: dict[str, str] = {}
            inject(headers)
            await sc.publish(msg.reply, RESPONSE, headers=headers)

    async def js_publish(self, c: Any, n: int) -> Elapsed:
        tracer, js, subject, attrs, sequence = self.tracer, c.js, self.js_subject, self.js_attrs, self.ack_sequence
        name = f"publish {subject}"

        async def one() -> None:
            with tracer.start_as_current_span(
                name, kind=SpanKind.PRODUCER, attributes={**attrs, "messaging.message.body.size": len(PAYLOAD)}
            ) as span:
                headers: dict[str, str] = {}
                inject(headers)
                ack = await js.publish(subject, PAYLOAD, headers=headers)
                span.set_attributes(
                    {
                        "messaging.nats.jetstream.stream": ack.stream,
                        "messaging.nats.jetstream.sequence": getattr(ack, sequence),
                        "messaging.nats.jetstream.duplicate": bool(ack.duplicate),
                    }
                )

        for _ in range(c.round_trip_warmup):
            await one()
        t0 = clock()
        for _ in range(n):
            await one()
        return since(t0)


# --- fairness check -------------------------------------------------------------------------------

# Attributes whose values differ per message or per subscription: compared by key only.
VOLATILE = frozenset(
    {
        "messaging.nats.reply_to",
        "messaging.nats.delivered_messages",
        "messaging.nats.pending_messages",
        "messaging.nats.subscription.id",
        "messaging.nats.jetstream.sequence",
    }
)


def _block(value: Any) -> Any:
    """Blocks publish to subjects of their own (``bench.callback.17``): compare them as one."""
    return re.sub(r"^((?:\w+ )?bench\.[\w.]+?)\.\d+$", r"\1.<block>", value) if isinstance(value, str) else value


def shapes(spans: Sequence[ReadableSpan]) -> set[str]:
    """The kinds of span made: ``name kind parent-name links attributes`` (volatile values masked).

    A set: how many of each depends on the readiness probes (see :func:`until_delivered`), and
    failed probes are left out."""
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    out = []
    for s in spans:
        if not s.status.is_ok:  # a readiness probe that found no responder yet
            continue
        attrs = {}
        for k, v in (s.attributes or {}).items():
            volatile = k in VOLATILE or (k == "messaging.destination.name" and str(v).startswith("_INBOX."))
            attrs[k] = "<var>" if volatile else _block(v)
        parent = by_id.get(s.parent.span_id) if s.parent is not None else None
        parent_name = _block(parent.name) if parent else None
        linked = [by_id.get(link.context.span_id) for link in s.links]
        links = [_block(target.name) if target else "?" for target in linked]
        out.append(f"{_block(s.name)} {s.kind.name} parent={parent_name} links={links} {sorted(attrs.items())}")
    return set(out)


def metric_points(reader: InMemoryMetricReader) -> list[str]:
    """The per-operation metric streams (histograms, counters; not the observable gauges and
    up-down counters, which are read from connection state on collection)."""
    data = reader.get_metrics_data()
    out = []
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if not isinstance(m.data, Histogram) and not (isinstance(m.data, Sum) and m.data.is_monotonic):
                    continue
                for p in m.data.data_points:
                    out.append(f"{m.name} {m.unit} {sorted((p.attributes or {}).items())}")
    return sorted(out)


MakeHand = Callable[[Tracer, "Meter | None"], HandWrittenBase]  # a family's hand-written code


def add_sdk_paths(
    worker: Worker,
    c: Any,
    hand: MakeHand,
    plain: dict[str, Fn],
    patched: Collection[str],
    ratio_operations: Collection[str] = (),
) -> None:
    """The SDK worker's paths: ``{off,on}.hand.{op}`` and ``metrics.hand.publish`` (the family's
    hand-written code, ``hand``), and the instrumented ``{off,on}.inst.{op}`` and ``metrics.inst.publish``
    for the ``patched`` operations (the plain paths, ``plain``, instrumented around the block); for
    ``ratio_operations`` also ``ratio.{hand,inst}.{op}``. Samplers: ``off`` always off; ``on``
    everything, batched to a discarding exporter; ``ratio`` ``ParentBased(TraceIdRatioBased(0.01))``,
    the usual production sampler. The sampling providers are flushed before the clocks stop, so that
    a block's spans are exported in the block."""
    tps = {"off": TracerProvider(sampler=ALWAYS_OFF), "on": TracerProvider()}
    if ratio_operations:
        tps["ratio"] = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.01)))
    for sampling, tp in tps.items():
        if sampling != "off":
            tp.add_span_processor(BatchSpanProcessor(DiscardExporter()))
            BEFORE_STOP.append(tp.force_flush)
    mp = MeterProvider(metric_readers=[InMemoryMetricReader()])
    hands = {sampling: hand(tp.get_tracer("bench.hand"), None) for sampling, tp in tps.items()}
    for op in plain:
        for sampling, tp in tps.items():
            if sampling == "ratio" and op not in ratio_operations:
                continue
            worker.paths[f"{sampling}.hand.{op}"] = block(c, hands[sampling].path(op), op)
            if op in patched:
                worker.paths[f"{sampling}.inst.{op}"] = instrumented(block(c, plain[op], op), tracer_provider=tp)
    metrics_hand = hand(tps["on"].get_tracer("bench.hand"), mp.get_meter("bench.hand"))
    worker.paths["metrics.hand.publish"] = block(c, metrics_hand.publish_with_metrics, "publish")
    if "publish" in patched:
        worker.paths["metrics.inst.publish"] = instrumented(
            block(c, plain["publish"], "publish"), tracer_provider=tps["on"], meter_provider=mp
        )


async def check_equivalence(family: str, c: Any, hand: MakeHand, plain: dict[str, Fn], patched: Sequence[str]) -> None:
    """Fail unless each hand-written path makes the same spans (names, kinds, parents, links,
    attributes) as the instrumented one, for the ``patched`` operations; and, when publish is among
    them, the metrics path the same metric streams."""
    for op in patched:
        exported: list[set[str]] = []
        for mode in ("hand", "inst"):
            exporter = InMemorySpanExporter()
            tp = TracerProvider()
            tp.add_span_processor(SimpleSpanProcessor(exporter))
            if mode == "hand":
                await hand(tp.get_tracer("bench.hand"), None).path(op)(c, 3)
            else:
                await instrumented(block(c, plain[op], op), tracer_provider=tp)(3)
            await asyncio.sleep(0.05)
            exported.append(shapes(exporter.get_finished_spans()))
        if not exported[0]:
            raise SystemExit(f"the equivalence check of {family} {op} saw no spans")
        if exported[0] != exported[1]:
            only_hand, only_inst = sorted(exported[0] - exported[1]), sorted(exported[1] - exported[0])
            raise SystemExit(
                f"hand-written {family} {op} is not equivalent:\nonly hand {only_hand}\nonly inst {only_inst}"
            )
    if "publish" not in patched:
        return
    points = []
    for mode in ("hand", "inst"):
        reader = InMemoryMetricReader()
        mp = MeterProvider(metric_readers=[reader])
        tp = TracerProvider()
        if mode == "hand":
            await hand(tp.get_tracer("bench.hand"), mp.get_meter("bench.hand")).publish_with_metrics(c, 3)
        else:
            await instrumented(block(c, plain["publish"], "publish"), tracer_provider=tp, meter_provider=mp)(3)
        points.append(metric_points(reader))
    if points[0] != points[1]:
        raise SystemExit(f"hand-written {family} metrics are not equivalent:\nhand {points[0]}\ninst {points[1]}")
