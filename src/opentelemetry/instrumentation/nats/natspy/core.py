"""Core NATS patches: ``Client.publish/request/subscribe``, subscription receives, ``Msg.respond``.

Each wrapper only translates a nats-py call into an :class:`Operation`; spans are made by
:class:`~opentelemetry.instrumentation.nats.recorder.Recorder`. ``publish`` and ``request`` are the
shared wrappers of :mod:`..sending`, given nats-py's argument shapes.

Fast paths (per message; covered by tests/test_fast_paths.py): as in sending.py, the per-message
wrappers are plain functions that return the coroutine to await; a callback for a message that
carries no context runs without a context switch when there is no SDK.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import wrapt
from opentelemetry.trace import SpanKind

from opentelemetry import context as otel_context
from opentelemetry.instrumentation.nats import names
from opentelemetry.instrumentation.nats.natspy.access import (
    ACCESS,
    iterator_subscription,
    message_client,
    message_sid,
    subscription_queue,
    subscription_subject,
    unwrap_callback,
)
from opentelemetry.instrumentation.nats.operation import (
    ACTIVE,
    PRODUCER,
    Operation,
    _Installed,
    delivered,
    enabled,
    entry,
    fast_operation,
    now,
    size,
    untraced,
)
from opentelemetry.instrumentation.nats.patching import changed
from opentelemetry.instrumentation.nats.propagation import current_context
from opentelemetry.instrumentation.nats.receiving import record_receive
from opentelemetry.instrumentation.nats.sending import Args, Calls, Kwargs, publish_wrapper, request_wrapper
from opentelemetry.instrumentation.nats.streams import process_kind
from opentelemetry.instrumentation.nats.subjects import is_wildcard

_LOG = logging.getLogger(__name__)

# Wraps the callbacks of the subscriptions nats-py makes internally in this context (a key-value
# watch's: see stored.py); they get no process span either way.
TAP: ContextVar[Callable[[Any], Any] | None] = ContextVar("opentelemetry_nats_tap", default=None)

__all__ = ["Args", "Kwargs", "size"]  # (what the other nats-py patch modules import from here)


def _publish_args(
    subject: str, payload: bytes = b"", reply: str = "", headers: dict[str, str] | None = None
) -> tuple[str, bytes, str, dict[str, str] | None]:
    return subject, payload, reply, headers


def _request_args(
    subject: str,
    payload: bytes = b"",
    timeout: float = 0.5,
    old_style: bool = False,
    headers: dict[str, str] | None = None,
) -> tuple[str, bytes, dict[str, str] | None]:
    return subject, payload, headers


_CALLS = Calls(
    access=ACCESS,
    bind_publish=_publish_args,
    bind_request=_request_args,
    request_keywords=frozenset(("timeout", "old_style", "headers")),
    no_reply="",
)
publish = publish_wrapper(_CALLS)
publish.__doc__ = """``Client.publish``: see :func:`..sending.publish_wrapper`."""
request = request_wrapper(_CALLS)
request.__doc__ = """``Client.request``: see :func:`..sending.request_wrapper`."""


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
    body_size = len(data) if type(data) is bytes else size(data)
    cached = rec.subject_entry(ACCESS, client, names.RESPOND, reply)
    if cached is not None:
        op = fast_operation(
            names.RESPOND, PRODUCER, ACCESS, client, reply, body_size, None, None, (), None, None, None, None
        )
        return rec.run_cached(op, cached, wrapped, args, kwargs)
    op = Operation(
        op=names.RESPOND,
        kind=PRODUCER,
        access=ACCESS,
        client=client,
        subject=reply,
        body_size=body_size,
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
            found = rec.delivery(msg.subject, msg.headers, msg.data)
            if found is None:
                return wrapped(*args, **kwargs)
            parent, links, idle = found
            if idle:  # no SDK: the callback just runs in the producer's context
                return _in_context(parent, wrapped, args, kwargs)
            reply, data, client = msg.reply, msg.data, message_client(msg)
            kind, extra = process_kind(reply, client)
            op = fast_operation(
                names.PROCESS,
                kind,
                ACCESS,
                client,
                msg.subject,
                len(data) if type(data) is bytes else size(data),
                reply,
                msg.headers,
                (msg,) if rec.hooks else (),
                message_sid(msg),
                self._self_template,
                self._self_queue,
                extra,
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
    sub = await wrapped(*args, **kwargs)
    changed(sub, _unwrap)  # uninstrument() gives it back the application's callback
    return sub


def _unwrap(sub: Any) -> None:
    unwrap_callback(sub, TracedCallback)


def _with_cb(args: Args, kwargs: Kwargs, cb: Any) -> tuple[Args, Kwargs]:
    """``Client.subscribe``'s arguments with ``cb`` as the callback."""
    if len(args) > 2:
        return (*args[:2], cb, *args[3:]), kwargs
    return args, {**kwargs, "cb": cb}


def message_operation(op: Any, kind: SpanKind, msg: Any, sub_subject: Any, queue: Any, extra: Any) -> Operation:
    """The consumer-side :class:`Operation` for a delivered message (receive spans, micro endpoints)."""
    return delivered(
        op,
        kind,
        ACCESS,
        message_client(msg),
        msg,
        headers=msg.headers,
        sid=message_sid(msg),
        sub_subject=sub_subject,
        queue=queue,
        extra=extra,
    )


async def _record_receive(sub: Any, msg: Any, start: int) -> None:
    """Record the receive span of a message that ``sub`` handed to the application."""
    rec = entry()
    if rec is None:
        return
    client, sid = message_client(msg), message_sid(msg)
    counts = ACCESS.subscription_counts(client, sid) if sid is not None else None
    sub_fields = (subscription_subject(sub), subscription_queue(sub), counts)
    hooked = record_receive(rec, ACCESS, client, msg, start, headers=msg.headers, sid=sid, sub=sub_fields)
    if hooked is not None:
        await hooked


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
