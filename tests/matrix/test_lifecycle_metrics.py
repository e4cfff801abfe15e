"""instrument()/uninstrument() and the metrics on each client family."""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

import pytest
import wrapt
from opentelemetry.trace import SpanKind

from opentelemetry.instrumentation.nats import families as instrumented_families
from tests.families import Conn, Family
from tests.helpers import Telemetry
from tests.matrix.expect import BASE, wait_for

# --- lifecycle -------------------------------------------------------------------------------------


def patched_attributes(family: Family) -> dict[str, Any]:
    """Every attribute the instrumentation patches for ``family``, as it is now."""
    (table,) = [f for f in instrumented_families.FAMILIES if f.name == family.name]
    out = {}
    for patch in table.patches:
        owner_name, _, name = patch.attribute.rpartition(".")
        owner: Any = importlib.import_module(patch.module)
        for part in owner_name.split("."):
            owner = getattr(owner, part)
        out[f"{patch.module}:{patch.attribute}"] = owner.__dict__[name]
    return out


async def test_uninstrument_restores_every_patched_attribute_exactly(family: Family) -> None:
    before = patched_attributes(family)
    assert not any(isinstance(v, wrapt.ObjectProxy) or hasattr(v, "_opentelemetry_nats") for v in before.values())
    telemetry = Telemetry()
    telemetry.instrument()
    patched = patched_attributes(family)
    assert all(patched[k] is not before[k] and patched[k].__wrapped__ is before[k] for k in before)
    telemetry.instrument()  # a second call is a no-op
    assert patched_attributes(family) == patched
    telemetry.uninstrument()
    assert all(patched_attributes(family)[k] is before[k] for k in before)


async def test_after_uninstrument_nothing_is_traced_or_injected(
    telemetry: Telemetry, server: Any, family: Family
) -> None:
    conn = await family.connect(server)
    got: list[Any] = []
    sub = await conn.on("after.un", got.append)  # the callback was wrapped while instrumented
    (traced,) = family.callbacks(sub)
    telemetry.uninstrument()
    (own,) = family.callbacks(sub)  # the application's own callback again, not a pass-through wrapper
    assert (type(traced) is not type(own), own) == (True, traced.__wrapped__)
    await conn.publish("after.un", b"")
    await wait_for(lambda: got)
    await asyncio.sleep(0.05)
    assert family.headers(got[0]) == {}
    assert telemetry.spans() == []
    telemetry.instrument()


# --- metrics ---------------------------------------------------------------------------------------


def metrics(telemetry: Telemetry) -> dict[str, Any]:
    data = telemetry.metric_reader.get_metrics_data()
    return {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics} if data else {}


def points(metric: Any) -> list[Any]:
    return list(metric.data.data_points)


def base_metric(conn: Conn, op_type: str, op_name: str) -> dict[str, Any]:
    return {
        **BASE,
        "messaging.operation.type": op_type,
        "messaging.operation.name": op_name,
        "server.address": "127.0.0.1",
        "server.port": conn.server.port,
    }


async def test_publish_process_and_request_metrics(telemetry: Telemetry, server: Any, family: Family) -> None:
    conn = await family.connect(server)
    got: list[Any] = []
    await conn.on("metrics.orders", got.append, queue="g")
    await conn.on("metrics.svc", lambda msg: b"ok")
    for _ in range(3):
        await conn.publish("metrics.orders", b"12345")
    await conn.request("metrics.svc", b"hi")
    with pytest.raises(Exception) as raised:
        await conn.request("metrics.nobody", b"")
    assert type(raised.value).__name__ == family.no_responders
    await conn.settled()
    await wait_for(lambda: len(got) == 3)
    m = metrics(telemetry)
    send = {**base_metric(conn, "send", "publish"), "messaging.destination.name": "metrics.orders"}
    sent = {tuple(sorted(p.attributes.items())): p.value for p in points(m["messaging.client.sent.messages"])}
    request = {**base_metric(conn, "send", "request"), "messaging.destination.name": "metrics.svc"}
    failed = {
        **base_metric(conn, "send", "request"),
        "messaging.destination.name": "metrics.nobody",
        "error.type": family.no_responders,
    }
    reply = base_metric(conn, "send", "publish")  # the inbox never becomes a metric attribute
    assert sent == {
        tuple(sorted(send.items())): 3,
        tuple(sorted(request.items())): 1,
        tuple(sorted(failed.items())): 1,
        tuple(sorted(reply.items())): 1,
    }
    consumed = {
        p.attributes["messaging.destination.name"]: p.value for p in points(m["messaging.client.consumed.messages"])
    }
    assert consumed == {"metrics.orders": 3, "metrics.svc": 1}
    (process,) = [
        p
        for p in points(m["messaging.process.duration"])
        if p.attributes["messaging.destination.name"] == "metrics.orders"
    ]
    assert (process.count, dict(process.attributes)) == (
        3,
        {
            **base_metric(conn, "process", "process"),
            "messaging.destination.name": "metrics.orders",
            "messaging.consumer.group.name": "g",
        },
    )


async def test_reconnect_metrics_and_connections(telemetry: Telemetry, family: Family) -> None:
    from tests.natsserver import NatsServer

    srv = NatsServer().start()
    try:
        conn = await family.connect(srv, reconnect=True)
        (gauge,) = points(metrics(telemetry)["messaging.nats.client.connections"])
        assert (gauge.value, dict(gauge.attributes)) == (
            1,
            {**BASE, "server.address": "127.0.0.1", "server.port": srv.port},
        )
        srv.stop()
        await asyncio.sleep(0.3)
        srv.start()
        await wait_for(lambda: "reconnected" in conn.events, timeout=10)
        assert conn.events == ["disconnected", "reconnected"]
        m = metrics(telemetry)
        (reconnects,) = points(m["messaging.nats.client.reconnects"])
        assert (reconnects.value, dict(reconnects.attributes)) == (
            1,
            {**BASE, "server.address": "127.0.0.1", "server.port": srv.port},
        )
        (down,) = points(m["messaging.nats.client.disconnect.duration"])
        assert down.count == 1 and down.sum >= 0.2
        await conn.close()
        (gauge,) = points(metrics(telemetry)["messaging.nats.client.connections"])
        assert gauge.value == 0
    finally:
        srv.cleanup()


async def test_slow_consumer_drops_are_counted(telemetry: Telemetry, server: Any, family: Family) -> None:
    conn = await family.connect(server)
    sub = await conn.subscribe("slow.metrics", limit=2)
    for _ in range(20):
        await conn.publish("slow.metrics", b"x")
    await conn.synced()
    await wait_for(lambda: family.dropped(conn, sub) >= 15)
    await asyncio.sleep(0.05)
    dropped_now = family.dropped(conn, sub)
    m = metrics(telemetry)
    (dropped,) = points(m["messaging.nats.client.dropped.messages"])
    assert (dropped.value, dict(dropped.attributes)) == (
        dropped_now,
        {
            **BASE,
            "server.address": "127.0.0.1",
            "server.port": server.port,
            "messaging.destination.name": "slow.metrics",
        },
    )
    pending = {
        p.attributes.get("messaging.destination.name"): p.value
        for p in points(m["messaging.nats.subscription.pending.messages"])
    }
    assert pending["slow.metrics"] == family.pending(sub) > 0
    await conn.consume_pending(sub)
    consumed = [s for s in telemetry.spans() if s.name.endswith(" slow.metrics") and s.kind != SpanKind.PRODUCER]
    assert consumed[-1].attributes["messaging.nats.dropped_messages"] == dropped_now
