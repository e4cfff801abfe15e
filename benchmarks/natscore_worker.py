"""A nats-core benchmark worker process (Python 3.13; started by ``benchmarks/run.py``, not by hand).

The same kinds as ``worker.py`` (nats-py), over the next-generation client (``nats.client``,
``nats.jetstream``): ``unit`` (two client sets: ``raw.{op}`` and ``floor.publish`` on one that is never
used while instrumented, ``uninst.{op}`` on one connected, subscribed and used under instrumentation
with the SDK at start-up and then uninstrumented), ``nosdk`` (``base.{op}`` and ``nosdk.{op}``,
instrumented with no provider around each block) and ``sdk`` (hand-written equivalents and the
instrumented paths, ``natscore_paths.py``). When the installed instrumentation does not patch
nats-core (``python natscore_worker.py probe`` tells ``run.py``), the paths that need it are left
out and the worker says so (``notes``).

Operations: ``publish``; ``callback`` (``sub.add_callback(cb)``: synchronous, run by the client's
read loop); ``iterator`` (a task reading ``async for msg in sub``); ``request`` (sequential
``nc.request`` against a task that reads its subscription with ``async for`` and publishes to
``msg.reply``: nats-core messages have no ``respond()``); ``js_publish`` (``js.publish`` to a
memory-storage stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import common
import nats.jetstream
from common import RESPONSE
from nats.client import connect
from nats.client.errors import NoRespondersError
from protocol import Counter, Elapsed, Worker, serve

SUBJECT = "bench.core.publish"
CB_SUBJECT = "bench.core.callback"
IT_SUBJECT = "bench.core.iterator"
REQ_SUBJECT = "bench.core.request"
JS_SUBJECT = "bench.core.js"
STREAM = "BENCHCORE"
# Round trips: nats-core flushes a connection's writes at most every 5 ms (``_min_flush_interval``),
# so a sequential request or JetStream publish takes 3-4 ms of wall time; fewer of them warm a block up.
WARMUP_ROUND_TRIPS = 5

OPERATIONS = ("publish", "callback", "iterator", "request", "js_publish")
DISTS = (
    "nats-core",
    "nats-jetstream",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation",
    "opentelemetry-instrumentation-nats",
    "wrapt",
)
# What a request to a responder that is not listening yet raises.
NOT_ANSWERED = (NoRespondersError, TimeoutError, asyncio.TimeoutError)


class Clients(common.ClientSet):
    subject, js_subject, stream = SUBJECT, JS_SUBJECT, STREAM
    round_trip_warmup, not_answered = WARMUP_ROUND_TRIPS, NOT_ANSWERED

    async def open(self, url: str) -> Any:
        return await connect(url)

    def jetstream(self, nc: Any) -> Any:
        return nats.jetstream.new(nc)

    async def create_stream(self) -> None:
        await self.js.create_stream(name=self.stream, subjects=[self.js_subject], storage="memory", max_msgs=10_000)


# --- plain nats-core (raw, instrumented and after uninstrument() run the same code) -------------


async def stop(sub: Any, task: asyncio.Task[None] | None = None) -> None:
    """Unsubscribe, and end the task that reads the subscription."""
    await sub.unsubscribe()
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


Callback = Callable[[Any, str, Counter], Callable[[Any], None]]


def with_callback(c: Clients, make_callback: Callback, made: list[Any] | None = None) -> common.Subscribe:
    """Subscriptions with a (synchronous) callback from ``make_callback`` (appended to ``made``)."""

    async def subscribe(subject: str, counter: Counter) -> common.Close:
        sub = await c.sc.subscribe(subject)
        sub.add_callback(make_callback(sub, subject, counter))
        if made is not None:
            made.append(sub)
        return lambda: stop(sub)

    return subscribe


def drained(sub: Any, run: common.Path) -> common.Path:
    """``run``, then (untimed) read what the callback subscription ``sub`` also queued: nats-core
    queues every message for ``next()``, callbacks or not, and once 65 536 are pending it drops
    each further one and logs it as a slow consumer. (A subscription made for one block is
    unsubscribed before that.)"""

    async def measured(n: int) -> Elapsed:
        try:
            return await run(n)
        finally:
            while sub.pending[0]:
                await sub.next()

    return measured


Consume = Callable[[Any, str, Counter], Coroutine[Any, Any, None]]


def with_reader(c: Clients, consume: Consume) -> common.Subscribe:
    """Subscriptions that a task reads (``consume``)."""

    async def subscribe(subject: str, counter: Counter) -> common.Close:
        sub = await c.sc.subscribe(subject)
        task = asyncio.create_task(consume(sub, subject, counter))
        return lambda: stop(sub, task)

    return subscribe


def with_responder(c: Clients, respond: Callable[[Clients, Any, str], Coroutine[Any, Any, None]]) -> common.Serve:
    """Responders: a task reading a subscription (``respond``)."""

    async def start(subject: str) -> common.Close:
        sub = await c.sc.subscribe(subject)
        task = asyncio.create_task(respond(c, sub, subject))
        return lambda: stop(sub, task)

    return start


def plain_make_callback(sub: Any, subject: str, counter: Counter) -> Callable[[Any], None]:
    def cb(msg: Any) -> None:
        counter.tick()

    return cb


async def plain_callback(c: Clients, n: int) -> Elapsed:
    return await common.delivery(c, CB_SUBJECT, n, with_callback(c, plain_make_callback), common.plain_pub)


async def plain_consume(sub: Any, subject: str, counter: Counter) -> None:
    async for _msg in sub:
        counter.tick()


async def plain_iterator(c: Clients, n: int) -> Elapsed:
    return await common.delivery(c, IT_SUBJECT, n, with_reader(c, plain_consume), common.plain_pub)


async def plain_respond(c: Clients, sub: Any, subject: str) -> None:
    sc = c.sc
    async for msg in sub:
        await sc.publish(msg.reply, RESPONSE)


async def plain_request(c: Clients, n: int) -> Elapsed:
    start = with_responder(c, plain_respond)
    return await common.round_trips(c, REQ_SUBJECT, n, start, common.plain_run)


PLAIN: dict[str, common.Fn] = {
    "publish": common.plain_publish,
    "callback": plain_callback,
    "iterator": plain_iterator,
    "request": plain_request,
    "js_publish": common.plain_js_publish,
}


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


async def open_set(worker: Worker, url: str) -> tuple[Clients, dict[str, common.Path]]:
    """A unit worker's client set and its paths. Long-lived, as in an application: the connections,
    the JetStream context, the callback subscription (its callback added with ``add_callback``), the
    subscription an iterator task reads and the responder task's subscription are made here once
    (for the switched set: while instrumented, so the callback is the one the instrumented
    ``add_callback`` wrapped) and every block of the path goes through them."""
    c = Clients()
    await c.connect(url)
    made: list[Any] = []
    callback = await common.Delivery.open(
        c, common.fresh(CB_SUBJECT), with_callback(c, plain_make_callback, made), common.plain_pub
    )
    iterator = await common.Delivery.open(c, common.fresh(IT_SUBJECT), with_reader(c, plain_consume), common.plain_pub)
    start = with_responder(c, plain_respond)
    responder = await common.RoundTrips.open(c, common.fresh(REQ_SUBJECT), start, common.plain_run)
    worker.closers += [callback.close, iterator.close, responder.close, c.close]
    paths = {
        "publish": common.block(c, common.plain_publish, "publish"),
        "callback": drained(made[0], callback.measure),
        "iterator": iterator.measure,
        "request": responder.measure,
        "js_publish": common.block(c, common.plain_js_publish, "js_publish"),
    }
    return c, paths


async def make_worker(kind: str, url: str, patched: list[str], notes: list[str]) -> Worker:
    missing = [op for op in OPERATIONS if op not in patched]
    if missing:
        notes.append(not_patched(missing))

    async def sdk(worker: Worker, clients: common.ClientSet) -> None:
        from natscore_paths import add_sdk_paths, check_equivalence

        assert isinstance(clients, Clients)
        await check_equivalence(clients, url, patched)
        add_sdk_paths(worker, clients, url, patched)

    return await common.make_worker(kind, url, Clients, PLAIN, patched, lambda w: lambda: open_set(w, url), sdk)


async def main(kind: str, url: str, patched: list[str]) -> None:
    notes: list[str] = []

    async def make() -> Worker:
        return await make_worker(kind, url, patched, notes)

    await serve(make, DISTS, notes)


if __name__ == "__main__":
    if sys.argv[1] == "probe":  # run.py asks once, so that no worker has to instrument to find out
        print(json.dumps({"patched": patched_operations()}))
    else:
        asyncio.run(main(sys.argv[1], sys.argv[2], [op for op in sys.argv[3].split(",") if op]))
