"""An app instrumented in code whose metrics a Prometheus server scrapes (tests/test_prometheus_server.py).

It serves the OpenTelemetry Prometheus exporter's ``/metrics`` on ``127.0.0.1:$METRICS_PORT`` and keeps
producing every kind of traffic the dashboard and the alert rules look at, against ``$NATS_URL`` (a
JetStream server with ``max_payload: 4096``), until it is killed: publishes, callbacks (one of them
failing), an async iterator, ``next_msg``, requests (one with no responder), a slow consumer that drops
messages, a publish too big for a trace-context header, JetStream publishes, a push consumer and a pull
consumer with acks and naks (redeliveries). It keeps going while the server is down (the errors are
expected then) and reconnects when it comes back. It prints ``READY`` once everything is set up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import Any

import nats
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import start_http_server

from opentelemetry.instrumentation.nats import NatsInstrumentor

PREFIX = "app"
STREAM = "APP"
TICK = 0.2  # seconds between two rounds of traffic


async def quiet(exc: BaseException) -> None:
    """nats-py's error_cb: slow-consumer drops, failing callbacks and disconnects are expected here."""


async def setup(nc: Any) -> Any:
    """Subscriptions and consumers; returns the pull subscription."""

    async def on_event(msg: Any) -> None:
        pass

    async def on_request(msg: Any) -> None:
        await msg.respond(b"pong")

    async def on_fail(msg: Any) -> None:
        raise RuntimeError("handler failed")

    async def stuck(msg: Any) -> None:
        await asyncio.Event().wait()  # never returns: the subscription fills up and drops messages

    async def on_push(msg: Any) -> None:
        await msg.ack()

    async def iterate(sub: Any) -> None:
        async for _ in sub.messages:
            pass

    await nc.subscribe(f"{PREFIX}.events", queue="workers", cb=on_event)
    await nc.subscribe(f"{PREFIX}.svc", cb=on_request)
    await nc.subscribe(f"{PREFIX}.fail", cb=on_fail)
    await nc.subscribe(f"{PREFIX}.slow", cb=stuck, pending_msgs_limit=3)
    iterated = await nc.subscribe(f"{PREFIX}.iter")
    asyncio.get_running_loop().create_task(iterate(iterated))

    js = nc.jetstream()
    await js.add_stream(name=STREAM, subjects=[f"{PREFIX}.js.>"])
    await js.subscribe(f"{PREFIX}.js.push", durable="pusher", stream=STREAM, cb=on_push, manual_ack=True)
    return await js.pull_subscribe(f"{PREFIX}.js.pull", durable="puller", stream=STREAM)


async def round_of_traffic(nc: Any, sync_sub: Any, pull_sub: Any, n: int) -> None:
    js = nc.jetstream()
    await nc.publish(f"{PREFIX}.events", b"event")
    await nc.publish(f"{PREFIX}.fail", b"boom")
    await nc.publish(f"{PREFIX}.iter", b"item")
    await nc.publish(f"{PREFIX}.sync", b"next")
    for _ in range(5):
        await nc.publish(f"{PREFIX}.slow", b"x" * 10)
    # fits max_payload alone, not with a traceparent header: the context is not injected
    await nc.publish(f"{PREFIX}.big", b"x" * 4050)
    await sync_sub.next_msg(timeout=1)
    await nc.request(f"{PREFIX}.svc", b"ping", timeout=1)
    with contextlib.suppress(nats.errors.NoRespondersError):
        await nc.request(f"{PREFIX}.nobody", b"anyone?", timeout=1)
    await js.publish(f"{PREFIX}.js.push", f"push {n}".encode(), timeout=1)
    await js.publish(f"{PREFIX}.js.pull", f"pull {n}".encode(), timeout=1)
    for i, msg in enumerate(await pull_sub.fetch(2, timeout=1)):
        if i == 0 and msg.metadata.num_delivered == 1:
            await msg.nak()  # redelivered at the next fetch
        else:
            await msg.ack()


async def main() -> None:
    reader = PrometheusMetricReader()
    NatsInstrumentor().instrument(
        meter_provider=MeterProvider(metric_readers=[reader]),
        tracer_provider=TracerProvider(),  # spans (not exported): their context goes into the headers
        jetstream_stream_metrics_interval=1.0,
    )
    start_http_server(int(os.environ["METRICS_PORT"]), addr="127.0.0.1")
    nc = await nats.connect(os.environ["NATS_URL"], error_cb=quiet, reconnect_time_wait=0.1, max_reconnect_attempts=-1)
    pull_sub = await setup(nc)
    sync_sub = await nc.subscribe(f"{PREFIX}.sync")
    print("READY", flush=True)
    n = 0
    while True:
        n += 1
        try:
            await round_of_traffic(nc, sync_sub, pull_sub, n)
        except Exception as exc:  # the server is down or restarting: keep going
            print(f"round {n}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        await asyncio.sleep(TICK)


if __name__ == "__main__":
    asyncio.run(main())
