"""Without an SDK (the API's no-op tracer and meter) each client family still carries the context:
a publish injects the current one, a callback runs in the one its message carries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.baggage import get_baggage, set_baggage
from opentelemetry.context import attach, detach
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracerProvider, SpanKind, get_current_span
from opentelemetry.util._once import Once

from opentelemetry import propagate, trace
from opentelemetry.instrumentation.nats import NatsInstrumentor, message_context
from opentelemetry.instrumentation.nats.operation import installed
from tests.families import Family
from tests.helpers import ConstantPropagator
from tests.matrix.expect import wait_for

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def no_sdk() -> Iterator[None]:
    instrumentor = NatsInstrumentor()
    instrumentor.instrument(tracer_provider=NoOpTracerProvider(), meter_provider=NoOpMeterProvider())
    rec = installed()
    assert rec is not None and rec.idle()
    yield
    instrumentor.uninstrument()


async def test_a_publish_outside_any_context_sends_no_headers(no_sdk: None, server: Any, family: Family) -> None:
    conn = await family.connect(server)
    sub = await conn.subscribe("nosdk.plain")
    await conn.publish("nosdk.plain", b"x")
    await conn.publish("nosdk.plain", b"y", headers={"k": "v"})
    first, second = await conn.next_message(sub), await conn.next_message(sub)
    assert (family.headers(first), family.headers(second)) == ({}, {"k": "v"})


async def test_a_publish_carries_the_current_context(no_sdk: None, server: Any, family: Family) -> None:
    conn = await family.connect(server)
    sub = await conn.subscribe("nosdk.ctx")
    token = attach(set_baggage("tenant", "t1", propagate.extract({"traceparent": TRACEPARENT})))
    try:
        await conn.publish("nosdk.ctx", b"x")
    finally:
        detach(token)
    headers = family.headers(await conn.next_message(sub))
    assert (headers["traceparent"], headers["baggage"]) == (TRACEPARENT, "tenant=t1")


async def test_a_callback_runs_in_its_messages_context(no_sdk: None, server: Any, family: Family) -> None:
    """The producer's trace context is current; the message's baggage is set aside (what the callback
    sends carries it), and ``message_context`` has it."""
    conn = await family.connect(server)
    seen: list[Any] = []

    def record(msg: Any) -> None:
        seen.append(
            (get_current_span().get_span_context(), get_baggage("tenant"), get_baggage("tenant", message_context(msg)))
        )

    await conn.on("nosdk.in", record)
    await conn.publish("nosdk.in", b"", headers={"traceparent": TRACEPARENT, "baggage": "tenant=t2"})
    await wait_for(lambda: seen)
    ((span_context, current, carried),) = seen
    assert (format(span_context.span_id, "016x"), current, carried) == ("b7ad6b7169203331", None, "t2")


@pytest.fixture
def global_tracer_provider() -> Iterator[None]:
    """Restores the API's global tracer provider, which ``set_tracer_provider`` sets once per process
    (the private names are the ones opentelemetry-test-utils resets)."""
    yield
    trace._TRACER_PROVIDER = None
    trace._TRACER_PROVIDER_SET_ONCE = Once()


async def test_a_provider_set_after_instrument_is_used_from_the_next_publish(
    global_tracer_provider: None, server: Any, family: Family
) -> None:
    """Instrumented with the global providers before any is set: publishes pass straight through
    until an SDK provider is set, then each one has its span (and carries it)."""
    instrumentor = NatsInstrumentor()
    instrumentor.instrument()
    try:
        conn = await family.connect(server)
        sub = await conn.subscribe("nosdk.late")
        await conn.publish("nosdk.late", b"before")
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        await conn.publish("nosdk.late", b"after")
        before, after = await conn.next_message(sub), await conn.next_message(sub)
        spans = exporter.get_finished_spans()
        (span,) = [s for s in spans if s.kind is SpanKind.PRODUCER]
        assert [s.name for s in spans] == ["publish nosdk.late", "receive nosdk.late", "receive nosdk.late"]
        sent = span.context
        traceparent = f"00-{sent.trace_id:032x}-{sent.span_id:016x}-{sent.trace_flags:02x}"
        assert (family.headers(before), family.headers(after)) == ({}, {"traceparent": traceparent})
    finally:
        instrumentor.uninstrument()


async def test_a_propagator_set_after_the_first_publish_is_asked(no_sdk: None, server: Any, family: Family) -> None:
    conn = await family.connect(server)
    sub = await conn.subscribe("nosdk.textmap")
    await conn.publish("nosdk.textmap", b"stock")
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(ConstantPropagator())
    try:
        await conn.publish("nosdk.textmap", b"constant")
    finally:
        propagate.set_global_textmap(previous)
    await conn.publish("nosdk.textmap", b"stock again")
    received = [family.headers(await conn.next_message(sub)) for _ in range(3)]
    assert received == [{}, {"x-constant": "1"}, {}]


async def test_the_callers_creation_context_is_sent_unchanged(no_sdk: None, server: Any, family: Family) -> None:
    conn = await family.connect(server)
    sub = await conn.subscribe("nosdk.keep")
    token = attach(propagate.extract({"traceparent": f"00-{'1' * 32}-{'2' * 16}-01"}))
    try:
        await conn.publish("nosdk.keep", b"", headers={"traceparent": TRACEPARENT})
        await conn.publish("nosdk.keep", b"", headers={"X-App": "1"})
    finally:
        detach(token)
    kept, injected = await conn.next_message(sub), await conn.next_message(sub)
    assert family.headers(kept) == {"traceparent": TRACEPARENT}
    assert family.headers(injected) == {"X-App": "1", "traceparent": f"00-{'1' * 32}-{'2' * 16}-01"}
