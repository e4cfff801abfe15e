"""One benchmark worker process (started by ``benchmarks/run.py``, not meant to be run by hand).

A worker owns one configuration of the process-wide OpenTelemetry state:

``raw``       nats-py only; the instrumentation is never imported.
``nosdk``     instrumented, no SDK: no tracer or meter provider set (the API's no-op/proxy objects).
``sdk``       the SDK: a tracer provider with an always-off sampler, one sampled with a
              ``BatchSpanProcessor`` and an exporter that discards, a ``MeterProvider`` with a reader.
              Runs the hand-written equivalents (uninstrumented nats-py plus the user's own span,
              inject and metrics code) and the instrumented paths, instrumenting and uninstrumenting
              around each measured block.
``uninst``    instrumented with the SDK, traffic sent, then ``uninstrument()``: measures raw paths.

Protocol (JSON lines): the worker prints ``{"ready": [paths]}``; then for each line
``{"path": p, "n": n}`` on stdin it measures ``n`` messages of path ``p`` and prints
``{"path": p, "seconds": per-message seconds}``. An empty line or EOF ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import nats

SUBJECT = "bench.publish"
CB_SUBJECT = "bench.callback"
REQ_SUBJECT = "bench.request"
JS_SUBJECT = "bench.js"
STREAM = "BENCH"
PAYLOAD = b"x" * 128
RESPONSE = b"ok"
WARMUP = 50

OPERATIONS = ("publish", "callback", "request", "js_publish")


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


async def plain_publish(c: Clients, n: int) -> float:
    nc = c.nc
    t0 = time.perf_counter()
    for _ in range(n):
        await nc.publish(SUBJECT, PAYLOAD)
    await nc.flush()
    return time.perf_counter() - t0


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


async def delivery(c: Clients, n: int, subscribe: Callable[[Counter], Awaitable[Any]], publish: Any) -> float:
    """Publish ``n`` messages; the time until the subscription's callback has seen all ``n``."""
    counter = Counter()
    sub = await subscribe(counter)
    await c.sc.flush()
    try:
        counter.expect(WARMUP)
        for _ in range(WARMUP):
            await publish(c, CB_SUBJECT)
        await asyncio.wait_for(counter.done.wait(), 30)
        counter.expect(n)
        t0 = time.perf_counter()
        for _ in range(n):
            await publish(c, CB_SUBJECT)
        await asyncio.wait_for(counter.done.wait(), 60)
        return time.perf_counter() - t0
    finally:
        await sub.unsubscribe()


async def _plain_pub(c: Clients, subject: str) -> None:
    await c.nc.publish(subject, PAYLOAD)


async def plain_callback(c: Clients, n: int) -> float:
    async def subscribe(counter: Counter) -> Any:
        async def cb(msg: Any) -> None:
            counter.tick()

        return await c.sc.subscribe(CB_SUBJECT, cb=cb)

    return await delivery(c, n, subscribe, _plain_pub)


async def responder(c: Clients, n: int, subscribe: Callable[[], Awaitable[Any]], run: Any) -> float:
    """``n`` sequential requests (``run``) to the responder that ``subscribe`` sets up."""
    sub = await subscribe()
    await c.sc.flush()
    try:
        for _ in range(WARMUP):
            await run(c)
        t0 = time.perf_counter()
        for _ in range(n):
            await run(c)
        return time.perf_counter() - t0
    finally:
        await sub.unsubscribe()


async def _plain_respond(msg: Any) -> None:
    await msg.respond(RESPONSE)


async def _plain_request(c: Clients) -> None:
    await c.nc.request(REQ_SUBJECT, PAYLOAD, timeout=5)


async def plain_request(c: Clients, n: int) -> float:
    async def subscribe() -> Any:
        return await c.sc.subscribe(REQ_SUBJECT, cb=_plain_respond)

    return await responder(c, n, subscribe, _plain_request)


async def plain_js_publish(c: Clients, n: int) -> float:
    js = c.js
    for _ in range(WARMUP):
        await js.publish(JS_SUBJECT, PAYLOAD)
    t0 = time.perf_counter()
    for _ in range(n):
        await js.publish(JS_SUBJECT, PAYLOAD)
    return time.perf_counter() - t0


PLAIN: dict[str, Callable[[Clients, int], Awaitable[float]]] = {
    "publish": plain_publish,
    "callback": plain_callback,
    "request": plain_request,
    "js_publish": plain_js_publish,
}


async def warm_publish(c: Clients, fn: Callable[[Clients, int], Awaitable[float]], n: int) -> float:
    """Warm a publish path up (caches, first span) before measuring it."""
    await fn(c, WARMUP)
    return await fn(c, n)


# --- workers ------------------------------------------------------------------------------------


class Worker:
    def __init__(self, clients: Clients) -> None:
        self.c = clients
        self.paths: dict[str, Callable[[int], Awaitable[float]]] = {}

    async def measure(self, path: str, n: int) -> float:
        return await self.paths[path](n) / n

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
        plain_paths(worker, "raw")
    elif config == "nosdk":
        from opentelemetry.instrumentation.nats import NatsInstrumentor

        NatsInstrumentor().instrument()
        plain_paths(worker, "nosdk")
    elif config == "uninst":
        from sdk_paths import instrumented_traffic

        await instrumented_traffic(clients)
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
            seconds = await worker.measure(cmd["path"], cmd["n"])
            print(json.dumps({"path": cmd["path"], "seconds": seconds}), flush=True)
    finally:
        await worker.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
