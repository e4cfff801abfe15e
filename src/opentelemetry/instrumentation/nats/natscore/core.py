"""nats-core patches (``nats.client``): ``Client.publish/request``, ``Subscription.next`` and the
callbacks of ``Subscription.add_callback``.

``publish`` and ``request`` are the shared wrappers of :mod:`..sending`, given nats-core's argument
shapes: a subject (and reply) may be ``bytes`` (decoded for the span, passed on as given), headers a
``Headers`` object or a dict whose values may be lists (read through :func:`.access.header_view`,
copied when the context is injected; the caller's object is never changed). ``request`` records a
status reply given back with ``return_on_error=True`` as the error it would have raised.

``Subscription.next`` also serves ``async for msg in sub`` and ``sub.messages``: a receive span per
message handed over (the JetStream consumers' own reads run under their operation and make none).
Callbacks are synchronous and run inside the client's read loop, whose context is the one
``connect()`` ran in: each message's process span is made current explicitly
(:meth:`~..recorder.Recorder.run_sync`), a child of the producer's context (or a root linked to it).

Fast paths: as in sending.py; without an SDK ``next`` passes straight through (a receive span would
record nothing), and a callback for a message that carries no context runs without a context switch.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import wrapt

from opentelemetry.instrumentation.nats import names
from opentelemetry.instrumentation.nats.natscore.access import (
    ACCESS,
    header_view,
    receive_fields,
    subscription_client,
    subscription_fields,
    unwrap_callbacks,
)
from opentelemetry.instrumentation.nats.operation import (
    ACTIVE,
    Operation,
    _Installed,
    delivered,
    enabled,
    entry,
    now,
)
from opentelemetry.instrumentation.nats.patching import changed
from opentelemetry.instrumentation.nats.propagation import attach, current_context, detach
from opentelemetry.instrumentation.nats.receiving import record_receive
from opentelemetry.instrumentation.nats.recorder import Recorder
from opentelemetry.instrumentation.nats.sending import Args, Calls, Kwargs, publish_wrapper, request_wrapper
from opentelemetry.instrumentation.nats.streams import process_kind

_LOG = logging.getLogger(__name__)


def _publish_args(
    subject: Any, payload: bytes, *, reply: Any = None, headers: Any = None
) -> tuple[Any, bytes, Any, Any]:
    return subject, payload, reply, headers


def _request_args(
    subject: Any, payload: bytes, *, timeout: float = 2.0, headers: Any = None, return_on_error: bool = False
) -> tuple[Any, bytes, Any]:
    return subject, payload, headers


def _text(subject: Any) -> str | None:
    """A ``bytes`` subject as text (nats-core sends it as it is)."""
    if isinstance(subject, (bytes, bytearray)):
        return bytes(subject).decode("utf-8", "replace")
    return None


def status_error(response: Any) -> BaseException | None:
    """The error ``Client.request`` raises for ``response`` when ``return_on_error`` is off: its
    ``StatusError`` (``NoRespondersError`` for 503) for a status other than 200, else ``None``."""
    status = getattr(response, "status", None)
    code = getattr(status, "code", None)
    if code is None or code == "200":
        return None
    from nats.client.errors import StatusError

    error: BaseException = StatusError.from_status(
        code, getattr(status, "description", None) or "Unknown error", subject=getattr(response, "subject", None)
    )
    return error


_CALLS = Calls(
    access=ACCESS,
    bind_publish=_publish_args,
    bind_request=_request_args,
    request_keywords=frozenset(("timeout", "headers", "return_on_error")),
    no_reply=None,
    text=_text,
    view=header_view,
    result_error=status_error,
)
publish = publish_wrapper(_CALLS)
publish.__doc__ = """``Client.publish``: see :func:`..sending.publish_wrapper`."""
request = request_wrapper(_CALLS)
request.__doc__ = """``Client.request``: see :func:`..sending.request_wrapper`."""


def _operation(op: names.Op, kind: Any, sub: Any, msg: Any, headers: Any, extra: Any = None) -> Operation:
    """The consumer-side :class:`Operation` for ``msg``, which ``sub`` delivered (``headers``: its view)."""
    client, sid, subject, queue = subscription_fields(sub)
    return delivered(
        op, kind, ACCESS, client, msg, headers=headers, sid=sid, sub_subject=subject, queue=queue, extra=extra
    )


def next_message(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``Subscription.next`` (also ``async for`` and ``.messages``): a receive span per message."""
    rec = _Installed.recorder
    if rec is None or ACTIVE.get() is not None or (not rec.live and rec.idle()) or not enabled():
        return wrapped(*args, **kwargs)
    return _receive(rec, wrapped, instance, args, kwargs)


async def _receive(rec: Recorder, wrapped: Any, sub: Any, args: Args, kwargs: Kwargs) -> Any:
    start = now()
    msg = await wrapped(*args, **kwargs)
    if _Installed.recorder is not rec:  # (uninstrumented meanwhile; the caller's context is the same)
        return msg
    client, sid, subject, queue, counts = receive_fields(sub)
    hooked = record_receive(
        rec, ACCESS, client, msg, start, headers=header_view(msg.headers), sid=sid, sub=(subject, queue, counts)
    )
    if hooked is not None:
        await hooked
    return msg


class TracedCallback(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """A synchronous subscription callback with a process span per message: a transparent proxy of
    the application's callback (equal to it, so ``remove_callback(callback)`` still removes it)."""

    def __init__(self, cb: Any, sub: Any) -> None:
        super().__init__(cb)
        self._self_sub = sub

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        wrapped = self.__wrapped__
        rec = _Installed.recorder
        msg = args[0] if len(args) == 1 and not kwargs else None
        if rec is None or msg is None or (current_context() and not enabled()):
            return wrapped(*args, **kwargs)
        try:
            headers = header_view(msg.headers)
            found = rec.delivery(msg.subject, headers, msg.data)
            if found is None:
                return wrapped(*args, **kwargs)
            parent, links, idle = found
            if not idle:
                sub = self._self_sub
                kind, extra = process_kind(msg.reply, subscription_client(sub))
                op = _operation(names.PROCESS, kind, sub, msg, headers, extra)
        except Exception:
            _LOG.debug("not tracing an unusual message", exc_info=True)
            return wrapped(*args, **kwargs)
        if idle:  # no SDK: the callback just runs in the producer's context
            token = attach(parent)
            try:
                return wrapped(*args, **kwargs)
            finally:
                detach(token)
        return rec.run_sync(op, wrapped, args, kwargs, parent=parent, links=links)


def add_callback(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``Subscription.add_callback``: the callback is traced (a coroutine function, which nats-core
    never awaits, is left alone)."""
    rec = entry()
    cb = args[0] if len(args) == 1 and not kwargs else kwargs.get("callback") if not args else None
    if rec is None or cb is None or type(cb) is TracedCallback or not callable(cb) or _is_async(cb):
        return wrapped(*args, **kwargs)
    result = wrapped(TracedCallback(cb, instance))
    changed(instance, _unwrap)  # uninstrument() gives it back the application's callbacks
    return result


def _unwrap(sub: Any) -> None:
    unwrap_callbacks(sub, TracedCallback)


def _is_async(cb: Any) -> bool:
    return inspect.iscoroutinefunction(cb) or inspect.iscoroutinefunction(getattr(cb, "__call__", None))  # noqa: B004
