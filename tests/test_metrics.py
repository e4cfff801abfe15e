"""Metrics against real traffic: names, units, bucket advice, attributes and exact counts."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import nats.errors
import pytest

from opentelemetry.instrumentation.nats.names import DURATION_BUCKETS_MS, DURATION_BUCKETS_S
from opentelemetry.instrumentation.nats.operation import installed
from tests.natsserver import NatsServer


def metrics(telemetry: Any) -> dict[str, Any]:
    """``{metric name: metric}`` from the in-memory reader (one collection)."""
    data = telemetry.metric_reader.get_metrics_data()
    out: dict[str, Any] = {}
    if data is None:
        return out
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out[m.name] = m
    return out


def points(metric: Any) -> list[Any]:
    return list(metric.data.data_points)


def base(server: Any, op_type: str | None, op_name: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "messaging.system.name": "nats",
        "messaging.operation.name": op_name,
        "server.address": "127.0.0.1",
        "server.port": server.port,
    }
    if op_type:
        attrs["messaging.operation.type"] = op_type
    return attrs


async def test_publish_and_process_metrics(telemetry: Any, server: Any, connect: Any) -> None:
    nc = await connect(server.url)
    got = 0
    done = asyncio.Event()

    async def handler(msg: Any) -> None:
        nonlocal got
        got += 1
        if got == 10:
            done.set()

    await nc.subscribe("metrics.orders", queue="g", cb=handler)
    for _ in range(10):
        await nc.publish("metrics.orders", b"12345")
    await asyncio.wait_for(done.wait(), 5)
    await asyncio.sleep(0.05)
    m = metrics(telemetry)
    send = {**base(server, "send", "publish"), "messaging.destination.name": "metrics.orders"}
    proc = {
        **base(server, "process", "process"),
        "messaging.destination.name": "metrics.orders",
        "messaging.consumer.group.name": "g",
    }
    (sent,) = points(m["messaging.client.sent.messages"])
    assert (m["messaging.client.sent.messages"].unit, sent.value, dict(sent.attributes)) == ("{message}", 10, send)
    (sent_bytes,) = points(m["messaging.nats.client.sent.bytes"])
    assert (m["messaging.nats.client.sent.bytes"].unit, sent_bytes.value) == ("By", 50)
    (duration,) = points(m["messaging.client.operation.duration"])
    assert m["messaging.client.operation.duration"].unit == "s"
    assert (duration.count, dict(duration.attributes)) == (10, send)
    assert tuple(duration.explicit_bounds) == DURATION_BUCKETS_S
    (consumed,) = points(m["messaging.client.consumed.messages"])
    assert (consumed.value, dict(consumed.attributes)) == (10, proc)
    (process,) = points(m["messaging.process.duration"])
    assert (m["messaging.process.duration"].unit, process.count, dict(process.attributes)) == ("s", 10, proc)
    (received,) = points(m["messaging.nats.client.received.bytes"])
    assert received.value == 50
    assert not any(name.startswith("messaging.nats.publish") for name in m)


async def test_request_metrics_and_no_responders(telemetry: Any, server: Any, connect: Any) -> None:
    nc = await connect(server.url)

    async def handler(msg: Any) -> None:
        await msg.respond(b"ok")

    await nc.subscribe("metrics.svc", cb=handler)
    await nc.request("metrics.svc", b"hi", timeout=5)
    with pytest.raises(nats.errors.NoRespondersError):
        await nc.request("metrics.nobody", b"", timeout=5)
    await asyncio.sleep(0.05)
    m = metrics(telemetry)
    durations = {
        tuple(sorted(dict(p.attributes).items())): p.count for p in points(m["messaging.client.operation.duration"])
    }
    req = {**base(server, "send", "request"), "messaging.destination.name": "metrics.svc"}
    failed = {
        **base(server, "send", "request"),
        "messaging.destination.name": "metrics.nobody",
        "error.type": "NoRespondersError",
    }
    reply = base(server, "send", "publish")  # the inbox never becomes a metric attribute
    assert durations == {
        tuple(sorted(req.items())): 1,
        tuple(sorted(failed.items())): 1,
        tuple(sorted(reply.items())): 1,
    }


@pytest.mark.parametrize("mode", ["legacy", "dup"])
async def test_legacy_metric_names_and_units(make_telemetry: Any, server: Any, connect: Any, mode: str) -> None:
    telemetry = make_telemetry(semconv=mode)
    nc = await connect(server.url)
    done = asyncio.Event()

    async def handler(msg: Any) -> None:
        done.set()

    await nc.subscribe("legacy.metrics", cb=handler)
    await nc.publish("legacy.metrics", b"abc")
    await asyncio.wait_for(done.wait(), 5)
    await asyncio.sleep(0.05)
    m = metrics(telemetry)
    (pub,) = points(m["messaging.nats.publish.duration"])
    assert m["messaging.nats.publish.duration"].unit == "ms"
    assert tuple(pub.explicit_bounds) == DURATION_BUCKETS_MS
    assert pub.attributes["messaging.operation"] == "publish"
    assert pub.attributes["net.peer.port"] == server.port
    assert points(m["messaging.nats.publish.messages"])[0].value == 1
    assert points(m["messaging.nats.publish.bytes"])[0].value == 3
    assert points(m["messaging.nats.receive.messages"])[0].value == 1
    assert points(m["messaging.nats.receive.bytes"])[0].value == 3
    assert m["messaging.nats.receive.duration"].unit == "ms"
    assert points(m["messaging.nats.receive.duration"])[0].count == 1
    assert ("messaging.client.sent.messages" in m) == (mode == "dup")
    assert ("messaging.process.duration" in m) == (mode == "dup")


async def test_reconnect_metrics_and_user_callbacks(telemetry: Any, connect: Any) -> None:
    srv = NatsServer().start()
    calls: list[str] = []

    async def disconnected_cb() -> None:
        calls.append("disconnected")

    async def reconnected_cb() -> None:
        calls.append("reconnected")

    async def closed_cb() -> None:
        calls.append("closed")

    try:
        nc = await connect(
            srv.url,
            disconnected_cb=disconnected_cb,
            reconnected_cb=reconnected_cb,
            closed_cb=closed_cb,
            reconnect_time_wait=0.1,
            max_reconnect_attempts=100,
        )
        (conn,) = points(metrics(telemetry)["messaging.nats.client.connections"])
        assert (conn.value, dict(conn.attributes)) == (
            1,
            {"messaging.system.name": "nats", "server.address": "127.0.0.1", "server.port": srv.port},
        )
        srv.stop()
        await asyncio.sleep(0.3)
        srv.start()
        for _ in range(100):
            if nc.is_connected and "reconnected" in calls:
                break
            await asyncio.sleep(0.05)
        assert calls == ["disconnected", "reconnected"]
        m = metrics(telemetry)
        (reconnects,) = points(m["messaging.nats.client.reconnects"])
        assert (m["messaging.nats.client.reconnects"].unit, reconnects.value) == ("{reconnect}", 1)
        (down,) = points(m["messaging.nats.client.disconnect.duration"])
        assert down.count == 1 and down.sum >= 0.2
        await nc.close()
        assert calls == ["disconnected", "reconnected", "disconnected", "closed"]
        (conn,) = points(metrics(telemetry)["messaging.nats.client.connections"])
        assert conn.value == 0
    finally:
        srv.cleanup()


async def test_jetstream_lag_redelivery_and_ack_duration(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js = nc.jetstream()
    stream = f"MS_{uuid.uuid4().hex[:6]}"
    await js.add_stream(name=stream, subjects=[f"{stream}.>"])
    psub = await js.pull_subscribe(f"{stream}.q", durable="lag")
    await js.publish(f"{stream}.q", b"0")
    (first,) = await psub.fetch(1, timeout=5)
    await first.nak()
    (again,) = await psub.fetch(1, timeout=5)
    assert again.metadata.num_delivered == 2
    await again.ack()
    for i in (1, 2):
        await js.publish(f"{stream}.q", str(i).encode())
    (last,) = await psub.fetch(1, timeout=5)
    m = metrics(telemetry)
    lag = {
        (p.attributes["messaging.nats.jetstream.stream"], p.attributes["messaging.nats.jetstream.consumer"]): p.value
        for p in points(m["messaging.nats.jetstream.consumer.pending"])
    }
    assert lag[(stream, "lag")] == last.metadata.num_pending == 1
    (redelivered,) = points(m["messaging.nats.jetstream.consumer.redelivered"])
    assert redelivered.value == 1
    ops = {p.attributes["messaging.operation.name"]: p.count for p in points(m["messaging.client.operation.duration"])}
    assert (ops["ack"], ops["nak"], ops["fetch"], ops["publish"]) == (1, 1, 3, 3)
    consumed = sum(p.value for p in points(m["messaging.client.consumed.messages"]))
    assert consumed == 3


async def test_stream_polling_is_opt_in_and_stops(make_telemetry: Any, js_server: Any, connect: Any) -> None:
    telemetry = make_telemetry(jetstream_stream_metrics_interval=0.1)
    nc = await connect(js_server.url)
    js = nc.jetstream()
    stream = f"POLL_{uuid.uuid4().hex[:6]}"
    await js.add_stream(name=stream, subjects=[f"{stream}.>"])
    await js.publish(f"{stream}.a", b"12345")
    await asyncio.sleep(0.35)
    m = metrics(telemetry)
    sizes = {
        p.attributes["messaging.nats.jetstream.stream"]: p.value
        for p in points(m["messaging.nats.jetstream.stream.messages"])
    }
    assert sizes[stream] == 1
    rec = installed()
    assert rec is not None and rec.metrics is not None and len(rec.metrics.tasks) == 1
    spans = [s.name for s in telemetry.spans()]
    assert spans == [f"publish {stream}.a"]  # polling makes no spans
    await nc.close()
    await asyncio.sleep(0.05)
    assert rec.metrics.tasks == set()
