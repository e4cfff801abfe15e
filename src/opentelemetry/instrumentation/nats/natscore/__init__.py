"""The next-generation family (nats-core ``nats.client``, nats-jetstream ``nats.jetstream``,
nats-key-value ``nats.key_value``; Python 3.13 and newer): its patch table.

Each entry's class says how it is patched (see :mod:`..patching`): :class:`Plain` for the
per-message coroutine methods, :class:`Wrapt` for everything else, :class:`WraptClassMethod` for a
classmethod. Every read of these packages' private state is in :mod:`.access`. Nothing here
imports them: a patch whose module is missing is skipped when the instrumentor applies the table.
"""

from __future__ import annotations

from opentelemetry.instrumentation.nats.natscore import connection, core
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
)
