"""The next-generation family (nats-core ``nats.client``, nats-jetstream ``nats.jetstream``,
nats-key-value ``nats.key_value``; Python 3.13 and newer): its patch table.

Each entry's class says how it is patched (see :mod:`..patching`): :class:`Plain` for the
per-message coroutine methods, :class:`Wrapt` for everything else, :class:`WraptClassMethod` for a
classmethod. Every read of these packages' private state is in :mod:`.access`. Nothing here
imports them: a patch whose module is missing is skipped when the instrumentor applies the table.
"""

from __future__ import annotations

from opentelemetry.instrumentation.nats.natscore import connection, consume, core
from opentelemetry.instrumentation.nats.patching import Plain, Wrapt, WraptClassMethod

PATCHES: tuple[Wrapt, ...] = (
    # core NATS (core.py)
    Plain("nats.client", "Client.publish", core.publish),
    Plain("nats.client", "Client.request", core.request),
    Plain("nats.client.subscription", "Subscription.next", core.next_message),
    Wrapt("nats.client.subscription", "Subscription.add_callback", core.add_callback),
    # connection health and server facts (connection.py)
    Wrapt("nats.client", "Client.__init__", connection.client_init),
    Wrapt("nats.client", "Client.close", connection.client_close),
    WraptClassMethod("nats.client", "ServerInfo.from_protocol", connection.server_info),
    # JetStream consumers (consume.py): fetch (one span per lazily read batch), next, message streams
    Wrapt("nats.jetstream.consumer.pull", "PullConsumer.fetch", consume.FETCH),
    Wrapt("nats.jetstream.consumer.pull", "PullConsumer.fetch_nowait", consume.FETCH),
    Wrapt("nats.jetstream.consumer.ordered", "OrderedConsumer.fetch", consume.ORDERED_FETCH),
    Wrapt("nats.jetstream.consumer.ordered", "OrderedConsumer.fetch_nowait", consume.ORDERED_FETCH),
    Plain("nats.jetstream.consumer.pull", "PullMessageBatch.__anext__", consume.next_in_batch),
    Wrapt("nats.jetstream.consumer.pull", "PullConsumer.next", consume.NEXT),
    Wrapt("nats.jetstream.consumer.ordered", "OrderedConsumer.next", consume.ORDERED_NEXT),
    Plain("nats.jetstream.consumer.pull", "PullMessageStream.__anext__", consume.next_in_stream),
    # (a private class: where it is missing, its inner PullMessageStream's messages are the spans)
    Plain("nats.jetstream.consumer.ordered", "_OrderedMessageStream.__anext__", consume.next_in_ordered_stream),
)
