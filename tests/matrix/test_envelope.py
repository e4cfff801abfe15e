"""The JSON envelope ``{"traceparent", "tracestate", "data"}`` on each client family: interop with
services that carry the trace context in it (hand-written instrumentation, no headers), through
``envelope_subjects``. (The wrap/unwrap helpers themselves: tests/test_envelope.py.)"""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, get_current_span

from opentelemetry import propagate, trace
from opentelemetry.instrumentation.nats import message_context, wrap_envelope
from tests.families import Conn, Family
from tests.helpers import assert_child, assert_links, by_name, wait_spans
from tests.matrix.expect import PROCESS, wait_for

FOREIGN = (0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331)


def _ids(ctx: Any) -> tuple[int, int]:
    span_ctx = get_current_span(ctx).get_span_context()
    return span_ctx.trace_id, span_ctx.span_id


async def _envelope_publish(conn: Conn, tracer: Any, subject: str, data: dict[str, Any]) -> tuple[Any, bytes]:
    """Hand-written tracing with an envelope: its own span, the context in a JSON envelope, no headers."""
    with tracer.start_as_current_span("nats.publish", kind=SpanKind.PRODUCER) as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        message = {"traceparent": carrier.get("traceparent"), "tracestate": carrier.get("tracestate"), "data": data}
        payload = json.dumps(message).encode()
        with suppress_instrumentation():  # an uninstrumented publisher
            await conn.publish(subject, payload)
    return span, payload


async def test_consumer_span_continues_a_hand_written_envelope_trace(
    make_telemetry: Any, server: Any, family: Family
) -> None:
    telemetry = make_telemetry(envelope_subjects=["legacy.>"])
    publisher = await family.connect(server)
    consumer = await family.connect(server)
    got: list[Any] = []
    sub = await consumer.on("legacy.orders", lambda msg: got.append((msg, get_current_span().get_span_context())))
    pull = await consumer.subscribe("legacy.>")
    hand_span, payload = await _envelope_publish(
        publisher, telemetry.tracer_provider.get_tracer("hand-written-app"), "legacy.orders", {"id": 7}
    )
    await wait_for(lambda: got)
    (msg, current), received = got[0], await consumer.next_message(pull)
    spans = await wait_spans(telemetry, 3)
    assert sorted(s.name for s in spans) == ["nats.publish", "process legacy.orders", "receive legacy.>"]
    producer = by_name(spans, "nats.publish")
    process = by_name(spans, "process legacy.orders")
    receive = by_name(spans, "receive legacy.>")
    assert producer.context.span_id == hand_span.get_span_context().span_id
    assert_child(process, producer)
    assert_links(process, producer)
    # a receive span is in the caller's context (here none: a root) and links to the envelope's context
    assert (receive.kind, receive.parent) == (SpanKind.CLIENT, None)
    assert receive.context.trace_id != producer.context.trace_id
    assert_links(receive, producer)
    assert process.kind == SpanKind.CONSUMER
    assert current.span_id == process.context.span_id  # the callback runs inside the process span
    # the application gets the message exactly as published
    for m in (msg, received):
        assert (m.data, m.headers) == (payload, None)
    assert dict(process.attributes) == {
        **PROCESS,
        "messaging.destination.name": "legacy.orders",
        "messaging.message.body.size": len(payload),
        **family.callback_sub_attrs(sub, 1),
        **family.conn_attrs(consumer),
    }
    assert _ids(message_context(received)) == (producer.context.trace_id, producer.context.span_id)


async def test_envelope_subjects_from_environment_and_link_mode(
    make_telemetry: Any, server: Any, family: Family, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_NATS_ENVELOPE_SUBJECTS", "envelope.*")
    telemetry = make_telemetry(consumer_parent="link")
    conn = await family.connect(server)
    sub = await conn.subscribe("envelope.events")
    hand_span, _ = await _envelope_publish(
        conn, telemetry.tracer_provider.get_tracer("hand-written-app"), "envelope.events", {}
    )
    msg = await conn.next_message(sub)
    spans = await wait_spans(telemetry, 2)
    receive = by_name(spans, "receive envelope.events")
    producer = (hand_span.get_span_context().trace_id, hand_span.get_span_context().span_id)
    assert receive.parent is None
    assert [(link.context.trace_id, link.context.span_id) for link in receive.links] == [producer]
    # message_context() gives the producer context in link mode too
    assert _ids(message_context(msg)) == producer


async def test_envelopes_are_ignored_outside_envelope_subjects(
    make_telemetry: Any, server: Any, family: Family
) -> None:
    telemetry = make_telemetry(envelope_subjects=["legacy.>"])
    conn = await family.connect(server)
    sub = await conn.subscribe("modern.orders")
    await _envelope_publish(conn, telemetry.tracer_provider.get_tracer("hand-written-app"), "modern.orders", {"id": 1})
    msg = await conn.next_message(sub)
    spans = await wait_spans(telemetry, 2)
    receive = by_name(spans, "receive modern.orders")
    assert (receive.parent, tuple(receive.links)) == (None, ())
    assert receive.context.trace_id != by_name(spans, "nats.publish").context.trace_id
    assert message_context(msg) == {}


async def test_headers_win_over_an_envelope(make_telemetry: Any, server: Any, family: Family) -> None:
    telemetry = make_telemetry(envelope_subjects=[">"])
    conn = await family.connect(server)
    sub = await conn.subscribe("both.ctx")
    foreign = SpanContext(*FOREIGN, is_remote=False, trace_flags=TraceFlags(1))
    payload = wrap_envelope({"id": 1}, trace.set_span_in_context(NonRecordingSpan(foreign)))  # a foreign trace …
    await conn.publish("both.ctx", payload)  # … and the instrumented publish's context in the headers
    msg = await conn.next_message(sub)
    publish, receive = await wait_spans(telemetry, 2)
    assert (publish.name, receive.name) == ("publish both.ctx", "receive both.ctx")
    assert receive.parent is None
    assert_links(receive, publish)
    assert msg.data == payload
