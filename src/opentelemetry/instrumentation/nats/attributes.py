"""Pure functions that build span attributes per mode, from what a client family's accessor
(:class:`~.access.ClientAccess`) reads and from public message and result fields.

Nothing here starts spans or records metrics; :mod:`.recorder` does that.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.instrumentation.nats import names
from opentelemetry.instrumentation.nats.access import ClientAccess, SubscriptionCounts
from opentelemetry.instrumentation.nats.names import Keys, Op
from opentelemetry.instrumentation.nats.propagation import as_mapping
from opentelemetry.instrumentation.nats.subjects import SubjectSet

Attrs = dict[str, Any]

MSG_ID_HEADER = "Nats-Msg-Id"


# --- builders ----------------------------------------------------------------------------------


def _put(attrs: Attrs, keys: tuple[str, ...], value: Any) -> None:
    if value is not None and value != "":
        for k in keys:
            attrs[k] = value


def connection_attributes(keys: Keys, access: ClientAccess, client: Any) -> Attrs:
    """Attributes of the connection: server endpoint, client id and the server's INFO facts."""
    info = access.server_info(client)
    host, port = access.server_endpoint(client)
    attrs: Attrs = {}
    _put(attrs, keys.server_address, host)
    _put(attrs, keys.server_port, port)
    cid = info.get("client_id")
    if cid is not None:
        for k in keys.client_id:
            attrs[k] = str(cid) if k == "messaging.client.id" else cid
    _put(attrs, (names.NATS_SERVER_ID,), info.get("server_id"))
    _put(attrs, (names.NATS_SERVER_NAME,), info.get("server_name"))
    _put(attrs, (names.NATS_SERVER_VERSION,), info.get("version"))
    _put(attrs, (names.NATS_CLUSTER,), info.get("cluster"))
    return attrs


def operation_attributes(keys: Keys, op: Op) -> Attrs:
    attrs: Attrs = dict.fromkeys(keys.system, names.SYSTEM)
    if keys.current_operation:
        if op.type is not None:
            attrs[names.OPERATION_TYPE] = op.type
        attrs[names.OPERATION_NAME] = op.name
    if keys.legacy_operation:
        attrs[names.LEGACY_OPERATION] = op.legacy
    return attrs


def destination_attributes(
    keys: Keys,
    op: Op,
    subject: str,
    template: str | None,
    queue: str | None,
    temporary: bool,
    subject_template: str | None = None,
) -> Attrs:
    """Attributes fixed for an operation on one subject (cached by the recorder); ``template`` is
    the wildcard subscription's subject, ``subject_template`` the ``subject_templates`` pattern."""
    attrs = operation_attributes(keys, op)
    _put(attrs, keys.subject, subject)
    if temporary:
        attrs[names.DESTINATION_TEMPORARY] = True
        attrs[names.DESTINATION_ANONYMOUS] = True
    _put(attrs, keys.template, template)
    _put(attrs, keys.subject_template, subject_template)
    _put(attrs, keys.consumer_group, queue)
    return attrs


def span_name(op: Op, destination: str | None) -> str:
    """``{operation} {destination}``, or the operation alone when no low-cardinality destination is known."""
    return f"{op.name} {destination}" if destination else op.name


def header_attributes(headers: Any, captured: SubjectSet) -> Attrs:
    """``messaging.message.id`` from ``Nats-Msg-Id``, and the opted-in captured headers (of a header
    with several values, the first, as nats-core's ``Headers.get`` reads it)."""
    attrs: Attrs = {}
    if not headers:
        return attrs
    if type(headers) is not dict and not isinstance(headers, Mapping):  # (fast path: a dict)
        headers = as_mapping(headers)
        if not headers:
            return attrs
    msg_id = _first(headers.get(MSG_ID_HEADER))
    if isinstance(msg_id, str) and msg_id:
        attrs[names.MESSAGE_ID] = msg_id
    if captured:
        for k, v in headers.items():
            if isinstance(k, str) and k.lower() in captured:
                v = _first(v)
                if isinstance(v, str):
                    attrs[names.NATS_HEADER_PREFIX + k.lower()] = v
    return attrs


def _first(value: Any) -> Any:
    """A header's value: a list's (nats-core) first item."""
    return (value[0] if value else None) if type(value) is list else value


def subscription_attributes(
    sid: Any, counts: SubscriptionCounts | None, dropped: Mapping[Any, int] | None = None, attrs: Attrs | None = None
) -> Attrs:
    """Subscription id and its counters (see :func:`subscription_counters`), when the subscription
    is known. Added to ``attrs`` when given (fast path: no intermediate dict per message)."""
    if attrs is None:
        attrs = {}
    if sid is None:
        return attrs
    attrs[names.NATS_SUBSCRIPTION_ID] = str(sid)
    return subscription_counters(counts, dropped, attrs)


def subscription_counters(counts: SubscriptionCounts | None, dropped: Mapping[Any, int] | None, attrs: Attrs) -> Attrs:
    """A subscription's delivered/pending counters, added to ``attrs``; its slow-consumer drops once
    there are any (the client's own count, else ``dropped``, counted by the connection watch)."""
    if counts is not None:
        sub, delivered, pending, own_dropped = counts
        if delivered is not None:
            attrs[names.NATS_DELIVERED] = delivered
        if pending is not None:
            attrs[names.NATS_PENDING] = pending
        if own_dropped:
            attrs[names.NATS_DROPPED] = own_dropped
        elif dropped:
            n = dropped.get(sub)
            if n:
                attrs[names.NATS_DROPPED] = n
    return attrs


def response_attributes(keys: Keys, msg: Any, client: Any = None) -> Attrs:
    """Response body size of a ``request``."""
    data = getattr(msg, "data", None)
    return {k: len(data) for k in keys.response_size} if data is not None else {}


# --- JetStream ---------------------------------------------------------------------------------


def ack_subject_attributes(reply: str) -> Attrs:
    """Stream, consumer, sequences, deliveries and pending count from a ``$JS.ACK.…`` reply subject."""
    tokens = reply.split(".")
    if len(tokens) == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>
        domain, rest = None, tokens[2:]
    elif len(tokens) >= 11:  # $JS.ACK.<domain>.<account hash>.<stream>.… [.<random>]
        domain, rest = (None if tokens[2] == "_" else tokens[2]), tokens[4:]
    else:
        return {}
    try:
        attrs: Attrs = {
            names.JS_STREAM: rest[0],
            names.JS_CONSUMER: rest[1],
            names.JS_NUM_DELIVERED: int(rest[2]),
            names.JS_SEQUENCE: int(rest[3]),
            names.JS_CONSUMER_SEQUENCE: int(rest[4]),
            names.JS_NUM_PENDING: int(rest[6]),
        }
    except (ValueError, IndexError):
        return {}
    if domain:
        attrs[names.JS_DOMAIN] = domain
    return attrs


def jetstream_message_attributes(reply: Any) -> Attrs | None:
    """JetStream metadata of a delivered message (``None`` for core NATS messages)."""
    if isinstance(reply, str) and reply.startswith(names.JS_ACK_PREFIX):
        return ack_subject_attributes(reply)
    return None


def ack_timestamp(reply: Any) -> int | None:
    """When the server stored a delivered JetStream message (nanoseconds since the epoch): the ``<tm>``
    token of its ``$JS.ACK.…`` reply subject (see :func:`ack_subject_attributes`); ``None`` for other
    messages and malformed subjects."""
    if not isinstance(reply, str) or not reply.startswith(names.JS_ACK_PREFIX):
        return None
    tokens = reply.split(".")
    n = len(tokens)
    if n != 9 and n < 11:
        return None
    try:
        return int(tokens[7 if n == 9 else 9])
    except ValueError:
        return None


def puback_attributes(keys: Keys, ack: Any, client: Any = None) -> Attrs:
    """Stream, sequence, duplicate flag and domain from a JetStream ``PubAck``; an atomic batch's
    id and size (on its commit) and a counter's value after the increment, when it has them.
    nats-py names the sequence and the counter's value ``seq`` and ``val``, nats-jetstream
    ``sequence`` and ``value``."""
    attrs: Attrs = {}
    stream, seq, domain = getattr(ack, "stream", None), getattr(ack, "seq", None), getattr(ack, "domain", None)
    if seq is None:
        seq = getattr(ack, "sequence", None)
    if stream is not None and stream != "":  # (one per JetStream publish: the checks of _put, inline)
        attrs[names.JS_STREAM] = stream
    if seq is not None and seq != "":
        attrs[names.JS_SEQUENCE] = seq
    if domain is not None and domain != "":
        attrs[names.JS_DOMAIN] = domain
    attrs[names.JS_DUPLICATE] = bool(getattr(ack, "duplicate", False))
    batch, value = getattr(ack, "batch_id", None), getattr(ack, "val", None)  # (nats-py 2.16)
    if value is None:
        value = getattr(ack, "value", None)
    if batch:
        attrs[names.JS_BATCH_ID] = str(batch)
        size = getattr(ack, "batch_size", None)
        if type(size) is int:
            attrs[names.BATCH_COUNT] = size
    if value is not None:
        attrs[names.JS_COUNTER_VALUE] = str(value)
    return attrs


# JetStream message features that a published message asks for in its headers (the names the
# server reads, which are case-sensitive), and the span attribute that records each header's value.
JS_FEATURE_HEADERS: Mapping[str, str] = {
    "Nats-TTL": names.JS_MESSAGE_TTL,
    "Nats-Batch-Id": names.JS_BATCH_ID,
    "Nats-Batch-Sequence": names.JS_BATCH_SEQUENCE,
    "Nats-Batch-Commit": names.JS_BATCH_COMMIT,
    "Nats-Incr": names.JS_COUNTER_INCREMENT,
    "Nats-Schedule": names.JS_SCHEDULE,
    "Nats-Schedule-Target": names.JS_SCHEDULE_TARGET,
    "Nats-Schedule-Source": names.JS_SCHEDULE_SOURCE,
    "Nats-Schedule-TTL": names.JS_SCHEDULE_TTL,
    "Nats-Schedule-Time-Zone": names.JS_SCHEDULE_TIME_ZONE,
    "Nats-Schedule-Rollup": names.JS_SCHEDULE_ROLLUP,
}
_FEATURE_HEADER_NAMES = frozenset(JS_FEATURE_HEADERS)


def feature_header_attributes(headers: Any) -> Attrs | None:
    """The JetStream message features (per-message TTL, atomic batch, counter, schedule) that
    outgoing ``headers`` ask for, as span attributes; ``None`` when they ask for none (the usual
    case: one set operation) or are not a mapping. Values are recorded as sent (stripped, as
    nats-py sends them); the batch sequence as an int, left out when it is not one."""
    try:
        if _FEATURE_HEADER_NAMES.isdisjoint(headers):
            return None
        attrs: Attrs = {}
        for header, key in JS_FEATURE_HEADERS.items():
            value = headers.get(header)
            if type(value) is list and value:  # (list-valued headers: the value sent first)
                value = value[0]
            if isinstance(value, str):
                attrs[key] = value.strip()
        sequence = attrs.pop(names.JS_BATCH_SEQUENCE, None)
        if sequence is not None and sequence.isascii() and sequence.isdigit():
            attrs[names.JS_BATCH_SEQUENCE] = int(sequence)
        return attrs or None
    except Exception:  # not a mapping of headers (nats-py fails on it itself)
        return None


def batch_attributes(keys: Keys, msgs: Any, client: Any = None) -> Attrs:
    """``messaging.batch.message_count`` of a ``fetch``."""
    return {names.BATCH_COUNT: len(msgs) if msgs is not None else 0}


def revision_attributes(keys: Keys, result: Any, client: Any = None) -> Attrs:
    """Key-value revision from an ``int`` result or an ``Entry``."""
    revision = result if isinstance(result, int) and not isinstance(result, bool) else getattr(result, "revision", None)
    return {names.KV_REVISION: revision} if isinstance(revision, int) else {}


def object_info_attributes(keys: Keys, result: Any, client: Any = None) -> Attrs:
    """Size and chunk count from an object store ``ObjectInfo`` (or an object ``get`` result)."""
    info = getattr(result, "info", result)
    attrs: Attrs = {}
    _put(attrs, (names.OBJECT_SIZE,), getattr(info, "size", None))
    _put(attrs, (names.OBJECT_CHUNKS,), getattr(info, "chunks", None))
    return attrs
