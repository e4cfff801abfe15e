"""nats-py 2.16: subjects and header names validated before sending (BadSubjectError, BadHeaderError,
``skip_subject_validation``), flow-control consumers (AckPolicy.FLOW_CONTROL, nats-server 2.14) and
``JetStreamManager.reset_consumer`` (2.14); and the headers we add pass any validation. The JetStream
message features (TTL, batches, counters, schedules) are in tests/test_jetstream_features.py."""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import uuid
from typing import Any

import nats.aio.client
import nats.errors
import nats.js.api
import nats.js.errors
import pytest
from opentelemetry.baggage import get_all, set_baggage
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import attach, detach
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from opentelemetry.instrumentation.nats.natspy.jetstream import PENDING_ACKS
from opentelemetry.instrumentation.nats.operation import installed
from opentelemetry.instrumentation.nats.propagation import traceparent
from tests.helpers import by_name, collect, conn_attrs, responder, stored_headers, synced, wait_spans
from tests.natsserver import requires_server
from tests.test_metrics import metrics, points

NATS_PY = importlib.metadata.version("nats-py")
needs_validation = pytest.mark.skipif(
    not hasattr(nats.aio.client, "_validate_subject"),
    reason=f"nats-py {NATS_PY} does not validate subjects and header names before sending (nats-py 2.16)",
)
needs_flow_control = pytest.mark.skipif(
    not hasattr(nats.js.api.AckPolicy, "FLOW_CONTROL"),
    reason=f"nats-py {NATS_PY} has no AckPolicy.FLOW_CONTROL (nats-py 2.16)",
)
needs_reset = pytest.mark.skipif(
    not hasattr(nats.js.api, "ConsumerReset"),
    reason=f"nats-py {NATS_PY} has no JetStreamManager.reset_consumer (nats-py 2.16)",
)
BAD_SUBJECTS = ("bad subject", "tab\tsubject", "line\r\nbreak", "trailing ")


class OpenSpans(SpanProcessor):
    """The spans started and not ended yet."""

    def __init__(self) -> None:
        self.open: dict[int, str] = {}

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.open[span.context.span_id] = span.name

    def on_end(self, span: Any) -> None:
        self.open.pop(span.context.span_id, None)


@pytest.fixture
def open_spans(telemetry: Any) -> OpenSpans:
    processor = OpenSpans()
    telemetry.tracer_provider.add_span_processor(processor)
    return processor


def _raised_by_nats(exc: BaseException, function: str) -> None:
    """``exc`` is the exception nats-py raised in ``function`` (its innermost frame), passed on as it was."""
    tb = exc.__traceback__
    assert tb is not None
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    assert (code.co_name, code.co_filename.endswith(os.path.join("nats", "aio", "client.py"))) == (function, True)
    assert (exc.__cause__, exc.__context__) == (None, None)


def _sent(nc: Any, subject: str, size: int, operation: str = "publish", **more: Any) -> dict[str, Any]:
    return {
        "messaging.system.name": "nats",
        "messaging.operation.type": "send",
        "messaging.operation.name": operation,
        "messaging.destination.name": subject,
        "messaging.message.body.size": size,
        **conn_attrs(nc),
        **more,
    }


def _series(telemetry: Any) -> list[dict[str, Any]]:
    """The attributes of every metric series recorded so far."""
    return [dict(p.attributes) for m in metrics(telemetry).values() for p in points(m)]


# --- client-side validation --------------------------------------------------------------------


@needs_validation
async def test_bad_subject(telemetry: Any, open_spans: OpenSpans, server: Any, connect: Any) -> None:
    """publish and request: the caller gets nats-py's BadSubjectError itself; the span is named
    without the subject and ends with error.type; no metric series or max_destinations place for it."""
    nc = await connect(server.url)
    for subject in BAD_SUBJECTS:
        with pytest.raises(nats.errors.BadSubjectError) as raised:
            await nc.publish(subject, b"x")
        _raised_by_nats(raised.value, "_validate_subject")
        with pytest.raises(nats.errors.BadSubjectError) as raised:
            await nc.request(subject, b"x", timeout=1)
        _raised_by_nats(raised.value, "_validate_subject")
    with pytest.raises(nats.errors.BadSubjectError):
        await nc.publish("good.subject", b"x", reply="bad reply")
    spans = await wait_spans(telemetry, 2 * len(BAD_SUBJECTS) + 1)
    assert open_spans.open == {}
    failed = {"error.type": "BadSubjectError"}
    for i, subject in enumerate(BAD_SUBJECTS):
        publish, request = spans[2 * i : 2 * i + 2]
        assert [(publish.name, publish.kind), (request.name, request.kind)] == [
            ("publish", SpanKind.PRODUCER),
            ("request", SpanKind.CLIENT),
        ]
        assert dict(publish.attributes) == _sent(nc, subject, 1, **failed)
        assert dict(request.attributes) == _sent(nc, subject, 1, "request", **failed)
        assert publish.status.status_code == request.status.status_code == StatusCode.ERROR
    # a good subject with a bad reply subject: named as usual
    assert (spans[-1].name, dict(spans[-1].attributes)) == (
        "publish good.subject",
        _sent(nc, "good.subject", 1, **{"messaging.nats.reply_to": "bad reply"}, **failed),
    )
    rec = installed()
    assert rec is not None and rec.destinations.shown == {"good.subject"}
    series = _series(telemetry)
    assert not [s for s in series if s.get("messaging.destination.name") in BAD_SUBJECTS]
    duration = points(metrics(telemetry)["messaging.client.operation.duration"])
    base = {"messaging.system.name": "nats", "messaging.operation.type": "send", "server.address": "127.0.0.1"}
    base.update({"server.port": server.port, **failed})
    assert {(frozenset(p.attributes.items()), p.count) for p in duration} == {
        (frozenset({**base, "messaging.operation.name": "publish"}.items()), len(BAD_SUBJECTS)),
        (frozenset({**base, "messaging.operation.name": "request"}.items()), len(BAD_SUBJECTS)),
        (
            frozenset(
                {**base, "messaging.operation.name": "publish", "messaging.destination.name": "good.subject"}.items()
            ),
            1,
        ),
    }


@needs_validation
async def test_bad_subject_jetstream(telemetry: Any, open_spans: OpenSpans, js_server: Any, connect: Any) -> None:
    """JetStream publish and publish_async: the same, and no pending-ack entry is left behind."""
    nc = await connect(js_server.url)
    js = nc.jetstream()
    for call in (js.publish, js.publish_async):
        with pytest.raises(nats.errors.BadSubjectError) as raised:
            await call("bad subject", b"x")
        _raised_by_nats(raised.value, "_validate_subject")
    sync, pub_async = await wait_spans(telemetry, 2)
    assert open_spans.open == {}
    assert not [op for _, _, op, _ in PENDING_ACKS.open.values() if op.client is nc]
    for span in (sync, pub_async):
        assert (span.name, span.kind, span.status.status_code) == ("publish", SpanKind.PRODUCER, StatusCode.ERROR)
        assert dict(span.attributes) == _sent(
            nc, "bad subject", 1, **{"messaging.nats.jetstream.subject": "bad subject", "error.type": "BadSubjectError"}
        )
    assert not [s for s in _series(telemetry) if "bad subject" in s.values()]


@needs_validation
async def test_bad_subscription(telemetry: Any, server: Any, connect: Any) -> None:
    """subscribe makes no span: the caller just gets the error, and nothing stays subscribed."""
    nc = await connect(server.url)

    async def handler(msg: Any) -> None:
        pass

    for subject, queue in (("bad subject", ""), ("bad.>.wildcard", ""), ("good.subject", "bad queue")):
        with pytest.raises(nats.errors.BadSubjectError) as raised:
            await nc.subscribe(subject, queue=queue, cb=handler)
        _raised_by_nats(raised.value, "_validate_queue" if queue else "_validate_subject")
    assert nc._subs == {}
    await asyncio.sleep(0.05)
    assert telemetry.spans() == []


@needs_validation
async def test_bad_header_name(telemetry: Any, open_spans: OpenSpans, js_server: Any, connect: Any) -> None:
    """A header name nats-py refuses: the caller's BadHeaderError, recorded on the span, however
    many headers we added beside it."""
    nc = await connect(js_server.url)
    js = nc.jetstream()
    for call in (nc.publish, js.publish):
        with pytest.raises(nats.errors.BadHeaderError) as raised:
            await call("orders.created", b"x", headers={"Bad Header": "v", "Good-Header": "w"})
        assert raised.value.key == "Bad Header"
        _raised_by_nats(raised.value, "_send_publish")
    core, jetstream = await wait_spans(telemetry, 2)
    assert open_spans.open == {}
    failed = {"error.type": "BadHeaderError"}
    assert (core.name, dict(core.attributes)) == ("publish orders.created", _sent(nc, "orders.created", 1, **failed))
    assert (jetstream.name, dict(jetstream.attributes)) == (
        "publish orders.created",
        _sent(nc, "orders.created", 1, **{"messaging.nats.jetstream.subject": "orders.created"}, **failed),
    )


@needs_validation
async def test_skip_subject_validation(telemetry: Any, server: Any, connect: Any) -> None:
    """With validation off nats-py sends what it gets: the NATS protocol reads ``spaced subject`` as
    the subject ``spaced`` with the reply subject ``subject``. Still no span name or metric series of its own."""
    nc = await connect(server.url, skip_subject_validation=True)
    got = await collect(nc, "spaced")
    telemetry.clear()
    await nc.publish("spaced subject", b"x")
    msg = await asyncio.wait_for(got.get(), 5)
    assert (msg.subject, msg.reply) == ("spaced", "subject")
    with pytest.raises(nats.errors.BadSubjectError):  # (an empty subject is refused anyway)
        await nc.publish("", b"x")
    publish, process, empty = await wait_spans(telemetry, 3)
    assert [s.name for s in (publish, process, empty)] == ["publish", "process spaced", "publish"]
    assert dict(publish.attributes) == _sent(nc, "spaced subject", 1)
    no_subject = {k: v for k, v in _sent(nc, "", 1).items() if k != "messaging.destination.name"}
    assert dict(empty.attributes) == {**no_subject, "error.type": "BadSubjectError"}
    assert not [s for s in _series(telemetry) if "spaced subject" in s.values()]


# --- the headers we add ------------------------------------------------------------------------


ODD_BAGGAGE = {
    "percent": "100%25 done, 50% left",
    "spaces": "  a b   c ",
    "unicode": "ünïcödé ☃ 日本語",
    "equals": "k=v=w",
    "commas": "a,b;c,d",
    "long": "x" * 3000,
}
TRACE_STATE = TraceState([("congo", "t61rcWkgMzE"), ("rojo", "00f067aa0ba902b7")])


async def test_added_headers_pass_validation(telemetry: Any, js_server: Any, connect: Any) -> None:
    """traceparent, tracestate and baggage with odd values (percent signs, spaces, unicode, '=' and ','
    in values, long values): publish, request, JetStream publish and publish_async send them and the
    receiver reads back the same context (any nats-py; 2.16 validates before sending)."""
    nc = await connect(js_server.url)
    js = nc.jetstream()
    stream = f"HDR_{uuid.uuid4().hex[:8]}"
    await js.add_stream(name=stream, subjects=[f"{stream}.>"])
    got = await collect(nc, "plain.odd")
    seen = await responder(nc, "svc.odd")
    await synced(nc)
    parent = SpanContext(
        0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED), trace_state=TRACE_STATE
    )
    ctx = set_span_in_context(NonRecordingSpan(parent))
    for key, value in ODD_BAGGAGE.items():
        ctx = set_baggage(key, value, ctx)
    telemetry.clear()
    token = attach(ctx)
    try:
        await nc.publish("plain.odd", b"x", headers={"App": "1"})
        await nc.request("svc.odd", b"x", headers={"App": "1"}, timeout=5)
        await js.publish(f"{stream}.a", b"x", headers={"App": "1"})
        await (await js.publish_async(f"{stream}.b", b"x", headers={"App": "1"}))
    finally:
        detach(token)
    received = [(await asyncio.wait_for(got.get(), 5)).headers, seen[0]]
    received += [await stored_headers(nc, stream, seq=seq) for seq in (1, 2)]
    sent: dict[str, str] = {}
    W3CBaggagePropagator().inject(sent, ctx)
    # (the propagator itself strips the values it reads: "  a b   c " comes back as "a b   c")
    expected = dict(get_all(W3CBaggagePropagator().extract(sent)))
    assert expected.keys() == ODD_BAGGAGE.keys() and expected["long"] == ODD_BAGGAGE["long"]
    spans = await wait_spans(telemetry, 4)
    senders = [
        by_name(spans, n)
        for n in ("publish plain.odd", "request svc.odd", f"publish {stream}.a", f"publish {stream}.b")
    ]
    for span, headers in zip(senders, received, strict=True):
        assert span.parent is not None and span.parent.span_id == 0xDEF
        assert headers["App"] == "1"
        assert headers["traceparent"] == traceparent(span.get_span_context())
        assert headers["tracestate"] == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
        assert headers["baggage"] == sent["baggage"]  # byte for byte what the propagator wrote
        assert dict(get_all(W3CBaggagePropagator().extract(headers))) == expected


# --- flow-control consumers (AckPolicy.FLOW_CONTROL) -------------------------------------------------


def _flow_control_consumer(name: str, deliver_subject: str) -> Any:
    api = nats.js.api
    return api.ConsumerConfig(
        durable_name=name,
        ack_policy=api.AckPolicy.FLOW_CONTROL,
        flow_control=True,
        idle_heartbeat=1.0,  # (the server requires 1 s for this policy)
        max_ack_pending=100,
        max_deliver=-1,
        deliver_subject=deliver_subject,
    )


@needs_flow_control
@requires_server("2.14", why="AckPolicy.FLOW_CONTROL (durable stream sourcing)")
async def test_flow_control_consumer_sourced_by_a_stream(telemetry: Any, js_server: Any, connect: Any) -> None:
    """What the policy is for: a stream sources a work queue through it, the sourcing server acks
    through flow control. The application's publishes are its only spans."""
    nc = await connect(js_server.url)
    js = nc.jetstream()
    work, agg = f"WQ_{uuid.uuid4().hex[:8]}", f"AGG_{uuid.uuid4().hex[:8]}"
    await js.add_stream(name=work, subjects=[f"{work}.>"], retention=nats.js.api.RetentionPolicy.WORK_QUEUE)
    await js.add_consumer(work, _flow_control_consumer("src", f"deliver.{work}"))
    source = nats.js.api.StreamSource(
        name=work, consumer=nats.js.api.StreamConsumerSource(name="src", deliver_subject=f"deliver.{work}")
    )
    await js.add_stream(name=agg, sources=[source])
    telemetry.clear()
    for i in range(3):
        await js.publish(f"{work}.jobs", f"job {i}".encode())
    for _ in range(100):
        if (await js.stream_info(work)).state.messages == 0 and (await js.stream_info(agg)).state.messages == 3:
            break
        await asyncio.sleep(0.05)
    assert ((await js.stream_info(work)).state.messages, (await js.stream_info(agg)).state.messages) == (0, 3)
    await asyncio.sleep(0.1)
    assert [(s.name, s.kind) for s in telemetry.spans()] == [(f"publish {work}.jobs", SpanKind.PRODUCER)] * 3


@needs_flow_control
@requires_server("2.14", why="AckPolicy.FLOW_CONTROL")
async def test_flow_control_consumer_read_by_nats_py(telemetry: Any, js_server: Any, connect: Any) -> None:
    """nats-py reading a flow-control consumer: it does not ack on the application's behalf, and its
    flow-control responses carry no sequences (so they ack nothing) and make no span. The server
    takes no client acks for this policy: an application's ack reaches no one (its span says which
    policy), ack_sync fails with no responders (its span records it)."""
    nc = await connect(js_server.url)
    spy = await connect(js_server.url)
    js = nc.jetstream()
    stream = f"WQ_{uuid.uuid4().hex[:8]}"
    await js.add_stream(name=stream, subjects=[f"{stream}.>"], retention=nats.js.api.RetentionPolicy.WORK_QUEUE)
    await js.add_consumer(stream, _flow_control_consumer("app", f"deliver.{stream}"))
    responses: list[Any] = []

    async def seen(msg: Any) -> None:
        responses.append(msg)

    with suppress_instrumentation():  # (the spy's own callback makes no spans)
        await spy.subscribe(f"$JS.FC.{stream}.>", cb=seen)
    await synced(spy)
    delivered: list[Any] = []

    async def handler(msg: Any) -> None:
        delivered.append(msg)

    await js.subscribe(f"{stream}.jobs", durable="app", stream=stream, cb=handler)
    telemetry.clear()
    for i in range(3):
        await js.publish(f"{stream}.jobs", f"job {i}".encode())
    for _ in range(100):  # the server asks for flow control at its next heartbeat (1 s)
        if len(delivered) == 3 and responses:
            break
        await asyncio.sleep(0.05)
    assert len(delivered) == 3 and responses and all(not r.headers and r.data == b"" for r in responses)
    spans = await wait_spans(telemetry, 6)
    assert sorted(s.name for s in spans) == sorted([f"publish {stream}.jobs", f"process {stream}.jobs"] * 3)
    process = [s for s in spans if s.kind == SpanKind.CONSUMER]
    assert [s.attributes["messaging.nats.jetstream.ack_policy"] for s in process] == ["flow_control"] * 3
    info = await js.consumer_info(stream, "app")
    assert (info.num_ack_pending, info.ack_floor.stream_seq) == (3, 0)

    telemetry.clear()
    await delivered[-1].ack()
    with pytest.raises(nats.errors.NoRespondersError):
        await delivered[0].ack_sync()
    ack, ack_sync = await wait_spans(telemetry, 2)
    assert [(s.name, s.kind) for s in (ack, ack_sync)] == [(f"ack {stream}", SpanKind.CLIENT)] * 2
    assert ack.attributes["messaging.nats.jetstream.ack_policy"] == "flow_control"
    assert ack.attributes["messaging.nats.jetstream.sequence"] == 3
    assert "error.type" not in ack.attributes
    assert ack_sync.attributes["error.type"] == "NoRespondersError"
    info = await js.consumer_info(stream, "app")
    assert (info.num_ack_pending, info.ack_floor.stream_seq) == (3, 0)  # the server ignored the ack


@needs_flow_control
@requires_server(below="2.14", why="servers before 2.14 refuse AckPolicy.FLOW_CONTROL")
async def test_flow_control_consumer_refused(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js = nc.jetstream()
    stream = f"WQ_{uuid.uuid4().hex[:8]}"
    await js.add_stream(name=stream, subjects=[f"{stream}.>"], retention=nats.js.api.RetentionPolicy.WORK_QUEUE)
    with pytest.raises(nats.js.errors.BadRequestError):
        await js.add_consumer(stream, _flow_control_consumer("app", f"deliver.{stream}"))
    await asyncio.sleep(0.05)
    assert telemetry.spans() == []


# --- reset_consumer ----------------------------------------------------------------------------


async def _reset(telemetry: Any, js: Any, stream: str, **kwargs: Any) -> Any:
    """``reset_consumer`` inside an application span; returns its result or error."""
    with telemetry.tracer_provider.get_tracer("app").start_as_current_span("app"):
        try:
            return await js.reset_consumer(stream, "d", **kwargs)
        except Exception as exc:
            return exc


@needs_reset
@requires_server("2.14", why="the consumer reset API")
async def test_reset_consumer_makes_no_span(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js = nc.jetstream()
    stream = f"R_{uuid.uuid4().hex[:8]}"
    await js.add_stream(name=stream, subjects=[f"{stream}.>"])
    await js.add_consumer(stream, nats.js.api.ConsumerConfig(durable_name="d"))
    for _ in range(3):
        await js.publish(f"{stream}.a", b"x")
    telemetry.clear()
    result = await _reset(telemetry, js, stream, seq=2)
    assert (result.reset_seq, result.info.name) == (2, "d")
    await asyncio.sleep(0.05)
    assert [s.name for s in telemetry.spans()] == ["app"]


@needs_reset
@requires_server(below="2.14", why="servers before 2.14 have no consumer reset API")
async def test_reset_consumer_unknown_to_the_server(telemetry: Any, js_server: Any, connect: Any) -> None:
    """The server does not answer an API it does not know: the caller's timeout, still no span."""
    nc = await connect(js_server.url)
    js = nc.jetstream()
    stream = f"R_{uuid.uuid4().hex[:8]}"
    await js.add_stream(name=stream, subjects=[f"{stream}.>"])
    await js.add_consumer(stream, nats.js.api.ConsumerConfig(durable_name="d"))
    telemetry.clear()
    result = await _reset(telemetry, js, stream, timeout=0.5)
    assert isinstance(result, nats.errors.TimeoutError)
    await asyncio.sleep(0.05)
    assert [s.name for s in telemetry.spans()] == ["app"]
