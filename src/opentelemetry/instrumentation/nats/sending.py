"""``Client.publish`` and ``Client.request`` wrappers, shared by the client families.

A family describes its two calls once (:class:`Calls`: its accessor, how its arguments bind, what a
reply defaults to, how a non-string subject and its header objects are read); :func:`publish_wrapper`
and :func:`request_wrapper` build the patch functions from that. Spans are made by
:class:`~.recorder.Recorder`.

Fast paths (per message; covered by tests/test_fast_paths.py): the wrappers are plain functions that
return the coroutine to await — the client's own, or :meth:`Recorder.run`'s — rather than
coroutines awaiting it (one coroutine frame less per call; the caller awaits what they return;
exceptions and cancellation reach the caller from the same coroutine as before). With no SDK and
nothing to carry (an empty current context, the stock W3C propagators) a publish passes straight
through before its wrapper is called (:func:`publish_gate`). The
installed recorder is read from its holder directly, and the usual argument shapes
(``publish(subject, payload[, reply=…, headers=…])``) are taken apart without binding.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.context import Context

from opentelemetry import trace
from opentelemetry.instrumentation.nats import attributes, names
from opentelemetry.instrumentation.nats.access import ClientAccess
from opentelemetry.instrumentation.nats.destinations import Entry
from opentelemetry.instrumentation.nats.operation import (
    ACTIVE,
    CLIENT,
    PRODUCER,
    Operation,
    _Installed,
    enabled,
    fast_operation,
    now,
    size,
    untraced,
)
from opentelemetry.instrumentation.nats.propagation import caller_links, current_context, nothing_to_inject

if TYPE_CHECKING:
    from opentelemetry.instrumentation.nats.recorder import Recorder

_LOG = logging.getLogger(__name__)

Args = tuple[Any, ...]
Kwargs = dict[str, Any]
Wrapper = Callable[[Any, Any, Args, Kwargs], Any]

_NO_KWARGS: Kwargs = {}  # (never mutated: callees unpack it)
_PUBLISH_KEYWORDS = frozenset(("reply", "headers"))
_PUBLISH, _REQUEST, _JS_PREFIX = names.PUBLISH, names.REQUEST, names.JS_PREFIX
_BODY_SIZE, _REPLY_TO = names.BODY_SIZE, names.NATS_REPLY_TO


@dataclass(frozen=True)
class Calls:
    """How one client family's ``publish`` and ``request`` look.

    ``bind_publish(*args, **kwargs)`` → ``(subject, payload, reply, headers)`` and
    ``bind_request(*args, **kwargs)`` → ``(subject, payload, headers)`` bind unusual argument shapes
    (``TypeError``: the call passes through). ``request_keywords``: the keywords a request may take
    without binding. ``text(subject)``: a subject that is not a ``str`` as text, ``None`` when it
    passes through untraced (``text`` itself ``None``: every non-string subject does). ``view(headers)``:
    the caller's headers as the mapping the recorder reads (``None``: they are one already).
    ``result_error(response)``: the error a request's response stands for (status replies)."""

    access: ClientAccess
    bind_publish: Callable[..., tuple[Any, Any, Any, Any]]
    bind_request: Callable[..., tuple[Any, Any, Any]]
    request_keywords: frozenset[str]
    no_reply: Any = None
    text: Callable[[Any], str | None] | None = None
    view: Callable[[Any], Any] | None = None
    result_error: Callable[[Any], BaseException | None] | None = None


def publish_gate() -> Callable[[], bool] | None:
    """The ``gate`` of a family's publish entry (see :class:`~.patching.Plain`): a check that is True
    while a publish passes straight through, no SDK and nothing to carry (the installed recorder's)."""
    rec = _Installed.recorder
    return rec.quiet if rec is not None else None


def publish_wrapper(calls: Calls) -> Wrapper:
    """The ``Client.publish`` patch function of a family: a PRODUCER span (CLIENT when the caller's
    headers carry a creation context, sent unchanged); inside another operation, only the injection."""
    access, bind, no_reply, text, view = calls.access, calls.bind_publish, calls.no_reply, calls.text, calls.view

    def publish(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        rec = _Installed.recorder
        active = ACTIVE.get()
        if rec is None or (active is not None and not active.inject):
            return wrapped(*args, **kwargs)
        live = rec.live or not rec.idle()
        if not live and nothing_to_inject():
            return wrapped(*args, **kwargs)  # no SDK, nothing to carry
        # inside an operation whose span is not current (Recorder.run without hooks) only client
        # internals run, so nothing can have suppressed instrumentation since its entry check
        ctx = current_context() if active is None or active.span is None else None
        if ctx and not enabled():
            return wrapped(*args, **kwargs)
        if len(args) == 2 and not kwargs:
            (subject, payload), reply, headers = args, no_reply, None
        elif len(args) == 2 and kwargs.keys() <= _PUBLISH_KEYWORDS:
            (subject, payload), reply, headers = args, kwargs.get("reply", no_reply), kwargs.get("headers")
        else:
            try:
                subject, payload, reply, headers = bind(*args, **kwargs)
            except TypeError:
                return wrapped(*args, **kwargs)
        if active is not None:  # internals of request/respond/…: inject, no span of its own
            if headers:
                _record_features(active, headers if view is None else view(headers))
            # (the operation's span - or, when that is None, its current span: never an empty context)
            headers = rec.inject(
                access, instance, payload, headers, span_current=True, span=active.span, parent=active.parent
            )
            return wrapped(subject, payload, reply=reply, headers=headers)
        name = subject if isinstance(subject, str) else text(subject) if text is not None else None
        if name is None or (rec.excluding is not None and rec.excluded(name)) or name.startswith(_JS_PREFIX):
            return wrapped(*args, **kwargs)
        readable = headers if view is None or headers is None else view(headers)
        # the caller's own creation context in the headers: sent unchanged, a CLIENT span linked to it
        links = caller_links(readable) if readable else None
        if not live:  # no SDK: the no-op span would only carry the current context
            if links is None:
                headers = rec.inject(access, instance, payload, headers)
            return wrapped(subject, payload, reply=reply, headers=headers)
        reply_to = reply if reply is None or type(reply) is str else text(reply) if text is not None else None
        if readable is None and not rec.hooks and not rec.metering():
            entry = rec.clients.subject_entry(instance, access, _PUBLISH, name)
            if entry is not None:
                args = (subject, payload, reply)
                return _sent(
                    rec, entry, wrapped, args, access=access, client=instance, name=name, reply_to=reply_to, ctx=ctx
                )
        op = fast_operation(
            _PUBLISH,
            PRODUCER if links is None else CLIENT,
            access,
            instance,
            name,
            len(payload) if type(payload) is bytes else size(payload),
            reply_to,
            readable,
            (subject, payload, headers) if rec.hooks else (),
            None,
            None,
            None,
            attributes.feature_header_attributes(readable) if readable else None,
        )
        # the current context as the explicit parent: the SDK (and its sampler) need not look it up again
        args = (subject, payload, reply, headers)
        if links is None:
            return rec.run(op, wrapped, args, _NO_KWARGS, parent=ctx, inject=True)
        return rec.run(op, wrapped, args[:2], {"reply": reply, "headers": headers}, parent=ctx, links=links)

    return publish


async def _sent(
    rec: Recorder,
    entry: Entry,
    publish: Any,
    args: Args,
    *,
    access: ClientAccess,
    client: Any,
    name: str,
    reply_to: str | None,
    ctx: Context | None,
) -> Any:
    """A plain publish, ``publish(subject, payload, reply)`` (``args``; no headers, hooks or metrics)
    to a subject whose span name and attributes are cached (``entry``): what :meth:`.Recorder.run`
    does for it, without an :class:`Operation` unless the publish fails. Why: the sampled nats-core
    publish cost 1.02 x hand-written through ``run`` and 0.91 through this (in-process A/B, 4 000
    messages x 12 rounds)."""
    subject, payload, reply = args
    span_name, attrs, _, per_message = entry
    attrs = {**attrs, _BODY_SIZE: len(payload) if type(payload) is bytes else size(payload)}
    if per_message:  # (a subject under a template, or past max_destinations: see destinations.py)
        for k in rec.keys.subject:
            attrs[k] = name
    if reply_to:
        attrs[_REPLY_TO] = reply_to
    span = rec.tracer.start_span(span_name, ctx, PRODUCER, attrs, None, now())
    try:
        headers = rec.inject(access, client, payload, None, span_current=True, span=span, parent=ctx)
        result = await publish(subject, payload, reply=reply, headers=headers)
    except BaseException as exc:
        rec.finish(span, Operation(op=_PUBLISH, kind=PRODUCER, access=access, client=client, subject=name), error=exc)
        raise
    span.end()
    return result


# Operations whose span records the JetStream message features in the headers their client
# internals send (JetStream publish: with the Nats-TTL of ``msg_ttl=``; key-value writes and purges)
_FEATURE_OPS = (names.PUBLISH, names.REQUEST, names.KV_PUT, names.KV_CREATE, names.KV_UPDATE, names.KV_PURGE)


def _record_features(active: Operation, headers: Any) -> None:
    """Record on ``active``'s span the JetStream message features (TTL, atomic batch, counter,
    schedule) of the headers its client internals send (see :func:`.attributes.feature_header_attributes`)."""
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


def request_wrapper(calls: Calls) -> Wrapper:
    """The ``Client.request`` patch function of a family: one CLIENT span over the round trip; its
    inner publish injects and makes no span. Inside another operation it makes none (a JetStream
    publish's requests are its attempts: see :func:`attempted`)."""
    access, bind, keywords = calls.access, calls.bind_request, calls.request_keywords
    text, view, result_error = calls.text, calls.view, calls.result_error

    def request(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        rec = _Installed.recorder
        if rec is None:
            return wrapped(*args, **kwargs)
        active = ACTIVE.get()
        if active is not None:  # client internals: no span (a JetStream publish counts its attempts)
            if active.op is _PUBLISH:
                attempted(active)
            return wrapped(*args, **kwargs)
        if not enabled():
            return wrapped(*args, **kwargs)
        if len(args) == 2 and (not kwargs or kwargs.keys() <= keywords):
            (subject, payload), headers = args, kwargs.get("headers")
        else:
            try:
                subject, payload, headers = bind(*args, **kwargs)
            except TypeError:
                return wrapped(*args, **kwargs)
        name = subject if isinstance(subject, str) else text(subject) if text is not None else None
        if name is None or (rec.excluding is not None and rec.excluded(name)) or name.startswith(_JS_PREFIX):
            return untraced(wrapped, args, kwargs)  # its inner publish/subscribe stay internal too
        readable = headers if view is None or headers is None else view(headers)
        body_size = len(payload) if type(payload) is bytes else size(payload)
        if readable is None:
            cached = rec.subject_entry(access, instance, _REQUEST, name)
            if cached is not None:
                op = fast_operation(
                    _REQUEST, CLIENT, access, instance, name, body_size, None, None, (), None, None, None, None
                )
                op.on_result, op.result_error = attributes.response_attributes, result_error
                return rec.run_cached(op, cached, wrapped, args, kwargs)
        links = caller_links(readable) if readable else None  # the caller's creation context: sent unchanged
        op = Operation(
            op=_REQUEST,
            kind=CLIENT,
            access=access,
            client=instance,
            subject=name,
            body_size=body_size,
            headers=readable,
            hook_args=(subject, payload, headers) if rec.hooks else (),
            inject=links is None,
            on_result=attributes.response_attributes,
            result_error=result_error,
        )
        return rec.run(op, wrapped, args, kwargs, parent=current_context(), links=links)

    return request


def attempted(op: Operation) -> None:
    """A request of a JetStream publish ``op`` (its client retries a publish that found no responders
    with another request): the attempts after the first are recorded on its span as its retries."""
    op.attempts += 1
    if op.attempts > 1:
        try:  # (its span, or - when the recorder made it current, with hooks - the current one)
            span = op.span if op.span is not None else trace.get_current_span()
            span.set_attribute(names.JS_PUBLISH_RETRIES, op.attempts - 1)
        except Exception:
            _LOG.debug("could not record a JetStream publish retry", exc_info=True)
