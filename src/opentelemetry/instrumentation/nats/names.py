"""Every telemetry name this instrumentation emits, in one place.

Span attribute keys are grouped by *meaning*; each semantic-convention mode maps a meaning to the
key(s) it writes (``dup`` writes both). The reference documentation is generated from this module.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

SCHEMA_URL = "https://opentelemetry.io/schemas/1.45.0"
SYSTEM = "nats"
INBOX_PREFIX = "_INBOX."
JS_ACK_PREFIX = "$JS.ACK."
JS_PREFIX = "$JS."  # JetStream API, flow control and ack subjects: never a span of their own


class Mode(str, Enum):
    """Semantic-convention mode."""

    CURRENT = "current"
    LEGACY = "legacy"
    DUP = "dup"


class Op(NamedTuple):
    """A NATS operation: its span-name verb, semconv type and its name in the original NATS
    attribute names (legacy mode)."""

    name: str
    type: str | None
    legacy: str


PUBLISH = Op("publish", "send", "publish")
RESPOND = Op("publish", "send", "reply")
REQUEST = Op("request", "send", "request")
PROCESS = Op("process", "process", "receive")
RECEIVE = Op("receive", "receive", "receive")
FETCH = Op("fetch", "receive", "receive")
ACK = Op("ack", "settle", "ack")
NAK = Op("nak", "settle", "nak")
TERM = Op("term", "settle", "term")
IN_PROGRESS = Op("in_progress", "settle", "in_progress")
GET = Op("get", "receive", "receive")  # a stored message read from a stream (get_msg)
KV_PUT = Op("kv.put", None, "kv.put")
KV_GET = Op("kv.get", None, "kv.get")
KV_CREATE = Op("kv.create", None, "kv.create")
KV_UPDATE = Op("kv.update", None, "kv.update")
KV_DELETE = Op("kv.delete", None, "kv.delete")
KV_PURGE = Op("kv.purge", None, "kv.purge")
KV_HISTORY = Op("kv.history", None, "kv.history")
OBJECT_PUT = Op("object_store.put", None, "object_store.put")
OBJECT_GET = Op("object_store.get", None, "object_store.get")
OBJECT_DELETE = Op("object_store.delete", None, "object_store.delete")


class SpanSpec(NamedTuple):
    """One row of the span model: the client call, its operation, span kind(s) and name pattern."""

    call: str
    op: Op
    kind: str
    name: str


_SEND_KIND = "PRODUCER (CLIENT when the caller's headers already carry a creation context)"

SPANS: tuple[SpanSpec, ...] = (
    SpanSpec("Client.publish", PUBLISH, _SEND_KIND, "publish {subject}"),
    SpanSpec("Msg.respond", RESPOND, "PRODUCER", "publish (inbox reply) or publish {reply subject}"),
    SpanSpec("Client.request", REQUEST, "CLIENT", "request {subject}"),
    SpanSpec("subscription callback", PROCESS, "CONSUMER, SERVER when the message has a reply", "process {dest}"),
    SpanSpec("Subscription.next_msg, async for", RECEIVE, "CLIENT", "receive {dest}"),
    SpanSpec("JetStreamContext.publish / publish_async", PUBLISH, _SEND_KIND, "publish {subject}"),
    SpanSpec("JetStream push subscription callback", PROCESS, "CONSUMER", "process {subject}"),
    SpanSpec("PullSubscription.fetch", FETCH, "CLIENT", "fetch {stream}"),
    SpanSpec("Msg.ack / ack_sync", ACK, "CLIENT", "ack {stream}"),
    SpanSpec("Msg.nak", NAK, "CLIENT", "nak {stream}"),
    SpanSpec("Msg.term", TERM, "CLIENT", "term {stream}"),
    SpanSpec("Msg.in_progress", IN_PROGRESS, "CLIENT", "in_progress {stream}"),
    SpanSpec("JetStreamManager.get_msg / get_last_msg", GET, "CLIENT", "get {stream}"),
    SpanSpec("KeyValue.put", KV_PUT, "CLIENT", "kv.put {bucket}"),
    SpanSpec("KeyValue.get", KV_GET, "CLIENT", "kv.get {bucket}"),
    SpanSpec("KeyValue.create", KV_CREATE, "CLIENT", "kv.create {bucket}"),
    SpanSpec("KeyValue.update", KV_UPDATE, "CLIENT", "kv.update {bucket}"),
    SpanSpec("KeyValue.delete", KV_DELETE, "CLIENT", "kv.delete {bucket}"),
    SpanSpec("KeyValue.purge", KV_PURGE, "CLIENT", "kv.purge {bucket}"),
    SpanSpec("KeyValue.history", KV_HISTORY, "CLIENT", "kv.history {bucket}"),
    SpanSpec("KeyValue.KeyWatcher.updates, async for", RECEIVE, "CLIENT", "receive {bucket}"),
    SpanSpec("ObjectStore.put", OBJECT_PUT, "CLIENT", "object_store.put {bucket}"),
    SpanSpec("ObjectStore.get", OBJECT_GET, "CLIENT", "object_store.get {bucket}"),
    SpanSpec("ObjectStore.delete", OBJECT_DELETE, "CLIENT", "object_store.delete {bucket}"),
    SpanSpec("nats.micro endpoint handler", PROCESS, "SERVER", "process {endpoint subject}"),
)

# The next-generation clients: nats-core (``nats.client``), nats-jetstream (``nats.jetstream``) and
# nats-key-value (``nats.key_value``). A reply is a ``Client.publish`` to the message's reply subject
# (``publish``, a temporary destination).
CORE_SPANS: tuple[SpanSpec, ...] = (
    SpanSpec("Client.publish", PUBLISH, _SEND_KIND, "publish {subject}"),
    SpanSpec("Client.request", REQUEST, "CLIENT", "request {subject}"),
    SpanSpec(
        "Subscription.add_callback callback", PROCESS, "CONSUMER, SERVER when the message has a reply", "process {dest}"
    ),
    SpanSpec("Subscription.next, async for, .messages", RECEIVE, "CLIENT", "receive {dest}"),
    SpanSpec("JetStream.publish", PUBLISH, _SEND_KIND, "publish {subject}"),
    SpanSpec("Message.ack / double_ack", ACK, "CLIENT", "ack {stream}"),
    SpanSpec("Message.nak / nak_with_delay", NAK, "CLIENT", "nak {stream}"),
    SpanSpec("Message.term / term_with_reason", TERM, "CLIENT", "term {stream}"),
    SpanSpec("Message.in_progress", IN_PROGRESS, "CLIENT", "in_progress {stream}"),
    SpanSpec("JetStream.get_message / get_last_message_for_subject, the same of Stream", GET, "CLIENT", "get {stream}"),
    SpanSpec("KeyValue.put", KV_PUT, "CLIENT", "kv.put {bucket}"),
    SpanSpec("KeyValue.get", KV_GET, "CLIENT", "kv.get {bucket}"),
    SpanSpec("KeyValue.create", KV_CREATE, "CLIENT", "kv.create {bucket}"),
    SpanSpec("KeyValue.update", KV_UPDATE, "CLIENT", "kv.update {bucket}"),
    SpanSpec("KeyValue.delete", KV_DELETE, "CLIENT", "kv.delete {bucket}"),
    SpanSpec("KeyValue.purge", KV_PURGE, "CLIENT", "kv.purge {bucket}"),
    SpanSpec(
        "KeyWatcher (watch, watch_all, watch_filtered) and KeyHistory entries", RECEIVE, "CLIENT", "receive {bucket}"
    ),
    SpanSpec("PullConsumer / OrderedConsumer .fetch, .fetch_nowait (per batch)", FETCH, "CLIENT", "fetch {stream}"),
    SpanSpec(
        "PullConsumer / OrderedConsumer .next, each message of .messages()", RECEIVE, "CLIENT", "receive {stream}"
    ),
)


# --- attribute keys that are the same in every mode -------------------------------------------
# The messaging system's key: ``messaging.system.name`` since semantic conventions 1.45, which
# deprecate ``messaging.system`` (the legacy mode's key). Both hold ``nats``; see ``Keys.system``.
MESSAGING_SYSTEM_NAME = "messaging.system.name"
MESSAGING_SYSTEM = "messaging.system"
DESTINATION_NAME = "messaging.destination.name"
DESTINATION_TEMPLATE = "messaging.destination.template"
DESTINATION_TEMPORARY = "messaging.destination.temporary"
DESTINATION_ANONYMOUS = "messaging.destination.anonymous"
BODY_SIZE = "messaging.message.body.size"
MESSAGE_ID = "messaging.message.id"
BATCH_COUNT = "messaging.batch.message_count"
ERROR_TYPE = "error.type"
NATS_REPLY_TO = "messaging.nats.reply_to"
NATS_SUBSCRIPTION_ID = "messaging.nats.subscription.id"
NATS_PENDING = "messaging.nats.pending_messages"
NATS_DELIVERED = "messaging.nats.delivered_messages"
NATS_DROPPED = "messaging.nats.dropped_messages"
NATS_SERVER_ID = "messaging.nats.server.id"
NATS_SERVER_NAME = "messaging.nats.server.name"
NATS_SERVER_VERSION = "messaging.nats.server.version"
NATS_CLUSTER = "messaging.nats.cluster.name"
NATS_HEADER_PREFIX = "messaging.nats.message.header."

# nats.micro services (every mode)
MICRO_SERVICE_NAME = "messaging.nats.micro.service.name"
MICRO_SERVICE_VERSION = "messaging.nats.micro.service.version"
MICRO_SERVICE_ID = "messaging.nats.micro.service.id"
MICRO_ENDPOINT_NAME = "messaging.nats.micro.endpoint.name"
MICRO_ERROR_CODE = "messaging.nats.micro.error.code"
MICRO_ERROR_DESCRIPTION = "messaging.nats.micro.error.description"

# JetStream (every mode)
JS_STREAM = "messaging.nats.jetstream.stream"
JS_SUBJECT = "messaging.nats.jetstream.subject"
JS_SEQUENCE = "messaging.nats.jetstream.sequence"
JS_CONSUMER_SEQUENCE = "messaging.nats.jetstream.consumer_sequence"
JS_EXPECTED_STREAM = "messaging.nats.jetstream.expected_stream"
JS_DUPLICATE = "messaging.nats.jetstream.duplicate"
JS_DOMAIN = "messaging.nats.jetstream.domain"
JS_CONSUMER = "messaging.nats.jetstream.consumer"
JS_NUM_DELIVERED = "messaging.nats.jetstream.num_delivered"
JS_NUM_PENDING = "messaging.nats.jetstream.num_pending"
JS_NAK_DELAY = "messaging.nats.jetstream.nak_delay"
# the requests a JetStream publish made after its first (a client that retries when no server answered)
JS_PUBLISH_RETRIES = "messaging.nats.jetstream.publish.retries"
# stream and consumer configuration, when an API response showed it (see streams.py)
JS_DUPLICATE_WINDOW = "messaging.nats.jetstream.duplicate_window"
JS_DELIVER_SUBJECT = "messaging.nats.jetstream.deliver_subject"
JS_ACK_POLICY = "messaging.nats.jetstream.ack_policy"
JS_REPLAY_POLICY = "messaging.nats.jetstream.replay_policy"
# message features a send span reads from the headers it sends (as sent, strings unless noted) and its PubAck
JS_MESSAGE_TTL = "messaging.nats.jetstream.message_ttl"  # Nats-TTL: seconds, a Go duration or "never"
JS_BATCH_ID = "messaging.nats.jetstream.batch_id"  # Nats-Batch-Id (atomic batch), or the PubAck's batch
JS_BATCH_SEQUENCE = "messaging.nats.jetstream.batch_sequence"  # Nats-Batch-Sequence (an int)
JS_BATCH_COMMIT = "messaging.nats.jetstream.batch_commit"  # Nats-Batch-Commit: "1", or "eob"
JS_COUNTER_INCREMENT = "messaging.nats.jetstream.counter_increment"  # Nats-Incr: "+5", "-2"
JS_COUNTER_VALUE = "messaging.nats.jetstream.counter_value"  # the PubAck's val: the counter after it
JS_SCHEDULE = "messaging.nats.jetstream.schedule"  # Nats-Schedule: "@at …", "@every 5m", a cron
JS_SCHEDULE_TARGET = "messaging.nats.jetstream.schedule_target"  # Nats-Schedule-Target
JS_SCHEDULE_SOURCE = "messaging.nats.jetstream.schedule_source"  # Nats-Schedule-Source
JS_SCHEDULE_TTL = "messaging.nats.jetstream.schedule_ttl"  # Nats-Schedule-TTL
JS_SCHEDULE_TIME_ZONE = "messaging.nats.jetstream.schedule_time_zone"  # Nats-Schedule-Time-Zone
JS_SCHEDULE_ROLLUP = "messaging.nats.jetstream.schedule_rollup"  # Nats-Schedule-Rollup
KV_BUCKET = "messaging.nats.kv.bucket"
KV_KEY = "messaging.nats.kv.key"
KV_REVISION = "messaging.nats.kv.revision"
KV_OPERATION = "messaging.nats.kv.operation"  # a watcher update's KV-Operation: DEL or PURGE (none for a value)
OBJECT_BUCKET = "messaging.nats.object_store.bucket"
OBJECT_NAME = "messaging.nats.object_store.name"
OBJECT_SIZE = "messaging.nats.object_store.size"
OBJECT_CHUNKS = "messaging.nats.object_store.chunks"

# --- attribute keys that depend on the mode ----------------------------------------------------
OPERATION_TYPE = "messaging.operation.type"
OPERATION_NAME = "messaging.operation.name"
LEGACY_OPERATION = "messaging.operation"


class Keys(NamedTuple):
    """The key(s) a mode writes for each meaning that differs between modes."""

    system: tuple[str, ...]  # the messaging system's name (``nats``)
    subject: tuple[str, ...]
    template: tuple[str, ...]  # the subject of the wildcard subscription that received the message
    subject_template: tuple[str, ...]  # the ``subject_templates`` pattern the subject matches
    server_address: tuple[str, ...]
    server_port: tuple[str, ...]
    client_id: tuple[str, ...]
    consumer_group: tuple[str, ...]
    response_size: tuple[str, ...]
    current_operation: bool
    legacy_operation: bool


_CURRENT = Keys(
    system=(MESSAGING_SYSTEM_NAME,),
    subject=(DESTINATION_NAME,),
    template=(DESTINATION_TEMPLATE,),
    subject_template=(DESTINATION_TEMPLATE,),
    server_address=("server.address",),
    server_port=("server.port",),
    client_id=("messaging.client.id",),
    consumer_group=("messaging.consumer.group.name",),
    response_size=("messaging.nats.response.body.size",),
    current_operation=True,
    legacy_operation=False,
)
_LEGACY = Keys(
    system=(MESSAGING_SYSTEM,),
    subject=(DESTINATION_NAME, "messaging.nats.subject"),
    template=("messaging.nats.subscription.subject",),
    # the original names have no key for a subject template (their subscription subject is a consumer's,
    # not a producer's): legacy writes the semconv key, as it writes messaging.destination.name beside its own
    subject_template=(DESTINATION_TEMPLATE,),
    server_address=("net.peer.name",),
    server_port=("net.peer.port",),
    client_id=("messaging.nats.client.id",),
    consumer_group=("messaging.nats.queue_group",),
    response_size=("messaging.response.body.size",),
    current_operation=False,
    legacy_operation=True,
)


def _union(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    return a + tuple(k for k in b if k not in a)


KEYS: dict[Mode, Keys] = {
    Mode.CURRENT: _CURRENT,
    Mode.LEGACY: _LEGACY,
    Mode.DUP: Keys(
        *(
            _union(c, leg) if isinstance(c, tuple) else True  # type: ignore[arg-type]
            for c, leg in zip(_CURRENT, _LEGACY, strict=False)
        )
    ),
}

# --- exception events (the exception_events option): log records through the Logs API ----------


class ExceptionEvent(NamedTuple):
    """A semantic-convention exception event: its name and severity (number and text)."""

    name: str
    severity_number: int
    severity_text: str


# per messaging operation type (Op.type): WARN (13) where the caller handles the error, ERROR (17)
# where the application's handler raised
EXCEPTION_EVENTS = {
    "send": ExceptionEvent("messaging.send.exception", 13, "WARN"),
    "receive": ExceptionEvent("messaging.receive.exception", 13, "WARN"),
    "process": ExceptionEvent("messaging.process.exception", 17, "ERROR"),
    "settle": ExceptionEvent("messaging.settle.exception", 13, "WARN"),
}
EXCEPTION_TYPE = "exception.type"
EXCEPTION_MESSAGE = "exception.message"
EXCEPTION_STACKTRACE = "exception.stacktrace"

# --- metrics -----------------------------------------------------------------------------------


class Metric(NamedTuple):
    """A metric instrument: name, unit, description."""

    name: str
    unit: str
    description: str


DURATION_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
DURATION_BUCKETS_MS = tuple(b * 1000 for b in DURATION_BUCKETS_S)
# JetStream message age: milliseconds (a consumer keeping up) to a day (a backlog, a consumer that was
# down). 5 is a boundary: "p99 over 5 s" (the monitoring's alert) then means exactly "more than 1 % of
# the messages waited longer than 5 s", not an interpolation inside a wider bucket.
MESSAGE_AGE_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400)

# semconv (current mode)
M_OPERATION_DURATION = Metric("messaging.client.operation.duration", "s", "Duration of messaging operations")
M_PROCESS_DURATION = Metric("messaging.process.duration", "s", "Duration of processing operations")
M_SENT_MESSAGES = Metric("messaging.client.sent.messages", "{message}", "Messages a producer attempted to send")
M_CONSUMED_MESSAGES = Metric("messaging.client.consumed.messages", "{message}", "Messages delivered to the application")
# NATS-specific (current mode)
M_SENT_BYTES = Metric("messaging.nats.client.sent.bytes", "By", "Payload bytes sent")
M_RECEIVED_BYTES = Metric("messaging.nats.client.received.bytes", "By", "Payload bytes delivered to the application")
M_DROPPED = Metric("messaging.nats.client.dropped.messages", "{message}", "Messages dropped by slow consumers")
M_SUB_PENDING = Metric("messaging.nats.subscription.pending.messages", "{message}", "Messages pending per subscription")
# every mode
M_RECONNECTS = Metric("messaging.nats.client.reconnects", "{reconnect}", "Reconnections to a NATS server")
M_DISCONNECT_DURATION = Metric("messaging.nats.client.disconnect.duration", "s", "Time from disconnect to reconnect")
M_CONNECTIONS = Metric("messaging.nats.client.connections", "{connection}", "Open NATS connections")
M_PROPAGATION_SKIPPED = Metric(
    "messaging.nats.propagation.skipped", "{message}", "Context injections skipped (no header support, max_payload)"
)
M_JS_CONSUMER_PENDING = Metric(
    "messaging.nats.jetstream.consumer.pending", "{message}", "Last num_pending seen per stream and consumer"
)
M_JS_REDELIVERED = Metric(
    "messaging.nats.jetstream.consumer.redelivered", "{message}", "Messages delivered more than once"
)
M_JS_MESSAGE_AGE = Metric(
    "messaging.nats.jetstream.message.age",
    "s",
    "Time a JetStream message was stored in its stream before it was delivered to the application",
)
M_JS_STREAM_MESSAGES = Metric("messaging.nats.jetstream.stream.messages", "{message}", "Messages stored in a stream")
M_JS_STREAM_BYTES = Metric("messaging.nats.jetstream.stream.bytes", "By", "Bytes stored in a stream")
# legacy mode (the original NATS metric names and units)
M_LEGACY_PUBLISH_DURATION = Metric("messaging.nats.publish.duration", "ms", "Publish duration")
M_LEGACY_PUBLISH_MESSAGES = Metric("messaging.nats.publish.messages", "{message}", "Messages published")
M_LEGACY_PUBLISH_BYTES = Metric("messaging.nats.publish.bytes", "By", "Payload bytes published")
M_LEGACY_PUBLISH_ERRORS = Metric("messaging.nats.publish.errors", "{error}", "Failed publishes")
M_LEGACY_RECEIVE_DURATION = Metric("messaging.nats.receive.duration", "ms", "Message processing duration")
M_LEGACY_RECEIVE_MESSAGES = Metric("messaging.nats.receive.messages", "{message}", "Messages received")
M_LEGACY_RECEIVE_BYTES = Metric("messaging.nats.receive.bytes", "By", "Payload bytes received")
M_LEGACY_PENDING = Metric("messaging.nats.pending.messages", "{message}", "Messages pending per subscription")
M_LEGACY_DROPPED = Metric("messaging.nats.dropped.messages", "{message}", "Messages dropped by slow consumers")
M_LEGACY_ACK_DURATION = Metric("messaging.nats.jetstream.ack.duration", "ms", "JetStream ack duration")

# --- environment variables ---------------------------------------------------------------------
ENV_SEMCONV = "OTEL_PYTHON_NATS_SEMCONV"
ENV_STABILITY = "OTEL_SEMCONV_STABILITY_OPT_IN"
ENV_CONSUMER_PARENT = "OTEL_PYTHON_NATS_CONSUMER_PARENT"
ENV_EXCLUDED = "OTEL_PYTHON_NATS_EXCLUDED_SUBJECTS"
ENV_CAPTURED_HEADERS = "OTEL_PYTHON_NATS_CAPTURED_HEADERS"
ENV_ENVELOPE = "OTEL_PYTHON_NATS_ENVELOPE_SUBJECTS"
ENV_EMPTY_FETCH_SPANS = "OTEL_PYTHON_NATS_EMPTY_FETCH_SPANS"
ENV_SUBJECT_TEMPLATES = "OTEL_PYTHON_NATS_SUBJECT_TEMPLATES"
ENV_MAX_DESTINATIONS = "OTEL_PYTHON_NATS_MAX_DESTINATIONS"
ENV_EXCEPTION_EVENTS = "OTEL_PYTHON_NATS_EXCEPTION_EVENTS"

# --- server trace bridge (server_trace): spans from nats-server message-trace events (ADR-41) -------
# One span per server a traced message passes through; its resource is the server.
ST_SPAN_VERB = "traverse"  # span name: "traverse {ingress subject}" ("traverse" for an inbox subject)
ST_SPAN_KIND = "CONSUMER"
ST_SERVICE_NAME = "nats-server"  # resource service.name; service.instance.id = server id, service.version
ST_ACCOUNT = "messaging.nats.account"
ST_ENVELOPE_SIZE = "messaging.message.envelope.size"  # the server's msgsize: headers + payload
ST_INGRESS_KIND = "messaging.nats.server.ingress.kind"  # client, router, gateway, leaf, …
ST_INGRESS_NAME = "messaging.nats.server.ingress.name"  # client connection name or remote server name
ST_INGRESS_CID = "messaging.nats.server.ingress.cid"
ST_HOP = "messaging.nats.server.hop"  # Nats-Trace-Hop of a later server ("1", "1.2", …)
ST_EGRESS_COUNT = "messaging.nats.server.egress.count"  # 0: no interest
ST_MAPPED_SUBJECT = "messaging.nats.server.mapped_subject"
ST_ERROR = "messaging.nats.server.error"  # the server's error text; error.type classifies it
ST_JS_NO_INTEREST = "messaging.nats.jetstream.no_interest"
# span events, one per step of the server's event list, at the step's timestamp
ST_EVENT_EGRESS = "nats.egress"
ST_EVENT_MAPPING = "nats.subject_mapping"
ST_EVENT_SERVICE_IMPORT = "nats.service_import"
ST_EVENT_STREAM_EXPORT = "nats.stream_export"
ST_EVENT_JETSTREAM = "nats.jetstream"
ST_EGRESS_KIND = "messaging.nats.server.egress.kind"
ST_EGRESS_NAME = "messaging.nats.server.egress.name"
ST_EGRESS_CID = "messaging.nats.server.egress.cid"
ST_EGRESS_HOP = "messaging.nats.server.egress.hop"  # the hop id the next server sees in Nats-Trace-Hop
ST_SUBSCRIPTION = "messaging.destination.subscription.name"  # the subscription subject of a client egress
ST_QUEUE = "messaging.consumer.group.name"
ST_IMPORT_FROM = "messaging.nats.server.service_import.from"
ST_IMPORT_TO = "messaging.nats.server.service_import.to"
ST_EXPORT_TO = "messaging.nats.server.stream_export.to"
# metrics of the bridge
ST_M_EVENTS = Metric("messaging.nats.server_trace.events", "{event}", "Server trace events turned into spans")
ST_M_SKIPPED = Metric(
    "messaging.nats.server_trace.skipped",
    "{event}",
    "Server trace events (or entries in them) skipped as malformed or unknown, by error.type",
)
