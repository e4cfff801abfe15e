"""A small order flow over NATS, traced end to end with no tracing code in the handlers.

Run it with ``scripts/demo.sh``. That starts a local nats-server and runs this file as::

    opentelemetry-instrument --traces_exporter console --metrics_exporter none \\
        --logs_exporter none python examples/demo.py

``opentelemetry-instrument`` finds this package's entry point and instruments nats-py: every
publish, request, reply and processed message gets a span, and the trace context travels in the
message headers. The only OpenTelemetry code here is the root span "demo checkout", so that the
whole flow below is one trace:

    client   publish orders.created          (the checkout places an order)
    service  process orders.created          (order handler ...)
    service    request inventory.check       (... asks the inventory service)
    service      process inventory.check     (inventory handler ...)
    service        publish                   (... replies to the request's inbox)
"""

from __future__ import annotations

import asyncio
import json
import os

import nats
from nats.aio.msg import Msg

from opentelemetry import trace

NATS_URL = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")

tracer = trace.get_tracer("examples.demo")


async def main() -> None:
    service = await nats.connect(NATS_URL, name="demo-service")
    client = await nats.connect(NATS_URL, name="demo-client")
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
            order_done.set_result({**order, **json.loads(reply.data)})
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

    await client.drain()
    await service.drain()  # waits for the handlers to finish, so every span has ended


if __name__ == "__main__":
    asyncio.run(main())
