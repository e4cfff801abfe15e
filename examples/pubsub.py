"""Publish-subscribe: one publisher, one subscriber, one trace.

How it is traced: in code. ``NatsInstrumentor().instrument(tracer_provider=...)`` with a
``ConsoleSpanExporter`` that prints one line per span:
``<span name> <KIND> trace=<trace id> span=<span id> parent=<parent span id or ->``.

Run it against any nats-server (``nats-server -a 127.0.0.1`` starts one on port 4222)::

    NATS_URL=nats://127.0.0.1:4222 python examples/pubsub.py

It prints a line per span as the span ends, for example (ids shortened)::

    publish greetings.hello  PRODUCER trace=02f7...7e96 span=cc56...5ce7 parent=-
    subscriber got 'hello, world' on greetings.hello
    process greetings.hello  CONSUMER trace=02f7...7e96 span=7084...f677 parent=cc56...5ce7

The publish span is made by ``Client.publish``; its context travels in the message headers
(``traceparent``), and the subscriber's ``process`` span - made around your callback - continues
that trace. Neither the publisher nor the callback contains tracing code.
"""

from __future__ import annotations

import asyncio
import os

import nats
from nats.aio.msg import Msg
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from opentelemetry.instrumentation.nats import NatsInstrumentor

NATS_URL = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")


def span_line(span: ReadableSpan) -> str:
    """One compact line per span instead of the console exporter's JSON."""
    parent = f"{span.parent.span_id:016x}" if span.parent else "-"
    ids = f"trace={span.context.trace_id:032x} span={span.context.span_id:016x} parent={parent}"
    return f"{span.name:<24} {span.kind.name:<8} {ids}\n"


async def main() -> None:
    subscriber = await nats.connect(NATS_URL, name="subscriber")
    publisher = await nats.connect(NATS_URL, name="publisher")
    received = asyncio.Event()

    async def on_greeting(msg: Msg) -> None:
        print(f"subscriber got {msg.data.decode()!r} on {msg.subject}", flush=True)
        received.set()

    await subscriber.subscribe("greetings.hello", cb=on_greeting)
    # Make sure the server has the subscription before the other connection publishes: let
    # nats-py's flusher send the SUB, then wait for the server's PONG.
    await asyncio.sleep(0)
    await subscriber.flush()

    await publisher.publish("greetings.hello", b"hello, world")
    await asyncio.wait_for(received.wait(), timeout=5)

    await publisher.drain()
    await subscriber.drain()  # waits for the callback to return, so its span has ended


if __name__ == "__main__":
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(formatter=span_line)))
    NatsInstrumentor().instrument(tracer_provider=provider)
    asyncio.run(main())
    provider.shutdown()
