"""nats-jetstream consumer patches (``nats.jetstream.consumer``): fetch, next, and message streams.

- ``fetch`` / ``fetch_nowait`` of a ``PullConsumer`` or an ``OrderedConsumer``: one CLIENT span
  ``fetch {stream}`` per batch, a link per message to its producer, started at the call in the
  caller's context. The batch receives its messages while the application iterates it: the span is
  recorded when the batch has ended (see :mod:`..fetches` for when that is, an abandoned batch's
  included); an empty batch follows the ``empty_fetch_spans`` rule; ``batch.error`` is its error.
  A dropped batch is only collected once nothing refers to it: an ordered consumer keeps its last
  batch until its next fetch, and a batch fetched with a ``heartbeat`` registers callbacks with its
  client that nats-jetstream never removes (its span ends when the client is collected).
- ``next()`` of either consumer: a CLIENT span ``receive {stream}`` in the caller's context, linked
  to the message's creation context; the fetch and batch it runs underneath make no spans. No
  message (its ``TimeoutError``), or an error: no span, as for ``Subscription.next``.
- Each message a ``messages()`` stream hands over (``PullMessageStream``, an ordered consumer's
  stream): a ``receive {stream}`` span the same way. An ordered consumer's stream reads through a
  ``PullMessageStream`` of its own and drops the messages that arrive out of order: those make no
  span. The stream's background tasks (its pull requests) start inside its first step, which runs
  as client internals: they inject nothing and make no spans.

Inside an operation that collects the JetStream messages it reads (:data:`~..operation.COLLECT`: a
key-value watcher or history), the batches and streams hand each message to it and record nothing
themselves (no span, no metrics).

Fast paths: the per-message steps (``__anext__``) are plain patches; without an SDK they only mark
the client internals they run.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.instrumentation.nats import attributes, names
from opentelemetry.instrumentation.nats.access import ClientAccess
from opentelemetry.instrumentation.nats.fetches import LazyFetch, fetch_operation
from opentelemetry.instrumentation.nats.natscore.access import (
    ACCESS,
    ORDERED_ACCESS,
    batch_complete,
    batch_error,
    batch_tracker,
    consumer_client,
    consumer_names,
    follow_batch,
    header_view,
    reading_batch,
    stream_consumer,
)
from opentelemetry.instrumentation.nats.operation import (
    ACTIVE,
    CLIENT,
    COLLECT,
    INTERNAL,
    Operation,
    _Installed,
    delivered,
    enabled,
    entry,
    now,
    untraced,
)
from opentelemetry.instrumentation.nats.recorder import Recorder
from opentelemetry.instrumentation.nats.sending import Args, Kwargs, Wrapper

_LOG = logging.getLogger(__name__)


def _recording(rec: Recorder | None) -> bool:
    """A recorder that can record (an SDK tracer or meter is set)."""
    return rec is not None and (rec.live or not rec.idle())


# --- fetch: one span per batch ---------------------------------------------------------------------


class _ConsumerCall:
    """A consumer's method, traced by :meth:`traced` (``access``: an ordered consumer's, or any
    other's); inside another operation, under suppression, without an SDK or while a message is
    collected, it just runs."""

    __slots__ = ("access",)

    def __init__(self, access: ClientAccess) -> None:
        self.access = access

    async def __call__(self, wrapped: Any, consumer: Any, args: Args, kwargs: Kwargs) -> Any:
        rec = entry()
        if rec is None or COLLECT.get() is not None or not _recording(rec):
            return await wrapped(*args, **kwargs)
        return await self.traced(rec, wrapped, consumer, args, kwargs)

    async def traced(self, rec: Recorder, wrapped: Any, consumer: Any, args: Args, kwargs: Kwargs) -> Any:
        raise NotImplementedError


class Fetch(_ConsumerCall):
    """``fetch`` / ``fetch_nowait``: the returned batch is followed by a :class:`~..fetches.LazyFetch`."""

    __slots__ = ()

    async def traced(self, rec: Recorder, wrapped: Any, consumer: Any, args: Args, kwargs: Kwargs) -> Any:
        start = now()
        try:  # (an ordered consumer's inner fetch, the pull request and API calls: client internals)
            batch = await untraced(wrapped, args, kwargs)
        except BaseException as exc:
            self._tracker(rec, consumer, start).ended(exc)
            raise
        try:
            tracker = self._tracker(rec, consumer, start)
            reading = reading_batch(batch)
            if follow_batch(reading, tracker):
                tracker.follow(reading)
        except Exception:
            _LOG.debug("could not follow a fetched batch", exc_info=True)
        return batch

    def _tracker(self, rec: Recorder, consumer: Any, start: int) -> LazyFetch:
        client = consumer_client(consumer)
        stream, name = consumer_names(consumer)  # (after the call: an ordered consumer's new consumer)
        return LazyFetch(rec, fetch_operation(self.access, client, stream, name), start)


def next_in_batch(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``PullMessageBatch.__anext__``: its message goes to the batch's fetch (or to ``COLLECT``)."""
    if _Installed.recorder is None:
        return wrapped(*args, **kwargs)
    return _next_in_batch(wrapped, instance, args, kwargs)


async def _next_in_batch(wrapped: Any, batch: Any, args: Args, kwargs: Kwargs) -> Any:
    collect = COLLECT.get()
    tracker = batch_tracker(batch) if collect is None else None
    token = ACTIVE.set(INTERNAL)  # (its subscription's next() makes no receive span)
    try:
        msg = await wrapped(*args, **kwargs)
    except StopAsyncIteration:
        if tracker is not None:
            tracker.ended(batch_error(batch))
        raise
    except BaseException as exc:
        if tracker is not None:
            tracker.ended(exc)
        raise
    finally:
        ACTIVE.reset(token)
    if collect is not None:
        _collect(collect, msg)
    elif tracker is not None:
        tracker.handed(msg, batch_complete(batch))
    return msg


def _collect(collect: Any, msg: Any) -> None:
    try:
        collect(msg)
    except Exception:
        _LOG.debug("could not hand a JetStream message to the operation reading it", exc_info=True)


# --- next() and message streams: a receive span per message ----------------------------------------


def _receive_operation(access: ClientAccess, client: Any, stream: str, msg: Any) -> Operation:
    """The ``receive {stream}`` operation of a JetStream message handed to the application (its
    JetStream metadata; the consumer's configuration is on fetch and settle spans, as for nats-py)."""
    extra = attributes.jetstream_message_attributes(msg.reply)
    op = delivered(
        names.RECEIVE,
        CLIENT,
        access,
        client,
        msg,
        headers=header_view(msg.headers),
        sid=None,
        sub_subject=None,
        queue=None,
        extra=extra,
    )
    op.name_dest = stream or None
    return op


async def _received(rec: Recorder, access: ClientAccess, consumer: Any, msg: Any, start: int) -> None:
    """Record the receive span of ``msg``, which ``consumer`` handed over (the wait began at ``start``)."""
    try:
        if rec.excluding is not None and rec.excluded(msg.subject):
            return
        op = _receive_operation(access, consumer_client(consumer), consumer_names(consumer)[0], msg)
        hooked = rec.received(op, msg, start)
        if hooked is not None:
            await hooked
    except Exception:
        _LOG.debug("could not record a receive span", exc_info=True)


class Next(_ConsumerCall):
    """``next()``: a receive span for the message it returns."""

    __slots__ = ()

    async def traced(self, rec: Recorder, wrapped: Any, consumer: Any, args: Args, kwargs: Kwargs) -> Any:
        start = now()
        msg = await untraced(wrapped, args, kwargs)  # (its fetch and batch: client internals)
        await _received(rec, self.access, consumer, msg, start)
        return msg


def stream_step(access: ClientAccess) -> Wrapper:
    """The patch of a message stream's ``__anext__`` (``access``: an ordered consumer's, or any other's)."""

    def step(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        rec = _Installed.recorder
        if rec is None:
            return wrapped(*args, **kwargs)
        return _step(rec, access, wrapped, instance, args, kwargs)

    return step


async def _step(rec: Recorder, access: ClientAccess, wrapped: Any, stream: Any, args: Args, kwargs: Kwargs) -> Any:
    collect = COLLECT.get()
    if collect is not None:  # (a stream it reads through hands it nothing: the messages it drops)
        collecting = COLLECT.set(None)
        try:
            msg = await untraced(wrapped, args, kwargs)
        finally:
            COLLECT.reset(collecting)
        _collect(collect, msg)
        return msg
    if ACTIVE.get() is not None or not _recording(rec) or not enabled():
        return await untraced(wrapped, args, kwargs)
    start = now()
    msg = await untraced(wrapped, args, kwargs)
    await _received(rec, access, stream_consumer(stream), msg, start)
    return msg


FETCH = Fetch(ACCESS)
ORDERED_FETCH = Fetch(ORDERED_ACCESS)
NEXT = Next(ACCESS)
ORDERED_NEXT = Next(ORDERED_ACCESS)
next_in_stream = stream_step(ACCESS)
next_in_ordered_stream = stream_step(ORDERED_ACCESS)
