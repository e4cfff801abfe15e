"""A nats-py benchmark worker process (started by ``benchmarks/run.py``, not meant to be run by hand).

A worker owns one configuration of the process-wide OpenTelemetry state (``run.py`` says why):

``control``   nats-py, never instrumented: ``raw.{op}`` and ``floor.publish``. The SDK and the
              instrumentation are imported and the same traffic as in ``unit`` is sent, uninstrumented.
``unit``      the same paths and history as ``control`` until its ``switch`` command instruments with
              the SDK, sends traffic on every path and calls ``uninstrument()``; ``run.py`` compares its
              blocks before and after the switch (each against the control, measured in alternation).
``nosdk``     ``base.{op}`` (plain nats-py) and ``nosdk.{op}``: ``instrument()`` with no tracer or meter
              provider set (the API's no-op/proxy objects) before the block, ``uninstrument()`` after it.
``sdk``       the SDK: hand-written equivalents and the instrumented paths (``sdk_paths.py``).

The protocol and the clocks are in ``protocol.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import nats
import nats.errors
from protocol import Counter, Elapsed, Worker, clock, serve, since

SUBJECT = "bench.publish"
CB_SUBJECT = "bench.callback"
REQ_SUBJECT = "bench.request"
JS_SUBJECT = "bench.js"
STREAM = "BENCH"
PAYLOAD = b"x" * 128
RESPONSE = b"ok"
WARMUP = 20  # untimed messages before each block (after subscribing, instrumenting)

OPERATIONS = ("publish", "callback", "request", "js_publish")
# Reported with the results.
DISTS = (
    "nats-py",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation",
    "opentelemetry-instrumentation-nats",
    "wrapt",
)
# The floor of carrying a context: raw nats-py with a constant W3C ``traceparent`` header.
TRACEPARENT_HEADERS = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}


class Clients:
    """The connections every path uses: a publisher/requester and a subscriber/responder."""

    nc: Any
    sc: Any
    js: Any

    async def connect(self, url: str) -> None:
        self.nc = await nats.connect(url)
        self.sc = await nats.connect(url)
        self.js = self.nc.jetstream()
        with contextlib.suppress(Exception):  # left over from an earlier run
            await self.js.delete_stream(STREAM)
        await self.js.add_stream(name=STREAM, subjects=[JS_SUBJECT], storage="memory", max_msgs=10_000)

    async def close(self) -> None:
        await self.nc.close()
        await self.sc.close()


# --- plain nats-py (raw, instrumented and after uninstrument() run the same code) ---------------


async def plain_publish(c: Clients, n: int) -> Elapsed:
    nc = c.nc
    t0 = clock()
    for _ in range(n):
        await nc.publish(SUBJECT, PAYLOAD)
    await nc.flush()
    return since(t0)


async def floor_publish(c: Clients, n: int) -> Elapsed:
    """Raw nats-py publish with a constant ``traceparent`` header: what carrying a context costs at least."""
    nc, headers = c.nc, TRACEPARENT_HEADERS
    t0 = clock()
    for _ in range(n):
        await nc.publish(SUBJECT, PAYLOAD, headers=headers)
    await nc.flush()
    return since(t0)


_blocks = itertools.count(1)


def fresh(prefix: str) -> str:
    """A subject of its own for each measured block.

    Re-subscribing on a subject right after unsubscribing from it can lose the next messages
    (nats-server 2.9 sent them to the old subscription id), so blocks never share one."""
    return f"{prefix}.{next(_blocks)}"


async def until_delivered(c: Clients, subject: str, counter: Counter, publish: Publish) -> None:
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


async def until_answered(c: Clients, subject: str, run: Callable[[Clients, str], Awaitable[None]]) -> None:
    """Request (the path's own way) until the responder answers (see :func:`until_delivered`)."""
    for _ in range(100):
        try:
            await run(c, subject)
            return
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            await asyncio.sleep(0.01)
    raise RuntimeError(f"no answer on {subject}")


Subscribe = Callable[[str, Counter], Awaitable[Any]]
Publish = Callable[[Clients, str], Awaitable[None]]


async def delivery(c: Clients, n: int, subscribe: Subscribe, publish: Publish) -> Elapsed:
    """Publish ``n`` messages; the time until the subscription's callback has seen all ``n``."""
    subject = fresh(CB_SUBJECT)
    counter = Counter()
    sub = await subscribe(subject, counter)
    await c.sc.flush()
    try:
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
    finally:
        await sub.unsubscribe()


async def _plain_pub(c: Clients, subject: str) -> None:
    await c.nc.publish(subject, PAYLOAD)


async def plain_callback(c: Clients, n: int) -> Elapsed:
    async def subscribe(subject: str, counter: Counter) -> Any:
        async def cb(msg: Any) -> None:
            counter.tick()

        return await c.sc.subscribe(subject, cb=cb)

    return await delivery(c, n, subscribe, _plain_pub)


async def responder(
    c: Clients, n: int, subscribe: Callable[[str], Awaitable[Any]], run: Callable[[Clients, str], Awaitable[None]]
) -> Elapsed:
    """``n`` sequential requests (``run``) to the responder that ``subscribe`` sets up."""
    subject = fresh(REQ_SUBJECT)
    sub = await subscribe(subject)
    await c.sc.flush()
    try:
        await until_answered(c, subject, run)
        for _ in range(WARMUP):
            await run(c, subject)
        t0 = clock()
        for _ in range(n):
            await run(c, subject)
        return since(t0)
    finally:
        await sub.unsubscribe()


async def _plain_respond(msg: Any) -> None:
    await msg.respond(RESPONSE)


async def _plain_request(c: Clients, subject: str) -> None:
    await c.nc.request(subject, PAYLOAD, timeout=5)


async def plain_request(c: Clients, n: int) -> Elapsed:
    async def subscribe(subject: str) -> Any:
        return await c.sc.subscribe(subject, cb=_plain_respond)

    return await responder(c, n, subscribe, _plain_request)


async def plain_js_publish(c: Clients, n: int) -> Elapsed:
    js = c.js
    for _ in range(WARMUP):
        await js.publish(JS_SUBJECT, PAYLOAD)
    t0 = clock()
    for _ in range(n):
        await js.publish(JS_SUBJECT, PAYLOAD)
    return since(t0)


PLAIN: dict[str, Callable[[Clients, int], Awaitable[Elapsed]]] = {
    "publish": plain_publish,
    "callback": plain_callback,
    "request": plain_request,
    "js_publish": plain_js_publish,
}


async def warm_publish(c: Clients, fn: Callable[[Clients, int], Awaitable[Elapsed]], n: int) -> Elapsed:
    """Warm a publish path up (caches, first span) before measuring it."""
    await fn(c, WARMUP)
    return await fn(c, n)


# --- worker kinds -------------------------------------------------------------------------------


def plain_paths(worker: Worker, c: Clients, prefix: str) -> None:
    for op, fn in PLAIN.items():
        worker.paths[f"{prefix}.{op}"] = (
            (lambda n, fn=fn: warm_publish(c, fn, n)) if op == "publish" else (lambda n, fn=fn: fn(c, n))
        )


def toggled(
    c: Clients, fn: Callable[[Clients, int], Awaitable[Elapsed]], warm: bool
) -> Callable[[int], Awaitable[Elapsed]]:
    """A block of ``fn`` instrumented with no SDK: ``instrument()`` before it, ``uninstrument()`` after (untimed)."""
    from opentelemetry.instrumentation.nats import NatsInstrumentor

    async def run(n: int) -> Elapsed:
        instrumentor = NatsInstrumentor()
        instrumentor.instrument()
        try:
            return await warm_publish(c, fn, n) if warm else await fn(c, n)
        finally:
            instrumentor.uninstrument()

    return run


async def make_worker(config: str, url: str) -> Worker:
    clients = Clients()
    await clients.connect(url)
    worker = Worker()
    worker.closers.append(clients.close)
    if config in ("control", "unit"):
        # the same process footprint and traffic in both; the unit's switch instruments it
        from sdk_paths import warm_up_traffic

        await warm_up_traffic(clients, instrument=False)
        plain_paths(worker, clients, "raw")
        instrument = config == "unit"
        worker.commands["switch"] = lambda: warm_up_traffic(clients, instrument=instrument)
        if config == "control":
            worker.paths["floor.publish"] = lambda n: warm_publish(clients, floor_publish, n)
    elif config == "nosdk":
        plain_paths(worker, clients, "base")
        for op, fn in PLAIN.items():
            worker.paths[f"nosdk.{op}"] = toggled(clients, fn, op == "publish")
    elif config == "sdk":
        from sdk_paths import add_sdk_paths, check_equivalence

        await check_equivalence(clients)
        add_sdk_paths(worker, clients)
    else:
        raise SystemExit(f"unknown worker configuration {config!r}")
    return worker


if __name__ == "__main__":
    asyncio.run(serve(lambda: make_worker(sys.argv[1], sys.argv[2]), DISTS))
