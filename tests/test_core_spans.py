"""Core NATS spans: publish → process, request → reply, receive, wildcards, modes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from tests.helpers import assert_child, assert_links, by_name, conn_attrs, synced, wait_spans


async def test_publish_to_callback_is_one_trace(telemetry: Any, server: Any, connect: Any) -> None:
    pub = await connect(server.url)
    sub_nc = await connect(server.url)
    got: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(msg: Any) -> None:
        await got.put(msg)

    await sub_nc.subscribe("orders.created", cb=handler)
    await synced(sub_nc)
    await pub.publish("orders.created", b"hello", headers={"App": "1"})
    msg = await asyncio.wait_for(got.get(), 5)
    publish, process = await wait_spans(telemetry, 2)

    assert len(telemetry.spans()) == 2
    assert (publish.name, publish.kind) == ("publish orders.created", SpanKind.PRODUCER)
    assert dict(publish.attributes) == {
        "messaging.system.name": "nats",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.destination.name": "orders.created",
        "messaging.message.body.size": 5,
        **conn_attrs(pub),
    }
    assert (process.name, process.kind) == ("process orders.created", SpanKind.CONSUMER)
    assert dict(process.attributes) == {
        "messaging.system.name": "nats",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "orders.created",
        "messaging.message.body.size": 5,
        "messaging.nats.subscription.id": str(msg.sid),
        "messaging.nats.delivered_messages": 1,
        "messaging.nats.pending_messages": 0,
        **conn_attrs(sub_nc),
    }
    assert_child(process, publish)
    assert_links(process, publish)  # semconv: a process span also links to the creation context
    assert (publish.parent, tuple(publish.links)) == (None, ())
    assert msg.headers["App"] == "1"
    assert msg.headers["traceparent"].split("-")[2] == format(publish.context.span_id, "016x")


async def test_request_reply_is_one_trace(telemetry: Any, server: Any, connect: Any) -> None:
    client = await connect(server.url)
    service = await connect(server.url)

    async def handler(msg: Any) -> None:
        await msg.respond(b"pong!")

    await service.subscribe("svc.ping", queue="workers", cb=handler)
    await synced(service)
    response = await client.request("svc.ping", b"ping", timeout=5)
    assert response.data == b"pong!"
    spans = await wait_spans(telemetry, 3)
    assert [s.name for s in spans] == ["request svc.ping", "process svc.ping", "publish"]
    request, process, reply = spans

    assert request.kind == SpanKind.CLIENT
    assert dict(request.attributes) == {
        "messaging.system.name": "nats",
        "messaging.operation.type": "send",
        "messaging.operation.name": "request",
        "messaging.destination.name": "svc.ping",
        "messaging.message.body.size": 4,
        "messaging.nats.response.body.size": 5,
        **conn_attrs(client),
    }
    assert process.kind == SpanKind.SERVER
    inbox = process.attributes["messaging.nats.reply_to"]
    assert inbox.startswith("_INBOX.")
    assert dict(process.attributes) == {
        "messaging.system.name": "nats",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "svc.ping",
        "messaging.consumer.group.name": "workers",
        "messaging.message.body.size": 4,
        "messaging.nats.reply_to": inbox,
        "messaging.nats.subscription.id": process.attributes["messaging.nats.subscription.id"],
        "messaging.nats.delivered_messages": 1,
        "messaging.nats.pending_messages": 0,
        **conn_attrs(service),
    }
    assert reply.kind == SpanKind.PRODUCER
    assert dict(reply.attributes) == {
        "messaging.system.name": "nats",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.destination.name": inbox,
        "messaging.destination.temporary": True,
        "messaging.destination.anonymous": True,
        "messaging.message.body.size": 5,
        **conn_attrs(service),
    }
    assert_child(process, request)
    assert_links(process, request)
    assert_child(reply, process)
    assert (tuple(request.links), tuple(reply.links)) == ((), ())
    # respond echoes the request's headers: the traceparent must be the reply span's, not the request's
    assert response.headers["traceparent"].split("-")[2] == format(reply.context.span_id, "016x")


async def test_wildcard_subscription_names_span_by_template(telemetry: Any, server: Any, connect: Any) -> None:
    nc = await connect(server.url)
    done = asyncio.Event()

    async def handler(msg: Any) -> None:
        done.set()

    await nc.subscribe("metrics.*.cpu", cb=handler)
    await nc.subscribe("logs.>", cb=handler)
    await nc.publish("metrics.host1.cpu", b"1")
    await nc.publish("logs.a.b", b"2")
    spans = await wait_spans(telemetry, 4)
    names = sorted(s.name for s in spans)
    assert names == ["process logs.>", "process metrics.*.cpu", "publish logs.a.b", "publish metrics.host1.cpu"]
    proc = by_name(spans, "process metrics.*.cpu")
    assert proc.attributes["messaging.destination.name"] == "metrics.host1.cpu"
    assert proc.attributes["messaging.destination.template"] == "metrics.*.cpu"


async def test_next_msg_and_async_for_make_receive_spans(telemetry: Any, server: Any, connect: Any) -> None:
    nc = await connect(server.url)
    sub = await nc.subscribe("jobs.>")
    await nc.publish("jobs.one", b"a")
    await nc.publish("jobs.two", b"bc")
    await synced(nc)
    for _ in range(200):  # both messages delivered to the client before the first receive
        if sub.pending_msgs == 2:
            break
        await asyncio.sleep(0.01)
    first = await sub.next_msg(timeout=5)
    assert first.data == b"a"
    async for second in sub.messages:
        assert second.data == b"bc"
        break
    with pytest.raises(Exception) as excinfo:
        await sub.next_msg(timeout=0.05)
    assert type(excinfo.value).__name__ == "TimeoutError"
    spans = await wait_spans(telemetry, 4)
    assert [s.name for s in spans] == ["publish jobs.one", "publish jobs.two", "receive jobs.>", "receive jobs.>"]
    pub1, pub2, recv1, recv2 = spans
    for recv, pub, data in ((recv1, pub1, b"a"), (recv2, pub2, b"bc")):
        assert recv.kind == SpanKind.CLIENT
        # the caller has no current span: a root of its own trace, linked to the message's producer
        assert recv.parent is None
        assert recv.context.trace_id != pub.context.trace_id
        assert_links(recv, pub)
        assert dict(recv.attributes) == {
            "messaging.system.name": "nats",
            "messaging.operation.type": "receive",
            "messaging.operation.name": "receive",
            "messaging.destination.name": pub.attributes["messaging.destination.name"],
            "messaging.destination.template": "jobs.>",
            "messaging.message.body.size": len(data),
            "messaging.nats.subscription.id": str(sub._id),
            "messaging.nats.delivered_messages": 2,
            "messaging.nats.pending_messages": recv.attributes["messaging.nats.pending_messages"],
            **conn_attrs(nc),
        }
    assert recv1.attributes["messaging.nats.pending_messages"] == 1
    assert recv2.attributes["messaging.nats.pending_messages"] == 0


@pytest.mark.parametrize("consumer_parent", ["parent", "link"])
async def test_receive_span_is_a_child_of_the_callers_span_with_a_link_to_the_producer(
    make_telemetry: Any, server: Any, connect: Any, consumer_parent: str
) -> None:
    telemetry = make_telemetry(consumer_parent=consumer_parent)
    nc = await connect(server.url)
    sub = await nc.subscribe("poll.jobs")
    await nc.publish("poll.jobs", b"1")
    await nc.publish("poll.jobs", b"2")
    tracer = telemetry.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("poll"):
        first = await sub.next_msg(timeout=5)
        async for second in sub.messages:
            assert (first.data, second.data) == (b"1", b"2")
            break
    spans = await wait_spans(telemetry, 5)
    names = [s.name for s in spans]
    assert names == ["publish poll.jobs", "publish poll.jobs", "poll", "receive poll.jobs", "receive poll.jobs"]
    pub1, pub2, poll, recv1, recv2 = spans
    for recv, pub in ((recv1, pub1), (recv2, pub2)):
        assert recv.kind == SpanKind.CLIENT
        assert_child(recv, poll)
        assert_links(recv, pub)
    assert poll.parent is None and poll.context.trace_id not in (pub1.context.trace_id, pub2.context.trace_id)


async def test_no_responders_is_recorded_and_reraised(telemetry: Any, server: Any, connect: Any) -> None:
    import nats.errors

    nc = await connect(server.url)
    with pytest.raises(nats.errors.NoRespondersError):
        await nc.request("nobody.home", b"?", timeout=2)
    (span,) = await wait_spans(telemetry, 1)
    assert span.name == "request nobody.home"
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == "NoRespondersError"
    assert [e.name for e in span.events] == ["exception"]


async def test_request_timeout_is_recorded(telemetry: Any, server: Any, connect: Any) -> None:
    import nats.errors

    nc = await connect(server.url)

    async def slow(msg: Any) -> None:
        await asyncio.sleep(0.3)

    await nc.subscribe("slow.svc", cb=slow)
    with pytest.raises(nats.errors.TimeoutError):
        await nc.request("slow.svc", b"", timeout=0.05)
    spans = await wait_spans(telemetry, 2)
    req = by_name(spans, "request slow.svc")
    assert req.attributes["error.type"] == "TimeoutError"
    assert req.status.status_code == StatusCode.ERROR


@pytest.mark.parametrize("mode", ["legacy", "dup"])
async def test_attribute_modes(make_telemetry: Any, server: Any, connect: Any, mode: str) -> None:
    telemetry = make_telemetry(semconv=mode)
    nc = await connect(server.url)
    got = asyncio.Event()

    async def handler(msg: Any) -> None:
        await msg.respond(b"ok")
        got.set()

    await nc.subscribe("mode.*", queue="q", cb=handler)
    await nc.request("mode.test", b"abc", timeout=5)
    request, process, reply = await wait_spans(telemetry, 3)
    assert [request.name, process.name, reply.name] == ["request mode.test", "process mode.*", "publish"]
    sid = process.attributes["messaging.nats.subscription.id"]
    inbox = process.attributes["messaging.nats.reply_to"]
    legacy = {"messaging.nats.subject": "mode.test", "messaging.nats.subscription.subject": "mode.*"}
    current = {"messaging.destination.template": "mode.*"}
    # semantic conventions 1.45 renamed messaging.system to messaging.system.name: legacy keeps the old key
    system = (
        {"messaging.system": "nats"}
        if mode == "legacy"
        else {"messaging.system": "nats", "messaging.system.name": "nats"}
    )
    expect_process: dict[str, Any] = {
        **system,
        "messaging.destination.name": "mode.test",
        "messaging.message.body.size": 3,
        "messaging.nats.reply_to": inbox,
        "messaging.nats.subscription.id": sid,
        "messaging.nats.delivered_messages": 1,
        "messaging.nats.pending_messages": 0,
        **conn_attrs(nc, mode),
    }
    expect_request: dict[str, Any] = {
        **system,
        "messaging.destination.name": "mode.test",
        "messaging.message.body.size": 3,
        **conn_attrs(nc, mode),
    }
    if mode in ("legacy", "dup"):
        expect_process.update(legacy, **{"messaging.operation": "receive", "messaging.nats.queue_group": "q"})
        expect_request.update(
            {
                "messaging.operation": "request",
                "messaging.nats.subject": "mode.test",
                "messaging.response.body.size": 2,
            }
        )
    if mode == "dup":
        expect_process.update(
            current,
            **{
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.consumer.group.name": "q",
            },
        )
        expect_request.update(
            {
                "messaging.operation.type": "send",
                "messaging.operation.name": "request",
                "messaging.nats.response.body.size": 2,
            }
        )
    assert dict(process.attributes) == expect_process
    assert dict(request.attributes) == expect_request
    assert reply.attributes["messaging.operation" if mode == "legacy" else "messaging.operation.name"] == (
        "reply" if mode == "legacy" else "publish"
    )


async def test_semconv_from_environment(make_telemetry: Any, server: Any, connect: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("OTEL_PYTHON_NATS_SEMCONV", "legacy")
    telemetry = make_telemetry()
    nc = await connect(server.url)
    await nc.publish("env.mode", b"")
    (span,) = await wait_spans(telemetry, 1)
    assert span.attributes["messaging.operation"] == "publish"
    assert "messaging.operation.name" not in span.attributes
    assert span.attributes["net.peer.port"] == server.port
