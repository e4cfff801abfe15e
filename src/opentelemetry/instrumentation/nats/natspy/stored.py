"""nats-py's reads of stored values: key-value ``get``, ``history`` and watchers, object-store ``get``,
and ``JetStreamManager.get_msg``. The reads themselves are the shared ones of :mod:`..stored`.

- ``get_msg`` (``get_last_msg``, direct get included) called by the application: a CLIENT span
  ``get {stream}``. Called by a key-value or object-store read, it makes no span: the message's
  creation context goes to that read's span.
- A key-value watcher's internal ordered-consumer callback makes no span; the creation context of
  each message it gets is kept by stream sequence (the entry's revision) until the application
  takes the entry (``updates()``, ``async for``): a CLIENT span ``receive {bucket}`` then, and
  the message's age (``messaging.nats.jetstream.message.age``).
- ``history()``: one ``kv.history {bucket}`` span with a link per entry.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple
from weakref import WeakKeyDictionary

from opentelemetry.instrumentation.nats import attributes, names
from opentelemetry.instrumentation.nats.names import Op
from opentelemetry.instrumentation.nats.natspy.access import ACCESS, jetstream_client, store
from opentelemetry.instrumentation.nats.natspy.core import TAP, Args, Kwargs
from opentelemetry.instrumentation.nats.natspy.jetstream import JS
from opentelemetry.instrumentation.nats.operation import (
    ACTIVE,
    COLLECT,
    INTERNAL,
    Operation,
    enabled,
    entry,
    installed,
    now,
)
from opentelemetry.instrumentation.nats.stored import (
    Stored,
    StoredRead,
    entry_operation,
    get,
    get_operation,
    of_entries,
    record,
)

_LOG = logging.getLogger(__name__)

_KEPT = 1024  # when a watcher's messages were stored, kept until their entries are taken


def _get_msg_args(
    stream_name: str, seq: int | None = None, subject: str | None = None, *_: Any, **__: Any
) -> tuple[str, int | None, str | None]:
    return stream_name, seq, subject


async def get_msg(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``JetStreamManager.get_msg``: a CLIENT span ``get {stream}`` linked to the message's creation
    context; inside a key-value or object-store read, none (see :func:`..stored.get`)."""

    def describe() -> Operation:
        stream, seq, subject = _get_msg_args(*args, **kwargs)
        return get_operation(ACCESS, jetstream_client(instance), stream, seq, subject)

    return await get(wrapped, args, kwargs, describe, JS.stored_message)


# --- key-value watchers ----------------------------------------------------------------------------


def _capture(stored: Stored, cb: Any) -> Any:
    """``cb`` (a watcher's internal subscription callback) keeping each message's creation context."""

    async def captured(msg: Any) -> Any:
        try:
            _seen(stored, msg)
        except Exception:
            _LOG.debug("could not read the creation context of a watched message", exc_info=True)
        return await cb(msg)

    return captured


def _seen(stored: Stored, msg: Any) -> None:
    rec = stored.rec
    traced = bool(msg.headers) and (rec.live or not rec.idle())
    measured = rec.metrics is not None and rec.measuring()
    if not traced and not measured:
        return
    reply = msg.reply
    meta = attributes.jetstream_message_attributes(reply) or {}
    seq = meta.get(names.JS_SEQUENCE)
    if traced:
        stored.add(msg.headers, msg.subject, msg.data, seq)
    when = attributes.ack_timestamp(reply) if measured and seq is not None else None
    if when is not None:
        stored.stored[seq] = (meta.get(names.JS_STREAM), msg.subject, when)
        if len(stored.stored) > _KEPT:
            del stored.stored[next(iter(stored.stored))]


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
    reading = COLLECT.get()
    stored = Stored(rec, JS.stored_message) if called else reading if isinstance(reading, Stored) else None
    if stored is None:
        return await wrapped(*args, **kwargs)  # internals of another operation
    tap = TAP.set(lambda cb: _capture(stored, cb))
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
        op = entry_operation(ACCESS, watch.client, watch.bucket, update)
        revision = getattr(update, "revision", None)
        record(rec, op, start, lambda: watch.stored.take(revision))
        watch.stored.aged(revision, op)
    except Exception:
        _LOG.debug("could not record a key-value watcher receive span", exc_info=True)
    return update


def kv_read(op: Op, on_result: Any, links_of: Any = None) -> StoredRead:
    """A key-value read (``get``: all links; ``history``: one per returned entry)."""
    if links_of is None:
        return StoredRead(op, names.KV_BUCKET, names.KV_KEY, on_result, JS)
    return StoredRead(op, names.KV_BUCKET, names.KV_KEY, on_result, JS, links_of)


KV_GET = kv_read(names.KV_GET, attributes.revision_attributes)
KV_HISTORY = kv_read(names.KV_HISTORY, attributes.batch_attributes, of_entries)
OBJECT_GET = StoredRead(names.OBJECT_GET, names.OBJECT_BUCKET, names.OBJECT_NAME, attributes.object_info_attributes, JS)
