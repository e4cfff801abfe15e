"""Stored messages and key-value on each client family: a stored message read back (a get, a
key-value get, a watcher's entry) links to its writer's span and is never parented on it; the
key-value calls' spans and attributes.

Each test writes in one trace and reads in another (a ``reader`` span, or no span at all), on two
connections, and pins names, kinds, parents, links and attribute dicts.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, StatusCode

from tests.families import Family
from tests.families_js import Js, jetstream
from tests.helpers import Telemetry, assert_child, assert_links, wait_spans
from tests.matrix.expect import RECEIVE
from tests.matrix.test_jetstream_consume import ages, by_stream
from tests.matrix.test_lifecycle_metrics import base_metric, metrics, points
from tests.natsserver import NatsServer
from tests.trace_topology import TRACED_ACCOUNTS, disabled_headers, requires_msg_trace, traceparent

GET = {
    "messaging.system.name": "nats",
    "messaging.operation.type": "receive",
    "messaging.operation.name": "get",
}


def _name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def _tracer(telemetry: Telemetry) -> Any:
    return telemetry.tracer_provider.get_tracer(__name__)


def _kv_attrs(family: Family, conn: Any, op: str, bucket: str, key: str, **extra: Any) -> dict[str, Any]:
    return {
        "messaging.system.name": "nats",
        "messaging.operation.name": op,
        "messaging.destination.name": bucket,
        "messaging.nats.kv.bucket": bucket,
        "messaging.nats.kv.key": key,
        **extra,
        **family.conn_attrs(conn),
    }


def _error(span: Any, error_type: str) -> None:
    """``span`` records the exception as our spans do: ERROR status, ``error.type``, an exception event."""
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == error_type
    assert [(e.name, e.attributes["exception.type"].rsplit(".", 1)[-1]) for e in span.events] == [
        ("exception", error_type)
    ]


# --- stored-message gets ---------------------------------------------------------------------------


async def _stream(family: Family, server: NatsServer, telemetry: Telemetry) -> tuple[Any, Js, Any, Js, str]:
    """A writer and a reader connection (and their JetStream) and a new stream allowing direct gets."""
    writer, reader = await family.connect(server), await family.connect(server)
    w, r = jetstream(writer), jetstream(reader)
    stream = _name("S")
    await w.add_stream(stream, [f"{stream}.>"], allow_direct=True)
    telemetry.clear()
    return writer, w, reader, r, stream


@pytest.mark.parametrize("direct", [False, True], ids=["stream-msg-get", "direct-get"])
async def test_get_span_links_the_publisher(
    telemetry: Telemetry, js_server: NatsServer, family: Family, direct: bool
) -> None:
    _, w, reader, r, stream = await _stream(family, js_server, telemetry)
    tracer = _tracer(telemetry)
    with tracer.start_as_current_span("writer"):
        await w.publish(f"{stream}.a", b"first")
        await w.publish(f"{stream}.b", b"second!")
    with tracer.start_as_current_span("reader"):
        by_seq = await r.get(stream, seq=1, direct=direct)
        last = await r.get(stream, subject=f"{stream}.b", direct=direct)
    assert (by_seq.data, last.data) == (b"first", b"second!")
    spans = await wait_spans(telemetry, 6)
    assert [(s.name, s.kind) for s in spans] == [
        ("writer", SpanKind.INTERNAL),
        (f"publish {stream}.a", SpanKind.PRODUCER),
        (f"publish {stream}.b", SpanKind.PRODUCER),
        ("reader", SpanKind.INTERNAL),
        (f"get {stream}", SpanKind.CLIENT),
        (f"get {stream}", SpanKind.CLIENT),
    ]  # no request span for a direct get
    _, pub_a, pub_b, reader_span, get_seq, get_last = spans
    for get, pub in ((get_seq, pub_a), (get_last, pub_b)):
        assert_child(get, reader_span)
        assert_links(get, pub)
    common = {
        **GET,
        "messaging.destination.name": stream,
        "messaging.nats.jetstream.stream": stream,
        **family.conn_attrs(reader),
    }
    assert dict(get_seq.attributes) == {
        **common,
        "messaging.nats.jetstream.sequence": 1,
        "messaging.nats.jetstream.subject": f"{stream}.a",
        "messaging.message.body.size": 5,
    }
    assert dict(get_last.attributes) == {
        **common,
        "messaging.nats.jetstream.sequence": 2,
        "messaging.nats.jetstream.subject": f"{stream}.b",
        "messaging.message.body.size": 7,
    }


@pytest.mark.parametrize("direct", [False, True], ids=["stream-msg-get", "direct-get"])
async def test_get_not_found(telemetry: Telemetry, js_server: NatsServer, family: Family, direct: bool) -> None:
    _, _, reader, r, stream = await _stream(family, js_server, telemetry)
    with pytest.raises(Exception) as caught:
        await r.get(stream, seq=7, direct=direct)
    assert type(caught.value).__name__ == r.message_not_found
    (get,) = await wait_spans(telemetry, 1)
    assert (get.name, get.kind, get.parent, get.links) == (f"get {stream}", SpanKind.CLIENT, None, ())
    _error(get, r.message_not_found)
    assert dict(get.attributes) == {
        **GET,
        "messaging.destination.name": stream,
        "messaging.nats.jetstream.stream": stream,
        "messaging.nats.jetstream.sequence": 7,
        "error.type": r.message_not_found,
        **family.conn_attrs(reader),
    }


async def test_get_of_a_message_without_context(telemetry: Telemetry, js_server: NatsServer, family: Family) -> None:
    _, w, _, r, stream = await _stream(family, js_server, telemetry)
    with suppress_instrumentation():
        await w.publish(f"{stream}.a", b"x", headers={"X-App": "1"})
    msg = await r.get(stream, seq=1, direct=False)
    assert family.headers(msg) == {"X-App": "1"}
    (get,) = await wait_spans(telemetry, 1)
    assert (get.name, get.parent, get.links) == (f"get {stream}", None, ())


# --- key-value -------------------------------------------------------------------------------------


async def _kv(family: Family, server: NatsServer, telemetry: Telemetry, *, direct: bool = True) -> Any:
    """A writer and a reader connection (and their JetStream), a new bucket and its key-value on each;
    telemetry cleared."""
    writer, reader = await family.connect(server), await family.connect(server)
    w, r = jetstream(writer), jetstream(reader)
    bucket = _name("kv")
    kv_w = await w.kv_create(bucket, direct=direct)
    kv_r = await r.kv_open(bucket)
    telemetry.clear()
    return writer, reader, r, kv_w, kv_r, bucket


async def test_key_value_operations(telemetry: Telemetry, js_server: NatsServer, family: Family) -> None:
    _, reader, _, _, kv, bucket = await _kv(family, js_server, telemetry)
    rev1 = await kv.put("color", b"red")
    entry = await kv.get("color")
    rev2 = await kv.update("color", b"blue", rev1)
    rev3 = await kv.create("size", b"L")
    await kv.delete("size")
    await kv.purge("color")
    spans = await wait_spans(telemetry, 6)
    assert [s.name for s in spans] == [
        f"kv.put {bucket}",
        f"kv.get {bucket}",
        f"kv.update {bucket}",
        f"kv.create {bucket}",
        f"kv.delete {bucket}",
        f"kv.purge {bucket}",
    ]
    assert all((s.kind, s.parent) == (SpanKind.CLIENT, None) for s in spans)
    put, get, update, create, delete, purge = spans

    def attrs(span: Any, op: str, key: str, **extra: Any) -> None:
        assert dict(span.attributes) == _kv_attrs(family, reader, op, bucket, key, **extra), span.name

    attrs(put, "kv.put", "color", **{"messaging.message.body.size": 3, "messaging.nats.kv.revision": rev1})
    attrs(get, "kv.get", "color", **{"messaging.nats.kv.revision": entry.revision})
    attrs(update, "kv.update", "color", **{"messaging.message.body.size": 4, "messaging.nats.kv.revision": rev2})
    attrs(create, "kv.create", "size", **{"messaging.message.body.size": 1, "messaging.nats.kv.revision": rev3})
    attrs(delete, "kv.delete", "size")
    attrs(purge, "kv.purge", "color")
    assert entry.revision == rev1
    assert_links(get, put)


@pytest.mark.parametrize("direct", [False, True], ids=["stream-msg-get", "direct-get"])
async def test_kv_get_links_the_writer(
    telemetry: Telemetry, js_server: NatsServer, family: Family, direct: bool
) -> None:
    _, reader, _, kv_w, kv_r, bucket = await _kv(family, js_server, telemetry, direct=direct)
    tracer = _tracer(telemetry)
    with tracer.start_as_current_span("writer"):
        rev = await kv_w.put("color", b"red")
    with tracer.start_as_current_span("reader"):
        entry = await kv_r.get("color")
    assert (entry.value, entry.revision) == (b"red", rev)
    spans = await wait_spans(telemetry, 4)
    assert [(s.name, s.kind) for s in spans] == [
        ("writer", SpanKind.INTERNAL),
        (f"kv.put {bucket}", SpanKind.CLIENT),
        ("reader", SpanKind.INTERNAL),
        (f"kv.get {bucket}", SpanKind.CLIENT),
    ]  # the get underneath makes no span
    writer_span, put, reader_span, get = spans
    assert_child(put, writer_span)
    assert_child(get, reader_span)  # in the reader's trace, not the writer's
    assert get.context.trace_id != put.context.trace_id
    assert_links(get, put)
    assert dict(get.attributes) == _kv_attrs(
        family, reader, "kv.get", bucket, "color", **{"messaging.nats.kv.revision": rev}
    )
    assert get.status.status_code is StatusCode.UNSET


async def test_kv_get_of_missing_deleted_and_purged_keys(
    telemetry: Telemetry, js_server: NatsServer, family: Family
) -> None:
    """The exceptions the client raises; the span records the error and links to the deleting write
    (the delete marker is what was read)."""
    _, reader, _, kv_w, kv_r, bucket = await _kv(family, js_server, telemetry)
    await kv_w.put("deleted", b"1")
    await kv_w.delete("deleted")
    await kv_w.put("purged", b"1")
    await kv_w.purge("purged")

    async def outcomes() -> list[tuple[Any, ...]]:
        seen = []
        for key in ("missing", "deleted", "purged"):
            with pytest.raises(Exception) as caught:
                await kv_r.get(key)
            exc = caught.value
            seen.append((type(exc), str(exc), vars(exc)))
        return seen

    instrumented = await outcomes()
    spans = await wait_spans(telemetry, 7)
    telemetry.uninstrument()
    assert await outcomes() == instrumented  # exactly as without the instrumentation
    assert {t.__name__ for t, _, _ in instrumented} == {"KeyNotFoundError"}
    assert [s.name for s in spans] == [
        f"kv.put {bucket}",
        f"kv.delete {bucket}",
        f"kv.put {bucket}",
        f"kv.purge {bucket}",
        *[f"kv.get {bucket}"] * 3,
    ]
    _, delete, _, purge, missing, deleted, purged = spans
    for span, key in ((missing, "missing"), (deleted, "deleted"), (purged, "purged")):
        assert span.parent is None
        _error(span, "KeyNotFoundError")
        assert dict(span.attributes) == {
            **_kv_attrs(family, reader, "kv.get", bucket, key),
            "error.type": "KeyNotFoundError",
        }
    assert_links(missing)
    assert_links(deleted, delete)
    assert_links(purged, purge)


# --- key-value watchers ----------------------------------------------------------------------------


async def test_watcher_entries_are_receive_spans_linked_to_their_writers(
    telemetry: Telemetry, js_server: NatsServer, family: Family
) -> None:
    """Each entry the application takes gets a ``receive {bucket}`` span in the reader's context,
    linked to its writer; the watcher's own consumer makes no spans."""
    _, reader, r, kv_w, kv_r, bucket = await _kv(family, js_server, telemetry)
    tracer = _tracer(telemetry)
    with tracer.start_as_current_span("write a"):
        rev_a = await kv_w.put("a", b"1")
    watcher = await r.watch(kv_r)  # every key: sees a (its last value)
    with tracer.start_as_current_span("write b"):
        rev_b = await kv_w.put("b", b"22")
    with tracer.start_as_current_span("delete a"):
        await kv_w.delete("a")
    with tracer.start_as_current_span("reader"):
        first = await r.next_entry(watcher)
        second = await r.next_entry(watcher)
    third = await r.iterate_entry(watcher)  # outside any span
    await watcher.stop()
    assert (first.key, first.revision, second.key, second.revision) == ("a", rev_a, "b", rev_b)
    assert (third.key, getattr(third.operation, "value", third.operation)) == ("a", "DEL")
    spans = await wait_spans(telemetry, 10)
    assert [(s.name, s.kind) for s in spans] == [
        ("write a", SpanKind.INTERNAL),
        (f"kv.put {bucket}", SpanKind.CLIENT),
        ("write b", SpanKind.INTERNAL),
        (f"kv.put {bucket}", SpanKind.CLIENT),
        ("delete a", SpanKind.INTERNAL),
        (f"kv.delete {bucket}", SpanKind.CLIENT),
        ("reader", SpanKind.INTERNAL),
        (f"receive {bucket}", SpanKind.CLIENT),
        (f"receive {bucket}", SpanKind.CLIENT),  # (none for nats-py's markers)
        (f"receive {bucket}", SpanKind.CLIENT),
    ]
    _, put_a, _, put_b, _, delete_a, reader_span, recv_a, recv_b, recv_del = spans
    for recv, writer_span in ((recv_a, put_a), (recv_b, put_b)):
        assert_child(recv, reader_span)
        assert_links(recv, writer_span)
    assert recv_del.parent is None and recv_del.context.trace_id != delete_a.context.trace_id
    assert_links(recv_del, delete_a)
    receive = {
        **RECEIVE,
        "messaging.destination.name": bucket,
        "messaging.nats.kv.bucket": bucket,
        **family.conn_attrs(reader),
    }
    assert dict(recv_a.attributes) == {
        **receive,
        "messaging.message.body.size": 1,
        "messaging.nats.kv.key": "a",
        "messaging.nats.kv.revision": rev_a,
    }
    assert dict(recv_b.attributes) == {
        **receive,
        "messaging.message.body.size": 2,
        "messaging.nats.kv.key": "b",
        "messaging.nats.kv.revision": rev_b,
    }
    assert dict(recv_del.attributes) == {
        **receive,
        "messaging.message.body.size": 0,
        "messaging.nats.kv.key": "a",
        "messaging.nats.kv.revision": third.revision,
        "messaging.nats.kv.operation": "DEL",
    }


async def test_watcher_entry_without_context(telemetry: Telemetry, js_server: NatsServer, family: Family) -> None:
    _, _, r, kv_w, kv_r, bucket = await _kv(family, js_server, telemetry)
    watcher = await r.watch(kv_r, "k")
    with suppress_instrumentation():
        await kv_w.put("k", b"v")
    entry = await r.next_entry(watcher)
    await watcher.stop()
    assert entry.value == b"v"
    (recv,) = await wait_spans(telemetry, 1)
    assert (recv.name, recv.parent, recv.links) == (f"receive {bucket}", None, ())


async def test_keys_make_no_spans(telemetry: Telemetry, js_server: NatsServer, family: Family) -> None:
    _, _, r, kv_w, kv_r, bucket = await _kv(family, js_server, telemetry)
    await kv_w.put("a", b"1")
    await kv_w.put("b", b"2")
    assert sorted(await r.keys(kv_r)) == ["a", "b"]
    await kv_w.put("c", b"3")
    await asyncio.sleep(0.05)
    spans = await wait_spans(telemetry, 3)
    assert [s.name for s in spans] == [f"kv.put {bucket}"] * 3


# --- metrics --------------------------------------------------------------------------------------


async def test_stored_reads_metrics_and_the_watcher_entries_age(
    telemetry: Telemetry, js_server: NatsServer, family: Family
) -> None:
    """Key-value calls and stored-message gets record an operation duration; a watcher entry also counts
    a consumed message and its bytes, and its message age ends when the application takes it (by
    stream only: an ordered consumer's). A get is no consumer delivery: no count, no age."""
    _, reader, r, kv_w, kv_r, bucket = await _kv(family, js_server, telemetry)
    await kv_w.put("k", b"abc")
    await asyncio.sleep(0.2)
    watcher = await r.watch(kv_r, "k")
    await kv_r.get("k")
    await r.get(f"KV_{bucket}", seq=1, direct=False)
    await asyncio.sleep(0.2)  # delivered to the watcher's consumer by now, not yet taken
    assert ages(telemetry) == []
    assert (await r.next_entry(watcher)).value == b"abc"
    await watcher.stop()
    (point,) = ages(telemetry)
    assert dict(point.attributes) == by_stream(f"KV_{bucket}")
    assert point.count == 1 and point.min >= 0.4 and point.max < 5
    got = metrics(telemetry)
    durations = {
        (p.attributes["messaging.operation.name"], p.attributes["messaging.destination.name"]): p.count
        for p in points(got["messaging.client.operation.duration"])
    }
    assert durations == {
        ("kv.put", bucket): 1,
        ("kv.get", bucket): 1,
        ("get", f"KV_{bucket}"): 1,
        ("receive", bucket): 1,
    }
    receive = {**base_metric(reader, "receive", "receive"), "messaging.destination.name": bucket}
    assert [(dict(p.attributes), p.value) for p in points(got["messaging.client.consumed.messages"])] == [(receive, 1)]
    assert [(dict(p.attributes), p.value) for p in points(got["messaging.nats.client.received.bytes"])] == [
        (receive, 3)
    ]


# --- servers that rename traceparent on stored copies ------------------------------------------------


@pytest.fixture(scope="module")
def tracing_server() -> Iterator[NatsServer]:
    srv = NatsServer(jetstream=True, extra=TRACED_ACCOUNTS).start()
    yield srv
    srv.cleanup()


@requires_msg_trace
async def test_stored_copies_with_trace_disabled_still_link(
    telemetry: Telemetry, tracing_server: NatsServer, family: Family
) -> None:
    """With account message tracing on, nats-server 2.11-2.12.11 store ``Xraceparent`` instead of
    ``traceparent`` (later ones add ``Nats-Trace-Dest: trace disabled``): readers link all the same."""
    conn = await family.connect(tracing_server, user="traced", password="traced")
    js = jetstream(conn)
    bucket = _name("kv")
    kv = await js.kv_create(bucket, direct=True)
    telemetry.clear()
    await kv.put("k", b"v")
    watcher = await js.watch(kv, "k")
    entry = await kv.get("k")
    raw = await js.get(f"KV_{bucket}", subject=f"$KV.{bucket}.k", direct=True)
    watched = await js.next_entry(watcher)
    await watcher.stop()
    assert (entry.value, watched.value) == (b"v", b"v")
    spans = await wait_spans(telemetry, 4)
    assert [(s.name, s.kind) for s in spans] == [
        (f"kv.put {bucket}", SpanKind.CLIENT),
        (f"kv.get {bucket}", SpanKind.CLIENT),
        (f"get KV_{bucket}", SpanKind.CLIENT),
        (f"receive {bucket}", SpanKind.CLIENT),
    ]
    put = spans[0]
    stored = {k: v for k, v in family.headers(raw).items() if not k.startswith("Nats-") or k == "Nats-Trace-Dest"}
    assert stored == disabled_headers(traceparent(put))  # the server really disabled the stored copy's trace
    for span in spans[1:]:
        assert span.parent is None
        assert_links(span, put)
