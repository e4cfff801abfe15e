"""Migration: services still using the hand-written JSON envelope and instrumented ones share a trace.

How it is traced: in code. ``NatsInstrumentor().instrument(tracer_provider=...,
envelope_subjects=["billing.>"])`` with a ``ConsoleSpanExporter`` that prints one line per span:
``<span name> <KIND> trace=<trace id> span=<span id> parent=<parent or ->``.

Run it against any nats-server::

    NATS_URL=nats://127.0.0.1:4222 python examples/envelope_migration.py

Hand-written NATS instrumentation often carries the trace context inside the payload, as a JSON
envelope ``{"traceparent": ..., "tracestate": ..., "data": ...}``, with hand-made ``nats.publish`` /
``nats.receive`` spans. During a migration some services still do that. Here:

1. a legacy publisher (hand-written instrumentation, not upgraded yet) sends an envelope on
   ``billing.invoice`` - no headers, its own ``nats.publish`` span;
2. an upgraded service gets it: ``envelope_subjects=["billing.>"]`` lets its ``process
   billing.invoice`` span take the producer's context from the envelope (the payload is handed to
   the callback unchanged; ``unwrap_envelope`` reads it). It answers on ``billing.receipt``
   with ``wrap_envelope(...)`` as the payload, so that
3. a legacy consumer, which reads the context from the envelope only, continues the same trace
   with its hand-made ``nats.receive`` span.

One trace::

    nats.publish                     PRODUCER  legacy publisher (hand-made span, envelope)
      process billing.invoice        CONSUMER  upgraded service, parent from the envelope
        publish billing.receipt      PRODUCER  upgraded service (context also in the headers)
        nats.receive                 CONSUMER  legacy consumer, parent from the envelope

``nats.receive`` is a child of the process span, not of the publish span: ``wrap_envelope()``
takes the current context when it is called, before ``publish`` starts its span (the headers,
which instrumented consumers read first, carry the publish span).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from typing import Any

import nats
from nats.aio.msg import Msg
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from opentelemetry import propagate, trace
from opentelemetry.instrumentation.nats import NatsInstrumentor, unwrap_envelope, wrap_envelope

NATS_URL = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")

tracer = trace.get_tracer("examples.envelope_migration")


def span_line(span: ReadableSpan) -> str:
    """One compact line per span instead of the console exporter's JSON."""
    parent = f"{span.parent.span_id:016x}" if span.parent else "-"
    ids = f"trace={span.context.trace_id:032x} span={span.context.span_id:016x} parent={parent}"
    return f"{span.name:<24} {span.kind.name:<8} {ids}\n"


# --- legacy code: hand-written instrumentation with a JSON envelope, shortened ------------------


async def legacy_publish(nc: nats.NATS, subject: str, data: dict[str, object]) -> None:
    with tracer.start_as_current_span("nats.publish", kind=SpanKind.PRODUCER):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        message = {"traceparent": carrier.get("traceparent"), "tracestate": carrier.get("tracestate"), "data": data}
        await nc.publish(subject, json.dumps(message).encode())


async def legacy_subscribe(nc: nats.NATS, subject: str, handler: Callable[[Any], None]) -> None:
    async def message_handler(msg: Msg) -> None:
        message = json.loads(msg.data.decode())
        ctx = propagate.extract({"traceparent": message.get("traceparent"), "tracestate": message.get("tracestate")})
        with tracer.start_as_current_span("nats.receive", context=ctx, kind=SpanKind.CONSUMER):
            handler(message["data"])

    await nc.subscribe(subject, cb=message_handler)


# --- the upgraded service: no tracing code; the payload on billing.receipt stays an envelope ----


async def main() -> None:
    legacy = await nats.connect(NATS_URL, name="legacy-services")
    upgraded = await nats.connect(NATS_URL, name="billing-service")
    received = asyncio.Event()

    def on_receipt(receipt: Any) -> None:
        print(f"legacy consumer got receipt {receipt}", flush=True)
        received.set()

    async def bill(msg: Msg) -> None:
        _, invoice = unwrap_envelope(msg.data)  # (producer context, data); the context is on our span already
        print(f"billing service got invoice {invoice}", flush=True)
        await upgraded.publish("billing.receipt", wrap_envelope({"invoice": invoice["id"], "paid": True}))

    await upgraded.subscribe("billing.invoice", cb=bill)
    with suppress_instrumentation():  # stands in for a service that does not use this package yet
        await legacy_subscribe(legacy, "billing.receipt", on_receipt)
    for nc in (upgraded, legacy):
        await asyncio.sleep(0)  # let nats-py's flusher send the SUB ...
        await nc.flush()  # ... and wait until the server has it

    with suppress_instrumentation():
        await legacy_publish(legacy, "billing.invoice", {"id": 7, "amount": 42})
    await asyncio.wait_for(received.wait(), timeout=5)

    await upgraded.drain()
    await legacy.drain()


if __name__ == "__main__":
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(formatter=span_line)))
    trace.set_tracer_provider(provider)  # for the legacy code's hand-made spans
    NatsInstrumentor().instrument(tracer_provider=provider, envelope_subjects=["billing.>"])
    asyncio.run(main())
    provider.shutdown()
