"""Stream and consumer configuration on spans "when known" (streams.py): duplicate_window on JetStream
publish, deliver_subject / ack_policy / replay_policy on consumer spans — from the API responses this
connection saw, never from a request of the instrumentation's own."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from nats.js.api import AckPolicy, ConsumerConfig, ReplayPolicy

from opentelemetry.instrumentation.nats import names, streams
from opentelemetry.instrumentation.nats.streams import Configs, go_duration
from tests.helpers import by_name, wait_spans

CONFIG_KEYS = (
    "messaging.nats.jetstream.duplicate_window",
    "messaging.nats.jetstream.deliver_subject",
    "messaging.nats.jetstream.ack_policy",
    "messaging.nats.jetstream.replay_policy",
)


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def _config(span: Any) -> dict[str, Any]:
    return {k: v for k, v in span.attributes.items() if k in CONFIG_KEYS}


async def test_configuration_the_connection_saw(telemetry: Any, js_server: Any, connect: Any) -> None:
    nc = await connect(js_server.url)
    js = nc.jetstream()
    stream = _name("CFG")
    await js.add_stream(name=stream, subjects=[f"{stream}.>"], duplicate_window=90)
    pull = await js.pull_subscribe(
        f"{stream}.jobs",
        durable="puller",
        config=ConsumerConfig(ack_policy=AckPolicy.ALL, replay_policy=ReplayPolicy.ORIGINAL),
    )
    delivered: asyncio.Queue[Any] = asyncio.Queue()
    push = await js.subscribe(f"{stream}.events", durable="pusher", cb=delivered.put, manual_ack=True)
    deliver_subject = (await js.consumer_info(stream, "pusher")).config.deliver_subject
    telemetry.clear()

    await js.publish(f"{stream}.jobs", b"job")
    (msg,) = await pull.fetch(1, timeout=5)
    await msg.ack()
    await js.publish(f"{stream}.events", b"event")
    event = await asyncio.wait_for(delivered.get(), 5)
    await event.ack()
    spans = await wait_spans(telemetry, 6)

    assert [_config(s) for s in spans if s.name.startswith("publish ")] == [
        {"messaging.nats.jetstream.duplicate_window": "1m30s"}
    ] * 2
    pulled = {"messaging.nats.jetstream.ack_policy": "all", "messaging.nats.jetstream.replay_policy": "original"}
    assert _config(by_name(spans, f"fetch {stream}")) == pulled
    pushed = {
        "messaging.nats.jetstream.deliver_subject": deliver_subject,
        "messaging.nats.jetstream.ack_policy": "explicit",
        "messaging.nats.jetstream.replay_policy": "instant",
    }
    assert _config(by_name(spans, f"process {stream}.events")) == pushed
    acks = [s for s in spans if s.name == f"ack {stream}"]
    assert [_config(s) for s in acks] == [pulled, pushed]
    await push.unsubscribe()


async def test_configuration_another_connection_saw_is_not_known(telemetry: Any, js_server: Any, connect: Any) -> None:
    admin = await connect(js_server.url)
    stream = _name("OTHER")
    await admin.jetstream().add_stream(name=stream, subjects=[f"{stream}.>"])
    await admin.jetstream().add_consumer(stream, ConsumerConfig(durable_name="worker", ack_policy=AckPolicy.EXPLICIT))
    nc = await connect(js_server.url)
    js = nc.jetstream()
    pull = await js.pull_subscribe_bind(durable="worker", stream=stream)  # (asks the server nothing)
    telemetry.clear()

    await js.publish(f"{stream}.x", b"x")
    (msg,) = await pull.fetch(1, timeout=5)
    await msg.ack()
    spans = await wait_spans(telemetry, 3)
    assert [s.name for s in spans] == [f"publish {stream}.x", f"fetch {stream}", f"ack {stream}"]
    assert [_config(s) for s in spans] == [{}, {}, {}]


@pytest.mark.parametrize(
    ("nanoseconds", "text"),
    [
        (0, "0s"),
        (7, "7ns"),
        (1_500, "1.5µs"),
        (1_500_000, "1.5ms"),
        (500_000_000, "500ms"),
        (1_000_000_000, "1s"),
        (1_500_000_000, "1.5s"),
        (120_000_000_000, "2m0s"),
        (90_000_000_000, "1m30s"),
        (3_600_000_000_000, "1h0m0s"),
        (3_601_000_000_000, "1h0m1s"),
        (5_400_250_000_000, "1h30m0.25s"),
        (-2_000_000_000, "-2s"),
    ],
)
def test_durations_print_as_go_prints_them(nanoseconds: int, text: str) -> None:
    assert go_duration(nanoseconds) == text


class _Client:
    """Something weak-referenceable standing for a connection."""


@pytest.mark.parametrize(
    "response",
    [
        None,
        [],
        "text",
        {},
        {"config": None},
        {"config": []},
        {"config": {"name": 5}, "state": {}},
        {"config": {"name": "S"}},  # no state: not a stream response
        {"stream_name": "S", "name": 7, "config": {"ack_policy": "all"}},
        {"streams": [{"config": {"name": "S"}}]},  # a list: not kept
    ],
)
def test_odd_responses_are_ignored(response: Any) -> None:
    configs, client = Configs(), _Client()
    configs.seen(client, response)
    assert configs.stream(client, "S") is None
    assert configs.consumer(client, "S", "C") is None


def test_odd_values_are_left_out() -> None:
    configs, client = Configs(), _Client()
    configs.seen(client, {"config": {"name": "S", "duplicate_window": "2m"}, "state": {}})
    configs.seen(client, {"stream_name": "S", "name": "C", "config": {"ack_policy": 1, "replay_policy": "instant"}})
    assert configs.stream(client, "S") == {}
    assert configs.consumer(client, "S", "C") == {names.JS_REPLAY_POLICY: "instant"}
    configs.seen(None, {"config": {"name": "S"}, "state": {}})  # not weak-referenceable: nothing kept, no error
    assert configs.stream(None, "S") is None


def test_bounded_per_connection() -> None:
    configs, client = Configs(), _Client()
    for i in range(streams.CACHE_SIZE * 3):
        configs.seen(client, {"config": {"name": f"S{i}", "duplicate_window": 1}, "state": {}})
    known = configs._known(client)
    assert known is not None
    held = known.streams
    assert held.size() <= 2 * streams.CACHE_SIZE
    assert configs.stream(client, f"S{streams.CACHE_SIZE * 3 - 1}") == {names.JS_DUPLICATE_WINDOW: "1ns"}
    assert configs.stream(client, "S0") is None


def test_forgotten_with_the_connection() -> None:
    import gc

    configs, client = Configs(), _Client()
    configs.seen(client, {"config": {"name": "S", "duplicate_window": 1}, "state": {}})
    assert configs.stream(client, "S") == {names.JS_DUPLICATE_WINDOW: "1ns"}
    del client
    gc.collect()
    assert configs._clients == {}
