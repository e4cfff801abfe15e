"""The hot path's shortcuts behave like the full path (see "fast path" comments in the source).

No SDK (the API's no-op tracer and meter): a wrapper only propagates the current context — what the
no-op span would have carried — and skips spans, attributes and metrics. Injection is skipped only
when it would write nothing (empty context, W3C propagators); other propagators are always asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from opentelemetry.baggage import get_all, set_baggage
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context, attach, detach
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    NonRecordingSpan,
    NoOpTracerProvider,
    SpanContext,
    TraceFlags,
    TraceState,
    get_current_span,
    set_span_in_context,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from opentelemetry import propagate
from opentelemetry.instrumentation.nats import NatsInstrumentor, propagation
from opentelemetry.instrumentation.nats.operation import installed
from tests.helpers import ConstantPropagator, Telemetry
from tests.natsserver import NatsServer

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def no_sdk() -> Iterator[None]:
    """Instrumented with the API's no-op tracer and meter providers (as with no SDK installed)."""
    instrumentor = NatsInstrumentor()
    instrumentor.instrument(tracer_provider=NoOpTracerProvider(), meter_provider=NoOpMeterProvider())
    yield
    instrumentor.uninstrument()


async def _next(sub: Any) -> Any:
    return await sub.next_msg(timeout=2)


def _producer_context() -> Any:
    return propagate.extract({"traceparent": TRACEPARENT})


async def test_no_sdk_is_idle(no_sdk: None) -> None:
    rec = installed()
    assert rec is not None and rec.idle()


async def test_no_sdk_callback_sends_carry_the_message_baggage(no_sdk: None, server: NatsServer, connect: Any) -> None:
    """The callback's context has the producer's trace context but not the message's baggage (kept
    aside, as with an SDK); its publishes carry both, and keep a ``baggage`` header of their own."""
    nc = await connect(server.url)
    seen: asyncio.Queue[Any] = asyncio.Queue()

    async def relay(msg: Any) -> None:
        await seen.put(dict(get_all()))
        await nc.publish("fast.bag.out", b"plain")
        await nc.publish("fast.bag.out", b"own header", headers={"baggage": "app=1"})

    out = await nc.subscribe("fast.bag.out")
    await nc.subscribe("fast.bag.in", cb=relay)
    await nc.publish("fast.bag.in", b"x", headers={"traceparent": TRACEPARENT, "baggage": "tenant=t1"})
    assert await asyncio.wait_for(seen.get(), 2) == {}
    first, second = await _next(out), await _next(out)
    assert (first.data, first.headers) == (b"plain", {"traceparent": TRACEPARENT, "baggage": "tenant=t1"})
    assert (second.data, second.headers) == (b"own header", {"baggage": "app=1", "traceparent": TRACEPARENT})


async def test_no_sdk_callback_errors_propagate_once(no_sdk: None, server: NatsServer, connect: Any) -> None:
    calls: list[bytes] = []
    errors: asyncio.Queue[Exception] = asyncio.Queue()

    async def on_error(exc: Exception) -> None:
        await errors.put(exc)

    nc = await connect(server.url, error_cb=on_error)

    async def boom(msg: Any) -> None:
        calls.append(msg.data)
        raise ValueError("boom")

    await nc.subscribe("fast.boom", cb=boom)
    await nc.publish("fast.boom", b"x")
    assert isinstance(await asyncio.wait_for(errors.get(), 2), ValueError)
    await asyncio.sleep(0.05)
    assert calls == [b"x"]


async def test_sdk_meter_without_sdk_tracer_still_records_metrics(server: NatsServer, connect: Any) -> None:
    tel = Telemetry()
    tel.instrumentor.instrument(tracer_provider=NoOpTracerProvider(), meter_provider=tel.meter_provider)
    try:
        rec = installed()
        assert rec is not None and not rec.idle()
        nc = await connect(server.url)
        await nc.publish("fast.metrics", b"abc")
        await nc.flush()
    finally:
        tel.uninstrument()
    data = tel.metric_reader.get_metrics_data()
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert "messaging.client.sent.messages" in names
    assert tel.spans() == []


async def test_sdk_tracer_without_meter_records_spans_only(server: NatsServer, connect: Any) -> None:
    tel = Telemetry()
    tel.instrumentor.instrument(tracer_provider=tel.tracer_provider, meter_provider=NoOpMeterProvider())
    try:
        rec = installed()
        assert rec is not None and not rec.idle() and not rec.measuring()
        nc = await connect(server.url)
        await nc.publish("fast.spans", b"abc")
    finally:
        tel.uninstrument()
    assert [s.name for s in tel.spans()] == ["publish fast.spans"]


async def test_alternating_clients_keep_their_own_attributes(telemetry: Any, server: NatsServer, connect: Any) -> None:
    """The recorder remembers the last client's state; another client must not reuse it."""
    a, b = await connect(server.url), await connect(server.url)
    for nc in (a, b, a, b):
        await nc.publish("fast.clients", b"x")
    ids = [s.attributes["messaging.client.id"] for s in telemetry.spans()]
    assert ids == [str(a.client_id), str(b.client_id)] * 2
    assert a.client_id != b.client_id


def test_enabled_agrees_with_is_instrumentation_enabled() -> None:
    """operation.enabled() reads the suppression keys itself; it must say what the official check says."""
    from opentelemetry.context import set_value
    from opentelemetry.instrumentation.utils import is_instrumentation_enabled, suppress_instrumentation

    from opentelemetry.instrumentation.nats.operation import enabled

    assert enabled() is is_instrumentation_enabled() is True
    with suppress_instrumentation():
        assert enabled() is is_instrumentation_enabled() is False
    for value in (True, False, None, "yes"):
        token = attach(set_value("suppress_instrumentation", value, _producer_context()))
        try:
            assert enabled() is is_instrumentation_enabled()
        finally:
            detach(token)


def test_fast_operation_builds_what_the_keywords_build() -> None:
    """operation.fast_operation (positional, generated from the fields) equals the keyword construction;
    every field it does not take has its default."""
    from opentelemetry.trace import SpanKind

    from opentelemetry.instrumentation.nats import names
    from opentelemetry.instrumentation.nats.access import NO_ACCESS
    from opentelemetry.instrumentation.nats.operation import Operation, fast_operation

    values = (
        names.PROCESS,
        SpanKind.CONSUMER,
        NO_ACCESS,
        object(),
        "a.b",
        3,
        "r",
        {"h": "v"},
        (1,),
        7,
        "a.*",
        "q",
        {"x": 1},
    )
    keywords = ("op", "kind", "access", "client", "subject", "body_size", "reply_to", "headers", "hook_args")
    keywords += ("sid", "template", "queue", "extra")
    assert fast_operation(*values) == Operation(**dict(zip(keywords, values, strict=True)))
    made = fast_operation(*values)
    assert (made.inject, made.name_dest, made.on_result, made.started, made.span, made.parent) == (
        True,
        None,
        None,
        0,
        None,
        None,
    )


async def test_replies_to_different_inboxes_name_their_own_inbox(
    telemetry: Any, server: NatsServer, connect: Any
) -> None:
    """Temporary subjects share one cached attribute set; the destination name stays per message."""
    nc = await connect(server.url)

    async def echo(msg: Any) -> None:
        await msg.respond(msg.data)

    await nc.subscribe("fast.echo", cb=echo)
    for i in range(3):
        await nc.request("fast.echo", str(i).encode(), timeout=2)
    replies = [s for s in telemetry.spans() if s.name == "publish"]
    inboxes = [s.attributes["messaging.destination.name"] for s in replies]
    assert len(replies) == 3 and len(set(inboxes)) == 3
    assert all(i.startswith("_INBOX.") for i in inboxes)
    assert all(s.attributes["messaging.destination.temporary"] is True for s in replies)


async def test_plain_publish_carries_its_span_and_the_current_baggage(
    telemetry: Any, server: NatsServer, connect: Any
) -> None:
    """A publish without hooks does not make its span current; the message still carries it."""
    nc = await connect(server.url)
    sub = await nc.subscribe("fast.span")
    app = telemetry.tracer_provider.get_tracer("app")
    token = attach(set_baggage("tenant", "t2"))
    try:
        with app.start_as_current_span("app") as parent:
            await nc.publish("fast.span", b"x")
    finally:
        detach(token)
    msg = await _next(sub)
    (publish,) = [s for s in telemetry.spans() if s.name == "publish fast.span"]
    _, trace_id, span_id, _ = msg.headers["traceparent"].split("-")
    assert trace_id == format(publish.context.trace_id, "032x")
    assert span_id == format(publish.context.span_id, "016x")
    assert publish.parent is not None and publish.parent.span_id == parent.get_span_context().span_id
    assert msg.headers["baggage"] == "tenant=t2"


async def test_plain_publish_failure_is_recorded(telemetry: Any, server: NatsServer, connect: Any) -> None:
    import nats.errors

    nc = await connect(server.url)
    await nc.close()
    with pytest.raises(nats.errors.ConnectionClosedError):
        await nc.publish("fast.closed", b"x")
    (span,) = [s for s in telemetry.spans() if s.name == "publish fast.closed"]
    assert not span.status.is_ok
    assert span.attributes["error.type"] == "ConnectionClosedError"


async def test_a_response_hook_alone_is_called(make_telemetry: Any, server: NatsServer, connect: Any) -> None:
    """The no-hook fast path must not skip a lone response_hook."""
    seen: list[bytes] = []
    make_telemetry(response_hook=lambda span, msg: seen.append(msg.data))
    nc = await connect(server.url)

    async def echo(msg: Any) -> None:
        await msg.respond(b"pong")

    await nc.subscribe("fast.hook", cb=echo)
    await nc.request("fast.hook", b"ping", timeout=2)
    assert seen == [b"pong"]


@pytest.mark.parametrize("hook", ["publish_hook", "request_hook", "consume_hook"])
async def test_a_lone_hook_sees_its_span_current(
    make_telemetry: Any, server: NatsServer, connect: Any, hook: str
) -> None:
    """With a hook the operation takes the full path: the hook's span is the current one."""
    current: list[bool] = []

    def record(span: Any, *_: Any) -> None:
        current.append(get_current_span() is span)

    make_telemetry(**{hook: record})
    nc = await connect(server.url)

    async def echo(msg: Any) -> None:
        await msg.respond(b"pong")

    await nc.subscribe("fast.hooks", cb=echo)
    await nc.request("fast.hooks", b"ping", timeout=2)
    await nc.publish("fast.hooks.none", b"x")
    await nc.flush()
    assert current and all(current)


async def test_replies_to_a_plain_subject_are_not_temporary(telemetry: Any, server: NatsServer, connect: Any) -> None:
    """Replies are looked up as temporary subjects first; a reply subject that is not an inbox keeps
    its name and is not marked temporary (twice: also from the cache)."""
    nc = await connect(server.url)
    replies = await nc.subscribe("fast.replies")

    async def echo(msg: Any) -> None:
        await msg.respond(msg.data)

    await nc.subscribe("fast.ask", cb=echo)
    for _ in range(2):
        await nc.publish("fast.ask", b"x", reply="fast.replies")
        await _next(replies)
    spans = [s for s in telemetry.spans() if s.kind.name == "PRODUCER" and s.name == "publish fast.replies"]
    assert len(spans) == 2
    for span in spans:
        assert span.attributes["messaging.destination.name"] == "fast.replies"
        assert "messaging.destination.temporary" not in span.attributes


# --- stock W3C headers written and read without the propagators' generic steps ------------------

_STOCK = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
_REVERSED = CompositePropagator([W3CBaggagePropagator(), TraceContextTextMapPropagator()])
_TRACE_ONLY = TraceContextTextMapPropagator()


@contextmanager
def _global_textmap(textmap: TextMapPropagator) -> Iterator[None]:
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(textmap)
    try:
        yield
    finally:
        propagate.set_global_textmap(previous)


def _extracted(ctx: Any) -> tuple[Any, Any, list[str]]:
    return get_current_span(ctx).get_span_context(), dict(get_all(ctx)), sorted(map(str, ctx))


_HEADER_CASES = [
    {"traceparent": TRACEPARENT},
    {"traceparent": TRACEPARENT.replace("-01", "-00")},
    {"traceparent": TRACEPARENT, "k": "v", "Nats-Msg-Id": "1"},
    {"traceparent": TRACEPARENT, "tracestate": "vendor=x"},
    {"traceparent": TRACEPARENT, "Baggage": "tenant=t1"},
    {"traceparent": TRACEPARENT, "baggage": "tenant=t1"},
    {"traceparent": TRACEPARENT.upper()},
    {"traceparent": " " + TRACEPARENT[:-1]},
    {"traceparent": "00-00000000000000000000000000000000-b7ad6b7169203331-01"},
    {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01"},
    {"traceparent": "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    {"traceparent": "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    {"traceparent": "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-comes-next"},
    {"traceparent": TRACEPARENT + "-x"},
    {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692_3331-01"},
    {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g"},
    {"Traceparent": TRACEPARENT},
    {"Xraceparent": TRACEPARENT},
    {"traceparent": 12},
]


@pytest.mark.parametrize("textmap", [_STOCK, _REVERSED, _TRACE_ONLY])
@pytest.mark.parametrize("headers", _HEADER_CASES)
def test_extract_reads_what_the_propagators_read(textmap: TextMapPropagator, headers: dict[str, Any]) -> None:
    with _global_textmap(textmap):
        expected = propagate.extract(headers, context=Context(), getter=propagation._GETTER)
        assert _extracted(propagation.extract(headers)) == _extracted(expected)


@pytest.mark.parametrize("textmap", [_STOCK, _REVERSED, _TRACE_ONLY])
@pytest.mark.parametrize("headers", _HEADER_CASES)
def test_extract_reads_list_values_as_the_propagators_read_the_first(
    textmap: TextMapPropagator, headers: dict[str, Any]
) -> None:
    """nats-core's header form: every value a list of strings."""
    listed = {k: [v, "second"] if k.lower() == "traceparent" else [v] for k, v in headers.items()}
    with _global_textmap(textmap):
        expected = propagate.extract(headers, context=Context(), getter=propagation._GETTER)
        assert _extracted(propagation.extract(listed)) == _extracted(expected)
        assert _extracted(propagation.extract({k: [v] for k, v in headers.items()})) == _extracted(expected)


def test_extract_asks_other_propagators() -> None:
    with _global_textmap(ConstantPropagator()):
        assert propagation.extract({"traceparent": TRACEPARENT}) == Context()  # (it extracts nothing)


@pytest.mark.parametrize("textmap", [_STOCK, _REVERSED, _TRACE_ONLY, ConstantPropagator()])
@pytest.mark.parametrize("trace_state", [None, TraceState([("vendor", "x"), ("other", "y")])])
@pytest.mark.parametrize("with_baggage", [False, True])
@pytest.mark.parametrize("explicit_parent", [False, True])
def test_span_carrier_writes_what_the_propagators_write(
    textmap: TextMapPropagator, trace_state: Any, with_baggage: bool, explicit_parent: bool
) -> None:
    parent_ctx = propagate.extract({"traceparent": TRACEPARENT}, context=Context())
    remote = get_current_span(parent_ctx).get_span_context()
    if trace_state is not None:
        remote = SpanContext(remote.trace_id, remote.span_id, True, remote.trace_flags, trace_state)
    parent = set_span_in_context(NonRecordingSpan(remote), Context())
    if with_baggage:
        parent = set_baggage("tenant", "t 1", parent)
    span = TracerProvider().get_tracer("test").start_span("s", parent)
    with _global_textmap(textmap):
        expected: dict[str, str] = {}
        propagate.inject(expected, set_span_in_context(span, parent))
        if explicit_parent:
            carrier = propagation.span_carrier(span, parent)
        else:
            token = attach(parent)
            try:
                carrier = propagation.span_carrier(span, None)
            finally:
                detach(token)
    assert list(carrier.items()) == list(expected.items())


@pytest.mark.parametrize("textmap", [_STOCK, _REVERSED, _TRACE_ONLY, ConstantPropagator()])
@pytest.mark.parametrize("own", [{}, {"region": "us", "step": "2"}])
@pytest.mark.parametrize("headers", [None, {"k": "v"}, {"Baggage": "app=1"}])
def test_a_callback_sends_what_the_propagators_write_for_the_message_baggage(
    textmap: TextMapPropagator, own: dict[str, str], headers: dict[str, str] | None
) -> None:
    """A callback's context holds the message's baggage aside (not current); sends from it write what
    the propagators write for a context holding the message's baggage under the callback's own -
    except that a caller's ``baggage`` header is kept when the callback set no baggage."""
    message = propagate.extract({"traceparent": TRACEPARENT}, context=Context())
    message = set_baggage("region", "eu", set_baggage("tenant", "t1", message))
    tracer = TracerProvider().get_tracer("test")
    process = tracer.start_span("process", message)
    ctx, merged = propagation.callback_context(process, message), set_span_in_context(process, message)
    assert dict(get_all(ctx)) == {} and get_current_span(ctx) is process
    for key, value in own.items():
        ctx, merged = set_baggage(key, value, ctx), set_baggage(key, value, merged)
    if headers and "Baggage" in headers and not own:
        merged = set_span_in_context(process, Context())  # the header is kept: no baggage written
    publish = tracer.start_span("publish", ctx)
    with _global_textmap(textmap):
        expected: dict[str, str] = {}
        propagate.inject(expected, set_span_in_context(publish, merged))
        expected_current: dict[str, str] = {}  # (a send with its span not made current: the hooks path)
        propagate.inject(expected_current, merged)
        carrier = propagation.span_carrier(publish, ctx, headers)
        token = attach(ctx)
        try:
            carrier_current = propagation.span_carrier(publish, None, headers)
            sent, _ = propagation.inject(headers, 1, {"headers": True}, 1 << 20)
        finally:
            detach(token)
    assert list(carrier.items()) == list(carrier_current.items()) == list(expected.items())
    kept = {k: v for k, v in (headers or {}).items() if k.lower() not in expected_current}
    assert sent == ({**kept, **expected_current} if expected_current else headers)


class _OwnSpanContext(SpanContext):
    """A span context of another type (read through its properties, not unpacked)."""


@pytest.mark.parametrize(
    "span_context",
    [
        SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, False, TraceFlags(0)),
        SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, False, TraceFlags(1)),
        SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, False, TraceFlags(3)),
        SpanContext(1, 1, True, TraceFlags(255)),
        SpanContext(2**128 - 1, 2**64 - 1, False, TraceFlags(1)),
        SpanContext(0, 7, False, TraceFlags(1)),  # invalid, but not INVALID_SPAN_CONTEXT: written anyway
        SpanContext(5, 7, False, 1),  # type: ignore[arg-type]  # flags as a plain int
        _OwnSpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, False, TraceFlags(1)),
    ],
)
def test_traceparent_is_what_the_trace_context_propagator_writes(span_context: SpanContext) -> None:
    expected: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(expected, set_span_in_context(NonRecordingSpan(span_context)))
    assert {"traceparent": propagation.traceparent(span_context)} == expected


def test_span_carrier_of_an_invalid_span_writes_no_traceparent() -> None:
    with _global_textmap(_STOCK):
        assert propagation.span_carrier(NonRecordingSpan(INVALID_SPAN_CONTEXT), Context()) == {}


# --- per-message wrappers: plain functions and a transparent callback proxy ---------------------


def test_direct_patches_look_like_the_originals(no_sdk: None) -> None:
    import nats.aio.client

    patched = nats.aio.client.Client.__dict__["publish"]
    assert patched.__wrapped__.__name__ == patched.__name__ == "publish"
    assert patched.__doc__ == patched.__wrapped__.__doc__
    assert asyncio.iscoroutinefunction(patched)


async def test_direct_patches_raise_and_cancel_like_nats_py(telemetry: Any, server: NatsServer, connect: Any) -> None:
    import nats.errors

    nc = await connect(server.url)
    with pytest.raises(TypeError):
        nc.publish()  # (a missing argument: raised by the call, as by nats-py's own coroutine function)
    with pytest.raises(nats.errors.NoRespondersError):
        await nc.request("fast.nobody", b"x", timeout=1)
    task = asyncio.ensure_future(nc.request("fast.slow", b"x", timeout=5))
    slow = await nc.subscribe("fast.slow")
    await nc.flush()
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await slow.unsubscribe()
    (request,) = [s for s in telemetry.spans() if s.name == "request fast.slow"]
    assert request.attributes["error.type"] == "CancelledError"


async def test_traced_callbacks_are_transparent(telemetry: Any, server: NatsServer, connect: Any) -> None:
    nc = await connect(server.url)
    seen: list[bytes] = []

    async def handler(msg: Any) -> None:
        seen.append(msg.data)

    sub = await nc.subscribe("fast.proxy", cb=handler)
    assert sub._cb.__wrapped__ is handler and sub._cb.__name__ == "handler"
    assert asyncio.iscoroutinefunction(sub._cb)
    again = await nc.subscribe("fast.proxy", cb=sub._cb)  # already traced: not wrapped twice
    assert again._cb is sub._cb
    await nc.publish("fast.proxy", b"x")
    await nc.flush()
    for _ in range(100):
        if len(seen) == 2:
            break
        await asyncio.sleep(0.01)
    assert seen == [b"x", b"x"]
    assert [s.name for s in telemetry.spans()].count("process fast.proxy") == 2


async def test_no_sdk_callback_without_headers_runs_in_an_empty_context(
    no_sdk: None, server: NatsServer, connect: Any
) -> None:
    """The pass-through for messages without headers keeps what the full path did: the callback runs
    in the (empty) context the message carries, not in the context the subscription was made in."""
    nc = await connect(server.url)
    seen: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(msg: Any) -> None:
        await seen.put(get_all())

    token = attach(set_baggage("tenant", "t1"))
    try:
        await nc.subscribe("fast.empty", cb=handler)
    finally:
        detach(token)
    await nc.subscribe("fast.empty.plain", cb=handler)
    await nc.publish("fast.empty", b"x")
    await nc.publish("fast.empty.plain", b"x")
    assert dict(await asyncio.wait_for(seen.get(), 2)) == {}
    assert dict(await asyncio.wait_for(seen.get(), 2)) == {}
