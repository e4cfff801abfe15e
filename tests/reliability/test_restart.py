"""The server is stopped and restarted while 10 000 messages are published and consumed."""

from __future__ import annotations

import asyncio
from typing import Any

import nats
from opentelemetry.trace import SpanKind

from tests.natsserver import NatsServer
from tests.reliability.support import (
    SpanLedger,
    captured_logs,
    describe_records,
    loop_errors,
    raised_in_instrumentation,
    until,
)

TOTAL = 10_000
STOP_AT = 4_000  # the server goes down after this many messages were published …
RESTART_AT = 6_000  # … and comes back after this many (the ones in between are buffered by nats-py)


async def _scenario(srv: NatsServer) -> dict[str, Any]:
    """Publish TOTAL messages to a callback subscription and a ``next_msg`` subscription, stopping the
    server at STOP_AT and restarting it at RESTART_AT. Returns what the application observed."""
    cb_got: list[bytes] = []
    iter_got: list[bytes] = []
    errors: list[Exception] = []
    events: list[str] = []
    reconnected = asyncio.Event()

    async def error_cb(exc: Exception) -> None:
        errors.append(exc)

    async def disconnected_cb() -> None:
        events.append("disconnected")

    async def reconnected_cb() -> None:
        events.append("reconnected")
        reconnected.set()

    async def handler(msg: Any) -> None:
        cb_got.append(msg.data)

    with loop_errors() as loop_errs:
        nc = await nats.connect(
            srv.url,
            error_cb=error_cb,
            disconnected_cb=disconnected_cb,
            reconnected_cb=reconnected_cb,
            reconnect_time_wait=0.05,
            max_reconnect_attempts=-1,
            pending_size=8 * 1024 * 1024,
        )
        try:
            await nc.subscribe("restart.data", cb=handler)
            sub = await nc.subscribe("restart.data")

            async def drain_iter() -> None:
                while len(iter_got) < TOTAL:
                    msg = await sub.next_msg(timeout=15)
                    iter_got.append(msg.data)

            reader = asyncio.create_task(drain_iter())
            for i in range(TOTAL):
                if i == STOP_AT:
                    await nc.flush()
                    await until(lambda: len(cb_got) == STOP_AT and len(iter_got) == STOP_AT, what="consumers")
                    srv.stop()
                    await until(lambda: not nc.is_connected, what="disconnect")
                if i == RESTART_AT:
                    # the client is trying to reconnect and the application hears about it
                    await until(lambda: isinstance(errors[-1], ConnectionRefusedError), what="a refused reconnect")
                    srv.start()
                await nc.publish("restart.data", str(i).encode())
                if i % 500 == 499:
                    await asyncio.sleep(0)  # let the consumers run while publishing
            await asyncio.wait_for(reconnected.wait(), 15)
            await nc.flush()
            await asyncio.wait_for(reader, 20)
            await until(lambda: len(cb_got) == TOTAL, timeout=20, what="callback messages")
        finally:
            await nc.close()
        await asyncio.sleep(0.05)
    return {
        "cb": cb_got,
        "iter": iter_got,
        "errors": errors,
        "events": events,
        "loop_errors": list(loop_errs),
    }


async def test_server_restart_mid_stream_same_messages_all_spans_ended(telemetry: Any) -> None:
    ledger = SpanLedger()
    telemetry.tracer_provider.add_span_processor(ledger)
    srv = NatsServer()
    srv.start()
    try:
        with captured_logs() as logs:
            telemetry.uninstrument()
            plain = await _scenario(srv)
            assert telemetry.spans() == []
            telemetry.instrument()
            traced = await _scenario(srv)
    finally:
        srv.cleanup()

    expected = [str(i).encode() for i in range(TOTAL)]
    # Without instrumentation the whole sequence arrives in order, on both subscriptions …
    assert plain["cb"] == expected
    assert plain["iter"] == expected
    # … and exactly the same with instrumentation.
    assert traced["cb"] == plain["cb"]
    assert traced["iter"] == plain["iter"]
    # close() reports a disconnect too
    assert traced["events"] == plain["events"] == ["disconnected", "reconnected", "disconnected"]
    # The application's error_cb sees the same kinds of errors (how many reconnect attempts are refused
    # depends on timing)
    assert {type(e) for e in traced["errors"]} == {type(e) for e in plain["errors"]}
    assert not any(raised_in_instrumentation(e) for e in traced["errors"])
    assert plain["loop_errors"] == [] and traced["loop_errors"] == []
    assert describe_records(logs) == []

    # One span per message per operation, every one of them ended exactly once.
    ledger.assert_balanced()
    spans = telemetry.spans()
    kinds = [s.kind for s in spans]
    assert kinds.count(SpanKind.PRODUCER) == TOTAL
    assert kinds.count(SpanKind.CONSUMER) == TOTAL  # a process span per message …
    assert kinds.count(SpanKind.CLIENT) == TOTAL  # … and a receive span
    assert len(spans) == 3 * TOTAL
    assert len(ledger.started) == 3 * TOTAL
    # The consumer spans of the buffered messages (published while the server was down) still find
    # their publish spans: process spans are their children, receive spans (roots: no current span
    # in the iterating code) link to them; both carry the link.
    publishes = {s.context.span_id: s for s in spans if s.kind == SpanKind.PRODUCER}
    processes = [s for s in spans if s.kind == SpanKind.CONSUMER]
    receives = [s for s in spans if s.kind == SpanKind.CLIENT]
    assert all(s.parent is not None and s.parent.span_id in publishes for s in processes)
    assert all(s.parent is None for s in receives)
    assert all([link.context.span_id for link in s.links] == [s.parent.span_id] for s in processes if s.parent)
    linked = sorted(s.links[0].context.span_id for s in receives if len(s.links) == 1)
    assert linked == sorted(publishes)
