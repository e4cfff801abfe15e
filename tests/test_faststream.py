"""FastStream (``faststream[nats]``) apps on a real nats-server, traced by this instrumentation alone
("ours") and together with FastStream's ``NatsTelemetryMiddleware`` on the same tracer provider ("both").

Every scenario runs its app twice: without this instrumentation (FastStream alone; with the
middleware in "both") and with it. The app must behave the same (messages handled, replies,
JetStream consumer state), the instrumented run must give exactly the expected traces, and in
"both" the middleware's own spans must keep the parents and links they have without us - except
where a context of ours reaches them (the last test shows where).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import nats
import pytest
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from faststream.opentelemetry import Baggage, CurrentBaggage
from opentelemetry.trace import StatusCode

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.instrumentation.nats import message_context
from tests.helpers import Row, Telemetry, expected_forest, forest

OURS = "opentelemetry.instrumentation.nats"
THEIRS = "opentelemetry.instrumentation.faststream"  # the tracer of NatsTelemetryMiddleware
P, C, CL, S = "PRODUCER", "CONSUMER", "CLIENT", "SERVER"

MODES = pytest.mark.parametrize("mode", ["ours", "both"])


@dataclass
class App:
    """One run of an app: its brokers and what it observably did (``handled``, ``outcome``)."""

    url: str
    js: Any  # JetStream context of a separate connection, to read consumer state
    middlewares: tuple[Any, ...]
    tracer: trace.Tracer  # for the application's own spans
    tag: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}")  # unique subjects and streams
    brokers: list[NatsBroker] = field(default_factory=list)
    handled: list[str] = field(default_factory=list)
    outcome: dict[str, Any] = field(default_factory=dict)
    current: dict[str, str | None] = field(default_factory=dict)  # body → span current in its handler
    baggage: dict[str, Any] = field(default_factory=dict)  # what handlers saw of the baggage

    def broker(self) -> NatsBroker:
        broker = NatsBroker(self.url, middlewares=self.middlewares, logger=None)
        self.brokers.append(broker)
        return broker

    def seen(self, body: str) -> None:
        self.handled.append(body)
        self.current[body] = getattr(trace.get_current_span(), "name", None)

    def rename(self, name: str) -> str:
        """Span names without this run's tag and inbox tokens."""
        return re.sub(r"_INBOX\.\S+", "_INBOX", name.replace(self.tag, "app"))

    def stream(self, suffix: str) -> JStream:
        return JStream(f"{self.tag}_{suffix}", subjects=[f"{self.tag}.{suffix.lower()}"])

    async def consumers(self, stream: str) -> list[Any]:
        return list(await self.js.consumers_info(stream))

    async def settled(self, stream: str, count: int) -> None:
        """Wait until the stream's consumer has settled ``count`` messages; keep its state."""

        async def done() -> bool:
            (info,) = await self.consumers(stream)
            return bool(info.ack_floor.consumer_seq == count and info.num_ack_pending == 0)

        await until(done)
        (info,) = await self.consumers(stream)
        self.outcome[stream.replace(self.tag, "app")] = {
            "delivered": info.delivered.consumer_seq,
            "ack_floor": info.ack_floor.consumer_seq,
            "ack_pending": info.num_ack_pending,
            "redelivered": info.num_redelivered,
            "pending": info.num_pending,
        }


def jetstream_attributes(span: Any, *keys: str) -> dict[str, Any]:
    return {key: span.attributes[f"messaging.nats.jetstream.{key}"] for key in keys}


Drive = Callable[[], Awaitable[None]]
Scenario = Callable[[NatsBroker, App], Drive]


async def until(check: Callable[[], Any], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def run(url: str, js: Any, scenario: Scenario, ours: bool, middleware: bool) -> tuple[App, Telemetry]:
    """Build the app, start its brokers, drive it, stop them; ``ours``: with this instrumentation."""
    tel = Telemetry()
    if ours:
        tel.instrument()
    try:
        middlewares = (NatsTelemetryMiddleware(tracer_provider=tel.tracer_provider),) if middleware else ()
        app = App(url, js, middlewares, tel.tracer_provider.get_tracer("app"))
        drive = scenario(app.broker(), app)
        for broker in app.brokers:
            await broker.start()
        try:
            await drive()
        finally:
            started = time.monotonic()
            for broker in app.brokers:
                await broker.stop()
            app.outcome["stopped within 2 s"] = time.monotonic() - started < 2.0
    finally:
        if ours:
            tel.uninstrument()
    return app, tel


async def traced(
    js_server: Any, connect: Any, scenario: Scenario, mode: str, errors: tuple[str, ...] = ()
) -> tuple[App, Telemetry, list[list[Row]]]:
    """Run ``scenario`` without and with this instrumentation; check what must not change.

    Returns the instrumented run, its telemetry and its spans as :func:`forest` traces. ``errors``:
    the (renamed) names of the spans with status ERROR - only spans of the application's failures."""
    js = (await connect(js_server.url)).jetstream()
    middleware = mode == "both"
    base, base_tel = await run(js_server.url, js, scenario, ours=False, middleware=middleware)
    app, tel = await run(js_server.url, js, scenario, ours=True, middleware=middleware)
    assert sorted(app.handled) == sorted(base.handled)
    assert app.outcome == base.outcome
    spans, base_spans = tel.spans(), base_tel.spans()
    # the middleware's spans: the same traces, parents and links as without this instrumentation
    assert forest(spans, THEIRS, app.rename) == forest(base_spans, THEIRS, base.rename)
    assert {s.instrumentation_scope.name for s in spans} <= {OURS, THEIRS, "app"}
    failed = sorted(app.rename(s.name) for s in spans if s.status.status_code is StatusCode.ERROR)
    assert failed == sorted(errors)
    return app, tel, forest(spans, rename=app.rename)


def forward(broker: NatsBroker, app: App) -> Drive:
    """Core pub/sub: a handler whose result an ``@publisher`` forwards to a second subscriber."""

    @broker.subscriber(f"{app.tag}.in")
    @broker.publisher(f"{app.tag}.out")
    async def step(body: str) -> str:
        app.seen(body)
        return f"{body}!"

    @broker.subscriber(f"{app.tag}.out")
    async def end(body: str) -> None:
        app.seen(body)

    async def drive() -> None:
        await broker.publish("hi", f"{app.tag}.in")
        await until(lambda: len(app.handled) == 2)

    return drive


FORWARD_OURS = [
    ("publish app.in", P, None, ()),
    ("process app.in", C, "publish app.in", ("publish app.in",)),
    ("publish app.out", P, "process app.in", ()),
    ("process app.out", C, "publish app.out", ("publish app.out",)),
]
# The middleware makes a create span and puts its context in the headers; our publish keeps it (a
# CLIENT span with a link to it). Its forward carries the first message's creation context again,
# so everything after it hangs under "app.in create".
FORWARD_BOTH = [
    ("app.in create", P, None, ()),
    ("app.in publish", P, "app.in create", ()),
    ("publish app.in", CL, "app.in publish", ("app.in create",)),
    ("process app.in", C, "app.in create", ("app.in create",)),
    ("app.in process", C, "app.in create", ()),
    ("app.out publish", P, "app.in process", ()),
    ("publish app.out", CL, "app.out publish", ("app.in create",)),
    ("process app.out", C, "app.in create", ("app.in create",)),
    ("app.out process", C, "app.in create", ()),
]


@MODES
async def test_pubsub_with_publisher_forward(js_server: Any, connect: Any, mode: str) -> None:
    app, _, traces = await traced(js_server, connect, forward, mode)
    assert app.handled == ["hi", "hi!"]
    if mode == "ours":
        assert traces == expected_forest(FORWARD_OURS)
        assert app.current == {"hi": f"process {app.tag}.in", "hi!": f"process {app.tag}.out"}
    else:
        assert traces == expected_forest(FORWARD_BOTH)
        assert app.current == {"hi": f"{app.tag}.in process", "hi!": f"{app.tag}.out process"}


SENT_BAGGAGE = {"tenant": "t1", "region": "eu"}


def baggage_forward(change: Callable[[Any], None]) -> Scenario:
    """The producer sends baggage (FastStream's ``Baggage(...).to_headers()``, as FastStream's docs do);
    a handler calls ``change`` on its ``CurrentBaggage`` and an ``@publisher`` forwards its result. What
    the second handler gets is part of the app's outcome: it must be the same as without us."""

    def scenario(broker: NatsBroker, app: App) -> Drive:
        @broker.subscriber(f"{app.tag}.in")
        @broker.publisher(f"{app.tag}.out")
        async def step(body: str, current: CurrentBaggage) -> str:
            app.seen(body)
            change(current)
            return f"{body}!"

        @broker.subscriber(f"{app.tag}.out")
        async def end(body: str, current: CurrentBaggage, msg: NatsMessage) -> None:
            app.seen(body)
            app.outcome["forwarded"] = {
                "CurrentBaggage": current.get_all(),
                "header": (msg.raw_message.headers or {}).get("baggage"),
            }

        async def drive() -> None:
            await broker.publish("hi", f"{app.tag}.in", headers=Baggage(SENT_BAGGAGE).to_headers())
            await until(lambda: len(app.handled) == 2)

        return drive

    return scenario


def _set(current: Any) -> None:
    current.set("step", "2")
    current.set("region", "us")


def _remove(current: Any) -> None:
    current.remove("tenant")


def _clear(current: Any) -> None:
    current.clear()


@pytest.mark.parametrize(
    ("change", "forwarded"),
    [
        (
            _set,
            {"CurrentBaggage": {"tenant": "t1", "region": "us", "step": "2"}, "header": "tenant=t1,region=us,step=2"},
        ),
        (_remove, {"CurrentBaggage": {"region": "eu"}, "header": "region=eu"}),
        (_clear, {"CurrentBaggage": {}, "header": None}),
        (lambda current: None, {"CurrentBaggage": SENT_BAGGAGE, "header": "tenant=t1,region=eu"}),
    ],
    ids=["set", "remove", "clear", "unchanged"],
)
async def test_current_baggage_changes_are_what_the_publisher_forwards(
    js_server: Any, connect: Any, change: Callable[[Any], None], forwarded: dict[str, Any]
) -> None:
    """FastStream's ``CurrentBaggage`` (the middleware's) is the baggage the ``@publisher`` forward
    carries: our process span's context, current around FastStream's whole handling of the message,
    does not hold the message's baggage, so FastStream's forward (built on the current context's
    baggage) gets only its own. ``traced`` checks that the outcome is the same without us."""
    app, _, traces = await traced(js_server, connect, baggage_forward(change), "both")
    assert app.handled == ["hi", "hi!"]
    assert app.outcome["forwarded"] == forwarded
    assert traces == expected_forest(FORWARD_BOTH)


def baggage_relay(broker: NatsBroker, app: App) -> Drive:
    """Without the middleware: the producer sends baggage from its current context; a handler's
    result is forwarded by an ``@publisher``."""

    @broker.subscriber(f"{app.tag}.in")
    @broker.publisher(f"{app.tag}.out")
    async def step(body: str, msg: NatsMessage) -> str:
        app.seen(body)
        app.baggage[body] = {
            "current": dict(baggage.get_all()),
            "message_context": dict(baggage.get_all(message_context(msg.raw_message))),
        }
        return f"{body}!"

    @broker.subscriber(f"{app.tag}.out")
    async def end(body: str, msg: NatsMessage) -> None:
        app.seen(body)
        app.baggage[body] = {"header": (msg.raw_message.headers or {}).get("baggage")}

    async def drive() -> None:
        token = otel_context.attach(baggage.set_baggage("region", "eu", baggage.set_baggage("tenant", "t1")))
        try:
            await broker.publish("hi", f"{app.tag}.in")
        finally:
            otel_context.detach(token)
        await until(lambda: len(app.handled) == 2)

    return drive


async def test_publisher_forward_carries_the_message_baggage(js_server: Any, connect: Any) -> None:
    """With this instrumentation alone the producer's baggage (its current context's: FastStream
    without the middleware sends none itself) reaches the handler's ``@publisher`` forward. It is not
    in the handler's current context (see the test above): ``message_context`` has it."""
    app, _, traces = await traced(js_server, connect, baggage_relay, "ours")
    assert app.handled == ["hi", "hi!"]
    assert app.baggage == {
        "hi": {"current": {}, "message_context": SENT_BAGGAGE},
        "hi!": {"header": "tenant=t1,region=eu"},
    }
    assert traces == expected_forest(FORWARD_OURS)


def request_reply(broker: NatsBroker, app: App) -> Drive:
    """``broker.request`` to a handler whose return value FastStream publishes to the reply inbox."""

    @broker.subscriber(f"{app.tag}.rpc")
    async def answer(body: str) -> str:
        app.seen(body)
        return body.upper()

    async def drive() -> None:
        reply = await broker.request("hi", f"{app.tag}.rpc", timeout=5)
        app.outcome["reply"] = await reply.decode()

    return drive


@MODES
async def test_broker_request(js_server: Any, connect: Any, mode: str) -> None:
    app, _, traces = await traced(js_server, connect, request_reply, mode)
    assert app.outcome["reply"] == "HI"
    if mode == "ours":
        # FastStream answers with a plain publish to the inbox (not Msg.respond)
        assert traces == expected_forest(
            [
                ("request app.rpc", CL, None, ()),
                ("process app.rpc", S, "request app.rpc", ("request app.rpc",)),
                ("publish", P, "process app.rpc", ()),
            ]
        )
        assert app.current == {"hi": f"process {app.tag}.rpc"}
    else:
        assert traces == expected_forest(
            [
                ("app.rpc create", P, None, ()),
                ("app.rpc publish", P, "app.rpc create", ()),
                ("request app.rpc", CL, "app.rpc publish", ("app.rpc create",)),
                ("process app.rpc", S, "app.rpc create", ("app.rpc create",)),
                ("app.rpc process", C, "app.rpc create", ()),
                ("_INBOX publish", P, "app.rpc process", ()),
                ("publish", CL, "_INBOX publish", ("app.rpc create",)),
                ("_INBOX process", C, "app.rpc create", ()),
            ]
        )
        assert app.current == {"hi": f"{app.tag}.rpc process"}


def queue_group(broker: NatsBroker, app: App) -> Drive:
    """Two brokers (workers) in one queue group: each message is handled once."""
    for worker in (broker, app.broker()):

        @worker.subscriber(f"{app.tag}.jobs", queue="workers")
        async def work(body: str) -> None:
            app.seen(body)

    async def drive() -> None:
        for i in range(4):
            await broker.publish(str(i), f"{app.tag}.jobs")
        await until(lambda: len(app.handled) == 4)
        await asyncio.sleep(0.05)  # (a second delivery would show up in handled)

    return drive


@MODES
async def test_queue_group(js_server: Any, connect: Any, mode: str) -> None:
    app, tel, traces = await traced(js_server, connect, queue_group, mode)
    assert sorted(app.handled) == ["0", "1", "2", "3"]
    if mode == "ours":
        flow = [
            ("publish app.jobs", P, None, ()),
            ("process app.jobs", C, "publish app.jobs", ("publish app.jobs",)),
        ]
        assert set(app.current.values()) == {f"process {app.tag}.jobs"}
    else:
        flow = [
            ("app.jobs create", P, None, ()),
            ("app.jobs publish", P, "app.jobs create", ()),
            ("publish app.jobs", CL, "app.jobs publish", ("app.jobs create",)),
            ("process app.jobs", C, "app.jobs create", ("app.jobs create",)),
            ("app.jobs process", C, "app.jobs create", ()),
        ]
        assert set(app.current.values()) == {f"{app.tag}.jobs process"}
    assert traces == expected_forest(*[flow] * 4)
    groups = [s.attributes.get("messaging.consumer.group.name") for s in tel.spans() if s.name.startswith("process ")]
    assert groups == ["workers"] * 4


def push(broker: NatsBroker, app: App) -> Drive:
    """A JetStream push subscriber; FastStream acks after the handler."""
    stream = app.stream("PUSH")

    @broker.subscriber(f"{app.tag}.push", stream=stream)
    async def handle(body: str) -> None:
        app.seen(body)

    async def drive() -> None:
        await broker.publish("hi", f"{app.tag}.push", stream=stream.name)
        await app.settled(stream.name, 1)

    return drive


@MODES
async def test_jetstream_push_subscriber(js_server: Any, connect: Any, mode: str) -> None:
    app, tel, traces = await traced(js_server, connect, push, mode)
    (publish,) = [s for s in tel.spans() if s.name == f"publish {app.tag}.push"]
    assert jetstream_attributes(publish, "stream", "sequence", "duplicate") == {
        "stream": f"{app.tag}_PUSH",
        "sequence": 1,
        "duplicate": False,
    }
    assert app.outcome["app_PUSH"] == {"delivered": 1, "ack_floor": 1, "ack_pending": 0, "redelivered": 0, "pending": 0}
    if mode == "ours":
        assert traces == expected_forest(
            [
                ("publish app.push", P, None, ()),
                ("process app.push", C, "publish app.push", ("publish app.push",)),
                ("ack app_PUSH", CL, "process app.push", ("publish app.push",)),
            ]
        )
        assert app.current == {"hi": f"process {app.tag}.push"}
    else:
        assert traces == expected_forest(
            [
                ("app.push create", P, None, ()),
                ("app.push publish", P, "app.push create", ()),
                ("publish app.push", CL, "app.push publish", ("app.push create",)),
                ("process app.push", C, "app.push create", ("app.push create",)),
                ("app.push process", C, "app.push create", ()),
                ("ack app_PUSH", CL, "process app.push", ("app.push create",)),
            ]
        )
        assert app.current == {"hi": f"{app.tag}.push process"}


def pull(broker: NatsBroker, app: App) -> Drive:
    """A JetStream pull subscriber (``PullSub``): FastStream fetches, runs the handler, then acks."""
    stream = app.stream("PULL")

    @broker.subscriber(f"{app.tag}.pull", stream=stream, durable="workers", pull_sub=PullSub(timeout=0.1))
    async def handle(body: str) -> None:
        app.seen(body)

    async def drive() -> None:
        for i in range(3):
            await broker.publish(str(i), f"{app.tag}.pull", stream=stream.name)
        await app.settled(stream.name, 3)

    return drive


@MODES
async def test_jetstream_pull_subscriber(js_server: Any, connect: Any, mode: str) -> None:
    app, tel, traces = await traced(js_server, connect, pull, mode)
    fetches = [s for s in tel.spans() if s.name == f"fetch {app.tag}_PULL"]
    assert [(f.attributes["messaging.batch.message_count"], jetstream_attributes(f, "consumer")) for f in fetches] == [
        (1, {"consumer": "workers"})
    ] * 3
    acks = [s for s in tel.spans() if s.name == f"ack {app.tag}_PULL"]
    assert sorted(
        (jetstream_attributes(a, "stream", "consumer", "sequence", "num_delivered") for a in acks), key=str
    ) == [{"stream": f"{app.tag}_PULL", "consumer": "workers", "sequence": i, "num_delivered": 1} for i in (1, 2, 3)]
    assert app.outcome["app_PULL"] == {"delivered": 3, "ack_floor": 3, "ack_pending": 0, "redelivered": 0, "pending": 0}
    # One fetch per message (batch_size 1), each its own trace with a link to the message's
    # creation context; the ack, made after the handler outside any span, is in the producer's trace.
    if mode == "ours":
        flow = [
            ("publish app.pull", P, None, ()),
            ("ack app_PULL", CL, "publish app.pull", ("publish app.pull",)),
        ]
        fetch = [("fetch app_PULL", CL, None, ("publish app.pull",))]
        # the handler runs outside any span of ours: spans it makes start new traces
        assert app.current == {"0": None, "1": None, "2": None}
    else:
        flow = [
            ("app.pull create", P, None, ()),
            ("app.pull publish", P, "app.pull create", ()),
            ("publish app.pull", CL, "app.pull publish", ("app.pull create",)),
            ("app.pull process", C, "app.pull create", ()),
            ("ack app_PULL", CL, "app.pull create", ("app.pull create",)),
        ]
        fetch = [("fetch app_PULL", CL, None, ("app.pull create",))]
        assert app.current == {str(i): f"{app.tag}.pull process" for i in range(3)}
    assert traces == expected_forest(*[flow] * 3, *[fetch] * 3)


def own_spans(broker: NatsBroker, app: App) -> Drive:
    """A pull subscriber's handler that parents its own span on ``message_context(msg.raw_message)``
    and publishes inside it."""
    stream = app.stream("OWN")

    @broker.subscriber(f"{app.tag}.own", stream=stream, durable="workers", pull_sub=PullSub(timeout=0.1))
    async def handle(body: str, msg: NatsMessage) -> None:
        with app.tracer.start_as_current_span("handle", context=message_context(msg.raw_message)):
            app.seen(body)
            await broker.publish(f"{body}!", f"{app.tag}.done")

    @broker.subscriber(f"{app.tag}.done")
    async def done(body: str) -> None:
        app.seen(body)

    async def drive() -> None:
        await broker.publish("hi", f"{app.tag}.own", stream=stream.name)
        await until(lambda: len(app.handled) == 2)
        await app.settled(stream.name, 1)

    return drive


async def test_pull_handler_spans_under_message_context(js_server: Any, connect: Any) -> None:
    app, _, traces = await traced(js_server, connect, own_spans, "ours")
    assert app.current == {"hi": "handle", "hi!": f"process {app.tag}.done"}
    assert traces == expected_forest(
        [
            ("publish app.own", P, None, ()),
            ("handle", "INTERNAL", "publish app.own", ()),
            ("publish app.done", P, "handle", ()),
            ("process app.done", C, "publish app.done", ("publish app.done",)),
            ("ack app_OWN", CL, "publish app.own", ("publish app.own",)),
        ],
        [("fetch app_OWN", CL, None, ("publish app.own",))],
    )


def workers(broker: NatsBroker, app: App) -> Drive:
    """A core subscriber with ``max_workers``: FastStream's callback only queues each message for a
    worker task, which runs the handler."""

    @broker.subscriber(f"{app.tag}.work", max_workers=2)
    async def work(body: str) -> None:
        app.seen(body)

    async def drive() -> None:
        for i in range(2):
            await broker.publish(str(i), f"{app.tag}.work")
        await until(lambda: len(app.handled) == 2)

    return drive


@MODES
async def test_subscriber_with_worker_tasks(js_server: Any, connect: Any, mode: str) -> None:
    app, _, traces = await traced(js_server, connect, workers, mode)
    if mode == "ours":
        flow = [
            ("publish app.work", P, None, ()),
            ("process app.work", C, "publish app.work", ("publish app.work",)),
        ]
        # our process span covers the callback (queueing the message), not the handler
        assert app.current == {"0": None, "1": None}
    else:
        flow = [
            ("app.work create", P, None, ()),
            ("app.work publish", P, "app.work create", ()),
            ("publish app.work", CL, "app.work publish", ("app.work create",)),
            ("process app.work", C, "app.work create", ("app.work create",)),
            ("app.work process", C, "app.work create", ()),
        ]
        assert app.current == {"0": f"{app.tag}.work process", "1": f"{app.tag}.work process"}
    assert traces == expected_forest(flow, flow)


def failing(broker: NatsBroker, app: App) -> Drive:
    """Handlers that raise: a core subscriber, and a pull subscriber (FastStream then terminates the
    message: ``AckPolicy.REJECT_ON_ERROR``, its default)."""
    stream = app.stream("FAIL")

    @broker.subscriber(f"{app.tag}.broken")
    async def core(body: str) -> None:
        app.seen(body)
        raise ValueError("the handler failed")

    @broker.subscriber(f"{app.tag}.fail", stream=stream, durable="workers", pull_sub=PullSub(timeout=0.1))
    async def pulled(body: str) -> None:
        app.seen(body)
        raise ValueError("the handler failed")

    async def drive() -> None:
        await broker.publish("core", f"{app.tag}.broken")
        await broker.publish("pulled", f"{app.tag}.fail", stream=stream.name)
        await until(lambda: len(app.handled) == 2)
        await app.settled(stream.name, 1)

    return drive


@MODES
async def test_handler_that_raises(js_server: Any, connect: Any, mode: str) -> None:
    # FastStream catches the handler's exception before nats-py sees it: our spans cannot show it;
    # only the middleware's process spans do.
    errors = () if mode == "ours" else ("app.broken process", "app.fail process")
    app, _, traces = await traced(js_server, connect, failing, mode, errors)
    assert app.outcome["app_FAIL"] == {"delivered": 1, "ack_floor": 1, "ack_pending": 0, "redelivered": 0, "pending": 0}
    if mode == "ours":
        assert traces == expected_forest(
            [
                ("publish app.broken", P, None, ()),
                ("process app.broken", C, "publish app.broken", ("publish app.broken",)),
            ],
            [
                ("publish app.fail", P, None, ()),
                ("term app_FAIL", CL, "publish app.fail", ("publish app.fail",)),
            ],
            [("fetch app_FAIL", CL, None, ("publish app.fail",))],
        )
    else:
        assert traces == expected_forest(
            [
                ("app.broken create", P, None, ()),
                ("app.broken publish", P, "app.broken create", ()),
                ("publish app.broken", CL, "app.broken publish", ("app.broken create",)),
                ("process app.broken", C, "app.broken create", ("app.broken create",)),
                ("app.broken process", C, "app.broken create", ()),
            ],
            [
                ("app.fail create", P, None, ()),
                ("app.fail publish", P, "app.fail create", ()),
                ("publish app.fail", CL, "app.fail publish", ("app.fail create",)),
                ("app.fail process", C, "app.fail create", ()),
                ("term app_FAIL", CL, "app.fail create", ("app.fail create",)),
            ],
            [("fetch app_FAIL", CL, None, ("app.fail create",))],
        )


def idle(broker: NatsBroker, app: App) -> Drive:
    """A pull subscriber with nothing to fetch, for several of its (short) fetch timeouts."""
    stream = app.stream("IDLE")

    @broker.subscriber(f"{app.tag}.idle", stream=stream, durable="workers", pull_sub=PullSub(timeout=0.05))
    async def handle(body: str) -> None:
        app.seen(body)

    async def drive() -> None:
        await asyncio.sleep(0.4)  # 8 fetch timeouts

    return drive


@MODES
async def test_idle_pull_subscriber_makes_no_spans(js_server: Any, connect: Any, mode: str) -> None:
    app, tel, traces = await traced(js_server, connect, idle, mode)
    assert app.handled == []
    assert traces == []
    # ... although it fetched several times: the operation-duration metric records the empty fetches
    fetches = [
        point
        for rm in tel.metric_reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == "messaging.client.operation.duration"
        for point in metric.data.data_points
        if point.attributes["messaging.operation.name"] == "fetch"
    ]
    assert sum(p.count for p in fetches) >= 3
    assert all("error.type" not in p.attributes for p in fetches)


def lifecycle(broker: NatsBroker, app: App) -> Drive:
    """Core, queue, push and pull subscribers; the pull subscriber's fetch (FastStream's default 5 s
    timeout) is waiting when the broker stops and cancels it."""
    stream = JStream(f"{app.tag}_LIFE", subjects=[f"{app.tag}.life.*"])

    @broker.subscriber(f"{app.tag}.core")
    @broker.subscriber(f"{app.tag}.queue", queue="workers")
    @broker.subscriber(f"{app.tag}.life.push", stream=stream)
    @broker.subscriber(f"{app.tag}.life.pull", stream=stream, durable="workers", pull_sub=PullSub())
    async def handle(body: str) -> None:
        app.seen(body)

    async def drive() -> None:
        async def fetch_waiting() -> bool:
            return any(info.num_waiting for info in await app.consumers(stream.name))

        await until(fetch_waiting)

    return drive


@MODES
async def test_broker_start_and_stop_make_no_spans(js_server: Any, connect: Any, mode: str) -> None:
    app, _, traces = await traced(js_server, connect, lifecycle, mode)
    assert app.outcome == {"stopped within 2 s": True}
    assert traces == []  # no ERROR span, no span of the cancelled fetch


def producer_without_middleware(broker: NatsBroker, app: App) -> Drive:
    """A subscriber with the middleware gets a message that a broker without it sent."""
    plain = NatsBroker(app.url, logger=None)
    app.brokers.append(plain)

    @broker.subscriber(f"{app.tag}.in")
    async def handle(body: str) -> None:
        app.seen(body)

    async def drive() -> None:
        await plain.publish("hi", f"{app.tag}.in")
        await until(lambda: len(app.handled) == 1)

    return drive


def publish_from_a_callback(broker: NatsBroker, app: App) -> Drive:
    """A plain nats-py subscription's callback publishes through the broker with the middleware."""

    @broker.subscriber(f"{app.tag}.out")
    async def handle(body: str) -> None:
        app.seen(body)

    async def drive() -> None:
        async def relay(msg: Any) -> None:
            await broker.publish(msg.data.decode(), f"{app.tag}.out")

        nc = await nats.connect(app.url)
        try:
            await nc.subscribe(f"{app.tag}.in", cb=relay)
            await nc.publish(f"{app.tag}.in", b"hi")
            await until(lambda: len(app.handled) == 1)
        finally:
            await nc.close()

    return drive


def batch_without_middleware(broker: NatsBroker, app: App) -> Drive:
    """A batch pull subscriber with the middleware gets a message that a broker without it sent."""
    plain = NatsBroker(app.url, logger=None)
    app.brokers.append(plain)
    stream = app.stream("BATCH")

    @broker.subscriber(f"{app.tag}.batch", stream=stream, durable="workers", pull_sub=PullSub(timeout=0.1, batch=True))
    async def handle(bodies: list[str]) -> None:
        app.handled.extend(bodies)

    async def drive() -> None:
        await plain.publish("hi", f"{app.tag}.batch", stream=stream.name)
        await until(lambda: len(app.handled) == 1)
        await app.settled(stream.name, 1)

    return drive


async def both_runs(js_server: Any, connect: Any, scenario: Scenario) -> tuple[list[list[Row]], list[list[Row]]]:
    """The traces of ``scenario`` with the middleware, without and with this instrumentation (the app
    behaves the same)."""
    js = (await connect(js_server.url)).jetstream()
    base, base_tel = await run(js_server.url, js, scenario, ours=False, middleware=True)
    app, tel = await run(js_server.url, js, scenario, ours=True, middleware=True)
    assert app.handled == base.handled == ["hi"]
    assert app.outcome == base.outcome
    return forest(base_tel.spans(), rename=base.rename), forest(tel.spans(), rename=app.rename)


@pytest.mark.parametrize(
    ("scenario", "alone", "together"),
    [
        # the message carries our publish span's context: the middleware parents its process span on
        # it instead of making a consumer-side create span
        (
            producer_without_middleware,
            [[("app.in create", C, None, ()), ("app.in process", C, "app.in create", ())]],
            [
                [
                    ("publish app.in", P, None, ()),
                    ("process app.in", C, "publish app.in", ("publish app.in",)),
                    ("app.in process", C, "publish app.in", ()),
                ]
            ],
        ),
        # a batch's create span is a root either way; it links to the messages' contexts: ours
        (
            batch_without_middleware,
            [[("app.batch create", C, None, ()), ("app.batch process", C, "app.batch create", ())]],
            [
                [
                    ("publish app.batch", P, None, ()),
                    ("ack app_BATCH", CL, "publish app.batch", ("publish app.batch",)),
                ],
                [
                    ("app.batch create", C, None, ("publish app.batch",)),
                    ("app.batch process", C, "app.batch create", ()),
                ],
                [("fetch app_BATCH", CL, None, ("publish app.batch",))],
            ],
        ),
        # the middleware's create span is made in the current context: our process span
        (
            publish_from_a_callback,
            [
                [
                    ("app.out create", P, None, ()),
                    ("app.out publish", P, "app.out create", ()),
                    ("app.out process", C, "app.out create", ()),
                ]
            ],
            [
                [
                    ("publish app.in", P, None, ()),
                    ("process app.in", C, "publish app.in", ("publish app.in",)),
                    ("app.out create", P, "process app.in", ()),
                    ("app.out publish", P, "app.out create", ()),
                    ("publish app.out", CL, "app.out publish", ("app.out create",)),
                    ("process app.out", C, "app.out create", ("app.out create",)),
                    ("app.out process", C, "app.out create", ()),
                ]
            ],
        ),
    ],
    ids=["producer without the middleware", "batch from a producer without it", "publish in a plain callback"],
)
async def test_where_the_middleware_spans_get_ours_as_parent_or_link(
    js_server: Any, connect: Any, scenario: Scenario, alone: list[list[Row]], together: list[list[Row]]
) -> None:
    """The middleware's spans keep their parents and links (the tests above) except where a context
    of ours reaches them: a message sent without the middleware (it carries our publish span's
    context) and a middleware publish made while a span of ours is current."""
    assert await both_runs(js_server, connect, scenario) == (expected_forest(*alone), expected_forest(*together))
