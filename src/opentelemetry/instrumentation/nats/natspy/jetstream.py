"""JetStream patches: publish, publish_async, fetch, settle (ack …), key-value and object-store writes.

Push-consumer callbacks are traced by :class:`.core.TracedCallback` (``js.subscribe`` ends in
``Client.subscribe``); JetStream API traffic runs under :func:`api_request` and makes no spans.

Fast paths: as in core.py, the publish wrappers return the coroutine to await (no coroutine frame
of their own), and ``publish(subject, payload)`` is taken apart without binding.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from opentelemetry.trace import Link, Span, SpanKind

from opentelemetry.instrumentation.nats import attributes, names
from opentelemetry.instrumentation.nats.names import Op
from opentelemetry.instrumentation.nats.natspy.access import (
    ACCESS,
    jetstream_client,
    jetstream_timeout,
    message_client,
    pull_subscription,
    store,
)
from opentelemetry.instrumentation.nats.natspy.core import Args, Kwargs, size
from opentelemetry.instrumentation.nats.operation import ACTIVE, Operation, entry, installed, now, untraced
from opentelemetry.instrumentation.nats.propagation import caller_links, current_context
from opentelemetry.instrumentation.nats.recorder import Recorder
from opentelemetry.instrumentation.nats.streams import CONFIGS, puback_result, with_consumer

_LOG = logging.getLogger(__name__)


async def internal(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """JetStream management/API calls: no spans for the requests they make."""
    return await untraced(wrapped, args, kwargs)


async def api_request(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``JetStreamManager._api_request``, every JetStream API call: no spans for its request; the
    stream and consumer configurations in its responses are kept (see streams.py)."""
    response = await untraced(wrapped, args, kwargs)
    if installed() is not None:
        CONFIGS.seen(jetstream_client(instance), response)
    return response


def _js_publish_args(
    subject: str,
    payload: bytes = b"",
    _timeout_or_stall: Any = None,
    stream: str | None = None,
    headers: dict[str, Any] | None = None,
    **_: Any,
) -> tuple[str, bytes, str | None, dict[str, Any] | None]:
    return subject, payload, stream, headers


def _publish_op(rec: Recorder, js: Any, args: Args, kwargs: Kwargs) -> tuple[Operation, list[Link] | None] | None:
    """The operation of a JetStream publish, and the link to the caller's own creation context when
    its headers carry one (then they are sent unchanged and the span is CLIENT)."""
    if len(args) == 2 and not kwargs:
        (subject, payload), stream, headers = args, None, None
    else:
        try:
            subject, payload, stream, headers = _js_publish_args(*args, **kwargs)
        except TypeError:
            return None
    if rec.excluding is not None and rec.excluded(subject):
        return None
    links = caller_links(headers) if headers else None
    op = Operation(
        op=names.PUBLISH,
        kind=SpanKind.PRODUCER if links is None else SpanKind.CLIENT,
        access=ACCESS,
        client=jetstream_client(js),
        subject=subject,
        body_size=len(payload) if type(payload) is bytes else size(payload),
        headers=headers,
        hook_args=(subject, payload, headers) if rec.hooks else (),
        extra={names.JS_SUBJECT: subject, names.JS_EXPECTED_STREAM: stream} if stream else {names.JS_SUBJECT: subject},
        inject=links is None,
        on_result=puback_result,
    )
    return op, links


def publish(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``JetStreamContext.publish``: one PRODUCER span (CLIENT: see :func:`_publish_op`) with the PubAck attributes."""
    rec = entry()
    described = _publish_op(rec, instance, args, kwargs) if rec is not None else None
    if rec is None or described is None:
        return wrapped(*args, **kwargs)
    op, links = described
    return rec.run(op, wrapped, args, kwargs, parent=current_context(), links=links)


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
    ``TimeoutError``) and a cancelled one make no span by default (see ``Recorder.fetched_nothing``)."""
    rec = entry()
    if rec is None:
        return await wrapped(*args, **kwargs)
    nc, stream, consumer = pull_subscription(instance)
    extra = {names.JS_STREAM: stream}
    if consumer:
        extra[names.JS_CONSUMER] = consumer
        with_consumer(nc, extra)
    op = Operation(
        op=names.FETCH,
        kind=SpanKind.CLIENT,
        access=ACCESS,
        client=nc,
        subject=stream,
        inject=False,
        extra=extra,
        name_dest=stream or None,
        on_result=attributes.batch_attributes,
    )
    start = now()
    token = ACTIVE.set(op)  # the MSG.NEXT publish and next_msg loop make no spans
    try:
        msgs = await wrapped(*args, **kwargs)
    except (asyncio.TimeoutError, asyncio.CancelledError) as exc:
        # nats.errors.TimeoutError, or asyncio's own when nats-py's deadline passed; or cancelled
        try:
            rec.fetched_nothing(op, start, isinstance(exc, asyncio.CancelledError))
        except Exception:
            _LOG.debug("could not record an empty fetch", exc_info=True)
        raise
    except BaseException as exc:
        rec.fetched(op, start, error=exc)
        raise
    finally:
        ACTIVE.reset(token)
    try:
        rec.fetched(op, start, msgs)
    except Exception:
        _LOG.debug("could not record a fetch span", exc_info=True)
    return msgs


class Settle:
    """``Msg.ack`` / ``ack_sync`` / ``nak`` / ``term`` / ``in_progress``: a CLIENT span ``{op} {stream}``,
    a child of the current span (else of the message's creation context) with a link to the latter."""

    __slots__ = ("op",)

    def __init__(self, op: Op) -> None:
        self.op = op

    async def __call__(self, wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        rec = entry()
        reply = getattr(instance, "reply", None)
        if rec is None or not isinstance(reply, str) or not reply.startswith(names.JS_ACK_PREFIX):
            return await wrapped(*args, **kwargs)
        client = message_client(instance)
        extra = with_consumer(client, attributes.ack_subject_attributes(reply))
        if self.op is names.NAK:
            delay = args[0] if args else kwargs.get("delay")
            if isinstance(delay, (int, float)) and delay:
                extra[names.JS_NAK_DELAY] = float(delay)
        op = Operation(
            op=self.op,
            kind=SpanKind.CLIENT,
            access=ACCESS,
            client=client,
            subject=instance.subject,
            inject=False,
            extra=extra,
            name_dest=extra.get(names.JS_STREAM),
        )
        parent, links = rec.settle_parent(instance)
        return await rec.run(op, wrapped, args, kwargs, parent=parent, links=links)


class StoreCall:
    """A key-value or object-store method: one CLIENT span ``{op} {bucket}``; internals make none.

    ``inject``: the messages it writes carry its context (a value's writer, read back later)."""

    __slots__ = ("bucket_attr", "inject", "key_attr", "on_result", "op")

    def __init__(self, op: Op, bucket_attr: str, key_attr: str, on_result: Any, inject: bool = False) -> None:
        self.op = op
        self.bucket_attr = bucket_attr
        self.key_attr = key_attr
        self.on_result = on_result
        self.inject = inject

    def operation(self, instance: Any, args: Args, kwargs: Kwargs) -> Operation:
        """The operation of a call on ``instance`` (a ``KeyValue`` or ``ObjectStore``)."""
        client, bucket = store(instance)
        key = args[0] if args else kwargs.get("key", kwargs.get("name"))
        extra: dict[str, Any] = {self.bucket_attr: bucket}
        if isinstance(key, str):
            extra[self.key_attr] = key
        value = args[1] if len(args) > 1 else kwargs.get("value", kwargs.get("data"))
        return Operation(
            op=self.op,
            kind=SpanKind.CLIENT,
            access=ACCESS,
            client=client,
            subject=bucket,
            body_size=size(value) if isinstance(value, (bytes, bytearray, str)) else None,
            inject=self.inject,
            extra=extra,
            name_dest=bucket or None,
            on_result=self.on_result,
        )

    async def __call__(self, wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        rec = entry()
        if rec is None:
            return await wrapped(*args, **kwargs)
        return await rec.run(self.operation(instance, args, kwargs), wrapped, args, kwargs)


def kv(op: Op, inject: bool = False) -> StoreCall:
    return StoreCall(op, names.KV_BUCKET, names.KV_KEY, attributes.revision_attributes, inject)


def obj(op: Op, inject: bool = False) -> StoreCall:
    return StoreCall(op, names.OBJECT_BUCKET, names.OBJECT_NAME, attributes.object_info_attributes, inject)
