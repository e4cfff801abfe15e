"""JetStream consumption on each client family: fetch (one span per batch, a link per message),
empty and cancelled fetches (``empty_fetch_spans``), messages read one at a time (``receive``), and
their metrics (consumed messages, message age). Real streams on a real nats-server.

The stored messages' producers are the test's own spans (``produce N``), written into their headers;
the JetStream publish that stores them runs with instrumentation suppressed (its own span is
tests/matrix/test_jetstream_send.py's subject).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import Span, SpanKind, StatusCode

from opentelemetry import propagate
from opentelemetry.instrumentation.nats import attributes
from opentelemetry.instrumentation.nats.names import MESSAGE_AGE_BUCKETS_S
from tests.families import Conn, Family
from tests.families_js import Js, jetstream
from tests.helpers import Telemetry, assert_child, configured, wait_spans
from tests.matrix.expect import BASE, RECEIVE
from tests.matrix.test_lifecycle_metrics import base_metric, metrics, points
from tests.natsserver import NatsServer

FETCH = {**BASE, "messaging.operation.type": "receive", "messaging.operation.name": "fetch"}
AGE = "messaging.nats.jetstream.message.age"
STORED = 0.3  # seconds between storing and consuming, where the age is measured


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


async def _stream(js: Js, prefix: str) -> str:
    stream = _name(prefix)
    await js.add_stream(stream, [f"{stream}.>"])
    return stream


async def produce(telemetry: Telemetry, js: Js, subject: str, count: int) -> list[Span]:
    """Store ``count`` messages (``b"0"``, ``b"1"`` …), each carrying the context of a span of its own."""
    tracer = telemetry.tracer_provider.get_tracer("test")
    producers = []
    for i in range(count):
        with tracer.start_as_current_span(f"produce {i}") as span:
            headers: dict[str, str] = {}
            propagate.inject(headers)
        with suppress_instrumentation():
            await js.publish(subject, str(i).encode(), headers=headers)
        producers.append(span)
    return producers


def linked(span: Any) -> list[int]:
    return [link.context.span_id for link in span.links]


def ids(producers: list[Span]) -> list[int]:
    return [p.get_span_context().span_id for p in producers]


def ages(telemetry: Telemetry) -> list[Any]:
    """The message-age data points (checking the instrument's unit and bucket advice)."""
    m = metrics(telemetry).get(AGE)
    if m is None:
        return []
    assert m.unit == "s"
    found = points(m)
    for p in found:
        assert tuple(p.explicit_bounds) == MESSAGE_AGE_BUCKETS_S
    return found


def by_stream(stream: str, consumer: str | None = None, system: dict[str, str] = BASE) -> dict[str, Any]:
    attrs = {**system, "messaging.nats.jetstream.stream": stream}
    if consumer is not None:
        attrs["messaging.nats.jetstream.consumer"] = consumer
    return attrs


def fetch_points(telemetry: Telemetry, name: str = "messaging.client.operation.duration") -> list[Any]:
    m = metrics(telemetry)
    if name not in m:
        return []
    return [p for p in points(m[name]) if p.attributes["messaging.operation.name"] == "fetch"]


def fetch_metric(conn: Conn, stream: str) -> dict[str, Any]:
    return {**base_metric(conn, "receive", "fetch"), "messaging.destination.name": stream}


# --- fetch -----------------------------------------------------------------------------------------


async def test_fetch_is_one_span_linked_to_each_producer(
    telemetry: Telemetry, js_server: NatsServer, family: Family
) -> None:
    conn = await family.connect(js_server)
    js = jetstream(conn)
    stream = await _stream(js, "FETCH")
    consumer = await js.pull_consumer(stream, "puller", f"{stream}.jobs")
    producers = await produce(telemetry, js, f"{stream}.jobs", 2)
    await asyncio.sleep(STORED)
    telemetry.clear()
    tracer = telemetry.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("poll"):
        msgs = await js.fetch(consumer, 2, timeout=5)
    assert [m.data for m in msgs] == [b"0", b"1"]
    poll, fetch = await wait_spans(telemetry, 2)
    assert (fetch.name, fetch.kind, fetch.status.status_code) == (f"fetch {stream}", SpanKind.CLIENT, StatusCode.UNSET)
    assert_child(fetch, poll)  # in the caller's context; the producers are links, never parents
    assert linked(fetch) == ids(producers)
    assert dict(fetch.attributes) == {
        **FETCH,
        "messaging.destination.name": stream,
        "messaging.batch.message_count": 2,
        "messaging.nats.jetstream.stream": stream,
        "messaging.nats.jetstream.consumer": "puller",
        **js.fetch_consumer_config,
        **family.conn_attrs(conn),
    }
    m = metrics(telemetry)
    (duration,) = fetch_points(telemetry)
    assert (duration.count, dict(duration.attributes)) == (1, fetch_metric(conn, stream))
    (consumed,) = points(m["messaging.client.consumed.messages"])
    assert (consumed.value, dict(consumed.attributes)) == (2, fetch_metric(conn, stream))
    (received,) = points(m["messaging.nats.client.received.bytes"])
    assert received.value == 2
    (age,) = ages(telemetry)
    assert dict(age.attributes) == by_stream(stream, "puller")
    assert age.count == 2 and age.min >= STORED and age.max < STORED + 5
    # the age is the stored time the server put in the ack subject (what the client reports too)
    stored = msgs[0].metadata.timestamp.timestamp()
    assert attributes.ack_timestamp(msgs[0].reply) == pytest.approx(stored * 1e9, abs=1e3)


@pytest.mark.parametrize(
    ("mode", "system"),
    [
        ("legacy", {"messaging.system": "nats"}),
        ("dup", {"messaging.system.name": "nats", "messaging.system": "nats"}),
    ],
)
async def test_every_mode_records_the_age_in_seconds(
    make_telemetry: Any, js_server: NatsServer, family: Family, mode: str, system: dict[str, str]
) -> None:
    telemetry = make_telemetry(semconv=mode)
    conn = await family.connect(js_server)
    js = jetstream(conn)
    stream = await _stream(js, "AGEMODE")
    consumer = await js.pull_consumer(stream, "puller", f"{stream}.q")
    await produce(telemetry, js, f"{stream}.q", 1)
    await asyncio.sleep(STORED)
    assert len(await js.fetch(consumer, 1, timeout=5)) == 1
    (point,) = ages(telemetry)  # unit "s" in legacy mode too
    assert dict(point.attributes) == by_stream(stream, "puller", system)
    assert point.count == 1 and STORED <= point.min < STORED + 5


# --- empty and cancelled fetches -------------------------------------------------------------------


async def _idle(js: Js, telemetry: Telemetry) -> tuple[Any, str]:
    stream = await _stream(js, "EF")
    consumer = await js.pull_consumer(stream, "idle", f"{stream}.q")
    telemetry.clear()
    return consumer, stream


async def test_an_empty_fetch_makes_no_span_and_is_measured(
    telemetry: Telemetry, js_server: NatsServer, family: Family
) -> None:
    conn = await family.connect(js_server)
    js = jetstream(conn)
    consumer, stream = await _idle(js, telemetry)
    for _ in range(3):
        assert await js.fetch(consumer, 1, timeout=0.1) == []
    assert await wait_spans(telemetry, 0) == []
    (point,) = fetch_points(telemetry)
    assert (point.count, dict(point.attributes)) == (3, fetch_metric(conn, stream))  # no error.type
    (consumed,) = points(metrics(telemetry)["messaging.client.consumed.messages"])
    assert (dict(consumed.attributes), consumed.value) == (fetch_metric(conn, stream), 0)


async def test_a_cancelled_fetch_makes_no_span_and_no_measurement(
    telemetry: Telemetry, js_server: NatsServer, family: Family
) -> None:
    conn = await family.connect(js_server)
    js = jetstream(conn)
    consumer, stream = await _idle(js, telemetry)
    await js.cancelled_fetch(consumer, 0.2)
    assert await wait_spans(telemetry, 0) == []
    assert fetch_points(telemetry) == []
    # the consumer still works afterwards, as without instrumentation
    with suppress_instrumentation():
        await js.publish(f"{stream}.q", b"late")
    (msg,) = await js.fetch(consumer, 1, timeout=5)
    assert msg.data == b"late"


async def test_an_empty_fetch_in_dup_mode_records_both_namings(
    make_telemetry: Any, js_server: NatsServer, family: Family
) -> None:
    """``legacy`` names have no fetch duration (a fetch never had one there); its message counter gets 0."""
    telemetry = make_telemetry(semconv="dup")
    conn = await family.connect(js_server)
    js = jetstream(conn)
    consumer, _stream_name = await _idle(js, telemetry)
    assert await js.fetch(consumer, 1, timeout=0.1) == []
    assert await wait_spans(telemetry, 0) == []
    (point,) = fetch_points(telemetry)
    assert point.count == 1 and point.attributes["messaging.operation"] == "receive"
    (received,) = fetch_points(telemetry, "messaging.nats.receive.messages")
    assert received.value == 0


@pytest.mark.parametrize("source", ["option", "env"])
async def test_empty_fetch_spans_records_non_error_spans(
    make_telemetry: Any, js_server: NatsServer, family: Family, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    telemetry = configured(
        make_telemetry, monkeypatch, source, ("OTEL_PYTHON_NATS_EMPTY_FETCH_SPANS", " True "), empty_fetch_spans=True
    )
    conn = await family.connect(js_server)
    js = jetstream(conn)
    consumer, stream = await _idle(js, telemetry)
    assert await js.fetch(consumer, 1, timeout=0.1) == []
    await js.cancelled_fetch(consumer, 0.2)
    spans = await wait_spans(telemetry, 2)
    assert [(s.name, s.kind) for s in spans] == [(f"fetch {stream}", SpanKind.CLIENT)] * 2
    for span in spans:
        assert (span.status.status_code, span.events, span.links, span.parent) == (StatusCode.UNSET, (), (), None)
        assert dict(span.attributes) == {
            **FETCH,
            "messaging.destination.name": stream,
            "messaging.batch.message_count": 0,
            "messaging.nats.jetstream.stream": stream,
            "messaging.nats.jetstream.consumer": "idle",
            **js.fetch_consumer_config,
            **family.conn_attrs(conn),
        }
    empty, cancelled = spans
    assert empty.end_time - empty.start_time >= 0.09e9  # each covers its wait: the timeout …
    assert cancelled.end_time - cancelled.start_time >= 0.15e9  # … or until it was cancelled
    (point,) = fetch_points(telemetry)
    assert point.count == 1  # the empty fetch; a cancelled fetch is not measured


async def test_empty_fetch_spans_false_from_the_environment(
    make_telemetry: Any, js_server: NatsServer, family: Family, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_NATS_EMPTY_FETCH_SPANS", "off")
    telemetry = make_telemetry()
    conn = await family.connect(js_server)
    js = jetstream(conn)
    consumer, _stream_name = await _idle(js, telemetry)
    assert await js.fetch(consumer, 1, timeout=0.1) == []
    assert await wait_spans(telemetry, 0) == []


# --- one message at a time -------------------------------------------------------------------------


async def test_messages_read_one_at_a_time_are_receive_spans(
    telemetry: Telemetry, js_server: NatsServer, family: Family
) -> None:
    conn = await family.connect(js_server)
    js = jetstream(conn)
    stream = await _stream(js, "RECV")
    subject = f"{stream}.jobs"
    producers = await produce(telemetry, js, subject, 2)
    receiver = await js.receiver(stream, "reader", subject, holding=2)
    await asyncio.sleep(STORED)
    telemetry.clear()
    tracer = telemetry.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("read"):
        first = await js.receive_next(receiver)
        second = await js.receive_iterated(receiver)
    assert (first.data, second.data) == (b"0", b"1")
    read, *receives = await wait_spans(telemetry, 3)
    assert len(receives) == 2
    for i, (span, msg) in enumerate(zip(receives, (first, second), strict=True)):
        assert (span.name, span.kind) == (js.receive_name(stream, subject), SpanKind.CLIENT)
        assert_child(span, read)  # the caller's context; the producer is a link
        assert linked(span) == ids(producers[i : i + 1])
        assert dict(span.attributes) == {
            **RECEIVE,
            "messaging.destination.name": subject,
            "messaging.message.body.size": 1,
            "messaging.nats.reply_to": msg.reply,
            **js.receive_sub_attrs(receiver, 2, 1 - i),  # (both held from the start)
            "messaging.nats.jetstream.stream": stream,
            "messaging.nats.jetstream.consumer": "reader",
            "messaging.nats.jetstream.num_delivered": 1,
            "messaging.nats.jetstream.sequence": i + 1,
            "messaging.nats.jetstream.consumer_sequence": i + 1,
            "messaging.nats.jetstream.num_pending": 1 - i,
            **family.conn_attrs(conn),
        }
    m = metrics(telemetry)
    receive_metric = {**base_metric(conn, "receive", "receive"), "messaging.destination.name": subject}
    (consumed,) = points(m["messaging.client.consumed.messages"])
    assert (consumed.value, dict(consumed.attributes)) == (2, receive_metric)
    (duration,) = points(m["messaging.client.operation.duration"])
    assert (duration.count, dict(duration.attributes)) == (2, receive_metric)
    (age,) = ages(telemetry)
    assert dict(age.attributes) == by_stream(stream, "reader")
    assert age.count == 2 and age.min >= STORED and age.max < STORED + 5


async def test_suppressed_consumption_makes_no_spans(
    telemetry: Telemetry, js_server: NatsServer, family: Family
) -> None:
    conn = await family.connect(js_server)
    js = jetstream(conn)
    stream = await _stream(js, "SUP")
    consumer = await js.pull_consumer(stream, "puller", f"{stream}.a")
    await produce(telemetry, js, f"{stream}.a", 1)
    await produce(telemetry, js, f"{stream}.b", 1)
    receiver = await js.receiver(stream, "reader", f"{stream}.b", holding=1)
    telemetry.clear()
    with suppress_instrumentation():
        assert len(await js.fetch(consumer, 1, timeout=5)) == 1
        assert (await js.receive_next(receiver)).data == b"0"
        assert await js.fetch(consumer, 1, timeout=0.1) == []
    assert await wait_spans(telemetry, 0) == []


async def test_the_consume_hook_sees_each_received_message(
    make_telemetry: Any, js_server: NatsServer, family: Family
) -> None:
    seen: list[tuple[str, bytes]] = []
    telemetry = make_telemetry(consume_hook=lambda span, msg: seen.append((span.name, msg.data)))
    conn = await family.connect(js_server)
    js = jetstream(conn)
    stream = await _stream(js, "HOOK")
    await produce(telemetry, js, f"{stream}.q", 1)
    receiver = await js.receiver(stream, "reader", f"{stream}.q", holding=1)
    assert (await js.receive_next(receiver)).data == b"0"
    assert seen == [(js.receive_name(stream, f"{stream}.q"), b"0")]


async def test_excluded_subjects_make_no_receive_spans(
    make_telemetry: Any, js_server: NatsServer, family: Family
) -> None:
    stream = _name("EXCL")
    telemetry = make_telemetry(excluded_subjects=[f"{stream}.internal"])
    conn = await family.connect(js_server)
    js = jetstream(conn)
    await js.add_stream(stream, [f"{stream}.>"])
    await produce(telemetry, js, f"{stream}.internal", 1)
    receiver = await js.receiver(stream, "reader", f"{stream}.internal", holding=1)
    telemetry.clear()
    assert (await js.receive_next(receiver)).data == b"0"
    assert await wait_spans(telemetry, 0) == []
