"""JetStream on each client family: the JetStream API makes no spans; publish (one span with the
PubAck's attributes) and settle (ack, ack_sync/double_ack, nak, term, in_progress) spans, their
parents, links and attributes. Messages to settle are fetched with instrumentation suppressed (the
consuming side's spans are tested elsewhere)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, StatusCode

from opentelemetry import trace
from opentelemetry.instrumentation.nats import message_context
from opentelemetry.instrumentation.nats.recorder import Recorder
from tests.families import Family
from tests.families_js import Js, jetstream
from tests.helpers import Telemetry, assert_child, assert_links, wait_spans
from tests.matrix.expect import PUBLISH
from tests.natsserver import NatsServer

SETTLE = {"messaging.system.name": "nats", "messaging.operation.type": "settle"}
CALLER_TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
CALLER = (0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331)


def _name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


async def _stream(family: Family, server: NatsServer, telemetry: Telemetry) -> tuple[Any, Js, str]:
    """A connection, its JetStream and a new stream on ``<stream>.>``; telemetry cleared."""
    conn = await family.connect(server)
    js = jetstream(conn)
    stream = _name("S")
    await js.add_stream(stream, [f"{stream}.>"])
    telemetry.clear()
    return conn, js, stream


async def test_management_traffic_makes_no_spans(telemetry: Telemetry, js_server: NatsServer, family: Family) -> None:
    _, js, stream = await _stream(family, js_server, telemetry)
    await js.pull_consumer(stream, "puller", f"{stream}.>")
    await js.manage(stream)
    bucket = _name("kv")
    await js.kv_create(bucket)
    await js.kv_open(bucket)
    await asyncio.sleep(0.05)
    assert telemetry.spans() == []


async def test_publish_records_the_puback(telemetry: Telemetry, js_server: NatsServer, family: Family) -> None:
    conn, js, stream = await _stream(family, js_server, telemetry)
    subject = f"{stream}.orders"
    ack = await js.publish(subject, b"one", headers={"Nats-Msg-Id": "m-1"}, expected_stream=stream)
    dup = await js.publish(subject, b"one", headers={"Nats-Msg-Id": "m-1"})
    assert (js.sequence(ack), dup.duplicate) == (1, True)
    first, second = await wait_spans(telemetry, 2)
    assert (first.name, first.kind, second.name, second.kind) == (
        f"publish {subject}",
        SpanKind.PRODUCER,
        f"publish {subject}",
        SpanKind.PRODUCER,
    )
    common = {
        **PUBLISH,
        "messaging.destination.name": subject,
        "messaging.message.body.size": 3,
        "messaging.message.id": "m-1",
        "messaging.nats.jetstream.stream": stream,
        "messaging.nats.jetstream.subject": subject,
        "messaging.nats.jetstream.sequence": 1,
        "messaging.nats.jetstream.duplicate_window": "2m0s",  # (the stream this connection created)
        **family.conn_attrs(conn),
    }
    assert dict(first.attributes) == {
        **common,
        "messaging.nats.jetstream.expected_stream": stream,
        "messaging.nats.jetstream.duplicate": False,
    }
    assert dict(second.attributes) == {**common, "messaging.nats.jetstream.duplicate": True}
    assert (first.parent, first.links, second.parent, second.links) == (None, (), None, ())


async def test_publish_carries_its_context_to_the_stored_message(
    telemetry: Telemetry, js_server: NatsServer, family: Family
) -> None:
    _, js, stream = await _stream(family, js_server, telemetry)
    with telemetry.tracer_provider.get_tracer("app").start_as_current_span("app"):
        await js.publish(f"{stream}.a", b"x", headers={"App": "1"})
    stored = await js.get(stream, seq=1, direct=False)
    app, publish, _get = await wait_spans(telemetry, 3)
    assert_child(publish, app)
    headers = family.headers(stored)
    assert headers["App"] == "1"
    assert headers["traceparent"].split("-")[1:3] == [
        format(publish.context.trace_id, "032x"),
        format(publish.context.span_id, "016x"),
    ]


async def test_publish_with_the_callers_context_is_a_client_span(
    telemetry: Telemetry, js_server: NatsServer, family: Family
) -> None:
    """The caller's headers already carry a creation context: stored unchanged, a CLIENT span linked to
    it; the stored message's consumers link to the caller's context too."""
    _, js, stream = await _stream(family, js_server, telemetry)
    consumer = await js.pull_consumer(stream, "d", f"{stream}.a")
    telemetry.clear()
    headers = {"traceparent": CALLER_TP, "tracestate": "vendor=theirs", "X-App": "js"}
    ack = await js.publish(f"{stream}.a", b"stored", headers=headers)
    (msg,) = await js.fetch(consumer, 1)
    assert family.headers(msg) == {"traceparent": CALLER_TP, "tracestate": "vendor=theirs", "X-App": "js"}
    publish, fetch = await wait_spans(telemetry, 2)
    assert (publish.name, publish.kind, publish.parent) == (f"publish {stream}.a", SpanKind.CLIENT, None)
    assert [(lk.context.trace_id, lk.context.span_id) for lk in publish.links] == [CALLER]
    assert publish.attributes["messaging.nats.jetstream.sequence"] == js.sequence(ack)
    assert fetch.name == f"fetch {stream}"
    assert [(lk.context.trace_id, lk.context.span_id) for lk in fetch.links] == [CALLER]


def _no_stream_attrs(js: Js, family: Family, conn: Any) -> dict[str, Any]:
    """The attributes of an empty JetStream publish to ``nostream.here``, which no stream takes."""
    return {
        **PUBLISH,
        "messaging.destination.name": "nostream.here",
        "messaging.message.body.size": 0,
        "messaging.nats.jetstream.subject": "nostream.here",
        "error.type": js.no_stream_error,
        **js.no_stream_attrs,
        **family.conn_attrs(conn),
    }


async def test_publish_without_a_stream_records_the_error(
    telemetry: Telemetry, js_server: NatsServer, family: Family
) -> None:
    conn = await family.connect(js_server)
    js = jetstream(conn)
    with pytest.raises(Exception) as caught:
        await js.publish("nostream.here", b"")
    assert type(caught.value).__name__ == js.no_stream_error
    (span,) = await wait_spans(telemetry, 1)  # one span, whatever the client's retries
    assert (span.name, span.kind) == ("publish nostream.here", SpanKind.PRODUCER)
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes) == _no_stream_attrs(js, family, conn)


@pytest.mark.parametrize("path", ["fast", "full"])
async def test_publish_spans_are_the_same_on_the_fast_and_the_full_path(
    make_telemetry: Any, js_server: NatsServer, family: Family, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """jetstream.publish_call's cached path applies without headers, hooks or metrics, from a subject's
    second publish on; a hook that does nothing takes every publish the full path."""
    hook = (lambda *args: None) if path == "full" else None
    telemetry = make_telemetry(metrics=False, publish_hook=hook)
    full_path = []
    run = Recorder.run
    monkeypatch.setattr(Recorder, "run", lambda rec, *args, **kw: full_path.append(1) or run(rec, *args, **kw))
    conn, js, stream = await _stream(family, js_server, telemetry)
    subject = f"{stream}.a"
    await js.publish(subject, b"one")
    await js.native.publish(subject, b"two")  # (the client's own call, without keywords)
    with telemetry.tracer_provider.get_tracer("app").start_as_current_span("app"):
        await js.publish(subject, b"three")
    for _ in range(2):
        with pytest.raises(Exception) as caught:
            await js.publish("nostream.here", b"")
        assert type(caught.value).__name__ == js.no_stream_error
    spans = await wait_spans(telemetry, 6)
    app = next(s for s in spans if s.name == "app")
    published = [s for s in spans if s is not app]
    assert [(s.name, s.kind) for s in published] == [(f"publish {subject}", SpanKind.PRODUCER)] * 3 + [
        ("publish nostream.here", SpanKind.PRODUCER)
    ] * 2
    assert [s.parent.span_id if s.parent else None for s in published] == [None, None, app.context.span_id, None, None]
    for seq, (span, data) in enumerate(zip(published, [b"one", b"two", b"three"], strict=False), start=1):
        assert dict(span.attributes) == {
            **PUBLISH,
            "messaging.destination.name": subject,
            "messaging.message.body.size": len(data),
            "messaging.nats.jetstream.subject": subject,
            "messaging.nats.jetstream.stream": stream,
            "messaging.nats.jetstream.sequence": seq,
            "messaging.nats.jetstream.duplicate": False,
            "messaging.nats.jetstream.duplicate_window": "2m0s",
            **family.conn_attrs(conn),
        }
    for span in published[3:]:
        assert span.status.status_code is StatusCode.ERROR
        assert dict(span.attributes) == _no_stream_attrs(js, family, conn)
    assert all(tuple(s.links) == () for s in published)
    assert len(full_path) == (5 if path == "full" else 2)  # (else each subject's first publish)
    with suppress_instrumentation():  # each stored message carries its own publish span's context
        stored = [family.headers(await js.get(stream, seq=seq, direct=False)) for seq in (1, 2, 3)]
    assert [h["traceparent"] for h in stored] == [
        f"00-{s.context.trace_id:032x}-{s.context.span_id:016x}-{s.context.trace_flags:02x}" for s in published[:3]
    ]


# --- settle ----------------------------------------------------------------------------------------


async def _fetched(js: Js, consumer: Any, count: int) -> list[Any]:
    """``count`` messages of the pull consumer, fetched untraced."""
    with suppress_instrumentation():
        msgs = await js.fetch(consumer, count)
    assert len(msgs) == count
    return msgs


@pytest.mark.parametrize("consumer_parent", ["parent", "link"])
async def test_settle_spans_join_the_current_span_else_the_producers_trace(
    make_telemetry: Any, js_server: NatsServer, family: Family, consumer_parent: str
) -> None:
    """ack / ack_sync (double_ack) / nak / term / in_progress: a child of the current span when there
    is one, else of the message's creation context; a link to the creation context either way (both
    consumer_parent modes)."""
    telemetry = make_telemetry(consumer_parent=consumer_parent)
    _, js, stream = await _stream(family, js_server, telemetry)
    subject = f"{stream}.jobs"
    consumer = await js.pull_consumer(stream, "settler", subject)
    for i in range(5):
        await js.publish(subject, str(i).encode())
    with suppress_instrumentation():  # an uninstrumented producer: no creation context
        await js.publish(subject, b"bare")
    msgs = await _fetched(js, consumer, 6)
    assert [m.data for m in msgs] == [b"0", b"1", b"2", b"3", b"4", b"bare"]
    telemetry.clear()
    await js.settle(msgs[0], "ack")
    await js.settle(msgs[1], "ack_sync")
    await js.settle(msgs[2], "in_progress")
    await js.settle(msgs[2], "nak")
    await js.settle(msgs[3], "term")
    tracer = telemetry.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handle"):
        await js.settle(msgs[4], "ack")
    await js.settle(msgs[5], "ack")
    spans = await wait_spans(telemetry, 8)
    assert [s.name for s in spans] == [f"{op} {stream}" for op in ("ack", "ack", "in_progress", "nak", "term")] + [
        "handle",
        f"ack {stream}",
        f"ack {stream}",
    ]  # (double_ack's confirmation makes no span)
    assert {s.kind for s in spans if s.name != "handle"} == {SpanKind.CLIENT}
    producers = [trace.get_current_span(message_context(m)).get_span_context() for m in msgs]
    for span, producer in zip(spans[:5], [producers[i] for i in (0, 1, 2, 2, 3)], strict=True):
        # outside any span: a child of the creation context, in the producer's trace, linked to it
        assert span.parent is not None and span.parent.is_remote, span.name
        assert (span.context.trace_id, span.parent.span_id) == (producer.trace_id, producer.span_id)
        assert [(lk.context.trace_id, lk.context.span_id) for lk in span.links] == [
            (producer.trace_id, producer.span_id)
        ]
    handle, inside, bare = spans[5:]
    assert_child(inside, handle)  # the current span wins; the link still names the producer
    assert [(lk.context.trace_id, lk.context.span_id) for lk in inside.links] == [
        (producers[4].trace_id, producers[4].span_id)
    ]
    assert not producers[5].is_valid  # no creation context: a root without links
    assert (bare.parent, tuple(bare.links)) == (None, ())


async def test_settle_attributes_are_the_messages_jetstream_metadata(
    telemetry: Telemetry, js_server: NatsServer, family: Family
) -> None:
    conn, js, stream = await _stream(family, js_server, telemetry)
    subject = f"{stream}.jobs"
    consumer = await js.pull_consumer(stream, "settler", subject)
    await js.publish(subject, b"retry me")
    await js.publish(subject, b"second")
    first, second = await _fetched(js, consumer, 2)
    await js.settle(first, "nak", delay=0.05)
    await js.settle(second, "term")
    await asyncio.sleep(0.1)
    (again,) = await _fetched(js, consumer, 1)
    assert (again.data, js.num_delivered(again)) == (b"retry me", 2)
    await js.settle(again, "ack")
    spans = await wait_spans(telemetry, 5)
    pub1, pub2, nak, term, ack = spans
    assert [s.name for s in spans] == [
        f"publish {subject}",
        f"publish {subject}",
        f"nak {stream}",
        f"term {stream}",
        f"ack {stream}",
    ]
    consumer = {
        "messaging.nats.jetstream.stream": stream,
        "messaging.nats.jetstream.consumer": "settler",
        # the consumer's configuration, from the response that created it
        "messaging.nats.jetstream.ack_policy": "explicit",
        "messaging.nats.jetstream.replay_policy": "instant",
    }

    def metadata(seq: int, cseq: int, delivered: int, pending: int) -> dict[str, Any]:
        return {
            **consumer,
            "messaging.nats.jetstream.sequence": seq,
            "messaging.nats.jetstream.consumer_sequence": cseq,
            "messaging.nats.jetstream.num_delivered": delivered,
            "messaging.nats.jetstream.num_pending": pending,
        }

    assert dict(nak.attributes) == {
        **SETTLE,
        "messaging.operation.name": "nak",
        "messaging.destination.name": subject,
        "messaging.nats.jetstream.nak_delay": 0.05,
        **metadata(1, 1, 1, 1),
        **family.conn_attrs(conn),
    }
    assert dict(term.attributes) == {
        **SETTLE,
        "messaging.operation.name": "term",
        "messaging.destination.name": subject,
        **metadata(2, 2, 1, 0),
        **family.conn_attrs(conn),
    }
    assert dict(ack.attributes) == {
        **SETTLE,
        "messaging.operation.name": "ack",
        "messaging.destination.name": subject,
        **metadata(1, 3, 2, 0),
        **family.conn_attrs(conn),
    }
    for settle, pub in ((nak, pub1), (term, pub2), (ack, pub1)):
        assert_child(settle, pub)
        assert_links(settle, pub)
        assert settle.status.status_code is StatusCode.UNSET
