"""A three-node JetStream cluster; the node the client is connected to is killed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from opentelemetry.instrumentation.nats import message_context
from tests.helpers import assert_child, by_name, conn_attrs, wait_spans
from tests.natsserver import start_cluster
from tests.reliability.support import SpanLedger, captured_logs, describe_records, loop_errors

CLUSTER = "otel-failover"
STREAM = "FAILOVER"
T = TypeVar("T")


async def _retry(call: Callable[[], Awaitable[T]], timeout: float = 20.0) -> T:
    """Retry ``call`` while the cluster elects leaders (JetStream answers with errors/timeouts meanwhile)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen: list[str] = []
    while True:
        try:
            return await call()
        except (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError) as exc:
            seen.append(f"{loop.time() - deadline + timeout:.1f}s {type(exc).__name__}: {exc}")
            if loop.time() > deadline:
                raise AssertionError(f"still failing after {timeout} s: {seen}") from exc
            await asyncio.sleep(0.2)


async def _round(nc: Any, js: Any, psub: Any, core_got: asyncio.Queue[Any], telemetry: Any, tag: bytes) -> None:
    """Core publish → process, and JetStream publish → fetch → (application span) → ack."""
    await nc.publish("failover.core", tag)
    assert (await asyncio.wait_for(core_got.get(), 5)).data == tag
    ack = await js.publish("failover.js.jobs", tag)
    assert ack.stream == STREAM
    (msg,) = await psub.fetch(1, timeout=5)
    assert msg.data == tag
    tracer = telemetry.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handle", context=message_context(msg)):
        await msg.ack_sync()


def _check_round(spans: list[ReadableSpan], nc: Any) -> None:
    assert sorted(s.name for s in spans) == sorted(
        [
            "publish failover.core",
            "process failover.core",
            "publish failover.js.jobs",
            f"fetch {STREAM}",
            "handle",
            f"ack {STREAM}",
        ]
    )
    core_pub = by_name(spans, "publish failover.core", SpanKind.PRODUCER)
    core_proc = by_name(spans, "process failover.core", SpanKind.CONSUMER)
    js_pub = by_name(spans, "publish failover.js.jobs", SpanKind.PRODUCER)
    fetch = by_name(spans, f"fetch {STREAM}", SpanKind.CLIENT)
    handle = by_name(spans, "handle")
    ack = by_name(spans, f"ack {STREAM}", SpanKind.CLIENT)
    assert_child(core_proc, core_pub)
    assert [link.context.span_id for link in fetch.links] == [js_pub.context.span_id]
    assert_child(handle, js_pub)
    assert_child(ack, handle)
    expected = conn_attrs(nc)
    assert expected["messaging.nats.cluster.name"] == CLUSTER
    for span in (core_pub, core_proc, js_pub, fetch, ack):
        attrs = dict(span.attributes or {})
        assert {k: attrs.get(k) for k in expected} == expected, span.name
    assert not any(s.status.status_code.name == "ERROR" for s in spans)


async def test_cluster_failover_spans_follow_the_new_server(telemetry: Any) -> None:
    ledger = SpanLedger()
    telemetry.tracer_provider.add_span_processor(ledger)
    servers = start_cluster(3, jetstream=True, cluster_name=CLUSTER)
    reconnected = asyncio.Event()

    async def on_reconnect() -> None:
        reconnected.set()

    async def on_error(exc: Exception) -> None:
        pass

    try:
        with captured_logs() as logs, loop_errors() as loop_errs:
            nc = await nats.connect(
                servers=[s.url for s in servers],
                dont_randomize=True,
                reconnect_time_wait=0.1,
                max_reconnect_attempts=-1,
                reconnected_cb=on_reconnect,
                error_cb=on_error,
            )
            try:
                js = nc.jetstream(timeout=3)
                await _retry(lambda: js.add_stream(name=STREAM, subjects=["failover.js.>"], num_replicas=3))
                psub = await _retry(lambda: js.pull_subscribe("failover.js.jobs", durable="failover-puller"))
                core_got: asyncio.Queue[Any] = asyncio.Queue()

                async def on_core(msg: Any) -> None:
                    await core_got.put(msg)

                await nc.subscribe("failover.core", cb=on_core)
                await nc.flush()

                telemetry.clear()
                await _round(nc, js, psub, core_got, telemetry, b"before")
                before_spans = await wait_spans(telemetry, 6)
                _check_round(before_spans, nc)
                old = dict(nc._server_info)
                assert old["cluster"] == CLUSTER

                (victim,) = [s for s in servers if s.name == old["server_name"]]
                victim.kill()
                await asyncio.wait_for(reconnected.wait(), 15)
                new = nc._server_info
                assert new["server_id"] != old["server_id"]
                assert new["server_name"] in {s.name for s in servers if s is not victim}

                # JetStream elects new leaders for the stream and the consumer: wait until it answers.
                await _retry(lambda: js.stream_info(STREAM))
                await _retry(lambda: _round(nc, js, psub, core_got, telemetry, b"settle"), timeout=30)
                # retried rounds may have left messages behind: start the measured round from empty
                while not core_got.empty():
                    core_got.get_nowait()
                while True:
                    try:
                        leftovers = await psub.fetch(10, timeout=0.5)
                    except asyncio.TimeoutError:  # nats-py raises either kind for an empty fetch
                        break
                    for m in leftovers:
                        await m.ack_sync()
                await asyncio.sleep(0.1)

                telemetry.clear()
                await _round(nc, js, psub, core_got, telemetry, b"after")
                after_spans = await wait_spans(telemetry, 6)
                _check_round(after_spans, nc)
                for span in after_spans:
                    if span.name != "handle":
                        assert span.attributes["messaging.nats.server.id"] == new["server_id"] != old["server_id"]
                        assert span.attributes["messaging.nats.server.name"] == new["server_name"]
                        assert span.attributes["server.port"] == nc._current_server.uri.port != victim.port
            finally:
                await nc.close()
            await ledger.wait_balanced()
        assert loop_errs == []
        assert describe_records(logs) == []
    finally:
        for s in servers:
            s.cleanup()
