"""A creation context the caller already put in the headers is kept (semconv 1.44), through what only
nats-py has: ``JetStreamContext.publish_async``. (Every family: tests/matrix/test_creation_context.py.)"""

from __future__ import annotations

import uuid
from typing import Any

from opentelemetry.trace import SpanKind

from tests.helpers import (
    CALLER_IDS,
    CALLER_TRACEPARENT,
    by_name,
    link_ids,
    wait_spans,
)


async def test_jetstream_publish_async_keeps_the_callers_context(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js = nc.jetstream()
    subject = f"keep{uuid.uuid4().hex[:8]}"
    stream = subject.upper()
    await js.add_stream(name=stream, subjects=[subject])
    psub = await js.pull_subscribe(subject, durable="d")
    telemetry.clear()
    headers = {"traceparent": CALLER_TRACEPARENT, "tracestate": "vendor=theirs", "X-App": "js"}
    ack = await (await js.publish_async(subject, b"stored", headers=headers))
    (msg,) = await psub.fetch(1, timeout=5)
    assert msg.headers == {"traceparent": CALLER_TRACEPARENT, "tracestate": "vendor=theirs", "X-App": "js"}
    spans = await wait_spans(telemetry, 2)
    publish = by_name(spans, f"publish {subject}")
    assert (publish.kind, publish.parent) == (SpanKind.CLIENT, None)
    assert link_ids(publish) == [CALLER_IDS]
    assert publish.attributes["messaging.nats.jetstream.sequence"] == ack.seq
    assert link_ids(by_name(spans, f"fetch {stream}")) == [CALLER_IDS]
