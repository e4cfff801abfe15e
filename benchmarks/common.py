"""What both families' benchmark code shares (``worker.py`` and ``sdk_paths.py`` for nats-py,
``natscore_worker.py`` and ``natscore_paths.py`` for nats-core).

Imports no NATS client: the two families' workers run on different Python versions (nats-py on
3.11, nats-core on 3.13) with different clients, and pass their own clients in (``ClientSet``: how
each connects, makes a JetStream context and creates its stream). What is here uses only the calls
both clients spell alike (``nc.publish``, ``nc.flush``, ``nc.request``, ``js.publish``,
``js.delete_stream``, ``close``): the plain paths, the timing of delivery and round trips, the
instrumented blocks, the worker kinds (``make_worker``, ``unit_worker``), the SDK worker's paths,
the hand-written code both families write alike (``HandWrittenBase``), the discarding exporter, and
the equivalence check with the shapes of spans and metric streams it compares. The process and its
clocks are in ``protocol.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

from opentelemetry.metrics import Meter
from opentelemetry.propagate import inject
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Histogram, InMemoryMetricReader, Sum
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, SpanKind, Tracer, get_current_span
from protocol import BEFORE_STOP, Counter, Elapsed, Path, Worker, clock, since

PAYLOAD = b"x" * 128
RESPONSE = b"ok"
WARMUP = 20  # untimed messages before each block (after subscribing, instrumenting)
# The floor of carrying a context: the raw client with a constant W3C ``traceparent`` header.
TRACEPARENT_HEADERS = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]
SWITCH_MESSAGES = 200  # per path and client set, at the unit worker's start-up

Fn = Callable[[Any, int], Awaitable[Elapsed]]  # a path on given clients: (clients, n)
Close = Callable[[], Awaitable[object]]


class ClientSet:
    """The connections a path uses: a publisher/requester (``nc``, with the JetStream context ``js``)
    and a subscriber/responder (``sc``), and the family's subjects. Each family's ``Clients`` says how
    its client connects, makes a JetStream context and creates the stream."""

    subject: str  # plain publish
    js_subject: str  # JetStream publish (the stream's subject)
    stream: str
    round_trip_warmup: int  # untimed requests or JetStream publishes before a block
    not_answered: tuple[type[BaseException], ...]  # what a request to a responder not listening yet raises
    nc: Any
    sc: Any
    js: Any

    async def open(self, url: str) -> Any:
        raise NotImplementedError

    def jetstream(self, nc: Any) -> Any:
        raise NotImplementedError

    async def create_stream(self) -> None:
        raise NotImplementedError

    async def connect(self, url: str) -> None:
        self.nc = await self.open(url)
        self.sc = await self.open(url)
        self.js = self.jetstream(self.nc)
        with contextlib.suppress(Exception):  # left over from an earlier run (or another worker)
            await self.js.delete_stream(self.stream)
        await self.create_stream()

    async def close(self) -> None:
        await self.nc.close()
        await self.sc.close()


# --- plain paths (raw, instrumented and after uninstrument() run the same code) ------------------


async def publish_loop(nc: Any, subject: str, n: int, headers: dict[str, str] | None = None) -> Elapsed:
    """``n`` raw publishes, then one flush (``headers``: the floor's constant ``traceparent``)."""
    t0 = clock()
    if headers is None:
        for _ in range(n):
            await nc.publish(subject, PAYLOAD)
    else:
        for _ in range(n):
            await nc.publish(subject, PAYLOAD, headers=headers)
    await nc.flush()
    return since(t0)


async def plain_publish(c: ClientSet, n: int) -> Elapsed:
    return await publish_loop(c.nc, c.subject, n)


async def floor_publish(c: ClientSet, n: int) -> Elapsed:
    """Raw publish with a constant ``traceparent`` header: what carrying a context costs at least."""
    return await publish_loop(c.nc, c.subject, n, TRACEPARENT_HEADERS)


async def plain_pub(c: ClientSet, subject: str) -> None:
    """One raw publish (delivery paths)."""
    await c.nc.publish(subject, PAYLOAD)


async def plain_run(c: ClientSet, subject: str) -> None:
    """One raw request (request/reply paths)."""
    await c.nc.request(subject, PAYLOAD, timeout=5)


async def plain_js_publish(c: ClientSet, n: int) -> Elapsed:
    """Untimed, then ``n`` timed sequential JetStream publishes."""
    js, subject = c.js, c.js_subject
    for _ in range(c.round_trip_warmup):
        await js.publish(subject, PAYLOAD)
    t0 = clock()
    for _ in range(n):
        await js.publish(subject, PAYLOAD)
    return since(t0)


async def warm_publish(c: Any, fn: Fn, n: int) -> Elapsed:
    """Warm a publish path up (caches, first span) before measuring it."""
    await fn(c, WARMUP)
    return await fn(c, n)


def block(c: Any, fn: Fn, op: str) -> Path:
    """``fn`` on the clients ``c`` as a measured block (publish paths warmed up first)."""
    return (lambda n: warm_publish(c, fn, n)) if op == "publish" else (lambda n: fn(c, n))


# --- delivery and round trips ---------------------------------------------------------------------

_blocks = itertools.count(1)


def fresh(prefix: str) -> str:
    """A subject of its own for each subscription.

    Re-subscribing on a subject right after unsubscribing from it can lose the next messages
    (nats-server 2.9 sent them to the old subscription id), so subscriptions never share one."""
    return f"{prefix}.{next(_blocks)}"


Publish = Callable[[Any, str], Awaitable[None]]  # (clients, subject): one message
Subscribe = Callable[[str, Counter], Awaitable[Close]]  # subscribes, counting; returns what ends it
Run = Callable[[Any, str], Awaitable[None]]  # (clients, subject): one request, the path's own way
Serve = Callable[[str], Awaitable[Close]]  # starts a responder; returns what ends it


async def until_delivered(c: Any, subject: str, counter: Counter, publish: Publish) -> None:
    """Publish probes until the subscription gets one: even after ``SUB`` and a flush on the
    subscriber's connection, another connection's first messages can find no interest yet
    (about 1 % of fresh subscriptions with nats-server 2.9)."""
    counter.expect(1)
    for _ in range(100):
        await publish(c, subject)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(counter.done.wait()), 0.2)
            return
    raise RuntimeError(f"no message reached the subscription on {subject}")


async def until_answered(c: ClientSet, subject: str, run: Run) -> None:
    """Request until the responder answers (see :func:`until_delivered`)."""
    for _ in range(100):
        try:
            await run(c, subject)
            return
        except c.not_answered:
            await asyncio.sleep(0.01)
    raise RuntimeError(f"no answer on {subject}")


async def started(c: Any, close: Close, ready: Callable[[], Awaitable[None]]) -> Close:
    """A subscription or responder was made (``close`` ends it): flush the subscriber's connection and
    wait until it is ``ready``; ends it if it never is."""
    await c.sc.flush()
    try:
        await ready()
    except BaseException:
        await close()
        raise
    return close


class Delivery:
    """A subscription that counts what it gets, and messages published to it."""

    def __init__(self, c: Any, subject: str, counter: Counter, publish: Publish, close: Close) -> None:
        self.c, self.subject, self.counter, self.publish, self.close = c, subject, counter, publish, close

    @classmethod
    async def open(cls, c: Any, subject: str, subscribe: Subscribe, publish: Publish) -> Delivery:
        """Subscribe (``subscribe``), and probe until messages arrive."""
        counter = Counter()
        close = await started(
            c, await subscribe(subject, counter), lambda: until_delivered(c, subject, counter, publish)
        )
        return cls(c, subject, counter, publish, close)

    async def measure(self, n: int) -> Elapsed:
        """Warm up, then publish ``n`` messages: the time until the subscription has seen all ``n``."""
        c, subject, counter, publish = self.c, self.subject, self.counter, self.publish
        counter.expect(WARMUP)
        for _ in range(WARMUP):
            await publish(c, subject)
        await asyncio.wait_for(counter.done.wait(), 30)
        counter.expect(n)
        t0 = clock()
        for _ in range(n):
            await publish(c, subject)
        await asyncio.wait_for(counter.done.wait(), 60)
        return since(t0)


async def delivery(c: Any, prefix: str, n: int, subscribe: Subscribe, publish: Publish) -> Elapsed:
    """``n`` messages to a subscription of its own (see :func:`fresh`), made for this block."""
    return await once(await Delivery.open(c, fresh(prefix), subscribe, publish), n)


class RoundTrips:
    """A responder, and sequential requests to it."""

    def __init__(self, c: ClientSet, subject: str, run: Run, close: Close) -> None:
        self.c, self.subject, self.run, self.close = c, subject, run, close

    @classmethod
    async def open(cls, c: ClientSet, subject: str, serve: Serve, run: Run) -> RoundTrips:
        """Start the responder (``serve``), and request until it answers."""
        close = await started(c, await serve(subject), lambda: until_answered(c, subject, run))
        return cls(c, subject, run, close)

    async def measure(self, n: int) -> Elapsed:
        """Untimed, then ``n`` timed sequential requests."""
        c, subject, run = self.c, self.subject, self.run
        for _ in range(c.round_trip_warmup):
            await run(c, subject)
        t0 = clock()
        for _ in range(n):
            await run(c, subject)
        return since(t0)


async def round_trips(c: ClientSet, prefix: str, n: int, serve: Serve, run: Run) -> Elapsed:
    """``n`` sequential requests to a responder of its own (see :func:`fresh`), made for this block."""
    return await once(await RoundTrips.open(c, fresh(prefix), serve, run), n)


async def once(made: Delivery | RoundTrips, n: int) -> Elapsed:
    """``n`` messages through a subscription or responder made for this block alone, then end it."""
    try:
        return await made.measure(n)
    finally:
        await made.close()


# --- instrumented blocks and the unit worker's switch --------------------------------------------


def instrumented(run: Path, **options: Any) -> Path:
    """A block of ``run`` instrumented with ``options``: ``instrument()`` before it,
    ``uninstrument()`` after it (both untimed). With no options: no SDK (the API's no-op)."""
    from opentelemetry.instrumentation.nats import NatsInstrumentor

    async def measured(n: int) -> Elapsed:
        instrumentor = NatsInstrumentor()
        instrumentor.instrument(**options)
        try:
            return await run(n)
        finally:
            instrumentor.uninstrument()

    return measured


OpenSet = Callable[[], Awaitable[tuple[ClientSet, dict[str, Path]]]]


async def make_worker(
    kind: str,
    url: str,
    new_clients: Callable[[], ClientSet],
    plain: dict[str, Fn],
    patched: Collection[str],
    open_set: Callable[[Worker], OpenSet],
    sdk: Callable[[Worker, ClientSet], Awaitable[None]],
) -> Worker:
    """A worker of ``kind`` (``worker.py`` says what each holds): ``plain`` are the family's plain
    paths, ``patched`` the operations the instrumentation patches, ``open_set(worker)`` opens a unit
    worker's client set (see :func:`unit_worker`), ``sdk`` adds the SDK worker's paths."""
    worker = Worker()
    if kind == "unit":
        raw = await unit_worker(worker, open_set(worker), patched)
        worker.paths["floor.publish"] = block(raw, floor_publish, "publish")
        return worker
    clients = new_clients()
    await clients.connect(url)
    worker.closers.append(clients.close)
    if kind == "nosdk":
        for op in patched:
            worker.paths[f"base.{op}"] = block(clients, plain[op], op)
            worker.paths[f"nosdk.{op}"] = instrumented(block(clients, plain[op], op))
    elif kind == "sdk":
        await sdk(worker, clients)
    else:
        raise SystemExit(f"unknown worker kind {kind!r}")
    return worker


async def unit_worker(worker: Worker, open_set: OpenSet, patched: Collection[str]) -> ClientSet:
    """Make the unit worker's paths: ``raw.{op}`` and ``uninst.{op}`` (``op`` in ``patched``).

    ``open_set()`` connects a set of clients, makes its long-lived objects (subscriptions,
    responders: an application makes them at start-up) and returns the clients and their paths by
    operation. The ``raw`` set is opened and sent ``SWITCH_MESSAGES`` on every path first, with
    nothing instrumented, and is never used while instrumented. Then the switch: ``instrument()``
    with the SDK (a sampling ``TracerProvider`` with a batch span processor, a ``MeterProvider``),
    the ``switched`` set is opened - its connections, JetStream context and subscriptions are made
    under instrumentation and live through ``uninstrument()``, so whatever the instrumentation
    leaves on a client or a subscription is in the measured path -, ``SWITCH_MESSAGES`` on each of
    its paths, ``uninstrument()``. The tracer provider is shut down afterwards (its export thread is
    the SDK's, not the instrumentation's). Returns the raw clients."""
    from opentelemetry.instrumentation.nats import NatsInstrumentor

    raw, raw_paths = await open_set()
    for run in raw_paths.values():
        await run(SWITCH_MESSAGES)
    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(DiscardExporter()))
    mp = MeterProvider(metric_readers=[InMemoryMetricReader()])
    instrumentor = NatsInstrumentor()
    instrumentor.instrument(tracer_provider=tp, meter_provider=mp)
    try:
        _, switched = await open_set()
        for run in switched.values():
            await run(SWITCH_MESSAGES)
    finally:
        instrumentor.uninstrument()
        tp.shutdown()
    worker.paths.update({f"raw.{op}": run for op, run in raw_paths.items()})
    worker.paths.update({f"uninst.{op}": run for op, run in switched.items() if op in patched})
    return raw


# --- the SDK paths --------------------------------------------------------------------------------


class DiscardExporter(SpanExporter):
    """Accepts every batch and keeps nothing."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def creation_links(ctx: Any) -> list[Link] | None:
    """The link a process span has to the message's creation context (semconv), when there is one."""
    span_ctx = get_current_span(ctx).get_span_context()
    return [Link(span_ctx)] if span_ctx.is_valid else None


def operation(type_: str, name: str, subject: str | None) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "messaging.system.name": "nats",
        "messaging.operation.type": type_,
        "messaging.operation.name": name,
    }
    if subject is not None:
        attrs["messaging.destination.name"] = subject
    return attrs


METRIC_KEYS = (
    "messaging.system.name",
    "messaging.operation.type",
    "messaging.operation.name",
    "messaging.destination.name",
    "server.address",
    "server.port",
)


class HandWrittenBase:
    """Hand-written tracing around the uninstrumented client: what both families write alike
    (publish, publish with metrics, JetStream publish); each family's ``HandWritten`` adds delivery
    and request/reply. ``pub_conn`` and ``sub_conn``: the connection attributes a user would read
    once from each connection; ``ack_sequence``: the client's name of a JetStream ack's sequence."""

    def __init__(
        self,
        tracer: Tracer,
        pub_conn: dict[str, Any],
        sub_conn: dict[str, Any],
        subject: str,
        js_subject: str,
        ack_sequence: str,
        meter: Meter | None = None,
    ) -> None:
        self.tracer = tracer
        self.pub_conn, self.sub_conn = pub_conn, sub_conn
        self.subject, self.js_subject, self.ack_sequence = subject, js_subject, ack_sequence
        self.publish_attrs = {**operation("send", "publish", subject), **pub_conn}
        self.reply_attrs = {
            **operation("send", "publish", None),
            "messaging.destination.temporary": True,
            "messaging.destination.anonymous": True,
            **sub_conn,
        }
        self.js_attrs = {
            **operation("send", "publish", js_subject),
            **pub_conn,
            "messaging.nats.jetstream.subject": js_subject,
        }
        if meter is not None:
            self.duration = meter.create_histogram(
                "messaging.client.operation.duration", unit="s", explicit_bucket_boundaries_advisory=BUCKETS
            )
            self.sent = meter.create_counter("messaging.client.sent.messages", unit="{message}")
            self.sent_bytes = meter.create_counter("messaging.nats.client.sent.bytes", unit="By")
            self.metric_attrs = {k: v for k, v in self.publish_attrs.items() if k in METRIC_KEYS}

    def path(self, op: str) -> Fn:
        fn: Fn = getattr(self, op)
        return fn

    async def publish(self, c: Any, n: int) -> Elapsed:
        tracer, nc, subject, attrs = self.tracer, c.nc, self.subject, self.publish_attrs
        name = f"publish {subject}"
        t0 = clock()
        for _ in range(n):
            with tracer.start_as_current_span(
                name, kind=SpanKind.PRODUCER, attributes={**attrs, "messaging.message.body.size": len(PAYLOAD)}
            ):
                headers: dict[str, str] = {}
                inject(headers)
                await nc.publish(subject, PAYLOAD, headers=headers)
        await nc.flush()
        return since(t0)

    async def publish_with_metrics(self, c: Any, n: int) -> Elapsed:
        tracer, nc, subject, attrs, mattrs = self.tracer, c.nc, self.subject, self.publish_attrs, self.metric_attrs
        duration, sent, sent_bytes = self.duration, self.sent, self.sent_bytes
        name = f"publish {subject}"
        t0 = clock()
        for _ in range(n):
            start = time.perf_counter()
            with tracer.start_as_current_span(
                name, kind=SpanKind.PRODUCER, attributes={**attrs, "messaging.message.body.size": len(PAYLOAD)}
            ):
                headers: dict[str, str] = {}
                inject(headers)
                await nc.publish(subject, PAYLOAD, headers=headers)
            duration.record(time.perf_counter() - start, mattrs)
            sent.add(1, mattrs)
            sent_bytes.add(len(PAYLOAD), mattrs)
        await nc.flush()
        return since(t0)

    async def traced_request(self, c: Any, subject: str, name: str, attrs: dict[str, Any]) -> None:
        """One traced request (``name`` and ``attrs``: built once per subject)."""
        with self.tracer.start_as_current_span(
            name, kind=SpanKind.CLIENT, attributes={**attrs, "messaging.message.body.size": len(PAYLOAD)}
        ) as span:
            headers: dict[str, str] = {}
            inject(headers)
            resp = await c.nc.request(subject, PAYLOAD, timeout=5, headers=headers)
            span.set_attribute("messaging.nats.response.body.size", len(resp.data))

    async def reply(self, sc: Any, msg: Any) -> None:
        """The traced reply a responder sends (a child of the current span)."""
        with self.tracer.start_as_current_span(
            "publish",
            kind=SpanKind.PRODUCER,
            attributes={
                **self.reply_attrs,
                "messaging.destination.name": msg.reply,
                "messaging.message.body.size": len(RESPONSE),
            },
        ):
            headers: dict[str, str] = {}
            inject(headers)
            await sc.publish(msg.reply, RESPONSE, headers=headers)

    async def js_publish(self, c: Any, n: int) -> Elapsed:
        tracer, js, subject, attrs, sequence = self.tracer, c.js, self.js_subject, self.js_attrs, self.ack_sequence
        name = f"publish {subject}"

        async def one() -> None:
            with tracer.start_as_current_span(
                name, kind=SpanKind.PRODUCER, attributes={**attrs, "messaging.message.body.size": len(PAYLOAD)}
            ) as span:
                headers: dict[str, str] = {}
                inject(headers)
                ack = await js.publish(subject, PAYLOAD, headers=headers)
                span.set_attributes(
                    {
                        "messaging.nats.jetstream.stream": ack.stream,
                        "messaging.nats.jetstream.sequence": getattr(ack, sequence),
                        "messaging.nats.jetstream.duplicate": bool(ack.duplicate),
                    }
                )

        for _ in range(c.round_trip_warmup):
            await one()
        t0 = clock()
        for _ in range(n):
            await one()
        return since(t0)


# --- fairness check -------------------------------------------------------------------------------

# Attributes whose values differ per message or per subscription: compared by key only.
VOLATILE = frozenset(
    {
        "messaging.nats.reply_to",
        "messaging.nats.delivered_messages",
        "messaging.nats.pending_messages",
        "messaging.nats.subscription.id",
        "messaging.nats.jetstream.sequence",
    }
)


def _block(value: Any) -> Any:
    """Blocks publish to subjects of their own (``bench.callback.17``): compare them as one."""
    return re.sub(r"^((?:\w+ )?bench\.[\w.]+?)\.\d+$", r"\1.<block>", value) if isinstance(value, str) else value


def shapes(spans: Sequence[ReadableSpan]) -> set[str]:
    """The kinds of span made: ``name kind parent-name links attributes`` (volatile values masked).

    A set: how many of each depends on the readiness probes (see :func:`until_delivered`), and
    failed probes are left out."""
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    out = []
    for s in spans:
        if not s.status.is_ok:  # a readiness probe that found no responder yet
            continue
        attrs = {}
        for k, v in (s.attributes or {}).items():
            volatile = k in VOLATILE or (k == "messaging.destination.name" and str(v).startswith("_INBOX."))
            attrs[k] = "<var>" if volatile else _block(v)
        parent = by_id.get(s.parent.span_id) if s.parent is not None else None
        parent_name = _block(parent.name) if parent else None
        linked = [by_id.get(link.context.span_id) for link in s.links]
        links = [_block(target.name) if target else "?" for target in linked]
        out.append(f"{_block(s.name)} {s.kind.name} parent={parent_name} links={links} {sorted(attrs.items())}")
    return set(out)


def metric_points(reader: InMemoryMetricReader) -> list[str]:
    """The per-operation metric streams (histograms, counters; not the observable gauges and
    up-down counters, which are read from connection state on collection)."""
    data = reader.get_metrics_data()
    out = []
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if not isinstance(m.data, Histogram) and not (isinstance(m.data, Sum) and m.data.is_monotonic):
                    continue
                for p in m.data.data_points:
                    out.append(f"{m.name} {m.unit} {sorted((p.attributes or {}).items())}")
    return sorted(out)


MakeHand = Callable[[Tracer, "Meter | None"], HandWrittenBase]  # a family's hand-written code


def add_sdk_paths(
    worker: Worker,
    c: Any,
    hand: MakeHand,
    plain: dict[str, Fn],
    patched: Collection[str],
    ratio_operations: Collection[str] = (),
) -> None:
    """The SDK worker's paths: ``{off,on}.hand.{op}`` and ``metrics.hand.publish`` (the family's
    hand-written code, ``hand``), and the instrumented ``{off,on}.inst.{op}`` and ``metrics.inst.publish``
    for the ``patched`` operations (the plain paths, ``plain``, instrumented around the block); for
    ``ratio_operations`` also ``ratio.{hand,inst}.{op}``. Samplers: ``off`` always off; ``on``
    everything, batched to a discarding exporter; ``ratio`` ``ParentBased(TraceIdRatioBased(0.01))``,
    the usual production sampler. The sampling providers are flushed before the clocks stop, so that
    a block's spans are exported in the block."""
    tps = {"off": TracerProvider(sampler=ALWAYS_OFF), "on": TracerProvider()}
    if ratio_operations:
        tps["ratio"] = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.01)))
    for sampling, tp in tps.items():
        if sampling != "off":
            tp.add_span_processor(BatchSpanProcessor(DiscardExporter()))
            BEFORE_STOP.append(tp.force_flush)
    mp = MeterProvider(metric_readers=[InMemoryMetricReader()])
    hands = {sampling: hand(tp.get_tracer("bench.hand"), None) for sampling, tp in tps.items()}
    for op in plain:
        for sampling, tp in tps.items():
            if sampling == "ratio" and op not in ratio_operations:
                continue
            worker.paths[f"{sampling}.hand.{op}"] = block(c, hands[sampling].path(op), op)
            if op in patched:
                worker.paths[f"{sampling}.inst.{op}"] = instrumented(block(c, plain[op], op), tracer_provider=tp)
    metrics_hand = hand(tps["on"].get_tracer("bench.hand"), mp.get_meter("bench.hand"))
    worker.paths["metrics.hand.publish"] = block(c, metrics_hand.publish_with_metrics, "publish")
    if "publish" in patched:
        worker.paths["metrics.inst.publish"] = instrumented(
            block(c, plain["publish"], "publish"), tracer_provider=tps["on"], meter_provider=mp
        )


async def check_equivalence(family: str, c: Any, hand: MakeHand, plain: dict[str, Fn], patched: Sequence[str]) -> None:
    """Fail unless each hand-written path makes the same spans (names, kinds, parents, links,
    attributes) as the instrumented one, for the ``patched`` operations; and, when publish is among
    them, the metrics path the same metric streams."""
    for op in patched:
        exported: list[set[str]] = []
        for mode in ("hand", "inst"):
            exporter = InMemorySpanExporter()
            tp = TracerProvider()
            tp.add_span_processor(SimpleSpanProcessor(exporter))
            if mode == "hand":
                await hand(tp.get_tracer("bench.hand"), None).path(op)(c, 3)
            else:
                await instrumented(block(c, plain[op], op), tracer_provider=tp)(3)
            await asyncio.sleep(0.05)
            exported.append(shapes(exporter.get_finished_spans()))
        if not exported[0]:
            raise SystemExit(f"the equivalence check of {family} {op} saw no spans")
        if exported[0] != exported[1]:
            only_hand, only_inst = sorted(exported[0] - exported[1]), sorted(exported[1] - exported[0])
            raise SystemExit(
                f"hand-written {family} {op} is not equivalent:\nonly hand {only_hand}\nonly inst {only_inst}"
            )
    if "publish" not in patched:
        return
    points = []
    for mode in ("hand", "inst"):
        reader = InMemoryMetricReader()
        mp = MeterProvider(metric_readers=[reader])
        tp = TracerProvider()
        if mode == "hand":
            await hand(tp.get_tracer("bench.hand"), mp.get_meter("bench.hand")).publish_with_metrics(c, 3)
        else:
            await instrumented(block(c, plain["publish"], "publish"), tracer_provider=tp, meter_provider=mp)(3)
        points.append(metric_points(reader))
    if points[0] != points[1]:
        raise SystemExit(f"hand-written {family} metrics are not equivalent:\nhand {points[0]}\ninst {points[1]}")
