"""The per-connection cache: each client's connection attributes and, per subject, the span name and
attribute sets built by :class:`~.destinations.Destinations` (see :class:`~.destinations.ClientDestinations`).

Fast paths: clients are kept in a plain dict keyed by ``id()`` with a weak reference to check the
client (a ``WeakKeyDictionary`` lookup makes a new weak reference per call). Temporary subjects (a
new inbox per request, an ack subject per message) and the subjects a wildcard subscription
receives (named by the subscription) share one cache entry; only their destination name is added
per message (so is the name of other subjects that do not name the span: see destinations.py). A
plain publish to an inbox (a responder's reply) finds that shared entry too (:meth:`Clients.subject_entry`),
so it takes sending.py's cached path: the sampled nats-core request/reply, responder included, took
about 12 % fewer instructions per round trip with it (callgrind, 1 000 round trips).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any
from weakref import ref

from opentelemetry.instrumentation.nats import attributes, names
from opentelemetry.instrumentation.nats.access import ClientAccess
from opentelemetry.instrumentation.nats.attributes import Attrs
from opentelemetry.instrumentation.nats.destinations import CACHE_SIZE, ClientDestinations, Destinations, Entry
from opentelemetry.instrumentation.nats.subjects import Generations

if TYPE_CHECKING:
    from opentelemetry.instrumentation.nats.operation import Operation


# A subscription's receive spans (see receiving.py): the subject and queue group they were built
# for, span name and attributes with the subscription id (both None: the full path applies)
Received = tuple[str, Any, str | None, Attrs | None]


class ClientState(ClientDestinations):
    """One connection's attributes and per-subject entries, and its subscriptions' receive spans
    (``received``, by subscription id); rebuilt when the client reconnects (its accessor's
    ``connection_marks`` change: new server INFO, failover)."""

    __slots__ = ("inbox", "mark", "marked", "other", "other_mark", "received")

    def __init__(self, client: Any, keys: names.Keys, access: ClientAccess) -> None:
        super().__init__(attributes.connection_attributes(keys, access, client))
        self.marked, self.other = access.connection_marks  # (attribute names)
        self.mark, self.other_mark = getattr(client, self.marked, None), getattr(client, self.other, None)
        self.inbox = access.inbox_prefix(client)
        self.received: Generations[Any, Received] = Generations(CACHE_SIZE)


class Clients:
    """The :class:`ClientState` of every live client; ``on_new`` is told of each client seen (metrics)."""

    def __init__(
        self, keys: names.Keys, destinations: Destinations, on_new: Callable[[Any, ClientAccess], None] | None = None
    ) -> None:
        self.keys = keys
        self.destinations = destinations
        self.on_new = on_new
        self._states: dict[int, tuple[ref[Any], ClientState]] = {}  # id(client) → (client, its state)

    def state(self, client: Any, access: ClientAccess) -> ClientState:
        key = id(client)
        found = self._states.get(key)
        if found is not None and found[0]() is client:
            state = found[1]  # (its connection marks still the same objects: two getattr, no call)
            if (
                getattr(client, state.marked, None) is state.mark
                and getattr(client, state.other, None) is state.other_mark
            ):
                return state
        state = ClientState(client, self.keys, access)
        try:
            self._states[key] = (ref(client, partial(self._forget, key)), state)
        except TypeError:  # not weak-referenceable: not cached
            return state
        if self.on_new is not None:
            self.on_new(client, access)
        return state

    def _forget(self, key: int, gone: ref[Any]) -> None:
        """A client was garbage-collected: drop its state (unless the id is in use again)."""
        found = self._states.get(key)
        if found is not None and found[0] is gone:
            del self._states[key]

    def subject_entry(self, client: Any, access: ClientAccess, op: names.Op, subject: str) -> Entry | None:
        """The cached entry of ``op`` on ``subject`` (no template, queue group or name destination; on
        an inbox or ack subject, the one they share; on a subject past ``max_destinations``, its
        shape's), ``None`` when there is none yet (:meth:`entry` builds it)."""
        state = self.state(client, access)
        found = state.recent.get((op, subject, None, None, None))
        if found is None:
            if subject.startswith(state.inbox) or subject.startswith(names.JS_ACK_PREFIX):
                found = state.recent.get((op, True, None, None, None))
            else:  # (a subject past max_destinations is not remembered: its shape's entry)
                found = self.destinations.unnamed(state, op, subject)
        return found

    def entry(self, op: Operation) -> Entry:
        """The cached span name, span and metric attributes of ``op``'s destination (built on a miss)."""
        state = self.state(op.client, op.access)
        subject = op.subject
        key: tuple[Any, ...] = (op.op, subject, op.template, op.queue, op.name_dest)
        cached = None if op.op is names.RESPOND else state.recent.get(key)
        if cached is None:
            temporary = subject.startswith(state.inbox) or subject.startswith(names.JS_ACK_PREFIX)
            if temporary or op.template is not None:
                key = (op.op, temporary, op.template, op.queue, op.name_dest)  # (no subject is a bool)
                cached = state.recent.get(key)
            elif op.op is names.RESPOND:
                cached = state.recent.get(key)
            if cached is None:
                cached = state.recall(key) or self.destinations.entry(state, key, op, temporary)
        return cached
