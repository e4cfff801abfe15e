"""A nats-core benchmark worker process (Python 3.13; started by ``benchmarks/run.py``, not by hand).

The same kinds as ``worker.py`` (nats-py), over the next-generation client (``nats.client``,
``nats.jetstream``): ``control`` (never instrumented: ``raw.{op}``, ``floor.publish``), ``unit``
(the same until its ``switch`` instruments with the SDK, sends traffic and uninstruments), ``nosdk``
(``base.{op}`` and ``nosdk.{op}``, instrumented with no provider around each block) and ``sdk``
(hand-written equivalents and the instrumented paths, ``natscore_paths.py``). When the installed
instrumentation does not patch nats-core (``python natscore_worker.py probe`` tells ``run.py``), the
paths that need it are left out and the worker says so (``notes``).

Operations: ``publish``; ``callback`` (``sub.add_callback(cb)``: synchronous, run by the client's
read loop); ``iterator`` (a task reading ``async for msg in sub``); ``request`` (sequential
``nc.request`` against a task that reads its subscription with ``async for`` and publishes to
``msg.reply``: nats-core messages have no ``respond()``); ``js_publish`` (``js.publish`` to a
memory-storage stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import nats.jetstream
from nats.client import connect
from nats.client.errors import NoRespondersError
from protocol import Counter, Elapsed, Worker, clock, serve, since

SUBJECT = "bench.core.publish"
CB_SUBJECT = "bench.core.callback"
IT_SUBJECT = "bench.core.iterator"
REQ_SUBJECT = "bench.core.request"
JS_SUBJECT = "bench.core.js"
STREAM = "BENCHCORE"
PAYLOAD = b"x" * 128
RESPONSE = b"ok"
WARMUP = 20  # untimed messages before each block (after subscribing, instrumenting)
# Round trips: nats-core flushes a connection's writes at most every 5 ms (``_min_flush_interval``),
# so a sequential request or JetStream publish takes 3-4 ms of wall time; fewer of them warm a block up.
WARMUP_ROUND_TRIPS = 5

OPERATIONS = ("publish", "callback", "iterator", "request", "js_publish")
TRACEPARENT_HEADERS = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
DISTS = (
    "nats-core",
    "nats-jetstream",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation",
    "opentelemetry-instrumentation-nats",
    "wrapt",
)


class Clients:
    """The connections every path uses: a publisher/requester and a subscriber/responder."""

    nc: Any
    sc: Any
    js: Any

    async def connect(self, url: str) -> None:
        self.nc = await connect(url)
        self.sc = await connect(url)
        self.js = nats.jetstream.new(self.nc)
        with contextlib.suppress(Exception):  # left over from an earlier run
            await self.js.delete_stream(STREAM)
        await self.js.create_stream(name=STREAM, subjects=[JS_SUBJECT], storage="memory", max_msgs=10_000)

    async def close(self) -> None:
        await self.nc.close()
        await self.sc.close()


Fn = Callable[[Clients, int], Awaitable[Elapsed]]
Publish = Callable[[Clients, str], Awaitable[None]]


# --- plain nats-core (raw, instrumented and after uninstrument() run the same code) -------------


async def plain_publish(c: Clients, n: int) -> Elapsed:
    nc = c.nc
    t0 = clock()
    for _ in range(n):
        await nc.publish(SUBJECT, PAYLOAD)
    await nc.flush()
    return since(t0)


async def floor_publish(c: Clients, n: int) -> Elapsed:
    """Raw publish with a constant ``traceparent`` header: what carrying a context costs at least."""
    nc, headers = c.nc, TRACEPARENT_HEADERS
    t0 = clock()
    for _ in range(n):
        await nc.publish(SUBJECT, PAYLOAD, headers=headers)
    await nc.flush()
    return since(t0)


_blocks = itertools.count(1)


def fresh(prefix: str) -> str:
    """A subject of its own for each measured block (see ``worker.fresh``)."""
    return f"{prefix}.{next(_blocks)}"


async def until_delivered(c: Clients, subject: str, counter: Counter, publish: Publish) -> None:
    """Publish probes until the subscription gets one (a fresh subscription's first messages from
    another connection can find no interest yet)."""
    counter.expect(1)
    for _ in range(100):
        await publish(c, subject)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(counter.done.wait()), 0.2)
            return
    raise RuntimeError(f"no message reached the subscription on {subject}")


async def counted(c: Clients, subject: str, n: int, counter: Counter, publish: Publish) -> Elapsed:
    """Probe, warm up, then publish ``n`` messages: the time until ``counter`` has seen all ``n``."""
    await until_delivered(c, subject, counter, publish)
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


Callback = Callable[[Any, str, Counter], Callable[[Any], None]]


async def callback_delivery(c: Clients, n: int, make_callback: Callback, publish: Publish) -> Elapsed:
    """Publish ``n`` messages to a subscription with a (synchronous) callback from ``make_callback``."""
    subject = fresh(CB_SUBJECT)
    counter = Counter()
    sub = await c.sc.subscribe(subject)
    sub.add_callback(make_callback(sub, subject, counter))
    await c.sc.flush()
    try:
        return await counted(c, subject, n, counter, publish)
    finally:
        await sub.unsubscribe()


Consume = Callable[[Any, str, Counter], Awaitable[None]]


async def iterator_delivery(c: Clients, n: int, consume: Consume, publish: Publish) -> Elapsed:
    """Publish ``n`` messages to a subscription that a task reads (``consume``)."""
    subject = fresh(IT_SUBJECT)
    counter = Counter()
    sub = await c.sc.subscribe(subject)
    task = asyncio.create_task(consume(sub, subject, counter))
    await c.sc.flush()
    try:
        return await counted(c, subject, n, counter, publish)
    finally:
        await sub.unsubscribe()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def plain_pub(c: Clients, subject: str) -> None:
    await c.nc.publish(subject, PAYLOAD)


async def plain_callback(c: Clients, n: int) -> Elapsed:
    def make(sub: Any, subject: str, counter: Counter) -> Callable[[Any], None]:
        def cb(msg: Any) -> None:
            counter.tick()

        return cb

    return await callback_delivery(c, n, make, plain_pub)


async def plain_consume(sub: Any, subject: str, counter: Counter) -> None:
    async for _msg in sub:
        counter.tick()


async def plain_iterator(c: Clients, n: int) -> Elapsed:
    return await iterator_delivery(c, n, plain_consume, plain_pub)


Serve = Callable[[Clients, Any, str], Awaitable[None]]
Run = Callable[[Clients, str], Awaitable[None]]


async def until_answered(c: Clients, subject: str, run: Run) -> None:
    """Request (the path's own way) until the responder answers."""
    for _ in range(100):
        try:
            await run(c, subject)
            return
        except (NoRespondersError, TimeoutError, asyncio.TimeoutError):
            await asyncio.sleep(0.01)
    raise RuntimeError(f"no answer on {subject}")


async def responder(c: Clients, n: int, serve_: Serve, run: Run) -> Elapsed:
    """``n`` sequential requests (``run``) to a task reading its subscription (``serve_``)."""
    subject = fresh(REQ_SUBJECT)
    sub = await c.sc.subscribe(subject)
    task = asyncio.create_task(serve_(c, sub, subject))
    await c.sc.flush()
    try:
        await until_answered(c, subject, run)
        for _ in range(WARMUP_ROUND_TRIPS):
            await run(c, subject)
        t0 = clock()
        for _ in range(n):
            await run(c, subject)
        return since(t0)
    finally:
        await sub.unsubscribe()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def plain_serve(c: Clients, sub: Any, subject: str) -> None:
    sc = c.sc
    async for msg in sub:
        await sc.publish(msg.reply, RESPONSE)


async def plain_run(c: Clients, subject: str) -> None:
    await c.nc.request(subject, PAYLOAD, timeout=5)


async def plain_request(c: Clients, n: int) -> Elapsed:
    return await responder(c, n, plain_serve, plain_run)


async def plain_js_publish(c: Clients, n: int) -> Elapsed:
    js = c.js
    for _ in range(WARMUP_ROUND_TRIPS):
        await js.publish(JS_SUBJECT, PAYLOAD)
    t0 = clock()
    for _ in range(n):
        await js.publish(JS_SUBJECT, PAYLOAD)
    return since(t0)


async def warm_publish(c: Clients, fn: Fn, n: int) -> Elapsed:
    """Warm a publish path up (caches, first span) before measuring it."""
    await fn(c, WARMUP)
    return await fn(c, n)


PLAIN: dict[str, Fn] = {
    "publish": plain_publish,
    "callback": plain_callback,
    "iterator": plain_iterator,
    "request": plain_request,
    "js_publish": plain_js_publish,
}


def block(c: Clients, fn: Fn, op: str) -> Callable[[int], Awaitable[Elapsed]]:
    return (lambda n: warm_publish(c, fn, n)) if op == "publish" else (lambda n: fn(c, n))


# --- worker kinds -------------------------------------------------------------------------------


# The method each operation's instrumentation replaces.
PATCH_POINTS = {
    "publish": ("nats.client", "Client", "publish"),
    "callback": ("nats.client.subscription", "Subscription", "add_callback"),
    "iterator": ("nats.client.subscription", "Subscription", "next"),
    "request": ("nats.client", "Client", "request"),
    "js_publish": ("nats.jetstream", "JetStream", "publish"),
}


def patched_operations() -> list[str]:
    """The operations whose method ``instrument()`` replaces (the installed instrumentation may not
    cover all of nats-core yet). Run in a process of its own: it instruments."""
    import importlib

    from opentelemetry.instrumentation.nats import NatsInstrumentor

    def method(point: tuple[str, str, str]) -> Any:
        module, cls, name = point
        return getattr(importlib.import_module(module), cls).__dict__[name]

    originals = {op: method(point) for op, point in PATCH_POINTS.items()}
    instrumentor = NatsInstrumentor()
    instrumentor.instrument()
    try:
        return [op for op, point in PATCH_POINTS.items() if method(point) is not originals[op]]
    finally:
        instrumentor.uninstrument()


def not_patched(missing: list[str]) -> str:
    return (
        "the installed opentelemetry-instrumentation-nats does not instrument nats-core's"
        f" {', '.join(missing)}: their instrumented, no-SDK and after-uninstrument() paths are skipped"
    )


def toggled(c: Clients, fn: Fn, op: str) -> Callable[[int], Awaitable[Elapsed]]:
    """A block instrumented with no SDK: ``instrument()`` before it, ``uninstrument()`` after (untimed)."""
    from opentelemetry.instrumentation.nats import NatsInstrumentor

    run = block(c, fn, op)

    async def measured(n: int) -> Elapsed:
        instrumentor = NatsInstrumentor()
        instrumentor.instrument()
        try:
            return await run(n)
        finally:
            instrumentor.uninstrument()

    return measured


async def make_worker(config: str, url: str, patched: list[str], notes: list[str]) -> Worker:
    clients = Clients()
    await clients.connect(url)
    worker = Worker()
    worker.closers.append(clients.close)
    missing = [op for op in OPERATIONS if op not in patched]
    if missing:
        notes.append(not_patched(missing))
    if config in ("control", "unit"):
        from natscore_paths import warm_up_traffic

        await warm_up_traffic(clients, instrument=False)
        for op, fn in PLAIN.items():
            if config == "control" or op in patched:
                worker.paths[f"raw.{op}"] = block(clients, fn, op)
        instrument = config == "unit"
        worker.commands["switch"] = lambda: warm_up_traffic(clients, instrument=instrument)
        if config == "control":
            worker.paths["floor.publish"] = block(clients, floor_publish, "publish")
    elif config == "nosdk":
        for op in patched:
            worker.paths[f"base.{op}"] = block(clients, PLAIN[op], op)
            worker.paths[f"nosdk.{op}"] = toggled(clients, PLAIN[op], op)
    elif config == "sdk":
        from natscore_paths import add_sdk_paths, check_equivalence

        await check_equivalence(clients, url, patched)
        add_sdk_paths(worker, clients, url, patched)
    else:
        raise SystemExit(f"unknown worker configuration {config!r}")
    return worker


async def main(config: str, url: str, patched: list[str]) -> None:
    notes: list[str] = []

    async def make() -> Worker:
        return await make_worker(config, url, patched, notes)

    await serve(make, DISTS, notes)


if __name__ == "__main__":
    if sys.argv[1] == "probe":  # run.py asks once, so that no control process ever instruments
        print(json.dumps({"patched": patched_operations()}))
    else:
        asyncio.run(main(sys.argv[1], sys.argv[2], [op for op in sys.argv[3].split(",") if op]))
