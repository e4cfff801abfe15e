"""What the instrumentation makes of every public method of the NATS client libraries: the reviewed table.

One :class:`Section` per class (or per module, for its functions), one :class:`Row` per public method,
attribute and message-delivering async iterator protocol, with the spans and metric groups it
produces, or why it produces none. ``Row.via`` names the patch table entries (``module:Class.attr``
of ``natspy.PATCHES`` / ``natscore.PATCHES``) that make its telemetry: the method itself, or the
internal path it goes through. Span names come from ``names.py``'s operations.

``scripts/gen_api_coverage.py`` renders ``docs/api-coverage.md`` from this table and checks it:
every public member of an installed class is listed here, and every ``via`` is a real patch.
The table describes nats-py 2.16.0, nats-core 0.2.0, nats-jetstream 0.3.0 and nats-key-value 0.1.0;
``since`` is the nats-py release that added a member newer than the oldest supported one (2.9.0).
"""

from __future__ import annotations

from typing import NamedTuple, TypeVar

from opentelemetry.instrumentation.nats import names
from opentelemetry.instrumentation.nats.names import Metric, Op

VERSIONS = {"nats-py": "2.16.0", "nats-core": "0.2.0", "nats-jetstream": "0.3.0", "nats-key-value": "0.1.0"}
OLDEST_NATS_PY = "2.9.0"

# --- metric groups -------------------------------------------------------------------------------


class Metrics(NamedTuple):
    """Metrics recorded together: in the ``current`` (and ``dup``) mode, the ``legacy`` (and ``dup``)
    mode, and every mode."""

    label: str
    when: str
    current: tuple[Metric, ...] = ()
    legacy: tuple[Metric, ...] = ()
    every: tuple[Metric, ...] = ()


SEND = Metrics(
    "send",
    "when a send ends",
    (names.M_OPERATION_DURATION, names.M_SENT_MESSAGES, names.M_SENT_BYTES),
    (
        names.M_LEGACY_PUBLISH_DURATION,
        names.M_LEGACY_PUBLISH_MESSAGES,
        names.M_LEGACY_PUBLISH_BYTES,
        names.M_LEGACY_PUBLISH_ERRORS,
    ),
    (names.M_PROPAGATION_SKIPPED,),
)
PROCESS = Metrics(
    "process",
    "when a callback returns",
    (names.M_PROCESS_DURATION, names.M_CONSUMED_MESSAGES, names.M_RECEIVED_BYTES),
    (names.M_LEGACY_RECEIVE_DURATION, names.M_LEGACY_RECEIVE_MESSAGES, names.M_LEGACY_RECEIVE_BYTES),
)
RECEIVE = Metrics(
    "receive",
    "when messages are handed to the application",
    (names.M_OPERATION_DURATION, names.M_CONSUMED_MESSAGES, names.M_RECEIVED_BYTES),
    (names.M_LEGACY_RECEIVE_MESSAGES, names.M_LEGACY_RECEIVE_BYTES),
)
SETTLE = Metrics("settle", "when an ack (nak, …) ends", (names.M_OPERATION_DURATION,), (names.M_LEGACY_ACK_DURATION,))
DURATION = Metrics("duration", "when the call ends", (names.M_OPERATION_DURATION,))
CONSUMER = Metrics(
    "jetstream consumer",
    "per JetStream message delivered",
    every=(names.M_JS_REDELIVERED, names.M_JS_CONSUMER_PENDING),
)
AGE = Metrics("message age", "per stored message delivered", every=(names.M_JS_MESSAGE_AGE,))
CONNECTION = Metrics(
    "connection",
    "connection callbacks and collection",
    every=(names.M_CONNECTIONS, names.M_RECONNECTS, names.M_DISCONNECT_DURATION),
)
SUBSCRIPTIONS = Metrics(
    "subscriptions",
    "the connection's subscriptions, at collection and on drops",
    (names.M_SUB_PENDING, names.M_DROPPED),
    (names.M_LEGACY_PENDING, names.M_LEGACY_DROPPED),
)
STREAMS = Metrics(
    "streams",
    "polled when `jetstream_stream_metrics_interval` is set",
    every=(names.M_JS_STREAM_MESSAGES, names.M_JS_STREAM_BYTES),
)
GROUPS = (SEND, PROCESS, RECEIVE, SETTLE, DURATION, CONSUMER, AGE, CONNECTION, SUBSCRIPTIONS, STREAMS)

# --- rows ----------------------------------------------------------------------------------------

METHOD, ATTRIBUTE, DELIVERY = "method", "attribute", "delivery"  # a delivery row is no member: a callback


class Span(NamedTuple):
    """A span a call makes: its operation (``names.py``), destination placeholder and kind."""

    op: Op
    dest: str
    kind: str

    @property
    def name(self) -> str:
        return f"{self.op.name} {self.dest}" if self.dest else self.op.name


class Row(NamedTuple):
    name: str
    kind: str
    spans: tuple[Span, ...] = ()
    metrics: tuple[Metrics, ...] = ()
    note: str = ""
    via: tuple[str, ...] = ()  # patch entries "module:Class.attr"
    since: str = ""


class Section(NamedTuple):
    family: str  # "nats-py" or "next"
    distribution: str  # the distribution that ships ``module``
    module: str
    qualname: str | None  # None: the module's public functions
    rows: tuple[Row, ...]
    intro: str = ""
    inherits: tuple[str, ...] = ()  # ids of sections that list the members this class inherits

    @property
    def id(self) -> str:
        return f"{self.module}:{self.qualname}" if self.qualname else self.module


T = TypeVar("T")


def _tuple(value: T | tuple[T, ...]) -> tuple[T, ...]:
    """``value`` as a tuple (a named tuple such as a :class:`Span` is one value)."""
    return value if type(value) is tuple else (value,)  # type: ignore[return-value]


def traced(
    name: str,
    spans: Span | tuple[Span, ...],
    metrics: Metrics | tuple[Metrics, ...],
    via: str | tuple[str, ...],
    note: str = "",
    since: str = "",
    kind: str = METHOD,
) -> Row:
    """A member that makes spans or records metrics (``spans`` may be empty: metrics only)."""
    return Row(name, kind, _tuple(spans), _tuple(metrics), note, _tuple(via), since)


def untraced(name: str, note: str, via: str | tuple[str, ...] = (), since: str = "") -> Row:
    """A method that makes no telemetry of its own; ``note`` says why."""
    return Row(name, METHOD, note=note, via=_tuple(via), since=since)


def same(note: str, *names_: str, via: str | tuple[str, ...] = ()) -> tuple[Row, ...]:
    """Several untraced methods with the same reason."""
    return tuple(untraced(n, note, via) for n in names_)


def attrs(*names_: str, note: str = "", since: str = "", via: str | tuple[str, ...] = ()) -> tuple[Row, ...]:
    """Attributes (properties, data fields): not traced."""
    return tuple(Row(n, ATTRIBUTE, note=note, via=_tuple(via), since=since) for n in names_)


def section(
    where: str, distribution: str, *rows: Row | tuple[Row, ...], intro: str = "", inherits: tuple[str, ...] = ()
) -> Section:
    """``where``: ``module:Class`` (``Outer.Inner`` for a nested class), or a module for its functions."""
    module, _, qualname = where.partition(":")
    family = "nats-py" if distribution == "nats-py" else "next"
    flat: list[Row] = []
    for item in rows:
        flat.extend((item,) if isinstance(item, Row) else item)
    if not all(type(r) is Row for r in flat):
        raise TypeError(f"{where}: a row is not a Row (a tuple of rows not unpacked?)")
    return Section(family, distribution, module, qualname or None, tuple(flat), intro, inherits)


# span shapes (the destination placeholders of docs/reference.md)
PUBLISH = Span(names.PUBLISH, "{subject}", "PRODUCER")
RESPOND = Span(names.RESPOND, "{reply subject}", "PRODUCER")
INBOX_REPLY = Span(names.RESPOND, "", "PRODUCER")
REQUEST = Span(names.REQUEST, "{subject}", "CLIENT")
PROCESS_SUB = Span(names.PROCESS, "{dest}", "CONSUMER")
RECEIVE_SUB = Span(names.RECEIVE, "{dest}", "CLIENT")
PROCESS_JS = Span(names.PROCESS, "{subject}", "CONSUMER")
RECEIVE_STREAM = Span(names.RECEIVE, "{stream}", "CLIENT")
FETCH = Span(names.FETCH, "{stream}", "CLIENT")
ACK, NAK = Span(names.ACK, "{stream}", "CLIENT"), Span(names.NAK, "{stream}", "CLIENT")
TERM, IN_PROGRESS = Span(names.TERM, "{stream}", "CLIENT"), Span(names.IN_PROGRESS, "{stream}", "CLIENT")
GET = Span(names.GET, "{stream}", "CLIENT")
GET_OBJECT_META = Span(names.GET, "OBJ_{bucket}", "CLIENT")
PUBLISH_OBJECT_META = Span(names.PUBLISH, "$O.{bucket}.M.{name}", "PRODUCER")
RECEIVE_BUCKET = Span(names.RECEIVE, "{bucket}", "CLIENT")
MICRO = Span(names.PROCESS, "{endpoint subject}", "SERVER")
KV_PUT, KV_GET = Span(names.KV_PUT, "{bucket}", "CLIENT"), Span(names.KV_GET, "{bucket}", "CLIENT")
KV_CREATE, KV_UPDATE = Span(names.KV_CREATE, "{bucket}", "CLIENT"), Span(names.KV_UPDATE, "{bucket}", "CLIENT")
KV_DELETE, KV_PURGE = Span(names.KV_DELETE, "{bucket}", "CLIENT"), Span(names.KV_PURGE, "{bucket}", "CLIENT")
KV_HISTORY = Span(names.KV_HISTORY, "{bucket}", "CLIENT")
OBJECT_PUT, OBJECT_GET = Span(names.OBJECT_PUT, "{bucket}", "CLIENT"), Span(names.OBJECT_GET, "{bucket}", "CLIENT")
OBJECT_DELETE = Span(names.OBJECT_DELETE, "{bucket}", "CLIENT")
JS_RECEIVE = (RECEIVE, CONSUMER, AGE)  # metrics of a delivered JetStream message
JS_PROCESS = (PROCESS, CONSUMER, AGE)
KV_RECEIVE = (RECEIVE, AGE)

# reasons and notes (what the tests check; keep them in step)
NONE = "no messages."
PING = "no messages (a PING round trip)."
API = "JetStream API call: no span of its own."
CONN = "Connection management: metrics only."
SEND_NOTE = "CLIENT instead when the caller's headers already carry a trace context (sent unchanged)."
SETTLE_NOTE = "Only for a JetStream message (an ack reply subject); a child of the current span, linked to the message."
NAK_NOTE = f"{SETTLE_NOTE} A delay is recorded as `{names.JS_NAK_DELAY}`."
STORED = "Linked to the context that wrote the message, never its child."
WRITE = "The value written carries the span's context (a later read links to it)."
RECEIVED = "Recorded when a message is handed over, in the caller's context; none on a timeout."
CALLBACK = "A span per message its callback handles; SERVER when the message has a reply subject."
FETCHED = "One span per call, a link per message to its producer; none for an empty fetch (`empty_fetch_spans`)."
BATCH = "One span per batch, ended when the batch is read to its end (or dropped); a link per message."
WATCHED = "No span of its own (its consumer makes none): a span per entry taken, linked to the entry's writer."
READS_ITSELF = "It reads a watcher to its end itself: no span per entry."
META = "Not wrapped: the span is its read of the object's metadata message (`JetStreamManager.get_last_msg`)."
CHAINED = "The application's connection callbacks are chained, never replaced."
ENDPOINT = (
    "One span per request the handler gets, with the service and endpoint as attributes;"
    " an error when the handler raises or answers with `respond_error`."
)

# --- nats-py ------------------------------------------------------------------------------------

_AIO = "nats.aio.client:Client."
_SUB = "nats.aio.subscription:"
_MSG = "nats.aio.msg:Msg."
_JS = "nats.js.client:JetStreamContext."
_JSM = "nats.js.manager:JetStreamManager."
_KV = "nats.js.kv:KeyValue."
_OBJ = "nats.js.object_store:ObjectStore."
_SVC = "nats.micro.service:"
_REQ = "nats.micro.request:Request."
_API = _JSM + "_api_request"
_CLOSE = _AIO + "_close"
_NEXT_MSG = _SUB + "Subscription.next_msg"
_ITERATE = _SUB + "_SubscriptionMessageIterator.__anext__"
_TAKEN = (_KV + "KeyWatcher.updates", _KV + "KeyWatcher.__anext__")
_PY = "nats-py"

NATS_PY: tuple[Section, ...] = (
    section("nats", _PY, traced("connect", (), (CONNECTION, SUBSCRIPTIONS, STREAMS), _AIO + "connect", CHAINED)),
    section(
        "nats.aio.client:Client",
        _PY,
        traced("publish", PUBLISH, SEND, _AIO + "publish", SEND_NOTE),
        traced(
            "request", REQUEST, SEND, _AIO + "request", "One span for the round trip: its publish and inbox make none."
        ),
        traced("subscribe", PROCESS_SUB, PROCESS, _AIO + "subscribe", CALLBACK + " Without one, see `Subscription`."),
        traced("connect", (), (CONNECTION, SUBSCRIPTIONS, STREAMS), _AIO + "connect", f"{CONN} {CHAINED}"),
        traced("close", (), CONNECTION, _CLOSE, f"{CONN} Open `publish_async` spans end with an error."),
        traced("drain", (), CONNECTION, _CLOSE, f"{CONN} As `close`."),
        traced("force_reconnect", (), CONNECTION, _AIO + "connect", f"{CONN} The reconnection is counted.", "2.15.0"),
        untraced("set_server_pool", "no messages (connection management).", since="2.14.0"),
        untraced("flush", PING),
        untraced("rtt", PING, since="2.15.0"),
        untraced("new_inbox", NONE),
        untraced("jetstream", "no messages: returns a `JetStreamContext`."),
        untraced("jsm", "no messages: returns a `JetStreamManager`."),
        attrs("client_id", "connected_server_version", "connected_url", "discovered_servers", "last_error"),
        attrs("is_closed", "is_connected", "is_connecting", "is_draining", "is_draining_pubs", "is_reconnecting"),
        attrs("max_payload", "pending_data_size", "servers", "ssl_context"),
        attrs("client_ip", since="2.15.0"),
        attrs("server_pool", since="2.14.0"),
    ),
    section(
        "nats.aio.subscription:Subscription",
        _PY,
        traced("next_msg", RECEIVE_SUB, RECEIVE, _NEXT_MSG, RECEIVED),
        traced(
            "messages", RECEIVE_SUB, RECEIVE, _ITERATE, "An async iterator (below): a span per message.", kind=ATTRIBUTE
        ),
        same(NONE, "unsubscribe", "drain"),
        attrs("subject", "queue", "delivered", "pending_msgs", "pending_bytes"),
    ),
    section(
        "nats.aio.subscription:_SubscriptionMessageIterator",
        _PY,
        traced("__anext__", RECEIVE_SUB, RECEIVE, _ITERATE, "`async for msg in sub.messages`."),
        untraced("__aiter__", "no messages: returns the iterator."),
        intro="What `Subscription.messages` returns.",
    ),
    section(
        "nats.aio.msg:Msg",
        _PY,
        traced(
            "respond", RESPOND, SEND, _MSG + "respond", "`publish` alone to an inbox; replaces an echoed traceparent."
        ),
        traced("ack", ACK, SETTLE, _MSG + "ack", SETTLE_NOTE),
        traced("ack_sync", ACK, SETTLE, _MSG + "ack_sync", SETTLE_NOTE),
        traced("nak", NAK, SETTLE, _MSG + "nak", NAK_NOTE),
        traced("term", TERM, SETTLE, _MSG + "term", SETTLE_NOTE),
        traced("in_progress", IN_PROGRESS, SETTLE, _MSG + "in_progress", SETTLE_NOTE),
        attrs("subject", "reply", "data", "headers", "header", "metadata", "sid"),
        attrs("is_acked", since="2.10.0"),
    ),
    section(
        "nats.js.client:JetStreamContext",
        _PY,
        traced("publish", PUBLISH, SEND, _JS + "publish", f"{SEND_NOTE} With the PubAck's attributes."),
        traced("publish_async", PUBLISH, SEND, _JS + "publish_async", "Ends when its PubAck arrives or fails."),
        untraced("publish_async_pending", NONE),
        untraced("publish_async_completed", "no messages: waits for the pending PubAcks."),
        traced(
            "subscribe",
            PROCESS_JS,
            JS_PROCESS,
            (_AIO + "subscribe", _API),
            "A push consumer: a span per message its callback handles (through `Client.subscribe`); its automatic"
            " ack is an `ack {stream}` span. Without a callback, see `PushSubscription`.",
        ),
        traced(
            "subscribe_bind", PROCESS_JS, JS_PROCESS, _AIO + "subscribe", "As `subscribe`, to an existing consumer."
        ),
        untraced("pull_subscribe", f"{API} See `PullSubscription.fetch`.", _API),
        untraced("pull_subscribe_bind", "no messages (an existing consumer): see `PullSubscription.fetch`."),
        same(API, "key_value", "create_key_value", "delete_key_value", via=_API),
        same(API, "object_store", "create_object_store", "delete_object_store", via=_API),
        untraced("is_status_msg", "no messages (a helper)."),
        intro="The methods it inherits are listed under `JetStreamManager`.",
        inherits=("nats.js.manager:JetStreamManager",),
    ),
    section(
        "nats.js.client:JetStreamContext.PushSubscription",
        _PY,
        traced("next_msg", RECEIVE_SUB, JS_RECEIVE, _NEXT_MSG, f"Through `Subscription.next_msg`. {RECEIVED}"),
        untraced("consumer_info", API, _API),
        untraced("unsubscribe", NONE),
        attrs("delivered"),
        intro="What `JetStreamContext.subscribe` returns; the members it inherits are listed under `Subscription`.",
        inherits=("nats.aio.subscription:Subscription",),
    ),
    section(
        "nats.js.client:JetStreamContext.PullSubscription",
        _PY,
        traced("fetch", FETCH, JS_RECEIVE, _JS + "PullSubscription.fetch", FETCHED),
        untraced("consumer_info", API, _API),
        untraced("unsubscribe", NONE),
        attrs("delivered", "pending_msgs", "pending_bytes"),
        intro="What `JetStreamContext.pull_subscribe` returns.",
    ),
    section(
        "nats.js.manager:JetStreamManager",
        _PY,
        traced("get_msg", GET, DURATION, _JSM + "get_msg", f"{STORED} Direct gets included."),
        traced("get_last_msg", GET, DURATION, _JSM + "get_msg", f"Through `get_msg`. {STORED}"),
        same(API, "account_info", "add_stream", "update_stream", "delete_stream", "purge_stream", via=_API),
        same(API, "stream_info", "streams_info", "streams_info_iterator", "find_stream_name_by_subject", via=_API),
        same(API, "delete_msg", "add_consumer", "delete_consumer", "consumer_info", "consumers_info", via=_API),
        untraced("pause_consumer", API, _API, since="2.12.0"),
        untraced("resume_consumer", API, _API, since="2.12.0"),
        untraced("reset_consumer", API, _API, since="2.16.0"),
        intro="Every JetStream API request goes through `_api_request`, which makes no span; the stream and"
        " consumer configurations in its responses give later spans their attributes.",
    ),
    section(
        "nats.js.kv:KeyValue",
        _PY,
        traced("put", KV_PUT, DURATION, _KV + "put", WRITE),
        traced("create", KV_CREATE, DURATION, _KV + "create", WRITE),
        traced("update", KV_UPDATE, DURATION, _KV + "update", WRITE),
        traced("delete", KV_DELETE, DURATION, _KV + "delete", WRITE),
        traced("purge", KV_PURGE, DURATION, _KV + "purge", WRITE),
        traced("get", KV_GET, DURATION, _KV + "get", STORED),
        traced("history", KV_HISTORY, DURATION, _KV + "history", "One span, a link per entry to its writer."),
        traced("watch", RECEIVE_BUCKET, KV_RECEIVE, (_KV + "watch", *_TAKEN), WATCHED),
        traced("watchall", RECEIVE_BUCKET, KV_RECEIVE, (_KV + "watch", *_TAKEN), "As `watch`."),
        untraced("keys", READS_ITSELF, _KV + "keys"),
        untraced("purge_deletes", f"{READS_ITSELF} Its purges make none either.", _KV + "purge_deletes"),
        untraced("status", API, _API),
    ),
    section(
        "nats.js.kv:KeyValue.KeyWatcher",
        _PY,
        traced("updates", RECEIVE_BUCKET, KV_RECEIVE, _TAKEN, "A span per entry; none for the end marker."),
        traced("__anext__", RECEIVE_BUCKET, KV_RECEIVE, _TAKEN, "`async for entry in watcher`."),
        untraced("__aiter__", "no messages: returns the watcher."),
        untraced("stop", NONE),
        intro="What `KeyValue.watch` returns.",
    ),
    section(
        "nats.js.object_store:ObjectStore",
        _PY,
        traced("put", OBJECT_PUT, DURATION, _OBJ + "put", f"{WRITE} One span for all chunks."),
        traced("get", OBJECT_GET, DURATION, _OBJ + "get", f"One span for the metadata and all chunks. {STORED}"),
        traced("delete", OBJECT_DELETE, DURATION, _OBJ + "delete", WRITE),
        traced("get_info", GET_OBJECT_META, DURATION, _JSM + "get_msg", META),
        traced(
            "update_meta",
            (GET_OBJECT_META, PUBLISH_OBJECT_META),
            (DURATION, SEND),
            (_JSM + "get_msg", _JS + "publish"),
            "Not wrapped: its reads of the object's metadata message are `get` spans, its new metadata a"
            " JetStream publish.",
        ),
        untraced("watch", "Object metadata updates: no span per object.", _OBJ + "watch"),
        untraced("list", READS_ITSELF, _OBJ + "watch"),
        same(API, "seal", "status", via=_API),
    ),
    section(
        "nats.js.object_store:ObjectStore.ObjectWatcher",
        _PY,
        untraced("updates", "Object metadata (its watch makes no spans).", _OBJ + "watch"),
        untraced("__anext__", "As `updates`.", _OBJ + "watch"),
        untraced("__aiter__", "no messages: returns the watcher."),
        untraced("stop", NONE),
        intro="What `ObjectStore.watch` returns.",
    ),
    section(
        "nats.micro",
        _PY,
        untraced(
            "add_service", "No span of its own (nor its `$SRV` verb handlers): see `Endpoint`.", _SVC + "Service.start"
        ),
    ),
    section(
        "nats.micro.service:Service",
        _PY,
        untraced("start", "No span of its own (nor its `$SRV` verb handlers).", _SVC + "Service.start"),
        untraced("add_endpoint", "No span of its own: see `Endpoint`.", _SVC + "Endpoint._start"),
        same(NONE, "add_group", "stop", "reset", "info", "stats"),
        attrs("id", "stopped"),
    ),
    section(
        "nats.micro.service:Group",
        _PY,
        untraced("add_endpoint", "No span of its own: see `Endpoint`.", _SVC + "Endpoint._start"),
        untraced("add_group", NONE),
    ),
    section(
        "nats.micro.service:Endpoint",
        _PY,
        traced(
            "each request",
            MICRO,
            PROCESS,
            (_SVC + "Endpoint._handle_request", _SVC + "Endpoint._start"),
            ENDPOINT,
            kind=DELIVERY,
        ),
        intro="It has no public methods; its handler is called once per request.",
    ),
    section(
        "nats.micro.request:Request",
        _PY,
        traced(
            "respond", INBOX_REPLY, SEND, _REQ + "respond", "To the request's inbox, a child of the endpoint's span."
        ),
        untraced(
            "respond_error",
            "No span of its own: the endpoint's span becomes an error (code, description); the reply is `respond`'s.",
            _REQ + "respond_error",
        ),
        attrs("subject", "headers", "data"),
    ),
)

# --- next generation: nats-core, nats-jetstream, nats-key-value -------------------------------------
# The spans planned for this family; a row whose patches are not in natscore.PATCHES yet is shown as
# planned (scripts/gen_api_coverage.py).

_NC = "nats.client:Client."
_NSUB = "nats.client.subscription:Subscription."
_NJS = "nats.jetstream:JetStream."
_NSTREAM = "nats.jetstream.stream:Stream."
_PULL = "nats.jetstream.consumer.pull:"
_ORDERED = "nats.jetstream.consumer.ordered:"
_NMSG = "nats.jetstream.message:Message."
_NKV = "nats.key_value:"
_NAPI = "nats.jetstream.api.client:Client.request_json"
_NEXT = _NSUB + "next"
_WATCHER = _NKV + "KeyWatcher.__anext__"
_HISTORY = _NKV + "KeyHistory.__anext__"
_LISTER = _NKV + "KeyLister.__anext__"
_CORE, _JET, _KEYS = "nats-core", "nats-jetstream", "nats-key-value"


# (an ordered consumer's batch is followed through the pull batch it reads)
_PULL_BATCH = "nats.jetstream.consumer.pull:PullMessageBatch.__anext__"


def _consumer(cls: str, stream: str) -> tuple[Row, ...]:
    """The rows of a pull or ordered consumer (``cls`` is ``module:Class``)."""
    module = cls.partition(":")[0] + ":"
    return (
        traced("fetch", FETCH, JS_RECEIVE, (cls + ".fetch", _PULL_BATCH), BATCH),
        traced("fetch_nowait", FETCH, JS_RECEIVE, (cls + ".fetch_nowait", _PULL_BATCH), BATCH),
        traced("next", RECEIVE_STREAM, JS_RECEIVE, cls + ".next", "One span for the message (its fetch makes none)."),
        traced("messages", RECEIVE_STREAM, JS_RECEIVE, module + stream + ".__anext__", "A span per message taken."),
        untraced("get_info", API, _NAPI),
        untraced("close", NONE),
        *attrs("name", "stream_name", "info"),
    )


def _batch(cls: str) -> tuple[Row, ...]:
    note = "No span per message: each one is a link on the batch's `fetch {stream}` span."
    if not cls.endswith("PullMessageBatch"):
        note += " Followed through the `PullMessageBatch` it reads."
    return (
        traced("__anext__", FETCH, JS_RECEIVE, _PULL_BATCH, note),
        untraced("__aiter__", NONE),
        *attrs("error"),
    )


def _stream(cls: str) -> tuple[Row, ...]:
    note = "`async for msg in consumer.messages()`: a span per message."
    return traced("__anext__", RECEIVE_STREAM, JS_RECEIVE, cls + ".__anext__", note), *same(NONE, "__aiter__", "stop")


NEXT: tuple[Section, ...] = (
    section(
        "nats.client",
        _CORE,
        traced(
            "connect",
            (),
            (CONNECTION, SUBSCRIPTIONS),
            (_NC + "__init__", "nats.client:ServerInfo.from_protocol"),
            f"{CONN} From the client's callback lists, next to the application's callbacks; the server's name"
            " and cluster are kept for span attributes.",
        ),
    ),
    section(
        "nats.client:Client",
        _CORE,
        traced("publish", PUBLISH, SEND, _NC + "publish", SEND_NOTE),
        traced("request", REQUEST, SEND, _NC + "request", "One span; a status reply it returns is the span's error."),
        untraced("subscribe", "no messages (no callback): see `Subscription.next` and `add_callback`."),
        traced("close", (), CONNECTION, _NC + "close", CONN),
        traced("drain", (), CONNECTION, _NC + "close", f"{CONN} It ends in `close`."),
        same(
            "no messages: the instrumentation adds its own callbacks next to the application's.",
            "add_disconnected_callback",
            "add_reconnected_callback",
            "add_error_callback",
        ),
        same(PING, "flush", "rtt"),
        same(NONE, "new_inbox", "stats"),
        attrs("server_info", "status", "last_error"),
    ),
    section(
        "nats.client.subscription:Subscription",
        _CORE,
        traced("next", RECEIVE_SUB, RECEIVE, _NEXT, RECEIVED),
        traced("__aiter__", RECEIVE_SUB, RECEIVE, _NEXT, "`async for msg in sub`: through `next`."),
        traced(
            "messages",
            RECEIVE_SUB,
            RECEIVE,
            _NEXT,
            "An async iterator through `next`: a span per message.",
            kind=ATTRIBUTE,
        ),
        traced("add_callback", PROCESS_SUB, PROCESS, _NSUB + "add_callback", f"{CALLBACK} Callbacks are synchronous."),
        untraced("remove_callback", "no messages (removes a traced callback too)."),
        same(NONE, "unsubscribe", "drain"),
        attrs("subject", "queue", "closed", "pending", "dropped"),
    ),
    section(
        "nats.client.message:Message",
        _CORE,
        attrs("subject", "data", "reply", "headers", "status"),
        intro="A data class with no methods (a reply is a `Client.publish` to `reply`).",
    ),
    section("nats.jetstream", _JET, untraced("new", "no messages: returns a `JetStream`.")),
    section(
        "nats.jetstream:JetStream",
        _JET,
        traced(
            "publish", PUBLISH, SEND, _NJS + "publish", f"{SEND_NOTE} One span for all attempts, with the PubAck's."
        ),
        traced("get_message", GET, DURATION, _NJS + "get_message", STORED),
        traced("get_last_message_for_subject", GET, DURATION, _NJS + "get_last_message_for_subject", STORED),
        same(API, "account_info", "stream_names", "list_streams", "create_stream", "update_stream", via=_NAPI),
        same(API, "delete_stream", "get_stream", "get_stream_info", "consumer_names", "list_consumers", via=_NAPI),
        same(API, "create_consumer", "update_consumer", "create_or_update_consumer", "delete_consumer", via=_NAPI),
        same(API, "get_consumer", "get_consumer_info", "ordered_consumer", via=_NAPI),
        attrs("client", "api_prefix", "strict"),
        intro="Every JetStream API request goes through the API client's `request_json`, which makes no span.",
    ),
    section(
        "nats.jetstream.stream:Stream",
        _JET,
        traced("get_message", GET, DURATION, _NSTREAM + "get_message", f"{STORED} Direct gets included."),
        traced(
            "get_last_message_for_subject",
            GET,
            DURATION,
            _NSTREAM + "get_last_message_for_subject",
            f"{STORED} Direct gets included.",
        ),
        same(API, "get_info", "purge", "delete_message", "secure_delete_message", via=_NAPI),
        same(API, "create_consumer", "update_consumer", "create_or_update_consumer", "delete_consumer", via=_NAPI),
        same(API, "get_consumer", "get_consumer_info", "ordered_consumer", via=_NAPI),
        same(API, "pause_consumer", "resume_consumer", "reset_consumer", via=_NAPI),
        attrs("name", "info"),
    ),
    section(
        "nats.jetstream.consumer.pull:PullConsumer",
        _JET,
        _consumer(_PULL + "PullConsumer", "PullMessageStream"),
        untraced("reset", API, _NAPI),
    ),
    section(
        "nats.jetstream.consumer.ordered:OrderedConsumer",
        _JET,
        _consumer(_ORDERED + "OrderedConsumer", "_OrderedMessageStream"),
        untraced("create", f"{API} Creates the consumer.", _NAPI),
        untraced("reset", "no messages (ordered consumers do not support it)."),
        intro="Messages it discards (out of order, before a reset) make no spans.",
    ),
    section(
        "nats.jetstream.consumer.pull:PullMessageBatch",
        _JET,
        _batch(_PULL + "PullMessageBatch"),
        intro="What `PullConsumer.fetch` returns.",
    ),
    section(
        "nats.jetstream.consumer.pull:PullMessageStream",
        _JET,
        _stream(_PULL + "PullMessageStream"),
        attrs("is_active"),
        intro="What `PullConsumer.messages` returns.",
    ),
    section(
        "nats.jetstream.consumer.ordered:_OrderedMessageBatch",
        _JET,
        _batch(_ORDERED + "_OrderedMessageBatch"),
        intro="What `OrderedConsumer.fetch` returns.",
    ),
    section(
        "nats.jetstream.consumer.ordered:_OrderedMessageStream",
        _JET,
        _stream(_ORDERED + "_OrderedMessageStream"),
        intro="What `OrderedConsumer.messages` returns.",
    ),
    section(
        "nats.jetstream.message:Message",
        _JET,
        traced("ack", ACK, SETTLE, _NMSG + "ack", SETTLE_NOTE),
        traced("double_ack", ACK, SETTLE, _NMSG + "double_ack", f"{SETTLE_NOTE} Its confirmation makes no span."),
        traced("nak", NAK, SETTLE, _NMSG + "nak", SETTLE_NOTE),
        traced("nak_with_delay", NAK, SETTLE, _NMSG + "nak_with_delay", NAK_NOTE),
        traced("term", TERM, SETTLE, _NMSG + "term", SETTLE_NOTE),
        traced("term_with_reason", TERM, SETTLE, _NMSG + "term_with_reason", SETTLE_NOTE),
        traced("in_progress", IN_PROGRESS, SETTLE, _NMSG + "in_progress", SETTLE_NOTE),
        attrs("data", "subject", "reply", "headers", "metadata"),
    ),
    section(
        "nats.key_value",
        _KEYS,
        same(API, "create_key_value", "update_key_value", "create_or_update_key_value", "delete_key_value", via=_NAPI),
        same(API, "key_value", "key_value_bucket_names", "key_value_buckets", via=_NAPI),
    ),
    section(
        "nats.key_value:KeyValue",
        _KEYS,
        traced("put", KV_PUT, DURATION, _NKV + "KeyValue.put", WRITE),
        traced("create", KV_CREATE, DURATION, _NKV + "KeyValue.create", WRITE),
        traced("update", KV_UPDATE, DURATION, _NKV + "KeyValue.update", WRITE),
        traced("delete", KV_DELETE, DURATION, _NKV + "KeyValue.delete"),
        traced("purge", KV_PURGE, DURATION, _NKV + "KeyValue.purge"),
        traced("get", KV_GET, DURATION, _NKV + "KeyValue.get", STORED),
        traced("watch", RECEIVE_BUCKET, KV_RECEIVE, _WATCHER, WATCHED),
        traced("watch_all", RECEIVE_BUCKET, KV_RECEIVE, _WATCHER, "As `watch`."),
        traced("watch_filtered", RECEIVE_BUCKET, KV_RECEIVE, _WATCHER, "As `watch`."),
        traced(
            "history",
            RECEIVE_BUCKET,
            KV_RECEIVE,
            _HISTORY,
            "No span of its own: a span per entry taken (nats-py's `history()`, which returns a list, makes one"
            " `kv.history` span).",
        ),
        untraced("keys", "Key names: no span per key.", _LISTER),
        untraced("purge_deletes", "It reads the history itself: no spans.", _NKV + "KeyValue.purge_deletes"),
        untraced("status", API, _NAPI),
        attrs("bucket"),
    ),
    section(
        "nats.key_value:KeyWatcher",
        _KEYS,
        traced("__anext__", RECEIVE_BUCKET, KV_RECEIVE, _WATCHER, "`async for entry in watcher`."),
        traced("values", RECEIVE_BUCKET, KV_RECEIVE, _WATCHER, "Through `__anext__`."),
        traced(
            "updates",
            RECEIVE_BUCKET,
            KV_RECEIVE,
            (_NKV + "KeyWatcher.updates", _WATCHER),
            "Through `__anext__`; the initial values it takes and drops get no spans.",
        ),
        same(NONE, "at_eod", "stop"),
        intro="What `KeyValue.watch` returns.",
    ),
    section(
        "nats.key_value:KeyHistory",
        _KEYS,
        traced("__anext__", RECEIVE_BUCKET, KV_RECEIVE, _HISTORY, "`async for entry in history`."),
        intro="What `KeyValue.history` returns.",
    ),
    section(
        "nats.key_value:KeyLister",
        _KEYS,
        untraced("__anext__", "Key names (the consumer underneath makes no spans).", _LISTER),
        intro="What `KeyValue.keys` returns.",
    ),
)

SECTIONS = NATS_PY + NEXT
