"""Payloads at the server's ``max_payload`` and servers without header support."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import nats.errors
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from tests.helpers import assert_child, wait_spans
from tests.natsserver import NatsServer
from tests.reliability.support import SpanLedger, captured_logs, describe_records, metric_points

MAX_PAYLOAD = 1024
# "NATS/1.0\r\n" + "traceparent: <55 characters>\r\n" + "\r\n": the header block our injection adds.
TRACEPARENT_BLOCK = len(b"NATS/1.0\r\n") + len(b"traceparent: ") + 55 + len(b"\r\n") + len(b"\r\n")
SKIPPED = "messaging.nats.propagation.skipped"


@pytest.fixture(scope="module")
def small_server() -> Iterator[NatsServer]:
    srv = NatsServer(extra=f"max_payload: {MAX_PAYLOAD}").start()
    yield srv
    srv.cleanup()


@pytest.fixture(scope="module")
def headerless_server() -> Iterator[NatsServer]:
    srv = NatsServer(extra="no_header_support: true").start()
    yield srv
    srv.cleanup()


def _skipped(telemetry: Any) -> dict[str, Any]:
    return {attrs["reason"]: value for attrs, value in metric_points(telemetry.metric_reader, SKIPPED)}


async def _subscribe(nc: Any, subject: str) -> asyncio.Queue[Any]:
    got: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(msg: Any) -> None:
        await got.put(msg)

    await nc.subscribe(subject, cb=handler)
    await nc.flush()
    return got


async def test_payload_at_max_payload_is_delivered_without_trace_headers(
    telemetry: Any, small_server: NatsServer, connect: Any
) -> None:
    ledger = SpanLedger()
    telemetry.tracer_provider.add_span_processor(ledger)
    assert TRACEPARENT_BLOCK == 82
    with captured_logs() as logs:
        nc = await connect(small_server.url)
        assert nc.max_payload == MAX_PAYLOAD
        got = await _subscribe(nc, "limit.data")

        sizes_and_headers = [
            # fits only without headers: delivered as it is, injection skipped
            (MAX_PAYLOAD, None, None),
            # one byte too many for the trace headers: skipped
            (MAX_PAYLOAD - TRACEPARENT_BLOCK + 1, None, None),
            # exactly fits with the trace headers: injected
            (MAX_PAYLOAD - TRACEPARENT_BLOCK, None, {"traceparent"}),
            # the application's own headers count too: "X-App: 1\r\n" is 10 more bytes
            (MAX_PAYLOAD - TRACEPARENT_BLOCK - 9, {"X-App": "1"}, {"X-App"}),
            (MAX_PAYLOAD - TRACEPARENT_BLOCK - 10, {"X-App": "1"}, {"X-App", "traceparent"}),
            (0, None, {"traceparent"}),
        ]
        for n, headers, _ in sizes_and_headers:
            await nc.publish("limit.data", b"p" * n, headers=headers)
        received = [await asyncio.wait_for(got.get(), 5) for _ in sizes_and_headers]
        assert [len(m.data) for m in received] == [n for n, _, _ in sizes_and_headers]
        assert [set(m.headers) if m.headers else None for m in received] == [h for _, _, h in sizes_and_headers]
        assert received[3].headers == {"X-App": "1"}
        assert nc.is_connected

        # nats-py's own limit is unchanged: a payload over max_payload raises MaxPayloadError, recorded and re-raised
        with pytest.raises(nats.errors.MaxPayloadError):
            await nc.publish("limit.data", b"p" * (MAX_PAYLOAD + 1))
        await nc.publish("limit.data", b"still up")
        assert (await asyncio.wait_for(got.get(), 5)).data == b"still up"
        assert nc.is_connected and nc.last_error is None

        spans = await wait_spans(telemetry, 2 * len(sizes_and_headers) + 3)
    pubs = [s for s in spans if s.kind == SpanKind.PRODUCER]
    procs = [s for s in spans if s.kind == SpanKind.CONSUMER]
    assert len(pubs) == len(sizes_and_headers) + 2 and len(procs) == len(sizes_and_headers) + 1
    # the message sizes are recorded whether or not the context went along
    assert [p.attributes["messaging.message.body.size"] for p in pubs] == [
        *(n for n, _, _ in sizes_and_headers),
        MAX_PAYLOAD + 1,
        8,
    ]
    too_big = pubs[-2]
    delivered = [*sizes_and_headers, (8, None, {"traceparent"})]
    for pub, proc, (_, _, headers) in zip([*pubs[:-2], pubs[-1]], procs, delivered, strict=True):
        if headers and "traceparent" in headers:
            assert_child(proc, pub)
        else:
            assert proc.parent is None
    assert too_big.status.status_code == StatusCode.ERROR
    assert too_big.attributes["error.type"] == "MaxPayloadError"
    assert _skipped(telemetry) == {"max_payload": 3}
    ledger.assert_balanced()
    assert describe_records(logs) == []


async def test_server_without_header_support_gets_no_headers(
    telemetry: Any, headerless_server: NatsServer, connect: Any
) -> None:
    ledger = SpanLedger()
    telemetry.tracer_provider.add_span_processor(ledger)
    with captured_logs() as logs:
        nc = await connect(headerless_server.url)
        assert not nc._server_info.get("headers")
        got = await _subscribe(nc, "old.data")

        async def responder(msg: Any) -> None:
            assert msg.headers is None
            await msg.respond(b"pong:" + msg.data)

        await nc.subscribe("old.service", cb=responder)
        await nc.flush()

        await nc.publish("old.data", b"one")
        await nc.publish("old.data", b"")
        reply = await nc.request("old.service", b"ping", timeout=5)
        assert reply.data == b"pong:ping" and reply.headers is None
        msgs = [await asyncio.wait_for(got.get(), 5) for _ in range(2)]
        assert [(m.data, m.headers) for m in msgs] == [(b"one", None), (b"", None)]
        assert nc.is_connected and nc.last_error is None

        spans = await wait_spans(telemetry, 7)
    assert sorted((s.name, s.kind) for s in spans) == sorted(
        [
            ("publish old.data", SpanKind.PRODUCER),
            ("publish old.data", SpanKind.PRODUCER),
            ("process old.data", SpanKind.CONSUMER),
            ("process old.data", SpanKind.CONSUMER),
            ("request old.service", SpanKind.CLIENT),
            ("process old.service", SpanKind.SERVER),
            ("publish", SpanKind.PRODUCER),  # the reply to the request's inbox
        ]
    )
    # no context crossed the wire: every consumer/server span is a root, in a trace of its own
    assert all(s.parent is None for s in spans if s.kind in (SpanKind.CONSUMER, SpanKind.SERVER))
    # the reply span is made inside the server span (local parent), nothing more
    reply_span = next(s for s in spans if s.name == "publish")
    assert_child(reply_span, next(s for s in spans if s.name == "process old.service"))
    # two publishes, request, respond: four skipped injections
    assert _skipped(telemetry) == {"no_header_support": 4}
    ledger.assert_balanced()
    assert describe_records(logs) == []
