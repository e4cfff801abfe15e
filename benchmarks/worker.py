"""One benchmark worker process (started by ``benchmarks/run.py``, not meant to be run by hand).

A worker owns one configuration of the process-wide OpenTelemetry state:

``raw``       nats-py; the SDK and the instrumentation are imported and the same traffic as in
              ``uninst`` is sent first, but nothing is ever instrumented.
``nosdk``     instrumented, no SDK: no tracer or meter provider set (the API's no-op/proxy objects).
``sdk``       the SDK: a tracer provider with an always-off sampler, one sampled with a
              ``BatchSpanProcessor`` and an exporter that discards, a ``MeterProvider`` with a reader.
              Runs the hand-written equivalents (uninstrumented nats-py plus the user's own span,
              inject and metrics code) and the instrumented paths, instrumenting and uninstrumenting
              around each measured block.
``uninst``    instrumented with the SDK, traffic sent, then ``uninstrument()``: measures raw paths.

Protocol (JSON lines): the worker prints ``{"ready": [paths]}``; then for each line
``{"path": p, "n": n}`` on stdin it measures ``n`` messages of path ``p`` and prints
``{"path": p, "wall": per-message wall seconds, "cpu": per-message CPU seconds}``. An empty line or
EOF ends it. CPU time is the process's (``time.process_time()``: every thread, the batch span
processor's export included; the SDK worker flushes its span processors before the clocks stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import nats
import nats.errors

SUBJECT = "bench.publish"
CB_SUBJECT = "bench.callback"
REQ_SUBJECT = "bench.request"
JS_SUBJECT = "bench.js"
STREAM = "BENCH"
PAYLOAD = b"x" * 128
RESPONSE = b"ok"
WARMUP = 50

OPERATIONS = ("publish", "callback", "request", "js_publish")
# The floor of carrying a context: raw nats-py with a constant W3C ``traceparent`` header.
TRACEPARENT_HEADERS = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}

# Per-message cost: (wall seconds, CPU seconds of this process, all threads).
Elapsed = tuple[float, float]
# Called before the clocks stop (the SDK worker: flush its span processors, so that exporting the
# block's spans is counted in the block).
BEFORE_STOP: list[Callable[[], object]] = []


def clock() -> Elapsed:
    return time.perf_counter(), time.process_time()


def since(t0: Elapsed) -> Elapsed:
    for fn in BEFORE_STOP:
        fn()
    return time.perf_counter() - t0[0], time.process_time() - t0[1]


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


class Counter:
    """Counts delivered messages; ``done`` is set when ``target`` have been seen."""

    def __init__(self) -> None:
        self.seen = 0
        self.target = 0
        self.done = asyncio.Event()

    def expect(self, n: int) -> None:
        self.seen = 0
        self.target = n
        self.done.clear()

    def tick(self) -> None:
        self.seen += 1
        if self.seen == self.target:
            self.done.set()


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


# --- workers ------------------------------------------------------------------------------------


class Worker:
    def __init__(self, clients: Clients) -> None:
        self.c = clients
        self.paths: dict[str, Callable[[int], Awaitable[Elapsed]]] = {}

    async def measure(self, path: str, n: int) -> Elapsed:
        # Every block starts from a clean heap, so that a collection of garbage left by an earlier
        # block (or by instrument()/uninstrument()) does not land in this block's time.
        gc.collect()
        wall, cpu = await self.paths[path](n)
        return wall / n, cpu / n

    async def close(self) -> None:
        await self.c.close()


def plain_paths(worker: Worker, prefix: str) -> None:
    for op, fn in PLAIN.items():
        worker.paths[f"{prefix}.{op}"] = (
            (lambda n, fn=fn: warm_publish(worker.c, fn, n)) if op == "publish" else (lambda n, fn=fn: fn(worker.c, n))
        )


async def make_worker(config: str, url: str) -> Worker:
    clients = Clients()
    await clients.connect(url)
    worker = Worker(clients)
    if config == "raw":
        # the same process footprint and traffic as the ``uninst`` worker, without instrumenting
        from sdk_paths import warm_up_traffic

        await warm_up_traffic(clients, instrument=False)
        plain_paths(worker, "raw")
        worker.paths["floor.publish"] = lambda n: warm_publish(worker.c, floor_publish, n)
    elif config == "nosdk":
        from opentelemetry.instrumentation.nats import NatsInstrumentor

        NatsInstrumentor().instrument()
        plain_paths(worker, "nosdk")
    elif config == "uninst":
        from sdk_paths import warm_up_traffic

        await warm_up_traffic(clients, instrument=True)
        plain_paths(worker, "uninst")
    elif config == "sdk":
        from sdk_paths import add_sdk_paths, check_equivalence

        await check_equivalence(clients)
        add_sdk_paths(worker)
    else:
        raise SystemExit(f"unknown worker configuration {config!r}")
    return worker


async def main(config: str, url: str) -> None:
    worker = await make_worker(config, url)
    loop = asyncio.get_running_loop()
    print(json.dumps({"ready": sorted(worker.paths)}), flush=True)
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line.strip():
                break
            cmd = json.loads(line)
            wall, cpu = await worker.measure(cmd["path"], cmd["n"])
            print(json.dumps({"path": cmd["path"], "wall": wall, "cpu": cpu}), flush=True)
    finally:
        await worker.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
