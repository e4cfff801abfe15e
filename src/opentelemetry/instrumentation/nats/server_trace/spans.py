"""Plan the span of one server traversal from a :class:`~.events.TraceEvent` (pure; nothing is started).

Where the span goes: the event's ``traceparent`` names the publishing span. The first server's span is
its child; a later server's span (hop ``"1.2"``) is the child of the span of the server that sent it
the message (hop ``"1"``). Span ids are derived from (trace id, publishing span id, hop) by
:func:`span_id`, so each event knows its own id and its parent's without waiting for the other
servers' events: events may arrive in any order and nothing is buffered. An event without a valid
``traceparent`` (ad-hoc ``Nats-Trace-Dest`` tracing) gets a trace of its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import SpanContext, get_current_span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from opentelemetry.instrumentation.nats import names
from opentelemetry.instrumentation.nats.server_trace.events import (
    KIND_NAMES,
    TRACEPARENT_HEADER,
    TRACESTATE_HEADER,
    Egress,
    JetStream,
    ServiceImport,
    StreamExport,
    SubjectMapping,
    TraceEvent,
)

Attrs = dict[str, Any]
_W3C = TraceContextTextMapPropagator()

# the server's error texts (msgtrace.go, client.go) → error.type; anything else is "_OTHER"
_ERROR_TYPES = tuple(
    (prefix.lower(), kind)
    for prefix, kind in (
        ("Permissions Violation for Publish", "publish_permission_violation"),
        ("Maximum payload", "max_payload_exceeded"),
        ("Not delivered because of no echo", "no_echo"),
        ("Not delivered because subscription denies", "subscription_denied"),
        ("Not delivered because publish denied", "publish_denied"),
        ("Not delivered because subscription is closed", "subscription_closed"),
        ("Not delivered because client is closed", "client_closed"),
        ("Not delivered because auto-unsubscribe exceeded", "auto_unsubscribe_exceeded"),
        ("Not delivered because fast producer not stalled", "slow_consumer"),
        ("Not delivered because remote does not support", "remote_without_tracing"),
        ("Message delivered but remote does not support", "remote_without_tracing"),
    )
)
OTHER_ERROR = "_OTHER"
JETSTREAM_ERROR = "jetstream_error"


@dataclass(frozen=True, slots=True)
class SpanEvent:
    name: str
    ts: int
    attributes: Attrs


@dataclass(frozen=True, slots=True)
class SpanPlan:
    """Everything needed to record one server span."""

    name: str
    start: int
    end: int
    attributes: Attrs
    events: tuple[SpanEvent, ...]
    resource: Attrs
    publisher: SpanContext | None  # the publishing span; None: a trace of its own
    parent_span_id: int | None  # the direct parent (publishing span, or the previous server's span)
    span_id: int | None  # None: a random id
    error: tuple[str, str] | None  # (error.type, the server's text)


def publisher(event: TraceEvent) -> SpanContext | None:
    """The publishing span's context from the event's ``traceparent`` / ``tracestate`` (W3C rules of
    the API's propagator), or ``None`` when there is no valid one."""
    carrier = {}
    for header in (TRACEPARENT_HEADER, TRACESTATE_HEADER):
        value = event.header(header)
        if value is not None:
            carrier[header] = value
    if TRACEPARENT_HEADER not in carrier:
        return None
    ctx = get_current_span(_W3C.extract(carrier)).get_span_context()
    return ctx if ctx.is_valid else None


def span_id(trace_id: int, publisher_span_id: int, hop: str) -> int:
    """The span id of the traversal with ``hop`` (``""``: the first server) of the message published
    by span ``publisher_span_id``: 64 bits of BLAKE2b, never 0."""
    digest = hashlib.blake2b(
        trace_id.to_bytes(16, "big") + publisher_span_id.to_bytes(8, "big") + hop.encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") or 1


def parent_hop(hop: str) -> str | None:
    """The hop id of the server that forwarded the message to ``hop`` (``None`` for the first server)."""
    if not hop:
        return None
    return hop.rpartition(".")[0]


def error_type(text: str, jetstream: bool = False) -> str:
    lower = text.lower()
    for prefix, kind in _ERROR_TYPES:
        if lower.startswith(prefix):
            return kind
    return JETSTREAM_ERROR if jetstream else OTHER_ERROR


def kind_name(kind: int | None) -> str | None:
    if kind is None:
        return None
    return KIND_NAMES[kind] if 0 <= kind < len(KIND_NAMES) else str(kind)


def span_name(subject: str) -> str:
    if not subject or subject.startswith(names.INBOX_PREFIX):
        return names.ST_SPAN_VERB
    return f"{names.ST_SPAN_VERB} {subject}"


def _put(attrs: Attrs, key: str, value: Any) -> None:
    if value is not None and value != "":
        attrs[key] = value


def resource_attributes(event: TraceEvent) -> Attrs:
    attrs: Attrs = {"service.name": names.ST_SERVICE_NAME, "service.instance.id": event.server.id}
    _put(attrs, "service.version", event.server.version)
    return attrs


def plan(event: TraceEvent) -> SpanPlan:
    """The span of ``event``'s traversal."""
    ingress, server = event.ingress, event.server
    attrs: Attrs = {names.MESSAGING_SYSTEM_NAME: names.SYSTEM}
    _put(attrs, names.DESTINATION_NAME, ingress.subject)
    if ingress.subject.startswith(names.INBOX_PREFIX):
        attrs[names.DESTINATION_TEMPORARY] = True
    _put(attrs, names.ST_ENVELOPE_SIZE, event.msg_size)
    _put(attrs, names.NATS_SERVER_ID, server.id)
    _put(attrs, names.NATS_SERVER_NAME, server.name)
    _put(attrs, names.NATS_SERVER_VERSION, server.version)
    _put(attrs, names.NATS_CLUSTER, server.cluster)
    _put(attrs, names.JS_DOMAIN, server.domain)
    _put(attrs, names.ST_ACCOUNT, ingress.account)
    _put(attrs, names.ST_INGRESS_KIND, kind_name(ingress.kind))
    _put(attrs, names.ST_INGRESS_NAME, ingress.name)
    _put(attrs, names.ST_INGRESS_CID, ingress.cid)
    hop = event.hop
    _put(attrs, names.ST_HOP, hop)

    errors: list[tuple[str, str]] = []
    if ingress.error:
        errors.append((error_type(ingress.error), ingress.error))
    span_events: list[SpanEvent] = []
    egresses = 0
    for step in event.steps:
        name, step_attrs, error = _step(step)
        if isinstance(step, Egress):
            egresses += 1
        elif isinstance(step, SubjectMapping):
            _put(attrs, names.ST_MAPPED_SUBJECT, step.to)
        elif isinstance(step, JetStream):
            _put(attrs, names.JS_STREAM, step.stream)
            _put(attrs, names.JS_SUBJECT, step.subject)
        if error:
            errors.append(error)
        span_events.append(SpanEvent(name, step.ts, step_attrs))
    attrs[names.ST_EGRESS_COUNT] = egresses
    error = errors[0] if errors else None
    if error:
        attrs[names.ERROR_TYPE] = error[0]
        attrs[names.ST_ERROR] = error[1]

    parent = publisher(event)
    own_id = direct_parent = None
    if parent is not None:
        own_id = span_id(parent.trace_id, parent.span_id, hop)
        up = parent_hop(hop)
        direct_parent = parent.span_id if up is None else span_id(parent.trace_id, parent.span_id, up)
    start = ingress.ts
    end = max([start, *(e.ts for e in span_events), *([server.time_ns] if server.time_ns else [])])
    return SpanPlan(
        name=span_name(ingress.subject),
        start=start,
        end=end,
        attributes=attrs,
        events=tuple(span_events),
        resource=resource_attributes(event),
        publisher=parent,
        parent_span_id=direct_parent,
        span_id=own_id,
        error=error,
    )


def _step(step: Any) -> tuple[str, Attrs, tuple[str, str] | None]:
    """A step's span-event name, attributes and error (``(error.type, text)`` or ``None``)."""
    attrs: Attrs = {}
    error = None
    if isinstance(step, Egress):
        name = names.ST_EVENT_EGRESS
        _put(attrs, names.ST_EGRESS_KIND, kind_name(step.kind))
        _put(attrs, names.ST_EGRESS_NAME, step.name)
        _put(attrs, names.ST_EGRESS_CID, step.cid)
        _put(attrs, names.ST_EGRESS_HOP, step.hop)
        _put(attrs, names.ST_ACCOUNT, step.account)
        _put(attrs, names.ST_SUBSCRIPTION, step.subscription)
        _put(attrs, names.ST_QUEUE, step.queue)
        if step.error:
            error = (error_type(step.error), step.error)
    elif isinstance(step, SubjectMapping):
        name = names.ST_EVENT_MAPPING
        _put(attrs, names.ST_MAPPED_SUBJECT, step.to)
    elif isinstance(step, ServiceImport):
        name = names.ST_EVENT_SERVICE_IMPORT
        _put(attrs, names.ST_ACCOUNT, step.account)
        _put(attrs, names.ST_IMPORT_FROM, step.from_)
        _put(attrs, names.ST_IMPORT_TO, step.to)
    elif isinstance(step, StreamExport):
        name = names.ST_EVENT_STREAM_EXPORT
        _put(attrs, names.ST_ACCOUNT, step.account)
        _put(attrs, names.ST_EXPORT_TO, step.to)
    else:
        name = names.ST_EVENT_JETSTREAM
        _put(attrs, names.JS_STREAM, step.stream)
        _put(attrs, names.JS_SUBJECT, step.subject)
        if step.no_interest:
            attrs[names.ST_JS_NO_INTEREST] = True
        if step.error:
            error = (error_type(step.error, jetstream=True), step.error)
    if error:
        attrs[names.ERROR_TYPE] = error[0]
        attrs[names.ST_ERROR] = error[1]
    return name, attrs, error
