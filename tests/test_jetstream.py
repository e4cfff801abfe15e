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
