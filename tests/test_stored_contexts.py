"""Stored contexts are links: a value read back from storage (key-value ``get``, ``history`` and
watchers, object-store ``get``, ``get_msg``) links to its writer's span and is never parented on it.

Each test writes in one trace and reads in another (a ``reader`` span, or no span at all), on two
connections, and pins names, kinds, parents, links and attribute dicts.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import nats.errors
import nats.js.errors
import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, StatusCode

from tests.helpers import assert_child, assert_links, by_name, conn_attrs, wait_spans
from tests.natsserver import NatsServer
from tests.test_message_age import ages, assert_waited, by_stream
from tests.test_metrics import base, metrics, points
from tests.trace_topology import disabled_headers, requires_msg_trace, traceparent


def _name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def _tracer(telemetry: Any) -> Any:
    return telemetry.tracer_provider.get_tracer(__name__)


def _kv_attrs(nc: Any, op: str, bucket: str, key: str, **extra: Any) -> dict[str, Any]:
    return {
        "messaging.system.name": "nats",
        "messaging.operation.name": op,
        "messaging.destination.name": bucket,
        "messaging.nats.kv.bucket": bucket,
        "messaging.nats.kv.key": key,
        **extra,
        **conn_attrs(nc),
    }


async def _entry(watcher: Any) -> Any:
    """The next entry a key-value watcher hands over by ``updates()``, past "no more values" markers.

    Where the marker comes is nats-py's timing: its watcher can signal "no more values" before values
    still in flight (https://github.com/nats-io/nats.py/issues/842), so tests do not pin it."""
    while (update := await watcher.updates(timeout=5)) is None:
        pass
    return update


async def _iterated(watcher: Any) -> Any:
    """The next entry ``async for`` hands over, past markers (nats-py 2.9 ends the loop at one)."""
    while True:
        async for update in watcher:
            if update is not None:
                return update


async def _retried(read: Any) -> tuple[Any, int]:
    """``await read()``, again after nats-py's spurious ``NoKeysError`` (its watcher's early "no more
    values" marker, above); the result and how many attempts failed."""
    for failed in range(10):
        try:
            return await read(), failed
        except nats.js.errors.NoKeysError:
            continue
    raise AssertionError("NoKeysError ten times")


def _error(span: Any, error_type: str) -> None:
    """``span`` records the exception as our spans do: ERROR status, ``error.type``, an exception event."""
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == error_type
    assert [(e.name, e.attributes["exception.type"].rsplit(".", 1)[-1]) for e in span.events] == [
        ("exception", error_type)
    ]


async def _kv(connect: Any, server: Any, telemetry: Any, **config: Any) -> tuple[Any, Any, Any, Any]:
    """A writer and a reader connection and a new bucket (its key-value on each); telemetry cleared."""
    writer, reader = await connect(server.url), await connect(server.url)
    bucket = _name("kv")
    kv_w = await writer.jetstream().create_key_value(bucket=bucket, history=10, **config)
    kv_r = await reader.jetstream().key_value(bucket)
    telemetry.clear()
    return writer, reader, kv_w, kv_r


# --- key-value get ---------------------------------------------------------------------------------


@pytest.mark.parametrize("direct", [False, True], ids=["stream-msg-get", "direct-get"])
async def test_kv_get_links_the_writer(telemetry: Any, js_server: Any, connect: Any, direct: bool) -> None:
    _, reader, kv_w, kv_r = await _kv(connect, js_server, telemetry, direct=direct)
    tracer = _tracer(telemetry)
    with tracer.start_as_current_span("writer"):
        rev = await kv_w.put("color", b"red")
    with tracer.start_as_current_span("reader"):
        entry = await kv_r.get("color")
    assert (entry.value, entry.revision) == (b"red", rev)
    spans = await wait_spans(telemetry, 4)
    assert [(s.name, s.kind) for s in spans] == [
        ("writer", SpanKind.INTERNAL),
        (f"kv.put {kv_w._name}", SpanKind.CLIENT),
        ("reader", SpanKind.INTERNAL),
        (f"kv.get {kv_w._name}", SpanKind.CLIENT),
    ]
    writer_span, put, reader_span, get = spans
    assert_child(put, writer_span)
    assert_child(get, reader_span)  # in the reader's trace, not the writer's
    assert get.context.trace_id != put.context.trace_id
    assert_links(get, put)
    assert dict(get.attributes) == _kv_attrs(
        reader, "kv.get", kv_w._name, "color", **{"messaging.nats.kv.revision": rev}
    )
    assert get.status.status_code is StatusCode.UNSET


async def test_kv_get_outside_any_span_is_a_root(telemetry: Any, js_server: Any, connect: Any) -> None:
    _, _, kv_w, kv_r = await _kv(connect, js_server, telemetry)
    await kv_w.put("k", b"v")
    await kv_r.get("k")
    put, get = await wait_spans(telemetry, 2)
    assert (get.name, get.parent) == (f"kv.get {kv_w._name}", None)
    assert get.context.trace_id != put.context.trace_id
    assert_links(get, put)


async def test_kv_get_missing_deleted_and_purged_keys(telemetry: Any, js_server: Any, connect: Any) -> None:
    """The very exceptions nats-py raises without us; the span records the error and links to the
    deleting write (the delete marker is what was read)."""
    _, _, kv_w, kv_r = await _kv(connect, js_server, telemetry)
    await kv_w.put("deleted", b"1")
    await kv_w.delete("deleted")
    await kv_w.put("purged", b"1")
    await kv_w.purge("purged")

    async def outcomes() -> list[tuple[Any, ...]]:
        seen = []
        for key in ("missing", "deleted", "purged"):
            with pytest.raises(nats.js.errors.KeyNotFoundError) as caught:
                await kv_r.get(key)
            exc = caught.value
            entry = exc.entry
            seen.append((type(exc), str(exc), exc.op, entry and (entry.key, entry.value, entry.revision)))
        return seen

    instrumented = await outcomes()
    spans = await wait_spans(telemetry, 7)
    telemetry.uninstrument()
    assert await outcomes() == instrumented  # exactly as without the instrumentation
    assert [s.name for s in spans] == [
        f"kv.put {kv_w._name}",
        f"kv.delete {kv_w._name}",
        f"kv.put {kv_w._name}",
        f"kv.purge {kv_w._name}",
        *[f"kv.get {kv_w._name}"] * 3,
    ]
    _, delete, _, purge, missing, deleted, purged = spans
    assert [i[2] for i in instrumented] == [None, "DEL", "PURGE"]
    for span, key in ((missing, "missing"), (deleted, "deleted"), (purged, "purged")):
        assert span.parent is None
        _error(span, "KeyNotFoundError")
        assert dict(span.attributes) == {
            **_kv_attrs(kv_r._js._nc, "kv.get", kv_w._name, key),
            "error.type": "KeyNotFoundError",
        }
    assert_links(missing)
    assert_links(deleted, delete)
    assert_links(purged, purge)


# --- get_msg ---------------------------------------------------------------------------------------


async def _stream(connect: Any, server: Any, telemetry: Any) -> tuple[Any, Any, str]:
    writer, reader = await connect(server.url), await connect(server.url)
    stream = _name("S")
    await writer.jetstream().add_stream(name=stream, subjects=[f"{stream}.>"], allow_direct=True)
    telemetry.clear()
    return writer, reader, stream


@pytest.mark.parametrize("direct", [False, True], ids=["stream-msg-get", "direct-get"])
async def test_get_msg_span_links_the_publisher(telemetry: Any, js_server: Any, connect: Any, direct: bool) -> None:
    writer, reader, stream = await _stream(connect, js_server, telemetry)
    tracer = _tracer(telemetry)
    with tracer.start_as_current_span("writer"):
        await writer.jetstream().publish(f"{stream}.a", b"first")
        await writer.jetstream().publish(f"{stream}.b", b"second!")
    js = reader.jetstream()
    with tracer.start_as_current_span("reader"):
        by_seq = await js.get_msg(stream, seq=1, direct=direct)
        last = await js.get_last_msg(stream, f"{stream}.b", direct=direct)
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
        "messaging.system.name": "nats",
        "messaging.operation.type": "receive",
        "messaging.operation.name": "get",
        "messaging.destination.name": stream,
        "messaging.nats.jetstream.stream": stream,
        **conn_attrs(reader),
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
async def test_get_msg_not_found(telemetry: Any, js_server: Any, connect: Any, direct: bool) -> None:
    _, reader, stream = await _stream(connect, js_server, telemetry)
    with pytest.raises(nats.js.errors.NotFoundError) as caught:
        await reader.jetstream().get_msg(stream, seq=7, direct=direct)
    (get,) = await wait_spans(telemetry, 1)
    assert (get.name, get.kind, get.parent, get.links) == (f"get {stream}", SpanKind.CLIENT, None, ())
    _error(get, type(caught.value).__name__)
    assert dict(get.attributes) == {
        "messaging.system.name": "nats",
        "messaging.operation.type": "receive",
        "messaging.operation.name": "get",
        "messaging.destination.name": stream,
        "messaging.nats.jetstream.stream": stream,
        "messaging.nats.jetstream.sequence": 7,
        "error.type": type(caught.value).__name__,
        **conn_attrs(reader),
    }


async def test_get_msg_of_a_message_without_context(telemetry: Any, js_server: Any, connect: Any) -> None:
    writer, reader, stream = await _stream(connect, js_server, telemetry)
    with suppress_instrumentation():
        await writer.jetstream().publish(f"{stream}.a", b"x", headers={"X-App": "1"})
    msg = await reader.jetstream().get_msg(stream, seq=1)
    assert msg.headers == {"X-App": "1"}
    (get,) = await wait_spans(telemetry, 1)
    assert (get.name, get.parent, get.links) == (f"get {stream}", None, ())


# --- object store ----------------------------------------------------------------------------------


async def test_object_get_links_the_writer(telemetry: Any, js_server: Any, connect: Any) -> None:
    writer, reader = await connect(js_server.url), await connect(js_server.url)
    bucket = _name("obj")
    obs_w = await writer.jetstream().create_object_store(bucket=bucket)
    obs_r = await reader.jetstream().object_store(bucket)
    telemetry.clear()
    tracer = _tracer(telemetry)
    data = b"z" * (300 * 1024)  # three chunks
    with tracer.start_as_current_span("writer"):
        await obs_w.put("blob.bin", data)
    with tracer.start_as_current_span("reader"):
        result = await obs_r.get("blob.bin")
    assert result.data == data
    with pytest.raises(nats.js.errors.ObjectNotFoundError):
        await obs_r.get("missing.bin")
    spans = await wait_spans(telemetry, 5)
    assert [(s.name, s.kind) for s in spans] == [
        ("writer", SpanKind.INTERNAL),
        (f"object_store.put {bucket}", SpanKind.CLIENT),
        ("reader", SpanKind.INTERNAL),
        (f"object_store.get {bucket}", SpanKind.CLIENT),
        (f"object_store.get {bucket}", SpanKind.CLIENT),
    ]
    writer_span, put, reader_span, get, missing = spans
    assert_child(put, writer_span)
    assert_child(get, reader_span)
    assert_links(get, put)  # the object's meta message carries the put's context
    attrs = {
        "messaging.system.name": "nats",
        "messaging.operation.name": "object_store.get",
        "messaging.destination.name": bucket,
        "messaging.nats.object_store.bucket": bucket,
        **conn_attrs(reader),
    }
    assert dict(get.attributes) == {
        **attrs,
        "messaging.nats.object_store.name": "blob.bin",
        "messaging.nats.object_store.size": len(data),
        "messaging.nats.object_store.chunks": 3,
    }
    assert (missing.parent, missing.links) == (None, ())
    _error(missing, "ObjectNotFoundError")
    assert dict(missing.attributes) == {
        **attrs,
        "messaging.nats.object_store.name": "missing.bin",
        "error.type": "ObjectNotFoundError",
    }


async def test_object_watch_and_list_make_no_spans(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    bucket = _name("obj")
    obs = await nc.jetstream().create_object_store(bucket=bucket)
    await obs.put("a.txt", b"a")
    telemetry.clear()
    watcher = await obs.watch()
    info = await watcher.updates(timeout=5)
    assert info.name == "a.txt"
    await watcher.stop()
    assert [i.name for i in await obs.list()] == ["a.txt"]
    await obs.put("b.txt", b"b")
    spans = await wait_spans(telemetry, 1)
    assert [s.name for s in spans] == [f"object_store.put {bucket}"]


# --- key-value watchers and history ------------------------------------------------------------------


async def test_kv_watcher_updates_are_receive_spans_linked_to_their_writers(
    telemetry: Any, js_server: Any, connect: Any
) -> None:
    """Each entry the application takes gets a ``receive {bucket}`` span in the reader's context,
    linked to its writer; the watcher's own subscription makes no process spans."""
    _, reader, kv_w, kv_r = await _kv(connect, js_server, telemetry)
    bucket = kv_w._name
    tracer = _tracer(telemetry)
    with tracer.start_as_current_span("write a"):
        rev_a = await kv_w.put("a", b"1")
    watcher = await kv_r.watchall()  # sees a (the last value per key) and a "no more values" marker
    with tracer.start_as_current_span("write b"):
        rev_b = await kv_w.put("b", b"22")
    with tracer.start_as_current_span("delete a"):
        await kv_w.delete("a")
    with tracer.start_as_current_span("reader"):
        first = await _entry(watcher)
        second = await _entry(watcher)
    third = await _iterated(watcher)  # outside any span
    await watcher.stop()
    assert (first.key, first.revision, second.key, second.revision) == ("a", rev_a, "b", rev_b)
    assert (third.key, third.operation) == ("a", "DEL")
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
        (f"receive {bucket}", SpanKind.CLIENT),  # none for the marker(s)
        (f"receive {bucket}", SpanKind.CLIENT),
    ]
    _, put_a, _, put_b, _, delete_a, reader_span, recv_a, recv_b, recv_del = spans
    for recv, writer_span in ((recv_a, put_a), (recv_b, put_b)):
        assert_child(recv, reader_span)
        assert_links(recv, writer_span)
    assert recv_del.parent is None and recv_del.context.trace_id != delete_a.context.trace_id
    assert_links(recv_del, delete_a)
    receive = {
        "messaging.system.name": "nats",
        "messaging.operation.type": "receive",
        "messaging.operation.name": "receive",
        "messaging.destination.name": bucket,
        "messaging.nats.kv.bucket": bucket,
        **conn_attrs(reader),
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


async def test_kv_watcher_of_values_without_context(telemetry: Any, js_server: Any, connect: Any) -> None:
    _, _, kv_w, kv_r = await _kv(connect, js_server, telemetry)
    watcher = await kv_r.watch("k")
    assert await watcher.updates(timeout=5) is None
    with suppress_instrumentation():
        await kv_w.put("k", b"v")
    entry = await watcher.updates(timeout=5)
    await watcher.stop()
    assert entry.value == b"v"
    (recv,) = await wait_spans(telemetry, 1)
    assert (recv.name, recv.parent, recv.links) == (f"receive {kv_w._name}", None, ())


async def test_kv_history_links_every_entry(telemetry: Any, js_server: Any, connect: Any) -> None:
    _, reader, kv_w, kv_r = await _kv(connect, js_server, telemetry)
    bucket = kv_w._name
    tracer = _tracer(telemetry)
    for value in (b"1", b"2", b"3"):
        with tracer.start_as_current_span(f"write {value.decode()}"):
            await kv_w.put("k", value)
    await kv_w.put("other", b"x")
    with tracer.start_as_current_span("reader"):
        entries, failed = await _retried(lambda: kv_r.history("k"))
    assert [e.value for e in entries] == [b"1", b"2", b"3"]
    spans = await wait_spans(telemetry, 9 + failed)
    for spurious in spans[8 : 8 + failed]:  # nats-py's NoKeysError: an error span without links
        assert (spurious.name, spurious.attributes["error.type"], spurious.links) == (
            f"kv.history {bucket}",
            "NoKeysError",
            (),
        )
    del spans[8 : 8 + failed]
    assert [(s.name, s.kind) for s in spans] == [
        ("write 1", SpanKind.INTERNAL),
        (f"kv.put {bucket}", SpanKind.CLIENT),
        ("write 2", SpanKind.INTERNAL),
        (f"kv.put {bucket}", SpanKind.CLIENT),
        ("write 3", SpanKind.INTERNAL),
        (f"kv.put {bucket}", SpanKind.CLIENT),
        (f"kv.put {bucket}", SpanKind.CLIENT),
        ("reader", SpanKind.INTERNAL),
        (f"kv.history {bucket}", SpanKind.CLIENT),
    ]  # one span for the call: no receive or process span per entry
    puts = [s for s in spans if s.name == f"kv.put {bucket}"]
    history = spans[-1]
    assert_child(history, spans[-2])
    assert_links(history, *puts[:3])
    assert dict(history.attributes) == _kv_attrs(
        reader, "kv.history", bucket, "k", **{"messaging.batch.message_count": 3}
    )


async def test_kv_history_of_a_missing_key(telemetry: Any, js_server: Any, connect: Any) -> None:
    _, reader, kv_w, kv_r = await _kv(connect, js_server, telemetry)
    with pytest.raises(nats.js.errors.NoKeysError):
        await kv_r.history("nothing")
    (history,) = await wait_spans(telemetry, 1)
    assert (history.name, history.parent, history.links) == (f"kv.history {kv_w._name}", None, ())
    _error(history, "NoKeysError")
    assert dict(history.attributes) == {
        **_kv_attrs(reader, "kv.history", kv_w._name, "nothing"),
        "error.type": "NoKeysError",
    }


async def test_kv_keys_makes_no_spans(telemetry: Any, js_server: Any, connect: Any) -> None:
    _, _, kv_w, kv_r = await _kv(connect, js_server, telemetry)
    await kv_w.put("a", b"1")
    await kv_w.put("b", b"2")
    keys, _ = await _retried(kv_r.keys)
    assert sorted(keys) == ["a", "b"]
    await kv_w.put("c", b"3")
    spans = await wait_spans(telemetry, 3)
    assert [s.name for s in spans] == [f"kv.put {kv_w._name}"] * 3


async def test_kv_watcher_timeout_makes_no_span(telemetry: Any, js_server: Any, connect: Any) -> None:
    _, _, _, kv_r = await _kv(connect, js_server, telemetry)
    watcher = await kv_r.watchall()
    assert await watcher.updates(timeout=5) is None
    with pytest.raises(nats.errors.TimeoutError):
        await watcher.updates(timeout=0.05)
    await watcher.stop()
    assert telemetry.spans() == []


# --- servers that rename traceparent on stored copies ------------------------------------------------

TRACED_ACCOUNT = """
accounts {
  TRACED {
    jetstream: enabled
    users: [{user: traced, password: traced}]
    msg_trace { dest: "trace.events", sampling: 100 }
  }
}
"""


@pytest.fixture(scope="module")
def tracing_server() -> Iterator[NatsServer]:
    srv = NatsServer(jetstream=True, extra=TRACED_ACCOUNT).start()
    yield srv
    srv.cleanup()


@requires_msg_trace
async def test_stored_copies_with_trace_disabled_still_link(
    telemetry: Any, tracing_server: NatsServer, connect: Any
) -> None:
    """With account message tracing on, nats-server 2.11-2.12.11 store ``Xraceparent`` instead of
    ``traceparent`` (later ones add ``Nats-Trace-Dest: trace disabled``): readers link all the same."""
    nc = await connect(tracing_server.url, user="traced", password="traced")
    js = nc.jetstream()
    bucket = _name("kv")
    kv = await js.create_key_value(bucket=bucket, direct=True)
    telemetry.clear()
    await kv.put("k", b"v")
    watcher = await kv.watch("k")
    entry = await kv.get("k")
    raw = await js.get_last_msg(f"KV_{bucket}", f"$KV.{bucket}.k", direct=True)
    watched = await _entry(watcher)
    await watcher.stop()
    assert (entry.value, watched.value) == (b"v", b"v")
    spans = await wait_spans(telemetry, 4)
    assert [s.name for s in spans] == [
        f"kv.put {bucket}",
        f"kv.get {bucket}",
        f"get KV_{bucket}",
        f"receive {bucket}",
    ]
    put = spans[0]
    stored = {k: v for k, v in raw.headers.items() if not k.startswith("Nats-") or k == "Nats-Trace-Dest"}
    assert stored == disabled_headers(traceparent(put))  # the server really disabled the stored copy's trace
    for span in spans[1:]:
        assert span.parent is None
        assert_links(span, put)
    assert by_name(spans, f"receive {bucket}").kind is SpanKind.CLIENT


# --- metrics -------------------------------------------------------------------------------------


async def test_stored_reads_metrics(telemetry: Any, js_server: Any, connect: Any) -> None:
    """``get`` and ``kv.history`` record an operation duration; a watcher's receive also counts a
    consumed message and its bytes (a ``get`` is no consumer delivery, like ``kv.get``)."""
    _, reader, kv_w, kv_r = await _kv(connect, js_server, telemetry)
    bucket = kv_w._name
    await kv_w.put("k", b"abc")
    watcher = await kv_r.watch("k")
    assert (await _entry(watcher)).value == b"abc"
    await watcher.stop()
    _, failed = await _retried(lambda: kv_r.history("k"))
    await reader.jetstream().get_msg(f"KV_{bucket}", seq=1)
    got = metrics(telemetry)
    durations = {
        (a["messaging.operation.name"], a["messaging.destination.name"], a.get("error.type")): p.count
        for p in points(got["messaging.client.operation.duration"])
        for a in [p.attributes]
    }
    spurious = {("kv.history", bucket, "NoKeysError"): failed} if failed else {}  # see _retried
    assert durations == {
        ("kv.put", bucket, None): 1,
        ("receive", bucket, None): 1,
        ("kv.history", bucket, None): 1,
        ("get", f"KV_{bucket}", None): 1,
        **spurious,
    }
    receive = {**base(js_server, "receive", "receive"), "messaging.destination.name": bucket}
    assert [(dict(p.attributes), p.value) for p in points(got["messaging.client.consumed.messages"])] == [(receive, 1)]
    assert [(dict(p.attributes), p.value) for p in points(got["messaging.nats.client.received.bytes"])] == [
        (receive, 3)
    ]


async def test_kv_watcher_updates_record_their_age_when_taken(telemetry: Any, js_server: Any, connect: Any) -> None:
    """A watcher entry's message age ends when the application takes it (as ``next_msg``'s does), by
    stream only (an ordered consumer); ``get``, ``history`` and the watcher's own callback record none."""
    _, reader, kv_w, kv_r = await _kv(connect, js_server, telemetry)
    bucket = kv_w._name
    await kv_w.put("k", b"v")
    await asyncio.sleep(0.2)
    watcher = await kv_r.watch("k")
    await _retried(lambda: kv_r.history("k"))
    await kv_r.get("k")
    await reader.jetstream().get_msg(f"KV_{bucket}", seq=1)
    await asyncio.sleep(0.2)  # delivered to the watcher by now, not yet taken
    assert ages(telemetry) == []
    assert (await _entry(watcher)).value == b"v"
    await watcher.stop()
    (point,) = ages(telemetry)
    assert dict(point.attributes) == by_stream(f"KV_{bucket}")
    assert_waited(point, 1, 0.4)
