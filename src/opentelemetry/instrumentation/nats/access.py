"""What the client-agnostic code (recorder, attributes, metrics) reads from a client: the interface
each client family's accessor implements (:mod:`.natspy.access`, :mod:`.natscore.access`).

Every read of a client's private state happens in its family's accessor module. An
:class:`~.operation.Operation` carries its family's accessor; the metrics keep it with each client.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Protocol

DEFAULT_PORT = 4222
DEFAULT_MAX_PAYLOAD = 1024 * 1024
INBOX_PREFIX = "_INBOX."


class SubscriptionState(NamedTuple):
    """A subscription as spans and gauges show it."""

    sub: Any  # the subscription object (the key of its slow-consumer drop count)
    subject: str
    queue: str | None
    delivered: int | None
    pending: int | None
    dropped: int | None = None  # slow-consumer drops, where the client counts them itself (nats-core)


# What a span shows of the subscription that delivered a message, read per message (cheaper than a
# SubscriptionState): the subscription object (the key of its slow-consumer drop count), its
# delivered, pending and dropped counts (``None`` where the client does not count them).
SubscriptionCounts = tuple[Any, int | None, int | None, int | None]


class ClientAccess(Protocol):
    """Reads of one client family's connection and subscription state."""

    def server_info(self, client: Any) -> Mapping[str, Any]:
        """The INFO of the server the client is connected to (follows reconnects)."""

    def server_endpoint(self, client: Any) -> tuple[str | None, int | None]:
        """Host and port of the current server (never credentials)."""

    # The two attributes holding objects the client replaces when it (re)connects: a cached view of
    # the connection is stale when either is no longer the same object. Attribute names, not a
    # method: the per-operation check is two ``getattr`` and identity tests, no call or tuple.
    connection_marks: tuple[str, str]

    def inbox_prefix(self, client: Any) -> str:
        """The client's inbox prefix with its trailing dot."""

    def send_limits(self, client: Any) -> tuple[Mapping[str, Any], int]:
        """What an injection checks, in one call per message: the server's INFO (:meth:`server_info`)
        and its maximum message size (headers and payload)."""

    def is_connected(self, client: Any) -> bool: ...

    def subscription_counts(self, client: Any, sid: Any) -> SubscriptionCounts | None:
        """The counts of subscription ``sid`` of ``client`` (``None`` when it is gone)."""

    def subscriptions(self, client: Any) -> Iterable[SubscriptionState]:
        """The client's application subscriptions (not its internal inboxes)."""

    def ordered_consumer(self, client: Any, sid: Any) -> bool:
        """True when subscription ``sid`` is a JetStream ordered consumer (the client recreates it,
        under a new name the server makes up, after a gap or a missed heartbeat)."""


class NoAccess:
    """The accessor of an operation that has no client (internal markers)."""

    connection_marks = ("_server_info", "_current_server")  # (any names: the client is None)

    def server_info(self, client: Any) -> Mapping[str, Any]:
        return {}

    def server_endpoint(self, client: Any) -> tuple[str | None, int | None]:
        return None, None

    def inbox_prefix(self, client: Any) -> str:
        return INBOX_PREFIX

    def send_limits(self, client: Any) -> tuple[Mapping[str, Any], int]:
        return {}, DEFAULT_MAX_PAYLOAD

    def is_connected(self, client: Any) -> bool:
        return False

    def subscription_counts(self, client: Any, sid: Any) -> SubscriptionCounts | None:
        return None

    def subscriptions(self, client: Any) -> Iterable[SubscriptionState]:
        return ()

    def ordered_consumer(self, client: Any, sid: Any) -> bool:
        return False


NO_ACCESS = NoAccess()
