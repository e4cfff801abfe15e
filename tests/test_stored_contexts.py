"""Stored contexts are links, through what only nats-py has: a value read back from storage (key-value
``history``, object-store ``get``) links to its writer's span and is never parented on it; a
watcher's ``updates()`` timeout; ``kv.history``'s metrics. What a stored-message get, a key-value get
and a watcher's entries do (spans, metrics, message age) on both client families is in
tests/matrix/test_stored_reads.py.

Each test writes in one trace and reads in another (a ``reader`` span, or no span at all), on two
connections, and pins names, kinds, parents, links and attribute dicts.
"""

from __future__ import annotations

import uuid
from typing import Any

import nats.errors
import nats.js.errors
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from tests.helpers import assert_child, assert_links, conn_attrs, wait_spans
from tests.test_message_age import ages
from tests.test_metrics import metrics, points


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


async def _retried(read: Any) -> tuple[Any, int]:
    """``await read()``, again after nats-py's spurious ``NoKeysError``: its watcher can signal "no more
    values" before values still in flight (https://github.com/nats-io/nats.py/issues/842); the result
    and how many attempts failed."""
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


async def test_kv_watcher_timeout_makes_no_span(telemetry: Any, js_server: Any, connect: Any) -> None:
    _, _, _, kv_r = await _kv(connect, js_server, telemetry)
    watcher = await kv_r.watchall()
    assert await watcher.updates(timeout=5) is None
    with pytest.raises(nats.errors.TimeoutError):
        await watcher.updates(timeout=0.05)
    await watcher.stop()
    assert telemetry.spans() == []


# --- metrics -------------------------------------------------------------------------------------


async def test_kv_history_metrics(telemetry: Any, js_server: Any, connect: Any) -> None:
    """``kv.history`` records an operation duration and, no consumer delivery, no consumed message and
    no age (a watcher's entries and gets, on each family: tests/matrix/test_stored_reads.py)."""
    _, _, kv_w, kv_r = await _kv(connect, js_server, telemetry)
    bucket = kv_w._name
    await kv_w.put("k", b"abc")
    _, failed = await _retried(lambda: kv_r.history("k"))
    got = metrics(telemetry)
    durations = {
        (a["messaging.operation.name"], a["messaging.destination.name"], a.get("error.type")): p.count
        for p in points(got["messaging.client.operation.duration"])
        for a in [p.attributes]
    }
    spurious = {("kv.history", bucket, "NoKeysError"): failed} if failed else {}  # see _retried
    assert durations == {("kv.put", bucket, None): 1, ("kv.history", bucket, None): 1, **spurious}
    assert "messaging.client.consumed.messages" not in got
    assert ages(telemetry) == []
