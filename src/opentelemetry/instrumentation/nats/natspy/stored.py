"""Reads of stored values: key-value ``get``, ``history`` and watchers, object-store ``get``, and
``JetStreamManager.get_msg``.

A stored message still carries the context of the operation that wrote it (a ``kv.put``'s, a
JetStream publish's …), possibly long ago. The reader's span is in the reader's own context and
*links* to that creation context, never takes it as its parent: a read is not part of the write's
trace. The span of a read is recorded after the call, when its links are known (as ``fetch``'s).

- ``get_msg`` (``get_last_msg``, direct get included) called by the application: a CLIENT span
  ``get {stream}``. Called by a key-value or object-store read, it makes no span: the message's
  creation context goes to that read's span (:data:`READ`).
- A key-value watcher's internal ordered-consumer callback makes no span; the creation context of
  each message it gets is kept by stream sequence (the entry's revision) until the application
  takes the entry (``updates()``, ``async for``): a CLIENT span ``receive {bucket}`` then, and
  the message's age (``messaging.nats.jetstream.message.age``).
- ``history()``: one ``kv.history {bucket}`` span with a link per entry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Any, NamedTuple
from weakref import WeakKeyDictionary

from opentelemetry.trace import Link, SpanContext, get_current_span

from opentelemetry.instrumentation.nats import attributes, names
from opentelemetry.instrumentation.nats.attributes import Attrs
from opentelemetry.instrumentation.nats.names import Keys, Op
from opentelemetry.instrumentation.nats.natspy.access import ACCESS, jetstream_client, store
from opentelemetry.instrumentation.nats.natspy.core import TAP, Args, Kwargs, size
from opentelemetry.instrumentation.nats.natspy.jetstream import StoreCall
from opentelemetry.instrumentation.nats.operation import (
    ACTIVE,
    CLIENT,
    INTERNAL,
    Operation,
    enabled,
    entry,
    installed,
    now,
    untraced,
)
from opentelemetry.instrumentation.nats.recorder import Recorder

_LOG = logging.getLogger(__name__)

_KEPT = 1024  # creation contexts kept per read or watcher (a watcher's are dropped as entries are taken)


class Stored:
    """The creation contexts of the stored messages a read or a watcher met, by stream sequence; for a
    watcher, also when each was stored (stream, subject, time: its message age, once taken)."""

    __slots__ = ("contexts", "rec", "stored")

    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self.contexts: dict[Any, SpanContext] = {}
        self.stored: dict[Any, tuple[Any, str, int]] = {}

    def add(self, headers: Any, subject: Any, data: Any, seq: Any) -> None:
        """Keep the creation context of a stored message (none: nothing kept)."""
        if not headers:
            return
        span_ctx = get_current_span(self.rec.producer_context(headers, subject, data)).get_span_context()
        if span_ctx.is_valid:
            contexts = self.contexts
            contexts[seq if isinstance(seq, int) else object()] = span_ctx
            if len(contexts) > _KEPT:
                del contexts[next(iter(contexts))]

    def add_message(self, msg: Any) -> None:
        """Keep the creation context of a message read by ``get_msg`` (a nats-py ``RawStreamMsg``)."""
        try:
            self.add(msg.headers, msg.subject, msg.data, msg.seq)
        except Exception:
            _LOG.debug("could not read the creation context of a stored message", exc_info=True)

    def capture(self, cb: Any) -> Any:
        """``cb`` (a watcher's internal subscription callback) keeping each message's creation context."""

        async def captured(msg: Any) -> Any:
            try:
                self._seen(msg)
            except Exception:
                _LOG.debug("could not read the creation context of a watched message", exc_info=True)
            return await cb(msg)

        return captured

    def _seen(self, msg: Any) -> None:
        rec = self.rec
        traced = bool(msg.headers) and (rec.live or not rec.idle())
        measured = rec.metrics is not None and rec.measuring()
        if not traced and not measured:
            return
        reply = msg.reply
        meta = attributes.jetstream_message_attributes(reply) or {}
        seq = meta.get(names.JS_SEQUENCE)
        if traced:
            self.add(msg.headers, msg.subject, msg.data, seq)
        stored = attributes.ack_timestamp(reply) if measured and seq is not None else None
        if stored is not None:
            self.stored[seq] = (meta.get(names.JS_STREAM), msg.subject, stored)
            if len(self.stored) > _KEPT:
                del self.stored[next(iter(self.stored))]

    def links(self, seqs: Iterable[Any] | None = None) -> list[Link] | None:
        """Links to the kept contexts (of ``seqs`` only, in their order, when given)."""
        if seqs is None:
            found = list(self.contexts.values())
        else:
            found = [c for c in (self.contexts.get(s) for s in seqs) if c is not None]
        return [Link(c) for c in found] or None

    def take(self, seq: Any) -> list[Link] | None:
        """The link to the context kept for ``seq``, forgotten from now on."""
        span_ctx = self.contexts.pop(seq, None)
        return [Link(span_ctx)] if span_ctx is not None else None

    def aged(self, seq: Any, op: Operation) -> None:
        """Record the message age of ``seq``, taken by the application now (as an ordered consumer's:
        by stream, no consumer), when ``op`` was measured."""
        found = self.stored.pop(seq, None)
        metrics = self.rec.metrics
        if found is not None and metrics is not None and op.metric_attrs is not None:
            stream, subject, stored = found
            metrics.jetstream_age({names.JS_STREAM: stream}, stored, now(), subject, ordered=True)


# The stored messages read inside a key-value or object-store read (its ``get_msg`` calls, its watch).
READ: ContextVar[Stored | None] = ContextVar("opentelemetry_nats_read", default=None)

LinksOf = Callable[[Stored, Any], list[Link] | None]


def _all(stored: Stored, result: Any) -> list[Link] | None:
    return stored.links()


def _of_entries(stored: Stored, result: Any) -> list[Link] | None:
    """``history()``: one link per returned entry that carries a creation context, in order."""
    return stored.links(getattr(e, "revision", None) for e in result or ())


def _of_message(stored: Stored, msg: Any) -> list[Link] | None:
    stored.add_message(msg)
    return stored.links()


async def _read(rec: Recorder, op: Operation, wrapped: Any, args: Args, kwargs: Kwargs, links_of: LinksOf) -> Any:
    """Run a read as nats-py internals and record its span afterwards, with the links ``links_of`` finds."""
    stored = Stored(rec)
    start = now()
    active, reading = ACTIVE.set(op), READ.set(stored)
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        _record(rec, op, start, stored.links, error=exc)
        raise
    finally:
        READ.reset(reading)
        ACTIVE.reset(active)
    _record(rec, op, start, lambda: links_of(stored, result), result)
    return result


def _record(
    rec: Recorder,
    op: Operation,
    start: int,
    links: Callable[[], list[Link] | None],
    result: Any = None,
    error: BaseException | None = None,
) -> None:
    try:
        span = rec.start(op, links=links() if rec.live or not rec.idle() else None, start_time=start)
        rec.finish(span, op, result, error=error)
    except Exception:
        _LOG.debug("could not record a %s span", op.op.name, exc_info=True)


class StoredRead(StoreCall):
    """A key-value or object-store read: one CLIENT span ``{op} {bucket}`` linked to the creation
    contexts of the stored messages it read."""

    __slots__ = ("links_of",)

    def __init__(self, op: Op, bucket_attr: str, key_attr: str, on_result: Any, links_of: LinksOf = _all) -> None:
        super().__init__(op, bucket_attr, key_attr, on_result)
        self.links_of = links_of

    async def __call__(self, wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        rec = entry()
        if rec is None:
            return await wrapped(*args, **kwargs)
        return await _read(rec, self.operation(instance, args, kwargs), wrapped, args, kwargs, self.links_of)


def _message_attributes(keys: Keys, msg: Any, client: Any = None) -> Attrs:
    """Sequence, subject and body size of the message ``get_msg`` returned (a ``RawStreamMsg``)."""
    attrs: Attrs = {}
    seq, subject, data = getattr(msg, "seq", None), getattr(msg, "subject", None), getattr(msg, "data", None)
    if isinstance(seq, int):
        attrs[names.JS_SEQUENCE] = seq
    if isinstance(subject, str) and subject:
        attrs[names.JS_SUBJECT] = subject
    body = size(data) if data is not None else 0
    if body is not None:
        attrs[names.BODY_SIZE] = body
    return attrs


def _get_msg_args(
    stream_name: str, seq: int | None = None, subject: str | None = None, *_: Any, **__: Any
) -> tuple[str, int | None, str | None]:
    return stream_name, seq, subject


async def get_msg(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``JetStreamManager.get_msg``: a CLIENT span ``get {stream}`` linked to the message's creation
    context; inside a key-value or object-store read, none (that read's span gets the link)."""
    stored = READ.get()
    if stored is not None:
        msg = await wrapped(*args, **kwargs)
        stored.add_message(msg)
        return msg
    rec = entry()
    if rec is None:
        return await untraced(wrapped, args, kwargs)
    try:
        stream, seq, subject = _get_msg_args(*args, **kwargs)
    except TypeError:
        return await untraced(wrapped, args, kwargs)
    stream = stream if isinstance(stream, str) else ""
    extra: Attrs = {names.JS_STREAM: stream}
    if isinstance(subject, str) and subject:
        extra[names.JS_SUBJECT] = subject
    if isinstance(seq, int) and seq:
        extra[names.JS_SEQUENCE] = seq
    op = Operation(
        op=names.GET,
        kind=CLIENT,
        access=ACCESS,
        client=jetstream_client(instance),
        subject=stream,
        inject=False,
        extra=extra,
        name_dest=stream or None,
        on_result=_message_attributes,
    )
    return await _read(rec, op, wrapped, args, kwargs, _of_message)


# --- key-value watchers ----------------------------------------------------------------------------


class _Watch(NamedTuple):
    stored: Stored
    client: Any
    bucket: str


_WATCHERS: WeakKeyDictionary[Any, _Watch] = WeakKeyDictionary()


async def watch(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``KeyValue.watch`` (``watchall``): its consumer, subscription and callback make no spans; the
    creation contexts of the messages it gets are kept for :func:`taken` (or for the enclosing
    ``history`` read)."""
    rec = installed()
    if rec is None or not enabled():
        return await wrapped(*args, **kwargs)
    called = ACTIVE.get() is None  # by the application, not inside history() or keys()
    stored = Stored(rec) if called else READ.get()
    if stored is None:
        return await wrapped(*args, **kwargs)  # internals of another operation
    tap = TAP.set(stored.capture)
    active = ACTIVE.set(INTERNAL) if called else None
    try:
        watcher = await wrapped(*args, **kwargs)
    finally:
        if active is not None:
            ACTIVE.reset(active)
        TAP.reset(tap)
    if called:
        try:
            _WATCHERS[watcher] = _Watch(stored, *store(instance))
        except TypeError:
            _LOG.debug("cannot follow a key-value watcher", exc_info=True)
    return watcher


async def taken(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``KeyWatcher.updates`` / ``__anext__``: a CLIENT span ``receive {bucket}`` for each entry the
    application takes, in its current context, linked to the entry's creation context."""
    start = now()
    update = await wrapped(*args, **kwargs)
    if not isinstance(getattr(update, "key", None), str):  # the "no more values" marker, a stop sentinel
        return update
    rec = entry()
    watch = _WATCHERS.get(instance) if rec is not None else None
    if rec is None or watch is None:
        return update
    try:
        op = _update_operation(watch, update)
        revision = getattr(update, "revision", None)
        _record(rec, op, start, lambda: watch.stored.take(revision))
        watch.stored.aged(revision, op)
    except Exception:
        _LOG.debug("could not record a key-value watcher receive span", exc_info=True)
    return update


def _update_operation(watch: _Watch, update: Any) -> Operation:
    """The receive operation of a watcher entry (a nats-py ``KeyValue.Entry``)."""
    extra: Attrs = {names.KV_BUCKET: watch.bucket, names.KV_KEY: update.key}
    revision, operation, value = update.revision, update.operation, update.value
    if isinstance(revision, int):
        extra[names.KV_REVISION] = revision
    if isinstance(operation, str) and operation:
        extra[names.KV_OPERATION] = operation
    return Operation(
        op=names.RECEIVE,
        kind=CLIENT,
        access=ACCESS,
        client=watch.client,
        subject=watch.bucket,
        body_size=size(value) if value is not None else 0,
        inject=False,
        extra=extra,
        name_dest=watch.bucket or None,
    )


def kv_read(op: Op, on_result: Any, links_of: LinksOf = _all) -> StoredRead:
    """A key-value read (``get``: all links; ``history``: one per returned entry)."""
    return StoredRead(op, names.KV_BUCKET, names.KV_KEY, on_result, links_of)


def object_read(op: Op) -> StoredRead:
    return StoredRead(op, names.OBJECT_BUCKET, names.OBJECT_NAME, attributes.object_info_attributes)


KV_GET = kv_read(names.KV_GET, attributes.revision_attributes)
KV_HISTORY = kv_read(names.KV_HISTORY, attributes.batch_attributes, _of_entries)
OBJECT_GET = object_read(names.OBJECT_GET)
