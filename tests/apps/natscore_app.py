"""A plain nats-core app (no OpenTelemetry code): publish → callback → request → reply."""

import asyncio
import os

import nats.client


async def main() -> None:
    nc = await nats.client.connect(os.environ["NATS_URL"])
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    tasks = set()

    def start(coro):
        task = loop.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def ask(data):
        await nc.request("app.ping", data, timeout=5)
        done.set()

    def reply(msg):
        start(nc.publish(msg.reply, b"pong"))

    def worker(msg):
        start(ask(msg.data))

    (await nc.subscribe("app.ping")).add_callback(reply)
    (await nc.subscribe("app.work")).add_callback(worker)
    await nc.flush()
    await nc.publish("app.work", b"job")
    await asyncio.wait_for(done.wait(), 10)
    await nc.drain()
    print("APP-DONE", flush=True)


asyncio.run(main())
