"""Context propagation through headers on each client family: copying, skipping (servers without
header support, ``max_payload``), propagators that write nothing, extraction of odd input."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace import SpanKind

from opentelemetry import propagate
from tests.families import Family
from tests.helpers import Telemetry, assert_child, by_name, wait_spans
from tests.matrix.expect import wait_for
from tests.natsserver import NatsServer

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


async def test_caller_headers_are_never_changed(telemetry: Telemetry, server: Any, family: Family) -> None:
    conn = await family.connect(server)
    got: list[Any] = []
    await conn.on("hdr.copy", got.append)
    headers = {"X-App": "value"}
    await conn.publish("hdr.copy", b"x", headers=headers)
    await wait_for(lambda: got)
    assert headers == {"X-App": "value"}
    assert set(family.headers(got[0])) == {"X-App", "traceparent"}


async def test_no_injection_without_server_header_support(telemetry: Telemetry, family: Family) -> None:
    if family.name == "nats-core":
        pytest.skip("nats-core cannot connect to such a server (it always asks for no-responders replies)")
    srv = NatsServer(extra="no_header_support: true").start()
    try:
        conn = await family.connect(srv)
        got: list[Any] = []
        await conn.on("old.server", got.append)
        await conn.publish("old.server", b"one")
        await conn.publish("old.server", b"two")
        await wait_for(lambda: len(got) == 2)
        assert [(m.data, family.headers(m)) for m in got] == [(b"one", {}), (b"two", {})]
        spans = await wait_spans(telemetry, 4)
        assert sorted(s.name for s in spans) == ["process old.server"] * 2 + ["publish old.server"] * 2
        assert all(s.parent is None for s in spans)
    finally:
        srv.cleanup()


@pytest.mark.parametrize("app_headers", [None, {"X-List": ["a", "b"]}])
async def test_no_injection_when_headers_would_exceed_max_payload(
    telemetry: Telemetry, family: Family, app_headers: Any
) -> None:
    """(nats-core does not check ``max_payload`` itself: the server would close the connection.)"""
    if app_headers is not None and family.name != "nats-core":
        pytest.skip("list-valued headers are nats-core's")
    srv = NatsServer(extra="max_payload: 1024").start()
    try:
        conn = await family.connect(srv)
        got: list[Any] = []
        await conn.on("big.payload", got.append)
        size = 1020 - (30 if app_headers else 0)  # (room for the application's headers, not for ours)
        await conn.publish("big.payload", b"x" * size, headers=app_headers)
        await conn.publish("big.payload", b"small", headers=app_headers)
        await wait_for(lambda: len(got) == 2)
        big, small = got
        assert "traceparent" not in family.headers(big) and len(big.data) == size
        assert "traceparent" in family.headers(small)
        spans = await wait_spans(telemetry, 4)
        _, small_pub = (s for s in spans if s.kind == SpanKind.PRODUCER)
        big_proc, small_proc = (s for s in spans if s.kind == SpanKind.CONSUMER)
        assert big_proc.parent is None
        assert_child(small_proc, small_pub)
        await conn.synced()  # still connected
    finally:
        srv.cleanup()


async def test_a_propagator_writing_nothing_leaves_messages_untouched(
    telemetry: Telemetry, server: Any, family: Family
) -> None:
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(CompositePropagator([]))
    try:
        conn = await family.connect(server)
        got: list[Any] = []
        await conn.on("no.prop", got.append)
        await conn.publish("no.prop", b"plain")
        await wait_for(lambda: got)
        assert family.headers(got[0]) == {}
        await wait_spans(telemetry, 2)
    finally:
        propagate.set_global_textmap(previous)


@pytest.mark.parametrize("key", ["traceparent", "Traceparent", "TRACEPARENT"])
async def test_extraction_is_case_insensitive(telemetry: Telemetry, server: Any, family: Family, key: str) -> None:
    conn = await family.connect(server)
    await conn.on("case.test", lambda msg: None)
    with suppress_instrumentation():
        await conn.publish("case.test", b"", headers={key: f"00-{TRACE_ID}-{PARENT_ID}-01"})
    (span,) = await wait_spans(telemetry, 1)
    assert span.name == "process case.test"
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_ID


@pytest.mark.parametrize(
    "headers",
    [
        {"traceparent": "garbage"},
        {"traceparent": "00-00000000000000000000000000000000-0000000000000000-01"},
        {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01-extra", "tracestate": "=,=,==="},
        {"traceparent": "", "baggage": "%%%;;;=="},
        {"tracestate": "a=b"},
    ],
)
async def test_malformed_context_gives_a_root_span(
    telemetry: Telemetry, server: Any, family: Family, headers: dict[str, str]
) -> None:
    conn = await family.connect(server)
    got: list[Any] = []
    await conn.on("bad.ctx", got.append)
    with suppress_instrumentation():
        await conn.publish("bad.ctx", b"data", headers=headers)
    (span,) = await wait_spans(telemetry, 1)
    assert [m.data for m in got] == [b"data"]
    assert span.name == "process bad.ctx"
    assert (span.parent, tuple(span.links)) == (None, ())


async def test_requests_make_no_extra_spans(telemetry: Telemetry, server: Any, family: Family) -> None:
    conn = await family.connect(server)
    await conn.on("only.three", lambda msg: b"")
    for _ in range(3):
        await conn.request("only.three", b"")
        await conn.settled()
    spans = await wait_spans(telemetry, 9)
    assert [s.name for s in spans] == ["request only.three", "process only.three", "publish"] * 3
    assert by_name(spans[:3], "publish").kind == SpanKind.PRODUCER
