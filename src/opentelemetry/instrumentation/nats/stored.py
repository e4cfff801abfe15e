"""Reads of stored messages, shared by the client families: a stored message's ``get``, key-value and
object-store reads, and the entries a key-value watcher or history hands over.

A stored message still carries the context of the operation that wrote it (a ``kv.put``'s, a
JetStream publish's …), possibly long ago. The reader's span is in the reader's own context and
*links* to that creation context, never takes it as its parent: a read is not part of the write's
trace. The span of a read is recorded after the call, when its links are known (as ``fetch``'s).

While a read runs, :data:`~.operation.COLLECT` is its :class:`Stored`: the stored-message gets
underneath hand it their messages and make no span of their own (:func:`get`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.trace import Link, SpanContext, get_current_span

from opentelemetry.instrumentation.nats import names
from opentelemetry.instrumentation.nats.access import ClientAccess
from opentelemetry.instrumentation.nats.attributes import Attrs
from opentelemetry.instrumentation.nats.jetstream import Args, JetStreamAccess, Kwargs, StoreCall
from opentelemetry.instrumentation.nats.names import Keys, Op
from opentelemetry.instrumentation.nats.operation import (
    ACTIVE,
    CLIENT,
    COLLECT,
    Operation,
    entry,
    now,
    size,
    untraced,
)
from opentelemetry.instrumentation.nats.recorder import Recorder

_LOG = logging.getLogger(__name__)

_KEPT = 1024  # creation contexts kept per read or watcher (a watcher's are dropped as entries are taken)

# a stored message as (headers as the recorder reads them, subject, data, stream sequence)
Fields = Callable[[Any], tuple[Any, Any, Any, Any]]


def creation_context(rec: Recorder, headers: Any, subject: Any, data: Any) -> SpanContext | None:
    """The span context a stored message's headers carry: its writer's; ``None``: none."""
    if not headers:
        return None
    span_ctx = get_current_span(rec.producer_context(headers, subject, data)).get_span_context()
    return span_ctx if span_ctx.is_valid else None


class Stored:
    """The creation contexts of the stored messages a read or a watcher met, by stream sequence; for a
    watcher, also when each was stored (stream, subject, time: its message age, once taken).

    Called with a message (the :data:`~.operation.COLLECT` hand-off), it keeps that message's
    creation context, reading it with the family's ``fields``."""

    __slots__ = ("contexts", "fields", "rec", "stored")

    def __init__(self, rec: Recorder, fields: Fields) -> None:
        self.rec = rec
        self.fields = fields
        self.contexts: dict[Any, SpanContext] = {}
        self.stored: dict[Any, tuple[Any, str, int]] = {}

    def add(self, headers: Any, subject: Any, data: Any, seq: Any) -> None:
        """Keep the creation context of a stored message (none: nothing kept)."""
        span_ctx = creation_context(self.rec, headers, subject, data)
        if span_ctx is not None:
            contexts = self.contexts
            contexts[seq if isinstance(seq, int) else object()] = span_ctx
            if len(contexts) > _KEPT:
                del contexts[next(iter(contexts))]

    def __call__(self, msg: Any) -> None:
        try:
            self.add(*self.fields(msg))
        except Exception:
            _LOG.debug("could not read the creation context of a stored message", exc_info=True)

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
        """Record the message age of ``seq``, taken by the application now, when ``op`` was measured."""
        found = self.stored.pop(seq, None)
        if found is not None:
            taken_age(self.rec, op, *found)


def taken_age(rec: Recorder, op: Operation, stream: Any, subject: str, stored: int) -> None:
    """Record the message age of a stored message the application takes now from a key-value
    watcher (by stream, no consumer: an ordered consumer's), when ``op`` was measured."""
    metrics = rec.metrics
    if metrics is not None and op.metric_attrs is not None:
        metrics.jetstream_age({names.JS_STREAM: stream}, stored, now(), subject, ordered=True)


LinksOf = Callable[[Stored, Any], list[Link] | None]


def _all(stored: Stored, result: Any) -> list[Link] | None:
    return stored.links()


def of_entries(stored: Stored, result: Any) -> list[Link] | None:
    """One link per returned entry that carries a creation context, in order (nats-py's ``history()``)."""
    return stored.links(getattr(e, "revision", None) for e in result or ())


def _of_message(stored: Stored, msg: Any) -> list[Link] | None:
    stored(msg)
    return stored.links()


async def read(
    rec: Recorder, op: Operation, wrapped: Any, args: Args, kwargs: Kwargs, links_of: LinksOf, fields: Fields
) -> Any:
    """Run a read as client internals, collecting the stored messages they read, and record its
    span afterwards with the links ``links_of`` finds."""
    stored = Stored(rec, fields)
    start = now()
    active, collecting = ACTIVE.set(op), COLLECT.set(stored)
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        record(rec, op, start, stored.links, error=exc)
        raise
    finally:
        COLLECT.reset(collecting)
        ACTIVE.reset(active)
    record(rec, op, start, lambda: links_of(stored, result), result)
    return result


def record(
    rec: Recorder,
    op: Operation,
    start: int,
    links: Callable[[], list[Link] | None],
    result: Any = None,
    error: BaseException | None = None,
) -> None:
    """Record the span of ``op``, which started at ``start`` and has ended, with ``links()``."""
    try:
        span = rec.start(op, links=links() if rec.live or not rec.idle() else None, start_time=start)
        rec.finish(span, op, result, error=error)
    except Exception:
        _LOG.debug("could not record a %s span", op.op.name, exc_info=True)


class StoredRead(StoreCall):
    """A key-value or object-store read: one CLIENT span ``{op} {bucket}`` linked to the creation
    contexts of the stored messages it read."""

    __slots__ = ("links_of",)

    def __init__(
        self, op: Op, bucket_attr: str, key_attr: str, on_result: Any, js: JetStreamAccess, links_of: LinksOf = _all
    ) -> None:
        super().__init__(op, bucket_attr, key_attr, on_result, js)
        self.links_of = links_of

    async def __call__(self, wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        rec = entry()
        if rec is None:
            return await wrapped(*args, **kwargs)
        op = self.operation(instance, args, kwargs)
        return await read(rec, op, wrapped, args, kwargs, self.links_of, self.js.stored_message)


# --- a stored message's get ------------------------------------------------------------------------


def message_attributes(keys: Keys, msg: Any, client: Any = None) -> Attrs:
    """Sequence, subject and body size of the stored message a get returned (nats-py names its
    sequence ``seq``, nats-jetstream ``sequence``)."""
    attrs: Attrs = {}
    seq = getattr(msg, "seq", None)
    if seq is None:
        seq = getattr(msg, "sequence", None)
    subject, data = getattr(msg, "subject", None), getattr(msg, "data", None)
    if isinstance(seq, int):
        attrs[names.JS_SEQUENCE] = seq
    if isinstance(subject, str) and subject:
        attrs[names.JS_SUBJECT] = subject
    body = size(data) if data is not None else 0
    if body is not None:
        attrs[names.BODY_SIZE] = body
    return attrs


def get_operation(access: ClientAccess, client: Any, stream: Any, seq: Any, subject: Any) -> Operation:
    """The CLIENT operation ``get {stream}`` of a stored message read by sequence or by subject."""
    stream = stream if isinstance(stream, str) else ""
    extra: Attrs = {names.JS_STREAM: stream}
    if isinstance(subject, str) and subject:
        extra[names.JS_SUBJECT] = subject
    if isinstance(seq, int) and seq:
        extra[names.JS_SEQUENCE] = seq
    return Operation(
        op=names.GET,
        kind=CLIENT,
        access=access,
        client=client,
        subject=stream,
        inject=False,
        extra=extra,
        name_dest=stream or None,
        on_result=message_attributes,
    )


async def get(
    wrapped: Any, args: Args, kwargs: Kwargs, describe: Callable[[], Operation | None], fields: Fields
) -> Any:
    """A stored message's get: inside a read that collects them (:data:`~.operation.COLLECT`), the
    message goes to it and no span is made; else a ``get {stream}`` span (``describe()``: its
    operation, ``None`` when the call's arguments are unusual) linked to the message's creation context."""
    collect = COLLECT.get()
    if collect is not None:
        msg = await wrapped(*args, **kwargs)
        collect(msg)
        return msg
    rec = entry()
    if rec is None:
        return await untraced(wrapped, args, kwargs)
    try:
        op = describe()
    except Exception:
        op = None
    if op is None:
        return await untraced(wrapped, args, kwargs)
    return await read(rec, op, wrapped, args, kwargs, _of_message, fields)


# --- key-value entries handed over one by one ------------------------------------------------------


def entry_operation(access: ClientAccess, client: Any, bucket: str, update: Any) -> Operation:
    """The ``receive {bucket}`` operation of a key-value entry a watcher (or history) handed over:
    its key, revision and, for a delete or purge marker, its operation."""
    extra: Attrs = {names.KV_BUCKET: bucket, names.KV_KEY: update.key}
    revision, operation, value = update.revision, update.operation, update.value
    operation = getattr(operation, "value", operation)  # (nats-key-value's KeyValueOp)
    if isinstance(revision, int):
        extra[names.KV_REVISION] = revision
    if isinstance(operation, str) and operation and operation != "PUT":
        extra[names.KV_OPERATION] = operation
    return Operation(
        op=names.RECEIVE,
        kind=CLIENT,
        access=access,
        client=client,
        subject=bucket,
        body_size=size(value) if value is not None else 0,
        inject=False,
        extra=extra,
        name_dest=bucket or None,
    )
