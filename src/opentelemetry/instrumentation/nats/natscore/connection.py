"""Connection health and server facts for nats-core.

``Client.__init__`` (every client, however ``connect`` was imported) registers the connection-health
callbacks next to the application's: nats-core keeps lists of disconnected, reconnected and error
callbacks, so nothing is replaced or chained. They record reconnects, the disconnect duration and
slow-consumer drops (from the subscriptions' own drop counts: nats-core reports a slow consumer once
per episode), and the client is tracked for the connection and pending gauges; ``Client.close``
untracks it. The callbacks stay registered after ``uninstrument()`` and then do nothing.

``ServerInfo.from_protocol`` keeps the INFO it is made from (see :func:`.access.remember_info`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from opentelemetry.instrumentation.nats.metrics import NatsMetrics
from opentelemetry.instrumentation.nats.natscore.access import (
    ACCESS,
    client_subscription,
    remember_info,
    subscription_dropped,
)
from opentelemetry.instrumentation.nats.operation import installed
from opentelemetry.instrumentation.nats.sending import Args, Kwargs

_LOG = logging.getLogger(__name__)


def _metrics() -> NatsMetrics | None:
    rec = installed()
    return rec.metrics if rec is not None else None


class ConnectionWatch:
    """One client's connection-health callbacks (synchronous, as nats-core calls them)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.down_since: float | None = None

    def disconnected(self) -> None:
        self.down_since = time.monotonic()

    def reconnected(self) -> None:
        down_since, self.down_since = self.down_since, None
        metrics = _metrics()
        if metrics is not None:
            try:
                metrics.reconnected(ACCESS, self.client, down_since)
                metrics.track(self.client, ACCESS)
            except Exception:
                _LOG.debug("could not record a reconnect", exc_info=True)

    def error(self, error: Any) -> None:
        sid = getattr(error, "sid", None)  # a SlowConsumerError
        metrics = _metrics()
        if sid is None or metrics is None:
            return
        try:
            sub = client_subscription(self.client, sid)
            if sub is not None:
                attrs = metrics.subscription_attributes(ACCESS, self.client, sub.subject, sub.queue or None)
                metrics.dropped_total(attrs, sub, subscription_dropped(sub))
        except Exception:
            _LOG.debug("could not count dropped messages", exc_info=True)


def client_init(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``Client.__init__``: register the connection-health callbacks; track the client."""
    result = wrapped(*args, **kwargs)
    metrics = _metrics()
    if metrics is not None:
        try:
            watch = ConnectionWatch(instance)
            instance.add_disconnected_callback(watch.disconnected)
            instance.add_reconnected_callback(watch.reconnected)
            instance.add_error_callback(watch.error)
            metrics.track(instance, ACCESS)
        except Exception:
            _LOG.debug("could not watch a nats-core connection", exc_info=True)
    return result


async def client_close(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``Client.close`` (also the end of ``drain``): stop tracking the client."""
    try:
        return await wrapped(*args, **kwargs)
    finally:
        metrics = _metrics()
        if metrics is not None:
            metrics.untrack(instance)


def server_info(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``ServerInfo.from_protocol(info)``: remember the INFO (server name, cluster …) it keeps no copy of."""
    result = wrapped(*args, **kwargs)
    try:
        remember_info(result, args[0] if args else kwargs.get("info"))
    except Exception:
        _LOG.debug("could not keep a server's INFO", exc_info=True)
    return result
