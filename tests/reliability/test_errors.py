"""Callback errors, cancelled requests, close/drain with operations in flight."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import nats
import nats.errors
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from tests.helpers import wait_spans
from tests.reliability.support import SpanLedger, captured_logs, describe_records, loop_errors, until


class AppError(Exception):
    """An application exception with some state, to tell the objects apart."""

    def __init__(self, n: int) -> None:
        super().__init__(f"app error {n}")
        self.n = n


def _exception_for(n: int) -> Exception:
    return [ValueError(f"bad {n}"), AppError(n), KeyError(n), RuntimeError(f"runtime {n}")][n % 4]


async def _callback_errors(url: str, with_error_cb: bool) -> tuple[list[Exception], list[Any], list[str]]:
    """Twelve messages to a callback that raises a different exception for most of them. Returns the
    exceptions raised, what error_cb received (or what nats-py's default error callback logged), and
    the order in which messages were handled."""
    raised: list[Exception] = []
    reported: list[Any] = []
    handled: list[str] = []

    async def error_cb(exc: Exception) -> None:
        reported.append(exc)

    async def handler(msg: Any) -> None:
        n = int(msg.data)
        handled.append(msg.data.decode())
        if n % 3 != 2:  # every third message is handled without an error
            exc = _exception_for(n)
            raised.append(exc)
            raise exc

    with captured_logs("nats.aio.client", logging.ERROR) as records:
        nc = await nats.connect(url, **({"error_cb": error_cb} if with_error_cb else {}))
        try:
            await nc.subscribe("errors.cb", cb=handler)
            for i in range(12):
                await nc.publish("errors.cb", str(i).encode())
            await nc.flush()
            await until(lambda: len(handled) == 12, what="all messages handled")
            await asyncio.sleep(0.02)
        finally:
            await nc.close()
    if not with_error_cb:
        reported = [r.exc_info[1] if r.exc_info else r.getMessage() for r in records]
    return raised, reported, handled


@pytest.mark.parametrize("with_error_cb", [True, False], ids=["error_cb", "default_error_cb"])
async def test_callback_exceptions_reach_error_cb_as_without_instrumentation(
    telemetry: Any, server: Any, with_error_cb: bool
) -> None:
    telemetry.uninstrument()
    plain_raised, plain_reported, plain_handled = await _callback_errors(server.url, with_error_cb)
    telemetry.instrument()
    with captured_logs() as logs:
        raised, reported, handled = await _callback_errors(server.url, with_error_cb)

    assert len(plain_raised) == len(raised) == 8
    # the very objects the callback raised, in the order raised, without and with instrumentation
    assert len(plain_reported) == len(plain_raised) and all(
        a is b for a, b in zip(plain_reported, plain_raised, strict=True)
    )
    assert len(reported) == len(raised) and all(a is b for a, b in zip(reported, raised, strict=True))
    assert [(type(e), e.args) for e in reported] == [(type(e), e.args) for e in plain_reported]
    assert handled == plain_handled == [str(i) for i in range(12)]
    assert describe_records(logs) == []

    spans = [s for s in await wait_spans(telemetry, 24) if s.kind == SpanKind.CONSUMER]
    assert len(spans) == 12
    errors = [s for s in spans if s.status.status_code == StatusCode.ERROR]
    assert [s.attributes["error.type"] for s in errors] == [type(e).__qualname__ for e in raised]
    assert [s.events[0].attributes["exception.message"] for s in errors] == [str(e) for e in raised]


async def test_sync_error_cb_is_rejected_exactly_as_without_instrumentation(telemetry: Any, server: Any) -> None:
    def sync_error_cb(exc: Exception) -> None:
        pass

    telemetry.uninstrument()
    with pytest.raises(nats.errors.InvalidCallbackTypeError) as plain:
        await nats.connect(server.url, error_cb=sync_error_cb)
    telemetry.instrument()
    with pytest.raises(nats.errors.InvalidCallbackTypeError) as traced:
        await nats.connect(server.url, error_cb=sync_error_cb)
    assert str(traced.value) == str(plain.value)


async def test_cancelled_request_ends_its_span(telemetry: Any, server: Any, connect: Any) -> None:
    ledger = SpanLedger()
    telemetry.tracer_provider.add_span_processor(ledger)
    nc = await connect(server.url)
    received = asyncio.Event()

    async def silent(msg: Any) -> None:
        received.set()  # never answers

    async def echo(msg: Any) -> None:
        await msg.respond(msg.data)

    await nc.subscribe("errors.silent", cb=silent)
    await nc.subscribe("errors.echo", cb=echo)
    await nc.flush()
    tracer = telemetry.tracer_provider.get_tracer("app")

    async def ask() -> Any:
        with tracer.start_as_current_span("caller"):
            return await nc.request("errors.silent", b"?", timeout=30)

    task = asyncio.create_task(ask())
    await asyncio.wait_for(received.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await ledger.wait_balanced()
    spans = await wait_spans(telemetry, 3)
    request = next(s for s in spans if s.name == "request errors.silent")
    assert request.status.status_code == StatusCode.ERROR
    assert request.attributes["error.type"] == "CancelledError"
    assert [e.name for e in request.events] == ["exception"]
    assert request.end_time is not None and request.end_time - request.start_time < 5e9
    assert next(s for s in spans if s.name == "caller").attributes == {}

    # the connection and the instrumentation carry on: the next request is traced normally
    telemetry.clear()
    assert (await nc.request("errors.echo", b"hi", timeout=5)).data == b"hi"
    spans = await wait_spans(telemetry, 3)
    assert sorted(s.name for s in spans) == ["process errors.echo", "publish", "request errors.echo"]
    req = next(s for s in spans if s.name == "request errors.echo")
    assert req.parent is None and req.status.status_code == StatusCode.UNSET
    ledger.assert_balanced()


@pytest.mark.parametrize("how", ["close", "drain"])
async def test_close_and_drain_end_every_span_in_flight(telemetry: Any, js_server: Any, connect: Any, how: str) -> None:
    """Requests waiting for replies, ``publish_async`` acks that never come and (for close) a callback
    still running when the connection goes: every span ends."""
    ledger = SpanLedger()
    telemetry.tracer_provider.add_span_processor(ledger)
    with captured_logs() as logs, loop_errors() as loop_errs:
        other = await connect(js_server.url)  # answers nothing, acks nothing
        asked = asyncio.Queue[Any]()

        async def swallow(msg: Any) -> None:
            await asked.put(msg)

        await other.subscribe("inflight.request", cb=swallow)
        await other.subscribe("inflight.async", cb=swallow)
        await other.flush()

        nc = await connect(js_server.url)
        started = asyncio.Event()
        release = asyncio.Event()

        async def slow(msg: Any) -> None:
            started.set()
            if how == "close":
                await release.wait()  # still running when the connection closes
            else:
                await asyncio.sleep(0.1)  # drain waits for it

        await nc.subscribe("inflight.work", cb=slow)
        await nc.flush()
        requests = [asyncio.create_task(nc.request("inflight.request", str(i).encode(), timeout=1)) for i in range(3)]
        js = nc.jetstream(timeout=30)
        futures = [await js.publish_async("inflight.async", str(i).encode()) for i in range(3)]
        await nc.publish("inflight.work", b"w")
        for _ in range(6):
            await asyncio.wait_for(asked.get(), 5)
        await asyncio.wait_for(started.wait(), 5)

        await (nc.close() if how == "close" else nc.drain())
        results = await asyncio.gather(*requests, return_exceptions=True)
        assert [type(r) for r in results] == [nats.errors.TimeoutError] * 3
        await ledger.wait_balanced()
        for f in futures:
            f.cancel()
        assert loop_errs == []
    assert describe_records(logs) == []

    spans = telemetry.spans()
    by_name: dict[str, list[Any]] = {}
    for s in spans:
        by_name.setdefault(s.name, []).append(s)
    assert {k: len(v) for k, v in by_name.items()} == {
        "request inflight.request": 3,
        "publish inflight.async": 3,
        "publish inflight.work": 1,
        "process inflight.work": 1,
        # the other connection's callbacks
        "process inflight.request": 3,
        "process inflight.async": 3,
    }
    assert all(s.status.status_code == StatusCode.UNSET for s in by_name["process inflight.request"])
    assert [s.attributes["error.type"] for s in by_name["request inflight.request"]] == ["TimeoutError"] * 3
    assert [s.attributes["error.type"] for s in by_name["publish inflight.async"]] == ["ConnectionClosedError"] * 3
    (work,) = by_name["process inflight.work"]
    if how == "close":
        assert work.attributes["error.type"] == "CancelledError"
    else:
        assert work.status.status_code == StatusCode.UNSET


@pytest.mark.parametrize("empty_fetch_spans", [False, True])
async def test_empty_fetch_is_not_an_error_whichever_timeout_nats_py_raises(
    make_telemetry: Any, js_server: Any, connect: Any, empty_fetch_spans: bool
) -> None:
    """nats-py answers an empty ``fetch`` with ``nats.errors.TimeoutError`` — or, when the server's "no
    messages" arrives after the fetch's deadline has passed, with a plain ``asyncio.TimeoutError``
    (nats-py 2.16 ``_fetch_n``). Neither makes a span by default, and neither is an error: not in the
    metrics, nor in the spans ``empty_fetch_spans`` records. A task that blocks the loop for longer
    than the fetch timeout makes the late answer happen."""
    telemetry = make_telemetry(empty_fetch_spans=empty_fetch_spans)
    nc = await connect(js_server.url)
    js = nc.jetstream()
    await js.add_stream(name="EMPTYFETCH", subjects=["emptyfetch.>"])
    psub = await js.pull_subscribe("emptyfetch.none", durable="empty")
    telemetry.clear()
    raised: list[type[BaseException]] = []
    for _ in range(8):

        async def stall() -> None:
            time.sleep(0.05)  # blocking the loop is the point

        asyncio.get_running_loop().create_task(stall())
        with pytest.raises(asyncio.TimeoutError) as info:
            await psub.fetch(2, timeout=0.02)
        raised.append(type(info.value))
    data = telemetry.metric_reader.get_metrics_data()
    durations = [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "messaging.client.operation.duration"
        for p in m.data.data_points
    ]
    assert [(p.attributes["messaging.operation.name"], p.count) for p in durations] == [("fetch", len(raised))]
    assert "error.type" not in durations[0].attributes
    if not empty_fetch_spans:
        assert await wait_spans(telemetry, 0) == []
        await js.delete_stream("EMPTYFETCH")
        return
    spans = await wait_spans(telemetry, len(raised))
    assert [s.name for s in spans] == ["fetch EMPTYFETCH"] * len(raised)
    assert [(s.status.status_code, s.attributes.get("error.type"), len(s.events)) for s in spans] == [
        (StatusCode.UNSET, None, 0)
    ] * len(raised)
    assert all(s.attributes["messaging.batch.message_count"] == 0 for s in spans)
    await js.delete_stream("EMPTYFETCH")
