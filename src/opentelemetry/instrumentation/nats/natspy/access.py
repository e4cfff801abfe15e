"""Every read of nats-py's private state, in one place.

nats-py keeps what spans and metrics need in private attributes (the server's INFO, the current
server, subscriptions and their queues, a message's client and subscription id, a pull
subscription's stream and consumer …). They have been stable from nats-py 2.9 to 2.16; each read
tolerates their absence (``getattr`` with a default) so a release that renames one loses that
attribute or metric, never the application's call.

:data:`ACCESS` is nats-py's :class:`~..access.ClientAccess` (what the recorder and metrics read);
the functions below are what the patch modules read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.instrumentation.nats import names
from opentelemetry.instrumentation.nats.access import (
    DEFAULT_MAX_PAYLOAD,
    DEFAULT_PORT,
    INBOX_PREFIX,
    SubscriptionCounts,
    SubscriptionState,
)

_NO_SUBS: Mapping[Any, Any] = {}  # (shared, read only)


class NatsPyAccess:
    """nats-py's :class:`~..access.ClientAccess`."""

    connection_marks = ("_server_info", "_current_server")

    def server_info(self, client: Any) -> Mapping[str, Any]:
        info = getattr(client, "_server_info", None)
        return info if type(info) is dict or isinstance(info, Mapping) else {}  # (a dict: no ABC check)

    def server_endpoint(self, client: Any) -> tuple[str | None, int | None]:
        uri = getattr(getattr(client, "_current_server", None), "uri", None)
        if uri is None:
            return None, None
        try:
            return uri.hostname, uri.port or DEFAULT_PORT
        except ValueError:  # malformed port
            return uri.hostname, None

    def inbox_prefix(self, client: Any) -> str:
        prefix = getattr(client, "_inbox_prefix", None)
        if isinstance(prefix, (bytes, bytearray)):
            return prefix.decode() + "."
        return INBOX_PREFIX

    def send_limits(self, client: Any) -> tuple[Mapping[str, Any], int]:
        info = getattr(client, "_server_info", None)
        if type(info) is not dict:
            info = self.server_info(client)
        value = getattr(client, "_max_payload", None)
        return info, value if type(value) is int else DEFAULT_MAX_PAYLOAD

    def is_connected(self, client: Any) -> bool:
        return bool(getattr(client, "is_connected", False))

    def subscription_counts(self, client: Any, sid: Any) -> SubscriptionCounts | None:
        sub = getattr(client, "_subs", _NO_SUBS).get(sid)
        if sub is None:
            return None
        queue = getattr(sub, "_pending_queue", None)
        return sub, getattr(sub, "_received", None), queue.qsize() if queue is not None else None, None

    def subscriptions(self, client: Any) -> Iterable[SubscriptionState]:
        inbox = self.inbox_prefix(client)
        for sub in list(getattr(client, "_subs", _NO_SUBS).values()):
            state = _state(sub)
            if state.subject and not state.subject.startswith(inbox):  # (response inboxes, deliver subjects)
                yield state

    def ordered_consumer(self, client: Any, sid: Any) -> bool:
        sub = getattr(client, "_subs", _NO_SUBS).get(sid)  # (a JetStream subscription's state is its _jsi)
        return getattr(getattr(sub, "_jsi", None), "_ordered", False) is True


def _state(sub: Any) -> SubscriptionState:
    queue = getattr(sub, "_pending_queue", None)
    return SubscriptionState(
        sub,
        subscription_subject(sub),
        subscription_queue(sub),
        getattr(sub, "_received", None),
        queue.qsize() if queue is not None else None,
    )


ACCESS = NatsPyAccess()


# --- what the patch modules read -----------------------------------------------------------------


def unwrap_callback(sub: Any, wrapper: type) -> None:
    """Give ``sub`` back the callback that its ``wrapper`` proxy wraps (nats-py reads ``_cb`` per message)."""
    cb = getattr(sub, "_cb", None)
    if type(cb) is wrapper:
        sub._cb = getattr(cb, "__wrapped__", cb)


def message_client(msg: Any) -> Any:
    """The client that received ``msg`` (``None`` for a message built by hand)."""
    return getattr(msg, "_client", None)


def message_sid(msg: Any) -> Any:
    return getattr(msg, "_sid", None)


def subscription_subject(sub: Any) -> str:
    subject = getattr(sub, "_subject", "")
    return subject if isinstance(subject, str) else ""


def subscription_queue(sub: Any) -> str | None:
    queue = getattr(sub, "_queue", None)
    return queue if isinstance(queue, str) and queue else None


def iterator_subscription(iterator: Any) -> Any:
    """The subscription of a ``sub.messages`` iterator."""
    return getattr(iterator, "_sub", None)


def jetstream_client(js: Any) -> Any:
    """The connection of a JetStream context or manager."""
    return getattr(js, "_nc", None)


def jetstream_timeout(js: Any) -> float | None:
    timeout = getattr(js, "_timeout", None)
    return float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else None


def pull_subscription(psub: Any) -> tuple[Any, str, str | None]:
    """Connection, stream and consumer of a ``PullSubscription``."""
    consumer = getattr(psub, "_consumer", None)
    return (
        jetstream_client(getattr(psub, "_js", None)),
        getattr(psub, "_stream", None) or "",
        consumer if isinstance(consumer, str) and consumer else None,
    )


def store(instance: Any) -> tuple[Any, str]:
    """Connection and bucket of a ``KeyValue`` or ``ObjectStore``."""
    return jetstream_client(getattr(instance, "_js", None)), getattr(instance, "_name", None) or ""


def stored_message(msg: Any) -> tuple[Any, Any, Any, Any]:
    """Headers, subject, data and stream sequence of a message read back from a stream (``RawStreamMsg``)."""
    return msg.headers, msg.subject, msg.data, msg.seq


def endpoint(instance: Any) -> tuple[dict[str, Any], str, str | None]:
    """A nats.micro ``Endpoint``'s service and endpoint names (by attribute key), subject and queue group."""
    service = getattr(instance, "_service", None)
    described = {
        names.MICRO_SERVICE_NAME: getattr(service, "_name", None),
        names.MICRO_SERVICE_VERSION: getattr(service, "_version", None),
        names.MICRO_SERVICE_ID: getattr(service, "_id", None),
        names.MICRO_ENDPOINT_NAME: getattr(instance, "_name", None),
    }
    return described, getattr(instance, "_subject", ""), getattr(instance, "_queue_group", None)


def request_message(request: Any) -> Any:
    """The ``Msg`` a nats.micro ``Request`` answers."""
    return getattr(request, "_msg", None)


def default_error_callback() -> Any:
    """nats-py's own error callback (what it calls when the application gives none)."""
    import nats.aio.client

    return nats.aio.client._default_error_callback
