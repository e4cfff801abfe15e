"""The nats-py family (``nats.aio``, ``nats.js``, ``nats.micro``): its patch table.

Each entry's class says how it is patched (see :mod:`..patching`): :class:`Plain` for the
per-message coroutine methods, :class:`Wrapt` for everything else. Every read of nats-py's private
state is in :mod:`.access`.
"""

from __future__ import annotations

from opentelemetry.instrumentation.nats import names
from opentelemetry.instrumentation.nats.jetstream import internal
from opentelemetry.instrumentation.nats.names import ACK, IN_PROGRESS, NAK, TERM
from opentelemetry.instrumentation.nats.natspy import connection, core, jetstream, micro, stored
from opentelemetry.instrumentation.nats.natspy.jetstream import kv, obj, settle
from opentelemetry.instrumentation.nats.patching import Plain, Wrapt
from opentelemetry.instrumentation.nats.sending import publish_gate

PATCHES: tuple[Wrapt, ...] = (
    # core NATS (core.py)
    Plain("nats.aio.client", "Client.publish", core.publish, gate=publish_gate),
    Plain("nats.aio.client", "Client.request", core.request),
    Wrapt("nats.aio.client", "Client.subscribe", core.subscribe),
    Wrapt("nats.aio.subscription", "Subscription.next_msg", core.next_msg),
    Wrapt("nats.aio.subscription", "_SubscriptionMessageIterator.__anext__", core.anext_msg),
    Plain("nats.aio.msg", "Msg.respond", core.respond),
    # connection health (connection.py)
    Wrapt("nats.aio.client", "Client.connect", connection.connect),
    Wrapt("nats.aio.client", "Client._close", jetstream.client_close),
    # JetStream (jetstream.py)
    Wrapt("nats.js.manager", "JetStreamManager._api_request", jetstream.api_request),
    Plain("nats.js.client", "JetStreamContext.publish", jetstream.publish),
    Plain("nats.js.client", "JetStreamContext.publish_async", jetstream.publish_async),
    Wrapt("nats.js.client", "JetStreamContext.PullSubscription.fetch", jetstream.fetch),
    Wrapt("nats.aio.msg", "Msg.ack", settle(ACK)),
    Wrapt("nats.aio.msg", "Msg.ack_sync", settle(ACK)),
    Wrapt("nats.aio.msg", "Msg.nak", settle(NAK)),
    Wrapt("nats.aio.msg", "Msg.term", settle(TERM)),
    Wrapt("nats.aio.msg", "Msg.in_progress", settle(IN_PROGRESS)),
    # key-value and object-store writes (jetstream.py): they carry their span's context for readers
    Wrapt("nats.js.kv", "KeyValue.put", kv(names.KV_PUT)),
    Wrapt("nats.js.kv", "KeyValue.create", kv(names.KV_CREATE)),
    Wrapt("nats.js.kv", "KeyValue.update", kv(names.KV_UPDATE)),
    Wrapt("nats.js.kv", "KeyValue.delete", kv(names.KV_DELETE)),
    Wrapt("nats.js.kv", "KeyValue.purge", kv(names.KV_PURGE)),
    Wrapt("nats.js.object_store", "ObjectStore.put", obj(names.OBJECT_PUT)),
    Wrapt("nats.js.object_store", "ObjectStore.delete", obj(names.OBJECT_DELETE)),
    # reads of stored values (stored.py): links to their writers, never parents
    Wrapt("nats.js.manager", "JetStreamManager.get_msg", stored.get_msg),
    Wrapt("nats.js.kv", "KeyValue.get", stored.KV_GET),
    Wrapt("nats.js.kv", "KeyValue.history", stored.KV_HISTORY),
    Wrapt("nats.js.kv", "KeyValue.watch", stored.watch),
    Wrapt("nats.js.kv", "KeyValue.KeyWatcher.updates", stored.taken),
    Wrapt("nats.js.kv", "KeyValue.KeyWatcher.__anext__", stored.taken),
    Wrapt("nats.js.object_store", "ObjectStore.get", stored.OBJECT_GET),
    # they read a watcher to its end themselves: no spans (no receive span per key or object)
    Wrapt("nats.js.kv", "KeyValue.keys", internal),
    Wrapt("nats.js.kv", "KeyValue.purge_deletes", internal),
    Wrapt("nats.js.object_store", "ObjectStore.watch", internal),
    # nats.micro (micro.py)
    Wrapt("nats.micro.service", "Service.start", micro.internal),
    Wrapt("nats.micro.service", "Endpoint._start", micro.internal),
    Wrapt("nats.micro.service", "Endpoint._handle_request", micro.handle_request),
    Wrapt("nats.micro.request", "Request.respond", micro.respond),
    Wrapt("nats.micro.request", "Request.respond_error", micro.respond_error),
)
