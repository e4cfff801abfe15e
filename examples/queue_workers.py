"""Queue-group worker pool: three workers share the jobs; a hook tags each span with its worker.

How it is traced: in code. ``NatsInstrumentor().instrument(tracer_provider=..., consume_hook=...)``
with a ``ConsoleSpanExporter`` that prints one line per span:
``<span name> <KIND> trace=<trace id> span=<span id> parent=<parent or -> [worker.id=<n>]``.

Run it against any nats-server::

    NATS_URL=nats://127.0.0.1:4222 python examples/queue_workers.py

Three subscriptions in the queue group ``resizers`` share the subject ``images.resize``: the server
hands each message to one of them. Every job is its own trace: ``publish images.resize``
(PRODUCER) and, as its child, the ``process images.resize`` span (CONSUMER) of the worker that got
it. ``consume_hook`` is called with each process span before the callback runs; here it adds the
worker's number as ``messaging.nats.worker.id``, the attribute a hand-written worker pool
typically sets. The queue group is on the span already, as
``messaging.consumer.group.name``.
"""

from __future__ import annotations

import asyncio
import os

import nats
from nats.aio.msg import Msg
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.trace import Span

from opentelemetry.instrumentation.nats import NatsInstrumentor

NATS_URL = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
WORKERS = 3
JOBS = 6

# The subscription id (the ``sid`` every message carries) of each worker's subscription.
worker_of_sid: dict[int, int] = {}


def add_worker_id(span: Span, msg: Msg) -> None:
    """consume_hook: runs on each process span, before the worker's callback."""
    worker = worker_of_sid.get(msg.sid)
    if worker is not None:
        span.set_attribute("messaging.nats.worker.id", worker)


def span_line(span: ReadableSpan) -> str:
    """One compact line per span instead of the console exporter's JSON."""
    parent = f"{span.parent.span_id:016x}" if span.parent else "-"
    ids = f"trace={span.context.trace_id:032x} span={span.context.span_id:016x} parent={parent}"
    worker = (span.attributes or {}).get("messaging.nats.worker.id")
    return f"{span.name:<22} {span.kind.name:<8} {ids}" + (f" worker.id={worker}" if worker is not None else "") + "\n"


async def main() -> None:
    pool = await nats.connect(NATS_URL, name="worker-pool")
    producer = await nats.connect(NATS_URL, name="producer")
    done: asyncio.Queue[str] = asyncio.Queue()

    for worker_id in range(1, WORKERS + 1):

        async def resize(msg: Msg, worker_id: int = worker_id) -> None:
            print(f"worker {worker_id} resized {msg.data.decode()}", flush=True)
            await done.put(msg.data.decode())

        sub = await pool.subscribe("images.resize", queue="resizers", cb=resize)
        worker_of_sid[sub._id] = worker_id  # nats-py keeps a subscription's sid in ``_id``
    await asyncio.sleep(0)  # let nats-py's flusher send the SUBs ...
    await pool.flush()  # ... and wait until the server has them

    for n in range(1, JOBS + 1):
        await producer.publish("images.resize", f"image-{n}.png".encode())
    for _ in range(JOBS):
        await asyncio.wait_for(done.get(), timeout=5)

    await producer.drain()
    await pool.drain()  # waits for the callbacks to return, so every span has ended


if __name__ == "__main__":
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(formatter=span_line)))
    NatsInstrumentor().instrument(tracer_provider=provider, consume_hook=add_worker_id)
    asyncio.run(main())
    provider.shutdown()
