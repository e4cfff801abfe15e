"""Context propagation through NATS headers (the JSON envelope that carries a context in the payload: envelope.py).

Fast paths: with the stock W3C propagators (trace context and/or baggage, the default) a span's
headers are written here directly from its span context (:func:`span_carrier`: what the
propagators write, without building a context for them), and a plain ``traceparent`` (no
``tracestate`` or ``baggage`` beside it) is read here (:func:`_plain_extract`: the context the
propagators extract, without their generic steps); nothing is injected when the context is
empty and the propagators would write nothing (:func:`nothing_to_inject`); headers without the
names the propagator writes are not parsed (:func:`carried_context`); a dict is read as a dict.

Header forms: nats-py's ``dict[str, str]``; nats-core's ``dict[str, list[str]]`` (its wrappers hand
over the dict its ``Headers`` object holds, without a copy) or a caller's dict whose values may be
strings or lists of strings; any other object with an ``items()`` of such pairs (nats-core's
``Headers`` given by a caller) is read through a copy (:func:`as_mapping`). A list's first item is
the value, as for ``Headers.get``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, cast

from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import (
    DEFAULT_TRACE_STATE,
    INVALID_SPAN_CONTEXT,
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    TraceFlags,
    get_current_span,
    set_span_in_context,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from opentelemetry import baggage, propagate
from opentelemetry import context as otel_context
from opentelemetry.instrumentation.nats import otel_private

_LOG = logging.getLogger(__name__)
_EMPTY = Context()

current_context = otel_private.current_context  # (get_current() without its two calls)
attach = otel_private.attach_context
detach = otel_private.detach_context


def with_span(span: Span, parent: Context | None) -> Context:
    """``set_span_in_context(span, parent)``: ``parent`` (default: the current context) with ``span``."""
    return otel_private.context_with_span(span, current_context() if parent is None else parent)


# A callback's context keeps the baggage of the message it processes under a key of ours, out of the
# baggage API's sight: frameworks that manage baggage themselves (FastStream's CurrentBaggage) build
# what they send on top of the current context's baggage, so a current message baggage would bring
# back the entries a handler removed. What the callback sends carries it all the same
# (outgoing_context).
_MESSAGE_BAGGAGE = otel_context.create_key("nats-message-baggage")


def callback_context(span: Span | None, parent: Context) -> Context:
    """The context a callback runs in: ``parent`` (the message's context) with ``span`` (``None``:
    no span of ours), the message's baggage set aside (see :func:`outgoing_context`)."""
    if span is None:
        return otel_private.baggage_moved(parent, _MESSAGE_BAGGAGE)
    return otel_private.context_with_span(span, parent, _MESSAGE_BAGGAGE)


def outgoing_context(ctx: Context, headers: Any = None) -> Context:
    """``ctx`` with the baggage a message sent in it carries: in a callback's context (see
    :func:`callback_context`), the processed message's baggage under the context's own (entries the
    callback set win). With no baggage of the context's own, ``headers`` (the caller's) that have a
    ``baggage`` header already keep it: the application, or a framework, wrote the baggage itself."""
    kept = ctx.get(_MESSAGE_BAGGAGE)
    if not isinstance(kept, Mapping) or not kept:
        return ctx
    own = baggage.get_all(ctx)
    if own:
        kept = {**kept, **own}
    elif headers and any(type(k) is str and k.lower() == "baggage" for k in headers):
        return ctx
    return otel_private.context_with_baggage(ctx, kept)


# "NATS/1.0\r\n" + final "\r\n"; each header adds "key: value\r\n".
_HEADER_BLOCK_OVERHEAD = 12
_HEADER_LINE_OVERHEAD = 4

SKIP_NO_HEADERS = "no_header_support"
SKIP_MAX_PAYLOAD = "max_payload"


# nats-server 2.11.0-2.12.11 with account message tracing (`msg_trace`) disable server tracing of a
# message by renaming its `traceparent` header to `Xraceparent` (first letter replaced): on every
# copy stored in JetStream and on messages the account's sampling skipped. 2.12.12 and later leave
# `traceparent` alone (they add `Nats-Trace-Dest: trace disabled`). The renamed header still holds
# the producer's context, so it is read when there is no `traceparent`.
_TRACEPARENT = "traceparent"
_RENAMED_TRACEPARENT = "Xraceparent"


class _HeaderGetter(Getter[Mapping[str, Any]]):
    """Reads NATS headers case-insensitively; tolerates ``None`` and non-string values; a list value
    (nats-core) is returned as its string items.

    ``traceparent`` falls back to the ``Xraceparent`` of servers that rename it (above): one more
    dict lookup, and only when there is no ``traceparent``."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            lowered = key.lower()
            for k, v in carrier.items():
                if isinstance(k, str) and k.lower() == lowered:
                    value = v
                    break
            else:
                if key == _TRACEPARENT:
                    value = carrier.get(_RENAMED_TRACEPARENT)
        if isinstance(value, str):
            return [value]
        if type(value) is list:
            return [v for v in value if isinstance(v, str)] or None
        return None

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return [k for k in carrier if isinstance(k, str)]


_GETTER = _HeaderGetter()


# A plain W3C traceparent (version 00, nothing after the flags) and the header names that make
# extract() ask the propagators after all.
_PLAIN_TRACEPARENT = re.compile("00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_OTHER_FIELDS = frozenset(("tracestate", "baggage"))


def _plain_extract(headers: dict[Any, Any]) -> Context | None:
    """What the stock W3C propagators extract from ``headers`` when they hold a plain ``traceparent``
    and no ``tracestate`` or ``baggage`` (see the module's fast paths), else ``None``."""
    value = headers.get(_TRACEPARENT)
    if type(value) is list and len(value) == 1:  # (nats-core)
        value = value[0]
    if type(value) is not str or len(value) != 55:
        return None
    parts = _stock_parts()
    if not parts or type(parts[0]) is not TraceContextTextMapPropagator or len(parts) > 2:
        return None
    if len(headers) > 1 and any(type(k) is str and k.lower() in _OTHER_FIELDS for k in headers):
        return None
    match = _PLAIN_TRACEPARENT.fullmatch(value)
    if match is None:
        return None
    trace_id, span_id, flags = match.groups()
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    span_context = SpanContext(int(trace_id, 16), int(span_id, 16), True, TraceFlags(int(flags, 16)), None)
    return otel_private.span_context(NonRecordingSpan(span_context))  # (what set_span_in_context builds)


def as_mapping(headers: Any) -> Mapping[str, Any] | None:
    """``headers`` as a mapping: a dict or ``Mapping`` as it is; another object with an ``items()`` of
    ``(name, value)`` pairs (nats-core's ``Headers``) copied into a dict; ``None`` for anything else."""
    if type(headers) is dict or isinstance(headers, Mapping):
        return headers
    items = getattr(headers, "items", None)
    if not callable(items):
        return None
    try:
        return dict(items())
    except Exception:  # not pairs
        return None


def extract(headers: Any) -> Context:
    """The context carried by message headers; an empty context (→ root span) when there is none."""
    if not headers:
        return _EMPTY
    if type(headers) is not dict and not isinstance(headers, Mapping):
        headers = as_mapping(headers)
        if not headers:
            return _EMPTY
    try:
        if type(headers) is dict:
            plain = _plain_extract(headers)
            if plain is not None:
                return plain
        return propagate.extract(headers, context=_EMPTY, getter=_GETTER)
    except Exception:  # a third-party propagator failing on odd input
        _LOG.debug("could not extract context from NATS headers", exc_info=True)
        return _EMPTY


def has_span(ctx: Context) -> bool:
    return get_current_span(ctx).get_span_context().is_valid


_fields: tuple[object, frozenset[str] | None] = (None, None)  # (global propagator, the header names it writes)


def _propagator_fields(textmap: object) -> frozenset[str] | None:
    """The lower-case header names ``textmap`` writes (cached per global propagator); ``None`` when
    it does not say (an empty or unreadable ``fields``): then every header set is parsed."""
    global _fields
    checked, fields = _fields
    if checked is not textmap:
        try:
            declared = getattr(textmap, "fields", None)
            fields = frozenset(f.lower() for f in declared if isinstance(f, str)) if declared else None
        except Exception:
            fields = None
        _fields = (textmap, fields or None)
    return fields or None


def carried_context(headers: Any) -> SpanContext | None:
    """The creation context a caller already put in outgoing headers: the valid span context the
    global propagator extracts from them (whatever propagator is configured), else ``None``
    (callers skip ``None`` and empty headers before calling)."""
    if type(headers) is not dict and not isinstance(headers, Mapping):
        headers = as_mapping(headers)
        if not headers:
            return None
    try:
        textmap = propagate.get_global_textmap()
        fields = _propagator_fields(textmap)
        if fields is not None and not any(type(k) is str and k.lower() in fields for k in headers):
            return None
        span_ctx = get_current_span(textmap.extract(headers, context=_EMPTY, getter=_GETTER)).get_span_context()
    except Exception:  # a third-party propagator (or mapping) failing on odd input
        _LOG.debug("could not extract context from outgoing NATS headers", exc_info=True)
        return None
    return span_ctx if span_ctx.is_valid else None


def creation_links(ctx: Context) -> list[Link] | None:
    """A link to the span context in ``ctx`` (a message's creation context), or ``None`` when it has none."""
    span_ctx = get_current_span(ctx).get_span_context()
    return [Link(span_ctx)] if span_ctx.is_valid else None


def caller_links(headers: Any) -> list[Link] | None:
    """A link to the creation context the caller already put in outgoing ``headers`` (what the
    configured propagator writes), else ``None``. Such headers are sent unchanged (semconv: a
    creation context SHOULD NOT be modified) and the send span is CLIENT, linked to it."""
    span_ctx = carried_context(headers)
    return [Link(span_ctx)] if span_ctx is not None else None


_QUIET_WHEN_EMPTY = (TraceContextTextMapPropagator, W3CBaggagePropagator)
_Stock = tuple[TraceContextTextMapPropagator | W3CBaggagePropagator, ...]
_stock: tuple[object, _Stock | None] = (None, None)  # (global propagator, its stock W3C parts in order)


def _stock_parts() -> _Stock | None:
    """The global propagator's parts when all are the stock W3C trace context / baggage propagators
    (the default; none at all counts too), else ``None``. Cached per global propagator."""
    global _stock
    textmap = propagate.get_global_textmap()
    checked, parts = _stock
    if checked is not textmap:
        parts = tuple(cast(_Stock, otel_private.propagator_parts(textmap))) if is_stock(textmap) else None
        _stock = (textmap, parts)
    return parts


def nothing_to_inject() -> bool:
    """True when injecting the current context would write nothing: the context is empty (no
    span, no baggage) and the global propagator is one that writes nothing then (W3C trace
    context and/or baggage — the default — or none at all). Other propagators are always asked."""
    if current_context():
        return False
    checked, parts = _stock
    return (parts if checked is propagate.get_global_textmap() else _stock_parts()) is not None


def is_stock(textmap: Any) -> bool:
    """True when ``textmap`` writes nothing for an empty context (see :func:`nothing_to_inject`)."""
    found = otel_private.propagator_parts(textmap)
    return isinstance(found, (list, tuple)) and all(type(p) in _QUIET_WHEN_EMPTY for p in found)


# "-{flags:02x}" per trace-flags byte
_FLAGS = tuple(f"-{flags:02x}" for flags in range(256))


def traceparent(span_context: SpanContext) -> str:
    """The ``traceparent`` TraceContextTextMapPropagator writes for ``span_context``."""
    if type(span_context) is SpanContext:  # a tuple: unpacking beats five property calls
        trace_id, span_id, _, flags, _, valid = span_context
        if valid and isinstance(flags, int) and 0 <= flags < 256:  # in range: byte strings format faster
            return f"00-{trace_id.to_bytes(16, 'big').hex()}-{span_id.to_bytes(8, 'big').hex()}{_FLAGS[flags]}"
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{span_context.trace_flags:02x}"


def span_carrier(span: Span, parent: Context | None, headers: Any = None) -> dict[str, str]:
    """The headers the global propagator writes for ``span`` as a child of ``parent`` (default: the
    current context): what ``propagate.inject`` writes for that context (see :func:`outgoing_context`
    for ``headers``, the caller's), built directly from the span context by the stock W3C
    propagators (see the module's fast paths)."""
    checked, parts = _stock
    if checked is not propagate.get_global_textmap():
        parts = _stock_parts()
    if parts is None:
        carrier: dict[str, str] = {}
        propagate.inject(carrier, outgoing_context(set_span_in_context(span, parent), headers))
        return carrier
    carrier = {}
    for part in parts:
        if type(part) is TraceContextTextMapPropagator:  # what TraceContextTextMapPropagator.inject writes
            span_context = span.get_span_context()
            if span_context != INVALID_SPAN_CONTEXT:
                carrier["traceparent"] = traceparent(span_context)
                state = span_context.trace_state
                if state is not DEFAULT_TRACE_STATE and state:
                    carrier["tracestate"] = state.to_header()
        else:  # baggage lives in the parent context
            ctx = current_context() if parent is None else parent
            if _MESSAGE_BAGGAGE in ctx:  # a callback's context: the message's baggage goes on
                ctx = outgoing_context(ctx, headers)
            if otel_private.has_baggage(ctx):
                part.inject(carrier, ctx)
    return carrier


def inject(
    headers: Any,
    payload_size: int,
    server_info: Mapping[str, Any],
    max_payload: int,
    context: Context | None = None,
    carrier: dict[str, str] | None = None,
) -> tuple[Any, str | None]:
    """Headers to send: a copy of ``headers`` with ``context`` (default: the current one) injected,
    or with ``carrier`` (what the propagator wrote already, see :func:`span_carrier`).

    ``headers``: ``None``, a dict (values strings, or lists of strings for nats-core), or an object
    with such an ``items()`` (nats-core's ``Headers``); the copy is a dict.
    Returns ``(headers, skip_reason)``. The caller's object is never mutated. Nothing is injected
    (and the caller's headers are returned as they are) when the propagator writes nothing, when
    the server does not support headers, or when the headers would push the message over
    ``max_payload``; the latter two return a skip reason.
    """
    if carrier is None:
        carrier = {}
        ctx = current_context() if context is None else context
        propagate.inject(carrier, outgoing_context(ctx, headers) if _MESSAGE_BAGGAGE in ctx else ctx)
    # (a message over max_payload: nats-py refuses it itself with MaxPayloadError, nothing is skipped)
    if not carrier or payload_size > max_payload:
        return headers, None
    if not server_info.get("headers"):
        return headers, SKIP_NO_HEADERS
    if headers:
        out = {k: v for k, v in headers.items() if not (isinstance(k, str) and k.lower() in carrier)}
        out.update(carrier)
    else:
        out = carrier
    # the header block's size ("NATS/1.0\r\n", "key: value\r\n" lines, "\r\n")
    size = payload_size + _HEADER_BLOCK_OVERHEAD
    for k, v in out.items():
        if type(k) is str and type(v) is str and k.isascii() and v.isascii():
            size += _HEADER_LINE_OVERHEAD + len(k) + len(v)
        elif type(v) is list:  # one line per item (nats-core)
            key_size = _HEADER_LINE_OVERHEAD + len(str(k).encode())
            size += sum(key_size + len(str(item).encode()) for item in v)
        else:
            size += _HEADER_LINE_OVERHEAD + len(str(k).encode()) + len(str(v).encode())
    if size > max_payload:
        return headers, SKIP_MAX_PAYLOAD
    return out, None
