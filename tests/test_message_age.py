"""JetStream message age: how long a message was stored before it reached the application.

Real streams on a real nats-server; the age is read back from the SDK's in-memory reader. A sleep
between publish and consume makes the age measurably long.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from nats.protocol.parser import Parser
from opentelemetry.metrics import NoOpMeterProvider

from opentelemetry.instrumentation.nats import attributes
from tests.helpers import Telemetry, new_stream, synced
from tests.matrix.test_jetstream_consume import ages

AGE = "messaging.nats.jetstream.message.age"
STORED = 0.3  # seconds between publish and consume


def by_stream(stream: str, consumer: str | None = None, **extra: Any) -> dict[str, Any]:
    attrs = {"messaging.system.name": "nats", "messaging.nats.jetstream.stream": stream, **extra}
    if consumer is not None:
        attrs["messaging.nats.jetstream.consumer"] = consumer
    return attrs


def assert_waited(point: Any, count: int, at_least: float) -> None:
    """``count`` ages, each at least ``at_least`` seconds and far from an absurd value."""
    assert point.count == count
    assert point.min >= at_least, point.min
    assert point.max < at_least + 5, point.max
    assert point.sum >= count * at_least


async def test_push_consumer_callbacks_record_the_age(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js, stream = await new_stream(nc, telemetry, "AGEPUSH")
    for i in range(2):
        await js.publish(f"{stream}.orders.{i}", b"x")
    await asyncio.sleep(STORED)
    got: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(msg: Any) -> None:
        got.put_nowait(msg)

    await js.subscribe(f"{stream}.>", durable="pusher", cb=handler)
    for _ in range(2):
        await asyncio.wait_for(got.get(), 5)
    await asyncio.sleep(0.05)
    (point,) = ages(telemetry)
    assert dict(point.attributes) == by_stream(stream, "pusher")  # never the subject
    assert_waited(point, 2, STORED)


async def test_ordered_consumer_ages_are_by_stream(telemetry: Any, js_server: Any, connect: Any) -> None:
    """An ordered consumer's name is made up by the server, anew at every reset: not an attribute."""
    nc = await connect(js_server.url)
    js, stream = await new_stream(nc, telemetry, "AGEORD")
    for i in range(3):
        await js.publish(f"{stream}.o", str(i).encode())
    await asyncio.sleep(STORED)
    got: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(msg: Any) -> None:
        got.put_nowait(msg)

    await js.subscribe(f"{stream}.o", cb=handler, ordered_consumer=True)
    received = [await asyncio.wait_for(got.get(), 5) for _ in range(3)]
    assert [m.data for m in received] == [b"0", b"1", b"2"]
    assert received[0].metadata.stream == stream and received[0].metadata.consumer  # it has a name
    await asyncio.sleep(0.05)
    (point,) = ages(telemetry)
    assert dict(point.attributes) == by_stream(stream)
    assert_waited(point, 3, STORED)


async def test_next_msg_and_async_for_record_the_age(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js, stream = await new_stream(nc, telemetry, "AGESYNC")
    sub = await js.subscribe(f"{stream}.s", durable="sync")
    for i in range(2):
        await js.publish(f"{stream}.s", str(i).encode())
    await asyncio.sleep(STORED)
    first = await sub.next_msg(timeout=5)
    second = await asyncio.wait_for(sub.messages.__anext__(), 5)
    assert (first.data, second.data) == (b"0", b"1")
    (point,) = ages(telemetry)
    assert dict(point.attributes) == by_stream(stream, "sync")
    assert_waited(point, 2, STORED)


async def test_age_ends_at_delivery(telemetry: Any, js_server: Any, connect: Any) -> None:
    """Not when the wait began (``next_msg`` and ``fetch`` called before the message exists), nor when
    a callback ended (its processing time)."""
    nc = await connect(js_server.url)
    js, stream = await new_stream(nc, telemetry, "AGEDLV")
    processed = asyncio.Event()

    async def slow(msg: Any) -> None:
        await asyncio.sleep(0.5)
        processed.set()

    await js.subscribe(f"{stream}.c", durable="pusher", cb=slow)
    sub = await js.subscribe(f"{stream}.s", durable="sync")
    psub = await js.pull_subscribe(f"{stream}.p", durable="puller")
    waiting = asyncio.ensure_future(sub.next_msg(timeout=5))
    fetching = asyncio.ensure_future(psub.fetch(1, timeout=5))
    await asyncio.sleep(0.5)
    for kind in "csp":
        await js.publish(f"{stream}.{kind}", kind.encode())
    await waiting
    await fetching
    await asyncio.wait_for(processed.wait(), 5)
    await asyncio.sleep(0.05)
    got = {p.attributes["messaging.nats.jetstream.consumer"]: p for p in ages(telemetry)}
    assert set(got) == {"pusher", "sync", "puller"}
    for point in got.values():
        assert point.count == 1
        # delivery takes milliseconds (and the clocks are one: it is never 0); the waits were 0.5 s
        assert 0 < point.max < 0.4, point.max
    receive = [s for s in telemetry.spans() if s.name == f"receive {stream}.s"]
    assert receive and (receive[0].end_time - receive[0].start_time) / 1e9 >= 0.5


async def test_subject_templates_name_the_messages(make_telemetry: Any, js_server: Any, connect: Any) -> None:
    """A subject under a ``subject_templates`` pattern adds the pattern; other subjects add nothing."""
    stream = f"AGETPL_{time.time_ns() % 10**8}"
    telemetry = make_telemetry(subject_templates=[f"{stream}.*.created"])
    nc = await connect(js_server.url)
    js = nc.jetstream()
    await js.add_stream(name=stream, subjects=[f"{stream}.>"])
    for subject in (f"{stream}.1.created", f"{stream}.2.created", f"{stream}.1.deleted", f"{stream}.2.deleted"):
        await js.publish(subject, b"x")
    got: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(msg: Any) -> None:
        got.put_nowait(msg)

    await js.subscribe(f"{stream}.>", durable="pusher", cb=handler)
    psub = await js.pull_subscribe(f"{stream}.>", durable="puller")
    for _ in range(4):
        await asyncio.wait_for(got.get(), 5)
    assert len(await psub.fetch(4, timeout=5)) == 4
    await asyncio.sleep(0.05)
    counts = {tuple(sorted(dict(p.attributes).items())): p.count for p in ages(telemetry)}
    template = {"messaging.destination.template": f"{stream}.*.created"}
    assert counts == {
        tuple(sorted(by_stream(stream, consumer, **extra).items())): 2
        for consumer in ("pusher", "puller")
        for extra in (template, {})
    }


async def test_clock_skew_counts_the_message_with_age_zero(telemetry: Any, server: Any, connect: Any) -> None:
    """A stored time ahead of the client's clock (the server's clock runs ahead) is an age of 0, not
    a negative one; a malformed time records no age. The application gets its messages either way.

    A server relays no client message with a ``$JS.ACK.`` reply (reserved), and its clock cannot be
    set, so the MSG frames a server running a minute ahead would send go through nats-py's own
    protocol parser (a parser of their own: the connection's keeps its buffer), to a real subscription."""
    nc = await connect(server.url)
    got: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(msg: Any) -> None:
        got.put_nowait(msg)

    sub = await nc.subscribe("age.skew", cb=handler)
    await synced(nc)
    ahead = time.time_ns() + 60 * 10**9
    frames = b"".join(
        b"MSG age.skew %d %s %d\r\n%s\r\n" % (sub._id, reply.encode(), len(data), data)
        for reply, data in ((f"$JS.ACK.SKEW.c.1.1.1.{ahead}.0", b"ahead"), ("$JS.ACK.BAD.c.1.1.1.soon.0", b"bad"))
    )
    await Parser(nc).parse(frames)
    assert [(await asyncio.wait_for(got.get(), 5)).data for _ in range(2)] == [b"ahead", b"bad"]
    await asyncio.sleep(0.05)
    (point,) = ages(telemetry)
    assert dict(point.attributes) == by_stream("SKEW", "c")
    assert (point.count, point.sum, point.min, point.max) == (1, 0, 0, 0)
    spans = [s for s in telemetry.spans() if s.name == "process age.skew"]
    assert [s.attributes["messaging.nats.jetstream.stream"] for s in spans] == ["SKEW", "BAD"]  # both traced


def test_ack_timestamp_reads_both_ack_subject_layouts() -> None:
    assert attributes.ack_timestamp("$JS.ACK.S.c.1.2.3.1700000000123456789.0") == 1700000000123456789
    domain = "$JS.ACK.hub.ACCHASH.S.c.1.2.3.1700000000123456789.0.rand"
    assert attributes.ack_timestamp(domain) == 1700000000123456789
    assert attributes.ack_timestamp(domain.rsplit(".", 1)[0]) == 1700000000123456789  # 11 tokens
    for odd in (None, b"$JS.ACK.S.c.1.2.3.4.0", "_INBOX.x", "$JS.ACK.S.c.1.2.3.4", "$JS.ACK.S.c.1.2.3.x.0"):
        assert attributes.ack_timestamp(odd) is None


async def test_the_stored_time_is_parsed_only_while_a_meter_records(
    js_server: Any, connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spans only (the API's no-op meter): the stored time is never parsed. With an SDK meter: once
    per message."""
    calls: list[Any] = []
    parse = attributes.ack_timestamp

    def counting(reply: Any) -> int | None:
        calls.append(reply)
        return parse(reply)

    monkeypatch.setattr(attributes, "ack_timestamp", counting)

    async def consume(tel: Telemetry, meter_provider: Any) -> str:
        tel.instrumentor.instrument(tracer_provider=tel.tracer_provider, meter_provider=meter_provider)
        try:
            nc = await connect(js_server.url)
            js, stream = await new_stream(nc, tel, "AGEPARSE")
            psub = await js.pull_subscribe(f"{stream}.q", durable="puller")
            got: asyncio.Queue[Any] = asyncio.Queue()

            async def handler(msg: Any) -> None:
                got.put_nowait(msg)

            await js.subscribe(f"{stream}.q", durable="pusher", cb=handler)
            await js.publish(f"{stream}.q", b"x")
            await asyncio.wait_for(got.get(), 5)
            assert len(await psub.fetch(1, timeout=5)) == 1
        finally:
            tel.uninstrument()
        assert {s.name for s in tel.spans()} >= {f"process {stream}.q", f"fetch {stream}"}
        return stream

    await consume(Telemetry(), NoOpMeterProvider())
    assert calls == []
    measured = Telemetry()
    stream = await consume(measured, measured.meter_provider)
    assert [reply.split(".")[2:4] for reply in calls] == [[stream, "pusher"], [stream, "puller"]]
