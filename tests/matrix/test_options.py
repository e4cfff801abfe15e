"""The instrumentation options on each client family: wildcard and queue subscriptions, captured
headers, excluded subjects, subject templates and ``max_destinations``, semantic-convention modes,
the JSON envelope, hooks."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation

from opentelemetry.instrumentation.nats import wrap_envelope
from tests.families import Family
from tests.helpers import Telemetry, by_name, wait_spans
from tests.matrix.expect import BASE, PROCESS, REQUEST, wait_for

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


async def test_semconv_from_the_environment(
    make_telemetry: Any, server: Any, family: Family, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_NATS_SEMCONV", "legacy")
    telemetry = make_telemetry()
    conn = await family.connect(server)
    await conn.publish("env.mode", b"")
    (span,) = await wait_spans(telemetry, 1)
    assert span.attributes["messaging.operation"] == "publish"
    assert "messaging.operation.name" not in span.attributes
    assert span.attributes["net.peer.port"] == server.port


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
