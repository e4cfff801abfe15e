"""What only nats-jetstream and nats-key-value have: a JetStream publish's retries, ``Headers`` objects
on a JetStream publish, ``term_with_reason``, stored-message gets through a ``Stream``, and key-value
iterators: a history's entries (a span each), ``updates()`` (the initial values it drops make none),
``values()``, ``watch_filtered``, ``purge_deletes``. (The message age of the entries taken, on each
family: test_stored_reads.py.)"""

from __future__ import annotations

import asyncio
import copy
import uuid
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from tests.families import skip_reason
from tests.helpers import Telemetry, assert_child, assert_links, wait_spans
from tests.matrix.expect import PUBLISH, RECEIVE
from tests.natsserver import NatsServer, requires_server

pytestmark = pytest.mark.skipif(skip_reason("nats-core") is not None, reason=str(skip_reason("nats-core")))

RETRIES = "messaging.nats.jetstream.publish.retries"


def _name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def nc(js_server: NatsServer) -> Any:
    import nats.client

    client = await nats.client.connect(js_server.url)
    yield client
    await client.close()


@pytest.fixture
def js(nc: Any) -> Any:
    import nats.jetstream

    return nats.jetstream.new(nc)


async def _bucket(js: Any, telemetry: Telemetry, history: int = 10) -> tuple[Any, str]:
    import nats.key_value

    bucket = _name("kv")
    kv = await nats.key_value.create_key_value(js, nats.key_value.KeyValueConfig(bucket=bucket, history=history))
    telemetry.clear()
    return kv, bucket


def _recv_attrs(bucket: str, key: str, revision: int, size: int, **extra: Any) -> dict[str, Any]:
    return {
        **RECEIVE,
        "messaging.destination.name": bucket,
        "messaging.message.body.size": size,
        "messaging.nats.kv.bucket": bucket,
        "messaging.nats.kv.key": key,
        "messaging.nats.kv.revision": revision,
        **extra,
    }


def _without_conn(attrs: Any) -> dict[str, Any]:
    """``attrs`` without the connection attributes (tested by the family matrix)."""
    conn = ("server.", "messaging.client.id", "messaging.nats.server.")
    return {k: v for k, v in dict(attrs).items() if not k.startswith(conn)}


# --- JetStream publish -----------------------------------------------------------------------------


async def test_retries_are_counted_on_the_one_span(telemetry: Telemetry, js: Any) -> None:
    """The client retries a publish that found no responders: still one span, its retries counted;
    a publish that needed none has no retry attribute (tests/matrix/test_jetstream_send.py)."""
    from nats.client.errors import NoRespondersError

    subject = _name("late.")
    for attempts, expected in ((0, None), (1, 1), (3, 3)):
        with pytest.raises(NoRespondersError):
            await js.publish(subject, b"", retry_attempts=attempts, retry_wait=0.01)
        (span,) = await wait_spans(telemetry, 1)
        telemetry.clear()
        assert (span.name, span.status.status_code) == (f"publish {subject}", StatusCode.ERROR)
        assert span.attributes.get(RETRIES) == expected, attempts
    # a stream that appears while the client waits to retry: the retried publish succeeds
    stream = _name("LATE")
    publishing = asyncio.ensure_future(js.publish(subject, b"x", retry_attempts=3, retry_wait=1.0))
    await asyncio.sleep(0.2)
    await js.create_stream(name=stream, subjects=[subject])
    ack = await publishing
    (span,) = await wait_spans(telemetry, 1)
    assert (ack.stream, ack.sequence) == (stream, 1)
    assert span.status.status_code is StatusCode.UNSET
    assert _without_conn(span.attributes) == {
        **PUBLISH,
        "messaging.destination.name": subject,
        "messaging.message.body.size": 1,
        "messaging.nats.jetstream.subject": subject,
        "messaging.nats.jetstream.stream": stream,
        "messaging.nats.jetstream.sequence": 1,
        "messaging.nats.jetstream.duplicate": False,
        "messaging.nats.jetstream.duplicate_window": "2m0s",
        RETRIES: 1,
    }


async def test_retries_with_hooks(make_telemetry: Any, js: Any) -> None:
    """With hooks the publish span is current while the client retries: the count goes to it."""
    from nats.client.errors import NoRespondersError

    hooked: list[str] = []
    telemetry = make_telemetry(publish_hook=lambda span, subject, payload, headers: hooked.append(subject))
    with pytest.raises(NoRespondersError):
        await js.publish("hooked.nostream", b"", retry_attempts=2, retry_wait=0.01)
    (span,) = await wait_spans(telemetry, 1)
    assert (span.name, span.attributes[RETRIES], hooked) == ("publish hooked.nostream", 2, ["hooked.nostream"])


async def test_headers_objects_on_a_jetstream_publish(make_telemetry: Any, js: Any) -> None:
    from nats.client import Headers

    telemetry = make_telemetry(captured_headers=["X-Tenant"])
    stream = _name("H")
    await js.create_stream(name=stream, subjects=[f"{stream}.>"])
    headers = Headers({"X-Tenant": ["a", "b"], "Nats-Msg-Id": "m-1", "Nats-Expected-Stream": stream})
    before = copy.deepcopy(headers)
    await js.publish(f"{stream}.x", b"", headers=headers)
    assert headers == before  # the caller's object is left alone
    stored = await js.get_message(stream, 1)
    publish, _get = await wait_spans(telemetry, 2)
    assert (publish.name, publish.kind) == (f"publish {stream}.x", SpanKind.PRODUCER)
    assert {
        k: v
        for k, v in publish.attributes.items()
        if k.startswith(("messaging.message", "messaging.nats.message", "messaging.nats.j"))
    } == {
        "messaging.message.body.size": 0,
        "messaging.message.id": "m-1",
        "messaging.nats.message.header.x-tenant": "a",
        "messaging.nats.jetstream.subject": f"{stream}.x",
        "messaging.nats.jetstream.expected_stream": stream,
        "messaging.nats.jetstream.stream": stream,
        "messaging.nats.jetstream.sequence": 1,
        "messaging.nats.jetstream.duplicate": False,
        "messaging.nats.jetstream.duplicate_window": "2m0s",
    }
    assert stored.headers.get_all("X-Tenant") == ["a", "b"]
    assert [v.split("-")[2] for v in stored.headers.get_all("traceparent")] == [format(publish.context.span_id, "016x")]


@requires_server("2.12", why="per-message TTL (allow_msg_ttl) and counters (allow_msg_counter)")
async def test_message_features_and_the_counters_value(telemetry: Telemetry, js: Any) -> None:
    """The JetStream message features a publish's headers ask for (list values too) and the PubAck's
    counter value (nats-jetstream's ``value``, nats-py's ``val``)."""
    ttl_stream, counter_stream = _name("TTL"), _name("CNT")
    await js.create_stream(name=ttl_stream, subjects=[f"{ttl_stream}.>"], allow_msg_ttl=True)
    await js.create_stream(name=counter_stream, subjects=[f"{counter_stream}.>"], allow_msg_counter=True)
    telemetry.clear()
    await js.publish(f"{ttl_stream}.a", b"x", headers={"Nats-TTL": ["1h"]})
    await js.publish(f"{counter_stream}.hits", b"", headers={"Nats-Incr": "+5"})
    ack = await js.publish(f"{counter_stream}.hits", b"", headers={"Nats-Incr": "-2"})
    assert ack.value == "3"
    ttl, first, second = await wait_spans(telemetry, 3)
    features = ("messaging.nats.jetstream.message_ttl", "messaging.nats.jetstream.counter_")
    assert [{k: v for k, v in s.attributes.items() if k.startswith(features)} for s in (ttl, first, second)] == [
        {"messaging.nats.jetstream.message_ttl": "1h"},
        {"messaging.nats.jetstream.counter_increment": "+5", "messaging.nats.jetstream.counter_value": "5"},
        {"messaging.nats.jetstream.counter_increment": "-2", "messaging.nats.jetstream.counter_value": "3"},
    ]


@requires_server("2.11", why="per-key TTL (a bucket with limit_marker_ttl)")
async def test_key_value_ttls(telemetry: Telemetry, js: Any) -> None:
    """``create(ttl=)`` and ``purge(ttl=)`` send a per-message TTL: their spans record it."""
    from datetime import timedelta

    import nats.key_value

    bucket = _name("kv")
    config = nats.key_value.KeyValueConfig(bucket=bucket, history=5, limit_marker_ttl=timedelta(seconds=5))
    kv = await nats.key_value.create_key_value(js, config)
    telemetry.clear()
    await kv.create("k", b"v", ttl=timedelta(minutes=1))
    await kv.purge("k", ttl=timedelta(seconds=30))
    create, purge = await wait_spans(telemetry, 2)
    assert [(s.name, s.attributes.get("messaging.nats.jetstream.message_ttl")) for s in (create, purge)] == [
        (f"kv.create {bucket}", "60s"),
        (f"kv.purge {bucket}", "30s"),
    ]


# --- settle ----------------------------------------------------------------------------------------


async def test_term_with_reason_and_double_ack_confirmation(telemetry: Telemetry, js: Any) -> None:
    stream = _name("T")
    found = await js.create_stream(name=stream, subjects=[f"{stream}.>"])
    consumer = await found.create_consumer(name="c", durable_name="c", ack_policy="explicit")
    await js.publish(f"{stream}.a", b"1")
    await js.publish(f"{stream}.b", b"2")
    first = await consumer.next(max_wait=5)
    second = await consumer.next(max_wait=5)
    telemetry.clear()
    await first.term_with_reason("bad input")
    await second.double_ack(timeout=5)  # its inbox subscription and confirmation: no spans
    term, ack = await wait_spans(telemetry, 2)
    assert [(s.name, s.kind, s.attributes["messaging.operation.name"]) for s in (term, ack)] == [
        (f"term {stream}", SpanKind.CLIENT, "term"),
        (f"ack {stream}", SpanKind.CLIENT, "ack"),
    ]
    assert (
        term.attributes["messaging.nats.jetstream.sequence"],
        ack.attributes["messaging.nats.jetstream.sequence"],
    ) == (1, 2)


# --- stored messages -------------------------------------------------------------------------------


@pytest.mark.parametrize("direct", [False, True], ids=["stream-msg-get", "direct-get"])
async def test_stream_gets(telemetry: Telemetry, js: Any, direct: bool) -> None:
    """``Stream.get_message`` and ``get_last_message_for_subject``, on a stream with or without direct gets."""
    stream = _name("G")
    found = await js.create_stream(name=stream, subjects=[f"{stream}.>"], allow_direct=direct)
    with telemetry.tracer_provider.get_tracer("app").start_as_current_span("writer"):
        await js.publish(f"{stream}.a", b"one")
    with telemetry.tracer_provider.get_tracer("app").start_as_current_span("reader"):
        by_seq = await found.get_message(1)
        last = await found.get_last_message_for_subject(f"{stream}.a")
    assert by_seq.data == last.data == b"one"
    writer, publish, reader, get_seq, get_last = await wait_spans(telemetry, 5)
    assert [s.name for s in (writer, publish, reader, get_seq, get_last)] == [
        "writer",
        f"publish {stream}.a",
        "reader",
        f"get {stream}",
        f"get {stream}",
    ]
    for get, extra in ((get_seq, {}), (get_last, {})):
        assert_child(get, reader)
        assert_links(get, publish)
        assert _without_conn(get.attributes) == {
            "messaging.system.name": "nats",
            "messaging.operation.type": "receive",
            "messaging.operation.name": "get",
            "messaging.destination.name": stream,
            "messaging.nats.jetstream.stream": stream,
            "messaging.nats.jetstream.sequence": 1,
            "messaging.nats.jetstream.subject": f"{stream}.a",
            "messaging.message.body.size": 3,
            **extra,
        }


# --- key-value writes ------------------------------------------------------------------------------


async def test_create_over_a_deleted_key_and_over_a_live_one(telemetry: Telemetry, js: Any) -> None:
    """``create`` retries over a delete marker (a publish, a get and another publish inside): one span;
    over a live key it raises ``KeyExistsError``, recorded on its span."""
    from nats.key_value.errors import KeyExistsError

    kv, bucket = await _bucket(js, telemetry)
    await kv.put("k", b"1")
    await kv.delete("k")
    rev = await kv.create("k", b"again")
    with pytest.raises(KeyExistsError):
        await kv.create("k", b"no")
    spans = await wait_spans(telemetry, 4)
    assert [(s.name, s.kind) for s in spans] == [
        (f"kv.put {bucket}", SpanKind.CLIENT),
        (f"kv.delete {bucket}", SpanKind.CLIENT),
        (f"kv.create {bucket}", SpanKind.CLIENT),
        (f"kv.create {bucket}", SpanKind.CLIENT),
    ]
    created, refused = spans[2:]
    assert (created.status.status_code, created.attributes["messaging.nats.kv.revision"]) == (StatusCode.UNSET, rev)
    assert (refused.status.status_code, refused.attributes["error.type"]) == (StatusCode.ERROR, "KeyExistsError")
    assert "messaging.nats.kv.revision" not in refused.attributes
    stored = await js.get_message(f"KV_{bucket}", rev)  # the value written carries its span's context
    assert [v.split("-")[2] for v in stored.headers.get_all("traceparent")] == [format(created.context.span_id, "016x")]


# --- key-value iterators ---------------------------------------------------------------------------


async def test_history_entries_are_receive_spans_linked_to_their_writers(telemetry: Telemetry, js: Any) -> None:
    """nats-key-value's ``history()`` is an iterator: a ``receive {bucket}`` span per entry taken (nats-py's,
    which returns a list, makes one ``kv.history`` span)."""
    kv, bucket = await _bucket(js, telemetry)
    tracer = telemetry.tracer_provider.get_tracer("app")
    for value in (b"1", b"22"):
        with tracer.start_as_current_span(f"write {value.decode()}"):
            await kv.put("k", value)
    await kv.put("other", b"x")
    await kv.delete("k")
    history = await kv.history("k")
    with tracer.start_as_current_span("reader"):
        entries = [entry async for entry in history]
    assert [(e.value, e.operation.value) for e in entries] == [(b"1", "PUT"), (b"22", "PUT"), (b"", "DEL")]
    empty = await kv.history("nothing")
    assert [e async for e in empty] == []
    spans = await wait_spans(telemetry, 10)
    assert [(s.name, s.kind) for s in spans] == [
        ("write 1", SpanKind.INTERNAL),
        (f"kv.put {bucket}", SpanKind.CLIENT),
        ("write 22", SpanKind.INTERNAL),
        (f"kv.put {bucket}", SpanKind.CLIENT),
        (f"kv.put {bucket}", SpanKind.CLIENT),
        (f"kv.delete {bucket}", SpanKind.CLIENT),
        ("reader", SpanKind.INTERNAL),
        (f"receive {bucket}", SpanKind.CLIENT),
        (f"receive {bucket}", SpanKind.CLIENT),
        (f"receive {bucket}", SpanKind.CLIENT),
    ]  # no span for history() itself, nor for the empty history
    put1, put2, delete, reader = spans[1], spans[3], spans[5], spans[6]
    for recv, writer, entry in zip(spans[7:], (put1, put2, delete), entries, strict=True):
        assert_child(recv, reader)
        assert_links(recv, writer)
        extra = {"messaging.nats.kv.operation": "DEL"} if entry.value == b"" else {}
        assert _without_conn(recv.attributes) == _recv_attrs(bucket, "k", entry.revision, len(entry.value), **extra)


async def test_updates_drop_the_initial_values_without_spans(telemetry: Telemetry, js: Any) -> None:
    """``updates()`` takes the initial values itself and never hands them over: no spans for them;
    ``values()`` hands them over: a span each."""
    kv, bucket = await _bucket(js, telemetry)
    await kv.put("a", b"1")
    await kv.put("b", b"2")
    watcher = await kv.watch_all()
    updates = watcher.updates()
    waiting = asyncio.ensure_future(updates.__anext__())
    await asyncio.sleep(0.3)  # the initial values are taken and dropped by now
    assert not waiting.done()
    rev = await kv.put("a", b"live")
    update = await asyncio.wait_for(waiting, 5)
    await updates.aclose()
    await watcher.stop()
    assert (update.key, update.value, update.revision) == ("a", b"live", rev)
    values_watcher = await kv.watch_all()
    values = [entry async for entry in values_watcher.values()]
    await values_watcher.stop()
    assert [(e.key, e.value) for e in values] == [("b", b"2"), ("a", b"live")]
    spans = await wait_spans(telemetry, 6)
    put, receive = f"kv.put {bucket}", f"receive {bucket}"
    # (the live entry's span starts when updates() asks for it: before the put)
    assert [s.name for s in spans] == [put, put, receive, put, receive, receive]
    _, put_b, live, put_live, value_b, value_a = spans
    assert_links(live, put_live)
    assert_links(value_b, put_b)
    assert_links(value_a, put_live)
    assert _without_conn(live.attributes) == _recv_attrs(bucket, "a", rev, 4)


@requires_server("2.10", why="a consumer with several filter subjects (watch_filtered with two keys)")
async def test_watch_filtered_on_several_keys(telemetry: Telemetry, js: Any) -> None:
    kv, bucket = await _bucket(js, telemetry)
    await kv.put("a", b"1")
    await kv.put("b", b"2")
    await kv.put("c", b"3")
    watcher = await kv.watch_filtered(["a", "c"])
    entries = [await asyncio.wait_for(watcher.__anext__(), 5) for _ in range(2)]
    await watcher.stop()
    assert [e.key for e in entries] == ["a", "c"]
    spans = await wait_spans(telemetry, 5)
    assert [s.name for s in spans] == [f"kv.put {bucket}"] * 3 + [f"receive {bucket}"] * 2
    assert_links(spans[3], spans[0])
    assert_links(spans[4], spans[2])


async def test_purge_deletes_makes_no_spans(telemetry: Telemetry, js: Any) -> None:
    from datetime import timedelta

    kv, bucket = await _bucket(js, telemetry)
    await kv.put("a", b"1")
    await kv.delete("a")
    await kv.put("b", b"2")
    await kv.purge_deletes(older_than=timedelta(seconds=-1))
    await asyncio.sleep(0.05)
    spans = await wait_spans(telemetry, 3)
    assert [s.name for s in spans] == [f"kv.put {bucket}", f"kv.delete {bucket}", f"kv.put {bucket}"]


async def test_a_failing_watcher_step_records_nothing(telemetry: Telemetry, js: Any) -> None:
    """An iterator step that raises (a stopped watcher, an ended history) makes no span."""
    kv, bucket = await _bucket(js, telemetry)
    await kv.put("k", b"v")
    history = await kv.history("k")
    assert [e.value async for e in history] == [b"v"]
    with pytest.raises(StopAsyncIteration):
        await history.__anext__()
    spans = await wait_spans(telemetry, 2)
    assert [s.name for s in spans] == [f"kv.put {bucket}", f"receive {bucket}"]
