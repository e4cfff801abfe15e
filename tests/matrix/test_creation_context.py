"""A creation context the caller already put in the headers is kept (semconv 1.44), on each client
family.

The headers go out exactly as given (nothing injected, not even baggage), the send span is CLIENT in
the current context with a link to the caller's context; a reply sent from a callback still carries
its own span's context. (A JetStream publish: tests/matrix/test_jetstream_send.py; without an SDK:
tests/matrix/test_no_sdk.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import suppress_instrumentation
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
from tests.families import Family
from tests.helpers import (
    CALLER_IDS,
    CALLER_SPAN_HEX,
    CALLER_TRACE_HEX,
    CALLER_TRACEPARENT,
    Telemetry,
    assert_child,
    by_name,
    link_ids,
    wait_spans,
)
from tests.matrix.expect import wait_for


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
    make_telemetry: Any, server: Any, family: Family, app_baggage: None, key: str
) -> None:
    hooked: list[tuple[SpanKind, str, dict[str, str]]] = []
    telemetry = make_telemetry(
        publish_hook=lambda span, subject, payload, headers: hooked.append((span.kind, subject, headers))
    )
    conn = await family.connect(server)
    got: list[Any] = []
    await conn.on("keep.pub", got.append)
    headers = {key: CALLER_TRACEPARENT, "tracestate": "vendor=theirs", "baggage": "tenant=theirs", "X-App": "1"}
    sent = dict(headers)
    # what an uninstrumented publish of these headers delivers (servers 2.11+ spell `traceparent`
    # in lower case whatever the sender wrote)
    with suppress_instrumentation():
        await conn.publish("keep.pub", b"x", headers=dict(headers))
    await wait_for(lambda: len(got) == 1)
    plain = got[0]
    assert {k.lower(): v for k, v in family.headers(plain).items()} == {k.lower(): v for k, v in sent.items()}
    await wait_spans(telemetry, 1)  # its process span
    telemetry.clear()
    with telemetry.tracer_provider.get_tracer("app").start_as_current_span("send"):
        await conn.publish("keep.pub", b"x", headers=headers)
    await wait_for(lambda: len(got) == 2)
    assert got[1].headers == plain.headers  # byte-identical: nothing injected, replaced or added
    assert headers == sent  # and the caller's dict untouched
    spans = await wait_spans(telemetry, 3)
    assert [s.name for s in spans] == ["send", "publish keep.pub", "process keep.pub"]
    app, publish, process = spans
    assert publish.kind == SpanKind.CLIENT  # its context is not the message's creation context
    assert_child(publish, app)  # the parent is still the current context
    assert link_ids(publish) == [CALLER_IDS]
    assert dict(publish.attributes)["messaging.operation.type"] == "send"
    # the consumer continues the caller's context, not the publish span's
    assert process.kind == SpanKind.CONSUMER
    assert process.parent is not None and (process.context.trace_id, process.parent.span_id) == CALLER_IDS
    assert link_ids(process) == [CALLER_IDS]
    assert hooked == [(SpanKind.CLIENT, "keep.pub", sent)]  # publish_hook is still called


async def test_publish_outside_a_span_keeps_the_callers_context(
    telemetry: Telemetry, server: Any, family: Family
) -> None:
    conn = await family.connect(server)
    got: list[Any] = []
    await conn.on("keep.root", got.append)
    await conn.publish("keep.root", b"", headers={"traceparent": CALLER_TRACEPARENT})
    await wait_for(lambda: got)
    assert family.headers(got[0]) == {"traceparent": CALLER_TRACEPARENT}
    publish, _process = await wait_spans(telemetry, 2)
    assert (publish.name, publish.kind, publish.parent) == ("publish keep.root", SpanKind.CLIENT, None)
    assert publish.context.trace_id != CALLER_IDS[0]  # a root in the (empty) current context …
    assert link_ids(publish) == [CALLER_IDS]  # … linked to the caller's context


async def test_request_keeps_the_callers_context_and_the_reply_carries_its_own(
    telemetry: Telemetry, server: Any, family: Family
) -> None:
    conn = await family.connect(server)
    requests: list[Any] = []

    def respond(msg: Any) -> bytes:
        requests.append(msg)
        return b"ok"

    await conn.on("keep.req", respond)
    headers = {"traceparent": CALLER_TRACEPARENT, "X-Req": "1"}
    response = await conn.request("keep.req", b"?", headers=headers)
    await conn.settled()
    spans = await wait_spans(telemetry, 3)
    (req,) = requests
    assert family.headers(req) == {"traceparent": CALLER_TRACEPARENT, "X-Req": "1"}  # the request went out unchanged
    assert headers == {"traceparent": CALLER_TRACEPARENT, "X-Req": "1"}
    request, process, reply = (
        by_name(spans, "request keep.req"),
        by_name(spans, "process keep.req"),
        by_name(spans, "publish"),
    )
    assert (request.kind, request.parent) == (SpanKind.CLIENT, None)
    assert link_ids(request) == [CALLER_IDS]
    assert process.kind == SpanKind.SERVER
    assert process.parent is not None and (process.context.trace_id, process.parent.span_id) == CALLER_IDS
    assert_child(reply, process)
    assert (reply.kind, link_ids(reply)) == (SpanKind.PRODUCER, [])
    # the reply carries the reply span's context (nats-py's respond resends the request's headers:
    # the echoed context replaced, the rest kept)
    got = family.headers(response)
    assert _span_id(got) == reply.context.span_id
    echoed = {k: v for k, v in (family.reply_headers(req) or {}).items() if k != "traceparent"}
    assert {k: v for k, v in got.items() if k != "traceparent"} == echoed


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
    telemetry: Telemetry, server: Any, family: Family, headers: dict[str, str]
) -> None:
    conn = await family.connect(server)
    got: list[Any] = []
    await conn.on("inject.pub", got.append)
    await conn.publish("inject.pub", b"", headers=headers)
    await wait_for(lambda: got)
    publish, process = await wait_spans(telemetry, 2)
    assert (publish.kind, link_ids(publish)) == (SpanKind.PRODUCER, [])
    assert _span_id(family.headers(got[0])) == publish.context.span_id
    assert_child(process, publish)


async def test_forwarding_a_received_message_without_its_context(
    telemetry: Telemetry, server: Any, family: Family
) -> None:
    """docs/choices.md's recipe: drop the propagator's fields from the received headers before sending them on."""
    conn = await family.connect(server)
    got: list[Any] = []
    await conn.on("fwd.out", got.append)
    sub = await conn.subscribe("fwd.in")
    await conn.publish("fwd.in", b"", headers={"X-App": "1"})
    received = await conn.next_message(sub)
    telemetry.clear()

    fields = {f.lower() for f in propagate.get_global_textmap().fields}
    headers = {k: v for k, v in received.headers.items() if k.lower() not in fields}
    await conn.publish("fwd.out", received.data, headers=headers)

    await wait_for(lambda: got)
    forwarded = family.headers(got[0])
    publish, _process = await wait_spans(telemetry, 2)
    assert (publish.kind, link_ids(publish)) == (SpanKind.PRODUCER, [])
    assert forwarded == {"X-App": "1", "traceparent": forwarded["traceparent"]}
    assert _span_id(forwarded) == publish.context.span_id
    # as received, the headers would have been kept (and the span a CLIENT one linked to the first publish)
    await conn.publish("fwd.out", received.data, headers=received.headers)
    await wait_for(lambda: len(got) == 2)
    assert family.headers(got[1]) == family.headers(received)


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
    telemetry: Telemetry, server: Any, family: Family
) -> None:
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(_XTrace())
    try:
        conn = await family.connect(server)
        got: list[Any] = []
        await conn.on("xtrace.pub", got.append)
        await conn.publish("xtrace.pub", b"", headers={"X-Trace": f"{CALLER_TRACE_HEX}:{CALLER_SPAN_HEX}"})
        # a traceparent is not what this propagator writes: not a creation context, ours is added
        await conn.publish("xtrace.pub", b"", headers={"traceparent": CALLER_TRACEPARENT})
        await wait_for(lambda: len(got) == 2)
        spans = await wait_spans(telemetry, 4)
    finally:
        propagate.set_global_textmap(previous)
    kept, injected = (family.headers(m) for m in got)
    assert kept == {"X-Trace": f"{CALLER_TRACE_HEX}:{CALLER_SPAN_HEX}"}
    first, second = (s for s in spans if s.name == "publish xtrace.pub")
    assert (first.kind, link_ids(first)) == (SpanKind.CLIENT, [CALLER_IDS])
    assert (second.kind, link_ids(second)) == (SpanKind.PRODUCER, [])
    assert injected == {
        "traceparent": CALLER_TRACEPARENT,
        "x-trace": f"{second.context.trace_id:032x}:{second.context.span_id:016x}",
    }
