"""Core NATS patches: ``Client.publish/request/subscribe``, subscription receives, ``Msg.respond``.

Each wrapper only translates a nats-py call into an :class:`Operation`; spans are made by
:class:`~opentelemetry.instrumentation.nats.recorder.Recorder`.

Fast paths (per message; covered by tests/test_fast_paths.py): the per-message wrappers are plain
functions that return the coroutine to await — nats-py's own, or :meth:`Recorder.run`'s — rather
than coroutines awaiting it (one coroutine frame less per call; wrapt calls a wrapper synchronously
and the caller awaits what it returns; exceptions and cancellation reach the caller from the same
coroutine as before). With no SDK and nothing to carry (an empty current context, the stock W3C
propagators) a call passes straight through, and a callback for a message that carries no context
runs without a context switch. The installed recorder is read from its holder directly, and the
usual argument shapes (``publish(subject, payload[, reply=…, headers=…])``) are taken apart without
binding.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import wrapt
from opentelemetry.trace import SpanKind

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.nats import attributes, names
from opentelemetry.instrumentation.nats.natspy.access import (
    ACCESS,
    iterator_subscription,
    message_client,
    message_sid,
    subscription_queue,
    subscription_subject,
)
from opentelemetry.instrumentation.nats.operation import (
    ACTIVE,
    CLIENT,
    CONSUMER,
    PRODUCER,
    SERVER,
    Operation,
    _Installed,
    enabled,
    entry,
    now,
    untraced,
)
from opentelemetry.instrumentation.nats.otel_private import BAGGAGE_KEY
from opentelemetry.instrumentation.nats.propagation import (
    callback_context,
    caller_links,
    current_context,
    nothing_to_inject,
)
from opentelemetry.instrumentation.nats.streams import with_consumer
from opentelemetry.instrumentation.nats.subjects import is_wildcard

_LOG = logging.getLogger(__name__)

Args = tuple[Any, ...]
Kwargs = dict[str, Any]

# Wraps the callbacks of the subscriptions nats-py makes internally in this context (a key-value
# watch's: see stored.py); they get no process span either way.
TAP: ContextVar[Callable[[Any], Any] | None] = ContextVar("opentelemetry_nats_tap", default=None)


def size(payload: Any) -> int | None:
    try:
        return len(payload)
    except TypeError:
        return None


def _publish_args(
    subject: str, payload: bytes = b"", reply: str = "", headers: dict[str, str] | None = None
) -> tuple[str, bytes, str, dict[str, str] | None]:
    return subject, payload, reply, headers


_PUBLISH_KEYWORDS = frozenset(("reply", "headers"))
_NO_KWARGS: Kwargs = {}  # (never mutated: callees unpack it)
_PUBLISH, _JS_PREFIX = names.PUBLISH, names.JS_PREFIX
_REQUEST_KEYWORDS = frozenset(("timeout", "old_style", "headers"))


def publish(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``Client.publish``: a PRODUCER span (CLIENT when the caller's headers carry a creation
    context, sent unchanged); inside another operation, only the injection."""
    rec = _Installed.recorder
    active = ACTIVE.get()
    if rec is None or (active is not None and not active.inject):
        return wrapped(*args, **kwargs)
    live = rec.live or not rec.idle()
    if not live and nothing_to_inject():
        return wrapped(*args, **kwargs)  # no SDK, nothing to carry
    # inside an operation whose span is not current (Recorder.run without hooks) only nats-py
    # internals run, so nothing can have suppressed instrumentation since its entry check
    ctx = current_context()
    if (active is None or active.span is None) and ctx and not enabled():
        return wrapped(*args, **kwargs)
    if len(args) == 2 and not kwargs:
        (subject, payload), reply, headers = args, "", None
    elif len(args) == 2 and kwargs.keys() <= _PUBLISH_KEYWORDS:
        (subject, payload), reply, headers = args, kwargs.get("reply", ""), kwargs.get("headers")
    else:
        try:
            subject, payload, reply, headers = _publish_args(*args, **kwargs)
        except TypeError:
            return wrapped(*args, **kwargs)
    if active is not None:  # nats-py internals of request/respond/…: inject, no span of its own
        if headers:
            _record_features(active, headers)
        # (the operation's span - or, when that is None, its current span: never an empty context)
        headers = rec.inject(
            ACCESS, instance, payload, headers, span_current=True, span=active.span, parent=active.parent
        )
        return wrapped(subject, payload, reply, headers)
    if (
        not isinstance(subject, str)
        or (rec.excluding is not None and rec.excluded(subject))
        or subject.startswith(_JS_PREFIX)
    ):
        return wrapped(*args, **kwargs)
    # the caller's own creation context in the headers: sent unchanged, a CLIENT span linked to it
    links = caller_links(headers) if headers else None
    if not live:  # no SDK: the no-op span would only carry the current context
        return wrapped(subject, payload, reply, headers if links else rec.inject(ACCESS, instance, payload, headers))
    op = Operation(
        op=_PUBLISH,
        kind=PRODUCER if links is None else CLIENT,
        access=ACCESS,
        client=instance,
        subject=subject,
        body_size=len(payload) if type(payload) is bytes else size(payload),
        reply_to=reply,
        headers=headers,
        hook_args=(subject, payload, headers) if rec.hooks else (),
    )
    if headers:
        op.extra = attributes.feature_header_attributes(headers)
    # the current context as the explicit parent: the SDK (and its sampler) need not look it up again
    args = (subject, payload, reply, headers)
    if links is None:
        return rec.run(op, wrapped, args, _NO_KWARGS, parent=ctx, inject=True)
    return rec.run(op, wrapped, args, _NO_KWARGS, parent=ctx, links=links)


# Operations whose span records the JetStream message features in the headers their nats-py
# internals send (JetStream publish: with the Nats-TTL of ``msg_ttl=``; key-value writes and purges)
_FEATURE_OPS = (names.PUBLISH, names.REQUEST, names.KV_PUT, names.KV_CREATE, names.KV_UPDATE, names.KV_PURGE)


def _record_features(active: Operation, headers: Any) -> None:
    """Record on ``active``'s span the JetStream message features (TTL, atomic batch, counter,
    schedule) of the headers its nats-py internals send (see :func:`.attributes.feature_header_attributes`)."""
    try:
        if active.op not in _FEATURE_OPS:
            return
        # the operation's span, or when that is not set (Recorder.run with hooks) the current one: its span
        span = active.span if active.span is not None else trace.get_current_span()
        if span.is_recording():
            found = attributes.feature_header_attributes(headers)
            if found is not None:
                span.set_attributes(found)
    except Exception:
        _LOG.debug("could not record the JetStream features of a message", exc_info=True)


def _request_args(
    subject: str,
    payload: bytes = b"",
    timeout: float = 0.5,
    old_style: bool = False,
    headers: dict[str, str] | None = None,
) -> tuple[str, bytes, dict[str, str] | None]:
    return subject, payload, headers


def request(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``Client.request``: one CLIENT span; its inner publish injects and makes no span."""
    rec = _Installed.recorder
    if rec is None or ACTIVE.get() is not None or not enabled():
        return wrapped(*args, **kwargs)
    if len(args) == 2 and (not kwargs or kwargs.keys() <= _REQUEST_KEYWORDS):
        (subject, payload), headers = args, kwargs.get("headers")
    else:
        try:
            subject, payload, headers = _request_args(*args, **kwargs)
        except TypeError:
            return wrapped(*args, **kwargs)
    if (
        not isinstance(subject, str)
        or (rec.excluding is not None and rec.excluded(subject))
        or subject.startswith(names.JS_PREFIX)
    ):
        return untraced(wrapped, args, kwargs)  # its inner publish/subscribe stay internal too
    links = caller_links(headers) if headers else None  # the caller's creation context: sent unchanged
    op = Operation(
        op=names.REQUEST,
        kind=CLIENT,
        access=ACCESS,
        client=instance,
        subject=subject,
        body_size=len(payload) if type(payload) is bytes else size(payload),
        headers=headers,
        hook_args=(subject, payload, headers) if rec.hooks else (),
        inject=links is None,
        on_result=attributes.response_attributes,
    )
    return rec.run(op, wrapped, args, kwargs, parent=current_context(), links=links)


def respond(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``Msg.respond``: a PRODUCER span to the reply subject; the echoed ``traceparent`` is replaced."""
    rec = _Installed.recorder
    reply = getattr(instance, "reply", None)
    client = message_client(instance)
    if rec is None or not reply or not client or ACTIVE.get() is not None or not enabled():
        return wrapped(*args, **kwargs)
    if rec.excluding is not None and (rec.excluded(reply) or rec.excluded(instance.subject)):
        # the reply to an excluded request is excluded too
        return untraced(wrapped, args, kwargs)
    data = args[0] if args else kwargs.get("data")
    op = Operation(
        op=names.RESPOND,
        kind=PRODUCER,
        access=ACCESS,
        client=client,
        subject=reply,
        body_size=len(data) if type(data) is bytes else size(data),
        hook_args=(reply, data, instance.headers) if rec.hooks else (),
    )
    return rec.run(op, wrapped, args, kwargs, parent=current_context())


class TracedCallback(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """A subscription callback with a process span per message: a transparent proxy of the user's
    callback (nats-py still sees a coroutine function), called through a Python ``__call__`` (a
    ``wrapt.FunctionWrapper`` costs about 0.4 µs more per call)."""

    def __init__(self, cb: Any, subject: str, queue: str | None) -> None:
        super().__init__(cb)
        self._self_template = subject if is_wildcard(subject) else None
        self._self_queue = queue or None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        wrapped = self.__wrapped__
        if ACTIVE.get() is not None:  # the callback task was created inside an instrumented call
            ACTIVE.set(None)
        rec = _Installed.recorder  # (entry() inlined: ACTIVE is None here)
        msg = args[0] if len(args) == 1 and not kwargs else None
        if rec is None or msg is None or (current_context() and not enabled()):
            return wrapped(*args, **kwargs)
        try:
            subject = msg.subject
            if rec.excluding is not None and rec.excluded(subject):
                return wrapped(*args, **kwargs)
            idle = not rec.live and rec.idle()
            if idle and not msg.headers and not rec.envelopes and not current_context():
                return wrapped(*args, **kwargs)  # no SDK and no context to carry or to switch from
            parent, links = rec.consumer_parent(msg.headers, subject, msg.data, idle)
        except Exception:
            _LOG.debug("not tracing an unusual message", exc_info=True)
            return wrapped(*args, **kwargs)
        if idle:  # no SDK: the callback just runs in the producer's context
            if not parent and not current_context():  # (empty already: nothing to switch)
                return wrapped(*args, **kwargs)
            if BAGGAGE_KEY in parent:  # (its baggage set aside, see callback_context)
                parent = callback_context(None, parent)
            return _in_context(parent, wrapped, args, kwargs)
        try:
            reply = msg.reply
            jetstream = bool(reply) and reply.startswith(names.JS_ACK_PREFIX)
            kind = SERVER if reply and not jetstream else CONSUMER
            data, client = msg.data, message_client(msg)
            op = Operation(
                op=names.PROCESS,
                kind=kind,
                access=ACCESS,
                client=client,
                subject=subject,
                body_size=len(data) if type(data) is bytes else size(data),
                reply_to=reply,
                headers=msg.headers,
                hook_args=(msg,) if rec.hooks else (),
                sid=message_sid(msg),
                template=self._self_template,
                queue=self._self_queue,
                extra=with_consumer(client, attributes.ack_subject_attributes(reply)) if jetstream else None,
            )
        except Exception:
            _LOG.debug("not tracing an unusual message", exc_info=True)
            return wrapped(*args, **kwargs)
        return rec.run(op, wrapped, args, kwargs, parent=parent, links=links)


async def _in_context(ctx: Any, wrapped: Any, args: Args, kwargs: Kwargs) -> Any:
    token = otel_context.attach(ctx)
    try:
        return await wrapped(*args, **kwargs)
    finally:
        otel_context.detach(token)


def _bind_subscribe_cb(args: Args, kwargs: Kwargs) -> tuple[Any, str, str]:
    subject = args[0] if args else kwargs.get("subject", "")
    queue = args[1] if len(args) > 1 else kwargs.get("queue", "")
    cb = args[2] if len(args) > 2 else kwargs.get("cb")
    return cb, subject, queue


async def subscribe(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``Client.subscribe``: wrap the user's callback (internal subscriptions are left alone, or
    observed by :data:`TAP`)."""
    rec = entry()
    if rec is None:
        tap = TAP.get()
        if tap is not None and _Installed.recorder is not None:
            cb = _bind_subscribe_cb(args, kwargs)[0]
            if cb is not None:
                args, kwargs = _with_cb(args, kwargs, tap(cb))
        return await wrapped(*args, **kwargs)
    cb, subject, queue = _bind_subscribe_cb(args, kwargs)
    if cb is None or type(cb) is TracedCallback or not isinstance(subject, str):
        return await wrapped(*args, **kwargs)
    args, kwargs = _with_cb(args, kwargs, TracedCallback(cb, subject, queue if isinstance(queue, str) else None))
    return await wrapped(*args, **kwargs)


def _with_cb(args: Args, kwargs: Kwargs, cb: Any) -> tuple[Args, Kwargs]:
    """``Client.subscribe``'s arguments with ``cb`` as the callback."""
    if len(args) > 2:
        return (*args[:2], cb, *args[3:]), kwargs
    return args, {**kwargs, "cb": cb}


def message_operation(op: Any, kind: SpanKind, msg: Any, sub_subject: Any, queue: Any, extra: Any) -> Operation:
    """The consumer-side :class:`Operation` for a delivered message (receive spans, micro endpoints);
    ``sub_subject`` becomes the template when it has wildcards."""
    return Operation(
        op=op,
        kind=kind,
        access=ACCESS,
        client=message_client(msg),
        subject=msg.subject,
        template=sub_subject if isinstance(sub_subject, str) and is_wildcard(sub_subject) else None,
        queue=queue or None,
        body_size=size(msg.data),
        reply_to=msg.reply,
        headers=msg.headers,
        sid=message_sid(msg),
        hook_args=(msg,),
        extra=extra,
    )


async def _record_receive(sub: Any, msg: Any, start: int) -> None:
    """Record the receive span of a message that ``sub`` handed to the application."""
    rec = entry()
    if rec is None:
        return
    try:
        subject = msg.subject
        if rec.excluded(subject):
            return
        op = message_operation(
            names.RECEIVE,
            CLIENT,
            msg,
            subscription_subject(sub),
            subscription_queue(sub),
            attributes.jetstream_message_attributes(msg.reply),
        )
        await rec.received(op, msg, start)
    except Exception:
        _LOG.debug("could not record a receive span", exc_info=True)


async def next_msg(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``Subscription.next_msg``: a receive span when a message is handed over."""
    start = now()
    msg = await wrapped(*args, **kwargs)
    await _record_receive(instance, msg, start)
    return msg


async def anext_msg(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``async for msg in sub.messages``: a receive span per message."""
    start = now()
    msg = await wrapped(*args, **kwargs)
    await _record_receive(iterator_subscription(instance), msg, start)
    return msg
