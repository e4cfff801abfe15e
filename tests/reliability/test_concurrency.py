"""200 concurrent request-reply tasks on one connection keep their own contexts."""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry.trace import SpanKind, StatusCode, format_trace_id

from opentelemetry import trace
from tests.helpers import assert_child, wait_spans
from tests.reliability.support import SpanLedger, captured_logs, describe_records

TASKS = 200
WORKERS = 4


async def test_concurrent_requests_keep_their_own_trace(telemetry: Any, server: Any, connect: Any) -> None:
    ledger = SpanLedger()
    telemetry.tracer_provider.add_span_processor(ledger)
    tracer = telemetry.tracer_provider.get_tracer("app")
    nc = await connect(server.url)
    in_flight = 0
    peak = 0
    context_mixups: list[str] = []

    async def worker(msg: Any) -> None:
        span = trace.get_current_span()
        n = int(msg.data)
        await asyncio.sleep((n % 7) / 1000)  # replies come back out of order
        if trace.get_current_span() is not span:
            context_mixups.append(f"worker lost its span for request {n}")
        seen = format_trace_id(span.get_span_context().trace_id)
        await msg.respond(f"{n}:{seen}".encode())

    for _ in range(WORKERS):
        await nc.subscribe("concurrent.svc", queue="workers", cb=worker)
    await nc.flush()

    async def client(i: int) -> tuple[int, int, bytes]:
        nonlocal in_flight, peak
        with tracer.start_as_current_span(f"task {i}") as mine:
            await asyncio.sleep(0)
            if trace.get_current_span() is not mine:
                context_mixups.append(f"task {i} lost its span before the request")
            in_flight += 1
            peak = max(peak, in_flight)
            reply = await nc.request("concurrent.svc", str(i).encode(), timeout=10)
            in_flight -= 1
            if trace.get_current_span() is not mine:
                context_mixups.append(f"task {i} lost its span after the request")
            await nc.publish("concurrent.done", str(i).encode())
            if trace.get_current_span() is not mine:
                context_mixups.append(f"task {i} lost its span after a publish")
            ctx = mine.get_span_context()
            return ctx.trace_id, ctx.span_id, reply.data

    with captured_logs() as logs:
        results = await asyncio.gather(*(client(i) for i in range(TASKS)))
        spans = await wait_spans(telemetry, 5 * TASKS)
    assert context_mixups == []
    assert peak > TASKS // 2  # the requests really were in flight together
    assert describe_records(logs) == []
    ledger.assert_balanced()
    assert trace.get_current_span() is trace.INVALID_SPAN  # nothing leaked into the test's own context

    # every reply was produced inside the trace of its own request
    for i, (trace_id, _, data) in enumerate(results):
        assert data == f"{i}:{format_trace_id(trace_id)}".encode()

    by_id = {s.context.span_id: s for s in spans}
    children: dict[int, list[Any]] = {}
    for s in spans:
        if s.parent is not None:
            children.setdefault(s.parent.span_id, []).append(s)
    assert len(spans) == 5 * TASKS
    for i, (trace_id, span_id, _) in enumerate(results):
        task = by_id[span_id]
        assert task.name == f"task {i}" and task.parent is None
        done, request = sorted(children[span_id], key=lambda s: s.name)
        assert (request.name, request.kind) == ("request concurrent.svc", SpanKind.CLIENT)
        assert (done.name, done.kind) == ("publish concurrent.done", SpanKind.PRODUCER)
        assert request.attributes["messaging.nats.response.body.size"] == len(results[i][2])
        (process,) = children[request.context.span_id]
        assert (process.name, process.kind) == ("process concurrent.svc", SpanKind.SERVER)
        assert process.attributes["messaging.consumer.group.name"] == "workers"
        (reply,) = children[process.context.span_id]
        assert (reply.name, reply.kind) == ("publish", SpanKind.PRODUCER)
        for span in (request, process, reply):
            assert span.context.trace_id == trace_id
            assert span.status.status_code == StatusCode.UNSET
        assert_child(process, request)
        assert_child(reply, process)
