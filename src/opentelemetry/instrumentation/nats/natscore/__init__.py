"""The next-generation family (nats-core ``nats.client``, nats-jetstream ``nats.jetstream``,
nats-key-value ``nats.key_value``; Python 3.13 and newer): its patch table.

Each entry's class says how it is patched (see :mod:`..patching`): :class:`Plain` for the
per-message coroutine methods, :class:`Wrapt` for everything else, :class:`WraptClassMethod` for a
classmethod. Every read of these packages' private state is in :mod:`.access`. Nothing here
imports them: a patch whose module is missing is skipped when the instrumentor applies the table.
"""

from __future__ import annotations

from opentelemetry.instrumentation.nats import names
from opentelemetry.instrumentation.nats.jetstream import Settle, internal
from opentelemetry.instrumentation.nats.jetstream import kv as write
from opentelemetry.instrumentation.nats.names import ACK, IN_PROGRESS, NAK, TERM
from opentelemetry.instrumentation.nats.natscore import connection, consume, core, jetstream, kv
from opentelemetry.instrumentation.nats.natscore.jetstream import JS
from opentelemetry.instrumentation.nats.patching import Plain, Wrapt, WraptClassMethod
from opentelemetry.instrumentation.nats.sending import publish_gate

_MSG, _KV = "nats.jetstream.message", "nats.key_value"

PATCHES: tuple[Wrapt, ...] = (
    # core NATS (core.py)
    Plain("nats.client", "Client.publish", core.publish, gate=publish_gate),
    Plain("nats.client", "Client.request", core.request),
    Plain("nats.client.subscription", "Subscription.next", core.next_message),
    Wrapt("nats.client.subscription", "Subscription.add_callback", core.add_callback),
    # connection health and server facts (connection.py)
    Wrapt("nats.client", "Client.__init__", connection.client_init),
    Wrapt("nats.client", "Client.close", connection.client_close),
    WraptClassMethod("nats.client", "ServerInfo.from_protocol", connection.server_info),
    # JetStream (jetstream.py): publish, the API funnel, settle
    Plain("nats.jetstream", "JetStream.publish", jetstream.publish),
    Wrapt("nats.jetstream.api.client", "Client.request_json", jetstream.api_request),
    Wrapt(_MSG, "Message.ack", Settle(ACK, JS)),
    Wrapt(_MSG, "Message.double_ack", Settle(ACK, JS)),
    Wrapt(_MSG, "Message.nak", Settle(NAK, JS)),
    Wrapt(_MSG, "Message.nak_with_delay", Settle(NAK, JS)),
    Wrapt(_MSG, "Message.term", Settle(TERM, JS)),
    Wrapt(_MSG, "Message.term_with_reason", Settle(TERM, JS)),
    Wrapt(_MSG, "Message.in_progress", Settle(IN_PROGRESS, JS)),
    # reads of stored messages: links to their writers, never parents
    Wrapt("nats.jetstream", "JetStream.get_message", jetstream.js_get_message),
    Wrapt("nats.jetstream", "JetStream.get_last_message_for_subject", jetstream.js_get_last_message),
    Wrapt("nats.jetstream.stream", "Stream.get_message", jetstream.stream_get_message),
    Wrapt("nats.jetstream.stream", "Stream.get_last_message_for_subject", jetstream.stream_get_last_message),
    # key-value (kv.py): writes carry their span's context for readers
    Wrapt(_KV, "KeyValue.put", write(names.KV_PUT, JS, inject=True)),
    Wrapt(_KV, "KeyValue.create", write(names.KV_CREATE, JS, inject=True)),
    Wrapt(_KV, "KeyValue.update", write(names.KV_UPDATE, JS, inject=True)),
    Wrapt(_KV, "KeyValue.delete", write(names.KV_DELETE, JS, inject=True)),
    Wrapt(_KV, "KeyValue.purge", write(names.KV_PURGE, JS, inject=True)),
    Wrapt(_KV, "KeyValue.get", kv.KV_GET),
    Plain(_KV, "KeyWatcher.__anext__", kv.taken),
    Plain(_KV, "KeyHistory.__anext__", kv.taken),
    Wrapt(_KV, "KeyWatcher.updates", kv.updates),
    # they read the bucket themselves: no spans (no receive span per key or marker)
    Wrapt(_KV, "KeyLister.__anext__", internal),
    Wrapt(_KV, "KeyValue.purge_deletes", internal),
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
