"""A plain nats-py app (no OpenTelemetry code) whose request fails: nobody answers."""

import asyncio
import os

import nats
import nats.errors


async def main() -> None:
    nc = await nats.connect(os.environ["NATS_URL"])
    try:
        await nc.request("app.nobody", b"?", timeout=2)
    except nats.errors.NoRespondersError as exc:
        print("APP-DONE", type(exc).__name__, flush=True)
    await nc.drain()


asyncio.run(main())
