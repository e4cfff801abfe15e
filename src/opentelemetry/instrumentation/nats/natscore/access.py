"""Every read of nats-core's private state (and of the INFO it drops), in one place.

nats-core 0.2 keeps what spans and metrics need partly in public properties (``Client.server_info``,
``status``; ``Subscription.subject``, ``queue``, ``pending``, ``dropped``) and partly in private
attributes: the current server (``_last_server``, ``_server_pool``), the inbox prefix, the
subscriptions by id, a subscription's client and id, and the lists a ``Headers`` object holds
(``_data``, read without a copy). Each read tolerates their absence (``getattr`` with a default) so a
release that renames one loses that attribute or metric, never the application's call.

Its ``ServerInfo`` keeps only some of the server's INFO (no ``server_name`` or ``cluster``): the
``ServerInfo.from_protocol`` patch hands each INFO to :func:`remember_info`, and
:meth:`NatsCoreAccess.server_info` returns it for the ``ServerInfo`` object made from it.

:data:`ACCESS` is nats-core's :class:`~..access.ClientAccess`; the functions below are what the
patch modules read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import suppress
from functools import partial
from typing import Any
from urllib.parse import urlparse
from weakref import ref

from opentelemetry.instrumentation.nats.access import (
    DEFAULT_MAX_PAYLOAD,
    DEFAULT_PORT,
    INBOX_PREFIX,
    SubscriptionCounts,
    SubscriptionState,
)

_NO_SUBS: Mapping[Any, Any] = {}  # (shared, read only)
_CONNECTED = "connected"  # ClientStatus.CONNECTED.value

# id(ServerInfo) → (the ServerInfo, the INFO it was made from). ServerInfo is an unhashable
# dataclass, so it cannot key a WeakKeyDictionary; a weak reference drops the entry with it.
_INFOS: dict[int, tuple[ref[Any], Mapping[str, Any]]] = {}
_INFO_FIELDS = ("server_id", "version", "host", "port", "headers", "max_payload", "proto", "client_id", "jetstream")


def remember_info(server_info: Any, info: Any) -> None:
    """``server_info`` (a ``ServerInfo``) was made from the INFO dict ``info``."""
    if not isinstance(info, Mapping):
        return
    key = id(server_info)
    with suppress(TypeError):  # (not weak-referenceable: not remembered)
        _INFOS[key] = (ref(server_info, partial(_forget, key)), info)


def _forget(key: int, gone: ref[Any]) -> None:
    found = _INFOS.get(key)
    if found is not None and found[0] is gone:
        del _INFOS[key]


def _info(server_info: Any) -> Mapping[str, Any]:
    """The INFO ``server_info`` was made from; else its own fields (``server_name`` and ``cluster``
    unknown: a ``ServerInfo`` made before ``instrument()``), remembered too."""
    found = _INFOS.get(id(server_info))
    if found is not None and found[0]() is server_info:
        return found[1]
    if server_info is None:
        return {}
    fields = {name: getattr(server_info, name, None) for name in _INFO_FIELDS}
    info = {k: v for k, v in fields.items() if v is not None}
    remember_info(server_info, info)
    return info


def _endpoint(server: Any) -> tuple[str | None, int | None]:
    """Host and port of a server pool entry: ``host:port`` (IPv6 unbracketed, as ``connect`` writes
    it) or a URL."""
    if not isinstance(server, str) or not server:
        return None, None
    if "://" in server:
        try:
            url = urlparse(server)
            return url.hostname, url.port or DEFAULT_PORT
        except ValueError:  # malformed port
            return None, None
    host, _, port = server.rpartition(":")
    if not host:
        return server.strip("[]"), DEFAULT_PORT
    return host.strip("[]"), int(port) if port.isdigit() else None


class NatsCoreAccess:
    """nats-core's :class:`~..access.ClientAccess`."""

    connection_marks = ("_server_info", "_last_server")

    def server_info(self, client: Any) -> Mapping[str, Any]:
        return _info(getattr(client, "_server_info", None))

    def server_endpoint(self, client: Any) -> tuple[str | None, int | None]:
        server = getattr(client, "_last_server", None)  # the server of the last reconnect
        if server is None:
            pool = getattr(client, "_server_pool", None)  # its first entry: the URL connect() was given
            server = pool[0] if isinstance(pool, list) and pool else None
        return _endpoint(server)

    def inbox_prefix(self, client: Any) -> str:
        prefix = getattr(client, "_inbox_prefix", None)
        return prefix + "." if isinstance(prefix, str) and prefix else INBOX_PREFIX

    def send_limits(self, client: Any) -> tuple[Mapping[str, Any], int]:
        server_info = getattr(client, "_server_info", None)
        value = getattr(server_info, "max_payload", None)
        return _info(server_info), value if type(value) is int else DEFAULT_MAX_PAYLOAD

    def is_connected(self, client: Any) -> bool:
        return getattr(getattr(client, "status", None), "value", None) == _CONNECTED

    def ordered_consumer(self, client: Any, sid: Any) -> bool:
        """Always False: nats-core subscriptions are core NATS ones (nats-jetstream's ordered
        consumers pull through their own calls, which name no consumer for message age)."""
        return False

    def subscription_counts(self, client: Any, sid: Any) -> SubscriptionCounts | None:
        sub = getattr(client, "_subscriptions", _NO_SUBS).get(sid)
        if sub is None:
            return None
        pending = getattr(sub, "_pending_messages", None)
        dropped = getattr(sub, "_dropped_messages", None)
        # (nats-core does not count deliveries)
        return sub, None, pending if type(pending) is int else None, dropped if type(dropped) is int else None

    def subscriptions(self, client: Any) -> Iterable[SubscriptionState]:
        inbox = self.inbox_prefix(client)
        for sub in list(getattr(client, "_subscriptions", _NO_SUBS).values()):
            state = _state(sub)
            # (the client's inboxes and nats-jetstream's, which always start with _INBOX.)
            if state.subject and not state.subject.startswith(inbox) and not state.subject.startswith(INBOX_PREFIX):
                yield state


def _state(sub: Any) -> SubscriptionState:
    subject, queue = getattr(sub, "subject", ""), getattr(sub, "queue", "")
    pending = getattr(sub, "_pending_messages", None)
    dropped = getattr(sub, "_dropped_messages", None)
    return SubscriptionState(
        sub,
        subject if isinstance(subject, str) else "",
        queue if isinstance(queue, str) and queue else None,
        None,  # (nats-core does not count deliveries)
        pending if type(pending) is int else None,
        dropped if type(dropped) is int else None,
    )


ACCESS = NatsCoreAccess()


class OrderedConsumerAccess(NatsCoreAccess):
    """nats-core's accessor for the operations of nats-jetstream's ordered consumers (consume.py):
    their messages name a consumer that the client recreates under a new name after a gap, so
    metrics leave the consumer's name out."""

    def ordered_consumer(self, client: Any, sid: Any) -> bool:
        return True


ORDERED_ACCESS = OrderedConsumerAccess()


# --- nats-jetstream's consumers (consume.py) -----------------------------------------------------

_FETCH = "_opentelemetry_nats_fetch"  # (ours) the LazyFetch following a batch, in the batch's __dict__


def consumer_client(consumer: Any) -> Any:
    """The client of a ``PullConsumer`` or ``OrderedConsumer`` (through its stream's JetStream context)."""
    return getattr(getattr(getattr(consumer, "_stream", None), "_jetstream", None), "client", None)


def consumer_names(consumer: Any) -> tuple[str, str | None]:
    """Stream and consumer name of a consumer (public properties; an ordered consumer's is its
    current server-side consumer's)."""
    try:
        stream, name = consumer.stream_name, consumer.name
    except Exception:  # (an ordered consumer that is closed)
        return getattr(getattr(consumer, "_stream", None), "name", None) or "", None
    return (stream if isinstance(stream, str) else ""), (name if isinstance(name, str) and name else None)


def stream_consumer(stream: Any) -> Any:
    """The consumer of a ``PullMessageStream`` or an ordered consumer's message stream."""
    return getattr(stream, "_consumer", None)


def reading_batch(batch: Any) -> Any:
    """The ``PullMessageBatch`` that reads ``batch``'s messages: itself, or the one an ordered
    consumer's batch wraps."""
    return getattr(batch, "_inner", batch)


def follow_batch(batch: Any, tracker: Any) -> bool:
    """Keep ``tracker`` with ``batch`` (``False`` when it cannot hold it)."""
    try:
        batch.__dict__[_FETCH] = tracker
    except (AttributeError, TypeError):
        return False
    return True


def batch_tracker(batch: Any) -> Any:
    """The tracker kept with ``batch`` (``None``: not followed)."""
    found = getattr(batch, "__dict__", None)
    return found.get(_FETCH) if found is not None else None


def batch_complete(batch: Any) -> bool:
    """True when ``batch`` has handed over every message it asked for (its next step only ends it)."""
    pending = getattr(batch, "_pending_messages", None)
    return type(pending) is int and pending <= 0


def batch_error(batch: Any) -> BaseException | None:
    """The error a batch recorded when it ended (public ``error``)."""
    error = getattr(batch, "error", None)
    return error if isinstance(error, BaseException) else None


# --- what the patch modules read -----------------------------------------------------------------


def header_view(headers: Any) -> Any:
    """The caller's or a message's headers as the dict the recorder reads: a ``Headers`` object's
    own ``dict[str, list[str]]`` (no copy, never changed); a dict (or ``None``) as it is."""
    if headers is None or type(headers) is dict:
        return headers
    data = getattr(headers, "_data", None)
    return data if type(data) is dict else headers


def unwrap_callbacks(sub: Any, wrapper: type) -> None:
    """Give ``sub`` back the callbacks that ``wrapper`` proxies wrap, in place in its callback list."""
    callbacks = getattr(sub, "_callbacks", None)
    if type(callbacks) is list:
        for i, cb in enumerate(callbacks):
            if type(cb) is wrapper:
                callbacks[i] = getattr(cb, "__wrapped__", cb)


def subscription_client(sub: Any) -> Any:
    return getattr(sub, "_client", None)


def subscription_fields(sub: Any) -> tuple[Any, Any, Any, Any]:
    """Client, id, subject and queue group of a ``Subscription`` (one call per delivered message:
    the private attributes behind its ``subject`` and ``queue`` properties, read directly)."""
    try:
        return sub._client, sub._sid, sub._subject, sub._queue
    except AttributeError:  # (a release that renamed one)
        return tuple(getattr(sub, name, None) for name in ("_client", "_sid", "_subject", "_queue"))  # type: ignore[return-value]


def receive_fields(sub: Any) -> tuple[Any, Any, Any, Any, SubscriptionCounts | None]:
    """:func:`subscription_fields` and the counters :meth:`NatsCoreAccess.subscription_counts` gives,
    read from ``sub`` itself (one call per message an iterator hands over)."""
    try:
        pending, dropped = sub._pending_messages, sub._dropped_messages
        counts = (sub, None, pending if type(pending) is int else None, dropped if type(dropped) is int else None)
        return sub._client, sub._sid, sub._subject, sub._queue, counts
    except AttributeError:  # (a release that renamed one)
        client, sid, subject, queue = subscription_fields(sub)
        return client, sid, subject, queue, ACCESS.subscription_counts(client, sid)


def subscription_dropped(sub: Any) -> int:
    """The messages ``sub`` has dropped as a slow consumer, in all."""
    dropped = getattr(sub, "_dropped_messages", 0)
    return dropped if type(dropped) is int else 0


def client_subscription(client: Any, sid: Any) -> Any:
    """The subscription ``sid`` of ``client`` (``None`` when it is gone)."""
    return getattr(client, "_subscriptions", _NO_SUBS).get(sid)


# --- nats-jetstream and nats-key-value ------------------------------------------------------------


def jetstream_client(js: Any) -> Any:
    """The client of a ``JetStream`` context (its public ``client``)."""
    return getattr(js, "client", None)


def api_client(api: Any) -> Any:
    """The client of nats-jetstream's JetStream API client."""
    return getattr(api, "_client", None)


def stream_client(stream: Any) -> Any:
    """The client of a ``Stream`` (through its JetStream context)."""
    return jetstream_client(getattr(stream, "_jetstream", None))


def stream_name(stream: Any) -> Any:
    return getattr(stream, "name", None)


def message_client(msg: Any) -> Any:
    """The client of a delivered JetStream ``Message`` (``None`` for one built by hand)."""
    return jetstream_client(getattr(msg, "_jetstream", None))


def stored_message(msg: Any) -> tuple[Any, Any, Any, Any]:
    """Headers (see :func:`header_view`), subject, data and stream sequence of a message read back from
    a stream: a ``StreamMessage`` (a stored-message get), or a delivered JetStream ``Message`` (a
    key-value watcher's or history's, by its metadata)."""
    seq = getattr(msg, "sequence", None)
    if seq is None:
        seq = msg.metadata.sequence.stream
    return header_view(msg.headers), msg.subject, msg.data, seq


def store(kv: Any) -> tuple[Any, str]:
    """Client and bucket of a ``KeyValue``."""
    bucket = getattr(kv, "bucket", None)
    return jetstream_client(getattr(kv, "_js", None)), bucket if isinstance(bucket, str) else ""


def iterator_client(iterator: Any) -> Any:
    """The client of a key-value ``KeyWatcher`` or ``KeyHistory`` (through its ordered consumer's stream)."""
    return stream_client(getattr(getattr(iterator, "_consumer", None), "_stream", None))
