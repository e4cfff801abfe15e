"""The instrumentation options on each client family: invalid values, semantic-convention modes and
their environment variables, excluded subjects, captured headers, ``consumer_parent="link"``,
wildcard and queue subscriptions. (Subject templates and ``max_destinations``: test_destinations.py;
the envelope: test_envelope.py; hooks: test_hooks.py. How the options and their environment
variables are read and validated: tests/test_options.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind

from opentelemetry.instrumentation.nats import NatsInstrumentor
from opentelemetry.instrumentation.nats.operation import installed
from tests.families import Family
from tests.helpers import Telemetry, assert_links, by_name, configured, wait_spans
from tests.matrix.expect import BASE, PROCESS, PUBLISH, REQUEST, wait_for
from tests.matrix.test_lifecycle_metrics import patched_attributes

# --- invalid options -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"consumer_parent": "sideways"}, "consumer_parent: 'sideways' is not one of parent, link"),
        ({"subject_templates": ["ok.*", "a.*x"]}, r"subject_templates: 'a\.\*x' is not a valid NATS subject pattern"),
    ],
)
async def test_an_invalid_option_fails_instrument_and_patches_nothing(
    family: Family, options: dict[str, Any], message: str
) -> None:
    before = patched_attributes(family)
    with pytest.raises(ValueError, match=message):
        NatsInstrumentor().instrument(**options)
    assert patched_attributes(family) == before
    assert installed() is None
    assert not NatsInstrumentor().is_instrumented_by_opentelemetry


# --- semantic-convention modes ---------------------------------------------------------------------


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


@pytest.mark.parametrize(
    ("variable", "value", "mode"),
    [
        ("OTEL_PYTHON_NATS_SEMCONV", "legacy", "legacy"),
        ("OTEL_SEMCONV_STABILITY_OPT_IN", "http,messaging/dup", "dup"),
    ],
)
async def test_semconv_mode_from_the_environment(
    make_telemetry: Any,
    server: Any,
    family: Family,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    mode: str,
) -> None:
    monkeypatch.setenv(variable, value)
    telemetry = make_telemetry()
    conn = await family.connect(server)
    await conn.publish("env.mode", b"ab")
    (span,) = await wait_spans(telemetry, 1)
    expected: dict[str, Any] = {
        "messaging.system": "nats",
        "messaging.operation": "publish",
        "messaging.destination.name": "env.mode",
        "messaging.nats.subject": "env.mode",
        "messaging.message.body.size": 2,
        **family.conn_attrs(conn, mode),
    }
    if mode == "dup":
        expected.update(PUBLISH)
    assert dict(span.attributes) == expected


# --- excluded_subjects -----------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["option", "env"])
async def test_excluded_subjects_get_no_span_and_no_injection(
    make_telemetry: Any, server: Any, family: Family, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    patterns = "health.*,internal.>"
    telemetry = configured(
        make_telemetry,
        monkeypatch,
        source,
        ("OTEL_PYTHON_NATS_EXCLUDED_SUBJECTS", patterns),
        excluded_subjects=patterns.split(","),
    )
    conn = await family.connect(server)
    got: list[Any] = []
    for subject in ("health.>", "internal.>", "internal"):
        await conn.on(subject, got.append)
    await conn.on("internal.svc.ping", lambda msg: b"pong")
    await conn.on("svc.ok", lambda msg: b"pong")
    pull = await conn.subscribe("health.pull")
    # excluded: `*` is one token, `>` is the rest
    with telemetry.tracer_provider.get_tracer("app").start_as_current_span("app"):
        await conn.publish("health.db", b"1")
        await conn.publish("internal.a.b.c", b"2")
        await conn.publish("health.pull", b"3")
        response = await conn.request("internal.svc.ping", b"")  # also makes the client's reply inbox
    await conn.settled()
    reply_traced = family.traces_replies_to_excluded_requests
    assert (response.data, set(family.headers(response))) == (b"pong", {"traceparent"} if reply_traced else set())
    assert (await conn.next_message(pull)).headers is None
    # not excluded: `health.*` does not match two tokens, `internal.>` does not match `internal`
    await conn.publish("health.db.primary", b"4")
    await conn.publish("internal", b"5")
    assert (await conn.request("svc.ok", b"")).data == b"pong"
    await conn.settled()
    await wait_for(lambda: len(got) == 6)
    seen = {msg.subject: msg for msg in got}
    for subject in ("health.db", "internal.a.b.c", "health.pull", "internal.svc.ping"):
        assert seen[subject].headers is None, subject
    for subject in ("health.db.primary", "internal"):
        assert set(family.headers(seen[subject])) == {"traceparent"}, subject
    spans = await wait_spans(telemetry, 9 if reply_traced else 8)
    assert sorted(s.name for s in spans) == [
        "app",  # (the excluded operations made no spans in it)
        "process health.>",
        "process internal",
        "process svc.ok",
        "publish",  # the reply of svc.ok
        *(["publish"] if reply_traced else []),  # the reply to the excluded request
        "publish health.db.primary",
        "publish internal",
        "request svc.ok",
    ]
    assert by_name(spans, "process health.>").attributes["messaging.destination.name"] == "health.db.primary"


# --- captured_headers ------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["option", "env"])
async def test_captured_headers_record_only_listed_headers_and_the_message_id(
    make_telemetry: Any, server: Any, family: Family, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    telemetry = configured(
        make_telemetry,
        monkeypatch,
        source,
        ("OTEL_PYTHON_NATS_CAPTURED_HEADERS", "x-request-id, TENANT"),
        captured_headers=["x-request-id", "TENANT"],
    )
    conn = await family.connect(server)
    await conn.on("hdr.capture", lambda msg: None)
    headers = {"X-Request-Id": "req-42", "Tenant": "acme", "Authorization": "secret", "Nats-Msg-Id": "m-1"}
    await conn.publish("hdr.capture", b"x", headers=headers)
    publish, process = await wait_spans(telemetry, 2)
    assert (publish.name, process.name) == ("publish hdr.capture", "process hdr.capture")
    for span in (publish, process):
        captured = {k: v for k, v in span.attributes.items() if k.startswith("messaging.nats.message.header.")}
        assert captured == {
            "messaging.nats.message.header.x-request-id": "req-42",
            "messaging.nats.message.header.tenant": "acme",
        }, span.name
        assert span.attributes["messaging.message.id"] == "m-1", span.name


# --- consumer_parent="link" ------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["option", "env"])
async def test_link_mode_makes_consumer_spans_roots_linked_to_the_producer(
    make_telemetry: Any, server: Any, family: Family, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    telemetry = configured(
        make_telemetry, monkeypatch, source, ("OTEL_PYTHON_NATS_CONSUMER_PARENT", "link"), consumer_parent="link"
    )
    conn = await family.connect(server)
    got: list[Any] = []
    await conn.on("link.cb", got.append)
    sub = await conn.subscribe("link.pull")
    await conn.publish("link.cb", b"")
    await conn.publish("link.pull", b"")
    await wait_for(lambda: got)
    await conn.next_message(sub)
    spans = await wait_spans(telemetry, 4)
    for producer_name, consumer_name, kind in (
        ("publish link.cb", "process link.cb", SpanKind.CONSUMER),
        ("publish link.pull", "receive link.pull", SpanKind.CLIENT),
    ):
        producer, consumer = by_name(spans, producer_name), by_name(spans, consumer_name)
        assert consumer.kind == kind
        assert consumer.parent is None
        assert consumer.context.trace_id != producer.context.trace_id
        assert_links(consumer, producer)


async def test_link_mode_message_without_context_has_no_links(make_telemetry: Any, server: Any, family: Family) -> None:
    telemetry = make_telemetry(consumer_parent="link")
    conn = await family.connect(server)
    sub = await conn.subscribe("link.none")
    with suppress_instrumentation():
        await conn.publish("link.none", b"")
    await conn.next_message(sub)
    (span,) = await wait_spans(telemetry, 1)
    assert (span.name, span.parent, tuple(span.links)) == ("receive link.none", None, ())


# --- subscriptions ---------------------------------------------------------------------------------


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
