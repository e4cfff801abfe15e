"""JetStream: a producer stores orders in a stream; a pull consumer fetches, processes and acks them.

How it is traced: in code. ``NatsInstrumentor().instrument(tracer_provider=...)`` with a
``ConsoleSpanExporter`` that prints one line per span:
``<span name> <KIND> trace=<trace id> span=<span id> parent=<parent or -> [links=<span ids>]``.

Run it against a JetStream-enabled nats-server (``nats-server -js``)::

    NATS_URL=nats://127.0.0.1:4222 python examples/jetstream_pull.py

What you get:

- ``publish orders.placed`` (PRODUCER) for each ``js.publish``, with the stream's answer on it
  (``messaging.nats.jetstream.stream``, ``.sequence``, ``.duplicate``; ``Nats-Msg-Id`` becomes
  ``messaging.message.id``). The trace context is stored with the message, in its headers.
- ``fetch ORDERS`` (CLIENT) for ``psub.fetch``: one span for the batch, in the consumer's own
  trace, with a link to the publish span of each message it returned.
- ``process orders.placed`` (CONSUMER): the processing span this program makes itself, parented
  on the producer with ``message_context(msg)`` - so each order's trace runs from its publish to
  its processing, however long it sat in the stream.
- ``ack ORDERS`` (CLIENT) for ``msg.ack()``, a child of the processing span (the current span),
  with a link to the order's publish span (without a current span it would be that span's child).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os

import nats
from nats.js.errors import NotFoundError
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from opentelemetry import trace
from opentelemetry.instrumentation.nats import NatsInstrumentor, message_context

NATS_URL = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
STREAM = "ORDERS"

tracer = trace.get_tracer("examples.jetstream_pull")


def span_line(span: ReadableSpan) -> str:
    """One compact line per span instead of the console exporter's JSON."""
    parent = f"{span.parent.span_id:016x}" if span.parent else "-"
    ids = f"trace={span.context.trace_id:032x} span={span.context.span_id:016x} parent={parent}"
    links = ",".join(f"{link.context.span_id:016x}" for link in span.links)
    return f"{span.name:<22} {span.kind.name:<8} {ids}" + (f" links={links}" if links else "") + "\n"


async def main() -> None:
    nc = await nats.connect(NATS_URL, name="orders")
    js = nc.jetstream()
    with contextlib.suppress(NotFoundError):
        await js.delete_stream(STREAM)  # start from an empty stream
    await js.add_stream(name=STREAM, subjects=["orders.placed"])

    # The producer: each order is stored in the stream, with the trace context in its headers.
    for order_id in (1, 2):
        order = json.dumps({"id": order_id, "total": 10 * order_id}).encode()
        ack = await js.publish("orders.placed", order, headers={"Nats-Msg-Id": f"order-{order_id}"})
        print(f"stored order {order_id} as {ack.stream} #{ack.seq}", flush=True)

    # The consumer: a durable pull consumer fetches a batch, processes each message under the
    # producer's context and acks it.
    psub = await js.pull_subscribe("orders.placed", durable="billing")
    for msg in await psub.fetch(2, timeout=5):
        producer = message_context(msg)  # the context the producer stored with the message
        with tracer.start_as_current_span(f"process {msg.subject}", context=producer, kind=SpanKind.CONSUMER):
            order = json.loads(msg.data)
            print(f"billed order {order['id']}: {order['total']}", flush=True)
            await msg.ack()

    await js.delete_stream(STREAM)
    await nc.drain()


if __name__ == "__main__":
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(formatter=span_line)))
    trace.set_tracer_provider(provider)  # for this program's own processing spans
    NatsInstrumentor().instrument(tracer_provider=provider)
    asyncio.run(main())
    provider.shutdown()
