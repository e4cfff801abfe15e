"""Connection health: ``Client.connect`` chains the application's connection callbacks.

The application's ``error_cb``, ``disconnected_cb``, ``reconnected_cb`` and ``closed_cb`` are still
called exactly as before (nats-py's default error callback when none was given); the chain only
adds metrics: reconnects, disconnect duration, slow-consumer drops, open connections, and the
opt-in JetStream stream-size polling.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from typing import Any

from opentelemetry.instrumentation.nats.metrics import NatsMetrics
from opentelemetry.instrumentation.nats.natspy import access
from opentelemetry.instrumentation.nats.natspy.core import Args, Kwargs
from opentelemetry.instrumentation.nats.operation import installed, untraced
from opentelemetry.instrumentation.nats.recorder import Recorder

_LOG = logging.getLogger(__name__)

CALLBACKS = ("error_cb", "disconnected_cb", "reconnected_cb", "closed_cb")


class ConnectionWatch:
    """Per-connection callbacks that record health metrics, then call the application's own."""

    def __init__(self, metrics: NatsMetrics, client: Any, user: dict[str, Any]) -> None:
        self.metrics = metrics
        self.client = client
        self.user = user
        self.down_since: float | None = None

    async def _user(self, name: str, *args: Any) -> None:
        cb = self.user.get(name)
        if cb is not None:
            await cb(*args)

    async def error_cb(self, exc: Exception) -> None:
        import nats.errors

        if isinstance(exc, nats.errors.SlowConsumerError):
            try:
                sub = exc.sub
                subject, queue = access.subscription_subject(sub), access.subscription_queue(sub)
                self.metrics.dropped_message(
                    self.metrics.subscription_attributes(access.ACCESS, self.client, subject, queue), sub
                )
            except Exception:
                _LOG.debug("could not count a dropped message", exc_info=True)
        cb = self.user.get("error_cb") or access.default_error_callback()
        await cb(exc)

    async def disconnected_cb(self) -> None:
        self.down_since = time.monotonic()
        await self._user("disconnected_cb")

    async def reconnected_cb(self) -> None:
        try:
            self.metrics.reconnected(access.ACCESS, self.client, self.down_since)
            self.down_since = None
        except Exception:
            _LOG.debug("could not record a reconnect", exc_info=True)
        await self._user("reconnected_cb")

    async def closed_cb(self) -> None:
        self.metrics.untrack(self.client)
        await self._user("closed_cb")


async def _poll_streams(metrics: NatsMetrics, client: Any, interval: float) -> None:
    """Every ``interval`` seconds, record the messages and bytes of every stream (opt-in)."""
    while not client.is_closed:
        await asyncio.sleep(interval)
        if not client.is_connected:
            continue
        try:
            infos = await untraced(client.jsm().streams_info, (), {})
            for info in infos:
                metrics.stream_sizes[info.config.name] = (info.state.messages, info.state.bytes)
        except asyncio.CancelledError:
            raise
        except Exception:
            _LOG.debug("could not poll JetStream stream info", exc_info=True)


def start_stream_polling(rec: Recorder, client: Any) -> None:
    interval = rec.config.jetstream_stream_metrics_interval
    if rec.metrics is None or not interval:
        return
    task = asyncio.get_running_loop().create_task(_poll_streams(rec.metrics, client, interval))
    task.nats_client = client  # type: ignore[attr-defined]
    rec.metrics.tasks.add(task)
    task.add_done_callback(rec.metrics.tasks.discard)


async def connect(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``Client.connect``: chain the connection callbacks for health metrics (never replace them)."""
    rec = installed()
    metrics = rec.metrics if rec is not None else None
    user = {name: kwargs.get(name) for name in CALLBACKS}
    if (
        rec is None
        or metrics is None
        or len(args) > 1  # callbacks given positionally: leave the call exactly as it is
        or any(cb is not None and not inspect.iscoroutinefunction(cb) for cb in user.values())
    ):
        return await wrapped(*args, **kwargs)
    watch = ConnectionWatch(metrics, instance, user)
    chained = {name: getattr(watch, name) for name in CALLBACKS}
    result = await wrapped(*args, **{**kwargs, **chained})
    metrics.track(instance, access.ACCESS)
    start_stream_polling(rec, instance)
    return result
