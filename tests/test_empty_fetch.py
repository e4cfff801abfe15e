"""Empty and cancelled ``fetch``: no span by default, never an error; ``empty_fetch_spans``."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import nats.errors
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from tests.helpers import conn_attrs, wait_spans
from tests.test_metrics import metrics, points


async def _pull(nc: Any, telemetry: Any) -> tuple[Any, str]:
    js = nc.jetstream()
    stream = f"EF_{uuid.uuid4().hex[:8]}"
    await js.add_stream(name=stream, subjects=[f"{stream}.>"])
    psub = await js.pull_subscribe(f"{stream}.q", durable="idle")
    telemetry.clear()
    return psub, stream


async def _empty_fetch(psub: Any) -> None:
    with pytest.raises(nats.errors.TimeoutError):
        await psub.fetch(1, timeout=0.1)


async def _cancelled_fetch(psub: Any) -> None:
    task = asyncio.get_running_loop().create_task(psub.fetch(1, timeout=5))
    await asyncio.sleep(0.2)  # waiting for messages that do not come
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def _fetch_durations(telemetry: Any, name: str = "messaging.client.operation.duration") -> list[Any]:
    m = metrics(telemetry)
    return [p for p in points(m[name]) if p.attributes["messaging.operation.name"] == "fetch"] if name in m else []


def _fetch_metric_attributes(stream: str, server: Any) -> dict[str, Any]:
    return {
        "messaging.system.name": "nats",
        "messaging.operation.type": "receive",
        "messaging.operation.name": "fetch",
        "messaging.destination.name": stream,
        "server.address": "127.0.0.1",
        "server.port": server.port,
    }


async def test_empty_fetch_makes_no_span_and_is_measured(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    psub, stream = await _pull(nc, telemetry)
    for _ in range(3):
        await _empty_fetch(psub)
    assert await wait_spans(telemetry, 0) == []
    (point,) = _fetch_durations(telemetry)
    assert point.count == 3
    assert dict(point.attributes) == _fetch_metric_attributes(stream, js_server)  # no error.type
    (consumed,) = (p for p in points(metrics(telemetry)["messaging.client.consumed.messages"]))
    assert (dict(consumed.attributes), consumed.value) == (_fetch_metric_attributes(stream, js_server), 0)


async def test_cancelled_fetch_makes_no_span_and_no_measurement(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    psub, _stream = await _pull(nc, telemetry)
    await _cancelled_fetch(psub)
    assert await wait_spans(telemetry, 0) == []
    assert _fetch_durations(telemetry) == []
    # the subscription still works afterwards, as without instrumentation
    await nc.jetstream().publish(f"{_stream}.q", b"late")
    (msg,) = await psub.fetch(1, timeout=5)
    assert msg.data == b"late"


async def test_empty_fetch_in_dup_mode_records_both_namings(make_telemetry: Any, js_server: Any, connect: Any) -> None:
    """``legacy`` names have no fetch duration (a fetch never had one there); its message counter gets 0."""
    telemetry = make_telemetry(semconv="dup")
    nc = await connect(js_server.url)
    psub, _stream = await _pull(nc, telemetry)
    await _empty_fetch(psub)
    assert await wait_spans(telemetry, 0) == []
    (point,) = _fetch_durations(telemetry)
    assert point.count == 1 and point.attributes["messaging.operation"] == "receive"
    (received,) = _fetch_durations(telemetry, "messaging.nats.receive.messages")
    assert received.value == 0


@pytest.mark.parametrize("source", ["option", "env"])
async def test_empty_fetch_spans_records_non_error_spans(
    make_telemetry: Any, js_server: Any, connect: Any, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    if source == "env":
        monkeypatch.setenv("OTEL_PYTHON_NATS_EMPTY_FETCH_SPANS", " True ")
        telemetry = make_telemetry()
    else:
        telemetry = make_telemetry(empty_fetch_spans=True)
    nc = await connect(js_server.url)
    psub, stream = await _pull(nc, telemetry)
    await _empty_fetch(psub)
    await _cancelled_fetch(psub)
    spans = await wait_spans(telemetry, 2)
    assert [(s.name, s.kind) for s in spans] == [(f"fetch {stream}", SpanKind.CLIENT)] * 2
    for span in spans:
        assert (span.status.status_code, span.events, span.links, span.parent) == (StatusCode.UNSET, (), (), None)
        assert dict(span.attributes) == {
            "messaging.system.name": "nats",
            "messaging.operation.type": "receive",
            "messaging.operation.name": "fetch",
            "messaging.destination.name": stream,
            "messaging.batch.message_count": 0,
            "messaging.nats.jetstream.stream": stream,
            "messaging.nats.jetstream.consumer": "idle",
            "messaging.nats.jetstream.ack_policy": "explicit",  # (the consumer this connection created)
            "messaging.nats.jetstream.replay_policy": "instant",
            **conn_attrs(nc),
        }
    empty, cancelled = spans
    assert empty.end_time - empty.start_time >= 0.09e9  # each covers its wait: the timeout …
    assert cancelled.end_time - cancelled.start_time >= 0.15e9  # … or until it was cancelled
    (point,) = _fetch_durations(telemetry)
    assert point.count == 1  # the empty fetch; a cancelled fetch is not measured


async def test_empty_fetch_spans_false_from_environment(
    make_telemetry: Any, js_server: Any, connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_NATS_EMPTY_FETCH_SPANS", "off")
    telemetry = make_telemetry()
    nc = await connect(js_server.url)
    psub, _stream = await _pull(nc, telemetry)
    await _empty_fetch(psub)
    assert await wait_spans(telemetry, 0) == []
