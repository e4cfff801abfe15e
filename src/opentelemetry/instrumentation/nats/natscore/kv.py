"""nats-key-value patches (``nats.key_value``): the key-value calls and the entries its watchers and
histories hand over.

- ``put``, ``create``, ``update``, ``delete``, ``purge``: the shared :class:`..jetstream.StoreCall`
  spans (``kv.put {bucket}`` …), whose messages carry their context; ``get``: ``kv.get {bucket}``
  linked to the value's writer (the stored-message get underneath hands its message to it).
- Each entry a ``KeyWatcher`` (``watch``, ``watch_all``, ``watch_filtered``) or a ``KeyHistory``
  (``history``) hands over — ``async for``, ``values()``, ``updates()`` — gets a CLIENT span
  ``receive {bucket}`` in the reader's context, linked to the entry's writer, never parented on it,
  and its message age. The entry has no headers: the JetStream message it was made from is handed
  over by the ordered consumer's stream underneath (:data:`~..operation.COLLECT`), which runs as
  client internals (no spans of its own). ``history()`` makes no span of its own (nats-py's, which
  returns a list, makes one ``kv.history`` span).
- ``updates()`` takes the initial values itself and drops them: those make no span.
- ``keys()`` (its ``KeyLister``) and ``purge_deletes`` read the bucket themselves: no spans.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any

from opentelemetry.trace import Link

from opentelemetry.instrumentation.nats import attributes, names
from opentelemetry.instrumentation.nats.jetstream import Args, Kwargs
from opentelemetry.instrumentation.nats.natscore.access import ACCESS, iterator_client, stored_message
from opentelemetry.instrumentation.nats.natscore.jetstream import JS
from opentelemetry.instrumentation.nats.operation import ACTIVE, COLLECT, INTERNAL, _Installed, enabled, now
from opentelemetry.instrumentation.nats.recorder import Recorder
from opentelemetry.instrumentation.nats.stored import (
    StoredRead,
    creation_context,
    entry_operation,
    record,
    taken_age,
)

_LOG = logging.getLogger(__name__)

KV_GET = StoredRead(names.KV_GET, names.KV_BUCKET, names.KV_KEY, attributes.revision_attributes, JS)

# The watcher whose ``updates()`` is taking a step: its initial values are taken and dropped there.
_SKIPPING: ContextVar[Any] = ContextVar("opentelemetry_nats_kv_skipping", default=None)


class _Last:
    """The :data:`~..operation.COLLECT` of one entry's read: the last JetStream message handed over
    underneath (the one the entry was made from; the others were skipped)."""

    __slots__ = ("msg",)

    def __init__(self) -> None:
        self.msg: Any = None

    def __call__(self, msg: Any) -> None:
        self.msg = msg


def taken(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``KeyWatcher.__anext__`` / ``KeyHistory.__anext__``: a ``receive {bucket}`` span per entry."""
    rec = _Installed.recorder
    if rec is None or ACTIVE.get() is not None or not enabled():
        return wrapped(*args, **kwargs)
    return _taken(rec, wrapped, instance, args, kwargs)


async def _taken(rec: Recorder, wrapped: Any, iterator: Any, args: Args, kwargs: Kwargs) -> Any:
    skipped = _SKIPPING.get() is iterator and not iterator.at_eod()  # (updates() drops it)
    start = now()
    last = _Last()
    active, collecting = ACTIVE.set(INTERNAL), COLLECT.set(last)
    try:
        update = await wrapped(*args, **kwargs)
    finally:
        COLLECT.reset(collecting)
        ACTIVE.reset(active)
    if not skipped and (rec.live or not rec.idle()):
        try:
            _received(rec, iterator, update, last.msg, start)
        except Exception:
            _LOG.debug("could not record a key-value entry's receive span", exc_info=True)
    return update


def _received(rec: Recorder, iterator: Any, update: Any, msg: Any, start: int) -> None:
    """Record the receive span of ``update``, which ``msg`` (when known) was made from."""
    bucket = getattr(update, "bucket", None)
    if not isinstance(getattr(update, "key", None), str) or not isinstance(bucket, str):
        return
    op = entry_operation(ACCESS, iterator_client(iterator), bucket, update)
    links: list[Link] | None = None
    if msg is not None:
        headers, subject, data, seq = stored_message(msg)
        span_ctx = creation_context(rec, headers, subject, data) if seq == update.revision else None
        links = [Link(span_ctx)] if span_ctx is not None else None
    record(rec, op, start, lambda: links)
    if msg is not None and op.metric_attrs is not None:
        reply = msg.reply
        stored = attributes.ack_timestamp(reply)
        if stored is not None:
            meta = attributes.jetstream_message_attributes(reply) or {}
            taken_age(rec, op, meta.get(names.JS_STREAM), msg.subject, stored)


def updates(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``KeyWatcher.updates()``: the initial values it takes and drops make no spans."""
    steps = wrapped(*args, **kwargs)
    if _Installed.recorder is None:
        return steps
    return _updates(steps, instance)


async def _updates(steps: AsyncIterator[Any], watcher: Any) -> AsyncIterator[Any]:
    try:
        while True:
            token = _SKIPPING.set(watcher)
            try:
                update = await steps.__anext__()
            except StopAsyncIteration:
                return
            finally:
                _SKIPPING.reset(token)
            yield update
    finally:
        await steps.aclose()  # type: ignore[attr-defined]
