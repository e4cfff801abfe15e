"""Core NATS on each client family (tests/families.py): spans, propagation, options, hooks, lifecycle.

Every test runs once per installed family (the ``family`` fixture) against a real nats-server; a
difference between the families is spelled out in the adapter, not here.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import Any

import pytest
import wrapt
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, StatusCode, get_current_span

from opentelemetry.instrumentation.nats import families as instrumented_families
from opentelemetry.instrumentation.nats import message_context, wrap_envelope
from tests.families import Conn, Family
from tests.helpers import Telemetry, assert_child, assert_links, by_name, wait_spans

BASE = {"messaging.system.name": "nats"}
PUBLISH = {**BASE, "messaging.operation.type": "send", "messaging.operation.name": "publish"}
REQUEST = {**BASE, "messaging.operation.type": "send", "messaging.operation.name": "request"}
PROCESS = {**BASE, "messaging.operation.type": "process", "messaging.operation.name": "process"}
RECEIVE = {**BASE, "messaging.operation.type": "receive", "messaging.operation.name": "receive"}


def span_id(span: Any) -> str:
    return format(span.context.span_id, "016x")


async def wait_for(check: Any, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


# --- spans and propagation -------------------------------------------------------------------------


async def test_publish_to_callback_is_one_trace(telemetry: Telemetry, server: Any, family: Family) -> None:
    pub, sub_conn = await family.connect(server), await family.connect(server)
    got: list[Any] = []
    sub = await sub_conn.on("orders.created", got.append)
    await pub.publish("orders.created", b"hello", headers={"App": "1"})
    publish, process = await wait_spans(telemetry, 2)

    assert (publish.name, publish.kind) == ("publish orders.created", SpanKind.PRODUCER)
    assert dict(publish.attributes) == {
        **PUBLISH,
        "messaging.destination.name": "orders.created",
        "messaging.message.body.size": 5,
        **family.conn_attrs(pub),
    }
    assert (process.name, process.kind) == ("process orders.created", SpanKind.CONSUMER)
    assert dict(process.attributes) == {
        **PROCESS,
        "messaging.destination.name": "orders.created",
        "messaging.message.body.size": 5,
        **family.callback_sub_attrs(sub, 1),
        **family.conn_attrs(sub_conn),
    }
    assert_child(process, publish)
    assert_links(process, publish)
    assert (publish.parent, tuple(publish.links)) == (None, ())
    (msg,) = got
    headers = family.headers(msg)
    assert headers["App"] == "1"
    assert headers["traceparent"].split("-")[2] == span_id(publish)
    # the application's own processing span, parented by the message's context
    ctx = message_context(msg)
    assert get_current_span(ctx).get_span_context().span_id == publish.context.span_id


async def test_request_reply_is_one_trace(telemetry: Telemetry, server: Any, family: Family) -> None:
    client, service = await family.connect(server), await family.connect(server)
    sub = await service.on("svc.ping", lambda msg: b"pong!", queue="workers")
    response = await client.request("svc.ping", b"ping")
    await service.settled()
    assert response.data == b"pong!"
    spans = await wait_spans(telemetry, 3)
    assert [s.name for s in spans] == ["request svc.ping", "process svc.ping", "publish"]
    request, process, reply = spans
    assert request.kind == SpanKind.CLIENT
    assert dict(request.attributes) == {
        **REQUEST,
        "messaging.destination.name": "svc.ping",
        "messaging.message.body.size": 4,
        "messaging.nats.response.body.size": 5,
        **family.conn_attrs(client),
    }
    inbox = process.attributes["messaging.nats.reply_to"]
    assert isinstance(inbox, str) and inbox.startswith("_INBOX.")
    assert process.kind == SpanKind.SERVER
    assert dict(process.attributes) == {
        **PROCESS,
        "messaging.destination.name": "svc.ping",
        "messaging.consumer.group.name": "workers",
        "messaging.message.body.size": 4,
        "messaging.nats.reply_to": inbox,
        **family.callback_sub_attrs(sub, 1),
        **family.conn_attrs(service),
    }
    assert reply.kind == SpanKind.PRODUCER
    assert dict(reply.attributes) == {
        **PUBLISH,
        "messaging.destination.name": inbox,
        "messaging.destination.temporary": True,
        "messaging.destination.anonymous": True,
        "messaging.message.body.size": 5,
        **family.conn_attrs(service),
    }
    assert_child(process, request)
    assert_links(process, request)
    assert_child(reply, process)
    assert (tuple(request.links), tuple(reply.links)) == ((), ())
    assert family.headers(response)["traceparent"].split("-")[2] == span_id(reply)


async def test_publish_to_an_inbox_is_a_temporary_destination(
    telemetry: Telemetry, server: Any, family: Family
) -> None:
    conn = await family.connect(server)
    inbox = conn.new_inbox()
    sub = await conn.subscribe(inbox)
    await conn.publish(inbox, b"x")
    msg = await conn.next_message(sub)
    publish, receive = await wait_spans(telemetry, 2)
    assert (publish.name, receive.name) == ("publish", "receive")
    temporary = {"messaging.destination.temporary": True, "messaging.destination.anonymous": True}
    assert dict(publish.attributes) == {
        **PUBLISH,
        "messaging.destination.name": inbox,
        **temporary,
        "messaging.message.body.size": 1,
        **family.conn_attrs(conn),
    }
    assert dict(receive.attributes) == {
        **RECEIVE,
        "messaging.destination.name": inbox,
        **temporary,
        "messaging.message.body.size": 1,
        **family.receive_sub_attrs(sub, 1, 0),
        **family.conn_attrs(conn),
    }
    assert msg.data == b"x"


async def test_next_and_async_for_make_receive_spans(telemetry: Telemetry, server: Any, family: Family) -> None:
    conn = await family.connect(server)
    sub = await conn.subscribe("jobs.>")
    await conn.publish("jobs.one", b"a")
    await conn.publish("jobs.two", b"bc")
    await conn.synced()
    await asyncio.sleep(0.05)  # both delivered before the first receive
    first = await conn.next_message(sub)
    second = await conn.iterate(sub)
    assert (first.data, second.data) == (b"a", b"bc")
    with pytest.raises(TimeoutError):
        await conn.next_message(sub, timeout=0.05)
    spans = await wait_spans(telemetry, 4)
    assert [s.name for s in spans] == ["publish jobs.one", "publish jobs.two", "receive jobs.>", "receive jobs.>"]
    pub1, pub2, recv1, recv2 = spans
    for n, (recv, pub, data) in enumerate(((recv1, pub1, b"a"), (recv2, pub2, b"bc")), 1):
        assert recv.kind == SpanKind.CLIENT
        assert recv.parent is None and recv.context.trace_id != pub.context.trace_id
        assert_links(recv, pub)
        assert dict(recv.attributes) == {
            **RECEIVE,
            "messaging.destination.name": pub.attributes["messaging.destination.name"],
            "messaging.destination.template": "jobs.>",
            "messaging.message.body.size": len(data),
            **family.receive_sub_attrs(sub, 2, 2 - n),
            **family.conn_attrs(conn),
        }


@pytest.mark.parametrize("consumer_parent", ["parent", "link"])
async def test_receive_span_is_a_child_of_the_callers_span(
    make_telemetry: Any, server: Any, family: Family, consumer_parent: str
) -> None:
    telemetry = make_telemetry(consumer_parent=consumer_parent)
    conn = await family.connect(server)
    sub = await conn.subscribe("poll.jobs")
    await conn.publish("poll.jobs", b"1")
    await conn.publish("poll.jobs", b"2")
    with telemetry.tracer_provider.get_tracer("app").start_as_current_span("poll"):
        await conn.next_message(sub)
        await conn.iterate(sub)
    pub1, pub2, poll, recv1, recv2 = await wait_spans(telemetry, 5)
    assert [s.name for s in (pub1, pub2, poll, recv1, recv2)] == [
        "publish poll.jobs",
        "publish poll.jobs",
        "poll",
        "receive poll.jobs",
        "receive poll.jobs",
    ]
    for recv, pub in ((recv1, pub1), (recv2, pub2)):
        assert_child(recv, poll)
        assert_links(recv, pub)


async def test_link_mode_makes_process_spans_roots_linked_to_the_producer(
    make_telemetry: Any, server: Any, family: Family
) -> None:
    telemetry = make_telemetry(consumer_parent="link")
    conn = await family.connect(server)
    await conn.on("linked.work", lambda msg: None)
    await conn.publish("linked.work", b"")
    publish, process = await wait_spans(telemetry, 2)
    assert process.parent is None and process.context.trace_id != publish.context.trace_id
    assert_links(process, publish)


async def test_no_responders_is_recorded_and_raised(telemetry: Telemetry, server: Any, family: Family) -> None:
    conn = await family.connect(server)
    with pytest.raises(Exception) as raised:
        await conn.request("nobody.home", b"?")
    assert type(raised.value).__name__ == family.no_responders
    (span,) = await wait_spans(telemetry, 1)
    assert span.name == "request nobody.home"
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == family.no_responders
    assert [e.name for e in span.events] == ["exception"]


async def test_request_timeout_is_recorded(telemetry: Telemetry, server: Any, family: Family) -> None:
    conn = await family.connect(server)
    await conn.subscribe("slow.svc")  # (a responder that never answers)
    with pytest.raises(Exception) as raised:
        await conn.request("slow.svc", b"", timeout=0.05)
    assert type(raised.value).__name__ == "TimeoutError"
    (span,) = await wait_spans(telemetry, 1)
    assert (span.name, span.attributes["error.type"]) == ("request slow.svc", "TimeoutError")
    assert span.status.status_code == StatusCode.ERROR


async def test_caller_headers_with_a_context_are_sent_unchanged(
    telemetry: Telemetry, server: Any, family: Family
) -> None:
    conn = await family.connect(server)
    sub = await conn.subscribe("own.ctx")
    own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    await conn.publish("own.ctx", b"", headers={"traceparent": own})
    msg = await conn.next_message(sub)
    publish, _ = await wait_spans(telemetry, 2)
    assert family.headers(msg)["traceparent"] == own
    assert publish.kind == SpanKind.CLIENT
    assert [format(link.context.span_id, "016x") for link in publish.links] == ["b7ad6b7169203331"]


# --- options ---------------------------------------------------------------------------------------


async def test_wildcard_and_queue_subscriptions(telemetry: Telemetry, server: Any, family: Family) -> None:
    conn = await family.connect(server)
    await conn.on("metrics.*.cpu", lambda msg: None, queue="g")
    await conn.on("logs.>", lambda msg: None)
    await conn.publish("metrics.host1.cpu", b"1")
    await conn.publish("logs.a.b", b"2")
    spans = await wait_spans(telemetry, 4)
    cpu = by_name(spans, "process metrics.*.cpu")
    logs = by_name(spans, "process logs.>")
    assert (cpu.attributes["messaging.destination.name"], cpu.attributes["messaging.destination.template"]) == (
        "metrics.host1.cpu",
        "metrics.*.cpu",
    )
    assert cpu.attributes["messaging.consumer.group.name"] == "g"
    assert "messaging.consumer.group.name" not in logs.attributes


async def test_captured_headers_and_message_id(make_telemetry: Any, server: Any, family: Family) -> None:
    telemetry = make_telemetry(captured_headers=["X-Tenant"])
    conn = await family.connect(server)
    await conn.on("hdr.work", lambda msg: None)
    await conn.publish("hdr.work", b"", headers={"X-Tenant": "acme", "Nats-Msg-Id": "m-1", "Other": "x"})
    publish, process = await wait_spans(telemetry, 2)
    for span in (publish, process):
        assert span.attributes["messaging.nats.message.header.x-tenant"] == "acme"
        assert span.attributes["messaging.message.id"] == "m-1"
        assert "messaging.nats.message.header.other" not in span.attributes


async def test_excluded_subjects_make_no_spans_and_carry_nothing(
    make_telemetry: Any, server: Any, family: Family
) -> None:
    telemetry = make_telemetry(excluded_subjects=["health.>"])
    conn = await family.connect(server)
    got: list[Any] = []
    await conn.on("health.>", got.append)
    sub = await conn.subscribe("health.>")
    with telemetry.tracer_provider.get_tracer("app").start_as_current_span("app"):
        await conn.publish("health.ping", b"")
    msg = await conn.next_message(sub)
    await wait_for(lambda: got)
    assert family.headers(msg) == {} and family.headers(got[0]) == {}
    assert [s.name for s in telemetry.spans()] == ["app"]


async def test_subject_templates_and_max_destinations(make_telemetry: Any, server: Any, family: Family) -> None:
    telemetry = make_telemetry(subject_templates=["orders.*.created"], max_destinations=1)
    conn = await family.connect(server)
    for subject in ("orders.1.created", "orders.2.created", "first.subject", "second.subject"):
        await conn.publish(subject, b"")
    spans = await wait_spans(telemetry, 4)
    assert [s.name for s in spans] == [
        "publish orders.*.created",
        "publish orders.*.created",
        "publish first.subject",
        "publish",  # past max_destinations
    ]
    assert spans[0].attributes["messaging.destination.template"] == "orders.*.created"
    assert spans[3].attributes["messaging.destination.name"] == "second.subject"


@pytest.mark.parametrize("mode", ["legacy", "dup"])
async def test_attribute_modes(make_telemetry: Any, server: Any, family: Family, mode: str) -> None:
    telemetry = make_telemetry(semconv=mode)
    conn = await family.connect(server)
    sub = await conn.on("mode.*", lambda msg: b"ok", queue="q")
    await conn.request("mode.test", b"abc")
    await conn.settled()
    request, process, reply = await wait_spans(telemetry, 3)
    assert [request.name, process.name, reply.name] == ["request mode.test", "process mode.*", "publish"]
    inbox = process.attributes["messaging.nats.reply_to"]
    system = {"messaging.system": "nats"} if mode == "legacy" else {"messaging.system": "nats", **BASE}
    expect_process: dict[str, Any] = {
        **system,
        "messaging.destination.name": "mode.test",
        "messaging.message.body.size": 3,
        "messaging.nats.reply_to": inbox,
        **family.callback_sub_attrs(sub, 1),
        **family.conn_attrs(conn, mode),
        "messaging.operation": "receive",
        "messaging.nats.subject": "mode.test",
        "messaging.nats.subscription.subject": "mode.*",
        "messaging.nats.queue_group": "q",
    }
    expect_request: dict[str, Any] = {
        **system,
        "messaging.destination.name": "mode.test",
        "messaging.message.body.size": 3,
        **family.conn_attrs(conn, mode),
        "messaging.operation": "request",
        "messaging.nats.subject": "mode.test",
        "messaging.response.body.size": 2,
    }
    if mode == "dup":
        expect_process.update(PROCESS, **{"messaging.destination.template": "mode.*"})
        expect_process["messaging.consumer.group.name"] = "q"
        expect_request.update(REQUEST, **{"messaging.nats.response.body.size": 2})
    assert dict(process.attributes) == expect_process
    assert dict(request.attributes) == expect_request
    legacy_op = reply.attributes.get("messaging.operation")
    assert legacy_op == family.legacy_reply_operation


async def test_envelope_subjects_parent_the_consumer(make_telemetry: Any, server: Any, family: Family) -> None:
    telemetry = make_telemetry(envelope_subjects=["legacy.>"])
    conn = await family.connect(server)
    await conn.on("legacy.orders", lambda msg: None)
    with telemetry.tracer_provider.get_tracer("app").start_as_current_span("producer") as producer:
        payload = wrap_envelope({"id": 1})
    with suppress_instrumentation():  # (a producer that only writes the envelope)
        await conn.publish("legacy.orders", payload)
    await conn.synced()
    await wait_for(lambda: len(telemetry.spans()) == 2)
    process = by_name(telemetry.spans(), "process legacy.orders")
    assert process.parent is not None and process.parent.span_id == producer.get_span_context().span_id


async def test_hooks(make_telemetry: Any, server: Any, family: Family) -> None:
    seen: list[tuple[str, Any]] = []

    def publish_hook(span: Any, subject: Any, payload: Any, headers: Any) -> None:
        span.set_attribute("app.hook", "publish")
        seen.append(("publish", subject))

    def request_hook(span: Any, subject: Any, payload: Any, headers: Any) -> None:
        span.set_attribute("app.hook", "request")
        seen.append(("request", subject))

    def response_hook(span: Any, msg: Any) -> None:
        span.set_attribute("app.response", msg.data.decode())

    def consume_hook(span: Any, msg: Any) -> None:
        span.set_attribute("app.hook", "consume")
        seen.append(("consume", msg.subject))

    telemetry = make_telemetry(
        publish_hook=publish_hook, request_hook=request_hook, response_hook=response_hook, consume_hook=consume_hook
    )
    conn = await family.connect(server)
    await conn.on("hooks.svc", lambda msg: b"pong")
    sub = await conn.subscribe("hooks.iter")
    await conn.request("hooks.svc", b"ping")
    await conn.settled()
    await conn.publish("hooks.iter", b"")
    await conn.next_message(sub)
    spans = await wait_spans(telemetry, 5)
    hooked = {s.name: (s.attributes.get("app.hook"), s.attributes.get("app.response")) for s in spans}
    assert hooked == {
        "request hooks.svc": ("request", "pong"),
        "process hooks.svc": ("consume", None),
        "publish": ("publish", None),
        "publish hooks.iter": ("publish", None),
        "receive hooks.iter": ("consume", None),
    }


async def test_a_failing_hook_is_contained(make_telemetry: Any, server: Any, family: Family) -> None:
    def broken(span: Any, *args: Any) -> None:
        raise RuntimeError("hook bug")

    telemetry = make_telemetry(publish_hook=broken, consume_hook=broken)
    conn = await family.connect(server)
    got: list[Any] = []
    await conn.on("hooks.broken", got.append)
    await conn.publish("hooks.broken", b"x")
    await wait_spans(telemetry, 2)
    assert [m.data for m in got] == [b"x"]


async def test_callback_errors_are_recorded_and_reach_the_client(
    telemetry: Telemetry, server: Any, family: Family, caplog: pytest.LogCaptureFixture
) -> None:
    conn = await family.connect(server)
    calls: list[bytes] = []

    def boom(msg: Any) -> None:
        calls.append(msg.data)
        raise ValueError("boom")

    await conn.on("errors.cb", boom)
    with caplog.at_level(logging.ERROR):
        await conn.publish("errors.cb", b"x")
        _, process = await wait_spans(telemetry, 2)
    assert calls == [b"x"]
    assert (process.status.status_code, process.attributes["error.type"]) == (StatusCode.ERROR, "ValueError")
    assert [e.name for e in process.events] == ["exception"]


async def test_suppressed_instrumentation_makes_no_spans(telemetry: Telemetry, server: Any, family: Family) -> None:
    conn = await family.connect(server)
    sub = await conn.subscribe("quiet.>")
    with suppress_instrumentation():
        await conn.publish("quiet.one", b"")
        msg = await conn.next_message(sub)
    assert family.headers(msg) == {}
    await asyncio.sleep(0.05)
    assert telemetry.spans() == []


async def test_client_connected_before_instrument_is_traced(make_telemetry: Any, server: Any, family: Family) -> None:
    conn = await family.connect(server)
    telemetry = make_telemetry()
    await conn.on("early.client", lambda msg: None)
    await conn.publish("early.client", b"")
    publish, process = await wait_spans(telemetry, 2)
    assert (publish.name, process.name) == ("publish early.client", "process early.client")
    assert dict(process.attributes)["messaging.nats.server.id"] == family.server_info(conn)["server_id"]


# --- lifecycle -------------------------------------------------------------------------------------


def _patched(family: Family) -> dict[str, Any]:
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
    before = _patched(family)
    assert not any(isinstance(v, wrapt.ObjectProxy) or hasattr(v, "_opentelemetry_nats") for v in before.values())
    telemetry = Telemetry()
    telemetry.instrument()
    patched = _patched(family)
    assert all(patched[k] is not before[k] and patched[k].__wrapped__ is before[k] for k in before)
    telemetry.instrument()  # a second call is a no-op
    assert _patched(family) == patched
    telemetry.uninstrument()
    assert all(_patched(family)[k] is before[k] for k in before)


async def test_after_uninstrument_nothing_is_traced_or_injected(
    telemetry: Telemetry, server: Any, family: Family
) -> None:
    conn = await family.connect(server)
    got: list[Any] = []
    await conn.on("after.un", got.append)  # the callback was wrapped while instrumented
    telemetry.uninstrument()
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
