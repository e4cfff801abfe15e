"""JetStream push consumers (manual ack, deliver groups, ordered), sync push subscriptions, kv watch internals."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from opentelemetry.trace import SpanKind

from tests.helpers import assert_child, assert_links, by_name, new_stream, wait_spans


async def test_manual_ack_push_consumer(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js, stream = await new_stream(nc, telemetry, "MAN")
    done = asyncio.Event()

    async def handler(msg: Any) -> None:
        await msg.ack_sync()
        done.set()

    await js.subscribe(f"{stream}.x", durable="manual", cb=handler, manual_ack=True)
    await js.publish(f"{stream}.x", b"1")
    await asyncio.wait_for(done.wait(), 5)
    spans = await wait_spans(telemetry, 3)
    assert len(spans) == 3  # no extra span for the ack_sync request
    publish = by_name(spans, f"publish {stream}.x")
    process = by_name(spans, f"process {stream}.x")
    ack = by_name(spans, f"ack {stream}")
    assert_child(process, publish)
    assert_child(ack, process)
    assert_links(ack, publish)
    assert process.attributes["messaging.nats.jetstream.consumer"] == "manual"


async def test_deliver_group_spreads_and_names_the_group(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js, stream = await new_stream(nc, telemetry, "GRP")
    seen: list[str] = []
    done = asyncio.Event()

    def make(worker: str) -> Any:
        async def handler(msg: Any) -> None:
            seen.append(worker)
            if len(seen) == 6:
                done.set()

        return handler

    for worker in ("w1", "w2"):
        await js.subscribe(f"{stream}.jobs", queue="workers", durable="workers", cb=make(worker))
    for i in range(6):
        await js.publish(f"{stream}.jobs", str(i).encode())
    await asyncio.wait_for(done.wait(), 5)
    spans = await wait_spans(telemetry, 18)  # 6 publish + 6 process + 6 auto-ack
    processes = [s for s in spans if s.name == f"process {stream}.jobs"]
    assert len(processes) == 6
    assert {s.attributes["messaging.consumer.group.name"] for s in processes} == {"workers"}
    assert {s.kind for s in processes} == {SpanKind.CONSUMER}


async def test_ordered_consumer_process_spans(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js, stream = await new_stream(nc, telemetry, "ORD")
    got: list[bytes] = []
    done = asyncio.Event()

    async def handler(msg: Any) -> None:
        got.append(msg.data)
        if len(got) == 3:
            done.set()

    await js.subscribe(f"{stream}.o", cb=handler, ordered_consumer=True)
    for i in range(3):
        await js.publish(f"{stream}.o", str(i).encode())
    await asyncio.wait_for(done.wait(), 5)
    spans = await wait_spans(telemetry, 6)
    assert got == [b"0", b"1", b"2"]
    publishes = [s for s in spans if s.name == f"publish {stream}.o"]
    processes = [s for s in spans if s.name == f"process {stream}.o"]
    assert (len(publishes), len(processes), len(spans)) == (3, 3, 6)  # ordered consumers are not acked
    for pub, proc in zip(publishes, processes, strict=True):
        assert_child(proc, pub)
        assert proc.attributes["messaging.nats.jetstream.stream"] == stream


async def test_sync_push_subscription_receive_spans(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js, stream = await new_stream(nc, telemetry, "SYN")
    sub = await js.subscribe(f"{stream}.s", durable="sync")
    await js.publish(f"{stream}.s", b"x")
    msg = await sub.next_msg(timeout=5)
    await msg.ack()
    spans = await wait_spans(telemetry, 3)
    assert [s.name for s in spans] == [f"publish {stream}.s", f"receive {stream}.s", f"ack {stream}"]
    publish, receive, ack = spans
    assert (receive.kind, receive.parent) == (SpanKind.CLIENT, None)
    assert_links(receive, publish)
    assert_child(ack, publish)  # acked outside any span: in the producer's trace
    assert_links(ack, publish)
    assert receive.attributes["messaging.nats.jetstream.sequence"] == 1


async def test_key_value_watch_deliveries_make_no_process_spans(telemetry: Any, js_server: Any, connect: Any) -> None:
    """A watcher's ordered consumer is internal: no process span in the writer's trace; the update the
    application takes is a receive span linked to the writer (tests/test_stored_contexts.py)."""
    nc = await connect(js_server.url)
    js = nc.jetstream()
    bucket = f"w{uuid.uuid4().hex[:8]}"
    kv = await js.create_key_value(bucket=bucket)
    watcher = await kv.watchall()
    telemetry.clear()
    await kv.put("k", b"v")
    entry = await watcher.updates(timeout=5)
    while entry is None:  # the initial "no more values" marker
        entry = await watcher.updates(timeout=5)
    assert entry.key == "k"
    spans = await wait_spans(telemetry, 2)
    assert [(s.name, s.kind) for s in spans] == [
        (f"kv.put {bucket}", SpanKind.CLIENT),
        (f"receive {bucket}", SpanKind.CLIENT),
    ]
    put, receive = spans
    assert receive.parent is None
    assert_links(receive, put)
    await watcher.stop()
