"""JetStream: publish, publish_async, push and pull consumers, settle, key-value, object store."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import nats.errors
import nats.js.errors
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from opentelemetry import trace
from opentelemetry.instrumentation.nats import message_context
from tests.helpers import assert_child, assert_links, by_name, conn_attrs, wait_spans


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


async def _stream(nc: Any, telemetry: Any, subjects: list[str]) -> tuple[Any, str]:
    js = nc.jetstream()
    stream = _name("S")
    await js.add_stream(name=stream, subjects=subjects)
    telemetry.clear()
    return js, stream


async def test_management_traffic_makes_no_spans(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js = nc.jetstream()
    stream = _name("M")
    await js.add_stream(name=stream, subjects=[f"{stream}.>"])
    await js.stream_info(stream)
    await js.add_consumer(stream, durable_name="d1")
    await js.consumer_info(stream, "d1")
    await js.delete_consumer(stream, "d1")
    await js.delete_stream(stream)
    await asyncio.sleep(0.05)
    assert telemetry.spans() == []


async def test_publish_records_the_puback(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js, stream = await _stream(nc, telemetry, ["jsp.>"])
    ack = await js.publish("jsp.orders", b"one", stream=stream, headers={"Nats-Msg-Id": "m-1"})
    dup = await js.publish("jsp.orders", b"one", headers={"Nats-Msg-Id": "m-1"})
    assert (ack.seq, dup.duplicate) == (1, True)
    first, second = await wait_spans(telemetry, 2)
    assert (first.name, first.kind) == ("publish jsp.orders", SpanKind.PRODUCER)
    common = {
        "messaging.system.name": "nats",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.destination.name": "jsp.orders",
        "messaging.message.body.size": 3,
        "messaging.message.id": "m-1",
        "messaging.nats.jetstream.stream": stream,
        "messaging.nats.jetstream.subject": "jsp.orders",
        "messaging.nats.jetstream.sequence": 1,
        "messaging.nats.jetstream.duplicate_window": "2m0s",  # (the stream this connection created)
        **conn_attrs(nc),
    }
    assert dict(first.attributes) == {
        **common,
        "messaging.nats.jetstream.expected_stream": stream,
        "messaging.nats.jetstream.duplicate": False,
    }
    assert dict(second.attributes) == {**common, "messaging.nats.jetstream.duplicate": True}


async def test_publish_without_stream_records_error(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js = nc.jetstream()
    with pytest.raises(nats.js.errors.NoStreamResponseError):
        await js.publish("nostream.here", b"")
    (span,) = await wait_spans(telemetry, 1)
    assert span.name == "publish nostream.here"
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == "NoStreamResponseError"


async def test_publish_async_span_ends_with_its_ack(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js, stream = await _stream(nc, telemetry, ["jsa.>"])
    futures = [await js.publish_async(f"jsa.{i}", b"x") for i in range(3)]
    acks = await asyncio.gather(*futures)
    spans = await wait_spans(telemetry, 3)
    assert sorted(s.name for s in spans) == ["publish jsa.0", "publish jsa.1", "publish jsa.2"]
    seqs = {s.name: s.attributes["messaging.nats.jetstream.sequence"] for s in spans}
    assert seqs == {f"publish jsa.{i}": acks[i].seq for i in range(3)}
    assert all(s.attributes["messaging.nats.jetstream.stream"] == stream for s in spans)


async def test_publish_async_span_ends_when_connection_closes(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js = nc.jetstream()
    future = await js.publish_async("nobody.listens.async", b"x")  # no stream: no ack ever arrives
    await nc.close()
    (span,) = await wait_spans(telemetry, 1)
    assert span.name == "publish nobody.listens.async"
    assert span.attributes["error.type"] in ("ConnectionClosedError", "NoStreamResponseError")
    future.cancel()


async def test_push_consumer_process_and_auto_ack(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js, stream = await _stream(nc, telemetry, ["push.>"])
    done = asyncio.Event()

    async def handler(msg: Any) -> None:
        done.set()

    await js.subscribe("push.items", durable="pusher", cb=handler)
    deliver_subject = (await js.consumer_info(stream, "pusher")).config.deliver_subject
    await js.publish("push.items", b"item")
    await asyncio.wait_for(done.wait(), 5)
    spans = await wait_spans(telemetry, 3)
    publish = by_name(spans, "publish push.items")
    process = by_name(spans, "process push.items")
    ack = by_name(spans, f"ack {stream}")
    assert len(spans) == 3
    assert process.kind == SpanKind.CONSUMER
    assert_child(process, publish)
    assert_links(process, publish)
    assert_child(ack, process)
    assert_links(ack, publish)
    js_attrs = {
        "messaging.nats.jetstream.stream": stream,
        "messaging.nats.jetstream.consumer": "pusher",
        "messaging.nats.jetstream.sequence": 1,
        "messaging.nats.jetstream.consumer_sequence": 1,
        "messaging.nats.jetstream.num_delivered": 1,
        "messaging.nats.jetstream.num_pending": 0,
        # the consumer's configuration, from the response that created it (tests/test_jetstream_config.py)
        "messaging.nats.jetstream.deliver_subject": deliver_subject,
        "messaging.nats.jetstream.ack_policy": "explicit",
        "messaging.nats.jetstream.replay_policy": "instant",
    }
    reply = process.attributes["messaging.nats.reply_to"]
    assert reply.startswith("$JS.ACK.")
    assert dict(process.attributes) == {
        "messaging.system.name": "nats",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "push.items",
        "messaging.message.body.size": 4,
        "messaging.nats.reply_to": reply,
        "messaging.nats.subscription.id": process.attributes["messaging.nats.subscription.id"],
        "messaging.nats.delivered_messages": 1,
        "messaging.nats.pending_messages": 0,
        **js_attrs,
        **conn_attrs(nc),
    }
    assert ack.kind == SpanKind.CLIENT
    assert dict(ack.attributes) == {
        "messaging.system.name": "nats",
        "messaging.operation.type": "settle",
        "messaging.operation.name": "ack",
        "messaging.destination.name": "push.items",
        **js_attrs,
        **conn_attrs(nc),
    }


async def test_pull_fetch_process_ack_is_one_trace(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js, stream = await _stream(nc, telemetry, ["pull.>"])
    psub = await js.pull_subscribe("pull.jobs", durable="puller")
    await js.publish("pull.jobs", b"a")
    await js.publish("pull.jobs", b"b")
    msgs = await psub.fetch(2, timeout=5)
    tracer = telemetry.tracer_provider.get_tracer("app")
    for msg in msgs:
        with tracer.start_as_current_span("handle job", context=message_context(msg)):
            await msg.ack()
    spans = await wait_spans(telemetry, 7)
    assert len(spans) == 7
    pubs = [s for s in spans if s.name == "publish pull.jobs"]
    fetch = by_name(spans, f"fetch {stream}")
    handles = [s for s in spans if s.name == "handle job"]
    acks = [s for s in spans if s.name == f"ack {stream}"]
    assert fetch.kind == SpanKind.CLIENT
    assert dict(fetch.attributes) == {
        "messaging.system.name": "nats",
        "messaging.operation.type": "receive",
        "messaging.operation.name": "fetch",
        "messaging.destination.name": stream,
        "messaging.batch.message_count": 2,
        "messaging.nats.jetstream.stream": stream,
        "messaging.nats.jetstream.consumer": "puller",
        "messaging.nats.jetstream.ack_policy": "explicit",
        "messaging.nats.jetstream.replay_policy": "instant",
        **conn_attrs(nc),
    }
    assert [link.context.span_id for link in fetch.links] == [p.context.span_id for p in pubs]
    for pub, handle, ack in zip(pubs, handles, acks, strict=True):
        assert_child(handle, pub)
        assert_child(ack, handle)
        assert_links(ack, pub)


async def test_nak_redelivery_and_double_ack(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js, stream = await _stream(nc, telemetry, ["nak.>"])
    psub = await js.pull_subscribe("nak.q", durable="n")
    await js.publish("nak.q", b"retry me")
    (first,) = await psub.fetch(1, timeout=5)
    await first.nak()
    (again,) = await psub.fetch(1, timeout=5)
    assert again.metadata.num_delivered == 2
    await again.ack()
    with pytest.raises(nats.errors.MsgAlreadyAckdError):
        await again.ack()
    spans = await wait_spans(telemetry, 6)
    assert [s.name for s in spans] == [
        "publish nak.q",
        f"fetch {stream}",
        f"nak {stream}",
        f"fetch {stream}",
        f"ack {stream}",
        f"ack {stream}",
    ]
    nak, ok, double = spans[2], spans[4], spans[5]
    for settle in (nak, ok, double):  # outside any span: in the producer's trace
        assert_child(settle, spans[0])
        assert_links(settle, spans[0])
    assert nak.attributes["messaging.operation.name"] == "nak"
    assert nak.attributes["messaging.nats.jetstream.num_delivered"] == 1
    assert ok.attributes["messaging.nats.jetstream.num_delivered"] == 2
    assert ok.status.status_code == StatusCode.UNSET
    assert double.status.status_code == StatusCode.ERROR
    assert double.attributes["error.type"] == "MsgAlreadyAckdError"


async def test_term_and_in_progress(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js, stream = await _stream(nc, telemetry, ["tp.>"])
    psub = await js.pull_subscribe("tp.q", durable="t")
    await js.publish("tp.q", b"")
    (msg,) = await psub.fetch(1, timeout=5)
    await msg.in_progress()
    await msg.term()
    spans = await wait_spans(telemetry, 4)
    assert [s.name for s in spans] == ["publish tp.q", f"fetch {stream}", f"in_progress {stream}", f"term {stream}"]
    assert {s.attributes["messaging.operation.type"] for s in spans[2:]} == {"settle"}


@pytest.mark.parametrize("consumer_parent", ["parent", "link"])
async def test_settle_spans_join_the_current_span_else_the_producers_trace(
    make_telemetry: Any, js_server: Any, connect: Any, consumer_parent: str
) -> None:
    """ack / ack_sync / nak / term / in_progress: a child of the current span when there is one, else of
    the message's creation context; a link to the creation context either way (both consumer_parent modes)."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    telemetry = make_telemetry(consumer_parent=consumer_parent)
    nc = await connect(js_server.url)
    subject = _name("settle")
    js, stream = await _stream(nc, telemetry, [subject])
    psub = await js.pull_subscribe(subject, durable="s")
    for i in range(5):
        await js.publish(subject, str(i).encode())
    with suppress_instrumentation():  # an uninstrumented producer: no creation context
        await js.publish(subject, b"bare")
    msgs = await psub.fetch(6, timeout=5)
    assert [m.data for m in msgs] == [b"0", b"1", b"2", b"3", b"4", b"bare"]
    telemetry.clear()
    spans = await wait_spans(telemetry, 0)
    assert spans == []
    await msgs[0].ack()
    await msgs[1].ack_sync()
    await msgs[2].in_progress()
    await msgs[2].nak()
    await msgs[3].term()
    tracer = telemetry.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handle"):
        await msgs[4].ack()
    await msgs[5].ack()
    spans = await wait_spans(telemetry, 7)
    names = [s.name for s in spans]
    assert names == [f"{op} {stream}" for op in ("ack", "ack", "in_progress", "nak", "term")] + [
        "handle",
        f"ack {stream}",
        f"ack {stream}",
    ]
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


async def test_key_value_operations(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js = nc.jetstream()
    bucket = _name("kv")
    kv = await js.create_key_value(bucket=bucket, history=5)
    telemetry.clear()
    rev1 = await kv.put("color", b"red")
    entry = await kv.get("color")
    rev2 = await kv.update("color", b"blue", last=rev1)
    rev3 = await kv.create("size", b"L")
    await kv.delete("size")
    await kv.purge("color")
    spans = await wait_spans(telemetry, 6)
    assert [s.name for s in spans] == [
        f"kv.put {bucket}",
        f"kv.get {bucket}",
        f"kv.update {bucket}",
        f"kv.create {bucket}",
        f"kv.delete {bucket}",
        f"kv.purge {bucket}",
    ]
    put, get, update, create = spans[:4]
    assert dict(put.attributes) == {
        "messaging.system.name": "nats",
        "messaging.operation.name": "kv.put",
        "messaging.destination.name": bucket,
        "messaging.message.body.size": 3,
        "messaging.nats.kv.bucket": bucket,
        "messaging.nats.kv.key": "color",
        "messaging.nats.kv.revision": rev1,
        **conn_attrs(nc),
    }
    assert get.attributes["messaging.nats.kv.revision"] == entry.revision == rev1
    assert update.attributes["messaging.nats.kv.revision"] == rev2
    assert create.attributes["messaging.nats.kv.revision"] == rev3
    assert all(s.kind == SpanKind.CLIENT for s in spans)


async def test_object_store_operations(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js = nc.jetstream()
    bucket = _name("obj")
    obs = await js.create_object_store(bucket=bucket)
    telemetry.clear()
    data = b"z" * (300 * 1024)  # several 128 KiB chunks
    info = await obs.put("blob.bin", data)
    result = await obs.get("blob.bin")
    assert result.data == data
    await obs.delete("blob.bin")
    spans = await wait_spans(telemetry, 3)
    assert [s.name for s in spans] == [
        f"object_store.put {bucket}",
        f"object_store.get {bucket}",
        f"object_store.delete {bucket}",
    ]
    put, get, _delete = spans
    assert put.attributes["messaging.nats.object_store.name"] == "blob.bin"
    assert put.attributes["messaging.nats.object_store.size"] == len(data) == info.size
    assert put.attributes["messaging.nats.object_store.chunks"] == info.chunks == 3
    assert get.attributes["messaging.nats.object_store.size"] == len(data)
    assert trace.get_current_span() is trace.INVALID_SPAN
