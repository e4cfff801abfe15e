"""``nats.micro`` patches: one SERVER span ``process {endpoint subject}`` per endpoint request.

nats.micro subscribes through ``Client.subscribe`` with its own callbacks (``Endpoint._handle_request``
and the ``$SRV.PING/INFO/STATS`` verb handlers). ``Service.start`` and ``Endpoint._start`` run as
nats-py internals (:data:`~opentelemetry.instrumentation.nats.operation.ACTIVE` is set), so the core
``subscribe`` wrapper leaves those callbacks alone. The subscriptions' message tasks are created
inside those calls and inherit the marker: the verb handlers, and whatever they call (``Msg.respond``),
make no spans. ``Endpoint._handle_request`` clears it and makes the endpoint's span here, with the
service and endpoint as attributes; ``Request.respond`` makes the reply's PRODUCER span and
``Request.respond_error`` (also what nats.micro calls when a handler raises) marks the endpoint span
as an error with the service error code and description.

Services and endpoints started before ``instrument()`` are not traced (like core subscriptions).
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Any

from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from opentelemetry import trace
from opentelemetry.instrumentation.nats import names
from opentelemetry.instrumentation.nats.natspy.access import ACCESS, endpoint, message_client, request_message
from opentelemetry.instrumentation.nats.natspy.core import Args, Kwargs, message_operation, size
from opentelemetry.instrumentation.nats.operation import ACTIVE, Operation, entry, installed, untraced

_LOG = logging.getLogger(__name__)

# The endpoint span being recorded in this task, the message it is for, and its operation.
_ENDPOINT: ContextVar[tuple[Span, Any, Operation] | None] = ContextVar(
    "opentelemetry_nats_micro_endpoint", default=None
)


async def internal(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``Service.start`` / ``Endpoint._start``: run as nats-py internals (their subscriptions are not
    wrapped by the core ``subscribe`` patch; their message tasks inherit the marker)."""
    return await untraced(wrapped, args, kwargs)


async def _in_endpoint_span(wrapped: Any, msg: Any, op: Operation, args: Args, kwargs: Kwargs) -> Any:
    token = _ENDPOINT.set((trace.get_current_span(), msg, op))
    try:
        return await wrapped(*args, **kwargs)
    finally:
        _ENDPOINT.reset(token)


async def handle_request(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``Endpoint._handle_request``: the SERVER span of one endpoint request."""
    if ACTIVE.get() is not None:  # inherited from Endpoint._start by the subscription's task
        ACTIVE.set(None)
    rec = entry()
    msg = args[0] if len(args) == 1 and not kwargs else kwargs.get("msg")
    if rec is None or msg is None:
        return await wrapped(*args, **kwargs)
    try:
        subject = msg.subject
        if rec.excluded(subject):
            return await wrapped(*args, **kwargs)
        extra, endpoint_subject, queue = endpoint(instance)
        parent, links = rec.consumer_parent(msg.headers, subject, msg.data)
        op = message_operation(
            names.PROCESS,
            SpanKind.SERVER,
            msg,
            endpoint_subject,
            queue,
            {k: v for k, v in extra.items() if isinstance(v, str) and v},
        )
    except Exception:
        _LOG.debug("not tracing an unusual nats.micro request", exc_info=True)
        return await wrapped(*args, **kwargs)
    return await rec.run(op, _in_endpoint_span, (wrapped, msg, op, args, kwargs), {}, parent=parent, links=links)


def _respond_args(data: bytes = b"", headers: dict[str, str] | None = None) -> tuple[bytes, dict[str, str] | None]:
    return data, headers


async def respond(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``Request.respond``: a PRODUCER span to the reply inbox (its inner publish only injects)."""
    rec = entry()
    msg = request_message(instance)
    reply = getattr(msg, "reply", None)
    client = message_client(msg)
    if rec is None or not reply or client is None:
        return await wrapped(*args, **kwargs)
    if rec.excluded(reply) or rec.excluded(getattr(msg, "subject", None)):  # the reply to an excluded request
        return await untraced(wrapped, args, kwargs)
    try:
        data, headers = _respond_args(*args, **kwargs)
    except TypeError:
        return await wrapped(*args, **kwargs)
    op = Operation(
        op=names.RESPOND,
        kind=SpanKind.PRODUCER,
        access=ACCESS,
        client=client,
        subject=reply,
        body_size=size(data),
        headers=headers,
        hook_args=(reply, data, headers),
    )
    return await rec.run(op, wrapped, args, kwargs)


def _error_args(code: Any, description: Any, *args: Any, **kwargs: Any) -> tuple[str, str]:
    return str(code), str(description)


def _mark_error(span: Span, op: Operation, args: Args, kwargs: Kwargs) -> None:
    code, description = _error_args(*args, **kwargs)
    exc = sys.exc_info()[1]  # set when nats.micro answers for a handler that raised
    if exc is not None:
        rec = installed()
        if rec is not None and rec.events is not None:  # (also for an unsampled span, as Recorder.finish)
            rec.events.emit(rec, span, op, exc, error_type=code)
    if not span.is_recording():
        return
    if exc is not None:
        span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{code}: {description}"))
    span.set_attributes(
        {
            names.ERROR_TYPE: code,
            names.MICRO_ERROR_CODE: code,
            names.MICRO_ERROR_DESCRIPTION: description,
        }
    )


async def respond_error(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    """``Request.respond_error``: the endpoint span becomes an error (code, description, and the
    handler's exception when nats.micro answers for one); the reply itself goes through ``respond``."""
    current = _ENDPOINT.get()
    if current is not None and current[1] is request_message(instance):
        try:
            _mark_error(current[0], current[2], args, kwargs)
        except Exception:
            _LOG.debug("could not record a nats.micro error", exc_info=True)
    return await wrapped(*args, **kwargs)
