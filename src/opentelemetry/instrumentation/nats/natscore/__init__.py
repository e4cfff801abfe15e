"""The next-generation family (nats-core ``nats.client``, nats-jetstream ``nats.jetstream``,
nats-key-value ``nats.key_value``): its patch table. Every read of these packages' private state is
in :mod:`.access`.
"""

from __future__ import annotations

from opentelemetry.instrumentation.nats.patching import Wrapt

PATCHES: tuple[Wrapt, ...] = ()
