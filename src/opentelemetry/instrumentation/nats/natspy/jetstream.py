"""JetStream patches: publish, publish_async, fetch, settle (ack …), key-value and object-store writes.

Push-consumer callbacks are traced by :class:`.core.TracedCallback` (``js.subscribe`` ends in
``Client.subscribe``); JetStream API traffic runs under :func:`api_request` and makes no spans.
Settle and key-value/object-store writes are the shared wrappers of :mod:`..jetstream`, given where
nats-py keeps what they read (:data:`JS`).

Fast paths: as in core.py, the publish wrappers return the coroutine to await (no coroutine frame
of their own), and ``publish(subject, payload)`` is taken apart without binding; a publish to a
subject seen before takes the cached path of :func:`..jetstream.publish_call`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from opentelemetry.trace import Link, Span

from opentelemetry.instrumentation.nats import attributes, names
from opentelemetry.instrumentation.nats.fetches import fetch_operation, fetched, fetched_nothing
from opentelemetry.instrumentation.nats.jetstream import (
    JetStreamAccess,
    Settle,
    StoreCall,
    api_call,
    publish_call,
    publish_operation,
)
from opentelemetry.instrumentation.nats.jetstream import kv as shared_kv
from opentelemetry.instrumentation.nats.names import Op
from opentelemetry.instrumentation.nats.natspy.access import (
    ACCESS,
    jetstream_client,
    jetstream_timeout,
    message_client,
    pull_subscription,
    store,
    stored_message,
)
from opentelemetry.instrumentation.nats.natspy.core import Args, Kwargs
from opentelemetry.instrumentation.nats.operation import ACTIVE, Operation, entry, installed, now
from opentelemetry.instrumentation.nats.recorder import Recorder

_LOG = logging.getLogger(__name__)


api_request = api_call(jetstream_client)
api_request.__doc__ = (
    """``JetStreamManager._api_request``, every JetStream API call: see :func:`..jetstream.api_call`."""
)


def _js_publish_args(
    subject: str,
    payload: bytes = b"",
    _timeout_or_stall: Any = None,
    stream: str | None = None,
    headers: dict[str, Any] | None = None,
    **_: Any,
) -> tuple[str, bytes, str | None, dict[str, Any] | None]:
    return subject, payload, stream, headers


def _publish_args(args: Args, kwargs: Kwargs) -> tuple[str, bytes, str | None, dict[str, Any] | None] | None:
    """A JetStream publish's subject, payload, stream and headers (``None``: unusual arguments)."""
    if len(args) == 2 and not kwargs:
        (subject, payload), stream, headers = args, None, None
    else:
        try:
            subject, payload, stream, headers = _js_publish_args(*args, **kwargs)
        except TypeError:
            return None
    return subject, payload, stream, headers


def _publish_op(rec: Recorder, js: Any, args: Args, kwargs: Kwargs) -> tuple[Operation, list[Link] | None] | None:
    """The operation of a JetStream publish (see :func:`..jetstream.publish_operation`)."""
    bound = _publish_args(args, kwargs)
    if bound is None:
        return None
    subject, payload, stream, headers = bound
    return publish_operation(rec, ACCESS, jetstream_client(js), subject, payload, headers, stream=stream)


def publish(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``JetStreamContext.publish``: one PRODUCER span (CLIENT: see :func:`_publish_op`) with the PubAck attributes."""
    rec = entry()
    bound = _publish_args(args, kwargs) if rec is not None else None
    if rec is None or bound is None:
        return wrapped(*args, **kwargs)
    subject, payload, stream, headers = bound
    client = jetstream_client(instance)
    return publish_call(
        rec,
        ACCESS,
        client,
        wrapped,
        args,
        kwargs,
        subject=subject,
        payload=payload,
        headers=headers,
        stream=stream,
        plain=len(args) == 2 and stream is None and kwargs.get("msg_ttl") is None,
    )


class _PendingAcks:
    """Open ``publish_async`` spans: each ends when its ack future settles, when the connection
    closes, or after the JetStream context's timeout — whichever comes first."""

    def __init__(self) -> None:
        self.open: dict[asyncio.Future[Any], tuple[Recorder, Span, Operation, asyncio.TimerHandle]] = {}

    def track(self, rec: Recorder, span: Span, op: Operation, future: Any, timeout: float) -> None:
        if not isinstance(future, asyncio.Future):
            rec.finish(span, op, result=None)
            return
        loop = future.get_loop()
        timer = loop.call_later(timeout, self._expire, future)
        self.open[future] = (rec, span, op, timer)
        future.add_done_callback(self._done)

    def _done(self, future: asyncio.Future[Any]) -> None:
        entry_ = self.open.pop(future, None)
        if entry_ is None:
            return
        rec, span, op, timer = entry_
        timer.cancel()
        if future.cancelled():
            rec.finish(span, op, error=asyncio.CancelledError())
        elif future.exception() is not None:
            rec.finish(span, op, error=future.exception())
        else:
            rec.finish(span, op, result=future.result())

    def _expire(self, future: asyncio.Future[Any]) -> None:
        entry_ = self.open.pop(future, None)
        if entry_ is not None:
            rec, span, op, _ = entry_
            rec.finish(span, op, error=asyncio.TimeoutError("no JetStream ack before the timeout"))

    def close(self, client: Any, error: BaseException) -> None:
        for future, (rec, span, op, timer) in list(self.open.items()):
            if op.client is client:
                del self.open[future]
                timer.cancel()
                rec.finish(span, op, error=error)


PENDING_ACKS = _PendingAcks()


def publish_async(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``JetStreamContext.publish_async``: a PRODUCER (or CLIENT) span that ends when the ack arrives or fails."""
    rec = entry()
    described = _publish_op(rec, instance, args, kwargs) if rec is not None else None
    if rec is None or described is None:
        return wrapped(*args, **kwargs)
    op, links = described
    timeout = jetstream_timeout(instance) or 5.0

    def track(span: Span, op: Operation, future: Any) -> None:
        PENDING_ACKS.track(rec, span, op, future, timeout)

    return rec.run(op, wrapped, args, kwargs, links=links, then=track)


async def client_close(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``Client._close`` (close, drain, fatal errors): end the client's open ``publish_async`` spans
    and stop its metric polling."""
    try:
        return await wrapped(*args, **kwargs)
    finally:
        rec = installed()
        if rec is not None and rec.metrics is not None:
            rec.metrics.untrack(instance)
        if PENDING_ACKS.open:
            import nats.errors

            PENDING_ACKS.close(instance, nats.errors.ConnectionClosedError())


async def fetch(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``PullSubscription.fetch``: one CLIENT span, a link per message to its producer.

    The span is recorded after the call (its links are known only then). An empty fetch (its
    ``TimeoutError``) and a cancelled one make no span by default (see ``fetches.fetched_nothing``)."""
    rec = entry()
    if rec is None:
        return await wrapped(*args, **kwargs)
    nc, stream, consumer = pull_subscription(instance)
    op = fetch_operation(ACCESS, nc, stream, consumer)
    start = now()
    token = ACTIVE.set(op)  # the MSG.NEXT publish and next_msg loop make no spans
    try:
        msgs = await wrapped(*args, **kwargs)
    except (asyncio.TimeoutError, asyncio.CancelledError) as exc:
        # nats.errors.TimeoutError, or asyncio's own when nats-py's deadline passed; or cancelled
        try:
            fetched_nothing(rec, op, start, isinstance(exc, asyncio.CancelledError))
        except Exception:
            _LOG.debug("could not record an empty fetch", exc_info=True)
        raise
    except BaseException as exc:
        fetched(rec, op, start, error=exc)
        raise
    finally:
        ACTIVE.reset(token)
    try:
        fetched(rec, op, start, msgs)
    except Exception:
        _LOG.debug("could not record a fetch span", exc_info=True)
    return msgs


# where nats-py keeps what the shared JetStream and key-value wrappers read
JS = JetStreamAccess(access=ACCESS, message_client=message_client, store=store, stored_message=stored_message)


def settle(op: Op) -> Settle:
    """``Msg.ack`` / ``ack_sync`` / ``nak`` / ``term`` / ``in_progress``: see :class:`..jetstream.Settle`."""
    return Settle(op, JS)


def kv(op: Op) -> StoreCall:
    """A key-value write: its messages carry its context (see :func:`..jetstream.kv`)."""
    return shared_kv(op, JS, inject=True)


def obj(op: Op) -> StoreCall:
    """An object-store write: its messages carry its context."""
    return StoreCall(op, names.OBJECT_BUCKET, names.OBJECT_NAME, attributes.object_info_attributes, JS, inject=True)
