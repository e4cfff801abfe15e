"""What only nats-core has: ``Headers`` objects and list-valued header dicts, bytes subjects,
``return_on_error`` requests, synchronous callbacks (``add_callback``/``remove_callback``, async hooks),
and the INFO its ``ServerInfo`` drops."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from tests.families import skip_reason
from tests.helpers import Telemetry, wait_spans
from tests.matrix.expect import span_id, wait_for
from tests.natsserver import NatsServer, start_cluster

pytestmark = pytest.mark.skipif(skip_reason("nats-core") is not None, reason=str(skip_reason("nats-core")))

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
async def nc(server: NatsServer) -> Any:
    import nats.client

    client = await nats.client.connect(server.url)
    yield client
    await client.close()


async def test_headers_objects_and_list_values_are_read_and_never_changed(make_telemetry: Any, nc: Any) -> None:
    from nats.client import Headers

    telemetry = make_telemetry(captured_headers=["X-Tenant"])
    sub = await nc.subscribe("hdr.forms")
    given = [
        Headers({"X-Tenant": ["a", "b"], "Nats-Msg-Id": "m-1"}),
        {"X-Tenant": ["c", "d"], "Single": "s"},
    ]
    before = [copy.deepcopy(h) for h in given]
    for headers in given:
        await nc.publish("hdr.forms", b"", headers=headers)
    received = [await sub.next(timeout=5) for _ in given]
    assert given == before  # the caller's objects are left alone
    spans = await wait_spans(telemetry, 4)
    publishes = [s for s in spans if s.kind == SpanKind.PRODUCER]
    assert [s.attributes["messaging.nats.message.header.x-tenant"] for s in publishes] == ["a", "c"]
    assert publishes[0].attributes["messaging.message.id"] == "m-1"
    for msg, publish in zip(received, publishes, strict=True):
        assert [v.split("-")[2] for v in msg.headers.get_all("traceparent")] == [span_id(publish)]
    assert received[0].headers.get_all("X-Tenant") == ["a", "b"]
    assert received[1].headers.get_all("X-Tenant") == ["c", "d"]
    assert received[1].headers.get("Single") == "s"


async def test_a_context_in_a_headers_object_is_the_callers(telemetry: Telemetry, nc: Any) -> None:
    from nats.client import Headers

    sub = await nc.subscribe("hdr.own")
    await nc.publish("hdr.own", b"", headers=Headers({"traceparent": TRACEPARENT}))
    msg = await sub.next(timeout=5)
    publish, receive = await wait_spans(telemetry, 2)
    assert msg.headers.get_all("traceparent") == [TRACEPARENT]
    assert publish.kind == SpanKind.CLIENT
    assert [format(link.context.span_id, "016x") for link in publish.links] == ["b7ad6b7169203331"]
    assert [format(link.context.span_id, "016x") for link in receive.links] == ["b7ad6b7169203331"]


async def test_bytes_subjects_are_traced_as_text(telemetry: Telemetry, nc: Any) -> None:
    sub = await nc.subscribe("bytes.subject")
    await nc.publish(b"bytes.subject", b"x", reply=b"bytes.reply")
    msg = await sub.next(timeout=5)
    publish, _ = await wait_spans(telemetry, 2)
    assert publish.name == "publish bytes.subject"
    assert publish.attributes["messaging.nats.reply_to"] == "bytes.reply"
    assert (msg.subject, msg.reply) == ("bytes.subject", "bytes.reply")
    assert msg.headers.get("traceparent").split("-")[2] == span_id(publish)


async def test_a_status_reply_returned_is_the_error_it_stands_for(telemetry: Telemetry, nc: Any) -> None:
    response = await nc.request("nobody.here", b"", return_on_error=True)
    assert response.status.code == "503"
    (span,) = await wait_spans(telemetry, 1)
    assert (span.name, span.kind) == ("request nobody.here", SpanKind.CLIENT)
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == "NoRespondersError"


async def test_remove_callback_removes_the_traced_callback(telemetry: Telemetry, nc: Any) -> None:
    sub = await nc.subscribe("cb.remove")
    calls: list[bytes] = []

    def callback(msg: Any) -> None:
        calls.append(msg.data)

    sub.add_callback(callback)
    assert sub._callbacks == [callback] and sub._callbacks[0] is not callback  # (a proxy, equal to it)
    await nc.publish("cb.remove", b"1")
    await wait_for(lambda: calls == [b"1"])
    sub.remove_callback(callback)
    assert sub._callbacks == []
    await nc.publish("cb.remove", b"2")
    await nc.flush()
    await sub.next(timeout=5)
    await sub.next(timeout=5)
    assert calls == [b"1"]
    assert [s.name for s in telemetry.spans()].count("process cb.remove") == 1


async def test_coroutine_callbacks_are_left_alone(telemetry: Telemetry, nc: Any) -> None:
    sub = await nc.subscribe("cb.async")

    async def callback(msg: Any) -> None:  # (nats-core never awaits it)
        raise AssertionError("never runs")

    sub.add_callback(callback)
    assert sub._callbacks[0] is callback


async def test_an_async_consume_hook_cannot_run_in_a_callback(
    make_telemetry: Any, nc: Any, caplog: pytest.LogCaptureFixture
) -> None:
    called: list[str] = []

    async def consume_hook(span: Any, msg: Any) -> None:
        called.append(msg.subject)

    telemetry = make_telemetry(consume_hook=consume_hook)
    sub = await nc.subscribe("hook.async")
    sub.add_callback(lambda msg: None)
    with caplog.at_level(logging.WARNING, logger="opentelemetry.instrumentation.nats.recorder"):
        await nc.publish("hook.async", b"")
        await nc.publish("hook.async", b"")
        await sub.next(timeout=5)  # a receive span: its hook is awaited
        await sub.next(timeout=5)
        await wait_spans(telemetry, 6)
    assert called == ["hook.async", "hook.async"]  # from the two receive spans only
    warnings = [r for r in caplog.records if "coroutine function" in r.getMessage()]
    assert len(warnings) == 1
    assert [s.name for s in telemetry.spans()].count("process hook.async") == 2


async def test_server_name_and_cluster_come_from_the_servers_info(telemetry: Telemetry) -> None:
    import nats.client

    servers = start_cluster(size=2, jetstream=False, cluster_name="otel-core")
    try:
        client = await nats.client.connect(servers[0].url)
        try:
            await client.publish("cluster.facts", b"")
            (span,) = await wait_spans(telemetry, 1)
        finally:
            await client.close()
    finally:
        for srv in servers:
            srv.cleanup()
    assert span.attributes["messaging.nats.server.name"] == "otel-core-1"
    assert span.attributes["messaging.nats.cluster.name"] == "otel-core"
    assert span.attributes["server.port"] == servers[0].port


async def test_connection_callbacks_do_nothing_after_uninstrument(
    telemetry: Telemetry, nc: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The health callbacks registered while instrumented stay on the client; afterwards they do
    nothing, and the application's own callbacks still run."""
    errors: list[Any] = []
    nc.add_error_callback(errors.append)
    telemetry.uninstrument()
    try:
        with caplog.at_level(logging.DEBUG):
            sub = await nc.subscribe("after.slow", max_pending_messages=1)
            for _ in range(3):
                await nc.publish("after.slow", b"")
            await nc.flush()
            await wait_for(lambda: sub.dropped[0] == 2)
    finally:
        telemetry.instrument()
    assert [type(e).__name__ for e in errors] == ["SlowConsumerError"]
    assert [r.getMessage() for r in caplog.records if r.name.startswith("opentelemetry")] == []
    assert not [r for r in caplog.records if r.name.startswith("nats.client") and r.levelno >= logging.ERROR]


def test_plain_patches_look_like_the_originals(telemetry: Telemetry) -> None:
    import inspect

    import nats.client
    import nats.client.subscription

    for owner, name in (
        (nats.client.Client, "publish"),
        (nats.client.Client, "request"),
        (nats.client.Subscription, "next"),
    ):
        patched = owner.__dict__[name]
        assert patched.__wrapped__.__name__ == patched.__name__ == name
        assert patched.__doc__ == patched.__wrapped__.__doc__
        assert inspect.iscoroutinefunction(patched)
    assert nats.client.subscription.Subscription is nats.client.Subscription
