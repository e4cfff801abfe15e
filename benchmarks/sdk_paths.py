"""The SDK paths of the benchmark: instrumented nats-py against hand-written equivalents.

The hand-written code is what a careful user would write without this instrumentation: the span
attributes that do not change per message are built once per subject, each message gets
``tracer.start_as_current_span(...)`` with the same name, kind, attributes and links as the instrumented
span, ``propagate.inject`` into a fresh headers dict, and the nats-py call (plus, for the metrics
path, the same instruments recorded with the same attributes). ``check_equivalence`` verifies,
before anything is measured, that both produce the same spans and metric streams. What nats-core's
hand-written code writes alike (publish, JetStream publish, the request and the reply) is in
``handwritten.HandWrittenBase``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import handwritten
from common import PAYLOAD, Close, delivery, round_trips
from handwritten import HandWrittenBase, creation_links, operation
from opentelemetry.metrics import Meter
from opentelemetry.propagate import extract, inject
from opentelemetry.trace import SpanKind, Tracer
from protocol import Counter, Elapsed, Worker
from worker import CB_SUBJECT, JS_SUBJECT, OPERATIONS, PLAIN, REQ_SUBJECT, SUBJECT, Clients

# Re-creating the instrumentation's instruments on the same meter for every measured block logs a
# "created already" warning each time; it is expected here.
logging.getLogger("opentelemetry.sdk.metrics._internal").setLevel(logging.ERROR)

# The reported ParentBased(TraceIdRatioBased(0.01)) paths.
RATIO_OPERATIONS = ("publish", "callback")


def connection_attributes(nc: Any) -> dict[str, Any]:
    """What a user would read once from the connection."""
    info = nc._server_info
    url = nc.connected_url
    return {
        "server.address": url.hostname,
        "server.port": url.port,
        "messaging.client.id": str(nc.client_id),
        "messaging.nats.server.id": info["server_id"],
        "messaging.nats.server.name": info["server_name"],
        "messaging.nats.server.version": info["version"],
    }


class HandWritten(HandWrittenBase):
    """Hand-written tracing (and metrics) around uninstrumented nats-py calls."""

    def __init__(self, tracer: Tracer, c: Clients, meter: Meter | None = None) -> None:
        pub_conn, sub_conn = connection_attributes(c.nc), connection_attributes(c.sc)
        super().__init__(tracer, pub_conn, sub_conn, SUBJECT, JS_SUBJECT, "seq", meter)

    def process(
        self, subject: str, kind: SpanKind, box: list[Any], counter: Counter | None, sc: Any = None
    ) -> Callable[[Any], Awaitable[None]]:
        """The callback of the subscription on ``subject`` (``box[0]`` once it is made): a process span
        per message (``kind``: CONSUMER for a delivery, SERVER for a request), in which it counts the
        message (``counter``) or, without a counter, replies on ``sc``. Its name and the attributes that
        do not change per message: built once, here."""
        tracer, reply = self.tracer, self.reply
        name, attrs = f"process {subject}", {**operation("process", "process", subject), **self.sub_conn}

        async def cb(msg: Any) -> None:
            sub = box[0]
            ctx = extract(msg.headers or {})
            attributes = {
                **attrs,
                "messaging.message.body.size": len(msg.data),
                "messaging.nats.subscription.id": str(msg.sid),
                "messaging.nats.delivered_messages": sub.delivered,
                "messaging.nats.pending_messages": sub.pending_msgs,
            }
            if counter is None:
                attributes["messaging.nats.reply_to"] = msg.reply
            with tracer.start_as_current_span(
                name, context=ctx, kind=kind, links=creation_links(ctx), attributes=attributes
            ):
                if counter is None:
                    await reply(sc, msg)
                else:
                    counter.tick()

        return cb

    async def callback(self, c: Clients, n: int) -> Elapsed:
        tracer = self.tracer
        publish_attrs: dict[str, Any] = {}
        cached: dict[str, str] = {}

        async def subscribe(subject: str, counter: Counter) -> Close:
            # per subject, once: the publish span's name and the attributes that do not change per message
            cached["publish"] = f"publish {subject}"
            publish_attrs.update({**operation("send", "publish", subject), **self.pub_conn})
            box: list[Any] = []
            box.append(await c.sc.subscribe(subject, cb=self.process(subject, SpanKind.CONSUMER, box, counter)))
            return box[0].unsubscribe

        async def publish(c: Clients, subject: str) -> None:
            with tracer.start_as_current_span(
                cached["publish"],
                kind=SpanKind.PRODUCER,
                attributes={**publish_attrs, "messaging.message.body.size": len(PAYLOAD)},
            ):
                headers: dict[str, str] = {}
                inject(headers)
                await c.nc.publish(subject, PAYLOAD, headers=headers)

        return await delivery(c, CB_SUBJECT, n, subscribe, publish)

    async def request(self, c: Clients, n: int) -> Elapsed:
        cached: dict[str, Any] = {}

        async def start(subject: str) -> Close:
            # per subject, once: the request span's name and the attributes that do not change per message
            cached["name"] = f"request {subject}"
            cached["attrs"] = {**operation("send", "request", subject), **self.pub_conn}
            box: list[Any] = []
            box.append(await c.sc.subscribe(subject, cb=self.process(subject, SpanKind.SERVER, box, None, c.sc)))
            return box[0].unsubscribe

        async def run(c: Clients, subject: str) -> None:
            await self.traced_request(c, subject, cached["name"], cached["attrs"])

        return await round_trips(c, REQ_SUBJECT, n, start, run)


def hand(c: Clients) -> handwritten.MakeHand:
    return lambda tracer, meter: HandWritten(tracer, c, meter)


def add_sdk_paths(worker: Worker, c: Clients) -> None:
    """The SDK worker's paths: ``{off,on}.{hand,inst}.{operation}``, ``ratio.{hand,inst}.{publish,callback}``
    (``ParentBased(TraceIdRatioBased(0.01))``) and ``metrics.{hand,inst}.publish``."""
    handwritten.add_sdk_paths(worker, c, hand(c), PLAIN, OPERATIONS, RATIO_OPERATIONS)


async def check_equivalence(c: Clients) -> None:
    """Fail unless each hand-written path makes the same spans (names, kinds, parents, links, attributes)
    and the metrics path the same metric streams as the instrumented one."""
    await handwritten.check_equivalence("nats-py", c, hand(c), PLAIN, OPERATIONS)
