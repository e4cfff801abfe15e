"""The JSON envelope ``{"traceparent", "tracestate", "data"}``: wrap/unwrap helpers and interop with services
that carry the trace context in it (hand-written instrumentation, no headers)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState, get_current_span

from opentelemetry import propagate, trace
from opentelemetry.instrumentation.nats import message_context, unwrap_envelope, wrap_envelope
from tests.helpers import assert_child, assert_links, by_name, conn_attrs, synced, wait_spans

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0xB7AD6B7169203331
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _context(tracestate: TraceState | None = None) -> Any:
    span_ctx = SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=TraceFlags(1), trace_state=tracestate)
    return trace.set_span_in_context(NonRecordingSpan(span_ctx))


def _span_context(ctx: Any) -> SpanContext:
    return get_current_span(ctx).get_span_context()


# --- helpers ---------------------------------------------------------------------------------------


def test_wrap_envelope_writes_the_seed_form() -> None:
    payload = wrap_envelope({"order": 7}, _context(TraceState([("vendor", "value")])))
    assert json.loads(payload) == {"traceparent": TRACEPARENT, "tracestate": "vendor=value", "data": {"order": 7}}
    assert json.loads(wrap_envelope(b"text", _context())) == {"traceparent": TRACEPARENT, "data": "text"}


def test_wrap_envelope_uses_the_current_context_by_default(telemetry: Any) -> None:
    with telemetry.tracer_provider.get_tracer("t").start_as_current_span("outer") as span:
        payload = wrap_envelope([1, 2])
    ctx, data = unwrap_envelope(payload)
    assert data == [1, 2]
    assert ctx is not None
    assert (_span_context(ctx).trace_id, _span_context(ctx).span_id) == (
        span.get_span_context().trace_id,
        span.get_span_context().span_id,
    )
    assert _span_context(ctx).is_remote


def test_wrap_envelope_without_a_span_has_only_data() -> None:
    payload = wrap_envelope({"a": 1}, context=trace.set_span_in_context(trace.INVALID_SPAN))
    assert json.loads(payload) == {"data": {"a": 1}}
    assert unwrap_envelope(payload) == (None, {"a": 1})


def test_wrap_envelope_rejects_data_that_is_not_json() -> None:
    with pytest.raises(TypeError):
        wrap_envelope(object(), _context())


def test_unwrap_envelope_round_trip_with_tracestate() -> None:
    ctx, data = unwrap_envelope(wrap_envelope({"k": "v"}, _context(TraceState([("vendor", "value")]))))
    assert data == {"k": "v"}
    assert ctx is not None
    span_ctx = _span_context(ctx)
    assert (span_ctx.trace_id, span_ctx.span_id, span_ctx.trace_state.get("vendor")) == (TRACE_ID, SPAN_ID, "value")


@pytest.mark.parametrize(
    "payload",
    [
        b'{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "data": ',  # truncated
        b"{not json}",
        b"{\xff\xfe}",  # not UTF-8
        b"plain text",
        b"\x00\x01binary",
        b"",
        b"[1, 2]",
        b'"a string"',
        b"42",
        b"null",
        b'{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}',  # no data
        b'{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "data": 1, "id": 2}',
        b'{"payload": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}',
        b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # nested too deeply for the JSON decoder
        None,
        12,
        {"traceparent": TRACEPARENT, "data": 1},  # not a payload at all
    ],
)
def test_unwrap_envelope_of_a_non_envelope_is_no_context_and_the_payload(payload: Any) -> None:
    ctx, data = unwrap_envelope(payload)
    assert ctx is None
    assert data is payload


@pytest.mark.parametrize(
    ("payload", "data"),
    [
        (b'{"data": {"x": 1}}', {"x": 1}),  # no traceparent
        (b'{"traceparent": null, "tracestate": null, "data": 1}', 1),  # hand-written code without a span
        (b'{"traceparent": "garbage", "data": "d"}', "d"),
        (b'{"traceparent": "00-00000000000000000000000000000000-0000000000000000-01", "data": 3}', 3),
        (b'{"traceparent": 5, "data": null}', None),
        ('{"traceparent": "00-xyz", "data": [1]}', [1]),  # str payloads work too
    ],
)
def test_unwrap_envelope_without_a_valid_context_gives_the_data(payload: Any, data: Any) -> None:
    assert unwrap_envelope(payload) == (None, data)


def test_unwrap_envelope_accepts_whitespace_and_str() -> None:
    text = "  \n " + json.dumps({"traceparent": TRACEPARENT, "tracestate": None, "data": {"id": 1}})
    for payload in (text, text.encode(), bytearray(text.encode()), memoryview(text.encode())):
        ctx, data = unwrap_envelope(payload)
        assert data == {"id": 1}
        assert ctx is not None and (_span_context(ctx).trace_id, _span_context(ctx).span_id) == (TRACE_ID, SPAN_ID)


# --- an uninstrumented publisher with hand-written tracing and a JSON envelope -----------------


async def _envelope_publish(nc: Any, tracer: Any, subject: str, data: dict[str, Any]) -> tuple[Any, bytes]:
    """Hand-written tracing with an envelope: its own span, the context in a JSON envelope, no headers."""
    with tracer.start_as_current_span("nats.publish", kind=SpanKind.PRODUCER) as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        message = {"traceparent": carrier.get("traceparent"), "tracestate": carrier.get("tracestate"), "data": data}
        payload = json.dumps(message).encode()
        with suppress_instrumentation():  # an uninstrumented publisher
            await nc.publish(subject, payload)
    return span, payload


async def test_consumer_span_continues_a_hand_written_envelope_trace(
    make_telemetry: Any, server: Any, connect: Any
) -> None:
    telemetry = make_telemetry(envelope_subjects=["legacy.>"])
    publisher = await connect(server.url)
    consumer = await connect(server.url)
    got: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(msg: Any) -> None:
        await got.put((msg, get_current_span().get_span_context()))

    await consumer.subscribe("legacy.orders", cb=handler)
    pull = await consumer.subscribe("legacy.>")
    await synced(consumer)
    hand_span, payload = await _envelope_publish(
        publisher, telemetry.tracer_provider.get_tracer("hand-written-app"), "legacy.orders", {"id": 7}
    )
    msg, current = await asyncio.wait_for(got.get(), 5)
    received = await pull.next_msg(timeout=5)
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
        "messaging.system.name": "nats",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "legacy.orders",
        "messaging.message.body.size": len(payload),
        "messaging.nats.subscription.id": str(msg.sid),
        "messaging.nats.delivered_messages": 1,
        "messaging.nats.pending_messages": 0,
        **conn_attrs(consumer),
    }
    ctx = message_context(received)
    assert (_span_context(ctx).trace_id, _span_context(ctx).span_id) == (
        producer.context.trace_id,
        producer.context.span_id,
    )


async def test_envelope_subjects_from_environment_and_link_mode(
    make_telemetry: Any, server: Any, connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_NATS_ENVELOPE_SUBJECTS", "envelope.*")
    telemetry = make_telemetry(consumer_parent="link")
    nc = await connect(server.url)
    sub = await nc.subscribe("envelope.events")
    hand_span, _ = await _envelope_publish(
        nc, telemetry.tracer_provider.get_tracer("hand-written-app"), "envelope.events", {}
    )
    msg = await sub.next_msg(timeout=5)
    spans = await wait_spans(telemetry, 2)
    receive = by_name(spans, "receive envelope.events")
    producer = (hand_span.get_span_context().trace_id, hand_span.get_span_context().span_id)
    assert receive.parent is None
    assert [(link.context.trace_id, link.context.span_id) for link in receive.links] == [producer]
    # message_context() gives the producer context in link mode too
    ctx = message_context(msg)
    assert (_span_context(ctx).trace_id, _span_context(ctx).span_id) == producer


async def test_envelopes_are_ignored_outside_envelope_subjects(make_telemetry: Any, server: Any, connect: Any) -> None:
    telemetry = make_telemetry(envelope_subjects=["legacy.>"])
    nc = await connect(server.url)
    sub = await nc.subscribe("modern.orders")
    await _envelope_publish(nc, telemetry.tracer_provider.get_tracer("hand-written-app"), "modern.orders", {"id": 1})
    msg = await sub.next_msg(timeout=5)
    spans = await wait_spans(telemetry, 2)
    receive = by_name(spans, "receive modern.orders")
    assert (receive.parent, tuple(receive.links)) == (None, ())
    assert receive.context.trace_id != by_name(spans, "nats.publish").context.trace_id
    assert message_context(msg) == {}


async def test_headers_win_over_an_envelope(make_telemetry: Any, server: Any, connect: Any) -> None:
    telemetry = make_telemetry(envelope_subjects=[">"])
    nc = await connect(server.url)
    sub = await nc.subscribe("both.ctx")
    payload = wrap_envelope({"id": 1}, _context())  # a foreign trace in the payload …
    await nc.publish("both.ctx", payload)  # … and the instrumented publish's context in the headers
    msg = await sub.next_msg(timeout=5)
    publish, receive = await wait_spans(telemetry, 2)
    assert (publish.name, receive.name) == ("publish both.ctx", "receive both.ctx")
    assert receive.parent is None
    assert_links(receive, publish)
    assert msg.data == payload
