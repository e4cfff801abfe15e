"""Request-reply: a client asks a quote service for a price. A plain nats-py app.

How it is traced: zero code. There is no OpenTelemetry code in this file; run it under
``opentelemetry-instrument``, which finds this package's entry point and instruments nats-py::

    pip install opentelemetry-distro 'opentelemetry-instrumentation-nats[instruments]'
    NATS_URL=nats://127.0.0.1:4222 opentelemetry-instrument \\
        --traces_exporter console --metrics_exporter none --logs_exporter none \\
        python examples/request_reply.py

The console exporter prints each span as a JSON object when it ends. The trace:

    request quotes.price    CLIENT    Client.request (one span: its inner publish and reply-inbox
                                      subscription make none)
      process quotes.price  SERVER    the quote service's callback (the message has a reply subject)
        publish             PRODUCER  Msg.respond, to the request's inbox (left out of the name)

Use ``--traces_exporter otlp`` (and ``opentelemetry-exporter-otlp``) to send it to a collector instead.
"""

from __future__ import annotations

import asyncio
import json
import os

import nats
from nats.aio.msg import Msg

NATS_URL = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
PRICES = {"tea-pot": 24.5, "cup": 6.0}


async def main() -> None:
    service = await nats.connect(NATS_URL, name="quote-service")
    client = await nats.connect(NATS_URL, name="shop")

    async def quote(msg: Msg) -> None:
        """The quote service: answers every quotes.price request."""
        sku = json.loads(msg.data)["sku"]
        await msg.respond(json.dumps({"sku": sku, "price": PRICES.get(sku)}).encode())

    await service.subscribe("quotes.price", cb=quote)
    await asyncio.sleep(0)  # let nats-py's flusher send the SUB ...
    await service.flush()  # ... and wait until the server has it

    reply = await client.request("quotes.price", json.dumps({"sku": "tea-pot"}).encode(), timeout=2)
    print(f"quote: {json.loads(reply.data)}", flush=True)

    await client.drain()
    await service.drain()  # waits for the callback to return, so its span has ended


if __name__ == "__main__":
    asyncio.run(main())
