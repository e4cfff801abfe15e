"""instrument() options and their environment variables: validation, filters, link mode, semconv modes."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

import pytest
from opentelemetry.trace import SpanKind

from opentelemetry.instrumentation.nats import NatsInstrumentor
from opentelemetry.instrumentation.nats.config import NatsConfig, resolve_mode
from opentelemetry.instrumentation.nats.names import Mode
from opentelemetry.instrumentation.nats.operation import installed
from tests.helpers import by_name, conn_attrs, synced, wait_spans

# --- NatsConfig: defaults, environment variables, validation ----------------------------------


def test_defaults() -> None:
    cfg = NatsConfig.from_options({}, env={})
    assert cfg.mode is Mode.CURRENT
    assert cfg.consumer_parent == "parent"
    assert not cfg.link_mode
    assert cfg.excluded_subjects.patterns == ()
    assert cfg.captured_headers.patterns == ()
    assert cfg.envelope_subjects.patterns == ()
    assert (cfg.publish_hook, cfg.consume_hook, cfg.request_hook, cfg.response_hook) == (None, None, None, None)
    assert cfg.jetstream_stream_metrics_interval is None
    assert cfg.empty_fetch_spans is False
    assert cfg.exception_events is False


def test_options_are_read() -> None:
    def hook(*args: Any) -> None:
        return None

    cfg = NatsConfig.from_options(
        {
            "semconv": "LEGACY",
            "consumer_parent": " Link ",
            "excluded_subjects": ["health.>", " _INBOX.* ", ""],
            "captured_headers": ("X-Request-Id", "Tenant"),
            "envelope_subjects": "legacy.>,envelope.*.events",
            "publish_hook": hook,
            "consume_hook": hook,
            "request_hook": hook,
            "response_hook": hook,
            "jetstream_stream_metrics_interval": 30,
            "empty_fetch_spans": True,
        },
        env={},
    )
    assert cfg.mode is Mode.LEGACY
    assert cfg.link_mode
    assert cfg.excluded_subjects.patterns == ("health.>", "_INBOX.*")
    assert cfg.captured_headers.patterns == ("x-request-id", "tenant")
    assert cfg.envelope_subjects.patterns == ("legacy.>", "envelope.*.events")
    assert (cfg.publish_hook, cfg.consume_hook, cfg.request_hook, cfg.response_hook) == (hook, hook, hook, hook)
    assert cfg.jetstream_stream_metrics_interval == 30.0
    assert cfg.empty_fetch_spans is True


def test_environment_variables_fill_options_not_given() -> None:
    env = {
        "OTEL_PYTHON_NATS_SEMCONV": "dup",
        "OTEL_PYTHON_NATS_CONSUMER_PARENT": "LINK",
        "OTEL_PYTHON_NATS_EXCLUDED_SUBJECTS": "health.>, metrics.*",
        "OTEL_PYTHON_NATS_CAPTURED_HEADERS": "X-Request-Id,Tenant",
        "OTEL_PYTHON_NATS_ENVELOPE_SUBJECTS": "envelope.>",
        "OTEL_PYTHON_NATS_EMPTY_FETCH_SPANS": "TRUE",
    }
    cfg = NatsConfig.from_options({}, env=env)
    assert cfg.mode is Mode.DUP
    assert cfg.consumer_parent == "link"
    assert cfg.excluded_subjects.patterns == ("health.>", "metrics.*")
    assert cfg.captured_headers.patterns == ("x-request-id", "tenant")
    assert cfg.envelope_subjects.patterns == ("envelope.>",)
    assert cfg.empty_fetch_spans is True
    # an option beats its environment variable, even an empty list or False
    cfg = NatsConfig.from_options(
        {
            "semconv": "current",
            "consumer_parent": "parent",
            "excluded_subjects": [],
            "captured_headers": ["a"],
            "empty_fetch_spans": False,
        },
        env=env,
    )
    assert (cfg.mode, cfg.consumer_parent, cfg.empty_fetch_spans) == (Mode.CURRENT, "parent", False)
    assert cfg.excluded_subjects.patterns == ()
    assert cfg.captured_headers.patterns == ("a",)


def test_blank_environment_variables_are_ignored() -> None:
    env = {
        "OTEL_PYTHON_NATS_SEMCONV": " ",
        "OTEL_PYTHON_NATS_CONSUMER_PARENT": "",
        "OTEL_PYTHON_NATS_EXCLUDED_SUBJECTS": " ",
        "OTEL_PYTHON_NATS_EMPTY_FETCH_SPANS": "  ",
    }
    cfg = NatsConfig.from_options({}, env=env)
    assert (cfg.mode, cfg.consumer_parent, cfg.excluded_subjects.patterns) == (Mode.CURRENT, "parent", ())
    assert cfg.empty_fetch_spans is False


@pytest.mark.parametrize(
    ("options", "env", "message"),
    [
        ({"semconv": "stable"}, {}, "semconv: 'stable' is not one of current, legacy, dup"),
        ({"semconv": ""}, {}, "semconv: '' is not one of current, legacy, dup"),
        (
            {},
            {"OTEL_PYTHON_NATS_SEMCONV": "new"},
            "semconv (from OTEL_PYTHON_NATS_SEMCONV): 'new' is not one of current, legacy, dup",
        ),
        ({"consumer_parent": "child"}, {}, "consumer_parent: 'child' is not one of parent, link"),
        ({"consumer_parent": ""}, {}, "consumer_parent: '' is not one of parent, link"),
        (
            {},
            {"OTEL_PYTHON_NATS_CONSUMER_PARENT": "links"},
            "consumer_parent (from OTEL_PYTHON_NATS_CONSUMER_PARENT): 'links' is not one of parent, link",
        ),
        ({"excluded_subjects": 5}, {}, "excluded_subjects: expected a list of NATS subject patterns"),
        ({"excluded_subjects": b"a.b"}, {}, "excluded_subjects: expected a list of NATS subject patterns"),
        ({"excluded_subjects": [1]}, {}, "excluded_subjects: expected strings, got 1"),
        ({"excluded_subjects": ["a..b"]}, {}, "excluded_subjects: 'a..b' is not a valid NATS subject pattern"),
        ({"excluded_subjects": ["a.>.b"]}, {}, "'>' is allowed only as the last token"),
        ({"excluded_subjects": ["orders*"]}, {}, "wildcards '*' and '>' must be whole tokens"),
        ({"envelope_subjects": ["a b"]}, {}, "envelope_subjects: 'a b' is not a valid NATS subject pattern"),
        ({"captured_headers": ["x-*y"]}, {}, "captured_headers: 'x-*y' is not a valid NATS subject pattern"),
        (
            {},
            {"OTEL_PYTHON_NATS_EXCLUDED_SUBJECTS": "ok.*,bad..one"},
            "excluded_subjects (from OTEL_PYTHON_NATS_EXCLUDED_SUBJECTS): 'bad..one' is not a valid",
        ),
        ({"publish_hook": "print"}, {}, "publish_hook: expected a function or coroutine function"),
        ({"consume_hook": 1}, {}, "consume_hook: expected a function or coroutine function"),
        ({"request_hook": object()}, {}, "request_hook: expected a function or coroutine function"),
        ({"response_hook": [print]}, {}, "response_hook: expected a function or coroutine function"),
        ({"jetstream_stream_metrics_interval": 0}, {}, "jetstream_stream_metrics_interval: expected a positive"),
        ({"jetstream_stream_metrics_interval": -5}, {}, "jetstream_stream_metrics_interval: expected a positive"),
        ({"jetstream_stream_metrics_interval": "10"}, {}, "jetstream_stream_metrics_interval: expected a positive"),
        ({"jetstream_stream_metrics_interval": True}, {}, "jetstream_stream_metrics_interval: expected a positive"),
        ({"jetstream_stream_metrics_interval": math.nan}, {}, "jetstream_stream_metrics_interval: expected a positive"),
        (
            {"empty_fetch_spans": "maybe"},
            {},
            "empty_fetch_spans: 'maybe' is not a boolean (use true or false; 1/0, yes/no, on/off also work)",
        ),
        ({"empty_fetch_spans": 1}, {}, "empty_fetch_spans: 1 is not a boolean"),
        ({"empty_fetch_spans": ""}, {}, "empty_fetch_spans: '' is not a boolean"),
        (
            {},
            {"OTEL_PYTHON_NATS_EMPTY_FETCH_SPANS": "enabled"},
            "empty_fetch_spans (from OTEL_PYTHON_NATS_EMPTY_FETCH_SPANS): 'enabled' is not a boolean",
        ),
        ({"exception_events": "logs"}, {}, "exception_events: 'logs' is not a boolean"),
        (
            {},
            {"OTEL_PYTHON_NATS_EXCEPTION_EVENTS": "logs/dup"},
            "exception_events (from OTEL_PYTHON_NATS_EXCEPTION_EVENTS): 'logs/dup' is not a boolean",
        ),
    ],
)
def test_invalid_values_name_the_option_and_allowed_values(
    options: dict[str, Any], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError) as excinfo:
        NatsConfig.from_options(options, env=env)
    assert message in str(excinfo.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False)]
    + [(v, True) for v in ("true", "True", " 1 ", "yes", "ON")]
    + [(v, False) for v in ("false", "FALSE", "0", "no", " off ")],
)
def test_empty_fetch_spans_values(value: Any, expected: bool) -> None:
    assert NatsConfig.from_options({"empty_fetch_spans": value}, env={}).empty_fetch_spans is expected
    if isinstance(value, str):
        env = {"OTEL_PYTHON_NATS_EMPTY_FETCH_SPANS": value}
        assert NatsConfig.from_options({}, env=env).empty_fetch_spans is expected


@pytest.mark.parametrize(
    ("value", "expected"), [(True, True), (False, False), ("yes", True), (" OFF ", False), ("1", True)]
)
def test_exception_events_values(value: Any, expected: bool) -> None:
    assert NatsConfig.from_options({"exception_events": value}, env={}).exception_events is expected
    if isinstance(value, str):
        env = {"OTEL_PYTHON_NATS_EXCEPTION_EVENTS": value}
        assert NatsConfig.from_options({}, env=env).exception_events is expected
        # the keyword beats the variable
        assert NatsConfig.from_options({"exception_events": not expected}, env=env).exception_events is not expected


def test_unknown_option_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="opentelemetry.instrumentation.nats"):
        NatsConfig.from_options(
            {"excluded_subject": ["a"], "tracer_provider": None, "logger_provider": None, "skip_dep_check": True},
            env={},
        )
    assert [r.getMessage() for r in caplog.records] == [
        "NatsInstrumentor.instrument(): unknown option(s) ignored: excluded_subject"
    ]


@pytest.mark.parametrize(
    ("option", "env", "expected"),
    [
        (None, {}, Mode.CURRENT),
        ("legacy", {}, Mode.LEGACY),
        (Mode.DUP, {}, Mode.DUP),
        (None, {"OTEL_PYTHON_NATS_SEMCONV": "Legacy"}, Mode.LEGACY),
        (None, {"OTEL_SEMCONV_STABILITY_OPT_IN": "messaging"}, Mode.CURRENT),
        (None, {"OTEL_SEMCONV_STABILITY_OPT_IN": "http, messaging/dup"}, Mode.DUP),
        (None, {"OTEL_SEMCONV_STABILITY_OPT_IN": "messaging,messaging/dup"}, Mode.DUP),
        (None, {"OTEL_SEMCONV_STABILITY_OPT_IN": "http/dup,database"}, Mode.CURRENT),
        # OTEL_PYTHON_NATS_SEMCONV beats OTEL_SEMCONV_STABILITY_OPT_IN …
        (None, {"OTEL_PYTHON_NATS_SEMCONV": "legacy", "OTEL_SEMCONV_STABILITY_OPT_IN": "messaging/dup"}, Mode.LEGACY),
        (None, {"OTEL_PYTHON_NATS_SEMCONV": "current", "OTEL_SEMCONV_STABILITY_OPT_IN": "messaging/dup"}, Mode.CURRENT),
        # … and the option beats both
        (
            "current",
            {"OTEL_PYTHON_NATS_SEMCONV": "legacy", "OTEL_SEMCONV_STABILITY_OPT_IN": "messaging/dup"},
            Mode.CURRENT,
        ),
        ("legacy", {"OTEL_SEMCONV_STABILITY_OPT_IN": "messaging"}, Mode.LEGACY),
    ],
)
def test_semconv_mode_precedence(option: Any, env: dict[str, str], expected: Mode) -> None:
    assert resolve_mode(option, env) is expected


# --- through instrument() -----------------------------------------------------------------------


def test_invalid_option_fails_instrument_and_leaves_nothing_patched() -> None:
    import nats.aio.client

    original = nats.aio.client.Client.publish
    with pytest.raises(ValueError, match="consumer_parent: 'sideways' is not one of parent, link"):
        NatsInstrumentor().instrument(consumer_parent="sideways")
    assert nats.aio.client.Client.publish is original
    assert installed() is None
    assert not NatsInstrumentor().is_instrumented_by_opentelemetry


def test_invalid_environment_variable_fails_instrument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_PYTHON_NATS_EXCLUDED_SUBJECTS", "a.>.b")
    with pytest.raises(ValueError, match=r"excluded_subjects \(from OTEL_PYTHON_NATS_EXCLUDED_SUBJECTS\)"):
        NatsInstrumentor().instrument()
    assert installed() is None
    monkeypatch.delenv("OTEL_PYTHON_NATS_EXCLUDED_SUBJECTS")
    monkeypatch.setenv("OTEL_PYTHON_NATS_EMPTY_FETCH_SPANS", "sometimes")
    with pytest.raises(ValueError, match=r"empty_fetch_spans \(from OTEL_PYTHON_NATS_EMPTY_FETCH_SPANS\)"):
        NatsInstrumentor().instrument()
    assert installed() is None


async def test_semconv_stability_opt_in_end_to_end(
    make_telemetry: Any, server: Any, connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http,messaging/dup")
    telemetry = make_telemetry()
    nc = await connect(server.url)
    await nc.publish("optin.dup", b"ab")
    (span,) = await wait_spans(telemetry, 1)
    assert dict(span.attributes) == {
        "messaging.system.name": "nats",
        "messaging.system": "nats",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.operation": "publish",
        "messaging.destination.name": "optin.dup",
        "messaging.nats.subject": "optin.dup",
        "messaging.message.body.size": 2,
        **conn_attrs(nc, "dup"),
    }


# --- excluded_subjects ----------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["option", "env"])
async def test_excluded_subjects_get_no_span_and_no_injection(
    make_telemetry: Any, server: Any, connect: Any, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    patterns = "health.*,internal.>"
    if source == "env":
        monkeypatch.setenv("OTEL_PYTHON_NATS_EXCLUDED_SUBJECTS", patterns)
        telemetry = make_telemetry()
    else:
        telemetry = make_telemetry(excluded_subjects=patterns.split(","))
    nc = await connect(server.url)
    got: asyncio.Queue[Any] = asyncio.Queue()

    async def collect(msg: Any) -> None:
        await got.put(msg)

    async def responder(msg: Any) -> None:
        await msg.respond(b"pong")

    for subject in ("health.>", "internal.>", "internal"):
        await nc.subscribe(subject, cb=collect)
    await nc.subscribe("internal.svc.ping", cb=responder)
    await nc.subscribe("svc.ok", cb=responder)
    pull = await nc.subscribe("health.pull")
    await synced(nc)
    # excluded: `*` is one token, `>` is the rest
    await nc.publish("health.db", b"1")
    await nc.publish("internal.a.b.c", b"2")
    await nc.publish("health.pull", b"3")
    response = await nc.request("internal.svc.ping", b"", timeout=5)  # also makes the client's reply inbox
    assert (response.data, response.headers) == (b"pong", None)
    assert (await pull.next_msg(timeout=5)).headers is None
    # not excluded: `health.*` does not match two tokens, `internal.>` does not match `internal`
    await nc.publish("health.db.primary", b"4")
    await nc.publish("internal", b"5")
    assert (await nc.request("svc.ok", b"", timeout=5)).data == b"pong"
    seen: dict[str, Any] = {}
    while len(seen) < 6:
        msg = await asyncio.wait_for(got.get(), 5)
        seen[msg.subject] = msg
    for subject in ("health.db", "internal.a.b.c", "health.pull", "internal.svc.ping"):
        assert seen[subject].headers is None, subject
    for subject in ("health.db.primary", "internal"):
        assert set(seen[subject].headers) == {"traceparent"}, subject
    spans = await wait_spans(telemetry, 7)
    assert sorted(s.name for s in spans) == [
        "process health.>",
        "process internal",
        "process svc.ok",
        "publish",  # the reply of svc.ok (the reply to the excluded request made none)
        "publish health.db.primary",
        "publish internal",
        "request svc.ok",
    ]
    assert by_name(spans, "process health.>").attributes["messaging.destination.name"] == "health.db.primary"


# --- captured_headers -----------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["option", "env"])
async def test_captured_headers_record_only_listed_headers(
    make_telemetry: Any, server: Any, connect: Any, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    if source == "env":
        monkeypatch.setenv("OTEL_PYTHON_NATS_CAPTURED_HEADERS", "x-request-id, TENANT")
        telemetry = make_telemetry()
    else:
        telemetry = make_telemetry(captured_headers=["x-request-id", "TENANT"])
    nc = await connect(server.url)
    done = asyncio.Event()

    async def handler(msg: Any) -> None:
        done.set()

    await nc.subscribe("hdr.capture", cb=handler)
    await nc.publish(
        "hdr.capture", b"x", headers={"X-Request-Id": "req-42", "Tenant": "acme", "Authorization": "secret"}
    )
    await asyncio.wait_for(done.wait(), 5)
    publish, process = await wait_spans(telemetry, 2)
    expected = {
        "messaging.nats.message.header.x-request-id": "req-42",
        "messaging.nats.message.header.tenant": "acme",
    }
    for span in (publish, process):
        captured = {k: v for k, v in span.attributes.items() if k.startswith("messaging.nats.message.header.")}
        assert captured == expected, span.name
    assert process.attributes["messaging.destination.name"] == "hdr.capture"


# --- consumer_parent="link" -----------------------------------------------------------------------


@pytest.mark.parametrize("source", ["option", "env"])
async def test_link_mode_makes_consumer_spans_roots_linked_to_the_producer(
    make_telemetry: Any, server: Any, connect: Any, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    if source == "env":
        monkeypatch.setenv("OTEL_PYTHON_NATS_CONSUMER_PARENT", "link")
        telemetry = make_telemetry()
    else:
        telemetry = make_telemetry(consumer_parent="link")
    nc = await connect(server.url)
    done = asyncio.Event()

    async def handler(msg: Any) -> None:
        done.set()

    await nc.subscribe("link.cb", cb=handler)
    sub = await nc.subscribe("link.pull")
    await nc.publish("link.cb", b"")
    await nc.publish("link.pull", b"")
    await asyncio.wait_for(done.wait(), 5)
    await sub.next_msg(timeout=5)
    spans = await wait_spans(telemetry, 4)
    for producer_name, consumer_name, kind in (
        ("publish link.cb", "process link.cb", SpanKind.CONSUMER),
        ("publish link.pull", "receive link.pull", SpanKind.CLIENT),
    ):
        producer, consumer = by_name(spans, producer_name), by_name(spans, consumer_name)
        assert consumer.kind == kind
        assert consumer.parent is None
        assert consumer.context.trace_id != producer.context.trace_id
        assert [(link.context.trace_id, link.context.span_id) for link in consumer.links] == [
            (producer.context.trace_id, producer.context.span_id)
        ]


async def test_link_mode_message_without_context_has_no_links(make_telemetry: Any, server: Any, connect: Any) -> None:
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    telemetry = make_telemetry(consumer_parent="link")
    nc = await connect(server.url)
    sub = await nc.subscribe("link.none")
    with suppress_instrumentation():
        await nc.publish("link.none", b"")
    await sub.next_msg(timeout=5)
    (span,) = await wait_spans(telemetry, 1)
    assert (span.name, span.parent, tuple(span.links)) == ("receive link.none", None, ())
