"""What only nats-jetstream's consumers have: batches read lazily (when a fetch span ends: at the
batch's last message, its end, an error, or when the application drops it), ``fetch_nowait``, ordered
consumers (their fetch, ``next()``, and streams that drop out-of-order messages), and the hand-off
of messages to an operation that collects them (``operation.COLLECT``)."""

from __future__ import annotations

import asyncio
import gc
import inspect
import time
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from opentelemetry.instrumentation.nats.operation import COLLECT
from tests.families import Conn, Family, NatsCore, skip_reason
from tests.families_js import jetstream
from tests.helpers import Telemetry, assert_child, wait_spans
from tests.matrix.test_jetstream_consume import (
    FETCH,
    _stream,
    ages,
    by_stream,
    fetch_metric,
    fetch_points,
    ids,
    linked,
    produce,
)
from tests.matrix.test_lifecycle_metrics import metrics, points
from tests.natsserver import NatsServer

pytestmark = pytest.mark.skipif(skip_reason("nats-core") is not None, reason=str(skip_reason("nats-core")))


@pytest.fixture
async def core() -> Any:
    family = NatsCore()
    yield family
    await family.close_all()


async def _setup(
    core: Family, server: NatsServer, telemetry: Telemetry, count: int
) -> tuple[Conn, str, Any, list[Any]]:
    """A connection, a stream holding ``count`` messages and a durable pull consumer of them."""
    conn = await core.connect(server)
    js = jetstream(conn)
    stream = await _stream(js, "LAZY")
    consumer = await js.pull_consumer(stream, "puller", f"{stream}.q")
    producers = await produce(telemetry, js, f"{stream}.q", count)
    telemetry.clear()
    return conn, stream, consumer, producers


# an ordered consumer's configuration, as the server answered its creation
ORDERED_CONFIG = {"messaging.nats.jetstream.ack_policy": "none", "messaging.nats.jetstream.replay_policy": "instant"}


def _fetch_attrs(
    core: Family, conn: Conn, stream: str, count: int, consumer: str = "puller", config: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        **FETCH,
        "messaging.destination.name": stream,
        "messaging.batch.message_count": count,
        "messaging.nats.jetstream.stream": stream,
        "messaging.nats.jetstream.consumer": consumer,
        **(jetstream(conn).fetch_consumer_config if config is None else config),
        **core.conn_attrs(conn),
    }


def _dropped(batch_holder: list[Any]) -> None:
    """Drop the application's last reference to a batch."""
    batch_holder.clear()
    gc.collect()


# --- when a lazily read batch's span ends -----------------------------------------------------------


async def test_the_span_ends_at_the_message_that_completes_the_batch(
    telemetry: Telemetry, js_server: NatsServer, core: Family
) -> None:
    conn, stream, consumer, producers = await _setup(core, js_server, telemetry, 2)
    tracer = telemetry.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("poll"):
        batch = await consumer.fetch(max_messages=2, max_wait=5)
    first = await batch.__anext__()  # read outside the span the fetch was called in
    await asyncio.sleep(0.2)
    second = await batch.__anext__()
    handed = time.time_ns()
    poll, fetch = telemetry.spans()  # ended already: no further step was needed
    assert (fetch.name, fetch.kind, fetch.status.status_code) == (f"fetch {stream}", SpanKind.CLIENT, StatusCode.UNSET)
    assert_child(fetch, poll)  # the context of the fetch call
    assert linked(fetch) == ids(producers)
    assert dict(fetch.attributes) == _fetch_attrs(core, conn, stream, 2)
    assert fetch.end_time <= handed and fetch.end_time - fetch.start_time >= 0.2e9
    with pytest.raises(StopAsyncIteration):
        await batch.__anext__()
    assert (first.data, second.data, len(await wait_spans(telemetry, 2))) == (b"0", b"1", 2)
    (point,) = fetch_points(telemetry)
    assert (point.count, dict(point.attributes)) == (1, fetch_metric(conn, stream))
    assert point.sum >= 0.2  # its duration: from the call to the last hand-over


async def test_the_span_of_a_batch_that_ends_early_ends_at_its_last_message(
    telemetry: Telemetry, js_server: NatsServer, core: Family
) -> None:
    """Fewer messages than asked for: the batch ends when the wait runs out; the span at the last hand-over."""
    conn, stream, consumer, producers = await _setup(core, js_server, telemetry, 2)
    batch = await consumer.fetch(max_messages=5, max_wait=0.5)
    got = []
    async for msg in batch:
        got.append(msg)
        handed = time.time_ns()
    assert [m.data for m in got] == [b"0", b"1"]
    (fetch,) = await wait_spans(telemetry, 1)
    assert linked(fetch) == ids(producers)
    assert dict(fetch.attributes) == _fetch_attrs(core, conn, stream, 2)
    assert fetch.end_time <= handed and fetch.end_time - fetch.start_time < 0.4e9


async def test_a_partly_read_batch_that_is_dropped_ends_at_its_last_hand_over(
    telemetry: Telemetry, js_server: NatsServer, core: Family
) -> None:
    conn, stream, consumer, producers = await _setup(core, js_server, telemetry, 3)
    holder = [await consumer.fetch(max_messages=3, max_wait=5)]
    first = await holder[0].__anext__()
    handed = time.time_ns()
    await asyncio.sleep(0.2)
    assert first.data == b"0" and telemetry.spans() == []  # still open: the application may read on
    _dropped(holder)
    (fetch,) = await wait_spans(telemetry, 1)
    assert linked(fetch) == ids(producers[:1])
    assert dict(fetch.attributes) == _fetch_attrs(core, conn, stream, 1)
    assert fetch.end_time <= handed
    (consumed,) = points(metrics(telemetry)["messaging.client.consumed.messages"])
    assert (consumed.value, dict(consumed.attributes)) == (1, fetch_metric(conn, stream))


@pytest.mark.parametrize("empty_fetch_spans", [False, True])
async def test_a_batch_dropped_before_any_message_is_a_cancelled_fetch(
    make_telemetry: Any, js_server: NatsServer, core: Family, empty_fetch_spans: bool
) -> None:
    telemetry = make_telemetry(empty_fetch_spans=empty_fetch_spans)
    conn, stream, consumer, _ = await _setup(core, js_server, telemetry, 1)
    holder = [await consumer.fetch(max_messages=1, max_wait=5)]
    returned = time.time_ns()
    await asyncio.sleep(0.1)
    _dropped(holder)
    spans = await wait_spans(telemetry, 1 if empty_fetch_spans else 0)
    if empty_fetch_spans:
        (fetch,) = spans
        assert (fetch.status.status_code, fetch.links, fetch.events) == (StatusCode.UNSET, (), ())
        assert dict(fetch.attributes) == _fetch_attrs(core, conn, stream, 0)
        assert fetch.end_time <= returned  # when fetch returned: nothing was read after it
    else:
        assert spans == []
    assert fetch_points(telemetry) == []  # it did not complete


async def test_fetch_nowait_takes_what_is_there(telemetry: Telemetry, js_server: NatsServer, core: Family) -> None:
    conn, stream, consumer, producers = await _setup(core, js_server, telemetry, 3)
    full = [msg async for msg in await consumer.fetch_nowait(max_messages=5)]
    empty = [msg async for msg in await consumer.fetch_nowait(max_messages=5)]
    assert ([m.data for m in full], empty) == ([b"0", b"1", b"2"], [])
    (fetch,) = await wait_spans(telemetry, 1)  # the empty one makes none
    assert linked(fetch) == ids(producers)
    assert dict(fetch.attributes) == _fetch_attrs(core, conn, stream, 3)
    (point,) = fetch_points(telemetry)
    assert point.count == 2  # both measured
    (consumed,) = points(metrics(telemetry)["messaging.client.consumed.messages"])
    assert consumed.value == 3


async def test_the_error_a_batch_ends_with_is_its_spans(
    telemetry: Telemetry, js_server: NatsServer, core: Family
) -> None:
    conn, stream, consumer, _ = await _setup(core, js_server, telemetry, 0)
    batch = await consumer.fetch(max_messages=1, max_wait=5)
    reading = asyncio.ensure_future(batch.__anext__())
    await asyncio.sleep(0.1)
    await jetstream(conn).native.delete_consumer(stream, "puller")  # the server ends the pull request
    with pytest.raises(StopAsyncIteration):
        await reading
    assert type(batch.error).__name__ == "ConsumerDeletedError"
    (fetch,) = await wait_spans(telemetry, 1)
    assert fetch.status.status_code == StatusCode.ERROR
    expected = {**_fetch_attrs(core, conn, stream, 0), "error.type": "ConsumerDeletedError"}
    del expected["messaging.batch.message_count"]  # (a failed fetch's result is not read)
    assert dict(fetch.attributes) == expected
    assert [e.name for e in fetch.events] == ["exception"]
    (point,) = fetch_points(telemetry)
    assert dict(point.attributes) == {**fetch_metric(conn, stream), "error.type": "ConsumerDeletedError"}


async def test_next_makes_only_its_receive_span(telemetry: Telemetry, js_server: NatsServer, core: Family) -> None:
    _conn, stream, consumer, producers = await _setup(core, js_server, telemetry, 1)
    msg = await consumer.next(max_wait=5)
    with pytest.raises(TimeoutError):
        await consumer.next(max_wait=0.1)  # no message: no span
    (receive,) = await wait_spans(telemetry, 1)  # no fetch span, no receive span of its inbox
    assert (receive.name, receive.parent, linked(receive)) == (f"receive {stream}", None, ids(producers))
    assert msg.data == b"0"
    assert fetch_points(telemetry) == []


async def test_age_counts_until_each_message_is_handed_over(
    telemetry: Telemetry, js_server: NatsServer, core: Family
) -> None:
    _conn, stream, consumer, _ = await _setup(core, js_server, telemetry, 2)
    batch = await consumer.fetch(max_messages=2, max_wait=5)
    await batch.__anext__()
    await asyncio.sleep(0.5)
    await batch.__anext__()
    await wait_spans(telemetry, 1)
    (point,) = ages(telemetry)
    assert dict(point.attributes) == by_stream(stream, "puller")
    assert point.count == 2 and point.min < 0.4 and point.max >= 0.5


# --- ordered consumers ------------------------------------------------------------------------------


async def test_ordered_consumer_fetch_next_and_messages(
    telemetry: Telemetry, js_server: NatsServer, core: Family
) -> None:
    conn, stream, _, producers = await _setup(core, js_server, telemetry, 3)
    ordered = await jetstream(conn).native.ordered_consumer(stream)
    fetched = [msg async for msg in await ordered.fetch(max_messages=2, max_wait=5)]
    name = ordered.name  # (the server-side consumer this fetch made; the next call makes another)
    nexted = await ordered.next(max_wait=5)
    messages = await (await jetstream(conn).native.ordered_consumer(stream)).messages()  # (from the start)
    streamed = await messages.__anext__()
    await messages.stop()
    assert [m.data for m in (*fetched, nexted, streamed)] == [b"0", b"1", b"2", b"0"]
    fetch, receive_next, receive_streamed = await wait_spans(telemetry, 3)
    assert (fetch.name, linked(fetch)) == (f"fetch {stream}", ids(producers[:2]))
    assert dict(fetch.attributes) == _fetch_attrs(core, conn, stream, 2, consumer=name, config=ORDERED_CONFIG)
    for span, msg, producer in ((receive_next, nexted, producers[2]), (receive_streamed, streamed, producers[0])):
        assert (span.name, span.kind, span.parent) == (f"receive {stream}", SpanKind.CLIENT, None)
        assert linked(span) == ids([producer])
        assert span.attributes["messaging.nats.reply_to"] == msg.reply
        assert span.attributes["messaging.nats.jetstream.consumer"] == msg.metadata.consumer
    (point,) = ages(telemetry)
    assert (point.count, dict(point.attributes)) == (4, by_stream(stream))  # its consumer's name changes


async def _gap(ordered_stream: Any, ordered: Any) -> None:
    """Make the ordered consumer's stream see its next message out of order (a missed delivery): it
    drops that message, recreates its server-side consumer and delivers the message again."""
    ordered._cursor.deliver_seq += 5


async def test_an_ordered_stream_drops_out_of_order_messages_without_spans(
    telemetry: Telemetry, js_server: NatsServer, core: Family
) -> None:
    conn, stream, _, producers = await _setup(core, js_server, telemetry, 2)
    ordered = await jetstream(conn).native.ordered_consumer(stream)
    messages = await ordered.messages()
    first = await messages.__anext__()
    await _gap(messages, ordered)
    second = await messages.__anext__()  # dropped once, delivered again
    await messages.stop()
    assert (first.data, second.data, second.metadata.sequence.consumer) == (b"0", b"1", 1)
    spans = await wait_spans(telemetry, 2)
    assert [(s.name, linked(s)) for s in spans] == [(f"receive {stream}", ids([p])) for p in producers]


# --- operation.COLLECT: messages read for another operation -----------------------------------------


async def test_collected_messages_make_no_spans_and_no_metrics(
    telemetry: Telemetry, js_server: NatsServer, core: Family
) -> None:
    conn, stream, consumer, _ = await _setup(core, js_server, telemetry, 3)
    ordered = await jetstream(conn).native.ordered_consumer(stream)
    collected: list[Any] = []
    token = COLLECT.set(collected.append)
    try:
        fetched = [msg async for msg in await consumer.fetch(max_messages=2, max_wait=5)]
        messages = await ordered.messages()
        streamed = [await messages.__anext__()]
        await _gap(messages, ordered)
        streamed.append(await messages.__anext__())  # (the dropped message is not handed over)
        await messages.stop()
    finally:
        COLLECT.reset(token)
    assert [m.data for m in fetched + streamed] == [b"0", b"1", b"0", b"1"]
    assert collected == fetched + streamed
    assert await wait_spans(telemetry, 0) == []
    assert "messaging.client.consumed.messages" not in metrics(telemetry)
    assert ages(telemetry) == []


def test_plain_patches_look_like_the_originals(telemetry: Telemetry) -> None:
    from nats.jetstream.consumer import ordered, pull

    for owner in (pull.PullMessageBatch, pull.PullMessageStream, ordered._OrderedMessageStream):
        patched = owner.__dict__["__anext__"]
        assert patched.__wrapped__.__name__ == patched.__name__ == "__anext__"
        assert patched.__doc__ == patched.__wrapped__.__doc__
        assert inspect.iscoroutinefunction(patched)
