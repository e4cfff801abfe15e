"""The SDK paths of the nats-core benchmark: instrumented nats-core against hand-written equivalents.

As for nats-py (``sdk_paths.py``): the hand-written code is what a careful user would write by hand -
attributes that do not change per message built once per subject, ``tracer.start_as_current_span``
with the instrumented span's name, kind, attributes and links, ``propagate.inject`` into a fresh dict
of headers, and the nats-core call. Received headers are a ``Headers`` object (not a mapping): a small
getter reads it. ``check_equivalence`` verifies, before anything is measured, that both make the same
spans and metric streams. What nats-py's hand-written code writes alike (publish, JetStream publish,
the request and the reply) is in ``handwritten.HandWrittenBase``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import common
import handwritten
from common import PAYLOAD, Publish, delivery, round_trips
from handwritten import HandWrittenBase, creation_links, operation
from natscore_worker import (
    CB_SUBJECT,
    IT_SUBJECT,
    JS_SUBJECT,
    PLAIN,
    REQ_SUBJECT,
    SUBJECT,
    WARMUP_ROUND_TRIPS,
    Clients,
    with_callback,
    with_reader,
    with_responder,
)
from opentelemetry.metrics import Meter
from opentelemetry.propagate import extract, inject
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Tracer
from protocol import Counter, Elapsed, Worker

logging.getLogger("opentelemetry.sdk.metrics._internal").setLevel(logging.ERROR)


class HeadersGetter(Getter[Any]):
    """Reads a nats-core ``Headers`` object (or ``None``) for ``propagate.extract``."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        if carrier is None:
            return None
        values = carrier.get_all(key)
        return values or None

    def keys(self, carrier: Any) -> list[str]:
        return [] if carrier is None else [k for k, _ in carrier.items()]


GETTER = HeadersGetter()


def connection_attributes(nc: Any, url: str) -> dict[str, Any]:
    """What a user would read once from the connection (and the URL it connected to)."""
    info = nc.server_info
    host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
    return {
        "server.address": host,
        "server.port": int(port),
        "messaging.client.id": str(info.client_id),
        "messaging.nats.server.id": info.server_id,
        "messaging.nats.server.version": info.version,
    }


class HandWritten(HandWrittenBase):
    """Hand-written tracing (and metrics) around uninstrumented nats-core calls."""

    js_warmup = WARMUP_ROUND_TRIPS

    def __init__(self, tracer: Tracer, c: Clients, url: str, meter: Meter | None = None) -> None:
        pub_conn, sub_conn = connection_attributes(c.nc, url), connection_attributes(c.sc, url)
        super().__init__(tracer, pub_conn, sub_conn, SUBJECT, JS_SUBJECT, "sequence", meter)

    def consumer_attrs(self, type_: str, name: str, subject: str, sid: str) -> dict[str, Any]:
        return {**operation(type_, name, subject), **self.sub_conn, "messaging.nats.subscription.id": sid}

    def publisher(self) -> Publish:
        """A traced publish to the block's subject (its name and attributes built once per subject)."""
        tracer = self.tracer
        cached: dict[str, Any] = {"subject": "", "name": "", "attrs": {}}

        async def publish(c: Clients, subject: str) -> None:
            if cached["subject"] != subject:
                cached.update(
                    subject=subject,
                    name=f"publish {subject}",
                    attrs={**operation("send", "publish", subject), **self.pub_conn},
                )
            with tracer.start_as_current_span(
                cached["name"],
                kind=SpanKind.PRODUCER,
                attributes={**cached["attrs"], "messaging.message.body.size": len(PAYLOAD)},
            ):
                headers: dict[str, str] = {}
                inject(headers)
                await c.nc.publish(subject, PAYLOAD, headers=headers)

        return publish

    async def callback(self, c: Clients, n: int) -> Elapsed:
        tracer = self.tracer

        def make(sub: Any, subject: str, counter: Counter) -> Callable[[Any], None]:
            # (nats-core has no public subscription id; the instrumentation records the private one)
            name, attrs = f"process {subject}", self.consumer_attrs("process", "process", subject, sub._sid)

            def cb(msg: Any) -> None:
                ctx = extract(msg.headers, getter=GETTER)
                with tracer.start_as_current_span(
                    name,
                    context=ctx,
                    kind=SpanKind.CONSUMER,
                    links=creation_links(ctx),
                    attributes={
                        **attrs,
                        "messaging.message.body.size": len(msg.data),
                        "messaging.nats.pending_messages": sub.pending[0],
                    },
                ):
                    counter.tick()

            return cb

        return await delivery(c, CB_SUBJECT, n, with_callback(c, make), self.publisher())

    async def receive(self, sub: Any, subject: str, counter: Counter | None, sc: Any = None) -> None:
        """Read ``sub`` with ``async for``: a receive span per message (from when the read began), then
        count the message (``counter``) or, without a counter, reply on ``sc``."""
        tracer, reply = self.tracer, self.reply
        name, attrs = f"receive {subject}", self.consumer_attrs("receive", "receive", subject, sub._sid)
        start = time.time_ns()
        async for msg in sub:
            ctx = extract(msg.headers, getter=GETTER)
            attributes = {
                **attrs,
                "messaging.message.body.size": len(msg.data),
                "messaging.nats.pending_messages": sub.pending[0],
            }
            if counter is None:
                attributes["messaging.nats.reply_to"] = msg.reply
            tracer.start_span(
                name, kind=SpanKind.CLIENT, links=creation_links(ctx), attributes=attributes, start_time=start
            ).end()
            if counter is None:
                await reply(sc, msg)
            else:
                counter.tick()
            start = time.time_ns()

    async def iterator(self, c: Clients, n: int) -> Elapsed:
        return await delivery(c, IT_SUBJECT, n, with_reader(c, self.receive), self.publisher())

    async def request(self, c: Clients, n: int) -> Elapsed:
        cached: dict[str, Any] = {}

        async def respond(c: Clients, sub: Any, subject: str) -> None:
            await self.receive(sub, subject, None, c.sc)

        serve = with_responder(c, respond)

        async def start(subject: str) -> common.Close:
            # per subject, once: the request span's name and the attributes that do not change per message
            cached["name"] = f"request {subject}"
            cached["attrs"] = {**operation("send", "request", subject), **self.pub_conn}
            return await serve(subject)

        async def run(c: Clients, subject: str) -> None:
            await self.traced_request(c, subject, cached["name"], cached["attrs"])

        return await round_trips(c, REQ_SUBJECT, n, start, run)


def hand(c: Clients, url: str) -> handwritten.MakeHand:
    return lambda tracer, meter: HandWritten(tracer, c, url, meter)


def add_sdk_paths(worker: Worker, c: Clients, url: str, patched: Sequence[str]) -> None:
    """The SDK worker's paths: ``{off,on}.hand.{operation}`` and ``metrics.hand.publish``, and the
    instrumented ``{off,on}.inst.{operation}`` and ``metrics.inst.publish`` for the ``patched`` operations."""
    handwritten.add_sdk_paths(worker, c, hand(c, url), PLAIN, patched)


async def check_equivalence(c: Clients, url: str, patched: Sequence[str]) -> None:
    """Fail unless each hand-written path makes the same spans (names, kinds, parents, links,
    attributes) and the metrics path the same metric streams as the instrumented one."""
    await handwritten.check_equivalence("nats-core", c, hand(c, url), PLAIN, patched)
