"""A nats-py benchmark worker process (started by ``benchmarks/run.py``, not meant to be run by hand).

A worker owns one configuration of the process-wide OpenTelemetry state (``run.py`` says why):

``unit``   two sets of nats-py clients, ``raw`` and ``switched``. At start-up, before it reports
           ready, it instruments with the SDK, connects the switched set and makes its subscriptions,
           sends traffic on every path through it, and calls ``uninstrument()``; the raw set is never
           used while instrumented (``common.unit_worker``). Paths: ``raw.{op}`` and ``floor.publish``
           (raw publish with a constant ``traceparent`` header) on the raw set, ``uninst.{op}`` on the
           switched set.
``nosdk``  ``base.{op}`` (plain nats-py) and ``nosdk.{op}``: ``instrument()`` with no tracer or meter
           provider set (the API's no-op/proxy objects) before the block, ``uninstrument()`` after it.
``sdk``    the SDK: hand-written equivalents and the instrumented paths (``sdk_paths.py``).

The protocol and the clocks are in ``protocol.py``; what the nats-core worker shares, in ``common.py``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import Any

import common
import nats
import nats.errors
from common import RESPONSE, WARMUP
from protocol import Counter, Elapsed, Worker, serve

SUBJECT = "bench.publish"
CB_SUBJECT = "bench.callback"
REQ_SUBJECT = "bench.request"
JS_SUBJECT = "bench.js"
STREAM = "BENCH"

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
# What a request to a responder that is not listening yet raises.
NOT_ANSWERED = (nats.errors.NoRespondersError, nats.errors.TimeoutError)


class Clients(common.ClientSet):
    subject, js_subject, stream = SUBJECT, JS_SUBJECT, STREAM
    round_trip_warmup, not_answered = WARMUP, NOT_ANSWERED

    async def open(self, url: str) -> Any:
        return await nats.connect(url)

    def jetstream(self, nc: Any) -> Any:
        return nc.jetstream()

    async def create_stream(self) -> None:
        await self.js.add_stream(name=self.stream, subjects=[self.js_subject], storage="memory", max_msgs=10_000)


# --- plain nats-py (raw, instrumented and after uninstrument() run the same code) ---------------


def plain_subscriber(c: Clients) -> common.Subscribe:
    """Subscriptions whose callback counts the messages."""

    async def subscribe(subject: str, counter: Counter) -> common.Close:
        async def cb(msg: Any) -> None:
            counter.tick()

        sub = await c.sc.subscribe(subject, cb=cb)
        return sub.unsubscribe

    return subscribe


async def plain_callback(c: Clients, n: int) -> Elapsed:
    return await common.delivery(c, CB_SUBJECT, n, plain_subscriber(c), common.plain_pub)


async def _plain_respond(msg: Any) -> None:
    await msg.respond(RESPONSE)


def plain_responder(c: Clients) -> common.Serve:
    """Responders: a subscription whose callback calls ``msg.respond``."""

    async def start(subject: str) -> common.Close:
        sub = await c.sc.subscribe(subject, cb=_plain_respond)
        return sub.unsubscribe

    return start


async def plain_request(c: Clients, n: int) -> Elapsed:
    return await common.round_trips(c, REQ_SUBJECT, n, plain_responder(c), common.plain_run)


PLAIN: dict[str, common.Fn] = {
    "publish": common.plain_publish,
    "callback": plain_callback,
    "request": plain_request,
    "js_publish": common.plain_js_publish,
}


# --- worker kinds -------------------------------------------------------------------------------


async def open_set(worker: Worker, url: str) -> tuple[Clients, dict[str, common.Path]]:
    """A unit worker's client set and its paths. Long-lived, as in an application: the connections,
    the JetStream context, the callback subscription and the responder are made here once (for the
    switched set: while instrumented, so the callbacks are the ones the instrumented ``subscribe``
    wrapped) and every block of the path goes through them."""
    c = Clients()
    await c.connect(url)
    callback = await common.Delivery.open(c, common.fresh(CB_SUBJECT), plain_subscriber(c), common.plain_pub)
    responder = await common.RoundTrips.open(c, common.fresh(REQ_SUBJECT), plain_responder(c), common.plain_run)
    worker.closers += [callback.close, responder.close, c.close]
    paths = {
        "publish": common.block(c, common.plain_publish, "publish"),
        "callback": callback.measure,
        "request": responder.measure,
        "js_publish": common.block(c, common.plain_js_publish, "js_publish"),
    }
    return c, paths


async def sdk(worker: Worker, clients: common.ClientSet) -> None:
    from sdk_paths import add_sdk_paths, check_equivalence

    assert isinstance(clients, Clients)
    await check_equivalence(clients)
    add_sdk_paths(worker, clients)


def make_worker(kind: str, url: str) -> Awaitable[Worker]:
    return common.make_worker(kind, url, Clients, PLAIN, OPERATIONS, lambda w: lambda: open_set(w, url), sdk)


if __name__ == "__main__":
    asyncio.run(serve(lambda: make_worker(sys.argv[1], sys.argv[2]), DISTS))
