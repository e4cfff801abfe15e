"""A creation context the caller already put in the headers is kept (semconv 1.44).

The headers go out exactly as given (nothing injected, not even baggage), the send span is CLIENT in
the current context with a link to the caller's context; ``Msg.respond`` still replaces the context
it echoes back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.instrumentation.nats import NatsInstrumentor
from tests.helpers import assert_child, by_name, collect, responder, wait_spans

TRACE_HEX = "0af7651916cd43dd8448eb211c80319c"
SPAN_HEX = "b7ad6b7169203331"
TP = f"00-{TRACE_HEX}-{SPAN_HEX}-01"
CALLER = (int(TRACE_HEX, 16), int(SPAN_HEX, 16))


def _links(span: Any) -> list[tuple[int, int]]:
    return [(link.context.trace_id, link.context.span_id) for link in span.links]


def _span_id(headers: dict[str, str]) -> int:
    return int(headers["traceparent"].split("-")[2], 16)


@pytest.fixture
def app_baggage() -> Iterator[None]:
    """Baggage in the application's current context: a publish would inject it (not into kept headers)."""
    token = otel_context.attach(baggage.set_baggage("tenant", "ours"))
    yield
    otel_context.detach(token)


@pytest.mark.parametrize("key", ["traceparent", "Traceparent"])
async def test_publish_keeps_the_callers_creation_context(
    make_telemetry: Any, server: Any, connect: Any, app_baggage: None, key: str
) -> None:
    hooked: list[tuple[SpanKind, str, dict[str, str]]] = []
    telemetry = make_telemetry(
        publish_hook=lambda span, subject, payload, headers: hooked.append((span.kind, subject, headers))
    )
    nc = await connect(server.url)
    got = await collect(nc, "keep.pub")
    headers = {key: TP, "tracestate": "vendor=theirs", "baggage": "tenant=theirs", "X-App": "1"}
    sent = dict(headers)
    # what an uninstrumented publish of these headers delivers (servers 2.11+ spell `traceparent`
    # in lower case whatever the sender wrote)
    with suppress_instrumentation():
        await nc.publish("keep.pub", b"x", headers=dict(headers))
    plain = await asyncio.wait_for(got.get(), 5)
    assert {k.lower(): v for k, v in plain.headers.items()} == {k.lower(): v for k, v in sent.items()}
    await wait_spans(telemetry, 1)  # its process span
    telemetry.clear()
    with telemetry.tracer_provider.get_tracer("app").start_as_current_span("send"):
        await nc.publish("keep.pub", b"x", headers=headers)
    msg = await asyncio.wait_for(got.get(), 5)
    assert msg.headers == plain.headers  # byte-identical: nothing injected, replaced or added
    assert headers == sent  # and the caller's dict untouched
    spans = await wait_spans(telemetry, 3)
    assert [s.name for s in spans] == ["send", "publish keep.pub", "process keep.pub"]
    app, publish, process = spans
    assert publish.kind == SpanKind.CLIENT  # its context is not the message's creation context
    assert_child(publish, app)  # the parent is still the current context
    assert _links(publish) == [CALLER]
    assert dict(publish.attributes)["messaging.operation.type"] == "send"
    # the consumer continues the caller's context, not the publish span's
    assert process.kind == SpanKind.CONSUMER
    assert process.parent is not None and (process.context.trace_id, process.parent.span_id) == CALLER
    assert _links(process) == [CALLER]
    assert hooked == [(SpanKind.CLIENT, "keep.pub", sent)]  # publish_hook is still called


async def test_publish_outside_a_span_keeps_the_callers_context(telemetry: Any, server: Any, connect: Any) -> None:
    nc = await connect(server.url)
    got = await collect(nc, "keep.root")
    await nc.publish("keep.root", b"", headers={"traceparent": TP})
    msg = await asyncio.wait_for(got.get(), 5)
    assert msg.headers == {"traceparent": TP}
    publish, _process = await wait_spans(telemetry, 2)
    assert (publish.name, publish.kind, publish.parent) == ("publish keep.root", SpanKind.CLIENT, None)
    assert publish.context.trace_id != CALLER[0]  # a root in the (empty) current context …
    assert _links(publish) == [CALLER]  # … linked to the caller's context


async def test_request_keeps_the_callers_context_and_respond_still_replaces_it(
    telemetry: Any, server: Any, connect: Any
) -> None:
    nc = await connect(server.url)
    seen = await responder(nc, "keep.req")
    headers = {"traceparent": TP, "X-Req": "1"}
    response = await nc.request("keep.req", b"?", timeout=5, headers=headers)
    spans = await wait_spans(telemetry, 3)
    assert seen == [{"traceparent": TP, "X-Req": "1"}]  # the request went out unchanged
    assert headers == {"traceparent": TP, "X-Req": "1"}
    request, process, reply = (
        by_name(spans, "request keep.req"),
        by_name(spans, "process keep.req"),
        by_name(spans, "publish"),
    )
    assert (request.kind, request.parent) == (SpanKind.CLIENT, None)
    assert _links(request) == [CALLER]
    assert process.kind == SpanKind.SERVER
    assert process.parent is not None and (process.context.trace_id, process.parent.span_id) == CALLER
    assert_child(reply, process)
    assert (reply.kind, _links(reply)) == (SpanKind.PRODUCER, [])
    # respond resends the request's headers: the echoed context is replaced with the reply span's
    assert _span_id(response.headers) == reply.context.span_id
    assert response.headers["X-Req"] == "1"


@pytest.mark.parametrize("call", ["publish", "publish_async"])
async def test_jetstream_publish_keeps_the_callers_context(
    telemetry: Any, js_server: Any, connect: Any, call: str
) -> None:
    nc = await connect(js_server.url)
    js = nc.jetstream()
    subject = f"keep{uuid.uuid4().hex[:8]}"
    stream = subject.upper()
    await js.add_stream(name=stream, subjects=[subject])
    psub = await js.pull_subscribe(subject, durable="d")
    telemetry.clear()
    headers = {"traceparent": TP, "tracestate": "vendor=theirs", "X-App": "js"}
    if call == "publish":
        ack = await js.publish(subject, b"stored", headers=headers)
    else:
        ack = await (await js.publish_async(subject, b"stored", headers=headers))
    (msg,) = await psub.fetch(1, timeout=5)
    assert msg.headers == {"traceparent": TP, "tracestate": "vendor=theirs", "X-App": "js"}
    spans = await wait_spans(telemetry, 2)
    publish = by_name(spans, f"publish {subject}")
    assert (publish.kind, publish.parent) == (SpanKind.CLIENT, None)
    assert _links(publish) == [CALLER]
    assert publish.attributes["messaging.nats.jetstream.sequence"] == ack.seq
    assert _links(by_name(spans, f"fetch {stream}")) == [CALLER]


@pytest.mark.parametrize(
    "headers",
    [
        {"traceparent": "garbage"},
        {"traceparent": "00-00000000000000000000000000000000-0000000000000000-01"},
        {"tracestate": "vendor=theirs"},
        {"baggage": "tenant=theirs"},
        {"X-App": "1"},
    ],
)
async def test_headers_without_a_valid_creation_context_get_ours(
    telemetry: Any, server: Any, connect: Any, headers: dict[str, str]
) -> None:
    nc = await connect(server.url)
    got = await collect(nc, "inject.pub")
    await nc.publish("inject.pub", b"", headers=headers)
    msg = await asyncio.wait_for(got.get(), 5)
    publish, process = await wait_spans(telemetry, 2)
    assert (publish.kind, _links(publish)) == (SpanKind.PRODUCER, [])
    assert _span_id(msg.headers) == publish.context.span_id
    assert_child(process, publish)


async def test_forwarding_a_received_message_without_its_context(telemetry: Any, server: Any, connect: Any) -> None:
    """docs/choices.md's recipe: drop the propagator's fields from the received headers before sending them on."""
    nc = await connect(server.url)
    got = await collect(nc, "fwd.out")
    sub = await nc.subscribe("fwd.in")
    await nc.publish("fwd.in", b"", headers={"X-App": "1"})
    received = await sub.next_msg(timeout=5)
    telemetry.clear()

    fields = {f.lower() for f in propagate.get_global_textmap().fields}
    headers = {k: v for k, v in (received.headers or {}).items() if k.lower() not in fields}
    await nc.publish("fwd.out", received.data, headers=headers)

    forwarded = await asyncio.wait_for(got.get(), 5)
    publish, _process = await wait_spans(telemetry, 2)
    assert (publish.kind, _links(publish)) == (SpanKind.PRODUCER, [])
    assert forwarded.headers == {"X-App": "1", "traceparent": forwarded.headers["traceparent"]}
    assert _span_id(forwarded.headers) == publish.context.span_id
    # as received, the headers would have been kept (and the span a CLIENT one linked to the first publish)
    await nc.publish("fwd.out", received.data, headers=received.headers)
    kept = await asyncio.wait_for(got.get(), 5)
    assert kept.headers == received.headers


class _XTrace(TextMapPropagator):
    """A propagator with its own header (``x-trace: <trace id>:<span id>``), to show that what counts
    as a creation context is whatever the configured propagator reads and writes."""

    def extract(
        self, carrier: CarrierT, context: Context | None = None, getter: Getter[CarrierT] = default_getter
    ) -> Context:
        value = getter.get(carrier, "x-trace")
        if not value:
            return context or Context()
        trace_id, span_id = (int(part, 16) for part in value[0].split(":"))
        remote = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
        return trace.set_span_in_context(NonRecordingSpan(remote), context)

    def inject(
        self, carrier: CarrierT, context: Context | None = None, setter: Setter[CarrierT] = default_setter
    ) -> None:
        span_ctx = trace.get_current_span(context).get_span_context()
        if span_ctx.is_valid:
            setter.set(carrier, "x-trace", f"{span_ctx.trace_id:032x}:{span_ctx.span_id:016x}")

    @property
    def fields(self) -> set[str]:
        return {"x-trace"}


async def test_any_configured_propagator_defines_the_creation_context(
    telemetry: Any, server: Any, connect: Any
) -> None:
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(_XTrace())
    try:
        nc = await connect(server.url)
        got = await collect(nc, "xtrace.pub")
        await nc.publish("xtrace.pub", b"", headers={"X-Trace": f"{TRACE_HEX}:{SPAN_HEX}"})
        kept = await asyncio.wait_for(got.get(), 5)
        # a traceparent is not what this propagator writes: not a creation context, ours is added
        await nc.publish("xtrace.pub", b"", headers={"traceparent": TP})
        injected = await asyncio.wait_for(got.get(), 5)
        spans = await wait_spans(telemetry, 4)
    finally:
        propagate.set_global_textmap(previous)
    assert kept.headers == {"X-Trace": f"{TRACE_HEX}:{SPAN_HEX}"}
    first, second = (s for s in spans if s.name == "publish xtrace.pub")
    assert (first.kind, _links(first)) == (SpanKind.CLIENT, [CALLER])
    assert (second.kind, _links(second)) == (SpanKind.PRODUCER, [])
    assert injected.headers == {
        "traceparent": TP,
        "x-trace": f"{second.context.trace_id:032x}:{second.context.span_id:016x}",
    }


async def test_no_sdk_sends_the_callers_headers_unchanged(server: Any, connect: Any) -> None:
    instrumentor = NatsInstrumentor()
    instrumentor.instrument(tracer_provider=trace.NoOpTracerProvider(), meter_provider=NoOpMeterProvider())
    try:
        nc = await connect(server.url)
        got = await collect(nc, "nosdk.keep")
        ours = SpanContext(int("1" * 32, 16), int("2" * 16, 16), is_remote=True, trace_flags=TraceFlags(1))
        token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(ours)))
        try:
            await nc.publish("nosdk.keep", b"", headers={"traceparent": TP})
            await nc.publish("nosdk.keep", b"", headers={"X-App": "1"})
        finally:
            otel_context.detach(token)
        kept = await asyncio.wait_for(got.get(), 5)
        injected = await asyncio.wait_for(got.get(), 5)
    finally:
        instrumentor.uninstrument()
    assert kept.headers == {"traceparent": TP}
    assert injected.headers == {"X-App": "1", "traceparent": f"00-{'1' * 32}-{'2' * 16}-01"}
