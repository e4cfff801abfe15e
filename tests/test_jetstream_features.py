"""JetStream message features a publish asks for in its headers: per-message TTL (nats-server 2.11),
atomic batches, counters and schedules (2.12; batch end without a stored message, interval and cron
schedules: 2.14). Whichever nats-py call sends them, the send span records them as sent
(``messaging.nats.jetstream.*``) and what the PubAck says; older servers refuse them (the span
records the error the caller gets) or, before 2.11, store the message as a plain one."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import importlib.metadata
import inspect
import json
import uuid
from typing import Any

import nats.js.api
import nats.js.errors
import pytest
from nats.js.client import JetStreamContext
from opentelemetry.trace import SpanKind, StatusCode

from opentelemetry.instrumentation.nats.attributes import feature_header_attributes
from opentelemetry.instrumentation.nats.propagation import traceparent
from tests.helpers import conn_attrs, stored_headers, wait_spans
from tests.natsserver import requires_server

NATS_PY = importlib.metadata.version("nats-py")
# nats-py 2.16: PubAck.batch_id / batch_size (an atomic batch's commit) and val (a counter's value)
PUBACK_216 = {"batch_id", "batch_size", "val"} <= {f.name for f in dataclasses.fields(nats.js.api.PubAck)}
needs_msg_ttl = pytest.mark.skipif(
    "msg_ttl" not in inspect.signature(JetStreamContext.publish).parameters,
    reason=f"nats-py {NATS_PY} has no msg_ttl= (nats-py 2.16)",
)


async def _stream(nc: Any, prefix: str, **config: Any) -> str:
    """A memory stream ``{prefix}_<random>`` on ``{name}.>`` with ``config``, created through the
    JetStream API directly (any nats-py release: older ones lack the new configuration fields)."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    body = {"name": name, "subjects": [f"{name}.>"], "storage": "memory", **config}
    reply = await nc.request(f"$JS.API.STREAM.CREATE.{name}", json.dumps(body).encode(), timeout=5)
    response = json.loads(reply.data)
    assert "error" not in response, response
    return name


def _sent(nc: Any, subject: str, size: int, operation: str = "publish", **more: Any) -> dict[str, Any]:
    """The attributes of a send span of ``nc`` to ``subject`` (plus ``more``)."""
    return {
        "messaging.system.name": "nats",
        "messaging.operation.type": "send",
        "messaging.operation.name": operation,
        "messaging.destination.name": subject,
        "messaging.message.body.size": size,
        **conn_attrs(nc),
        **more,
    }


def _js_sent(nc: Any, subject: str, size: int, stream: str, seq: int | None, **more: Any) -> dict[str, Any]:
    """The attributes of a JetStream publish span (``seq``: the PubAck's; ``None``: no PubAck)."""
    attrs = _sent(nc, subject, size, **{"messaging.nats.jetstream.subject": subject}, **more)
    if seq is not None:
        attrs["messaging.nats.jetstream.stream"] = stream
        attrs["messaging.nats.jetstream.sequence"] = seq
        attrs["messaging.nats.jetstream.duplicate"] = False
    return attrs


def _refused(exc: Any, err_code: int) -> dict[str, Any]:
    assert isinstance(exc, nats.js.errors.BadRequestError) and exc.err_code == err_code, exc
    return {"error.type": "BadRequestError"}


# --- per-message TTL -------------------------------------------------------------------------------


@requires_server("2.11", why="per-message TTL (allow_msg_ttl)")
async def test_ttl_from_raw_headers(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js = nc.jetstream()
    stream = await _stream(nc, "TTL", allow_msg_ttl=True)
    telemetry.clear()
    ack = await js.publish(f"{stream}.a", b"one", headers={"Nats-TTL": "1h"})
    future = await js.publish_async(f"{stream}.b", b"two", headers={"Nats-TTL": " never "})
    await nc.publish(f"{stream}.c", b"three", headers={"Nats-TTL": "90"})
    await nc.flush()
    assert ((await future).seq, ack.seq) == (2, 1)
    sync, pub_async, core = await wait_spans(telemetry, 3)
    assert [s.name for s in (sync, pub_async, core)] == [f"publish {stream}.{x}" for x in "abc"]
    ttl = "messaging.nats.jetstream.message_ttl"
    assert dict(sync.attributes) == _js_sent(nc, f"{stream}.a", 3, stream, 1, **{ttl: "1h"})
    assert dict(pub_async.attributes) == _js_sent(nc, f"{stream}.b", 3, stream, 2, **{ttl: "never"})
    assert dict(core.attributes) == _sent(nc, f"{stream}.c", 5, **{ttl: "90"})
    assert (await stored_headers(nc, stream, seq=3))["Nats-TTL"] == "90"


@needs_msg_ttl
@requires_server("2.11", why="per-message TTL (allow_msg_ttl)")
async def test_ttl_from_msg_ttl(telemetry: Any, js_server: Any, connect: Any) -> None:
    """``msg_ttl=`` (nats-py 2.16): the span records the Nats-TTL nats-py sends (whole seconds)."""
    nc = await connect(js_server.url)
    js = nc.jetstream()
    stream = await _stream(nc, "TTL", allow_msg_ttl=True)
    telemetry.clear()
    await js.publish(f"{stream}.a", b"one", msg_ttl=30)
    await (await js.publish_async(f"{stream}.b", b"two", headers={"Nats-Msg-Id": "m-1"}, msg_ttl=2.5))
    sync, pub_async = await wait_spans(telemetry, 2)
    ttl = "messaging.nats.jetstream.message_ttl"
    assert dict(sync.attributes) == _js_sent(nc, f"{stream}.a", 3, stream, 1, **{ttl: "30"})
    assert dict(pub_async.attributes) == _js_sent(
        nc, f"{stream}.b", 3, stream, 2, **{ttl: "2", "messaging.message.id": "m-1"}
    )
    assert [(await stored_headers(nc, stream, seq=seq))["Nats-TTL"] for seq in (1, 2)] == ["30", "2"]

    bucket = f"B{uuid.uuid4().hex[:8]}"
    kv = await js.create_key_value(bucket=bucket)  # (nats-py turns allow_msg_ttl on)
    telemetry.clear()
    revision = await kv.create("session", b"token", msg_ttl=60)
    await kv.purge("session", msg_ttl=120)  # (its marker's TTL)
    create, purge = await wait_spans(telemetry, 2)
    assert (create.name, create.kind) == (f"kv.create {bucket}", SpanKind.CLIENT)
    assert dict(create.attributes) == {
        "messaging.system.name": "nats",
        "messaging.operation.name": "kv.create",
        "messaging.destination.name": bucket,
        "messaging.message.body.size": 5,
        "messaging.nats.kv.bucket": bucket,
        "messaging.nats.kv.key": "session",
        "messaging.nats.kv.revision": revision,
        ttl: "60",
        **conn_attrs(nc),
    }
    assert (purge.name, purge.attributes[ttl]) == (f"kv.purge {bucket}", "120")


@requires_server("2.12", why="counters (allow_msg_counter), per-message TTL")
async def test_features_with_hooks(make_telemetry: Any, js_server: Any, connect: Any) -> None:
    """With hooks the operation's span is the current one while nats-py sends (the other path)."""
    hooked: list[str] = []
    telemetry = make_telemetry(publish_hook=lambda span, *args: hooked.append(span.name))
    nc = await connect(js_server.url)
    js = nc.jetstream()
    counter, ttl = await _stream(nc, "CNT", allow_msg_counter=True), await _stream(nc, "TTL", allow_msg_ttl=True)
    telemetry.clear()
    await js.publish(f"{counter}.hits", b"", headers={"Nats-Incr": "+2"})
    await nc.request(f"{ttl}.a", b"x", headers={"Nats-TTL": "10"}, timeout=5)
    incr, request = await wait_spans(telemetry, 2)
    assert hooked == [incr.name]
    puback = {"messaging.nats.jetstream.counter_value": "2"} if PUBACK_216 else {}
    assert dict(incr.attributes) == _js_sent(
        nc, f"{counter}.hits", 0, counter, 1, **{"messaging.nats.jetstream.counter_increment": "+2"}, **puback
    )
    assert request.attributes["messaging.nats.jetstream.message_ttl"] == "10"


@requires_server("2.11", why="per-message TTL: refused by a stream without allow_msg_ttl")
async def test_ttl_refused_by_the_stream(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js = nc.jetstream()
    stream = await _stream(nc, "NOTTL")
    telemetry.clear()
    with pytest.raises(nats.js.errors.BadRequestError) as raised:
        await js.publish(f"{stream}.a", b"one", headers={"Nats-TTL": "1h"})
    (span,) = await wait_spans(telemetry, 1)
    assert span.status.status_code == StatusCode.ERROR
    assert dict(span.attributes) == _js_sent(
        nc,
        f"{stream}.a",
        3,
        stream,
        None,
        **{"messaging.nats.jetstream.message_ttl": "1h"},
        **_refused(raised.value, 10166),
    )


# --- atomic batches --------------------------------------------------------------------------------


@requires_server("2.12", why="atomic batch publish (allow_atomic)")
async def test_atomic_batch(telemetry: Any, js_server: Any, connect: Any) -> None:
    """A batch as nats-py can send it: its first message a request (the server answers it with an
    empty message, which JetStreamContext.publish cannot read), the next ones plain publishes, the
    commit a JetStream publish whose PubAck gives the batch's size."""
    nc = await connect(js_server.url)
    js = nc.jetstream()
    stream = await _stream(nc, "ATOM", allow_atomic=True)
    subject, batch = f"{stream}.orders", f"batch-{uuid.uuid4().hex}"
    telemetry.clear()
    first = await nc.request(subject, b"1", headers={"Nats-Batch-Id": batch, "Nats-Batch-Sequence": "1"}, timeout=5)
    await nc.publish(subject, b"22", headers={"Nats-Batch-Id": batch, "Nats-Batch-Sequence": "2"})
    ack = await js.publish(
        subject, b"333", headers={"Nats-Batch-Id": batch, "Nats-Batch-Sequence": "3", "Nats-Batch-Commit": "1"}
    )
    assert (first.data, ack.seq) == (b"", 3)
    request, middle, commit = await wait_spans(telemetry, 3)
    assert [(s.name, s.kind) for s in (request, middle, commit)] == [
        (f"request {subject}", SpanKind.CLIENT),
        (f"publish {subject}", SpanKind.PRODUCER),
        (f"publish {subject}", SpanKind.PRODUCER),
    ]
    batch_id, sequence = "messaging.nats.jetstream.batch_id", "messaging.nats.jetstream.batch_sequence"
    assert dict(request.attributes) == _sent(
        nc, subject, 1, "request", **{batch_id: batch, sequence: 1, "messaging.nats.response.body.size": 0}
    )
    assert dict(middle.attributes) == _sent(nc, subject, 2, **{batch_id: batch, sequence: 2})
    puback = {"messaging.batch.message_count": 3} if PUBACK_216 else {}
    assert dict(commit.attributes) == _js_sent(
        nc,
        subject,
        3,
        stream,
        3,
        **{batch_id: batch, sequence: 3, "messaging.nats.jetstream.batch_commit": "1"},
        **puback,
    )


@requires_server("2.14", why="atomic batch committed without storing its last message (Nats-Batch-Commit: eob)")
async def test_atomic_batch_end_of_batch(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js = nc.jetstream()
    stream = await _stream(nc, "ATOM", allow_atomic=True)
    subject, batch = f"{stream}.orders", f"batch-{uuid.uuid4().hex}"
    await nc.request(subject, b"1", headers={"Nats-Batch-Id": batch, "Nats-Batch-Sequence": "1"}, timeout=5)
    telemetry.clear()
    ack = await js.publish(
        subject, b"", headers={"Nats-Batch-Id": batch, "Nats-Batch-Sequence": "2", "Nats-Batch-Commit": "eob"}
    )
    assert ack.seq == 1
    (commit,) = await wait_spans(telemetry, 1)
    puback = {"messaging.batch.message_count": 1} if PUBACK_216 else {}
    assert dict(commit.attributes) == _js_sent(
        nc,
        subject,
        0,
        stream,
        1,
        **{
            "messaging.nats.jetstream.batch_id": batch,
            "messaging.nats.jetstream.batch_sequence": 2,
            "messaging.nats.jetstream.batch_commit": "eob",
        },
        **puback,
    )


@requires_server("2.12", why="atomic batch publish: refused by a stream without allow_atomic")
async def test_atomic_batch_refused_by_the_stream(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js = nc.jetstream()
    stream = await _stream(nc, "NOATOM")
    telemetry.clear()
    headers = {"Nats-Batch-Id": "b-1", "Nats-Batch-Sequence": "1", "Nats-Batch-Commit": "1"}
    with pytest.raises(nats.js.errors.BadRequestError) as raised:
        await js.publish(f"{stream}.a", b"x", headers=headers)
    (span,) = await wait_spans(telemetry, 1)
    batch = {
        "messaging.nats.jetstream.batch_id": "b-1",
        "messaging.nats.jetstream.batch_sequence": 1,
        "messaging.nats.jetstream.batch_commit": "1",
    }
    assert dict(span.attributes) == _js_sent(
        nc, f"{stream}.a", 1, stream, None, **batch, **_refused(raised.value, 10174)
    )


@requires_server("2.12", why="atomic batch publish (allow_atomic)")
async def test_batch_message_before_the_commit_through_jetstream_publish(
    telemetry: Any, js_server: Any, connect: Any
) -> None:
    """The server answers a batch's first message with an empty message (and the next ones too, when
    they ask): JetStreamContext.publish fails on it (not JSON), publish_async's future never settles.
    The spans end as the calls do: with the JSONDecodeError, and at the JetStream context's timeout."""
    nc = await connect(js_server.url)
    js = nc.jetstream(timeout=0.5)
    stream = await _stream(nc, "ATOM", allow_atomic=True)
    telemetry.clear()
    with pytest.raises(json.JSONDecodeError):
        await js.publish(f"{stream}.a", b"1", headers={"Nats-Batch-Id": "b-1", "Nats-Batch-Sequence": "1"})
    future = await js.publish_async(f"{stream}.b", b"1", headers={"Nats-Batch-Id": "b-2", "Nats-Batch-Sequence": "1"})
    sync, pub_async = await wait_spans(telemetry, 2, timeout=5)
    assert not future.done()
    future.cancel()
    for span, subject, batch in ((sync, f"{stream}.a", "b-1"), (pub_async, f"{stream}.b", "b-2")):
        assert dict(span.attributes) == _js_sent(
            nc,
            subject,
            1,
            stream,
            None,
            **{"messaging.nats.jetstream.batch_id": batch, "messaging.nats.jetstream.batch_sequence": 1},
            **{"error.type": "JSONDecodeError" if span is sync else "TimeoutError"},
        )


# --- counters ----------------------------------------------------------------------------------


@requires_server("2.12", why="counters (allow_msg_counter)")
async def test_counter(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js = nc.jetstream()
    stream = await _stream(nc, "CNT", allow_msg_counter=True)
    subject = f"{stream}.hits"
    telemetry.clear()
    await js.publish(subject, b"", headers={"Nats-Incr": "+5"})
    await (await js.publish_async(subject, b"", headers={"Nats-Incr": "-2"}))
    big = await js.publish(subject, b"", headers={"Nats-Incr": "+9223372036854775807"})  # past int64 after it
    if PUBACK_216:
        assert big.val == "9223372036854775810"
    spans = await wait_spans(telemetry, 3)
    incr, value = "messaging.nats.jetstream.counter_increment", "messaging.nats.jetstream.counter_value"
    for seq, (span, delta, total) in enumerate(
        zip(spans, ("+5", "-2", "+9223372036854775807"), ("5", "3", "9223372036854775810"), strict=True), 1
    ):
        puback = {value: total} if PUBACK_216 else {}
        assert dict(span.attributes) == _js_sent(nc, subject, 0, stream, seq, **{incr: delta}, **puback)


@requires_server("2.12", why="counters: refused by a stream without allow_msg_counter")
async def test_counter_refused_by_the_stream(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js = nc.jetstream()
    stream = await _stream(nc, "NOCNT")
    telemetry.clear()
    with pytest.raises(nats.js.errors.BadRequestError) as raised:
        await js.publish(f"{stream}.hits", b"", headers={"Nats-Incr": "+1"})
    (span,) = await wait_spans(telemetry, 1)
    assert dict(span.attributes) == _js_sent(
        nc,
        f"{stream}.hits",
        0,
        stream,
        None,
        **{"messaging.nats.jetstream.counter_increment": "+1"},
        **_refused(raised.value, 10168),
    )


# --- schedules ---------------------------------------------------------------------------------


@requires_server("2.12", why="message schedules (allow_msg_schedules)")
async def test_delayed_message(telemetry: Any, js_server: Any, connect: Any) -> None:
    """A schedule's message reaches its target with the schedule message's headers, our traceparent
    among them: whoever consumes it continues the trace of the publish that scheduled it."""
    nc = await connect(js_server.url)
    js = nc.jetstream()
    stream = await _stream(nc, "SCH", allow_msg_schedules=True)
    subject, target = f"{stream}.schedules.once", f"{stream}.orders"
    at = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    telemetry.clear()
    await js.publish(subject, b"later", headers={"Nats-Schedule": f"@at {at}", "Nats-Schedule-Target": target})
    (span,) = await wait_spans(telemetry, 1)
    assert dict(span.attributes) == _js_sent(
        nc,
        subject,
        5,
        stream,
        1,
        **{"messaging.nats.jetstream.schedule": f"@at {at}", "messaging.nats.jetstream.schedule_target": target},
    )
    for _ in range(100):
        reply = await nc.request(f"$JS.API.STREAM.MSG.GET.{stream}", json.dumps({"last_by_subj": target}).encode())
        if "message" in json.loads(reply.data):
            break
        await asyncio.sleep(0.05)
    produced = await stored_headers(nc, stream, last_by_subj=target)
    assert (produced["Nats-Scheduler"], produced["traceparent"]) == (subject, traceparent(span.get_span_context()))


@requires_server("2.14", why="interval and cron schedules, schedule time zones (allow_msg_schedules)")
async def test_cron_schedule(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js = nc.jetstream()
    stream = await _stream(nc, "SCH", allow_msg_schedules=True, allow_msg_ttl=True, allow_rollup_hdrs=True)
    subject = f"{stream}.schedules.sample"
    headers = {
        "Nats-Schedule": "0 0 5 * * *",
        "Nats-Schedule-Time-Zone": "UTC",
        "Nats-Schedule-Target": f"{stream}.sampled",
        "Nats-Schedule-Source": f"{stream}.sensor",
        "Nats-Schedule-TTL": "5m",
        "Nats-Schedule-Rollup": "sub",
    }
    telemetry.clear()
    await js.publish(subject, b"", headers=headers)
    await (
        await js.publish_async(
            f"{stream}.schedules.tick",
            b"",
            headers={"Nats-Schedule": "@every 1h", "Nats-Schedule-Target": f"{stream}.ticks"},
        )
    )
    cron, every = await wait_spans(telemetry, 2)
    assert dict(cron.attributes) == _js_sent(
        nc,
        subject,
        0,
        stream,
        1,
        **{
            "messaging.nats.jetstream.schedule": "0 0 5 * * *",
            "messaging.nats.jetstream.schedule_time_zone": "UTC",
            "messaging.nats.jetstream.schedule_target": f"{stream}.sampled",
            "messaging.nats.jetstream.schedule_source": f"{stream}.sensor",
            "messaging.nats.jetstream.schedule_ttl": "5m",
            "messaging.nats.jetstream.schedule_rollup": "sub",
        },
    )
    assert dict(every.attributes) == _js_sent(
        nc,
        f"{stream}.schedules.tick",
        0,
        stream,
        2,
        **{
            "messaging.nats.jetstream.schedule": "@every 1h",
            "messaging.nats.jetstream.schedule_target": f"{stream}.ticks",
        },
    )


@requires_server("2.12", why="message schedules: refused by a stream without allow_msg_schedules")
async def test_schedule_refused_by_the_stream(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js = nc.jetstream()
    stream = await _stream(nc, "NOSCH")
    telemetry.clear()
    headers = {"Nats-Schedule": "@every 1h", "Nats-Schedule-Target": f"{stream}.out"}
    with pytest.raises(nats.js.errors.BadRequestError) as raised:
        await js.publish(f"{stream}.s", b"", headers=headers)
    (span,) = await wait_spans(telemetry, 1)
    schedule = {
        "messaging.nats.jetstream.schedule": "@every 1h",
        "messaging.nats.jetstream.schedule_target": f"{stream}.out",
    }
    assert dict(span.attributes) == _js_sent(
        nc, f"{stream}.s", 0, stream, None, **schedule, **_refused(raised.value, 10188)
    )


@requires_server(
    "2.12", below="2.14", why="2.12 has no batch end without a stored message, and of the schedules only @at"
)
async def test_features_of_2_14_refused_by_2_12(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js = nc.jetstream()
    stream = await _stream(nc, "S212", allow_atomic=True, allow_msg_schedules=True)
    await nc.request(f"{stream}.b", b"1", headers={"Nats-Batch-Id": "b-1", "Nats-Batch-Sequence": "1"}, timeout=5)
    telemetry.clear()
    eob = {"Nats-Batch-Id": "b-1", "Nats-Batch-Sequence": "2", "Nats-Batch-Commit": "eob"}
    with pytest.raises(nats.js.errors.BadRequestError) as batch_refused:
        await js.publish(f"{stream}.b", b"", headers=eob)
    with pytest.raises(nats.js.errors.BadRequestError) as schedule_refused:
        await js.publish(
            f"{stream}.s", b"", headers={"Nats-Schedule": "@every 1h", "Nats-Schedule-Target": f"{stream}.o"}
        )
    batch, schedule = await wait_spans(telemetry, 2)
    assert dict(batch.attributes) == _js_sent(
        nc,
        f"{stream}.b",
        0,
        stream,
        None,
        **{
            "messaging.nats.jetstream.batch_id": "b-1",
            "messaging.nats.jetstream.batch_sequence": 2,
            "messaging.nats.jetstream.batch_commit": "eob",
        },
        **_refused(batch_refused.value, 10200),
    )
    assert dict(schedule.attributes) == _js_sent(
        nc,
        f"{stream}.s",
        0,
        stream,
        None,
        **{"messaging.nats.jetstream.schedule": "@every 1h", "messaging.nats.jetstream.schedule_target": f"{stream}.o"},
        **_refused(schedule_refused.value, 10189),
    )


# --- servers before 2.11 -------------------------------------------------------------------------


@requires_server(below="2.11", why="servers before 2.11 know none of these headers")
async def test_old_servers_store_them_as_plain_messages(telemetry: Any, js_server: Any, connect: Any) -> None:
    """The span records what the message asked for; the PubAck (a plain one) says nothing more."""
    nc = await connect(js_server.url)
    js = nc.jetstream()
    stream = await _stream(nc, "OLD")
    headers = {
        "Nats-TTL": "1h",
        "Nats-Batch-Id": "b-1",
        "Nats-Batch-Sequence": "1",
        "Nats-Batch-Commit": "1",
        "Nats-Incr": "+1",
        "Nats-Schedule": "@every 1h",
        "Nats-Schedule-Target": f"{stream}.out",
    }
    telemetry.clear()
    ack = await js.publish(f"{stream}.a", b"x", headers=headers)
    (span,) = await wait_spans(telemetry, 1)
    assert (ack.seq, getattr(ack, "batch_size", None), getattr(ack, "val", None)) == (1, None, None)
    assert dict(span.attributes) == _js_sent(
        nc,
        f"{stream}.a",
        1,
        stream,
        1,
        **{
            "messaging.nats.jetstream.message_ttl": "1h",
            "messaging.nats.jetstream.batch_id": "b-1",
            "messaging.nats.jetstream.batch_sequence": 1,
            "messaging.nats.jetstream.batch_commit": "1",
            "messaging.nats.jetstream.counter_increment": "+1",
            "messaging.nats.jetstream.schedule": "@every 1h",
            "messaging.nats.jetstream.schedule_target": f"{stream}.out",
        },
    )


# --- reading the headers ---------------------------------------------------------------------------


class _Headers(dict):  # type: ignore[type-arg]
    """A dict subclass (nats-py takes any mapping with items())."""


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Nats-Msg-Id": "m-1", "traceparent": "00-…"}, None),  # none asked for: nothing built
        ({"nats-ttl": "5", "NATS-INCR": "+1"}, None),  # the server reads these names case-sensitively
        ({"Nats-TTL": 5}, None),  # not a string (nats-py refuses it itself)
        ({"Nats-Batch-Sequence": "x"}, None),  # not a sequence: left out
        ({"Nats-Batch-Sequence": "²"}, None),
        (_Headers({"Nats-Batch-Sequence": " 7 ", "Nats-TTL": " 1h"}), {"batch_sequence": 7, "message_ttl": "1h"}),
        ({"Nats-Incr": "+9223372036854775808"}, {"counter_increment": "+9223372036854775808"}),
        ("Nats-TTL", None),
        (["Nats-TTL"], None),
        (42, None),
        (object(), None),
    ],
)
def test_feature_headers_as_sent(headers: Any, expected: dict[str, Any] | None) -> None:
    """Whatever the headers are, reading them never raises; values are what nats-py sends (stripped)."""
    found = feature_header_attributes(headers)
    prefix = "messaging.nats.jetstream."
    assert found == (None if expected is None else {prefix + k: v for k, v in expected.items()})
