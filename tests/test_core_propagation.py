"""nats-py only: ``Msg.respond`` replaces an echoed ``traceparent``; callback errors reach ``error_cb``;
synchronous callbacks are refused as without instrumentation. (What both client families share is in
tests/matrix.)"""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.trace import StatusCode

from tests.helpers import assert_child, responder, wait_spans


async def test_respond_replaces_echoed_traceparent_and_keeps_app_headers(
    telemetry: Any, server: Any, connect: Any
) -> None:
    nc = await connect(server.url)
    seen = await responder(nc, "echo.svc")
    request_headers = {"X-Req": "1"}
    resp = await nc.request("echo.svc", b"", timeout=5, headers=request_headers)
    request, _process, reply = await wait_spans(telemetry, 3)
    assert request_headers == {"X-Req": "1"}
    assert seen[0]["traceparent"].split("-")[2] == format(request.context.span_id, "016x")
    assert resp.headers["X-Req"] == "1"
    assert resp.headers["traceparent"].split("-")[2] == format(reply.context.span_id, "016x")
    assert [k for k in resp.headers if k.lower() == "traceparent"] == ["traceparent"]


async def test_callback_exception_recorded_and_passed_to_error_cb(telemetry: Any, server: Any, connect: Any) -> None:
    errors: list[BaseException] = []

    async def error_cb(exc: BaseException) -> None:
        errors.append(exc)

    nc = await connect(server.url, error_cb=error_cb)
    boom = ValueError("boom")

    async def handler(msg: Any) -> None:
        raise boom

    await nc.subscribe("fail.cb", cb=handler)
    await nc.publish("fail.cb", b"")
    publish, process = await wait_spans(telemetry, 2)
    assert errors == [boom]
    assert process.status.status_code == StatusCode.ERROR
    assert process.attributes["error.type"] == "ValueError"
    assert process.events[0].attributes["exception.message"] == "boom"
    assert_child(process, publish)


async def test_sync_callback_rejected_exactly_as_without_instrumentation(
    telemetry: Any, server: Any, connect: Any
) -> None:
    def sync_handler(msg: Any) -> None:
        pass

    nc = await connect(server.url)
    with pytest.raises(Exception) as instrumented:
        await nc.subscribe("sync.cb", cb=sync_handler)
    telemetry.uninstrument()
    with pytest.raises(Exception) as raw:
        await nc.subscribe("sync.cb", cb=sync_handler)
    telemetry.instrument()
    assert type(instrumented.value) is type(raw.value)
    assert str(instrumented.value) == str(raw.value)
