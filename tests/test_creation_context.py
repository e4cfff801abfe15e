"""A creation context the caller already put in the headers is kept (semconv 1.44), through what only
nats-py has: ``JetStreamContext.publish_async``. (Every family: tests/matrix/test_creation_context.py.)"""

from __future__ import annotations

import uuid
from typing import Any

from opentelemetry.trace import SpanKind

from tests.helpers import by_name, wait_spans

TRACE_HEX = "0af7651916cd43dd8448eb211c80319c"
SPAN_HEX = "b7ad6b7169203331"
TP = f"00-{TRACE_HEX}-{SPAN_HEX}-01"
CALLER = (int(TRACE_HEX, 16), int(SPAN_HEX, 16))


def _links(span: Any) -> list[tuple[int, int]]:
    return [(link.context.trace_id, link.context.span_id) for link in span.links]


async def test_jetstream_publish_async_keeps_the_callers_context(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js = nc.jetstream()
    subject = f"keep{uuid.uuid4().hex[:8]}"
    stream = subject.upper()
    await js.add_stream(name=stream, subjects=[subject])
    psub = await js.pull_subscribe(subject, durable="d")
    telemetry.clear()
    headers = {"traceparent": TP, "tracestate": "vendor=theirs", "X-App": "js"}
    ack = await (await js.publish_async(subject, b"stored", headers=headers))
    (msg,) = await psub.fetch(1, timeout=5)
    assert msg.headers == {"traceparent": TP, "tracestate": "vendor=theirs", "X-App": "js"}
    spans = await wait_spans(telemetry, 2)
    publish = by_name(spans, f"publish {subject}")
    assert (publish.kind, publish.parent) == (SpanKind.CLIENT, None)
    assert _links(publish) == [CALLER]
    assert publish.attributes["messaging.nats.jetstream.sequence"] == ack.seq
    assert _links(by_name(spans, f"fetch {stream}")) == [CALLER]
