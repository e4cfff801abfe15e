"""JetStream and key-value operations both client families trace the same way: settle (ack …),
key-value and object-store calls, a JetStream publish's operation and the JetStream API funnel.

A family says once where its objects keep what these wrappers read (:class:`JetStreamAccess`: its
accessor, a delivered message's client and headers, a store's client and bucket, a stored message's
fields); the wrappers here are its patch functions. Spans are made by :class:`~.recorder.Recorder`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import Link

from opentelemetry.instrumentation.nats import attributes, names
from opentelemetry.instrumentation.nats.access import ClientAccess
from opentelemetry.instrumentation.nats.attributes import Attrs
from opentelemetry.instrumentation.nats.names import Op
from opentelemetry.instrumentation.nats.operation import (
    CLIENT,
    PRODUCER,
    Operation,
    client_operation,
    entry,
    fast_operation,
    installed,
    size,
    untraced,
)
from opentelemetry.instrumentation.nats.propagation import caller_links, current_context
from opentelemetry.instrumentation.nats.recorder import Recorder
from opentelemetry.instrumentation.nats.streams import CONFIGS, puback_result, with_consumer

Args = tuple[Any, ...]
Kwargs = dict[str, Any]
Wrapper = Callable[[Any, Any, Args, Kwargs], Any]

EXPECTED_STREAM_HEADER = "Nats-Expected-Stream"
_PUBLISH, _JS_SUBJECT = names.PUBLISH, names.JS_SUBJECT


def _as_is(headers: Any) -> Any:
    return headers


@dataclass(frozen=True)
class JetStreamAccess:
    """Where one client family keeps what its JetStream and key-value spans read.

    ``message_client(msg)``: the client of a delivered JetStream message. ``store(instance)``: the
    client and bucket of a key-value (or object) store. ``stored_message(msg)``: a message read back
    from a stream as ``(headers, subject, data, stream sequence)``, its headers as the recorder reads
    them. ``headers(h)``: a delivered message's headers as the recorder reads them."""

    access: ClientAccess
    message_client: Callable[[Any], Any]
    store: Callable[[Any], tuple[Any, str]]
    stored_message: Callable[[Any], tuple[Any, Any, Any, Any]]
    headers: Callable[[Any], Any] = _as_is


def api_call(client_of: Callable[[Any], Any]) -> Wrapper:
    """The patch function of a family's JetStream API funnel (every ``$JS.API`` request and its JSON
    response; ``client_of(instance)``: its connection): no spans for its request; the stream and
    consumer configurations in its responses are kept (see streams.py) before the caller reads them."""

    async def api_request(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        response = await untraced(wrapped, args, kwargs)
        if installed() is not None:
            CONFIGS.seen(client_of(instance), response)
        return response

    return api_request


def expected_stream(headers: Any) -> str | None:
    """The stream a JetStream publish's ``headers`` (as the recorder reads them) expect, if any."""
    try:
        value = headers.get(EXPECTED_STREAM_HEADER)
    except Exception:  # (not a mapping: the client refuses it itself)
        return None
    value = value[0] if type(value) is list and value else value
    return value if isinstance(value, str) and value else None


def publish_operation(
    rec: Recorder,
    access: ClientAccess,
    client: Any,
    subject: str,
    payload: Any,
    headers: Any,
    *,
    readable: Any = None,
    stream: str | None = None,
) -> tuple[Operation, list[Link] | None] | None:
    """The operation of a JetStream publish (``None``: an excluded subject, not traced), and the link
    to the caller's own creation context when its headers carry one (then they are sent unchanged and
    the span is CLIENT). ``readable``: ``headers`` as the recorder reads them (``None``: as they are);
    ``stream``: the stream the call expects, else its ``Nats-Expected-Stream`` header's."""
    if rec.excluding is not None and rec.excluded(subject):
        return None
    if readable is None:
        readable = headers
    links = caller_links(readable) if readable else None
    extra: Attrs = {names.JS_SUBJECT: subject}
    expected = stream or (expected_stream(readable) if readable else None)
    if expected:
        extra[names.JS_EXPECTED_STREAM] = expected
    op = Operation(
        op=names.PUBLISH,
        kind=PRODUCER if links is None else CLIENT,
        access=access,
        client=client,
        subject=subject,
        body_size=len(payload) if type(payload) is bytes else size(payload),
        headers=readable,
        hook_args=(subject, payload, headers) if rec.hooks else (),
        extra=extra,
        inject=links is None,
        on_result=puback_result,
    )
    return op, links


def publish_call(
    rec: Recorder,
    access: ClientAccess,
    client: Any,
    wrapped: Any,
    args: Args,
    kwargs: Kwargs,
    *,
    subject: str,
    payload: Any,
    headers: Any,
    readable: Any = None,
    stream: str | None = None,
    plain: bool = False,
) -> Any:
    """A family's ``JetStream.publish`` call (its arguments taken apart: ``subject``, ``payload``,
    ``headers``, ``readable`` and ``stream`` as for :func:`publish_operation`) with its span; returns
    the coroutine to await. ``plain``: ``wrapped(subject, payload, headers=…, **kwargs)`` makes the
    same call with those headers, and nothing in it adds headers of its own (no expected stream or
    TTL); then, without headers of the caller's, the context goes in as the call's headers (see
    :meth:`.Recorder.run_cached`'s ``carry``)."""
    cached = None  # (a call with headers of the caller's takes the full path: they are read)
    if headers is None and (rec.excluding is None or not rec.excluded(subject)):
        cached = rec.subject_entry(access, client, _PUBLISH, subject)
        if cached is not None and plain:
            body, extra = len(payload) if type(payload) is bytes else size(payload), {_JS_SUBJECT: subject}
            op = fast_operation(
                _PUBLISH, PRODUCER, access, client, subject, body, None, None, (), None, None, None, extra
            )
            op.on_result = puback_result
            return rec.run_cached(op, cached, wrapped, (subject, payload), kwargs, carry=True)
    described = publish_operation(rec, access, client, subject, payload, headers, readable=readable, stream=stream)
    if described is None:
        return wrapped(*args, **kwargs)
    op, links = described
    if cached is not None:
        return rec.run_cached(op, cached, wrapped, args, kwargs)
    return rec.run(op, wrapped, args, kwargs, parent=current_context(), links=links)


class Settle:
    """``ack`` / ``nak`` / ``term`` / ``in_progress`` (and their variants) of a delivered JetStream
    message: a CLIENT span ``{op} {stream}``, a child of the current span (else of the message's
    creation context) with a link to the latter; the message's JetStream metadata as attributes. The
    delay of a ``nak`` that gives one (its first argument, or ``delay=``) is recorded too."""

    __slots__ = ("js", "op")

    def __init__(self, op: Op, js: JetStreamAccess) -> None:
        self.op = op
        self.js = js

    async def __call__(self, wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        rec = entry()
        reply = getattr(instance, "reply", None)
        if rec is None or not isinstance(reply, str) or not reply.startswith(names.JS_ACK_PREFIX):
            return await wrapped(*args, **kwargs)
        js = self.js
        client = js.message_client(instance)
        extra = with_consumer(client, attributes.ack_subject_attributes(reply))
        if self.op is names.NAK:
            delay = args[0] if args else kwargs.get("delay")
            if isinstance(delay, (int, float)) and not isinstance(delay, bool) and delay:
                extra[names.JS_NAK_DELAY] = float(delay)
        op = Operation(  # (named after the stream; its destination is the message's subject)
            op=self.op,
            kind=CLIENT,
            access=js.access,
            client=client,
            subject=instance.subject,
            inject=False,
            extra=extra,
            name_dest=extra.get(names.JS_STREAM),
        )
        parent, links = rec.settle_parent(js.headers(instance.headers), instance.subject, instance.data)
        return await rec.run(op, wrapped, args, kwargs, parent=parent, links=links)


class StoreCall:
    """A key-value or object-store method: one CLIENT span ``{op} {bucket}``; internals make none.

    ``inject``: the messages it writes carry its context (a value's writer, read back later)."""

    __slots__ = ("bucket_attr", "inject", "js", "key_attr", "on_result", "op")

    def __init__(
        self, op: Op, bucket_attr: str, key_attr: str, on_result: Any, js: JetStreamAccess, *, inject: bool = False
    ) -> None:
        self.op = op
        self.bucket_attr = bucket_attr
        self.key_attr = key_attr
        self.on_result = on_result
        self.js = js
        self.inject = inject

    def operation(self, instance: Any, args: Args, kwargs: Kwargs) -> Operation:
        """The operation of a call on ``instance`` (a key-value or object store)."""
        client, bucket = self.js.store(instance)
        key = args[0] if args else kwargs.get("key", kwargs.get("name"))
        extra: Attrs = {self.bucket_attr: bucket}
        if isinstance(key, str):
            extra[self.key_attr] = key
        value = args[1] if len(args) > 1 else kwargs.get("value", kwargs.get("data"))
        return client_operation(
            self.op,
            self.js.access,
            client,
            bucket,
            extra,
            self.inject,
            body_size=size(value) if isinstance(value, (bytes, bytearray, str)) else None,
            on_result=self.on_result,
        )

    async def __call__(self, wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        rec = entry()
        if rec is None:
            return await wrapped(*args, **kwargs)
        return await rec.run(self.operation(instance, args, kwargs), wrapped, args, kwargs)


def kv(op: Op, js: JetStreamAccess, *, inject: bool = False) -> StoreCall:
    """A key-value write (or delete): the revision it returns is recorded."""
    return StoreCall(op, names.KV_BUCKET, names.KV_KEY, attributes.revision_attributes, js, inject=inject)


async def internal(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """Calls that read or manage JetStream state themselves (management, key listings …): no spans
    for the requests and messages underneath."""
    return await untraced(wrapped, args, kwargs)
