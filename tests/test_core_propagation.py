"""nats-py only: ``Msg.respond`` replaces an echoed ``traceparent``; callback errors reach ``error_cb``;
synchronous callbacks are refused as without instrumentation. (What both client families share is in
tests/matrix.)"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.instrumentation.nats import message_context
from tests.helpers import assert_child, by_name, collect, expected_forest, forest, new_stream, responder, wait_spans


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


@contextmanager
def current_baggage(**entries: str) -> Iterator[None]:
    ctx = otel_context.get_current()
    for key, value in entries.items():
        ctx = baggage.set_baggage(key, value, ctx)
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


async def test_callback_sends_carry_the_message_baggage(telemetry: Any, server: Any, connect: Any) -> None:
    """A callback's current context has its process span but not the message's baggage (frameworks
    that manage baggage build theirs on top of the current context's, see tests/test_faststream.py);
    what the callback sends carries that baggage on: as it came, under the baggage the callback sets
    (its entries win), and not in place of a ``baggage`` header the callback wrote itself."""
    nc = await connect(server.url)
    got = {subject: await collect(nc, f"bag.{subject}") for subject in ("plain", "own", "header", "both")}
    seen: asyncio.Queue[Any] = asyncio.Queue()

    async def relay(msg: Any) -> None:
        await seen.put((dict(baggage.get_all()), dict(baggage.get_all(message_context(msg)))))
        await nc.publish("bag.plain", b"")
        with current_baggage(region="us", step="2"):
            await nc.publish("bag.own", b"")
            await nc.publish("bag.both", b"", headers={"baggage": "app=1"})
        await nc.publish("bag.header", b"", headers={"baggage": "app=1"})

    await nc.subscribe("bag.in", cb=relay)
    with current_baggage(tenant="t1", region="eu"):
        await nc.publish("bag.in", b"")
    assert await asyncio.wait_for(seen.get(), 5) == ({}, {"tenant": "t1", "region": "eu"})
    sent = {subject: (await asyncio.wait_for(q.get(), 5)).headers for subject, q in got.items()}
    assert {subject: headers["baggage"] for subject, headers in sent.items()} == {
        "plain": "tenant=t1,region=eu",
        "own": "tenant=t1,region=us,step=2",
        "header": "app=1",
        "both": "tenant=t1,region=us,step=2",  # (the context's own baggage replaces it, as outside callbacks)
    }
    spans = await wait_spans(telemetry, 10)
    assert forest(spans) == expected_forest(
        [
            ("publish bag.in", "PRODUCER", None, ()),
            ("process bag.in", "CONSUMER", "publish bag.in", ("publish bag.in",)),
            *[
                row
                for subject in ("plain", "own", "header", "both")
                for row in (
                    (f"publish bag.{subject}", "PRODUCER", "process bag.in", ()),
                    (f"process bag.{subject}", "CONSUMER", f"publish bag.{subject}", (f"publish bag.{subject}",)),
                )
            ],
        ]
    )
    for subject, headers in sent.items():
        publish = by_name(spans, f"publish bag.{subject}")
        _, trace_id, span_id, _ = headers["traceparent"].split("-")
        assert (trace_id, span_id) == (f"{publish.context.trace_id:032x}", f"{publish.context.span_id:016x}")


async def test_reply_carries_the_request_baggage(telemetry: Any, server: Any, connect: Any) -> None:
    """``Msg.respond`` resends the request's headers, its baggage included; baggage the responder sets
    goes on top of the request's."""
    nc = await connect(server.url)

    async def answer(msg: Any) -> None:
        if msg.data == b"own":
            with current_baggage(step="2"):
                await msg.respond(b"")
        else:
            await msg.respond(b"")

    await nc.subscribe("bag.svc", cb=answer)
    with current_baggage(tenant="t1"):
        plain = await nc.request("bag.svc", b"", timeout=5)
        own = await nc.request("bag.svc", b"own", timeout=5)
    assert (plain.headers["baggage"], own.headers["baggage"]) == ("tenant=t1", "tenant=t1,step=2")
    spans = await wait_spans(telemetry, 6)
    assert forest(spans) == expected_forest(
        *[
            [
                ("request bag.svc", "CLIENT", None, ()),
                ("process bag.svc", "SERVER", "request bag.svc", ("request bag.svc",)),
                ("publish", "PRODUCER", "process bag.svc", ()),
            ]
        ]
        * 2
    )


async def test_callback_requests_and_jetstream_publishes_carry_the_message_baggage(
    telemetry: Any, js_server: Any, connect: Any
) -> None:
    """The message's baggage also goes on with a request and a JetStream publish made in a callback."""
    nc = await connect(js_server.url)
    js, stream = await new_stream(nc, telemetry, "BAG")
    requests = await responder(nc, "bag.req")
    stored = await collect(nc, f"{stream}.x")  # (a core subscriber sees what the stream stores)

    async def relay(msg: Any) -> None:
        await nc.request("bag.req", b"", timeout=5)
        await js.publish(f"{stream}.x", b"")

    await nc.subscribe("bag.relay", cb=relay)
    with current_baggage(tenant="t1"):
        await nc.publish("bag.relay", b"")
    stored_headers = (await asyncio.wait_for(stored.get(), 5)).headers
    assert (requests[0]["baggage"], stored_headers["baggage"]) == ("tenant=t1", "tenant=t1")
    spans = await wait_spans(telemetry, 7)
    assert forest(spans, rename=lambda name: name.replace(stream, "BAG")) == expected_forest(
        [
            ("publish bag.relay", "PRODUCER", None, ()),
            ("process bag.relay", "CONSUMER", "publish bag.relay", ("publish bag.relay",)),
            ("request bag.req", "CLIENT", "process bag.relay", ()),
            ("process bag.req", "SERVER", "request bag.req", ("request bag.req",)),
            ("publish", "PRODUCER", "process bag.req", ()),
            ("publish BAG.x", "PRODUCER", "process bag.relay", ()),
            ("process BAG.x", "SERVER", "publish BAG.x", ("publish BAG.x",)),  # (it has the PubAck inbox)
        ]
    )
