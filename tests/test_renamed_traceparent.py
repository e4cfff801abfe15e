"""Consumers keep the producer's context when the server renamed ``traceparent`` to ``Xraceparent``.

nats-server 2.11.0-2.12.11 with account message tracing (``msg_trace { dest, sampling }``) disable
tracing of a message by overwriting the first letter of its ``traceparent`` header with an ``X``: on
every copy stored in JetStream (of a traced message) and on messages the account's sampling skipped
(every copy). 2.12.12 and later keep ``traceparent`` and add ``Nats-Trace-Dest: trace disabled``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, get_current_span

from opentelemetry.instrumentation.nats import message_context, propagation
from tests.helpers import assert_child, assert_links, by_name, new_stream, synced, wait_spans
from tests.natsserver import NatsServer
from tests.trace_topology import TRACED_ACCOUNTS, disabled_headers, requires_msg_trace, traceparent

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TP = f"00-{TRACE_ID}-{PARENT_ID}-01"
OTHER_TP = "00-11111111111111111111111111111111-2222222222222222-01"


# --- extraction precedence (no server) ---------------------------------------------------------------


def ids(ctx: Any) -> tuple[str, str] | None:
    """(trace id, span id) in hex of the span a context carries; ``None`` for none."""
    span_ctx = get_current_span(ctx).get_span_context()
    return (f"{span_ctx.trace_id:032x}", f"{span_ctx.span_id:016x}") if span_ctx.is_valid else None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Xraceparent": TP}, (TRACE_ID, PARENT_ID)),
        ({"Xraceparent": TP, "tracestate": "k=v", "X-App": "1"}, (TRACE_ID, PARENT_ID)),
        # traceparent, in any case, wins over Xraceparent
        ({"traceparent": OTHER_TP, "Xraceparent": TP}, (OTHER_TP[3:35], OTHER_TP[36:52])),
        ({"Xraceparent": TP, "TraceParent": OTHER_TP}, (OTHER_TP[3:35], OTHER_TP[36:52])),
        # ... even a malformed one: the renamed header is only read when there is no traceparent
        ({"traceparent": "garbage", "Xraceparent": TP}, None),
        # malformed or odd Xraceparent: no context, no error
        ({"Xraceparent": "garbage"}, None),
        ({"Xraceparent": ""}, None),
        ({"Xraceparent": "00-00000000000000000000000000000000-0000000000000000-01"}, None),
        ({"Xraceparent": None}, None),
        ({"Xraceparent": 42}, None),
        ({"Xraceparent": [42]}, None),
        # a list of values is nats-core's header form: its first item is read
        ({"Xraceparent": [TP]}, (TRACE_ID, PARENT_ID)),
        ({"traceparent": [OTHER_TP, TP], "Xraceparent": [TP]}, (OTHER_TP[3:35], OTHER_TP[36:52])),
        # only the server's exact rename counts, not other spellings
        ({"xraceparent": TP}, None),
        ({"XRACEPARENT": TP}, None),
    ],
)
def test_extraction_precedence(headers: dict[str, Any], expected: tuple[str, str] | None) -> None:
    assert ids(propagation.extract(headers)) == expected


def test_renamed_traceparent_keeps_tracestate_and_flags() -> None:
    ctx = propagation.extract({"Xraceparent": TP, "tracestate": "vendor=abc"})
    span_ctx = get_current_span(ctx).get_span_context()
    assert span_ctx.is_remote and span_ctx.trace_flags.sampled
    assert span_ctx.trace_state.to_header() == "vendor=abc"


async def test_consumers_read_xraceparent_from_any_producer(telemetry: Any, server: Any, connect: Any) -> None:
    """Whatever renamed it (any server version): a process span, a receive span and ``message_context``."""
    nc = await connect(server.url)
    got: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(msg: Any) -> None:
        await got.put(msg)

    await nc.subscribe("renamed.cb", cb=handler)
    sync_sub = await nc.subscribe("renamed.sync")
    await synced(nc)
    with suppress_instrumentation():
        await nc.publish("renamed.cb", b"", headers={"Xraceparent": TP})
        await nc.publish("renamed.sync", b"", headers={"Xraceparent": TP})
    msg = await asyncio.wait_for(got.get(), 5)
    await sync_sub.next_msg(timeout=5)
    process, receive = await wait_spans(telemetry, 2)
    assert (process.name, process.kind, receive.name, receive.kind) == (
        "process renamed.cb",
        SpanKind.CONSUMER,
        "receive renamed.sync",
        SpanKind.CLIENT,
    )
    # the process span continues the producer's trace; the receive span is a root in the caller's
    # (empty) context; both link to the creation context read from Xraceparent
    assert format(process.context.trace_id, "032x") == TRACE_ID
    assert process.parent is not None and format(process.parent.span_id, "016x") == PARENT_ID
    assert receive.parent is None and format(receive.context.trace_id, "032x") != TRACE_ID
    for span in (process, receive):
        assert [(f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}") for link in span.links] == [
            (TRACE_ID, PARENT_ID)
        ]
    assert ids(message_context(msg)) == (TRACE_ID, PARENT_ID)


# --- real servers with account message tracing ---------------------------------------------------------

# Only servers with message tracing (2.11+) can rename the header; on 2.12.12+ these tests check that
# consumers continue the trace with account tracing on, where the headers stay as sent.
tracing = requires_msg_trace


@pytest.fixture(scope="module")
def tracing_server() -> Iterator[NatsServer]:
    """Account TRACED traces every message with a sampled traceparent; SAMPLED about 2 in 100."""
    srv = NatsServer(jetstream=True, extra=TRACED_ACCOUNTS).start()
    yield srv
    srv.cleanup()


@tracing
async def test_jetstream_push_consumers_continue_the_trace(
    telemetry: Any, tracing_server: NatsServer, connect: Any
) -> None:
    nc = await connect(tracing_server.url, user="traced", password="traced")
    js, stream = await new_stream(nc, telemetry, "PUSH")
    seen: list[dict[str, str]] = []
    done = asyncio.Event()

    async def handler(msg: Any) -> None:
        seen.append(dict(msg.headers))
        await msg.ack()
        done.set()

    await js.subscribe(f"{stream}.orders", durable="cb", cb=handler, manual_ack=True)
    sync_sub = await js.subscribe(f"{stream}.orders", durable="sync")
    await js.publish(f"{stream}.orders", b"1")
    await asyncio.wait_for(done.wait(), 5)
    received = await sync_sub.next_msg(timeout=5)
    spans = await wait_spans(telemetry, 4)
    assert sorted(s.name for s in spans) == sorted(
        [f"publish {stream}.orders", f"process {stream}.orders", f"ack {stream}", f"receive {stream}.orders"]
    )
    publish = by_name(spans, f"publish {stream}.orders", SpanKind.PRODUCER)
    process = by_name(spans, f"process {stream}.orders", SpanKind.CONSUMER)
    receive = by_name(spans, f"receive {stream}.orders", SpanKind.CLIENT)
    ack = by_name(spans, f"ack {stream}", SpanKind.CLIENT)
    # the server really disabled its trace on the stored copy (renamed the header before 2.12.12)
    assert seen == [disabled_headers(traceparent(publish))]
    assert received.headers == disabled_headers(traceparent(publish))
    assert_child(process, publish)
    assert receive.parent is None  # in the caller's (empty) context, linked to the creation context
    for span in (process, receive, ack):
        assert_links(span, publish)
    assert_child(ack, process)
    assert ids(message_context(received)) == (f"{publish.context.trace_id:032x}", f"{publish.context.span_id:016x}")


@tracing
async def test_jetstream_pull_consumer_continues_the_trace(
    telemetry: Any, tracing_server: NatsServer, connect: Any
) -> None:
    nc = await connect(tracing_server.url, user="traced", password="traced")
    js, stream = await new_stream(nc, telemetry, "PULL")
    psub = await js.pull_subscribe(f"{stream}.>", durable="pull", stream=stream)
    await js.publish(f"{stream}.a", b"a")
    await js.publish(f"{stream}.b", b"b")
    tracer = telemetry.tracer_provider.get_tracer(__name__)
    msgs = await psub.fetch(2, timeout=5)
    for msg in msgs:
        with tracer.start_as_current_span(f"handle {msg.subject}", context=message_context(msg)):
            await msg.ack()
    spans = await wait_spans(telemetry, 7)
    assert len(spans) == 7
    pub_a = by_name(spans, f"publish {stream}.a", SpanKind.PRODUCER)
    pub_b = by_name(spans, f"publish {stream}.b", SpanKind.PRODUCER)
    fetch = by_name(spans, f"fetch {stream}", SpanKind.CLIENT)
    assert [m.headers for m in msgs] == [disabled_headers(traceparent(pub_a)), disabled_headers(traceparent(pub_b))]
    assert fetch.parent is None
    assert [(link.context.trace_id, link.context.span_id) for link in fetch.links] == [
        (pub_a.context.trace_id, pub_a.context.span_id),
        (pub_b.context.trace_id, pub_b.context.span_id),
    ]
    for pub, subject in ((pub_a, f"{stream}.a"), (pub_b, f"{stream}.b")):
        handle = by_name(spans, f"handle {subject}")
        assert_child(handle, pub)
        (ack,) = [s for s in spans if s.name == f"ack {stream}" and s.parent == handle.context]
        assert_child(ack, handle)


@tracing
async def test_messages_skipped_by_sampling_continue_the_trace(
    telemetry: Any, tracing_server: NatsServer, connect: Any
) -> None:
    """With 1 % sampling almost every message's trace is disabled on every copy, core deliveries too."""
    nc = await connect(tracing_server.url, user="sampled", password="sampled")
    subject = f"sampled.{uuid.uuid4().hex[:8]}"
    got: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(msg: Any) -> None:
        await got.put(msg)

    await nc.subscribe(subject, cb=handler)
    await synced(nc)
    count = 10
    for i in range(count):
        await nc.publish(subject, str(i).encode())
    delivered = [await asyncio.wait_for(got.get(), 5) for _ in range(count)]
    spans = await wait_spans(telemetry, 2 * count)
    assert len(spans) == 2 * count
    publishes = [s for s in spans if s.name == f"publish {subject}"]
    processes = {s.parent.span_id: s for s in spans if s.name == f"process {subject}" and s.parent is not None}
    assert len(publishes) == len(processes) == count
    disabled = 0
    for msg, publish in zip(delivered, publishes, strict=True):
        assert_child(processes[publish.context.span_id], publish)
        # sampled (about 2 in 100): delivered as sent; skipped: the trace is disabled on the message
        assert msg.headers in ({"traceparent": traceparent(publish)}, disabled_headers(traceparent(publish)))
        disabled += msg.headers == disabled_headers(traceparent(publish))
    assert disabled > 0, "the sampling skipped none of the messages (chance: 0.02 ** 10)"
