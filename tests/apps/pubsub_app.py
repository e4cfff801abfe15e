"""A plain nats-py app (no OpenTelemetry code): publish → callback → request → reply."""

import asyncio
import os

import nats


async def main() -> None:
    nc = await nats.connect(os.environ["NATS_URL"])
    done = asyncio.Event()

    async def reply(msg):
        await msg.respond(b"pong")

    async def worker(msg):
        await nc.request("app.ping", msg.data, timeout=5)
        done.set()

    await nc.subscribe("app.ping", cb=reply)
    await nc.subscribe("app.work", cb=worker)
    await nc.publish("app.work", b"job")
    await asyncio.wait_for(done.wait(), 10)
    await nc.drain()
    print("APP-DONE", flush=True)


asyncio.run(main())
