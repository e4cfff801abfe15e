"""Exception events (``exception_events``): the semantic conventions' log-based
``messaging.{send,receive,process,settle}.exception`` events, read back from the SDK's in-memory log
exporter, on every opentelemetry-api this package supports (1.30 writes the event name as an
``event.name`` attribute; 1.35 and newer as the record's event name)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import nats
import nats.errors
import nats.js.errors
import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode

from opentelemetry.instrumentation.nats import NatsInstrumentor
from opentelemetry.instrumentation.nats.operation import installed
from tests.helpers import by_name, instrumented_command, wait_spans

try:  # opentelemetry-sdk 1.39 and newer (InMemoryLogExporter is its deprecated old name)
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter as InMemoryLogExporter
except ImportError:  # 1.30 to 1.38
    from opentelemetry.sdk._logs.export import InMemoryLogExporter

SCOPE = "opentelemetry.instrumentation.nats"
SCHEMA_URL = "https://opentelemetry.io/schemas/1.45.0"
APP = Path(__file__).parent / "apps" / "failing_request_app.py"


class Event(NamedTuple):
    """An exported log record, read the same way on every SDK release."""

    name: str
    severity: int
    severity_text: str | None
    trace_id: int
    span_id: int
    trace_flags: int
    attributes: dict[str, Any]  # without exception.stacktrace
    stacktrace: str
    body: Any
    resource: Resource
    scope: Any


class Logs:
    """A LoggerProvider with an in-memory exporter (the SDK's own)."""

    def __init__(self) -> None:
        self.resource = Resource.create({"service.name": "exception-events-test"})
        self.provider = LoggerProvider(resource=self.resource)
        self.exporter = InMemoryLogExporter()
        self.provider.add_log_record_processor(SimpleLogRecordProcessor(self.exporter))

    def events(self) -> list[Event]:
        out = []
        for exported in self.exporter.get_finished_logs():
            record = exported.log_record
            attrs = dict(record.attributes or {})
            name = getattr(record, "event_name", None)
            if name is None:  # opentelemetry-sdk before 1.35: no event name field
                name = attrs.pop("event.name")
            out.append(
                Event(
                    name,
                    int(record.severity_number.value),
                    record.severity_text,
                    record.trace_id,
                    record.span_id,
                    int(record.trace_flags),
                    {k: v for k, v in attrs.items() if k != "exception.stacktrace"},
                    attrs.get("exception.stacktrace", ""),
                    record.body,
                    getattr(exported, "resource", None) or record.resource,
                    exported.instrumentation_scope,
                )
            )
        return out


@pytest.fixture
def logs() -> Iterator[Logs]:
    made = Logs()
    yield made
    made.provider.shutdown()


def _server(url: str) -> dict[str, Any]:
    host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
    return {"server.address": host, "server.port": int(port)}


def assert_event(event: Event, span: Any, name: str, severity: int, exc: BaseException, attrs: dict[str, Any]) -> None:
    """``event`` is the ``name`` event of ``exc``, in the context of ``span``, with exactly ``attrs``
    besides the exception's own attributes."""
    cls = type(exc)
    exc_type = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    assert (event.name, event.severity, event.severity_text) == (name, severity, {13: "WARN", 17: "ERROR"}[severity])
    assert (event.trace_id, event.span_id) == (span.context.trace_id, span.context.span_id)
    assert event.trace_flags == int(span.context.trace_flags)
    assert event.attributes == {"exception.type": exc_type, "exception.message": str(exc), **attrs}
    assert event.stacktrace.startswith("Traceback (most recent call last):\n")
    assert event.stacktrace.endswith(f"{exc_type}: {exc}\n")
    assert event.body is None
    assert event.scope.name == SCOPE
    assert event.scope.schema_url == SCHEMA_URL


async def test_failed_request_emits_one_send_exception_event(
    make_telemetry: Any, logs: Logs, server: Any, connect: Any
) -> None:
    telemetry = make_telemetry(exception_events=True, logger_provider=logs.provider)
    nc = await connect(server.url)
    with pytest.raises(nats.errors.NoRespondersError) as raised:
        await nc.request("nobody.home", b"?", timeout=2)
    (span,) = await wait_spans(telemetry, 1)
    assert span.name == "request nobody.home"
    (event,) = logs.events()
    assert_event(
        event,
        span,
        "messaging.send.exception",
        13,
        raised.value,
        {
            "messaging.system.name": "nats",
            "messaging.operation.type": "send",
            "messaging.operation.name": "request",
            "messaging.destination.name": "nobody.home",
            **_server(server.url),
            "error.type": "NoRespondersError",
        },
    )
    assert event.resource == logs.resource  # the logger provider's resource
    # the span records the exception as before (the event is in addition to it)
    assert span.attributes["error.type"] == "NoRespondersError"
    assert [e.name for e in span.events] == ["exception"]


@pytest.mark.parametrize("mode", ["legacy", "dup"])
async def test_event_attributes_follow_the_mode(
    make_telemetry: Any, logs: Logs, server: Any, connect: Any, mode: str
) -> None:
    telemetry = make_telemetry(semconv=mode, exception_events=True, logger_provider=logs.provider)
    nc = await connect(server.url)
    with pytest.raises(nats.errors.NoRespondersError) as raised:
        await nc.request("nobody.home", b"?", timeout=2)
    (span,) = await wait_spans(telemetry, 1)
    host, port = _server(server.url).values()
    legacy = {
        "messaging.system": "nats",
        "messaging.operation": "request",
        "messaging.nats.subject": "nobody.home",
        "net.peer.name": host,
        "net.peer.port": port,
    }
    current = {
        "messaging.system.name": "nats",
        "messaging.operation.type": "send",
        "messaging.operation.name": "request",
        "server.address": host,
        "server.port": port,
    }
    (event,) = logs.events()
    assert_event(
        event,
        span,
        "messaging.send.exception",
        13,
        raised.value,
        {
            **legacy,
            **(current if mode == "dup" else {}),
            "messaging.destination.name": "nobody.home",
            "error.type": "NoRespondersError",
        },
    )


async def test_failed_jetstream_publish_emits_a_send_event(
    make_telemetry: Any, logs: Logs, js_server: Any, connect: Any
) -> None:
    telemetry = make_telemetry(exception_events=True, logger_provider=logs.provider)
    nc = await connect(js_server.url)
    js = nc.jetstream()
    with pytest.raises(nats.js.errors.NoStreamResponseError) as raised:  # no stream on the subject
        await js.publish("no.stream.here", b"x")
    (span,) = await wait_spans(telemetry, 1)
    (event,) = logs.events()
    assert_event(
        event,
        span,
        "messaging.send.exception",
        13,
        raised.value,
        {
            "messaging.system.name": "nats",
            "messaging.operation.type": "send",
            "messaging.operation.name": "publish",
            "messaging.destination.name": "no.stream.here",
            **_server(js_server.url),
            "error.type": "NoStreamResponseError",
        },
    )


async def test_raising_callback_emits_a_process_event(
    make_telemetry: Any, logs: Logs, server: Any, connect: Any
) -> None:
    telemetry = make_telemetry(exception_events=True, logger_provider=logs.provider)
    reported: asyncio.Queue[BaseException] = asyncio.Queue()

    async def error_cb(exc: BaseException) -> None:
        await reported.put(exc)

    nc = await connect(server.url, error_cb=error_cb)
    error = RuntimeError("handler failed")

    async def handler(msg: Any) -> None:
        raise error

    await nc.subscribe("jobs.*", queue="workers", cb=handler)
    await nc.publish("jobs.1", b"work")
    assert await asyncio.wait_for(reported.get(), 5) is error  # nats-py reports it, as without us
    spans = await wait_spans(telemetry, 2)
    process = by_name(spans, "process jobs.*")
    assert process.status.status_code == StatusCode.ERROR
    (event,) = logs.events()
    assert_event(
        event,
        process,
        "messaging.process.exception",
        17,
        error,
        {
            "messaging.system.name": "nats",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.template": "jobs.*",
            "messaging.consumer.group.name": "workers",
            **_server(server.url),
            "error.type": "RuntimeError",
        },
    )


async def test_raising_micro_handler_emits_a_process_event(
    make_telemetry: Any, logs: Logs, server: Any, connect: Any
) -> None:
    from nats.micro import add_service
    from nats.micro.service import EndpointConfig, ServiceConfig

    telemetry = make_telemetry(exception_events=True, logger_provider=logs.provider)
    nc = await connect(server.url)
    error = ValueError("bad input")

    async def failing(req: Any) -> None:
        raise error

    svc = await add_service(nc, ServiceConfig(name="calc", version="1.0.0"))
    await svc.add_endpoint(EndpointConfig(name="div", subject="calc.div", handler=failing))
    response = await nc.request("calc.div", b"1/0", timeout=5)
    assert response.headers["Nats-Service-Error-Code"] == "500"
    spans = await wait_spans(telemetry, 3)
    process = by_name(spans, "process calc.div", SpanKind.SERVER)
    (event,) = logs.events()
    assert_event(
        event,
        process,
        "messaging.process.exception",
        17,
        error,
        {
            "messaging.system.name": "nats",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": "calc.div",
            "messaging.consumer.group.name": "q",
            **_server(server.url),
            "error.type": "500",  # as on the span: the service error code
        },
    )
    await svc.stop()


async def test_failed_ack_emits_a_settle_event(make_telemetry: Any, logs: Logs, js_server: Any, connect: Any) -> None:
    telemetry = make_telemetry(exception_events=True, logger_provider=logs.provider)
    nc = await connect(js_server.url)
    js = nc.jetstream()
    stream = f"EXC_{uuid.uuid4().hex[:8]}"
    await js.add_stream(name=stream, subjects=[f"{stream}.>"])
    psub = await js.pull_subscribe(f"{stream}.jobs", durable="worker")
    await js.publish(f"{stream}.jobs", b"job")
    (msg,) = await psub.fetch(1, timeout=5)
    await msg.ack()
    with pytest.raises(nats.errors.MsgAlreadyAckdError) as raised:
        await msg.ack()
    spans = await wait_spans(telemetry, 4)
    double = [s for s in spans if s.name == f"ack {stream}"][1]
    assert double.status.status_code == StatusCode.ERROR
    (event,) = logs.events()
    assert_event(
        event,
        double,
        "messaging.settle.exception",
        13,
        raised.value,
        {
            "messaging.system.name": "nats",
            "messaging.operation.type": "settle",
            "messaging.operation.name": "ack",
            "messaging.destination.name": f"{stream}.jobs",
            **_server(js_server.url),
            "error.type": "MsgAlreadyAckdError",
        },
    )


async def test_failed_fetch_emits_a_receive_event_and_empty_fetches_none(
    make_telemetry: Any, logs: Logs, js_server: Any, connect: Any
) -> None:
    telemetry = make_telemetry(exception_events=True, logger_provider=logs.provider, empty_fetch_spans=True)
    nc = await connect(js_server.url)
    js = nc.jetstream()
    stream = f"EXC_{uuid.uuid4().hex[:8]}"
    await js.add_stream(name=stream, subjects=[f"{stream}.>"])
    psub = await js.pull_subscribe(f"{stream}.jobs", durable="puller")
    with pytest.raises(nats.errors.TimeoutError):  # empty: not an error
        await psub.fetch(1, timeout=0.2)
    waiting = asyncio.ensure_future(psub.fetch(1, timeout=5))
    await asyncio.sleep(0.1)
    waiting.cancel()  # cancelled while it waited: not an error either
    with pytest.raises(asyncio.CancelledError):
        await waiting
    sub = await nc.subscribe(f"{stream}.core")
    with pytest.raises(nats.errors.TimeoutError):  # no message handed over: no receive operation at all
        await sub.next_msg(timeout=0.1)
    await asyncio.sleep(0.05)
    assert logs.events() == []
    telemetry.clear()
    await nc.close()
    with pytest.raises(nats.errors.ConnectionClosedError) as raised:
        await psub.fetch(1, timeout=1)
    (span,) = await wait_spans(telemetry, 1)
    assert span.name == f"fetch {stream}"
    (event,) = logs.events()
    assert_event(
        event,
        span,
        "messaging.receive.exception",
        13,
        raised.value,
        {
            "messaging.system.name": "nats",
            "messaging.operation.type": "receive",
            "messaging.operation.name": "fetch",
            "messaging.destination.name": stream,
            **_server(js_server.url),
            "error.type": "ConnectionClosedError",
        },
    )


async def test_key_value_failures_emit_no_event(make_telemetry: Any, logs: Logs, js_server: Any, connect: Any) -> None:
    telemetry = make_telemetry(exception_events=True, logger_provider=logs.provider)
    nc = await connect(js_server.url)
    kv = await nc.jetstream().create_key_value(bucket=f"exc_{uuid.uuid4().hex[:8]}")
    with pytest.raises(nats.js.errors.KeyNotFoundError):
        await kv.get("missing")
    (span,) = await wait_spans(telemetry, 1)
    assert span.attributes["error.type"] == "KeyNotFoundError"  # the span still records it
    assert logs.events() == []  # key-value operations are no messaging operation type


async def test_off_by_default(make_telemetry: Any, logs: Logs, server: Any, connect: Any) -> None:
    telemetry = make_telemetry(logger_provider=logs.provider)
    rec = installed()
    assert rec is not None and rec.events is None  # nothing to check on the error path but this
    nc = await connect(server.url)
    with pytest.raises(nats.errors.NoRespondersError):
        await nc.request("nobody.home", b"?", timeout=2)
    (span,) = await wait_spans(telemetry, 1)
    assert span.attributes["error.type"] == "NoRespondersError"
    assert logs.exporter.get_finished_logs() == ()


@pytest.mark.parametrize(("value", "option", "emitted"), [("true", None, 1), ("on", False, 0), ("0", True, 1)])
async def test_environment_variable(
    make_telemetry: Any,
    logs: Logs,
    server: Any,
    connect: Any,
    monkeypatch: pytest.MonkeyPatch,
    value: str,
    option: bool | None,
    emitted: int,
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_NATS_EXCEPTION_EVENTS", value)
    make_telemetry(exception_events=option, logger_provider=logs.provider)  # the keyword wins
    nc = await connect(server.url)
    with pytest.raises(nats.errors.NoRespondersError):
        await nc.request("nobody.home", b"?", timeout=2)
    await asyncio.sleep(0.05)
    assert [e.name for e in logs.events()] == ["messaging.send.exception"] * emitted


async def test_unsampled_span_still_emits_in_its_context(logs: Logs, server: Any, connect: Any) -> None:
    provider = TracerProvider(sampler=ALWAYS_OFF)
    instrumentor = NatsInstrumentor()
    instrumentor.instrument(tracer_provider=provider, logger_provider=logs.provider, exception_events=True)
    try:
        nc = await connect(server.url)
        with (
            provider.get_tracer("app").start_as_current_span("app") as app,
            pytest.raises(nats.errors.NoRespondersError),
        ):
            await nc.request("nobody.home", b"?", timeout=2)
    finally:
        instrumentor.uninstrument()
    (event,) = logs.events()
    assert event.name == "messaging.send.exception"
    assert event.trace_id == app.get_span_context().trace_id  # the (unsampled) request span's trace
    assert event.span_id not in (0, app.get_span_context().span_id)
    assert event.trace_flags == int(app.get_span_context().trace_flags)
    assert not event.trace_flags & 0x01  # not sampled


async def test_hook_exceptions_stay_contained(make_telemetry: Any, logs: Logs, server: Any, connect: Any) -> None:
    def failing_hook(span: Any, *args: Any) -> None:
        raise RuntimeError("hook failed")

    telemetry = make_telemetry(
        exception_events=True, logger_provider=logs.provider, request_hook=failing_hook, publish_hook=failing_hook
    )
    nc = await connect(server.url)

    async def reply(msg: Any) -> None:
        await msg.respond(b"pong")

    await nc.subscribe("svc.ping", cb=reply)
    assert (await nc.request("svc.ping", b"", timeout=5)).data == b"pong"
    with pytest.raises(nats.errors.NoRespondersError) as raised:
        await nc.request("nobody.home", b"?", timeout=2)
    spans = await wait_spans(telemetry, 4)
    # the hooks' exceptions are logged and swallowed: no event; only the failed request has one
    (event,) = logs.events()
    request = by_name(spans, "request nobody.home")
    assert (event.name, event.span_id) == ("messaging.send.exception", request.context.span_id)
    assert event.attributes["exception.type"] == f"nats.errors.{type(raised.value).__qualname__}"


class _FailingProcessor:
    """A log record processor that raises on every record (any SDK release's method name)."""

    def emit(self, record: Any) -> None:
        raise RuntimeError("exporter down")

    on_emit = emit

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


async def test_emission_errors_never_reach_the_application(
    make_telemetry: Any, logs: Logs, server: Any, connect: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="opentelemetry.instrumentation.nats")
    logs.provider.add_log_record_processor(_FailingProcessor())  # type: ignore[arg-type]
    telemetry = make_telemetry(exception_events=True, logger_provider=logs.provider)
    reported: asyncio.Queue[BaseException] = asyncio.Queue()

    async def error_cb(exc: BaseException) -> None:
        await reported.put(exc)

    nc = await connect(server.url, error_cb=error_cb)
    with pytest.raises(nats.errors.NoRespondersError):  # the application's own exception, unchanged
        await nc.request("nobody.home", b"?", timeout=2)
    error = KeyError("x")

    async def handler(msg: Any) -> None:
        raise error

    await nc.subscribe("fails", cb=handler)
    await nc.publish("fails", b"")
    assert await asyncio.wait_for(reported.get(), 5) is error
    spans = await wait_spans(telemetry, 3)
    assert sorted(s.name for s in spans) == ["process fails", "publish fails", "request nobody.home"]
    assert len(logs.events()) == 2  # the processor before the failing one got both
    assert [r.getMessage() for r in caplog.records if r.name.endswith("exception_events")] == [
        "could not emit a send exception event",
        "could not emit a process exception event",
    ]


def _console_objects(stdout: str) -> list[dict[str, Any]]:
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    i = 0
    while (start := stdout.find("{", i)) != -1:
        try:
            obj, i = decoder.raw_decode(stdout, start)
        except json.JSONDecodeError:
            i = start + 1
            continue
        if isinstance(obj, dict):
            found.append(obj)
    return found


@pytest.mark.auto_instrumentation
def test_opentelemetry_instrument_with_the_environment_variable(server: Any) -> None:
    """The global logger provider that ``opentelemetry-instrument`` sets up gets the event."""
    env = {
        **os.environ,
        "NATS_URL": server.url,
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "console",
        "OTEL_SERVICE_NAME": "failing-app",
        "OTEL_PYTHON_NATS_EXCEPTION_EVENTS": "true",
    }
    result = subprocess.run(instrumented_command(APP), env=env, capture_output=True, text=True, timeout=60, check=True)
    assert "APP-DONE NoRespondersError" in result.stdout
    objects = _console_objects(result.stdout)
    (span,) = [o for o in objects if o.get("name") == "request app.nobody"]
    records = [o for o in objects if "severity_number" in o]
    (record,) = [
        r for r in records if (r.get("event_name") or r["attributes"].get("event.name")) == "messaging.send.exception"
    ]
    assert (record["trace_id"], record["span_id"]) == (span["context"]["trace_id"], span["context"]["span_id"])
    assert record["severity_number"] == 13
    assert record["attributes"]["exception.type"] == "nats.errors.NoRespondersError"
    assert record["resource"]["attributes"]["service.name"] == "failing-app"
