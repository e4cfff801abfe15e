"""A small order flow over NATS and JetStream, traced end to end.

How it is traced: zero code for nats-py. Run it with ``scripts/demo.sh``, which starts a local
JetStream-enabled nats-server and runs this file as::

    opentelemetry-instrument --traces_exporter console --metrics_exporter none \\
        --logs_exporter none python examples/demo.py

``opentelemetry-instrument`` finds this package's entry point and instruments nats-py: every
publish, request, reply, processed message, fetch and ack gets a span, and the trace context
travels in the message headers (and is stored with JetStream messages). The only OpenTelemetry
code here is the root span "demo checkout", so that the whole flow is one trace, and the shipping
service's processing span, parented on the producer with ``message_context(msg)``:

    client    demo checkout
    client      publish orders.created              (the checkout places an order)
    orders        process orders.created            (order handler ...)
    orders          request inventory.check         (... asks the inventory service)
    inventory         process inventory.check       (inventory handler ...)
    inventory           publish                     (... replies to the request's inbox)
    orders          publish shipments.requested     (... stores a shipment request in JetStream)
    shipping          process shipments.requested   (shipping's own span, under message_context)
    shipping            ack SHIPMENTS               (... acks the message)

The shipping service's ``fetch SHIPMENTS`` span is the root of a trace of its own (a fetch serves
any number of messages); it has a link to ``publish shipments.requested``.

With ``NATS_URL`` set the server must have JetStream enabled; the demo (re)creates a stream named
SHIPMENTS there and deletes it at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os

import nats
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError
from opentelemetry.trace import SpanKind

from opentelemetry import trace
from opentelemetry.instrumentation.nats import message_context

NATS_URL = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")

tracer = trace.get_tracer("examples.demo")


async def main() -> None:
    service = await nats.connect(NATS_URL, name="demo-service")
    client = await nats.connect(NATS_URL, name="demo-client")
    shipping = await nats.connect(NATS_URL, name="demo-shipping")
    js = service.jetstream()
    with contextlib.suppress(NotFoundError):
        await js.delete_stream("SHIPMENTS")  # left over from an earlier run
    await js.add_stream(name="SHIPMENTS", subjects=["shipments.requested"])
    shipments = await shipping.jetstream().pull_subscribe("shipments.requested", durable="shipping")
    order_done: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()

    async def check_inventory(msg: Msg) -> None:
        """The inventory service: answers every inventory.check request."""
        item = json.loads(msg.data)
        await msg.respond(json.dumps({"sku": item["sku"], "in_stock": True}).encode())

    async def handle_order(msg: Msg) -> None:
        """The order service: checks the inventory for each new order."""
        try:
            order = json.loads(msg.data)
            reply = await service.request("inventory.check", json.dumps({"sku": order["sku"]}).encode(), timeout=2)
            order = {**order, **json.loads(reply.data)}
            await js.publish("shipments.requested", json.dumps(order).encode())
            order_done.set_result(order)
        except Exception as exc:
            order_done.set_exception(exc)

    await service.subscribe("inventory.check", cb=check_inventory)
    await service.subscribe("orders.created", cb=handle_order)
    # Make sure the server has both subscriptions before anything is published. nats-py's flush()
    # writes its PING ahead of commands still queued, so first yield once to let the SUBs go out.
    await asyncio.sleep(0)
    await service.flush()

    with tracer.start_as_current_span("demo checkout"):
        order = {"id": 42, "sku": "tea-pot"}
        await client.publish("orders.created", json.dumps(order).encode())

    result = await asyncio.wait_for(order_done, timeout=5)
    print(f"order {result['id']}: {result['sku']} in stock: {result['in_stock']}")

    # The shipping service: a JetStream pull consumer. Its processing span continues the order's
    # trace through the context stored with the message.
    for msg in await shipments.fetch(1, timeout=5):
        with tracer.start_as_current_span(
            "process shipments.requested", context=message_context(msg), kind=SpanKind.CONSUMER
        ):
            print(f"shipping order {json.loads(msg.data)['id']}")
            await msg.ack()

    await client.drain()
    await service.drain()  # waits for the handlers to finish, so every span has ended
    await shipping.jetstream().delete_stream("SHIPMENTS")
    await shipping.drain()


if __name__ == "__main__":
    asyncio.run(main())
