"""What both families' benchmark code shares (``worker.py`` and ``sdk_paths.py`` for nats-py,
``natscore_worker.py`` and ``natscore_paths.py`` for nats-core).

Imports no NATS client: the two families' workers run on different Python versions (nats-py on
3.11, nats-core on 3.13) with different clients, and pass their own clients in (``ClientSet``: how
each connects, makes a JetStream context and creates its stream). What is here uses only the calls
both clients spell alike (``nc.publish``, ``nc.flush``, ``nc.request``, ``js.publish``,
``js.delete_stream``, ``close``): the plain paths, the timing of delivery and round trips, the
instrumented blocks, the worker kinds (``make_worker``, ``unit_worker``) and the discarding
exporter. The SDK worker's paths, the hand-written code both families write alike and the
equivalence check are in ``handwritten.py``; the process and its clocks in ``protocol.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from protocol import Counter, Elapsed, Path, Worker, clock, since

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


# --- the discarding exporter (the SDK workers', the unit worker's switch, scale.py) ------------


class DiscardExporter(SpanExporter):
    """Accepts every batch and keeps nothing."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass
