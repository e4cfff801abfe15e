"""A JetStream ``fetch`` as both client families trace it: one CLIENT span ``fetch {stream}`` per
batch, a link per message to its producer, recorded once the batch has ended (its links are known
only then).

nats-py's ``fetch`` returns the batch's messages all at once: its wrapper records the span when it
returns (:func:`fetched`, :func:`fetched_nothing`). nats-jetstream's ``fetch`` returns a batch that
receives its messages while the application iterates it; :class:`LazyFetch` follows such a batch and
records the span when it has ended:

- at the message that completes it (``max_messages`` reached): the span ends at that hand-over;
- when it reports its end (``StopAsyncIteration``: the server said there is no more, or the wait
  ran out): the span ends at the last hand-over; a batch that handed over nothing is an empty fetch
  (no span unless ``empty_fetch_spans``; never an error), which ends there, having covered its wait;
- at an error (the batch's own ``error``, or one raised while it read): the span ends there, with
  the error and the messages handed over before it;
- when the application stops waiting for the next message (its task cancelled): the span ends at
  the last hand-over, never an error; with none handed over it is a cancelled fetch (no span
  unless ``empty_fetch_spans``);
- when the application drops the batch before its end (it broke out of the loop, took what it
  needed): the span ends at the last hand-over, recorded when the batch is garbage-collected; a
  batch dropped before any message is a cancelled fetch too.

The span starts at the ``fetch`` call, in the context current there (its parent), whenever it is
recorded. Each message's JetStream metrics (redelivery, message age) count from its own hand-over.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import Link

from opentelemetry.instrumentation.nats import attributes, names
from opentelemetry.instrumentation.nats.access import ClientAccess
from opentelemetry.instrumentation.nats.operation import CLIENT, Operation, now
from opentelemetry.instrumentation.nats.propagation import creation_links, current_context
from opentelemetry.instrumentation.nats.recorder import Recorder
from opentelemetry.instrumentation.nats.streams import with_consumer

_LOG = logging.getLogger(__name__)


def fetch_operation(access: ClientAccess, client: Any, stream: str, consumer: str | None) -> Operation:
    """The operation of a fetch from ``consumer`` (its name, when known) of ``stream``: the stream
    names the span; the consumer's configuration, when known, adds its attributes."""
    extra = {names.JS_STREAM: stream}
    if consumer:
        extra[names.JS_CONSUMER] = consumer
        with_consumer(client, extra)
    return Operation(
        op=names.FETCH,
        kind=CLIENT,
        access=access,
        client=client,
        subject=stream,
        inject=False,
        extra=extra,
        name_dest=stream or None,
        on_result=attributes.batch_attributes,
    )


def fetched(
    rec: Recorder,
    op: Operation,
    start_time: int,
    msgs: Any = None,
    error: BaseException | None = None,
    *,
    parent: Context | None = None,
    end_time: int | None = None,
    handed: list[int] | None = None,
) -> None:
    """Record a fetch that already happened: its links (one per message) are known only now.

    ``parent``: the context it was called in (default: the current one); ``end_time``: when it ended
    (default: now); ``handed``: when each message reached the application (default: at the end,
    when the fetch returned them all)."""
    end = end_time or now()
    msgs = msgs or []
    links: list[Link] = []
    for msg in msgs:
        links += creation_links(rec.producer_context(msg.headers, msg.subject, msg.data)) or ()
    span = rec.start(op, parent=parent, links=links, start_time=start_time)
    rec.finish(
        span, op, msgs, error=error, messages=len(msgs), nbytes=sum(len(m.data) for m in msgs), end_time=end_time
    )
    metrics = rec.metrics
    if metrics is not None:
        ordered = op.access.ordered_consumer(op.client, op.sid)
        for i, msg in enumerate(msgs):
            meta = attributes.jetstream_message_attributes(msg.reply)
            if meta:
                metrics.jetstream_message(meta, op.metric_attrs or {})
                stored = attributes.ack_timestamp(msg.reply) if op.metric_attrs is not None else None
                if stored is not None:
                    delivered = handed[i] if handed is not None and i < len(handed) else end
                    metrics.jetstream_age(meta, stored, delivered, msg.subject, ordered)


def fetched_nothing(
    rec: Recorder,
    op: Operation,
    start_time: int,
    cancelled: bool,
    *,
    parent: Context | None = None,
    end_time: int | None = None,
) -> None:
    """Record a fetch that returned no messages or was cancelled while it waited (``parent`` and
    ``end_time`` as for :func:`fetched`): never an error, no span unless ``empty_fetch_spans`` is on;
    metrics record an empty fetch (a batch of none), not a cancelled one (it did not complete)."""
    if rec.config.empty_fetch_spans:
        span = rec.start(op, parent=parent, start_time=start_time)
        if cancelled:
            op.metric_attrs = None
        rec.finish(span, op, (), messages=0, nbytes=0, end_time=end_time)
    elif not cancelled and rec.measuring():
        op.started = start_time
        op.metric_attrs = rec.describe(op)[2]
        rec.measure(op, None, 0, 0, end_time)


class LazyFetch:
    """One lazily consumed batch of a fetch that started at ``start`` (see the module docstring).

    The client family's patches call :meth:`handed` for each message the batch hands over and
    :meth:`ended` when it stops (its ``StopAsyncIteration`` or an exception); :meth:`follow` ends it
    when the batch object is garbage-collected first."""

    __slots__ = ("_finalizer", "_loop", "done", "handed_at", "last", "msgs", "op", "parent", "rec", "start")

    def __init__(self, rec: Recorder, op: Operation, start: int) -> None:
        self.rec = rec
        self.op = op
        self.start = start
        self.parent = current_context()  # (the context of the fetch call, whenever the span is recorded)
        self.last = now()  # the last hand-over (until the first: when fetch returned)
        self.msgs: list[Any] = []
        self.handed_at: list[int] = []
        self.done = False
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def follow(self, batch: Any) -> None:
        """End the fetch when ``batch`` is garbage-collected before its end (dropped by the application)."""
        try:
            self._loop = asyncio.get_running_loop()
            self._finalizer = weakref.finalize(batch, self._dropped)
            self._finalizer.atexit = False  # (at interpreter exit: not recorded)
        except (RuntimeError, TypeError):  # no running loop; not weak-referenceable
            self._finalizer = None

    def handed(self, msg: Any, complete: bool) -> None:
        """The batch handed ``msg`` to the application; ``complete``: it was the batch's last."""
        if self.done:
            return
        self.last = t = now()
        self.msgs.append(msg)
        self.handed_at.append(t)
        if complete:
            self._end(t, None, cancelled=False)

    def ended(self, error: BaseException | None = None) -> None:
        """The batch stopped: it reported its end (``error``: the error it recorded, if any), or
        reading it raised ``error``."""
        if self.done:
            return
        if isinstance(error, asyncio.CancelledError):  # the application stopped waiting: not an error
            self._end(self.last if self.msgs else now(), None, cancelled=True)
        elif error is not None:
            self._end(now(), error, cancelled=False)
        else:
            self._end(self.last if self.msgs else now(), None, cancelled=False)

    def _dropped(self) -> None:
        """The batch was garbage-collected before its end: record it from the event loop (never
        inside the collector, which may have interrupted the SDK's own code)."""
        if self.done or self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(self._abandoned)
        except RuntimeError:  # its loop is closed: nothing records any more
            self.done = True

    def _abandoned(self) -> None:
        self._end(self.last, None, cancelled=True)

    def _end(self, end_time: int, error: BaseException | None, *, cancelled: bool) -> None:
        if self.done:
            return
        self.done = True
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        rec, op = self.rec, self.op
        try:
            if self.msgs or (error is not None and not cancelled):
                fetched(
                    rec, op, self.start, self.msgs, error, parent=self.parent, end_time=end_time, handed=self.handed_at
                )
            else:
                fetched_nothing(rec, op, self.start, cancelled, parent=self.parent, end_time=end_time)
        except Exception:
            _LOG.debug("could not record a fetch span", exc_info=True)
        self.msgs = []
